//! A user's sessions: a session bound to an owner (an app-chosen user id) is listed in that
//! owner's index, so an app can show a user their sessions, revoke one, or log them out
//! everywhere.
//!
//! The model, in short:
//! - [`SessionState::set_owner`](crate::SessionState::set_owner) binds a session to an owner
//!   (typically right after `regenerate()` at login), with an optional device description the
//!   app supplies. The binding is kept in the session's record, under the reserved key
//!   [`OWNER_KEY`], out of the handler's data.
//! - The store keeps, per owner, an index of [`IndexEntry`]s ([`OwnerIndex`]). An entry is
//!   filed under a [`Handle`]: an opaque value derived one way from the session's store key. It
//!   is neither the session id nor the store key, so a listing never hands out a credential,
//!   and the current session's handle is known without storing it.
//! - Every entry is kept until a time ("until") that is never earlier than its record's
//!   expiry: the index is written *before* the record whenever the record's expiry would pass
//!   it (with some slack, [`index_slack_ms`], so a rolling session refreshes its entry at most
//!   once per slack, not on every request). An entry whose time passed is dropped by the next
//!   write to that owner's index, and the index itself expires with its last entry: it cleans
//!   itself without a background task or keyspace notifications.
//! - Writing the index first means a live owned session is always listed; an entry whose
//!   record is gone (a failed create, a revoke racing a login) is never shown, and is dropped
//!   by a listing or a revoke once its record is missing and the entry was last written more
//!   than [`IN_FLIGHT_GRACE_MS`] ago (a younger one may belong to a login still creating its
//!   record).

use std::fmt;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::id::StoreKey;

/// The reserved record key the owner binding is stored under (a `_` key: never user data, and
/// not written by koa's record format, which is why koa-compat mode has no owner index).
pub const OWNER_KEY: &str = "_owner";

/// The most sessions a limit may allow per owner: an admission reads and sorts the owner's
/// entries in one atomic step, so its work is bounded.
pub const MAX_SESSION_LIMIT: usize = 1_000;

/// Longest owner id, in bytes.
pub const MAX_OWNER_BYTES: usize = 256;

/// Longest device description, in bytes (a longer one is cut).
pub const MAX_DEVICE_BYTES: usize = 256;

/// How far the clocks of the app servers sharing a store may disagree, in ms: index entries are
/// dropped, and an index expires, only this long after their time by the caller's clock, so a
/// server whose clock runs ahead can't drop another's live entry. (Beyond this, plus the
/// slack and the record's 10 s margin, a live session could drop out of its owner's listing.)
pub const CLOCK_SKEW_ALLOWANCE_MS: u64 = 60_000;

/// How long after its last write an index entry whose record is missing is kept anyway, in ms:
/// the request that wrote it may still be creating the record (a store call answers within its
/// time limit, seconds; this is a minute).
pub const IN_FLIGHT_GRACE_MS: u64 = 60_000;

/// The most an index entry's time runs ahead of its record's expiry: the tenth of the
/// record's TTL, at least one second and at most ten minutes. A rolling session's entry is
/// rewritten only when the record's expiry would pass it, so at most once per this much time,
/// and an entry's `last_seen` is exact to within it.
pub(crate) fn index_slack_ms(ttl_ms: u64) -> u64 {
    (ttl_ms / 10).clamp(1_000, 600_000)
}

/// Domain separation for the handle hash.
const HANDLE_TAG: &[u8] = b"session-core/owner-handle/v1\0";
/// Bytes of the hash kept in a handle (128 bits).
const HANDLE_BYTES: usize = 16;
/// Characters of a handle (base64url of 16 bytes).
const HANDLE_CHARS: usize = 22;

/// An opaque name for one of an owner's sessions, for listing and revoking. Derived one way
/// from the session's store key: it can't be turned back into the key or the session id, so a
/// listing that shows handles hands out no credential.
///
/// ```
/// use session_core::store::{Handle, StoreKey};
/// let h = Handle::of(&StoreKey::from_raw("sess:abc"));
/// assert_eq!(h.as_str().len(), 22);
/// assert_eq!(Handle::parse(h.as_str()), Some(h.clone()));
/// assert!(!h.as_str().contains("abc"));
/// assert_eq!(Handle::parse("not a handle"), None);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Handle(String);

impl Handle {
    /// The handle of the session filed under `key`.
    pub fn of(key: &StoreKey) -> Handle {
        let mut h = Sha256::new();
        h.update(HANDLE_TAG);
        h.update(key.as_str().as_bytes());
        let digest = h.finalize();
        Handle(URL_SAFE_NO_PAD.encode(&digest[..HANDLE_BYTES]))
    }

