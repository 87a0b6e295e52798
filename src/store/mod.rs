//! Storage: one diesel connection type over SQLite (bundled) or PostgreSQL, an r2d2 pool,
//! embedded migrations and the write-transaction helper. Every query lives in a submodule
//! here and is scoped by directory.

pub mod accounts;
pub mod applications;
pub mod authorization_jobs;
pub mod consent_flows;
pub mod dashboard;
pub mod deliveries;
pub mod directories;
pub mod events;
pub mod filter_sql;
pub mod google_directories;
pub mod groups;
pub mod memberships;
pub mod notify;
pub mod organizational_units;
pub mod provisioning;
pub mod schema;
pub mod service_accounts;
pub mod sessions;
pub mod setup_links;
pub mod tokens;
pub mod users;
pub mod webhooks;

use std::time::Duration;

use diesel::connection::{AnsiTransactionManager, SimpleConnection, TransactionManager};
use diesel::r2d2::{ManageConnection, Pool, PooledConnection};
use diesel::{Connection, PgConnection, SqliteConnection};
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};

use crate::error::Error;

pub const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");
pub const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/postgres");

/// Either backend behind one connection type, so every query is written once.
#[derive(diesel::MultiConnection)]
pub enum AnyConnection {
    Postgres(PgConnection),
    Sqlite(SqliteConnection),
}

