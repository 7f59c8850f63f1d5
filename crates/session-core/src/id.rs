//! Session ids, their generation and strict format check, and the store key derived from them.

use std::fmt;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

/// Bytes of OS randomness in a generated id (256 bits, above ASVS 5's 128-bit floor).
pub const ID_RANDOM_BYTES: usize = 32;
/// Length of the base64url form of [`ID_RANDOM_BYTES`] bytes.
pub const ID_LEN: usize = 43;
/// Longest id (prefix included) accepted from a client, checked before anything else.
pub const MAX_ID_LEN: usize = 256;

/// A session id: the secret a client presents to find its session.
///
/// `Debug` and `Display` never show it: ids are bearer credentials and must stay out of logs.
///
/// Shared (`Arc<str>`): a request hands its id to the load, the commit and the cookie, and
/// clones must not copy it each time.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct SessionId(Arc<str>);

impl SessionId {
    /// Wraps a string that has already passed [`IdGenerator::is_valid`].
    ///
    /// Prefer [`IdPolicy::parse`], which checks the format first.
    pub fn new_unchecked(id: String) -> Self {
        Self(Arc::from(id))
    }

    /// The id as the cookie or header carries it.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SessionId(<redacted>)")
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Draws new ids and says whether an incoming string could be one (koa's `genid`).
///
/// `is_valid` is the strict check that runs on every incoming id before any store call, so it
/// must reject anything the generator would never produce.
pub trait IdGenerator: Send + Sync + 'static {
    /// A fresh, unpredictable id (without the configured prefix: [`IdPolicy`] adds it).
    fn generate(&self) -> Result<String, getrandom::Error>;
    /// Whether `id` (prefix already removed) has exactly the generator's format.
    fn is_valid(&self, id: &str) -> bool;
}

/// The default generator: 32 bytes from the OS CSPRNG, base64url without padding (43 chars).
#[derive(Debug, Clone, Copy, Default)]
pub struct RandomIdGenerator;

impl IdGenerator for RandomIdGenerator {
    fn generate(&self) -> Result<String, getrandom::Error> {
        let mut bytes = [0u8; ID_RANDOM_BYTES];
        getrandom::fill(&mut bytes)?;
        Ok(URL_SAFE_NO_PAD.encode(bytes))
    }

    fn is_valid(&self, id: &str) -> bool {
        is_random_id(id)
    }
}

/// Our ids, plus the `crypto.randomUUID()` ids a koa-session 7 app issued, so sessions created by
/// a Koa app load during a migration. New ids are always ours (koa's 122 bits are too few).
#[derive(Debug, Clone, Copy, Default)]
pub struct KoaCompatIdGenerator;

impl IdGenerator for KoaCompatIdGenerator {
    fn generate(&self) -> Result<String, getrandom::Error> {
        RandomIdGenerator.generate()
    }

    fn is_valid(&self, id: &str) -> bool {
        is_random_id(id) || is_uuid(id)
    }
}

fn is_random_id(id: &str) -> bool {
    id.len() == ID_LEN
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        // The last char of 32 bytes in base64url carries 2 padding bits that must be zero;
        // rejecting other forms keeps exactly one spelling per id.
        && URL_SAFE_NO_PAD
            .decode_slice(id, &mut [0u8; ID_RANDOM_BYTES + 16])
            .is_ok_and(|n| n == ID_RANDOM_BYTES)
}

fn is_uuid(id: &str) -> bool {
    let b = id.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(i, &c)| match i {
            8 | 13 | 18 | 23 => c == b'-',
            _ => c.is_ascii_digit() || (b'a'..=b'f').contains(&c),
        })
}

/// How ids are made and checked: the generator plus koa's `prefix` option.
#[derive(Clone)]
pub struct IdPolicy {
    prefix: String,
    generator: Arc<dyn IdGenerator>,
}

impl fmt::Debug for IdPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IdPolicy")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl Default for IdPolicy {
    fn default() -> Self {
        Self::new("", Arc::new(RandomIdGenerator))
    }
}

