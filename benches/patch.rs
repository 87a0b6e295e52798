//! The PATCH engine (`cargo bench --bench patch`): parsing and applying IdP-shaped
//! operations, and a 10 000-member group add. Also Bulk's `bulkId` resolution over a
//! request near the 1 MiB limit (`cargo bench --bench patch -- bulk`).

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use scimgate::scim::bulk::{self, BulkRequest, Done};
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

/// 1000 user creations, about 0.95 MiB, each naming the next (created later in the
/// request) as its manager: every operation waits on a reference, the worst order.
fn chained_bulk() -> BulkRequest {
    let n = 1000;
    let ops: Vec<Value> = (0..n)
        .map(|i| {
            let mut u = user();
            u["userName"] = json!(format!("u{i}@contoso.com"));
            u["title"] = json!("p".repeat(100));
            u["addresses"] = (0..4)
                .map(|k| json!({"type": format!("t{k}"), "streetAddress": format!("{k} Main St"),
                    "locality": "Springfield", "region": "IL", "postalCode": "62701", "country": "US"}))
                .collect();
            if i + 1 < n {
                u["urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"] =
                    json!({"manager": {"value": format!("bulkId:u{}", i + 1)}});
            }
            json!({"method": "POST", "path": "/Users", "bulkId": format!("u{i}"), "data": u})
        })
        .collect();
    bulk::parse(&json!({"Operations": ops})).expect("valid")
}

fn bench_bulk(c: &mut Criterion) {
    let request = chained_bulk();
    let mut g = c.benchmark_group("bulk");
    g.sample_size(20);
    g.bench_function("bulk_resolve_1000_chained", |b| {
        b.iter_batched(
            || request.clone(),
            |r| {
                // Stands in for the database: every operation creates `id-<bulkId>`.
                bulk::execute(r, |op| {
                    Ok(Done {
                        status: 201,
                        id: op.bulk_id.map(|b| format!("id-{b}")),
                        ..Done::default()
                    })
                })
            },
            BatchSize::LargeInput,
        )
    });
    g.finish();
}

criterion_group!(benches, bench, bench_bulk);
criterion_main!(benches);
