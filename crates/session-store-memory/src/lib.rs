//! The embedded session store: what a newcomer runs first and what a single-instance app runs in
//! production.
//!
//! - **Correct**: implements the whole [`Store`] contract (insert-if-absent create,
//!   update-if-present save that never brings back a destroyed session, idempotent destroy,
//!   TTL-only touch) and merges deltas, so two concurrent requests that change different keys
//!   of one session both land. It passes the conformance suite of `session-core`.
//! - **Never returns an expired record**: every read checks the TTL against the store's
//!   [`Clock`](session_core::Clock); expired records are reclaimed on access, by a bounded cleanup on every create,
//!   and by an optional background [`Sweeper`].
//! - **Bounded**: every record is held to a size limit after every write (64 KiB of JSON data by
//!   default, [`MemoryStoreBuilder::max_record_bytes`]; a write beyond it is
//!   [`StoreError::TooLarge`] and changes nothing), and optional caps bound the number of
//!   sessions and their bytes. When a create would exceed a cap, expired records go first, then
//!   the live ones **soonest to expire first** (they have the least session left to lose). Caps
//!   apply per shard (the total divided by the shard count), so eviction is soonest-first within
//!   the new record's shard.
//! - **Regenerate-safe**: [`Store::supersede`] leaves a short-lived marker under the old id, so a
//!   regenerate racing a destroy never keeps the destroyed data alive, and requests that still
//!   carry the old id are told it was superseded.
//! - **A user's sessions**: keeps an owner index ([`OwnerIndex`]) under one lock of its own
//!   (taken by logins, logouts, listings and revokes, and by a bound session's write once per
//!   index slack: requests of sessions without an owner never take it).
//!   Each write to an owner's entries drops the lapsed ones in time order; an owner never
//!   written again keeps its lapsed entries until [`MemoryStore::sweep`] (the [`Sweeper`]) drops
//!   them. It holds one entry per bound session (a few hundred bytes with the device text), not
//!   counted against the byte cap.
//! - **Fast and compact**: sessions are spread over independently locked shards; no lock is
//!   held across an `.await` (every operation is synchronous inside). Records are kept as
//!   compact JSON bytes (the repository's BENCHMARKS.md has the memory per session).
//!
//! # Example
//! ```
//! use session_core::MaxAge;
//! use session_core::store::{Created, Loaded, Meta, Record, Store, StoreKey};
//! use session_store_memory::MemoryStore;
//! use std::time::Duration;
//!
//! # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
//! let store = MemoryStore::builder().max_sessions(1_000_000).build();
//! let key = StoreKey::from_raw("sess:example");
//! let mut record = Record {
//!     data: Default::default(),
//!     meta: Meta { expire: None, max_age: MaxAge::Session, created: None },
//! };
//! record.data.insert("views".into(), 1.into());
//! assert_eq!(store.create(&key, &record, Duration::from_secs(60)).await?, Created::Inserted);
//! assert_eq!(store.load(&key).await?, Loaded::Live(record));
//! # Ok::<(), session_core::store::StoreError>(())
//! # }).unwrap();
//! ```

use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

// SipHash was 5 % of a request's instructions (a shard pick and a few map lookups per load
// and save); foldhash is seeded per instance and several times cheaper on 48-byte keys.
use foldhash::fast::RandomState;
use session_core::Handle;
use session_core::store::{Admit, Admitted, IndexEntry, Indexed, OwnerIndex};
use session_core::store::{
    BoxFuture, Change, Created, Destroyed, KeyScan, Loaded, Meta, Record, Store, StoreError,
    StoreKey, Supersede, Updated,
};
use session_core::{Data, SharedClock, SystemClock};

mod merge;
mod owners;
mod shard;
mod sweeper;

use merge::corrupt;
pub use shard::ENTRY_OVERHEAD_BYTES;
use shard::{Entry, MARKER, Shard, cost};
pub use sweeper::Sweeper;

/// Expired records reclaimed opportunistically by each create (bounded so a create stays cheap).
const CLEANUP_PER_CREATE: usize = 4;
/// Default largest record: the JSON bytes of a session's data.
pub const DEFAULT_MAX_RECORD_BYTES: usize = 64 * 1024;

