//! SCIM routes: `/api/scim/v2.0/{directory_id}/…`. Handlers parse, authenticate (the
//! [`ScimAuth`] extractor), call the directory code on the blocking pool and render.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::Value;

use super::error::ScimFailure;
use super::extract::{json_body, ScimAuth};
use super::AppState;
use crate::directory::{groups, users, DirectoryScope};
use crate::error::Error;
use crate::scim::list::{list_response, ListQuery, Projection};
use crate::scim::resource::EtagCondition;
use crate::scim::{discovery, ScimError, CONTENT_TYPE};
use crate::store::AnyConnection;

type Reply = Result<HttpResponse, ScimFailure>;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/api/scim/v2.0/{directory_id}")
            .configure(resource_routes::<Users>("Users"))
            .configure(resource_routes::<Groups>("Groups"))
            .service(only(
                web::get(),
                "/ServiceProviderConfig",
                service_provider_config,
            ))
            .service(only(web::get(), "/ResourceTypes", resource_types))
            .service(only(web::get(), "/ResourceTypes/{name}", resource_type))
            .service(only(web::get(), "/Schemas", schemas))
            .service(only(web::get(), "/Schemas/{urn}", schema))
            .service(only(web::post(), "/.search", search_all))
            .service(only(web::post(), "/Bulk", bulk))
            .default_service(web::to(not_found)),
    );
}

/// A path answering one method with `handler`, and 405 to any other.
fn only<F, Args>(method: actix_web::Route, path: &str, handler: F) -> actix_web::Resource
where
    F: actix_web::Handler<Args>,
    Args: actix_web::FromRequest + 'static,
    F::Output: actix_web::Responder + 'static,
{
    web::resource(path)
        .route(method.to(handler))
        .default_service(web::to(method_not_allowed))
}

/// `/{name}`, `/{name}/.search` and `/{name}/{id}` of one resource type.
fn resource_routes<R: Resource>(name: &'static str) -> impl FnOnce(&mut web::ServiceConfig) {
    move |cfg| {
        let not_allowed = || web::to(method_not_allowed);
        cfg.service(
            web::resource(format!("/{name}"))
                .get(list::<R>)
                .post(create::<R>)
                .default_service(not_allowed()),
        )
        .service(only(web::post(), &format!("/{name}/.search"), search::<R>))
        .service(
            web::resource(format!("/{name}/{{id}}"))
                .get(get::<R>)
                .put(replace::<R>)
                .patch(patch::<R>)
                .delete(delete::<R>)
                .default_service(not_allowed()),
        );
    }
}

fn reply(status: StatusCode, body: &Value) -> HttpResponse {
    HttpResponse::build(status)
        .content_type(CONTENT_TYPE)
        .body(body.to_string())
}

/// A single resource, with its ETag (and Location on create).
fn resource_reply(status: StatusCode, body: Value, projection: &Projection) -> HttpResponse {
    let mut r = HttpResponse::build(status);
    r.content_type(CONTENT_TYPE);
    if let Some(v) = body["meta"]["version"].as_str() {
        r.insert_header(("ETag", v.to_string()));
    }
    if status == StatusCode::CREATED {
        if let Some(l) = body["meta"]["location"].as_str() {
            r.insert_header(("Location", l.to_string()));
        }
    }
    r.body(projection.apply(body).to_string())
}

/// `If-Match` of a write (RFC 7644 §3.14). Every `If-Match` line counts (RFC 9110 §5.3).
/// Bytes beyond ASCII are kept, not skipped: such a tag names no version of ours, so the
/// write gets 412 rather than going through unconditionally.
fn if_match(req: &HttpRequest) -> Option<EtagCondition> {
    let mut lines = req.headers().get_all("if-match").peekable();
    lines.peek()?;
    let joined = lines
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .collect::<Vec<_>>()
        .join(",");
    Some(EtagCondition::parse(&joined))
}

