-- Operators' dashboard sessions (DESIGN.md §8): server-side, so every instance sharing
-- the database knows them. Only the digest of the cookie's token is kept.
CREATE TABLE dashboard_sessions (
    token_digest TEXT PRIMARY KEY NOT NULL,
    created_at TIMESTAMP NOT NULL,
    expires_at TIMESTAMP NOT NULL,
    ended_at TIMESTAMP
);
CREATE INDEX dashboard_sessions_expires ON dashboard_sessions (expires_at);

-- An endpoint's last error on the dashboard, without reading its delivered history.
CREATE INDEX deliveries_endpoint_errors ON deliveries (endpoint_id, updated_at) WHERE last_error IS NOT NULL;
