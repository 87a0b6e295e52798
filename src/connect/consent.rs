//! Consents in progress (DESIGN.md §6.3, §6.6): the authorize request's parameters kept
//! server-side for 30 minutes, bound to the browser that started them by a cookie
//! holding a random token (its digest is stored). Every page and form checks it, so a
//! flow's URL is useless in another browser and a cross-site form post is refused. The
//! cookie is `SameSite=Lax`: it must come back with Microsoft's redirect to us.

use serde_json::Value;

use super::service_accounts::{self, Consented};
use crate::error::{Error, Rejected};
use crate::oauth::request::with_query;
use crate::oauth::AuthorizeRequest;
use crate::secrets;
use crate::store::applications::ApplicationRow;
use crate::store::consent_flows::{self as store, FlowRow};
use crate::store::{self as db, write_tx, AnyConnection};

pub const FLOW_LIFETIME: std::time::Duration = std::time::Duration::from_secs(30 * 60);

/// The cookie of one flow (one per flow, so two tabs do not overwrite each other).
pub fn cookie_name(flow_id: &str) -> String {
    let short: String = flow_id
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .take(12)
        .collect();
    format!("scimgate_consent_{short}")
}

/// A live flow.
#[derive(Debug, Clone)]
pub struct Flow {
    pub id: String,
    pub application: ApplicationRow,
    pub request: AuthorizeRequest,
    /// Set for an organizational unit authorization (DESIGN.md §6.4).
    pub unit: Option<UnitFlow>,
}

/// Where an organizational unit authorization is: (1) the admin proves admin access to
/// the linked service account's domain or tenant, (2) authorizes the added provider,
/// (3) approves joining a unit.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct UnitFlow {
    /// Digest of the link token (consumed at the end).
    pub link_token: String,
    /// The service account the link token is bound to.
    pub linked: String,
    /// `calendars` or `conferencing`.
    pub capability: String,
    /// Step 1 done.
    #[serde(default)]
    pub proven: bool,
    /// Step 2 done: the service account added.
    #[serde(default)]
    pub added: Option<String>,
    /// With `conferencing`: the provider asked for (`zoom_enterprise`, …).
    #[serde(default)]
    pub conferencing_provider: Option<String>,
}

/// The stored parameters of a flow.
#[derive(serde::Serialize, serde::Deserialize)]
struct Params {
    #[serde(flatten)]
    request: AuthorizeRequest,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    unit: Option<UnitFlow>,
}

fn params_json(flow: &Flow) -> Result<String, Error> {
    serde_json::to_string(&Params {
        request: flow.request.clone(),
        unit: flow.unit.clone(),
    })
    .map_err(|e| Error::Internal(e.to_string()))
}

/// Starts a flow; returns it and the token for its cookie (and forms).
pub fn start(
    conn: &mut AnyConnection,
    application: &ApplicationRow,
    request: AuthorizeRequest,
) -> Result<(Flow, String), Error> {
    start_with(conn, application, request, None)
}

/// Starts a flow, of an organizational unit authorization when `unit` is given.
pub fn start_with(
    conn: &mut AnyConnection,
    application: &ApplicationRow,
    request: AuthorizeRequest,
    unit: Option<UnitFlow>,
) -> Result<(Flow, String), Error> {
    let flow = Flow {
        id: secrets::random_token(18)?,
        application: application.clone(),
        request,
        unit,
    };
    let csrf = secrets::random_token(32)?;
    let now = db::now();
    let row = FlowRow {
        id: flow.id.clone(),
        csrf_digest: secrets::digest(&csrf),
        application_id: application.id.clone(),
        params: params_json(&flow)?,
        expires_at: db::later(now, FLOW_LIFETIME),
        used_at: None,
        failures: 0,
    };
    write_tx(conn, |c| store::insert(c, &row))?;
    Ok((flow, csrf))
}

/// Saves a flow's progress.
pub fn save(conn: &mut AnyConnection, flow: &Flow) -> Result<(), Error> {
    let params = params_json(flow)?;
    write_tx(conn, |c| store::set_params(c, &flow.id, &params))
}

fn expired() -> Error {
    Rejected::new(
        400,
        "This authorization link has expired or was already used. Start again from the application.",
    )
    .into()
}

