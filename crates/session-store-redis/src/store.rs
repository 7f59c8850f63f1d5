//! The store itself: [`RedisStore`], its record [`Format`], its accessors, and its
//! [`Store`] implementation, where each method hands the call to the format's module once.

use std::fmt;
use std::time::Duration;

use session_core::MaxAge;

use session_core::store::{
    Change, Created, Destroyed, Loaded, Meta, Record, Store, StoreError, StoreKey, Supersede,
    Updated,
};

use crate::cache::CacheStats;
use crate::cluster_cache::ClusterCache;
use crate::connection::Redis;
use crate::koa;
use crate::scripts::{SCRIPTS, destroyed};
use crate::tracking::ClientCache;
use crate::v1;

/// How sessions are laid out in Redis.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    /// Our versioned hash format, with per-key delta writes.
    #[default]
    V1,
    /// koa-session's JSON string under the raw id (whole-record writes).
    Koa,
}

/// The Redis session store. Cheap to clone (clones share the pool).
#[derive(Clone)]
pub struct RedisStore {
    redis: Redis,
    url: String,
    prefix: String,
    format: Format,
    koa_default_max_age: MaxAge,
    max_record_bytes: usize,
    cache: Option<Cache>,
}

/// The client cache of one server (or a Sentinel's master), or of a Cluster.
#[derive(Clone)]
pub(crate) enum Cache {
    Server(ClientCache),
    Cluster(ClusterCache),
}

impl Cache {
    fn stats(&self) -> CacheStats {
        match self {
            Self::Server(c) => c.stats(),
            Self::Cluster(c) => c.stats(),
        }
    }

    fn invalidate(&self, key: &str) {
        match self {
            Self::Server(c) => c.invalidate(key),
            Self::Cluster(c) => c.invalidate(key),
        }
    }

    async fn load(&self, db: &Redis, key: &str) -> Result<Loaded, StoreError> {
        match self {
            Self::Server(c) => c.load(db, key).await,
            Self::Cluster(c) => c.load(db, key).await,
        }
    }

    /// A rolling session's touch: through the tracking connection on one server (it moves the
    /// cached copy's expiry); through the cluster connection on a Cluster (the copy is dropped).
    async fn touch(
        &self,
        db: &Redis,
        key: &str,
        meta: &Meta,
        ttl: u64,
    ) -> Result<Updated, StoreError> {
        match self {
            Self::Server(c) => c.touch(db, key, meta, ttl).await,
            Self::Cluster(c) => {
                let done = v1::touch(db, key, meta, ttl).await;
                c.invalidate(key);
                done
            }
        }
    }
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStore")
            .field("url", &self.url)
            .field("prefix", &self.prefix)
            .field("format", &self.format)
            .field("pool", &self.redis.pool_state())
            .field("client_cache", &self.cache.as_ref().map(Cache::stats))
            .finish_non_exhaustive()
    }
}

/// Drops a key from the client cache when it goes out of scope (see
/// [`RedisStore::writing`]).
struct Written<'a> {
    cache: Option<&'a Cache>,
    key: &'a str,
}

impl Written<'_> {
    /// The write already left the cache right (a save that moved the cached copy on): nothing
    /// to drop.
    fn settled(mut self) {
        self.cache = None;
    }
}

impl Drop for Written<'_> {
    fn drop(&mut self) {
        if let Some(cache) = self.cache {
            cache.invalidate(self.key);
        }
    }
}

/// A TTL in ms for PEXPIRE: at least 1, and clamped to
/// [`MAX_STORE_TTL`](session_core::store::MAX_STORE_TTL) (Redis refuses an expiry time that
/// overflows, and a script that failed there would leave its key without a TTL).
fn ms(d: Duration) -> u64 {
    let d = d.min(session_core::store::MAX_STORE_TTL);
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
}

impl RedisStore {
    /// A store on `redis`; `url` is already redacted.
    pub(crate) fn new(
        redis: Redis,
        url: String,
        prefix: String,
        format: Format,
        koa_default_max_age: MaxAge,
        max_record_bytes: usize,
        cache: Option<Cache>,
    ) -> Self {
        Self {
            redis,
            url,
            prefix,
            format,
            koa_default_max_age,
            max_record_bytes,
            cache,
        }
    }

    /// What the client cache holds and has done; `None` without one (see
    /// [`RedisStoreBuilder::client_cache`](crate::RedisStoreBuilder::client_cache)).
    pub fn client_cache_stats(&self) -> Option<CacheStats> {
        self.cache.as_ref().map(Cache::stats)
    }

    /// Taken before a write of `k`: when the write returns, or when the request is dropped
    /// while it runs (a timeout, a client gone: the command may still run in Redis), this
    /// process's cached copy of `k` is dropped. No push comes for it: the write ran on the
    /// tracking connection (`NOLOOP`), or Redis's push is still on its way. A fill sent after
    /// the drop goes out behind the write on the same connection, so it reads the write.
    fn writing<'a>(&'a self, k: &'a str) -> Written<'a> {
        Written {
            cache: self.cache.as_ref(),
            key: k,
        }
    }

    /// The Redis key of a session key.
    pub fn redis_key(&self, key: &StoreKey) -> String {
        let mut k = String::with_capacity(self.prefix.len() + key.as_str().len());
        k.push_str(&self.prefix);
        k.push_str(key.as_str());
        k
    }

    /// The connection URL (or cluster seeds) with any password replaced, as `Debug` shows it:
    /// what an app may print at startup.
    pub fn redacted_url(&self) -> &str {
        &self.url
    }

