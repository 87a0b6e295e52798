//! The RFC 7644 §3.4.2.2 filter grammar, parsed with nom into an AST, and an evaluator of
//! that AST over a resource's JSON.
//!
//! Precedence, loosest first: `or`, `and`, then `not (...)`, `( ... )`, value paths and
//! attribute expressions. Keywords, operators and attribute names are case-insensitive.

use nom::branch::alt;
use nom::bytes::complete::{tag, tag_no_case, take_while, take_while1};
use nom::character::complete::{char, multispace0, multispace1};
use nom::combinator::{map, opt, peek, recognize};
use nom::multi::many0;
use nom::sequence::{delimited, preceded};
use nom::{IResult, Parser};
use serde_json::Value;

use super::error::ScimError;

pub use super::limits::{MAX_FILTER_DEPTH, MAX_FILTER_LEN, MAX_FILTER_TERMS};

/// `[urn:…:]attr[.sub]`, with names kept as sent (compare with `eq_ignore_ascii_case`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttrPath {
    pub urn: Option<String>,
    pub attr: String,
    pub sub: Option<String>,
}

impl AttrPath {
    pub fn is(&self, attr: &str, sub: Option<&str>) -> bool {
        self.attr.eq_ignore_ascii_case(attr)
            && match (&self.sub, sub) {
                (None, None) => true,
                (Some(a), Some(b)) => a.eq_ignore_ascii_case(b),
                _ => false,
            }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompareOp {
    Eq,
    Ne,
    Co,
    Sw,
    Ew,
    Gt,
    Ge,
    Lt,
    Le,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    Compare(AttrPath, CompareOp, Value),
    Present(AttrPath),
    And(Box<Filter>, Box<Filter>),
    Or(Box<Filter>, Box<Filter>),
    Not(Box<Filter>),
    /// `attr[filter]`: some element of the multi-valued `attr` matches `filter`.
    ValuePath(AttrPath, Box<Filter>),
}

type Res<'a, T> = IResult<&'a str, T>;

/// Parses a whole filter. Errors are 400 `invalidFilter` with the byte position.
pub fn parse(input: &str) -> Result<Filter, ScimError> {
    check_limits(input).map_err(ScimError::invalid_filter)?;
    match delimited(multispace0, or_expr, multispace0).parse(input) {
        Ok(("", f)) => {
            check_terms(&f).map_err(ScimError::invalid_filter)?;
            Ok(f)
        }
        Ok((rest, _)) => Err(ScimError::invalid_filter(format!(
            "unexpected input at position {}: {:?}",
            input.len() - rest.len(),
            excerpt(rest)
        ))),
        Err(nom::Err::Error(e)) | Err(nom::Err::Failure(e)) => {
            Err(ScimError::invalid_filter(format!(
                "invalid filter at position {}: {:?}",
                input.len() - e.input.len(),
                excerpt(e.input)
            )))
        }
        Err(nom::Err::Incomplete(_)) => Err(ScimError::invalid_filter("incomplete filter")),
    }
}

/// Parses a PATCH path (RFC 7644 §3.5.2): `attrPath` or `valuePath[.subAttr]`.
pub fn parse_patch_path(input: &str) -> Result<PatchPath, ScimError> {
    check_limits(input).map_err(ScimError::invalid_path)?;
    let parsed = (
        attr_path,
        opt((
            delimited((char('['), multispace0), or_expr, (multispace0, char(']'))),
            opt(preceded(char('.'), attr_name)),
        )),
    )
        .parse(input.trim());
    match parsed {
        Ok(("", (path, None))) => Ok(PatchPath {
            path,
            filter: None,
            sub: None,
        }),
        Ok(("", (path, Some((filter, sub))))) => {
            if path.sub.is_some() {
                return Err(ScimError::invalid_path(format!(
                    "a value filter must follow a top-level attribute: {input:?}"
                )));
            }
            Ok(PatchPath {
                path,
                filter: Some(filter),
                sub: sub.map(str::to_string),
            })
        }
        _ => Err(ScimError::invalid_path(format!("invalid path {input:?}"))),
    }
    .and_then(|pp| match &pp.filter {
        Some(f) => check_terms(f).map(|_| pp).map_err(ScimError::invalid_path),
        None => Ok(pp),
    })
}

/// The number of comparisons in a filter (each `eq`, `co`, `pr`, … once).
pub fn terms(f: &Filter) -> usize {
    match f {
        Filter::Compare(..) | Filter::Present(_) => 1,
        Filter::And(a, b) | Filter::Or(a, b) => terms(a) + terms(b),
        Filter::Not(f) | Filter::ValuePath(_, f) => terms(f),
    }
}

/// Bounds a parsed filter: at most [`MAX_FILTER_TERMS`] comparisons (each one is a pass
/// over every candidate's values), and no NUL in a compared string (no column can hold it).
fn check_terms(f: &Filter) -> Result<(), String> {
    let n = terms(f);
    if n > MAX_FILTER_TERMS {
        return Err(format!(
            "{n} comparisons; at most {MAX_FILTER_TERMS} are accepted"
        ));
    }
    fn has_nul(f: &Filter) -> bool {
        match f {
            Filter::Compare(_, _, Value::String(s)) => s.contains('\0'),
            Filter::Compare(..) | Filter::Present(_) => false,
            Filter::And(a, b) | Filter::Or(a, b) => has_nul(a) || has_nul(b),
            Filter::Not(f) | Filter::ValuePath(_, f) => has_nul(f),
        }
    }
    if has_nul(f) {
        return Err("a compared value contains a NUL character".into());
    }
    Ok(())
}

/// A parsed PATCH path.
#[derive(Debug, Clone, PartialEq)]
pub struct PatchPath {
    pub path: AttrPath,
    pub filter: Option<Filter>,
    /// The sub-attribute after a value filter: `emails[type eq "work"].value`.
    pub sub: Option<String>,
}

fn excerpt(s: &str) -> String {
    s.chars().take(24).collect()
}

fn check_limits(input: &str) -> Result<(), String> {
    if input.len() > MAX_FILTER_LEN {
        return Err(format!("longer than {MAX_FILTER_LEN} bytes"));
    }
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for c in input.chars() {
        if in_string {
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match c {
            '"' => in_string = true,
            '(' | '[' => {
                depth += 1;
                if depth > MAX_FILTER_DEPTH {
                    return Err(format!("nested deeper than {MAX_FILTER_DEPTH}"));
                }
            }
            ')' | ']' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

fn or_expr(i: &str) -> Res<'_, Filter> {
    let (i, first) = and_expr(i)?;
    let (i, rest) = many0(preceded(
        (multispace1, tag_no_case("or"), multispace1),
        and_expr,
    ))
    .parse(i)?;
    Ok((
        i,
        rest.into_iter()
            .fold(first, |a, b| Filter::Or(Box::new(a), Box::new(b))),
    ))
}

fn and_expr(i: &str) -> Res<'_, Filter> {
    let (i, first) = atom(i)?;
    let (i, rest) = many0(preceded(
        (multispace1, tag_no_case("and"), multispace1),
        atom,
    ))
    .parse(i)?;
    Ok((
        i,
        rest.into_iter()
            .fold(first, |a, b| Filter::And(Box::new(a), Box::new(b))),
    ))
}

fn atom(i: &str) -> Res<'_, Filter> {
    alt((parenthesised, negation, value_path, attr_exp)).parse(i)
}

fn parenthesised(i: &str) -> Res<'_, Filter> {
    delimited((char('('), multispace0), or_expr, (multispace0, char(')'))).parse(i)
}

fn negation(i: &str) -> Res<'_, Filter> {
    map(
        preceded((tag_no_case("not"), multispace0), parenthesised),
        |f| Filter::Not(Box::new(f)),
    )
    .parse(i)
}

fn value_path(i: &str) -> Res<'_, Filter> {
    let (i, (path, inner)) = (
        attr_path,
        delimited((char('['), multispace0), or_expr, (multispace0, char(']'))),
    )
        .parse(i)?;
    // Entra writes `emails[type eq "work"].value eq "x"`: a comparison on a sub-attribute
    // of the selected element, i.e. `emails[type eq "work" and value eq "x"]`.
    if let Ok((rest, sub_exp)) = preceded(char('.'), attr_exp).parse(i) {
        let both = Filter::And(Box::new(inner), Box::new(sub_exp));
        return Ok((rest, Filter::ValuePath(path, Box::new(both))));
    }
    Ok((i, Filter::ValuePath(path, Box::new(inner))))
}

