//! The client cache on Redis Cluster: one tracking connection per master, each with a table of
//! its own, and a read fence per key that also proves the node still serves the key.
//!
//! - **Routing.** The cache keeps the cluster's slot map (`CLUSTER SLOTS`, read through the
//!   cluster connection when the cache starts and again after any redirect) and sends a key's
//!   fill (`HGETALL` and `PTTL`, pipelined) on the tracking connection of the master that
//!   serves its slot, so that master tracks the key for this process. A fill answered `MOVED`
//!   or `ASK` (the slot moved, or is moving) reads through the cluster connection instead,
//!   uncached, and refreshes the map.
//! - **Tables per connection.** A record is cached in the table of the connection it was read
//!   on, and served only after a fence on that same connection: `EXISTS key`, sent after the
//!   load began. Its reply comes after every invalidation that master queued before it (the
//!   push ordering of one connection, as on one server), and it fails with `MOVED` or `ASK`
//!   once the master no longer serves the key: after a slot migration moved it, or a failover
//!   turned the master into a replica. A key cached from one master is never served through
//!   another's fence. `0` (the key is gone) or a redirect is a miss, read through the cluster
//!   connection; a fence that fails or stalls gives the connection up.
//! - **Losing a connection** drops its table (the pushes it would have carried are gone); a
//!   connection is proved alive with a `PING` every [`HEARTBEAT`] and is used only while one sent
//!   less than [`MAX_SILENCE`] ago came back. New connections are opened in the background, at
//!   most every [`RECONNECT_EVERY`] per node: no request waits for one.
//! - **Writes** go through the cluster connection, as without the cache; each drops the key
//!   from this process's tables as it returns (the push from the master comes too).
//! - **Memory**: the bound is split evenly between the masters known when each connection
//!   opens.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use redis::aio::MultiplexedConnection;
use redis::{ConnectionAddr, PushInfo, PushKind, RedisError, Value};
use session_core::store::{Loaded, StoreError};

use crate::cache::{CacheStats, Claim, Table};
use crate::connection::{Redis, breaks_connection, store_error};
use crate::tracking::{
    FENCE_TIMEOUT, HEARTBEAT, MAX_SILENCE, RECONNECT_EVERY, fill_read, invalidate_all, keep,
    micros_since, proven_lately,
};
use crate::v1;

/// Slots in a Redis Cluster.
const SLOTS: u16 = 16384;
/// Least time between two reads of the slot map.
const REMAP_EVERY: Duration = Duration::from_millis(200);

/// The client cache of a Redis Cluster store. Cheap to clone.
#[derive(Clone)]
pub(crate) struct ClusterCache {
    inner: Arc<Inner>,
}

struct Inner {
    /// The first seed's connection settings (RESP3); each node's address replaces its own.
    base: redis::ConnectionInfo,
    max_bytes: usize,
    connect_timeout: Duration,
    command_timeout: Duration,
    map: Mutex<SlotMap>,
    /// Tracking connections by node address.
    links: Mutex<HashMap<String, Link>>,
    /// Per node address: a connect under way, or no new one before this instant.
    connects: Mutex<HashMap<String, Option<Instant>>>,
    /// Counters of the tables of connections given up.
    retired: Mutex<CacheStats>,
    fences: AtomicU64,
    origin: Instant,
}

#[derive(Default)]
struct SlotMap {
    /// `(first slot, last slot, master address)`, as `CLUSTER SLOTS` lists them.
    ranges: Vec<(u16, u16, String)>,
    masters: usize,
    /// The last read, or one under way.
    read_at: Option<Instant>,
}

