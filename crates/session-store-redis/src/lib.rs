//! The shared session store for many app servers: Redis, through a bb8 pool of multiplexed
//! connections.
//!
//! # What it guarantees
//! - **Single-key commands only** (scripts touch one key), so it works on Redis Cluster.
//! - `create` inserts only if absent; `save` and `touch` update only a live record, so a save
//!   that races a logout never brings the session back; `destroy` deletes whatever is there and
//!   says what it was. Every key has a TTL, set in the same script that writes the key, before
//!   the data (a create that fails half-way deletes what it wrote).
//! - **Regenerate-safe**: `supersede` replaces the old id's record by a marker naming the new
//!   one (lifetime: the session config's `supersede_grace`), in one script: a regenerate racing
//!   a logout can't keep the logged-out data alive, and requests still carrying the old id are
//!   told it was superseded.
//! - **Bounded records**: the whole record stays within [`RedisStoreBuilder::max_record_bytes`]
//!   (64 KiB) after every write. The hash keeps its data's byte count (`_n`); a save script
//!   computes the new size from the fields it changes (one `HSTRLEN` each) and refuses, writing
//!   nothing, a save that would pass the limit ([`StoreError::TooLarge`]). Thousands of keys per
//!   create or save are fine (the scripts write in chunks).
//! - **Foreign data is corrupt, not an outage**: a value of another Redis type under a session
//!   key, or a hash this store can't read, is [`StoreError::Corrupt`]; the middleware then
//!   deletes it and starts a new session.
//! - **Per-key deltas** (default format): a session is a Redis hash with one field per
//!   top-level key, and a save applies the keys this request set and removed, atomically (one
//!   Lua script). Two concurrent requests that change *different* keys both land; two that
//!   change the *same* key: the later write wins for that key. `clear()` replaces the data
//!   as a whole.
//! - **Round trips**: a load is one `HGETALL`; a commit is one script call. A read-only request
//!   costs one round trip, a changing one two, and so does a read under `rolling` (its touch is
//!   the commit: it extends the session only if no login superseded it meanwhile).
//! - **Failures are fast and typed**: the pool checkout, connect and every command are bounded
//!   by short timeouts (defaults: checkout 1 s, command 1 s), and a refused connection fails the
//!   request at once instead of waiting the timeout out; a refused connection, a timeout, or
//!   Redis's `OOM` under `noeviction` become [`StoreError`]s, and a connection that died is
//!   replaced, so the store recovers by itself when Redis comes back. A command that fails on a
//!   dropped connection is retried once on a fresh one (every command here is idempotent).
//! - Passwords in the URL never appear in `Debug` or logs. ACL users (`redis://user:pass@...`)
//!   work; `rediss://` (TLS, through rustls with the ring provider) needs the `tls` feature.
//!
//! # Record formats
//! - [`Format::V1`] (default): a hash with `_v` = `1` (format version), `_m` = the koa fields
//!   (`expire,maxAge,created`, `0` for none), `_n` = the bytes of the `d:` fields (names and
//!   values), and `d:<key>` = the JSON of each top-level key. A supersede marker is a hash with
//!   `_v` and `_sup` = the Redis key of the successor.
//! - [`Format::Koa`]: koa-session's record, so a Koa app's Redis store and ours share sessions:
//!   the key is the id exactly as the cookie carries it (configure the session with
//!   `koa_compat(true)` and leave the prefix empty) and the value is koa's JSON string (user keys,
//!   `_expire`, `_maxAge`). A Koa app writes whole records, so this format is whole-record
//!   last-writer-wins, like koa ([`Store::merges_deltas`] is false). A supersede marker is
//!   `{"_superseded":"<successor key>","_expire":1,"_maxAge":1}`: a Koa app reading it sees an
//!   expired session and starts a new one.
//!
//! # Redis Cluster
//! [`RedisStore::cluster`] takes seed nodes and works exactly as on one server, delta writes
//! and the koa format included: every command and script touches one key, so no hash tags are
//! needed, and the `redis` crate's cluster connection follows `MOVED`/`ASK` and refreshes its
//! slot map by itself. When a master dies, calls for its slots fail fast (within the command
//! timeout) until a replica is promoted (about 4 s with `cluster-node-timeout 2000` in our
//! failover test), then succeed again without restarting anything. Run the cluster with
//! `cluster-require-full-coverage no`, or Redis stops serving *every* slot while one shard is
//! down.
//!
//! # What Redis does not promise
//! Replication is asynchronous: an acknowledged write, a logout included, can be lost when a
//! replica is promoted (in a cluster failover or a Sentinel switch), and the session then comes
//! back. The store does not wait for replicas (no `WAIT`): it would add a round trip to every
//! write and still guarantee nothing under partitions. What bounds the damage is the expiry kept
//! inside every record (`_expire`, and the absolute lifetime when configured): a resurrected
//! session still ends on time. For high-value sessions use a short max-age and an absolute
//! lifetime. Use a dedicated Redis with `maxmemory-policy noeviction` (or `volatile-ttl`: every
//! session key has a TTL, and the keys closest to expiry go first: supersede markers, then the
//! sessions with the least time left); `allkeys-*` policies silently evict live sessions. Reads
//! always go to masters (replica reads would break read-your-writes).
//!
//! # Example
//! ```no_run
//! use session_store_redis::RedisStore;
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let store = RedisStore::builder("redis://127.0.0.1:6379/0").prefix("myapp:").build().await?;
//! // SessionLayer::store(config, store)
//! # Ok(()) }
//! ```

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use redis::{ErrorKind, RedisError, Script};
use serde_json::Value;
use session_core::{
    Change, Created, Data, Destroyed, Loaded, MaxAge, Meta, Record, Store, StoreError, StoreKey,
    Supersede, Updated,
};

