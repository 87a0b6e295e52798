//! What the fake providers know: users, delegations, tenants, consents, the conferencing
//! providers' accounts and users, issued codes and tokens, and the faults and latency a
//! test asked for. One std mutex: every operation is short
//! and none awaits while holding it.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use crate::error::{Error, Rejected};

/// The fakes' state; tests change it directly, the CLI walkthrough through `/_control`.
#[derive(Debug, Default)]
pub struct FakeState {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
pub(super) struct Inner {
    pub google_domains: BTreeSet<String>,
    /// By lower-case primary email.
    pub google_users: BTreeMap<String, GoogleUser>,
    /// Domain → scopes its admin delegated to the fake-issued service account.
    pub delegations: BTreeMap<String, BTreeSet<String>>,
    pub google_tokens: HashMap<String, GoogleToken>,
    /// By tenant id.
    pub tenants: BTreeMap<String, Tenant>,
    /// By lower-case user principal name.
    pub microsoft_users: BTreeMap<String, MicrosoftUser>,
    pub microsoft_tokens: HashMap<String, MicrosoftToken>,
    pub zoom: Realm,
    pub webex: Realm,
    pub indeed: Realm,
    /// Authorization codes of the conferencing fakes, single use.
    pub codes: HashMap<String, IssuedCode>,
    /// Their access tokens.
    pub conferencing_tokens: HashMap<String, ConferencingToken>,
    /// Their refresh tokens (a rotated one is removed when used).
    pub refresh_tokens: HashMap<String, ConferencingToken>,
    pub faults: HashMap<String, Fault>,
    pub requests: HashMap<String, usize>,
    pub latency: Duration,
}

#[derive(Debug, Clone)]
pub(super) struct GoogleUser {
    pub id: String,
    pub email: String,
    pub is_admin: bool,
    pub given_name: String,
    pub family_name: String,
}

#[derive(Debug, Clone)]
pub(super) struct GoogleToken {
    pub subject: String,
    pub scopes: BTreeSet<String>,
    pub expires: Instant,
}

#[derive(Debug, Clone)]
pub(super) struct Tenant {
    pub display_name: String,
    pub domains: Vec<String>,
    pub consented: bool,
}

#[derive(Debug, Clone)]
pub(super) struct MicrosoftUser {
    pub id: String,
    pub tenant: String,
    pub upn: String,
    pub mailbox: bool,
    pub given_name: String,
    pub surname: String,
}

#[derive(Debug, Clone)]
pub(super) struct MicrosoftToken {
    pub tenant: String,
    pub expires: Instant,
}

/// The conferencing fakes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Conferencing {
    Zoom,
    Webex,
    Indeed,
}

/// One conferencing provider's accounts (Zoom accounts, Webex organizations, Indeed
/// employers) and users.
#[derive(Debug, Default)]
pub(super) struct Realm {
    /// Account id → its users' emails in the order they were added; the first is the
    /// admin who signs in on the authorize page (`/users/me`).
    pub accounts: BTreeMap<String, Vec<String>>,
    /// By lower-case email: an email belongs to one account of a provider.
    pub users: BTreeMap<String, ConferencingUser>,
}

impl Realm {
    /// The user behind an account's authorization.
    pub fn admin(&self, account: &str) -> Option<&ConferencingUser> {
        self.users.get(self.accounts.get(account)?.first()?)
    }

    /// A user of `account` by email or id.
    pub fn find(&self, account: &str, key: &str) -> Option<&ConferencingUser> {
        let lower = key.to_ascii_lowercase();
        self.users
            .get(&lower)
            .or_else(|| self.users.values().find(|u| u.id == key))
            .filter(|u| u.account == account)
    }
}

#[derive(Debug, Clone)]
pub(super) struct ConferencingUser {
    pub id: String,
    pub account: String,
    pub email: String,
    /// Zoom's `active`, `inactive` or `pending`; `active` elsewhere.
    pub status: String,
    pub given_name: String,
    pub family_name: String,
}

#[derive(Debug, Clone)]
pub(super) struct IssuedCode {
    pub provider: Conferencing,
    pub account: String,
    pub redirect_uri: String,
    pub scope: String,
    pub expires: Instant,
}

#[derive(Debug, Clone)]
pub(super) struct ConferencingToken {
    pub provider: Conferencing,
    pub account: String,
    pub scope: String,
    pub expires: Instant,
}

#[derive(Debug, Clone)]
pub(super) struct Fault {
    pub status: u16,
    pub remaining: u32,
    pub retry_after: Option<u64>,
}

/// The prefixes faults and request counts are kept under.
pub const PREFIXES: [&str; 14] = [
    "google/token",
    "google/admin",
    "microsoft/token",
    "microsoft/graph",
    "microsoft/login",
    "zoom/oauth",
    "zoom/token",
    "zoom/api",
    "webex/oauth",
    "webex/token",
    "webex/api",
    "indeed/oauth",
    "indeed/token",
    "indeed/api",
];

