//! Discovery endpoints tell the truth about what is supported.

use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::backend_tests;
use crate::common::{assert_scim_error, send, TestApp};

backend_tests!(discovery_endpoints, health_endpoints);

async fn discovery_endpoints(app: TestApp) {
    let dir = app.create_directory("acme", "crm").await;
    let (status, spc) = send(app.scim(&dir, Method::GET, "/ServiceProviderConfig")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(spc["patch"]["supported"], true);
    assert_eq!(spc["filter"]["supported"], true);
    assert!(spc["filter"]["maxResults"].as_i64().unwrap() > 0);
    assert_eq!(spc["bulk"]["supported"], true);
    assert_eq!(spc["etag"]["supported"], true);
    assert_eq!(spc["sort"]["supported"], true);
    assert_eq!(spc["changePassword"]["supported"], false);
    assert_eq!(spc["authenticationSchemes"][0]["type"], "oauthbearertoken");

    let (_, types) = send(app.scim(&dir, Method::GET, "/ResourceTypes")).await;
    assert_eq!(types["totalResults"], 2);
    let (status, user_type) = send(app.scim(&dir, Method::GET, "/ResourceTypes/User")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(user_type["endpoint"], "/Users");

    let (_, schemas) = send(app.scim(&dir, Method::GET, "/Schemas")).await;
    assert_eq!(schemas["totalResults"], 3);
    let ids: Vec<&str> = schemas["Resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert!(ids.contains(&"urn:ietf:params:scim:schemas:core:2.0:User"));
    let (status, user_schema) = send(app.scim(
        &dir,
        Method::GET,
        "/Schemas/urn:ietf:params:scim:schemas:core:2.0:User",
    ))
    .await;
    assert_eq!(status, StatusCode::OK);
    let attrs: &Vec<Value> = user_schema["attributes"].as_array().unwrap();
    let user_name = attrs.iter().find(|a| a["name"] == "userName").unwrap();
    assert_eq!(user_name["caseExact"], false);
    assert_eq!(user_name["uniqueness"], "server");
    let password = attrs.iter().find(|a| a["name"] == "password").unwrap();
    assert_eq!(password["returned"], "never");

    let (status, err) = send(app.scim(&dir, Method::GET, "/Schemas/urn:nope")).await;
    assert_scim_error(status, &err, 404, None);
    for m in [Method::POST, Method::PUT, Method::DELETE] {
        let (status, err) = send(app.scim(&dir, m, "/ServiceProviderConfig")).await;
        assert_scim_error(status, &err, 405, None);
    }
    let (status, err) = send(app.scim(&dir, Method::GET, "/Me")).await;
    assert_scim_error(status, &err, 404, None);
}

async fn health_endpoints(app: TestApp) {
    let (status, body) = send(app.client.get(format!("{}/healthz", app.base))).await;
    assert_eq!(
        (status, body["status"].as_str()),
        (StatusCode::OK, Some("ok"))
    );
    let (status, body) = send(app.client.get(format!("{}/readyz", app.base))).await;
    assert_eq!(
        (status, body["status"].as_str()),
        (StatusCode::OK, Some("ready"))
    );
}