fn attr_exp(i: &str) -> Res<'_, Filter> {
    let (i, path) = attr_path(i)?;
    let (i, _) = multispace1(i)?;
    if let Ok((rest, _)) = (
        tag_no_case::<_, _, nom::error::Error<&str>>("pr"),
        peek(boundary),
    )
        .parse(i)
    {
        return Ok((rest, Filter::Present(path)));
    }
    let (i, (op, _, v)) = (compare_op, multispace1, comp_value).parse(i)?;
    Ok((i, Filter::Compare(path, op, v)))
}

/// End of input or a character that cannot continue a keyword.
fn boundary(i: &str) -> Res<'_, ()> {
    match i.chars().next() {
        None => Ok((i, ())),
        Some(c) if c.is_whitespace() || c == ')' || c == ']' => Ok((i, ())),
        Some(_) => Err(nom::Err::Error(nom::error::Error::new(
            i,
            nom::error::ErrorKind::Verify,
        ))),
    }
}

fn compare_op(i: &str) -> Res<'_, CompareOp> {
    alt((
        map(tag_no_case("eq"), |_| CompareOp::Eq),
        map(tag_no_case("ne"), |_| CompareOp::Ne),
        map(tag_no_case("co"), |_| CompareOp::Co),
        map(tag_no_case("sw"), |_| CompareOp::Sw),
        map(tag_no_case("ew"), |_| CompareOp::Ew),
        map(tag_no_case("gt"), |_| CompareOp::Gt),
        map(tag_no_case("ge"), |_| CompareOp::Ge),
        map(tag_no_case("lt"), |_| CompareOp::Lt),
        map(tag_no_case("le"), |_| CompareOp::Le),
    ))
    .parse(i)
}

