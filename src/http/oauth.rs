//! The OAuth 2 authorization server (DESIGN.md §6.3, §6.6): the consent pages at
//! `/enterprise_connect/oauth/authorize`, `POST /oauth/token` and
//! `POST /oauth/token/revoke`. Token endpoints take JSON or form bodies and ignore
//! `Authorization` (Cronofy's SDKs send `Bearer None`); refusals before a redirect URI is
//! trusted are HTML pages, never redirects.

use std::collections::HashMap;

use actix_web::cookie::{Cookie, SameSite};
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use maud::{html, Markup};

use super::error::{HtmlFailure, OAuthFailure};
use super::extract::bounded_body;
use super::pages::{layout, respond};
use super::AppState;
use crate::connect::applications::ApplicationRow;
use crate::connect::consent::{self, Flow};
use crate::connect::provider_access::{GOOGLE, OFFICE365};
use crate::connect::units::{CALENDARS, CONFERENCING};
use crate::connect::{applications, grants, units};
use crate::error::{Error, Rejected};
use crate::oauth::{AuthorizeRequest, OAuthError, TokenRequest};
use crate::store::AnyConnection;

const AUTHORIZE: &str = "/enterprise_connect/oauth/authorize";
const CONSENT: &str = "/enterprise_connect/oauth/consent";
const GOOGLE_FORM: &str = "/enterprise_connect/oauth/google";
const MICROSOFT_RETURN: &str = "/enterprise_connect/oauth/microsoft";
const DECLINE: &str = "/enterprise_connect/oauth/decline";
const JOIN: &str = "/enterprise_connect/oauth/join";
const CONFERENCING_RETURN: &str = "/enterprise_connect/oauth/conferencing";

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/oauth/token", web::post().to(token))
        .route("/oauth/token/revoke", web::post().to(revoke))
        .route(AUTHORIZE, web::get().to(authorize))
        .route(CONSENT, web::get().to(consent_page))
        .route(GOOGLE_FORM, web::post().to(google_submit))
        .route(MICROSOFT_RETURN, web::get().to(microsoft_return))
        .route(DECLINE, web::post().to(decline))
        .route(JOIN, web::post().to(join))
        .route(CONFERENCING_RETURN, web::get().to(conferencing_return))
        .route("/organizational_unit_oauth", web::get().to(unit_authorize))
        .route("/oauth/authorize", web::get().to(unit_authorize));
}

/// A JSON object or a form body as flat strings (numbers and booleans as text, `null`
/// as absent).
async fn fields(
    req: &HttpRequest,
    payload: web::Payload,
    limit: usize,
) -> Result<HashMap<String, String>, Error> {
    let body = bounded_body(payload, req, limit).await?;
    let form = req
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| {
            t.to_ascii_lowercase()
                .starts_with("application/x-www-form-urlencoded")
        });
    if form {
        return Ok(url::form_urlencoded::parse(&body).into_owned().collect());
    }
    let value: serde_json::Value = serde_json::from_slice(&body)
        .map_err(|_| OAuthError::invalid_request("the body must be a JSON object or a form"))?;
    let serde_json::Value::Object(map) = value else {
        return Err(OAuthError::invalid_request("the body must be a JSON object").into());
    };
    Ok(map
        .into_iter()
        .filter_map(|(k, v)| match v {
            serde_json::Value::Null => None,
            serde_json::Value::String(s) => Some((k, s)),
            other => Some((k, other.to_string())),
        })
        .collect())
}

fn no_store(mut r: actix_web::HttpResponseBuilder) -> actix_web::HttpResponseBuilder {
    r.insert_header(("Cache-Control", "no-store"))
        .insert_header(("Pragma", "no-cache"));
    r
}

/// Reads a token-endpoint body and runs `f` for the client it authenticates — first,
/// so a request that fails it touches no code or token.
async fn as_client<T: Send + 'static>(
    state: &AppState,
    req: &HttpRequest,
    payload: web::Payload,
    f: impl FnOnce(&mut AnyConnection, &ApplicationRow, &HashMap<String, String>) -> Result<T, Error>
        + Send
        + 'static,
) -> Result<T, Error> {
    let fields = fields(req, payload, 64 * 1024).await?;
    let (client_id, secret) = crate::oauth::request::client_credentials(&fields)?;
    state
        .db
        .run(move |c| {
            let app = applications::authenticate(c, &client_id, &secret)?;
            f(c, &app, &fields)
        })
        .await
}

