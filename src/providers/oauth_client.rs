//! What the conferencing providers share: an OAuth 2 authorization-code client (RFC 6749
//! §4.1 and §6) for the operator's app, with the provider's own way of authenticating
//! the client at its token endpoint.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde_json::Value;

use super::{code_and_description, detail, exchange, form, ProviderError};
use crate::outbound;
use crate::secrets::Secret;

/// What a token endpoint granted.
#[derive(Debug, Clone)]
pub struct OAuthTokens {
    pub access_token: Secret,
    /// The refresh token to keep: the new one when the provider rotated it (Zoom's are
    /// single use), else the one just used (on a refresh), else none.
    pub refresh_token: Option<Secret>,
    pub expires_at: chrono::DateTime<chrono::Utc>,
    /// The scopes granted, as the provider spelled them.
    pub scope: Option<String>,
}

/// How the client proves itself at the token endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    /// `Authorization: Basic base64(client_id:client_secret)` (Zoom).
    Basic,
    /// `client_id` and `client_secret` in the form body (Webex, most others).
    Form,
}

/// The lifetime assumed when a token response gives none.
const DEFAULT_EXPIRES_IN: i64 = 3600;

/// One provider's OAuth 2 client: the operator's app registration and the provider's
/// two endpoints.
#[derive(Debug, Clone)]
pub struct OAuthClient {
    client: outbound::Client,
    /// For messages: "Zoom", "Webex", "Indeed".
    provider: &'static str,
    client_id: String,
    client_secret: Secret,
    authorize_url: String,
    token_url: String,
    scope: Option<String>,
    auth: ClientAuth,
}

impl OAuthClient {
    pub fn new(
        client: outbound::Client,
        provider: &'static str,
        client_id: &str,
        client_secret: Secret,
        authorize_url: &str,
        token_url: &str,
        auth: ClientAuth,
    ) -> Self {
        Self {
            client,
            provider,
            client_id: client_id.to_string(),
            client_secret,
            authorize_url: authorize_url.to_string(),
            token_url: token_url.to_string(),
            scope: None,
            auth,
        }
    }

    /// The scope the authorize URL asks for (space-separated).
    pub fn with_scope(mut self, scope: &str) -> Self {
        self.scope = Some(scope.to_string()).filter(|s| !s.is_empty());
        self
    }

    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// `{authorize}?response_type=code&client_id&redirect_uri&state[&scope]`, encoded; a
    /// configured URL that has a query keeps it.
    pub fn authorize_url(&self, redirect_uri: &str, state: &str) -> String {
        let mut pairs = vec![
            ("response_type", "code"),
            ("client_id", self.client_id.as_str()),
            ("redirect_uri", redirect_uri),
            ("state", state),
        ];
        if let Some(scope) = &self.scope {
            pairs.push(("scope", scope.as_str()));
        }
        let query = form(&pairs);
        let base = self.authorize_url.trim_end_matches(['?', '&']);
        let joint = if base.contains('?') { '&' } else { '?' };
        format!("{base}{joint}{query}")
    }

    /// Redeems an authorization code (`grant_type=authorization_code`, with the same
    /// `redirect_uri` as the authorize request).
    pub async fn exchange_code(
        &self,
        code: &str,
        redirect_uri: &str,
    ) -> Result<OAuthTokens, ProviderError> {
        self.grant(
            &[
                ("grant_type", "authorization_code"),
                ("code", code),
                ("redirect_uri", redirect_uri),
            ],
            None,
        )
        .await
    }

    /// A new access token for a refresh token (`grant_type=refresh_token`). The answer's
    /// `refresh_token` is the one to keep: the rotated one, or `refresh_token` itself
    /// when the provider returned none.
    pub async fn refresh(&self, refresh_token: &str) -> Result<OAuthTokens, ProviderError> {
        self.grant(
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", refresh_token),
            ],
            Some(refresh_token),
        )
        .await
    }

    async fn grant(
        &self,
        params: &[(&str, &str)],
        used_refresh_token: Option<&str>,
    ) -> Result<OAuthTokens, ProviderError> {
        let what = format!("{} token endpoint", self.provider);
        let url = outbound::Url::parse(&self.token_url).map_err(|e| {
            ProviderError::Refused(format!("{what}: configured URL is not valid: {e}"))
        })?;
        let mut pairs = params.to_vec();
        let mut request = self
            .client
            .post(url)
            .header("content-type", "application/x-www-form-urlencoded")
            .header("accept", "application/json");
        match self.auth {
            ClientAuth::Basic => {
                let credentials = format!("{}:{}", self.client_id, self.client_secret.expose());
                request = request.header(
                    "authorization",
                    format!("Basic {}", STANDARD.encode(credentials)),
                );
            }
            ClientAuth::Form => {
                pairs.push(("client_id", self.client_id.as_str()));
                pairs.push(("client_secret", self.client_secret.expose()));
            }
        }
        let answer = exchange(&what, request.body(form(&pairs))).await?;
        let json = answer.json().unwrap_or(Value::Null);
        if answer.status == 200 {
            return tokens(&json, used_refresh_token).ok_or_else(|| {
                ProviderError::Refused(format!("{what}: 200 without an access_token"))
            });
        }
        let message = format!("{what}: {} {}", answer.status, token_error(&json));
        if answer.is_transient() {
            Err(answer.unavailable(message))
        } else {
            // 400 invalid_grant (a used code, a spent refresh token), 401 invalid_client,
            // 403 …: no retry fixes them.
            Err(ProviderError::Refused(message))
        }
    }
}

