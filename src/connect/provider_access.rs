//! The configured providers and their access tokens (DESIGN.md §6.2, §6.6). A service
//! account's token is kept in memory and, sealed, in its row (for restarts and other
//! instances); it is replaced a minute before it expires, or once after a 401. One
//! refresh per service account at a time: concurrent lookups wait for it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::error::Error;
use crate::providers::google::{Google, USER_READONLY_SCOPE};
use crate::providers::microsoft::Microsoft;
use crate::providers::{AccessToken, ProviderError};
use crate::secrets::{Sealer, Secret};
use crate::store::service_accounts::ServiceAccountRow;
use crate::store::{self as db, Db};

use super::service_accounts::Consented;

pub const GOOGLE: &str = "google";
pub const OFFICE365: &str = "office365";

/// A token is replaced this long before it expires.
const EARLY: chrono::Duration = chrono::Duration::seconds(60);

/// A person a provider knows.
#[derive(Debug, Clone)]
pub struct Person {
    pub id: String,
    pub email: String,
}

#[derive(Clone)]
struct Cached {
    token: Secret,
    expires_at: chrono::DateTime<chrono::Utc>,
}

/// The calendar providers whose operator credentials are configured.
pub struct Providers {
    pub google: Option<Google>,
    pub microsoft: Option<Microsoft>,
    db: Db,
    sealer: Sealer,
    tokens: Mutex<HashMap<String, Arc<tokio::sync::Mutex<Option<Cached>>>>>,
}

impl Providers {
    pub fn new(
        google: Option<Google>,
        microsoft: Option<Microsoft>,
        db: Db,
        sealer: Sealer,
    ) -> Self {
        Self {
            google,
            microsoft,
            db,
            sealer,
            tokens: Mutex::new(HashMap::new()),
        }
    }

    /// The providers whose credentials `config` holds. Their base URLs are the
    /// operator's own configuration, so private addresses are allowed (local servers in
    /// development and tests); metadata addresses are still refused.
    pub fn from_config(
        config: &crate::config::Config,
        db: Db,
        sealer: Sealer,
    ) -> Result<Self, Error> {
        let settings = crate::outbound::Settings {
            timeout: std::time::Duration::from_millis(config.provider_timeout_ms.max(1)),
            allow_private: true,
        };
        let google = match &config.google_service_account_key {
            Some(path) => {
                let key = crate::providers::google::ServiceAccountKey::load(path)?;
                Some(Google::new(
                    crate::outbound::client(&settings)?,
                    Arc::new(key),
                    &config.google_admin_url,
                ))
            }
            None => None,
        };
        let microsoft =
            match (&config.microsoft_client_id, &config.microsoft_client_secret) {
                (Some(id), Some(secret)) => Some(Microsoft::new(
                    crate::outbound::client(&settings)?,
                    id,
                    Secret::new(secret.clone()),
                    &config.microsoft_login_url,
                    &config.microsoft_graph_url,
                )),
                (None, None) => None,
                _ => return Err(Error::Config(
                    "SCIMGATE_MICROSOFT_CLIENT_ID and SCIMGATE_MICROSOFT_CLIENT_SECRET go together"
                        .into(),
                )),
            };
        Ok(Self::new(google, microsoft, db, sealer))
    }

