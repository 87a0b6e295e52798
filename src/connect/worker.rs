//! The delegated-authorization worker (DESIGN.md §6.5): claims due jobs with a lease
//! (so a crash or another instance never loses or doubles one), looks each email up
//! through the calendar accounts of its service account's unit in link order (a service
//! account in no unit is a unit of one), provisions the account, and sends the signed
//! callback. Provider 429/5xx are retried with backoff (1 s, 2 s, 4 s …, `Retry-After`
//! honoured) and never fall through to the next account; a provider that keeps failing
//! ends in a `provider_error` callback, and holds up no other job (each job is its own
//! task, bounded by the concurrency). The lease is renewed before every provider call
//! and every send; what a step writes is recorded only while the lease is held.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use chrono::NaiveDateTime;
use serde_json::{json, Value};
use tokio::sync::{Notify, Semaphore};

use super::provider_access::{Person, Providers};
use crate::error::Error;
use crate::ids::{AccountId, ProfileId};
use crate::outbound;
use crate::providers::{backoff, ConferencingUser, ProviderError};
use crate::secrets::Sealer;
use crate::store::accounts::{self as account_store, AccountRow};
use crate::store::authorization_jobs::{self as store, JobRow, JobUpdate, CALLBACK, DONE, LOOKUP};
use crate::store::service_accounts::ServiceAccountRow;
use crate::store::{self as db, write_tx, AnyConnection, Db};

#[derive(Debug, Clone)]
pub struct Settings {
    /// Jobs in flight at once.
    pub concurrency: usize,
    /// How long a claim lasts without renewal; another instance takes a job over after
    /// that. Renewed before every provider call and send, so it must outlast one.
    pub lease: Duration,
    /// Attempts (provider lookups, or steps that failed on our side) before a job ends
    /// with `provider_error`.
    pub lookup_attempts: u32,
    /// Callback attempts before one is given up.
    pub callback_attempts: u32,
    /// Safety-net poll, for jobs other instances left behind.
    pub poll: Duration,
    pub outbound: outbound::Settings,
}

/// Wakes the worker (a new job was queued) and gives its leases back at shutdown.
#[derive(Clone)]
pub struct Handle {
    wake: Arc<Notify>,
    db: Db,
    owner: String,
}

impl Handle {
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Releases this instance's claims, so another instance (or the next start) takes
    /// the jobs over at once rather than after the lease.
    pub async fn shutdown(&self) {
        let owner = self.owner.clone();
        if let Err(e) = self.db.run(move |c| store::release_all(c, &owner)).await {
            tracing::warn!(error = %e, "could not release authorization jobs");
        }
    }
}

struct Worker {
    db: Db,
    providers: Arc<Providers>,
    sealer: Sealer,
    client: outbound::Client,
    settings: Settings,
    owner: String,
    /// The retries this worker scheduled itself: it wakes for each without asking the
    /// database (an idle instance sends nothing but its safety-net claim).
    due: Mutex<BinaryHeap<Reverse<NaiveDateTime>>>,
}

const LEASE_LOST: &str = "the job's lease was lost";

/// A step ended because another instance holds the job now: nothing more is written.
fn lease_lost() -> Error {
    Error::Internal(LEASE_LOST.into())
}

fn is_lease_lost(e: &Error) -> bool {
    matches!(e, Error::Internal(m) if m == LEASE_LOST)
}

/// Starts the worker on the current runtime.
pub fn start(
    db: Db,
    providers: Arc<Providers>,
    sealer: Sealer,
    settings: Settings,
) -> Result<Handle, Error> {
    let owner = format!("auth-{}", uuid::Uuid::new_v4().simple());
    let handle = Handle {
        wake: Arc::new(Notify::new()),
        db: db.clone(),
        owner: owner.clone(),
    };
    let worker = Arc::new(Worker {
        client: outbound::client(&settings.outbound)?,
        db,
        providers,
        sealer,
        owner,
        settings,
        due: Mutex::new(BinaryHeap::new()),
    });
    tokio::spawn(run(worker, handle.wake.clone()));
    Ok(handle)
}

