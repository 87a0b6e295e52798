//! The conferencing providers an organizational unit's admin authorizes (DESIGN.md §6.2):
//! `zoom_enterprise`, `webex_enterprise`, `indeed`. Each is an OAuth 2 authorization-code
//! client plus a lookup by email; [`Conferencing`] puts the three behind one type for
//! callers that hold "whichever is configured".

use super::indeed::Indeed;
use super::oauth_client::OAuthTokens;
use super::webex::Webex;
use super::zoom::Zoom;
use super::ProviderError;

/// A person a conferencing provider knows, as a lookup by email finds them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConferencingUser {
    pub id: String,
    pub email: String,
    pub name: Option<String>,
}

/// The account an admin authorized (their Zoom account, Webex organization), and who
/// they are, for display.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConferencingAccount {
    pub account_id: String,
    pub admin: ConferencingUser,
}

/// One configured conferencing provider.
#[derive(Debug, Clone)]
pub enum Conferencing {
    Zoom(Zoom),
    Webex(Webex),
    Indeed(Indeed),
}

impl Conferencing {
    /// The provider's name in the API (`conferencing_provider_name`, `conferencing_profiles[]`).
    pub fn name(&self) -> &'static str {
        match self {
            Self::Zoom(_) => "zoom_enterprise",
            Self::Webex(_) => "webex_enterprise",
            Self::Indeed(_) => "indeed",
        }
    }

    pub fn client_id(&self) -> &str {
        match self {
            Self::Zoom(p) => p.client_id(),
            Self::Webex(p) => p.client_id(),
            Self::Indeed(p) => p.client_id(),
        }
    }

    pub fn authorize_url(&self, redirect_uri: &str, state: &str) -> String {
        match self {
            Self::Zoom(p) => p.authorize_url(redirect_uri, state),
            Self::Webex(p) => p.authorize_url(redirect_uri, state),
            Self::Indeed(p) => p.authorize_url(redirect_uri, state),
        }
    }

    pub async fn exchange_code(
        &self,
        code: &str,
        redirect_uri: &str,
    ) -> Result<OAuthTokens, ProviderError> {
        match self {
            Self::Zoom(p) => p.exchange_code(code, redirect_uri).await,
            Self::Webex(p) => p.exchange_code(code, redirect_uri).await,
            Self::Indeed(p) => p.exchange_code(code, redirect_uri).await,
        }
    }

    /// The answer's `refresh_token` is the one to keep from now on.
    pub async fn refresh(&self, refresh_token: &str) -> Result<OAuthTokens, ProviderError> {
        match self {
            Self::Zoom(p) => p.refresh(refresh_token).await,
            Self::Webex(p) => p.refresh(refresh_token).await,
            Self::Indeed(p) => p.refresh(refresh_token).await,
        }
    }

    /// `Ok(None)`: not a (usable) user of the authorized account.
    pub async fn user(
        &self,
        token: &str,
        email: &str,
    ) -> Result<Option<ConferencingUser>, ProviderError> {
        match self {
            Self::Zoom(p) => p.user(token, email).await,
            Self::Webex(p) => p.user(token, email).await,
            Self::Indeed(p) => p.user(token, email).await,
        }
    }

    /// The authorizing admin and their account; `None` for providers without such a call
    /// (Indeed).
    pub async fn me(&self, token: &str) -> Result<Option<ConferencingAccount>, ProviderError> {
        match self {
            Self::Zoom(p) => p.me(token).await.map(Some),
            Self::Webex(p) => p.me(token).await.map(Some),
            Self::Indeed(_) => Ok(None),
        }
    }
}
