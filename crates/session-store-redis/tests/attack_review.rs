//! An outside review's attacks on the save script's size bound (`_n`), the client cache's save
//! through the tracking connection, and the delta deduplication: concurrency across store
//! instances (with and without the cache), tampered records, and huge or odd inputs.
//!
//! Why this file is long: its twelve attacks share one set of helpers (stores, raw reads of
//! the hash, a seeded generator of deltas) and one subject, the save's size bound.
#![cfg(feature = "redis-tests")]
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use serde_json::{Value, json};
use session_core::Data;
use session_core::store::testing::set;
use session_core::store::{
    Change, Created, Delta, Loaded, Record, Store, StoreError, StoreKey, Updated,
};
use session_store_redis::RedisStore;
use support::cache::{meta, warm};

const TTL: Duration = Duration::from_secs(120);

/// A tiny xorshift: the tests need no crate for their randomness.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

async fn store(prefix: &str, limit: usize, cache: bool) -> RedisStore {
    let b = RedisStore::builder(support::shared_url())
        .prefix(prefix)
        .max_record_bytes(limit);
    if cache {
        warm(b.client_cache(16 << 20).build().await.unwrap()).await
    } else {
        b.build().await.unwrap()
    }
}

/// Two plain stores and two with the client cache, on one prefix (four app servers).
async fn fleet(prefix: &str, limit: usize) -> Vec<Arc<RedisStore>> {
    vec![
        Arc::new(store(prefix, limit, false).await),
        Arc::new(store(prefix, limit, true).await),
        Arc::new(store(prefix, limit, false).await),
        Arc::new(store(prefix, limit, true).await),
    ]
}

fn size(data: &Data) -> usize {
    data.iter()
        .map(|(k, v)| 2 + k.len() + serde_json::to_vec(v).unwrap().len())
        .sum()
}

fn rec(pairs: &[(&str, Value)]) -> Record {
    let mut data = Data::new();
    for (k, v) in pairs {
        data.insert((*k).to_owned(), v.clone());
    }
    Record { data, meta: meta() }
}

async fn save(
    s: &RedisStore,
    k: &StoreKey,
    d: &Delta,
    full: &Data,
    ttl: Duration,
) -> Result<Updated, StoreError> {
    s.save(
        k,
        Change {
            data: full,
            delta: d,
            meta: meta(),
        },
        ttl,
    )
    .await
}

/// A save whose `data` is what the delta makes of `base` (what the session would send).
async fn save_delta(s: &RedisStore, k: &StoreKey, d: &Delta) -> Result<Updated, StoreError> {
    let mut r = Record {
        data: Data::new(),
        meta: meta(),
    };
    r.apply(d, &Data::new(), meta());
    save(s, k, d, &r.data, TTL).await
}

fn full_key(prefix: &str, k: &StoreKey) -> String {
    format!("{prefix}{}", k.as_str())
}

/// What Redis holds under `k` (see `support::cache::held`).
async fn held(prefix: &str, k: &StoreKey) -> (usize, Option<String>, usize) {
    support::cache::held(&support::shared_url(), &full_key(prefix, k)).await
}

async fn pttl(prefix: &str, k: &StoreKey) -> i64 {
    match support::cmd(&support::shared_url(), &["PTTL", &full_key(prefix, k)]).await {
        redis::Value::Int(n) => n,
        other => panic!("{other:?}"),
    }
}

async fn raw(prefix: &str, args: &[&str]) -> redis::Value {
    let _ = prefix;
    support::cmd(&support::shared_url(), args).await
}

fn live(l: Result<Loaded, StoreError>) -> Data {
    match l {
        Ok(Loaded::Live(r)) => r.data,
        other => panic!("load answered {other:?}"),
    }
}

