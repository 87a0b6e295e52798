//! The configured providers and their access tokens (DESIGN.md §6.2, §6.6). A service
//! account's token is kept in memory and, sealed, in its row (for restarts and other
//! instances); it is replaced a minute before it expires, or once after a 401. One
//! refresh per service account at a time: concurrent lookups wait for it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::error::Error;
use crate::providers::google::{Google, USER_READONLY_SCOPE};
use crate::providers::microsoft::Microsoft;
use crate::providers::{AccessToken, Conferencing, ConferencingUser, ProviderError};
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

/// The calendar and conferencing providers whose operator credentials are configured.
pub struct Providers {
    pub google: Option<Google>,
    pub microsoft: Option<Microsoft>,
    /// Zoom, Webex, Indeed: those configured, in that order.
    pub conferencing: Vec<Conferencing>,
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
            conferencing: Vec::new(),
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
        let mut providers = Self::new(google, microsoft, db, sealer);
        providers.conferencing = conferencing_from(config, &settings)?;
        Ok(providers)
    }

    /// The conferencing provider called `name` (`zoom_enterprise`, …), if configured.
    pub fn conferencing(&self, name: &str) -> Option<&Conferencing> {
        self.conferencing.iter().find(|c| c.name() == name)
    }

    /// The conferencing providers offered, by name.
    pub fn offered_conferencing(&self) -> Vec<&'static str> {
        self.conferencing.iter().map(Conferencing::name).collect()
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
        let slot = self.slot(&ser.id);
        let mut cached = slot.lock().await;
        let usable = |c: &Cached| usable(c, stale);
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

    /// Looks `email` up at a conferencing account: `Ok(None)` when it does not know it. A
    /// 401 costs one refresh and one retry.
    pub async fn conferencing_lookup(
        &self,
        ser: &ServiceAccountRow,
        email: &str,
    ) -> Result<Option<ConferencingUser>, ProviderError> {
        let provider = self
            .conferencing(&ser.provider)
            .ok_or_else(|| ProviderError::Refused(format!("{} is not configured", ser.provider)))?;
        let token = self.conferencing_token(ser, None).await?;
        match provider.user(token.expose(), email).await {
            Err(ProviderError::Unauthorized(_)) => {
                let fresh = self.conferencing_token(ser, Some(&token)).await?;
                provider.user(fresh.expose(), email).await
            }
            other => other,
        }
    }

    /// A usable access token of a conferencing account: cached, else refreshed with its
    /// stored refresh token. One refresh per account at a time in this instance; across
    /// instances the new tokens are stored only if the refresh token is still the one
    /// used (compare and set), and an instance that lost the race (Zoom refuses a used
    /// refresh token) takes the winner's.
    async fn conferencing_token(
        &self,
        ser: &ServiceAccountRow,
        stale: Option<&Secret>,
    ) -> Result<Secret, ProviderError> {
        let slot = self.slot(&ser.id);
        let mut cached = slot.lock().await;
        let usable = |c: &Cached| usable(c, stale);
        if let Some(c) = cached.as_ref().filter(|c| usable(c)) {
            return Ok(c.token.clone());
        }
        let (stored, refresh) = self.stored_conferencing(ser).await?;
        if let Some(c) = stored.filter(|c| usable(c)) {
            *cached = Some(c.clone());
            return Ok(c.token);
        }
        let provider = self
            .conferencing(&ser.provider)
            .ok_or_else(|| ProviderError::Refused(format!("{} is not configured", ser.provider)))?;
        let (old_sealed, old) =
            refresh.ok_or_else(|| ProviderError::Refused("no refresh token is stored".into()))?;
        match provider.refresh(old.expose()).await {
            Ok(tokens) => {
                let c = Cached {
                    token: tokens.access_token.clone(),
                    expires_at: tokens.expires_at,
                };
                let next = tokens.refresh_token.unwrap_or(old);
                self.keep_conferencing(ser, &old_sealed, &c, &next).await?;
                *cached = Some(c.clone());
                Ok(c.token)
            }
            Err(ProviderError::Refused(why)) => {
                // Another instance may have rotated it a moment ago: its tokens are stored.
                match self.stored_conferencing(ser).await? {
                    (Some(c), Some((now_sealed, _))) if now_sealed != old_sealed && usable(&c) => {
                        *cached = Some(c.clone());
                        Ok(c.token)
                    }
                    _ => Err(ProviderError::Refused(why)),
                }
            }
            Err(e) => Err(e),
        }
    }

    /// A conferencing account's stored access token and sealed refresh token.
    async fn stored_conferencing(
        &self,
        ser: &ServiceAccountRow,
    ) -> Result<(Option<Cached>, Option<(crate::secrets::Sealed, Secret)>), ProviderError> {
        let id = ser.id.clone();
        let row = self
            .db
            .run(move |c| crate::store::service_accounts::get(c, &id))
            .await
            .map_err(|e| ProviderError::Unavailable {
                message: e.to_string(),
                retry_after: None,
            })?
            .ok_or_else(|| ProviderError::Refused("the conferencing account was removed".into()))?;
        let access = match (&row.provider_token, row.provider_token_expires_at) {
            (Some(t), Some(at)) => self.sealer.open(t).ok().map(|token| Cached {
                token,
                expires_at: at.and_utc(),
            }),
            _ => None,
        };
        let refresh = row
            .provider_refresh_token
            .and_then(|s| self.sealer.open(&s).ok().map(|plain| (s, plain)));
        Ok((access, refresh))
    }

    async fn keep_conferencing(
        &self,
        ser: &ServiceAccountRow,
        old_refresh: &crate::secrets::Sealed,
        c: &Cached,
        refresh: &Secret,
    ) -> Result<(), ProviderError> {
        let seal = |v: &str| {
            self.sealer.seal(v).map_err(|e| ProviderError::Unavailable {
                message: e.to_string(),
                retry_after: None,
            })
        };
        let (access, next) = (seal(c.token.expose())?, seal(refresh.expose())?);
        let (id, old, expires) = (
            ser.id.clone(),
            old_refresh.clone(),
            c.expires_at.naive_utc(),
        );
        self.db
            .run(move |conn| {
                db::write_tx(conn, |conn| {
                    crate::store::service_accounts::rotate_tokens(
                        conn, &id, &old, &access, expires, &next,
                    )
                })
            })
            .await
            .map(drop)
            .map_err(|e| ProviderError::Unavailable {
                message: e.to_string(),
                retry_after: None,
            })
    }

    /// The cache entry of a service account's token; holding its lock is holding the
    /// right to refresh it.
    fn slot(&self, ser: &str) -> Arc<tokio::sync::Mutex<Option<Cached>>> {
        let mut all = self.tokens.lock().unwrap_or_else(|p| p.into_inner());
        all.entry(ser.to_string()).or_default().clone()
    }

    /// Forgets a revoked service account's token.
    pub fn forget(&self, ser: &str) {
        self.tokens
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(ser);
    }
}

