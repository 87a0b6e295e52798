//! The connectors against the fake providers of `crate::devproviders`, over real HTTP on
//! 127.0.0.1.

use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rsa::pkcs1v15::{Signature, VerifyingKey};
use rsa::pkcs8::DecodePrivateKey;
use rsa::sha2::Sha256;
use rsa::signature::Verifier;

use super::google::{self, Google, Listing, ServiceAccountKey, USER_READONLY_SCOPE};
use super::microsoft::Microsoft;
use super::ProviderError;
use crate::devproviders::DevProviders;
use crate::outbound;
use crate::secrets::Secret;

const TENANT: &str = "11111111-2222-3333-4444-555555555555";

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

fn google(fakes: &DevProviders) -> Google {
    let key = ServiceAccountKey::from_json(&fakes.google_key_json()).unwrap();
    Google::new(client(), Arc::new(key), &fakes.google_admin_url())
}

fn microsoft(fakes: &DevProviders, secret: Option<&str>) -> Microsoft {
    let (id, real) = fakes.microsoft_client();
    Microsoft::new(
        client(),
        &id,
        Secret::new(secret.unwrap_or(&real).to_string()),
        &fakes.microsoft_login_url(),
        &fakes.microsoft_graph_url(),
    )
}

#[tokio::test]
async fn the_assertion_is_an_rs256_jwt_with_the_claims_google_wants() {
    let fakes = fakes().await;
    let json = fakes.google_key_json();
    let key = ServiceAccountKey::from_json(&json).unwrap();
    assert!(
        !format!("{key:?}").contains("PRIVATE"),
        "Debug hides the key"
    );
    let jwt = google::assertion(&key, "admin@example.com", &["a", "b"], 1_700_000_000).unwrap();
    let (signed, signature) = jwt.rsplit_once('.').unwrap();
    let (header, claims) = signed.split_once('.').unwrap();
    let decode = |p: &str| -> serde_json::Value {
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(p).unwrap()).unwrap()
    };
    assert_eq!(
        decode(header),
        serde_json::json!({"alg": "RS256", "typ": "JWT"})
    );
    assert_eq!(
        decode(claims),
        serde_json::json!({
            "iss": key.client_email, "sub": "admin@example.com", "scope": "a b",
            "aud": fakes.google_token_uri(), "iat": 1_700_000_000, "exp": 1_700_003_600,
        })
    );
    let pem: serde_json::Value = serde_json::from_str(&json).unwrap();
    let private = rsa::PrivateKey::from_pkcs8_pem(pem["private_key"].as_str().unwrap()).unwrap();
    let signature =
        Signature::try_from(URL_SAFE_NO_PAD.decode(signature).unwrap().as_slice()).unwrap();
    let verifier = VerifyingKey::<Sha256>::new(private.to_public_key());
    verifier.verify(signed.as_bytes(), &signature).unwrap();
    assert!(verifier.verify(b"other", &signature).is_err());

    for (bad, field) in [
        ("{", "not JSON"),
        (r#"{"client_email":"x"}"#, "private_key"),
        (r#"{"type":"authorized_user"}"#, "type"),
    ] {
        let err = ServiceAccountKey::from_json(bad).unwrap_err().to_string();
        assert!(err.contains(field), "{err}");
    }
    let mangled = json.replace("MII", "XXX");
    let err = ServiceAccountKey::from_json(&mangled)
        .unwrap_err()
        .to_string();
    assert!(err.contains("PKCS#8") && !err.contains("XXX"), "{err}");
    fakes.stop().await;
}

#[tokio::test]
async fn google_tokens_and_users() {
    let fakes = fakes().await;
    let g = google(&fakes);
    assert_eq!(g.client_id(), fakes.google_client_id());

    let token = g
        .token("admin@example.com", &[USER_READONLY_SCOPE])
        .await
        .unwrap();
    assert!(token.token.expose().starts_with("ya29."));
    assert!(token.expires_at > chrono::Utc::now() + chrono::Duration::minutes(55));
    let admin = g
        .user(token.token.expose(), "Admin@Example.com")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(admin.primary_email, "admin@example.com");
    assert!(admin.is_admin && !admin.suspended);
    assert_eq!(admin.full_name.as_deref(), Some("Admin User"));
    let alice = g
        .user(token.token.expose(), "alice@example.com")
        .await
        .unwrap()
        .unwrap();
    assert!(!alice.is_admin);
    assert_eq!(alice.given_name.as_deref(), Some("Alice"));
    assert!(alice.id.chars().all(|c| c.is_ascii_digit()));
    assert_eq!(
        g.user(token.token.expose(), "nobody@example.com")
            .await
            .unwrap(),
        None
    );

    // A non-admin may have a token, but not read the directory.
    let as_alice = g
        .token("alice@example.com", &[USER_READONLY_SCOPE])
        .await
        .unwrap();
    let err = g
        .user(as_alice.token.expose(), "bob@example.com")
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ProviderError::Refused(m) if m.contains("Not Authorized")),
        "{err}"
    );

    // Not a user of any workspace.
    let err = g
        .token("ghost@example.com", &[USER_READONLY_SCOPE])
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ProviderError::Refused(m) if m.contains("invalid_grant: Invalid email or User ID")),
        "{err}"
    );

    // Quota: 429 with Retry-After, then it works again.
    fakes.state.fail_next("google/admin", 429, 1, Some(7));
    let err = g
        .user(token.token.expose(), "alice@example.com")
        .await
        .unwrap_err();
    match &err {
        ProviderError::Unavailable {
            message,
            retry_after,
        } => {
            assert_eq!(*retry_after, Some(Duration::from_secs(7)));
            assert!(message.contains("rateLimitExceeded"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    assert!(err.is_retryable());
    assert!(g
        .user(token.token.expose(), "alice@example.com")
        .await
        .is_ok());

    fakes.state.fail_next("google/token", 503, 1, None);
    let err = g
        .token("admin@example.com", &[USER_READONLY_SCOPE])
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            ProviderError::Unavailable {
                retry_after: None,
                ..
            }
        ),
        "{err}"
    );

    // Expired tokens are 401: refresh and retry.
    fakes.state.expire_tokens();
    let err = g
        .user(token.token.expose(), "alice@example.com")
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ProviderError::Unauthorized(m) if m.contains("authError")),
        "{err}"
    );
    assert!(!err.to_string().contains(token.token.expose()));
    let fresh = g
        .token("admin@example.com", &[USER_READONLY_SCOPE])
        .await
        .unwrap();
    assert!(g
        .user(fresh.token.expose(), "alice@example.com")
        .await
        .is_ok());
    assert_eq!(fakes.state.requests("google/token"), 5);
    assert_eq!(fakes.state.requests("google/admin"), 8);
    fakes.stop().await;
}