/// Counters, for monitoring.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Live and not-yet-reclaimed records.
    pub records: usize,
    /// Bytes counted against the byte cap.
    pub bytes: usize,
    /// Live records evicted to respect a cap, since the store was built.
    pub evicted: u64,
    /// Expired records reclaimed, since the store was built.
    pub expired: u64,
}

/// The embedded store. Cloning is cheap and shares the data.
#[derive(Clone)]
pub struct MemoryStore {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryStore")
            .field("shards", &self.inner.shards.len())
            .field("max_sessions", &self.inner.max_sessions)
            .field("max_bytes", &self.inner.max_bytes)
            .field("max_record_bytes", &self.inner.max_record_bytes)
            .field("stats", &self.stats())
            .finish()
    }
}

struct Inner {
    shards: Box<[Mutex<Shard>]>,
    hasher: RandomState,
    clock: SharedClock,
    max_sessions: Option<usize>,
    max_bytes: Option<usize>,
    per_shard_sessions: usize,
    per_shard_bytes: usize,
    max_record_bytes: usize,
    evicted: AtomicU64,
    expired: AtomicU64,
    owners: owners::Owners,
}

/// Builds a [`MemoryStore`].
#[derive(Default)]
pub struct MemoryStoreBuilder {
    shards: Option<usize>,
    max_sessions: Option<usize>,
    max_bytes: Option<usize>,
    max_record_bytes: Option<usize>,
    clock: Option<SharedClock>,
}

