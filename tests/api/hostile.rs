//! Hostile input and one bad tenant never hurt the others (issue 8): a panicking write,
//! filters and PATCHes at and over their bounds, strings PostgreSQL cannot index, NUL
//! bytes, runaway statements, and groups naming members that do not exist.

use std::time::Duration;

use diesel::connection::SimpleConnection;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::backend_tests;
use crate::common::{assert_scim_error, send, user, Dir, TestApp};
use crate::scim_groups::member_ids;
use scimgate::scim::limits::{
    MAX_FILTER_TERMS, MAX_INDEXED_CHARS, MAX_PATCH_OPERATIONS, MAX_STRING_CHARS,
    MAX_VALUES_PER_ATTRIBUTE,
};
use scimgate::store::{Backend, Db};

backend_tests!(
    a_panicking_write_leaves_other_tenants_writing,
    client_numbers_never_reach_date_arithmetic,
    filters_are_bounded_and_still_answer,
    patches_are_bounded,
    strings_are_bounded_for_every_index,
    nul_bytes_are_bad_input,
    unknown_group_members_are_skipped,
    runaway_statements_are_cancelled,
);

fn patch_body(ops: Vec<Value>) -> Value {
    json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": ops})
}

fn id_of(v: &Value) -> String {
    v["id"].as_str().expect("id").to_string()
}

/// Users of `dir` counted through a pool of the test's own: what another process sees.
async fn committed_users(app: &TestApp, dir: &Dir) -> i64 {
    let (url, dir) = (app.database_url().to_string(), dir.id.clone());
    tokio::task::spawn_blocking(move || {
        let db = Db::open(&url).expect("open");
        let mut c = db.conn().expect("connection");
        scimgate::store::users::count(&mut c, &dir, None).expect("count")
    })
    .await
    .expect("join")
}

async fn a_panicking_write_leaves_other_tenants_writing(app: TestApp) {
    let a = app.create_directory("acme", "crm").await;
    let b = app.create_directory("globex", "crm").await;
    let ada = app.create_user(&a, "ada@acme.com").await;
    let path = format!("/Users/{}", id_of(&ada));
    let events_before = app.events(&a).await.len();

    scimgate::faults::panic_in_next_write(&a.id);
    let deactivate = patch_body(vec![
        json!({"op": "replace", "path": "active", "value": false}),
    ]);
    let (status, _) = send(app.scim(&a, Method::PATCH, &path).json(&deactivate)).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);

    // The panicked write left nothing behind: no change, no event.
    let (_, now) = send(app.scim(&a, Method::GET, &path)).await;
    assert_eq!(now["active"], true, "{now}");
    assert_eq!(now["meta"]["version"], ada["meta"]["version"]);
    assert_eq!(app.events(&a).await.len(), events_before);

    // More writes than the pool has connections: every connection serves the other
    // tenant, and what they acknowledge is committed (seen by another pool).
    for i in 0..40 {
        app.create_user(&b, &format!("user{i}@globex.com")).await;
    }
    assert_eq!(committed_users(&app, &b).await, 40);
    let (status, body) = send(app.scim(&a, Method::PATCH, &path).json(&deactivate)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["active"], false);
}

