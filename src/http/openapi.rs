//! `/api/openapi.json`: the admin API described from its handlers (each carries a
//! `#[utoipa::path]` annotation, request bodies derive their schema from the types the
//! handlers parse), and `/api/docs`, the same document rendered as a page of our own (no
//! UI bundle to download or embed).
//!
//! Admin routes are declared once with [`admin_routes!`]: the same list mounts them on
//! actix, names their handlers to the document, and gives the (method, path) pairs a test
//! checks against the document, so a route without documentation fails.

use std::sync::OnceLock;

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use maud::{html, Markup};
use serde_json::{json, Value};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, SecurityScheme};
use utoipa::OpenApi;

use super::pages::{layout, respond};
use super::AppState;

/// Declares a table of admin routes relative to a scope at `$prefix`: a function `$mount`
/// that registers them, and a type `$doc` whose `openapi()` documents them (every handler
/// must carry `#[utoipa::path]`) and whose `ROUTES` lists each (method, full path).
macro_rules! admin_routes {
    ($mount:ident, $doc:ident, $prefix:literal, { $( $method:ident $path:literal => $handler:ident ),* $(,)? }) => {
        pub fn $mount(cfg: &mut actix_web::web::ServiceConfig) {
            $( cfg.route($path, actix_web::web::$method().to($handler)); )*
        }

        #[derive(utoipa::OpenApi)]
        #[openapi(paths( $( $handler ),* ))]
        pub struct $doc;

        impl $doc {
            /// (method, path) of every route this table mounts.
            pub const ROUTES: &'static [(&'static str, &'static str)] =
                &[ $( (stringify!($method), concat!($prefix, $path)) ),* ];
        }
    };
}
pub(crate) use admin_routes;

/// The `{data, error}` envelope every admin response has.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct Envelope {
    /// The result: an object, or an array for lists.
    pub data: Value,
    /// Always `null` on success.
    pub error: Option<ApiError>,
    /// Lists: the cursor of the next page, when there is one.
    #[serde(rename = "pageToken")]
    pub page_token: Option<String>,
}

/// The envelope of a refusal: `data` is `null`.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct ErrorEnvelope {
    pub data: Option<Value>,
    pub error: ApiError,
}

#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct ApiError {
    /// What went wrong, in plain words.
    pub message: String,
    /// The HTTP status.
    pub code: u16,
}

/// A read.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)]
pub enum Read {
    /// The result in `data`.
    #[response(status = 200)]
    Ok(Envelope),
    /// No `Authorization: Api-Key …`, or a wrong key.
    #[response(status = 401)]
    Unauthorized(ErrorEnvelope),
    /// Nothing with that id.
    #[response(status = 404)]
    NotFound(ErrorEnvelope),
}

/// A change.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)]
pub enum Change {
    /// Done; the changed resource in `data`.
    #[response(status = 200)]
    Ok(Envelope),
    /// The input was refused; the reason in `error.message`.
    #[response(status = 400)]
    Invalid(ErrorEnvelope),
    /// No `Authorization: Api-Key …` header, or a wrong key.
    #[response(status = 401)]
    Unauthorized(ErrorEnvelope),
    /// Nothing with that id (or not within the path's directory or unit).
    #[response(status = 404)]
    NotFound(ErrorEnvelope),
}

/// A creation.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)]
pub enum Create {
    /// Created; secrets it carries are shown here only.
    #[response(status = 201)]
    Created(Envelope),
    /// The input was refused; the reason in `error.message`.
    #[response(status = 400)]
    Invalid(ErrorEnvelope),
    /// No `Authorization: Api-Key …` header, or a wrong key.
    #[response(status = 401)]
    Unauthorized(ErrorEnvelope),
}

/// Work queued for later.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)]
pub enum Queue {
    /// Queued.
    #[response(status = 202)]
    Accepted(Envelope),
    /// The input was refused; the reason in `error.message`.
    #[response(status = 400)]
    Invalid(ErrorEnvelope),
    /// No `Authorization: Api-Key …` header, or a wrong key.
    #[response(status = 401)]
    Unauthorized(ErrorEnvelope),
    /// Nothing with that id (or not within the path's directory or unit).
    #[response(status = 404)]
    NotFound(ErrorEnvelope),
}

/// Paging of lists (offset, limit, or the `pageToken` of the previous page).
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code, non_snake_case)]
pub struct Paging {
    /// Items to skip (alias `offset`).
    pub pageOffset: Option<i64>,
    /// Items per page, 1 to 1000, default 50 (alias `limit`).
    pub pageLimit: Option<i64>,
    /// The `pageToken` of the previous page.
    pub pageToken: Option<String>,
}

/// Jackson's scoped reads: one directory by id, or every directory of a tenant and
/// product.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code, non_snake_case)]
pub struct Scoped {
    pub directoryId: Option<String>,
    pub tenant: Option<String>,
    pub product: Option<String>,
}

#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "scimgate admin API",
        description = "Directories, their synced users and groups, events and webhooks, Enterprise Connect and customer setup links. Every route answers `{\"data\": …, \"error\": null}` or `{\"data\": null, \"error\": {\"message\", \"code\"}}` with the matching status. `/api/v1/dsync/…` is an alias of every `/api/v1/directory-sync/…` route.",
    ),
    components(schemas(Envelope, ErrorEnvelope, ApiError)),
    security(("api_key" = [])),
    modifiers(&ApiKeyScheme),
)]
struct Base;

struct ApiKeyScheme;

impl utoipa::Modify for ApiKeyScheme {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "Authorization",
                "`Api-Key <key>`: one of the keys in SCIMGATE_API_KEYS.",
            ))),
        );
    }
}

