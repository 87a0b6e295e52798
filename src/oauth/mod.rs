//! OAuth 2 (RFC 6749) as protocol values: what the authorization server's endpoints say
//! to a client when it errs. Pure data, like [`crate::scim`]: no HTTP framework and no
//! database here; the HTTP layer renders it (`http::error::OAuthFailure`).

pub mod error;
pub mod request;

pub use error::{ErrorCode, OAuthError};
pub use request::{AuthorizeRequest, Grant, RevokeTarget, TokenRequest};
