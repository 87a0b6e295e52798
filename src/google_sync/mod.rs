//! Google Workspace directories (DESIGN.md §4): a directory of type `google` is not
//! pushed over SCIM but pulled from the Admin SDK as its workspace admin, by domain-wide
//! delegation to the operator's service account. A run lists every user, group and
//! group's members (`users.list`, `groups.list`, `members.list`, paged), maps them to the
//! SCIM resources a pushed directory holds ([`mapping`]), and writes only the differences
//! through `directory/` — so the events, their sequence and the webhooks are those of a
//! SCIM push. What disappeared is deleted only once listing finished: a run that failed
//! part-way changes nothing.
//!
//! One directory at a time per instance, claimed with a lease (`store::claim_leased`) so
//! instances share them. Runs fall due every interval and on an admin's "sync now"; an
//! instance with nothing due sleeps until the next due time (one query per wait, none
//! while idle between).

pub mod mapping;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::sync::Notify;

use crate::directory::{directories, groups, users, DirectoryScope};
use crate::error::{Error, Rejected};
use crate::providers::google::{Google, ListPage, Listing, DIRECTORY_SCOPES};
use crate::providers::{backoff, AccessToken, ProviderError};
use crate::scim::resource::timestamp;
use crate::store::google_directories::{self as store, GoogleDirectoryRow, Outcome};
use crate::store::{self as db, AnyConnection, Db};

/// Attempts of one Admin SDK request that Google answers 429 or 5xx (waits 1 s, 2 s, or
/// as `Retry-After` says) before the run gives up.
const ATTEMPTS: u32 = 3;
/// Users created per write transaction.
const CREATE_BATCH: usize = 1000;
/// Writes per trip to the blocking pool (each its own transaction).
const WRITE_CHUNK: usize = 200;
/// A failed run is tried again this soon (or at the interval, if sooner).
const RETRY_FAILED: Duration = Duration::from_secs(60);

#[derive(Debug, Clone)]
pub struct Settings {
    /// Time between runs of one directory.
    pub interval: Duration,
    /// How long a claim lasts unrenewed (a run renews it as it goes).
    pub lease: Duration,
    /// Base of the URLs in the resources written (`meta.location`).
    pub external_url: String,
}

/// Wakes the worker: a directory was created or asked to sync now.
#[derive(Clone, Default)]
pub struct Handle {
    wake: Arc<Notify>,
}

impl Handle {
    pub fn wake(&self) {
        self.wake.notify_one();
    }
}

/// Told when a run committed events of a directory, so they are numbered and delivered
/// now (the sequencer's wake-up).
pub type Committed = Arc<dyn Fn(&str) + Send + Sync>;

struct Worker {
    db: Db,
    google: Google,
    settings: Settings,
    owner: String,
    committed: Committed,
    /// Tokens by directory, reused across runs until they expire or Google says 401.
    tokens: std::sync::Mutex<HashMap<String, AccessToken>>,
}

/// Starts the worker when Google is configured (without it no Google directory can be
/// created, and nothing runs).
pub fn start(db: Db, google: Option<Google>, settings: Settings, committed: Committed) -> Handle {
    let handle = Handle::default();
    if let Some(google) = google {
        let worker = Arc::new(Worker {
            db,
            google,
            settings,
            owner: format!("google-{}", uuid::Uuid::new_v4().simple()),
            committed,
            tokens: Default::default(),
        });
        tokio::spawn(run(worker, handle.wake.clone()));
    }
    handle
}

async fn run(w: Arc<Worker>, wake: Arc<Notify>) {
    loop {
        let (owner, lease, interval) = (w.owner.clone(), w.settings.lease, w.settings.interval);
        let claimed =
            w.db.run(move |c| {
                let now = db::now();
                store::claim(
                    c,
                    &owner,
                    now,
                    db::later(now, lease),
                    db::later(now, interval),
                )
            })
            .await;
        match claimed {
            Ok(Some(row)) => {
                sync(&w, row).await;
                continue;
            }
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, "claiming a Google directory"),
        }
        let due =
            w.db.run(|c| store::next_due(c, db::now()))
                .await
                .unwrap_or_else(|e| {
                    tracing::warn!(error = %e, "looking for Google directories due");
                    Some(db::later(db::now(), Duration::from_secs(5)))
                });
        // Never longer than the interval (another instance may add a directory), never a
        // busy loop (a due directory another instance just took).
        let wait = due
            .map(|at| (at - db::now()).to_std().unwrap_or_default())
            .unwrap_or(interval)
            .clamp(Duration::from_secs(1), interval.max(Duration::from_secs(1)));
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = wake.notified() => {}
        }
    }
}