mod pool;
use pool::{Conn, Failures, Manager, Sink};

/// How sessions are laid out in Redis.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    /// Our versioned hash format, with per-key delta writes.
    #[default]
    V1,
    /// koa-session's JSON string under the raw id (whole-record writes).
    Koa,
}

/// The store's version tag in [`Format::V1`] records.
const V1_TAG: &str = "1";

/// A building failure (bad URL, or Redis unreachable at startup when `connect_now` is asked).
#[derive(Debug)]
pub enum BuildError {
    /// The URL could not be parsed.
    InvalidUrl(String),
    /// The first connection failed.
    Connect(StoreError),
}

impl std::error::Error for BuildError {}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidUrl(why) => write!(f, "invalid Redis URL: {why}"),
            Self::Connect(e) => write!(f, "could not connect to Redis: {e}"),
        }
    }
}

/// Where connections come from.
enum Source {
    Url(String),
    Pool(bb8::Pool<bb8_redis::RedisConnectionManager>),
    Cluster(Vec<String>),
}

/// The pool in use.
#[derive(Clone)]
enum Pool {
    /// Ours: dead connections are detected and replaced, failed connects reported at once
    /// (see `pool`).
    Own {
        pool: bb8::Pool<Manager>,
        failures: Arc<Failures>,
    },
    /// The app's: its own settings (e.g. `test_on_check_out`) decide how dead connections go.
    Shared(bb8::Pool<bb8_redis::RedisConnectionManager>),
    /// A Redis Cluster: one multiplexed cluster connection (it follows `MOVED`/`ASK`, refreshes
    /// the slot map and reconnects to nodes by itself), made on first use.
    Cluster {
        client: Arc<redis::cluster::ClusterClient>,
        conn: Arc<tokio::sync::OnceCell<ClusterConnection>>,
    },
}

use redis::cluster_async::ClusterConnection;

/// A connection of either kind, for the commands and scripts.
pub(crate) enum AnyConn {
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

/// Builds a [`RedisStore`].
pub struct RedisStoreBuilder {
    source: Source,
    #[cfg(feature = "tls")]
    tls_root: Option<Vec<u8>>,
    prefix: String,
    format: Format,
    pool_size: u32,
    checkout_timeout: Duration,
    command_timeout: Duration,
    test_on_checkout: bool,
    koa_default_max_age: MaxAge,
    max_record_bytes: usize,
}

impl fmt::Debug for RedisStoreBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStoreBuilder")
            .field(
                "url",
                &match &self.source {
                    Source::Url(u) => redact(u),
                    Source::Pool(_) => "<existing pool>".into(),
                    Source::Cluster(nodes) => nodes
                        .iter()
                        .map(|n| redact(n))
                        .collect::<Vec<_>>()
                        .join(","),
                },
            )
            .field("prefix", &self.prefix)
            .field("format", &self.format)
            .finish_non_exhaustive()
    }
}

/// The URL with any password replaced.
///
/// Both places redis-rs reads a password from are covered: `user:password@` in the authority,
/// and a `pass=` (or `password=`) query parameter, as unix-socket URLs carry it.
fn redact(url: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let mut out = match (base.find("://"), base.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &base[s + 3..at];
            let user = creds.split(':').next().unwrap_or("");
            format!("{}{user}:<redacted>{}", &base[..s + 3], &base[at..])
        }
        _ => base.to_owned(),
    };
    if let Some(query) = query {
        out.push('?');
        let params: Vec<String> = query
            .split('&')
            .map(|p| match p.split_once('=') {
                Some((k, _))
                    if k.eq_ignore_ascii_case("pass") || k.eq_ignore_ascii_case("password") =>
                {
                    format!("{k}=<redacted>")
                }
                _ => p.to_owned(),
            })
            .collect();
        out.push_str(&params.join("&"));
    }
    out
}

