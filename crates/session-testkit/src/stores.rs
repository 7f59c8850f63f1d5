//! Store wrappers: [`Probe`] (a memory store that counts calls and can be switched to fail or
//! hang, its owner index delayed per owner or failed), [`Recorder`] (any store, remembering
//! every key a record was created under, with one-shot faults and a [`Pause`] between a
//! regenerate's create and its supersede), and [`Held`] (any store with an owner index, one
//! call of a kind held at a [`Point`] until the test releases it).

use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use session_core::Handle;

use session_core::store::{Admit, Admitted, IndexEntry, Indexed, OwnerIndex};
use session_core::store::{
    BoxFuture, Change, Created, Destroyed, KeyScan, Loaded, Meta, Record, Store, StoreError,
    StoreKey, Supersede, Updated,
};
use session_core::{Config, ConfigBuilder, ManualClock};
use session_store_memory::MemoryStore;
use tokio::sync::Notify;

use crate::capture::KEY1;

/// Where the manual clocks of the tests start (ms since the epoch).
pub const T0: u64 = 1_700_000_000_000;

/// A [`Probe`] on a memory store and a config ([`KEY1`], then `f`) sharing one manual clock.
pub fn clocked(f: impl FnOnce(ConfigBuilder) -> ConfigBuilder) -> (Config, Probe, ManualClock) {
    let clock = ManualClock::new(T0);
    let store = MemoryStore::builder()
        .clock(Arc::new(clock.clone()))
        .build();
    let cfg = f(Config::builder()
        .key(KEY1.to_vec())
        .clock(Arc::new(clock.clone())))
    .build()
    .unwrap();
    (cfg, Probe::new(store), clock)
}

/// What a [`Probe`] does with a call: go on.
pub const OK: u8 = 0;
/// Fail it (a refused connection).
pub const FAIL: u8 = 1;
/// Hang for an hour.
pub const HANG: u8 = 2;

/// A memory store that counts calls and can be switched to fail or hang.
#[derive(Clone, Default)]
pub struct Probe {
    /// The store behind it.
    pub store: MemoryStore,
    /// [`OK`], [`FAIL`] or [`HANG`].
    pub mode: Arc<AtomicU8>,
    /// Loads made.
    pub loads: Arc<AtomicUsize>,
    /// Writes made (create, save, destroy, supersede, touch).
    pub writes: Arc<AtomicUsize>,
    /// Owner-index calls (index, unindex, entries).
    pub index_calls: Arc<AtomicUsize>,
    /// Index writes of this owner wait this many ms.
    pub delay_owner: Arc<Mutex<Option<(String, u64)>>>,
    /// Index writes fail.
    pub fail_index: Arc<AtomicBool>,
    /// Index removals fail.
    pub fail_unindex: Arc<AtomicBool>,
}

