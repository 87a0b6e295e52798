-- Directories: one SCIM connection each. Secrets are stored as SHA-256 hex digests.
CREATE TABLE directories (
    id TEXT PRIMARY KEY NOT NULL,
    name TEXT NOT NULL,
    tenant TEXT NOT NULL,
    product TEXT NOT NULL,
    provider_type TEXT NOT NULL,
    scim_secret_hash TEXT NOT NULL,
    previous_secret_hash TEXT,
    previous_secret_expires_at TIMESTAMP,
    webhook_url TEXT,
    webhook_secret TEXT,
    log_webhook_events BOOLEAN NOT NULL DEFAULT FALSE,
    deactivated BOOLEAN NOT NULL DEFAULT FALSE,
    user_limit BIGINT,
    organizational_unit_id TEXT,
    last_event_sequence BIGINT NOT NULL DEFAULT 0,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
CREATE INDEX directories_tenant_product ON directories (tenant, product, created_at, id);

CREATE TABLE users (
    id TEXT PRIMARY KEY NOT NULL,
    directory_id TEXT NOT NULL REFERENCES directories (id) ON DELETE CASCADE,
    user_name TEXT NOT NULL,
    user_name_lower TEXT NOT NULL,
    external_id TEXT,
    email TEXT,
    email_lower TEXT,
    given_name TEXT,
    family_name TEXT,
    display_name TEXT,
    active BOOLEAN NOT NULL DEFAULT TRUE,
    raw TEXT NOT NULL,
    version BIGINT NOT NULL DEFAULT 1,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
CREATE UNIQUE INDEX users_directory_user_name ON users (directory_id, user_name_lower);
CREATE INDEX users_directory_external_id ON users (directory_id, external_id);
CREATE INDEX users_directory_email ON users (directory_id, email_lower);
CREATE INDEX users_directory_created ON users (directory_id, created_at, id);

CREATE TABLE scim_groups (
    id TEXT PRIMARY KEY NOT NULL,
    directory_id TEXT NOT NULL REFERENCES directories (id) ON DELETE CASCADE,
    display_name TEXT NOT NULL,
    display_name_lower TEXT NOT NULL,
    external_id TEXT,
    raw TEXT NOT NULL,
    version BIGINT NOT NULL DEFAULT 1,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
CREATE UNIQUE INDEX scim_groups_directory_display_name ON scim_groups (directory_id, display_name_lower);
CREATE INDEX scim_groups_directory_external_id ON scim_groups (directory_id, external_id);
CREATE INDEX scim_groups_directory_created ON scim_groups (directory_id, created_at, id);

-- One row per member; never stored inside the group's JSON.
CREATE TABLE memberships (
    group_id TEXT NOT NULL REFERENCES scim_groups (id) ON DELETE CASCADE,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    directory_id TEXT NOT NULL REFERENCES directories (id) ON DELETE CASCADE,
    created_at TIMESTAMP NOT NULL,
    PRIMARY KEY (group_id, user_id)
);
CREATE INDEX memberships_user ON memberships (user_id);

-- Outbox: written in the same transaction as the change it records.
-- No foreign key: dsync.deleted outlives its directory.
CREATE TABLE events (
    id TEXT PRIMARY KEY NOT NULL,
    directory_id TEXT NOT NULL,
    sequence BIGINT NOT NULL,
    event_type TEXT NOT NULL,
    payload TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL
);
CREATE UNIQUE INDEX events_directory_sequence ON events (directory_id, sequence);
