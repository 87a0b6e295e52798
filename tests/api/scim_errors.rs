//! Bad input never panics and never gets a 500: it gets an RFC 7644 error.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::backend_tests;
use crate::common::{assert_scim_error, send, user, TestApp};

backend_tests!(
    authentication_errors,
    malformed_bodies,
    oversized_bodies,
    search_endpoints
);

async fn authentication_errors(app: TestApp) {
    let dir = app.create_directory("acme", "crm").await;
    let url = format!("{}/Users", dir.endpoint);
    for auth in [
        None,
        Some("Bearer"),
        Some("Bearer wrong"),
        Some("Basic abc"),
        Some(&format!("Token {}", dir.secret) as &str),
    ] {
        let mut req = app.client.get(&url);
        if let Some(a) = auth {
            req = req.header("Authorization", a);
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "{auth:?}");
        assert!(resp.headers().contains_key("www-authenticate"));
        let body = resp.json().await.unwrap();
        assert_scim_error(StatusCode::UNAUTHORIZED, &body, 401, None);
    }
    // An unknown directory answers like a wrong token: ids cannot be probed.
    let (status, err) = send(
        app.client
            .get(format!("{}/api/scim/v2.0/not-a-directory/Users", app.base))
            .bearer_auth(&dir.secret),
    )
    .await;
    assert_scim_error(status, &err, 401, None);
}

async fn malformed_bodies(app: TestApp) {
    let dir = app.create_directory("acme", "crm").await;
    let u = app.create_user(&dir, "ada@acme.com").await;
    let upath = format!("/Users/{}", u["id"].as_str().unwrap());
    for (method, path) in [
        (Method::POST, "/Users".to_string()),
        (Method::PUT, upath.clone()),
        (Method::PATCH, upath.clone()),
        (Method::POST, "/Groups".to_string()),
    ] {
        for body in [
            "{",
            "",
            "null",
            "[1,2]",
            "\"x\"",
            "{\"userName\": }",
            "\u{0}",
        ] {
            let (status, err) = send(app.scim(&dir, method.clone(), &path).body(body)).await;
            assert!(
                status.is_client_error(),
                "{method} {path} {body:?} -> {status} {err}"
            );
            assert_eq!(
                err["schemas"][0],
                "urn:ietf:params:scim:api:messages:2.0:Error"
            );
        }
    }
    let (status, err) = send(app.scim(&dir, Method::POST, "/Users").body("{")).await;
    assert_scim_error(status, &err, 400, Some("invalidSyntax"));
    // Wrong types in otherwise valid JSON.
    for body in [
        json!({"userName": ["a"]}),
        json!({"userName": "a", "emails": "x"}),
        json!({"userName": "a", "name": 5}),
        json!({"userName": "a", "externalId": 5}),
        json!({"userName": "a", "active": 3}),
    ] {
        let (status, err) = send(app.scim(&dir, Method::POST, "/Users").json(&body)).await;
        assert_scim_error(status, &err, 400, Some("invalidValue"));
    }
    // Deeply nested JSON and odd characters are data, not crashes.
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let (status, _) = send(app.scim(&dir, Method::POST, "/Users").body(deep)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let mut odd = user("ünïcødé+\u{1F600}@acme.com");
    odd["displayName"] = json!("'; DROP TABLE users; --");
    let (status, created) = send(app.scim(&dir, Method::POST, "/Users").json(&odd)).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["displayName"], "'; DROP TABLE users; --");
    let (status, found) = send(
        app.scim(&dir, Method::GET, "/Users")
            .query(&[("filter", "userName eq \"ÜNÏCØDÉ+\u{1F600}@acme.com\"")]),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(found["totalResults"], 1);
}

async fn oversized_bodies(app: TestApp) {
    let dir = app.create_directory("acme", "crm").await;
    let mut big = user("big@acme.com");
    big["title"] = json!("x".repeat(2 * 1024 * 1024));
    let (status, err) = send(app.scim(&dir, Method::POST, "/Users").json(&big)).await;
    assert_scim_error(status, &err, 413, None);
    // Nothing was written; the next request is served normally.
    let (_, list) = send(app.scim(&dir, Method::GET, "/Users")).await;
    assert_eq!(list["totalResults"], 0);
}

async fn search_endpoints(app: TestApp) {
    let dir = app.create_directory("acme", "crm").await;
    app.create_user(&dir, "ada@acme.com").await;
    app.create_user(&dir, "bob@acme.com").await;
    send(
        app.scim(&dir, Method::POST, "/Groups")
            .json(&json!({"displayName": "ada-fans"})),
    )
    .await;
    let search = json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"],
        "filter": "userName eq \"ada@acme.com\"", "startIndex": 1, "count": 10, "attributes": ["userName"]
    });
    let (status, r) = send(app.scim(&dir, Method::POST, "/Users/.search").json(&search)).await;
    assert_eq!(status, StatusCode::OK, "{r}");
    assert_eq!(r["totalResults"], 1);
    assert!(r["Resources"][0].get("emails").is_none());
    let (_, r) = send(
        app.scim(&dir, Method::POST, "/Groups/.search")
            .json(&json!({"filter": "displayName sw \"ada\""})),
    )
    .await;
    assert_eq!(r["totalResults"], 1);
    let (_, r) = send(
        app.scim(&dir, Method::POST, "/.search")
            .json(&json!({"count": 10})),
    )
    .await;
    assert_eq!(r["totalResults"], 3);
    assert_eq!(r["Resources"].as_array().unwrap().len(), 3);
    let (status, err) = send(
        app.scim(&dir, Method::POST, "/.search")
            .json(&json!({"filter": "bad filter here"})),
    )
    .await;
    assert_scim_error(status, &err, 400, Some("invalidFilter"));
}
