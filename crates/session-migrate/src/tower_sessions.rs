//! tower-sessions as a source: its cookie (the session id, 22 characters of URL-safe base64;
//! plain, or signed or encrypted with a `cookie::Key` through tower-cookies) and its records
//! (MessagePack of the id, the data and the expiry date), in Redis (under the bare id) or in
//! PostgreSQL (`"tower_sessions"."session"` by default).

use std::time::Duration;

use base64::Engine as _;
use cookie::Key;
use session_core::store::{
    BoxFuture, Data, ScanResult, Source, SourceCookie, SourceSession, StoreError,
};

use crate::error::MigrateBuildError;

/// How long a source waits for a connection of its pool (the layer's store time limit bounds
/// every call as well).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Connections each source keeps at most.
const POOL_SIZE: u32 = 8;

/// tower-sessions' record, as its stores write it (`rmp_serde::to_vec`: a MessagePack array).
#[derive(serde::Deserialize)]
struct Record {
    #[allow(dead_code)]
    id: i128,
    data: Data,
    expiry_date: time::OffsetDateTime,
}

/// How the old app protected its cookie: not at all, or with a `Key` (signed or private:
/// whichever the value checks out as).
enum Check {
    Plain,
    Keyed(Key),
}

enum Backend {
    #[cfg(feature = "tower-sessions-redis")]
    Redis(bb8::Pool<bb8_redis::RedisConnectionManager>),
    #[cfg(feature = "tower-sessions-postgres")]
    Postgres {
        pool: bb8::Pool<bb8_postgres::PostgresConnectionManager<tokio_postgres::NoTls>>,
        select: String,
        delete: String,
        scan: String,
    },
}

/// tower-sessions as the library a site is leaving: give it to
/// `SessionLayerBuilder::migrate_from_source`.
///
/// ```no_run
/// # #[cfg(feature = "tower-sessions-redis")]
/// # fn main() -> Result<(), session_migrate::MigrateBuildError> {
/// let old = session_migrate::TowerSessions::builder().redis("redis://127.0.0.1:6379")?;
/// # let _ = old; Ok(()) }
/// # #[cfg(not(feature = "tower-sessions-redis"))] fn main() {}
/// ```
pub struct TowerSessions {
    cookie: SourceCookie,
    check: Check,
    backend: Backend,
}

impl std::fmt::Debug for TowerSessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TowerSessions")
            .field("cookie", &self.cookie.name)
            .finish_non_exhaustive()
    }
}

/// Builds a [`TowerSessions`] source: tower-sessions' defaults (cookie `id` on path `/`, no
/// domain, unsigned) unless told otherwise.
pub struct TowerSessionsBuilder {
    cookie: SourceCookie,
    check: Result<Check, MigrateBuildError>,
    schema: String,
    table: String,
}

impl TowerSessions {
    /// A builder with tower-sessions' defaults.
    pub fn builder() -> TowerSessionsBuilder {
        TowerSessionsBuilder {
            cookie: SourceCookie {
                name: "id".into(),
                path: "/".into(),
                domain: None,
            },
            check: Ok(Check::Plain),
            schema: "tower_sessions".into(),
            table: "session".into(),
        }
    }
}

impl TowerSessionsBuilder {
    /// The old app's cookie name (`SessionManagerLayer::with_name`; default `id`).
    pub fn cookie_name(mut self, name: impl Into<String>) -> Self {
        self.cookie.name = name.into();
        self
    }

    /// The old app's cookie path (`with_path`; default `/`).
    pub fn cookie_path(mut self, path: impl Into<String>) -> Self {
        self.cookie.path = path.into();
        self
    }

    /// The old app's cookie domain (`with_domain`; default none).
    pub fn cookie_domain(mut self, domain: impl Into<String>) -> Self {
        self.cookie.domain = Some(domain.into());
        self
    }

    /// The old app signed (`with_signed`) or encrypted (`with_private`) its cookie with this
    /// 64-byte `Key`: a cookie value is accepted if it checks out as either, and an unsigned
    /// one is refused. A key of another length fails at build.
    pub fn key(mut self, key: &[u8]) -> Self {
        self.check = crate::keyed::key(key).map(Check::Keyed);
        self
    }

    /// The schema and table of tower-sessions-sqlx-store (`with_schema_name`,
    /// `with_table_name`; default `tower_sessions`.`session`).
    pub fn table(mut self, schema: impl Into<String>, table: impl Into<String>) -> Self {
        self.schema = schema.into();
        self.table = table.into();
        self
    }

