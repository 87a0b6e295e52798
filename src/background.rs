//! Background tasks of a running gateway.

use std::time::Duration;

use crate::service::events;
use crate::store::Db;

/// Numbers committed events (see `store::events::sequence_pending`) shortly after they
/// commit, so streams and deliveries never wait for a reader to do it.
pub async fn sequencer(db: Db, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if let Err(e) = db.run(events::sequence_all).await {
            tracing::warn!(error = %e, "event sequencer");
        }
    }
}