async fn run(w: Arc<Worker>, wake: Arc<Notify>) {
    let slots = Arc::new(Semaphore::new(w.settings.concurrency.max(1)));
    loop {
        {
            // What falls due by now is claimed below; later retries keep their times.
            let mut due = w.due.lock().unwrap_or_else(|p| p.into_inner());
            let now = db::now();
            while due.peek().is_some_and(|Reverse(at)| *at <= now) {
                due.pop();
            }
        }
        let free = slots.available_permits();
        let claimed = if free == 0 {
            Ok(Vec::new())
        } else {
            let (owner, lease) = (w.owner.clone(), w.settings.lease);
            w.db.run(move |c| {
                let now = db::now();
                store::claim(c, &owner, now, db::later(now, lease), free as i64)
            })
            .await
        };
        let jobs = match claimed {
            Ok(jobs) => jobs,
            Err(e) => {
                tracing::warn!(error = %e, "could not claim authorization jobs");
                Vec::new()
            }
        };
        let got = jobs.len();
        for job in jobs {
            let Ok(permit) = slots.clone().acquire_owned().await else {
                return;
            };
            let w = w.clone();
            let wake = wake.clone();
            tokio::spawn(async move {
                let claimed = job.clone();
                if let Err(e) = w.step(job).await {
                    w.failed(&claimed, &e).await;
                }
                drop(permit);
                // A slot is free and this job may have a next step due now.
                wake.notify_one();
            });
        }
        if got > 0 && got == free {
            continue;
        }
        // Jobs queued here wake this worker; its own retries are timed from `due`; the
        // slow safety net claims what other instances left (a crash, once its lease ran
        // out).
        let safety = w.settings.poll * 6;
        let until_due = w
            .due
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .peek()
            .map(|Reverse(at)| (*at - db::now()).to_std().unwrap_or(Duration::ZERO))
            .unwrap_or(safety);
        let nap = until_due.clamp(Duration::from_millis(20), safety);
        tokio::select! {
            _ = wake.notified() => {}
            _ = tokio::time::sleep(nap) => {}
        }
    }
}

/// What looking an email up through a unit's calendar accounts found.
enum Found {
    /// The first account (in link order) that knows the email.
    At(Box<ServiceAccountRow>, Person),
    /// None knows it.
    Nowhere,
}

impl Worker {
    /// Remembers that a job of this worker falls due again at `at`.
    fn note_due(&self, at: NaiveDateTime) {
        self.due
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(Reverse(at));
    }

    /// Extends the lease before a provider call or a send; an error when it was lost.
    async fn renew(&self, id: &str) -> Result<(), Error> {
        let (id, owner, lease) = (id.to_string(), self.owner.clone(), self.settings.lease);
        let held = self
            .db
            .run(move |c| store::renew(c, &id, &owner, db::later(db::now(), lease)))
            .await?;
        if held {
            Ok(())
        } else {
            Err(lease_lost())
        }
    }

    /// Records `update` (and gives the job back) while the lease is held.
    async fn record(&self, id: &str, update: JobUpdate) -> Result<(), Error> {
        let (id, owner) = (id.to_string(), self.owner.clone());
        self.db
            .run(move |c| write_tx(c, |c| store::record(c, &id, &owner, update)))
            .await
            .map(drop)
    }

