//! The test harness: the real app on a bound 127.0.0.1 port over a fresh database —
//! a SQLite file per test, or a PostgreSQL schema per test — and HTTP helpers.

use std::sync::atomic::{AtomicU32, Ordering};

use diesel::connection::SimpleConnection;
use diesel::{Connection, PgConnection};
use reqwest::{Method, RequestBuilder, StatusCode};
use scimgate::config::Config;
use scimgate::store::Db;
use serde_json::{json, Value};

pub const API_KEY: &str = "test-admin-key";
/// The app's encryption key in tests (32 bytes, base64): fixed, so a test can open or
/// re-key what the app sealed.
pub const ENCRYPTION_KEY: &str = "c2NpbWdhdGUtdGVzdHMtZW5jcnlwdGlvbi1rZXktMzI=";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Where PostgreSQL is for tests. `.ci/run` sets the variable; without it the default
/// local server is tried.
fn postgres_url() -> String {
    std::env::var("SCIMGATE_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// PostgreSQL is required (fail, never skip) in CI or when its URL was given.
fn postgres_required() -> bool {
    std::env::var_os("SCIMGATE_TEST_POSTGRES_URL").is_some() || std::env::var_os("CI").is_some()
}

enum Storage {
    Sqlite(#[allow(dead_code)] tempfile::TempDir),
    Postgres { admin_url: String, schema: String },
}

/// A fresh database, removed when dropped.
pub struct TestDb {
    pub url: String,
    storage: Storage,
}

impl TestDb {
    /// `None` only when PostgreSQL is optional here and absent.
    pub fn new(backend: Backend) -> Option<Self> {
        let (url, storage) = fresh_database(backend)?;
        Some(Self { url, storage })
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Storage::Postgres { admin_url, schema } = &self.storage {
            if let Ok(mut c) = PgConnection::establish(admin_url) {
                let _ = c.batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"));
            }
        }
    }
}

pub struct TestApp {
    pub base: String,
    pub client: reqwest::Client,
    pub db: Db,
    handle: actix_web::dev::ServerHandle,
    // Dropped after the server is told to stop.
    _database: TestDb,
}

/// A directory created through the admin API.
#[derive(Debug, Clone)]
pub struct Dir {
    pub id: String,
    pub secret: String,
    pub endpoint: String,
    pub json: Value,
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A fresh database URL for `backend`, or `None` when PostgreSQL is absent and optional.
fn fresh_database(backend: Backend) -> Option<(String, Storage)> {
    match backend {
        Backend::Sqlite => {
            let dir = tempfile::tempdir().expect("tempdir");
            let url = format!("sqlite://{}", dir.path().join("test.db").display());
            Some((url, Storage::Sqlite(dir)))
        }
        Backend::Postgres => {
            let admin_url = postgres_url();
            let mut conn = match PgConnection::establish(&admin_url) {
                Ok(c) => c,
                Err(e) if postgres_required() => {
                    panic!("PostgreSQL at {admin_url} is required here but unreachable: {e}")
                }
                Err(e) => {
                    eprintln!("SKIPPED: PostgreSQL at {admin_url} unreachable ({e}); set SCIMGATE_TEST_POSTGRES_URL to run the PostgreSQL half");
                    return None;
                }
            };
            let schema = format!(
                "t_{}_{}_{}",
                std::process::id(),
                COUNTER.fetch_add(1, Ordering::SeqCst),
                uuid::Uuid::new_v4()
                    .simple()
                    .to_string()
                    .get(..8)
                    .unwrap_or("x")
            );
            conn.batch_execute(&format!("CREATE SCHEMA {schema}"))
                .expect("create schema");
            let sep = if admin_url.contains('?') { '&' } else { '?' };
            let url = format!("{admin_url}{sep}options=-csearch_path%3D{schema}");
            Some((url, Storage::Postgres { admin_url, schema }))
        }
    }
}

impl TestApp {
    /// Starts the app on `backend`; `None` only when PostgreSQL is optional and absent.
    pub async fn start(backend: Backend) -> Option<TestApp> {
        Self::start_with(backend, |_| {}).await
    }

    pub async fn start_with(backend: Backend, tweak: impl FnOnce(&mut Config)) -> Option<TestApp> {
        let database = TestDb::new(backend)?;
        let database_url = database.url.clone();
        let mut config = Config {
            database_url: database_url.clone(),
            listen: "127.0.0.1:0".into(),
            api_keys: vec![API_KEY.into()],
            // Receivers in tests live on 127.0.0.1; retries are quick.
            webhook_allow_private: true,
            webhook_retry_schedule: [0, 50, 100, 200]
                .map(std::time::Duration::from_millis)
                .to_vec(),
            webhook_timeout_ms: 2_000,
            webhook_lease_ms: 4_000,
            encryption_key: Some(ENCRYPTION_KEY.into()),
            ..Config::default()
        };
        tweak(&mut config);
        let url = database_url.clone();
        let db = tokio::task::spawn_blocking(move || Db::open(&url))
            .await
            .expect("join")
            .expect("open database");
        let running = scimgate::http::bind(&config, db.clone()).expect("bind");
        let handle = running.handle.clone();
        tokio::spawn(running.server);
        Some(TestApp {
            base: format!("http://{}", running.addr),
            client: http_client(),
            db,
            handle,
            _database: database,
        })
    }

    /// The database the app runs on, for opening a connection of the test's own.
    pub fn database_url(&self) -> &str {
        &self._database.url
    }

    pub fn admin(&self, method: Method, path: &str) -> RequestBuilder {
        self.client
            .request(method, format!("{}/api/v1{}", self.base, path))
            .header("Authorization", format!("Api-Key {API_KEY}"))
    }

    pub fn scim(&self, dir: &Dir, method: Method, path: &str) -> RequestBuilder {
        self.client
            .request(method, format!("{}{}", dir.endpoint, path))
            .header("Authorization", format!("Bearer {}", dir.secret))
            .header("Content-Type", "application/scim+json")
    }

    pub async fn create_directory(&self, tenant: &str, product: &str) -> Dir {
        self.create_directory_with(
            json!({"tenant": tenant, "product": product, "name": format!("{tenant}-{product}")}),
        )
        .await
    }

    pub async fn create_directory_with(&self, body: Value) -> Dir {
        let (status, json) = send(self.admin(Method::POST, "/directory-sync").json(&body)).await;
        assert_eq!(status, StatusCode::CREATED, "{json}");
        let data = &json["data"];
        Dir {
            id: data["id"].as_str().expect("id").to_string(),
            secret: data["scim"]["secret"].as_str().expect("secret").to_string(),
            endpoint: data["scim"]["endpoint"]
                .as_str()
                .expect("endpoint")
                .to_string(),
            json: data.clone(),
        }
    }

    /// Creates a user and returns its JSON.
    pub async fn create_user(&self, dir: &Dir, user_name: &str) -> Value {
        let (status, body) = send(
            self.scim(dir, Method::POST, "/Users")
                .json(&user(user_name)),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body
    }

    /// Every event of a directory, in order, from the admin API (paging with `after`).
    pub async fn events(&self, dir: &Dir) -> Vec<Value> {
        let mut all = Vec::new();
        let mut after = 0;
        loop {
            let path = format!("/directory-sync/{}/events?after={after}&limit=1000", dir.id);
            let (status, body) = send(self.admin(Method::GET, &path)).await;
            assert_eq!(status, StatusCode::OK, "{body}");
            let page = body["data"].as_array().cloned().unwrap_or_default();
            if page.is_empty() {
                return all;
            }
            after = body["after"].as_i64().expect("cursor");
            all.extend(page);
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        drop(self.handle.stop(false));
    }
}

/// An HTTP client for tests (reqwest needs the TLS provider installed first).
pub fn http_client() -> reqwest::Client {
    scimgate::outbound::install_tls_provider();
    reqwest::Client::new()
}

/// Sends a request; returns the status and the JSON body (`Null` when empty).
pub async fn send(req: RequestBuilder) -> (StatusCode, Value) {
    let resp = req.send().await.expect("request");
    let status = resp.status();
    let text = resp.text().await.expect("body");
    let json = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or_else(|_| json!({ "text": text }))
    };
    (status, json)
}

/// A typical IdP user body.
pub fn user(user_name: &str) -> Value {
    let local = user_name.split('@').next().unwrap_or(user_name);
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "userName": user_name,
        "externalId": format!("ext-{local}"),
        "name": {"givenName": format!("Given {local}"), "familyName": "Family"},
        "emails": [{"value": user_name, "type": "work", "primary": true}],
        "active": true,
        "password": "hunter2-never-stored"
    })
}

/// Asserts a SCIM error body with this status and (optionally) scimType.
pub fn assert_scim_error(status: StatusCode, body: &Value, expected: u16, scim_type: Option<&str>) {
    assert_eq!(status.as_u16(), expected, "{body}");
    assert_eq!(
        body["schemas"][0], "urn:ietf:params:scim:api:messages:2.0:Error",
        "{body}"
    );
    assert_eq!(body["status"], expected.to_string(), "{body}");
    if let Some(t) = scim_type {
        assert_eq!(body["scimType"], t, "{body}");
    }
    assert!(
        body["detail"].as_str().is_some_and(|d| !d.is_empty()),
        "{body}"
    );
}

/// Generates a `sqlite` and a `postgres` test for each async fn taking a [`TestApp`].
#[macro_export]
macro_rules! backend_tests {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let app = $crate::common::TestApp::start($crate::common::Backend::Sqlite).await.expect("sqlite");
                    super::$name(app).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    if let Some(app) = $crate::common::TestApp::start($crate::common::Backend::Postgres).await {
                        super::$name(app).await;
                    }
                }
            )*
        }
    };
}
