//! The owner index in a table beside the sessions (`<table>_owners`, one row per entry): each
//! call is one statement, an index write drops the owner's lapsed entries, and a listing joins
//! the sessions table, so it tells live records from gone ones in the same query.

use std::time::Duration;

// The owner id is stored as hex: an app's id may hold any text, and Postgres text refuses a NUL.
use session_core::Handle;
use session_core::store::{
    Admit, Admitted, Decision, IndexEntry, Indexed, OwnerIndex, decide, hex,
};
use session_core::store::{BoxFuture, StoreError, StoreKey};
use tokio_postgres::types::{ToSql, Type};

use crate::store::{PostgresStore, advisory_lock_id};

fn int(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// An entry's columns, as the statements that write one take them ($1 owner, $2 now, $3 handle,
/// $4 key, $5 since, $6 seen, $7 device, $8 until).
struct Row<'a> {
    owner: String,
    now: i64,
    handle: &'a str,
    key: &'a str,
    since: i64,
    seen: i64,
    device: Option<String>,
    until: i64,
}

impl<'a> Row<'a> {
    fn new(owner: &str, entry: &'a IndexEntry, until: u64, now: u64) -> Row<'a> {
        Row {
            owner: hex(owner),
            now: int(now),
            handle: entry.handle.as_str(),
            key: entry.key.as_str(),
            since: int(entry.since),
            seen: int(entry.seen),
            // As JSON text: a device string may hold a NUL too.
            device: entry
                .device
                .as_ref()
                .and_then(|d| serde_json::to_string(d).ok()),
            until: int(until),
        }
    }

    fn params(&self) -> [(&(dyn ToSql + Sync), Type); 8] {
        [
            (&self.owner, Type::TEXT),
            (&self.now, Type::INT8),
            (&self.handle, Type::TEXT),
            (&self.key, Type::TEXT),
            (&self.since, Type::INT8),
            (&self.seen, Type::INT8),
            (&self.device, Type::TEXT),
            (&self.until, Type::INT8),
        ]
    }
}

/// An entry from an admission's read (handle, key, since, seen, device); `None` for one this
/// store did not write.
fn entry_of(r: &tokio_postgres::Row) -> Option<IndexEntry> {
    let key = StoreKey::from_raw(r.get::<_, String>(1));
    let handle = Handle::parse(r.get::<_, &str>(0)).filter(|h| *h == Handle::of(&key))?;
    let u = |i: usize| u64::try_from(r.get::<_, i64>(i)).unwrap_or(0);
    Some(IndexEntry {
        handle,
        key,
        since: u(2),
        seen: u(3),
        device: r
            .get::<_, Option<&str>>(4)
            .and_then(|d| serde_json::from_str(d).ok()),
    })
}

impl PostgresStore {
    /// An admission under a limit: one transaction holding an advisory lock of the owner (of
    /// this table), so admissions of one owner run one after another; each reads the entries
    /// as the one before left them (a statement's snapshot is taken after the lock), decides
    /// ([`decide`]) and writes.
    async fn admit_locked(
        &self,
        row: &Row<'_>,
        entry: &IndexEntry,
        how: Admit<'_>,
        lapsed: &[Handle],
    ) -> Result<Admitted, StoreError> {
        let lock = advisory_lock_id(&[
            b"session-store-postgres/owner/",
            self.table().as_bytes(),
            b"/",
            row.owner.as_bytes(),
        ]);
        let sql = self.sql();
        self.db()
            .run(false, |c| async move {
                c.with_client(async |client| {
                    let tx = client.transaction().await?;
                    tx.query_typed("SELECT pg_advisory_xact_lock($1)", &[(&lock, Type::INT8)])
                        .await?;
                    let rows = tx
                        .query_typed(
                            &sql.owner_admit_read,
                            &[(&row.owner, Type::TEXT), (&row.now, Type::INT8)],
                        )
                        .await?;
                    let present: Vec<IndexEntry> = rows
                        .iter()
                        .filter_map(entry_of)
                        .filter(|e| !lapsed.contains(&e.handle))
                        .collect();
                    let ended = match decide(&present, entry, how) {
                        Decision::Write => Vec::new(),
                        Decision::Replace(ended) => ended,
                        Decision::Answer(answer) => {
                            tx.rollback().await?;
                            return Ok(answer);
                        }
                    };
                    let gone: Vec<&str> = ended
                        .iter()
                        .map(|e| &e.handle)
                        .chain(lapsed)
                        .map(Handle::as_str)
                        .collect();
                    let mut params = row.params().to_vec();
                    params.push((&gone, Type::TEXT_ARRAY));
                    tx.query_typed(&sql.owner_admit_write, &params).await?;
                    tx.commit().await?;
                    Ok(if ended.is_empty() {
                        Admitted::Filed
                    } else {
                        Admitted::Ended(ended)
                    })
                })
                .await
            })
            .await
    }
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
            let row = Row::new(owner, entry, until, now);
            self.query(&self.sql().owner_index, &row.params()).await?;
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
                // An entry whose handle is not its key's was not written by this store.
                let Some(entry) = entry_of(&r) else {
                    tracing::warn!(target: "session::postgres", "skipping an owner-index entry whose handle does not match its key");
                    continue;
                };
                let u = |i: usize| u64::try_from(r.get::<_, i64>(i)).unwrap_or(0);
                out.push(Indexed {
                    entry,
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

    fn admits(&self) -> bool {
        true
    }

    fn admit<'a>(
        &'a self,
        owner: &'a str,
        entry: &'a IndexEntry,
        until: u64,
        now: u64,
        how: Admit<'a>,
    ) -> BoxFuture<'a, Result<Admitted, StoreError>> {
        Box::pin(async move {
            let row = Row::new(owner, entry, until, now);
            match how {
                // A rewrite of a row that is there changes no count: no lock (a removal racing
                // it waits on the row, or makes it find none).
                Admit::Refresh => {
                    let rows = self.query(&self.sql().owner_refresh, &row.params()).await?;
                    Ok(if rows.is_empty() {
                        Admitted::Absent
                    } else {
                        Admitted::Filed
                    })
                }
                Admit::Limit { lapsed, .. } => self.admit_locked(&row, entry, how, lapsed).await,
            }
        })
    }
}
