//! SCIM drives provisioning (DESIGN.md §6.5): a directory attached to an organizational
//! unit is followed through its numbered events with a cursor of its own (never a hook
//! in the SCIM request: a SCIM response never waits for a provider). `user.created` /
//! `user.updated` with an email and active provision the user's account through the
//! unit's calendar accounts in link order (with conferencing profiles by email), an
//! email change provisions the new address and revokes the old, `active: false`
//! suspends, active again resumes, `user.deleted` revokes. Each outcome, its
//! `account.*` event and the cursor's advance are one write transaction, so a restart
//! resumes exactly where it stopped and an IdP that repeats a request changes nothing.
//! Attaching starts from the directory's first event: the backfill is the replay.
//! A provider that is down keeps the event pending (the cursor waits, with the error
//! visible in the admin API) and is retried with backoff.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::NaiveDateTime;
use serde_json::{json, Value};
use tokio::sync::Notify;

use crate::connect::provider_access::{Person, Providers};
use crate::connect::worker::{keep_profiles, provision_account};
use crate::directory::events::{
    self, ACCOUNT_PROVISIONED, ACCOUNT_PROVISIONING_FAILED, ACCOUNT_REVOKED, ACCOUNT_SUSPENDED,
    CONFERENCING_PROFILE_PROVISIONED, CONFERENCING_PROFILE_REVOKED,
};
use crate::error::Error;
use crate::providers::{backoff, ConferencingUser, ProviderError};
use crate::store::accounts::{self as accounts, ACTIVE, SUSPENDED};
use crate::store::events::EventRow;
use crate::store::provisioning::{self as store, CursorRow, MappingRow};
use crate::store::service_accounts::{ServiceAccountRow, CALENDARS, CONFERENCING};
use crate::store::{self as db, write_tx, AnyConnection, Db};

/// Events read per round of one directory.
const BATCH: i64 = 200;

#[derive(Debug, Clone)]
pub struct Settings {
    /// Directories followed at once.
    pub concurrency: usize,
    pub lease: Duration,
    /// Safety net: cursors of directories written by other instances are looked at this
    /// often.
    pub poll: Duration,
}

/// Wakes the follower for directories whose events were just numbered.
#[derive(Clone)]
pub struct Handle {
    wake: Arc<Notify>,
    dirty: Arc<Mutex<HashSet<String>>>,
    attached: Arc<Mutex<HashSet<String>>>,
}

impl Handle {
    /// New events of `directory` were numbered.
    pub fn directory(&self, directory: &str) {
        self.dirty
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(directory.to_string());
        self.wake.notify_one();
    }

    /// Events of directories not named were numbered: every attached one looks.
    pub fn all(&self) {
        let known: Vec<String> = self
            .attached
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .cloned()
            .collect();
        self.dirty
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend(known);
        self.wake.notify_one();
    }

    /// `directory` was just attached to a unit (here): followed at once.
    pub fn attached(&self, directory: &str) {
        self.attached
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(directory.to_string());
        self.directory(directory);
    }
}

/// Told when the follower committed events of a directory, so they are numbered and
/// delivered now (the sequencer's wake-up).
pub type Committed = Arc<dyn Fn(&str) + Send + Sync>;

struct Follower {
    committed: Committed,
    db: Db,
    providers: Arc<Providers>,
    settings: Settings,
    owner: String,
    /// Directories known to be attached (learned from claims and attachments here): a
    /// write to another directory costs the follower nothing.
    attached: Arc<Mutex<HashSet<String>>>,
    dirty: Arc<Mutex<HashSet<String>>>,
    /// A pending event's retry fell due: the next round claims due cursors.
    retry_due: std::sync::atomic::AtomicBool,
    wake: Arc<Notify>,
}