impl Probe {
    /// A probe on `store`, every call going through.
    pub fn new(store: MemoryStore) -> Self {
        Self {
            store,
            ..Self::default()
        }
    }
    /// From now on, calls do `m` ([`OK`], [`FAIL`], [`HANG`]).
    pub fn set_mode(&self, m: u8) {
        self.mode.store(m, Ordering::SeqCst);
    }
    /// A call goes through the mode (fails, or first hangs an hour) and is counted in `counter`.
    async fn pass(&self, counter: &AtomicUsize) -> Result<(), StoreError> {
        match self.mode.load(Ordering::SeqCst) {
            FAIL => return Err(StoreError::Unavailable("connection refused".into())),
            HANG => tokio::time::sleep(Duration::from_secs(3600)).await,
            _ => {}
        }
        counter.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

impl OwnerIndex for Probe {
    fn index<'a>(
        &'a self,
        owner: &'a str,
        entry: &'a IndexEntry,
        until: u64,
        now: u64,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            self.pass(&self.index_calls).await?;
            let delay = self.delay_owner.lock().unwrap().clone();
            if let Some((o, ms)) = delay
                && o == owner
            {
                tokio::time::sleep(Duration::from_millis(ms)).await;
            }
            if self.fail_index.load(Ordering::SeqCst) {
                return Err(StoreError::Unavailable("down".into()));
            }
            OwnerIndex::index(&self.store, owner, entry, until, now).await
        })
    }
    fn unindex<'a>(
        &'a self,
        owner: &'a str,
        handles: &'a [Handle],
        now: u64,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            self.pass(&self.index_calls).await?;
            if self.fail_unindex.load(Ordering::SeqCst) {
                return Err(StoreError::Unavailable("down".into()));
            }
            OwnerIndex::unindex(&self.store, owner, handles, now).await
        })
    }
    fn entries<'a>(
        &'a self,
        owner: &'a str,
        now: u64,
    ) -> BoxFuture<'a, Result<Vec<Indexed>, StoreError>> {
        Box::pin(async move {
            self.pass(&self.index_calls).await?;
            OwnerIndex::entries(&self.store, owner, now).await
        })
    }
    fn admits(&self) -> bool {
        OwnerIndex::admits(&self.store)
    }
    /// An admission is an index write: it meets the same delay and failure as `index`.
    fn admit<'a>(
        &'a self,
        owner: &'a str,
        entry: &'a IndexEntry,
        until: u64,
        now: u64,
        how: Admit<'a>,
    ) -> BoxFuture<'a, Result<Admitted, StoreError>> {
        Box::pin(async move {
            self.pass(&self.index_calls).await?;
            let delay = self.delay_owner.lock().unwrap().clone();
            if let Some((o, ms)) = delay
                && o == owner
            {
                tokio::time::sleep(Duration::from_millis(ms)).await;
            }
            if self.fail_index.load(Ordering::SeqCst) {
                return Err(StoreError::Unavailable("down".into()));
            }
            OwnerIndex::admit(&self.store, owner, entry, until, now, how).await
        })
    }
}

impl Store for Probe {
    fn owner_index(&self) -> Option<&dyn OwnerIndex> {
        Some(self)
    }
    async fn create(&self, k: &StoreKey, r: &Record, ttl: Duration) -> Result<Created, StoreError> {
        self.pass(&self.writes).await?;
        self.store.create(k, r, ttl).await
    }
    async fn load(&self, k: &StoreKey) -> Result<Loaded, StoreError> {
        self.pass(&self.loads).await?;
        self.store.load(k).await
    }
    async fn save(
        &self,
        k: &StoreKey,
        c: Change<'_>,
        ttl: Duration,
    ) -> Result<Updated, StoreError> {
        self.pass(&self.writes).await?;
        self.store.save(k, c, ttl).await
    }
    async fn destroy(&self, k: &StoreKey) -> Result<Destroyed, StoreError> {
        self.pass(&self.writes).await?;
        self.store.destroy(k).await
    }
    async fn supersede(
        &self,
        k: &StoreKey,
        next: &StoreKey,
        ttl: Duration,
    ) -> Result<Supersede, StoreError> {
        self.pass(&self.writes).await?;
        self.store.supersede(k, next, ttl).await
    }
    async fn touch(&self, k: &StoreKey, m: Meta, ttl: Duration) -> Result<Updated, StoreError> {
        self.pass(&self.writes).await?;
        self.store.touch(k, m, ttl).await
    }
    async fn scan(&self, cursor: Option<&str>, count: usize) -> Result<KeyScan, StoreError> {
        self.pass(&self.loads).await?;
        self.store.scan(cursor, count).await
    }
}

/// How long a stalled store call takes: longer than the store time limit the attacks give
/// their layers when they stall one.
pub const STALL: Duration = Duration::from_millis(500);

/// One-shot faults and counters of a [`Recorder`].
#[derive(Default)]
pub struct Pause {
    /// When set, the next supersede waits (between a regenerate's create and its supersede)
    /// until released, so a test can put another request exactly there.
    pub armed: AtomicBool,
    arrived: Notify,
    release: Notify,
    /// The next create stalls after it landed.
    pub stall_after_create: AtomicBool,
    /// The next supersede fails before it reaches the store.
    pub fail_supersede: AtomicBool,
    /// The next supersede stalls before it reaches the store.
    pub stall_supersede: AtomicBool,
    /// Every destroy fails while set.
    pub fail_destroy: AtomicBool,
    /// Loads that reached the wrapper.
    pub loads: AtomicUsize,
    /// Destroys that reached the wrapper.
    pub destroys: AtomicUsize,
}

