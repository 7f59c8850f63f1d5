//! `PostgresStore`: the [`Store`] contract in one statement per call.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use session_core::store::{
    Change, Created, Destroyed, Loaded, Meta, Record, Store, StoreError, StoreKey, Supersede,
    Updated,
};
use session_core::{Data, MaxAge};
use tokio_postgres::types::{ToSql, Type};

use crate::connection::Db;
use crate::sql::Sql;

/// The PostgreSQL session store. Cheap to clone (clones share the pool).
#[derive(Clone)]
pub struct PostgresStore {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) db: Db,
    pub(crate) sql: Sql,
    pub(crate) table: String,
    pub(crate) url: String,
    pub(crate) max_record_bytes: usize,
}

impl fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (connections, idle) = self.inner.db.state();
        f.debug_struct("PostgresStore")
            .field("url", &self.inner.url)
            .field("table", &self.inner.table)
            .field("connections", &connections)
            .field("idle", &idle)
            .finish_non_exhaustive()
    }
}

/// A TTL in whole ms for the database: at least 1, at most
/// [`MAX_STORE_TTL`](session_core::store::MAX_STORE_TTL).
fn ms(d: Duration) -> i64 {
    let d = d.min(session_core::store::MAX_STORE_TTL);
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX).max(1)
}

fn opt(v: Option<u64>) -> Option<i64> {
    v.and_then(|v| i64::try_from(v).ok())
}

fn max_age(m: MaxAge) -> i64 {
    m.as_ms().and_then(|v| i64::try_from(v).ok()).unwrap_or(0)
}

/// The data as stored: a JSON object of each top-level key to its value's JSON text. Kept as
/// text because `jsonb` refuses some JSON (a `\u0000` in a string) and rewrites numbers and
/// key order; the object still merges per key with `||`.
fn encode(pairs: impl Iterator<Item = (String, Value)>) -> Result<(Value, usize), StoreError> {
    let mut out = serde_json::Map::new();
    let mut bytes = 0;
    for (k, v) in pairs {
        let text = serde_json::to_string(&v)
            .map_err(|e| StoreError::Backend(format!("could not encode a session value: {e}")))?;
        let k = encode_key(k);
        bytes += k.len() + text.len();
        out.insert(k, Value::String(text));
    }
    Ok((Value::Object(out), bytes))
}

/// Marks a key stored in hex (Postgres text can't hold a NUL).
const HEX_KEY: char = '\u{1}';

/// A key as stored: itself, or (if it holds a NUL or starts with [`HEX_KEY`]) the marker and
/// its bytes in hex, so every key round-trips.
pub(crate) fn encode_key(k: String) -> String {
    if !k.contains('\0') && !k.starts_with(HEX_KEY) {
        return k;
    }
    let mut out = String::from(HEX_KEY);
    out.push_str(&session_core::store::hex(&k));
    out
}

fn decode_key(k: String) -> Result<String, StoreError> {
    let Some(hex) = k.strip_prefix(HEX_KEY) else {
        return Ok(k);
    };
    let bad = || StoreError::Corrupt("a stored key is not valid hex".into());
    let bytes = (0..hex.len())
        .step_by(2)
        .map(|i| {
            hex.get(i..i + 2)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        })
        .collect::<Option<Vec<u8>>>()
        .ok_or_else(bad)?;
    String::from_utf8(bytes).map_err(|_| bad())
}

fn decode(stored: Value) -> Result<Data, StoreError> {
    let Value::Object(map) = stored else {
        return Err(StoreError::Corrupt("stored data is not an object".into()));
    };
    let mut data = Data::new();
    for (k, v) in map {
        let Value::String(text) = v else {
            return Err(StoreError::Corrupt("a stored value is not encoded".into()));
        };
        let value = serde_json::from_str(&text)
            .map_err(|e| StoreError::Corrupt(format!("a stored value is not JSON: {e}")))?;
        data.insert(decode_key(k)?, value);
    }
    Ok(data)
}

fn meta_of(expire: Option<i64>, max_age: i64, created: Option<i64>) -> Meta {
    let pos = |v: Option<i64>| v.and_then(|v| u64::try_from(v).ok()).filter(|v| *v > 0);
    Meta {
        expire: pos(expire),
        max_age: match u64::try_from(max_age) {
            Ok(ms) if ms > 0 => MaxAge::Ms(ms),
            _ => MaxAge::Session,
        },
        created: pos(created),
    }
}

