//! The README walk-through's bodies (`fixtures/walkthrough`) work as documented.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::backend_tests;
use crate::common::{send, TestApp};

backend_tests!(walkthrough_fixtures_work);

fn fixture(name: &str) -> Value {
    let path = format!("{}/fixtures/walkthrough/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(&path).expect("fixture")).expect("fixture JSON")
}

async fn walkthrough_fixtures_work(app: TestApp) {
    let dir = app.create_directory_with(fixture("directory.json")).await;
    assert_eq!(dir.json["type"], "okta-scim-v2");
    let (status, user) = send(
        app.scim(&dir, Method::POST, "/Users")
            .json(&fixture("user.json")),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{user}");
    let uid = user["id"].as_str().unwrap();
    let mut group = fixture("group.json");
    group["members"] = json!([{"value": uid}]);
    let (status, group) = send(app.scim(&dir, Method::POST, "/Groups").json(&group)).await;
    assert_eq!(status, StatusCode::CREATED, "{group}");
    let (status, user) = send(
        app.scim(&dir, Method::PATCH, &format!("/Users/{uid}"))
            .json(&fixture("deactivate.json")),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(user["active"], false);
    let (_, users) =
        send(app.admin(Method::GET, "/directory-sync/users?tenant=acme&product=crm")).await;
    assert_eq!(users["data"][0]["email"], "ada@acme.com");
    assert_eq!(users["data"][0]["active"], false);
    let kinds: Vec<Value> = app
        .events(&dir)
        .await
        .iter()
        .map(|e| e["event"].clone())
        .collect();
    assert_eq!(
        kinds,
        [
            json!("dsync.created"),
            json!("user.created"),
            json!("group.created"),
            json!("group.user_added"),
            json!("user.updated")
        ]
    );
}
