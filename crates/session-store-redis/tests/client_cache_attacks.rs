//! The client cache attacked (from an outside review): a cache whose own touches (`rolling`)
//! once stopped Redis from tracking the key, concurrent writes, touches and killed tracking
//! connections together, a Redis that accepts connections and never answers, and a tracking
//! connection black-holed while the pool stays healthy.
#![cfg(feature = "redis-tests")]
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use session_core::store::{Loaded, Store, Updated};
use session_store_redis::RedisStore;
use support::cache::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A touch by A (through its tracking connection) must leave the key tracked: B's save and
/// B's logout still reach A's cache.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_elsewhere_reach_a_cache_that_touches() {
    let (a, b, k) = two_servers("cache_touch_then").await;
    for round in 1..=100u64 {
        assert!(n_of(&a, &k).await.is_some());
        assert_eq!(
            a.touch(&k, meta(), Duration::from_secs(60)).await.unwrap(),
            Updated::Updated
        );
        set_n(&b, &k, round).await;
        assert_eq!(
            n_of(&a, &k).await,
            Some(round),
            "round {round}: A missed B's save after its touch"
        );
    }
    assert_eq!(
        a.touch(&k, meta(), Duration::from_secs(60)).await.unwrap(),
        Updated::Updated
    );
    b.destroy(&k).await.unwrap();
    assert_eq!(
        n_of(&a, &k).await,
        None,
        "A served a logged-out session after its touch"
    );
}