async fn token(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, OAuthFailure> {
    let body = as_client(&state, &req, payload, |c, app, fields| {
        let request = TokenRequest::parse(fields)?;
        let issued = grants::exchange(c, app, &request.grant)?;
        crate::connect::token_response(c, &issued)
    })
    .await?;
    Ok(no_store(HttpResponse::Ok()).json(body))
}

async fn revoke(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, OAuthFailure> {
    let target = as_client(&state, &req, payload, |c, app, fields| {
        let target = crate::oauth::request::revoke_target(fields)?;
        grants::revoke(c, app, &target)?;
        Ok(target)
    })
    .await?;
    if let crate::oauth::RevokeTarget::Subject(s) = target {
        state.providers.forget(&s);
    }
    Ok(no_store(HttpResponse::Ok()).finish())
}

fn query(req: &HttpRequest) -> HashMap<String, String> {
    let mut out = HashMap::new();
    for (k, v) in url::form_urlencoded::parse(req.query_string().as_bytes()) {
        out.entry(k.into_owned()).or_insert_with(|| v.into_owned());
    }
    out
}

fn redirect(to: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header(("Location", to))
        .insert_header(("Cache-Control", "no-store"))
        .finish()
}

fn secure_cookies(state: &AppState) -> bool {
    state.external_url.starts_with("https://")
}

/// `GET /enterprise_connect/oauth/authorize`: checks the client and redirect URI (a page
/// when either is wrong), starts a flow bound to this browser, and shows its first page.
async fn authorize(
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, HtmlFailure> {
    let q = query(&req);
    let (app, redirect_uri) = client_of(&state, &q).await?;
    // From here on, errors go back to the client.
    let request = match AuthorizeRequest::parse(&q, &redirect_uri, true) {
        Ok(r) => r,
        Err(e) => return Ok(redirect(&error_back(&q, &redirect_uri, &e))),
    };
    let (flow, csrf) = state
        .db
        .run(move |c| consent::start(c, &app, request))
        .await?;
    flow_response(&state, &flow, csrf)
}

/// The first page of a new flow, with the cookie that binds it to this browser.
fn flow_response(state: &AppState, flow: &Flow, csrf: String) -> Result<HttpResponse, HtmlFailure> {
    let mut target = format!("{CONSENT}?flow={}", flow.id);
    if let Some(p) = flow
        .request
        .provider_name
        .as_deref()
        .filter(|p| flow.unit.is_none() && state.providers.offered().contains(p))
    {
        target.push_str(&format!("&provider={p}"));
    }
    let cookie = Cookie::build(consent::cookie_name(&flow.id), csrf)
        .path("/enterprise_connect/oauth")
        .http_only(true)
        .secure(secure_cookies(state))
        // Lax: it must come back with Microsoft's top-level redirect to us.
        .same_site(SameSite::Lax)
        .max_age(actix_web::cookie::time::Duration::seconds(
            consent::FLOW_LIFETIME.as_secs() as i64,
        ))
        .finish();
    let mut r = redirect(&target);
    r.add_cookie(&cookie)
        .map_err(|e| Error::Internal(e.to_string()))?;
    Ok(r)
}

/// The client of an authorize request and its exactly registered redirect URI; a page
/// when either is wrong (never a redirect).
async fn client_of(
    state: &AppState,
    q: &HashMap<String, String>,
) -> Result<(ApplicationRow, String), Error> {
    let client_id = q.get("client_id").cloned().unwrap_or_default();
    let redirect_uri = q.get("redirect_uri").cloned().unwrap_or_default();
    let app = state
        .db
        .run(move |c| applications::by_client_id(c, &client_id))
        .await?
        .ok_or_else(|| {
            Rejected::invalid(
                "Unknown client_id: this link was not made by a registered application.",
            )
        })?;
    if !applications::is_registered(&app, &redirect_uri) {
        return Err(
            Rejected::invalid("The redirect_uri is not registered for this application.").into(),
        );
    }
    Ok((app, redirect_uri))
}

/// `GET /organizational_unit_oauth` (and `/oauth/authorize` with the unit scope): an
/// organizational unit authorization (DESIGN.md §6.4). Refusals are pages: an unknown
/// client or redirect URI, a used, expired or foreign link token, a missing capability.
async fn unit_authorize(
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, HtmlFailure> {
    let q = query(&req);
    let (app, redirect_uri) = client_of(&state, &q).await?;
    let scope = q.get("scope").cloned().unwrap_or_default();
    if !scope.split_whitespace().any(|s| s == units::UNIT_SCOPE) {
        return Err(Rejected::invalid(format!(
            "This address serves organizational unit authorizations: scope must be {}.",
            units::UNIT_SCOPE
        ))
        .into());
    }
    let capabilities: Vec<String> = url::form_urlencoded::parse(req.query_string().as_bytes())
        .filter(|(k, _)| k == "capabilities[]" || k == "capabilities")
        .map(|(_, v)| v.into_owned())
        .collect();
    let mut conferencing_provider = None;
    let capability = match capabilities.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["calendars"] => CALENDARS,
        ["conferencing"] => {
            let asked = q
                .get("conferencing_provider_name")
                .cloned()
                .unwrap_or_default();
            let offered = state.providers.offered_conferencing();
            if !offered.contains(&asked.as_str()) {
                return Ok(respond(
                    StatusCode::BAD_REQUEST,
                    layout(
                        "Choose a conferencing provider",
                        html! {
                            p { "The conferencing provider " code { (asked) } " is not offered here. The application may ask for one of these (" code { "conferencing_provider_name" } "):" }
                            @if offered.is_empty() { p.error { "No conferencing provider is configured on this gateway." } }
                            ul.providers { @for p in &offered { li data-provider=(p) { code { (p) } } } }
                        },
                    ),
                ));
            }
            conferencing_provider = Some(asked);
            CONFERENCING
        }
        [] => {
            return Err(
                Rejected::invalid("capabilities[] is required: calendars or conferencing.").into(),
            )
        }
        _ => {
            return Err(Rejected::invalid(
                "capabilities[] must be one of calendars or conferencing.",
            )
            .into())
        }
    };
    let token = q.get("ou_link_token").cloned().unwrap_or_default();
    let app2 = app.clone();
    let linked = state
        .db
        .run(move |c| units::check_link_token(c, &app2, &token))
        .await?;
    let request = match AuthorizeRequest::parse(&q, &redirect_uri, false) {
        Ok(r) => r,
        Err(e) => return Ok(redirect(&error_back(&q, &redirect_uri, &e))),
    };
    let unit = consent::UnitFlow {
        link_token: crate::secrets::digest(
            q.get("ou_link_token").map(String::as_str).unwrap_or(""),
        ),
        linked: linked.id,
        capability: capability.into(),
        proven: false,
        added: None,
        conferencing_provider,
    };
    let (flow, csrf) = state
        .db
        .run(move |c| consent::start_with(c, &app, request, Some(unit)))
        .await?;
    flow_response(&state, &flow, csrf)
}

/// An RFC 6749 §4.1.2.1 error at the (registered) redirect URI; a `state` refused as
/// too long is not echoed either.
fn error_back(
    q: &HashMap<String, String>,
    redirect_uri: &str,
    e: &crate::oauth::OAuthError,
) -> String {
    let state_param = q
        .get("state")
        .filter(|s| !s.is_empty() && s.chars().count() <= crate::oauth::request::MAX_STATE_CHARS);
    crate::oauth::request::with_query(
        redirect_uri,
        &[
            ("error", Some(e.code.as_str())),
            ("error_description", Some(&e.description)),
            ("state", state_param.map(String::as_str)),
        ],
    )
}

fn cookie_of(req: &HttpRequest, flow_id: &str) -> Option<String> {
    req.cookie(&consent::cookie_name(flow_id))
        .map(|c| c.value().to_string())
}

async fn load_flow(
    state: &AppState,
    req: &HttpRequest,
    flow_id: &str,
) -> Result<(Flow, String), Error> {
    let cookie = cookie_of(req, flow_id);
    let (id, c2) = (flow_id.to_string(), cookie.clone());
    let flow = state
        .db
        .run(move |c| consent::load(c, &id, c2.as_deref()))
        .await?;
    Ok((flow, cookie.unwrap_or_default()))
}

fn provider_label(p: &str) -> &'static str {
    match p {
        GOOGLE => "Google Workspace",
        OFFICE365 => "Microsoft 365",
        _ => "Unknown",
    }
}

fn summary(flow: &Flow) -> Markup {
    html! {
        p { strong { (flow.application.name) } " asks for access to the calendars of your organization." }
        div.box {
            p { "Access requested: " code { (flow.request.scope) } }
            @if !flow.request.delegated_scope.is_empty() {
                p { "For each person: " code { (flow.request.delegated_scope) } }
            }
        }
    }
}

fn decline_form(flow: &Flow, csrf: &str) -> Markup {
    html! {
        form method="post" action=(DECLINE) {
            input type="hidden" name="flow" value=(flow.id);
            input type="hidden" name="csrf" value=(csrf);
            button.secondary type="submit" name="decline" value="1" { "Decline" }
        }
    }
}

/// The consent page: the provider choice, or the chosen provider's steps.
async fn consent_page(
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, HtmlFailure> {
    let q = query(&req);
    let flow_id = q.get("flow").cloned().unwrap_or_default();
    let (mut flow, csrf) = load_flow(&state, &req, &flow_id).await?;
    if let Some(unit) = flow.unit.clone() {
        let linked_id = unit.linked.clone();
        let linked = state
            .db
            .run(move |c| units::service_account(c, &linked_id))
            .await?;
        if !unit.proven {
            // Step 1: the linked account's own provider, for the same domain or tenant.
            let domain = linked.domain.clone().unwrap_or_default();
            let page = provider_page(
                &state,
                &flow,
                &csrf,
                &linked.provider,
                None,
                Some((&domain, "")),
            );
            return Ok(respond(StatusCode::OK, page));
        }
        if unit.added.is_none() && unit.capability == CONFERENCING {
            let name = unit.conferencing_provider.clone().unwrap_or_default();
            let link = state
                .providers
                .conferencing(&name)
                .map(|p| {
                    p.authorize_url(
                        &format!("{}{CONFERENCING_RETURN}", state.external_url),
                        &flow.id,
                    )
                })
                .unwrap_or_default();
            let page = layout(
                "Connect your conferencing account",
                html! {
                    (summary(&flow))
                    p.step { "Step 2 of 3: authorize the conferencing account to add to your organizational unit." }
                    p { "An administrator of the " code { (name) } " account signs in on its page and allows access; you then come back here." }
                    a.button.conferencing href=(link) data-provider=(name) { "Continue to " (name) }
                    (decline_form(&flow, &csrf))
                },
            );
            return Ok(respond(StatusCode::OK, page));
        }
        if let Some(added) = unit.added.clone() {
            let added = state
                .db
                .run(move |c| units::service_account(c, &added))
                .await?;
            return Ok(respond(
                StatusCode::OK,
                approve_page(&flow, &csrf, &linked, &added),
            ));
        }
    }
    let offered = state.providers.offered();
    let chosen = q
        .get("provider")
        .cloned()
        .or_else(|| flow.request.provider_name.clone())
        .filter(|p| offered.contains(&p.as_str()));
    let Some(provider) = chosen else {
        let page = layout(
            "Connect your calendars",
            html! {
                (summary(&flow))
                @if offered.is_empty() {
                    p.error { "No calendar provider is configured on this gateway." }
                } @else {
                    p { "Choose where your organization's calendars are:" }
                    ul.providers {
                        @for p in &offered {
                            li { a.button href=(format!("{CONSENT}?flow={}&provider={p}", flow.id)) data-provider=(p) { (provider_label(p)) } }
                        }
                    }
                }
                (decline_form(&flow, &csrf))
            },
        );
        return Ok(respond(StatusCode::OK, page));
    };
    if flow.request.provider_name.as_deref() != Some(provider.as_str()) {
        let p = provider.clone();
        let mut f = flow.clone();
        flow = state
            .db
            .run(move |c| consent::choose_provider(c, &mut f, &p).map(|_| f))
            .await?;
    }
    Ok(respond(
        StatusCode::OK,
        provider_page(&state, &flow, &csrf, &provider, None, None),
    ))
}

/// The step of a unit flow the page is for, in words.
fn unit_step(flow: &Flow) -> Option<&'static str> {
    let unit = flow.unit.as_ref()?;
    Some(if !unit.proven {
        "Step 1 of 3: show that you administer the calendar account this application is already linked to."
    } else {
        "Step 2 of 3: connect the calendar account to add to your organizational unit."
    })
}

/// Step 3 of a unit flow: join the unit the linked account belongs to (pre-selected),
/// or a new one.
fn approve_page(
    flow: &Flow,
    csrf: &str,
    linked: &crate::connect::units::ServiceAccountRow,
    added: &crate::connect::units::ServiceAccountRow,
) -> Markup {
    let describe = |s: &crate::connect::units::ServiceAccountRow| {
        format!(
            "{} {}",
            provider_label(&s.provider),
            s.domain.as_deref().or(s.tenant_id.as_deref()).unwrap_or("")
        )
    };
    let existing = linked
        .organizational_unit_id
        .clone()
        .unwrap_or_else(|| "a unit made for it now".into());
    layout(
        "Approve the organizational unit",
        html! {
            p { "Step 3 of 3: " strong { (flow.application.name) } " will provision people through these calendar accounts, in this order." }
            div.box { ol { li { (describe(linked)) } li { (describe(added)) } } }
            form method="post" action=(JOIN) {
                input type="hidden" name="flow" value=(flow.id);
                input type="hidden" name="csrf" value=(csrf);
                label { input type="radio" name="unit" value="existing" checked; " Join the unit of " (describe(linked)) " (" (existing) ")" }
                label { input type="radio" name="unit" value="new"; " Make a new unit for both" }
                button type="submit" { "Approve" }
            }
            (decline_form(flow, csrf))
        },
    )
}

fn provider_page(
    state: &AppState,
    flow: &Flow,
    csrf: &str,
    provider: &str,
    error: Option<&str>,
    given: Option<(&str, &str)>,
) -> Markup {
    let (domain, admin) = given.unwrap_or_default();
    match provider {
        GOOGLE => {
            let client_id = state
                .providers
                .google
                .as_ref()
                .map(|g| g.client_id().to_string())
                .unwrap_or_default();
            layout(
                "Connect Google Workspace",
                html! {
                    (summary(flow))
                    @if let Some(step) = unit_step(flow) { p.step { (step) } }
                    @if let Some(e) = error { p.error.box role="alert" { (e) } }
                    ol {
                        li { "In the Google Admin console, open Security → Access and data control → API controls → Manage domain-wide delegation." }
                        li { "Add a new API client with client ID " code { (client_id) } " and the scope " code { (crate::providers::google::USER_READONLY_SCOPE) } "." }
                        li { "Enter your domain and the email of an administrator of it below." }
                    }
                    form method="post" action=(GOOGLE_FORM) {
                        input type="hidden" name="flow" value=(flow.id);
                        input type="hidden" name="csrf" value=(csrf);
                        label for="domain" { "Domain" }
                        input type="text" id="domain" name="domain" value=(domain) required placeholder="example.com";
                        label for="admin_email" { "Administrator's email" }
                        input type="email" id="admin_email" name="admin_email" value=(admin) required placeholder="admin@example.com";
                        button type="submit" { "Verify and connect" }
                    }
                    (decline_form(flow, csrf))
                },
            )
        }
        _ => {
            let consent_url = state
                .providers
                .microsoft
                .as_ref()
                .map(|m| {
                    m.admin_consent_url(
                        &format!("{}{MICROSOFT_RETURN}", state.external_url),
                        &flow.id,
                    )
                })
                .unwrap_or_default();
            layout(
                "Connect Microsoft 365",
                html! {
                    (summary(flow))
                    @if let Some(step) = unit_step(flow) { p.step { (step) } }
                    @if let Some(e) = error { p.error.box role="alert" { (e) } }
                    p { "A global administrator of your Microsoft 365 tenant grants the access on Microsoft's consent page; you then come back here." }
                    a.button.microsoft href=(consent_url) { "Continue to Microsoft" }
                    (decline_form(flow, csrf))
                },
            )
        }
    }
}

/// A consent form's fields, read by hand so a malformed one gets the HTML error page.
async fn form(req: &HttpRequest, payload: web::Payload) -> Result<HashMap<String, String>, Error> {
    let body = bounded_body(payload, req, 16 * 1024).await?;
    let mut out = HashMap::new();
    for (k, v) in url::form_urlencoded::parse(&body) {
        out.entry(k.into_owned()).or_insert_with(|| v.into_owned());
    }
    Ok(out)
}

/// The flow a consent form belongs to, with its CSRF token checked.
async fn form_flow(
    state: &AppState,
    req: &HttpRequest,
    fields: &HashMap<String, String>,
) -> Result<(Flow, String), Error> {
    let id = fields
        .get("flow")
        .ok_or_else(|| Rejected::invalid("The form is incomplete. Go back and try again."))?;
    let (flow, cookie) = load_flow(state, req, id).await?;
    consent::check_form(fields.get("csrf").map(String::as_str), Some(&cookie))?;
    Ok((flow, cookie))
}

async fn google_submit(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, HtmlFailure> {
    let fields = form(&req, payload).await?;
    let (flow, cookie) = form_flow(&state, &req, &fields).await?;
    let domain = fields.get("domain").cloned().unwrap_or_default();
    let admin = fields.get("admin_email").cloned().unwrap_or_default();
    match state.providers.verify_google(&domain, &admin).await {
        Ok(consented) => consented_response(&state, &flow, &cookie, consented).await,
        Err(e) => {
            let f = flow.clone();
            state.db.run(move |c| consent::failed_proof(c, &f)).await?;
            let msg = format!("Google refused: {e}");
            let page = provider_page(
                &state,
                &flow,
                &cookie,
                GOOGLE,
                Some(&msg),
                Some((&domain, &admin)),
            );
            Ok(respond(StatusCode::BAD_REQUEST, page))
        }
    }
}

/// Microsoft's admin consent returns here (`?tenant&admin_consent=True&state` or
/// `?error&error_description&state`); `state` is the flow.
async fn microsoft_return(
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, HtmlFailure> {
    let q = query(&req);
    let flow_id = q.get("state").cloned().unwrap_or_default();
    let (flow, cookie) = load_flow(&state, &req, &flow_id).await?;
    if q.contains_key("error") {
        let f = flow.clone();
        let to = state.db.run(move |c| consent::decline(c, &f)).await?;
        return Ok(redirect(&to));
    }
    let tenant = q.get("tenant").cloned().unwrap_or_default();
    let granted = q
        .get("admin_consent")
        .is_some_and(|v| v.eq_ignore_ascii_case("true"));
    let verified = if !granted || tenant.is_empty() {
        Err("Microsoft did not confirm an administrator's consent".to_string())
    } else {
        state
            .providers
            .verify_microsoft(&tenant)
            .await
            .map_err(|e| e.to_string())
    };
    match verified {
        Ok(consented) => consented_response(&state, &flow, &cookie, consented).await,
        Err(e) => {
            let f = flow.clone();
            state.db.run(move |c| consent::failed_proof(c, &f)).await?;
            let page = provider_page(
                &state,
                &flow,
                &cookie,
                OFFICE365,
                Some(&format!("Microsoft refused: {e}")),
                None,
            );
            Ok(respond(StatusCode::BAD_REQUEST, page))
        }
    }
}

/// An admin's consent was proven: the end of a service account consent (the redirect
/// with its code), or the next step of a unit flow.
async fn consented_response(
    state: &AppState,
    flow: &Flow,
    cookie: &str,
    consented: crate::connect::service_accounts::Consented,
) -> Result<HttpResponse, HtmlFailure> {
    let provider = consented.provider;
    let mut f = flow.clone();
    let result = match &flow.unit {
        None => {
            let (to, ser) = state
                .db
                .run(move |c| consent::complete(c, &f, &consented))
                .await?;
            // A renewed consent's old provider token goes (its admin may have changed).
            state.providers.forget(&ser);
            return Ok(redirect(&to));
        }
        Some(unit) if !unit.proven => {
            state
                .db
                .run(move |c| consent::prove(c, &mut f, &consented))
                .await
        }
        Some(_) => state
            .db
            .run(move |c| consent::add_calendar(c, &mut f, &consented))
            .await
            .map(|ser| state.providers.forget(&ser)),
    };
    match result {
        Ok(()) => Ok(redirect(&format!("{CONSENT}?flow={}", flow.id))),
        Err(Error::Rejected(r)) if r.status == 400 => Ok(respond(
            StatusCode::BAD_REQUEST,
            provider_page(state, flow, cookie, provider, Some(&r.message), None),
        )),
        Err(e) => Err(e.into()),
    }
}

/// The conferencing provider's authorization returns here (`?code&state` or
/// `?error&state`); `state` is the flow.
async fn conferencing_return(
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, HtmlFailure> {
    let q = query(&req);
    let flow_id = q.get("state").cloned().unwrap_or_default();
    let (mut flow, _) = load_flow(&state, &req, &flow_id).await?;
    let name = flow
        .unit
        .as_ref()
        .filter(|u| u.proven && u.added.is_none() && u.capability == CONFERENCING)
        .and_then(|u| u.conferencing_provider.clone())
        .ok_or_else(|| Rejected::invalid("This step is not reached yet."))?;
    if q.contains_key("error") {
        let to = state.db.run(move |c| consent::decline(c, &flow)).await?;
        return Ok(redirect(&to));
    }
    let provider = state
        .providers
        .conferencing(&name)
        .ok_or_else(|| Rejected::invalid(format!("{name} is no longer offered here.")))?;
    let code = q.get("code").cloned().unwrap_or_default();
    let back = format!("{}{CONFERENCING_RETURN}", state.external_url);
    let refused = |e: crate::providers::ProviderError| -> HtmlFailure {
        Error::from(Rejected::invalid(format!("{name} refused: {e}"))).into()
    };
    let tokens = provider
        .exchange_code(&code, &back)
        .await
        .map_err(refused)?;
    let me = provider
        .me(tokens.access_token.expose())
        .await
        .map_err(refused)?;
    // Indeed has no "me": the account is the client's own.
    let (account, admin) = match me {
        Some(m) => (m.account_id, Some(m.admin.email)),
        None => (format!("{name}:{}", provider.client_id()), None),
    };
    let sealer = state.sealer.clone();
    let ser = state
        .db
        .run(move |c| {
            consent::add_conferencing(
                c,
                &mut flow,
                &name,
                &account,
                admin.as_deref(),
                &tokens,
                &sealer,
            )
            .map(|ser| (ser, flow.id.clone()))
        })
        .await?;
    state.providers.forget(&ser.0);
    Ok(redirect(&format!("{CONSENT}?flow={}", ser.1)))
}

/// Step 3 of a unit flow: the approval.
async fn join(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, HtmlFailure> {
    let fields = form(&req, payload).await?;
    let (flow, _) = form_flow(&state, &req, &fields).await?;
    let new = fields.get("unit").is_some_and(|u| u == "new");
    let to = state.db.run(move |c| consent::join(c, &flow, new)).await?;
    Ok(redirect(&to))
}

async fn decline(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, HtmlFailure> {
    let fields = form(&req, payload).await?;
    let (flow, _) = form_flow(&state, &req, &fields).await?;
    let to = state.db.run(move |c| consent::decline(c, &flow)).await?;
    Ok(redirect(&to))
}
