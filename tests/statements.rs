//! Statements per write (issue 10), counted by a diesel instrumentation hook on every
//! connection of this process: everything one write causes at a single writer — its
//! transaction, the numbering and fan-out of its event, pool traffic — on PostgreSQL.
//! Its own binary, so no other test's statements are counted. Prints the counts; the
//! ceilings below hold them, so a regression fails CI.

#[path = "api/common.rs"]
#[allow(dead_code)]
mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use diesel::connection::{Instrumentation, InstrumentationEvent};
use reqwest::{Method, StatusCode};
use serde_json::json;

use common::{send, user, Backend, TestApp};

static STATEMENTS: AtomicUsize = AtomicUsize::new(0);

struct Counter;

impl Instrumentation for Counter {
    fn on_connection_event(&mut self, event: InstrumentationEvent<'_>) {
        if let InstrumentationEvent::StartQuery { query, .. } = event {
            STATEMENTS.fetch_add(1, Ordering::SeqCst);
            if std::env::var_os("SCIMGATE_PRINT_STATEMENTS").is_some() {
                let text = query.to_string();
                eprintln!("SQL {}", text.chars().take(160).collect::<String>());
            }
        }
    }
}

/// Statements sent from now until the count has been still for 300 ms (the sequencer
/// and the dispatcher have done what the write woke them for).
async fn settle(from: usize) -> usize {
    let mut last = STATEMENTS.load(Ordering::SeqCst);
    loop {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let now = STATEMENTS.load(Ordering::SeqCst);
        if now == last {
            return now - from;
        }
        last = now;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statements_per_write_on_postgres() {
    diesel::connection::set_default_instrumentation(|| Some(Box::new(Counter)))
        .expect("instrumentation");
    // No unwoken polling: what is counted is what the writes cause. No directory cache:
    // every request reads its directory, the worst case, so the counts do not depend on
    // timing.
    let Some(app) = TestApp::start_with(Backend::Postgres, |c| {
        c.poll_ms = 600_000;
        c.directory_cache_ms = 0;
    })
    .await
    else {
        return;
    };
    let dir = app.create_directory("acme", "crm").await;
    // Warm up: the directory's cache entry, the pool's connections.
    app.create_user(&dir, "warm@acme.com").await;
    settle(0).await;

    let start = STATEMENTS.load(Ordering::SeqCst);
    let (status, created) = send(
        app.scim(&dir, Method::POST, "/Users")
            .json(&user("ada@acme.com")),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let post = settle(start).await;

    let path = format!("/Users/{}", created["id"].as_str().expect("id"));
    let start = STATEMENTS.load(Ordering::SeqCst);
    let (status, _) = send(app.scim(&dir, Method::PATCH, &path).json(&json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "replace", "path": "active", "value": false}]
    })))
    .await;
    assert_eq!(status, StatusCode::OK);
    let patch = settle(start).await;

    let start = STATEMENTS.load(Ordering::SeqCst);
    let (status, _) = send(app.scim(&dir, Method::DELETE, &path)).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let delete = settle(start).await;

    // Sixteen writers at once: numbering and fan-out serve several events per
    // transaction, so a write costs less than alone.
    let mut ids = Vec::new();
    for i in 0..16 {
        let u = app.create_user(&dir, &format!("w{i}@acme.com")).await;
        ids.push(u["id"].as_str().expect("id").to_string());
    }
    settle(0).await;
    let start = STATEMENTS.load(Ordering::SeqCst);
    let rounds = 10;
    let mut writers = Vec::new();
    for id in ids {
        let (client, url, secret) = (
            app.client.clone(),
            format!("{}/Users/{id}", dir.endpoint),
            dir.secret.clone(),
        );
        writers.push(tokio::spawn(async move {
            for r in 0..rounds {
                let resp = client
                    .patch(&url)
                    .bearer_auth(&secret)
                    .json(&json!({
                        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                        "Operations": [{"op": "replace", "path": "active", "value": r % 2 == 0}]
                    }))
                    .send()
                    .await
                    .expect("patch");
                assert_eq!(resp.status(), StatusCode::OK);
            }
        }));
    }
    for w in writers {
        w.await.expect("writer");
    }
    let concurrent = settle(start).await;
    let per_patch = concurrent as f64 / (16 * rounds) as f64;

    // An idle instance with the default poll: only its safety-net polls (the sequencer's
    // and the dispatcher's), and the listener reads without sending.
    let Some(_idle) = TestApp::start(Backend::Postgres).await else {
        return;
    };
    tokio::time::sleep(Duration::from_secs(1)).await;
    let start = STATEMENTS.load(Ordering::SeqCst);
    tokio::time::sleep(Duration::from_secs(15)).await;
    let idle = STATEMENTS.load(Ordering::SeqCst) - start;

    println!("statements per write (PostgreSQL, one writer): POST {post}, PATCH {patch}, DELETE {delete}; 16 writers: {per_patch:.1} per PATCH; idle instance: {idle} in 15 s");
    assert!(
        per_patch <= patch as f64,
        "{per_patch} statements per PATCH with 16 writers"
    );
    // Issue 10: at most 12 a minute, 3 in 15 s.
    assert!(idle <= 3, "an idle instance sent {idle} statements in 15 s");
    // Issue 10's targets are 12, 12 and 14 (before it, with the directory cached: 11-19,
    // 27 and 17). The ceilings are the counts now: lower them as statements go.
    assert!(post <= 7, "POST /Users sent {post} statements");
    assert!(patch <= 12, "PATCH (one attribute) sent {patch} statements");
    assert!(delete <= 13, "DELETE sent {delete} statements");
}
