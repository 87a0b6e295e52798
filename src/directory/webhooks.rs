//! Webhook endpoints (fan-out) as admins manage them, replay, and the directory's own
//! `webhook_url`, which is kept as its primary endpoint.

use chrono::{Duration, NaiveDateTime};
use serde::Deserialize;
use serde_json::json;

use super::events::ALL_TYPES;
use crate::error::{Error, Rejected};
use crate::ids::EndpointId;
use crate::outbound::safety;
use crate::secrets::{count, resealed, SealReport, Sealed, Sealer, Secret};
use crate::store::deliveries::{self, DeliveryRow};
use crate::store::directories::DirectoryRow;
use crate::store::events::EventRow;
use crate::store::webhooks::{self as store, EndpointChanges, EndpointRow, GLOBAL_ENDPOINT_ID};
use crate::store::{now, write_tx, AnyConnection, Page};
use crate::webhooks::signing;

/// How long a replaced endpoint secret keeps signing next to the new one.
pub const SECRET_GRACE_HOURS: i64 = 24;
/// Largest `batch_size`.
pub const MAX_BATCH: i64 = 1000;

/// What may be sent to create an endpoint.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewEndpoint {
    pub url: Option<String>,
    /// `whsec_…` or any string; generated when absent.
    #[schema(value_type = Option<String>)]
    pub secret: Option<Secret>,
    pub event_types: Option<Vec<String>>,
    pub enabled: Option<bool>,
    pub batch_size: Option<i64>,
}

/// A PATCH of an endpoint; `null` clears `event_types` (all types) and `batch_size`.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EndpointUpdate {
    pub url: Option<String>,
    #[schema(value_type = Option<String>)]
    pub secret: Option<Secret>,
    #[serde(default, deserialize_with = "super::directories::nullable")]
    #[schema(value_type = Option<Vec<String>>)]
    pub event_types: Option<Option<Vec<String>>>,
    pub enabled: Option<bool>,
    #[serde(default, deserialize_with = "super::directories::nullable")]
    #[schema(value_type = Option<i64>)]
    pub batch_size: Option<Option<i64>>,
}

fn invalid(msg: impl Into<String>) -> Error {
    Rejected::invalid(msg).into()
}

/// Checks a webhook URL: http(s), no credentials, and (unless allowed) no private address
/// now. Blocking: resolves the host name.
pub fn check_url(url: &str, allow_private: bool) -> Result<String, Error> {
    crate::scim::limits::check_text("url", url, crate::scim::limits::MAX_INDEXED_CHARS)
        .map_err(Rejected::from)?;
    let parsed = safety::check_url(url, allow_private).map_err(|e| invalid(e.to_string()))?;
    safety::check_resolved(&parsed, allow_private).map_err(|e| invalid(e.to_string()))?;
    Ok(url.trim().to_string())
}

fn check_secret(secret: &str) -> Result<(), Error> {
    if secret.is_empty() || secret.len() > 1024 || secret.contains('\0') {
        return Err(invalid("secret must be 1 to 1024 characters, without NUL"));
    }
    Ok(())
}

/// The secret an admin gave (checked), or a generated `whsec_…`.
fn given_or_generated(given: Option<String>) -> Result<String, Error> {
    match given {
        Some(s) => {
            check_secret(&s)?;
            Ok(s)
        }
        None => signing::generate_secret(),
    }
}

fn check_types(types: &[String]) -> Result<String, Error> {
    if types.is_empty() {
        return Err(invalid(
            "event_types must name at least one type; leave it out (or null) for every type",
        ));
    }
    if let Some(t) = types.iter().find(|t| !ALL_TYPES.contains(&t.as_str())) {
        return Err(invalid(format!(
            "unknown event type {t:?}; expected any of {}",
            ALL_TYPES.join(", ")
        )));
    }
    Ok(json!(types).to_string())
}

fn check_batch(b: Option<i64>) -> Result<Option<i64>, Error> {
    match b {
        Some(n) if !(1..=MAX_BATCH).contains(&n) => Err(invalid(format!(
            "batch_size must be between 1 and {MAX_BATCH}"
        ))),
        other => Ok(other),
    }
}

fn new_row(
    directory_id: Option<&str>,
    id: String,
    url: String,
    secret: Sealed,
    is_primary: bool,
) -> EndpointRow {
    let t = now();
    EndpointRow {
        id,
        directory_id: directory_id.map(String::from),
        url,
        secret,
        previous_secret: None,
        previous_secret_expires_at: None,
        event_types: None,
        enabled: true,
        disabled_reason: None,
        batch_size: None,
        is_primary,
        retired: false,
        next_attempt_at: None,
        lease_until: None,
        lease_owner: None,
        fanout_version: 0,
        created_at: t,
        updated_at: t,
    }
}

