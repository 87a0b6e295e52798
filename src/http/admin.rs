//! Admin REST API: `/api/v1/directory-sync/…` (alias `/api/v1/dsync/…`), `Api-Key` auth,
//! `{data, error}` envelopes. Shapes follow Jackson's so its clients work unchanged.

use std::collections::HashMap;

use actix_web::http::header::{HeaderValue, CACHE_CONTROL};
use actix_web::http::StatusCode;
use actix_web::middleware::DefaultHeaders;
use actix_web::{web, HttpRequest, HttpResponse};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::{json, Value};

use super::admin_google::{__path_sync_now, sync_now};
use super::error::AdminFailure;
use super::extract::{json_body, AdminAuth};
use super::openapi::{admin_routes, Change, Create, Paging, Read, Scoped};
use super::AppState;
use crate::directory::admin_json::directory_json;
use crate::directory::directories::{self, DirectoryUpdate, NewDirectory};
use crate::directory::{groups, users};
use crate::error::Error;
use crate::error::Rejected;
use crate::store::{AnyConnection, Page};

type Reply = Result<HttpResponse, AdminFailure>;
type Query = web::Query<HashMap<String, String>>;

pub const DEFAULT_PAGE_LIMIT: i64 = 50;
pub const MAX_PAGE_LIMIT: i64 = 1000;

pub fn routes(cfg: &mut web::ServiceConfig) {
    for prefix in ["/api/v1/directory-sync", "/api/v1/dsync"] {
        cfg.service(
            web::scope(prefix)
                // Responses carry SCIM and webhook secrets (create, rotate) and directory
                // data: no cache, shared or private, keeps any of them.
                .wrap(
                    DefaultHeaders::new()
                        .add((CACHE_CONTROL, HeaderValue::from_static("no-store"))),
                )
                .configure(mount)
                .configure(super::admin_webhooks::mount)
                .default_service(web::to(not_found)),
        );
    }
}

// Jackson's tenant+product (or ?directoryId=) forms come before `/{id}`.
admin_routes!(mount, DirectoryDoc, "/api/v1/directory-sync", {
    post "" => create_directory,
    get "" => list_directories,
    get "/users" => scoped_users,
    get "/users/{uid}" => scoped_user,
    get "/groups" => scoped_groups,
    get "/groups/{gid}" => scoped_group,
    get "/groups/{gid}/members" => scoped_members,
    get "/{id}" => get_directory,
    patch "/{id}" => update_directory,
    delete "/{id}" => delete_directory,
    post "/{id}/scim-secret/rotate" => rotate_secret,
    post "/{id}/sync" => sync_now,
    get "/{id}/provisioning" => provisioning_state,
    get "/{id}/users" => directory_users,
    get "/{id}/users/{uid}" => directory_user,
    get "/{id}/groups" => directory_groups,
    get "/{id}/groups/{gid}" => directory_group,
    get "/{id}/groups/{gid}/members" => directory_members,
    get "/{id}/events" => directory_events,
});

async fn not_found() -> Reply {
    Err(Rejected::not_found("Not found.").into())
}

pub(super) fn ok(data: Value) -> HttpResponse {
    HttpResponse::Ok().json(json!({"data": data, "error": null}))
}

pub(super) fn paged(data: Vec<Value>, next: Option<i64>) -> HttpResponse {
    let mut body = json!({"data": data, "error": null});
    if let Some(n) = next {
        body["pageToken"] = json!(URL_SAFE_NO_PAD.encode(n.to_string()));
    }
    HttpResponse::Ok().json(body)
}