#[derive(Clone)]
struct Link {
    conn: MultiplexedConnection,
    table: Arc<Mutex<Table>>,
    alive: Arc<AtomicBool>,
    /// When (µs after [`Inner::origin`]) the latest answered `PING` was sent.
    proven: Arc<AtomicU64>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The cluster slot of a key: CRC16 (XMODEM) of its hash tag or of the whole key.
fn slot(key: &[u8]) -> u16 {
    let tag = key
        .iter()
        .position(|b| *b == b'{')
        .and_then(|open| {
            let rest = &key[open + 1..];
            let close = rest.iter().position(|b| *b == b'}')?;
            (close > 0).then(|| &rest[..close])
        })
        .unwrap_or(key);
    crc16::State::<crc16::XMODEM>::calculate(tag) % SLOTS
}

/// Whether the cluster redirected a command (the slot moved or is moving), or is down.
fn redirected(e: &RedisError) -> bool {
    matches!(e.code(), Some("MOVED" | "ASK" | "TRYAGAIN" | "CLUSTERDOWN"))
}

impl ClusterCache {
    /// A cache of at most `max_bytes`, with tracking connections made like `base` (RESP3).
    pub(crate) fn new(
        base: redis::ConnectionInfo,
        max_bytes: usize,
        connect_timeout: Duration,
        command_timeout: Duration,
    ) -> Self {
        let settings = base
            .redis_settings()
            .clone()
            .set_protocol(redis::ProtocolVersion::RESP3);
        Self {
            inner: Arc::new(Inner {
                base: base.set_redis_settings(settings),
                max_bytes,
                connect_timeout,
                command_timeout,
                map: Mutex::new(SlotMap::default()),
                links: Mutex::new(HashMap::new()),
                connects: Mutex::new(HashMap::new()),
                retired: Mutex::new(CacheStats::default()),
                fences: AtomicU64::new(0),
                origin: Instant::now(),
            }),
        }
    }

    pub(crate) fn stats(&self) -> CacheStats {
        let links: Vec<Link> = lock(&self.inner.links).values().cloned().collect();
        let mut s = *lock(&self.inner.retired);
        s.tracking = false;
        for l in &links {
            let t = lock(&l.table).stats();
            add(&mut s, &t);
            s.tracking |= l.alive.load(Ordering::Acquire);
        }
        s.fences = self.inner.fences.load(Ordering::Relaxed);
        s
    }

    /// `key` was written by this process: drop it from every table.
    /// On every write: no copy of the links (the lock order is links, then a table).
    pub(crate) fn invalidate(&self, key: &str) {
        for l in lock(&self.inner.links).values() {
            lock(&l.table).invalidate(key);
        }
    }

    /// Loads `key`: from the table of the tracking connection of its master once a fence on
    /// that connection proved it current, else read on that connection (and kept), else
    /// through the cluster connection, uncached.
    pub(crate) async fn load(&self, db: &Redis, key: &str) -> Result<Loaded, StoreError> {
        let inner = &self.inner;
        let Some(node) = inner.node_of(key, db) else {
            return inner.uncached(db, key, None).await;
        };
        let Some(link) = inner.link(&node) else {
            return inner.uncached(db, key, None).await;
        };
        let now = Instant::now();
        if lock(&link.table).holds(key, now) {
            inner.fences.fetch_add(1, Ordering::Relaxed);
            let mut conn = link.conn.clone();
            let fence = tokio::time::timeout(
                FENCE_TIMEOUT.min(inner.command_timeout),
                redis::cmd("EXISTS").arg(key).query_async::<i64>(&mut conn),
            )
            .await;
            match fence {
                Ok(Ok(1)) => {
                    if let Some(record) = lock(&link.table).get(key, Instant::now()) {
                        return Ok(Loaded::Live(record));
                    }
                }
                // Gone: its invalidation dropped it already.
                Ok(Ok(_)) => {}
                Ok(Err(e)) if redirected(&e) => {
                    lock(&link.table).invalidate(key);
                    inner.remap(db);
                    return inner.uncached(db, key, Some(&link)).await;
                }
                Ok(Err(_)) | Err(_) => {
                    inner.drop_link(&node, &link);
                    return inner.uncached(db, key, None).await;
                }
            }
        }
        let claim = {
            let mut table = lock(&link.table);
            table.missed();
            Claim::new(&link.table, &mut table, key)
        };
        match fill_read(&link.conn, key, inner.command_timeout).await {
            Ok(Ok((fields, pttl))) => {
                let alive = link.alive.load(Ordering::Acquire);
                keep(&link.table, claim, key, fields, pttl, now, alive)
            }
            Ok(Err(e)) if redirected(&e) => {
                drop(claim);
                inner.remap(db);
                v1::load(db, key).await
            }
            Ok(Err(e)) if !breaks_connection(&e) => Err(store_error(&e)),
            Ok(Err(_)) | Err(_) => {
                drop(claim);
                inner.drop_link(&node, &link);
                v1::load(db, key).await
            }
        }
    }
}

/// Adds the counters of `t` to `s`.
fn add(s: &mut CacheStats, t: &CacheStats) {
    s.entries += t.entries;
    s.bytes += t.bytes;
    s.hits += t.hits;
    s.misses += t.misses;
    s.invalidations += t.invalidations;
    s.flushes += t.flushes;
}

impl Inner {
    /// A load through the cluster connection, counted as a miss (in `link`'s table, if any).
    async fn uncached(
        &self,
        db: &Redis,
        key: &str,
        link: Option<&Link>,
    ) -> Result<Loaded, StoreError> {
        match link {
            Some(l) => lock(&l.table).missed(),
            None => {
                let mut retired = lock(&self.retired);
                retired.misses += 1;
                session_core::telemetry::client_cache(false);
            }
        }
        v1::load(db, key).await
    }

