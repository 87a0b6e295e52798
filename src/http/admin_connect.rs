//! Admin API for Enterprise Connect (DESIGN.md §6.1, §6.3): applications and the service
//! accounts their customers' admins authorized.

use std::collections::HashMap;

use actix_web::http::header::{HeaderValue, CACHE_CONTROL};
use actix_web::middleware::DefaultHeaders;
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::{json, Value};

use super::admin::{from_body, ok};
use super::error::AdminFailure;
use super::extract::{json_body, AdminAuth};
use super::openapi::{admin_routes, Change, Create, Queue, Read};
use super::AppState;
use crate::connect::{applications, service_accounts};
use crate::error::Rejected;
use crate::ids::ServiceAccountId;

type Reply = Result<HttpResponse, AdminFailure>;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/api/v1/applications")
            // The create response carries the client secret.
            .wrap(DefaultHeaders::new().add((CACHE_CONTROL, HeaderValue::from_static("no-store"))))
            .configure(mount_applications),
    )
    .service(
        web::scope("/api/v1/organizational_units")
            .wrap(DefaultHeaders::new().add((CACHE_CONTROL, HeaderValue::from_static("no-store"))))
            .configure(mount_units),
    )
    .service(
        web::scope("/api/v1/service_accounts")
            .wrap(DefaultHeaders::new().add((CACHE_CONTROL, HeaderValue::from_static("no-store"))))
            .configure(mount_service_accounts),
    );
}

admin_routes!(mount_applications, ApplicationDoc, "/api/v1/applications", {
    post "" => create_application,
    get "" => list_applications,
    delete "/{client_id}" => delete_application,
});

admin_routes!(mount_units, UnitDoc, "/api/v1/organizational_units", {
    get "" => list_units,
    get "/{id}" => get_unit,
    get "/{id}/accounts" => unit_accounts,
    post "/{id}/accounts/{acc}/relink" => relink,
    delete "/{id}/service_accounts/{ser}" => unlink,
});

admin_routes!(mount_service_accounts, ServiceAccountDoc, "/api/v1/service_accounts", {
    get "" => list_service_accounts,
    get "/{id}" => get_service_account,
    delete "/{id}" => revoke_service_account,
});

/// Register an application (OAuth client); its `client_secret` is shown here only.
#[utoipa::path(post, path = "/api/v1/applications", tag = "applications", request_body = applications::NewApplication, responses(Create))]
async fn create_application(
    _: AdminAuth,
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Reply {
    let body = json_body(payload, &req, state.max_body_bytes).await?;
    let new: applications::NewApplication = from_body(body, "application")?;
    let sealer = state.sealer.clone();
    let (row, secret) = state
        .db
        .run(move |c| applications::create(c, &sealer, new))
        .await?;
    Ok(HttpResponse::Created()
        .json(json!({"data": applications::to_json(&row, Some(&secret)), "error": null})))
}

/// List applications (never their secrets).
#[utoipa::path(
    get,
    path = "/api/v1/applications",
    tag = "applications",
    responses(Read)
)]
async fn list_applications(_: AdminAuth, state: web::Data<AppState>) -> Reply {
    let rows = state.db.run(applications::list).await?;
    Ok(ok(Value::Array(
        rows.iter()
            .map(|r| applications::to_json(r, None))
            .collect(),
    )))
}

