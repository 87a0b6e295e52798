//! Secrets: generation, one-way storage, constant-time comparison, and sealing at rest.
//!
//! Secrets we only check (SCIM tokens, admin keys) are random 256-bit values, so a SHA-256
//! digest is a safe and fast way to store them (a password hash such as argon2 protects
//! low-entropy human input and would cost ~70 ms a request).
//!
//! Secrets we must use again (webhook signing secrets) are *sealed*: AES-256-GCM under a
//! key from `SCIMGATE_ENCRYPTION_KEY`, stored as `sealed:v1:<key id>:<base64url(nonce ‖
//! ciphertext ‖ tag)>`. The key id (derived from the key) says which key opens a value, so
//! keys can rotate: the [`Sealer`] seals with its first key and opens with any of them.

use std::fmt;
use std::sync::Arc;

use aes_gcm::aead::{Aead, Payload};
use aes_gcm::{Aes256Gcm, KeyInit};
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use base64::Engine;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::error::Error;

/// What a pass over the stored secrets found and did.
#[derive(Debug, Default)]
pub struct SealReport {
    /// Plaintext values (from before sealing) sealed now.
    pub sealed: usize,
    /// Values re-sealed under the current key (`rekey`).
    pub resealed: usize,
    /// Values that changed while the pass ran, left as they are now.
    pub skipped: usize,
    /// Where the values no configured key opens are, and why (never the values).
    pub unreadable: Vec<String>,
}

/// The value to store instead of `stored`, if any: plaintext sealed, or (with `rekey`) an
/// old key's value re-sealed. One no key opens goes to the report.
pub fn resealed(
    sealer: &Sealer,
    stored: &Sealed,
    rekey: bool,
    place: &str,
    report: &mut SealReport,
) -> Result<Option<Sealed>, Error> {
    if stored.key_id().is_none() {
        return sealer.seal(stored.as_stored()).map(Some);
    }
    match sealer.open(stored) {
        Ok(plain) if rekey && !sealer.is_current(stored) => sealer.seal(plain.expose()).map(Some),
        Ok(_) => Ok(None),
        Err(e) => {
            report.unreadable.push(format!("{place}: {e}"));
            Ok(None)
        }
    }
}

pub fn count(report: &mut SealReport, old: &Sealed, replaced: bool) {
    match (replaced, old.key_id()) {
        (false, _) => report.skipped += 1,
        (true, None) => report.sealed += 1,
        (true, Some(_)) => report.resealed += 1,
    }
}

/// `bytes` random bytes, base64url without padding.
pub fn random_token(bytes: usize) -> Result<String, Error> {
    let mut buf = vec![0u8; bytes];
    getrandom::fill(&mut buf).map_err(|e| Error::Internal(format!("no randomness: {e}")))?;
    Ok(URL_SAFE_NO_PAD.encode(buf))
}

/// Hex SHA-256 of a secret, as stored.
pub fn digest(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// Compares a presented secret with a stored digest in constant time.
pub fn matches_digest(presented: &str, stored_digest: &str) -> bool {
    digest(presented)
        .as_bytes()
        .ct_eq(stored_digest.as_bytes())
        .into()
}

/// Compares two secrets in constant time, whatever their lengths (both are hashed first).
pub fn equal(a: &str, b: &str) -> bool {
    Sha256::digest(a.as_bytes())
        .as_slice()
        .ct_eq(Sha256::digest(b.as_bytes()).as_slice())
        .into()
}

/// What every sealed value starts with; a stored value without it is plaintext from
/// before sealing (the start-up pass seals those).
pub const SEALED_PREFIX: &str = "sealed:v1:";
const NONCE_BYTES: usize = 12;
const KEY_BYTES: usize = 32;

/// A secret as stored: sealed, or (in a database from before sealing) still plaintext.
/// Opening it takes the [`Sealer`]; `Debug` shows only which key sealed it.
#[derive(Clone, PartialEq, Eq)]
pub struct Sealed(String);

impl Sealed {
    /// Wraps a value read from the database.
    pub fn from_stored(stored: String) -> Self {
        Self(stored)
    }

    /// The value to write to the database.
    pub fn as_stored(&self) -> &str {
        &self.0
    }

    /// The id of the key that sealed it; `None` for a plaintext value from before sealing.
    pub fn key_id(&self) -> Option<&str> {
        let rest = self.0.strip_prefix(SEALED_PREFIX)?;
        rest.split_once(':').map(|(id, _)| id)
    }
}

impl fmt::Debug for Sealed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.key_id() {
            Some(id) => write!(f, "Sealed(key {id})"),
            None => f.write_str("Sealed(unsealed, redacted)"),
        }
    }
}

