//! The client cache ([`RedisStoreBuilder::client_cache`](crate::RedisStoreBuilder::client_cache)):
//! one RESP3 connection with `CLIENT TRACKING ON NOLOOP`, through which every cache fill
//! (`HGETALL` and `PTTL` of the key, pipelined: one round trip), every touch and, while it is
//! up, every other command of the store goes ([`Preferred`](crate::connection::Preferred)), so
//! Redis remembers which keys this process holds and pushes an `invalidate` for each of them on
//! the same connection as soon as any *other* client changes, deletes or expires it. A
//! request's load and write share the connection (batched with other requests' as on the
//! pool's one connection), and this process's own writes cost no push back (`NOLOOP`).
//!
//! - A push is handled in the connection's reader as it is read (the push sender is a plain
//!   callback), before any reply that follows it on the wire; with the [`Ticket`]s of the table,
//!   a reply read before a write never outlives that write's invalidation.
//! - A cached record is served only once a read fence sent after the load began has come back
//!   ([`crate::fence`]): the reader may lag behind the socket under load, and the fence's reply
//!   comes after every push queued before it. A fence that fails, or doesn't come back within
//!   [`FENCE_TIMEOUT`], gives the connection up, and the load goes through the pool.
//! - Writes this process makes (destroys, supersedes, saves through the pool; `NOLOOP` sends no
//!   push for them) drop the key here as soon as they return; a touch this process made through
//!   the tracking connection moves the cached record's expiry instead, so a `rolling` session
//!   keeps its entry, and a save made there applies its delta to the cached record
//!   ([`save`]). A write drops the key from the writer's tracking table too, so the touch and
//!   save scripts end with a read of the key: Redis goes on tracking it for this connection.
//! - A lost connection drops the whole table (the pushes it would have carried are gone), and
//!   so does a silent one: the fences' `PING`s (one goes out at least every [`HEARTBEAT`]) must
//!   come back within [`MAX_SILENCE`], and the connection is used only while one sent less than
//!   that long ago has. While there is no
//!   tracking connection (or with one not proved alive lately), loads go through the pool,
//!   uncached, and a new connection is opened in the background, at most every
//!   [`RECONNECT_EVERY`]: no request waits for a connect.
//! - Every operation's ticket ends exactly once, also when the request is dropped half-way
//!   ([`Claim`]), so nothing is left behind in the table's bookkeeping.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use redis::aio::MultiplexedConnection;
use redis::{PushInfo, PushKind, Value};
use session_core::store::{Loaded, Meta, StoreError, Updated};

use crate::cache::{CacheStats, Claim, Table};
use crate::connection::{Redis, breaks_connection as broken, store_error};
use crate::fence::Fences;
use crate::pool::Target;
use crate::scripts::{SCRIPTS, updated};
use crate::v1;

mod save;

/// How often the tracking connection is proved alive.
pub(crate) const HEARTBEAT: Duration = Duration::from_millis(250);
/// Entries are served only while a `PING` sent less than this long ago has been answered: the
/// bound on staleness when the connection goes silent without closing (a network partition).
pub(crate) const MAX_SILENCE: Duration = Duration::from_secs(1);
/// Least time between two attempts to open the tracking connection.
pub(crate) const RECONNECT_EVERY: Duration = Duration::from_secs(1);
/// The most times the prover lets the other ready tasks run before it sends a fence `PING`
/// while loads keep asking for one: they join the fence instead of needing the next one.
const MAX_FENCE_YIELDS: usize = 8;
/// The longest a load waits for its read fence (or the command timeout, if shorter); past it,
/// the tracking connection is given up and the load goes through the pool.
pub(crate) const FENCE_TIMEOUT: Duration = Duration::from_millis(250);

/// The client cache. Cheap to clone.
#[derive(Clone)]
pub(crate) struct ClientCache {
    inner: Arc<Inner>,
}

