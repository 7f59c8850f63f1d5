//! The [`Format::Koa`](crate::Format::Koa) record: koa-session's JSON string under the raw id,
//! written whole (last writer wins, as in koa); a supersede marker is a JSON object whose
//! first key is `_superseded`. The store operations on it (the `koa_*` scripts for the
//! writes; destroy is shared, in `store`).

use serde_json::Value;
use session_core::MaxAge;
use session_core::store::{Change, Created, Loaded, Meta, Record, StoreError, Supersede, Updated};

use crate::connection::Redis;
use crate::limit::check_size;
use crate::scripts::{SCRIPTS, superseded, updated};

/// The first bytes of a koa-format supersede marker (a JSON object whose first key is
/// `_superseded`; koa's own records never start so, since `_` keys are not user data).
const KOA_MARKER_PREFIX: &[u8] = b"{\"_superseded\":";

/// A koa-format supersede marker: the successor's key, and an `_expire` in the past, so a Koa
/// app that reads it sees an expired session and starts a new one.
fn koa_marker(successor: &str) -> Vec<u8> {
    let mut m = serde_json::Map::new();
    m.insert("_superseded".into(), Value::String(successor.to_owned()));
    m.insert("_expire".into(), Value::from(1u64));
    m.insert("_maxAge".into(), Value::from(1u64));
    serde_json::to_vec(&Value::Object(m)).unwrap_or_default()
}

/// Writes a new record under `k` unless the key exists (a `SET NX` that recognises its own
/// first run).
pub(crate) async fn create(
    db: &Redis,
    k: &str,
    record: &Record,
    ttl_ms: u64,
    limit: usize,
) -> Result<Created, StoreError> {
    let json = Record::koa_json(&record.data, &record.meta);
    check_size(json.len(), limit)?;
    let args = [json, ttl_ms.to_string().into_bytes()];
    Ok(if db.eval(&SCRIPTS.koa_create, k, &args).await? == 1 {
        Created::Inserted
    } else {
        Created::Collision
    })
}

/// Reads the record under `k` (one `GET`); `default_max_age` for a record without `_maxAge`.
pub(crate) async fn load(
    db: &Redis,
    k: &str,
    default_max_age: MaxAge,
) -> Result<Loaded, StoreError> {
    match db.get(k).await? {
        None => Ok(Loaded::Missing),
        Some(bytes) if bytes.starts_with(KOA_MARKER_PREFIX) => Ok(Loaded::Superseded),
        Some(bytes) => Record::from_koa_json(&bytes, default_max_age)
            .map(Loaded::Live)
            .ok_or_else(|| StoreError::Corrupt("koa record is not a JSON object".into())),
    }
}

/// Replaces the live record by this request's view of it (koa records are whole, as in koa).
pub(crate) async fn save(
    db: &Redis,
    k: &str,
    change: Change<'_>,
    ttl_ms: u64,
    limit: usize,
) -> Result<Updated, StoreError> {
    let json = Record::koa_json(change.data, &change.meta);
    check_size(json.len(), limit)?;
    let args = [json, ttl_ms.to_string().into_bytes()];
    Ok(updated(db.eval(&SCRIPTS.koa_save, k, &args).await?))
}

/// Extends the live record and rewrites its `_expire`.
pub(crate) async fn touch(
    db: &Redis,
    k: &str,
    meta: &Meta,
    ttl_ms: u64,
) -> Result<Updated, StoreError> {
    let expire = meta.expire.map(|e| e.to_string()).unwrap_or_default();
    let args = [ttl_ms.to_string().into_bytes(), expire.into_bytes()];
    Ok(updated(db.eval(&SCRIPTS.koa_touch, k, &args).await?))
}

/// Replaces the live record by a marker naming `next` (a Redis key).
pub(crate) async fn supersede(
    db: &Redis,
    k: &str,
    next: &str,
    ttl_ms: u64,
) -> Result<Supersede, StoreError> {
    let args = [koa_marker(next), ttl_ms.to_string().into_bytes()];
    Ok(superseded(db.eval(&SCRIPTS.koa_supersede, k, &args).await?))
}
