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
    /// By lower-case email.
    pub google_groups: BTreeMap<String, GoogleGroup>,
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
    pub suspended: bool,
    /// Further addresses (Google lists them in `emails` and `aliases`).
    pub aliases: Vec<String>,
    /// Bumped by every change and sign-in: the etag and `lastLoginTime` follow it.
    pub revision: u64,
    pub last_login: Option<u64>,
}

#[derive(Debug, Clone)]
pub(super) struct GoogleGroup {
    pub id: String,
    pub email: String,
    pub name: String,
    /// By lower-case email.
    pub members: BTreeMap<String, GoogleMember>,
    pub revision: u64,
}

#[derive(Debug, Clone)]
pub(super) struct GoogleMember {
    pub id: String,
    pub email: String,
    /// `USER`, `GROUP` or `CUSTOMER`.
    pub kind: String,
    /// `OWNER`, `MANAGER` or `MEMBER`.
    pub role: String,
}

/// A change to a fake Google user; absent fields stay.
#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct GoogleUserChange {
    /// A new primary address (the id stays: a rename).
    pub new_email: Option<String>,
    pub given_name: Option<String>,
    pub family_name: Option<String>,
    pub suspended: Option<bool>,
    pub aliases: Option<Vec<String>>,
    pub is_admin: Option<bool>,
    /// A sign-in: only the etag and `lastLoginTime` change.
    #[serde(default)]
    pub sign_in: bool,
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
    /// Requests let through before the fault starts (a failure on page N of a listing).
    pub skip: u32,
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
    google_id_of("google user", email)
}

fn google_id_of(kind: &str, email: &str) -> String {
    let d = digest(kind, email);
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
                suspended: false,
                aliases: Vec::new(),
                revision: 1,
                last_login: None,
            },
        );
        Ok(())
    }

    /// Google deletes a user with their memberships.
    pub fn remove_google_user(&self, email: &str) {
        let key = email.to_ascii_lowercase();
        let mut inner = self.lock();
        inner.google_users.remove(&key);
        for g in inner.google_groups.values_mut() {
            if g.members.remove(&key).is_some() {
                g.revision += 1;
            }
        }
    }

    /// Changes a user (a rename keeps their id and memberships).
    pub fn update_google_user(&self, email: &str, change: GoogleUserChange) -> Result<(), Error> {
        let key = email.to_ascii_lowercase();
        let mut inner = self.lock();
        let mut user = inner
            .google_users
            .remove(&key)
            .ok_or_else(|| Rejected::not_found(format!("no Google user {email:?}")))?;
        let mut renamed = None;
        if let Some(new) = change.new_email.map(|e| e.to_ascii_lowercase()) {
            if domain_of(&new).is_none() || (new != key && inner.google_users.contains_key(&new)) {
                inner.google_users.insert(key, user);
                return Err(Rejected::invalid(format!("{new:?} cannot be used")).into());
            }
            user.email = new.clone();
            renamed = Some(new);
        }
        if let Some(v) = change.given_name {
            user.given_name = v;
        }
        if let Some(v) = change.family_name {
            user.family_name = v;
        }
        if let Some(v) = change.suspended {
            user.suspended = v;
        }
        if let Some(v) = change.aliases {
            user.aliases = v.iter().map(|a| a.to_ascii_lowercase()).collect();
        }
        if let Some(v) = change.is_admin {
            user.is_admin = v;
        }
        user.revision += 1;
        if change.sign_in {
            user.last_login = Some(user.revision);
        }
        if let Some(new) = &renamed {
            // Memberships follow the person, under their new address.
            for g in inner.google_groups.values_mut() {
                if let Some(mut m) = g.members.remove(&key) {
                    m.email = new.clone();
                    g.members.insert(new.clone(), m);
                }
            }
        }
        inner.google_users.insert(user.email.clone(), user);
        Ok(())
    }

    /// A group (or a new name for an existing one).
    pub fn add_google_group(&self, email: &str, name: &str) -> Result<(), Error> {
        domain_of(email)
            .ok_or_else(|| Rejected::invalid(format!("{email:?} is not an email address")))?;
        let key = email.to_ascii_lowercase();
        let mut inner = self.lock();
        let group = inner
            .google_groups
            .entry(key.clone())
            .or_insert_with(|| GoogleGroup {
                id: google_id_of("google group", &key)
                    .get(1..18)
                    .map(|d| format!("0{d}"))
                    .unwrap_or_default(),
                email: key,
                name: String::new(),
                members: BTreeMap::new(),
                revision: 0,
            });
        group.name = name.to_string();
        group.revision += 1;
        Ok(())
    }

    pub fn remove_google_group(&self, email: &str) {
        self.lock()
            .google_groups
            .remove(&email.to_ascii_lowercase());
    }

    /// A direct member of a group: a user of the workspace, another group, or an outside
    /// address (a `USER` Google knows only by email).
    pub fn add_google_member(&self, group: &str, email: &str, role: &str) -> Result<(), Error> {
        let key = email.to_ascii_lowercase();
        let mut inner = self.lock();
        let (id, kind) = if let Some(u) = inner.google_users.get(&key) {
            (u.id.clone(), "USER")
        } else if let Some(g) = inner.google_groups.get(&key) {
            (g.id.clone(), "GROUP")
        } else {
            (google_id_of("outside user", &key), "USER")
        };
        let group = inner
            .google_groups
            .get_mut(&group.to_ascii_lowercase())
            .ok_or_else(|| Rejected::not_found(format!("no Google group {group:?}")))?;
        group.members.insert(
            key.clone(),
            GoogleMember {
                id,
                email: key,
                kind: kind.to_string(),
                role: role.to_ascii_uppercase(),
            },
        );
        group.revision += 1;
        Ok(())
    }

    pub fn remove_google_member(&self, group: &str, email: &str) {
        let mut inner = self.lock();
        if let Some(g) = inner.google_groups.get_mut(&group.to_ascii_lowercase()) {
            if g.members.remove(&email.to_ascii_lowercase()).is_some() {
                g.revision += 1;
            }
        }
    }

    /// Many users at once (benchmarks): `u{i}@domain` for i in 0..users, every 10th
    /// suspended, and `groups` groups `g{j}@domain` whose members are every user with
    /// `i % groups == j`, up to `members_per_group`.
    pub fn seed_google(
        &self,
        domain: &str,
        users: usize,
        groups: usize,
        members_per_group: usize,
    ) -> Result<(), Error> {
        for i in 0..users {
            let email = format!("u{i}@{domain}");
            self.add_google_user(&email, false)?;
            if i % 10 == 9 {
                self.update_google_user(
                    &email,
                    GoogleUserChange {
                        suspended: Some(true),
                        ..Default::default()
                    },
                )?;
            }
        }
        for j in 0..groups {
            let group = format!("g{j}@{domain}");
            self.add_google_group(&group, &format!("Group {j}"))?;
            let members = (j..users).step_by(groups).take(members_per_group);
            for i in members {
                self.add_google_member(&group, &format!("u{i}@{domain}"), "MEMBER")?;
            }
        }
        Ok(())
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
        self.fail_after(prefix, 0, status, times, retry_after);
    }

    /// As [`FakeState::fail_next`], after letting `skip` requests through first.
    pub fn fail_after(
        &self,
        prefix: &str,
        skip: u32,
        status: u16,
        times: u32,
        retry_after: Option<u64>,
    ) {
        self.lock().faults.insert(
            prefix.trim_matches('/').to_string(),
            Fault {
                status,
                skip,
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
            Some(f) if f.skip > 0 => {
                f.skip -= 1;
                None
            }
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