/// `304 Not Modified` when the client's `If-None-Match` names the current version.
fn not_modified(req: &HttpRequest, body: &Value) -> Option<HttpResponse> {
    let header = req.headers().get("if-none-match")?.to_str().ok()?;
    let version = body["meta"]["version"].as_str()?;
    let current = version
        .trim_start_matches("W/")
        .trim_matches('"')
        .parse::<i64>()
        .ok()?;
    EtagCondition::parse(header).matches(current).then(|| {
        HttpResponse::NotModified()
            .insert_header(("ETag", version.to_string()))
            .finish()
    })
}

fn query_pairs(req: &HttpRequest) -> Result<Vec<(String, String)>, ScimError> {
    web::Query::<Vec<(String, String)>>::from_query(req.query_string())
        .map(|q| q.into_inner())
        .map_err(|e| ScimError::invalid_syntax(format!("invalid query string: {e}")))
}

fn projection_of(pairs: &[(String, String)]) -> Result<Projection, ScimError> {
    Projection::from_pairs(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())))
}

fn list_query_of(pairs: &[(String, String)]) -> Result<ListQuery, ScimError> {
    ListQuery::from_pairs(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())))
}

/// A SearchRequest body (RFC 7644 §3.4.3) as query-string pairs.
fn search_pairs(body: &Value) -> Result<Vec<(String, String)>, ScimError> {
    let obj = body
        .as_object()
        .ok_or_else(|| ScimError::invalid_syntax("a search request must be a JSON object"))?;
    let mut pairs = Vec::new();
    for (k, v) in obj {
        let text = match v {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            Value::Array(items) => items
                .iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join(","),
            _ => continue,
        };
        pairs.push((k.clone(), text));
    }
    Ok(pairs)
}

async fn method_not_allowed() -> Reply {
    Err(ScimError::method_not_allowed("method not allowed on this endpoint").into())
}

async fn not_found() -> Reply {
    Err(ScimError::not_found("no such SCIM endpoint").into())
}

async fn bulk(
    ScimAuth(scope): ScimAuth,
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Reply {
    let body = json_body(payload, &req, crate::scim::bulk::MAX_PAYLOAD_BYTES).await?;
    let request = crate::scim::bulk::parse(&body)?;
    let response = state
        .db
        .run(move |c| Ok(crate::directory::bulk::execute(c, &scope, request)))
        .await?;
    Ok(reply(StatusCode::OK, &response))
}

// ---- Users and Groups: one set of handlers over the two resource types ----

/// What the handlers need of a resource type: the directory's operations on it. `full`
/// says whether a read must load everything the response shows (a group's members,
/// unless the client excluded them); users always load their groups.
pub trait Resource: Send + 'static {
    type View: Send + 'static;
    fn render(view: &Self::View, base_url: &str) -> Value;
    fn list(c: &mut AnyConnection, s: &DirectoryScope, q: &ListQuery, full: bool) -> Listed<Self>;
    fn get(c: &mut AnyConnection, s: &DirectoryScope, id: &str, full: bool) -> One<Self>;
    fn create(c: &mut AnyConnection, s: &DirectoryScope, body: Value) -> One<Self>;
    fn write(c: &mut AnyConnection, s: &DirectoryScope, w: Write<'_>) -> One<Self>;
    fn delete(c: &mut AnyConnection, s: &DirectoryScope, id: &str, if_match: IfMatch) -> Done;
}

type Listed<R> = Result<(Vec<<R as Resource>::View>, i64), Error>;
type One<R> = Result<<R as Resource>::View, Error>;
type Done = Result<(), Error>;
type IfMatch<'a> = Option<&'a EtagCondition>;

/// A PUT (`patch: false`) or PATCH of one resource.
pub struct Write<'a> {
    pub id: &'a str,
    pub body: Value,
    pub if_match: IfMatch<'a>,
    pub full: bool,
    pub patch: bool,
}

pub struct Users;
pub struct Groups;

