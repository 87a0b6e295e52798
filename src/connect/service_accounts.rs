//! Service accounts (DESIGN.md §6.3): made by an admin's consent, revocable by the
//! integrator (`/oauth/token/revoke` with `sub`) or an operator (admin API). Revoking one
//! stops everything that went through it.

use chrono::NaiveDateTime;
use serde_json::{json, Value};

use crate::error::{Error, Rejected};
use crate::ids::ServiceAccountId;
use crate::scim::resource::timestamp;
use crate::store::accounts as account_store;
use crate::store::service_accounts::{self as store, ServiceAccountRow, ACTIVE, CALENDARS};
use crate::store::{self as db, AnyConnection};

/// What an admin's consent proved.
#[derive(Debug, Clone)]
pub struct Consented {
    pub provider: &'static str,
    /// The Google domain, or the Microsoft tenant's default domain.
    pub domain: Option<String>,
    pub tenant_id: Option<String>,
    pub admin_email: Option<String>,
}

/// The application's service account for the consented domain or tenant: the active one
/// renewed, or a new one. Call inside the write transaction that issues its code.
///
/// A domain or tenant another application holds is refused: the proof of consent is the
/// operator's delegation plus an admin's address (Google) or the tenant's consent to the
/// operator's app (Microsoft), which another integrator on the same gateway could
/// present for a customer that never chose it.
pub fn consented(
    conn: &mut AnyConnection,
    application_id: &str,
    consent: &Consented,
    scope: &str,
    delegated_scope: &str,
) -> Result<ServiceAccountRow, Error> {
    if store::held_elsewhere(
        conn,
        application_id,
        consent.provider,
        consent.domain.as_deref(),
        consent.tenant_id.as_deref(),
    )? {
        return Err(Rejected::new(
            409,
            "This domain or tenant is connected to another application of this gateway; its operator must revoke that first.",
        )
        .into());
    }
    if let Some(existing) = store::find_active(
        conn,
        application_id,
        consent.provider,
        consent.domain.as_deref(),
        consent.tenant_id.as_deref(),
    )? {
        store::renew_consent(
            conn,
            &existing.id,
            consent.admin_email.as_deref(),
            scope,
            delegated_scope,
        )?;
        return Ok(store::get(conn, &existing.id)?.unwrap_or(existing));
    }
    let row = ServiceAccountRow {
        id: ServiceAccountId::generate().into_string(),
        application_id: application_id.into(),
        provider: consent.provider.into(),
        domain: consent.domain.clone(),
        tenant_id: consent.tenant_id.clone(),
        admin_email: consent.admin_email.clone(),
        scope: scope.into(),
        delegated_scope: delegated_scope.into(),
        organizational_unit_id: None,
        state: ACTIVE.into(),
        provider_token: None,
        provider_token_expires_at: None,
        created_at: db::now(),
        revoked_at: None,
        capability: CALENDARS.into(),
        link_position: None,
        provider_refresh_token: None,
        external_account: None,
    };
    store::insert(conn, &row)?;
    Ok(row)
}

/// Revokes a service account: its tokens, the accounts provisioned through it and their
/// tokens; its pending authorizations end with an error callback. False when it was not
/// active. Call inside a write transaction.
pub fn revoke(conn: &mut AnyConnection, id: &str, now: NaiveDateTime) -> Result<bool, Error> {
    if !store::revoke(conn, id, now)? {
        return Ok(false);
    }
    revoke_dependents(conn, id, now)?;
    Ok(true)
}

/// What depends on a service account just revoked.
pub fn revoke_dependents(
    conn: &mut AnyConnection,
    id: &str,
    now: NaiveDateTime,
) -> Result<(), Error> {
    let accounts = account_store::ids_of_service_account(conn, id)?;
    account_store::set_state(conn, &accounts, account_store::REVOKED, now)?;
    let mut subjects = accounts;
    subjects.push(id.to_string());
    crate::store::tokens::revoke_subjects(conn, &subjects, now)?;
    Ok(())
}

/// The admin API's shape.
pub fn to_json(
    row: &ServiceAccountRow,
    client_id: Option<&str>,
    accounts: Option<i64>,
    pending: Option<i64>,
) -> Value {
    json!({
        "id": row.id,
        "client_id": client_id,
        "provider_name": row.provider,
        "domain": row.domain,
        "tenant_id": row.tenant_id,
        "admin_email": row.admin_email,
        "scope": row.scope,
        "delegated_scope": row.delegated_scope,
        "organizational_unit_id": row.organizational_unit_id,
        "state": row.state,
        "created_at": timestamp(row.created_at),
        "revoked_at": row.revoked_at.map(timestamp),
        "accounts": accounts,
        "pending_authorizations": pending,
    })
}

/// The admin API's list, of one application (`client_id`) or all.
pub fn list_json(conn: &mut AnyConnection, client_id: Option<&str>) -> Result<Vec<Value>, Error> {
    let apps = crate::store::applications::list(conn)?;
    let app = match client_id {
        Some(id) => Some(
            apps.iter()
                .find(|a| a.client_id == id)
                .ok_or_else(|| Rejected::not_found("application not found"))?
                .id
                .clone(),
        ),
        None => None,
    };
    let rows = store::list(conn, app.as_deref())?;
    Ok(rows
        .iter()
        .map(|s| {
            let client = apps
                .iter()
                .find(|a| a.id == s.application_id)
                .map(|a| a.client_id.as_str());
            to_json(s, client, None, None)
        })
        .collect())
}

/// One service account with its accounts and how many authorizations are pending.
pub fn detail_json(conn: &mut AnyConnection, id: &str) -> Result<Value, Error> {
    let s =
        store::get(conn, id)?.ok_or_else(|| Rejected::not_found("service account not found"))?;
    let app = crate::store::applications::get(conn, &s.application_id)?;
    let list = account_store::list_of_service_account(conn, &s.id)?;
    let pending = crate::store::authorization_jobs::pending_of_service_account(conn, &s.id)?;
    let mut v = to_json(
        &s,
        app.as_ref().map(|a| a.client_id.as_str()),
        Some(list.len() as i64),
        Some(pending),
    );
    v["account_list"] = Value::Array(
        list.iter()
            .map(|a| super::accounts::to_json(conn, a))
            .collect::<Result<_, _>>()?,
    );
    Ok(v)
}

/// The operator revokes a service account (admin API). False when it does not exist.
pub fn revoke_by_operator(conn: &mut AnyConnection, id: &str) -> Result<bool, Error> {
    crate::store::write_tx(conn, |c| {
        let exists = store::get(c, id)?.is_some();
        revoke(c, id, db::now())?;
        Ok(exists)
    })
}