fn comp_value(i: &str) -> Res<'_, Value> {
    alt((
        map((tag_no_case("true"), peek(boundary)), |_| Value::Bool(true)),
        map((tag_no_case("false"), peek(boundary)), |_| {
            Value::Bool(false)
        }),
        map((tag_no_case("null"), peek(boundary)), |_| Value::Null),
        json_string,
        json_number,
    ))
    .parse(i)
}

fn json_string(i: &str) -> Res<'_, Value> {
    let bytes = i.as_bytes();
    if bytes.first() != Some(&b'"') {
        return Err(nom::Err::Error(nom::error::Error::new(
            i,
            nom::error::ErrorKind::Char,
        )));
    }
    let mut escaped = false;
    for (pos, b) in bytes.iter().enumerate().skip(1) {
        match (escaped, b) {
            (true, _) => escaped = false,
            (false, b'\\') => escaped = true,
            (false, b'"') => {
                let literal = &i[..=pos];
                // serde_json decodes every JSON escape, including surrogate pairs.
                return match serde_json::from_str::<String>(literal) {
                    Ok(s) => Ok((&i[pos + 1..], Value::String(s))),
                    Err(_) => Err(nom::Err::Failure(nom::error::Error::new(
                        i,
                        nom::error::ErrorKind::Escaped,
                    ))),
                };
            }
            _ => {}
        }
    }
    Err(nom::Err::Failure(nom::error::Error::new(
        i,
        nom::error::ErrorKind::Char,
    )))
}

