//! Background tasks of a running gateway: the event sequencer (which also fans events
//! out to webhook endpoints) and the pruning of old delivery logs.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;

use crate::directory::events;
use crate::store::{deliveries, webhooks, Db};
use crate::webhooks::delivery::Dispatcher;

/// Numbers committed events (see `store::events::sequence_pending`) and queues their
/// deliveries shortly after they commit: at once when `wake` is notified (a write in
/// this instance), else every `every` (writes of other instances).
pub async fn sequencer(db: Db, every: Duration, wake: Arc<Notify>, dispatcher: Dispatcher) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = wake.notified() => {}
        }
        match db.run(events::sequence_all).await {
            Ok(0) => {}
            Ok(_) => dispatcher.wake(),
            Err(e) => tracing::warn!(error = %e, "event sequencer"),
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
                    let n = deliveries::prune(c, crate::store::now() - retention)?;
                    Ok(n + webhooks::purge_retired(c)?)
                })
            })
            .await;
        if let Err(e) = result {
            tracing::warn!(error = %e, "pruning delivery logs");
        }
    }
}
