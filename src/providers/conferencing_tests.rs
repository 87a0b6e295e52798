//! The conferencing connectors against the fakes of `crate::devproviders`, over real HTTP
//! on 127.0.0.1: the admin's sign-in link, the code, its exchange, lookups, refreshes and
//! the errors a worker must tell apart.

use std::time::Duration;

use super::conferencing::{Conferencing, ConferencingUser};
use super::indeed::Indeed;
use super::webex::Webex;
use super::zoom::Zoom;
use super::ProviderError;
use crate::devproviders::DevProviders;
use crate::outbound;
use crate::secrets::Secret;

const REDIRECT: &str = "https://gw.example/callback?x=1";

fn client() -> outbound::Client {
    outbound::client(&outbound::Settings {
        timeout: Duration::from_secs(10),
        allow_private: true,
    })
    .unwrap()
}

async fn fakes() -> DevProviders {
    let fakes = DevProviders::start("127.0.0.1:0").await.unwrap();
    fakes.seed_demo().unwrap();
    fakes
}

fn zoom(fakes: &DevProviders, secret: Option<&str>) -> Zoom {
    let (id, real) = fakes.zoom_client();
    Zoom::new(
        client(),
        &id,
        Secret::new(secret.unwrap_or(&real).to_string()),
        &fakes.zoom_oauth_url(),
        &fakes.zoom_api_url(),
    )
}

fn webex(fakes: &DevProviders, secret: Option<&str>) -> Webex {
    let (id, real) = fakes.webex_client();
    Webex::new(
        client(),
        &id,
        Secret::new(secret.unwrap_or(&real).to_string()),
        &fakes.webex_api_url(),
    )
}

fn indeed(fakes: &DevProviders, secret: Option<&str>) -> Indeed {
    let (id, real) = fakes.indeed_client();
    Indeed::new(
        client(),
        &id,
        Secret::new(secret.unwrap_or(&real).to_string()),
        &fakes.indeed_authorize_url(),
        &fakes.indeed_token_url(),
        &fakes.indeed_lookup_url(),
    )
}

/// The query of a redirect's `Location`, after checking it goes back to [`REDIRECT`].
fn redirect_query(response: &outbound::Response) -> Vec<(String, String)> {
    assert_eq!(response.status(), 302);
    let location = outbound::Url::parse(response.headers()["location"].to_str().unwrap()).unwrap();
    assert_eq!(location.path(), "/callback");
    location.query_pairs().into_owned().collect()
}

