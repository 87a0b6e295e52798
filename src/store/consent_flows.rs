//! Consents in progress (the pages between `/oauth/authorize` and the redirect back).

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::consent_flows::{self, dsl as f};
use super::AnyConnection;
use crate::error::Error;

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = consent_flows)]
pub struct FlowRow {
    pub id: String,
    pub csrf_digest: String,
    pub application_id: String,
    pub params: String,
    pub expires_at: NaiveDateTime,
    pub used_at: Option<NaiveDateTime>,
    pub failures: i64,
}

pub fn insert(conn: &mut AnyConnection, row: &FlowRow) -> Result<(), Error> {
    diesel::insert_into(consent_flows::table)
        .values(row)
        .execute(conn)?;
    Ok(())
}

pub fn get(conn: &mut AnyConnection, id: &str) -> Result<Option<FlowRow>, Error> {
    Ok(consent_flows::table
        .find(id)
        .select(FlowRow::as_select())
        .first(conn)
        .optional()?)
}

pub fn set_params(conn: &mut AnyConnection, id: &str, params: &str) -> Result<(), Error> {
    diesel::update(consent_flows::table.find(id))
        .set(f::params.eq(params))
        .execute(conn)?;
    Ok(())
}

/// Ends a flow; false when it had already ended (a form submitted twice).
pub fn finish(conn: &mut AnyConnection, id: &str, now: NaiveDateTime) -> Result<bool, Error> {
    let n = diesel::update(consent_flows::table.find(id).filter(f::used_at.is_null()))
        .set(f::used_at.eq(Some(now)))
        .execute(conn)?;
    Ok(n == 1)
}

/// Counts a failed proof; returns the failures so far.
pub fn fail(conn: &mut AnyConnection, id: &str) -> Result<i64, Error> {
    diesel::update(consent_flows::table.find(id))
        .set(f::failures.eq(f::failures + 1))
        .execute(conn)?;
    Ok(consent_flows::table
        .find(id)
        .select(f::failures)
        .first(conn)?)
}

pub fn prune(conn: &mut AnyConnection, before: NaiveDateTime) -> Result<usize, Error> {
    Ok(diesel::delete(consent_flows::table.filter(f::expires_at.lt(before))).execute(conn)?)
}
