//! The admin directory API: `/api/v1/directory-sync` and its `/api/v1/dsync` alias.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::backend_tests;
use crate::common::{send, TestApp};

backend_tests!(
    create_returns_scim_endpoint_and_secret_once,
    seed_003_curl_shapes_work,
    requires_api_key,
    validates_input,
    lists_by_tenant_and_product_with_paging,
    update_and_deactivate,
    delete_removes_all_directory_data,
    secret_rotation_keeps_old_secret_for_grace_period,
    reads_synced_users_groups_and_members,
);

async fn create_returns_scim_endpoint_and_secret_once(app: TestApp) {
    let dir = app.create_directory("acme", "crm").await;
    assert_eq!(
        dir.json["scim"]["path"],
        format!("/api/scim/v2.0/{}", dir.id)
    );
    assert_eq!(
        dir.endpoint,
        format!("{}/api/scim/v2.0/{}", app.base, dir.id)
    );
    assert!(dir.secret.len() >= 32);
    assert_eq!(dir.json["type"], "generic-scim-v2");
    assert_eq!(dir.json["deactivated"], false);

    // Reads never show the secret again: it is stored hashed.
    let (status, body) = send(app.admin(Method::GET, &format!("/directory-sync/{}", dir.id))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["data"]["scim"]["secret"], Value::Null);
    assert_eq!(body["data"]["scim"]["endpoint"], dir.endpoint);
    assert_eq!(body["error"], Value::Null);

    // The alias serves the same directory.
    let (status, alias) = send(app.admin(Method::GET, &format!("/dsync/{}", dir.id))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(alias["data"]["id"], body["data"]["id"]);

    // The secret opens the SCIM endpoint.
    let (status, _) = send(app.scim(&dir, Method::GET, "/Users")).await;
    assert_eq!(status, StatusCode::OK);
}

/// The curl examples of the Jackson API reference (seed 003) work unchanged.
async fn seed_003_curl_shapes_work(app: TestApp) {
    let (status, created) = send(
        app.admin(Method::POST, "/directory-sync")
            .header("Content-Type", "application/json")
            .body(r#"{"name":"App","tenant":"boxyhq","product":"jackson","type":"onelogin-scim-v2","webhook_url":"https://my-cool-app.com/webhook","webhook_secret":"my-secret"}"#),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let d = &created["data"];
    for key in [
        "id",
        "name",
        "tenant",
        "product",
        "type",
        "log_webhook_events",
        "scim",
        "webhook",
    ] {
        assert!(d.get(key).is_some(), "missing {key} in {d}");
    }
    assert_eq!(d["name"], "App");
    assert_eq!(d["type"], "onelogin-scim-v2");
    assert_eq!(
        d["webhook"],
        json!({"endpoint": "https://my-cool-app.com/webhook", "secret": "my-secret"})
    );
    let id = d["id"].as_str().unwrap().to_string();
    let secret = d["scim"]["secret"].as_str().unwrap().to_string();

    let (status, list) =
        send(app.admin(Method::GET, "/directory-sync?tenant=boxyhq&product=jackson")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list["data"][0]["id"], id.as_str());

    // Push a user and a group the way an IdP would, then read them the Jackson way.
    let scim = |m: Method, p: &str| {
        app.client
            .request(m, format!("{}/api/scim/v2.0/{id}{p}", app.base))
            .header("Authorization", format!("Bearer {secret}"))
    };
    let (_, u) =
        send(scim(Method::POST, "/Users").json(&crate::common::user("kiran@boxyhq.com"))).await;
    let uid = u["id"].as_str().unwrap().to_string();
    let (_, g) = send(
        scim(Method::POST, "/Groups")
            .json(&json!({"displayName": "Developers", "members": [{"value": uid}]})),
    )
    .await;
    let gid = g["id"].as_str().unwrap().to_string();

    let (status, users) = send(app.admin(
        Method::GET,
        "/directory-sync/users?tenant=boxyhq&product=jackson",
    ))
    .await;
    assert_eq!(status, StatusCode::OK, "{users}");
    let first = &users["data"][0];
    assert_eq!(first["id"], uid.as_str());
    assert_eq!(first["email"], "kiran@boxyhq.com");
    assert_eq!(first["first_name"], "Given kiran");
    assert_eq!(first["last_name"], "Family");
    assert_eq!(first["active"], true);
    assert_eq!(first["raw"]["userName"], "kiran@boxyhq.com");
    assert!(first["raw"].get("password").is_none());

    let (status, one) = send(app.admin(
        Method::GET,
        &format!("/directory-sync/users/{uid}?tenant=boxyhq&product=jackson"),
    ))
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(one["data"]["id"], uid.as_str());

    let (status, groups) = send(app.admin(
        Method::GET,
        "/directory-sync/groups?tenant=boxyhq&product=jackson",
    ))
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(groups["data"][0]["name"], "Developers");

    let (status, group) = send(app.admin(
        Method::GET,
        &format!("/directory-sync/groups/{gid}?tenant=boxyhq&product=jackson"),
    ))
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(group["data"]["raw"]["displayName"], "Developers");
    assert_eq!(group["data"]["raw"]["members"][0]["value"], uid.as_str());
    assert_eq!(
        group["data"]["raw"]["members"][0]["display"],
        "kiran@boxyhq.com"
    );
}

async fn requires_api_key(app: TestApp) {
    for auth in [
        None,
        Some("Api-Key wrong"),
        Some("Api-Key"),
        Some("Basic x"),
    ] {
        let mut req = app
            .client
            .get(format!("{}/api/v1/directory-sync", app.base));
        if let Some(a) = auth {
            req = req.header("Authorization", a);
        }
        let (status, body) = send(req).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{auth:?}");
        assert_eq!(body["data"], Value::Null);
        assert_eq!(body["error"]["code"], 401);
        assert!(body["error"]["message"].is_string());
    }
}

async fn validates_input(app: TestApp) {
    let cases = [
        json!({"tenant": "a:b", "product": "p"}),
        json!({"tenant": "a", "product": "p:q"}),
        json!({"tenant": "", "product": "p"}),
        json!({"product": "p"}),
        json!({"tenant": "a", "product": "p", "type": "ldap"}),
        json!({"tenant": "a", "product": "p", "webhook_url": "ftp://x"}),
        json!({"tenant": "a", "product": "p", "user_limit": -1}),
        json!({"tenant": 5, "product": "p"}),
    ];
    for body in cases {
        let (status, resp) = send(app.admin(Method::POST, "/directory-sync").json(&body)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body} -> {resp}");
        assert_eq!(resp["error"]["code"], 400);
    }
    let (status, resp) = send(
        app.admin(Method::POST, "/directory-sync")
            .header("Content-Type", "application/json")
            .body("{not json"),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{resp}");
    let (status, _) = send(app.admin(Method::GET, "/directory-sync/does-not-exist")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = send(app.admin(Method::GET, "/directory-sync?pageLimit=x")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

async fn lists_by_tenant_and_product_with_paging(app: TestApp) {
    for _ in 0..3 {
        app.create_directory("acme", "crm").await;
    }
    app.create_directory("acme", "hr").await;
    app.create_directory("globex", "crm").await;

    let (_, page1) = send(app.admin(
        Method::GET,
        "/directory-sync?tenant=acme&product=crm&pageLimit=2",
    ))
    .await;
    assert_eq!(page1["data"].as_array().unwrap().len(), 2);
    let token = page1["pageToken"].as_str().expect("pageToken").to_string();
    let (_, page2) = send(app.admin(
        Method::GET,
        &format!("/directory-sync?tenant=acme&product=crm&pageLimit=2&pageToken={token}"),
    ))
    .await;
    assert_eq!(page2["data"].as_array().unwrap().len(), 1);
    assert!(page2.get("pageToken").is_none());
    let ids: Vec<&Value> = page1["data"]
        .as_array()
        .unwrap()
        .iter()
        .chain(page2["data"].as_array().unwrap())
        .map(|d| &d["id"])
        .collect();
    assert_eq!(ids.len(), 3);
    for d in page1["data"]
        .as_array()
        .unwrap()
        .iter()
        .chain(page2["data"].as_array().unwrap())
    {
        assert_eq!(
            (d["tenant"].as_str(), d["product"].as_str()),
            (Some("acme"), Some("crm"))
        );
    }
    let (_, offset) = send(app.admin(
        Method::GET,
        "/dsync?tenant=acme&product=crm&pageOffset=2&pageLimit=5",
    ))
    .await;
    assert_eq!(offset["data"].as_array().unwrap().len(), 1);
    let (_, all) = send(app.admin(Method::GET, "/directory-sync")).await;
    assert_eq!(all["data"].as_array().unwrap().len(), 5);
}

async fn update_and_deactivate(app: TestApp) {
    let dir = app.create_directory("acme", "crm").await;
    let path = format!("/directory-sync/{}", dir.id);
    let (status, body) = send(app.admin(Method::PATCH, &path).json(&json!({
        "name": "Renamed", "log_webhook_events": "true", "user_limit": 10,
        "webhook": {"endpoint": "https://example.com/hook", "secret": "s"}
    })))
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["name"], "Renamed");
    assert_eq!(body["data"]["log_webhook_events"], true);
    assert_eq!(body["data"]["user_limit"], 10);
    assert_eq!(
        body["data"]["webhook"]["endpoint"],
        "https://example.com/hook"
    );

    let (status, body) = send(
        app.admin(Method::PATCH, &path)
            .json(&json!({"deactivated": true})),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["data"]["deactivated"], true);
    // A deactivated directory answers 403, never a silent 200.
    let (status, err) = send(
        app.scim(&dir, Method::POST, "/Users")
            .json(&crate::common::user("a@x.com")),
    )
    .await;
    crate::common::assert_scim_error(status, &err, 403, None);
    let (status, _) = send(
        app.admin(Method::PATCH, &path)
            .json(&json!({"deactivated": false})),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = send(app.scim(&dir, Method::GET, "/Users")).await;
    assert_eq!(status, StatusCode::OK);

    let kinds: Vec<String> = app
        .events(&dir)
        .await
        .iter()
        .map(|e| e["event"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        kinds,
        ["dsync.created", "dsync.deactivated", "dsync.activated"]
    );

    let (status, _) = send(
        app.admin(Method::PATCH, "/directory-sync/nope")
            .json(&json!({"name": "x"})),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = send(
        app.admin(Method::PATCH, &path)
            .json(&json!({"deactivated": "maybe"})),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

async fn delete_removes_all_directory_data(app: TestApp) {
    let dir = app.create_directory("acme", "crm").await;
    let other = app.create_directory("acme", "crm").await;
    let u = app.create_user(&dir, "a@acme.com").await;
    app.create_user(&other, "a@acme.com").await;
    let (status, _) = send(
        app.scim(&dir, Method::POST, "/Groups")
            .json(&json!({"displayName": "G", "members": [{"value": u["id"]}]})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);

    let (status, body) =
        send(app.admin(Method::DELETE, &format!("/directory-sync/{}", dir.id))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, _) = send(app.admin(Method::GET, &format!("/directory-sync/{}", dir.id))).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = send(app.scim(&dir, Method::GET, "/Users")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // Nothing of it is left in the database; the other directory is untouched.
    let dir_id = dir.id.clone();
    let counts = app
        .db
        .run(move |c| {
            use diesel::prelude::*;
            use scimgate::store::schema::{memberships, scim_groups, users};
            let u: i64 = users::table
                .filter(users::directory_id.eq(&dir_id))
                .count()
                .get_result(c)?;
            let g: i64 = scim_groups::table
                .filter(scim_groups::directory_id.eq(&dir_id))
                .count()
                .get_result(c)?;
            let m: i64 = memberships::table
                .filter(memberships::directory_id.eq(&dir_id))
                .count()
                .get_result(c)?;
            Ok((u, g, m))
        })
        .await
        .unwrap();
    assert_eq!(counts, (0, 0, 0));
    let (status, list) = send(app.scim(&other, Method::GET, "/Users")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list["totalResults"], 1);
    let (status, _) = send(app.admin(Method::DELETE, &format!("/directory-sync/{}", dir.id))).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

async fn secret_rotation_keeps_old_secret_for_grace_period(app: TestApp) {
    let dir = app.create_directory("acme", "crm").await;
    let (status, body) = send(app.admin(
        Method::POST,
        &format!("/directory-sync/{}/scim-secret/rotate", dir.id),
    ))
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let new_secret = body["data"]["scim"]["secret"].as_str().unwrap().to_string();
    assert_ne!(new_secret, dir.secret);
    assert!(body["data"]["scim"]["previous_secret_expires_at"].is_string());
    let rotated = crate::common::Dir {
        secret: new_secret.clone(),
        ..dir.clone()
    };
    assert_eq!(
        send(app.scim(&rotated, Method::GET, "/Users")).await.0,
        StatusCode::OK
    );
    assert_eq!(
        send(app.scim(&dir, Method::GET, "/Users")).await.0,
        StatusCode::OK,
        "old secret within grace"
    );

    // Rotating with no grace period retires the previous secret at once.
    let (_, body) = send(app.admin(
        Method::POST,
        &format!(
            "/directory-sync/{}/scim-secret/rotate?grace_period_seconds=0",
            dir.id
        ),
    ))
    .await;
    let newest = crate::common::Dir {
        secret: body["data"]["scim"]["secret"].as_str().unwrap().to_string(),
        ..dir.clone()
    };
    assert_eq!(
        send(app.scim(&newest, Method::GET, "/Users")).await.0,
        StatusCode::OK
    );
    assert_eq!(
        send(app.scim(&rotated, Method::GET, "/Users")).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        send(app.scim(&dir, Method::GET, "/Users")).await.0,
        StatusCode::UNAUTHORIZED
    );
}

async fn reads_synced_users_groups_and_members(app: TestApp) {
    let dir = app.create_directory("acme", "crm").await;
    let other = app.create_directory("acme", "crm").await;
    let mut ids = Vec::new();
    for i in 0..3 {
        ids.push(
            app.create_user(&dir, &format!("u{i}@acme.com")).await["id"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    let foreign = app.create_user(&other, "f@acme.com").await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let members: Vec<Value> = ids.iter().map(|id| json!({"value": id})).collect();
    let (_, g) = send(
        app.scim(&dir, Method::POST, "/Groups")
            .json(&json!({"displayName": "Eng", "members": members})),
    )
    .await;
    let gid = g["id"].as_str().unwrap();

    let base = format!("/directory-sync/{}", dir.id);
    let (_, users) = send(app.admin(Method::GET, &format!("{base}/users?pageLimit=2"))).await;
    assert_eq!(users["data"].as_array().unwrap().len(), 2);
    assert!(users["pageToken"].is_string());
    let (_, one) = send(app.admin(Method::GET, &format!("{base}/users/{}", ids[0]))).await;
    assert_eq!(one["data"]["raw"]["groups"][0]["value"], gid);
    let (status, _) = send(app.admin(Method::GET, &format!("{base}/users/{foreign}"))).await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "a user of another directory is not found"
    );
    let (_, groups) = send(app.admin(Method::GET, &format!("{base}/groups"))).await;
    assert_eq!(groups["data"].as_array().unwrap().len(), 1);
    let (_, m) = send(app.admin(Method::GET, &format!("{base}/groups/{gid}/members"))).await;
    let mut got: Vec<String> = m["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["user_id"].as_str().unwrap().to_string())
        .collect();
    got.sort();
    let mut want = ids.clone();
    want.sort();
    assert_eq!(got, want);
    let (status, _) = send(app.admin(
        Method::GET,
        &format!("/directory-sync/{}/groups/{gid}", other.id),
    ))
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // Jackson's form by directoryId.
    let (_, by_id) = send(app.admin(
        Method::GET,
        &format!("/dsync/users?directoryId={}", other.id),
    ))
    .await;
    assert_eq!(by_id["data"].as_array().unwrap().len(), 1);
    let (status, _) = send(app.admin(Method::GET, "/dsync/users")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}
