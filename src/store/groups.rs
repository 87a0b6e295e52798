use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::scim_groups;
use super::schema::scim_groups::dsl as g;
use super::{AnyConnection, Page};
use crate::error::Error;

#[derive(Debug, Clone, Queryable, Selectable, Insertable, AsChangeset)]
#[diesel(table_name = scim_groups, treat_none_as_null = true)]
pub struct GroupRow {
    pub id: String,
    pub directory_id: String,
    pub display_name: String,
    pub display_name_lower: String,
    pub external_id: Option<String>,
    pub raw: String,
    pub version: i64,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

/// A condition an index can answer; a query ANDs them.
#[derive(Debug, Clone, PartialEq)]
pub enum GroupCondition {
    Id(String),
    /// Compared lower-cased: `displayName` is case-insensitive.
    DisplayName(String),
    ExternalId(String),
}

type BoxedGroups<'a> = scim_groups::BoxedQuery<'a, super::MultiBackend>;

fn scoped<'a>(directory_id: &'a str, conditions: &'a [GroupCondition]) -> BoxedGroups<'a> {
    let mut q = scim_groups::table
        .filter(g::directory_id.eq(directory_id))
        .into_boxed();
    for c in conditions {
        q = match c {
            GroupCondition::Id(v) => q.filter(g::id.eq(v)),
            GroupCondition::DisplayName(v) => q.filter(g::display_name_lower.eq(v.to_lowercase())),
            GroupCondition::ExternalId(v) => q.filter(g::external_id.eq(v)),
        };
    }
    q
}

pub fn insert(conn: &mut AnyConnection, row: &GroupRow) -> Result<(), Error> {
    diesel::insert_into(scim_groups::table)
        .values(row)
        .execute(conn)?;
    Ok(())
}

pub fn update(conn: &mut AnyConnection, row: &GroupRow) -> Result<(), Error> {
    diesel::update(
        scim_groups::table
            .filter(g::directory_id.eq(&row.directory_id))
            .filter(g::id.eq(&row.id)),
    )
    .set(row)
    .execute(conn)?;
    Ok(())
}

pub fn get(
    conn: &mut AnyConnection,
    directory_id: &str,
    id: &str,
) -> Result<Option<GroupRow>, Error> {
    Ok(scim_groups::table
        .filter(g::directory_id.eq(directory_id))
        .filter(g::id.eq(id))
        .select(GroupRow::as_select())
        .first(conn)
        .optional()?)
}

pub fn display_name_taken(
    conn: &mut AnyConnection,
    directory_id: &str,
    display_name_lower: &str,
    except_id: Option<&str>,
) -> Result<bool, Error> {
    let mut q = scim_groups::table
        .filter(g::directory_id.eq(directory_id))
        .filter(g::display_name_lower.eq(display_name_lower))
        .select(g::id)
        .into_boxed();
    if let Some(id) = except_id {
        q = q.filter(g::id.ne(id));
    }
    Ok(q.first::<String>(conn).optional()?.is_some())
}

pub fn list(
    conn: &mut AnyConnection,
    directory_id: &str,
    conditions: &[GroupCondition],
    page: Page,
) -> Result<(Vec<GroupRow>, i64), Error> {
    let rows = scoped(directory_id, conditions)
        .order((g::created_at.asc(), g::id.asc()))
        .offset(page.offset)
        .limit(page.limit)
        .select(GroupRow::as_select())
        .load(conn)?;
    let total = scoped(directory_id, conditions).count().get_result(conn)?;
    Ok((rows, total))
}

pub fn list_in(
    conn: &mut AnyConnection,
    directory_ids: &[String],
    page: Page,
) -> Result<Vec<GroupRow>, Error> {
    Ok(scim_groups::table
        .filter(g::directory_id.eq_any(directory_ids))
        .order((g::created_at.asc(), g::id.asc()))
        .offset(page.offset)
        .limit(page.limit)
        .select(GroupRow::as_select())
        .load(conn)?)
}

pub fn get_in(
    conn: &mut AnyConnection,
    directory_ids: &[String],
    id: &str,
) -> Result<Option<GroupRow>, Error> {
    Ok(scim_groups::table
        .filter(g::directory_id.eq_any(directory_ids))
        .filter(g::id.eq(id))
        .select(GroupRow::as_select())
        .first(conn)
        .optional()?)
}

pub fn delete(conn: &mut AnyConnection, directory_id: &str, id: &str) -> Result<usize, Error> {
    Ok(diesel::delete(
        scim_groups::table
            .filter(g::directory_id.eq(directory_id))
            .filter(g::id.eq(id)),
    )
    .execute(conn)?)
}
