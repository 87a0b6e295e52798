//! Provisioning cursors and the accounts a directory's users were provisioned as
//! (DESIGN.md §6.5, "SCIM drives provisioning").

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::directory_accounts::{self, dsl as m};
use super::schema::provisioning_cursors::{self, dsl as p};
use super::schema::provisioning_issues::{self, dsl as i};
use super::AnyConnection;
use crate::error::Error;

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = provisioning_cursors)]
pub struct CursorRow {
    pub directory_id: String,
    pub organizational_unit_id: String,
    pub last_sequence: i64,
    pub next_attempt_at: NaiveDateTime,
    pub lease_until: Option<NaiveDateTime>,
    pub lease_owner: Option<String>,
    pub attempts: i64,
    pub last_error: Option<String>,
    pub updated_at: NaiveDateTime,
}

/// Starts following a directory from `sequence` (attach), or moves it to another unit;
/// the other instances learn it on commit.
pub fn attach(
    conn: &mut AnyConnection,
    directory_id: &str,
    unit_id: &str,
    sequence: i64,
    now: NaiveDateTime,
) -> Result<(), Error> {
    let n = diesel::update(provisioning_cursors::table.find(directory_id))
        .set(p::organizational_unit_id.eq(unit_id))
        .execute(conn)?;
    if n == 0 {
        diesel::insert_into(provisioning_cursors::table)
            .values(CursorRow {
                directory_id: directory_id.into(),
                organizational_unit_id: unit_id.into(),
                last_sequence: sequence,
                next_attempt_at: now,
                lease_until: None,
                lease_owner: None,
                attempts: 0,
                last_error: None,
                updated_at: now,
            })
            .execute(conn)?;
    }
    tell_others(conn, &[directory_id.to_string()])
}

/// Stops following a directory (detach); what was provisioned stays.
pub fn detach(conn: &mut AnyConnection, directory_id: &str) -> Result<(), Error> {
    diesel::delete(provisioning_cursors::table.find(directory_id)).execute(conn)?;
    Ok(())
}

/// Every directory followed (attached to a unit).
pub fn attached(conn: &mut AnyConnection) -> Result<Vec<String>, Error> {
    Ok(provisioning_cursors::table
        .select(p::directory_id)
        .load(conn)?)
}

/// Tells the other instances (PostgreSQL) that these directories have events this one
/// could not follow: whichever holds a cursor follows them at once.
pub fn tell_others(conn: &mut AnyConnection, directory_ids: &[String]) -> Result<(), Error> {
    for d in directory_ids {
        super::notify::notify(conn, &format!("{}{d}", super::notify::PROVISIONING))?;
    }
    Ok(())
}

pub fn get(conn: &mut AnyConnection, directory_id: &str) -> Result<Option<CursorRow>, Error> {
    Ok(provisioning_cursors::table
        .find(directory_id)
        .select(CursorRow::as_select())
        .first(conn)
        .optional()?)
}

/// Leases up to `limit` due cursors no instance holds (see [`super::claim_leased`]).
pub fn claim(
    conn: &mut AnyConnection,
    owner: &str,
    now: NaiveDateTime,
    lease_until: NaiveDateTime,
    limit: i64,
) -> Result<Vec<CursorRow>, Error> {
    let ids = super::claim_leased(
        conn,
        super::Leased {
            table: "provisioning_cursors",
            key: "directory_id",
            clause: "1 = 1",
        },
        owner,
        now,
        lease_until,
        limit,
    )?;
    Ok(provisioning_cursors::table
        .filter(p::directory_id.eq_any(&ids))
        .select(CursorRow::as_select())
        .load(conn)?)
}

/// Leases these cursors (a wake for their directories), those no instance holds.
pub fn claim_these(
    conn: &mut AnyConnection,
    owner: &str,
    ids: &[String],
    lease_until: NaiveDateTime,
) -> Result<Vec<CursorRow>, Error> {
    let now = super::now();
    let n = diesel::update(
        provisioning_cursors::table
            .filter(p::directory_id.eq_any(ids))
            .filter(p::lease_until.is_null().or(p::lease_until.lt(now)))
            .filter(p::attempts.eq(0)),
    )
    .set((
        p::lease_until.eq(Some(lease_until)),
        p::lease_owner.eq(Some(owner)),
    ))
    .execute(conn)?;
    if n == 0 {
        return Ok(Vec::new());
    }
    Ok(provisioning_cursors::table
        .filter(p::directory_id.eq_any(ids))
        .filter(p::lease_owner.eq(owner))
        .select(CursorRow::as_select())
        .load(conn)?)
}

