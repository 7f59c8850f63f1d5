//! Throughput of load+save on 2 threads at 1k, 100k and 1M live sessions, against a plain
//! `Mutex<HashMap>` store, memory per session, measured with a counting allocator, and the time
//! of one save that changes every key of a session of thousands of keys.
//!
//! Run: `cargo bench -p session-store-memory --bench memory_store` (`BENCH_SECS=N` per point,
//! default 3).
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]
// A counting global allocator needs `unsafe`; it only forwards to the system allocator.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::HashMap;
use std::future::Future;
use std::pin::pin;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicIsize, AtomicU64, Ordering};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use serde_json::json;
use session_core::driver::KeyDerivation;
use session_core::driver::SessionId;
use session_core::store::testing::set;
use session_core::store::{
    Change, Created, Destroyed, Loaded, Meta, Record, Store, StoreError, StoreKey, Supersede,
    Updated,
};
use session_core::{Data, MaxAge};
use session_store_memory::MemoryStore;

struct Counting;
static LIVE: AtomicIsize = AtomicIsize::new(0);
/// Counting only while memory is measured: a shared counter on every allocation would make the
/// two throughput threads fight over one cache line and skew the throughput figures.
static COUNTING: AtomicBool = AtomicBool::new(false);

fn count(delta: isize) {
    if COUNTING.load(Ordering::Relaxed) {
        LIVE.fetch_add(delta, Ordering::Relaxed);
    }
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        count(l.size() as isize);
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        count(-(l.size() as isize));
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        count(n as isize - l.size() as isize);
        unsafe { System.realloc(p, l, n) }
    }
}

#[global_allocator]
static A: Counting = Counting;

/// The store futures never wait; poll once.
fn run<F: Future>(f: F) -> F::Output {
    let mut f = pin!(f);
    match f.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(v) => v,
        Poll::Pending => panic!("store future pending"),
    }
}

/// The baseline: one mutex around a map of parsed records.
#[derive(Default)]
struct MutexStore(Mutex<HashMap<String, (Record, u64)>>);

impl Store for MutexStore {
    async fn create(
        &self,
        k: &StoreKey,
        r: &Record,
        _ttl: Duration,
    ) -> Result<Created, StoreError> {
        let mut m = self.0.lock().unwrap();
        if m.contains_key(k.as_str()) {
            return Ok(Created::Collision);
        }
        m.insert(k.as_str().to_owned(), (r.clone(), 0));
        Ok(Created::Inserted)
    }
    async fn load(&self, k: &StoreKey) -> Result<Loaded, StoreError> {
        Ok(self
            .0
            .lock()
            .unwrap()
            .get(k.as_str())
            .map_or(Loaded::Missing, |(r, _)| Loaded::Live(r.clone())))
    }
    async fn save(
        &self,
        k: &StoreKey,
        c: Change<'_>,
        _ttl: Duration,
    ) -> Result<Updated, StoreError> {
        let mut m = self.0.lock().unwrap();
        match m.get_mut(k.as_str()) {
            Some((r, _)) => {
                r.apply(c.delta, c.data, c.meta);
                Ok(Updated::Updated)
            }
            None => Ok(Updated::NotFound),
        }
    }
    async fn destroy(&self, k: &StoreKey) -> Result<Destroyed, StoreError> {
        Ok(match self.0.lock().unwrap().remove(k.as_str()) {
            Some(_) => Destroyed::Removed,
            None => Destroyed::Missing,
        })
    }
    async fn supersede(
        &self,
        k: &StoreKey,
        _next: &StoreKey,
        _ttl: Duration,
    ) -> Result<Supersede, StoreError> {
        // The baseline is only measured on load and save.
        Ok(match self.0.lock().unwrap().remove(k.as_str()) {
            Some(_) => Supersede::Replaced,
            None => Supersede::Missing,
        })
    }
    async fn touch(&self, _k: &StoreKey, _m: Meta, _t: Duration) -> Result<Updated, StoreError> {
        Ok(Updated::Updated)
    }
}

fn key(i: u64) -> StoreKey {
    // The same shape as real keys: prefix + base64url SHA-256 of a 43-char id.
    KeyDerivation::default().derive(&SessionId::new_unchecked(format!("{i:043}")))
}

fn payload(i: u64) -> Record {
    // ~100 bytes of JSON.
    let data = json!({"user": format!("user-{i:08}"), "views": i % 1000, "cart": ["book-1", "lamp-2"], "theme": "dark", "lang": "en-GB"});
    Record {
        data: data.as_object().cloned().unwrap(),
        meta: Meta {
            expire: Some(1_900_000_000_000),
            max_age: MaxAge::Ms(86_400_000),
            created: Some(1_700_000_000_000),
        },
    }
}

fn fill<S: Store>(s: &S, n: u64) -> Vec<StoreKey> {
    (0..n)
        .map(|i| {
            let k = key(i);
            assert_eq!(
                run(s.create(&k, &payload(i), Duration::from_secs(3600))).unwrap(),
                Created::Inserted
            );
            k
        })
        .collect()
}

