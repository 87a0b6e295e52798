//! Directories: created and managed by admins, authenticated against by IdPs.

use chrono::NaiveDateTime;
use serde::Deserialize;
use serde_json::{json, Value};

use super::events::{self, DSYNC_ACTIVATED, DSYNC_CREATED, DSYNC_DEACTIVATED, DSYNC_DELETED};
use super::webhooks;
use crate::error::Error;
use crate::error::Rejected;
use crate::scim::{limits, ScimError};
use crate::secrets::{self, Sealed, Sealer, Secret};
use crate::store::directories::{self as store, DirectoryChanges, DirectoryRow};
use crate::store::{now, write_tx, AnyConnection, Page};

/// Provider types, as Jackson names them.
pub const PROVIDER_TYPES: &[&str] = &[
    "okta-scim-v2",
    "azure-scim-v2",
    "onelogin-scim-v2",
    "jumpcloud-scim-v2",
    "generic-scim-v2",
    "google",
];

#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
pub struct NewDirectory {
    pub name: Option<String>,
    pub tenant: Option<String>,
    pub product: Option<String>,
    /// `okta-scim-v2`, `azure-scim-v2`, `onelogin-scim-v2`, `jumpcloud-scim-v2`,
    /// `generic-scim-v2` (the default), or `google` (pulled from Google Workspace, with
    /// `google`).
    #[serde(rename = "type")]
    pub provider_type: Option<String>,
    pub webhook_url: Option<String>,
    #[schema(value_type = Option<String>)]
    pub webhook_secret: Option<Secret>,
    pub user_limit: Option<i64>,
    pub log_webhook_events: Option<bool>,
    /// A `google` directory's workspace: `{"domain", "admin_email"}`, whose delegation the
    /// caller verified first.
    pub google: Option<GoogleWorkspace>,
}

/// Where a Google Workspace directory pulls from (DESIGN.md §4).
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
pub struct GoogleWorkspace {
    pub domain: String,
    pub admin_email: String,
}

/// The type of directories pulled from Google Workspace rather than pushed over SCIM.
pub const GOOGLE: &str = "google";

/// A PATCH of a directory. Absent fields stay; `null` clears the optional ones.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
pub struct DirectoryUpdate {
    pub name: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    pub webhook_url: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    pub webhook_secret: Option<Option<Secret>>,
    /// Jackson's nested form: `{"webhook": {"endpoint", "secret"}}`.
    pub webhook: Option<WebhookInput>,
    pub log_webhook_events: Option<BoolLike>,
    pub deactivated: Option<BoolLike>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<i64>)]
    pub user_limit: Option<Option<i64>>,
    /// `ou_…` attaches the directory to a unit; `null` detaches it.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    pub organizational_unit_id: Option<Option<String>>,
}

#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
pub struct WebhookInput {
    pub endpoint: Option<String>,
    #[schema(value_type = Option<String>)]
    pub secret: Option<Secret>,
}

/// Jackson accepts `false`/`"false"` for false; we accept booleans and their strings.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum BoolLike {
    Bool(bool),
    Text(String),
}

impl BoolLike {
    fn value(&self, name: &str) -> Result<bool, Error> {
        match self {
            Self::Bool(b) => Ok(*b),
            Self::Text(s) if s.eq_ignore_ascii_case("true") => Ok(true),
            Self::Text(s) if s.eq_ignore_ascii_case("false") => Ok(false),
            Self::Text(_) => Err(Rejected::invalid(format!("{name} must be true or false")).into()),
        }
    }
}

pub(crate) fn nullable<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

fn check_tenancy(name: &str, v: &str) -> Result<(), Error> {
    if v.trim().is_empty() {
        return Err(Rejected::invalid(format!("{name} is required")).into());
    }
    limits::check_indexed(name, v).map_err(Rejected::from)?;
    if v.contains(':') {
        return Err(Rejected::invalid(format!("{name} cannot contain the character :")).into());
    }
    Ok(())
}