    /// The source on tower-sessions-redis-store's Redis (records under the bare session id).
    /// Connects lazily: a Redis that is down fails the requests that need it (a 503), not the
    /// start. Call it within a Tokio runtime (the pool's upkeep runs on it).
    #[cfg(feature = "tower-sessions-redis")]
    #[cfg_attr(docsrs, doc(cfg(feature = "tower-sessions-redis")))]
    pub fn redis(self, url: &str) -> Result<TowerSessions, MigrateBuildError> {
        let manager = bb8_redis::RedisConnectionManager::new(url)
            .map_err(|_| MigrateBuildError::Url("not a Redis URL".into()))?;
        let pool = bb8::Pool::builder()
            .max_size(POOL_SIZE)
            .connection_timeout(CONNECT_TIMEOUT)
            .build_unchecked(manager);
        Ok(TowerSessions {
            cookie: self.cookie,
            check: self.check?,
            backend: Backend::Redis(pool),
        })
    }

    /// The source on tower-sessions-sqlx-store's PostgreSQL table. Connects lazily; call it
    /// within a Tokio runtime.
    #[cfg(feature = "tower-sessions-postgres")]
    #[cfg_attr(docsrs, doc(cfg(feature = "tower-sessions-postgres")))]
    pub fn postgres(self, url: &str) -> Result<TowerSessions, MigrateBuildError> {
        for name in [&self.schema, &self.table] {
            let plain = !name.is_empty()
                && name.len() <= 63
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !plain {
                return Err(MigrateBuildError::Identifier(name.clone()));
            }
        }
        let config: tokio_postgres::Config = url
            .parse()
            .map_err(|_| MigrateBuildError::Url("not a PostgreSQL URL".into()))?;
        let manager = bb8_postgres::PostgresConnectionManager::new(config, tokio_postgres::NoTls);
        let pool = bb8::Pool::builder()
            .max_size(POOL_SIZE)
            .connection_timeout(CONNECT_TIMEOUT)
            .build_unchecked(manager);
        let table = format!("\"{}\".\"{}\"", self.schema, self.table);
        Ok(TowerSessions {
            cookie: self.cookie,
            check: self.check?,
            backend: Backend::Postgres {
                pool,
                select: format!("select data from {table} where id = $1 and expiry_date > now()"),
                delete: format!("delete from {table} where id = $1"),
                scan: format!("select id from {table} where id > $1 order by id limit $2"),
            },
        })
    }
}

/// Whether `id` is a tower-sessions id: 16 bytes (an `i128`) in URL-safe base64 without
/// padding.
fn is_id(id: &str) -> bool {
    id.len() == 22
        && base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(id)
            .is_ok_and(|b| b.len() == 16)
}

fn unavailable(what: &str) -> StoreError {
    StoreError::Unavailable(format!("tower-sessions store: {what}"))
}

impl TowerSessions {
    fn decode(bytes: &[u8]) -> Result<SourceSession, StoreError> {
        let record: Record = rmp_serde::from_slice(bytes)
            .map_err(|_| StoreError::Corrupt("not a tower-sessions record".into()))?;
        let expires = record.expiry_date.unix_timestamp_nanos() / 1_000_000;
        Ok(SourceSession {
            data: record.data,
            expires_ms: Some(u64::try_from(expires).unwrap_or(0)),
            // tower-sessions keeps no creation time.
            created_ms: None,
            max_age: None,
        })
    }

    async fn load_id(&self, id: &str) -> Result<Option<SourceSession>, StoreError> {
        let bytes: Option<Vec<u8>> = match &self.backend {
            #[cfg(feature = "tower-sessions-redis")]
            Backend::Redis(pool) => {
                let mut conn = pool.get().await.map_err(|_| unavailable("no connection"))?;
                redis::cmd("GET")
                    .arg(id)
                    .query_async(&mut *conn)
                    .await
                    .map_err(|e| match e.code() {
                        // An id-shaped key of something else (a hash, a list).
                        Some("WRONGTYPE") => {
                            StoreError::Corrupt("not a tower-sessions record".into())
                        }
                        _ => unavailable("GET failed"),
                    })?
            }
            #[cfg(feature = "tower-sessions-postgres")]
            Backend::Postgres { pool, select, .. } => {
                let conn = pool.get().await.map_err(|_| unavailable("no connection"))?;
                let row = conn
                    .query_opt(select.as_str(), &[&id])
                    .await
                    .map_err(|_| unavailable("select failed"))?;
                row.map(|r| r.try_get::<_, Vec<u8>>(0))
                    .transpose()
                    .map_err(|_| StoreError::Corrupt("not a tower-sessions row".into()))?
            }
        };
        bytes.map(|b| Self::decode(&b)).transpose()
    }

