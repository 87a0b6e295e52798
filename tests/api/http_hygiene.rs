//! Small hardening: headers, timeouts, If-Match, error wording, Bulk references, SSRF.

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use reqwest::header::HeaderValue;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::backend_tests;
use crate::common::{assert_scim_error, send, user, Backend, TestApp};

backend_tests!(
    non_ascii_if_match_is_a_failed_precondition,
    every_response_says_nosniff,
    secrets_are_never_cached,
    admin_body_errors_name_no_internal_type,
    bulk_references_resolve_across_a_large_request,
    cloud_metadata_addresses_are_never_webhooks,
);

/// Tests that need their own configuration, one per backend.
macro_rules! configured_tests {
    ($($name:ident),* $(,)?) => {
        mod configured {
            mod sqlite {
                $(
                    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                    async fn $name() {
                        super::super::$name(crate::common::Backend::Sqlite).await;
                    }
                )*
            }
            mod postgres {
                $(
                    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                    async fn $name() {
                        super::super::$name(crate::common::Backend::Postgres).await;
                    }
                )*
            }
        }
    };
}

configured_tests!(slow_requests_are_timed_out);

/// Header values an ASCII-only parser cannot read: obs-text bytes and a bare 0xFF.
fn non_ascii_tags() -> [HeaderValue; 3] {
    [
        HeaderValue::from_bytes(b"\"\xff\"").unwrap(),
        HeaderValue::from_bytes("W/\"1é\"".as_bytes()).unwrap(),
        HeaderValue::from_bytes(b"W/\"1\xe9\"").unwrap(),
    ]
}

async fn non_ascii_if_match_is_a_failed_precondition(app: TestApp) {
    let dir = app.create_directory("acme", "crm").await;
    let u = app.create_user(&dir, "ada@acme.com").await;
    let (status, g) = send(
        app.scim(&dir, Method::POST, "/Groups")
            .json(&json!({"displayName": "Eng"})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{g}");
    let user_path = format!("/Users/{}", u["id"].as_str().unwrap());
    let group_path = format!("/Groups/{}", g["id"].as_str().unwrap());
    let mut renamed = user("ada@acme.com");
    renamed["displayName"] = json!("Changed");
    let patch = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "replace", "path": "displayName", "value": "Changed"}]});
    for tag in non_ascii_tags() {
        for (path, put) in [
            (&user_path, renamed.clone()),
            (&group_path, json!({"displayName": "Changed"})),
        ] {
            for (method, body) in [
                (Method::PUT, Some(&put)),
                (Method::PATCH, Some(&patch)),
                (Method::DELETE, None),
            ] {
                let mut req = app
                    .scim(&dir, method.clone(), path)
                    .header("If-Match", tag.clone());
                if let Some(b) = body {
                    req = req.json(b);
                }
                let (status, err) = send(req).await;
                assert_eq!(
                    status,
                    StatusCode::PRECONDITION_FAILED,
                    "{method} {path} {tag:?}: {err}"
                );
                assert_scim_error(status, &err, 412, None);
            }
        }
    }
    // Nothing was written: both resources are still at their first version.
    for path in [&user_path, &group_path] {
        let (status, now) = send(app.scim(&dir, Method::GET, path)).await;
        assert_eq!(status, StatusCode::OK, "{now}");
        assert_eq!(now["meta"]["version"], "W/\"1\"", "{path}: {now}");
        assert_ne!(now["displayName"], "Changed", "{now}");
    }
    // An ASCII tag naming the current version still lets the write through.
    let (status, ok) = send(
        app.scim(&dir, Method::PATCH, &user_path)
            .header("If-Match", "W/\"1\"")
            .json(&patch),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{ok}");
}

