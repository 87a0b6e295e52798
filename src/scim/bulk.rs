//! Bulk (RFC 7644 §3.7): the request, `bulkId` references between operations, and the
//! response. Execution is the directory service's.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

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
    /// The distinct `bulkId:` references this operation makes (in its path and data).
    pub fn references(&self) -> Vec<String> {
        let mut refs = Vec::new();
        if let Some(r) = reference_in(&self.path) {
            refs.push(r.to_string());
        }
        if let Some(d) = &self.data {
            collect_refs(d, &mut refs);
        }
        refs.sort_unstable();
        refs.dedup();
        refs
    }

    /// Replaces `bulkId:x` with the id created for `x`. Only strings holding a reference
    /// are rewritten; the rest of the data is left in place.
    pub fn resolve(&mut self, ids: &HashMap<String, String>) {
        if let Some(path) = substituted(&self.path, ids) {
            self.path = path;
        }
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

/// The bulkId a string refers to: the whole string `bulkId:x`, or a path segment
/// `…/bulkId:x[/…]`.
fn reference_in(s: &str) -> Option<&str> {
    if let Some(r) = s.strip_prefix("bulkId:") {
        return Some(r);
    }
    let pos = s.find("/bulkId:")?;
    s[pos + 8..].split('/').next()
}

fn collect_refs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::String(s) => {
            if let Some(r) = reference_in(s) {
                out.push(r.to_string());
            }
        }
        Value::Array(a) => a.iter().for_each(|x| collect_refs(x, out)),
        Value::Object(o) => o.values().for_each(|x| collect_refs(x, out)),
        _ => {}
    }
}

/// `s` with its reference replaced by the id created for it; `None` when `s` holds no
/// reference, or one not (yet) created.
fn substituted(s: &str, ids: &HashMap<String, String>) -> Option<String> {
    if let Some(r) = s.strip_prefix("bulkId:") {
        if let Some(id) = ids.get(r) {
            return Some(id.clone());
        }
    }
    let pos = s.find("/bulkId:")?;
    let rest = &s[pos + 8..];
    let (r, tail) = rest
        .split_once('/')
        .map_or((rest, None), |(a, b)| (a, Some(b)));
    let id = ids.get(r)?;
    Some(match tail {
        Some(tail) => format!("{}/{id}/{tail}", &s[..pos]),
        None => format!("{}/{id}", &s[..pos]),
    })
}

fn substitute(v: &mut Value, ids: &HashMap<String, String>) {
    match v {
        Value::String(s) => {
            if let Some(new) = substituted(s, ids) {
                *s = new;
            }
        }
        Value::Array(a) => a.iter_mut().for_each(|x| substitute(x, ids)),
        Value::Object(o) => o.values_mut().for_each(|x| substitute(x, ids)),
        _ => {}
    }
}

/// What running one operation produced.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Done {
    pub status: u16,
    /// The id of the resource written; later operations' `bulkId:` references to this
    /// operation resolve to it.
    pub id: Option<String>,
    pub location: Option<String>,
    pub version: Option<String>,
}