struct Inner {
    table: Mutex<Table>,
    /// Where the tracking connection goes (RESP3: the pushes need it).
    target: Target,
    connect_timeout: Duration,
    command_timeout: Duration,
    /// The tracking connection in use, if any.
    link: Mutex<Option<Link>>,
    /// A connect is under way (in the background: no request waits for it).
    connecting: AtomicBool,
    /// No new connection before this.
    retry_at: Mutex<Option<Instant>>,
    /// Whether the latest connect failed (the first failure of a run is logged as a warning).
    failing: AtomicBool,
    /// The reference for the [`Link::proven`] times.
    origin: Instant,
    /// Read fences sent (`PING`s that loads waited for).
    fences: AtomicU64,
}

#[derive(Clone)]
struct Link {
    conn: MultiplexedConnection,
    /// The Sentinel generation it was made in: a change of master gives it up.
    generation: u64,
    alive: Arc<AtomicBool>,
    /// Raised by the store's other commands on this connection when one finds it dead.
    broken: Arc<AtomicBool>,
    /// When (µs after [`Inner::origin`]) the latest answered `PING` was sent.
    proven: Arc<AtomicU64>,
    /// The read fences of this connection.
    fences: Arc<Fences>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl ClientCache {
    /// A cache of at most `max_bytes`, tracking through connections to `target` (set to
    /// RESP3).
    pub(crate) fn new(
        target: Target,
        max_bytes: usize,
        connect_timeout: Duration,
        command_timeout: Duration,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                table: Mutex::new(Table::new(max_bytes)),
                target,
                connect_timeout,
                command_timeout,
                link: Mutex::new(None),
                connecting: AtomicBool::new(false),
                retry_at: Mutex::new(None),
                failing: AtomicBool::new(false),
                origin: Instant::now(),
                fences: AtomicU64::new(0),
            }),
        }
    }

    pub(crate) fn stats(&self) -> CacheStats {
        CacheStats {
            tracking: self.inner.current().is_some(),
            fences: self.inner.fences.load(Ordering::Relaxed),
            ..lock(&self.inner.table).stats()
        }
    }

    /// `key` was written by this process through the pool: drop it.
    pub(crate) fn invalidate(&self, key: &str) {
        lock(&self.inner.table).invalidate(key);
    }

    /// Loads `key` from the cache once a read fence sent after the load began is answered
    /// ([`crate::fence`]), else through the tracking connection (and keeps it), else (no
    /// connection, one not proved alive lately, or one that failed or stalled, its fence
    /// included) through the pool, uncached.
    pub(crate) async fn load(&self, db: &Redis, key: &str) -> Result<Loaded, StoreError> {
        let inner = &*self.inner;
        let now = Instant::now();
        let link = self.link().filter(|l| inner.is_fresh(l, now));
        let Some(link) = link else {
            lock(&inner.table).missed();
            return v1::load(db, key).await;
        };
        if lock(&inner.table).holds(key, now) {
            let timeout = FENCE_TIMEOUT.min(inner.command_timeout);
            if !link.fences.wait(timeout).await {
                // Silent, failed or reconnecting: this load goes to Redis, and so do the next
                // ones until a new tracking connection is up.
                {
                    let mut table = lock(&inner.table);
                    inner.drop_link(&link, &mut table);
                    table.missed();
                }
                return v1::load(db, key).await;
            }
        }
        let claim = {
            let mut table = lock(&inner.table);
            if let Some(record) = table.get(key, Instant::now()) {
                return Ok(Loaded::Live(record));
            }
            table.missed();
            Claim::new(&inner.table, &mut table, key)
        };
        let sent = link.fences.send();
        let reply = fill_read(&link.conn, key, inner.command_timeout).await;
        match reply {
            Ok(Ok((fields, pttl))) => {
                sent.answered();
                let alive = link.alive.load(Ordering::Acquire);
                keep(&inner.table, claim, key, fields, pttl, now, alive)
            }
            Ok(Err(e)) if !broken(&e) => Err(store_error(&e)),
            // The tracking connection failed or stalled: given up, and the load goes through
            // the pool (bounded by the pool's own timeouts).
            Ok(Err(_)) | Err(_) => {
                inner.drop_link(&link, &mut lock(&inner.table));
                drop(claim);
                v1::load(db, key).await
            }
        }
    }

    /// Runs a write script that ends with a read of `key` on the tracking connection (a read
    /// fence too; `NOLOOP`: no push comes back for it). Then, under the table's lock: when the
    /// script answered and nothing else changed the key meanwhile, `keep` moves the cached copy
    /// on (it answers `false` to drop it instead); otherwise the key is dropped, and a failed
    /// or stalled connection is given up. The reply, or `Err` when it did not come in time.
    async fn write_tracked(
        &self,
        link: &Link,
        key: &str,
        inv: &redis::ScriptInvocation<'_>,
        keep: impl FnOnce(&mut Table, i64) -> bool,
    ) -> Result<redis::RedisResult<i64>, tokio::time::error::Elapsed> {
        let inner = &*self.inner;
        let claim = Claim::new(&inner.table, &mut lock(&inner.table), key);
        let mut conn = link.conn.clone();
        let sent = link.fences.send();
        let reply = tokio::time::timeout(inner.command_timeout, inv.invoke_async(&mut conn)).await;
        if let Ok(Ok(_)) = reply {
            sent.answered();
        }
        let mut table = lock(&inner.table);
        let clean = claim.end(&mut table);
        match &reply {
            Ok(Ok(code)) if clean && keep(&mut table, *code) => {}
            Ok(Ok(_)) => table.invalidate(key),
            Ok(Err(e)) if !broken(e) => table.invalidate(key),
            Ok(Err(_)) | Err(_) => {
                table.invalidate(key);
                inner.drop_link(link, &mut table);
            }
        }
        reply
    }

    /// Extends `key` through the tracking connection (no push for it comes back, and the
    /// script's final read keeps the key tracked), moving the cached record's expiry; without
    /// a connection, through the pool.
    pub(crate) async fn touch(
        &self,
        db: &Redis,
        key: &str,
        meta: &Meta,
        ttl_ms: u64,
    ) -> Result<Updated, StoreError> {
        let Some(link) = self.link() else {
            let done = v1::touch(db, key, meta, ttl_ms).await;
            self.invalidate(key);
            return done;
        };
        let until = Instant::now() + Duration::from_millis(ttl_ms);
        let mut inv = SCRIPTS.v1_touch.key(key);
        inv.arg(ttl_ms).arg(v1::meta_field(meta));
        let reply = self
            .write_tracked(&link, key, &inv, |table, code| {
                let live = updated(code) == Updated::Updated;
                if live {
                    table.extend(key, *meta, until);
                }
                live
            })
            .await;
        let retry = reply.is_err() || matches!(&reply, Ok(Err(e)) if broken(e));
        match reply {
            Ok(Ok(code)) => Ok(updated(code)),
            Ok(Err(e)) if !retry => Err(store_error(&e)),
            // The tracking connection failed or stalled; a touch is idempotent: once more
            // through the pool.
            _ => {
                let done = v1::touch(db, key, meta, ttl_ms).await;
                self.invalidate(key);
                done
            }
        }
    }

    /// The tracking connection; without one, starts opening one in the background (at most
    /// every [`RECONNECT_EVERY`]) and returns `None`: no request ever waits for a connect.
    fn link(&self) -> Option<Link> {
        // While a Sentinel failover is under way nothing is served or sent through it, and no
        // connection is opened (it would reach the master being replaced): calls go to the
        // pool, whose gate fails them.
        if let Target::Sentinel(s, _) = &self.inner.target
            && s.closed()
        {
            return None;
        }
        if let Some(link) = self.inner.current() {
            return Some(link);
        }
        if lock(&self.inner.retry_at).is_some_and(|at| Instant::now() < at) {
            return None;
        }
        if self.inner.connecting.swap(true, Ordering::AcqRel) {
            return None;
        }
        let inner = Arc::clone(&self.inner);
        tokio::spawn(async move {
            let made = tokio::time::timeout(inner.connect_timeout, inner.connect()).await;
            match made {
                Ok(Ok(link)) => {
                    *lock(&inner.retry_at) = None;
                    inner.failing.store(false, Ordering::Release);
                    *lock(&inner.link) = Some(link.clone());
                    tokio::spawn(prove(Arc::downgrade(&inner), link));
                }
                failed => {
                    let why = match failed {
                        Ok(Err(e)) => format!("{:?}", e.kind()),
                        _ => "timed out".to_owned(),
                    };
                    // The first failure of a run is worth a warning: a Redis without
                    // `CLIENT TRACKING` (older than 6) or an ACL that refuses it would
                    // otherwise leave the cache off without a word.
                    if inner.failing.swap(true, Ordering::AcqRel) {
                        tracing::debug!(target: "session::redis", reason = %why, "client cache: no tracking connection");
                    } else {
                        tracing::warn!(target: "session::redis", reason = %why, "client cache: no tracking connection; loads go through the pool, uncached");
                    }
                    *lock(&inner.retry_at) = Some(Instant::now() + RECONNECT_EVERY);
                }
            }
            inner.connecting.store(false, Ordering::Release);
        });
        None
    }
}

