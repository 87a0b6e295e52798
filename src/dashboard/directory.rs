//! One directory: its users, groups, events, webhook endpoints and settings.

use std::collections::HashMap;

use actix_web::{web, HttpRequest};
use maud::{html, Markup};

use super::directories::state_label;
use super::{
    button_form, checked_form, copyable, csrf_field, link, ok, param, see_other, when, Reply,
    Session, PAGE_ROWS,
};
use crate::directory::directories::{self, BoolLike, DirectoryUpdate};
use crate::directory::overview::{self, DirectorySummary, EndpointHealth};
use crate::error::{Error, Rejected};
use crate::http::error::HtmlFailure;
use crate::http::AppState;
use crate::ids::EndpointId;

type Query = web::Query<HashMap<String, String>>;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/directories/{id}", web::get().to(users))
        .route("/directories/{id}/groups", web::get().to(groups))
        .route("/directories/{id}/events", web::get().to(events))
        .route("/directories/{id}/webhooks", web::get().to(webhooks))
        .route("/directories/{id}/settings", web::get().to(settings))
        .route(
            "/directories/{id}/settings/delete",
            web::get().to(confirm_delete),
        )
        .route(
            "/directories/{id}/settings/{action}",
            web::post().to(change),
        )
        .route(
            "/directories/{id}/webhooks/{wid}/{action}",
            web::post().to(change_endpoint),
        );
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Tab {
    Users,
    Groups,
    Events,
    Webhooks,
    Settings,
}

const TABS: [(Tab, &str, &str); 5] = [
    (Tab::Users, "", "Users"),
    (Tab::Groups, "/groups", "Groups"),
    (Tab::Events, "/events", "Events"),
    (Tab::Webhooks, "/webhooks", "Webhooks"),
    (Tab::Settings, "/settings", "Settings"),
];

/// A directory id from the path: anything else names no directory (404, no query).
fn directory_id(raw: &str) -> Result<String, HtmlFailure> {
    if crate::directory::is_resource_id(raw) {
        Ok(raw.to_string())
    } else {
        Err(Rejected::not_found("Directory not found.").into())
    }
}

fn base(id: &str) -> String {
    format!("/dashboard/directories/{id}")
}

/// The directory's summary above every tab.
fn header(d: &DirectorySummary, external_url: &str, current: Tab) -> Markup {
    let r = &d.row;
    html! {
        p.muted {
            (r.tenant) " / " (r.product) " · " (r.provider_type) " · "
            span class=(if r.deactivated { "bad" } else { "ok" }) { (state_label(r.deactivated)) }
            " · " (super::count(d.users)) " users · " (super::count(d.groups)) " groups"
        }
        p { "SCIM endpoint: " code { (crate::directory::scim_base_url(external_url, &r.id)) } }
        nav.tabs {
            @for (tab, suffix, label) in TABS {
                a class=[(tab == current).then_some("current")] href={ (base(&r.id)) (suffix) } { (label) }
            }
        }
    }
}

async fn summary(state: &AppState, id: &str) -> Result<DirectorySummary, HtmlFailure> {
    let id = id.to_string();
    Ok(state.db.run(move |c| overview::directory(c, &id)).await?)
}

async fn users(
    session: Session,
    state: web::Data<AppState>,
    path: web::Path<String>,
    q: Query,
) -> Reply {
    let id = directory_id(&path)?;
    let search = param(&q, "q").map(str::to_string);
    let after = param(&q, "after").map(str::to_string);
    let (d, mut rows) = {
        let (id, s, a) = (id.clone(), search.clone(), after.clone());
        state
            .db
            .run(move |c| {
                let d = overview::directory(c, &id)?;
                let rows = overview::users(c, &id, s.as_deref(), a.as_deref(), PAGE_ROWS + 1)?;
                Ok((d, rows))
            })
            .await?
    };
    let more = rows.len() as i64 > PAGE_ROWS;
    rows.truncate(PAGE_ROWS as usize);
    let search = search.unwrap_or_default();
    let next = rows
        .last()
        .map(|u| u.user_name_lower.clone())
        .filter(|_| more);
    ok(
        &d.row.name,
        &session,
        html! {
            (header(&d, &state.external_url, Tab::Users))
            h2 { "Users" }
            form.search method="get" action=(base(&id)) role="search" {
                label for="q" { "Search" }
                input #q type="search" name="q" value=(search) placeholder="userName or email";
                button type="submit" { "Search" }
            }
            @if rows.is_empty() {
                p.muted { "No users" @if !search.is_empty() { " match " code { (search) } } "." }
            } @else {
                div.scroll { table {
                    thead { tr { th { "userName" } th { "Name" } th { "Email" } th { "Active" } th { "External id" } th { "Updated" } } }
                    tbody { @for u in &rows {
                        tr {
                            td { (u.user_name) }
                            td { (u.given_name.as_deref().unwrap_or("")) " " (u.family_name.as_deref().unwrap_or("")) }
                            td { (u.email.as_deref().unwrap_or("")) }
                            td { @if u.active { span.ok { "yes" } } @else { span.bad { "no" } } }
                            td { (u.external_id.as_deref().unwrap_or("")) }
                            td { (when(u.updated_at)) }
                        }
                    } }
                } }
            }
            div.pager {
                @if after.is_some() { a href=(link(&base(&id), &[("q", &search)])) { "First page" } }
                @if let Some(n) = next { a href=(link(&base(&id), &[("q", &search), ("after", &n)])) { "Next" } }
            }
        },
    )
}

