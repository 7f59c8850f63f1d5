//! Load and load + save throughput against a real PostgreSQL (`DATABASE_URL`, or a throwaway
//! cluster started here with the binaries of `PG_BIN` or `/usr/lib/postgresql/*/bin`), for two
//! pool sizes.
//!
//! Run: `cargo bench -p session-store-postgres --bench postgres_store` (`BENCH_SECS`, default 5).
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use serde_json::json;
use session_core::MaxAge;
use session_core::store::testing::set;
use session_core::store::{Change, Meta, Record, Store, StoreKey, Updated};
use session_store_postgres::PostgresStore;

#[path = "../tests/support/mod.rs"]
mod support;

fn record(i: u64) -> Record {
    let data = json!({"user": format!("user-{i:08}"), "views": 0, "cart": ["book-1", "lamp-2"], "theme": "dark"});
    Record {
        data: data.as_object().cloned().unwrap(),
        meta: Meta {
            expire: Some(1_900_000_000_000),
            max_age: MaxAge::Ms(86_400_000),
            created: Some(1_700_000_000_000),
        },
    }
}

async fn run(
    store: PostgresStore,
    keys: Arc<Vec<StoreKey>>,
    tasks: usize,
    secs: f64,
    write: bool,
) -> f64 {
    let stop = Arc::new(AtomicBool::new(false));
    let ops = Arc::new(AtomicU64::new(0));
    let mut handles = Vec::new();
    for t in 0..tasks {
        let (store, keys, stop, ops) = (store.clone(), keys.clone(), stop.clone(), ops.clone());
        handles.push(tokio::spawn(async move {
            let mut i = t;
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                i = (i + 7919) % keys.len();
                let k = &keys[i];
                let r = store.load(k).await.unwrap().into_record().unwrap();
                if write {
                    let v = r.data["views"].as_u64().unwrap() + 1;
                    let d = set(&[("views", json!(v))]);
                    let c = Change {
                        delta: &d,
                        data: &r.data,
                        meta: r.meta,
                    };
                    assert_eq!(
                        store.save(k, c, Duration::from_secs(600)).await.unwrap(),
                        Updated::Updated
                    );
                }
                n += 1;
            }
            ops.fetch_add(n, Ordering::Relaxed);
        }));
    }
    tokio::time::sleep(Duration::from_secs_f64(secs)).await;
    stop.store(true, Ordering::Relaxed);
    for h in handles {
        h.await.unwrap();
    }
    ops.load(Ordering::Relaxed) as f64 / secs
}

/// The newest `/usr/lib/postgresql/*/bin`, or `PG_BIN`.
fn server_bin() -> Option<std::path::PathBuf> {
    if let Ok(b) = std::env::var("PG_BIN") {
        return Some(b.into());
    }
    let mut found: Vec<_> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .flatten()
        .map(|e| e.path().join("bin"))
        .filter(|b| b.join("initdb").exists())
        .collect();
    found.sort();
    found.pop()
}

fn main() {
    let benching = std::env::args().any(|a| a == "--bench");
    let secs: f64 = if benching {
        std::env::var("BENCH_SECS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(5.0)
    } else {
        0.2
    };
    let mut cluster = None;
    let url = match std::env::var("DATABASE_URL") {
        Ok(url) => url,
        Err(_) => match server_bin() {
            Some(bin) => cluster.insert(support::Cluster::start_in(bin)).url(),
            None => {
                println!("PostgreSQL server binaries not found; skipping the PostgreSQL benchmark");
                return;
            }
        },
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let keys: Arc<Vec<StoreKey>> = Arc::new(
            (0..10_000)
                .map(|i| StoreKey::from_raw(format!("sess:bench:{i}")))
                .collect(),
        );
        let table = support::unique_table("bench");
        let setup = PostgresStore::builder(&url).table(&table).build().unwrap();
        setup.migrate().await.unwrap();
        for (i, k) in keys.iter().enumerate() {
            setup
                .create(k, &record(i as u64), Duration::from_secs(600))
                .await
                .unwrap();
        }
        println!("PostgreSQL store, 2 worker threads, 64 concurrent tasks, {secs} s per row");
        println!("{:<34} {:>14} {:>14}", "setup", "load/s", "load+save/s");
        for (pool, name) in [(16, "pool of 16 (the default)"), (4, "pool of 4")] {
            let store = PostgresStore::builder(&url)
                .table(&table)
                .pool_size(pool)
                .build()
                .unwrap();
            let tasks = std::env::var("BENCH_TASKS")
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(64);
            let r = run(store.clone(), keys.clone(), tasks, secs, false).await;
            let w = run(store, keys.clone(), tasks, secs, true).await;
            println!("{name:<34} {r:>14.0} {w:>14.0}");
        }
    });
    drop(cluster);
}
