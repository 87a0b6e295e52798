//! The one error type of the crate. The HTTP layer renders it with one status in the
//! shape of the route: a SCIM error body on SCIM routes, the `{data, error}` envelope on
//! admin routes, an RFC 6749 body on OAuth endpoints, an HTML page on pages.

use crate::oauth::OAuthError;
use crate::scim::ScimError;

/// A client error outside SCIM (the admin API, pages): a status and a message in the
/// API's own words.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{status} {message}")]
pub struct Rejected {
    pub status: u16,
    pub message: String,
}

impl Rejected {
    pub fn new(status: u16, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }
    /// 400: the request is not acceptable as sent.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(400, message)
    }
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(401, message)
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(404, message)
    }
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(409, message)
    }
}

impl From<ScimError> for Rejected {
    /// A protocol check shared with SCIM (e.g. the string limits), said in plain words.
    fn from(e: ScimError) -> Self {
        Self::new(e.status, e.detail)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A client-facing failure with its status and SCIM type.
    #[error(transparent)]
    Scim(#[from] ScimError),
    /// A client-facing failure outside SCIM (admin API, pages).
    #[error(transparent)]
    Rejected(#[from] Rejected),
    /// A client-facing failure of an OAuth endpoint.
    #[error(transparent)]
    OAuth(#[from] OAuthError),
    #[error("database error: {0}")]
    Database(#[from] diesel::result::Error),
    #[error("database unavailable: {0}")]
    Pool(#[from] diesel::r2d2::PoolError),
    #[error("migration failed: {0}")]
    Migration(String),
    #[error("configuration error: {0}")]
    Config(String),
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    /// The HTTP status this error answers with.
    pub fn status(&self) -> u16 {
        match self {
            Self::Scim(e) => e.status,
            Self::Rejected(e) => e.status,
            Self::OAuth(e) => e.status(),
            Self::Pool(_) => 503,
            // The connection died under this request (a restarted or failed-over server):
            // nothing was committed, and the pool has already discarded it.
            Self::Database(diesel::result::Error::DatabaseError(
                diesel::result::DatabaseErrorKind::ClosedConnection
                | diesel::result::DatabaseErrorKind::UnableToSendCommand,
                _,
            )) => 503,
            Self::Database(diesel::result::Error::DatabaseError(
                diesel::result::DatabaseErrorKind::SerializationFailure,
                _,
            )) => 503,
            // A deadlock victim may simply try again (IdPs retry 503s).
            e if e.is_deadlock() => 503,
            // Cancelled by `statement_timeout`: the server was too busy or the query too
            // costly; either way nothing was written.
            e if e.is_statement_timeout() => 503,
            _ => 500,
        }
    }

    /// PostgreSQL chose this transaction as a deadlock's victim (SQLSTATE 40P01, which
    /// diesel does not name).
    pub fn is_deadlock(&self) -> bool {
        matches!(self, Self::Database(diesel::result::Error::DatabaseError(_, info))
            if info.message().contains("deadlock detected"))
    }

    /// PostgreSQL cancelled the statement after `statement_timeout` (SQLSTATE 57014).
    pub fn is_statement_timeout(&self) -> bool {
        matches!(self, Self::Database(diesel::result::Error::DatabaseError(_, info))
            if info.message().contains("statement timeout"))
    }

    /// What the client is told: the detail of a client error, a generic line otherwise
    /// (internals are logged, never returned).
    pub fn public_message(&self) -> String {
        match self {
            Self::Scim(e) => e.detail.clone(),
            Self::Rejected(e) => e.message.clone(),
            Self::OAuth(e) => e.description.clone(),
            _ if self.status() == 503 => "service temporarily unavailable, retry".into(),
            _ => "internal server error".into(),
        }
    }

    /// As a SCIM error, for rendering.
    pub fn to_scim(&self) -> ScimError {
        match self {
            Self::Scim(e) => e.clone(),
            Self::Rejected(e) if e.status == 400 => ScimError::invalid_value(e.message.clone()),
            other => ScimError::new(other.status(), None, other.public_message()),
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// As an OAuth error body: client errors keep their code, anything else is
    /// `server_error` / `temporarily_unavailable` with the public message.
    pub fn to_oauth(&self) -> OAuthError {
        use crate::oauth::ErrorCode;
        match self {
            Self::OAuth(e) => e.clone(),
            other => {
                let code = match other.status() {
                    503 => ErrorCode::TemporarilyUnavailable,
                    s if s >= 500 => ErrorCode::ServerError,
                    401 => ErrorCode::InvalidClient,
                    _ => ErrorCode::InvalidRequest,
                };
                OAuthError::new(code, other.public_message())
            }
        }
    }
}