fn new_id() -> String {
    EndpointId::generate().into_string()
}

/// Creates an endpoint on a directory. Returns it with its secret in the clear (shown
/// this once; it is stored sealed).
pub fn create(
    conn: &mut AnyConnection,
    sealer: &Sealer,
    directory: &DirectoryRow,
    input: NewEndpoint,
    allow_private: bool,
) -> Result<(EndpointRow, String), Error> {
    let url = check_url(
        input
            .url
            .as_deref()
            .ok_or_else(|| invalid("url is required"))?,
        allow_private,
    )?;
    let secret = given_or_generated(input.secret.map(Secret::into_inner))?;
    let mut row = new_row(
        Some(&directory.id),
        new_id(),
        url,
        sealer.seal(&secret)?,
        false,
    );
    row.event_types = input.event_types.as_deref().map(check_types).transpose()?;
    row.enabled = input.enabled.unwrap_or(true);
    row.batch_size = check_batch(input.batch_size)?;
    store::insert(conn, &row)?;
    Ok((row, secret))
}

/// The endpoints of a directory (retired ones are gone for admins).
pub fn list(conn: &mut AnyConnection, directory_id: &str) -> Result<Vec<EndpointRow>, Error> {
    super::directories::get(conn, directory_id)?;
    store::list(conn, directory_id)
}

/// An endpoint of this directory (retired ones are gone for admins).
pub fn get(
    conn: &mut AnyConnection,
    directory_id: &str,
    id: &EndpointId,
) -> Result<EndpointRow, Error> {
    store::get(conn, id.as_str())?
        .filter(|e| e.directory_id.as_deref() == Some(directory_id) && !e.retired)
        .ok_or_else(|| Rejected::not_found("Webhook endpoint not found").into())
}

/// The primary endpoint mirrors the directory's `webhook_url`/`webhook_secret`: change
/// those through the directory.
fn not_primary(e: &EndpointRow, what: &str) -> Result<(), Error> {
    if e.is_primary {
        return Err(Rejected::conflict(format!(
            "the primary endpoint mirrors the directory's webhook: {what} it with PATCH /directory-sync/{{id}}"
        ))
        .into());
    }
    Ok(())
}

pub fn update(
    conn: &mut AnyConnection,
    sealer: &Sealer,
    directory_id: &str,
    id: &EndpointId,
    input: EndpointUpdate,
    allow_private: bool,
) -> Result<EndpointRow, Error> {
    let url = input
        .url
        .as_deref()
        .map(|u| check_url(u, allow_private))
        .transpose()?;
    write_tx(conn, |conn| {
        let before = get(conn, directory_id, id)?;
        let t = now();
        let mut changes = EndpointChanges {
            updated_at: Some(t),
            ..Default::default()
        };
        if let Some(u) = url {
            not_primary(&before, "change the URL of")?;
            changes.url = Some(u);
        }
        if let Some(s) = input.secret {
            not_primary(&before, "change the secret of")?;
            check_secret(s.expose())?;
            rotation(sealer, &mut changes, &before, s.expose(), t)?;
        }
        if let Some(types) = input.event_types {
            changes.event_types = Some(types.as_deref().map(check_types).transpose()?);
        }
        if let Some(b) = input.batch_size {
            changes.batch_size = Some(check_batch(b)?);
        }
        if let Some(enabled) = input.enabled {
            changes.enabled = Some(enabled);
            if enabled {
                changes.disabled_reason = Some(None);
            } else if !before.enabled {
                // keep the reason it was disabled with
            } else {
                changes.disabled_reason = Some(Some("disabled by an admin".into()));
            }
        }
        store::update(conn, id.as_str(), &changes)?;
        if input.enabled == Some(true) && !before.enabled {
            // Resume the queue left when it was disabled.
            store::mark_due(conn, &[id.to_string()], t)?;
        }
        get(conn, directory_id, id)
    })
}

/// A new secret, sealed; the old one keeps signing for [`SECRET_GRACE_HOURS`]. The same
/// secret again changes nothing (sealed values differ each time: compared opened). An old
/// secret no configured key opens (its key was lost) is replaced without a grace period:
/// it could not sign anyway, and setting a new secret is how an admin recovers.
fn rotation(
    sealer: &Sealer,
    changes: &mut EndpointChanges,
    before: &EndpointRow,
    secret: &str,
    t: NaiveDateTime,
) -> Result<(), Error> {
    let (previous, until) = match sealer.open(&before.secret) {
        Ok(old) if crate::secrets::equal(old.expose(), secret) => return Ok(()),
        Ok(_) => (
            Some(before.secret.clone()),
            Some(t + Duration::hours(SECRET_GRACE_HOURS)),
        ),
        Err(_) => (None, None),
    };
    changes.previous_secret = Some(previous);
    changes.previous_secret_expires_at = Some(until);
    changes.secret = Some(sealer.seal(secret)?);
    Ok(())
}

