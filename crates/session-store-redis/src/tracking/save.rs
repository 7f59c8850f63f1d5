//! A save through the client cache's tracking connection that keeps the cached copy: the
//! save script ends with a read of the key (Redis goes on tracking it for this connection,
//! though the write dropped it), and when nothing changed the key while the save was under way
//! (its [`Claim`]'s ticket), the cached record takes the save's delta instead of being dropped.
//! So the next load of a session this process just wrote is a hit (after its read fence), not a
//! fill. Why the copy is right: the cached record is what Redis held when the save ran, since
//! any other client's write since its fill would have pushed an invalidation before the save's
//! reply on the same connection, and this process's own writes end each other's tickets.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use session_core::store::{Change, StoreError, Updated};

use super::ClientCache;
use crate::connection::{Redis, store_error};
use crate::scripts::SCRIPTS;
use crate::v1;

impl ClientCache {
    /// Saves `change` to `key` through the tracking connection, keeping the cached copy
    /// right; without a connection proved alive lately, through the pool. Also whether the
    /// table already reflects the save (the copy moved on, or dropped); when not (a save
    /// through the pool), the store's `Written` guard drops the copy, as it does when the
    /// request is dropped while the save runs.
    pub(crate) async fn save(
        &self,
        db: &Redis,
        key: &str,
        change: Change<'_>,
        ttl_ms: u64,
        limit: usize,
    ) -> (Result<Updated, StoreError>, bool) {
        let inner = &*self.inner;
        let args = match v1::save_args(change, ttl_ms, limit) {
            Ok(args) => args,
            // Refused before any round trip: nothing written, nothing to drop.
            Err(e) => return (Err(e), true),
        };
        let link = self.link().filter(|l| inner.is_fresh(l, Instant::now()));
        let Some(link) = link else {
            return (v1::save_args_run(db, key, &args, limit).await, false);
        };
        let until = Instant::now() + Duration::from_millis(ttl_ms);
        let mut inv = SCRIPTS.v1_save_tracked.key(key);
        for a in &args {
            inv.arg(a.as_slice());
        }
        let reply = self
            .write_tracked(&link, key, &inv, |table, code| {
                if code == 1 {
                    let meta = v1::stored_meta(&change.meta);
                    table.saved(key, change.delta, change.data, meta, until);
                }
                code == 1
            })
            .await;
        let dropped = matches!(&reply, Ok(Err(e)) if e.is_connection_dropped() || e.is_io_error());
        // Dropped again by the caller once the save through the pool below is done.
        let done = match reply {
            Ok(Ok(code)) => v1::saved(code, limit),
            // The tracking connection dropped before the reply: once more through the pool
            // (a save run twice writes the same delta; the cache's copy is already dropped).
            Ok(Err(_)) if dropped => {
                link.broken.store(true, Ordering::Relaxed);
                v1::save_args_run(db, key, &args, limit).await
            }
            Ok(Err(e)) => Err(match store_error(&e) {
                StoreError::Timeout(_) => StoreError::Timeout(inner.command_timeout),
                other => other,
            }),
            Err(_) => Err(StoreError::Timeout(inner.command_timeout)),
        };
        (done, !dropped)
    }
}
