//! Connectors to the providers whose admins consent to the gateway (DESIGN.md §6.2):
//! Google Workspace by domain-wide delegation, Microsoft 365 through Graph, and the
//! conferencing providers (Zoom, Webex, a generic OAuth 2 one for Indeed) by the
//! authorization-code grant of [`oauth_client`]. Each call is one HTTP exchange through
//! [`crate::outbound`]; the caller decides about caching tokens and retrying, with
//! [`ProviderError`]'s kind and [`backoff`].
//!
//! Error messages carry the provider's own code and description (an admin page shows
//! them), never a token, a secret or a URL with its query.

pub mod conferencing;
pub mod google;
pub mod indeed;
pub mod microsoft;
pub mod oauth_client;
pub mod webex;
pub mod zoom;

pub use conferencing::{Conferencing, ConferencingAccount, ConferencingUser};
pub use oauth_client::OAuthTokens;

#[cfg(test)]
mod conferencing_tests;
#[cfg(test)]
mod tests;

use std::time::Duration;

use crate::outbound;
use crate::secrets::Secret;

/// A provider's bearer token and when it stops working.
#[derive(Debug, Clone)]
pub struct AccessToken {
    pub token: Secret,
    pub expires_at: chrono::DateTime<chrono::Utc>,
}

impl AccessToken {
    fn new(token: String, expires_in: i64) -> Self {
        Self {
            token: Secret::new(token),
            expires_at: chrono::Utc::now() + chrono::Duration::seconds(expires_in.max(0)),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    /// 401: our token is no longer accepted — refresh once and retry.
    #[error("token not accepted: {0}")]
    Unauthorized(String),
    /// Worth trying again later: 429, 5xx, timeouts/transport errors. `retry_after` from the header.
    #[error("temporarily unavailable: {message}")]
    Unavailable {
        message: String,
        retry_after: Option<Duration>,
    },
    /// Permanent: consent/delegation missing, not an admin, invalid_grant, malformed answer, 403...
    #[error("refused: {0}")]
    Refused(String),
}

impl ProviderError {
    /// Whether trying again later may succeed (after [`backoff`]).
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Unavailable { .. })
    }
}

/// Longest wait between retries we choose ourselves.
const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// Longest `Retry-After` we honour: a provider asking for a day is treated as asking for an hour.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

/// Delay before retry number `attempt` (0-based): 1 s, 2 s, 4 s … capped at 60 s; a Retry-After replaces it (capped at 1 h).
pub fn backoff(attempt: u32, retry_after: Option<Duration>) -> Duration {
    if let Some(wait) = retry_after {
        return wait.min(MAX_RETRY_AFTER);
    }
    1u64.checked_shl(attempt)
        .map(Duration::from_secs)
        .unwrap_or(MAX_BACKOFF)
        .min(MAX_BACKOFF)
}

/// Most of an answer we read: provider answers here are a few kilobytes.
const MAX_ANSWER_BYTES: usize = 1 << 20;
/// Most of a provider's own description we repeat in an error.
const MAX_DETAIL_CHARS: usize = 300;

/// A provider's answer, read whole (bounded).
struct Answer {
    status: u16,
    retry_after: Option<Duration>,
    body: Vec<u8>,
}

impl Answer {
    fn json(&self) -> Option<serde_json::Value> {
        serde_json::from_slice(&self.body).ok()
    }

    /// 429 and 5xx: try later.
    fn is_transient(&self) -> bool {
        self.status == 429 || self.status >= 500
    }

    fn unavailable(&self, message: String) -> ProviderError {
        ProviderError::Unavailable {
            message,
            retry_after: self.retry_after,
        }
    }
}

/// Sends a request and reads its answer; a transport failure (timeout, refused
/// connection, reset) is [`ProviderError::Unavailable`], described without the URL.
async fn exchange(what: &str, request: outbound::RequestBuilder) -> Result<Answer, ProviderError> {
    exchange_up_to(what, request, MAX_ANSWER_BYTES).await
}

