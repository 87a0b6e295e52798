//! The one outbound HTTP client. Every request the gateway makes to a URL it was given —
//! webhook deliveries today; provider connectors and signed callbacks next — goes
//! through [`client`]: no redirects (a 30x could point anywhere), no proxy (it would
//! resolve names past the address checks), the resolver of [`safety`] that refuses
//! private and metadata addresses at connect time (DNS rebinding), timeouts, and error
//! descriptions that keep URLs (and the tokens their queries may carry) out of logs.
//! This is the only part that names `reqwest`.

pub mod safety;

use std::sync::Arc;
use std::time::Duration;

pub use reqwest::header::HeaderMap;
pub use reqwest::{Client, RequestBuilder, Response, StatusCode, Url};

use crate::error::Error;

/// What an outbound client allows.
#[derive(Debug, Clone)]
pub struct Settings {
    /// For one whole request (connect, send, response); connecting alone gets at most 5 s.
    pub timeout: Duration,
    /// Whether private addresses may be reached (development and tests).
    pub allow_private: bool,
}

/// A client with the rules above. Build one per use and keep it: it pools connections.
pub fn client(settings: &Settings) -> Result<Client, Error> {
    install_tls_provider();
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .timeout(settings.timeout)
        .connect_timeout(settings.timeout.min(Duration::from_secs(5)))
        .dns_resolver(Arc::new(safety::GuardedResolver {
            allow_private: settings.allow_private,
        }))
        .user_agent(concat!("scimgate/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| Error::Internal(format!("outbound client: {e}")))
}

/// Installs rustls' process-wide crypto provider (ring), which every reqwest client in
/// the process needs before it is built; installing twice is harmless.
pub fn install_tls_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// A transport error in one line, with its causes (reqwest's top line alone says little)
/// and without the URL, which may carry a token in its query string.
pub fn describe(e: reqwest::Error) -> String {
    use std::error::Error as _;
    let e = e.without_url();
    let mut s = if e.is_timeout() {
        "timed out".to_string()
    } else {
        e.to_string()
    };
    let mut source = e.source();
    while let Some(cause) = source {
        s.push_str(": ");
        s.push_str(&cause.to_string());
        source = cause.source();
    }
    s
}

/// How long a response asks to wait (`Retry-After`, as seconds or an HTTP date).
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    headers
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(parse_retry_after)
}

/// `Retry-After` as seconds or an HTTP date (or, as Zoom's daily limits send it, an
/// RFC 3339 timestamp).
pub fn parse_retry_after(v: &str) -> Option<Duration> {
    let v = v.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = chrono::DateTime::parse_from_rfc2822(v)
        .or_else(|_| chrono::DateTime::parse_from_rfc3339(v))
        .ok()?;
    let wait = when.with_timezone(&chrono::Utc) - chrono::Utc::now();
    Some(wait.to_std().unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_parses_seconds_and_dates() {
        assert_eq!(parse_retry_after("120"), Some(Duration::from_secs(120)));
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"),
            Some(Duration::ZERO)
        );
        assert!(parse_retry_after("soon").is_none());
        assert_eq!(
            parse_retry_after("2024-06-01T00:00:00Z"),
            Some(Duration::ZERO),
            "a past RFC 3339 time: now"
        );
    }
}
