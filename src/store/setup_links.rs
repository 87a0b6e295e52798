//! Customer setup links (DESIGN.md §8): found by the digest of the secret their URL
//! carries, listed and revoked by id.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::directories::DirectoryRow;
use super::schema::directories;
use super::schema::directories::dsl as d;
use super::schema::setup_links::{self, dsl as l};
use super::{AnyConnection, Page};
use crate::error::Error;

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = setup_links)]
pub struct SetupLinkRow {
    pub id: String,
    /// SHA-256 of the URL's secret.
    pub digest: String,
    pub tenant: Option<String>,
    pub product: Option<String>,
    pub organizational_unit_id: Option<String>,
    pub expires_at: NaiveDateTime,
    pub revoked_at: Option<NaiveDateTime>,
    pub created_at: NaiveDateTime,
}

impl SetupLinkRow {
    /// Neither revoked nor expired at `now`.
    pub fn is_live(&self, now: NaiveDateTime) -> bool {
        self.revoked_at.is_none() && self.expires_at > now
    }
}

pub fn insert(conn: &mut AnyConnection, row: &SetupLinkRow) -> Result<(), Error> {
    diesel::insert_into(setup_links::table)
        .values(row)
        .execute(conn)?;
    Ok(())
}

pub fn by_digest(conn: &mut AnyConnection, digest: &str) -> Result<Option<SetupLinkRow>, Error> {
    Ok(setup_links::table
        .filter(l::digest.eq(digest))
        .select(SetupLinkRow::as_select())
        .first(conn)
        .optional()?)
}

/// Links oldest first, a page at a time.
pub fn list(conn: &mut AnyConnection, page: Page) -> Result<Vec<SetupLinkRow>, Error> {
    Ok(setup_links::table
        .order((l::created_at.asc(), l::id.asc()))
        .offset(page.offset)
        .limit(page.limit)
        .select(SetupLinkRow::as_select())
        .load(conn)?)
}

/// Revokes a live link; false when there is no such link or it was already revoked.
pub fn revoke(conn: &mut AnyConnection, id: &str, now: NaiveDateTime) -> Result<bool, Error> {
    let n = diesel::update(setup_links::table.find(id).filter(l::revoked_at.is_null()))
        .set(l::revoked_at.eq(Some(now)))
        .execute(conn)?;
    Ok(n == 1)
}

pub fn get(conn: &mut AnyConnection, id: &str) -> Result<Option<SetupLinkRow>, Error> {
    Ok(setup_links::table
        .find(id)
        .select(SetupLinkRow::as_select())
        .first(conn)
        .optional()?)
}

/// The directories a link shows: those of one tenant and product, oldest first.
pub fn directories_of_tenant(
    conn: &mut AnyConnection,
    tenant: &str,
    product: &str,
) -> Result<Vec<DirectoryRow>, Error> {
    Ok(directories::table
        .filter(d::tenant.eq(tenant))
        .filter(d::product.eq(product))
        .order((d::created_at.asc(), d::id.asc()))
        .select(DirectoryRow::as_select())
        .load(conn)?)
}

/// … or those attached to one organizational unit.
pub fn directories_of_unit(
    conn: &mut AnyConnection,
    unit_id: &str,
) -> Result<Vec<DirectoryRow>, Error> {
    Ok(directories::table
        .filter(d::organizational_unit_id.eq(unit_id))
        .order((d::created_at.asc(), d::id.asc()))
        .select(DirectoryRow::as_select())
        .load(conn)?)
}
