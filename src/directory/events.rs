//! Events (the outbox): each is written in the transaction of the change it records, with
//! the next gapless sequence number of its directory. Payloads are a superset of Jackson's.

use serde_json::Value;

use crate::error::Error;
use crate::ids::EventId;
use crate::store::directories::DirectoryRow;
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
pub const ACCOUNT_PROVISIONED: &str = "account.provisioned";
pub const ACCOUNT_PROVISIONING_FAILED: &str = "account.provisioning_failed";
pub const ACCOUNT_SUSPENDED: &str = "account.suspended";
pub const ACCOUNT_REVOKED: &str = "account.revoked";
pub const CONFERENCING_PROFILE_PROVISIONED: &str = "conferencing_profile.provisioned";
pub const CONFERENCING_PROFILE_REVOKED: &str = "conferencing_profile.revoked";

/// Every event type, for validating endpoint subscriptions (DESIGN.md §5). The
/// provisioning types are emitted by organizational-unit provisioning.
pub const ALL_TYPES: &[&str] = &[
    USER_CREATED,
    USER_UPDATED,
    USER_DELETED,
    GROUP_CREATED,
    GROUP_UPDATED,
    GROUP_DELETED,
    GROUP_USER_ADDED,
    GROUP_USER_REMOVED,
    DSYNC_CREATED,
    DSYNC_DELETED,
    DSYNC_ACTIVATED,
    DSYNC_DEACTIVATED,
    ACCOUNT_PROVISIONED,
    ACCOUNT_PROVISIONING_FAILED,
    ACCOUNT_SUSPENDED,
    ACCOUNT_REVOKED,
    CONFERENCING_PROFILE_PROVISIONED,
    CONFERENCING_PROFILE_REVOKED,
];

/// `evt_` + a time-ordered UUIDv7, so ids sort by creation.
pub fn new_event_id() -> String {
    crate::ids::EventId::generate().into_string()
}

/// Records one event of `directory`, unnumbered: the sequencer gives it the next
/// sequence number once committed. Must run inside the change's write transaction.
pub fn record(
    conn: &mut AnyConnection,
    directory: &DirectoryRow,
    event_type: &str,
    data: Value,
) -> Result<EventRow, Error> {
    let row = build(directory, None, event_type, data);
    store::insert(conn, &row)?;
    crate::faults::write_point(&directory.id);
    Ok(row)
}

/// Records several events of `directory` at once, in order, in multi-row inserts, so a
/// 10 000-member PATCH is a handful of statements. Each event's `data` comes as JSON text.
pub fn record_many(
    conn: &mut AnyConnection,
    directory: &DirectoryRow,
    events: Vec<(&str, String)>,
) -> Result<(), Error> {
    let rows: Vec<EventRow> = events
        .into_iter()
        .map(|(kind, data)| build_from_json(directory, None, kind, &data))
        .collect();
    store::insert_many(conn, &rows)
}

/// An event row. The stored payload leaves `sequence` out: it is known only once the
/// sequencer has run, and [`to_json`] adds it.
pub fn build(
    directory: &DirectoryRow,
    sequence: Option<i64>,
    event_type: &str,
    data: Value,
) -> EventRow {
    build_from_json(directory, sequence, event_type, &data.to_string())
}

/// As [`build`], with `data` already serialised: the payload is written as text, without
/// building a JSON tree per event (thousands at a time for big groups).
fn build_from_json(
    directory: &DirectoryRow,
    sequence: Option<i64>,
    event_type: &str,
    data: &str,
) -> EventRow {
    let created_at = now();
    let id = new_event_id();
    let text = |s: &str| Value::String(s.to_string()).to_string();
    let payload = format!(
        r#"{{"id":{},"created_at":{},"event":{},"tenant":{},"product":{},"directory_id":{},"data":{}}}"#,
        text(&id),
        text(&crate::scim::resource::timestamp(created_at)),
        text(event_type),
        text(&directory.tenant),
        text(&directory.product),
        text(&directory.id),
        data,
    );
    EventRow {
        id,
        directory_id: directory.id.clone(),
        sequence,
        event_type: event_type.to_string(),
        payload,
        created_at,
    }
}

