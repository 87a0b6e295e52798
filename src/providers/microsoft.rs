//! Microsoft 365 through Graph, app-only: a tenant's admin consents once (the
//! `adminconsent` page), then the operator's app takes client-credentials tokens for that
//! tenant and reads its organization, users and calendars.

use serde_json::Value;

use super::{bearer, code_and_description, exchange, form, join, AccessToken, ProviderError};
use crate::outbound;
use crate::secrets::Secret;

/// App-only tokens carry the permissions consented for the app: Graph takes no other scope.
const GRAPH_DEFAULT_SCOPE: &str = "https://graph.microsoft.com/.default";

/// The Microsoft connector: the operator's app registration and the two base URLs.
#[derive(Debug, Clone)]
pub struct Microsoft {
    client: outbound::Client,
    client_id: String,
    client_secret: Secret,
    login_url: String,
    graph_url: String,
}

/// A tenant as `GET /v1.0/organization` describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Organization {
    pub id: String,
    pub display_name: Option<String>,
    pub domains: Vec<String>,
}

/// A user as `GET /v1.0/users/{id}` describes them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GraphUser {
    pub id: String,
    pub user_principal_name: String,
    pub mail: Option<String>,
    pub display_name: Option<String>,
}

fn text(json: &Value, name: &str) -> Option<String> {
    json.get(name).and_then(Value::as_str).map(str::to_string)
}

impl Microsoft {
    pub fn new(
        client: outbound::Client,
        client_id: &str,
        client_secret: Secret,
        login_url: &str,
        graph_url: &str,
    ) -> Self {
        Self {
            client,
            client_id: client_id.to_string(),
            client_secret,
            login_url: login_url.trim_end_matches('/').to_string(),
            graph_url: graph_url.trim_end_matches('/').to_string(),
        }
    }

    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// {login}/organizations/v2.0/adminconsent?client_id&redirect_uri&state&scope=https://graph.microsoft.com/.default (properly encoded)
    pub fn admin_consent_url(&self, redirect_uri: &str, state: &str) -> String {
        let query = form(&[
            ("client_id", &self.client_id),
            ("redirect_uri", redirect_uri),
            ("state", state),
            ("scope", GRAPH_DEFAULT_SCOPE),
        ]);
        format!("{}/organizations/v2.0/adminconsent?{query}", self.login_url)
    }

    /// POST {login}/{tenant}/oauth2/v2.0/token form client_id, client_secret, scope=https://graph.microsoft.com/.default, grant_type=client_credentials
    pub async fn token(&self, tenant: &str) -> Result<AccessToken, ProviderError> {
        const WHAT: &str = "Microsoft token endpoint";
        // The tenant comes back from the consent redirect, i.e. from a browser: only a GUID
        // or a domain name may become a path segment.
        let plausible = !tenant.is_empty()
            && tenant.len() <= 256
            && !tenant.starts_with('.')
            && tenant
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.');
        if !plausible {
            return Err(ProviderError::Refused(format!(
                "{WHAT}: {tenant:?} is not a tenant id"
            )));
        }
        let url = join(&self.login_url, &[tenant, "oauth2", "v2.0", "token"])?;
        let request = self
            .client
            .post(url)
            .header("content-type", "application/x-www-form-urlencoded")
            .header("accept", "application/json")
            .body(form(&[
                ("client_id", &self.client_id),
                ("client_secret", self.client_secret.expose()),
                ("scope", GRAPH_DEFAULT_SCOPE),
                ("grant_type", "client_credentials"),
            ]));
        let answer = exchange(WHAT, request).await?;
        let json = answer.json().unwrap_or(Value::Null);
        if answer.status == 200 {
            let expires_in = json
                .get("expires_in")
                .and_then(|v| v.as_i64().or_else(|| v.as_str()?.parse().ok()))
                .unwrap_or(3600);
            return match text(&json, "access_token") {
                Some(t) if !t.is_empty() => Ok(AccessToken::new(t, expires_in)),
                _ => Err(ProviderError::Refused(format!(
                    "{WHAT}: 200 without an access_token"
                ))),
            };
        }
        // AADSTS bodies: {"error", "error_description" (first line: "AADSTS…: …", then trace
        // ids), "error_codes": […]}.
        let message = format!(
            "{WHAT}: {} {}",
            answer.status,
            code_and_description(
                json.get("error").and_then(Value::as_str),
                json.get("error_description").and_then(Value::as_str)
            )
        );
        if answer.is_transient() {
            Err(answer.unavailable(message))
        } else {
            Err(ProviderError::Refused(message))
        }
    }

    /// GET {graph}/v1.0/organization → first of value[]: id, displayName, verifiedDomains[].name
    pub async fn organization(&self, token: &str) -> Result<Organization, ProviderError> {
        const WHAT: &str = "Microsoft Graph organization";
        let url = join(&self.graph_url, &["v1.0", "organization"])?;
        let (status, json) = self.graph_get(WHAT, token, url).await?;
        if status != 200 {
            return Err(ProviderError::Refused(format!(
                "{WHAT}: {status} {}",
                graph_error(&json).1
            )));
        }
        json.get("value")
            .and_then(|v| v.get(0))
            .and_then(|org| {
                Some(Organization {
                    id: text(org, "id")?,
                    display_name: text(org, "displayName"),
                    domains: org
                        .get("verifiedDomains")
                        .and_then(Value::as_array)
                        .map(|ds| ds.iter().filter_map(|d| text(d, "name")).collect())
                        .unwrap_or_default(),
                })
            })
            .ok_or_else(|| ProviderError::Refused(format!("{WHAT}: no organization in the answer")))
    }