/// A secret in the clear, in memory only. `Debug` never shows it; [`Secret::expose`]
/// says at the call site that it is used.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: String) -> Self {
        Self(value)
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn into_inner(self) -> String {
        self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(redacted)")
    }
}

/// Read as a plain string (so admin bodies keep their shape and their error messages).
impl<'de> serde::Deserialize<'de> for Secret {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Secret)
    }
}

struct Key {
    id: String,
    cipher: Aes256Gcm,
}

/// The encryption keys: the first seals, every one opens. Cheap to clone; built once from
/// the configuration and handed to what needs it.
#[derive(Clone)]
pub struct Sealer {
    keys: Arc<Vec<Key>>,
}

impl fmt::Debug for Sealer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sealer")
            .field("key_ids", &self.key_ids())
            .finish()
    }
}

impl Sealer {
    /// Keys from `SCIMGATE_ENCRYPTION_KEY`'s form: comma-separated base64 of 32 bytes
    /// each, the sealing key first. Errors name the entry, never its value.
    pub fn from_keys(list: &str) -> Result<Self, Error> {
        let mut keys: Vec<Key> = Vec::new();
        for (n, entry) in list
            .split(',')
            .map(str::trim)
            .filter(|e| !e.is_empty())
            .enumerate()
        {
            let bytes = decode_key(entry).ok_or_else(|| {
                Error::Config(format!(
                    "SCIMGATE_ENCRYPTION_KEY: key {} is not {KEY_BYTES} bytes of base64",
                    n + 1
                ))
            })?;
            let id = key_id(&bytes);
            if keys.iter().any(|k| k.id == id) {
                return Err(Error::Config(format!(
                    "SCIMGATE_ENCRYPTION_KEY: key {} is listed twice (id {id})",
                    n + 1
                )));
            }
            let cipher = Aes256Gcm::new_from_slice(&bytes)
                .map_err(|_| Error::Config("SCIMGATE_ENCRYPTION_KEY: bad key length".into()))?;
            keys.push(Key { id, cipher });
        }
        if keys.is_empty() {
            return Err(Error::Config("SCIMGATE_ENCRYPTION_KEY is empty".into()));
        }
        Ok(Self {
            keys: Arc::new(keys),
        })
    }

    /// The id of the key that seals.
    pub fn current_key_id(&self) -> &str {
        &self.keys[0].id
    }

    /// Every key's id, the sealing key first.
    pub fn key_ids(&self) -> Vec<&str> {
        self.keys.iter().map(|k| k.id.as_str()).collect()
    }

    /// Whether `value` is sealed under the current (first) key.
    pub fn is_current(&self, value: &Sealed) -> bool {
        value.key_id() == Some(self.current_key_id())
    }

    /// Seals `plaintext` under the first key, with a fresh random nonce.
    pub fn seal(&self, plaintext: &str) -> Result<Sealed, Error> {
        let key = &self.keys[0];
        let header = format!("{SEALED_PREFIX}{}:", key.id);
        let mut nonce = [0u8; NONCE_BYTES];
        getrandom::fill(&mut nonce).map_err(|e| Error::Internal(format!("no randomness: {e}")))?;
        let ciphertext = key
            .cipher
            .encrypt(
                &nonce.into(),
                Payload {
                    msg: plaintext.as_bytes(),
                    aad: header.as_bytes(),
                },
            )
            .map_err(|_| Error::Internal("sealing a secret failed".into()))?;
        let mut blob = nonce.to_vec();
        blob.extend_from_slice(&ciphertext);
        Ok(Sealed(format!("{header}{}", URL_SAFE_NO_PAD.encode(blob))))
    }

    /// Opens a sealed value with whichever key sealed it. A plaintext value, a key that is
    /// not configured, or a value that fails authentication is an error (never a panic).
    pub fn open(&self, value: &Sealed) -> Result<Secret, Error> {
        let Some(rest) = value.0.strip_prefix(SEALED_PREFIX) else {
            return Err(Error::Internal(
                "a stored secret is not sealed (run `scimgate migrate` to seal it)".into(),
            ));
        };
        let (id, body) = rest
            .split_once(':')
            .ok_or_else(|| Error::Internal("a sealed secret is malformed".into()))?;
        let key = self.keys.iter().find(|k| k.id == id).ok_or_else(|| {
            Error::Config(format!(
                "a secret is sealed with encryption key {id}, which is not in SCIMGATE_ENCRYPTION_KEY (keys: {})",
                self.key_ids().join(", ")
            ))
        })?;
        let blob = URL_SAFE_NO_PAD
            .decode(body)
            .ok()
            .filter(|b| b.len() > NONCE_BYTES)
            .ok_or_else(|| Error::Internal("a sealed secret is malformed".into()))?;
        let (nonce, ciphertext) = blob.split_at(NONCE_BYTES);
        let nonce: [u8; NONCE_BYTES] = nonce
            .try_into()
            .map_err(|_| Error::Internal("a sealed secret is malformed".into()))?;
        let header = &value.0[..value.0.len() - body.len()];
        let plain = key
            .cipher
            .decrypt(
                &nonce.into(),
                Payload {
                    msg: ciphertext,
                    aad: header.as_bytes(),
                },
            )
            .map_err(|_| {
                Error::Internal(format!(
                    "a secret sealed with encryption key {id} failed authentication (altered in the database?)"
                ))
            })?;
        String::from_utf8(plain)
            .map(Secret)
            .map_err(|_| Error::Internal("a sealed secret is not UTF-8".into()))
    }
}

