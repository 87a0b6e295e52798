//! Webex through an integration: an organization's admin authorizes the operator's
//! integration (authorization code, refresh tokens that last 90 days), then the gateway
//! looks people up by email in that organization.

use serde_json::Value;

use super::conferencing::{ConferencingAccount, ConferencingUser};
use super::oauth_client::{ClientAuth, OAuthClient, OAuthTokens};
use super::{bearer, code_and_description, detail, exchange, join, ProviderError};
use crate::outbound;
use crate::secrets::Secret;

/// What the integration asks for: reading people (`spark:kms` comes with every
/// integration that touches content).
pub const WEBEX_SCOPES: &str = "spark:people_read spark:kms";

/// The Webex connector: the operator's integration and the API base URL.
#[derive(Debug, Clone)]
pub struct Webex {
    oauth: OAuthClient,
    client: outbound::Client,
    api_url: String,
}

impl Webex {
    /// `api_url` is `https://webexapis.com` (or a fake's): it serves the authorize page,
    /// the token endpoint and the API alike.
    pub fn new(
        client: outbound::Client,
        client_id: &str,
        client_secret: Secret,
        api_url: &str,
    ) -> Self {
        let api_url = api_url.trim_end_matches('/');
        Self {
            oauth: OAuthClient::new(
                client.clone(),
                "Webex",
                client_id,
                client_secret,
                &format!("{api_url}/v1/authorize"),
                &format!("{api_url}/v1/access_token"),
                ClientAuth::Form,
            )
            .with_scope(WEBEX_SCOPES),
            client,
            api_url: api_url.to_string(),
        }
    }

    pub fn client_id(&self) -> &str {
        self.oauth.client_id()
    }

    /// `{api}/v1/authorize?response_type=code&client_id&redirect_uri&state&scope`.
    pub fn authorize_url(&self, redirect_uri: &str, state: &str) -> String {
        self.oauth.authorize_url(redirect_uri, state)
    }

    /// `POST {api}/v1/access_token` (form, client credentials in the body).
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

    /// `GET {api}/v1/people?email=…`: the first item, `None` when `items` is empty (not
    /// in the token's organization).
    pub async fn user(
        &self,
        token: &str,
        email: &str,
    ) -> Result<Option<ConferencingUser>, ProviderError> {
        const WHAT: &str = "Webex people";
        if !email.contains('@') {
            return Err(ProviderError::Refused(format!(
                "{WHAT}: {email:?} is not an email address"
            )));
        }
        let mut url = join(&self.api_url, &["v1", "people"])?;
        url.query_pairs_mut().append_pair("email", email);
        let json = self.get(WHAT, token, url).await?;
        let Some(items) = json.get("items").and_then(Value::as_array) else {
            return Err(ProviderError::Refused(format!(
                "{WHAT}: an answer without items"
            )));
        };
        match items.first() {
            None => Ok(None),
            Some(person) => person_of(person).map(Some).ok_or_else(|| {
                ProviderError::Refused(format!("{WHAT}: a person without id or emails"))
            }),
        }
    }

    /// `GET {api}/v1/people/me`: the admin who authorized, and their organization.
    pub async fn me(&self, token: &str) -> Result<ConferencingAccount, ProviderError> {
        const WHAT: &str = "Webex people me";
        let url = join(&self.api_url, &["v1", "people", "me"])?;
        let json = self.get(WHAT, token, url).await?;
        let org = json.get("orgId").and_then(Value::as_str);
        match (org, person_of(&json)) {
            (Some(org), Some(admin)) => Ok(ConferencingAccount {
                account_id: org.to_string(),
                admin,
            }),
            _ => Err(ProviderError::Refused(format!(
                "{WHAT}: a person without id, emails or orgId"
            ))),
        }
    }

    /// A GET whose only good answer is 200 with JSON.
    async fn get(
        &self,
        what: &str,
        token: &str,
        url: outbound::Url,
    ) -> Result<Value, ProviderError> {
        let request = self
            .client
            .get(url)
            .header("authorization", bearer(token))
            .header("accept", "application/json");
        let answer = exchange(what, request).await?;
        let json = answer.json().unwrap_or(Value::Null);
        if answer.status == 200 {
            return Ok(json);
        }
        let message = format!("{what}: {} {}", answer.status, webex_error(&json));
        match answer.status {
            401 => Err(ProviderError::Unauthorized(message)),
            _ if answer.is_transient() => Err(answer.unavailable(message)),
            _ => Err(ProviderError::Refused(message)),
        }
    }
}

/// Webex's `{"message", "errors": [{"description"}], "trackingId"}`, with the tracking
/// id Cisco's support asks for.
fn webex_error(json: &Value) -> String {
    let message = json.get("message").and_then(Value::as_str).or_else(|| {
        json.get("errors")
            .and_then(|e| e.get(0))
            .and_then(|e| e.get("description"))
            .and_then(Value::as_str)
    });
    let mut text = code_and_description(None, message);
    if let Some(tracking) = json.get("trackingId").and_then(Value::as_str) {
        text.push_str(&format!(" (trackingId {})", detail(tracking)));
    }
    text
}

/// id, the first of `emails`, `displayName` (else first and last names).
fn person_of(json: &Value) -> Option<ConferencingUser> {
    let text = |name: &str| {
        json.get(name)
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_string)
    };
    let email = json
        .get("emails")
        .and_then(|e| e.get(0))
        .and_then(Value::as_str)
        .filter(|e| !e.is_empty())?;
    let name = text("displayName").or_else(|| {
        let full = [text("firstName"), text("lastName")]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(" ");
        Some(full).filter(|f| !f.is_empty())
    });
    Some(ConferencingUser {
        id: text("id")?,
        email: email.to_string(),
        name,
    })
}

#[cfg(test)]
mod unit {
    use super::*;
    use serde_json::json;

    #[test]
    fn people_and_errors_read_webexs_shapes() {
        let p = person_of(
            &json!({"id": "Y2", "emails": ["a@x", "b@x"], "firstName": "Ann", "lastName": "Lee"}),
        )
        .unwrap();
        assert_eq!(
            (p.email.as_str(), p.name.as_deref()),
            ("a@x", Some("Ann Lee"))
        );
        assert!(person_of(&json!({"id": "Y2", "emails": []})).is_none());
        assert_eq!(
            webex_error(
                &json!({"message": "Too Many Requests", "errors": [{"description": "x"}], "trackingId": "ROUTER_1"})
            ),
            "Too Many Requests (trackingId ROUTER_1)"
        );
        assert_eq!(webex_error(&Value::Null), "no error description");
    }
}
