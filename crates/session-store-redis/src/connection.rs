//! Connections: the pool in use (ours, the app's, or a cluster connection), the handle that
//! runs one command or script under the checkout and command timeouts (retrying once on a
//! dropped connection), and the mapping of Redis errors to store errors.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use redis::cluster_async::ClusterConnection;
use redis::{FromRedisValue, RedisError, Script};
use session_core::store::StoreError;
use session_core::telemetry;

use crate::pool::{Conn, Manager, Server, login_error, login_refused};

/// The pool in use.
#[derive(Clone)]
pub(crate) enum Pool {
    /// Ours: dead connections are detected and replaced, failed connects reported at once
    /// (see `pool` and `session_pool`).
    Own(session_pool::Pool<Manager, Server>),
    /// The app's: its own settings (e.g. `test_on_check_out`) decide how dead connections go.
    Shared(bb8::Pool<bb8_redis::RedisConnectionManager>),
    /// A Redis Cluster: one multiplexed cluster connection (it follows `MOVED`/`ASK`, refreshes
    /// the slot map and reconnects to nodes by itself), made on first use.
    Cluster {
        client: Arc<redis::cluster::ClusterClient>,
        conn: Arc<tokio::sync::OnceCell<ClusterConnection>>,
    },
}

/// A connection of either kind, for the commands and scripts.
enum AnyConn {
    Single(redis::aio::MultiplexedConnection),
    Cluster(ClusterConnection),
}

impl redis::aio::ConnectionLike for AnyConn {
    fn req_packed_command<'a>(
        &'a mut self,
        cmd: &'a redis::Cmd,
    ) -> redis::RedisFuture<'a, redis::Value> {
        match self {
            Self::Single(c) => c.req_packed_command(cmd),
            Self::Cluster(c) => c.req_packed_command(cmd),
        }
    }
    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a redis::Pipeline,
        offset: usize,
        count: usize,
    ) -> redis::RedisFuture<'a, Vec<redis::Value>> {
        match self {
            Self::Single(c) => c.req_packed_commands(pipeline, offset, count),
            Self::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }
    fn get_db(&self) -> i64 {
        match self {
            Self::Single(c) => c.get_db(),
            Self::Cluster(c) => c.get_db(),
        }
    }
}

/// Maps a Redis error to a store error, without keys or values in the message.
pub(crate) fn store_error(e: &RedisError) -> StoreError {
    if e.is_timeout() {
        return StoreError::Timeout(Duration::ZERO);
    }
    if login_refused(e) {
        return login_error();
    }
    if readonly(e) {
        return StoreError::Unavailable(
            "Redis answered READONLY: the master became a replica".into(),
        );
    }
    if e.code() == Some("OOM") {
        return StoreError::Rejected("Redis is out of memory (maxmemory reached)".into());
    }
    if e.code() == Some("WRONGTYPE") || e.detail().is_some_and(|d| d.contains("WRONGTYPE")) {
        // Something else (another program, a wrong prefix) wrote a value of another type
        // under a session key: a corrupt record, not an outage.
        return StoreError::Corrupt("the key holds a value of another Redis type".into());
    }
    if e.is_connection_refusal()
        || e.is_io_error()
        || e.is_connection_dropped()
        || e.is_unrecoverable_error()
    {
        return StoreError::Unavailable(format!("{:?}", e.kind()));
    }
    StoreError::Backend(format!(
        "Redis error {:?}{}",
        e.kind(),
        e.code().map(|c| format!(" ({c})")).unwrap_or_default()
    ))
}

/// Whether the connection that produced `e` should be thrown away.
pub(crate) fn breaks_connection(e: &RedisError) -> bool {
    e.is_io_error()
        || e.is_connection_dropped()
        || e.is_timeout()
        || e.is_unrecoverable_error()
        || readonly(e)
}

/// Whether Redis refused a write because the server is a replica now (a failover demoted it):
/// the command did not run, so it may be sent again, to the new master.
pub(crate) fn readonly(e: &RedisError) -> bool {
    e.code() == Some("READONLY")
}

/// A connection used instead of the pool while it has one: the client cache's tracking
/// connection, so a request's load and its write share one connection (and batch with other
/// requests' on it), and this process's own writes (`NOLOOP`) cost Redis no invalidation push
/// back to it.
pub(crate) trait Preferred: Send + Sync {
    /// The connection, if there is a healthy one.
    fn connection(&self) -> Option<PreferredConn>;
}

