//! SCIM filters as SQL: the parts of a filter that indexed columns answer exactly become a
//! WHERE clause; what is left (the residual) is evaluated in Rust over the candidates.
//!
//! "Exactly" means with the in-memory evaluator's semantics (`scim::filter::matches`), on
//! both backends: string comparisons run on lower-cased columns for case-insensitive
//! attributes, ordering comparisons only on timestamps (text ordering depends on the
//! PostgreSQL collation), and comparisons on nullable columns are guarded so `NOT` never
//! meets SQL's NULL.

use std::marker::PhantomData;

use diesel::dsl::not;
use diesel::expression::{
    is_aggregate, AppearsOnTable, BoxableExpression, Expression, SelectableExpression,
    ValidGrouping,
};
use diesel::prelude::*;
use diesel::query_builder::{AstPass, QueryFragment, QueryId};
use diesel::sql_types::{Bool, Text};
use serde_json::Value;

use super::schema::{memberships, scim_groups, user_emails, users};
use super::MultiBackend;
use crate::scim::filter::{AttrPath, CompareOp, Filter};

pub type UserExpr = Box<dyn BoxableExpression<users::table, MultiBackend, SqlType = Bool>>;
pub type GroupExpr = Box<dyn BoxableExpression<scim_groups::table, MultiBackend, SqlType = Bool>>;
type EmailExpr = Box<dyn BoxableExpression<user_emails::table, MultiBackend, SqlType = Bool>>;

/// A filter split into a SQL part and a residual, ANDed together.
pub struct Split<E> {
    pub sql: Option<E>,
    pub residual: Option<Filter>,
}

/// Most subqueries (conditions on `emails` of users, `members` of groups) in the SQL of
/// one filter. Each is a join for PostgreSQL's planner, whose work grows steeply with
/// their number (an AND chain of 128 `emails co` took 12 s); conjuncts beyond this are
/// evaluated in Rust over the candidates the indexed part selects.
pub const MAX_SQL_SUBQUERIES: usize = 4;

/// How a resource type's filters become SQL.
struct Translator<'a, E> {
    exact: &'a dyn Fn(&Filter) -> Option<E>,
    and: &'a dyn Fn(E, E) -> E,
    /// The multi-valued attribute whose conditions are subqueries.
    subquery_attr: &'a str,
    /// Subqueries still allowed.
    budget: std::cell::Cell<usize>,
}

/// Conditions on `attr` in a filter: each becomes a subquery.
fn subqueries(f: &Filter, attr: &str) -> usize {
    match f {
        Filter::Compare(p, ..) | Filter::Present(p) | Filter::ValuePath(p, _) => {
            usize::from(p.attr.eq_ignore_ascii_case(attr))
        }
        Filter::And(a, b) | Filter::Or(a, b) => subqueries(a, attr) + subqueries(b, attr),
        Filter::Not(f) => subqueries(f, attr),
    }
}

/// Splits the top-level conjunction: conjuncts that translate (within the subquery
/// budget) go to SQL.
fn split<E>(f: &Filter, t: &Translator<'_, E>) -> Split<E> {
    let (exact, and) = (t.exact, t.and);
    match f {
        Filter::And(a, b) => {
            let (sa, sb) = (split(a, t), split(b, t));
            Split {
                sql: match (sa.sql, sb.sql) {
                    (Some(x), Some(y)) => Some(and(x, y)),
                    (x, y) => x.or(y),
                },
                residual: match (sa.residual, sb.residual) {
                    (Some(x), Some(y)) => Some(Filter::And(Box::new(x), Box::new(y))),
                    (x, y) => x.or(y),
                },
            }
        }
        other => {
            let cost = subqueries(other, t.subquery_attr);
            let translated = (cost <= t.budget.get()).then(|| exact(other)).flatten();
            match translated {
                Some(e) => {
                    t.budget.set(t.budget.get() - cost);
                    Split {
                        sql: Some(e),
                        residual: None,
                    }
                }
                None => Split {
                    sql: None,
                    residual: Some(other.clone()),
                },
            }
        }
    }
}

