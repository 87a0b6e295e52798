//! Reads of the operators' dashboard (DESIGN.md §8): lists paged by key so a page costs
//! the same at a million users, and the counts its tables show.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::deliveries::{DeliveryRow, PENDING};
use super::directories::DirectoryRow;
use super::events::EventRow;
use super::groups::GroupRow;
use super::schema::deliveries::{self, dsl as dl};
use super::schema::directories::{self, dsl as d};
use super::schema::events::{self, dsl as ev};
use super::schema::scim_groups::{self, dsl as g};
use super::schema::users::{self, dsl as u};
use super::users::UserRow;
use super::{AnyConnection, Page};
use crate::error::Error;

/// The upper end of a prefix range: both backends compare text by code point here
/// (SQLite's BINARY, PostgreSQL's C collations), so `[p, p + U+10FFFF)` is "starts
/// with p" and an index answers it (LIKE would not use one under C.UTF-8).
fn prefix_end(p: &str) -> String {
    format!("{p}\u{10FFFF}")
}

/// Directories newest first, optionally those whose tenant or name contains `q`
/// (case-insensitive); directories are few, a scan is fine.
pub fn directories(
    conn: &mut AnyConnection,
    q: Option<&str>,
    page: Page,
) -> Result<Vec<DirectoryRow>, Error> {
    let mut query = directories::table.into_boxed();
    if let Some(q) = q {
        let pattern = format!(
            "%{}%",
            q.to_lowercase()
                .replace('\\', "\\\\")
                .replace('%', "\\%")
                .replace('_', "\\_")
        );
        query = query.filter(
            diesel::dsl::sql::<diesel::sql_types::Bool>("(lower(tenant) LIKE ")
                .bind::<diesel::sql_types::Text, _>(pattern.clone())
                .sql(" ESCAPE '\\' OR lower(name) LIKE ")
                .bind::<diesel::sql_types::Text, _>(pattern)
                .sql(" ESCAPE '\\')"),
        );
    }
    Ok(query
        .order((d::created_at.desc(), d::id.desc()))
        .offset(page.offset)
        .limit(page.limit)
        .select(DirectoryRow::as_select())
        .load(conn)?)
}

/// Directories attached to an organizational unit.
pub fn directories_of_unit(
    conn: &mut AnyConnection,
    unit_id: &str,
) -> Result<Vec<DirectoryRow>, Error> {
    Ok(directories::table
        .filter(d::organizational_unit_id.eq(unit_id))
        .order((d::created_at.asc(), d::id.asc()))
        .select(DirectoryRow::as_select())
        .load(conn)?)
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}

/// Rows of `table` whose `column` is `value`, counted up to `cap + 1` (`users` and
/// `scim_groups` by `directory_id`, `memberships` by `group_id`): an exact count walks
/// the whole index range, 60 ms on PostgreSQL and over 100 ms on SQLite at a million
/// users, on every page that shows it.
pub fn count_capped(
    conn: &mut AnyConnection,
    table: &str,
    column: &str,
    value: &str,
    cap: i64,
) -> Result<i64, Error> {
    let known = [
        ("users", "directory_id"),
        ("scim_groups", "directory_id"),
        ("memberships", "group_id"),
    ];
    if !known.contains(&(table, column)) {
        return Err(Error::Internal(format!("no count of {table} by {column}")));
    }
    let mut sql = format!(
        "SELECT COUNT(*) AS n FROM (SELECT 1 FROM {table} WHERE {column} = ? LIMIT {}) capped",
        cap.max(0) + 1
    );
    if conn.backend() == super::Backend::Postgres {
        sql = super::number_placeholders(&sql);
    }
    let values = [super::SqlValue::Text(value.to_string())];
    Ok(
        super::bind_all(diesel::sql_query(sql).into_boxed(), values.iter())
            .get_result::<Count>(conn)?
            .n,
    )
}

/// When the directory's event `sequence` happened.
pub fn event_time(
    conn: &mut AnyConnection,
    directory_id: &str,
    sequence: i64,
) -> Result<Option<NaiveDateTime>, Error> {
    Ok(events::table
        .filter(ev::directory_id.eq(directory_id))
        .filter(ev::sequence.eq(Some(sequence)))
        .select(ev::created_at)
        .first(conn)
        .optional()?)
}

/// How many users whose primary email starts with the search a page considers (by
/// address): a search's cost stays bounded however many addresses share the prefix.
pub const EMAIL_MATCHES: i64 = 1000;

/// Up to `limit` users by `userName` after `after`, optionally those whose userName or
/// primary email starts with `q` (lower-cased). Two index range scans rather than one
/// `OR`, which both backends answer by walking the whole directory when little matches:
/// userName matches in order, and the first [`EMAIL_MATCHES`] email matches by address,
/// merged by userName.
pub fn users(
    conn: &mut AnyConnection,
    directory_id: &str,
    q: Option<&str>,
    after: Option<&str>,
    limit: i64,
) -> Result<Vec<UserRow>, Error> {
    let scoped = || {
        let mut query = users::table
            .filter(u::directory_id.eq(directory_id.to_string()))
            .into_boxed();
        if let Some(a) = after {
            query = query.filter(u::user_name_lower.gt(a.to_string()));
        }
        query
    };
    let Some(q) = q else {
        return Ok(scoped()
            .order(u::user_name_lower.asc())
            .limit(limit)
            .select(UserRow::as_select())
            .load(conn)?);
    };
    let end = prefix_end(q);
    let mut by_name: Vec<UserRow> = scoped()
        .filter(u::user_name_lower.ge(q.to_string()))
        .filter(u::user_name_lower.lt(end.clone()))
        .order(u::user_name_lower.asc())
        .limit(limit)
        .select(UserRow::as_select())
        .load(conn)?;
    let by_email: Vec<UserRow> = users::table
        .filter(u::directory_id.eq(directory_id.to_string()))
        .filter(u::email_lower.ge(q.to_string()))
        .filter(u::email_lower.lt(end))
        .order(u::email_lower.asc())
        .limit(EMAIL_MATCHES)
        .select(UserRow::as_select())
        .load(conn)?;
    // Those whose userName matches too are the first query's.
    by_name.extend(by_email.into_iter().filter(|r| {
        !r.user_name_lower.starts_with(q) && after.is_none_or(|a| r.user_name_lower.as_str() > a)
    }));
    by_name.sort_by(|a, b| a.user_name_lower.cmp(&b.user_name_lower));
    by_name.truncate(limit.max(0) as usize);
    Ok(by_name)
}

