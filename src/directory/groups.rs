//! SCIM Groups of a directory. Members are rows; membership changes are computed as a set
//! difference and applied in bulk, with one event per member added or removed.

use std::collections::{HashMap, HashSet};

use serde_json::{json, Value};

use super::events::{
    self, GROUP_CREATED, GROUP_DELETED, GROUP_UPDATED, GROUP_USER_ADDED, GROUP_USER_REMOVED,
};
use super::users::{self as user_directory, user_summary};
use super::DirectoryScope;
use crate::error::Error;
use crate::scim::list::ListQuery;
use crate::scim::patch::{self, MemberOp, Target};
use crate::scim::resource::{self, EtagCondition, GroupFields, ResourceMeta};
use crate::scim::ScimError;
use crate::store::filter_sql::{self, Order};
use crate::store::groups::{self as store, GroupRow};
use crate::store::memberships::{self, Member, MembershipRow};
use crate::store::users::{self as user_store, UserRow};
use crate::store::{self as db, now, write_tx, AnyConnection, Page};

/// A group as stored plus its members (`None` when they were not asked for).
#[derive(Debug, Clone)]
pub struct GroupView {
    pub row: GroupRow,
    pub members: Option<Vec<Member>>,
}

impl GroupView {
    pub fn render(&self, base_url: &str) -> Value {
        render(&self.row, self.members.as_deref(), base_url)
    }
}

pub fn render(row: &GroupRow, members: Option<&[Member]>, base_url: &str) -> Value {
    let raw: Value = serde_json::from_str(&row.raw).unwrap_or_else(|_| json!({}));
    let derived = members.filter(|m| !m.is_empty()).map(|m| {
        (
            "members",
            m.iter()
                .map(|m| {
                    // RFC 7643 §8.7.1 gives members value, $ref and type only.
                    json!({
                        "value": m.user_id,
                        "$ref": format!("{base_url}/Users/{}", m.user_id),
                        "type": "User",
                    })
                })
                .collect(),
        )
    });
    resource::render(&raw, &meta(row, base_url), derived)
}

fn meta(row: &GroupRow, base_url: &str) -> ResourceMeta {
    ResourceMeta {
        id: row.id.clone(),
        resource_type: "Group",
        created: row.created_at,
        last_modified: row.updated_at,
        version: row.version,
        location: format!("{base_url}/Groups/{}", row.id),
    }
}

/// Jackson's group shape (`{id, name, raw}`), used in events and the admin API.
pub fn group_summary(row: &GroupRow, raw: Value) -> Value {
    json!({"id": row.id, "directory_id": row.directory_id, "name": row.display_name, "raw": raw})
}

/// A group and its rendering without members, for event payloads.
pub fn load_group_resource(
    conn: &mut AnyConnection,
    scope: &DirectoryScope,
    id: &str,
) -> Result<(GroupRow, Value), Error> {
    let row = store::get(conn, scope.id(), id)?.ok_or_else(|| not_found(id))?;
    let rendered = render(&row, None, &scope.base_url);
    Ok((row, rendered))
}

fn not_found(id: &str) -> Error {
    ScimError::not_found(format!("group {id} not found")).into()
}

fn duplicate(name: &str) -> Error {
    ScimError::uniqueness(format!(
        "a group with displayName {name:?} already exists in this directory"
    ))
    .into()
}

fn map_race<T>(result: Result<T, Error>) -> Result<T, Error> {
    match result {
        Err(e) if db::is_unique_violation(&e) => {
            Err(ScimError::uniqueness("displayName already exists in this directory").into())
        }
        other => other,
    }
}

fn row_from(
    scope: &DirectoryScope,
    id: String,
    raw: &Value,
    f: &GroupFields,
    version: i64,
    created: chrono::NaiveDateTime,
) -> GroupRow {
    GroupRow {
        id,
        directory_id: scope.id().to_string(),
        display_name_lower: f.display_name.to_lowercase(),
        display_name: f.display_name.clone(),
        external_id: f.external_id.clone(),
        raw: raw.to_string(),
        version,
        created_at: created,
        updated_at: now(),
    }
}

