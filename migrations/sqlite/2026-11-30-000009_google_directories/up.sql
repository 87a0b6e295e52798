-- Google Workspace directories (DESIGN.md §4): a directory of type `google` pulls its
-- users and groups from the Admin SDK as its workspace admin (domain-wide delegation).
-- One row per such directory: where it pulls from, and the state of its last sync,
-- claimed with a lease so one instance syncs it at a time.
CREATE TABLE google_directories (
    directory_id TEXT PRIMARY KEY NOT NULL REFERENCES directories (id) ON DELETE CASCADE,
    domain TEXT NOT NULL,
    admin_email TEXT NOT NULL,
    -- `pending` (never run), `running`, `succeeded` or `failed`.
    state TEXT NOT NULL,
    started_at TIMESTAMP,
    finished_at TIMESTAMP,
    -- What the directory holds after the last run that finished listing.
    user_count BIGINT,
    group_count BIGINT,
    -- Why the last run failed; cleared by the next good one.
    error TEXT,
    next_attempt_at TIMESTAMP NOT NULL,
    lease_until TIMESTAMP,
    lease_owner TEXT,
    updated_at TIMESTAMP NOT NULL
);
CREATE INDEX google_directories_due ON google_directories (next_attempt_at);
