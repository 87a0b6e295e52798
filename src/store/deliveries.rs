//! Delivery queues: one row per (endpoint, event), ordered per endpoint by `position`,
//! and the log of every attempt.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::deliveries::{self, dsl as dl};
use super::schema::delivery_attempts::{self, dsl as at};
use super::schema::events::{self, dsl as ev};
use super::schema::webhook_endpoints::{self, dsl as w};
use super::{AnyConnection, Page, SqlValue};
use crate::error::Error;
use crate::store::events::EventRow;
use crate::store::webhooks::EndpointRow;

pub const PENDING: &str = "pending";
pub const DELIVERED: &str = "delivered";
pub const FAILED: &str = "failed";

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = deliveries)]
pub struct DeliveryRow {
    pub position: i64,
    pub endpoint_id: String,
    pub event_id: String,
    pub directory_id: String,
    pub sequence: i64,
    pub status: String,
    pub attempts: i64,
    pub next_attempt_at: NaiveDateTime,
    pub last_status: Option<i64>,
    pub last_error: Option<String>,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = delivery_attempts)]
pub struct AttemptRow {
    pub id: String,
    pub endpoint_id: String,
    pub event_id: String,
    pub directory_id: String,
    pub attempt: i64,
    pub status_code: Option<i64>,
    pub duration_ms: i64,
    pub error: Option<String>,
    pub response_excerpt: Option<String>,
    pub created_at: NaiveDateTime,
}

const QUEUE_COLUMNS: &[&str] = &[
    "endpoint_id",
    "event_id",
    "directory_id",
    "sequence",
    "status",
    "attempts",
    "next_attempt_at",
    "created_at",
    "updated_at",
];

/// Queues `(endpoint, event)` pairs at the end of each endpoint's queue, in the order
/// given, and marks the endpoints due.
pub fn enqueue(
    conn: &mut AnyConnection,
    pairs: &[(String, &EventRow)],
    now: NaiveDateTime,
) -> Result<(), Error> {
    let rows: Vec<Vec<SqlValue>> = pairs
        .iter()
        .map(|(endpoint, e)| {
            vec![
                SqlValue::Text(endpoint.clone()),
                SqlValue::Text(e.id.clone()),
                SqlValue::Text(e.directory_id.clone()),
                SqlValue::BigInt(e.sequence.unwrap_or(0)),
                SqlValue::Text(PENDING.into()),
                SqlValue::BigInt(0),
                SqlValue::Timestamp(now),
                SqlValue::Timestamp(now),
                SqlValue::Timestamp(now),
            ]
        })
        .collect();
    super::bulk_insert(conn, "deliveries", QUEUE_COLUMNS, &rows)?;
    let mut ids: Vec<String> = pairs.iter().map(|(id, _)| id.clone()).collect();
    ids.sort();
    ids.dedup();
    super::webhooks::mark_due(conn, &ids, now)
}

/// The endpoints that may receive a directory's events: its own (disabled ones too: their
/// queue waits, without gaps, until they are enabled again) and the global endpoint while
/// it is configured and enabled.
pub fn receiving_endpoints(
    conn: &mut AnyConnection,
    directory_id: &str,
) -> Result<Vec<EndpointRow>, Error> {
    Ok(webhook_endpoints::table
        .filter(w::enabled.eq(true).or(w::directory_id.is_not_null()))
        .filter(w::retired.eq(false))
        .filter(
            w::directory_id
                .eq(directory_id)
                .or(w::directory_id.is_null()),
        )
        .order(w::id.asc())
        .select(EndpointRow::as_select())
        .load(conn)?)
}