/// What a browser does: open the authorize URL, follow the link of `account` (or the
/// decline link), and return the query the provider redirected back with.
async fn sign_in(
    fakes: &DevProviders,
    authorize_url: &str,
    account: Option<&str>,
) -> Vec<(String, String)> {
    let http = client();
    let page = http.get(authorize_url).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let page = page.text().await.unwrap();
    let anchor = match account {
        Some(account) => format!(r#"class="authorize" data-account="{account}" href=""#),
        None => r#"class="decline" href=""#.to_string(),
    };
    let start = page
        .find(&anchor)
        .unwrap_or_else(|| panic!("{anchor} in {page}"))
        + anchor.len();
    let href = page[start..start + page[start..].find('"').unwrap()].replace("&amp;", "&");
    let response = http
        .get(format!("http://{}{href}", fakes.addr))
        .send()
        .await
        .unwrap();
    redirect_query(&response)
}

/// The code of a redirect back, after checking the rest of the query.
fn code_of(query: &[(String, String)], state: &str) -> String {
    assert_eq!(query[0], ("x".to_string(), "1".to_string()));
    assert_eq!(query[1].0, "code");
    assert_eq!(query[2], ("state".to_string(), state.to_string()));
    query[1].1.clone()
}

fn refused(result: Result<impl std::fmt::Debug, ProviderError>, needle: &str) {
    match result {
        Err(ProviderError::Refused(m)) => assert!(m.contains(needle), "{m}"),
        other => panic!("expected Refused with {needle:?}, got {other:?}"),
    }
}

fn unavailable_after(result: Result<impl std::fmt::Debug, ProviderError>, secs: u64) -> String {
    match result {
        Err(ProviderError::Unavailable {
            message,
            retry_after,
        }) => {
            assert_eq!(retry_after, Some(Duration::from_secs(secs)), "{message}");
            message
        }
        other => panic!("expected Unavailable, got {other:?}"),
    }
}

#[tokio::test]
async fn zoom_authorization_lookups_and_single_use_refresh_tokens() {
    let fakes = fakes().await;
    let z = zoom(&fakes, None);
    assert_eq!(z.client_id(), fakes.zoom_client().0);
    let url = z.authorize_url(REDIRECT, "st&ate");
    assert!(url.starts_with(&format!(
        "{}/oauth/authorize?response_type=code&client_id=",
        fakes.zoom_oauth_url()
    )));

    let code = code_of(&sign_in(&fakes, &url, Some("zacc_demo")).await, "st&ate");
    let tokens = z.exchange_code(&code, REDIRECT).await.unwrap();
    assert_eq!(
        tokens.scope.as_deref(),
        Some("user:read:admin meeting:write:admin")
    );
    assert!(tokens.expires_at > chrono::Utc::now() + chrono::Duration::minutes(55));
    let access = tokens.access_token.expose().to_string();
    // Codes are single use.
    refused(
        z.exchange_code(&code, REDIRECT).await,
        "invalid_grant: Invalid authorization code",
    );

    let me = z.me(&access).await.unwrap();
    assert_eq!(me.account_id, "zacc_demo");
    assert_eq!(me.admin.email, "alice@example.com");
    let carol = z
        .user(&access, "Carol@contoso.example")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(carol.email, "carol@contoso.example");
    assert_eq!(carol.name.as_deref(), Some("Carol User"));
    assert_eq!(carol.id.len(), 22);
    // Pending users and strangers (404, code 1001) are not here.
    assert_eq!(z.user(&access, "bob@example.com").await.unwrap(), None);
    assert_eq!(z.user(&access, "nobody@example.com").await.unwrap(), None);
    refused(
        z.user(&access, "not-an-email").await,
        "not an email address",
    );

    // A refresh rotates the refresh token; the used one is spent.
    let old = tokens.refresh_token.unwrap();
    let fresh = z.refresh(old.expose()).await.unwrap();
    let new = fresh.refresh_token.clone().unwrap();
    assert_ne!(new.expose(), old.expose());
    refused(
        z.refresh(old.expose()).await,
        "invalid_grant: Invalid Token!",
    );
    let again = z.refresh(new.expose()).await.unwrap();

    // Expired tokens are 401 (code 124): refresh and retry.
    fakes.state.expire_tokens();
    let err = z
        .user(again.access_token.expose(), "carol@contoso.example")
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ProviderError::Unauthorized(m) if m.contains("124: Invalid access token.")),
        "{err}"
    );
    assert!(!err.to_string().contains(again.access_token.expose()));
    let after = z
        .refresh(again.refresh_token.unwrap().expose())
        .await
        .unwrap();
    let access = after.access_token.expose().to_string();
    assert!(z
        .user(&access, "carol@contoso.example")
        .await
        .unwrap()
        .is_some());

    fakes.state.fail_next("zoom/api", 429, 1, Some(7));
    let message = unavailable_after(z.user(&access, "carol@contoso.example").await, 7);
    assert!(message.contains("per-second rate limit"), "{message}");
    fakes.state.fail_next("zoom/api", 503, 1, None);
    assert!(z
        .user(&access, "carol@contoso.example")
        .await
        .unwrap_err()
        .is_retryable());
    fakes.state.fail_next("zoom/token", 429, 1, Some(3));
    unavailable_after(z.refresh(after.refresh_token.unwrap().expose()).await, 3);

    // A wrong client secret is refused, without repeating it.
    let code = code_of(&sign_in(&fakes, &url, Some("zacc_demo")).await, "st&ate");
    let err = zoom(&fakes, Some("wrong-secret"))
        .exchange_code(&code, REDIRECT)
        .await;
    let message = format!("{err:?}");
    refused(err, "invalid_client: Invalid client_id or client_secret");
    assert!(!message.contains("wrong-secret"));
    // The client is checked first: the code is still good, but only with its redirect_uri.
    refused(
        z.exchange_code(&code, "https://gw.example/other").await,
        "Invalid redirect uri",
    );
    refused(
        z.exchange_code(&code, REDIRECT).await,
        "Invalid authorization code",
    );

    assert_eq!(fakes.state.requests("zoom/api"), 8);
    assert_eq!(fakes.state.requests("zoom/oauth"), 4);
    fakes.stop().await;
}

