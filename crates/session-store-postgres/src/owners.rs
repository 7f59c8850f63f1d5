//! The owner index in a table beside the sessions (`<table>_owners`, one row per entry): each
//! call is one statement, an index write drops the owner's lapsed entries, and a listing joins
//! the sessions table, so it tells live records from gone ones in the same query.

use std::time::Duration;

// The owner id is stored as hex: an app's id may hold any text, and Postgres text refuses a NUL.
use session_core::Handle;
use session_core::store::{BoxFuture, StoreError, StoreKey};
use session_core::store::{IndexEntry, Indexed, OwnerIndex, hex};
use tokio_postgres::types::Type;

use crate::store::PostgresStore;

fn int(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

impl OwnerIndex for PostgresStore {
    fn index<'a>(
        &'a self,
        owner: &'a str,
        entry: &'a IndexEntry,
        until: u64,
        now: u64,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let (now, until, owner) = (int(now), int(until), hex(owner));
            let (handle, key) = (entry.handle.as_str(), entry.key.as_str());
            let (since, seen) = (int(entry.since), int(entry.seen));
            // As JSON text: a device string may hold a NUL too.
            let device = entry
                .device
                .as_ref()
                .and_then(|d| serde_json::to_string(d).ok());
            self.query(
                &self.sql().owner_index,
                &[
                    (&owner, Type::TEXT),
                    (&now, Type::INT8),
                    (&handle, Type::TEXT),
                    (&key, Type::TEXT),
                    (&since, Type::INT8),
                    (&seen, Type::INT8),
                    (&device, Type::TEXT),
                    (&until, Type::INT8),
                ],
            )
            .await?;
            Ok(())
        })
    }

    fn unindex<'a>(
        &'a self,
        owner: &'a str,
        handles: &'a [Handle],
        now: u64,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let (now, owner) = (int(now), hex(owner));
            let handles: Vec<&str> = handles.iter().map(Handle::as_str).collect();
            self.query(
                &self.sql().owner_unindex,
                &[
                    (&owner, Type::TEXT),
                    (&now, Type::INT8),
                    (&handles, Type::TEXT_ARRAY),
                ],
            )
            .await?;
            Ok(())
        })
    }

    fn entries<'a>(
        &'a self,
        owner: &'a str,
        now: u64,
    ) -> BoxFuture<'a, Result<Vec<Indexed>, StoreError>> {
        Box::pin(async move {
            let (now, owner) = (int(now), hex(owner));
            let rows = self
                .read(
                    &self.sql().owner_entries,
                    &[(&owner, Type::TEXT), (&now, Type::INT8)],
                )
                .await?;
            let mut out = Vec::with_capacity(rows.len());
            for r in rows {
                let key = StoreKey::from_raw(r.get::<_, String>(1));
                // An entry whose handle is not its key's was not written by this store.
                let Some(handle) =
                    Handle::parse(r.get::<_, &str>(0)).filter(|h| *h == Handle::of(&key))
                else {
                    tracing::warn!(target: "session::postgres", "skipping an owner-index entry whose handle does not match its key");
                    continue;
                };
                let u = |i: usize| u64::try_from(r.get::<_, i64>(i)).unwrap_or(0);
                out.push(Indexed {
                    entry: IndexEntry {
                        handle,
                        key,
                        since: u(2),
                        seen: u(3),
                        device: r
                            .get::<_, Option<&str>>(4)
                            .and_then(|d| serde_json::from_str(d).ok()),
                    },
                    until: u(5),
                    record_ttl: r
                        .get::<_, Option<i64>>(6)
                        .and_then(|ms| u64::try_from(ms).ok())
                        .filter(|ms| *ms > 0)
                        .map(Duration::from_millis),
                });
            }
            Ok(out)
        })
    }
}