    /// A step failed on our side (the database, a key): tried again with backoff; after
    /// the configured attempts a lookup ends in a `provider_error` callback (the
    /// integrator hears), a callback is given up.
    async fn failed(&self, job: &JobRow, e: &Error) {
        if is_lease_lost(e) {
            return;
        }
        tracing::warn!(job = %job.id, error = %e, "authorization job step failed");
        let attempts = job.attempts + 1;
        let update = if attempts < i64::from(self.settings.lookup_attempts) {
            let at = db::later(db::now(), backoff((attempts - 1) as u32, None));
            self.note_due(at);
            JobUpdate {
                attempts: Some(attempts),
                next_attempt_at: Some(at),
                last_error: Some(Some(e.to_string())),
                ..Default::default()
            }
        } else {
            let body = (job.status == LOOKUP)
                .then(|| {
                    self.sealer
                        .seal(
                            &error_body(
                                job,
                                "provider_error",
                                "the authorization could not be completed",
                            )
                            .to_string(),
                        )
                        .ok()
                })
                .flatten();
            let next = if body.is_some() { CALLBACK } else { DONE };
            if body.is_some() {
                self.note_due(db::now());
            }
            JobUpdate {
                status: Some(next.into()),
                attempts: Some(if body.is_some() { 0 } else { attempts }),
                next_attempt_at: Some(db::now()),
                callback_body: Some(body),
                account_id: Some(None),
                last_error: Some(Some(format!("given up: {e}"))),
                ..Default::default()
            }
        };
        if let Err(e) = self.record(&job.id, update).await {
            tracing::warn!(job = %job.id, error = %e, "could not record a failed step");
        }
    }

    /// One step of a job this worker holds: the lookup (then straight on to the
    /// callback), or a callback retry.
    async fn step(&self, job: JobRow) -> Result<(), Error> {
        let job = if job.status == LOOKUP {
            match self.lookup(job).await? {
                Some(next) => next,
                None => return Ok(()),
            }
        } else {
            job
        };
        if job.status == CALLBACK {
            self.callback(job).await?;
        }
        Ok(())
    }

    /// Tries the unit's calendar accounts in link order. "Not here" (not found, a
    /// Microsoft mailbox error) moves on; any other failure stops the walk and is the
    /// job's outcome (retried when it is retryable), so a provider that is down never
    /// lets an email be provisioned elsewhere by accident.
    async fn find(
        &self,
        job: &JobRow,
        ser: ServiceAccountRow,
    ) -> Result<Result<Found, ProviderError>, Error> {
        let chain = self
            .db
            .run(move |c| super::units::calendar_chain(c, &ser))
            .await?;
        for account in chain {
            self.renew(&job.id).await?;
            match self.providers.lookup(&account, &job.email).await {
                Ok(Some(person)) => return Ok(Ok(Found::At(Box::new(account), person))),
                Ok(None) => {}
                Err(e) => return Ok(Err(e)),
            }
        }
        Ok(Ok(Found::Nowhere))
    }

