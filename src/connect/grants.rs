//! Codes and tokens (DESIGN.md §6.3, §6.6): single-use 10-minute codes, access tokens
//! (30 minutes for a service account, an hour otherwise) and refresh tokens that rotate
//! on use. A code and every token it led to share a *family*: a reused code or a reused
//! (already rotated) refresh token revokes the whole family, since one of the two users
//! is not the client. Only SHA-256 digests are stored.

use chrono::NaiveDateTime;
use serde_json::{json, Value};

use crate::error::Error;
use crate::oauth::{Grant, OAuthError, RevokeTarget};
use crate::secrets;
use crate::store::applications::ApplicationRow;
use crate::store::tokens::{self as store, TokenRow, ACCESS, CODE, REFRESH};
use crate::store::{self as db, write_tx, AnyConnection};

pub const CODE_LIFETIME: std::time::Duration = std::time::Duration::from_secs(600);

/// Seconds an access token lives, by the kind of subject it speaks for.
pub fn access_lifetime_secs(subject: &str) -> i64 {
    if subject.starts_with(crate::ids::ServiceAccountId::PREFIX) {
        1800
    } else {
        3600
    }
}

/// What a new token is for.
struct Mint<'a> {
    kind: &'a str,
    application_id: &'a str,
    subject: &'a str,
    family: &'a str,
    scope: &'a str,
    redirect_uri: Option<&'a str>,
    expires_at: Option<NaiveDateTime>,
}

/// A new random token and its row.
fn mint(m: Mint<'_>, now: NaiveDateTime) -> Result<(String, TokenRow), Error> {
    let token = secrets::random_token(32)?;
    let row = TokenRow {
        digest: secrets::digest(&token),
        kind: m.kind.into(),
        application_id: m.application_id.into(),
        subject: m.subject.into(),
        family: m.family.into(),
        scope: m.scope.into(),
        redirect_uri: m.redirect_uri.map(str::to_string),
        expires_at: m.expires_at,
        used_at: None,
        revoked_at: None,
        created_at: now,
    };
    Ok((token, row))
}

/// Issues a code for `subject`, redeemable once within 10 minutes by `application_id`
/// with exactly `redirect_uri`. Call inside the write transaction that made the subject.
pub fn issue_code(
    conn: &mut AnyConnection,
    application_id: &str,
    subject: &str,
    scope: &str,
    redirect_uri: &str,
) -> Result<String, Error> {
    let now = db::now();
    let family = uuid::Uuid::now_v7().simple().to_string();
    let (code, row) = mint(
        Mint {
            kind: CODE,
            application_id,
            subject,
            family: &family,
            scope,
            redirect_uri: Some(redirect_uri),
            expires_at: Some(db::later(now, CODE_LIFETIME)),
        },
        now,
    )?;
    store::insert(conn, &[row])?;
    Ok(code)
}

/// Tokens just issued, before the subject's own fields are added.
#[derive(Debug)]
pub struct Issued {
    pub access_token: String,
    pub refresh_token: String,
    pub expires_in: i64,
    pub scope: String,
    pub subject: String,
}

impl Issued {
    /// The token response body (`token_type` in lower case, as Cronofy answers).
    pub fn to_json(&self) -> Value {
        json!({
            "token_type": "bearer",
            "access_token": self.access_token,
            "expires_in": self.expires_in,
            "refresh_token": self.refresh_token,
            "scope": self.scope,
        })
    }
}

fn issue_pair(
    conn: &mut AnyConnection,
    application_id: &str,
    subject: &str,
    family: &str,
    scope: &str,
    now: NaiveDateTime,
) -> Result<Issued, Error> {
    let lifetime = access_lifetime_secs(subject);
    let of = |kind, expires_at| Mint {
        kind,
        application_id,
        subject,
        family,
        scope,
        redirect_uri: None,
        expires_at,
    };
    let (access_token, access) = mint(
        of(ACCESS, Some(now + chrono::Duration::seconds(lifetime))),
        now,
    )?;
    // Refresh tokens live until used or revoked, as Cronofy's.
    let (refresh_token, refresh) = mint(of(REFRESH, None), now)?;
    store::insert(conn, &[access, refresh])?;
    Ok(Issued {
        access_token,
        refresh_token,
        expires_in: lifetime,
        scope: scope.into(),
        subject: subject.into(),
    })
}

