//! The client cache ([`RedisStoreBuilder::client_cache`](crate::RedisStoreBuilder::client_cache)):
//! one RESP3 connection with `CLIENT TRACKING ON NOLOOP`, through which every cache fill
//! (`HGETALL` and `PTTL` of the key, pipelined: one round trip) and every touch goes, so Redis
//! remembers which keys this process holds and pushes an `invalidate` for each of them on the
//! same connection as soon as any client changes, deletes or expires it.
//!
//! - A push is handled in the connection's reader as it is read (the push sender is a plain
//!   callback), before any reply that follows it on the wire; with the [`Ticket`]s of the table,
//!   a reply read before a write never outlives that write's invalidation.
//! - Writes this process makes through the pool (saves, destroys, supersedes) drop the key
//!   here as soon as they return (read-your-writes on this process does not wait for Redis's
//!   push); a touch this process made through the tracking connection (`NOLOOP`: no push for
//!   it) moves the cached record's expiry instead, so a `rolling` session keeps its entry.
//! - A lost connection drops the whole table (the pushes it would have carried are gone), and
//!   so does a silent one: a `PING` goes out every [`HEARTBEAT`], and entries are served only
//!   while a `PING` sent less than [`MAX_SILENCE`] ago has been answered. While there is no
//!   tracking connection, loads go through the pool, uncached, and a new connection is tried
//!   at most every [`RECONNECT_EVERY`].

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use redis::aio::MultiplexedConnection;
use redis::{PushInfo, PushKind, Value};
use session_core::{Loaded, Meta, StoreError, Updated};

use crate::cache::{CacheStats, Table};
use crate::connection::{Redis, store_error};
use crate::scripts::{SCRIPTS, updated};
use crate::v1;

/// How often the tracking connection is proved alive.
pub(crate) const HEARTBEAT: Duration = Duration::from_millis(250);
/// Entries are served only while a `PING` sent less than this long ago has been answered: the
/// bound on staleness when the connection goes silent without closing (a network partition).
pub(crate) const MAX_SILENCE: Duration = Duration::from_secs(1);
/// Least time between two attempts to open the tracking connection.
pub(crate) const RECONNECT_EVERY: Duration = Duration::from_secs(1);

/// The client cache. Cheap to clone.
#[derive(Clone)]
pub(crate) struct ClientCache {
    inner: Arc<Inner>,
}

struct Inner {
    table: Mutex<Table>,
    client: redis::Client,
    connect_timeout: Duration,
    command_timeout: Duration,
    /// The tracking connection in use, if any.
    link: Mutex<Option<Link>>,
    /// Serialises connecting.
    connecting: tokio::sync::Mutex<()>,
    /// No new connection before this.
    retry_at: Mutex<Option<Instant>>,
    /// The reference for the [`Link::proven`] times.
    origin: Instant,
}