pub fn split_user_filter(f: &Filter, directory_id: &str) -> Split<UserExpr> {
    let dir = directory_id.to_string();
    split(
        f,
        &Translator {
            exact: &|f| user_exact(f, &dir),
            and: &|a, b| Box::new(a.and(b)),
            subquery_attr: "emails",
            budget: MAX_SQL_SUBQUERIES.into(),
        },
    )
}

pub fn split_group_filter(f: &Filter, directory_id: &str) -> Split<GroupExpr> {
    let dir = directory_id.to_string();
    split(
        f,
        &Translator {
            exact: &|f| group_exact(f, &dir),
            and: &|a, b| Box::new(a.and(b)),
            subquery_attr: "members",
            budget: MAX_SQL_SUBQUERIES.into(),
        },
    )
}

fn is_core(path: &AttrPath) -> bool {
    path.urn
        .as_deref()
        .is_none_or(|u| u.to_ascii_lowercase().contains(":core:"))
}

/// A string operand usable in SQL: a JSON string that is not a date-time (the evaluator
/// compares date-time strings as instants).
fn plain_string(v: &Value) -> Option<&str> {
    let s = v.as_str()?;
    chrono::DateTime::parse_from_rfc3339(s)
        .is_err()
        .then_some(s)
}

fn instant(v: &Value) -> Option<chrono::NaiveDateTime> {
    chrono::DateTime::parse_from_rfc3339(v.as_str()?)
        .ok()
        .map(|d| d.naive_utc())
}

/// `%`, `_` and the escape character itself are literal in SCIM's `co`/`sw`/`ew`.
fn like_pattern(op: CompareOp, value: &str) -> Option<String> {
    let escaped = value
        .replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_");
    match op {
        CompareOp::Co => Some(format!("%{escaped}%")),
        CompareOp::Sw => Some(format!("{escaped}%")),
        CompareOp::Ew => Some(format!("%{escaped}")),
        _ => None,
    }
}

/// A string comparison on a NOT NULL text column.
macro_rules! text_compare {
    ($col:expr, $op:expr, $v:expr) => {{
        let v: String = $v;
        let e: Option<Box<dyn BoxableExpression<_, MultiBackend, SqlType = Bool>>> = match $op {
            CompareOp::Eq => Some(Box::new($col.eq(v))),
            CompareOp::Ne => Some(Box::new($col.ne(v))),
            op => like_pattern(op, &v).map(|p| {
                Box::new($col.like(p).escape('\\'))
                    as Box<dyn BoxableExpression<_, MultiBackend, SqlType = Bool>>
            }),
        };
        e
    }};
}

/// A string comparison on a nullable text column: false, not NULL, when the column is NULL.
macro_rules! nullable_text_compare {
    ($col:expr, $op:expr, $v:expr) => {{
        let v: String = $v;
        let e: Option<Box<dyn BoxableExpression<_, MultiBackend, SqlType = Bool>>> = match $op {
            CompareOp::Eq => Some(Box::new(
                $col.is_not_null().and($col.assume_not_null().eq(v)),
            )),
            CompareOp::Ne => Some(Box::new(
                $col.is_not_null().and($col.assume_not_null().ne(v)),
            )),
            op => like_pattern(op, &v).map(|p| {
                Box::new(
                    $col.is_not_null()
                        .and($col.assume_not_null().like(p).escape('\\')),
                ) as Box<dyn BoxableExpression<_, MultiBackend, SqlType = Bool>>
            }),
        };
        e
    }};
}

