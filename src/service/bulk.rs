//! Executing a bulk request: operations run one by one, each in its own transaction (RFC
//! 7644 bulk is not atomic), in an order that resolves `bulkId` references.

use std::collections::HashMap;

use serde_json::Value;

use super::{groups, users, DirectoryScope};
use crate::error::Error;
use crate::scim::bulk::{self, BulkRequest, Method, Operation, Target};
use crate::scim::resource::EtagCondition;
use crate::scim::ScimError;
use crate::store::AnyConnection;

/// Runs the request and returns the BulkResponse. Operations whose references never
/// resolve (unknown or circular `bulkId`s) answer 409, as RFC 7644 §3.7.1 allows.
pub fn execute(conn: &mut AnyConnection, scope: &DirectoryScope, request: BulkRequest) -> Value {
    let mut ids: HashMap<String, String> = HashMap::new();
    let mut results: Vec<Option<Value>> = vec![None; request.operations.len()];
    let mut pending: Vec<usize> = (0..request.operations.len()).collect();
    let mut errors = 0usize;
    let limit_reached = |errors: usize| request.fail_on_errors.is_some_and(|n| errors >= n);

    'passes: while !pending.is_empty() {
        let mut progressed = false;
        let mut still = Vec::new();
        for &i in &pending {
            if limit_reached(errors) {
                break 'passes;
            }
            let op = &request.operations[i];
            if !op.references().iter().all(|r| ids.contains_key(r)) {
                still.push(i);
                continue;
            }
            progressed = true;
            let mut op = op.clone();
            op.resolve(&ids);
            let outcome = run(conn, scope, &op);
            results[i] = Some(match outcome {
                Ok((status, id, location, version)) => {
                    if let (Some(b), Some(id)) = (&op.bulk_id, id) {
                        ids.insert(b.clone(), id);
                    }
                    bulk::success(&op, status, location, version)
                }
                Err(e) => {
                    errors += 1;
                    bulk::failure(&op, &e.to_scim())
                }
            });
        }
        pending = still;
        if !progressed {
            for &i in &pending {
                if limit_reached(errors) {
                    break;
                }
                errors += 1;
                let op = &request.operations[i];
                let e = ScimError::new(
                    409,
                    None,
                    "unresolvable bulkId reference (unknown or circular)",
                );
                results[i] = Some(bulk::failure(op, &e));
            }
            break;
        }
    }
    bulk::response(results.into_iter().flatten().collect())
}

type Outcome = (u16, Option<String>, Option<String>, Option<String>);

/// One operation: its status, the id it created, location and version.
fn run(conn: &mut AnyConnection, scope: &DirectoryScope, op: &Operation) -> Result<Outcome, Error> {
    let if_match = op.version.as_deref().map(EtagCondition::parse);
    let data = op.data.clone().unwrap_or(Value::Null);
    let target = op.target()?;
    let rendered = match (op.method, &target) {
        (Method::Post, Target::Users) => Some((
            201,
            users::create(conn, scope, data)?.render(&scope.base_url),
        )),
        (Method::Post, Target::Groups) => Some((
            201,
            groups::create(conn, scope, data)?.render(&scope.base_url),
        )),
        (Method::Put, Target::User(id)) => Some((
            200,
            users::replace(conn, scope, id, data, if_match.as_ref())?.render(&scope.base_url),
        )),
        (Method::Put, Target::Group(id)) => Some((
            200,
            groups::replace(conn, scope, id, data, if_match.as_ref(), false)?
                .render(&scope.base_url),
        )),
        (Method::Patch, Target::User(id)) => Some((
            200,
            users::patch(conn, scope, id, data, if_match.as_ref())?.render(&scope.base_url),
        )),
        (Method::Patch, Target::Group(id)) => Some((
            200,
            groups::patch(conn, scope, id, data, if_match.as_ref(), false)?.render(&scope.base_url),
        )),
        (Method::Delete, Target::User(id)) => {
            users::delete(conn, scope, id, if_match.as_ref())?;
            None
        }
        (Method::Delete, Target::Group(id)) => {
            groups::delete(conn, scope, id, if_match.as_ref())?;
            None
        }
        _ => {
            return Err(ScimError::invalid_path(format!(
                "{} {} is not a bulk target",
                op.method.as_str(),
                op.path
            ))
            .into())
        }
    };
    Ok(match rendered {
        Some((status, r)) => (
            status,
            r["id"].as_str().map(str::to_string),
            r["meta"]["location"].as_str().map(str::to_string),
            r["meta"]["version"].as_str().map(str::to_string),
        ),
        None => (204, None, None, None),
    })
}
