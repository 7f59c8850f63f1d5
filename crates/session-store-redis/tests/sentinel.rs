//! Redis Sentinel (one master, two replicas, three Sentinels, started here): the conformance
//! suite and the owner index with and without the client cache, the middleware end to end, a
//! wrong master name, and a `SENTINEL FAILOVER` under 32 concurrent users.
//!
//! The failover: each user writes on app server A (no cache) and then reads on app server B
//! (client cache), in a loop, while the first Sentinel is told to fail the master over. It
//! checks:
//! - no request takes longer than the layer's store timeout;
//! - every user is served again within a bound after the promotion (measured, printed);
//! - no read on B is stale: a read that shows less than the user's latest acknowledged write
//!   is checked against A (uncached) at once; when A has the write, B served a stale copy (a
//!   failure); when A doesn't, the write was lost, which the guide allows only for a write
//!   acknowledged before the replica was promoted;
//! - after the failover, every user's last acknowledged write is there.
#![cfg(feature = "redis-tests")]
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod support;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use session_core::Config;
use session_core::store::testing::{run_all, run_owner_admission, run_owner_index};
use session_core::store::{Store, StoreError, StoreKey};
use session_hyper::SessionLayer;
use session_store_redis::RedisStore;
use session_testkit::redis::Sentinels;
use support::{Real, browser, serve, text};

/// Concurrent users during the failover.
const USERS: usize = 32;
/// The layer's bound on each store call (its default).
const STORE_TIMEOUT: Duration = Duration::from_secs(2);
/// Every user must be served again within this long after the promotion.
const RECOVERY_BOUND: Duration = Duration::from_secs(5);

/// The two deployments' failovers run one at a time: each measures how long its requests take.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn store(d: &Sentinels, prefix: &str, cache: usize) -> RedisStore {
    RedisStore::sentinel(d.urls(), Sentinels::NAME)
        .prefix(prefix)
        .client_cache(cache)
        .build()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sentinel_conformance_e2e_and_failover() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let mut d = Sentinels::start().await;

    for cache in [0, 1 << 20] {
        let prefix = support::unique_prefix("sentinel_conf");
        let s = store(&d, &prefix, cache).await;
        run_owner_index(&Real::redis(s.clone())).await;
        run_owner_admission(&Real::redis(s.clone())).await;
        run_all(&Real::redis(s)).await;
    }

    // The records are on the master the Sentinels name, and nowhere else but its replicas.
    {
        let prefix = support::unique_prefix("sentinel_where");
        let s = store(&d, &prefix, 0).await;
        let k = StoreKey::from_raw("sess:where");
        s.create(&k, &support::cache::record(1), Duration::from_secs(60))
            .await
            .unwrap();
        let master = d.master_url().await;
        assert_eq!(
            session_testkit::redis::keys(&master, &prefix).await.len(),
            1
        );
    }

    // A write sent to a replica is refused with READONLY: an outage (a 503), not a 500.
    {
        let replica = d.replicas[0].url();
        let s = RedisStore::builder(replica).build().await.unwrap();
        let err = s
            .create(
                &StoreKey::from_raw("sess:ro"),
                &support::cache::record(1),
                Duration::from_secs(60),
            )
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    }

    // A name no Sentinel monitors: every call fails fast, as an outage.
    {
        let s = RedisStore::sentinel(d.urls(), "no-such-master")
            .build()
            .await
            .unwrap();
        let t = Instant::now();
        let err = s.load(&StoreKey::from_raw("sess:x")).await.unwrap_err();
        assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
        assert!(t.elapsed() < STORE_TIMEOUT, "took {:?}", t.elapsed());
    }

    // The middleware end to end: a counter per visitor, through the cache.
    {
        let prefix = support::unique_prefix("sentinel_e2e");
        let config = Config::builder()
            .key(b"sentinel e2e key, 32 bytes or more!!".to_vec())
            .build()
            .unwrap();
        let url = serve(
            SessionLayer::store(config, store(&d, &prefix, 1 << 20).await)
                .build()
                .unwrap(),
        )
        .await;
        for _ in 0..5 {
            let c = browser();
            for n in 1..=3 {
                assert_eq!(
                    text(&c, &format!("{url}/views")).await,
                    format!("{n} views")
                );
            }
        }
    }

    failover(&mut d, Trigger::Command).await;
}

