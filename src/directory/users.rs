//! SCIM Users of a directory: create, read, list, replace, patch, delete.

use std::collections::HashMap;

use serde_json::{json, Value};

use super::events::{self, USER_CREATED, USER_DELETED, USER_UPDATED};
use super::groups::{group_summary, load_group_resource};
use super::DirectoryScope;
use crate::error::Error;
use crate::scim::list::ListQuery;
use crate::scim::patch::{self, Target};
use crate::scim::resource::{self, EtagCondition, ResourceMeta, UserFields};
use crate::scim::ScimError;
use crate::store::events as event_store;
use crate::store::filter_sql::{self, Order};
use crate::store::memberships::{self, UserGroup};
use crate::store::users::{self as store, EmailRow, UserRow};
use crate::store::{self as db, now, write_tx, AnyConnection, Page};

/// A user as stored plus its groups, ready to render.
#[derive(Debug, Clone)]
pub struct UserView {
    pub row: UserRow,
    pub groups: Vec<UserGroup>,
}

impl UserView {
    pub fn render(&self, base_url: &str) -> Value {
        render(&self.row, &self.groups, base_url)
    }
}

pub fn render(row: &UserRow, groups: &[UserGroup], base_url: &str) -> Value {
    let raw: Value = serde_json::from_str(&row.raw).unwrap_or_else(|_| json!({}));
    let derived = (!groups.is_empty()).then(|| {
        (
            "groups",
            groups
                .iter()
                .map(|g| {
                    json!({
                        "value": g.group_id,
                        "display": g.display_name,
                        "$ref": format!("{base_url}/Groups/{}", g.group_id),
                        "type": "direct",
                    })
                })
                .collect(),
        )
    });
    resource::render(&raw, &meta(row, base_url), derived)
}

fn meta(row: &UserRow, base_url: &str) -> ResourceMeta {
    ResourceMeta {
        id: row.id.clone(),
        resource_type: "User",
        created: row.created_at,
        last_modified: row.updated_at,
        version: row.version,
        location: format!("{base_url}/Users/{}", row.id),
    }
}

/// Jackson's user shape (`{id, first_name, last_name, email, active, raw}`), used in
/// events and the admin API; `raw` is the SCIM resource.
pub fn user_summary(row: &UserRow, raw: Value) -> Value {
    json!({
        "id": row.id,
        "directory_id": row.directory_id,
        "first_name": row.given_name,
        "last_name": row.family_name,
        "email": row.email,
        "active": row.active,
        "raw": raw,
    })
}

fn row_from(
    scope: &DirectoryScope,
    id: String,
    raw: &Value,
    f: &UserFields,
    version: i64,
    created: chrono::NaiveDateTime,
) -> UserRow {
    UserRow {
        id,
        directory_id: scope.id().to_string(),
        user_name_lower: f.user_name.to_lowercase(),
        user_name: f.user_name.clone(),
        external_id: f.external_id.clone(),
        email_lower: f.email.as_ref().map(|e| e.to_lowercase()),
        email: f.email.clone(),
        given_name: f.given_name.clone(),
        family_name: f.family_name.clone(),
        display_name: f.display_name.clone(),
        active: f.active,
        raw: raw.to_string(),
        version,
        created_at: created,
        updated_at: now(),
    }
}

fn email_rows(row: &UserRow, fields: &UserFields) -> Vec<EmailRow> {
    fields
        .emails
        .iter()
        .enumerate()
        .map(|(i, e)| EmailRow {
            user_id: row.id.clone(),
            position: i as i64,
            directory_id: row.directory_id.clone(),
            value_lower: e.value_lower.clone(),
            email_type: e.email_type.clone(),
            is_primary: e.primary,
        })
        .collect()
}

fn duplicate(user_name: &str) -> Error {
    ScimError::uniqueness(format!(
        "a user with userName {user_name:?} already exists in this directory"
    ))
    .into()
}

fn not_found(id: &str) -> Error {
    ScimError::not_found(format!("user {id} not found")).into()
}

/// Seats: a directory with a `user_limit` refuses more active users than that.
fn check_seats(conn: &mut AnyConnection, scope: &DirectoryScope) -> Result<(), Error> {
    if let Some(limit) = scope.directory.user_limit {
        if store::count_active(conn, scope.id())? >= limit {
            return Err(ScimError::forbidden(format!(
                "seat limit reached: this directory allows {limit} active users"
            ))
            .into());
        }
    }
    Ok(())
}

