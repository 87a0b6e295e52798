//! SCIM routes: `/api/scim/v2.0/{directory_id}/…`. Handlers parse, authenticate (the
//! [`ScimAuth`] extractor), call the directory code on the blocking pool and render.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::Value;

use super::error::ScimFailure;
use super::extract::{json_body, ScimAuth};
use super::AppState;
use crate::directory::{groups, users};
use crate::scim::list::{list_response, ListQuery, Projection};
use crate::scim::resource::EtagCondition;
use crate::scim::{discovery, ScimError, CONTENT_TYPE};

type Reply = Result<HttpResponse, ScimFailure>;

pub fn routes(cfg: &mut web::ServiceConfig) {
    let not_allowed = || web::to(method_not_allowed);
    cfg.service(
        web::scope("/api/scim/v2.0/{directory_id}")
            .service(
                web::resource("/Users")
                    .get(list_users)
                    .post(create_user)
                    .default_service(not_allowed()),
            )
            .service(
                web::resource("/Users/.search")
                    .post(search_users)
                    .default_service(not_allowed()),
            )
            .service(
                web::resource("/Users/{id}")
                    .get(get_user)
                    .put(replace_user)
                    .patch(patch_user)
                    .delete(delete_user)
                    .default_service(not_allowed()),
            )
            .service(
                web::resource("/Groups")
                    .get(list_groups)
                    .post(create_group)
                    .default_service(not_allowed()),
            )
            .service(
                web::resource("/Groups/.search")
                    .post(search_groups)
                    .default_service(not_allowed()),
            )
            .service(
                web::resource("/Groups/{id}")
                    .get(get_group)
                    .put(replace_group)
                    .patch(patch_group)
                    .delete(delete_group)
                    .default_service(not_allowed()),
            )
            .service(
                web::resource("/ServiceProviderConfig")
                    .get(service_provider_config)
                    .default_service(not_allowed()),
            )
            .service(
                web::resource("/ResourceTypes")
                    .get(resource_types)
                    .default_service(not_allowed()),
            )
            .service(
                web::resource("/ResourceTypes/{name}")
                    .get(resource_type)
                    .default_service(not_allowed()),
            )
            .service(
                web::resource("/Schemas")
                    .get(schemas)
                    .default_service(not_allowed()),
            )
            .service(
                web::resource("/Schemas/{urn}")
                    .get(schema)
                    .default_service(not_allowed()),
            )
            .service(
                web::resource("/.search")
                    .post(search_all)
                    .default_service(not_allowed()),
            )
            .service(
                web::resource("/Bulk")
                    .post(bulk)
                    .default_service(not_allowed()),
            )
            .default_service(web::to(not_found)),
    );
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

// ---- Users ----

async fn list_users(auth: ScimAuth, state: web::Data<AppState>, req: HttpRequest) -> Reply {
    let pairs = query_pairs(&req)?;
    users_listing(auth, state, pairs).await
}

async fn search_users(
    auth: ScimAuth,
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Reply {
    let body = json_body(payload, &req, state.max_body_bytes).await?;
    users_listing(auth, state, search_pairs(&body)?).await
}

async fn users_listing(
    ScimAuth(scope): ScimAuth,
    state: web::Data<AppState>,
    pairs: Vec<(String, String)>,
) -> Reply {
    let q = list_query_of(&pairs)?;
    let projection = projection_of(&pairs)?;
    let start = q.start_index;
    let (views, total) = state
        .db
        .run({
            let scope = scope.clone();
            move |c| users::list(c, &scope, &q)
        })
        .await?;
    let resources = views
        .iter()
        .map(|v| projection.apply(v.render(&scope.base_url)))
        .collect();
    Ok(reply(
        StatusCode::OK,
        &list_response(resources, total, start),
    ))
}

async fn create_user(
    ScimAuth(scope): ScimAuth,
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Reply {
    let projection = projection_of(&query_pairs(&req)?)?;
    let body = json_body(payload, &req, state.max_body_bytes).await?;
    let base = scope.base_url.clone();
    let view = state
        .db
        .run(move |c| users::create(c, &scope, body))
        .await?;
    Ok(resource_reply(
        StatusCode::CREATED,
        view.render(&base),
        &projection,
    ))
}

async fn get_user(
    ScimAuth(scope): ScimAuth,
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<(String, String)>,
) -> Reply {
    let projection = projection_of(&query_pairs(&req)?)?;
    let (_, id) = path.into_inner();
    let base = scope.base_url.clone();
    let view = state.db.run(move |c| users::get(c, &scope, &id)).await?;
    let body = view.render(&base);
    if let Some(r) = not_modified(&req, &body) {
        return Ok(r);
    }
    Ok(resource_reply(StatusCode::OK, body, &projection))
}

async fn replace_user(
    ScimAuth(scope): ScimAuth,
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<(String, String)>,
    payload: web::Payload,
) -> Reply {
    let projection = projection_of(&query_pairs(&req)?)?;
    let body = json_body(payload, &req, state.max_body_bytes).await?;
    let if_match = if_match(&req);
    let (_, id) = path.into_inner();
    let base = scope.base_url.clone();
    let view = state
        .db
        .run(move |c| users::replace(c, &scope, &id, body, if_match.as_ref()))
        .await?;
    Ok(resource_reply(
        StatusCode::OK,
        view.render(&base),
        &projection,
    ))
}

async fn patch_user(
    ScimAuth(scope): ScimAuth,
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<(String, String)>,
    payload: web::Payload,
) -> Reply {
    let projection = projection_of(&query_pairs(&req)?)?;
    let body = json_body(payload, &req, state.max_body_bytes).await?;
    let if_match = if_match(&req);
    let (_, id) = path.into_inner();
    let base = scope.base_url.clone();
    let view = state
        .db
        .run(move |c| users::patch(c, &scope, &id, body, if_match.as_ref()))
        .await?;
    Ok(resource_reply(
        StatusCode::OK,
        view.render(&base),
        &projection,
    ))
}

async fn delete_user(
    ScimAuth(scope): ScimAuth,
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<(String, String)>,
) -> Reply {
    let (_, id) = path.into_inner();
    let if_match = if_match(&req);
    state
        .db
        .run(move |c| users::delete(c, &scope, &id, if_match.as_ref()))
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

// ---- Groups ----

async fn list_groups(auth: ScimAuth, state: web::Data<AppState>, req: HttpRequest) -> Reply {
    let pairs = query_pairs(&req)?;
    groups_listing(auth, state, pairs).await
}

async fn search_groups(
    auth: ScimAuth,
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Reply {
    let body = json_body(payload, &req, state.max_body_bytes).await?;
    groups_listing(auth, state, search_pairs(&body)?).await
}

async fn groups_listing(
    ScimAuth(scope): ScimAuth,
    state: web::Data<AppState>,
    pairs: Vec<(String, String)>,
) -> Reply {
    let q = list_query_of(&pairs)?;
    let projection = projection_of(&pairs)?;
    let with_members = projection.includes("members");
    let start = q.start_index;
    let (views, total) = state
        .db
        .run({
            let scope = scope.clone();
            move |c| groups::list(c, &scope, &q, with_members)
        })
        .await?;
    let resources = views
        .iter()
        .map(|v| projection.apply(v.render(&scope.base_url)))
        .collect();
    Ok(reply(
        StatusCode::OK,
        &list_response(resources, total, start),
    ))
}

async fn create_group(
    ScimAuth(scope): ScimAuth,
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Reply {
    let projection = projection_of(&query_pairs(&req)?)?;
    let body = json_body(payload, &req, state.max_body_bytes).await?;
    let base = scope.base_url.clone();
    let view = state
        .db
        .run(move |c| groups::create(c, &scope, body))
        .await?;
    Ok(resource_reply(
        StatusCode::CREATED,
        view.render(&base),
        &projection,
    ))
}

async fn get_group(
    ScimAuth(scope): ScimAuth,
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<(String, String)>,
) -> Reply {
    let projection = projection_of(&query_pairs(&req)?)?;
    let with_members = projection.includes("members");
    let (_, id) = path.into_inner();
    let base = scope.base_url.clone();
    let view = state
        .db
        .run(move |c| groups::get(c, &scope, &id, with_members))
        .await?;
    let body = view.render(&base);
    if let Some(r) = not_modified(&req, &body) {
        return Ok(r);
    }
    Ok(resource_reply(StatusCode::OK, body, &projection))
}

async fn replace_group(
    ScimAuth(scope): ScimAuth,
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<(String, String)>,
    payload: web::Payload,
) -> Reply {
    let projection = projection_of(&query_pairs(&req)?)?;
    let body = json_body(payload, &req, state.max_body_bytes).await?;
    let with_members = projection.includes("members");
    let if_match = if_match(&req);
    let (_, id) = path.into_inner();
    let base = scope.base_url.clone();
    let view = state
        .db
        .run(move |c| groups::replace(c, &scope, &id, body, if_match.as_ref(), with_members))
        .await?;
    Ok(resource_reply(
        StatusCode::OK,
        view.render(&base),
        &projection,
    ))
}

async fn patch_group(
    ScimAuth(scope): ScimAuth,
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<(String, String)>,
    payload: web::Payload,
) -> Reply {
    let projection = projection_of(&query_pairs(&req)?)?;
    let body = json_body(payload, &req, state.max_body_bytes).await?;
    let with_members = projection.includes("members");
    let if_match = if_match(&req);
    let (_, id) = path.into_inner();
    let base = scope.base_url.clone();
    let view = state
        .db
        .run(move |c| groups::patch(c, &scope, &id, body, if_match.as_ref(), with_members))
        .await?;
    Ok(resource_reply(
        StatusCode::OK,
        view.render(&base),
        &projection,
    ))
}

async fn delete_group(
    ScimAuth(scope): ScimAuth,
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<(String, String)>,
) -> Reply {
    let (_, id) = path.into_inner();
    let if_match = if_match(&req);
    state
        .db
        .run(move |c| groups::delete(c, &scope, &id, if_match.as_ref()))
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
