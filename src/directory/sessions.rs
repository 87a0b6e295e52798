//! Operators' dashboard sessions (DESIGN.md §8): made when an admin API key signs in,
//! kept in the database (every instance knows them) by the digest of the cookie's token,
//! 8 hours. The CSRF token of a session is derived from its token, so it needs no column
//! and every form of the session carries the same one.

use std::time::Duration;

use crate::error::Error;
use crate::secrets;
use crate::store::sessions::{self as store, SessionRow};
use crate::store::{later, now, write_tx, AnyConnection};

pub const LIFETIME: Duration = Duration::from_secs(8 * 3600);

/// Starts a session (the caller checked the key); returns the cookie's token. Sessions
/// that expired are forgotten here rather than on a timer.
pub fn start(conn: &mut AnyConnection) -> Result<String, Error> {
    let token = secrets::random_token(32)?;
    let t = now();
    let row = SessionRow {
        token_digest: secrets::digest(&token),
        created_at: t,
        expires_at: later(t, LIFETIME),
        ended_at: None,
    };
    write_tx(conn, |c| {
        store::prune(c, t)?;
        store::insert(c, &row)
    })?;
    Ok(token)
}

/// Whether `token` opens a live session.
pub fn is_live(conn: &mut AnyConnection, token: &str) -> Result<bool, Error> {
    Ok(store::live(conn, &secrets::digest(token), now())?.is_some())
}

/// Ends the session of `token` (signing out twice is harmless).
pub fn end(conn: &mut AnyConnection, token: &str) -> Result<(), Error> {
    let digest = secrets::digest(token);
    write_tx(conn, |c| store::end(c, &digest, now()))
}

/// The CSRF token of the session `token`: not the token, and not its stored digest.
pub fn csrf_of(token: &str) -> String {
    secrets::digest(&format!("dashboard-csrf:{token}"))
}

/// Whether a form's `csrf` field belongs to the session `token` (constant time).
pub fn csrf_matches(token: &str, presented: Option<&str>) -> bool {
    presented.is_some_and(|p| !p.is_empty() && secrets::equal(p, &csrf_of(token)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csrf_is_neither_the_token_nor_its_digest() {
        let t = "tok";
        assert_ne!(csrf_of(t), t);
        assert_ne!(csrf_of(t), secrets::digest(t));
        assert!(csrf_matches(t, Some(&csrf_of(t))));
        assert!(!csrf_matches(t, Some("")));
        assert!(!csrf_matches(t, None));
        assert!(!csrf_matches("other", Some(&csrf_of(t))));
    }
}
