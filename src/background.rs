//! Background tasks of a running gateway: the event sequencer (which also fans events
//! out to webhook endpoints) and the pruning of old delivery logs.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;

use crate::directory::events;
use crate::store::{deliveries, webhooks, Db};
use crate::webhooks::delivery::Dispatcher;

/// What wakes the sequencer: the directories this instance's writes touched (numbered
/// without first asking which directories have events pending), or anything.
#[derive(Default)]
pub struct Wakeup {
    dirty: Mutex<HashSet<String>>,
    notify: Notify,
}

impl Wakeup {
    /// A write of this instance committed events of `directory_id`.
    pub fn directory(&self, directory_id: &str) {
        self.mark(directory_id);
        self.notify.notify_one();
    }

    /// A write committed events of directories not named (admin changes).
    pub fn any(&self) {
        self.directory("");
    }

    /// Remembers a directory to number (`""`: all of them) without waking.
    fn mark(&self, directory_id: &str) {
        if let Ok(mut dirty) = self.dirty.lock() {
            dirty.insert(directory_id.to_string());
        }
    }

    /// The directories to number now; `None` for every directory with pending events.
    fn take(&self) -> Option<Vec<String>> {
        let dirty: Vec<String> = self
            .dirty
            .lock()
            .map(|mut d| d.drain().collect())
            .unwrap_or_else(|_| vec![String::new()]);
        (!dirty.iter().any(String::is_empty)).then_some(dirty)
    }
}

/// Numbers committed events (see `store::events::sequence_pending`) and queues their
/// deliveries shortly after they commit: at once when `wake` is told of a write in this
/// instance, else every `every` (writes of other instances, and any missed).
pub async fn sequencer(
    db: Db,
    every: Duration,
    wake: Arc<Wakeup>,
    dispatcher: Dispatcher,
    provisioning: crate::provisioning::Handle,
) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let these = tokio::select! {
            _ = tick.tick() => None,
            _ = wake.notify.notified() => wake.take(),
        };
        let result = match these.clone() {
            Some(dirs) => db.run(move |c| events::sequence_these(c, &dirs)).await,
            None => {
                // A full pass covers what writes marked meanwhile.
                let _ = wake.take();
                db.run(events::sequence_all).await
            }
        };
        // Directories attached to a unit follow their new events (the follower ignores
        // the others without a query) — also when this pass found them already numbered
        // by a full pass, which does not say which directories it numbered.
        if result.is_ok() {
            match &these {
                Some(dirs) => dirs.iter().for_each(|d| provisioning.directory(d)),
                None if result.as_ref().is_ok_and(|n| *n > 0) => provisioning.all(),
                None => {}
            }
        }
        match result {
            Ok(0) => {}
            Ok(_) => dispatcher.wake(),
            Err(e) => {
                tracing::warn!(error = %e, "event sequencer");
                // Try those directories again soon (a dead pooled connection fails once),
                // not only at the next poll.
                match these {
                    Some(dirs) => dirs.iter().for_each(|d| wake.mark(d)),
                    None => wake.mark(""),
                }
                let wake = wake.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    wake.notify.notify_one();
                });
            }
        }
    }
}

/// On PostgreSQL: hears other instances say they queued deliveries and wakes this
/// instance's dispatcher (which may hold those endpoints), so cross-instance delivery
/// waits for no poll; likewise for directories attached, or with events to provision
/// (this instance may hold their cursors). Reading the listener sends nothing to the server; on a lost
/// connection it reconnects with backoff and wakes the dispatcher once (it may have
/// missed a notification). Returns at once on SQLite.
pub async fn listen(db: Db, dispatcher: Dispatcher, provisioning: crate::provisioning::Handle) {
    let mut backoff = Duration::from_millis(100);
    loop {
        let connecting = db.clone();
        let connected = tokio::task::spawn_blocking(move || connecting.listener())
            .await
            .unwrap_or_else(|e| Err(crate::error::Error::Internal(e.to_string())));
        let mut listener = match connected {
            Ok(Some(l)) => l,
            Ok(None) => return,
            Err(e) => {
                tracing::warn!(error = %e, "listening for other instances");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(30));
                continue;
            }
        };
        backoff = Duration::from_millis(100);
        dispatcher.wake();
        loop {
            tokio::time::sleep(Duration::from_millis(10)).await;
            match listener.received() {
                Ok(payloads) => {
                    if payloads
                        .iter()
                        .any(|p| p == crate::store::notify::DELIVERIES)
                    {
                        dispatcher.wake();
                    }
                    payloads
                        .iter()
                        .filter_map(|p| p.strip_prefix(crate::store::notify::PROVISIONING))
                        .for_each(|d| provisioning.heard(d));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "listener connection lost");
                    break;
                }
            }
        }
    }
}

/// Hourly: forgets attempt logs and finished deliveries older than `retention`, and
/// endpoints of deleted directories once drained; refreshes SQLite's statistics.
pub async fn prune(db: Db, retention: chrono::Duration) {
    let mut tick = tokio::time::interval(Duration::from_secs(3600));
    loop {
        tick.tick().await;
        let result = db
            .run(move |c| {
                crate::store::maintain(c)?;
                // However much has piled up, pruning must not be cut off.
                crate::store::unbounded(c, |c| {
                    let before = crate::store::now() - retention;
                    let n = deliveries::prune(c, before)?;
                    // Enterprise Connect: codes and tokens that expired, were used or
                    // revoked, finished consents and authorizations.
                    let n = n
                        + crate::store::tokens::prune(c, before)?
                        + crate::store::consent_flows::prune(c, crate::store::now())?
                        + crate::store::authorization_jobs::prune(c, before)?;
                    Ok(n + webhooks::purge_retired(c)?)
                })
            })
            .await;
        if let Err(e) = result {
            tracing::warn!(error = %e, "pruning delivery logs and spent tokens");
        }
    }
}
