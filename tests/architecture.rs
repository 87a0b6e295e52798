//! The architecture as a test (ARCHITECTURE.md): which part may name which framework and
//! which other part. Reads the sources as text; comments do not count.

use std::path::{Path, PathBuf};

fn sources(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).expect("read src") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            out.extend(sources(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    out.sort();
    out
}

/// Every (file, line number, code) of `src/`, comments removed.
fn code_lines() -> Vec<(String, usize, String)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut out = Vec::new();
    for path in sources(&root.join("src")) {
        let rel = path
            .strip_prefix(root)
            .expect("under the crate")
            .to_string_lossy()
            .replace('\\', "/");
        let text = std::fs::read_to_string(&path).expect("read source");
        for (i, line) in text.lines().enumerate() {
            let code = match line.find("//") {
                // A `//` inside a string literal (a URL) is code; one at the start of the
                // trimmed line or after code outside quotes is a comment.
                Some(pos) if line[..pos].matches('"').count() % 2 == 0 => &line[..pos],
                _ => line,
            };
            if !code.trim().is_empty() {
                out.push((rel.clone(), i + 1, code.to_string()));
            }
        }
    }
    out
}

/// Files outside `allowed` (path prefixes) whose code names `word` as a path segment.
fn violations(word: &str, allowed: &[&str]) -> Vec<String> {
    let needle = format!("{word}::");
    code_lines()
        .into_iter()
        .filter(|(file, _, code)| {
            !allowed.iter().any(|a| file.starts_with(a))
                && (code.contains(&needle) || code.contains(&format!("use {word}")))
        })
        .map(|(file, n, code)| format!("{file}:{n}: {}", code.trim()))
        .collect()
}

#[test]
fn the_protocol_core_has_no_io_and_no_other_part() {
    let mut found = Vec::new();
    for word in ["actix_web", "actix_http", "diesel", "reqwest", "tokio"] {
        found.extend(
            violations(word, &[])
                .into_iter()
                .filter(|v| v.starts_with("src/scim/")),
        );
    }
    found.extend(
        code_lines()
            .into_iter()
            .filter(|(file, _, code)| {
                file.starts_with("src/scim/")
                    && code.contains("crate::")
                    && !code.contains("crate::scim")
            })
            .map(|(file, n, code)| format!("{file}:{n}: {}", code.trim())),
    );
    assert!(
        found.is_empty(),
        "src/scim must stay pure:\n{}",
        found.join("\n")
    );
}

#[test]
fn diesel_stays_in_the_store() {
    let found = violations("diesel", &["src/store/", "src/error.rs"]);
    assert!(
        found.is_empty(),
        "diesel outside src/store:\n{}",
        found.join("\n")
    );
}

#[test]
fn actix_stays_in_http() {
    // The fake providers are servers of their own; the dashboard is pages served by
    // `http`'s server.
    let allowed = ["src/http/", "src/devproviders/", "src/dashboard/"];
    let mut found = violations("actix_web", &allowed);
    found.extend(violations("actix_http", &allowed));
    assert!(
        found.is_empty(),
        "actix outside src/http:\n{}",
        found.join("\n")
    );
}

#[test]
fn reqwest_stays_in_the_outbound_client() {
    let found = violations("reqwest", &["src/outbound/"]);
    assert!(
        found.is_empty(),
        "reqwest outside src/outbound:\n{}",
        found.join("\n")
    );
}

