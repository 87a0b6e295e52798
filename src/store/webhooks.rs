//! Webhook endpoints and the delivery state kept on them (the lease and when the head of
//! their queue is due). Queue rows themselves live in [`super::deliveries`].

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::webhook_endpoints::{self, dsl as w};
use super::{AnyConnection, Backend};
use crate::error::Error;
use crate::secrets::{Sealed, Sealer, Secret};

/// Id of the endpoint configured by `SCIMGATE_WEBHOOK_URL` (every directory's `dsync.*`).
pub const GLOBAL_ENDPOINT_ID: &str = "whe_global";

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = webhook_endpoints)]
pub struct EndpointRow {
    pub id: String,
    pub directory_id: Option<String>,
    pub url: String,
    /// Sealed; `Debug` does not show it.
    pub secret: Sealed,
    pub previous_secret: Option<Sealed>,
    pub previous_secret_expires_at: Option<NaiveDateTime>,
    pub event_types: Option<String>,
    pub enabled: bool,
    pub disabled_reason: Option<String>,
    pub batch_size: Option<i64>,
    pub is_primary: bool,
    pub retired: bool,
    pub next_attempt_at: Option<NaiveDateTime>,
    pub lease_until: Option<NaiveDateTime>,
    pub lease_owner: Option<String>,
    pub fanout_version: i64,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

impl EndpointRow {
    /// Whether this endpoint takes events of `event_type` (no list: every type).
    pub fn subscribes(&self, event_type: &str) -> bool {
        match &self.event_types {
            None => true,
            Some(json) => serde_json::from_str::<Vec<String>>(json)
                .map(|list| list.iter().any(|t| t == event_type))
                .unwrap_or(true),
        }
    }