/// Issues a new generated secret (or the one given); returns the endpoint and the secret.
pub fn rotate_secret(
    conn: &mut AnyConnection,
    sealer: &Sealer,
    directory_id: &str,
    id: &EndpointId,
    given: Option<String>,
) -> Result<(EndpointRow, String), Error> {
    let secret = given_or_generated(given)?;
    let row = write_tx(conn, |conn| {
        let before = get(conn, directory_id, id)?;
        not_primary(&before, "rotate the secret of")?;
        let t = now();
        let mut changes = EndpointChanges {
            updated_at: Some(t),
            ..Default::default()
        };
        rotation(sealer, &mut changes, &before, &secret, t)?;
        store::update(conn, id.as_str(), &changes)?;
        get(conn, directory_id, id)
    })?;
    Ok((row, secret))
}

pub fn delete(conn: &mut AnyConnection, directory_id: &str, id: &EndpointId) -> Result<(), Error> {
    write_tx(conn, |conn| {
        let e = get(conn, directory_id, id)?;
        not_primary(&e, "remove")?;
        store::delete(conn, id.as_str())
    })
}

/// Keeps the primary endpoint in step with the directory's webhook after a create or an
/// update (inside that transaction). A changed secret keeps the old one signing for the
/// grace period. A webhook URL without a secret gets a generated `whsec_…`, stored on the
/// directory too (sealed, as everywhere); it is returned so the caller can show it, once.
pub fn sync_primary(
    conn: &mut AnyConnection,
    sealer: &Sealer,
    directory: &DirectoryRow,
) -> Result<Option<String>, Error> {
    let existing = store::primary(conn, &directory.id)?;
    let Some(url) = directory.webhook_url.clone() else {
        if let Some(e) = existing {
            store::delete(conn, &e.id)?;
        }
        return Ok(None);
    };
    let (sealed, generated) = match &directory.webhook_secret {
        Some(s) => (s.clone(), None),
        None => {
            let s = signing::generate_secret()?;
            let sealed = sealer.seal(&s)?;
            let set = crate::store::directories::DirectoryChanges {
                webhook_secret: Some(Some(sealed.clone())),
                ..Default::default()
            };
            crate::store::directories::update(conn, &directory.id, &set)?;
            (sealed, Some(s))
        }
    };
    match existing {
        None => store::insert(
            conn,
            &new_row(Some(&directory.id), new_id(), url, sealed, true),
        )?,
        Some(e) => {
            let t = now();
            let mut changes = EndpointChanges {
                updated_at: Some(t),
                ..Default::default()
            };
            if e.url != url {
                changes.url = Some(url);
            }
            rotation(sealer, &mut changes, &e, sealer.open(&sealed)?.expose(), t)?;
            store::update(conn, &e.id, &changes)?;
        }
    }
    Ok(generated)
}

/// Gives every directory whose `webhook_url` has no primary endpoint yet (directories
/// made before endpoints existed) its endpoint, so an upgrade keeps their webhooks. One
/// without a secret gets a generated one; the admin sets a known secret with
/// PATCH /directory-sync/{id}.
pub fn adopt_directory_webhooks(conn: &mut AnyConnection, sealer: &Sealer) -> Result<usize, Error> {
    let orphans = crate::store::directories::with_webhook_but_no_endpoint(conn)?;
    for dir in &orphans {
        match write_tx(conn, |conn| sync_primary(conn, sealer, dir)) {
            // Another instance starting at the same time adopted it first.
            Err(e) if crate::store::is_unique_violation(&e) => {}
            other => {
                other?;
            }
        }
    }
    Ok(orphans.len())
}

/// Creates, updates or disables the global endpoint (`SCIMGATE_WEBHOOK_URL`), which gets
/// every directory's `dsync.*` events. Its URL is the operator's: not checked for
/// private addresses at this point (delivery still is).
pub fn configure_global(
    conn: &mut AnyConnection,
    sealer: &Sealer,
    url: Option<&str>,
    secret: Option<&str>,
) -> Result<(), Error> {
    match configure_global_once(conn, sealer, url, secret) {
        // Another instance starting at the same time inserted it: now it is an update.
        Err(e) if crate::store::is_unique_violation(&e) => {
            configure_global_once(conn, sealer, url, secret)
        }
        other => other,
    }
}

