//! `/api/openapi.json` and `/api/docs` (DESIGN.md §4, §8): the document is OpenAPI 3
//! shaped and names every route the admin route tables mount — the list comes from the
//! tables themselves, so a route added without documentation fails here — and every
//! documented route answers from a real handler, under both prefixes where it has two.

use std::collections::BTreeSet;

use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::backend_tests;
use crate::common::{send, TestApp};

backend_tests!(
    the_document_describes_every_admin_route,
    every_documented_route_is_served,
    the_docs_page_renders_the_document,
);

async fn document(app: &TestApp) -> Value {
    let r = app
        .client
        .get(format!("{}/api/openapi.json", app.base))
        .send()
        .await
        .expect("openapi.json");
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/json"));
    r.json().await.expect("json")
}

/// `{name}` segments of a path.
fn path_params(path: &str) -> BTreeSet<String> {
    path.split('/')
        .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
        .map(str::to_string)
        .collect()
}

/// Follows a `$ref` into `components` (through an optional body's `oneOf [T, null]`).
fn resolve<'a>(doc: &'a Value, v: &'a Value) -> &'a Value {
    if let Some(t) = v["oneOf"]
        .as_array()
        .and_then(|alts| alts.iter().find(|a| a["type"] != "null"))
    {
        return resolve(doc, t);
    }
    match v["$ref"].as_str() {
        Some(r) => r
            .trim_start_matches("#/")
            .split('/')
            .fold(doc, |at, key| &at[key]),
        None => v,
    }
}

async fn the_document_describes_every_admin_route(app: TestApp) {
    let doc = document(&app).await;
    // OpenAPI 3.x shape.
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3."),
        "{}",
        doc["openapi"]
    );
    assert!(doc["info"]["title"].is_string() && doc["info"]["version"].is_string());
    assert_eq!(doc["servers"][0]["url"], app.base.as_str());
    let scheme = &doc["components"]["securitySchemes"]["api_key"];
    assert_eq!(scheme["type"], "apiKey");
    assert_eq!(scheme["in"], "header");
    assert_eq!(scheme["name"], "Authorization");
    assert!(
        doc["security"][0].get("api_key").is_some(),
        "{}",
        doc["security"]
    );

    let paths = doc["paths"].as_object().expect("paths");
    let routes = scimgate::http::openapi::admin_route_list();
    assert!(routes.len() >= 39, "{}", routes.len());
    let mut mounted = BTreeSet::new();
    for (method, path) in &routes {
        assert!(
            mounted.insert((method.to_string(), path.to_string())),
            "twice: {method} {path}"
        );
        let op = &paths
            .get(*path)
            .unwrap_or_else(|| panic!("{path} is not in the document"))[*method];
        assert!(op.is_object(), "{method} {path} is not in the document");
        assert!(op["tags"][0].is_string(), "{method} {path}: no tag");
        assert!(op["summary"].is_string(), "{method} {path}: no summary");
        // Each `{param}` of the path is a required path parameter.
        let declared: BTreeSet<String> = op["parameters"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|p| p["in"] == "path")
            .inspect(|p| assert_eq!(p["required"], true, "{method} {path}: {p}"))
            .map(|p| p["name"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(declared, path_params(path), "{method} {path}");
        // Success in the envelope; refusals in the error envelope; the 401 of the key.
        let responses = op["responses"].as_object().expect("responses");
        for (status, r) in responses {
            // OpenAPI requires a description on every response.
            assert!(
                r["description"].is_string(),
                "{method} {path} {status}: {r}"
            );
        }
        let (status, ok) = responses
            .iter()
            .find(|(s, _)| s.starts_with('2'))
            .unwrap_or_else(|| panic!("{method} {path}: no success"));
        let schema = resolve(&doc, &ok["content"]["application/json"]["schema"]);
        assert!(
            schema["properties"]["data"].is_object() && schema["properties"]["error"].is_object(),
            "{method} {path} {status}: {schema}"
        );
        let refusal = resolve(
            &doc,
            &responses["401"]["content"]["application/json"]["schema"],
        );
        assert!(
            refusal["properties"]["error"].is_object(),
            "{method} {path}"
        );
        // Bodies come from the handlers' types.
        if ["post", "patch"].contains(method) {
            let body = &op["requestBody"]["content"]["application/json"]["schema"];
            if body.is_object() {
                let schema = resolve(&doc, body);
                assert!(
                    schema["properties"].is_object(),
                    "{method} {path}: {schema}"
                );
            }
        }
    }
    // Nothing documented that the tables do not mount.
    for (path, item) in paths {
        for (method, _) in item.as_object().unwrap() {
            assert!(
                mounted.contains(&(method.clone(), path.clone())),
                "{method} {path} is documented but not mounted"
            );
        }
    }
    // The bodies an integrator sends, field by field.
    let create = resolve(
        &doc,
        &paths["/api/v1/directory-sync"]["post"]["requestBody"]["content"]["application/json"]
            ["schema"],
    );
    for field in [
        "name",
        "tenant",
        "product",
        "type",
        "webhook_url",
        "user_limit",
    ] {
        assert!(create["properties"][field].is_object(), "{field}: {create}");
    }
    let link = resolve(
        &doc,
        &paths["/api/v1/setup_links"]["post"]["requestBody"]["content"]["application/json"]
            ["schema"],
    );
    for field in ["tenant", "product", "organizational_unit_id", "expires_in"] {
        assert!(link["properties"][field].is_object(), "{field}: {link}");
    }
    let list = &paths["/api/v1/directory-sync"]["get"]["parameters"];
    let names: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["in"] == "query")
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    for q in ["tenant", "product", "pageOffset", "pageLimit", "pageToken"] {
        assert!(names.contains(&q), "{q}: {names:?}");
    }
}