/// Sets/removes/replaces on one session from 4 instances (2 cached), 32 tasks, 600 saves; a
/// watcher reads the hash all along: the `d:` bytes never pass the limit, `_n` never drops
/// under them, every save answers Updated or TooLarge, and at the end every instance loads what
/// Redis holds.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_mixed_saves_never_pass_the_limit() {
    const LIMIT: usize = 1200;
    let prefix = support::unique_prefix("attack-mixed");
    let stores = fleet(&prefix, LIMIT).await;
    let k = StoreKey::from_raw("sess:mixed".to_owned());
    stores[0]
        .create(&k, &rec(&[("a", json!(1))]), TTL)
        .await
        .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let violations = Arc::new(AtomicU64::new(0));
    let watcher = {
        let (stop, violations, prefix, k) =
            (stop.clone(), violations.clone(), prefix.clone(), k.clone());
        tokio::spawn(async move {
            let client = redis::Client::open(support::shared_url()).unwrap();
            let mut c = client.get_multiplexed_async_connection().await.unwrap();
            let full = full_key(&prefix, &k);
            let mut polls = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let items: Vec<(Vec<u8>, Vec<u8>)> = redis::cmd("HGETALL")
                    .arg(&full)
                    .query_async(&mut c)
                    .await
                    .unwrap();
                let bytes: usize = items
                    .iter()
                    .filter(|(f, _)| f.starts_with(b"d:"))
                    .map(|(f, v)| f.len() + v.len())
                    .sum();
                let n = items
                    .iter()
                    .find(|(f, _)| f == b"_n")
                    .map(|(_, v)| String::from_utf8_lossy(v).into_owned());
                let n: usize = n.and_then(|n| n.parse().ok()).unwrap_or(0);
                if bytes > LIMIT || n < bytes {
                    eprintln!("watcher: {bytes} bytes held, _n {n}");
                    violations.fetch_add(1, Ordering::Relaxed);
                }
                polls += 1;
            }
            polls
        })
    };
    let (updated, refused, other) = (
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
    );
    let names = ["a", "b", "c", "d", "e", "f", "g", "h"];
    let mut tasks = Vec::new();
    for t in 0..32u64 {
        let (stores, k) = (stores.clone(), k.clone());
        let (updated, refused, other) = (updated.clone(), refused.clone(), other.clone());
        tasks.push(tokio::spawn(async move {
            let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ (t + 1).wrapping_mul(0x1234_5678_9abc));
            for _ in 0..40 {
                let s = &stores[rng.below(4) as usize];
                let replace = rng.below(20) == 0;
                let mut d = Delta {
                    replace,
                    ..Delta::default()
                };
                for _ in 0..=rng.below(3) {
                    let name = names[rng.below(8) as usize];
                    let len = 10 + rng.below(400) as usize;
                    d.set.push((name.into(), json!("x".repeat(len))));
                }
                if !replace {
                    for _ in 0..rng.below(3) {
                        d.removed.push(names[rng.below(8) as usize].into());
                    }
                }
                match save_delta(s, &k, &d).await {
                    Ok(Updated::Updated) => updated.fetch_add(1, Ordering::Relaxed),
                    Err(StoreError::TooLarge { .. }) => refused.fetch_add(1, Ordering::Relaxed),
                    got => {
                        eprintln!("save answered {got:?}");
                        other.fetch_add(1, Ordering::Relaxed)
                    }
                };
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    stop.store(true, Ordering::Relaxed);
    let polls = watcher.await.unwrap();
    let (bytes, n, _) = held(&prefix, &k).await;
    eprintln!(
        "updated {} refused {} other {} polls {polls} final bytes {bytes} _n {n:?}",
        updated.load(Ordering::Relaxed),
        refused.load(Ordering::Relaxed),
        other.load(Ordering::Relaxed)
    );
    assert_eq!(other.load(Ordering::Relaxed), 0);
    assert_eq!(violations.load(Ordering::Relaxed), 0);
    assert!(updated.load(Ordering::Relaxed) > 100);
    // Every instance (cached or not) reads what a plain one reads.
    let truth = live(stores[0].load(&k).await);
    assert_eq!(size(&truth), bytes);
    for s in &stores {
        assert_eq!(live(s.load(&k).await), truth);
    }
}

/// Per-key merge and freshness: 64 tasks each own a key of one session and write it
/// (set, overwrite, remove, set) through a random instance; after each acknowledged write the
/// task loads through every instance (two cached) and must read exactly its last value; other
/// tasks keep loading the session all along, so fills race the saves. At the end every key
/// holds its last value on every instance.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn per_key_merge_and_no_stale_cached_reads() {
    let prefix = support::unique_prefix("attack-merge");
    let stores = fleet(&prefix, 64 << 10).await;
    let k = StoreKey::from_raw("sess:merge".to_owned());
    stores[1]
        .create(&k, &rec(&[("base", json!(0))]), TTL)
        .await
        .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let mut loaders = Vec::new();
    for i in 0..4 {
        let (stores, k, stop) = (stores.clone(), k.clone(), stop.clone());
        loaders.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                live(stores[i].load(&k).await);
                tokio::task::yield_now().await;
            }
        }));
    }
    let stale = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for t in 0..64u64 {
        let (stores, k, stale) = (stores.clone(), k.clone(), stale.clone());
        tasks.push(tokio::spawn(async move {
            let mut rng = Rng(0xD1B5_4A32_D192_ED03 ^ (t + 7).wrapping_mul(0x2545_F491_4F6C_DD1D));
            let name = format!("t{t}");
            let mut expect: Option<u64> = None;
            for step in 0..12u64 {
                let s = &stores[rng.below(4) as usize];
                let d = if step % 4 == 2 {
                    expect = None;
                    Delta {
                        replace: false,
                        set: Vec::new(),
                        removed: vec![name.clone(), name.clone()],
                    }
                } else {
                    let v = t * 1000 + step;
                    expect = Some(v);
                    // Sometimes the key is named twice (removed and set, set twice).
                    let mut d = set(&[(name.as_str(), json!(v))]);
                    if step % 3 == 0 {
                        d.removed.push(name.clone());
                        d.set.insert(0, (name.clone(), json!("old")));
                    }
                    d
                };
                assert_eq!(save_delta(s, &k, &d).await.unwrap(), Updated::Updated);
                for (i, s) in stores.iter().enumerate() {
                    let got = live(s.load(&k).await)
                        .get(&name)
                        .map(|v| v.as_u64().expect("a number"));
                    if got != expect {
                        eprintln!("task {t} step {step}: store {i} read {got:?}, wrote {expect:?}");
                        stale.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            (name, expect)
        }));
    }
    let mut last = Vec::new();
    for t in tasks {
        last.push(t.await.unwrap());
    }
    stop.store(true, Ordering::Relaxed);
    for l in loaders {
        l.await.unwrap();
    }
    assert_eq!(stale.load(Ordering::Relaxed), 0, "stale reads");
    for s in &stores {
        let data = live(s.load(&k).await);
        for (name, v) in &last {
            assert_eq!(data.get(name).and_then(Value::as_u64), *v, "{name}");
        }
    }
}

/// Instance A holds the session cached and saves a key through its tracking connection (its
/// copy takes the delta) while instance B saves another key. Once both answered, A must
/// read B's key: 300 rounds.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_cached_save_racing_another_instance_keeps_its_write() {
    let prefix = support::unique_prefix("attack-race");
    let a = Arc::new(store(&prefix, 64 << 10, true).await);
    let b = Arc::new(store(&prefix, 64 << 10, true).await);
    let c = Arc::new(store(&prefix, 64 << 10, false).await);
    let k = StoreKey::from_raw("sess:race".to_owned());
    a.create(&k, &rec(&[("x", json!(0)), ("y", json!(0))]), TTL)
        .await
        .unwrap();
    let mut bad = Vec::new();
    for i in 1..=300u64 {
        live(a.load(&k).await); // A's copy
        live(b.load(&k).await);
        let other = if i % 2 == 0 { b.clone() } else { c.clone() };
        let (ka, kb) = (k.clone(), k.clone());
        let (a2, o2) = (a.clone(), other.clone());
        let ja = tokio::spawn(async move {
            save_delta(&a2, &ka, &set(&[("x", json!(i))]))
                .await
                .unwrap()
        });
        let jb = tokio::spawn(async move {
            let d = Delta {
                replace: false,
                set: vec![("y".into(), json!(i))],
                removed: vec![format!("gone{i}")],
            };
            save_delta(&o2, &kb, &d).await.unwrap()
        });
        assert_eq!(ja.await.unwrap(), Updated::Updated);
        assert_eq!(jb.await.unwrap(), Updated::Updated);
        for (who, s) in [("a", &a), ("b", &b), ("c", &c)] {
            let d = live(s.load(&k).await);
            let got = (d["x"].as_u64(), d["y"].as_u64());
            if got != (Some(i), Some(i)) {
                bad.push(format!("round {i}: {who} read {got:?}"));
            }
        }
    }
    assert!(bad.is_empty(), "{bad:?}");
}

/// A refused save changes nothing: not the data, not the TTL (fast path: sets only; slow
/// path: removal and set; replace; with and without the cache); and the cache serves what
/// Redis holds afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_refused_save_changes_nothing() {
    const LIMIT: usize = 1000;
    let prefix = support::unique_prefix("attack-refused");
    for cache in [false, true] {
        let s = store(&prefix, LIMIT, cache).await;
        let k = StoreKey::from_raw(format!("sess:refused-{cache}"));
        let base = rec(&[("a", json!("x".repeat(400))), ("b", json!("y".repeat(400)))]);
        assert_eq!(
            s.create(&k, &base, Duration::from_secs(100)).await.unwrap(),
            Created::Inserted
        );
        live(s.load(&k).await);
        let attempts = [
            // Sets only (the fast path's bound passes, then the true count refuses).
            set(&[("c", json!("z".repeat(200)))]),
            // Overwrite that grows.
            set(&[("a", json!("x".repeat(700)))]),
            // A removal and a set that still pass the limit.
            Delta {
                replace: false,
                set: vec![("c".into(), json!("z".repeat(600)))],
                removed: vec!["a".into()],
            },
            // Repeated keys: the biggest value counts once, and still passes.
            Delta {
                replace: false,
                set: vec![("c".into(), json!(1)), ("c".into(), json!("z".repeat(300)))],
                removed: vec!["c".into(), "c".into()],
            },
        ];
        for (i, d) in attempts.iter().enumerate() {
            let before = (held(&prefix, &k).await, pttl(&prefix, &k).await);
            let got = save_delta(&s, &k, d).await;
            assert!(
                matches!(got, Err(StoreError::TooLarge { .. })),
                "attempt {i} (cache {cache}): {got:?}"
            );
            let after = (held(&prefix, &k).await, pttl(&prefix, &k).await);
            assert_eq!(before.0, after.0, "attempt {i}: the hash changed");
            assert!(
                after.1 > 90_000 && after.1 <= before.1,
                "attempt {i}: TTL {} -> {}",
                before.1,
                after.1
            );
            assert_eq!(live(s.load(&k).await), base.data);
        }
        // A replace over the limit.
        let mut big = Data::new();
        big.insert("q".into(), json!("q".repeat(LIMIT)));
        let d = Delta {
            replace: true,
            ..Delta::default()
        };
        let got = save(&s, &k, &d, &big, Duration::from_secs(5)).await;
        assert!(matches!(got, Err(StoreError::TooLarge { .. })), "{got:?}");
        assert!(pttl(&prefix, &k).await > 90_000);
        assert_eq!(live(s.load(&k).await), base.data);
    }
}