impl crate::connection::Preferred for ClientCache {
    /// Every command of the store runs on the tracking connection while it is up and proved
    /// alive lately; else on the pool.
    fn connection(&self) -> Option<crate::connection::PreferredConn> {
        let link = self.link()?;
        self.inner
            .is_fresh(&link, Instant::now())
            .then(|| crate::connection::PreferredConn {
                conn: link.conn.clone(),
                broken: Arc::clone(&link.broken),
                fences: Arc::clone(&link.fences),
            })
    }
}

impl Inner {
    fn current(&self) -> Option<Link> {
        let link = lock(&self.link)
            .as_ref()
            .filter(|l| l.alive.load(Ordering::Acquire))
            .cloned()?;
        if link.broken.load(Ordering::Acquire) || link.generation != self.target.generation() {
            self.drop_link(&link, &mut lock(&self.table));
            return None;
        }
        Some(link)
    }

    fn micros(&self, at: Instant) -> u64 {
        micros_since(self.origin, at)
    }

    /// Whether `link` answered a `PING` sent less than [`MAX_SILENCE`] before `now`.
    fn is_fresh(&self, link: &Link, now: Instant) -> bool {
        let hears = match &self.target {
            Target::Url(_) => true,
            Target::Sentinel(s, _) => s.hears_all(),
        };
        hears && link.alive.load(Ordering::Acquire) && proven_lately(self.origin, &link.proven, now)
    }