pub fn create(
    conn: &mut AnyConnection,
    scope: &DirectoryScope,
    body: Value,
) -> Result<UserView, Error> {
    let (raw, fields) = resource::normalize_user(body)?;
    let id = uuid::Uuid::now_v7().to_string();
    let row = row_from(scope, id, &raw, &fields, 1, now());
    let rendered = render(&row, &[], &scope.base_url);
    let event = events::build(
        &scope.directory,
        None,
        USER_CREATED,
        user_summary(&row, rendered),
    );
    let sets = [
        store::user_rows(std::slice::from_ref(&row)),
        store::email_rows(&email_rows(&row, &fields)),
        event_store::event_rows(std::slice::from_ref(&event)),
    ];
    // The unique index decides duplicates (mapped to 409 below): no read first.
    let result = match (scope.directory.user_limit, row.active) {
        // Counting seats needs a transaction around the check and the insert.
        (Some(_), true) => write_tx(conn, |conn| {
            check_seats(conn, scope)?;
            for set in &sets {
                db::bulk_insert(conn, set.table, set.columns, &set.rows)?;
            }
            Ok(())
        }),
        _ => db::insert_atomically(conn, &sets),
    };
    match result {
        Err(e) if db::is_unique_violation(&e) => Err(duplicate(&row.user_name)),
        Err(e) => Err(e),
        Ok(()) => Ok(UserView {
            row,
            groups: Vec::new(),
        }),
    }
}

/// Creates many users in one write transaction (a directory pulled from its provider),
/// each with the `user.created` [`create`] would record, in multi-row inserts. All or
/// nothing: a duplicate `userName` or a seat limit refuses the whole batch.
pub fn create_many(
    conn: &mut AnyConnection,
    scope: &DirectoryScope,
    bodies: Vec<Value>,
) -> Result<Vec<UserRow>, Error> {
    let mut rows = Vec::with_capacity(bodies.len());
    let (mut emails, mut created) = (Vec::new(), Vec::with_capacity(bodies.len()));
    for body in bodies {
        let (raw, fields) = resource::normalize_user(body)?;
        let row = row_from(
            scope,
            uuid::Uuid::now_v7().to_string(),
            &raw,
            &fields,
            1,
            now(),
        );
        emails.extend(email_rows(&row, &fields));
        let rendered = render(&row, &[], &scope.base_url);
        created.push(events::build(
            &scope.directory,
            None,
            USER_CREATED,
            user_summary(&row, rendered),
        ));
        rows.push(row);
    }
    let active = rows.iter().filter(|r| r.active).count() as i64;
    let result = write_tx(conn, |conn| {
        if let (Some(limit), true) = (scope.directory.user_limit, active > 0) {
            if store::count_active(conn, scope.id())? + active > limit {
                return Err(ScimError::forbidden(format!(
                    "seat limit reached: this directory allows {limit} active users"
                ))
                .into());
            }
        }
        for set in [
            store::user_rows(&rows),
            store::email_rows(&emails),
            event_store::event_rows(&created),
        ] {
            db::bulk_insert(conn, set.table, set.columns, &set.rows)?;
        }
        Ok(())
    });
    match result {
        Err(e) if db::is_unique_violation(&e) => {
            Err(ScimError::uniqueness("a userName of the batch already exists").into())
        }
        Err(e) => Err(e),
        Ok(()) => Ok(rows),
    }
}

pub fn get(conn: &mut AnyConnection, scope: &DirectoryScope, id: &str) -> Result<UserView, Error> {
    super::known_id(id, "user")?;
    let row = store::get(conn, scope.id(), id)?.ok_or_else(|| not_found(id))?;
    let groups = memberships::groups_of_users(conn, scope.id(), std::slice::from_ref(&row.id))?;
    Ok(UserView { row, groups })
}

fn with_groups(
    conn: &mut AnyConnection,
    scope: &DirectoryScope,
    rows: Vec<UserRow>,
) -> Result<Vec<UserView>, Error> {
    let ids: Vec<String> = rows.iter().map(|r| r.id.clone()).collect();
    let mut by_user: HashMap<String, Vec<UserGroup>> = HashMap::new();
    if !ids.is_empty() {
        for g in memberships::groups_of_users(conn, scope.id(), &ids)? {
            by_user.entry(g.user_id.clone()).or_default().push(g);
        }
    }
    Ok(rows
        .into_iter()
        .map(|row| {
            let groups = by_user.remove(&row.id).unwrap_or_default();
            UserView { row, groups }
        })
        .collect())
}

