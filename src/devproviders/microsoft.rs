//! The fake Microsoft: the identity platform's admin consent page and client-credentials
//! token endpoint (AADSTS errors), and the few Graph routes a lookup needs. Texts are
//! Microsoft's own.

use std::time::Instant;

use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::{json, Value};

use super::state::{Inner, MicrosoftToken};
use super::{
    arrive, bearer, escape, form, found, html, json, random_token, redirect_to, token_lifetime,
    Shared,
};

const GRAPH_DEFAULT_SCOPE: &str = "https://graph.microsoft.com/.default";

pub(super) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/microsoft/login/_consent", web::get().to(consent))
        .route("/microsoft/login/_decline", web::get().to(decline))
        .route(
            "/microsoft/login/{tenant}/v2.0/adminconsent",
            web::get().to(admin_consent),
        )
        .route(
            "/microsoft/login/{tenant}/adminconsent",
            web::get().to(admin_consent),
        )
        .route(
            "/microsoft/login/{tenant}/oauth2/v2.0/token",
            web::post().to(token),
        )
        .route(
            "/microsoft/graph/v1.0/organization",
            web::get().to(organization),
        )
        .route("/microsoft/graph/v1.0/users/{user}", web::get().to(user))
        .route(
            "/microsoft/graph/v1.0/users/{user}/calendar",
            web::get().to(calendar),
        );
}

fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

fn now() -> String {
    chrono::Utc::now().format("%Y-%m-%d %H:%M:%SZ").to_string()
}

// --- the login pages ---

fn login_fault(status: u16) -> HttpResponse {
    html(
        status,
        format!(
            "<!doctype html><title>Sign in</title><p>Sorry, we're having trouble ({status}).</p>"
        ),
    )
}

fn error_page(code: &str, message: &str) -> HttpResponse {
    html(
        400,
        format!(
            "<!doctype html><html><head><title>Sign in to your account</title></head><body>\
             <h1>Sign in</h1><p>Sorry, but we're having trouble signing you in.</p>\
             <p id=\"error\">{}: {}</p></body></html>",
            escape(code),
            escape(message)
        ),
    )
}

/// Stands in for Microsoft's sign-in and consent screens: one plain link per tenant
/// (no JavaScript), each consenting as that tenant's admin, and a decline link.
async fn admin_consent(req: HttpRequest, shared: web::Data<Shared>) -> HttpResponse {
    if let Some(fault) = arrive(&shared, "microsoft/login", login_fault).await {
        return fault;
    }
    let query = form(req.query_string().as_bytes());
    let get = |name: &str| query.get(name).map(String::as_str).unwrap_or("");
    if get("client_id") != shared.microsoft_client_id {
        return error_page(
            "AADSTS700016",
            &format!(
                "Application with identifier '{}' was not found in the directory.",
                get("client_id")
            ),
        );
    }
    let redirect_uri = get("redirect_uri");
    if redirect_to(redirect_uri, &[]).is_none() {
        return error_page(
            "AADSTS900144",
            "The request body must contain the following parameter: 'redirect_uri'.",
        );
    }
    let state = get("state");
    let link = |path: &str, pairs: &[(&str, &str)]| {
        let q = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(pairs)
            .finish();
        escape(&format!("{path}?{q}"))
    };
    let mut items = String::new();
    for (tid, tenant) in shared.state.lock().tenants.iter() {
        items.push_str(&format!(
            "<li><a class=\"consent\" data-tenant=\"{}\" href=\"{}\">Accept as the admin of {} ({})</a></li>\n",
            escape(tid),
            link(
                "/microsoft/login/_consent",
                &[("tenant", tid), ("redirect_uri", redirect_uri), ("state", state)]
            ),
            escape(&tenant.display_name),
            escape(&tenant.domains.join(", ")),
        ));
    }
    html(
        200,
        format!(
            "<!doctype html><html><head><title>Permissions requested</title></head><body>\
             <h1>Permissions requested</h1>\
             <p>scimgate (development) would like to: read all users' full profiles, read calendars in all mailboxes.</p>\
             <p>Accept for your organization:</p>\n<ul>\n{items}</ul>\n\
             <p><a class=\"decline\" href=\"{}\">Cancel</a></p></body></html>",
            link(
                "/microsoft/login/_decline",
                &[("redirect_uri", redirect_uri), ("state", state)]
            ),
        ),
    )
}

/// The admin accepted: record the consent and send the browser back as Microsoft does.
async fn consent(req: HttpRequest, shared: web::Data<Shared>) -> HttpResponse {
    if let Some(fault) = arrive(&shared, "microsoft/login", login_fault).await {
        return fault;
    }
    let query = form(req.query_string().as_bytes());
    let get = |name: &str| query.get(name).map(String::as_str).unwrap_or("");
    let tenant = get("tenant");
    if !shared.state.consent(tenant) {
        return error_page("AADSTS90002", &format!("Tenant '{tenant}' not found."));
    }
    match redirect_to(
        get("redirect_uri"),
        &[
            ("tenant", &tenant.to_ascii_lowercase()),
            ("admin_consent", "True"),
            ("state", get("state")),
        ],
    ) {
        Some(location) => found(&location),
        None => error_page(
            "AADSTS900144",
            "The request must contain a valid 'redirect_uri'.",
        ),
    }
}

