//! HTTP load tool: starts scimgate in-process on 127.0.0.1 over SQLite or PostgreSQL,
//! seeds a directory and measures the SCIM operations identity providers use most.
//!
//!   cargo run --release --example load -- [--database-url URL] [--users N]
//!       [--requests N] [--concurrency C] [--lookup-concurrency C] [--members M]
//!
//!   cargo run --release --example load -- --webhooks [--database-url URL]
//!       [--endpoints E] [--events N] [--samples S]
//!
//!   cargo run --release --example load -- --hostile [--database-url URL] [--requests R]
//!
//!   cargo run --release --example load -- --dashboard [--database-url URL] [--users N]
//!       [--members M] [--samples S]
//!
//!   cargo run --release --example load -- --connect [--database-url URL] [--users N]
//!       [--requests N] [--concurrency C] [--provider-latency-ms MS]
//!       [--unit | --scim | --backfill]
//!
//! Without `--database-url` it uses a fresh SQLite file; a `postgres://` URL gets a
//! fresh schema that is dropped afterwards. Results print as a Markdown table.
//!
//! `--webhooks` measures delivery instead: one group PATCH adding N members (N events)
//! fanned out to E endpoints on a loopback receiver (deliveries per second, from the
//! PATCH to the last delivery received), then S sequential `POST /Users` each timed until
//! its `user.created` webhook arrives (write-to-webhook latency).
//!
//! `--hostile` measures memory and fairness under the costliest inputs the limits allow
//! (`bench/hostile.rs`); `--requests` is its number of rounds (default 50).
//!
//!   cargo run --release --example load -- --google [--database-url URL] [--users N]
//!
//! `--google` measures Google Workspace directories against the local Google
//! (`bench/google.rs`): a full sync of `--users` (default 100 000), a run over unchanged
//! data, and an incremental run after 100 changes.
//!
//! `--connect` measures Enterprise Connect against the local provider stand-ins
//! (`bench/connect.rs`): `--users` delegated authorizations (default 5 000) until the last
//! callback, the token endpoint, and `/v1/userinfo`. `--scim` times SCIM create →
//! `account.provisioned` webhook; `--backfill` pushes `--users` users over SCIM Bulk, then
//! attaches the directory to a unit and times until every user is provisioned.

use std::sync::Arc;
use std::time::{Duration, Instant};

use diesel::connection::SimpleConnection;
use diesel::{Connection, PgConnection};
use scimgate::config::Config;
use scimgate::store::{bulk_insert, Db};
use serde_json::{json, Value};
use tokio::sync::Semaphore;

mod connect;
mod dashboard;
mod google;
mod hostile;

struct Args {
    database_url: Option<String>,
    users: usize,
    requests: usize,
    concurrency: usize,
    /// In-flight lookups when measuring `userName eq` latency (default: --concurrency).
    lookup_concurrency: Option<usize>,
    members: usize,
    webhooks: bool,
    /// With --webhooks on PostgreSQL: writes go to an instance that delivers nothing,
    /// a second instance delivers (woken by LISTEN/NOTIFY).
    cross_instance: bool,
    hostile: bool,
    /// Enterprise Connect: delegated authorizations, token exchanges, UserInfo.
    connect: bool,
    /// Google Workspace directories: full and incremental syncs.
    google: bool,
    /// The operators' dashboard's pages at `--users` users.
    dashboard: bool,
    provider_latency_ms: u64,
    endpoints: usize,
    events: usize,
    samples: usize,
}

