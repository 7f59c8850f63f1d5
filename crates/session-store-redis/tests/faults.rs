//! Fault injection against real redis-servers owned by each test: stop and restart on the same
//! port, CLIENT PAUSE, CLIENT KILL, maxmemory with noeviction, pool exhaustion. Each asserts a
//! bounded time to error and recovery.
#![cfg(feature = "redis-tests")]
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod support;

use std::time::{Duration, Instant};

use serde_json::json;
use session_core::store::{Created, Destroyed, Loaded, Store, StoreError, StoreKey};
use session_store_redis::RedisStore;
use session_testkit::conformance::record;
use support::{Server, free_port};

fn key(i: usize) -> StoreKey {
    StoreKey::from_raw(format!("sess:{i}"))
}

const TTL: Duration = Duration::from_secs(600);

async fn store(url: &str, checkout_ms: u64, command_ms: u64, pool: u32) -> RedisStore {
    RedisStore::builder(url)
        .checkout_timeout(Duration::from_millis(checkout_ms))
        .command_timeout(Duration::from_millis(command_ms))
        .pool_size(pool)
        .build()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_killed_then_restarted_on_the_same_port() {
    let mut server = Server::start(&[]);
    let s = store(&server.url(), 300, 300, 4).await;
    s.create(&key(1), &record(json!({"a": 1})), TTL)
        .await
        .unwrap();
    server.stop();
    // Down: every call fails fast with a typed error, never hangs.
    let mut worst = Duration::ZERO;
    for _ in 0..20 {
        let t = Instant::now();
        let err = s.load(&key(1)).await.unwrap_err();
        worst = worst.max(t.elapsed());
        assert!(err.is_transient(), "{err:?}");
    }
    assert!(
        worst < Duration::from_millis(1500),
        "slowest failure took {worst:?}"
    );
    server.restart();
    // Back: the pool recovers by itself (the data is gone: no persistence).
    let t = Instant::now();
    loop {
        match s.load(&key(1)).await {
            Ok(r) => {
                assert_eq!(r, Loaded::Missing);
                break;
            }
            Err(e) => assert!(
                t.elapsed() < Duration::from_secs(2),
                "not recovered after {:?}: {e}",
                t.elapsed()
            ),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    println!(
        "recovered {:?} after restart; slowest failure while down {worst:?}",
        t.elapsed()
    );
    assert_eq!(
        s.create(&key(2), &record(json!({})), TTL).await.unwrap(),
        Created::Inserted
    );
}

/// A refusal is an answer: it is reported at once, not after the checkout timeout (which
/// bounds silence). Before the fix each of these took the whole 5 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_connections_fail_at_once() {
    let port = free_port(); // nothing listens here
    let s = store(&format!("redis://127.0.0.1:{port}/0"), 5000, 1000, 1).await;
    let mut worst = Duration::ZERO;
    for _ in 0..200 {
        let t = Instant::now();
        let err = s.load(&key(1)).await.unwrap_err();
        worst = worst.max(t.elapsed());
        assert!(
            matches!(err, StoreError::Unavailable(ref why) if why.contains("refused")),
            "{err:?}"
        );
    }
    // Far below the 5 s checkout timeout; the bound leaves room for a loaded CI machine.
    assert!(
        worst < Duration::from_millis(1000),
        "slowest refusal took {worst:?}"
    );
    // Many requests at once: each fails fast too (one connect attempt wakes every waiter).
    let t = Instant::now();
    let k = key(1);
    let all = futures_util::future::join_all((0..50).map(|_| s.load(&k))).await;
    assert!(all.iter().all(Result::is_err));
    assert!(
        t.elapsed() < Duration::from_millis(2000),
        "{:?}",
        t.elapsed()
    );
    println!(
        "slowest of 200 refusals: {worst:?}; 50 concurrent: {:?}",
        t.elapsed()
    );
}

/// A connect refused while other connections serve (Redis's `maxclients` reached: 2 here, a
/// pool of 8) fails nobody: waiting calls get a connection that is open or being opened.
/// 10 bursts of 50 calls at once, from a cold pool, with and without a PING on checkout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_extra_connection_fails_nobody_while_others_serve() {
    let server = Server::start(&["--maxclients", "2"]);
    for test_on_checkout in [false, true] {
        let s = RedisStore::builder(server.url())
            .pool_size(8)
            .test_on_checkout(test_on_checkout)
            .build()
            .await
            .unwrap();
        let k = key(1);
        let mut failed = Vec::new();
        for _ in 0..10 {
            let all = futures_util::future::join_all((0..50).map(|_| s.load(&k))).await;
            failed.extend(
                all.into_iter()
                    .filter_map(|r| r.err().map(|e| e.to_string())),
            );
        }
        assert!(
            failed.is_empty(),
            "test_on_checkout {test_on_checkout}: {} of 500 failed: {:?}",
            failed.len(),
            &failed[..failed.len().min(3)]
        );
        drop(s);
        // The server lets the closed connections go before the next pool connects.
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paused_server_times_out_within_the_command_timeout() {
    let server = Server::start(&[]);
    let s = store(&server.url(), 300, 300, 4).await;
    s.create(&key(1), &record(json!({"a": 1})), TTL)
        .await
        .unwrap();
    server.cmd(&["CLIENT", "PAUSE", "2000", "ALL"]).await;
    let t = Instant::now();
    let err = s.load(&key(1)).await.unwrap_err();
    let took = t.elapsed();
    assert!(matches!(err, StoreError::Timeout(_)), "{err:?}");
    assert!(took < Duration::from_millis(1200), "took {took:?}");
    tokio::time::sleep(Duration::from_millis(2000)).await;
    assert!(
        s.load(&key(1)).await.unwrap().record().is_some(),
        "recovered after the pause"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_connections_are_replaced() {
    let server = Server::start(&[]);
    let s = store(&server.url(), 500, 500, 2).await;
    s.create(&key(1), &record(json!({"a": 1})), TTL)
        .await
        .unwrap();
    server
        .cmd(&["CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes"])
        .await;
    // The next call retries once on a fresh connection; at worst one call fails.
    let mut failures = 0;
    for _ in 0..5 {
        if s.load(&key(1)).await.is_err() {
            failures += 1;
        }
    }
    assert!(failures <= 1, "{failures} failures after CLIENT KILL");
    assert!(s.load(&key(1)).await.unwrap().record().is_some());
    // A destroy (a logout) sent first on a connection the server closed is sent again on a
    // fresh one, 50 times over: it never fails.
    for i in 0..50 {
        s.create(&key(100 + i), &record(json!({"a": 1})), TTL)
            .await
            .unwrap();
        server
            .cmd(&["CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes"])
            .await;
        let got = s.destroy(&key(100 + i)).await;
        assert!(matches!(got, Ok(Destroyed::Removed)), "round {i}: {got:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_memory_under_noeviction_is_a_typed_error() {
    let server = Server::start(&["--maxmemory", "2mb", "--maxmemory-policy", "noeviction"]);
    let s = store(&server.url(), 500, 500, 2).await;
    let big = "x".repeat(30_000);
    let mut oom = None;
    for i in 0..500 {
        let t = Instant::now();
        match s.create(&key(i), &record(json!({"v": big})), TTL).await {
            Ok(_) => {}
            Err(e) => {
                oom = Some((e, t.elapsed()));
                break;
            }
        }
    }
    let (err, took) = oom.expect("Redis never refused a write");
    assert!(
        matches!(err, StoreError::Rejected(ref m) if m.contains("out of memory")),
        "{err:?}"
    );
    assert!(took < Duration::from_millis(500));
    // A refused create of thousands of keys (written in chunks) leaves nothing half-written,
    // and no key is ever left without a TTL.
    let many: serde_json::Map<String, serde_json::Value> =
        (0..5000).map(|i| (format!("k{i}"), json!(i))).collect();
    let got = s.create(&key(20_000), &record(many.into()), TTL).await;
    assert!(got.is_err(), "{got:?}");
    assert_eq!(s.ttl(&key(20_000)).await.unwrap(), None);
    let redis::Value::Array(keys) = server.cmd(&["KEYS", "*"]).await else {
        panic!("KEYS");
    };
    for k in keys {
        let redis::Value::BulkString(k) = k else {
            panic!("key");
        };
        let k = String::from_utf8(k).unwrap();
        let redis::Value::Int(pttl) = server.cmd(&["PTTL", &k]).await else {
            panic!("PTTL");
        };
        assert!(pttl > 0, "a key without a TTL under memory pressure");
    }
    // Reads still work; deletes free memory and writes resume.
    assert!(s.load(&key(0)).await.unwrap().record().is_some());
    for i in 0..20 {
        s.destroy(&key(i)).await.unwrap();
    }
    s.create(&key(10_000), &record(json!({"small": true})), TTL)
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pool_exhaustion_errors_fast_and_recovers() {
    let server = Server::start(&[]);
    // One multiplexed connection shared by every request; Redis stops answering.
    let s = store(&server.url(), 200, 400, 1).await;
    s.create(&key(1), &record(json!({"a": 1})), TTL)
        .await
        .unwrap();
    // A second store whose pool has no connection yet: its checkouts must connect while paused.
    let cold = store(&server.url(), 200, 400, 1).await;
    server.cmd(&["CLIENT", "PAUSE", "1500", "ALL"]).await;
    let t = Instant::now();
    let mut calls = Vec::new();
    for i in 0..50 {
        let s = if i % 5 == 0 { cold.clone() } else { s.clone() };
        calls.push(tokio::spawn(async move {
            let t = Instant::now();
            (s.load(&key(1)).await, t.elapsed())
        }));
    }
    let mut worst = Duration::ZERO;
    for c in calls {
        let (res, took) = c.await.unwrap();
        assert!(matches!(res, Err(StoreError::Timeout(_))), "{res:?}");
        worst = worst.max(took);
    }
    // Nobody waits longer than the checkout or command timeout (plus scheduling slack).
    assert!(
        worst < Duration::from_millis(1500),
        "slowest call took {worst:?}"
    );
    assert!(t.elapsed() < Duration::from_millis(2000));
    // After the pause every call succeeds again, on both stores.
    tokio::time::sleep(Duration::from_millis(1600)).await;
    let t = Instant::now();
    loop {
        match (s.load(&key(1)).await, cold.load(&key(1)).await) {
            (Ok(Loaded::Live(_)), Ok(Loaded::Live(_))) => break,
            other => assert!(
                t.elapsed() < Duration::from_secs(2),
                "no recovery: {other:?}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    println!(
        "slowest failure while paused: {worst:?}; recovered {:?} after the pause",
        t.elapsed()
    );
}

/// An ACL user's URL works, its password stays out of `Debug`, and a refused login is a
/// configuration error; an app's own bb8-redis pool works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acl_user_and_existing_pool() {
    let server = Server::start(&[
        "--user",
        "default",
        "off",
        "--user",
        "app",
        "on",
        ">s3cret-pass",
        "~*",
        "+@all",
    ]);
    let url = format!("redis://app:s3cret-pass@127.0.0.1:{}/0", server.port);
    let s = RedisStore::builder(&url).build().await.unwrap();
    assert!(
        !format!("{s:?}").contains("s3cret"),
        "the password stays out of Debug"
    );
    assert_eq!(
        s.create(&key(1), &record(json!({"a": 1})), TTL)
            .await
            .unwrap(),
        Created::Inserted
    );
    let wrong = RedisStore::builder(format!("redis://app:nope@127.0.0.1:{}/0", server.port))
        .build()
        .await
        .unwrap();
    // A refused login (a wrong password, or none) is the operator's to fix, not an outage:
    // not transient (the middleware answers 500, not a 503 inviting retries), fast, saying
    // what to check, never the password. 100 calls each.
    let none = RedisStore::builder(format!("redis://127.0.0.1:{}/0", server.port))
        .build()
        .await
        .unwrap();
    for store in [&wrong, &none] {
        for _ in 0..100 {
            let t = std::time::Instant::now();
            let err = store.load(&key(1)).await.unwrap_err();
            let shown = format!("{err} {err:?}");
            assert!(!shown.contains("nope"), "{shown}");
            assert!(!err.is_transient(), "{shown}");
            assert!(shown.contains("refused the login"), "{shown}");
            assert!(
                t.elapsed() < Duration::from_millis(300),
                "{:?}",
                t.elapsed()
            );
        }
    }
    // An app's own bb8-redis pool.
    let manager = bb8_redis::RedisConnectionManager::new(url.as_str()).unwrap();
    let pool = bb8::Pool::builder()
        .max_size(2)
        .build(manager)
        .await
        .unwrap();
    let shared = RedisStore::from_pool(pool).build().await.unwrap();
    assert!(shared.load(&key(1)).await.unwrap().record().is_some());
}

/// A TCP proxy in front of Redis that, once armed, lets the next command through and drops the
/// connection when its reply comes back: Redis ran the command, the store never hears of it.
struct ReplyDropper {
    url: String,
    armed: std::sync::Arc<std::sync::atomic::AtomicBool>,
    /// Replies dropped so far.
    lost: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl ReplyDropper {
    async fn start(upstream: u16) -> Self {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicBool, Ordering};
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("redis://{}/0", listener.local_addr().unwrap());
        let armed = Arc::new(AtomicBool::new(false));
        let lost = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (arm, count) = (Arc::clone(&armed), Arc::clone(&lost));
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = tokio::net::TcpStream::connect(("127.0.0.1", upstream)).await
                else {
                    continue;
                };
                let (armed, count) = (Arc::clone(&arm), Arc::clone(&count));
                tokio::spawn(async move {
                    let (mut cr, mut cw) = client.into_split();
                    let (mut sr, mut sw) = server.into_split();
                    let up = tokio::spawn(async move { tokio::io::copy(&mut cr, &mut sw).await });
                    let mut buf = vec![0u8; 1 << 16];
                    while let Ok(n @ 1..) = sr.read(&mut buf).await {
                        if armed.swap(false, Ordering::SeqCst) {
                            count.fetch_add(1, Ordering::SeqCst);
                            // Both halves of the client's socket go: it sees the connection
                            // close with its command answered by Redis and the answer lost.
                            up.abort();
                            return;
                        }
                        if cw.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                    up.abort();
                });
            }
        });
        Self { url, armed, lost }
    }

    fn arm(&self) {
        self.armed.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

/// A reply lost to a dropped connection after Redis ran the command (the store retries such a
/// command once): a login's supersede still reports the session replaced (a second run that
/// answered "already superseded" dropped the login's new record and logged the user out), and
/// a logout's destroy of a superseded id never answers "nothing there" (the session a racing
/// login made would outlive the logout): it names the successor, and a destroy sent again
/// names it again; a create still answers "inserted" (a collision left an orphan record).
/// Saves and touches still answer as done. 200 rounds per format, zero wrong answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_reply_never_turns_a_login_or_a_logout_into_a_wrong_answer() {
    use session_core::store::{Change, Delta, Supersede, Updated};
    use session_store_redis::Format;
    let server = Server::start(&[]);
    let proxy = ReplyDropper::start(server.port).await;
    for format in [Format::V1, Format::Koa] {
        let prefix = format!("lost:{format:?}:");
        let s = RedisStore::builder(&proxy.url)
            .format(format)
            .prefix(&prefix)
            .build()
            .await
            .unwrap();
        let direct = RedisStore::builder(server.url())
            .format(format)
            .prefix(&prefix)
            .build()
            .await
            .unwrap();
        // Each script once, unarmed: a first call's `NOSCRIPT` answer must not be what is lost.
        let (a, b) = (key(1), key(2));
        let r = record(json!({"n": 0}));
        s.create(&a, &r, TTL).await.unwrap();
        s.create(&b, &r, TTL).await.unwrap();
        s.touch(&b, r.meta, TTL).await.unwrap();
        let delta = Delta {
            replace: false,
            set: [("n".to_owned(), json!(1))].into_iter().collect(),
            removed: Vec::new(),
        };
        let change = Change {
            delta: &delta,
            data: &r.data,
            meta: r.meta,
        };
        s.save(&b, change, TTL).await.unwrap();
        s.supersede(&a, &b, TTL).await.unwrap();
        s.destroy(&a).await.unwrap();
        s.destroy(&b).await.unwrap();

        proxy.lost.store(0, std::sync::atomic::Ordering::SeqCst);
        for i in 0..200 {
            let (old, new) = (key(10_000 + 2 * i), key(10_001 + 2 * i));
            let r = record(json!({"user": "u", "n": i}));
            s.create(&old, &r, TTL).await.unwrap();
            s.create(&new, &r, TTL).await.unwrap();

            proxy.arm();
            let got = s.supersede(&old, &new, TTL).await;
            assert!(
                matches!(got, Ok(Supersede::Replaced)),
                "{format:?} round {i}: a supersede whose reply was lost answered {got:?}"
            );
            assert!(matches!(
                direct.load(&old).await.unwrap(),
                Loaded::Superseded
            ));
            assert!(direct.load(&new).await.unwrap().record().is_some());

            // A save and a touch of the successor, each with its reply lost.
            let delta = Delta {
                replace: false,
                set: [("n".to_owned(), json!(-1))].into_iter().collect(),
                removed: Vec::new(),
            };
            let mut data = r.data.clone();
            data.insert("n".into(), json!(-1));
            let change = Change {
                delta: &delta,
                data: &data,
                meta: r.meta,
            };
            proxy.arm();
            let got = s.save(&new, change, TTL).await;
            assert!(
                matches!(got, Ok(Updated::Updated)),
                "{format:?} save: {got:?}"
            );
            proxy.arm();
            let got = s.touch(&new, r.meta, TTL).await;
            assert!(
                matches!(got, Ok(Updated::Updated)),
                "{format:?} touch: {got:?}"
            );
            let loaded = direct.load(&new).await.unwrap().into_record().unwrap();
            assert_eq!(loaded.data.get("n"), Some(&json!(-1)));

            // The logout through the old id.
            proxy.arm();
            let got = s.destroy(&old).await;
            assert!(
                matches!(&got, Ok(Destroyed::Superseded(next)) if *next == new),
                "{format:?} round {i}: a destroy of a superseded id whose reply was lost \
                 answered {got:?}: the successor would outlive the logout"
            );
            // The marker stays (to its TTL) and names the successor to every destroy: the
            // logout sent again, or a destroy the cluster connection sent twice, reaches it.
            for _ in 0..2 {
                assert_eq!(
                    direct.destroy(&old).await.unwrap(),
                    Destroyed::Superseded(new.clone())
                );
            }
            assert!(matches!(
                direct.load(&old).await.unwrap(),
                Loaded::Superseded
            ));
            s.destroy(&new).await.unwrap();

            // A create whose reply was lost: a collision would make the middleware write the
            // session under a second id, leaving the first as an orphan (listed among the
            // user's devices when bound to an owner) and logging a false id collision.
            let fresh = key(1_000_000 + i);
            proxy.arm();
            let got = s.create(&fresh, &r, TTL).await;
            assert!(
                matches!(got, Ok(Created::Inserted)),
                "{format:?} create: {got:?}"
            );
            assert!(direct.load(&fresh).await.unwrap().record().is_some());
        }
        // Every armed reply was really lost: five per round.
        let lost = proxy.lost.swap(0, std::sync::atomic::Ordering::SeqCst);
        assert_eq!(lost, 5 * 200, "{format:?}");
    }
}
