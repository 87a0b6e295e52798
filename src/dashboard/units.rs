//! Organizational units: the list, and a unit's service accounts (in link order), its
//! directories and the accounts it serves, with revoke and relink.

use std::collections::HashMap;

use actix_web::{web, HttpRequest};
use maud::{html, Markup};
use serde_json::Value;

use super::{button_form, checked_form, link, ok, param, see_other, Reply, Session, PAGE_ROWS};
use crate::connect::units;
use crate::error::Rejected;
use crate::http::error::HtmlFailure;
use crate::http::AppState;
use crate::ids::{AccountId, OrgUnitId, ServiceAccountId};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/units", web::get().to(list))
        .route("/units/{id}", web::get().to(unit))
        .route(
            "/units/{id}/service_accounts/{ser}/revoke",
            web::post().to(revoke_access),
        )
        .route(
            "/units/{id}/accounts/{acc}/{action}",
            web::post().to(account_action),
        );
}

fn unit_id(raw: &str) -> Result<OrgUnitId, HtmlFailure> {
    OrgUnitId::parse(raw)
        .ok_or_else(|| Rejected::not_found("Organizational unit not found.").into())
}

/// A JSON field as text ("" when absent or null).
fn text(v: &Value, key: &str) -> String {
    match &v[key] {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

async fn list(session: Session, state: web::Data<AppState>) -> Reply {
    let rows = state.db.run(units::list_json).await?;
    ok(
        "Organizational units",
        &session,
        html! {
            @if rows.is_empty() {
                p.muted { "No organizational units yet. They are made when a customer's admin links a second provider." }
            } @else {
                div.scroll { table {
                    thead { tr { th { "Unit" } th { "Created" } th.num { "Service accounts" } th { "Providers (link order)" } } }
                    tbody { @for u in &rows {
                        @let accounts = u["service_accounts"].as_array().cloned().unwrap_or_default();
                        tr {
                            td { a href={ "/dashboard/units/" (text(u, "id")) } { (text(u, "id")) } }
                            td { (text(u, "created_at")) }
                            td.num { (accounts.len()) }
                            td { @for (i, s) in accounts.iter().enumerate() {
                                @if i > 0 { ", " }
                                (text(s, "provider_name"))
                            } }
                        }
                    } }
                } }
            }
        },
    )
}

async fn unit(
    session: Session,
    state: web::Data<AppState>,
    path: web::Path<String>,
    q: web::Query<HashMap<String, String>>,
) -> Reply {
    let id = unit_id(&path)?;
    let offset = param(&q, "offset")
        .and_then(|o| o.parse::<usize>().ok())
        .unwrap_or(0)
        .min(i64::MAX as usize / 2);
    let uid = id.as_str().to_string();
    let (detail, directories, accounts) = state
        .db
        .run(move |c| {
            let detail = units::get_json(c, &uid)?;
            let dirs = crate::directory::overview::unit_directories(c, &uid)?;
            // One more than shown says whether there is a next page.
            let page = crate::store::Page {
                offset: offset as i64,
                limit: PAGE_ROWS + 1,
            };
            let accounts = units::accounts_page_json(c, &uid, page)?;
            Ok((detail, dirs, accounts))
        })
        .await?;
    let here = format!("/dashboard/units/{}", id.as_str());
    let services = detail["service_accounts"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let more = accounts.len() as i64 > PAGE_ROWS;
    let shown: Vec<&Value> = accounts.iter().take(PAGE_ROWS as usize).collect();
    ok(
        &format!("Organizational unit {}", id.as_str()),
        &session,
        html! {
            h2 { "Service accounts" }
            p.muted { "Calendar accounts are tried in link order." }
            div.scroll { table {
                thead { tr { th.num { "#" } th { "Provider" } th { "Capability" } th { "Domain or tenant" } th { "Linked at" } th { "State" } th {} } }
                tbody { @for (i, s) in services.iter().enumerate() {
                    @let ser = text(s, "id");
                    tr {
                        td.num { (i + 1) }
                        td { (text(s, "provider_name")) }
                        td { (text(s, "capability")) }
                        td { (where_of(s)) }
                        td { (text(s, "linked_at")) }
                        td { (text(s, "state")) }
                        td { (button_form(&session, &format!("{here}/service_accounts/{ser}/revoke"), "Revoke access", Some("danger"))) }
                    }
                } }
            } }
            h2 { "Directories" }
            @if directories.is_empty() {
                p.muted { "No directory is attached (attach one with " code { "organizational_unit_id" } " on " code { "PATCH /api/v1/directory-sync/{id}" } ")." }
            } @else {
                ul { @for d in &directories {
                    li { a href={ "/dashboard/directories/" (d.id) } { (d.name) } " (" (d.tenant) " / " (d.product) ")" }
                } }
            }
            h2 { "Accounts" }
            @if accounts.is_empty() {
                p.muted { "No accounts provisioned yet." }
            } @else {
                div.scroll { table {
                    thead { tr { th { "Email" } th { "Calendar provider" } th { "Profile" } th { "Conferencing profiles" } th { "Connected" } th {} } }
                    tbody { @for a in &shown { (account_row(&session, &here, a)) } }
                } }
            }
            div.pager {
                @if offset > 0 { a href=(link(&here, &[("offset", &offset.saturating_sub(PAGE_ROWS as usize).to_string())])) { "Previous" } }
                @if more { a href=(link(&here, &[("offset", &(offset + PAGE_ROWS as usize).to_string())])) { "Next" } }
            }
        },
    )
}

fn where_of(s: &Value) -> String {
    [
        text(s, "domain"),
        text(s, "tenant_id"),
        text(s, "external_account"),
    ]
    .into_iter()
    .find(|t| !t.is_empty())
    .unwrap_or_default()
}

fn account_row(session: &Session, unit: &str, a: &Value) -> Markup {
    let id = text(a, "account_id");
    let profile = a["profiles"].get(0).cloned().unwrap_or(Value::Null);
    let connected = profile["profile_connected"].as_bool().unwrap_or(false);
    let conferencing = a["conferencing_profiles"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    html! {
        tr {
            td { (text(a, "email")) }
            td { (text(&profile, "provider_name")) }
            td { (text(&profile, "profile_name")) }
            td { @if conferencing.is_empty() { span.muted { "none" } }
                @for p in &conferencing {
                    div { (text(p, "provider_name")) ": " (text(p, "profile_name"))
                        @if p["profile_connected"].as_bool() != Some(true) { " (not connected)" } }
                } }
            td { @if connected { span.ok { "connected" } } @else { span.bad { "not connected" } " (" (text(a, "state")) ")" } }
            td {
                (button_form(session, &format!("{unit}/accounts/{id}/revoke"), "Revoke profile", Some("secondary")))
                (button_form(session, &format!("{unit}/accounts/{id}/relink"), "Relink profile", None))
            }
        }
    }
}

async fn revoke_access(
    session: Session,
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<(String, String)>,
    payload: web::Payload,
) -> Reply {
    checked_form(&session, &req, payload).await?;
    let (unit, ser) = path.into_inner();
    let unit = unit_id(&unit)?;
    let ser = ServiceAccountId::parse(&ser)
        .ok_or_else(|| Rejected::not_found("Service account not found."))?;
    let (u, s) = (unit.as_str().to_string(), ser.as_str().to_string());
    let done = state.db.run(move |c| units::unlink(c, &u, &s)).await?;
    if !done {
        return Err(Rejected::not_found("That service account is not in this unit.").into());
    }
    state.providers.forget(ser.as_str());
    // The accounts it served are provisioned again through the others.
    state.authorizations.wake();
    Ok(see_other(&format!("/dashboard/units/{}", unit.as_str())))
}

async fn account_action(
    session: Session,
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<(String, String, String)>,
    payload: web::Payload,
) -> Reply {
    checked_form(&session, &req, payload).await?;
    let (unit, account, action) = path.into_inner();
    let unit = unit_id(&unit)?;
    let account =
        AccountId::parse(&account).ok_or_else(|| Rejected::not_found("Account not found."))?;
    let (u, a) = (unit.as_str().to_string(), account.as_str().to_string());
    let done = match action.as_str() {
        "revoke" => {
            state
                .db
                .run(move |c| units::revoke_account(c, &u, &a))
                .await?
        }
        "relink" => {
            let queued = state.db.run(move |c| units::relink(c, &u, &a)).await?;
            state.authorizations.wake();
            queued
        }
        _ => return Err(Rejected::not_found("There is no such action.").into()),
    };
    if !done {
        return Err(Rejected::not_found("That account is not this unit's.").into());
    }
    Ok(see_other(&format!("/dashboard/units/{}", unit.as_str())))
}
