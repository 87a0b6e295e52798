-- Every email of a user, lower-cased, so `emails.value` and `emails[...]` filters are
-- index lookups rather than scans of the raw JSON.
CREATE TABLE user_emails (
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    position BIGINT NOT NULL,
    directory_id TEXT NOT NULL,
    -- NULL for an element without a value (still matched by emails[type eq ...]).
    value_lower TEXT,
    email_type TEXT,
    -- NULL when the IdP did not say.
    is_primary BOOLEAN,
    PRIMARY KEY (user_id, position)
);
CREATE INDEX user_emails_directory_value ON user_emails (directory_id, value_lower);
