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
use std::sync::Mutex;
use std::time::Instant;

use lru::LruCache;
use session_core::store::{Data, Delta, Meta, Record};

/// Bytes counted for an entry beyond its key and its decoded data (the map's and the LRU's
/// links, the pending bookkeeping): a rough, deliberately generous figure.
const ENTRY_OVERHEAD: usize = 256;
/// Bytes counted per object member beyond its name and value (the map's index and hash).
const MEMBER_OVERHEAD: usize = 32;

/// What a decoded JSON value takes in memory, roughly: its node, and its text, elements or
/// members (a `[0,0,...]` of 2 bytes per element on the wire takes a whole node each).
fn value_bytes(v: &serde_json::Value) -> usize {
    use serde_json::Value;
    std::mem::size_of::<Value>()
        + match v {
            Value::Null | Value::Bool(_) | Value::Number(_) => 0,
            Value::String(s) => s.capacity(),
            Value::Array(items) => items.iter().map(value_bytes).sum(),
            Value::Object(members) => members
                .iter()
                .map(|(k, v)| {
                    std::mem::size_of::<String>() + k.capacity() + MEMBER_OVERHEAD + value_bytes(v)
                })
                .sum(),
        }
}

/// What a cached record takes in memory, roughly, its key included.
pub(crate) fn entry_bytes(key: &str, record: &Record) -> usize {
    let data: usize = record
        .data
        .iter()
        .map(|(k, v)| {
            std::mem::size_of::<String>() + k.capacity() + MEMBER_OVERHEAD + value_bytes(v)
        })
        .sum();
    2 * key.len() + data + ENTRY_OVERHEAD
}

/// What the client cache holds and has done, for monitoring and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CacheStats {
    /// Records held.
    pub entries: usize,
    /// Their bytes, as counted against the bound (keys, fields and a per-entry overhead).
    pub bytes: usize,
    /// Loads answered from the cache (after their read fence: a `PING` shared by the loads
    /// waiting for it, instead of reading the record).
    pub hits: u64,
    /// Loads that went to Redis.
    pub misses: u64,
    /// Keys dropped because Redis said they changed, or this process changed them.
    pub invalidations: u64,
    /// Times the whole cache was dropped: the tracking connection was lost, or went silent.
    pub flushes: u64,
    /// Read fences sent: `PING`s on the tracking connection that loads of cached records
    /// waited for (each serves every load that began before it was sent).
    pub fences: u64,
    /// Whether the tracking connection is up (without it, loads go through the pool,
    /// uncached).
    pub tracking: bool,
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

/// An operation in flight on a key of a table: its [`Ticket`] ends exactly once, when the
/// operation finishes or, if the request is dropped half-way (a timeout, a client gone), on
/// drop.
pub(crate) struct Claim<'a> {
    table: &'a Mutex<Table>,
    key: &'a str,
    ticket: Option<Ticket>,
}

impl<'a> Claim<'a> {
    /// Begins an operation on `key` in `guard`, the locked `table`.
    pub(crate) fn new(table: &'a Mutex<Table>, guard: &mut Table, key: &'a str) -> Self {
        Self {
            table,
            key,
            ticket: Some(guard.begin(key)),
        }
    }

    /// Ends the operation; whether nothing invalidated the key meanwhile.
    pub(crate) fn end(mut self, table: &mut Table) -> bool {
        self.ticket
            .take()
            .is_some_and(|ticket| table.end(self.key, ticket))
    }
}

