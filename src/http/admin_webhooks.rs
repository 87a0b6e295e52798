//! Admin routes of webhook fan-out: endpoints, one event with its deliveries and
//! attempts, replay, and the delivery list (dead letters with `?status=failed`).

use std::collections::HashMap;

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::{json, Value};

use super::admin::{ok, page_of};
use super::error::AdminFailure;
use super::extract::{json_body, AdminAuth};
use super::openapi::{admin_routes, Change, Create, Paging, Queue, Read};
use super::AppState;
use crate::directory::webhooks::{self, EndpointUpdate, NewEndpoint};
use crate::directory::{admin_json, directories, events};
use crate::error::Rejected;
use crate::ids::{EndpointId, EventId};

type Reply = Result<HttpResponse, AdminFailure>;
type Query = web::Query<HashMap<String, String>>;

// Mounted inside each `/api/v1/directory-sync` scope (and its `dsync` alias).
admin_routes!(mount, WebhookDoc, "/api/v1/directory-sync", {
    get "/{id}/events/{eid}" => get_event,
    post "/{id}/events/{eid}/replay" => replay_event,
    get "/{id}/webhooks" => list_endpoints,
    post "/{id}/webhooks" => create_endpoint,
    get "/{id}/webhooks/{wid}" => get_endpoint,
    patch "/{id}/webhooks/{wid}" => update_endpoint,
    delete "/{id}/webhooks/{wid}" => delete_endpoint,
    post "/{id}/webhooks/{wid}/secret/rotate" => rotate_endpoint_secret,
    post "/{id}/webhooks/{wid}/replay" => replay_endpoint,
    get "/{id}/deliveries" => list_deliveries,
});

async fn body_of<T: serde::de::DeserializeOwned>(
    state: &AppState,
    req: &HttpRequest,
    payload: web::Payload,
    allow_empty: bool,
) -> Result<T, AdminFailure> {
    let declared_empty = req
        .headers()
        .get("content-length")
        .is_none_or(|v| v.as_bytes() == b"0");
    let body = if allow_empty && declared_empty {
        json!({})
    } else {
        json_body(payload, req, state.max_body_bytes).await?
    };
    super::admin::from_body(body, "invalid webhook endpoint").map_err(AdminFailure::from)
}

/// `/{id}/events/{eid}`: an event id that is not one names no event (404, no query).
fn event_path(path: web::Path<(String, String)>) -> Result<(String, EventId), AdminFailure> {
    let (id, eid) = path.into_inner();
    let eid = EventId::parse(&eid).ok_or_else(|| Rejected::not_found("Event not found"))?;
    Ok((id, eid))
}

/// `/{id}/webhooks/{wid}`: likewise for an endpoint id.
fn endpoint_path(path: web::Path<(String, String)>) -> Result<(String, EndpointId), AdminFailure> {
    let (id, wid) = path.into_inner();
    let wid =
        EndpointId::parse(&wid).ok_or_else(|| Rejected::not_found("Webhook endpoint not found"))?;
    Ok((id, wid))
}

/// The optional `endpoint_id` parameter.
fn endpoint_param(q: &Query) -> Result<Option<EndpointId>, AdminFailure> {
    match q.get("endpoint_id").filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(s) => Ok(Some(EndpointId::parse(s).ok_or_else(|| {
            Rejected::invalid("endpoint_id is not a webhook endpoint id")
        })?)),
    }
}