/// Zoom's user statuses.
pub const ZOOM_STATUSES: [&str; 3] = ["active", "inactive", "pending"];

/// "Alice" from `alice.smith@…`, "Smith" from its second part (or "User").
fn names(email: &str) -> (String, String) {
    let local = email.split('@').next().unwrap_or(email);
    let mut parts = local.split(['.', '_', '-', '+']).filter(|p| !p.is_empty());
    let cap = |s: &str| {
        let mut c = s.chars();
        c.next()
            .map(|f| f.to_uppercase().chain(c).collect::<String>())
            .unwrap_or_default()
    };
    let given = parts.next().map(cap).unwrap_or_else(|| "User".into());
    let family = parts.next().map(cap).unwrap_or_else(|| "User".into());
    (given, family)
}

fn domain_of(email: &str) -> Option<String> {
    email
        .rsplit_once('@')
        .map(|(_, d)| d.to_ascii_lowercase())
        .filter(|d| !d.is_empty())
}

/// A stable id from a name: Google's ids are 21 digits, Microsoft's are GUIDs.
fn digest(kind: &str, name: &str) -> [u8; 32] {
    Sha256::digest(format!("{kind}\0{name}").as_bytes()).into()
}

fn google_id(email: &str) -> String {
    let d = digest("google user", email);
    let n = u64::from_be_bytes([d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7]]);
    format!("1{:020}", n)
}

fn microsoft_id(upn: &str) -> String {
    let d = digest("microsoft user", upn);
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&d[..16]);
    uuid::Builder::from_random_bytes(bytes)
        .into_uuid()
        .to_string()
}

/// Ids in each provider's style: Zoom's 22 base64url characters, Webex's base64 of a
/// `ciscospark://` URI, Indeed's hex.
fn conferencing_id(provider: Conferencing, email: &str) -> String {
    use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE_NO_PAD};
    use base64::Engine;
    let d = digest(&format!("{provider:?} user"), email);
    match provider {
        Conferencing::Zoom => URL_SAFE_NO_PAD.encode(&d[..16]),
        Conferencing::Webex => {
            let mut bytes = [0u8; 16];
            bytes.copy_from_slice(&d[..16]);
            let uuid = uuid::Builder::from_random_bytes(bytes).into_uuid();
            STANDARD_NO_PAD.encode(format!("ciscospark://us/PEOPLE/{uuid}"))
        }
        Conferencing::Indeed => hex::encode(&d[..12]),
    }
}

impl FakeState {
    pub(super) fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panicking test thread must not take the fakes down for the others.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    // --- Google ---

    pub fn add_google_domain(&self, domain: &str) {
        self.lock()
            .google_domains
            .insert(domain.to_ascii_lowercase());
    }

    /// A workspace user (their domain is added too); names come from the address.
    pub fn add_google_user(&self, email: &str, is_admin: bool) -> Result<(), Error> {
        let domain = domain_of(email)
            .ok_or_else(|| Rejected::invalid(format!("{email:?} is not an email address")))?;
        let key = email.to_ascii_lowercase();
        let (given_name, family_name) = names(&key);
        let mut inner = self.lock();
        inner.google_domains.insert(domain);
        inner.google_users.insert(
            key.clone(),
            GoogleUser {
                id: google_id(&key),
                email: key,
                is_admin,
                given_name,
                family_name,
            },
        );
        Ok(())
    }

    pub fn remove_google_user(&self, email: &str) {
        self.lock().google_users.remove(&email.to_ascii_lowercase());
    }

    /// The domain's admin authorizes the fake-issued service account for `scopes`
    /// (added to what it already had).
    pub fn grant_delegation(&self, domain: &str, scopes: &[&str]) {
        let domain = domain.to_ascii_lowercase();
        let mut inner = self.lock();
        inner.google_domains.insert(domain.clone());
        inner
            .delegations
            .entry(domain)
            .or_default()
            .extend(scopes.iter().map(|s| s.to_string()));
    }

    /// The domain's admin removes the service account's delegation.
    pub fn revoke_delegation(&self, domain: &str) {
        self.lock().delegations.remove(&domain.to_ascii_lowercase());
    }

    // --- Microsoft ---

    /// A tenant with its verified domains (the first is the default), not yet consented.
    pub fn add_tenant(&self, tenant_id: &str, domains: &[&str]) {
        let domains: Vec<String> = domains.iter().map(|d| d.to_ascii_lowercase()).collect();
        let display_name = domains
            .first()
            .map(|d| {
                let org = d.split('.').next().unwrap_or(d);
                names(org).0
            })
            .unwrap_or_else(|| "Organization".into());
        self.lock().tenants.insert(
            tenant_id.to_ascii_lowercase(),
            Tenant {
                display_name,
                domains,
                consented: false,
            },
        );
    }

