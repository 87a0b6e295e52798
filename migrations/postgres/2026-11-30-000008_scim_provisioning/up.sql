-- SCIM drives provisioning (DESIGN.md §6.5): a directory attached to an organizational
-- unit is followed through its numbered events with a cursor of its own, claimed with a
-- lease (as webhook endpoints), advanced in the transaction that records what it did.
CREATE TABLE provisioning_cursors (
    directory_id TEXT PRIMARY KEY NOT NULL,
    organizational_unit_id TEXT NOT NULL,
    last_sequence BIGINT NOT NULL,
    next_attempt_at TIMESTAMP NOT NULL,
    lease_until TIMESTAMP,
    lease_owner TEXT,
    attempts BIGINT NOT NULL DEFAULT 0,
    -- Why the event at the cursor is pending (a provider that is down).
    last_error TEXT,
    -- Users without an email, not provisioned.
    skipped BIGINT NOT NULL DEFAULT 0,
    updated_at TIMESTAMP NOT NULL
);
CREATE INDEX provisioning_cursors_due ON provisioning_cursors (next_attempt_at);

-- Which account a directory's user was provisioned as (and under which email).
CREATE TABLE directory_accounts (
    directory_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    account_id TEXT NOT NULL,
    email TEXT NOT NULL,
    PRIMARY KEY (directory_id, user_id)
);