/// Runs the request's operations with `run`, each once, in an order that resolves
/// `bulkId` references, and returns the BulkResponse (operations in request order).
///
/// The order is that of passes over the request: an operation runs in the first pass
/// where everything it refers to was created before it is reached. Operations whose
/// references never resolve (unknown, failed or circular `bulkId`s) answer 409, as RFC
/// 7644 §3.7.1 allows. After `failOnErrors` errors nothing more runs.
///
/// Each operation's references are found once, and creating a resource wakes only the
/// operations waiting on it, so a request of n chained operations costs O(n log n)
/// bookkeeping rather than n passes over the whole request.
pub fn execute(
    request: BulkRequest,
    mut run: impl FnMut(Operation) -> Result<Done, ScimError>,
) -> Value {
    let BulkRequest {
        fail_on_errors,
        operations,
    } = request;
    let limit_reached = |errors: usize| fail_on_errors.is_some_and(|n| errors >= n);
    let n = operations.len();
    // Per operation, its references not yet created; per bulkId, who waits on it.
    let mut unresolved = vec![0usize; n];
    let mut waiting: HashMap<String, Vec<usize>> = HashMap::new();
    // Min-heaps of runnable operations: in this pass (after the one just run) and in the
    // next (before it).
    let mut this_pass = BinaryHeap::new();
    let mut next_pass = BinaryHeap::new();
    for (i, op) in operations.iter().enumerate() {
        let refs = op.references();
        unresolved[i] = refs.len();
        if refs.is_empty() {
            this_pass.push(Reverse(i));
        }
        for r in refs {
            waiting.entry(r).or_default().push(i);
        }
    }
    let mut pending: Vec<Option<Operation>> = operations.into_iter().map(Some).collect();
    let mut results: Vec<Option<Value>> = vec![None; n];
    let mut ids: HashMap<String, String> = HashMap::new();
    let mut errors = 0usize;
    loop {
        let Some(Reverse(i)) = this_pass.pop() else {
            if next_pass.is_empty() {
                break;
            }
            std::mem::swap(&mut this_pass, &mut next_pass);
            continue;
        };
        if limit_reached(errors) {
            return response(results.into_iter().flatten().collect());
        }
        let Some(mut op) = pending.get_mut(i).and_then(Option::take) else {
            continue;
        };
        op.resolve(&ids);
        let (method, bulk_id) = (op.method, op.bulk_id.clone());
        let entry = match run(op) {
            Ok(done) => {
                if let (Some(b), Some(id)) = (&bulk_id, &done.id) {
                    ids.insert(b.clone(), id.clone());
                    for &j in waiting.get(b).map_or(&[][..], Vec::as_slice) {
                        unresolved[j] = unresolved[j].saturating_sub(1);
                        if unresolved[j] == 0 {
                            if j > i {
                                this_pass.push(Reverse(j));
                            } else {
                                next_pass.push(Reverse(j));
                            }
                        }
                    }
                }
                outcome(method, bulk_id.as_deref(), done)
            }
            Err(e) => {
                errors += 1;
                failure(method, bulk_id.as_deref(), &e)
            }
        };
        results[i] = Some(entry);
    }
    let unresolvable = ScimError::new(
        409,
        None,
        "unresolvable bulkId reference (unknown or circular)",
    );
    for (i, op) in pending.iter().enumerate() {
        let Some(op) = op else { continue };
        if limit_reached(errors) {
            break;
        }
        errors += 1;
        results[i] = Some(failure(op.method, op.bulk_id.as_deref(), &unresolvable));
    }
    response(results.into_iter().flatten().collect())
}

/// One operation's outcome in the response.
fn outcome(method: Method, bulk_id: Option<&str>, done: Done) -> Value {
    let mut m = Map::new();
    m.insert("method".into(), json!(method.as_str()));
    if let Some(b) = bulk_id {
        m.insert("bulkId".into(), json!(b));
    }
    if let Some(l) = done.location {
        m.insert("location".into(), json!(l));
    }
    if let Some(v) = done.version {
        m.insert("version".into(), json!(v));
    }
    m.insert("status".into(), json!(done.status.to_string()));
    Value::Object(m)
}

fn failure(method: Method, bulk_id: Option<&str>, error: &ScimError) -> Value {
    let done = Done {
        status: error.status,
        ..Done::default()
    };
    let mut v = outcome(method, bulk_id, done);
    v["response"] = error.to_json();
    v
}

