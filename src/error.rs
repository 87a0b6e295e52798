//! The one error type of the crate. The HTTP layer maps it to a SCIM error body on SCIM
//! routes and to the `{data, error}` envelope on admin routes, with the same status.

use crate::scim::ScimError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A client-facing failure with its status and SCIM type.
    #[error(transparent)]
    Scim(#[from] ScimError),
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
            Self::Pool(_) => 503,
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
            _ if self.status() == 503 => "service temporarily unavailable, retry".into(),
            _ => "internal server error".into(),
        }
    }

    /// As a SCIM error, for rendering.
    pub fn to_scim(&self) -> ScimError {
        match self {
            Self::Scim(e) => e.clone(),
            other => ScimError::new(other.status(), None, other.public_message()),
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
