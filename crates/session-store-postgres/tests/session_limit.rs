//! A session limit under a storm of logins, on PostgreSQL: 50 rounds, each of 50 browsers of
//! one owner logging in at once against a limit of 3 while a poller lists the owner's sessions,
//! with each policy. The storm is the one the memory store and Redis meet (the test kit's
//! `session_testkit::limit`); `session-hyper/tests/session_limit.rs` says what it checks.
//! Needs `--features postgres-tests` and `DATABASE_URL` (`cargo xtask test-postgres`).
#![cfg(feature = "postgres-tests")]
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod support;

use session_core::OverLimit;
use session_testkit::limit;

const ROUNDS: usize = 50;
const LOGINS: usize = 50;
const MAX: usize = 3;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refuse_on_postgres() {
    let store = support::store("limit_refuse").await;
    let t = limit::storm(store, OverLimit::Refuse, ROUNDS, LOGINS, MAX).await;
    t.assert_clean("postgres", ROUNDS, LOGINS, MAX, OverLimit::Refuse);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn end_oldest_on_postgres() {
    let store = support::store("limit_oldest").await;
    let t = limit::storm(store, OverLimit::EndOldest, ROUNDS, LOGINS, MAX).await;
    t.assert_clean("postgres", ROUNDS, LOGINS, MAX, OverLimit::EndOldest);
}
