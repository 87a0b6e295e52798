//! Secrets at rest: webhook secrets are nowhere in plaintext in the SQLite files or the
//! PostgreSQL tables, deliveries still verify, plaintext from before sealing is sealed
//! once, keys rotate (`rekey`), and a secret no key opens is a clear error.

use std::time::Duration;

use diesel::prelude::*;
use reqwest::{Method, StatusCode};
use scimgate::directory::webhooks::seal_stored_secrets;
use scimgate::secrets::{generate_key, Sealed, Sealer};
use serde_json::{json, Value};

use crate::backend_tests;
use crate::common::{send, Dir, TestApp, ENCRYPTION_KEY};
use crate::receiver::Receiver;

backend_tests!(
    webhook_secrets_are_not_stored_in_plaintext,
    plaintext_from_before_sealing_is_sealed_once,
    rekey_moves_every_secret_to_the_first_key,
    a_secret_no_key_opens_fails_its_deliveries_clearly,
);

fn tag() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

fn app_sealer() -> Sealer {
    Sealer::from_keys(ENCRYPTION_KEY).expect("test key")
}

async fn add_endpoint(app: &TestApp, dir: &Dir, body: Value) -> Value {
    let path = format!("/directory-sync/{}/webhooks", dir.id);
    let (status, body) = send(app.admin(Method::POST, &path).json(&body)).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body["data"].clone()
}

/// Every stored secret: directories' webhook secrets, endpoints' current and previous.
async fn stored(app: &TestApp) -> Vec<Sealed> {
    app.db
        .run(|c| {
            let mut all: Vec<Sealed> = scimgate::store::directories::stored_webhook_secrets(c)?
                .into_iter()
                .map(|(_, s)| s)
                .collect();
            for e in scimgate::store::webhooks::stored_secrets(c)? {
                all.push(e.secret);
                all.extend(e.previous_secret);
            }
            Ok(all)
        })
        .await
        .expect("stored secrets")
}

#[derive(QueryableByName)]
struct OneText {
    #[diesel(sql_type = diesel::sql_types::Text)]
    t: String,
}

/// What the database holds, as bytes: every file of the SQLite database (with its
/// write-ahead log), or every row of every PostgreSQL table as JSON.
pub async fn raw_storage(app: &TestApp) -> Vec<u8> {
    let url = app.database_url().to_string();
    tokio::task::spawn_blocking(move || {
        if let Some(path) = url.strip_prefix("sqlite://") {
            let dir = std::path::Path::new(path)
                .parent()
                .expect("database directory");
            let mut bytes = Vec::new();
            for entry in std::fs::read_dir(dir).expect("read dir") {
                let path = entry.expect("entry").path();
                bytes.extend(std::fs::read(&path).expect("database file"));
            }
            assert!(!bytes.is_empty());
            return bytes;
        }
        let mut c = diesel::PgConnection::establish(&url).expect("postgres");
        let tables: Vec<OneText> = diesel::sql_query(
            "SELECT table_name::text AS t FROM information_schema.tables \
             WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'",
        )
        .load(&mut c)
        .expect("tables");
        let names: Vec<&str> = tables.iter().map(|t| t.t.as_str()).collect();
        assert!(
            names.contains(&"webhook_endpoints") && names.contains(&"directories"),
            "{names:?}"
        );
        let mut bytes = Vec::new();
        for table in names {
            let rows: Vec<OneText> = diesel::sql_query(format!(
                "SELECT row_to_json(x)::text AS t FROM \"{table}\" x"
            ))
            .load(&mut c)
            .expect("rows");
            for row in rows {
                bytes.extend(row.t.into_bytes());
            }
        }
        bytes
    })
    .await
    .expect("join")
}

pub fn assert_nowhere(raw: &[u8], secrets: &[&str]) {
    for s in secrets {
        assert!(
            !raw.windows(s.len()).any(|w| w == s.as_bytes()),
            "{s} is stored in plaintext"
        );
    }
}

