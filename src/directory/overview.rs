//! What the operators' dashboard reads (DESIGN.md §8): directories with their counts,
//! pages of users, groups and events by key (as fast at a million users as at ten), and
//! the health of webhook endpoints.

use chrono::NaiveDateTime;

use crate::error::Error;
use crate::ids::EndpointId;
use crate::store::dashboard as store;
use crate::store::deliveries::{DeliveryRow, DELIVERED, FAILED, PENDING};
use crate::store::directories::DirectoryRow;
use crate::store::events::EventRow;
use crate::store::groups::GroupRow;
use crate::store::users::UserRow;
use crate::store::webhooks::EndpointRow;
use crate::store::{now, write_tx, AnyConnection, Page};

/// Users and groups are counted exactly up to this many; beyond, a page says "more than"
/// (the store keeps no running counts, and counting a million rows on every page view
/// would cost more than the page).
pub const COUNT_CAP: i64 = 100_000;

/// A count as pages show it: exact up to `cap`, then "`cap`+".
pub fn shown(n: i64, cap: i64) -> String {
    if n > cap {
        format!("{cap}+")
    } else {
        n.to_string()
    }
}

/// A directory as its table row shows it. `users` and `groups` above [`COUNT_CAP`] mean
/// "more than the cap".
#[derive(Debug, Clone)]
pub struct DirectorySummary {
    pub row: DirectoryRow,
    pub users: i64,
    pub groups: i64,
    pub last_event: Option<NaiveDateTime>,
}

/// A directory's capped counts and the time of its last event.
pub fn summarize(conn: &mut AnyConnection, row: DirectoryRow) -> Result<DirectorySummary, Error> {
    let users = store::count_capped(conn, "users", "directory_id", &row.id, COUNT_CAP)?;
    let groups = store::count_capped(conn, "scim_groups", "directory_id", &row.id, COUNT_CAP)?;
    let last_event = match row.last_event_sequence {
        0 => None,
        n => store::event_time(conn, &row.id, n)?,
    };
    Ok(DirectorySummary {
        row,
        users,
        groups,
        last_event,
    })
}

/// Directories newest first; `q` narrows to a tenant or name containing it.
pub fn directories(
    conn: &mut AnyConnection,
    q: Option<&str>,
    page: Page,
) -> Result<Vec<DirectorySummary>, Error> {
    let rows = store::directories(conn, q, page)?;
    rows.into_iter().map(|r| summarize(conn, r)).collect()
}

/// One directory with its counts (404 when unknown).
pub fn directory(conn: &mut AnyConnection, id: &str) -> Result<DirectorySummary, Error> {
    let row = super::directories::get(conn, id)?;
    summarize(conn, row)
}

/// The directories attached to an organizational unit.
pub fn unit_directories(
    conn: &mut AnyConnection,
    unit_id: &str,
) -> Result<Vec<DirectoryRow>, Error> {
    store::directories_of_unit(conn, unit_id)
}

/// Up to `limit` users after the `userName` `after`; `q` narrows to a userName or
/// primary email starting with it (case-insensitive).
pub fn users(
    conn: &mut AnyConnection,
    directory_id: &str,
    q: Option<&str>,
    after: Option<&str>,
    limit: i64,
) -> Result<Vec<UserRow>, Error> {
    let q = q.map(|q| q.trim().to_lowercase()).filter(|q| !q.is_empty());
    store::users(conn, directory_id, q.as_deref(), after, limit)
}

/// Members are counted exactly up to this many per group; a page shows 50 groups, and
/// an "everyone" group of a million users would otherwise cost a whole index walk.
pub const MEMBER_COUNT_CAP: i64 = 10_000;

/// Up to `limit` groups after the name `after`, each with its member count (above
/// [`MEMBER_COUNT_CAP`]: more than the cap).
pub fn groups(
    conn: &mut AnyConnection,
    directory_id: &str,
    after: Option<&str>,
    limit: i64,
) -> Result<Vec<(GroupRow, i64)>, Error> {
    let rows = store::groups(conn, directory_id, after, limit)?;
    rows.into_iter()
        .map(|g| {
            let n = store::count_capped(conn, "memberships", "group_id", &g.id, MEMBER_COUNT_CAP)?;
            Ok((g, n))
        })
        .collect()
}