/// One event as receivers get it, with its deliveries and attempts beside.
#[utoipa::path(get, path = "/api/v1/directory-sync/{id}/events/{eid}", tag = "events", params(("id" = String, Path, description = "Directory id (UUID)"), ("eid" = String, Path, description = "Event id (`evt_…`)")), responses(Read))]
async fn get_event(
    _: AdminAuth,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> Reply {
    let (id, eid) = event_path(path)?;
    let (event, sent, tried) = state
        .db
        .run(move |c| {
            let event = events::get(c, &id, &eid)?;
            let (sent, tried) = events::deliveries_of(c, &eid)?;
            Ok((event, sent, tried))
        })
        .await?;
    // `data` is the event exactly as receivers get it; its delivery state sits beside.
    let deliveries: Vec<Value> = sent.iter().map(admin_json::delivery_json).collect();
    let attempts: Vec<Value> = tried.iter().map(admin_json::attempt_json).collect();
    Ok(HttpResponse::Ok().json(json!({
        "data": event.to_json(),
        "deliveries": deliveries,
        "attempts": attempts,
        "error": null,
    })))
}

/// Send an event again to every subscribed endpoint (or one).
#[utoipa::path(post, path = "/api/v1/directory-sync/{id}/events/{eid}/replay", tag = "events", params(("id" = String, Path, description = "Directory id (UUID)"), ("eid" = String, Path, description = "Event id (`evt_…`)"), ("endpoint_id" = Option<String>, Query, description = "Only this endpoint (`whe_…`)")), responses(Queue))]
async fn replay_event(
    _: AdminAuth,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    q: Query,
) -> Reply {
    let (id, eid) = event_path(path)?;
    let endpoint = endpoint_param(&q)?;
    let queued = state
        .db
        .run(move |c| {
            let event = events::get(c, &id, &eid)?;
            webhooks::replay_event(c, &id, &event, endpoint.as_ref())
        })
        .await?;
    state.dispatcher.wake();
    Ok(HttpResponse::build(StatusCode::ACCEPTED)
        .json(json!({"data": {"endpoints": queued}, "error": null})))
}

/// List a directory's webhook endpoints.
#[utoipa::path(get, path = "/api/v1/directory-sync/{id}/webhooks", tag = "webhooks", params(("id" = String, Path, description = "Directory id (UUID)")), responses(Read))]
async fn list_endpoints(_: AdminAuth, state: web::Data<AppState>, id: web::Path<String>) -> Reply {
    let id = id.into_inner();
    let rows = state.db.run(move |c| webhooks::list(c, &id)).await?;
    let data: Vec<Value> = rows
        .iter()
        .map(|e| admin_json::endpoint_json(e, None))
        .collect();
    Ok(ok(json!(data)))
}

/// Add a webhook endpoint; its secret is shown here only.
#[utoipa::path(post, path = "/api/v1/directory-sync/{id}/webhooks", tag = "webhooks", params(("id" = String, Path, description = "Directory id (UUID)")), request_body = NewEndpoint, responses(Create))]
async fn create_endpoint(
    _: AdminAuth,
    state: web::Data<AppState>,
    req: HttpRequest,
    id: web::Path<String>,
    payload: web::Payload,
) -> Reply {
    let input: NewEndpoint = body_of(&state, &req, payload, false).await?;
    let id = id.into_inner();
    let (allow_private, sealer) = (state.webhook_allow_private, state.sealer.clone());
    let (row, secret) = state
        .db
        .run(move |c| {
            let dir = directories::get(c, &id)?;
            webhooks::create(c, &sealer, &dir, input, allow_private)
        })
        .await?;
    Ok(HttpResponse::build(StatusCode::CREATED).json(json!({
        "data": admin_json::endpoint_json(&row, Some(&secret)),
        "error": null,
    })))
}

/// Read a webhook endpoint.
#[utoipa::path(get, path = "/api/v1/directory-sync/{id}/webhooks/{wid}", tag = "webhooks", params(("id" = String, Path, description = "Directory id (UUID)"), ("wid" = String, Path, description = "Webhook endpoint id (`whe_…`)")), responses(Read))]
async fn get_endpoint(
    _: AdminAuth,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> Reply {
    let (id, wid) = endpoint_path(path)?;
    let row = state.db.run(move |c| webhooks::get(c, &id, &wid)).await?;
    Ok(ok(admin_json::endpoint_json(&row, None)))
}

/// Change a webhook endpoint (URL, secret, event types, enabled, batch size).
#[utoipa::path(patch, path = "/api/v1/directory-sync/{id}/webhooks/{wid}", tag = "webhooks", params(("id" = String, Path, description = "Directory id (UUID)"), ("wid" = String, Path, description = "Webhook endpoint id (`whe_…`)")), request_body = EndpointUpdate, responses(Change))]
async fn update_endpoint(
    _: AdminAuth,
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<(String, String)>,
    payload: web::Payload,
) -> Reply {
    let input: EndpointUpdate = body_of(&state, &req, payload, false).await?;
    let (id, wid) = endpoint_path(path)?;
    let (allow_private, sealer) = (state.webhook_allow_private, state.sealer.clone());
    let row = state
        .db
        .run(move |c| webhooks::update(c, &sealer, &id, &wid, input, allow_private))
        .await?;
    state.dispatcher.wake();
    Ok(ok(admin_json::endpoint_json(&row, None)))
}

/// Remove a webhook endpoint.
#[utoipa::path(delete, path = "/api/v1/directory-sync/{id}/webhooks/{wid}", tag = "webhooks", params(("id" = String, Path, description = "Directory id (UUID)"), ("wid" = String, Path, description = "Webhook endpoint id (`whe_…`)")), responses(Change))]
async fn delete_endpoint(
    _: AdminAuth,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> Reply {
    let (id, wid) = endpoint_path(path)?;
    state
        .db
        .run(move |c| webhooks::delete(c, &id, &wid))
        .await?;
    Ok(ok(json!({})))
}

#[derive(serde::Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct Rotate {
    secret: Option<String>,
}

/// Rotate an endpoint's signing secret (given, or generated); both sign for a while.
#[utoipa::path(post, path = "/api/v1/directory-sync/{id}/webhooks/{wid}/secret/rotate", tag = "webhooks", params(("id" = String, Path, description = "Directory id (UUID)"), ("wid" = String, Path, description = "Webhook endpoint id (`whe_…`)")), request_body(content = Option<Rotate>, description = "Optional: the new secret"), responses(Change))]
async fn rotate_endpoint_secret(
    _: AdminAuth,
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<(String, String)>,
    payload: web::Payload,
) -> Reply {
    let input: Rotate = body_of(&state, &req, payload, true).await?;
    let (id, wid) = endpoint_path(path)?;
    let sealer = state.sealer.clone();
    let (row, secret) = state
        .db
        .run(move |c| webhooks::rotate_secret(c, &sealer, &id, &wid, input.secret))
        .await?;
    Ok(ok(admin_json::endpoint_json(&row, Some(&secret))))
}

/// Send again everything since a time to one endpoint.
#[utoipa::path(post, path = "/api/v1/directory-sync/{id}/webhooks/{wid}/replay", tag = "webhooks", params(("id" = String, Path, description = "Directory id (UUID)"), ("wid" = String, Path, description = "Webhook endpoint id (`whe_…`)"), ("since" = String, Query, description = "RFC 3339 time")), responses(Queue))]
async fn replay_endpoint(
    _: AdminAuth,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    q: Query,
) -> Reply {
    let since = q
        .get("since")
        .ok_or_else(|| Rejected::invalid("since (an RFC 3339 time) is required"))?;
    let since = chrono::DateTime::parse_from_rfc3339(since)
        .map_err(|_| Rejected::invalid("since must be an RFC 3339 time"))?
        .naive_utc();
    let (id, wid) = endpoint_path(path)?;
    let queued = state
        .db
        .run(move |c| webhooks::replay_since(c, &id, &wid, since))
        .await?;
    state.dispatcher.wake();
    Ok(HttpResponse::build(StatusCode::ACCEPTED)
        .json(json!({"data": {"queued": queued}, "error": null})))
}

/// A directory's deliveries (`?status=failed`: the dead letters).
#[utoipa::path(get, path = "/api/v1/directory-sync/{id}/deliveries", tag = "webhooks", params(("id" = String, Path, description = "Directory id (UUID)"), ("status" = Option<String>, Query, description = "pending, delivered, failed"), ("endpoint_id" = Option<String>, Query, description = "Only this endpoint (`whe_…`)"), Paging), responses(Read))]
async fn list_deliveries(
    _: AdminAuth,
    state: web::Data<AppState>,
    id: web::Path<String>,
    q: Query,
) -> Reply {
    let page = page_of(&q)?;
    let (status, endpoint) = (q.get("status").cloned(), endpoint_param(&q)?);
    let id = id.into_inner();
    let rows = state
        .db
        .run(move |c| {
            directories::get(c, &id)?;
            webhooks::list_deliveries(c, &id, status.as_deref(), endpoint.as_ref(), page)
        })
        .await?;
    let data: Vec<Value> = rows.iter().map(admin_json::delivery_json).collect();
    Ok(ok(json!(data)))
}