#[tokio::test]
async fn the_sign_in_pages_decline_and_refuse_strangers() {
    let fakes = fakes().await;
    let z = zoom(&fakes, None);
    let url = z.authorize_url(REDIRECT, "s1");
    let query = sign_in(&fakes, &url, None).await;
    let pair = |k: &str, v: &str| (k.to_string(), v.to_string());
    assert_eq!(
        query,
        [
            pair("x", "1"),
            pair("error", "access_denied"),
            pair("state", "s1")
        ]
    );

    let http = client();
    let status = |url: String| {
        let http = http.clone();
        async move { http.get(url).send().await.unwrap().status().as_u16() }
    };
    assert_eq!(status(url.replace("client_id=", "client_id=x")).await, 400);
    assert_eq!(
        status(url.replace("response_type=code", "response_type=token")).await,
        400
    );
    // Webex wants a scope; the connector always sends one.
    let w = webex(&fakes, None).authorize_url(REDIRECT, "s2");
    assert!(w.contains("&scope=spark%3Apeople_read+spark%3Akms"), "{w}");
    assert_eq!(status(w.clone()).await, 200);
    assert_eq!(status(w.replace("&scope=", "&nothing=")).await, 400);
    // An account that does not exist gets no code.
    assert_eq!(
        status(format!(
            "http://{}/zoom/oauth/_authorize?account=nope&redirect_uri=https%3A%2F%2Fgw.example%2Fcb",
            fakes.addr
        ))
        .await,
        400
    );
    fakes.state.fail_next("indeed/oauth", 503, 1, None);
    assert_eq!(
        status(indeed(&fakes, None).authorize_url(REDIRECT, "s3")).await,
        503
    );
    fakes.stop().await;
}