/// Each path with its parameters filled in by values that name nothing.
fn concrete(path: &str) -> String {
    path.split('/')
        .map(|s| match s {
            "{id}" if path.contains("/organizational_units/") => "ou_0123".to_string(),
            "{id}" if path.contains("/service_accounts/") => "ser_0123".to_string(),
            "{id}" if path.contains("/setup_links/") => "stl_0123".to_string(),
            "{id}" | "{uid}" | "{gid}" => "00000000-0000-4000-8000-000000000000".to_string(),
            s if s.starts_with('{') => "x0123".to_string(),
            s => s.to_string(),
        })
        .collect::<Vec<_>>()
        .join("/")
}

async fn every_documented_route_is_served(app: TestApp) {
    let doc = document(&app).await;
    let paths = doc["paths"].as_object().expect("paths");
    for (path, item) in paths {
        let mut prefixes = vec![path.clone()];
        if let Some(rest) = path.strip_prefix("/api/v1/directory-sync") {
            prefixes.push(format!("/api/v1/dsync{rest}"));
        }
        for (method, _) in item.as_object().unwrap() {
            for p in &prefixes {
                let m = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
                let url = format!("{}{}", app.base, concrete(p));
                let (status, body) = send(app.client.request(m, &url).header(
                    "Authorization",
                    format!("Api-Key {}", crate::common::API_KEY),
                ))
                .await;
                // A handler answered: the envelope with its own words, never the scope's
                // fallback ("Not found.") or actix's empty 404 for an unrouted request.
                assert!(
                    body["error"]["message"].is_string() || body["data"] != Value::Null,
                    "{method} {p}: {status} {body}"
                );
                assert_ne!(body["error"]["message"], "Not found.", "{method} {p}");
                assert!(status != StatusCode::METHOD_NOT_ALLOWED, "{method} {p}");
                // Without a key: 401.
                let m = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
                let (status, _) = send(app.client.request(m, &url)).await;
                assert_eq!(status, StatusCode::UNAUTHORIZED, "{method} {p}");
            }
        }
    }
}

async fn the_docs_page_renders_the_document(app: TestApp) {
    let r = app
        .client
        .get(format!("{}/api/docs", app.base))
        .send()
        .await
        .expect("docs");
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    let csp = r.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(csp.contains("default-src 'none'"), "{csp}");
    let html = r.text().await.unwrap();
    assert!(!html.contains("<script"), "no script, no external asset");
    assert!(!html.contains("src=\"http") && !html.contains("href=\"http"));
    for (method, path) in scimgate::http::openapi::admin_route_list() {
        assert!(
            html.contains(&format!("id=\"{method}-{path}\"")),
            "{method} {path} missing from /api/docs"
        );
    }
    for schema in ["NewDirectory", "NewSetupLink", "Envelope"] {
        assert!(
            html.contains(&format!("id=\"schema-{schema}\"")),
            "{schema}"
        );
    }
}
