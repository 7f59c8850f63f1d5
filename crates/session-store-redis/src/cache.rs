//! The client cache's table: recently read records by Redis key, least recently used first out
//! when their bytes pass the bound, and the bookkeeping that keeps a reply which raced an
//! invalidation out of it.
//!
//! Every read that fills the table and every write this process makes through the tracking
//! connection takes a [`Ticket`] for its key when it starts. An invalidation of the key (a
//! push from Redis, or a write this process made through the pool) moves the key's version on,
//! and a flush moves the whole table's epoch on; a reply whose ticket no longer matches is
//! returned to its caller but never stored. So a reply read *before* a write can't land in the
//! table *after* that write's invalidation, whichever order the two reach this process in.

use std::collections::HashMap;
use std::time::Instant;

use lru::LruCache;
use session_core::{Meta, Record};

/// Bytes counted for an entry beyond its key and its fields (the map, the JSON values' nodes,
/// the LRU links): a rough, deliberately generous figure, so the bound holds for small records.
const ENTRY_OVERHEAD: usize = 256;

/// What the client cache holds and has done, for monitoring and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CacheStats {
    /// Records held.
    pub entries: usize,
    /// Their bytes, as counted against the bound (keys, fields and a per-entry overhead).
    pub bytes: usize,
    /// Loads answered from the cache (no round trip).
    pub hits: u64,
    /// Loads that went to Redis.
    pub misses: u64,
    /// Keys dropped because Redis said they changed, or this process changed them.
    pub invalidations: u64,
    /// Times the whole cache was dropped: the tracking connection was lost, or went silent.
    pub flushes: u64,
}

struct Entry {
    record: Record,
    /// Not served from this instant on (the key's TTL when it was read).
    until: Instant,
    bytes: usize,
}

/// Operations in flight on one key.
struct InFlight {
    ops: u32,
    version: u64,
}

/// Taken when an operation on a key starts; says at its end whether the key was invalidated
/// (or the cache flushed) meanwhile.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ticket {
    epoch: u64,
    version: u64,
}

pub(crate) struct Table {
    lru: LruCache<String, Entry>,
    bytes: usize,
    max_bytes: usize,
    pending: HashMap<String, InFlight>,
    epoch: u64,
    stats: CacheStats,
}

impl Table {
    pub(crate) fn new(max_bytes: usize) -> Self {
        Self {
            lru: LruCache::unbounded(),
            bytes: 0,
            max_bytes,
            pending: HashMap::new(),
            epoch: 0,
            stats: CacheStats::default(),
        }
    }

    /// The live record cached under `key`, if any and not past its TTL.
    pub(crate) fn get(&mut self, key: &str, now: Instant) -> Option<Record> {
        let fresh = self.lru.get(key).map(|e| e.until > now)?;
        if !fresh {
            self.remove(key);
            return None;
        }
        self.stats.hits += 1;
        self.lru.peek(key).map(|e| e.record.clone())
    }

    /// Notes an operation on `key` starting.
    pub(crate) fn begin(&mut self, key: &str) -> Ticket {
        let p = match self.pending.get_mut(key) {
            Some(p) => p,
            None => self
                .pending
                .entry(key.to_owned())
                .or_insert(InFlight { ops: 0, version: 0 }),
        };
        p.ops += 1;
        Ticket {
            epoch: self.epoch,
            version: p.version,
        }
    }

    /// Notes the operation of `ticket` on `key` ending; whether nothing invalidated the key or
    /// flushed the cache since it began.
    pub(crate) fn end(&mut self, key: &str, ticket: Ticket) -> bool {
        let Some(p) = self.pending.get_mut(key) else {
            return false;
        };
        let clean = p.version == ticket.version && ticket.epoch == self.epoch;
        p.ops = p.ops.saturating_sub(1);
        if p.ops == 0 {
            self.pending.remove(key);
        }
        clean
    }

    /// Counts a load that went to Redis.
    pub(crate) fn missed(&mut self) {
        self.stats.misses += 1;
    }

