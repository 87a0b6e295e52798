//! Delegated authorizations (DESIGN.md §6.5): `POST /v1/service_account_authorizations`
//! queues one durable job per email; the worker (`connect::worker`) looks each up at the
//! provider, provisions the account and sends the signed callback.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::{json, Value};

use crate::error::{Error, Rejected};
use crate::store::authorization_jobs::{self as store, JobRow, LOOKUP};
use crate::store::service_accounts::ServiceAccountRow;
use crate::store::{self as db, write_tx, AnyConnection};

/// Most authorizations in one batch (pycronofy's documented limit).
pub const MAX_BATCH: usize = 50;
/// Most authorizations one service account may have pending: beyond, `429` (an
/// integrator's loop cannot fill the table faster than providers answer).
pub const MAX_PENDING: i64 = 20_000;

/// One requested authorization. `state` may be absent or `null` (SDKs send both).
#[derive(Debug, Clone, Deserialize)]
pub struct Requested {
    pub email: Option<String>,
    pub callback_url: Option<String>,
    pub scope: Option<String>,
    pub state: Option<String>,
}

/// The body: one authorization, or `{"service_account_authorizations": [...]}`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum Body {
    Batch {
        service_account_authorizations: Vec<Requested>,
        /// pycronofy sends a top-level `state` beside the list; each item's own wins.
        #[serde(default)]
        state: Option<String>,
    },
    One(Requested),
}

/// A validation failure in Cronofy's shape: 422 `{"errors": {field: [{key, description}]}}`.
#[derive(Debug)]
pub struct Invalid(pub BTreeMap<String, Vec<(String, String)>>);

impl Invalid {
    pub fn to_json(&self) -> Value {
        let mut errors = serde_json::Map::new();
        for (field, list) in &self.0 {
            errors.insert(
                field.clone(),
                Value::Array(
                    list.iter()
                        .map(|(k, d)| json!({"key": k, "description": d}))
                        .collect(),
                ),
            );
        }
        json!({ "errors": errors })
    }
}

/// A checked authorization, ready to queue.
#[derive(Debug, Clone)]
pub struct Checked {
    pub email: String,
    pub callback_url: String,
    pub scope: String,
    pub state: Option<String>,
}

fn looks_like_email(s: &str) -> bool {
    let Some((local, domain)) = s.rsplit_once('@') else {
        return false;
    };
    !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && s.len() <= 254
        && !s.chars().any(|c| c.is_whitespace() || c.is_control())
}

/// Checks every item; the field names of errors are prefixed with the item's index in a
/// batch (`service_account_authorizations.3.email`).
pub fn check(body: Body, allow_private: bool) -> Result<Vec<Checked>, Invalid> {
    let (items, batch, shared_state) = match body {
        Body::Batch {
            service_account_authorizations,
            state,
        } => (service_account_authorizations, true, state),
        Body::One(r) => (vec![r], false, None),
    };
    let mut errors: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
    if items.is_empty() || items.len() > MAX_BATCH {
        errors.insert(
            "service_account_authorizations".into(),
            vec![(
                "errors.invalid".into(),
                format!("must hold 1 to {MAX_BATCH} authorizations"),
            )],
        );
        return Err(Invalid(errors));
    }
    let mut out = Vec::with_capacity(items.len());
    for (i, r) in items.into_iter().enumerate() {
        let name = |f: &str| {
            if batch {
                format!("service_account_authorizations.{i}.{f}")
            } else {
                f.to_string()
            }
        };
        let mut bad = |f: &str, key: &str, d: &str| {
            errors
                .entry(name(f))
                .or_default()
                .push((key.into(), d.into()))
        };
        let email = r.email.as_deref().map(str::trim).unwrap_or_default();
        if email.is_empty() {
            bad("email", "errors.required", "required");
        } else if !looks_like_email(email) {
            bad("email", "errors.invalid", "not an email address");
        }
        let callback = r.callback_url.as_deref().map(str::trim).unwrap_or_default();
        if callback.is_empty() {
            bad("callback_url", "errors.required", "required");
        } else if callback.chars().count() > crate::scim::limits::MAX_INDEXED_CHARS {
            bad("callback_url", "errors.invalid", "too long");
        } else if let Err(e) = crate::outbound::safety::check_url(callback, allow_private) {
            // The same address checks as webhook URLs; the resolver checks again at send.
            bad("callback_url", "errors.invalid", &e.to_string());
        }
        let scope = crate::oauth::request::normalize_scope(r.scope.as_deref().unwrap_or_default());
        if scope.is_empty() {
            bad("scope", "errors.required", "required");
        } else if scope.chars().count() > crate::oauth::request::MAX_SCOPE_CHARS {
            bad("scope", "errors.invalid", "too long");
        }
        let state = r.state.or_else(|| shared_state.clone());
        if state
            .as_ref()
            .is_some_and(|s| s.chars().count() > crate::oauth::request::MAX_STATE_CHARS)
        {
            bad("state", "errors.invalid", "too long");
        }
        out.push(Checked {
            email: email.to_lowercase(),
            callback_url: callback.to_string(),
            scope,
            state,
        });
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(Invalid(errors))
    }
}

/// Queues the checked authorizations for a service account, due now.
pub fn enqueue(
    conn: &mut AnyConnection,
    service_account_id: &str,
    items: &[Checked],
) -> Result<(), Error> {
    let service_account: ServiceAccountRow =
        crate::store::service_accounts::get(conn, service_account_id)?
            .ok_or_else(|| Rejected::unauthorized("unknown service account"))?;
    if !service_account.is_active() {
        return Err(Rejected::unauthorized("the service account was revoked").into());
    }
    let pending =
        crate::store::authorization_jobs::pending_of_service_account(conn, service_account_id)?;
    if pending + items.len() as i64 > MAX_PENDING {
        return Err(Rejected::new(
            429,
            format!("{pending} authorizations of this service account are pending (at most {MAX_PENDING}): retry later"),
        )
        .into());
    }
    let now = db::now();
    let rows: Vec<JobRow> = items
        .iter()
        .map(|c| JobRow {
            id: uuid::Uuid::now_v7().to_string(),
            application_id: service_account.application_id.clone(),
            service_account_id: service_account.id.clone(),
            email: c.email.clone(),
            callback_url: c.callback_url.clone(),
            scope: c.scope.clone(),
            state: c.state.clone(),
            status: LOOKUP.into(),
            attempts: 0,
            next_attempt_at: now,
            lease_until: None,
            lease_owner: None,
            callback_body: None,
            account_id: None,
            last_error: None,
            created_at: now,
            updated_at: now,
        })
        .collect();
    write_tx(conn, |c| store::insert(c, &rows))
}

/// A job that provisions an existing account again through `service_account_id`'s unit
/// (its calendar account was unlinked): no callback (the integrator asked long ago);
/// not found anywhere marks the account `not_found`.
pub fn reprovision_job(
    account: &crate::store::accounts::AccountRow,
    service_account_id: &str,
    now: chrono::NaiveDateTime,
) -> JobRow {
    JobRow {
        id: uuid::Uuid::now_v7().to_string(),
        application_id: account.application_id.clone(),
        service_account_id: service_account_id.into(),
        email: account.email.clone(),
        callback_url: String::new(),
        scope: account.scope.clone(),
        state: None,
        status: LOOKUP.into(),
        attempts: 0,
        next_attempt_at: now,
        lease_until: None,
        lease_owner: None,
        callback_body: None,
        account_id: Some(account.id.clone()),
        last_error: None,
        created_at: now,
        updated_at: now,
    }
}