    /// Looks the email up; returns the job ready for its callback, or `None` when it was
    /// rescheduled.
    async fn lookup(&self, job: JobRow) -> Result<Option<JobRow>, Error> {
        let ser_id = job.service_account_id.clone();
        let ser = self
            .db
            .run(move |c| crate::store::service_accounts::get(c, &ser_id))
            .await?;
        let outcome = match ser.filter(|s| s.is_active()) {
            None => Err(ProviderError::Refused(
                "the service account was revoked".into(),
            )),
            Some(ser) => self.find(&job, ser).await?,
        };
        let attempts = job.attempts + 1;
        if job.callback_url.is_empty() {
            return self.reprovisioned(&job, attempts, outcome).await;
        }
        let body = match outcome {
            Ok(Found::At(found, person)) => {
                // Conferencing profiles: every conferencing account of the unit that
                // knows the email. One that is down postpones the whole job (no callback
                // with profiles missing).
                let profiles = match self.conferencing_profiles(&job, &found).await? {
                    Ok(p) => p,
                    Err(e) => return self.postpone(&job, attempts, e).await,
                };
                let (job2, owner) = (job.clone(), self.owner.clone());
                let ok = self.sealer.seal(&success(&job).to_string())?;
                let revoked = self.sealer.seal(
                    &error_body(
                        &job,
                        "provider_error",
                        "the account was revoked while this authorization was pending",
                    )
                    .to_string(),
                )?;
                let lease = self.settings.lease;
                // The account and the step's record in one transaction, while the lease
                // is held: two instances never both provision one job.
                self.db
                    .run(move |c| {
                        write_tx(c, |c| {
                            let account = provision(c, &job2, &found, &person)?;
                            if let Some(a) = &account {
                                keep_profiles(c, a, &profiles)?;
                            }
                            let body = if account.is_some() { ok } else { revoked };
                            let held = store::record(
                                c,
                                &job2.id,
                                &owner,
                                JobUpdate {
                                    status: Some(CALLBACK.into()),
                                    attempts: Some(0),
                                    next_attempt_at: Some(db::now()),
                                    callback_body: Some(Some(body)),
                                    account_id: Some(account),
                                    last_error: Some(None),
                                    ..Default::default()
                                },
                            )?;
                            if !held
                                || !store::reclaim(
                                    c,
                                    &job2.id,
                                    &owner,
                                    db::later(db::now(), lease),
                                )?
                            {
                                return Err(lease_lost());
                            }
                            Ok(())
                        })
                    })
                    .await?;
                return self.reloaded(&job.id).await;
            }
            Ok(Found::Nowhere) => error_body(
                &job,
                "not_found",
                &format!(
                    "no calendar account of this service account's unit knows {}",
                    job.email
                ),
            ),
            Err(e) if e.is_retryable() && attempts < i64::from(self.settings.lookup_attempts) => {
                return self.postpone(&job, attempts, e).await;
            }
            Err(e) => error_body(&job, "provider_error", &e.to_string()),
        };
        let sealed = self.sealer.seal(&body.to_string())?;
        let (id, owner, lease) = (job.id.clone(), self.owner.clone(), self.settings.lease);
        let held = self
            .db
            .run(move |c| {
                write_tx(c, |c| {
                    let held = store::record(
                        c,
                        &id,
                        &owner,
                        JobUpdate {
                            status: Some(CALLBACK.into()),
                            attempts: Some(0),
                            next_attempt_at: Some(db::now()),
                            callback_body: Some(Some(sealed)),
                            account_id: Some(None),
                            last_error: Some(None),
                            ..Default::default()
                        },
                    )?;
                    Ok(held && store::reclaim(c, &id, &owner, db::later(db::now(), lease))?)
                })
            })
            .await?;
        if !held {
            return Err(lease_lost());
        }
        self.reloaded(&job.id).await
    }

    /// The end of a job without callback (an account provisioned again after its
    /// calendar account was unlinked): relinked through the account that knows the email
    /// now, or marked `not_found`.
    async fn reprovisioned(
        &self,
        job: &JobRow,
        attempts: i64,
        outcome: Result<Found, ProviderError>,
    ) -> Result<Option<JobRow>, Error> {
        let found = match outcome {
            Ok(Found::At(found, person)) => {
                let profiles = match self.conferencing_profiles(job, &found).await? {
                    Ok(p) => p,
                    Err(e) => return self.postpone(job, attempts, e).await,
                };
                Some((found, person, profiles))
            }
            Ok(Found::Nowhere) => None,
            Err(e) if e.is_retryable() && attempts < i64::from(self.settings.lookup_attempts) => {
                return self.postpone(job, attempts, e).await;
            }
            Err(e) => {
                let update = JobUpdate {
                    status: Some(DONE.into()),
                    attempts: Some(attempts),
                    last_error: Some(Some(e.to_string())),
                    ..Default::default()
                };
                self.record(&job.id, update).await?;
                return Ok(None);
            }
        };
        let (job2, owner) = (job.clone(), self.owner.clone());
        self.db
            .run(move |c| {
                write_tx(c, |c| {
                    match &found {
                        Some((ser, person, profiles)) => {
                            if let Some(a) = provision(c, &job2, ser, person)? {
                                keep_profiles(c, &a, profiles)?;
                            }
                        }
                        None => {
                            if let Some(a) =
                                account_store::by_email(c, &job2.application_id, &job2.email)?
                            {
                                account_store::set_state(
                                    c,
                                    &[a.id],
                                    account_store::NOT_FOUND,
                                    db::now(),
                                )?;
                            }
                        }
                    }
                    let done = JobUpdate {
                        status: Some(DONE.into()),
                        attempts: Some(attempts),
                        last_error: Some(None),
                        ..Default::default()
                    };
                    if !store::record(c, &job2.id, &owner, done)? {
                        return Err(lease_lost());
                    }
                    Ok(())
                })
            })
            .await?;
        Ok(None)
    }

