//! The main journeys in a real browser (issue 14): headless Chromium from Debian's
//! `chromium` and `chromium-driver` packages, driven over WebDriver, against a gateway on
//! 127.0.0.1 over SQLite and PostgreSQL. Screenshots of the pages go to
//! `target/tmp/screenshots/` (not committed) for a reviewer to look at.
//!
//! Without Chromium installed the journeys are skipped with a note, so `cargo test` needs
//! nothing but a Rust toolchain; `.ci/run` installs both packages and sets
//! `SCIMGATE_TEST_BROWSER`, which turns a missing browser into a failure.

#[path = "../api/common.rs"]
#[allow(dead_code)]
mod common;
#[path = "../api/receiver.rs"]
#[allow(dead_code)]
mod receiver;
mod webdriver;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::json;

use common::{send, TestApp, API_KEY};
use receiver::{Receiver, Reply};
use webdriver::{Driver, Session};

backend_tests!(
    an_operator_works_through_the_dashboard,
    a_customer_sets_up_through_a_setup_link
);

/// A browser session, or `None` (skipped) where Chromium is not installed.
async fn browser() -> Option<(Driver, Session)> {
    let Some((chromium, driver)) = webdriver::installed() else {
        assert!(
            std::env::var_os("SCIMGATE_TEST_BROWSER").is_none(),
            "SCIMGATE_TEST_BROWSER is set but chromium and chromedriver are not installed"
        );
        eprintln!("browser journeys skipped: install Debian's chromium and chromium-driver");
        return None;
    };
    let d = Driver::start(&driver).await;
    let s = d.session(&chromium).await;
    Some((d, s))
}

fn screenshot_path(backend: &str, name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join("screenshots")
        .join(format!("{backend}-{name}.png"))
}

fn backend_of(app: &TestApp) -> &'static str {
    match app.db.backend() {
        scimgate::store::Backend::Sqlite => "sqlite",
        scimgate::store::Backend::Postgres => "postgres",
    }
}

