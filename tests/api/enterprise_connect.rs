//! Enterprise Connect end to end (DESIGN.md §6.1–6.6) against the local stand-ins for
//! Google and Microsoft: an application, the consent pages driven as a browser would
//! (cookies, forms, no redirect followed to the client), codes, tokens, delegated
//! authorizations with signed callbacks, account tokens and UserInfo.

use std::time::Duration;

use base64::Engine;
use hmac::{KeyInit, Mac};
use reqwest::{Method, StatusCode};
use scimgate::devproviders::DevProviders;
use serde_json::{json, Value};

use crate::common::{send, Backend, TestApp};
use crate::receiver::{Received, Receiver, Reply};

/// As `backend_tests!`, with the stand-in providers started beside the app.
macro_rules! connect_tests {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let c = super::Connect::start(crate::common::Backend::Sqlite).await.expect("sqlite");
                    super::$name(c).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    if let Some(c) = super::Connect::start(crate::common::Backend::Postgres).await {
                        super::$name(c).await;
                    }
                }
            )*
        }
    };
}

connect_tests!(
    google_consent_tokens_and_delegated_authorizations,
    microsoft_consent_and_provider_faults,
    refusals_never_redirect_and_reuse_revokes,
    nothing_is_stored_in_plaintext_and_rekey_covers_it,
    units_link_accounts_and_authorizations_fall_through_in_link_order,
    units_add_conferencing_accounts_and_profiles_by_email,
    a_service_account_has_a_bounded_queue,
    scim_directories_provision_suspend_resume_and_revoke,
    scim_provisioning_follows_email_changes_waits_for_providers_and_relinks,
    scim_provisions_200_users_across_two_calendar_tenants_and_zoom,
);

/// The gateway with Google and Microsoft pointed at a fresh set of stand-ins.
pub struct Connect {
    pub app: TestApp,
    pub providers: DevProviders,
    _key_dir: tempfile::TempDir,
    web: Browser,
}

/// What [`Connect::google_unit`] made.
pub struct GoogleUnit {
    /// The Google service account's id, and the tokens its consent gave.
    pub ser: String,
    pub tokens: Value,
    pub unit: String,
}

/// A browser on the gateway at `base`: cookies by hand, no redirect followed.
pub struct Browser {
    pub browser: reqwest::Client,
    pub base: String,
}

impl std::ops::Deref for Connect {
    type Target = Browser;
    fn deref(&self) -> &Browser {
        &self.web
    }
}

impl Connect {
    pub async fn start(backend: Backend) -> Option<Connect> {
        let providers = DevProviders::start("127.0.0.1:0").await.expect("providers");
        providers.seed_demo().expect("seed");
        let key_dir = tempfile::tempdir().expect("tempdir");
        let key_path = key_dir.path().join("google.json");
        std::fs::write(&key_path, providers.google_key_json()).expect("key");
        let (ms_id, ms_secret) = providers.microsoft_client();
        let (admin, login, graph) = (
            providers.google_admin_url(),
            providers.microsoft_login_url(),
            providers.microsoft_graph_url(),
        );
        let (zoom_id, zoom_secret) = providers.zoom_client();
        let (webex_id, webex_secret) = providers.webex_client();
        let (indeed_id, indeed_secret) = providers.indeed_client();
        let indeed = (
            providers.indeed_authorize_url(),
            providers.indeed_token_url(),
            providers.indeed_lookup_url(),
        );
        let (zoom_oauth, zoom_api, webex_api) = (
            providers.zoom_oauth_url(),
            providers.zoom_api_url(),
            providers.webex_api_url(),
        );
        let app = TestApp::start_with(backend, move |c| {
            c.google_service_account_key = Some(key_path);
            c.google_admin_url = admin;
            c.microsoft_client_id = Some(ms_id);
            c.microsoft_client_secret = Some(ms_secret);
            c.microsoft_login_url = login;
            c.microsoft_graph_url = graph;
            // Three provider attempts: a provider that stays down ends quickly in tests.
            c.authorization_attempts = 3;
            c.zoom_client_id = Some(zoom_id);
            c.zoom_client_secret = Some(zoom_secret);
            c.zoom_oauth_url = zoom_oauth;
            c.zoom_api_url = zoom_api;
            c.webex_client_id = Some(webex_id);
            c.webex_client_secret = Some(webex_secret);
            c.webex_api_url = webex_api;
            c.indeed_client_id = Some(indeed_id);
            c.indeed_client_secret = Some(indeed_secret);
            c.indeed_authorize_url = Some(indeed.0);
            c.indeed_token_url = Some(indeed.1);
            c.indeed_lookup_url = Some(indeed.2);
        })
        .await?;
        scimgate::outbound::install_tls_provider();
        let browser = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client");
        let base = app.base.clone();
        Some(Connect {
            app,
            providers,
            _key_dir: key_dir,
            web: Browser { browser, base },
        })
    }

    /// A new application: (client_id, client_secret).
    pub async fn application(&self, redirect_uri: &str) -> (String, String) {
        let (status, body) = send(
            self.app
                .admin(Method::POST, "/applications")
                .json(&json!({"name": "Acme Scheduling", "redirect_uris": [redirect_uri]})),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let d = &body["data"];
        (
            d["client_id"].as_str().unwrap().to_string(),
            d["client_secret"].as_str().unwrap().to_string(),
        )
    }

    /// Redeems an authorization code at `/oauth/token` (JSON body, as most SDKs send).
    pub async fn redeem(
        &self,
        client_id: &str,
        secret: &str,
        code: &str,
        redirect: &str,
    ) -> (StatusCode, Value, reqwest::header::HeaderMap) {
        self.token(json!({"grant_type": "authorization_code", "client_id": client_id, "client_secret": secret, "code": code, "redirect_uri": redirect}))
            .await
    }

    pub async fn token(&self, body: Value) -> (StatusCode, Value, reqwest::header::HeaderMap) {
        let r = self
            .app
            .client
            .post(self.url("/oauth/token"))
            // Cronofy's SDKs send this; it must be ignored.
            .header("Authorization", "Bearer None")
            .json(&body)
            .send()
            .await
            .unwrap();
        let (status, headers) = (r.status(), r.headers().clone());
        (status, r.json().await.unwrap_or(Value::Null), headers)
    }

    pub async fn authorize_emails(&self, access_token: &str, body: Value) -> StatusCode {
        self.app
            .client
            .post(self.url("/v1/service_account_authorizations"))
            .bearer_auth(access_token)
            .json(&body)
            .send()
            .await
            .unwrap()
            .status()
    }

    pub async fn userinfo(&self, token: &str) -> (StatusCode, Value) {
        send(
            self.app
                .client
                .get(self.url("/v1/userinfo"))
                .bearer_auth(token),
        )
        .await
    }
}

impl Browser {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Opens the authorize URL: the consent page's URL and the flow's cookie.
    pub async fn open_authorize(
        &self,
        client_id: &str,
        redirect_uri: &str,
        provider: Option<&str>,
    ) -> (String, String) {
        let mut q = vec![
            ("response_type", "code"),
            ("client_id", client_id),
            ("redirect_uri", redirect_uri),
            ("scope", "service_account/accounts/manage"),
            ("delegated_scope", "read_write"),
            ("state", "s t&ate"),
        ];
        if let Some(p) = provider {
            q.push(("provider_name", p));
        }
        let r = self
            .browser
            .get(self.url("/enterprise_connect/oauth/authorize"))
            .query(&q)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        let cookie = r
            .headers()
            .get("set-cookie")
            .unwrap()
            .to_str()
            .unwrap()
            .to_string();
        assert!(
            cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"),
            "{cookie}"
        );
        let cookie = cookie.split(';').next().unwrap().to_string();
        let location = r.headers()["location"].to_str().unwrap().to_string();
        (self.url(&location), cookie)
    }

    pub async fn page(&self, url: &str, cookie: &str) -> (StatusCode, String) {
        let r = self
            .browser
            .get(url)
            .header("Cookie", cookie)
            .send()
            .await
            .unwrap();
        (r.status(), r.text().await.unwrap())
    }

    /// Completes Google's consent for `admin`: the code at the redirect URI.
    pub async fn google_consent(&self, client_id: &str, redirect_uri: &str, admin: &str) -> String {
        let (page_url, cookie) = self
            .open_authorize(client_id, redirect_uri, Some("google"))
            .await;
        let (status, html) = self.page(&page_url, &cookie).await;
        assert_eq!(status, StatusCode::OK, "{html}");
        let r = self
            .submit_google(&html, &cookie, "example.com", admin, true)
            .await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        code_of(r.headers()["location"].to_str().unwrap())
    }