/// `pageOffset`/`offset`, `pageLimit`/`limit`, or a `pageToken` from an earlier page.
pub(super) fn page_of(q: &HashMap<String, String>) -> Result<Page, Error> {
    let int = |names: &[&str], default: i64| -> Result<i64, Error> {
        match names.iter().find_map(|n| q.get(*n)) {
            None => Ok(default),
            Some(v) if v.trim().is_empty() => Ok(default),
            Some(v) => v
                .trim()
                .parse::<i64>()
                .map_err(|_| Rejected::invalid(format!("{} must be an integer", names[0])).into()),
        }
    };
    let mut offset = int(&["pageOffset", "offset"], 0)?.max(0);
    let limit = int(&["pageLimit", "limit"], DEFAULT_PAGE_LIMIT)?;
    let limit = if limit <= 0 {
        DEFAULT_PAGE_LIMIT
    } else {
        limit.min(MAX_PAGE_LIMIT)
    };
    if let Some(token) = q.get("pageToken").filter(|t| !t.is_empty()) {
        offset = URL_SAFE_NO_PAD
            .decode(token)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .and_then(|s| s.parse::<i64>().ok())
            .filter(|o| *o >= 0)
            .ok_or_else(|| Rejected::invalid("invalid pageToken"))?;
    }
    Ok(Page { offset, limit })
}

pub(super) fn next_offset(page: Page, returned: usize, total: Option<i64>) -> Option<i64> {
    let next = page.offset + returned as i64;
    match total {
        Some(t) => (next < t).then_some(next),
        None => (returned as i64 == page.limit).then_some(next),
    }
}

/// An admin request body as `T`; a 400 naming the field at fault and the JSON type it
/// needs, in the API's words rather than serde's (which names our Rust types).
pub(super) fn from_body<T: serde::de::DeserializeOwned>(
    body: Value,
    what: &str,
) -> Result<T, Rejected> {
    if !body.is_object() {
        return Err(Rejected::invalid(format!(
            "{what}: the body must be a JSON object"
        )));
    }
    let err = match serde_json::from_value::<T>(body.clone()) {
        Ok(v) => return Ok(v),
        Err(e) => e,
    };
    // Probing field by field only works when an empty body is valid (no required field).
    let probe = serde_json::from_value::<T>(json!({})).is_ok();
    let found = probe
        .then(|| culprit::<T>(&body, &mut Vec::new()))
        .flatten();
    let message = match found {
        Some((path, e)) => format!("{what}: {}: {}", path.join("."), api_words(&e.to_string())),
        None => format!("{what}: {}", api_words(&err.to_string())),
    };
    Err(Rejected::invalid(message))
}

/// The field a body fails on: the first key under `path` that fails alone; deeper while
/// the failure lies inside that field's object (the field accepts an empty one).
/// serde_json's own errors from a `Value` carry no position.
fn culprit<T: serde::de::DeserializeOwned>(
    at: &Value,
    path: &mut Vec<String>,
) -> Option<(Vec<String>, serde_json::Error)> {
    // `v` placed at `path` + `key` in an otherwise empty body.
    let alone = |key: &str, v: Value| {
        let wrap = |k: &str, v: Value| Value::Object([(k.to_string(), v)].into_iter().collect());
        let doc = path.iter().rev().fold(wrap(key, v), |doc, p| wrap(p, doc));
        serde_json::from_value::<T>(doc).err()
    };
    for (key, v) in at.as_object()? {
        let Some(err) = alone(key, v.clone()) else {
            continue;
        };
        if v.is_object() && alone(key, json!({})).is_none() {
            path.push(key.clone());
            if let Some(inner) = culprit::<T>(v, path) {
                return Some(inner);
            }
            path.pop();
        }
        let mut found = path.clone();
        found.push(key.clone());
        return Some((found, err));
    }
    None
}