impl RedisStoreBuilder {
    /// Prepended to every key (default empty: session keys already carry `sess:` from
    /// `session-core`; use it to separate apps sharing one Redis).
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }
    /// Record format (default [`Format::V1`]).
    pub fn format(mut self, format: Format) -> Self {
        self.format = format;
        self
    }
    /// Connections in the pool (default 1). Each is multiplexed: concurrent requests' commands
    /// share it and go out together, so one connection batches best (on 2 cores, one connection
    /// served 25-30 % more requests than four, and Redis spent a third less CPU per request;
    /// BENCHMARKS.md). Raise it when one connection's reader becomes the limit: many cores,
    /// large records.
    pub fn pool_size(mut self, n: u32) -> Self {
        self.pool_size = n.max(1);
        self
    }
    /// Longest wait for a pooled connection, connecting included (default 1 s, not bb8's 30 s).
    pub fn checkout_timeout(mut self, d: Duration) -> Self {
        self.checkout_timeout = d;
        self
    }
    /// Longest wait for one command's reply (default 1 s).
    pub fn command_timeout(mut self, d: Duration) -> Self {
        self.command_timeout = d;
        self
    }
    /// PING every connection on checkout (default off: it costs a round trip per request, and
    /// the PING holds the pool slot while it waits, so with it on raise [`Self::pool_size`];
    /// dead connections are detected by the failing command instead and replaced).
    pub fn test_on_checkout(mut self, on: bool) -> Self {
        self.test_on_checkout = on;
        self
    }
    /// Max-age assumed for a koa record without `_maxAge` (default one day).
    pub fn koa_default_max_age(mut self, m: MaxAge) -> Self {
        self.koa_default_max_age = m;
        self
    }
    /// Largest record (default 64 KiB), so one client can't take a large share of Redis memory:
    /// the bytes of the data fields (names and JSON values) in the V1 format, the JSON string in
    /// the koa format. It holds for the whole record after every create and save; a write that
    /// would pass it fails with [`StoreError::TooLarge`] and changes nothing.
    pub fn max_record_bytes(mut self, n: usize) -> Self {
        self.max_record_bytes = n;
        self
    }

    /// Trusts this PEM root certificate for `rediss://` (instead of the system's roots); for
    /// servers with a private CA.
    #[cfg(feature = "tls")]
    pub fn tls_root_certificate(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.tls_root = Some(pem.into());
        self
    }

    fn client(&self, url: &str) -> Result<redis::Client, BuildError> {
        #[cfg(feature = "tls")]
        {
            // rustls needs a process-wide crypto provider; install ring's unless the app did.
            let _ = rustls::crypto::ring::default_provider().install_default();
            if let Some(root) = &self.tls_root {
                let certs = redis::TlsCertificates {
                    client_tls: None,
                    root_cert: Some(root.clone()),
                };
                return redis::Client::build_with_tls(url, certs)
                    .map_err(|e| BuildError::InvalidUrl(e.to_string()));
            }
        }
        redis::Client::open(url).map_err(|e| BuildError::InvalidUrl(e.to_string()))
    }

    /// Builds the store. No connection is made yet: the pool connects on first use, so an app
    /// starts even while Redis is down (requests then get fast errors).
    pub async fn build(mut self) -> Result<RedisStore, BuildError> {
        let source = std::mem::replace(&mut self.source, Source::Cluster(Vec::new()));
        let (pool, url) = match source {
            Source::Url(url) => {
                let client = self.client(&url)?;
                let config = redis::AsyncConnectionConfig::new()
                    .set_connection_timeout(Some(self.checkout_timeout))
                    .set_response_timeout(Some(self.command_timeout));
                let failures = Failures::new();
                let pool = bb8::Pool::builder()
                    .max_size(self.pool_size)
                    .min_idle(None)
                    .connection_timeout(self.checkout_timeout)
                    .test_on_check_out(self.test_on_checkout)
                    .retry_connection(false)
                    .error_sink(Box::new(Sink(Arc::clone(&failures))))
                    .build_unchecked(Manager {
                        client,
                        config,
                        failures: Arc::clone(&failures),
                    });
                (Pool::Own { pool, failures }, redact(&url))
            }
            Source::Pool(pool) => (Pool::Shared(pool), "<existing pool>".to_owned()),
            Source::Cluster(nodes) => {
                let shown = nodes
                    .iter()
                    .map(|n| redact(n))
                    .collect::<Vec<_>>()
                    .join(",");
                let client = redis::cluster::ClusterClient::builder(nodes)
                    .connection_timeout(self.checkout_timeout)
                    .response_timeout(self.command_timeout)
                    // A command for a failed shard retries (following redirects) within the
                    // command timeout; the timeout cuts it short, so a request never hangs.
                    .retries(3)
                    .min_retry_wait(50)
                    .max_retry_wait(200)
                    .build()
                    .map_err(|e| BuildError::InvalidUrl(e.to_string()))?;
                (
                    Pool::Cluster {
                        client: Arc::new(client),
                        conn: Arc::new(tokio::sync::OnceCell::new()),
                    },
                    shown,
                )
            }
        };
        Ok(RedisStore {
            pool,
            url,
            prefix: self.prefix,
            format: self.format,
            checkout_timeout: self.checkout_timeout,
            command_timeout: self.command_timeout,
            pool_size: self.pool_size,
            koa_default_max_age: self.koa_default_max_age,
            max_record_bytes: self.max_record_bytes,
            scripts: Arc::new(Scripts::new()),
        })
    }
}

struct Scripts {
    create: Script,
    save: Script,
    touch: Script,
    destroy: Script,
    supersede: Script,
    koa_touch: Script,
    koa_save: Script,
    koa_destroy: Script,
    koa_supersede: Script,
}

