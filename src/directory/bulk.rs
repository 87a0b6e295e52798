//! Executing a bulk request: operations run one by one, each in its own transaction (RFC
//! 7644 bulk is not atomic), in an order that resolves `bulkId` references.

use serde_json::Value;

use super::{groups, users, DirectoryScope};
use crate::error::Error;
use crate::scim::bulk::{self, BulkRequest, Done, Method, Operation, Target};
use crate::scim::resource::EtagCondition;
use crate::scim::ScimError;
use crate::store::AnyConnection;

/// Runs the request and returns the BulkResponse (ordering and `bulkId` resolution are
/// [`bulk::execute`]'s).
pub fn execute(conn: &mut AnyConnection, scope: &DirectoryScope, request: BulkRequest) -> Value {
    bulk::execute(request, |op| {
        run(conn, scope, op).map_err(|e| {
            // The client sees a generic line for these; the cause goes to the log.
            if e.status() >= 500 {
                tracing::error!(error = %e, "bulk operation failed");
            }
            e.to_scim()
        })
    })
}

/// One operation, references already resolved: its status, the id it wrote, location
/// and version.
fn run(conn: &mut AnyConnection, scope: &DirectoryScope, op: Operation) -> Result<Done, Error> {
    let if_match = op.version.as_deref().map(EtagCondition::parse);
    let target = op.target()?;
    let data = op.data.unwrap_or(Value::Null);
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
        Some((status, r)) => Done {
            status,
            id: r["id"].as_str().map(str::to_string),
            location: r["meta"]["location"].as_str().map(str::to_string),
            version: r["meta"]["version"].as_str().map(str::to_string),
        },
        None => Done {
            status: 204,
            ..Done::default()
        },
    })
}
