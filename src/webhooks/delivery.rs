//! Delivery workers. A dispatcher leases endpoints whose queue head is due and runs one
//! task per leased endpoint; the task sends that endpoint's deliveries strictly in order
//! (the next only once the previous succeeded or was given up on), so a slow or dead
//! endpoint holds up nothing but itself. Leases are rows in the database: several
//! instances share the work, and a crashed instance's endpoints are taken over when its
//! lease runs out. Delivery is at least once: a crash between sending and recording
//! means the event is sent again (receivers dedupe by `webhook-id`).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::NaiveDateTime;
use tokio::sync::{watch, Notify};
use tokio::task::JoinSet;

use super::metrics::{self, Outcome};
use super::signing;
use crate::error::Error;
use crate::outbound::{self, safety};
use crate::store::deliveries::{self, AttemptRow, DeliveryRow};
use crate::store::events::EventRow;
use crate::store::webhooks::{self as endpoints, EndpointRow};
use crate::store::{now, Db};

/// Largest response excerpt kept per attempt.
pub const EXCERPT_BYTES: usize = 4096;
/// Deliveries loaded per round of an endpoint task.
const CHUNK: i64 = 100;
/// Rounds an endpoint task runs before giving its lease back, so a busy endpoint does
/// not keep a worker slot from others.
const ROUNDS: usize = 20;
/// Longest wait a `Retry-After` header can ask for.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 3600);

/// How deliveries are made (from [`crate::config::Config`]).
#[derive(Debug, Clone)]
pub struct Settings {
    /// Delay before each attempt: the first is usually 0; its length is the number of
    /// attempts before a delivery is given up on.
    pub schedule: Vec<Duration>,
    pub timeout: Duration,
    /// How long a claim on an endpoint lasts without renewal (longer than `timeout`).
    pub lease: Duration,
    /// Endpoints served at once by this instance.
    pub concurrency: usize,
    pub allow_private: bool,
    /// How often due work is looked for when nothing wakes the dispatcher.
    pub poll: Duration,
    /// Opens the endpoints' signing secrets, which are stored sealed.
    pub sealer: crate::secrets::Sealer,
}

impl Settings {
    /// The default schedule of DESIGN.md §5: immediately, 5 s, 5 min, 30 min, 2 h, 5 h,
    /// 10 h, 10 h.
    pub fn default_schedule() -> Vec<Duration> {
        [0, 5, 300, 1800, 7200, 18000, 36000, 36000]
            .into_iter()
            .map(Duration::from_secs)
            .collect()
    }
}

/// The running dispatcher's handle: wake it when events were fanned out; stop it to
/// shut down (in-flight attempts finish, leases are released).
#[derive(Clone)]
pub struct Dispatcher {
    wake: Arc<Notify>,
    stop: watch::Sender<bool>,
    done: watch::Receiver<bool>,
}

impl Dispatcher {
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Stops claiming work, lets in-flight attempts finish and releases this instance's
    /// leases; returns when that is done.
    pub async fn shutdown(&self) {
        let _ = self.stop.send(true);
        let mut done = self.done.clone();
        while !*done.borrow() {
            if done.changed().await.is_err() {
                break;
            }
        }
    }
}

struct Ctx {
    db: Db,
    settings: Settings,
    client: outbound::Client,
    owner: String,
    stop: watch::Receiver<bool>,
    /// The dispatcher's wake-up: endpoint tasks ring it when work of theirs comes due.
    wake: Arc<Notify>,
}

impl Ctx {
    fn stopping(&self) -> bool {
        *self.stop.borrow()
    }

    /// How long a round may go between lease renewals: an attempt (up to the timeout)
    /// started just before this must still end inside the lease.
    fn renew_every(&self) -> Duration {
        self.settings.lease.saturating_sub(self.settings.timeout) / 2
    }

