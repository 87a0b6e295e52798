//! Bulk (RFC 7644 §3.7): the request, `bulkId` references between operations, and the
//! response. Execution is the directory service's.

use std::collections::HashMap;

use serde_json::{json, Map, Value};

use super::error::ScimError;
use super::filter::get_ci;

pub const BULK_REQUEST_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:BulkRequest";
pub const BULK_RESPONSE_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:BulkResponse";
/// Declared in ServiceProviderConfig.
pub const MAX_OPERATIONS: usize = 1000;
pub const MAX_PAYLOAD_BYTES: usize = 1024 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Post,
    Put,
    Patch,
    Delete,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Post => "POST",
            Self::Put => "PUT",
            Self::Patch => "PATCH",
            Self::Delete => "DELETE",
        }
    }
}

/// What an operation's `path` names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Users,
    User(String),
    Groups,
    Group(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Operation {
    pub method: Method,
    pub path: String,
    pub bulk_id: Option<String>,
    /// An `If-Match` version for this operation.
    pub version: Option<String>,
    pub data: Option<Value>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct BulkRequest {
    pub fail_on_errors: Option<usize>,
    pub operations: Vec<Operation>,
}

pub fn parse(body: &Value) -> Result<BulkRequest, ScimError> {
    if !body.is_object() {
        return Err(ScimError::invalid_syntax(
            "a bulk request must be a JSON object",
        ));
    }
    let fail_on_errors =
        match get_ci(body, "failOnErrors") {
            None | Some(Value::Null) => None,
            Some(v) => Some(v.as_u64().filter(|n| *n > 0).ok_or_else(|| {
                ScimError::invalid_value("failOnErrors must be a positive integer")
            })? as usize),
        };
    let ops = get_ci(body, "Operations")
        .and_then(Value::as_array)
        .ok_or_else(|| ScimError::invalid_syntax("Operations must be an array"))?;
    if ops.len() > MAX_OPERATIONS {
        return Err(ScimError::payload_too_large(format!(
            "{} operations exceed maxOperations {MAX_OPERATIONS}",
            ops.len()
        )));
    }
    let mut seen = std::collections::HashSet::new();
    let mut operations = Vec::with_capacity(ops.len());
    for (i, op) in ops.iter().enumerate() {
        let method = match get_ci(op, "method")
            .and_then(Value::as_str)
            .map(str::to_ascii_uppercase)
            .as_deref()
        {
            Some("POST") => Method::Post,
            Some("PUT") => Method::Put,
            Some("PATCH") => Method::Patch,
            Some("DELETE") => Method::Delete,
            other => {
                return Err(ScimError::invalid_syntax(format!(
                    "operation {i}: unknown method {other:?}"
                )))
            }
        };
        let path = get_ci(op, "path")
            .and_then(Value::as_str)
            .ok_or_else(|| ScimError::invalid_syntax(format!("operation {i}: path is required")))?
            .to_string();
        let bulk_id = get_ci(op, "bulkId")
            .and_then(Value::as_str)
            .map(str::to_string);
        if let Some(b) = &bulk_id {
            if !seen.insert(b.clone()) {
                return Err(ScimError::invalid_value(format!(
                    "bulkId {b:?} is used twice"
                )));
            }
        }
        let data = get_ci(op, "data").cloned();
        if matches!(method, Method::Post | Method::Put | Method::Patch) && data.is_none() {
            return Err(ScimError::invalid_syntax(format!(
                "operation {i}: data is required for {}",
                method.as_str()
            )));
        }
        operations.push(Operation {
            method,
            path,
            bulk_id,
            version: get_ci(op, "version")
                .and_then(Value::as_str)
                .map(str::to_string),
            data,
        });
    }
    Ok(BulkRequest {
        fail_on_errors,
        operations,
    })
}

impl Operation {
    /// The `bulkId:` references this operation makes (in its path and data).
    pub fn references(&self) -> Vec<String> {
        let mut refs = Vec::new();
        collect_refs(&Value::String(self.path.clone()), &mut refs);
        if let Some(d) = &self.data {
            collect_refs(d, &mut refs);
        }
        refs
    }

    /// Replaces `bulkId:x` with the id created for `x`.
    pub fn resolve(&mut self, ids: &HashMap<String, String>) {
        self.path = substitute_str(&self.path, ids);
        if let Some(d) = &mut self.data {
            substitute(d, ids);
        }
    }

    pub fn target(&self) -> Result<Target, ScimError> {
        let parts: Vec<&str> = self.path.trim_matches('/').split('/').collect();
        match (parts.as_slice(), self.method) {
            (["Users"], Method::Post) => Ok(Target::Users),
            (["Groups"], Method::Post) => Ok(Target::Groups),
            (["Users", id], m) if m != Method::Post && !id.is_empty() => {
                Ok(Target::User(id.to_string()))
            }
            (["Groups", id], m) if m != Method::Post && !id.is_empty() => {
                Ok(Target::Group(id.to_string()))
            }
            _ => Err(ScimError::invalid_path(format!(
                "{} {} is not a bulk target",
                self.method.as_str(),
                self.path
            ))),
        }
    }
}

fn collect_refs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::String(s) => {
            if let Some(r) = s.strip_prefix("bulkId:") {
                out.push(r.to_string());
            } else if let Some(pos) = s.find("/bulkId:") {
                out.push(
                    s[pos + 8..]
                        .split('/')
                        .next()
                        .unwrap_or_default()
                        .to_string(),
                );
            }
        }
        Value::Array(a) => a.iter().for_each(|x| collect_refs(x, out)),
        Value::Object(o) => o.values().for_each(|x| collect_refs(x, out)),
        _ => {}
    }
}

