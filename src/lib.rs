//! scimgate: a SCIM 2.0 directory-sync gateway.
//!
//! - [`scim`]: the protocol (resources, schemas, filters, PATCH, errors); no I/O.
//! - [`store`]: diesel over SQLite or PostgreSQL; every query scoped by directory.
//! - [`directory`]: directories, users, groups and their events; every state change goes through here.
//! - [`http`]: actix-web routes for SCIM, the admin API and health.
//! - [`background`]: tasks of a running gateway (the event sequencer).
//! - [`webhooks`]: webhook signatures (Standard Webhooks and Jackson's).
//! - [`config`]: configuration from a TOML file and `SCIMGATE_*` variables.

pub mod background;
pub mod config;
pub mod directory;
pub mod error;
#[doc(hidden)]
pub mod faults;
pub mod http;
pub mod scim;
pub mod secrets;
pub mod store;
pub mod webhooks;

pub use config::Config;
pub use error::Error;
