//! The directory: every state change goes through here, in one write transaction
//! with the event that records it. Functions are synchronous over a connection; the HTTP
//! layer runs them on the blocking pool.

pub mod admin_json;
pub mod bulk;
pub mod directories;
pub mod events;
pub mod groups;
pub mod overview;
pub mod sessions;
pub mod setup_links;
pub mod users;
pub mod webhooks;

use serde_json::Value;

use crate::error::Error;
use crate::scim::filter::{self, Filter};
use crate::store::directories::DirectoryRow;
use crate::store::Page;

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

/// Directories, users and groups have UUID ids: a path segment that is not one names
/// nothing, and is answered without a query (a NUL byte would even fail one).
pub fn is_resource_id(id: &str) -> bool {
    id.len() == 36 && uuid::Uuid::try_parse(id).is_ok()
}

/// A user or group id from a request: one that is not a UUID is answered 404 at once.
pub(crate) fn known_id(id: &str, what: &str) -> Result<(), Error> {
    if is_resource_id(id) {
        Ok(())
    } else {
        Err(crate::scim::ScimError::not_found(format!("no {what} with that id")).into())
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

/// A page that SQL answers alone: the rows, and the total — counted only when the page
/// does not show it (a first page that is not full is the whole result).
pub(crate) fn indexed_page<R>(
    conn: &mut crate::store::AnyConnection,
    page: Page,
    select: impl FnOnce(&mut crate::store::AnyConnection, Page) -> Result<Vec<R>, Error>,
    count: impl FnOnce(&mut crate::store::AnyConnection) -> Result<i64, Error>,
) -> Result<(Vec<R>, i64), Error> {
    let rows = if page.limit > 0 {
        select(conn, page)?
    } else {
        Vec::new()
    };
    let total = if page.offset == 0 && (rows.len() as i64) < page.limit {
        rows.len() as i64
    } else {
        count(conn)?
    };
    Ok((rows, total))
}

/// On SQLite, where one writer at a time serves every tenant, the pure part of a write
/// (applying a PATCH to the stored state) runs before the write lock, from a plain read;
/// inside the transaction [`current`] reuses it if the resource has not changed since.
/// PostgreSQL locks only the resource's row, so there the work stays inside (one read
/// fewer). Returns the version read and the result computed from it.
pub(crate) fn before_write_lock<R, P>(
    conn: &mut crate::store::AnyConnection,
    read: impl FnOnce(&mut crate::store::AnyConnection) -> Result<Option<R>, Error>,
    version: impl FnOnce(&R) -> i64,
    prepare: impl FnOnce(&R) -> Result<P, Error>,
) -> Result<Option<(i64, P)>, Error> {
    if conn.backend() != crate::store::Backend::Sqlite {
        return Ok(None);
    }
    match read(conn)? {
        Some(row) => Ok(Some((version(&row), prepare(&row)?))),
        None => Ok(None),
    }
}

/// The result prepared by [`before_write_lock`] if it was computed from `version`, else
/// computed now.
pub(crate) fn current<P>(
    early: Option<(i64, P)>,
    version: i64,
    compute: impl FnOnce() -> Result<P, Error>,
) -> Result<P, Error> {
    match early {
        Some((v, prepared)) if v == version => Ok(prepared),
        _ => compute(),
    }
}

/// Rows fetched per batch when a listing is evaluated in Rust.
const SCAN_BATCH: i64 = 500;

/// A listing that SQL alone cannot answer: candidates are fetched in batches (in SQL
/// order), kept when `residual` matches their rendering, and — for a `sortBy` no column
/// answers — sorted in memory. Returns the page and the true total.
pub(crate) fn scan<T>(
    mut fetch: impl FnMut(Page) -> Result<Vec<T>, Error>,
    render: impl Fn(&T) -> Value,
    residual: Option<&Filter>,
    sort: Option<(&str, bool)>,
    page: Page,
) -> Result<(Vec<T>, i64), Error> {
    let (mut kept, mut keyed, mut total, mut offset) = (Vec::new(), Vec::new(), 0i64, 0i64);
    loop {
        let batch = fetch(Page {
            offset,
            limit: SCAN_BATCH,
        })?;
        let n = batch.len() as i64;
        for item in batch {
            let rendered = render(&item);
            if residual.is_some_and(|f| !filter::matches(f, &rendered)) {
                continue;
            }
            match sort {
                Some((by, _)) => keyed.push((filter::sort_key(&rendered, by), item)),
                None if total >= page.offset && (kept.len() as i64) < page.limit => kept.push(item),
                None => {}
            }
            total += 1;
        }
        if n < SCAN_BATCH {
            break;
        }
        offset += SCAN_BATCH;
    }
    if let Some((_, descending)) = sort {
        // Resources without a value sort last either way (RFC 7644 §3.4.2.3).
        keyed.sort_by(|(a, _), (b, _)| match (a, b) {
            (Some(a), Some(b)) if descending => b.compare(a),
            (Some(a), Some(b)) => a.compare(b),
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (None, None) => std::cmp::Ordering::Equal,
        });
        kept = keyed
            .into_iter()
            .skip(page.offset as usize)
            .take(page.limit as usize)
            .map(|(_, item)| item)
            .collect();
    }
    Ok((kept, total))
}
