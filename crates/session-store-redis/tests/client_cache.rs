//! The client cache against a real redis-server: the conformance suite through it, hits that
//! read no record (only a read fence), and its promises attacked: two store instances (two app servers) where
//! one writes, destroys or touches while the other reads, the invalidation delay measured
//! (p50/p99 printed), concurrent readers that must never go back in time, a killed tracking
//! connection, a paused and a restarted server, the byte bound, and a logout on one app server
//! seen by the other through the middleware.
#![cfg(feature = "redis-tests")]
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;
use session_core::store::testing::{run_all, run_owner_admission, run_owner_index};
use session_core::store::{Loaded, Meta, Record, Store, Updated};
use session_core::{Data, MaxAge};
use session_store_redis::{Format, RedisBuildError, RedisStore};
use support::Real;
use support::cache::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_through_the_cache() {
    let store = cached(
        &support::shared_url(),
        &support::unique_prefix("cache_conf"),
    )
    .await;
    run_all(&Real::redis(store.clone())).await;
    run_owner_index(&Real::redis(store.clone())).await;
    run_owner_admission(&Real::redis(store.clone())).await;
    let stats = store.client_cache_stats().unwrap();
    assert!(stats.misses > 0 && stats.invalidations > 0, "{stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_read_reads_no_record() {
    let url = support::shared_url();
    let store = cached(&url, &support::unique_prefix("cache_hit")).await;
    let k = key("hit");
    store
        .create(&k, &record(7), Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(n_of(&store, &k).await, Some(7));
    let before = store.client_cache_stats().unwrap();
    let calls = |v: redis::Value| -> u64 {
        let redis::Value::BulkString(b) = v else {
            return 0;
        };
        let s = String::from_utf8(b).unwrap();
        s.lines()
            .find(|l| l.starts_with("cmdstat_hgetall:"))
            .and_then(|l| l.split("calls=").nth(1))
            .and_then(|r| r.split(',').next())
            .map_or(0, |c| c.parse().unwrap())
    };
    let hgetall_before = calls(support::cmd(&url, &["INFO", "commandstats"]).await);
    for _ in 0..100 {
        assert_eq!(n_of(&store, &k).await, Some(7));
    }
    let after = store.client_cache_stats().unwrap();
    assert_eq!(after.hits - before.hits, 100);
    assert_eq!(after.misses, before.misses);
    // Each hit waited for a read fence (a PING; one at a time here, so one each).
    assert_eq!(after.fences - before.fences, 100, "{after:?}");
    // Other tests share the server, so only this store's own reads are counted: none of the
    // hundred reached Redis (others' reads could only add calls; a miss here would be ours).
    let hgetall_after = calls(support::cmd(&url, &["INFO", "commandstats"]).await);
    assert!(hgetall_after >= hgetall_before);
    // Missing and foreign keys are never cached: a key made afterwards is seen at once.
    let later = key("later");
    assert_eq!(n_of(&store, &later).await, None);
    store
        .create(&later, &record(1), Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(n_of(&store, &later).await, Some(1));
}

/// Two app servers: one writes (saves, destroys), the other must see each write as soon as it
/// returned (its next read waits for a read fence). Hundreds of rounds; the delay from the
/// write's return to the invalidation's arrival is measured.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_on_one_server_reaches_the_others_cache() {
    let (a, b, k) = two_servers("cache_two").await;
    let mut delays = Vec::new();
    let mut stale = 0;
    // Checks A reads `want` at once, then how long after the write's return A's copy had gone
    // (no network: the stats).
    let observe = |dropped_before: u64, returned: Instant, want: Option<u64>| {
        let (a, k) = (&a, &k);
        async move {
            let fresh = n_of(a, k).await == want;
            while a.client_cache_stats().unwrap().invalidations == dropped_before
                && returned.elapsed() < Duration::from_secs(5)
            {
                tokio::task::yield_now().await;
            }
            (returned.elapsed(), fresh)
        }
    };
    for n in 1..=400u64 {
        // A holds the record (a fill, then hits).
        let seen = n_of(&a, &k).await;
        assert_eq!(n_of(&a, &k).await, seen);
        let dropped = a.client_cache_stats().unwrap().invalidations;
        if n % 4 == 0 {
            // A logout on B, then a new record under the same key.
            b.destroy(&k).await.unwrap();
            let (delay, fresh) = observe(dropped, Instant::now(), None).await;
            delays.push(delay);
            stale += u32::from(!fresh);
            b.create(&k, &record(n), Duration::from_secs(60))
                .await
                .unwrap();
            assert_eq!(n_of(&a, &k).await, Some(n));
        } else {
            set_n(&b, &k, n).await;
            let (delay, fresh) = observe(dropped, Instant::now(), Some(n)).await;
            delays.push(delay);
            stale += u32::from(!fresh);
        }
    }
    assert_eq!(stale, 0, "reads stale after the write returned");
    let stats = a.client_cache_stats().unwrap();
    assert!(stats.hits >= 400, "{stats:?}");
    assert!(stats.invalidations >= 400, "{stats:?}");
    assert_eq!(stats.flushes, 1, "only the first connect: {stats:?}");
    delays.sort();
    eprintln!(
        "invalidation applied after the write returned, {} writes: p50 {:?}, p99 {:?}, max {:?}",
        delays.len(),
        percentile(&delays, 50),
        percentile(&delays, 99),
        delays[delays.len() - 1]
    );
}

/// Readers on one server while another server counts up: once a write has returned, no read
/// starting later sees an older value, and no reader goes back in time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_readers_never_go_back_in_time() {
    let (a, b, k) = two_servers("cache_race").await;
    let origin = Instant::now();
    // Each value whose write returned, and when (after origin).
    let written_at = Arc::new(std::sync::Mutex::new(vec![(0u64, Duration::ZERO)]));
    let stop = Arc::new(AtomicBool::new(false));
    let mut readers = Vec::new();
    for _ in 0..4 {
        let (a, k, stop) = (a.clone(), k.clone(), Arc::clone(&stop));
        readers.push(tokio::spawn(async move {
            let mut seen = Vec::new();
            let mut last = 0;
            while !stop.load(Ordering::Relaxed) {
                let started = origin.elapsed();
                let n = n_of(&a, &k).await.unwrap();
                assert!(n >= last, "a reader went back from {last} to {n}");
                last = n;
                seen.push((started, n));
                // Like requests, each read gives the other tasks (the writer, the
                // connection's reader) their turn.
                tokio::task::yield_now().await;
            }
            seen
        }));
    }
    for n in 1..=300u64 {
        set_n(&b, &k, n).await;
        written_at.lock().unwrap().push((n, origin.elapsed()));
        tokio::time::sleep(Duration::from_micros(300)).await;
    }
    stop.store(true, Ordering::Relaxed);
    let written_at = written_at.lock().unwrap().clone();
    let mut reads = 0;
    for r in readers {
        for (started, n) in r.await.unwrap() {
            reads += 1;
            // The newest write that had returned before this read started.
            let floor = written_at
                .iter()
                .rev()
                .find(|(_, at)| *at <= started)
                .map_or(0, |(n, _)| *n);
            assert!(
                n >= floor,
                "read {n} at {started:?}, {floor} was written before"
            );
        }
    }
    assert!(reads > 300, "only {reads} reads");
    assert_eq!(n_of(&a, &k).await, Some(300));
}

/// The tracking connection is killed: the cache is dropped, a write made meanwhile is seen,
/// and caching resumes on a new connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_tracking_connection_drops_the_cache() {
    let server = support::Server::start(&[]);
    let (mut a, b) = (
        cached(&server.url(), "kill:").await,
        cached(&server.url(), "kill:").await,
    );
    let k = key("k");
    b.create(&k, &record(1), Duration::from_secs(60))
        .await
        .unwrap();
    for round in 0..20u64 {
        // A's tracking connection is back (the last round killed it) and holds the key:
        // without a copy there would be nothing to drop.
        a = warm(a).await;
        let t = Instant::now();
        loop {
            let hits = a.client_cache_stats().unwrap().hits;
            assert!(n_of(&a, &k).await.is_some());
            if a.client_cache_stats().unwrap().hits > hits {
                break;
            }
            assert!(
                t.elapsed() < Duration::from_secs(5),
                "the key is never cached"
            );
        }
        let flushes = a.client_cache_stats().unwrap().flushes;
        // Kill every tracking connection (A's and B's), then write through B's pool.
        let redis::Value::Int(_) = support::cmd(
            &server.url(),
            &["CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes"],
        )
        .await
        else {
            panic!("CLIENT KILL");
        };
        set_n(&b, &k, 100 + round).await;
        assert_eq!(
            n_of(&a, &k).await,
            Some(100 + round),
            "a stale read after the connection was killed"
        );
        assert!(a.client_cache_stats().unwrap().flushes > flushes);
    }
    // Caching works again on a new connection.
    let a = warm(a).await;
    let hits = a.client_cache_stats().unwrap().hits;
    for _ in 0..3 {
        assert_eq!(n_of(&a, &k).await, Some(119));
    }
    assert!(a.client_cache_stats().unwrap().hits >= hits + 2);
}