    /// The address of the master serving `key`'s slot, if the map is known; reads the map in
    /// the background when it isn't.
    fn node_of(self: &Arc<Self>, key: &str, db: &Redis) -> Option<String> {
        let s = slot(key.as_bytes());
        let found = {
            let map = lock(&self.map);
            map.ranges
                .iter()
                .find(|(first, last, _)| (*first..=*last).contains(&s))
                .map(|r| r.2.clone())
        };
        if found.is_none() {
            self.remap(db);
        }
        found
    }

    /// Reads the slot map again in the background, at most every [`REMAP_EVERY`] (after a
    /// redirect, or while a key's slot has no known master: a failed read is tried again).
    /// Connections to nodes that are no longer masters are given up, and the bound is split
    /// again between the masters.
    fn remap(self: &Arc<Self>, db: &Redis) {
        {
            let mut map = lock(&self.map);
            match map.read_at {
                Some(at) if at.elapsed() < REMAP_EVERY => return,
                _ => map.read_at = Some(Instant::now()),
            }
        }
        let (inner, db) = (Arc::downgrade(self), db.clone());
        tokio::spawn(async move {
            let ranges = db.cluster_slots().await.unwrap_or_default();
            let Some(inner) = inner.upgrade() else { return };
            if ranges.is_empty() {
                return;
            }
            let mut masters: Vec<String> = ranges.iter().map(|r| r.2.clone()).collect();
            masters.sort();
            masters.dedup();
            {
                let mut map = lock(&inner.map);
                map.masters = masters.len();
                map.ranges = ranges;
            }
            let links: Vec<(String, Link)> = lock(&inner.links)
                .iter()
                .map(|(n, l)| (n.clone(), l.clone()))
                .collect();
            let share = inner.max_bytes / masters.len();
            for (node, link) in links {
                if masters.binary_search(&node).is_ok() {
                    lock(&link.table).bound(share);
                } else {
                    inner.drop_link(&node, &link);
                }
            }
        });
    }

    /// The tracking connection to `node`, if one is up and proved alive lately; else starts
    /// opening one in the background (at most every [`RECONNECT_EVERY`]).
    fn link(self: &Arc<Self>, node: &str) -> Option<Link> {
        if let Some(l) = lock(&self.links).get(node).cloned() {
            if self.is_fresh(&l) {
                return Some(l);
            }
            if !l.alive.load(Ordering::Acquire) {
                self.drop_link(node, &l);
            } else {
                return None;
            }
        }
        {
            let mut connects = lock(&self.connects);
            match connects.get(node) {
                Some(None) => return None, // under way
                Some(Some(at)) if Instant::now() < *at => return None,
                _ => connects.insert(node.to_owned(), None),
            };
        }
        let (inner, node) = (Arc::clone(self), node.to_owned());
        tokio::spawn(async move {
            let made = tokio::time::timeout(inner.connect_timeout, inner.connect(&node)).await;
            let retry_at = match made {
                Ok(Ok(link)) => {
                    lock(&inner.links).insert(node.clone(), link.clone());
                    tokio::spawn(prove(Arc::downgrade(&inner), node.clone(), link));
                    None
                }
                _ => {
                    tracing::debug!(target: "session::redis", "client cache: no tracking connection to a cluster node");
                    Some(Instant::now() + RECONNECT_EVERY)
                }
            };
            match retry_at {
                Some(at) => lock(&inner.connects).insert(node, Some(at)),
                None => lock(&inner.connects).remove(&node),
            };
        });
        None
    }

