//! Delivery metrics in Prometheus' text format: counters and a latency histogram kept in
//! process (per instance, as Prometheus expects), queue gauges read from the database at
//! scrape time (shared by all instances).

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Outcomes of an attempt, as the `outcome` label.
#[derive(Debug, Clone, Copy)]
pub enum Outcome {
    /// 2xx.
    Delivered,
    /// Failed; will be retried.
    Retrying,
    /// Failed for the last time (dead letter).
    Failed,
    /// 410 Gone: the endpoint was disabled.
    Gone,
}

const OUTCOMES: [(&str, Outcome); 4] = [
    ("delivered", Outcome::Delivered),
    ("retrying", Outcome::Retrying),
    ("failed", Outcome::Failed),
    ("gone", Outcome::Gone),
];

/// Upper bounds of the latency buckets, in seconds.
const BUCKETS: [f64; 12] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 15.0,
];

pub struct Metrics {
    outcomes: [AtomicU64; 4],
    buckets: [AtomicU64; 12],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

static METRICS: Metrics = Metrics {
    outcomes: [const { AtomicU64::new(0) }; 4],
    buckets: [const { AtomicU64::new(0) }; 12],
    count: AtomicU64::new(0),
    sum_micros: AtomicU64::new(0),
};

/// The shared queue's depth and the age of its oldest pending delivery.
pub fn queue(
    conn: &mut crate::store::AnyConnection,
) -> Result<(i64, Option<Duration>), crate::error::Error> {
    let (depth, oldest) = crate::store::deliveries::queue_stats(conn)?;
    let age = oldest.and_then(|t| (crate::store::now() - t).to_std().ok());
    Ok((depth, age))
}

pub fn global() -> &'static Metrics {
    &METRICS
}

impl Metrics {
    /// Counts `n` deliveries that ended an attempt with `outcome`.
    pub fn outcome(&self, outcome: Outcome, n: u64) {
        self.outcomes[outcome as usize].fetch_add(n, Ordering::Relaxed);
    }

    /// Deliveries by the outcome of their attempt, as `scimgate_webhook_deliveries_total`
    /// shows them (this instance, since it started).
    pub fn outcome_counts(&self) -> [(&'static str, u64); 4] {
        OUTCOMES.map(|(label, o)| (label, self.outcomes[o as usize].load(Ordering::Relaxed)))
    }

    /// Records the latency of one HTTP attempt.
    pub fn latency(&self, d: Duration) {
        let secs = d.as_secs_f64();
        for (i, bound) in BUCKETS.iter().enumerate() {
            if secs <= *bound {
                self.buckets[i].fetch_add(1, Ordering::Relaxed);
            }
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_micros
            .fetch_add(d.as_micros() as u64, Ordering::Relaxed);
    }

    /// The exposition, with the queue depth and the age of the oldest pending delivery.
    pub fn render(&self, queue_depth: i64, oldest_pending_age: Option<Duration>) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "# HELP scimgate_webhook_deliveries_total Webhook delivery attempts by outcome.\n\
             # TYPE scimgate_webhook_deliveries_total counter"
        );
        for (label, o) in OUTCOMES {
            let v = self.outcomes[o as usize].load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "scimgate_webhook_deliveries_total{{outcome=\"{label}\"}} {v}"
            );
        }
        let _ = writeln!(
            out,
            "# HELP scimgate_webhook_attempt_duration_seconds Time from sending a webhook to its response.\n\
             # TYPE scimgate_webhook_attempt_duration_seconds histogram"
        );
        for (i, bound) in BUCKETS.iter().enumerate() {
            let v = self.buckets[i].load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "scimgate_webhook_attempt_duration_seconds_bucket{{le=\"{bound}\"}} {v}"
            );
        }
        let count = self.count.load(Ordering::Relaxed);
        let sum = self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(
            out,
            "scimgate_webhook_attempt_duration_seconds_bucket{{le=\"+Inf\"}} {count}\n\
             scimgate_webhook_attempt_duration_seconds_sum {sum}\n\
             scimgate_webhook_attempt_duration_seconds_count {count}"
        );
        let _ = writeln!(
            out,
            "# HELP scimgate_webhook_queue_depth Deliveries waiting to be sent (all instances).\n\
             # TYPE scimgate_webhook_queue_depth gauge\n\
             scimgate_webhook_queue_depth {queue_depth}"
        );
        let age = oldest_pending_age.map_or(0.0, |d| d.as_secs_f64());
        let _ = writeln!(
            out,
            "# HELP scimgate_webhook_oldest_pending_age_seconds Age of the oldest undelivered delivery.\n\
             # TYPE scimgate_webhook_oldest_pending_age_seconds gauge\n\
             scimgate_webhook_oldest_pending_age_seconds {age}"
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prometheus_text() {
        let m = Metrics {
            outcomes: [const { AtomicU64::new(0) }; 4],
            buckets: [const { AtomicU64::new(0) }; 12],
            count: AtomicU64::new(0),
            sum_micros: AtomicU64::new(0),
        };
        m.outcome(Outcome::Delivered, 3);
        m.outcome(Outcome::Gone, 1);
        m.latency(Duration::from_millis(20));
        let text = m.render(7, Some(Duration::from_secs(2)));
        assert!(text.contains("scimgate_webhook_deliveries_total{outcome=\"delivered\"} 3"));
        assert!(text.contains("scimgate_webhook_deliveries_total{outcome=\"gone\"} 1"));
        assert!(text.contains("scimgate_webhook_attempt_duration_seconds_bucket{le=\"0.01\"} 0"));
        assert!(text.contains("scimgate_webhook_attempt_duration_seconds_bucket{le=\"0.025\"} 1"));
        assert!(text.contains("scimgate_webhook_attempt_duration_seconds_count 1"));
        assert!(text.contains("scimgate_webhook_queue_depth 7"));
        assert!(text.contains("scimgate_webhook_oldest_pending_age_seconds 2"));
    }
}