/// Free-text fields of an admin body: no NUL, bounded length.
fn check_texts(fields: &[(&str, Option<&str>)]) -> Result<(), Error> {
    for (name, value) in fields {
        if let Some(v) = value {
            limits::check_indexed(name, v).map_err(Rejected::from)?;
        }
    }
    Ok(())
}

fn check_limit(limit: Option<i64>) -> Result<(), Error> {
    if limit.is_some_and(|l| l < 0) {
        return Err(Rejected::invalid("user_limit must be zero or more").into());
    }
    Ok(())
}

/// What a directory event carries.
pub fn directory_event_data(d: &DirectoryRow) -> Value {
    json!({
        "id": d.id, "name": d.name, "tenant": d.tenant, "product": d.product,
        "type": d.provider_type, "deactivated": d.deactivated,
    })
}

/// Creates a directory; returns it with its SCIM secret, which is stored only hashed, and
/// its webhook secret (given, or generated for a webhook URL without one), which is
/// stored sealed: both are shown this once. `allow_private` lets the webhook URL point at
/// private addresses.
pub fn create(
    conn: &mut AnyConnection,
    sealer: &Sealer,
    input: NewDirectory,
    allow_private: bool,
) -> Result<(DirectoryRow, String, Option<String>), Error> {
    let tenant = input.tenant.unwrap_or_default();
    let product = input.product.unwrap_or_default();
    check_tenancy("tenant", &tenant)?;
    check_tenancy("product", &product)?;
    check_texts(&[
        ("name", input.name.as_deref()),
        ("type", input.provider_type.as_deref()),
        (
            "webhook_secret",
            input.webhook_secret.as_ref().map(Secret::expose),
        ),
    ])?;
    let provider_type = input
        .provider_type
        .unwrap_or_else(|| "generic-scim-v2".into());
    if !PROVIDER_TYPES.contains(&provider_type.as_str()) {
        return Err(Rejected::invalid(format!(
            "invalid directory type {provider_type:?}; expected one of {}",
            PROVIDER_TYPES.join(", ")
        ))
        .into());
    }
    let webhook_url = input
        .webhook_url
        .filter(|u| !u.trim().is_empty())
        .map(|u| webhooks::check_url(&u, allow_private))
        .transpose()?;
    check_limit(input.user_limit)?;
    let google = match (provider_type == GOOGLE, input.google) {
        (true, Some(g)) => {
            check_texts(&[
                ("google.domain", Some(&g.domain)),
                ("google.admin_email", Some(&g.admin_email)),
            ])?;
            Some(g)
        }
        (true, None) => {
            return Err(Rejected::invalid(
                "a google directory needs google.domain and google.admin_email",
            )
            .into())
        }
        (false, Some(_)) => {
            return Err(Rejected::invalid("google is only for directories of type google").into())
        }
        (false, None) => None,
    };
    let secret = secrets::random_token(32)?;
    let webhook_secret = input
        .webhook_secret
        .map(Secret::into_inner)
        .filter(|s| !s.is_empty());
    let t = now();
    let row = DirectoryRow {
        id: uuid::Uuid::now_v7().to_string(),
        name: input
            .name
            .filter(|n| !n.trim().is_empty())
            .unwrap_or_else(|| format!("scim-{tenant}-{product}")),
        tenant,
        product,
        provider_type,
        scim_secret_hash: secrets::digest(&secret),
        previous_secret_hash: None,
        previous_secret_expires_at: None,
        webhook_url,
        webhook_secret: webhook_secret
            .as_deref()
            .map(|s| sealer.seal(s))
            .transpose()?,
        log_webhook_events: input.log_webhook_events.unwrap_or(false),
        deactivated: false,
        user_limit: input.user_limit,
        organizational_unit_id: None,
        last_event_sequence: 0,
        created_at: t,
        updated_at: t,
    };
    let generated = write_tx(conn, |conn| {
        store::insert(conn, &row)?;
        if let Some(g) = &google {
            crate::store::google_directories::insert(conn, &row.id, &g.domain, &g.admin_email, t)?;
        }
        // A webhook without a secret gets one.
        let generated = webhooks::sync_primary(conn, sealer, &row)?;
        events::record(conn, &row, DSYNC_CREATED, directory_event_data(&row))?;
        Ok(generated)
    })?;
    let row = get(conn, &row.id)?;
    Ok((row, secret, webhook_secret.or(generated)))
}