    /// GET {graph}/v1.0/users/{email}: 404 → Ok(None); then GET {graph}/v1.0/users/{id}/calendar?$select=id:
    /// a mailbox error (MailboxNotEnabledForRESTAPI and the like) → Ok(None): "not here", never retried.
    pub async fn user(&self, token: &str, email: &str) -> Result<Option<GraphUser>, ProviderError> {
        const WHAT: &str = "Microsoft Graph user";
        if !email.contains('@') {
            return Err(ProviderError::Refused(format!(
                "{WHAT}: {email:?} is not an email address"
            )));
        }
        let url = join(&self.graph_url, &["v1.0", "users", email])?;
        let (status, json) = self.graph_get(WHAT, token, url).await?;
        match status {
            200 => {}
            // Request_ResourceNotFound: no such user in this tenant.
            404 => return Ok(None),
            _ => {
                return Err(ProviderError::Refused(format!(
                    "{WHAT}: {status} {}",
                    graph_error(&json).1
                )))
            }
        }
        let user = (|| {
            Some(GraphUser {
                id: text(&json, "id")?,
                user_principal_name: text(&json, "userPrincipalName")?,
                mail: text(&json, "mail"),
                display_name: text(&json, "displayName"),
            })
        })()
        .ok_or_else(|| {
            ProviderError::Refused(format!("{WHAT}: a user without id or userPrincipalName"))
        })?;

        const CALENDAR: &str = "Microsoft Graph calendar";
        let mut url = join(&self.graph_url, &["v1.0", "users", &user.id, "calendar"])?;
        // Literal `$select`: Graph's documented spelling.
        url.set_query(Some("$select=id"));
        let (status, json) = self.graph_get(CALENDAR, token, url).await?;
        if status == 200 {
            return Ok(Some(user));
        }
        let (code, message) = graph_error(&json);
        // No Exchange Online mailbox (unlicensed, on-premises, soft-deleted): this account
        // cannot hold their calendar, another might.
        if (400..500).contains(&status) && code.to_ascii_lowercase().contains("mailbox") {
            return Ok(None);
        }
        Err(ProviderError::Refused(format!(
            "{CALENDAR}: {status} {message}"
        )))
    }

    /// A Graph GET: 401, 403, 429 and 5xx become errors here; other statuses come back
    /// with the JSON body for the caller to judge.
    async fn graph_get(
        &self,
        what: &str,
        token: &str,
        url: outbound::Url,
    ) -> Result<(u16, Value), ProviderError> {
        let request = self
            .client
            .get(url)
            .header("authorization", bearer(token))
            .header("accept", "application/json");
        let answer = exchange(what, request).await?;
        let json = answer.json().unwrap_or(Value::Null);
        let fail = |message: &str| format!("{what}: {} {message}", answer.status);
        match answer.status {
            401 => Err(ProviderError::Unauthorized(fail(&graph_error(&json).1))),
            403 => Err(ProviderError::Refused(fail(&graph_error(&json).1))),
            _ if answer.is_transient() => Err(answer.unavailable(fail(&graph_error(&json).1))),
            status => Ok((status, json)),
        }
    }
}

/// Graph's `{"error": {"code", "message"}}`: the code alone, and `code: message`.
fn graph_error(json: &Value) -> (String, String) {
    let error = json.get("error");
    let code = error.and_then(|e| e.get("code")).and_then(Value::as_str);
    let message = error.and_then(|e| e.get("message")).and_then(Value::as_str);
    (
        code.unwrap_or("").to_string(),
        code_and_description(code, message),
    )
}

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn the_admin_consent_url_is_encoded() {
        let client = outbound::client(&outbound::Settings {
            timeout: std::time::Duration::from_secs(1),
            allow_private: true,
        })
        .unwrap();
        let ms = Microsoft::new(
            client,
            "app id",
            Secret::new("s".into()),
            "https://login.example/",
            "https://graph.example",
        );
        let url = ms.admin_consent_url("https://gw.example/cb?x=1&y=2", "st&ate");
        assert_eq!(
            url,
            "https://login.example/organizations/v2.0/adminconsent?client_id=app+id\
             &redirect_uri=https%3A%2F%2Fgw.example%2Fcb%3Fx%3D1%26y%3D2&state=st%26ate\
             &scope=https%3A%2F%2Fgraph.microsoft.com%2F.default"
        );
        let parsed = outbound::Url::parse(&url).unwrap();
        let pairs: Vec<(String, String)> = parsed.query_pairs().into_owned().collect();
        assert_eq!(pairs[1].1, "https://gw.example/cb?x=1&y=2");
        assert_eq!(pairs[3].1, GRAPH_DEFAULT_SCOPE);
    }

    #[test]
    fn graph_errors_read_code_and_message() {
        let json = serde_json::json!({"error": {"code": "MailboxNotEnabledForRESTAPI", "message": "The mailbox is either inactive, soft-deleted, or is hosted on-premise."}});
        let (code, message) = graph_error(&json);
        assert_eq!(code, "MailboxNotEnabledForRESTAPI");
        assert!(message.starts_with("MailboxNotEnabledForRESTAPI: The mailbox"));
        assert_eq!(graph_error(&Value::Null).1, "no error description");
    }
}
