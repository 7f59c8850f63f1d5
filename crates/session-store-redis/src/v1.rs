//! The [`Format::V1`](crate::Format::V1) record: a Redis hash with `_v` (the format version),
//! `_m` (the koa fields), `_n` (the data's byte count) and one `d:<key>` field per top-level
//! key; a supersede marker is a hash with `_v` and `_sup`. Its encoding, decoding, and the
//! store operations on it but destroy (per-key delta writes through the `v1_*` scripts).

use std::collections::HashSet;

use serde_json::Value;
use session_core::store::{
    Change, Created, Delta, Loaded, Meta, Record, StoreError, Supersede, Updated,
};
use session_core::{Data, MaxAge};

use crate::connection::Redis;
use crate::limit::check_size;
use crate::scripts::{SCRIPTS, superseded, updated};

/// The store's version tag in [`Format::V1`](crate::Format::V1) records.
const V1_TAG: &str = "1";

pub(crate) fn meta_field(m: &Meta) -> String {
    format!(
        "{},{},{}",
        m.expire.unwrap_or(0),
        m.max_age.as_ms().unwrap_or(0),
        m.created.unwrap_or(0)
    )
}

fn parse_meta(s: &[u8]) -> Option<Meta> {
    let s = std::str::from_utf8(s).ok()?;
    let mut it = s.split(',').map(|p| p.parse::<u64>().ok());
    let (expire, max_age, created) = (it.next()??, it.next()??, it.next()??);
    let some = |v: u64| (v != 0).then_some(v);
    Some(Meta {
        expire: some(expire),
        max_age: if max_age == 0 {
            MaxAge::Session
        } else {
            MaxAge::Ms(max_age)
        },
        created: some(created),
    })
}

/// How many arrays and objects deep a stored value may nest: serde_json reads back no deeper
/// (its recursion limit), so a deeper value would be written and then read as corrupt.
const MAX_NESTING: usize = 127;

/// Whether `v` nests at most `left` arrays and objects deep (stops at the limit, so its own
/// recursion is bounded too).
fn nests_within(v: &Value, left: usize) -> bool {
    match v {
        Value::Array(a) => left > 0 && a.iter().all(|x| nests_within(x, left - 1)),
        Value::Object(o) => left > 0 && o.values().all(|x| nests_within(x, left - 1)),
        _ => true,
    }
}

fn encode_value(v: &Value) -> Result<Vec<u8>, StoreError> {
    if !nests_within(v, MAX_NESTING) {
        return Err(StoreError::Rejected(format!(
            "a session value nests more than {MAX_NESTING} arrays or objects deep, more than \
             can be read back"
        )));
    }
    serde_json::to_vec(v)
        .map_err(|e| StoreError::Backend(format!("could not encode a session value: {e}")))
}

/// The hash field of a session key.
fn data_field(name: &str) -> Vec<u8> {
    let mut f = Vec::with_capacity(2 + name.len());
    f.extend_from_slice(b"d:");
    f.extend_from_slice(name.as_bytes());
    f
}

/// Decodes a V1 hash (`HGETALL` reply).
pub(crate) fn decode(fields: Vec<(Vec<u8>, Vec<u8>)>) -> Result<Loaded, StoreError> {
    if fields.is_empty() {
        return Ok(Loaded::Missing);
    }
    let mut meta = None;
    let mut version_ok = false;
    let mut data = Data::new();
    for (f, v) in fields {
        match f.as_slice() {
            b"_v" => version_ok = v == V1_TAG.as_bytes(),
            b"_sup" => return Ok(Loaded::Superseded),
            b"_m" => meta = parse_meta(&v),
            name => {
                if let Some(key) = name.strip_prefix(b"d:") {
                    let key = String::from_utf8(key.to_vec())
                        .map_err(|_| StoreError::Corrupt("a field name is not UTF-8".into()))?;
                    let value = serde_json::from_slice(&v).map_err(|e| {
                        StoreError::Corrupt(format!("a stored value is not JSON: {e}"))
                    })?;
                    data.insert(key, value);
                }
            }
        }
    }
    if !version_ok {
        return Err(StoreError::Corrupt("unknown record format version".into()));
    }
    let meta = meta.ok_or_else(|| StoreError::Corrupt("record has no meta field".into()))?;
    Ok(Loaded::Live(Record { data, meta }))
}

