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
use crate::connect::{applications, grants};
use crate::error::{Error, Rejected};
use crate::oauth::{AuthorizeRequest, OAuthError, TokenRequest};
use crate::store::AnyConnection;

const AUTHORIZE: &str = "/enterprise_connect/oauth/authorize";
const CONSENT: &str = "/enterprise_connect/oauth/consent";
const GOOGLE_FORM: &str = "/enterprise_connect/oauth/google";
const MICROSOFT_RETURN: &str = "/enterprise_connect/oauth/microsoft";
const DECLINE: &str = "/enterprise_connect/oauth/decline";

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/oauth/token", web::post().to(token))
        .route("/oauth/token/revoke", web::post().to(revoke))
        .route(AUTHORIZE, web::get().to(authorize))
        .route(CONSENT, web::get().to(consent_page))
        .route(GOOGLE_FORM, web::post().to(google_submit))
        .route(MICROSOFT_RETURN, web::get().to(microsoft_return))
        .route(DECLINE, web::post().to(decline));
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
    // From here on, errors go back to the client.
    let request = match AuthorizeRequest::parse(&q, &redirect_uri, true) {
        Ok(r) => r,
        Err(e) => {
            // A `state` refused as too long is not echoed either.
            let state_param = q.get("state").filter(|s| {
                !s.is_empty() && s.chars().count() <= crate::oauth::request::MAX_STATE_CHARS
            });
            return Ok(redirect(&crate::oauth::request::with_query(
                &redirect_uri,
                &[
                    ("error", Some(e.code.as_str())),
                    ("error_description", Some(&e.description)),
                    ("state", state_param.map(String::as_str)),
                ],
            )));
        }
    };
    let (flow, csrf) = state
        .db
        .run(move |c| consent::start(c, &app, request))
        .await?;
    let mut target = format!("{CONSENT}?flow={}", flow.id);
    if let Some(p) = flow
        .request
        .provider_name
        .as_deref()
        .filter(|p| state.providers.offered().contains(p))
    {
        target.push_str(&format!("&provider={p}"));
    }
    let cookie = Cookie::build(consent::cookie_name(&flow.id), csrf)
        .path("/enterprise_connect/oauth")
        .http_only(true)
        .secure(secure_cookies(&state))
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
        Ok(consented) => {
            let f = flow.clone();
            let (to, ser) = state
                .db
                .run(move |c| consent::complete(c, &f, &consented))
                .await?;
            // A renewed consent's old provider token goes (its admin may have changed).
            state.providers.forget(&ser);
            Ok(redirect(&to))
        }
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
        Ok(consented) => {
            let f = flow.clone();
            let (to, ser) = state
                .db
                .run(move |c| consent::complete(c, &f, &consented))
                .await?;
            // A renewed consent's old provider token goes (its admin may have changed).
            state.providers.forget(&ser);
            Ok(redirect(&to))
        }
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