/// The read fences of the preferred connection a command runs on, if it does.
type Fenced = Option<Arc<crate::fence::Fences>>;

/// The preferred connection: every command sent on it is a read fence of the client cache.
pub(crate) struct PreferredConn {
    pub(crate) conn: redis::aio::MultiplexedConnection,
    /// Raised by a command that finds the connection dead.
    pub(crate) broken: Arc<AtomicBool>,
    pub(crate) fences: Arc<crate::fence::Fences>,
}

/// The store's way to Redis: a pool and the timeouts that bound every call. Cheap to clone
/// (clones share the pool).
#[derive(Clone)]
pub(crate) struct Redis {
    pool: Pool,
    checkout_timeout: Duration,
    command_timeout: Duration,
    /// Bounds the broken connections a checkout may drop before giving up.
    pool_size: u32,
    preferred: Option<Arc<dyn Preferred>>,
    /// The Sentinels naming the master, if any: their failover gate and generations.
    sentinel: Option<Arc<crate::sentinel::Sentinel>>,
}

impl Redis {
    pub(crate) fn new(
        pool: Pool,
        checkout_timeout: Duration,
        command_timeout: Duration,
        pool_size: u32,
        preferred: Option<Arc<dyn Preferred>>,
        sentinel: Option<Arc<crate::sentinel::Sentinel>>,
    ) -> Self {
        Self {
            pool,
            checkout_timeout,
            command_timeout,
            pool_size,
            preferred,
            sentinel,
        }
    }

    /// The pool's state, for `Debug`.
    pub(crate) fn pool_state(&self) -> String {
        match &self.pool {
            Pool::Own(pool) => format!("{:?}", pool.state()),
            Pool::Shared(p) => format!("{:?}", p.state()),
            Pool::Cluster { conn, .. } => {
                format!("cluster (connected: {})", conn.initialized())
            }
        }
    }

    /// Runs one command (or script) on a pooled connection, bounded by the checkout and command
    /// timeouts; on a dropped connection, retries once on a fresh one.
    ///
    /// A drop can come after Redis ran the command and before its reply arrived, so every
    /// command sent here must answer a second run as it answered the first: reads, saves (the
    /// same delta again), touches, a create or a supersede (each recognises what its own first
    /// run wrote), a destroy (a supersede marker is left to its TTL and named every time; a
    /// live record a first run removed is reported as missing), the owner index's scripts.
    async fn run<T, F, Fut>(&self, op: F) -> Result<T, StoreError>
    where
        F: Fn(AnyConn) -> Fut,
        Fut: std::future::Future<Output = Result<T, RedisError>>,
    {
        if let Some(closed) = self.sentinel.as_ref().and_then(|s| s.gate()) {
            return Err(closed);
        }
        let mut attempt = 0;
        // A dropped preferred (tracking) connection gives the command one more go on the pool
        // without using up its retry: a restarted Redis kills both at once.
        let mut preferred_failed = false;
        loop {
            attempt += 1;
            // The Sentinel generation this attempt's connection belongs to, at the latest.
            let generation = self.sentinel.as_ref().map_or(0, |s| s.generation());
            let (conn, broken, fences) = self.checkout().await?;
            let retry_free = fences.is_some() && !preferred_failed;
            // On the preferred connection, the command is a read fence too.
            let sent = fences.as_ref().map(crate::fence::Fences::send);
            match tokio::time::timeout(self.command_timeout, op(conn)).await {
                Ok(Ok(v)) => {
                    if let Some(sent) = sent {
                        sent.answered();
                    }
                    return Ok(v);
                }
                Ok(Err(e)) => {
                    if readonly(&e) {
                        // Not run: once more, on a connection to the master the Sentinels
                        // name now (a server's own replica answers the same way: it fails).
                        broken.store(true, Ordering::Relaxed);
                        if let Some(s) = &self.sentinel {
                            s.demoted(generation);
                            if attempt == 1 {
                                continue;
                            }
                        }
                    } else if breaks_connection(&e) {
                        broken.store(true, Ordering::Relaxed);
                        let dropped = e.is_connection_dropped() || e.is_io_error();
                        // Not after a timeout: the command may still run, and a create, a
                        // supersede or a destroy run twice answers wrongly.
                        if retry_free && dropped && !e.is_timeout() {
                            preferred_failed = true;
                            attempt -= 1;
                            continue;
                        }
                        // A timeout is not retried: the caller already waited its full budget.
                        if attempt == 1 && !e.is_timeout() && dropped {
                            tracing::debug!(target: "session::redis", "connection dropped; retrying once");
                            continue;
                        }
                    }
                    return Err(match store_error(&e) {
                        StoreError::Timeout(_) => StoreError::Timeout(self.command_timeout),
                        other => other,
                    });
                }
                Err(_) => {
                    broken.store(true, Ordering::Relaxed);
                    return Err(StoreError::Timeout(self.command_timeout));
                }
            }
        }
    }