impl AnyConnection {
    pub fn backend(&self) -> Backend {
        match self {
            Self::Sqlite(_) => Backend::Sqlite,
            Self::Postgres(_) => Backend::Postgres,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Where the database is, parsed from `SCIMGATE_DATABASE_URL`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatabaseUrl {
    /// A file path for SQLite.
    Sqlite(String),
    /// A libpq connection URL.
    Postgres(String),
}

impl DatabaseUrl {
    /// `sqlite://relative.db`, `sqlite:///absolute.db`, a bare path, or `postgres://…`.
    pub fn parse(url: &str) -> Result<Self, Error> {
        let url = url.trim();
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok(Self::Postgres(url.to_string()));
        }
        let path = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
            .unwrap_or(url);
        if path.is_empty() || path.contains(":memory:") {
            // A pooled :memory: database gives every connection its own empty database.
            return Err(Error::Config(format!(
                "unsupported database URL {url:?}: use sqlite://path.db or postgres://..."
            )));
        }
        Ok(Self::Sqlite(path.to_string()))
    }

    pub fn backend(&self) -> Backend {
        match self {
            Self::Sqlite(_) => Backend::Sqlite,
            Self::Postgres(_) => Backend::Postgres,
        }
    }
}

/// Opens connections by URL scheme, so a PostgreSQL error reaches the log as libpq said it
/// (diesel's MultiConnection `establish` would hide it behind "invalid connection url").
#[derive(Debug)]
pub struct ConnectionManager {
    url: DatabaseUrl,
    /// PostgreSQL's `statement_timeout` on every pooled connection (`None`: no limit).
    statement_timeout: Option<Duration>,
}

impl ManageConnection for ConnectionManager {
    type Connection = AnyConnection;
    type Error = diesel::r2d2::Error;

    fn connect(&self) -> Result<AnyConnection, Self::Error> {
        match &self.url {
            DatabaseUrl::Postgres(url) => {
                let mut c =
                    PgConnection::establish(url).map_err(diesel::r2d2::Error::ConnectionError)?;
                // A statement that runs longer is cancelled (and its client answered 503)
                // instead of holding a connection after its client has gone.
                if let Some(t) = self.statement_timeout.filter(|t| !t.is_zero()) {
                    c.batch_execute(&format!("SET statement_timeout = {}", t.as_millis()))
                        .map_err(diesel::r2d2::Error::QueryError)?;
                }
                Ok(AnyConnection::Postgres(c))
            }
            DatabaseUrl::Sqlite(path) => {
                let mut c = SqliteConnection::establish(path)
                    .map_err(diesel::r2d2::Error::ConnectionError)?;
                // Per-connection settings; WAL itself persists in the file. LIKE must respect
                // case as PostgreSQL's does: filters on case-exact attributes use it.
                // `optimize=0x10002` gathers the planner statistics a long-lived connection
                // needs (SQLite's advice); without them SQLite may plan lookups in a large
                // directory through a directory-wide index instead of the key.
                c.batch_execute(
                    "PRAGMA busy_timeout = 10000; PRAGMA journal_mode = WAL; \
                     PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON; \
                     PRAGMA case_sensitive_like = ON; PRAGMA optimize = 0x10002;",
                )
                .map_err(diesel::r2d2::Error::QueryError)?;
                Ok(AnyConnection::Sqlite(c))
            }
        }
    }

    fn is_valid(&self, conn: &mut AnyConnection) -> Result<(), Self::Error> {
        conn.batch_execute("SELECT 1")
            .map_err(diesel::r2d2::Error::QueryError)
    }

    /// A connection given back mid-panic or with a transaction still open (or its
    /// transaction manager in error) is closed, never handed to the next request.
    fn has_broken(&self, conn: &mut AnyConnection) -> bool {
        std::thread::panicking()
            || <AnyConnection as Connection>::TransactionManager::is_broken_transaction_manager(
                conn,
            )
    }
}

pub type DbPool = Pool<ConnectionManager>;
pub type DbConn = PooledConnection<ConnectionManager>;

/// The pool plus the knowledge of which backend it speaks. Cheap to clone.
#[derive(Clone)]
pub struct Db {
    pool: DbPool,
    backend: Backend,
    /// Where the database is, for connections outside the pool (the listener).
    url: DatabaseUrl,
}

/// How long one PostgreSQL statement of the pool may run by default.
pub const DEFAULT_STATEMENT_TIMEOUT: Duration = Duration::from_secs(5);

impl Db {
    /// Connects, runs pending migrations and returns the pool, with the default
    /// statement timeout.
    pub fn open(url: &str) -> Result<Self, Error> {
        Self::open_with(url, Some(DEFAULT_STATEMENT_TIMEOUT))
    }

    /// As [`Db::open`], with PostgreSQL statements of the pool cancelled after
    /// `statement_timeout` (`None` or zero: never). Migrations run without it.
    pub fn open_with(url: &str, statement_timeout: Option<Duration>) -> Result<Self, Error> {
        let url = DatabaseUrl::parse(url)?;
        let backend = url.backend();
        let max_size = match backend {
            Backend::Sqlite => 8,
            Backend::Postgres => 16,
        };
        let mut manager = ConnectionManager {
            url: url.clone(),
            statement_timeout: None,
        };
        // Connect once outside the pool so a bad URL fails fast with libpq's own message.
        let mut first = manager
            .connect()
            .map_err(|e| Error::Config(e.to_string()))?;
        run_migrations(&mut first)?;
        drop(first);
        manager.statement_timeout = statement_timeout;
        // No `SELECT 1` on every checkout (a round trip per request): a connection that
        // went bad fails its statement once (503, retryable) and `has_broken` then sees
        // libpq's broken status and discards it.
        let pool = Pool::builder()
            .max_size(max_size)
            .min_idle(Some(1))
            .test_on_check_out(false)
            .connection_timeout(Duration::from_secs(10))
            .build(manager)?;
        Ok(Self { pool, backend, url })
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// A listener for other instances' notifications (`None` on SQLite).
    pub fn listener(&self) -> Result<Option<notify::Listener>, Error> {
        notify::Listener::connect(&self.url)
    }

    /// A connection for blocking code (CLI, tests). Request handlers use [`Db::run`].
    pub fn conn(&self) -> Result<DbConn, Error> {
        Ok(self.pool.get()?)
    }

    /// Runs `f` with a pooled connection on the blocking thread pool, off the async executor.
    pub async fn run<T, F>(&self, f: F) -> Result<T, Error>
    where
        T: Send + 'static,
        F: FnOnce(&mut AnyConnection) -> Result<T, Error> + Send + 'static,
    {
        let pool = self.pool.clone();
        tokio::task::spawn_blocking(move || {
            let mut conn = pool.get()?;
            f(&mut conn)
        })
        .await
        .map_err(|e| Error::Internal(format!("blocking task failed: {e}")))?
    }
}

pub fn run_migrations(conn: &mut AnyConnection) -> Result<(), Error> {
    let result = match conn {
        AnyConnection::Sqlite(c) => c.run_pending_migrations(SQLITE_MIGRATIONS).map(|_| ()),
        AnyConnection::Postgres(c) => c.run_pending_migrations(POSTGRES_MIGRATIONS).map(|_| ()),
    };
    result.map_err(|e| Error::Migration(e.to_string()))
}

/// Runs `f` in a write transaction. SQLite gets `BEGIN IMMEDIATE`: a deferred transaction
/// that reads and then writes cannot wait on the busy handler in WAL mode and fails with
/// "database is locked" under concurrency.
pub fn write_tx<T>(
    conn: &mut AnyConnection,
    f: impl FnOnce(&mut AnyConnection) -> Result<T, Error>,
) -> Result<T, Error> {
    match conn {
        AnyConnection::Sqlite(c) => {
            AnsiTransactionManager::begin_transaction_sql(c, "BEGIN IMMEDIATE")?
        }
        AnyConnection::Postgres(c) => AnsiTransactionManager::begin_transaction(c)?,
    }
    // A panic inside `f` must not leave the transaction open on a pooled connection: on
    // SQLite that holds the write lock for every tenant, on PostgreSQL later requests on
    // that connection would run inside it and never commit. Roll back, then keep
    // unwinding (the pool also discards a connection returned while panicking).
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(conn)));
    let rollback = |conn: &mut AnyConnection| {
        if let Err(e) =
            <AnyConnection as Connection>::TransactionManager::rollback_transaction(conn)
        {
            tracing::error!(error = %e, "rollback failed");
        }
    };
    match outcome {
        Ok(Ok(value)) => {
            <AnyConnection as Connection>::TransactionManager::commit_transaction(conn)?;
            Ok(value)
        }
        Ok(Err(e)) => {
            rollback(conn);
            Err(e)
        }
        Err(panic) => {
            rollback(conn);
            std::panic::resume_unwind(panic)
        }
    }
}

/// Lifts the statement timeout for the rest of the current transaction, for the few
/// writes whose size is the data's, not a client's choice (deleting a whole directory,
/// pruning logs).
pub fn without_statement_timeout(conn: &mut AnyConnection) -> Result<(), Error> {
    if conn.backend() == Backend::Postgres {
        conn.batch_execute("SET LOCAL statement_timeout = 0")?;
    }
    Ok(())
}

/// Runs `f` without the statement timeout: on PostgreSQL in a transaction of its own
/// (`SET LOCAL` ends with it), on SQLite as it is (no timeout there).
pub fn unbounded<T>(
    conn: &mut AnyConnection,
    f: impl FnOnce(&mut AnyConnection) -> Result<T, Error>,
) -> Result<T, Error> {
    match conn.backend() {
        Backend::Postgres => conn.transaction(|c| {
            without_statement_timeout(c)?;
            f(c)
        }),
        Backend::Sqlite => f(conn),
    }
}

/// One round trip: is the database there?
pub fn ping(conn: &mut AnyConnection) -> Result<(), Error> {
    Ok(conn.batch_execute("SELECT 1")?)
}

/// Periodic upkeep: on SQLite, refreshes the planner's statistics where they went stale
/// (`PRAGMA optimize`); PostgreSQL's autovacuum does this itself.
pub fn maintain(conn: &mut AnyConnection) -> Result<(), Error> {
    if conn.backend() == Backend::Sqlite {
        conn.batch_execute("PRAGMA optimize;")?;
    }
    Ok(())
}

/// Rows of a directory's `table` by id (in id order), in statements of up to 5 000 ids,
/// with a PostgreSQL row-lock `clause` (`FOR UPDATE`, `FOR KEY SHARE` or none) held until
/// the write transaction ends. SQLite has no row locks: its writers take turns.
pub fn select_by_ids<T>(
    conn: &mut AnyConnection,
    table: &str,
    directory_id: &str,
    ids: &[String],
    clause: &str,
) -> Result<Vec<T>, Error>
where
    T: diesel::QueryableByName<MultiBackend> + 'static,
{
    use diesel::RunQueryDsl;
    let postgres = conn.backend() == Backend::Postgres;
    let mut out = Vec::with_capacity(ids.len());
    for chunk in ids.chunks(5000) {
        let mut sql = format!(
            "SELECT * FROM {table} WHERE directory_id = ? AND id IN ({}) ORDER BY id",
            vec!["?"; chunk.len()].join(", ")
        );
        if postgres {
            sql = number_placeholders(&format!("{sql} {clause}"));
        }
        let values: Vec<SqlValue> = std::iter::once(directory_id)
            .chain(chunk.iter().map(String::as_str))
            .map(|s| SqlValue::Text(s.to_string()))
            .collect();
        out.extend(bind_all(diesel::sql_query(sql).into_boxed(), values.iter()).load::<T>(conn)?);
    }
    Ok(out)
}

/// One row of a directory's `table` by id, locked for the rest of the write transaction
/// on PostgreSQL (`FOR UPDATE`), so concurrent writes of one resource take turns instead
/// of the later overwriting the earlier (SQLite's writers already take turns).
pub fn get_for_update<T>(
    conn: &mut AnyConnection,
    table: &str,
    directory_id: &str,
    id: &str,
) -> Result<Option<T>, Error>
where
    T: diesel::QueryableByName<MultiBackend> + 'static,
{
    Ok(select_by_ids(conn, table, directory_id, &[id.to_string()], "FOR UPDATE")?.pop())
}

/// A read transaction, so multi-statement reads (page + total) see one snapshot.
pub fn read_tx<T>(
    conn: &mut AnyConnection,
    f: impl FnOnce(&mut AnyConnection) -> Result<T, Error>,
) -> Result<T, Error> {
    conn.transaction(f)
}

/// The current time at millisecond precision: what `meta` shows is exactly what is stored,
/// so filters on `meta.created`/`meta.lastModified` agree in SQL and in memory.
pub fn now() -> chrono::NaiveDateTime {
    use chrono::{DurationRound, TimeDelta};
    let t = chrono::Utc::now().naive_utc();
    t.duration_trunc(TimeDelta::milliseconds(1)).unwrap_or(t)
}

/// `t + d`, saturating instead of overflowing (configured delays may be huge).
pub fn later(t: chrono::NaiveDateTime, d: std::time::Duration) -> chrono::NaiveDateTime {
    chrono::Duration::from_std(d)
        .ok()
        .and_then(|d| t.checked_add_signed(d))
        .unwrap_or(chrono::NaiveDateTime::MAX)
}

#[derive(diesel::QueryableByName)]
struct ClaimedKey {
    #[diesel(sql_type = diesel::sql_types::Text)]
    id: String,
}

/// Leases up to `limit` rows of `table` that are due (`next_attempt_at <= now`), match
/// `clause` (trusted SQL of ours, never client text) and no instance holds, for `owner`
/// until `lease_until`; returns their `key`. On PostgreSQL the candidates are taken with
/// `FOR UPDATE SKIP LOCKED`, so instances never block on or double-claim a row. The one
/// claim of webhook endpoints, authorization jobs and provisioning cursors.
/// A table of leased work: its name, its key column, and what else makes a row due.
pub struct Leased<'a> {
    pub table: &'a str,
    pub key: &'a str,
    pub clause: &'a str,
}