    /// Tries the lookup again later (backoff, `Retry-After`).
    async fn postpone(
        &self,
        job: &JobRow,
        attempts: i64,
        e: ProviderError,
    ) -> Result<Option<JobRow>, Error> {
        let retry_after = match &e {
            ProviderError::Unavailable { retry_after, .. } => *retry_after,
            _ => None,
        };
        let at = db::later(db::now(), backoff((attempts - 1) as u32, retry_after));
        self.note_due(at);
        self.record(
            &job.id,
            JobUpdate {
                attempts: Some(attempts),
                next_attempt_at: Some(at),
                last_error: Some(Some(e.to_string())),
                ..Default::default()
            },
        )
        .await?;
        Ok(None)
    }

    /// The email at each conferencing account of `found`'s unit: the profiles to keep.
    /// A provider that is down (retryable) is the error; one that refuses is skipped.
    async fn conferencing_profiles(
        &self,
        job: &JobRow,
        found: &ServiceAccountRow,
    ) -> Result<Result<Vec<(ServiceAccountRow, ConferencingUser)>, ProviderError>, Error> {
        let Some(unit) = found.organizational_unit_id.clone() else {
            return Ok(Ok(Vec::new()));
        };
        let members = self
            .db
            .run(move |c| crate::store::organizational_units::conferencing_members(c, &unit))
            .await?;
        let mut out = Vec::new();
        for member in members {
            self.renew(&job.id).await?;
            match self
                .providers
                .conferencing_lookup(&member, &job.email)
                .await
            {
                Ok(Some(user)) => out.push((member, user)),
                Ok(None) => {}
                Err(e) if e.is_retryable() => return Ok(Err(e)),
                Err(e) => {
                    tracing::warn!(service_account = %member.id, error = %e, "conferencing lookup refused");
                }
            }
        }
        Ok(Ok(out))
    }

    /// The job as stored after its lookup was recorded (taken again by this worker).
    async fn reloaded(&self, id: &str) -> Result<Option<JobRow>, Error> {
        let id = id.to_string();
        self.db.run(move |c| store::get(c, &id)).await
    }

