//! Users and Groups as SCIM resources: what we accept from an identity provider, the typed
//! fields we index, and how a stored resource is rendered back.

use serde_json::{json, Map, Value};

use super::error::ScimError;
use super::filter::get_ci;
use super::limits;
use super::{ENTERPRISE_USER_SCHEMA, GROUP_SCHEMA, USER_SCHEMA};

/// Top-level User attributes, in their canonical spelling (keys are matched
/// case-insensitively and rewritten to these).
const USER_ATTRIBUTES: &[&str] = &[
    "schemas",
    "externalId",
    "userName",
    "name",
    "displayName",
    "nickName",
    "profileUrl",
    "title",
    "userType",
    "preferredLanguage",
    "locale",
    "timezone",
    "active",
    "emails",
    "phoneNumbers",
    "ims",
    "photos",
    "addresses",
    "entitlements",
    "roles",
    "x509Certificates",
];
const GROUP_ATTRIBUTES: &[&str] = &["schemas", "externalId", "displayName"];
/// Never stored: server-assigned, derived, or secret.
const USER_DROPPED: &[&str] = &["id", "meta", "password", "groups"];
const GROUP_DROPPED: &[&str] = &["id", "meta", "members"];

/// The indexed fields of a user, extracted from its JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserFields {
    pub user_name: String,
    pub external_id: Option<String>,
    pub email: Option<String>,
    pub given_name: Option<String>,
    pub family_name: Option<String>,
    pub display_name: Option<String>,
    pub active: bool,
    /// Every email, in order, for indexed `emails` filters.
    pub emails: Vec<EmailEntry>,
}

/// One element of `emails`, as indexed: value and type lower-cased.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmailEntry {
    pub value_lower: Option<String>,
    pub email_type: Option<String>,
    pub primary: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupFields {
    pub display_name: String,
    pub external_id: Option<String>,
}

/// What the server adds to a stored resource when rendering it.
#[derive(Debug, Clone)]
pub struct ResourceMeta {
    pub id: String,
    pub resource_type: &'static str,
    pub created: chrono::NaiveDateTime,
    pub last_modified: chrono::NaiveDateTime,
    pub version: i64,
    /// Absolute URL of the resource.
    pub location: String,
}

impl ResourceMeta {
    pub fn etag(&self) -> String {
        etag(self.version)
    }
}

pub fn etag(version: i64) -> String {
    format!("W/\"{version}\"")
}

/// An `If-Match` / `If-None-Match` header (RFC 7232), compared weakly: `W/"3"` and `"3"`
/// name the same version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EtagCondition {
    Any,
    Tags(Vec<String>),
}

impl EtagCondition {
    pub fn parse(header: &str) -> Self {
        let header = header.trim();
        if header == "*" {
            return Self::Any;
        }
        Self::Tags(
            header
                .split(',')
                .map(|t| {
                    t.trim()
                        .trim_start_matches("W/")
                        .trim_matches('"')
                        .to_string()
                })
                .filter(|t| !t.is_empty())
                .collect(),
        )
    }

    pub fn matches(&self, version: i64) -> bool {
        match self {
            Self::Any => true,
            Self::Tags(tags) => tags.iter().any(|t| *t == version.to_string()),
        }
    }
}

/// A write's `If-Match`: refused with 412 when the resource moved on.
pub fn check_if_match(condition: Option<&EtagCondition>, version: i64) -> Result<(), ScimError> {
    match condition {
        Some(c) if !c.matches(version) => Err(ScimError::new(
            412,
            None,
            format!(
                "precondition failed: the resource is now at version {}",
                etag(version)
            ),
        )),
        _ => Ok(()),
    }
}