    /// Wakes the dispatcher at `at` (now if past): a retry this instance scheduled is
    /// claimed when due, not at the next poll.
    fn wake_at(&self, at: NaiveDateTime) {
        let wake = self.wake.clone();
        // A little after `at`: the claim compares with a clock truncated to milliseconds,
        // and a retry time with sub-millisecond jitter would not be due yet at `at`.
        let wait = (at - now()).to_std().unwrap_or(Duration::ZERO) + Duration::from_millis(2);
        tokio::spawn(async move {
            tokio::time::sleep(wait).await;
            wake.notify_one();
        });
    }
}

/// Starts the dispatcher on the current tokio runtime.
pub fn start(db: Db, settings: Settings) -> Result<Dispatcher, Error> {
    let client = outbound::client(&outbound::Settings {
        timeout: settings.timeout,
        allow_private: settings.allow_private,
    })?;
    let wake = Arc::new(Notify::new());
    let (stop_tx, stop_rx) = watch::channel(false);
    let (done_tx, done_rx) = watch::channel(false);
    let ctx = Arc::new(Ctx {
        db,
        settings,
        client,
        owner: format!("inst_{}", uuid::Uuid::new_v4().simple()),
        stop: stop_rx,
        wake: wake.clone(),
    });
    tokio::spawn(run(ctx, wake.clone(), done_tx));
    Ok(Dispatcher {
        wake,
        stop: stop_tx,
        done: done_rx,
    })
}

async fn run(ctx: Arc<Ctx>, wake: Arc<Notify>, done: watch::Sender<bool>) {
    let mut tick = tokio::time::interval(ctx.settings.poll);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut stop = ctx.stop.clone();
    let mut tasks: JoinSet<()> = JoinSet::new();
    // Endpoint of each running task, so a task that panicked still frees its endpoint.
    let mut busy: HashMap<tokio::task::Id, String> = HashMap::new();
    let finished = |busy: &mut HashMap<tokio::task::Id, String>,
                    r: Result<(tokio::task::Id, ()), tokio::task::JoinError>| {
        let id = match r {
            Ok((id, ())) => id,
            Err(e) => {
                tracing::error!(error = %e, "webhook delivery task failed");
                e.id()
            }
        };
        busy.remove(&id);
    };
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = wake.notified() => {}
            Some(r) = tasks.join_next_with_id(), if !tasks.is_empty() => finished(&mut busy, r),
            _ = stop.changed() => {}
        }
        while let Some(r) = tasks.try_join_next_with_id() {
            finished(&mut busy, r);
        }
        if ctx.stopping() {
            break;
        }
        let free = ctx.settings.concurrency.saturating_sub(busy.len());
        if free == 0 {
            continue;
        }
        let (owner, lease, exclude) = (
            ctx.owner.clone(),
            ctx.settings.lease,
            busy.values().cloned().collect::<Vec<_>>(),
        );
        let claimed = ctx
            .db
            .run(move |c| {
                let t = now();
                endpoints::claim(
                    c,
                    &owner,
                    t,
                    crate::store::later(t, lease),
                    &exclude,
                    free as i64,
                )
            })
            .await;
        match claimed {
            Ok(ids) => {
                for id in ids {
                    let task = tasks.spawn(drive(ctx.clone(), id.clone()));
                    busy.insert(task.id(), id);
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "claiming webhook endpoints");
                // Soon again, not only at the next poll.
                ctx.wake_at(crate::store::later(now(), Duration::from_secs(1)));
            }
        }
    }
    while tasks.join_next().await.is_some() {}
    let owner = ctx.owner.clone();
    if let Err(e) = ctx.db.run(move |c| endpoints::release_all(c, &owner)).await {
        tracing::warn!(error = %e, "releasing webhook leases");
    }
    let _ = done.send(true);
}

/// What one round of an endpoint task loaded.
struct Round {
    endpoint: EndpointRow,
    log_responses: bool,
    queue: Vec<(DeliveryRow, EventRow)>,
}

