//! What clients send the authorization server, parsed: the token request (RFC 6749 §4.1.3,
//! §6; JSON or form bodies, as Cronofy accepts both) and the authorize request (§4.1.1).
//! Input arrives as a flat map of strings, whatever its encoding.

use std::collections::HashMap;

use super::{ErrorCode, OAuthError};

/// A grant asked for at the token endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Grant {
    AuthorizationCode { code: String, redirect_uri: String },
    RefreshToken { refresh_token: String },
}

/// `POST /oauth/token`: client credentials in the body (never `Authorization`: Cronofy's
/// SDKs send `Bearer None` there) and the grant. Extra fields are ignored (the Node SDK
/// sends a `refresh_token` beside an authorization code).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRequest {
    pub client_id: String,
    pub client_secret: String,
    pub grant: Grant,
}

/// A field that is present and not blank.
fn field<'a>(fields: &'a HashMap<String, String>, name: &str) -> Option<&'a str> {
    fields.get(name).map(|v| v.trim()).filter(|v| !v.is_empty())
}

fn required<'a>(fields: &'a HashMap<String, String>, name: &str) -> Result<&'a str, OAuthError> {
    field(fields, name).ok_or_else(|| OAuthError::invalid_request(format!("{name} is required")))
}

/// The client's credentials alone, checked before anything else (a request that fails
/// them never touches a code or token).
pub fn client_credentials(
    fields: &HashMap<String, String>,
) -> Result<(String, String), OAuthError> {
    match (field(fields, "client_id"), field(fields, "client_secret")) {
        (Some(id), Some(secret)) => Ok((id.to_string(), secret.to_string())),
        _ => Err(OAuthError::invalid_client(
            "client_id and client_secret are required in the body",
        )),
    }
}

impl TokenRequest {
    pub fn parse(fields: &HashMap<String, String>) -> Result<Self, OAuthError> {
        let (client_id, client_secret) = client_credentials(fields)?;
        let grant = match required(fields, "grant_type")? {
            "authorization_code" => Grant::AuthorizationCode {
                code: required(fields, "code")?.to_string(),
                redirect_uri: required(fields, "redirect_uri")?.to_string(),
            },
            "refresh_token" => Grant::RefreshToken {
                refresh_token: required(fields, "refresh_token")?.to_string(),
            },
            other => {
                return Err(OAuthError::new(
                    ErrorCode::UnsupportedGrantType,
                    format!(
                        "grant_type {other:?} is not supported (authorization_code, refresh_token)"
                    ),
                ))
            }
        };
        Ok(Self {
            client_id,
            client_secret,
            grant,
        })
    }
}

/// What revocation targets (`POST /oauth/token/revoke`): a token (access or refresh; it
/// takes priority) or everything of a subject (`ser_…`, `acc_…`, `ou_…`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RevokeTarget {
    Token(String),
    Subject(String),
}

pub fn revoke_target(fields: &HashMap<String, String>) -> Result<RevokeTarget, OAuthError> {
    // The npm SDK's `revokeAuthorization()` without arguments sends its refresh token as
    // `refresh_token`: revoking that is what it means.
    if let Some(t) = field(fields, "token").or_else(|| field(fields, "refresh_token")) {
        return Ok(RevokeTarget::Token(t.to_string()));
    }
    if let Some(s) = field(fields, "sub") {
        return Ok(RevokeTarget::Subject(s.to_string()));
    }
    Err(OAuthError::invalid_request("token or sub is required"))
}

/// `GET …/oauth/authorize`, after the client and its redirect URI were recognised
/// (refusing those is a page, never a redirect; the rest is said at the redirect URI).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AuthorizeRequest {
    pub redirect_uri: String,
    pub scope: String,
    #[serde(default)]
    pub delegated_scope: String,
    pub state: Option<String>,
    /// A provider asked for; blank (pycronofy sends `provider_name=`) means none.
    pub provider_name: Option<String>,
}

/// Longest `state` echoed back (it travels in a URL).
pub const MAX_STATE_CHARS: usize = 2048;
/// Longest `scope` (or `delegated_scope`) accepted.
pub const MAX_SCOPE_CHARS: usize = 1024;