#[tokio::test]
async fn google_without_delegation_is_refused_with_googles_words() {
    let fakes = fakes().await;
    fakes
        .state
        .add_google_user("admin@other.example", true)
        .unwrap();
    let g = google(&fakes);
    let err = g
        .token("admin@other.example", &[USER_READONLY_SCOPE])
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ProviderError::Refused(m) if m.contains("unauthorized_client: Client is unauthorized")),
        "{err}"
    );
    // A delegation for other scopes does not cover this one.
    fakes.state.grant_delegation(
        "other.example",
        &["https://www.googleapis.com/auth/calendar"],
    );
    assert!(g
        .token("admin@other.example", &[USER_READONLY_SCOPE])
        .await
        .is_err());
    fakes
        .state
        .grant_delegation("other.example", &[USER_READONLY_SCOPE]);
    let token = g
        .token("admin@other.example", &[USER_READONLY_SCOPE])
        .await
        .unwrap();
    // Users of another workspace are not found from this one.
    assert_eq!(
        g.user(token.token.expose(), "alice@example.com")
            .await
            .unwrap(),
        None
    );
    fakes.stop().await;
}

#[tokio::test]
async fn microsoft_consent_tokens_and_users() {
    let fakes = fakes().await;
    let ms = microsoft(&fakes, None);

    // Before consent the app is unknown in the tenant.
    let err = ms.token(TENANT).await.unwrap_err();
    assert!(
        matches!(&err, ProviderError::Refused(m) if m.contains("unauthorized_client: AADSTS700016")),
        "{err}"
    );
    assert!(!err.to_string().contains("Trace ID"), "{err}");

    // The consent page links each tenant to /_consent, which redirects back.
    let page_url = ms.admin_consent_url("https://gw.example/callback?x=1", "st&ate");
    let http = client();
    let page = http.get(&page_url).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let page = page.text().await.unwrap();
    assert!(
        page.contains(&format!(r#"class="consent" data-tenant="{TENANT}""#)),
        "{page}"
    );
    let start = page.find("/microsoft/login/_consent?").unwrap();
    let href = &page[start..start + page[start..].find('"').unwrap()];
    let href = href.replace("&amp;", "&");
    let consent = http
        .get(format!("http://{}{href}", fakes.addr))
        .send()
        .await
        .unwrap();
    assert_eq!(consent.status(), 302);
    let location = outbound::Url::parse(consent.headers()["location"].to_str().unwrap()).unwrap();
    assert_eq!(location.path(), "/callback");
    let pairs: Vec<(String, String)> = location.query_pairs().into_owned().collect();
    let pair = |k: &str, v: &str| (k.to_string(), v.to_string());
    assert_eq!(
        pairs,
        [
            pair("x", "1"),
            pair("tenant", TENANT),
            pair("admin_consent", "True"),
            pair("state", "st&ate"),
        ]
    );
    assert!(fakes.state.is_consented(TENANT));
    // An unknown client gets Microsoft's error page.
    let wrong = page_url.replace("client_id=", "client_id=x");
    let wrong = http.get(&wrong).send().await.unwrap();
    assert_eq!(wrong.status(), 400);

    let token = ms.token(TENANT).await.unwrap();
    assert!(token.token.expose().starts_with("eyJ0"));
    let org = ms.organization(token.token.expose()).await.unwrap();
    assert_eq!(org.id, TENANT);
    assert_eq!(org.domains, ["contoso.example"]);

    let carol = ms
        .user(token.token.expose(), "Carol@contoso.example")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(carol.user_principal_name, "carol@contoso.example");
    assert_eq!(carol.display_name.as_deref(), Some("Carol User"));
    // dave has no Exchange Online mailbox: not here.
    assert_eq!(
        ms.user(token.token.expose(), "dave@contoso.example")
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        ms.user(token.token.expose(), "nobody@contoso.example")
            .await
            .unwrap(),
        None
    );

    fakes.state.fail_next("microsoft/graph", 503, 1, Some(2));
    let err = ms
        .user(token.token.expose(), "carol@contoso.example")
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ProviderError::Unavailable { message, retry_after: Some(d) }
            if message.contains("ServiceUnavailable") && *d == Duration::from_secs(2)),
        "{err}"
    );

    fakes.state.expire_tokens();
    let err = ms.organization(token.token.expose()).await.unwrap_err();
    assert!(
        matches!(&err, ProviderError::Unauthorized(m) if m.contains("InvalidAuthenticationToken")),
        "{err}"
    );

    let err = microsoft(&fakes, Some("wrong"))
        .token(TENANT)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ProviderError::Refused(m) if m.contains("invalid_client: AADSTS7000215")),
        "{err}"
    );
    assert!(!err.to_string().contains("wrong"), "{err}");
    let err = ms
        .token("99999999-0000-0000-0000-000000000000")
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ProviderError::Refused(m) if m.contains("AADSTS90002")),
        "{err}"
    );
    assert!(matches!(
        ms.token("../x").await,
        Err(ProviderError::Refused(_))
    ));
    fakes.state.fail_next("microsoft/token", 429, 1, Some(30));
    assert!(matches!(
        ms.token(TENANT).await,
        Err(ProviderError::Unavailable {
            retry_after: Some(_),
            ..
        })
    ));
    fakes.stop().await;
}

