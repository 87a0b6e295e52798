//! Integration tests: the real HTTP server over real SQLite and PostgreSQL databases.
//! Every storage-touching test runs on both backends (see `backend_tests!`).

mod common;

mod admin;
mod binary;
mod bulk;
mod concurrency;
mod config_doc;
mod connect_crash;
mod dashboard;
mod discovery;
mod enterprise_connect;
mod events;
mod filters;
mod fixtures;
mod google_directories;
mod guarantees;
mod hostile;
mod http_hygiene;
mod idp_replay;
mod instances;
mod openapi;
mod pool;
mod receiver;
mod scim_errors;
mod scim_groups;
mod scim_users;
mod secrets_at_rest;
mod setup_links;
mod webhooks;
mod writes;