async fn client_numbers_never_reach_date_arithmetic(app: TestApp) {
    let dir = app.create_directory("acme", "crm").await;
    let rotate = |grace: &str| {
        app.admin(
            Method::POST,
            &format!(
                "/directory-sync/{}/scim-secret/rotate?grace_period_seconds={grace}",
                dir.id
            ),
        )
    };
    // 100000000000000 s overflowed the date arithmetic inside the write transaction.
    for grace in [
        "100000000000000",
        "9223372036854775807",
        "-1",
        "7776001",
        "soon",
    ] {
        let (status, body) = send(rotate(grace)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{grace}: {body}");
        assert!(body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("grace_period_seconds")));
    }
    let (status, body) = send(rotate("7776000")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // The pool is healthy: the new secret writes.
    let rotated = Dir {
        secret: body["data"]["scim"]["secret"].as_str().unwrap().to_string(),
        ..dir.clone()
    };
    app.create_user(&rotated, "ada@acme.com").await;
    // The old secret still works within the grace period.
    app.create_user(&dir, "bob@acme.com").await;
}

async fn filters_are_bounded_and_still_answer(app: TestApp) {
    let dir = app.create_directory("acme", "crm").await;
    for name in ["ann@acme.com", "bob@acme.com", "cat@other.org"] {
        app.create_user(&dir, name).await;
    }
    let list = |filter: String| {
        app.scim(&dir, Method::GET, "/Users")
            .query(&[("filter", filter)])
    };
    // At the bound, an AND chain of subquery terms answers exactly (four run as SQL, the
    // rest over the candidates).
    let chain = vec![r#"emails co "acme""#; MAX_FILTER_TERMS].join(" and ");
    let (status, body) = send(list(chain.clone())).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["totalResults"], 2, "{body}");
    let mixed = format!(
        r#"userName eq "ann@acme.com" and {}"#,
        vec![r#"emails.value ew ".com""#; MAX_FILTER_TERMS - 1].join(" and ")
    );
    let (_, body) = send(list(mixed)).await;
    assert_eq!(body["totalResults"], 1, "{body}");
    let any = vec![r#"emails co "other""#; MAX_FILTER_TERMS].join(" or ");
    let (_, body) = send(list(any)).await;
    assert_eq!(body["totalResults"], 1, "{body}");

    // One term more is refused, by GET and by .search.
    let over = format!(r#"{chain} and emails co "a""#);
    let (status, err) = send(list(over.clone())).await;
    assert_scim_error(status, &err, 400, Some("invalidFilter"));
    assert!(err["detail"].as_str().unwrap().contains("at most"), "{err}");
    let (status, err) = send(
        app.scim(&dir, Method::POST, "/Users/.search")
            .json(&json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"], "filter": over})),
    )
    .await;
    assert_scim_error(status, &err, 400, Some("invalidFilter"));
    // A PATCH path's value filter is bounded alike.
    let u = app.create_user(&dir, "dan@acme.com").await;
    let path = format!(
        "emails[{}].value",
        vec![r#"type eq "work""#; MAX_FILTER_TERMS + 1].join(" or ")
    );
    let (status, err) = send(
        app.scim(&dir, Method::PATCH, &format!("/Users/{}", id_of(&u)))
            .json(&patch_body(vec![
                json!({"op": "replace", "path": path, "value": "x@acme.com"}),
            ])),
    )
    .await;
    assert_scim_error(status, &err, 400, Some("invalidPath"));
}

async fn patches_are_bounded(app: TestApp) {
    let dir = app.create_directory("acme", "crm").await;
    let u = app.create_user(&dir, "ada@acme.com").await;
    let path = format!("/Users/{}", id_of(&u));
    let patch = |ops: Vec<Value>| app.scim(&dir, Method::PATCH, &path).json(&patch_body(ops));

    let title = |i: usize| json!({"op": "replace", "path": "title", "value": format!("t{i}")});
    let (status, err) = send(patch((0..=MAX_PATCH_OPERATIONS).map(title).collect())).await;
    assert_scim_error(status, &err, 400, Some("invalidValue"));

    let email = |i: usize| json!({"value": format!("e{i}@acme.com"), "type": "other"});
    let many: Vec<Value> = (0..=MAX_VALUES_PER_ATTRIBUTE).map(email).collect();
    let (status, err) = send(patch(vec![
        json!({"op": "add", "path": "emails", "value": many}),
    ]))
    .await;
    assert_scim_error(status, &err, 400, Some("invalidValue"));

    // A thousand adds of one email each: refused once the attribute would pass its bound,
    // and nothing is written.
    let adds = (0..MAX_PATCH_OPERATIONS)
        .map(|i| json!({"op": "add", "path": "emails", "value": [email(i)]}))
        .collect();
    let (status, err) = send(patch(adds)).await;
    assert_scim_error(status, &err, 400, Some("invalidValue"));
    let (_, now) = send(app.scim(&dir, Method::GET, &path)).await;
    assert_eq!(now["meta"]["version"], u["meta"]["version"]);
    assert_eq!(now["emails"].as_array().unwrap().len(), 1);

    // A thousand value-filter operations stay within bounds and apply.
    let filtered = (0..MAX_PATCH_OPERATIONS)
        .map(|i| {
            json!({"op": "replace", "path": "emails[type eq \"work\"].value",
                   "value": format!("ada{i}@acme.com")})
        })
        .collect();
    let (status, body) = send(patch(filtered)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["emails"][0]["value"], "ada999@acme.com");

    // A POST is bounded alike.
    let mut body = user("bob@acme.com");
    body["emails"] = Value::Array((0..=MAX_VALUES_PER_ATTRIBUTE).map(email).collect());
    let (status, err) = send(app.scim(&dir, Method::POST, "/Users").json(&body)).await;
    assert_scim_error(status, &err, 400, Some("invalidValue"));
}

async fn strings_are_bounded_for_every_index(app: TestApp) {
    let dir = app.create_directory("acme", "crm").await;
    let long = |n: usize| "a".repeat(n);
    // At the bound every indexed string is stored, on both backends.
    let at_bound = format!("{}@acme.com", long(MAX_INDEXED_CHARS - 9));
    let mut body = user(&at_bound);
    body["externalId"] = json!(long(MAX_INDEXED_CHARS));
    body["title"] = json!(long(MAX_STRING_CHARS));
    let (status, created) = send(app.scim(&dir, Method::POST, "/Users").json(&body)).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");

    // Over it: 400, never a 500 from PostgreSQL's B-tree limit.
    let over = long(3000);
    let cases: Vec<(&str, Value)> = vec![
        ("userName", json!(format!("{over}@acme.com"))),
        ("externalId", json!(over)),
        (
            "emails",
            json!([{"value": format!("{over}@acme.com"), "type": "work"}]),
        ),
        ("title", json!(long(MAX_STRING_CHARS + 1))),
        // Few enough characters, too many bytes for an index entry.
        ("userName", json!("😀".repeat(1000))),
    ];
    for (attr, value) in cases {
        let mut body = user("bob@acme.com");
        body[attr] = value;
        let (status, err) = send(app.scim(&dir, Method::POST, "/Users").json(&body)).await;
        assert_scim_error(status, &err, 400, Some("invalidValue"));
    }
    let (status, err) = send(
        app.scim(&dir, Method::POST, "/Groups")
            .json(&json!({"displayName": over})),
    )
    .await;
    assert_scim_error(status, &err, 400, Some("invalidValue"));
    // PATCH and PUT end in the same checks.
    let path = format!("/Users/{}", id_of(&created));
    let (status, err) = send(app.scim(&dir, Method::PATCH, &path).json(&patch_body(vec![
        json!({"op": "replace", "path": "userName", "value": format!("{over}@acme.com")}),
    ])))
    .await;
    assert_scim_error(status, &err, 400, Some("invalidValue"));
    let mut body = user("bob@acme.com");
    body["externalId"] = json!(over);
    let (status, err) = send(app.scim(&dir, Method::PUT, &path).json(&body)).await;
    assert_scim_error(status, &err, 400, Some("invalidValue"));
    // Admin strings that are indexed too.
    let (status, _) = send(
        app.admin(Method::POST, "/directory-sync")
            .json(&json!({"tenant": over, "product": "crm"})),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

async fn nul_bytes_are_bad_input(app: TestApp) {
    let dir = app.create_directory("acme", "crm").await;
    let u = app.create_user(&dir, "ada@acme.com").await;
    // Ids that are not well-formed answer before any query: a NUL names nothing (404,
    // with or without a token), another malformed directory id is an unknown directory
    // (401), a malformed resource id no resource (404).
    for auth in [None, Some(&dir.secret)] {
        let mut req = app
            .client
            .get(format!("{}/api/scim/v2.0/%00/Users", app.base));
        if let Some(token) = auth {
            req = req.bearer_auth(token);
        }
        let (status, err) = send(req).await;
        assert_scim_error(status, &err, 404, None);
    }
    let (status, err) = send(
        app.client
            .get(format!("{}/api/scim/v2.0/not-a-uuid/Users", app.base))
            .bearer_auth(&dir.secret),
    )
    .await;
    assert_scim_error(status, &err, 401, None);
    for path in ["/Users/%00", "/Groups/%00", "/Users/not-an-id"] {
        let (status, err) = send(app.scim(&dir, Method::GET, path)).await;
        assert_scim_error(status, &err, 404, None);
        let (status, err) = send(app.scim(&dir, Method::DELETE, path)).await;
        assert_scim_error(status, &err, 404, None);
    }

    // NUL in any value: 400 invalidValue.
    let nul = "a\u{0}b";
    let cases: Vec<(&str, Value)> = vec![
        ("userName", json!(nul)),
        ("externalId", json!(nul)),
        ("emails", json!([{"value": nul, "type": "work"}])),
        ("name", json!({"givenName": nul})),
        ("title", json!(nul)),
    ];
    for (attr, value) in cases {
        let mut body = user("bob@acme.com");
        body[attr] = value;
        let (status, err) = send(app.scim(&dir, Method::POST, "/Users").json(&body)).await;
        assert_scim_error(status, &err, 400, Some("invalidValue"));
    }
    let (status, err) = send(
        app.scim(&dir, Method::PATCH, &format!("/Users/{}", id_of(&u)))
            .json(&patch_body(vec![
                json!({"op": "replace", "path": "displayName", "value": nul}),
            ])),
    )
    .await;
    assert_scim_error(status, &err, 400, Some("invalidValue"));
    let (status, err) = send(
        app.scim(&dir, Method::POST, "/Groups")
            .json(&json!({"displayName": "Eng", "members": [{"value": nul}]})),
    )
    .await;
    assert_scim_error(status, &err, 400, Some("invalidValue"));
    let (status, err) = send(
        app.scim(&dir, Method::GET, "/Users")
            .query(&[("filter", "userName eq \"a\\u0000b\"")]),
    )
    .await;
    assert_scim_error(status, &err, 400, Some("invalidFilter"));

    // Admin: a NUL in a path id is no directory; in a parameter or a body, a 400.
    let (status, _) = send(app.admin(Method::GET, "/directory-sync/%00")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    for path in [
        format!("/directory-sync/{}/deliveries?endpoint_id=evt_1", dir.id),
        "/directory-sync?tenant=%00&product=crm".to_string(),
        format!("/directory-sync/{}/events?after=%00", dir.id),
        format!("/directory-sync/{}/deliveries?status=%00", dir.id),
    ] {
        let (status, body) = send(app.admin(Method::GET, &path)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}: {body}");
    }
    // Typed ids are parsed where they enter: a malformed one names nothing.
    for path in [
        format!("/directory-sync/{}/events/evt_%00", dir.id),
        format!("/directory-sync/{}/webhooks/whe_%00", dir.id),
        format!("/directory-sync/{}/events/whe_0123", dir.id),
        format!("/directory-sync/{}/webhooks/WHE_X", dir.id),
    ] {
        let (status, body) = send(app.admin(Method::GET, &path)).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}: {body}");
    }
    for body in [
        json!({"tenant": nul, "product": "crm"}),
        json!({"tenant": "acme", "product": "crm", "name": nul}),
        json!({"tenant": "acme", "product": "crm", "webhook_url": "http://127.0.0.1:9/hook", "webhook_secret": nul}),
    ] {
        let (status, _) = send(app.admin(Method::POST, "/directory-sync").json(&body)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    }
    let (status, _) = send(
        app.admin(Method::PATCH, &format!("/directory-sync/{}", dir.id))
            .json(&json!({"name": nul})),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    // Nothing of it reached the database: the directory still works.
    app.create_user(&dir, "bob@acme.com").await;
}

async fn unknown_group_members_are_skipped(app: TestApp) {
    let dir = app.create_directory("acme", "crm").await;
    let other = app.create_directory("acme", "crm").await;
    let ada = id_of(&app.create_user(&dir, "ada@acme.com").await);
    let bob = id_of(&app.create_user(&dir, "bob@acme.com").await);
    let stranger = id_of(&app.create_user(&other, "eve@acme.com").await);
    let unknown = uuid::Uuid::now_v7().to_string();
    let members = |ids: &[&str]| Value::Array(ids.iter().map(|i| json!({"value": i})).collect());

    // POST naming a user refused earlier, a user of another directory and a non-id.
    let (status, g) = send(app.scim(&dir, Method::POST, "/Groups").json(&json!({
        "displayName": "Eng",
        "members": members(&[&ada, &unknown, &stranger, "not-an-id"]),
    })))
    .await;
    assert_eq!(status, StatusCode::CREATED, "{g}");
    assert_eq!(member_ids(&g), vec![ada.clone()]);
    let gpath = format!("/Groups/{}", id_of(&g));

    // PUT and PATCH alike.
    let (status, g) = send(app.scim(&dir, Method::PUT, &gpath).json(&json!({
        "displayName": "Eng",
        "members": members(&[&ada, &bob, &unknown]),
    })))
    .await;
    assert_eq!(status, StatusCode::OK, "{g}");
    let mut both = vec![ada.clone(), bob.clone()];
    both.sort();
    assert_eq!(member_ids(&g), both);
    let (status, g) = send(app.scim(&dir, Method::PATCH, &gpath).json(&patch_body(vec![
        json!({"op": "add", "path": "members", "value": members(&[&stranger, &unknown])}),
    ])))
    .await;
    assert_eq!(status, StatusCode::OK, "{g}");
    let (_, g) = send(app.scim(&dir, Method::GET, &gpath)).await;
    assert_eq!(member_ids(&g), both);

    // Events name only the members that were added.
    let added: Vec<String> = app
        .events(&dir)
        .await
        .iter()
        .filter(|e| e["event"] == "group.user_added")
        .map(|e| e["data"]["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(added, vec![ada.clone(), bob.clone()]);
    // The other directory's user is in no group of this one.
    let (_, s) = send(app.scim(&other, Method::GET, &format!("/Users/{stranger}"))).await;
    assert!(s["groups"].as_array().is_none_or(Vec::is_empty), "{s}");

    // A malformed member value is still bad input.
    let long = "x".repeat(MAX_INDEXED_CHARS + 1);
    let (status, err) = send(app.scim(&dir, Method::PATCH, &gpath).json(&patch_body(vec![
        json!({"op": "add", "path": "members", "value": [{"value": long}]}),
    ])))
    .await;
    assert_scim_error(status, &err, 400, Some("invalidValue"));
}

async fn runaway_statements_are_cancelled(app: TestApp) {
    if app.db.backend() != Backend::Postgres {
        return; // SQLite has no statement timeout; its bounds are the filter's and PATCH's.
    }
    let url = app.database_url().to_string();
    tokio::task::spawn_blocking(move || {
        let db = Db::open_with(&url, Some(Duration::from_millis(200))).expect("open");
        let mut c = db.conn().expect("connection");
        let err = scimgate::Error::from(c.batch_execute("SELECT pg_sleep(3)").unwrap_err());
        assert!(err.is_statement_timeout(), "{err}");
        assert_eq!(err.status(), 503);
        // Deleting a whole directory is exempt.
        scimgate::store::unbounded(&mut c, |c| Ok(c.batch_execute("SELECT pg_sleep(0.4)")?))
            .expect("unbounded");
        // The connection is still good.
        c.batch_execute("SELECT 1").expect("after a timeout");
    })
    .await
    .expect("join");
    // The gateway's own pool has the default timeout.
    let (status, _) = send(app.admin(Method::GET, "/directory-sync?tenant=acme&product=crm")).await;
    assert_eq!(status, StatusCode::OK);
}

/// The README's Limits table states the numbers the code enforces and that
/// ServiceProviderConfig declares.
#[test]
fn readme_limits_match_the_code_and_service_provider_config() {
    use scimgate::scim::{bulk, limits};
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("README.md");
    let table = readme
        .split("### Limits")
        .nth(1)
        .and_then(|s| s.split("\n## ").next())
        .expect("a Limits section");
    let spc = scimgate::scim::discovery::service_provider_config("http://x");
    assert_eq!(spc["bulk"]["maxOperations"], bulk::MAX_OPERATIONS);
    assert_eq!(spc["bulk"]["maxPayloadSize"], bulk::MAX_PAYLOAD_BYTES);
    assert_eq!(spc["filter"]["maxResults"], scimgate::scim::list::MAX_COUNT);
    assert_eq!(bulk::MAX_PAYLOAD_BYTES, 1024 * 1024);
    for stated in [
        format!("{} operations, 1 MiB", bulk::MAX_OPERATIONS),
        format!("`count` at most {}", scimgate::scim::list::MAX_COUNT),
        format!(
            "{} bytes, nesting depth {}, {} comparisons",
            limits::MAX_FILTER_LEN,
            limits::MAX_FILTER_DEPTH,
            limits::MAX_FILTER_TERMS
        ),
        format!(
            "at most {} email or member subqueries",
            scimgate::store::filter_sql::MAX_SQL_SUBQUERIES
        ),
        format!("| PATCH | {} operations |", limits::MAX_PATCH_OPERATIONS),
        format!(
            "| {}; a group's `members`",
            limits::MAX_VALUES_PER_ATTRIBUTE
        ),
        format!(
            "{} characters and {} bytes",
            limits::MAX_INDEXED_CHARS,
            limits::MAX_INDEXED_BYTES
        ),
        format!("{} characters |", group_digits(limits::MAX_STRING_CHARS)),
        format!(
            "0 to {} (90 days)",
            group_digits(scimgate::directory::directories::MAX_GRACE_SECONDS as usize)
        ),
        format!(
            "{} s (`SCIMGATE_STATEMENT_TIMEOUT_MS`)",
            scimgate::store::DEFAULT_STATEMENT_TIMEOUT.as_secs()
        ),
    ] {
        assert!(
            table.contains(&stated),
            "README Limits should say {stated:?}"
        );
    }
}

/// 16384 → "16 384", as the README writes numbers.
fn group_digits(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(' ');
        }
        out.push(c);
    }
    out
}
