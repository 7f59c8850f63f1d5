//! A store whose every call waits a pseudo-random 0 to 2 ms first, so that concurrent work on
//! one session (a request and a drain, two requests) interleaves differently from round to
//! round instead of always in the order the fastest path gives. It keeps no owner index.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use session_core::store::{
    Change, Created, Destroyed, KeyScan, Loaded, Meta, Record, Store, StoreError, StoreKey,
    Supersede, Updated,
};

/// [`Store`] calls delayed by 0 to 2 ms each (scans included).
#[derive(Clone)]
pub struct Jitter<S> {
    /// The store behind it.
    pub inner: S,
    state: Arc<AtomicU64>,
}

impl<S: Store> Jitter<S> {
    /// A jittering store on `inner`; `seed` makes a run repeatable.
    pub fn new(inner: S, seed: u64) -> Self {
        Self {
            inner,
            state: Arc::new(AtomicU64::new(seed | 1)),
        }
    }

    async fn wait(&self) {
        // xorshift64: a different delay per call, shared by clones.
        let mut x = self.state.load(Ordering::Relaxed);
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.state.store(x, Ordering::Relaxed);
        let micros = x % 2_000;
        if micros >= 100 {
            tokio::time::sleep(Duration::from_micros(micros)).await;
        } else {
            tokio::task::yield_now().await;
        }
    }
}

impl<S: Store> Store for Jitter<S> {
    fn system(&self) -> &'static str {
        self.inner.system()
    }

    async fn create(&self, k: &StoreKey, r: &Record, ttl: Duration) -> Result<Created, StoreError> {
        self.wait().await;
        self.inner.create(k, r, ttl).await
    }
    async fn load(&self, k: &StoreKey) -> Result<Loaded, StoreError> {
        self.wait().await;
        self.inner.load(k).await
    }
    async fn save(
        &self,
        k: &StoreKey,
        c: Change<'_>,
        ttl: Duration,
    ) -> Result<Updated, StoreError> {
        self.wait().await;
        self.inner.save(k, c, ttl).await
    }
    async fn destroy(&self, k: &StoreKey) -> Result<Destroyed, StoreError> {
        self.wait().await;
        self.inner.destroy(k).await
    }
    async fn supersede(
        &self,
        k: &StoreKey,
        next: &StoreKey,
        ttl: Duration,
    ) -> Result<Supersede, StoreError> {
        self.wait().await;
        self.inner.supersede(k, next, ttl).await
    }
    async fn touch(&self, k: &StoreKey, m: Meta, ttl: Duration) -> Result<Updated, StoreError> {
        self.wait().await;
        self.inner.touch(k, m, ttl).await
    }
    fn merges_deltas(&self) -> bool {
        self.inner.merges_deltas()
    }
    async fn scan(&self, cursor: Option<&str>, count: usize) -> Result<KeyScan, StoreError> {
        self.wait().await;
        self.inner.scan(cursor, count).await
    }
}