/// A customer's IT admin opens the setup link: sees only their tenant's directory and
/// its SCIM endpoint, the set-up steps per identity provider, rotates the SCIM secret
/// (shown once, working at once over SCIM), and the link once revoked is a 404 page.
async fn a_customer_sets_up_through_a_setup_link(app: TestApp) {
    let Some((_driver, web)) = browser().await else {
        return;
    };
    let backend = backend_of(&app);
    let dir = app.create_directory("acme", "portal").await;
    let other = app.create_directory("globex", "portal").await;
    let (status, body) = send(
        app.admin(Method::POST, "/setup_links")
            .json(&json!({"tenant": "acme", "product": "portal"})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let url = body["data"]["url"].as_str().unwrap().to_string();
    let link_id = body["data"]["id"].as_str().unwrap().to_string();

    web.goto(&url).await;
    let text = web.text().await;
    let endpoint = web.find("code.endpoint").await.text().await;
    assert!(
        endpoint.ends_with(&format!("/api/scim/v2.0/{}", dir.id)),
        "{endpoint}"
    );
    assert!(
        !web.source().await.contains(&other.id),
        "another tenant's directory shown"
    );
    for idp in [
        "Okta",
        "Entra ID",
        "JumpCloud",
        "OneLogin",
        "Google Workspace",
    ] {
        assert!(text.contains(idp), "no set-up for {idp}");
    }
    web.screenshot(&screenshot_path(backend, "setup-link"))
        .await;

    // Rotate, ending the old secret now.
    web.find(&format!("#grace-{}", dir.id))
        .await
        .type_text("0")
        .await;
    web.find_text("button", "Rotate SCIM secret")
        .await
        .click()
        .await;
    let secret = web.find("code.secret").await.text().await;
    assert!(!secret.is_empty() && secret != dir.secret);
    web.screenshot(&screenshot_path(backend, "setup-link-rotated"))
        .await;
    let users = |token: String| {
        app.client
            .get(format!("{}/Users", dir.endpoint))
            .bearer_auth(token)
            .send()
    };
    assert_eq!(
        users(secret.clone()).await.unwrap().status(),
        StatusCode::OK
    );
    assert_eq!(
        users(dir.secret.clone()).await.unwrap().status(),
        StatusCode::UNAUTHORIZED
    );
    // Shown once: the page again carries no secret.
    web.goto(&url).await;
    assert!(
        !web.source().await.contains(&secret),
        "the secret shown twice"
    );
    assert_eq!(web.console_errors().await, Vec::<String>::new());

    let (status, _) = send(app.admin(Method::DELETE, &format!("/setup_links/{link_id}"))).await;
    assert_eq!(status, StatusCode::OK);
    web.goto(&url).await;
    assert!(
        web.text().await.to_lowercase().contains("not found"),
        "{}",
        web.text().await
    );
    web.close().await;
}

/// Waits until the page at `url`, loaded again and again, shows `text`.
async fn until_shown(web: &Session, url: &str, text: &str) {
    let started = Instant::now();
    loop {
        web.goto(url).await;
        if web.text().await.contains(text) {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{url} never showed {text:?}: {}",
            web.text().await
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// An operator signs in, creates a directory (its SCIM endpoint and secret shown once,
/// copied with the Copy control), sees users pushed over SCIM appear, sees deliveries to
/// a failing endpoint fail and replays them once it recovers, rotates the SCIM secret,
/// and signs out.
async fn an_operator_works_through_the_dashboard(app: TestApp) {
    let Some((_driver, web)) = browser().await else {
        return;
    };
    let backend = backend_of(&app);
    let healthy = Arc::new(AtomicBool::new(false));
    let up = healthy.clone();
    let rx = Receiver::start(move |_, _| {
        if up.load(Ordering::SeqCst) {
            Reply::status(200)
        } else {
            Reply::status(500)
        }
    })
    .await;

    // Signed out: the login page, which a wrong key does not pass.
    web.goto(&format!("{}/dashboard/directories", app.base))
        .await;
    web.wait_for_path("/dashboard/login").await;
    web.find("#api_key").await.type_text("wrong").await;
    web.find_text("button", "Sign in").await.click().await;
    let refused = web.find("p[role=alert]").await.text().await;
    assert!(refused.contains("not an admin API key"), "{refused}");
    // The refused sign-in's 401 is the one console message expected.
    for message in web.console_errors().await {
        assert!(message.contains("401"), "{message}");
    }
    web.find("#api_key").await.type_text(API_KEY).await;
    web.find_text("button", "Sign in").await.click().await;
    // Back where the login was asked for.
    web.wait_for_path("/dashboard/directories").await;
    web.goto(&format!("{}/dashboard", app.base)).await;
    web.screenshot(&screenshot_path(backend, "dashboard-home"))
        .await;

    // Create a directory.
    web.goto(&format!("{}/dashboard/directories/new", app.base))
        .await;
    web.find("#name").await.type_text("Acme <Okta>").await;
    web.find("#tenant").await.type_text("acme").await;
    web.find("#product").await.type_text("portal").await;
    web.find("#webhook_url").await.type_text(&rx.url).await;
    web.find_text("button", "Create directory")
        .await
        .click()
        .await;
    let endpoint = web.find("#scim-endpoint").await.text().await;
    let secret = web.find("#scim-secret").await.text().await;
    assert!(endpoint.contains("/api/scim/v2.0/"), "{endpoint}");
    web.find("button[data-copy='scim-secret']")
        .await
        .click()
        .await;
    web.screenshot(&screenshot_path(backend, "dashboard-created"))
        .await;
    let id = endpoint.rsplit('/').next().unwrap().to_string();
    let page = format!("{}/dashboard/directories/{id}", app.base);

    // Users pushed over SCIM appear.
    for name in ["ada@acme.example", "grace@acme.example"] {
        let r = app
            .client
            .post(format!("{endpoint}/Users"))
            .bearer_auth(&secret)
            .header("Content-Type", "application/scim+json")
            .json(&common::user(name))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::CREATED);
    }
    until_shown(&web, &page, "grace@acme.example").await;
    assert!(web.text().await.contains("ada@acme.example"));
    web.screenshot(&screenshot_path(backend, "dashboard-users"))
        .await;
    web.goto(&format!("{page}/events")).await;
    assert!(web.text().await.contains("user.created"));

    // The endpoint answers 500: its deliveries fail, with the status shown. Once it is
    // healthy again, Replay sends them.
    let hooks = format!("{page}/webhooks");
    until_shown(&web, &hooks, "500").await;
    web.screenshot(&screenshot_path(backend, "dashboard-webhooks"))
        .await;
    healthy.store(true, Ordering::SeqCst);
    // Everything since long ago (given up deliveries included). The field is a
    // datetime-local control, whose typing differs by locale: its value is set directly.
    web.execute(
        "document.querySelector('input[name=since]').value = arguments[0];",
        json!(["2000-01-01T00:00"]),
    )
    .await;
    web.find_text("button", "Replay").await.click().await;
    let notice = web.find("p.box[role=status]").await.text().await;
    assert!(notice.contains("due now"), "{notice}");
    rx.wait_until(Duration::from_secs(20), |e| {
        let created: std::collections::HashSet<String> = e
            .iter()
            .filter(|e| e["event"] == "user.created")
            .map(|e| e["sequence"].to_string())
            .collect();
        created.len() == 2
    })
    .await;

    // Rotate the SCIM secret, ending the old one now.
    web.goto(&format!("{page}/settings")).await;
    web.find("#grace_period_seconds").await.type_text("0").await;
    web.find_text("button", "Rotate SCIM secret")
        .await
        .click()
        .await;
    let rotated = web.find("#scim-secret").await.text().await;
    assert_ne!(rotated, secret);
    let users = |token: String| {
        app.client
            .get(format!("{endpoint}/Users"))
            .bearer_auth(token)
            .send()
    };
    assert_eq!(users(rotated).await.unwrap().status(), StatusCode::OK);
    assert_eq!(
        users(secret).await.unwrap().status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(web.console_errors().await, Vec::<String>::new());

    // Sign out: the pages ask for the key again.
    web.find_text("button", "Log out").await.click().await;
    web.wait_for_path("/dashboard/login").await;
    web.goto(&page).await;
    web.wait_for_path("/dashboard/login").await;
    web.close().await;
}