    /// Sends the signed callback; retries on the schedule, then gives up. A success
    /// gets a fresh code at each attempt (none is stored): a receiver that redeemed an
    /// earlier one is not made to reuse it.
    async fn callback(&self, job: JobRow) -> Result<(), Error> {
        self.renew(&job.id).await?;
        let job2 = job.clone();
        let sealer = self.sealer.clone();
        // The application's secret, and the body with its code (or an error when the
        // account or its service account was revoked meanwhile).
        let prepared = self
            .db
            .run(move |c| {
                let Some(app) = crate::store::applications::get(c, &job2.application_id)? else {
                    return Ok(None);
                };
                let stored = job2
                    .callback_body
                    .as_ref()
                    .ok_or_else(|| Error::Internal("a callback without a body".into()))?;
                let mut body: Value = serde_json::from_str(sealer.open(stored)?.expose())
                    .map_err(|e| Error::Internal(e.to_string()))?;
                if let Some(account) = &job2.account_id {
                    body = write_tx(c, |c| {
                        let live = account_store::get(c, account)?
                            .filter(|a| a.state == account_store::ACTIVE)
                            .is_some_and(|a| {
                                crate::store::service_accounts::get(c, &a.service_account_id)
                                    .ok()
                                    .flatten()
                                    .is_some_and(|s| s.is_active())
                            });
                        if !live {
                            return Ok(error_body(
                                &job2,
                                "provider_error",
                                "the account was revoked",
                            ));
                        }
                        let code = super::grants::issue_code(
                            c,
                            &job2.application_id,
                            account,
                            &job2.scope,
                            &job2.callback_url,
                        )?;
                        body["authorization"]["code"] = Value::String(code);
                        Ok(body)
                    })?;
                }
                Ok(Some((sealer.open(&app.client_secret)?, body)))
            })
            .await?;
        let Some((secret, body)) = prepared else {
            // The application was deleted: nobody to tell.
            return self
                .record(
                    &job.id,
                    JobUpdate {
                        status: Some(DONE.into()),
                        callback_body: Some(None),
                        last_error: Some(Some("the application was deleted".into())),
                        ..Default::default()
                    },
                )
                .await;
        };
        let result = self
            .send(&job, secret.expose(), body.to_string().as_bytes())
            .await;
        let attempts = job.attempts + 1;
        let update = match result {
            Ok(()) => JobUpdate {
                status: Some(DONE.into()),
                attempts: Some(attempts),
                callback_body: Some(None),
                last_error: Some(None),
                ..Default::default()
            },
            Err((msg, retry_after)) if attempts < i64::from(self.settings.callback_attempts) => {
                let at = db::later(db::now(), backoff((attempts - 1) as u32, retry_after));
                self.note_due(at);
                JobUpdate {
                    attempts: Some(attempts),
                    next_attempt_at: Some(at),
                    last_error: Some(Some(msg)),
                    ..Default::default()
                }
            }
            Err((msg, _)) => JobUpdate {
                status: Some(DONE.into()),
                attempts: Some(attempts),
                callback_body: Some(None),
                last_error: Some(Some(format!("callback given up: {msg}"))),
                ..Default::default()
            },
        };
        self.record(&job.id, update).await
    }

    /// POSTs the body signed as Cronofy signs its pushes (`Cronofy-HMAC-SHA256`) and with
    /// Standard Webhooks headers, both keyed by the client secret.
    async fn send(
        &self,
        job: &JobRow,
        secret: &str,
        body: &[u8],
    ) -> Result<(), (String, Option<Duration>)> {
        let ts = chrono::Utc::now().timestamp();
        let msg_id = format!("msg_{}", job.id.replace('-', ""));
        let req = self
            .client
            .post(&job.callback_url)
            .header("Content-Type", "application/json")
            .header("Cronofy-HMAC-SHA256", cronofy_signature(secret, body))
            .header("webhook-id", &msg_id)
            .header("webhook-timestamp", ts.to_string())
            .header(
                "webhook-signature",
                crate::webhooks::signing::standard_signature(secret, &msg_id, ts, body),
            )
            .body(body.to_vec());
        match req.send().await {
            Ok(r) if r.status().is_success() => Ok(()),
            Ok(r) => Err((
                format!("the callback URL answered {}", r.status().as_u16()),
                outbound::retry_after(r.headers()),
            )),
            Err(e) => Err((outbound::describe(e), None)),
        }
    }
}

/// An account's conferencing profiles are those found now; the others are revoked.
pub fn keep_profiles(
    conn: &mut AnyConnection,
    account: &str,
    found: &[(ServiceAccountRow, ConferencingUser)],
) -> Result<(), Error> {
    use crate::store::organizational_units as units;
    let now = db::now();
    for (ser, user) in found {
        units::upsert_profile(conn, &profile_row(account, ser, user, now))?;
    }
    let keep: Vec<String> = found.iter().map(|(s, _)| s.id.clone()).collect();
    units::revoke_profiles(conn, account, &keep, now)
}

