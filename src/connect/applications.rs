//! Applications: the integrators' OAuth clients (DESIGN.md §6.1). The client secret is
//! shown once, stored sealed (it keys callback signatures) and, as a digest, to find the
//! application of a Bearer secret.

use serde::Deserialize;
use serde_json::{json, Value};

use crate::error::{Error, Rejected};
use crate::ids::ApplicationId;
use crate::oauth::OAuthError;
use crate::scim::resource::timestamp;
use crate::secrets::{self, Sealer, Secret};
use crate::store::applications as store;
pub use crate::store::applications::ApplicationRow;
use crate::store::{self as db, write_tx, AnyConnection};

/// Most redirect URIs one application may register.
pub const MAX_REDIRECT_URIS: usize = 20;

/// `POST /api/v1/applications` (and `scimgate application create`).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewApplication {
    pub name: String,
    pub redirect_uris: Vec<String>,
}

/// Checks a redirect URI as registered: absolute http(s), no fragment (RFC 6749 §3.1.2).
/// Plain http is allowed: integrators develop against localhost.
fn check_redirect_uri(uri: &str) -> Result<(), Rejected> {
    crate::scim::limits::check_text("redirect_uri", uri, crate::scim::limits::MAX_INDEXED_CHARS)?;
    let parsed = url::Url::parse(uri)
        .map_err(|_| Rejected::invalid(format!("redirect_uri {uri:?} is not an absolute URL")))?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host().is_none() {
        return Err(Rejected::invalid(format!(
            "redirect_uri {uri:?} must be http or https"
        )));
    }
    if parsed.fragment().is_some() {
        return Err(Rejected::invalid(format!(
            "redirect_uri {uri:?} must not have a fragment"
        )));
    }
    Ok(())
}

/// The application and its client secret in the clear (shown once).
pub fn create(
    conn: &mut AnyConnection,
    sealer: &Sealer,
    new: NewApplication,
) -> Result<(ApplicationRow, Secret), Error> {
    let name = new.name.trim().to_string();
    if name.is_empty() {
        return Err(Rejected::invalid("name is required").into());
    }
    crate::scim::limits::check_text("name", &name, crate::scim::limits::MAX_INDEXED_CHARS)
        .map_err(Rejected::from)?;
    if new.redirect_uris.is_empty() || new.redirect_uris.len() > MAX_REDIRECT_URIS {
        return Err(Rejected::invalid(format!(
            "redirect_uris must list 1 to {MAX_REDIRECT_URIS} URIs"
        ))
        .into());
    }
    for uri in &new.redirect_uris {
        check_redirect_uri(uri)?;
    }
    let secret = Secret::new(secrets::random_token(32)?);
    let row = ApplicationRow {
        id: ApplicationId::generate().into_string(),
        client_id: secrets::random_token(24)?,
        client_secret: sealer.seal(secret.expose())?,
        client_secret_digest: secrets::digest(secret.expose()),
        name,
        redirect_uris: serde_json::to_string(&new.redirect_uris)
            .map_err(|e| Error::Internal(e.to_string()))?,
        created_at: db::now(),
    };
    write_tx(conn, |c| store::insert(c, &row))?;
    Ok((row, secret))
}

/// The admin API's shape; the secret only when just created.
pub fn to_json(row: &ApplicationRow, secret: Option<&Secret>) -> Value {
    let mut v = json!({
        "id": row.id,
        "client_id": row.client_id,
        "name": row.name,
        "redirect_uris": row.redirect_uris(),
        "created_at": timestamp(row.created_at),
    });
    if let Some(s) = secret {
        v["client_secret"] = json!(s.expose());
    }
    v
}

pub fn list(conn: &mut AnyConnection) -> Result<Vec<ApplicationRow>, Error> {
    store::list(conn)
}

/// Deletes an application and revokes everything it holds: its tokens, its service
/// accounts (and so the accounts provisioned through them). Returns the service accounts
/// revoked; `None` when unknown.
pub fn delete(conn: &mut AnyConnection, client_id: &str) -> Result<Option<Vec<String>>, Error> {
    write_tx(conn, |c| {
        let Some(app) = store::by_client_id(c, client_id)? else {
            return Ok(None);
        };
        let now = db::now();
        let revoked = crate::store::service_accounts::revoke_for_application(c, &app.id, now)?;
        for ser in &revoked {
            super::service_accounts::revoke_dependents(c, ser, now)?;
        }
        let accounts = crate::store::accounts::ids_of_application(c, &app.id)?;
        crate::store::accounts::set_state(c, &accounts, crate::store::accounts::REVOKED, now)?;
        crate::store::tokens::revoke_for_application(c, &app.id, now)?;
        store::delete(c, &app.id)?;
        Ok(Some(revoked))
    })
}

/// Client authentication at the token and revocation endpoints: `invalid_client` for an
/// unknown id or a wrong secret (the same answer, in constant time for the secret).
pub fn authenticate(
    conn: &mut AnyConnection,
    client_id: &str,
    client_secret: &str,
) -> Result<ApplicationRow, Error> {
    match store::by_client_id(conn, client_id)? {
        Some(app) if secrets::matches_digest(client_secret, &app.client_secret_digest) => Ok(app),
        _ => Err(OAuthError::invalid_client("unknown client or wrong client secret").into()),
    }
}

/// The application whose client secret is this Bearer token (its own `/v1/…` calls).
pub fn by_bearer_secret(
    conn: &mut AnyConnection,
    secret: &str,
) -> Result<Option<ApplicationRow>, Error> {
    store::by_secret_digest(conn, &secrets::digest(secret))
}

pub fn by_client_id(
    conn: &mut AnyConnection,
    client_id: &str,
) -> Result<Option<ApplicationRow>, Error> {
    store::by_client_id(conn, client_id)
}

/// Whether `uri` is one of the application's registered redirect URIs, exactly.
pub fn is_registered(app: &ApplicationRow, uri: &str) -> bool {
    app.redirect_uris().iter().any(|r| r == uri)
}
