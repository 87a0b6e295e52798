use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::directories::dsl as d;
use super::schema::{directories, memberships, scim_groups, user_emails, users};
use super::{AnyConnection, Page};
use crate::error::Error;
use crate::secrets::Sealed;

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = directories)]
pub struct DirectoryRow {
    pub id: String,
    pub name: String,
    pub tenant: String,
    pub product: String,
    pub provider_type: String,
    pub scim_secret_hash: String,
    pub previous_secret_hash: Option<String>,
    pub previous_secret_expires_at: Option<NaiveDateTime>,
    pub webhook_url: Option<String>,
    /// Sealed (the primary endpoint's secret); `Debug` does not show it.
    pub webhook_secret: Option<Sealed>,
    pub log_webhook_events: bool,
    pub deactivated: bool,
    pub user_limit: Option<i64>,
    pub organizational_unit_id: Option<String>,
    pub last_event_sequence: i64,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

/// Fields an admin may change; `None` leaves a field alone, `Some(None)` clears it.
#[derive(Debug, Default, Clone, AsChangeset)]
#[diesel(table_name = directories)]
pub struct DirectoryChanges {
    pub name: Option<String>,
    pub webhook_url: Option<Option<String>>,
    pub webhook_secret: Option<Option<Sealed>>,
    pub log_webhook_events: Option<bool>,
    pub deactivated: Option<bool>,
    pub user_limit: Option<Option<i64>>,
    pub organizational_unit_id: Option<Option<String>>,
    pub updated_at: Option<NaiveDateTime>,
}

pub fn insert(conn: &mut AnyConnection, row: &DirectoryRow) -> Result<(), Error> {
    diesel::insert_into(directories::table)
        .values(row)
        .execute(conn)?;
    Ok(())
}

pub fn get(conn: &mut AnyConnection, id: &str) -> Result<Option<DirectoryRow>, Error> {
    Ok(directories::table
        .find(id)
        .select(DirectoryRow::as_select())
        .first(conn)
        .optional()?)
}

/// Directories, optionally narrowed by tenant and/or product, oldest first, with the total.
pub fn list(
    conn: &mut AnyConnection,
    tenant: Option<&str>,
    product: Option<&str>,
    page: Page,
) -> Result<(Vec<DirectoryRow>, i64), Error> {
    let mut q = directories::table.into_boxed();
    let mut c = directories::table.into_boxed();
    if let Some(t) = tenant {
        q = q.filter(d::tenant.eq(t.to_string()));
        c = c.filter(d::tenant.eq(t.to_string()));
    }
    if let Some(p) = product {
        q = q.filter(d::product.eq(p.to_string()));
        c = c.filter(d::product.eq(p.to_string()));
    }
    let rows = q
        .order((d::created_at.asc(), d::id.asc()))
        .offset(page.offset)
        .limit(page.limit)
        .select(DirectoryRow::as_select())
        .load(conn)?;
    let total = c.count().get_result(conn)?;
    Ok((rows, total))
}

/// Ids of every directory of a tenant and product (Jackson's tenant+product scoping).
pub fn ids_for_tenant_product(
    conn: &mut AnyConnection,
    tenant: &str,
    product: &str,
) -> Result<Vec<String>, Error> {
    Ok(directories::table
        .filter(d::tenant.eq(tenant))
        .filter(d::product.eq(product))
        .order((d::created_at.asc(), d::id.asc()))
        .select(d::id)
        .load(conn)?)
}

pub fn update(conn: &mut AnyConnection, id: &str, changes: &DirectoryChanges) -> Result<(), Error> {
    diesel::update(directories::table.find(id))
        .set(changes)
        .execute(conn)?;
    Ok(())
}

pub fn set_secret(
    conn: &mut AnyConnection,
    id: &str,
    new_hash: &str,
    previous_hash: Option<&str>,
    previous_expires_at: Option<NaiveDateTime>,
    now: NaiveDateTime,
) -> Result<(), Error> {
    diesel::update(directories::table.find(id))
        .set((
            d::scim_secret_hash.eq(new_hash),
            d::previous_secret_hash.eq(previous_hash),
            d::previous_secret_expires_at.eq(previous_expires_at),
            d::updated_at.eq(now),
        ))
        .execute(conn)?;
    Ok(())
}

/// Directories with a `webhook_url` but no primary endpoint row.
pub fn with_webhook_but_no_endpoint(conn: &mut AnyConnection) -> Result<Vec<DirectoryRow>, Error> {
    use super::schema::webhook_endpoints as w;
    let primaries = w::table
        .filter(w::is_primary.eq(true))
        .filter(w::directory_id.is_not_null())
        .select(w::directory_id.assume_not_null());
    Ok(directories::table
        .filter(d::webhook_url.is_not_null())
        .filter(d::id.ne_all(primaries))
        .select(DirectoryRow::as_select())
        .load(conn)?)
}

/// Moves a directory's last sequence number on by `n` (after the sequencer numbered `n`
/// events under the directory's lock).
pub fn advance_event_sequence(conn: &mut AnyConnection, id: &str, n: i64) -> Result<(), Error> {
    diesel::update(directories::table.find(id))
        .set(d::last_event_sequence.eq(d::last_event_sequence + n))
        .execute(conn)?;
    Ok(())
}

/// Deletes what a directory owns — groups, users and their memberships and emails —
/// waiting for writers still changing them. Parents go first (their children cascade),
/// the order SCIM writes lock in, so a deletion racing a write does not deadlock on
/// their rows. Its events stay until its endpoints have them (they are never lost);
/// [`super::deliveries::prune`] removes them then.
pub fn delete_contents(conn: &mut AnyConnection, id: &str) -> Result<(), Error> {
    diesel::delete(scim_groups::table.filter(scim_groups::directory_id.eq(id))).execute(conn)?;
    diesel::delete(users::table.filter(users::directory_id.eq(id))).execute(conn)?;
    // What the cascades left (none where they are on): memberships on PostgreSQL have no
    // foreign key to users.
    diesel::delete(memberships::table.filter(memberships::directory_id.eq(id))).execute(conn)?;
    diesel::delete(user_emails::table.filter(user_emails::directory_id.eq(id))).execute(conn)?;
    Ok(())
}

/// Deletes the directory row itself (after [`delete_contents`]).
pub fn delete_row(conn: &mut AnyConnection, id: &str) -> Result<(), Error> {
    diesel::delete(directories::table.find(id)).execute(conn)?;
    Ok(())
}

/// Every directory's stored webhook secret, for sealing or re-keying.
pub fn stored_webhook_secrets(conn: &mut AnyConnection) -> Result<Vec<(String, Sealed)>, Error> {
    let rows: Vec<(String, Option<Sealed>)> = directories::table
        .filter(d::webhook_secret.is_not_null())
        .order(d::id.asc())
        .select((d::id, d::webhook_secret))
        .load(conn)?;
    Ok(rows
        .into_iter()
        .filter_map(|(id, s)| s.map(|s| (id, s)))
        .collect())
}

/// Replaces a directory's webhook secret if it is still `old` (compare and set); false
/// when it had changed meanwhile.
pub fn replace_webhook_secret(
    conn: &mut AnyConnection,
    id: &str,
    old: &Sealed,
    new: &Sealed,
) -> Result<bool, Error> {
    let n = diesel::update(
        directories::table
            .find(id)
            .filter(d::webhook_secret.eq(old)),
    )
    .set(d::webhook_secret.eq(new))
    .execute(conn)?;
    Ok(n == 1)
}
