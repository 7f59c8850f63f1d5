//! The bb8 connection manager, with a broken flag so a multiplexed connection whose socket died
//! is thrown away instead of handed out again, and what Redis's failed connects say to the
//! checkouts waiting for a connection (the fast-failing checkout itself is `session_pool`'s).
//!
//! bb8-redis's manager reports every connection as healthy (`has_broken` is always false) and
//! can't take TLS roots or redis-rs's timeouts, so ours makes the connections itself; without a
//! PING on every checkout (one extra round trip per request) a pool would keep serving a dead
//! connection after Redis restarts. Here a command that fails with an I/O, dropped-connection
//! or timeout error raises its connection's flag, and the connection is discarded the next
//! time it comes out of (or goes back into) the pool.
//!
//! A checkout only picks a connection: commands run on a clone of the multiplexed connection
//! and the pool slot is released at once, so many requests share each connection (that is what
//! multiplexing is for) and nobody queues for a slot while another request waits on Redis.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use redis::aio::MultiplexedConnection;

/// A pooled connection.
pub(crate) struct Conn {
    pub(crate) inner: MultiplexedConnection,
    /// Raised by any clone whose command found the connection dead.
    pub(crate) broken: Arc<AtomicBool>,
    /// The Sentinel generation it was made in (0 without Sentinel).
    pub(crate) generation: u64,
}

/// Where connections go: one URL's server, or the master a set of Sentinels names.
#[derive(Clone)]
pub(crate) enum Target {
    Url(Box<redis::Client>),
    /// With whether connections speak RESP3 (the client cache's tracking connection).
    Sentinel(Arc<crate::sentinel::Sentinel>, bool),
}

impl Target {
    /// A connection, with the Sentinel generation it belongs to.
    pub(crate) async fn connect(
        &self,
        config: &redis::AsyncConnectionConfig,
    ) -> redis::RedisResult<(MultiplexedConnection, u64)> {
        match self {
            Self::Url(client) => Ok((
                client
                    .get_multiplexed_async_connection_with_config(config)
                    .await?,
                0,
            )),
            Self::Sentinel(s, resp3) => s.connect(config, *resp3).await,
        }
    }

    /// The Sentinel generation now (0 without Sentinel): connections of another are stale.
    pub(crate) fn generation(&self) -> u64 {
        match self {
            Self::Url(_) => 0,
            Self::Sentinel(s, _) => s.generation(),
        }
    }
}

/// Makes multiplexed connections to its [`Target`] (a `redis::Client` built from the URL, with
/// TLS roots when given, or the master the Sentinels name), with redis-rs's own connect and reply timeouts set to the store's (its defaults
/// are 1 s and 500 ms) so the two agree. Each connect runs through the pool's
/// [`Connects`](session_pool::Connects), so that a failed one reaches the checkouts waiting
/// for a connection at once (see `session_pool`).
pub(crate) struct Manager {
    pub(crate) target: Target,
    pub(crate) config: redis::AsyncConnectionConfig,
    pub(crate) connects: Arc<session_pool::Connects<Server>>,
}

/// Redis as the pool sees it: what its failed connects say to the waiting checkouts.
///
/// Every error bb8 hands its sink reads as a failure: a failed connect, or a failed checkout
/// PING when `test_on_checkout` is on. No refusal holds connects off (the PostgreSQL store's
/// hold-off): a checkout only picks a multiplexed connection and frees its slot at once, so a
/// Redis at `maxclients` sees the refused connects of the first wave and hardly any after (6
/// in 500 loads, 50 at once, on 2 allowed connections and a pool of 8), and each costs Redis
/// an accept and a one-line reply, not a server process and a SCRAM exchange. A hold-off would
/// only make a pool with no connection open fail requests after Redis had room again.
pub(crate) struct Server;

impl session_pool::Backend for Server {
    type Error = redis::RedisError;
    type Failure = Failure;

    fn failure(&self, e: &redis::RedisError, last: Option<&Failure>) -> Failure {
        if e.is_connection_refusal() {
            Failure::Outage("connection refused".to_owned())
        } else if login_refused(e) {
            // Once per run of refusals: every request tries a connect, and would log again.
            if !matches!(last, Some(Failure::Login)) {
                tracing::error!(target: "session::redis", "Redis refused the store's login");
            }
            Failure::Login
        } else {
            Failure::Outage(format!("connect failed ({:?})", e.kind()))
        }
    }
}

/// Whether Redis refused the login (a wrong user or password, or none where one is needed).
pub(crate) fn login_refused(e: &redis::RedisError) -> bool {
    e.kind() == redis::ErrorKind::AuthenticationFailed
        || matches!(e.code(), Some("WRONGPASS" | "NOAUTH"))
}

/// A refused login as a store error: not transient (a 500, not a 503 that invites retries),
/// naming what to check, never the URL.
pub(crate) fn login_error() -> session_core::store::StoreError {
    session_core::store::StoreError::Backend(
        "Redis refused the login: check the user and password of the store's URL".into(),
    )
}

/// What a failed connect says to the checkouts waiting for it.
#[derive(Debug, Clone)]
pub(crate) enum Failure {
    /// Redis is down, refusing or full: worth a retry later.
    Outage(String),
    /// Redis refused the login (a wrong user or password): no retry mends it.
    Login,
}

impl Failure {
    pub(crate) fn to_error(&self) -> session_core::store::StoreError {
        match self {
            Failure::Outage(kind) => session_core::store::StoreError::Unavailable(kind.clone()),
            Failure::Login => login_error(),
        }
    }
}

/// A pooled connection as bb8 holds it: counted by the pool while it lives.
type Pooled = session_pool::Connection<Conn>;

/// What a connect, or a checkout PING, reports to bb8.
type Error = session_pool::ConnectError<redis::RedisError>;

impl bb8::ManageConnection for Manager {
    type Connection = Pooled;
    type Error = Error;

    async fn connect(&self) -> Result<Pooled, Error> {
        self.connects
            .connect(async {
                let (inner, generation) = self.target.connect(&self.config).await?;
                Ok(Conn {
                    inner,
                    broken: Arc::new(AtomicBool::new(false)),
                    generation,
                })
            })
            .await
    }

    async fn is_valid(&self, conn: &mut Pooled) -> Result<(), Error> {
        redis::cmd("PING")
            .query_async::<()>(&mut conn.inner)
            .await
            .map_err(session_pool::ConnectError::Failed)
    }

    fn has_broken(&self, conn: &mut Pooled) -> bool {
        conn.broken.load(Ordering::Relaxed) || conn.generation != self.target.generation()
    }
}