#[derive(Clone)]
struct Link {
    conn: MultiplexedConnection,
    alive: Arc<AtomicBool>,
    /// When (µs after [`Inner::origin`]) the latest answered `PING` was sent.
    proven: Arc<AtomicU64>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The bytes of a `HGETALL` reply's fields and values.
fn payload(fields: &[(Vec<u8>, Vec<u8>)]) -> usize {
    fields.iter().map(|(f, v)| f.len() + v.len()).sum()
}

impl ClientCache {
    /// A cache of at most `max_bytes`, tracking through connections made by `client` (already
    /// set to RESP3).
    pub(crate) fn new(
        client: redis::Client,
        max_bytes: usize,
        connect_timeout: Duration,
        command_timeout: Duration,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                table: Mutex::new(Table::new(max_bytes)),
                client,
                connect_timeout,
                command_timeout,
                link: Mutex::new(None),
                connecting: tokio::sync::Mutex::new(()),
                retry_at: Mutex::new(None),
                origin: Instant::now(),
            }),
        }
    }

    pub(crate) fn stats(&self) -> CacheStats {
        lock(&self.inner.table).stats()
    }

    /// `key` was written by this process through the pool: drop it.
    pub(crate) fn invalidate(&self, key: &str) {
        lock(&self.inner.table).invalidate(key);
    }

    /// Loads `key` from the cache, else through the tracking connection (and keeps it), else
    /// through the pool.
    pub(crate) async fn load(&self, db: &Redis, key: &str) -> Result<Loaded, StoreError> {
        let Some(link) = self.link().await else {
            lock(&self.inner.table).missed();
            return v1::load(db, key).await;
        };
        let now = Instant::now();
        let ticket = {
            let mut table = lock(&self.inner.table);
            if self.inner.is_fresh(&link, now)
                && let Some(record) = table.get(key, now)
            {
                return Ok(Loaded::Live(record));
            }
            table.missed();
            table.begin(key)
        };
        let mut conn = link.conn.clone();
        let mut pipe = redis::pipe();
        pipe.cmd("HGETALL").arg(key).cmd("PTTL").arg(key);
        let reply = tokio::time::timeout(
            self.inner.command_timeout,
            pipe.query_async::<(Vec<(Vec<u8>, Vec<u8>)>, i64)>(&mut conn),
        )
        .await;
        match reply {
            Ok(Ok((fields, pttl))) => {
                let bytes = payload(&fields);
                let loaded = v1::decode(fields);
                let mut table = lock(&self.inner.table);
                let clean = table.end(key, ticket);
                if clean
                    && pttl > 0
                    && link.alive.load(Ordering::Acquire)
                    && let Ok(Loaded::Live(record)) = &loaded
                {
                    let until = now + Duration::from_millis(pttl.unsigned_abs());
                    table.insert(key, record.clone(), until, bytes);
                }
                loaded
            }
            Ok(Err(e)) => {
                let broken = e.is_io_error() || e.is_connection_dropped() || e.is_timeout();
                {
                    let mut table = lock(&self.inner.table);
                    table.end(key, ticket);
                    if broken {
                        self.inner.drop_link(&link, &mut table);
                    }
                }
                if !broken {
                    return Err(store_error(&e));
                }
                v1::load(db, key).await
            }
            Err(_) => {
                let mut table = lock(&self.inner.table);
                table.end(key, ticket);
                self.inner.drop_link(&link, &mut table);
                Err(StoreError::Timeout(self.inner.command_timeout))
            }
        }
    }

    /// Extends `key` through the tracking connection (no push for it comes back), moving the
    /// cached record's expiry; without a connection, through the pool.
    pub(crate) async fn touch(
        &self,
        db: &Redis,
        key: &str,
        meta: &Meta,
        ttl_ms: u64,
    ) -> Result<Updated, StoreError> {
        let Some(link) = self.link().await else {
            let done = v1::touch(db, key, meta, ttl_ms).await;
            self.invalidate(key);
            return done;
        };
        let started = Instant::now();
        let ticket = lock(&self.inner.table).begin(key);
        let mut conn = link.conn.clone();
        let mut inv = SCRIPTS.v1_touch.key(key);
        inv.arg(ttl_ms).arg(v1::meta_field(meta));
        let reply = tokio::time::timeout(
            self.inner.command_timeout,
            inv.invoke_async::<i64>(&mut conn),
        )
        .await;
        let broken = {
            let mut table = lock(&self.inner.table);
            let clean = table.end(key, ticket);
            match &reply {
                Ok(Ok(code)) => {
                    if clean && updated(*code) == Updated::Updated {
                        table.extend(key, *meta, started + Duration::from_millis(ttl_ms));
                    } else {
                        table.invalidate(key);
                    }
                    false
                }
                Ok(Err(e)) => {
                    table.invalidate(key);
                    let broken = e.is_io_error() || e.is_connection_dropped();
                    if broken || e.is_timeout() {
                        self.inner.drop_link(&link, &mut table);
                    }
                    broken
                }
                Err(_) => {
                    table.invalidate(key);
                    self.inner.drop_link(&link, &mut table);
                    false
                }
            }
        };
        match reply {
            Ok(Ok(code)) => Ok(updated(code)),
            // A touch is idempotent: once more through the pool.
            Ok(Err(_)) if broken => v1::touch(db, key, meta, ttl_ms).await,
            Ok(Err(e)) if e.is_timeout() => Err(StoreError::Timeout(self.inner.command_timeout)),
            Ok(Err(e)) => Err(store_error(&e)),
            Err(_) => Err(StoreError::Timeout(self.inner.command_timeout)),
        }
    }

    /// The tracking connection, opening one if there is none (at most every
    /// [`RECONNECT_EVERY`]); `None` when Redis can't be reached.
    async fn link(&self) -> Option<Link> {
        if let Some(link) = self.inner.current() {
            return Some(link);
        }
        if lock(&self.inner.retry_at).is_some_and(|at| Instant::now() < at) {
            return None;
        }
        let _one = self.inner.connecting.lock().await;
        if let Some(link) = self.inner.current() {
            return Some(link);
        }
        match tokio::time::timeout(self.inner.connect_timeout, self.inner.connect()).await {
            Ok(Ok(link)) => {
                *lock(&self.inner.retry_at) = None;
                *lock(&self.inner.link) = Some(link.clone());
                tokio::spawn(heartbeat(Arc::downgrade(&self.inner), link.clone()));
                Some(link)
            }
            Ok(Err(e)) => {
                tracing::debug!(target: "session::redis", kind = ?e.kind(), "client cache: no tracking connection");
                *lock(&self.inner.retry_at) = Some(Instant::now() + RECONNECT_EVERY);
                None
            }
            Err(_) => {
                tracing::debug!(target: "session::redis", "client cache: connecting timed out");
                *lock(&self.inner.retry_at) = Some(Instant::now() + RECONNECT_EVERY);
                None
            }
        }
    }
}

