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

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::NaiveDateTime;
use futures_util::StreamExt;
use serde_json::{json, Value};
use tokio::sync::Notify;

use crate::connect::provider_access::{Person, Providers};
use crate::connect::worker::{keep_profiles, profile_row, provision_account};
use crate::directory::events::{
    self, ACCOUNT_PROVISIONED, ACCOUNT_PROVISIONING_FAILED, ACCOUNT_REVOKED, ACCOUNT_SUSPENDED,
    CONFERENCING_PROFILE_PROVISIONED, CONFERENCING_PROFILE_REVOKED,
};
use crate::error::Error;
use crate::providers::{backoff, ConferencingUser, ProviderError};
use crate::store::accounts::{self as accounts, AccountRow, ACTIVE, SUSPENDED};
use crate::store::directories::DirectoryRow;
use crate::store::events::EventRow;
use crate::store::provisioning::{self as store, CursorRow, IssueRow, MappingRow};
use crate::store::service_accounts::{ServiceAccountRow, CALENDARS, CONFERENCING};
use crate::store::{self as db, write_tx, AnyConnection, Db};

/// Events read per round of one directory.
const BATCH: i64 = 200;

#[derive(Debug, Clone)]
pub struct Settings {
    /// Directories followed at once.
    pub concurrency: usize,
    /// Provider lookups one directory makes at once (its events are asked about in
    /// chunks of this many).
    pub lookups: usize,
    pub lease: Duration,
    /// Safety net: cursors of directories written by other instances are looked at this
    /// often.
    pub poll: Duration,
}

/// Wakes the follower for directories whose events were just numbered.
#[derive(Clone)]
pub struct Handle {
    wake: Arc<Notify>,
    dirty: Arc<Mutex<Dirty>>,
    attached: Arc<Mutex<HashSet<String>>>,
}

/// Directories to look at, each with whether another instance must be told when this
/// one cannot claim it (it was written here, and another instance may hold its cursor).
type Dirty = HashMap<String, bool>;

impl Handle {
    fn mark(&self, directories: impl IntoIterator<Item = String>, tell: bool) {
        let mut dirty = self.dirty.lock().unwrap_or_else(|p| p.into_inner());
        for d in directories {
            *dirty.entry(d).or_default() |= tell;
        }
        drop(dirty);
        self.wake.notify_one();
    }

    /// New events of `directory` were numbered here.
    pub fn directory(&self, directory: &str) {
        self.mark([directory.to_string()], true);
    }

