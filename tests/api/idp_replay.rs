//! Each identity provider's whole provisioning sequence, replayed against the real server.
//!
//! `fixtures/<idp>/NN-*.json` hold one request each, in the shapes of the IdP's public
//! documentation (`fixtures/README.md` lists the sources and the file format). `replay`
//! sends them in name order, checks every answer, and returns the ids the server assigned;
//! each IdP's test then checks the final state and the event stream.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::backend_tests;
use crate::common::{send, Dir, TestApp};

backend_tests!(okta, entra, jumpcloud, onelogin);

/// Placeholders a fixture may use for ids the server assigned earlier in the sequence.
const PLACEHOLDERS: [&str; 3] = ["{user_id}", "{user2_id}", "{group_id}"];

async fn okta(app: TestApp) {
    let run = replay(&app, "okta").await;

    // Okta never deletes users: the first one is still there, deactivated, with the PUT's name.
    let user = get(&app, &run.dir, &format!("/Users/{}", run.user_id)).await;
    assert_eq!(user["active"], false, "{user}");
    assert_eq!(user["name"]["middleName"], "Excited", "{user}");
    // userName lookups are case-insensitive.
    let found = find_users(&app, &run.dir, r#"userName eq "Test.User@OKTA.local""#).await;
    assert_eq!(found["totalResults"], 1, "{found}");
    let second = get(&app, &run.dir, &format!("/Users/{}", run.user2_id)).await;
    assert_eq!(second["active"], true, "{second}");

    assert_events_in_order(
        &app,
        &run.dir,
        &[
            "user.created",
            "user.created",
            "user.updated",     // PUT
            "user.updated",     // deactivated
            "group.created",    // pushed empty
            "group.user_added", // both users added
            "group.user_added",
            "group.user_removed", // second user removed
            "group.updated",      // renamed
            "group.user_removed", // remove + add in one PATCH
            "group.user_added",
            "group.user_added", // full replace brings the first user back
            "group.deleted",
        ],
    )
    .await;
}

async fn entra(app: TestApp) {
    let run = replay(&app, "entra").await;

    // The Jackson bug: Entra's userName is the UPN, not the email, and Entra finds users by it.
    let found = find_users(
        &app,
        &run.dir,
        r#"userName eq "ada@contoso.onmicrosoft.com""#,
    )
    .await;
    assert_eq!(found["totalResults"], 1, "{found}");
    assert_eq!(found["Resources"][0]["id"], run.user_id.as_str(), "{found}");
    assert_eq!(found["Resources"][0]["active"], false, "{found}");
    let by_email = find_users(&app, &run.dir, r#"userName eq "ada.lovelace@contoso.com""#).await;
    assert_eq!(
        by_email["totalResults"], 0,
        "the email is not the userName: {by_email}"
    );
    let by_external_id = find_users(&app, &run.dir, r#"externalId eq "ada""#).await;
    assert_eq!(by_external_id["totalResults"], 1, "{by_external_id}");
    assert_gone(&app, &run.dir, &format!("/Users/{}", run.user2_id)).await;

    assert_events_in_order(
        &app,
        &run.dir,
        &[
            "user.created",
            "user.created",
            "user.updated", // Replace ops
            "user.updated", // path-less replace
            "user.updated", // disabled with "False"
            "group.created",
            "group.user_added",
            "group.user_added",
            "group.user_removed",
            "group.updated", // renamed
            "group.deleted",
            "user.deleted", // the second user, hard-deleted
        ],
    )
    .await;
}

async fn jumpcloud(app: TestApp) {
    let run = replay(&app, "jumpcloud").await;

    // JumpCloud's userName is its username; the email and the Employee ID find the user too.
    let user = get(&app, &run.dir, &format!("/Users/{}", run.user_id)).await;
    assert_eq!(user["userName"], "ghopper", "{user}");
    assert_eq!(user["active"], false, "{user}");
    let by_email = find_users(
        &app,
        &run.dir,
        r#"emails.value eq "grace.hopper@example.com""#,
    )
    .await;
    assert_eq!(by_email["totalResults"], 1, "{by_email}");
    let by_employee_id = find_users(&app, &run.dir, r#"externalId eq "E-1906""#).await;
    assert_eq!(by_employee_id["totalResults"], 1, "{by_employee_id}");
    assert_gone(&app, &run.dir, &format!("/Users/{}", run.user2_id)).await;
    assert_gone(&app, &run.dir, &format!("/Groups/{}", run.group_id)).await;

    assert_events_in_order(
        &app,
        &run.dir,
        &[
            "user.created",
            "user.created",
            "user.updated", // attributes
            "user.updated", // deactivated
            "group.created",
            "group.user_added", // created with its first member
            "group.user_added",
            "group.user_removed",
            "group.updated", // renamed
            "group.deleted",
            "user.deleted",
        ],
    )
    .await;
}

async fn onelogin(app: TestApp) {
    let run = replay(&app, "onelogin").await;

    // OneLogin never deletes groups: the group keeps the first user, who is suspended.
    let user = get(&app, &run.dir, &format!("/Users/{}", run.user_id)).await;
    assert_eq!(user["active"], false, "{user}");
    assert_eq!(user["title"], "Aerospace Technologist", "{user}");
    let group = get(&app, &run.dir, &format!("/Groups/{}", run.group_id)).await;
    let members: Vec<&str> = group["members"]
        .as_array()
        .map(|m| m.iter().filter_map(|m| m["value"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(members, [run.user_id.as_str()], "{group}");
    assert_gone(&app, &run.dir, &format!("/Users/{}", run.user2_id)).await;

    assert_events_in_order(
        &app,
        &run.dir,
        &[
            "user.created",
            "user.created",
            "user.updated", // PUT
            "user.updated", // suspended by PUT
            "group.created",
            "group.user_added",
            "group.user_added",
            "group.user_removed",
            "user.deleted",
        ],
    )
    .await;
}

/// What a replay leaves behind: the directory and the ids the server assigned.
struct Replayed {
    dir: Dir,
    user_id: String,
    user2_id: String,
    group_id: String,
}

/// Sends every fixture of `fixtures/<idp>`, in name order, to a new directory of that IdP's
/// type, checking each answer against the fixture's `expect_status` and `expect`.
async fn replay(app: &TestApp, idp: &str) -> Replayed {
    let dir = app.create_directory_with(directory_for(idp)).await;
    // Filled in by the first and second `POST /Users` and the first `POST /Groups`.
    let mut user_id: Option<String> = None;
    let mut user2_id: Option<String> = None;
    let mut group_id: Option<String> = None;

    for (file, mut text) in fixture_files(idp) {
        for (placeholder, id) in PLACEHOLDERS.iter().zip([&user_id, &user2_id, &group_id]) {
            if let Some(id) = id {
                text = text.replace(placeholder, id);
            }
            assert!(
                !text.contains(placeholder),
                "{idp}/{file} uses {placeholder} before a step created it"
            );
        }
        let step = Step::parse(&format!("{idp}/{file}"), &text);

        let mut request = app.scim(&dir, step.method.clone(), &step.path);
        if !step.query.is_empty() {
            request = request.query(&step.query);
        }
        if let Some(body) = &step.body {
            request = request.json(body);
        }
        let (status, response) = send(request).await;

        let context = format!(
            "{}: {}\n{} {} answered {status}: {response}",
            step.name, step.description, step.method, step.path
        );
        assert_eq!(status, step.expect_status, "{context}");
        if let Value::Object(fields) = &step.expect {
            for (key, wanted) in fields {
                let got = response.get(key).unwrap_or(&Value::Null);
                assert!(
                    has_fields(got, wanted),
                    "expected {key} = {wanted}, got {got}\n{context}"
                );
            }
        }
        assert!(
            !response.to_string().contains("\"password\""),
            "a password was echoed\n{context}"
        );

        if step.method == Method::POST && status == StatusCode::CREATED {
            let id = response["id"]
                .as_str()
                .expect("a created resource has an id");
            let slot = match step.path.as_str() {
                "/Users" if user_id.is_none() => &mut user_id,
                "/Users" if user2_id.is_none() => &mut user2_id,
                "/Groups" if group_id.is_none() => &mut group_id,
                _ => continue,
            };
            *slot = Some(id.to_string());
        }
    }

    Replayed {
        dir,
        user_id: user_id.unwrap_or_else(|| panic!("fixtures/{idp} never created a user")),
        user2_id: user2_id.unwrap_or_else(|| panic!("fixtures/{idp} never created a second user")),
        group_id: group_id.unwrap_or_else(|| panic!("fixtures/{idp} never created a group")),
    }
}

/// The admin API body creating a directory of the IdP's provider type.
fn directory_for(idp: &str) -> Value {
    let (name, provider_type) = match idp {
        "okta" => ("Acme (Okta)", "okta-scim-v2"),
        "entra" => ("Contoso (Entra ID)", "azure-scim-v2"),
        "jumpcloud" => ("Acme (JumpCloud)", "jumpcloud-scim-v2"),
        "onelogin" => ("Acme (OneLogin)", "onelogin-scim-v2"),
        other => panic!("no provider type for {other}"),
    };
    json!({"tenant": idp, "product": "crm", "name": name, "type": provider_type})
}

/// `(file name, text)` of every `.json` file in `fixtures/<idp>`, sorted by name.
fn fixture_files(idp: &str) -> Vec<(String, String)> {
    let folder = format!("{}/fixtures/{idp}", env!("CARGO_MANIFEST_DIR"));
    let mut names: Vec<String> = std::fs::read_dir(&folder)
        .unwrap_or_else(|e| panic!("{folder}: {e}"))
        .map(|entry| {
            entry
                .expect("directory entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .filter(|name| name.ends_with(".json"))
        .collect();
    names.sort();
    assert!(!names.is_empty(), "no fixtures in {folder}");
    names
        .into_iter()
        .map(|name| {
            let text = std::fs::read_to_string(format!("{folder}/{name}"))
                .unwrap_or_else(|e| panic!("{folder}/{name}: {e}"));
            (name, text)
        })
        .collect()
}

/// One request of a sequence, read from its fixture (placeholders already replaced).
struct Step {
    name: String,
    description: String,
    method: Method,
    path: String,
    query: Vec<(String, String)>,
    body: Option<Value>,
    expect_status: StatusCode,
    expect: Value,
}

impl Step {
    fn parse(name: &str, text: &str) -> Step {
        let fixture: Value =
            serde_json::from_str(text).unwrap_or_else(|e| panic!("{name} is not JSON: {e}"));
        let string = |field: &str| -> String {
            fixture[field]
                .as_str()
                .unwrap_or_else(|| panic!("{name} needs a string {field:?}"))
                .to_string()
        };
        let method = string("method");
        let status = fixture["expect_status"]
            .as_u64()
            .unwrap_or_else(|| panic!("{name} needs a number \"expect_status\""));
        let query: Vec<(String, String)> = fixture["query"]
            .as_object()
            .map(|pairs| {
                pairs
                    .iter()
                    .map(|(k, v)| {
                        (
                            k.clone(),
                            v.as_str().map_or_else(|| v.to_string(), str::to_string),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        Step {
            name: name.to_string(),
            description: string("description"),
            method: Method::from_bytes(method.as_bytes())
                .unwrap_or_else(|_| panic!("{name}: bad method {method:?}")),
            path: string("path"),
            query,
            body: fixture.get("body").cloned(),
            expect_status: u16::try_from(status)
                .ok()
                .and_then(|s| StatusCode::from_u16(s).ok())
                .unwrap_or_else(|| panic!("{name}: bad expect_status {status}")),
            expect: fixture.get("expect").cloned().unwrap_or(Value::Null),
        }
    }
}

/// Whether `actual` has what `expected` describes: objects field by field (recursively, extra
/// fields allowed), anything else by equality. A missing field counts as `null`, so an
/// expected `null` means "absent".
fn has_fields(actual: &Value, expected: &Value) -> bool {
    match expected {
        Value::Object(fields) => fields
            .iter()
            .all(|(key, wanted)| has_fields(actual.get(key).unwrap_or(&Value::Null), wanted)),
        other => actual == other,
    }
}

/// `GET path`, which must answer 200; returns the body.
async fn get(app: &TestApp, dir: &Dir, path: &str) -> Value {
    let (status, body) = send(app.scim(dir, Method::GET, path)).await;
    assert_eq!(status, StatusCode::OK, "GET {path}: {body}");
    body
}

/// `GET path` answers 404: the resource was deleted.
async fn assert_gone(app: &TestApp, dir: &Dir, path: &str) {
    let (status, body) = send(app.scim(dir, Method::GET, path)).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "GET {path}: {body}");
}

/// `GET /Users?filter=…`: the ListResponse.
async fn find_users(app: &TestApp, dir: &Dir, filter: &str) -> Value {
    let (status, body) = send(
        app.scim(dir, Method::GET, "/Users")
            .query(&[("filter", filter)]),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "filter {filter}: {body}");
    body
}

/// Asserts that the directory's events include `expected` kinds in this order (other events,
/// such as `dsync.created`, may come before, between and after them).
async fn assert_events_in_order(app: &TestApp, dir: &Dir, expected: &[&str]) {
    let kinds: Vec<String> = app
        .events(dir)
        .await
        .iter()
        .map(|e| e["event"].as_str().unwrap_or("?").to_string())
        .collect();
    let mut remaining = kinds.iter();
    for kind in expected {
        assert!(
            remaining.any(|k| k.as_str() == *kind),
            "{kind} missing or out of order; expected {expected:?} in this order within {kinds:?}"
        );
    }
}
