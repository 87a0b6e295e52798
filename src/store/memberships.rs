use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::memberships::dsl as m;
use super::schema::{memberships, scim_groups, users};
use super::{AnyConnection, Page, SqlValue};
use crate::error::Error;

#[derive(Debug, Clone)]
pub struct MembershipRow {
    pub group_id: String,
    pub user_id: String,
    pub directory_id: String,
    pub created_at: NaiveDateTime,
}

/// A member as shown inside a group: the user's id and a display value.
#[derive(Debug, Clone, Queryable)]
pub struct Member {
    pub user_id: String,
    pub user_name: String,
    pub display_name: Option<String>,
}

/// A group as shown inside a user's read-only `groups`.
#[derive(Debug, Clone, Queryable)]
pub struct UserGroup {
    pub user_id: String,
    pub group_id: String,
    pub display_name: String,
}

/// Inserts memberships set-wise: one multi-row statement per few thousand rows.
pub fn insert(conn: &mut AnyConnection, rows: &[MembershipRow]) -> Result<(), Error> {
    let values: Vec<Vec<SqlValue>> = rows
        .iter()
        .map(|r| {
            vec![
                SqlValue::Text(r.group_id.clone()),
                SqlValue::Text(r.user_id.clone()),
                SqlValue::Text(r.directory_id.clone()),
                SqlValue::Timestamp(r.created_at),
            ]
        })
        .collect();
    super::bulk_insert(
        conn,
        "memberships",
        &["group_id", "user_id", "directory_id", "created_at"],
        &values,
    )?;
    Ok(())
}

pub fn member_ids(
    conn: &mut AnyConnection,
    directory_id: &str,
    group_id: &str,
) -> Result<Vec<String>, Error> {
    Ok(memberships::table
        .filter(m::directory_id.eq(directory_id))
        .filter(m::group_id.eq(group_id))
        .order(m::user_id.asc())
        .select(m::user_id)
        .load(conn)?)
}

pub fn members(
    conn: &mut AnyConnection,
    directory_id: &str,
    group_id: &str,
    page: Option<Page>,
) -> Result<Vec<Member>, Error> {
    let mut q = memberships::table
        .inner_join(users::table)
        .filter(m::directory_id.eq(directory_id))
        .filter(m::group_id.eq(group_id))
        .order(m::user_id.asc())
        .select((users::id, users::user_name, users::display_name))
        .into_boxed();
    if let Some(p) = page {
        q = q.offset(p.offset).limit(p.limit);
    }
    Ok(q.load(conn)?)
}

/// Groups of each of `user_ids`, for rendering users' `groups` in one query per page.
pub fn groups_of_users(
    conn: &mut AnyConnection,
    directory_id: &str,
    user_ids: &[String],
) -> Result<Vec<UserGroup>, Error> {
    Ok(memberships::table
        .inner_join(scim_groups::table)
        .filter(m::directory_id.eq(directory_id))
        .filter(m::user_id.eq_any(user_ids))
        .order((m::user_id.asc(), scim_groups::display_name.asc()))
        .select((m::user_id, scim_groups::id, scim_groups::display_name))
        .load(conn)?)
}

pub fn delete(
    conn: &mut AnyConnection,
    directory_id: &str,
    group_id: &str,
    user_ids: &[String],
) -> Result<usize, Error> {
    let mut n = 0;
    for chunk in user_ids.chunks(5000) {
        n += diesel::delete(
            memberships::table
                .filter(m::directory_id.eq(directory_id))
                .filter(m::group_id.eq(group_id))
                .filter(m::user_id.eq_any(chunk)),
        )
        .execute(conn)?;
    }
    Ok(n)
}

pub fn delete_for_user(
    conn: &mut AnyConnection,
    directory_id: &str,
    user_id: &str,
) -> Result<usize, Error> {
    Ok(diesel::delete(
        memberships::table
            .filter(m::directory_id.eq(directory_id))
            .filter(m::user_id.eq(user_id)),
    )
    .execute(conn)?)
}