/// Sends `events` to `endpoint_id` again (replay), attempts starting over. One still
/// pending keeps its place in the queue and becomes due now; one delivered or given up
/// goes to the end of the queue.
pub fn requeue(
    conn: &mut AnyConnection,
    endpoint_id: &str,
    events: &[EventRow],
    now: NaiveDateTime,
) -> Result<usize, Error> {
    let mut pending: std::collections::HashSet<String> = std::collections::HashSet::new();
    for chunk in events.chunks(1000) {
        let ids: Vec<&str> = chunk.iter().map(|e| e.id.as_str()).collect();
        let queued = || {
            deliveries::table
                .filter(dl::endpoint_id.eq(endpoint_id))
                .filter(dl::event_id.eq_any(ids.clone()))
        };
        let still: Vec<String> = queued()
            .filter(dl::status.eq(PENDING))
            .select(dl::event_id)
            .load(conn)?;
        diesel::update(queued().filter(dl::status.eq(PENDING)))
            .set((
                dl::attempts.eq(0),
                dl::next_attempt_at.eq(now),
                dl::updated_at.eq(now),
            ))
            .execute(conn)?;
        diesel::delete(queued().filter(dl::status.ne(PENDING))).execute(conn)?;
        pending.extend(still);
    }
    let pairs: Vec<(String, &EventRow)> = events
        .iter()
        .filter(|e| !pending.contains(&e.id))
        .map(|e| (endpoint_id.to_string(), e))
        .collect();
    enqueue(conn, &pairs, now)?;
    if !pending.is_empty() {
        super::webhooks::mark_due_now(conn, endpoint_id, now)?;
    }
    Ok(events.len())
}

/// The first `limit` pending deliveries of an endpoint, in order, with their events.
pub fn queue_head(
    conn: &mut AnyConnection,
    endpoint_id: &str,
    limit: i64,
) -> Result<Vec<(DeliveryRow, EventRow)>, Error> {
    let rows: Vec<DeliveryRow> = deliveries::table
        .filter(dl::endpoint_id.eq(endpoint_id))
        .filter(dl::status.eq(PENDING))
        .order(dl::position.asc())
        .limit(limit)
        .select(DeliveryRow::as_select())
        .load(conn)?;
    let ids: Vec<&str> = rows.iter().map(|r| r.event_id.as_str()).collect();
    let mut by_id: std::collections::HashMap<String, EventRow> = events::table
        .filter(ev::id.eq_any(ids))
        .select(EventRow::as_select())
        .load(conn)?
        .into_iter()
        .map(|e| (e.id.clone(), e))
        .collect();
    let mut out = Vec::with_capacity(rows.len());
    let mut orphans = Vec::new();
    for r in rows {
        match by_id.remove(&r.event_id) {
            Some(e) => out.push((r, e)),
            None => orphans.push(r.position),
        }
    }
    // An event gone from under its delivery (pruning keeps events that are still
    // pending, so this should not happen): nothing left to send.
    if !orphans.is_empty() {
        diesel::delete(deliveries::table.filter(dl::position.eq_any(orphans))).execute(conn)?;
    }
    Ok(out)
}

/// Marks deliveries done (`positions` as loaded: a replay in between moved the row, and
/// then it stays queued).
pub fn mark_delivered(
    conn: &mut AnyConnection,
    endpoint_id: &str,
    positions: &[i64],
    status_code: i64,
    now: NaiveDateTime,
) -> Result<(), Error> {
    for chunk in positions.chunks(1000) {
        // The endpoint narrows the update to its queue's index; by position alone the
        // planner may scan every pending delivery.
        diesel::update(
            deliveries::table
                .filter(dl::endpoint_id.eq(endpoint_id))
                .filter(dl::position.eq_any(chunk))
                .filter(dl::status.eq(PENDING)),
        )
        .set((
            dl::status.eq(DELIVERED),
            dl::attempts.eq(dl::attempts + 1),
            dl::last_status.eq(Some(status_code)),
            dl::last_error.eq(None::<String>),
            dl::updated_at.eq(now),
        ))
        .execute(conn)?;
    }
    Ok(())
}

/// Records a failed attempt: the delivery waits until `retry_at`, or with `None` is
/// given up on (dead letter).
pub fn mark_failed_attempt(
    conn: &mut AnyConnection,
    endpoint_id: &str,
    positions: &[i64],
    retry_at: Option<NaiveDateTime>,
    status_code: Option<i64>,
    error: &str,
    now: NaiveDateTime,
) -> Result<(), Error> {
    let status = if retry_at.is_some() { PENDING } else { FAILED };
    diesel::update(
        deliveries::table
            .filter(dl::endpoint_id.eq(endpoint_id))
            .filter(dl::position.eq_any(positions))
            .filter(dl::status.eq(PENDING)),
    )
    .set((
        dl::status.eq(status),
        dl::attempts.eq(dl::attempts + 1),
        dl::next_attempt_at.eq(retry_at.unwrap_or(now)),
        dl::last_status.eq(status_code),
        dl::last_error.eq(Some(error)),
        dl::updated_at.eq(now),
    ))
    .execute(conn)?;
    Ok(())
}

