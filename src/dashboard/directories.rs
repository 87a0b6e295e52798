//! The directories table (searchable by tenant or name) and the create form.

use std::collections::HashMap;

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use maud::{html, Markup};

use super::{
    checked_form, copyable, csrf_field, link, ok, param, render, when, Reply, Session, PAGE_ROWS,
};
use crate::directory::directories::{self, NewDirectory};
use crate::directory::overview::{self, DirectorySummary};
use crate::error::Error;
use crate::http::AppState;
use crate::store::Page;

type Query = web::Query<HashMap<String, String>>;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/directories", web::get().to(list))
        .route("/directories", web::post().to(create))
        .route("/directories/new", web::get().to(new_form));
}

/// The SCIM provider types an operator can create here (Google directories are pulled
/// and need more than this form asks).
pub fn scim_types() -> impl Iterator<Item = &'static str> {
    directories::PROVIDER_TYPES
        .iter()
        .copied()
        .filter(|t| *t != "google")
}

pub fn state_label(deactivated: bool) -> &'static str {
    if deactivated {
        "deactivated"
    } else {
        "active"
    }
}

fn offset_of(q: &HashMap<String, String>) -> i64 {
    param(q, "offset")
        .and_then(|o| o.parse::<i64>().ok())
        .unwrap_or(0)
        .max(0)
}

async fn list(session: Session, state: web::Data<AppState>, q: Query) -> Reply {
    let search = param(&q, "q").map(str::to_string);
    let offset = offset_of(&q);
    let s = search.clone();
    // One more row than shown says whether there is a next page.
    let mut rows = state
        .db
        .run(move |c| {
            overview::directories(
                c,
                s.as_deref(),
                Page {
                    offset,
                    limit: PAGE_ROWS + 1,
                },
            )
        })
        .await?;
    let more = rows.len() as i64 > PAGE_ROWS;
    rows.truncate(PAGE_ROWS as usize);
    let search = search.unwrap_or_default();
    ok(
        "Directories",
        &session,
        html! {
            p { a.button href="/dashboard/directories/new" { "Create a directory" } }
            form.search method="get" action="/dashboard/directories" role="search" {
                label for="q" { "Search" }
                input #q type="search" name="q" value=(search) placeholder="tenant or name";
                button type="submit" { "Search" }
            }
            @if rows.is_empty() {
                p.muted { "No directories" @if !search.is_empty() { " match " code { (search) } } "." }
            } @else {
                (table(&rows))
            }
            div.pager {
                @if offset > 0 {
                    a href=(link("/dashboard/directories", &[("q", &search), ("offset", &(offset - PAGE_ROWS).max(0).to_string())])) { "Previous" }
                }
                @if more {
                    a href=(link("/dashboard/directories", &[("q", &search), ("offset", &(offset + PAGE_ROWS).to_string())])) { "Next" }
                }
            }
        },
    )
}

fn table(rows: &[DirectorySummary]) -> Markup {
    html! {
        div.scroll { table {
            thead { tr {
                th { "Name" } th { "Tenant" } th { "Product" } th { "Type" }
                th.num { "Users" } th.num { "Groups" } th { "State" } th { "Last event" }
            } }
            tbody {
                @for d in rows {
                    tr {
                        td { a href={ "/dashboard/directories/" (d.row.id) } { (d.row.name) } }
                        td { (d.row.tenant) }
                        td { (d.row.product) }
                        td { (d.row.provider_type) }
                        td.num { (super::count(d.users)) }
                        td.num { (super::count(d.groups)) }
                        td { (state_label(d.row.deactivated)) }
                        td { @match d.last_event { Some(t) => (when(t)), None => span.muted { "none" } } }
                    }
                }
            }
        } }
    }
}

fn create_form(session: &Session, values: &HashMap<String, String>, error: Option<&str>) -> Markup {
    let v = |k: &str| values.get(k).cloned().unwrap_or_default();
    let chosen = values
        .get("type")
        .cloned()
        .unwrap_or_else(|| "generic-scim-v2".into());
    html! {
        @if let Some(e) = error { p.box.error role="alert" { (e) } }
        form method="post" action="/dashboard/directories" {
            (csrf_field(session))
            label for="name" { "Name" }
            input #name type="text" name="name" value=(v("name")) required;
            label for="tenant" { "Tenant" }
            input #tenant type="text" name="tenant" value=(v("tenant")) required;
            label for="product" { "Product" }
            input #product type="text" name="product" value=(v("product")) required;
            label for="type" { "Identity provider" }
            select #type name="type" {
                @for t in scim_types() {
                    option value=(t) selected[t == chosen] { (t) }
                }
            }
            label for="webhook_url" { "Webhook URL (optional)" }
            input #webhook_url type="url" name="webhook_url" value=(v("webhook_url")) placeholder="https://app.example.com/webhooks/scim";
            button type="submit" { "Create directory" }
        }
    }
}

async fn new_form(session: Session) -> Reply {
    let body = create_form(&session, &HashMap::new(), None);
    ok("Create a directory", &session, body)
}

async fn create(
    session: Session,
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Reply {
    let fields = checked_form(&session, &req, payload).await?;
    let text = |k: &str| param(&fields, k).map(str::to_string);
    let input = NewDirectory {
        name: text("name"),
        tenant: text("tenant"),
        product: text("product"),
        provider_type: text("type"),
        // Empty means no webhook.
        webhook_url: text("webhook_url"),
        webhook_secret: None,
        user_limit: None,
        log_webhook_events: None,
        // Google Workspace directories are created through the admin API (the
        // delegation is verified first).
        google: None,
    };
    if input
        .provider_type
        .as_deref()
        .is_some_and(|t| !scim_types().any(|s| s == t))
    {
        return Ok(refused(
            &session,
            &fields,
            "Choose one of the listed identity providers.",
        ));
    }
    let (allow_private, sealer) = (state.webhook_allow_private, state.sealer.clone());
    let created = state
        .db
        .run(move |c| directories::create(c, &sealer, input, allow_private))
        .await;
    let (row, secret, webhook_secret) = match created {
        Ok(made) => made,
        Err(Error::Rejected(r)) => return Ok(refused(&session, &fields, &r.message)),
        Err(Error::Scim(e)) => return Ok(refused(&session, &fields, &e.detail)),
        Err(e) => return Err(e.into()),
    };
    let endpoint = crate::directory::scim_base_url(&state.external_url, &row.id);
    let page = format!("/dashboard/directories/{}", row.id);
    ok(
        "Directory created",
        &session,
        html! {
            p { "Directory " strong { (row.name) } " (" (row.tenant) " / " (row.product) ", " (row.provider_type) ") was created." }
            p.box {
                strong { "Copy the secret now: " }
                "it is stored hashed and will not be shown again (rotate it in the directory's settings if it is lost)."
            }
            (copyable("scim-endpoint", "SCIM endpoint (base URL)", &endpoint))
            (copyable("scim-secret", "SCIM secret (bearer token)", &secret))
            @if let Some(ws) = webhook_secret {
                (copyable("webhook-secret", "Webhook signing secret", &ws))
            }
            p { a.button href=(page) { "Open the directory" } }
        },
    )
}

fn refused(session: &Session, fields: &HashMap<String, String>, message: &str) -> HttpResponse {
    render(
        StatusCode::BAD_REQUEST,
        "Create a directory",
        Some(session),
        create_form(session, fields, Some(message)),
    )
}