/// The bound `_n` grows with each overwrite of a key through the common save; it must never
/// block a save that fits on the true count, and a save that passes must be refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_inflated_bound_never_blocks_a_save_that_fits() {
    const LIMIT: usize = 1000;
    let prefix = support::unique_prefix("attack-inflate");
    for cache in [false, true] {
        let s = Arc::new(store(&prefix, LIMIT, cache).await);
        let k = StoreKey::from_raw(format!("sess:inflate-{cache}"));
        s.create(&k, &rec(&[("a", json!("x".repeat(400)))]), TTL)
            .await
            .unwrap();
        // 200 concurrent overwrites of `a` (same size) and of small keys.
        let mut tasks = Vec::new();
        for i in 0..200u64 {
            let (s, k) = (s.clone(), k.clone());
            tasks.push(tokio::spawn(async move {
                let d = if i % 2 == 0 {
                    set(&[("a", json!("x".repeat(400)))])
                } else {
                    set(&[(["m", "n", "o"][(i % 3) as usize], json!(i))])
                };
                save_delta(&s, &k, &d).await
            }));
        }
        for t in tasks {
            assert_eq!(t.await.unwrap().unwrap(), Updated::Updated);
        }
        let data = live(s.load(&k).await);
        let true_size = size(&data);
        let (bytes, n, _) = held(&prefix, &k).await;
        assert_eq!(bytes, true_size);
        let n: usize = n.unwrap().parse().unwrap();
        assert!(n >= bytes && n <= LIMIT, "_n {n}, bytes {bytes}");
        // Exactly up to the limit fits.
        let room = LIMIT - true_size;
        let pad = room - 2 - 1 - 2; // "d:" + "p" + the JSON quotes
        assert_eq!(
            save_delta(&s, &k, &set(&[("p", json!("p".repeat(pad)))]))
                .await
                .unwrap(),
            Updated::Updated
        );
        assert_eq!(held(&prefix, &k).await.0, LIMIT);
        // One byte more does not (on any path).
        let got = save_delta(&s, &k, &set(&[("r", json!(1))])).await;
        assert!(matches!(got, Err(StoreError::TooLarge { .. })), "{got:?}");
        let got = save_delta(
            &s,
            &k,
            &Delta {
                replace: false,
                set: vec![("p".into(), json!("p".repeat(pad + 1)))],
                removed: vec!["nothing".into()],
            },
        )
        .await;
        assert!(matches!(got, Err(StoreError::TooLarge { .. })), "{got:?}");
        assert_eq!(held(&prefix, &k).await.0, LIMIT);
    }
}