fn args() -> Args {
    let mut a = Args {
        database_url: None,
        users: 100_000,
        requests: 10_000,
        concurrency: 16,
        lookup_concurrency: None,
        members: 10_000,
        webhooks: false,
        cross_instance: false,
        hostile: false,
        connect: false,
        google: false,
        dashboard: false,
        provider_latency_ms: 0,
        endpoints: 50,
        events: 2_000,
        samples: 500,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--database-url" => a.database_url = Some(value()),
            "--users" => a.users = value().parse().expect("--users N"),
            "--requests" => a.requests = value().parse().expect("--requests N"),
            "--concurrency" => a.concurrency = value().parse().expect("--concurrency C"),
            "--members" => a.members = value().parse().expect("--members M"),
            "--webhooks" => a.webhooks = true,
            "--hostile" => a.hostile = true,
            "--connect" => a.connect = true,
            "--google" => a.google = true,
            "--dashboard" => a.dashboard = true,
            "--unit" | "--scim" | "--backfill" => {}
            "--provider-latency-ms" => {
                a.provider_latency_ms = value().parse().expect("--provider-latency-ms MS")
            }
            "--cross-instance" => a.cross_instance = true,
            "--endpoints" => a.endpoints = value().parse().expect("--endpoints E"),
            "--events" => a.events = value().parse().expect("--events N"),
            "--samples" => a.samples = value().parse().expect("--samples S"),
            "--lookup-concurrency" => {
                a.lookup_concurrency = Some(value().parse().expect("--lookup-concurrency C"))
            }
            _ => {
                eprintln!("usage: load [--database-url URL] [--users N] [--requests N] [--concurrency C] [--lookup-concurrency C] [--members M]\n       load --webhooks [--database-url URL] [--endpoints E] [--events N] [--samples S]\n       load --hostile [--database-url URL] [--requests ROUNDS]\n       load --connect [--database-url URL] [--users N] [--requests N] [--concurrency C] [--provider-latency-ms MS] [--unit | --scim [--samples S] | --backfill]\n       load --google [--database-url URL] [--users N]\n       load --dashboard [--database-url URL] [--users N] [--members M] [--samples S]");
                std::process::exit(2);
            }
        }
    }
    a
}

struct Stats {
    name: String,
    count: usize,
    wall: Duration,
    latencies: Vec<Duration>,
}

impl Stats {
    fn row(&mut self) -> String {
        self.latencies.sort();
        let pct = |p: f64| {
            let i = ((self.latencies.len() as f64 * p).ceil() as usize)
                .clamp(1, self.latencies.len())
                - 1;
            self.latencies[i].as_secs_f64() * 1000.0
        };
        format!(
            "| {} | {} | {:.0} | {:.2} | {:.2} | {:.2} | {:.2} |",
            self.name,
            self.count,
            self.count as f64 / self.wall.as_secs_f64(),
            pct(0.50),
            pct(0.95),
            pct(0.99),
            self.latencies
                .last()
                .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
        )
    }
}

/// Runs `n` requests made by `make(i)` with `concurrency` in flight; every one must
/// answer `expect`.
async fn phase<F>(name: &str, n: usize, concurrency: usize, expect: u16, make: F) -> Stats
where
    F: Fn(usize) -> reqwest::RequestBuilder + Send + Sync + 'static,
{
    let make = Arc::new(make);
    let sem = Arc::new(Semaphore::new(concurrency));
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(n);
    for i in 0..n {
        let permit = sem.clone().acquire_owned().await.expect("semaphore");
        let make = make.clone();
        tasks.push(tokio::spawn(async move {
            let t = Instant::now();
            let resp = make(i).send().await.expect("request");
            let status = resp.status().as_u16();
            let body = resp.bytes().await.expect("body");
            drop(permit);
            assert_eq!(status, expect, "{}", String::from_utf8_lossy(&body));
            t.elapsed()
        }));
    }
    let mut latencies = Vec::with_capacity(n);
    for t in tasks {
        latencies.push(t.await.expect("task"));
    }
    Stats {
        name: name.to_string(),
        count: n,
        wall: started.elapsed(),
        latencies,
    }
}

