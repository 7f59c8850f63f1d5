//! Encrypted cookie mode: the session JSON sealed with XChaCha20-Poly1305, one subkey per entry of
//! the key list, the cookie name bound in, and rotation like signing's.
//!
//! # Wire format (`v1`)
//!
//! ```text
//! value   = "v1." base64url-without-padding( nonce[24] || ciphertext || tag[16] )
//! subkey  = HKDF-SHA-256(salt = "", ikm = secret, info = "session-cookie v1 cookie encryption XChaCha20-Poly1305")[..32]
//! aad     = "session-cookie v1" 0x00 cookie-name
//! plain   = the session's JSON, with its expiry fields (`_expire`/`_maxAge` or `_session`)
//! ```
//!
//! The nonce is 24 random bytes per write: at that size random nonces never repeat in
//! practice, however many cookies one key seals (a 12-byte random nonce, as AES-GCM's, is
//! not safe past some billions of cookies). The version prefix lets the format change later:
//! a value of another version is a new session, never a misread one.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chacha20poly1305::aead::inout::InOutBuf;
use chacha20poly1305::{AeadInOut, KeyInit, Tag, XChaCha20Poly1305, XNonce};
use session_core::driver::{Secret, validate_keys};
use session_core::store::Record;
use session_core::{Config, ConfigError, MaxAge};

use crate::codec::{Codec, CodecError, Decoded};
use crate::keygrip::KeyMatch;

/// The prefix of every value of the current format.
pub const ENCRYPTED_PREFIX: &str = "v1.";
/// HKDF's `info`: the purpose label that keeps a secret's encryption subkey apart from any
/// other use of the same secret (signing, another format version).
const HKDF_INFO: &[u8] = b"session-cookie v1 cookie encryption XChaCha20-Poly1305";
/// Associated data before the cookie name: the format version is authenticated too.
const AAD_PREFIX: &[u8] = b"session-cookie v1\0";
const NONCE_LEN: usize = 24;
const TAG_LEN: usize = 16;

/// Characters an encrypted value adds to its plaintext JSON: the prefix, and base64 of the
/// nonce and tag (the JSON itself grows by a third in base64). A cookie's name and value
/// together may hold 4096 bytes, so about 3,000 bytes of session JSON fit.
pub const fn encrypted_len(plaintext_len: usize) -> usize {
    let raw = NONCE_LEN + plaintext_len + TAG_LEN;
    ENCRYPTED_PREFIX.len() + raw / 3 * 4 + [0, 2, 3][raw % 3]
}

/// The encrypted cookie codec: the session is unreadable and unforgeable without one of the
/// keys, and a value works only under the cookie name it was made for.
///
/// Each entry of the key list (newest first) gets its own 256-bit subkey through HKDF-SHA-256
/// with a purpose label, so the secrets that would sign cookies never serve as encryption
/// keys directly. Values are sealed under the newest key; opening tries the newest first,
/// then the older ones, and reports an older one ([`Codec::decode_with_key`]) so the
/// middleware writes the cookie again under the newest key on that response.
///
/// No compression (its output length would tell what the session holds); the length of the
/// JSON is all an observer learns.
///
/// ```
/// use session_cookie::{Codec, EncryptedCodec, KeyMatch};
/// use session_core::MaxAge;
/// use session_core::driver::Secret;
/// use session_core::store::{Meta, Record};
///
/// let old = Secret::new(b"the key of last month, 32+ bytes".to_vec());
/// let new = Secret::new(b"the key of this month, 32+ bytes".to_vec());
/// let before = EncryptedCodec::new("sid", &[old.clone()])?;
/// let after = EncryptedCodec::new("sid", &[new.clone(), old.clone()])?;
///
/// let mut record = Record { data: Default::default(), meta: Meta {
///     expire: Some(1_700_086_400_000), max_age: MaxAge::Ms(86_400_000), created: None } };
/// record.data.insert("user".into(), "ada".into());
/// let value = before.encode(&record)?;
/// assert!(value.starts_with("v1.") && !value.contains("ada"));
///
/// // Opened under the rotated list, with the older key: the middleware writes it again.
/// let opened = after.decode_with_key(&value, MaxAge::Session).unwrap();
/// assert_eq!((opened.record, opened.key), (record, KeyMatch::Older(1)));
/// // Under another cookie name, or once the old key is gone, it opens to nothing.
/// let elsewhere = EncryptedCodec::new("other", &[new.clone(), old])?;
/// assert!(elsewhere.decode(&value, MaxAge::Session).is_none());
/// assert!(EncryptedCodec::new("sid", &[new])?.decode(&value, MaxAge::Session).is_none());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct EncryptedCodec {
    /// One cipher per key, newest first.
    ciphers: Vec<XChaCha20Poly1305>,
    /// [`AAD_PREFIX`] and the cookie name.
    aad: Vec<u8>,
}

