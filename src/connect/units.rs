//! Organizational units (DESIGN.md §6.4): link tokens, joining a unit at the end of the
//! unit authorization flow, the calendar accounts a delegated authorization falls
//! through, and the admin views.

use serde_json::{json, Value};

use crate::error::{Error, Rejected};
use crate::ids::OrgUnitId;
use crate::scim::resource::timestamp;
use crate::secrets;
use crate::store::applications::ApplicationRow;
use crate::store::organizational_units::{self as store, UnitRow};
pub use crate::store::service_accounts::ServiceAccountRow;
use crate::store::tokens::{self as tokens, TokenRow};
use crate::store::{self as db, write_tx, AnyConnection};

pub use crate::store::service_accounts::{CALENDARS, CONFERENCING};

/// An active service account, for the unit flow's pages.
pub fn service_account(conn: &mut AnyConnection, id: &str) -> Result<ServiceAccountRow, Error> {
    crate::store::service_accounts::get(conn, id)?
        .filter(|s| s.is_active())
        .ok_or_else(|| Rejected::invalid("The linked service account was revoked.").into())
}

/// The kind of `oauth_tokens` row a link token is.
pub const LINK_TOKEN: &str = "ou_link";
pub const LINK_TOKEN_LIFETIME: std::time::Duration = std::time::Duration::from_secs(600);
/// The scope of a unit's tokens.
pub const UNIT_SCOPE: &str = "organizational_unit_use_integrations";

/// `POST /v1/organizational_unit_authorization_link_tokens`: a single-use, 10-minute
/// token bound to one of the application's active service accounts (another
/// application's, or an unknown one: 404).
pub fn create_link_token(
    conn: &mut AnyConnection,
    app: &ApplicationRow,
    service_account_id: &str,
) -> Result<String, Error> {
    let ser = crate::store::service_accounts::get(conn, service_account_id)?
        .filter(|s| s.application_id == app.id && s.is_active())
        .ok_or_else(|| Rejected::not_found("service account not found"))?;
    let token = secrets::random_token(32)?;
    let now = db::now();
    let row = TokenRow {
        digest: secrets::digest(&token),
        kind: LINK_TOKEN.into(),
        application_id: app.id.clone(),
        subject: ser.id,
        family: uuid::Uuid::now_v7().simple().to_string(),
        scope: UNIT_SCOPE.into(),
        redirect_uri: None,
        expires_at: Some(db::later(now, LINK_TOKEN_LIFETIME)),
        used_at: None,
        revoked_at: None,
        created_at: now,
    };
    write_tx(conn, |c| tokens::insert(c, &[row]))?;
    Ok(token)
}

/// The service account a live link token of `app` is bound to; a page-worthy refusal
/// otherwise (used, expired, another application's, unknown).
pub fn check_link_token(
    conn: &mut AnyConnection,
    app: &ApplicationRow,
    token: &str,
) -> Result<ServiceAccountRow, Error> {
    let refused = || {
        Rejected::invalid(
            "This link token is unknown, expired or already used. Ask the application for a new link.",
        )
    };
    let row = tokens::get(conn, &secrets::digest(token))?
        .filter(|r| r.kind == LINK_TOKEN && r.application_id == app.id && r.is_live(db::now()))
        .ok_or_else(refused)?;
    crate::store::service_accounts::get(conn, &row.subject)?
        .filter(|s| s.is_active())
        .ok_or_else(|| refused().into())
}

/// Where the approve step puts the new account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Join {
    /// The unit the linked service account belongs to (made now if it has none).
    Existing,
    /// A new unit, which the linked service account moves to as well.
    New,
}