fn substitute_str(s: &str, ids: &HashMap<String, String>) -> String {
    if let Some(r) = s.strip_prefix("bulkId:") {
        if let Some(id) = ids.get(r) {
            return id.clone();
        }
    }
    if let Some(pos) = s.find("/bulkId:") {
        let rest = &s[pos + 8..];
        let (r, tail) = rest.split_once('/').map_or((rest, ""), |(a, b)| (a, b));
        if let Some(id) = ids.get(r) {
            let tail = if tail.is_empty() {
                String::new()
            } else {
                format!("/{tail}")
            };
            return format!("{}/{id}{tail}", &s[..pos]);
        }
    }
    s.to_string()
}

fn substitute(v: &mut Value, ids: &HashMap<String, String>) {
    match v {
        Value::String(s) => *s = substitute_str(s, ids),
        Value::Array(a) => a.iter_mut().for_each(|x| substitute(x, ids)),
        Value::Object(o) => o.values_mut().for_each(|x| substitute(x, ids)),
        _ => {}
    }
}

/// One operation's outcome in the response.
pub fn success(
    op: &Operation,
    status: u16,
    location: Option<String>,
    version: Option<String>,
) -> Value {
    let mut m = Map::new();
    m.insert("method".into(), json!(op.method.as_str()));
    if let Some(b) = &op.bulk_id {
        m.insert("bulkId".into(), json!(b));
    }
    if let Some(l) = location {
        m.insert("location".into(), json!(l));
    }
    if let Some(v) = version {
        m.insert("version".into(), json!(v));
    }
    m.insert("status".into(), json!(status.to_string()));
    Value::Object(m)
}

pub fn failure(op: &Operation, error: &ScimError) -> Value {
    let mut v = success(op, error.status, None, None);
    v["response"] = error.to_json();
    v
}

pub fn response(operations: Vec<Value>) -> Value {
    json!({"schemas": [BULK_RESPONSE_SCHEMA], "Operations": operations})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_resolves_references() {
        let body = json!({"schemas": [BULK_REQUEST_SCHEMA], "failOnErrors": 1, "Operations": [
            {"method": "POST", "path": "/Users", "bulkId": "u1", "data": {"userName": "a"}},
            {"method": "post", "path": "/Groups", "bulkId": "g1", "data": {"displayName": "G", "members": [{"value": "bulkId:u1"}]}},
            {"method": "PATCH", "path": "/Groups/bulkId:g1", "data": {"Operations": []}}
        ]});
        let req = parse(&body).unwrap();
        assert_eq!(req.fail_on_errors, Some(1));
        assert_eq!(req.operations[1].references(), vec!["u1"]);
        assert_eq!(req.operations[2].references(), vec!["g1"]);
        let ids: HashMap<String, String> = [
            ("u1".to_string(), "U".to_string()),
            ("g1".to_string(), "G".to_string()),
        ]
        .into();
        let mut op = req.operations[2].clone();
        op.resolve(&ids);
        assert_eq!(op.target().unwrap(), Target::Group("G".into()));
        let mut op = req.operations[1].clone();
        op.resolve(&ids);
        assert_eq!(op.data.unwrap()["members"][0]["value"], "U");
    }

    #[test]
    fn rejects_bad_requests() {
        assert!(parse(&json!({"Operations": [{"method": "GET", "path": "/Users"}]})).is_err());
        assert!(parse(&json!({"Operations": [{"method": "POST", "path": "/Users"}]})).is_err());
        let dup = json!({"Operations": [
            {"method": "POST", "path": "/Users", "bulkId": "x", "data": {}},
            {"method": "POST", "path": "/Users", "bulkId": "x", "data": {}}]});
        assert!(parse(&dup).is_err());
        let many: Vec<Value> = (0..=MAX_OPERATIONS)
            .map(|_| json!({"method": "DELETE", "path": "/Users/x"}))
            .collect();
        assert_eq!(parse(&json!({"Operations": many})).unwrap_err().status, 413);
    }
}