pub fn get(conn: &mut AnyConnection, id: &str) -> Result<DirectoryRow, Error> {
    let not_found = || Rejected::not_found("Directory configuration not found.").into();
    // Directory ids are UUIDs: anything else is no directory, without asking the database.
    if !super::is_resource_id(id) {
        return Err(not_found());
    }
    store::get(conn, id)?.ok_or_else(not_found)
}

/// The directory with this id, if any (SCIM authentication's lookup).
pub fn find(conn: &mut AnyConnection, id: &str) -> Result<Option<DirectoryRow>, Error> {
    if !super::is_resource_id(id) {
        return Ok(None);
    }
    store::get(conn, id)
}

/// The directories of a tenant and product (the admin API's reads across them).
pub fn ids_for_tenant_product(
    conn: &mut AnyConnection,
    tenant: &str,
    product: &str,
) -> Result<Vec<String>, Error> {
    check_texts(&[("tenant", Some(tenant)), ("product", Some(product))])?;
    store::ids_for_tenant_product(conn, tenant, product)
}

pub fn list(
    conn: &mut AnyConnection,
    tenant: Option<&str>,
    product: Option<&str>,
    page: Page,
) -> Result<(Vec<DirectoryRow>, i64), Error> {
    check_texts(&[("tenant", tenant), ("product", product)])?;
    store::list(conn, tenant, product, page)
}

/// Applies an admin's changes. Returns the directory and, when the update set a webhook
/// URL on a directory without a secret, the secret generated for it (shown once).
pub fn update(
    conn: &mut AnyConnection,
    sealer: &Sealer,
    id: &str,
    input: DirectoryUpdate,
    allow_private: bool,
) -> Result<(DirectoryRow, Option<String>), Error> {
    check_texts(&[
        ("name", input.name.as_deref()),
        (
            "webhook_secret",
            input
                .webhook_secret
                .as_ref()
                .and_then(|s| s.as_ref())
                .map(Secret::expose),
        ),
        (
            "webhook.secret",
            input
                .webhook
                .as_ref()
                .and_then(|w| w.secret.as_ref())
                .map(Secret::expose),
        ),
        (
            "organizational_unit_id",
            input
                .organizational_unit_id
                .as_ref()
                .and_then(|s| s.as_deref()),
        ),
    ])?;
    let mut changes = DirectoryChanges {
        name: input.name.filter(|n| !n.trim().is_empty()),
        webhook_url: input
            .webhook_url
            .map(|u| u.filter(|u| !u.trim().is_empty())),
        webhook_secret: input
            .webhook_secret
            .map(|s| seal_given(sealer, s))
            .transpose()?,
        user_limit: input.user_limit,
        organizational_unit_id: input.organizational_unit_id,
        updated_at: Some(now()),
        ..Default::default()
    };
    if let Some(w) = input.webhook {
        if let Some(e) = w.endpoint {
            changes.webhook_url = Some(Some(e).filter(|u| !u.trim().is_empty()));
        }
        if let Some(s) = w.secret {
            changes.webhook_secret = Some(seal_given(sealer, Some(s))?);
        }
    }
    if let Some(Some(u)) = &mut changes.webhook_url {
        *u = webhooks::check_url(u, allow_private)?;
    }
    let webhook_changed = changes.webhook_url.is_some() || changes.webhook_secret.is_some();
    check_limit(changes.user_limit.flatten())?;
    if let Some(b) = input.log_webhook_events {
        changes.log_webhook_events = Some(b.value("log_webhook_events")?);
    }
    if let Some(b) = input.deactivated {
        changes.deactivated = Some(b.value("deactivated")?);
    }
    if let Some(Some(unit)) = &changes.organizational_unit_id {
        let known = crate::ids::OrgUnitId::parse(unit).is_some()
            && crate::store::organizational_units::get(conn, unit)?.is_some();
        if !known {
            return Err(Rejected::invalid(format!("unknown organizational unit {unit:?}")).into());
        }
    }
    write_tx(conn, |conn| {
        let before = get(conn, id)?;
        store::update(conn, id, &changes)?;
        let after = get(conn, id)?;
        // Attached to a unit: its users are provisioned from its first event on (a
        // backfill that resumes where it stopped), then as they change; detached: no
        // longer followed, what was provisioned stays.
        match &changes.organizational_unit_id {
            Some(Some(unit)) if before.organizational_unit_id.as_deref() != Some(unit) => {
                crate::store::provisioning::attach(conn, id, unit, 0, now())?;
            }
            Some(None) => crate::store::provisioning::detach(conn, id)?,
            _ => {}
        }
        let generated = if webhook_changed {
            webhooks::sync_primary(conn, sealer, &after)?
        } else {
            None
        };
        if before.deactivated != after.deactivated {
            let kind = if after.deactivated {
                DSYNC_DEACTIVATED
            } else {
                DSYNC_ACTIVATED
            };
            events::record(conn, &after, kind, directory_event_data(&after))?;
        }
        Ok((get(conn, id)?, generated))
    })
}