/// B counts up to 400 while A reads (and, with `touch`, touches after every read, as
/// `rolling` does) and, with `kill`, every tracking connection is killed every 15 ms. A read
/// must never return a value older than one whose write returned before it started.
async fn stress(touch: bool, kill: bool) {
    let server = support::Server::start(&[]);
    let url = server.url();
    let (a, b) = (cached(&url, "s:").await, cached(&url, "s:").await);
    let k = support::cache::key("s");
    b.create(&k, &record(0), Duration::from_secs(60))
        .await
        .unwrap();
    let origin = Instant::now();
    // When each value's write returned (µs after origin; MAX: not yet).
    let returned: Arc<Vec<AtomicU64>> =
        Arc::new((0..=400).map(|_| AtomicU64::new(u64::MAX)).collect());
    returned[0].store(0, Ordering::Relaxed);
    let stop = Arc::new(AtomicBool::new(false));
    let killer = {
        let (url, stop) = (url.clone(), Arc::clone(&stop));
        tokio::spawn(async move {
            let mut kills = 0;
            while kill && !stop.load(Ordering::Relaxed) {
                kills += kill_tracking(&url).await;
                tokio::time::sleep(Duration::from_millis(15)).await;
            }
            kills
        })
    };
    let reader = {
        let (a, k, returned, stop) = (
            a.clone(),
            k.clone(),
            Arc::clone(&returned),
            Arc::clone(&stop),
        );
        tokio::spawn(async move {
            let (mut stale, mut reads) = (0u64, 0u64);
            while !stop.load(Ordering::Relaxed) {
                let started = u64::try_from(origin.elapsed().as_micros()).unwrap();
                if let Ok(Loaded::Live(r)) = a.load(&k).await {
                    reads += 1;
                    let v = r.data["n"].as_u64().unwrap();
                    // The newest value whose write had returned before this read started.
                    let floor = (0..=400u64)
                        .filter(|i| returned[*i as usize].load(Ordering::Relaxed) <= started)
                        .max()
                        .unwrap_or(0);
                    stale += u64::from(v < floor);
                }
                if touch {
                    let _ = a.touch(&k, meta(), Duration::from_secs(60)).await;
                }
                tokio::task::yield_now().await;
            }
            (stale, reads)
        })
    };
    for i in 1..=400u64 {
        set_n(&b, &k, i).await;
        returned[i as usize].store(
            u64::try_from(origin.elapsed().as_micros()).unwrap(),
            Ordering::Relaxed,
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    tokio::time::sleep(Duration::from_millis(250)).await;
    stop.store(true, Ordering::Relaxed);
    let kills = killer.await.unwrap();
    let (stale, reads) = reader.await.unwrap();
    let stats = a.client_cache_stats().unwrap();
    eprintln!("touch={touch} kill={kill}: {reads} reads, {kills} kills, {stats:?}");
    assert_eq!(stale, 0, "stale reads");
    assert!(reads > 100, "{reads} reads");
    assert!(!kill || kills > 10, "{kills} kills");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rolling_reads_racing_writes() {
    stress(true, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_racing_writes_and_killed_connections() {
    stress(false, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rolling_reads_racing_writes_and_killed_connections() {
    stress(true, true).await;
}

/// A "Redis" that accepts connections and never answers (a paused server, a black hole behind
/// a load balancer): no request waits for the tracking connection's connect, so loads fail
/// as fast as without the cache instead of queueing one connect timeout after another.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_request_waits_for_the_tracking_connection() {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = l.accept().await {
            held.push(s);
        }
    });
    let store = Arc::new(
        RedisStore::builder(format!("redis://127.0.0.1:{port}/0"))
            .checkout_timeout(Duration::from_millis(200))
            .command_timeout(Duration::from_millis(200))
            .client_cache(1 << 20)
            .build()
            .await
            .unwrap(),
    );
    for round in 0..3 {
        let mut tasks = Vec::new();
        for i in 0..16 {
            let s = Arc::clone(&store);
            tasks.push(tokio::spawn(async move {
                let t = Instant::now();
                let got = s.load(&support::cache::key(&format!("q{i}"))).await;
                assert!(got.is_err());
                t.elapsed()
            }));
        }
        for t in tasks {
            let took = t.await.unwrap();
            assert!(
                took < Duration::from_millis(600),
                "round {round}: a load took {took:?} (timeouts 200 ms)"
            );
        }
    }
}

/// A store on `url` with a cache and a 200 ms command timeout, its tracking connection up.
async fn quick(url: &str) -> RedisStore {
    warm(
        RedisStore::builder(url)
            .command_timeout(Duration::from_millis(200))
            .client_cache(1 << 20)
            .build()
            .await
            .unwrap(),
    )
    .await
}

/// A TCP proxy to `upstream` that, once `freeze` is set, stops passing bytes on the connections
/// that turned client tracking on (an idle-connection drop in a NAT), and only those.
async fn freezing_proxy(upstream: u16, freeze: Arc<AtomicBool>) -> u16 {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((client, _)) = l.accept().await {
            let server = tokio::net::TcpStream::connect(("127.0.0.1", upstream))
                .await
                .unwrap();
            let tracking = Arc::new(AtomicBool::new(false));
            let (cr, cw) = client.into_split();
            let (sr, sw) = server.into_split();
            for (mut from, mut to, sniff) in [
                (
                    Box::new(cr) as Box<dyn tokio::io::AsyncRead + Unpin + Send>,
                    Box::new(sw) as Box<dyn tokio::io::AsyncWrite + Unpin + Send>,
                    true,
                ),
                (Box::new(sr) as _, Box::new(cw) as _, false),
            ] {
                let (freeze, tracking) = (Arc::clone(&freeze), Arc::clone(&tracking));
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 65536];
                    loop {
                        let n = match from.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => n,
                        };
                        if sniff && buf[..n].windows(8).any(|w| w == b"TRACKING") {
                            tracking.store(true, Ordering::Relaxed);
                        }
                        while freeze.load(Ordering::Relaxed) && tracking.load(Ordering::Relaxed) {
                            tokio::time::sleep(Duration::from_secs(3600)).await;
                        }
                        if to.write_all(&buf[..n]).await.is_err() {
                            return;
                        }
                    }
                });
            }
        }
    });
    port
}