impl Resource for Users {
    type View = users::UserView;
    fn render(view: &Self::View, base_url: &str) -> Value {
        view.render(base_url)
    }
    fn list(c: &mut AnyConnection, s: &DirectoryScope, q: &ListQuery, _: bool) -> Listed<Self> {
        users::list(c, s, q)
    }
    fn get(c: &mut AnyConnection, s: &DirectoryScope, id: &str, _: bool) -> One<Self> {
        users::get(c, s, id)
    }
    fn create(c: &mut AnyConnection, s: &DirectoryScope, body: Value) -> One<Self> {
        users::create(c, s, body)
    }
    fn write(c: &mut AnyConnection, s: &DirectoryScope, w: Write<'_>) -> One<Self> {
        match w.patch {
            true => users::patch(c, s, w.id, w.body, w.if_match),
            false => users::replace(c, s, w.id, w.body, w.if_match),
        }
    }
    fn delete(c: &mut AnyConnection, s: &DirectoryScope, id: &str, if_match: IfMatch) -> Done {
        users::delete(c, s, id, if_match)
    }
}

impl Resource for Groups {
    type View = groups::GroupView;
    fn render(view: &Self::View, base_url: &str) -> Value {
        view.render(base_url)
    }
    fn list(c: &mut AnyConnection, s: &DirectoryScope, q: &ListQuery, full: bool) -> Listed<Self> {
        groups::list(c, s, q, full)
    }
    fn get(c: &mut AnyConnection, s: &DirectoryScope, id: &str, full: bool) -> One<Self> {
        groups::get(c, s, id, full)
    }
    fn create(c: &mut AnyConnection, s: &DirectoryScope, body: Value) -> One<Self> {
        groups::create(c, s, body)
    }
    fn write(c: &mut AnyConnection, s: &DirectoryScope, w: Write<'_>) -> One<Self> {
        match w.patch {
            true => groups::patch(c, s, w.id, w.body, w.if_match, w.full),
            false => groups::replace(c, s, w.id, w.body, w.if_match, w.full),
        }
    }
    fn delete(c: &mut AnyConnection, s: &DirectoryScope, id: &str, if_match: IfMatch) -> Done {
        groups::delete(c, s, id, if_match)
    }
}

/// Whether a response with this projection shows everything a resource loads on demand
/// (a group's `members`).
fn full(projection: &Projection) -> bool {
    projection.includes("members")
}

async fn list<R: Resource>(auth: ScimAuth, state: web::Data<AppState>, req: HttpRequest) -> Reply {
    let pairs = query_pairs(&req)?;
    listing::<R>(auth, state, pairs).await
}

