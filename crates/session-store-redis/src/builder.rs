//! Building a store: [`RedisStoreBuilder`] (started by [`RedisStore::builder`],
//! [`RedisStore::cluster`] or [`RedisStore::from_pool`]), the pool or cluster client it sets
//! up, the build error [`RedisBuildError`], and the redaction of passwords in URLs.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use session_core::MaxAge;

use crate::cluster_cache::ClusterCache;
use crate::connection::{Pool, Redis};
use crate::pool::{Manager, Server, Target};
use crate::store::{Cache, Format, RedisStore};
use crate::tracking::ClientCache;

/// A building failure: an invalid URL or cluster configuration (with the `tls` feature, also
/// a root certificate that can't be read). Building never connects.
#[derive(Debug)]
pub enum RedisBuildError {
    /// The URL, the cluster configuration or the TLS root certificate was refused (the
    /// reason, as redis-rs gives it).
    InvalidUrl(String),
    /// [`RedisStoreBuilder::client_cache`] was asked for where it can't work yet (the
    /// reason).
    ClientCacheUnsupported(&'static str),
}

impl std::error::Error for RedisBuildError {}

impl fmt::Display for RedisBuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidUrl(why) => write!(f, "invalid Redis URL: {why}"),
            Self::ClientCacheUnsupported(why) => write!(f, "no client cache here: {why}"),
        }
    }
}

/// Where connections come from.
enum Source {
    Url(String),
    Pool(bb8::Pool<bb8_redis::RedisConnectionManager>),
    Cluster(Vec<String>),
    /// Sentinel URLs and the master's name.
    Sentinel(Vec<String>, String),
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

impl RedisStore {
    /// Starts a builder for `url` (`redis://[user:password@]host:port[/db]`, or `rediss://...`
    /// for TLS with the `tls` feature).
    pub fn builder(url: impl Into<String>) -> RedisStoreBuilder {
        RedisStoreBuilder::new(Source::Url(url.into()))
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
        RedisStoreBuilder::new(Source::Cluster(nodes.into_iter().map(Into::into).collect()))
    }

    /// Starts a builder for a master watched by Redis Sentinel: `sentinels` are the Sentinels'
    /// URLs (`redis://[user:password@]host:port` each; list them all), `master` the name they
    /// monitor it under. The master's own login and database, if any, are
    /// [`RedisStoreBuilder::master_login`] and [`RedisStoreBuilder::master_database`].
    ///
    /// Everything works as on one server, the client cache included, and a failover needs no
    /// restart:
    /// - each new connection asks every Sentinel for the master, takes the answer of the
    ///   highest configuration epoch, and checks with `ROLE` that the server is a master;
    /// - the store subscribes to every Sentinel: from the moment one starts a failover of this
    ///   master (`+try-failover`), every call fails at once ([`StoreError::Unavailable`], a
    ///   503) instead of writing to the master being replaced, until the replica the Sentinel
    ///   chose answers `ROLE` as a master (at most 10 s without a promotion or an abort); the
    ///   new master is used from then on, connections to the old one are dropped, and the
    ///   client cache is emptied (it serves nothing while the gate is closed);
    /// - a `READONLY` answer (the server became a replica), a refused connection or a server
    ///   that is not a master sends the next connection to the Sentinels again; a write
    ///   refused with `READONLY` did not run and is sent once more, to the new master.
    ///
    /// What a failover can still lose, measured, is in the guide's Redis chapter
    /// (`docs/redis.md` in the repository). TLS (`rediss://`) is not supported with Sentinel
    /// yet: building fails.
    ///
    /// [`StoreError::Unavailable`]: session_core::store::StoreError::Unavailable
    pub fn sentinel<I, S>(sentinels: I, master: impl Into<String>) -> RedisStoreBuilder
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        RedisStoreBuilder::new(Source::Sentinel(
            sentinels.into_iter().map(Into::into).collect(),
            master.into(),
        ))
    }

    /// Starts a builder on the app's existing bb8-redis pool (its own size and timeouts apply;
    /// pool options set here are ignored). Turn on the pool's `test_on_check_out`, or set its
    /// connections' response timeout, as you need: this store can't replace a dead connection
    /// in a pool it doesn't own, so it relies on the pool's own checks.
    pub fn from_pool(pool: bb8::Pool<bb8_redis::RedisConnectionManager>) -> RedisStoreBuilder {
        RedisStoreBuilder::new(Source::Pool(pool))
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
    client_cache: Option<usize>,
    /// Sentinel only: the master's login and database.
    master: Option<redis::RedisConnectionInfo>,
}

impl fmt::Debug for RedisStoreBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStoreBuilder")
            .field(
                "url",
                &match &self.source {
                    Source::Url(u) => redact(u),
                    Source::Pool(_) => "<existing pool>".into(),
                    Source::Cluster(nodes) | Source::Sentinel(nodes, _) => nodes
                        .iter()
                        .map(|n| redact(n))
                        .collect::<Vec<_>>()
                        .join(","),
                },
            )
            .field("prefix", &self.prefix)
            .field("format", &self.format)
            .field("client_cache", &self.client_cache)
            .finish_non_exhaustive()
    }
}

