//! Which endpoint gets which event. Runs in the transaction that numbers a directory's
//! events (see [`crate::store::events`]), so each event is queued exactly once, in
//! sequence order, for every endpoint subscribed to it.

use crate::error::Error;
use crate::store::deliveries;
use crate::store::events::{self, EventRow};
use crate::store::{now, AnyConnection};

/// Queues a directory's events numbered after `after_sequence`: to its own endpoints by
/// their subscriptions, and `dsync.*` ones to the global endpoint as well. Returns how
/// many deliveries it queued.
pub fn fan_out(
    conn: &mut AnyConnection,
    directory_id: &str,
    after_sequence: i64,
) -> Result<usize, Error> {
    let endpoints = deliveries::receiving_endpoints(conn, directory_id)?;
    if endpoints.is_empty() {
        return Ok(0);
    }
    let new_events: Vec<EventRow> = events::all_after(conn, directory_id, after_sequence)?;
    let mut pairs = Vec::new();
    for e in &new_events {
        for ep in &endpoints {
            let global = ep.directory_id.is_none();
            if global && !e.event_type.starts_with("dsync.") {
                continue;
            }
            if ep.subscribes(&e.event_type) {
                pairs.push((ep.id.clone(), e));
            }
        }
    }
    deliveries::enqueue(conn, &pairs, now())?;
    Ok(pairs.len())
}
