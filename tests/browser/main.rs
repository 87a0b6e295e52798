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
mod webdriver;

use std::path::PathBuf;

use reqwest::{Method, StatusCode};
use serde_json::json;

use common::{send, TestApp};
use webdriver::{Driver, Session};

backend_tests!(a_customer_sets_up_through_a_setup_link);

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