/// The flow, if it is live and `cookie` (its browser's token) matches.
pub fn load(conn: &mut AnyConnection, id: &str, cookie: Option<&str>) -> Result<Flow, Error> {
    let row = store::get(conn, id)?.ok_or_else(expired)?;
    if row.used_at.is_some() || row.expires_at <= db::now() {
        return Err(expired());
    }
    match cookie {
        Some(c) if secrets::matches_digest(c, &row.csrf_digest) => {}
        _ => {
            return Err(Rejected::new(
                403,
                "This authorization must be finished in the browser that started it, with cookies enabled.",
            )
            .into())
        }
    }
    let application = crate::store::applications::get(conn, &row.application_id)?
        .ok_or_else(|| Rejected::new(400, "the application no longer exists"))?;
    let params: Params =
        serde_json::from_str(&row.params).map_err(|e| Error::Internal(e.to_string()))?;
    Ok(Flow {
        id: row.id,
        application,
        request: params.request,
        unit: params.unit,
    })
}

/// A form's token must equal the cookie's (which `load` matched to the flow).
pub fn check_form(form_token: Option<&str>, cookie: Option<&str>) -> Result<(), Error> {
    match (form_token, cookie) {
        (Some(f), Some(c)) if !f.is_empty() && secrets::equal(f, c) => Ok(()),
        _ => Err(Rejected::new(
            403,
            "The form's security token is missing or wrong. Go back and try again.",
        )
        .into()),
    }
}

/// Records the provider the admin chose.
pub fn choose_provider(
    conn: &mut AnyConnection,
    flow: &mut Flow,
    provider: &str,
) -> Result<(), Error> {
    flow.request.provider_name = Some(provider.to_string());
    save(conn, flow)
}

/// Step 1 of a unit flow: the admin's proof must be for the linked service account's
/// own domain (Google) or tenant (Microsoft); another one is refused (and counted).
pub fn prove(conn: &mut AnyConnection, flow: &mut Flow, consent: &Consented) -> Result<(), Error> {
    let Some(unit) = flow.unit.as_mut() else {
        return Err(Error::Internal("not a unit flow".into()));
    };
    let linked = crate::store::service_accounts::get(conn, &unit.linked)?
        .filter(|s| s.is_active())
        .ok_or_else(|| Rejected::invalid("The linked service account was revoked."))?;
    let same = linked.provider == consent.provider
        && match (&linked.tenant_id, &consent.tenant_id) {
            (Some(a), Some(b)) => a.eq_ignore_ascii_case(b),
            (None, None) => linked.domain == consent.domain,
            _ => false,
        };
    if !same {
        let snapshot = flow.clone();
        failed_proof(conn, &snapshot)?;
        return Err(Rejected::invalid(format!(
            "That is not the {} the application is linked to ({}). Sign in as an administrator of it.",
            if linked.tenant_id.is_some() { "Microsoft 365 tenant" } else { "Google Workspace domain" },
            linked.domain.as_deref().or(linked.tenant_id.as_deref()).unwrap_or("?"),
        ))
        .into());
    }
    unit.proven = true;
    save(conn, flow)
}

/// Step 2 of a unit flow with calendars: the added calendar account (made or renewed
/// now; it joins the unit at step 3).
pub fn add_calendar(
    conn: &mut AnyConnection,
    flow: &mut Flow,
    consent: &Consented,
) -> Result<String, Error> {
    let r = flow.request.clone();
    let app = flow.application.id.clone();
    let ser = write_tx(conn, |c| {
        service_accounts::consented(c, &app, consent, &r.scope, &r.delegated_scope)
    })?;
    if let Some(unit) = flow.unit.as_mut() {
        unit.added = Some(ser.id.clone());
    }
    save(conn, flow)?;
    Ok(ser.id)
}

/// Step 2 of a unit flow with conferencing: the provider's account the admin authorized,
/// with its tokens (sealed). It joins the unit at step 3.
pub fn add_conferencing(
    conn: &mut AnyConnection,
    flow: &mut Flow,
    provider: &str,
    account: &str,
    admin_email: Option<&str>,
    tokens: &crate::providers::OAuthTokens,
    sealer: &crate::secrets::Sealer,
) -> Result<String, Error> {
    let access = sealer.seal(tokens.access_token.expose())?;
    let refresh = match &tokens.refresh_token {
        Some(r) => Some(sealer.seal(r.expose())?),
        None => None,
    };
    let app = flow.application.id.clone();
    let expires = tokens.expires_at.naive_utc();
    let new_id = crate::ids::ServiceAccountId::generate().into_string();
    let ser = write_tx(conn, |c| {
        crate::store::service_accounts::conferencing_consented(
            c,
            &new_id,
            &app,
            provider,
            account,
            admin_email,
            &access,
            expires,
            refresh.as_ref(),
        )
    })?;
    if let Some(unit) = flow.unit.as_mut() {
        unit.added = Some(ser.clone());
    }
    save(conn, flow)?;
    Ok(ser)
}