impl Drop for Claim<'_> {
    fn drop(&mut self) {
        if let Some(ticket) = self.ticket.take() {
            self.table
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .end(self.key, ticket);
        }
    }
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
        // One lookup on a hit (it also marks the entry most recently used).
        let hit = match self.lru.get(key) {
            Some(e) if e.until > now => Some(e.record.clone()),
            Some(_) => None,
            None => return None,
        };
        match hit {
            Some(_) => {
                self.stats.hits += 1;
                session_core::telemetry::client_cache(true);
            }
            None => self.remove(key),
        }
        hit
    }

    /// Whether a live record is cached under `key` (without marking it used or counting).
    pub(crate) fn holds(&self, key: &str, now: Instant) -> bool {
        self.lru.peek(key).is_some_and(|e| e.until > now)
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
        session_core::telemetry::client_cache(false);
    }

    /// Stores a record read from Redis.
    pub(crate) fn insert(&mut self, key: &str, record: Record, until: Instant) {
        let bytes = entry_bytes(key, &record);
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
        self.evict();
    }

    /// Drops the least recently used entries until the bytes are within the bound.
    fn evict(&mut self) {
        while self.bytes > self.max_bytes {
            match self.lru.pop_lru() {
                Some((_, e)) => self.bytes -= e.bytes,
                None => break,
            }
        }
    }

    /// Lowers (or raises) the bound to `max_bytes`, least recently used out first.
    pub(crate) fn bound(&mut self, max_bytes: usize) {
        self.max_bytes = max_bytes;
        self.evict();
    }

    /// After a touch this process made: the cached record (if still there) carries the new
    /// expiry, and a fill still in flight (which may have read the old one) is kept out.
    pub(crate) fn extend(&mut self, key: &str, meta: Meta, until: Instant) {
        if let Some(e) = self.lru.get_mut(key) {
            e.record.meta = meta;
            e.until = until;
        }
        if let Some(p) = self.pending.get_mut(key) {
            p.version += 1;
        }
    }

    /// After a save this process made through the tracking connection, whose ticket says
    /// nothing changed the key since it began: the cached record (if still there, it is what
    /// the save was applied to in Redis) takes the save's delta, meta and expiry, instead of
    /// being dropped and read again. A fill or write still in flight is kept out, as after an
    /// invalidation.
    pub(crate) fn saved(
        &mut self,
        key: &str,
        delta: &Delta,
        full: &Data,
        meta: Meta,
        until: Instant,
    ) {
        if let Some(mut e) = self.lru.pop(key) {
            self.bytes -= e.bytes;
            e.record.apply(delta, full, meta);
            self.insert(key, e.record, until);
        }
        if let Some(p) = self.pending.get_mut(key) {
            p.version += 1;
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
    fn a_save_moves_the_cached_copy_on_and_keeps_ops_in_flight_out() {
        let mut t = Table::new(1 << 20);
        t.insert("k", record(1), later());
        let fill = t.begin("k");
        let mut delta = Delta::default();
        delta.set.push(("m".into(), serde_json::json!(2)));
        let meta = Meta {
            expire: Some(9),
            ..record(1).meta
        };
        t.saved("k", &delta, &Data::new(), meta, later());
        let got = t.get("k", Instant::now()).unwrap();
        assert_eq!(
            (got.data["n"].clone(), got.data["m"].clone()),
            (1.into(), 2.into())
        );
        assert_eq!(got.meta, meta);
        assert_eq!(t.stats().bytes, entry_bytes("k", &got));
        assert!(
            !t.end("k", fill),
            "a fill in flight may have read the old record"
        );
        // Nothing cached: nothing to move on, and nothing is stored.
        t.saved("other", &delta, &Data::new(), meta, later());
        assert!(t.get("other", Instant::now()).is_none());
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
        let one = entry_bytes("a", &record(1));
        let mut t = Table::new(3 * one);
        for k in ["a", "b", "c"] {
            t.insert(k, record(1), later());
        }
        assert!(t.get("a", Instant::now()).is_some());
        t.insert("d", record(1), later());
        assert!(t.stats().bytes <= 3 * one);
        assert!(
            t.get("b", Instant::now()).is_none(),
            "b was least recently used"
        );
        assert!(t.get("a", Instant::now()).is_some());
        // A record larger than the whole bound is never stored.
        let mut huge = record(1);
        huge.data
            .insert("big".into(), serde_json::json!(vec![0u8; 100]));
        t.insert("huge", huge, later());
        assert!(t.get("huge", Instant::now()).is_none());
        assert_eq!(t.stats().entries, 3);
    }

    #[test]
    fn decoded_values_are_counted_as_they_sit_in_memory() {
        // 30,000 zeros are 60 KB on the wire and over a megabyte decoded.
        let mut r = record(1);
        r.data
            .insert("a".into(), serde_json::json!(vec![0u8; 30_000]));
        assert!(entry_bytes("k", &r) >= 30_000 * std::mem::size_of::<serde_json::Value>());
    }

    #[test]
    fn a_touch_keeps_a_fill_that_read_the_old_expiry_out() {
        let mut t = Table::new(1 << 20);
        t.insert("k", record(1), later());
        let fill = t.begin("k");
        let m = Meta {
            expire: Some(9),
            max_age: MaxAge::Ms(9),
            created: None,
        };
        t.extend("k", m, later());
        assert!(!t.end("k", fill));
        assert_eq!(t.get("k", Instant::now()).unwrap().meta, m);
    }

    #[derive(Debug, Clone)]
    enum Op {
        Begin(usize),
        Invalidate(usize),
        Flush,
        /// Ends the n-th outstanding operation (modulo their number).
        End(usize),
        Insert(usize, usize),
    }

    fn op() -> impl proptest::strategy::Strategy<Value = Op> {
        use proptest::prelude::*;
        prop_oneof![
            (0..3usize).prop_map(Op::Begin),
            (0..3usize).prop_map(Op::Invalidate),
            Just(Op::Flush),
            any::<usize>().prop_map(Op::End),
            (0..3usize, 0..2000usize).prop_map(|(k, n)| Op::Insert(k, n)),
        ]
    }

    proptest::proptest! {
        /// Against a model: an operation ends clean exactly when neither its key was
        /// invalidated nor the table flushed since it began; the bookkeeping empties once every
        /// operation ended; the byte bound always holds.
        #[test]
        fn tickets_match_the_model(ops in proptest::collection::vec(op(), 1..300)) {
            const KEYS: [&str; 3] = ["a", "b", "c"];
            let bound = 4_000;
            let mut t = Table::new(bound);
            // Outstanding: (key, ticket, dirty in the model).
            let mut open: Vec<(usize, Ticket, bool)> = Vec::new();
            for op in ops {
                match op {
                    Op::Begin(k) => open.push((k, t.begin(KEYS[k]), false)),
                    Op::Invalidate(k) => {
                        t.invalidate(KEYS[k]);
                        for o in open.iter_mut().filter(|o| o.0 == k) {
                            o.2 = true;
                        }
                    }
                    Op::Flush => {
                        t.flush();
                        for o in &mut open {
                            o.2 = true;
                        }
                    }
                    Op::End(i) if !open.is_empty() => {
                        let (k, ticket, dirty) = open.remove(i % open.len());
                        proptest::prop_assert_eq!(t.end(KEYS[k], ticket), !dirty);
                    }
                    Op::End(_) => {}
                    Op::Insert(k, n) => {
                        let mut r = record(1);
                        r.data.insert("s".into(), serde_json::json!("x".repeat(n)));
                        t.insert(KEYS[k], r, later());
                    }
                }
                proptest::prop_assert!(t.stats().bytes <= bound);
                let held: usize = t.lru.iter().map(|(_, e)| e.bytes).sum();
                proptest::prop_assert_eq!(held, t.stats().bytes);
            }
            for (k, ticket, dirty) in open.drain(..) {
                proptest::prop_assert_eq!(t.end(KEYS[k], ticket), !dirty);
            }
            proptest::prop_assert!(t.pending.is_empty());
        }
    }

    #[test]
    fn an_entry_past_its_ttl_is_not_served() {
        let mut t = Table::new(1 << 20);
        t.insert("k", record(1), Instant::now());
        assert!(t.get("k", Instant::now()).is_none());
        assert_eq!(t.stats().entries, 0);
        assert_eq!(t.stats().bytes, 0);
    }
}