/// Advances the cursor past `sequence`, if `owner` holds it, extending its lease to
/// `lease_until`.
pub fn advance(
    conn: &mut AnyConnection,
    directory_id: &str,
    owner: &str,
    sequence: i64,
    lease_until: NaiveDateTime,
) -> Result<bool, Error> {
    let n = diesel::update(
        provisioning_cursors::table
            .find(directory_id)
            .filter(p::lease_owner.eq(owner)),
    )
    .set((
        p::last_sequence.eq(sequence),
        p::attempts.eq(0),
        p::last_error.eq(None::<String>),
        p::updated_at.eq(super::now()),
        p::lease_until.eq(Some(lease_until)),
    ))
    .execute(conn)?;
    Ok(n == 1)
}

/// Gives the cursor back, due again at `next` (with why, when an event is pending).
pub fn release(
    conn: &mut AnyConnection,
    directory_id: &str,
    owner: &str,
    next: NaiveDateTime,
    pending: Option<(i64, String)>,
) -> Result<(), Error> {
    let target = provisioning_cursors::table
        .find(directory_id)
        .filter(p::lease_owner.eq(owner));
    match pending {
        Some((attempts, why)) => diesel::update(target)
            .set((
                p::next_attempt_at.eq(next),
                p::lease_until.eq(None::<NaiveDateTime>),
                p::lease_owner.eq(None::<String>),
                p::attempts.eq(attempts),
                p::last_error.eq(Some(why)),
            ))
            .execute(conn)?,
        None => diesel::update(target)
            .set((
                p::next_attempt_at.eq(next),
                p::lease_until.eq(None::<NaiveDateTime>),
                p::lease_owner.eq(None::<String>),
            ))
            .execute(conn)?,
    };
    Ok(())
}

/// Makes a directory's cursor due now (new events were numbered).
pub fn wake(
    conn: &mut AnyConnection,
    directory_ids: &[String],
    now: NaiveDateTime,
) -> Result<(), Error> {
    diesel::update(
        provisioning_cursors::table
            .filter(p::directory_id.eq_any(directory_ids))
            .filter(p::next_attempt_at.gt(now))
            .filter(p::attempts.eq(0)),
    )
    .set(p::next_attempt_at.eq(now))
    .execute(conn)?;
    Ok(())
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = directory_accounts)]
pub struct MappingRow {
    pub directory_id: String,
    pub user_id: String,
    pub account_id: String,
    pub email: String,
}

/// The accounts these users were provisioned as, with the account's state:
/// `(user_id, email, state)`.
pub fn provisioned(
    conn: &mut AnyConnection,
    directory_id: &str,
    user_ids: &[String],
) -> Result<Vec<(String, String, String)>, Error> {
    use super::schema::accounts::dsl as a;
    Ok(directory_accounts::table
        .inner_join(super::schema::accounts::table.on(a::id.eq(m::account_id)))
        .filter(m::directory_id.eq(directory_id))
        .filter(m::user_id.eq_any(user_ids))
        .select((m::user_id, m::email, a::state))
        .load(conn)?)
}

/// The mappings of these users (those that have one).
pub fn mappings(
    conn: &mut AnyConnection,
    directory_id: &str,
    user_ids: &[String],
) -> Result<Vec<MappingRow>, Error> {
    Ok(directory_accounts::table
        .filter(m::directory_id.eq(directory_id))
        .filter(m::user_id.eq_any(user_ids))
        .select(MappingRow::as_select())
        .load(conn)?)
}

/// Records a user's account; `replace` when the user had one.
pub fn set_mapping(conn: &mut AnyConnection, row: &MappingRow, replace: bool) -> Result<(), Error> {
    if replace {
        diesel::update(directory_accounts::table.find((&row.directory_id, &row.user_id)))
            .set((m::account_id.eq(&row.account_id), m::email.eq(&row.email)))
            .execute(conn)?;
    } else {
        diesel::insert_into(directory_accounts::table)
            .values(row)
            .execute(conn)?;
    }
    Ok(())
}

