//! PATCH (RFC 7644 §3.5.2): parsing a PatchOp request and applying its operations to a
//! resource's JSON. Group `members` operations are returned as [`MemberOp`]s: members are
//! rows, applied set-wise by the directory service.

use serde_json::{Map, Value};

use super::error::ScimError;
use super::filter::{self, get_ci, AttrPath, Filter, PatchPath};
use super::limits::{check_count, check_resource, MAX_PATCH_OPERATIONS};
use super::resource::{coerce_bool, member_ids};
use super::PATCH_OP_SCHEMA;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpKind {
    Add,
    Replace,
    Remove,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PatchOperation {
    pub op: OpKind,
    pub path: Option<PatchPath>,
    pub value: Option<Value>,
}

/// A change to a group's membership, in request order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MemberOp {
    Add(Vec<String>),
    Remove(Vec<String>),
    RemoveAll,
    Replace(Vec<String>),
}

/// Which resource a PATCH targets; decides which attributes are read-only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    User,
    Group,
}

/// Parses `{"schemas":[PatchOp], "Operations":[…]}`. Op names are case-insensitive
/// (Entra sends `Replace`), as is the `Operations` key.
pub fn parse(body: &Value) -> Result<Vec<PatchOperation>, ScimError> {
    let obj = body
        .as_object()
        .ok_or_else(|| ScimError::invalid_syntax("a PATCH body must be a JSON object"))?;
    if let Some(schemas) = get_ci(body, "schemas") {
        let ok = schemas.as_array().is_some_and(|a| {
            a.iter().any(|s| {
                s.as_str()
                    .is_some_and(|s| s.eq_ignore_ascii_case(PATCH_OP_SCHEMA))
            })
        });
        if !ok {
            return Err(ScimError::invalid_syntax(format!(
                "schemas must contain {PATCH_OP_SCHEMA}"
            )));
        }
    }
    let ops = obj
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("Operations"))
        .map(|(_, v)| v)
        .and_then(Value::as_array)
        .ok_or_else(|| ScimError::invalid_syntax("Operations must be an array"))?;
    if ops.is_empty() {
        return Err(ScimError::invalid_syntax("Operations is empty"));
    }
    if ops.len() > MAX_PATCH_OPERATIONS {
        return Err(ScimError::invalid_value(format!(
            "{} operations; at most {MAX_PATCH_OPERATIONS} are accepted in one PATCH",
            ops.len()
        )));
    }
    ops.iter().map(parse_operation).collect()
}

fn parse_operation(v: &Value) -> Result<PatchOperation, ScimError> {
    if !v.is_object() {
        return Err(ScimError::invalid_syntax(
            "each operation must be an object",
        ));
    }
    let op = match get_ci(v, "op")
        .and_then(Value::as_str)
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        Some("add") => OpKind::Add,
        Some("replace") => OpKind::Replace,
        Some("remove") => OpKind::Remove,
        Some(other) => return Err(ScimError::invalid_syntax(format!("unknown op {other:?}"))),
        None => return Err(ScimError::invalid_syntax("each operation needs an \"op\"")),
    };
    let path = match get_ci(v, "path") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.trim().is_empty() => None,
        Some(Value::String(s)) => Some(filter::parse_patch_path(s)?),
        Some(_) => return Err(ScimError::invalid_path("path must be a string")),
    };
    let value = get_ci(v, "value").cloned();
    if let Some(value) = &value {
        // Strings and value counts are bounded before any work is done with them; a
        // `members` value is rows, bounded by the body size alone.
        let members = path.as_ref().is_some_and(|p| p.path.is("members", None));
        match value {
            Value::Array(items) if members => items
                .iter()
                .try_for_each(|item| check_resource(item, None))?,
            Value::Object(_) => check_resource(value, Some("members"))?,
            other => check_resource(other, None)?,
        }
    }
    if op != OpKind::Remove && value.is_none() {
        return Err(ScimError::invalid_value("add and replace need a \"value\""));
    }
    if op == OpKind::Remove && path.is_none() {
        return Err(ScimError::no_target("remove needs a path"));
    }
    Ok(PatchOperation { op, path, value })
}