#[tokio::test]
async fn decline_and_transport_failures() {
    let fakes = fakes().await;
    let http = client();
    let decline = http
        .get(format!(
            "http://{}/microsoft/login/_decline?redirect_uri=https%3A%2F%2Fgw.example%2Fcb&state=s1",
            fakes.addr
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(decline.status(), 302);
    let location = decline.headers()["location"].to_str().unwrap();
    assert!(
        location
            .starts_with("https://gw.example/cb?error=access_denied&error_description=AADSTS65004"),
        "{location}"
    );

    // A provider that does not answer in time is Unavailable, described without the URL.
    fakes.state.set_latency(Duration::from_millis(800));
    let slow = outbound::client(&outbound::Settings {
        timeout: Duration::from_millis(200),
        allow_private: true,
    })
    .unwrap();
    let key = ServiceAccountKey::from_json(&fakes.google_key_json()).unwrap();
    let g = Google::new(slow, Arc::new(key), &fakes.google_admin_url());
    let err = g
        .user("secret-token", "alice@example.com")
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ProviderError::Unavailable { message, .. } if message.contains("timed out")),
        "{err}"
    );
    assert!(!err.to_string().contains("127.0.0.1") && !err.to_string().contains("secret-token"));
    fakes.stop().await;
}

#[tokio::test]
async fn the_control_api_changes_the_fakes() {
    let fakes = fakes().await;
    let http = client();
    let control = |path: &str, body: serde_json::Value| {
        http.post(format!("http://{}/_control/{path}", fakes.addr))
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
    };
    let ok = |r: outbound::Response| assert_eq!(r.status(), 200);
    ok(control(
        "google/users",
        serde_json::json!({"email": "boss@acme.example", "is_admin": true}),
    )
    .await
    .unwrap());
    ok(control(
        "google/users",
        serde_json::json!({"email": "eve@acme.example"}),
    )
    .await
    .unwrap());
    ok(control(
        "google/delegations",
        serde_json::json!({"domain": "acme.example", "scopes": [USER_READONLY_SCOPE]}),
    )
    .await
    .unwrap());
    let g = google(&fakes);
    let token = g
        .token("boss@acme.example", &[USER_READONLY_SCOPE])
        .await
        .unwrap();
    let eve = g
        .user(token.token.expose(), "eve@acme.example")
        .await
        .unwrap();
    assert_eq!(eve.map(|u| u.is_admin), Some(false));

    ok(control(
        "microsoft/tenants",
        serde_json::json!({"tenant_id": "t-2", "domains": ["fabrikam.example"], "consented": true}),
    )
    .await
    .unwrap());
    ok(control(
        "microsoft/users",
        serde_json::json!({"email": "frank@fabrikam.example", "mailbox": true}),
    )
    .await
    .unwrap());
    let refused = control(
        "microsoft/users",
        serde_json::json!({"email": "x@nowhere.example"}),
    )
    .await
    .unwrap();
    assert_eq!(refused.status(), 400);
    let ms = microsoft(&fakes, None);
    let token = ms.token("t-2").await.unwrap();
    assert!(ms
        .user(token.token.expose(), "frank@fabrikam.example")
        .await
        .unwrap()
        .is_some());

    ok(control(
        "faults",
        serde_json::json!({"prefix": "microsoft/graph", "status": 429, "retry_after": 3}),
    )
    .await
    .unwrap());
    assert!(matches!(
        ms.organization(token.token.expose()).await,
        Err(ProviderError::Unavailable { retry_after: Some(d), .. }) if d == Duration::from_secs(3)
    ));
    ok(control("expire_tokens", serde_json::json!({}))
        .await
        .unwrap());
    assert!(matches!(
        ms.organization(token.token.expose()).await,
        Err(ProviderError::Unauthorized(_))
    ));
    assert_eq!(fakes.state.requests("microsoft/graph"), 4);
    fakes.stop().await;
}