/// `_n` values another program may leave. Over-counts and non-numbers must neither block a
/// save that fits nor let one through that doesn't; the count stored afterwards must be at
/// least the true one. (Under-counts are trusted by design: reported, not asserted.)
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tampered_counts() {
    const LIMIT: usize = 1000;
    let prefix = support::unique_prefix("attack-n");
    let url = support::shared_url();
    let strict = [
        "garbage",
        "-5",
        "-1",
        "1.5",
        "1e400",
        "-1e400",
        "nan",
        "-nan",
        "inf",
        "99999999999999999999",
        "1e308",
        "",
        "18446744073709551616",
        "9007199254740993",
        "100000",
        "1001",
    ];
    let lax = ["0", "-0", "0x10", " 3 ", "1e2", "5.0"];
    let mut report = Vec::new();
    for cache in [false, true] {
        let s = store(&prefix, LIMIT, cache).await;
        for (i, n) in strict.iter().chain(lax.iter()).enumerate() {
            let is_strict = i < strict.len();
            let k = StoreKey::from_raw(format!("sess:n-{cache}-{i}"));
            let fk = full_key(&prefix, &k);
            s.create(&k, &rec(&[("a", json!("x".repeat(600)))]), TTL)
                .await
                .unwrap();
            live(s.load(&k).await);
            raw(&prefix, &["HSET", &fk, "_n", n]).await;
            // Fits (600+ + 200+): must pass.
            let fit = save_delta(&s, &k, &set(&[("b", json!("y".repeat(200)))])).await;
            // Does not fit on the true count: must be refused.
            let over = save_delta(&s, &k, &set(&[("c", json!("z".repeat(200)))])).await;
            let (bytes, stored, _) = held(&prefix, &k).await;
            let ok = matches!(fit, Ok(Updated::Updated))
                && matches!(over, Err(StoreError::TooLarge { .. }))
                && bytes <= LIMIT
                && stored
                    .as_deref()
                    .and_then(|s| s.parse::<usize>().ok())
                    .is_some_and(|s| s >= bytes);
            let line = format!(
                "cache {cache} _n {n:?}: fit {fit:?} over {over:?} held {bytes} stored _n {stored:?}"
            );
            if is_strict {
                assert!(ok, "{line}");
            } else if !ok {
                report.push(line);
            }
            // A removal with a garbage count: stays exact.
            raw(&prefix, &["HSET", &fk, "_n", n]).await;
            let d = Delta {
                replace: false,
                set: Vec::new(),
                removed: vec!["b".into()],
            };
            let got = save_delta(&s, &k, &d).await;
            let (bytes, stored, _) = held(&prefix, &k).await;
            if is_strict {
                assert_eq!(got.unwrap(), Updated::Updated, "{n:?}");
                assert!(bytes <= LIMIT);
                assert!(stored.unwrap().parse::<usize>().unwrap() >= bytes, "{n:?}");
            }
            // Loads never panic, whatever the count.
            let _ = s.load(&k).await.unwrap();
            let _ = url.len();
        }
    }
    eprintln!("under-counts (trusted by design):\n{}", report.join("\n"));
}

