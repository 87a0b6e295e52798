//! Google's Admin SDK JSON as the SCIM resources a pushed directory holds, and what a run
//! must change so a directory matches a listing. Pure: no I/O.
//!
//! Users: `userName` = `primaryEmail`, `externalId` = Google's id, `name`, `emails` (every
//! address Google lists, the primary first), `active` = not `suspended`. Groups:
//! `displayName` = `name`, `externalId` = id. Only what these carry counts as a change: a
//! sign-in, an etag or `lastLoginTime` is not part of them.

use std::collections::{HashMap, HashSet};

use serde_json::{json, Map, Value};

use crate::scim::resource;
use crate::scim::ScimError;

const USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
const GROUP_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";

fn text<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

/// A Google user as a SCIM User, normalized as stored; `None` without an id or a primary
/// address (nothing to match or name it by).
pub fn user(google: &Value) -> Option<Result<(String, Value), ScimError>> {
    let id = text(google, "id")?;
    let primary = text(google, "primaryEmail")?;
    let mut emails = vec![json!({"value": primary, "type": "work", "primary": true})];
    let mut seen: HashSet<String> = HashSet::from([primary.to_lowercase()]);
    let listed = google
        .get("emails")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|e| Some((text(e, "address")?, text(e, "type"))));
    let aliases = google
        .get("aliases")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|a| Some((a.as_str()?.trim(), None)));
    for (address, kind) in listed.chain(aliases) {
        if address.is_empty() || !seen.insert(address.to_lowercase()) {
            continue;
        }
        // SCIM's canonical types; Google's `custom` and alias entries are `other`.
        let kind = kind
            .filter(|k| matches!(*k, "work" | "home" | "other"))
            .unwrap_or("other");
        emails.push(json!({"value": address, "type": kind}));
    }
    let mut user = Map::new();
    user.insert("schemas".into(), json!([USER_SCHEMA]));
    user.insert("userName".into(), json!(primary));
    user.insert("externalId".into(), json!(id));
    let names = google.get("name").unwrap_or(&Value::Null);
    let mut name = Map::new();
    for (from, to) in [
        ("givenName", "givenName"),
        ("familyName", "familyName"),
        ("fullName", "formatted"),
    ] {
        if let Some(v) = text(names, from) {
            name.insert(to.into(), json!(v));
        }
    }
    if let Some(full) = text(names, "fullName") {
        user.insert("displayName".into(), json!(full));
    }
    if !name.is_empty() {
        user.insert("name".into(), Value::Object(name));
    }
    user.insert("emails".into(), Value::Array(emails));
    let suspended = google
        .get("suspended")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    user.insert("active".into(), json!(!suspended));
    Some(resource::normalize_user(Value::Object(user)).map(|(raw, _)| (id.to_string(), raw)))
}

/// Google's groups as SCIM Groups, normalized as stored. Google lets two groups share a
/// name, a SCIM directory does not: a name used more than once (in any case) is followed
/// by the group's address.
pub fn groups(google: &[Value]) -> Vec<Result<(String, Value), ScimError>> {
    let mut uses: HashMap<String, usize> = HashMap::new();
    for g in google {
        if let Some(name) = text(g, "name") {
            *uses.entry(name.to_lowercase()).or_default() += 1;
        }
    }
    google
        .iter()
        .filter_map(|g| {
            let id = text(g, "id")?;
            let email = text(g, "email");
            let name = text(g, "name").or(email)?;
            let display = match email {
                Some(e) if uses.get(&name.to_lowercase()).is_some_and(|n| *n > 1) => {
                    format!("{name} ({e})")
                }
                _ => name.to_string(),
            };
            let group = json!({
                "schemas": [GROUP_SCHEMA],
                "displayName": display,
                "externalId": id,
            });
            Some(resource::normalize_group(group).map(|(raw, _, _)| (id.to_string(), raw)))
        })
        .collect()
}

/// The Google ids of a group's members that can be users of the directory: direct members
/// of type `USER` (nested groups and the whole customer make none).
pub fn member_user_ids(members: &[Value]) -> Vec<String> {
    members
        .iter()
        .filter(|m| text(m, "type").is_none_or(|t| t.eq_ignore_ascii_case("USER")))
        .filter_map(|m| text(m, "id").map(str::to_string))
        .collect()
}