    /// A healthy connection (a clone; the pool slot is released on return), its broken flag,
    /// and, for the preferred one, its read fences.
    async fn checkout(&self) -> Result<(AnyConn, Arc<AtomicBool>, Fenced), StoreError> {
        if let Some(p) = self.preferred.as_ref().and_then(|p| p.connection()) {
            return Ok((AnyConn::Single(p.conn), p.broken, Some(p.fences)));
        }
        let pool = match &self.pool {
            Pool::Own(pool) => pool,
            Pool::Cluster { client, conn } => {
                let made = tokio::time::timeout(
                    self.checkout_timeout,
                    conn.get_or_try_init(|| client.get_async_connection()),
                )
                .await;
                return match made {
                    Ok(Ok(c)) => Ok((
                        AnyConn::Cluster(c.clone()),
                        Arc::new(AtomicBool::new(false)),
                        None,
                    )),
                    Ok(Err(e)) => Err(store_error(&e)),
                    Err(_) => Err(StoreError::Timeout(self.checkout_timeout)),
                };
            }
            Pool::Shared(pool) => {
                let conn = pool.get().await.map_err(|e| self.checkout_error(&e))?;
                // A flag nobody reads: the app's pool decides about its connections.
                return Ok((
                    AnyConn::Single((*conn).clone()),
                    Arc::new(AtomicBool::new(false)),
                    None,
                ));
            }
        };
        // Connections flagged broken are dropped as they come out; bounded by the pool size.
        for _ in 0..=self.pool_size {
            // A connect that fails while this checkout waits ends the wait when no connection
            // can come to it any more (Redis refused or is unreachable); only silence waits
            // out the timeout.
            let observe = |c: session_pool::Checkout| {
                telemetry::pool_checkout("redis", c.secs, c.waited, c.in_use);
            };
            let got = pool
                .get_observed(telemetry::ENABLED.then_some(&observe))
                .await;
            let conn = got.map_err(|e| match e {
                session_pool::CheckoutError::TimedOut => StoreError::Timeout(self.checkout_timeout),
                session_pool::CheckoutError::Connect(e) => store_error(&e),
                session_pool::CheckoutError::Failed(failure) => failure.to_error(),
                // Not with this store (no refusal holds connects off).
                session_pool::CheckoutError::HeldOff => {
                    StoreError::Unavailable("connects held off".into())
                }
            })?;
            let c: &Conn = &conn;
            let current = self
                .sentinel
                .as_ref()
                .is_none_or(|s| s.generation() == c.generation);
            if current && !c.broken.load(Ordering::Relaxed) {
                return Ok((
                    AnyConn::Single(c.inner.clone()),
                    Arc::clone(&c.broken),
                    None,
                ));
            }
            // Dropping it now makes bb8 check `has_broken` and discard it.
        }
        Err(StoreError::Unavailable("no healthy connection".into()))
    }

    /// A failed pool checkout as a store error.
    fn checkout_error(&self, e: &bb8::RunError<RedisError>) -> StoreError {
        match e {
            bb8::RunError::TimedOut => StoreError::Timeout(self.checkout_timeout),
            bb8::RunError::User(e) => store_error(e),
        }
    }

    /// Runs a one-key script; its reply.
    async fn invoke<T: FromRedisValue>(
        &self,
        script: &Script,
        k: &str,
        args: &[Vec<u8>],
    ) -> Result<T, StoreError> {
        self.run(|mut c| {
            let mut inv = script.key(k);
            for a in args {
                inv.arg(a.as_slice());
            }
            async move { inv.invoke_async(&mut c).await }
        })
        .await
    }