impl Scripts {
    fn new() -> Self {
        Self {
            // KEYS[1]; ARGV: ttl_ms, meta, data_bytes, field, value, ...
            // The version, meta and size go first and the TTL right after, so the key never
            // exists without one; the data follows in chunks (Lua's unpack has a stack limit),
            // and a chunk that fails (e.g. OOM) deletes the half-written record.
            create: Script::new(
                r"local k = KEYS[1]
if redis.call('EXISTS', k) == 1 then return 0 end
redis.call('HSET', k, '_v', '1', '_m', ARGV[2], '_n', ARGV[3])
redis.call('PEXPIRE', k, ARGV[1])
for i = 4, #ARGV, 1000 do
  local r = redis.pcall('HSET', k, unpack(ARGV, i, math.min(i + 999, #ARGV)))
  if type(r) == 'table' and r.err then
    redis.call('DEL', k)
    return r
  end
end
return 1",
            ),
            // ARGV: ttl_ms, replace(0|1), limit, meta, n_removed, removed..., field, value, ...
            // Returns 1 (updated), 0 (no record), 2 (superseded) or -size (the record would
            // outgrow `limit`; nothing written). `_n` keeps the data's bytes (field names and
            // values), so the limit holds for the whole record at the cost of one HSTRLEN per
            // changed key; a record written before `_n` existed is counted once.
            save: Script::new(
                r"local k = KEYS[1]
local n = redis.call('HGET', k, '_n')
if not n then
  if redis.call('EXISTS', k) == 0 then return 0 end
  if redis.call('HEXISTS', k, '_sup') == 1 then return 2 end
  n = 0
  local h = redis.call('HGETALL', k)
  for i = 1, #h, 2 do
    if string.sub(h[i], 1, 2) == 'd:' then n = n + #h[i] + #h[i + 1] end
  end
end
local replace = ARGV[2] == '1'
local nrem = tonumber(ARGV[5])
local p = 6 + nrem
local size = 0
if not replace then
  size = tonumber(n)
  for i = 6, 5 + nrem do
    local l = redis.call('HSTRLEN', k, ARGV[i])
    if l > 0 then size = size - #ARGV[i] - l end
  end
end
for i = p, #ARGV, 2 do
  local l = 0
  if not replace then l = redis.call('HSTRLEN', k, ARGV[i]) end
  if l > 0 then size = size - l + #ARGV[i + 1] else size = size + #ARGV[i] + #ARGV[i + 1] end
end
if size > tonumber(ARGV[3]) then return -size end
redis.call('PEXPIRE', k, ARGV[1])
if replace then
  local old = {}
  for _, f in ipairs(redis.call('HKEYS', k)) do
    if string.sub(f, 1, 2) == 'd:' then old[#old + 1] = f end
  end
  for i = 1, #old, 1000 do
    redis.call('HDEL', k, unpack(old, i, math.min(i + 999, #old)))
  end
end
for i = 6, 5 + nrem, 1000 do
  redis.call('HDEL', k, unpack(ARGV, i, math.min(i + 999, 5 + nrem)))
end
local last = math.min(p + 995, #ARGV)
redis.call('HSET', k, '_m', ARGV[4], '_n', tostring(size), unpack(ARGV, p, last))
for i = last + 1, #ARGV, 1000 do
  redis.call('HSET', k, unpack(ARGV, i, math.min(i + 999, #ARGV)))
end
return 1",
            ),
            // ARGV: ttl_ms, meta. 1 updated, 0 no record, 2 superseded.
            touch: Script::new(
                r"if redis.call('HEXISTS', KEYS[1], '_sup') == 1 then return 2 end
if redis.call('PEXPIRE', KEYS[1], ARGV[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], '_m', ARGV[2])
return 1",
            ),
            // Deletes whatever is there (a foreign value too); the successor's key when it was
            // a marker, else DEL's count.
            destroy: Script::new(
                r"local s = redis.pcall('HGET', KEYS[1], '_sup')
local n = redis.call('DEL', KEYS[1])
if type(s) == 'string' then return s end
return n",
            ),
            // ARGV: successor key, ttl_ms. 1 replaced, 0 no record, 2 already superseded.
            supersede: Script::new(
                r"local k = KEYS[1]
if redis.call('EXISTS', k) == 0 then return 0 end
if redis.call('HEXISTS', k, '_sup') == 1 then return 2 end
redis.call('DEL', k)
redis.call('HSET', k, '_v', '1', '_sup', ARGV[1])
redis.call('PEXPIRE', k, ARGV[2])
return 1",
            ),
            // ARGV: ttl_ms, new _expire ('' for none). koa writes `_expire` after every user key,
            // so the last top-level-looking occurrence is the record's own.
            koa_touch: Script::new(
                r#"local v = redis.call('GET', KEYS[1])
if not v then return 0 end
if string.sub(v, 1, 15) == '{"_superseded":' then return 2 end
if ARGV[2] ~= '' then
  local last_s, last_e = nil, nil
  local init = 1
  while true do
    local s, e = string.find(v, '[,{]"_expire":[-%d%.eE+]+', init)
    if not s then break end
    last_s, last_e = s, e
    init = e + 1
  end
  if last_s then
    v = string.sub(v, 1, last_s) .. '"_expire":' .. ARGV[2] .. string.sub(v, last_e + 1)
  end
end
redis.call('SET', KEYS[1], v, 'PX', ARGV[1])
return 1"#,
            ),
            // ARGV: json, ttl_ms. `SET XX` that never writes over a marker.
            koa_save: Script::new(
                r#"local v = redis.call('GET', KEYS[1])
if not v then return 0 end
if string.sub(v, 1, 15) == '{"_superseded":' then return 2 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1"#,
            ),
            koa_destroy: Script::new(
                r#"local v = redis.pcall('GET', KEYS[1])
local n = redis.call('DEL', KEYS[1])
if type(v) == 'string' and string.sub(v, 1, 15) == '{"_superseded":' then
  local ok, obj = pcall(cjson.decode, v)
  if ok and type(obj['_superseded']) == 'string' then return obj['_superseded'] end
end
return n"#,
            ),
            // ARGV: marker json, ttl_ms.
            koa_supersede: Script::new(
                r#"local v = redis.call('GET', KEYS[1])
if not v then return 0 end
if string.sub(v, 1, 15) == '{"_superseded":' then return 2 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1"#,
            ),
        }
    }
}

/// The Redis session store. Cheap to clone (clones share the pool).
#[derive(Clone)]
pub struct RedisStore {
    pool: Pool,
    url: String,
    prefix: String,
    format: Format,
    checkout_timeout: Duration,
    command_timeout: Duration,
    pool_size: u32,
    koa_default_max_age: MaxAge,
    max_record_bytes: usize,
    scripts: Arc<Scripts>,
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStore")
            .field("url", &self.url)
            .field("prefix", &self.prefix)
            .field("format", &self.format)
            .field(
                "pool",
                &match &self.pool {
                    Pool::Own { pool, .. } => format!("{:?}", pool.state()),
                    Pool::Shared(p) => format!("{:?}", p.state()),
                    Pool::Cluster { conn, .. } => {
                        format!("cluster (connected: {})", conn.initialized())
                    }
                },
            )
            .finish_non_exhaustive()
    }
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
}

/// Maps a Redis error to a store error, without keys or values in the message.
fn store_error(e: &RedisError) -> StoreError {
    if e.is_timeout() {
        return StoreError::Timeout(Duration::ZERO);
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
    match e.kind() {
        ErrorKind::AuthenticationFailed => StoreError::Unavailable("authentication failed".into()),
        kind => StoreError::Backend(format!(
            "Redis error {kind:?}{}",
            e.code().map(|c| format!(" ({c})")).unwrap_or_default()
        )),
    }
}

/// Whether the connection that produced `e` should be thrown away.
fn breaks_connection(e: &RedisError) -> bool {
    e.is_io_error() || e.is_connection_dropped() || e.is_timeout() || e.is_unrecoverable_error()
}

impl RedisStore {
    /// Starts a builder for `url` (`redis://[user:password@]host:port[/db]`, or `rediss://...`
    /// for TLS with the `tls` feature).
    pub fn builder(url: impl Into<String>) -> RedisStoreBuilder {
        Self::builder_from(Source::Url(url.into()))
    }

    /// Starts a builder for a Redis Cluster, from seed nodes (`redis://host:port` each; the rest
    /// of the cluster is discovered). Everything works as on one server: every command and
    /// script touches one key, so no hash tags are needed. Pool options do not apply (one
    /// multiplexed cluster connection is shared).
    pub fn cluster<I, S>(nodes: I) -> RedisStoreBuilder
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self::builder_from(Source::Cluster(nodes.into_iter().map(Into::into).collect()))
    }

    /// Starts a builder on the app's existing bb8-redis pool (its own size and timeouts apply;
    /// pool options set here are ignored). Turn on the pool's `test_on_check_out`, or set its
    /// connections' response timeout, as you need: this store can't replace a dead connection
    /// in a pool it doesn't own, so it relies on the pool's own checks.
    pub fn from_pool(pool: bb8::Pool<bb8_redis::RedisConnectionManager>) -> RedisStoreBuilder {
        Self::builder_from(Source::Pool(pool))
    }

    fn builder_from(source: Source) -> RedisStoreBuilder {
        RedisStoreBuilder {
            source,
            #[cfg(feature = "tls")]
            tls_root: None,
            prefix: String::new(),
            format: Format::V1,
            pool_size: 1,
            checkout_timeout: Duration::from_secs(1),
            command_timeout: Duration::from_secs(1),
            test_on_checkout: false,
            koa_default_max_age: MaxAge::Ms(86_400_000),
            max_record_bytes: 64 * 1024,
        }
    }

    /// The Redis key of a session key.
    pub fn redis_key(&self, key: &StoreKey) -> String {
        let mut k = String::with_capacity(self.prefix.len() + key.as_str().len());
        k.push_str(&self.prefix);
        k.push_str(key.as_str());
        k
    }

    /// The connection URL (or cluster seeds) with any password replaced, as `Debug` shows it:
    /// what an app may print at startup.
    pub fn redacted_url(&self) -> &str {
        &self.url
    }

    /// The record format.
    pub fn format(&self) -> Format {
        self.format
    }

    /// Runs one command (or script) on a pooled connection, bounded by the checkout and command
    /// timeouts; on a dropped connection, retries once on a fresh one.
    async fn run<T, F, Fut>(&self, op: F) -> Result<T, StoreError>
    where
        F: Fn(AnyConn) -> Fut,
        Fut: std::future::Future<Output = Result<T, RedisError>>,
    {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let (conn, broken) = self.checkout().await?;
            match tokio::time::timeout(self.command_timeout, op(conn)).await {
                Ok(Ok(v)) => return Ok(v),
                Ok(Err(e)) => {
                    if breaks_connection(&e) {
                        broken.store(true, Ordering::Relaxed);
                        // A timeout is not retried: the caller already waited its full budget.
                        if attempt == 1
                            && !e.is_timeout()
                            && (e.is_connection_dropped() || e.is_io_error())
                        {
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

    /// A healthy connection (a clone; the pool slot is released on return) and its broken flag.
    async fn checkout(&self) -> Result<(AnyConn, Arc<AtomicBool>), StoreError> {
        let (pool, failures) = match &self.pool {
            Pool::Own { pool, failures } => (pool, failures),
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
                    )),
                    Ok(Err(e)) => Err(store_error(&e)),
                    Err(_) => Err(StoreError::Timeout(self.checkout_timeout)),
                };
            }
            Pool::Shared(pool) => {
                let conn = match pool.get().await {
                    Ok(c) => c,
                    Err(bb8::RunError::TimedOut) => {
                        return Err(StoreError::Timeout(self.checkout_timeout));
                    }
                    Err(bb8::RunError::User(e)) => return Err(store_error(&e)),
                };
                // A flag nobody reads: the app's pool decides about its connections.
                return Ok((
                    AnyConn::Single((*conn).clone()),
                    Arc::new(AtomicBool::new(false)),
                ));
            }
        };
        // Connections flagged broken are dropped as they come out; bounded by the pool size.
        for _ in 0..=self.pool_size {
            // A connect that fails while this checkout waits ends the wait (Redis refused or
            // is unreachable); only silence waits out the timeout.
            let mut failed = failures.news.subscribe();
            let got = {
                let get = std::pin::pin!(pool.get());
                let failure = std::pin::pin!(failed.changed());
                match futures_util::future::select(get, failure).await {
                    futures_util::future::Either::Left((got, _)) => Some(got),
                    futures_util::future::Either::Right(_) => None,
                }
            };
            let Some(got) = got else {
                let kind = failed.borrow().kind.clone();
                return Err(StoreError::Unavailable(kind));
            };
            let conn = match got {
                Ok(c) => c,
                Err(bb8::RunError::TimedOut) => {
                    return Err(StoreError::Timeout(self.checkout_timeout));
                }
                Err(bb8::RunError::User(e)) => return Err(store_error(&e)),
            };
            let c: &Conn = &conn;
            if !c.broken.load(Ordering::Relaxed) {
                return Ok((AnyConn::Single(c.inner.clone()), Arc::clone(&c.broken)));
            }
            // Dropping it now makes bb8 check `has_broken` and discard it.
        }
        Err(StoreError::Unavailable("no healthy connection".into()))
    }

    /// `SET key json NX|XX PX ttl`; whether it was written.
    async fn koa_set(
        &self,
        k: &str,
        json: Vec<u8>,
        condition: &'static str,
        ttl: u64,
    ) -> Result<bool, StoreError> {
        self.check_size(json.len())?;
        let written: Option<String> = self
            .run(|mut c| {
                let mut cmd = redis::cmd("SET");
                cmd.arg(k)
                    .arg(json.as_slice())
                    .arg(condition)
                    .arg("PX")
                    .arg(ttl);
                async move { cmd.query_async(&mut c).await }
            })
            .await?;
        Ok(written.is_some())
    }

    /// Runs a one-key script; its integer reply.
    async fn eval(&self, script: &Script, k: &str, args: &[Vec<u8>]) -> Result<i64, StoreError> {
        self.run(|mut c| {
            let mut inv = script.key(k);
            for a in args {
                inv.arg(a.as_slice());
            }
            async move { inv.invoke_async(&mut c).await }
        })
        .await
    }

    fn check_size(&self, size: usize) -> Result<(), StoreError> {
        if size > self.max_record_bytes {
            return Err(StoreError::TooLarge {
                size,
                limit: self.max_record_bytes,
            });
        }
        Ok(())
    }

    /// The remaining TTL of a session's Redis key (for tests and monitoring); `None` if absent,
    /// `Some(Duration::MAX)` for a key without TTL.
    pub async fn ttl(&self, key: &StoreKey) -> Result<Option<Duration>, StoreError> {
        let k = self.redis_key(key);
        let pttl: i64 = self
            .run(|mut c| {
                let k = k.clone();
                async move { redis::cmd("PTTL").arg(k).query_async(&mut c).await }
            })
            .await?;
        Ok(match pttl {
            -2 => None,
            -1 => Some(Duration::MAX),
            n => Some(Duration::from_millis(u64::try_from(n).unwrap_or(0))),
        })
    }
}

fn meta_field(m: &Meta) -> String {
    format!(
        "{},{},{}",
        m.expire.unwrap_or(0),
        m.max_age.as_ms().unwrap_or(0),
        m.created.unwrap_or(0)
    )
}

fn parse_meta(s: &[u8]) -> Option<Meta> {
    let s = std::str::from_utf8(s).ok()?;
    let mut it = s.split(',').map(|p| p.parse::<u64>().ok());
    let (expire, max_age, created) = (it.next()??, it.next()??, it.next()??);
    let some = |v: u64| (v != 0).then_some(v);
    Some(Meta {
        expire: some(expire),
        max_age: if max_age == 0 {
            MaxAge::Session
        } else {
            MaxAge::Ms(max_age)
        },
        created: some(created),
    })
}

fn encode_value(v: &Value) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(v)
        .map_err(|e| StoreError::Backend(format!("could not encode a session value: {e}")))
}

/// The hash field of a session key.
fn data_field(name: &str) -> Vec<u8> {
    let mut f = Vec::with_capacity(2 + name.len());
    f.extend_from_slice(b"d:");
    f.extend_from_slice(name.as_bytes());
    f
}

/// Decodes a V1 hash (`HGETALL` reply).
fn decode_v1(fields: Vec<(Vec<u8>, Vec<u8>)>) -> Result<Loaded, StoreError> {
    if fields.is_empty() {
        return Ok(Loaded::Missing);
    }
    let mut meta = None;
    let mut version_ok = false;
    let mut data = Data::new();
    for (f, v) in fields {
        match f.as_slice() {
            b"_v" => version_ok = v == V1_TAG.as_bytes(),
            b"_sup" => return Ok(Loaded::Superseded),
            b"_m" => meta = parse_meta(&v),
            name => {
                if let Some(key) = name.strip_prefix(b"d:") {
                    let key = String::from_utf8(key.to_vec())
                        .map_err(|_| StoreError::Corrupt("a field name is not UTF-8".into()))?;
                    let value = serde_json::from_slice(&v).map_err(|e| {
                        StoreError::Corrupt(format!("a stored value is not JSON: {e}"))
                    })?;
                    data.insert(key, value);
                }
            }
        }
    }
    if !version_ok {
        return Err(StoreError::Corrupt("unknown record format version".into()));
    }
    let meta = meta.ok_or_else(|| StoreError::Corrupt("record has no meta field".into()))?;
    Ok(Loaded::Live(Record { data, meta }))
}

/// The first bytes of a koa-format supersede marker (a JSON object whose first key is
/// `_superseded`; koa's own records never start so, since `_` keys are not user data).
const KOA_MARKER_PREFIX: &[u8] = b"{\"_superseded\":";

/// A koa-format supersede marker: the successor's key, and an `_expire` in the past, so a Koa
/// app that reads it sees an expired session and starts a new one.
fn koa_marker(successor: &str) -> Vec<u8> {
    let mut m = serde_json::Map::new();
    m.insert("_superseded".into(), Value::String(successor.to_owned()));
    m.insert("_expire".into(), Value::from(1u64));
    m.insert("_maxAge".into(), Value::from(1u64));
    serde_json::to_vec(&Value::Object(m)).unwrap_or_default()
}

/// The successor named by a destroy script's reply, or what was there.
fn destroyed(reply: redis::Value, prefix: &str) -> Destroyed {
    match reply {
        redis::Value::BulkString(b) => {
            let key = String::from_utf8_lossy(&b).into_owned();
            // Markers hold the full Redis key; the caller speaks in store keys.
            let key = key.strip_prefix(prefix).map(str::to_owned).unwrap_or(key);
            Destroyed::Superseded(StoreKey::from_raw(key))
        }
        redis::Value::Int(0) => Destroyed::Missing,
        _ => Destroyed::Removed,
    }
}

fn updated(code: i64) -> Updated {
    match code {
        1 => Updated::Updated,
        2 => Updated::Superseded,
        _ => Updated::NotFound,
    }
}

impl Store for RedisStore {
    async fn create(
        &self,
        key: &StoreKey,
        record: &Record,
        ttl: Duration,
    ) -> Result<Created, StoreError> {
        let k = self.redis_key(key);
        let ttl = ms(ttl);
        match self.format {
            Format::Koa => {
                let json = Record::koa_json(&record.data, &record.meta);
                Ok(if self.koa_set(&k, json, "NX", ttl).await? {
                    Created::Inserted
                } else {
                    Created::Collision
                })
            }
            Format::V1 => {
                let mut args: Vec<Vec<u8>> = Vec::with_capacity(3 + 2 * record.data.len());
                args.push(ttl.to_string().into_bytes());
                args.push(meta_field(&record.meta).into_bytes());
                args.push(Vec::new());
                let mut bytes = 0;
                for (name, v) in &record.data {
                    let field = data_field(name);
                    let value = encode_value(v)?;
                    bytes += field.len() + value.len();
                    args.push(field);
                    args.push(value);
                }
                self.check_size(bytes)?;
                args[2] = bytes.to_string().into_bytes();
                let inserted = self.eval(&self.scripts.create, &k, &args).await?;
                Ok(if inserted == 1 {
                    Created::Inserted
                } else {
                    Created::Collision
                })
            }
        }
    }

    async fn load(&self, key: &StoreKey) -> Result<Loaded, StoreError> {
        let k = self.redis_key(key);
        match self.format {
            Format::Koa => {
                let v: Option<Vec<u8>> = self
                    .run(|mut c| {
                        let k = k.clone();
                        async move { redis::cmd("GET").arg(k).query_async(&mut c).await }
                    })
                    .await?;
                match v {
                    None => Ok(Loaded::Missing),
                    Some(bytes) if bytes.starts_with(KOA_MARKER_PREFIX) => Ok(Loaded::Superseded),
                    Some(bytes) => Record::from_koa_json(&bytes, self.koa_default_max_age)
                        .map(Loaded::Live)
                        .ok_or_else(|| {
                            StoreError::Corrupt("koa record is not a JSON object".into())
                        }),
                }
            }
            Format::V1 => {
                let fields: Vec<(Vec<u8>, Vec<u8>)> = self
                    .run(|mut c| {
                        let k = k.clone();
                        async move { redis::cmd("HGETALL").arg(k).query_async(&mut c).await }
                    })
                    .await?;
                decode_v1(fields)
            }
        }
    }

    async fn save(
        &self,
        key: &StoreKey,
        change: Change<'_>,
        ttl: Duration,
    ) -> Result<Updated, StoreError> {
        let k = self.redis_key(key);
        let ttl = ms(ttl);
        match self.format {
            Format::Koa => {
                // koa records are whole: this request's view replaces the record (as koa does).
                let json = Record::koa_json(change.data, &change.meta);
                self.check_size(json.len())?;
                let args = [json, ttl.to_string().into_bytes()];
                Ok(updated(self.eval(&self.scripts.koa_save, &k, &args).await?))
            }
            Format::V1 => {
                let delta = change.delta;
                let mut args: Vec<Vec<u8>> = Vec::new();
                args.push(ttl.to_string().into_bytes());
                args.push(if delta.replace {
                    b"1".to_vec()
                } else {
                    b"0".to_vec()
                });
                args.push(self.max_record_bytes.to_string().into_bytes());
                args.push(meta_field(&change.meta).into_bytes());
                let set: Vec<(&String, &Value)> = if delta.replace {
                    change.data.iter().collect()
                } else {
                    delta.set.iter().map(|(k, v)| (k, v)).collect()
                };
                let removed: &[String] = if delta.replace { &[] } else { &delta.removed };
                args.push(removed.len().to_string().into_bytes());
                for r in removed {
                    args.push(data_field(r));
                }
                let mut sent = 0;
                for (name, v) in set {
                    let field = data_field(name);
                    let value = encode_value(v)?;
                    sent += field.len() + value.len();
                    args.push(field);
                    args.push(value);
                }
                // What this request adds can't fit whatever the record holds: refused before
                // the round trip. The script checks the whole record.
                self.check_size(sent)?;
                let code = self.eval(&self.scripts.save, &k, &args).await?;
                if code < 0 {
                    return Err(StoreError::TooLarge {
                        size: usize::try_from(code.unsigned_abs()).unwrap_or(usize::MAX),
                        limit: self.max_record_bytes,
                    });
                }
                Ok(updated(code))
            }
        }
    }

    async fn destroy(&self, key: &StoreKey) -> Result<Destroyed, StoreError> {
        let k = self.redis_key(key);
        let script = match self.format {
            Format::V1 => &self.scripts.destroy,
            Format::Koa => &self.scripts.koa_destroy,
        };
        let reply: redis::Value = self
            .run(|mut c| {
                let inv = script.key(&k);
                async move { inv.invoke_async(&mut c).await }
            })
            .await?;
        Ok(destroyed(reply, &self.prefix))
    }

    async fn supersede(
        &self,
        key: &StoreKey,
        successor: &StoreKey,
        ttl: Duration,
    ) -> Result<Supersede, StoreError> {
        let k = self.redis_key(key);
        let next = self.redis_key(successor);
        let ttl = ms(ttl).to_string().into_bytes();
        let code = match self.format {
            Format::V1 => {
                let args = [next.into_bytes(), ttl];
                self.eval(&self.scripts.supersede, &k, &args).await?
            }
            Format::Koa => {
                let args = [koa_marker(&next), ttl];
                self.eval(&self.scripts.koa_supersede, &k, &args).await?
            }
        };
        Ok(match code {
            1 => Supersede::Replaced,
            2 => Supersede::AlreadySuperseded,
            _ => Supersede::Missing,
        })
    }

    async fn touch(
        &self,
        key: &StoreKey,
        meta: Meta,
        ttl: Duration,
    ) -> Result<Updated, StoreError> {
        let k = self.redis_key(key);
        let ttl = ms(ttl);
        let (script, arg) = match self.format {
            Format::V1 => (&self.scripts.touch, meta_field(&meta)),
            Format::Koa => (
                &self.scripts.koa_touch,
                meta.expire.map(|e| e.to_string()).unwrap_or_default(),
            ),
        };
        let args = [ttl.to_string().into_bytes(), arg.into_bytes()];
        Ok(updated(self.eval(script, &k, &args).await?))
    }

    fn merges_deltas(&self) -> bool {
        self.format == Format::V1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redact("redis://user:hunter2@host:6379/0"),
            "redis://user:<redacted>@host:6379/0"
        );
        assert_eq!(redact("redis://:hunter2@host"), "redis://:<redacted>@host");
        assert_eq!(redact("redis://host:6379"), "redis://host:6379");
        assert_eq!(
            redact("redis+unix:///run/redis.sock?db=1&pass=hunter2&user=u"),
            "redis+unix:///run/redis.sock?db=1&pass=<redacted>&user=u"
        );
        assert_eq!(
            redact("rediss://u:hunter2@h:6380/0?protocol=resp3"),
            "rediss://u:<redacted>@h:6380/0?protocol=resp3"
        );
        let b = RedisStore::builder("redis://u:hunter2@h/1");
        assert!(!format!("{b:?}").contains("hunter2"));
    }

    #[test]
    fn meta_round_trip() {
        for m in [
            Meta {
                expire: Some(5),
                max_age: MaxAge::Ms(10),
                created: Some(1),
            },
            Meta {
                expire: None,
                max_age: MaxAge::Session,
                created: None,
            },
        ] {
            assert_eq!(parse_meta(meta_field(&m).as_bytes()), Some(m));
        }
        assert_eq!(parse_meta(b"1,2"), None);
        assert_eq!(parse_meta(b"x,2,3"), None);
    }

    #[test]
    fn v1_decoding_rejects_unknown_versions_and_garbage() {
        let f = |v: &[(&str, &str)]| {
            v.iter()
                .map(|(a, b)| (a.as_bytes().to_vec(), b.as_bytes().to_vec()))
                .collect()
        };
        assert_eq!(decode_v1(Vec::new()).unwrap(), Loaded::Missing);
        assert_eq!(
            decode_v1(f(&[("_v", "1"), ("_sup", "sess:next")])).unwrap(),
            Loaded::Superseded
        );
        assert!(decode_v1(f(&[("_v", "2"), ("_m", "0,0,0")])).is_err());
        assert!(decode_v1(f(&[("_v", "1")])).is_err());
        assert!(decode_v1(f(&[("_v", "1"), ("_m", "0,0,0"), ("d:a", "{")])).is_err());
        let r = decode_v1(f(&[("_v", "1"), ("_m", "5,10,0"), ("d:a", "[1]")]))
            .unwrap()
            .into_record()
            .unwrap();
        assert_eq!(r.data["a"], serde_json::json!([1]));
        assert_eq!(r.meta.expire, Some(5));
    }
}
