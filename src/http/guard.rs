//! Requests refused before routing: a NUL byte in the path or the query string. No id
//! can hold one (PostgreSQL text cannot), so a path with one names nothing (404) and a
//! parameter with one is bad input (400) — answered here, before any handler or query.

use actix_web::dev::ServiceRequest;

use super::error::{AdminFailure, ScimFailure};
use crate::error::Rejected;

/// The refusal for `req`, rendered in its route family's error shape, if it carries NUL.
pub fn refuse_nul(req: &ServiceRequest) -> Option<actix_web::HttpResponse> {
    use actix_web::ResponseError;
    let error = if has_nul(req.path()) {
        Rejected::not_found("no resource has that path")
    } else if has_nul(req.query_string()) {
        Rejected::invalid("a query parameter contains a NUL character")
    } else {
        return None;
    };
    Some(if req.path().starts_with("/api/scim/") {
        ScimFailure(error.into()).error_response()
    } else {
        AdminFailure::from(error).error_response()
    })
}

/// NUL, percent-encoded or raw.
fn has_nul(s: &str) -> bool {
    s.contains("%00") || s.contains('\0')
}
