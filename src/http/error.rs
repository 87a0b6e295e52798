//! The crate's one [`Error`] rendered two ways with one status: as a SCIM error on SCIM
//! routes, and in the `{data, error}` envelope on admin routes.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde_json::json;

use crate::error::Error;
use crate::scim::CONTENT_TYPE;

fn log(e: &Error) {
    if e.status() >= 500 {
        tracing::error!(error = %e, "request failed");
    }
}

fn status(e: &Error) -> StatusCode {
    StatusCode::from_u16(e.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

/// An error on a SCIM route.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct ScimFailure(#[from] pub Error);

impl From<crate::scim::ScimError> for ScimFailure {
    fn from(e: crate::scim::ScimError) -> Self {
        Self(e.into())
    }
}

impl ResponseError for ScimFailure {
    fn status_code(&self) -> StatusCode {
        status(&self.0)
    }
    fn error_response(&self) -> HttpResponse {
        log(&self.0);
        let mut r = HttpResponse::build(self.status_code());
        r.content_type(CONTENT_TYPE);
        if self.0.status() == 401 {
            r.insert_header(("WWW-Authenticate", "Bearer realm=\"scimgate\""));
        }
        r.body(self.0.to_scim().to_json().to_string())
    }
}

/// An error on an admin route.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct AdminFailure(#[from] pub Error);

impl From<crate::scim::ScimError> for AdminFailure {
    fn from(e: crate::scim::ScimError) -> Self {
        Self(e.into())
    }
}

impl ResponseError for AdminFailure {
    fn status_code(&self) -> StatusCode {
        status(&self.0)
    }
    fn error_response(&self) -> HttpResponse {
        log(&self.0);
        HttpResponse::build(self.status_code()).json(json!({
            "data": null,
            "error": {"message": self.0.public_message(), "code": self.0.status()},
        }))
    }
}
