//! The operators' dashboard (DESIGN.md §8) as a browser without JavaScript uses it:
//! cookies by hand, no redirect followed, forms posted as a browser posts them.

use std::time::{Duration, Instant};

use diesel::connection::SimpleConnection;
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::backend_tests;
use crate::common::{send, user, TestApp, API_KEY};
use crate::receiver::{Receiver, Reply};

backend_tests!(
    sign_in_sessions_and_log_out,
    an_expired_session_goes_back_to_the_login_page,
    directories_are_created_listed_and_searched_with_values_escaped,
    a_directory_shows_its_users_groups_and_events_paged,
    webhook_endpoints_show_their_health_and_replay,
    settings_rename_deactivate_rotate_and_delete,
    home_shows_the_numbers_of_metrics_and_assets_are_same_origin,
    organizational_unit_pages_answer,
);

/// As `backend_tests!`, with the stand-in providers (a unit needs their consents).
mod with_providers {
    use crate::enterprise_connect::Connect;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite() {
        let c = Connect::start(crate::common::Backend::Sqlite)
            .await
            .expect("sqlite");
        super::a_unit_shows_its_accounts_and_revokes_and_relinks(c).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        if let Some(c) = Connect::start(crate::common::Backend::Postgres).await {
            super::a_unit_shows_its_accounts_and_revokes_and_relinks(c).await;
        }
    }
}

/// A page as the test read it.
struct Page {
    status: StatusCode,
    body: String,
    location: Option<String>,
    headers: reqwest::header::HeaderMap,
}

/// A browser signed in to the dashboard: its session cookie and the session's CSRF token.
struct Operator {
    client: reqwest::Client,
    base: String,
    cookie: String,
    csrf: String,
}

