//! The admin API of Google Workspace directories (DESIGN.md §4): creation after the
//! delegation is verified, "sync now", and the `google` / `sync` parts of a directory.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use serde_json::{json, Value};

use super::error::AdminFailure;
use super::extract::AdminAuth;
use super::AppState;
use crate::directory::admin_json::directory_json;
use crate::directory::directories::{self, NewDirectory};
use crate::error::Rejected;

type Reply = Result<HttpResponse, AdminFailure>;

/// `POST /directory-sync` with `"type": "google"`: Google must accept the delegation
/// (all three scopes, an administrator of the domain) before anything is created.
pub(super) async fn create(state: web::Data<AppState>, mut input: NewDirectory) -> Reply {
    let given = input.google.take().ok_or_else(|| {
        Rejected::invalid("a google directory needs google.domain and google.admin_email")
    })?;
    let (domain, admin_email) = crate::google_sync::verify(
        state.providers.google.as_ref(),
        &given.domain,
        &given.admin_email,
    )
    .await?;
    input.google = Some(directories::GoogleWorkspace {
        domain,
        admin_email,
    });
    let (allow_private, sealer) = (state.webhook_allow_private, state.sealer.clone());
    let (row, extras, webhook_secret) = state
        .db
        .run(move |c| {
            let (row, _, webhook_secret) = directories::create(c, &sealer, input, allow_private)?;
            let extras = crate::google_sync::state_json(c, &row.id)?;
            Ok((row, extras, webhook_secret))
        })
        .await?;
    state.google_sync.wake();
    let mut data = directory_json(&row, &state.external_url, None, webhook_secret.as_deref());
    decorate(&mut data, extras);
    Ok(HttpResponse::build(StatusCode::CREATED).json(json!({"data": data, "error": null})))
}

/// A Google directory's JSON with its workspace and its last sync.
pub(super) fn decorate(data: &mut Value, extras: Option<Value>) {
    if let (Some(d), Some(Value::Object(extras))) = (data.as_object_mut(), extras) {
        d.extend(extras);
    }
}

/// `POST /directory-sync/{id}/sync`: 202, also while a run is under way (it runs again
/// when that one ends).
#[utoipa::path(post, path = "/api/v1/directory-sync/{id}/sync", tag = "directories",
    params(("id" = String, Path, description = "Directory id (UUID) of a Google Workspace directory")),
    responses(crate::http::openapi::Queue))]
pub(super) async fn sync_now(
    _: AdminAuth,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Reply {
    let id = id.into_inner();
    let data = state
        .db
        .run(move |c| crate::google_sync::request_sync(c, &id))
        .await?;
    state.google_sync.wake();
    Ok(HttpResponse::build(StatusCode::ACCEPTED).json(json!({"data": data, "error": null})))
}