/// A webhook secret an admin sent, sealed for storage; empty clears it.
fn seal_given(sealer: &Sealer, given: Option<Secret>) -> Result<Option<Sealed>, Error> {
    given
        .filter(|s| !s.expose().is_empty())
        .map(|s| sealer.seal(s.expose()))
        .transpose()
}

/// Deletes a directory with all its users, groups and memberships, and records its last
/// event, `dsync.deleted` (sequence continuing). Its events remain until delivered.
pub fn delete(conn: &mut AnyConnection, id: &str) -> Result<DirectoryRow, Error> {
    // A user deletion racing this one locks user then memberships, this one memberships
    // (through the groups) then users: PostgreSQL may pick this as the deadlock's victim.
    let mut tries = 0;
    loop {
        match delete_once(conn, id) {
            Err(e) if e.is_deadlock() && tries < 3 => tries += 1,
            other => return other,
        }
    }
}

fn delete_once(conn: &mut AnyConnection, id: &str) -> Result<DirectoryRow, Error> {
    write_tx(conn, |conn| {
        // A directory of a million users takes longer than a request's statement budget.
        crate::store::without_statement_timeout(conn)?;
        // Number what is committed first: that also locks the directory row, so no
        // sequencer moves the sequence on between here and the last event.
        events::number_pending(conn, id)?;
        get(conn, id)?;
        store::delete_contents(conn, id)?;
        // Writers the deletes waited for (a PATCH holding a user's row) committed their
        // events after the first numbering: number them too, before the row goes.
        events::number_pending(conn, id)?;
        let row = get(conn, id)?;
        store::delete_row(conn, id)?;
        // No longer followed; the accounts it provisioned stay (revoke them by sub).
        crate::store::provisioning::detach(conn, id)?;
        crate::store::provisioning::forget(conn, id)?;
        events::insert_numbered(
            conn,
            &row,
            row.last_event_sequence + 1,
            DSYNC_DELETED,
            directory_event_data(&row),
        )?;
        // The last event still reaches the directory's endpoints and the global one;
        // then its endpoints only drain their queue (events already queued included).
        if crate::webhooks::fanout::fan_out(conn, id, row.last_event_sequence)? > 0 {
            crate::store::notify::notify(conn, crate::store::notify::DELIVERIES)?;
        }
        crate::store::webhooks::retire_for_directory(conn, id)?;
        Ok(row)
    })
}

/// Longest grace period of a rotated SCIM secret (90 days): a client's number never
/// reaches date arithmetic unchecked.
pub const MAX_GRACE_SECONDS: i64 = 90 * 24 * 3600;

