//! SCIM Groups and memberships.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::backend_tests;
use crate::common::{assert_scim_error, send, Dir, TestApp};

backend_tests!(
    create_group_with_members,
    patch_membership_in_every_idp_shape,
    put_replaces_membership_when_members_are_sent,
    group_names_are_unique,
    deleting_a_user_removes_its_memberships,
    excluded_members_are_not_returned,
    filter_groups_by_display_name,
    large_membership_changes_are_set_based,
);

async fn users(app: &TestApp, dir: &Dir, n: usize) -> Vec<String> {
    let mut ids = Vec::new();
    for i in 0..n {
        ids.push(
            app.create_user(dir, &format!("member{i}@acme.com")).await["id"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    ids
}

/// A group's member ids, sorted.
pub(crate) fn member_ids(group: &Value) -> Vec<String> {
    let mut ids: Vec<String> = group["members"]
        .as_array()
        .map(|m| {
            m.iter()
                .map(|m| m["value"].as_str().unwrap().to_string())
                .collect()
        })
        .unwrap_or_default();
    ids.sort();
    ids
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

fn patch(ops: Value) -> Value {
    json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": ops})
}

async fn create_group_with_members(app: TestApp) {
    let dir = app.create_directory("acme", "crm").await;
    let ids = users(&app, &dir, 2).await;
    let (status, g) = send(app.scim(&dir, Method::POST, "/Groups").json(&json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
        "displayName": "Engineering",
        "externalId": "okta-grp-1",
        "members": [{"value": ids[0], "display": "whatever"}, {"value": ids[1]}]
    })))
    .await;
    assert_eq!(status, StatusCode::CREATED, "{g}");
    assert_eq!(g["displayName"], "Engineering");
    assert_eq!(g["meta"]["resourceType"], "Group");
    assert_eq!(member_ids(&g), sorted(ids.clone()));
    let first = g["members"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["value"] == ids[0].as_str())
        .unwrap();
    assert_eq!(first["type"], "User");
    assert_eq!(first["$ref"], format!("{}/Users/{}", dir.endpoint, ids[0]));
    assert!(
        first.get("display").is_none(),
        "members carry value, $ref and type (RFC 7643 §8.7.1)"
    );

    let (_, got) = send(app.scim(
        &dir,
        Method::GET,
        &format!("/Groups/{}", g["id"].as_str().unwrap()),
    ))
    .await;
    assert_eq!(member_ids(&got), sorted(ids.clone()));
    // Users show their groups, read-only.
    let (_, u) = send(app.scim(&dir, Method::GET, &format!("/Users/{}", ids[0]))).await;
    assert_eq!(u["groups"][0]["value"], g["id"]);
    assert_eq!(u["groups"][0]["display"], "Engineering");

    let kinds: Vec<Value> = app
        .events(&dir)
        .await
        .iter()
        .map(|e| e["event"].clone())
        .collect();
    assert_eq!(
        kinds[kinds.len() - 3..],
        [
            json!("group.created"),
            json!("group.user_added"),
            json!("group.user_added")
        ]
    );

    // Unknown member ids are skipped (see hostile.rs): the group is created without them.
    let (status, ghosts) = send(
        app.scim(&dir, Method::POST, "/Groups")
            .json(&json!({"displayName": "Ghosts", "members": [{"value": "nope"}]})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{ghosts}");
    assert!(
        ghosts["members"].as_array().is_none_or(Vec::is_empty),
        "{ghosts}"
    );
    let (_, list) = send(app.scim(&dir, Method::GET, "/Groups")).await;
    assert_eq!(list["totalResults"], 2);
}

async fn patch_membership_in_every_idp_shape(app: TestApp) {
    let dir = app.create_directory("acme", "crm").await;
    let ids = users(&app, &dir, 4).await;
    let (_, g) = send(
        app.scim(&dir, Method::POST, "/Groups")
            .json(&json!({"displayName": "Eng"})),
    )
    .await;
    let path = format!("/Groups/{}", g["id"].as_str().unwrap());

    // Okta: add with path members.
    let (status, body) = send(app.scim(&dir, Method::PATCH, &path).json(&patch(json!([
        {"op": "add", "path": "members", "value": [{"value": ids[0]}, {"value": ids[1]}, {"value": ids[2]}]}
    ]))))
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(member_ids(&body), sorted(ids[..3].to_vec()));
    // Okta: remove by filter.
    let (_, body) = send(app.scim(&dir, Method::PATCH, &path).json(&patch(json!([
        {"op": "remove", "path": format!("members[value eq \"{}\"]", ids[0])}
    ]))))
    .await;
    assert_eq!(member_ids(&body), sorted(ids[1..3].to_vec()));
    // Entra: capitalised Remove with the members as value, Add without path, rename.
    let (status, body) = send(app.scim(&dir, Method::PATCH, &path).json(&patch(json!([
        {"op": "Remove", "path": "members", "value": [{"value": ids[1]}]},
        {"op": "Add", "value": {"members": [{"value": ids[3]}]}},
        {"op": "Replace", "path": "displayName", "value": "Engineering"}
    ]))))
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        member_ids(&body),
        sorted(vec![ids[2].clone(), ids[3].clone()])
    );
    assert_eq!(body["displayName"], "Engineering");
    // Replace the whole membership, then remove all.
    let (_, body) = send(app.scim(&dir, Method::PATCH, &path).json(&patch(json!([
        {"op": "replace", "path": "members", "value": [{"value": ids[0]}]}
    ]))))
    .await;
    assert_eq!(member_ids(&body), vec![ids[0].clone()]);
    let (_, body) = send(
        app.scim(&dir, Method::PATCH, &path)
            .json(&patch(json!([{"op": "remove", "path": "members"}]))),
    )
    .await;
    assert!(member_ids(&body).is_empty());
    // Adding twice is idempotent; removing a non-member is a no-op.
    for _ in 0..2 {
        let (status, _) = send(app.scim(&dir, Method::PATCH, &path).json(&patch(
            json!([{"op": "add", "path": "members", "value": [{"value": ids[1]}]}]),
        )))
        .await;
        assert_eq!(status, StatusCode::OK);
    }
    let (status, body) = send(app.scim(&dir, Method::PATCH, &path).json(&patch(
        json!([{"op": "remove", "path": "members[value eq \"nobody\"]"}]),
    )))
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(member_ids(&body), vec![ids[1].clone()]);

    // One event per member change, in order.
    let changes: Vec<(String, String)> = app
        .events(&dir)
        .await
        .iter()
        .filter(|e| e["event"].as_str().unwrap().starts_with("group.user_"))
        .map(|e| {
            (
                e["event"].as_str().unwrap().to_string(),
                e["data"]["id"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let added = |i: usize| ("group.user_added".to_string(), ids[i].clone());
    let removed = |i: usize| ("group.user_removed".to_string(), ids[i].clone());
    assert_eq!(changes.len(), 3 + 1 + 2 + 1 + 2 + 1 + 1, "{changes:?}");
    assert_eq!(changes[3], removed(0));
    assert_eq!(changes[4], removed(1));
    assert_eq!(changes[5], added(3));
    assert_eq!(*changes.last().unwrap(), added(1));
    // A membership event carries the user and the group.
    let e = app
        .events(&dir)
        .await
        .into_iter()
        .find(|e| e["event"] == "group.user_added")
        .unwrap();
    assert_eq!(e["data"]["group"]["id"], g["id"]);
    assert_eq!(e["data"]["email"], "member0@acme.com");
}

async fn put_replaces_membership_when_members_are_sent(app: TestApp) {
    let dir = app.create_directory("acme", "crm").await;
    let ids = users(&app, &dir, 3).await;
    let (_, g) =
        send(app.scim(&dir, Method::POST, "/Groups").json(
            &json!({"displayName": "Eng", "members": [{"value": ids[0]}, {"value": ids[1]}]}),
        ))
        .await;
    let path = format!("/Groups/{}", g["id"].as_str().unwrap());
    let (status, body) =
        send(app.scim(&dir, Method::PUT, &path).json(
            &json!({"displayName": "Eng2", "members": [{"value": ids[1]}, {"value": ids[2]}]}),
        ))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["displayName"], "Eng2");
    assert_eq!(member_ids(&body), sorted(ids[1..].to_vec()));
    // A PUT without members renames and keeps the membership.
    let (_, body) = send(
        app.scim(&dir, Method::PUT, &path)
            .json(&json!({"displayName": "Eng3"})),
    )
    .await;
    assert_eq!(member_ids(&body), sorted(ids[1..].to_vec()));
}

async fn group_names_are_unique(app: TestApp) {
    let dir = app.create_directory("acme", "crm").await;
    let (status, _) = send(
        app.scim(&dir, Method::POST, "/Groups")
            .json(&json!({"displayName": "Eng"})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, err) = send(
        app.scim(&dir, Method::POST, "/Groups")
            .json(&json!({"displayName": "ENG"})),
    )
    .await;
    assert_scim_error(status, &err, 409, Some("uniqueness"));
    let (status, err) = send(
        app.scim(&dir, Method::POST, "/Groups")
            .json(&json!({"members": []})),
    )
    .await;
    assert_scim_error(status, &err, 400, Some("invalidValue"));
    // Another directory may use the name.
    let other = app.create_directory("acme", "crm").await;
    let (status, _) = send(
        app.scim(&other, Method::POST, "/Groups")
            .json(&json!({"displayName": "Eng"})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
}

async fn deleting_a_user_removes_its_memberships(app: TestApp) {
    let dir = app.create_directory("acme", "crm").await;
    let ids = users(&app, &dir, 2).await;
    let mut groups = Vec::new();
    for name in ["A", "B"] {
        let (_, g) = send(app.scim(&dir, Method::POST, "/Groups").json(
            &json!({"displayName": name, "members": [{"value": ids[0]}, {"value": ids[1]}]}),
        ))
        .await;
        groups.push(g["id"].as_str().unwrap().to_string());
    }
    let (status, _) = send(app.scim(&dir, Method::DELETE, &format!("/Users/{}", ids[0]))).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    for gid in &groups {
        let (_, g) = send(app.scim(&dir, Method::GET, &format!("/Groups/{gid}"))).await;
        assert_eq!(member_ids(&g), vec![ids[1].clone()]);
    }
    let events = app.events(&dir).await;
    let tail: Vec<&str> = events[events.len() - 3..]
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert_eq!(
        tail,
        ["group.user_removed", "group.user_removed", "user.deleted"]
    );
    // Deleting a group removes its memberships and announces each.
    let (status, _) = send(app.scim(&dir, Method::DELETE, &format!("/Groups/{}", groups[0]))).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (_, u) = send(app.scim(&dir, Method::GET, &format!("/Users/{}", ids[1]))).await;
    assert_eq!(u["groups"].as_array().unwrap().len(), 1);
    let events = app.events(&dir).await;
    let tail: Vec<&str> = events[events.len() - 2..]
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert_eq!(tail, ["group.user_removed", "group.deleted"]);
}

async fn excluded_members_are_not_returned(app: TestApp) {
    let dir = app.create_directory("acme", "crm").await;
    let ids = users(&app, &dir, 1).await;
    let (_, g) = send(
        app.scim(&dir, Method::POST, "/Groups")
            .json(&json!({"displayName": "Eng", "members": [{"value": ids[0]}]})),
    )
    .await;
    let (_, list) = send(app.scim(&dir, Method::GET, "/Groups?excludedAttributes=members")).await;
    assert!(list["Resources"][0].get("members").is_none());
    assert_eq!(list["Resources"][0]["displayName"], "Eng");
    let (_, one) = send(app.scim(
        &dir,
        Method::GET,
        &format!(
            "/Groups/{}?attributes=displayName",
            g["id"].as_str().unwrap()
        ),
    ))
    .await;
    assert_eq!(one["displayName"], "Eng");
    assert!(one.get("members").is_none() && one.get("meta").is_none());
    assert_eq!(one["id"], g["id"]);
}

async fn filter_groups_by_display_name(app: TestApp) {
    let dir = app.create_directory("acme", "crm").await;
    for name in ["Eng", "Sales", "Engineering Managers"] {
        send(
            app.scim(&dir, Method::POST, "/Groups")
                .json(&json!({"displayName": name})),
        )
        .await;
    }
    let (_, r) = send(
        app.scim(&dir, Method::GET, "/Groups")
            .query(&[("filter", r#"displayName eq "eng""#)]),
    )
    .await;
    assert_eq!(r["totalResults"], 1);
    assert_eq!(r["Resources"][0]["displayName"], "Eng");
    let (_, r) = send(
        app.scim(&dir, Method::GET, "/Groups")
            .query(&[("filter", r#"displayName sw "Eng""#)]),
    )
    .await;
    assert_eq!(r["totalResults"], 2);
}

/// Thousands of members in one PATCH: applied in a few statements, one event each.
async fn large_membership_changes_are_set_based(app: TestApp) {
    let dir = app.create_directory("acme", "crm").await;
    const N: usize = 2500;
    // Users arrive through Bulk, 1000 at a time.
    let mut ids = Vec::new();
    for chunk in 0..N.div_ceil(1000) {
        let ops: Vec<Value> = (chunk * 1000..((chunk + 1) * 1000).min(N))
            .map(|i| json!({"method": "POST", "path": "/Users", "bulkId": format!("u{i}"), "data": {"userName": format!("user{i}@acme.com")}}))
            .collect();
        let (status, body) = send(
            app.scim(&dir, Method::POST, "/Bulk")
                .json(&json!({"Operations": ops})),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        for op in body["Operations"].as_array().unwrap() {
            assert_eq!(op["status"], "201", "{op}");
            ids.push(
                op["location"]
                    .as_str()
                    .unwrap()
                    .rsplit('/')
                    .next()
                    .unwrap()
                    .to_string(),
            );
        }
    }
    let (_, g) = send(
        app.scim(&dir, Method::POST, "/Groups")
            .json(&json!({"displayName": "Everyone"})),
    )
    .await;
    let path = format!("/Groups/{}", g["id"].as_str().unwrap());
    let members: Vec<Value> = ids.iter().map(|id| json!({"value": id})).collect();
    let before = app.events(&dir).await.len();
    let (status, body) = send(
        app.scim(
            &dir,
            Method::PATCH,
            &format!("{path}?excludedAttributes=members"),
        )
        .json(&patch(
            json!([{"op": "add", "path": "members", "value": members}]),
        )),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.get("members").is_none());
    let (_, full) = send(app.scim(&dir, Method::GET, &path)).await;
    assert_eq!(full["members"].as_array().unwrap().len(), N);
    let (status, events) = send(app.admin(
        Method::GET,
        &format!(
            "/directory-sync/{}/events?after={}&limit=1000",
            dir.id, before
        ),
    ))
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(events["data"]
        .as_array()
        .unwrap()
        .iter()
        .all(|e| e["event"] == "group.user_added"));
    // Sequences stay gapless across the multi-row insert.
    let last: i64 = events["data"].as_array().unwrap().last().unwrap()["sequence"]
        .as_i64()
        .unwrap();
    assert_eq!(last, before as i64 + 1000);
    // Replace with half: half removed in one go.
    let half: Vec<Value> = ids[..N / 2].iter().map(|id| json!({"value": id})).collect();
    let (status, _) = send(app.scim(&dir, Method::PATCH, &path).json(&patch(
        json!([{"op": "replace", "path": "members", "value": half}]),
    )))
    .await;
    assert_eq!(status, StatusCode::OK);
    let (_, full) = send(app.scim(&dir, Method::GET, &path)).await;
    assert_eq!(full["members"].as_array().unwrap().len(), N / 2);
}
