//! Attacks on Sentinel and on the client cache on Cluster, as an outside review broke them:
//! a Sentinel that accepts connections and never answers, the client cache during a failover
//! (touches and loads must not reach the master being replaced), a Cluster that can't be asked
//! for its slot map when the cache starts, the cache's memory bound across a Cluster failover,
//! and the store's subscriptions outliving it.
#![cfg(feature = "redis-tests")]
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod support;

use std::time::{Duration, Instant};

use session_core::MaxAge;
use session_core::store::{Loaded, Meta, Store, StoreError, StoreKey};
use session_store_redis::RedisStore;
use session_testkit::redis::{Cluster, Sentinels};
use support::cache::{key, record};

fn gated(e: &StoreError) -> bool {
    matches!(e, StoreError::Unavailable(m) if m.contains("failover under way"))
}

/// One Sentinel of four accepts TCP and never answers (a hung or black-holed host): every call
/// still finds the master, each connect waiting at most half the checkout timeout for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_sentinel_does_not_take_the_store_down() {
    let d = Sentinels::start().await;
    // Bound and never accepted: the kernel completes the handshake, nothing ever replies.
    let hung = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mut urls = d.urls();
    urls.insert(
        0,
        format!("redis://127.0.0.1:{}", hung.local_addr().unwrap().port()),
    );
    let s = RedisStore::sentinel(urls, Sentinels::NAME)
        .prefix(support::unique_prefix("hung"))
        .pool_size(4)
        .build()
        .await
        .unwrap();
    for i in 0..20 {
        let t = Instant::now();
        s.create(&key(&format!("k{i}")), &record(1), Duration::from_secs(60))
            .await
            .unwrap();
        assert!(
            t.elapsed() < Duration::from_secs(1),
            "took {:?}",
            t.elapsed()
        );
    }
}