/// Inserts users straight into the database (the SCIM path is measured separately), with
/// the same row shapes the directory service writes.
fn seed(db: &Db, directory_id: &str, from: usize, to: usize) {
    use scimgate::store::users::{email_rows, user_rows, EmailRow, UserRow};
    let mut conn = db.conn().expect("connection");
    let now = chrono::Utc::now().naive_utc();
    for chunk_start in (from..to).step_by(20_000) {
        let chunk_end = (chunk_start + 20_000).min(to);
        let mut users: Vec<UserRow> = Vec::with_capacity(chunk_end - chunk_start);
        let mut emails: Vec<EmailRow> = Vec::with_capacity(chunk_end - chunk_start);
        for i in chunk_start..chunk_end {
            let id = uuid::Uuid::new_v4().to_string();
            let name = format!("seed{i}@load.example");
            let raw = json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": name,
                "name": {"givenName": "Seed", "familyName": format!("{i}")},
                "emails": [{"value": name, "type": "work", "primary": true}], "active": true});
            let row = UserRow {
                id: id.clone(),
                directory_id: directory_id.into(),
                user_name: name.clone(),
                user_name_lower: name.clone(),
                external_id: None,
                email: Some(name.clone()),
                email_lower: Some(name.clone()),
                given_name: Some("Seed".into()),
                family_name: Some(format!("{i}")),
                display_name: None,
                active: true,
                raw: raw.to_string(),
                version: 1,
                created_at: now,
                updated_at: now,
            };
            users.push(row);
            emails.push(EmailRow {
                user_id: id,
                position: 0,
                directory_id: directory_id.into(),
                value_lower: Some(name),
                email_type: Some("work".into()),
                is_primary: Some(true),
            });
        }
        let users_set = user_rows(&users);
        let emails_set = email_rows(&emails);
        scimgate::store::write_tx(&mut conn, |c| {
            bulk_insert(c, users_set.table, users_set.columns, &users_set.rows)?;
            bulk_insert(c, emails_set.table, emails_set.columns, &emails_set.rows)?;
            Ok(())
        })
        .expect("seed");
    }
}

