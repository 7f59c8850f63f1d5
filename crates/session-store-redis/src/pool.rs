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
use std::sync::atomic::{AtomicBool, Ordering};

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

/// The latest failed connect: a counter (so every failure is news) and its kind, for the
/// error message (no address or credentials).
#[derive(Debug, Clone, Default)]
pub(crate) struct Failure {
    pub(crate) count: u64,
    pub(crate) kind: String,
}

/// Failed connects, announced to the checkouts waiting for a connection so they fail at once
/// (the checkout timeout then only bounds a silent server).
///
/// The manager notes a failed connect; the announcement comes from bb8's error sink, which bb8
/// calls only after it has given the failed attempt's slot back, so the next checkout starts a
/// new attempt instead of waiting for one that is already over.
#[derive(Debug)]
pub(crate) struct Failures {
    pub(crate) news: tokio::sync::watch::Sender<Failure>,
    noted: std::sync::Mutex<Option<String>>,
}

impl Failures {
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(Self {
            news: tokio::sync::watch::Sender::new(Failure::default()),
            noted: std::sync::Mutex::new(None),
        })
    }

    fn note(&self, kind: String) {
        *self.noted.lock().unwrap_or_else(|p| p.into_inner()) = Some(kind);
    }

    fn announce(&self) {
        let noted = self.noted.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(kind) = noted {
            self.news.send_modify(|f| {
                f.count += 1;
                f.kind = kind;
            });
        }
    }
}

/// bb8's error sink: announces a connect failure the manager noted (other errors, such as a
/// failed checkout PING, are left to bb8, which replaces that connection by itself).
#[derive(Debug, Clone)]
pub(crate) struct Sink(pub(crate) Arc<Failures>);

impl bb8::ErrorSink<redis::RedisError> for Sink {
    fn sink(&self, _error: redis::RedisError) {
        self.0.announce();
    }

    fn boxed_clone(&self) -> Box<dyn bb8::ErrorSink<redis::RedisError>> {
        Box::new(self.clone())
    }
}

impl bb8::ManageConnection for Manager {
    type Connection = Conn;
    type Error = redis::RedisError;

    async fn connect(&self) -> Result<Conn, redis::RedisError> {
        let inner = match self
            .client
            .get_multiplexed_async_connection_with_config(&self.config)
            .await
        {
            Ok(c) => c,
            Err(e) => {
                let kind = if e.is_connection_refusal() {
                    "connection refused".to_owned()
                } else {
                    format!("connect failed ({:?})", e.kind())
                };
                self.failures.note(kind);
                return Err(e);
            }
        };
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