/// Issues a new SCIM secret; the previous one keeps working for `grace_seconds`.
pub fn rotate_secret(
    conn: &mut AnyConnection,
    id: &str,
    grace_seconds: i64,
) -> Result<(DirectoryRow, String), Error> {
    if !(0..=MAX_GRACE_SECONDS).contains(&grace_seconds) {
        return Err(Rejected::invalid(format!(
            "the grace period must be from 0 to {MAX_GRACE_SECONDS} seconds"
        ))
        .into());
    }
    let secret = secrets::random_token(32)?;
    let row = write_tx(conn, |conn| {
        let row = get(conn, id)?;
        if row.provider_type == GOOGLE {
            // Pulled, never pushed: its SCIM routes answer 403 whatever the secret.
            return Err(Rejected::invalid(
                "a Google Workspace directory has no SCIM endpoint, so no SCIM secret",
            )
            .into());
        }
        let t = now();
        let expires = (grace_seconds > 0)
            .then(|| crate::store::later(t, std::time::Duration::from_secs(grace_seconds as u64)));
        let previous = expires.map(|_| row.scim_secret_hash.as_str());
        store::set_secret(conn, id, &secrets::digest(&secret), previous, expires, t)?;
        get(conn, id)
    })?;
    Ok((row, secret))
}

/// Finds the directory a SCIM bearer token opens. Unknown directories and wrong tokens
/// answer the same 401, so directory ids cannot be probed; a deactivated one answers 403.
pub fn authenticate(
    conn: &mut AnyConnection,
    id: &str,
    token: Option<&str>,
) -> Result<DirectoryRow, Error> {
    if !super::is_resource_id(id) {
        return Err(unauthorized());
    }
    let row = store::get(conn, id)?.ok_or_else(unauthorized)?;
    verify(&row, token)?;
    Ok(row)
}

fn unauthorized() -> Error {
    ScimError::unauthorized("missing or invalid bearer token").into()
}

/// Checks a bearer token against a directory (current secret, or the previous one within
/// its grace period), in constant time.
pub fn verify(row: &DirectoryRow, token: Option<&str>) -> Result<(), Error> {
    // Pulled from Google, never pushed: no token opens its SCIM routes, so none is checked.
    if row.provider_type == GOOGLE {
        return Err(ScimError::forbidden(
            "this directory is synced from Google Workspace and has no SCIM endpoint",
        )
        .into());
    }
    let token = token.ok_or_else(unauthorized)?;
    if !secret_opens(row, token, now()) {
        return Err(unauthorized());
    }
    if row.deactivated {
        return Err(ScimError::forbidden("this directory is deactivated").into());
    }
    Ok(())
}

/// Directory rows kept briefly for SCIM authentication, so a request does not read its
/// directory first. Admin changes made through this process evict at once; other
/// instances see them within the time to live.
pub struct DirectoryCache {
    ttl: std::time::Duration,
    entries:
        std::sync::Mutex<std::collections::HashMap<String, (std::time::Instant, DirectoryRow)>>,
}

/// Entries kept at most; the cache starts over when full.
const CACHE_CAPACITY: usize = 10_000;

impl DirectoryCache {
    pub fn new(ttl: std::time::Duration) -> Self {
        Self {
            ttl,
            entries: Default::default(),
        }
    }

    pub fn get(&self, id: &str) -> Option<DirectoryRow> {
        let entries = self.entries.lock().ok()?;
        entries
            .get(id)
            .filter(|(at, _)| at.elapsed() < self.ttl)
            .map(|(_, row)| row.clone())
    }

    pub fn put(&self, row: DirectoryRow) {
        if self.ttl.is_zero() {
            return;
        }
        if let Ok(mut entries) = self.entries.lock() {
            if entries.len() >= CACHE_CAPACITY {
                entries.clear();
            }
            entries.insert(row.id.clone(), (std::time::Instant::now(), row));
        }
    }

    pub fn evict(&self, id: &str) {
        if let Ok(mut entries) = self.entries.lock() {
            entries.remove(id);
        }
    }
}

fn secret_opens(row: &DirectoryRow, token: &str, at: NaiveDateTime) -> bool {
    let current = secrets::matches_digest(token, &row.scim_secret_hash);
    let previous = match (&row.previous_secret_hash, row.previous_secret_expires_at) {
        (Some(hash), Some(expires)) if at < expires => secrets::matches_digest(token, hash),
        _ => false,
    };
    current | previous
}
