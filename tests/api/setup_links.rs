//! Customer setup links (DESIGN.md §8): the admin API that creates, lists and revokes
//! them, and the page a link opens without a login — scoped to its tenant and product (or
//! unit), with secret rotation through CSRF-checked forms, on both backends.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::backend_tests;
use crate::common::{send, Dir, TestApp};

backend_tests!(
    links_are_created_listed_and_revoked,
    an_expired_link_answers_404,
    the_page_shows_its_tenant_and_product_alone,
    rotation_through_the_page_shows_the_new_secret_once,
    forms_reach_nothing_outside_the_link,
    forms_without_the_links_csrf_token_change_nothing,
    the_page_escapes_what_it_shows,
);

/// Creates a link; returns its id and URL.
async fn link(app: &TestApp, body: Value) -> (String, String) {
    let (status, body) = send(app.admin(Method::POST, "/setup_links").json(&body)).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let data = &body["data"];
    (
        data["id"].as_str().expect("id").to_string(),
        data["url"].as_str().expect("url").to_string(),
    )
}

/// GETs a page: status, body, and its Content-Security-Policy.
async fn page(app: &TestApp, url: &str) -> (StatusCode, String, String) {
    let r = app.client.get(url).send().await.expect("page");
    let status = r.status();
    let csp = r
        .headers()
        .get("content-security-policy")
        .map(|v| v.to_str().unwrap_or("").to_string())
        .unwrap_or_default();
    (status, r.text().await.expect("text"), csp)
}

/// The CSRF token the page's forms carry.
fn csrf(html: &str) -> String {
    let at = html
        .find("name=\"csrf\" value=\"")
        .expect("a form with a csrf field");
    let rest = &html[at + "name=\"csrf\" value=\"".len()..];
    rest[..rest.find('"').expect("end")].to_string()
}

/// POSTs a form of the page.
async fn post(app: &TestApp, url: &str, fields: &[(&str, &str)]) -> (StatusCode, String) {
    let r = app
        .client
        .post(url)
        .form(fields)
        .send()
        .await
        .expect("post");
    (r.status(), r.text().await.expect("text"))
}

/// Whether a SCIM secret opens its directory.
async fn scim_status(app: &TestApp, dir: &Dir, secret: &str) -> StatusCode {
    app.client
        .get(format!("{}/Users", dir.endpoint))
        .bearer_auth(secret)
        .send()
        .await
        .expect("scim")
        .status()
}

/// The secret in the rotation's answer.
fn new_secret(html: &str) -> String {
    let at = html.find("class=\"secret\">").expect("the new secret");
    let rest = &html[at + "class=\"secret\">".len()..];
    rest[..rest.find('<').expect("end")].to_string()
}

