//! Discovery resources (RFC 7644 §4): what this server supports, stated truthfully.

use serde_json::{json, Value};

use super::bulk::{MAX_OPERATIONS, MAX_PAYLOAD_BYTES};
use super::error::ScimError;
use super::list::{list_response, MAX_COUNT};
use super::{ENTERPRISE_USER_SCHEMA, GROUP_SCHEMA, USER_SCHEMA};

const USER_SCHEMA_JSON: &str = include_str!("schemas/user.json");
const GROUP_SCHEMA_JSON: &str = include_str!("schemas/group.json");
const ENTERPRISE_SCHEMA_JSON: &str = include_str!("schemas/enterprise_user.json");

/// `base` is the directory's SCIM base URL, e.g. `https://host/api/scim/v2.0/{id}`.
pub fn service_provider_config(base: &str) -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"],
        "documentationUri": "https://github.com/scimgate/scimgate#readme",
        "patch": {"supported": true},
        "bulk": {"supported": true, "maxOperations": MAX_OPERATIONS, "maxPayloadSize": MAX_PAYLOAD_BYTES},
        "filter": {"supported": true, "maxResults": MAX_COUNT},
        "changePassword": {"supported": false},
        "sort": {"supported": true},
        "etag": {"supported": true},
        "authenticationSchemes": [{
            "type": "oauthbearertoken",
            "name": "OAuth Bearer Token",
            "description": "The directory's SCIM secret as a bearer token: Authorization: Bearer <secret>",
            "primary": true
        }],
        "meta": {
            "resourceType": "ServiceProviderConfig",
            "location": format!("{base}/ServiceProviderConfig")
        }
    })
}

pub fn resource_types(base: &str) -> Vec<Value> {
    vec![
        json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ResourceType"],
            "id": "User",
            "name": "User",
            "endpoint": "/Users",
            "description": "User Account",
            "schema": USER_SCHEMA,
            "schemaExtensions": [{"schema": ENTERPRISE_USER_SCHEMA, "required": false}],
            "meta": {"resourceType": "ResourceType", "location": format!("{base}/ResourceTypes/User")}
        }),
        json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ResourceType"],
            "id": "Group",
            "name": "Group",
            "endpoint": "/Groups",
            "description": "Group",
            "schema": GROUP_SCHEMA,
            "schemaExtensions": [],
            "meta": {"resourceType": "ResourceType", "location": format!("{base}/ResourceTypes/Group")}
        }),
    ]
}

pub fn resource_types_list(base: &str) -> Value {
    let all = resource_types(base);
    let n = all.len() as i64;
    list_response(all, n, 1)
}

pub fn resource_type(base: &str, name: &str) -> Result<Value, ScimError> {
    resource_types(base)
        .into_iter()
        .find(|r| {
            r["id"]
                .as_str()
                .is_some_and(|id| id.eq_ignore_ascii_case(name))
        })
        .ok_or_else(|| ScimError::not_found(format!("no resource type {name:?}")))
}

pub fn schemas(base: &str) -> Vec<Value> {
    [USER_SCHEMA_JSON, GROUP_SCHEMA_JSON, ENTERPRISE_SCHEMA_JSON]
        .iter()
        .filter_map(|text| serde_json::from_str::<Value>(text).ok())
        .map(|mut s| {
            let id = s["id"].as_str().unwrap_or_default().to_string();
            s["meta"] =
                json!({"resourceType": "Schema", "location": format!("{base}/Schemas/{id}")});
            s
        })
        .collect()
}

pub fn schemas_list(base: &str) -> Value {
    let all = schemas(base);
    let n = all.len() as i64;
    list_response(all, n, 1)
}

pub fn schema(base: &str, urn: &str) -> Result<Value, ScimError> {
    schemas(base)
        .into_iter()
        .find(|s| {
            s["id"]
                .as_str()
                .is_some_and(|id| id.eq_ignore_ascii_case(urn))
        })
        .ok_or_else(|| ScimError::not_found(format!("no schema {urn:?}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_schemas_parse() {
        let all = schemas("http://x");
        assert_eq!(all.len(), 3);
        assert!(schema("http://x", USER_SCHEMA).is_ok());
        assert!(resource_type("http://x", "group").is_ok());
    }
}