pub fn start(
    db: Db,
    providers: Arc<Providers>,
    settings: Settings,
    committed: Committed,
) -> Handle {
    let handle = Handle {
        wake: Arc::new(Notify::new()),
        dirty: Arc::default(),
        attached: Arc::default(),
    };
    let f = Arc::new(Follower {
        committed,
        db,
        providers,
        owner: format!("prov-{}", uuid::Uuid::new_v4().simple()),
        settings,
        attached: handle.attached.clone(),
        dirty: handle.dirty.clone(),
        retry_due: std::sync::atomic::AtomicBool::new(false),
        wake: handle.wake.clone(),
    });
    tokio::spawn(run(f, handle.wake.clone()));
    handle
}

async fn run(f: Arc<Follower>, wake: Arc<Notify>) {
    let busy: Arc<Mutex<HashSet<String>>> = Arc::default();
    // Woken while a round of theirs ran: a new round follows it (the running one may
    // have read before the new events were numbered).
    let rerun: Arc<Mutex<HashSet<String>>> = Arc::default();
    let mut last_sweep: Option<std::time::Instant> = None;
    loop {
        let sweep = last_sweep.is_none_or(|t| t.elapsed() >= f.settings.poll)
            | f.retry_due.swap(false, std::sync::atomic::Ordering::SeqCst);
        let wanted: Vec<String> = f
            .dirty
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain()
            .collect();
        let (owner, lease) = (f.owner.clone(), f.settings.lease);
        let limit = f.settings.concurrency.max(1) as i64;
        let claimed = if sweep {
            last_sweep = Some(std::time::Instant::now());
            f.db.run(move |c| {
                let now = db::now();
                store::claim(c, &owner, now, db::later(now, lease), limit)
            })
            .await
        } else if wanted.is_empty() {
            Ok(Vec::new())
        } else {
            let known: Vec<String> = {
                let attached = f.attached.lock().unwrap_or_else(|p| p.into_inner());
                let running = busy.lock().unwrap_or_else(|p| p.into_inner());
                let mut again = rerun.lock().unwrap_or_else(|p| p.into_inner());
                wanted
                    .into_iter()
                    .filter(|d| attached.contains(d))
                    .filter(|d| !running.contains(d) || !again.insert(d.clone()))
                    .collect()
            };
            if known.is_empty() {
                Ok(Vec::new())
            } else {
                f.db.run(move |c| {
                    let now = db::now();
                    store::claim_these(c, &owner, &known, db::later(now, lease))
                })
                .await
            }
        };
        match claimed {
            Ok(cursors) => {
                for cursor in cursors {
                    f.attached
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .insert(cursor.directory_id.clone());
                    if !busy
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .insert(cursor.directory_id.clone())
                    {
                        continue;
                    }
                    let (f, busy, rerun, wake) =
                        (f.clone(), busy.clone(), rerun.clone(), wake.clone());
                    tokio::spawn(async move {
                        let id = cursor.directory_id.clone();
                        if let Err(e) = f.follow(cursor).await {
                            tracing::warn!(directory = %id, error = %e, "provisioning round failed");
                        }
                        busy.lock().unwrap_or_else(|p| p.into_inner()).remove(&id);
                        if rerun.lock().unwrap_or_else(|p| p.into_inner()).remove(&id) {
                            f.dirty.lock().unwrap_or_else(|p| p.into_inner()).insert(id);
                        }
                        wake.notify_one();
                    });
                }
            }
            Err(e) => tracing::warn!(error = %e, "could not claim provisioning cursors"),
        }
        let nap = f
            .settings
            .poll
            .saturating_sub(last_sweep.map(|t| t.elapsed()).unwrap_or_default())
            .max(Duration::from_millis(20));
        tokio::select! {
            _ = wake.notified() => {}
            _ = tokio::time::sleep(nap) => {}
        }
    }
}

/// What one event needs done.
enum Step {
    /// Nothing to do (or a user without email: `skipped`).
    Advance {
        skipped: bool,
    },
    Provision {
        user_id: String,
        email: String,
        previous: Option<MappingRow>,
    },
    Suspend(MappingRow),
    Resume(MappingRow),
    Revoke(MappingRow),
}

