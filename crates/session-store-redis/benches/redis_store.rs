//! Load + commit throughput against a real redis-server (started here on a free loopback port,
//! or `REDIS_URL`), with the pool's checkout PING on and off.
//!
//! Run: `cargo bench -p session-store-redis --bench redis_store` (`BENCH_SECS`, default 5).
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use serde_json::json;
use session_core::MaxAge;
use session_core::store::testing::set;
use session_core::store::{Change, Meta, Record, Store, StoreKey, Updated};
use session_store_redis::RedisStore;

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
    store: RedisStore,
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
    // The tests' harness starts the server (free port, no persistence, killed on drop).
    let mut server = None;
    let url = match std::env::var("REDIS_URL") {
        Ok(url) => url,
        Err(_) => {
            let installed = Command::new("redis-server")
                .arg("--version")
                .stdout(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if !installed {
                println!("redis-server not found; skipping the Redis benchmark");
                return;
            }
            server.insert(support::Server::start(&[])).url()
        }
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
        let setup = RedisStore::builder(&url).build().await.unwrap();
        for (i, k) in keys.iter().enumerate() {
            setup.destroy(k).await.unwrap();
            setup
                .create(k, &record(i as u64), Duration::from_secs(600))
                .await
                .unwrap();
        }
        println!("Redis store, 2 worker threads, 64 concurrent tasks, {secs} s per row");
        println!("{:<34} {:>14} {:>14}", "setup", "load/s", "load+save/s");
        for (pool, ping, name) in [
            (1, false, "one server, 1 connection (default)"),
            (4, false, "one server, pool of 4"),
            (1, true, "one server, checkout PING on"),
        ] {
            let store = RedisStore::builder(&url)
                .pool_size(pool)
                .test_on_checkout(ping)
                .build()
                .await
                .unwrap();
            let r = run(store.clone(), keys.clone(), 64, secs, false).await;
            let w = run(store, keys.clone(), 64, secs, true).await;
            println!("{name:<34} {r:>14.0} {w:>14.0}");
        }
        // A Redis Cluster, when REDIS_CLUSTER_URLS (comma-separated seed nodes) is set.
        if let Ok(nodes) = std::env::var("REDIS_CLUSTER_URLS") {
            let nodes: Vec<String> = nodes.split(',').map(str::to_owned).collect();
            let store = RedisStore::cluster(nodes).build().await.unwrap();
            for (i, k) in keys.iter().enumerate() {
                store.destroy(k).await.unwrap();
                store
                    .create(k, &record(i as u64), Duration::from_secs(600))
                    .await
                    .unwrap();
            }
            let r = run(store.clone(), keys.clone(), 64, secs, false).await;
            let w = run(store, keys.clone(), 64, secs, true).await;
            println!(
                "{:<34} {r:>14.0} {w:>14.0}",
                "cluster, 3 masters + 3 replicas"
            );
        }
    });
}