pub fn create(
    conn: &mut AnyConnection,
    scope: &DirectoryScope,
    body: Value,
) -> Result<GroupView, Error> {
    let (raw, fields, members) = resource::normalize_group(body)?;
    let row = row_from(
        scope,
        uuid::Uuid::now_v7().to_string(),
        &raw,
        &fields,
        1,
        now(),
    );
    map_race(write_tx(conn, |conn| {
        if store::display_name_taken(conn, scope.id(), &row.display_name_lower, None)? {
            return Err(duplicate(&row.display_name));
        }
        store::insert(conn, &row)?;
        let rendered = render(&row, None, &scope.base_url);
        events::record(
            conn,
            &scope.directory,
            GROUP_CREATED,
            group_summary(&row, rendered),
        )?;
        if let Some(ids) = members {
            change_members(conn, scope, &row, &[MemberOp::Replace(ids)])?;
        }
        let members = memberships::members(conn, scope.id(), &row.id, None)?;
        Ok(GroupView {
            row,
            members: Some(members),
        })
    }))
}

pub fn get(
    conn: &mut AnyConnection,
    scope: &DirectoryScope,
    id: &str,
    with_members: bool,
) -> Result<GroupView, Error> {
    super::known_id(id, "group")?;
    let row = store::get(conn, scope.id(), id)?.ok_or_else(|| not_found(id))?;
    let members = if with_members {
        Some(memberships::members(conn, scope.id(), id, None)?)
    } else {
        None
    };
    Ok(GroupView { row, members })
}

fn with_members(
    conn: &mut AnyConnection,
    scope: &DirectoryScope,
    rows: Vec<GroupRow>,
    load: bool,
) -> Result<Vec<GroupView>, Error> {
    let mut views = Vec::with_capacity(rows.len());
    for row in rows {
        let members = if load {
            Some(memberships::members(conn, scope.id(), &row.id, None)?)
        } else {
            None
        };
        views.push(GroupView { row, members });
    }
    Ok(views)
}

/// A page of groups; as for users, the indexed part of the filter runs as SQL and the
/// rest over the candidates (which then need their members).
pub fn list(
    conn: &mut AnyConnection,
    scope: &DirectoryScope,
    q: &ListQuery,
    load_members: bool,
) -> Result<(Vec<GroupView>, i64), Error> {
    let dir = scope.id();
    let page = Page {
        offset: q.offset(),
        limit: q.count,
    };
    let sql = || {
        q.filter
            .as_ref()
            .and_then(|f| filter_sql::split_group_filter(f, dir).sql)
    };
    let residual = q
        .filter
        .as_ref()
        .and_then(|f| filter_sql::split_group_filter(f, dir).residual);
    let column_order = match q.sort_by.as_deref() {
        None => Some(Order::default()),
        Some(by) => filter_sql::group_sort_column(by).map(|c| Order {
            column: Some(c),
            descending: q.descending,
        }),
    };
    match column_order {
        Some(order) if residual.is_none() => {
            let (rows, total) = super::indexed_page(
                conn,
                page,
                |c, p| store::select(c, dir, sql(), order, p),
                |c| store::count(c, dir, sql()),
            )?;
            Ok((with_members(conn, scope, rows, load_members)?, total))
        }
        _ => {
            let order = column_order.unwrap_or_default();
            let sort = match column_order {
                Some(_) => None,
                None => q.sort_by.as_deref().map(|by| (by, q.descending)),
            };
            let (mut views, total) = db::read_tx(conn, |conn| {
                super::scan(
                    |p| {
                        let rows = store::select(conn, dir, sql(), order, p)?;
                        with_members(conn, scope, rows, true)
                    },
                    |v| v.render(&scope.base_url),
                    residual.as_ref(),
                    sort,
                    page,
                )
            })?;
            if !load_members {
                for v in &mut views {
                    v.members = None;
                }
            }
            Ok((views, total))
        }
    }
}