/// A successful token response; `None` without an access token.
fn tokens(json: &Value, used_refresh_token: Option<&str>) -> Option<OAuthTokens> {
    let text = |name: &str| {
        json.get(name)
            .and_then(Value::as_str)
            .filter(|v| !v.is_empty())
            .map(str::to_string)
    };
    let access_token = text("access_token")?;
    let expires_in = json
        .get("expires_in")
        .and_then(|v| v.as_i64().or_else(|| v.as_str()?.trim().parse().ok()))
        .unwrap_or(DEFAULT_EXPIRES_IN)
        .max(0);
    let refresh_token = text("refresh_token").or_else(|| used_refresh_token.map(str::to_string));
    Some(OAuthTokens {
        access_token: Secret::new(access_token),
        refresh_token: refresh_token.map(Secret::new),
        expires_at: chrono::Utc::now() + chrono::Duration::seconds(expires_in),
        scope: text("scope"),
    })
}

/// The error of a token response, whichever shape the provider uses: RFC 6749's
/// `{"error", "error_description"}`, Zoom's `{"error", "reason"}`, Webex's
/// `{"message", "errors": [{"description"}], "trackingId"}`.
fn token_error(json: &Value) -> String {
    fn text(v: Option<&Value>) -> Option<&str> {
        v.and_then(Value::as_str).filter(|s| !s.is_empty())
    }
    let code = text(json.get("error"));
    let description = text(json.get("error_description"))
        .or_else(|| text(json.get("reason")))
        .or_else(|| text(json.get("message")))
        .or_else(|| {
            text(
                json.get("errors")
                    .and_then(|e| e.get(0))
                    .and_then(|e| e.get("description")),
            )
        });
    let mut message = code_and_description(code, description);
    if let Some(tracking) = text(json.get("trackingId")) {
        message.push_str(&format!(" (trackingId {})", detail(tracking)));
    }
    message
}

#[cfg(test)]
mod unit {
    use super::*;
    use serde_json::json;

    fn oauth(authorize_url: &str) -> OAuthClient {
        let client = outbound::client(&outbound::Settings {
            timeout: std::time::Duration::from_secs(1),
            allow_private: true,
        })
        .unwrap();
        OAuthClient::new(
            client,
            "Test",
            "app id",
            Secret::new("s".into()),
            authorize_url,
            "https://p.example/token",
            ClientAuth::Form,
        )
    }

    #[test]
    fn authorize_urls_are_encoded_and_keep_a_configured_query() {
        let url = oauth("https://p.example/authorize")
            .authorize_url("https://gw.example/cb?x=1&y=2", "st&ate");
        assert_eq!(
            url,
            "https://p.example/authorize?response_type=code&client_id=app+id\
             &redirect_uri=https%3A%2F%2Fgw.example%2Fcb%3Fx%3D1%26y%3D2&state=st%26ate"
        );
        let url = oauth("https://p.example/authorize?audience=x")
            .with_scope("a:b c")
            .authorize_url("https://gw.example/cb", "s");
        let parsed = outbound::Url::parse(&url).unwrap();
        let pairs: Vec<(String, String)> = parsed.query_pairs().into_owned().collect();
        assert_eq!(pairs[0], ("audience".into(), "x".into()));
        assert_eq!(pairs.last().unwrap(), &("scope".into(), "a:b c".into()));
    }

    #[test]
    fn token_responses_keep_the_refresh_token_to_use_next() {
        let t = tokens(
            &json!({"access_token": "a", "refresh_token": "new", "expires_in": "120", "scope": "x y"}),
            Some("old"),
        )
        .unwrap();
        assert_eq!(t.refresh_token.unwrap().expose(), "new");
        assert_eq!(t.scope.as_deref(), Some("x y"));
        let left = t.expires_at - chrono::Utc::now();
        assert!(left <= chrono::Duration::seconds(120) && left > chrono::Duration::seconds(110));
        let t = tokens(&json!({"access_token": "a"}), Some("old")).unwrap();
        assert_eq!(t.refresh_token.unwrap().expose(), "old");
        assert!(t.expires_at > chrono::Utc::now() + chrono::Duration::minutes(59));
        assert!(tokens(&json!({"access_token": "a"}), None)
            .unwrap()
            .refresh_token
            .is_none());
        assert!(tokens(&json!({"access_token": ""}), None).is_none());
    }

    #[test]
    fn token_errors_read_every_providers_shape() {
        assert_eq!(
            token_error(&json!({"reason": "Invalid Token!", "error": "invalid_grant"})),
            "invalid_grant: Invalid Token!"
        );
        assert_eq!(
            token_error(&json!({"error": "invalid_client", "error_description": "bad"})),
            "invalid_client: bad"
        );
        assert_eq!(
            token_error(
                &json!({"message": "Bad client", "errors": [{"description": "Bad client"}], "trackingId": "T1"})
            ),
            "Bad client (trackingId T1)"
        );
        assert_eq!(token_error(&json!({"errors": [{"description": "d"}]})), "d");
        assert_eq!(token_error(&Value::Null), "no error description");
    }
}
