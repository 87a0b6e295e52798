//! Enterprise Connect (DESIGN.md §6): applications, the OAuth 2 authorization server's
//! state (consents, codes, tokens), service accounts, delegated authorizations and the
//! accounts they provision. Like `directory/`, every state change is a function here
//! run in one write transaction; queries are in `store/`, provider calls in `providers/`.

pub mod accounts;
pub mod applications;
pub mod authorizations;
pub mod consent;
pub mod grants;
pub mod provider_access;
pub mod sealing;
pub mod service_accounts;
pub mod units;
pub mod worker;

use chrono::NaiveDateTime;
use serde_json::Value;

use crate::error::Error;
use crate::ids::{AccountId, OrgUnitId, ServiceAccountId};
use crate::store::AnyConnection;

/// Whether the subject a code or token speaks for may still use it: its service account
/// or account is active (a suspended account's tokens answer 401).
pub fn subject_is_active(conn: &mut AnyConnection, subject: &str) -> Result<bool, Error> {
    if ServiceAccountId::parse(subject).is_some() {
        return Ok(
            crate::store::service_accounts::get(conn, subject)?.is_some_and(|s| s.is_active())
        );
    }
    if AccountId::parse(subject).is_some() {
        return Ok(crate::store::accounts::get(conn, subject)?
            .is_some_and(|a| a.state == crate::store::accounts::ACTIVE));
    }
    if OrgUnitId::parse(subject).is_some() {
        return Ok(crate::store::organizational_units::get(conn, subject)?.is_some());
    }
    Ok(false)
}

/// Revokes everything of one of the application's subjects (`sub` at the revocation
/// endpoint). Another application's subject, or an unknown one, is left alone.
pub fn revoke_subject(
    conn: &mut AnyConnection,
    application_id: &str,
    subject: &str,
    now: NaiveDateTime,
) -> Result<(), Error> {
    if ServiceAccountId::parse(subject).is_some() {
        if let Some(s) = crate::store::service_accounts::get(conn, subject)? {
            if s.application_id == application_id {
                service_accounts::revoke(conn, subject, now)?;
            }
        }
    } else if AccountId::parse(subject).is_some() {
        if let Some(a) = crate::store::accounts::get(conn, subject)? {
            if a.application_id == application_id {
                crate::store::accounts::set_state(
                    conn,
                    std::slice::from_ref(&a.id),
                    crate::store::accounts::REVOKED,
                    now,
                )?;
                crate::store::tokens::revoke_subjects(conn, &[a.id], now)?;
            }
        }
    } else if OrgUnitId::parse(subject).is_some() {
        // The unit's own authorization (its tokens); its linked accounts stay linked.
        if let Some(u) = crate::store::organizational_units::get(conn, subject)? {
            if u.application_id == application_id {
                crate::store::tokens::revoke_subjects(conn, &[u.id], now)?;
            }
        }
    }
    Ok(())
}

/// The token response: the tokens and what identifies their subject
/// (`service_account_id`; or `account_id`, `sub` and `linking_profile`).
pub fn token_response(conn: &mut AnyConnection, issued: &grants::Issued) -> Result<Value, Error> {
    let mut body = issued.to_json();
    if ServiceAccountId::parse(&issued.subject).is_some() {
        body["service_account_id"] = Value::String(issued.subject.clone());
    } else if OrgUnitId::parse(&issued.subject).is_some() {
        body["sub"] = Value::String(issued.subject.clone());
        body["organizational_unit_id"] = Value::String(issued.subject.clone());
    } else if let Some(a) = crate::store::accounts::get(conn, &issued.subject)? {
        body["account_id"] = Value::String(a.id.clone());
        body["sub"] = Value::String(a.id.clone());
        body["linking_profile"] = accounts::linking_profile(&a);
    }
    Ok(body)
}