/// One run of a claimed directory, and its outcome recorded.
async fn sync(w: &Arc<Worker>, row: GoogleDirectoryRow) {
    let id = row.directory_id.clone();
    let started = Instant::now();
    let mut run = Run::new(w, row);
    let result = run.go().await;
    let wait = Duration::from_secs(run.not_before.load(std::sync::atomic::Ordering::Relaxed));
    let now = db::now();
    let outcome = match &result {
        Ok(counts) => Outcome {
            state: store::SUCCEEDED,
            finished_at: now,
            counts: Some(*counts),
            error: None,
            retry_at: None,
            not_before: None,
        },
        Err(message) => Outcome {
            state: store::FAILED,
            finished_at: now,
            counts: None,
            error: Some(message.clone()),
            retry_at: Some(db::later(now, RETRY_FAILED.min(w.settings.interval))),
            not_before: (!wait.is_zero()).then(|| db::later(now, wait)),
        },
    };
    match &result {
        Ok((users, groups)) => {
            tracing::info!(directory_id = %id, users, groups, ms = started.elapsed().as_millis() as u64, "Google directory synced")
        }
        Err(e) => tracing::warn!(directory_id = %id, error = %e, "Google directory sync failed"),
    }
    let owner = w.owner.clone();
    let finished =
        w.db.run(move |c| store::finish(c, &id, &owner, &outcome))
            .await;
    if let Err(e) = finished {
        tracing::warn!(error = %e, "recording a Google directory sync");
    }
}

/// What a run learned from Google.
struct Listed {
    users: Vec<Value>,
    groups: Vec<Value>,
    /// Google group id → its members.
    members: HashMap<String, Vec<Value>>,
}

struct Run<'a> {
    w: &'a Arc<Worker>,
    row: GoogleDirectoryRow,
    renewed: Instant,
    /// Seconds Google asked to wait that outlast this run (its next run waits them).
    not_before: std::sync::atomic::AtomicU64,
    /// Milliseconds since the run started at each phase's end, for the log.
    started: Instant,
    phases: Vec<(&'static str, u128)>,
}

impl<'a> Run<'a> {
    fn new(w: &'a Arc<Worker>, row: GoogleDirectoryRow) -> Self {
        Self {
            w,
            row,
            renewed: Instant::now(),
            not_before: Default::default(),
            started: Instant::now(),
            phases: Vec::new(),
        }
    }

    async fn go(&mut self) -> Result<(i64, i64), String> {
        let (id, external_url) = (
            self.row.directory_id.clone(),
            self.w.settings.external_url.clone(),
        );
        let scope = self
            .w
            .db
            .run(move |c| directories::get(c, &id))
            .await
            .map(|d| Arc::new(DirectoryScope::new(d, &external_url)))
            .map_err(|e| e.to_string())?;
        // As a deactivated SCIM directory refuses pushes, this one is not pulled.
        if scope.directory.deactivated {
            return Err("the directory is deactivated: not synced".into());
        }
        // The directory's users are read while Google is listed (nothing else writes a
        // Google directory: its SCIM routes are closed, and runs take turns).
        let (db, dir) = (self.w.db.clone(), scope.id().to_string());
        let stored_users =
            tokio::spawn(
                async move { db.run(move |c| load_stored(c, &dir, store::users_of)).await },
            );
        let listed = self.list().await?;
        self.phase("listed");
        let stored_users = stored_users
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?;
        let result = self.write(scope, listed, stored_users).await;
        tracing::debug!(directory_id = %self.row.directory_id, phases = ?self.phases, "Google directory run");
        result
    }

    fn phase(&mut self, name: &'static str) {
        self.phases.push((name, self.started.elapsed().as_millis()));
    }

    /// Extends the lease when a third of it has passed; an error when another instance
    /// took the directory over (or it was deleted).
    async fn keep_lease(&mut self) -> Result<(), String> {
        if self.renewed.elapsed() < self.w.settings.lease / 3 {
            return Ok(());
        }
        let (id, owner, lease) = (
            self.row.directory_id.clone(),
            self.w.owner.clone(),
            self.w.settings.lease,
        );
        let held = self
            .w
            .db
            .run(move |c| store::renew(c, &id, &owner, db::later(db::now(), lease)))
            .await
            .map_err(|e| e.to_string())?;
        if !held {
            return Err("the directory was taken over or deleted during the run".into());
        }
        self.renewed = Instant::now();
        Ok(())
    }

