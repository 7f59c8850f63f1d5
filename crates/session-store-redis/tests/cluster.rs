//! Redis Cluster (three masters, one replica each, started here): the conformance suite in both
//! formats, the middleware end to end, and a failover under load.
#![cfg(feature = "redis-tests")]
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod support;

use std::time::{Duration, Instant};

use serde_json::json;
use session_core::store::testing::{run_all, run_owner_admission, run_owner_index};
use session_core::store::{Created, Meta, Record, Store, StoreKey};
use session_core::{MaxAge, OverLimit};
use session_store_redis::{Format, RedisStore};
use session_testkit::backend::{Backend, Kind, Variant};
use support::{Cluster, Real, browser, serve, text};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_conformance_and_failover() {
    let mut cluster = Cluster::start().await;
    for format in [Format::V1, Format::Koa] {
        let store = RedisStore::cluster(cluster.urls())
            .format(format)
            .build()
            .await
            .unwrap();
        if format == Format::V1 {
            run_owner_index(&Real::redis(store.clone())).await;
            run_owner_admission(&Real::redis(store.clone())).await;
        }
        run_all(&Real::redis(store)).await;
    }

    // The middleware end to end on the cluster: a counter per visitor, concurrent requests
    // changing different keys, in both formats.
    // The kit's cluster backend (a prefix of its own on this cluster) checks every key's TTL.
    for (format, koa) in [(Format::V1, false), (Format::Koa, true)] {
        let store = RedisStore::cluster(cluster.urls()).format(format);
        let backend = Backend::redis(Kind::RedisCluster, store, cluster.urls()).await;
        let url = serve(
            Variant::plain(backend.clone())
                .layer(|b| b.koa_compat(koa))
                .build()
                .unwrap(),
        )
        .await;
        for _visitor in 0..5 {
            let c = browser();
            for n in 1..=3 {
                let body = text(&c, &format!("{url}/views")).await;
                assert_eq!(body, format!("{n} views"));
            }
            if !koa {
                let a = c.get(format!("{url}/slow-set?cart=book")).send();
                let b = c.get(format!("{url}/slow-set?theme=dark")).send();
                let (a, b) = tokio::join!(a, b);
                assert!(a.unwrap().status().is_success() && b.unwrap().status().is_success());
                let body = text(&c, &format!("{url}/read")).await;
                let got: serde_json::Value = serde_json::from_str(&body).unwrap();
                assert_eq!(got, json!({"views": 3, "cart": "book", "theme": "dark"}));
            }
        }
        let keys = backend.assert_every_key_has_a_ttl().await;
        assert!(keys >= 5, "{keys} keys on the cluster's masters");
    }

    // A user's sessions on the cluster: 100 sessions of one owner, their records spread over
    // the shards, are all listed and all revoked; another owner's session is untouched.
    {
        let store = RedisStore::cluster(cluster.urls()).build().await.unwrap();
        let config = session_core::Config::builder()
            .key(b"cluster e2e key, 32 bytes or more!".to_vec())
            .build()
            .unwrap();
        let layer = session_hyper::SessionLayer::store(config.clone(), store.clone())
            .build()
            .unwrap();
        let owners = layer.owners().unwrap();
        let url = serve(layer).await;
        let mut clients = Vec::new();
        let mut masters = std::collections::HashSet::new();
        for _ in 0..100 {
            let c = browser();
            let res = c
                .get(format!("{url}/login?owner=ada"))
                .send()
                .await
                .unwrap();
            let id = res
                .headers()
                .get_all("set-cookie")
                .iter()
                .filter_map(|v| v.to_str().ok())
                .find_map(|v| v.strip_prefix("koa.sess="))
                .and_then(|v| v.split(';').next())
                .and_then(|v| config.ids().parse(v))
                .unwrap();
            let key = store.redis_key(&config.key_derivation().derive(&id));
            masters.insert(cluster.master_of(&key).await);
            assert_eq!(res.text().await.unwrap(), "in");
            clients.push(c);
        }
        assert!(masters.len() > 1, "the records are spread over the shards");
        let bob = browser();
        bob.get(format!("{url}/login?owner=bob"))
            .send()
            .await
            .unwrap();
        assert_eq!(owners.list("ada").await.unwrap().len(), 100);
        assert_eq!(owners.revoke_all("ada").await.unwrap(), 100);
        assert!(owners.list("ada").await.unwrap().is_empty());
        for c in &clients {
            assert_eq!(
                text(c, &format!("{url}/read")).await,
                "{}",
                "revoked on every shard"
            );
        }
        assert_eq!(owners.list("bob").await.unwrap().len(), 1);
        assert_ne!(text(&bob, &format!("{url}/read")).await, "{}");
    }

    // A session limit on the cluster: 50 rounds of 50 concurrent logins of one owner against
    // a limit of 3, with each policy (the test kit's storm; `session-hyper`'s
    // `tests/session_limit.rs` says what it checks). Admission is one script on the owner's
    // slot; the sessions it ends live on every shard.
    for policy in [OverLimit::Refuse, OverLimit::EndOldest] {
        let store = RedisStore::cluster(cluster.urls()).build().await.unwrap();
        let t = session_testkit::limit::storm(store, policy, 50, 50, 3).await;
        t.assert_clean("cluster", 50, 50, 3, policy);
    }

    // Failover: sessions spread over the three shards; one master is killed while every
    // session is read in a loop. Sessions on other shards must keep working throughout;
    // those on the killed shard fail fast, then recover once its replica is promoted.
    let store = RedisStore::cluster(cluster.urls())
        .command_timeout(Duration::from_millis(500))
        .checkout_timeout(Duration::from_millis(500))
        .build()
        .await
        .unwrap();
    let rec = Record {
        data: json!({"n": 1}).as_object().cloned().unwrap(),
        meta: Meta {
            expire: None,
            max_age: MaxAge::Session,
            created: None,
        },
    };
    let mut keys = Vec::new();
    for i in 0..60 {
        let k = StoreKey::from_raw(format!("sess:failover:{i}"));
        assert_eq!(
            store
                .create(&k, &rec, Duration::from_secs(600))
                .await
                .unwrap(),
            Created::Inserted
        );
        let port = cluster.master_of(k.as_str()).await;
        keys.push((k, port));
    }
    let victim = keys[0].1;
    assert!(
        keys.iter().any(|(_, p)| *p != victim),
        "keys on other shards too"
    );
    // Let the replicas catch up before the crash.
    tokio::time::sleep(Duration::from_millis(300)).await;
    cluster.kill(victim);
    let killed = Instant::now();
    let mut victim_failures = 0u32;
    let mut other_failures = 0u32;
    let mut slowest = Duration::ZERO;
    let recovered = loop {
        if killed.elapsed() > Duration::from_secs(30) {
            let alive = cluster.nodes.iter().find(|n| n.port != victim).unwrap();
            let nodes = alive.cmd(&["CLUSTER", "NODES"]).await;
            let err = store.load(&keys[0].0).await;
            panic!("the victim's shard never recovered: last error {err:?}; nodes {nodes:?}");
        }
        let mut all_ok = true;
        for (k, port) in &keys {
            let t = Instant::now();
            let res = store.load(k).await;
            slowest = slowest.max(t.elapsed());
            if res.is_err() {
                all_ok = false;
                if *port == victim {
                    victim_failures += 1;
                } else {
                    other_failures += 1;
                }
            }
        }
        if all_ok && victim_failures > 0 {
            break killed.elapsed();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    println!(
        "failover: shard unavailable for {recovered:?} after the kill; {victim_failures} failed calls on it, \
         {other_failures} on other shards; slowest call {slowest:?}"
    );
    assert!(victim_failures > 0, "the kill was noticed");
    assert!(
        slowest < Duration::from_millis(1500),
        "a call took {slowest:?}"
    );
    assert_eq!(
        other_failures, 0,
        "sessions on the other shards kept working"
    );
}
