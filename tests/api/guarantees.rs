//! The delivery promise with real processes: a gateway killed with SIGKILL in the middle
//! of a burst of SCIM writes and restarted on the same database delivers every write it
//! acknowledged, in order; two gateways on one PostgreSQL deliver one directory's events
//! in order with nothing lost.

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};

use crate::common::{user, Backend, TestDb, API_KEY};
use crate::receiver::Receiver;

/// A `scimgate serve` process.
pub struct Gateway {
    child: Child,
    pub base: String,
}

impl Gateway {
    fn start(database_url: &str) -> Self {
        Self::start_with(database_url, &[])
    }

    /// With more settings (`SCIMGATE_*` pairs) than the tests' defaults.
    pub fn start_with(database_url: &str, extra: &[(String, String)]) -> Self {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_scimgate"));
        for (k, _) in std::env::vars() {
            if k.starts_with("SCIMGATE_") {
                cmd.env_remove(k);
            }
        }
        cmd.env("SCIMGATE_DATABASE_URL", database_url)
            .env("SCIMGATE_LISTEN", "127.0.0.1:0")
            .env("SCIMGATE_API_KEYS", API_KEY)
            .env("SCIMGATE_ENCRYPTION_KEY", crate::common::ENCRYPTION_KEY)
            .env("SCIMGATE_WEBHOOK_ALLOW_PRIVATE", "true")
            .env(
                "SCIMGATE_WEBHOOK_RETRY_SCHEDULE",
                "0,50ms,100ms,200ms,400ms",
            )
            .env("SCIMGATE_WEBHOOK_TIMEOUT_MS", "1000")
            // A killed instance's endpoints are taken over after this.
            .env("SCIMGATE_WEBHOOK_LEASE_MS", "2000")
            .env("RUST_LOG", "warn")
            .envs(extra.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        let mut child = cmd.spawn().expect("spawn scimgate");
        let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let line = lines.next().expect("a line").expect("stdout");
        let base = line
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .to_string();
        Self { child, base }
    }

    /// SIGTERM, then waits for a clean exit.
    fn terminate(&mut self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
        let exit = self.child.wait().expect("exit");
        assert!(exit.success(), "exit status {exit}");
    }

    pub fn kill(&mut self) {
        self.child.kill().expect("SIGKILL");
        self.child.wait().expect("reaped");
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Creates a directory whose webhook is `rx`; returns (id, scim path, secret).
async fn directory(
    client: &reqwest::Client,
    base: &str,
    rx: &Receiver,
) -> (String, String, String) {
    let resp = client
        .post(format!("{base}/api/v1/directory-sync"))
        .header("Authorization", format!("Api-Key {API_KEY}"))
        .json(&json!({"tenant": "crash", "product": "p", "webhook_url": rx.url, "webhook_secret": "s"}))
        .send()
        .await
        .expect("create directory");
    assert_eq!(resp.status(), 201);
    let body: Value = resp.json().await.unwrap();
    let d = &body["data"];
    (
        d["id"].as_str().unwrap().to_string(),
        d["scim"]["path"].as_str().unwrap().to_string(),
        d["scim"]["secret"].as_str().unwrap().to_string(),
    )
}

async fn create_user(
    client: &reqwest::Client,
    base: &str,
    path: &str,
    secret: &str,
    name: &str,
) -> bool {
    let sent = client
        .post(format!("{base}{path}/Users"))
        .header("Authorization", format!("Bearer {secret}"))
        .header("Content-Type", "application/scim+json")
        .json(&user(name))
        .timeout(Duration::from_secs(10))
        .send()
        .await;
    matches!(sent, Ok(r) if r.status() == 201)
}

/// The delivered events, first delivery of each id, checked to be the directory's
/// sequence 1, 2, 3 … without a gap or a step back (redeliveries may repeat an event).
fn in_order(rx: &Receiver) -> Vec<Value> {
    let mut seen = HashSet::new();
    let mut firsts = Vec::new();
    for r in rx.delivered() {
        r.assert_signed(&["s"]);
        let e = r.json.clone();
        if seen.insert(e["id"].as_str().unwrap().to_string()) {
            firsts.push(e);
        }
    }
    let seqs: Vec<i64> = firsts
        .iter()
        .map(|e| e["sequence"].as_i64().unwrap())
        .collect();
    assert_eq!(
        seqs,
        (1..=seqs.len() as i64).collect::<Vec<_>>(),
        "in order, no gap"
    );
    firsts
}

fn user_names(events: &[Value]) -> HashSet<String> {
    events
        .iter()
        .filter(|e| e["event"] == "user.created")
        .map(|e| e["data"]["raw"]["userName"].as_str().unwrap().to_string())
        .collect()
}

async fn wait_for_names(rx: &Receiver, wanted: &HashSet<String>) -> Vec<Value> {
    let started = std::time::Instant::now();
    loop {
        let events = in_order(rx);
        let got = user_names(&events);
        if wanted.is_subset(&got) {
            return events;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{} of {} acknowledged writes delivered",
            wanted.intersection(&got).count(),
            wanted.len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn crash_mid_burst(backend: Backend) {
    let Some(db) = TestDb::new(backend) else {
        return;
    };
    let rx = Receiver::ok().await;
    let mut gw = Gateway::start(&db.url);
    let client = crate::common::http_client();
    let (_, path, secret) = directory(&client, &gw.base, &rx).await;

    // Four writers; kill the process once some writes are acknowledged.
    let acked = Arc::new(Mutex::new(HashSet::new()));
    let mut writers = Vec::new();
    for w in 0..4 {
        let (client, base, path, secret, acked) = (
            client.clone(),
            gw.base.clone(),
            path.clone(),
            secret.clone(),
            acked.clone(),
        );
        writers.push(tokio::spawn(async move {
            for i in 0..10_000 {
                let name = format!("w{w}-{i}@crash.example");
                if !create_user(&client, &base, &path, &secret, &name).await {
                    return;
                }
                acked.lock().unwrap().insert(name);
            }
        }));
    }
    while acked.lock().unwrap().len() < 150 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    gw.kill();
    for w in writers {
        w.await.unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    let delivered_before = rx.delivered().len();

    let _restarted = Gateway::start(&db.url);
    let events = wait_for_names(&rx, &acked).await;
    assert!(
        events.len() > acked.len(),
        "dsync.created and every acknowledged write"
    );
    eprintln!(
        "{backend:?}: {} acknowledged, {} delivered before the kill, {} events in order after restart, {} requests in all",
        acked.len(),
        delivered_before,
        events.len(),
        rx.received().len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_burst_loses_nothing_sqlite() {
    crash_mid_burst(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_burst_loses_nothing_postgres() {
    crash_mid_burst(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_deliver_in_order_nothing_lost() {
    let Some(db) = TestDb::new(Backend::Postgres) else {
        return;
    };
    let rx = Receiver::ok().await;
    let a = Gateway::start(&db.url);
    let b = Gateway::start(&db.url);
    let client = crate::common::http_client();
    let (_, path, secret) = directory(&client, &a.base, &rx).await;
    let mut writers = Vec::new();
    for (w, base) in [
        a.base.clone(),
        b.base.clone(),
        a.base.clone(),
        b.base.clone(),
    ]
    .into_iter()
    .enumerate()
    {
        let (client, path, secret) = (client.clone(), path.clone(), secret.clone());
        writers.push(tokio::spawn(async move {
            let mut names = Vec::new();
            for i in 0..50 {
                let name = format!("two{w}-{i}@example.com");
                assert!(create_user(&client, &base, &path, &secret, &name).await);
                names.push(name);
            }
            names
        }));
    }
    let mut wanted = HashSet::new();
    for w in writers {
        wanted.extend(w.await.unwrap());
    }
    let events = wait_for_names(&rx, &wanted).await;
    assert_eq!(events.len(), 201);
    assert_eq!(
        rx.received().len(),
        201,
        "each event sent once: no double claims"
    );
}

/// SIGTERM while an attempt is in flight: the attempt finishes and is recorded, so the
/// next start does not send it again.
async fn graceful_shutdown(backend: Backend) {
    let Some(db) = TestDb::new(backend) else {
        return;
    };
    let rx = Receiver::start(|_, _| crate::receiver::Reply {
        status: 200,
        delay: Duration::from_millis(800),
        retry_after: None,
    })
    .await;
    let mut gw = Gateway::start(&db.url);
    let client = crate::common::http_client();
    directory(&client, &gw.base, &rx).await;
    let started = std::time::Instant::now();
    while rx.started() == 0 {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "no delivery began"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    gw.terminate();
    assert_eq!(rx.delivered().len(), 1, "the in-flight attempt finished");
    let _again = Gateway::start(&db.url);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(rx.started(), 1, "recorded as delivered: not sent again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_in_flight_attempts_finish_sqlite() {
    graceful_shutdown(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_in_flight_attempts_finish_postgres() {
    graceful_shutdown(Backend::Postgres).await;
}
