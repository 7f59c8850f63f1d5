//! Signing keys: the secret type, the algorithm, and the rules a key list must meet.

use std::fmt;

use super::error::ConfigError;

/// Shortest key accepted outside koa-compat mode (32 bytes = 256 bits).
pub const MIN_KEY_LEN: usize = 32;
/// Most keys in a rotation list: every invalid cookie costs one HMAC per key.
pub const MAX_KEYS: usize = 4;

/// Well-known example secrets that must never sign real sessions.
const PLACEHOLDER_KEYS: &[&str] = &[
    "keyboard cat",
    "secret",
    "changeme",
    "change me",
    "change-me",
    "password",
    "im a newer secret",
    "i like turtle",
    "some secret hurr",
    "your-secret-key",
];

/// A secret signing key. `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Vec<u8>);

impl Secret {
    /// Wraps key material.
    pub fn new(bytes: impl Into<Vec<u8>>) -> Self {
        Self(bytes.into())
    }

    /// The key bytes, for the signer.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret(<{} bytes redacted>)", self.0.len())
    }
}

/// The HMAC hash used to sign cookies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Algorithm {
    /// HMAC-SHA-1: keygrip's default; only for sharing cookies with an existing Koa app.
    Sha1,
    /// HMAC-SHA-256: our default.
    #[default]
    Sha256,
    /// HMAC-SHA-512.
    Sha512,
}

/// Checks a signing key list: present, at most [`MAX_KEYS`], no repeats, and (unless `legacy`)
/// each at least [`MIN_KEY_LEN`] bytes and not a well-known placeholder.
///
/// Public so a signer built outside [`Config`](crate::Config) applies the same rules.
pub fn validate_keys(keys: &[Secret], legacy: bool) -> Result<(), ConfigError> {
    if keys.is_empty() {
        return Err(ConfigError::NoKeys);
    }
    if keys.len() > MAX_KEYS {
        return Err(ConfigError::TooManyKeys {
            count: keys.len(),
            max: MAX_KEYS,
        });
    }
    for (index, key) in keys.iter().enumerate() {
        let bytes = key.expose();
        if keys[..index].contains(key) {
            return Err(ConfigError::DuplicateKey { index });
        }
        let placeholder = PLACEHOLDER_KEYS
            .iter()
            .any(|p| p.as_bytes().eq_ignore_ascii_case(bytes));
        let short = bytes.len() < MIN_KEY_LEN;
        if legacy {
            if bytes.is_empty() {
                return Err(ConfigError::KeyTooShort {
                    index,
                    len: 0,
                    min: 1,
                });
            }
            if short || placeholder {
                tracing::warn!(
                    target: "session",
                    key_index = index,
                    key_len = bytes.len(),
                    "legacy signing key accepted: shorter than 32 bytes or a well-known placeholder; rotate it"
                );
            }
        } else if placeholder {
            return Err(ConfigError::PlaceholderKey { index });
        } else if short {
            return Err(ConfigError::KeyTooShort {
                index,
                len: bytes.len(),
                min: MIN_KEY_LEN,
            });
        }
    }
    Ok(())
}