/// `{…user…}` with `"group": {…}` added, as JSON text.
pub fn with_group(user: &Value, group_json: &str) -> String {
    let mut s = user.to_string();
    if s.ends_with('}') && s.len() > 1 {
        s.pop();
        s.push_str(r#","group":"#);
        s.push_str(group_json);
        s.push('}');
    }
    s
}

/// Records an event with a sequence the caller took under the directory's lock (a
/// directory's last event, written after its row is gone).
pub fn insert_numbered(
    conn: &mut AnyConnection,
    directory: &DirectoryRow,
    sequence: i64,
    event_type: &str,
    data: Value,
) -> Result<EventRow, Error> {
    let row = build(directory, Some(sequence), event_type, data);
    store::insert(conn, &row)?;
    Ok(row)
}

/// Numbers a directory's committed events (its own write transaction); cheap when there
/// is nothing to number. Returns the deliveries queued.
pub fn sequence(conn: &mut AnyConnection, directory_id: &str) -> Result<usize, Error> {
    if !store::has_pending(conn, directory_id)? {
        return Ok(0);
    }
    crate::store::write_tx(conn, |c| number_pending(c, directory_id)).map(|n| n.queued)
}

/// What numbering a directory did.
#[derive(Debug, Clone, Copy, Default)]
pub struct Sequenced {
    pub numbered: usize,
    /// Deliveries queued for the numbered events: the dispatcher has work only if > 0.
    pub queued: usize,
}

/// Inside a write transaction: numbers the directory's committed events and queues them
/// for its webhook endpoints, in the same transaction so each is queued exactly once.
pub fn number_pending(conn: &mut AnyConnection, directory_id: &str) -> Result<Sequenced, Error> {
    let numbered = store::sequence_pending(conn, directory_id)?;
    let queued = if numbered.count > 0 {
        crate::webhooks::fanout::fan_out(conn, directory_id, numbered.after)?
    } else {
        0
    };
    if queued > 0 {
        // Other instances' dispatchers may hold these endpoints: wake them (on commit).
        crate::store::notify::notify(conn, crate::store::notify::DELIVERIES)?;
    }
    Ok(Sequenced {
        numbered: numbered.count,
        queued,
    })
}

/// Numbers the committed events of `directories` (those a write of this instance just
/// touched), without first asking which have any. Returns the deliveries queued.
pub fn sequence_these(conn: &mut AnyConnection, directories: &[String]) -> Result<usize, Error> {
    let mut queued = 0;
    for dir in directories {
        queued += crate::store::write_tx(conn, |c| number_pending(c, dir))?.queued;
    }
    Ok(queued)
}

/// Numbers the committed events of every directory that has some (any instance's).
/// Returns the deliveries queued.
pub fn sequence_all(conn: &mut AnyConnection) -> Result<usize, Error> {
    const BATCH: i64 = 1000;
    let mut queued = 0;
    // Numbered directories drop out of the next look; the bound keeps one pass finite
    // even if some could not be numbered (their events wait for the next pass).
    for _ in 0..10 {
        let pending = store::pending_directories(conn, BATCH)?;
        queued += sequence_these(conn, &pending)?;
        if (pending.len() as i64) < BATCH {
            break;
        }
    }
    Ok(queued)
}

/// An event of a directory by id, numbered first (the admin API's event view).
pub fn get(conn: &mut AnyConnection, directory_id: &str, id: &EventId) -> Result<EventRow, Error> {
    super::directories::get(conn, directory_id)?;
    sequence(conn, directory_id)?;
    store::get(conn, directory_id, id.as_str())?
        .ok_or_else(|| crate::error::Rejected::not_found("Event not found").into())
}

/// A directory's events after sequence `after`, in order (committed ones numbered first).
/// Other features follow a directory this way, each with a cursor of its own.
pub fn after(
    conn: &mut AnyConnection,
    directory_id: &str,
    after: i64,
    limit: i64,
) -> Result<Vec<EventRow>, Error> {
    super::directories::get(conn, directory_id)?;
    sequence(conn, directory_id)?;
    store::list_after(conn, directory_id, after, limit)
}

/// An event's deliveries and delivery attempts, for the admin API.
pub fn deliveries_of(
    conn: &mut AnyConnection,
    event_id: &EventId,
) -> Result<
    (
        Vec<crate::store::deliveries::DeliveryRow>,
        Vec<crate::store::deliveries::AttemptRow>,
    ),
    Error,
> {
    Ok((
        crate::store::deliveries::for_event(conn, event_id.as_str())?,
        crate::store::deliveries::attempts_for_event(conn, event_id.as_str())?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn directory() -> DirectoryRow {
        let t = now();
        DirectoryRow {
            id: "d\"1".into(),
            name: "n".into(),
            tenant: "acme \"corp\"\n".into(),
            product: "crm\\".into(),
            provider_type: "generic-scim-v2".into(),
            scim_secret_hash: String::new(),
            previous_secret_hash: None,
            previous_secret_expires_at: None,
            webhook_url: None,
            webhook_secret: None,
            log_webhook_events: false,
            deactivated: false,
            user_limit: None,
            organizational_unit_id: None,
            last_event_sequence: 0,
            created_at: t,
            updated_at: t,
        }
    }

    #[test]
    fn payload_text_is_valid_json_and_sequence_is_added_on_read() {
        let user = json!({"id": "u", "email": "a\"b@x.com"});
        let data = with_group(&user, &json!({"id": "g", "name": "Eng"}).to_string());
        let mut row = build_from_json(&directory(), None, GROUP_USER_ADDED, &data);
        let stored: Value = serde_json::from_str(&row.payload).expect("valid JSON");
        assert_eq!(stored["tenant"], "acme \"corp\"\n");
        assert_eq!(stored["data"]["email"], "a\"b@x.com");
        assert_eq!(stored["data"]["group"]["name"], "Eng");
        assert!(stored.get("sequence").is_none());
        row.sequence = Some(7);
        let read = row.to_json();
        let keys: Vec<&String> = read.as_object().unwrap().keys().collect();
        assert_eq!(keys[..2], ["id", "sequence"]);
        assert_eq!(read["sequence"], 7);
    }
}