    fn micros(&self, at: Instant) -> u64 {
        micros_since(self.origin, at)
    }

    fn is_fresh(&self, link: &Link) -> bool {
        link.alive.load(Ordering::Acquire)
            && proven_lately(self.origin, &link.proven, Instant::now())
    }

    /// Gives `link` (to `node`) up: its table is dropped.
    fn drop_link(&self, node: &str, link: &Link) {
        link.alive.store(false, Ordering::Release);
        let mut links = lock(&self.links);
        if links
            .get(node)
            .is_some_and(|l| Arc::ptr_eq(&l.table, &link.table))
        {
            links.remove(node);
            drop(links);
            let mut table = lock(&link.table);
            table.flush();
            add(&mut lock(&self.retired), &table.stats());
        }
    }

    async fn connect(self: &Arc<Self>, node: &str) -> Result<Link, RedisError> {
        let (host, port) = node
            .rsplit_once(':')
            .and_then(|(h, p)| Some((h.to_owned(), p.parse::<u16>().ok()?)))
            .ok_or_else(|| RedisError::from((redis::ErrorKind::Client, "bad node address")))?;
        let masters = lock(&self.map).masters.max(1);
        let table = Arc::new(Mutex::new(Table::new(self.max_bytes / masters)));
        let alive = Arc::new(AtomicBool::new(true));
        let (pushes, flag) = (Arc::downgrade(&table), Arc::clone(&alive));
        let on_push = move |info: PushInfo| -> Result<(), std::convert::Infallible> {
            if let Some(table) = pushes.upgrade() {
                pushed(&table, info, &flag);
            }
            Ok(())
        };
        let config = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.connect_timeout))
            .set_response_timeout(Some(self.command_timeout))
            .set_push_sender(on_push);
        let info = self.base.clone().set_addr(ConnectionAddr::Tcp(host, port));
        let sent = Instant::now();
        let mut conn = redis::Client::open(info)?
            .get_multiplexed_async_connection_with_config(&config)
            .await?;
        redis::cmd("CLIENT")
            .arg("TRACKING")
            .arg("ON")
            .query_async::<()>(&mut conn)
            .await?;
        Ok(Link {
            conn,
            table,
            alive,
            proven: Arc::new(AtomicU64::new(self.micros(sent))),
        })
    }
}

/// A push on a tracking connection whose table is `table` and whose flag is `alive`.
fn pushed(table: &Mutex<Table>, info: PushInfo, alive: &AtomicBool) {
    match info.kind {
        PushKind::Invalidate => {
            let mut table = lock(table);
            for v in info.data {
                invalidate_all(&mut table, v);
            }
        }
        PushKind::Disconnection if alive.swap(false, Ordering::AcqRel) => lock(table).flush(),
        _ => {}
    }
}

/// Proves the connection to `node` alive every [`HEARTBEAT`] until it fails or goes silent
/// (then gives it up) or the store is gone.
async fn prove(inner: Weak<Inner>, node: String, link: Link) {
    loop {
        tokio::time::sleep(HEARTBEAT).await;
        let Some(strong) = inner.upgrade() else {
            return;
        };
        if !link.alive.load(Ordering::Acquire) {
            strong.drop_link(&node, &link);
            return;
        }
        let timeout = strong.command_timeout.min(MAX_SILENCE);
        drop(strong);
        let sent = Instant::now();
        let mut conn = link.conn.clone();
        let ok = matches!(
            tokio::time::timeout(timeout, redis::cmd("PING").query_async::<Value>(&mut conn)).await,
            Ok(Ok(_))
        );
        let Some(strong) = inner.upgrade() else {
            return;
        };
        if ok {
            link.proven.fetch_max(strong.micros(sent), Ordering::AcqRel);
        } else {
            strong.drop_link(&node, &link);
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::slot;

    #[test]
    fn slots_match_redis() {
        // Values from `CLUSTER KEYSLOT` on Redis 7.
        assert_eq!(slot(b"foo"), 12182);
        assert_eq!(slot(b"bar"), 5061);
        assert_eq!(slot(b"{user1000}.following"), slot(b"{user1000}.followers"));
        assert_eq!(slot(b"{user1000}.following"), slot(b"user1000"));
        // An empty tag hashes the whole key.
        assert_eq!(slot(b"foo{}{bar}"), 8363);
    }
}
