//! Indeed (and any provider like it): a generic OAuth 2 authorization-code provider whose
//! authorize URL, token URL and lookup URL are configuration. The lookup URL is a
//! template with `{email}`, answering the person's JSON (`id` or `user_id`, `email`,
//! `name`) or 404.

use std::fmt::Write as _;

use serde_json::Value;

use super::conferencing::ConferencingUser;
use super::oauth_client::{ClientAuth, OAuthClient, OAuthTokens};
use super::{bearer, code_and_description, exchange, ProviderError};
use crate::outbound;
use crate::secrets::Secret;

/// What the lookup URL template must contain.
pub const EMAIL_PLACEHOLDER: &str = "{email}";

/// The generic connector: the operator's client and the three configured URLs.
#[derive(Debug, Clone)]
pub struct Indeed {
    oauth: OAuthClient,
    client: outbound::Client,
    lookup_url: String,
}

impl Indeed {
    pub fn new(
        client: outbound::Client,
        client_id: &str,
        client_secret: Secret,
        authorize_url: &str,
        token_url: &str,
        lookup_url: &str,
    ) -> Self {
        Self {
            oauth: OAuthClient::new(
                client.clone(),
                "Indeed",
                client_id,
                client_secret,
                authorize_url,
                token_url,
                ClientAuth::Form,
            ),
            client,
            lookup_url: lookup_url.to_string(),
        }
    }

    /// Asks for `scope` at the authorize URL (none by default).
    pub fn with_scope(mut self, scope: &str) -> Self {
        self.oauth = self.oauth.with_scope(scope);
        self
    }

    pub fn client_id(&self) -> &str {
        self.oauth.client_id()
    }

    pub fn authorize_url(&self, redirect_uri: &str, state: &str) -> String {
        self.oauth.authorize_url(redirect_uri, state)
    }

    /// The token URL, form body with the client credentials.
    pub async fn exchange_code(
        &self,
        code: &str,
        redirect_uri: &str,
    ) -> Result<OAuthTokens, ProviderError> {
        self.oauth.exchange_code(code, redirect_uri).await
    }

    pub async fn refresh(&self, refresh_token: &str) -> Result<OAuthTokens, ProviderError> {
        self.oauth.refresh(refresh_token).await
    }

    /// GET the lookup URL (`{email}` percent-encoded) with the bearer token: 200 → the
    /// person, 404 → `None`.
    pub async fn user(
        &self,
        token: &str,
        email: &str,
    ) -> Result<Option<ConferencingUser>, ProviderError> {
        const WHAT: &str = "Indeed user lookup";
        if !email.contains('@') {
            return Err(ProviderError::Refused(format!(
                "{WHAT}: {email:?} is not an email address"
            )));
        }
        let url = lookup_url(&self.lookup_url, email)
            .map_err(|e| ProviderError::Refused(format!("{WHAT}: {e}")))?;
        let request = self
            .client
            .get(url)
            .header("authorization", bearer(token))
            .header("accept", "application/json");
        let answer = exchange(WHAT, request).await?;
        let json = answer.json().unwrap_or(Value::Null);
        match answer.status {
            200 => {
                return user_of(&json, email).map(Some).ok_or_else(|| {
                    ProviderError::Refused(format!("{WHAT}: a user without id or user_id"))
                })
            }
            404 => return Ok(None),
            _ => {}
        }
        let text = |name: &str| json.get(name).and_then(Value::as_str);
        let message = format!(
            "{WHAT}: {} {}",
            answer.status,
            code_and_description(
                text("error"),
                text("error_description").or_else(|| text("message"))
            )
        );
        match answer.status {
            401 => Err(ProviderError::Unauthorized(message)),
            _ if answer.is_transient() => Err(answer.unavailable(message)),
            _ => Err(ProviderError::Refused(message)),
        }
    }
}

/// The template with `{email}` replaced by the percent-encoded address (safe in a path
/// segment and in a query alike).
pub fn lookup_url(template: &str, email: &str) -> Result<outbound::Url, String> {
    if !template.contains(EMAIL_PLACEHOLDER) {
        return Err(format!(
            "the configured lookup URL has no {EMAIL_PLACEHOLDER}"
        ));
    }
    let mut encoded = String::with_capacity(email.len() * 3);
    for b in email.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            encoded.push(char::from(b));
        } else {
            let _ = write!(encoded, "%{b:02X}");
        }
    }
    outbound::Url::parse(&template.replace(EMAIL_PLACEHOLDER, &encoded))
        .map_err(|e| format!("the configured lookup URL is not valid: {e}"))
}

/// id (`id` or `user_id`, string or number), email (else the one asked for), name.
fn user_of(json: &Value, asked: &str) -> Option<ConferencingUser> {
    let text = |name: &str| match json.get(name)? {
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    };
    Some(ConferencingUser {
        id: text("id").or_else(|| text("user_id"))?,
        email: text("email").unwrap_or_else(|| asked.to_string()),
        name: text("name"),
    })
}

#[cfg(test)]
mod unit {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_lookup_url_encodes_the_email() {
        let url = lookup_url(
            "https://i.example/api/users/{email}?v=1",
            "a+b c/d@x.example",
        )
        .unwrap();
        assert_eq!(
            url.as_str(),
            "https://i.example/api/users/a%2Bb%20c%2Fd%40x.example?v=1"
        );
        let url = lookup_url("https://i.example/lookup?email={email}", "a&b@x").unwrap();
        let pairs: Vec<(String, String)> = url.query_pairs().into_owned().collect();
        assert_eq!(pairs, [("email".to_string(), "a&b@x".to_string())]);
        assert!(lookup_url("https://i.example/users", "a@x").is_err());
        assert!(lookup_url("not a url/{email}", "a@x").is_err());
    }

    #[test]
    fn ids_come_from_id_or_user_id() {
        let u = user_of(&json!({"user_id": 42, "name": "Ann"}), "a@x").unwrap();
        assert_eq!(
            u,
            ConferencingUser {
                id: "42".into(),
                email: "a@x".into(),
                name: Some("Ann".into())
            }
        );
        let u = user_of(&json!({"id": "i1", "user_id": "i2", "email": "b@x"}), "a@x").unwrap();
        assert_eq!((u.id.as_str(), u.email.as_str()), ("i1", "b@x"));
        assert!(user_of(&json!({"email": "b@x"}), "a@x").is_none());
    }
}