/// Ends a unit flow: consumes the link token, puts `linked` and `added` into one unit
/// as `join` says, and issues the unit's code. Call inside the flow's write transaction.
pub fn join(
    conn: &mut AnyConnection,
    app_id: &str,
    link_token_digest: &str,
    linked: &str,
    added: Option<&str>,
    how: &Join,
    redirect_uri: &str,
) -> Result<String, Error> {
    if !tokens::mark_used(conn, link_token_digest, db::now())? {
        return Err(Rejected::invalid(
            "This link token was already used. Ask the application for a new link.",
        )
        .into());
    }
    let linked_row = crate::store::service_accounts::get(conn, linked)?
        .filter(|s| s.is_active() && s.application_id == app_id)
        .ok_or_else(|| Rejected::invalid("The linked service account was revoked."))?;
    let unit = match (how, &linked_row.organizational_unit_id) {
        (Join::Existing, Some(unit)) => unit.clone(),
        _ => {
            let unit = UnitRow {
                id: OrgUnitId::generate().into_string(),
                application_id: app_id.into(),
                created_at: db::now(),
            };
            store::insert(conn, &unit)?;
            store::join(conn, linked, &unit.id)?;
            unit.id
        }
    };
    if let Some(added) = added.filter(|a| *a != linked) {
        store::join(conn, added, &unit)?;
    }
    super::grants::issue_code(conn, app_id, &unit, UNIT_SCOPE, redirect_uri)
}

/// The calendar accounts a delegated authorization through `ser` tries, in link order:
/// its unit's, or `ser` alone (a service account in no unit is a unit of one).
pub fn calendar_chain(
    conn: &mut AnyConnection,
    ser: &ServiceAccountRow,
) -> Result<Vec<ServiceAccountRow>, Error> {
    match &ser.organizational_unit_id {
        Some(unit) => Ok(store::members(conn, unit)?
            .into_iter()
            .filter(|s| s.capability == CALENDARS)
            .collect()),
        None => Ok(vec![ser.clone()]),
    }
}

/// The admin API's shape of a unit: its service accounts in link order.
pub fn to_json(conn: &mut AnyConnection, unit: &UnitRow) -> Result<Value, Error> {
    let members = store::members(conn, &unit.id)?;
    Ok(json!({
        "id": unit.id,
        "created_at": timestamp(unit.created_at),
        "service_accounts": members.iter().map(|s| json!({
            "id": s.id,
            "capability": s.capability,
            "provider_name": s.provider,
            "domain": s.domain,
            "tenant_id": s.tenant_id,
            "external_account": s.external_account,
            "state": s.state,
            "link_position": s.link_position,
            "linked_at": timestamp(s.created_at),
        })).collect::<Vec<_>>(),
    }))
}

pub fn list_json(conn: &mut AnyConnection) -> Result<Vec<Value>, Error> {
    let units = store::list(conn)?;
    units.iter().map(|u| to_json(conn, u)).collect()
}

pub fn get_json(conn: &mut AnyConnection, id: &str) -> Result<Value, Error> {
    let unit = store::get(conn, id)?
        .ok_or_else(|| Rejected::not_found("organizational unit not found"))?;
    to_json(conn, &unit)
}

/// Unlinks a service account from its unit and revokes its provider access (its token
/// forgotten, its own tokens revoked). The accounts it served are provisioned again
/// through the unit's other calendar accounts (a job each, without callback), or marked
/// `not_found` when none is left; its conferencing profiles are revoked.
pub fn unlink(
    conn: &mut AnyConnection,
    unit_id: &str,
    service_account_id: &str,
) -> Result<bool, Error> {
    write_tx(conn, |c| {
        let Some(s) = crate::store::service_accounts::get(c, service_account_id)? else {
            return Ok(false);
        };
        if s.organizational_unit_id.as_deref() != Some(unit_id) {
            return Ok(false);
        }
        store::leave(c, &s.id)?;
        let now = db::now();
        store::revoke_profiles_of_service_account(c, &s.id, now)?;
        crate::store::service_accounts::revoke(c, &s.id, now)?;
        tokens::revoke_subjects(c, std::slice::from_ref(&s.id), now)?;
        let served =
            crate::store::accounts::list_of_service_accounts(c, std::slice::from_ref(&s.id), None)?;
        let next = store::members(c, unit_id)?
            .into_iter()
            .find(|m| m.capability == CALENDARS);
        match next {
            Some(next) => {
                let jobs: Vec<_> = served
                    .iter()
                    .filter(|a| a.state == crate::store::accounts::ACTIVE)
                    .map(|a| super::authorizations::reprovision_job(a, &next.id, now))
                    .collect();
                for chunk in jobs.chunks(500) {
                    crate::store::authorization_jobs::insert(c, chunk)?;
                }
            }
            None => {
                let ids: Vec<String> = served.into_iter().map(|a| a.id).collect();
                crate::store::accounts::set_state(c, &ids, crate::store::accounts::NOT_FOUND, now)?;
            }
        }
        Ok(true)
    })
}