    /// Another instance attached `directory`, or numbered events of it that it could
    /// not follow (it does not hold the cursor): this one may.
    pub fn heard(&self, directory: &str) {
        self.attached
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(directory.to_string());
        self.mark([directory.to_string()], false);
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
        self.mark(known, true);
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
    /// Directories known to be attached (learned at each sweep and from attachments
    /// here): a write to another directory costs the follower nothing.
    attached: Arc<Mutex<HashSet<String>>>,
    dirty: Arc<Mutex<Dirty>>,
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
        let wanted: Dirty = f
            .dirty
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain()
            .collect();
        let (owner, lease) = (f.owner.clone(), f.settings.lease);
        let limit = f.settings.concurrency.max(1) as i64;
        let mut cursors = Vec::new();
        if sweep {
            last_sweep = Some(std::time::Instant::now());
            let owner = owner.clone();
            let swept =
                f.db.run(move |c| {
                    let now = db::now();
                    let attached = store::attached(c)?;
                    Ok((
                        attached,
                        store::claim(c, &owner, now, db::later(now, lease), limit)?,
                    ))
                })
                .await;
            match swept {
                Ok((attached, due)) => {
                    // What every instance attached or detached, learned.
                    *f.attached.lock().unwrap_or_else(|p| p.into_inner()) =
                        attached.into_iter().collect();
                    cursors = due;
                }
                Err(e) => tracing::warn!(error = %e, "could not claim provisioning cursors"),
            }
        }
        let known: Vec<(String, bool)> = {
            let attached = f.attached.lock().unwrap_or_else(|p| p.into_inner());
            let running = busy.lock().unwrap_or_else(|p| p.into_inner());
            let mut again = rerun.lock().unwrap_or_else(|p| p.into_inner());
            wanted
                .into_iter()
                .filter(|(d, _)| attached.contains(d))
                .filter(|(d, _)| !cursors.iter().any(|c: &CursorRow| &c.directory_id == d))
                .filter(|(d, _)| !running.contains(d) || !again.insert(d.clone()))
                .collect()
        };
        if !known.is_empty() {
            let ids: Vec<String> = known.iter().map(|(d, _)| d.clone()).collect();
            let owner = owner.clone();
            let claimed =
                f.db.run(move |c| store::claim_these(c, &owner, &ids, db::later(db::now(), lease)))
                    .await;
            match claimed {
                Ok(got) => {
                    // Written here but held by another instance (or waiting for a retry):
                    // the holder is told, so it follows these events now, not at its poll.
                    let tell: Vec<String> = known
                        .into_iter()
                        .filter(|(d, tell)| *tell && !got.iter().any(|c| &c.directory_id == d))
                        .map(|(d, _)| d)
                        .collect();
                    cursors.extend(got);
                    if !tell.is_empty() {
                        if let Err(e) = f.db.run(move |c| store::tell_others(c, &tell)).await {
                            tracing::warn!(error = %e, "could not tell other instances");
                        }
                    }
                }
                Err(e) => tracing::warn!(error = %e, "could not claim provisioning cursors"),
            }
        }
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
            let (f, busy, rerun, wake) = (f.clone(), busy.clone(), rerun.clone(), wake.clone());
            tokio::spawn(async move {
                let id = cursor.directory_id.clone();
                if let Err(e) = f.follow(cursor).await {
                    tracing::warn!(directory = %id, error = %e, "provisioning round failed");
                }
                busy.lock().unwrap_or_else(|p| p.into_inner()).remove(&id);
                if rerun.lock().unwrap_or_else(|p| p.into_inner()).remove(&id) {
                    f.dirty
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .insert(id, true);
                }
                wake.notify_one();
            });
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
    /// Nothing.
    Advance,
    /// A user without an email and without an account: skipped, and counted.
    Skip {
        user_id: String,
    },
    /// A deleted user that never had an account: forgotten.
    Forget {
        user_id: String,
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

/// What the unit's providers answered for one email: the first calendar account that
/// knows it (link order) and, then, its conferencing profiles.
struct Found {
    calendar: Option<(ServiceAccountRow, Person)>,
    conferencing: Vec<(ServiceAccountRow, ConferencingUser)>,
}

/// The answers a round asked for, by email.
type Answers = HashMap<String, Result<Found, ProviderError>>;

/// How far one transaction got through the events it was given.
struct Recorded {
    /// Events done, from the front.
    done: usize,
    /// Whether it recorded `account.*` events (the sequencer is told).
    events: bool,
    /// The next event needs this email's answer: none yet, or an error.
    needs: Option<String>,
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
    /// must wait (a provider that is down); gives the cursor back. The providers are
    /// asked about a chunk of events at once (`Settings::lookups` at a time); the
    /// outcomes are then recorded in event order, a chunk per transaction, with the
    /// cursor's advance — so a crash anywhere keeps every outcome exactly once.
    async fn follow(self: &Arc<Self>, cursor: CursorRow) -> Result<(), Error> {
        let directory = cursor.directory_id.clone();
        let unit = cursor.organizational_unit_id.clone();
        let mut last = cursor.last_sequence;
        let mut attempts = cursor.attempts;
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
            let u = unit.clone();
            let members = match self
                .db
                .run(move |c| crate::store::organizational_units::members(c, &u))
                .await
            {
                Ok(m) => m,
                Err(e) => return self.wait(&directory, attempts, Pending::Failed(e)).await,
            };
            for chunk in batch.chunks(self.settings.lookups.clamp(1, BATCH as usize)) {
                let mut answers = match self.prefetch(&directory, chunk, &members).await {
                    Ok(a) => a,
                    Err(e) => return self.wait(&directory, attempts, Pending::Failed(e)).await,
                };
                let mut rest = chunk.to_vec();
                while !rest.is_empty() {
                    let (dir, unit, owner, lease, events) = (
                        directory.clone(),
                        unit.clone(),
                        self.owner.clone(),
                        self.settings.lease,
                        rest.clone(),
                    );
                    let result = self
                        .db
                        .run(move |c| {
                            let r = record(c, &dir, &unit, &owner, lease, &events, &answers)?;
                            Ok((r, answers))
                        })
                        .await;
                    let recorded = match result {
                        Ok((recorded, back)) => {
                            answers = back;
                            recorded
                        }
                        Err(e) => return self.wait(&directory, attempts, Pending::Failed(e)).await,
                    };
                    if recorded.done > 0 {
                        last = rest[recorded.done - 1].sequence.unwrap_or(last);
                        attempts = 0;
                    }
                    if recorded.events {
                        (self.committed)(&directory);
                    }
                    rest.drain(..recorded.done);
                    if let Some(email) = recorded.needs {
                        match answers.remove(&email) {
                            Some(Err(e)) => {
                                return self.wait(&directory, attempts, Pending::Provider(e)).await
                            }
                            _ => {
                                let answer = self.ask(&members, &email).await;
                                answers.insert(email, answer);
                            }
                        }
                    }
                }
            }
        }
    }

    /// The event at the cursor must wait: the cursor is given back, due again after the
    /// backoff (a provider's `Retry-After` honoured), with why.
    async fn wait(
        self: &Arc<Self>,
        directory: &str,
        attempts: i64,
        why: Pending,
    ) -> Result<(), Error> {
        let attempts = attempts + 1;
        let (hint, message, failed) = match why {
            Pending::Provider(e) => (retry_after(&e), e.to_string(), None),
            Pending::Failed(e) => (None, e.to_string(), Some(e)),
        };
        let at = db::later(
            db::now(),
            backoff(u32::try_from(attempts - 1).unwrap_or(u32::MAX), hint),
        );
        self.retry_at(at);
        let (dir, owner) = (directory.to_string(), self.owner.clone());
        self.db
            .run(move |c| store::release(c, &dir, &owner, at, Some((attempts, message))))
            .await?;
        failed.map_or(Ok(()), Err)
    }

    /// Asks the providers, concurrently, about every email these events may provision:
    /// those of active users with an email whose account is not already in place.
    async fn prefetch(
        &self,
        directory: &str,
        events: &[EventRow],
        members: &[ServiceAccountRow],
    ) -> Result<Answers, Error> {
        let wanted: Vec<(String, String)> = events
            .iter()
            .filter(|e| {
                matches!(
                    e.event_type.as_str(),
                    events::USER_CREATED | events::USER_UPDATED
                )
            })
            .filter_map(user_of)
            .filter_map(|(id, email, active)| email.filter(|_| active).map(|e| (id, e)))
            .collect();
        if wanted.is_empty() {
            return Ok(Answers::new());
        }
        let (dir, ids) = (
            directory.to_string(),
            wanted.iter().map(|(id, _)| id.clone()).collect::<Vec<_>>(),
        );
        let in_place: HashSet<(String, String)> = self
            .db
            .run(move |c| store::provisioned(c, &dir, &ids))
            .await?
            .into_iter()
            .filter(|(_, _, state)| state == ACTIVE || state == SUSPENDED)
            .map(|(id, email, _)| (id, email))
            .collect();
        let emails: HashSet<String> = wanted
            .into_iter()
            .filter(|pair| !in_place.contains(pair))
            .map(|(_, email)| email)
            .collect();
        Ok(futures_util::stream::iter(emails)
            .map(|email| async move {
                let answer = self.ask(members, &email).await;
                (email, answer)
            })
            .buffer_unordered(self.settings.lookups.max(1))
            .collect()
            .await)
    }

    /// What the unit's providers say of `email`.
    async fn ask(
        &self,
        members: &[ServiceAccountRow],
        email: &str,
    ) -> Result<Found, ProviderError> {
        let calendar = self.walk(members, email).await?;
        let conferencing = match calendar {
            Some(_) => self.conferencing(members, email).await?,
            None => Vec::new(),
        };
        Ok(Found {
            calendar,
            conferencing,
        })
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

/// One transaction's view of a directory: where outcomes go (the directory's events, the
/// unit's application), what its users were provisioned as and which have no account
/// (read once for the events at hand, kept up to date as outcomes are recorded), and the
/// events recorded so far (written at the end in one insert).
struct Round {
    directory: DirectoryRow,
    application: String,
    mappings: HashMap<String, MappingRow>,
    issues: HashSet<String>,
    log: Vec<(&'static str, String)>,
}

impl Round {
    fn load(
        c: &mut AnyConnection,
        dir: &str,
        unit: &str,
        events: &[EventRow],
    ) -> Result<Self, Error> {
        let users: Vec<String> = events
            .iter()
            .filter_map(user_of)
            .map(|(id, _, _)| id)
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        Ok(Round {
            directory: crate::store::directories::get(c, dir)?
                .ok_or_else(|| Error::Internal(format!("directory {dir} is gone")))?,
            application: crate::store::organizational_units::get(c, unit)?
                .ok_or_else(|| Error::Internal(format!("unit {unit} is gone")))?
                .application_id,
            mappings: store::mappings(c, dir, &users)?
                .into_iter()
                .map(|m| (m.user_id.clone(), m))
                .collect(),
            issues: store::with_issues(c, dir, &users)?.into_iter().collect(),
            log: Vec::new(),
        })
    }

    fn event(&mut self, kind: &'static str, data: Value) {
        self.log.push((kind, data.to_string()));
    }

    fn set_mapping(&mut self, c: &mut AnyConnection, m: MappingRow) -> Result<(), Error> {
        store::set_mapping(c, &m, self.mappings.contains_key(&m.user_id))?;
        self.mappings.insert(m.user_id.clone(), m);
        Ok(())
    }

    fn remove_mapping(&mut self, c: &mut AnyConnection, user_id: &str) -> Result<(), Error> {
        if self.mappings.remove(user_id).is_some() {
            store::remove_mapping(c, &self.directory.id, user_id)?;
        }
        Ok(())
    }

    /// Why `user_id` has no account (`email` when it has one).
    fn set_issue(
        &mut self,
        c: &mut AnyConnection,
        user_id: &str,
        email: Option<&str>,
        reason: &str,
    ) -> Result<(), Error> {
        let row = IssueRow {
            directory_id: self.directory.id.clone(),
            user_id: user_id.into(),
            email: email.map(Into::into),
            reason: reason.into(),
            at: db::now(),
        };
        store::set_issue(c, &row, !self.issues.insert(user_id.to_string()))
    }

    fn clear_issue(&mut self, c: &mut AnyConnection, user_id: &str) -> Result<(), Error> {
        if self.issues.remove(user_id) {
            store::clear_issue(c, &self.directory.id, user_id)?;
        }
        Ok(())
    }
}

/// Records, in one transaction, the outcomes of `events` in order — until one needs an
/// answer `answers` lacks — and advances the cursor past them (extending the lease, so a
/// long backfill keeps its directory).
fn record(
    c: &mut AnyConnection,
    dir: &str,
    unit: &str,
    owner: &str,
    lease: Duration,
    events: &[EventRow],
    answers: &Answers,
) -> Result<Recorded, Error> {
    write_tx(c, |c| {
        let mut r = Round::load(c, dir, unit, events)?;
        let mut out = Recorded {
            done: 0,
            events: false,
            needs: None,
        };
        for event in events {
            match decide(c, &r, event)? {
                Step::Provision {
                    user_id,
                    email,
                    previous,
                } => match answers.get(&email) {
                    Some(Ok(found)) => provision(
                        c,
                        &mut r,
                        &user_id,
                        &email,
                        previous,
                        found,
                        event.created_at,
                    )?,
                    _ => {
                        out.needs = Some(email);
                        break;
                    }
                },
                Step::Advance => {}
                Step::Skip { user_id } => r.set_issue(c, &user_id, None, store::NO_EMAIL)?,
                Step::Forget { user_id } => r.clear_issue(c, &user_id)?,
                Step::Suspend(m) => {
                    set_state(c, &mut r, &m, SUSPENDED, ACCOUNT_SUSPENDED, json!({}))?
                }
                Step::Resume(m) => {
                    let resumed = json!({"resumed": true});
                    set_state(c, &mut r, &m, ACTIVE, ACCOUNT_PROVISIONED, resumed)?;
                }
                Step::Revoke(m) => {
                    revoke(c, &mut r, &m, db::now())?;
                    r.remove_mapping(c, &m.user_id)?;
                }
            }
            out.done += 1;
        }
        out.events = !r.log.is_empty();
        let log = std::mem::take(&mut r.log);
        events::record_many(c, &r.directory, log)?;
        if let Some(seq) = events[..out.done].iter().rev().find_map(|e| e.sequence) {
            if !store::advance(c, dir, owner, seq, db::later(db::now(), lease))? {
                // Another instance holds the directory now: nothing of this is kept.
                return Err(Error::Internal("the provisioning lease was lost".into()));
            }
        }
        Ok(out)
    })
}

/// What an event asks for, given what was provisioned for its user so far.
fn decide(c: &mut AnyConnection, r: &Round, event: &EventRow) -> Result<Step, Error> {
    let is_user = matches!(
        event.event_type.as_str(),
        events::USER_CREATED | events::USER_UPDATED | events::USER_DELETED
    );
    let Some((user_id, email, active)) = is_user.then(|| user_of(event)).flatten() else {
        return Ok(Step::Advance);
    };
    let mapping = r.mappings.get(&user_id).cloned();
    let account = match &mapping {
        Some(m) => accounts::get(c, &m.account_id)?,
        None => None,
    };
    if event.event_type == events::USER_DELETED {
        return Ok(match mapping {
            Some(m) => Step::Revoke(m),
            None => Step::Forget { user_id },
        });
    }
    let Some(email) = email else {
        return Ok(match mapping {
            None => Step::Skip { user_id },
            Some(_) => Step::Advance,
        });
    };
    let state = account.as_ref().map(|a| a.state.as_str());
    Ok(match (mapping, active, state) {
        (Some(m), false, Some(ACTIVE)) => Step::Suspend(m),
        (_, false, _) => Step::Advance,
        (Some(m), true, Some(s)) if m.email == email && s == ACTIVE => Step::Advance,
        (Some(m), true, Some(SUSPENDED)) if m.email == email => Step::Resume(m),
        (previous, true, _) => Step::Provision {
            user_id,
            email,
            previous,
        },
    })
}

/// An `account.*` event's data: the account, its email, the SCIM user, the provider.
fn data(m: &MappingRow, account: Option<&AccountRow>, extra: Value) -> Value {
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

/// Suspends or resumes a user's account, with its event.
fn set_state(
    c: &mut AnyConnection,
    r: &mut Round,
    m: &MappingRow,
    state: &str,
    event_type: &'static str,
    extra: Value,
) -> Result<(), Error> {
    accounts::set_state(c, std::slice::from_ref(&m.account_id), state, db::now())?;
    let a = accounts::get(c, &m.account_id)?;
    r.event(event_type, data(m, a.as_ref(), extra));
    Ok(())
}

/// Revokes a user's account, its tokens and conferencing profiles, with the events.
fn revoke(
    c: &mut AnyConnection,
    r: &mut Round,
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
    for p in profiles.iter().filter(|p| p.state == ACTIVE) {
        r.event(
            CONFERENCING_PROFILE_REVOKED,
            data(
                m,
                a.as_ref(),
                json!({"conferencing_profile_id": p.id, "conferencing_provider": p.provider}),
            ),
        );
    }
    r.event(ACCOUNT_REVOKED, data(m, a.as_ref(), json!({})));
    Ok(())
}

/// A user provisioned as the providers answered: the account and its conferencing
/// profiles (or why not), with the events.
fn provision(
    c: &mut AnyConnection,
    r: &mut Round,
    user_id: &str,
    email: &str,
    previous: Option<MappingRow>,
    found: &Found,
    at: NaiveDateTime,
) -> Result<(), Error> {
    let now = db::now();
    // An email change: the old address's account goes.
    if let Some(old) = previous.as_ref().filter(|m| m.email != email) {
        revoke(c, r, old, now)?;
        r.remove_mapping(c, user_id)?;
    }
    let failed = |c: &mut AnyConnection, r: &mut Round, reason: &str, description: &str| {
        r.event(
            ACCOUNT_PROVISIONING_FAILED,
            json!({"email": email, "user_id": user_id, "reason": reason, "description": description}),
        );
        r.set_issue(c, user_id, Some(email), reason)
    };
    let Some((ser, person)) = &found.calendar else {
        return failed(
            c,
            r,
            "not_found",
            "no calendar account of the unit knows this email",
        );
    };
    let Some(account) = provision_account(c, &r.application, email, "read_write", ser, person, at)?
    else {
        return failed(c, r, "revoked", "the account was revoked by the integrator");
    };
    r.clear_issue(c, user_id)?;
    let id = account.row.id.clone();
    // A new account has no profiles yet: nothing to compare or revoke.
    let before: Vec<String> = if account.created {
        Vec::new()
    } else {
        crate::store::organizational_units::profiles_of(c, &id)?
            .into_iter()
            .filter(|p| p.state == ACTIVE)
            .map(|p| p.service_account_id)
            .collect()
    };
    if account.created {
        for (ser, user) in &found.conferencing {
            crate::store::organizational_units::upsert_profile(
                c,
                &profile_row(&id, ser, user, now),
            )?;
        }
    } else {
        keep_profiles(c, &id, &found.conferencing)?;
    }
    let m = MappingRow {
        directory_id: r.directory.id.clone(),
        user_id: user_id.into(),
        account_id: id.clone(),
        email: email.into(),
    };
    r.set_mapping(c, m.clone())?;
    let now_profiles = if found.conferencing.is_empty() && account.created {
        Vec::new()
    } else {
        crate::store::organizational_units::profiles_of(c, &id)?
    };
    let ids: Vec<&str> = now_profiles
        .iter()
        .filter(|p| p.state == ACTIVE)
        .map(|p| p.id.as_str())
        .collect();
    r.event(
        ACCOUNT_PROVISIONED,
        data(
            &m,
            Some(&account.row),
            json!({"conferencing_profile_ids": ids}),
        ),
    );
    for p in now_profiles
        .iter()
        .filter(|p| p.state == ACTIVE && !before.contains(&p.service_account_id))
    {
        r.event(
            CONFERENCING_PROFILE_PROVISIONED,
            data(
                &m,
                Some(&account.row),
                json!({"conferencing_profile_id": p.id, "conferencing_provider": p.provider}),
            ),
        );
    }
    Ok(())
}

/// The admin API's view of a directory's provisioning: where its cursor is, how far
/// behind, its users by outcome (`provisioned` and `suspended` have an account; `pending`
/// counts the user events not followed yet; `failed` and `skipped` have no account, the
/// latest of them listed in `issues` with why), and its accounts by state.
pub fn state_json(c: &mut AnyConnection, dir: &str) -> Result<Value, Error> {
    let last_sequence = crate::store::directories::get(c, dir)?
        .ok_or_else(|| crate::error::Rejected::not_found("directory not found"))?
        .last_event_sequence;
    let Some(cursor) = store::get(c, dir)? else {
        return Ok(Value::Null);
    };
    let accounts: HashMap<String, i64> = store::counts(c, dir)?.into_iter().collect();
    let issues: HashMap<String, i64> = store::issue_counts(c, dir)?.into_iter().collect();
    let of = |m: &HashMap<String, i64>, k: &str| m.get(k).copied().unwrap_or(0);
    let recent: Vec<Value> = store::recent_issues(c, dir, 20)?
        .into_iter()
        .map(|i| json!({"user_id": i.user_id, "email": i.email, "reason": i.reason, "at": crate::scim::resource::timestamp(i.at)}))
        .collect();
    Ok(json!({
        "organizational_unit_id": cursor.organizational_unit_id,
        "cursor": cursor.last_sequence,
        "lag": (last_sequence - cursor.last_sequence).max(0),
        "pending_error": cursor.last_error,
        "attempts": cursor.attempts,
        "users": {
            "provisioned": of(&accounts, ACTIVE),
            "suspended": of(&accounts, SUSPENDED),
            "pending": store::pending_user_events(c, dir, cursor.last_sequence)?,
            "failed": issues.iter().filter(|(k, _)| k.as_str() != store::NO_EMAIL).map(|(_, n)| n).sum::<i64>(),
            "skipped": of(&issues, store::NO_EMAIL),
        },
        "issues": recent,
        "accounts": accounts,
    }))
}
