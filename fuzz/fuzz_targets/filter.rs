//! Any text as a SCIM filter, a PATCH path and a sortBy: parsing and evaluation must
//! never panic, and what parses must evaluate.
#![no_main]

use libfuzzer_sys::fuzz_target;
use scimgate::scim::filter;
use serde_json::json;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let user = json!({
        "id": "2819c223", "userName": "bjensen@example.com", "externalId": "00u1", "active": true,
        "emails": [{"value": "bjensen@example.com", "type": "work", "primary": true}, "plain@example.com"],
        "name": {"givenName": "Barbara"}, "meta": {"created": "2010-01-23T04:56:22Z"},
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"department": "Tour"},
        "members": [{"value": "u1"}]
    });
    if let Ok(f) = filter::parse(text) {
        let _ = filter::matches(&f, &user);
    }
    let _ = filter::parse_patch_path(text);
    let _ = filter::sort_key(&user, text);
});