/// A page of users. The filter's indexed part runs as SQL; a residual (attributes no
/// column holds) and a `sortBy` no column answers are evaluated over the candidates.
pub fn list(
    conn: &mut AnyConnection,
    scope: &DirectoryScope,
    q: &ListQuery,
) -> Result<(Vec<UserView>, i64), Error> {
    let dir = scope.id();
    let page = Page {
        offset: q.offset(),
        limit: q.count,
    };
    let sql = || {
        q.filter
            .as_ref()
            .and_then(|f| filter_sql::split_user_filter(f, dir).sql)
    };
    let residual = q
        .filter
        .as_ref()
        .and_then(|f| filter_sql::split_user_filter(f, dir).residual);
    let column_order = match q.sort_by.as_deref() {
        None => Some(Order::default()),
        Some(by) => filter_sql::user_sort_column(by).map(|c| Order {
            column: Some(c),
            descending: q.descending,
        }),
    };
    match column_order {
        // Index lookups run outside a transaction: one statement, or two with a count.
        Some(order) if residual.is_none() => {
            let (rows, total) = super::indexed_page(
                conn,
                page,
                |c, p| store::select(c, dir, sql(), order, p),
                |c| store::count(c, dir, sql()),
            )?;
            Ok((with_groups(conn, scope, rows)?, total))
        }
        _ => {
            let order = column_order.unwrap_or_default();
            let sort = match column_order {
                Some(_) => None,
                None => q.sort_by.as_deref().map(|by| (by, q.descending)),
            };
            // A scan reads in batches: one snapshot for all of them.
            db::read_tx(conn, |conn| {
                super::scan(
                    |p| {
                        let rows = store::select(conn, dir, sql(), order, p)?;
                        with_groups(conn, scope, rows)
                    },
                    |v| v.render(&scope.base_url),
                    residual.as_ref(),
                    sort,
                    page,
                )
            })
        }
    }
}

/// Stores a new state of an existing user (PUT and PATCH), with its event.
fn save(
    conn: &mut AnyConnection,
    scope: &DirectoryScope,
    old: &UserRow,
    raw: Value,
    fields: UserFields,
) -> Result<UserView, Error> {
    let row = row_from(
        scope,
        old.id.clone(),
        &raw,
        &fields,
        old.version + 1,
        old.created_at,
    );
    // Only what the change touches: the uniqueness question when the name changed, the
    // changed columns, the email rows when the emails changed.
    if row.user_name_lower != old.user_name_lower
        && store::user_name_taken(conn, scope.id(), &row.user_name_lower, Some(&row.id))?
    {
        return Err(duplicate(&row.user_name));
    }
    if row.active && !old.active {
        check_seats(conn, scope)?;
    }
    store::update(
        conn,
        scope.id(),
        &row.id,
        &store::UserChanges::between(old, &row),
    )?;
    if emails_changed(&old.raw, &raw) {
        store::set_emails(conn, &row.id, &email_rows(&row, &fields))?;
    }
    let groups = memberships::groups_of_users(conn, scope.id(), std::slice::from_ref(&row.id))?;
    let rendered = render(&row, &groups, &scope.base_url);
    events::record(
        conn,
        &scope.directory,
        USER_UPDATED,
        user_summary(&row, rendered),
    )?;
    Ok(UserView { row, groups })
}

/// Whether a write changes the emails (their rows derive from the resource's `emails`
/// alone). A stored resource that does not parse counts as changed.
fn emails_changed(old_raw: &str, new: &Value) -> bool {
    serde_json::from_str::<Value>(old_raw)
        .map(|old| old.get("emails") != new.get("emails"))
        .unwrap_or(true)
}

fn map_race(result: Result<UserView, Error>) -> Result<UserView, Error> {
    match result {
        Err(e) if db::is_unique_violation(&e) => {
            Err(ScimError::uniqueness("userName already exists in this directory").into())
        }
        other => other,
    }
}