macro_rules! time_compare {
    ($col:expr, $op:expr, $t:expr) => {{
        let t = $t;
        let e: Box<dyn BoxableExpression<_, MultiBackend, SqlType = Bool>> = match $op {
            CompareOp::Eq => Box::new($col.eq(t)),
            CompareOp::Ne => Box::new($col.ne(t)),
            CompareOp::Gt => Box::new($col.gt(t)),
            CompareOp::Ge => Box::new($col.ge(t)),
            CompareOp::Lt => Box::new($col.lt(t)),
            CompareOp::Le => Box::new($col.le(t)),
            CompareOp::Co | CompareOp::Sw | CompareOp::Ew => return None,
        };
        Some(e)
    }};
}

fn user_exact(f: &Filter, dir: &str) -> Option<UserExpr> {
    match f {
        Filter::And(a, b) => Some(Box::new(user_exact(a, dir)?.and(user_exact(b, dir)?))),
        Filter::Or(a, b) => Some(Box::new(user_exact(a, dir)?.or(user_exact(b, dir)?))),
        Filter::Not(a) => Some(Box::new(not(user_exact(a, dir)?))),
        Filter::Present(p) if is_core(p) => {
            // Always present in a rendered user.
            if p.is("id", None)
                || p.is("userName", None)
                || p.is("meta", Some("created"))
                || p.is("meta", Some("lastModified"))
            {
                Some(Box::new(users::id.is_not_null()))
            } else if p.is("externalId", None) {
                Some(Box::new(
                    users::external_id
                        .is_not_null()
                        .and(users::external_id.assume_not_null().ne("")),
                ))
            } else {
                None
            }
        }
        Filter::Compare(p, op, v) if is_core(p) => {
            if p.is("id", None) {
                text_compare!(users::id, *op, plain_string(v)?.to_string())
            } else if p.is("userName", None) {
                text_compare!(users::user_name_lower, *op, plain_string(v)?.to_lowercase())
            } else if p.is("externalId", None) {
                nullable_text_compare!(users::external_id, *op, plain_string(v)?.to_string())
            } else if p.is("meta", Some("created")) {
                time_compare!(users::created_at, *op, instant(v)?)
            } else if p.is("meta", Some("lastModified")) {
                time_compare!(users::updated_at, *op, instant(v)?)
            } else if p.is("emails", None) || p.is("emails", Some("value")) {
                let inner = email_value_compare(*op, v)?;
                Some(Box::new(emails_of(dir, Some(inner))))
            } else {
                None
            }
        }
        Filter::ValuePath(p, inner) if is_core(p) && p.is("emails", None) => {
            let inner = email_exact(inner)?;
            Some(Box::new(emails_of(dir, Some(inner))))
        }
        _ => None,
    }
}

/// Users of a directory with an email matching `cond` (any email when `None`).
fn emails_of(dir: &str, cond: Option<EmailExpr>) -> InSubquery<users::table> {
    InSubquery {
        head: r#""users"."id" IN (SELECT "user_emails"."user_id" FROM "user_emails" WHERE "user_emails"."directory_id" = "#,
        directory_id: dir.to_string(),
        cond: cond.map(|c| c as Box<dyn QueryFragment<MultiBackend> + Send>),
        table: PhantomData,
    }
}

fn email_value_compare(op: CompareOp, v: &Value) -> Option<EmailExpr> {
    nullable_text_compare!(
        user_emails::value_lower,
        op,
        plain_string(v)?.to_lowercase()
    )
}

