//! Any bytes as a PATCH body applied to a user and to a group: errors are fine, panics
//! are not, and a successful PATCH leaves a user that still normalises or is refused.
#![no_main]

use libfuzzer_sys::fuzz_target;
use scimgate::scim::patch::{self, Target};
use scimgate::scim::resource;
use serde_json::{json, Value};

fuzz_target!(|data: &[u8]| {
    let Ok(body) = serde_json::from_slice::<Value>(data) else { return };
    let Ok(ops) = patch::parse(&body) else { return };
    let mut user = json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "ada@example.com",
        "emails": [{"value": "ada@example.com", "type": "work", "primary": true}],
        "name": {"givenName": "Ada"}, "active": true
    });
    if patch::apply(&mut user, &ops, Target::User).is_ok() {
        let _ = resource::normalize_user(user);
    }
    let mut group = json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "Eng"});
    if patch::apply(&mut group, &ops, Target::Group).is_ok() {
        let _ = resource::normalize_group(group);
    }
    let _ = resource::normalize_user(body.clone());
    let _ = resource::normalize_group(body.clone());
    let _ = scimgate::scim::bulk::parse(&body);
});
