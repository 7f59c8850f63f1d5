//! The client cache's memory, counted by a global allocator: loads cancelled half-way (a
//! request timeout, a client gone) leave nothing behind, and the byte bound holds for what the
//! decoded records really take, not only for their bytes on the wire.
#![cfg(feature = "redis-tests")]
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]
// A counting global allocator needs `unsafe`; it only forwards to the system allocator.
#![allow(unsafe_code)]

mod support;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use futures_util::FutureExt;
use serde_json::json;
use session_core::Data;
use session_core::store::{Record, Store};
use support::cache::*;

struct Counting;
/// Bytes allocated and not yet freed.
static LIVE: AtomicI64 = AtomicI64::new(0);

fn delta(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

// SAFETY: every call forwards to the system allocator unchanged.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        LIVE.fetch_add(delta(l.size()), Ordering::Relaxed);
        // SAFETY: the caller's contract is the system allocator's.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(delta(l.size()), Ordering::Relaxed);
        // SAFETY: `p` came from `alloc` above, which is the system allocator's.
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        LIVE.fetch_add(delta(n) - delta(l.size()), Ordering::Relaxed);
        // SAFETY: as `dealloc` and `alloc`.
        unsafe { System.realloc(p, l, n) }
    }
}

#[global_allocator]
static COUNTING: Counting = Counting;

/// One test, so nothing else allocates while it counts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_is_bounded_and_nothing_leaks() {
    let url = support::shared_url();
    let prefix = support::unique_prefix("cache_mem");
    let store = cached(&url, &prefix).await;

    // 20,000 loads of distinct keys, each dropped after its first poll (the fill is sent).
    let _ = store.load(&key("settle")).await;
    let before = LIVE.load(Ordering::Relaxed);
    for i in 0..20_000 {
        let _ = store.load(&key(&format!("{i:0>40}"))).now_or_never();
    }
    // Every reply arrives and is thrown away.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let _ = store.load(&key("settle")).await;
    let grown = LIVE.load(Ordering::Relaxed) - before;
    assert!(
        grown < 256 * 1024,
        "{grown} bytes kept by 20,000 cancelled loads"
    );

    // Records of 30,000 zeros: 60 KB on the wire, about two megabytes decoded.
    let bound = 1 << 20;
    let bounded = cached_within(&url, &prefix, bound).await;
    let mut data = Data::new();
    data.insert("a".into(), json!(vec![0u8; 30_000]));
    let big = Record { data, meta: meta() };
    let keys: Vec<_> = (0..40).map(|i| key(&format!("big{i}"))).collect();
    for k in &keys {
        bounded
            .create(k, &big, Duration::from_secs(60))
            .await
            .unwrap();
    }
    drop(big);
    let before = LIVE.load(Ordering::Relaxed);
    for k in &keys {
        drop(bounded.load(k).await.unwrap());
    }
    let grown = LIVE.load(Ordering::Relaxed) - before;
    let stats = bounded.client_cache_stats().unwrap();
    assert!(stats.bytes <= bound, "{stats:?}");
    assert!(
        grown < 2 * i64::try_from(bound).unwrap(),
        "the cache of {bound} bytes holds {grown} ({stats:?})"
    );
    // A record that can't fit at all is never kept, and more small ones fit.
    let small = record(1);
    for i in 0..200 {
        let k = key(&format!("small{i}"));
        bounded
            .create(&k, &small, Duration::from_secs(60))
            .await
            .unwrap();
        drop(bounded.load(&k).await.unwrap());
    }
    assert!(bounded.client_cache_stats().unwrap().bytes <= bound);
}
