//! actix-session 0.11 with its Redis store as a source: its cookie (`id`, the session key of
//! 64 alphanumeric characters, private under the app's 64-byte `Key` by default, or signed)
//! and its records (the session state as JSON: a map of keys to JSON-encoded strings, under the
//! bare session key, with the state's TTL).

use std::time::{SystemTime, UNIX_EPOCH};

use cookie::Key;
use session_core::store::{
    BoxFuture, Data, ScanResult, Source, SourceCookie, SourceSession, StoreError,
};

use crate::error::MigrateBuildError;
use crate::redis_kv::Kv;

/// actix-session with its Redis store as the library a site is leaving: give it to
/// `SessionLayerBuilder::migrate_from_source`.
///
/// ```no_run
/// # fn main() -> Result<(), session_migrate::MigrateBuildError> {
/// let key = [0u8; 64]; // the app's `actix_web::cookie::Key`, as its 64 bytes
/// let old = session_migrate::Actix::builder(&key).redis("redis://127.0.0.1:6379")?;
/// # let _ = old; Ok(()) }
/// ```
pub struct Actix {
    cookie: SourceCookie,
    key: Key,
    kv: Kv,
}

impl std::fmt::Debug for Actix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Actix")
            .field("cookie", &self.cookie.name)
            .finish_non_exhaustive()
    }
}

/// Builds an [`Actix`] source: actix-session's defaults (cookie `id` on path `/`, no domain;
/// records under the bare session key) unless told otherwise.
pub struct ActixBuilder {
    cookie: SourceCookie,
    key: Result<Key, MigrateBuildError>,
    prefix: String,
}

impl Actix {
    /// A builder for an app whose `Key` is these 64 bytes (`Key::from(&bytes)`; a cookie is
    /// accepted if it opens as private or checks out as signed under it). A key of another
    /// length fails at build.
    pub fn builder(key: &[u8]) -> ActixBuilder {
        ActixBuilder {
            cookie: SourceCookie {
                name: "id".into(),
                path: "/".into(),
                domain: None,
            },
            key: crate::keyed::key(key),
            prefix: String::new(),
        }
    }
}

impl ActixBuilder {
    /// The old app's cookie name (`cookie_name`; default `id`).
    pub fn cookie_name(mut self, name: impl Into<String>) -> Self {
        self.cookie.name = name.into();
        self
    }

    /// The old app's cookie path (`cookie_path`; default `/`).
    pub fn cookie_path(mut self, path: impl Into<String>) -> Self {
        self.cookie.path = path.into();
        self
    }

    /// The old app's cookie domain (`cookie_domain`; default none).
    pub fn cookie_domain(mut self, domain: impl Into<String>) -> Self {
        self.cookie.domain = Some(domain.into());
        self
    }

    /// A prefix the store's `cache_keygen` put before the session key (default none).
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// The source on actix-session's Redis. Connects lazily: a Redis that is down fails the
    /// requests that need it (a 503), not the start. Call it within a Tokio runtime.
    pub fn redis(self, url: &str) -> Result<Actix, MigrateBuildError> {
        Ok(Actix {
            cookie: self.cookie,
            key: self.key?,
            kv: Kv::new(url, self.prefix, "actix-session")?,
        })
    }
}

/// Whether `key` is an actix-session session key: 64 ASCII letters and digits.
fn is_key(key: &str) -> bool {
    key.len() == 64 && key.bytes().all(|b| b.is_ascii_alphanumeric())
}

impl Actix {
    /// A record as the store wrote it: each value a JSON text, decoded into its JSON value;
    /// `ttl_ms` is what Redis says is left of it.
    fn decode(bytes: &[u8], ttl_ms: i64) -> Option<SourceSession> {
        let state: std::collections::HashMap<String, String> =
            serde_json::from_slice(bytes).ok()?;
        let mut data = Data::new();
        for (k, v) in state {
            data.insert(k, serde_json::from_str(&v).ok()?);
        }
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        let expires_ms = u64::try_from(ttl_ms)
            .ok()
            .filter(|&ms| ms > 0)
            .map(|ms| now.saturating_add(ms));
        Some(SourceSession {
            data,
            expires_ms,
            // actix-session keeps no creation time, and no per-session lifetime.
            created_ms: None,
            max_age: None,
        })
    }
}

impl Source for Actix {
    fn name(&self) -> &str {
        "actix-session"
    }

    fn cookie(&self) -> &SourceCookie {
        &self.cookie
    }

    fn verify(&self, value: &str) -> Option<String> {
        // As actix-web reads it: percent-decoded, then opened (private) or checked (signed).
        let key = crate::keyed::open(&self.cookie.name, value, Some(&self.key))?;
        is_key(&key).then_some(key)
    }

    fn load<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Option<SourceSession>, StoreError>> {
        Box::pin(async move {
            let Some((bytes, ttl)) = self.kv.get(id).await? else {
                return Ok(None);
            };
            if ttl == -2 {
                // Expired between the GET and the PTTL.
                return Ok(None);
            }
            Self::decode(&bytes, ttl)
                .map(Some)
                .ok_or_else(|| self.kv.corrupt())
        })
    }

    fn delete<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(self.kv.del(id))
    }

    fn scan<'a>(&'a self, cursor: Option<&'a str>, count: usize) -> BoxFuture<'a, ScanResult> {
        Box::pin(self.kv.scan(cursor, count, is_key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_keys_are_64_letters_and_digits() {
        assert!(is_key(&"a1".repeat(32)));
        assert!(!is_key(&"a1".repeat(31)));
        assert!(!is_key(&format!("{}-", "a".repeat(63))));
    }

    #[test]
    fn a_record_decodes_each_value_from_its_json_text() {
        let s = Actix::decode(br#"{"user":"\"ann\"","views":"41"}"#, 3_600_000).unwrap();
        assert_eq!(s.data["user"], "ann");
        assert_eq!(s.data["views"], 41);
        assert!(s.expires_ms.is_some());
        assert_eq!(Actix::decode(b"{}", -1).unwrap().expires_ms, None);
        for bad in [&br#"{"a":"not json"}"#[..], b"[1]", b"{\"a\":1}"] {
            assert!(Actix::decode(bad, 1000).is_none());
        }
    }

    #[test]
    fn a_key_that_is_not_64_bytes_fails_at_build() {
        let b = Actix::builder(&[1; 32]);
        assert!(matches!(b.key, Err(MigrateBuildError::KeyLength(32))));
    }
}
