//! Service accounts: a customer's calendar domain (Google) or tenant (Microsoft 365)
//! authorized by its admin for one application (DESIGN.md §6.3).

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::service_accounts::{self, dsl as s};
use super::AnyConnection;
use crate::error::Error;
use crate::secrets::Sealed;

pub const ACTIVE: &str = "active";
pub const REVOKED: &str = "revoked";
pub const CALENDARS: &str = "calendars";
pub const CONFERENCING: &str = "conferencing";

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = service_accounts)]
pub struct ServiceAccountRow {
    pub id: String,
    pub application_id: String,
    pub provider: String,
    pub domain: Option<String>,
    pub tenant_id: Option<String>,
    pub admin_email: Option<String>,
    pub scope: String,
    pub delegated_scope: String,
    pub organizational_unit_id: Option<String>,
    pub state: String,
    /// Sealed provider access token; `Debug` does not show it.
    pub provider_token: Option<Sealed>,
    pub provider_token_expires_at: Option<NaiveDateTime>,
    pub created_at: NaiveDateTime,
    pub revoked_at: Option<NaiveDateTime>,
    /// `calendars` or `conferencing`.
    pub capability: String,
    /// Order among its unit's calendar accounts.
    pub link_position: Option<i64>,
    /// A conferencing account's refresh token, sealed.
    pub provider_refresh_token: Option<Sealed>,
    /// The provider's own account (Zoom account, Webex org, Indeed employer).
    pub external_account: Option<String>,
}

impl ServiceAccountRow {
    pub fn is_active(&self) -> bool {
        self.state == ACTIVE
    }
}

pub fn insert(conn: &mut AnyConnection, row: &ServiceAccountRow) -> Result<(), Error> {
    diesel::insert_into(service_accounts::table)
        .values(row)
        .execute(conn)?;
    Ok(())
}

pub fn get(conn: &mut AnyConnection, id: &str) -> Result<Option<ServiceAccountRow>, Error> {
    Ok(service_accounts::table
        .find(id)
        .select(ServiceAccountRow::as_select())
        .first(conn)
        .optional()?)
}

/// The application's active service account for one domain or tenant, if any: a second
/// consent for it renews that one rather than adding another.
pub fn find_active(
    conn: &mut AnyConnection,
    application_id: &str,
    provider: &str,
    domain: Option<&str>,
    tenant_id: Option<&str>,
) -> Result<Option<ServiceAccountRow>, Error> {
    let mut q = service_accounts::table
        .filter(s::application_id.eq(application_id))
        .filter(s::provider.eq(provider))
        .filter(s::state.eq(ACTIVE))
        .into_boxed();
    q = match tenant_id {
        Some(t) => q.filter(s::tenant_id.eq(t.to_string())),
        None => q.filter(s::domain.eq(domain.unwrap_or_default().to_string())),
    };
    Ok(q.select(ServiceAccountRow::as_select())
        .first(conn)
        .optional()?)
}

/// The active service account of another application for this domain or tenant, if any.
pub fn held_elsewhere(
    conn: &mut AnyConnection,
    application_id: &str,
    provider: &str,
    domain: Option<&str>,
    tenant_id: Option<&str>,
) -> Result<bool, Error> {
    let mut q = service_accounts::table
        .filter(s::application_id.ne(application_id))
        .filter(s::provider.eq(provider))
        .filter(s::state.eq(ACTIVE))
        .into_boxed();
    q = match tenant_id {
        Some(t) => q.filter(s::tenant_id.eq(t.to_string())),
        None => q.filter(s::domain.eq(domain.unwrap_or_default().to_string())),
    };
    let n: i64 = q.count().get_result(conn)?;
    Ok(n > 0)
}

/// Service accounts, of one application or all, oldest first.
pub fn list(
    conn: &mut AnyConnection,
    application_id: Option<&str>,
) -> Result<Vec<ServiceAccountRow>, Error> {
    let mut q = service_accounts::table.into_boxed();
    if let Some(app) = application_id {
        q = q.filter(s::application_id.eq(app.to_string()));
    }
    Ok(q.order((s::created_at.asc(), s::id.asc()))
        .select(ServiceAccountRow::as_select())
        .load(conn)?)
}

pub fn renew_consent(
    conn: &mut AnyConnection,
    id: &str,
    admin_email: Option<&str>,
    scope: &str,
    delegated_scope: &str,
) -> Result<(), Error> {
    diesel::update(service_accounts::table.find(id))
        .set((
            s::admin_email.eq(admin_email),
            s::scope.eq(scope),
            s::delegated_scope.eq(delegated_scope),
            // Minted for the previous admin, who may have lost the rights since.
            s::provider_token.eq(None::<Sealed>),
            s::provider_token_expires_at.eq(None::<NaiveDateTime>),
        ))
        .execute(conn)?;
    Ok(())
}

/// Marks revoked and forgets the provider token. False when it was not active.
pub fn revoke(conn: &mut AnyConnection, id: &str, now: NaiveDateTime) -> Result<bool, Error> {
    let n = diesel::update(service_accounts::table.find(id).filter(s::state.eq(ACTIVE)))
        .set((
            s::state.eq(REVOKED),
            s::revoked_at.eq(Some(now)),
            s::provider_token.eq(None::<Sealed>),
            s::provider_token_expires_at.eq(None::<NaiveDateTime>),
        ))
        .execute(conn)?;
    Ok(n == 1)
}