/// Applies `ops` to `doc` (the stored resource without `id`/`meta`). For groups, `members`
/// operations are collected instead of applied. All or nothing: the caller keeps the
/// original on error.
pub fn apply(
    doc: &mut Value,
    ops: &[PatchOperation],
    target: Target,
) -> Result<Vec<MemberOp>, ScimError> {
    let mut member_ops = Vec::new();
    for op in ops {
        let before = primaries(doc);
        match &op.path {
            Some(p) => apply_path(doc, op.op, p, op.value.as_ref(), target, &mut member_ops)?,
            None => {
                let Some(Value::Object(values)) = &op.value else {
                    return Err(ScimError::invalid_value(
                        "a PATCH without path needs an object value",
                    ));
                };
                for (key, value) in values {
                    apply_pathless(doc, op.op, key, value, target, &mut member_ops)?;
                }
            }
        }
        keep_one_primary(doc, &before);
        check_counts(doc)?;
    }
    Ok(member_ops)
}

/// After each operation, no multi-valued attribute (of the core schema or an extension)
/// holds more than [`MAX_VALUES_PER_ATTRIBUTE`] values: a thousand `add`s cannot grow one
/// attribute without bound, so the next operation's work stays bounded too.
fn check_counts(doc: &Value) -> Result<(), ScimError> {
    let Value::Object(o) = doc else { return Ok(()) };
    for (k, v) in o {
        match v {
            Value::Array(items) => check_count(k, items.len())?,
            Value::Object(ext) => {
                for (k, v) in ext {
                    if let Value::Array(items) = v {
                        check_count(k, items.len())?;
                    }
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// Which elements of each top-level multi-valued attribute are `primary`.
fn primaries(doc: &Value) -> Vec<(String, usize)> {
    let mut out = Vec::new();
    if let Value::Object(o) = doc {
        for (k, v) in o {
            if let Value::Array(items) = v {
                for (i, item) in items.iter().enumerate() {
                    if get_ci(item, "primary") == Some(&Value::Bool(true)) {
                        out.push((k.clone(), i));
                    }
                }
            }
        }
    }
    out
}

/// `primary` may be true on one element only (RFC 7643 §2.4): when an operation makes
/// another element primary, the previously primary one stops being so.
fn keep_one_primary(doc: &mut Value, before: &[(String, usize)]) {
    let after = primaries(doc);
    let Value::Object(o) = doc else { return };
    for (attr, _) in &after {
        let count = after.iter().filter(|(a, _)| a == attr).count();
        if count < 2 {
            continue;
        }
        if let Some(Value::Array(items)) = o.get_mut(attr) {
            let new_ones: Vec<usize> = after
                .iter()
                .filter(|(a, i)| a == attr && !before.contains(&(attr.clone(), *i)))
                .map(|(_, i)| *i)
                .collect();
            let keep = new_ones
                .last()
                .copied()
                .or_else(|| after.iter().rev().find(|(a, _)| a == attr).map(|(_, i)| *i));
            for (i, item) in items.iter_mut().enumerate() {
                if Some(i) != keep {
                    if let Value::Object(m) = item {
                        if m.get("primary") == Some(&Value::Bool(true)) {
                            m.insert("primary".into(), Value::Bool(false));
                        }
                    }
                }
            }
        }
    }
}

fn apply_pathless(
    doc: &mut Value,
    op: OpKind,
    key: &str,
    value: &Value,
    target: Target,
    member_ops: &mut Vec<MemberOp>,
) -> Result<(), ScimError> {
    // Okta and others echo server-owned attributes in path-less values: skip them.
    if ["id", "meta", "schemas"]
        .iter()
        .any(|k| k.eq_ignore_ascii_case(key))
    {
        return Ok(());
    }
    if is_urn(key) {
        if let Value::Object(values) = value {
            if is_core_schema(key) {
                // `{"urn:…:core:2.0:User": {...}}`: the core attributes themselves.
                for (k, v) in values {
                    apply_pathless(doc, op, k, v, target, member_ops)?;
                }
                return Ok(());
            }
            if !key.contains(":2.0:User:") && !key.contains(":2.0:Group:") {
                // A whole extension object: each of its attributes is a path under the URN.
                for (k, v) in values {
                    if k.eq_ignore_ascii_case("schemas") {
                        continue;
                    }
                    let path = filter::parse_patch_path(&format!("{key}:{k}"))?;
                    apply_path(doc, op, &path, Some(v), target, member_ops)?;
                }
                return Ok(());
            }
        }
    }
    // Dotted keys (`name.givenName`) and URN-qualified names are paths.
    let path = filter::parse_patch_path(key)?;
    apply_path(doc, op, &path, Some(value), target, member_ops)
}

fn is_urn(s: &str) -> bool {
    s.get(..4).is_some_and(|p| p.eq_ignore_ascii_case("urn:")) && s.len() > 4
}

fn is_core_schema(s: &str) -> bool {
    s.eq_ignore_ascii_case(super::USER_SCHEMA) || s.eq_ignore_ascii_case(super::GROUP_SCHEMA)
}

/// A path that names a whole schema (`urn:…:enterprise:2.0:User`) parses as URN `…:2.0`
/// plus attribute `User`; returns the full URN when that is what was meant.
fn whole_schema(doc: &Value, pp: &PatchPath) -> Option<String> {
    let urn = pp.path.urn.as_deref()?;
    if pp.path.sub.is_some() || pp.filter.is_some() {
        return None;
    }
    let full = format!("{urn}:{}", pp.path.attr);
    let known = is_core_schema(&full)
        || full.eq_ignore_ascii_case(super::ENTERPRISE_USER_SCHEMA)
        || doc
            .as_object()
            .is_some_and(|o| o.keys().any(|k| k.eq_ignore_ascii_case(&full)))
        || get_ci(doc, "schemas")
            .and_then(Value::as_array)
            .is_some_and(|a| {
                a.iter()
                    .any(|s| s.as_str().is_some_and(|s| s.eq_ignore_ascii_case(&full)))
            });
    known.then_some(full)
}

/// An operation on a whole extension object.
fn apply_whole_extension(
    doc: &mut Value,
    op: OpKind,
    urn: &str,
    value: Option<&Value>,
) -> Result<(), ScimError> {
    let root = doc
        .as_object_mut()
        .ok_or_else(|| ScimError::invalid_syntax("resource is not an object"))?;
    let key = existing_key(root, urn);
    match op {
        OpKind::Remove => {
            root.remove(&key);
            if let Some(Value::Array(schemas)) = root.get_mut("schemas") {
                schemas.retain(|s| !s.as_str().is_some_and(|s| s.eq_ignore_ascii_case(urn)));
            }
            Ok(())
        }
        OpKind::Add | OpKind::Replace => {
            let Some(Value::Object(values)) = value else {
                return Err(ScimError::invalid_value(format!(
                    "{urn} takes an object value"
                )));
            };
            let values: Map<String, Value> = values
                .iter()
                .filter(|(k, _)| !k.eq_ignore_ascii_case("schemas"))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            match (op, root.get_mut(&key)) {
                (OpKind::Add, Some(Value::Object(existing))) => {
                    for (k, v) in values {
                        let k2 = existing_key(existing, &k);
                        existing.insert(k2, v);
                    }
                }
                _ => {
                    root.insert(key.clone(), Value::Object(values));
                }
            }
            declare_schema(root, &key);
            Ok(())
        }
    }
}

fn read_only(target: Target, attr: &AttrPath) -> bool {
    let a = attr.attr.as_str();
    ["id", "meta"].iter().any(|r| r.eq_ignore_ascii_case(a))
        || (target == Target::User && a.eq_ignore_ascii_case("groups"))
}

fn apply_path(
    doc: &mut Value,
    op: OpKind,
    pp: &PatchPath,
    value: Option<&Value>,
    target: Target,
    member_ops: &mut Vec<MemberOp>,
) -> Result<(), ScimError> {
    let attr = &pp.path;
    if let Some(full) = whole_schema(doc, pp) {
        if is_core_schema(&full) {
            // The core schema as a path: its value holds core attributes.
            return match (op, value) {
                (OpKind::Remove, _) => {
                    Err(ScimError::invalid_path("the core schema cannot be removed"))
                }
                (_, Some(Value::Object(values))) => {
                    for (k, v) in values {
                        apply_pathless(doc, op, k, v, target, member_ops)?;
                    }
                    Ok(())
                }
                _ => Err(ScimError::invalid_value(format!(
                    "{full} takes an object value"
                ))),
            };
        }
        return apply_whole_extension(doc, op, &full, value);
    }
    if read_only(target, attr) {
        return Err(ScimError::mutability(format!("{} is read-only", attr.attr)));
    }
    if target == Target::User && attr.attr.eq_ignore_ascii_case("password") {
        return Ok(()); // write-only and never stored
    }
    if attr.attr.eq_ignore_ascii_case("schemas") {
        return Ok(());
    }
    if target == Target::Group
        && attr.attr.eq_ignore_ascii_case("members")
        && attr.urn.as_deref().is_none_or(|u| u.contains(":core:"))
    {
        member_ops.push(member_op(op, pp, value)?);
        return Ok(());
    }
    let container = container_mut(doc, attr, op != OpKind::Remove)?;
    let Some(container) = container else {
        return Ok(()); // removing from an absent extension: nothing to do
    };
    let key = existing_key(container, &attr.attr);
    match (&pp.filter, &attr.sub) {
        (None, None) => set_attribute(container, key, op, value),
        (None, Some(sub)) => match container.get_mut(&key) {
            Some(Value::Array(items)) => {
                for item in items.iter_mut().filter(|i| i.is_object()) {
                    set_sub(item, sub, op, value)?;
                }
                Ok(())
            }
            Some(v @ Value::Object(_)) => set_sub(v, sub, op, value),
            Some(Value::Null) | None if op != OpKind::Remove => {
                let mut obj = Value::Object(Map::new());
                set_sub(&mut obj, sub, op, value)?;
                container.insert(key, obj);
                Ok(())
            }
            None | Some(Value::Null) => Ok(()),
            Some(_) => Err(ScimError::invalid_path(format!(
                "{} has no sub-attributes",
                attr.attr
            ))),
        },
        (Some(f), _) => apply_filtered(container, key, f, pp.sub.as_deref(), op, value),
    }
}

fn member_op(op: OpKind, pp: &PatchPath, value: Option<&Value>) -> Result<MemberOp, ScimError> {
    if pp.path.sub.is_some() || pp.sub.is_some() {
        return Err(ScimError::invalid_path(
            "members sub-attributes cannot be changed",
        ));
    }
    match (&pp.filter, op) {
        (None, OpKind::Add) => Ok(MemberOp::Add(member_ids(value.unwrap_or(&Value::Null))?)),
        (None, OpKind::Replace) => Ok(MemberOp::Replace(member_ids(
            value.unwrap_or(&Value::Null),
        )?)),
        (None, OpKind::Remove) => match value {
            // Entra: remove with path "members" and the members to remove as the value.
            Some(v) if !v.is_null() => Ok(MemberOp::Remove(member_ids(v)?)),
            _ => Ok(MemberOp::RemoveAll),
        },
        (Some(f), OpKind::Remove) => Ok(MemberOp::Remove(member_values_in(f)?)),
        (Some(_), _) => Err(ScimError::invalid_path(
            "members[...] paths are only valid with remove",
        )),
    }
}

/// The ids a member filter names: `value eq "id"` joined by `or`.
fn member_values_in(f: &Filter) -> Result<Vec<String>, ScimError> {
    match f {
        Filter::Compare(p, filter::CompareOp::Eq, Value::String(id)) if p.is("value", None) => {
            Ok(vec![id.clone()])
        }
        Filter::Or(a, b) => {
            let mut ids = member_values_in(a)?;
            ids.extend(member_values_in(b)?);
            Ok(ids)
        }
        _ => Err(ScimError::invalid_filter(
            "member filters must be value eq \"id\" (joined by or)",
        )),
    }
}

/// The object holding an attribute: the resource, or its extension object for a URN path.
fn container_mut<'d>(
    doc: &'d mut Value,
    attr: &AttrPath,
    create: bool,
) -> Result<Option<&'d mut Map<String, Value>>, ScimError> {
    let root = doc
        .as_object_mut()
        .ok_or_else(|| ScimError::invalid_syntax("resource is not an object"))?;
    let Some(urn) = attr.urn.as_deref() else {
        return Ok(Some(root));
    };
    if urn.to_ascii_lowercase().contains(":core:") {
        return Ok(Some(root));
    }
    let key = existing_key(root, urn);
    if !root.contains_key(&key) {
        if !create {
            return Ok(None);
        }
        root.insert(key.clone(), Value::Object(Map::new()));
        declare_schema(root, &key);
    }
    match root.get_mut(&key) {
        Some(Value::Object(o)) => Ok(Some(o)),
        _ => Err(ScimError::invalid_path(format!(
            "{urn} is not an extension object"
        ))),
    }
}

fn declare_schema(root: &mut Map<String, Value>, urn: &str) {
    if let Some(Value::Array(schemas)) = root.get_mut("schemas") {
        if !schemas
            .iter()
            .any(|s| s.as_str().is_some_and(|s| s.eq_ignore_ascii_case(urn)))
        {
            schemas.push(Value::String(urn.to_string()));
        }
    }
}

/// The key as already spelled in the object (names are case-insensitive), else as given.
fn existing_key(obj: &Map<String, Value>, name: &str) -> String {
    obj.keys()
        .find(|k| k.eq_ignore_ascii_case(name))
        .cloned()
        .unwrap_or_else(|| name.to_string())
}

fn set_attribute(
    container: &mut Map<String, Value>,
    key: String,
    op: OpKind,
    value: Option<&Value>,
) -> Result<(), ScimError> {
    let value = value.cloned().unwrap_or(Value::Null);
    match op {
        OpKind::Remove => {
            container.remove(&key);
        }
        OpKind::Replace => match (container.get_mut(&key), value) {
            // Replacing a single-valued complex attribute keeps unnamed sub-attributes.
            (Some(Value::Object(existing)), Value::Object(new)) => {
                for (k, v) in new {
                    let k2 = existing_key(existing, &k);
                    existing.insert(k2, v);
                }
            }
            (_, v) => {
                container.insert(key, v);
            }
        },
        OpKind::Add => match (container.get_mut(&key), value) {
            (Some(Value::Array(existing)), Value::Array(new)) => {
                for v in new {
                    if !existing.contains(&v) {
                        existing.push(v);
                    }
                }
            }
            (Some(Value::Array(existing)), v) => {
                if !existing.contains(&v) {
                    existing.push(v);
                }
            }
            (Some(Value::Object(existing)), Value::Object(new)) => {
                for (k, v) in new {
                    let k2 = existing_key(existing, &k);
                    existing.insert(k2, v);
                }
            }
            (_, v) => {
                container.insert(key, v);
            }
        },
    }
    Ok(())
}

fn set_sub(obj: &mut Value, sub: &str, op: OpKind, value: Option<&Value>) -> Result<(), ScimError> {
    let Value::Object(o) = obj else {
        return Err(ScimError::invalid_path(format!(
            "cannot set {sub} on a non-object"
        )));
    };
    let key = existing_key(o, sub);
    match op {
        OpKind::Remove => {
            o.remove(&key);
        }
        OpKind::Add | OpKind::Replace => {
            let mut v = value.cloned().unwrap_or(Value::Null);
            if key.eq_ignore_ascii_case("primary") {
                coerce_bool(&mut v, "primary")?;
            }
            o.insert(key, v);
        }
    }
    Ok(())
}

fn apply_filtered(
    container: &mut Map<String, Value>,
    key: String,
    f: &Filter,
    sub: Option<&str>,
    op: OpKind,
    value: Option<&Value>,
) -> Result<(), ScimError> {
    let items = match container.get_mut(&key) {
        Some(Value::Array(items)) => items,
        None | Some(Value::Null) if op != OpKind::Remove => {
            container.insert(key.clone(), Value::Array(Vec::new()));
            match container.get_mut(&key) {
                Some(Value::Array(items)) => items,
                _ => return Err(ScimError::invalid_path("unreachable")),
            }
        }
        None | Some(Value::Null) => return Ok(()),
        Some(_) => {
            return Err(ScimError::invalid_path(format!(
                "{key} is not multi-valued"
            )))
        }
    };
    let matched: Vec<usize> = items
        .iter()
        .enumerate()
        .filter(|(_, item)| filter::matches_element(f, item, &key))
        .map(|(i, _)| i)
        .collect();
    if matched.is_empty() {
        return match op {
            // Removing what is not there leaves the resource as the IdP wants it.
            OpKind::Remove => Ok(()),
            // Entra replaces `emails[type eq "work"].value` on users that have no work
            // email yet: create the element the filter describes.
            OpKind::Add | OpKind::Replace => {
                let mut element = element_from_filter(f).ok_or_else(|| {
                    ScimError::no_target(format!("no {key} value matches the filter"))
                })?;
                match sub {
                    Some(s) => set_sub(&mut element, s, OpKind::Replace, value)?,
                    None => merge_into(&mut element, value),
                }
                items.push(element);
                Ok(())
            }
        };
    }
    match op {
        OpKind::Remove => match sub {
            Some(s) => {
                for &i in &matched {
                    set_sub(&mut items[i], s, OpKind::Remove, None)?;
                }
                Ok(())
            }
            None => {
                // `matched` is ascending: one pass, not a search per element.
                let mut next = matched.iter().peekable();
                let mut i = 0;
                items.retain(|_| {
                    let drop = next.next_if_eq(&&i).is_some();
                    i += 1;
                    !drop
                });
                Ok(())
            }
        },
        OpKind::Add | OpKind::Replace => {
            for &i in &matched {
                match sub {
                    Some(s) => set_sub(&mut items[i], s, op, value)?,
                    None => merge_into(&mut items[i], value),
                }
            }
            Ok(())
        }
    }
}

fn merge_into(element: &mut Value, value: Option<&Value>) {
    match (element, value) {
        (Value::Object(e), Some(Value::Object(v))) => {
            for (k, v) in v {
                let k2 = existing_key(e, k);
                e.insert(k2, v.clone());
            }
        }
        (e, Some(v)) => *e = v.clone(),
        (_, None) => {}
    }
}

/// `type eq "work" and primary eq true` → `{"type":"work","primary":true}`.
fn element_from_filter(f: &Filter) -> Option<Value> {
    let mut obj = Map::new();
    fn collect(f: &Filter, obj: &mut Map<String, Value>) -> bool {
        match f {
            Filter::Compare(p, filter::CompareOp::Eq, v) if p.sub.is_none() => {
                obj.insert(p.attr.clone(), v.clone());
                true
            }
            Filter::And(a, b) => collect(a, obj) && collect(b, obj),
            _ => false,
        }
    }
    collect(f, &mut obj).then_some(Value::Object(obj))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn run(doc: Value, body: Value, target: Target) -> Result<(Value, Vec<MemberOp>), ScimError> {
        let ops = parse(&body)?;
        let mut doc = doc;
        let m = apply(&mut doc, &ops, target)?;
        Ok((doc, m))
    }

    fn ops(list: Value) -> Value {
        json!({"schemas": [PATCH_OP_SCHEMA], "Operations": list})
    }

    #[test]
    fn entra_style_replace_with_filter_and_capitalised_op() {
        let (doc, _) = run(
            json!({"userName": "a", "emails": [{"type": "work", "value": "old@x.com"}]}),
            ops(json!([
                {"op": "Replace", "path": "emails[type eq \"work\"].value", "value": "new@x.com"},
                {"op": "Replace", "path": "name.givenName", "value": "Ada"},
                {"op": "Add", "path": "phoneNumbers[type eq \"work\"].value", "value": "123"},
                {"op": "replace", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department", "value": "R&D"}
            ])),
            Target::User,
        )
        .unwrap();
        assert_eq!(doc["emails"][0]["value"], "new@x.com");
        assert_eq!(doc["name"]["givenName"], "Ada");
        assert_eq!(
            doc["phoneNumbers"][0],
            json!({"type": "work", "value": "123"})
        );
        assert_eq!(
            doc["urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"]["department"],
            "R&D"
        );
    }

    #[test]
    fn pathless_values_with_dotted_keys() {
        let (doc, _) = run(
            json!({"userName": "a", "active": true}),
            ops(json!([{"op": "replace", "value": {"active": false, "name.familyName": "L"}}])),
            Target::User,
        )
        .unwrap();
        assert_eq!(doc["active"], false);
        assert_eq!(doc["name"]["familyName"], "L");
    }

    #[test]
    fn members_become_member_ops() {
        let (_, m) = run(
            json!({"displayName": "g"}),
            ops(json!([
                {"op": "add", "path": "members", "value": [{"value": "u1"}, {"value": "u2"}]},
                {"op": "remove", "path": "members[value eq \"u1\"]"},
                {"op": "Remove", "path": "members", "value": [{"value": "u2"}]},
                {"op": "replace", "value": {"id": "g", "displayName": "h", "members": [{"value": "u3"}]}}
            ])),
            Target::Group,
        )
        .unwrap();
        assert_eq!(
            m,
            vec![
                MemberOp::Add(vec!["u1".into(), "u2".into()]),
                MemberOp::Remove(vec!["u1".into()]),
                MemberOp::Remove(vec!["u2".into()]),
                MemberOp::Replace(vec!["u3".into()]),
            ]
        );
    }

    #[test]
    fn whole_extension_paths() {
        const EXT: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
        let doc = json!({"schemas": [crate::scim::USER_SCHEMA], "userName": "a"});
        let (doc, _) = run(
            doc,
            ops(
                json!([{"op": "add", "path": EXT, "value": {"schemas": [EXT], "department": "R"}}]),
            ),
            Target::User,
        )
        .unwrap();
        assert_eq!(doc[EXT], json!({"department": "R"}));
        assert_eq!(doc["schemas"][1], EXT);
        let (doc, _) = run(
            doc,
            ops(json!([{"op": "replace", "path": EXT, "value": {"division": "D"}}])),
            Target::User,
        )
        .unwrap();
        assert_eq!(doc[EXT], json!({"division": "D"}));
        let (doc, _) = run(
            doc,
            ops(json!([{"op": "remove", "path": EXT}])),
            Target::User,
        )
        .unwrap();
        assert!(doc.get(EXT).is_none());
        assert_eq!(doc["schemas"].as_array().unwrap().len(), 1);
        let (doc, _) = run(doc, ops(json!([{"op": "replace", "path": crate::scim::USER_SCHEMA, "value": {"title": "T"}}])), Target::User).unwrap();
        assert_eq!(doc["title"], "T");
        assert!(doc.get("User").is_none());
    }

    #[test]
    fn one_primary_at_a_time() {
        let doc = json!({"userName": "a", "emails": [
            {"value": "a@x.com", "type": "work", "primary": true},
            {"value": "a@home.org", "type": "home"}
        ]});
        let (doc, _) = run(
            doc,
            ops(json!([
                {"op": "replace", "path": "emails[type eq \"home\"].primary", "value": "True"}
            ])),
            Target::User,
        )
        .unwrap();
        assert_eq!(doc["emails"][0]["primary"], false);
        assert_eq!(doc["emails"][1]["primary"], true);
        let (doc, _) = run(
            doc,
            ops(json!([
                {"op": "add", "path": "emails", "value": [{"value": "new@x.com", "primary": true}]}
            ])),
            Target::User,
        )
        .unwrap();
        let primaries: Vec<&Value> = doc["emails"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["primary"] == true)
            .collect();
        assert_eq!(primaries.len(), 1);
        assert_eq!(primaries[0]["value"], "new@x.com");
    }

    #[test]
    fn odd_keys_never_panic() {
        for key in [
            "ab€",
            "€€€€€",
            "urn:€",
            "u",
            "",
            ".",
            "a..b",
            "urn:x:y:",
            "name.€",
        ] {
            let body = ops(
                json!([{"op": "add", "value": {key: 1}}, {"op": "replace", "path": key, "value": 1}]),
            );
            let _ = run(json!({"userName": "a"}), body, Target::User);
        }
    }

    #[test]
    fn errors() {
        let doc = json!({"userName": "a"});
        for (body, scim_type) in [
            (
                ops(json!([{"op": "jump", "path": "x", "value": 1}])),
                "invalidSyntax",
            ),
            (
                ops(json!([{"op": "replace", "path": "id", "value": "x"}])),
                "mutability",
            ),
            (ops(json!([{"op": "remove"}])), "noTarget"),
            (
                ops(json!([{"op": "add", "path": "emails[type eq", "value": 1}])),
                "invalidPath",
            ),
            (json!({"Operations": "x"}), "invalidSyntax"),
        ] {
            let e = run(doc.clone(), body, Target::User).unwrap_err();
            assert_eq!(e.scim_type.map(|t| t.as_str()), Some(scim_type));
        }
    }
}