/// The lower-case names (modules, functions) a line reaches through `store::`.
fn store_functions(code: &str) -> Vec<String> {
    code.match_indices("store::")
        .map(|(i, m)| {
            code[i + m.len()..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect::<String>()
        })
        .filter(|name| name.starts_with(|c: char| c.is_ascii_lowercase()))
        .collect()
}

#[test]
fn http_reads_and_writes_through_the_directory() {
    // Types (the pool handle, a connection, a page) may be named; queries may not, but
    // for the readiness probe.
    let found: Vec<String> = code_lines()
        .into_iter()
        .filter(|(file, _, code)| {
            (file.starts_with("src/http/") && store_functions(code).iter().any(|f| f != "ping"))
                // The dashboard, as the admin API: not even the ping.
                || (file.starts_with("src/dashboard/") && !store_functions(code).is_empty())
        })
        .map(|(file, n, code)| format!("{file}:{n}: {}", code.trim()))
        .collect();
    assert!(
        found.is_empty(),
        "http calling the store directly:\n{}",
        found.join("\n")
    );
}

#[test]
fn lower_parts_do_not_import_higher_ones() {
    // From the bottom: scim, error, store, outbound, webhooks, directory, http.
    let rules: &[(&str, &[&str])] = &[
        (
            "src/store/",
            &[
                "crate::connect",
                "crate::directory",
                "crate::http",
                "crate::webhooks",
                "crate::outbound",
                "crate::google_sync",
            ],
        ),
        (
            "src/outbound/",
            &[
                "crate::directory",
                "crate::http",
                "crate::webhooks",
                "crate::store",
            ],
        ),
        (
            "src/webhooks/",
            &[
                "crate::directory",
                "crate::http",
                "crate::connect",
                "crate::dashboard",
            ],
        ),
        (
            "src/connect/",
            &[
                "crate::http",
                "crate::background",
                "crate::devproviders",
                "crate::directory",
                "crate::provisioning",
                "crate::dashboard",
            ],
        ),
        (
            "src/provisioning/",
            &[
                "crate::http",
                "crate::background",
                "crate::devproviders",
                "crate::dashboard",
            ],
        ),
        (
            "src/providers/",
            &[
                "crate::directory",
                "crate::http",
                "crate::webhooks",
                "crate::store",
                "crate::background",
                "crate::google_sync",
            ],
        ),
        (
            "src/devproviders/",
            &[
                "crate::directory",
                "crate::http",
                "crate::webhooks",
                "crate::store",
                "crate::background",
                "crate::outbound",
            ],
        ),
        (
            "src/directory/",
            &["crate::http", "crate::google_sync", "crate::dashboard"],
        ),
        (
            "src/google_sync/",
            &[
                "crate::http",
                "crate::background",
                "crate::connect",
                "crate::devproviders",
                "crate::provisioning",
                "crate::webhooks",
                "crate::outbound",
                "crate::dashboard",
            ],
        ),
        (
            "src/dashboard/",
            &[
                "crate::background",
                "crate::devproviders",
                "crate::providers",
                "crate::outbound",
                "crate::webhooks::delivery",
                "crate::webhooks::fanout",
                "crate::webhooks::signing",
            ],
        ),
    ];
    let mut found = Vec::new();
    for (file, n, code) in code_lines() {
        for (part, forbidden) in rules {
            if file.starts_with(part) && forbidden.iter().any(|f| code.contains(f)) {
                found.push(format!("{file}:{n}: {}", code.trim()));
            }
        }
    }
    assert!(found.is_empty(), "upward imports:\n{}", found.join("\n"));
}

/// Whether `code` names the module `name` as a path (`name::`), not as the tail of a
/// longer name (`devproviders::` does not name `providers::`).
fn names_module(code: &str, name: &str) -> bool {
    let needle = format!("{name}::");
    code.match_indices(&needle).any(|(i, _)| {
        !code[..i]
            .chars()
            .next_back()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
    })
}

#[test]
fn the_fakes_and_the_connectors_keep_apart() {
    // The fakes check wire shapes: sharing the connectors' code would test them against
    // themselves. The connectors are plain HTTP clients: no server, no database.
    let found: Vec<String> = code_lines()
        .into_iter()
        .filter(|(file, _, code)| {
            (file.starts_with("src/devproviders/") && names_module(code, "providers"))
                || (file.starts_with("src/providers/")
                    && ["actix", "diesel"].iter().any(|w| code.contains(w)))
        })
        .map(|(file, n, code)| format!("{file}:{n}: {}", code.trim()))
        .collect();
    assert!(
        found.is_empty(),
        "devproviders naming providers, or providers naming actix/diesel:\n{}",
        found.join("\n")
    );
    assert!(names_module("use crate::providers::google;", "providers"));
    assert!(!names_module(
        "crate::devproviders::DevProviders",
        "providers"
    ));
}
