//! Accounts as clients see them (DESIGN.md §6.5–6.6): the token response's
//! `linking_profile` and UserInfo. One account per email per application.

use serde_json::{json, Value};

use crate::error::Error;
use crate::store::accounts::{self as store, AccountRow, ACTIVE};
use crate::store::organizational_units::ProfileRow;
use crate::store::service_accounts::ServiceAccountRow;
use crate::store::AnyConnection;

/// `linking_profile` of a token response.
pub fn linking_profile(a: &AccountRow) -> Value {
    json!({
        "provider_name": a.provider,
        "profile_id": a.profile_id,
        "profile_name": a.profile_name,
    })
}

/// One `profiles[]` item (Cronofy's names: `provider_service` as its SDKs read it).
pub fn profile(a: &AccountRow) -> Value {
    json!({
        "provider_name": a.provider,
        "provider_service": provider_service(&a.provider),
        "profile_id": a.profile_id,
        "profile_name": a.profile_name,
        "profile_connected": a.state == ACTIVE,
    })
}

fn provider_service(provider: &str) -> &'static str {
    match provider {
        "google" => "gsuite",
        "office365" => "graph",
        _ => "other",
    }
}

/// One `conferencing_profiles[]` item.
fn conferencing_profile(a: &AccountRow, p: &ProfileRow) -> Value {
    json!({
        "provider_name": p.provider,
        "profile_id": p.id,
        "profile_name": p.profile_name,
        "profile_connected": p.state == ACTIVE && a.state == ACTIVE,
    })
}

/// The account's conferencing profiles (revoked ones left out).
fn conferencing_profiles(conn: &mut AnyConnection, a: &AccountRow) -> Result<Vec<Value>, Error> {
    Ok(
        crate::store::organizational_units::profiles_of(conn, &a.id)?
            .iter()
            .filter(|p| p.state == ACTIVE)
            .map(|p| conferencing_profile(a, p))
            .collect(),
    )
}

/// `GET /v1/userinfo` for an account's token.
pub fn userinfo(a: &AccountRow, conferencing: Vec<Value>) -> Value {
    json!({
        "sub": a.id,
        "email": a.email,
        "cronofy.type": "account",
        "cronofy.data": {
            "authorization": {"scope": a.scope, "status": if a.state == ACTIVE { "active" } else { a.state.as_str() }},
            "profiles": [profile(a)],
            "conferencing_profiles": conferencing,
        },
    })
}

/// `GET /v1/userinfo` for a service account's token.
pub fn service_account_userinfo(s: &ServiceAccountRow) -> Value {
    json!({
        "sub": s.id,
        "email": s.admin_email,
        "cronofy.type": "service_account",
        "cronofy.data": {
            "service_account": {
                "provider_name": s.provider,
                "domain": s.domain,
                "tenant_id": s.tenant_id,
            },
            "authorization": {
                "scope": s.scope,
                "delegated_scope": s.delegated_scope,
                "status": s.state,
            },
        },
    })
}

/// The admin API's item shape (UserInfo's, DESIGN.md §6.6).
pub fn to_json(conn: &mut AnyConnection, a: &AccountRow) -> Result<Value, Error> {
    Ok(json!({
        "account_id": a.id,
        "email": a.email,
        "service_account_id": a.service_account_id,
        "state": a.state,
        "profiles": [profile(a)],
        "conferencing_profiles": conferencing_profiles(conn, a)?,
    }))
}

pub fn get(conn: &mut AnyConnection, id: &str) -> Result<Option<AccountRow>, Error> {
    store::get(conn, id)
}

/// `GET /v1/userinfo` for the subject of a live access token.
pub fn userinfo_of(conn: &mut AnyConnection, subject: &str) -> Result<Value, Error> {
    let gone = || crate::error::Rejected::unauthorized("a valid access token is required");
    if crate::ids::AccountId::parse(subject).is_some() {
        let a = store::get(conn, subject)?.ok_or_else(gone)?;
        let conferencing = conferencing_profiles(conn, &a)?;
        return Ok(userinfo(&a, conferencing));
    }
    let s = crate::store::service_accounts::get(conn, subject)?.ok_or_else(gone)?;
    Ok(service_account_userinfo(&s))
}
