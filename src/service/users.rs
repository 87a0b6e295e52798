//! SCIM Users of a directory: create, read, list, replace, patch, delete.

use std::collections::HashMap;

use serde_json::{json, Value};

use super::events::{self, USER_CREATED, USER_DELETED, USER_UPDATED};
use super::groups::{group_summary, load_group_resource};
use super::DirectoryScope;
use crate::error::Error;
use crate::scim::filter::{CompareOp, Filter};
use crate::scim::list::ListQuery;
use crate::scim::patch::{self, Target};
use crate::scim::resource::{self, ResourceMeta, UserFields};
use crate::scim::ScimError;
use crate::store::memberships::{self, UserGroup};
use crate::store::users::{self as store, UserCondition, UserRow};
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
    let id = uuid::Uuid::new_v4().to_string();
    let row = row_from(scope, id, &raw, &fields, 1, now());
    let result = write_tx(conn, |conn| {
        if store::user_name_taken(conn, scope.id(), &row.user_name_lower, None)? {
            return Err(duplicate(&row.user_name));
        }
        if row.active {
            check_seats(conn, scope)?;
        }
        store::insert(conn, &row)?;
        let rendered = render(&row, &[], &scope.base_url);
        events::record(
            conn,
            &scope.directory,
            USER_CREATED,
            user_summary(&row, rendered),
        )?;
        Ok(())
    });
    match result {
        // Two concurrent creates of one userName: the index decides, the loser gets a 409.
        Err(e) if db::is_unique_violation(&e) => Err(duplicate(&row.user_name)),
        Err(e) => Err(e),
        Ok(()) => Ok(UserView {
            row,
            groups: Vec::new(),
        }),
    }
}

pub fn get(conn: &mut AnyConnection, scope: &DirectoryScope, id: &str) -> Result<UserView, Error> {
    let row = store::get(conn, scope.id(), id)?.ok_or_else(|| not_found(id))?;
    let groups = memberships::groups_of_users(conn, scope.id(), std::slice::from_ref(&row.id))?;
    Ok(UserView { row, groups })
}

/// The conditions of a filter that the indexes answer exactly, if the whole filter is such
/// a conjunction; other filters are evaluated over the JSON.
fn indexed_conditions(f: &Filter) -> Option<Vec<UserCondition>> {
    match f {
        Filter::And(a, b) => {
            let mut c = indexed_conditions(a)?;
            c.extend(indexed_conditions(b)?);
            Some(c)
        }
        Filter::Compare(p, CompareOp::Eq, v)
            if p.urn.as_deref().is_none_or(|u| u.contains(":core:")) =>
        {
            let s = v.as_str().map(str::to_string);
            let c = if p.is("userName", None) {
                s.map(UserCondition::UserName)
            } else if p.is("id", None) {
                s.map(UserCondition::Id)
            } else if p.is("externalId", None) {
                s.map(UserCondition::ExternalId)
            } else if p.is("active", None) {
                v.as_bool().map(UserCondition::Active)
            } else {
                None
            };
            c.map(|c| vec![c])
        }
        _ => None,
    }
}

/// Rows scanned per batch when a filter has to be evaluated over the JSON.
const SCAN_BATCH: i64 = 500;

pub fn list(
    conn: &mut AnyConnection,
    scope: &DirectoryScope,
    q: &ListQuery,
) -> Result<(Vec<UserView>, i64), Error> {
    let page = Page {
        offset: q.offset(),
        limit: q.count,
    };
    let (rows, total) = match &q.filter {
        None => db::read_tx(conn, |c| store::list(c, scope.id(), &[], page))?,
        Some(f) => match indexed_conditions(f) {
            Some(conds) => db::read_tx(conn, |c| store::list(c, scope.id(), &conds, page))?,
            None => scan(conn, scope, f, page)?,
        },
    };
    let ids: Vec<String> = rows.iter().map(|r| r.id.clone()).collect();
    let mut by_user: HashMap<String, Vec<UserGroup>> = HashMap::new();
    if !ids.is_empty() {
        for g in memberships::groups_of_users(conn, scope.id(), &ids)? {
            by_user.entry(g.user_id.clone()).or_default().push(g);
        }
    }
    let views = rows
        .into_iter()
        .map(|row| {
            let groups = by_user.remove(&row.id).unwrap_or_default();
            UserView { row, groups }
        })
        .collect();
    Ok((views, total))
}