    /// The secrets that sign a delivery at `at`, opened: the current one, then the
    /// previous one while its rotation grace lasts.
    pub fn signing_secrets(
        &self,
        sealer: &Sealer,
        at: NaiveDateTime,
    ) -> Result<Vec<Secret>, Error> {
        let mut out = vec![sealer.open(&self.secret)?];
        if let (Some(prev), Some(until)) = (&self.previous_secret, self.previous_secret_expires_at)
        {
            if at < until {
                // The current secret signs; an old one no key opens only drops out.
                match sealer.open(prev) {
                    Ok(secret) => out.push(secret),
                    Err(e) => {
                        tracing::warn!(endpoint = %self.id, error = %e, "previous webhook secret unreadable; signing with the current one only")
                    }
                }
            }
        }
        Ok(out)
    }
}

/// Fields an admin may change; `None` leaves a field alone, `Some(None)` clears it.
#[derive(Debug, Default, Clone, AsChangeset)]
#[diesel(table_name = webhook_endpoints)]
pub struct EndpointChanges {
    pub url: Option<String>,
    pub secret: Option<Sealed>,
    pub previous_secret: Option<Option<Sealed>>,
    pub previous_secret_expires_at: Option<Option<NaiveDateTime>>,
    pub event_types: Option<Option<String>>,
    pub enabled: Option<bool>,
    pub disabled_reason: Option<Option<String>>,
    pub batch_size: Option<Option<i64>>,
    pub updated_at: Option<NaiveDateTime>,
}

pub fn insert(conn: &mut AnyConnection, row: &EndpointRow) -> Result<(), Error> {
    diesel::insert_into(webhook_endpoints::table)
        .values(row)
        .execute(conn)?;
    Ok(())
}

pub fn get(conn: &mut AnyConnection, id: &str) -> Result<Option<EndpointRow>, Error> {
    Ok(webhook_endpoints::table
        .find(id)
        .select(EndpointRow::as_select())
        .first(conn)
        .optional()?)
}

/// A directory's live endpoints, the primary first, then oldest first.
pub fn list(conn: &mut AnyConnection, directory_id: &str) -> Result<Vec<EndpointRow>, Error> {
    Ok(webhook_endpoints::table
        .filter(w::directory_id.eq(directory_id))
        .filter(w::retired.eq(false))
        .order((w::is_primary.desc(), w::created_at.asc(), w::id.asc()))
        .select(EndpointRow::as_select())
        .load(conn)?)
}

pub fn primary(conn: &mut AnyConnection, directory_id: &str) -> Result<Option<EndpointRow>, Error> {
    Ok(webhook_endpoints::table
        .filter(w::directory_id.eq(directory_id))
        .filter(w::is_primary.eq(true))
        .filter(w::retired.eq(false))
        .select(EndpointRow::as_select())
        .first(conn)
        .optional()?)
}

pub fn update(conn: &mut AnyConnection, id: &str, changes: &EndpointChanges) -> Result<(), Error> {
    diesel::update(webhook_endpoints::table.find(id))
        .set(changes)
        .execute(conn)?;
    Ok(())
}

/// Deletes an endpoint with its queue.
pub fn delete(conn: &mut AnyConnection, id: &str) -> Result<(), Error> {
    super::deliveries::delete_for_endpoint(conn, id)?;
    diesel::delete(webhook_endpoints::table.find(id)).execute(conn)?;
    Ok(())
}

/// A deleted directory's endpoints stop receiving new events but drain their queue (its
/// last event, `dsync.deleted`); [`purge_retired`] removes them once empty.
pub fn retire_for_directory(conn: &mut AnyConnection, directory_id: &str) -> Result<(), Error> {
    diesel::update(webhook_endpoints::table.filter(w::directory_id.eq(directory_id)))
        .set(w::retired.eq(true))
        .execute(conn)?;
    Ok(())
}

/// Removes retired endpoints whose queue is empty, and disabled ones (no admin can
/// enable an endpoint of a deleted directory again).
pub fn purge_retired(conn: &mut AnyConnection) -> Result<usize, Error> {
    use super::schema::deliveries::dsl as dl;
    let idle: Vec<(String, bool)> = webhook_endpoints::table
        .filter(w::retired.eq(true))
        .filter(w::next_attempt_at.is_null().or(w::enabled.eq(false)))
        .select((w::id, w::enabled))
        .load(conn)?;
    let mut n = 0;
    for (id, enabled) in idle {
        let pending: i64 = super::schema::deliveries::table
            .filter(dl::endpoint_id.eq(&id))
            .filter(dl::status.eq(super::deliveries::PENDING))
            .count()
            .get_result(conn)?;
        if pending == 0 || !enabled {
            delete(conn, &id)?;
            n += 1;
        }
    }
    Ok(n)
}

/// Marks endpoints as having work after a fan-out or replay queued deliveries for them,
/// and bumps their fan-out counter. An endpoint already due (or waiting to retry its
/// head) keeps its time: the new work queues behind the head.
pub fn mark_due(conn: &mut AnyConnection, ids: &[String], now: NaiveDateTime) -> Result<(), Error> {
    use diesel::dsl::sql;
    use diesel::sql_types::{Nullable, Timestamp};
    if ids.is_empty() {
        return Ok(());
    }
    diesel::update(webhook_endpoints::table.filter(w::id.eq_any(ids)))
        .set((
            w::next_attempt_at.eq(sql::<Nullable<Timestamp>>("COALESCE(next_attempt_at, ")
                .bind::<Timestamp, _>(now)
                .sql(")")),
            w::fanout_version.eq(w::fanout_version + 1),
        ))
        .execute(conn)?;
    Ok(())
}

/// Makes an endpoint due now even if it was waiting to retry its head (a replay reset
/// that head).
pub fn mark_due_now(conn: &mut AnyConnection, id: &str, now: NaiveDateTime) -> Result<(), Error> {
    diesel::update(webhook_endpoints::table.find(id))
        .set((
            w::next_attempt_at.eq(Some(now)),
            w::fanout_version.eq(w::fanout_version + 1),
        ))
        .execute(conn)?;
    Ok(())
}

/// Leases up to `limit` enabled endpoints whose queue head is due and that no instance
/// holds, for `owner` until `lease_until` (see [`super::claim_leased`]).
pub fn claim(
    conn: &mut AnyConnection,
    owner: &str,
    now: NaiveDateTime,
    lease_until: NaiveDateTime,
    exclude: &[String],
    limit: i64,
) -> Result<Vec<String>, Error> {
    let not_in = if exclude.is_empty() {
        String::new()
    } else {
        // Ids are ours (whe_<hex> or the global id), never client text: safe to inline
        // after a character check.
        let list: Vec<String> = exclude
            .iter()
            .filter(|id| {
                id.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
            })
            .map(|id| format!("'{id}'"))
            .collect();
        if list.is_empty() {
            String::new()
        } else {
            format!(" AND id NOT IN ({})", list.join(", "))
        }
    };
    super::claim_leased(
        conn,
        super::Leased {
            table: "webhook_endpoints",
            key: "id",
            clause: &format!("enabled AND next_attempt_at IS NOT NULL{not_in}"),
        },
        owner,
        now,
        lease_until,
        limit,
    )
}

/// Extends `owner`'s lease to `lease` from now, if it still holds it: false when the
/// lease ran out (another instance may have taken the endpoint over). Nothing may be
/// recorded for an endpoint whose lease was lost.
pub fn renew(
    conn: &mut AnyConnection,
    id: &str,
    owner: &str,
    lease: std::time::Duration,
) -> Result<bool, Error> {
    let t = super::now();
    let n = diesel::update(
        webhook_endpoints::table
            .find(id)
            .filter(w::lease_owner.eq(owner))
            .filter(w::lease_until.gt(t)),
    )
    .set(w::lease_until.eq(super::later(t, lease)))
    .execute(conn)?;
    Ok(n == 1)
}

/// Gives the endpoint back with its head due at `next` (`None`: queue empty). Marking it
/// idle only happens if no fan-out came in since `seen_version`, so no work is stranded.
pub fn release(
    conn: &mut AnyConnection,
    id: &str,
    owner: &str,
    next: Option<NaiveDateTime>,
    seen_version: i64,
) -> Result<bool, Error> {
    let mine = webhook_endpoints::table
        .find(id)
        .filter(w::lease_owner.eq(owner));
    let n = match next {
        Some(at) => diesel::update(mine)
            .set((
                w::next_attempt_at.eq(Some(at)),
                w::lease_until.eq(None::<NaiveDateTime>),
                w::lease_owner.eq(None::<String>),
            ))
            .execute(conn)?,
        None => diesel::update(mine.filter(w::fanout_version.eq(seen_version)))
            .set((
                w::next_attempt_at.eq(None::<NaiveDateTime>),
                w::lease_until.eq(None::<NaiveDateTime>),
                w::lease_owner.eq(None::<String>),
            ))
            .execute(conn)?,
    };
    Ok(n == 1)
}

/// Releases every lease `owner` holds (graceful shutdown), leaving the work due.
pub fn release_all(conn: &mut AnyConnection, owner: &str) -> Result<(), Error> {
    diesel::update(webhook_endpoints::table.filter(w::lease_owner.eq(owner)))
        .set((
            w::lease_until.eq(None::<NaiveDateTime>),
            w::lease_owner.eq(None::<String>),
        ))
        .execute(conn)?;
    Ok(())
}

/// Stops deliveries to an endpoint (its receiver answered 410 Gone).
pub fn disable(
    conn: &mut AnyConnection,
    id: &str,
    reason: &str,
    now: NaiveDateTime,
) -> Result<(), Error> {
    diesel::update(webhook_endpoints::table.find(id))
        .set((
            w::enabled.eq(false),
            w::disabled_reason.eq(Some(reason)),
            w::updated_at.eq(now),
        ))
        .execute(conn)?;
    Ok(())
}

/// An endpoint's stored secrets, as read for sealing or re-keying.
#[derive(Debug, Queryable, Selectable)]
#[diesel(table_name = webhook_endpoints)]
pub struct StoredSecrets {
    pub id: String,
    pub directory_id: Option<String>,
    pub is_primary: bool,
    pub secret: Sealed,
    pub previous_secret: Option<Sealed>,
}

/// Every endpoint's stored secrets (retired ones too: they still deliver their queue).
pub fn stored_secrets(conn: &mut AnyConnection) -> Result<Vec<StoredSecrets>, Error> {
    Ok(webhook_endpoints::table
        .order(w::id.asc())
        .select(StoredSecrets::as_select())
        .load(conn)?)
}

/// Replaces an endpoint's secrets if they are still `old` (compare and set, so a change
/// made meanwhile by an admin or another instance is never overwritten). False when they
/// had changed.
pub fn replace_secrets(
    conn: &mut AnyConnection,
    old: &StoredSecrets,
    secret: &Sealed,
    previous: Option<&Sealed>,
) -> Result<bool, Error> {
    let target = webhook_endpoints::table
        .find(&old.id)
        .filter(w::secret.eq(&old.secret));
    let set = (w::secret.eq(secret), w::previous_secret.eq(previous));
    let n = match &old.previous_secret {
        Some(p) => diesel::update(target.filter(w::previous_secret.eq(p)))
            .set(set)
            .execute(conn)?,
        None => diesel::update(target.filter(w::previous_secret.is_null()))
            .set(set)
            .execute(conn)?,
    };
    Ok(n == 1)
}

/// After secrets stored in plaintext were sealed, on SQLite: rebuilds the file and empties
/// the write-ahead log, so the replaced plaintext does not linger in freed pages or old
/// frames. (PostgreSQL keeps old row versions until autovacuum reuses their space; see
/// the README.)
pub fn scrub_replaced(conn: &mut AnyConnection) -> Result<(), Error> {
    use diesel::connection::SimpleConnection;
    if conn.backend() == Backend::Sqlite {
        conn.batch_execute("VACUUM; PRAGMA wal_checkpoint(TRUNCATE);")?;
    }
    Ok(())
}

/// Disables an endpoint whose secret was replaced because no configured key opens it.
pub fn disable_for_lost_secret(conn: &mut AnyConnection, id: &str) -> Result<(), Error> {
    disable(
        conn,
        id,
        "its secret was sealed with a lost encryption key: set a new secret, then enable it",
        super::now(),
    )
}

// How a `Sealed` secret maps to a TEXT column (here and in `directories`). The type lives
// in `crate::secrets`, which knows nothing of diesel; these impls are what its derives
// would generate, delegating to `String`.
mod sealed_column {
    use diesel::backend::Backend as DieselBackend;
    use diesel::deserialize::{self, FromSql, Queryable};
    use diesel::expression::AsExpression;
    use diesel::serialize::{self, Output, ToSql};
    use diesel::sql_types::{Nullable, Text};

