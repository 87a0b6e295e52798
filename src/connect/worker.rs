//! The delegated-authorization worker (DESIGN.md §6.5): claims due jobs with a lease
//! (so a crash or another instance never loses or doubles one), looks each email up
//! through its service account, provisions the account, and sends the signed callback.
//! Provider 429/5xx are retried with backoff (1 s, 2 s, 4 s …, `Retry-After` honoured);
//! a provider that keeps failing ends in an `provider_error` callback, and never holds up
//! other jobs (each job is its own task, bounded by the concurrency).

use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde_json::json;
use tokio::sync::{Notify, Semaphore};

use super::provider_access::{Person, Providers};
use crate::error::Error;
use crate::ids::{AccountId, ProfileId};
use crate::outbound;
use crate::providers::{backoff, ProviderError};
use crate::secrets::Sealer;
use crate::store::accounts::{self as account_store, AccountRow};
use crate::store::authorization_jobs::{self as store, JobRow, JobUpdate, CALLBACK, DONE, LOOKUP};
use crate::store::{self as db, write_tx, AnyConnection, Db};

#[derive(Debug, Clone)]
pub struct Settings {
    /// Jobs in flight at once.
    pub concurrency: usize,
    /// How long a claim lasts; another instance takes a job over after that.
    pub lease: Duration,
    /// Provider attempts before a job ends with `provider_error`.
    pub lookup_attempts: u32,
    /// Callback attempts before one is given up.
    pub callback_attempts: u32,
    /// Safety-net poll, for jobs queued by other instances.
    pub poll: Duration,
    pub outbound: outbound::Settings,
}

/// Wakes the worker (a new job was queued).
#[derive(Clone, Default)]
pub struct Handle {
    wake: Arc<Notify>,
}

impl Handle {
    pub fn wake(&self) {
        self.wake.notify_one();
    }
}

struct Worker {
    db: Db,
    providers: Arc<Providers>,
    sealer: Sealer,
    client: outbound::Client,
    settings: Settings,
    owner: String,
    /// The earliest retry this worker scheduled itself: it wakes for it without asking
    /// the database (an idle instance sends nothing but its safety-net claim).
    due: std::sync::Mutex<Option<chrono::NaiveDateTime>>,
}

/// Starts the worker on the current runtime.
pub fn start(
    db: Db,
    providers: Arc<Providers>,
    sealer: Sealer,
    settings: Settings,
) -> Result<Handle, Error> {
    let handle = Handle::default();
    let worker = Arc::new(Worker {
        client: outbound::client(&settings.outbound)?,
        db,
        providers,
        sealer,
        owner: format!("auth-{}", uuid::Uuid::new_v4().simple()),
        settings,
        due: std::sync::Mutex::new(None),
    });
    tokio::spawn(run(worker, handle.wake.clone()));
    Ok(handle)
}

