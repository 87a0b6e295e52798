use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::filter_sql::{Order, UserExpr};
use super::schema::users::dsl as u;
use super::schema::{user_emails, users};
use super::{AnyConnection, MultiBackend, Page, Rows, SqlValue};
use crate::error::Error;

#[derive(Debug, Clone, Queryable, QueryableByName, Selectable, Insertable, AsChangeset)]
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

fn scoped(directory_id: &str, sql: Option<UserExpr>) -> users::BoxedQuery<'static, MultiBackend> {
    let mut q = users::table
        .filter(u::directory_id.eq(directory_id.to_string()))
        .into_boxed();
    if let Some(e) = sql {
        q = q.filter(e);
    }
    q
}

pub fn insert(conn: &mut AnyConnection, row: &UserRow) -> Result<(), Error> {
    diesel::insert_into(users::table)
        .values(row)
        .execute(conn)?;
    Ok(())
}

/// The columns of a user that a write changes; `None` leaves a column as it is (and a
/// nullable column's `Some(None)` clears it).
#[derive(Debug, Default, AsChangeset)]
#[diesel(table_name = users)]
pub struct UserChanges {
    pub user_name: Option<String>,
    pub user_name_lower: Option<String>,
    pub external_id: Option<Option<String>>,
    pub email: Option<Option<String>>,
    pub email_lower: Option<Option<String>>,
    pub given_name: Option<Option<String>>,
    pub family_name: Option<Option<String>>,
    pub display_name: Option<Option<String>>,
    pub active: Option<bool>,
    pub raw: Option<String>,
    pub version: Option<i64>,
    pub updated_at: Option<NaiveDateTime>,
}

impl UserChanges {
    /// What differs between a stored row and its next state (version and time always).
    pub fn between(old: &UserRow, new: &UserRow) -> Self {
        fn changed<T: PartialEq + Clone>(a: &T, b: &T) -> Option<T> {
            (a != b).then(|| b.clone())
        }
        Self {
            user_name: changed(&old.user_name, &new.user_name),
            user_name_lower: changed(&old.user_name_lower, &new.user_name_lower),
            external_id: changed(&old.external_id, &new.external_id),
            email: changed(&old.email, &new.email),
            email_lower: changed(&old.email_lower, &new.email_lower),
            given_name: changed(&old.given_name, &new.given_name),
            family_name: changed(&old.family_name, &new.family_name),
            display_name: changed(&old.display_name, &new.display_name),
            active: changed(&old.active, &new.active),
            raw: changed(&old.raw, &new.raw),
            version: Some(new.version),
            updated_at: Some(new.updated_at),
        }
    }
}

