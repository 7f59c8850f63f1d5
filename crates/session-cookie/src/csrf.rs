//! CSRF tokens of the synchronizer pattern, masked per response.
//!
//! A token proves that the page which sent a form was served to this visitor. It is an
//! HMAC-SHA-256, under a subkey derived from the signing key, of what the token is bound to
//! ([`Binding`]): the session's id while a session lives in a store, or a random value — a
//! nonce the middleware keeps in a cookie of its own for a visitor without a session, which a
//! session keeps as its secret once it holds data. A new id (a login's regenerate) or a new
//! secret makes every older token fail. (Which binding a request gets is the middleware's rule:
//! see `session_hyper::csrf`.)
//!
//! Each token shows the secret XORed with 32 fresh random bytes, sent beside it: every page
//! carries a different token (so a compression side channel such as BREACH learns nothing
//! across responses), and every one of them is valid until the secret changes. Tokens are
//! compared in constant time, under each key of the rotation list (newest first), so a token
//! minted before a key rotation stays valid while its key is still listed.
//!
//! ```
//! use session_cookie::csrf::{Binding, CsrfKeys};
//! use session_core::driver::Secret;
//!
//! let keys = CsrfKeys::new(&[Secret::new(b"a 32-byte (or longer) secret key!".to_vec())])?;
//! let a = keys.mint(Binding::Session(b"the session id"))?;
//! let b = keys.mint(Binding::Session(b"the session id"))?;
//! assert_ne!(a, b); // masked afresh each time
//! assert!(keys.verify(&a, Binding::Session(b"the session id")));
//! assert!(keys.verify(&b, Binding::Session(b"the session id")));
//! assert!(!keys.verify(&a, Binding::Session(b"another session")));
//! assert!(!keys.verify(&a, Binding::Nonce(b"the session id"))); // kinds never mix
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
use session_core::driver::Secret;
use session_core::{Config, ConfigError};
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// Bytes of a token's secret, and of its mask.
const SECRET_LEN: usize = 32;

/// Length of a token: base64url (no padding) of the mask and the masked secret.
pub const CSRF_TOKEN_LEN: usize = 86;

/// Bytes of the random nonce an anonymous visitor's tokens are bound to.
pub const NONCE_LEN: usize = 32;

/// The HKDF `info` of the CSRF subkey: no other use of the key derives the same bytes.
const HKDF_INFO: &[u8] = b"session-cookie v1 csrf token HMAC-SHA-256";

/// What a token is bound to.
#[derive(Clone, Copy)]
pub enum Binding<'a> {
    /// A session held in a store, by its id.
    Session(&'a [u8]),
    /// A random value: the nonce of a visitor's CSRF cookie, or the secret a session keeps.
    Nonce(&'a [u8]),
}

impl fmt::Debug for Binding<'_> {
    // Both are credentials of a sort: their bytes stay out of logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Binding::Session(_) => "Session(<redacted>)",
            Binding::Nonce(_) => "Nonce(<redacted>)",
        })
    }
}

/// The CSRF subkeys of a key list, newest first.
#[derive(Clone)]
pub struct CsrfKeys {
    keys: Vec<[u8; 32]>,
}

impl fmt::Debug for CsrfKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CsrfKeys(<{} redacted>)", self.keys.len())
    }
}

impl CsrfKeys {
    /// The subkeys of `keys` (newest first); an empty list is refused
    /// ([`ConfigError::NoKeys`]): a token needs a secret only the server knows.
    pub fn new(keys: &[Secret]) -> Result<Self, ConfigError> {
        if keys.is_empty() {
            return Err(ConfigError::NoKeys);
        }
        let keys = keys
            .iter()
            .map(|k| {
                let mut okm = [0u8; 32];
                // 32 bytes is far below HKDF-SHA-256's limit (255 × 32): expand can't fail.
                let _ = hkdf::Hkdf::<Sha256>::new(None, k.expose()).expand(HKDF_INFO, &mut okm);
                okm
            })
            .collect();
        Ok(Self { keys })
    }

    /// The subkeys of a configuration's keys.
    pub fn from_config(config: &Config) -> Result<Self, ConfigError> {
        Self::new(config.keys())
    }

