//! Operators' dashboard sessions, by the digest of the cookie's token (DESIGN.md §8).

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::dashboard_sessions::{self, dsl as s};
use super::AnyConnection;
use crate::error::Error;

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = dashboard_sessions)]
pub struct SessionRow {
    pub token_digest: String,
    pub created_at: NaiveDateTime,
    pub expires_at: NaiveDateTime,
    pub ended_at: Option<NaiveDateTime>,
}

pub fn insert(conn: &mut AnyConnection, row: &SessionRow) -> Result<(), Error> {
    diesel::insert_into(dashboard_sessions::table)
        .values(row)
        .execute(conn)?;
    Ok(())
}

/// A session neither ended nor expired at `now`.
pub fn live(
    conn: &mut AnyConnection,
    digest: &str,
    now: NaiveDateTime,
) -> Result<Option<SessionRow>, Error> {
    Ok(dashboard_sessions::table
        .find(digest)
        .filter(s::ended_at.is_null())
        .filter(s::expires_at.gt(now))
        .select(SessionRow::as_select())
        .first(conn)
        .optional()?)
}

pub fn end(conn: &mut AnyConnection, digest: &str, now: NaiveDateTime) -> Result<(), Error> {
    diesel::update(dashboard_sessions::table.find(digest))
        .set(s::ended_at.eq(Some(now)))
        .execute(conn)?;
    Ok(())
}

/// Forgets sessions that expired before `before` (run at sign-in, not on a timer: an
/// idle gateway queries nothing).
pub fn prune(conn: &mut AnyConnection, before: NaiveDateTime) -> Result<usize, Error> {
    Ok(diesel::delete(dashboard_sessions::table.filter(s::expires_at.lt(before))).execute(conn)?)
}