/// Redeems a grant at the token endpoint for an authenticated application. A refusal
/// that revoked something (a reused code or refresh token) is committed before it is
/// returned.
pub fn exchange(
    conn: &mut AnyConnection,
    app: &ApplicationRow,
    grant: &Grant,
) -> Result<Issued, Error> {
    let outcome = write_tx(conn, |c| -> Result<Result<Issued, OAuthError>, Error> {
        let now = db::now();
        let (presented, kind) = match grant {
            Grant::AuthorizationCode { code, .. } => (code, CODE),
            Grant::RefreshToken { refresh_token } => (refresh_token, REFRESH),
        };
        let what = if kind == CODE {
            "code"
        } else {
            "refresh token"
        };
        let row = match store::get(c, &secrets::digest(presented))? {
            Some(r) if r.kind == kind && r.application_id == app.id => r,
            _ => return Ok(Err(OAuthError::invalid_grant(format!("unknown {what}")))),
        };
        if row.revoked_at.is_some() {
            return Ok(Err(OAuthError::invalid_grant(format!(
                "the {what} was revoked"
            ))));
        }
        if row.used_at.is_some() {
            // Reuse: whoever holds the other copy must not keep what it got.
            store::revoke_family(c, &row.family, now)?;
            return Ok(Err(OAuthError::invalid_grant(format!(
                "the {what} was already used; every token issued from it is revoked"
            ))));
        }
        if row.expires_at.is_some_and(|e| e <= now) {
            return Ok(Err(OAuthError::invalid_grant(format!(
                "the {what} expired"
            ))));
        }
        if let Grant::AuthorizationCode { redirect_uri, .. } = grant {
            if row.redirect_uri.as_deref() != Some(redirect_uri.as_str()) {
                return Ok(Err(OAuthError::invalid_grant(
                    "redirect_uri does not match the one the code was issued for",
                )));
            }
        }
        if !super::subject_is_active(c, &row.subject)? {
            return Ok(Err(OAuthError::invalid_grant(
                "the authorization was revoked",
            )));
        }
        if !store::mark_used(c, &row.digest, now)? {
            // Redeemed by a concurrent request a moment ago: the same as reuse.
            store::revoke_family(c, &row.family, now)?;
            return Ok(Err(OAuthError::invalid_grant(format!(
                "the {what} was already used; every token issued from it is revoked"
            ))));
        }
        issue_pair(c, &app.id, &row.subject, &row.family, &row.scope, now).map(Ok)
    })?;
    outcome.map_err(Error::from)
}

/// `POST /oauth/token/revoke`: a token (its family goes) or a subject (all of it, with
/// what depends on it). Anything unknown or not the application's is ignored (RFC 7009
/// §2.2: the answer is 200 either way).
pub fn revoke(
    conn: &mut AnyConnection,
    app: &ApplicationRow,
    target: &RevokeTarget,
) -> Result<(), Error> {
    write_tx(conn, |c| {
        let now = db::now();
        match target {
            RevokeTarget::Token(t) => {
                if let Some(row) = store::get(c, &secrets::digest(t))? {
                    if row.application_id == app.id {
                        store::revoke_family(c, &row.family, now)?;
                    }
                }
                Ok(())
            }
            RevokeTarget::Subject(sub) => super::revoke_subject(c, &app.id, sub, now),
        }
    })
}

/// Who a live access token speaks for.
#[derive(Debug, Clone)]
pub struct Bearer {
    pub application_id: String,
    pub subject: String,
    pub scope: String,
}

/// The subject of a live access token whose subject is still active; `None` otherwise
/// (unknown, expired, revoked, or its account suspended: all answer 401).
pub fn authenticate(conn: &mut AnyConnection, token: &str) -> Result<Option<Bearer>, Error> {
    let Some(row) = store::get(conn, &secrets::digest(token))? else {
        return Ok(None);
    };
    if row.kind != ACCESS
        || !row.is_live(db::now())
        || !super::subject_is_active(conn, &row.subject)?
    {
        return Ok(None);
    }
    Ok(Some(Bearer {
        application_id: row.application_id,
        subject: row.subject,
        scope: row.scope,
    }))
}