/// A serde message with Rust type names replaced by JSON ones. Values quoted from the
/// request (`"…"`, `` `…` ``) are kept as sent.
fn api_words(message: &str) -> String {
    if message.starts_with("data did not match any variant of untagged enum") {
        return "not a value this field accepts".into();
    }
    const PUNCT: [char; 4] = [',', '.', ':', ';'];
    let bare = |w: &str| w.trim_end_matches(PUNCT).len();
    let mut out: Vec<String> = Vec::new();
    let mut quoted = false;
    let mut words = message.split(' ').peekable();
    while let Some(word) = words.next() {
        if quoted || word.starts_with(['"', '`']) {
            if opens_or_closes_quote(word) {
                quoted = !quoted;
            }
            out.push(word.to_string());
            continue;
        }
        let (head, tail) = word.split_at(bare(word));
        let next = words.peek().map(|w| &w[..bare(w)]);
        let replaced = match head {
            // `struct Name` / `enum Name`: the name goes too.
            "struct" | "enum" => {
                let name = words.next().unwrap_or_default();
                let tail = &name[bare(name)..];
                let what = if head == "struct" {
                    "an object"
                } else {
                    "one of the accepted values"
                };
                out.push(format!("{what}{tail}"));
                continue;
            }
            "a" if matches!(next, Some("sequence" | "map")) => "an",
            "sequence" => "array",
            "map" => "object",
            "floating" if next == Some("point") => {
                words.next();
                "number"
            }
            "i8" | "i16" | "i32" | "i64" | "i128" | "isize" => "an integer",
            "u8" | "u16" | "u32" | "u64" | "u128" | "usize" => "a non-negative integer",
            "f32" | "f64" => "a number",
            other => other,
        };
        out.push(format!("{replaced}{tail}"));
    }
    out.join(" ")
}

/// Whether `word` holds an odd number of unescaped quote marks.
fn opens_or_closes_quote(word: &str) -> bool {
    let mut escaped = false;
    let mut marks = 0;
    for c in word.chars() {
        match c {
            '\\' if !escaped => escaped = true,
            '"' | '`' if !escaped => marks += 1,
            _ => escaped = false,
        }
    }
    marks % 2 == 1
}

/// Create a directory.
///
/// The answer carries `scim: {path, endpoint, secret}`: the SCIM secret is shown here and
/// at rotation only.
#[utoipa::path(post, path = "/api/v1/directory-sync", tag = "directories",
    request_body = NewDirectory, responses(Create))]
async fn create_directory(
    _: AdminAuth,
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Reply {
    let body = json_body(payload, &req, state.max_body_bytes).await?;
    let input: NewDirectory = from_body(body, "invalid directory")?;
    if input.provider_type.as_deref() == Some(directories::GOOGLE) {
        return super::admin_google::create(state, input).await;
    }
    let (allow_private, sealer) = (state.webhook_allow_private, state.sealer.clone());
    let (row, secret, webhook_secret) = state
        .db
        .run(move |c| directories::create(c, &sealer, input, allow_private))
        .await?;
    let data = directory_json(
        &row,
        &state.external_url,
        Some(&secret),
        webhook_secret.as_deref(),
    );
    Ok(HttpResponse::build(StatusCode::CREATED).json(json!({"data": data, "error": null})))
}

/// List directories, optionally of one tenant and/or product.
#[utoipa::path(get, path = "/api/v1/directory-sync", tag = "directories",
    params(("tenant" = Option<String>, Query), ("product" = Option<String>, Query), Paging),
    responses(Read))]
async fn list_directories(_: AdminAuth, state: web::Data<AppState>, q: Query) -> Reply {
    let page = page_of(&q)?;
    let (tenant, product) = (q.get("tenant").cloned(), q.get("product").cloned());
    let (rows, total) = state
        .db
        .run(move |c| directories::list(c, tenant.as_deref(), product.as_deref(), page))
        .await?;
    let data = rows
        .iter()
        .map(|r| directory_json(r, &state.external_url, None, None))
        .collect::<Vec<_>>();
    let next = next_offset(page, data.len(), Some(total));
    Ok(paged(data, next))
}

/// Read a directory (`scim.secret` is `null`: it is stored hashed).
#[utoipa::path(get, path = "/api/v1/directory-sync/{id}", tag = "directories",
    params(("id" = String, Path, description = "Directory id (UUID)")), responses(Read))]
async fn get_directory(_: AdminAuth, state: web::Data<AppState>, id: web::Path<String>) -> Reply {
    let id = id.into_inner();
    let (row, google) = state
        .db
        .run(move |c| {
            Ok((
                directories::get(c, &id)?,
                crate::google_sync::state_json(c, &id)?,
            ))
        })
        .await?;
    let mut data = directory_json(&row, &state.external_url, None, None);
    super::admin_google::decorate(&mut data, google);
    Ok(ok(data))
}

