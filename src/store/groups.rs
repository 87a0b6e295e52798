use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::filter_sql::{GroupExpr, Order};
use super::schema::scim_groups;
use super::schema::scim_groups::dsl as g;
use super::{AnyConnection, MultiBackend, Page};
use crate::error::Error;

#[derive(Debug, Clone, Queryable, QueryableByName, Selectable, Insertable, AsChangeset)]
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

fn scoped(
    directory_id: &str,
    sql: Option<GroupExpr>,
) -> scim_groups::BoxedQuery<'static, MultiBackend> {
    let mut q = scim_groups::table
        .filter(g::directory_id.eq(directory_id.to_string()))
        .into_boxed();
    if let Some(e) = sql {
        q = q.filter(e);
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

/// A group, locked until the write transaction ends (see [`super::get_for_update`]).
pub fn get_for_update(
    conn: &mut AnyConnection,
    directory_id: &str,
    id: &str,
) -> Result<Option<GroupRow>, Error> {
    super::get_for_update(conn, "scim_groups", directory_id, id)
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

/// A page of a directory's groups matching `sql`, in `order`.
pub fn select(
    conn: &mut AnyConnection,
    directory_id: &str,
    sql: Option<GroupExpr>,
    order: Order,
    page: Page,
) -> Result<Vec<GroupRow>, Error> {
    let clause = order.sql(conn.backend());
    Ok(scoped(directory_id, sql)
        .order(diesel::dsl::sql::<diesel::sql_types::Text>(&clause))
        .offset(page.offset)
        .limit(page.limit)
        .select(GroupRow::as_select())
        .load(conn)?)
}

pub fn count(
    conn: &mut AnyConnection,
    directory_id: &str,
    sql: Option<GroupExpr>,
) -> Result<i64, Error> {
    Ok(scoped(directory_id, sql).count().get_result(conn)?)
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