/// A new encryption key: 32 random bytes, base64 (as `openssl rand -base64 32` prints).
pub fn generate_key() -> Result<String, Error> {
    let mut key = [0u8; KEY_BYTES];
    getrandom::fill(&mut key).map_err(|e| Error::Internal(format!("no randomness: {e}")))?;
    Ok(STANDARD.encode(key))
}

/// Accepts either base64 alphabet, padded or not.
fn decode_key(entry: &str) -> Option<Vec<u8>> {
    [&STANDARD, &STANDARD_NO_PAD, &URL_SAFE, &URL_SAFE_NO_PAD]
        .iter()
        .find_map(|engine| engine.decode(entry).ok())
        .filter(|b| b.len() == KEY_BYTES)
}

/// A key's public name: 8 hex digits of a hash of it, so no one has to name keys and a
/// sealed value still says which key opens it.
fn key_id(key: &[u8]) -> String {
    let mut h = Sha256::new();
    h.update(b"scimgate encryption key id\0");
    h.update(key);
    hex::encode(&h.finalize()[..4])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_and_digests_match() {
        let a = random_token(32).unwrap();
        assert_eq!(a.len(), 43);
        assert_ne!(a, random_token(32).unwrap());
        assert!(matches_digest(&a, &digest(&a)));
        assert!(!matches_digest("nope", &digest(&a)));
        assert!(equal("x", "x") && !equal("x", "xy"));
    }

    #[test]
    fn sealing_round_trips_and_rotates() {
        let (old, new) = (generate_key().unwrap(), generate_key().unwrap());
        let before = Sealer::from_keys(&old).unwrap();
        let sealed = before.seal("whsec_abc").unwrap();
        assert!(sealed.as_stored().starts_with(SEALED_PREFIX));
        assert!(!sealed.as_stored().contains("whsec_abc"));
        assert_ne!(
            sealed,
            before.seal("whsec_abc").unwrap(),
            "fresh nonce each time"
        );
        assert_eq!(before.open(&sealed).unwrap().expose(), "whsec_abc");
        assert!(format!("{sealed:?}").starts_with("Sealed(key "));
        assert_eq!(format!("{:?}", Secret::new("x".into())), "Secret(redacted)");

        let after = Sealer::from_keys(&format!("{new}, {old}")).unwrap();
        assert_eq!(after.open(&sealed).unwrap().expose(), "whsec_abc");
        assert!(!after.is_current(&sealed) && before.is_current(&sealed));
        assert!(after.is_current(&after.seal("x").unwrap()));
        let err = Sealer::from_keys(&new).unwrap().open(&sealed).unwrap_err();
        assert!(matches!(err, Error::Config(_)), "{err}");
        assert!(err.to_string().contains(before.current_key_id()), "{err}");
    }

    #[test]
    fn bad_keys_and_values_are_errors() {
        for bad in ["", "short", "bm90IDMyIGJ5dGVz", "a,,"] {
            let err = Sealer::from_keys(bad).unwrap_err();
            assert!(matches!(err, Error::Config(_)), "{bad}: {err}");
        }
        let k = generate_key().unwrap();
        assert!(
            Sealer::from_keys(&format!("{k},{k}")).is_err(),
            "duplicate key"
        );
        let s = Sealer::from_keys(&k.replace('+', "-").replace('/', "_")).unwrap();
        let sealed = s.seal("v").unwrap();
        assert!(s.open(&Sealed::from_stored("plain".into())).is_err());
        let mut tampered = sealed.as_stored().to_string();
        let last = tampered.pop().unwrap();
        tampered.push(if last == 'A' { 'B' } else { 'A' });
        assert!(s.open(&Sealed::from_stored(tampered)).is_err());
        let other_id = sealed
            .as_stored()
            .replacen(s.current_key_id(), "00000000", 1);
        assert!(s.open(&Sealed::from_stored(other_id)).is_err());
        assert!(s
            .open(&Sealed::from_stored(format!("{SEALED_PREFIX}x")))
            .is_err());
    }
}