/// Update a directory: name, webhook, `log_webhook_events`, `deactivated`, `user_limit`,
/// `organizational_unit_id`.
#[utoipa::path(patch, path = "/api/v1/directory-sync/{id}", tag = "directories",
    params(("id" = String, Path, description = "Directory id (UUID)")), request_body = DirectoryUpdate, responses(Change))]
async fn update_directory(
    _: AdminAuth,
    state: web::Data<AppState>,
    req: HttpRequest,
    id: web::Path<String>,
    payload: web::Payload,
) -> Reply {
    let body = json_body(payload, &req, state.max_body_bytes).await?;
    let input: DirectoryUpdate = from_body(body, "invalid update")?;
    let id = id.into_inner();
    let (allow_private, sealer) = (state.webhook_allow_private, state.sealer.clone());
    let attaching = matches!(input.organizational_unit_id, Some(Some(_)));
    let (row, generated) = state
        .db
        .run(move |c| directories::update(c, &sealer, &id, input, allow_private))
        .await?;
    state.directories.evict(&row.id);
    if attaching {
        // Its users are provisioned now (the backfill), not at the next poll.
        state.provisioning.attached(&row.id);
    }
    Ok(ok(directory_json(
        &row,
        &state.external_url,
        None,
        generated.as_deref(),
    )))
}

/// Where provisioning of a directory attached to a unit is (`null` when not attached).
#[utoipa::path(get, path = "/api/v1/directory-sync/{id}/provisioning", tag = "directories",
    params(("id" = String, Path, description = "Directory id (UUID)")), responses(Read))]
async fn provisioning_state(
    _: AdminAuth,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Reply {
    let id = id.into_inner();
    if !crate::directory::is_resource_id(&id) {
        return Err(Rejected::not_found("directory not found").into());
    }
    let data = state
        .db
        .run(move |c| crate::provisioning::state_json(c, &id))
        .await?;
    Ok(ok(data))
}

/// Delete a directory with all its data (`dsync.deleted` is sent).
#[utoipa::path(delete, path = "/api/v1/directory-sync/{id}", tag = "directories",
    params(("id" = String, Path, description = "Directory id (UUID)")), responses(Change))]
async fn delete_directory(
    _: AdminAuth,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Reply {
    let id = id.into_inner();
    let row = state.db.run(move |c| directories::delete(c, &id)).await?;
    state.directories.evict(&row.id);
    // `dsync.deleted` was numbered and queued by the deletion itself.
    state.dispatcher.wake();
    Ok(ok(json!({})))
}

/// Issue a new SCIM secret; the old one keeps working for the grace period.
#[utoipa::path(post, path = "/api/v1/directory-sync/{id}/scim-secret/rotate", tag = "directories",
    params(("id" = String, Path, description = "Directory id (UUID)"), ("grace_period_seconds" = Option<i64>, Query,
        description = "How long the old secret keeps working (default 24 h; 0 ends it now)")),
    responses(Change))]
async fn rotate_secret(
    _: AdminAuth,
    state: web::Data<AppState>,
    id: web::Path<String>,
    q: Query,
) -> Reply {
    let grace = match q.get("grace_period_seconds") {
        Some(v) => v
            .trim()
            .parse::<i64>()
            .ok()
            .filter(|g| (0..=directories::MAX_GRACE_SECONDS).contains(g))
            .ok_or_else(|| {
                Rejected::invalid(format!(
                    "grace_period_seconds must be an integer from 0 to {}",
                    directories::MAX_GRACE_SECONDS
                ))
            })?,
        None => state.secret_grace_seconds,
    };
    let id = id.into_inner();
    let (row, secret) = state
        .db
        .run(move |c| directories::rotate_secret(c, &id, grace))
        .await?;
    state.directories.evict(&row.id);
    Ok(ok(directory_json(
        &row,
        &state.external_url,
        Some(&secret),
        None,
    )))
}

// ---- Synced data ----