/// A server that stops answering (paused): no cached copy is served once the tracking
/// connection has been silent for a second; loads fail fast instead.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_server_stops_the_cache() {
    let server = support::Server::start(&[]);
    let a = warm(
        RedisStore::builder(server.url())
            .client_cache(1 << 20)
            .command_timeout(Duration::from_millis(300))
            .checkout_timeout(Duration::from_millis(300))
            .build()
            .await
            .unwrap(),
    )
    .await;
    let k = key("paused");
    a.create(&k, &record(5), Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(n_of(&a, &k).await, Some(5));
    assert_eq!(n_of(&a, &k).await, Some(5));
    support::cmd(&server.url(), &["CLIENT", "PAUSE", "5000", "ALL"]).await;
    let paused = Instant::now();
    tokio::time::sleep(Duration::from_millis(1300)).await;
    for _ in 0..4 {
        let t = Instant::now();
        let got = a.load(&k).await;
        assert!(
            got.is_err(),
            "served {got:?} from a silent connection, {:?} after the pause: {:?}",
            paused.elapsed(),
            a.client_cache_stats()
        );
        assert!(
            t.elapsed() < Duration::from_millis(900),
            "{:?}",
            t.elapsed()
        );
    }
    assert!(paused.elapsed() < Duration::from_secs(5));
    tokio::time::sleep(Duration::from_secs(5).saturating_sub(paused.elapsed())).await;
    // Back: served again, from Redis then from the cache.
    let t = Instant::now();
    while n_of_or_none(&a, &k).await != Some(5) {
        assert!(t.elapsed() < Duration::from_secs(3));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A restarted server (which keeps nothing): the sessions it lost are not served from the
/// cache.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_server_leaves_nothing_cached() {
    let mut server = support::Server::start(&[]);
    let a = cached(&server.url(), "").await;
    let k = key("restart");
    a.create(&k, &record(5), Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(n_of(&a, &k).await, Some(5));
    assert_eq!(n_of(&a, &k).await, Some(5));
    server.restart();
    let t = Instant::now();
    loop {
        match a.load(&k).await {
            Ok(Loaded::Missing) => break,
            Ok(Loaded::Live(_)) => panic!("served a session the restarted server lost"),
            _ => {}
        }
        assert!(t.elapsed() < Duration::from_secs(5));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_stays_within_the_bound() {
    let url = support::shared_url();
    let bound = 64 * 1024;
    let store = cached_within(&url, &support::unique_prefix("cache_bound"), bound).await;
    let mut data = Data::new();
    data.insert("blob".into(), json!("x".repeat(1000)));
    let big = Record { data, meta: meta() };
    for i in 0..600 {
        let k = key(&format!("b{i}"));
        store
            .create(&k, &big, Duration::from_secs(60))
            .await
            .unwrap();
        assert!(matches!(store.load(&k).await.unwrap(), Loaded::Live(_)));
        let s = store.client_cache_stats().unwrap();
        assert!(s.bytes <= bound, "{s:?}");
    }
    let s = store.client_cache_stats().unwrap();
    assert!(s.entries > 10 && s.entries < 100, "{s:?}");
    // The most recent are the ones kept.
    let hits = s.hits;
    assert!(matches!(
        store.load(&key("b599")).await.unwrap(),
        Loaded::Live(_)
    ));
    assert_eq!(store.client_cache_stats().unwrap().hits, hits + 1);
}

/// A `rolling` touch keeps the entry (with the new expiry) on the server that made it, and
/// drops it on the others.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_touch_moves_the_cached_expiry() {
    let url = support::shared_url();
    let prefix = support::unique_prefix("cache_touch");
    let (a, b) = (cached(&url, &prefix).await, cached(&url, &prefix).await);
    let k = key("t");
    a.create(&k, &record(1), Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(n_of(&a, &k).await, Some(1));
    assert_eq!(n_of(&b, &k).await, Some(1));
    for i in 1..=50u64 {
        let m = Meta {
            expire: Some(1_000_000 + i),
            max_age: MaxAge::Ms(60_000),
            created: None,
        };
        assert_eq!(
            a.touch(&k, m, Duration::from_secs(60)).await.unwrap(),
            Updated::Updated
        );
        let hits = a.client_cache_stats().unwrap().hits;
        let Loaded::Live(r) = a.load(&k).await.unwrap() else {
            panic!("gone")
        };
        assert_eq!(r.meta.expire, Some(1_000_000 + i));
        assert_eq!(
            a.client_cache_stats().unwrap().hits,
            hits + 1,
            "the touch kept the entry"
        );
        let Loaded::Live(r) = b.load(&k).await.unwrap() else {
            panic!("gone")
        };
        assert_eq!(r.meta.expire, Some(1_000_000 + i), "B kept the old expiry");
    }
    // A touch of a destroyed record is reported, and nothing stays cached.
    b.destroy(&k).await.unwrap();
    assert_eq!(
        a.touch(&k, meta(), Duration::from_secs(60)).await.unwrap(),
        Updated::NotFound
    );
    assert_eq!(n_of(&a, &k).await, None);
}

#[tokio::test]
async fn unsupported_setups_fail_at_build() {
    for (cluster, format) in [("redis://127.0.0.1:1", Format::Koa)] {
        let built = RedisStore::cluster([cluster])
            .format(format)
            .client_cache(1 << 20)
            .build()
            .await;
        assert!(matches!(
            built,
            Err(RedisBuildError::ClientCacheUnsupported(_))
        ));
    }
    let sentinel_koa = RedisStore::sentinel(["redis://127.0.0.1:1"], "m")
        .format(Format::Koa)
        .client_cache(1 << 20)
        .build()
        .await;
    assert!(matches!(
        sentinel_koa,
        Err(RedisBuildError::ClientCacheUnsupported(_))
    ));
    // Sentinel options elsewhere, and Sentinel over TLS, are operator mistakes.
    let misplaced = RedisStore::builder("redis://127.0.0.1:1")
        .master_database(2)
        .build()
        .await;
    assert!(matches!(misplaced, Err(RedisBuildError::InvalidUrl(_))));
    for url in [
        "rediss://127.0.0.1:1",
        "REDISS://127.0.0.1:1",
        "valkeys://127.0.0.1:1",
    ] {
        let tls = RedisStore::sentinel([url], "m").build().await;
        assert!(matches!(tls, Err(RedisBuildError::InvalidUrl(_))), "{url}");
        let cluster = RedisStore::cluster([url])
            .client_cache(1 << 20)
            .build()
            .await;
        assert!(
            matches!(cluster, Err(RedisBuildError::ClientCacheUnsupported(_))),
            "{url}"
        );
    }
    let passwords = RedisStore::sentinel(["redis://:hunter2@127.0.0.1:1"], "m")
        .master_login("app", "s3cret")
        .build()
        .await
        .unwrap();
    let shown = format!("{passwords:?} {}", passwords.redacted_url());
    assert!(
        !shown.contains("hunter2") && !shown.contains("s3cret"),
        "{shown}"
    );
    let koa = RedisStore::builder("redis://127.0.0.1:1")
        .format(Format::Koa)
        .client_cache(1 << 20)
        .build()
        .await;
    assert!(matches!(
        koa,
        Err(RedisBuildError::ClientCacheUnsupported(_))
    ));
    let manager = bb8_redis::RedisConnectionManager::new("redis://127.0.0.1:1").unwrap();
    let pool = bb8::Pool::builder().build_unchecked(manager);
    let shared = RedisStore::from_pool(pool)
        .client_cache(1 << 20)
        .build()
        .await;
    assert!(matches!(
        shared,
        Err(RedisBuildError::ClientCacheUnsupported(_))
    ));
    // Zero is off.
    let off = RedisStore::builder("redis://127.0.0.1:1")
        .client_cache(0)
        .build()
        .await
        .unwrap();
    assert!(off.client_cache_stats().is_none());
}

/// Through the middleware: a user logged in on app server A logs out on app server B; A's next
/// request, answered from A's cache until then, starts a new session. Hundreds of rounds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_logout_on_one_app_server_holds_on_the_other() {
    let url = support::shared_url();
    let prefix = support::unique_prefix("cache_mw");
    let config = session_core::Config::builder()
        .key(b"client cache test key, 32 bytes or more".to_vec())
        .build()
        .unwrap();
    let layer = |store: RedisStore| {
        session_hyper::SessionLayer::store(config.clone(), store)
            .build()
            .unwrap()
    };
    let server_a = support::serve(layer(cached(&url, &prefix).await)).await;
    let server_b = support::serve(layer(cached(&url, &prefix).await)).await;
    for _ in 0..100 {
        let c = support::browser();
        assert_eq!(
            support::text(&c, &format!("{server_a}/views")).await,
            "1 views"
        );
        assert_eq!(
            support::text(&c, &format!("{server_a}/views")).await,
            "2 views"
        );
        // Read-only requests on A, served from A's cache.
        for _ in 0..3 {
            assert_eq!(
                support::text(&c, &format!("{server_a}/read")).await,
                r#"{"views":2}"#
            );
        }
        assert_eq!(
            support::text(&c, &format!("{server_b}/views")).await,
            "3 views"
        );
        assert_eq!(
            support::text(&c, &format!("{server_a}/read")).await,
            r#"{"views":3}"#
        );
        assert_eq!(
            support::text(&c, &format!("{server_b}/logout")).await,
            "bye"
        );
        assert_eq!(support::text(&c, &format!("{server_a}/read")).await, "{}");
    }
}