fn json_number(i: &str) -> Res<'_, Value> {
    let digits = |i| take_while1(|c: char| c.is_ascii_digit()).parse(i);
    let (rest, text) = recognize((
        opt(char('-')),
        digits,
        opt((char('.'), digits)),
        opt((
            alt((char('e'), char('E'))),
            opt(alt((char('+'), char('-')))),
            digits,
        )),
    ))
    .parse(i)?;
    match serde_json::from_str::<Value>(text) {
        Ok(v) => Ok((rest, v)),
        Err(_) => Err(nom::Err::Error(nom::error::Error::new(
            i,
            nom::error::ErrorKind::Float,
        ))),
    }
}

fn attr_name(i: &str) -> Res<'_, &str> {
    recognize((
        alt((tag("$ref"), take_while1(|c: char| c.is_ascii_alphabetic()))),
        take_while(|c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-'),
    ))
    .parse(i)
}

fn attr_path(i: &str) -> Res<'_, AttrPath> {
    // A schema URN prefix ends at the last ':' before the attribute name.
    let (rest, token) = take_while1(|c: char| {
        c.is_ascii_alphanumeric() || matches!(c, ':' | '.' | '_' | '-' | '$')
    })
    .parse(i)?;
    let (urn, local) = if token.len() > 4 && token[..4].eq_ignore_ascii_case("urn:") {
        match token.rfind(':') {
            Some(pos) => (Some(token[..pos].to_string()), &token[pos + 1..]),
            None => (None, token),
        }
    } else {
        (None, token)
    };
    let fail = || nom::Err::Error(nom::error::Error::new(i, nom::error::ErrorKind::Alpha));
    let (after, attr) = attr_name(local).map_err(|_| fail())?;
    let sub = if after.is_empty() {
        None
    } else {
        let (after, sub) = preceded(char('.'), attr_name)
            .parse(after)
            .map_err(|_: nom::Err<nom::error::Error<&str>>| fail())?;
        if !after.is_empty() {
            return Err(fail());
        }
        Some(sub.to_string())
    };
    Ok((
        rest,
        AttrPath {
            urn,
            attr: attr.to_string(),
            sub,
        },
    ))
}

/// Attributes compared case-exactly (RFC 7643: ids, `externalId`, references, versions).
pub fn case_exact(attr: &str, sub: Option<&str>) -> bool {
    let a = attr.to_ascii_lowercase();
    match (a.as_str(), sub.map(|s| s.to_ascii_lowercase())) {
        ("id" | "externalid" | "password", None) => true,
        ("meta", Some(s)) => s == "version" || s == "location",
        // Without a sub-attribute, a multi-valued reference compares its `value`: an id.
        ("members" | "groups", None) => true,
        ("members" | "groups", Some(s)) => s == "value" || s == "$ref",
        (_, Some(s)) if s == "$ref" => true,
        _ => false,
    }
}

/// Looks up a key of a JSON object case-insensitively (attribute names are
/// case-insensitive in SCIM).
pub fn get_ci<'v>(obj: &'v Value, key: &str) -> Option<&'v Value> {
    let map = obj.as_object()?;
    map.get(key).or_else(|| {
        map.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v)
    })
}

/// The object a path addresses: the resource itself, or an extension object for a URN
/// prefix other than the resource's core schema.
fn scope<'v>(resource: &'v Value, path: &AttrPath) -> Option<&'v Value> {
    match &path.urn {
        Some(urn) if !urn.to_ascii_lowercase().contains(":core:") => get_ci(resource, urn),
        _ => Some(resource),
    }
}