/// The master crashes under load: calls fail fast (refused) until the Sentinels agree it is
/// down and promote a replica, which is then used without a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sentinel_master_crash() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let mut d = Sentinels::start().await;
    let b_store = failover(&mut d, Trigger::Crash).await;

    // With a Sentinel out of reach, a change of master might go unheard: the cache serves
    // nothing (every load reads Redis) until it is back.
    let k = StoreKey::from_raw("sess:deaf");
    b_store
        .create(&k, &support::cache::record(7), Duration::from_secs(60))
        .await
        .unwrap();
    let reads = |n: usize| {
        let b_store = b_store.clone();
        let k = k.clone();
        async move {
            let hits = b_store.client_cache_stats().unwrap().hits;
            for _ in 0..n {
                assert_eq!(support::cache::n_of(&b_store, &k).await, Some(7));
            }
            b_store.client_cache_stats().unwrap().hits - hits
        }
    };
    assert!(
        reads(20).await > 0,
        "served from the cache while every Sentinel answers"
    );
    d.sentinels[2].stop();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(
        reads(20).await,
        0,
        "a Sentinel is out of reach: no cached reads"
    );
    d.sentinels[2].restart();
    let t = Instant::now();
    while reads(5).await == 0 {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "the cache never came back"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// How the failover starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Trigger {
    /// `SENTINEL FAILOVER` on the first Sentinel.
    Command,
    /// The master is killed.
    Crash,
}

/// When each Sentinel event was first seen by the test.
type Seen = Arc<Mutex<HashMap<String, Instant>>>;

/// Listens to every Sentinel and notes when each failover event is first seen.
async fn watch_events(d: &Sentinels) -> Seen {
    let seen: Seen = Arc::default();
    for url in d.urls() {
        let client = redis::Client::open(url).unwrap();
        let mut ps = client.get_async_pubsub().await.unwrap();
        ps.psubscribe("*").await.unwrap();
        let seen = Arc::clone(&seen);
        tokio::spawn(async move {
            let mut messages = ps.into_on_message();
            let t0 = Instant::now();
            while let Some(m) = messages.next().await {
                if std::env::var("SENTINEL_EVENTS").is_ok() {
                    let p: String = m.get_payload().unwrap_or_default();
                    eprintln!("{:?} {} {p}", t0.elapsed(), m.get_channel_name());
                }
                seen.lock()
                    .unwrap()
                    .entry(m.get_channel_name().to_owned())
                    .or_insert_with(Instant::now);
            }
        });
    }
    seen
}

/// What one user saw.
#[derive(Default)]
struct Saw {
    slowest: Duration,
    /// Failed requests: when each started.
    failed: Vec<Instant>,
    /// Successful writes: when each was answered.
    served: Vec<Instant>,
    /// Reads on B that showed less than an acknowledged write, which A did have.
    stale: Vec<String>,
    /// Acknowledged writes A lost too: when each was answered, and what was seen.
    lost: Vec<(Instant, String)>,
    /// The latest acknowledged count.
    last: u64,
}

/// GET `url`: the status (0 when the request failed) and the body, and how long it took.
async fn get(c: &reqwest::Client, url: &str) -> (u16, String, Duration) {
    let t = Instant::now();
    let (status, body) = match c.get(url).send().await {
        Ok(r) => {
            let status = r.status().as_u16();
            (status, r.text().await.unwrap_or_default())
        }
        Err(_) => (0, String::new()),
    };
    (status, body, t.elapsed())
}

fn views(body: &str) -> Option<u64> {
    let v: serde_json::Value = serde_json::from_str(body).ok()?;
    Some(
        v.get("views")
            .and_then(serde_json::Value::as_u64)
            .unwrap_or(0),
    )
}

async fn user(a: String, b: String, stop: Arc<AtomicBool>) -> (Saw, reqwest::Client) {
    let c = browser();
    let mut saw = Saw::default();
    while !stop.load(Ordering::Relaxed) {
        let started = Instant::now();
        let (status, body, took) = get(&c, &format!("{a}/views")).await;
        saw.slowest = saw.slowest.max(took);
        let n = body
            .strip_suffix(" views")
            .and_then(|n| n.parse::<u64>().ok());
        let (200, Some(n)) = (status, n) else {
            saw.failed.push(started);
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        };
        let acked = Instant::now();
        saw.served.push(acked);
        saw.last = n;
        // Twice on B: the first read fills B's cache, the second is served from it.
        for _ in 0..2 {
            let started = Instant::now();
            let (status, body, took) = get(&c, &format!("{b}/read")).await;
            saw.slowest = saw.slowest.max(took);
            if status != 200 {
                saw.failed.push(started);
                break;
            }
            let Some(m) = views(&body) else { break };
            if m < saw.last {
                // B showed less than A acknowledged: does A (no cache) have the write?
                let (status, truth, _) = get(&c, &format!("{a}/read")).await;
                match views(&truth) {
                    Some(t) if t >= saw.last => {
                        saw.stale
                            .push(format!("B read {m} after A wrote {}", saw.last));
                    }
                    _ => {
                        let what =
                            format!("A wrote {}, B read {m}, A read {status} {truth}", saw.last);
                        saw.lost.push((acked, what));
                        saw.last = views(&truth).unwrap_or(0);
                    }
                }
            }
        }
    }
    (saw, c)
}

