//! The fake Webex: the integration's authorize page, `POST /v1/access_token` (form, client
//! credentials in the body; the refresh token stays the same) and the People API's
//! `GET /v1/people?email=` and `GET /v1/people/me`. Texts are Webex's own.

use std::time::Duration;

use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::{json, Value};

use super::oauth::{self, Flavor, GrantError, Rotation};
use super::state::{Conferencing, ConferencingUser, FakeState};
use super::{arrive, form, Shared};

const EXPIRES_IN: u64 = 1_209_599;
const REFRESH_EXPIRES_IN: u64 = 7_775_999;
const PEOPLE_READ: &str = "spark:people_read";

const FLAVOR: Flavor = Flavor {
    provider: Conferencing::Webex,
    prefix: "webex/oauth",
    path: "/webex/v1",
    product: "Webex",
    default_scope: "spark:people_read spark:kms",
    scope_required: true,
};

pub(super) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/webex/v1/authorize", web::get().to(authorize_page))
        .route("/webex/v1/_authorize", web::get().to(authorize))
        .route("/webex/v1/_decline", web::get().to(decline))
        .route("/webex/v1/access_token", web::post().to(token))
        .route("/webex/v1/people/me", web::get().to(me))
        .route("/webex/v1/people", web::get().to(people));
}

async fn authorize_page(req: HttpRequest, shared: web::Data<Shared>) -> HttpResponse {
    oauth::authorize_page(&FLAVOR, &req, &shared).await
}

async fn authorize(req: HttpRequest, shared: web::Data<Shared>) -> HttpResponse {
    oauth::authorize(&FLAVOR, &req, &shared).await
}

async fn decline(req: HttpRequest, shared: web::Data<Shared>) -> HttpResponse {
    oauth::decline(&FLAVOR, &req, &shared).await
}

/// Webex's error body, with its tracking id in the body and the `Trackingid` header.
fn error(status: u16, message: &str) -> HttpResponse {
    let tracking = format!(
        "ROUTER_{}",
        uuid::Uuid::new_v4()
            .simple()
            .to_string()
            .to_ascii_uppercase()
    );
    let mut response = super::json(
        status,
        json!({
            "message": message,
            "errors": [{"description": message}],
            "trackingId": tracking,
        }),
    );
    if let Ok(value) = actix_web::http::header::HeaderValue::from_str(&tracking) {
        response.headers_mut().insert(
            actix_web::http::header::HeaderName::from_static("trackingid"),
            value,
        );
    }
    response
}

fn fault(status: u16) -> HttpResponse {
    match status {
        429 => error(429, "Too Many Requests"),
        401 => unauthenticated(),
        s if s >= 500 => error(s, "Service Unavailable"),
        s => error(s, "Injected fault."),
    }
}

fn unauthenticated() -> HttpResponse {
    error(
        401,
        "The request requires a valid access token set in the Authorization request header.",
    )
}

// --- the token endpoint ---

async fn token(shared: web::Data<Shared>, body: web::Bytes) -> HttpResponse {
    if let Some(fault) = arrive(&shared, "webex/token", fault).await {
        return fault;
    }
    let params = form(&body);
    let get = |name: &str| params.get(name).map(String::as_str).unwrap_or("");
    let (id, secret) = shared.client(Conferencing::Webex);
    if get("client_id") != id || !crate::secrets::equal(get("client_secret"), secret) {
        return error(401, "Invalid client_id or client_secret.");
    }
    match oauth::grant(
        &shared,
        Conferencing::Webex,
        &params,
        Rotation::Same,
        Duration::from_secs(EXPIRES_IN),
        "",
    ) {
        Ok(granted) => super::json(
            200,
            json!({
                "access_token": granted.access_token,
                "expires_in": EXPIRES_IN,
                "refresh_token": granted.refresh_token,
                "refresh_token_expires_in": REFRESH_EXPIRES_IN,
                "token_type": "Bearer",
                "scope": granted.scope,
            }),
        ),
        Err(GrantError::InvalidCode) => error(
            400,
            "The authorization code is invalid, expired or has already been used.",
        ),
        Err(GrantError::RedirectMismatch) => error(
            400,
            "redirect_uri does not match the one used in the authorization request.",
        ),
        Err(GrantError::InvalidRefreshToken) => {
            error(400, "The refresh token provided is invalid or expired.")
        }
        Err(GrantError::UnsupportedGrantType) => error(400, "Unsupported grant_type."),
        Err(GrantError::Internal) => fault(500),
    }
}

// --- People ---

fn person(u: &ConferencingUser) -> Value {
    json!({
        "id": u.id,
        "emails": [u.email],
        "phoneNumbers": [],
        "displayName": format!("{} {}", u.given_name, u.family_name),
        "nickName": u.given_name,
        "firstName": u.given_name,
        "lastName": u.family_name,
        "orgId": u.account,
        "created": "2024-01-15T09:30:00.000Z",
        "lastActivity": "2024-06-01T12:00:00.000Z",
        "status": "unknown",
        "type": "person",
    })
}

/// The caller's organization, or the answer to give instead (401, 403 without
/// `spark:people_read`).
fn org(req: &HttpRequest, shared: &Shared) -> Result<String, Box<HttpResponse>> {
    let Some((org, scope)) = oauth::caller(req, shared, Conferencing::Webex) else {
        return Err(Box::new(unauthenticated()));
    };
    if !scope.split_whitespace().any(|s| s == PEOPLE_READ) {
        return Err(Box::new(error(
            403,
            "The server understood the request, but refused to fulfill it because the access token is missing required scopes or the user is missing required roles or licenses.",
        )));
    }
    Ok(org)
}

async fn people(req: HttpRequest, shared: web::Data<Shared>) -> HttpResponse {
    if let Some(fault) = arrive(&shared, "webex/api", fault).await {
        return fault;
    }
    let org = match org(&req, &shared) {
        Ok(org) => org,
        Err(refusal) => return *refusal,
    };
    let query = form(req.query_string().as_bytes());
    let Some(email) = query.get("email").filter(|e| !e.is_empty()) else {
        return error(400, "Email, displayName, or id list should be specified.");
    };
    let mut inner = shared.state.lock();
    let realm = FakeState::realm(&mut inner, Conferencing::Webex);
    // An exact match, in the caller's organization only.
    let items: Vec<Value> = realm
        .users
        .get(&email.to_ascii_lowercase())
        .filter(|u| u.account == org)
        .map(person)
        .into_iter()
        .collect();
    super::json(200, json!({ "items": items }))
}

async fn me(req: HttpRequest, shared: web::Data<Shared>) -> HttpResponse {
    if let Some(fault) = arrive(&shared, "webex/api", fault).await {
        return fault;
    }
    let org = match org(&req, &shared) {
        Ok(org) => org,
        Err(refusal) => return *refusal,
    };
    let mut inner = shared.state.lock();
    match FakeState::realm(&mut inner, Conferencing::Webex).admin(&org) {
        Some(u) => super::json(200, person(u)),
        None => error(404, "The requested resource could not be found."),
    }
}