    /// Gives up `link`: no entry it filled is served again, and every load waiting for one of
    /// its fences goes to Redis.
    fn drop_link(&self, link: &Link, table: &mut Table) {
        if link.alive.swap(false, Ordering::AcqRel) {
            table.flush();
        }
        link.fences.fail();
        link.fences.close();
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
        let (mut conn, generation) = self.target.connect(&config).await?;
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
            generation,
            alive,
            broken: Arc::new(AtomicBool::new(false)),
            proven: Arc::new(AtomicU64::new(self.micros(sent))),
            fences: Arc::new(Fences::new()),
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
            // The link's fences fail with their `PING`s (the connection is gone).
            PushKind::Disconnection if alive.swap(false, Ordering::AcqRel) => {
                lock(&self.table).flush();
            }
            _ => {}
        }
    }
}

/// A fill's reply: the hash's fields and the key's `PTTL`.
type FillReply = (Vec<(Vec<u8>, Vec<u8>)>, i64);

/// Reads `key` on a tracking connection, so Redis tracks it for this process: `HGETALL` and
/// `PTTL`, pipelined (one round trip), within `timeout`.
pub(crate) async fn fill_read(
    conn: &MultiplexedConnection,
    key: &str,
    timeout: Duration,
) -> Result<redis::RedisResult<FillReply>, tokio::time::error::Elapsed> {
    let mut conn = conn.clone();
    let mut pipe = redis::pipe();
    pipe.cmd("HGETALL").arg(key).cmd("PTTL").arg(key);
    tokio::time::timeout(timeout, pipe.query_async::<FillReply>(&mut conn)).await
}

