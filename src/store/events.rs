//! The event stream (the outbox): rows written in the transaction of the change they
//! record, numbered per directory after commit ([`sequence_pending`]) without gaps.
//!
//! Following a directory: every consumer keeps its own cursor, the last `sequence` it has
//! handled, and reads [`list_after`] that cursor — in order, each event once, whatever
//! else reads the stream. Webhook fan-out is one such consumer (its cursor is the
//! directory's sequence at numbering time, so it runs in the numbering transaction); a
//! feature that follows directories (e.g. provisioning) stores its cursor per directory
//! and advances it in the transaction that records what it did.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::events;
use super::schema::events::dsl as e;
use super::{AnyConnection, Backend, Rows, SqlValue};
use crate::error::Error;

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = events)]
pub struct EventRow {
    pub id: String,
    pub directory_id: String,
    /// `None` until the sequencer numbers it (see [`sequence_pending`]).
    pub sequence: Option<i64>,
    pub event_type: String,
    /// The event without its `sequence`, which is added when it is read.
    pub payload: String,
    pub created_at: NaiveDateTime,
}

impl EventRow {
    /// The event as receivers and the API see it: the stored payload with its `sequence`
    /// after its `id`.
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value;
        let stored: Value = serde_json::from_str(&self.payload).unwrap_or(Value::Null);
        let mut out = serde_json::Map::new();
        if let Value::Object(fields) = stored {
            for (k, v) in fields {
                if k == "sequence" {
                    continue;
                }
                out.insert(k.clone(), v);
                if k == "id" {
                    out.insert("sequence".into(), serde_json::json!(self.sequence));
                }
            }
        }
        Value::Object(out)
    }
}

/// What one numbering did: `count` events numbered after `after`, the directory's last
/// sequence before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Numbered {
    pub after: i64,
    pub count: usize,
}

pub const COLUMNS: &[&str] = &[
    "id",
    "directory_id",
    "sequence",
    "event_type",
    "payload",
    "created_at",
];

pub fn values(r: &EventRow) -> Vec<SqlValue> {
    vec![
        SqlValue::Text(r.id.clone()),
        SqlValue::Text(r.directory_id.clone()),
        SqlValue::OptBigInt(r.sequence),
        SqlValue::Text(r.event_type.clone()),
        SqlValue::Text(r.payload.clone()),
        SqlValue::Timestamp(r.created_at),
    ]
}

pub fn insert(conn: &mut AnyConnection, row: &EventRow) -> Result<(), Error> {
    insert_many(conn, std::slice::from_ref(row))
}

pub fn insert_many(conn: &mut AnyConnection, rows: &[EventRow]) -> Result<(), Error> {
    let set = event_rows(rows);
    super::bulk_insert(conn, set.table, set.columns, &set.rows)?;
    Ok(())
}

/// Events as rows for [`super::insert_atomically`].
pub fn event_rows(rows: &[EventRow]) -> Rows {
    Rows {
        table: "events",
        columns: COLUMNS,
        rows: rows.iter().map(values).collect(),
    }
}

/// Whether a directory has committed events not numbered yet.
pub fn has_pending(conn: &mut AnyConnection, directory_id: &str) -> Result<bool, Error> {
    Ok(events::table
        .filter(e::directory_id.eq(directory_id))
        .filter(e::sequence.is_null())
        .select(e::id)
        .first::<String>(conn)
        .optional()?
        .is_some())
}

/// Directories with events waiting for a sequence number.
pub fn pending_directories(conn: &mut AnyConnection, limit: i64) -> Result<Vec<String>, Error> {
    Ok(events::table
        .filter(e::sequence.is_null())
        .select(e::directory_id)
        .distinct()
        .limit(limit)
        .load(conn)?)
}

#[derive(QueryableByName)]
struct Locked {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    last_event_sequence: i64,
}