impl RedisStoreBuilder {
    /// The defaults, for connections from `source`.
    fn new(source: Source) -> Self {
        Self {
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
            client_cache: None,
            master: None,
        }
    }

    /// Sentinel only ([`RedisStore::sentinel`]): the user and password of the master and its
    /// replicas (an empty `user` is the default user); the Sentinels' own are in their URLs.
    /// [`Self::build`] fails with [`RedisBuildError::InvalidUrl`] elsewhere.
    pub fn master_login(mut self, user: &str, password: &str) -> Self {
        let mut m = self
            .master
            .take()
            .unwrap_or_default()
            .set_password(password);
        if !user.is_empty() {
            m = m.set_username(user);
        }
        self.master = Some(m);
        self
    }

    /// Sentinel only ([`RedisStore::sentinel`]): the master's database (default 0).
    /// [`Self::build`] fails with [`RedisBuildError::InvalidUrl`] elsewhere.
    pub fn master_database(mut self, db: i64) -> Self {
        self.master = Some(self.master.take().unwrap_or_default().set_db(db));
        self
    }

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
    /// share it and go out together, so one connection batches best (see the repository's BENCHMARKS.md). Raise
    /// it when one connection's reader becomes the limit: many cores, large records.
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
    ///
    /// [`StoreError::TooLarge`]: session_core::store::StoreError::TooLarge
    pub fn max_record_bytes(mut self, n: usize) -> Self {
        self.max_record_bytes = n;
        self
    }

    /// Keeps up to `max_bytes` of recently read sessions in this process, kept right by Redis
    /// (server-assisted client-side caching, Redis 6 or newer): a load of a session that
    /// nobody changed since this process last read it reads no record; it waits for a read
    /// fence instead, the reply to a command sent after it began on the same connection (a
    /// write or a fill of another request, else a `PING` that many concurrent loads share).
    ///
    /// - **The rule: a load served from the cache reflects every write, logout and revoke
    ///   whose answer any app server sharing the Redis had returned before the load began.**
    ///   The store opens one more connection, with `CLIENT TRACKING` on, and runs its commands
    ///   on it while it is up (the pool is the fallback): Redis remembers which keys this
    ///   process holds and, when another client changes, deletes or expires one (a save, a
    ///   logout or a revoke on another app server, a Koa app, `redis-cli`, `FLUSHDB`), queues
    ///   an invalidation on that connection while it runs the write, before it answers the
    ///   writer. A cached copy is served only after a command sent on the same connection
    ///   after the load began has been answered, so every invalidation queued before it has
    ///   been applied: another request's write or fill when there is one, else a `PING`, one
    ///   at a time, serving every load that began before it went out (under load it lets the
    ///   ready tasks run first, so the loads among them share it). A fence that doesn't come
    ///   back within 250 ms (or the command timeout, if
    ///   shorter) gives the connection up and the load reads Redis through the pool, as it
    ///   would without the cache. Writes this process makes drop its own copy as they return,
    ///   or as their request is dropped. Not covered: `SWAPDB` (Redis sends no invalidation
    ///   for it). What it costs and saves, measured: the repository's BENCHMARKS.md.
    /// - **A lost or silent connection drops the whole cache.** A closed connection does so at
    ///   once; a connection that goes silent without closing (a network partition) fails the
    ///   next read fence, or the `PING` sent every 250 ms when no load asks for one. Without a
    ///   working tracking connection, loads go through the pool as they would without the
    ///   cache; the connection is (re)opened in the background, at most once a second, so no
    ///   request waits for it. The first failure to open it is logged as a warning: an ACL
    ///   user needs `HELLO`, `CLIENT|TRACKING` and `PING`.
    /// - **Bounded memory**: least recently used sessions leave first once `max_bytes` is
    ///   reached, counted as the decoded records take it in memory (keys, JSON nodes and text,
    ///   a few hundred bytes of bookkeeping per session): an estimate, within a small factor of
    ///   the allocator's figure. An entry is never served past its Redis TTL. Redis keeps a
    ///   table of the keys each tracking connection read (sessions that were not found
    ///   included), bounded by its `tracking-table-max-keys`; past that bound Redis drops
    ///   entries and invalidates them, which costs hits, never correctness.
    /// - **`rolling`**: a rolling session's touch goes through the tracking connection and
    ///   moves the cached copy's expiry, so a rolling read costs its fence and the touch
    ///   (which at commit still confirms no login superseded the session before the cookie
    ///   goes out) instead of a read and the touch.
    ///
    /// - **Sentinel** ([`RedisStore::sentinel`]): the tracking connection goes to the master
    ///   the Sentinels name; a failover (from the moment a Sentinel starts one) drops it and
    ///   everything cached, and nothing is served while any Sentinel's subscription is down (a
    ///   change of master could go unheard).
    /// - **Cluster** ([`RedisStore::cluster`]): one tracking connection per master, each with an
    ///   equal share of `max_bytes`. A load is read (and cached) on the connection of the master
    ///   serving the key's slot, by the slot map the cache reads with `CLUSTER SLOTS` (again after
    ///   any redirect), and a cached copy is served only after a fence on that same connection:
    ///   `EXISTS key`, whose reply comes after every invalidation that master queued, and which
    ///   is refused (`MOVED`, `ASK`) once the master no longer serves the key (a slot migration,
    ///   a failover): the rule holds through both. Writes go through the cluster connection.
    ///
    /// Only for [`Format::V1`], and not on [`RedisStore::from_pool`] (it gives no URL to
    /// connect with) nor a Cluster over TLS: [`Self::build`] fails with
    /// [`RedisBuildError::ClientCacheUnsupported`] otherwise. `0` turns it off (the default).
    /// [`RedisStore::client_cache_stats`] tells how it does.
    pub fn client_cache(mut self, max_bytes: usize) -> Self {
        self.client_cache = (max_bytes > 0).then_some(max_bytes);
        self
    }