/// Writes a new record under `k` unless the key exists.
pub(crate) async fn create(
    db: &Redis,
    k: &str,
    record: &Record,
    ttl_ms: u64,
    limit: usize,
) -> Result<Created, StoreError> {
    let mut args: Vec<Vec<u8>> = Vec::with_capacity(3 + 2 * record.data.len());
    args.push(ttl_ms.to_string().into_bytes());
    args.push(meta_field(&record.meta).into_bytes());
    args.push(Vec::new());
    let mut bytes = 0;
    for (name, v) in &record.data {
        let field = data_field(name);
        let value = encode_value(v)?;
        bytes += field.len() + value.len();
        args.push(field);
        args.push(value);
    }
    check_size(bytes, limit)?;
    session_core::telemetry::record_bytes("redis", bytes);
    args[2] = bytes.to_string().into_bytes();
    let inserted = db.eval(&SCRIPTS.v1_create, k, &args).await?;
    Ok(if inserted == 1 {
        Created::Inserted
    } else {
        Created::Collision
    })
}

/// Reads the record under `k` (one `HGETALL`).
pub(crate) async fn load(db: &Redis, k: &str) -> Result<Loaded, StoreError> {
    decode(db.hgetall(k).await?)
}

/// Applies this request's delta (or, after `clear()`, its whole data) to the live record.
pub(crate) async fn save(
    db: &Redis,
    k: &str,
    change: Change<'_>,
    ttl_ms: u64,
    limit: usize,
) -> Result<Updated, StoreError> {
    let args = save_args(change, ttl_ms, limit)?;
    save_args_run(db, k, &args, limit).await
}

/// [`save`] with its arguments made ([`save_args`]).
pub(crate) async fn save_args_run(
    db: &Redis,
    k: &str,
    args: &[Vec<u8>],
    limit: usize,
) -> Result<Updated, StoreError> {
    saved(db.eval(&SCRIPTS.v1_save, k, args).await?, limit)
}

/// The save script's arguments for `change`; refused before any round trip when what this
/// request adds can't fit whatever the record holds (the script checks the whole record).
pub(crate) fn save_args(
    change: Change<'_>,
    ttl_ms: u64,
    limit: usize,
) -> Result<Vec<Vec<u8>>, StoreError> {
    let delta = change.delta;
    let (set, removed) = if delta.replace {
        (change.data.iter().collect(), Vec::new())
    } else {
        distinct(delta)
    };
    let mut args: Vec<Vec<u8>> = Vec::with_capacity(5 + removed.len() + 2 * set.len());
    args.push(ttl_ms.to_string().into_bytes());
    args.push(if delta.replace {
        b"1".to_vec()
    } else {
        b"0".to_vec()
    });
    args.push(limit.to_string().into_bytes());
    args.push(meta_field(&change.meta).into_bytes());
    args.push(removed.len().to_string().into_bytes());
    for r in removed {
        args.push(data_field(r));
    }
    let mut sent = 0;
    for (name, v) in set {
        let field = data_field(name);
        let value = encode_value(v)?;
        sent += field.len() + value.len();
        args.push(field);
        args.push(value);
    }
    check_size(sent, limit)?;
    session_core::telemetry::record_bytes("redis", sent);
    Ok(args)
}

/// A delta's keys as the save script needs them: each set key once, with its last value, and
/// each removed key once, unless it is also set. [`Record::apply`] gives a delta that names a
/// key twice (or removes and sets it) this meaning; the script counts the record's size from
/// the keys it is sent, so a key sent twice would be counted twice, or taken off twice.
fn distinct(delta: &Delta) -> (Vec<(&String, &Value)>, Vec<&String>) {
    // One key (the common save) can't repeat: no set to build on the hot path.
    if delta.set.len() + delta.removed.len() <= 1 {
        let set = delta.set.iter().map(|(k, v)| (k, v)).collect();
        return (set, delta.removed.iter().collect());
    }
    let mut seen = HashSet::with_capacity(delta.set.len());
    let mut set: Vec<(&String, &Value)> = delta
        .set
        .iter()
        .rev()
        .filter(|(k, _)| seen.insert(k.as_str()))
        .map(|(k, v)| (k, v))
        .collect();
    set.reverse();
    let removed = delta
        .removed
        .iter()
        .filter(|k| seen.insert(k.as_str()))
        .collect();
    (set, removed)
}

