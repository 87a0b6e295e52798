//! The fake Zoom: the OAuth app's sign-in page, `POST /oauth/token` (HTTP Basic client
//! credentials, single-use refresh tokens) and `GET /v2/users/{userId|email|me}`. Texts
//! are Zoom's own.

use std::time::Duration;

use actix_web::{web, HttpRequest, HttpResponse};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde_json::json;

use super::oauth::{self, Flavor, GrantError, Rotation};
use super::state::{Conferencing, FakeState};
use super::{arrive, json, Shared};

/// The lifetime Zoom gives its access tokens.
const EXPIRES_IN: u64 = 3599;
const SCOPES: &str = "user:read:admin meeting:write:admin";

const FLAVOR: Flavor = Flavor {
    provider: Conferencing::Zoom,
    prefix: "zoom/oauth",
    path: "/zoom/oauth",
    product: "Zoom",
    default_scope: SCOPES,
    scope_required: false,
};

pub(super) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/zoom/oauth/authorize", web::get().to(authorize_page))
        .route("/zoom/oauth/_authorize", web::get().to(authorize))
        .route("/zoom/oauth/_decline", web::get().to(decline))
        .route("/zoom/oauth/token", web::post().to(token))
        .route("/zoom/api/v2/users/{user_id}", web::get().to(user));
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

// --- the token endpoint ---

fn token_error(status: u16, reason: &str, error: &str) -> HttpResponse {
    json(status, json!({"reason": reason, "error": error}))
}

fn token_fault(status: u16) -> HttpResponse {
    match status {
        429 => token_error(
            429,
            "Too many requests. Please try again later.",
            "too_many_requests",
        ),
        401 => invalid_client(),
        s if s >= 500 => token_error(s, "Internal Error", "server_error"),
        s => token_error(s, "Injected fault", "invalid_request"),
    }
}

fn invalid_client() -> HttpResponse {
    token_error(401, "Invalid client_id or client_secret", "invalid_client")
}

/// `Authorization: Basic base64(client_id:client_secret)` with this fake's credentials.
fn authenticated(req: &HttpRequest, shared: &Shared) -> bool {
    let Some(value) = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let Some((scheme, encoded)) = value.split_once(' ') else {
        return false;
    };
    let decoded = STANDARD
        .decode(encoded.trim())
        .ok()
        .and_then(|b| String::from_utf8(b).ok());
    let (id, secret) = shared.client(Conferencing::Zoom);
    match decoded.as_deref().and_then(|d| d.split_once(':')) {
        Some((given_id, given_secret)) => {
            scheme.eq_ignore_ascii_case("basic")
                && given_id == id
                && crate::secrets::equal(given_secret, secret)
        }
        None => false,
    }
}

async fn token(req: HttpRequest, shared: web::Data<Shared>, body: web::Bytes) -> HttpResponse {
    if let Some(fault) = arrive(&shared, "zoom/token", token_fault).await {
        return fault;
    }
    if !authenticated(&req, &shared) {
        return invalid_client();
    }
    let params = oauth::token_params(&req, &body);
    match oauth::grant(
        &shared,
        Conferencing::Zoom,
        &params,
        Rotation::SingleUse,
        Duration::from_secs(EXPIRES_IN),
        "eyJzdiI6IjAwMDAwMSIsImFsZyI6IkhTNTEyIiwidiI6IjIuMCJ9.",
    ) {
        Ok(granted) => json(
            200,
            json!({
                "access_token": granted.access_token,
                "token_type": "bearer",
                "refresh_token": granted.refresh_token,
                "expires_in": EXPIRES_IN,
                "scope": granted.scope,
            }),
        ),
        Err(GrantError::InvalidCode) => {
            token_error(400, "Invalid authorization code", "invalid_grant")
        }
        Err(GrantError::RedirectMismatch) => {
            token_error(400, "Invalid redirect uri.", "invalid_request")
        }
        Err(GrantError::InvalidRefreshToken) => token_error(400, "Invalid Token!", "invalid_grant"),
        Err(GrantError::UnsupportedGrantType) => {
            token_error(400, "Unsupported grant type", "unsupported_grant_type")
        }
        Err(GrantError::Internal) => token_fault(500),
    }
}

// --- the API ---

fn api_error(status: u16, code: u32, message: &str) -> HttpResponse {
    json(status, json!({"code": code, "message": message}))
}

fn invalid_token() -> HttpResponse {
    api_error(401, 124, "Invalid access token.")
}

fn api_fault(status: u16) -> HttpResponse {
    match status {
        429 => api_error(
            429,
            429,
            "You have reached the maximum per-second rate limit for this API. Try again later.",
        ),
        401 => invalid_token(),
        s => api_error(s, u32::from(s), "Internal Error."),
    }
}

async fn user(
    req: HttpRequest,
    shared: web::Data<Shared>,
    path: web::Path<String>,
) -> HttpResponse {
    if let Some(fault) = arrive(&shared, "zoom/api", api_fault).await {
        return fault;
    }
    let Some((account, _scope)) = oauth::caller(&req, &shared, Conferencing::Zoom) else {
        return invalid_token();
    };
    let key = path.into_inner();
    let mut inner = shared.state.lock();
    let realm = FakeState::realm(&mut inner, Conferencing::Zoom);
    let found = if key == "me" {
        realm.admin(&account)
    } else {
        realm.find(&account, &key)
    };
    // Another account's user looks exactly like nobody.
    let Some(u) = found else {
        return api_error(404, 1001, &format!("User does not exist: {key}."));
    };
    let pmi = 1_000_000_000u64
        + u64::from_str_radix(&crate::secrets::digest(&u.id)[..8], 16).unwrap_or(0) % 8_999_999_999;
    json(
        200,
        json!({
            "id": u.id,
            "first_name": u.given_name,
            "last_name": u.family_name,
            "display_name": format!("{} {}", u.given_name, u.family_name),
            "email": u.email,
            "type": 2,
            "role_name": if realm.admin(&account).is_some_and(|a| a.id == u.id) { "Owner" } else { "Member" },
            "pmi": pmi,
            "use_pmi": false,
            "personal_meeting_url": format!("https://zoom.us/j/{pmi}"),
            "timezone": "America/New_York",
            "verified": 1,
            "dept": "",
            "created_at": "2024-01-15T09:30:00Z",
            "user_created_at": "2024-01-15T09:30:00Z",
            "last_login_time": "2024-06-01T12:00:00Z",
            "language": "en-US",
            "phone_number": "",
            "status": u.status,
            "role_id": if realm.admin(&account).is_some_and(|a| a.id == u.id) { "0" } else { "2" },
            "account_id": u.account,
            "account_number": 10_000_000 + (pmi % 90_000_000),
            "cluster": "us05",
            "login_types": [100],
        }),
    )
}
