//! SCIM Users: create, read, list, filter, PUT, PATCH, DELETE, isolation.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::backend_tests;
use crate::common::{assert_scim_error, send, user, TestApp};

backend_tests!(
    create_and_read_a_user,
    list_pages_with_true_total,
    user_name_is_unique_case_insensitively,
    filters_by_indexed_and_other_attributes,
    put_replaces_the_user,
    patch_applies_operations,
    delete_answers_204_then_404,
    directories_are_isolated,
    seats_are_enforced,
    etags_and_preconditions,
);

async fn create_and_read_a_user(app: TestApp) {
    let dir = app.create_directory("acme", "crm").await;
    let resp = app
        .scim(&dir, Method::POST, "/Users")
        .json(&user("ada@acme.com"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    assert_eq!(resp.headers()["content-type"], "application/scim+json");
    let etag = resp.headers()["etag"].to_str().unwrap().to_string();
    let location = resp.headers()["location"].to_str().unwrap().to_string();
    let created: Value = resp.json().await.unwrap();
    let id = created["id"].as_str().unwrap();
    assert_eq!(created["userName"], "ada@acme.com");
    assert_eq!(
        created["schemas"][0],
        "urn:ietf:params:scim:schemas:core:2.0:User"
    );
    assert!(
        created.get("password").is_none(),
        "password is never echoed"
    );
    assert_eq!(created["meta"]["resourceType"], "User");
    assert_eq!(created["meta"]["location"], location.as_str());
    assert_eq!(location, format!("{}/Users/{id}", dir.endpoint));
    assert_eq!(created["meta"]["version"], etag.as_str());
    assert!(created["meta"]["created"].as_str().unwrap().ends_with('Z'));

    let (status, got) = send(app.scim(&dir, Method::GET, &format!("/Users/{id}"))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(got, created);

    // The password is not in the database either.
    let id2 = id.to_string();
    let raw = app
        .db
        .run(move |c| {
            use diesel::prelude::*;
            use scimgate::store::schema::users;
            Ok(users::table
                .find(&id2)
                .select(users::raw)
                .first::<String>(c)?)
        })
        .await
        .unwrap();
    assert!(!raw.contains("hunter2"), "{raw}");
}

async fn list_pages_with_true_total(app: TestApp) {
    let dir = app.create_directory("acme", "crm").await;
    for i in 0..7 {
        app.create_user(&dir, &format!("user{i}@acme.com")).await;
    }
    let (status, page) = send(app.scim(&dir, Method::GET, "/Users?startIndex=3&count=2")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        page["schemas"][0],
        "urn:ietf:params:scim:api:messages:2.0:ListResponse"
    );
    assert_eq!(page["totalResults"], 7);
    assert_eq!(page["startIndex"], 3);
    assert_eq!(page["itemsPerPage"], 2);
    assert_eq!(page["Resources"][0]["userName"], "user2@acme.com");
    assert_eq!(page["Resources"][1]["userName"], "user3@acme.com");

    let (_, tail) = send(app.scim(&dir, Method::GET, "/Users?startIndex=6&count=10")).await;
    assert_eq!(tail["itemsPerPage"], 2);
    assert_eq!(tail["totalResults"], 7);
    let (_, none) = send(app.scim(&dir, Method::GET, "/Users?count=0")).await;
    assert_eq!(none["totalResults"], 7);
    assert_eq!(none["itemsPerPage"], 0);
    let (_, clamped) = send(app.scim(&dir, Method::GET, "/Users?startIndex=-4")).await;
    assert_eq!(clamped["startIndex"], 1);
    assert_eq!(clamped["itemsPerPage"], 7);
    let (status, err) = send(app.scim(&dir, Method::GET, "/Users?count=abc")).await;
    assert_scim_error(status, &err, 400, Some("invalidValue"));
}

async fn user_name_is_unique_case_insensitively(app: TestApp) {
    let dir = app.create_directory("acme", "crm").await;
    let first = app.create_user(&dir, "Ada@Acme.com").await;
    let (status, err) = send(
        app.scim(&dir, Method::POST, "/Users")
            .json(&user("ada@acme.COM")),
    )
    .await;
    assert_scim_error(status, &err, 409, Some("uniqueness"));
    // Renaming another user onto it is refused too.
    let second = app.create_user(&dir, "bob@acme.com").await;
    let (status, err) = send(
        app.scim(
            &dir,
            Method::PUT,
            &format!("/Users/{}", second["id"].as_str().unwrap()),
        )
        .json(&user("ADA@acme.com")),
    )
    .await;
    assert_scim_error(status, &err, 409, Some("uniqueness"));
    // The failed writes recorded no events.
    let created = app
        .events(&dir)
        .await
        .iter()
        .filter(|e| e["event"] == "user.created")
        .count();
    assert_eq!(created, 2);
    // Changing the case of one's own userName is fine.
    let (status, _) = send(
        app.scim(
            &dir,
            Method::PUT,
            &format!("/Users/{}", first["id"].as_str().unwrap()),
        )
        .json(&user("ADA@ACME.COM")),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
}

async fn filters_by_indexed_and_other_attributes(app: TestApp) {
    let dir = app.create_directory("acme", "crm").await;
    let ada = app.create_user(&dir, "ada@acme.com").await;
    app.create_user(&dir, "bob@acme.com").await;
    let mut carol = user("carol@acme.com");
    carol["active"] = json!(false);
    carol["title"] = json!("CTO");
    send(app.scim(&dir, Method::POST, "/Users").json(&carol)).await;

    let count = |f: &str| {
        let req = app
            .scim(&dir, Method::GET, "/Users")
            .query(&[("filter", f)]);
        let f = f.to_string();
        async move {
            let (status, body) = send(req).await;
            assert_eq!(status, StatusCode::OK, "{f}: {body}");
            let names: Vec<String> = body["Resources"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["userName"].as_str().unwrap().to_string())
                .collect();
            assert_eq!(body["totalResults"], names.len(), "{f}");
            names
        }
    };
    assert_eq!(
        count(r#"userName eq "ADA@acme.com""#).await,
        ["ada@acme.com"]
    );
    assert_eq!(count(r#"externalId eq "ext-bob""#).await, ["bob@acme.com"]);
    assert!(
        count(r#"externalId eq "EXT-BOB""#).await.is_empty(),
        "externalId is case-exact"
    );
    assert_eq!(
        count(&format!(r#"id eq "{}""#, ada["id"].as_str().unwrap())).await,
        ["ada@acme.com"]
    );
    assert_eq!(count(r#"active eq false"#).await, ["carol@acme.com"]);
    assert_eq!(
        count(r#"userName sw "b" or title pr"#).await,
        ["bob@acme.com", "carol@acme.com"]
    );
    assert_eq!(
        count(r#"emails[type eq "work" and value co "ADA"]"#).await,
        ["ada@acme.com"]
    );
    assert_eq!(
        count(r#"name.givenName eq "Given bob" and not (active eq false)"#).await,
        ["bob@acme.com"]
    );
    assert!(count(r#"userName eq "nobody@acme.com""#).await.is_empty());

    for bad in [
        "userName",
        r#"userName eq"#,
        r#"userName xx "a""#,
        r#"(userName eq "a""#,
        "\"",
        r#"emails[type eq "work""#,
    ] {
        let (status, err) = send(
            app.scim(&dir, Method::GET, "/Users")
                .query(&[("filter", bad)]),
        )
        .await;
        assert_scim_error(status, &err, 400, Some("invalidFilter"));
    }
}

async fn put_replaces_the_user(app: TestApp) {
    let dir = app.create_directory("acme", "crm").await;
    let created = app.create_user(&dir, "ada@acme.com").await;
    let id = created["id"].as_str().unwrap();
    let (status, put) = send(
        app.scim(&dir, Method::PUT, &format!("/Users/{id}"))
            .json(&json!({
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                "userName": "ada.lovelace@acme.com",
                "name": {"givenName": "Ada", "familyName": "Lovelace"},
                "active": "False",
                "password": "x"
            })),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{put}");
    assert_eq!(put["id"], id);
    assert_eq!(put["userName"], "ada.lovelace@acme.com");
    assert_eq!(put["active"], false, "Entra's string booleans are coerced");
    assert!(
        put.get("externalId").is_none(),
        "PUT replaces: attributes not sent are gone"
    );
    assert!(put.get("password").is_none());
    assert_eq!(put["meta"]["created"], created["meta"]["created"]);
    assert_ne!(put["meta"]["version"], created["meta"]["version"]);

    let (status, err) = send(
        app.scim(
            &dir,
            Method::PUT,
            "/Users/00000000-0000-0000-0000-000000000000",
        )
        .json(&user("x@acme.com")),
    )
    .await;
    assert_scim_error(status, &err, 404, None);
    let (status, err) = send(
        app.scim(&dir, Method::PUT, &format!("/Users/{id}"))
            .json(&json!({"name": {}})),
    )
    .await;
    assert_scim_error(status, &err, 400, Some("invalidValue"));
}

async fn patch_applies_operations(app: TestApp) {
    let dir = app.create_directory("acme", "crm").await;
    let created = app.create_user(&dir, "ada@acme.com").await;
    let path = format!("/Users/{}", created["id"].as_str().unwrap());
    let patch = |ops: Value| json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": ops});

    // Entra-style: capitalised ops, filtered paths, string booleans, extension URN paths.
    let (status, body) = send(app.scim(&dir, Method::PATCH, &path).json(&patch(json!([
        {"op": "Replace", "path": "emails[type eq \"work\"].value", "value": "ada.l@acme.com"},
        {"op": "Replace", "path": "name.familyName", "value": "Lovelace"},
        {"op": "Add", "path": "title", "value": "Countess"},
        {"op": "Replace", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department", "value": "Math"},
        {"op": "Replace", "path": "active", "value": "False"}
    ]))))
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["emails"][0]["value"], "ada.l@acme.com");
    assert_eq!(body["name"]["familyName"], "Lovelace");
    assert_eq!(body["name"]["givenName"], "Given ada");
    assert_eq!(body["title"], "Countess");
    assert_eq!(
        body["urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"]["department"],
        "Math"
    );
    assert!(body["schemas"].as_array().unwrap().contains(&json!(
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
    )));
    assert_eq!(body["active"], false);

    // Okta-style path-less replace, then remove.
    let (status, body) = send(app.scim(&dir, Method::PATCH, &path).json(&patch(json!([
        {"op": "replace", "value": {"id": body["id"], "active": true, "name.givenName": "Ada"}},
        {"op": "remove", "path": "title"}
    ]))))
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["active"], true);
    assert_eq!(body["name"]["givenName"], "Ada");
    assert!(body.get("title").is_none());

    // The admin API reads the new typed fields.
    let (_, admin) = send(app.admin(
        Method::GET,
        &format!(
            "/directory-sync/{}/users/{}",
            dir.id,
            body["id"].as_str().unwrap()
        ),
    ))
    .await;
    assert_eq!(admin["data"]["email"], "ada.l@acme.com");
    assert_eq!(admin["data"]["last_name"], "Lovelace");

    for (ops, code, scim_type) in [
        (
            json!([{"op": "replace", "path": "id", "value": "x"}]),
            400,
            "mutability",
        ),
        (
            json!([{"op": "replace", "path": "meta.created", "value": "x"}]),
            400,
            "mutability",
        ),
        (
            json!([{"op": "frobnicate", "path": "title", "value": "x"}]),
            400,
            "invalidSyntax",
        ),
        (json!([{"op": "remove"}]), 400, "noTarget"),
        (
            json!([{"op": "add", "path": "emails[type eq", "value": "x"}]),
            400,
            "invalidPath",
        ),
        (
            json!([{"op": "replace", "path": "userName", "value": 7}]),
            400,
            "invalidValue",
        ),
        (
            json!([{"op": "replace", "path": "active", "value": "perhaps"}]),
            400,
            "invalidValue",
        ),
        (json!("not a list"), 400, "invalidSyntax"),
    ] {
        let (status, err) = send(
            app.scim(&dir, Method::PATCH, &path)
                .json(&patch(ops.clone())),
        )
        .await;
        assert_scim_error(status, &err, code, Some(scim_type));
    }
    // A failing PATCH is atomic: the first (valid) op did not apply.
    let (status, _) = send(app.scim(&dir, Method::PATCH, &path).json(&patch(json!([
        {"op": "replace", "path": "title", "value": "Never"},
        {"op": "replace", "path": "id", "value": "x"}
    ]))))
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (_, now) = send(app.scim(&dir, Method::GET, &path)).await;
    assert!(now.get("title").is_none());
}

async fn delete_answers_204_then_404(app: TestApp) {
    let dir = app.create_directory("acme", "crm").await;
    let created = app.create_user(&dir, "ada@acme.com").await;
    let path = format!("/Users/{}", created["id"].as_str().unwrap());
    let resp = app.scim(&dir, Method::DELETE, &path).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    assert!(resp.text().await.unwrap().is_empty());
    let (status, err) = send(app.scim(&dir, Method::GET, &path)).await;
    assert_scim_error(status, &err, 404, None);
    let (status, err) = send(app.scim(&dir, Method::DELETE, &path)).await;
    assert_scim_error(status, &err, 404, None);
    // The userName is free again.
    app.create_user(&dir, "ada@acme.com").await;
}

async fn directories_are_isolated(app: TestApp) {
    // Same tenant and product: still separate.
    let a = app.create_directory("acme", "crm").await;
    let b = app.create_directory("acme", "crm").await;
    let ua = app.create_user(&a, "ada@acme.com").await;
    let ub = app.create_user(&b, "ada@acme.com").await;
    assert_ne!(ua["id"], ub["id"]);
    let path = format!("/Users/{}", ua["id"].as_str().unwrap());
    for m in [Method::GET, Method::DELETE] {
        let (status, err) = send(app.scim(&b, m, &path)).await;
        assert_scim_error(status, &err, 404, None);
    }
    let (status, _) = send(app.scim(&b, Method::PUT, &path).json(&user("x@acme.com"))).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = send(
        app.scim(&b, Method::PATCH, &path)
            .json(&json!({"Operations": [{"op": "replace", "path": "title", "value": "x"}]})),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, list) = send(app.scim(&b, Method::GET, "/Users").query(&[(
        "filter",
        format!(r#"id eq "{}""#, ua["id"].as_str().unwrap()),
    )]))
    .await;
    assert_eq!(list["totalResults"], 0);
    // One directory's token does not open another.
    let cross = crate::common::Dir {
        secret: a.secret.clone(),
        ..b.clone()
    };
    let (status, err) = send(app.scim(&cross, Method::GET, "/Users")).await;
    assert_scim_error(status, &err, 401, None);
}

async fn seats_are_enforced(app: TestApp) {
    let dir = app
        .create_directory_with(json!({"tenant": "acme", "product": "crm", "user_limit": 2}))
        .await;
    app.create_user(&dir, "a@acme.com").await;
    let b = app.create_user(&dir, "b@acme.com").await;
    let (status, err) = send(
        app.scim(&dir, Method::POST, "/Users")
            .json(&user("c@acme.com")),
    )
    .await;
    assert_scim_error(status, &err, 403, None);
    assert!(err["detail"].as_str().unwrap().contains("seat limit"));
    // An inactive user takes no seat; re-activating past the limit is refused.
    let mut inactive = user("d@acme.com");
    inactive["active"] = json!(false);
    let (status, d) = send(app.scim(&dir, Method::POST, "/Users").json(&inactive)).await;
    assert_eq!(status, StatusCode::CREATED);
    let patch = json!({"Operations": [{"op": "replace", "value": {"active": true}}]});
    let (status, _) = send(
        app.scim(
            &dir,
            Method::PATCH,
            &format!("/Users/{}", d["id"].as_str().unwrap()),
        )
        .json(&patch),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // Freeing a seat lets it in.
    send(app.scim(
        &dir,
        Method::DELETE,
        &format!("/Users/{}", b["id"].as_str().unwrap()),
    ))
    .await;
    let (status, _) = send(
        app.scim(
            &dir,
            Method::PATCH,
            &format!("/Users/{}", d["id"].as_str().unwrap()),
        )
        .json(&patch),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
}

async fn etags_and_preconditions(app: TestApp) {
    let dir = app.create_directory("acme", "crm").await;
    let created = app.create_user(&dir, "ada@acme.com").await;
    let path = format!("/Users/{}", created["id"].as_str().unwrap());
    let v1 = created["meta"]["version"].as_str().unwrap().to_string();

    // If-None-Match with the current version: 304, no body.
    let resp = app
        .scim(&dir, Method::GET, &path)
        .header("If-None-Match", &v1)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_MODIFIED);
    assert_eq!(resp.headers()["etag"], v1.as_str());
    let resp = app
        .scim(&dir, Method::GET, &path)
        .header("If-None-Match", "W/\"999\"")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);

    // If-Match with the current version succeeds and moves the version on.
    let patch = json!({"Operations": [{"op": "replace", "path": "title", "value": "Countess"}]});
    let resp = app
        .scim(&dir, Method::PATCH, &path)
        .header("If-Match", &v1)
        .json(&patch)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let v2 = resp.headers()["etag"].to_str().unwrap().to_string();
    assert_ne!(v1, v2);
    // A stale If-Match is refused with 412 and changes nothing.
    for (method, body) in [
        (Method::PATCH, Some(patch.clone())),
        (Method::PUT, Some(user("ada@acme.com"))),
        (Method::DELETE, None),
    ] {
        let mut req = app
            .scim(&dir, method.clone(), &path)
            .header("If-Match", &v1);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let (status, err) = send(req).await;
        assert_scim_error(status, &err, 412, None);
    }
    let (_, now) = send(app.scim(&dir, Method::GET, &path)).await;
    assert_eq!(now["meta"]["version"], v2.as_str());
    // `*` matches any existing version.
    let (status, _) = send(
        app.scim(&dir, Method::DELETE, &path)
            .header("If-Match", "*"),
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
}
