//! "Log out everywhere else" racing a regenerate in another tab of the same browser, on
//! PostgreSQL: the caller is never logged out under its new id, and every other session of the
//! owner ends. Every order forced with a store that holds one call, then hundreds of
//! free-running rounds over real TCP. The races are the ones the memory store and Redis run
//! (the test kit's `session_testkit::revoke`, so every store meets the same ones).
//! Needs `--features postgres-tests` and `DATABASE_URL` (`cargo xtask test-postgres`).
#![cfg(feature = "postgres-tests")]
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod support;

use session_testkit::revoke;

/// Free-running rounds, and how many run at once.
const ROUNDS: usize = 300;
const LANES: usize = 4;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forced_orders_on_postgres() {
    let faults = revoke::forced_orders(support::store("revoke_forced").await, "postgres").await;
    assert!(faults.is_empty(), "{faults:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn free_running_on_postgres() {
    let store = support::store("revoke_free").await;
    let t = revoke::free_running(store, ROUNDS, LANES).await;
    t.assert_clean("postgres", ROUNDS);
}