async fn groups(
    session: Session,
    state: web::Data<AppState>,
    path: web::Path<String>,
    q: Query,
) -> Reply {
    let id = directory_id(&path)?;
    let after = param(&q, "after").map(str::to_string);
    let (d, mut rows) = {
        let (id, a) = (id.clone(), after.clone());
        state
            .db
            .run(move |c| {
                let d = overview::directory(c, &id)?;
                let rows = overview::groups(c, &id, a.as_deref(), PAGE_ROWS + 1)?;
                Ok((d, rows))
            })
            .await?
    };
    let more = rows.len() as i64 > PAGE_ROWS;
    rows.truncate(PAGE_ROWS as usize);
    let next = rows
        .last()
        .map(|(g, _)| g.display_name_lower.clone())
        .filter(|_| more);
    let here = format!("{}/groups", base(&id));
    ok(
        &d.row.name,
        &session,
        html! {
            (header(&d, &state.external_url, Tab::Groups))
            h2 { "Groups" }
            @if rows.is_empty() {
                p.muted { "No groups." }
            } @else {
                div.scroll { table {
                    thead { tr { th { "Name" } th { "External id" } th.num { "Members" } th { "Updated" } } }
                    tbody { @for (g, members) in &rows {
                        tr {
                            td { (g.display_name) }
                            td { (g.external_id.as_deref().unwrap_or("")) }
                            td.num { (super::members(*members)) }
                            td { (when(g.updated_at)) }
                        }
                    } }
                } }
            }
            div.pager {
                @if after.is_some() { a href=(here) { "First page" } }
                @if let Some(n) = next { a href=(link(&here, &[("after", &n)])) { "Next" } }
            }
        },
    )
}

async fn events(
    session: Session,
    state: web::Data<AppState>,
    path: web::Path<String>,
    q: Query,
) -> Reply {
    let id = directory_id(&path)?;
    let before = param(&q, "before").and_then(|b| b.parse::<i64>().ok());
    let (d, endpoints, mut rows) = {
        let id = id.clone();
        state
            .db
            .run(move |c| {
                let d = overview::directory(c, &id)?;
                let endpoints = crate::directory::webhooks::list(c, &id)?;
                let rows = overview::events(c, &id, before, PAGE_ROWS + 1)?;
                Ok((d, endpoints, rows))
            })
            .await?
    };
    let more = rows.len() as i64 > PAGE_ROWS;
    rows.truncate(PAGE_ROWS as usize);
    let next = rows.last().and_then(|(e, _)| e.sequence).filter(|_| more);
    let urls: HashMap<&str, &str> = endpoints
        .iter()
        .map(|e| (e.id.as_str(), e.url.as_str()))
        .collect();
    let here = format!("{}/events", base(&id));
    ok(
        &d.row.name,
        &session,
        html! {
            (header(&d, &state.external_url, Tab::Events))
            h2 { "Events" }
            p.muted { "Newest first." }
            @if rows.is_empty() {
                p.muted { "No events yet." }
            } @else {
                div.scroll { table {
                    thead { tr { th.num { "Sequence" } th { "Type" } th { "Time" } th { "Deliveries" } } }
                    tbody { @for (e, deliveries) in &rows {
                        tr {
                            td.num { (e.sequence.unwrap_or_default()) }
                            td { code { (e.event_type) } }
                            td { (when(e.created_at)) }
                            td {
                                @if deliveries.is_empty() { span.muted { "no endpoint" } }
                                @for dl in deliveries {
                                    div {
                                        span class=(state_class(overview::delivery_state(dl))) { (overview::delivery_state(dl)) }
                                        " "
                                        span.muted { (urls.get(dl.endpoint_id.as_str()).copied().unwrap_or(if dl.endpoint_id == "whe_global" { "global endpoint" } else { dl.endpoint_id.as_str() })) }
                                        @if let Some(s) = dl.last_status { " (HTTP " (s) ")" }
                                    }
                                }
                            }
                        }
                    } }
                } }
            }
            div.pager {
                @if before.is_some() { a href=(here) { "Newest" } }
                @if let Some(n) = next { a href=(link(&here, &[("before", &n.to_string())])) { "Older" } }
            }
        },
    )
}