/// Delete an application, revoking every token it holds.
#[utoipa::path(delete, path = "/api/v1/applications/{client_id}", tag = "applications", params(("client_id" = String, Path)), responses(Change))]
async fn delete_application(
    _: AdminAuth,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Reply {
    let client_id = path.into_inner();
    let Some(revoked) = state
        .db
        .run(move |c| applications::delete(c, &client_id))
        .await?
    else {
        return Err(Rejected::not_found("application not found").into());
    };
    for ser in revoked {
        state.providers.forget(&ser);
    }
    Ok(ok(json!({})))
}

fn service_account_id(raw: &str) -> Result<ServiceAccountId, Rejected> {
    ServiceAccountId::parse(raw).ok_or_else(|| Rejected::not_found("service account not found"))
}

/// List service accounts.
///
/// `?client_id=` narrows to one application.
#[utoipa::path(get, path = "/api/v1/service_accounts", tag = "service accounts", params(("client_id" = Option<String>, Query, description = "Only this application's")), responses(Read))]
async fn list_service_accounts(
    _: AdminAuth,
    state: web::Data<AppState>,
    q: web::Query<HashMap<String, String>>,
) -> Reply {
    let client_id = q.get("client_id").cloned();
    let data = state
        .db
        .run(move |c| service_accounts::list_json(c, client_id.as_deref()))
        .await?;
    Ok(ok(Value::Array(data)))
}

/// One service account with its accounts and how many authorizations are pending.
#[utoipa::path(get, path = "/api/v1/service_accounts/{id}", tag = "service accounts", params(("id" = String, Path, description = "`ser_…`")), responses(Read))]
async fn get_service_account(
    _: AdminAuth,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Reply {
    let id = service_account_id(&path)?;
    let data = state
        .db
        .run(move |c| service_accounts::detail_json(c, id.as_str()))
        .await?;
    Ok(ok(data))
}

/// Revokes a service account and everything provisioned through it.
#[utoipa::path(delete, path = "/api/v1/service_accounts/{id}", tag = "service accounts", params(("id" = String, Path, description = "`ser_…`")), responses(Change))]
async fn revoke_service_account(
    _: AdminAuth,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Reply {
    let id = service_account_id(&path)?;
    let key = id.as_str().to_string();
    let found = state
        .db
        .run(move |c| service_accounts::revoke_by_operator(c, id.as_str()))
        .await?;
    if !found {
        return Err(Rejected::not_found("service account not found").into());
    }
    state.providers.forget(&key);
    Ok(ok(json!({})))
}

fn unit_id(raw: &str) -> Result<crate::ids::OrgUnitId, Rejected> {
    crate::ids::OrgUnitId::parse(raw)
        .ok_or_else(|| Rejected::not_found("organizational unit not found"))
}

/// List organizational units with their service accounts in link order.
#[utoipa::path(
    get,
    path = "/api/v1/organizational_units",
    tag = "organizational units",
    responses(Read)
)]
async fn list_units(_: AdminAuth, state: web::Data<AppState>) -> Reply {
    let data = state.db.run(crate::connect::units::list_json).await?;
    Ok(ok(Value::Array(data)))
}

/// A unit with its service accounts in link order.
#[utoipa::path(get, path = "/api/v1/organizational_units/{id}", tag = "organizational units", params(("id" = String, Path, description = "`ou_…`")), responses(Read))]
async fn get_unit(_: AdminAuth, state: web::Data<AppState>, path: web::Path<String>) -> Reply {
    let id = unit_id(&path)?;
    let data = state
        .db
        .run(move |c| crate::connect::units::get_json(c, id.as_str()))
        .await?;
    Ok(ok(data))
}

/// Unlinks a service account from its unit and revokes its provider access.
#[utoipa::path(delete, path = "/api/v1/organizational_units/{id}/service_accounts/{ser}", tag = "organizational units", params(("id" = String, Path, description = "`ou_…`"), ("ser" = String, Path, description = "`ser_…`")), responses(Change))]
async fn unlink(
    _: AdminAuth,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> Reply {
    let (unit, ser) = path.into_inner();
    let unit = unit_id(&unit)?;
    let ser = service_account_id(&ser)?;
    let key = ser.as_str().to_string();
    let done = state
        .db
        .run(move |c| crate::connect::units::unlink(c, unit.as_str(), ser.as_str()))
        .await?;
    if !done {
        return Err(Rejected::not_found("that service account is not in that unit").into());
    }
    state.providers.forget(&key);
    // The accounts it served are provisioned again through the others.
    state.authorizations.wake();
    Ok(ok(json!({})))
}

/// The accounts a unit serves (`?email=` narrows to one).
#[utoipa::path(get, path = "/api/v1/organizational_units/{id}/accounts", tag = "organizational units", params(("id" = String, Path, description = "`ou_…`"), ("email" = Option<String>, Query)), responses(Read))]
async fn unit_accounts(
    _: AdminAuth,
    state: web::Data<AppState>,
    path: web::Path<String>,
    q: web::Query<HashMap<String, String>>,
) -> Reply {
    let id = unit_id(&path)?;
    let email = q.get("email").cloned();
    let data = state
        .db
        .run(move |c| crate::connect::units::accounts_json(c, id.as_str(), email.as_deref()))
        .await?;
    Ok(ok(Value::Array(data)))
}

/// Provisions an account's email again through the unit (relinked or marked not found).
#[utoipa::path(post, path = "/api/v1/organizational_units/{id}/accounts/{acc}/relink", tag = "organizational units", params(("id" = String, Path, description = "`ou_…`"), ("acc" = String, Path, description = "`acc_…`")), responses(Queue))]
async fn relink(
    _: AdminAuth,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> Reply {
    let (unit, account) = path.into_inner();
    let unit = unit_id(&unit)?;
    let account = crate::ids::AccountId::parse(&account)
        .ok_or_else(|| Rejected::not_found("account not found"))?;
    let queued = state
        .db
        .run(move |c| crate::connect::units::relink(c, unit.as_str(), account.as_str()))
        .await?;
    if !queued {
        return Err(Rejected::not_found("that account is not the unit's").into());
    }
    state.authorizations.wake();
    Ok(HttpResponse::Accepted().json(json!({"data": {}, "error": null})))
}
