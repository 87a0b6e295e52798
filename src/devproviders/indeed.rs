//! The fake Indeed: a plain OAuth 2 provider (authorize page, `POST /oauth/token` with
//! the client credentials in the form, refresh answers without a new refresh token) and a
//! lookup `GET /api/users/{email}`. Indeed's real API is gated; these shapes are the ones
//! the generic connector reads.

use std::time::Duration;

use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::json;

use super::oauth::{self, Flavor, GrantError, Rotation};
use super::state::{Conferencing, FakeState};
use super::{arrive, form, json, Shared};

const EXPIRES_IN: u64 = 3600;

const FLAVOR: Flavor = Flavor {
    provider: Conferencing::Indeed,
    prefix: "indeed/oauth",
    path: "/indeed/oauth",
    product: "Indeed",
    default_scope: "employer_access",
    scope_required: false,
};

pub(super) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/indeed/oauth/authorize", web::get().to(authorize_page))
        .route("/indeed/oauth/_authorize", web::get().to(authorize))
        .route("/indeed/oauth/_decline", web::get().to(decline))
        .route("/indeed/oauth/token", web::post().to(token))
        .route("/indeed/api/users/{email}", web::get().to(user));
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

/// RFC 6749's `{"error", "error_description"}`.
fn error(status: u16, error: &str, description: &str) -> HttpResponse {
    json(
        status,
        json!({"error": error, "error_description": description}),
    )
}

fn fault(status: u16) -> HttpResponse {
    match status {
        429 => error(429, "rate_limited", "Too many requests"),
        401 => error(
            401,
            "invalid_token",
            "The access token is invalid or expired",
        ),
        s if s >= 500 => error(s, "server_error", "Internal server error"),
        s => error(s, "invalid_request", "Injected fault"),
    }
}

async fn token(shared: web::Data<Shared>, body: web::Bytes) -> HttpResponse {
    if let Some(fault) = arrive(&shared, "indeed/token", fault).await {
        return fault;
    }
    let params = form(&body);
    let get = |name: &str| params.get(name).map(String::as_str).unwrap_or("");
    let (id, secret) = shared.client(Conferencing::Indeed);
    if get("client_id") != id || !crate::secrets::equal(get("client_secret"), secret) {
        return error(401, "invalid_client", "Client authentication failed");
    }
    match oauth::grant(
        &shared,
        Conferencing::Indeed,
        &params,
        Rotation::Omitted,
        Duration::from_secs(EXPIRES_IN),
        "",
    ) {
        Ok(granted) => {
            let mut body = json!({
                "access_token": granted.access_token,
                "token_type": "Bearer",
                "expires_in": EXPIRES_IN,
                "scope": granted.scope,
            });
            if let (Some(map), Some(refresh)) = (body.as_object_mut(), granted.refresh_token) {
                map.insert("refresh_token".into(), json!(refresh));
            }
            json(200, body)
        }
        Err(GrantError::InvalidCode) => error(
            400,
            "invalid_grant",
            "The authorization code is invalid or expired",
        ),
        Err(GrantError::RedirectMismatch) => error(400, "invalid_grant", "redirect_uri mismatch"),
        Err(GrantError::InvalidRefreshToken) => {
            error(400, "invalid_grant", "The refresh token is invalid")
        }
        Err(GrantError::UnsupportedGrantType) => error(
            400,
            "unsupported_grant_type",
            "The grant type is not supported",
        ),
        Err(GrantError::Internal) => fault(500),
    }
}

async fn user(
    req: HttpRequest,
    shared: web::Data<Shared>,
    path: web::Path<String>,
) -> HttpResponse {
    if let Some(fault) = arrive(&shared, "indeed/api", fault).await {
        return fault;
    }
    let Some((employer, _scope)) = oauth::caller(&req, &shared, Conferencing::Indeed) else {
        return fault(401);
    };
    let email = path.into_inner();
    let mut inner = shared.state.lock();
    match FakeState::realm(&mut inner, Conferencing::Indeed).find(&employer, &email) {
        Some(u) => json(
            200,
            json!({
                "id": u.id,
                "email": u.email,
                "name": format!("{} {}", u.given_name, u.family_name),
            }),
        ),
        None => json(404, json!({"error": "not_found"})),
    }
}