    /// Stores a record read from Redis; `payload` is the bytes of its fields.
    pub(crate) fn insert(&mut self, key: &str, record: Record, until: Instant, payload: usize) {
        let bytes = key.len() + payload + ENTRY_OVERHEAD;
        if bytes > self.max_bytes {
            return;
        }
        if let Some(old) = self.lru.put(
            key.to_owned(),
            Entry {
                record,
                until,
                bytes,
            },
        ) {
            self.bytes -= old.bytes;
        }
        self.bytes += bytes;
        while self.bytes > self.max_bytes {
            match self.lru.pop_lru() {
                Some((_, e)) => self.bytes -= e.bytes,
                None => break,
            }
        }
    }

    /// After a touch this process made: the cached record (if still there) carries the new
    /// expiry.
    pub(crate) fn extend(&mut self, key: &str, meta: Meta, until: Instant) {
        if let Some(e) = self.lru.get_mut(key) {
            e.record.meta = meta;
            e.until = until;
        }
    }

    fn remove(&mut self, key: &str) {
        if let Some(e) = self.lru.pop(key) {
            self.bytes -= e.bytes;
        }
    }

    /// `key` changed (or may have): drop it, and keep any reply in flight for it out.
    pub(crate) fn invalidate(&mut self, key: &str) {
        self.stats.invalidations += 1;
        self.remove(key);
        if let Some(p) = self.pending.get_mut(key) {
            p.version += 1;
        }
    }

    /// Drops everything, and keeps every reply in flight out.
    pub(crate) fn flush(&mut self) {
        self.stats.flushes += 1;
        self.epoch += 1;
        self.lru.clear();
        self.bytes = 0;
    }

    pub(crate) fn stats(&self) -> CacheStats {
        CacheStats {
            entries: self.lru.len(),
            bytes: self.bytes,
            ..self.stats
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use session_core::MaxAge;
    use std::time::Duration;

    fn record(n: u64) -> Record {
        let mut data = session_core::Data::new();
        data.insert("n".into(), serde_json::json!(n));
        Record {
            data,
            meta: Meta {
                expire: None,
                max_age: MaxAge::Session,
                created: None,
            },
        }
    }

    fn later() -> Instant {
        Instant::now() + Duration::from_secs(60)
    }

    #[test]
    fn a_reply_that_raced_an_invalidation_is_not_stored() {
        let mut t = Table::new(1 << 20);
        let ticket = t.begin("k");
        t.invalidate("k");
        assert!(!t.end("k", ticket));
        // A fill that starts after the invalidation is clean.
        let ticket = t.begin("k");
        assert!(t.end("k", ticket));
        assert!(t.pending.is_empty());
    }

    #[test]
    fn a_flush_spoils_every_ticket_in_flight() {
        let mut t = Table::new(1 << 20);
        let (a, b) = (t.begin("a"), t.begin("b"));
        t.flush();
        assert!(!t.end("a", a));
        assert!(!t.end("b", b));
    }

    #[test]
    fn overlapping_fills_of_one_key_are_each_judged() {
        let mut t = Table::new(1 << 20);
        let first = t.begin("k");
        t.invalidate("k");
        let second = t.begin("k");
        assert!(!t.end("k", first));
        assert!(t.end("k", second));
    }

    #[test]
    fn the_byte_bound_holds_and_evicts_the_least_recently_used() {
        let mut t = Table::new(3 * (1 + 10 + ENTRY_OVERHEAD));
        for k in ["a", "b", "c"] {
            t.insert(k, record(1), later(), 10);
        }
        assert!(t.get("a", Instant::now()).is_some());
        t.insert("d", record(1), later(), 10);
        assert!(t.stats().bytes <= 3 * (1 + 10 + ENTRY_OVERHEAD));
        assert!(
            t.get("b", Instant::now()).is_none(),
            "b was least recently used"
        );
        assert!(t.get("a", Instant::now()).is_some());
        // A record larger than the whole bound is never stored.
        t.insert("huge", record(1), later(), 1 << 20);
        assert!(t.get("huge", Instant::now()).is_none());
        assert_eq!(t.stats().entries, 3);
    }

    #[test]
    fn an_entry_past_its_ttl_is_not_served() {
        let mut t = Table::new(1 << 20);
        t.insert("k", record(1), Instant::now(), 10);
        assert!(t.get("k", Instant::now()).is_none());
        assert_eq!(t.stats().entries, 0);
        assert_eq!(t.stats().bytes, 0);
    }
}
