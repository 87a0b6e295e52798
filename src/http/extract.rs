//! Request extractors: SCIM bearer authentication, admin API keys, bounded bodies.

use std::future::Future;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::{web, FromRequest, HttpRequest};
use futures_util::StreamExt;
use serde_json::Value;

use super::error::{AdminFailure, ScimFailure};
use super::AppState;
use crate::directory::{directories, DirectoryScope};
use crate::error::Error;
use crate::scim::ScimError;

fn state(req: &HttpRequest) -> Result<web::Data<AppState>, Error> {
    req.app_data::<web::Data<AppState>>()
        .cloned()
        .ok_or_else(|| Error::Internal("application state missing".into()))
}

/// The credential after the scheme word of `Authorization` (`Bearer x`, `Api-Key x`).
pub fn credential<'r>(req: &'r HttpRequest, schemes: &[&str]) -> Option<&'r str> {
    let value = req.headers().get("authorization")?.to_str().ok()?.trim();
    let (scheme, rest) = value.split_once(' ')?;
    schemes
        .iter()
        .any(|s| s.eq_ignore_ascii_case(scheme))
        .then(|| rest.trim())
        .filter(|t| !t.is_empty())
}

/// An authenticated SCIM request: the directory of the path, opened by its bearer token.
pub struct ScimAuth(pub DirectoryScope);

impl FromRequest for ScimAuth {
    type Error = ScimFailure;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            let state = state(&req)?;
            let id = req
                .match_info()
                .get("directory_id")
                .unwrap_or_default()
                .to_string();
            let token = credential(&req, &["Bearer"]).map(str::to_string);
            if !crate::directory::is_resource_id(&id) {
                // Not a directory id: the same 401 as an unknown one, and no query.
                return Err(Error::from(ScimError::unauthorized(
                    "missing or invalid bearer token",
                ))
                .into());
            }
            let row = match state.directories.get(&id) {
                Some(row) => row,
                None => {
                    let lookup = id.clone();
                    let row = state
                        .db
                        .run(move |c| directories::find(c, &lookup))
                        .await?
                        .ok_or_else(|| {
                            Error::from(ScimError::unauthorized("missing or invalid bearer token"))
                        })?;
                    state.directories.put(row.clone());
                    row
                }
            };
            directories::verify(&row, token.as_deref())?;
            Ok(ScimAuth(DirectoryScope::new(row, &state.external_url)))
        })
    }
}

/// An admin request carrying one of the configured API keys.
pub struct AdminAuth;

impl FromRequest for AdminAuth {
    type Error = AdminFailure;
    type Future = std::future::Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let result = (|| {
            let state = state(req)?;
            let presented = credential(req, &["Api-Key", "Bearer"]).unwrap_or("");
            // Every key is compared, so timing does not tell which one nearly matched.
            let ok = state
                .api_keys
                .iter()
                .fold(false, |acc, k| acc | crate::secrets::equal(presented, k));
            if ok && !presented.is_empty() {
                Ok(AdminAuth)
            } else {
                Err(crate::error::Rejected::unauthorized("Unauthorized").into())
            }
        })();
        std::future::ready(result.map_err(AdminFailure))
    }
}

/// Reads a request body up to `limit` bytes (413 beyond) within the configured body
/// timeout (408 beyond) and parses it as JSON (400 `invalidSyntax` when it is not).
pub async fn json_body(
    payload: web::Payload,
    req: &HttpRequest,
    limit: usize,
) -> Result<Value, Error> {
    let body = bounded_body(payload, req, limit).await?;
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ScimError::invalid_syntax("the request body is empty").into());
    }
    serde_json::from_slice(&body)
        .map_err(|e| ScimError::invalid_syntax(format!("the body is not valid JSON: {e}")).into())
}

/// A request body up to `limit` bytes (413 beyond), within the configured body timeout
/// (408 beyond).
pub async fn bounded_body(
    payload: web::Payload,
    req: &HttpRequest,
    limit: usize,
) -> Result<web::BytesMut, Error> {
    let too_large =
        || ScimError::payload_too_large(format!("request body larger than {limit} bytes"));
    if let Some(len) = req
        .headers()
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok())
    {
        if len > limit {
            return Err(too_large().into());
        }
    }
    let read = read_body(payload, limit, too_large);
    Ok(match state(req)?.body_timeout {
        // The whole body, not each chunk: a byte a second would otherwise hold the
        // worker (and whatever it waits for) indefinitely.
        Some(within) => tokio::time::timeout(within, read).await.map_err(|_| {
            ScimError::request_timeout(format!(
                "the request body did not arrive within {} ms",
                within.as_millis()
            ))
        })??,
        None => read.await?,
    })
}

async fn read_body(
    mut payload: web::Payload,
    limit: usize,
    too_large: impl Fn() -> ScimError,
) -> Result<web::BytesMut, ScimError> {
    let mut body = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk
            .map_err(|e| ScimError::invalid_syntax(format!("could not read the body: {e}")))?;
        if body.len() + chunk.len() > limit {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}