/// `_n` missing, `_v` missing, `_m` missing or garbage, a `d:` field that is not JSON, a
/// non-UTF-8 field name, fields of another program: saves don't pass the limit, loads don't
/// panic.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tampered_records_and_foreign_values() {
    const LIMIT: usize = 1000;
    let prefix = support::unique_prefix("attack-foreign");
    for cache in [false, true] {
        let s = store(&prefix, LIMIT, cache).await;
        let mk = |name: &str| StoreKey::from_raw(format!("sess:{name}-{cache}"));
        let base = rec(&[("a", json!("x".repeat(600)))]);

        // `_n` missing: counted from the fields.
        let k = mk("no-n");
        s.create(&k, &base, TTL).await.unwrap();
        raw(&prefix, &["HDEL", &full_key(&prefix, &k), "_n"]).await;
        let got = save_delta(&s, &k, &set(&[("c", json!("z".repeat(400)))])).await;
        assert!(matches!(got, Err(StoreError::TooLarge { .. })), "{got:?}");
        assert_eq!(
            save_delta(&s, &k, &set(&[("c", json!(1))])).await.unwrap(),
            Updated::Updated
        );
        let (bytes, n, _) = held(&prefix, &k).await;
        assert_eq!(n.unwrap().parse::<usize>().unwrap(), bytes);

        // `_v` missing: the save works or fails, the load says Corrupt; no panic.
        let k = mk("no-v");
        s.create(&k, &base, TTL).await.unwrap();
        raw(&prefix, &["HDEL", &full_key(&prefix, &k), "_v"]).await;
        let _ = save_delta(&s, &k, &set(&[("c", json!(1))])).await;
        assert!(matches!(s.load(&k).await, Err(StoreError::Corrupt(_))));
        assert!(held(&prefix, &k).await.0 <= LIMIT);

        // `_m` garbage and a `d:` field that is not JSON, and a field name that is not UTF-8.
        let k = mk("garbage-fields");
        s.create(&k, &base, TTL).await.unwrap();
        let fk = full_key(&prefix, &k);
        raw(&prefix, &["HSET", &fk, "_m", "a,b"]).await;
        assert!(s.load(&k).await.is_err());
        raw(&prefix, &["HSET", &fk, "_m", "0,0,0", "d:bad", "{not json"]).await;
        assert!(matches!(s.load(&k).await, Err(StoreError::Corrupt(_))));
        let _ = save_delta(&s, &k, &set(&[("c", json!(1))])).await;
        assert!(matches!(s.load(&k).await, Err(StoreError::Corrupt(_))));
        let d = Delta {
            replace: false,
            set: Vec::new(),
            removed: vec!["bad".into()],
        };
        assert_eq!(save_delta(&s, &k, &d).await.unwrap(), Updated::Updated);
        assert!(matches!(s.load(&k).await, Ok(Loaded::Live(_))));
        {
            let client = redis::Client::open(support::shared_url()).unwrap();
            let mut c = client.get_multiplexed_async_connection().await.unwrap();
            let _: () = redis::cmd("HSET")
                .arg(&fk)
                .arg(b"d:\xff\xfe".as_slice())
                .arg("1")
                .query_async(&mut c)
                .await
                .unwrap();
        }
        assert!(matches!(s.load(&k).await, Err(StoreError::Corrupt(_))));
        // Fields of another program, not `d:`: not data, not counted, kept.
        raw(&prefix, &["HSET", &fk, "other", &"o".repeat(5000)]).await;
        assert_eq!(
            save_delta(&s, &k, &set(&[("c", json!(2))])).await.unwrap(),
            Updated::Updated
        );
        assert!(held(&prefix, &k).await.0 <= LIMIT);

        // A foreign string, list and set under the key: errors, never a panic; untouched.
        for (kind, setup) in [
            ("string", vec!["SET", "", "foreign"]),
            ("list", vec!["RPUSH", "", "foreign"]),
            ("zset", vec!["ZADD", "", "1", "foreign"]),
        ] {
            let k = mk(&format!("foreign-{kind}"));
            let fk = full_key(&prefix, &k);
            let mut args = setup.clone();
            args[1] = &fk;
            raw(&prefix, &args).await;
            let got = save_delta(&s, &k, &set(&[("c", json!(1))])).await;
            assert!(got.is_err(), "{kind}: save answered {got:?}");
            let got = s.load(&k).await;
            assert!(got.is_err(), "{kind}: load answered {got:?}");
            let d = Delta {
                replace: false,
                set: vec![("c".into(), json!(1))],
                removed: vec!["a".into()],
            };
            let got = save_delta(&s, &k, &d).await;
            assert!(got.is_err(), "{kind}: save answered {got:?}");
            match raw(&prefix, &["TYPE", &fk]).await {
                redis::Value::SimpleString(t) => assert_eq!(t, kind),
                other => panic!("{other:?}"),
            }
        }
    }
}