/// Refuses what can't fit before any round trip.
fn check(size: usize, limit: usize) -> Result<(), StoreError> {
    if size > limit {
        return Err(StoreError::TooLarge { size, limit });
    }
    Ok(())
}

impl PostgresStore {
    pub(crate) fn db(&self) -> &Db {
        &self.inner.db
    }

    pub(crate) fn sql(&self) -> &Sql {
        &self.inner.sql
    }

    /// Creates the tables and indexes if they are missing (`CREATE ... IF NOT EXISTS`; safe to
    /// run at every start). [`schema`](crate::schema) gives the same SQL for those who manage
    /// schemas themselves.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        // `CREATE ... IF NOT EXISTS` is not safe against itself: app servers starting together
        // take a transaction-scoped advisory lock of this table's first. The statements go as
        // one simple query, which PostgreSQL runs as one implicit transaction (the lock lasts
        // to its end); no explicit `BEGIN`: a statement that failed (the lock waited past the
        // statement timeout, a missing right) would skip the `COMMIT` and leave the pooled
        // connection in an aborted transaction, failing every later call on it.
        let sql = format!(
            "SELECT pg_advisory_xact_lock({}); {}",
            lock_id(&self.inner.table),
            self.sql().migrate
        );
        self.db()
            .run(false, |c| {
                let sql = sql.clone();
                async move { c.batch_execute(&sql).await }
            })
            .await
    }

    /// The sessions table (the owner index is `<table>_owners`).
    pub fn table(&self) -> &str {
        &self.inner.table
    }

    /// The connection string with any password replaced, as `Debug` shows it.
    pub fn redacted_url(&self) -> &str {
        &self.inner.url
    }

    /// The time the live record under `key` has left (for tests and monitoring); `None` if
    /// there is none.
    pub async fn ttl(&self, key: &StoreKey) -> Result<Option<Duration>, StoreError> {
        let k = key.as_str();
        let rows = self.read(&self.sql().ttl, &[(&k, Type::TEXT)]).await?;
        Ok(rows
            .first()
            .and_then(|r| r.get::<_, Option<i64>>(0))
            .map(|ms| Duration::from_millis(u64::try_from(ms).unwrap_or(0))))
    }

    /// Deletes an expired row in the background (best effort: the sweeper, or a create of the
    /// same key, takes care of it otherwise; a read-only server refuses it).
    fn delete_later(&self, key: StoreKey) {
        let store = self.clone();
        tokio::spawn(async move {
            let k = key.as_str();
            let sql = &store.sql().delete_expired;
            if let Err(e) = store.query(sql, &[(&k, Type::TEXT)]).await {
                tracing::debug!(target: "session::postgres", error = %e, "could not delete an expired row; the sweeper will");
            }
        });
    }

    /// Runs one statement with typed parameters (prepared once per connection); sent at most
    /// once.
    pub(crate) async fn query(
        &self,
        sql: &str,
        params: &[(&(dyn ToSql + Sync), Type)],
    ) -> Result<Vec<tokio_postgres::Row>, StoreError> {
        self.db()
            .run(false, |c| async move { c.query(sql, params).await })
            .await
    }

    /// [`PostgresStore::query`] for a read: tried again on another connection if its own died.
    pub(crate) async fn read(
        &self,
        sql: &str,
        params: &[(&(dyn ToSql + Sync), Type)],
    ) -> Result<Vec<tokio_postgres::Row>, StoreError> {
        self.db()
            .run(true, |c| async move { c.query(sql, params).await })
            .await
    }
}

/// The advisory lock a migration of `table` takes.
fn lock_id(table: &str) -> i64 {
    advisory_lock_id(&[b"session-store-postgres/migrate/", table.as_bytes()])
}

/// An advisory lock's id: FNV-1a of `parts`, the same on every app server.
pub(crate) fn advisory_lock_id(parts: &[&[u8]]) -> i64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in parts.iter().flat_map(|p| p.iter()) {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    i64::from_ne_bytes(h.to_ne_bytes())
}

/// Three counts a CTE statement answers: (found, superseded, written).
fn counts(rows: &[tokio_postgres::Row]) -> (i64, i64, i64) {
    rows.first().map_or((0, 0, 0), |r| {
        (
            r.get::<_, Option<i64>>(0).unwrap_or(0),
            r.get::<_, Option<i64>>(1).unwrap_or(0),
            r.get::<_, Option<i64>>(2).unwrap_or(0),
        )
    })
}

