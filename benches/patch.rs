//! The PATCH engine (`cargo bench --bench patch`): parsing and applying IdP-shaped
//! operations, and a 10 000-member group add.

use criterion::{criterion_group, criterion_main, Criterion};
use scimgate::scim::patch::{self, Target};
use scimgate::scim::resource;
use serde_json::{json, Value};
use std::hint::black_box;

fn user() -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "userName": "ada@contoso.onmicrosoft.com", "externalId": "e1", "active": true,
        "name": {"givenName": "Ada", "familyName": "Lovelace"},
        "emails": [{"value": "ada@contoso.com", "type": "work", "primary": true}],
        "addresses": [{"type": "work", "locality": "London", "country": "GB"}]
    })
}

fn entra_update() -> Value {
    json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": [
        {"op": "Replace", "path": "emails[type eq \"work\"].value", "value": "ada.l@contoso.com"},
        {"op": "Replace", "path": "name.familyName", "value": "King"},
        {"op": "Add", "path": "addresses[type eq \"work\"].postalCode", "value": "SW1"},
        {"op": "Replace", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department", "value": "Math"},
        {"op": "Replace", "path": "active", "value": "False"}
    ]})
}

fn bench(c: &mut Criterion) {
    let body = entra_update();
    c.bench_function("patch_parse_entra", |b| {
        b.iter(|| patch::parse(black_box(&body)).expect("valid"))
    });
    let ops = patch::parse(&body).expect("valid");
    c.bench_function("patch_apply_entra_and_normalize", |b| {
        b.iter(|| {
            let mut doc = user();
            patch::apply(&mut doc, black_box(&ops), Target::User).expect("applies");
            resource::normalize_user(doc).expect("valid")
        })
    });
    let members: Vec<Value> = (0..10_000)
        .map(|i| json!({"value": format!("00000000-0000-0000-0000-{i:012}")}))
        .collect();
    let big = json!({"Operations": [{"op": "add", "path": "members", "value": members}]});
    c.bench_function("patch_parse_apply_10k_members", |b| {
        b.iter(|| {
            let ops = patch::parse(black_box(&big)).expect("valid");
            let mut doc = json!({"displayName": "Everyone"});
            patch::apply(&mut doc, &ops, Target::Group).expect("applies")
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
