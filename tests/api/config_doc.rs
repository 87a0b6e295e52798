//! The README's configuration tables against the settings' declarations (src/config.rs):
//! every declared setting has a row under its section with its default, and every row
//! names a declared setting. On failure the expected rows are printed, to paste.

use scimgate::config::{Section, SETTINGS};

/// One row of a table in the README's Configuration section.
#[derive(Debug)]
struct Row {
    section: Option<String>,
    name: String,
    default: String,
}

/// The rows of the tables between `## Configuration` and the next `## ` heading; a
/// `**section**` line names the section of the tables after it.
fn readme_rows() -> Vec<Row> {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("README.md");
    let start = readme
        .find("\n## Configuration\n")
        .expect("a Configuration section");
    let rest = &readme[start + 1..];
    let end = rest[3..].find("\n## ").map_or(rest.len(), |i| i + 3);
    let mut section = None;
    let mut rows = Vec::new();
    for line in rest[..end].lines() {
        if let Some(name) = line.strip_prefix("**").and_then(|l| l.strip_suffix("**")) {
            section = Some(name.to_string());
            continue;
        }
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        // `| name | default | meaning |` splits into ["", name, default, meaning, ""].
        if cells.len() < 4 || !cells[1].starts_with("`SCIMGATE_") {
            continue;
        }
        rows.push(Row {
            section: section.clone(),
            name: cells[1].trim_matches('`').to_string(),
            default: cells[2].to_string(),
        });
    }
    rows
}

fn expected_tables() -> String {
    let mut out = String::new();
    for section in Section::ALL {
        let settings: Vec<_> = section.settings().collect();
        if settings.is_empty() {
            continue;
        }
        out.push_str(&format!(
            "\n**{}**\n\n| variable | default | meaning |\n|---|---|---|\n",
            section.name()
        ));
        for s in settings {
            out.push_str(&format!(
                "| `{}` | {} | {} |\n",
                s.env(),
                s.documented_default(),
                s.help()
            ));
        }
    }
    out
}

#[test]
fn readme_configuration_tables_match_the_declarations() {
    let rows = readme_rows();
    let mut problems = Vec::new();
    for s in SETTINGS {
        let env = s.env();
        let found: Vec<&Row> = rows.iter().filter(|r| r.name == env).collect();
        match found.as_slice() {
            [] => problems.push(format!("{env} is declared but not in the README")),
            [row] => {
                if row.default != s.documented_default() {
                    problems.push(format!(
                        "{env}: the README's default is {:?}, the declaration's {:?}",
                        row.default,
                        s.documented_default()
                    ));
                }
                if row.section.as_deref() != Some(s.section.name()) {
                    problems.push(format!(
                        "{env} is under {:?} in the README, declared in {:?}",
                        row.section,
                        s.section.name()
                    ));
                }
            }
            _ => problems.push(format!("{env} has {} rows in the README", found.len())),
        }
    }
    for row in &rows {
        if !SETTINGS.iter().any(|s| s.env() == row.name) {
            problems.push(format!(
                "the README names {}, which is not a declared setting",
                row.name
            ));
        }
    }
    assert!(
        problems.is_empty(),
        "README.md's configuration tables are out of step with src/config.rs:\n  {}\n\nFrom the declarations (meanings may say more in the README):\n{}",
        problems.join("\n  "),
        expected_tables()
    );
}

#[test]
fn the_check_sees_the_tables() {
    // Guards the test above against passing on a README it failed to read.
    let rows = readme_rows();
    assert!(rows.len() >= SETTINGS.len(), "{rows:?}");
    assert!(rows
        .iter()
        .any(|r| r.name == "SCIMGATE_ENCRYPTION_KEY" && r.default == "generated"));
}
