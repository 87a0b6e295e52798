//! Admin API of customer setup links (DESIGN.md §8): create, list, revoke.

use std::collections::HashMap;

use actix_web::http::header::{HeaderValue, CACHE_CONTROL};
use actix_web::middleware::DefaultHeaders;
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::{json, Value};

use super::admin::{from_body, next_offset, ok, page_of, paged};
use super::error::AdminFailure;
use super::extract::{json_body, AdminAuth};
use super::openapi::{admin_routes, Change, Create, Paging, Read};
use super::AppState;
use crate::directory::setup_links::{self, NewSetupLink};

type Reply = Result<HttpResponse, AdminFailure>;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/api/v1/setup_links")
            // The create response carries the link's URL, a bearer credential.
            .wrap(DefaultHeaders::new().add((CACHE_CONTROL, HeaderValue::from_static("no-store"))))
            .configure(mount),
    );
}

admin_routes!(mount, SetupLinkDoc, "/api/v1/setup_links", {
    post "" => create_link,
    get "" => list_links,
    delete "/{id}" => revoke_link,
});

/// Create a setup link.
///
/// Scoped to `tenant` and `product`, or to `organizational_unit_id`; `expires_in` seconds
/// (default 3 days). `data.url` opens the customer's set-up page with no other login and
/// is shown only here: the gateway keeps a digest of its secret.
#[utoipa::path(post, path = "/api/v1/setup_links", tag = "setup links",
    request_body = NewSetupLink, responses(Create))]
async fn create_link(
    _: AdminAuth,
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Reply {
    let body = json_body(payload, &req, state.max_body_bytes).await?;
    let input: NewSetupLink = from_body(body, "invalid setup link")?;
    let (row, secret) = state.db.run(move |c| setup_links::create(c, input)).await?;
    let url = setup_links::url(&state.external_url, &secret);
    Ok(HttpResponse::Created()
        .json(json!({"data": setup_links::to_json(&row, Some(&url)), "error": null})))
}

/// List setup links, oldest first, with their state (`active`, `expired`, `revoked`);
/// never their URL.
#[utoipa::path(
    get,
    path = "/api/v1/setup_links",
    tag = "setup links",
    params(Paging),
    responses(Read)
)]
async fn list_links(
    _: AdminAuth,
    state: web::Data<AppState>,
    q: web::Query<HashMap<String, String>>,
) -> Reply {
    let page = page_of(&q)?;
    let rows = state.db.run(move |c| setup_links::list(c, page)).await?;
    let data: Vec<Value> = rows.iter().map(|r| setup_links::to_json(r, None)).collect();
    let next = next_offset(page, data.len(), None);
    Ok(paged(data, next))
}

/// Revoke a setup link: its page answers 404 from now on.
#[utoipa::path(delete, path = "/api/v1/setup_links/{id}", tag = "setup links",
    params(("id" = String, Path, description = "`stl_…`")), responses(Change))]
async fn revoke_link(_: AdminAuth, state: web::Data<AppState>, id: web::Path<String>) -> Reply {
    let id = id.into_inner();
    let row = state.db.run(move |c| setup_links::revoke(c, &id)).await?;
    Ok(ok(setup_links::to_json(&row, None)))
}