/// Decodes a fill of `key` begun at `started` and keeps the record in `table` if it is live,
/// has a TTL, its connection is still `alive`, and nothing invalidated the key since `claim`
/// began.
pub(crate) fn keep(
    table: &Mutex<Table>,
    claim: Claim<'_>,
    key: &str,
    fields: Vec<(Vec<u8>, Vec<u8>)>,
    pttl: i64,
    started: Instant,
    alive: bool,
) -> Result<Loaded, StoreError> {
    let loaded = v1::decode(fields);
    let mut table = lock(table);
    if claim.end(&mut table)
        && pttl > 0
        && alive
        && let Ok(Loaded::Live(record)) = &loaded
    {
        let until = started + Duration::from_millis(pttl.unsigned_abs());
        table.insert(key, record.clone(), until);
    }
    loaded
}

/// Microseconds from `origin` to `at`.
pub(crate) fn micros_since(origin: Instant, at: Instant) -> u64 {
    u64::try_from(at.saturating_duration_since(origin).as_micros()).unwrap_or(u64::MAX)
}

/// Whether a `PING` sent less than [`MAX_SILENCE`] before `now` was answered, `proven` holding
/// when (µs after `origin`) the latest answered one was sent.
pub(crate) fn proven_lately(origin: Instant, proven: &AtomicU64, now: Instant) -> bool {
    micros_since(origin, now).saturating_sub(proven.load(Ordering::Acquire))
        < u64::try_from(MAX_SILENCE.as_micros()).unwrap_or(u64::MAX)
}

/// Applies an `invalidate` push's payload: the keys, or nil for "everything" (`FLUSHALL`, or
/// Redis dropping its tracking table).
pub(crate) fn invalidate_all(table: &mut Table, v: Value) {
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

/// Proves `link` alive and answers its read fences: a `PING` as soon as a load waits for a
/// fence (one in flight at a time, serving every load that began before it was sent), and at
/// least every [`HEARTBEAT`]; until the connection fails or goes silent, or the store is gone.
async fn prove(inner: Weak<Inner>, link: Link) {
    let fences = &*link.fences;
    let mut beat_at = Instant::now() + HEARTBEAT;
    loop {
        if !link.alive.load(Ordering::Acquire) {
            fences.fail();
            return;
        }
        if !fences.wanted() && Instant::now() < beat_at {
            let requested = std::pin::pin!(fences.requested());
            let beat = std::pin::pin!(tokio::time::sleep_until(beat_at.into()));
            futures_util::future::select(requested, beat).await;
            continue;
        }
        if fences.wanted() {
            // Let the tasks ready to run go first, as long as loads among them keep asking for
            // a fence: they join this one (one `PING` serves them all). On an idle server the
            // first pass brings nobody and the `PING` goes out at once.
            for _ in 0..MAX_FENCE_YIELDS {
                let asked = fences.asked();
                tokio::task::yield_now().await;
                if fences.asked() == asked {
                    break;
                }
            }
            if !fences.wanted() {
                continue; // another command went out meanwhile and serves them
            }
        }
        let Some(strong) = inner.upgrade() else {
            fences.fail();
            return;
        };
        if fences.wanted() {
            strong.fences.fetch_add(1, Ordering::Relaxed);
        }
        let ping = link.fences.send();
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
            fences.fail();
            return;
        };
        if ok {
            link.proven.fetch_max(strong.micros(sent), Ordering::AcqRel);
            ping.answered();
            beat_at = sent + HEARTBEAT;
        } else {
            tracing::debug!(target: "session::redis", "client cache: tracking connection silent or gone; dropping the cache");
            strong.drop_link(&link, &mut lock(&strong.table));
            drop(ping);
            return;
        }
    }
}
