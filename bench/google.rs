//! `--google`: Google Workspace directories against the local Google (in this process):
//! a directory of `--users` users (default 100 000; every 10th suspended) in groups of
//! 200 (one group per 1 000 users) pulled in full, then a run over unchanged data, then
//! an incremental run after 100 changes (25 new users, 25 suspended, 25 renamed, 25
//! deleted). Each run is timed from the API's `started_at` to `finished_at` (listing and
//! writing; numbering and webhooks follow asynchronously).

use std::time::{Duration, Instant};

use scimgate::devproviders::{DevProviders, GoogleUserChange};
use serde_json::{json, Value};

use super::serve;

const DOMAIN: &str = "bench.example";
const ADMIN: &str = "admin@bench.example";
const SCOPES: [&str; 3] = [
    "https://www.googleapis.com/auth/admin.directory.user.readonly",
    "https://www.googleapis.com/auth/admin.directory.group.readonly",
    "https://www.googleapis.com/auth/admin.directory.group.member.readonly",
];

pub async fn run(users: usize, url: &str) {
    let fakes = DevProviders::start("127.0.0.1:0").await.expect("providers");
    let st = &fakes.state;
    st.add_google_user(ADMIN, true).expect("admin");
    st.grant_delegation(DOMAIN, &SCOPES);
    let groups = (users / 1000).max(1);
    let seeding = Instant::now();
    st.seed_google(DOMAIN, users, groups, 200).expect("seed");
    eprintln!(
        "seeded the local Google with {users} users and {groups} groups in {:.1} s",
        seeding.elapsed().as_secs_f64()
    );
    let key =
        std::env::temp_dir().join(format!("scimgate-load-google-{}.json", std::process::id()));
    std::fs::write(&key, fakes.google_key_json()).expect("key file");
    let admin_url = fakes.google_admin_url();
    let (_db, base) = serve(url, |c| {
        c.google_service_account_key = Some(key.clone());
        c.google_admin_url = admin_url;
        // Runs only when asked: the interval must not start one between measurements.
        c.google_sync_interval = Duration::from_secs(24 * 3600);
    });
    scimgate::outbound::install_tls_provider();
    let client = reqwest::Client::new();
    let admin = |method: reqwest::Method, path: &str| {
        client
            .request(method, format!("{base}/api/v1/directory-sync{path}"))
            .header("Authorization", "Api-Key load")
    };

    let created: Value = admin(reqwest::Method::POST, "")
        .json(
            &json!({"tenant": "bench", "product": "google", "type": "google",
                      "google": {"domain": DOMAIN, "admin_email": ADMIN}}),
        )
        .send()
        .await
        .expect("create")
        .json()
        .await
        .expect("json");
    let id = created["data"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("not created: {created}"))
        .to_string();
    let state = |id: String| {
        let req = admin(reqwest::Method::GET, &format!("/{id}"));
        async move {
            let v: Value = req.send().await.expect("get").json().await.expect("json");
            v["data"]["sync"].clone()
        }
    };
    let finished = |before: Value| {
        let id = id.clone();
        async move {
            loop {
                let s = state(id.clone()).await;
                let done = matches!(s["state"].as_str(), Some("succeeded" | "failed"));
                if done && s["finished_at"] != before {
                    return s;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    let seconds = |s: &Value| {
        let t = |k: &str| {
            chrono::DateTime::parse_from_rfc3339(s[k].as_str().expect("time")).expect("rfc 3339")
        };
        (t("finished_at") - t("started_at")).num_milliseconds() as f64 / 1000.0
    };
    let sync_now = |before: Value| {
        let req = admin(reqwest::Method::POST, &format!("/{id}/sync"));
        async move {
            let r = req.send().await.expect("sync");
            assert_eq!(r.status().as_u16(), 202);
            finished(before).await
        }
    };

    let mut rows = Vec::new();
    let full = finished(Value::Null).await;
    assert_eq!(full["state"], "succeeded", "{full}");
    rows.push(("full sync", full.clone()));
    let unchanged = sync_now(full["finished_at"].clone()).await;
    rows.push(("unchanged", unchanged.clone()));
    for i in 0..25 {
        st.add_google_user(&format!("new{i}@{DOMAIN}"), false)
            .expect("new");
        let change = |email: String, c: GoogleUserChange| st.update_google_user(&email, c);
        change(
            format!("u{}@{DOMAIN}", 10 * i),
            GoogleUserChange {
                suspended: Some(true),
                ..Default::default()
            },
        )
        .expect("suspend");
        change(
            format!("u{}@{DOMAIN}", 10 * i + 1),
            GoogleUserChange {
                new_email: Some(format!("renamed{i}@{DOMAIN}")),
                ..Default::default()
            },
        )
        .expect("rename");
        st.remove_google_user(&format!("u{}@{DOMAIN}", 10 * i + 2));
    }
    let incremental = sync_now(unchanged["finished_at"].clone()).await;
    rows.push(("100 changes", incremental));

    println!("\nGoogle Workspace directory sync, {users} users, {groups} groups of 200\n");
    println!("| run | state | users | groups | seconds |");
    println!("|---|---|---|---|---|");
    for (name, s) in &rows {
        println!(
            "| {name} | {} | {} | {} | {:.2} |",
            s["state"].as_str().unwrap_or("?"),
            s["users"],
            s["groups"],
            seconds(s)
        );
    }
    let _ = std::fs::remove_file(&key);
    fakes.stop().await;
}