    /// A live token impersonating the directory's admin (kept across runs).
    async fn token(&self) -> Result<String, ProviderError> {
        let id = &self.row.directory_id;
        let early = chrono::Utc::now() + chrono::Duration::seconds(60);
        if let Some(t) = self
            .w
            .tokens
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
        {
            if t.expires_at > early {
                return Ok(t.token.expose().to_string());
            }
        }
        let t = self
            .w
            .google
            .token(&self.row.admin_email, &DIRECTORY_SCOPES)
            .await?;
        let token = t.token.expose().to_string();
        self.w
            .tokens
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id.clone(), t);
        Ok(token)
    }

    fn forget_token(&self) {
        self.w
            .tokens
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.row.directory_id);
    }

    /// One page, retried on 429/5xx with backoff (`Retry-After` honoured), and once with
    /// a new token after a 401.
    async fn page(
        &self,
        listing: Listing<'_>,
        next: Option<&str>,
    ) -> Result<ListPage, ProviderError> {
        let (mut attempt, mut refreshed) = (0, false);
        loop {
            let result = match self.token().await {
                Ok(token) => self.w.google.list(&token, listing, next).await,
                Err(e) => Err(e),
            };
            match result {
                Err(ProviderError::Unauthorized(_)) if !refreshed => {
                    refreshed = true;
                    self.forget_token();
                }
                Err(ProviderError::Unavailable { retry_after, .. }) if attempt + 1 < ATTEMPTS => {
                    let wait = backoff(attempt, retry_after);
                    // A wait longer than the lease would let another instance take the
                    // directory mid-run: this run ends, the next comes after the wait.
                    if wait > self.w.settings.lease / 3 {
                        self.not_before
                            .store(wait.as_secs(), std::sync::atomic::Ordering::Relaxed);
                        return result;
                    }
                    tokio::time::sleep(wait).await;
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    /// Every item of a listing, page by page.
    async fn list_all(&mut self, listing: Listing<'_>) -> Result<Vec<Value>, String> {
        let (mut items, mut next) = (Vec::new(), None::<String>);
        loop {
            let page = self
                .page(listing, next.as_deref())
                .await
                .map_err(|e| e.to_string())?;
            items.extend(page.items);
            self.keep_lease().await?;
            match page.next_page_token {
                Some(t) => next = Some(t),
                None => return Ok(items),
            }
        }
    }

    async fn list(&mut self) -> Result<Listed, String> {
        let users = self.list_all(Listing::Users).await?;
        let groups = self.list_all(Listing::Groups).await?;
        let mut members = HashMap::new();
        for g in &groups {
            if let Some(id) = g.get("id").and_then(Value::as_str) {
                let listed = self.list_all(Listing::Members(id)).await?;
                members.insert(id.to_string(), listed);
            }
        }
        Ok(Listed {
            users,
            groups,
            members,
        })
    }

    /// Reads on the blocking pool.
    async fn read<T: Send + 'static>(
        &mut self,
        f: impl FnOnce(&mut AnyConnection) -> Result<T, Error> + Send + 'static,
    ) -> Result<T, String> {
        let out = self.w.db.run(f).await.map_err(|e| e.to_string());
        self.keep_lease().await?;
        out
    }

    /// Writes on the blocking pool, then wakes the sequencer for what they committed.
    async fn db<T: Send + 'static>(
        &mut self,
        f: impl FnOnce(&mut AnyConnection) -> Result<T, Error> + Send + 'static,
    ) -> Result<T, String> {
        let out = self.w.db.run(f).await.map_err(|e| e.to_string());
        (self.w.committed)(&self.row.directory_id);
        self.keep_lease().await?;
        out
    }

    /// Writes the differences between the directory and `listed`.
    async fn write(
        &mut self,
        scope: Arc<DirectoryScope>,
        listed: Listed,
        stored_users: Vec<mapping::Stored>,
    ) -> Result<(i64, i64), String> {
        let mut failures = Failures::default();

        // Users.
        let mut desired = Vec::with_capacity(listed.users.len());
        for u in &listed.users {
            match mapping::user(u) {
                Some(Ok(pair)) => desired.push(pair),
                Some(Err(e)) => failures.note(format!("user {}: {e}", u["primaryEmail"])),
                None => {}
            }
        }
        self.phase("mapped users");
        let plan = mapping::plan(stored_users, desired);
        self.phase("planned users");
        let mut known = plan.known;
        for chunk in plan.delete.chunks(WRITE_CHUNK) {
            let (s, ids) = (scope.clone(), chunk.to_vec());
            let errs = self
                .db(move |c| Ok(each(ids, |id| users::delete(c, &s, &id, None))))
                .await?;
            failures.extend(errs);
        }
        for chunk in plan.update.chunks(WRITE_CHUNK) {
            let (s, items) = (scope.clone(), chunk.to_vec());
            let errs = self
                .db(move |c| {
                    Ok(each(items, |(id, body)| {
                        users::replace(c, &s, &id, body, None).map(|_| ())
                    }))
                })
                .await?;
            failures.extend(errs);
        }
        for chunk in plan.create.chunks(CREATE_BATCH) {
            let (s, items) = (scope.clone(), chunk.to_vec());
            let (created, errs) = self.db(move |c| Ok(create_users(c, &s, items))).await?;
            known.extend(created);
            failures.extend(errs);
        }
        let user_count = known.len() as i64;
        self.phase("wrote users");

        // Groups.
        let mut desired = Vec::with_capacity(listed.groups.len());
        for g in mapping::groups(&listed.groups) {
            match g {
                Ok(pair) => desired.push(pair),
                Err(e) => failures.note(format!("group: {e}")),
            }
        }
        let dir = scope.id().to_string();
        let stored = self
            .read(move |c| load_stored(c, &dir, store::groups_of))
            .await?;
        let plan = mapping::plan(stored, desired);
        let mut known_groups = plan.known;
        let (s, deletes, updates, creates) = (scope.clone(), plan.delete, plan.update, plan.create);
        let (created, errs) = self
            .db(move |c| {
                let mut errs = each(deletes, |id| groups::delete(c, &s, &id, None));
                errs.extend(each(updates, |(id, body)| {
                    groups::replace(c, &s, &id, body, None, false).map(|_| ())
                }));
                let mut created = Vec::new();
                errs.extend(each(creates, |(google_id, body)| {
                    let view = groups::create(c, &s, body)?;
                    created.push((google_id, view.row.id));
                    Ok(())
                }));
                Ok((created, errs))
            })
            .await?;
        known_groups.extend(created);
        failures.extend(errs);
        let group_count = known_groups.len() as i64;
        self.phase("wrote groups");

        // Memberships: direct members that are users of the directory.
        let wanted: HashMap<String, Vec<String>> = listed
            .members
            .iter()
            .filter_map(|(google_group, members)| {
                let group = known_groups.get(google_group)?;
                let users = mapping::member_user_ids(members)
                    .iter()
                    .filter_map(|g| known.get(g).cloned())
                    .collect();
                Some((group.clone(), users))
            })
            .collect();
        let dir = scope.id().to_string();
        let current = self
            .read(move |c| db::unbounded(c, |c| store::memberships_of(c, &dir)))
            .await?;
        let changes = mapping::membership_changes(&wanted, &current);
        for chunk in changes.chunks(WRITE_CHUNK) {
            let (s, items) = (scope.clone(), chunk.to_vec());
            let errs = self
                .db(move |c| {
                    Ok(each(items, |(group, members)| {
                        groups::set_members(c, &s, &group, members).map(|_| ())
                    }))
                })
                .await?;
            failures.extend(errs);
        }
        self.phase("wrote memberships");
        failures.result((user_count, group_count))
    }
}

/// Writes that failed in a run that otherwise went on: the first few reasons.
#[derive(Default)]
struct Failures {
    count: usize,
    first: Vec<String>,
}

impl Failures {
    fn note(&mut self, reason: String) {
        self.count += 1;
        if self.first.len() < 3 {
            self.first.push(reason);
        }
    }

    fn extend(&mut self, reasons: Vec<String>) {
        reasons.into_iter().for_each(|r| self.note(r));
    }

    fn result<T>(self, value: T) -> Result<T, String> {
        if self.count == 0 {
            return Ok(value);
        }
        Err(format!(
            "{} change(s) could not be written: {}",
            self.count,
            self.first.join("; ")
        ))
    }
}

/// Runs `f` on each item, each its own write; the reasons of those that failed.
fn each<T>(items: Vec<T>, mut f: impl FnMut(T) -> Result<(), Error>) -> Vec<String> {
    items
        .into_iter()
        .filter_map(|item| f(item).err().map(|e| e.public_message()))
        .collect()
}

fn load_stored(
    c: &mut AnyConnection,
    dir: &str,
    read: fn(&mut AnyConnection, &str) -> Result<Vec<store::Existing>, Error>,
) -> Result<Vec<mapping::Stored>, Error> {
    // A whole directory's size, not a client's choice: no statement timeout.
    Ok(db::unbounded(c, |c| read(c, dir))?
        .into_iter()
        .map(|e| mapping::Stored {
            id: e.id,
            external_id: e.external_id,
            raw: e.raw,
        })
        .collect())
}

/// New users in one batch (one transaction); when the batch is refused (a userName
/// taken, the seat limit) one by one, so the others still get in. Returns Google id →
/// our id of those created, and the reasons of those refused.
fn create_users(
    c: &mut AnyConnection,
    scope: &DirectoryScope,
    items: Vec<(String, Value)>,
) -> (Vec<(String, String)>, Vec<String>) {
    let (google_ids, bodies): (Vec<String>, Vec<Value>) = items.iter().cloned().unzip();
    if let Ok(rows) = users::create_many(c, scope, bodies) {
        return (
            google_ids
                .into_iter()
                .zip(rows.into_iter().map(|r| r.id))
                .collect(),
            Vec::new(),
        );
    }
    let (mut created, mut errs) = (Vec::new(), Vec::new());
    for (google_id, body) in items {
        let name = body["userName"].clone();
        match users::create(c, scope, body) {
            Ok(view) => created.push((google_id, view.row.id)),
            Err(e) => errs.push(format!("user {name}: {}", e.public_message())),
        }
    }
    (created, errs)
}

/// Proves the domain-wide delegation a new Google directory relies on: a token with all
/// three scopes impersonating `admin_email`, who must be an administrator with a primary
/// address in `domain`. Returns the domain and address as stored; a refusal is a 400
/// with Google's reason.
pub async fn verify(
    google: Option<&Google>,
    domain: &str,
    admin_email: &str,
) -> Result<(String, String), Error> {
    let google = google.ok_or_else(|| {
        Rejected::invalid(
            "Google Workspace is not configured on this gateway (SCIMGATE_GOOGLE_SERVICE_ACCOUNT_KEY)",
        )
    })?;
    let domain = domain.trim().trim_start_matches('@').to_lowercase();
    let admin_email = admin_email.trim().to_lowercase();
    let refused = |why: String| -> Error {
        Rejected::invalid(format!("Google Workspace refused the delegation: {why}")).into()
    };
    let failed = |e: ProviderError| -> Error {
        match e {
            ProviderError::Unavailable { message, .. } => {
                Rejected::new(503, format!("Google Workspace is unavailable: {message}")).into()
            }
            other => refused(other.to_string()),
        }
    };
    if domain.is_empty() || !admin_email.ends_with(&format!("@{domain}")) {
        return Err(refused(format!(
            "{admin_email:?} is not an address of the domain {domain:?}"
        )));
    }
    let token = google
        .token(&admin_email, &DIRECTORY_SCOPES)
        .await
        .map_err(failed)?;
    let user = google
        .user(token.token.expose(), &admin_email)
        .await
        .map_err(|e| match e {
            // Only administrators read the directory: a 403 says this is not one.
            ProviderError::Refused(m) => refused(format!(
                "{admin_email} is not an administrator of {domain} ({m})"
            )),
            other => failed(other),
        })?
        .ok_or_else(|| refused(format!("{admin_email} is not a user of {domain}")))?;
    if !user.is_admin {
        return Err(refused(format!(
            "{admin_email} is not an administrator of {domain}"
        )));
    }
    if !user
        .primary_email
        .to_lowercase()
        .ends_with(&format!("@{domain}"))
    {
        return Err(refused(format!(
            "{admin_email} belongs to another domain than {domain}"
        )));
    }
    Ok((domain, admin_email))
}

/// Asks for a run now (merged with one under way: it runs again when that one ends).
pub fn request_sync(conn: &mut AnyConnection, directory_id: &str) -> Result<Value, Error> {
    let row = directories::get(conn, directory_id)?;
    if row.provider_type != directories::GOOGLE {
        return Err(Rejected::invalid("only Google Workspace directories are synced").into());
    }
    store::request_now(conn, directory_id, db::now())?;
    Ok(state_json(conn, directory_id)?.unwrap_or(Value::Null))
}

/// A Google directory's admin-API additions: `google: {domain, admin_email}` and
/// `sync: {state, started_at, finished_at, users, groups, error}`; `None` for others.
pub fn state_json(conn: &mut AnyConnection, directory_id: &str) -> Result<Option<Value>, Error> {
    Ok(store::get(conn, directory_id)?.map(|r| {
        json!({
            "google": {"domain": r.domain, "admin_email": r.admin_email},
            "sync": {
                "state": r.state,
                "started_at": r.started_at.map(timestamp),
                "finished_at": r.finished_at.map(timestamp),
                "users": r.user_count,
                "groups": r.group_count,
                "error": r.error,
            },
        })
    }))
}