/// The directories a read covers: one by id, or (Jackson) every directory of a tenant
/// and product.
fn directory_ids(c: &mut AnyConnection, q: &HashMap<String, String>) -> Result<Vec<String>, Error> {
    if let Some(id) = q.get("directoryId").filter(|s| !s.is_empty()) {
        directories::get(c, id)?;
        return Ok(vec![id.clone()]);
    }
    match (q.get("tenant"), q.get("product")) {
        (Some(t), Some(p)) => {
            let ids = directories::ids_for_tenant_product(c, t, p)?;
            if ids.is_empty() {
                return Err(Rejected::not_found("Directory not found.").into());
            }
            Ok(ids)
        }
        _ => Err(Rejected::invalid("Please provide a directoryId, or tenant and product").into()),
    }
}

fn one(
    id: String,
) -> impl FnOnce(&mut AnyConnection, &HashMap<String, String>) -> Result<Vec<String>, Error>
       + Send
       + 'static {
    move |c, _| {
        directories::get(c, &id)?;
        Ok(vec![id])
    }
}

/// Users or groups as the admin API reads them, across directories.
trait Synced: 'static {
    const PAGE: PageRead;
    const ONE: OneRead;
}

struct SyncedUsers;
struct SyncedGroups;

impl Synced for SyncedUsers {
    const PAGE: PageRead = users::summaries_in;
    const ONE: OneRead = users::summary_in;
}

impl Synced for SyncedGroups {
    const PAGE: PageRead = groups::summaries_in;
    const ONE: OneRead = groups::summary_in;
}

/// List a directory's users.
#[utoipa::path(get, path = "/api/v1/directory-sync/{id}/users", tag = "synced data",
    params(("id" = String, Path, description = "Directory id (UUID)"), Paging), responses(Read))]
async fn directory_users(
    a: AdminAuth,
    st: web::Data<AppState>,
    id: web::Path<String>,
    q: Query,
) -> Reply {
    directory_list::<SyncedUsers>(a, st, id, q).await
}

/// List a directory's groups.
#[utoipa::path(get, path = "/api/v1/directory-sync/{id}/groups", tag = "synced data",
    params(("id" = String, Path, description = "Directory id (UUID)"), Paging), responses(Read))]
async fn directory_groups(
    a: AdminAuth,
    st: web::Data<AppState>,
    id: web::Path<String>,
    q: Query,
) -> Reply {
    directory_list::<SyncedGroups>(a, st, id, q).await
}

/// Users of a tenant and product (Jackson's form), or of `?directoryId=`.
#[utoipa::path(
    get,
    path = "/api/v1/directory-sync/users",
    tag = "synced data",
    params(Scoped, Paging),
    responses(Read)
)]
async fn scoped_users(a: AdminAuth, st: web::Data<AppState>, q: Query) -> Reply {
    scoped_list::<SyncedUsers>(a, st, q).await
}

/// Groups of a tenant and product (Jackson's form), or of `?directoryId=`.
#[utoipa::path(
    get,
    path = "/api/v1/directory-sync/groups",
    tag = "synced data",
    params(Scoped, Paging),
    responses(Read)
)]
async fn scoped_groups(a: AdminAuth, st: web::Data<AppState>, q: Query) -> Reply {
    scoped_list::<SyncedGroups>(a, st, q).await
}

/// Read one user of a directory.
#[utoipa::path(get, path = "/api/v1/directory-sync/{id}/users/{uid}", tag = "synced data",
    params(("id" = String, Path, description = "Directory id (UUID)"), ("uid" = String, Path, description = "User id (UUID)")), responses(Read))]
async fn directory_user(
    a: AdminAuth,
    st: web::Data<AppState>,
    p: web::Path<(String, String)>,
    q: Query,
) -> Reply {
    directory_one::<SyncedUsers>(a, st, p, q).await
}

/// Read one group of a directory.
#[utoipa::path(get, path = "/api/v1/directory-sync/{id}/groups/{gid}", tag = "synced data",
    params(("id" = String, Path, description = "Directory id (UUID)"), ("gid" = String, Path, description = "Group id (UUID)")), responses(Read))]
async fn directory_group(
    a: AdminAuth,
    st: web::Data<AppState>,
    p: web::Path<(String, String)>,
    q: Query,
) -> Reply {
    directory_one::<SyncedGroups>(a, st, p, q).await
}

