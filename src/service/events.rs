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

/// Records an event with a sequence the caller already took (a directory's last event,
/// written after its row is gone).
pub fn insert(
    conn: &mut AnyConnection,
    directory: &DirectoryRow,
    sequence: i64,
    event_type: &str,
    data: Value,
) -> Result<EventRow, Error> {
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
    let row = EventRow {
        id,
        directory_id: directory.id.clone(),
        sequence,
        event_type: event_type.to_string(),
        payload: payload.to_string(),
        created_at,
    };
    store::insert(conn, &row)?;
    Ok(row)
}