/// A resource of the directory as a run compares it.
#[derive(Debug, Clone)]
pub struct Stored {
    pub id: String,
    pub external_id: Option<String>,
    pub raw: String,
}

/// What a run writes for one kind of resource.
#[derive(Debug, Default)]
pub struct Plan {
    /// New in Google: (Google id, resource).
    pub create: Vec<(String, Value)>,
    /// Changed: (our id, new resource).
    pub update: Vec<(String, Value)>,
    /// Gone from Google (or never from it): our ids.
    pub delete: Vec<String>,
    /// Google id → our id, for those that stay.
    pub known: HashMap<String, String>,
}

/// Matches `desired` (Google id, resource) to what is `stored`, by external id: a new
/// address or name is an update of the same resource, never a delete and a create.
/// Unchanged resources are left alone.
pub fn plan(stored: Vec<Stored>, desired: Vec<(String, Value)>) -> Plan {
    let mut out = Plan::default();
    let mut by_google: HashMap<String, (String, String)> = HashMap::new();
    for s in stored {
        match s.external_id {
            Some(ext) if !by_google.contains_key(&ext) => {
                by_google.insert(ext, (s.id, s.raw));
            }
            // Not Google's, or a second copy: it goes.
            _ => out.delete.push(s.id),
        }
    }
    for (google_id, resource) in desired {
        match by_google.remove(&google_id) {
            Some((id, raw)) => {
                // Stored by this same mapping, an unchanged resource serializes to the same
                // text; only a differing text is parsed (keys in another order are equal).
                let text = resource.to_string();
                let unchanged =
                    text == raw || serde_json::from_str::<Value>(&raw).is_ok_and(|r| r == resource);
                if !unchanged {
                    out.update.push((id.clone(), resource));
                }
                out.known.insert(google_id, id);
            }
            None => out.create.push((google_id, resource)),
        }
    }
    out.delete.extend(by_google.into_values().map(|(id, _)| id));
    out
}