    /// A handle an app passed back (from a listing); `None` unless it has a handle's shape.
    pub fn parse(s: &str) -> Option<Handle> {
        let ok = s.len() == HANDLE_CHARS
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        ok.then(|| Handle(s.to_owned()))
    }

    /// The handle's text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Handle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A session's owner binding, as its record keeps it (under [`OWNER_KEY`]).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Binding {
    /// The owner (app-chosen user id).
    #[serde(rename = "o")]
    pub owner: String,
    /// What the app said about the device, if anything.
    #[serde(rename = "d", default, skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
    /// When the session was bound (ms since the epoch).
    #[serde(rename = "c")]
    pub since: u64,
    /// The time the index entry was last written to last until (ms since the epoch): the
    /// entry is written again before the record's expiry passes it.
    #[serde(rename = "i", default)]
    pub indexed_until: u64,
    /// The handles of the sessions this one was regenerated from, newest first (at most
    /// eight): written by the middleware with the record a regenerate creates, before
    /// the old id is superseded, and kept by every later write of the binding. A revoke of the
    /// owner's other sessions keeps every session descended from the caller's ("log out
    /// everywhere else" racing a login in another tab of the same browser). Empty in records
    /// written before it existed; entries that are not handles are dropped on reading.
    #[serde(
        rename = "p",
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "lenient_lineage"
    )]
    pub lineage: Vec<Handle>,
}

/// The most ancestors a binding names ([`Binding::lineage`]): as many regenerate successors as
/// a revoke follows.
pub(crate) const MAX_LINEAGE: usize = 8;

/// A stored lineage: the handles among the first [`MAX_LINEAGE`] values of an array, nothing
/// from anything else (a lineage another program wrote never costs the binding).
fn lenient_lineage<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<Handle>, D::Error> {
    let value = serde_json::Value::deserialize(d)?;
    let Some(items) = value.as_array() else {
        return Ok(Vec::new());
    };
    Ok(items
        .iter()
        .take(MAX_LINEAGE)
        .filter_map(|v| v.as_str().and_then(Handle::parse))
        .collect())
}

impl fmt::Debug for Binding {
    // The owner id names a user: kept out of logs like session data.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Binding")
            .field("since", &self.since)
            .field("indexed_until", &self.indexed_until)
            .finish_non_exhaustive()
    }
}

impl Binding {
    /// Records that this binding goes with the record a regenerate creates to replace the
    /// session filed under `predecessor`: it becomes the newest of [`Binding::lineage`] (once,
    /// however often a commit is retried), and the oldest beyond the eighth goes.
    pub fn descend_from(&mut self, predecessor: Handle) {
        if self.lineage.first() == Some(&predecessor) {
            return;
        }
        self.lineage.insert(0, predecessor);
        self.lineage.truncate(MAX_LINEAGE);
    }

    /// Whether this session descends, through regenerates, from a session filed under one of
    /// `handles`.
    pub fn descends_from(&self, handles: &[Handle]) -> bool {
        self.lineage.iter().any(|h| handles.contains(h))
    }

    /// The JSON value stored under [`OWNER_KEY`].
    pub fn to_value(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
    }

    /// Reads a stored binding; `None` if it is not one (a record another program wrote).
    pub fn from_value(v: &serde_json::Value) -> Option<Binding> {
        let b = Binding::deserialize(v).ok()?;
        check_owner(&b.owner).ok()?;
        Some(b)
    }
}

/// Why an owner id or device description is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OwnerError {
    /// Empty, or longer than [`MAX_OWNER_BYTES`].
    #[error("an owner id must be 1 to {MAX_OWNER_BYTES} bytes")]
    BadOwner,
    /// A session limit of 0, or more than [`MAX_SESSION_LIMIT`].
    #[error("a session limit must be 1 to {MAX_SESSION_LIMIT}")]
    BadLimit,
}

/// `text`'s bytes in lowercase hex: how a store names an owner (or any app-chosen text) where
/// its keys or columns can't hold every character (a Redis Cluster hash tag must not contain
/// `}`; PostgreSQL text refuses a NUL), keeping distinct texts distinct.
///
/// ```
/// assert_eq!(session_core::store::hex("a}\0"), "617d00");
/// ```
pub fn hex(text: &str) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(2 * text.len());
    for b in text.bytes() {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
    out
}

