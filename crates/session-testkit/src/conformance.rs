//! The harness of the store conformance suite (`session_core::store::testing`) on a real server: time
//! passes by sleeping, and the TTL is the server's; and the record the stores' own tests write.

use std::time::Duration;

use session_core::MaxAge;
use session_core::serde_json::Value;
use session_core::store::{Meta, Record, Store, StoreError, StoreKey};

/// A record of `data`'s keys whose own expiry is long past (1 ms after the epoch): a store
/// keeps a record for the TTL it is given, whatever the record says.
pub fn record(data: Value) -> Record {
    Record {
        data: data.as_object().cloned().unwrap_or_default(),
        meta: Meta {
            expire: Some(1),
            max_age: MaxAge::Ms(1),
            created: None,
        },
    }
}

/// A store on a real server, for `run_all` and `run_owner_index`.
pub struct Real<S> {
    store: S,
    short_ttl: Duration,
    record_limit: usize,
}

/// A store that tells the TTL its server keeps for a key.
pub trait Ttl {
    /// The key's TTL (`None` without a record).
    fn ttl(
        &self,
        key: &StoreKey,
    ) -> impl Future<Output = Result<Option<Duration>, StoreError>> + Send;
}

#[cfg(feature = "redis")]
impl Ttl for session_store_redis::RedisStore {
    fn ttl(
        &self,
        key: &StoreKey,
    ) -> impl Future<Output = Result<Option<Duration>, StoreError>> + Send {
        session_store_redis::RedisStore::ttl(self, key)
    }
}

#[cfg(feature = "redis")]
impl Real<session_store_redis::RedisStore> {
    /// A Redis store built with the default record limit; a short TTL of 300 ms.
    pub fn redis(store: session_store_redis::RedisStore) -> Self {
        Real {
            store,
            short_ttl: Duration::from_millis(300),
            record_limit: 64 * 1024,
        }
    }
}

#[cfg(feature = "postgres")]
impl Ttl for session_store_postgres::PostgresStore {
    fn ttl(
        &self,
        key: &StoreKey,
    ) -> impl Future<Output = Result<Option<Duration>, StoreError>> + Send {
        session_store_postgres::PostgresStore::ttl(self, key)
    }
}

#[cfg(feature = "postgres")]
impl Real<session_store_postgres::PostgresStore> {
    /// A PostgreSQL store built with the default record limit; a short TTL of 800 ms, long
    /// enough for a first statement on a cold connection (a prepare, on a busy machine) to land
    /// before the record it created expires: at 300 ms one cold run in a dozen lost the race.
    pub fn postgres(store: session_store_postgres::PostgresStore) -> Self {
        Real {
            store,
            short_ttl: Duration::from_millis(800),
            record_limit: session_store_postgres::DEFAULT_MAX_RECORD_BYTES,
        }
    }
}

impl<S: Store + Ttl> session_core::store::testing::Harness for Real<S> {
    type S = S;
    fn store(&self) -> &S {
        &self.store
    }
    async fn advance(&self, by: Duration) {
        tokio::time::sleep(by).await;
    }
    async fn ttl(&self, key: &StoreKey) -> Option<Duration> {
        self.store.ttl(key).await.unwrap()
    }
    fn short_ttl(&self) -> Duration {
        self.short_ttl
    }
    fn record_limit(&self) -> usize {
        self.record_limit
    }
}