/// A supersede marker that another program gave a `_n`: the old id stays superseded, its data
/// out of reach. (The save itself may land in the marker and answer `Updated`: a program that
/// can write to Redis is trusted, as the crate docs say; what it wrote is printed.)
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_marker_with_a_count_is_not_written() {
    let prefix = support::unique_prefix("attack-marker");
    let s = store(&prefix, 1000, false).await;
    let k = StoreKey::from_raw("sess:marker".to_owned());
    let next = StoreKey::from_raw("sess:marker-next".to_owned());
    s.create(&k, &rec(&[("a", json!(1))]), TTL).await.unwrap();
    s.supersede(&k, &next, TTL).await.unwrap();
    let got = save_delta(&s, &k, &set(&[("c", json!(1))])).await;
    assert_eq!(got.unwrap(), Updated::Superseded);
    raw(&prefix, &["HSET", &full_key(&prefix, &k), "_n", "5"]).await;
    let got = save_delta(&s, &k, &set(&[("c", json!(1))])).await;
    let (bytes, _, fields) = held(&prefix, &k).await;
    eprintln!("marker with _n: save answered {got:?}; {bytes} data bytes, {fields} fields");
    assert!(matches!(s.load(&k).await, Ok(Loaded::Superseded)));
}

/// Saves `d` through `s` onto `model`: both stores then read the model back, and Redis holds
/// its bytes; those bytes and `_n`.
async fn save_and_check(
    s: &RedisStore,
    other: &RedisStore,
    prefix: &str,
    k: &StoreKey,
    model: &mut Data,
    d: &Delta,
) -> (usize, usize) {
    let mut r = Record {
        data: model.clone(),
        meta: meta(),
    };
    r.apply(d, model, meta());
    assert_eq!(save(s, k, d, &r.data, TTL).await.unwrap(), Updated::Updated);
    *model = r.data;
    assert_eq!(live(s.load(k).await), *model);
    assert_eq!(live(other.load(k).await), *model);
    let (bytes, n, _) = held(prefix, k).await;
    assert_eq!(bytes, size(model));
    (bytes, n.unwrap().parse().unwrap())
}