/// Does `resource` match `filter`? `resource` is the rendered JSON (with `id`, `meta`).
pub fn matches(filter: &Filter, resource: &Value) -> bool {
    match filter {
        Filter::And(a, b) => matches(a, resource) && matches(b, resource),
        Filter::Or(a, b) => matches(a, resource) || matches(b, resource),
        Filter::Not(f) => !matches(f, resource),
        Filter::Present(path) => values_at(resource, path).iter().any(|v| {
            !v.is_null() && v.as_str() != Some("") && v.as_array().is_none_or(|a| !a.is_empty())
        }),
        Filter::Compare(path, op, expected) => {
            let exact = case_exact(&path.attr, path.sub.as_deref());
            values_at(resource, path)
                .iter()
                .any(|v| compare(v, *op, expected, exact))
        }
        Filter::ValuePath(path, inner) => {
            let Some(target) = scope(resource, path).and_then(|s| get_ci(s, &path.attr)) else {
                return false;
            };
            match target {
                Value::Array(items) => items
                    .iter()
                    .any(|item| matches_element(inner, item, &path.attr)),
                other => matches_element(inner, other, &path.attr),
            }
        }
    }
}

/// Evaluates a value filter against one element of a multi-valued attribute; its paths
/// name the element's sub-attributes.
pub fn matches_element(filter: &Filter, element: &Value, parent: &str) -> bool {
    match filter {
        Filter::And(a, b) => {
            matches_element(a, element, parent) && matches_element(b, element, parent)
        }
        Filter::Or(a, b) => {
            matches_element(a, element, parent) || matches_element(b, element, parent)
        }
        Filter::Not(f) => !matches_element(f, element, parent),
        Filter::Present(p) => get_ci(element, &p.attr).is_some_and(|v| !v.is_null()),
        Filter::Compare(p, op, expected) => {
            let exact = case_exact(parent, Some(&p.attr));
            match get_ci(element, &p.attr) {
                Some(v) => compare(v, *op, expected, exact),
                // A simple multi-valued element (`["a","b"]`) is its own `value`.
                None if p.attr.eq_ignore_ascii_case("value") && !element.is_object() => {
                    compare(element, *op, expected, exact)
                }
                None => false,
            }
        }
        Filter::ValuePath(..) => false,
    }
}

/// Every value a path reaches (a multi-valued attribute yields each element's).
fn values_at<'v>(resource: &'v Value, path: &AttrPath) -> Vec<&'v Value> {
    let Some(top) = scope(resource, path).and_then(|s| get_ci(s, &path.attr)) else {
        return Vec::new();
    };
    let items: Vec<&Value> = match top {
        Value::Array(a) => a.iter().collect(),
        v => vec![v],
    };
    match &path.sub {
        // A complex element compares by its `value`; one without a value has nothing to compare.
        None => items
            .into_iter()
            .filter_map(|v| {
                if v.is_object() {
                    get_ci(v, "value")
                } else {
                    Some(v)
                }
            })
            .collect(),
        Some(sub) => items.into_iter().filter_map(|v| get_ci(v, sub)).collect(),
    }
}

/// A value to sort resources by (RFC 7644 §3.4.2.3): strings case-insensitively,
/// multi-valued attributes by their primary (else first) value.
#[derive(Debug, Clone, PartialEq)]
pub enum SortKey {
    Bool(bool),
    Number(f64),
    Text(String),
}

impl SortKey {
    pub fn compare(&self, other: &Self) -> std::cmp::Ordering {
        use SortKey::*;
        match (self, other) {
            (Bool(a), Bool(b)) => a.cmp(b),
            (Number(a), Number(b)) => a.total_cmp(b),
            (Text(a), Text(b)) => a.cmp(b),
            (a, b) => a.rank().cmp(&b.rank()),
        }
    }
    fn rank(&self) -> u8 {
        match self {
            SortKey::Bool(_) => 0,
            SortKey::Number(_) => 1,
            SortKey::Text(_) => 2,
        }
    }
}