impl MemoryStoreBuilder {
    /// Number of independently locked shards (rounded up to a power of two; default 64).
    pub fn shards(mut self, n: usize) -> Self {
        self.shards = Some(n);
        self
    }
    /// Caps the number of sessions; beyond it, creating one evicts the soonest to expire.
    pub fn max_sessions(mut self, n: usize) -> Self {
        self.max_sessions = Some(n);
        self
    }
    /// Caps the bytes of sessions (key + JSON data + [`ENTRY_OVERHEAD_BYTES`] each).
    pub fn max_bytes(mut self, n: usize) -> Self {
        self.max_bytes = Some(n);
        self
    }
    /// Largest record, in JSON bytes of the session's data (default
    /// [`DEFAULT_MAX_RECORD_BYTES`], 64 KiB). Every create and save is held to it for the
    /// whole record (not only the keys a request changed); a write beyond it fails with
    /// [`StoreError::TooLarge`] and leaves the record as it was.
    pub fn max_record_bytes(mut self, n: usize) -> Self {
        self.max_record_bytes = Some(n);
        self
    }
    /// The clock TTLs are measured with (default the system clock; tests inject a manual one).
    pub fn clock(mut self, clock: SharedClock) -> Self {
        self.clock = Some(clock);
        self
    }
    /// Builds the store.
    pub fn build(self) -> MemoryStore {
        let n = self
            .shards
            .unwrap_or(64)
            .clamp(1, 1 << 16)
            .next_power_of_two();
        let per = |total: Option<usize>| total.map_or(usize::MAX, |t| t.div_ceil(n).max(1));
        MemoryStore {
            inner: Arc::new(Inner {
                shards: (0..n).map(|_| Mutex::new(Shard::default())).collect(),
                hasher: RandomState::default(),
                clock: self.clock.unwrap_or_else(|| Arc::new(SystemClock)),
                max_sessions: self.max_sessions,
                max_bytes: self.max_bytes,
                per_shard_sessions: per(self.max_sessions),
                per_shard_bytes: per(self.max_bytes),
                max_record_bytes: self.max_record_bytes.unwrap_or(DEFAULT_MAX_RECORD_BYTES),
                evicted: AtomicU64::new(0),
                expired: AtomicU64::new(0),
                owners: owners::Owners::default(),
            }),
        }
    }
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

/// A TTL in ms, clamped to [`MAX_STORE_TTL`](session_core::store::MAX_STORE_TTL).
fn ms(d: Duration) -> u64 {
    let d = d.min(session_core::store::MAX_STORE_TTL);
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn encode(data: &Data) -> Result<Box<[u8]>, StoreError> {
    serde_json::to_vec(data)
        .map(Vec::into_boxed_slice)
        .map_err(|e| StoreError::Backend(format!("could not encode session data: {e}")))
}

fn decode(blob: &[u8]) -> Result<Data, StoreError> {
    serde_json::from_slice(blob).map_err(|e| corrupt(&e))
}

impl MemoryStore {
    /// A store with 64 shards, no caps and the system clock.
    pub fn new() -> Self {
        Self::builder().build()
    }

    /// Starts a builder.
    pub fn builder() -> MemoryStoreBuilder {
        MemoryStoreBuilder::default()
    }

    fn shard(&self, key: &str) -> MutexGuard<'_, Shard> {
        let h = self.inner.hasher.hash_one(key);
        let idx = (h >> 32) as usize & (self.inner.shards.len() - 1);
        // A panic while holding a shard lock can't leave an entry half-written (every update
        // is a single assignment), so a poisoned lock is safe to keep using.
        self.inner.shards[idx]
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn now(&self) -> u64 {
        self.inner.clock.now_ms()
    }

    /// The remaining TTL of the record under `key`, `None` if there is no live record.
    pub fn ttl(&self, key: &StoreKey) -> Option<Duration> {
        self.ttl_where(key, |_| true)
    }

    /// The remaining TTL of the entry under `key` if it has not expired and passes `keep`.
    fn ttl_where(&self, key: &StoreKey, keep: impl Fn(&Entry) -> bool) -> Option<Duration> {
        let now = self.now();
        let shard = self.shard(key.as_str());
        let e = shard.map.get(key.as_str())?;
        (e.expires_at > now && keep(e)).then(|| Duration::from_millis(e.expires_at - now))
    }

    /// Number of records held (expired ones not yet reclaimed included).
    pub fn len(&self) -> usize {
        self.stats().records
    }

    /// Whether the store holds no record.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Counters.
    pub fn stats(&self) -> Stats {
        let mut s = Stats {
            evicted: self.inner.evicted.load(Ordering::Relaxed),
            expired: self.inner.expired.load(Ordering::Relaxed),
            ..Stats::default()
        };
        for shard in self.inner.shards.iter() {
            let g = shard.lock().unwrap_or_else(|p| p.into_inner());
            s.records += g.map.len();
            s.bytes += g.bytes;
        }
        s
    }

    fn check_size(&self, blob: &[u8]) -> Result<(), StoreError> {
        let limit = self.inner.max_record_bytes;
        if blob.len() > limit {
            return Err(StoreError::TooLarge {
                size: blob.len(),
                limit,
            });
        }
        Ok(())
    }

    /// The remaining TTL of the live record under `key` (not a supersede marker).
    fn live_ttl(&self, key: &StoreKey) -> Option<Duration> {
        self.ttl_where(key, |e| !e.is_marker())
    }

    /// Entries held in the owner index (lapsed ones not yet dropped included).
    pub fn owner_entries(&self) -> usize {
        self.inner.owners.len()
    }

    /// Reclaims every expired record now, and drops the owner index's lapsed entries (each
    /// owner's are also dropped by every write to its index); returns how many records went.
    /// The [`Sweeper`] calls this.
    pub fn sweep(&self) -> usize {
        let now = self.now();
        self.inner.owners.sweep(now);
        let mut total = 0;
        for shard in self.inner.shards.iter() {
            let mut g = shard.lock().unwrap_or_else(|p| p.into_inner());
            total += g.reclaim_expired(now, usize::MAX);
        }
        self.inner
            .expired
            .fetch_add(total as u64, Ordering::Relaxed);
        total
    }

    /// Starts a background task (on the current tokio runtime) that calls [`MemoryStore::sweep`]
    /// every `interval`, first one `interval` from now. Stop it with [`Sweeper::stop`].
    pub fn start_sweeper(&self, interval: Duration) -> Sweeper {
        let store = self.clone();
        Sweeper::start(move || store.sweep(), interval)
    }
}

impl OwnerIndex for MemoryStore {
    fn index<'a>(
        &'a self,
        owner: &'a str,
        entry: &'a IndexEntry,
        until: u64,
        now: u64,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        self.inner.owners.index(owner, entry, until, now);
        Box::pin(std::future::ready(Ok(())))
    }

    fn unindex<'a>(
        &'a self,
        owner: &'a str,
        handles: &'a [Handle],
        now: u64,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        self.inner.owners.unindex(owner, handles, now);
        Box::pin(std::future::ready(Ok(())))
    }