/// Thousands of keys set and removed in one save, keys with odd bytes, a value of nearly the
/// whole limit, through a plain and a cached store: each reads back as saved on both, and
/// the bound stays true.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn huge_and_odd_inputs() {
    const LIMIT: usize = 1 << 20;
    let prefix = support::unique_prefix("attack-huge");
    let plain = store(&prefix, LIMIT, false).await;
    let cached = store(&prefix, LIMIT, true).await;
    for (i, s) in [&plain, &cached].into_iter().enumerate() {
        let other = if i == 0 { &cached } else { &plain };
        let k = StoreKey::from_raw(format!("sess:huge-{i}"));
        s.create(&k, &rec(&[("seed", json!(0))]), TTL)
            .await
            .unwrap();
        live(s.load(&k).await);
        let mut model = live(s.load(&k).await);
        // 5000 keys in one save, with 100 of them named twice.
        let mut d = Delta::default();
        for j in 0..5000 {
            d.set.push((format!("k{j}"), json!(j)));
        }
        for j in 0..100 {
            d.set.push((format!("k{j}"), json!(format!("again{j}"))));
        }
        let (bytes, n) = save_and_check(s, other, &prefix, &k, &mut model, &d).await;
        assert!(n >= bytes);
        // 4000 removed (each twice) and 3 odd keys set.
        let odd = [
            "", "\0", "d:", "_n", "_v", "_sup", "_m", "ключ", "a\r\nb", "\u{FFFF}", "🦀",
        ];
        let long = "L".repeat(10_000);
        let mut d = Delta::default();
        for j in 0..4000 {
            d.removed.push(format!("k{j}"));
            d.removed.push(format!("k{j}"));
        }
        for o in odd.iter().copied().chain([long.as_str()]) {
            d.set.push((o.to_owned(), json!(o)));
        }
        let (bytes, n) = save_and_check(s, other, &prefix, &k, &mut model, &d).await;
        assert_eq!(n, bytes);
        // One value of nearly the whole limit: fits exactly, one byte more doesn't.
        let rest = LIMIT - size(&model);
        let pad = rest - 2 - 3 - 2;
        let d = set(&[("big", json!("b".repeat(pad)))]);
        assert_eq!(
            save_delta(s, &k, &d).await.unwrap(),
            Updated::Updated,
            "exactly the limit"
        );
        assert_eq!(held(&prefix, &k).await.0, LIMIT);
        let d = set(&[("big", json!("b".repeat(pad + 1)))]);
        assert!(matches!(
            save_delta(s, &k, &d).await,
            Err(StoreError::TooLarge { .. })
        ));
        // A replace with 3000 keys.
        let mut full = Data::new();
        for j in 0..3000 {
            full.insert(format!("r{j}"), json!([j, "x"]));
        }
        let d = Delta {
            replace: true,
            ..Delta::default()
        };
        assert_eq!(save(s, &k, &d, &full, TTL).await.unwrap(), Updated::Updated);
        assert_eq!(live(s.load(&k).await), full);
        assert_eq!(live(other.load(&k).await), full);
        let (bytes, n, _) = held(&prefix, &k).await;
        assert_eq!(n.unwrap().parse::<usize>().unwrap(), bytes);
    }
}

