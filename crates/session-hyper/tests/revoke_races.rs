//! "Log out everywhere else" racing a regenerate in another tab of the same browser (a second
//! login, a token refresh), from an outside attack review: the revoke must never end the
//! caller's own session under its new id, and must end every other session of the owner.
//! Every order forced with a store that holds one call, then hundreds of free-running rounds
//! over real TCP; on the memory store, and on Redis with `--features redis-tests` and
//! `REDIS_URL`. The races themselves are the test kit's (`session_testkit::revoke`; PostgreSQL
//! runs them too).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use session_store_memory::MemoryStore;
use session_testkit::revoke;

/// Free-running rounds per store, and how many run at once.
const ROUNDS: usize = 300;
const LANES: usize = 4;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forced_orders_on_memory() {
    let faults = revoke::forced_orders(MemoryStore::new(), "memory").await;
    assert!(faults.is_empty(), "{faults:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn free_running_on_memory() {
    let t = revoke::free_running(MemoryStore::new(), ROUNDS, LANES).await;
    t.assert_clean("memory", ROUNDS);
}

#[cfg(feature = "redis-tests")]
mod on_redis {
    use super::*;

    async fn store() -> session_store_redis::RedisStore {
        use session_testkit::redis::{shared_url, unique_prefix};
        session_store_redis::RedisStore::builder(shared_url())
            .prefix(unique_prefix("revoke-races"))
            .build()
            .await
            .unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn forced_orders_on_redis() {
        let faults = revoke::forced_orders(store().await, "redis").await;
        assert!(faults.is_empty(), "{faults:#?}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn free_running_on_redis() {
        let t = revoke::free_running(store().await, ROUNDS, LANES).await;
        t.assert_clean("redis", ROUNDS);
    }
}
