//! `--connect`: Enterprise Connect under load against the local provider stand-ins
//! (`scimgate::devproviders`, in this process): a batch of `--users` delegated
//! authorizations (50 per request) until the last signed callback arrives, then every
//! account code exchanged at `/oauth/token`, then `--requests` `GET /v1/userinfo`.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::{web, App, HttpResponse, HttpServer};
use scimgate::devproviders::DevProviders;
use serde_json::{json, Value};

use super::{phase, serve, Args, Stats};

struct Rx {
    codes: Mutex<Vec<String>>,
    errors: Mutex<usize>,
    last: Mutex<Option<Instant>>,
}

async fn receive(body: web::Bytes, rx: web::Data<Arc<Rx>>) -> HttpResponse {
    let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    match v["authorization"]["code"].as_str() {
        Some(c) => rx.codes.lock().unwrap().push(c.to_string()),
        None => *rx.errors.lock().unwrap() += 1,
    }
    *rx.last.lock().unwrap() = Some(Instant::now());
    HttpResponse::Ok().finish()
}

fn hidden(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html.find(&marker).expect("hidden input") + marker.len();
    html[start..]
        .split('"')
        .next()
        .unwrap_or_default()
        .to_string()
}

/// What `--connect` measures.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Delegated authorizations, then the token endpoint and UserInfo.
    Authorizations,
    /// As `Authorizations`, the service account authorizing being the first of a unit of
    /// three calendar accounts (two Microsoft 365 tenants that do not know the emails,
    /// then the Google domain that does): every authorization falls through twice.
    Unit,
    /// SCIM create → `account.provisioned` webhook, one user at a time.
    Scim,
    /// The backfill of a directory of `--users` users attached to a unit.
    Backfill,
}

