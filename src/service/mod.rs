//! The directory service: every state change goes through here, in one write transaction
//! with the event that records it. Functions are synchronous over a connection; the HTTP
//! layer runs them on the blocking pool.

pub mod directories;
pub mod events;
pub mod groups;
pub mod users;

use crate::store::directories::DirectoryRow;

/// The directory a SCIM request acts on, and the base of the URLs it renders.
#[derive(Debug, Clone)]
pub struct DirectoryScope {
    pub directory: DirectoryRow,
    /// `{external_url}/api/scim/v2.0/{directory_id}`.
    pub base_url: String,
}

impl DirectoryScope {
    pub fn new(directory: DirectoryRow, external_url: &str) -> Self {
        let base_url = scim_base_url(external_url, &directory.id);
        Self {
            directory,
            base_url,
        }
    }
    pub fn id(&self) -> &str {
        &self.directory.id
    }
}

pub fn scim_path(directory_id: &str) -> String {
    format!("/api/scim/v2.0/{directory_id}")
}

pub fn scim_base_url(external_url: &str, directory_id: &str) -> String {
    format!(
        "{}{}",
        external_url.trim_end_matches('/'),
        scim_path(directory_id)
    )
}
