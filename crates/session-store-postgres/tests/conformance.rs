//! The store contract and the owner index (`session_core::store::testing`) against a real PostgreSQL.
//! Needs `--features postgres-tests` and `DATABASE_URL` (`cargo xtask test-postgres` and
//! `cargo xtask ci` start a throwaway server and set both).
#![cfg(feature = "postgres-tests")]
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod support;

use session_core::store::{
    testing::run_all, testing::run_owner_admission, testing::run_owner_index,
};
use support::{Real, store};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance() {
    run_all(&Real::postgres(store("conf").await)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn owner_index_conformance() {
    run_owner_index(&Real::postgres(store("conf_owner").await)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn owner_admission_conformance() {
    run_owner_admission(&Real::postgres(store("conf_admit").await)).await;
}
