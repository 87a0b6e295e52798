//! Enterprise Connect's sealed columns in the start-up sealing pass and `scimgate rekey`:
//! application client secrets, cached provider tokens, conferencing refresh tokens, and callbacks waiting to be sent
//! (their `state` is the integrator's; the code is added at each send, never stored). Compare-and-set, as the webhook secrets' pass.

use crate::error::Error;
use crate::secrets::{count, resealed, SealReport, Sealer};
use crate::store::{applications, authorization_jobs, service_accounts, AnyConnection};

/// Re-seals (with `rekey`) what an older key sealed; reports what no key opens.
pub fn seal_stored_secrets(
    conn: &mut AnyConnection,
    sealer: &Sealer,
    rekey: bool,
    report: &mut SealReport,
) -> Result<(), Error> {
    for (id, stored) in applications::stored_secrets(conn)? {
        let place = format!("application {id} (client secret)");
        if let Some(new) = resealed(sealer, &stored, rekey, &place, report)? {
            let replaced = applications::replace_secret(conn, &id, &stored, &new)?;
            count(report, &stored, replaced);
        }
    }
    for (id, stored) in service_accounts::stored_tokens(conn)? {
        let place = format!("service account {id} (provider token)");
        if let Some(new) = resealed(sealer, &stored, rekey, &place, report)? {
            let replaced = service_accounts::replace_token(conn, &id, &stored, Some(&new))?;
            count(report, &stored, replaced);
        }
    }
    for (id, stored) in service_accounts::stored_refresh_tokens(conn)? {
        let place = format!("service account {id} (provider refresh token)");
        if let Some(new) = resealed(sealer, &stored, rekey, &place, report)? {
            let replaced = service_accounts::replace_refresh_token(conn, &id, &stored, &new)?;
            count(report, &stored, replaced);
        }
    }
    for (id, stored) in authorization_jobs::stored_bodies(conn)? {
        let place = format!("authorization {id} (callback waiting to be sent)");
        if let Some(new) = resealed(sealer, &stored, rekey, &place, report)? {
            let replaced = authorization_jobs::replace_body(conn, &id, &stored, Some(&new))?;
            count(report, &stored, replaced);
        }
    }
    Ok(())
}

/// For a lost key: forgets provider tokens (new ones are minted) and callbacks no key
/// opens (their jobs end; the integrator may ask again). Application client secrets
/// cannot be replaced behind the integrator's back: they stay listed as unreadable, and
/// the application must be deleted and registered again. Returns how many were dropped.
pub fn discard_unreadable(conn: &mut AnyConnection, sealer: &Sealer) -> Result<usize, Error> {
    let lost = |s: &crate::secrets::Sealed| s.key_id().is_some() && sealer.open(s).is_err();
    let mut n = 0;
    for (id, stored) in service_accounts::stored_tokens(conn)? {
        if lost(&stored) && service_accounts::replace_token(conn, &id, &stored, None)? {
            n += 1;
        }
    }
    for (id, stored) in authorization_jobs::stored_bodies(conn)? {
        if lost(&stored) && authorization_jobs::abandon(conn, &id, &stored)? {
            n += 1;
        }
    }
    Ok(n)
}