pub fn claim_leased(
    conn: &mut AnyConnection,
    queue: Leased<'_>,
    owner: &str,
    now: chrono::NaiveDateTime,
    lease_until: chrono::NaiveDateTime,
    limit: i64,
) -> Result<Vec<String>, Error> {
    use diesel::sql_types::{BigInt, Text, Timestamp};
    use diesel::RunQueryDsl;
    let Leased { table, key, clause } = queue;
    let (skip_locked, p) = match conn.backend() {
        Backend::Postgres => (" FOR UPDATE SKIP LOCKED", ["$1", "$2", "$3", "$4", "$5"]),
        Backend::Sqlite => ("", ["?", "?", "?", "?", "?"]),
    };
    let sql = format!(
        "UPDATE {table} SET lease_until = {p0}, lease_owner = {p1} \
         WHERE {key} IN (SELECT {key} FROM {table} \
             WHERE {clause} AND next_attempt_at <= {p2} \
             AND (lease_until IS NULL OR lease_until < {p3}) \
             ORDER BY next_attempt_at LIMIT {p4}{skip_locked}) \
         RETURNING {key} AS id",
        p0 = p[0],
        p1 = p[1],
        p2 = p[2],
        p3 = p[3],
        p4 = p[4],
    );
    let rows: Vec<ClaimedKey> = diesel::sql_query(sql)
        .bind::<Timestamp, _>(lease_until)
        .bind::<Text, _>(owner)
        .bind::<Timestamp, _>(now)
        .bind::<Timestamp, _>(now)
        .bind::<BigInt, _>(limit)
        .load(conn)?;
    Ok(rows.into_iter().map(|r| r.id).collect())
}