/// Serves one leased endpoint until its queue is empty, its head must wait, the task has
/// run its rounds, or the instance stops.
async fn drive(ctx: Arc<Ctx>, id: String) {
    if let Err(e) = drive_rounds(&ctx, &id).await {
        tracing::warn!(endpoint = %id, error = %e, "webhook delivery round failed");
        // Give the endpoint back due, so a transient database error only delays it.
        let _ = release(&ctx, &id, Some(now()), 0).await;
        ctx.wake_at(crate::store::later(now(), Duration::from_secs(1)));
    }
}

/// Gives `id` back (see [`endpoints::release`]): due at `next`, or idle when `None`
/// unless work arrived since `version`. Returns whether it was released.
async fn release(
    ctx: &Ctx,
    id: &str,
    next: Option<NaiveDateTime>,
    version: i64,
) -> Result<bool, Error> {
    let (eid, owner) = (id.to_string(), ctx.owner.clone());
    ctx.db
        .run(move |c| endpoints::release(c, &eid, &owner, next, version))
        .await
}

async fn drive_rounds(ctx: &Arc<Ctx>, id: &str) -> Result<(), Error> {
    for _ in 0..ROUNDS {
        if ctx.stopping() {
            return Ok(());
        }
        let (eid, owner, lease) = (id.to_string(), ctx.owner.clone(), ctx.settings.lease);
        let round =
            ctx.db
                .run(move |c| -> Result<Option<Round>, Error> {
                    if !endpoints::renew(c, &eid, &owner, lease)? {
                        return Ok(None);
                    }
                    let Some(endpoint) = endpoints::get(c, &eid)? else {
                        return Ok(None);
                    };
                    let log_responses = match &endpoint.directory_id {
                        Some(d) => crate::store::directories::get(c, d)?
                            .is_some_and(|d| d.log_webhook_events),
                        None => false,
                    };
                    let limit = endpoint.batch_size.unwrap_or(1).clamp(1, 1000).max(CHUNK);
                    let queue = deliveries::queue_head(c, &eid, limit)?;
                    Ok(Some(Round {
                        endpoint,
                        log_responses,
                        queue,
                    }))
                })
                .await?;
        let Some(round) = round else {
            return Ok(()); // lease lost or endpoint deleted
        };
        let version = round.endpoint.fanout_version;
        let head_due = round.queue.first().map(|(d, _)| d.next_attempt_at);
        let give_back = if !round.endpoint.enabled {
            Some(Some(now()))
        } else {
            match head_due {
                None => Some(None),
                Some(at) if at > now() => Some(Some(at)),
                Some(_) => None,
            }
        };
        if let Some(next) = give_back {
            if release(ctx, id, next, version).await? || next.is_some() {
                if let Some(at) = next {
                    ctx.wake_at(at);
                }
                return Ok(());
            }
            continue; // new work arrived while we looked: go again
        }
        match send_round(ctx, round).await? {
            Next::Continue => {}
            Next::WaitUntil(at) => {
                release(ctx, id, Some(at), version).await?;
                ctx.wake_at(at);
                return Ok(());
            }
            Next::Stop => return Ok(()),
        }
    }
    // Busy endpoint: yield the slot, still due.
    release(ctx, id, Some(now()), 0).await?;
    ctx.wake.notify_one();
    Ok(())
}

enum Next {
    Continue,
    WaitUntil(NaiveDateTime),
    Stop,
}

/// The result of one HTTP attempt.
#[derive(Debug)]
pub struct Attempt {
    pub status: Option<u16>,
    pub retry_after: Option<Duration>,
    pub error: Option<String>,
    pub excerpt: String,
    pub duration: Duration,
}

impl Attempt {
    fn succeeded(&self) -> bool {
        self.status.is_some_and(|s| (200..300).contains(&s))
    }
}