fn main() {
    let a = args();
    let (url, pg_schema) = match &a.database_url {
        Some(u) if u.starts_with("postgres") => {
            let schema = format!("load_{}", std::process::id());
            PgConnection::establish(u)
                .expect("postgres")
                .batch_execute(&format!("CREATE SCHEMA {schema}"))
                .expect("schema");
            let sep = if u.contains('?') { '&' } else { '?' };
            (
                format!("{u}{sep}options=-csearch_path%3D{schema}"),
                Some((u.clone(), schema)),
            )
        }
        Some(u) => (u.clone(), None),
        None => {
            let dir = std::env::temp_dir().join(format!("scimgate-load-{}", std::process::id()));
            std::fs::create_dir_all(&dir).expect("temp dir");
            (format!("sqlite://{}", dir.join("load.db").display()), None)
        }
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    if a.webhooks {
        rt.block_on(webhooks::run(&a, &url));
    } else if a.connect {
        let users = if std::env::args().any(|f| f == "--users") {
            a.users
        } else {
            5_000
        };
        let a = Args { users, ..a };
        rt.block_on(connect::run(
            &a,
            &url,
            Duration::from_millis(a.provider_latency_ms),
            if std::env::args().any(|f| f == "--unit") {
                connect::Mode::Unit
            } else if std::env::args().any(|f| f == "--scim") {
                connect::Mode::Scim
            } else if std::env::args().any(|f| f == "--backfill") {
                connect::Mode::Backfill
            } else {
                connect::Mode::Authorizations
            },
        ));
    } else if a.google {
        rt.block_on(google::run(a.users, &url));
    } else if a.dashboard {
        let samples = if std::env::args().any(|f| f == "--samples") {
            a.samples
        } else {
            30
        };
        rt.block_on(dashboard::run(&Args { samples, ..a }, &url));
    } else if a.hostile {
        let rounds = if std::env::args().any(|f| f == "--requests") {
            a.requests
        } else {
            50
        };
        rt.block_on(hostile::run(&url, rounds));
    } else {
        rt.block_on(run(&a, &url));
    }
    if let Some((admin, schema)) = pg_schema {
        let _ = PgConnection::establish(&admin)
            .map(|mut c| c.batch_execute(&format!("DROP SCHEMA {schema} CASCADE")));
    }
}

/// At least `wanted` user ids of the directory (or all it has), through the admin API.
async fn user_ids(
    client: &reqwest::Client,
    base: &str,
    directory_id: &str,
    wanted: usize,
) -> Vec<String> {
    let mut ids = Vec::new();
    while ids.len() < wanted {
        let page: Value = client
            .get(format!(
                "{base}/api/v1/directory-sync/{directory_id}/users?pageOffset={}&pageLimit=1000",
                ids.len()
            ))
            .header("Authorization", "Api-Key load")
            .send()
            .await
            .expect("list")
            .json()
            .await
            .expect("json");
        let batch = page["data"].as_array().cloned().unwrap_or_default();
        if batch.is_empty() {
            break;
        }
        ids.extend(
            batch
                .iter()
                .filter_map(|u| u["id"].as_str().map(str::to_string)),
        );
    }
    ids
}

static KEY: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// The gateway in-process on a free 127.0.0.1 port over `url` (admin key `load`), with
/// `tweak` applied to its configuration. Returns the database and the base URL.
fn serve(url: &str, tweak: impl FnOnce(&mut Config)) -> (Db, String) {
    let mut config = Config {
        database_url: url.to_string(),
        listen: "127.0.0.1:0".into(),
        api_keys: vec!["load".into()],
        // One key for every instance of this process: they share the sealed secrets.
        encryption_key: Some(
            KEY.get_or_init(|| scimgate::secrets::generate_key().expect("encryption key"))
                .clone(),
        ),
        ..Config::default()
    };
    tweak(&mut config);
    let db = Db::open(url).expect("database");
    let running = scimgate::http::bind(&config, db.clone()).expect("bind");
    tokio::spawn(running.server);
    (db, format!("http://{}", running.addr))
}

async fn run(a: &Args, url: &str) {
    let (db, base) = serve(url, |_| {});
    scimgate::outbound::install_tls_provider();
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(a.concurrency)
        .build()
        .expect("client");

    let dir: Value = client
        .post(format!("{base}/api/v1/directory-sync"))
        .header("Authorization", "Api-Key load")
        .json(&json!({"tenant": "load", "product": "bench"}))
        .send()
        .await
        .expect("create directory")
        .json()
        .await
        .expect("json");
    let endpoint = dir["data"]["scim"]["endpoint"]
        .as_str()
        .expect("endpoint")
        .to_string();
    let directory_id = dir["data"]["id"].as_str().expect("id").to_string();
    let auth = format!(
        "Bearer {}",
        dir["data"]["scim"]["secret"].as_str().expect("secret")
    );
    let req = {
        let (client, endpoint, auth) = (client.clone(), endpoint.clone(), auth.clone());
        move |m: reqwest::Method, path: String| {
            client
                .request(m, format!("{endpoint}{path}"))
                .header("Authorization", &auth)
                .header("Content-Type", "application/scim+json")
        }
    };

    println!(
        "backend: {}",
        if url.starts_with("postgres") {
            "PostgreSQL"
        } else {
            "SQLite"
        }
    );
    println!("| operation | requests | req/s | p50 ms | p95 ms | p99 ms | max ms |");
    println!("|---|---|---|---|---|---|---|");

    // POST /Users
    let r = req.clone();
    let mut s = phase("POST /Users", a.requests, a.concurrency, 201, move |i| {
        r(reqwest::Method::POST, "/Users".into()).json(&json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": format!("user{i}@load.example"),
            "externalId": format!("ext{i}"), "name": {"givenName": "Load", "familyName": format!("{i}")},
            "emails": [{"value": format!("user{i}@load.example"), "type": "work", "primary": true}], "active": true}))
    }).await;
    println!("{}", s.row());

    // Ids to read back, from the admin API.
    let ids = user_ids(&client, &base, &directory_id, a.requests).await;
    let ids = Arc::new(ids);

    let (r, i2) = (req.clone(), ids.clone());
    let mut s = phase(
        "GET /Users/{id}",
        a.requests,
        a.concurrency,
        200,
        move |i| {
            r(
                reqwest::Method::GET,
                format!("/Users/{}", i2[(i * 7919) % i2.len()]),
            )
        },
    )
    .await;
    println!("{}", s.row());

    let (r, i2) = (req.clone(), ids.clone());
    let mut s = phase("PATCH /Users/{id} (replace 2 attributes)", a.requests, a.concurrency, 200, move |i| {
        r(reqwest::Method::PATCH, format!("/Users/{}", i2[(i * 7919) % i2.len()])).json(&json!({
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{"op": "Replace", "path": "title", "value": format!("t{i}")}, {"op": "Replace", "path": "active", "value": "True"}]}))
    }).await;
    println!("{}", s.row());

    // The most common IdP write: one attribute (Okta's and Entra's deactivation).
    let (r, i2) = (req.clone(), ids.clone());
    let mut s = phase(
        "PATCH /Users/{id} (replace active)",
        a.requests,
        a.concurrency,
        200,
        move |i| {
            r(
                reqwest::Method::PATCH,
                format!("/Users/{}", i2[(i * 7919) % i2.len()]),
            )
            .json(&json!({
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{"op": "replace", "path": "active", "value": i % 2 == 0}]}))
        },
    )
    .await;
    println!("{}", s.row());

    // Grow the directory to --users, then look users up by userName as IdPs do.
    let total = a.users.max(a.requests);
    let started = Instant::now();
    let (db2, dir2, from) = (db.clone(), directory_id.clone(), a.requests);
    tokio::task::spawn_blocking(move || seed(&db2, &dir2, from, total))
        .await
        .expect("seed");
    eprintln!(
        "seeded {} users in {:.1} s",
        total - a.requests,
        started.elapsed().as_secs_f64()
    );
    // A million rows inserted in a minute would set autovacuum off in the middle of the
    // measurements; a directory that grew through SCIM would have been vacuumed as it grew.
    let db2 = db.clone();
    tokio::task::spawn_blocking(move || {
        use diesel::connection::SimpleConnection;
        let mut c = db2.conn().expect("connection");
        // One statement each: PostgreSQL refuses VACUUM in a multi-statement string.
        let statements: &[&str] = match db2.backend() {
            scimgate::store::Backend::Postgres => &[
                "SET statement_timeout = 0",
                "VACUUM (ANALYZE) users",
                "VACUUM (ANALYZE) user_emails",
            ],
            scimgate::store::Backend::Sqlite => &["ANALYZE"],
        };
        for sql in statements {
            c.batch_execute(sql).expect("vacuum");
        }
    })
    .await
    .expect("vacuum");
    let r = req.clone();
    let lookups = a.lookup_concurrency.unwrap_or(a.concurrency);
    let mut s = phase(
        &format!("GET /Users?filter=userName eq ({total} users, {lookups} in flight)"),
        a.requests,
        lookups,
        200,
        move |i| {
            let n = (i * 104_729) % total;
            let name = if n < from {
                format!("user{n}@load.example")
            } else {
                format!("SEED{n}@load.example")
            };
            r(reqwest::Method::GET, "/Users".into())
                .query(&[("filter", format!("userName eq \"{name}\""))])
        },
    )
    .await;
    println!("{}", s.row());

    // One group PATCH adding --members members.
    let group: Value = req(reqwest::Method::POST, "/Groups".into())
        .json(&json!({"displayName": "Everyone"}))
        .send()
        .await
        .expect("group")
        .json()
        .await
        .expect("json");
    let gid = group["id"].as_str().expect("group id").to_string();
    let mut member_ids = user_ids(&client, &base, &directory_id, a.members).await;
    member_ids.truncate(a.members);
    let members: Vec<Value> = member_ids.iter().map(|id| json!({"value": id})).collect();
    let body = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": [{"op": "add", "path": "members", "value": members}]});
    let t = Instant::now();
    let resp = req(
        reqwest::Method::PATCH,
        format!("/Groups/{gid}?excludedAttributes=members"),
    )
    .json(&body)
    .send()
    .await
    .expect("patch");
    assert_eq!(resp.status().as_u16(), 200);
    let add = t.elapsed();
    let t = Instant::now();
    let resp = req(
        reqwest::Method::PATCH,
        format!("/Groups/{gid}?excludedAttributes=members"),
    )
    .json(&json!({"Operations": [{"op": "remove", "path": "members"}]}))
    .send()
    .await
    .expect("patch");
    assert_eq!(resp.status().as_u16(), 200);
    let remove = t.elapsed();
    let mut one = Stats {
        name: format!("PATCH /Groups/{{id}} add {} members", member_ids.len()),
        count: 1,
        wall: add,
        latencies: vec![add],
    };
    println!("{}", one.row());
    let mut one = Stats {
        name: format!("PATCH /Groups/{{id}} remove {} members", member_ids.len()),
        count: 1,
        wall: remove,
        latencies: vec![remove],
    };
    println!("{}", one.row());
}