async fn webhook_secrets_are_not_stored_in_plaintext(app: TestApp) {
    let t = tag();
    let rx = Receiver::ok().await;
    let dir_secret = format!("dir-secret-{t}");
    let dir = app
        .create_directory_with(json!({
            "tenant": "acme", "product": "crm", "webhook_url": rx.url, "webhook_secret": dir_secret,
        }))
        .await;
    assert_eq!(
        dir.json["webhook"]["secret"],
        dir_secret.as_str(),
        "shown once"
    );
    rx.wait_for(1).await;
    rx.delivered()[0].assert_signed(&[&dir_secret]);
    // A directory whose webhook secret is generated, shown in the response.
    let other = app
        .create_directory_with(json!({"tenant": "acme", "product": "hr", "webhook_url": rx.url}))
        .await;
    let dir_generated = other.json["webhook"]["secret"]
        .as_str()
        .expect("generated secret")
        .to_string();

    // Endpoints with a given and a generated secret; one rotated (the old one stays as
    // the previous secret); the directory's own secret changed.
    let ep_rx = Receiver::ok().await;
    let given = format!("endpoint-secret-{t}");
    let ep = add_endpoint(&app, &dir, json!({"url": ep_rx.url, "secret": given})).await;
    assert_eq!(ep["secret"], given.as_str());
    let generated_ep = add_endpoint(&app, &dir, json!({"url": ep_rx.url})).await;
    let ep_generated = generated_ep["secret"].as_str().expect("secret").to_string();
    let rotated = format!("rotated-{t}");
    let path = format!(
        "/directory-sync/{}/webhooks/{}/secret/rotate",
        dir.id,
        ep["id"].as_str().expect("id")
    );
    let (status, body) = send(
        app.admin(Method::POST, &path)
            .json(&json!({"secret": rotated})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let dir_rotated = format!("dir-rotated-{t}");
    let (status, body) = send(
        app.admin(Method::PATCH, &format!("/directory-sync/{}", dir.id))
            .json(&json!({"webhook_secret": dir_rotated})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // Nothing that reads an endpoint shows its secret again.
    let (_, list) =
        send(app.admin(Method::GET, &format!("/directory-sync/{}/webhooks", dir.id))).await;
    assert!(list["data"]
        .as_array()
        .expect("endpoints")
        .iter()
        .all(|e| e["secret"].is_null()));

    // Deliveries are signed with the secrets in the clear: the rotated endpoint with the
    // new and (during its grace) the old one.
    app.create_user(&dir, "ada@acme.com").await;
    let got = ep_rx
        .wait_until(Duration::from_secs(10), |events| {
            events
                .iter()
                .filter(|e| e["event"] == "user.created")
                .count()
                >= 2
        })
        .await;
    assert!(got.len() >= 2);
    for d in ep_rx.delivered() {
        if d.header("webhook-signature").contains(' ') {
            d.assert_signed(&[&rotated, &given]);
        } else {
            d.assert_signed(&[&ep_generated]);
        }
    }
    rx.wait_until(Duration::from_secs(10), |events| {
        events.iter().any(|e| e["event"] == "user.created")
    })
    .await;
    let last = rx.delivered().into_iter().last().expect("a delivery");
    last.assert_signed(&[&dir_rotated, &dir_secret]);

    let sealer = app_sealer();
    let values = stored(&app).await;
    assert!(values.len() >= 8, "{values:?}");
    for v in &values {
        assert_eq!(v.key_id(), Some(sealer.current_key_id()), "{v:?}");
    }
    let raw = raw_storage(&app).await;
    assert_nowhere(
        &raw,
        &[
            &dir_secret,
            &dir_generated,
            &given,
            &ep_generated,
            &rotated,
            &dir_rotated,
        ],
    );
    assert!(raw.windows(10).any(|w| w == b"sealed:v1:"));
}

async fn plaintext_from_before_sealing_is_sealed_once(app: TestApp) {
    let rx = Receiver::ok().await;
    let dir = app
        .create_directory_with(json!({
            "tenant": "old", "product": "p", "webhook_url": rx.url, "webhook_secret": "replaced",
        }))
        .await;
    rx.wait_for(1).await;
    // As a database from before sealing: the secrets in plaintext.
    let legacy = format!("legacy-{}", tag());
    let (id, value) = (dir.id.clone(), legacy.clone());
    app.db
        .run(move |c| {
            use scimgate::store::schema::{directories as d, webhook_endpoints as w};
            diesel::update(d::table.find(&id))
                .set(d::webhook_secret.eq(value.as_str()))
                .execute(c)?;
            diesel::update(w::table.filter(w::directory_id.eq(&id)))
                .set((
                    w::secret.eq(value.as_str()),
                    w::previous_secret.eq(None::<String>),
                ))
                .execute(c)?;
            Ok(())
        })
        .await
        .expect("write plaintext");
    let db = app.db.clone();
    let pass = || {
        let sealer = app_sealer();
        db.run(move |c| seal_stored_secrets(c, &sealer, false))
    };
    let first = pass().await.expect("sealing pass");
    assert_eq!(
        (first.sealed, first.resealed, first.skipped),
        (2, 0, 0),
        "{first:?}"
    );
    assert!(first.unreadable.is_empty(), "{first:?}");
    let again = pass().await.expect("second pass");
    assert_eq!(
        (again.sealed, again.resealed),
        (0, 0),
        "idempotent: {again:?}"
    );

    // Deliveries sign with the same secret as before.
    app.create_user(&dir, "legacy@acme.com").await;
    rx.wait_for(2).await;
    rx.delivered()[1].assert_signed(&[&legacy]);
    let sealer = app_sealer();
    for v in stored(&app).await {
        assert_eq!(sealer.open(&v).expect("opens").expose(), legacy);
    }
    assert_nowhere(&raw_storage(&app).await, &[&legacy]);
}

async fn rekey_moves_every_secret_to_the_first_key(app: TestApp) {
    let rx = Receiver::ok().await;
    let dir = app
        .create_directory_with(json!({
            "tenant": "rk", "product": "p", "webhook_url": rx.url, "webhook_secret": "dir-s",
        }))
        .await;
    let ep = add_endpoint(&app, &dir, json!({"url": rx.url, "secret": "ep-old"})).await;
    let path = format!(
        "/directory-sync/{}/webhooks/{}/secret/rotate",
        dir.id,
        ep["id"].as_str().expect("id")
    );
    let (status, _) = send(
        app.admin(Method::POST, &path)
            .json(&json!({"secret": "ep-new"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let before = stored(&app).await;
    assert_eq!(
        before.len(),
        4,
        "directory, primary, endpoint and its previous"
    );

    let new_key = generate_key().expect("key");
    let old = app_sealer();
    let only_new = Sealer::from_keys(&new_key).expect("new key");
    let both = Sealer::from_keys(&format!("{new_key},{ENCRYPTION_KEY}")).expect("both keys");
    // The new key alone opens nothing yet, and says which key is missing.
    let sealer = only_new.clone();
    let report = app
        .db
        .run(move |c| seal_stored_secrets(c, &sealer, true))
        .await
        .expect("pass");
    assert_eq!(report.unreadable.len(), 4, "{report:?}");
    assert!(
        report.unreadable[0].contains(old.current_key_id()),
        "{report:?}"
    );
    assert!(stored(&app).await == before, "nothing was touched");

    // `rekey` with the new key first: everything moves to it, once.
    let sealer = both.clone();
    let report = app
        .db
        .run(move |c| seal_stored_secrets(c, &sealer, true))
        .await
        .expect("rekey");
    assert_eq!((report.resealed, report.sealed), (4, 0), "{report:?}");
    assert!(report.unreadable.is_empty(), "{report:?}");
    let sealer = both.clone();
    let again = app
        .db
        .run(move |c| seal_stored_secrets(c, &sealer, true))
        .await
        .expect("rekey again");
    assert_eq!(again.resealed, 0, "{again:?}");

    let after = stored(&app).await;
    let mut opened: Vec<String> = after
        .iter()
        .map(|v| {
            assert_eq!(v.key_id(), Some(only_new.current_key_id()));
            assert!(old.open(v).is_err(), "the old key no longer needed");
            only_new.open(v).expect("the new key opens it").into_inner()
        })
        .collect();
    opened.sort();
    assert_eq!(opened, ["dir-s", "dir-s", "ep-new", "ep-old"]);
}

async fn a_secret_no_key_opens_fails_its_deliveries_clearly(app: TestApp) {
    let dir = app.create_directory("lost", "p").await;
    app.events(&dir).await;
    let rx = Receiver::ok().await;
    let ep = add_endpoint(&app, &dir, json!({"url": rx.url, "secret": "s"})).await;
    let wid = ep["id"].as_str().expect("id").to_string();
    // Its secret, sealed with a key this instance does not have.
    let foreign = Sealer::from_keys(&generate_key().expect("key")).expect("sealer");
    let sealed = foreign.seal("s").expect("seal");
    let id = wid.clone();
    app.db
        .run(move |c| {
            use scimgate::store::schema::webhook_endpoints as w;
            diesel::update(w::table.find(&id))
                .set(w::secret.eq(sealed.as_stored()))
                .execute(c)?;
            Ok(())
        })
        .await
        .expect("foreign key");
    app.create_user(&dir, "x@acme.com").await;
    let deliveries = format!("/directory-sync/{}/deliveries?endpoint_id={wid}", dir.id);
    let started = std::time::Instant::now();
    let error = loop {
        let (_, body) = send(app.admin(Method::GET, &deliveries)).await;
        if let Some(e) = body["data"][0]["last_error"].as_str() {
            break e.to_string();
        }
        assert!(started.elapsed() < Duration::from_secs(10), "{body}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(
        error.contains(foreign.current_key_id()) && error.contains("SCIMGATE_ENCRYPTION_KEY"),
        "{error}"
    );
    assert_eq!(rx.started(), 0, "nothing is sent unsigned");

    // An admin sets a new secret: accepted without a grace period for the lost one, and
    // deliveries resume signed with it.
    let path = format!("/directory-sync/{}/webhooks/{wid}/secret/rotate", dir.id);
    let (status, body) = send(
        app.admin(Method::POST, &path)
            .json(&json!({"secret": "fresh"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(
        body["data"]["previous_secret_expires_at"].is_null(),
        "{body}"
    );
    app.create_user(&dir, "y@acme.com").await;
    rx.wait_until(Duration::from_secs(10), |events| {
        events.iter().any(|e| e["data"]["email"] == "y@acme.com")
    })
    .await;
    for d in rx.delivered() {
        d.assert_signed(&["fresh"]);
    }
}