pub fn replace(
    conn: &mut AnyConnection,
    scope: &DirectoryScope,
    id: &str,
    body: Value,
    if_match: Option<&EtagCondition>,
) -> Result<UserView, Error> {
    super::known_id(id, "user")?;
    let (raw, fields) = resource::normalize_user(body)?;
    map_race(write_tx(conn, |conn| {
        let old = store::get_for_update(conn, scope.id(), id)?.ok_or_else(|| not_found(id))?;
        resource::check_if_match(if_match, old.version)?;
        save(conn, scope, &old, raw, fields)
    }))
}

pub fn patch(
    conn: &mut AnyConnection,
    scope: &DirectoryScope,
    id: &str,
    body: Value,
    if_match: Option<&EtagCondition>,
) -> Result<UserView, Error> {
    super::known_id(id, "user")?;
    let ops = patch::parse(&body)?;
    let apply = |row: &UserRow| -> Result<(Value, UserFields), Error> {
        let mut doc: Value = serde_json::from_str(&row.raw)
            .map_err(|e| Error::Internal(format!("stored user is not JSON: {e}")))?;
        patch::apply(&mut doc, &ops, Target::User)?;
        Ok(resource::normalize_user(doc)?)
    };
    let early = super::before_write_lock(
        conn,
        |c| store::get(c, scope.id(), id),
        |r| r.version,
        apply,
    )?;
    map_race(write_tx(conn, |conn| {
        let old = store::get_for_update(conn, scope.id(), id)?.ok_or_else(|| not_found(id))?;
        resource::check_if_match(if_match, old.version)?;
        let (raw, fields) = super::current(early, old.version, || apply(&old))?;
        save(conn, scope, &old, raw, fields)
    }))
}

/// Deletes a user: `group.user_removed` for each of its memberships, then `user.deleted`.
pub fn delete(
    conn: &mut AnyConnection,
    scope: &DirectoryScope,
    id: &str,
    if_match: Option<&EtagCondition>,
) -> Result<(), Error> {
    super::known_id(id, "user")?;
    write_tx(conn, |conn| {
        // Locked: waits for any membership change adding this user, so its removal below
        // sees it.
        let row = store::get_for_update(conn, scope.id(), id)?.ok_or_else(|| not_found(id))?;
        resource::check_if_match(if_match, row.version)?;
        let groups = memberships::groups_of_users(conn, scope.id(), std::slice::from_ref(&row.id))?;
        let rendered = render(&row, &groups, &scope.base_url);
        let mut batch = Vec::with_capacity(groups.len() + 1);
        let user = user_summary(&row, rendered);
        for g in &groups {
            let (group, group_raw) = load_group_resource(conn, scope, &g.group_id)?;
            let group_json = group_summary(&group, group_raw).to_string();
            batch.push((
                events::GROUP_USER_REMOVED,
                events::with_group(&user, &group_json),
            ));
        }
        batch.push((USER_DELETED, user.to_string()));
        memberships::delete_for_user(conn, scope.id(), id)?;
        store::delete(conn, scope.id(), id)?;
        events::record_many(conn, &scope.directory, batch)?;
        Ok(())
    })
}

/// A page of the users of several directories (the admin API's reads by tenant and
/// product), each as its event payload.
pub fn summaries_in(
    conn: &mut AnyConnection,
    directory_ids: &[String],
    page: Page,
    external_url: &str,
) -> Result<Vec<Value>, Error> {
    Ok(store::list_in(conn, directory_ids, page)?
        .iter()
        .map(|r| {
            let base = super::scim_base_url(external_url, &r.directory_id);
            user_summary(r, render(r, &[], &base))
        })
        .collect())
}

/// One user of any of `directory_ids`, with its groups, as its event payload.
pub fn summary_in(
    conn: &mut AnyConnection,
    directory_ids: &[String],
    id: &str,
    external_url: &str,
) -> Result<Value, Error> {
    let missing = || Error::from(ScimError::not_found("User not found"));
    if !super::is_resource_id(id) {
        return Err(missing());
    }
    let row = store::get_in(conn, directory_ids, id)?.ok_or_else(missing)?;
    let groups =
        memberships::groups_of_users(conn, &row.directory_id, std::slice::from_ref(&row.id))?;
    let base = super::scim_base_url(external_url, &row.directory_id);
    Ok(user_summary(&row, render(&row, &groups, &base)))
}