    /// A user of the tenant that has their domain; `mailbox` says whether Exchange Online
    /// holds their calendar.
    pub fn add_microsoft_user(&self, email: &str, mailbox: bool) -> Result<(), Error> {
        let domain = domain_of(email)
            .ok_or_else(|| Rejected::invalid(format!("{email:?} is not an email address")))?;
        let upn = email.to_ascii_lowercase();
        let (given_name, surname) = names(&upn);
        let mut inner = self.lock();
        let tenant = inner
            .tenants
            .iter()
            .find(|(_, t)| t.domains.contains(&domain))
            .map(|(id, _)| id.clone())
            .ok_or_else(|| Rejected::invalid(format!("no tenant has the domain {domain}")))?;
        inner.microsoft_users.insert(
            upn.clone(),
            MicrosoftUser {
                id: microsoft_id(&upn),
                tenant,
                upn,
                mailbox,
                given_name,
                surname,
            },
        );
        Ok(())
    }

    /// The tenant's admin consents to the app (what the adminconsent page does).
    /// False when there is no such tenant.
    pub fn consent(&self, tenant_id: &str) -> bool {
        match self.lock().tenants.get_mut(&tenant_id.to_ascii_lowercase()) {
            Some(t) => {
                t.consented = true;
                true
            }
            None => false,
        }
    }

    pub fn is_consented(&self, tenant_id: &str) -> bool {
        self.lock()
            .tenants
            .get(&tenant_id.to_ascii_lowercase())
            .is_some_and(|t| t.consented)
    }

    // --- conferencing ---

    pub(super) fn realm(inner: &mut Inner, provider: Conferencing) -> &mut Realm {
        match provider {
            Conferencing::Zoom => &mut inner.zoom,
            Conferencing::Webex => &mut inner.webex,
            Conferencing::Indeed => &mut inner.indeed,
        }
    }

    fn add_account(&self, provider: Conferencing, account_id: &str) -> Result<(), Error> {
        let account_id = account_id.trim();
        if account_id.is_empty() {
            return Err(Rejected::invalid("an account id is required").into());
        }
        let mut inner = self.lock();
        Self::realm(&mut inner, provider)
            .accounts
            .entry(account_id.to_string())
            .or_default();
        Ok(())
    }

    fn add_user(
        &self,
        provider: Conferencing,
        account_id: &str,
        email: &str,
        status: &str,
    ) -> Result<(), Error> {
        domain_of(email)
            .ok_or_else(|| Rejected::invalid(format!("{email:?} is not an email address")))?;
        let key = email.to_ascii_lowercase();
        let (given_name, family_name) = names(&key);
        let mut inner = self.lock();
        let realm = Self::realm(&mut inner, provider);
        if !realm.accounts.contains_key(account_id) {
            return Err(Rejected::invalid(format!("no account {account_id:?}")).into());
        }
        // An email belongs to one account: moving it takes it out of the other.
        if let Some(old) = realm.users.get(&key).map(|u| u.account.clone()) {
            if let Some(emails) = realm.accounts.get_mut(&old) {
                emails.retain(|e| *e != key);
            }
        }
        if let Some(emails) = realm.accounts.get_mut(account_id) {
            emails.push(key.clone());
        }
        realm.users.insert(
            key.clone(),
            ConferencingUser {
                id: conferencing_id(provider, &key),
                account: account_id.to_string(),
                email: key,
                status: status.to_string(),
                given_name,
                family_name,
            },
        );
        Ok(())
    }

    /// A Zoom account (its first user is the admin who authorizes the app).
    pub fn add_zoom_account(&self, account_id: &str) -> Result<(), Error> {
        self.add_account(Conferencing::Zoom, account_id)
    }

    /// A user of a Zoom account; `status` is `active`, `inactive` or `pending`.
    pub fn add_zoom_user(&self, account_id: &str, email: &str, status: &str) -> Result<(), Error> {
        if !ZOOM_STATUSES.contains(&status) {
            return Err(Rejected::invalid(format!(
                "status must be one of {}",
                ZOOM_STATUSES.join(", ")
            ))
            .into());
        }
        self.add_user(Conferencing::Zoom, account_id, email, status)
    }

    /// A Webex organization (its first user is the admin who authorizes the integration).
    pub fn add_webex_org(&self, org_id: &str) -> Result<(), Error> {
        self.add_account(Conferencing::Webex, org_id)
    }

    pub fn add_webex_user(&self, org_id: &str, email: &str) -> Result<(), Error> {
        self.add_user(Conferencing::Webex, org_id, email, "active")
    }

