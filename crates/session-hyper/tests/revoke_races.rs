//! "Log out everywhere else" racing a regenerate in another tab of the same browser (a second
//! login, a token refresh), from an outside attack review: the revoke must never end the
//! caller's own session under its new id, and must end every other session of the owner.
//! Every order forced with a store that holds one call, then hundreds of free-running rounds
//! over real TCP; on the memory store, and on Redis with `--features redis-tests` and
//! `REDIS_URL`. The races themselves are in `support/revoke.rs` (PostgreSQL runs them too).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

#[path = "support/revoke.rs"]
mod revoke;

use session_store_memory::MemoryStore;

/// Free-running rounds per store, and how many run at once.
const ROUNDS: usize = 300;
const LANES: usize = 4;

fn check(label: &str, t: &revoke::Tally) {
    eprintln!("{label}: {ROUNDS} rounds: {t:?}");
    assert_eq!(
        t.live_revoke_first + t.live_login_first + t.superseded,
        ROUNDS,
        "{label}: {t:?}"
    );
    assert_eq!(
        (t.callers_logged_out, t.others_left, t.errors),
        (0, 0, 0),
        "{label}: {t:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forced_orders_on_memory() {
    let faults = revoke::forced_orders(MemoryStore::new(), "memory").await;
    assert!(faults.is_empty(), "{faults:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn free_running_on_memory() {
    let t = revoke::free_running(MemoryStore::new(), ROUNDS, LANES).await;
    check("memory", &t);
}

#[cfg(feature = "redis-tests")]
mod on_redis {
    use super::*;

    async fn store() -> session_store_redis::RedisStore {
        let url = std::env::var("REDIS_URL").expect("REDIS_URL: run through `cargo xtask ci`");
        let mut b = [0u8; 8];
        getrandom::fill(&mut b).unwrap();
        let suffix: String = b.iter().map(|x| format!("{x:02x}")).collect();
        session_store_redis::RedisStore::builder(url)
            .prefix(format!("revoke-races{suffix}:"))
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
        check("redis", &t);
    }
}