pub fn timestamp(t: chrono::NaiveDateTime) -> String {
    t.and_utc()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Validates and cleans a User body from a POST or PUT (or the result of a PATCH):
/// canonical key spelling, no `password`/`id`/`meta`/`groups`, string booleans coerced.
pub fn normalize_user(body: Value) -> Result<(Value, UserFields), ScimError> {
    let mut obj = into_object(body, "User")?;
    canonicalize_keys(&mut obj, USER_ATTRIBUTES);
    drop_keys(&mut obj, USER_DROPPED);
    ensure_schemas(&mut obj, USER_SCHEMA);
    coerce_booleans(&mut obj)?;
    let raw = Value::Object(obj);
    limits::check_resource(&raw, None)?;
    let fields = user_fields(&raw)?;
    limits::check_indexed("userName", &fields.user_name)?;
    if let Some(id) = &fields.external_id {
        limits::check_indexed("externalId", id)?;
    }
    for e in &fields.emails {
        if let Some(v) = &e.value_lower {
            limits::check_indexed("emails.value", v)?;
        }
        if let Some(t) = &e.email_type {
            limits::check_indexed("emails.type", t)?;
        }
    }
    Ok((raw, fields))
}

pub fn user_fields(raw: &Value) -> Result<UserFields, ScimError> {
    let user_name = match raw.get("userName") {
        Some(Value::String(s)) if !s.trim().is_empty() => s.clone(),
        Some(Value::String(_)) | None | Some(Value::Null) => {
            return Err(ScimError::invalid_value("userName is required"))
        }
        Some(_) => return Err(ScimError::invalid_value("userName must be a string")),
    };
    let external_id = optional_string(raw, "externalId")?;
    let name = raw.get("name");
    if let Some(n) = name {
        if !n.is_object() && !n.is_null() {
            return Err(ScimError::invalid_value("name must be an object"));
        }
    }
    let given_name = name
        .and_then(|n| get_ci(n, "givenName"))
        .and_then(Value::as_str)
        .map(str::to_string);
    let family_name = name
        .and_then(|n| get_ci(n, "familyName"))
        .and_then(Value::as_str)
        .map(str::to_string);
    let display_name = optional_string(raw, "displayName")?;
    let active = match raw.get("active") {
        None | Some(Value::Null) => true,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(ScimError::invalid_value("active must be a boolean")),
    };
    let email = primary_value(raw.get("emails"))?
        .or_else(|| user_name.contains('@').then(|| user_name.clone()));
    let emails = email_entries(raw.get("emails"))?;
    Ok(UserFields {
        emails,
        user_name,
        external_id,
        email,
        given_name,
        family_name,
        display_name,
        active,
    })
}

/// Validates and cleans a Group body. Members are returned apart: they are stored as rows.
pub fn normalize_group(
    body: Value,
) -> Result<(Value, GroupFields, Option<Vec<String>>), ScimError> {
    let mut obj = into_object(body, "Group")?;
    let members = match obj
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("members"))
        .map(|(_, v)| v.clone())
    {
        None | Some(Value::Null) => None,
        Some(v) => Some(member_ids(&v)?),
    };
    canonicalize_keys(&mut obj, GROUP_ATTRIBUTES);
    drop_keys(&mut obj, GROUP_DROPPED);
    ensure_schemas(&mut obj, GROUP_SCHEMA);
    let raw = Value::Object(obj);
    limits::check_resource(&raw, None)?;
    let fields = group_fields(&raw)?;
    limits::check_indexed("displayName", &fields.display_name)?;
    if let Some(id) = &fields.external_id {
        limits::check_indexed("externalId", id)?;
    }
    Ok((raw, fields, members))
}

pub fn group_fields(raw: &Value) -> Result<GroupFields, ScimError> {
    let display_name = match raw.get("displayName") {
        Some(Value::String(s)) if !s.trim().is_empty() => s.clone(),
        Some(Value::String(_)) | None | Some(Value::Null) => {
            return Err(ScimError::invalid_value("displayName is required"))
        }
        Some(_) => return Err(ScimError::invalid_value("displayName must be a string")),
    };
    Ok(GroupFields {
        display_name,
        external_id: optional_string(raw, "externalId")?,
    })
}

/// The user ids of a `members` value: `[{"value": id}, …]` (a bare id string is accepted).
pub fn member_ids(members: &Value) -> Result<Vec<String>, ScimError> {
    let items: Vec<&Value> = match members {
        Value::Array(a) => a.iter().collect(),
        Value::Null => Vec::new(),
        other => vec![other],
    };
    let mut ids = Vec::with_capacity(items.len());
    let mut seen = std::collections::HashSet::with_capacity(items.len());
    for item in items {
        let id = match item {
            Value::String(s) => s.clone(),
            Value::Object(_) => match get_ci(item, "value") {
                Some(Value::String(s)) => s.clone(),
                _ => {
                    return Err(ScimError::invalid_value(
                        "each member needs a string \"value\"",
                    ))
                }
            },
            _ => {
                return Err(ScimError::invalid_value(
                    "members must be objects with a \"value\"",
                ))
            }
        };
        // Malformed is bad input (400); well-formed but unknown is the directory's call.
        limits::check_indexed("a member value", &id)?;
        // A set, not `Vec::contains`: groups of 10 000 members would be quadratic.
        if seen.insert(id.clone()) {
            ids.push(id);
        }
    }
    Ok(ids)
}

