//! Writes touch only what they change (issue 10): the email rows, the uniqueness check
//! and the columns follow the change, and every read still agrees with the resource.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::backend_tests;
use crate::common::{assert_scim_error, send, TestApp};

backend_tests!(partial_writes_keep_indexes_true);

fn patch(ops: Value) -> Value {
    json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": ops})
}

async fn partial_writes_keep_indexes_true(app: TestApp) {
    let dir = app.create_directory("acme", "crm").await;
    let ada = app.create_user(&dir, "ada@acme.com").await;
    app.create_user(&dir, "bob@acme.com").await;
    let path = format!("/Users/{}", ada["id"].as_str().unwrap());
    let found = |filter: &str| {
        app.scim(&dir, Method::GET, "/Users")
            .query(&[("filter", filter.to_string())])
    };

    // A change that leaves the emails alone keeps them findable.
    let (status, body) = send(app.scim(&dir, Method::PATCH, &path).json(&patch(json!([
        {"op": "replace", "path": "active", "value": false},
        {"op": "replace", "path": "name.givenName", "value": "Augusta"}
    ]))))
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["meta"]["version"], "W/\"2\"");
    let (_, list) = send(found(r#"emails.value eq "ada@acme.com""#)).await;
    assert_eq!(list["totalResults"], 1, "{list}");
    assert_eq!(list["Resources"][0]["name"]["givenName"], "Augusta");
    assert_eq!(list["Resources"][0]["active"], false);

    // Changing the emails replaces their rows.
    let (status, _) = send(app.scim(&dir, Method::PATCH, &path).json(&patch(json!([
        {"op": "replace", "path": "emails", "value": [{"value": "augusta@acme.com", "type": "work", "primary": true}]}
    ]))))
    .await;
    assert_eq!(status, StatusCode::OK);
    let (_, list) = send(found(r#"emails.value eq "ada@acme.com""#)).await;
    assert_eq!(list["totalResults"], 0, "{list}");
    let (_, list) = send(found(
        r#"emails[type eq "work" and value eq "augusta@acme.com"]"#,
    ))
    .await;
    assert_eq!(list["totalResults"], 1, "{list}");

    // A new userName is checked for uniqueness; a change of letter case alone is not a
    // conflict with itself.
    let (status, err) = send(app.scim(&dir, Method::PATCH, &path).json(&patch(json!([
        {"op": "replace", "path": "userName", "value": "BOB@acme.com"}
    ]))))
    .await;
    assert_scim_error(status, &err, 409, Some("uniqueness"));
    let (status, body) = send(app.scim(&dir, Method::PATCH, &path).json(&patch(json!([
        {"op": "replace", "path": "userName", "value": "ADA@acme.com"}
    ]))))
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, list) = send(found(r#"userName eq "ada@ACME.com""#)).await;
    assert_eq!(list["totalResults"], 1, "{list}");
    assert_eq!(list["Resources"][0]["userName"], "ADA@acme.com");

    // Clearing an attribute clears its column.
    let (status, _) = send(app.scim(&dir, Method::PATCH, &path).json(&patch(json!([
        {"op": "remove", "path": "externalId"}
    ]))))
    .await;
    assert_eq!(status, StatusCode::OK);
    let (_, list) = send(found("externalId pr")).await;
    assert_eq!(list["totalResults"], 1, "only bob: {list}");
}
