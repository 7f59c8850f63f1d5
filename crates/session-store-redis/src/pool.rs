//! The bb8 connection manager, with a broken flag so a multiplexed connection whose socket died
//! is thrown away instead of handed out again.
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
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use redis::aio::MultiplexedConnection;

/// A pooled connection.
pub(crate) struct Conn {
    pub(crate) inner: MultiplexedConnection,
    /// Raised by any clone whose command found the connection dead.
    pub(crate) broken: Arc<AtomicBool>,
}

/// Makes multiplexed connections from a `redis::Client` (built from the URL, with TLS roots
/// when given), with redis-rs's own connect and reply timeouts set to the store's (its defaults
/// are 1 s and 500 ms) so the two agree.
///
/// A failed connect is announced through [`Failures`]: bb8 hands a connect error to its error
/// sink, not to the callers waiting for a connection, so without this every request would wait
/// out the whole checkout timeout although Redis refused at once.
pub(crate) struct Manager {
    pub(crate) client: redis::Client,
    pub(crate) config: redis::AsyncConnectionConfig,
    pub(crate) failures: Arc<Failures>,
}

/// Failed connects, announced to the checkouts waiting for a connection so that they fail at
/// once when no connection can come to them (the checkout timeout then only bounds a silent
/// server).
///
/// Every error bb8 hands its sink is announced (a failed connect, after bb8 has given the
/// attempt's slot back, so the next checkout starts a new attempt; or a failed checkout PING
/// when `test_on_checkout` is on): none is missed. A waiting checkout that hears of one gives
/// up only when no connection could still come to it: none open (a busy one comes back) and
/// no connect under way. So one refused connect (Redis's `maxclients`) fails nobody while
/// other connections serve.
#[derive(Debug)]
pub(crate) struct Failures {
    /// The latest failure (no address or credentials), sent on each failure.
    pub(crate) news: tokio::sync::watch::Sender<Failure>,
    /// Connects under way.
    pub(crate) connecting: AtomicUsize,
}

impl Failures {
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(Self {
            news: tokio::sync::watch::Sender::new(Failure::Outage(String::new())),
            connecting: AtomicUsize::new(0),
        })
    }

    fn announce(&self, e: &redis::RedisError) {
        let failure = if e.is_connection_refusal() {
            Failure::Outage("connection refused".to_owned())
        } else if login_refused(e) {
            // Once per run of refusals: every request tries a connect, and would log again.
            if !matches!(*self.news.borrow(), Failure::Login) {
                tracing::error!(target: "session::redis", "Redis refused the store's login");
            }
            Failure::Login
        } else {
            Failure::Outage(format!("connect failed ({:?})", e.kind()))
        };
        // Every failure is news, the same kind again included.
        self.news.send_modify(|f| *f = failure);
    }
}

/// Whether Redis refused the login (a wrong user or password, or none where one is needed).
pub(crate) fn login_refused(e: &redis::RedisError) -> bool {
    e.kind() == redis::ErrorKind::AuthenticationFailed
        || matches!(e.code(), Some("WRONGPASS" | "NOAUTH"))
}

/// A refused login as a store error: not transient (a 500, not a 503 that invites retries),
/// naming what to check, never the URL.
pub(crate) fn login_error() -> session_core::StoreError {
    session_core::StoreError::Backend(
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
    pub(crate) fn to_error(&self) -> session_core::StoreError {
        match self {
            Failure::Outage(kind) => session_core::StoreError::Unavailable(kind.clone()),
            Failure::Login => login_error(),
        }
    }
}

/// Counts a connect under way for as long as it lives (also when bb8 drops it).
struct Connecting<'a>(&'a AtomicUsize);

impl<'a> Connecting<'a> {
    fn new(n: &'a AtomicUsize) -> Self {
        n.fetch_add(1, Ordering::SeqCst);
        Connecting(n)
    }
}

impl Drop for Connecting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// bb8's error sink: announces the failure.
#[derive(Debug, Clone)]
pub(crate) struct Sink(pub(crate) Arc<Failures>);

impl bb8::ErrorSink<redis::RedisError> for Sink {
    fn sink(&self, error: redis::RedisError) {
        self.0.announce(&error);
    }

    fn boxed_clone(&self) -> Box<dyn bb8::ErrorSink<redis::RedisError>> {
        Box::new(self.clone())
    }
}

impl bb8::ManageConnection for Manager {
    type Connection = Conn;
    type Error = redis::RedisError;

    async fn connect(&self) -> Result<Conn, redis::RedisError> {
        // Ends (and stops counting) before bb8 hands a failure to the sink.
        let _connecting = Connecting::new(&self.failures.connecting);
        let inner = self
            .client
            .get_multiplexed_async_connection_with_config(&self.config)
            .await?;
        Ok(Conn {
            inner,
            broken: Arc::new(AtomicBool::new(false)),
        })
    }

    async fn is_valid(&self, conn: &mut Conn) -> Result<(), redis::RedisError> {
        redis::cmd("PING").query_async::<()>(&mut conn.inner).await
    }

    fn has_broken(&self, conn: &mut Conn) -> bool {
        conn.broken.load(Ordering::Relaxed)
    }
}