async fn links_are_created_listed_and_revoked(app: TestApp) {
    let (id, url) = link(&app, json!({"tenant": "acme", "product": "crm"})).await;
    assert!(id.starts_with("stl_"), "{id}");
    assert!(url.starts_with(&format!("{}/setup/", app.base)), "{url}");
    assert!(!url.contains(&id), "the URL carries a secret, not the id");
    // Stored as a digest: no column of the row holds the secret.
    let secret = url.rsplit('/').next().unwrap().to_string();
    let db = app.db.clone();
    let rows = tokio::task::spawn_blocking(move || {
        let mut c = db.conn().expect("conn");
        scimgate::store::setup_links::list(
            &mut c,
            scimgate::store::Page {
                offset: 0,
                limit: 10,
            },
        )
    })
    .await
    .unwrap()
    .expect("rows");
    assert_eq!(rows.len(), 1);
    assert!(!format!("{:?}", rows[0]).contains(&secret), "{:?}", rows[0]);
    assert_eq!(rows[0].digest, scimgate::secrets::digest(&secret));

    // Default lifetime: three days.
    let (status, list) = send(app.admin(Method::GET, "/setup_links")).await;
    assert_eq!(status, StatusCode::OK, "{list}");
    let items = list["data"].as_array().expect("list");
    assert_eq!(items.len(), 1, "{list}");
    let item = &items[0];
    assert_eq!(item["id"], id.as_str());
    assert_eq!(item["state"], "active");
    assert_eq!(item["tenant"], "acme");
    assert!(
        item.get("url").is_none(),
        "a listed link never shows its URL: {item}"
    );
    let expires = chrono::DateTime::parse_from_rfc3339(item["expires_at"].as_str().unwrap())
        .unwrap()
        .with_timezone(&chrono::Utc);
    let left = expires - chrono::Utc::now();
    assert!(
        left > chrono::Duration::hours(71) && left <= chrono::Duration::hours(72),
        "{left}"
    );

    let (status, _, _) = page(&app, &url).await;
    assert_eq!(status, StatusCode::OK);
    // Paged as the other lists.
    link(&app, json!({"tenant": "acme", "product": "billing"})).await;
    let (_, first) = send(app.admin(Method::GET, "/setup_links?pageLimit=1")).await;
    assert_eq!(first["data"].as_array().unwrap().len(), 1);
    let token = first["pageToken"]
        .as_str()
        .expect("a next page")
        .to_string();
    let (_, second) = send(app.admin(
        Method::GET,
        &format!("/setup_links?pageLimit=1&pageToken={token}"),
    ))
    .await;
    assert_eq!(second["data"][0]["product"], "billing", "{second}");
    let (status, body) = send(app.admin(Method::DELETE, &format!("/setup_links/{id}"))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["state"], "revoked");
    let (status, html, _) = page(&app, &url).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(html.contains("expired or was revoked"), "{html}");
    let (_, list) = send(app.admin(Method::GET, "/setup_links")).await;
    assert_eq!(list["data"][0]["state"], "revoked");

    // Unknown ids, bad bodies, no key.
    for missing in ["stl_0123", "nope"] {
        let (status, _) = send(app.admin(Method::DELETE, &format!("/setup_links/{missing}"))).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }
    for bad in [
        json!({}),
        json!({"tenant": "acme"}),
        json!({"tenant": "acme", "product": "crm", "organizational_unit_id": "ou_1"}),
        json!({"tenant": "", "product": "crm"}),
        json!({"tenant": "acme", "product": "crm", "expires_in": 0}),
        json!({"tenant": "acme", "product": "crm", "expires_in": "soon"}),
        json!({"tenant": "acme", "product": "crm", "extra": 1}),
    ] {
        let (status, body) = send(app.admin(Method::POST, "/setup_links").json(&bad)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad} → {body}");
        assert!(body["error"]["message"].is_string(), "{body}");
    }
    let (status, _) = send(
        app.admin(Method::POST, "/setup_links")
            .json(&json!({"organizational_unit_id": "ou_0123"})),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let r = app
        .client
        .get(format!("{}/api/v1/setup_links", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
}

async fn an_expired_link_answers_404(app: TestApp) {
    let (_, url) = link(
        &app,
        json!({"tenant": "acme", "product": "crm", "expires_in": 1}),
    )
    .await;
    let (status, _, _) = page(&app, &url).await;
    assert_eq!(status, StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (status, html, _) = page(&app, &url).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(html.contains("expired or was revoked"), "{html}");
    let (_, list) = send(app.admin(Method::GET, "/setup_links")).await;
    assert_eq!(list["data"][0]["state"], "expired");
    // A URL no link was made for is the same 404.
    let (status, html, _) = page(&app, &format!("{}/setup/not-a-link", app.base)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(html.contains("expired or was revoked"), "{html}");
}

async fn the_page_shows_its_tenant_and_product_alone(app: TestApp) {
    let mine = app.create_directory("acme", "crm").await;
    let second = app.create_directory("acme", "crm").await;
    let other_product = app.create_directory("acme", "billing").await;
    let other_tenant = app.create_directory("globex", "crm").await;
    app.create_user(&mine, "ada@acme.example").await;
    app.create_user(&mine, "bob@acme.example").await;
    let (_, url) = link(&app, json!({"tenant": "acme", "product": "crm"})).await;

    let (status, html, csp) = page(&app, &url).await;
    assert_eq!(status, StatusCode::OK);
    assert!(csp.contains("default-src 'none'"), "{csp}");
    assert!(html.contains(&mine.endpoint) && html.contains(&second.endpoint));
    for outside in [&other_product, &other_tenant] {
        assert!(!html.contains(&outside.id), "{} leaked", outside.id);
    }
    for d in [&mine, &second, &other_product, &other_tenant] {
        assert!(!html.contains(&d.secret), "a SCIM secret is never shown");
    }
    // Sync state: two users, no group, a last change.
    assert!(html.contains("<strong>2</strong> users"), "{html}");
    assert!(html.contains("<strong>0</strong> groups"), "{html}");
    assert!(html.contains("last change <time datetime=\""), "{html}");
    for idp in [
        "Okta",
        "Entra ID",
        "JumpCloud",
        "OneLogin",
        "Google Workspace",
    ] {
        assert!(html.contains(idp), "{idp} set-up");
    }
    assert!(html.contains("Rotate SCIM secret"));
    // Reading the page changes nothing: both secrets still work.
    assert_eq!(scim_status(&app, &mine, &mine.secret).await, StatusCode::OK);

    // A link of a tenant without directories says so.
    let (_, empty) = link(&app, json!({"tenant": "initech", "product": "crm"})).await;
    let (status, html, _) = page(&app, &empty).await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("No directory has been created for you yet"));
}

async fn rotation_through_the_page_shows_the_new_secret_once(app: TestApp) {
    let dir = app.create_directory("acme", "crm").await;
    let (_, url) = link(&app, json!({"tenant": "acme", "product": "crm"})).await;
    let (_, html, _) = page(&app, &url).await;
    let token = csrf(&html);

    // With the default grace both secrets work for a while.
    let rotate = format!("{url}/directories/{}/rotate-secret", dir.id);
    let (status, answer) = post(&app, &rotate, &[("csrf", &token)]).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let graced = new_secret(&answer);
    assert_ne!(graced, dir.secret);
    assert_eq!(scim_status(&app, &dir, &graced).await, StatusCode::OK);
    assert_eq!(scim_status(&app, &dir, &dir.secret).await, StatusCode::OK);

    // Grace 0: the old secret stops at once, the new one works.
    let (status, answer) = post(
        &app,
        &rotate,
        &[("csrf", &token), ("grace_period_seconds", "0")],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let fresh = new_secret(&answer);
    assert_eq!(scim_status(&app, &dir, &fresh).await, StatusCode::OK);
    assert_eq!(
        scim_status(&app, &dir, &graced).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        scim_status(&app, &dir, &dir.secret).await,
        StatusCode::UNAUTHORIZED
    );
    // Shown once: the page read again has no secret.
    let (_, again, _) = page(&app, &url).await;
    assert!(!again.contains(&fresh) && !again.contains(&graced));

    // A bad grace period is refused and rotates nothing.
    let (status, _) = post(
        &app,
        &rotate,
        &[("csrf", &token), ("grace_period_seconds", "forever")],
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(scim_status(&app, &dir, &fresh).await, StatusCode::OK);
}

async fn forms_reach_nothing_outside_the_link(app: TestApp) {
    let mine = app.create_directory("acme", "crm").await;
    let other_product = app.create_directory("acme", "billing").await;
    let other_tenant = app.create_directory("globex", "crm").await;
    let (_, url) = link(&app, json!({"tenant": "acme", "product": "crm"})).await;
    let (_, html, _) = page(&app, &url).await;
    let token = csrf(&html);

    for outside in [&other_product, &other_tenant] {
        let (status, answer) = post(
            &app,
            &format!("{url}/directories/{}/rotate-secret", outside.id),
            &[("csrf", &token), ("grace_period_seconds", "0")],
        )
        .await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{answer}");
        assert!(!answer.contains(&outside.endpoint));
        assert_eq!(
            scim_status(&app, outside, &outside.secret).await,
            StatusCode::OK,
            "unchanged"
        );
    }
    for bogus in ["not-a-uuid", "00000000-0000-4000-8000-000000000000"] {
        let (status, _) = post(
            &app,
            &format!("{url}/directories/{bogus}/rotate-secret"),
            &[("csrf", &token)],
        )
        .await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }
    // A tenant's link has no profiles to revoke or relink.
    for action in ["revoke", "relink"] {
        let (status, _) = post(
            &app,
            &format!("{url}/accounts/acc_0123/{action}"),
            &[("csrf", &token)],
        )
        .await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }
    // Another tenant's link, with its own token, reaches only its own directory.
    let (_, globex) = link(&app, json!({"tenant": "globex", "product": "crm"})).await;
    let (_, globex_html, _) = page(&app, &globex).await;
    assert!(globex_html.contains(&other_tenant.endpoint));
    assert!(!globex_html.contains(&mine.id));
    let (status, _) = post(
        &app,
        &format!("{globex}/directories/{}/rotate-secret", mine.id),
        &[("csrf", &csrf(&globex_html)), ("grace_period_seconds", "0")],
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(scim_status(&app, &mine, &mine.secret).await, StatusCode::OK);
    // A GET on a form's address changes nothing.
    let (status, _, _) = page(
        &app,
        &format!("{url}/directories/{}/rotate-secret", mine.id),
    )
    .await;
    assert!(status.is_client_error(), "{status}");
    assert_eq!(scim_status(&app, &mine, &mine.secret).await, StatusCode::OK);
}

async fn forms_without_the_links_csrf_token_change_nothing(app: TestApp) {
    let dir = app.create_directory("acme", "crm").await;
    let (_, url) = link(&app, json!({"tenant": "acme", "product": "crm"})).await;
    let (_, other) = link(&app, json!({"tenant": "acme", "product": "crm"})).await;
    let (_, other_html, _) = page(&app, &other).await;
    let rotate = format!("{url}/directories/{}/rotate-secret", dir.id);
    let others_token = csrf(&other_html);
    for fields in [
        vec![("grace_period_seconds", "0")],
        vec![("csrf", ""), ("grace_period_seconds", "0")],
        vec![("csrf", "0123abcd"), ("grace_period_seconds", "0")],
        // Another link's token, for the same directory.
        vec![
            ("csrf", others_token.as_str()),
            ("grace_period_seconds", "0"),
        ],
    ] {
        let (status, html) = post(&app, &rotate, &fields).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{fields:?}");
        assert!(html.contains("not valid for this setup link"), "{html}");
        assert_eq!(scim_status(&app, &dir, &dir.secret).await, StatusCode::OK);
    }
    // A revoked link's forms are 404, whatever token they carry.
    let (_, html, _) = page(&app, &url).await;
    let token = csrf(&html);
    let id = send(app.admin(Method::GET, "/setup_links")).await.1["data"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    send(app.admin(Method::DELETE, &format!("/setup_links/{id}"))).await;
    let (status, _) = post(
        &app,
        &rotate,
        &[("csrf", &token), ("grace_period_seconds", "0")],
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(scim_status(&app, &dir, &dir.secret).await, StatusCode::OK);
}

async fn the_page_escapes_what_it_shows(app: TestApp) {
    let tenant = "<b>acme</b>&\"";
    let dir = app
        .create_directory_with(json!({
            "tenant": tenant, "product": "crm", "name": "<script>alert('x')</script>",
        }))
        .await;
    let (_, url) = link(&app, json!({"tenant": tenant, "product": "crm"})).await;
    let (status, html, _) = page(&app, &url).await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains(&dir.endpoint));
    assert!(!html.contains("<script>"), "{html}");
    assert!(!html.contains("<b>acme"), "{html}");
    assert!(
        html.contains("&lt;script&gt;alert('x')&lt;/script&gt;"),
        "{html}"
    );
    assert!(
        html.contains("&lt;b&gt;acme&lt;/b&gt;&amp;&quot;"),
        "{html}"
    );
}

/// A unit's link: its directories and its linked profiles, with revoke and relink; the
/// profiles of another unit stay out of reach.
mod unit {
    use std::time::Duration;

    use reqwest::{Method, StatusCode};
    use serde_json::{json, Value};

    use super::{csrf, link, page, post};
    use crate::common::{send, Dir};
    use crate::enterprise_connect::Connect;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite() {
        let c = Connect::start(crate::common::Backend::Sqlite)
            .await
            .expect("sqlite");
        a_units_page_revokes_and_relinks_its_profiles(c).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        if let Some(c) = Connect::start(crate::common::Backend::Postgres).await {
            a_units_page_revokes_and_relinks_its_profiles(c).await;
        }
    }

    /// A unit of a new application (Google for calendars, Zoom for conferencing) with a
    /// directory attached whose user `email` is provisioned: the unit and the directory.
    async fn unit_with(c: &Connect, tenant: &str, email: &str) -> (String, Dir) {
        let unit = c
            .google_unit("http://127.0.0.1:9/setup", "zoom_enterprise")
            .await
            .unit;
        let dir = c.app.create_directory(tenant, "cal").await;
        let (status, body) = send(
            c.app
                .admin(Method::PATCH, &format!("/directory-sync/{}", dir.id))
                .json(&json!({"organizational_unit_id": unit})),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        c.app.create_user(&dir, email).await;
        wait_state(c, &unit, email, "active").await;
        (unit, dir)
    }

    /// The unit's account of `email` once it is in `state`.
    async fn wait_state(c: &Connect, unit: &str, email: &str, state: &str) -> Value {
        let started = std::time::Instant::now();
        loop {
            let (_, body) = send(c.app.admin(
                Method::GET,
                &format!("/organizational_units/{unit}/accounts"),
            ))
            .await;
            if let Some(a) = body["data"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|a| a["email"] == email && a["state"] == state)
            {
                return a.clone();
            }
            assert!(started.elapsed() < Duration::from_secs(20), "{body}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// A second unit of the same application, written straight into the database, with
    /// one active account: `units::relink` alone would accept its account for any unit
    /// of that application, the link must not.
    fn another_unit(c: &Connect, unit: &str) -> String {
        use diesel::connection::SimpleConnection;
        let mut conn = c.app.db.conn().expect("conn");
        let app = scimgate::store::organizational_units::get(&mut conn, unit)
            .expect("unit")
            .expect("unit")
            .application_id;
        let t = "2026-11-30 00:00:00";
        conn.batch_execute(&format!(
            "INSERT INTO organizational_units (id, application_id, created_at) VALUES ('ou_other1', '{app}', '{t}');
             INSERT INTO service_accounts (id, application_id, provider, domain, scope, delegated_scope,
                 organizational_unit_id, state, created_at, capability, link_position)
             VALUES ('ser_other1', '{app}', 'google', 'globex.example', 's', 'd', 'ou_other1', 'active', '{t}', 'calendars', 1);
             INSERT INTO accounts (id, application_id, email, service_account_id, provider, profile_id,
                 profile_name, scope, state, created_at, updated_at)
             VALUES ('acc_other1', '{app}', 'erin@globex.example', 'ser_other1', 'google', 'pro_other1',
                 'erin@globex.example', 's', 'active', '{t}', '{t}');"
        ))
        .expect("insert");
        "acc_other1".into()
    }

    async fn a_units_page_revokes_and_relinks_its_profiles(c: Connect) {
        let (unit, dir) = unit_with(&c, "acme", "alice@example.com").await;
        let other_dir = c.app.create_directory("globex", "cal").await;
        let other_account = another_unit(&c, &unit);
        let alice = wait_state(&c, &unit, "alice@example.com", "active").await;
        let alice_id = alice["account_id"].as_str().unwrap().to_string();

        let (_, url) = link(&c.app, json!({"organizational_unit_id": unit})).await;
        let (status, html, _) = page(&c.app, &url).await;
        assert_eq!(status, StatusCode::OK);
        assert!(html.contains(&dir.endpoint), "the unit's directory");
        assert!(html.contains("alice@example.com") && html.contains("zoom_enterprise"));
        assert!(!html.contains("erin@globex.example") && !html.contains(&other_dir.id));
        assert!(html.contains("Revoke profile") && html.contains("Relink profile"));
        // Found by email (a GET form, `q`); another unit's email finds nothing.
        let (_, found, _) = page(&c.app, &format!("{url}?q=alice@example.com")).await;
        assert!(found.contains(&alice_id));
        let (_, none, _) = page(&c.app, &format!("{url}?q=erin@globex.example")).await;
        assert!(none.contains("No profile with that email.") && !none.contains(&other_account));
        let token = csrf(&html);

        // Another unit's profile: 404, untouched.
        for action in ["revoke", "relink"] {
            let (status, _) = post(
                &c.app,
                &format!("{url}/accounts/{other_account}/{action}"),
                &[("csrf", &token)],
            )
            .await;
            assert_eq!(status, StatusCode::NOT_FOUND, "{action}");
        }
        wait_state(&c, "ou_other1", "erin@globex.example", "active").await;
        // Without the token: refused, untouched.
        let (status, _) = post(&c.app, &format!("{url}/accounts/{alice_id}/revoke"), &[]).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        wait_state(&c, &unit, "alice@example.com", "active").await;

        let (status, answer) = post(
            &c.app,
            &format!("{url}/accounts/{alice_id}/revoke"),
            &[("csrf", &token)],
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        assert!(answer.contains("The profile was revoked."));
        let revoked = wait_state(&c, &unit, "alice@example.com", "revoked").await;
        assert_eq!(revoked["profiles"][0]["profile_connected"], false);

        let (status, answer) = post(
            &c.app,
            &format!("{url}/accounts/{alice_id}/relink"),
            &[("csrf", &token)],
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        let relinked = wait_state(&c, &unit, "alice@example.com", "active").await;
        assert_eq!(relinked["account_id"], alice_id.as_str());
        assert_eq!(relinked["profiles"][0]["profile_connected"], true);
    }
}