/// A save script's reply as the store answers it.
pub(crate) fn saved(code: i64, limit: usize) -> Result<Updated, StoreError> {
    if code < 0 {
        return Err(StoreError::TooLarge {
            size: usize::try_from(code.unsigned_abs()).unwrap_or(usize::MAX),
            limit,
        });
    }
    Ok(updated(code))
}

/// The meta a record written with `m` reads back as (`_m` keeps `0` for none).
pub(crate) fn stored_meta(m: &Meta) -> Meta {
    parse_meta(meta_field(m).as_bytes()).unwrap_or(*m)
}

/// Extends the live record and rewrites its meta.
pub(crate) async fn touch(
    db: &Redis,
    k: &str,
    meta: &Meta,
    ttl_ms: u64,
) -> Result<Updated, StoreError> {
    let args = [
        ttl_ms.to_string().into_bytes(),
        meta_field(meta).into_bytes(),
    ];
    Ok(updated(db.eval(&SCRIPTS.v1_touch, k, &args).await?))
}

/// Replaces the live record by a marker naming `next` (a Redis key).
pub(crate) async fn supersede(
    db: &Redis,
    k: &str,
    next: &str,
    ttl_ms: u64,
) -> Result<Supersede, StoreError> {
    let args = [next.as_bytes().to_vec(), ttl_ms.to_string().into_bytes()];
    Ok(superseded(db.eval(&SCRIPTS.v1_supersede, k, &args).await?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_nested_past_what_reads_back_are_refused() {
        let nested = |n: usize| {
            let mut v = serde_json::json!(1);
            for _ in 0..n {
                v = serde_json::json!([v]);
            }
            v
        };
        let ok = encode_value(&nested(MAX_NESTING)).unwrap();
        assert!(serde_json::from_slice::<Value>(&ok).is_ok());
        let deeper = serde_json::to_vec(&nested(MAX_NESTING + 1)).unwrap();
        assert!(serde_json::from_slice::<Value>(&deeper).is_err());
        assert!(matches!(
            encode_value(&nested(MAX_NESTING + 1)),
            Err(StoreError::Rejected(_))
        ));
        assert!(encode_value(&serde_json::json!({"a": {"b": [1, 2]}})).is_ok());
    }

    #[test]
    fn meta_round_trip() {
        for m in [
            Meta {
                expire: Some(5),
                max_age: MaxAge::Ms(10),
                created: Some(1),
            },
            Meta {
                expire: None,
                max_age: MaxAge::Session,
                created: None,
            },
        ] {
            assert_eq!(parse_meta(meta_field(&m).as_bytes()), Some(m));
        }
        assert_eq!(parse_meta(b"1,2"), None);
        assert_eq!(parse_meta(b"x,2,3"), None);
    }

    #[test]
    fn v1_decoding_rejects_unknown_versions_and_garbage() {
        let f = |v: &[(&str, &str)]| {
            v.iter()
                .map(|(a, b)| (a.as_bytes().to_vec(), b.as_bytes().to_vec()))
                .collect()
        };
        assert_eq!(decode(Vec::new()).unwrap(), Loaded::Missing);
        assert_eq!(
            decode(f(&[("_v", "1"), ("_sup", "sess:next")])).unwrap(),
            Loaded::Superseded
        );
        assert!(decode(f(&[("_v", "2"), ("_m", "0,0,0")])).is_err());
        assert!(decode(f(&[("_v", "1")])).is_err());
        assert!(decode(f(&[("_v", "1"), ("_m", "0,0,0"), ("d:a", "{")])).is_err());
        let r = decode(f(&[("_v", "1"), ("_m", "5,10,0"), ("d:a", "[1]")]))
            .unwrap()
            .into_record()
            .unwrap();
        assert_eq!(r.data["a"], serde_json::json!([1]));
        assert_eq!(r.meta.expire, Some(5));
    }
}
