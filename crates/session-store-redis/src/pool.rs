//! The bb8 connection manager: bb8-redis's manager, plus a broken flag so a multiplexed
//! connection whose socket died is thrown away instead of handed out again.
//!
//! bb8-redis reports every connection as healthy (`has_broken` is always false), so without a
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

use bb8_redis::RedisConnectionManager;
use redis::aio::MultiplexedConnection;

/// A pooled connection.
pub(crate) struct Conn {
    pub(crate) inner: MultiplexedConnection,
    /// Raised by any clone whose command found the connection dead.
    pub(crate) broken: Arc<AtomicBool>,
}

pub(crate) struct Manager {
    pub(crate) inner: RedisConnectionManager,
    /// redis-rs's own reply timeout (its default is 500 ms); set to the store's command timeout
    /// so the two agree.
    pub(crate) response_timeout: std::time::Duration,
}

impl bb8::ManageConnection for Manager {
    type Connection = Conn;
    type Error = redis::RedisError;

    async fn connect(&self) -> Result<Conn, redis::RedisError> {
        let mut inner = bb8::ManageConnection::connect(&self.inner).await?;
        inner.set_response_timeout(self.response_timeout);
        Ok(Conn {
            inner,
            broken: Arc::new(AtomicBool::new(false)),
        })
    }

    async fn is_valid(&self, conn: &mut Conn) -> Result<(), redis::RedisError> {
        bb8::ManageConnection::is_valid(&self.inner, &mut conn.inner).await
    }

    fn has_broken(&self, conn: &mut Conn) -> bool {
        conn.broken.load(Ordering::Relaxed)
    }
}