/// Evaluates a filter the indexes cannot answer over every user of the directory, in
/// batches, keeping the requested page and the true total.
fn scan(
    conn: &mut AnyConnection,
    scope: &DirectoryScope,
    f: &Filter,
    page: Page,
) -> Result<(Vec<UserRow>, i64), Error> {
    db::read_tx(conn, |conn| {
        let (mut matched, mut total, mut offset) = (Vec::new(), 0i64, 0i64);
        loop {
            let (batch, _) = store::list(
                conn,
                scope.id(),
                &[],
                Page {
                    offset,
                    limit: SCAN_BATCH,
                },
            )?;
            let n = batch.len() as i64;
            let ids: Vec<String> = batch.iter().map(|r| r.id.clone()).collect();
            let mut by_user: HashMap<String, Vec<UserGroup>> = HashMap::new();
            for g in memberships::groups_of_users(conn, scope.id(), &ids)? {
                by_user.entry(g.user_id.clone()).or_default().push(g);
            }
            for row in batch {
                let groups = by_user.remove(&row.id).unwrap_or_default();
                if crate::scim::filter::matches(f, &render(&row, &groups, &scope.base_url)) {
                    if total >= page.offset && (matched.len() as i64) < page.limit {
                        matched.push(row);
                    }
                    total += 1;
                }
            }
            if n < SCAN_BATCH {
                break;
            }
            offset += SCAN_BATCH;
        }
        Ok((matched, total))
    })
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
    if store::user_name_taken(conn, scope.id(), &row.user_name_lower, Some(&row.id))? {
        return Err(duplicate(&row.user_name));
    }
    if row.active && !old.active {
        check_seats(conn, scope)?;
    }
    store::update(conn, &row)?;
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
) -> Result<UserView, Error> {
    let (raw, fields) = resource::normalize_user(body)?;
    map_race(write_tx(conn, |conn| {
        let old = store::get(conn, scope.id(), id)?.ok_or_else(|| not_found(id))?;
        save(conn, scope, &old, raw, fields)
    }))
}

pub fn patch(
    conn: &mut AnyConnection,
    scope: &DirectoryScope,
    id: &str,
    body: Value,
) -> Result<UserView, Error> {
    let ops = patch::parse(&body)?;
    map_race(write_tx(conn, |conn| {
        let old = store::get(conn, scope.id(), id)?.ok_or_else(|| not_found(id))?;
        let mut doc: Value = serde_json::from_str(&old.raw)
            .map_err(|e| Error::Internal(format!("stored user is not JSON: {e}")))?;
        patch::apply(&mut doc, &ops, Target::User)?;
        let (raw, fields) = resource::normalize_user(doc)?;
        save(conn, scope, &old, raw, fields)
    }))
}

/// Deletes a user: `group.user_removed` for each of its memberships, then `user.deleted`.
pub fn delete(conn: &mut AnyConnection, scope: &DirectoryScope, id: &str) -> Result<(), Error> {
    write_tx(conn, |conn| {
        let row = store::get(conn, scope.id(), id)?.ok_or_else(|| not_found(id))?;
        let groups = memberships::groups_of_users(conn, scope.id(), std::slice::from_ref(&row.id))?;
        let rendered = render(&row, &groups, &scope.base_url);
        for g in &groups {
            let group = load_group_resource(conn, scope, &g.group_id)?;
            let mut data = user_summary(&row, rendered.clone());
            data["group"] = group_summary(&group.0, group.1);
            events::record(conn, &scope.directory, events::GROUP_USER_REMOVED, data)?;
        }
        memberships::delete_for_user(conn, scope.id(), id)?;
        store::delete(conn, scope.id(), id)?;
        events::record(
            conn,
            &scope.directory,
            USER_DELETED,
            user_summary(&row, rendered),
        )?;
        Ok(())
    })
}