/// Read one user of a tenant and product (Jackson's form), or of `?directoryId=`.
#[utoipa::path(get, path = "/api/v1/directory-sync/users/{uid}", tag = "synced data",
    params(("uid" = String, Path, description = "User id (UUID)"), Scoped), responses(Read))]
async fn scoped_user(
    a: AdminAuth,
    st: web::Data<AppState>,
    uid: web::Path<String>,
    q: Query,
) -> Reply {
    scoped_one::<SyncedUsers>(a, st, uid, q).await
}

/// Read one group of a tenant and product (Jackson's form), or of `?directoryId=`.
#[utoipa::path(get, path = "/api/v1/directory-sync/groups/{gid}", tag = "synced data",
    params(("gid" = String, Path, description = "Group id (UUID)"), Scoped), responses(Read))]
async fn scoped_group(
    a: AdminAuth,
    st: web::Data<AppState>,
    gid: web::Path<String>,
    q: Query,
) -> Reply {
    scoped_one::<SyncedGroups>(a, st, gid, q).await
}

/// `/{id}/users`, `/{id}/groups`.
async fn directory_list<S: Synced>(
    _: AdminAuth,
    state: web::Data<AppState>,
    id: web::Path<String>,
    q: Query,
) -> Reply {
    paged_read(state, q.into_inner(), one(id.into_inner()), S::PAGE).await
}

/// `/users`, `/groups` (by tenant and product, or `?directoryId=`).
async fn scoped_list<S: Synced>(_: AdminAuth, state: web::Data<AppState>, q: Query) -> Reply {
    paged_read(state, q.into_inner(), directory_ids, S::PAGE).await
}

/// `/{id}/users/{uid}`, `/{id}/groups/{gid}`.
async fn directory_one<S: Synced>(
    _: AdminAuth,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    q: Query,
) -> Reply {
    let (id, rid) = path.into_inner();
    one_read(state, q.into_inner(), rid, one(id), S::ONE).await
}

/// `/users/{uid}`, `/groups/{gid}`.
async fn scoped_one<S: Synced>(
    _: AdminAuth,
    state: web::Data<AppState>,
    rid: web::Path<String>,
    q: Query,
) -> Reply {
    one_read(
        state,
        q.into_inner(),
        rid.into_inner(),
        directory_ids,
        S::ONE,
    )
    .await
}

/// A group's members, paged.
#[utoipa::path(get, path = "/api/v1/directory-sync/{id}/groups/{gid}/members", tag = "synced data",
    params(("id" = String, Path, description = "Directory id (UUID)"), ("gid" = String, Path, description = "Group id (UUID)"), Paging), responses(Read))]
async fn directory_members(
    _: AdminAuth,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    q: Query,
) -> Reply {
    let (id, gid) = path.into_inner();
    list_members(state, q.into_inner(), gid, one(id)).await
}
/// A group's members, of a tenant and product (Jackson's form) or of `?directoryId=`.
#[utoipa::path(get, path = "/api/v1/directory-sync/groups/{gid}/members", tag = "synced data",
    params(("gid" = String, Path, description = "Group id (UUID)"), Scoped, Paging), responses(Read))]
async fn scoped_members(
    _: AdminAuth,
    state: web::Data<AppState>,
    gid: web::Path<String>,
    q: Query,
) -> Reply {
    list_members(state, q.into_inner(), gid.into_inner(), directory_ids).await
}

/// Finds the directories a read is scoped to.
trait Resolve:
    FnOnce(&mut AnyConnection, &HashMap<String, String>) -> Result<Vec<String>, Error> + Send + 'static
{
}
impl<F> Resolve for F where
    F: FnOnce(&mut AnyConnection, &HashMap<String, String>) -> Result<Vec<String>, Error>
        + Send
        + 'static
{
}

/// A directory read across directories: a page of resources, or one by id.
type PageRead = fn(&mut AnyConnection, &[String], Page, &str) -> Result<Vec<Value>, Error>;
type OneRead = fn(&mut AnyConnection, &[String], &str, &str) -> Result<Value, Error>;