    /// Trusts this PEM root certificate for `rediss://` (instead of the system's roots); for
    /// servers with a private CA.
    #[cfg(feature = "tls")]
    #[cfg_attr(docsrs, doc(cfg(feature = "tls")))]
    pub fn tls_root_certificate(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.tls_root = Some(pem.into());
        self
    }

    fn client(&self, url: &str) -> Result<redis::Client, RedisBuildError> {
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
                    .map_err(|e| RedisBuildError::InvalidUrl(e.to_string()));
            }
        }
        redis::Client::open(url).map_err(|e| RedisBuildError::InvalidUrl(e.to_string()))
    }

    /// Builds the store. No connection is made yet: the pool connects on first use, so an app
    /// starts even while Redis is down (requests then get fast errors).
    pub async fn build(mut self) -> Result<RedisStore, RedisBuildError> {
        if self.client_cache.is_some() {
            match (&self.source, self.format) {
                (Source::Cluster(nodes), Format::V1) if nodes.iter().any(|n| is_tls(n)) => {
                    return Err(RedisBuildError::ClientCacheUnsupported(
                        "not on a Redis Cluster over TLS yet",
                    ));
                }
                (Source::Pool(_), _) => {
                    return Err(RedisBuildError::ClientCacheUnsupported(
                        "an existing pool gives no URL for the tracking connection",
                    ));
                }
                (Source::Url(_) | Source::Sentinel(..) | Source::Cluster(_), Format::Koa) => {
                    return Err(RedisBuildError::ClientCacheUnsupported(
                        "only for the V1 record format",
                    ));
                }
                (Source::Url(_) | Source::Sentinel(..) | Source::Cluster(_), Format::V1) => {}
            }
        }
        if self.master.is_some() && !matches!(self.source, Source::Sentinel(..)) {
            return Err(RedisBuildError::InvalidUrl(
                "master_login and master_database are for Sentinel; put them in the URL".into(),
            ));
        }
        let source = std::mem::replace(&mut self.source, Source::Cluster(Vec::new()));
        let mut cache = None;
        let mut cluster_cache = None;
        let mut sentinel = None;
        let (pool, url) = match source {
            Source::Url(url) => {
                let client = self.client(&url)?;
                if let Some(max_bytes) = self.client_cache {
                    cache = Some(self.cache(Target::Url(Box::new(resp3(&client)?)), max_bytes));
                }
                (self.own_pool(Target::Url(Box::new(client))), redact(&url))
            }
            Source::Sentinel(nodes, master) => {
                if nodes.iter().any(|n| is_tls(n)) {
                    return Err(RedisBuildError::InvalidUrl(
                        "TLS is not supported with Sentinel yet".into(),
                    ));
                }
                let shown = nodes
                    .iter()
                    .map(|n| redact(n))
                    .collect::<Vec<_>>()
                    .join(",");
                let s = crate::sentinel::Sentinel::new(
                    &nodes,
                    master.clone(),
                    self.master.clone().unwrap_or_default(),
                    self.checkout_timeout,
                )
                .map_err(RedisBuildError::InvalidUrl)?;
                let s = Arc::new(s);
                if let Some(max_bytes) = self.client_cache {
                    cache = Some(self.cache(Target::Sentinel(Arc::clone(&s), true), max_bytes));
                }
                let pool = self.own_pool(Target::Sentinel(Arc::clone(&s), false));
                sentinel = Some(s);
                (pool, format!("sentinel {shown} master {master}"))
            }
            Source::Pool(pool) => (Pool::Shared(pool), "<existing pool>".to_owned()),
            Source::Cluster(nodes) => {
                let shown = nodes
                    .iter()
                    .map(|n| redact(n))
                    .collect::<Vec<_>>()
                    .join(",");
                if let (Some(max_bytes), Some(seed)) = (self.client_cache, nodes.first()) {
                    let base = redis::IntoConnectionInfo::into_connection_info(seed.as_str())
                        .map_err(|e| RedisBuildError::InvalidUrl(e.to_string()))?;
                    cluster_cache = Some(ClusterCache::new(
                        base,
                        max_bytes,
                        self.checkout_timeout,
                        self.command_timeout,
                    ));
                }
                let client = redis::cluster::ClusterClient::builder(nodes)
                    .connection_timeout(self.checkout_timeout)
                    .response_timeout(self.command_timeout)
                    // A command for a failed shard retries (following redirects) within the
                    // command timeout; the timeout cuts it short, so a request never hangs.
                    .retries(3)
                    .min_retry_wait(50)
                    .max_retry_wait(200)
                    .build()
                    .map_err(|e| RedisBuildError::InvalidUrl(e.to_string()))?;
                (
                    Pool::Cluster {
                        client: Arc::new(client),
                        conn: Arc::new(tokio::sync::OnceCell::new()),
                    },
                    shown,
                )
            }
        };
        let preferred = cache
            .clone()
            .map(|c| Arc::new(c) as Arc<dyn crate::connection::Preferred>);
        let cache = match (cache, cluster_cache) {
            (Some(c), _) => Some(Cache::Server(c)),
            (None, Some(c)) => Some(Cache::Cluster(c)),
            (None, None) => None,
        };
        let redis = Redis::new(
            pool,
            self.checkout_timeout,
            self.command_timeout,
            self.pool_size,
            preferred,
            sentinel,
        );
        Ok(RedisStore::new(
            redis,
            url,
            self.prefix,
            self.format,
            self.koa_default_max_age,
            self.max_record_bytes,
            cache,
        ))
    }
}