/// The conferencing profile of `account` at `ser` for `user`, active.
pub fn profile_row(
    account: &str,
    ser: &ServiceAccountRow,
    user: &ConferencingUser,
    now: NaiveDateTime,
) -> crate::store::organizational_units::ProfileRow {
    crate::store::organizational_units::ProfileRow {
        id: crate::ids::ConferencingProfileId::generate().into_string(),
        account_id: account.into(),
        service_account_id: ser.id.clone(),
        provider: ser.provider.clone(),
        profile_name: user.email.to_lowercase(),
        provider_user_id: Some(user.id.clone()),
        state: "active".into(),
        created_at: now,
        updated_at: now,
    }
}

/// A success callback before its code is added (at send time).
fn success(job: &JobRow) -> Value {
    json!({"authorization": {"state": job.state}})
}

fn error_body(job: &JobRow, error: &str, description: &str) -> Value {
    json!({"authorization": {
        "error": error,
        "error_description": description,
        "state": job.state,
    }})
}

/// Base64 HMAC-SHA256 of the body keyed by the client secret (what pycronofy's
/// `hmac_valid` checks).
pub fn cronofy_signature(secret: &str, body: &[u8]) -> String {
    use hmac::{KeyInit, Mac};
    let mut mac = <hmac::Hmac<sha2::Sha256> as KeyInit>::new_from_slice(secret.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
    mac.update(body);
    STANDARD.encode(mac.finalize().into_bytes())
}

/// The account for the job's email, served by `found` (see [`provision_account`]).
fn provision(
    conn: &mut AnyConnection,
    job: &JobRow,
    found: &ServiceAccountRow,
    person: &Person,
) -> Result<Option<String>, Error> {
    Ok(provision_account(
        conn,
        &job.application_id,
        &job.email,
        &job.scope,
        found,
        person,
        job.created_at,
    )?
    .map(|p| p.row.id))
}

/// An account as [`provision_account`] left it.
pub struct Provisioned {
    pub row: AccountRow,
    /// Made now (it has no conferencing profiles yet).
    pub created: bool,
}

/// The account for `email`, served by `found` (one per email per application: an
/// existing one is pointed at it and made active). One revoked after `asked_at` stays
/// revoked (`None`): the revocation is the later word.
pub fn provision_account(
    conn: &mut AnyConnection,
    application_id: &str,
    email: &str,
    scope: &str,
    found: &ServiceAccountRow,
    person: &Person,
    asked_at: NaiveDateTime,
) -> Result<Option<Provisioned>, Error> {
    let now = db::now();
    match account_store::by_email(conn, application_id, email)? {
        Some(a) if a.state == account_store::REVOKED && a.updated_at > asked_at => Ok(None),
        Some(a) => {
            account_store::relink(
                conn,
                &a.id,
                &found.id,
                &found.provider,
                Some(&person.id),
                scope,
                now,
            )?;
            Ok(Some(Provisioned {
                row: AccountRow {
                    service_account_id: found.id.clone(),
                    provider: found.provider.clone(),
                    provider_user_id: Some(person.id.clone()),
                    scope: scope.into(),
                    state: account_store::ACTIVE.into(),
                    updated_at: now,
                    ..a
                },
                created: false,
            }))
        }
        None => {
            let row = AccountRow {
                id: AccountId::generate().into_string(),
                application_id: application_id.into(),
                email: email.into(),
                service_account_id: found.id.clone(),
                provider: found.provider.clone(),
                profile_id: ProfileId::generate().into_string(),
                profile_name: email.into(),
                provider_user_id: Some(person.id.clone()),
                scope: scope.into(),
                state: account_store::ACTIVE.into(),
                created_at: now,
                updated_at: now,
            };
            account_store::insert(conn, &row)?;
            Ok(Some(Provisioned { row, created: true }))
        }
    }
}