    /// The provider names offered on consent pages, in display order.
    pub fn offered(&self) -> Vec<&'static str> {
        let mut out = Vec::new();
        if self.google.is_some() {
            out.push(GOOGLE);
        }
        if self.microsoft.is_some() {
            out.push(OFFICE365);
        }
        out
    }

    fn google(&self) -> Result<&Google, ProviderError> {
        self.google
            .as_ref()
            .ok_or_else(|| ProviderError::Refused("Google Workspace is not configured".into()))
    }

    fn microsoft(&self) -> Result<&Microsoft, ProviderError> {
        self.microsoft
            .as_ref()
            .ok_or_else(|| ProviderError::Refused("Microsoft 365 is not configured".into()))
    }

    /// Proves a Google admin's domain-wide delegation: a token impersonating
    /// `admin_email`, who must be an admin with a primary email in `domain`.
    pub async fn verify_google(
        &self,
        domain: &str,
        admin_email: &str,
    ) -> Result<Consented, ProviderError> {
        let google = self.google()?;
        let domain = domain.trim().trim_start_matches('@').to_lowercase();
        let admin_email = admin_email.trim().to_lowercase();
        if !admin_email.ends_with(&format!("@{domain}")) {
            return Err(ProviderError::Refused(format!(
                "{admin_email} is not an address of {domain}"
            )));
        }
        let token = google.token(&admin_email, &[USER_READONLY_SCOPE]).await?;
        let user = google
            .user(token.token.expose(), &admin_email)
            .await
            // Only administrators may read the directory: a 403 here means the email is
            // not one.
            .map_err(|e| match e {
                ProviderError::Refused(m) => ProviderError::Refused(format!(
                    "{admin_email} is not an administrator of {domain} ({m})"
                )),
                other => other,
            })?
            .ok_or_else(|| {
                ProviderError::Refused(format!("{admin_email} is not a user of {domain}"))
            })?;
        if !user.is_admin {
            return Err(ProviderError::Refused(format!(
                "{admin_email} is not an administrator of {domain}"
            )));
        }
        if !user
            .primary_email
            .to_lowercase()
            .ends_with(&format!("@{domain}"))
        {
            return Err(ProviderError::Refused(format!(
                "{admin_email} belongs to another domain than {domain}"
            )));
        }
        Ok(Consented {
            provider: GOOGLE,
            domain: Some(domain),
            tenant_id: None,
            admin_email: Some(admin_email),
        })
    }

    /// Proves a Microsoft tenant's admin consent: a client-credentials token for it, and
    /// Graph naming the same tenant.
    pub async fn verify_microsoft(&self, tenant: &str) -> Result<Consented, ProviderError> {
        let ms = self.microsoft()?;
        let token = ms.token(tenant).await?;
        let org = ms.organization(token.token.expose()).await?;
        if !org.id.eq_ignore_ascii_case(tenant) {
            return Err(ProviderError::Refused(format!(
                "Microsoft Graph answered for tenant {} instead of {tenant}",
                org.id
            )));
        }
        Ok(Consented {
            provider: OFFICE365,
            domain: org.domains.first().cloned(),
            tenant_id: Some(org.id.to_lowercase()),
            admin_email: None,
        })
    }

    /// Looks `email` up through a service account: `Ok(None)` when its provider does not
    /// know it here. A 401 costs one new token and one retry.
    pub async fn lookup(
        &self,
        ser: &ServiceAccountRow,
        email: &str,
    ) -> Result<Option<Person>, ProviderError> {
        let token = self.token(ser, None).await?;
        match self.lookup_with(ser, token.expose(), email).await {
            Err(ProviderError::Unauthorized(_)) => {
                let fresh = self.token(ser, Some(&token)).await?;
                self.lookup_with(ser, fresh.expose(), email).await
            }
            other => other,
        }
    }

    async fn lookup_with(
        &self,
        ser: &ServiceAccountRow,
        token: &str,
        email: &str,
    ) -> Result<Option<Person>, ProviderError> {
        match ser.provider.as_str() {
            GOOGLE => Ok(self.google()?.user(token, email).await?.map(|u| Person {
                id: u.id,
                email: u.primary_email.to_lowercase(),
            })),
            OFFICE365 => Ok(self.microsoft()?.user(token, email).await?.map(|u| Person {
                id: u.id,
                email: u.mail.unwrap_or(u.user_principal_name).to_lowercase(),
            })),
            other => Err(ProviderError::Refused(format!("unknown provider {other}"))),
        }
    }

    /// A usable access token for `ser`; `stale` is one the provider just refused (it is
    /// replaced unless another task already did).
    async fn token(
        &self,
        ser: &ServiceAccountRow,
        stale: Option<&Secret>,
    ) -> Result<Secret, ProviderError> {
        let slot = {
            let mut all = self.tokens.lock().unwrap_or_else(|p| p.into_inner());
            all.entry(ser.id.clone()).or_default().clone()
        };
        let mut cached = slot.lock().await;
        let now = chrono::Utc::now();
        let usable = |c: &Cached| c.expires_at - EARLY > now && stale.is_none_or(|s| s != &c.token);
        if let Some(c) = cached.as_ref().filter(|c| usable(c)) {
            return Ok(c.token.clone());
        }
        // Another instance (or a previous run) may have a fresh one.
        if let Some(c) = self.stored_token(ser).await.filter(|c| usable(c)) {
            *cached = Some(c.clone());
            return Ok(c.token);
        }
        let fresh: AccessToken = match ser.provider.as_str() {
            GOOGLE => {
                let admin = ser.admin_email.as_deref().unwrap_or_default();
                self.google()?.token(admin, &[USER_READONLY_SCOPE]).await?
            }
            OFFICE365 => {
                self.microsoft()?
                    .token(ser.tenant_id.as_deref().unwrap_or_default())
                    .await?
            }
            other => return Err(ProviderError::Refused(format!("unknown provider {other}"))),
        };
        let c = Cached {
            token: fresh.token,
            expires_at: fresh.expires_at,
        };
        self.keep_token(ser, &c).await;
        *cached = Some(c.clone());
        Ok(c.token)
    }

    async fn stored_token(&self, ser: &ServiceAccountRow) -> Option<Cached> {
        let id = ser.id.clone();
        let row = self
            .db
            .run(move |c| crate::store::service_accounts::get(c, &id))
            .await
            .ok()??;
        let (sealed, expires) = (row.provider_token?, row.provider_token_expires_at?);
        let token = self.sealer.open(&sealed).ok()?;
        Some(Cached {
            token,
            expires_at: expires.and_utc(),
        })
    }

    async fn keep_token(&self, ser: &ServiceAccountRow, c: &Cached) {
        let sealed = match self.sealer.seal(c.token.expose()) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "could not seal a provider token");
                return;
            }
        };
        let (id, expires) = (ser.id.clone(), c.expires_at.naive_utc());
        let kept = self
            .db
            .run(move |conn| {
                db::write_tx(conn, |conn| {
                    crate::store::service_accounts::store_provider_token(
                        conn, &id, &sealed, expires,
                    )
                })
            })
            .await;
        if let Err(e) = kept {
            // The token still works from memory; the next instance mints its own.
            tracing::warn!(error = %e, "could not store a provider token");
        }
    }

    /// Forgets a revoked service account's token.
    pub fn forget(&self, ser: &str) {
        self.tokens
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(ser);
    }
}

/// A provider's failure as a page or callback can say it.
pub fn describe(e: &ProviderError) -> String {
    e.to_string()
}

impl From<ProviderError> for Error {
    fn from(e: ProviderError) -> Self {
        match e {
            ProviderError::Refused(m) | ProviderError::Unauthorized(m) => {
                crate::error::Rejected::new(400, m).into()
            }
            ProviderError::Unavailable { message, .. } => {
                crate::error::Rejected::new(503, format!("the provider is unavailable: {message}"))
                    .into()
            }
        }
    }
}