/// True when a diesel error is a unique-constraint violation (a lost race on insert).
pub fn is_unique_violation(e: &Error) -> bool {
    matches!(
        e,
        Error::Database(diesel::result::Error::DatabaseError(
            diesel::result::DatabaseErrorKind::UniqueViolation,
            _
        ))
    )
}

/// Paging of a listing: how many to skip and how many to take.
#[derive(Debug, Clone, Copy)]
pub struct Page {
    pub offset: i64,
    pub limit: i64,
}

/// A value bound into a hand-built statement.
#[derive(Debug, Clone)]
pub enum SqlValue {
    Text(String),
    OptText(Option<String>),
    BigInt(i64),
    OptBigInt(Option<i64>),
    OptBool(Option<bool>),
    Timestamp(chrono::NaiveDateTime),
}

/// Largest number of bound parameters per statement (SQLite allows 32 766, PostgreSQL
/// 65 535).
const MAX_BINDS: usize = 30_000;

/// A multi-row `INSERT`, chunked under the bind limit: set-based writes of many rows
/// (diesel's batch insert does not compile for the multi-backend connection).
pub fn bulk_insert(
    conn: &mut AnyConnection,
    table: &str,
    columns: &[&str],
    rows: &[Vec<SqlValue>],
) -> Result<usize, Error> {
    use diesel::RunQueryDsl;
    let per_chunk = (MAX_BINDS / columns.len().max(1)).max(1);
    let mut inserted = 0;
    for chunk in rows.chunks(per_chunk) {
        let mut sql = insert_sql(table, columns, chunk.len());
        if conn.backend() == Backend::Postgres {
            sql = number_placeholders(&sql);
        }
        inserted +=
            bind_all(diesel::sql_query(sql).into_boxed(), chunk.iter().flatten()).execute(conn)?;
    }
    Ok(inserted)
}

