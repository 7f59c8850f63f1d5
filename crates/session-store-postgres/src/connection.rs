//! The pool, the time limit on every call, one retry on a connection that died, and the
//! mapping of Postgres failures to typed [`StoreError`]s (never with the connection string).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bb8::{Pool, PooledConnection, RunError};
use bb8_postgres::PostgresConnectionManager;
use session_core::StoreError;
use tokio::sync::Semaphore;
use tokio_postgres::NoTls;
use tokio_postgres::error::SqlState;

/// The pool type a store can be built on (what [`crate::PostgresStore::from_pool`] takes).
pub type PgPool = Pool<PostgresConnectionManager<NoTls>>;

pub(crate) type Conn = PooledConnection<'static, PostgresConnectionManager<NoTls>>;

/// A Postgres failure as a [`StoreError`]: a statement cancelled by `statement_timeout` is a
/// timeout, a read-only server (a replica, or a primary demoted) refuses writes, a lost
/// connection is an outage; the message is Postgres's, which names no credential.
pub(crate) fn store_error(e: &tokio_postgres::Error, limit: Duration) -> StoreError {
    if let Some(code) = e.code() {
        return match *code {
            SqlState::QUERY_CANCELED => StoreError::Timeout(limit),
            SqlState::READ_ONLY_SQL_TRANSACTION => {
                StoreError::Rejected("the server is read-only (a replica?)".into())
            }
            SqlState::ADMIN_SHUTDOWN
            | SqlState::CRASH_SHUTDOWN
            | SqlState::CANNOT_CONNECT_NOW
            | SqlState::TOO_MANY_CONNECTIONS => StoreError::Unavailable(code.code().to_owned()),
            SqlState::DISK_FULL | SqlState::OUT_OF_MEMORY => {
                StoreError::Rejected(code.code().to_owned())
            }
            _ => StoreError::Backend(format!("postgres error {}", code.code())),
        };
    }
    if e.is_closed() {
        return StoreError::Unavailable("the connection to postgres was closed".into());
    }
    StoreError::Unavailable("postgres could not be reached".into())
}

/// Whether the call failed because its connection is gone (worth one retry on another).
fn lost_connection(e: &tokio_postgres::Error) -> bool {
    e.is_closed()
        || matches!(
            e.code(),
            Some(c) if *c == SqlState::ADMIN_SHUTDOWN || *c == SqlState::CRASH_SHUTDOWN
        )
}

/// Tries of one call when its connection turns out dead.
const TRIES: u32 = 3;

/// The pool and the time limit of one call.
#[derive(Clone)]
pub(crate) struct Db {
    pub(crate) pool: PgPool,
    /// Bounds a whole call: checkout plus statement.
    pub(crate) limit: Duration,
    /// The server's `statement_timeout` (what a cancelled statement reports).
    pub(crate) statement_timeout: Duration,
    /// The pool's checkout time limit (what a checkout that found no connection reports).
    pub(crate) checkout_timeout: Duration,
    /// One permit per pooled connection, handed out first come first served: bb8 hands a
    /// returned connection to whichever task asks next, so under load a task that loops
    /// (every request: a load, then a save) can take it again ahead of those waiting, and
    /// they time out. With the permits, at most one task per connection asks the pool.
    pub(crate) permits: Option<Arc<Semaphore>>,
}

impl Db {
    /// Runs `op` on a pooled connection within the time limit. With `retry` (reads only), a
    /// call that failed because its connection died (a restarted server,
    /// `pg_terminate_backend`) is tried again on another one, up to [`TRIES`] times in all. A
    /// write is never sent twice: its connection may have died after the server committed it,
    /// and a second run would answer for the changed row (a destroy finding nothing, a create
    /// colliding with itself); it fails with a transient error instead. Connections already
    /// known dead are skipped before anything is sent.
    pub(crate) async fn run<T, F, Fut>(&self, retry: bool, op: F) -> Result<T, StoreError>
    where
        F: Fn(Conn) -> Fut,
        Fut: Future<Output = Result<T, tokio_postgres::Error>>,
    {
        let (limit, statement) = (self.limit, self.statement_timeout);
        let attempt = async {
            let _permit = match &self.permits {
                Some(p) => Some(
                    tokio::time::timeout(self.checkout_timeout, Arc::clone(p).acquire_owned())
                        .await
                        .map_err(|_| StoreError::Timeout(self.checkout_timeout))?
                        .map_err(|_| StoreError::Unavailable("the pool is closed".into()))?,
                ),
                None => None,
            };
            let mut tries = 0;
            loop {
                tries += 1;
                let conn = self.checkout().await?;
                match op(conn).await {
                    Ok(v) => return Ok(v),
                    Err(e) if retry && tries < TRIES && lost_connection(&e) => {
                        tracing::debug!(target: "session::postgres", "a pooled connection died; retrying on another");
                    }
                    Err(e) => return Err(store_error(&e, statement)),
                }
            }
        };
        match tokio::time::timeout(limit, attempt).await {
            Ok(r) => r,
            Err(_) => Err(StoreError::Timeout(limit)),
        }
    }

    /// A connection from the pool, skipping those already known dead (their socket closed:
    /// a restart or a terminated backend), which the pool then replaces. No round trip.
    async fn checkout(&self) -> Result<Conn, StoreError> {
        let idle = self.pool.state().connections as usize;
        for _ in 0..=idle {
            let conn = self.pool.get_owned().await.map_err(|e| match e {
                RunError::TimedOut => StoreError::Timeout(self.checkout_timeout),
                RunError::User(e) => store_error(&e, self.limit),
            })?;
            if !conn.is_closed() {
                return Ok(conn);
            }
            // Dropped as broken: bb8-postgres checks `is_closed` when a connection comes back.
        }
        Err(StoreError::Unavailable(
            "every pooled connection to postgres was closed".into(),
        ))
    }
}