/// Step 3: joins the unit (`new`: a new one) and returns the redirect with the unit's code.
pub fn join(conn: &mut AnyConnection, flow: &Flow, new: bool) -> Result<String, Error> {
    let unit = flow
        .unit
        .as_ref()
        .filter(|u| u.proven && u.added.is_some())
        .ok_or_else(|| Rejected::invalid("This step is not reached yet."))?;
    let r = &flow.request;
    let how = if new {
        super::units::Join::New
    } else {
        super::units::Join::Existing
    };
    let code = write_tx(conn, |c| {
        if !store::finish(c, &flow.id, db::now())? {
            return Err(expired());
        }
        super::units::join(
            c,
            &flow.application.id,
            &unit.link_token,
            &unit.linked,
            unit.added.as_deref(),
            &how,
            &r.redirect_uri,
        )
    })?;
    Ok(with_query(
        &r.redirect_uri,
        &[("code", Some(&code)), ("state", r.state.as_deref())],
    ))
}

/// The admin proved their consent: ends the flow, makes or renews the service account,
/// issues its code. Returns the redirect back to the client and the service account.
pub fn complete(
    conn: &mut AnyConnection,
    flow: &Flow,
    consent: &Consented,
) -> Result<(String, String), Error> {
    let r = &flow.request;
    let attempt = |conn: &mut AnyConnection| {
        write_tx(conn, |c| {
            if !store::finish(c, &flow.id, db::now())? {
                return Err(expired());
            }
            let ser = service_accounts::consented(
                c,
                &flow.application.id,
                consent,
                &r.scope,
                &r.delegated_scope,
            )?;
            let code = super::grants::issue_code(
                c,
                &flow.application.id,
                &ser.id,
                &r.scope,
                &r.redirect_uri,
            )?;
            Ok((code, ser.id))
        })
    };
    let (code, ser) = match attempt(conn) {
        // Another consent for the same domain made its service account a moment ago:
        // this one renews it.
        Err(e) if db::is_unique_violation(&e) => attempt(conn)?,
        other => other?,
    };
    let to = with_query(
        &r.redirect_uri,
        &[("code", Some(&code)), ("state", r.state.as_deref())],
    );
    Ok((to, ser))
}

/// Most failed admin proofs of one flow; then it ends (the admin starts again from the
/// application).
pub const MAX_FAILURES: i64 = 5;

/// Counts a failed proof; ends the flow at the limit (an error then, a page).
pub fn failed_proof(conn: &mut AnyConnection, flow: &Flow) -> Result<(), Error> {
    let failures = write_tx(conn, |c| {
        let n = store::fail(c, &flow.id)?;
        if n >= MAX_FAILURES {
            store::finish(c, &flow.id, db::now())?;
        }
        Ok(n)
    })?;
    if failures >= MAX_FAILURES {
        return Err(Rejected::new(
            429,
            "Too many failed attempts. Start again from the application.",
        )
        .into());
    }
    Ok(())
}

/// The admin declined: ends the flow; the redirect says `access_denied`.
pub fn decline(conn: &mut AnyConnection, flow: &Flow) -> Result<String, Error> {
    write_tx(conn, |c| store::finish(c, &flow.id, db::now()))?;
    Ok(error_redirect(
        &flow.request.redirect_uri,
        "access_denied",
        flow.request.state.as_deref(),
    ))
}

/// An RFC 6749 §4.1.2.1 error at the client's (registered) redirect URI.
pub fn error_redirect(redirect_uri: &str, error: &str, state: Option<&str>) -> String {
    with_query(redirect_uri, &[("error", Some(error)), ("state", state)])
}

/// A flow's parameters as the pages show them.
pub fn describe(flow: &Flow) -> Value {
    serde_json::json!({
        "application": flow.application.name,
        "scope": flow.request.scope,
        "delegated_scope": flow.request.delegated_scope,
    })
}
