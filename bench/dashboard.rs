//! `--dashboard`: the operators' dashboard's pages timed with `--users` users in one
//! directory (seeded as the SCIM phase does: a few hundred through SCIM, the rest
//! inserted directly) and a group of `--members` members, signed in as an operator.
//! Each page is requested `--samples` times, one at a time. On PostgreSQL the plans of
//! the users page's queries (and of the capped count its header shows) are printed too.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::{seed, serve, user_ids, Args, Stats};

#[derive(diesel::QueryableByName)]
struct PlanLine {
    #[diesel(sql_type = diesel::sql_types::Text)]
    #[diesel(column_name = "QUERY PLAN")]
    line: String,
}

pub async fn run(a: &Args, url: &str) {
    let (db, base) = serve(url, |_| {});
    scimgate::outbound::install_tls_provider();
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let dir: Value = client
        .post(format!("{base}/api/v1/directory-sync"))
        .header("Authorization", "Api-Key load")
        .json(&json!({"tenant": "load", "product": "bench", "name": "Load"}))
        .send()
        .await
        .expect("create directory")
        .json()
        .await
        .expect("json");
    let id = dir["data"]["id"].as_str().expect("id").to_string();
    let endpoint = dir["data"]["scim"]["endpoint"]
        .as_str()
        .expect("endpoint")
        .to_string();
    let auth = format!(
        "Bearer {}",
        dir["data"]["scim"]["secret"].as_str().expect("secret")
    );
    // Some users through SCIM (they have events), the rest inserted directly.
    let through_scim = 200.min(a.users);
    for i in 0..through_scim {
        let r = client
            .post(format!("{endpoint}/Users"))
            .header("Authorization", &auth)
            .header("Content-Type", "application/scim+json")
            .json(&json!({"userName": format!("user{i}@load.example"),
                "emails": [{"value": format!("user{i}@load.example"), "primary": true}], "active": true}))
            .send()
            .await
            .expect("user");
        assert_eq!(r.status().as_u16(), 201);
    }
    let started = Instant::now();
    let (db2, dir2, total) = (db.clone(), id.clone(), a.users);
    tokio::task::spawn_blocking(move || seed(&db2, &dir2, through_scim, total))
        .await
        .expect("seed");
    eprintln!(
        "seeded {} users in {:.1} s",
        a.users - through_scim,
        started.elapsed().as_secs_f64()
    );
    // A group with --members members: its count, and that many events.
    let group: Value = client
        .post(format!("{endpoint}/Groups"))
        .header("Authorization", &auth)
        .header("Content-Type", "application/scim+json")
        .json(&json!({"displayName": "Everyone"}))
        .send()
        .await
        .expect("group")
        .json()
        .await
        .expect("json");
    let gid = group["id"].as_str().expect("group id").to_string();
    let members: Vec<Value> = user_ids(&client, &base, &id, a.members)
        .await
        .into_iter()
        .take(a.members)
        .map(|u| json!({"value": u}))
        .collect();
    let r = client
        .patch(format!(
            "{endpoint}/Groups/{gid}?excludedAttributes=members"
        ))
        .header("Authorization", &auth)
        .header("Content-Type", "application/scim+json")
        .json(
            &json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{"op": "add", "path": "members", "value": members}]}),
        )
        .send()
        .await
        .expect("members");
    assert_eq!(r.status().as_u16(), 200);
    let (db2, dir2) = (db.clone(), id.clone());
    let plan = tokio::task::spawn_blocking(move || {
        use diesel::connection::SimpleConnection;
        use diesel::RunQueryDsl;
        let mut c = db2.conn().expect("connection");
        match db2.backend() {
            scimgate::store::Backend::Postgres => {
                for sql in [
                    "SET statement_timeout = 0",
                    "VACUUM (ANALYZE) users",
                    "VACUUM (ANALYZE) memberships",
                    "VACUUM (ANALYZE) events",
                ] {
                    c.batch_execute(sql).expect("vacuum");
                }
                let range = "'seed5' AND user_name_lower < 'seed5\u{10FFFF}'";
                let queries = [
                    format!("SELECT * FROM users WHERE directory_id = '{dir2}' AND user_name_lower > 'seed500000@load.example' ORDER BY user_name_lower LIMIT 51"),
                    format!("SELECT * FROM users WHERE directory_id = '{dir2}' AND user_name_lower >= {range} ORDER BY user_name_lower LIMIT 51"),
                    format!("SELECT * FROM users WHERE directory_id = '{dir2}' AND email_lower >= {} ORDER BY email_lower LIMIT 1000", range.replace("user_name_lower", "email_lower")),
                    // The header's count, capped as `overview::COUNT_CAP` caps it.
                    format!("SELECT COUNT(*) FROM (SELECT 1 FROM users WHERE directory_id = '{dir2}' LIMIT 100001) capped"),
                ];
                queries
                    .iter()
                    .flat_map(|q| {
                        let mut lines = vec![format!("-- {q}")];
                        lines.extend(
                            diesel::sql_query(format!("EXPLAIN ANALYZE {q}"))
                                .load::<PlanLine>(&mut *c)
                                .expect("explain")
                                .into_iter()
                                .map(|p| p.line),
                        );
                        lines
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            }
            scimgate::store::Backend::Sqlite => {
                c.batch_execute("ANALYZE").expect("analyze");
                String::new()
            }
        }
    })
    .await
    .expect("vacuum");

    // Sign in.
    let r = client
        .post(format!("{base}/dashboard/login"))
        .form(&[("api_key", "load")])
        .send()
        .await
        .expect("login");
    assert_eq!(r.status().as_u16(), 303);
    let cookie = r.headers()["set-cookie"]
        .to_str()
        .expect("cookie")
        .split(';')
        .next()
        .expect("cookie")
        .to_string();
    // The customer's setup-link page of the same tenant and product (no session needed).
    let link: Value = client
        .post(format!("{base}/api/v1/setup_links"))
        .header("Authorization", "Api-Key load")
        .json(&json!({"tenant": "load", "product": "bench"}))
        .send()
        .await
        .expect("setup link")
        .json()
        .await
        .expect("json");
    let setup = link["data"]["url"].as_str().expect("url");
    let setup = setup[setup.find("/setup/").expect("setup path")..].to_string();
    let d = format!("/dashboard/directories/{id}");
    let pages = [
        ("home", "/dashboard".to_string()),
        ("directories", "/dashboard/directories".to_string()),
        (
            "directories, search",
            "/dashboard/directories?q=load".to_string(),
        ),
        ("users, first page", d.clone()),
        (
            "users, a later page (after=)",
            format!("{d}?after=seed500000%40load.example"),
        ),
        ("users, search by prefix", format!("{d}?q=seed5")),
        ("users, search matching nothing", format!("{d}?q=nobody")),
        ("groups (member counts)", format!("{d}/groups")),
        ("events, newest first", format!("{d}/events")),
        ("webhooks", format!("{d}/webhooks")),
        ("settings", format!("{d}/settings")),
        ("organizational units", "/dashboard/units".to_string()),
        ("setup-link page (a customer's)", setup),
    ];
    println!(
        "backend: {}, {} users in one directory, a group of {} members",
        if url.starts_with("postgres") {
            "PostgreSQL"
        } else {
            "SQLite"
        },
        a.users,
        a.members
    );
    println!("| page | requests | req/s | p50 ms | p95 ms | p99 ms | max ms |");
    println!("|---|---|---|---|---|---|---|");
    for (name, path) in pages {
        let mut latencies = Vec::with_capacity(a.samples);
        let wall = Instant::now();
        for _ in 0..a.samples {
            let t = Instant::now();
            let r = client
                .get(format!("{base}{path}"))
                .header("Cookie", &cookie)
                .send()
                .await
                .expect("page");
            let status = r.status().as_u16();
            let _ = r.bytes().await;
            assert_eq!(status, 200, "{path}");
            latencies.push(t.elapsed());
        }
        let mut s = Stats {
            name: format!("GET {name}"),
            count: a.samples,
            wall: wall.elapsed().max(Duration::from_micros(1)),
            latencies,
        };
        println!("{}", s.row());
    }
    if !plan.is_empty() {
        println!("\nPlans of the users page's queries (PostgreSQL):\n```\n{plan}\n```");
    }
}
