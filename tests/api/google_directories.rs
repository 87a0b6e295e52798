//! Google Workspace directories (DESIGN.md §4) end to end against the local Google: the
//! delegation checked at creation, runs that pull users, groups and members through the
//! Admin SDK's paged listings, the events they give (read back through `/events?after=`),
//! failures part-way, `Retry-After`, expired tokens, and SCIM routes closed.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use scimgate::devproviders::{DevProviders, GoogleUserChange};
use serde_json::{json, Value};

use crate::common::{send, Backend, Dir, TestApp};

const SCOPES: [&str; 3] = [
    "https://www.googleapis.com/auth/admin.directory.user.readonly",
    "https://www.googleapis.com/auth/admin.directory.group.readonly",
    "https://www.googleapis.com/auth/admin.directory.group.member.readonly",
];
const DOMAIN: &str = "acme.test";
const ADMIN: &str = "admin@acme.test";

/// As `backend_tests!`, with the local Google started beside the app.
macro_rules! google_tests {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let g = super::G::start(crate::common::Backend::Sqlite).await.expect("sqlite");
                    super::$name(g).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    if let Some(g) = super::G::start(crate::common::Backend::Postgres).await {
                        super::$name(g).await;
                    }
                }
            )*
        }
    };
}

google_tests!(
    creation_verifies_the_delegation_and_scim_routes_are_closed,
    a_first_sync_of_2500_users_and_50_groups_then_nothing_to_do,
    a_change_set_gives_exactly_its_events,
    a_run_failing_mid_list_deletes_nothing,
    retry_after_is_honoured_and_an_expired_token_is_replaced,
    two_instances_never_run_one_directory_twice,
);

/// The gateway with Google pointed at a fresh local Google.
pub struct G {
    app: TestApp,
    google: DevProviders,
    _key_dir: tempfile::TempDir,
}

impl G {
    async fn start(backend: Backend) -> Option<G> {
        let google = DevProviders::start("127.0.0.1:0").await.expect("providers");
        let key_dir = tempfile::tempdir().expect("tempdir");
        let key_path = key_dir.path().join("google.json");
        std::fs::write(&key_path, google.google_key_json()).expect("key");
        let admin = google.google_admin_url();
        let app = TestApp::start_with(backend, move |c| {
            c.google_service_account_key = Some(key_path);
            c.google_admin_url = admin;
        })
        .await?;
        let st = &google.state;
        st.add_google_user(ADMIN, true).expect("admin");
        st.grant_delegation(DOMAIN, &SCOPES);
        Some(G {
            app,
            google,
            _key_dir: key_dir,
        })
    }

    /// Another gateway on the same database and the same Google.
    async fn second_instance(&self) -> String {
        let mut config = scimgate::Config {
            database_url: self.app.database_url().to_string(),
            listen: "127.0.0.1:0".into(),
            api_keys: vec![crate::common::API_KEY.into()],
            encryption_key: Some(crate::common::ENCRYPTION_KEY.into()),
            ..scimgate::Config::default()
        };
        config.google_service_account_key = Some(self._key_dir.path().join("google.json"));
        config.google_admin_url = self.google.google_admin_url();
        let url = config.database_url.clone();
        let db = tokio::task::spawn_blocking(move || scimgate::store::Db::open(&url))
            .await
            .expect("join")
            .expect("open database");
        let running = scimgate::http::bind(&config, db).expect("bind");
        tokio::spawn(running.server);
        format!("http://{}", running.addr)
    }

    async fn create(&self, domain: &str, admin: &str) -> (StatusCode, Value) {
        send(
            self.app
                .admin(Method::POST, "/directory-sync")
                .json(&json!({
                    "name": "Acme Google", "tenant": "acme", "product": "crm", "type": "google",
                    "google": {"domain": domain, "admin_email": admin},
                })),
        )
        .await
    }

    /// A directory created and synced once.
    async fn directory(&self) -> Dir {
        let (status, body) = self.create(DOMAIN, ADMIN).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let id = body["data"]["id"].as_str().expect("id").to_string();
        let dir = Dir {
            id,
            secret: String::new(),
            endpoint: String::new(),
            json: body["data"].clone(),
        };
        let sync = self.finished(&dir, None).await;
        assert_eq!(sync["state"], "succeeded", "{sync}");
        dir
    }