/// A stored resource plus `id`, `meta` and the derived attributes, ready to send.
pub fn render(raw: &Value, meta: &ResourceMeta, derived: Option<(&str, Vec<Value>)>) -> Value {
    let mut out = Map::new();
    out.insert("id".into(), json!(meta.id));
    if let Value::Object(obj) = raw {
        for (k, v) in obj {
            out.insert(k.clone(), v.clone());
        }
    }
    if let Some((key, values)) = derived {
        out.insert(key.into(), Value::Array(values));
    }
    out.insert(
        "meta".into(),
        json!({
            "resourceType": meta.resource_type,
            "created": timestamp(meta.created),
            "lastModified": timestamp(meta.last_modified),
            "location": meta.location,
            "version": meta.etag(),
        }),
    );
    Value::Object(out)
}

fn into_object(body: Value, what: &str) -> Result<Map<String, Value>, ScimError> {
    match body {
        Value::Object(o) => Ok(o),
        _ => Err(ScimError::invalid_syntax(format!(
            "a {what} must be a JSON object"
        ))),
    }
}

fn canonicalize_keys(obj: &mut Map<String, Value>, known: &[&str]) {
    let renames: Vec<(String, &str)> = obj
        .keys()
        .filter_map(|k| {
            known
                .iter()
                .find(|c| c.eq_ignore_ascii_case(k) && **c != k.as_str())
                .map(|c| (k.clone(), *c))
        })
        .collect();
    for (from, to) in renames {
        if let Some(v) = obj.remove(&from) {
            obj.insert(to.to_string(), v);
        }
    }
    // Extension objects keep the URN as sent, except the enterprise one, spelled canonically.
    let ext: Vec<String> = obj
        .keys()
        .filter(|k| {
            k.eq_ignore_ascii_case(ENTERPRISE_USER_SCHEMA) && k.as_str() != ENTERPRISE_USER_SCHEMA
        })
        .cloned()
        .collect();
    for k in ext {
        if let Some(v) = obj.remove(&k) {
            obj.insert(ENTERPRISE_USER_SCHEMA.to_string(), v);
        }
    }
}

fn drop_keys(obj: &mut Map<String, Value>, dropped: &[&str]) {
    obj.retain(|k, _| !dropped.iter().any(|d| d.eq_ignore_ascii_case(k)));
}

fn ensure_schemas(obj: &mut Map<String, Value>, core: &str) {
    let mut schemas: Vec<Value> = match obj.get("schemas") {
        Some(Value::Array(a)) => a.iter().filter(|v| v.is_string()).cloned().collect(),
        _ => Vec::new(),
    };
    if !schemas
        .iter()
        .any(|s| s.as_str().is_some_and(|s| s.eq_ignore_ascii_case(core)))
    {
        schemas.insert(0, json!(core));
    }
    // An extension object present in the body is declared in `schemas` (RFC 7643 §3).
    for key in obj.keys() {
        if key.starts_with("urn:")
            && !schemas
                .iter()
                .any(|s| s.as_str().is_some_and(|s| s.eq_ignore_ascii_case(key)))
        {
            schemas.push(json!(key));
        }
    }
    obj.insert("schemas".into(), Value::Array(schemas));
}

/// Entra sends `"True"`/`"False"` for booleans; store real booleans for `active` and
/// every `primary`.
fn coerce_booleans(obj: &mut Map<String, Value>) -> Result<(), ScimError> {
    if let Some(v) = obj.get_mut("active") {
        coerce_bool(v, "active")?;
    }
    for (_, v) in obj.iter_mut() {
        if let Value::Array(items) = v {
            // `primary` is true on one element at most (RFC 7643 §2.4): the first wins.
            let mut seen_primary = false;
            for item in items.iter_mut() {
                if let Value::Object(o) = item {
                    if let Some(p) = o.get_mut("primary") {
                        coerce_bool(p, "primary")?;
                        if *p == Value::Bool(true) {
                            if seen_primary {
                                *p = Value::Bool(false);
                            }
                            seen_primary = true;
                        }
                    }
                }
            }
        }
    }
    Ok(())
}

