//! The documented bounds on one request (README "Limits"): what a client may ask the
//! gateway to store, match or apply. Each bound keeps one tenant's request from costing
//! every other tenant memory, CPU or the write lock; beyond it the answer is a 400 with
//! the bound named, never a 500. DESIGN.md §1: liberal in what we accept, strict in
//! what we store.

use serde_json::Value;

use super::error::ScimError;

/// Longest filter accepted, in bytes.
pub const MAX_FILTER_LEN: usize = 4096;
/// Deepest nesting of parentheses and brackets in a filter.
pub const MAX_FILTER_DEPTH: usize = 32;
/// Most comparisons (`eq`, `co`, `pr`, …) in one filter. Identity providers send one or
/// two; each term costs a pass over every candidate's values.
pub const MAX_FILTER_TERMS: usize = 64;
/// Most operations in one PATCH request.
pub const MAX_PATCH_OPERATIONS: usize = 1000;
/// Most values of one multi-valued attribute of a user or group (`emails`,
/// `phoneNumbers`, …). A group's `members` are stored as rows and bounded only by the
/// body size.
pub const MAX_VALUES_PER_ATTRIBUTE: usize = 100;
/// Longest indexed string (`userName`, `externalId`, email values, group
/// `displayName`), in characters; their UTF-8 may not exceed [`MAX_INDEXED_BYTES`] either,
/// which keeps every index entry under PostgreSQL's B-tree row limit (~2.7 kB).
pub const MAX_INDEXED_CHARS: usize = 1024;
/// Longest indexed string in UTF-8 bytes, lower-cased form included.
pub const MAX_INDEXED_BYTES: usize = 2048;
/// Longest string value of any other attribute (and any attribute name), in characters.
pub const MAX_STRING_CHARS: usize = 16 * 1024;

/// A client string that is stored or compared: no NUL (PostgreSQL's text cannot hold
/// one) and at most `max_chars` characters.
pub fn check_text(what: &str, s: &str, max_chars: usize) -> Result<(), ScimError> {
    if s.contains('\0') {
        return Err(ScimError::invalid_value(format!(
            "{what} contains a NUL character"
        )));
    }
    // Bytes first: a string of at most `max_chars` bytes has at most that many chars.
    if s.len() > max_chars && s.chars().count() > max_chars {
        return Err(ScimError::invalid_value(format!(
            "{what} is longer than {max_chars} characters"
        )));
    }
    Ok(())
}

/// An indexed string: [`check_text`] with the index bounds, on the string and on the
/// lower-cased form that case-insensitive columns index.
pub fn check_indexed(what: &str, s: &str) -> Result<(), ScimError> {
    check_text(what, s, MAX_INDEXED_CHARS)?;
    let lower_len = || {
        s.chars()
            .flat_map(char::to_lowercase)
            .map(char::len_utf8)
            .sum::<usize>()
    };
    if s.len() > MAX_INDEXED_BYTES || lower_len() > MAX_INDEXED_BYTES {
        return Err(ScimError::invalid_value(format!(
            "{what} is longer than {MAX_INDEXED_BYTES} bytes in UTF-8"
        )));
    }
    Ok(())
}

/// Checks every string, attribute name and multi-valued attribute of a resource body.
/// `unbounded` names the top-level array exempt from the value count (a group's
/// `members`: rows, not part of the stored document).
pub fn check_resource(body: &Value, unbounded: Option<&str>) -> Result<(), ScimError> {
    match body {
        Value::Object(map) => {
            for (k, v) in map {
                check_text("an attribute name", k, MAX_STRING_CHARS)?;
                let exempt = unbounded.is_some_and(|u| u.eq_ignore_ascii_case(k));
                match v {
                    Value::Array(items) if exempt => {
                        for item in items {
                            check_value(k, item)?;
                        }
                    }
                    _ => check_value(k, v)?,
                }
            }
            Ok(())
        }
        other => check_value("the value", other),
    }
}

fn check_value(name: &str, v: &Value) -> Result<(), ScimError> {
    match v {
        Value::String(s) => check_text(name, s, MAX_STRING_CHARS),
        Value::Array(items) => {
            check_count(name, items.len())?;
            items.iter().try_for_each(|item| check_value(name, item))
        }
        Value::Object(map) => map.iter().try_for_each(|(k, v)| {
            check_text("an attribute name", k, MAX_STRING_CHARS)?;
            check_value(k, v)
        }),
        Value::Null | Value::Bool(_) | Value::Number(_) => Ok(()),
    }
}

/// A multi-valued attribute may hold at most [`MAX_VALUES_PER_ATTRIBUTE`] values.
pub fn check_count(name: &str, n: usize) -> Result<(), ScimError> {
    if n > MAX_VALUES_PER_ATTRIBUTE {
        return Err(ScimError::invalid_value(format!(
            "{name} has {n} values; at most {MAX_VALUES_PER_ATTRIBUTE} are accepted"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn strings_names_and_counts() {
        assert!(check_resource(
            &json!({"userName": "ada", "emails": [{"value": "a@b"}]}),
            None
        )
        .is_ok());
        assert!(check_resource(&json!({"userName": "a\u{0}b"}), None).is_err());
        assert!(check_resource(&json!({"a\u{0}": 1}), None).is_err());
        assert!(check_resource(&json!({"x": "y".repeat(MAX_STRING_CHARS + 1)}), None).is_err());
        assert!(check_resource(&json!({"x": "é".repeat(MAX_STRING_CHARS)}), None).is_ok());
        let many: Vec<Value> = (0..=MAX_VALUES_PER_ATTRIBUTE).map(|i| json!(i)).collect();
        assert!(check_resource(&json!({"emails": many}), None).is_err());
        assert!(check_resource(&json!({"members": many}), Some("members")).is_ok());
        assert!(
            check_resource(&json!({"members": [{"value": "\u{0}"}]}), Some("members")).is_err()
        );
    }

    #[test]
    fn indexed_strings_bounded_in_chars_and_bytes() {
        assert!(check_indexed("userName", &"a".repeat(MAX_INDEXED_CHARS)).is_ok());
        assert!(check_indexed("userName", &"a".repeat(MAX_INDEXED_CHARS + 1)).is_err());
        // 1 000 four-byte characters: few enough characters, too many bytes for an index.
        assert!(check_indexed("userName", &"😀".repeat(1000)).is_err());
    }
}