/// A page of what `read` finds in the directories `resolve` names.
async fn paged_read(
    state: web::Data<AppState>,
    q: HashMap<String, String>,
    resolve: impl Resolve,
    read: PageRead,
) -> Reply {
    let page = page_of(&q)?;
    let external = state.external_url.clone();
    let data = state
        .db
        .run(move |c| {
            let ids = resolve(c, &q)?;
            read(c, &ids, page, &external)
        })
        .await?;
    let next = next_offset(page, data.len(), None);
    Ok(paged(data, next))
}

/// One resource `read` finds by `id` in the directories `resolve` names.
async fn one_read(
    state: web::Data<AppState>,
    q: HashMap<String, String>,
    id: String,
    resolve: impl Resolve,
    read: OneRead,
) -> Reply {
    let external = state.external_url.clone();
    let data = state
        .db
        .run(move |c| {
            let ids = resolve(c, &q)?;
            read(c, &ids, &id, &external)
        })
        .await?;
    Ok(ok(data))
}

async fn list_members(
    state: web::Data<AppState>,
    q: HashMap<String, String>,
    gid: String,
    resolve: impl Resolve,
) -> Reply {
    let page = page_of(&q)?;
    let data = state
        .db
        .run(move |c| {
            let ids = resolve(c, &q)?;
            groups::members_in(c, &ids, &gid, page)
        })
        .await?;
    let next = next_offset(page, data.len(), None);
    Ok(paged(data, next))
}

// ---- Events ----

/// The directory's numbered events after a cursor, in order (`after` in the answer is
/// the next cursor).
#[utoipa::path(get, path = "/api/v1/directory-sync/{id}/events", tag = "events",
    params(("id" = String, Path, description = "Directory id (UUID)"), ("after" = Option<i64>, Query, description = "A sequence number (default 0)"),
        ("limit" = Option<i64>, Query, description = "1 to 1000, default 50")),
    responses(Read))]
async fn directory_events(
    _: AdminAuth,
    state: web::Data<AppState>,
    id: web::Path<String>,
    q: Query,
) -> Reply {
    let after = match q.get("after").filter(|s| !s.is_empty()) {
        Some(v) => v
            .parse::<i64>()
            .map_err(|_| Rejected::invalid("after must be an event sequence number"))?,
        None => 0,
    };
    let limit = page_of(&q)?.limit;
    let id = id.into_inner();
    let rows = state
        .db
        .run(move |c| crate::directory::events::after(c, &id, after, limit))
        .await?;
    let next = rows.last().and_then(|r| r.sequence);
    let data: Vec<Value> = rows.iter().map(|r| r.to_json()).collect();
    Ok(HttpResponse::Ok()
        .json(json!({"data": data, "error": null, "after": next.unwrap_or(after)})))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Inner {
        endpoint: Option<String>,
    }

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Body {
        limit: Option<i64>,
        count: Option<u32>,
        tags: Option<Vec<String>>,
        inner: Option<Inner>,
    }

    fn message(body: Value) -> String {
        from_body::<Body>(body, "invalid thing")
            .unwrap_err()
            .message
    }

    #[test]
    fn body_errors_use_api_words() {
        assert_eq!(
            message(json!([1])),
            "invalid thing: the body must be a JSON object"
        );
        assert_eq!(
            message(json!({"limit": 1.5})),
            "invalid thing: limit: invalid type: number `1.5`, expected an integer"
        );
        assert_eq!(
            message(json!({"count": -1})),
            "invalid thing: count: invalid value: integer `-1`, expected a non-negative integer"
        );
        assert_eq!(
            message(json!({"tags": {"a": 1}})),
            "invalid thing: tags: invalid type: map, expected an array".replace("map", "object")
        );
        assert_eq!(
            message(json!({"inner": 5})),
            "invalid thing: inner: invalid type: integer `5`, expected an object"
        );
        assert_eq!(
            message(json!({"limit": 1, "inner": {"endpoint": ["x"]}})),
            "invalid thing: inner.endpoint: invalid type: array, expected a string"
        );
        // A value quoted from the request is left alone.
        assert_eq!(
            message(json!({"limit": "a struct i64 \"map"})),
            "invalid thing: limit: invalid type: string \"a struct i64 \\\"map\", expected an integer"
        );
    }
}
