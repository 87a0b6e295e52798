//! Webhook signatures. Every delivery carries both schemes:
//!
//! - Standard Webhooks: `webhook-id`, `webhook-timestamp` (unix seconds) and
//!   `webhook-signature: v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`. A secret
//!   `whsec_<base64>` keys the HMAC with the decoded bytes; any other secret with its
//!   UTF-8 bytes.
//! - Jackson's `BoxyHQ-Signature: t=<unix ms>,s=<hex HMAC-SHA256 of "{t}.{body}">`, keyed
//!   with the secret string as given.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{KeyInit, Mac};
use sha2::Sha256;

use crate::error::Error;

type HmacSha256 = hmac::Hmac<Sha256>;

/// A new endpoint secret: `whsec_` + base64 of 32 random bytes.
pub fn generate_secret() -> Result<String, Error> {
    let mut key = [0u8; 32];
    getrandom::fill(&mut key).map_err(|e| Error::Internal(format!("no randomness: {e}")))?;
    Ok(format!("whsec_{}", STANDARD.encode(key)))
}

/// The HMAC key a Standard Webhooks secret stands for.
fn standard_key(secret: &str) -> Vec<u8> {
    secret
        .strip_prefix("whsec_")
        .and_then(|b64| STANDARD.decode(b64).ok())
        .unwrap_or_else(|| secret.as_bytes().to_vec())
}

fn hmac(key: &[u8], parts: &[&[u8]]) -> HmacSha256 {
    // HMAC takes keys of any length: new_from_slice cannot fail for it.
    let mut mac = <HmacSha256 as KeyInit>::new_from_slice(key)
        .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
    for p in parts {
        mac.update(p);
    }
    mac
}

/// `v1,<base64>` for one secret.
pub fn standard_signature(secret: &str, msg_id: &str, timestamp: i64, body: &[u8]) -> String {
    let ts = timestamp.to_string();
    let mac = hmac(
        &standard_key(secret),
        &[msg_id.as_bytes(), b".", ts.as_bytes(), b".", body],
    );
    format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
}

/// `t=<ms>,s=<hex>` (Jackson / BoxyHQ).
pub fn boxyhq_signature(secret: &str, timestamp_ms: i64, body: &[u8]) -> String {
    let t = timestamp_ms.to_string();
    let mac = hmac(secret.as_bytes(), &[t.as_bytes(), b".", body]);
    format!("t={t},s={}", hex::encode(mac.finalize().into_bytes()))
}

/// Checks a `webhook-signature` header (space-separated `v1,…` entries, any may match)
/// in constant time per entry.
pub fn verify_standard(
    secret: &str,
    msg_id: &str,
    timestamp: i64,
    body: &[u8],
    header: &str,
) -> bool {
    let ts = timestamp.to_string();
    header.split_whitespace().any(|entry| {
        let Some(sig) = entry.strip_prefix("v1,") else {
            return false;
        };
        let Ok(sig) = STANDARD.decode(sig) else {
            return false;
        };
        hmac(
            &standard_key(secret),
            &[msg_id.as_bytes(), b".", ts.as_bytes(), b".", body],
        )
        .verify_slice(&sig)
        .is_ok()
    })
}

/// Checks a `BoxyHQ-Signature` header in constant time.
pub fn verify_boxyhq(secret: &str, body: &[u8], header: &str) -> bool {
    let mut t = None;
    let mut s = None;
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", v)) => t = Some(v),
            Some(("s", v)) => s = Some(v),
            _ => {}
        }
    }
    let (Some(t), Some(s)) = (t, s) else {
        return false;
    };
    let Ok(sig) = hex::decode(s) else {
        return false;
    };
    hmac(secret.as_bytes(), &[t.as_bytes(), b".", body])
        .verify_slice(&sig)
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example of the Standard Webhooks specification.
    #[test]
    fn standard_webhooks_test_vector() {
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let body = br#"{"test": 2432232314}"#;
        let sig = standard_signature(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body);
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
        let header = format!("v1,bm9wZQ== {sig}");
        assert!(verify_standard(
            secret,
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            body,
            &header
        ));
        assert!(!verify_standard(
            secret,
            "msg_other",
            1614265330,
            body,
            &header
        ));
        assert!(!verify_standard(
            secret,
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265331,
            body,
            &header
        ));
    }

    #[test]
    fn boxyhq_round_trip() {
        let h = boxyhq_signature("my-secret", 1_700_000_000_123, b"{}");
        assert!(h.starts_with("t=1700000000123,s="));
        assert!(verify_boxyhq("my-secret", b"{}", &h));
        assert!(!verify_boxyhq("other", b"{}", &h));
        assert!(!verify_boxyhq("my-secret", b"{ }", &h));
    }

    #[test]
    fn generated_secrets_decode_to_32_bytes() {
        let s = generate_secret().unwrap();
        assert_eq!(standard_key(&s).len(), 32);
        assert_eq!(standard_key("plain"), b"plain");
    }
}
