-- Webhook endpoints: a directory's own (its webhook_url is the primary one) and the
-- global endpoint (directory_id NULL) that receives every directory's dsync.* events.
-- No foreign key: a deleted directory's endpoints outlive it until its dsync.deleted is
-- delivered ("retired").
CREATE TABLE webhook_endpoints (
    id TEXT PRIMARY KEY NOT NULL,
    directory_id TEXT,
    url TEXT NOT NULL,
    secret TEXT NOT NULL,
    previous_secret TEXT,
    previous_secret_expires_at TIMESTAMP,
    -- JSON array of event types; NULL receives every type.
    event_types TEXT,
    enabled BOOLEAN NOT NULL DEFAULT TRUE,
    disabled_reason TEXT,
    batch_size BIGINT,
    is_primary BOOLEAN NOT NULL DEFAULT FALSE,
    retired BOOLEAN NOT NULL DEFAULT FALSE,
    -- Delivery state: when the head of its queue is due (NULL: nothing queued), the
    -- instance holding it and until when, and a counter bumped by every fan-out so an
    -- instance never marks idle an endpoint that just got work.
    next_attempt_at TIMESTAMP,
    lease_until TIMESTAMP,
    lease_owner TEXT,
    fanout_version BIGINT NOT NULL DEFAULT 0,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
CREATE INDEX webhook_endpoints_directory ON webhook_endpoints (directory_id, created_at);
CREATE INDEX webhook_endpoints_due ON webhook_endpoints (next_attempt_at) WHERE next_attempt_at IS NOT NULL;
-- One live primary endpoint per directory, even when two instances start together.
CREATE UNIQUE INDEX webhook_endpoints_primary ON webhook_endpoints (directory_id) WHERE is_primary AND NOT retired;

-- One row per (endpoint, event); `position` is the endpoint's queue order.
CREATE TABLE deliveries (
    position BIGSERIAL PRIMARY KEY,
    endpoint_id TEXT NOT NULL,
    event_id TEXT NOT NULL,
    directory_id TEXT NOT NULL,
    sequence BIGINT NOT NULL,
    -- pending, delivered or failed (dead letter).
    status TEXT NOT NULL,
    attempts BIGINT NOT NULL DEFAULT 0,
    next_attempt_at TIMESTAMP NOT NULL,
    last_status BIGINT,
    last_error TEXT,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    UNIQUE (endpoint_id, event_id)
);
CREATE INDEX deliveries_queue ON deliveries (endpoint_id, position) WHERE status = 'pending';
CREATE INDEX deliveries_directory_status ON deliveries (directory_id, status, position);
CREATE INDEX deliveries_event ON deliveries (event_id);

-- Every attempt, kept for the configured retention.
CREATE TABLE delivery_attempts (
    id TEXT PRIMARY KEY NOT NULL,
    endpoint_id TEXT NOT NULL,
    event_id TEXT NOT NULL,
    directory_id TEXT NOT NULL,
    attempt BIGINT NOT NULL,
    status_code BIGINT,
    duration_ms BIGINT NOT NULL,
    error TEXT,
    response_excerpt TEXT,
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX delivery_attempts_event ON delivery_attempts (event_id, created_at);
CREATE INDEX delivery_attempts_created ON delivery_attempts (created_at);
