//! Zoom through an admin-managed OAuth app: an account's admin authorizes the operator's
//! app (authorization code; tokens for the whole account, refresh tokens single use), then
//! the gateway looks people up by their Zoom login email.

use serde_json::Value;

use super::conferencing::{ConferencingAccount, ConferencingUser};
use super::oauth_client::{ClientAuth, OAuthClient, OAuthTokens};
use super::{bearer, code_and_description, exchange, join, ProviderError};
use crate::outbound;
use crate::secrets::Secret;

/// Zoom's "User does not exist" (also a user of another account).
const USER_NOT_FOUND: i64 = 1001;

/// The Zoom connector: the operator's OAuth app and the two base URLs.
#[derive(Debug, Clone)]
pub struct Zoom {
    oauth: OAuthClient,
    client: outbound::Client,
    api_url: String,
}

impl Zoom {
    /// `oauth_url` is `https://zoom.us`, `api_url` `https://api.zoom.us` (or a fake's).
    pub fn new(
        client: outbound::Client,
        client_id: &str,
        client_secret: Secret,
        oauth_url: &str,
        api_url: &str,
    ) -> Self {
        let oauth_url = oauth_url.trim_end_matches('/');
        Self {
            oauth: OAuthClient::new(
                client.clone(),
                "Zoom",
                client_id,
                client_secret,
                &format!("{oauth_url}/oauth/authorize"),
                &format!("{oauth_url}/oauth/token"),
                ClientAuth::Basic,
            ),
            client,
            api_url: api_url.trim_end_matches('/').to_string(),
        }
    }

    pub fn client_id(&self) -> &str {
        self.oauth.client_id()
    }

    /// `{oauth}/oauth/authorize?response_type=code&client_id&redirect_uri&state` (the
    /// scopes are the app's, set in Zoom's marketplace).
    pub fn authorize_url(&self, redirect_uri: &str, state: &str) -> String {
        self.oauth.authorize_url(redirect_uri, state)
    }

    /// `POST {oauth}/oauth/token` with HTTP Basic client credentials.
    pub async fn exchange_code(
        &self,
        code: &str,
        redirect_uri: &str,
    ) -> Result<OAuthTokens, ProviderError> {
        self.oauth.exchange_code(code, redirect_uri).await
    }

    /// Zoom rotates refresh tokens and refuses a used one: keep the answer's.
    pub async fn refresh(&self, refresh_token: &str) -> Result<OAuthTokens, ProviderError> {
        self.oauth.refresh(refresh_token).await
    }

    /// `GET {api}/v2/users/{email}`: `None` when Zoom does not know the email in the
    /// token's account (404, code 1001) or the user is `pending` / `inactive`.
    pub async fn user(
        &self,
        token: &str,
        email: &str,
    ) -> Result<Option<ConferencingUser>, ProviderError> {
        const WHAT: &str = "Zoom user";
        if !email.contains('@') {
            return Err(ProviderError::Refused(format!(
                "{WHAT}: {email:?} is not an email address"
            )));
        }
        let Some(json) = self.get_user(WHAT, token, email).await? else {
            return Ok(None);
        };
        let status = json
            .get("status")
            .and_then(Value::as_str)
            .unwrap_or("active");
        if matches!(status, "pending" | "inactive") {
            return Ok(None);
        }
        user_of(&json)
            .map(Some)
            .ok_or_else(|| ProviderError::Refused(format!("{WHAT}: a user without id or email")))
    }

    /// `GET {api}/v2/users/me`: the admin who authorized, and their account.
    pub async fn me(&self, token: &str) -> Result<ConferencingAccount, ProviderError> {
        const WHAT: &str = "Zoom user me";
        let json = self.get_user(WHAT, token, "me").await?.ok_or_else(|| {
            ProviderError::Refused(format!("{WHAT}: the token's user does not exist"))
        })?;
        let account_id = json.get("account_id").and_then(Value::as_str);
        match (account_id, user_of(&json)) {
            (Some(account_id), Some(admin)) => Ok(ConferencingAccount {
                account_id: account_id.to_string(),
                admin,
            }),
            _ => Err(ProviderError::Refused(format!(
                "{WHAT}: a user without id, email or account_id"
            ))),
        }
    }

    /// `GET {api}/v2/users/{key}`: the user's JSON, `None` on Zoom's 404 code 1001.
    async fn get_user(
        &self,
        what: &str,
        token: &str,
        key: &str,
    ) -> Result<Option<Value>, ProviderError> {
        let url = join(&self.api_url, &["v2", "users", key])?;
        let request = self
            .client
            .get(url)
            .header("authorization", bearer(token))
            .header("accept", "application/json");
        let answer = exchange(what, request).await?;
        let json = answer.json().unwrap_or(Value::Null);
        // {"code": 1001, "message": "User does not exist: …"}; 124 "Invalid access token."
        let code = json.get("code").and_then(Value::as_i64);
        if answer.status == 200 {
            return Ok(Some(json));
        }
        if answer.status == 404 && code == Some(USER_NOT_FOUND) {
            return Ok(None);
        }
        let message = format!(
            "{what}: {} {}",
            answer.status,
            code_and_description(
                code.map(|c| c.to_string()).as_deref(),
                json.get("message").and_then(Value::as_str)
            )
        );
        match answer.status {
            401 => Err(ProviderError::Unauthorized(message)),
            _ if answer.is_transient() => Err(answer.unavailable(message)),
            // 400 (e.g. 1120 invalid email), 403 (a scope missing), a 404 without code
            // 1001 (a wrong API URL): none passes with time.
            _ => Err(ProviderError::Refused(message)),
        }
    }
}

/// id, email and a name (`display_name`, else first and last).
fn user_of(json: &Value) -> Option<ConferencingUser> {
    let text = |name: &str| {
        json.get(name)
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_string)
    };
    let name = text("display_name").or_else(|| {
        let full = [text("first_name"), text("last_name")]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(" ");
        Some(full).filter(|f| !f.is_empty())
    });
    Some(ConferencingUser {
        id: text("id")?,
        email: text("email")?,
        name,
    })
}

#[cfg(test)]
mod unit {
    use super::*;
    use serde_json::json;

    #[test]
    fn names_fall_back_to_first_and_last() {
        let u =
            user_of(&json!({"id": "z1", "email": "a@x", "first_name": "Ann", "last_name": "Lee"}))
                .unwrap();
        assert_eq!(u.name.as_deref(), Some("Ann Lee"));
        let u = user_of(&json!({"id": "z1", "email": "a@x", "display_name": "Ann L."})).unwrap();
        assert_eq!(u.name.as_deref(), Some("Ann L."));
        assert_eq!(
            user_of(&json!({"id": "z1", "email": "a@x"})).unwrap().name,
            None
        );
        assert!(user_of(&json!({"email": "a@x"})).is_none());
    }
}