fn state_class(state: &str) -> &'static str {
    match state {
        "delivered" => "ok",
        "pending" => "muted",
        "failed" => "warn",
        _ => "bad",
    }
}

async fn webhooks(
    session: Session,
    state: web::Data<AppState>,
    path: web::Path<String>,
    q: Query,
) -> Reply {
    let id = directory_id(&path)?;
    let (d, endpoints) = {
        let id = id.clone();
        state
            .db
            .run(move |c| {
                let d = overview::directory(c, &id)?;
                Ok((d, overview::endpoints(c, &id)?))
            })
            .await?
    };
    let queued = param(&q, "queued");
    ok(
        &d.row.name,
        &session,
        html! {
            (header(&d, &state.external_url, Tab::Webhooks))
            h2 { "Webhook endpoints" }
            @if let Some(n) = queued { p.box role="status" { "Replay: " (n) " deliveries are due now." } }
            @if endpoints.is_empty() {
                p.muted { "No webhook endpoints. Set the directory's webhook URL with the admin API, or add endpoints with "
                    code { "POST /api/v1/directory-sync/{id}/webhooks" } "." }
            }
            @for e in &endpoints { (endpoint(&session, &id, e)) }
        },
    )
}

fn endpoint(session: &Session, dir: &str, h: &EndpointHealth) -> Markup {
    let e = &h.row;
    let action = |what: &str| format!("{}/webhooks/{}/{what}", base(dir), e.id);
    html! {
        section.box id=(e.id) {
            p { strong { code { (e.url) } } }
            p.muted {
                (e.id) @if e.is_primary { " · the directory's webhook URL" } " · "
                @if e.enabled { span.ok { "enabled" } } @else {
                    span.bad { "disabled" }
                    @if let Some(why) = &e.disabled_reason { " (" (why) ")" }
                }
            }
            table {
                thead { tr { th.num { "delivered" } th.num { "pending" } th.num { "failed" } th.num { "dead" } } }
                tbody { tr {
                    td.num { (h.delivered) } td.num { (h.pending) } td.num { (h.failed) } td.num { (h.dead) }
                } }
            }
            p.muted { "failed: an attempt failed and will be retried; dead: given up after the last retry (replayable)." }
            p {
                "Last error: "
                @match &h.last_error {
                    Some((status, error, at)) => {
                        span.bad {
                            @if let Some(s) = status { "HTTP " (s) } @else { "no HTTP response" }
                            @if let Some(msg) = error { ": " (msg) }
                        }
                        " " span.muted { "(" (when(*at)) ")" }
                    },
                    None => span.muted { "none" },
                }
            }
            p {
                @if e.enabled {
                    (button_form(session, &action("disable"), "Disable", Some("secondary")))
                } @else {
                    (button_form(session, &action("enable"), "Enable", None))
                }
                (button_form(session, &action("rotate-secret"), "Rotate secret", Some("secondary")))
            }
            form method="post" action=(action("replay")) {
                (csrf_field(session))
                label for={ "since-" (e.id) } { "Replay events since (optional; UTC, or RFC 3339)" }
                input id={ "since-" (e.id) } type="datetime-local" name="since" step="1";
                button type="submit" { "Replay" }
                span.muted { " Without a time, its pending deliveries are sent now." }
            }
        }
    }
}

