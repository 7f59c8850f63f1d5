//! A session limit under a storm of logins: 50 rounds, each of 50 browsers of one owner logging
//! in at once against a limit of 3, while a poller lists the owner's sessions; with each policy.
//! Refuse: exactly 3 are admitted, and every refused browser keeps its session as it was.
//! End-oldest: every login is admitted, exactly 3 sessions are left, and every other browser's
//! next request is anonymous and told it was signed out by a newer login. No listing ever shows
//! more than 3. On the memory store, and on Redis with `--features redis-tests` and `REDIS_URL`
//! (Redis Cluster in `session-store-redis`'s cluster test, PostgreSQL in its own crate). The
//! storm itself is the test kit's (`session_testkit::limit`).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use session_core::OverLimit;
use session_store_memory::MemoryStore;
use session_testkit::limit;

const ROUNDS: usize = 50;
const LOGINS: usize = 50;
const MAX: usize = 3;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refuse_on_memory() {
    let t = limit::storm(MemoryStore::new(), OverLimit::Refuse, ROUNDS, LOGINS, MAX).await;
    t.assert_clean("memory", ROUNDS, LOGINS, MAX, OverLimit::Refuse);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn end_oldest_on_memory() {
    let t = limit::storm(
        MemoryStore::new(),
        OverLimit::EndOldest,
        ROUNDS,
        LOGINS,
        MAX,
    )
    .await;
    t.assert_clean("memory", ROUNDS, LOGINS, MAX, OverLimit::EndOldest);
}

#[cfg(feature = "redis-tests")]
mod on_redis {
    use super::*;

    async fn store() -> session_store_redis::RedisStore {
        use session_testkit::redis::{shared_url, unique_prefix};
        session_store_redis::RedisStore::builder(shared_url())
            .prefix(unique_prefix("session-limit"))
            .build()
            .await
            .unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn refuse_on_redis() {
        let t = limit::storm(store().await, OverLimit::Refuse, ROUNDS, LOGINS, MAX).await;
        t.assert_clean("redis", ROUNDS, LOGINS, MAX, OverLimit::Refuse);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn end_oldest_on_redis() {
        let t = limit::storm(store().await, OverLimit::EndOldest, ROUNDS, LOGINS, MAX).await;
        t.assert_clean("redis", ROUNDS, LOGINS, MAX, OverLimit::EndOldest);
    }
}