pub fn coerce_bool(v: &mut Value, name: &str) -> Result<(), ScimError> {
    match v {
        Value::Bool(_) | Value::Null => Ok(()),
        Value::String(s) if s.eq_ignore_ascii_case("true") => {
            *v = Value::Bool(true);
            Ok(())
        }
        Value::String(s) if s.eq_ignore_ascii_case("false") => {
            *v = Value::Bool(false);
            Ok(())
        }
        _ => Err(ScimError::invalid_value(format!(
            "{name} must be a boolean"
        ))),
    }
}

fn optional_string(raw: &Value, key: &str) -> Result<Option<String>, ScimError> {
    match raw.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(ScimError::invalid_value(format!("{key} must be a string"))),
    }
}

fn email_entries(items: Option<&Value>) -> Result<Vec<EmailEntry>, ScimError> {
    let Some(Value::Array(items)) = items else {
        return Ok(Vec::new());
    };
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        let entry = match item {
            Value::String(s) => EmailEntry {
                value_lower: Some(s.to_lowercase()),
                email_type: None,
                primary: None,
            },
            Value::Object(_) => {
                let value = match get_ci(item, "value") {
                    None | Some(Value::Null) => None,
                    Some(Value::String(s)) => Some(s.to_lowercase()),
                    Some(_) => {
                        return Err(ScimError::invalid_value("emails.value must be a string"))
                    }
                };
                let email_type = match get_ci(item, "type") {
                    None | Some(Value::Null) => None,
                    Some(Value::String(s)) => Some(s.to_lowercase()),
                    Some(_) => {
                        return Err(ScimError::invalid_value("emails.type must be a string"))
                    }
                };
                EmailEntry {
                    value_lower: value,
                    email_type,
                    primary: get_ci(item, "primary").and_then(Value::as_bool),
                }
            }
            Value::Null => continue,
            _ => {
                return Err(ScimError::invalid_value(
                    "each email must be an object with a value",
                ))
            }
        };
        out.push(entry);
    }
    Ok(out)
}

/// The `value` of the primary element of a multi-valued attribute, else of the first.
fn primary_value(items: Option<&Value>) -> Result<Option<String>, ScimError> {
    let items = match items {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Array(a)) => a,
        Some(_) => return Err(ScimError::invalid_value("emails must be an array")),
    };
    let value_of = |v: &Value| {
        get_ci(v, "value")
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    let primary = items
        .iter()
        .find(|v| get_ci(v, "primary").and_then(Value::as_bool) == Some(true))
        .and_then(value_of);
    Ok(primary.or_else(|| items.iter().find_map(value_of)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_is_cleaned_and_indexed() {
        let (raw, f) = normalize_user(json!({
            "UserName": "Ada@Example.com", "password": "hunter2", "id": "x", "active": "False",
            "emails": [{"value": "other@x.com"}, {"value": "ada@x.com", "primary": "True"}],
            "name": {"givenName": "Ada", "familyName": "Lovelace"}
        }))
        .unwrap();
        assert!(raw.get("password").is_none() && raw.get("id").is_none());
        assert_eq!(raw["userName"], "Ada@Example.com");
        assert_eq!(raw["schemas"][0], USER_SCHEMA);
        assert_eq!(f.email.as_deref(), Some("ada@x.com"));
        assert!(!f.active);
        assert_eq!(f.given_name.as_deref(), Some("Ada"));
    }

    #[test]
    fn user_without_user_name_is_invalid() {
        let e = normalize_user(json!({"name": {}})).unwrap_err();
        assert_eq!(e.status, 400);
        assert!(normalize_user(json!([1])).is_err());
        assert!(normalize_user(json!({"userName": 5})).is_err());
    }

    #[test]
    fn etag_conditions() {
        assert!(EtagCondition::parse("*").matches(7));
        assert!(EtagCondition::parse("W/\"3\", \"7\"").matches(7));
        assert!(!EtagCondition::parse("W/\"3\"").matches(7));
        assert_eq!(
            check_if_match(Some(&EtagCondition::parse("W/\"1\"")), 2)
                .unwrap_err()
                .status,
            412
        );
        assert!(check_if_match(None, 2).is_ok());
    }

    #[test]
    fn group_members_come_apart() {
        let (raw, f, m) = normalize_group(json!({
            "displayName": "Eng", "members": [{"value": "a"}, {"value": "b"}, {"value": "a"}]
        }))
        .unwrap();
        assert!(raw.get("members").is_none());
        assert_eq!(f.display_name, "Eng");
        assert_eq!(m.unwrap(), vec!["a", "b"]);
    }
}
