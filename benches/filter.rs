//! The SCIM filter parser and evaluator (`cargo bench --bench filter`).

use criterion::{criterion_group, criterion_main, Criterion};
use scimgate::scim::filter;
use serde_json::json;
use std::hint::black_box;

const FILTERS: &[(&str, &str)] = &[
    ("user_name_eq", r#"userName eq "bjensen@example.com""#),
    (
        "okta_lookup",
        r#"userName eq "isaac.brock@example.com" and active eq true"#,
    ),
    (
        "value_path",
        r#"emails[type eq "work" and value co "@example.com"] or ims[type eq "xmpp" and value co "@foo.com"]"#,
    ),
    (
        "nested",
        r#"not (title pr) and (userType eq "Employee" or (meta.lastModified gt "2011-05-13T04:42:34Z" and externalId sw "00u"))"#,
    ),
    (
        "enterprise_urn",
        r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value eq "26118915-6090-4610-87e4-49d8ca9f808d""#,
    ),
];

fn parse(c: &mut Criterion) {
    let mut g = c.benchmark_group("filter_parse");
    for (name, f) in FILTERS {
        g.bench_function(*name, |b| {
            b.iter(|| filter::parse(black_box(f)).expect("valid"))
        });
    }
    g.finish();
}

fn evaluate(c: &mut Criterion) {
    let user = json!({
        "id": "2819c223-7f76-453a-919d-413861904646", "userName": "bjensen@example.com",
        "externalId": "00ujl29u0le5T6Aj10h7", "active": true, "title": "Tour Guide", "userType": "Employee",
        "emails": [{"value": "bjensen@example.com", "type": "work", "primary": true}, {"value": "babs@jensen.org", "type": "home"}],
        "ims": [{"value": "someaimhandle", "type": "aim"}],
        "meta": {"created": "2010-01-23T04:56:22Z", "lastModified": "2011-05-13T04:42:34Z"},
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"manager": {"value": "26118915-6090-4610-87e4-49d8ca9f808d"}}
    });
    let mut g = c.benchmark_group("filter_match");
    for (name, f) in FILTERS {
        let parsed = filter::parse(f).expect("valid");
        g.bench_function(*name, |b| {
            b.iter(|| filter::matches(black_box(&parsed), black_box(&user)))
        });
    }
    g.finish();
}

criterion_group!(benches, parse, evaluate);
criterion_main!(benches);
