use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::users;
use super::schema::users::dsl as u;
use super::{AnyConnection, Page};
use crate::error::Error;

#[derive(Debug, Clone, Queryable, Selectable, Insertable, AsChangeset)]
#[diesel(table_name = users, treat_none_as_null = true)]
pub struct UserRow {
    pub id: String,
    pub directory_id: String,
    pub user_name: String,
    pub user_name_lower: String,
    pub external_id: Option<String>,
    pub email: Option<String>,
    pub email_lower: Option<String>,
    pub given_name: Option<String>,
    pub family_name: Option<String>,
    pub display_name: Option<String>,
    pub active: bool,
    pub raw: String,
    pub version: i64,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

/// A condition an index can answer; a query ANDs them.
#[derive(Debug, Clone, PartialEq)]
pub enum UserCondition {
    Id(String),
    /// Compared lower-cased: `userName` is case-insensitive.
    UserName(String),
    ExternalId(String),
    /// Compared lower-cased against the primary email.
    Email(String),
    Active(bool),
}

type BoxedUsers<'a> = users::BoxedQuery<'a, super::MultiBackend>;

fn scoped<'a>(directory_id: &'a str, conditions: &'a [UserCondition]) -> BoxedUsers<'a> {
    let mut q = users::table
        .filter(u::directory_id.eq(directory_id))
        .into_boxed();
    for c in conditions {
        q = match c {
            UserCondition::Id(v) => q.filter(u::id.eq(v)),
            UserCondition::UserName(v) => q.filter(u::user_name_lower.eq(v.to_lowercase())),
            UserCondition::ExternalId(v) => q.filter(u::external_id.eq(v)),
            UserCondition::Email(v) => q.filter(u::email_lower.eq(v.to_lowercase())),
            UserCondition::Active(v) => q.filter(u::active.eq(*v)),
        };
    }
    q
}

pub fn insert(conn: &mut AnyConnection, row: &UserRow) -> Result<(), Error> {
    diesel::insert_into(users::table)
        .values(row)
        .execute(conn)?;
    Ok(())
}

/// Replaces every column of an existing row (the id and directory never change).
pub fn update(conn: &mut AnyConnection, row: &UserRow) -> Result<(), Error> {
    diesel::update(
        users::table
            .filter(u::directory_id.eq(&row.directory_id))
            .filter(u::id.eq(&row.id)),
    )
    .set(row)
    .execute(conn)?;
    Ok(())
}

pub fn get(
    conn: &mut AnyConnection,
    directory_id: &str,
    id: &str,
) -> Result<Option<UserRow>, Error> {
    Ok(users::table
        .filter(u::directory_id.eq(directory_id))
        .filter(u::id.eq(id))
        .select(UserRow::as_select())
        .first(conn)
        .optional()?)
}

/// Users of a directory whose normalised `userName` is taken, excluding `except_id`.
pub fn user_name_taken(
    conn: &mut AnyConnection,
    directory_id: &str,
    user_name_lower: &str,
    except_id: Option<&str>,
) -> Result<bool, Error> {
    let mut q = users::table
        .filter(u::directory_id.eq(directory_id))
        .filter(u::user_name_lower.eq(user_name_lower))
        .select(u::id)
        .into_boxed();
    if let Some(id) = except_id {
        q = q.filter(u::id.ne(id));
    }
    Ok(q.first::<String>(conn).optional()?.is_some())
}

pub fn list(
    conn: &mut AnyConnection,
    directory_id: &str,
    conditions: &[UserCondition],
    page: Page,
) -> Result<(Vec<UserRow>, i64), Error> {
    let rows = scoped(directory_id, conditions)
        .order((u::created_at.asc(), u::id.asc()))
        .offset(page.offset)
        .limit(page.limit)
        .select(UserRow::as_select())
        .load(conn)?;
    let total = scoped(directory_id, conditions).count().get_result(conn)?;
    Ok((rows, total))
}

/// Users across several directories (the admin API's tenant+product scope).
pub fn list_in(
    conn: &mut AnyConnection,
    directory_ids: &[String],
    page: Page,
) -> Result<Vec<UserRow>, Error> {
    Ok(users::table
        .filter(u::directory_id.eq_any(directory_ids))
        .order((u::created_at.asc(), u::id.asc()))
        .offset(page.offset)
        .limit(page.limit)
        .select(UserRow::as_select())
        .load(conn)?)
}

pub fn get_in(
    conn: &mut AnyConnection,
    directory_ids: &[String],
    id: &str,
) -> Result<Option<UserRow>, Error> {
    Ok(users::table
        .filter(u::directory_id.eq_any(directory_ids))
        .filter(u::id.eq(id))
        .select(UserRow::as_select())
        .first(conn)
        .optional()?)
}

/// The existing ids among `ids`, within one directory.
pub fn existing_ids(
    conn: &mut AnyConnection,
    directory_id: &str,
    ids: &[String],
) -> Result<Vec<String>, Error> {
    Ok(users::table
        .filter(u::directory_id.eq(directory_id))
        .filter(u::id.eq_any(ids))
        .select(u::id)
        .load(conn)?)
}

pub fn by_ids(
    conn: &mut AnyConnection,
    directory_id: &str,
    ids: &[String],
) -> Result<Vec<UserRow>, Error> {
    Ok(users::table
        .filter(u::directory_id.eq(directory_id))
        .filter(u::id.eq_any(ids))
        .select(UserRow::as_select())
        .load(conn)?)
}

pub fn count_active(conn: &mut AnyConnection, directory_id: &str) -> Result<i64, Error> {
    Ok(users::table
        .filter(u::directory_id.eq(directory_id))
        .filter(u::active.eq(true))
        .count()
        .get_result(conn)?)
}

pub fn delete(conn: &mut AnyConnection, directory_id: &str, id: &str) -> Result<usize, Error> {
    Ok(diesel::delete(
        users::table
            .filter(u::directory_id.eq(directory_id))
            .filter(u::id.eq(id)),
    )
    .execute(conn)?)
}