/// `INSERT INTO t (a, b) VALUES (?, ?), (?, ?)…`
fn insert_sql(table: &str, columns: &[&str], rows: usize) -> String {
    let tuple = format!("({})", vec!["?"; columns.len()].join(", "));
    format!(
        "INSERT INTO {table} ({}) VALUES {}",
        columns.join(", "),
        vec![tuple.as_str(); rows].join(", ")
    )
}

type BoxedSql<'a> =
    diesel::query_builder::BoxedSqlQuery<'a, MultiBackend, diesel::query_builder::SqlQuery>;

fn bind_all<'a, 'v>(
    mut q: BoxedSql<'a>,
    values: impl Iterator<Item = &'v SqlValue>,
) -> BoxedSql<'a> {
    use diesel::sql_types::{BigInt, Bool, Nullable, Text, Timestamp};
    for v in values {
        q = match v.clone() {
            SqlValue::Text(s) => q.bind::<Text, _>(s),
            SqlValue::OptText(s) => q.bind::<Nullable<Text>, _>(s),
            SqlValue::BigInt(n) => q.bind::<BigInt, _>(n),
            SqlValue::OptBigInt(n) => q.bind::<Nullable<BigInt>, _>(n),
            SqlValue::OptBool(b) => q.bind::<Nullable<Bool>, _>(b),
            SqlValue::Timestamp(t) => q.bind::<Timestamp, _>(t),
        };
    }
    q
}

/// `?` placeholders as PostgreSQL's `$1, $2, …` (the statement text has no literals).
fn number_placeholders(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + sql.len() / 2);
    let mut n = 0;
    for c in sql.chars() {
        if c == '?' {
            n += 1;
            out.push('$');
            out.push_str(&n.to_string());
        } else {
            out.push(c);
        }
    }
    out
}

/// Rows for one table, for [`insert_atomically`].
pub struct Rows {
    pub table: &'static str,
    pub columns: &'static [&'static str],
    pub rows: Vec<Vec<SqlValue>>,
}

/// Inserts several tables' rows as one unit. On PostgreSQL that is a single statement (a
/// chain of data-modifying CTEs), so a SCIM create is one round trip; on SQLite, one
/// `BEGIN IMMEDIATE` transaction. Call it outside any transaction.
pub fn insert_atomically(conn: &mut AnyConnection, sets: &[Rows]) -> Result<(), Error> {
    let sets: Vec<&Rows> = sets.iter().filter(|s| !s.rows.is_empty()).collect();
    let binds: usize = sets.iter().map(|s| s.rows.len() * s.columns.len()).sum();
    if conn.backend() != Backend::Postgres || binds > MAX_BINDS || sets.len() < 2 {
        return write_tx(conn, |c| {
            for set in &sets {
                bulk_insert(c, set.table, set.columns, &set.rows)?;
            }
            Ok(())
        });
    }
    use diesel::RunQueryDsl;
    let (last, first) = sets
        .split_last()
        .ok_or_else(|| Error::Internal("no rows".into()))?;
    let ctes: Vec<String> = first
        .iter()
        .enumerate()
        .map(|(i, set)| {
            format!(
                "w{i} AS ({})",
                insert_sql(set.table, set.columns, set.rows.len())
            )
        })
        .collect();
    let sql = format!(
        "WITH {} {}",
        ctes.join(", "),
        insert_sql(last.table, last.columns, last.rows.len())
    );
    let values = first
        .iter()
        .chain(std::iter::once(last))
        .flat_map(|set| set.rows.iter().flatten());
    let q = bind_all(
        diesel::sql_query(number_placeholders(&sql)).into_boxed(),
        values,
    );
    q.execute(conn)?;
    Ok(())
}