/// Checks an owner id: 1 to [`MAX_OWNER_BYTES`] bytes.
pub fn check_owner(owner: &str) -> Result<(), OwnerError> {
    if owner.is_empty() || owner.len() > MAX_OWNER_BYTES {
        return Err(OwnerError::BadOwner);
    }
    Ok(())
}

/// A device description cut to at most [`MAX_DEVICE_BYTES`] bytes (at a character boundary):
/// a long User-Agent never fails a login.
pub(crate) fn clip_device(device: &str) -> &str {
    let mut end = device.len().min(MAX_DEVICE_BYTES);
    while !device.is_char_boundary(end) {
        end -= 1;
    }
    &device[..end]
}

/// One session in an owner's index.
#[derive(Clone, PartialEq, Eq)]
pub struct IndexEntry {
    /// The session's handle ([`Handle::of`] its key).
    pub handle: Handle,
    /// The session's store key (kept by the store; never shown to users).
    pub key: StoreKey,
    /// When the session was bound to the owner (ms since the epoch).
    pub since: u64,
    /// When the entry was last written (ms since the epoch); see [`SessionInfo::last_seen`].
    pub seen: u64,
    /// The app's device description.
    pub device: Option<String>,
}

impl fmt::Debug for IndexEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IndexEntry")
            .field("handle", &self.handle)
            .field("since", &self.since)
            .field("seen", &self.seen)
            .finish_non_exhaustive()
    }
}

/// An index entry with what the store holds for its key now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Indexed {
    /// The entry.
    pub entry: IndexEntry,
    /// When the entry lapses (ms since the epoch).
    pub until: u64,
    /// The time the live record under the entry's key has left; `None` when no live record is
    /// there (never created, destroyed, expired, or superseded by a regenerate).
    pub record_ttl: Option<Duration>,
}

/// One of an owner's sessions, as an app shows it: what a listing returns.
#[derive(Clone, PartialEq, Eq, Serialize)]
pub struct SessionInfo {
    /// Pass it back to revoke this session. Not a credential.
    pub handle: Handle,
    /// When the session was bound to its owner (ms since the epoch): the login.
    pub created: u64,
    /// When the session's index entry was last written (ms since the epoch): at login, at a
    /// regenerate, and whenever a write (a save, or a `rolling`/`renew` extension) moves the
    /// session's expiry past its entry's, so for a session in use it lags the last write by
    /// at most a tenth of the record's TTL (1 s to 10 min). A session that is only read, without `rolling`, keeps its
    /// login time here.
    pub last_seen: u64,
    /// When the server forgets the session unless it is used again (ms since the epoch).
    pub expires: u64,
    /// The app's device description.
    pub device: Option<String>,
    /// Whether it is the session of the request that asked.
    pub current: bool,
}

impl fmt::Debug for SessionInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionInfo")
            .field("handle", &self.handle)
            .field("created", &self.created)
            .field("last_seen", &self.last_seen)
            .field("expires", &self.expires)
            .field("current", &self.current)
            .finish_non_exhaustive()
    }
}

impl Serialize for Handle {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Handle {
    /// A handle in a request body: refused unless it has a handle's shape.
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Handle, D::Error> {
        let s = String::deserialize(d)?;
        Handle::parse(&s).ok_or_else(|| serde::de::Error::custom("not a session handle"))
    }
}

/// The info encoding of an entry: what a store keeps beside the handle (JSON), so every store
/// keeps entries alike.
#[derive(Serialize, Deserialize)]
struct StoredEntry {
    k: String,
    c: u64,
    s: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    d: Option<String>,
}

impl IndexEntry {
    /// The entry of the session under `key` (its handle derived from the key, so the two always
    /// agree), bound at `since` and written at `seen`.
    pub fn new(key: StoreKey, since: u64, seen: u64, device: Option<String>) -> Self {
        Self {
            handle: Handle::of(&key),
            key,
            since,
            seen,
            device,
        }
    }

    /// The entry as JSON bytes (everything but the handle), for stores that keep bytes.
    pub fn encode(&self) -> Vec<u8> {
        let e = StoredEntry {
            k: self.key.as_str().to_owned(),
            c: self.since,
            s: self.seen,
            d: self.device.clone(),
        };
        serde_json::to_vec(&e).unwrap_or_default()
    }