impl RedisStoreBuilder {
    /// Our pool of connections to `target`.
    fn own_pool(&self, target: Target) -> Pool {
        let config = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.checkout_timeout))
            .set_response_timeout(Some(self.command_timeout));
        let connects = session_pool::Connects::new(Server);
        let builder = bb8::Pool::builder()
            .max_size(self.pool_size)
            .min_idle(None)
            .connection_timeout(self.checkout_timeout)
            .test_on_check_out(self.test_on_checkout);
        let manager = Manager {
            target,
            config,
            connects: Arc::clone(&connects),
        };
        Pool::Own(session_pool::Pool::new(builder, &connects, manager))
    }

    /// A client cache of `max_bytes` tracking through connections to `target` (RESP3).
    fn cache(&self, target: Target, max_bytes: usize) -> ClientCache {
        ClientCache::new(
            target,
            max_bytes,
            self.checkout_timeout,
            self.command_timeout,
        )
    }
}

/// Whether `url` asks for TLS (`rediss://`, `valkeys://`, in any case). A URL that doesn't
/// parse fails later, where its client is made.
fn is_tls(url: &str) -> bool {
    redis::IntoConnectionInfo::into_connection_info(url)
        .is_ok_and(|i| matches!(i.addr(), redis::ConnectionAddr::TcpTls { .. }))
        || url
            .get(..6)
            .is_some_and(|s| s.eq_ignore_ascii_case("rediss"))
        || url
            .get(..7)
            .is_some_and(|s| s.eq_ignore_ascii_case("valkeys"))
}

/// A client like `client` that speaks RESP3 (the pushes of client tracking need it).
fn resp3(client: &redis::Client) -> Result<redis::Client, RedisBuildError> {
    let info = client.get_connection_info().clone();
    let settings = info
        .redis_settings()
        .clone()
        .set_protocol(redis::ProtocolVersion::RESP3);
    redis::Client::open(info.set_redis_settings(settings))
        .map_err(|e| RedisBuildError::InvalidUrl(e.to_string()))
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
}