/// As [`exchange`], reading at most `max_bytes` (a listing's page is larger than a lookup).
async fn exchange_up_to(
    what: &str,
    request: outbound::RequestBuilder,
    max_bytes: usize,
) -> Result<Answer, ProviderError> {
    let transport = |e| ProviderError::Unavailable {
        message: format!("{what}: {}", outbound::describe(e)),
        retry_after: None,
    };
    let mut response = request.send().await.map_err(transport)?;
    let status = response.status().as_u16();
    let retry_after = outbound::retry_after(response.headers());
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(transport)? {
        if body.len() + chunk.len() > max_bytes {
            return Err(ProviderError::Refused(format!(
                "{what}: the answer is larger than {max_bytes} bytes"
            )));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Answer {
        status,
        retry_after,
        body,
    })
}

/// A provider's text, on one line and bounded (descriptions can run to paragraphs, and
/// Microsoft's carry trace ids on further lines).
fn detail(text: &str) -> String {
    let line = text.lines().next().unwrap_or("").trim();
    match line.char_indices().nth(MAX_DETAIL_CHARS) {
        Some((cut, _)) => format!("{}…", &line[..cut]),
        None => line.to_string(),
    }
}

/// `code: description` from the parts a provider gave, whichever they were.
fn code_and_description(code: Option<&str>, description: Option<&str>) -> String {
    match (code.map(detail), description.map(detail)) {
        (Some(c), Some(d)) if !d.is_empty() => format!("{c}: {d}"),
        (Some(c), _) => c,
        (None, Some(d)) => d,
        (None, None) => "no error description".to_string(),
    }
}

/// A bearer header value.
fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// An `application/x-www-form-urlencoded` body.
fn form(pairs: &[(&str, &str)]) -> String {
    url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
}

/// `base` (a configured URL, maybe with a path prefix) with `segments` appended, each
/// percent-encoded as one segment (an email with `/` or `#` stays one segment).
fn join(base: &str, segments: &[&str]) -> Result<outbound::Url, ProviderError> {
    let mut url = outbound::Url::parse(base)
        .map_err(|e| ProviderError::Refused(format!("configured URL is not valid: {e}")))?;
    url.path_segments_mut()
        .map_err(|()| ProviderError::Refused("configured URL cannot have a path".into()))?
        .pop_if_empty()
        .extend(segments);
    Ok(url)
}

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn backoff_doubles_to_a_minute_and_retry_after_replaces_it() {
        let secs = |a| backoff(a, None).as_secs();
        assert_eq!([secs(0), secs(1), secs(2), secs(5)], [1, 2, 4, 32]);
        assert_eq!(secs(6), 60);
        assert_eq!(secs(64), 60, "no overflow");
        assert_eq!(secs(u32::MAX), 60);
        let ra = |s| backoff(3, Some(Duration::from_secs(s))).as_secs();
        assert_eq!(ra(0), 0);
        assert_eq!(ra(120), 120, "Retry-After may exceed our own cap");
        assert_eq!(ra(86_400), 3600);
    }

    #[test]
    fn details_are_one_bounded_line() {
        assert_eq!(
            detail("AADSTS7000215: Invalid client secret provided.\r\nTrace ID: abc"),
            "AADSTS7000215: Invalid client secret provided."
        );
        let long = "é".repeat(500);
        assert_eq!(detail(&long).chars().count(), MAX_DETAIL_CHARS + 1);
        assert_eq!(
            code_and_description(Some("invalid_grant"), Some("Invalid email or User ID")),
            "invalid_grant: Invalid email or User ID"
        );
        assert_eq!(code_and_description(Some("x"), Some("")), "x");
    }

    #[test]
    fn joined_urls_keep_the_prefix_and_encode_segments() {
        let url = join(
            "http://127.0.0.1:5300/google/",
            &["admin", "users", "a/b#c@x.example"],
        )
        .unwrap();
        assert_eq!(
            url.as_str(),
            "http://127.0.0.1:5300/google/admin/users/a%2Fb%23c@x.example"
        );
        let url = join("https://admin.googleapis.com", &["admin", "x"]).unwrap();
        assert_eq!(url.as_str(), "https://admin.googleapis.com/admin/x");
        assert!(join("not a url", &["x"]).is_err());
    }
}