async fn settings(session: Session, state: web::Data<AppState>, path: web::Path<String>) -> Reply {
    let id = directory_id(&path)?;
    let d = summary(&state, &id).await?;
    let act = |what: &str| format!("{}/settings/{what}", base(&id));
    ok(
        &d.row.name,
        &session,
        html! {
            (header(&d, &state.external_url, Tab::Settings))
            h2 { "Settings" }
            section.box {
                h3 { "Rename" }
                form method="post" action=(act("rename")) {
                    (csrf_field(&session))
                    label for="name" { "Name" }
                    input #name type="text" name="name" value=(d.row.name) required;
                    button type="submit" { "Rename" }
                }
            }
            section.box {
                h3 { "State" }
                @if d.row.deactivated {
                    p { "Deactivated: its identity provider's SCIM requests are refused (403)." }
                    (button_form(&session, &act("activate"), "Activate", None))
                } @else {
                    p { "Active: its identity provider can push users and groups." }
                    (button_form(&session, &act("deactivate"), "Deactivate", Some("secondary")))
                }
            }
            section.box {
                h3 { "Rotate SCIM secret" }
                form method="post" action=(act("rotate-secret")) {
                    (csrf_field(&session))
                    label for="grace_period_seconds" { "Seconds the old secret keeps working (optional; 0 ends it now)" }
                    input #grace_period_seconds type="number" name="grace_period_seconds" min="0" max=(directories::MAX_GRACE_SECONDS) placeholder=(state.secret_grace_seconds);
                    button type="submit" { "Rotate SCIM secret" }
                }
            }
            section.box.error {
                h3 { "Delete" }
                p { "Deletes the directory with all its users, groups and memberships." }
                a.button href=(act("delete")) { "Delete directory…" }
            }
        },
    )
}

async fn confirm_delete(
    session: Session,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Reply {
    let id = directory_id(&path)?;
    let d = summary(&state, &id).await?;
    ok(
        &format!("Delete {}?", d.row.name),
        &session,
        html! {
            p { "This deletes " strong { (d.row.name) } " (" (d.row.tenant) " / " (d.row.product) ") with its "
                (super::count(d.users)) " users and " (super::count(d.groups)) " groups. Its identity provider can no longer push to it. This cannot be undone." }
            form method="post" action={ (base(&id)) "/settings/delete" } {
                (csrf_field(&session))
                input type="hidden" name="confirm" value="yes";
                button.danger type="submit" { "Delete directory" }
                a.button.secondary href={ (base(&id)) "/settings" } { "Cancel" }
            }
        },
    )
}

async fn change(
    session: Session,
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<(String, String)>,
    payload: web::Payload,
) -> Reply {
    let fields = checked_form(&session, &req, payload).await?;
    let (raw, action) = path.into_inner();
    let id = directory_id(&raw)?;
    let (allow_private, sealer) = (state.webhook_allow_private, state.sealer.clone());
    let update = |u: DirectoryUpdate| {
        let (id, sealer) = (id.clone(), sealer.clone());
        move |c: &mut crate::store::AnyConnection| {
            directories::update(c, &sealer, &id, u, allow_private).map(|(row, _)| row)
        }
    };
    match action.as_str() {
        "rename" => {
            let name = param(&fields, "name")
                .ok_or_else(|| Rejected::invalid("The name cannot be empty."))?
                .to_string();
            state
                .db
                .run(update(DirectoryUpdate {
                    name: Some(name),
                    ..Default::default()
                }))
                .await?;
        }
        "deactivate" | "activate" => {
            let off = action == "deactivate";
            state
                .db
                .run(update(DirectoryUpdate {
                    deactivated: Some(BoolLike::Bool(off)),
                    ..Default::default()
                }))
                .await?;
        }
        "rotate-secret" => return rotate(session, state, id, &fields).await,
        "delete" => {
            if param(&fields, "confirm") != Some("yes") {
                return Ok(see_other(&format!("{}/settings/delete", base(&id))));
            }
            let gone = id.clone();
            state.db.run(move |c| directories::delete(c, &gone)).await?;
            state.directories.evict(&id);
            // `dsync.deleted` was numbered and queued by the deletion itself.
            state.dispatcher.wake();
            return Ok(see_other("/dashboard/directories"));
        }
        _ => return Err(Rejected::not_found("There is no such action.").into()),
    }
    state.directories.evict(&id);
    Ok(see_other(&format!("{}/settings", base(&id))))
}

async fn rotate(
    session: Session,
    state: web::Data<AppState>,
    id: String,
    fields: &HashMap<String, String>,
) -> Reply {
    let grace = match param(fields, "grace_period_seconds") {
        None => state.secret_grace_seconds,
        Some(v) => v
            .parse::<i64>()
            .ok()
            .filter(|g| (0..=directories::MAX_GRACE_SECONDS).contains(g))
            .ok_or_else(|| {
                Rejected::invalid(format!(
                    "grace_period_seconds must be a whole number from 0 to {}.",
                    directories::MAX_GRACE_SECONDS
                ))
            })?,
    };
    let rid = id.clone();
    let (row, secret) = state
        .db
        .run(move |c| directories::rotate_secret(c, &rid, grace))
        .await?;
    state.directories.evict(&row.id);
    let endpoint = crate::directory::scim_base_url(&state.external_url, &row.id);
    ok(
        "SCIM secret rotated",
        &session,
        html! {
            p { "The SCIM secret of " strong { (row.name) } " was rotated. "
                @if grace == 0 { "The old secret no longer works." }
                @else { "The old secret keeps working for " (grace) " seconds." } }
            p.box { strong { "Copy the new secret now: " } "it will not be shown again." }
            (copyable("scim-endpoint", "SCIM endpoint (base URL)", &endpoint))
            (copyable("scim-secret", "New SCIM secret (bearer token)", &secret))
            p { a.button href={ (base(&id)) "/settings" } { "Back to settings" } }
        },
    )
}

/// `since` as RFC 3339, or as a `datetime-local` value read as UTC.
fn parse_since(raw: &str) -> Result<chrono::NaiveDateTime, Error> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(raw) {
        return Ok(t.naive_utc());
    }
    ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%dT%H:%M"]
        .iter()
        .find_map(|f| chrono::NaiveDateTime::parse_from_str(raw, f).ok())
        .ok_or_else(|| {
            Rejected::invalid(
                "since must be a time such as 2026-11-30T09:00 (UTC) or an RFC 3339 time.",
            )
            .into()
        })
}