async fn decline(req: HttpRequest, shared: web::Data<Shared>) -> HttpResponse {
    if let Some(fault) = arrive(&shared, "microsoft/login", login_fault).await {
        return fault;
    }
    let query = form(req.query_string().as_bytes());
    let get = |name: &str| query.get(name).map(String::as_str).unwrap_or("");
    match redirect_to(
        get("redirect_uri"),
        &[
            ("error", "access_denied"),
            (
                "error_description",
                "AADSTS65004: User declined to consent to access the app.",
            ),
            ("state", get("state")),
        ],
    ) {
        Some(location) => found(&location),
        None => error_page(
            "AADSTS900144",
            "The request must contain a valid 'redirect_uri'.",
        ),
    }
}

// --- the token endpoint ---

/// An AADSTS error body; the description has Microsoft's trailing trace lines.
fn aad_error(status: u16, error: &str, code: u32, text: &str) -> HttpResponse {
    let (trace, correlation, timestamp) = (new_id(), new_id(), now());
    json(
        status,
        json!({
            "error": error,
            "error_description": format!(
                "AADSTS{code}: {text}\r\nTrace ID: {trace}\r\nCorrelation ID: {correlation}\r\nTimestamp: {timestamp}"
            ),
            "error_codes": [code],
            "timestamp": timestamp,
            "trace_id": trace,
            "correlation_id": correlation,
            "error_uri": format!("https://login.microsoftonline.com/error?code={code}"),
        }),
    )
}

fn token_fault(status: u16) -> HttpResponse {
    match status {
        429 => aad_error(
            429,
            "temporarily_unavailable",
            50196,
            "The server terminated an operation because it encountered a client request loop. Please contact your app vendor.",
        ),
        s if s >= 500 => aad_error(
            s,
            "temporarily_unavailable",
            90033,
            "A transient error has occurred. Please try again.",
        ),
        s => aad_error(s, "invalid_request", 90000, "Injected fault."),
    }
}

/// A tenant by id or by one of its domains, as the token endpoint accepts either.
fn find_tenant(inner: &Inner, key: &str) -> Option<String> {
    let key = key.to_ascii_lowercase();
    if inner.tenants.contains_key(&key) {
        return Some(key);
    }
    inner
        .tenants
        .iter()
        .find(|(_, t)| t.domains.contains(&key))
        .map(|(id, _)| id.clone())
}

async fn token(
    shared: web::Data<Shared>,
    path: web::Path<String>,
    body: web::Bytes,
) -> HttpResponse {
    if let Some(fault) = arrive(&shared, "microsoft/token", token_fault).await {
        return fault;
    }
    let form = form(&body);
    let get = |name: &str| form.get(name).map(String::as_str).unwrap_or("");
    let mut inner = shared.state.lock();
    let asked = path.into_inner();
    let Some(tenant) = find_tenant(&inner, &asked) else {
        return aad_error(
            400,
            "invalid_request",
            90002,
            &format!("Tenant '{asked}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud. Check with your subscription administrator, this may happen if there are no active subscriptions for the tenant."),
        );
    };
    if get("grant_type") != "client_credentials" {
        return aad_error(
            400,
            "unsupported_grant_type",
            70003,
            "The app requested an unsupported grant type.",
        );
    }
    let tenant_name = inner
        .tenants
        .get(&tenant)
        .map(|t| t.display_name.clone())
        .unwrap_or_default();
    let not_in_directory = |client_id: &str| {
        aad_error(
            400,
            "unauthorized_client",
            700016,
            &format!("Application with identifier '{client_id}' was not found in the directory '{tenant_name}'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You may have sent your authentication request to the wrong tenant."),
        )
    };
    if get("client_id") != shared.microsoft_client_id {
        return not_in_directory(get("client_id"));
    }
    if !crate::secrets::equal(get("client_secret"), &shared.microsoft_client_secret) {
        return aad_error(
            401,
            "invalid_client",
            7000215,
            "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '{client_id}'.".replace("{client_id}", get("client_id")).as_str(),
        );
    }
    if get("scope") != GRAPH_DEFAULT_SCOPE {
        return aad_error(
            400,
            "invalid_scope",
            1002012,
            &format!("The provided value for scope {} is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI).", get("scope")),
        );
    }
    // Consent creates the app's service principal in the tenant; without it the app
    // is unknown there.
    if !inner.tenants.get(&tenant).is_some_and(|t| t.consented) {
        return not_in_directory(get("client_id"));
    }
    let token = match random_token(96) {
        Ok(t) => format!("eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.{t}"),
        Err(_) => return token_fault(500),
    };
    inner.microsoft_tokens.insert(
        token.clone(),
        MicrosoftToken {
            tenant,
            expires: Instant::now() + token_lifetime(),
        },
    );
    json(
        200,
        json!({
            "token_type": "Bearer",
            "expires_in": super::TOKEN_SECONDS,
            "ext_expires_in": super::TOKEN_SECONDS,
            "access_token": token,
        }),
    )
}