#[tokio::test]
async fn google_lists_users_groups_and_members_page_by_page() {
    let fakes = fakes().await;
    let st = &fakes.state;
    for i in 0..1203 {
        st.add_google_user(&format!("p{i:04}@example.com"), false)
            .unwrap();
    }
    st.add_google_user("someone@other.example", false).unwrap();
    let g = google(&fakes);
    // Without the group scopes granted, no token for all three.
    st.revoke_delegation("example.com");
    st.grant_delegation("example.com", &[USER_READONLY_SCOPE]);
    let refused = g
        .token("admin@example.com", &google::DIRECTORY_SCOPES)
        .await
        .unwrap_err();
    assert!(
        refused.to_string().contains("unauthorized_client"),
        "{refused}"
    );
    st.grant_delegation("example.com", &google::DIRECTORY_SCOPES);
    let token = g
        .token("admin@example.com", &google::DIRECTORY_SCOPES)
        .await
        .unwrap();
    let token = token.token.expose();
    let (mut seen, mut next, mut pages) = (Vec::new(), None, 0);
    loop {
        let page = g
            .list(token, Listing::Users, next.as_deref())
            .await
            .unwrap();
        pages += 1;
        seen.extend(
            page.items
                .iter()
                .map(|u| u["primaryEmail"].as_str().unwrap().to_string()),
        );
        next = page.next_page_token;
        if next.is_none() {
            break;
        }
    }
    // 1 203 + admin, alice, bob: three pages of up to 500, no other domain.
    assert_eq!((seen.len(), pages), (1206, 3));
    assert!(!seen.iter().any(|e| e.ends_with("other.example")));
    let groups = g.list(token, Listing::Groups, None).await.unwrap();
    assert_eq!(groups.items.len(), 1);
    assert_eq!(groups.items[0]["name"], "Engineering");
    let id = groups.items[0]["id"].as_str().unwrap();
    let members = g.list(token, Listing::Members(id), None).await.unwrap();
    let emails: Vec<&str> = members
        .items
        .iter()
        .map(|m| m["email"].as_str().unwrap())
        .collect();
    assert_eq!(emails, ["alice@example.com", "bob@example.com"]);
    assert_eq!(members.items[0]["type"], "USER");
    // A 429 is retryable with its Retry-After, a 401 asks for a new token.
    st.fail_next("google/admin", 429, 1, Some(3));
    match g.list(token, Listing::Groups, None).await {
        Err(ProviderError::Unavailable { retry_after, .. }) => {
            assert_eq!(retry_after, Some(Duration::from_secs(3)))
        }
        other => panic!("{other:?}"),
    }
    st.expire_tokens();
    assert!(matches!(
        g.list(token, Listing::Users, None).await,
        Err(ProviderError::Unauthorized(_))
    ));
    fakes.stop().await;
}