/// `GET /api/v1/organizational_units/{id}/accounts[?email=]`: the accounts its calendar
/// accounts serve, in UserInfo's item shape.
pub fn accounts_json(
    conn: &mut AnyConnection,
    id: &str,
    email: Option<&str>,
) -> Result<Vec<Value>, Error> {
    store::get(conn, id)?.ok_or_else(|| Rejected::not_found("organizational unit not found"))?;
    let members: Vec<String> = store::members(conn, id)?
        .into_iter()
        .filter(|s| s.capability == CALENDARS)
        .map(|s| s.id)
        .collect();
    let accounts = crate::store::accounts::list_of_service_accounts(conn, &members, email)?;
    accounts
        .iter()
        .map(|a| super::accounts::to_json(conn, a))
        .collect()
}

/// A page of [`accounts_json`] (the dashboard's unit page): only that page's accounts
/// are read, with their profiles.
pub fn accounts_page_json(
    conn: &mut AnyConnection,
    id: &str,
    page: crate::store::Page,
) -> Result<Vec<Value>, Error> {
    store::get(conn, id)?.ok_or_else(|| Rejected::not_found("organizational unit not found"))?;
    let members: Vec<String> = store::members(conn, id)?
        .into_iter()
        .filter(|s| s.capability == CALENDARS)
        .map(|s| s.id)
        .collect();
    let accounts = crate::store::accounts::page_of_service_accounts(conn, &members, page)?;
    accounts
        .iter()
        .map(|a| super::accounts::to_json(conn, a))
        .collect()
}

/// `POST /api/v1/organizational_units/{id}/accounts/{acc}/relink`: provisions the
/// account's email again through the unit's calendar accounts (a job without callback):
/// relinked to whichever knows it now, or marked `not_found`. False when the account is
/// not the unit's.
pub fn relink(conn: &mut AnyConnection, unit_id: &str, account_id: &str) -> Result<bool, Error> {
    write_tx(conn, |c| {
        let members = store::members(c, unit_id)?;
        let Some(account) = crate::store::accounts::get(c, account_id)? else {
            return Ok(false);
        };
        // The unit's application's account (served here, or by an account unlinked since).
        if store::get(c, unit_id)?.is_none_or(|u| u.application_id != account.application_id) {
            return Ok(false);
        }
        let Some(first) = members.iter().find(|m| m.capability == CALENDARS) else {
            return Err(Rejected::conflict("the unit has no calendar account").into());
        };
        let job = super::authorizations::reprovision_job(&account, &first.id, db::now());
        crate::store::authorization_jobs::insert(c, &[job])?;
        Ok(true)
    })
}

/// The account `account_id` when one of the unit's calendar accounts serves it (what
/// `accounts_json` lists); `None` for any other, even of the same application.
pub fn served_account(
    conn: &mut AnyConnection,
    unit_id: &str,
    account_id: &str,
) -> Result<Option<crate::store::accounts::AccountRow>, Error> {
    let Some(account) = crate::store::accounts::get(conn, account_id)? else {
        return Ok(None);
    };
    let served = store::members(conn, unit_id)?
        .iter()
        .any(|m| m.capability == CALENDARS && m.id == account.service_account_id);
    Ok(served.then_some(account))
}

/// Revokes one account the unit serves, as the revocation endpoint does for its `sub`:
/// its state `revoked` (its profiles show `profile_connected: false`) and its tokens
/// revoked. False when the unit does not serve it.
pub fn revoke_account(
    conn: &mut AnyConnection,
    unit_id: &str,
    account_id: &str,
) -> Result<bool, Error> {
    write_tx(conn, |c| {
        let Some(account) = served_account(c, unit_id, account_id)? else {
            return Ok(false);
        };
        // As `/oauth/token/revoke` with the account's `sub`.
        super::revoke_subject(c, &account.application_id, &account.id, db::now())?;
        Ok(true)
    })
}