fn browser() -> reqwest::Client {
    scimgate::outbound::install_tls_provider();
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

async fn read(r: reqwest::RequestBuilder) -> Page {
    let resp = r.send().await.expect("request");
    let status = resp.status();
    let headers = resp.headers().clone();
    let location = headers
        .get("location")
        .map(|v| v.to_str().unwrap().to_string());
    Page {
        status,
        body: resp.text().await.expect("body"),
        location,
        headers,
    }
}

/// The value of the hidden field `name` of the first form that has one.
fn hidden(html: &str, name: &str) -> String {
    let needle = format!("name=\"{name}\" value=\"");
    let start = html
        .find(&needle)
        .unwrap_or_else(|| panic!("no {name} in {html}"))
        + needle.len();
    html[start..].split('"').next().unwrap().to_string()
}

/// The text of the element with `id`.
fn by_id(html: &str, id: &str) -> String {
    let needle = format!("id=\"{id}\"");
    let at = html
        .find(&needle)
        .unwrap_or_else(|| panic!("no #{id} in {html}"));
    let rest = &html[at..];
    let start = rest.find('>').unwrap() + 1;
    rest[start..].split('<').next().unwrap().to_string()
}

impl Operator {
    async fn sign_in(app: &TestApp) -> Operator {
        let client = browser();
        let r = read(
            client
                .post(format!("{}/dashboard/login", app.base))
                .form(&[("api_key", API_KEY), ("next", "/dashboard")]),
        )
        .await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
        let set = r.headers["set-cookie"].to_str().unwrap().to_string();
        let cookie = set.split(';').next().unwrap().to_string();
        assert!(cookie.starts_with("scimgate_session="), "{set}");
        let mut op = Operator {
            client,
            base: app.base.clone(),
            cookie,
            csrf: String::new(),
        };
        let home = op.get("/dashboard").await;
        assert_eq!(home.status, StatusCode::OK, "{}", home.body);
        op.csrf = hidden(&home.body, "csrf");
        op
    }

    async fn get(&self, path: &str) -> Page {
        read(
            self.client
                .get(format!("{}{path}", self.base))
                .header("Cookie", &self.cookie),
        )
        .await
    }

    /// Posts a form with the session's CSRF token.
    async fn post(&self, path: &str, fields: &[(&str, &str)]) -> Page {
        let mut form: Vec<(&str, &str)> = fields.to_vec();
        form.push(("csrf", &self.csrf));
        self.post_raw(path, &form).await
    }

    async fn post_raw(&self, path: &str, form: &[(&str, &str)]) -> Page {
        read(
            self.client
                .post(format!("{}{path}", self.base))
                .header("Cookie", &self.cookie)
                .form(form),
        )
        .await
    }

    /// Creates a directory through the form; returns its id, endpoint and secret.
    async fn create(
        &self,
        name: &str,
        tenant: &str,
        webhook_url: &str,
    ) -> (String, String, String) {
        let r = self
            .post(
                "/dashboard/directories",
                &[
                    ("name", name),
                    ("tenant", tenant),
                    ("product", "crm"),
                    ("type", "okta-scim-v2"),
                    ("webhook_url", webhook_url),
                ],
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        let endpoint = by_id(&r.body, "scim-endpoint");
        let secret = by_id(&r.body, "scim-secret");
        let id = endpoint.rsplit('/').next().unwrap().to_string();
        (id, endpoint, secret)
    }
}

/// A directory as the SCIM tests use it, from what the dashboard showed.
fn dir_of(id: &str, endpoint: &str, secret: &str) -> crate::common::Dir {
    crate::common::Dir {
        id: id.into(),
        secret: secret.into(),
        endpoint: endpoint.into(),
        json: serde_json::Value::Null,
    }
}

async fn sign_in_sessions_and_log_out(app: TestApp) {
    let anon = browser();
    // Without a session: 303 to the login page, coming back afterwards.
    for (path, next) in [
        ("/dashboard", "%2Fdashboard"),
        (
            "/dashboard/directories?q=a%20b",
            "%2Fdashboard%2Fdirectories%3Fq%3Da%2520b",
        ),
        ("/dashboard/units", "%2Fdashboard%2Funits"),
    ] {
        let r = read(anon.get(format!("{}{path}", app.base))).await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{path}");
        assert_eq!(
            r.location.as_deref(),
            Some(format!("/dashboard/login?next={next}").as_str()),
            "{path}"
        );
    }
    // A POST without a session changes nothing and goes to the login page too.
    let r = read(
        anon.post(format!("{}/dashboard/directories", app.base))
            .form(&[
                ("name", "x"),
                ("tenant", "t"),
                ("product", "p"),
                ("csrf", "x"),
            ]),
    )
    .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert!(r.location.unwrap().starts_with("/dashboard/login?next="));
    let (_, list) = send(app.admin(Method::GET, "/directory-sync")).await;
    assert_eq!(list["data"].as_array().unwrap().len(), 0);

    // The login page: the form, escaped `next`.
    let r = read(anon.get(format!(
        "{}/dashboard/login?next=%2Fdashboard%2Funits",
        app.base
    )))
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.body.contains("name=\"api_key\""), "{}", r.body);
    assert_eq!(hidden(&r.body, "next"), "/dashboard/units");
    assert_eq!(r.headers["x-frame-options"], "DENY");

    // A wrong key: 401 with the form again and an error, no cookie.
    let r = read(
        anon.post(format!("{}/dashboard/login", app.base))
            .form(&[("api_key", "not-the-key"), ("next", "/dashboard/units")]),
    )
    .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(r.body.contains("name=\"api_key\"") && r.body.contains("not an admin API key"));
    assert!(r.headers.get("set-cookie").is_none());
    let r = read(
        anon.post(format!("{}/dashboard/login", app.base))
            .form(&[("api_key", "")]),
    )
    .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);

    // The right key: a session cookie with the flags of §8, back to `next`.
    let r = read(
        anon.post(format!("{}/dashboard/login", app.base))
            .form(&[("api_key", API_KEY), ("next", "/dashboard/units")]),
    )
    .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(r.location.as_deref(), Some("/dashboard/units"));
    let set = r.headers["set-cookie"].to_str().unwrap();
    for flag in [
        "HttpOnly",
        "SameSite=Strict",
        "Max-Age=28800",
        "Path=/dashboard",
    ] {
        assert!(set.contains(flag), "{flag}: {set}");
    }
    // Plain http here: not Secure.
    assert!(!set.contains("Secure"), "{set}");
    // `next` elsewhere than the dashboard goes home instead.
    for bad in [
        "https://evil.example/",
        "//evil.example/x",
        "/api/v1/directory-sync",
    ] {
        let r = read(
            anon.post(format!("{}/dashboard/login", app.base))
                .form(&[("api_key", API_KEY), ("next", bad)]),
        )
        .await;
        assert_eq!(r.location.as_deref(), Some("/dashboard"), "{bad}");
    }

    let op = Operator::sign_in(&app).await;
    // "Log out" is a POST form with the CSRF token; without it: 403 and still signed in.
    let home = op.get("/dashboard").await;
    assert!(
        home.body.contains("action=\"/dashboard/logout\""),
        "{}",
        home.body
    );
    let r = op.post_raw("/dashboard/logout", &[]).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = op.post_raw("/dashboard/logout", &[("csrf", "wrong")]).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(op.get("/dashboard").await.status, StatusCode::OK);
    // Another session's token is not this one's.
    let other = Operator::sign_in(&app).await;
    assert_ne!(other.csrf, op.csrf);
    let r = op
        .post_raw("/dashboard/logout", &[("csrf", &other.csrf)])
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    // GET never signs out.
    assert_ne!(
        op.get("/dashboard/logout").await.status,
        StatusCode::SEE_OTHER
    );
    assert_eq!(op.get("/dashboard").await.status, StatusCode::OK);

    let r = op.post("/dashboard/logout", &[]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(r.location.as_deref(), Some("/dashboard/login"));
    assert!(r.headers["set-cookie"]
        .to_str()
        .unwrap()
        .contains("Max-Age=0"));
    // The old cookie opens nothing any more; the other session lives on.
    let r = op.get("/dashboard/directories").await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(
        other.get("/dashboard/directories").await.status,
        StatusCode::OK
    );
}

async fn an_expired_session_goes_back_to_the_login_page(app: TestApp) {
    let op = Operator::sign_in(&app).await;
    assert_eq!(
        op.get("/dashboard/directories").await.status,
        StatusCode::OK
    );
    // Eight hours later (moved back in the database rather than waited for).
    app.db
        .conn()
        .expect("conn")
        .batch_execute(
            "UPDATE dashboard_sessions SET expires_at = created_at WHERE ended_at IS NULL",
        )
        .expect("age the session");
    let r = op.get("/dashboard/directories").await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(
        r.location.as_deref(),
        Some("/dashboard/login?next=%2Fdashboard%2Fdirectories")
    );
    // Its forms change nothing either.
    let r = op
        .post(
            "/dashboard/directories",
            &[
                ("name", "late"),
                ("tenant", "t"),
                ("product", "p"),
                ("type", "okta-scim-v2"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let (_, list) = send(app.admin(Method::GET, "/directory-sync")).await;
    assert_eq!(list["data"].as_array().unwrap().len(), 0);
}

async fn directories_are_created_listed_and_searched_with_values_escaped(app: TestApp) {
    let op = Operator::sign_in(&app).await;
    // The form: the §2 types as a select, a webhook URL field, the CSRF token.
    let form = op.get("/dashboard/directories/new").await;
    assert_eq!(form.status, StatusCode::OK);
    assert!(form.body.contains("<select"), "{}", form.body);
    for t in [
        "okta-scim-v2",
        "azure-scim-v2",
        "onelogin-scim-v2",
        "jumpcloud-scim-v2",
        "generic-scim-v2",
    ] {
        assert!(form.body.contains(&format!("<option value=\"{t}\"")), "{t}");
    }
    for field in ["name", "tenant", "product", "webhook_url", "csrf"] {
        assert!(form.body.contains(&format!("name=\"{field}\"")), "{field}");
    }
    let fields = [
        ("name", "<script>alert(1)</script>"),
        ("tenant", "acme"),
        ("product", "crm"),
        ("type", "azure-scim-v2"),
        ("webhook_url", ""),
    ];
    // Without the CSRF token, or with a wrong one: 403, nothing created.
    assert_eq!(
        op.post_raw("/dashboard/directories", &fields).await.status,
        StatusCode::FORBIDDEN
    );
    let mut wrong = fields.to_vec();
    wrong.push(("csrf", "0000"));
    assert_eq!(
        op.post_raw("/dashboard/directories", &wrong).await.status,
        StatusCode::FORBIDDEN
    );
    let (_, list) = send(app.admin(Method::GET, "/directory-sync")).await;
    assert_eq!(list["data"].as_array().unwrap().len(), 0);

    let r = op.post("/dashboard/directories", &fields).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(!r.body.contains("<script>alert"), "{}", r.body);
    assert!(r.body.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    assert_eq!(r.body.matches(">Copy<").count(), 2, "{}", r.body);
    let endpoint = by_id(&r.body, "scim-endpoint");
    let secret = by_id(&r.body, "scim-secret");
    let id = endpoint.rsplit('/').next().unwrap().to_string();
    assert_eq!(endpoint, format!("{}/api/scim/v2.0/{id}", app.base));
    // The endpoint and secret work; an empty webhook URL made no endpoint.
    let dir = dir_of(&id, &endpoint, &secret);
    app.create_user(&dir, "ada@acme.example").await;
    let (_, d) = send(app.admin(Method::GET, &format!("/directory-sync/{id}"))).await;
    assert_eq!(d["data"]["type"], "azure-scim-v2");
    assert!(
        d["data"]["webhook"]["endpoint"].is_null() || d["data"]["webhook_url"].is_null(),
        "{d}"
    );
    let (_, hooks) = send(app.admin(Method::GET, &format!("/directory-sync/{id}/webhooks"))).await;
    assert_eq!(hooks["data"].as_array().unwrap().len(), 0, "{hooks}");

    // Refused input: the form again with the reason, 400.
    let r = op
        .post(
            "/dashboard/directories",
            &[
                ("name", "x"),
                ("tenant", "a:b"),
                ("product", "crm"),
                ("type", "okta-scim-v2"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.body.contains("tenant cannot contain"), "{}", r.body);
    assert!(r.body.contains("value=\"a:b\""));
    let r = op
        .post(
            "/dashboard/directories",
            &[
                ("name", "x"),
                ("tenant", "t"),
                ("product", "crm"),
                ("type", "ldap"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);

    op.create("Globex HR", "globex", "").await;
    // The table: header cells, counts, state; the search form above it.
    let list = op.get("/dashboard/directories").await;
    assert_eq!(list.status, StatusCode::OK);
    for th in [
        "Name",
        "Tenant",
        "Product",
        "Type",
        "Users",
        "Groups",
        "State",
        "Last event",
    ] {
        assert!(
            list.body.contains(&format!(">{th}</th>")),
            "{th}: {}",
            list.body
        );
    }
    assert!(list.body.find("name=\"q\"").unwrap() < list.body.find("<table").unwrap());
    assert!(list.body.contains("method=\"get\""));
    assert!(list.body.contains("&lt;script&gt;") && !list.body.contains("<script>alert"));
    assert!(list.body.contains("Globex HR"));
    // Secrets never again.
    for path in [
        "/dashboard/directories".to_string(),
        format!("/dashboard/directories/{id}"),
        format!("/dashboard/directories/{id}/settings"),
        format!("/dashboard/directories/{id}/webhooks"),
        format!("/dashboard/directories/{id}/events"),
    ] {
        let p = op.get(&path).await;
        assert_eq!(p.status, StatusCode::OK, "{path}");
        assert!(!p.body.contains(&secret), "{path}");
    }
    // Search by tenant or name, case-insensitive.
    let by_tenant = op.get("/dashboard/directories?q=ACME").await.body;
    assert!(by_tenant.contains("&lt;script&gt;") && !by_tenant.contains("Globex HR"));
    let by_name = op.get("/dashboard/directories?q=globex%20h").await.body;
    assert!(by_name.contains("Globex HR") && !by_name.contains("&lt;script&gt;"));
    let none = op.get("/dashboard/directories?q=%25").await.body;
    assert!(!none.contains("Globex HR"), "% is literal");
    // One user pushed shows in the Users column of its row.
    let row = by_tenant
        .split("<tr>")
        .find(|r| r.contains("&lt;script&gt;"))
        .unwrap()
        .to_string();
    assert!(row.contains("<td class=\"num\">1</td>"), "{row}");
    assert!(
        row.contains("azure-scim-v2") && row.contains(">active<"),
        "{row}"
    );
    // Unknown and malformed directory ids: 404 pages.
    assert_eq!(
        op.get("/dashboard/directories/not-a-uuid").await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        op.get("/dashboard/directories/00000000-0000-4000-8000-000000000000")
            .await
            .status,
        StatusCode::NOT_FOUND
    );
}

async fn wait_for_events(app: &TestApp, dir: &crate::common::Dir, n: usize) {
    let started = Instant::now();
    while app.events(dir).await.len() < n {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "events not numbered"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn a_directory_shows_its_users_groups_and_events_paged(app: TestApp) {
    let op = Operator::sign_in(&app).await;
    let (id, endpoint, secret) = op.create("Acme", "acme", "").await;
    let dir = dir_of(&id, &endpoint, &secret);
    // 55 users: more than a page of 50.
    let mut ids = Vec::new();
    for i in 0..55 {
        let u = app
            .create_user(&dir, &format!("user{i:02}@acme.example"))
            .await;
        ids.push(u["id"].as_str().unwrap().to_string());
    }
    let mut odd = user("Zed.Owner");
    odd["emails"] = json!([{"value": "<b>owner</b>@Mail.example", "primary": true}]);
    let (status, body) = send(app.scim(&dir, Method::POST, "/Users").json(&odd)).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, body) = send(app.scim(&dir, Method::POST, "/Groups").json(&json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
        "displayName": "Engineering",
        "members": [{"value": ids[0]}, {"value": ids[1]}, {"value": ids[2]}],
    })))
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    send(app.scim(&dir, Method::POST, "/Groups").json(&json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
        "displayName": "Empty",
    })))
    .await;

    let base = format!("/dashboard/directories/{id}");
    let first = op.get(&base).await;
    assert_eq!(first.status, StatusCode::OK);
    assert!(
        first.body.contains("56 users") && first.body.contains("2 groups"),
        "{}",
        first.body
    );
    assert!(first.body.contains(&endpoint));
    // The search form sits above the list.
    assert!(first.body.find("name=\"q\"").unwrap() < first.body.find("<table").unwrap());
    assert_eq!(
        first.body.matches("@acme.example</td>").count() / 2,
        50,
        "userName and email"
    );
    assert!(
        first.body.contains("user00@acme.example") && !first.body.contains("user50@acme.example")
    );
    let next = first
        .body
        .split("href=\"")
        .filter(|h| h.contains("after="))
        .map(|h| h.split('"').next().unwrap().replace("&amp;", "&"))
        .next()
        .expect("a Next link");
    let second = op.get(&next).await;
    assert!(
        second.body.contains("user50@acme.example") && second.body.contains("user54@acme.example")
    );
    assert!(!second.body.contains("user49@acme.example") && second.body.contains("Zed.Owner"));
    assert!(!second.body.contains(">Next<"));
    // Search by userName (prefix, any case) and by email; values escaped.
    let found = op.get(&format!("{base}?q=USER1")).await.body;
    assert!(found.contains("user10@acme.example") && found.contains("user19@acme.example"));
    assert!(!found.contains("user20@acme.example") && !found.contains("user01@acme.example"));
    let found = op.get(&format!("{base}?q=%3Cb%3Eowner")).await.body;
    assert!(
        found.contains("Zed.Owner") && found.contains("&lt;b&gt;owner&lt;/b&gt;@Mail.example"),
        "{found}"
    );
    assert!(!found.contains("user00@"));
    let none = op.get(&format!("{base}?q=nobody")).await.body;
    assert!(none.contains("No users"));

    // Groups with member counts.
    let groups = op.get(&format!("{base}/groups")).await.body;
    assert!(groups.contains(">Members</th>"), "{groups}");
    let eng = groups
        .split("<tr>")
        .find(|r| r.contains("Engineering"))
        .unwrap();
    assert!(eng.contains("<td class=\"num\">3</td>"), "{eng}");
    let empty = groups.split("<tr>").find(|r| r.contains("Empty")).unwrap();
    assert!(empty.contains("<td class=\"num\">0</td>"), "{empty}");

    // Events newest first, by sequence; paged backwards.
    wait_for_events(&app, &dir, 61).await;
    let events = op.get(&format!("{base}/events")).await.body;
    assert!(events.contains(">Sequence</th>"), "{events}");
    let seqs: Vec<i64> = events
        .split("<td class=\"num\">")
        .skip(1)
        .map(|s| s.split('<').next().unwrap().parse().unwrap())
        .collect();
    assert_eq!(seqs.len(), 50);
    assert!(seqs.windows(2).all(|w| w[0] == w[1] + 1), "{seqs:?}");
    assert!(seqs[0] >= 61);
    assert!(events.contains("group.user_added") && events.contains("no endpoint"));
    let older = events
        .split("href=\"")
        .find(|h| h.contains("before="))
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_string();
    let older = op.get(&older).await.body;
    assert!(older.contains("<td class=\"num\">1</td>"), "{older}");
}

async fn webhook_endpoints_show_their_health_and_replay(app: TestApp) {
    // The receiver fails everything until told otherwise.
    let failing = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let f = failing.clone();
    let rx = Receiver::start(move |_, _| {
        if f.load(std::sync::atomic::Ordering::SeqCst) {
            Reply::status(500)
        } else {
            Reply::status(200)
        }
    })
    .await;
    let op = Operator::sign_in(&app).await;
    let (id, endpoint, secret) = op.create("Hooks", "hooks", &rx.url).await;
    let dir = dir_of(&id, &endpoint, &secret);
    app.create_user(&dir, "ada@hooks.example").await;
    let page = format!("/dashboard/directories/{id}/webhooks");
    // Retries are quick in tests (4 attempts): the deliveries end up dead.
    let started = Instant::now();
    let body = loop {
        let body = op.get(&page).await.body;
        let dead = body.split("<tbody>").nth(1).unwrap_or("").to_string();
        if dead.contains("<td class=\"num\">0</td><td class=\"num\">0</td><td class=\"num\">0</td><td class=\"num\">2</td>") {
            break body;
        }
        assert!(started.elapsed() < Duration::from_secs(15), "{body}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(body.contains(&rx.url), "the full URL: {body}");
    for label in ["delivered", "pending", "failed", "dead"] {
        assert!(body.contains(&format!(">{label}</th>")), "{label}");
    }
    assert!(body.contains("HTTP 500"), "{body}");
    assert!(body.contains(">Replay<") && body.contains("name=\"since\""));
    let wid = body
        .split("<section class=\"box\" id=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_string();
    assert!(wid.starts_with("whe_"), "{wid}");
    let action = |what: &str| format!("/dashboard/directories/{id}/webhooks/{wid}/{what}");

    // Forms without the CSRF token change nothing.
    for what in ["disable", "rotate-secret", "replay"] {
        assert_eq!(
            op.post_raw(&action(what), &[]).await.status,
            StatusCode::FORBIDDEN,
            "{what}"
        );
    }
    assert_eq!(rx.delivered().len(), 0);

    // Replay everything since a time (datetime-local, read as UTC): delivered now.
    failing.store(false, std::sync::atomic::Ordering::SeqCst);
    let since = (chrono::Utc::now() - chrono::Duration::hours(1))
        .format("%Y-%m-%dT%H:%M")
        .to_string();
    let r = op.post(&action("replay"), &[("since", &since)]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    assert!(
        r.location.as_deref().unwrap().contains("queued=2"),
        "{:?}",
        r.location
    );
    rx.wait_for(2).await;
    let started = Instant::now();
    loop {
        let body = op.get(&page).await.body;
        if body.contains("<td class=\"num\">2</td><td class=\"num\">0</td><td class=\"num\">0</td><td class=\"num\">0</td>") {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "{body}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // RFC 3339 too; a time after every event replays nothing; nonsense is refused.
    let r = op
        .post(&action("replay"), &[("since", "2999-01-01T00:00:00Z")])
        .await;
    assert!(r.location.as_deref().unwrap().contains("queued=0"));
    assert_eq!(
        op.post(&action("replay"), &[("since", "soon")])
            .await
            .status,
        StatusCode::BAD_REQUEST
    );
    // Without a time: its pending deliveries become due now (none pending here).
    let r = op.post(&action("replay"), &[("since", "")]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);

    // Disable and enable.
    assert_eq!(
        op.post(&action("disable"), &[]).await.status,
        StatusCode::SEE_OTHER
    );
    let body = op.get(&page).await.body;
    assert!(
        body.contains(">disabled<") && body.contains(">Enable<"),
        "{body}"
    );
    assert_eq!(
        op.post(&action("enable"), &[]).await.status,
        StatusCode::SEE_OTHER
    );
    assert!(op.get(&page).await.body.contains(">enabled<"));

    // Rotate its secret: shown once, and deliveries are signed with it.
    let r = op.post(&action("rotate-secret"), &[]).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let new_secret = by_id(&r.body, "webhook-secret");
    assert!(new_secret.starts_with("whsec_"), "{new_secret}");
    assert!(r.body.contains(">Copy<"));
    assert!(!op.get(&page).await.body.contains(&new_secret));
    app.create_user(&dir, "bob@hooks.example").await;
    rx.wait_for(3).await;
    let last = rx.delivered().pop().unwrap();
    last.assert_signed(&[&new_secret]);

    // The events page shows each endpoint's delivery state.
    wait_for_events(&app, &dir, 3).await;
    let events = op
        .get(&format!("/dashboard/directories/{id}/events"))
        .await
        .body;
    assert!(
        events.contains(">delivered<") && events.contains(&rx.url),
        "{events}"
    );
    // Another directory's endpoint is not reachable through this one.
    let (other, _, _) = op.create("Other", "other", "").await;
    let r = op
        .post(
            &format!("/dashboard/directories/{other}/webhooks/{wid}/disable"),
            &[],
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}

async fn settings_rename_deactivate_rotate_and_delete(app: TestApp) {
    let op = Operator::sign_in(&app).await;
    let (id, endpoint, secret) = op.create("Before", "acme", "").await;
    let dir = dir_of(&id, &endpoint, &secret);
    let settings = format!("/dashboard/directories/{id}/settings");
    let act = |what: &str| format!("{settings}/{what}");
    let page = op.get(&settings).await.body;
    for want in [
        "Rename",
        "Deactivate",
        "Rotate SCIM secret",
        "name=\"grace_period_seconds\"",
        "Delete directory",
    ] {
        assert!(page.contains(want), "{want}: {page}");
    }

    // Rename: refused without CSRF, then done.
    assert_eq!(
        op.post_raw(&act("rename"), &[("name", "Hacked")])
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    let r = op.post(&act("rename"), &[("name", "After <b>")]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let (_, d) = send(app.admin(Method::GET, &format!("/directory-sync/{id}"))).await;
    assert_eq!(d["data"]["name"], "After <b>");
    assert!(op.get(&settings).await.body.contains("After &lt;b&gt;"));

    // Deactivate: the IdP is refused (403); activate: accepted again.
    assert_eq!(
        op.post_raw(&act("deactivate"), &[]).await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        send(app.scim(&dir, Method::GET, "/Users")).await.0,
        StatusCode::OK
    );
    assert_eq!(
        op.post(&act("deactivate"), &[]).await.status,
        StatusCode::SEE_OTHER
    );
    assert_eq!(
        send(app.scim(&dir, Method::GET, "/Users")).await.0,
        StatusCode::FORBIDDEN
    );
    assert!(op.get(&settings).await.body.contains(">Activate<"));
    assert_eq!(
        op.post(&act("activate"), &[]).await.status,
        StatusCode::SEE_OTHER
    );
    assert_eq!(
        send(app.scim(&dir, Method::GET, "/Users")).await.0,
        StatusCode::OK
    );

    // Rotate with a grace period: both secrets work; then with 0: only the newest.
    assert_eq!(
        op.post_raw(&act("rotate-secret"), &[]).await.status,
        StatusCode::FORBIDDEN
    );
    let r = op
        .post(&act("rotate-secret"), &[("grace_period_seconds", "600")])
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let second = by_id(&r.body, "scim-secret");
    assert!(r.body.contains(">Copy<") && second != secret);
    assert_eq!(
        send(app.scim(&dir, Method::GET, "/Users")).await.0,
        StatusCode::OK
    );
    let r = op
        .post(&act("rotate-secret"), &[("grace_period_seconds", "0")])
        .await;
    let third = by_id(&r.body, "scim-secret");
    assert_eq!(
        send(app.scim(&dir, Method::GET, "/Users")).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        send(app.scim(&dir_of(&id, &endpoint, &second), Method::GET, "/Users"))
            .await
            .0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        send(app.scim(&dir_of(&id, &endpoint, &third), Method::GET, "/Users"))
            .await
            .0,
        StatusCode::OK
    );
    assert!(!op.get(&settings).await.body.contains(&third));
    assert_eq!(
        op.post(&act("rotate-secret"), &[("grace_period_seconds", "-1")])
            .await
            .status,
        StatusCode::BAD_REQUEST
    );
    // Without a grace period given: the default (the old secret keeps working).
    let r = op
        .post(&act("rotate-secret"), &[("grace_period_seconds", "")])
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        send(app.scim(&dir_of(&id, &endpoint, &third), Method::GET, "/Users"))
            .await
            .0,
        StatusCode::OK
    );

    // Delete: a confirmation page first; the form without confirming goes back to it.
    let confirm = op.get(&act("delete")).await;
    assert_eq!(confirm.status, StatusCode::OK);
    assert!(confirm.body.contains("cannot be undone") && confirm.body.contains("name=\"confirm\""));
    assert_eq!(
        op.post_raw(&act("delete"), &[("confirm", "yes")])
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    let r = op.post(&act("delete"), &[]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(r.location.as_deref(), Some(act("delete").as_str()));
    assert_eq!(
        send(app.admin(Method::GET, &format!("/directory-sync/{id}")))
            .await
            .0,
        StatusCode::OK
    );
    let r = op.post(&act("delete"), &[("confirm", "yes")]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(r.location.as_deref(), Some("/dashboard/directories"));
    assert_eq!(
        send(app.admin(Method::GET, &format!("/directory-sync/{id}")))
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(op.get(&settings).await.status, StatusCode::NOT_FOUND);
}

async fn home_shows_the_numbers_of_metrics_and_assets_are_same_origin(app: TestApp) {
    // A dead receiver keeps two deliveries pending.
    let rx = Receiver::start(|_, _| Reply::status(503)).await;
    let op = Operator::sign_in(&app).await;
    let (id, endpoint, secret) = op.create("Queue", "queue", &rx.url).await;
    app.create_user(&dir_of(&id, &endpoint, &secret), "ada@queue.example")
        .await;
    let metric = |text: &str, name: &str| -> String {
        text.lines()
            .find(|l| l.starts_with(&format!("{name} ")))
            .unwrap_or_else(|| panic!("{name} in {text}"))
            .split(' ')
            .nth(1)
            .unwrap()
            .to_string()
    };
    // The numbers move while deliveries are retried: compare them between two equal
    // scrapes.
    let scrape = || async {
        app.client
            .get(format!("{}/metrics", app.base))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    };
    let started = Instant::now();
    let home = loop {
        let before = scrape().await;
        let home = op.get("/dashboard").await;
        let after = scrape().await;
        let gauges = |t: &str| {
            (
                metric(t, "scimgate_webhook_queue_depth"),
                metric(t, "scimgate_provisioning_backlog_events"),
            )
        };
        if gauges(&before) == gauges(&after) {
            assert_eq!(home.status, StatusCode::OK);
            assert_eq!(
                by_id(&home.body, "deliveries-pending"),
                gauges(&after).0,
                "{}",
                home.body
            );
            assert_eq!(by_id(&home.body, "provisioning-backlog"), gauges(&after).1);
            break home;
        }
        assert!(started.elapsed() < Duration::from_secs(10));
    };
    assert!(
        home.body.contains("Oldest undelivered event") && home.body.contains("Deliveries failed")
    );

    // Pages carry only same-origin assets, a favicon, and a policy saying so.
    let csp = home.headers["content-security-policy"].to_str().unwrap();
    assert!(
        csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"),
        "{csp}"
    );
    assert_eq!(home.headers["x-frame-options"], "DENY");
    assert_eq!(home.headers["cache-control"], "no-store");
    for attr in ["src=\"", "href=\""] {
        for target in home.body.split(attr).skip(1) {
            assert!(target.starts_with('/'), "{attr}{target}");
        }
    }
    assert!(home.body.contains("rel=\"icon\""));
    for (path, kind) in [
        ("/dashboard/assets/dashboard.css", "text/css"),
        ("/dashboard/assets/copy.js", "text/javascript"),
        ("/dashboard/assets/favicon.svg", "image/svg+xml"),
        ("/favicon.ico", "image/svg+xml"),
    ] {
        let r = read(browser().get(format!("{}{path}", app.base))).await;
        assert_eq!(r.status, StatusCode::OK, "{path}");
        assert!(
            r.headers["content-type"]
                .to_str()
                .unwrap()
                .starts_with(kind),
            "{path}"
        );
    }
    // The viewport is set for phones; an unknown dashboard page is a 404 page.
    assert!(home.body.contains("name=\"viewport\""));
    assert_eq!(
        op.get("/dashboard/nothing-here").await.status,
        StatusCode::NOT_FOUND
    );
}

async fn organizational_unit_pages_answer(app: TestApp) {
    let op = Operator::sign_in(&app).await;
    let list = op.get("/dashboard/units").await;
    assert_eq!(list.status, StatusCode::OK);
    assert!(
        list.body.contains("No organizational units"),
        "{}",
        list.body
    );
    for path in ["/dashboard/units/ou_nope", "/dashboard/units/not-a-unit"] {
        assert_eq!(op.get(path).await.status, StatusCode::NOT_FOUND, "{path}");
    }
    // Forms: the CSRF check first, then the ids.
    let r = op
        .post_raw("/dashboard/units/ou_x/accounts/acc_x/relink", &[])
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = op
        .post("/dashboard/units/not-a-unit/accounts/acc_x/relink", &[])
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}

/// DESIGN.md §8: a unit's page — service accounts in link order with "Revoke access", its
/// directories, the accounts with their profiles and "Revoke profile" / "Relink profile".
async fn a_unit_shows_its_accounts_and_revokes_and_relinks(c: crate::enterprise_connect::Connect) {
    let made = c
        .google_unit("http://127.0.0.1:9/dash", "zoom_enterprise")
        .await;
    let unit = made.unit;
    let access = made.tokens["access_token"].as_str().unwrap().to_string();
    let rx = Receiver::ok().await;
    assert_eq!(
        c.authorize_emails(&access, json!({"email": "alice@example.com", "callback_url": rx.url, "scope": "read_write", "state": "a"}))
            .await,
        StatusCode::ACCEPTED
    );
    crate::enterprise_connect::callbacks(&rx, 1).await;
    let dir = c.app.create_directory("acme", "crm").await;
    let (status, body) = send(
        c.app
            .admin(Method::PATCH, &format!("/directory-sync/{}", dir.id))
            .json(&json!({"organizational_unit_id": unit})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");

    let op = Operator::sign_in(&c.app).await;
    let list = op.get("/dashboard/units").await.body;
    assert!(
        list.contains(&format!("href=\"/dashboard/units/{unit}\"")),
        "{list}"
    );
    assert!(list.contains("google, zoom_enterprise"), "{list}");
    let page_path = format!("/dashboard/units/{unit}");
    let page = op.get(&page_path).await;
    assert_eq!(page.status, StatusCode::OK);
    let body = page.body;
    // Service accounts in link order, with the domain and when they were linked.
    let google = body.find(">google<").expect("google");
    let zoom = body.find(">zoom_enterprise<").expect("zoom");
    assert!(google < zoom, "{body}");
    assert!(
        body.contains("example.com")
            && body.contains(">Revoke access<")
            && body.contains("Linked at")
    );
    // Its directory, and alice's account with her profiles.
    assert!(
        body.contains(&format!("/dashboard/directories/{}", dir.id)),
        "{body}"
    );
    let alice = body
        .split("<tr>")
        .find(|r| r.contains("alice@example.com"))
        .expect("alice")
        .to_string();
    assert!(
        alice.contains(">connected<") && alice.contains("zoom_enterprise"),
        "{alice}"
    );
    assert!(
        alice.contains(">Revoke profile<") && alice.contains(">Relink profile<"),
        "{alice}"
    );
    let account = alice
        .split("/accounts/")
        .nth(1)
        .unwrap()
        .split('/')
        .next()
        .unwrap()
        .to_string();
    assert!(account.starts_with("acc_"), "{account}");

    // Revoke profile: refused without CSRF, then done (not connected, in the admin view).
    let revoke = format!("{page_path}/accounts/{account}/revoke");
    assert_eq!(
        op.post_raw(&revoke, &[]).await.status,
        StatusCode::FORBIDDEN
    );
    let connected =
        |v: &serde_json::Value| v["data"][0]["profiles"][0]["profile_connected"].as_bool();
    let accounts = format!("/organizational_units/{unit}/accounts");
    assert_eq!(
        connected(&send(c.app.admin(Method::GET, &accounts)).await.1),
        Some(true)
    );
    let r = op.post(&revoke, &[]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    assert_eq!(
        connected(&send(c.app.admin(Method::GET, &accounts)).await.1),
        Some(false)
    );
    let alice = op.get(&page_path).await.body;
    assert!(alice.contains(">not connected<"), "{alice}");

    // Relink profile: provisions the email again through the unit.
    let r = op
        .post(&format!("{page_path}/accounts/{account}/relink"), &[])
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let started = Instant::now();
    while connected(&send(c.app.admin(Method::GET, &accounts)).await.1) != Some(true) {
        assert!(started.elapsed() < Duration::from_secs(15), "relinked");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Revoke access of the Zoom account: it leaves the unit.
    let (_, view) = send(
        c.app
            .admin(Method::GET, &format!("/organizational_units/{unit}")),
    )
    .await;
    let zoom_ser = view["data"]["service_accounts"][1]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let revoke_access = format!("{page_path}/service_accounts/{zoom_ser}/revoke");
    assert_eq!(
        op.post_raw(&revoke_access, &[]).await.status,
        StatusCode::FORBIDDEN
    );
    let r = op.post(&revoke_access, &[]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let body = op.get(&page_path).await.body;
    assert!(
        !body.contains(">zoom_enterprise<") || !body.contains(&zoom_ser),
        "{body}"
    );
    let (_, view) = send(
        c.app
            .admin(Method::GET, &format!("/organizational_units/{unit}")),
    )
    .await;
    assert_eq!(
        view["data"]["service_accounts"].as_array().unwrap().len(),
        1,
        "{view}"
    );
    // Another unit's account is not reachable through this unit.
    let r = op
        .post(
            &format!(
                "/dashboard/units/ou_{}/accounts/{account}/relink",
                "0".repeat(26)
            ),
            &[],
        )
        .await;
    assert!(r.status == StatusCode::NOT_FOUND, "{}", r.status);
}

/// Behind https (`SCIMGATE_EXTERNAL_URL`), the session cookie is `Secure`. The cookie's
/// flags do not depend on the database: SQLite alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_session_cookie_is_secure_behind_https() {
    let app = TestApp::start_with(crate::common::Backend::Sqlite, |c| {
        c.external_url = Some("https://gateway.example".into());
    })
    .await
    .expect("sqlite");
    let r = read(
        browser()
            .post(format!("{}/dashboard/login", app.base))
            .form(&[("api_key", API_KEY)]),
    )
    .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let set = r.headers["set-cookie"].to_str().unwrap();
    assert!(
        set.contains("; Secure") && set.contains("SameSite=Strict"),
        "{set}"
    );
}