    /// Runs a script on `keys` (which must share a Cluster slot); its reply.
    pub(crate) async fn invoke_keys<T: FromRedisValue>(
        &self,
        script: &Script,
        keys: &[&str],
        args: &[Vec<u8>],
    ) -> Result<T, StoreError> {
        self.run(|mut c| {
            let mut inv = script.prepare_invoke();
            for k in keys {
                inv.key(*k);
            }
            for a in args {
                inv.arg(a.as_slice());
            }
            async move { inv.invoke_async(&mut c).await }
        })
        .await
    }

    /// Runs a one-key script; its integer reply.
    pub(crate) async fn eval(
        &self,
        script: &Script,
        k: &str,
        args: &[Vec<u8>],
    ) -> Result<i64, StoreError> {
        self.invoke(script, k, args).await
    }

    /// Runs a one-key script without arguments; its raw reply.
    pub(crate) async fn eval_reply(
        &self,
        script: &Script,
        k: &str,
    ) -> Result<redis::Value, StoreError> {
        self.invoke(script, k, &[]).await
    }

    /// `GET key`.
    pub(crate) async fn get(&self, k: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.run(|mut c| {
            let k = k.to_owned();
            async move { redis::cmd("GET").arg(k).query_async(&mut c).await }
        })
        .await
    }

    /// `HGETALL key`: the field-value pairs (none when the key is absent).
    pub(crate) async fn hgetall(&self, k: &str) -> Result<Vec<(Vec<u8>, Vec<u8>)>, StoreError> {
        self.run(|mut c| {
            let k = k.to_owned();
            async move { redis::cmd("HGETALL").arg(k).query_async(&mut c).await }
        })
        .await
    }

    /// One `SCAN` step over the keys that start with `prefix`: the next cursor (0: done) and
    /// the keys. One server only: a Cluster's keys are spread over its nodes, each scanned on
    /// its own, which this store does not do.
    pub(crate) async fn scan(
        &self,
        cursor: u64,
        prefix: &str,
        count: usize,
    ) -> Result<(u64, Vec<String>), StoreError> {
        if let Pool::Cluster { .. } = self.pool {
            return Err(StoreError::Backend(
                "listing the sessions of a Redis Cluster is not supported".to_owned(),
            ));
        }
        // The prefix literally: glob characters in it are escaped.
        let mut pattern = String::with_capacity(prefix.len() + 1);
        for c in prefix.chars() {
            if matches!(c, '*' | '?' | '[' | ']' | '\\') {
                pattern.push('\\');
            }
            pattern.push(c);
        }
        pattern.push('*');
        self.run(|mut c| {
            let pattern = pattern.clone();
            async move {
                redis::cmd("SCAN")
                    .arg(cursor)
                    .arg("MATCH")
                    .arg(pattern)
                    .arg("COUNT")
                    .arg(count)
                    .query_async(&mut c)
                    .await
            }
        })
        .await
    }

    /// `CLUSTER SLOTS` through the cluster connection: `(first slot, last slot, master
    /// address)` per range (a range whose master names no host is left out).
    pub(crate) async fn cluster_slots(&self) -> Result<Vec<(u16, u16, String)>, StoreError> {
        let reply: redis::Value = self
            .run(
                |mut c| async move { redis::cmd("CLUSTER").arg("SLOTS").query_async(&mut c).await },
            )
            .await?;
        let text = |v: &redis::Value| match v {
            redis::Value::BulkString(b) => String::from_utf8(b.clone()).ok(),
            redis::Value::SimpleString(s) => Some(s.clone()),
            _ => None,
        };
        let int = |v: &redis::Value| match v {
            redis::Value::Int(n) => u16::try_from(*n).ok(),
            _ => None,
        };
        let redis::Value::Array(ranges) = reply else {
            return Err(StoreError::Backend("CLUSTER SLOTS: not a list".into()));
        };
        Ok(ranges
            .iter()
            .filter_map(|r| {
                let redis::Value::Array(r) = r else {
                    return None;
                };
                let redis::Value::Array(master) = r.get(2)? else {
                    return None;
                };
                let host = text(master.first()?).filter(|h| !h.is_empty())?;
                let port = int(master.get(1)?)?;
                Some((int(r.first()?)?, int(r.get(1)?)?, format!("{host}:{port}")))
            })
            .collect())
    }

    /// `PTTL key`: milliseconds left, -1 without TTL, -2 when the key is absent.
    pub(crate) async fn pttl(&self, k: &str) -> Result<i64, StoreError> {
        self.run(|mut c| {
            let k = k.to_owned();
            async move { redis::cmd("PTTL").arg(k).query_async(&mut c).await }
        })
        .await
    }
}
