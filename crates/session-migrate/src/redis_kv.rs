//! Redis as the libraries keep their sessions there, each a string under a key (its prefix and
//! the session id): the reads, deletes and scans their sources share.

use std::time::Duration;

use session_core::store::{ScanResult, StoreError};

use crate::error::MigrateBuildError;

/// How long a source waits for a connection of its pool (the layer's store time limit bounds
/// every call as well).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Connections each source keeps at most.
const POOL_SIZE: u32 = 8;

/// One library's sessions in one Redis.
pub(crate) struct Kv {
    pool: bb8::Pool<bb8_redis::RedisConnectionManager>,
    prefix: String,
    /// The library, for errors ("express-session store: …").
    library: &'static str,
}

impl Kv {
    /// Connects lazily: a Redis that is down fails the calls, not the build.
    pub(crate) fn new(
        url: &str,
        prefix: String,
        library: &'static str,
    ) -> Result<Self, MigrateBuildError> {
        let manager = bb8_redis::RedisConnectionManager::new(url)
            .map_err(|_| MigrateBuildError::Url("not a Redis URL".into()))?;
        let pool = bb8::Pool::builder()
            .max_size(POOL_SIZE)
            .connection_timeout(CONNECT_TIMEOUT)
            .build_unchecked(manager);
        Ok(Self {
            pool,
            prefix,
            library,
        })
    }

    fn unavailable(&self, what: &str) -> StoreError {
        StoreError::Unavailable(format!("{} store: {what}", self.library))
    }

    /// The library's record is not what is under a key.
    pub(crate) fn corrupt(&self) -> StoreError {
        StoreError::Corrupt(format!("not an {} record", self.library))
    }

    async fn conn(
        &self,
    ) -> Result<bb8::PooledConnection<'_, bb8_redis::RedisConnectionManager>, StoreError> {
        self.pool
            .get()
            .await
            .map_err(|_| self.unavailable("no connection"))
    }

    /// The string under `id`, and the milliseconds its key has left (`PTTL`: negative without
    /// one); `None` when there is none.
    pub(crate) async fn get(&self, id: &str) -> Result<Option<(Vec<u8>, i64)>, StoreError> {
        let k = format!("{}{id}", self.prefix);
        let (bytes, ttl): (Option<Vec<u8>>, i64) = redis::pipe()
            .cmd("GET")
            .arg(&k)
            .cmd("PTTL")
            .arg(&k)
            .query_async(&mut *self.conn().await?)
            .await
            .map_err(|e| match e.code() {
                // An id-shaped key of something else (a hash, a list).
                Some("WRONGTYPE") => self.corrupt(),
                _ => self.unavailable("GET failed"),
            })?;
        Ok(bytes.map(|b| (b, ttl)))
    }

    /// Deletes the session under `id` (none there is no error).
    pub(crate) async fn del(&self, id: &str) -> Result<(), StoreError> {
        let _: i64 = redis::cmd("DEL")
            .arg(format!("{}{id}", self.prefix))
            .query_async(&mut *self.conn().await?)
            .await
            .map_err(|_| self.unavailable("DEL failed"))?;
        Ok(())
    }

    /// About `count` session ids from `cursor` on: the string keys under the prefix whose rest
    /// `is_id` takes (other keys of the database are left out by type and shape, and a value
    /// that is not the library's record is refused when read).
    pub(crate) async fn scan(
        &self,
        cursor: Option<&str>,
        count: usize,
        is_id: fn(&str) -> bool,
    ) -> ScanResult {
        // The prefix literally: glob characters in it are escaped.
        let mut pattern = String::new();
        for c in self.prefix.chars() {
            if matches!(c, '*' | '?' | '[' | ']' | '\\') {
                pattern.push('\\');
            }
            pattern.push(c);
        }
        pattern.push('*');
        let (next, keys): (String, Vec<Vec<u8>>) = redis::cmd("SCAN")
            .arg(cursor.unwrap_or("0"))
            .arg("MATCH")
            .arg(pattern)
            .arg("COUNT")
            .arg(count)
            .arg("TYPE")
            .arg("string")
            .query_async(&mut *self.conn().await?)
            .await
            .map_err(|_| self.unavailable("SCAN failed"))?;
        let ids = keys
            .into_iter()
            .filter_map(|k| String::from_utf8(k).ok())
            .filter_map(|k| k.strip_prefix(self.prefix.as_str()).map(str::to_owned))
            .filter(|id| is_id(id))
            .collect();
        Ok((ids, (next != "0").then_some(next)))
    }
}