async fn run(w: Arc<Worker>, wake: Arc<Notify>) {
    let slots = Arc::new(Semaphore::new(w.settings.concurrency.max(1)));
    loop {
        {
            // What falls due by now is claimed below; a later retry keeps its time.
            let mut due = w.due.lock().unwrap_or_else(|p| p.into_inner());
            if due.is_some_and(|at| at <= db::now()) {
                *due = None;
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
                let id = job.id.clone();
                if let Err(e) = w.step(job).await {
                    tracing::warn!(job = %id, error = %e, "authorization job step failed");
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
            .map(|at| (at - db::now()).to_std().unwrap_or(Duration::ZERO))
            .unwrap_or(safety);
        let nap = until_due.clamp(Duration::from_millis(20), safety);
        tokio::select! {
            _ = wake.notified() => {}
            _ = tokio::time::sleep(nap) => {}
        }
    }
}

impl Worker {
    /// Remembers that a job of this worker falls due again at `at`.
    fn note_due(&self, at: chrono::NaiveDateTime) {
        let mut due = self.due.lock().unwrap_or_else(|p| p.into_inner());
        if due.is_none_or(|d| at < d) {
            *due = Some(at);
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

    /// Looks the email up; returns the job ready for its callback, or `None` when it was
    /// rescheduled (or the lease lost).
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
            Some(ser) => self
                .providers
                .lookup(&ser, &job.email)
                .await
                .map(|p| (ser, p)),
        };
        let attempts = job.attempts + 1;
        let body = match outcome {
            Ok((ser, Some(person))) => {
                let (job2, ser2) = (job.clone(), ser.clone());
                let (account, code) = self
                    .db
                    .run(move |c| provision(c, &job2, &ser2, &person))
                    .await?;
                let body = json!({"authorization": {"code": code, "state": job.state}});
                return self.ready(job, body, Some(account)).await;
            }
            Ok((_, None)) => json!({"authorization": {
                "error": "not_found",
                "error_description": format!("no calendar account of this service account knows {}", job.email),
                "state": job.state,
            }}),
            Err(e) if e.is_retryable() && attempts < i64::from(self.settings.lookup_attempts) => {
                let retry_after = match &e {
                    ProviderError::Unavailable { retry_after, .. } => *retry_after,
                    _ => None,
                };
                let delay = backoff((attempts - 1) as u32, retry_after);
                let (id, owner) = (job.id.clone(), self.owner.clone());
                let at = db::later(db::now(), delay);
                self.note_due(at);
                let update = JobUpdate {
                    attempts: Some(attempts),
                    next_attempt_at: Some(at),
                    last_error: Some(Some(e.to_string())),
                    ..Default::default()
                };
                self.db
                    .run(move |c| write_tx(c, |c| store::record(c, &id, &owner, update)))
                    .await?;
                return Ok(None);
            }
            Err(e) => json!({"authorization": {
                "error": "provider_error",
                "error_description": e.to_string(),
                "state": job.state,
            }}),
        };
        self.ready(job, body, None).await
    }

    /// Records the callback to send (sealed: it may carry a code) and keeps the lease.
    async fn ready(
        &self,
        mut job: JobRow,
        body: serde_json::Value,
        account: Option<String>,
    ) -> Result<Option<JobRow>, Error> {
        let sealed = self.sealer.seal(&body.to_string())?;
        let (id, owner) = (job.id.clone(), self.owner.clone());
        let lease = self.settings.lease;
        let (s2, a2) = (sealed.clone(), account.clone());
        let kept = self
            .db
            .run(move |c| {
                write_tx(c, |c| {
                    store::record(
                        c,
                        &id,
                        &owner,
                        JobUpdate {
                            status: Some(CALLBACK.into()),
                            attempts: Some(0),
                            next_attempt_at: Some(db::now()),
                            callback_body: Some(Some(s2)),
                            account_id: Some(a2),
                            last_error: Some(None),
                            ..Default::default()
                        },
                    )?;
                    // Taken again at once: the callback goes out in this step.
                    let now = db::now();
                    store::reclaim(c, &id, &owner, db::later(now, lease))
                })
            })
            .await?;
        if !kept {
            return Ok(None);
        }
        job.status = CALLBACK.into();
        job.attempts = 0;
        job.callback_body = Some(sealed);
        job.account_id = account;
        Ok(Some(job))
    }

    /// Sends the signed callback; retries on the schedule, then gives up.
    async fn callback(&self, job: JobRow) -> Result<(), Error> {
        let app_id = job.application_id.clone();
        let app = self
            .db
            .run(move |c| crate::store::applications::get(c, &app_id))
            .await?;
        let (id, owner) = (job.id.clone(), self.owner.clone());
        let (Some(app), Some(body)) = (app, job.callback_body.as_ref()) else {
            // The application was deleted: nobody to tell.
            let update = JobUpdate {
                status: Some(DONE.into()),
                callback_body: Some(None),
                last_error: Some(Some("the application was deleted".into())),
                ..Default::default()
            };
            self.db
                .run(move |c| write_tx(c, |c| store::record(c, &id, &owner, update)))
                .await?;
            return Ok(());
        };
        let secret = self.sealer.open(&app.client_secret)?;
        let body = self.sealer.open(body)?;
        let result = self
            .send(&job, secret.expose(), body.expose().as_bytes())
            .await;
        let attempts = job.attempts + 1;
        let update = match result {
            Ok(()) => JobUpdate {
                status: Some(DONE.into()),
                attempts: Some(attempts),
                // The code it carried is delivered: no copy is kept.
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
        self.db
            .run(move |c| write_tx(c, |c| store::record(c, &id, &owner, update)))
            .await?;
        Ok(())
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

/// Base64 HMAC-SHA256 of the body keyed by the client secret (what pycronofy's
/// `hmac_valid` checks).
pub fn cronofy_signature(secret: &str, body: &[u8]) -> String {
    use hmac::{KeyInit, Mac};
    let mut mac = <hmac::Hmac<sha2::Sha256> as KeyInit>::new_from_slice(secret.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
    mac.update(body);
    STANDARD.encode(mac.finalize().into_bytes())
}

/// The account for the job's email (one per email per application: an existing one is
/// pointed at this service account and made active) and a code for it, redeemable with
/// the callback URL as `redirect_uri`.
fn provision(
    conn: &mut AnyConnection,
    job: &JobRow,
    ser: &crate::store::service_accounts::ServiceAccountRow,
    person: &Person,
) -> Result<(String, String), Error> {
    let attempt = |c: &mut AnyConnection| {
        write_tx(c, |c| {
            let now = db::now();
            let id = match account_store::by_email(c, &job.application_id, &job.email)? {
                Some(a) => {
                    account_store::relink(
                        c,
                        &a.id,
                        &ser.id,
                        &ser.provider,
                        Some(&person.id),
                        &job.scope,
                        now,
                    )?;
                    a.id
                }
                None => {
                    let row = AccountRow {
                        id: AccountId::generate().into_string(),
                        application_id: job.application_id.clone(),
                        email: job.email.clone(),
                        service_account_id: ser.id.clone(),
                        provider: ser.provider.clone(),
                        profile_id: ProfileId::generate().into_string(),
                        profile_name: job.email.clone(),
                        provider_user_id: Some(person.id.clone()),
                        scope: job.scope.clone(),
                        state: account_store::ACTIVE.into(),
                        created_at: now,
                        updated_at: now,
                    };
                    account_store::insert(c, &row)?;
                    row.id
                }
            };
            let code = super::grants::issue_code(
                c,
                &job.application_id,
                &id,
                &job.scope,
                &job.callback_url,
            )?;
            Ok((id, code))
        })
    };
    match attempt(conn) {
        // Two jobs for one email raced to create its account: the loser links to it.
        Err(e) if db::is_unique_violation(&e) => attempt(conn),
        other => other,
    }
}
