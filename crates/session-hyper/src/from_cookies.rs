//! Our own cookie mode as a migrating source: a site that kept its sessions in the cookie
//! (signed or encrypted) moves them into a store without logging anyone out
//! ([`SessionLayerBuilder::migrate_from_cookie_mode`](crate::SessionLayerBuilder::migrate_from_cookie_mode)).
//!
//! A cookie-mode session lives only in the browser: there is no old record to delete once it
//! has moved, so "deleted" is a tombstone in the layer's store, under a key derived from the
//! cookie's value, that lives as long as the old cookie could still be accepted. A replay of
//! the old cookie after its move, or after a logout that ended it, finds the tombstone and is
//! anonymous. The old cookie is read with the old layer's own jar and codec (its keys, its
//! `.sig` cookie or its encryption), so only a cookie the old app issued moves.

use std::sync::Arc;
use std::time::Duration;

use http::HeaderValue;
use session_cookie::{Codec, Incoming, SessionCookies};
use session_core::Config;
use session_core::driver::{KeyDerivation, SessionId, is_live_now};
use session_core::store::{
    BoxFuture, Created, Data, DynStore, Loaded, MaxAge, Meta, Record, ScanResult, Source,
    SourceCookie, SourceSession, StoreError, StoreKey,
};

/// How long a tombstone lives when the old cookie said nothing of its end (a browser-session
/// cookie): the longest a browser keeps any cookie (RFC 6265bis caps `Max-Age` and `Expires`
/// at 400 days).
const UNBOUNDED_TOMBSTONE: Duration = Duration::from_secs(400 * 86_400);

/// The old layer's cookies, read as the old app read them.
pub(crate) struct CookieSource {
    /// The old cookie-mode layer's configuration.
    config: Config,
    /// Its jar (keys, `.sig` cookie) and codec.
    cookies: SessionCookies,
    codec: Arc<dyn Codec>,
    /// The layer's store, where the tombstones go.
    store: Arc<dyn DynStore>,
    /// How the new layer derives keys (the tombstones are keys of its store).
    keys: KeyDerivation,
    cookie: SourceCookie,
}

impl std::fmt::Debug for CookieSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CookieSource")
            .field("cookie", &self.cookie.name)
            .finish_non_exhaustive()
    }
}

impl CookieSource {
    /// The old cookie-mode layer's configuration, jar and codec; the new layer's store and key
    /// derivation.
    pub(crate) fn new(
        (config, cookies, codec): (Config, SessionCookies, Arc<dyn Codec>),
        store: Arc<dyn DynStore>,
        keys: KeyDerivation,
    ) -> Self {
        let c = config.cookie();
        let cookie = SourceCookie {
            name: c.name.clone(),
            path: c.path.clone(),
            domain: c.domain.clone(),
        };
        Self {
            config,
            cookies,
            codec,
            store,
            keys,
            cookie,
        }
    }

    /// Whether the old cookie had a `.sig` cookie beside it.
    pub(crate) fn signed(&self) -> bool {
        self.cookies.keygrip().is_some()
    }

    /// The old record in a value the old jar verified, if it opens and is live.
    fn open(&self, value: &str) -> Option<Record> {
        let record = self.codec.decode(value, self.config.max_age())?;
        let source = session_core::driver::Source::Cookie(record);
        if !is_live_now(&self.config, &source) {
            return None;
        }
        match source {
            session_core::driver::Source::Cookie(record) => Some(record),
            _ => None,
        }
    }

    /// The old session value the request's cookies carry, verified as the old app verified it
    /// (no I/O). Two different live ones (a cookie planted beside the user's) are ambiguous:
    /// none moves, as with any other source; none among planted cookies that can't all be
    /// checked.
    pub(crate) fn read<'a>(
        &self,
        fields: impl IntoIterator<Item = &'a HeaderValue>,
    ) -> Option<String> {
        match self
            .cookies
            .read(fields.into_iter().map(HeaderValue::as_bytes))
        {
            Incoming::Valid { value, .. } => self.open(value).map(|_| value.to_owned()),
            Incoming::Candidates {
                verified,
                unchecked: false,
            } => {
                let mut live = verified.iter().filter(|v| self.open(v.value).is_some());
                let first = live.next()?;
                live.all(|v| v.value == first.value)
                    .then(|| first.value.to_owned())
            }
            _ => None,
        }
    }

    /// The tombstone of an old cookie value: a key of the layer's store derived from the value.
    fn tombstone(&self, value: &str) -> StoreKey {
        let digest = KeyDerivation::Hashed {
            prefix: String::new(),
        }
        .derive(&SessionId::new_unchecked(value.to_owned()));
        let id = SessionId::new_unchecked(format!("moved.cookie.ended.{}", digest.as_str()));
        self.keys.derive(&id)
    }
}

impl Source for CookieSource {
    fn name(&self) -> &str {
        "cookie"
    }

    fn cookie(&self) -> &SourceCookie {
        &self.cookie
    }

    /// A value alone verifies only when the codec authenticates it (encrypted cookies); a
    /// signed one needs its `.sig` cookie, which the layer reads with [`CookieSource::read`].
    fn verify(&self, value: &str) -> Option<String> {
        (self.codec.authenticates() && self.open(value).is_some()).then(|| value.to_owned())
    }

    fn load<'a>(
        &'a self,
        value: &'a str,
    ) -> BoxFuture<'a, Result<Option<SourceSession>, StoreError>> {
        Box::pin(async move {
            // A value that moved, or whose session a logout ended, stays ended.
            if let Loaded::Live(_) = self.store.load_dyn(&self.tombstone(value)).await? {
                return Ok(None);
            }
            Ok(self.open(value).map(|record| SourceSession {
                data: record.data,
                expires_ms: record.meta.expire,
                created_ms: record.meta.created,
                max_age: Some(record.meta.max_age),
            }))
        })
    }

    fn delete<'a>(&'a self, value: &'a str) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let now = self.config.now_ms();
            // As long as the old cookie could be accepted (no longer than any store keeps).
            let ttl = self
                .open(value)
                .and_then(|r| r.meta.expire)
                .map_or(UNBOUNDED_TOMBSTONE, |e| {
                    Duration::from_millis(e.saturating_sub(now))
                })
                .max(Duration::from_secs(1))
                .min(session_core::store::MAX_STORE_TTL);
            let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
            let record = Record {
                data: Data::new(),
                meta: Meta {
                    expire: Some(now.saturating_add(ttl_ms)),
                    max_age: MaxAge::Ms(ttl_ms),
                    created: None,
                },
            };
            // A collision is this value's tombstone, written by a request racing this one.
            let _: Created = self
                .store
                .create_dyn(&self.tombstone(value), &record, ttl)
                .await?;
            Ok(())
        })
    }

    /// Cookie-mode sessions live in the browsers: there is nothing to drain.
    fn scan<'a>(&'a self, _cursor: Option<&'a str>, _count: usize) -> BoxFuture<'a, ScanResult> {
        Box::pin(async { Ok((Vec::new(), None)) })
    }
}