async fn failover(d: &mut Sentinels, trigger: Trigger) -> RedisStore {
    let prefix = support::unique_prefix("sentinel_failover");
    let config = Config::builder()
        .key(b"sentinel failover key, 32 bytes or more".to_vec())
        .build()
        .unwrap();
    let layer = |s: RedisStore| {
        SessionLayer::store(config.clone(), s)
            .store_timeout(STORE_TIMEOUT)
            .build()
            .unwrap()
    };
    let b_store = store(d, &prefix, 4 << 20).await;
    let a = serve(layer(store(d, &prefix, 0).await)).await;
    let b = serve(layer(b_store.clone())).await;
    let seen = watch_events(d).await;
    let old_master = d.master_port().await;

    let stop = Arc::new(AtomicBool::new(false));
    let users: Vec<_> = (0..USERS)
        .map(|_| tokio::spawn(user(a.clone(), b.clone(), Arc::clone(&stop))))
        .collect();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let before = b_store.client_cache_stats().unwrap();
    let hits_before = before.hits;
    assert!(
        hits_before > 0,
        "B serves from its cache before the failover: {before:?}"
    );

    let asked = Instant::now();
    match trigger {
        Trigger::Command => {
            let reply = d.sentinels[0]
                .cmd(&["SENTINEL", "FAILOVER", Sentinels::NAME])
                .await;
            assert_eq!(reply, redis::Value::Okay, "SENTINEL FAILOVER");
        }
        Trigger::Crash => d.master.stop(),
    }
    let switched = loop {
        if let Some(t) = seen.lock().unwrap().get("+switch-master") {
            break *t;
        }
        assert!(
            asked.elapsed() < Duration::from_secs(30),
            "no switch 30 s after SENTINEL FAILOVER"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop.store(true, Ordering::Relaxed);
    let mut saws = Vec::new();
    let mut clients = Vec::new();
    for u in users {
        let (saw, c) = u.await.unwrap();
        saws.push(saw);
        clients.push(c);
    }
    let events = seen.lock().unwrap().clone();
    let tried = events["+try-failover"];
    let promoted = events.get("+promoted-slave").copied().unwrap_or(switched);
    assert_ne!(d.master_port().await, old_master, "the master moved");

    let slowest = saws.iter().map(|s| s.slowest).max().unwrap();
    let stale: Vec<&String> = saws.iter().flat_map(|s| &s.stale).collect();
    let lost: Vec<&(Instant, String)> = saws.iter().flat_map(|s| &s.lost).collect();
    let failed: usize = saws.iter().map(|s| s.failed.len()).sum();
    let served: usize = saws.iter().map(|s| s.served.len()).sum();
    // Per user: the first write served after the promotion, measured from it.
    let back: Vec<Duration> = saws
        .iter()
        .map(|s| {
            s.served
                .iter()
                .find(|t| **t > promoted)
                .map_or(Duration::MAX, |t| t.duration_since(promoted))
        })
        .collect();
    let worst_back = back.iter().max().copied().unwrap();
    let first_failure = saws.iter().flat_map(|s| s.failed.first()).min();
    let last_failure = saws.iter().flat_map(|s| s.failed.last()).max();
    let outage = first_failure
        .zip(last_failure)
        .map(|(f, l)| l.duration_since(*f));
    println!(
        "Sentinel failover under {USERS} users ({trigger:?}): start -> +try-failover {:?}, \
         -> +promoted-slave {:?}, -> +switch-master {:?}; {served} writes served, {failed} \
         requests failed (the first {:?} after the start, over {:?}); every user served again within \
         {worst_back:?} of the promotion; slowest request {slowest:?}; {} acknowledged writes \
         lost, {} stale reads",
        tried.duration_since(asked),
        promoted.duration_since(asked),
        switched.duration_since(asked),
        first_failure.map(|f| f.saturating_duration_since(asked)),
        outage,
        lost.len(),
        stale.len(),
    );
    assert!(stale.is_empty(), "stale reads on B: {stale:?}");
    assert!(
        slowest < STORE_TIMEOUT,
        "a request took {slowest:?}, past the store timeout"
    );
    assert!(
        worst_back < RECOVERY_BOUND,
        "a user was not served within {RECOVERY_BOUND:?} of the promotion: {back:?}"
    );
    // A write can be lost only if the old master acknowledged it before the promotion.
    for (t, what) in &lost {
        let after = t.saturating_duration_since(promoted);
        let before = promoted.saturating_duration_since(*t);
        eprintln!("lost: {what}; acknowledged {before:?} before / {after:?} after the promotion");
    }
    for (t, what) in &lost {
        assert!(
            *t < promoted,
            "a write acknowledged after the promotion was lost: {what}"
        );
    }
    // After the failover every user's latest acknowledged write is there, on A and on B.
    for (saw, c) in saws.iter().zip(&clients) {
        for server in [&a, &b] {
            let body = text(c, &format!("{server}/read")).await;
            assert_eq!(views(&body), Some(saw.last), "{body}");
        }
    }
    let stats = b_store.client_cache_stats().unwrap();
    assert!(
        stats.flushes > 0,
        "the failover emptied B's cache: {stats:?}"
    );
    assert!(stats.hits > hits_before, "B's cache works again: {stats:?}");
    b_store
}
