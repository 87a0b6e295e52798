DROP TABLE consent_flows;
DROP TABLE authorization_jobs;
DROP TABLE accounts;
DROP TABLE oauth_tokens;
DROP TABLE service_accounts;
DROP TABLE applications;