/// `SENTINEL FAILOVER` while one cached store touches and loads thousands of sessions: while
/// its gate is closed (creates through the pool fail with the gate's 503) no touch is
/// acknowledged and no load served, and every touch acknowledged is on the new master after.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cache_neither_serves_nor_writes_while_a_failover_is_under_way() {
    let d = Sentinels::start().await;
    let prefix = support::unique_prefix("gate");
    let s = RedisStore::sentinel(d.urls(), Sentinels::NAME)
        .prefix(&prefix)
        .client_cache(1 << 20)
        .build()
        .await
        .unwrap();
    let keys: Vec<StoreKey> = (0..2000).map(|i| key(&format!("t{i}"))).collect();
    for k in &keys {
        s.create(k, &record(1), Duration::from_secs(600))
            .await
            .unwrap();
    }
    let t = Instant::now();
    while !s.client_cache_stats().unwrap().tracking {
        let _ = s.load(&keys[0]).await;
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "no tracking connection"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let old = d.master_port().await;
    let reply = d.sentinels[0]
        .cmd(&["SENTINEL", "FAILOVER", Sentinels::NAME])
        .await;
    assert_eq!(reply, redis::Value::Okay);
    let touched = Meta {
        expire: Some(42),
        max_age: MaxAge::Ms(600_000),
        created: None,
    };
    let (mut acked, mut gated_rounds, mut leaks) = (Vec::new(), 0, Vec::new());
    let t = Instant::now();
    for (i, k) in keys.iter().enumerate() {
        if t.elapsed() > Duration::from_secs(8) {
            break;
        }
        let probe = |n: &str| key(&format!("probe{i}{n}"));
        let before = s
            .create(&probe("a"), &record(1), Duration::from_secs(60))
            .await;
        let touch = s.touch(k, touched, Duration::from_secs(600)).await;
        let load = s.load(k).await;
        let after = s
            .create(&probe("b"), &record(1), Duration::from_secs(60))
            .await;
        if touch.is_ok() {
            acked.push(i);
        }
        if matches!(&before, Err(e) if gated(e)) && matches!(&after, Err(e) if gated(e)) {
            gated_rounds += 1;
            if touch.is_ok() || load.is_ok() {
                leaks.push(i);
            }
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let t = Instant::now();
    while d.master_port().await == old {
        assert!(t.elapsed() < Duration::from_secs(30), "no switch");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let check = RedisStore::builder(d.master_url().await)
        .prefix(&prefix)
        .build()
        .await
        .unwrap();
    let mut lost = 0;
    for &i in &acked {
        match check.load(&keys[i]).await.unwrap() {
            Loaded::Live(r) if r.meta.expire == Some(42) => {}
            _ => lost += 1,
        }
    }
    println!(
        "failover with the cache: {gated_rounds} rounds gated, {} touches acknowledged, {lost} lost",
        acked.len()
    );
    assert!(gated_rounds > 0, "never saw the gate closed");
    assert!(
        leaks.is_empty(),
        "calls through the cache passed the gate: {leaks:?}"
    );
    assert_eq!(lost, 0, "acknowledged touches lost");
}

/// The store's Sentinel subscriptions end with it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscriptions_end_with_the_store() {
    let d = Sentinels::start().await;
    let subscribed = || async {
        let list = match d.sentinels[0]
            .cmd(&["CLIENT", "LIST", "TYPE", "pubsub"])
            .await
        {
            redis::Value::BulkString(b) => String::from_utf8_lossy(&b).into_owned(),
            redis::Value::VerbatimString { text, .. } => text,
            _ => String::new(),
        };
        list.lines().filter(|l| !l.contains("sub=0 psub=0")).count()
    };
    let before = subscribed().await;
    {
        let s = RedisStore::sentinel(d.urls(), Sentinels::NAME)
            .client_cache(1 << 20)
            .build()
            .await
            .unwrap();
        let t = Instant::now();
        while subscribed().await == before {
            let _ = s.load(&key("x")).await;
            assert!(t.elapsed() < Duration::from_secs(5), "never subscribed");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let t = Instant::now();
    while subscribed().await != before {
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "subscriptions outlived the store"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// On one Cluster: a cache whose first slot-map read fails (every node paused) still comes on
/// once the Cluster answers; and after a failover the cache stays within its bound (the link
/// to the old master, now a replica, is given up and the bound split again).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cluster_cache_recovers_a_failed_map_and_keeps_its_bound() {
    let c = Cluster::start().await;
    let prefix = support::unique_prefix("cluster_cache");
    let bound = 60_000usize;
    let store = || {
        RedisStore::cluster(c.urls())
            .prefix(&prefix)
            .client_cache(bound)
            .command_timeout(Duration::from_millis(300))
            .checkout_timeout(Duration::from_millis(300))
            .build()
    };
    let writer = RedisStore::cluster(c.urls())
        .prefix(&prefix)
        .build()
        .await
        .unwrap();
    let big = |n: u64| {
        let mut r = record(n);
        r.data
            .insert("pad".into(), serde_json::json!("x".repeat(1500)));
        r
    };
    let keys: Vec<StoreKey> = (0..150).map(|i| key(&format!("b{i}"))).collect();
    for k in &keys {
        writer
            .create(k, &big(1), Duration::from_secs(600))
            .await
            .unwrap();
    }

    let s = store().await.unwrap();
    for n in &c.nodes {
        n.cmd(&["CLIENT", "PAUSE", "1500", "ALL"]).await;
    }
    let _ = s.load(&keys[0]).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let fill = || async {
        for _ in 0..3 {
            for k in &keys {
                s.load(k).await.unwrap();
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        s.client_cache_stats().unwrap()
    };
    // A few sessions read again and again: served from the cache once it is on.
    for _ in 0..50 {
        for k in &keys[..3] {
            s.load(k).await.unwrap();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let stats = s.client_cache_stats().unwrap();
    assert!(stats.hits > 0, "the cache never came on: {stats:?}");
    // Many more than fit: the bound holds.
    let stats = fill().await;
    assert!(stats.bytes <= bound, "{stats:?}");

    let masters = c.masters().await;
    c.failover(masters[0].0).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    for _ in 0..4 {
        let stats = fill().await;
        assert!(
            stats.bytes <= bound,
            "past the bound after a failover: {stats:?}"
        );
    }
}
