//! One shard of the store: a map of entries, an expiry heap, and the byte count a cap checks.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use foldhash::fast::RandomState;
use session_core::MaxAge;
use session_core::store::Meta;

/// Estimated bookkeeping bytes per record (map slot, key allocation, heap entry), added to the
/// key and data bytes when a byte cap is enforced.
pub const ENTRY_OVERHEAD_BYTES: usize = 160;
#[derive(Default)]
pub(crate) struct Shard {
    pub(crate) map: HashMap<Arc<str>, Entry, RandomState>,
    /// Expiry order: `(expires_at, key)`; entries whose record changed expiry since are stale
    /// and skipped (the record's own `expires_at` is the truth).
    pub(crate) heap: BinaryHeap<Reverse<(u64, Arc<str>)>>,
    pub(crate) bytes: usize,
}

pub(crate) struct Entry {
    /// The user data as compact JSON; for a supersede marker, [`MARKER`] and the key the
    /// session moved to (JSON data always starts with `{`, so the two can't be confused, and
    /// a marker costs no extra field in every entry).
    pub(crate) blob: Box<[u8]>,
    pub(crate) meta: PackedMeta,
    /// When the record stops existing (store clock, ms).
    pub(crate) expires_at: u64,
}

/// The first byte of a supersede marker's blob.
pub(crate) const MARKER: u8 = 0;

impl Entry {
    /// The key a supersede marker names; `None` for a record.
    pub(crate) fn successor(&self) -> Option<&str> {
        match self.blob.split_first() {
            Some((&MARKER, key)) => std::str::from_utf8(key).ok(),
            _ => None,
        }
    }

    pub(crate) fn is_marker(&self) -> bool {
        self.blob.first() == Some(&MARKER)
    }
}

/// [`Meta`] in 24 bytes: 0 stands for "none" (0 ms is never a real lifetime or timestamp here).
#[derive(Clone, Copy)]
pub(crate) struct PackedMeta {
    expire: u64,
    max_age: u64,
    created: u64,
}

impl From<Meta> for PackedMeta {
    fn from(m: Meta) -> Self {
        Self {
            expire: m.expire.unwrap_or(0),
            max_age: m.max_age.as_ms().unwrap_or(0),
            created: m.created.unwrap_or(0),
        }
    }
}

impl From<PackedMeta> for Meta {
    fn from(p: PackedMeta) -> Self {
        let some = |v: u64| (v != 0).then_some(v);
        Meta {
            expire: some(p.expire),
            max_age: if p.max_age == 0 {
                MaxAge::Session
            } else {
                MaxAge::Ms(p.max_age)
            },
            created: some(p.created),
        }
    }
}

pub(crate) fn cost(key: &str, e: &Entry) -> usize {
    key.len() + e.blob.len() + ENTRY_OVERHEAD_BYTES
}

impl Shard {
    /// Removes up to `limit` expired records in expiry order; returns how many.
    pub(crate) fn reclaim_expired(&mut self, now: u64, limit: usize) -> usize {
        let mut n = 0;
        while n < limit {
            let Some(Reverse((at, _))) = self.heap.peek() else {
                break;
            };
            if *at > now {
                break;
            }
            let Some(Reverse((at, key))) = self.heap.pop() else {
                break;
            };
            if self.map.get(&key).is_some_and(|e| e.expires_at == at) {
                self.remove(&key);
                n += 1;
            }
        }
        n
    }

    /// Evicts the live record soonest to expire; `false` if there is none.
    pub(crate) fn evict_soonest(&mut self) -> bool {
        while let Some(Reverse((at, key))) = self.heap.pop() {
            if self.map.get(&key).is_some_and(|e| e.expires_at == at) {
                self.remove(&key);
                return true;
            }
        }
        false
    }

    pub(crate) fn remove(&mut self, key: &str) -> Option<Entry> {
        let (k, e) = self.map.remove_entry(key)?;
        self.bytes -= cost(&k, &e);
        Some(e)
    }

    pub(crate) fn schedule(&mut self, key: Arc<str>, at: u64) {
        self.heap.push(Reverse((at, key)));
        // Every TTL change leaves a stale heap entry behind; rebuild before they pile up.
        if self.heap.len() > 2 * self.map.len() + 1024 {
            self.heap = self
                .map
                .iter()
                .map(|(k, e)| Reverse((e.expires_at, Arc::clone(k))))
                .collect();
        }
    }

    /// The live entry under `key`; an expired one is reclaimed on the way.
    pub(crate) fn live(&mut self, key: &str, now: u64, expired: &AtomicU64) -> Option<&mut Entry> {
        if self.map.get(key).is_some_and(|e| e.expires_at <= now) {
            self.remove(key);
            expired.fetch_add(1, Ordering::Relaxed);
        }
        self.map.get_mut(key)
    }

    /// Replaces the data and expiry of the entry under `key` (which exists).
    pub(crate) fn rewrite(
        &mut self,
        key: &str,
        blob: Option<Box<[u8]>>,
        meta: Meta,
        expires_at: u64,
    ) {
        let Some((k, e)) = self.map.get_key_value(key) else {
            return;
        };
        let k = Arc::clone(k);
        let old_cost = cost(&k, e);
        if let Some(e) = self.map.get_mut(key) {
            if let Some(blob) = blob {
                e.blob = blob;
            }
            e.meta = meta.into();
            e.expires_at = expires_at;
            let new_cost = cost(&k, e);
            self.bytes = self.bytes - old_cost + new_cost;
        }
        self.schedule(k, expires_at);
    }
}
