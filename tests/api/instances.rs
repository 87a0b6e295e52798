//! Instances wake each other (issue 10): on PostgreSQL, deliveries queued by another
//! instance reach this one's dispatcher through LISTEN/NOTIFY, with its poll switched
//! off; and a retry this instance scheduled is sent when due, not at the next poll.

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::backend_tests;
use crate::common::{send, user, Dir, TestApp};
use crate::receiver::{Receiver, Reply};
use scimgate::directory::{directories, events, users, DirectoryScope};
use scimgate::store::{Backend, Db};

backend_tests!(
    another_instances_deliveries_wake_this_one,
    retries_are_sent_when_due_without_polling,
    a_deleted_directorys_last_event_goes_out_without_polling
);

/// An instance whose only wake-ups are notifications and its own timers.
async fn quiet(app_backend: Backend) -> Option<TestApp> {
    TestApp::start_with(
        match app_backend {
            Backend::Postgres => crate::common::Backend::Postgres,
            Backend::Sqlite => crate::common::Backend::Sqlite,
        },
        |c| c.poll_ms = 600_000,
    )
    .await
}

/// An endpoint of `dir` on `rx` for one event type.
async fn subscribe(app: &TestApp, dir: &Dir, rx: &Receiver, event_type: &str) {
    let (status, body) = send(
        app.admin(
            Method::POST,
            &format!("/directory-sync/{}/webhooks", dir.id),
        )
        .json(&json!({"url": rx.url, "event_types": [event_type]})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

async fn another_instances_deliveries_wake_this_one(app: TestApp) {
    if app.db.backend() != Backend::Postgres {
        return; // One instance per SQLite file.
    }
    let Some(app) = quiet(Backend::Postgres).await else {
        return;
    };
    let rx = Receiver::ok().await;
    let dir = app.create_directory("acme", "crm").await;
    subscribe(&app, &dir, &rx, "user.created").await;

    // "Another instance": the same database through a pool of its own, writing and
    // numbering as an instance does; only a notification can tell this app.
    let (url, id, external) = (
        app.database_url().to_string(),
        dir.id.clone(),
        app.base.clone(),
    );
    let started = Instant::now();
    tokio::task::spawn_blocking(move || {
        let other = Db::open(&url).expect("open");
        let mut c = other.conn().expect("connection");
        let row = directories::get(&mut c, &id).expect("directory");
        let scope = DirectoryScope::new(row, &external);
        users::create(&mut c, &scope, user("ada@acme.com")).expect("create");
        events::sequence(&mut c, &id).expect("number and fan out");
    })
    .await
    .expect("join");
    let got = rx
        .wait_until(Duration::from_secs(5), |e| {
            e.iter().any(|e| e["event"] == "user.created")
        })
        .await;
    assert_eq!(got[0]["data"]["email"], "ada@acme.com");
    // Well under the poll, which is off: the notification woke it.
    assert!(started.elapsed() < Duration::from_secs(5));
}

async fn retries_are_sent_when_due_without_polling(app: TestApp) {
    let backend = app.db.backend();
    drop(app);
    let Some(app) = quiet(backend).await else {
        return;
    };
    // The first attempt fails; the schedule retries 50 ms later.
    let rx = Receiver::start(|_, seen| Reply::status(if seen == 0 { 503 } else { 200 })).await;
    let dir = app.create_directory("acme", "crm").await;
    subscribe(&app, &dir, &rx, "user.created").await;
    app.create_user(&dir, "ada@acme.com").await;
    rx.wait_until(Duration::from_secs(5), |e| {
        e.iter().any(|e| e["event"] == "user.created")
    })
    .await;
    assert!(rx.received().len() >= 2, "a failed attempt, then the retry");
}

async fn a_deleted_directorys_last_event_goes_out_without_polling(app: TestApp) {
    let backend = app.db.backend();
    drop(app);
    let Some(app) = quiet(backend).await else {
        return;
    };
    let rx = Receiver::ok().await;
    let dir = app.create_directory("acme", "crm").await;
    subscribe(&app, &dir, &rx, "dsync.deleted").await;
    let (status, _) = send(app.admin(Method::DELETE, &format!("/directory-sync/{}", dir.id))).await;
    assert_eq!(status, StatusCode::OK);
    rx.wait_until(Duration::from_secs(5), |e| {
        e.iter().any(|e| e["event"] == "dsync.deleted")
    })
    .await;
}
