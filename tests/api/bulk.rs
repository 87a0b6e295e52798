//! Bulk (RFC 7644 §3.7): bulkId references, failOnErrors, limits.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::backend_tests;
use crate::common::{assert_scim_error, send, user, TestApp};

backend_tests!(bulk_with_references, bulk_fail_on_errors_and_limits);

fn bulk(ops: Value) -> Value {
    json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"], "Operations": ops})
}

async fn bulk_with_references(app: TestApp) {
    let dir = app.create_directory("acme", "crm").await;
    // The group refers to users created later in the same request: order is resolved.
    let (status, body) = send(app.scim(&dir, Method::POST, "/Bulk").json(&bulk(json!([
        {"method": "POST", "path": "/Groups", "bulkId": "eng", "data": {"displayName": "Eng", "members": [{"value": "bulkId:ada"}, {"value": "bulkId:bob"}]}},
        {"method": "POST", "path": "/Users", "bulkId": "ada", "data": user("ada@acme.com")},
        {"method": "POST", "path": "/Users", "bulkId": "bob", "data": user("bob@acme.com")},
        {"method": "PATCH", "path": "/Users/bulkId:bob", "data": {"Operations": [{"op": "replace", "path": "active", "value": false}]}},
        {"method": "POST", "path": "/Users", "bulkId": "dup", "data": user("ADA@acme.com")},
        {"method": "DELETE", "path": "/Groups/bulkId:nowhere"}
    ])))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body["schemas"][0],
        "urn:ietf:params:scim:api:messages:2.0:BulkResponse"
    );
    let ops = body["Operations"].as_array().unwrap();
    assert_eq!(ops.len(), 6);
    let by_id = |b: &str| ops.iter().find(|o| o["bulkId"] == b).unwrap().clone();
    assert_eq!(by_id("ada")["status"], "201");
    assert!(by_id("ada")["location"]
        .as_str()
        .unwrap()
        .contains("/Users/"));
    assert_eq!(by_id("ada")["version"], "W/\"1\"");
    assert_eq!(by_id("eng")["status"], "201");
    assert_eq!(by_id("dup")["status"], "409");
    assert_eq!(by_id("dup")["response"]["scimType"], "uniqueness");
    let patch = ops.iter().find(|o| o["method"] == "PATCH").unwrap();
    assert_eq!(patch["status"], "200");
    let unresolved = ops.iter().find(|o| o["method"] == "DELETE").unwrap();
    assert_eq!(unresolved["status"], "409");

    let group_location = by_id("eng")["location"].as_str().unwrap().to_string();
    let (_, group) = send(app.client.get(&group_location).bearer_auth(&dir.secret)).await;
    assert_eq!(group["members"].as_array().unwrap().len(), 2);
    let (_, bob) = send(
        app.client
            .get(by_id("bob")["location"].as_str().unwrap())
            .bearer_auth(&dir.secret),
    )
    .await;
    assert_eq!(bob["active"], false);
}

async fn bulk_fail_on_errors_and_limits(app: TestApp) {
    let dir = app.create_directory("acme", "crm").await;
    let mut req = bulk(json!([
        {"method": "DELETE", "path": "/Users/missing-1"},
        {"method": "DELETE", "path": "/Users/missing-2"},
        {"method": "POST", "path": "/Users", "bulkId": "late", "data": user("late@acme.com")}
    ]));
    req["failOnErrors"] = json!(2);
    let (status, body) = send(app.scim(&dir, Method::POST, "/Bulk").json(&req)).await;
    assert_eq!(status, StatusCode::OK);
    let ops = body["Operations"].as_array().unwrap();
    assert_eq!(
        ops.len(),
        2,
        "processing stops after failOnErrors errors: {body}"
    );
    assert_eq!(ops[0]["status"], "404");
    let (_, list) = send(app.scim(&dir, Method::GET, "/Users")).await;
    assert_eq!(list["totalResults"], 0);

    let too_many: Vec<Value> = (0..1001)
        .map(|i| json!({"method": "DELETE", "path": format!("/Users/{i}")}))
        .collect();
    let (status, err) = send(
        app.scim(&dir, Method::POST, "/Bulk")
            .json(&bulk(json!(too_many))),
    )
    .await;
    assert_scim_error(status, &err, 413, None);
    let (status, err) = send(
        app.scim(&dir, Method::POST, "/Bulk")
            .json(&bulk(json!([{"method": "GET", "path": "/Users"}]))),
    )
    .await;
    assert_scim_error(status, &err, 400, Some("invalidSyntax"));
    let (status, err) = send(app.scim(&dir, Method::POST, "/Bulk").json(&bulk(
        json!([{"method": "PUT", "path": "/Users", "data": {}}]),
    )))
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(err["Operations"][0]["status"], "400");
    let (_, spc) = send(app.scim(&dir, Method::GET, "/ServiceProviderConfig")).await;
    assert_eq!(
        spc["bulk"],
        json!({"supported": true, "maxOperations": 1000, "maxPayloadSize": 1048576})
    );
}
