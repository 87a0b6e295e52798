//! Delegated authorizations in progress: one job per email, claimed with a lease so a
//! crash or a second instance never loses or doubles one (as deliveries).

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::authorization_jobs::{self, dsl as j};
use super::AnyConnection;
use crate::error::Error;
use crate::secrets::Sealed;

/// Waiting for the provider lookup.
pub const LOOKUP: &str = "lookup";
/// The outcome is known; its callback is being sent.
pub const CALLBACK: &str = "callback";
pub const DONE: &str = "done";

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = authorization_jobs)]
pub struct JobRow {
    pub id: String,
    pub application_id: String,
    pub service_account_id: String,
    pub email: String,
    pub callback_url: String,
    pub scope: String,
    pub state: Option<String>,
    pub status: String,
    pub attempts: i64,
    pub next_attempt_at: NaiveDateTime,
    pub lease_until: Option<NaiveDateTime>,
    pub lease_owner: Option<String>,
    /// Sealed; `Debug` does not show it.
    pub callback_body: Option<Sealed>,
    pub account_id: Option<String>,
    pub last_error: Option<String>,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

/// New jobs (a batch has up to 50), in one statement.
pub fn insert(conn: &mut AnyConnection, rows: &[JobRow]) -> Result<(), Error> {
    use super::SqlValue::{BigInt, OptText, Text, Timestamp};
    const COLUMNS: &[&str] = &[
        "id",
        "application_id",
        "service_account_id",
        "email",
        "callback_url",
        "scope",
        "state",
        "status",
        "attempts",
        "next_attempt_at",
        "created_at",
        "updated_at",
    ];
    let values: Vec<Vec<super::SqlValue>> = rows
        .iter()
        .map(|r| {
            vec![
                Text(r.id.clone()),
                Text(r.application_id.clone()),
                Text(r.service_account_id.clone()),
                Text(r.email.clone()),
                Text(r.callback_url.clone()),
                Text(r.scope.clone()),
                OptText(r.state.clone()),
                Text(r.status.clone()),
                BigInt(r.attempts),
                Timestamp(r.next_attempt_at),
                Timestamp(r.created_at),
                Timestamp(r.updated_at),
            ]
        })
        .collect();
    super::bulk_insert(conn, "authorization_jobs", COLUMNS, &values).map(drop)
}

pub fn get(conn: &mut AnyConnection, id: &str) -> Result<Option<JobRow>, Error> {
    Ok(authorization_jobs::table
        .find(id)
        .select(JobRow::as_select())
        .first(conn)
        .optional()?)
}

/// Leases up to `limit` due jobs no instance holds, for `owner` until `lease_until`
/// (see [`super::claim_leased`]).
pub fn claim(
    conn: &mut AnyConnection,
    owner: &str,
    now: NaiveDateTime,
    lease_until: NaiveDateTime,
    limit: i64,
) -> Result<Vec<JobRow>, Error> {
    let ids = super::claim_leased(
        conn,
        super::Leased {
            table: "authorization_jobs",
            key: "id",
            clause: "status <> 'done'",
        },
        owner,
        now,
        lease_until,
        limit,
    )?;
    Ok(authorization_jobs::table
        .filter(j::id.eq_any(&ids))
        .order(j::next_attempt_at.asc())
        .select(JobRow::as_select())
        .load(conn)?)
}

/// What a worker records after one step of a job it holds.
#[derive(Debug, Default, AsChangeset)]
#[diesel(table_name = authorization_jobs)]
pub struct JobUpdate {
    pub status: Option<String>,
    pub attempts: Option<i64>,
    pub next_attempt_at: Option<NaiveDateTime>,
    pub callback_body: Option<Option<Sealed>>,
    pub account_id: Option<Option<String>>,
    pub last_error: Option<Option<String>>,
    pub lease_until: Option<Option<NaiveDateTime>>,
    pub lease_owner: Option<Option<String>>,
    pub updated_at: Option<NaiveDateTime>,
}

/// Applies `update` and gives the job back, if `owner` still holds it: false when the
/// lease was lost (another instance took over; nothing is recorded).
pub fn record(
    conn: &mut AnyConnection,
    id: &str,
    owner: &str,
    mut update: JobUpdate,
) -> Result<bool, Error> {
    update.lease_until = Some(None);
    update.lease_owner = Some(None);
    update.updated_at = Some(super::now());
    let n = diesel::update(
        authorization_jobs::table
            .find(id)
            .filter(j::lease_owner.eq(owner)),
    )
    .set(&update)
    .execute(conn)?;
    Ok(n == 1)
}

/// Extends `owner`'s lease on a job to `lease_until`, if it still holds it: false when
/// the lease ran out (another instance may have taken the job; nothing may be recorded).
pub fn renew(
    conn: &mut AnyConnection,
    id: &str,
    owner: &str,
    lease_until: NaiveDateTime,
) -> Result<bool, Error> {
    let n = diesel::update(
        authorization_jobs::table
            .find(id)
            .filter(j::lease_owner.eq(owner))
            .filter(j::lease_until.gt(super::now())),
    )
    .set(j::lease_until.eq(Some(lease_until)))
    .execute(conn)?;
    Ok(n == 1)
}

/// Takes a job just given back by `owner` again (its next step follows at once).
pub fn reclaim(
    conn: &mut AnyConnection,
    id: &str,
    owner: &str,
    lease_until: NaiveDateTime,
) -> Result<bool, Error> {
    let n = diesel::update(
        authorization_jobs::table
            .find(id)
            .filter(j::lease_owner.is_null()),
    )
    .set((
        j::lease_until.eq(Some(lease_until)),
        j::lease_owner.eq(Some(owner)),
    ))
    .execute(conn)?;
    Ok(n == 1)
}

/// Releases every lease `owner` holds (graceful shutdown).
pub fn release_all(conn: &mut AnyConnection, owner: &str) -> Result<(), Error> {
    diesel::update(authorization_jobs::table.filter(j::lease_owner.eq(owner)))
        .set((
            j::lease_until.eq(None::<NaiveDateTime>),
            j::lease_owner.eq(None::<String>),
        ))
        .execute(conn)?;
    Ok(())
}

/// Counts by status for one service account (`lookup`, `callback`).
pub fn pending_of_service_account(
    conn: &mut AnyConnection,
    service_account_id: &str,
) -> Result<i64, Error> {
    Ok(authorization_jobs::table
        .filter(j::service_account_id.eq(service_account_id))
        .filter(j::status.ne(DONE))
        .count()
        .get_result(conn)?)
}

/// Every sealed callback body, for sealing passes and `rekey`.
pub fn stored_bodies(conn: &mut AnyConnection) -> Result<Vec<(String, Sealed)>, Error> {
    let rows: Vec<(String, Option<Sealed>)> = authorization_jobs::table
        .filter(j::callback_body.is_not_null())
        .order(j::id.asc())
        .select((j::id, j::callback_body))
        .load(conn)?;
    Ok(rows
        .into_iter()
        .filter_map(|(id, b)| b.map(|b| (id, b)))
        .collect())
}

pub fn replace_body(
    conn: &mut AnyConnection,
    id: &str,
    old: &Sealed,
    new: Option<&Sealed>,
) -> Result<bool, Error> {
    let n = diesel::update(
        authorization_jobs::table
            .find(id)
            .filter(j::callback_body.eq(old)),
    )
    .set(j::callback_body.eq(new))
    .execute(conn)?;
    Ok(n == 1)
}

/// Ends a job whose sealed callback no configured key opens (a lost key).
pub fn abandon(conn: &mut AnyConnection, id: &str, old: &Sealed) -> Result<bool, Error> {
    let n = diesel::update(
        authorization_jobs::table
            .find(id)
            .filter(j::callback_body.eq(old)),
    )
    .set((
        j::callback_body.eq(None::<Sealed>),
        j::status.eq(DONE),
        j::last_error.eq(Some("its callback was sealed with a lost encryption key")),
    ))
    .execute(conn)?;
    Ok(n == 1)
}

/// Finished jobs older than `before` go; their outcome lives on in the account.
pub fn prune(conn: &mut AnyConnection, before: NaiveDateTime) -> Result<usize, Error> {
    Ok(diesel::delete(
        authorization_jobs::table
            .filter(j::status.eq(DONE))
            .filter(j::updated_at.lt(before)),
    )
    .execute(conn)?)
}