/// What a user event carries: its id, its email (lower-cased), whether it is active.
fn user_of(event: &EventRow) -> Option<(String, Option<String>, bool)> {
    let v = event.to_json();
    let data = v.get("data")?;
    let id = data.get("id")?.as_str()?.to_string();
    let email = data
        .get("email")
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .map(str::to_lowercase);
    let active = data.get("active").and_then(Value::as_bool).unwrap_or(true);
    Some((id, email, active))
}

impl Follower {
    /// Wakes this follower when a pending event's retry falls due (no poll needed).
    fn retry_at(self: &Arc<Self>, at: NaiveDateTime) {
        // A little after: the claim compares with the database's millisecond clock.
        let wait = (at - db::now()).to_std().unwrap_or_default() + Duration::from_millis(20);
        let f = Arc::clone(self);
        tokio::spawn(async move {
            tokio::time::sleep(wait).await;
            f.retry_due.store(true, std::sync::atomic::Ordering::SeqCst);
            f.wake.notify_one();
        });
    }

    /// Works through a claimed directory's events until it is caught up or an event
    /// must wait (a provider that is down); gives the cursor back.
    async fn follow(self: &Arc<Self>, cursor: CursorRow) -> Result<(), Error> {
        let directory = cursor.directory_id.clone();
        let mut last = cursor.last_sequence;
        loop {
            let dir = directory.clone();
            let batch = self
                .db
                .run(move |c| crate::store::events::list_after(c, &dir, last, BATCH))
                .await?;
            if batch.is_empty() {
                // Caught up: due again at the safety poll (or when woken).
                let (dir, owner) = (directory.clone(), self.owner.clone());
                let next = db::later(db::now(), self.settings.poll);
                return self
                    .db
                    .run(move |c| store::release(c, &dir, &owner, next, None))
                    .await;
            }
            for event in batch {
                let seq = event.sequence.unwrap_or(last);
                match self.apply(&cursor, &event).await {
                    Ok(true) => {
                        (self.committed)(&directory);
                        last = seq;
                    }
                    Ok(false) => last = seq,
                    Err(Pending::Provider(e)) => {
                        let attempts = cursor.attempts + 1;
                        let at =
                            db::later(db::now(), backoff((attempts - 1) as u32, retry_after(&e)));
                        self.retry_at(at);
                        let (dir, owner, why) =
                            (directory.clone(), self.owner.clone(), e.to_string());
                        return self
                            .db
                            .run(move |c| {
                                store::release(c, &dir, &owner, at, Some((attempts, why)))
                            })
                            .await;
                    }
                    Err(Pending::Failed(e)) => {
                        let attempts = cursor.attempts + 1;
                        let at = db::later(db::now(), backoff((attempts - 1) as u32, None));
                        self.retry_at(at);
                        let (dir, owner, why) =
                            (directory.clone(), self.owner.clone(), e.to_string());
                        self.db
                            .run(move |c| {
                                store::release(c, &dir, &owner, at, Some((attempts, why)))
                            })
                            .await?;
                        return Err(e);
                    }
                }
            }
        }
    }

