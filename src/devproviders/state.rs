//! What the fake providers know: users, delegations, tenants, consents, issued tokens,
//! and the faults and latency a test asked for. One std mutex: every operation is short
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

#[derive(Debug, Clone)]
pub(super) struct Fault {
    pub status: u16,
    pub remaining: u32,
    pub retry_after: Option<u64>,
}

/// The prefixes faults and request counts are kept under.
pub const PREFIXES: [&str; 5] = [
    "google/token",
    "google/admin",
    "microsoft/token",
    "microsoft/graph",
    "microsoft/login",
];

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

    // --- faults ---

    /// The next `times` requests under `prefix` ("google/token", "google/admin",
    /// "microsoft/token", "microsoft/graph", "microsoft/login") answer `status` in the
    /// provider's error shape, with `Retry-After` when given.
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
}
