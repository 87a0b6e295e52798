//! Google Workspace directories (DESIGN.md §4): where each pulls from, the state of its
//! sync, the lease that lets one instance at a time run it, and the reads a sync compares
//! Google's listing with (every user and group of the directory by external id, and the
//! memberships).

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::google_directories::{self, dsl as g};
use super::schema::{memberships, scim_groups, users};
use super::AnyConnection;
use crate::error::Error;

pub const PENDING: &str = "pending";
pub const RUNNING: &str = "running";
pub const SUCCEEDED: &str = "succeeded";
pub const FAILED: &str = "failed";

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = google_directories)]
pub struct GoogleDirectoryRow {
    pub directory_id: String,
    pub domain: String,
    pub admin_email: String,
    pub state: String,
    pub started_at: Option<NaiveDateTime>,
    pub finished_at: Option<NaiveDateTime>,
    pub user_count: Option<i64>,
    pub group_count: Option<i64>,
    pub error: Option<String>,
    pub next_attempt_at: NaiveDateTime,
    pub lease_until: Option<NaiveDateTime>,
    pub lease_owner: Option<String>,
    pub updated_at: NaiveDateTime,
}

/// A new Google directory, due at once.
pub fn insert(
    conn: &mut AnyConnection,
    directory_id: &str,
    domain: &str,
    admin_email: &str,
    now: NaiveDateTime,
) -> Result<(), Error> {
    diesel::insert_into(google_directories::table)
        .values(GoogleDirectoryRow {
            directory_id: directory_id.into(),
            domain: domain.into(),
            admin_email: admin_email.into(),
            state: PENDING.into(),
            started_at: None,
            finished_at: None,
            user_count: None,
            group_count: None,
            error: None,
            next_attempt_at: now,
            lease_until: None,
            lease_owner: None,
            updated_at: now,
        })
        .execute(conn)?;
    Ok(())
}

pub fn get(
    conn: &mut AnyConnection,
    directory_id: &str,
) -> Result<Option<GoogleDirectoryRow>, Error> {
    Ok(google_directories::table
        .find(directory_id)
        .select(GoogleDirectoryRow::as_select())
        .first(conn)
        .optional()?)
}

/// Leases one due directory no instance holds (see [`super::claim_leased`]) and marks its
/// run started; its next run falls due at `next_run` unless asked for sooner meanwhile.
pub fn claim(
    conn: &mut AnyConnection,
    owner: &str,
    now: NaiveDateTime,
    lease_until: NaiveDateTime,
    next_run: NaiveDateTime,
) -> Result<Option<GoogleDirectoryRow>, Error> {
    let ids = super::claim_leased(
        conn,
        super::Leased {
            table: "google_directories",
            key: "directory_id",
            clause: "1 = 1",
        },
        owner,
        now,
        lease_until,
        1,
    )?;
    let Some(id) = ids.into_iter().next() else {
        return Ok(None);
    };
    diesel::update(google_directories::table.find(&id))
        .set((
            g::state.eq(RUNNING),
            g::started_at.eq(Some(now)),
            g::next_attempt_at.eq(next_run),
            g::updated_at.eq(now),
        ))
        .execute(conn)?;
    get(conn, &id)
}

/// Extends `owner`'s lease; false when it no longer holds the directory (taken over, or
/// the directory is gone).
pub fn renew(
    conn: &mut AnyConnection,
    directory_id: &str,
    owner: &str,
    lease_until: NaiveDateTime,
) -> Result<bool, Error> {
    let n = diesel::update(
        google_directories::table
            .find(directory_id)
            .filter(g::lease_owner.eq(owner)),
    )
    .set(g::lease_until.eq(Some(lease_until)))
    .execute(conn)?;
    Ok(n == 1)
}

/// How a run ended.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub state: &'static str,
    pub finished_at: NaiveDateTime,
    /// The directory's counts; `None` keeps the last ones (a run that did not finish).
    pub counts: Option<(i64, i64)>,
    pub error: Option<String>,
    /// Sooner than the interval (a failed run's retry); `None` keeps what is set.
    pub retry_at: Option<NaiveDateTime>,
    /// No run before this (Google's `Retry-After`), whatever was asked meanwhile.
    pub not_before: Option<NaiveDateTime>,
}

