//! The outbox: every change writes its event in the same transaction, with a gapless
//! per-directory sequence and the documented payload.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::backend_tests;
use crate::common::{send, user, TestApp};

backend_tests!(
    events_are_sequenced_and_shaped,
    failed_writes_leave_no_event
);

async fn events_are_sequenced_and_shaped(app: TestApp) {
    let dir = app.create_directory("acme", "crm").await;
    let other = app.create_directory("acme", "crm").await;
    let u = app.create_user(&dir, "ada@acme.com").await;
    app.create_user(&other, "bob@acme.com").await;
    let path = format!("/Users/{}", u["id"].as_str().unwrap());
    send(
        app.scim(&dir, Method::PATCH, &path)
            .json(&json!({"Operations": [{"op": "replace", "value": {"active": false}}]})),
    )
    .await;
    send(app.scim(&dir, Method::DELETE, &path)).await;

    let events = app.events(&dir).await;
    let kinds: Vec<&str> = events
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "dsync.created",
            "user.created",
            "user.updated",
            "user.deleted"
        ]
    );
    for (i, e) in events.iter().enumerate() {
        assert_eq!(e["sequence"], i as i64 + 1, "gapless per directory");
        assert!(e["id"].as_str().unwrap().starts_with("evt_"));
        assert_eq!(e["tenant"], "acme");
        assert_eq!(e["product"], "crm");
        assert_eq!(e["directory_id"], dir.id.as_str());
        assert!(e["created_at"].as_str().unwrap().ends_with('Z'));
    }
    let created = &events[1]["data"];
    assert_eq!(created["id"], u["id"]);
    assert_eq!(created["email"], "ada@acme.com");
    assert_eq!(created["first_name"], "Given ada");
    assert_eq!(created["active"], true);
    assert_eq!(created["raw"]["userName"], "ada@acme.com");
    assert!(created["raw"].get("password").is_none());
    assert_eq!(events[2]["data"]["active"], false);
    // The other directory's stream is its own.
    let theirs = app.events(&other).await;
    assert_eq!(theirs.len(), 2);
    assert_eq!(theirs[1]["sequence"], 2);

    // Cursor paging and single-event reads.
    let (_, after) = send(app.admin(
        Method::GET,
        &format!("/directory-sync/{}/events?after=2&limit=1", dir.id),
    ))
    .await;
    assert_eq!(after["data"].as_array().unwrap().len(), 1);
    assert_eq!(after["data"][0]["sequence"], 3);
    assert_eq!(after["after"], 3);
    let eid = events[1]["id"].as_str().unwrap();
    let (status, one) = send(app.admin(
        Method::GET,
        &format!("/directory-sync/{}/events/{eid}", dir.id),
    ))
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(one["data"], events[1]);
    let (status, _) = send(app.admin(
        Method::GET,
        &format!("/directory-sync/{}/events/{eid}", other.id),
    ))
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

async fn failed_writes_leave_no_event(app: TestApp) {
    let dir = app.create_directory("acme", "crm").await;
    app.create_user(&dir, "ada@acme.com").await;
    let before = app.events(&dir).await.len();
    let (status, _) = send(
        app.scim(&dir, Method::POST, "/Users")
            .json(&user("ADA@acme.com")),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT);
    let (status, _) = send(
        app.scim(&dir, Method::POST, "/Groups")
            .json(&json!({"displayName": "G", "members": [{"value": "gh\u{0}ost"}]})),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(app.events(&dir).await.len(), before);
    // And the next change continues the sequence without a gap.
    app.create_user(&dir, "bob@acme.com").await;
    let events = app.events(&dir).await;
    assert_eq!(events.last().unwrap()["sequence"], before as i64 + 1);
}
