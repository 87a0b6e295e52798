//! The admin API's JSON shapes of directories, webhook endpoints, deliveries and delivery
//! attempts, in one place: the JSON API, the command line and (later) the dashboard
//! render the same thing. Users and groups render as their event payloads
//! (`users::user_summary`, `groups::group_summary`), so an application sees one shape.

use serde_json::{json, Value};

use super::{scim_base_url, scim_path};
use crate::scim::resource::timestamp;
use crate::store::deliveries::{self, AttemptRow, DeliveryRow};
use crate::store::directories::DirectoryRow;
use crate::store::webhooks::EndpointRow;

/// The directory as the admin API shows it. `secret` is the SCIM secret, known only at
/// creation and rotation (it is stored hashed); `webhook_secret` likewise is echoed only
/// when the admin has just sent it.
pub fn directory_json(
    row: &DirectoryRow,
    external_url: &str,
    secret: Option<&str>,
    webhook_secret: Option<&str>,
) -> Value {
    json!({
        "id": row.id,
        "name": row.name,
        "tenant": row.tenant,
        "product": row.product,
        "type": row.provider_type,
        "log_webhook_events": row.log_webhook_events,
        "deactivated": row.deactivated,
        "user_limit": row.user_limit,
        "organizational_unit_id": row.organizational_unit_id,
        "created_at": timestamp(row.created_at),
        "updated_at": timestamp(row.updated_at),
        // A Google Workspace directory is pulled: it has no SCIM endpoint.
        "scim": (row.provider_type != super::directories::GOOGLE).then(|| json!({
            "path": scim_path(&row.id),
            "endpoint": scim_base_url(external_url, &row.id),
            "secret": secret,
            "previous_secret_expires_at": row.previous_secret_expires_at.map(timestamp),
        })),
        "webhook": {
            "endpoint": row.webhook_url,
            "secret": webhook_secret,
        },
    })
}

/// The endpoint as the admin API shows it; `secret` only when just set or rotated.
pub fn endpoint_json(e: &EndpointRow, secret: Option<&str>) -> Value {
    let types: Option<Value> = e
        .event_types
        .as_deref()
        .and_then(|t| serde_json::from_str(t).ok());
    json!({
        "id": e.id,
        "directory_id": e.directory_id,
        "url": e.url,
        "secret": secret,
        "event_types": types,
        "enabled": e.enabled,
        "disabled_reason": e.disabled_reason,
        "batch_size": e.batch_size,
        "primary": e.is_primary,
        "previous_secret_expires_at": e.previous_secret_expires_at.map(timestamp),
        "created_at": timestamp(e.created_at),
        "updated_at": timestamp(e.updated_at),
    })
}

pub fn delivery_json(d: &DeliveryRow) -> Value {
    json!({
        "endpoint_id": d.endpoint_id,
        "event_id": d.event_id,
        "sequence": d.sequence,
        "status": d.status,
        "attempts": d.attempts,
        "next_attempt_at": (d.status == deliveries::PENDING).then(|| timestamp(d.next_attempt_at)),
        "last_status": d.last_status,
        "last_error": d.last_error,
        "created_at": timestamp(d.created_at),
        "updated_at": timestamp(d.updated_at),
    })
}

pub fn attempt_json(a: &AttemptRow) -> Value {
    json!({
        "id": a.id,
        "endpoint_id": a.endpoint_id,
        "attempt": a.attempt,
        "status": a.status_code,
        "duration_ms": a.duration_ms,
        "error": a.error,
        "response": a.response_excerpt,
        "created_at": timestamp(a.created_at),
    })
}
