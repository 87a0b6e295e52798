//! Customer setup links (DESIGN.md §8): an operator hands a customer's IT admin a URL that
//! opens, with no other login, a page scoped to one tenant and product (or one
//! organizational unit). The URL carries a random secret; only its digest is stored, and
//! every read and change made through the link is checked against the link's scope here.

use chrono::NaiveDateTime;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::error::{Error, Rejected};
use crate::ids::{OrgUnitId, SetupLinkId};
use crate::scim::resource::timestamp;
use crate::secrets;
use crate::store::directories::DirectoryRow;
use crate::store::setup_links as store;
pub use crate::store::setup_links::SetupLinkRow;
use crate::store::{now, write_tx, AnyConnection, Page};

/// How long a link lives when `expires_in` is not given: 3 days, as Jackson's.
pub const DEFAULT_LIFETIME_SECONDS: i64 = 3 * 24 * 3600;
/// The longest a link may live: a link is a bearer credential, so it must end.
pub const MAX_LIFETIME_SECONDS: i64 = 90 * 24 * 3600;
/// Where a link's page lives (`{external_url}/setup/{secret}`).
pub const PATH_PREFIX: &str = "/setup/";

/// `POST /api/v1/setup_links`: either `tenant` and `product`, or `organizational_unit_id`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewSetupLink {
    pub tenant: Option<String>,
    pub product: Option<String>,
    /// `ou_…`: the page shows the unit's directories and linked profiles.
    pub organizational_unit_id: Option<String>,
    /// Seconds until the link expires (default 3 days, at most 90 days).
    pub expires_in: Option<i64>,
}

/// What a link opens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    Tenant { tenant: String, product: String },
    Unit(String),
}

impl Scope {
    pub fn of(link: &SetupLinkRow) -> Result<Self, Error> {
        match (&link.organizational_unit_id, &link.tenant, &link.product) {
            (Some(unit), _, _) => Ok(Self::Unit(unit.clone())),
            (None, Some(tenant), Some(product)) => Ok(Self::Tenant {
                tenant: tenant.clone(),
                product: product.clone(),
            }),
            _ => Err(Error::Internal(format!(
                "setup link {} has no scope",
                link.id
            ))),
        }
    }
}

fn check_tenancy(name: &str, v: &str) -> Result<(), Error> {
    if v.trim().is_empty() {
        return Err(Rejected::invalid(format!("{name} is required")).into());
    }
    crate::scim::limits::check_indexed(name, v).map_err(Rejected::from)?;
    Ok(())
}

/// Creates a link; returns it with its secret, which only the URL carries (shown once).
pub fn create(
    conn: &mut AnyConnection,
    input: NewSetupLink,
) -> Result<(SetupLinkRow, String), Error> {
    let lifetime = input.expires_in.unwrap_or(DEFAULT_LIFETIME_SECONDS);
    if !(1..=MAX_LIFETIME_SECONDS).contains(&lifetime) {
        return Err(Rejected::invalid(format!(
            "expires_in must be from 1 to {MAX_LIFETIME_SECONDS} seconds"
        ))
        .into());
    }
    let (tenant, product, unit) = match (input.tenant, input.product, input.organizational_unit_id)
    {
        (None, None, Some(unit)) => {
            let unit = OrgUnitId::parse(&unit)
                .ok_or_else(|| Rejected::not_found("organizational unit not found"))?;
            crate::connect::units::get_json(conn, unit.as_str())?;
            (None, None, Some(unit.into_string()))
        }
        (Some(tenant), Some(product), None) => {
            check_tenancy("tenant", &tenant)?;
            check_tenancy("product", &product)?;
            (Some(tenant), Some(product), None)
        }
        _ => {
            return Err(Rejected::invalid(
                "give either tenant and product, or organizational_unit_id",
            )
            .into())
        }
    };
    let secret = secrets::random_token(32)?;
    let t = now();
    let row = SetupLinkRow {
        id: SetupLinkId::generate().into_string(),
        digest: secrets::digest(&secret),
        tenant,
        product,
        organizational_unit_id: unit,
        expires_at: crate::store::later(t, std::time::Duration::from_secs(lifetime as u64)),
        revoked_at: None,
        created_at: t,
    };
    write_tx(conn, |c| store::insert(c, &row))?;
    Ok((row, secret))
}

