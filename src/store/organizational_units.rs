//! Organizational units and their conferencing profiles (DESIGN.md §6.4–6.5).

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::conferencing_profiles::{self, dsl as p};
use super::schema::organizational_units::{self, dsl as u};
use super::schema::service_accounts::{self, dsl as s};
use super::service_accounts::{ServiceAccountRow, ACTIVE, CALENDARS, CONFERENCING};
use super::AnyConnection;
use crate::error::Error;

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = organizational_units)]
pub struct UnitRow {
    pub id: String,
    pub application_id: String,
    pub created_at: NaiveDateTime,
}

pub fn insert(conn: &mut AnyConnection, row: &UnitRow) -> Result<(), Error> {
    diesel::insert_into(organizational_units::table)
        .values(row)
        .execute(conn)?;
    Ok(())
}

pub fn get(conn: &mut AnyConnection, id: &str) -> Result<Option<UnitRow>, Error> {
    Ok(organizational_units::table
        .find(id)
        .select(UnitRow::as_select())
        .first(conn)
        .optional()?)
}

pub fn list(conn: &mut AnyConnection) -> Result<Vec<UnitRow>, Error> {
    Ok(organizational_units::table
        .order((u::created_at.asc(), u::id.asc()))
        .select(UnitRow::as_select())
        .load(conn)?)
}

/// A unit's active service accounts: calendars in link order, then conferencing ones
/// by provider.
pub fn members(conn: &mut AnyConnection, unit_id: &str) -> Result<Vec<ServiceAccountRow>, Error> {
    let mut rows: Vec<ServiceAccountRow> = service_accounts::table
        .filter(s::organizational_unit_id.eq(unit_id))
        .filter(s::state.eq(ACTIVE))
        .select(ServiceAccountRow::as_select())
        .load(conn)?;
    // Calendars by link position (fall-through order), conferencing by provider.
    let key = |r: &ServiceAccountRow| {
        let calendars = r.capability == CALENDARS;
        (
            !calendars,
            if calendars { r.link_position } else { None },
            r.provider.clone(),
            r.id.clone(),
        )
    };
    rows.sort_by_key(key);
    Ok(rows)
}

/// Puts a service account into a unit, last among its calendar accounts.
pub fn join(
    conn: &mut AnyConnection,
    service_account_id: &str,
    unit_id: &str,
) -> Result<(), Error> {
    let last: Option<i64> = service_accounts::table
        .filter(s::organizational_unit_id.eq(unit_id))
        .select(diesel::dsl::max(s::link_position))
        .first(conn)?;
    diesel::update(service_accounts::table.find(service_account_id))
        .set((
            s::organizational_unit_id.eq(Some(unit_id)),
            s::link_position.eq(Some(last.unwrap_or(0) + 1)),
        ))
        .execute(conn)?;
    Ok(())
}

/// Takes a service account out of its unit.
pub fn leave(conn: &mut AnyConnection, service_account_id: &str) -> Result<(), Error> {
    diesel::update(service_accounts::table.find(service_account_id))
        .set((
            s::organizational_unit_id.eq(None::<String>),
            s::link_position.eq(None::<i64>),
        ))
        .execute(conn)?;
    Ok(())
}

/// A unit's conferencing accounts (by provider).
pub fn conferencing_members(
    conn: &mut AnyConnection,
    unit_id: &str,
) -> Result<Vec<ServiceAccountRow>, Error> {
    Ok(members(conn, unit_id)?
        .into_iter()
        .filter(|r| r.capability == CONFERENCING)
        .collect())
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = conferencing_profiles)]
pub struct ProfileRow {
    pub id: String,
    pub account_id: String,
    pub service_account_id: String,
    pub provider: String,
    pub profile_name: String,
    pub provider_user_id: Option<String>,
    pub state: String,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

/// Adds (or makes active again) the profile of `account_id` at a conferencing account.
pub fn upsert_profile(conn: &mut AnyConnection, row: &ProfileRow) -> Result<(), Error> {
    let n = diesel::update(
        conferencing_profiles::table
            .filter(p::account_id.eq(&row.account_id))
            .filter(p::service_account_id.eq(&row.service_account_id)),
    )
    .set((
        p::state.eq(&row.state),
        p::profile_name.eq(&row.profile_name),
        p::provider_user_id.eq(&row.provider_user_id),
        p::updated_at.eq(row.updated_at),
    ))
    .execute(conn)?;
    if n == 0 {
        diesel::insert_into(conferencing_profiles::table)
            .values(row)
            .execute(conn)?;
    }
    Ok(())
}

pub fn profiles_of(conn: &mut AnyConnection, account_id: &str) -> Result<Vec<ProfileRow>, Error> {
    Ok(conferencing_profiles::table
        .filter(p::account_id.eq(account_id))
        .order((p::provider.asc(), p::id.asc()))
        .select(ProfileRow::as_select())
        .load(conn)?)
}

/// Marks the profiles an account no longer has (its email unknown there now) revoked.
pub fn revoke_profiles(
    conn: &mut AnyConnection,
    account_id: &str,
    keep: &[String],
    now: NaiveDateTime,
) -> Result<(), Error> {
    diesel::update(
        conferencing_profiles::table
            .filter(p::account_id.eq(account_id))
            .filter(p::service_account_id.ne_all(keep)),
    )
    .set((p::state.eq("revoked"), p::updated_at.eq(now)))
    .execute(conn)?;
    Ok(())
}

/// Revokes every profile served by a conferencing account (unlinked or revoked).
pub fn revoke_profiles_of_service_account(
    conn: &mut AnyConnection,
    service_account_id: &str,
    now: NaiveDateTime,
) -> Result<(), Error> {
    diesel::update(
        conferencing_profiles::table.filter(p::service_account_id.eq(service_account_id)),
    )
    .set((p::state.eq("revoked"), p::updated_at.eq(now)))
    .execute(conn)?;
    Ok(())
}
