//! Codes and tokens we issued, stored by SHA-256 digest only (DESIGN.md §6.3, §6.6).

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::oauth_tokens::{self, dsl as t};
use super::AnyConnection;
use crate::error::Error;

pub const CODE: &str = "code";
pub const ACCESS: &str = "access";
pub const REFRESH: &str = "refresh";

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = oauth_tokens)]
pub struct TokenRow {
    pub digest: String,
    pub kind: String,
    pub application_id: String,
    pub subject: String,
    pub family: String,
    pub scope: String,
    pub redirect_uri: Option<String>,
    pub expires_at: Option<NaiveDateTime>,
    pub used_at: Option<NaiveDateTime>,
    pub revoked_at: Option<NaiveDateTime>,
    pub created_at: NaiveDateTime,
}

impl TokenRow {
    /// Neither revoked, used nor expired at `now`.
    pub fn is_live(&self, now: NaiveDateTime) -> bool {
        self.revoked_at.is_none()
            && self.used_at.is_none()
            && self.expires_at.is_none_or(|e| e > now)
    }
}

pub fn insert(conn: &mut AnyConnection, rows: &[TokenRow]) -> Result<(), Error> {
    // One statement each: diesel's batch insert is not available over `AnyConnection`,
    // and a grant is at most two rows.
    for row in rows {
        diesel::insert_into(oauth_tokens::table)
            .values(row)
            .execute(conn)?;
    }
    Ok(())
}

pub fn get(conn: &mut AnyConnection, digest: &str) -> Result<Option<TokenRow>, Error> {
    Ok(oauth_tokens::table
        .find(digest)
        .select(TokenRow::as_select())
        .first(conn)
        .optional()?)
}

/// Marks a code or refresh token used, if it was not: false when another request used it
/// first (so of two concurrent redemptions exactly one wins).
pub fn mark_used(
    conn: &mut AnyConnection,
    digest: &str,
    now: NaiveDateTime,
) -> Result<bool, Error> {
    let n = diesel::update(
        oauth_tokens::table
            .find(digest)
            .filter(t::used_at.is_null())
            .filter(t::revoked_at.is_null()),
    )
    .set(t::used_at.eq(Some(now)))
    .execute(conn)?;
    Ok(n == 1)
}

/// Revokes every token of a family (a code and all it led to).
pub fn revoke_family(
    conn: &mut AnyConnection,
    family: &str,
    now: NaiveDateTime,
) -> Result<usize, Error> {
    Ok(diesel::update(
        oauth_tokens::table
            .filter(t::family.eq(family))
            .filter(t::revoked_at.is_null()),
    )
    .set(t::revoked_at.eq(Some(now)))
    .execute(conn)?)
}

/// Revokes every token issued to these subjects.
pub fn revoke_subjects(
    conn: &mut AnyConnection,
    subjects: &[String],
    now: NaiveDateTime,
) -> Result<usize, Error> {
    let mut n = 0;
    for chunk in subjects.chunks(1000) {
        n += diesel::update(
            oauth_tokens::table
                .filter(t::subject.eq_any(chunk))
                .filter(t::revoked_at.is_null()),
        )
        .set(t::revoked_at.eq(Some(now)))
        .execute(conn)?;
    }
    Ok(n)
}

pub fn revoke_for_application(
    conn: &mut AnyConnection,
    application_id: &str,
    now: NaiveDateTime,
) -> Result<usize, Error> {
    Ok(diesel::update(
        oauth_tokens::table
            .filter(t::application_id.eq(application_id))
            .filter(t::revoked_at.is_null()),
    )
    .set(t::revoked_at.eq(Some(now)))
    .execute(conn)?)
}

/// Removes what can no longer be used: expired codes and access tokens, and anything
/// revoked or used over `keep` ago. Returns how many rows went.
pub fn prune(conn: &mut AnyConnection, before: NaiveDateTime) -> Result<usize, Error> {
    Ok(diesel::delete(
        oauth_tokens::table.filter(
            t::expires_at
                .lt(before)
                .or(t::revoked_at.lt(before))
                .or(t::used_at.lt(before)),
        ),
    )
    .execute(conn)?)
}
