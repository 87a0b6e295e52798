//! The integrator's API at Cronofy's paths (DESIGN.md §6.5): delegated authorizations
//! and UserInfo, authenticated by our access tokens.

use actix_web::{web, HttpRequest, HttpResponse};

use super::error::AdminFailure;
use super::extract::{credential, json_body};
use super::AppState;
use crate::connect::authorizations::{self, Body};
use crate::connect::grants::{self, Bearer};
use crate::error::{Error, Rejected};
use crate::ids::ServiceAccountId;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route(
        "/v1/service_account_authorizations",
        web::post().to(service_account_authorizations),
    )
    .route("/v1/userinfo", web::get().to(userinfo))
    .route(
        "/v1/organizational_unit_authorization_link_tokens",
        web::post().to(link_token),
    );
}

fn unauthorized() -> Error {
    Rejected::unauthorized("a valid access token is required").into()
}

/// The live access token of the request.
async fn bearer(state: &AppState, req: &HttpRequest) -> Result<Bearer, Error> {
    let token = credential(req, &["Bearer"])
        .ok_or_else(unauthorized)?
        .to_string();
    state
        .db
        .run(move |c| grants::authenticate(c, &token))
        .await?
        .ok_or_else(unauthorized)
}

/// `POST /v1/service_account_authorizations`: 202 with an empty body once queued.
async fn service_account_authorizations(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, AdminFailure> {
    let who = bearer(&state, &req).await?;
    if ServiceAccountId::parse(&who.subject).is_none() {
        return Err(Rejected::new(403, "a service account's access token is required").into());
    }
    let value = json_body(payload, &req, state.max_body_bytes).await?;
    let body: Body = serde_json::from_value(value)
        .map_err(|e| Rejected::new(422, format!("unexpected body: {e}")))?;
    let checked = match authorizations::check(body, state.webhook_allow_private) {
        Ok(c) => c,
        Err(invalid) => return Ok(HttpResponse::UnprocessableEntity().json(invalid.to_json())),
    };
    let ser_id = who.subject.clone();
    state
        .db
        .run(move |c| authorizations::enqueue(c, &ser_id, &checked))
        .await?;
    state.authorizations.wake();
    Ok(HttpResponse::Accepted().finish())
}

/// `GET /v1/userinfo`: the account (or service account) the token speaks for.
async fn userinfo(
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, AdminFailure> {
    let who = bearer(&state, &req).await?;
    let body = state
        .db
        .run(move |c| crate::connect::accounts::userinfo_of(c, &who.subject))
        .await?;
    Ok(HttpResponse::Ok()
        .insert_header(("Cache-Control", "no-store"))
        .json(body))
}

/// `POST /v1/organizational_unit_authorization_link_tokens` (Bearer = the client secret):
/// a single-use link token for one of the application's service accounts.
async fn link_token(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, AdminFailure> {
    let secret = credential(&req, &["Bearer"])
        .ok_or_else(|| Rejected::unauthorized("the client secret is required as Bearer"))?
        .to_string();
    let value = json_body(payload, &req, 64 * 1024).await?;
    let ser = value
        .get("service_account_id")
        .and_then(|v| v.as_str())
        .and_then(ServiceAccountId::parse)
        .ok_or_else(|| Rejected::new(422, "service_account_id is required"))?;
    let token = state
        .db
        .run(move |c| {
            let app = crate::connect::applications::by_bearer_secret(c, &secret)?
                .ok_or_else(|| Rejected::unauthorized("unknown client secret"))?;
            crate::connect::units::create_link_token(c, &app, ser.as_str())
        })
        .await?;
    Ok(HttpResponse::Ok()
        .insert_header(("Cache-Control", "no-store"))
        .json(serde_json::json!({
            "organizational_unit_authorization_link_token": {"ou_link_token": token}
        })))
}
