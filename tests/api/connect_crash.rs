//! Delegated authorizations survive a crash: a gateway killed with SIGKILL while a batch
//! is being worked on, restarted on the same database, completes every authorization
//! and sends every callback (at least once), with one account per email.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use scimgate::devproviders::DevProviders;
use serde_json::{json, Value};

use crate::common::{Backend, TestDb, API_KEY};
use crate::enterprise_connect::Browser;
use crate::guarantees::Gateway;
use crate::receiver::Receiver;

const EMAILS: usize = 300;

/// An application and its Google service account through the consent pages, as a
/// browser would: the application's JSON and the service account's tokens.
async fn google_service_account(
    client: &reqwest::Client,
    base: &str,
    name: &str,
    redirect: &str,
) -> (Value, Value) {
    let app: Value = client
        .post(format!("{base}/api/v1/applications"))
        .header("Authorization", format!("Api-Key {API_KEY}"))
        .json(&json!({"name": name, "redirect_uris": [redirect]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let (client_id, secret) = (
        app["data"]["client_id"].as_str().unwrap(),
        app["data"]["client_secret"].as_str().unwrap(),
    );
    let web = Browser {
        browser: client.clone(),
        base: base.to_string(),
    };
    let code = web
        .google_consent(client_id, redirect, "admin@example.com")
        .await;
    let tokens: Value = client
        .post(format!("{base}/oauth/token"))
        .json(&json!({"grant_type": "authorization_code", "client_id": client_id, "client_secret": secret, "code": code, "redirect_uri": redirect}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    (app, tokens)
}

/// The Google stand-in with `users` people (`{prefix}{i}@example.com`) answering after
/// `latency`, and the settings that point a gateway process at it.
struct GoogleSetup {
    _providers: DevProviders,
    _keys: tempfile::TempDir,
    env: Vec<(String, String)>,
}

async fn google_setup(
    prefix: &str,
    users: usize,
    latency: Duration,
    extra: &[(&str, &str)],
) -> GoogleSetup {
    let providers = DevProviders::start("127.0.0.1:0").await.expect("providers");
    providers.seed_demo().expect("seed");
    for i in 0..users {
        providers
            .state
            .add_google_user(&format!("{prefix}{i}@example.com"), false)
            .expect("user");
    }
    providers.state.set_latency(latency);
    let keys = tempfile::tempdir().expect("tempdir");
    let key_path = keys.path().join("google.json");
    std::fs::write(&key_path, providers.google_key_json()).expect("key");
    let mut env: Vec<(String, String)> = vec![
        (
            "SCIMGATE_GOOGLE_SERVICE_ACCOUNT_KEY".into(),
            key_path.display().to_string(),
        ),
        (
            "SCIMGATE_GOOGLE_ADMIN_URL".into(),
            providers.google_admin_url(),
        ),
        ("SCIMGATE_POLL_MS".into(), "200".into()),
        // A claim lasts six provider timeouts: short, so a restarted gateway takes the
        // dead one's work over quickly.
        ("SCIMGATE_PROVIDER_TIMEOUT_MS".into(), "300".into()),
    ];
    env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    GoogleSetup {
        _providers: providers,
        _keys: keys,
        env,
    }
}

async fn crash_mid_batch(backend: Backend) {
    let Some(db) = TestDb::new(backend) else {
        return;
    };
    // Slow enough that the kill lands with most of the batch still pending.
    let setup = google_setup(
        "u",
        EMAILS,
        Duration::from_millis(40),
        &[("SCIMGATE_AUTHORIZATION_CONCURRENCY", "4")],
    )
    .await;
    let env = setup.env.clone();
    let mut gw = Gateway::start_with(&db.url, &env);
    let base = gw.base.clone();
    scimgate::outbound::install_tls_provider();
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();

    // An application and a service account, through the consent pages.
    let redirect = "http://127.0.0.1:9/cb";
    let (_, tokens) = google_service_account(&client, &base, "crash", redirect).await;
    let access = tokens["access_token"].as_str().unwrap().to_string();
    let ser = tokens["service_account_id"].as_str().unwrap().to_string();

    let rx = Receiver::ok().await;
    for chunk in (0..EMAILS).collect::<Vec<_>>().chunks(50) {
        let items: Vec<Value> = chunk
            .iter()
            .map(|i| json!({"email": format!("u{i}@example.com"), "callback_url": rx.url, "scope": "read_write", "state": format!("u{i}")}))
            .collect();
        let r = client
            .post(format!("{base}/v1/service_account_authorizations"))
            .bearer_auth(&access)
            .json(&json!({"service_account_authorizations": items}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 202);
    }
    while rx.delivered().len() < 20 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    gw.kill();
    let before = rx.delivered().len();
    assert!(before < EMAILS, "the kill landed mid-batch ({before} done)");

    let restarted = Gateway::start_with(&db.url, &env);
    let started = std::time::Instant::now();
    let states = loop {
        let states: HashMap<String, usize> =
            rx.delivered().iter().fold(HashMap::new(), |mut m, r| {
                *m.entry(
                    r.json["authorization"]["state"]
                        .as_str()
                        .unwrap_or("")
                        .to_string(),
                )
                .or_default() += 1;
                m
            });
        if states.len() == EMAILS {
            break states;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{} of {EMAILS} callbacks after restart",
            states.len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let expected: HashSet<String> = (0..EMAILS).map(|i| format!("u{i}")).collect();
    assert_eq!(states.keys().cloned().collect::<HashSet<_>>(), expected);
    assert!(rx
        .delivered()
        .iter()
        .all(|r| r.json["authorization"]["code"].is_string()));
    let twice = states.values().filter(|n| **n > 1).count();
    let detail: Value = client
        .get(format!("{}/api/v1/service_accounts/{ser}", restarted.base))
        .header("Authorization", format!("Api-Key {API_KEY}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(detail["data"]["accounts"], EMAILS, "one account per email");
    assert_eq!(detail["data"]["pending_authorizations"], 0);
    eprintln!("{backend:?}: {before} callbacks before the kill, all {EMAILS} after restart, {twice} sent twice (the kill fell between a send and its record)");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_batch_completes_every_authorization_sqlite() {
    crash_mid_batch(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_batch_completes_every_authorization_postgres() {
    crash_mid_batch(Backend::Postgres).await;
}

const BACKFILL: usize = 5_000;

#[derive(diesel::QueryableByName)]
struct Count {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}

/// DESIGN.md §6.5: a directory of 5 000 users attached to a unit is backfilled; a
/// gateway killed with SIGKILL in the middle, restarted on the same database, provisions
/// every user exactly once (one account, one `account.provisioned` each).
/// How the backfill is disturbed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Disturb {
    /// SIGKILL in the middle, then a restart.
    Kill,
    /// A second instance on the same database follows the same directory.
    SecondInstance,
}

async fn crash_mid_backfill(backend: Backend) {
    backfill(backend, Disturb::Kill).await;
}

async fn backfill(backend: Backend, disturb: Disturb) {
    use diesel::{Connection, RunQueryDsl};
    let Some(db) = TestDb::new(backend) else {
        return;
    };
    let setup = google_setup("b", BACKFILL, Duration::from_millis(2), &[]).await;
    let env = setup.env.clone();
    let mut gw = Gateway::start_with(&db.url, &env);
    let base = gw.base.clone();
    scimgate::outbound::install_tls_provider();
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();

    // A Google service account through the consent pages, in a unit of its own.
    let redirect = "http://127.0.0.1:9/cb";
    let (app, tokens) = google_service_account(&client, &base, "backfill", redirect).await;
    let app_id = app["data"]["id"].as_str().unwrap().to_string();
    let ser = tokens["service_account_id"].as_str().unwrap().to_string();
    let store = scimgate::store::Db::open(&db.url).expect("database");
    let unit = unit_of(&store, app_id, ser).await;

    // 5 000 users pushed before the directory is attached (SCIM Bulk, 1 000 a request).
    let (dir_id, endpoint, scim_secret) = new_directory(&client, &base, "backfill").await;
    for chunk in (0..BACKFILL).collect::<Vec<_>>().chunks(1000) {
        let ops: Vec<Value> = chunk
            .iter()
            .map(|i| json!({"method": "POST", "path": "/Users", "bulkId": format!("b{i}"), "data": crate::common::user(&format!("b{i}@example.com"))}))
            .collect();
        let r = client
            .post(format!("{endpoint}/Bulk"))
            .bearer_auth(&scim_secret)
            .header("Content-Type", "application/scim+json")
            .json(&json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"], "Operations": ops}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    attach(&client, &base, &dir_id, &unit).await;

    let active = |base: String| {
        let client = client.clone();
        let dir_id = dir_id.clone();
        async move {
            let state: Value = client
                .get(format!(
                    "{base}/api/v1/directory-sync/{dir_id}/provisioning"
                ))
                .header("Authorization", format!("Api-Key {API_KEY}"))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            (
                state["data"]["accounts"]["active"].as_i64().unwrap_or(0),
                state["data"]["lag"].as_i64().unwrap_or(i64::MAX),
            )
        }
    };
    let started = std::time::Instant::now();
    while active(base.clone()).await.0 < 300 {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the backfill did not start"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (restarted, _first) = match disturb {
        Disturb::Kill => {
            gw.kill();
            (Gateway::start_with(&db.url, &env), None)
        }
        // The second instance claims the directory whenever the first gives it back
        // between rounds; both keep running.
        Disturb::SecondInstance => (Gateway::start_with(&db.url, &env), Some(gw)),
    };
    let before = active_count(&store).await;
    assert!(
        before < BACKFILL as i64,
        "disturbed mid-backfill ({before})"
    );
    let started = std::time::Instant::now();
    loop {
        let (n, lag) = active(restarted.base.clone()).await;
        if n == BACKFILL as i64 && lag == 0 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(180),
            "{n} of {BACKFILL} provisioned after restart (lag {lag})"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Exactly once: one account and one account.provisioned per user.
    let url = db.url.clone();
    let dir = dir_id.clone();
    let (accounts, provisioned) = tokio::task::spawn_blocking(move || {
        let mut c = scimgate::store::AnyConnection::establish(&url).expect("connect");
        let count = |c: &mut scimgate::store::AnyConnection, sql: String| {
            diesel::sql_query(sql).load::<Count>(c).expect("count")[0].n
        };
        (
            count(&mut c, "SELECT COUNT(*) AS n FROM accounts".into()),
            count(&mut c, format!("SELECT COUNT(*) AS n FROM events WHERE directory_id = '{dir}' AND event_type = 'account.provisioned'")),
        )
    })
    .await
    .unwrap();
    assert_eq!((accounts, provisioned), (BACKFILL as i64, BACKFILL as i64));
    eprintln!(
        "{backend:?} {disturb:?}: {before} provisioned before, all {BACKFILL} exactly once after"
    );
}

/// A unit holding `ser` alone, made in the database (the unit pages are tested
/// elsewhere).
async fn unit_of(store: &scimgate::store::Db, app_id: String, ser: String) -> String {
    store
        .run(move |c| {
            scimgate::store::write_tx(c, |c| {
                let unit = scimgate::store::organizational_units::UnitRow {
                    id: scimgate::ids::OrgUnitId::generate().into_string(),
                    application_id: app_id,
                    created_at: scimgate::store::now(),
                };
                scimgate::store::organizational_units::insert(c, &unit)?;
                scimgate::store::organizational_units::join(c, &ser, &unit.id)?;
                Ok(unit.id)
            })
        })
        .await
        .unwrap()
}

/// A new directory: its id, SCIM endpoint and secret.
async fn new_directory(
    client: &reqwest::Client,
    base: &str,
    tenant: &str,
) -> (String, String, String) {
    let dir: Value = client
        .post(format!("{base}/api/v1/directory-sync"))
        .header("Authorization", format!("Api-Key {API_KEY}"))
        .json(&json!({"tenant": tenant, "product": "p"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let field = |v: &Value| v.as_str().unwrap().to_string();
    (
        field(&dir["data"]["id"]),
        field(&dir["data"]["scim"]["endpoint"]),
        field(&dir["data"]["scim"]["secret"]),
    )
}

async fn attach(client: &reqwest::Client, base: &str, dir: &str, unit: &str) {
    let r = client
        .patch(format!("{base}/api/v1/directory-sync/{dir}"))
        .header("Authorization", format!("Api-Key {API_KEY}"))
        .json(&json!({"organizational_unit_id": unit}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

async fn active_count(store: &scimgate::store::Db) -> i64 {
    store
        .run(|c| {
            use diesel::RunQueryDsl;
            Ok(diesel::sql_query("SELECT COUNT(*) AS n FROM accounts").load::<Count>(c)?[0].n)
        })
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_backfill_provisions_every_user_once_sqlite() {
    crash_mid_backfill(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_backfill_provisions_every_user_once_postgres() {
    crash_mid_backfill(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_provision_every_user_once() {
    backfill(Backend::Postgres, Disturb::SecondInstance).await;
}

/// A directory attached through one instance is followed at once when its users are
/// written through another that started before the attach: the attach and every write
/// another instance cannot follow itself are announced (LISTEN/NOTIFY), so nothing
/// waits for a poll (set to ten minutes here).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_through_another_instance_are_provisioned_without_a_poll() {
    let Some(db) = TestDb::new(Backend::Postgres) else {
        return;
    };
    let setup = google_setup("x", 20, Duration::ZERO, &[("SCIMGATE_POLL_MS", "600000")]).await;
    let first = Gateway::start_with(&db.url, &setup.env);
    let second = Gateway::start_with(&db.url, &setup.env);
    scimgate::outbound::install_tls_provider();
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let (app, tokens) =
        google_service_account(&client, &first.base, "instances", "http://127.0.0.1:9/cb").await;
    let store = scimgate::store::Db::open(&db.url).expect("database");
    let unit = unit_of(
        &store,
        app["data"]["id"].as_str().unwrap().to_string(),
        tokens["service_account_id"].as_str().unwrap().to_string(),
    )
    .await;
    let (dir, _, secret) = new_directory(&client, &first.base, "instances").await;
    attach(&client, &first.base, &dir, &unit).await;

    // Alternately through each instance, one user at a time: each is provisioned in
    // seconds, whichever instance holds the cursor.
    for i in 0..10 {
        let gw = if i % 2 == 0 { &second } else { &first };
        let r = client
            .post(format!("{}/api/scim/v2.0/{dir}/Users", gw.base))
            .bearer_auth(&secret)
            .header("Content-Type", "application/scim+json")
            .json(&crate::common::user(&format!("x{i}@example.com")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
        let started = std::time::Instant::now();
        while active_count(&store).await < i + 1 {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "user {i}, written through the {} instance, not provisioned",
                if i % 2 == 0 { "second" } else { "first" }
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}