#[tokio::test]
async fn webex_authorization_and_people() {
    let fakes = fakes().await;
    let w = webex(&fakes, None);
    let url = w.authorize_url(REDIRECT, "s");
    let code = code_of(&sign_in(&fakes, &url, Some("org_demo")).await, "s");
    let tokens = w.exchange_code(&code, REDIRECT).await.unwrap();
    assert_eq!(tokens.scope.as_deref(), Some("spark:people_read spark:kms"));
    assert!(tokens.expires_at > chrono::Utc::now() + chrono::Duration::days(13));
    let access = tokens.access_token.expose().to_string();

    let me = w.me(&access).await.unwrap();
    assert_eq!(
        (me.account_id.as_str(), me.admin.email.as_str()),
        ("org_demo", "alice@example.com")
    );
    let dave = w
        .user(&access, "dave@contoso.example")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(dave.name.as_deref(), Some("Dave User"));
    assert!(
        dave.id.starts_with("Y2lzY29zcGFyazovL3VzL1BFT1BMRS"),
        "{}",
        dave.id
    );
    // Not in this organization (carol is a Zoom and Indeed user only): empty items.
    assert_eq!(
        w.user(&access, "carol@contoso.example").await.unwrap(),
        None
    );

    // Webex keeps the refresh token: the answer carries the same one.
    let refresh = tokens.refresh_token.unwrap();
    let fresh = w.refresh(refresh.expose()).await.unwrap();
    assert_eq!(fresh.refresh_token.unwrap().expose(), refresh.expose());
    assert_ne!(fresh.access_token.expose(), access);

    fakes.state.expire_tokens();
    let err = w.user(&access, "dave@contoso.example").await.unwrap_err();
    assert!(
        matches!(&err, ProviderError::Unauthorized(m) if m.contains("valid access token") && m.contains("trackingId ROUTER_")),
        "{err}"
    );
    let access = w.refresh(refresh.expose()).await.unwrap().access_token;
    fakes.state.fail_next("webex/api", 429, 1, Some(5));
    let message = unavailable_after(w.user(access.expose(), "dave@contoso.example").await, 5);
    assert!(message.contains("Too Many Requests"), "{message}");
    assert!(w
        .user(access.expose(), "dave@contoso.example")
        .await
        .unwrap()
        .is_some());

    refused(
        webex(&fakes, Some("nope")).refresh(refresh.expose()).await,
        "Invalid client_id or client_secret",
    );
    refused(
        w.refresh("unknown").await,
        "refresh token provided is invalid",
    );
    fakes.state.fail_next("webex/token", 502, 1, None);
    assert!(w
        .refresh(refresh.expose())
        .await
        .unwrap_err()
        .is_retryable());
    fakes.stop().await;
}

#[tokio::test]
async fn indeed_as_a_generic_oauth_provider() {
    let fakes = fakes().await;
    let i = Conferencing::Indeed(indeed(&fakes, None));
    assert_eq!(i.name(), "indeed");
    let url = i.authorize_url(REDIRECT, "s");
    assert!(url.starts_with(&format!(
        "{}?response_type=code",
        fakes.indeed_authorize_url()
    )));
    let code = code_of(&sign_in(&fakes, &url, Some("emp_demo")).await, "s");
    let tokens = i.exchange_code(&code, REDIRECT).await.unwrap();
    let access = tokens.access_token.expose().to_string();
    assert_eq!(i.me(&access).await.unwrap(), None);

    let carol = i
        .user(&access, "carol@contoso.example")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        carol,
        ConferencingUser {
            id: carol.id.clone(),
            email: "carol@contoso.example".into(),
            name: Some("Carol User".into()),
        }
    );
    assert_eq!(i.user(&access, "alice@example.com").await.unwrap(), None);

    // No refresh token in a refresh's answer: the one used stays the one to keep.
    let refresh = tokens.refresh_token.unwrap();
    let fresh = i.refresh(refresh.expose()).await.unwrap();
    assert_eq!(fresh.refresh_token.unwrap().expose(), refresh.expose());

    fakes.state.expire_tokens();
    assert!(matches!(
        i.user(&access, "carol@contoso.example").await,
        Err(ProviderError::Unauthorized(m)) if m.contains("invalid_token")
    ));
    let access = i.refresh(refresh.expose()).await.unwrap().access_token;
    fakes.state.fail_next("indeed/api", 429, 1, Some(2));
    unavailable_after(i.user(access.expose(), "carol@contoso.example").await, 2);
    refused(
        Conferencing::Indeed(indeed(&fakes, Some("nope")))
            .refresh(refresh.expose())
            .await,
        "invalid_client: Client authentication failed",
    );
    // A lookup URL without {email} is a configuration error, not a lookup result.
    let (id, secret) = fakes.indeed_client();
    let misconfigured = Indeed::new(
        client(),
        &id,
        Secret::new(secret),
        &fakes.indeed_authorize_url(),
        &fakes.indeed_token_url(),
        &fakes.indeed_lookup_url().replace("{email}", "x"),
    );
    refused(
        misconfigured
            .user(access.expose(), "carol@contoso.example")
            .await,
        "{email}",
    );
    assert_eq!(fakes.state.requests("indeed/api"), 4);
    fakes.stop().await;
}