pub fn insert_attempts(conn: &mut AnyConnection, rows: &[AttemptRow]) -> Result<(), Error> {
    const COLUMNS: &[&str] = &[
        "id",
        "endpoint_id",
        "event_id",
        "directory_id",
        "attempt",
        "status_code",
        "duration_ms",
        "error",
        "response_excerpt",
        "created_at",
    ];
    let values: Vec<Vec<SqlValue>> = rows
        .iter()
        .map(|a| {
            vec![
                SqlValue::Text(a.id.clone()),
                SqlValue::Text(a.endpoint_id.clone()),
                SqlValue::Text(a.event_id.clone()),
                SqlValue::Text(a.directory_id.clone()),
                SqlValue::BigInt(a.attempt),
                SqlValue::OptBigInt(a.status_code),
                SqlValue::BigInt(a.duration_ms),
                SqlValue::OptText(a.error.clone()),
                SqlValue::OptText(a.response_excerpt.clone()),
                SqlValue::Timestamp(a.created_at),
            ]
        })
        .collect();
    super::bulk_insert(conn, "delivery_attempts", COLUMNS, &values)?;
    Ok(())
}

/// A directory's deliveries, newest first, optionally narrowed by status and endpoint.
pub fn list(
    conn: &mut AnyConnection,
    directory_id: &str,
    status: Option<&str>,
    endpoint_id: Option<&str>,
    page: Page,
) -> Result<Vec<DeliveryRow>, Error> {
    let mut q = deliveries::table
        .filter(dl::directory_id.eq(directory_id))
        .into_boxed();
    if let Some(s) = status {
        q = q.filter(dl::status.eq(s.to_string()));
    }
    if let Some(e) = endpoint_id {
        q = q.filter(dl::endpoint_id.eq(e.to_string()));
    }
    Ok(q.order(dl::position.desc())
        .offset(page.offset)
        .limit(page.limit)
        .select(DeliveryRow::as_select())
        .load(conn)?)
}

pub fn for_event(conn: &mut AnyConnection, event_id: &str) -> Result<Vec<DeliveryRow>, Error> {
    Ok(deliveries::table
        .filter(dl::event_id.eq(event_id))
        .order(dl::position.asc())
        .select(DeliveryRow::as_select())
        .load(conn)?)
}

pub fn attempts_for_event(
    conn: &mut AnyConnection,
    event_id: &str,
) -> Result<Vec<AttemptRow>, Error> {
    Ok(delivery_attempts::table
        .filter(at::event_id.eq(event_id))
        .order((at::created_at.asc(), at::id.asc()))
        .select(AttemptRow::as_select())
        .load(conn)?)
}

pub fn delete_for_endpoint(conn: &mut AnyConnection, endpoint_id: &str) -> Result<(), Error> {
    diesel::delete(deliveries::table.filter(dl::endpoint_id.eq(endpoint_id))).execute(conn)?;
    Ok(())
}

/// Forgets attempts logged before `before` and finished deliveries last touched then,
/// and the events of deleted directories once no endpoint waits for them.
pub fn prune(conn: &mut AnyConnection, before: NaiveDateTime) -> Result<usize, Error> {
    use super::schema::directories;
    let a =
        diesel::delete(delivery_attempts::table.filter(at::created_at.lt(before))).execute(conn)?;
    let d = diesel::delete(
        deliveries::table
            .filter(dl::status.ne(PENDING))
            .filter(dl::updated_at.lt(before)),
    )
    .execute(conn)?;
    let waiting = deliveries::table
        .filter(dl::status.eq(PENDING))
        .select(dl::event_id);
    let e = diesel::delete(
        events::table
            .filter(ev::directory_id.ne_all(directories::table.select(directories::id)))
            .filter(ev::id.ne_all(waiting)),
    )
    .execute(conn)?;
    Ok(a + d + e)
}

/// Pending deliveries and the creation time of the oldest, for `/metrics`.
pub fn queue_stats(conn: &mut AnyConnection) -> Result<(i64, Option<NaiveDateTime>), Error> {
    let depth: i64 = deliveries::table
        .filter(dl::status.eq(PENDING))
        .count()
        .get_result(conn)?;
    let oldest: Option<NaiveDateTime> = deliveries::table
        .filter(dl::status.eq(PENDING))
        .select(diesel::dsl::min(dl::created_at))
        .first(conn)?;
    Ok((depth, oldest))
}