/// A filter inside `emails[...]`, over one email's `value`, `type` and `primary`.
fn email_exact(f: &Filter) -> Option<EmailExpr> {
    match f {
        Filter::And(a, b) => Some(Box::new(email_exact(a)?.and(email_exact(b)?))),
        Filter::Or(a, b) => Some(Box::new(email_exact(a)?.or(email_exact(b)?))),
        Filter::Not(a) => Some(Box::new(not(email_exact(a)?))),
        Filter::Present(p) if p.sub.is_none() && p.is("type", None) => Some(Box::new(
            user_emails::email_type
                .is_not_null()
                .and(user_emails::email_type.assume_not_null().ne("")),
        )),
        Filter::Compare(p, op, v) if p.sub.is_none() => {
            if p.is("value", None) {
                email_value_compare(*op, v)
            } else if p.is("type", None) {
                nullable_text_compare!(
                    user_emails::email_type,
                    *op,
                    plain_string(v)?.to_lowercase()
                )
            } else if p.is("primary", None) {
                let b = v.as_bool()?;
                let guard = user_emails::is_primary.is_not_null();
                let col = user_emails::is_primary.assume_not_null();
                match op {
                    CompareOp::Eq => Some(Box::new(guard.and(col.eq(b)))),
                    CompareOp::Ne => Some(Box::new(guard.and(col.ne(b)))),
                    _ => None,
                }
            } else {
                None
            }
        }
        _ => None,
    }
}

fn group_exact(f: &Filter, dir: &str) -> Option<GroupExpr> {
    match f {
        Filter::And(a, b) => Some(Box::new(group_exact(a, dir)?.and(group_exact(b, dir)?))),
        Filter::Or(a, b) => Some(Box::new(group_exact(a, dir)?.or(group_exact(b, dir)?))),
        Filter::Not(a) => Some(Box::new(not(group_exact(a, dir)?))),
        Filter::Present(p) if is_core(p) => {
            if p.is("id", None)
                || p.is("displayName", None)
                || p.is("meta", Some("created"))
                || p.is("meta", Some("lastModified"))
            {
                Some(Box::new(scim_groups::id.is_not_null()))
            } else if p.is("externalId", None) {
                Some(Box::new(
                    scim_groups::external_id
                        .is_not_null()
                        .and(scim_groups::external_id.assume_not_null().ne("")),
                ))
            } else if p.is("members", None) || p.is("members", Some("value")) {
                Some(Box::new(members_of(dir, None)))
            } else {
                None
            }
        }
        Filter::Compare(p, op, v) if is_core(p) => {
            if p.is("id", None) {
                text_compare!(scim_groups::id, *op, plain_string(v)?.to_string())
            } else if p.is("displayName", None) {
                text_compare!(
                    scim_groups::display_name_lower,
                    *op,
                    plain_string(v)?.to_lowercase()
                )
            } else if p.is("externalId", None) {
                nullable_text_compare!(scim_groups::external_id, *op, plain_string(v)?.to_string())
            } else if p.is("meta", Some("created")) {
                time_compare!(scim_groups::created_at, *op, instant(v)?)
            } else if p.is("meta", Some("lastModified")) {
                time_compare!(scim_groups::updated_at, *op, instant(v)?)
            } else if p.is("members", None) || p.is("members", Some("value")) {
                let id = plain_string(v)?.to_string();
                let cond: Box<
                    dyn BoxableExpression<memberships::table, MultiBackend, SqlType = Bool>,
                > = match op {
                    CompareOp::Eq => Box::new(memberships::user_id.eq(id)),
                    CompareOp::Ne => Box::new(memberships::user_id.ne(id)),
                    _ => return None,
                };
                Some(Box::new(members_of(dir, Some(cond))))
            } else {
                None
            }
        }
        Filter::ValuePath(p, inner) if is_core(p) && p.is("members", None) => {
            match inner.as_ref() {
                Filter::Compare(q, CompareOp::Eq, v) if q.sub.is_none() && q.is("value", None) => {
                    let id = plain_string(v)?.to_string();
                    Some(Box::new(members_of(
                        dir,
                        Some(Box::new(memberships::user_id.eq(id))),
                    )))
                }
                _ => None,
            }
        }
        _ => None,
    }
}

