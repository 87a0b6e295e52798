//! `load --hostile`: memory and fairness under hostile input (issue 8). One tenant sends
//! the costliest requests the limits allow — filters of the most terms over the longest
//! values, PATCHes of the most operations, Bulk near its size limit, and requests just
//! past each bound — while another tenant creates users. Prints the process's resident
//! memory idle, after the battery and after a pause, and the other tenant's create
//! latency during the battery.

use std::time::{Duration, Instant};

use scimgate::scim::limits::{
    MAX_FILTER_TERMS, MAX_INDEXED_CHARS, MAX_PATCH_OPERATIONS, MAX_STRING_CHARS,
};
use serde_json::{json, Value};

/// Resident memory of this process (the gateway and this client), in MiB.
fn rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

async fn directory(client: &reqwest::Client, base: &str, tenant: &str) -> (String, String) {
    let dir: Value = client
        .post(format!("{base}/api/v1/directory-sync"))
        .header("Authorization", "Api-Key load")
        .json(&json!({"tenant": tenant, "product": "bench"}))
        .send()
        .await
        .expect("directory")
        .json()
        .await
        .expect("json");
    let id = dir["data"]["id"].as_str().expect("id").to_string();
    let secret = dir["data"]["scim"]["secret"]
        .as_str()
        .expect("secret")
        .to_string();
    (format!("{base}/api/scim/v2.0/{id}"), secret)
}

pub async fn run(url: &str, rounds: usize) {
    let (_db, base) = super::serve(url, |_| {});
    scimgate::outbound::install_tls_provider();
    let client = reqwest::Client::new();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let idle = rss_mib();

    let (bad, bad_token) = directory(&client, &base, "hostile").await;
    let (good, good_token) = directory(&client, &base, "victim").await;
    // Users with every indexed string at its longest and a 16 384-character attribute.
    let mut ids = Vec::new();
    for i in 0..200 {
        let local = format!("{i:04}{}", "a".repeat(MAX_INDEXED_CHARS - 20));
        let u: Value = client
            .post(format!("{bad}/Users"))
            .bearer_auth(&bad_token)
            .json(&json!({
                "userName": format!("{local}@acme.com"),
                "emails": [{"value": format!("{local}@acme.com"), "type": "work", "primary": true}],
                "title": "t".repeat(MAX_STRING_CHARS),
            }))
            .send()
            .await
            .expect("user")
            .json()
            .await
            .expect("json");
        ids.push(u["id"].as_str().expect("id").to_string());
    }
    let seeded = rss_mib();

    let search = json!({"filter": vec![r#"emails co "a""#; MAX_FILTER_TERMS].join(" and "),
                        "count": 100});
    let over = json!({"filter": vec![r#"emails co "a""#; MAX_FILTER_TERMS + 1].join(" and ")});
    let patch = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": (0..MAX_PATCH_OPERATIONS).map(|i| json!({"op": "replace",
            "path": "emails[type eq \"work\"].value", "value": format!("{i}@acme.com")}))
            .collect::<Vec<_>>()});
    let started = Instant::now();
    let mut statuses = std::collections::BTreeMap::<u16, usize>::new();
    let victim = {
        let (client, good, token) = (client.clone(), good.clone(), good_token.clone());
        tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut i = 0;
            while !VICTIM_STOP.load(std::sync::atomic::Ordering::Relaxed) {
                let t = Instant::now();
                let r = client
                    .post(format!("{good}/Users"))
                    .bearer_auth(&token)
                    .json(&json!({"userName": format!("victim{i}@globex.com")}))
                    .send()
                    .await
                    .expect("victim");
                assert_eq!(r.status().as_u16(), 201, "the other tenant was refused");
                latencies.push(t.elapsed());
                i += 1;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            latencies
        })
    };
    for round in 0..rounds {
        let mut tasks = Vec::new();
        for k in 0..8 {
            let (client, bad, token) = (client.clone(), bad.clone(), bad_token.clone());
            let body = match k % 4 {
                0 | 1 => ("POST", "/Users/.search".to_string(), search.clone()),
                2 => (
                    "PATCH",
                    format!("/Users/{}", ids[(round * 8 + k) % ids.len()]),
                    patch.clone(),
                ),
                _ => ("POST", "/Users/.search".to_string(), over.clone()),
            };
            tasks.push(tokio::spawn(async move {
                let (method, path, json) = body;
                let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
                client
                    .request(method, format!("{bad}{path}"))
                    .bearer_auth(&token)
                    .json(&json)
                    .send()
                    .await
                    .expect("hostile request")
                    .status()
                    .as_u16()
            }));
        }
        for t in tasks {
            *statuses.entry(t.await.expect("join")).or_default() += 1;
        }
    }
    let battery = started.elapsed();
    VICTIM_STOP.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut lat = victim.await.expect("victim");
    lat.sort();
    let after = rss_mib();
    tokio::time::sleep(Duration::from_secs(10)).await;
    let settled = rss_mib();
    let pct = |p: f64| {
        lat.get(((lat.len() as f64 * p).ceil() as usize).clamp(1, lat.len().max(1)) - 1)
            .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    };
    println!("| measure | value |\n|---|---|");
    println!("| RSS idle (MiB) | {idle:.1} |");
    println!("| RSS after seeding 200 maximal users (MiB) | {seeded:.1} |");
    println!("| RSS right after the battery (MiB) | {after:.1} |");
    println!("| RSS 10 s later (MiB) | {settled:.1} |");
    println!(
        "| battery | {rounds} rounds × 8 concurrent requests in {:.1} s; statuses {statuses:?} |",
        battery.as_secs_f64()
    );
    println!(
        "| other tenant's POST /Users meanwhile | {} requests, p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms |",
        lat.len(),
        pct(0.5),
        pct(0.99),
        lat.last().map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    );
}

static VICTIM_STOP: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