pub fn revoke_for_application(
    conn: &mut AnyConnection,
    application_id: &str,
    now: NaiveDateTime,
) -> Result<Vec<String>, Error> {
    let ids: Vec<String> = service_accounts::table
        .filter(s::application_id.eq(application_id))
        .filter(s::state.eq(ACTIVE))
        .select(s::id)
        .load(conn)?;
    for id in &ids {
        revoke(conn, id, now)?;
    }
    Ok(ids)
}

/// A conferencing account authorized by a unit's admin, with its tokens sealed: the
/// application's active one for the same provider account renewed, or a new one.
#[allow(clippy::too_many_arguments)]
pub fn conferencing_consented(
    conn: &mut AnyConnection,
    new_id: &str,
    application_id: &str,
    provider: &str,
    external_account: &str,
    admin_email: Option<&str>,
    access: &Sealed,
    expires_at: NaiveDateTime,
    refresh: Option<&Sealed>,
) -> Result<String, Error> {
    let existing: Option<String> = service_accounts::table
        .filter(s::application_id.eq(application_id))
        .filter(s::provider.eq(provider))
        .filter(s::external_account.eq(external_account))
        .filter(s::state.eq(ACTIVE))
        .select(s::id)
        .first(conn)
        .optional()?;
    let tokens = (
        s::provider_token.eq(Some(access)),
        s::provider_token_expires_at.eq(Some(expires_at)),
        s::provider_refresh_token.eq(refresh),
        s::admin_email.eq(admin_email),
    );
    if let Some(id) = existing {
        diesel::update(service_accounts::table.find(&id))
            .set(tokens)
            .execute(conn)?;
        return Ok(id);
    }
    let id = new_id.to_string();
    diesel::insert_into(service_accounts::table)
        .values((
            s::id.eq(&id),
            s::application_id.eq(application_id),
            s::provider.eq(provider),
            s::scope.eq(""),
            s::delegated_scope.eq(""),
            s::state.eq(ACTIVE),
            s::created_at.eq(super::now()),
            s::capability.eq(CONFERENCING),
            s::external_account.eq(Some(external_account)),
        ))
        .execute(conn)?;
    diesel::update(service_accounts::table.find(&id))
        .set(tokens)
        .execute(conn)?;
    Ok(id)
}

/// Keeps the provider's new access token (sealed) for the other workers and instances.
pub fn store_provider_token(
    conn: &mut AnyConnection,
    id: &str,
    token: &Sealed,
    expires_at: NaiveDateTime,
) -> Result<(), Error> {
    diesel::update(service_accounts::table.find(id).filter(s::state.eq(ACTIVE)))
        .set((
            s::provider_token.eq(Some(token)),
            s::provider_token_expires_at.eq(Some(expires_at)),
        ))
        .execute(conn)?;
    Ok(())
}

/// Stores a conferencing account's rotated tokens if its refresh token is still `old`
/// (compare and set: of two instances refreshing at once, one keeps its tokens).
pub fn rotate_tokens(
    conn: &mut AnyConnection,
    id: &str,
    old: &Sealed,
    access: &Sealed,
    expires_at: NaiveDateTime,
    refresh: &Sealed,
) -> Result<bool, Error> {
    let n = diesel::update(
        service_accounts::table
            .find(id)
            .filter(s::provider_refresh_token.eq(old)),
    )
    .set((
        s::provider_token.eq(Some(access)),
        s::provider_token_expires_at.eq(Some(expires_at)),
        s::provider_refresh_token.eq(Some(refresh)),
    ))
    .execute(conn)?;
    Ok(n == 1)
}

/// Every stored refresh token (conferencing accounts), for sealing passes and `rekey`.
pub fn stored_refresh_tokens(conn: &mut AnyConnection) -> Result<Vec<(String, Sealed)>, Error> {
    let rows: Vec<(String, Option<Sealed>)> = service_accounts::table
        .filter(s::provider_refresh_token.is_not_null())
        .order(s::id.asc())
        .select((s::id, s::provider_refresh_token))
        .load(conn)?;
    Ok(rows
        .into_iter()
        .filter_map(|(id, t)| t.map(|t| (id, t)))
        .collect())
}

/// Compare and set of a refresh token (`rekey`).
pub fn replace_refresh_token(
    conn: &mut AnyConnection,
    id: &str,
    old: &Sealed,
    new: &Sealed,
) -> Result<bool, Error> {
    let n = diesel::update(
        service_accounts::table
            .find(id)
            .filter(s::provider_refresh_token.eq(old)),
    )
    .set(s::provider_refresh_token.eq(Some(new)))
    .execute(conn)?;
    Ok(n == 1)
}

/// Every stored provider token, for sealing passes and `rekey`.
pub fn stored_tokens(conn: &mut AnyConnection) -> Result<Vec<(String, Sealed)>, Error> {
    let rows: Vec<(String, Option<Sealed>)> = service_accounts::table
        .filter(s::provider_token.is_not_null())
        .order(s::id.asc())
        .select((s::id, s::provider_token))
        .load(conn)?;
    Ok(rows
        .into_iter()
        .filter_map(|(id, t)| t.map(|t| (id, t)))
        .collect())
}

/// Compare and set; `None` forgets the token (one no key opens: a new one is minted).
pub fn replace_token(
    conn: &mut AnyConnection,
    id: &str,
    old: &Sealed,
    new: Option<&Sealed>,
) -> Result<bool, Error> {
    let n = diesel::update(
        service_accounts::table
            .find(id)
            .filter(s::provider_token.eq(old)),
    )
    .set(s::provider_token.eq(new))
    .execute(conn)?;
    Ok(n == 1)
}