pub async fn run(a: &Args, url: &str, provider_latency: Duration, mode: Mode) {
    let unit = mode == Mode::Unit;
    let providers = DevProviders::start("127.0.0.1:0").await.expect("providers");
    providers.seed_demo().expect("seed");
    for i in 0..a.users {
        providers
            .state
            .add_google_user(&format!("u{i}@example.com"), false)
            .expect("user");
    }
    providers.state.set_latency(provider_latency);
    let key =
        std::env::temp_dir().join(format!("scimgate-load-google-{}.json", std::process::id()));
    std::fs::write(&key, providers.google_key_json()).expect("key file");
    let admin_url = providers.google_admin_url();
    let concurrency = a.concurrency;
    let (ms_id, ms_secret) = providers.microsoft_client();
    let (login, graph) = (
        providers.microsoft_login_url(),
        providers.microsoft_graph_url(),
    );
    for (tenant, domain) in [
        (TENANT_A, "contoso.example"),
        (TENANT_B, "fabrikam.example"),
    ] {
        providers.state.add_tenant(tenant, &[domain, "example.com"]);
        providers.state.consent(tenant);
    }
    let (db, base) = serve(url, |c| {
        c.google_service_account_key = Some(key.clone());
        c.google_admin_url = admin_url;
        c.microsoft_client_id = Some(ms_id);
        c.microsoft_client_secret = Some(ms_secret);
        c.microsoft_login_url = login;
        c.microsoft_graph_url = graph;
        c.webhook_allow_private = true;
        c.authorization_concurrency = concurrency.max(1) * 4;
    });
    scimgate::outbound::install_tls_provider();
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .pool_max_idle_per_host(a.concurrency)
        .build()
        .expect("client");

    // An application and a service account, through the consent pages.
    let redirect = "http://127.0.0.1:9/cb";
    let app: Value = client
        .post(format!("{base}/api/v1/applications"))
        .header("Authorization", "Api-Key load")
        .json(&json!({"name": "load", "redirect_uris": [redirect]}))
        .send()
        .await
        .expect("application")
        .json()
        .await
        .expect("json");
    let client_id = app["data"]["client_id"]
        .as_str()
        .expect("client_id")
        .to_string();
    let secret = app["data"]["client_secret"]
        .as_str()
        .expect("secret")
        .to_string();
    let r = client
        .get(format!("{base}/enterprise_connect/oauth/authorize"))
        .query(&[
            ("response_type", "code"),
            ("client_id", &client_id),
            ("redirect_uri", redirect),
            ("scope", "service_account/accounts/manage"),
            ("delegated_scope", "read_write"),
            ("provider_name", "google"),
        ])
        .send()
        .await
        .expect("authorize");
    let cookie = r.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let page = format!("{base}{}", r.headers()["location"].to_str().unwrap());
    let html = client
        .get(page)
        .header("Cookie", &cookie)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let r = client
        .post(format!("{base}/enterprise_connect/oauth/google"))
        .header("Cookie", &cookie)
        .form(&[
            ("flow", hidden(&html, "flow")),
            ("csrf", hidden(&html, "csrf")),
            ("domain", "example.com".into()),
            ("admin_email", "admin@example.com".into()),
        ])
        .send()
        .await
        .expect("consent");
    let location = url::Url::parse(r.headers()["location"].to_str().unwrap()).unwrap();
    let code = location
        .query_pairs()
        .find(|(k, _)| k == "code")
        .unwrap()
        .1
        .to_string();
    let tokens: Value = client
        .post(format!("{base}/oauth/token"))
        .json(&json!({"grant_type": "authorization_code", "client_id": client_id, "client_secret": secret, "code": code, "redirect_uri": redirect}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    if matches!(mode, Mode::Scim | Mode::Backfill) {
        let unit = google_unit(&db, &app, &tokens).await;
        if mode == Mode::Scim {
            scim_latency(a, &client, &base, &unit, provider_latency).await;
        } else {
            backfill(a, &client, &base, &unit, provider_latency).await;
        }
        providers.stop().await;
        return;
    }
    let mut access = tokens["access_token"].as_str().expect("access").to_string();
    if unit {
        access = unit_of_three(&db, &client, &base, &app, &tokens, redirect).await;
    }

    let rx = Arc::new(Rx {
        codes: Mutex::new(Vec::new()),
        errors: Mutex::new(0),
        last: Mutex::new(None),
    });
    let data = web::Data::new(rx.clone());
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let callback = format!("http://{}/cb", listener.local_addr().unwrap());
    let server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .route("/cb", web::post().to(receive))
    })
    .workers(2)
    .listen(listener)
    .expect("listen")
    .run();
    tokio::spawn(server);

    // The batch: `users` emails, 50 per request, all in flight at once as an integrator would.
    let started = Instant::now();
    let batches: Vec<Value> = (0..a.users)
        .collect::<Vec<_>>()
        .chunks(50)
        .map(|chunk| {
            json!({"service_account_authorizations": chunk.iter().map(|i| json!({"email": format!("u{i}@example.com"), "callback_url": callback, "scope": "read_write", "state": format!("u{i}")})).collect::<Vec<_>>()})
        })
        .collect();
    let batches = Arc::new(batches);
    let (b2, c2, base2, access2) = (
        batches.clone(),
        client.clone(),
        base.clone(),
        access.clone(),
    );
    let mut queued = phase(
        "POST /v1/service_account_authorizations (50 emails)",
        batches.len(),
        a.concurrency,
        202,
        move |i| {
            c2.post(format!("{base2}/v1/service_account_authorizations"))
                .bearer_auth(&access2)
                .json(&b2[i])
        },
    )
    .await;
    loop {
        let done = rx.codes.lock().unwrap().len() + *rx.errors.lock().unwrap();
        if done >= a.users {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "{done} of {} callbacks",
            a.users
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let wall = rx
        .last
        .lock()
        .unwrap()
        .expect("a callback")
        .duration_since(started);
    let errors = *rx.errors.lock().unwrap();
    println!(
        "\nEnterprise Connect, {} delegated authorizations (provider latency {} ms{}):\n",
        a.users,
        provider_latency.as_millis(),
        if unit {
            ", through a unit of 3 calendar accounts, each email found in the last"
        } else {
            ""
        }
    );
    println!("- completed (202 → last signed callback received): {:.1} s, **{:.0} authorizations/s**, {errors} errors", wall.as_secs_f64(), a.users as f64 / wall.as_secs_f64());
    println!("\n| operation | requests | req/s | p50 ms | p95 ms | p99 ms | max ms |\n|---|---|---|---|---|---|---|");
    println!("{}", queued.row());

    // Every account code redeemed: the token endpoint. The first 50, one by one, give
    // the tokens UserInfo is measured with.
    let codes = rx.codes.lock().unwrap().clone();
    let (kept, rest) = codes.split_at(codes.len().min(50));
    let mut account_tokens = Vec::new();
    for code in kept {
        let t: Value = client
            .post(format!("{base}/oauth/token"))
            .json(&json!({"grant_type": "authorization_code", "client_id": client_id, "client_secret": secret, "code": code, "redirect_uri": callback}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        account_tokens.push(
            t["access_token"]
                .as_str()
                .expect("account token")
                .to_string(),
        );
    }
    let rest = Arc::new(rest.to_vec());
    let (c3, base3, id3, s3, cb3) = (
        client.clone(),
        base.clone(),
        client_id.clone(),
        secret.clone(),
        callback.clone(),
    );
    let mut exchange: Stats = phase("POST /oauth/token (authorization_code)", rest.len(), a.concurrency, 200, move |i| {
        c3.post(format!("{base3}/oauth/token"))
            .json(&json!({"grant_type": "authorization_code", "client_id": id3, "client_secret": s3, "code": rest[i], "redirect_uri": cb3}))
    })
    .await;
    println!("{}", exchange.row());
    let tokens = Arc::new(account_tokens);
    let (c5, base5) = (client.clone(), base.clone());
    let mut info = phase(
        "GET /v1/userinfo",
        a.requests,
        a.concurrency,
        200,
        move |i| {
            c5.get(format!("{base5}/v1/userinfo"))
                .bearer_auth(&tokens[i % tokens.len()])
        },
    )
    .await;
    println!("{}", info.row());
    let _ = std::fs::remove_file(&key);
    providers.stop().await;
}

const TENANT_A: &str = "aaaaaaaa-2222-3333-4444-555555555555";
const TENANT_B: &str = "bbbbbbbb-2222-3333-4444-555555555555";

/// Two Microsoft 365 tenants and the Google domain of `tokens`' service account in one
/// unit, the tenants first (set up through the library: the flow itself is tested
/// elsewhere); returns an access token of the first tenant's service account.
async fn unit_of_three(
    db: &scimgate::store::Db,
    client: &reqwest::Client,
    base: &str,
    app: &Value,
    tokens: &Value,
    redirect: &str,
) -> String {
    use scimgate::connect::service_accounts::{consented, Consented};
    let client_id = app["data"]["client_id"]
        .as_str()
        .expect("client_id")
        .to_string();
    let secret = app["data"]["client_secret"]
        .as_str()
        .expect("secret")
        .to_string();
    let google = tokens["service_account_id"]
        .as_str()
        .expect("ser")
        .to_string();
    let app_id = app["data"]["id"].as_str().expect("id").to_string();
    let r = redirect.to_string();
    let code = db
        .run(move |c| {
            scimgate::store::write_tx(c, |c| {
                let ms = |tenant: &str| Consented {
                    provider: "office365",
                    domain: None,
                    tenant_id: Some(tenant.into()),
                    admin_email: None,
                };
                let a = consented(c, &app_id, &ms(TENANT_A), "s", "read_write")?;
                let b = consented(c, &app_id, &ms(TENANT_B), "s", "read_write")?;
                let unit = scimgate::store::organizational_units::UnitRow {
                    id: scimgate::ids::OrgUnitId::generate().into_string(),
                    application_id: app_id.clone(),
                    created_at: scimgate::store::now(),
                };
                scimgate::store::organizational_units::insert(c, &unit)?;
                for ser in [&a.id, &b.id, &google] {
                    scimgate::store::organizational_units::join(c, ser, &unit.id)?;
                }
                scimgate::connect::grants::issue_code(c, &app_id, &a.id, "s", &r)
            })
        })
        .await
        .expect("unit");
    let t: Value = client
        .post(format!("{base}/oauth/token"))
        .json(&json!({"grant_type": "authorization_code", "client_id": client_id, "client_secret": secret, "code": code, "redirect_uri": redirect}))
        .send()
        .await
        .expect("token")
        .json()
        .await
        .expect("json");
    t["access_token"].as_str().expect("access").to_string()
}

/// A unit of the consented Google service account alone (made in the database: the
/// unit pages are not what is measured).
async fn google_unit(db: &scimgate::store::Db, app: &Value, tokens: &Value) -> String {
    let app_id = app["data"]["id"].as_str().expect("id").to_string();
    let google = tokens["service_account_id"]
        .as_str()
        .expect("ser")
        .to_string();
    db.run(move |c| {
        scimgate::store::write_tx(c, |c| {
            let unit = scimgate::store::organizational_units::UnitRow {
                id: scimgate::ids::OrgUnitId::generate().into_string(),
                application_id: app_id.clone(),
                created_at: scimgate::store::now(),
            };
            scimgate::store::organizational_units::insert(c, &unit)?;
            scimgate::store::organizational_units::join(c, &google, &unit.id)?;
            Ok(unit.id)
        })
    })
    .await
    .expect("unit")
}

/// A new directory (with a webhook endpoint when `hook` is given): id, SCIM endpoint,
/// secret.
async fn directory(
    client: &reqwest::Client,
    base: &str,
    hook: Option<&str>,
) -> (String, String, String) {
    let mut body = json!({"tenant": "bench", "product": "p"});
    if let Some(url) = hook {
        body["webhook_url"] = json!(url);
        body["webhook_secret"] = json!("s");
    }
    let dir: Value = client
        .post(format!("{base}/api/v1/directory-sync"))
        .header("Authorization", "Api-Key load")
        .json(&body)
        .send()
        .await
        .expect("directory")
        .json()
        .await
        .expect("json");
    let field = |v: &Value| v.as_str().expect("directory field").to_string();
    (
        field(&dir["data"]["id"]),
        field(&dir["data"]["scim"]["endpoint"]),
        field(&dir["data"]["scim"]["secret"]),
    )
}

async fn attach(client: &reqwest::Client, base: &str, dir: &str, unit: &str) {
    let r = client
        .patch(format!("{base}/api/v1/directory-sync/{dir}"))
        .header("Authorization", "Api-Key load")
        .json(&json!({"organizational_unit_id": unit}))
        .send()
        .await
        .expect("attach");
    assert!(r.status().is_success());
}

/// `--backfill`: `--users` users pushed over SCIM Bulk (1 000 a request) into a
/// directory, which is then attached to the unit; timed from the attach until the
/// provisioning view shows every user provisioned and no lag.
async fn backfill(
    a: &Args,
    client: &reqwest::Client,
    base: &str,
    unit: &str,
    provider_latency: Duration,
) {
    let (id, endpoint, secret) = directory(client, base, None).await;
    let pushed = Instant::now();
    let all: Vec<usize> = (0..a.users).collect();
    for chunk in all.chunks(1000) {
        let ops: Vec<Value> = chunk
            .iter()
            .map(|i| {
                let email = format!("u{i}@example.com");
                json!({"method": "POST", "path": "/Users", "bulkId": format!("b{i}"), "data": {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": email, "emails": [{"value": email, "primary": true}], "active": true}})
            })
            .collect();
        let r = client
            .post(format!("{endpoint}/Bulk"))
            .bearer_auth(&secret)
            .header("Content-Type", "application/scim+json")
            .json(&json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"], "Operations": ops}))
            .send()
            .await
            .expect("bulk");
        assert_eq!(r.status().as_u16(), 200);
    }
    println!(
        "\n{} users pushed over SCIM Bulk in {:.1} s",
        a.users,
        pushed.elapsed().as_secs_f64()
    );
    let started = Instant::now();
    attach(client, base, &id, unit).await;
    let mut last_report = Instant::now();
    loop {
        let state: Value = client
            .get(format!("{base}/api/v1/directory-sync/{id}/provisioning"))
            .header("Authorization", "Api-Key load")
            .send()
            .await
            .expect("provisioning")
            .json()
            .await
            .expect("json");
        let done = state["data"]["users"]["provisioned"].as_u64().unwrap_or(0) as usize;
        if done == a.users && state["data"]["lag"] == 0 {
            break;
        }
        if last_report.elapsed() > Duration::from_secs(10) {
            eprintln!(
                "  {done} provisioned after {:.0} s",
                started.elapsed().as_secs_f64()
            );
            last_report = Instant::now();
        }
        assert!(
            started.elapsed() < Duration::from_secs(3600),
            "backfill stalled: {state}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "Backfill of {} users (provider latency {} ms): {:.1} s, {:.0} users/s",
        a.users,
        provider_latency.as_millis(),
        secs,
        a.users as f64 / secs
    );
}

/// `--scim`: a directory attached to a unit of the Google account; `--samples` users
/// created one after the other over SCIM, each timed from the POST until its
/// `account.provisioned` webhook arrives.
async fn scim_latency(
    a: &Args,
    client: &reqwest::Client,
    base: &str,
    unit: &str,
    provider_latency: Duration,
) {
    let seen: Arc<Mutex<std::collections::HashMap<String, Instant>>> = Arc::default();
    let data = web::Data::new(seen.clone());
    async fn hook(
        body: web::Bytes,
        seen: web::Data<Arc<Mutex<std::collections::HashMap<String, Instant>>>>,
    ) -> HttpResponse {
        let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        let events = match v {
            Value::Array(a) => a,
            other => vec![other],
        };
        for e in events {
            if e["event"] == "account.provisioned" {
                if let Some(email) = e["data"]["email"].as_str() {
                    seen.lock()
                        .unwrap()
                        .insert(email.to_string(), Instant::now());
                }
            }
        }
        HttpResponse::Ok().finish()
    }
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let hook_url = format!("http://{}/hook", listener.local_addr().unwrap());
    let server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .route("/hook", web::post().to(hook))
    })
    .workers(1)
    .listen(listener)
    .expect("listen")
    .run();
    tokio::spawn(server);
    let (id, endpoint, secret) = directory(client, base, Some(&hook_url)).await;
    attach(client, base, &id, unit).await;
    let mut latencies = Vec::with_capacity(a.samples);
    for i in 0..a.samples {
        let email = format!("u{i}@example.com");
        let t = Instant::now();
        let r = client
            .post(format!("{endpoint}/Users"))
            .bearer_auth(&secret)
            .header("Content-Type", "application/scim+json")
            .json(&json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": email, "emails": [{"value": email, "primary": true}], "active": true}))
            .send()
            .await
            .expect("scim");
        assert_eq!(r.status().as_u16(), 201);
        loop {
            if let Some(at) = seen.lock().unwrap().get(&email) {
                latencies.push(at.duration_since(t));
                break;
            }
            assert!(
                t.elapsed() < Duration::from_secs(30),
                "no account.provisioned for {email}"
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    latencies.sort();
    let pct = |p: f64| {
        latencies[((latencies.len() as f64 * p).ceil() as usize).clamp(1, latencies.len()) - 1]
            .as_secs_f64()
            * 1000.0
    };
    println!(
        "\nSCIM create → account.provisioned webhook, {} users one after the other (provider latency {} ms): p50 {:.1} ms, p95 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        latencies.len(),
        provider_latency.as_millis(),
        pct(0.50),
        pct(0.95),
        pct(0.99),
        pct(1.0)
    );
}