    /// One event: decided, provider calls made, then recorded with the cursor's advance
    /// in one transaction. True when it recorded events.
    async fn apply(&self, cursor: &CursorRow, event: &EventRow) -> Result<bool, Pending> {
        let (dir, ev) = (cursor.directory_id.clone(), event.clone());
        let step = self
            .db
            .run(move |c| decide(c, &dir, &ev))
            .await
            .map_err(Pending::Failed)?;
        let seq = event.sequence.unwrap_or(cursor.last_sequence);
        let unit = cursor.organizational_unit_id.clone();
        let lease = self.settings.lease;
        let (dir, owner, at) = (
            cursor.directory_id.clone(),
            self.owner.clone(),
            event.created_at,
        );
        match step {
            Step::Provision {
                user_id,
                email,
                previous,
            } => {
                let u = unit.clone();
                let members = self
                    .db
                    .run(move |c| crate::store::organizational_units::members(c, &u))
                    .await
                    .map_err(Pending::Failed)?;
                let found = self
                    .walk(&members, &email)
                    .await
                    .map_err(Pending::Provider)?;
                let profiles = match &found {
                    Some(_) => self
                        .conferencing(&members, &email)
                        .await
                        .map_err(Pending::Provider)?,
                    None => Vec::new(),
                };
                self.db
                    .run(move |c| {
                        write_tx(c, |c| {
                            record_provision(
                                c, &dir, &unit, &user_id, &email, previous, found, &profiles, at,
                            )?;
                            advance(c, &dir, &owner, seq, false, lease)
                        })
                    })
                    .await
                    .map(|_| true)
                    .map_err(Pending::Failed)
            }
            other => {
                let recorded = !matches!(other, Step::Advance { .. });
                self.db
                    .run(move |c| {
                        write_tx(c, |c| {
                            let skipped = matches!(other, Step::Advance { skipped: true });
                            record_simple(c, &dir, other)?;
                            advance(c, &dir, &owner, seq, skipped, lease)
                        })
                    })
                    .await
                    .map(|_| recorded)
                    .map_err(Pending::Failed)
            }
        }
    }

    /// The first calendar account of the unit (link order) that knows `email`.
    async fn walk(
        &self,
        members: &[ServiceAccountRow],
        email: &str,
    ) -> Result<Option<(ServiceAccountRow, Person)>, ProviderError> {
        for ser in members.iter().filter(|s| s.capability == CALENDARS) {
            match self.providers.lookup(ser, email).await {
                Ok(Some(person)) => return Ok(Some((ser.clone(), person))),
                Ok(None) => {}
                Err(e) if e.is_retryable() => return Err(e),
                Err(e) => {
                    tracing::warn!(service_account = %ser.id, error = %e, "calendar lookup refused");
                }
            }
        }
        Ok(None)
    }

    async fn conferencing(
        &self,
        members: &[ServiceAccountRow],
        email: &str,
    ) -> Result<Vec<(ServiceAccountRow, ConferencingUser)>, ProviderError> {
        let mut out = Vec::new();
        for ser in members.iter().filter(|s| s.capability == CONFERENCING) {
            match self.providers.conferencing_lookup(ser, email).await {
                Ok(Some(user)) => out.push((ser.clone(), user)),
                Ok(None) => {}
                Err(e) if e.is_retryable() => return Err(e),
                Err(e) => {
                    tracing::warn!(service_account = %ser.id, error = %e, "conferencing lookup refused");
                }
            }
        }
        Ok(out)
    }
}

/// Why an event is not done yet.
enum Pending {
    /// A provider is down (429/5xx): the event waits, retried with backoff.
    Provider(ProviderError),
    /// Our side failed (the database): retried with backoff.
    Failed(Error),
}

fn retry_after(e: &ProviderError) -> Option<Duration> {
    match e {
        ProviderError::Unavailable { retry_after, .. } => *retry_after,
        _ => None,
    }
}

/// Advances the cursor and extends the lease (a long backfill keeps its directory).
fn advance(
    c: &mut AnyConnection,
    dir: &str,
    owner: &str,
    seq: i64,
    skipped: bool,
    lease: Duration,
) -> Result<(), Error> {
    if store::advance(c, dir, owner, seq, skipped, db::later(db::now(), lease))? {
        Ok(())
    } else {
        // Another instance holds the directory now: nothing of this is kept.
        Err(Error::Internal("the provisioning lease was lost".into()))
    }
}