/// Writes the changed columns of an existing user (the id, directory and creation time
/// never change).
pub fn update(
    conn: &mut AnyConnection,
    directory_id: &str,
    id: &str,
    changes: &UserChanges,
) -> Result<(), Error> {
    diesel::update(
        users::table
            .filter(u::directory_id.eq(directory_id))
            .filter(u::id.eq(id)),
    )
    .set(changes)
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

/// A page of a directory's users matching `sql`, in `order`.
pub fn select(
    conn: &mut AnyConnection,
    directory_id: &str,
    sql: Option<UserExpr>,
    order: Order,
    page: Page,
) -> Result<Vec<UserRow>, Error> {
    let clause = order.sql(conn.backend());
    Ok(scoped(directory_id, sql)
        .order(diesel::dsl::sql::<diesel::sql_types::Text>(&clause))
        .offset(page.offset)
        .limit(page.limit)
        .select(UserRow::as_select())
        .load(conn)?)
}

pub fn count(
    conn: &mut AnyConnection,
    directory_id: &str,
    sql: Option<UserExpr>,
) -> Result<i64, Error> {
    Ok(scoped(directory_id, sql).count().get_result(conn)?)
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

/// Users about to become members, locked `FOR KEY SHARE` so they cannot be deleted
/// before this commits. This is how memberships keep pointing at live users on
/// PostgreSQL, which has no foreign key from memberships to users (checking it row by row
/// cost 200 ms in a 10 000-member PATCH): a user deletion takes the user
/// [`get_for_update`] first, so the two serialise.
pub fn by_ids_locked(
    conn: &mut AnyConnection,
    directory_id: &str,
    ids: &[String],
) -> Result<Vec<UserRow>, Error> {
    super::select_by_ids(conn, "users", directory_id, ids, "FOR KEY SHARE")
}

/// A user, locked until the write transaction ends (see [`super::get_for_update`]); a
/// deletion holding it also waits for membership changes adding this user.
pub fn get_for_update(
    conn: &mut AnyConnection,
    directory_id: &str,
    id: &str,
) -> Result<Option<UserRow>, Error> {
    super::get_for_update(conn, "users", directory_id, id)
}

/// Users by id (in id order), in statements of up to 5 000 ids.
pub fn by_ids(
    conn: &mut AnyConnection,
    directory_id: &str,
    ids: &[String],
) -> Result<Vec<UserRow>, Error> {
    super::select_by_ids(conn, "users", directory_id, ids, "")
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

#[derive(Debug, Clone)]
pub struct EmailRow {
    pub user_id: String,
    pub position: i64,
    pub directory_id: String,
    pub value_lower: Option<String>,
    pub email_type: Option<String>,
    pub is_primary: Option<bool>,
}

/// Replaces the indexed emails of a user.
pub fn set_emails(conn: &mut AnyConnection, user_id: &str, rows: &[EmailRow]) -> Result<(), Error> {
    diesel::delete(user_emails::table.filter(user_emails::user_id.eq(user_id))).execute(conn)?;
    insert_emails(conn, rows)
}

/// Indexes the emails of a new user.
pub fn insert_emails(conn: &mut AnyConnection, rows: &[EmailRow]) -> Result<(), Error> {
    if !rows.is_empty() {
        let set = email_rows(rows);
        super::bulk_insert(conn, set.table, set.columns, &set.rows)?;
    }
    Ok(())
}

/// Emails as rows for [`super::insert_atomically`].
pub fn email_rows(rows: &[EmailRow]) -> Rows {
    Rows {
        table: "user_emails",
        columns: &[
            "user_id",
            "position",
            "directory_id",
            "value_lower",
            "email_type",
            "is_primary",
        ],
        rows: rows
            .iter()
            .map(|r| {
                vec![
                    SqlValue::Text(r.user_id.clone()),
                    SqlValue::BigInt(r.position),
                    SqlValue::Text(r.directory_id.clone()),
                    SqlValue::OptText(r.value_lower.clone()),
                    SqlValue::OptText(r.email_type.clone()),
                    SqlValue::OptBool(r.is_primary),
                ]
            })
            .collect(),
    }
}

/// New users as rows for [`super::insert_atomically`] and [`super::bulk_insert`].
pub fn user_rows(users: &[UserRow]) -> Rows {
    Rows {
        table: "users",
        columns: &[
            "id",
            "directory_id",
            "user_name",
            "user_name_lower",
            "external_id",
            "email",
            "email_lower",
            "given_name",
            "family_name",
            "display_name",
            "active",
            "raw",
            "version",
            "created_at",
            "updated_at",
        ],
        rows: users
            .iter()
            .map(|row| {
                vec![
                    SqlValue::Text(row.id.clone()),
                    SqlValue::Text(row.directory_id.clone()),
                    SqlValue::Text(row.user_name.clone()),
                    SqlValue::Text(row.user_name_lower.clone()),
                    SqlValue::OptText(row.external_id.clone()),
                    SqlValue::OptText(row.email.clone()),
                    SqlValue::OptText(row.email_lower.clone()),
                    SqlValue::OptText(row.given_name.clone()),
                    SqlValue::OptText(row.family_name.clone()),
                    SqlValue::OptText(row.display_name.clone()),
                    SqlValue::OptBool(Some(row.active)),
                    SqlValue::Text(row.raw.clone()),
                    SqlValue::BigInt(row.version),
                    SqlValue::Timestamp(row.created_at),
                    SqlValue::Timestamp(row.updated_at),
                ]
            })
            .collect(),
    }
}
