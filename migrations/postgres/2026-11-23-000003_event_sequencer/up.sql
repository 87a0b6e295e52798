-- Events get their directory sequence after they commit (a sequencer numbers them in
-- insertion order), so writers never queue on the directory row.
ALTER TABLE events ALTER COLUMN sequence DROP NOT NULL;
ALTER TABLE events ADD COLUMN ordinal BIGSERIAL;
CREATE INDEX events_unsequenced ON events (directory_id, ordinal) WHERE sequence IS NULL;
