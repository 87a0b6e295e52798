//! Concurrent IdPs: 8 clients creating users in 4 directories of 2 tenants at once.

use std::sync::Arc;

use reqwest::{Method, StatusCode};

use crate::backend_tests;
use crate::common::{send, user, TestApp};

backend_tests!(
    eight_clients_four_directories,
    racing_duplicates_get_one_201_and_409s
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