/// The URL of a link's page.
pub fn url(external_url: &str, secret: &str) -> String {
    format!(
        "{}{PATH_PREFIX}{secret}",
        external_url.trim_end_matches('/')
    )
}

/// The admin API's shape of a link; `url` only at creation (the secret is not kept).
pub fn to_json(link: &SetupLinkRow, url: Option<&str>) -> Value {
    let state = if link.revoked_at.is_some() {
        "revoked"
    } else if link.expires_at <= now() {
        "expired"
    } else {
        "active"
    };
    let mut out = json!({
        "id": link.id,
        "tenant": link.tenant,
        "product": link.product,
        "organizational_unit_id": link.organizational_unit_id,
        "state": state,
        "expires_at": timestamp(link.expires_at),
        "revoked_at": link.revoked_at.map(timestamp),
        "created_at": timestamp(link.created_at),
    });
    if let Some(url) = url {
        out["url"] = json!(url);
    }
    out
}

pub fn list(conn: &mut AnyConnection, page: Page) -> Result<Vec<SetupLinkRow>, Error> {
    store::list(conn, page)
}

/// Revokes a link: its page answers 404 from now on. Revoking a revoked link is a no-op.
pub fn revoke(conn: &mut AnyConnection, id: &str) -> Result<SetupLinkRow, Error> {
    let missing = || Rejected::not_found("setup link not found");
    let id = SetupLinkId::parse(id).ok_or_else(missing)?;
    write_tx(conn, |c| {
        store::get(c, id.as_str())?.ok_or_else(missing)?;
        store::revoke(c, id.as_str(), now())?;
        store::get(c, id.as_str())?.ok_or_else(|| missing().into())
    })
}

/// The live link a URL's secret opens. Unknown, expired and revoked links answer the
/// same 404.
pub fn open(conn: &mut AnyConnection, secret: &str) -> Result<SetupLinkRow, Error> {
    store::by_digest(conn, &secrets::digest(secret))?
        .filter(|l| l.is_live(now()))
        .ok_or_else(|| {
            Rejected::not_found("This setup link has expired or was revoked. Ask for a new link.")
                .into()
        })
}

/// The CSRF token of a link's forms: derived from the link's secret (so bound to that
/// link and nothing stored), distinct from the digest that finds the link.
pub fn csrf_token(secret: &str) -> String {
    secrets::digest(&format!("scimgate setup-link csrf {secret}"))
}

/// Refuses a form whose CSRF token is missing or is not the link's (403).
pub fn check_csrf(secret: &str, presented: Option<&str>) -> Result<(), Error> {
    match presented {
        Some(p) if secrets::equal(p, &csrf_token(secret)) => Ok(()),
        _ => Err(Rejected::new(
            403,
            "This form is not valid for this setup link. Reload the page and try again.",
        )
        .into()),
    }
}

/// One directory as the page shows it.
#[derive(Debug, Clone)]
pub struct DirectoryView {
    pub directory: DirectoryRow,
    /// Users, capped as the dashboard counts them ([`super::overview::COUNT_CAP`]).
    pub users: String,
    pub groups: String,
    pub last_change: Option<NaiveDateTime>,
}

/// Everything a link's page shows.
#[derive(Debug, Clone)]
pub struct SetupView {
    pub link: SetupLinkRow,
    pub scope: Scope,
    pub directories: Vec<DirectoryView>,
    /// A unit's accounts in the admin API's item shape, the first [`PROFILES_SHOWN`]
    /// (`None` for a tenant's link).
    pub accounts: Option<Vec<Value>>,
    /// How many accounts the unit (or the email searched for) has in all.
    pub accounts_total: usize,
}

/// How many profiles the page lists; the rest are found by email.
pub const PROFILES_SHOWN: usize = 200;

/// The accounts the unit's calendar accounts serve (those of `email` only, when given):
/// the first [`PROFILES_SHOWN`] in the admin API's shape, and how many there are. Only
/// the shown ones cost a query each (their conferencing profiles).
fn unit_accounts(
    conn: &mut AnyConnection,
    unit: &str,
    email: Option<&str>,
) -> Result<(Vec<Value>, usize), Error> {
    let members: Vec<String> = crate::store::organizational_units::members(conn, unit)?
        .into_iter()
        .filter(|s| s.capability == crate::connect::units::CALENDARS)
        .map(|s| s.id)
        .collect();
    let rows = crate::store::accounts::list_of_service_accounts(conn, &members, email)?;
    let shown = rows
        .iter()
        .take(PROFILES_SHOWN)
        .map(|a| crate::connect::accounts::to_json(conn, a))
        .collect::<Result<Vec<_>, _>>()?;
    Ok((shown, rows.len()))
}