/// What an event asks for, given what was provisioned for its user so far.
fn decide(c: &mut AnyConnection, dir: &str, event: &EventRow) -> Result<Step, Error> {
    let is_user = matches!(
        event.event_type.as_str(),
        events::USER_CREATED | events::USER_UPDATED | events::USER_DELETED
    );
    let Some((user_id, email, active)) = is_user.then(|| user_of(event)).flatten() else {
        return Ok(Step::Advance { skipped: false });
    };
    let mapping = store::mapping(c, dir, &user_id)?;
    let account = match &mapping {
        Some(m) => accounts::get(c, &m.account_id)?,
        None => None,
    };
    if event.event_type == events::USER_DELETED {
        return Ok(match mapping {
            Some(m) => Step::Revoke(m),
            None => Step::Advance { skipped: false },
        });
    }
    let Some(email) = email else {
        return Ok(Step::Advance {
            skipped: mapping.is_none(),
        });
    };
    let state = account.as_ref().map(|a| a.state.as_str());
    Ok(match (mapping, active, state) {
        (Some(m), false, Some(ACTIVE)) => Step::Suspend(m),
        (_, false, _) => Step::Advance { skipped: false },
        (Some(m), true, Some(s)) if m.email == email && s == ACTIVE => {
            Step::Advance { skipped: false }
        }
        (Some(m), true, Some(SUSPENDED)) if m.email == email => Step::Resume(m),
        (previous, true, _) => Step::Provision {
            user_id,
            email,
            previous,
        },
    })
}

fn data(
    m: &MappingRow,
    account: Option<&crate::store::accounts::AccountRow>,
    extra: Value,
) -> Value {
    let mut d = json!({
        "account_id": m.account_id,
        "email": m.email,
        "user_id": m.user_id,
        "provider": account.map(|a| a.provider.clone()),
        "profile_id": account.map(|a| a.profile_id.clone()),
    });
    if let (Value::Object(d), Value::Object(e)) = (&mut d, extra) {
        d.extend(e);
    }
    d
}

fn directory_row(
    c: &mut AnyConnection,
    dir: &str,
) -> Result<crate::store::directories::DirectoryRow, Error> {
    crate::store::directories::get(c, dir)?
        .ok_or_else(|| Error::Internal(format!("directory {dir} is gone")))
}

/// Suspend, resume, revoke, or nothing.
fn record_simple(c: &mut AnyConnection, dir: &str, step: Step) -> Result<(), Error> {
    let now = db::now();
    match step {
        Step::Advance { .. } | Step::Provision { .. } => Ok(()),
        Step::Suspend(m) => {
            accounts::set_state(c, std::slice::from_ref(&m.account_id), SUSPENDED, now)?;
            let a = accounts::get(c, &m.account_id)?;
            let d = directory_row(c, dir)?;
            events::record(c, &d, ACCOUNT_SUSPENDED, data(&m, a.as_ref(), json!({})))?;
            Ok(())
        }
        Step::Resume(m) => {
            accounts::set_state(c, std::slice::from_ref(&m.account_id), ACTIVE, now)?;
            let a = accounts::get(c, &m.account_id)?;
            let d = directory_row(c, dir)?;
            events::record(
                c,
                &d,
                ACCOUNT_PROVISIONED,
                data(&m, a.as_ref(), json!({"resumed": true})),
            )?;
            Ok(())
        }
        Step::Revoke(m) => {
            revoke(c, dir, &m, now)?;
            store::remove_mapping(c, dir, &m.user_id)
        }
    }
}

/// Revokes a user's account, its tokens and conferencing profiles, with the events.
fn revoke(
    c: &mut AnyConnection,
    dir: &str,
    m: &MappingRow,
    now: NaiveDateTime,
) -> Result<(), Error> {
    let a = accounts::get(c, &m.account_id)?;
    accounts::set_state(
        c,
        std::slice::from_ref(&m.account_id),
        accounts::REVOKED,
        now,
    )?;
    crate::store::tokens::revoke_subjects(c, std::slice::from_ref(&m.account_id), now)?;
    let profiles = crate::store::organizational_units::profiles_of(c, &m.account_id)?;
    crate::store::organizational_units::revoke_profiles(c, &m.account_id, &[], now)?;
    let d = directory_row(c, dir)?;
    for p in profiles.iter().filter(|p| p.state == ACTIVE) {
        events::record(
            c,
            &d,
            CONFERENCING_PROFILE_REVOKED,
            data(
                m,
                a.as_ref(),
                json!({"conferencing_profile_id": p.id, "conferencing_provider": p.provider}),
            ),
        )?;
    }
    events::record(c, &d, ACCOUNT_REVOKED, data(m, a.as_ref(), json!({})))?;
    Ok(())
}