// --- Graph ---

fn graph_error(status: u16, code: &str, message: &str) -> HttpResponse {
    json(
        status,
        json!({"error": {
            "code": code,
            "message": message,
            "innerError": {
                "date": chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S").to_string(),
                "request-id": new_id(),
                "client-request-id": new_id(),
            },
        }}),
    )
}

fn graph_fault(status: u16) -> HttpResponse {
    match status {
        429 => graph_error(429, "TooManyRequests", "Too many requests"),
        503 => graph_error(
            503,
            "ServiceUnavailable",
            "The service is temporarily unavailable. Please retry later.",
        ),
        401 => unauthenticated(),
        s => graph_error(s, "generalException", "An unexpected error occurred."),
    }
}

fn unauthenticated() -> HttpResponse {
    graph_error(
        401,
        "InvalidAuthenticationToken",
        "Access token has expired or is not yet valid.",
    )
}

/// The tenant the request's token was issued for.
fn caller(req: &HttpRequest, inner: &Inner) -> Option<String> {
    let token = inner.microsoft_tokens.get(&bearer(req)?)?;
    (token.expires > Instant::now()).then(|| token.tenant.clone())
}

async fn organization(req: HttpRequest, shared: web::Data<Shared>) -> HttpResponse {
    if let Some(fault) = arrive(&shared, "microsoft/graph", graph_fault).await {
        return fault;
    }
    let inner = shared.state.lock();
    let Some(tid) = caller(&req, &inner) else {
        return unauthenticated();
    };
    let Some(tenant) = inner.tenants.get(&tid) else {
        return unauthenticated();
    };
    let domains: Vec<Value> = tenant
        .domains
        .iter()
        .enumerate()
        .map(|(i, name)| {
            json!({"capabilities": "Email, OfficeCommunicationsOnline", "isDefault": i == 0, "isInitial": false, "name": name, "type": "Managed"})
        })
        .collect();
    json(
        200,
        json!({
            "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#organization",
            "value": [{
                "id": tid,
                "displayName": tenant.display_name,
                "countryLetterCode": "US",
                "tenantType": "AAD",
                "verifiedDomains": domains,
            }],
        }),
    )
}

/// A user of the caller's tenant by id or user principal name.
fn find_user<'a>(
    inner: &'a Inner,
    tenant: &str,
    key: &str,
) -> Option<&'a super::state::MicrosoftUser> {
    let lower = key.to_ascii_lowercase();
    inner
        .microsoft_users
        .get(&lower)
        .or_else(|| inner.microsoft_users.values().find(|u| u.id == lower))
        .filter(|u| u.tenant == tenant)
}

fn user_not_found(key: &str) -> HttpResponse {
    graph_error(
        404,
        "Request_ResourceNotFound",
        &format!("Resource '{key}' does not exist or one of its queried reference-property objects are not present."),
    )
}

async fn user(
    req: HttpRequest,
    shared: web::Data<Shared>,
    path: web::Path<String>,
) -> HttpResponse {
    if let Some(fault) = arrive(&shared, "microsoft/graph", graph_fault).await {
        return fault;
    }
    let inner = shared.state.lock();
    let Some(tid) = caller(&req, &inner) else {
        return unauthenticated();
    };
    let key = path.into_inner();
    let Some(u) = find_user(&inner, &tid, &key) else {
        return user_not_found(&key);
    };
    json(
        200,
        json!({
            "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#users/$entity",
            "businessPhones": [],
            "displayName": format!("{} {}", u.given_name, u.surname),
            "givenName": u.given_name,
            "jobTitle": null,
            "mail": u.mailbox.then(|| u.upn.clone()),
            "mobilePhone": null,
            "officeLocation": null,
            "preferredLanguage": "en-US",
            "surname": u.surname,
            "userPrincipalName": u.upn,
            "id": u.id,
        }),
    )
}

async fn calendar(
    req: HttpRequest,
    shared: web::Data<Shared>,
    path: web::Path<String>,
) -> HttpResponse {
    if let Some(fault) = arrive(&shared, "microsoft/graph", graph_fault).await {
        return fault;
    }
    let inner = shared.state.lock();
    let Some(tid) = caller(&req, &inner) else {
        return unauthenticated();
    };
    let key = path.into_inner();
    let Some(u) = find_user(&inner, &tid, &key) else {
        return user_not_found(&key);
    };
    if !u.mailbox {
        return graph_error(
            404,
            "MailboxNotEnabledForRESTAPI",
            "The mailbox is either inactive, soft-deleted, or is hosted on-premise.",
        );
    }
    let calendar_id = format!(
        "AAMkA{}",
        &crate::secrets::digest(&format!("calendar {}", u.id))[..40]
    );
    json(
        200,
        json!({
            "@odata.context": format!("https://graph.microsoft.com/v1.0/$metadata#users('{}')/calendar/$entity", u.id),
            "id": calendar_id,
            "name": "Calendar",
        }),
    )
}
