-- Organizational units (DESIGN.md §6.4): an application's customer links several
-- calendar service accounts (in link order) and conferencing accounts into one unit.
CREATE TABLE organizational_units (
    id TEXT PRIMARY KEY NOT NULL,
    application_id TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX organizational_units_application ON organizational_units (application_id, created_at);

-- calendars | conferencing
ALTER TABLE service_accounts ADD COLUMN capability TEXT NOT NULL DEFAULT 'calendars';
-- Order of calendar accounts within their unit (fall-through order).
ALTER TABLE service_accounts ADD COLUMN link_position BIGINT;
-- Conferencing accounts (OAuth authorization code): the refresh token, sealed.
ALTER TABLE service_accounts ADD COLUMN provider_refresh_token TEXT;
-- The provider's own account: Zoom account id, Webex org id, Indeed employer.
ALTER TABLE service_accounts ADD COLUMN external_account TEXT;
CREATE INDEX service_accounts_unit ON service_accounts (organizational_unit_id, link_position);
-- One active service account per application and domain, tenant or provider account,
-- even when two consents for it finish at once.
CREATE UNIQUE INDEX service_accounts_one_active
    ON service_accounts (application_id, provider, COALESCE(tenant_id, domain, external_account, ''))
    WHERE state = 'active';

-- A conferencing profile of an account: one per conferencing account of its unit that
-- knows the account's email.
CREATE TABLE conferencing_profiles (
    id TEXT PRIMARY KEY NOT NULL,
    account_id TEXT NOT NULL,
    service_account_id TEXT NOT NULL,
    provider TEXT NOT NULL,
    profile_name TEXT NOT NULL,
    provider_user_id TEXT,
    -- active | revoked
    state TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    UNIQUE (account_id, service_account_id)
);
CREATE INDEX conferencing_profiles_service_account ON conferencing_profiles (service_account_id);

-- Failed admin proofs of a consent in progress: a flow ends after a few, so its form
-- cannot be used to probe which addresses of a domain are admins.
ALTER TABLE consent_flows ADD COLUMN failures BIGINT NOT NULL DEFAULT 0;