pub fn remove_mapping(
    conn: &mut AnyConnection,
    directory_id: &str,
    user_id: &str,
) -> Result<(), Error> {
    diesel::delete(directory_accounts::table.find((directory_id, user_id))).execute(conn)?;
    Ok(())
}

/// How many of a directory's users have an account, by the account's state.
pub fn counts(conn: &mut AnyConnection, directory_id: &str) -> Result<Vec<(String, i64)>, Error> {
    use super::schema::accounts::dsl as a;
    Ok(directory_accounts::table
        .inner_join(super::schema::accounts::table.on(a::id.eq(m::account_id)))
        .filter(m::directory_id.eq(directory_id))
        .group_by(a::state)
        .select((a::state, diesel::dsl::count_star()))
        .load(conn)?)
}

/// Forgets what a deleted directory provisioned (the accounts themselves stay).
pub fn forget(conn: &mut AnyConnection, directory_id: &str) -> Result<(), Error> {
    diesel::delete(directory_accounts::table.filter(m::directory_id.eq(directory_id)))
        .execute(conn)?;
    diesel::delete(provisioning_issues::table.filter(i::directory_id.eq(directory_id)))
        .execute(conn)?;
    Ok(())
}

/// A user without an account, and why (see the migration `provisioning_issues`).
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = provisioning_issues)]
pub struct IssueRow {
    pub directory_id: String,
    pub user_id: String,
    pub email: Option<String>,
    pub reason: String,
    pub at: NaiveDateTime,
}

/// Why a user has no account: no email (skipped), not found, revoked.
pub const NO_EMAIL: &str = "no_email";

/// Records why a user has no account; `replace` when it had a reason already.
pub fn set_issue(conn: &mut AnyConnection, row: &IssueRow, replace: bool) -> Result<(), Error> {
    if replace {
        diesel::update(provisioning_issues::table.find((&row.directory_id, &row.user_id)))
            .set((
                i::email.eq(&row.email),
                i::reason.eq(&row.reason),
                i::at.eq(row.at),
            ))
            .execute(conn)?;
    } else {
        diesel::insert_into(provisioning_issues::table)
            .values(row)
            .execute(conn)?;
    }
    Ok(())
}

/// The user has an account now, or is gone.
pub fn clear_issue(
    conn: &mut AnyConnection,
    directory_id: &str,
    user_id: &str,
) -> Result<(), Error> {
    diesel::delete(provisioning_issues::table.find((directory_id, user_id))).execute(conn)?;
    Ok(())
}

/// Which of these users have no account, with a reason.
pub fn with_issues(
    conn: &mut AnyConnection,
    directory_id: &str,
    user_ids: &[String],
) -> Result<Vec<String>, Error> {
    Ok(provisioning_issues::table
        .filter(i::directory_id.eq(directory_id))
        .filter(i::user_id.eq_any(user_ids))
        .select(i::user_id)
        .load(conn)?)
}

/// How many users have no account, by reason.
pub fn issue_counts(
    conn: &mut AnyConnection,
    directory_id: &str,
) -> Result<Vec<(String, i64)>, Error> {
    Ok(provisioning_issues::table
        .filter(i::directory_id.eq(directory_id))
        .group_by(i::reason)
        .select((i::reason, diesel::dsl::count_star()))
        .load(conn)?)
}

/// The latest `limit` users without an account (newest first).
pub fn recent_issues(
    conn: &mut AnyConnection,
    directory_id: &str,
    limit: i64,
) -> Result<Vec<IssueRow>, Error> {
    Ok(provisioning_issues::table
        .filter(i::directory_id.eq(directory_id))
        .order((i::at.desc(), i::user_id.asc()))
        .limit(limit)
        .select(IssueRow::as_select())
        .load(conn)?)
}

/// User events numbered after `sequence`: the follower's backlog, in users' changes.
pub fn pending_user_events(
    conn: &mut AnyConnection,
    directory_id: &str,
    sequence: i64,
) -> Result<i64, Error> {
    use super::schema::events::dsl as e;
    Ok(super::schema::events::table
        .filter(e::directory_id.eq(directory_id))
        .filter(e::sequence.gt(sequence))
        .filter(e::event_type.like("user.%"))
        .count()
        .get_result(conn)?)
}