#[tokio::test]
async fn the_control_api_adds_conferencing_accounts() {
    let fakes = fakes().await;
    let http = client();
    let control = |path: &str, body: serde_json::Value| {
        http.post(format!("http://{}/_control/{path}", fakes.addr))
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
    };
    let status = |r: outbound::Response| r.status().as_u16();
    use serde_json::json;
    assert_eq!(
        status(
            control("zoom/accounts", json!({"account_id": "zacc_2"}))
                .await
                .unwrap()
        ),
        200
    );
    assert_eq!(
        status(
            control(
                "zoom/users",
                json!({"account_id": "zacc_2", "email": "erin@fabrikam.example"})
            )
            .await
            .unwrap()
        ),
        200
    );
    assert_eq!(
        status(
            control(
                "zoom/users",
                json!({"account_id": "zacc_2", "email": "x@fabrikam.example", "status": "gone"})
            )
            .await
            .unwrap()
        ),
        400
    );
    assert_eq!(
        status(
            control(
                "zoom/users",
                json!({"account_id": "nope", "email": "x@fabrikam.example"})
            )
            .await
            .unwrap()
        ),
        400
    );
    assert_eq!(
        status(
            control("webex/orgs", json!({"org_id": "org_2"}))
                .await
                .unwrap()
        ),
        200
    );
    assert_eq!(
        status(
            control(
                "webex/users",
                json!({"org_id": "org_2", "email": "erin@fabrikam.example"})
            )
            .await
            .unwrap()
        ),
        200
    );
    assert_eq!(
        status(
            control("indeed/employers", json!({"employer_id": "emp_2"}))
                .await
                .unwrap()
        ),
        200
    );
    assert_eq!(
        status(
            control(
                "indeed/users",
                json!({"employer_id": "emp_2", "email": "erin@fabrikam.example"})
            )
            .await
            .unwrap()
        ),
        200
    );
    assert_eq!(
        status(
            control("faults", json!({"prefix": "webex/api", "status": 503}))
                .await
                .unwrap()
        ),
        200
    );

    let z = zoom(&fakes, None);
    let code = code_of(
        &sign_in(&fakes, &z.authorize_url(REDIRECT, "s"), Some("zacc_2")).await,
        "s",
    );
    let access = z.exchange_code(&code, REDIRECT).await.unwrap().access_token;
    assert_eq!(
        z.me(access.expose()).await.unwrap().admin.email,
        "erin@fabrikam.example"
    );
    // A `+` (and the `@`) survive the path segment.
    fakes
        .state
        .add_zoom_user("zacc_2", "frank+zoom@fabrikam.example", "active")
        .unwrap();
    let frank = z
        .user(access.expose(), "Frank+Zoom@fabrikam.example")
        .await
        .unwrap();
    assert_eq!(frank.unwrap().email, "frank+zoom@fabrikam.example");
    // The demo account's users are another account's: not found from here.
    assert_eq!(
        z.user(access.expose(), "carol@contoso.example")
            .await
            .unwrap(),
        None
    );

    let w = webex(&fakes, None);
    let code = code_of(
        &sign_in(&fakes, &w.authorize_url(REDIRECT, "s"), Some("org_2")).await,
        "s",
    );
    let access = w.exchange_code(&code, REDIRECT).await.unwrap().access_token;
    assert!(w
        .user(access.expose(), "erin@fabrikam.example")
        .await
        .unwrap_err()
        .is_retryable());
    assert!(w
        .user(access.expose(), "erin@fabrikam.example")
        .await
        .unwrap()
        .is_some());

    assert_eq!(
        status(control("expire_tokens", json!({})).await.unwrap()),
        200
    );
    assert!(matches!(
        w.me(access.expose()).await,
        Err(ProviderError::Unauthorized(_))
    ));
    fakes.stop().await;
}