    async fn delete_id(&self, id: &str) -> Result<(), StoreError> {
        match &self.backend {
            #[cfg(feature = "tower-sessions-redis")]
            Backend::Redis(pool) => {
                let mut conn = pool.get().await.map_err(|_| unavailable("no connection"))?;
                let _: i64 = redis::cmd("DEL")
                    .arg(id)
                    .query_async(&mut *conn)
                    .await
                    .map_err(|_| unavailable("DEL failed"))?;
            }
            #[cfg(feature = "tower-sessions-postgres")]
            Backend::Postgres { pool, delete, .. } => {
                let conn = pool.get().await.map_err(|_| unavailable("no connection"))?;
                conn.execute(delete.as_str(), &[&id])
                    .await
                    .map_err(|_| unavailable("delete failed"))?;
            }
        }
        Ok(())
    }
}

impl TowerSessions {
    async fn scan_ids(&self, cursor: Option<&str>, count: usize) -> ScanResult {
        match &self.backend {
            #[cfg(feature = "tower-sessions-redis")]
            Backend::Redis(pool) => {
                let mut conn = pool.get().await.map_err(|_| unavailable("no connection"))?;
                // The store keeps sessions as strings under their bare ids: other keys of the
                // database are left out by their type and shape (and a value that is not a
                // tower-sessions record is refused when read).
                let (next, keys): (String, Vec<Vec<u8>>) = redis::cmd("SCAN")
                    .arg(cursor.unwrap_or("0"))
                    .arg("COUNT")
                    .arg(count)
                    .arg("TYPE")
                    .arg("string")
                    .query_async(&mut *conn)
                    .await
                    .map_err(|_| unavailable("SCAN failed"))?;
                let ids = keys
                    .into_iter()
                    .filter_map(|k| String::from_utf8(k).ok())
                    .filter(|k| is_id(k))
                    .collect();
                Ok((ids, (next != "0").then_some(next)))
            }
            #[cfg(feature = "tower-sessions-postgres")]
            Backend::Postgres { pool, scan, .. } => {
                let conn = pool.get().await.map_err(|_| unavailable("no connection"))?;
                let limit = i64::try_from(count).unwrap_or(i64::MAX);
                let rows = conn
                    .query(scan.as_str(), &[&cursor.unwrap_or(""), &limit])
                    .await
                    .map_err(|_| unavailable("select failed"))?;
                let ids: Vec<String> = rows.iter().filter_map(|r| r.try_get(0).ok()).collect();
                let next = (ids.len() == count).then(|| ids.last().cloned()).flatten();
                Ok((ids, next))
            }
        }
    }
}

impl Source for TowerSessions {
    fn name(&self) -> &str {
        "tower-sessions"
    }

    fn cookie(&self) -> &SourceCookie {
        &self.cookie
    }

    fn verify(&self, value: &str) -> Option<String> {
        // As tower-cookies reads it: percent-decoded, then checked by the cookie crate.
        let key = match &self.check {
            Check::Plain => None,
            Check::Keyed(key) => Some(key),
        };
        let id = crate::keyed::open(&self.cookie.name, value, key)?;
        is_id(&id).then_some(id)
    }

    fn load<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Option<SourceSession>, StoreError>> {
        Box::pin(self.load_id(id))
    }

    fn delete<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(self.delete_id(id))
    }

    fn scan<'a>(&'a self, cursor: Option<&'a str>, count: usize) -> BoxFuture<'a, ScanResult> {
        Box::pin(self.scan_ids(cursor, count))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_22_characters_of_url_safe_base64() {
        assert!(is_id("AAAAAAAAAAAAAAAAAAAAAA"));
        assert!(!is_id("AAAAAAAAAAAAAAAAAAAAA"));
        assert!(!is_id("AAAAAAAAAAAAAAAAAAAA+A"));
        assert!(!is_id("not an id at all, sorry"));
    }

    #[test]
    fn a_key_that_is_not_64_bytes_fails_at_build() {
        let b = TowerSessions::builder().key(&[1; 32]);
        assert!(matches!(b.check, Err(MigrateBuildError::KeyLength(32))));
    }
}
