//! Whole HTTP requests — method, path and query, headers, body — sent to the running
//! gateway (in this process, on 127.0.0.1, over a real database). Any answer is fine but
//! a 5xx; and every 32 inputs a canary write of another directory must succeed and be
//! read back, so a wedged pool or a leaked transaction is a crash too.
//!
//! Input: `METHOD PATH[?QUERY]`, then `Name: value` header lines, a blank line, the
//! body. A path under `/api/` is absolute, any other is under the fuzzed directory's SCIM
//! base. `{dir}`, `{user_id}`, `{user2_id}` and `{group_id}` are replaced by live ids;
//! without an `Authorization` header the right credential is added.
//! Database: `SCIMGATE_FUZZ_DATABASE_URL` (default a SQLite file in a temporary folder).
#![no_main]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};

use libfuzzer_sys::fuzz_target;
use scimgate::config::Config;
use scimgate::store::Db;
use serde_json::{json, Value};

const KEY: &str = "fuzz-admin-key";

struct Ids {
    dir: String,
    token: String,
    user: String,
    user2: String,
    group: String,
}

struct Harness {
    rt: tokio::runtime::Runtime,
    base: String,
    client: reqwest::Client,
    ids: Mutex<Ids>,
    canary: Ids,
    runs: AtomicU64,
}

fn harness() -> &'static Harness {
    static H: OnceLock<Harness> = OnceLock::new();
    H.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let url = std::env::var("SCIMGATE_FUZZ_DATABASE_URL").unwrap_or_else(|_| {
            let dir = std::env::temp_dir().join(format!("scimgate-fuzz-{}", std::process::id()));
            std::fs::create_dir_all(&dir).expect("temp dir");
            format!("sqlite://{}", dir.join("fuzz.db").display())
        });
        let config = Config {
            database_url: url.clone(),
            listen: "127.0.0.1:0".into(),
            api_keys: vec![KEY.into()],
            webhook_allow_private: true,
            encryption_key: Some(scimgate::secrets::generate_key().expect("encryption key")),
            ..Config::default()
        };
        let base = rt.block_on(async {
            let db = tokio::task::spawn_blocking(move || Db::open(&url))
                .await
                .expect("join")
                .expect("database");
            let running = scimgate::http::bind(&config, db).expect("bind");
            tokio::spawn(running.server);
            format!("http://{}", running.addr)
        });
        let client = reqwest::Client::new();
        let ids = rt.block_on(seed(&client, &base, "fuzz"));
        let canary = rt.block_on(seed(&client, &base, "canary"));
        Harness {
            rt,
            base,
            client,
            ids: Mutex::new(ids),
            canary,
            runs: AtomicU64::new(0),
        }
    })
}

async fn json_of(resp: reqwest::Response) -> Value {
    resp.json().await.unwrap_or(Value::Null)
}

/// A directory with two users and a group.
async fn seed(client: &reqwest::Client, base: &str, tenant: &str) -> Ids {
    let dir = json_of(
        client
            .post(format!("{base}/api/v1/directory-sync"))
            .header("Authorization", format!("Api-Key {KEY}"))
            .json(&json!({"tenant": tenant, "product": "fuzz"}))
            .send()
            .await
            .expect("create directory"),
    )
    .await;
    let (id, token) = (
        dir["data"]["id"].as_str().expect("id").to_string(),
        dir["data"]["scim"]["secret"].as_str().expect("secret").to_string(),
    );
    let scim = format!("{base}/api/scim/v2.0/{id}");
    let mut users = Vec::new();
    for name in ["ada", "bob"] {
        let n = uuid::Uuid::new_v4().simple().to_string();
        let u = json_of(
            client
                .post(format!("{scim}/Users"))
                .bearer_auth(&token)
                .json(&json!({"userName": format!("{name}-{n}@fuzz.test"),
                              "emails": [{"value": format!("{name}@fuzz.test"), "primary": true}]}))
                .send()
                .await
                .expect("create user"),
        )
        .await;
        users.push(u["id"].as_str().expect("user id").to_string());
    }
    let g = json_of(
        client
            .post(format!("{scim}/Groups"))
            .bearer_auth(&token)
            .json(&json!({"displayName": format!("g-{}", uuid::Uuid::new_v4().simple()),
                          "members": [{"value": users[0]}]}))
            .send()
            .await
            .expect("create group"),
    )
    .await;
    Ids {
        dir: id,
        token,
        user: users[0].clone(),
        user2: users[1].clone(),
        group: g["id"].as_str().expect("group id").to_string(),
    }
}