impl fmt::Debug for EncryptedCodec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EncryptedCodec")
            .field("keys", &format_args!("<{} redacted>", self.ciphers.len()))
            .field("aad", &String::from_utf8_lossy(&self.aad))
            .finish()
    }
}

impl EncryptedCodec {
    /// For the cookie `cookie_name`, with `keys` newest first. The keys must meet the strict
    /// rules (at least 32 bytes, no placeholder, no repeat, at most four) whatever the
    /// configuration's legacy setting: a short key would be a weak encryption key.
    pub fn new(cookie_name: &str, keys: &[Secret]) -> Result<Self, ConfigError> {
        validate_keys(keys, false)?;
        let ciphers = keys
            .iter()
            .map(|k| XChaCha20Poly1305::new(&subkey(k.expose()).into()))
            .collect();
        let mut aad = AAD_PREFIX.to_vec();
        aad.extend_from_slice(cookie_name.as_bytes());
        Ok(Self { ciphers, aad })
    }

    /// For a configuration's cookie name and keys.
    pub fn from_config(config: &Config) -> Result<Self, ConfigError> {
        if !config.signed() {
            return Err(ConfigError::NoKeys);
        }
        Self::new(&config.cookie().name, config.keys())
    }

    /// Seals `plaintext` under the newest key with `nonce`.
    fn seal(&self, plaintext: &[u8], nonce: &[u8; NONCE_LEN]) -> Result<String, CodecError> {
        let cipher = self
            .ciphers
            .first()
            .ok_or_else(|| CodecError("no encryption key".into()))?;
        let mut raw = Vec::with_capacity(NONCE_LEN + plaintext.len() + TAG_LEN);
        raw.extend_from_slice(nonce);
        raw.extend_from_slice(plaintext);
        let tag = cipher
            .encrypt_inout_detached(
                &XNonce::from(*nonce),
                &self.aad,
                InOutBuf::from(&mut raw[NONCE_LEN..]),
            )
            .map_err(|_| CodecError("session too large to encrypt".into()))?;
        raw.extend_from_slice(&tag);
        let mut out = String::with_capacity(encrypted_len(plaintext.len()));
        out.push_str(ENCRYPTED_PREFIX);
        URL_SAFE_NO_PAD.encode_string(&raw, &mut out);
        Ok(out)
    }

    /// The plaintext of `value` and the key that opened it; `None` for anything else (another
    /// version, another cookie name, a change to any byte, a key no longer in the list).
    fn open(&self, value: &str) -> Option<(Vec<u8>, KeyMatch)> {
        let b64 = value.strip_prefix(ENCRYPTED_PREFIX)?;
        // Canonical base64url only: no padding, no stray trailing bits, so each value has
        // exactly one spelling.
        let raw = URL_SAFE_NO_PAD.decode(b64).ok()?;
        if raw.len() < NONCE_LEN + TAG_LEN {
            return None;
        }
        let (nonce, rest) = raw.split_at(NONCE_LEN);
        let (sealed, tag) = rest.split_at(rest.len() - TAG_LEN);
        let nonce = XNonce::try_from(nonce).ok()?;
        let tag = Tag::try_from(tag).ok()?;
        let mut plain = vec![0u8; sealed.len()];
        for (index, cipher) in self.ciphers.iter().enumerate() {
            let buf = InOutBuf::new(sealed, &mut plain).ok()?;
            if cipher
                .decrypt_inout_detached(&nonce, &self.aad, buf, &tag)
                .is_ok()
            {
                let key = if index == 0 {
                    KeyMatch::Newest
                } else {
                    KeyMatch::Older(index)
                };
                return Some((plain, key));
            }
        }
        None
    }
}

/// The 256-bit encryption subkey of one secret.
fn subkey(secret: &[u8]) -> [u8; 32] {
    let mut okm = [0u8; 32];
    // 32 bytes is far below HKDF-SHA-256's limit (255 × 32), so expand can't fail.
    let _ = hkdf::Hkdf::<sha2::Sha256>::new(None, secret).expand(HKDF_INFO, &mut okm);
    okm
}

impl Codec for EncryptedCodec {
    fn encode(&self, record: &Record) -> Result<String, CodecError> {
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::fill(&mut nonce)
            .map_err(|_| CodecError("the system's random source failed".into()))?;
        self.seal(&record.to_koa_json(), &nonce)
    }

    fn decode(&self, value: &str, default_max_age: MaxAge) -> Option<Record> {
        self.decode_with_key(value, default_max_age)
            .map(|d| d.record)
    }

    fn decode_with_key(&self, value: &str, default_max_age: MaxAge) -> Option<Decoded> {
        let (plain, key) = self.open(value)?;
        let record = Record::from_koa_json(&plain, default_max_age)?;
        Some(Decoded { record, key })
    }

    fn authenticates(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests;