/// Whether a token can be used now: not about to expire, and not the one the provider
/// just refused.
fn usable(c: &Cached, stale: Option<&Secret>) -> bool {
    c.expires_at - EARLY > chrono::Utc::now() && stale.is_none_or(|s| s != &c.token)
}

/// The conferencing providers `config` has credentials for.
fn conferencing_from(
    config: &crate::config::Config,
    settings: &crate::outbound::Settings,
) -> Result<Vec<Conferencing>, Error> {
    use crate::providers::{indeed::Indeed, webex::Webex, zoom::Zoom};
    let pair = |id: &Option<String>, secret: &Option<String>, name: &str| match (id, secret) {
        (Some(id), Some(secret)) => Ok(Some((id.clone(), Secret::new(secret.clone())))),
        (None, None) => Ok(None),
        _ => Err(Error::Config(format!(
            "SCIMGATE_{name}_CLIENT_ID and SCIMGATE_{name}_CLIENT_SECRET go together"
        ))),
    };
    let mut out = Vec::new();
    if let Some((id, secret)) = pair(&config.zoom_client_id, &config.zoom_client_secret, "ZOOM")? {
        out.push(Conferencing::Zoom(Zoom::new(
            crate::outbound::client(settings)?,
            &id,
            secret,
            &config.zoom_oauth_url,
            &config.zoom_api_url,
        )));
    }
    if let Some((id, secret)) = pair(
        &config.webex_client_id,
        &config.webex_client_secret,
        "WEBEX",
    )? {
        out.push(Conferencing::Webex(Webex::new(
            crate::outbound::client(settings)?,
            &id,
            secret,
            &config.webex_api_url,
        )));
    }
    if let Some((id, secret)) = pair(
        &config.indeed_client_id,
        &config.indeed_client_secret,
        "INDEED",
    )? {
        let (Some(authorize), Some(token), Some(lookup)) = (
            &config.indeed_authorize_url,
            &config.indeed_token_url,
            &config.indeed_lookup_url,
        ) else {
            return Err(Error::Config(
                "Indeed needs SCIMGATE_INDEED_AUTHORIZE_URL, _TOKEN_URL and _LOOKUP_URL".into(),
            ));
        };
        if !lookup.contains(crate::providers::indeed::EMAIL_PLACEHOLDER) {
            return Err(Error::Config(
                "SCIMGATE_INDEED_LOOKUP_URL must contain {email}".into(),
            ));
        }
        out.push(Conferencing::Indeed(Indeed::new(
            crate::outbound::client(settings)?,
            &id,
            secret,
            authorize,
            token,
            lookup,
        )));
    }
    Ok(out)
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
