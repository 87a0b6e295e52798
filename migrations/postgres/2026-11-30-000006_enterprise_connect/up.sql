-- Enterprise Connect (DESIGN.md §6.1–6.5): the integrators' OAuth clients, the service
-- accounts their customers' admins authorize, the tokens we issue (as digests), the
-- accounts provisioned per person and the durable jobs that provision them.

CREATE TABLE applications (
    id TEXT PRIMARY KEY NOT NULL,
    client_id TEXT NOT NULL UNIQUE,
    -- Sealed: it keys the callback signatures, so it must be usable again.
    client_secret TEXT NOT NULL,
    -- SHA-256 of the secret: finds the application of a Bearer client secret.
    client_secret_digest TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    -- JSON array of exact redirect URIs.
    redirect_uris TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL
);

CREATE TABLE service_accounts (
    id TEXT PRIMARY KEY NOT NULL,
    application_id TEXT NOT NULL,
    -- google | office365
    provider TEXT NOT NULL,
    -- The Google domain, or the Microsoft tenant's default domain.
    domain TEXT,
    -- The Microsoft tenant id.
    tenant_id TEXT,
    -- The Google admin impersonated for lookups.
    admin_email TEXT,
    scope TEXT NOT NULL,
    delegated_scope TEXT NOT NULL,
    organizational_unit_id TEXT,
    -- active | revoked
    state TEXT NOT NULL,
    -- The provider's access token, sealed, and when it expires.
    provider_token TEXT,
    provider_token_expires_at TIMESTAMP,
    created_at TIMESTAMP NOT NULL,
    revoked_at TIMESTAMP
);
CREATE INDEX service_accounts_application ON service_accounts (application_id, created_at);

-- Codes, access and refresh tokens we issued, by SHA-256 digest (never the token).
CREATE TABLE oauth_tokens (
    digest TEXT PRIMARY KEY NOT NULL,
    -- code | access | refresh
    kind TEXT NOT NULL,
    application_id TEXT NOT NULL,
    -- ser_… | acc_… | ou_…
    subject TEXT NOT NULL,
    -- A code and every token issued from it: revoked together on reuse.
    family TEXT NOT NULL,
    scope TEXT NOT NULL,
    redirect_uri TEXT,
    expires_at TIMESTAMP,
    -- Codes once redeemed, refresh tokens once rotated.
    used_at TIMESTAMP,
    revoked_at TIMESTAMP,
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX oauth_tokens_subject ON oauth_tokens (subject);
CREATE INDEX oauth_tokens_family ON oauth_tokens (family);
CREATE INDEX oauth_tokens_expires ON oauth_tokens (expires_at);

-- One account per email per application.
CREATE TABLE accounts (
    id TEXT PRIMARY KEY NOT NULL,
    application_id TEXT NOT NULL,
    -- Lower-cased.
    email TEXT NOT NULL,
    service_account_id TEXT NOT NULL,
    provider TEXT NOT NULL,
    profile_id TEXT NOT NULL,
    profile_name TEXT NOT NULL,
    provider_user_id TEXT,
    scope TEXT NOT NULL,
    -- active | suspended | revoked
    state TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    UNIQUE (application_id, email)
);
CREATE INDEX accounts_service_account ON accounts (service_account_id);

-- A delegated authorization (POST /v1/service_account_authorizations), one per email:
-- looked up at the provider, then its callback sent. Claimed with a lease, as deliveries.
CREATE TABLE authorization_jobs (
    id TEXT PRIMARY KEY NOT NULL,
    application_id TEXT NOT NULL,
    service_account_id TEXT NOT NULL,
    email TEXT NOT NULL,
    callback_url TEXT NOT NULL,
    scope TEXT NOT NULL,
    state TEXT,
    -- lookup | callback | done
    status TEXT NOT NULL,
    attempts BIGINT NOT NULL DEFAULT 0,
    next_attempt_at TIMESTAMP NOT NULL,
    lease_until TIMESTAMP,
    lease_owner TEXT,
    -- The callback's JSON, sealed (it carries a code), once the outcome is known.
    callback_body TEXT,
    account_id TEXT,
    last_error TEXT,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
CREATE INDEX authorization_jobs_due ON authorization_jobs (next_attempt_at) WHERE status <> 'done';
CREATE INDEX authorization_jobs_service_account ON authorization_jobs (service_account_id, status);

-- A consent in progress: the authorize request's parameters, bound to the browser by a
-- cookie (csrf_digest). Single use, short-lived.
CREATE TABLE consent_flows (
    id TEXT PRIMARY KEY NOT NULL,
    csrf_digest TEXT NOT NULL,
    application_id TEXT NOT NULL,
    -- JSON: redirect_uri, scope, delegated_scope, state, provider.
    params TEXT NOT NULL,
    expires_at TIMESTAMP NOT NULL,
    used_at TIMESTAMP
);
CREATE INDEX consent_flows_expires ON consent_flows (expires_at);