    /// A new token for `binding`, masked with fresh random bytes. Fails only if the system's
    /// random source does.
    pub fn mint(&self, binding: Binding<'_>) -> Result<String, getrandom::Error> {
        let mut mask = [0u8; SECRET_LEN];
        getrandom::fill(&mut mask)?;
        Ok(self.mint_with_mask(binding, mask))
    }

    /// [`mint`](Self::mint) with a given mask (tests).
    fn mint_with_mask(&self, binding: Binding<'_>, mask: [u8; SECRET_LEN]) -> String {
        let secret = secret(&self.keys[0], binding);
        let mut raw = [0u8; 2 * SECRET_LEN];
        raw[..SECRET_LEN].copy_from_slice(&mask);
        for (i, b) in secret.iter().enumerate() {
            raw[SECRET_LEN + i] = b ^ mask[i];
        }
        URL_SAFE_NO_PAD.encode(raw)
    }

    /// Whether `token` is a token of `binding` under one of the keys. Anything else (another
    /// binding, a forged mask, a truncated or padded token, another alphabet) is `false`.
    pub fn verify(&self, token: &str, binding: Binding<'_>) -> bool {
        if token.len() != CSRF_TOKEN_LEN {
            return false;
        }
        let mut raw = [0u8; 2 * SECRET_LEN];
        match URL_SAFE_NO_PAD.decode_slice(token.as_bytes(), &mut raw) {
            Ok(n) if n == raw.len() => {}
            _ => return false,
        }
        let mut unmasked = [0u8; SECRET_LEN];
        for (i, b) in unmasked.iter_mut().enumerate() {
            *b = raw[SECRET_LEN + i] ^ raw[i];
        }
        self.keys
            .iter()
            .any(|k| bool::from(secret(k, binding).ct_eq(&unmasked)))
    }
}

/// The secret of `binding` under one subkey.
fn secret(key: &[u8; 32], binding: Binding<'_>) -> [u8; SECRET_LEN] {
    let (kind, value): (&[u8], &[u8]) = match binding {
        Binding::Session(id) => (b"session\0", id),
        Binding::Nonce(n) => (b"nonce\0", n),
    };
    // HMAC takes a key of any length: `new_from_slice` can't fail.
    let mut mac = match <Hmac<Sha256> as KeyInit>::new_from_slice(key) {
        Ok(m) => m,
        Err(_) => unreachable!("HMAC accepts keys of every length"),
    };
    mac.update(kind);
    mac.update(value);
    mac.finalize().into_bytes().into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn keys(list: &[&[u8]]) -> CsrfKeys {
        let secrets: Vec<Secret> = list.iter().map(|k| Secret::new(k.to_vec())).collect();
        CsrfKeys::new(&secrets).unwrap()
    }

    const K1: &[u8] = b"this month's key, 32 bytes or more";
    const K2: &[u8] = b"last month's key, 32 bytes or more";

    #[test]
    fn a_rotated_key_still_verifies_until_it_is_dropped() {
        let old = keys(&[K2]);
        let token = old.mint(Binding::Session(b"id")).unwrap();
        assert!(keys(&[K1, K2]).verify(&token, Binding::Session(b"id")));
        assert!(!keys(&[K1]).verify(&token, Binding::Session(b"id")));
        assert!(CsrfKeys::new(&[]).is_err());
        assert_eq!(token.len(), CSRF_TOKEN_LEN);
        assert!(!format!("{old:?}").contains("month"));
    }

    proptest! {
        #[test]
        fn every_mask_verifies_and_any_changed_byte_fails(
            id in proptest::collection::vec(any::<u8>(), 0..64),
            mask in any::<[u8; 32]>(),
            flip in 0usize..64,
            bit in 0u8..8,
        ) {
            let k = keys(&[K1]);
            let token = k.mint_with_mask(Binding::Session(&id), mask);
            prop_assert!(k.verify(&token, Binding::Session(&id)));
            prop_assert!(!k.verify(&token, Binding::Nonce(&id)));
            let mut raw = URL_SAFE_NO_PAD.decode(&token).unwrap();
            raw[flip] ^= 1 << bit;
            let forged = URL_SAFE_NO_PAD.encode(&raw);
            prop_assert!(!k.verify(&forged, Binding::Session(&id)));
        }

        #[test]
        fn garbage_never_verifies(token in ".{0,200}") {
            let k = keys(&[K1]);
            prop_assert!(!k.verify(&token, Binding::Session(b"id")));
        }
    }
}
