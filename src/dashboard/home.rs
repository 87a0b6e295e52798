//! The home page: the operational numbers `/metrics` exposes.

use actix_web::web;
use maud::html;

use super::{ok, Reply, Session};
use crate::http::AppState;

pub async fn home(session: Session, state: web::Data<AppState>) -> Reply {
    let ((depth, age), backlog) = state
        .db
        .run(|c| {
            let queue = crate::webhooks::metrics::queue(c)?;
            let backlog = crate::directory::overview::provisioning_backlog(c)?;
            Ok((queue, backlog))
        })
        .await?;
    let outcomes = crate::webhooks::metrics::global().outcome_counts();
    let count = |label: &str| {
        outcomes
            .iter()
            .find(|(l, _)| *l == label)
            .map_or(0, |(_, n)| *n)
    };
    let oldest = age.map_or_else(|| "none".to_string(), |d| human(d.as_secs()));
    ok(
        "Dashboard",
        &session,
        html! {
            h2 { "Webhook deliveries" }
            dl.stats {
                div { dt { "Deliveries pending" } dd #deliveries-pending { (depth) } }
                div { dt { "Oldest undelivered event" } dd #oldest-undelivered { (oldest) } }
                div { dt { "Deliveries failed (given up)" } dd #deliveries-failed class=[(count("failed") > 0).then_some("bad")] { (count("failed")) } }
                div { dt { "Attempts failed, retrying" } dd { (count("retrying")) } }
                div { dt { "Deliveries delivered" } dd { (count("delivered")) } }
                div { dt { "Endpoints disabled by 410 Gone" } dd { (count("gone")) } }
            }
            p.muted {
                "Pending and oldest count every instance (the shared queue); attempt outcomes count this instance since it started, as "
                code { "/metrics" } " does."
            }
            h2 { "Provisioning" }
            dl.stats {
                div { dt { "Provisioning backlog (events)" } dd #provisioning-backlog { (backlog) } }
            }
            p {
                a href="/dashboard/directories" { "Directories" } " · "
                a href="/dashboard/directories/new" { "Create a directory" } " · "
                a href="/dashboard/units" { "Organizational units" }
            }
        },
    )
}

/// Seconds as "3 h 20 min", "45 s".
pub fn human(secs: u64) -> String {
    match secs {
        s if s < 60 => format!("{s} s"),
        s if s < 3600 => format!("{} min {} s", s / 60, s % 60),
        s if s < 86400 => format!("{} h {} min", s / 3600, (s % 3600) / 60),
        s => format!("{} d {} h", s / 86400, (s % 86400) / 3600),
    }
}
