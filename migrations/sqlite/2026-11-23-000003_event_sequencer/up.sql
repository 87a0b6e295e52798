-- Events get their directory sequence after they commit (a sequencer numbers them in
-- rowid order). SQLite cannot drop NOT NULL in place: rebuild the table.
CREATE TABLE events_new (
    id TEXT PRIMARY KEY NOT NULL,
    directory_id TEXT NOT NULL,
    sequence BIGINT,
    event_type TEXT NOT NULL,
    payload TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL
);
INSERT INTO events_new (id, directory_id, sequence, event_type, payload, created_at)
    SELECT id, directory_id, sequence, event_type, payload, created_at FROM events ORDER BY rowid;
DROP TABLE events;
ALTER TABLE events_new RENAME TO events;
CREATE UNIQUE INDEX events_directory_sequence ON events (directory_id, sequence);
CREATE INDEX events_unsequenced ON events (directory_id) WHERE sequence IS NULL;