fn directories_in(conn: &mut AnyConnection, scope: &Scope) -> Result<Vec<DirectoryRow>, Error> {
    match scope {
        Scope::Tenant { tenant, product } => store::directories_of_tenant(conn, tenant, product),
        Scope::Unit(unit) => store::directories_of_unit(conn, unit),
    }
}

/// The page's content for a live link; `email` narrows a unit's profiles to one person.
pub fn view(
    conn: &mut AnyConnection,
    link: SetupLinkRow,
    email: Option<&str>,
) -> Result<SetupView, Error> {
    let scope = Scope::of(&link)?;
    let mut directories = Vec::new();
    for directory in directories_in(conn, &scope)? {
        let d = super::overview::summarize(conn, directory)?;
        let cap = super::overview::COUNT_CAP;
        directories.push(DirectoryView {
            users: super::overview::shown(d.users, cap),
            groups: super::overview::shown(d.groups, cap),
            last_change: d.last_event,
            directory: d.row,
        });
    }
    let (accounts, accounts_total) = match &scope {
        Scope::Unit(unit) => {
            let (shown, total) = unit_accounts(conn, unit, email)?;
            (Some(shown), total)
        }
        Scope::Tenant { .. } => (None, 0),
    };
    Ok(SetupView {
        link,
        scope,
        directories,
        accounts,
        accounts_total,
    })
}

/// A directory of the link's scope by id; any other (another tenant's, another unit's,
/// unknown) is the same 404.
fn directory_in(
    conn: &mut AnyConnection,
    link: &SetupLinkRow,
    id: &str,
) -> Result<DirectoryRow, Error> {
    let missing = || Rejected::not_found("No such directory here.");
    if !super::is_resource_id(id) {
        return Err(missing().into());
    }
    let scope = Scope::of(link)?;
    directories_in(conn, &scope)?
        .into_iter()
        .find(|d| d.id == id)
        .ok_or_else(|| missing().into())
}

/// Rotates the SCIM secret of a directory of the link's scope; returns the directory and
/// the new secret (shown once, on the page that answers the form).
pub fn rotate_secret(
    conn: &mut AnyConnection,
    link: &SetupLinkRow,
    directory_id: &str,
    grace_seconds: i64,
) -> Result<(DirectoryRow, String), Error> {
    let dir = directory_in(conn, link, directory_id)?;
    super::directories::rotate_secret(conn, &dir.id, grace_seconds)
}

/// The unit of a unit's link; a tenant's link has no accounts (404).
fn unit_of(link: &SetupLinkRow) -> Result<String, Error> {
    match Scope::of(link)? {
        Scope::Unit(unit) => Ok(unit),
        Scope::Tenant { .. } => Err(Rejected::not_found("No such account here.").into()),
    }
}

/// Revokes a profile (account) the link's unit serves.
pub fn revoke_account(
    conn: &mut AnyConnection,
    link: &SetupLinkRow,
    account_id: &str,
) -> Result<(), Error> {
    let unit = unit_of(link)?;
    if !crate::connect::units::revoke_account(conn, &unit, account_id)? {
        return Err(Rejected::not_found("No such account here.").into());
    }
    Ok(())
}

/// Relinks a profile (account) the link's unit serves: its email is provisioned again
/// through the unit's calendar accounts.
pub fn relink_account(
    conn: &mut AnyConnection,
    link: &SetupLinkRow,
    account_id: &str,
) -> Result<(), Error> {
    let unit = unit_of(link)?;
    // `units::relink` accepts any account of the unit's application; a link reaches
    // only those its unit serves.
    if crate::connect::units::served_account(conn, &unit, account_id)?.is_none()
        || !crate::connect::units::relink(conn, &unit, account_id)?
    {
        return Err(Rejected::not_found("No such account here.").into());
    }
    Ok(())
}