    /// An entry from [`IndexEntry::encode`]'s bytes; `None` if they are not one, or if the
    /// handle is not the key's (a foreign or corrupt entry is never trusted).
    pub fn decode(handle: &str, bytes: &[u8]) -> Option<IndexEntry> {
        let e: StoredEntry = serde_json::from_slice(bytes).ok()?;
        let key = StoreKey::from_raw(e.k);
        let handle = Handle::parse(handle).filter(|h| *h == Handle::of(&key))?;
        Some(IndexEntry {
            handle,
            key,
            since: e.c,
            seen: e.s,
            device: e.d,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handles_are_stable_opaque_and_checked() {
        let k = StoreKey::from_raw("sess:xyz");
        assert_eq!(Handle::of(&k), Handle::of(&k));
        assert_ne!(Handle::of(&k), Handle::of(&StoreKey::from_raw("sess:xyz2")));
        assert_eq!(Handle::parse(""), None);
        assert_eq!(Handle::parse(&"a".repeat(23)), None);
        assert_eq!(Handle::parse(&"a/".repeat(11)), None);
    }

    #[test]
    fn entries_round_trip_and_a_foreign_handle_is_refused() {
        let key = StoreKey::from_raw("sess:k");
        let e = IndexEntry::new(key, 1, 2, Some("Firefox".into()));
        let bytes = e.encode();
        assert_eq!(
            IndexEntry::decode(e.handle.as_str(), &bytes),
            Some(e.clone())
        );
        let other = Handle::of(&StoreKey::from_raw("sess:other"));
        assert_eq!(IndexEntry::decode(other.as_str(), &bytes), None);
        assert_eq!(IndexEntry::decode(e.handle.as_str(), b"{"), None);
        assert!(!format!("{e:?}").contains("sess:k"));
        assert!(!format!("{e:?}").contains("Firefox"));
    }

    #[test]
    fn bindings_round_trip_and_bad_owners_are_refused() {
        let b = Binding {
            owner: "user-42".into(),
            device: None,
            since: 5,
            indexed_until: 9,
            lineage: Vec::new(),
        };
        assert_eq!(Binding::from_value(&b.to_value()), Some(b.clone()));
        assert!(!format!("{b:?}").contains("user-42"));
        let empty = Binding {
            owner: String::new(),
            ..b
        };
        assert_eq!(Binding::from_value(&empty.to_value()), None);
        assert_eq!(Binding::from_value(&serde_json::json!("x")), None);
        assert_eq!(check_owner(&"x".repeat(257)), Err(OwnerError::BadOwner));
        assert_eq!(clip_device(&"x".repeat(300)).len(), MAX_DEVICE_BYTES);
        assert_eq!(clip_device(&"é".repeat(200)).len(), MAX_DEVICE_BYTES);
        assert_eq!(clip_device("Firefox"), "Firefox");
    }

    #[test]
    fn lineage_is_optional_bounded_and_lenient() {
        let h = |k: &str| Handle::of(&StoreKey::from_raw(k));
        // A binding written before the lineage existed reads with none, and writes none back.
        let old = serde_json::json!({"o": "ada", "c": 1, "i": 2});
        let b = Binding::from_value(&old).unwrap();
        assert!(b.lineage.is_empty());
        assert_eq!(b.to_value(), old);
        // Each regenerate puts its predecessor first, once; the oldest beyond the bound go.
        let mut b = b;
        for i in 0..(MAX_LINEAGE + 2) {
            b.descend_from(h(&format!("sess:{i}")));
            b.descend_from(h(&format!("sess:{i}")));
        }
        assert_eq!(b.lineage.len(), MAX_LINEAGE);
        assert_eq!(b.lineage[0], h(&format!("sess:{}", MAX_LINEAGE + 1)));
        assert_eq!(Binding::from_value(&b.to_value()), Some(b.clone()));
        assert!(b.descends_from(&[h("sess:2")]));
        assert!(!b.descends_from(&[h("sess:1"), h("sess:other")]));
        assert!(!format!("{b:?}").contains(b.lineage[0].as_str()));
        // What another program wrote there costs neither the binding nor the good handles.
        let odd = serde_json::json!({"o": "ada", "c": 1, "p": ["x", 7, h("sess:a")]});
        assert_eq!(
            Binding::from_value(&odd).unwrap().lineage,
            vec![h("sess:a")]
        );
        let odd = serde_json::json!({"o": "ada", "c": 1, "p": "not a list"});
        assert!(Binding::from_value(&odd).unwrap().lineage.is_empty());
    }

    #[test]
    fn slack_is_a_tenth_within_bounds() {
        assert_eq!(index_slack_ms(5_000), 1_000);
        assert_eq!(index_slack_ms(60_000), 6_000);
        assert_eq!(index_slack_ms(86_400_000), 600_000);
    }
}