fn configure_global_once(
    conn: &mut AnyConnection,
    sealer: &Sealer,
    url: Option<&str>,
    secret: Option<&str>,
) -> Result<(), Error> {
    write_tx(conn, |conn| {
        let existing = store::get(conn, GLOBAL_ENDPOINT_ID)?;
        match (url, existing) {
            (None, None) => Ok(()),
            (None, Some(_)) => store::update(
                conn,
                GLOBAL_ENDPOINT_ID,
                &EndpointChanges {
                    enabled: Some(false),
                    disabled_reason: Some(Some("SCIMGATE_WEBHOOK_URL is not set".into())),
                    updated_at: Some(now()),
                    ..Default::default()
                },
            ),
            (Some(u), None) => {
                let row = new_row(
                    None,
                    GLOBAL_ENDPOINT_ID.into(),
                    u.to_string(),
                    sealer.seal(secret.unwrap_or_default())?,
                    false,
                );
                store::insert(conn, &row)
            }
            (Some(u), Some(e)) => {
                let t = now();
                let mut changes = EndpointChanges {
                    url: Some(u.to_string()),
                    enabled: Some(true),
                    disabled_reason: Some(None),
                    updated_at: Some(t),
                    ..Default::default()
                };
                rotation(sealer, &mut changes, &e, secret.unwrap_or_default(), t)?;
                store::update(conn, GLOBAL_ENDPOINT_ID, &changes)?;
                if !e.enabled {
                    store::mark_due(conn, &[GLOBAL_ENDPOINT_ID.to_string()], t)?;
                }
                Ok(())
            }
        }
    })
}

/// Seals every secret still stored in plaintext (a database from before sealing) and,
/// with `rekey`, re-seals under the current key those sealed under an older one. Run at
/// start-up after the migrations, and by `scimgate rekey`; idempotent. A value is replaced
/// only if unchanged since it was read, so instances starting together and admins changing
/// secrets meanwhile lose nothing. Values no configured key opens are reported, not touched.
pub fn seal_stored_secrets(
    conn: &mut AnyConnection,
    sealer: &Sealer,
    rekey: bool,
) -> Result<SealReport, Error> {
    let mut report = SealReport::default();
    for (id, stored) in crate::store::directories::stored_webhook_secrets(conn)? {
        let place = format!("directory {id} (webhook secret)");
        if let Some(new) = resealed(sealer, &stored, rekey, &place, &mut report)? {
            let replaced =
                crate::store::directories::replace_webhook_secret(conn, &id, &stored, &new)?;
            count(&mut report, &stored, replaced);
        }
    }
    for e in store::stored_secrets(conn)? {
        let place = format!("webhook endpoint {}", e.id);
        let current = resealed(sealer, &e.secret, rekey, &place, &mut report)?;
        let previous = match &e.previous_secret {
            Some(p) => resealed(
                sealer,
                p,
                rekey,
                &format!("{place} (previous secret)"),
                &mut report,
            )?,
            None => None,
        };
        if current.is_none() && previous.is_none() {
            continue;
        }
        let secret = current.as_ref().unwrap_or(&e.secret);
        let prev = previous.as_ref().or(e.previous_secret.as_ref());
        let replaced = store::replace_secrets(conn, &e, secret, prev)?;
        if current.is_some() {
            count(&mut report, &e.secret, replaced);
        }
        if let (Some(_), Some(old)) = (&previous, &e.previous_secret) {
            count(&mut report, old, replaced);
        }
    }
    if report.sealed > 0 {
        // Once, after an upgrade. Failing to scrub leaves the secrets sealed and working.
        if let Err(e) = store::scrub_replaced(conn) {
            tracing::warn!(error = %e, "could not rebuild the database after sealing its secrets");
        }
    }
    Ok(report)
}