/// The outcome of a provisioning lookup, recorded.
#[allow(clippy::too_many_arguments)]
fn record_provision(
    c: &mut AnyConnection,
    dir: &str,
    unit: &str,
    user_id: &str,
    email: &str,
    previous: Option<MappingRow>,
    found: Option<(ServiceAccountRow, Person)>,
    profiles: &[(ServiceAccountRow, ConferencingUser)],
    at: NaiveDateTime,
) -> Result<(), Error> {
    let now = db::now();
    let d = directory_row(c, dir)?;
    let app = crate::store::organizational_units::get(c, unit)?
        .ok_or_else(|| Error::Internal(format!("unit {unit} is gone")))?
        .application_id;
    // An email change: the old address's account goes.
    if let Some(old) = previous.as_ref().filter(|m| m.email != email) {
        revoke(c, dir, old, now)?;
    }
    let Some((ser, person)) = found else {
        events::record(
            c,
            &d,
            ACCOUNT_PROVISIONING_FAILED,
            json!({"email": email, "user_id": user_id, "reason": "not_found", "description": "no calendar account of the unit knows this email"}),
        )?;
        return Ok(());
    };
    let Some(account) = provision_account(c, &app, email, "read_write", &ser, &person, at)? else {
        events::record(
            c,
            &d,
            ACCOUNT_PROVISIONING_FAILED,
            json!({"email": email, "user_id": user_id, "reason": "revoked", "description": "the account was revoked by the integrator"}),
        )?;
        return Ok(());
    };
    let before: Vec<String> = crate::store::organizational_units::profiles_of(c, &account)?
        .into_iter()
        .filter(|p| p.state == ACTIVE)
        .map(|p| p.service_account_id)
        .collect();
    keep_profiles(c, &account, profiles)?;
    let m = MappingRow {
        directory_id: dir.into(),
        user_id: user_id.into(),
        account_id: account.clone(),
        email: email.into(),
    };
    store::set_mapping(c, &m)?;
    let a = accounts::get(c, &account)?;
    let now_profiles = crate::store::organizational_units::profiles_of(c, &account)?;
    let ids: Vec<&str> = now_profiles
        .iter()
        .filter(|p| p.state == ACTIVE)
        .map(|p| p.id.as_str())
        .collect();
    events::record(
        c,
        &d,
        ACCOUNT_PROVISIONED,
        data(&m, a.as_ref(), json!({"conferencing_profile_ids": ids})),
    )?;
    for p in now_profiles
        .iter()
        .filter(|p| p.state == ACTIVE && !before.contains(&p.service_account_id))
    {
        events::record(
            c,
            &d,
            CONFERENCING_PROFILE_PROVISIONED,
            data(
                &m,
                a.as_ref(),
                json!({"conferencing_profile_id": p.id, "conferencing_provider": p.provider}),
            ),
        )?;
    }
    Ok(())
}

/// The admin API's view of a directory's provisioning: where its cursor is, how far
/// behind, and its users' accounts by state.
pub fn state_json(c: &mut AnyConnection, dir: &str) -> Result<Value, Error> {
    let last_sequence = crate::store::directories::get(c, dir)?
        .ok_or_else(|| crate::error::Rejected::not_found("directory not found"))?
        .last_event_sequence;
    let Some(cursor) = store::get(c, dir)? else {
        return Ok(Value::Null);
    };
    let counts: serde_json::Map<String, Value> = store::counts(c, dir)?
        .into_iter()
        .map(|(state, n)| (state, json!(n)))
        .collect();
    Ok(json!({
        "organizational_unit_id": cursor.organizational_unit_id,
        "cursor": cursor.last_sequence,
        "lag": (last_sequence - cursor.last_sequence).max(0),
        "pending_error": cursor.last_error,
        "attempts": cursor.attempts,
        "skipped": cursor.skipped,
        "accounts": counts,
    }))
}
