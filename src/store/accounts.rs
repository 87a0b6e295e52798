//! Accounts: one per email per application, provisioned through a service account
//! (DESIGN.md §6.5).

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::accounts::{self, dsl as a};
use super::AnyConnection;
use crate::error::Error;

pub const ACTIVE: &str = "active";
pub const SUSPENDED: &str = "suspended";
pub const REVOKED: &str = "revoked";
/// No calendar account of its unit knows its email any more (after an unlink).
pub const NOT_FOUND: &str = "not_found";

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = accounts)]
pub struct AccountRow {
    pub id: String,
    pub application_id: String,
    pub email: String,
    pub service_account_id: String,
    pub provider: String,
    pub profile_id: String,
    pub profile_name: String,
    pub provider_user_id: Option<String>,
    pub scope: String,
    pub state: String,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

pub fn get(conn: &mut AnyConnection, id: &str) -> Result<Option<AccountRow>, Error> {
    Ok(accounts::table
        .find(id)
        .select(AccountRow::as_select())
        .first(conn)
        .optional()?)
}

pub fn by_email(
    conn: &mut AnyConnection,
    application_id: &str,
    email: &str,
) -> Result<Option<AccountRow>, Error> {
    Ok(accounts::table
        .filter(a::application_id.eq(application_id))
        .filter(a::email.eq(email))
        .select(AccountRow::as_select())
        .first(conn)
        .optional()?)
}

pub fn insert(conn: &mut AnyConnection, row: &AccountRow) -> Result<(), Error> {
    diesel::insert_into(accounts::table)
        .values(row)
        .execute(conn)?;
    Ok(())
}

/// Points an existing account at the service account that knows its email now, active.
pub fn relink(
    conn: &mut AnyConnection,
    id: &str,
    service_account_id: &str,
    provider: &str,
    provider_user_id: Option<&str>,
    scope: &str,
    now: NaiveDateTime,
) -> Result<(), Error> {
    diesel::update(accounts::table.find(id))
        .set((
            a::service_account_id.eq(service_account_id),
            a::provider.eq(provider),
            a::provider_user_id.eq(provider_user_id),
            a::scope.eq(scope),
            a::state.eq(ACTIVE),
            a::updated_at.eq(now),
        ))
        .execute(conn)?;
    Ok(())
}

/// Accounts provisioned through a service account.
pub fn ids_of_service_account(
    conn: &mut AnyConnection,
    service_account_id: &str,
) -> Result<Vec<String>, Error> {
    Ok(accounts::table
        .filter(a::service_account_id.eq(service_account_id))
        .filter(a::state.ne(REVOKED))
        .select(a::id)
        .load(conn)?)
}

pub fn list_of_service_account(
    conn: &mut AnyConnection,
    service_account_id: &str,
) -> Result<Vec<AccountRow>, Error> {
    Ok(accounts::table
        .filter(a::service_account_id.eq(service_account_id))
        .order((a::created_at.asc(), a::id.asc()))
        .select(AccountRow::as_select())
        .load(conn)?)
}

pub fn ids_of_application(
    conn: &mut AnyConnection,
    application_id: &str,
) -> Result<Vec<String>, Error> {
    Ok(accounts::table
        .filter(a::application_id.eq(application_id))
        .filter(a::state.ne(REVOKED))
        .select(a::id)
        .load(conn)?)
}

pub fn set_state(
    conn: &mut AnyConnection,
    ids: &[String],
    state: &str,
    now: NaiveDateTime,
) -> Result<usize, Error> {
    let mut n = 0;
    for chunk in ids.chunks(1000) {
        n += diesel::update(accounts::table.filter(a::id.eq_any(chunk)))
            .set((a::state.eq(state), a::updated_at.eq(now)))
            .execute(conn)?;
    }
    Ok(n)
}

/// Accounts served by any of `service_accounts`, optionally one email, oldest first.
pub fn list_of_service_accounts(
    conn: &mut AnyConnection,
    service_accounts: &[String],
    email: Option<&str>,
) -> Result<Vec<AccountRow>, Error> {
    let mut q = accounts::table
        .filter(a::service_account_id.eq_any(service_accounts))
        .into_boxed();
    if let Some(e) = email {
        q = q.filter(a::email.eq(e.to_lowercase()));
    }
    Ok(q.order((a::created_at.asc(), a::id.asc()))
        .select(AccountRow::as_select())
        .load(conn)?)
}

/// A page of the accounts served by any of `service_accounts`, oldest first (the
/// dashboard's unit page).
pub fn page_of_service_accounts(
    conn: &mut AnyConnection,
    service_accounts: &[String],
    page: super::Page,
) -> Result<Vec<AccountRow>, Error> {
    Ok(accounts::table
        .filter(a::service_account_id.eq_any(service_accounts))
        .order((a::created_at.asc(), a::id.asc()))
        .offset(page.offset)
        .limit(page.limit)
        .select(AccountRow::as_select())
        .load(conn)?)
}