/// Up to `limit` groups by name after `after`.
pub fn groups(
    conn: &mut AnyConnection,
    directory_id: &str,
    after: Option<&str>,
    limit: i64,
) -> Result<Vec<GroupRow>, Error> {
    let mut query = scim_groups::table
        .filter(g::directory_id.eq(directory_id.to_string()))
        .into_boxed();
    if let Some(a) = after {
        query = query.filter(g::display_name_lower.gt(a.to_string()));
    }
    Ok(query
        .order(g::display_name_lower.asc())
        .limit(limit)
        .select(GroupRow::as_select())
        .load(conn)?)
}

/// Up to `limit` numbered events, newest first, before sequence `before`.
pub fn events_newest(
    conn: &mut AnyConnection,
    directory_id: &str,
    before: Option<i64>,
    limit: i64,
) -> Result<Vec<EventRow>, Error> {
    let mut query = events::table
        .filter(ev::directory_id.eq(directory_id.to_string()))
        .filter(ev::sequence.is_not_null())
        .into_boxed();
    if let Some(b) = before {
        query = query.filter(ev::sequence.lt(Some(b)));
    }
    Ok(query
        .order(ev::sequence.desc())
        .limit(limit)
        .select(EventRow::as_select())
        .load(conn)?)
}

/// The deliveries of these events.
pub fn deliveries_of(
    conn: &mut AnyConnection,
    directory_id: &str,
    event_ids: &[String],
) -> Result<Vec<DeliveryRow>, Error> {
    Ok(deliveries::table
        .filter(dl::directory_id.eq(directory_id))
        .filter(dl::event_id.eq_any(event_ids))
        .select(DeliveryRow::as_select())
        .load(conn)?)
}

/// A directory's deliveries by endpoint and status, and how many pending ones have
/// failed an attempt already: `(endpoint, status, retrying, count)`.
pub fn delivery_counts(
    conn: &mut AnyConnection,
    directory_id: &str,
) -> Result<Vec<(String, String, bool, i64)>, Error> {
    let by_status: Vec<(String, String, i64)> = deliveries::table
        .filter(dl::directory_id.eq(directory_id))
        .group_by((dl::endpoint_id, dl::status))
        .select((dl::endpoint_id, dl::status, diesel::dsl::count_star()))
        .load(conn)?;
    let retrying: Vec<(String, i64)> = deliveries::table
        .filter(dl::directory_id.eq(directory_id))
        .filter(dl::status.eq(PENDING))
        .filter(dl::attempts.gt(0))
        .group_by(dl::endpoint_id)
        .select((dl::endpoint_id, diesel::dsl::count_star()))
        .load(conn)?;
    let mut out: Vec<(String, String, bool, i64)> = by_status
        .into_iter()
        .map(|(e, s, n)| (e, s, false, n))
        .collect();
    out.extend(
        retrying
            .into_iter()
            .map(|(e, n)| (e, PENDING.to_string(), true, n)),
    );
    Ok(out)
}

/// A failed attempt: the HTTP status (when one came back), the error, when.
pub type LastError = (Option<i64>, Option<String>, NaiveDateTime);

/// The endpoint's most recent failed attempt.
pub fn last_error(conn: &mut AnyConnection, endpoint_id: &str) -> Result<Option<LastError>, Error> {
    Ok(deliveries::table
        .filter(dl::endpoint_id.eq(endpoint_id))
        .filter(dl::last_error.is_not_null())
        .order(dl::updated_at.desc())
        .select((dl::last_status, dl::last_error, dl::updated_at))
        .first(conn)
        .optional()?)
}

/// Makes an endpoint's pending deliveries due now (their attempts kept).
pub fn make_pending_due(
    conn: &mut AnyConnection,
    endpoint_id: &str,
    now: NaiveDateTime,
) -> Result<usize, Error> {
    Ok(diesel::update(
        deliveries::table
            .filter(dl::endpoint_id.eq(endpoint_id))
            .filter(dl::status.eq(PENDING)),
    )
    .set(dl::next_attempt_at.eq(now))
    .execute(conn)?)
}

#[derive(QueryableByName)]
struct Backlog {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}

/// Events of directories attached to a unit that provisioning has not followed yet.
pub fn provisioning_backlog(conn: &mut AnyConnection) -> Result<i64, Error> {
    let row: Backlog = diesel::sql_query(
        "SELECT CAST(COALESCE(SUM(CASE WHEN d.last_event_sequence > c.last_sequence \
         THEN d.last_event_sequence - c.last_sequence ELSE 0 END), 0) AS BIGINT) AS n \
         FROM provisioning_cursors c JOIN directories d ON d.id = c.directory_id",
    )
    .get_result(conn)?;
    Ok(row.n)
}
