//! Events (the outbox): each is written in the transaction of the change it records, with
//! the next gapless sequence number of its directory. Payloads are a superset of Jackson's.

use serde_json::{json, Value};

use crate::error::Error;
use crate::store::directories::{self, DirectoryRow};
use crate::store::events::{self as store, EventRow};
use crate::store::{now, AnyConnection};

pub const USER_CREATED: &str = "user.created";
pub const USER_UPDATED: &str = "user.updated";
pub const USER_DELETED: &str = "user.deleted";
pub const GROUP_CREATED: &str = "group.created";
pub const GROUP_UPDATED: &str = "group.updated";
pub const GROUP_DELETED: &str = "group.deleted";
pub const GROUP_USER_ADDED: &str = "group.user_added";
pub const GROUP_USER_REMOVED: &str = "group.user_removed";
pub const DSYNC_CREATED: &str = "dsync.created";
pub const DSYNC_DELETED: &str = "dsync.deleted";
pub const DSYNC_ACTIVATED: &str = "dsync.activated";
pub const DSYNC_DEACTIVATED: &str = "dsync.deactivated";

/// `evt_` + a time-ordered UUIDv7, so ids sort by creation.
pub fn new_event_id() -> String {
    format!("evt_{}", uuid::Uuid::now_v7().simple())
}

/// Records one event of `directory`. Must run inside the change's write transaction.
pub fn record(
    conn: &mut AnyConnection,
    directory: &DirectoryRow,
    event_type: &str,
    data: Value,
) -> Result<EventRow, Error> {
    let sequence = directories::next_event_sequence(conn, &directory.id)?;
    insert(conn, directory, sequence, event_type, data)
}

/// Records several events of `directory` at once, in order: one sequence reservation and
/// multi-row inserts, so a 10 000-member PATCH is a handful of statements.
pub fn record_many(
    conn: &mut AnyConnection,
    directory: &DirectoryRow,
    events: Vec<(&str, Value)>,
) -> Result<(), Error> {
    if events.is_empty() {
        return Ok(());
    }
    let last = directories::reserve_event_sequences(conn, &directory.id, events.len() as i64)?;
    let first = last - events.len() as i64 + 1;
    let rows: Vec<EventRow> = events
        .into_iter()
        .enumerate()
        .map(|(i, (kind, data))| build(directory, first + i as i64, kind, data))
        .collect();
    store::insert_many(conn, &rows)
}

fn build(directory: &DirectoryRow, sequence: i64, event_type: &str, data: Value) -> EventRow {
    let created_at = now();
    let id = new_event_id();
    let payload = json!({
        "id": id,
        "sequence": sequence,
        "created_at": crate::scim::resource::timestamp(created_at),
        "event": event_type,
        "tenant": directory.tenant,
        "product": directory.product,
        "directory_id": directory.id,
        "data": data,
    });
    EventRow {
        id,
        directory_id: directory.id.clone(),
        sequence,
        event_type: event_type.to_string(),
        payload: payload.to_string(),
        created_at,
    }
}

/// Records an event with a sequence the caller already took (a directory's last event,
/// written after its row is gone).
pub fn insert(
    conn: &mut AnyConnection,
    directory: &DirectoryRow,
    sequence: i64,
    event_type: &str,
    data: Value,
) -> Result<EventRow, Error> {
    let row = build(directory, sequence, event_type, data);
    store::insert(conn, &row)?;
    Ok(row)
}
