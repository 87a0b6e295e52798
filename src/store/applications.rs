//! Applications: the integrators' OAuth clients (DESIGN.md §6.1).

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::applications::{self, dsl as a};
use super::AnyConnection;
use crate::error::Error;
use crate::secrets::Sealed;

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = applications)]
pub struct ApplicationRow {
    pub id: String,
    pub client_id: String,
    /// Sealed; `Debug` does not show it.
    pub client_secret: Sealed,
    pub client_secret_digest: String,
    pub name: String,
    /// A JSON array.
    pub redirect_uris: String,
    pub created_at: NaiveDateTime,
}

impl ApplicationRow {
    pub fn redirect_uris(&self) -> Vec<String> {
        serde_json::from_str(&self.redirect_uris).unwrap_or_default()
    }
}

pub fn insert(conn: &mut AnyConnection, row: &ApplicationRow) -> Result<(), Error> {
    diesel::insert_into(applications::table)
        .values(row)
        .execute(conn)?;
    Ok(())
}

pub fn get(conn: &mut AnyConnection, id: &str) -> Result<Option<ApplicationRow>, Error> {
    Ok(applications::table
        .find(id)
        .select(ApplicationRow::as_select())
        .first(conn)
        .optional()?)
}

pub fn by_client_id(
    conn: &mut AnyConnection,
    client_id: &str,
) -> Result<Option<ApplicationRow>, Error> {
    Ok(applications::table
        .filter(a::client_id.eq(client_id))
        .select(ApplicationRow::as_select())
        .first(conn)
        .optional()?)
}

pub fn by_secret_digest(
    conn: &mut AnyConnection,
    digest: &str,
) -> Result<Option<ApplicationRow>, Error> {
    Ok(applications::table
        .filter(a::client_secret_digest.eq(digest))
        .select(ApplicationRow::as_select())
        .first(conn)
        .optional()?)
}

pub fn list(conn: &mut AnyConnection) -> Result<Vec<ApplicationRow>, Error> {
    Ok(applications::table
        .order((a::created_at.asc(), a::id.asc()))
        .select(ApplicationRow::as_select())
        .load(conn)?)
}

pub fn delete(conn: &mut AnyConnection, id: &str) -> Result<bool, Error> {
    Ok(diesel::delete(applications::table.find(id)).execute(conn)? == 1)
}

/// Every application's sealed secret, for sealing passes and `rekey`.
pub fn stored_secrets(conn: &mut AnyConnection) -> Result<Vec<(String, Sealed)>, Error> {
    Ok(applications::table
        .order(a::id.asc())
        .select((a::id, a::client_secret))
        .load(conn)?)
}

/// Compare and set, as `webhooks::replace_secrets`.
pub fn replace_secret(
    conn: &mut AnyConnection,
    id: &str,
    old: &Sealed,
    new: &Sealed,
) -> Result<bool, Error> {
    let n = diesel::update(
        applications::table
            .find(id)
            .filter(a::client_secret.eq(old)),
    )
    .set(a::client_secret.eq(new))
    .execute(conn)?;
    Ok(n == 1)
}