/// For a lost key: gives every secret no configured key opens a new generated one, and
/// disables its endpoint, so nothing is signed with a secret no receiver knows; an admin
/// then sets a known secret and enables the endpoint. A primary endpoint gets its
/// directory's new secret (it mirrors it). Previous secrets no key opens are dropped.
/// Returns how many values were replaced.
pub fn replace_unreadable_secrets(
    conn: &mut AnyConnection,
    sealer: &Sealer,
) -> Result<usize, Error> {
    let mut replaced = 0;
    for (id, stored) in crate::store::directories::stored_webhook_secrets(conn)? {
        if stored.key_id().is_some() && sealer.open(&stored).is_err() {
            let new = sealer.seal(&signing::generate_secret()?)?;
            if crate::store::directories::replace_webhook_secret(conn, &id, &stored, &new)? {
                replaced += 1;
            }
        }
    }
    for e in store::stored_secrets(conn)? {
        let lost = |s: &Sealed| s.key_id().is_some() && sealer.open(s).is_err();
        let current_lost = lost(&e.secret);
        let previous_lost = e.previous_secret.as_ref().is_some_and(lost);
        if !current_lost && !previous_lost {
            continue;
        }
        let secret = if !current_lost {
            e.secret.clone()
        } else {
            let mirrored = match (&e.directory_id, e.is_primary) {
                (Some(d), true) => crate::store::directories::get(conn, d)?
                    .and_then(|d| d.webhook_secret)
                    .filter(|s| sealer.open(s).is_ok()),
                _ => None,
            };
            match mirrored {
                Some(s) => s,
                None => sealer.seal(&signing::generate_secret()?)?,
            }
        };
        let previous = e.previous_secret.clone().filter(|p| !lost(p));
        let done = write_tx(conn, |conn| {
            let done = store::replace_secrets(conn, &e, &secret, previous.as_ref())?;
            if done && current_lost {
                store::disable_for_lost_secret(conn, &e.id)?;
            }
            Ok(done)
        })?;
        if done {
            replaced += usize::from(current_lost) + usize::from(previous_lost);
        }
    }
    Ok(replaced)
}

/// The endpoints an event of `directory_id` goes to now.
fn subscribers(
    conn: &mut AnyConnection,
    directory_id: &str,
    event_type: &str,
) -> Result<Vec<EndpointRow>, Error> {
    let mut all = store::list(conn, directory_id)?;
    if event_type.starts_with("dsync.") {
        all.extend(store::get(conn, GLOBAL_ENDPOINT_ID)?);
    }
    Ok(all
        .into_iter()
        .filter(|e| e.enabled && e.subscribes(event_type))
        .collect())
}

/// Sends one event again: to `endpoint_id`, or to every endpoint subscribed to it.
/// Returns the endpoints it was queued for.
pub fn replay_event(
    conn: &mut AnyConnection,
    directory_id: &str,
    event: &EventRow,
    endpoint_id: Option<&EndpointId>,
) -> Result<Vec<String>, Error> {
    write_tx(conn, |conn| {
        let targets = match endpoint_id {
            Some(id) => vec![get(conn, directory_id, id)?],
            None => subscribers(conn, directory_id, &event.event_type)?,
        };
        let t = now();
        for e in &targets {
            deliveries::requeue(conn, &e.id, std::slice::from_ref(event), t)?;
        }
        Ok(targets.into_iter().map(|e| e.id).collect())
    })
}

/// Sends an endpoint every event of its directory since `since` (that it subscribes
/// to), in order, after what it already has queued. Returns how many were queued.
pub fn replay_since(
    conn: &mut AnyConnection,
    directory_id: &str,
    endpoint_id: &EndpointId,
    since: NaiveDateTime,
) -> Result<usize, Error> {
    write_tx(conn, |conn| {
        let endpoint = get(conn, directory_id, endpoint_id)?;
        super::events::number_pending(conn, directory_id)?;
        let mut after = 0;
        let mut queued = 0;
        let t = now();
        loop {
            let page = crate::store::events::list_after(conn, directory_id, after, 5000)?;
            let Some(last) = page.last().and_then(|e| e.sequence) else {
                break;
            };
            after = last;
            let chosen: Vec<EventRow> = page
                .into_iter()
                .filter(|e| e.created_at >= since && endpoint.subscribes(&e.event_type))
                .collect();
            queued += deliveries::requeue(conn, endpoint_id.as_str(), &chosen, t)?;
        }
        Ok(queued)
    })
}

/// Deliveries of a directory for the admin API (e.g. the dead letters: `failed`).
pub fn list_deliveries(
    conn: &mut AnyConnection,
    directory_id: &str,
    status: Option<&str>,
    endpoint_id: Option<&EndpointId>,
    page: Page,
) -> Result<Vec<DeliveryRow>, Error> {
    if let Some(s) = status {
        if ![
            deliveries::PENDING,
            deliveries::DELIVERED,
            deliveries::FAILED,
        ]
        .contains(&s)
        {
            return Err(invalid("status must be pending, delivered or failed"));
        }
    }
    deliveries::list(
        conn,
        directory_id,
        status,
        endpoint_id.map(EndpointId::as_str),
        page,
    )
}