/// Applies member operations in order to the current member set, then writes the
/// difference in bulk and records one event per member added or removed.
/// Returns whether anything changed.
fn change_members(
    conn: &mut AnyConnection,
    scope: &DirectoryScope,
    group: &GroupRow,
    ops: &[MemberOp],
) -> Result<bool, Error> {
    let original: Vec<String> = memberships::member_ids(conn, scope.id(), &group.id)?;
    let original_set: HashSet<&str> = original.iter().map(String::as_str).collect();
    let mut set: HashSet<String> = original.iter().cloned().collect();
    let mut added_order: Vec<String> = Vec::new();
    for op in ops {
        match op {
            MemberOp::Add(ids) => {
                for id in ids {
                    if set.insert(id.clone()) {
                        added_order.push(id.clone());
                    }
                }
            }
            MemberOp::Remove(ids) => {
                for id in ids {
                    set.remove(id);
                }
            }
            MemberOp::RemoveAll => set.clear(),
            MemberOp::Replace(ids) => {
                set.clear();
                for id in ids {
                    if set.insert(id.clone()) {
                        added_order.push(id.clone());
                    }
                }
            }
        }
    }
    let mut seen = HashSet::new();
    let added: Vec<String> = added_order
        .into_iter()
        .filter(|id| {
            set.contains(id) && !original_set.contains(id.as_str()) && seen.insert(id.clone())
        })
        .collect();
    let removed: Vec<String> = original
        .iter()
        .filter(|id| !set.contains(*id))
        .cloned()
        .collect();
    if added.is_empty() && removed.is_empty() {
        return Ok(false);
    }

    let wanted = added.len();
    // Ids that cannot be user ids are unknown without asking the database.
    let candidates: Vec<String> = added
        .into_iter()
        .filter(|id| super::is_resource_id(id))
        .collect();
    // Added members stay users until this commits (see `user_store::by_ids_locked`).
    let mut users: HashMap<String, UserRow> =
        user_store::by_ids_locked(conn, scope.id(), &candidates)?
            .into_iter()
            .map(|u| (u.id.clone(), u))
            .collect();
    // Members that are not users of this directory (refused earlier, e.g. by the seat
    // limit, or of another directory) are skipped: an IdP sends the whole group, and
    // refusing it would block every other member (DESIGN.md §1).
    let added: Vec<String> = candidates
        .into_iter()
        .filter(|id| users.contains_key(id))
        .collect();
    let unknown = wanted - added.len();
    if unknown > 0 {
        tracing::warn!(
            directory_id = %scope.id(),
            group_id = %group.id,
            unknown,
            "skipped group members that are not users of this directory"
        );
    }
    for u in user_store::by_ids(conn, scope.id(), &removed)? {
        users.insert(u.id.clone(), u);
    }
    if added.is_empty() && removed.is_empty() {
        return Ok(false);
    }
    memberships::delete(conn, scope.id(), &group.id, &removed)?;
    let created_at = now();
    let rows: Vec<MembershipRow> = added
        .iter()
        .map(|uid| MembershipRow {
            group_id: group.id.clone(),
            user_id: uid.clone(),
            directory_id: scope.id().to_string(),
            created_at,
        })
        .collect();
    memberships::insert(conn, &rows)?;

    let group_json = group_summary(group, render(group, None, &scope.base_url)).to_string();
    let mut batch = Vec::with_capacity(added.len() + removed.len());
    for (ids, event) in [(&removed, GROUP_USER_REMOVED), (&added, GROUP_USER_ADDED)] {
        for uid in ids {
            if let Some(u) = users.get(uid) {
                let user = user_summary(u, user_directory::render(u, &[], &scope.base_url));
                batch.push((event, events::with_group(&user, &group_json)));
            }
        }
    }
    events::record_many(conn, &scope.directory, batch)?;
    Ok(true)
}

/// Stores a new state of a group's attributes and, if given, its members.
fn save(
    conn: &mut AnyConnection,
    scope: &DirectoryScope,
    old: &GroupRow,
    raw: Value,
    fields: GroupFields,
    member_ops: &[MemberOp],
    load_members: bool,
) -> Result<GroupView, Error> {
    let row = row_from(
        scope,
        old.id.clone(),
        &raw,
        &fields,
        old.version + 1,
        old.created_at,
    );
    if store::display_name_taken(conn, scope.id(), &row.display_name_lower, Some(&row.id))? {
        return Err(duplicate(&row.display_name));
    }
    let attributes_changed = row.raw != old.raw;
    store::update(conn, &row)?;
    if attributes_changed {
        let rendered = render(&row, None, &scope.base_url);
        events::record(
            conn,
            &scope.directory,
            GROUP_UPDATED,
            group_summary(&row, rendered),
        )?;
    }
    if !member_ops.is_empty() {
        change_members(conn, scope, &row, member_ops)?;
    }
    let members = if load_members {
        Some(memberships::members(conn, scope.id(), &row.id, None)?)
    } else {
        None
    };
    Ok(GroupView { row, members })
}

/// PUT: replaces the attributes; `members`, when present, replaces the membership (when
/// absent, memberships are kept: some IdPs PUT a group only to rename it).
pub fn replace(
    conn: &mut AnyConnection,
    scope: &DirectoryScope,
    id: &str,
    body: Value,
    if_match: Option<&EtagCondition>,
    load_members: bool,
) -> Result<GroupView, Error> {
    super::known_id(id, "group")?;
    let (raw, fields, members) = resource::normalize_group(body)?;
    let ops: Vec<MemberOp> = members.map(MemberOp::Replace).into_iter().collect();
    map_race(write_tx(conn, |conn| {
        let old = store::get_for_update(conn, scope.id(), id)?.ok_or_else(|| not_found(id))?;
        resource::check_if_match(if_match, old.version)?;
        save(conn, scope, &old, raw, fields, &ops, load_members)
    }))
}

