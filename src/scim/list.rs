//! List queries (RFC 7644 §3.4.2): paging parameters, their limits, and ListResponse.

use serde_json::{json, Value};

use super::error::ScimError;
use super::filter::{self, Filter};
use super::LIST_RESPONSE_SCHEMA;

/// Page size when the client asks for none.
pub const DEFAULT_COUNT: i64 = 100;
/// Largest page served; declared as `filter.maxResults` in ServiceProviderConfig.
pub const MAX_COUNT: i64 = 1000;

#[derive(Debug, Clone, PartialEq)]
pub struct ListQuery {
    pub filter: Option<Filter>,
    /// 1-based.
    pub start_index: i64,
    pub count: i64,
    /// `sortBy`, as sent.
    pub sort_by: Option<String>,
    pub descending: bool,
}

impl ListQuery {
    /// From query-string pairs; parameter names are case-insensitive. Out-of-range values
    /// are clamped as RFC 7644 §3.4.2.4 says (startIndex < 1 → 1, count < 0 → 0).
    pub fn from_pairs<'a>(
        pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Self, ScimError> {
        let mut q = ListQuery {
            filter: None,
            start_index: 1,
            count: DEFAULT_COUNT,
            sort_by: None,
            descending: false,
        };
        for (k, v) in pairs {
            if k.eq_ignore_ascii_case("filter") {
                if !v.trim().is_empty() {
                    q.filter = Some(filter::parse(v)?);
                }
            } else if k.eq_ignore_ascii_case("startIndex") {
                q.start_index = parse_int(k, v)?.max(1);
            } else if k.eq_ignore_ascii_case("count") {
                q.count = parse_int(k, v)?.clamp(0, MAX_COUNT);
            } else if k.eq_ignore_ascii_case("sortBy") {
                let v = v.trim();
                if !v.is_empty() {
                    filter::parse_patch_path(v)
                        .ok()
                        .filter(|p| p.filter.is_none())
                        .ok_or_else(|| {
                            ScimError::invalid_value(format!(
                                "sortBy is not an attribute path: {v:?}"
                            ))
                        })?;
                    q.sort_by = Some(v.to_string());
                }
            } else if k.eq_ignore_ascii_case("sortOrder") {
                q.descending = match v.trim().to_ascii_lowercase().as_str() {
                    "" | "ascending" => false,
                    "descending" => true,
                    _ => {
                        return Err(ScimError::invalid_value(
                            "sortOrder must be ascending or descending",
                        ))
                    }
                };
            }
        }
        Ok(q)
    }

    /// Offset into the ordered result (0-based).
    pub fn offset(&self) -> i64 {
        self.start_index - 1
    }
}

fn parse_int(name: &str, v: &str) -> Result<i64, ScimError> {
    let v = v.trim();
    v.parse::<i64>()
        .or_else(|_| v.parse::<f64>().map(|f| f as i64))
        .map_err(|_| ScimError::invalid_value(format!("{name} must be an integer, got {v:?}")))
}

pub fn list_response(resources: Vec<Value>, total: i64, start_index: i64) -> Value {
    json!({
        "schemas": [LIST_RESPONSE_SCHEMA],
        "totalResults": total,
        "startIndex": start_index,
        "itemsPerPage": resources.len(),
        "Resources": resources,
    })
}

/// `attributes` / `excludedAttributes` (RFC 7644 §3.4.2.5): which attributes a response
/// carries. `id` and `schemas` are always returned.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Projection {
    attributes: Vec<(String, Option<String>)>,
    excluded: Vec<(String, Option<String>)>,
}

/// `name.givenName` → (`name`, `givenName`); a core-schema URN prefix is dropped; an
/// extension attribute `urn:…:User:department` → (`urn:…:User`, `department`).
fn split_path(path: &str) -> (String, Option<String>) {
    let path = path.trim();
    if path.len() > 4
        && path
            .get(..4)
            .is_some_and(|p| p.eq_ignore_ascii_case("urn:"))
    {
        if let Some(pos) = path.rfind(':') {
            let (urn, local) = (&path[..pos], &path[pos + 1..]);
            if urn.to_ascii_lowercase().contains(":core:") {
                return split_path(local);
            }
            let local = local.split('.').next().unwrap_or(local);
            return (urn.to_ascii_lowercase(), Some(local.to_ascii_lowercase()));
        }
    }
    match path.split_once('.') {
        Some((a, b)) => (a.to_ascii_lowercase(), Some(b.to_ascii_lowercase())),
        None => (path.to_ascii_lowercase(), None),
    }
}

fn split_list(v: &str) -> Vec<(String, Option<String>)> {
    v.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(split_path)
        .collect()
}