impl IdPolicy {
    /// A policy with a prefix (part of the id, as in koa) and a generator.
    pub fn new(prefix: impl Into<String>, generator: Arc<dyn IdGenerator>) -> Self {
        Self {
            prefix: prefix.into(),
            generator,
        }
    }

    /// The id prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// A fresh id, prefix included.
    pub fn generate(&self) -> Result<SessionId, getrandom::Error> {
        let raw = self.generator.generate()?;
        Ok(SessionId(concat(&self.prefix, &raw)))
    }

    /// The strict check of an incoming id: length cap, prefix, then the generator's format.
    /// Runs before any store call; `None` means "treat as no session".
    pub fn parse(&self, candidate: &str) -> Option<SessionId> {
        if candidate.len() > MAX_ID_LEN {
            return None;
        }
        let rest = candidate.strip_prefix(self.prefix.as_str())?;
        self.generator
            .is_valid(rest)
            .then(|| SessionId(Arc::from(candidate)))
    }
}

/// The key a store files a session under. Never the cookie value itself unless koa-compat
/// mode asks for it, so a dump of the store hands out no live session.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StoreKey(Arc<str>);

impl StoreKey {
    /// Wraps a ready-made key (stores' tests use this; sessions get keys from [`KeyDerivation`]).
    pub fn from_raw(key: impl Into<String>) -> Self {
        Self(Arc::from(key.into()))
    }

    /// The key as the store sees it.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for StoreKey {
    // In koa-compat mode the key is the live id, so it is redacted like one.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("StoreKey(<redacted>)")
    }
}

/// Domain separation for the id hash: a key derived for sessions can't collide with another use
/// of SHA-256 over the same bytes.
const KEY_HASH_TAG: &[u8] = b"session-core/store-key/v1\0";

/// How a [`StoreKey`] is derived from a [`SessionId`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyDerivation {
    /// `prefix` + base64url(SHA-256(tag ‖ id)): the default. The key is useless as a cookie.
    Hashed {
        /// Namespace so several apps can share one store (e.g. `sess:`).
        prefix: String,
    },
    /// The id verbatim, as koa-session stores it. Only for sharing a store with a Koa app.
    Raw,
}

impl Default for KeyDerivation {
    fn default() -> Self {
        Self::Hashed {
            prefix: "sess:".to_owned(),
        }
    }
}

impl KeyDerivation {
    /// The store key for `id`.
    pub fn derive(&self, id: &SessionId) -> StoreKey {
        match self {
            Self::Raw => StoreKey(Arc::clone(&id.0)),
            Self::Hashed { prefix } => {
                let mut h = Sha256::new();
                h.update(KEY_HASH_TAG);
                h.update(id.0.as_bytes());
                let digest = h.finalize();
                let mut encoded = [0u8; ID_LEN];
                let n = URL_SAFE_NO_PAD
                    .encode_slice(digest, &mut encoded)
                    .unwrap_or_default();
                // base64 output is ASCII.
                let encoded = std::str::from_utf8(&encoded[..n]).unwrap_or_default();
                StoreKey(concat(prefix, encoded))
            }
        }
    }
}

/// Whether every byte is an RFC 6265 `cookie-octet` (no CTLs, whitespace, `"`, `,`, `;`, `\`):
/// what an id (its prefix included) and any cookie value must be made of.
pub fn is_cookie_value(value: &[u8]) -> bool {
    // A table lookup per byte: every request checks its cookie values, and the range match
    // compiled to a chain of compares per byte.
    value.iter().all(|&b| COOKIE_OCTET[usize::from(b)])
}

const COOKIE_OCTET: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = 0usize;
    while b < 256 {
        t[b] = matches!(b, 0x21 | 0x23..=0x2B | 0x2D..=0x3A | 0x3C..=0x5B | 0x5D..=0x7E);
        b += 1;
    }
    t
};