    /// An Indeed employer account (its first user is the one who authorizes).
    pub fn add_indeed_employer(&self, employer_id: &str) -> Result<(), Error> {
        self.add_account(Conferencing::Indeed, employer_id)
    }

    pub fn add_indeed_user(&self, employer_id: &str, email: &str) -> Result<(), Error> {
        self.add_user(Conferencing::Indeed, employer_id, email, "active")
    }

    // --- faults ---

    /// The next `times` requests under `prefix` (one of [`PREFIXES`]) answer `status` in
    /// the provider's error shape, with `Retry-After` when given.
    pub fn fail_next(&self, prefix: &str, status: u16, times: u32, retry_after: Option<u64>) {
        self.lock().faults.insert(
            prefix.trim_matches('/').to_string(),
            Fault {
                status,
                remaining: times,
                retry_after,
            },
        );
    }

    /// Every access token issued so far answers 401 from now on (new ones work).
    pub fn expire_tokens(&self) {
        let mut inner = self.lock();
        inner.google_tokens.clear();
        inner.microsoft_tokens.clear();
        // Refresh tokens stay good: a 401, a refresh, a retry.
        inner.conferencing_tokens.clear();
    }

    /// Every answer waits this long first.
    pub fn set_latency(&self, latency: Duration) {
        self.lock().latency = latency;
    }

    /// How many requests arrived under `prefix` (faulted ones included).
    pub fn requests(&self, prefix: &str) -> usize {
        self.lock()
            .requests
            .get(prefix.trim_matches('/'))
            .copied()
            .unwrap_or(0)
    }

    /// Counts a request under `prefix`; returns the latency to apply and the fault to
    /// answer with, if one is due.
    pub(super) fn arrive(&self, prefix: &str) -> (Duration, Option<Fault>) {
        let mut inner = self.lock();
        *inner.requests.entry(prefix.to_string()).or_default() += 1;
        let latency = inner.latency;
        let fault = match inner.faults.get_mut(prefix) {
            Some(f) if f.remaining > 0 => {
                f.remaining -= 1;
                Some(f.clone())
            }
            _ => None,
        };
        (latency, fault)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_ids_come_from_the_address() {
        assert_eq!(names("alice.smith@x"), ("Alice".into(), "Smith".into()));
        assert_eq!(names("bob@x"), ("Bob".into(), "User".into()));
        assert_eq!(google_id("a@x"), google_id("a@x"));
        assert_eq!(google_id("a@x").len(), 21);
        assert!(uuid::Uuid::parse_str(&microsoft_id("a@x")).is_ok());
    }

    #[test]
    fn users_need_a_tenant_and_faults_count_down() {
        let s = FakeState::default();
        assert!(s.add_microsoft_user("x@nowhere.example", true).is_err());
        s.add_tenant("T1", &["contoso.example"]);
        s.add_microsoft_user("X@Contoso.example", true).unwrap();
        assert_eq!(s.lock().microsoft_users["x@contoso.example"].tenant, "t1");
        assert!(!s.is_consented("t1") && s.consent("t1") && s.is_consented("T1"));
        s.fail_next("/google/token", 503, 2, Some(7));
        assert_eq!(s.arrive("google/token").1.map(|f| f.status), Some(503));
        assert!(s.arrive("google/token").1.is_some());
        assert!(s.arrive("google/token").1.is_none());
        assert_eq!(s.requests("google/token"), 3);
    }

    #[test]
    fn conferencing_users_belong_to_one_account() {
        let s = FakeState::default();
        assert!(s.add_zoom_user("acc1", "a@x.example", "active").is_err());
        s.add_zoom_account("acc1").unwrap();
        s.add_zoom_account("acc2").unwrap();
        assert!(s.add_zoom_user("acc1", "a@x.example", "gone").is_err());
        s.add_zoom_user("acc1", "A@x.example", "active").unwrap();
        s.add_zoom_user("acc1", "b@x.example", "pending").unwrap();
        let mut inner = s.lock();
        assert_eq!(inner.zoom.admin("acc1").unwrap().email, "a@x.example");
        let id = inner.zoom.users["b@x.example"].id.clone();
        assert_eq!(id.len(), 22);
        assert_eq!(inner.zoom.find("acc1", &id).unwrap().email, "b@x.example");
        assert!(inner.zoom.find("acc2", "a@x.example").is_none());
        drop(inner);
        s.add_zoom_user("acc2", "a@x.example", "active").unwrap();
        inner = s.lock();
        assert_eq!(inner.zoom.admin("acc1").unwrap().email, "b@x.example");
        assert!(inner.zoom.find("acc2", "a@x.example").is_some());
        assert!(inner.webex.users.is_empty());
    }
}
