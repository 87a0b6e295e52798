//! Liveness and readiness.

use actix_web::{web, HttpResponse};
use serde_json::json;

use super::AppState;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/healthz", web::get().to(healthz))
        .route("/readyz", web::get().to(readyz))
        .route("/metrics", web::get().to(metrics));
}

async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

/// Prometheus text: this instance's delivery counters and the shared queue's gauges.
async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    let stats = state
        .db
        .run(|c| {
            let queue = crate::webhooks::metrics::queue(c)?;
            let backlog = crate::directory::overview::provisioning_backlog(c)?;
            Ok((queue, backlog))
        })
        .await;
    let ((depth, age), backlog) = match stats {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "queue statistics");
            return HttpResponse::ServiceUnavailable().finish();
        }
    };
    let mut text = crate::webhooks::metrics::global().render(depth, age);
    text.push_str(&provisioning_gauge(backlog));
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(text)
}

/// The provisioning backlog (the dashboard's home shows the same number).
pub fn provisioning_gauge(backlog: i64) -> String {
    format!(
        "# HELP scimgate_provisioning_backlog_events Events of directories attached to a unit not yet followed by provisioning.\n\
         # TYPE scimgate_provisioning_backlog_events gauge\n\
         scimgate_provisioning_backlog_events {backlog}\n"
    )
}

/// Ready when the database answers.
async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    match state.db.run(crate::store::ping).await {
        Ok(()) => HttpResponse::Ok().json(json!({"status": "ready"})),
        Err(e) => {
            tracing::warn!(error = %e, "database not reachable");
            HttpResponse::ServiceUnavailable().json(json!({"status": "unavailable"}))
        }
    }
}