const ALWAYS: [&str; 2] = ["id", "schemas"];

impl Projection {
    pub fn from_pairs<'a>(
        pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Self, ScimError> {
        let mut p = Projection::default();
        for (k, v) in pairs {
            if k.eq_ignore_ascii_case("attributes") {
                p.attributes.extend(split_list(v));
            } else if k.eq_ignore_ascii_case("excludedAttributes") {
                p.excluded.extend(split_list(v));
            }
        }
        Ok(p)
    }

    /// Whether the response carries top-level attribute `attr` (so whether to load it).
    pub fn includes(&self, attr: &str) -> bool {
        let attr = attr.to_ascii_lowercase();
        if !self.attributes.is_empty() {
            return self.attributes.iter().any(|(a, _)| *a == attr);
        }
        !self
            .excluded
            .iter()
            .any(|(a, sub)| *a == attr && sub.is_none())
    }

    pub fn apply(&self, resource: Value) -> Value {
        let Value::Object(obj) = resource else {
            return resource;
        };
        let mut out = serde_json::Map::new();
        for (key, value) in obj {
            let k = key.to_ascii_lowercase();
            if ALWAYS.contains(&k.as_str()) {
                out.insert(key, value);
                continue;
            }
            if !self.attributes.is_empty() {
                let wanted: Vec<&Option<String>> = self
                    .attributes
                    .iter()
                    .filter(|(a, _)| *a == k)
                    .map(|(_, s)| s)
                    .collect();
                if wanted.is_empty() {
                    continue;
                }
                if wanted.iter().any(|s| s.is_none()) {
                    out.insert(key, value);
                } else {
                    let subs: Vec<&str> = wanted.iter().filter_map(|s| s.as_deref()).collect();
                    out.insert(key, keep_subs(value, &subs));
                }
                continue;
            }
            let excluded: Vec<&Option<String>> = self
                .excluded
                .iter()
                .filter(|(a, _)| *a == k)
                .map(|(_, s)| s)
                .collect();
            if excluded.iter().any(|s| s.is_none()) {
                continue;
            }
            if excluded.is_empty() {
                out.insert(key, value);
            } else {
                let subs: Vec<&str> = excluded.iter().filter_map(|s| s.as_deref()).collect();
                out.insert(key, drop_subs(value, &subs));
            }
        }
        Value::Object(out)
    }
}

fn keep_subs(v: Value, subs: &[&str]) -> Value {
    match v {
        Value::Object(o) => Value::Object(
            o.into_iter()
                .filter(|(k, _)| subs.contains(&k.to_ascii_lowercase().as_str()))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.into_iter().map(|e| keep_subs(e, subs)).collect()),
        other => other,
    }
}

fn drop_subs(v: Value, subs: &[&str]) -> Value {
    match v {
        Value::Object(o) => Value::Object(
            o.into_iter()
                .filter(|(k, _)| !subs.contains(&k.to_ascii_lowercase().as_str()))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.into_iter().map(|e| drop_subs(e, subs)).collect()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn projection_keeps_id_and_named_attributes() {
        let r = json!({"id": "1", "schemas": [], "userName": "a", "name": {"givenName": "A", "familyName": "B"}, "meta": {}});
        let p = Projection::from_pairs([(
            "attributes",
            "name.givenName,urn:ietf:params:scim:schemas:core:2.0:User:userName",
        )])
        .unwrap();
        assert_eq!(
            p.apply(r.clone()),
            json!({"id": "1", "schemas": [], "userName": "a", "name": {"givenName": "A"}})
        );
        let p = Projection::from_pairs([("excludedAttributes", "name,meta,id")]).unwrap();
        assert_eq!(
            p.apply(r),
            json!({"id": "1", "schemas": [], "userName": "a"})
        );
        assert!(!p.includes("name") && p.includes("members"));
        let odd = Projection::from_pairs([("attributes", "€€€€€,urn:€,.")]).unwrap();
        assert_eq!(odd.apply(json!({"id": "1"})), json!({"id": "1"}));
    }

    #[test]
    fn clamps_and_parses() {
        let q = ListQuery::from_pairs([("startIndex", "0"), ("COUNT", "99999")]).unwrap();
        assert_eq!((q.start_index, q.count), (1, MAX_COUNT));
        let q = ListQuery::from_pairs([("count", "-3"), ("filter", "userName eq \"a\"")]).unwrap();
        assert_eq!(q.count, 0);
        assert!(q.filter.is_some());
        assert!(ListQuery::from_pairs([("count", "ten")]).is_err());
        assert!(ListQuery::from_pairs([("filter", "userName xx")]).is_err());
    }
}