async fn change_endpoint(
    session: Session,
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<(String, String, String)>,
    payload: web::Payload,
) -> Reply {
    let fields = checked_form(&session, &req, payload).await?;
    let (raw, wid, action) = path.into_inner();
    let id = directory_id(&raw)?;
    let wid = EndpointId::parse(&wid)
        .ok_or_else(|| Rejected::not_found("Webhook endpoint not found."))?;
    let (allow_private, sealer) = (state.webhook_allow_private, state.sealer.clone());
    let back = format!("{}/webhooks", base(&id));
    match action.as_str() {
        "enable" | "disable" => {
            let input = crate::directory::webhooks::EndpointUpdate {
                enabled: Some(action == "enable"),
                ..Default::default()
            };
            let (id, wid) = (id.clone(), wid.clone());
            state
                .db
                .run(move |c| {
                    crate::directory::webhooks::update(c, &sealer, &id, &wid, input, allow_private)
                })
                .await?;
            state.dispatcher.wake();
            Ok(see_other(&back))
        }
        "rotate-secret" => {
            let (dir, w) = (id.clone(), wid.clone());
            let secret = state
                .db
                .run(move |c| overview::rotate_endpoint_secret(c, &sealer, &dir, &w, allow_private))
                .await?;
            state.directories.evict(&id);
            ok(
                "Webhook secret rotated",
                &session,
                html! {
                    p { "Endpoint " code { (wid.as_str()) } " signs with a new secret; the old one signs beside it for a day." }
                    p.box { strong { "Copy the new secret now: " } "it will not be shown again." }
                    (copyable("webhook-secret", "New webhook signing secret", &secret))
                    p { a.button href=(back) { "Back to webhooks" } }
                },
            )
        }
        "replay" => {
            let since = param(&fields, "since").map(parse_since).transpose()?;
            let (dir, w) = (id.clone(), wid.clone());
            let queued = state
                .db
                .run(move |c| match since {
                    Some(t) => crate::directory::webhooks::replay_since(c, &dir, &w, t),
                    None => overview::retry_now(c, &dir, &w),
                })
                .await?;
            state.dispatcher.wake();
            Ok(see_other(&link(&back, &[("queued", &queued.to_string())])))
        }
        _ => Err(Rejected::not_found("There is no such action.").into()),
    }
}

#[cfg(test)]
mod tests {
    use super::parse_since;

    #[test]
    fn since_takes_rfc3339_and_datetime_local_as_utc() {
        let want = chrono::NaiveDate::from_ymd_opt(2026, 11, 30)
            .and_then(|d| d.and_hms_opt(9, 30, 0))
            .unwrap_or_default();
        assert_eq!(parse_since("2026-11-30T09:30:00Z").ok(), Some(want));
        assert_eq!(parse_since("2026-11-30T10:30:00+01:00").ok(), Some(want));
        assert_eq!(parse_since("2026-11-30T09:30").ok(), Some(want));
        assert_eq!(parse_since("2026-11-30T09:30:00").ok(), Some(want));
        assert!(parse_since("yesterday").is_err());
    }
}