/// Only the tracking connection goes silent; the pool is fine: every load still succeeds,
/// within the command timeout plus a pool round trip, and none is served from the silent
/// connection's cache (its read fence never comes back).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_black_holed_tracking_connection_leaves_loads_on_the_pool() {
    let upstream = support::Server::start(&[]);
    let freeze = Arc::new(AtomicBool::new(false));
    let port = freezing_proxy(upstream.port, Arc::clone(&freeze)).await;
    let via_proxy = format!("redis://127.0.0.1:{port}/0");
    let a = quick(&via_proxy).await;
    let b = RedisStore::builder(upstream.url()).build().await.unwrap();
    let k = support::cache::key("bh");
    a.create(&k, &record(1), Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(n_of(&a, &k).await, Some(1));
    assert_eq!(n_of(&a, &k).await, Some(1));
    freeze.store(true, Ordering::Relaxed);
    // A write A's cache can't hear of.
    set_n(&b, &k, 2).await;
    let frozen = Instant::now();
    let mut stale = 0;
    while frozen.elapsed() < Duration::from_secs(3) {
        let t = Instant::now();
        let got = n_of(&a, &k).await;
        assert!(
            t.elapsed() < Duration::from_millis(600),
            "a load took {:?}",
            t.elapsed()
        );
        match got {
            Some(2) => {}
            Some(1) => stale += 1,
            other => panic!("{other:?}"),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // A read fence can't come back on the silent connection: the load goes to Redis.
    assert_eq!(stale, 0, "stale reads from a silent tracking connection");
}

/// A write dropped while Redis holds it (the middleware's store timeout, a client gone): it
/// still runs, and no push comes back for it (it ran on the tracking connection), yet this
/// process never serves the copy it had from before; and a create that timed out is not run a
/// second time on the pool (it would answer "collision" for its own record).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_or_timed_out_write_is_never_undone_by_the_cache() {
    let server = support::Server::start(&[]);
    let url = server.url();
    let a = quick(&url).await;
    // The destroy script is loaded (a dropped EVALSHA that met NOSCRIPT would never run).
    a.destroy(&support::cache::key("load-the-script"))
        .await
        .unwrap();
    for round in 0..20u64 {
        let k = support::cache::key(&format!("dropped{round}"));
        a.create(&k, &record(1), Duration::from_secs(60))
            .await
            .unwrap();
        assert_eq!(n_of(&a, &k).await, Some(1));
        assert_eq!(n_of(&a, &k).await, Some(1));
        support::cmd(&url, &["CLIENT", "PAUSE", "150", "WRITE"]).await;
        // The logout's request gives up after 30 ms; Redis runs the destroy later.
        let gave_up = tokio::time::timeout(Duration::from_millis(30), a.destroy(&k))
            .await
            .is_err();
        assert!(gave_up);
        let t = Instant::now();
        loop {
            match a.load(&k).await {
                Ok(Loaded::Missing) => break,
                Ok(Loaded::Live(_)) => {
                    assert!(
                        t.elapsed() < Duration::from_secs(1),
                        "round {round}: a logout undone"
                    )
                }
                other => panic!("{other:?}"),
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(
            t.elapsed() >= Duration::from_millis(100),
            "the pause held the destroy"
        );
    }
    // A create that outlives its command timeout fails; it is not run again.
    let k = support::cache::key("slow-create");
    support::cmd(&url, &["CLIENT", "PAUSE", "300", "WRITE"]).await;
    let got = a.create(&k, &record(1), Duration::from_secs(60)).await;
    assert!(
        matches!(got, Err(session_core::store::StoreError::Timeout(_))),
        "{got:?}"
    );
    tokio::time::sleep(Duration::from_millis(400)).await;
    let t = Instant::now();
    while n_of(&a, &k).await != Some(1) {
        assert!(t.elapsed() < Duration::from_secs(2), "the create never ran");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