/// load + save (one changed key) per op, on `threads` threads for `secs`.
fn throughput<S: Store>(s: &S, keys: &[StoreKey], threads: usize, secs: f64) -> f64 {
    let stop = AtomicBool::new(false);
    let ops = AtomicU64::new(0);
    std::thread::scope(|scope| {
        for t in 0..threads {
            let (stop, ops) = (&stop, &ops);
            scope.spawn(move || {
                let mut x: u64 = 0x9E37_79B9_7F4A_7C15 ^ (t as u64 + 1);
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    for _ in 0..256 {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        let k = &keys[(x % keys.len() as u64) as usize];
                        let mut r = run(s.load(k)).unwrap().into_record().unwrap();
                        let views = r.data["views"].as_u64().unwrap() + 1;
                        r.data.insert("views".into(), json!(views));
                        let delta = set(&[("views", json!(views))]);
                        let c = Change {
                            delta: &delta,
                            data: &r.data,
                            meta: r.meta,
                        };
                        assert_eq!(
                            run(s.save(k, c, Duration::from_secs(3600))).unwrap(),
                            Updated::Updated
                        );
                        n += 1;
                    }
                }
                ops.fetch_add(n, Ordering::Relaxed);
            });
        }
        std::thread::sleep(Duration::from_secs_f64(secs));
        stop.store(true, Ordering::Relaxed);
    });
    ops.load(Ordering::Relaxed) as f64 / secs
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmRSS:")).map(|l| {
                l.split_whitespace()
                    .nth(1)
                    .unwrap_or("0")
                    .parse()
                    .unwrap_or(0)
            })
        })
        .unwrap_or(0)
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test` runs benches with no such flag: stay quick then.
    let benching = std::env::args().any(|a| a == "--bench");
    let secs: f64 = std::env::var("BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3.0);
    let custom: Option<Vec<u64>> = std::env::var("BENCH_SIZES")
        .ok()
        .map(|v| v.split(',').filter_map(|n| n.parse().ok()).collect());
    let default: &[u64] = if benching {
        &[1_000, 100_000, 1_000_000]
    } else {
        &[1_000]
    };
    let sizes: &[u64] = custom.as_deref().unwrap_or(default);
    let secs = if benching { secs } else { 0.05 };

    println!("load+save per second, 2 threads, {secs} s per point");
    println!(
        "{:>10} {:>14} {:>14} {:>8}",
        "sessions", "memory store", "Mutex<HashMap>", "ratio"
    );
    let mut first = None;
    for &n in sizes {
        let ours = MemoryStore::new();
        let keys = fill(&ours, n);
        let a = throughput(&ours, &keys, 2, secs);
        drop(ours);
        let base = MutexStore::default();
        fill(&base, n);
        let b = throughput(&base, &keys, 2, secs);
        drop(base);
        println!("{n:>10} {a:>14.0} {b:>14.0} {:>8.2}", a / b);
        first.get_or_insert(a);
        if n == *sizes.last().unwrap() && sizes.len() > 1 {
            println!(
                "memory store at {n} vs {}: {:.2}",
                sizes[0],
                a / first.unwrap()
            );
        }
    }

    let n: u64 = if benching { 1_000_000 } else { 10_000 };
    let keys: Vec<StoreKey> = (0..n).map(key).collect();
    let records: Vec<Record> = (0..n).map(payload).collect();
    let json_bytes: usize = records
        .iter()
        .map(|r| serde_json::to_vec(&r.data).unwrap().len())
        .sum();
    println!(
        "\nmemory for {n} sessions of {} bytes of JSON on average",
        json_bytes as u64 / n
    );
    for (name, make) in [("memory store", 0), ("Mutex<HashMap>", 1)] {
        COUNTING.store(true, Ordering::SeqCst);
        let before = LIVE.load(Ordering::Relaxed);
        let rss_before = rss_kib();
        let store_a;
        let store_b;
        if make == 0 {
            store_a = Some(MemoryStore::new());
            store_b = None;
        } else {
            store_a = None;
            store_b = Some(MutexStore::default());
        }
        for (k, r) in keys.iter().zip(&records) {
            match (&store_a, &store_b) {
                (Some(s), _) => {
                    run(s.create(k, r, Duration::from_secs(3600))).unwrap();
                }
                (_, Some(s)) => {
                    run(s.create(k, r, Duration::from_secs(3600))).unwrap();
                }
                _ => unreachable!(),
            }
        }
        let bytes = LIVE.load(Ordering::Relaxed) - before;
        COUNTING.store(false, Ordering::SeqCst);
        let rss = rss_kib().saturating_sub(rss_before);
        println!(
            "{name:>15}: {:>6} bytes/session allocated, {:>7.1} MB for {n}; RSS grew {:.1} MB",
            bytes as u64 / n,
            bytes as f64 / 1e6,
            rss as f64 / 1024.0
        );
        drop(store_a);
        drop(store_b);
    }
    let _ = Data::new();

    // One save that changes every key of an n-key session: the merge finds each stored key in
    // the delta (a scan for small deltas, a hash index for large ones).
    println!("\none save changing every key of an n-key session (time per save)");
    let wide: &[usize] = if benching {
        &[16, 1_000, 4_000, 8_000]
    } else {
        &[16, 200]
    };
    for &n in wide {
        let store = MemoryStore::builder().max_record_bytes(64 << 20).build();
        let k = key(0);
        let mut data = Data::new();
        for i in 0..n {
            data.insert(format!("key{i}"), json!(0));
        }
        let rec = Record {
            data,
            meta: payload(0).meta,
        };
        run(store.create(&k, &rec, Duration::from_secs(3600))).unwrap();
        let pairs: Vec<(String, serde_json::Value)> =
            (0..n).map(|i| (format!("key{i}"), json!(1))).collect();
        let refs: Vec<(&str, serde_json::Value)> =
            pairs.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
        let delta = set(&refs);
        let change = Change {
            delta: &delta,
            data: &rec.data,
            meta: rec.meta,
        };
        let reps = if benching { (200_000 / n).max(5) } else { 2 };
        let start = std::time::Instant::now();
        for _ in 0..reps {
            run(store.save(&k, change, Duration::from_secs(3600))).unwrap();
        }
        let per = start.elapsed() / reps as u32;
        println!("{n:>10} keys: {per:>12.2?} per save");
    }
}