async fn every_response_says_nosniff(app: TestApp) {
    let dir = app.create_directory("acme", "crm").await;
    let requests = [
        app.client.get(format!("{}/healthz", app.base)),
        app.client.get(format!("{}/nowhere", app.base)),
        app.scim(&dir, Method::GET, "/Users"),
        app.scim(&dir, Method::GET, "/ServiceProviderConfig"),
        app.scim(&dir, Method::POST, "/Users").body("{"),
        app.client.get(format!("{}/Users", dir.endpoint)),
        app.admin(Method::GET, "/directory-sync"),
        app.admin(Method::GET, "/directory-sync/nope"),
        app.client
            .get(format!("{}/api/v1/directory-sync", app.base)),
    ];
    for req in requests {
        let resp = req.send().await.unwrap();
        let url = resp.url().to_string();
        assert_eq!(
            resp.headers()
                .get("x-content-type-options")
                .map(|v| v.as_bytes()),
            Some(&b"nosniff"[..]),
            "{url} -> {}",
            resp.status()
        );
    }
}

async fn secrets_are_never_cached(app: TestApp) {
    let no_store = |resp: &reqwest::Response| {
        assert_eq!(
            resp.headers().get("cache-control").map(|v| v.as_bytes()),
            Some(&b"no-store"[..]),
            "{} {}",
            resp.url(),
            resp.status()
        );
    };
    let created = app
        .admin(Method::POST, "/directory-sync")
        .json(&json!({"tenant": "acme", "product": "crm", "webhook_url": "http://127.0.0.1:9/h"}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);
    no_store(&created);
    let body: Value = created.json().await.unwrap();
    let id = body["data"]["id"].as_str().unwrap().to_string();
    assert!(body["data"]["scim"]["secret"].is_string());
    let base = format!("/directory-sync/{id}");
    let rotated = app
        .admin(Method::POST, &format!("{base}/scim-secret/rotate"))
        .send()
        .await
        .unwrap();
    assert_eq!(rotated.status(), StatusCode::OK);
    no_store(&rotated);
    let updated = app
        .admin(Method::PATCH, &base)
        .json(&json!({"webhook": {"endpoint": "http://127.0.0.1:9/other"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(updated.status(), StatusCode::OK);
    no_store(&updated);
    let endpoint = app
        .admin(Method::POST, &format!("{base}/webhooks"))
        .json(&json!({"url": "http://127.0.0.1:9/x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(endpoint.status(), StatusCode::CREATED);
    no_store(&endpoint);
    let endpoint: Value = endpoint.json().await.unwrap();
    assert!(endpoint["data"]["secret"].is_string(), "{endpoint}");
    let wid = endpoint["data"]["id"].as_str().unwrap();
    let rotated = app
        .admin(
            Method::POST,
            &format!("{base}/webhooks/{wid}/secret/rotate"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(rotated.status(), StatusCode::OK);
    no_store(&rotated);
    // Errors and plain reads of the admin API are not cached either (they name users).
    for path in [
        base.clone(),
        format!("{base}/users"),
        "/directory-sync/nope".into(),
    ] {
        no_store(&app.admin(Method::GET, &path).send().await.unwrap());
    }
}

async fn admin_body_errors_name_no_internal_type(app: TestApp) {
    let dir = app.create_directory("acme", "crm").await;
    let base = format!("/directory-sync/{}", dir.id);
    let cases: Vec<(Method, String, Value, Option<&str>)> = vec![
        (Method::PATCH, base.clone(), json!("x"), None),
        (Method::PATCH, base.clone(), json!([1, 2]), None),
        (Method::PATCH, base.clone(), json!(null), None),
        (
            Method::PATCH,
            base.clone(),
            json!({"webhook": 5}),
            Some("webhook"),
        ),
        (
            Method::PATCH,
            base.clone(),
            json!({"webhook": {"endpoint": 5}}),
            Some("endpoint"),
        ),
        (
            Method::PATCH,
            base.clone(),
            json!({"user_limit": "many"}),
            Some("user_limit"),
        ),
        (
            Method::PATCH,
            base.clone(),
            json!({"deactivated": 7}),
            Some("deactivated"),
        ),
        (
            Method::PATCH,
            base.clone(),
            json!({"name": ["a"]}),
            Some("name"),
        ),
        (Method::POST, "/directory-sync".into(), json!(3), None),
        (
            Method::POST,
            "/directory-sync".into(),
            json!({"tenant": 5, "product": "p"}),
            Some("tenant"),
        ),
        (
            Method::POST,
            "/directory-sync".into(),
            json!({"tenant": "t", "product": "p", "user_limit": 1.5}),
            Some("user_limit"),
        ),
        (Method::POST, format!("{base}/webhooks"), json!("x"), None),
        (
            Method::POST,
            format!("{base}/webhooks"),
            json!({"url": 5}),
            Some("url"),
        ),
        (
            Method::POST,
            format!("{base}/webhooks"),
            json!({"url": "http://127.0.0.1:9/x", "event_types": "all"}),
            Some("event_types"),
        ),
        (
            Method::POST,
            format!("{base}/webhooks"),
            json!({"url": "http://127.0.0.1:9/x", "batch_size": "10"}),
            Some("batch_size"),
        ),
    ];
    for (method, path, body, field) in cases {
        let (status, err) = send(app.admin(method.clone(), &path).json(&body)).await;
        assert_eq!(
            status,
            StatusCode::BAD_REQUEST,
            "{method} {path} {body}: {err}"
        );
        let message = err["error"]["message"].as_str().unwrap_or_default();
        for internal in [
            "struct",
            "enum",
            "i64",
            "u64",
            "Option",
            "Directory",
            "Endpoint",
        ] {
            assert!(
                !message.contains(internal),
                "{method} {path} {body}: {message:?} names {internal:?}"
            );
        }
        match field {
            Some(f) => assert!(message.contains(f), "{body}: {message:?} should name {f}"),
            None => assert!(message.contains("object"), "{body}: {message:?}"),
        }
    }
}

/// A request near the 1 MiB Bulk limit: every user names the next one (created later
/// in the request) as its manager, so each operation waits on a reference.
async fn bulk_references_resolve_across_a_large_request(app: TestApp) {
    let dir = app.create_directory("acme", "crm").await;
    let n = 1000;
    let request = |padding: &str| {
        let ops: Vec<Value> = (0..n)
            .map(|i| {
                let mut u = user(&format!("u{i}@acme.com"));
                u["title"] = json!(padding);
                // Many small values, as IdPs send: resolution walks every one.
                u["addresses"] = (0..4)
                    .map(|k| json!({"type": format!("t{k}"), "streetAddress": format!("{k} Main St"),
                        "locality": "Springfield", "region": "IL", "postalCode": "62701", "country": "US"}))
                    .collect();
                if i + 1 < n {
                    u["urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"] =
                        json!({"manager": {"value": format!("bulkId:u{}", i + 1)}});
                }
                json!({"method": "POST", "path": "/Users", "bulkId": format!("u{i}"), "data": u})
            })
            .collect();
        json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"], "Operations": ops})
    };
    // Padded to about 0.95 MiB, under the 1 MiB Bulk limit.
    let bare = request("").to_string().len();
    let padding = "p".repeat((970 * 1024 - bare) / n);
    let body = request(&padding);
    let size = body.to_string().len();
    assert!((900 * 1024..1024 * 1024).contains(&size), "{size} bytes");
    let started = Instant::now();
    let (status, resp) = send(app.scim(&dir, Method::POST, "/Bulk").json(&body)).await;
    eprintln!(
        "bulk of {n} chained operations, {size} bytes: {:?}",
        started.elapsed()
    );
    assert_eq!(status, StatusCode::OK, "{resp}");
    let results = resp["Operations"].as_array().unwrap();
    assert_eq!(results.len(), n);
    // Results come in request order; each carries the id it created.
    let mut ids = Vec::with_capacity(n);
    for (i, r) in results.iter().enumerate() {
        assert_eq!(r["bulkId"], format!("u{i}"), "{r}");
        assert_eq!(r["status"], "201", "{r}");
        let location = r["location"].as_str().unwrap();
        ids.push(location.rsplit('/').next().unwrap().to_string());
    }
    for i in [0, 1, n / 2, n - 2, n - 1] {
        let (status, u) = send(app.scim(&dir, Method::GET, &format!("/Users/{}", ids[i]))).await;
        assert_eq!(status, StatusCode::OK, "{u}");
        let manager = &u["urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"]["manager"];
        if i + 1 < n {
            assert_eq!(manager["value"], ids[i + 1].as_str(), "user {i}: {u}");
        } else {
            assert!(manager.is_null(), "{u}");
        }
        // Strings that are not references are kept as sent.
        assert_eq!(u["title"], padding.as_str());
    }
    // References inside a path, in a string with a prefix, unknown and circular ones.
    let (status, resp) = send(app.scim(&dir, Method::POST, "/Bulk").json(&json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"],
        "Operations": [
            {"method": "PATCH", "path": "/Users/bulkId:late", "data": {"Operations": [
                {"op": "replace", "path": "title", "value": "not bulkId:late"}]}},
            {"method": "POST", "path": "/Groups", "bulkId": "g", "data": {"displayName": "G",
                "members": [{"value": "bulkId:late"}, {"value": "bulkId:late"}]}},
            {"method": "POST", "path": "/Users", "bulkId": "late", "data": user("late@acme.com")},
            {"method": "POST", "path": "/Users", "bulkId": "a", "data": {"userName": "a@acme.com",
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"manager": {"value": "bulkId:b"}}}},
            {"method": "POST", "path": "/Users", "bulkId": "b", "data": {"userName": "b@acme.com",
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"manager": {"value": "bulkId:a"}}}},
            {"method": "DELETE", "path": "/Users/bulkId:nowhere"}
        ]
    })))
    .await;
    assert_eq!(status, StatusCode::OK, "{resp}");
    let results = resp["Operations"].as_array().unwrap();
    let statuses: Vec<&str> = results
        .iter()
        .map(|r| r["status"].as_str().unwrap())
        .collect();
    assert_eq!(
        statuses,
        ["200", "201", "201", "409", "409", "409"],
        "{resp}"
    );
    let late = results[2]["location"].as_str().unwrap();
    let (_, late_user) = send(app.client.get(late).bearer_auth(&dir.secret)).await;
    assert_eq!(late_user["title"], "not bulkId:late", "{late_user}");
    let (_, group) = send(
        app.client
            .get(results[1]["location"].as_str().unwrap())
            .bearer_auth(&dir.secret),
    )
    .await;
    assert_eq!(group["members"][0]["value"], late_user["id"], "{group}");
}

async fn cloud_metadata_addresses_are_never_webhooks(app: TestApp) {
    // The harness allows private addresses (its receivers are on 127.0.0.1): metadata
    // services are refused even so.
    let dir = app.create_directory("acme", "crm").await;
    let hooks = format!("/directory-sync/{}/webhooks", dir.id);
    for url in [
        "http://168.63.129.16/machine?comp=goalstate",
        "http://100.100.100.200/latest/meta-data/",
        "http://[fd00:ec2::254]/latest/meta-data/",
        "http://169.254.169.254/latest/meta-data/",
        "http://169.254.170.2/v2/credentials",
        "http://[::ffff:168.63.129.16]/",
        "http://[::ffff:a83f:8110]/",
    ] {
        let (status, body) = send(app.admin(Method::POST, &hooks).json(&json!({"url": url}))).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{url}: {body}");
        let message = body["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains("metadata"), "{url}: {message}");
        let (status, body) = send(app.admin(Method::POST, "/directory-sync").json(&json!({
            "tenant": "t", "product": "p", "webhook_url": url,
        })))
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{url}: {body}");
    }
    let (status, body) = send(
        app.admin(Method::POST, &hooks)
            .json(&json!({"url": "http://127.0.0.1:9/hook"})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let wid = body["data"]["id"].as_str().unwrap();
    let (status, body) = send(
        app.admin(Method::PATCH, &format!("{hooks}/{wid}"))
            .json(&json!({"url": "http://168.63.129.16/"})),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
}

/// Sends `head` then `body` on a raw connection and reads until the server answers and
/// closes, or `patience` passes. Returns what was read and how long it took.
fn exchange(base: &str, head: &str, body: &[u8], patience: Duration) -> (String, Duration) {
    let addr = base.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(patience)).unwrap();
    let started = Instant::now();
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(body).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            // Timed out (or reset): what we have is the answer.
            Err(_) => break,
        }
        if started.elapsed() > patience {
            break;
        }
    }
    (
        String::from_utf8_lossy(&got).into_owned(),
        started.elapsed(),
    )
}

async fn slow_requests_are_timed_out(backend: Backend) {
    let Some(app) = TestApp::start_with(backend, |c| {
        c.header_timeout_ms = 300;
        c.request_timeout_ms = 300;
    })
    .await
    else {
        return;
    };
    let dir = app.create_directory("acme", "crm").await;
    let base = app.base.clone();
    let path = dir.endpoint.trim_start_matches(&base).to_string();
    let patience = Duration::from_secs(4);
    let secret = dir.secret.clone();
    // A body that stops after 12 of its 100 bytes: 408 with a SCIM error.
    let scim = {
        let base = base.clone();
        tokio::task::spawn_blocking(move || {
            let head = format!(
                "POST {path}/Users HTTP/1.1\r\nHost: test\r\nAuthorization: Bearer {secret}\r\n\
                 Content-Type: application/scim+json\r\nContent-Length: 100\r\n\r\n"
            );
            exchange(&base, &head, b"{\"userName\":", patience)
        })
    };
    // The same on the admin API.
    let admin = {
        let base = base.clone();
        tokio::task::spawn_blocking(move || {
            let head = format!(
                "POST /api/v1/directory-sync HTTP/1.1\r\nHost: test\r\nAuthorization: Api-Key {}\r\n\
                 Content-Type: application/json\r\nContent-Length: 100\r\n\r\n",
                crate::common::API_KEY
            );
            exchange(&base, &head, b"{\"tenant\":", patience)
        })
    };
    // Headers that never end: the connection is answered or closed.
    let headers = {
        let base = base.clone();
        tokio::task::spawn_blocking(move || {
            exchange(
                &base,
                "GET /healthz HTTP/1.1\r\nHost: test\r\n",
                b"",
                patience,
            )
        })
    };
    let (scim, scim_took) = scim.await.unwrap();
    assert!(
        scim.starts_with("HTTP/1.1 408"),
        "{scim:?} after {scim_took:?}"
    );
    assert!(
        scim.contains("urn:ietf:params:scim:api:messages:2.0:Error"),
        "{scim}"
    );
    assert!(scim_took < Duration::from_secs(3), "{scim_took:?} {scim}");
    let (admin, admin_took) = admin.await.unwrap();
    assert!(
        admin.starts_with("HTTP/1.1 408"),
        "{admin:?} after {admin_took:?}"
    );
    assert!(admin_took < Duration::from_secs(3), "{admin_took:?}");
    let (head, head_took) = headers.await.unwrap();
    assert!(
        head.is_empty() || head.starts_with("HTTP/1.1 408"),
        "{head:?}"
    );
    assert!(head_took < Duration::from_secs(3), "{head_took:?}");
    // Nothing was created and the server still serves.
    let (status, list) = send(app.scim(&dir, Method::GET, "/Users")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list["totalResults"], 0);
}
