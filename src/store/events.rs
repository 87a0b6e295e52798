use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::events;
use super::schema::events::dsl as e;
use super::{AnyConnection, SqlValue};
use crate::error::Error;

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = events)]
pub struct EventRow {
    pub id: String,
    pub directory_id: String,
    pub sequence: i64,
    pub event_type: String,
    pub payload: String,
    pub created_at: NaiveDateTime,
}

pub fn insert(conn: &mut AnyConnection, row: &EventRow) -> Result<(), Error> {
    diesel::insert_into(events::table)
        .values(row)
        .execute(conn)?;
    Ok(())
}

pub fn insert_many(conn: &mut AnyConnection, rows: &[EventRow]) -> Result<(), Error> {
    let values: Vec<Vec<SqlValue>> = rows
        .iter()
        .map(|r| {
            vec![
                SqlValue::Text(r.id.clone()),
                SqlValue::Text(r.directory_id.clone()),
                SqlValue::BigInt(r.sequence),
                SqlValue::Text(r.event_type.clone()),
                SqlValue::Text(r.payload.clone()),
                SqlValue::Timestamp(r.created_at),
            ]
        })
        .collect();
    super::bulk_insert(
        conn,
        "events",
        &[
            "id",
            "directory_id",
            "sequence",
            "event_type",
            "payload",
            "created_at",
        ],
        &values,
    )?;
    Ok(())
}

/// A directory's events after `after_sequence`, in order.
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
        .select(EventRow::as_select())
        .first(conn)
        .optional()?)
}