impl Pause {
    /// The next supersede waits until [`Pause::release`].
    pub fn arm(&self) {
        self.armed.store(true, Ordering::SeqCst);
    }
    /// Resolves once the armed supersede waits.
    pub async fn arrived(&self) {
        self.arrived.notified().await;
    }
    /// Lets the waiting supersede go on.
    pub fn release(&self) {
        self.release.notify_one();
    }
}

/// A store that remembers every key a record was created under, with a [`Pause`].
#[derive(Clone)]
pub struct Recorder<S> {
    /// The store behind it.
    pub inner: S,
    created: Arc<Mutex<Vec<StoreKey>>>,
    /// Its faults and counters.
    pub pause: Arc<Pause>,
}

impl<S: Store> Recorder<S> {
    /// A recorder on `inner`.
    pub fn new(inner: S) -> Self {
        Self {
            inner,
            created: Arc::default(),
            pause: Arc::default(),
        }
    }
    /// The keys created since the last call.
    pub fn take_created(&self) -> Vec<StoreKey> {
        std::mem::take(&mut *self.created.lock().unwrap())
    }

    /// A recorder on `inner` that shares this one's record of created keys and its faults (a
    /// second app server's store: what either creates is recorded, a fault set on either
    /// applies to both).
    pub fn sharing<T: Store>(&self, inner: T) -> Recorder<T> {
        Recorder {
            inner,
            created: Arc::clone(&self.created),
            pause: Arc::clone(&self.pause),
        }
    }
}

impl<S: Store> Store for Recorder<S> {
    fn system(&self) -> &'static str {
        self.inner.system()
    }

    async fn create(&self, k: &StoreKey, r: &Record, ttl: Duration) -> Result<Created, StoreError> {
        let got = self.inner.create(k, r, ttl).await;
        if matches!(got, Ok(Created::Inserted)) {
            self.created.lock().unwrap().push(k.clone());
        }
        if self.pause.stall_after_create.swap(false, Ordering::SeqCst) {
            tokio::time::sleep(STALL).await;
        }
        got
    }
    async fn load(&self, k: &StoreKey) -> Result<Loaded, StoreError> {
        self.pause.loads.fetch_add(1, Ordering::SeqCst);
        self.inner.load(k).await
    }
    async fn save(
        &self,
        k: &StoreKey,
        c: Change<'_>,
        ttl: Duration,
    ) -> Result<Updated, StoreError> {
        self.inner.save(k, c, ttl).await
    }
    async fn destroy(&self, k: &StoreKey) -> Result<Destroyed, StoreError> {
        self.pause.destroys.fetch_add(1, Ordering::SeqCst);
        if self.pause.fail_destroy.load(Ordering::SeqCst) {
            return Err(StoreError::Unavailable("injected".into()));
        }
        self.inner.destroy(k).await
    }
    async fn supersede(
        &self,
        k: &StoreKey,
        next: &StoreKey,
        ttl: Duration,
    ) -> Result<Supersede, StoreError> {
        if self.pause.armed.swap(false, Ordering::SeqCst) {
            self.pause.arrived.notify_one();
            self.pause.release.notified().await;
        }
        if self.pause.fail_supersede.swap(false, Ordering::SeqCst) {
            return Err(StoreError::Unavailable("injected".into()));
        }
        if self.pause.stall_supersede.swap(false, Ordering::SeqCst) {
            tokio::time::sleep(STALL).await;
        }
        self.inner.supersede(k, next, ttl).await
    }
    async fn touch(&self, k: &StoreKey, m: Meta, ttl: Duration) -> Result<Updated, StoreError> {
        self.inner.touch(k, m, ttl).await
    }
    fn merges_deltas(&self) -> bool {
        self.inner.merges_deltas()
    }
    async fn scan(&self, cursor: Option<&str>, count: usize) -> Result<KeyScan, StoreError> {
        self.inner.scan(cursor, count).await
    }
}

/// A store call a [`Held`] store can hold, once, before it reaches the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Point {
    /// A request loading its session.
    Load = 1,
    /// A revoke listing the owner's index.
    Entries = 2,
    /// A regenerate creating its new record (its index entry is already filed).
    Create = 3,
    /// A regenerate superseding the old id (its new record exists).
    Supersede = 4,
}

