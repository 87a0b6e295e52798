//! Concurrent IdPs: 8 clients creating users in 4 directories of 2 tenants at once.

use std::sync::Arc;

use reqwest::{Method, StatusCode};

use crate::backend_tests;
use crate::common::{send, user, TestApp};

backend_tests!(
    eight_clients_four_directories,
    racing_duplicates_get_one_201_and_409s,
    adding_a_member_while_it_is_deleted_leaves_no_orphan,
    deleting_a_directory_under_writes_numbers_every_event,
    concurrent_patches_of_one_resource_lose_nothing
);

const PER_CLIENT: usize = 25;

async fn eight_clients_four_directories(app: TestApp) {
    let app = Arc::new(app);
    let mut dirs = Vec::new();
    for (tenant, product) in [
        ("acme", "crm"),
        ("acme", "crm"),
        ("globex", "crm"),
        ("globex", "hr"),
    ] {
        dirs.push(app.create_directory(tenant, product).await);
    }
    let dirs = Arc::new(dirs);
    let mut tasks = Vec::new();
    for client in 0..8 {
        let (app, dirs) = (app.clone(), dirs.clone());
        tasks.push(tokio::spawn(async move {
            let dir = &dirs[client % 4];
            let mut created = Vec::new();
            for i in 0..PER_CLIENT {
                // The same userNames in every directory: uniqueness is per directory.
                let name = format!("user-{}-{i}@example.com", client / 4);
                let (status, body) =
                    send(app.scim(dir, Method::POST, "/Users").json(&user(&name))).await;
                assert_eq!(status, StatusCode::CREATED, "client {client}: {body}");
                created.push((client % 4, body["id"].as_str().unwrap().to_string()));
            }
            created
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.expect("client task"));
    }
    assert_eq!(all.len(), 8 * PER_CLIENT);

    for (d, dir) in dirs.iter().enumerate() {
        let (_, list) = send(app.scim(dir, Method::GET, "/Users?count=1")).await;
        assert_eq!(list["totalResults"], 2 * PER_CLIENT, "directory {d}");
        let events = app.events(dir).await;
        let seqs: Vec<i64> = events
            .iter()
            .map(|e| e["sequence"].as_i64().unwrap())
            .collect();
        assert_eq!(
            seqs,
            (1..=(2 * PER_CLIENT as i64 + 1)).collect::<Vec<_>>(),
            "gapless under concurrency"
        );
    }
    // Every user is readable through its own directory and through no other.
    for (owner, id) in &all {
        for (d, dir) in dirs.iter().enumerate() {
            let (status, _) = send(app.scim(dir, Method::GET, &format!("/Users/{id}"))).await;
            let expected = if d == *owner {
                StatusCode::OK
            } else {
                StatusCode::NOT_FOUND
            };
            assert_eq!(
                status, expected,
                "user {id} of directory {owner} via directory {d}"
            );
        }
    }
}

/// IdPs retry: the same user POSTed 8 times at once is created once; the others get
/// `409 uniqueness`, never a 500.
async fn racing_duplicates_get_one_201_and_409s(app: TestApp) {
    let app = Arc::new(app);
    let dir = Arc::new(app.create_directory("acme", "crm").await);
    let mut tasks = Vec::new();
    for i in 0..8 {
        let (app, dir) = (app.clone(), dir.clone());
        // Different letter case every time: uniqueness is case-insensitive.
        let name = if i % 2 == 0 {
            "Race@Acme.com"
        } else {
            "race@acme.COM"
        };
        tasks.push(tokio::spawn(async move {
            send(app.scim(&dir, Method::POST, "/Users").json(&user(name))).await
        }));
    }
    let mut statuses = Vec::new();
    for t in tasks {
        let (status, body) = t.await.unwrap();
        if status == StatusCode::CONFLICT {
            assert_eq!(body["scimType"], "uniqueness", "{body}");
        }
        statuses.push(status);
    }
    assert_eq!(
        statuses
            .iter()
            .filter(|s| **s == StatusCode::CREATED)
            .count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses
            .iter()
            .filter(|s| **s == StatusCode::CONFLICT)
            .count(),
        7,
        "{statuses:?}"
    );
    let (_, list) = send(app.scim(&dir, Method::GET, "/Users")).await;
    assert_eq!(list["totalResults"], 1);
    assert_eq!(
        app.events(&dir).await.len(),
        2,
        "dsync.created and one user.created"
    );
}

/// Adding users to a group while the same users are deleted: each add either lands first
/// (and the deletion removes the membership, with its event) or finds the user gone (400);
/// no membership outlives its user (PostgreSQL checks this with row locks, not a foreign key).
async fn adding_a_member_while_it_is_deleted_leaves_no_orphan(app: TestApp) {
    let app = Arc::new(app);
    let dir = Arc::new(app.create_directory("race", "p").await);
    let (status, group) = send(
        app.scim(&dir, Method::POST, "/Groups")
            .json(&serde_json::json!({"displayName": "Race"})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let gid = group["id"].as_str().unwrap().to_string();
    let mut tasks = Vec::new();
    for i in 0..20 {
        let u = app.create_user(&dir, &format!("race{i}@example.com")).await;
        let uid = u["id"].as_str().unwrap().to_string();
        let (a, d, g, u2) = (app.clone(), dir.clone(), gid.clone(), uid.clone());
        tasks.push(tokio::spawn(async move {
            let body = serde_json::json!({"Operations": [{"op": "add", "path": "members", "value": [{"value": u2}]}]});
            let (status, body) = send(a.scim(&d, Method::PATCH, &format!("/Groups/{g}")).json(&body)).await;
            assert!(
                status == StatusCode::OK || status == StatusCode::BAD_REQUEST,
                "{status} {body}"
            );
        }));
        let (a, d) = (app.clone(), dir.clone());
        tasks.push(tokio::spawn(async move {
            let (status, _) = send(a.scim(&d, Method::DELETE, &format!("/Users/{uid}"))).await;
            assert_eq!(status, StatusCode::NO_CONTENT);
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let (status, group) = send(app.scim(&dir, Method::GET, &format!("/Groups/{gid}"))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        group
            .get("members")
            .map_or(0, |m| m.as_array().unwrap().len()),
        0,
        "{group}"
    );
    let dir_id = dir.id.clone();
    let rows: i64 = app
        .db
        .run(move |c| {
            use diesel::prelude::*;
            use scimgate::store::schema::memberships;
            Ok(memberships::table
                .filter(memberships::directory_id.eq(&dir_id))
                .count()
                .get_result(c)?)
        })
        .await
        .unwrap();
    assert_eq!(rows, 0, "no membership outlives its user");
    // Every membership that was added was removed with an event before its user's deletion.
    let events = app.events(&dir).await;
    for added in events.iter().filter(|e| e["event"] == "group.user_added") {
        let uid = &added["data"]["id"];
        let pos = |kind: &str| {
            events
                .iter()
                .position(|e| e["event"] == kind && e["data"]["id"] == *uid)
                .unwrap_or_else(|| panic!("{kind} for {uid}"))
        };
        let (a, r, d) = (
            pos("group.user_added"),
            pos("group.user_removed"),
            pos("user.deleted"),
        );
        assert!(a < r && r < d, "{uid}: added {a}, removed {r}, deleted {d}");
    }
}

/// Users are PATCHed while their directory is deleted: every event that committed is
/// numbered (and so delivered) — the deletion waits for those writers and numbers what
/// they committed before its own `dsync.deleted`.
async fn deleting_a_directory_under_writes_numbers_every_event(app: TestApp) {
    let app = Arc::new(app);
    let dir = Arc::new(app.create_directory("doomed", "p").await);
    let mut ids = Vec::new();
    for i in 0..20 {
        let u = app.create_user(&dir, &format!("d{i}@example.com")).await;
        ids.push(u["id"].as_str().unwrap().to_string());
    }
    let mut tasks = Vec::new();
    for (i, uid) in ids.into_iter().enumerate() {
        let (a, d) = (app.clone(), dir.clone());
        tasks.push(tokio::spawn(async move {
            let body = serde_json::json!({"Operations": [{"op": "replace", "path": "title", "value": format!("t{i}")}]});
            send(a.scim(&d, Method::PATCH, &format!("/Users/{uid}")).json(&body)).await.0
        }));
    }
    let (status, body) =
        send(app.admin(Method::DELETE, &format!("/directory-sync/{}", dir.id))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    for t in tasks {
        let s = t.await.unwrap();
        assert!(
            s == StatusCode::OK || s == StatusCode::NOT_FOUND || s == StatusCode::UNAUTHORIZED,
            "{s}"
        );
    }
    let dir_id = dir.id.clone();
    let (unnumbered, last, deleted_seq) = app
        .db
        .run(move |c| {
            use diesel::prelude::*;
            use scimgate::store::schema::events;
            let unnumbered: i64 = events::table
                .filter(events::directory_id.eq(&dir_id))
                .filter(events::sequence.is_null())
                .count()
                .get_result(c)?;
            let last: Option<i64> = events::table
                .filter(events::directory_id.eq(&dir_id))
                .select(diesel::dsl::max(events::sequence))
                .first(c)?;
            let deleted: Option<i64> = events::table
                .filter(events::directory_id.eq(&dir_id))
                .filter(events::event_type.eq("dsync.deleted"))
                .select(events::sequence)
                .first::<Option<i64>>(c)?;
            Ok((unnumbered, last, deleted))
        })
        .await
        .unwrap();
    assert_eq!(unnumbered, 0, "every committed event is numbered");
    assert_eq!(deleted_seq, last, "dsync.deleted is the last event");
}

/// Ten PATCHes of one user and ten of one group at once (Entra sends membership changes
/// in parallel): each applies to what the previous left, none is overwritten.
async fn concurrent_patches_of_one_resource_lose_nothing(app: TestApp) {
    let app = Arc::new(app);
    let dir = Arc::new(app.create_directory("parallel", "p").await);
    let u = app.create_user(&dir, "many@example.com").await;
    let uid = u["id"].as_str().unwrap().to_string();
    let (_, g) = send(
        app.scim(&dir, Method::POST, "/Groups")
            .json(&serde_json::json!({"displayName": "Parallel"})),
    )
    .await;
    let gid = g["id"].as_str().unwrap().to_string();
    let mut members = Vec::new();
    for i in 0..10 {
        let m = app.create_user(&dir, &format!("m{i}@example.com")).await;
        members.push(m["id"].as_str().unwrap().to_string());
    }
    let mut tasks = Vec::new();
    for (i, member) in members.iter().enumerate() {
        let (a, d, uid) = (app.clone(), dir.clone(), uid.clone());
        tasks.push(tokio::spawn(async move {
            let body = serde_json::json!({"Operations": [{"op": "add", "path": "emails",
                "value": [{"value": format!("alias{i}@example.com"), "type": "other"}]}]});
            send(
                a.scim(&d, Method::PATCH, &format!("/Users/{uid}"))
                    .json(&body),
            )
            .await
            .0
        }));
        let (a, d, gid, member) = (app.clone(), dir.clone(), gid.clone(), member.clone());
        tasks.push(tokio::spawn(async move {
            let body = serde_json::json!({"Operations": [{"op": "add", "path": "members",
                "value": [{"value": member}]}]});
            send(
                a.scim(&d, Method::PATCH, &format!("/Groups/{gid}"))
                    .json(&body),
            )
            .await
            .0
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), StatusCode::OK);
    }
    let (_, user) = send(app.scim(&dir, Method::GET, &format!("/Users/{uid}"))).await;
    assert_eq!(user["emails"].as_array().unwrap().len(), 11, "{user}");
    assert_eq!(user["meta"]["version"], "W/\"11\"");
    let (_, group) = send(app.scim(&dir, Method::GET, &format!("/Groups/{gid}"))).await;
    assert_eq!(group["members"].as_array().unwrap().len(), 10, "{group}");
}