fn response(operations: Vec<Value>) -> Value {
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

    /// Runs `ops` with a runner that creates `id-<bulkId>` (fails for paths in `fail`);
    /// returns the order run and the response statuses.
    fn run_order(body: Value, fail: &[&str]) -> (Vec<String>, Vec<String>, Value) {
        let mut order = Vec::new();
        let response = execute(parse(&body).unwrap(), |op| {
            order.push(op.path.clone());
            if fail.contains(&op.path.as_str()) {
                return Err(ScimError::invalid_value("refused"));
            }
            Ok(Done {
                status: 201,
                id: op.bulk_id.map(|b| format!("id-{b}")),
                ..Done::default()
            })
        });
        let statuses = response["Operations"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o["status"].as_str().unwrap().to_string())
            .collect();
        (order, statuses, response)
    }

    #[test]
    fn runs_in_passes_over_the_request() {
        let op = |path: &str, id: &str, refers: Option<&str>| {
            let mut data = json!({"userName": path});
            if let Some(r) = refers {
                data["manager"] = json!({"value": format!("bulkId:{r}")});
            }
            json!({"method": "POST", "path": path, "bulkId": id, "data": data})
        };
        // `/0` waits on `c`, created after `/1` and `/2`; `/3` comes later in the same
        // pass as before: `/0` runs in the second pass.
        let (order, statuses, _) = run_order(
            json!({"Operations": [op("/0", "a", Some("c")), op("/1", "b", None), op("/2", "c", None), op("/3", "d", Some("a"))]}),
            &[],
        );
        assert_eq!(order, ["/1", "/2", "/0", "/3"]);
        assert_eq!(statuses, ["201"; 4]);
        // A reference resolved earlier in the same pass is used at once.
        let (order, _, _) = run_order(
            json!({"Operations": [op("/0", "a", None), op("/1", "b", Some("a")), op("/2", "c", Some("b"))]}),
            &[],
        );
        assert_eq!(order, ["/0", "/1", "/2"]);
        // Reverse chain: one per pass, and every reference substituted.
        let (order, _, _) = run_order(
            json!({"Operations": [op("/0", "a", Some("b")), op("/1", "b", Some("c")), op("/2", "c", None)]}),
            &[],
        );
        assert_eq!(order, ["/2", "/1", "/0"]);
        // Unknown, circular and failed references: 409 after the rest, in request order.
        let (order, statuses, response) = run_order(
            json!({"Operations": [
                op("/0", "a", Some("nowhere")),
                op("/1", "b", Some("c")),
                op("/2", "c", Some("b")),
                op("/3", "d", None),
                op("/4", "e", Some("d")),
                op("/5", "f", None)
            ]}),
            &["/3"],
        );
        assert_eq!(order, ["/3", "/5"]);
        assert_eq!(statuses, ["409", "409", "409", "400", "409", "201"]);
        assert_eq!(response["Operations"][0]["bulkId"], "a");
        // failOnErrors stops everything, 409s included.
        let mut body = json!({"Operations": [op("/0", "a", Some("nowhere")), op("/1", "b", None), op("/2", "c", None)]});
        body["failOnErrors"] = json!(1);
        let (order, statuses, _) = run_order(body, &["/1"]);
        assert_eq!(order, ["/1"]);
        assert_eq!(statuses, ["400"]);
    }

    #[test]
    fn substitutes_only_references() {
        let body = json!({"Operations": [
            {"method": "POST", "path": "/Users", "bulkId": "u", "data": {"userName": "u"}},
            {"method": "PATCH", "path": "/Groups/bulkId:g/x", "data": {"Operations": [
                {"op": "add", "path": "members", "value": [{"value": "bulkId:u"}, {"value": "bulkId:u"}]},
                {"op": "replace", "path": "title", "value": "see bulkId:u"},
                {"op": "replace", "path": "x", "value": "a/bulkId:u/b"}]}},
            {"method": "POST", "path": "/Groups", "bulkId": "g", "data": {"displayName": "g"}}
        ]});
        let req = parse(&body).unwrap();
        assert_eq!(req.operations[1].references(), ["g", "u"]);
        let mut seen = None;
        execute(req, |op| {
            if op.method == Method::Patch {
                seen = Some(op.clone());
            }
            Ok(Done {
                status: 201,
                id: op.bulk_id.map(|b| b.to_uppercase()),
                ..Done::default()
            })
        });
        let op = seen.unwrap();
        assert_eq!(op.path, "/Groups/G/x");
        let data = op.data.unwrap();
        assert_eq!(data["Operations"][0]["value"][1]["value"], "U");
        assert_eq!(data["Operations"][1]["value"], "see bulkId:u");
        assert_eq!(data["Operations"][2]["value"], "a/U/b");
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