    fn entries<'a>(
        &'a self,
        owner: &'a str,
        now: u64,
    ) -> BoxFuture<'a, Result<Vec<Indexed>, StoreError>> {
        let found = self.inner.owners.entries(owner, now, |k| self.live_ttl(k));
        Box::pin(std::future::ready(Ok(found)))
    }

    fn admits(&self) -> bool {
        true
    }

    /// Decided under the index's lock, with the write.
    fn admit<'a>(
        &'a self,
        owner: &'a str,
        entry: &'a IndexEntry,
        until: u64,
        now: u64,
        how: Admit<'a>,
    ) -> BoxFuture<'a, Result<Admitted, StoreError>> {
        let got = self.inner.owners.admit(owner, entry, until, now, how);
        Box::pin(std::future::ready(Ok(got)))
    }
}

impl Store for MemoryStore {
    fn system(&self) -> &'static str {
        "memory"
    }

    fn owner_index(&self) -> Option<&dyn OwnerIndex> {
        Some(self)
    }

    /// Whole shards at a time (the cursor is the next shard's number), live entries only.
    async fn scan(&self, cursor: Option<&str>, count: usize) -> Result<KeyScan, StoreError> {
        let shards = &self.inner.shards;
        let mut next = match cursor {
            None => 0,
            Some(c) => c
                .parse::<usize>()
                .map_err(|_| StoreError::Backend("not a cursor of this store".to_owned()))?,
        };
        let now = self.now();
        let mut keys = Vec::new();
        while next < shards.len() && keys.len() < count.max(1) {
            let shard = shards[next]
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            keys.extend(
                shard
                    .map
                    .iter()
                    .filter(|(_, e)| e.expires_at > now)
                    .map(|(k, _)| StoreKey::from_raw(k.as_ref())),
            );
            next += 1;
        }
        Ok((keys, (next < shards.len()).then(|| next.to_string())))
    }

    async fn create(
        &self,
        key: &StoreKey,
        record: &Record,
        ttl: Duration,
    ) -> Result<Created, StoreError> {
        let blob = encode(&record.data)?;
        session_core::telemetry::record_bytes("memory", blob.len());
        let inner = &*self.inner;
        self.check_size(&blob)?;
        let now = self.now();
        let expires_at = now.saturating_add(ms(ttl));
        let key_str = key.as_str();
        let entry = Entry {
            blob,
            meta: record.meta.into(),
            expires_at,
        };
        let new_cost = cost(key_str, &entry);
        if new_cost > inner.per_shard_bytes {
            return Err(StoreError::TooLarge {
                size: new_cost,
                limit: inner.per_shard_bytes,
            });
        }
        let mut shard = self.shard(key_str);
        if shard.live(key_str, now, &inner.expired).is_some() {
            return Ok(Created::Collision);
        }
        let reclaimed = shard.reclaim_expired(now, CLEANUP_PER_CREATE);
        let mut evicted = 0u64;
        while shard.map.len() + 1 > inner.per_shard_sessions
            || shard.bytes + new_cost > inner.per_shard_bytes
        {
            let reclaimed_now = shard.reclaim_expired(now, 1);
            if reclaimed_now == 0 {
                if !shard.evict_soonest() {
                    break;
                }
                evicted += 1;
            }
        }
        let k: Arc<str> = Arc::from(key_str);
        shard.bytes += new_cost;
        shard.map.insert(Arc::clone(&k), entry);
        shard.schedule(k, expires_at);
        drop(shard);
        inner.expired.fetch_add(reclaimed as u64, Ordering::Relaxed);
        if evicted > 0 {
            inner.evicted.fetch_add(evicted, Ordering::Relaxed);
            tracing::debug!(target: "session::memory", evicted, "capacity reached: evicted the sessions soonest to expire");
        }
        Ok(Created::Inserted)
    }

    async fn load(&self, key: &StoreKey) -> Result<Loaded, StoreError> {
        let now = self.now();
        let (blob, meta) = {
            let mut shard = self.shard(key.as_str());
            match shard.live(key.as_str(), now, &self.inner.expired) {
                Some(e) if e.is_marker() => return Ok(Loaded::Superseded),
                Some(e) => (e.blob.to_vec(), e.meta),
                None => return Ok(Loaded::Missing),
            }
        };
        // Parsed outside the lock.
        Ok(Loaded::Live(Record {
            data: decode(&blob)?,
            meta: meta.into(),
        }))
    }

    async fn save(
        &self,
        key: &StoreKey,
        change: Change<'_>,
        ttl: Duration,
    ) -> Result<Updated, StoreError> {
        let now = self.now();
        let expires_at = now.saturating_add(ms(ttl));
        let k = key.as_str();
        if change.delta.replace {
            let blob = encode(change.data)?;
            session_core::telemetry::record_bytes("memory", blob.len());
            let mut shard = self.shard(k);
            match shard.live(k, now, &self.inner.expired) {
                None => return Ok(Updated::NotFound),
                Some(e) if e.is_marker() => return Ok(Updated::Superseded),
                Some(_) => {}
            }
            self.check_size(&blob)?;
            shard.rewrite(k, Some(blob), change.meta, expires_at);
            return Ok(Updated::Updated);
        }
        // Under the lock the stored record is streamed into its new form in one pass: untouched
        // keys are copied as raw JSON, set keys get their new values encoded in place, so
        // concurrent deltas to other keys stay and nothing is parsed into values.
        let mut shard = self.shard(k);
        let Some(entry) = shard.live(k, now, &self.inner.expired) else {
            return Ok(Updated::NotFound);
        };
        if entry.is_marker() {
            return Ok(Updated::Superseded);
        }
        let blob = if change.delta.is_empty() {
            None
        } else {
            let merged = merge::apply(&entry.blob, change.delta)?;
            self.check_size(&merged)?;
            Some(merged)
        };
        shard.rewrite(k, blob, change.meta, expires_at);
        Ok(Updated::Updated)
    }

    async fn destroy(&self, key: &StoreKey) -> Result<Destroyed, StoreError> {
        let now = self.now();
        let k = key.as_str();
        let mut shard = self.shard(k);
        let live = shard.live(k, now, &self.inner.expired).is_some();
        Ok(match shard.remove(k) {
            Some(e) if live => match e.successor() {
                Some(next) => Destroyed::Superseded(StoreKey::from_raw(next)),
                None => Destroyed::Removed,
            },
            _ => Destroyed::Missing,
        })
    }

    async fn supersede(
        &self,
        key: &StoreKey,
        successor: &StoreKey,
        ttl: Duration,
    ) -> Result<Supersede, StoreError> {
        let now = self.now();
        let expires_at = now.saturating_add(ms(ttl));
        let k = key.as_str();
        let mut shard = self.shard(k);
        let Some(entry) = shard.live(k, now, &self.inner.expired) else {
            return Ok(Supersede::Missing);
        };
        if entry.is_marker() {
            return Ok(Supersede::AlreadySuperseded);
        }
        let Some((k, old)) = shard.map.remove_entry(k) else {
            return Ok(Supersede::Missing);
        };
        shard.bytes -= cost(&k, &old);
        let marker = Entry {
            meta: old.meta,
            expires_at,
            blob: [&[MARKER], successor.as_str().as_bytes()]
                .concat()
                .into_boxed_slice(),
        };
        shard.bytes += cost(&k, &marker);
        shard.map.insert(Arc::clone(&k), marker);
        shard.schedule(k, expires_at);
        Ok(Supersede::Replaced)
    }

    async fn touch(
        &self,
        key: &StoreKey,
        meta: Meta,
        ttl: Duration,
    ) -> Result<Updated, StoreError> {
        let now = self.now();
        let k = key.as_str();
        let mut shard = self.shard(k);
        match shard.live(k, now, &self.inner.expired) {
            None => return Ok(Updated::NotFound),
            Some(e) if e.is_marker() => return Ok(Updated::Superseded),
            Some(_) => {}
        }
        shard.rewrite(k, None, meta, now.saturating_add(ms(ttl)));
        Ok(Updated::Updated)
    }
}
