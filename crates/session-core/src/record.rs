//! What a store keeps for a session: the user's data plus koa's expiry fields, and the delta a
//! request made to it.

use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::{Map, Value};
use std::time::Duration;

/// The user data of a session: a JSON object (koa's `ctx.session` without its `_` fields).
pub type Data = Map<String, Value>;

/// How long a session lives after its last write (koa's `maxAge`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MaxAge {
    /// A lifetime in milliseconds; the cookie gets `Expires` and the record `_expire`.
    Ms(u64),
    /// A browser-session cookie (`_session: true`, no `Expires`); the server keeps the record for
    /// the configured session TTL after each write.
    Session,
}

impl MaxAge {
    /// A lifetime from a [`Duration`] (millisecond precision).
    pub fn from_duration(d: Duration) -> Self {
        Self::Ms(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }

    /// The lifetime in milliseconds, `None` for a browser-session cookie.
    pub fn as_ms(self) -> Option<u64> {
        match self {
            Self::Ms(ms) => Some(ms),
            Self::Session => None,
        }
    }
}

/// The reserved fields koa keeps beside the user data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Meta {
    /// `_expire`: when the session ends unless written again (ms since the epoch); `None` for
    /// a browser-session cookie.
    pub expire: Option<u64>,
    /// `_maxAge` (or `_session`): the lifetime this session was written with; it wins over the
    /// configured one when loaded, as in koa.
    pub max_age: MaxAge,
    /// `_created`: when the session was first created (ms since the epoch), never refreshed.
    /// Only written when an absolute lifetime is configured, to keep koa's bytes otherwise.
    pub created: Option<u64>,
}

/// A stored session: user data plus [`Meta`]. Its `Debug` shows the keys, never their values
/// (session data stays out of logs).
#[derive(Clone, PartialEq)]
pub struct Record {
    /// The user's keys, in insertion order.
    pub data: Data,
    /// koa's reserved fields.
    pub meta: Meta,
}

/// The changes one request made to a session, so a store can apply them to the record as it is
/// now instead of overwriting it with this request's stale copy. Its `Debug` shows the keys,
/// never their values.
///
/// A session's own delta names each key once. A delta made by other code may name a key
/// twice; it means what [`Record::apply`] makes of it (removals first, then each set in turn,
/// the last value kept), and a store gives it that meaning and counts each key once against
/// its size limit (the conformance suite checks both).
#[derive(Clone, Default, PartialEq)]
pub struct Delta {
    /// The request replaced the whole data (`clear()`, or a session written for the first time):
    /// the store must write [`Record::data`] as a whole.
    pub replace: bool,
    /// Top-level keys set, with their new values.
    pub set: Vec<(String, Value)>,
    /// Top-level keys removed.
    pub removed: Vec<String>,
}

impl std::fmt::Debug for Record {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Record")
            .field("keys", &self.data.keys().collect::<Vec<_>>())
            .field("meta", &self.meta)
            .finish()
    }
}

impl std::fmt::Debug for Delta {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Delta")
            .field("replace", &self.replace)
            .field("set", &self.set.iter().map(|(k, _)| k).collect::<Vec<_>>())
            .field("removed", &self.removed)
            .finish()
    }
}

impl Delta {
    /// Whether the delta changes no user data (a meta-only write).
    pub fn is_empty(&self) -> bool {
        !self.replace && self.set.is_empty() && self.removed.is_empty()
    }
}

impl Record {
    /// Applies a delta made against (possibly) another copy of this record, then takes `meta`.
    /// With [`Delta::replace`], the data becomes `full` (the writer's whole view).
    pub fn apply(&mut self, delta: &Delta, full: &Data, meta: Meta) {
        if delta.replace {
            self.data = full.clone();
        } else {
            for k in &delta.removed {
                self.data.shift_remove(k);
            }
            for (k, v) in &delta.set {
                self.data.insert(k.clone(), v.clone());
            }
        }
        self.meta = meta;
    }

    /// Parses koa's session object: user keys, `_expire`, `_maxAge` or `_session`, and our
    /// `_created`. Flash messages and the CSRF secret (reserved keys of ours, see
    /// [`crate::flash`]) are kept; other `_` keys are dropped (koa never saves them either). A `_maxAge` that
    /// is not a positive integer falls back to `default_max_age`.
    pub fn from_koa_object(mut obj: Data, default_max_age: MaxAge) -> Record {
        let expire = obj.get("_expire").and_then(as_ms);
        let session = obj.get("_session").and_then(Value::as_bool) == Some(true);
        let max_age = if session {
            MaxAge::Session
        } else {
            match obj.get("_maxAge").and_then(as_ms) {
                Some(ms) if ms > 0 => MaxAge::Ms(ms),
                _ => default_max_age,
            }
        };
        let created = obj.get("_created").and_then(as_ms);
        obj.retain(|k, _| !k.starts_with('_') || crate::flash::is_kept_apart(k));
        Record {
            data: obj,
            meta: Meta {
                // koa checks `_expire` whatever else the record says, so it is kept even
                // beside `_session` (only a foreign writer produces both).
                expire,
                max_age,
                created,
            },
        }
    }

    /// koa's JSON bytes for this record (user keys, then `_expire`/`_maxAge` or `_session`, then
    /// `_created` when present): what a koa-compatible cookie or store carries.
    pub fn to_koa_json(&self) -> Vec<u8> {
        Self::koa_json(&self.data, &self.meta)
    }