/// A value nested deeper than serde_json reads back (128): the save is refused, so a cached
/// instance (which keeps its saved copy) and a plain one agree on the load.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_value_nested_too_deep_is_refused_and_instances_agree() {
    let prefix = support::unique_prefix("attack-deep");
    let plain = store(&prefix, 64 << 10, false).await;
    let cached = store(&prefix, 64 << 10, true).await;
    let k = StoreKey::from_raw("sess:deep".to_owned());
    cached
        .create(&k, &rec(&[("a", json!(1))]), TTL)
        .await
        .unwrap();
    live(cached.load(&k).await);
    let mut v = json!(1);
    for _ in 0..200 {
        v = json!([v]);
    }
    // Deeper than serde_json reads back: refused, so neither instance holds it.
    let saved = save_delta(&cached, &k, &set(&[("deep", v)])).await;
    assert!(matches!(saved, Err(StoreError::Rejected(_))), "{saved:?}");
    for s in [&cached, &plain] {
        match s.load(&k).await {
            Ok(Loaded::Live(r)) => assert!(!r.data.contains_key("deep")),
            other => panic!("load answered {other:?}"),
        }
    }
}

/// Saves on a cached instance cancelled at random points (the request dropped: a timeout, a
/// client gone), 300 rounds: the next load through that instance reads what Redis holds.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_cancelled_cached_save_leaves_no_stale_copy() {
    let prefix = support::unique_prefix("attack-cancel");
    let a = store(&prefix, 64 << 10, true).await;
    let plain = store(&prefix, 64 << 10, false).await;
    let k = StoreKey::from_raw("sess:cancel".to_owned());
    a.create(&k, &rec(&[("x", json!(0))]), TTL).await.unwrap();
    let mut rng = Rng(0xABCD_EF01_2345_6789);
    let (mut cancelled, mut bad) = (0, Vec::new());
    for i in 1..=300u64 {
        live(a.load(&k).await);
        let d = Delta {
            replace: false,
            set: vec![("x".into(), json!(i)), (format!("k{}", i % 7), json!(i))],
            removed: vec![format!("k{}", (i + 3) % 7)],
        };
        let wait = Duration::from_micros(rng.below(120));
        if tokio::time::timeout(wait, save_delta(&a, &k, &d))
            .await
            .is_err()
        {
            cancelled += 1;
        }
        let got = live(a.load(&k).await);
        let truth = live(plain.load(&k).await);
        if got != truth {
            // The cancelled script may run after the cached load's read; a stale copy would
            // stay: read again.
            let again = live(a.load(&k).await);
            let truth = live(plain.load(&k).await);
            if again != truth {
                bad.push(format!("round {i}: cached {again:?} vs redis {truth:?}"));
            }
        }
    }
    eprintln!(
        "cancelled {cancelled} of 300; stats {:?}",
        a.client_cache_stats()
    );
    assert!(bad.is_empty(), "{bad:#?}");
}

/// The tracking save is exercised: a save then a load on one cached instance is a hit, and
/// the copy equals Redis's.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_cached_save_moves_the_copy_on() {
    let prefix = support::unique_prefix("attack-hit");
    let a = store(&prefix, 64 << 10, true).await;
    let plain = store(&prefix, 64 << 10, false).await;
    let k = StoreKey::from_raw("sess:hit".to_owned());
    a.create(&k, &rec(&[("x", json!(0)), ("y", json!(0))]), TTL)
        .await
        .unwrap();
    live(a.load(&k).await);
    let hits = a.client_cache_stats().unwrap().hits;
    for i in 1..=200u64 {
        let d = Delta {
            replace: i % 50 == 0,
            set: vec![("x".into(), json!(i)), ("x".into(), json!(i * 2))],
            removed: vec!["y".into(), "y".into()],
        };
        let mut full = Data::new();
        full.insert("x".into(), json!(i * 2));
        assert_eq!(
            save(&a, &k, &d, &full, TTL).await.unwrap(),
            Updated::Updated
        );
        assert_eq!(
            live(a.load(&k).await),
            live(plain.load(&k).await),
            "round {i}"
        );
    }
    let hits = a.client_cache_stats().unwrap().hits - hits;
    eprintln!("hits after saves: {hits} of 200");
    assert!(
        hits > 150,
        "the saves did not keep the cached copy ({hits} hits)"
    );
}