/// Sends the loaded queue in order; records outcomes as it goes.
async fn send_round(ctx: &Arc<Ctx>, round: Round) -> Result<Next, Error> {
    let Round {
        endpoint,
        log_responses,
        queue,
    } = round;
    let batch = endpoint.batch_size.unwrap_or(1).max(1) as usize;
    let groups: Vec<&[(DeliveryRow, EventRow)]> = queue.chunks(batch).collect();
    let mut done: Vec<i64> = Vec::new();
    let mut log: Vec<AttemptRow> = Vec::new();
    let mut last_status = 200;
    let mut next = Next::Continue;
    let mut renewed = Instant::now();
    for group in groups {
        if ctx.stopping() {
            next = Next::Stop;
            break;
        }
        // A round of slow but successful attempts can outlast the lease: renew it well
        // before it runs out, and stop if another instance has taken the endpoint.
        if renewed.elapsed() > ctx.renew_every() {
            let (eid, owner, lease) = (endpoint.id.clone(), ctx.owner.clone(), ctx.settings.lease);
            if !ctx
                .db
                .run(move |c| endpoints::renew(c, &eid, &owner, lease))
                .await?
            {
                next = Next::Stop;
                break;
            }
            renewed = Instant::now();
        }
        let (msg_id, body) = message(&endpoint, group);
        let attempt = send(ctx, &endpoint, &msg_id, &body).await;
        metrics::global().latency(attempt.duration);
        let t = now();
        for (d, _) in group {
            log.push(attempt_row(d, &attempt, log_responses, t));
        }
        let positions: Vec<i64> = group.iter().map(|(d, _)| d.position).collect();
        if attempt.succeeded() {
            metrics::global().outcome(Outcome::Delivered, positions.len() as u64);
            last_status = attempt.status.unwrap_or(200) as i64;
            done.extend(positions);
            continue;
        }
        // A failure: record what succeeded so far with it, then decide what comes next.
        let gone = attempt.status == Some(410);
        let made = group.iter().map(|(d, _)| d.attempts).max().unwrap_or(0) + 1;
        let retry_at = (!gone)
            .then(|| retry_delay(&ctx.settings.schedule, made, attempt.retry_after))
            .flatten()
            .map(|d| crate::store::later(t, d));
        let outcome = match (gone, retry_at) {
            (true, _) => Outcome::Gone,
            (false, Some(_)) => Outcome::Retrying,
            (false, None) => Outcome::Failed,
        };
        metrics::global().outcome(outcome, positions.len() as u64);
        let error = attempt
            .error
            .clone()
            .unwrap_or_else(|| match attempt.status {
                Some(s) => format!("HTTP {s}"),
                None => "no response".into(),
            });
        let failure = Failure {
            positions,
            // 410 leaves the delivery queued: re-enabling the endpoint resumes it.
            retry_at: if gone { Some(t) } else { retry_at },
            status: attempt.status.map(i64::from),
            error,
            gone,
        };
        let (delivered, attempts) = (std::mem::take(&mut done), std::mem::take(&mut log));
        if !record(
            ctx,
            &endpoint.id,
            delivered,
            last_status,
            Some(failure),
            attempts,
            t,
        )
        .await?
        {
            return Ok(Next::Stop);
        }
        if gone {
            tracing::warn!(endpoint = %endpoint.id, "webhook endpoint answered 410 Gone: disabled");
            return Ok(Next::Stop);
        }
        match retry_at {
            Some(at) => return Ok(Next::WaitUntil(at)),
            None => {
                tracing::warn!(endpoint = %endpoint.id, attempts = made, "webhook delivery given up (dead letter)");
                continue; // the endpoint moves on to its next event
            }
        }
    }
    if (!done.is_empty() || !log.is_empty())
        && !record(ctx, &endpoint.id, done, last_status, None, log, now()).await?
    {
        return Ok(Next::Stop);
    }
    Ok(next)
}