fn fill(s: &str, ids: &Ids) -> String {
    s.replace("{dir}", &ids.dir)
        .replace("{user_id}", &ids.user)
        .replace("{user2_id}", &ids.user2)
        .replace("{group_id}", &ids.group)
}

const METHODS: [&str; 6] = ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];

fuzz_target!(|data: &[u8]| {
    let h = harness();
    let text = String::from_utf8_lossy(data);
    let (head, body) = text.split_once("\n\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let request_line = lines.next().unwrap_or("");
    let (method, target) = request_line.split_once(' ').unwrap_or(("GET", request_line));
    let method = METHODS
        .iter()
        .find(|m| m.eq_ignore_ascii_case(method))
        .copied()
        .unwrap_or("GET");
    let (url, auth, body) = {
        let ids = h.ids.lock().expect("ids");
        let target = fill(target.trim(), &ids);
        let (url, auth) = if target.starts_with("/api/") {
            let auth = if target.starts_with("/api/scim/") {
                format!("Bearer {}", ids.token)
            } else {
                format!("Api-Key {KEY}")
            };
            (format!("{}{target}", h.base), auth)
        } else {
            (
                format!("{}/api/scim/v2.0/{}{target}", h.base, ids.dir),
                format!("Bearer {}", ids.token),
            )
        };
        (url, auth, fill(body, &ids))
    };
    let Ok(url) = reqwest::Url::parse(&url) else { return };
    let Ok(method) = reqwest::Method::from_bytes(method.as_bytes()) else { return };
    let mut req = h.client.request(method, url.clone()).body(body);
    let mut has_auth = false;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else { continue };
        let (Ok(name), Ok(value)) = (
            reqwest::header::HeaderName::from_bytes(name.trim().as_bytes()),
            reqwest::header::HeaderValue::from_bytes(value.trim().as_bytes()),
        ) else {
            continue;
        };
        // Framing is reqwest's to set; a lying Content-Length only desynchronises the client.
        if name == reqwest::header::CONTENT_LENGTH || name == reqwest::header::TRANSFER_ENCODING {
            continue;
        }
        has_auth |= name == reqwest::header::AUTHORIZATION;
        req = req.header(name, value);
    }
    if !has_auth {
        req = req.header("Authorization", auth);
    }
    let status = h.rt.block_on(async {
        match tokio::time::timeout(std::time::Duration::from_secs(20), req.send()).await {
            Ok(Ok(resp)) => Some(resp.status()),
            Ok(Err(_)) => None, // a request reqwest would not send
            Err(_) => panic!("no answer within 20 s to {url}"),
        }
    });
    if let Some(status) = status {
        assert!(
            status.as_u16() < 500,
            "{status} for {request_line:?} ({} body bytes)",
            data.len()
        );
    }
    if h.runs.fetch_add(1, Ordering::Relaxed) % 32 == 31 {
        h.rt.block_on(check_health(h));
    }
});

/// Another tenant still writes and reads back; the fuzzed directory is recreated when
/// an input deleted it, deactivated it or rotated its secret.
async fn check_health(h: &Harness) {
    let scim = format!("{}/api/scim/v2.0/{}", h.base, h.canary.dir);
    let name = format!("canary-{}@fuzz.test", uuid::Uuid::new_v4().simple());
    let resp = h
        .client
        .post(format!("{scim}/Users"))
        .bearer_auth(&h.canary.token)
        .json(&json!({"userName": name}))
        .send()
        .await
        .expect("canary write");
    assert_eq!(resp.status().as_u16(), 201, "canary write failed: pool wedged?");
    let id = json_of(resp).await["id"].as_str().expect("id").to_string();
    let read = h
        .client
        .get(format!("{scim}/Users/{id}"))
        .bearer_auth(&h.canary.token)
        .send()
        .await
        .expect("canary read");
    assert_eq!(read.status().as_u16(), 200, "canary read failed");
    let gone = h
        .client
        .delete(format!("{scim}/Users/{id}"))
        .bearer_auth(&h.canary.token)
        .send()
        .await
        .expect("canary delete");
    assert_eq!(gone.status().as_u16(), 204, "canary delete failed");

    let probe = {
        let ids = h.ids.lock().expect("ids");
        h.client
            .get(format!("{}/api/scim/v2.0/{}/Users?count=0", h.base, ids.dir))
            .bearer_auth(&ids.token)
    };
    let usable = probe.send().await.map(|r| r.status().as_u16() == 200).unwrap_or(false);
    if !usable {
        let fresh = seed(&h.client, &h.base, "fuzz").await;
        *h.ids.lock().expect("ids") = fresh;
    }
}