/// `a` + `b` as one shared string, in one allocation when they are short (ids and keys are).
fn concat(a: &str, b: &str) -> Arc<str> {
    let mut buf = [0u8; 128];
    let len = a.len() + b.len();
    if len <= buf.len() {
        buf[..a.len()].copy_from_slice(a.as_bytes());
        buf[a.len()..len].copy_from_slice(b.as_bytes());
        // Two whole `str`s joined are valid UTF-8.
        if let Ok(s) = std::str::from_utf8(&buf[..len]) {
            return Arc::from(s);
        }
    }
    Arc::from(format!("{a}{b}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn generated_ids_are_43_chars_of_base64url_and_distinct() {
        let policy = IdPolicy::default();
        let mut seen = HashSet::new();
        for _ in 0..100_000 {
            let id = policy.generate().unwrap();
            assert_eq!(id.as_str().len(), ID_LEN);
            assert!(policy.parse(id.as_str()).is_some());
            assert_eq!(URL_SAFE_NO_PAD.decode(id.as_str()).unwrap().len(), 32);
            assert!(seen.insert(id));
        }
    }

    #[test]
    fn strict_parse_rejects_anything_not_generated() {
        let policy = IdPolicy::default();
        let good = policy.generate().unwrap();
        for bad in [
            "",
            "*",
            "sess:*",
            "{a}",
            "%0d%0a",
            &"A".repeat(8192),
            "ü".repeat(22).as_str(),
            &good.as_str()[..42],
            &format!("{}A", good.as_str()),
            &good
                .as_str()
                .replace(|c: char| c.is_ascii_alphabetic(), "+"),
            "00000000-0000-4000-8000-000000000000",
        ] {
            assert!(policy.parse(bad).is_none(), "accepted {bad:?}");
        }
        // Non-canonical last character (padding bits set) is rejected.
        let mut noncanon = good.as_str()[..42].to_owned();
        noncanon.push('B');
        let canon_last = good.as_str().as_bytes()[42];
        if canon_last != b'B' {
            let decoded = URL_SAFE_NO_PAD.decode(&noncanon);
            assert_eq!(policy.parse(&noncanon).is_some(), decoded.is_ok());
        }
    }

    #[test]
    fn prefix_is_part_of_the_id() {
        let policy = IdPolicy::new("app1:", Arc::new(RandomIdGenerator));
        let id = policy.generate().unwrap();
        assert!(id.as_str().starts_with("app1:"));
        assert!(policy.parse(id.as_str()).is_some());
        assert!(policy.parse(&id.as_str()[5..]).is_none());
    }

    #[test]
    fn koa_compat_accepts_uuids() {
        let policy = IdPolicy::new("", Arc::new(KoaCompatIdGenerator));
        assert!(
            policy
                .parse("3b241101-e2bb-4255-8caf-4136c566a962")
                .is_some()
        );
        assert!(
            policy
                .parse("3B241101-E2BB-4255-8CAF-4136C566A962")
                .is_none()
        );
        assert!(
            policy
                .parse("3b241101-e2bb-4255-8caf-4136c566a96")
                .is_none()
        );
        assert!(policy.parse(policy.generate().unwrap().as_str()).is_some());
    }

    #[test]
    fn hashed_key_hides_the_id_and_raw_key_is_the_id() {
        let id = IdPolicy::default().generate().unwrap();
        let hashed = KeyDerivation::default().derive(&id);
        assert!(hashed.as_str().starts_with("sess:"));
        assert!(!hashed.as_str().contains(id.as_str()));
        assert_eq!(hashed, KeyDerivation::default().derive(&id));
        assert_eq!(KeyDerivation::Raw.derive(&id).as_str(), id.as_str());
    }

    #[test]
    fn debug_and_display_redact() {
        let id = IdPolicy::default().generate().unwrap();
        assert!(!format!("{id:?}{id}").contains(id.as_str()));
        let key = KeyDerivation::Raw.derive(&id);
        assert!(!format!("{key:?}").contains(id.as_str()));
    }
}
