//! scimgate: a SCIM 2.0 directory-sync gateway. The parts, from the bottom up (what each
//! may import is in ARCHITECTURE.md and checked by `tests/architecture.rs`):
//!
//! - [`scim`]: the protocol (resources, schemas, filters, PATCH, limits, errors); no I/O.
//! - [`oauth`]: OAuth 2 protocol values (error responses); no I/O.
//! - [`ids`]: typed prefixed ids (`evt_`, `whe_`, `ser_`, `ou_`, `acc_`, `cnf_`); no I/O.
//! - [`error`]: the crate's one error type.
//! - [`store`]: diesel over SQLite or PostgreSQL; every query scoped by directory.
//! - [`outbound`]: the one outbound HTTP client and its address safety.
//! - [`providers`]: connectors to Google Workspace and Microsoft Graph (tokens, lookups).
//! - [`devproviders`]: local stand-ins for those providers, for tests and `scimgate dev-providers`.
//! - [`connect`]: Enterprise Connect: applications, consents, codes and tokens, service
//!   accounts, delegated authorizations and the accounts they provision.
//! - [`provisioning`]: SCIM drives provisioning: directories attached to a unit provision,
//!   suspend and revoke accounts by themselves, following their event streams.
//! - [`webhooks`]: fan-out of numbered events to endpoints, delivery workers, signatures.
//! - [`directory`]: directories, users, groups and their events; every state change goes
//!   through here, in one write transaction with its event.
//! - [`google_sync`]: Google Workspace directories, pulled from the Admin SDK and written
//!   through `directory` (the same events as a SCIM push).
//! - [`http`]: actix-web routes for SCIM, the admin API and health.
//! - [`background`]: tasks of a running gateway (the event sequencer, log pruning).
//! - [`config`]: configuration from a TOML file and `SCIMGATE_*` variables.
//! - [`secrets`]: secret generation, digests, constant-time comparison.

pub mod background;
pub mod config;
pub mod connect;
pub mod dashboard;
pub mod devproviders;
pub mod directory;
pub mod error;
#[doc(hidden)]
pub mod faults;
pub mod google_sync;
pub mod http;
pub mod ids;
pub mod oauth;
pub mod outbound;
pub mod providers;
pub mod provisioning;
pub mod scim;
pub mod secrets;
pub mod store;
pub mod webhooks;

pub use config::Config;
pub use error::Error;