/// The sort key of `resource` for a `sortBy` attribute path, if it has a value.
pub fn sort_key(resource: &Value, sort_by: &str) -> Option<SortKey> {
    let path = parse_patch_path(sort_by).ok()?.path;
    let top = scope(resource, &path).and_then(|s| get_ci(s, &path.attr))?;
    let item = match top {
        Value::Array(items) => items
            .iter()
            .find(|i| get_ci(i, "primary").and_then(Value::as_bool) == Some(true))
            .or_else(|| items.first())?,
        v => v,
    };
    let v = match &path.sub {
        Some(sub) => get_ci(item, sub)?,
        None if item.is_object() => get_ci(item, "value")?,
        None => item,
    };
    match v {
        Value::Bool(b) => Some(SortKey::Bool(*b)),
        Value::Number(n) => n.as_f64().map(SortKey::Number),
        Value::String(s) => Some(SortKey::Text(s.to_lowercase())),
        _ => None,
    }
}

fn compare(actual: &Value, op: CompareOp, expected: &Value, case_exact: bool) -> bool {
    use CompareOp::*;
    match (actual, expected) {
        (Value::String(a), Value::String(e)) => {
            // Date-times compare as instants when both sides parse.
            if let (Ok(a), Ok(e)) = (
                chrono::DateTime::parse_from_rfc3339(a),
                chrono::DateTime::parse_from_rfc3339(e),
            ) {
                return ordered(a.cmp(&e), op);
            }
            if case_exact {
                return compare_text(a, e, op);
            }
            // Lower-cased into this thread's two buffers: no allocation per comparison,
            // however many terms a filter has or however long the values are.
            FOLDED.with(|cell| {
                let Ok(mut bufs) = cell.try_borrow_mut() else {
                    return compare_text(&a.to_lowercase(), &e.to_lowercase(), op);
                };
                let (fa, fe) = &mut *bufs;
                fold_into(fa, a);
                fold_into(fe, e);
                compare_text(fa, fe, op)
            })
        }
        (Value::Bool(a), Value::Bool(e)) => match op {
            Eq => a == e,
            Ne => a != e,
            _ => false,
        },
        (Value::Number(a), Value::Number(e)) => match (a.as_f64(), e.as_f64()) {
            (Some(a), Some(e)) => a.partial_cmp(&e).is_some_and(|o| ordered(o, op)),
            _ => false,
        },
        (Value::String(a), Value::Bool(e)) => {
            // Entra stores booleans as "True"/"False" strings.
            let a = a.eq_ignore_ascii_case("true");
            match op {
                Eq => a == *e,
                Ne => a != *e,
                _ => false,
            }
        }
        (a, Value::Null) => match op {
            Eq => a.is_null(),
            Ne => !a.is_null(),
            _ => false,
        },
        _ => op == Ne,
    }
}

thread_local! {
    static FOLDED: std::cell::RefCell<(String, String)> =
        const { std::cell::RefCell::new((String::new(), String::new())) };
}

/// `buf` becomes `s` lower-cased as `str::to_lowercase` does (the SQL side stores that
/// form), without allocating when `s` is ASCII.
fn fold_into(buf: &mut String, s: &str) {
    buf.clear();
    if s.is_ascii() {
        buf.extend(s.chars().map(|c| c.to_ascii_lowercase()));
    } else {
        buf.push_str(&s.to_lowercase());
    }
}

fn compare_text(a: &str, e: &str, op: CompareOp) -> bool {
    use CompareOp::*;
    match op {
        Eq => a == e,
        Ne => a != e,
        Co => a.contains(e),
        Sw => a.starts_with(e),
        Ew => a.ends_with(e),
        _ => ordered(a.cmp(e), op),
    }
}