pub fn patch(
    conn: &mut AnyConnection,
    scope: &DirectoryScope,
    id: &str,
    body: Value,
    if_match: Option<&EtagCondition>,
    load_members: bool,
) -> Result<GroupView, Error> {
    super::known_id(id, "group")?;
    let ops = patch::parse(&body)?;
    let apply = |row: &GroupRow| -> Result<(Value, GroupFields, Vec<MemberOp>), Error> {
        let mut doc: Value = serde_json::from_str(&row.raw)
            .map_err(|e| Error::Internal(format!("stored group is not JSON: {e}")))?;
        let member_ops = patch::apply(&mut doc, &ops, Target::Group)?;
        let (raw, fields, _) = resource::normalize_group(doc)?;
        Ok((raw, fields, member_ops))
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
        let (raw, fields, member_ops) = super::current(early, old.version, || apply(&old))?;
        save(conn, scope, &old, raw, fields, &member_ops, load_members)
    }))
}

/// Makes a group's members exactly `user_ids` (a directory pulled from its provider):
/// one `group.user_added` / `group.user_removed` per member changed and never a
/// `group.updated`, as a SCIM PATCH of members. Returns whether anything changed.
pub fn set_members(
    conn: &mut AnyConnection,
    scope: &DirectoryScope,
    id: &str,
    user_ids: Vec<String>,
) -> Result<bool, Error> {
    super::known_id(id, "group")?;
    write_tx(conn, |conn| {
        let row = store::get_for_update(conn, scope.id(), id)?.ok_or_else(|| not_found(id))?;
        change_members(conn, scope, &row, &[MemberOp::Replace(user_ids)])
    })
}

/// Deletes a group: `group.user_removed` for each member, then `group.deleted`.
pub fn delete(
    conn: &mut AnyConnection,
    scope: &DirectoryScope,
    id: &str,
    if_match: Option<&EtagCondition>,
) -> Result<(), Error> {
    super::known_id(id, "group")?;
    write_tx(conn, |conn| {
        let row = store::get_for_update(conn, scope.id(), id)?.ok_or_else(|| not_found(id))?;
        resource::check_if_match(if_match, row.version)?;
        change_members(conn, scope, &row, &[MemberOp::RemoveAll])?;
        store::delete(conn, scope.id(), id)?;
        let rendered = render(&row, None, &scope.base_url);
        events::record(
            conn,
            &scope.directory,
            GROUP_DELETED,
            group_summary(&row, rendered),
        )?;
        Ok(())
    })
}

/// A page of the groups of several directories, each as its event payload.
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
            group_summary(r, render(r, None, &base))
        })
        .collect())
}

fn get_in(conn: &mut AnyConnection, directory_ids: &[String], id: &str) -> Result<GroupRow, Error> {
    let missing = || {
        Error::from(ScimError::not_found(format!(
            "Group with id {id} not found."
        )))
    };
    if !super::is_resource_id(id) {
        return Err(missing());
    }
    store::get_in(conn, directory_ids, id)?.ok_or_else(missing)
}

/// One group of any of `directory_ids`, with its members, as its event payload.
pub fn summary_in(
    conn: &mut AnyConnection,
    directory_ids: &[String],
    id: &str,
    external_url: &str,
) -> Result<Value, Error> {
    let row = get_in(conn, directory_ids, id)?;
    let members = memberships::members(conn, &row.directory_id, &row.id, None)?;
    let base = super::scim_base_url(external_url, &row.directory_id);
    let mut raw = render(&row, Some(&members), &base);
    // Jackson's group reads show each member's `display`; SCIM's schema has none.
    if let Some(items) = raw.get_mut("members").and_then(Value::as_array_mut) {
        for (item, m) in items.iter_mut().zip(&members) {
            item["display"] = json!(m.display_name.as_deref().unwrap_or(&m.user_name));
        }
    }
    Ok(group_summary(&row, raw))
}

/// A page of a group's members (`user_id`, `user_name`).
pub fn members_in(
    conn: &mut AnyConnection,
    directory_ids: &[String],
    id: &str,
    page: Page,
) -> Result<Vec<Value>, Error> {
    let row = get_in(conn, directory_ids, id)?;
    Ok(
        memberships::members(conn, &row.directory_id, &row.id, Some(page))?
            .iter()
            .map(|m| json!({"user_id": m.user_id, "user_name": m.user_name}))
            .collect(),
    )
}