impl Inner {
    fn current(&self) -> Option<Link> {
        lock(&self.link)
            .as_ref()
            .filter(|l| l.alive.load(Ordering::Acquire))
            .cloned()
    }

    fn micros(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.origin).as_micros()).unwrap_or(u64::MAX)
    }

    /// Whether `link` answered a `PING` sent less than [`MAX_SILENCE`] before `now`.
    fn is_fresh(&self, link: &Link, now: Instant) -> bool {
        link.alive.load(Ordering::Acquire)
            && self
                .micros(now)
                .saturating_sub(link.proven.load(Ordering::Acquire))
                < u64::try_from(MAX_SILENCE.as_micros()).unwrap_or(u64::MAX)
    }

    /// Gives up `link`: no entry it filled is served again.
    fn drop_link(&self, link: &Link, table: &mut Table) {
        if link.alive.swap(false, Ordering::AcqRel) {
            table.flush();
        }
    }

    async fn connect(self: &Arc<Self>) -> Result<Link, redis::RedisError> {
        let alive = Arc::new(AtomicBool::new(true));
        let inner = Arc::downgrade(self);
        let flag = Arc::clone(&alive);
        let on_push = move |info: PushInfo| -> Result<(), std::convert::Infallible> {
            if let Some(inner) = inner.upgrade() {
                inner.pushed(info, &flag);
            }
            Ok(())
        };
        let config = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.connect_timeout))
            .set_response_timeout(Some(self.command_timeout))
            .set_push_sender(on_push);
        let sent = Instant::now();
        let mut conn = self
            .client
            .get_multiplexed_async_connection_with_config(&config)
            .await?;
        redis::cmd("CLIENT")
            .arg("TRACKING")
            .arg("ON")
            .arg("NOLOOP")
            .query_async::<()>(&mut conn)
            .await?;
        // Whatever a previous connection filled is gone with it.
        lock(&self.table).flush();
        Ok(Link {
            conn,
            alive,
            proven: Arc::new(AtomicU64::new(self.micros(sent))),
        })
    }

    /// A push from Redis on the tracking connection whose flag is `alive`.
    fn pushed(&self, info: PushInfo, alive: &AtomicBool) {
        match info.kind {
            PushKind::Invalidate => {
                let mut table = lock(&self.table);
                for v in info.data {
                    invalidate_all(&mut table, v);
                }
            }
            PushKind::Disconnection if alive.swap(false, Ordering::AcqRel) => {
                lock(&self.table).flush();
            }
            _ => {}
        }
    }
}

/// Applies an `invalidate` push's payload: the keys, or nil for "everything" (`FLUSHALL`, or
/// Redis dropping its tracking table).
fn invalidate_all(table: &mut Table, v: Value) {
    match v {
        Value::Nil => table.flush(),
        Value::Array(keys) | Value::Set(keys) => {
            for k in keys {
                invalidate_all(table, k);
            }
        }
        // A key that is not UTF-8 is not one this store wrote: nothing is cached under it.
        Value::BulkString(k) => {
            if let Ok(k) = std::str::from_utf8(&k) {
                table.invalidate(k);
            }
        }
        Value::SimpleString(k) => table.invalidate(&k),
        _ => {}
    }
}

/// Proves `link` alive every [`HEARTBEAT`] until it fails or the store is gone.
async fn heartbeat(inner: Weak<Inner>, link: Link) {
    let mut every = tokio::time::interval(HEARTBEAT);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        let Some(strong) = inner.upgrade() else {
            return;
        };
        if !link.alive.load(Ordering::Acquire) {
            return;
        }
        let sent = Instant::now();
        let mut conn = link.conn.clone();
        let timeout = strong.command_timeout.min(MAX_SILENCE);
        // The store is not kept alive while the PING waits.
        drop(strong);
        let ok = matches!(
            tokio::time::timeout(timeout, redis::cmd("PING").query_async::<()>(&mut conn)).await,
            Ok(Ok(()))
        );
        let Some(strong) = inner.upgrade() else {
            return;
        };
        if ok {
            link.proven.fetch_max(strong.micros(sent), Ordering::AcqRel);
        } else {
            tracing::debug!(target: "session::redis", "client cache: tracking connection silent; dropping the cache");
            strong.drop_link(&link, &mut lock(&strong.table));
            return;
        }
    }
}