    use crate::secrets::Sealed;

    impl AsExpression<Text> for Sealed {
        type Expression = <String as AsExpression<Text>>::Expression;
        fn as_expression(self) -> Self::Expression {
            AsExpression::<Text>::as_expression(self.as_stored().to_string())
        }
    }

    impl<'a> AsExpression<Text> for &'a Sealed {
        type Expression = <&'a str as AsExpression<Text>>::Expression;
        fn as_expression(self) -> Self::Expression {
            AsExpression::<Text>::as_expression(self.as_stored())
        }
    }

    impl AsExpression<Nullable<Text>> for Sealed {
        type Expression = <String as AsExpression<Nullable<Text>>>::Expression;
        fn as_expression(self) -> Self::Expression {
            AsExpression::<Nullable<Text>>::as_expression(self.as_stored().to_string())
        }
    }

    impl<'a> AsExpression<Nullable<Text>> for &'a Sealed {
        type Expression = <&'a str as AsExpression<Nullable<Text>>>::Expression;
        fn as_expression(self) -> Self::Expression {
            AsExpression::<Nullable<Text>>::as_expression(self.as_stored())
        }
    }

    impl<DB: DieselBackend> ToSql<Text, DB> for Sealed
    where
        str: ToSql<Text, DB>,
    {
        fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, DB>) -> serialize::Result {
            <str as ToSql<Text, DB>>::to_sql(self.as_stored(), out)
        }
    }

    impl<DB: DieselBackend> FromSql<Text, DB> for Sealed
    where
        String: FromSql<Text, DB>,
    {
        fn from_sql(bytes: DB::RawValue<'_>) -> deserialize::Result<Self> {
            String::from_sql(bytes).map(Sealed::from_stored)
        }
    }

    impl<DB: DieselBackend> Queryable<Text, DB> for Sealed
    where
        Self: FromSql<Text, DB>,
    {
        type Row = Self;
        fn build(row: Self) -> deserialize::Result<Self> {
            Ok(row)
        }
    }
}