    async fn sync(&self, dir: &Dir) -> Value {
        let (status, _) = send(
            self.app
                .admin(Method::GET, &format!("/directory-sync/{}", dir.id)),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        let before = self.state(dir).await["finished_at"].clone();
        let (status, body) = send(
            self.app
                .admin(Method::POST, &format!("/directory-sync/{}/sync", dir.id)),
        )
        .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        self.finished(dir, Some(before)).await
    }

    async fn state(&self, dir: &Dir) -> Value {
        let (status, body) = send(
            self.app
                .admin(Method::GET, &format!("/directory-sync/{}", dir.id)),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["data"]["sync"].clone()
    }

    /// The sync state once a run finished after `before` (its `finished_at`).
    async fn finished(&self, dir: &Dir, before: Option<Value>) -> Value {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let sync = self.state(dir).await;
            let done = matches!(sync["state"].as_str(), Some("succeeded" | "failed"));
            if done && Some(&sync["finished_at"]) != before.as_ref() {
                return sync;
            }
            assert!(Instant::now() < deadline, "no run finished: {sync}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Every event of the directory, once the sequencer numbered them all.
    async fn events(&self, dir: &Dir) -> Vec<Value> {
        let mut last = usize::MAX;
        loop {
            let events = self.app.events(dir).await;
            if events.len() == last {
                return events;
            }
            last = events.len();
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }
}

/// Event type → count.
fn kinds(events: &[Value]) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for e in events {
        *out.entry(e["event"].as_str().unwrap_or("").to_string())
            .or_default() += 1;
    }
    out
}

fn counts(pairs: &[(&str, usize)]) -> BTreeMap<String, usize> {
    pairs.iter().map(|(k, n)| (k.to_string(), *n)).collect()
}

async fn creation_verifies_the_delegation_and_scim_routes_are_closed(g: G) {
    let st = &g.google.state;
    st.add_google_user("alice@acme.test", false).unwrap();
    st.add_google_user("root@other.test", true).unwrap();
    st.grant_delegation("other.test", &SCOPES);
    for (domain, admin, reason) in [
        ("acme.test", "alice@acme.test", "not an administrator"),
        ("acme.test", "nobody@acme.test", "Invalid email or User ID"),
        (
            "acme.test",
            "root@other.test",
            "not an address of the domain",
        ),
    ] {
        let (status, body) = g.create(domain, admin).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{admin}: {body}");
        let message = body["error"]["message"].as_str().unwrap_or("");
        assert!(message.contains(reason), "{admin}: {message}");
    }
    // A customer who granted the user scope alone: Google's `unauthorized_client`.
    st.revoke_delegation(DOMAIN);
    st.grant_delegation(DOMAIN, &SCOPES[..1]);
    let (status, body) = g.create(DOMAIN, ADMIN).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("unauthorized_client"),
        "{body}"
    );
    let (status, body) = send(
        g.app
            .admin(Method::POST, "/directory-sync")
            .json(&json!({"tenant": "acme", "product": "crm", "type": "google"})),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    // Nothing was created.
    let (_, list) = send(
        g.app
            .admin(Method::GET, "/directory-sync?tenant=acme&product=crm"),
    )
    .await;
    assert_eq!(list["data"].as_array().map(Vec::len), Some(0), "{list}");

    st.grant_delegation(DOMAIN, &SCOPES);
    let (status, body) = g.create("ACME.test", "Admin@acme.test").await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let data = &body["data"];
    assert_eq!(data["type"], "google");
    assert_eq!(data["scim"], Value::Null, "no SCIM endpoint: {data}");
    assert_eq!(
        data["google"],
        json!({"domain": DOMAIN, "admin_email": ADMIN})
    );
    assert!(data["sync"]["state"].is_string(), "{data}");
    let id = data["id"].as_str().unwrap();
    let (_, list) = send(
        g.app
            .admin(Method::GET, "/directory-sync?tenant=acme&product=crm"),
    )
    .await;
    assert_eq!(list["data"][0]["scim"], Value::Null, "{list}");
    // Its SCIM routes answer 403 whatever the bearer (or none).
    for bearer in [None, Some("wrong"), Some("")] {
        let mut req = g
            .app
            .client
            .get(format!("{}/api/scim/v2.0/{id}/Users", g.app.base));
        if let Some(b) = bearer {
            req = req.bearer_auth(b);
        }
        let (status, body) = send(req).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    }
    let (status, _) = send(
        g.app
            .client
            .post(format!("{}/api/scim/v2.0/{id}/Users", g.app.base))
            .json(&crate::common::user("x@acme.test")),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // Nor has it a SCIM secret to rotate.
    let (status, body) = send(g.app.admin(
        Method::POST,
        &format!("/directory-sync/{id}/scim-secret/rotate"),
    ))
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    // "Sync now" is for Google directories only.
    let other = g.app.create_directory("acme", "other").await;
    let (status, _) = send(
        g.app
            .admin(Method::POST, &format!("/directory-sync/{}/sync", other.id)),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

async fn a_first_sync_of_2500_users_and_50_groups_then_nothing_to_do(g: G) {
    let st = &g.google.state;
    // u0 … u2499 (every 10th suspended), groups of 50 members each.
    st.seed_google(DOMAIN, 2500, 50, 50).unwrap();
    let dir = g.directory().await;
    let sync = g.state(&dir).await;
    assert_eq!(sync["users"], 2501, "{sync}");
    assert_eq!(sync["groups"], 50, "{sync}");
    assert_eq!(sync["error"], Value::Null);
    let events = g.events(&dir).await;
    assert_eq!(
        kinds(&events),
        counts(&[
            ("dsync.created", 1),
            ("user.created", 2501),
            ("group.created", 50),
            ("group.user_added", 2500),
        ])
    );
    // Suspended users are created inactive, never created active and then updated.
    let inactive = events
        .iter()
        .filter(|e| e["event"] == "user.created" && e["data"]["active"] == false)
        .count();
    assert_eq!(inactive, 250);
    let u7 = events
        .iter()
        .find(|e| e["event"] == "user.created" && e["data"]["email"] == "u7@acme.test")
        .expect("u7");
    let raw = &u7["data"]["raw"];
    assert_eq!(raw["userName"], "u7@acme.test");
    assert_eq!(raw["name"]["givenName"], "U7");
    assert!(
        raw["externalId"].as_str().is_some_and(|s| s.len() == 21),
        "{raw}"
    );
    let sequences: Vec<i64> = events
        .iter()
        .map(|e| e["sequence"].as_i64().unwrap())
        .collect();
    assert_eq!(sequences, (1..=events.len() as i64).collect::<Vec<_>>());
    // The admin API shows what the directory holds.
    let (_, users) = send(g.app.admin(
        Method::GET,
        &format!("/directory-sync/{}/users?pageLimit=1000", dir.id),
    ))
    .await;
    assert_eq!(users["data"].as_array().map(Vec::len), Some(1000));

    // Unchanged data, and a sign-in (etag and lastLoginTime), write nothing.
    st.update_google_user(
        "u3@acme.test",
        GoogleUserChange {
            sign_in: true,
            ..Default::default()
        },
    )
    .unwrap();
    let sync = g.sync(&dir).await;
    assert_eq!(sync["state"], "succeeded", "{sync}");
    assert_eq!(g.events(&dir).await.len(), events.len());
}

async fn a_change_set_gives_exactly_its_events(g: G) {
    let st = &g.google.state;
    for i in 0..6 {
        st.add_google_user(&format!("p{i}@acme.test"), false)
            .unwrap();
    }
    st.add_google_group("eng@acme.test", "Engineering").unwrap();
    st.add_google_group("ops@acme.test", "Ops").unwrap();
    for (group, member) in [
        ("eng@acme.test", "p0@acme.test"),
        ("eng@acme.test", "p1@acme.test"),
        ("eng@acme.test", "p4@acme.test"),
        ("ops@acme.test", "p2@acme.test"),
        // Nested groups and outside addresses make no membership.
        ("ops@acme.test", "eng@acme.test"),
        ("ops@acme.test", "partner@elsewhere.test"),
    ] {
        st.add_google_member(group, member, "MEMBER").unwrap();
    }
    let dir = g.directory().await;
    let first = g.events(&dir).await;
    assert_eq!(
        kinds(&first),
        counts(&[
            ("dsync.created", 1),
            ("user.created", 7),
            ("group.created", 2),
            ("group.user_added", 4),
        ])
    );
    let id_of = |email: &str| {
        first
            .iter()
            .find(|e| e["event"] == "user.created" && e["data"]["email"] == email)
            .map(|e| e["data"]["id"].as_str().unwrap().to_string())
            .expect("created")
    };
    let change = |email: &str, c: GoogleUserChange| st.update_google_user(email, c).unwrap();
    st.add_google_user("new@acme.test", false).unwrap();
    change(
        "p1@acme.test",
        GoogleUserChange {
            suspended: Some(true),
            ..Default::default()
        },
    );
    change(
        "p2@acme.test",
        GoogleUserChange {
            new_email: Some("p2.renamed@acme.test".into()),
            ..Default::default()
        },
    );
    change(
        "p3@acme.test",
        GoogleUserChange {
            family_name: Some("Hopper".into()),
            ..Default::default()
        },
    );
    change(
        "p5@acme.test",
        GoogleUserChange {
            sign_in: true,
            ..Default::default()
        },
    );
    st.remove_google_user("p4@acme.test");
    st.add_google_member("ops@acme.test", "p0@acme.test", "MEMBER")
        .unwrap();
    st.remove_google_member("eng@acme.test", "p0@acme.test");
    st.add_google_member("eng@acme.test", "new@acme.test", "MEMBER")
        .unwrap();
    let sync = g.sync(&dir).await;
    assert_eq!(sync["state"], "succeeded", "{sync}");
    assert_eq!(sync["users"], 7);
    let all = g.events(&dir).await;
    let changes = &all[first.len()..];
    let mut seen: Vec<(String, String)> = changes
        .iter()
        .map(|e| {
            let d = &e["data"];
            let who = d["email"].as_str().unwrap_or("").to_string();
            let what = match d["group"]["name"].as_str() {
                Some(group) => format!("{who} {group}"),
                None => who,
            };
            (e["event"].as_str().unwrap().to_string(), what)
        })
        .collect();
    seen.sort();
    let mut expected: Vec<(String, String)> = [
        ("user.created", "new@acme.test"),
        ("user.updated", "p1@acme.test"),
        ("user.updated", "p2.renamed@acme.test"),
        ("user.updated", "p3@acme.test"),
        ("group.user_removed", "p4@acme.test Engineering"),
        ("user.deleted", "p4@acme.test"),
        ("group.user_added", "p0@acme.test Ops"),
        ("group.user_removed", "p0@acme.test Engineering"),
        ("group.user_added", "new@acme.test Engineering"),
    ]
    .iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    expected.sort();
    assert_eq!(seen, expected);
    // The rename is the same user; the suspension keeps them, inactive.
    let renamed = changes
        .iter()
        .find(|e| e["data"]["email"] == "p2.renamed@acme.test")
        .unwrap();
    assert_eq!(renamed["data"]["id"], id_of("p2@acme.test"));
    assert_eq!(renamed["data"]["raw"]["userName"], "p2.renamed@acme.test");
    let suspended = changes
        .iter()
        .find(|e| e["data"]["email"] == "p1@acme.test")
        .unwrap();
    assert_eq!(suspended["data"]["active"], false);
    // Deleting the user came after its removal from the group.
    let position = |kind: &str| {
        changes
            .iter()
            .position(|e| e["event"] == kind && e["data"]["email"] == "p4@acme.test")
            .unwrap()
    };
    assert!(position("group.user_removed") < position("user.deleted"));
}

async fn a_run_failing_mid_list_deletes_nothing(g: G) {
    let st = &g.google.state;
    st.seed_google(DOMAIN, 1200, 0, 0).unwrap();
    let dir = g.directory().await;
    let before = g.events(&dir).await.len();
    for i in 0..10 {
        st.remove_google_user(&format!("u{i}@acme.test"));
    }
    // The first page comes, the second fails every attempt.
    st.fail_after("google/admin", 1, 500, 3, None);
    let sync = g.sync(&dir).await;
    assert_eq!(sync["state"], "failed", "{sync}");
    let error = sync["error"].as_str().unwrap_or("");
    assert!(error.contains("500"), "{sync}");
    assert_eq!(sync["users"], 1201, "the last good counts stay: {sync}");
    assert_eq!(g.events(&dir).await.len(), before, "nothing changed");
    // The next good run deletes them and clears the error.
    let sync = g.sync(&dir).await;
    assert_eq!(sync["state"], "succeeded", "{sync}");
    assert_eq!(sync["error"], Value::Null);
    assert_eq!(sync["users"], 1191);
    let events = g.events(&dir).await;
    assert_eq!(kinds(&events[before..]), counts(&[("user.deleted", 10)]));
}

async fn retry_after_is_honoured_and_an_expired_token_is_replaced(g: G) {
    let st = &g.google.state;
    st.seed_google(DOMAIN, 30, 2, 5).unwrap();
    let dir = g.directory().await;
    let before = g.events(&dir).await.len();
    let tokens = st.requests("google/token");
    // The next request: 429 asking for 2 s; then the token turns out expired (401).
    st.fail_next("google/admin", 429, 1, Some(2));
    st.expire_tokens();
    st.add_google_user("late@acme.test", false).unwrap();
    let started = Instant::now();
    let sync = g.sync(&dir).await;
    assert_eq!(sync["state"], "succeeded", "{sync}");
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "Retry-After waited"
    );
    assert_eq!(st.requests("google/token"), tokens + 1, "one new token");
    let events = g.events(&dir).await;
    assert_eq!(kinds(&events[before..]), counts(&[("user.created", 1)]));
    // A Retry-After longer than the run's lease ends the run (the next one waits it)
    // instead of sleeping while holding the directory.
    st.fail_next("google/admin", 429, 1, Some(600));
    let started = Instant::now();
    let sync = g.sync(&dir).await;
    assert_eq!(sync["state"], "failed", "{sync}");
    assert!(
        sync["error"].as_str().unwrap_or("").contains("429"),
        "{sync}"
    );
    assert!(started.elapsed() < Duration::from_secs(30));
    // Requests while a run is under way merge into one more run.
    let before = sync["finished_at"].clone();
    st.set_latency(Duration::from_millis(300));
    let path = format!("/directory-sync/{}/sync", dir.id);
    for _ in 0..3 {
        let (status, _) = send(g.app.admin(Method::POST, &path)).await;
        assert_eq!(status, StatusCode::ACCEPTED);
    }
    st.set_latency(Duration::ZERO);
    let sync = g.finished(&dir, Some(before)).await;
    assert_eq!(sync["state"], "succeeded", "{sync}");
}

async fn two_instances_never_run_one_directory_twice(g: G) {
    if g.app.db.backend() != scimgate::store::Backend::Postgres {
        return; // One instance per SQLite file.
    }
    let st = &g.google.state;
    st.seed_google(DOMAIN, 3000, 3, 100).unwrap();
    // Each page waits: the first run lasts long enough for the other instance to try.
    st.set_latency(Duration::from_millis(100));
    let other = g.second_instance().await;
    let (status, body) = g.create(DOMAIN, ADMIN).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let id = body["data"]["id"].as_str().unwrap().to_string();
    let dir = Dir {
        id: id.clone(),
        secret: String::new(),
        endpoint: String::new(),
        json: body["data"].clone(),
    };
    // "Sync now" through the other instance while the first run is under way.
    for _ in 0..3 {
        let (status, _) = send(
            g.app
                .client
                .post(format!("{other}/api/v1/directory-sync/{id}/sync"))
                .header(
                    "Authorization",
                    format!("Api-Key {}", crate::common::API_KEY),
                ),
        )
        .await;
        assert_eq!(status, StatusCode::ACCEPTED);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    st.set_latency(Duration::ZERO);
    // Settled: a finished run and no other after it for a while.
    let mut last = g.finished(&dir, None).await;
    loop {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let now = g.state(&dir).await;
        if now == last {
            break;
        }
        last = g.finished(&dir, None).await;
    }
    assert_eq!(last["state"], "succeeded", "{last}");
    // The request made during the first run gave one more run (by either instance):
    // users.get at creation, then 7 pages of users, 1 of groups, 3 of members per run.
    let (creation, per_run) = (1, 11);
    assert!(
        st.requests("google/admin") >= creation + 2 * per_run,
        "{} Admin SDK requests",
        st.requests("google/admin")
    );
    let events = g.events(&dir).await;
    assert_eq!(
        kinds(&events),
        counts(&[
            ("dsync.created", 1),
            ("user.created", 3001),
            ("group.created", 3),
            ("group.user_added", 300),
        ])
    );
    let mut emails: Vec<&str> = events
        .iter()
        .filter(|e| e["event"] == "user.created")
        .filter_map(|e| e["data"]["email"].as_str())
        .collect();
    emails.sort();
    emails.dedup();
    assert_eq!(emails.len(), 3001, "each user created once");
}