    /// The key prefix.
    pub(crate) fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The connection.
    pub(crate) fn db(&self) -> &Redis {
        &self.redis
    }

    /// The record format.
    pub fn format(&self) -> Format {
        self.format
    }

    /// The remaining TTL of a session's Redis key (for tests and monitoring); `None` if absent,
    /// `Some(Duration::MAX)` for a key without TTL.
    pub async fn ttl(&self, key: &StoreKey) -> Result<Option<Duration>, StoreError> {
        let k = self.redis_key(key);
        Ok(match self.redis.pttl(&k).await? {
            -2 => None,
            -1 => Some(Duration::MAX),
            n => Some(Duration::from_millis(u64::try_from(n).unwrap_or(0))),
        })
    }
}

impl Store for RedisStore {
    fn system(&self) -> &'static str {
        "redis"
    }

    async fn create(
        &self,
        key: &StoreKey,
        record: &Record,
        ttl: Duration,
    ) -> Result<Created, StoreError> {
        let (k, ttl, limit) = (self.redis_key(key), ms(ttl), self.max_record_bytes);
        match self.format {
            Format::V1 => v1::create(&self.redis, &k, record, ttl, limit).await,
            Format::Koa => koa::create(&self.redis, &k, record, ttl, limit).await,
        }
    }

    async fn load(&self, key: &StoreKey) -> Result<Loaded, StoreError> {
        let k = self.redis_key(key);
        match self.format {
            Format::V1 => match &self.cache {
                Some(cache) => cache.load(&self.redis, &k).await,
                None => v1::load(&self.redis, &k).await,
            },
            Format::Koa => koa::load(&self.redis, &k, self.koa_default_max_age).await,
        }
    }

    async fn save(
        &self,
        key: &StoreKey,
        change: Change<'_>,
        ttl: Duration,
    ) -> Result<Updated, StoreError> {
        let (k, ttl, limit) = (self.redis_key(key), ms(ttl), self.max_record_bytes);
        let written = self.writing(&k);
        if let (Format::V1, Some(Cache::Server(cache))) = (self.format, &self.cache) {
            // Keeps the cached copy right instead of dropping it (`tracking::save`); on a
            // Cluster the save goes through the cluster connection and drops it below.
            let (done, settled) = cache.save(&self.redis, &k, change, ttl, limit).await;
            if settled {
                written.settled();
            }
            return done;
        }
        match self.format {
            Format::V1 => v1::save(&self.redis, &k, change, ttl, limit).await,
            Format::Koa => koa::save(&self.redis, &k, change, ttl, limit).await,
        }
    }

    async fn destroy(&self, key: &StoreKey) -> Result<Destroyed, StoreError> {
        // Both formats delete the same way; their scripts differ in how they read a marker.
        let script = match self.format {
            Format::V1 => &SCRIPTS.v1_destroy,
            Format::Koa => &SCRIPTS.koa_destroy,
        };
        let k = self.redis_key(key);
        let _written = self.writing(&k);
        let reply = self.redis.eval_reply(script, &k).await?;
        Ok(destroyed(reply, &self.prefix))
    }

    async fn supersede(
        &self,
        key: &StoreKey,
        successor: &StoreKey,
        ttl: Duration,
    ) -> Result<Supersede, StoreError> {
        let (k, next, ttl) = (self.redis_key(key), self.redis_key(successor), ms(ttl));
        let _written = self.writing(&k);
        match self.format {
            Format::V1 => v1::supersede(&self.redis, &k, &next, ttl).await,
            Format::Koa => koa::supersede(&self.redis, &k, &next, ttl).await,
        }
    }

    async fn touch(
        &self,
        key: &StoreKey,
        meta: Meta,
        ttl: Duration,
    ) -> Result<Updated, StoreError> {
        let (k, ttl) = (self.redis_key(key), ms(ttl));
        match self.format {
            Format::V1 => match &self.cache {
                Some(cache) => cache.touch(&self.redis, &k, &meta, ttl).await,
                None => v1::touch(&self.redis, &k, &meta, ttl).await,
            },
            Format::Koa => koa::touch(&self.redis, &k, &meta, ttl).await,
        }
    }

    /// [`Format::V1`] keeps an owner index; koa's format can't carry the owner binding (koa
    /// drops `_` keys when it writes a record), so it has none.
    fn owner_index(&self) -> Option<&dyn session_core::store::OwnerIndex> {
        match self.format {
            Format::V1 => Some(self),
            Format::Koa => None,
        }
    }

    /// `SCAN` over the store's prefix, skipping the owner index's keys; one server only (a
    /// Cluster answers an error).
    async fn scan(
        &self,
        cursor: Option<&str>,
        count: usize,
    ) -> Result<session_core::store::KeyScan, StoreError> {
        let cursor = match cursor {
            None => 0,
            Some(c) => c
                .parse::<u64>()
                .map_err(|_| StoreError::Backend("not a cursor of this store".to_owned()))?,
        };
        let (next, keys) = self.redis.scan(cursor, &self.prefix, count).await?;
        let owners = format!("{}owner:", self.prefix);
        let keys = keys
            .into_iter()
            .filter(|k| !k.starts_with(&owners))
            .filter_map(|k| k.strip_prefix(self.prefix.as_str()).map(StoreKey::from_raw))
            .collect();
        Ok((keys, (next != 0).then(|| next.to_string())))
    }

    fn merges_deltas(&self) -> bool {
        match self.format {
            Format::V1 => true,
            // Whole-record writes, as a Koa app's.
            Format::Koa => false,
        }
    }
}
