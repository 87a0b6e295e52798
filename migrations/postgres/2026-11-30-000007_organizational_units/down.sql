ALTER TABLE consent_flows DROP COLUMN failures;
DROP TABLE conferencing_profiles;
DROP INDEX service_accounts_one_active;
DROP INDEX service_accounts_unit;
ALTER TABLE service_accounts DROP COLUMN external_account;
ALTER TABLE service_accounts DROP COLUMN provider_refresh_token;
ALTER TABLE service_accounts DROP COLUMN link_position;
ALTER TABLE service_accounts DROP COLUMN capability;
DROP TABLE organizational_units;