/// A failed attempt, as [`record`] writes it.
struct Failure {
    positions: Vec<i64>,
    /// When to try again; `None`: given up (dead letter).
    retry_at: Option<NaiveDateTime>,
    status: Option<i64>,
    error: String,
    /// 410: the endpoint is disabled.
    gone: bool,
}

/// Writes a round's outcomes in one transaction — if this instance still holds the
/// endpoint's lease (after a takeover the other instance owns the queue and sends these
/// again: at least once). Returns whether it did.
async fn record(
    ctx: &Arc<Ctx>,
    endpoint_id: &str,
    delivered: Vec<i64>,
    last_status: i64,
    failure: Option<Failure>,
    attempts: Vec<AttemptRow>,
    t: NaiveDateTime,
) -> Result<bool, Error> {
    let (eid, owner, lease) = (
        endpoint_id.to_string(),
        ctx.owner.clone(),
        ctx.settings.lease,
    );
    ctx.db
        .run(move |c| {
            crate::store::write_tx(c, |c| {
                if !endpoints::renew(c, &eid, &owner, lease)? {
                    return Ok(false);
                }
                deliveries::mark_delivered(c, &eid, &delivered, last_status, t)?;
                if let Some(f) = &failure {
                    deliveries::mark_failed_attempt(
                        c,
                        &eid,
                        &f.positions,
                        f.retry_at,
                        f.status,
                        &f.error,
                        t,
                    )?;
                }
                deliveries::insert_attempts(c, &attempts)?;
                if failure.as_ref().is_some_and(|f| f.gone) {
                    endpoints::disable(c, &eid, "receiver answered 410 Gone", t)?;
                    // Give it back due: claims skip it while disabled, and enabling it
                    // makes it claimable at once.
                    endpoints::release(c, &eid, &owner, Some(t), 0)?;
                }
                Ok(true)
            })
        })
        .await
}

/// The delay before the next attempt after `made` attempts, or `None` when the schedule
/// is exhausted. ±20 % jitter; a receiver's `Retry-After` replaces the schedule's delay.
pub fn retry_delay(
    schedule: &[Duration],
    made: i64,
    retry_after: Option<Duration>,
) -> Option<Duration> {
    let base = *schedule.get(usize::try_from(made).ok()?)?;
    if let Some(ra) = retry_after {
        return Some(ra.min(MAX_RETRY_AFTER));
    }
    let mut r = [0u8; 4];
    let unit = match getrandom::fill(&mut r) {
        Ok(()) => f64::from(u32::from_le_bytes(r)) / f64::from(u32::MAX),
        Err(_) => 0.5,
    };
    Some(base.mul_f64(0.8 + 0.4 * unit))
}

/// The body and `webhook-id` of a delivery: the event and its id, or with batching a
/// JSON array of events and an id derived from all of theirs — a retry may carry more
/// events than the first attempt did, and must not be dropped as a duplicate of it.
fn message(endpoint: &EndpointRow, group: &[(DeliveryRow, EventRow)]) -> (String, Vec<u8>) {
    use sha2::Digest;
    let events: Vec<serde_json::Value> = group.iter().map(|(_, e)| e.to_json()).collect();
    if endpoint.batch_size.unwrap_or(1) > 1 {
        let mut h = sha2::Sha256::new();
        for (_, e) in group {
            h.update(e.id.as_bytes());
            h.update(b"\n");
        }
        let digest = hex::encode(h.finalize());
        let msg_id = format!("msg_{}", &digest[..32]);
        let body = serde_json::Value::Array(events).to_string();
        return (msg_id, body.into_bytes());
    }
    let msg_id = group.first().map(|(_, e)| e.id.clone()).unwrap_or_default();
    let body = events
        .into_iter()
        .next()
        .map(|e| e.to_string())
        .unwrap_or_default();
    (msg_id, body.into_bytes())
}

