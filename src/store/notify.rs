//! Instances wake each other through PostgreSQL's LISTEN/NOTIFY: a transaction that
//! queues deliveries says so on [`CHANNEL`], and every instance's [`Listener`] hears it
//! once the transaction commits, so another instance's dispatcher claims the work at
//! once instead of at its next poll. An instance that cannot follow a directory's new
//! events (another holds its provisioning cursor) says so too. SQLite has one instance: nothing to say.

use diesel::connection::SimpleConnection;
use diesel::{Connection, PgConnection, RunQueryDsl};

use super::{AnyConnection, Backend, DatabaseUrl};
use crate::error::Error;

/// The channel every instance listens on.
pub const CHANNEL: &str = "scimgate";
/// The payload of "deliveries were queued".
pub const DELIVERIES: &str = "deliveries";
/// The prefix of "a directory has events to provision" (the directory id follows).
pub const PROVISIONING: &str = "provisioning:";

/// Inside a write transaction: tells the other instances (after commit) that `what`.
pub fn notify(conn: &mut AnyConnection, what: &str) -> Result<(), Error> {
    if conn.backend() == Backend::Postgres {
        diesel::sql_query("SELECT pg_notify($1, $2)")
            .bind::<diesel::sql_types::Text, _>(CHANNEL)
            .bind::<diesel::sql_types::Text, _>(what)
            .execute(conn)?;
    }
    Ok(())
}

/// A connection of its own that listens on [`CHANNEL`]. Reading what arrived sends
/// nothing to the server (libpq consumes what the socket holds).
pub struct Listener {
    conn: PgConnection,
}

impl Listener {
    /// `None` on SQLite.
    pub fn connect(url: &DatabaseUrl) -> Result<Option<Self>, Error> {
        let DatabaseUrl::Postgres(url) = url else {
            return Ok(None);
        };
        // The listener never sends, so a dropped connection (a NAT or load balancer
        // forgetting an idle one) would go unnoticed: TCP keepalives keep it alive and
        // find it dead. A connect that hangs gives up.
        let sep = if url.contains('?') { '&' } else { '?' };
        let url = format!(
            "{url}{sep}keepalives=1&keepalives_idle=30&keepalives_interval=10&keepalives_count=3&connect_timeout=10"
        );
        let mut conn = PgConnection::establish(&url)
            .map_err(|e| Error::Internal(format!("listener connection: {e}")))?;
        conn.batch_execute(&format!("LISTEN {CHANNEL}"))?;
        Ok(Some(Self { conn }))
    }

    /// The payloads received since the last call (none when nothing arrived).
    pub fn received(&mut self) -> Result<Vec<String>, Error> {
        let mut out = Vec::new();
        for n in self.conn.notifications_iter() {
            out.push(n?.payload);
        }
        Ok(out)
    }
}
