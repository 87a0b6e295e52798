//! Admin routes of webhook fan-out: endpoints, one event with its deliveries and
//! attempts, replay, and the delivery list (dead letters with `?status=failed`).

use std::collections::HashMap;

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::{json, Value};

use super::admin::{ok, page_of};
use super::error::AdminFailure;
use super::extract::{json_body, AdminAuth};
use super::AppState;
use crate::directory::webhooks::{self, EndpointUpdate, NewEndpoint};
use crate::directory::{admin_json, directories, events};
use crate::error::Rejected;
use crate::ids::{EndpointId, EventId};

type Reply = Result<HttpResponse, AdminFailure>;
type Query = web::Query<HashMap<String, String>>;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/{id}/events/{eid}", web::get().to(get_event))
        .route("/{id}/events/{eid}/replay", web::post().to(replay_event))
        .route("/{id}/webhooks", web::get().to(list_endpoints))
        .route("/{id}/webhooks", web::post().to(create_endpoint))
        .route("/{id}/webhooks/{wid}", web::get().to(get_endpoint))
        .route("/{id}/webhooks/{wid}", web::patch().to(update_endpoint))
        .route("/{id}/webhooks/{wid}", web::delete().to(delete_endpoint))
        .route(
            "/{id}/webhooks/{wid}/secret/rotate",
            web::post().to(rotate_endpoint_secret),
        )
        .route(
            "/{id}/webhooks/{wid}/replay",
            web::post().to(replay_endpoint),
        )
        .route("/{id}/deliveries", web::get().to(list_deliveries));
}

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

async fn list_endpoints(_: AdminAuth, state: web::Data<AppState>, id: web::Path<String>) -> Reply {
    let id = id.into_inner();
    let rows = state.db.run(move |c| webhooks::list(c, &id)).await?;
    let data: Vec<Value> = rows
        .iter()
        .map(|e| admin_json::endpoint_json(e, None))
        .collect();
    Ok(ok(json!(data)))
}

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

async fn get_endpoint(
    _: AdminAuth,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> Reply {
    let (id, wid) = endpoint_path(path)?;
    let row = state.db.run(move |c| webhooks::get(c, &id, &wid)).await?;
    Ok(ok(admin_json::endpoint_json(&row, None)))
}

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

#[derive(serde::Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Rotate {
    secret: Option<String>,
}

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