/// Where the next call at the armed [`Point`] waits until released.
#[derive(Default)]
pub struct Hold {
    armed: AtomicU8,
    arrived: Notify,
    release: Notify,
}

impl Hold {
    /// The next call at `point` waits.
    pub fn arm(&self, point: Point) {
        self.armed.store(point as u8, Ordering::SeqCst);
    }
    /// Resolves once a call waits at the armed point.
    pub async fn arrived(&self) {
        self.arrived.notified().await;
    }
    /// Lets the waiting call go on.
    pub fn release(&self) {
        self.release.notify_one();
    }
    async fn pass(&self, point: Point) {
        let at = point as u8;
        if self
            .armed
            .compare_exchange(at, 0, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok()
        {
            self.arrived.notify_one();
            self.release.notified().await;
        }
    }
}

/// A store whose calls at a [`Point`] can be held (its owner index too).
#[derive(Clone)]
pub struct Held<S> {
    /// The store behind it.
    pub inner: S,
    /// Where its calls are held.
    pub hold: Arc<Hold>,
}

impl<S: Store> Held<S> {
    /// `inner`, nothing held yet.
    pub fn new(inner: S) -> Self {
        Self {
            inner,
            hold: Arc::default(),
        }
    }
    fn index(&self) -> &dyn OwnerIndex {
        self.inner
            .owner_index()
            .expect("a store with an owner index")
    }
}

impl<S: Store> Store for Held<S> {
    fn system(&self) -> &'static str {
        self.inner.system()
    }

    async fn create(&self, k: &StoreKey, r: &Record, ttl: Duration) -> Result<Created, StoreError> {
        self.hold.pass(Point::Create).await;
        self.inner.create(k, r, ttl).await
    }
    async fn load(&self, k: &StoreKey) -> Result<Loaded, StoreError> {
        self.hold.pass(Point::Load).await;
        self.inner.load(k).await
    }
    async fn save(
        &self,
        k: &StoreKey,
        c: Change<'_>,
        ttl: Duration,
    ) -> Result<Updated, StoreError> {
        self.inner.save(k, c, ttl).await
    }
    async fn destroy(&self, k: &StoreKey) -> Result<Destroyed, StoreError> {
        self.inner.destroy(k).await
    }
    async fn supersede(
        &self,
        k: &StoreKey,
        next: &StoreKey,
        ttl: Duration,
    ) -> Result<Supersede, StoreError> {
        self.hold.pass(Point::Supersede).await;
        self.inner.supersede(k, next, ttl).await
    }
    async fn touch(&self, k: &StoreKey, m: Meta, ttl: Duration) -> Result<Updated, StoreError> {
        self.inner.touch(k, m, ttl).await
    }
    fn merges_deltas(&self) -> bool {
        self.inner.merges_deltas()
    }
    fn owner_index(&self) -> Option<&dyn OwnerIndex> {
        Some(self)
    }
}

impl<S: Store> OwnerIndex for Held<S> {
    fn index<'a>(
        &'a self,
        owner: &'a str,
        entry: &'a IndexEntry,
        until: u64,
        now: u64,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        self.index().index(owner, entry, until, now)
    }
    fn unindex<'a>(
        &'a self,
        owner: &'a str,
        handles: &'a [Handle],
        now: u64,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        self.index().unindex(owner, handles, now)
    }
    fn entries<'a>(
        &'a self,
        owner: &'a str,
        now: u64,
    ) -> BoxFuture<'a, Result<Vec<Indexed>, StoreError>> {
        Box::pin(async move {
            self.hold.pass(Point::Entries).await;
            self.index().entries(owner, now).await
        })
    }
    fn admits(&self) -> bool {
        self.index().admits()
    }
    fn admit<'a>(
        &'a self,
        owner: &'a str,
        entry: &'a IndexEntry,
        until: u64,
        now: u64,
        how: Admit<'a>,
    ) -> BoxFuture<'a, Result<Admitted, StoreError>> {
        self.index().admit(owner, entry, until, now, how)
    }
}