fn attempt_row(d: &DeliveryRow, a: &Attempt, log_responses: bool, at: NaiveDateTime) -> AttemptRow {
    AttemptRow {
        id: format!("att_{}", uuid::Uuid::now_v7().simple()),
        endpoint_id: d.endpoint_id.clone(),
        event_id: d.event_id.clone(),
        directory_id: d.directory_id.clone(),
        attempt: d.attempts + 1,
        status_code: a.status.map(i64::from),
        duration_ms: a.duration.as_millis() as i64,
        error: a.error.clone(),
        // Failures always keep the excerpt (to debug them); successes when asked.
        response_excerpt: (log_responses || !a.succeeded()).then(|| a.excerpt.clone()),
        created_at: at,
    }
}

/// One signed POST. Never fails: every problem is an [`Attempt`] without a 2xx status.
async fn send(ctx: &Ctx, endpoint: &EndpointRow, msg_id: &str, body: &[u8]) -> Attempt {
    let started = Instant::now();
    let failed = |error: String| Attempt {
        status: None,
        retry_after: None,
        error: Some(error),
        excerpt: String::new(),
        duration: started.elapsed(),
    };
    let url = match safety::check_url(&endpoint.url, ctx.settings.allow_private) {
        Ok(u) => u,
        Err(e) => return failed(e.to_string()),
    };
    let at = chrono::Utc::now();
    // A secret the configured keys cannot open fails the attempt with the reason (and is
    // retried): the endpoint's log says which key is missing.
    let secrets = match endpoint.signing_secrets(&ctx.settings.sealer, at.naive_utc()) {
        Ok(s) => s,
        Err(e) => return failed(e.to_string()),
    };
    let signature = secrets
        .iter()
        .map(|s| signing::standard_signature(s.expose(), msg_id, at.timestamp(), body))
        .collect::<Vec<_>>()
        .join(" ");
    let current = secrets.first().map(|s| s.expose()).unwrap_or_default();
    let request = ctx
        .client
        .post(url)
        .header("content-type", "application/json")
        .header("webhook-id", msg_id)
        .header("webhook-timestamp", at.timestamp().to_string())
        .header("webhook-signature", signature)
        .header(
            "BoxyHQ-Signature",
            signing::boxyhq_signature(current, at.timestamp_millis(), body),
        )
        .body(body.to_vec());
    let mut response = match request.send().await {
        Ok(r) => r,
        Err(e) => return failed(outbound::describe(e)),
    };
    let status = response.status().as_u16();
    let retry_after = outbound::retry_after(response.headers());
    let mut excerpt = Vec::new();
    let mut error = None;
    while excerpt.len() < EXCERPT_BYTES {
        match response.chunk().await {
            Ok(Some(bytes)) => excerpt.extend_from_slice(&bytes),
            Ok(None) => break,
            Err(e) => {
                error = Some(outbound::describe(e));
                break;
            }
        }
    }
    excerpt.truncate(EXCERPT_BYTES);
    Attempt {
        status: Some(status),
        retry_after,
        error,
        excerpt: String::from_utf8_lossy(&excerpt).into_owned(),
        duration: started.elapsed(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_delays_follow_the_schedule_with_jitter() {
        let s = Settings::default_schedule();
        assert_eq!(retry_delay(&s, 0, None), Some(Duration::ZERO));
        for _ in 0..50 {
            let d = retry_delay(&s, 1, None).unwrap();
            assert!(
                d >= Duration::from_secs(4) && d <= Duration::from_secs(6),
                "{d:?}"
            );
        }
        assert_eq!(
            retry_delay(&s, 3, Some(Duration::from_secs(7))),
            Some(Duration::from_secs(7))
        );
        assert_eq!(retry_delay(&s, 8, None), None);
        assert_eq!(
            retry_delay(&s, 2, Some(Duration::from_secs(10 * 86400))),
            Some(MAX_RETRY_AFTER)
        );
    }
}