/// Numbers a directory's committed, unnumbered events in insertion order, continuing its
/// sequence without gaps. Must run inside a write transaction: the directory row is locked
/// first, so concurrent sequencers (several instances) take turns.
pub fn sequence_pending(conn: &mut AnyConnection, directory_id: &str) -> Result<Numbered, Error> {
    use diesel::sql_types::{BigInt, Text};
    let postgres = conn.backend() == Backend::Postgres;
    // The lock is a statement of its own: the numbering must start from a snapshot taken
    // after it, or events another sequencer numbered meanwhile would still look unnumbered
    // to this one and leave a gap in the sequence.
    let lock = if postgres {
        "SELECT last_event_sequence FROM directories WHERE id = $1 FOR UPDATE"
    } else {
        // BEGIN IMMEDIATE already holds the write lock.
        "SELECT last_event_sequence FROM directories WHERE id = ?"
    };
    let locked: Option<Locked> = diesel::sql_query(lock)
        .bind::<Text, _>(directory_id)
        .get_result(conn)
        .optional()?;
    let Some(locked) = locked else {
        return Ok(Numbered { after: 0, count: 0 });
    };
    let count = if postgres {
        // Numbering and advancing the directory's sequence in one statement.
        let done: Option<Count> = diesel::sql_query(
            "WITH p AS (SELECT id, row_number() OVER (ORDER BY ordinal) AS rn FROM events \
                        WHERE directory_id = $2 AND sequence IS NULL), \
                  n AS (UPDATE events SET sequence = $1 + p.rn FROM p \
                        WHERE events.id = p.id AND events.sequence IS NULL RETURNING 1) \
             UPDATE directories SET last_event_sequence = last_event_sequence + (SELECT count(*) FROM n) \
             WHERE id = $2 AND EXISTS (SELECT 1 FROM n) \
             RETURNING (SELECT count(*) FROM n) AS count",
        )
        .bind::<BigInt, _>(locked.last_event_sequence)
        .bind::<Text, _>(directory_id)
        .get_result(conn)
        .optional()?;
        done.map_or(0, |d| d.count as usize)
    } else {
        // rowid is insertion order.
        let n = diesel::sql_query(
            "UPDATE events SET sequence = ? + p.rn \
             FROM (SELECT id, row_number() OVER (ORDER BY rowid) AS rn FROM events \
                   WHERE directory_id = ? AND sequence IS NULL) AS p \
             WHERE events.id = p.id AND events.sequence IS NULL",
        )
        .bind::<BigInt, _>(locked.last_event_sequence)
        .bind::<Text, _>(directory_id)
        .execute(conn)?;
        if n > 0 {
            super::directories::advance_event_sequence(conn, directory_id, n as i64)?;
        }
        n
    };
    Ok(Numbered {
        after: locked.last_event_sequence,
        count,
    })
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    count: i64,
}

/// Every numbered event of a directory after `after_sequence`, in order.
pub fn all_after(
    conn: &mut AnyConnection,
    directory_id: &str,
    after_sequence: i64,
) -> Result<Vec<EventRow>, Error> {
    Ok(events::table
        .filter(e::directory_id.eq(directory_id))
        .filter(e::sequence.gt(after_sequence))
        .order(e::sequence.asc())
        .select(EventRow::as_select())
        .load(conn)?)
}

/// A directory's numbered events after `after_sequence`, in order.
pub fn list_after(
    conn: &mut AnyConnection,
    directory_id: &str,
    after_sequence: i64,
    limit: i64,
) -> Result<Vec<EventRow>, Error> {
    Ok(events::table
        .filter(e::directory_id.eq(directory_id))
        .filter(e::sequence.gt(after_sequence))
        .order(e::sequence.asc())
        .limit(limit)
        .select(EventRow::as_select())
        .load(conn)?)
}

pub fn get(
    conn: &mut AnyConnection,
    directory_id: &str,
    id: &str,
) -> Result<Option<EventRow>, Error> {
    Ok(events::table
        .filter(e::directory_id.eq(directory_id))
        .filter(e::id.eq(id))
        .filter(e::sequence.is_not_null())
        .select(EventRow::as_select())
        .first(conn)
        .optional()?)
}