    /// [`Record::to_koa_json`] of data and meta held apart (no copy of the data needed).
    pub fn koa_json(data: &Data, meta: &Meta) -> Vec<u8> {
        // Serialising a map of JSON values can't fail; an empty object is the safe fallback.
        serde_json::to_vec(&KoaView { data, meta }).unwrap_or_else(|_| b"{}".to_vec())
    }

    /// Parses koa's JSON bytes. `None` when they are not a JSON object.
    pub fn from_koa_json(bytes: &[u8], default_max_age: MaxAge) -> Option<Record> {
        match serde_json::from_slice::<Value>(bytes).ok()? {
            Value::Object(obj) => Some(Self::from_koa_object(obj, default_max_age)),
            _ => None,
        }
    }
}

/// koa's numbers are JS doubles: accept integers and integral floats, nothing negative.
fn as_ms(v: &Value) -> Option<u64> {
    if let Some(n) = v.as_u64() {
        return Some(n);
    }
    let f = v.as_f64()?;
    (f.is_finite() && f >= 0.0 && f <= u64::MAX as f64).then_some(f as u64)
}

struct KoaView<'a> {
    data: &'a Data,
    meta: &'a Meta,
}

impl Serialize for KoaView<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let meta = self.meta;
        let mut m = s.serialize_map(None)?;
        for (k, v) in self.data {
            if !k.starts_with('_') || crate::flash::is_kept_apart(k) {
                m.serialize_entry(k, v)?;
            }
        }
        match meta.max_age {
            MaxAge::Ms(ms) => {
                if let Some(expire) = meta.expire {
                    m.serialize_entry("_expire", &expire)?;
                }
                m.serialize_entry("_maxAge", &ms)?;
            }
            MaxAge::Session => {
                if let Some(expire) = meta.expire {
                    m.serialize_entry("_expire", &expire)?;
                }
                m.serialize_entry("_session", &true)?;
            }
        }
        if let Some(created) = meta.created {
            m.serialize_entry("_created", &created)?;
        }
        m.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rec(data: Value, meta: Meta) -> Record {
        let Value::Object(data) = data else { panic!() };
        Record { data, meta }
    }

    #[test]
    fn koa_json_matches_koa_bytes() {
        let r = rec(
            json!({"views": 1}),
            Meta {
                expire: Some(1_700_086_400_000),
                max_age: MaxAge::Ms(86_400_000),
                created: None,
            },
        );
        assert_eq!(
            String::from_utf8(r.to_koa_json()).unwrap(),
            r#"{"views":1,"_expire":1700086400000,"_maxAge":86400000}"#
        );
        let s = rec(
            json!({"views": 1}),
            Meta {
                expire: None,
                max_age: MaxAge::Session,
                created: None,
            },
        );
        assert_eq!(
            String::from_utf8(s.to_koa_json()).unwrap(),
            r#"{"views":1,"_session":true}"#
        );
    }

    #[test]
    fn koa_object_round_trip_and_reserved_keys_dropped() {
        let bytes = br#"{"b":1,"a":{"x":[1,2]},"_expire":5,"_maxAge":10,"_created":3,"_other":1}"#;
        let r = Record::from_koa_json(bytes, MaxAge::Ms(1)).unwrap();
        assert_eq!(r.data.keys().collect::<Vec<_>>(), ["b", "a"]);
        assert_eq!(
            r.meta,
            Meta {
                expire: Some(5),
                max_age: MaxAge::Ms(10),
                created: Some(3)
            }
        );
        assert_eq!(
            Record::from_koa_json(&r.to_koa_json(), MaxAge::Ms(1)).unwrap(),
            r
        );
    }

    #[test]
    fn lenient_meta_parsing() {
        let r = Record::from_koa_json(br#"{"_expire":1.5e3,"_maxAge":-4}"#, MaxAge::Ms(7)).unwrap();
        assert_eq!(r.meta.expire, Some(1500));
        assert_eq!(r.meta.max_age, MaxAge::Ms(7));
        let r =
            Record::from_koa_json(br#"{"_expire":"x","_session":true}"#, MaxAge::Ms(7)).unwrap();
        assert_eq!(r.meta.expire, None);
        assert_eq!(r.meta.max_age, MaxAge::Session);
        assert!(Record::from_koa_json(b"[1]", MaxAge::Session).is_none());
        assert!(Record::from_koa_json(b"{", MaxAge::Session).is_none());
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        let deep = "[".repeat(10_000);
        assert!(Record::from_koa_json(deep.as_bytes(), MaxAge::Session).is_none());
    }

    #[test]
    fn apply_delta_merges_keys() {
        let meta = Meta {
            expire: Some(1),
            max_age: MaxAge::Ms(1),
            created: None,
        };
        let mut stored = rec(json!({"a": 1, "b": 2}), meta);
        let delta = Delta {
            replace: false,
            set: vec![("c".into(), json!(3))],
            removed: vec!["a".into()],
        };
        let meta2 = Meta {
            expire: Some(9),
            ..meta
        };
        stored.apply(&delta, &Data::new(), meta2);
        assert_eq!(Value::Object(stored.data.clone()), json!({"b": 2, "c": 3}));
        assert_eq!(stored.meta, meta2);
    }
}
