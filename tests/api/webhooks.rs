//! Webhook fan-out end to end: real receivers on 127.0.0.1, signatures checked both ways
//! on every delivery, order per endpoint, retries, dead letters, 410, replay, filters,
//! batching, secret rotation, the global endpoint and isolation of a dead endpoint.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::backend_tests;
use crate::common::{send, Backend, Dir, TestApp};
use crate::receiver::{sequences, Receiver, Reply};

backend_tests!(
    deliveries_are_signed_in_order_and_match_the_stream,
    failed_attempts_are_retried_in_order_and_logged,
    endpoints_filter_batch_and_rotate_secrets,
    gone_disables_and_dead_letters_are_listed_and_replayed,
    replay_since_sends_history_in_order,
    primary_endpoint_mirrors_the_directory_webhook,
    directories_from_before_endpoints_are_adopted,
    a_disabled_endpoint_keeps_its_queue,
    replaying_a_waiting_head_sends_it_now_in_order,
);

const GROUP: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";

async fn add_endpoint(app: &TestApp, dir: &Dir, body: Value) -> Value {
    let (status, body) = send(
        app.admin(
            Method::POST,
            &format!("/directory-sync/{}/webhooks", dir.id),
        )
        .json(&body),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body["data"].clone()
}

async fn create_group(app: &TestApp, dir: &Dir, name: &str, members: &[&Value]) -> Value {
    let members: Vec<Value> = members.iter().map(|u| json!({"value": u["id"]})).collect();
    let (status, body) = send(app.scim(dir, Method::POST, "/Groups").json(&json!({
        "schemas": [GROUP], "displayName": name, "members": members,
    })))
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body
}

async fn deliveries_are_signed_in_order_and_match_the_stream(app: TestApp) {
    let rx = Receiver::ok().await;
    let dir = app
        .create_directory_with(json!({
            "tenant": "acme", "product": "crm",
            "webhook_url": rx.url, "webhook_secret": "jackson-style-secret",
        }))
        .await;
    let mut users = Vec::new();
    for i in 0..5 {
        users.push(app.create_user(&dir, &format!("u{i}@acme.com")).await);
    }
    create_group(&app, &dir, "Eng", &[&users[0], &users[1]]).await;
    let path = format!("/Users/{}", users[0]["id"].as_str().unwrap());
    send(app.scim(&dir, Method::DELETE, &path)).await;

    let stream = app.events(&dir).await;
    assert_eq!(stream.len(), 1 + 5 + 1 + 2 + 2); // dsync, users, group, adds, remove+delete
    let got = rx.wait_for(stream.len()).await;
    assert_eq!(got, stream, "the webhook stream is the event stream");
    for r in rx.delivered() {
        r.assert_signed(&["jackson-style-secret"]);
        assert_eq!(r.header("webhook-id"), r.json["id"].as_str().unwrap());
        assert_eq!(r.header("content-type"), "application/json");
    }
    assert_eq!(rx.received().len(), stream.len(), "nothing sent twice");
}

async fn failed_attempts_are_retried_in_order_and_logged(app: TestApp) {
    // Every third event fails its first attempt; every fifth asks to wait via Retry-After.
    let rx = Receiver::start(|body, seen| {
        let seq = body["sequence"].as_i64().unwrap_or(0);
        match (seq % 3, seq % 5, seen) {
            (0, _, 0) => Reply::status(500),
            (_, 0, 0) => Reply {
                status: 503,
                delay: Duration::ZERO,
                retry_after: Some("0".into()),
            },
            _ => Reply::status(200),
        }
    })
    .await;
    let dir = app
        .create_directory_with(json!({"tenant": "acme", "product": "crm", "webhook_url": rx.url}))
        .await;
    let secret = dir.json["webhook"]["secret"].as_str().unwrap().to_string();
    assert!(
        secret.starts_with("whsec_"),
        "generated secret is shown once"
    );
    for i in 0..12 {
        app.create_user(&dir, &format!("r{i}@acme.com")).await;
    }
    let stream = app.events(&dir).await;
    let got = rx.wait_for(stream.len()).await;
    assert_eq!(
        sequences(&got),
        (1..=stream.len() as i64).collect::<Vec<_>>(),
        "each event delivered once, in order, despite failures"
    );
    let failures = rx.received().iter().filter(|r| r.status >= 500).count();
    assert_eq!(
        failures,
        (1..=13).filter(|s| s % 3 == 0 || s % 5 == 0).count()
    );
    for r in rx.received() {
        r.assert_signed(&[&secret]);
    }
    // The event view shows both attempts.
    let third = &stream[2];
    let (status, body) = send(app.admin(
        Method::GET,
        &format!(
            "/directory-sync/{}/events/{}",
            dir.id,
            third["id"].as_str().unwrap()
        ),
    ))
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"], *third, "data is the event as delivered");
    assert_eq!(body["deliveries"][0]["status"], "delivered", "{body}");
    assert_eq!(body["deliveries"][0]["attempts"], 2);
    let attempts = body["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 2, "{body}");
    assert_eq!(attempts[0]["status"], 500);
    assert_eq!(attempts[0]["response"], "answered 500");
    assert_eq!(attempts[1]["status"], 200);
    assert!(attempts[1]["duration_ms"].as_i64().is_some());
}

async fn endpoints_filter_batch_and_rotate_secrets(app: TestApp) {
    let dir = app.create_directory("acme", "crm").await;
    app.events(&dir).await; // dsync.created is numbered before any endpoint exists
    let only_created = Receiver::ok().await;
    let ep1 = add_endpoint(
        &app,
        &dir,
        json!({"url": only_created.url, "event_types": ["user.created"]}),
    )
    .await;
    let secret1 = ep1["secret"].as_str().unwrap().to_string();
    assert!(secret1.starts_with("whsec_"));
    assert_eq!(ep1["event_types"], json!(["user.created"]));
    let mut users = Vec::new();
    for i in 0..4 {
        users.push(app.create_user(&dir, &format!("b{i}@acme.com")).await);
    }
    app.events(&dir).await;
    let batched = Receiver::ok().await;
    let ep2 = add_endpoint(
        &app,
        &dir,
        json!({"url": batched.url, "batch_size": 3, "secret": "given-secret"}),
    )
    .await;
    assert_eq!(ep2["secret"], "given-secret");
    let refs: Vec<&Value> = users.iter().collect();
    create_group(&app, &dir, "Batch", &refs).await; // 5 events in one transaction
    let got = batched.wait_for(5).await;
    assert_eq!(
        got.iter()
            .map(|e| e["event"].as_str().unwrap())
            .collect::<Vec<_>>(),
        [
            "group.created",
            "group.user_added",
            "group.user_added",
            "group.user_added",
            "group.user_added"
        ]
    );
    let sizes: Vec<usize> = batched
        .delivered()
        .iter()
        .map(|r| r.events().len())
        .collect();
    assert_eq!(sizes, [3, 2], "arrays of batch_size events");
    let mut batch_ids = std::collections::HashSet::new();
    for r in batched.delivered() {
        r.assert_signed(&["given-secret"]);
        assert!(r.header("webhook-id").starts_with("msg_"));
        assert!(batch_ids.insert(r.header("webhook-id").to_string()));
    }
    let created = only_created.wait_for(4).await;
    assert!(created.iter().all(|e| e["event"] == "user.created"));

    // Listing hides secrets.
    let (_, list) =
        send(app.admin(Method::GET, &format!("/directory-sync/{}/webhooks", dir.id))).await;
    let list = list["data"].as_array().unwrap().clone();
    assert_eq!(list.len(), 2);
    assert!(list.iter().all(|e| e["secret"].is_null()));

    // Rotation: both secrets sign for the grace period.
    let (status, rotated) = send(app.admin(
        Method::POST,
        &format!(
            "/directory-sync/{}/webhooks/{}/secret/rotate",
            dir.id,
            ep1["id"].as_str().unwrap()
        ),
    ))
    .await;
    assert_eq!(status, StatusCode::OK, "{rotated}");
    let secret2 = rotated["data"]["secret"].as_str().unwrap().to_string();
    assert_ne!(secret1, secret2);
    assert!(rotated["data"]["previous_secret_expires_at"].is_string());
    app.create_user(&dir, "after-rotation@acme.com").await;
    only_created.wait_for(5).await;
    let last = only_created.delivered().pop().unwrap();
    assert_eq!(last.header("webhook-signature").split(' ').count(), 2);
    last.assert_signed(&[&secret2, &secret1]);

    // Bad input is a 400, never a 500.
    for bad in [
        json!({"url": "ftp://x"}),
        json!({"url": batched.url, "event_types": ["user.exploded"]}),
        json!({"url": batched.url, "event_types": []}),
        json!({"url": batched.url, "batch_size": 0}),
        json!({"url": batched.url, "nope": 1}),
        json!({}),
    ] {
        let (status, body) = send(
            app.admin(
                Method::POST,
                &format!("/directory-sync/{}/webhooks", dir.id),
            )
            .json(&bad),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad} -> {body}");
    }
    let (status, _) = send(app.admin(
        Method::DELETE,
        &format!(
            "/directory-sync/{}/webhooks/{}",
            dir.id,
            ep2["id"].as_str().unwrap()
        ),
    ))
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = send(app.admin(
        Method::GET,
        &format!(
            "/directory-sync/{}/webhooks/{}",
            dir.id,
            ep2["id"].as_str().unwrap()
        ),
    ))
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

async fn gone_disables_and_dead_letters_are_listed_and_replayed(app: TestApp) {
    let healed = Arc::new(AtomicBool::new(false));
    let h = healed.clone();
    let gone = Receiver::start(move |_, _| {
        Reply::status(if h.load(Ordering::SeqCst) { 200 } else { 410 })
    })
    .await;
    let h = healed.clone();
    let dead = Receiver::start(move |_, _| {
        Reply::status(if h.load(Ordering::SeqCst) { 200 } else { 500 })
    })
    .await;
    let dir = app.create_directory("acme", "crm").await;
    let u1 = app.create_user(&dir, "first@acme.com").await;
    let u2 = app.create_user(&dir, "second@acme.com").await;
    app.events(&dir).await; // 1..3 numbered before the endpoints exist
    let a = add_endpoint(&app, &dir, json!({"url": gone.url})).await;
    let b = add_endpoint(&app, &dir, json!({"url": dead.url})).await;
    let (a_id, b_id) = (a["id"].as_str().unwrap(), b["id"].as_str().unwrap());
    // Three events (4, 5, 6) in one transaction: both endpoints get all three.
    create_group(&app, &dir, "G", &[&u1, &u2]).await;

    // B: every attempt of the schedule (4 in tests) fails; all go to the dead letters,
    // in order.
    let failed_path = format!(
        "/directory-sync/{}/deliveries?status=failed&endpoint_id={b_id}",
        dir.id
    );
    let started = Instant::now();
    let failed = loop {
        let (status, body) = send(app.admin(Method::GET, &failed_path)).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let list = body["data"].as_array().unwrap().clone();
        if list.len() == 3 {
            break list;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "dead letters: {body}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(failed
        .iter()
        .all(|d| d["attempts"] == 4 && d["last_status"] == 500));
    let tried: Vec<i64> = dead
        .received()
        .iter()
        .map(|r| r.json["sequence"].as_i64().unwrap())
        .collect();
    assert_eq!(
        tried,
        [4, 4, 4, 4, 5, 5, 5, 5, 6, 6, 6, 6],
        "in order; the endpoint moves on after giving up"
    );

    // A: one 410 and the endpoint is disabled; nothing more is sent to it.
    let a_path = format!("/directory-sync/{}/webhooks/{a_id}", dir.id);
    let (_, a_now) = send(app.admin(Method::GET, &a_path)).await;
    assert_eq!(a_now["data"]["enabled"], false, "{a_now}");
    assert!(a_now["data"]["disabled_reason"]
        .as_str()
        .unwrap()
        .contains("410"));
    assert_eq!(gone.received().len(), 1);

    // Receivers recover: replay B's first dead letter; re-enable A, which resumes its queue.
    healed.store(true, Ordering::SeqCst);
    let first_event = failed.iter().find(|d| d["sequence"] == 4).unwrap()["event_id"].clone();
    let (status, body) = send(app.admin(
        Method::POST,
        &format!(
            "/directory-sync/{}/events/{}/replay?endpoint_id={b_id}",
            dir.id,
            first_event.as_str().unwrap()
        ),
    ))
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let replayed = dead.wait_for(1).await;
    assert_eq!(replayed[0]["id"], first_event);
    let (status, body) = send(
        app.admin(Method::PATCH, &a_path)
            .json(&json!({"enabled": true})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body["data"]["disabled_reason"].is_null());
    assert_eq!(sequences(&gone.wait_for(3).await), [4, 5, 6]);

    let metrics = app
        .client
        .get(format!("{}/metrics", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(metrics.status(), StatusCode::OK);
    let text = metrics.text().await.unwrap();
    for needle in [
        "scimgate_webhook_deliveries_total{outcome=\"gone\"}",
        "scimgate_webhook_deliveries_total{outcome=\"failed\"}",
        "scimgate_webhook_attempt_duration_seconds_count",
        "scimgate_webhook_queue_depth",
        "scimgate_webhook_oldest_pending_age_seconds",
    ] {
        assert!(text.contains(needle), "{needle} in {text}");
    }
}

async fn replay_since_sends_history_in_order(app: TestApp) {
    let dir = app.create_directory("acme", "crm").await;
    for i in 0..6 {
        app.create_user(&dir, &format!("h{i}@acme.com")).await;
    }
    let stream = app.events(&dir).await;
    let rx = Receiver::ok().await;
    let ep = add_endpoint(&app, &dir, json!({"url": rx.url})).await;
    let path = format!(
        "/directory-sync/{}/webhooks/{}/replay",
        dir.id,
        ep["id"].as_str().unwrap()
    );
    let (status, _) = send(app.admin(Method::POST, &path)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "since is required");
    let since = stream[3]["created_at"].as_str().unwrap().to_string();
    let (status, body) = send(
        app.admin(Method::POST, &path)
            .query(&[("since", since.as_str())]),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let expected: Vec<Value> = stream
        .iter()
        .filter(|e| e["created_at"].as_str().unwrap() >= since.as_str())
        .cloned()
        .collect();
    assert_eq!(body["data"]["queued"], expected.len());
    assert_eq!(rx.wait_for(expected.len()).await, expected);
}

async fn primary_endpoint_mirrors_the_directory_webhook(app: TestApp) {
    let first = Receiver::ok().await;
    let dir = app
        .create_directory_with(json!({
            "tenant": "acme", "product": "crm", "webhook_url": first.url, "webhook_secret": "old",
        }))
        .await;
    let (_, list) =
        send(app.admin(Method::GET, &format!("/directory-sync/{}/webhooks", dir.id))).await;
    let primary = list["data"][0].clone();
    assert_eq!(primary["primary"], true);
    assert_eq!(primary["url"], first.url.as_str());
    let ppath = format!(
        "/directory-sync/{}/webhooks/{}",
        dir.id,
        primary["id"].as_str().unwrap()
    );
    let (status, _) = send(
        app.admin(Method::PATCH, &ppath)
            .json(&json!({"url": first.url})),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT);
    let (status, _) = send(app.admin(Method::DELETE, &ppath)).await;
    assert_eq!(status, StatusCode::CONFLICT);
    first.wait_for(1).await; // dsync.created

    // Jackson's nested form moves the endpoint and rotates its secret.
    let second = Receiver::ok().await;
    let (status, body) = send(
        app.admin(Method::PATCH, &format!("/directory-sync/{}", dir.id))
            .json(&json!({"webhook": {"endpoint": second.url, "secret": "new"}})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    app.create_user(&dir, "moved@acme.com").await;
    let got = second.wait_for(1).await;
    assert_eq!(got[0]["event"], "user.created");
    second.delivered()[0].assert_signed(&["new", "old"]);
    assert_eq!(first.received().len(), 1);

    // Clearing the webhook removes the primary endpoint.
    let (status, _) = send(
        app.admin(Method::PATCH, &format!("/directory-sync/{}", dir.id))
            .json(&json!({"webhook_url": null})),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (_, list) =
        send(app.admin(Method::GET, &format!("/directory-sync/{}/webhooks", dir.id))).await;
    assert_eq!(list["data"], json!([]));
}

async fn directories_from_before_endpoints_are_adopted(app: TestApp) {
    let rx = Receiver::ok().await;
    let dir = app
        .create_directory_with(json!({
            "tenant": "old", "product": "p", "webhook_url": rx.url, "webhook_secret": "legacy",
        }))
        .await;
    rx.wait_for(1).await;
    // As a database from before endpoints existed: the directory has only its columns.
    let dir_id = dir.id.clone();
    let adopted = app
        .db
        .run(move |c| {
            use diesel::prelude::*;
            use scimgate::store::schema::webhook_endpoints as w;
            diesel::delete(w::table.filter(w::directory_id.eq(&dir_id))).execute(c)?;
            let sealer = scimgate::secrets::Sealer::from_keys(crate::common::ENCRYPTION_KEY)?;
            let first = scimgate::directory::webhooks::adopt_directory_webhooks(c, &sealer)?;
            let again = scimgate::directory::webhooks::adopt_directory_webhooks(c, &sealer)?;
            Ok((first, again))
        })
        .await
        .unwrap();
    assert_eq!(adopted, (1, 0));
    app.create_user(&dir, "adopted@acme.com").await;
    let got = rx.wait_for(2).await;
    assert_eq!(got[1]["event"], "user.created");
    rx.delivered()[1].assert_signed(&["legacy"]);
}

async fn a_disabled_endpoint_keeps_its_queue(app: TestApp) {
    let dir = app.create_directory("paused", "p").await;
    app.events(&dir).await;
    let rx = Receiver::ok().await;
    let ep = add_endpoint(&app, &dir, json!({"url": rx.url, "enabled": false})).await;
    assert_eq!(ep["enabled"], false);
    for i in 0..3 {
        app.create_user(&dir, &format!("p{i}@acme.com")).await;
    }
    app.events(&dir).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(rx.started(), 0, "nothing is sent while disabled");
    let path = format!(
        "/directory-sync/{}/webhooks/{}",
        dir.id,
        ep["id"].as_str().unwrap()
    );
    let (status, _) = send(
        app.admin(Method::PATCH, &path)
            .json(&json!({"enabled": true})),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        sequences(&rx.wait_for(3).await),
        [2, 3, 4],
        "no gap once enabled"
    );
}

async fn replaying_a_waiting_head_sends_it_now_in_order(app: TestApp) {
    // The first attempt of event 2 is told to come back in an hour.
    let rx = Receiver::start(|body, seen| {
        if body["sequence"] == 2 && seen == 0 {
            Reply {
                status: 503,
                delay: Duration::ZERO,
                retry_after: Some("3600".into()),
            }
        } else {
            Reply::status(200)
        }
    })
    .await;
    let dir = app.create_directory("wait", "p").await;
    app.events(&dir).await;
    add_endpoint(&app, &dir, json!({"url": rx.url})).await;
    app.create_user(&dir, "w1@acme.com").await;
    app.create_user(&dir, "w2@acme.com").await;
    let stream = app.events(&dir).await;
    let started = Instant::now();
    while rx.received().is_empty() {
        assert!(started.elapsed() < Duration::from_secs(10), "first attempt");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(rx.received().len(), 1, "the queue waits behind its head");
    let (status, _) = send(app.admin(
        Method::POST,
        &format!(
            "/directory-sync/{}/events/{}/replay",
            dir.id,
            stream[1]["id"].as_str().unwrap()
        ),
    ))
    .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(
        sequences(&rx.wait_for(2).await),
        [2, 3],
        "the head now, then the rest"
    );
}

/// Tests that need their own configuration, on both backends.
macro_rules! configured_tests {
    ($($name:ident),* $(,)?) => {
        mod configured {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(crate::common::Backend::Sqlite).await;
                    super::$name(crate::common::Backend::Postgres).await;
                }
            )*
        }
    };
}

configured_tests!(
    private_addresses_are_refused,
    global_endpoint_gets_lifecycle_events,
    a_dead_endpoint_does_not_slow_a_live_one,
);

async fn private_addresses_are_refused(backend: Backend) {
    let Some(app) = TestApp::start_with(backend, |c| c.webhook_allow_private = false).await else {
        return;
    };
    for url in [
        "http://127.0.0.1:9/hook",
        "http://localhost:9/hook",
        "http://169.254.169.254/latest/meta-data",
        "http://10.0.0.8/hook",
        "http://[::1]/hook",
        "http://[::ffff:127.0.0.1]/hook",
        "https://user:pw@example.com/hook",
        "ftp://example.com/hook",
    ] {
        let (status, body) = send(app.admin(Method::POST, "/directory-sync").json(&json!({
            "tenant": "t", "product": "p", "webhook_url": url,
        })))
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{url}: {body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("webhook"),
            "{body}"
        );
    }
    let dir = app.create_directory("t", "p").await;
    let (status, body) = send(
        app.admin(
            Method::POST,
            &format!("/directory-sync/{}/webhooks", dir.id),
        )
        .json(&json!({"url": "http://127.0.0.1:9/x"})),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("SCIMGATE_WEBHOOK_ALLOW_PRIVATE"));
}

async fn global_endpoint_gets_lifecycle_events(backend: Backend) {
    let global = Receiver::ok().await;
    let url = global.url.clone();
    let Some(app) = TestApp::start_with(backend, |c| {
        c.webhook_url = Some(url);
        c.webhook_secret = Some("global-secret".into());
    })
    .await
    else {
        return;
    };
    let own = Receiver::ok().await;
    let dir = app
        .create_directory_with(json!({"tenant": "g", "product": "p", "webhook_url": own.url}))
        .await;
    app.create_user(&dir, "g@acme.com").await;
    let (status, _) = send(
        app.admin(Method::PATCH, &format!("/directory-sync/{}", dir.id))
            .json(&json!({"deactivated": true})),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = send(app.admin(Method::DELETE, &format!("/directory-sync/{}", dir.id))).await;
    assert_eq!(status, StatusCode::OK);

    let got = global.wait_for(3).await;
    let kinds: Vec<&str> = got.iter().map(|e| e["event"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        ["dsync.created", "dsync.deactivated", "dsync.deleted"]
    );
    assert!(got.iter().all(|e| e["directory_id"] == dir.id.as_str()));
    for r in global.delivered() {
        r.assert_signed(&["global-secret"]);
    }
    // The directory's own endpoint gets its whole stream, the deletion last.
    let mine = own.wait_for(4).await;
    let kinds: Vec<&str> = mine.iter().map(|e| e["event"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        [
            "dsync.created",
            "user.created",
            "dsync.deactivated",
            "dsync.deleted"
        ]
    );
    assert_eq!(sequences(&mine), [1, 2, 3, 4]);

    // Once delivered, the deleted directory's events and drained endpoints go.
    let dir_id = dir.id.clone();
    let left = app
        .db
        .run(move |c| {
            use diesel::prelude::*;
            use scimgate::store::schema::{events, webhook_endpoints};
            let started = Instant::now();
            loop {
                scimgate::store::deliveries::prune(c, scimgate::store::now())?;
                scimgate::store::webhooks::purge_retired(c)?;
                let e: i64 = events::table
                    .filter(events::directory_id.eq(&dir_id))
                    .count()
                    .get_result(c)?;
                let w: i64 = webhook_endpoints::table
                    .filter(webhook_endpoints::directory_id.eq(&dir_id))
                    .count()
                    .get_result(c)?;
                if (e, w) == (0, 0) || started.elapsed() > Duration::from_secs(10) {
                    return Ok((e, w));
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        })
        .await
        .unwrap();
    assert_eq!(left, (0, 0));
}

async fn a_dead_endpoint_does_not_slow_a_live_one(backend: Backend) {
    // The dead endpoint holds every request past the 10 s timeout; if the live endpoint
    // waited behind it, its events would take at least that long.
    let Some(app) = TestApp::start_with(backend, |c| {
        c.webhook_timeout_ms = 10_000;
        c.webhook_lease_ms = 20_000;
    })
    .await
    else {
        return;
    };
    let dead = Receiver::start(|_, _| Reply {
        status: 200,
        delay: Duration::from_secs(30),
        retry_after: None,
    })
    .await;
    let live = Receiver::ok().await;
    let dir = app.create_directory("iso", "p").await;
    app.events(&dir).await;
    add_endpoint(&app, &dir, json!({"url": dead.url})).await;
    add_endpoint(&app, &dir, json!({"url": live.url})).await;
    let started = Instant::now();
    for i in 0..20 {
        app.create_user(&dir, &format!("iso{i}@acme.com")).await;
    }
    let writes = started.elapsed();
    let got = live
        .wait_until(Duration::from_secs(30), |e| e.len() >= 20)
        .await;
    let live_done = started.elapsed();
    assert_eq!(sequences(&got), (2..=21).collect::<Vec<_>>());
    assert!(
        live_done < Duration::from_secs(8),
        "live endpoint took {live_done:?} (writes took {writes:?})"
    );
    assert!(
        dead.received().is_empty(),
        "the dead endpoint is still on its first attempt"
    );
}