/// Up to `limit` events newest first, before the sequence `before`, each with its
/// deliveries.
pub fn events(
    conn: &mut AnyConnection,
    directory_id: &str,
    before: Option<i64>,
    limit: i64,
) -> Result<Vec<(EventRow, Vec<DeliveryRow>)>, Error> {
    let rows = store::events_newest(conn, directory_id, before, limit)?;
    let ids: Vec<String> = rows.iter().map(|e| e.id.clone()).collect();
    let mut deliveries = store::deliveries_of(conn, directory_id, &ids)?;
    deliveries.sort_by_key(|d| d.position);
    Ok(rows
        .into_iter()
        .map(|e| {
            let mine = deliveries
                .iter()
                .filter(|d| d.event_id == e.id)
                .cloned()
                .collect();
            (e, mine)
        })
        .collect())
}

/// A delivery's state in the dashboard's words: `delivered`, `pending` (not tried yet
/// or due), `failed` (an attempt failed, it will be retried) or `dead` (given up).
pub fn delivery_state(d: &DeliveryRow) -> &'static str {
    match d.status.as_str() {
        DELIVERED => "delivered",
        FAILED => "dead",
        _ if d.attempts > 0 => "failed",
        _ => "pending",
    }
}

/// An endpoint with its delivery counts (as [`delivery_state`] names them) and its
/// last error.
#[derive(Debug, Clone)]
pub struct EndpointHealth {
    pub row: EndpointRow,
    pub delivered: i64,
    pub pending: i64,
    pub failed: i64,
    pub dead: i64,
    pub last_error: Option<store::LastError>,
}

pub fn endpoints(
    conn: &mut AnyConnection,
    directory_id: &str,
) -> Result<Vec<EndpointHealth>, Error> {
    let rows = super::webhooks::list(conn, directory_id)?;
    let counts = store::delivery_counts(conn, directory_id)?;
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let mut h = EndpointHealth {
            delivered: 0,
            pending: 0,
            failed: 0,
            dead: 0,
            last_error: store::last_error(conn, &row.id)?,
            row,
        };
        for (endpoint, status, retrying, n) in &counts {
            if *endpoint != h.row.id {
                continue;
            }
            match (status.as_str(), retrying) {
                (DELIVERED, _) => h.delivered += n,
                (FAILED, _) => h.dead += n,
                (PENDING, false) => h.pending += n,
                (PENDING, true) => h.failed += n,
                _ => {}
            }
        }
        // `pending` counted every pending delivery; those already failed are `failed`.
        h.pending -= h.failed;
        out.push(h);
    }
    Ok(out)
}

/// Makes an endpoint's pending deliveries due now (the dashboard's Replay without a
/// time): the delivery workers send them at once instead of at their retry time.
pub fn retry_now(
    conn: &mut AnyConnection,
    directory_id: &str,
    endpoint_id: &EndpointId,
) -> Result<usize, Error> {
    write_tx(conn, |c| {
        super::webhooks::get(c, directory_id, endpoint_id)?;
        let t = now();
        let n = store::make_pending_due(c, endpoint_id.as_str(), t)?;
        crate::store::webhooks::mark_due_now(c, endpoint_id.as_str(), t)?;
        Ok(n)
    })
}

/// Events of directories attached to a unit that provisioning has yet to follow.
pub fn provisioning_backlog(conn: &mut AnyConnection) -> Result<i64, Error> {
    store::provisioning_backlog(conn)
}

/// The dashboard's "Rotate secret" of an endpoint: a new generated secret (the old one
/// signs beside it for the grace period). The primary endpoint's secret is the
/// directory's `webhook_secret`, so it rotates through the directory.
pub fn rotate_endpoint_secret(
    conn: &mut AnyConnection,
    sealer: &crate::secrets::Sealer,
    directory_id: &str,
    endpoint_id: &EndpointId,
    allow_private: bool,
) -> Result<String, Error> {
    let endpoint = super::webhooks::get(conn, directory_id, endpoint_id)?;
    if !endpoint.is_primary {
        return Ok(
            super::webhooks::rotate_secret(conn, sealer, directory_id, endpoint_id, None)?.1,
        );
    }
    let secret = crate::webhooks::signing::generate_secret()?;
    let update = super::directories::DirectoryUpdate {
        webhook_secret: Some(Some(crate::secrets::Secret::new(secret.clone()))),
        ..Default::default()
    };
    super::directories::update(conn, sealer, directory_id, update, allow_private)?;
    Ok(secret)
}