fn ordered(o: std::cmp::Ordering, op: CompareOp) -> bool {
    use std::cmp::Ordering::*;
    use CompareOp::*;
    match op {
        Eq => o == Equal,
        Ne => o != Equal,
        Gt => o == Greater,
        Ge => o != Less,
        Lt => o == Less,
        Le => o != Greater,
        Co | Sw | Ew => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn p(s: &str) -> Filter {
        parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn parses_simple_comparison() {
        assert_eq!(
            p(r#"userName eq "bjensen""#),
            Filter::Compare(
                AttrPath {
                    urn: None,
                    attr: "userName".into(),
                    sub: None
                },
                CompareOp::Eq,
                json!("bjensen")
            )
        );
        assert!(matches!(
            p(r#"USERNAME EQ "x""#),
            Filter::Compare(_, CompareOp::Eq, _)
        ));
    }

    #[test]
    fn precedence_and_binds_tighter_than_or() {
        let f = p(r#"a eq 1 or b eq 2 and c eq 3"#);
        assert!(matches!(f, Filter::Or(_, ref r) if matches!(**r, Filter::And(..))));
    }

    #[test]
    fn urn_prefix_and_sub_attributes() {
        let f = p(
            r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value eq "26""#,
        );
        let Filter::Compare(path, ..) = f else {
            panic!()
        };
        assert_eq!(
            path.urn.as_deref(),
            Some("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User")
        );
        assert_eq!(path.attr, "manager");
        assert_eq!(path.sub.as_deref(), Some("value"));
    }

    #[test]
    fn value_paths_not_and_literals() {
        p(
            r#"emails[type eq "work" and value co "@example.com"] or ims[type eq "xmpp" and value co "@foo.com"]"#,
        );
        p(r#"not (title pr) and userType eq "Employee""#);
        p(
            r#"meta.lastModified gt "2011-05-13T04:42:34Z" and active eq true and x eq null and n ge -1.5e3"#,
        );
        p(r#"userName eq "a\"b\u00e9""#);
        // Entra's sub-attribute comparison after a value filter.
        let entra = p(r#"emails[type eq "work"].value eq "a@x.com""#);
        let user = json!({"emails": [{"type": "work", "value": "A@x.com"}, {"type": "home", "value": "b@x.com"}]});
        assert!(matches(&entra, &user));
        assert!(!matches(
            &p(r#"emails[type eq "home"].value eq "a@x.com""#),
            &user
        ));
    }

    #[test]
    fn rejects_bad_filters_with_position() {
        for bad in [
            "",
            "userName",
            "userName eq",
            r#"userName zz "x""#,
            r#"userName eq "x" and"#,
            r#"(userName eq "x""#,
            r#"userName eq "unterminated"#,
            "userName eq bare",
            r#"emails[type eq "work""#,
            r#"userName eq "x" extra"#,
        ] {
            let e = parse(bad).expect_err(bad);
            assert_eq!(e.status, 400);
            assert_eq!(e.scim_type, Some(super::super::ScimType::InvalidFilter));
        }
        let deep = format!("{}a pr{}", "(".repeat(100), ")".repeat(100));
        assert!(parse(&deep).is_err());
        assert!(parse(&"a".repeat(MAX_FILTER_LEN + 1)).is_err());
    }

    #[test]
    fn evaluates_over_json() {
        let user = json!({
            "id": "abc", "userName": "Ada@Example.com", "active": true,
            "emails": [{"type": "work", "value": "ada@example.com"}],
            "meta": {"lastModified": "2026-01-01T00:00:00Z"}
        });
        assert!(matches(&p(r#"userName eq "ada@example.com""#), &user));
        assert!(!matches(&p(r#"id eq "ABC""#), &user));
        assert!(matches(
            &p(r#"emails[type eq "work" and value ew "example.com"]"#),
            &user
        ));
        assert!(matches(&p(r#"emails.value co "ADA""#), &user));
        assert!(!matches(
            &p(r#"meta.lastModified gt "2025-12-31T23:00:00-02:00""#),
            &user
        ));
        assert!(matches(
            &p(r#"not (active eq false) and title pr or userName sw "ada""#),
            &user
        ));
    }

    #[test]
    fn patch_paths() {
        let pp = parse_patch_path(r#"emails[type eq "work"].value"#).unwrap();
        assert_eq!(pp.path.attr, "emails");
        assert_eq!(pp.sub.as_deref(), Some("value"));
        assert!(pp.filter.is_some());
        assert!(parse_patch_path("name.givenName").unwrap().filter.is_none());
        assert!(parse_patch_path("members[value eq").is_err());
    }
}