/// Each group whose members must change, with the user ids it must have (in a stable
/// order): `wanted` is the members a listing gave (group id → user ids), `current` the
/// memberships stored (group id, user id).
pub fn membership_changes(
    wanted: &HashMap<String, Vec<String>>,
    current: &[(String, String)],
) -> Vec<(String, Vec<String>)> {
    let mut have: HashMap<&str, HashSet<&str>> = HashMap::new();
    for (g, u) in current {
        have.entry(g.as_str()).or_default().insert(u.as_str());
    }
    let mut out: Vec<(String, Vec<String>)> = wanted
        .iter()
        .filter_map(|(group, users)| {
            let want: HashSet<&str> = users.iter().map(String::as_str).collect();
            let now = have.get(group.as_str()).cloned().unwrap_or_default();
            (want != now).then(|| {
                let mut ids: Vec<String> = want.into_iter().map(str::to_string).collect();
                ids.sort();
                (group.clone(), ids)
            })
        })
        .collect();
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn google_user() -> Value {
        json!({
            "kind": "admin#directory#user", "id": "1001", "etag": "\"e1\"",
            "primaryEmail": "ada@example.com",
            "name": {"givenName": "Ada", "familyName": "Lovelace", "fullName": "Ada Lovelace"},
            "emails": [
                {"address": "ada.l@example.com"},
                {"address": "ADA@example.com", "primary": true},
                {"address": "ada@home.example", "type": "home"},
            ],
            "aliases": ["ada.l@example.com", "countess@example.com"],
            "suspended": false, "lastLoginTime": "2026-01-01T00:00:00.000Z",
        })
    }

    #[test]
    fn users_map_to_scim_with_the_primary_address_first() {
        let (id, u) = user(&google_user()).unwrap().unwrap();
        assert_eq!(id, "1001");
        assert_eq!(u["userName"], "ada@example.com");
        assert_eq!(u["externalId"], "1001");
        assert_eq!(u["name"]["givenName"], "Ada");
        assert_eq!(u["name"]["familyName"], "Lovelace");
        assert_eq!(u["displayName"], "Ada Lovelace");
        assert_eq!(u["active"], true);
        let emails: Vec<&str> = u["emails"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["value"].as_str().unwrap())
            .collect();
        assert_eq!(
            emails,
            [
                "ada@example.com",
                "ada.l@example.com",
                "ada@home.example",
                "countess@example.com"
            ]
        );
        assert_eq!(u["emails"][0]["primary"], true);
        assert_eq!(u["emails"][2]["type"], "home");
        let mut suspended = google_user();
        suspended["suspended"] = json!(true);
        assert_eq!(user(&suspended).unwrap().unwrap().1["active"], false);
        assert!(user(&json!({"id": "1"})).is_none());
    }

    #[test]
    fn a_sign_in_or_an_etag_changes_nothing() {
        let (_, before) = user(&google_user()).unwrap().unwrap();
        let mut later = google_user();
        later["etag"] = json!("\"e2\"");
        later["lastLoginTime"] = json!("2026-02-02T00:00:00.000Z");
        let (_, after) = user(&later).unwrap().unwrap();
        let stored = vec![Stored {
            id: "u1".into(),
            external_id: Some("1001".into()),
            raw: before.to_string(),
        }];
        let p = plan(stored, vec![("1001".into(), after)]);
        assert!(p.create.is_empty() && p.update.is_empty() && p.delete.is_empty());
        assert_eq!(p.known["1001"], "u1");
    }

    #[test]
    fn plans_match_by_google_id() {
        let (_, ada) = user(&google_user()).unwrap().unwrap();
        let mut renamed = google_user();
        renamed["primaryEmail"] = json!("ada.king@example.com");
        let (_, renamed) = user(&renamed).unwrap().unwrap();
        let stored = vec![
            Stored {
                id: "u1".into(),
                external_id: Some("1001".into()),
                raw: ada.to_string(),
            },
            Stored {
                id: "u2".into(),
                external_id: Some("1002".into()),
                raw: "{}".into(),
            },
            Stored {
                id: "u3".into(),
                external_id: None,
                raw: "{}".into(),
            },
        ];
        let p = plan(
            stored,
            vec![("1001".into(), renamed.clone()), ("1003".into(), json!({}))],
        );
        assert_eq!(p.update, vec![("u1".to_string(), renamed)]);
        assert_eq!(p.create.len(), 1);
        let mut gone = p.delete.clone();
        gone.sort();
        assert_eq!(gone, ["u2", "u3"]);
    }

    #[test]
    fn groups_with_one_name_are_told_apart_and_members_are_direct_users() {
        let g = groups(&[
            json!({"id": "g1", "email": "eng@example.com", "name": "Engineering"}),
            json!({"id": "g2", "email": "eng2@example.com", "name": "engineering"}),
            json!({"id": "g3", "email": "ops@example.com", "name": "Ops", "directMembersCount": "2"}),
        ]);
        let names: Vec<String> = g
            .into_iter()
            .map(|r| r.unwrap().1["displayName"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(
            names,
            [
                "Engineering (eng@example.com)",
                "engineering (eng2@example.com)",
                "Ops"
            ]
        );
        let members = member_user_ids(&[
            json!({"id": "1", "type": "USER", "role": "OWNER"}),
            json!({"id": "2", "type": "GROUP"}),
            json!({"id": "3", "type": "CUSTOMER"}),
            json!({"id": "4", "type": "USER", "status": "SUSPENDED"}),
        ]);
        assert_eq!(members, ["1", "4"]);
        let wanted = HashMap::from([
            ("a".to_string(), vec!["u1".to_string(), "u2".to_string()]),
            ("b".to_string(), vec!["u1".to_string()]),
        ]);
        let current = [
            ("a".to_string(), "u2".to_string()),
            ("a".to_string(), "u1".to_string()),
            ("b".to_string(), "u3".to_string()),
        ];
        assert_eq!(
            membership_changes(&wanted, &current),
            vec![("b".to_string(), vec!["u1".to_string()])]
        );
    }
}