    pub async fn submit_google(
        &self,
        html: &str,
        cookie: &str,
        domain: &str,
        admin: &str,
        with_csrf: bool,
    ) -> reqwest::Response {
        let mut form = vec![
            ("flow", hidden(html, "flow")),
            ("domain", domain.to_string()),
            ("admin_email", admin.to_string()),
        ];
        if with_csrf {
            form.push(("csrf", hidden(html, "csrf")));
        }
        self.browser
            .post(self.url("/enterprise_connect/oauth/google"))
            .header("Cookie", cookie)
            .form(&form)
            .send()
            .await
            .unwrap()
    }
}

/// The value of a hidden input of a page.
pub fn hidden(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html
        .find(&marker)
        .unwrap_or_else(|| panic!("no {name} in {html}"))
        + marker.len();
    html[start..].split('"').next().unwrap().to_string()
}

/// The `code` of a redirect back to the client (its `state` must be echoed).
pub fn code_of(location: &str) -> String {
    let url = url::Url::parse(location).unwrap();
    let q: std::collections::HashMap<_, _> = url.query_pairs().into_owned().collect();
    assert_eq!(
        q.get("state").map(String::as_str),
        Some("s t&ate"),
        "{location}"
    );
    q.get("code")
        .unwrap_or_else(|| panic!("no code in {location}"))
        .clone()
}

/// Callbacks signed as Cronofy signs (base64 HMAC-SHA256 keyed by the client secret) and
/// with Standard Webhooks headers keyed by its UTF-8 bytes.
pub fn assert_callback_signed(r: &Received, client_secret: &str) {
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(client_secret.as_bytes()).unwrap();
    mac.update(&r.body);
    let expected = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    assert_eq!(r.header("cronofy-hmac-sha256"), expected);
    let ts: i64 = r.header("webhook-timestamp").parse().unwrap();
    assert!(scimgate::webhooks::signing::verify_standard(
        client_secret,
        r.header("webhook-id"),
        ts,
        &r.body,
        r.header("webhook-signature")
    ));
}

/// Waits for `n` callbacks; returns them by email's state.
pub async fn callbacks(rx: &Receiver, n: usize) -> Vec<Received> {
    let started = std::time::Instant::now();
    loop {
        let got = rx.delivered();
        if got.len() >= n {
            return got;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "only {} of {n} callbacks: {:?}",
            got.len(),
            got.iter().map(|r| r.json.clone()).collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

fn by_state<'a>(got: &'a [Received], state: &str) -> &'a Value {
    &got.iter()
        .find(|r| r.json["authorization"]["state"] == state)
        .unwrap_or_else(|| panic!("no callback for {state}"))
        .json["authorization"]
}

async fn google_consent_tokens_and_delegated_authorizations(c: Connect) {
    let redirect = "http://127.0.0.1:9/back?from=consent";
    let (client_id, secret) = c.application(redirect).await;
    let (page_url, cookie) = c.open_authorize(&client_id, redirect, Some("google")).await;
    let (status, html) = c.page(&page_url, &cookie).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        html.contains(c.providers.google_client_id()),
        "the page shows the client id to delegate to"
    );
    // No form token: refused. Another browser (no cookie): refused.
    let r = c
        .submit_google(&html, &cookie, "example.com", "admin@example.com", false)
        .await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let (status, _) = c.page(&page_url, "").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // A person who is not an admin, and an admin of another domain, get no code.
    let r = c
        .submit_google(&html, &cookie, "example.com", "alice@example.com", true)
        .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(r.headers().get("location").is_none());
    assert!(r.text().await.unwrap().contains("not an administrator"));
    let r = c
        .submit_google(&html, &cookie, "other.example", "admin@example.com", true)
        .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let r = c
        .submit_google(&html, &cookie, "example.com", "admin@example.com", true)
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let location = r.headers()["location"].to_str().unwrap().to_string();
    assert!(
        location.starts_with("http://127.0.0.1:9/back?from=consent&code="),
        "{location}"
    );
    let code = code_of(&location);

    // The code: wrong secret (401), wrong redirect URI (400), then redeemed once.
    let grant = |secret: &str, redirect: &str| json!({"grant_type": "authorization_code", "client_id": client_id, "client_secret": secret, "code": code, "redirect_uri": redirect});
    let (status, body, _) = c.token(grant("wrong", redirect)).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("invalid_client"))
    );
    let (status, body, _) = c.token(grant(&secret, "http://127.0.0.1:9/other")).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant"))
    );
    let (status, tokens, headers) = c.token(grant(&secret, redirect)).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    assert_eq!(headers["cache-control"], "no-store");
    assert_eq!(tokens["token_type"], "bearer");
    assert_eq!(tokens["expires_in"], 1800);
    assert_eq!(tokens["scope"], "service_account/accounts/manage");
    let ser = tokens["service_account_id"].as_str().unwrap().to_string();
    assert!(ser.starts_with("ser_"));
    let (status, body, _) = c.token(grant(&secret, redirect)).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant")),
        "single use"
    );
    // RFC 6749 §4.1.2: a reused code revokes what it was exchanged for.
    assert_eq!(
        c.userinfo(tokens["access_token"].as_str().unwrap()).await.0,
        StatusCode::UNAUTHORIZED
    );
    let code = c
        .google_consent(&client_id, redirect, "admin@example.com")
        .await;
    let (status, tokens, _) = c
        .token(
            grant(&secret, redirect)
                .as_object()
                .cloned()
                .map(|mut m| {
                    m.insert("code".into(), json!(code));
                    Value::Object(m)
                })
                .unwrap(),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        tokens["service_account_id"].as_str(),
        Some(ser.as_str()),
        "the same domain keeps its service account"
    );

    // Refresh, as a form body (the Ruby SDK's encoding).
    let r = c
        .app
        .client
        .post(c.url("/oauth/token"))
        .form(&[
            ("grant_type", "refresh_token"),
            ("client_id", &client_id),
            ("client_secret", &secret),
            ("refresh_token", tokens["refresh_token"].as_str().unwrap()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let refreshed: Value = r.json().await.unwrap();
    assert_ne!(
        refreshed["refresh_token"], tokens["refresh_token"],
        "rotated"
    );
    assert_eq!(refreshed["service_account_id"].as_str(), Some(ser.as_str()));
    let access = refreshed["access_token"].as_str().unwrap().to_string();

    // The client secret is not a service account's token.
    assert_eq!(c.authorize_emails(&secret, json!({"email": "alice@example.com", "callback_url": "http://127.0.0.1:9/", "scope": "read_write"})).await, StatusCode::UNAUTHORIZED);
    // Validation in Cronofy's shape.
    let r = c
        .app
        .client
        .post(c.url("/v1/service_account_authorizations"))
        .bearer_auth(&access)
        .json(&json!({"email": "", "scope": "read_write"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let errors: Value = r.json().await.unwrap();
    assert_eq!(errors["errors"]["email"][0]["key"], "errors.required");
    assert_eq!(
        errors["errors"]["callback_url"][0]["key"],
        "errors.required"
    );

    let rx = Receiver::ok().await;
    let callback = format!("{}?tenant=acme", rx.url);
    let status = c.authorize_emails(&access, json!({"service_account_authorizations": [
        {"email": "Alice@Example.com", "callback_url": callback, "scope": "read_events create_event", "state": "alice"},
        {"email": "bob@example.com", "callback_url": callback, "scope": "read_write", "state": null},
        {"email": "nobody@example.com", "callback_url": callback, "scope": "read_write", "state": "nobody"},
    ]})).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let got = callbacks(&rx, 3).await;
    for r in &got {
        assert_callback_signed(r, &secret);
    }
    assert_eq!(by_state(&got, "nobody")["error"], "not_found");
    let alice_code = by_state(&got, "alice")["code"]
        .as_str()
        .unwrap()
        .to_string();
    let bob = got
        .iter()
        .find(|r| r.json["authorization"]["state"].is_null())
        .expect("bob's callback");
    assert!(bob.json["authorization"]["code"].is_string());

    // The account code redeems only with the callback URL as redirect_uri.
    let account_grant = |redirect: &str| json!({"grant_type": "authorization_code", "client_id": client_id, "client_secret": secret, "code": alice_code, "redirect_uri": redirect});
    let (status, _, _) = c.token(account_grant(&rx.url)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, account, _) = c.token(account_grant(&callback)).await;
    assert_eq!(status, StatusCode::OK, "{account}");
    assert_eq!(account["expires_in"], 3600);
    assert_eq!(account["scope"], "read_events create_event");
    let acc = account["account_id"].as_str().unwrap().to_string();
    assert!(acc.starts_with("acc_") && account["sub"] == acc.as_str());
    assert_eq!(account["linking_profile"]["provider_name"], "google");
    assert_eq!(
        account["linking_profile"]["profile_name"],
        "alice@example.com"
    );
    assert!(account["linking_profile"]["profile_id"]
        .as_str()
        .unwrap()
        .starts_with("pro_"));

    let (status, info) = c.userinfo(account["access_token"].as_str().unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(info["sub"], acc.as_str());
    assert_eq!(info["email"], "alice@example.com");
    assert_eq!(info["cronofy.type"], "account");
    let profile = &info["cronofy.data"]["profiles"][0];
    assert_eq!(
        (
            profile["provider_name"].as_str(),
            profile["profile_connected"].as_bool()
        ),
        (Some("google"), Some(true))
    );
    assert_eq!(info["cronofy.data"]["conferencing_profiles"], json!([]));

    // Asking again gives the same account.
    let rx2 = Receiver::ok().await;
    assert_eq!(c.authorize_emails(&access, json!({"email": "alice@example.com", "callback_url": rx2.url, "scope": "read_write", "state": "again"})).await, StatusCode::ACCEPTED);
    let again = callbacks(&rx2, 1).await;
    let code2 = again[0].json["authorization"]["code"]
        .as_str()
        .unwrap()
        .to_string();
    let (_, account2, _) = c.token(json!({"grant_type": "authorization_code", "client_id": client_id, "client_secret": secret, "code": code2, "redirect_uri": rx2.url})).await;
    assert_eq!(account2["account_id"].as_str(), Some(acc.as_str()));

    // The admin API lists the service account with its accounts.
    let (status, body) = send(
        c.app
            .admin(Method::GET, &format!("/service_accounts/{ser}")),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["data"]["provider_name"], "google");
    assert_eq!(body["data"]["domain"], "example.com");
    assert_eq!(body["data"]["accounts"], 2);
    let (_, list) = send(c.app.admin(
        Method::GET,
        &format!("/service_accounts?client_id={client_id}"),
    ))
    .await;
    assert_eq!(list["data"].as_array().unwrap().len(), 1);

    // Another application cannot revoke it; its own client can, and that stops the accounts.
    let (other_id, other_secret) = c.application("http://127.0.0.1:9/x").await;
    let revoke = |id: &str, s: &str| json!({"client_id": id, "client_secret": s, "sub": ser});
    let r = c
        .app
        .client
        .post(c.url("/oauth/token/revoke"))
        .json(&revoke(&other_id, &other_secret))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        c.userinfo(account["access_token"].as_str().unwrap())
            .await
            .0,
        StatusCode::OK
    );
    let r = c
        .app
        .client
        .post(c.url("/oauth/token/revoke"))
        .json(&revoke(&client_id, &secret))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        c.userinfo(account["access_token"].as_str().unwrap())
            .await
            .0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        c.authorize_emails(
            &access,
            json!({"email": "bob@example.com", "callback_url": rx.url, "scope": "read_write"})
        )
        .await,
        StatusCode::UNAUTHORIZED
    );
    let (_, body) = send(
        c.app
            .admin(Method::GET, &format!("/service_accounts/{ser}")),
    )
    .await;
    assert_eq!(body["data"]["state"], "revoked");
}

async fn microsoft_consent_and_provider_faults(c: Connect) {
    let redirect = "http://127.0.0.1:9/ms";
    let (client_id, secret) = c.application(redirect).await;
    // No provider asked for: the choice, then Microsoft's page with its consent link.
    let (page_url, cookie) = c.open_authorize(&client_id, redirect, None).await;
    let (_, choice) = c.page(&page_url, &cookie).await;
    assert!(
        choice.contains("data-provider=\"google\"")
            && choice.contains("data-provider=\"office365\"")
    );
    let (_, page) = c
        .page(&format!("{page_url}&provider=office365"), &cookie)
        .await;
    let consent_link =
        between(&page, "class=\"button microsoft\" href=\"", "\"").replace("&amp;", "&");
    // Microsoft's page (the stand-in): its consent link for the tenant, then the redirect back.
    let ms_page = c
        .browser
        .get(&consent_link)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let tenant_link = between(&ms_page, "class=\"consent\"", ">");
    let tenant_link = between(tenant_link, "href=\"", "\"").replace("&amp;", "&");
    let tenant_link = if tenant_link.starts_with("http") {
        tenant_link
    } else {
        format!(
            "{}{}",
            c.providers
                .microsoft_login_url()
                .split("/microsoft")
                .next()
                .unwrap(),
            tenant_link
        )
    };
    let r = c.browser.get(&tenant_link).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::FOUND, "the stand-in redirects back");
    let back = r.headers()["location"].to_str().unwrap().to_string();
    assert!(back.contains("admin_consent=True"), "{back}");
    let r = c
        .browser
        .get(&back)
        .header("Cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let code = code_of(r.headers()["location"].to_str().unwrap());
    let (status, tokens, _) = c.redeem(&client_id, &secret, &code, redirect).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    let access = tokens["access_token"].as_str().unwrap().to_string();

    // carol has a mailbox; dave's is not in Exchange Online (not here, never retried).
    // Two 503s with Retry-After: 1 first, then an expired provider token (one refresh).
    c.providers
        .state
        .fail_next("microsoft/graph", 503, 2, Some(1));
    let rx = Receiver::ok().await;
    let started = std::time::Instant::now();
    assert_eq!(c.authorize_emails(&access, json!({"email": "carol@contoso.example", "callback_url": rx.url, "scope": "read_write", "state": "carol"})).await, StatusCode::ACCEPTED);
    let got = callbacks(&rx, 1).await;
    assert!(
        got[0].json["authorization"]["code"].is_string(),
        "{}",
        got[0].json
    );
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "Retry-After was honoured"
    );
    let tokens_before = c.providers.state.requests("microsoft/token");
    c.providers.state.expire_tokens();
    assert_eq!(c.authorize_emails(&access, json!({"email": "dave@contoso.example", "callback_url": rx.url, "scope": "read_write", "state": "dave"})).await, StatusCode::ACCEPTED);
    let got = callbacks(&rx, 2).await;
    assert_eq!(by_state(&got, "dave")["error"], "not_found");
    assert_eq!(
        c.providers.state.requests("microsoft/token"),
        tokens_before + 1,
        "one new token after the 401"
    );
    let (status, account, _) = c.token(json!({"grant_type": "authorization_code", "client_id": client_id, "client_secret": secret, "code": by_state(&got, "carol")["code"], "redirect_uri": rx.url})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(account["linking_profile"]["provider_name"], "office365");
}

async fn refusals_never_redirect_and_reuse_revokes(c: Connect) {
    let redirect = "http://127.0.0.1:9/cb";
    let (client_id, secret) = c.application(redirect).await;
    for (id, uri) in [
        ("unknown", redirect),
        (client_id.as_str(), "http://127.0.0.1:9/evil"),
    ] {
        let r = c
            .browser
            .get(c.url("/enterprise_connect/oauth/authorize"))
            .query(&[
                ("response_type", "code"),
                ("client_id", id),
                ("redirect_uri", uri),
                ("scope", "s"),
                ("delegated_scope", "d"),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
        assert!(r.headers().get("location").is_none());
        assert!(r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html"));
    }
    // A bad request with a good redirect URI is said at the redirect URI.
    let r = c
        .browser
        .get(c.url("/enterprise_connect/oauth/authorize"))
        .query(&[
            ("response_type", "token"),
            ("client_id", client_id.as_str()),
            ("redirect_uri", redirect),
            ("state", "x"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(r.headers()["location"].to_str().unwrap(), "http://127.0.0.1:9/cb?error=unsupported_response_type&error_description=response_type+must+be+code&state=x");
    // Declining says access_denied.
    let (page_url, cookie) = c.open_authorize(&client_id, redirect, Some("google")).await;
    let (_, html) = c.page(&page_url, &cookie).await;
    let r = c
        .browser
        .post(c.url("/enterprise_connect/oauth/decline"))
        .header("Cookie", &cookie)
        .form(&[
            ("flow", hidden(&html, "flow")),
            ("csrf", hidden(&html, "csrf")),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.headers()["location"].to_str().unwrap(),
        "http://127.0.0.1:9/cb?error=access_denied&state=s+t%26ate"
    );

    // A reused refresh token revokes the family: the rotated one too.
    let code = c
        .google_consent(&client_id, redirect, "admin@example.com")
        .await;
    let (_, first, _) = c.redeem(&client_id, &secret, &code, redirect).await;
    let refresh = |t: &Value| json!({"grant_type": "refresh_token", "client_id": client_id, "client_secret": secret, "refresh_token": t["refresh_token"]});
    // A failed client authentication neither rotates nor revokes.
    let (status, _, _) = c.token(json!({"grant_type": "refresh_token", "client_id": client_id, "client_secret": "wrong", "refresh_token": first["refresh_token"]})).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, second, _) = c.token(refresh(&first)).await;
    assert_eq!(status, StatusCode::OK);
    let (status, body, _) = c.token(refresh(&first)).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant"))
    );
    let (status, _, _) = c.token(refresh(&second)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "the family is revoked");
    assert_eq!(
        c.userinfo(second["access_token"].as_str().unwrap()).await.0,
        StatusCode::UNAUTHORIZED
    );
    // A provider that stays down ends in `provider_error` after the configured attempts,
    // and holds up nobody else.
    let code = c
        .google_consent(&client_id, redirect, "admin@example.com")
        .await;
    let (_, t, _) = c.redeem(&client_id, &secret, &code, redirect).await;
    let rx = Receiver::ok().await;
    c.providers.state.fail_next("google/admin", 503, 3, Some(0));
    let access = t["access_token"].as_str().unwrap();
    assert_eq!(c.authorize_emails(access, json!({"email": "bob@example.com", "callback_url": rx.url, "scope": "read_write", "state": "down"})).await, StatusCode::ACCEPTED);
    let got = callbacks(&rx, 1).await;
    assert_eq!(
        got[0].json["authorization"]["error"], "provider_error",
        "{}",
        got[0].json
    );
    assert!(
        got[0].json["authorization"]["error_description"]
            .as_str()
            .unwrap()
            .contains("503"),
        "{}",
        got[0].json
    );
    assert_eq!(c.authorize_emails(access, json!({"email": "alice@example.com", "callback_url": rx.url, "scope": "read_write", "state": "up"})).await, StatusCode::ACCEPTED);
    let got = callbacks(&rx, 2).await;
    assert!(by_state(&got, "up")["code"].is_string());

    // A callback that failed is sent again with a fresh code: the receiver that redeemed
    // the first (its answer lost) keeps its tokens, and the second code works too.
    let flaky = Receiver::start(|_, seen| Reply::status(if seen == 0 { 500 } else { 200 })).await;
    assert_eq!(c.authorize_emails(access, json!({"email": "alice@example.com", "callback_url": flaky.url, "scope": "read_write", "state": "flaky"})).await, StatusCode::ACCEPTED);
    let started = std::time::Instant::now();
    while flaky.received().len() < 2 {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the callback was not retried"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let sent = flaky.received();
    let codes: Vec<&str> = sent
        .iter()
        .map(|r| r.json["authorization"]["code"].as_str().unwrap())
        .collect();
    assert_ne!(codes[0], codes[1]);
    let redeem = |code: &str| json!({"grant_type": "authorization_code", "client_id": client_id, "client_secret": secret, "code": code, "redirect_uri": flaky.url});
    let (s1, first, _) = c.token(redeem(codes[0])).await;
    let (s2, _, _) = c.token(redeem(codes[1])).await;
    assert_eq!((s1, s2), (StatusCode::OK, StatusCode::OK));
    assert_eq!(
        c.userinfo(first["access_token"].as_str().unwrap()).await.0,
        StatusCode::OK
    );

    // The domain is this application's: another application's consent for it is refused.
    let (other_id, _) = c.application(redirect).await;
    let (page_url, cookie) = c.open_authorize(&other_id, redirect, Some("google")).await;
    let (_, html) = c.page(&page_url, &cookie).await;
    let r = c
        .submit_google(&html, &cookie, "example.com", "admin@example.com", true)
        .await;
    assert_eq!(r.status(), StatusCode::CONFLICT);
    assert!(r.headers().get("location").is_none());
    // Five failed proofs end the consent.
    let (page_url, cookie) = c.open_authorize(&client_id, redirect, Some("google")).await;
    let (_, html) = c.page(&page_url, &cookie).await;
    for _ in 0..4 {
        let r = c
            .submit_google(&html, &cookie, "example.com", "bob@example.com", true)
            .await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    }
    let r = c
        .submit_google(&html, &cookie, "example.com", "bob@example.com", true)
        .await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    let r = c
        .submit_google(&html, &cookie, "example.com", "admin@example.com", true)
        .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST, "the flow is over");

    // Another application cannot redeem this application's code.
    let (other_id, other_secret) = c.application(redirect).await;
    let code = c
        .google_consent(&client_id, redirect, "admin@example.com")
        .await;
    let (status, _, _) = c.token(json!({"grant_type": "authorization_code", "client_id": other_id, "client_secret": other_secret, "code": code, "redirect_uri": redirect})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

fn between<'a>(s: &'a str, start: &str, end: &str) -> &'a str {
    let i = s.find(start).unwrap_or_else(|| panic!("no {start} in {s}")) + start.len();
    let rest = &s[i..];
    &rest[..rest.find(end).unwrap_or(rest.len())]
}

/// DESIGN.md §6.6: client secrets, provider tokens and the tokens we issued are nowhere
/// in plain text, hex or base64; `rekey` moves the sealed ones to a new key.
async fn nothing_is_stored_in_plaintext_and_rekey_covers_it(c: Connect) {
    use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
    let redirect = "http://127.0.0.1:9/cb";
    let (client_id, secret) = c.application(redirect).await;
    let code = c
        .google_consent(&client_id, redirect, "admin@example.com")
        .await;
    let (_, tokens, _) = c.redeem(&client_id, &secret, &code, redirect).await;
    let rx = Receiver::ok().await;
    let access = tokens["access_token"].as_str().unwrap();
    assert_eq!(c.authorize_emails(access, json!({"email": "alice@example.com", "callback_url": rx.url, "scope": "read_write", "state": "a"})).await, StatusCode::ACCEPTED);
    let got = callbacks(&rx, 1).await;
    let account_code = got[0].json["authorization"]["code"]
        .as_str()
        .unwrap()
        .to_string();
    let (_, account, _) = c.token(json!({"grant_type": "authorization_code", "client_id": client_id, "client_secret": secret, "code": account_code, "redirect_uri": rx.url})).await;

    let raw = crate::secrets_at_rest::raw_storage(&c.app).await;
    let mut secrets: Vec<String> = vec![secret.clone(), code, account_code];
    for t in [&tokens, &account] {
        secrets.push(t["access_token"].as_str().unwrap().to_string());
        secrets.push(t["refresh_token"].as_str().unwrap().to_string());
    }
    let mut forms = Vec::new();
    for s in &secrets {
        forms.push(s.clone());
        forms.push(hex::encode(s.as_bytes()));
        forms.push(STANDARD.encode(s.as_bytes()));
        forms.push(URL_SAFE_NO_PAD.encode(s.as_bytes()));
    }
    let forms: Vec<&str> = forms.iter().map(String::as_str).collect();
    crate::secrets_at_rest::assert_nowhere(&raw, &forms);

    // The provider token is kept, sealed; `rekey` moves it and the client secret.
    let (stored_app, stored_tokens) = c
        .app
        .db
        .run(|conn| {
            Ok((
                scimgate::store::applications::stored_secrets(conn)?,
                scimgate::store::service_accounts::stored_tokens(conn)?,
            ))
        })
        .await
        .unwrap();
    assert_eq!((stored_app.len(), stored_tokens.len()), (1, 1));
    let new_key = scimgate::secrets::generate_key().unwrap();
    let both = scimgate::secrets::Sealer::from_keys(&format!(
        "{new_key},{}",
        crate::common::ENCRYPTION_KEY
    ))
    .unwrap();
    let sealer = both.clone();
    let report = c
        .app
        .db
        .run(move |conn| {
            let mut report = scimgate::secrets::SealReport::default();
            scimgate::connect::sealing::seal_stored_secrets(conn, &sealer, true, &mut report)?;
            Ok(report)
        })
        .await
        .unwrap();
    assert_eq!(report.resealed, 2, "{report:?}");
    let stored_app = c
        .app
        .db
        .run(scimgate::store::applications::stored_secrets)
        .await
        .unwrap();
    assert_eq!(stored_app[0].1.key_id(), Some(both.current_key_id()));
    assert_eq!(both.open(&stored_app[0].1).unwrap().expose(), secret);
}

impl Connect {
    /// From one of our pages with the "Continue to Microsoft" link: Microsoft's consent
    /// (the stand-in) accepted for `tenant`; returns where Microsoft sends the browser
    /// back to.
    pub async fn microsoft_accept(&self, page: &str, tenant: &str) -> String {
        let link = between(page, "class=\"button microsoft\" href=\"", "\"").replace("&amp;", "&");
        let ms_page = self
            .browser
            .get(&link)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let marker = format!("data-tenant=\"{tenant}\" href=\"");
        let accept = between(&ms_page, &marker, "\"").replace("&amp;", "&");
        let origin = self
            .providers
            .microsoft_login_url()
            .split("/microsoft")
            .next()
            .unwrap()
            .to_string();
        let r = self
            .browser
            .get(format!("{origin}{accept}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::FOUND, "the stand-in redirects back");
        r.headers()["location"].to_str().unwrap().to_string()
    }

    /// A Microsoft 365 service account's tokens for a new application.
    async fn microsoft_service_account(&self, redirect: &str) -> (String, String, Value) {
        let (client_id, secret) = self.application(redirect).await;
        let (page_url, cookie) = self
            .open_authorize(&client_id, redirect, Some("office365"))
            .await;
        let (_, page) = self.page(&page_url, &cookie).await;
        let back = self.microsoft_accept(&page, TENANT).await;
        let r = self
            .browser
            .get(&back)
            .header("Cookie", &cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        let code = code_of(r.headers()["location"].to_str().unwrap());
        let (status, tokens, _) = self.redeem(&client_id, &secret, &code, redirect).await;
        assert_eq!(status, StatusCode::OK, "{tokens}");
        (client_id, secret, tokens)
    }

    async fn link_token(&self, bearer: &str, ser: &str) -> (StatusCode, Value) {
        send(
            self.app
                .client
                .post(self.url("/v1/organizational_unit_authorization_link_tokens"))
                .bearer_auth(bearer)
                .json(&json!({"service_account_id": ser})),
        )
        .await
    }

    /// A new application whose Google service account (consented by admin@example.com)
    /// is in a unit with the conferencing `provider`.
    pub async fn google_unit(&self, redirect: &str, provider: &str) -> GoogleUnit {
        let (client_id, secret) = self.application(redirect).await;
        self.google_unit_of(client_id, secret, redirect, provider)
            .await
    }

    /// As [`Self::google_unit`], for the application `client_id`.
    pub async fn google_unit_of(
        &self,
        client_id: String,
        secret: String,
        redirect: &str,
        provider: &str,
    ) -> GoogleUnit {
        let code = self
            .google_consent(&client_id, redirect, "admin@example.com")
            .await;
        let (_, tokens, _) = self.redeem(&client_id, &secret, &code, redirect).await;
        let ser = tokens["service_account_id"].as_str().unwrap().to_string();
        let unit = self
            .add_conferencing(&client_id, &secret, redirect, &ser, provider)
            .await;
        GoogleUnit { ser, tokens, unit }
    }

    /// Opens the unit authorization: the first page's URL and the cookie, or the refusal.
    /// A unit flow from a Google service account adding the conferencing `provider`:
    /// proof, the provider's sign-in page (the stand-in), back, join. The unit's id.
    pub async fn add_conferencing(
        &self,
        client_id: &str,
        secret: &str,
        redirect: &str,
        ser: &str,
        provider: &str,
    ) -> String {
        self.add_conferencing_to(client_id, secret, redirect, ser, provider, "existing")
            .await
    }

    /// As `add_conferencing`, approving `unit` (`existing` or `new`).
    async fn add_conferencing_to(
        &self,
        client_id: &str,
        secret: &str,
        redirect: &str,
        ser: &str,
        provider: &str,
        unit: &str,
    ) -> String {
        let (_, body) = self.link_token(secret, ser).await;
        let link = body["organizational_unit_authorization_link_token"]["ou_link_token"]
            .as_str()
            .unwrap()
            .to_string();
        let q = [
            ("response_type", "code"),
            ("client_id", client_id),
            ("redirect_uri", redirect),
            ("scope", "organizational_unit_use_integrations"),
            ("state", "s t&ate"),
            ("ou_link_token", &link),
            ("capabilities[]", "conferencing"),
            ("conferencing_provider_name", provider),
        ];
        let r = self
            .browser
            .get(self.url("/organizational_unit_oauth"))
            .query(&q)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::SEE_OTHER, "{provider}");
        let cookie = r.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .split(';')
            .next()
            .unwrap()
            .to_string();
        let page_url = self.url(r.headers()["location"].to_str().unwrap());
        let (_, step1) = self.page(&page_url, &cookie).await;
        let r = self
            .submit_google(&step1, &cookie, "example.com", "admin@example.com", true)
            .await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        let (_, step2) = self.page(&page_url, &cookie).await;
        assert!(step2.contains("Step 2 of 3"), "{step2}");
        let signin =
            between(&step2, "class=\"button conferencing\" href=\"", "\"").replace("&amp;", "&");
        let page = self
            .browser
            .get(&signin)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let allow = between(between(&page, "class=\"authorize\"", ">"), "href=\"", "\"")
            .replace("&amp;", "&");
        let origin = self
            .providers
            .microsoft_login_url()
            .split("/microsoft")
            .next()
            .unwrap()
            .to_string();
        let r = self
            .browser
            .get(format!("{origin}{allow}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::FOUND, "{provider} redirects back");
        let back = r.headers()["location"].to_str().unwrap().to_string();
        let r = self
            .browser
            .get(&back)
            .header("Cookie", &cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(
            r.status(),
            StatusCode::SEE_OTHER,
            "{}",
            r.text().await.unwrap()
        );
        let (_, step3) = self.page(&page_url, &cookie).await;
        let r = self
            .browser
            .post(self.url("/enterprise_connect/oauth/join"))
            .header("Cookie", &cookie)
            .form(&[
                ("flow", hidden(&step3, "flow")),
                ("csrf", hidden(&step3, "csrf")),
                ("unit", unit.to_string()),
            ])
            .send()
            .await
            .unwrap();
        let code = code_of(r.headers()["location"].to_str().unwrap());
        let (status, unit, _) = self.redeem(client_id, secret, &code, redirect).await;
        assert_eq!(status, StatusCode::OK, "{unit}");
        unit["organizational_unit_id"].as_str().unwrap().to_string()
    }

    async fn open_unit(
        &self,
        client_id: &str,
        redirect: &str,
        link_token: &str,
        capability: Option<&str>,
    ) -> reqwest::Response {
        let mut q = vec![
            ("response_type", "code"),
            ("client_id", client_id),
            ("redirect_uri", redirect),
            ("scope", "organizational_unit_use_integrations"),
            ("state", "s t&ate"),
            ("ou_link_token", link_token),
            ("provider_name", "google"),
        ];
        if let Some(cap) = capability {
            q.push(("capabilities[]", cap));
        }
        self.browser
            .get(self.url("/organizational_unit_oauth"))
            .query(&q)
            .send()
            .await
            .unwrap()
    }
}

const TENANT: &str = "11111111-2222-3333-4444-555555555555";

/// DESIGN.md §6.4: a Microsoft 365 service account → link token → the unit flow (proof of
/// the same tenant, Google added, join) → unit tokens; then authorizations fall through
/// the unit's calendar accounts in link order (a mailbox error moves on).
async fn units_link_accounts_and_authorizations_fall_through_in_link_order(c: Connect) {
    let st = &c.providers.state;
    st.add_tenant(TENANT, &["contoso.example", "example.com"]);
    st.add_microsoft_user("erin@example.com", false).unwrap();
    st.add_google_user("erin@example.com", false).unwrap();
    st.add_tenant(
        "99999999-2222-3333-4444-555555555555",
        &["fabrikam.example"],
    );
    let redirect = "http://127.0.0.1:9/unit";
    let (client_id, secret, tokens) = c.microsoft_service_account(redirect).await;
    let ser_ms = tokens["service_account_id"].as_str().unwrap().to_string();
    let access = tokens["access_token"].as_str().unwrap().to_string();

    // Link tokens: the client secret as Bearer; another application's secret gets 404.
    let (other_id, other_secret) = c.application(redirect).await;
    assert_eq!(
        c.link_token(&other_secret, &ser_ms).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        c.link_token(&access, &ser_ms).await.0,
        StatusCode::UNAUTHORIZED
    );
    let (status, body) = c.link_token(&secret, &ser_ms).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let link = body["organizational_unit_authorization_link_token"]["ou_link_token"]
        .as_str()
        .unwrap()
        .to_string();

    // Refusals are pages: no capability, a conferencing provider not offered, another
    // application's client with this link token.
    for (client, cap) in [
        (client_id.as_str(), None),
        (client_id.as_str(), Some("conferencing")),
        (other_id.as_str(), Some("calendars")),
    ] {
        let r = c.open_unit(client, redirect, &link, cap).await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
        assert!(r.headers().get("location").is_none());
    }

    let r = c
        .open_unit(&client_id, redirect, &link, Some("calendars"))
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let cookie = r.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let page_url = c.url(r.headers()["location"].to_str().unwrap());
    // Step 1: prove the linked tenant — another tenant is refused.
    let (_, step1) = c.page(&page_url, &cookie).await;
    assert!(step1.contains("Step 1 of 3"), "{step1}");
    let back = c
        .microsoft_accept(&step1, "99999999-2222-3333-4444-555555555555")
        .await;
    let r = c
        .browser
        .get(&back)
        .header("Cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(r
        .text()
        .await
        .unwrap()
        .contains("not the Microsoft 365 tenant"));
    let back = c.microsoft_accept(&step1, TENANT).await;
    let r = c
        .browser
        .get(&back)
        .header("Cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    // Step 2: Google Workspace added.
    let (_, step2) = c.page(&page_url, &cookie).await;
    assert!(step2.contains("Step 2 of 3"), "{step2}");
    let r = c
        .submit_google(&step2, &cookie, "example.com", "admin@example.com", true)
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    // Step 3: join the unit (a new one: the Microsoft account had none).
    let (_, step3) = c.page(&page_url, &cookie).await;
    assert!(step3.contains("value=\"existing\" checked"), "{step3}");
    let r = c
        .browser
        .post(c.url("/enterprise_connect/oauth/join"))
        .header("Cookie", &cookie)
        .form(&[
            ("flow", hidden(&step3, "flow")),
            ("csrf", hidden(&step3, "csrf")),
            ("unit", "existing".into()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let code = code_of(r.headers()["location"].to_str().unwrap());
    let (status, unit_tokens, _) = c.redeem(&client_id, &secret, &code, redirect).await;
    assert_eq!(status, StatusCode::OK, "{unit_tokens}");
    let ou = unit_tokens["organizational_unit_id"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(ou.starts_with("ou_") && unit_tokens["sub"] == ou.as_str());
    assert_eq!(unit_tokens["scope"], "organizational_unit_use_integrations");
    // The link token was single use.
    assert_eq!(
        c.open_unit(&client_id, redirect, &link, Some("calendars"))
            .await
            .status(),
        StatusCode::BAD_REQUEST
    );

    let (_, unit) = send(
        c.app
            .admin(Method::GET, &format!("/organizational_units/{ou}")),
    )
    .await;
    let order: Vec<&str> = unit["data"]["service_accounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["provider_name"].as_str().unwrap())
        .collect();
    assert_eq!(order, ["office365", "google"], "{unit}");
    let ser_google = unit["data"]["service_accounts"][1]["id"]
        .as_str()
        .unwrap()
        .to_string();

    // Authorizations through the Microsoft account fall through to Google.
    let rx = Receiver::ok().await;
    let items: Vec<Value> = [
        "alice@example.com",
        "carol@contoso.example",
        "erin@example.com",
        "nobody@example.com",
    ]
    .iter()
    .map(|e| json!({"email": e, "callback_url": rx.url, "scope": "read_write", "state": e}))
    .collect();
    assert_eq!(
        c.authorize_emails(&access, json!({"service_account_authorizations": items}))
            .await,
        StatusCode::ACCEPTED
    );
    let got = callbacks(&rx, 4).await;
    assert_eq!(by_state(&got, "nobody@example.com")["error"], "not_found");
    let mut account_tokens = std::collections::HashMap::new();
    for (email, provider) in [
        ("alice@example.com", "google"),
        ("carol@contoso.example", "office365"),
        ("erin@example.com", "google"),
    ] {
        let code = by_state(&got, email)["code"].as_str().unwrap_or_else(|| {
            panic!(
                "{email}: {got:?}",
                got = got.iter().map(|r| &r.json).collect::<Vec<_>>()
            )
        });
        let (_, account, _) = c.token(json!({"grant_type": "authorization_code", "client_id": client_id, "client_secret": secret, "code": code, "redirect_uri": rx.url})).await;
        account_tokens.insert(email, account["access_token"].as_str().unwrap().to_string());
        assert_eq!(
            account["linking_profile"]["provider_name"], provider,
            "{email}"
        );
    }

    // Unlinking Google: the accounts it served are provisioned again through Microsoft —
    // erin has no mailbox there and alice is not there: both are marked not found and
    // their tokens refused; carol (Microsoft's) is untouched.
    let (status, _) = send(c.app.admin(
        Method::DELETE,
        &format!("/organizational_units/{ou}/service_accounts/{ser_google}"),
    ))
    .await;
    assert_eq!(status, StatusCode::OK);
    let started = std::time::Instant::now();
    loop {
        let (_, view) = send(
            c.app
                .admin(Method::GET, &format!("/service_accounts/{ser_google}")),
        )
        .await;
        let states: Vec<&str> = view["data"]["account_list"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["state"].as_str().unwrap())
            .collect();
        if states == ["not_found", "not_found"] {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(15), "{view}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for email in ["alice@example.com", "erin@example.com"] {
        assert_eq!(
            c.userinfo(&account_tokens[email]).await.0,
            StatusCode::UNAUTHORIZED,
            "{email}"
        );
    }
    assert_eq!(
        c.userinfo(&account_tokens["carol@contoso.example"]).await.0,
        StatusCode::OK
    );
    let rx2 = Receiver::ok().await;
    assert_eq!(c.authorize_emails(&access, json!({"email": "alice@example.com", "callback_url": rx2.url, "scope": "read_write", "state": "again"})).await, StatusCode::ACCEPTED);
    assert_eq!(
        callbacks(&rx2, 1).await[0].json["authorization"]["error"],
        "not_found"
    );
}

/// DESIGN.md §6.4–6.6: Zoom and Webex join a Google service account's unit; every
/// conferencing account that knows an email adds a conferencing profile, in UserInfo and
/// the admin view.
async fn units_add_conferencing_accounts_and_profiles_by_email(c: Connect) {
    let redirect = "http://127.0.0.1:9/conf";
    let (client_id, secret) = c.application(redirect).await;
    let code = c
        .google_consent(&client_id, redirect, "admin@example.com")
        .await;
    let (_, tokens, _) = c.redeem(&client_id, &secret, &code, redirect).await;
    let ser = tokens["service_account_id"].as_str().unwrap().to_string();
    let access = tokens["access_token"].as_str().unwrap().to_string();

    // An unknown conferencing provider: the list of those offered.
    let (_, body) = c.link_token(&secret, &ser).await;
    let link = body["organizational_unit_authorization_link_token"]["ou_link_token"]
        .as_str()
        .unwrap()
        .to_string();
    let r = c
        .browser
        .get(c.url("/organizational_unit_oauth"))
        .query(&[
            ("response_type", "code"),
            ("client_id", client_id.as_str()),
            ("redirect_uri", redirect),
            ("scope", "organizational_unit_use_integrations"),
            ("ou_link_token", &link),
            ("capabilities[]", "conferencing"),
            ("conferencing_provider_name", "skype"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let page = r.text().await.unwrap();
    assert!(
        page.contains("data-provider=\"zoom_enterprise\"")
            && page.contains("data-provider=\"webex_enterprise\""),
        "{page}"
    );

    let unit = c
        .add_conferencing(&client_id, &secret, redirect, &ser, "zoom_enterprise")
        .await;
    let again = c
        .add_conferencing(&client_id, &secret, redirect, &ser, "webex_enterprise")
        .await;
    assert_eq!(unit, again, "the second joins the same unit");
    let (_, view) = send(
        c.app
            .admin(Method::GET, &format!("/organizational_units/{unit}")),
    )
    .await;
    let members: Vec<(&str, &str)> = view["data"]["service_accounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["capability"].as_str().unwrap(),
                s["provider_name"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        members,
        [
            ("calendars", "google"),
            ("conferencing", "webex_enterprise"),
            ("conferencing", "zoom_enterprise")
        ],
        "{view}"
    );

    // alice is in Zoom and Webex; bob is pending in Zoom (not usable) and not in Webex.
    let rx = Receiver::ok().await;
    let items: Vec<Value> = ["alice@example.com", "bob@example.com"]
        .iter()
        .map(|e| json!({"email": e, "callback_url": rx.url, "scope": "read_write", "state": e}))
        .collect();
    assert_eq!(
        c.authorize_emails(&access, json!({"service_account_authorizations": items}))
            .await,
        StatusCode::ACCEPTED
    );
    let got = callbacks(&rx, 2).await;
    let alice = userinfo_of(&c, &client_id, &secret, &rx.url, &got, "alice@example.com").await;
    let mut names: Vec<&str> = alice["cronofy.data"]["conferencing_profiles"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["provider_name"].as_str().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["webex_enterprise", "zoom_enterprise"], "{alice}");
    for p in alice["cronofy.data"]["conferencing_profiles"]
        .as_array()
        .unwrap()
    {
        assert!(p["profile_id"].as_str().unwrap().starts_with("cnf_"));
        assert_eq!(
            (p["profile_name"].as_str(), p["profile_connected"].as_bool()),
            (Some("alice@example.com"), Some(true))
        );
    }
    let bob = userinfo_of(&c, &client_id, &secret, &rx.url, &got, "bob@example.com").await;
    assert_eq!(
        bob["cronofy.data"]["conferencing_profiles"],
        json!([]),
        "{bob}"
    );

    // The admin view lists the accounts with their profiles; ?email= narrows it.
    let (_, accounts) = send(c.app.admin(
        Method::GET,
        &format!("/organizational_units/{unit}/accounts?email=ALICE@example.com"),
    ))
    .await;
    let list = accounts["data"].as_array().unwrap();
    assert_eq!(list.len(), 1, "{accounts}");
    assert_eq!(
        list[0]["conferencing_profiles"].as_array().unwrap().len(),
        2
    );

    // Zoom's access token expires: a single-use refresh token is rotated, once.
    c.providers.state.expire_tokens();
    let before = c.providers.state.requests("zoom/token");
    let rx2 = Receiver::ok().await;
    assert_eq!(c.authorize_emails(&access, json!({"email": "alice@example.com", "callback_url": rx2.url, "scope": "read_write", "state": "again"})).await, StatusCode::ACCEPTED);
    let again = callbacks(&rx2, 1).await;
    assert!(
        again[0].json["authorization"]["code"].is_string(),
        "{}",
        again[0].json
    );
    assert_eq!(c.providers.state.requests("zoom/token"), before + 1);

    // Indeed, approved into a new unit: the Google account moves there with it.
    let other = c
        .add_conferencing_to(&client_id, &secret, redirect, &ser, "indeed", "new")
        .await;
    assert_ne!(other, unit);
    let (_, moved) = send(
        c.app
            .admin(Method::GET, &format!("/organizational_units/{other}")),
    )
    .await;
    let members: Vec<&str> = moved["data"]["service_accounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["provider_name"].as_str().unwrap())
        .collect();
    assert_eq!(members, ["google", "indeed"], "{moved}");
}

/// UserInfo of the account whose callback (by state) is among `got`.
async fn userinfo_of(
    c: &Connect,
    client_id: &str,
    secret: &str,
    callback: &str,
    got: &[Received],
    state: &str,
) -> Value {
    let code = by_state(got, state)["code"].as_str().unwrap().to_string();
    let (_, account, _) = c.token(json!({"grant_type": "authorization_code", "client_id": client_id, "client_secret": secret, "code": code, "redirect_uri": callback})).await;
    c.userinfo(account["access_token"].as_str().unwrap())
        .await
        .1
}

/// An integrator's loop cannot fill the queue faster than providers answer: beyond
/// `MAX_PENDING` pending authorizations of one service account, `429`.
async fn a_service_account_has_a_bounded_queue(c: Connect) {
    use scimgate::connect::authorizations::MAX_PENDING;
    let redirect = "http://127.0.0.1:9/q";
    let (client_id, secret) = c.application(redirect).await;
    let code = c
        .google_consent(&client_id, redirect, "admin@example.com")
        .await;
    let (_, tokens, _) = c.redeem(&client_id, &secret, &code, redirect).await;
    let ser = tokens["service_account_id"].as_str().unwrap().to_string();
    let access = tokens["access_token"].as_str().unwrap().to_string();
    // The queue filled to one below the bound, due far in the future (no worker takes them).
    c.app
        .db
        .run(move |conn| {
            let app = scimgate::store::service_accounts::get(conn, &ser)?
                .unwrap()
                .application_id;
            let later = scimgate::store::now() + chrono::Duration::days(1);
            let rows: Vec<_> = (0..MAX_PENDING - 1)
                .map(|i| scimgate::store::authorization_jobs::JobRow {
                    id: format!("q{i}"),
                    application_id: app.clone(),
                    service_account_id: ser.clone(),
                    email: format!("q{i}@example.com"),
                    callback_url: "http://127.0.0.1:9/".into(),
                    scope: "read_write".into(),
                    state: None,
                    status: "lookup".into(),
                    attempts: 0,
                    next_attempt_at: later,
                    lease_until: None,
                    lease_owner: None,
                    callback_body: None,
                    account_id: None,
                    last_error: None,
                    created_at: later,
                    updated_at: later,
                })
                .collect();
            scimgate::store::authorization_jobs::insert(conn, &rows)
        })
        .await
        .unwrap();
    let one = |email: &str| json!({"email": email, "callback_url": "http://127.0.0.1:9/", "scope": "read_write"});
    assert_eq!(
        c.authorize_emails(&access, one("last@example.com")).await,
        StatusCode::ACCEPTED
    );
    assert_eq!(
        c.authorize_emails(&access, one("over@example.com")).await,
        StatusCode::TOO_MANY_REQUESTS
    );
}

/// DESIGN.md §6.5 "SCIM drives provisioning": a directory attached to a unit provisions
/// its users by itself (those already there too), suspends, resumes and revokes them as
/// the identity provider says, with `account.*` events on the directory's webhooks.
async fn scim_directories_provision_suspend_resume_and_revoke(c: Connect) {
    let unit = c
        .google_unit("http://127.0.0.1:9/scim", "zoom_enterprise")
        .await
        .unit;

    let rx = Receiver::ok().await;
    let dir = c
        .app
        .create_directory_with(json!({"tenant": "acme", "product": "cal", "webhook_url": rx.url, "webhook_secret": "s"}))
        .await;
    // bob is there before the directory is attached: the backfill provisions him.
    let (status, _) = send(
        c.app
            .scim(&dir, Method::POST, "/Users")
            .json(&crate::common::user("bob@example.com")),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    // An unknown unit is refused; the real one attaches.
    let attach = |ou: &str| {
        c.app
            .admin(Method::PATCH, &format!("/directory-sync/{}", dir.id))
            .json(&json!({"organizational_unit_id": ou}))
    };
    assert_eq!(send(attach("ou_0123")).await.0, StatusCode::BAD_REQUEST);
    let (status, body) = send(attach(&unit)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let of = |events: &[Value], kind: &str, email: &str| -> Vec<Value> {
        events
            .iter()
            .filter(|e| e["event"] == kind && e["data"]["email"] == email)
            .cloned()
            .collect()
    };
    rx.wait_until(Duration::from_secs(15), |e| {
        !of(e, "account.provisioned", "bob@example.com").is_empty()
    })
    .await;

    // alice: provisioned with her Zoom profile; a user without email is skipped; nobody
    // is known to no calendar account.
    let (status, alice) = send(
        c.app
            .scim(&dir, Method::POST, "/Users")
            .json(&crate::common::user("alice@example.com")),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let alice_id = alice["id"].as_str().unwrap().to_string();
    let mut no_mail = crate::common::user("nomail");
    no_mail.as_object_mut().unwrap().remove("emails");
    assert_eq!(
        send(c.app.scim(&dir, Method::POST, "/Users").json(&no_mail))
            .await
            .0,
        StatusCode::CREATED
    );
    assert_eq!(
        send(
            c.app
                .scim(&dir, Method::POST, "/Users")
                .json(&crate::common::user("nobody@example.com"))
        )
        .await
        .0,
        StatusCode::CREATED
    );
    let events = rx
        .wait_until(Duration::from_secs(15), |e| {
            !of(e, "account.provisioned", "alice@example.com").is_empty()
                && !of(e, "account.provisioning_failed", "nobody@example.com").is_empty()
        })
        .await;
    let provisioned = &of(&events, "account.provisioned", "alice@example.com")[0]["data"];
    assert_eq!(provisioned["user_id"], alice_id.as_str());
    assert_eq!(provisioned["provider"], "google");
    assert_eq!(
        provisioned["conferencing_profile_ids"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        of(
            &events,
            "conferencing_profile.provisioned",
            "alice@example.com"
        )
        .len(),
        1
    );
    let account = provisioned["account_id"].as_str().unwrap().to_string();
    // The IdP repeats the POST (409), then a PUT with the same data: still one account.
    assert_eq!(
        send(
            c.app
                .scim(&dir, Method::POST, "/Users")
                .json(&crate::common::user("alice@example.com"))
        )
        .await
        .0,
        StatusCode::CONFLICT
    );
    assert_eq!(
        send(
            c.app
                .scim(&dir, Method::PUT, &format!("/Users/{alice_id}"))
                .json(&crate::common::user("alice@example.com"))
        )
        .await
        .0,
        StatusCode::OK
    );

    // Deactivated: suspended (its tokens would answer 401), then active again: resumed.
    let patch = |active: bool| json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": [{"op": "replace", "value": {"active": active}}]});
    assert_eq!(
        send(
            c.app
                .scim(&dir, Method::PATCH, &format!("/Users/{alice_id}"))
                .json(&patch(false))
        )
        .await
        .0,
        StatusCode::OK
    );
    rx.wait_until(Duration::from_secs(15), |e| {
        !of(e, "account.suspended", "alice@example.com").is_empty()
    })
    .await;
    let (_, listed) = send(c.app.admin(
        Method::GET,
        &format!("/organizational_units/{unit}/accounts?email=alice@example.com"),
    ))
    .await;
    assert_eq!(listed["data"][0]["state"], "suspended", "{listed}");
    assert_eq!(listed["data"][0]["profiles"][0]["profile_connected"], false);
    assert_eq!(
        send(
            c.app
                .scim(&dir, Method::PATCH, &format!("/Users/{alice_id}"))
                .json(&patch(true))
        )
        .await
        .0,
        StatusCode::OK
    );
    let events = rx
        .wait_until(Duration::from_secs(15), |e| {
            of(e, "account.provisioned", "alice@example.com").len() == 2
        })
        .await;
    assert_eq!(
        of(&events, "account.provisioned", "alice@example.com")[1]["data"]["account_id"],
        account.as_str()
    );

    // Deleted: revoked, with its conferencing profile.
    assert_eq!(
        send(
            c.app
                .scim(&dir, Method::DELETE, &format!("/Users/{alice_id}"))
        )
        .await
        .0,
        StatusCode::NO_CONTENT
    );
    let events = rx
        .wait_until(Duration::from_secs(15), |e| {
            !of(e, "account.revoked", "alice@example.com").is_empty()
        })
        .await;
    assert_eq!(
        of(&events, "conferencing_profile.revoked", "alice@example.com").len(),
        1
    );
    assert_eq!(
        of(&events, "account.provisioned", "alice@example.com").len(),
        2,
        "one account, provisioned and resumed"
    );

    let (_, state) = send(c.app.admin(
        Method::GET,
        &format!("/directory-sync/{}/provisioning", dir.id),
    ))
    .await;
    // Counted per user: bob provisioned; alice's account left with her user; nomail
    // skipped; nobody failed, with why.
    assert_eq!(
        state["data"]["users"],
        json!({"provisioned": 1, "suspended": 0, "pending": 0, "failed": 1, "skipped": 1}),
        "{state}"
    );
    let issues: Vec<(&str, &str)> = state["data"]["issues"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["email"].as_str().unwrap_or(""),
                i["reason"].as_str().unwrap(),
            )
        })
        .collect();
    assert!(
        issues.contains(&("nobody@example.com", "not_found")),
        "{state}"
    );
    assert!(issues.contains(&("", "no_email")), "{state}");
    assert_eq!(state["data"]["accounts"], json!({"active": 1}), "{state}");
}

/// An email change provisions the new address and revokes the old; a provider that is
/// down keeps the user pending (retried, `Retry-After` honoured); relink provisions an
/// account's email again (not found any more: `not_found`).
async fn scim_provisioning_follows_email_changes_waits_for_providers_and_relinks(c: Connect) {
    let made = c
        .google_unit("http://127.0.0.1:9/scim2", "webex_enterprise")
        .await;
    let (ser, unit) = (made.ser, made.unit);
    let rx = Receiver::ok().await;
    let dir = c
        .app
        .create_directory_with(json!({"tenant": "acme2", "product": "cal", "webhook_url": rx.url, "webhook_secret": "s"}))
        .await;
    let (status, _) = send(
        c.app
            .admin(Method::PATCH, &format!("/directory-sync/{}", dir.id))
            .json(&json!({"organizational_unit_id": unit})),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let of = |events: &[Value], kind: &str, email: &str| {
        events
            .iter()
            .filter(|e| e["event"] == kind && e["data"]["email"] == email)
            .count()
    };

    let (_, alice) = send(
        c.app
            .scim(&dir, Method::POST, "/Users")
            .json(&crate::common::user("alice@example.com")),
    )
    .await;
    let id = alice["id"].as_str().unwrap().to_string();
    rx.wait_until(Duration::from_secs(15), |e| {
        of(e, "account.provisioned", "alice@example.com") == 1
    })
    .await;
    // The email changes: bob@ is provisioned, alice@ revoked.
    let change = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": [{"op": "replace", "path": "emails", "value": [{"value": "bob@example.com", "primary": true}]}]});
    assert_eq!(
        send(
            c.app
                .scim(&dir, Method::PATCH, &format!("/Users/{id}"))
                .json(&change)
        )
        .await
        .0,
        StatusCode::OK
    );
    let events = rx
        .wait_until(Duration::from_secs(15), |e| {
            of(e, "account.provisioned", "bob@example.com") == 1
                && of(e, "account.revoked", "alice@example.com") == 1
        })
        .await;
    let bob_account = events
        .iter()
        .find(|e| e["event"] == "account.provisioned" && e["data"]["email"] == "bob@example.com")
        .unwrap()["data"]["account_id"]
        .as_str()
        .unwrap()
        .to_string();

    // Google answers 503 twice (Retry-After: 1): erin waits, then is provisioned.
    c.providers
        .state
        .add_google_user("erin@example.com", false)
        .unwrap();
    c.providers.state.fail_next("google/admin", 503, 2, Some(1));
    let started = std::time::Instant::now();
    assert_eq!(
        send(
            c.app
                .scim(&dir, Method::POST, "/Users")
                .json(&crate::common::user("erin@example.com"))
        )
        .await
        .0,
        StatusCode::CREATED
    );
    let mut saw_pending = false;
    loop {
        let (_, state) = send(c.app.admin(
            Method::GET,
            &format!("/directory-sync/{}/provisioning", dir.id),
        ))
        .await;
        saw_pending |= state["data"]["pending_error"]
            .as_str()
            .is_some_and(|e| e.contains("503"));
        if of(
            &rx.delivered_events(),
            "account.provisioned",
            "erin@example.com",
        ) == 1
        {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "{state}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(saw_pending, "the pending error was visible");
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "Retry-After was honoured"
    );

    // Relink: bob is no longer in Google: his account is marked not found.
    c.providers.state.remove_google_user("bob@example.com");
    let (status, _) = send(c.app.admin(
        Method::POST,
        &format!("/organizational_units/{unit}/accounts/{bob_account}/relink"),
    ))
    .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let started = std::time::Instant::now();
    loop {
        let (_, ser_view) = send(
            c.app
                .admin(Method::GET, &format!("/service_accounts/{ser}")),
        )
        .await;
        let state = ser_view["data"]["account_list"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["account_id"] == bob_account.as_str())
            .unwrap()["state"]
            .clone();
        if state == "not_found" {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(15), "{ser_view}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// DESIGN.md §6.5 at scale: 200 users pushed over SCIM into a directory attached to a
/// unit of a Google Workspace domain, Zoom and a Microsoft 365 tenant (link order). Each is
/// provisioned by the calendar account that knows it — Microsoft's users after Google
/// said not found — with a Zoom profile where Zoom knows the email; then a user of each
/// tenant is suspended and revoked.
async fn scim_provisions_200_users_across_two_calendar_tenants_and_zoom(c: Connect) {
    const EACH: usize = 100;
    let st = &c.providers.state;
    st.add_tenant(TENANT, &["fabrikam.example"]);
    let google = |i: usize| format!("g{i}@example.com");
    let microsoft = |i: usize| format!("m{i}@fabrikam.example");
    // Zoom knows every third user of each tenant.
    let zoomed = |i: usize| i.is_multiple_of(3);
    for i in 0..EACH {
        st.add_google_user(&google(i), false).unwrap();
        st.add_microsoft_user(&microsoft(i), true).unwrap();
        if zoomed(i) {
            st.add_zoom_user("zacc_demo", &google(i), "active").unwrap();
            st.add_zoom_user("zacc_demo", &microsoft(i), "active")
                .unwrap();
        }
    }
    let redirect = "http://127.0.0.1:9/scale";
    let (client_id, secret, ms) = c.microsoft_service_account(redirect).await;
    let ser_ms = ms["service_account_id"].as_str().unwrap().to_string();
    let unit = c
        .google_unit_of(client_id, secret, redirect, "zoom_enterprise")
        .await
        .unit;
    // The Microsoft account joins last (the unit pages are tested above).
    let u = unit.clone();
    c.app
        .db
        .run(move |conn| {
            scimgate::store::write_tx(conn, |conn| {
                scimgate::store::organizational_units::join(conn, &ser_ms, &u)
            })
        })
        .await
        .unwrap();

    let rx = Receiver::ok().await;
    let dir = c
        .app
        .create_directory_with(json!({"tenant": "scale", "product": "cal", "webhook_url": rx.url, "webhook_secret": "s"}))
        .await;
    let (status, body) = send(
        c.app
            .admin(Method::PATCH, &format!("/directory-sync/{}", dir.id))
            .json(&json!({"organizational_unit_id": unit})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let emails: Vec<String> = (0..EACH).flat_map(|i| [google(i), microsoft(i)]).collect();
    let ops: Vec<Value> = emails
        .iter()
        .map(|e| json!({"method": "POST", "path": "/Users", "bulkId": e, "data": crate::common::user(e)}))
        .collect();
    let (status, body) = send(c.app.scim(&dir, Method::POST, "/Bulk").json(
        &json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"], "Operations": ops}),
    ))
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let ids: std::collections::HashMap<String, String> = body["Operations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            let location = o["location"].as_str().unwrap();
            let id = location.rsplit('/').next().unwrap().to_string();
            (o["bulkId"].as_str().unwrap().to_string(), id)
        })
        .collect();

    let count = |events: &[Value], kind: &str| events.iter().filter(|e| e["event"] == kind).count();
    let events = rx
        .wait_until(Duration::from_secs(60), |e| {
            count(e, "account.provisioned") == 2 * EACH
        })
        .await;
    assert_eq!(count(&events, "account.provisioning_failed"), 0);
    let provisioned: std::collections::HashMap<&str, &Value> = events
        .iter()
        .filter(|e| e["event"] == "account.provisioned")
        .map(|e| (e["data"]["email"].as_str().unwrap(), &e["data"]))
        .collect();
    for i in 0..EACH {
        for (email, provider) in [(google(i), "google"), (microsoft(i), "office365")] {
            let data = provisioned[email.as_str()];
            assert_eq!(data["provider"], provider, "{email}: {data}");
            assert_eq!(data["user_id"], ids[&email].as_str(), "{email}");
            let profiles = data["conferencing_profile_ids"].as_array().unwrap().len();
            assert_eq!(profiles, usize::from(zoomed(i)), "{email}: {data}");
        }
    }
    let with_zoom = (0..EACH).filter(|i| zoomed(*i)).count() * 2;
    assert_eq!(
        count(&events, "conferencing_profile.provisioned"),
        with_zoom
    );
    let (_, state) = send(c.app.admin(
        Method::GET,
        &format!("/directory-sync/{}/provisioning", dir.id),
    ))
    .await;
    assert_eq!(
        state["data"]["users"],
        json!({"provisioned": 2 * EACH, "suspended": 0, "pending": 0, "failed": 0, "skipped": 0}),
        "{state}"
    );

    // One user of each tenant (both with Zoom): deactivated, then deleted.
    let deactivate = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": [{"op": "replace", "value": {"active": false}}]});
    for email in [google(0), microsoft(0)] {
        let path = format!("/Users/{}", ids[&email]);
        let (status, _) = send(c.app.scim(&dir, Method::PATCH, &path).json(&deactivate)).await;
        assert_eq!(status, StatusCode::OK);
        let (status, _) = send(c.app.scim(&dir, Method::DELETE, &path)).await;
        assert_eq!(status, StatusCode::NO_CONTENT);
    }
    let events = rx
        .wait_until(Duration::from_secs(15), |e| {
            count(e, "account.revoked") == 2
        })
        .await;
    for email in [google(0), microsoft(0)] {
        let of = |kind: &str| {
            events
                .iter()
                .filter(|e| e["event"] == kind && e["data"]["email"] == email.as_str())
                .count()
        };
        assert_eq!(of("account.suspended"), 1, "{email}");
        assert_eq!(of("account.revoked"), 1, "{email}");
        assert_eq!(of("conferencing_profile.revoked"), 1, "{email}");
    }
}
