//! Filters give the same answer in SQL as in memory, on both backends: a battery of
//! filters runs through the server and is compared with `scim::filter::matches` over
//! every resource.

use std::collections::BTreeSet;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::backend_tests;
use crate::common::{send, Dir, TestApp};
use scimgate::scim::filter;

backend_tests!(
    user_filters_agree_with_the_evaluator,
    group_filters_agree_with_the_evaluator,
    sorting
);

const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";

async fn seed_users(app: &TestApp, dir: &Dir) -> Vec<Value> {
    let people: Vec<Value> = vec![
        json!({"userName": "Ada@Acme.com", "externalId": "EXT-1", "active": true, "title": "Countess",
               "name": {"givenName": "Ada", "familyName": "Lovelace"},
               "emails": [{"value": "Ada@Acme.com", "type": "work", "primary": true}, {"value": "ada@home.org", "type": "home"}],
               ENTERPRISE: {"department": "R&D"}}),
        json!({"userName": "bob@acme.com", "externalId": "ext-1", "active": false,
               "emails": [{"value": "BOB@acme.com", "type": "Work"}]}),
        json!({"userName": "carol_100%@acme.com", "active": "True", "displayName": "Carol",
               "emails": [{"value": "carol_100%@acme.com", "primary": false}]}),
        json!({"userName": "dave@globex.com", "externalId": "", "title": "Engineer",
               "emails": [{"value": "dave@globex.com", "type": "work", "primary": "False"}],
               ENTERPRISE: {"department": "Sales"}}),
        json!({"userName": "eve", "externalId": "EXT-5", "name": {"givenName": "Eve"}}),
        json!({"userName": "Zoë@acme.com", "emails": ["zoe@acme.com"], "active": true}),
        json!({"userName": "2011-05-13T04:42:34Z", "externalId": "when"}),
        json!({"userName": "mallory@acme.com", "emails": [{"type": "work"}], "active": false, "title": "CTO"}),
    ];
    let mut created = Vec::new();
    for p in people {
        let (status, body) = send(app.scim(dir, Method::POST, "/Users").json(&p)).await;
        assert_eq!(status, StatusCode::CREATED, "{p} -> {body}");
        created.push(body);
    }
    created
}