/// The whole document, built once.
pub fn document() -> &'static Value {
    static DOC: OnceLock<Value> = OnceLock::new();
    DOC.get_or_init(|| {
        let mut doc = Base::openapi();
        doc.merge(super::admin::DirectoryDoc::openapi());
        doc.merge(super::admin_webhooks::WebhookDoc::openapi());
        doc.merge(super::admin_connect::ApplicationDoc::openapi());
        doc.merge(super::admin_connect::UnitDoc::openapi());
        doc.merge(super::admin_connect::ServiceAccountDoc::openapi());
        doc.merge(super::admin_setup_links::SetupLinkDoc::openapi());
        serde_json::to_value(&doc).unwrap_or_else(|e| json!({"error": e.to_string()}))
    })
}

/// Every admin route the route tables mount, as (method, path).
pub fn admin_route_list() -> Vec<(&'static str, &'static str)> {
    [
        super::admin::DirectoryDoc::ROUTES,
        super::admin_webhooks::WebhookDoc::ROUTES,
        super::admin_connect::ApplicationDoc::ROUTES,
        super::admin_connect::UnitDoc::ROUTES,
        super::admin_connect::ServiceAccountDoc::ROUTES,
        super::admin_setup_links::SetupLinkDoc::ROUTES,
    ]
    .concat()
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/api/openapi.json", web::get().to(openapi_json))
        .route("/api/docs", web::get().to(docs_page));
}

/// The document with this gateway's URL as its server.
async fn openapi_json(state: web::Data<AppState>) -> HttpResponse {
    let mut doc = document().clone();
    doc["servers"] = json!([{"url": state.external_url}]);
    HttpResponse::Ok().json(doc)
}

const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

/// `#/components/schemas/Name` → `Name`.
fn ref_name(v: &Value) -> Option<&str> {
    v.get("$ref")?.as_str()?.rsplit('/').next()
}

/// A schema in a few words: its reference, its type, or its alternatives.
fn schema_words(v: &Value) -> String {
    if let Some(name) = ref_name(v) {
        return name.to_string();
    }
    if let Some(alts) = v
        .get("oneOf")
        .or_else(|| v.get("anyOf"))
        .and_then(Value::as_array)
    {
        return alts
            .iter()
            .map(schema_words)
            .collect::<Vec<_>>()
            .join(" | ");
    }
    match v.get("type") {
        Some(Value::String(t)) if t == "array" => {
            format!(
                "array of {}",
                v.get("items").map(schema_words).unwrap_or_default()
            )
        }
        Some(Value::String(t)) => t.clone(),
        Some(Value::Array(ts)) => ts
            .iter()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join(" | "),
        _ => "any".into(),
    }
}

fn text(v: Option<&Value>) -> &str {
    v.and_then(Value::as_str).unwrap_or("")
}

fn operation(method: &str, path: &str, op: &Value) -> Markup {
    let params = op["parameters"].as_array().cloned().unwrap_or_default();
    let body = op["requestBody"]["content"]["application/json"]["schema"].clone();
    let responses = op["responses"].as_object().cloned().unwrap_or_default();
    html! {
        div class="box" id=(format!("{method}-{path}")) {
            p { strong { (method.to_uppercase()) } " " code { (path) } }
            @if let Some(summary) = op["summary"].as_str() { p { (summary) } }
            @if let Some(d) = op["description"].as_str() { p { (d) } }
            @if !params.is_empty() {
                table {
                    tr { th { "Parameter" } th { "In" } th { "Type" } th { "" } }
                    @for p in &params {
                        tr {
                            td { code { (text(p.get("name"))) } @if p["required"] == json!(true) { " *" } }
                            td { (text(p.get("in"))) }
                            td { (schema_words(&p["schema"])) }
                            td { (text(p.get("description"))) }
                        }
                    }
                }
            }
            @if !body.is_null() { p { "Body: " code { (schema_words(&body)) } } }
            p { "Responses: "
                @for (status, r) in &responses {
                    code { (status) } " " (text(r.get("description"))) "; "
                }
            }
        }
    }
}

/// `/api/docs`: the document as a page (every route, its parameters and bodies, then the
/// schemas), rendered on the server from the same JSON.
async fn docs_page() -> HttpResponse {
    let doc = document();
    let paths = doc["paths"].as_object().cloned().unwrap_or_default();
    let schemas = doc["components"]["schemas"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    let page = layout(
        "Admin API",
        html! {
            p { (text(doc["info"].get("description"))) }
            p { "Authentication: the header " code { "Authorization: Api-Key <key>" } ". The machine-readable document: " a href="/api/openapi.json" { "/api/openapi.json" } " (OpenAPI " (text(doc.get("openapi"))) ")." }
            @for (path, item) in &paths {
                @for m in METHODS {
                    @if let Some(op) = item.get(m) { (operation(m, path, op)) }
                }
            }
            h2 { "Schemas" }
            @for (name, schema) in &schemas {
                div class="box" id=(format!("schema-{name}")) {
                    p { strong { (name) } }
                    @if let Some(d) = schema["description"].as_str() { p { (d) } }
                    @if let Some(props) = schema["properties"].as_object() {
                        table {
                            tr { th { "Field" } th { "Type" } th { "" } }
                            @for (field, s) in props {
                                tr {
                                    td { code { (field) } }
                                    td { (schema_words(s)) }
                                    td { (text(s.get("description"))) }
                                }
                            }
                        }
                    }
                }
            }
        },
    );
    respond(StatusCode::OK, page)
}