fn updated(found: i64, superseded: i64, written: i64) -> Updated {
    if written > 0 {
        Updated::Updated
    } else if found > 0 && superseded > 0 {
        Updated::Superseded
    } else {
        Updated::NotFound
    }
}

impl Store for PostgresStore {
    fn system(&self) -> &'static str {
        "postgresql"
    }

    fn owner_index(&self) -> Option<&dyn session_core::store::OwnerIndex> {
        Some(self)
    }

    /// Live keys in key order; the cursor is the last key of the batch.
    async fn scan(
        &self,
        cursor: Option<&str>,
        count: usize,
    ) -> Result<session_core::store::KeyScan, StoreError> {
        let after = cursor.unwrap_or("");
        let limit = i64::try_from(count.max(1)).unwrap_or(i64::MAX);
        let rows = self
            .read(
                &self.sql().scan,
                &[(&after, Type::TEXT), (&limit, Type::INT8)],
            )
            .await?;
        let mut keys = Vec::with_capacity(rows.len());
        for row in &rows {
            let key: String = row
                .try_get(0)
                .map_err(|e| StoreError::Corrupt(format!("a key column: {e}")))?;
            keys.push(StoreKey::from_raw(key));
        }
        let next = (rows.len() == count.max(1))
            .then(|| keys.last().map(|k| k.as_str().to_owned()))
            .flatten();
        Ok((keys, next))
    }

    async fn create(
        &self,
        key: &StoreKey,
        record: &Record,
        ttl: Duration,
    ) -> Result<Created, StoreError> {
        let (data, size) = encode(record.data.iter().map(|(k, v)| (k.clone(), v.clone())))?;
        check(size, self.inner.max_record_bytes)?;
        session_core::telemetry::record_bytes("postgresql", size);
        let m = record.meta;
        let (k, expire, age, created, ttl) = (
            key.as_str(),
            opt(m.expire),
            max_age(m.max_age),
            opt(m.created),
            ms(ttl),
        );
        let rows = self
            .query(
                &self.sql().create,
                &[
                    (&k, Type::TEXT),
                    (&data, Type::JSONB),
                    (&expire, Type::INT8),
                    (&age, Type::INT8),
                    (&created, Type::INT8),
                    (&ttl, Type::INT8),
                ],
            )
            .await?;
        Ok(if rows.len() == 1 {
            Created::Inserted
        } else {
            Created::Collision
        })
    }

    async fn load(&self, key: &StoreKey) -> Result<Loaded, StoreError> {
        let k = key.as_str();
        let rows = self.read(&self.sql().load, &[(&k, Type::TEXT)]).await?;
        let Some(row) = rows.first() else {
            return Ok(Loaded::Missing);
        };
        if !row.get::<_, bool>(5) {
            // Expired: gone for the session, and deleted off the request's path.
            self.delete_later(key.clone());
            return Ok(Loaded::Missing);
        }
        if row.get::<_, Option<String>>(4).is_some() {
            return Ok(Loaded::Superseded);
        }
        let data = decode(row.get::<_, Value>(0))?;
        let meta = meta_of(row.get(1), row.get(2), row.get(3));
        Ok(Loaded::Live(Record { data, meta }))
    }

    async fn save(
        &self,
        key: &StoreKey,
        change: Change<'_>,
        ttl: Duration,
    ) -> Result<Updated, StoreError> {
        let delta = change.delta;
        let limit = self.inner.max_record_bytes;
        let (set, size) = if delta.replace {
            encode(change.data.iter().map(|(k, v)| (k.clone(), v.clone())))?
        } else {
            encode(delta.set.iter().cloned())?
        };
        check(size, limit)?;
        session_core::telemetry::record_bytes("postgresql", size);
        let removed: Vec<String> = if delta.replace {
            Vec::new()
        } else {
            delta.removed.iter().cloned().map(encode_key).collect()
        };
        let m = change.meta;
        let (k, replace, expire, age, created, ttl) = (
            key.as_str(),
            delta.replace,
            opt(m.expire),
            max_age(m.max_age),
            opt(m.created),
            ms(ttl),
        );
        let lim = i64::try_from(limit).unwrap_or(i64::MAX);
        // A row that changed between the update and the question why (a concurrent save made
        // it fit) is tried again; a few rounds of that mean something is wrong.
        for _ in 0..3 {
            let rows = self
                .query(
                    &self.sql().save,
                    &[
                        (&k, Type::TEXT),
                        (&replace, Type::BOOL),
                        (&set, Type::JSONB),
                        (&removed, Type::TEXT_ARRAY),
                        (&expire, Type::INT8),
                        (&age, Type::INT8),
                        (&created, Type::INT8),
                        (&ttl, Type::INT8),
                        (&lim, Type::INT8),
                    ],
                )
                .await?;
            if !rows.is_empty() {
                return Ok(Updated::Updated);
            }
            // Nothing written (the rare path): gone, superseded, or over the limit.
            let why = self
                .read(
                    &self.sql().save_why,
                    &[
                        (&k, Type::TEXT),
                        (&replace, Type::BOOL),
                        (&set, Type::JSONB),
                        (&removed, Type::TEXT_ARRAY),
                    ],
                )
                .await?;
            let Some(row) = why.first() else {
                return Ok(Updated::NotFound);
            };
            if row.get::<_, bool>(0) {
                return Ok(Updated::Superseded);
            }
            let size = row
                .get::<_, Option<i64>>(1)
                .and_then(|s| usize::try_from(s).ok())
                .unwrap_or(usize::MAX);
            if size > limit {
                return Err(StoreError::TooLarge { size, limit });
            }
        }
        Err(StoreError::Backend(
            "a save kept racing concurrent changes of its record".into(),
        ))
    }

    async fn destroy(&self, key: &StoreKey) -> Result<Destroyed, StoreError> {
        let k = key.as_str();
        let rows = self.query(&self.sql().destroy, &[(&k, Type::TEXT)]).await?;
        Ok(match rows.first() {
            None => Destroyed::Missing,
            Some(r) => match (r.get::<_, Option<String>>(0), r.get::<_, bool>(1)) {
                (_, false) => Destroyed::Missing,
                (Some(next), true) => Destroyed::Superseded(StoreKey::from_raw(next)),
                (None, true) => Destroyed::Removed,
            },
        })
    }

    async fn supersede(
        &self,
        key: &StoreKey,
        successor: &StoreKey,
        ttl: Duration,
    ) -> Result<Supersede, StoreError> {
        let (k, next, ttl) = (key.as_str(), successor.as_str(), ms(ttl));
        let rows = self
            .query(
                &self.sql().supersede,
                &[(&k, Type::TEXT), (&next, Type::TEXT), (&ttl, Type::INT8)],
            )
            .await?;
        Ok(match counts(&rows) {
            (_, _, w) if w > 0 => Supersede::Replaced,
            (f, s, _) if f > 0 && s > 0 => Supersede::AlreadySuperseded,
            _ => Supersede::Missing,
        })
    }

    async fn touch(
        &self,
        key: &StoreKey,
        meta: Meta,
        ttl: Duration,
    ) -> Result<Updated, StoreError> {
        let (k, expire, age, created, ttl) = (
            key.as_str(),
            opt(meta.expire),
            max_age(meta.max_age),
            opt(meta.created),
            ms(ttl),
        );
        let rows = self
            .query(
                &self.sql().touch,
                &[
                    (&k, Type::TEXT),
                    (&expire, Type::INT8),
                    (&age, Type::INT8),
                    (&created, Type::INT8),
                    (&ttl, Type::INT8),
                ],
            )
            .await?;
        let (f, s, w) = counts(&rows);
        Ok(updated(f, s, w))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn values_round_trip_through_the_stored_encoding() {
        let Value::Object(data) =
            json!({"a": "x\u{0}y", "n": [1.5, 1e300, 18446744073709551615u64]})
        else {
            panic!()
        };
        let (stored, size) = encode(data.clone().into_iter()).unwrap();
        assert!(size > 0);
        assert_eq!(decode(stored).unwrap(), data);
        let Value::Object(odd) = json!({"a\u{0}b": 1, "\u{1}x": 2, "": 3}) else {
            panic!()
        };
        let (stored, _) = encode(odd.clone().into_iter()).unwrap();
        assert!(!stored.to_string().contains("\\u0000"));
        assert_eq!(decode(stored).unwrap(), odd);
        assert!(decode(json!({"a": 1})).is_err());
        assert!(decode(json!([1])).is_err());
    }

    #[test]
    fn meta_columns_round_trip() {
        let m = meta_of(Some(5), 10, None);
        assert_eq!(
            (m.expire, m.max_age, m.created),
            (Some(5), MaxAge::Ms(10), None)
        );
        assert_eq!(meta_of(None, 0, Some(-3)).max_age, MaxAge::Session);
    }
}