mod webhooks {
    //! Delivery throughput and write-to-webhook latency against a loopback receiver.

    use std::collections::HashMap;
    use std::net::TcpListener;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::{Arc, Mutex};
    use std::time::{Duration, Instant};

    use actix_web::{web, App, HttpResponse, HttpServer};
    use serde_json::{json, Value};
    use tokio::sync::oneshot;

    use super::{seed, user_ids, Args, Stats};

    #[derive(Default)]
    struct Rx {
        count: AtomicU64,
        /// userName → who waits for its user.created.
        waiting: Mutex<HashMap<String, oneshot::Sender<Instant>>>,
    }

    async fn receive(body: web::Bytes, rx: web::Data<Arc<Rx>>) -> HttpResponse {
        let at = Instant::now();
        rx.count.fetch_add(1, Ordering::Relaxed);
        if !rx.waiting.lock().unwrap().is_empty() {
            let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            if let Some(name) = v["data"]["raw"]["userName"].as_str() {
                if let Some(tx) = rx.waiting.lock().unwrap().remove(name) {
                    let _ = tx.send(at);
                }
            }
        }
        HttpResponse::NoContent().finish()
    }

    fn receiver() -> (String, Arc<Rx>) {
        let rx = Arc::new(Rx::default());
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind receiver");
        let addr = listener.local_addr().expect("addr");
        let data = web::Data::new(rx.clone());
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .default_service(web::to(receive))
        })
        .workers(1)
        .listen(listener)
        .expect("listen")
        .run();
        tokio::spawn(server);
        (format!("http://{addr}"), rx)
    }

    async fn admin(client: &reqwest::Client, base: &str, path: &str, body: Value) -> Value {
        let resp = client
            .post(format!("{base}/api/v1{path}"))
            .header("Authorization", "Api-Key load")
            .json(&body)
            .send()
            .await
            .expect("admin request");
        assert!(resp.status().is_success(), "{path}: {}", resp.status());
        resp.json().await.expect("json")
    }

    pub async fn run(a: &Args, url: &str) {
        // Cross-instance: this instance takes the writes and delivers nothing; a second
        // one over the same database delivers, woken by this one's notifications.
        let (db, base) = super::serve(url, |c| {
            c.webhook_allow_private = true;
            c.webhook_concurrency = if a.cross_instance { 0 } else { a.endpoints + 8 };
        });
        let _deliverer = a.cross_instance.then(|| {
            super::serve(url, |c| {
                c.webhook_allow_private = true;
            })
        });
        let client = reqwest::Client::new();
        let (rx_url, rx) = receiver();
        println!(
            "backend: {}",
            if url.starts_with("postgres") {
                "PostgreSQL"
            } else {
                "SQLite"
            }
        );

        if !a.cross_instance {
            throughput(a, &client, &base, &db, &rx_url, &rx).await;
        }
        latency(a, &client, &base, &rx_url, &rx).await;
    }

    async fn throughput(
        a: &Args,
        client: &reqwest::Client,
        base: &str,
        db: &scimgate::store::Db,
        rx_url: &str,
        rx: &Arc<Rx>,
    ) {
        // Throughput: N users exist, E endpoints subscribe, one PATCH adds all N to a group.
        let dir = admin(
            client,
            base,
            "/directory-sync",
            json!({"tenant": "wh", "product": "bench"}),
        )
        .await;
        let id = dir["data"]["id"].as_str().expect("id").to_string();
        let endpoint = dir["data"]["scim"]["endpoint"]
            .as_str()
            .expect("endpoint")
            .to_string();
        let auth = format!(
            "Bearer {}",
            dir["data"]["scim"]["secret"].as_str().expect("secret")
        );
        let (db2, id2, n) = (db.clone(), id.clone(), a.events);
        tokio::task::spawn_blocking(move || seed(&db2, &id2, 0, n))
            .await
            .expect("seed");
        let members: Vec<Value> = user_ids(client, base, &id, a.events)
            .await
            .into_iter()
            .map(|u| json!({"value": u}))
            .collect();
        let group: Value = client
            .post(format!("{endpoint}/Groups"))
            .header("Authorization", &auth)
            .json(&json!({"displayName": "Everyone"}))
            .send()
            .await
            .expect("group")
            .json()
            .await
            .expect("json");
        let gid = group["id"].as_str().expect("group id").to_string();
        // Number what exists so far: the endpoints get only the PATCH's events.
        client
            .get(format!("{base}/api/v1/directory-sync/{id}/events?limit=1"))
            .header("Authorization", "Api-Key load")
            .send()
            .await
            .expect("events");
        for i in 0..a.endpoints {
            admin(
                client,
                base,
                &format!("/directory-sync/{id}/webhooks"),
                json!({"url": format!("{rx_url}/hook/{i}")}),
            )
            .await;
        }
        let expected = (a.events * a.endpoints) as u64;
        let before = rx.count.load(Ordering::Relaxed);
        let started = Instant::now();
        let resp = client
            .patch(format!(
                "{endpoint}/Groups/{gid}?excludedAttributes=members"
            ))
            .header("Authorization", &auth)
            .json(&json!({"Operations": [{"op": "add", "path": "members", "value": members}]}))
            .send()
            .await
            .expect("patch");
        assert_eq!(resp.status().as_u16(), 200);
        let patched = started.elapsed();
        while rx.count.load(Ordering::Relaxed) - before < expected {
            tokio::time::sleep(Duration::from_millis(5)).await;
            assert!(
                started.elapsed() < Duration::from_secs(600),
                "deliveries stalled"
            );
        }
        let took = started.elapsed();
        println!(
            "| deliveries | endpoints | events | seconds | deliveries/s | PATCH ms |\n|---|---|---|---|---|---|\n| {expected} | {} | {} | {:.2} | {:.0} | {:.0} |",
            a.endpoints,
            a.events,
            took.as_secs_f64(),
            expected as f64 / took.as_secs_f64(),
            patched.as_secs_f64() * 1000.0
        );
    }

    async fn latency(a: &Args, client: &reqwest::Client, base: &str, rx_url: &str, rx: &Arc<Rx>) {
        // Latency: one endpoint, sequential writes, each timed until its webhook arrives.
        let dir = admin(client, base, "/directory-sync", json!({"tenant": "lat", "product": "bench", "webhook_url": format!("{rx_url}/latency")})).await;
        let endpoint = dir["data"]["scim"]["endpoint"]
            .as_str()
            .expect("endpoint")
            .to_string();
        let auth = format!(
            "Bearer {}",
            dir["data"]["scim"]["secret"].as_str().expect("secret")
        );
        let mut latencies = Vec::with_capacity(a.samples);
        let started = Instant::now();
        for i in 0..a.samples {
            let name = format!("lat{i}@bench.example");
            let (tx, arrived) = oneshot::channel();
            rx.waiting.lock().unwrap().insert(name.clone(), tx);
            let t0 = Instant::now();
            let resp = client
                .post(format!("{endpoint}/Users"))
                .header("Authorization", &auth)
                .json(&json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": name}))
                .send()
                .await
                .expect("post");
            assert_eq!(resp.status().as_u16(), 201);
            let at = tokio::time::timeout(Duration::from_secs(30), arrived)
                .await
                .expect("webhook within 30 s")
                .expect("sender");
            latencies.push(at - t0);
        }
        let mut s = Stats {
            name: "POST /Users → user.created received".into(),
            count: a.samples,
            wall: started.elapsed(),
            latencies,
        };
        println!("| operation | requests | req/s | p50 ms | p95 ms | p99 ms | max ms |\n|---|---|---|---|---|---|---|\n{}", s.row());
    }
}