async fn search<R: Resource>(
    auth: ScimAuth,
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Reply {
    let body = json_body(payload, &req, state.max_body_bytes).await?;
    listing::<R>(auth, state, search_pairs(&body)?).await
}

async fn listing<R: Resource>(
    ScimAuth(scope): ScimAuth,
    state: web::Data<AppState>,
    pairs: Vec<(String, String)>,
) -> Reply {
    let q = list_query_of(&pairs)?;
    let projection = projection_of(&pairs)?;
    let full = full(&projection);
    let start = q.start_index;
    let (views, total) = state
        .db
        .run({
            let scope = scope.clone();
            move |c| R::list(c, &scope, &q, full)
        })
        .await?;
    let resources = views
        .iter()
        .map(|v| projection.apply(R::render(v, &scope.base_url)))
        .collect();
    Ok(reply(
        StatusCode::OK,
        &list_response(resources, total, start),
    ))
}

async fn create<R: Resource>(
    ScimAuth(scope): ScimAuth,
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Reply {
    let projection = projection_of(&query_pairs(&req)?)?;
    let body = json_body(payload, &req, state.max_body_bytes).await?;
    let base = scope.base_url.clone();
    let view = state.db.run(move |c| R::create(c, &scope, body)).await?;
    Ok(resource_reply(
        StatusCode::CREATED,
        R::render(&view, &base),
        &projection,
    ))
}

async fn get<R: Resource>(
    ScimAuth(scope): ScimAuth,
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<(String, String)>,
) -> Reply {
    let projection = projection_of(&query_pairs(&req)?)?;
    let full = full(&projection);
    let (_, id) = path.into_inner();
    let base = scope.base_url.clone();
    let view = state.db.run(move |c| R::get(c, &scope, &id, full)).await?;
    let body = R::render(&view, &base);
    if let Some(r) = not_modified(&req, &body) {
        return Ok(r);
    }
    Ok(resource_reply(StatusCode::OK, body, &projection))
}

/// PUT and PATCH: a body applied to one resource, under `If-Match`.
async fn write<R: Resource>(
    ScimAuth(scope): ScimAuth,
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<(String, String)>,
    payload: web::Payload,
    patch: bool,
) -> Reply {
    let projection = projection_of(&query_pairs(&req)?)?;
    let body = json_body(payload, &req, state.max_body_bytes).await?;
    let full = full(&projection);
    let if_match = if_match(&req);
    let (_, id) = path.into_inner();
    let base = scope.base_url.clone();
    let view = state
        .db
        .run(move |c| {
            let w = Write {
                id: &id,
                body,
                if_match: if_match.as_ref(),
                full,
                patch,
            };
            R::write(c, &scope, w)
        })
        .await?;
    Ok(resource_reply(
        StatusCode::OK,
        R::render(&view, &base),
        &projection,
    ))
}

async fn replace<R: Resource>(
    auth: ScimAuth,
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<(String, String)>,
    payload: web::Payload,
) -> Reply {
    write::<R>(auth, state, req, path, payload, false).await
}

async fn patch<R: Resource>(
    auth: ScimAuth,
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<(String, String)>,
    payload: web::Payload,
) -> Reply {
    write::<R>(auth, state, req, path, payload, true).await
}

async fn delete<R: Resource>(
    ScimAuth(scope): ScimAuth,
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<(String, String)>,
) -> Reply {
    let (_, id) = path.into_inner();
    let if_match = if_match(&req);
    state
        .db
        .run(move |c| R::delete(c, &scope, &id, if_match.as_ref()))
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// `POST /.search`: users first, then groups, paged over both.
async fn search_all(
    ScimAuth(scope): ScimAuth,
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Reply {
    let body = json_body(payload, &req, state.max_body_bytes).await?;
    let pairs = search_pairs(&body)?;
    let q = list_query_of(&pairs)?;
    let projection = projection_of(&pairs)?;
    let with_members = projection.includes("members");
    let start = q.start_index;
    let base = scope.base_url.clone();
    let (resources, total) = state
        .db
        .run(move |c| {
            let (u, u_total) = users::list(c, &scope, &q)?;
            let skip_groups = (q.offset() - u_total).max(0);
            let room = q.count - u.len() as i64;
            let gq = ListQuery {
                start_index: skip_groups + 1,
                count: room.max(0),
                ..q.clone()
            };
            let (g, g_total) = groups::list(c, &scope, &gq, with_members)?;
            let mut out: Vec<Value> = u.iter().map(|v| v.render(&scope.base_url)).collect();
            out.extend(g.iter().map(|v| v.render(&scope.base_url)));
            Ok((out, u_total + g_total))
        })
        .await?;
    let _ = base;
    let resources = resources.into_iter().map(|r| projection.apply(r)).collect();
    Ok(reply(
        StatusCode::OK,
        &list_response(resources, total, start),
    ))
}

// ---- Discovery ----

async fn service_provider_config(ScimAuth(scope): ScimAuth) -> Reply {
    Ok(reply(
        StatusCode::OK,
        &discovery::service_provider_config(&scope.base_url),
    ))
}

async fn resource_types(ScimAuth(scope): ScimAuth) -> Reply {
    Ok(reply(
        StatusCode::OK,
        &discovery::resource_types_list(&scope.base_url),
    ))
}

async fn resource_type(ScimAuth(scope): ScimAuth, path: web::Path<(String, String)>) -> Reply {
    let (_, name) = path.into_inner();
    Ok(reply(
        StatusCode::OK,
        &discovery::resource_type(&scope.base_url, &name)?,
    ))
}

async fn schemas(ScimAuth(scope): ScimAuth) -> Reply {
    Ok(reply(
        StatusCode::OK,
        &discovery::schemas_list(&scope.base_url),
    ))
}

async fn schema(ScimAuth(scope): ScimAuth, path: web::Path<(String, String)>) -> Reply {
    let (_, urn) = path.into_inner();
    Ok(reply(
        StatusCode::OK,
        &discovery::schema(&scope.base_url, &urn)?,
    ))
}