/// The ids the server returns for `filter` (and checks totalResults).
async fn served(app: &TestApp, dir: &Dir, path: &str, f: &str) -> BTreeSet<String> {
    let (status, body) = send(
        app.scim(dir, Method::GET, path)
            .query(&[("filter", f), ("count", "1000")]),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{f}: {body}");
    let ids: BTreeSet<String> = body["Resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(body["totalResults"], ids.len(), "{f}");
    ids
}

async fn all(app: &TestApp, dir: &Dir, path: &str) -> Vec<Value> {
    let (_, body) = send(app.scim(dir, Method::GET, path).query(&[("count", "1000")])).await;
    body["Resources"].as_array().unwrap().clone()
}

fn expected(resources: &[Value], f: &str) -> BTreeSet<String> {
    let parsed = filter::parse(f).unwrap_or_else(|e| panic!("{f}: {e}"));
    resources
        .iter()
        .filter(|r| filter::matches(&parsed, r))
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect()
}

async fn user_filters_agree_with_the_evaluator(app: TestApp) {
    let dir = app.create_directory("acme", "crm").await;
    let users = seed_users(&app, &dir).await;
    let (_, g) = send(app.scim(&dir, Method::POST, "/Groups").json(&json!({"displayName": "Eng", "members": [{"value": users[0]["id"]}, {"value": users[3]["id"]}]}))).await;
    let gid = g["id"].as_str().unwrap();
    let ada_id = users[0]["id"].as_str().unwrap();
    let created = users[3]["meta"]["created"].as_str().unwrap();
    let resources = all(&app, &dir, "/Users").await;
    assert_eq!(resources.len(), users.len());

    let battery = vec![
        r#"userName eq "ada@acme.com""#.to_string(),
        r#"userName ne "ADA@ACME.COM""#.into(),
        r#"userName co "ACME""#.into(),
        r#"userName sw "b""#.into(),
        r#"userName ew ".COM""#.into(),
        r#"userName co "_100%""#.into(),
        r#"userName co "%""#.into(),
        r#"userName eq "zoë@acme.com""#.into(),
        r#"userName eq "2011-05-13T04:42:34Z""#.into(),
        r#"userName gt "m""#.into(),
        r#"USERNAME Eq "eve""#.into(),
        r#"urn:ietf:params:scim:schemas:core:2.0:User:userName sw "a""#.into(),
        r#"externalId eq "EXT-1""#.into(),
        r#"externalId eq "ext-1""#.into(),
        r#"externalId co "xt""#.into(),
        r#"externalId sw "EXT""#.into(),
        r#"externalId pr"#.into(),
        r#"not (externalId pr)"#.into(),
        r#"not (externalId eq "EXT-1")"#.into(),
        r#"externalId ne "EXT-1""#.into(),
        format!(r#"id eq "{ada_id}""#),
        format!(r#"id eq "{}""#, ada_id.to_uppercase()),
        r#"active eq true"#.into(),
        r#"active eq false"#.into(),
        r#"active ne true"#.into(),
        r#"active pr"#.into(),
        r#"emails.value eq "bob@ACME.com""#.into(),
        r#"emails co "home""#.into(),
        r#"emails sw "zoe""#.into(),
        r#"emails[type eq "work"]"#.into(),
        r#"emails[type eq "WORK" and value co "acme"]"#.into(),
        r#"emails[primary eq true]"#.into(),
        r#"emails[primary eq false]"#.into(),
        r#"emails[not (type eq "work")]"#.into(),
        r#"emails[type pr]"#.into(),
        r#"emails pr"#.into(),
        r#"emails.value pr"#.into(),
        format!(r#"meta.created ge "{created}""#),
        format!(r#"meta.created eq "{created}""#),
        format!(r#"meta.lastModified lt "{created}""#),
        r#"meta.created gt "2000-01-01T00:00:00+02:00""#.into(),
        r#"title pr"#.into(),
        r#"title eq "cto" or userName eq "eve""#.into(),
        r#"userName sw "a" and title pr"#.into(),
        r#"not (userName sw "a") and not (title pr)"#.into(),
        r#"(active eq false or externalId eq "EXT-5") and emails pr"#.into(),
        r#"name.givenName eq "ada" or displayName co "car""#.into(),
        format!(r#"{ENTERPRISE}:department eq "r&d""#),
        format!(r#"groups.value eq "{gid}""#),
        format!(r#"groups[value eq "{gid}"] and active eq true"#),
        r#"userName eq 5"#.into(),
        r#"userName ne 5"#.into(),
        r#"externalId eq null"#.into(),
    ];
    for f in battery {
        assert_eq!(
            served(&app, &dir, "/Users", &f).await,
            expected(&resources, &f),
            "filter {f}"
        );
    }
}

async fn group_filters_agree_with_the_evaluator(app: TestApp) {
    let dir = app.create_directory("acme", "crm").await;
    let users = seed_users(&app, &dir).await;
    let uid = |i: usize| users[i]["id"].as_str().unwrap().to_string();
    for (name, ext, members) in [
        ("Engineering", Some("G-1"), vec![0, 1]),
        ("Eng Managers", None, vec![0]),
        ("sales", Some("g-1"), vec![]),
        ("100%_Club", None, vec![2, 3]),
    ] {
        let mut body = json!({"displayName": name, "members": members.iter().map(|i| json!({"value": uid(*i)})).collect::<Vec<_>>()});
        if let Some(e) = ext {
            body["externalId"] = json!(e);
        }
        let (status, _) = send(app.scim(&dir, Method::POST, "/Groups").json(&body)).await;
        assert_eq!(status, StatusCode::CREATED);
    }
    let groups = all(&app, &dir, "/Groups").await;
    let battery = vec![
        r#"displayName eq "ENGINEERING""#.to_string(),
        r#"displayName sw "eng""#.into(),
        r#"displayName co "%_""#.into(),
        r#"displayName ne "sales""#.into(),
        r#"externalId eq "G-1""#.into(),
        r#"externalId pr"#.into(),
        r#"not (externalId pr)"#.into(),
        format!(r#"members.value eq "{}""#, uid(0)),
        format!(r#"members eq "{}""#, uid(3)),
        format!(r#"members[value eq "{}"]"#, uid(1)),
        format!(r#"members.value eq "{}""#, uid(0).to_uppercase()),
        r#"members pr"#.into(),
        r#"not (members pr)"#.into(),
        r#"meta.created gt "2000-01-01T00:00:00Z" and displayName ew "s""#.into(),
        format!(
            r#"displayName sw "eng" and not (members.value eq "{}")"#,
            uid(1)
        ),
    ];
    for f in battery {
        assert_eq!(
            served(&app, &dir, "/Groups", &f).await,
            expected(&groups, &f),
            "filter {f}"
        );
    }
}

async fn sorting(app: TestApp) {
    let dir = app.create_directory("acme", "crm").await;
    seed_users(&app, &dir).await;
    let names = |body: &Value| -> Vec<String> {
        body["Resources"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["userName"].as_str().unwrap().to_string())
            .collect()
    };
    let (_, asc) = send(app.scim(&dir, Method::GET, "/Users?sortBy=userName&count=100")).await;
    let mut want = names(&asc);
    want.sort_by_key(|n| n.to_lowercase());
    assert_eq!(names(&asc), want);
    let (_, desc) = send(app.scim(
        &dir,
        Method::GET,
        "/Users?sortBy=userName&sortOrder=descending&startIndex=2&count=3",
    ))
    .await;
    let mut rev = want.clone();
    rev.reverse();
    assert_eq!(names(&desc), rev[1..4].to_vec());
    // A sortBy no column holds is sorted in memory; users without a value come last.
    let (_, by_title) = send(app.scim(&dir, Method::GET, "/Users?sortBy=title")).await;
    let titles: Vec<Option<String>> = by_title["Resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["title"].as_str().map(str::to_string))
        .collect();
    assert_eq!(
        titles[..3],
        [
            Some("Countess".to_string()),
            Some("CTO".to_string()),
            Some("Engineer".to_string())
        ]
    );
    assert!(titles[3..].iter().all(Option::is_none));
    let (status, err) = send(app.scim(
        &dir,
        Method::GET,
        "/Users?sortBy=userName&sortOrder=sideways",
    ))
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{err}");
}