/// Records the end of `owner`'s run and gives the lease back.
pub fn finish(
    conn: &mut AnyConnection,
    directory_id: &str,
    owner: &str,
    outcome: &Outcome,
) -> Result<(), Error> {
    let row = google_directories::table
        .find(directory_id)
        .filter(g::lease_owner.eq(owner));
    // Before the lease goes: these writes are the owner's alone.
    if let Some((users, groups)) = outcome.counts {
        diesel::update(row)
            .set((
                g::user_count.eq(Some(users)),
                g::group_count.eq(Some(groups)),
            ))
            .execute(conn)?;
    }
    diesel::update(row)
        .set((
            g::state.eq(outcome.state),
            g::finished_at.eq(Some(outcome.finished_at)),
            g::error.eq(outcome.error.as_deref()),
            g::lease_until.eq(None::<NaiveDateTime>),
            g::lease_owner.eq(None::<String>),
            g::updated_at.eq(outcome.finished_at),
        ))
        .execute(conn)?;
    if let Some(at) = outcome.retry_at {
        // Only sooner: an admin's "sync now" made meanwhile stays.
        diesel::update(
            google_directories::table
                .find(directory_id)
                .filter(g::next_attempt_at.gt(at)),
        )
        .set(g::next_attempt_at.eq(at))
        .execute(conn)?;
    }
    if let Some(at) = outcome.not_before {
        diesel::update(
            google_directories::table
                .find(directory_id)
                .filter(g::next_attempt_at.lt(at)),
        )
        .set(g::next_attempt_at.eq(at))
        .execute(conn)?;
    }
    Ok(())
}

/// Makes a directory due now (an admin's "sync now"); false when it is not a Google one.
pub fn request_now(
    conn: &mut AnyConnection,
    directory_id: &str,
    now: NaiveDateTime,
) -> Result<bool, Error> {
    let n = diesel::update(google_directories::table.find(directory_id))
        .set(g::next_attempt_at.eq(now))
        .execute(conn)?;
    Ok(n == 1)
}

/// When the next directory falls due for this instance to claim: its next run, or the
/// end of another instance's lease on it if later. `None`: no Google directory at all.
pub fn next_due(
    conn: &mut AnyConnection,
    now: NaiveDateTime,
) -> Result<Option<NaiveDateTime>, Error> {
    use diesel::dsl::sql;
    use diesel::sql_types::{Nullable, Timestamp};
    let p = match conn.backend() {
        super::Backend::Postgres => "$1",
        super::Backend::Sqlite => "?",
    };
    // One aggregate, so an instance with Google directories asks one question per wait.
    let due = format!(
        "MIN(CASE WHEN lease_until IS NOT NULL AND lease_until > {p} \
         AND lease_until > next_attempt_at THEN lease_until ELSE next_attempt_at END)"
    );
    Ok(google_directories::table
        .select(sql::<Nullable<Timestamp>>(&due).bind::<Timestamp, _>(now))
        .first::<Option<NaiveDateTime>>(conn)?)
}

/// A user or group of the directory as a sync compares it: id, external id, stored JSON.
#[derive(Debug, Clone, Queryable)]
pub struct Existing {
    pub id: String,
    pub external_id: Option<String>,
    pub raw: String,
}

/// Every user of a directory.
pub fn users_of(conn: &mut AnyConnection, directory_id: &str) -> Result<Vec<Existing>, Error> {
    Ok(users::table
        .filter(users::directory_id.eq(directory_id))
        .select((users::id, users::external_id, users::raw))
        .load(conn)?)
}

/// Every group of a directory.
pub fn groups_of(conn: &mut AnyConnection, directory_id: &str) -> Result<Vec<Existing>, Error> {
    Ok(scim_groups::table
        .filter(scim_groups::directory_id.eq(directory_id))
        .select((scim_groups::id, scim_groups::external_id, scim_groups::raw))
        .load(conn)?)
}

/// Every membership of a directory: (group id, user id).
pub fn memberships_of(
    conn: &mut AnyConnection,
    directory_id: &str,
) -> Result<Vec<(String, String)>, Error> {
    Ok(memberships::table
        .filter(memberships::directory_id.eq(directory_id))
        .select((memberships::group_id, memberships::user_id))
        .load(conn)?)
}