/// Groups of a directory with a membership matching `cond` (any when `None`).
fn members_of(
    dir: &str,
    cond: Option<Box<dyn BoxableExpression<memberships::table, MultiBackend, SqlType = Bool>>>,
) -> InSubquery<scim_groups::table> {
    InSubquery {
        head: r#""scim_groups"."id" IN (SELECT "memberships"."group_id" FROM "memberships" WHERE "memberships"."directory_id" = "#,
        directory_id: dir.to_string(),
        cond: cond.map(|c| c as Box<dyn QueryFragment<MultiBackend> + Send>),
        table: PhantomData,
    }
}

/// `outer.id IN (SELECT … WHERE directory_id = ? [AND cond])`, written by hand: diesel's
/// `eq_any` over a boxed subselect does not compile for the multi-backend connection.
pub struct InSubquery<T> {
    head: &'static str,
    directory_id: String,
    cond: Option<Box<dyn QueryFragment<MultiBackend> + Send>>,
    table: PhantomData<T>,
}

impl<T> Expression for InSubquery<T> {
    type SqlType = Bool;
}

impl<T> AppearsOnTable<T> for InSubquery<T> {}
impl<T> SelectableExpression<T> for InSubquery<T> {}

impl<T> ValidGrouping<()> for InSubquery<T> {
    type IsAggregate = is_aggregate::Never;
}

impl<T> QueryId for InSubquery<T> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl<T> QueryFragment<MultiBackend> for InSubquery<T> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, MultiBackend>) -> QueryResult<()> {
        out.push_sql(self.head);
        out.push_bind_param::<Text, String>(&self.directory_id)?;
        if let Some(cond) = &self.cond {
            out.push_sql(" AND (");
            cond.walk_ast(out.reborrow())?;
            out.push_sql(")");
        }
        out.push_sql(")");
        Ok(())
    }
}

/// An ORDER BY over a whitelisted column, with NULLs last and a stable tiebreak.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Order {
    /// `None`: creation order.
    pub column: Option<&'static str>,
    pub descending: bool,
}

impl Order {
    /// The clause for `backend`. Text sorts bytewise on both backends (PostgreSQL's
    /// default collation would order differently from SQLite's).
    pub fn sql(&self, backend: super::Backend) -> String {
        let dir = if self.descending { "DESC" } else { "ASC" };
        match self.column {
            // Ids are UUIDv7 (time-ordered): they break ties within a millisecond in
            // creation order.
            None => format!("created_at {dir}, id {dir}"),
            Some(c) => {
                let collate = match backend {
                    super::Backend::Postgres if !c.ends_with("_at") => " COLLATE \"C\"",
                    _ => "",
                };
                format!("{c} IS NULL ASC, {c}{collate} {dir}, created_at ASC, id ASC")
            }
        }
    }
}

/// The column a user `sortBy` maps to, if one does (others are sorted in memory).
pub fn user_sort_column(attr: &str) -> Option<&'static str> {
    Some(match strip_core_urn(attr).to_ascii_lowercase().as_str() {
        "id" => "id",
        "username" => "user_name_lower",
        "externalid" => "external_id",
        "emails" | "emails.value" => "email_lower",
        "meta.created" => "created_at",
        "meta.lastmodified" => "updated_at",
        _ => return None,
    })
}

/// The column a group `sortBy` maps to, if one does.
pub fn group_sort_column(attr: &str) -> Option<&'static str> {
    Some(match strip_core_urn(attr).to_ascii_lowercase().as_str() {
        "id" => "id",
        "displayname" => "display_name_lower",
        "externalid" => "external_id",
        "meta.created" => "created_at",
        "meta.lastmodified" => "updated_at",
        _ => return None,
    })
}

fn strip_core_urn(attr: &str) -> &str {
    for urn in [crate::scim::USER_SCHEMA, crate::scim::GROUP_SCHEMA] {
        if let (Some(head), Some(rest)) = (attr.get(..urn.len()), attr.get(urn.len()..)) {
            if head.eq_ignore_ascii_case(urn) && rest.starts_with(':') {
                return &rest[1..];
            }
        }
    }
    attr
}
