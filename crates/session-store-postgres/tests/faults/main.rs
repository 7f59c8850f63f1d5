//! Failures, each with a bounded time to the error and to recovery: the server stopped and
//! restarted, the pool's connections killed with `pg_terminate_backend`, a statement blocked by
//! a lock past the statement timeout, a read-only server. Needs `--features postgres-tests`,
//! `DATABASE_URL` and `PG_BIN` (`cargo xtask test-postgres` / `cargo xtask ci`).
#![cfg(feature = "postgres-tests")]
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

#[path = "../support/mod.rs"]
mod support;

mod connections;
mod locks;
mod outages;

use std::time::{Duration, Instant};

use serde_json::json;
use session_core::Data;
use session_core::store::testing::set;
use session_core::store::{Change, Created, Store, StoreError, StoreKey};
use session_store_postgres::PostgresStore;
use support::{Cluster, small_record, unique_table, url};

const TTL: Duration = Duration::from_secs(600);

async fn fast_store(url: String, name: &str) -> PostgresStore {
    let s = PostgresStore::builder(url)
        .table(unique_table(name))
        .application_name(unique_table(name))
        .connect_timeout(Duration::from_millis(500))
        .checkout_timeout(Duration::from_millis(500))
        .statement_timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    s.migrate().await.unwrap();
    s
}

/// Calls `load` until it succeeds; how long that took. Every failed call must have returned
/// within `bound`.
async fn until_ok(store: &PostgresStore, key: &StoreKey, bound: Duration) -> Duration {
    let t = Instant::now();
    loop {
        let call = Instant::now();
        match store.load(key).await {
            Ok(_) => return t.elapsed(),
            Err(e) => {
                assert!(
                    call.elapsed() < bound,
                    "a failure took {:?}: {e}",
                    call.elapsed()
                );
                assert!(e.is_transient(), "an outage is transient: {e}");
            }
        }
        assert!(t.elapsed() < Duration::from_secs(30), "no recovery in 30 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The backends of the connections named `app`, sorted.
async fn app_pids(admin: &tokio_postgres::Client, app: &str) -> Vec<i32> {
    let mut pids: Vec<i32> = admin
        .query(
            "SELECT pid FROM pg_stat_activity WHERE application_name = $1",
            &[&app],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    pids.sort_unstable();
    pids
}
