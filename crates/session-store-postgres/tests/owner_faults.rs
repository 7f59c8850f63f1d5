//! A user's sessions on PostgreSQL while the server stops, before and in the middle of a
//! revoke-all: every call fails within the limit, every live session stays listed, and a second
//! revoke ends them all. Needs `--features postgres-tests`, `DATABASE_URL` and `PG_BIN`.
#![cfg(feature = "postgres-tests")]
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs, dead_code)]

mod support;

use std::time::{Duration, Instant};

use session_store_postgres::PostgresStore;
use support::{Cluster, browser, get, layer, serve, unique_table};

async fn logged_in(url: &str, owner: &str, n: usize) -> Vec<reqwest::Client> {
    let mut out = Vec::new();
    for start in (0..n).step_by(16) {
        let batch = (start..n.min(start + 16)).map(|_| async {
            let c = browser();
            let r = get(&c, format!("{url}/login?owner={owner}")).await;
            assert_eq!(r.0, 200, "{}", r.1);
            c
        });
        out.extend(futures_util::future::join_all(batch).await);
    }
    out
}

async fn alive(url: &str, clients: &[reqwest::Client]) -> usize {
    let mut n = 0;
    for c in clients {
        let (status, body) = get(c, format!("{url}/read")).await;
        assert_eq!(status, 200, "{body}");
        if body.contains("\"user\"") {
            n += 1;
        }
    }
    n
}

/// A refused connection (nothing listens): how long until the error, with default settings.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoke_all_with_the_server_stopped_before_and_midway() {
    let cluster = Cluster::start();
    let store = PostgresStore::builder(cluster.url())
        .table(unique_table("rvfo"))
        .connect_timeout(Duration::from_millis(500))
        .checkout_timeout(Duration::from_millis(500))
        .statement_timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    store.migrate().await.unwrap();
    let l = layer(store.clone(), false);
    let owners = l.owners().unwrap();
    let url = serve(l).await;

    // Stopped before: list, revoke_all and a request fail fast with a transient error.
    let clients = logged_in(&url, "ada", 50).await;
    cluster.down();
    let t = Instant::now();
    let r = owners.revoke_all("ada").await;
    println!("revoke_all, server down: {r:?} in {:?}", t.elapsed());
    assert!(r.is_err() && t.elapsed() < Duration::from_secs(2));
    let t = Instant::now();
    let r = owners.list("ada").await;
    assert!(r.is_err() && t.elapsed() < Duration::from_secs(2), "{r:?}");
    let t = Instant::now();
    let (status, _) = get(&clients[0], format!("{url}/read")).await;
    assert_eq!(status, 503);
    assert!(t.elapsed() < Duration::from_secs(2));
    cluster.up();
    let mut n = 0;
    while owners.list("ada").await.is_err() {
        n += 1;
        assert!(n < 100, "no recovery");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(owners.revoke_all("ada").await.unwrap(), 50);
    assert_eq!(alive(&url, &clients).await, 0);

    // Stopped in the middle: afterwards every live session is still listed, and a second
    // revoke ends all of them.
    let mut bad = Vec::new();
    for (round, delay) in [0u64, 2, 5, 10, 20, 40].into_iter().enumerate() {
        let owner = format!("mid{round}");
        let clients = logged_in(&url, &owner, 150).await;
        let o = owners.clone();
        let ow = owner.clone();
        let h = tokio::spawn(async move { o.revoke_all(&ow).await });
        tokio::time::sleep(Duration::from_millis(delay)).await;
        cluster.down();
        let first = h.await.unwrap();
        cluster.up();
        let mut n = 0;
        let listed = loop {
            match owners.list(&owner).await {
                Ok(l) => break l.len(),
                Err(_) => {
                    n += 1;
                    assert!(n < 100, "no recovery");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        };
        let live = alive(&url, &clients).await;
        println!("delay {delay} ms: first revoke {first:?}; live {live}, listed {listed}");
        if live != listed {
            bad.push(format!("delay {delay}: live {live} but listed {listed}"));
        }
        let second = owners.revoke_all(&owner).await.unwrap();
        let after = alive(&url, &clients).await;
        if second != live || after != 0 {
            bad.push(format!(
                "delay {delay}: second revoke {second}, {after} still live"
            ));
        }
    }
    assert!(bad.is_empty(), "{bad:?}");
}