impl AuthorizeRequest {
    /// Checks `response_type`, `scope` (and `delegated_scope` when `needs_delegated`).
    pub fn parse(
        query: &HashMap<String, String>,
        redirect_uri: &str,
        needs_delegated: bool,
    ) -> Result<Self, OAuthError> {
        let state = query.get("state").filter(|s| !s.is_empty()).cloned();
        if state
            .as_ref()
            .is_some_and(|s| s.chars().count() > MAX_STATE_CHARS)
        {
            return Err(OAuthError::invalid_request(format!(
                "state is longer than {MAX_STATE_CHARS} characters"
            )));
        }
        match field(query, "response_type") {
            Some("code") => {}
            Some(_) => {
                return Err(OAuthError::new(
                    ErrorCode::UnsupportedResponseType,
                    "response_type must be code",
                ))
            }
            None => return Err(OAuthError::invalid_request("response_type is required")),
        }
        let scope = field(query, "scope")
            .ok_or_else(|| OAuthError::new(ErrorCode::InvalidScope, "scope is required"))?;
        let delegated_scope = field(query, "delegated_scope").unwrap_or_default();
        if scope.chars().count() > MAX_SCOPE_CHARS
            || delegated_scope.chars().count() > MAX_SCOPE_CHARS
        {
            return Err(OAuthError::new(
                ErrorCode::InvalidScope,
                format!("scopes are limited to {MAX_SCOPE_CHARS} characters"),
            ));
        }
        if needs_delegated && delegated_scope.is_empty() {
            return Err(OAuthError::new(
                ErrorCode::InvalidScope,
                "delegated_scope is required",
            ));
        }
        Ok(Self {
            redirect_uri: redirect_uri.to_string(),
            scope: normalize_scope(scope),
            delegated_scope: normalize_scope(delegated_scope),
            state,
            provider_name: field(query, "provider_name").map(str::to_string),
        })
    }
}

/// Scopes as one space-separated string without repeats, in the order given.
pub fn normalize_scope(scope: &str) -> String {
    let mut seen: Vec<&str> = Vec::new();
    for s in scope.split_whitespace() {
        if !seen.contains(&s) {
            seen.push(s);
        }
    }
    seen.join(" ")
}

/// `uri` with `params` added to its query (kept if it had one), for redirects back to a
/// client. `None` values are left out. Registered redirect URIs have no fragment (RFC 6749
/// §3.1.2), so the query is the end of the URI.
pub fn with_query(uri: &str, params: &[(&str, Option<&str>)]) -> String {
    let mut s = uri.to_string();
    let mut sep = match s.find('?') {
        None => "?",
        Some(_) if s.ends_with('?') || s.ends_with('&') => "",
        Some(_) => "&",
    };
    for (k, v) in params {
        if let Some(v) = v {
            let mut q = url::form_urlencoded::Serializer::new(String::new());
            q.append_pair(k, v);
            s.push_str(sep);
            s.push_str(&q.finish());
            sep = "&";
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn token_requests_parse_and_fail_as_rfc_6749_says() {
        let r = TokenRequest::parse(&map(&[
            ("client_id", "c"),
            ("client_secret", "s"),
            ("grant_type", "authorization_code"),
            ("code", "x"),
            ("redirect_uri", "https://a/cb"),
            ("refresh_token", "ignored"),
        ]))
        .unwrap();
        assert_eq!(
            r.grant,
            Grant::AuthorizationCode {
                code: "x".into(),
                redirect_uri: "https://a/cb".into()
            }
        );
        let e = TokenRequest::parse(&map(&[("grant_type", "refresh_token")])).unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidClient);
        let e = TokenRequest::parse(&map(&[
            ("client_id", "c"),
            ("client_secret", "s"),
            ("grant_type", "password"),
        ]))
        .unwrap_err();
        assert_eq!(e.code, ErrorCode::UnsupportedGrantType);
        let e = TokenRequest::parse(&map(&[
            ("client_id", "c"),
            ("client_secret", "s"),
            ("grant_type", "refresh_token"),
        ]))
        .unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidRequest);
    }

    #[test]
    fn authorize_requests_tolerate_sdk_blanks() {
        let q = map(&[
            ("response_type", "code"),
            ("scope", "a b a"),
            ("delegated_scope", "read_write"),
            ("state", ""),
            ("provider_name", ""),
        ]);
        let r = AuthorizeRequest::parse(&q, "https://a/cb", true).unwrap();
        assert_eq!(r.scope, "a b");
        assert_eq!(r.state, None);
        assert_eq!(r.provider_name, None);
        let e =
            AuthorizeRequest::parse(&map(&[("response_type", "token")]), "u", false).unwrap_err();
        assert_eq!(e.code, ErrorCode::UnsupportedResponseType);
    }

    #[test]
    fn redirects_keep_the_clients_query() {
        assert_eq!(
            with_query(
                "https://a/cb?x=1",
                &[("code", Some("c d")), ("state", None)]
            ),
            "https://a/cb?x=1&code=c+d"
        );
        assert_eq!(
            with_query(
                "https://a/cb",
                &[("error", Some("access_denied")), ("state", Some("s&t"))]
            ),
            "https://a/cb?error=access_denied&state=s%26t"
        );
    }
}
