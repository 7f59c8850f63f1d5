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
use crate::store_error::{BoxFuture, StoreError};

/// The reserved record key the owner binding is stored under (a `_` key: never user data, and
/// not written by koa's record format, which is why koa-compat mode has no owner index).
pub const OWNER_KEY: &str = "_owner";

/// The reserved record key that marks a session a limit ended: the marker record a limit
/// leaves under the ended session's key holds only this ([`EndedMarker`]).
pub const ENDED_KEY: &str = "_ended";

/// What the marker record of an ended session says: why, and which session (its handle and
/// owner), so the request that brings it can raise an event naming them.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndedMarker {
    /// Why the session ended ([`EndReason::name`](crate::EndReason::name)).
    #[serde(rename = "r")]
    pub reason: String,
    /// The session's handle.
    #[serde(rename = "h")]
    pub handle: Handle,
    /// The owner it was bound to.
    #[serde(rename = "o")]
    pub owner: String,
}

impl fmt::Debug for EndedMarker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EndedMarker")
            .field("reason", &self.reason)
            .field("handle", &self.handle)
            .finish_non_exhaustive()
    }
}

impl EndedMarker {
    /// The marker record's data.
    pub fn to_data(&self) -> crate::record::Data {
        let mut data = crate::record::Data::new();
        data.insert(
            ENDED_KEY.to_owned(),
            serde_json::to_value(self).unwrap_or(serde_json::Value::Null),
        );
        data
    }

    /// The marker stored data carries, if it is one (anything else under the key is not).
    pub fn from_data(data: &crate::record::Data) -> Option<EndedMarker> {
        EndedMarker::deserialize(data.get(ENDED_KEY)?).ok()
    }
}

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

/// An owner's index of sessions: the store side of listing and revoking a user's sessions.
///
/// Contract (checked for each store by `session_core::store::testing::run_owner_index`):
/// - [`OwnerIndex::index`] adds or rewrites one entry, and in the same atomic step drops the
///   owner's entries whose `until` is not after `now` and makes the index itself expire with
///   its latest entry (on a backend with TTLs, without a background task or keyspace
///   notifications; a SQL store leaves lapsed rows, never listed, to its sweep); an entry's
///   `until` only ever grows (a late write of an older time must not shorten it);
/// - [`OwnerIndex::unindex`] removes entries by handle (unknown ones are ignored);
/// - [`OwnerIndex::entries`] returns every entry whose `until` is after `now`, with the time
///   left on the live record under its key ([`Indexed::record_ttl`]);
/// - each call touches one owner's index only (a store on a sharded backend keeps an owner's
///   index in one shard), and is bounded by the store's time limit.
///
/// Times are the caller's milliseconds since the epoch; records are destroyed through
/// [`Store::destroy`](crate::store::Store::destroy), not by the index.
pub trait OwnerIndex: Send + Sync {
    /// Adds or rewrites `entry` in `owner`'s index, to last until `until` (never shortened).
    fn index<'a>(
        &'a self,
        owner: &'a str,
        entry: &'a IndexEntry,
        until: u64,
        now: u64,
    ) -> BoxFuture<'a, Result<(), StoreError>>;

    /// Removes the entries with these handles from `owner`'s index.
    fn unindex<'a>(
        &'a self,
        owner: &'a str,
        handles: &'a [Handle],
        now: u64,
    ) -> BoxFuture<'a, Result<(), StoreError>>;

    /// `owner`'s entries that have not lapsed, each with the state of its record.
    fn entries<'a>(
        &'a self,
        owner: &'a str,
        now: u64,
    ) -> BoxFuture<'a, Result<Vec<Indexed>, StoreError>>;

    /// Whether this index implements [`OwnerIndex::admit`]: a layer with a session limit
    /// refuses to build on one that does not.
    fn admits(&self) -> bool {
        false
    }

    /// Files `entry` the way `how` says, deciding in one atomic step with the write (on a
    /// sharded backend, on the owner's shard): drops the lapsed entries and those named in
    /// [`Admit::Limit::lapsed`], then rewrites the entry if the index has it (counted once),
    /// or adds it if fewer than the limit's entries are left (the one it
    /// [`replaces`](Admit::Limit::replaces) not counted), or else answers by the policy:
    /// [`Admitted::Full`] (nothing written) or [`Admitted::Ended`] (the excess bound earliest
    /// removed, ties by handle, and the entry added). However many admissions race, an
    /// owner's index never gains an entry beyond the limit. The default answers that this
    /// index can't ([`StoreError::Backend`]).
    fn admit<'a>(
        &'a self,
        owner: &'a str,
        entry: &'a IndexEntry,
        until: u64,
        now: u64,
        how: Admit<'a>,
    ) -> BoxFuture<'a, Result<Admitted, StoreError>> {
        let _ = (owner, entry, until, now, how);
        Box::pin(std::future::ready(Err(StoreError::Backend(
            "this owner index can't enforce a session limit".to_owned(),
        ))))
    }
}

/// What a login does when its owner already has as many sessions as the limit allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum OverLimit {
    /// The login is refused (a typed error, 409 by default); the browser keeps the session it
    /// had.
    Refuse,
    /// The owner's session bound earliest ends (as many as it takes), and the login goes on.
    EndOldest,
}

/// The most sessions a limit may allow per owner: an admission reads and sorts the owner's
/// entries in one atomic step, so its work is bounded.
pub const MAX_SESSION_LIMIT: usize = 1_000;

/// A limit on the sessions one owner may have at once, and what a login over it does.
///
/// ```
/// use session_core::{OverLimit, SessionLimit};
/// let limit = SessionLimit::new(3, OverLimit::EndOldest).unwrap();
/// assert_eq!((limit.max(), limit.policy()), (3, OverLimit::EndOldest));
/// assert!(SessionLimit::new(0, OverLimit::Refuse).is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionLimit {
    max: usize,
    policy: OverLimit,
}

impl SessionLimit {
    /// At most `max` sessions per owner (1 to [`MAX_SESSION_LIMIT`]).
    pub fn new(max: usize, policy: OverLimit) -> Result<SessionLimit, OwnerError> {
        if max == 0 || max > MAX_SESSION_LIMIT {
            return Err(OwnerError::BadLimit);
        }
        Ok(SessionLimit { max, policy })
    }

    /// The most sessions an owner may have.
    pub fn max(&self) -> usize {
        self.max
    }

    /// What a login over the limit does.
    pub fn policy(&self) -> OverLimit {
        self.policy
    }
}

/// What [`OwnerIndex::admit`] is asked to do with an entry.
#[derive(Debug, Clone, Copy)]
pub enum Admit<'a> {
    /// Rewrite the entry only if the index has it (a session admitted before, its time
    /// extended): an entry a limit removed never comes back this way.
    Refresh,
    /// File the entry under a limit (a login).
    Limit {
        /// The limit.
        limit: SessionLimit,
        /// The handle of the session this one replaces (a regenerate of a bound session):
        /// not counted, since the two are one session for a moment.
        replaces: Option<&'a Handle>,
        /// Entries the caller found dead (their record gone; see [`Indexed::is_dead`]):
        /// removed before counting.
        lapsed: &'a [Handle],
        /// `false`: a probe. An entry that fits is filed; one that does not writes nothing and
        /// answers [`Admitted::Full`] with the entries counted, so the caller can look for
        /// dead ones and ask again. `true`: the decision, by the limit's policy.
        decide: bool,
    },
}

/// What [`OwnerIndex::admit`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admitted {
    /// The entry was filed (or rewritten: it was there already, and counted once).
    Filed,
    /// The entry was filed after these entries, bound earliest, were removed to make room
    /// ([`OverLimit::EndOldest`]); the caller ends their sessions.
    Ended(Vec<IndexEntry>),
    /// [`Admit::Refresh`] of an entry the index does not have: nothing was written.
    Absent,
    /// Nothing was written: the owner has as many entries as the limit allows (a probe, or
    /// [`OverLimit::Refuse`]). These are the entries counted.
    Full(Vec<IndexEntry>),
}

/// The decision of an admission, for a store that decides in Rust (under its own lock or
/// transaction): given the owner's entries left after dropping the lapsed ones and those named
/// in [`Admit::Limit::lapsed`], what to write. Redis's script makes the same decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Write the entry (add it, or rewrite it with its time never shortened).
    Write,
    /// Remove these entries, then add the entry: answer [`Admitted::Ended`] with them.
    Replace(Vec<IndexEntry>),
    /// Write nothing: answer this.
    Answer(Admitted),
}

/// Decides an admission of `entry` into an owner's `present` entries (see [`Decision`]).
///
/// ```
/// use session_core::store::{Admit, Admitted, Decision, IndexEntry, StoreKey, decide};
/// use session_core::{OverLimit, SessionLimit};
/// let e = |k: &str, since| IndexEntry::new(StoreKey::from_raw(k), since, since, None);
/// let present = [e("a", 1), e("b", 2)];
/// let limit = SessionLimit::new(2, OverLimit::EndOldest).unwrap();
/// let how = Admit::Limit { limit, replaces: None, lapsed: &[], decide: true };
/// assert_eq!(decide(&present, &e("c", 3), how), Decision::Replace(vec![e("a", 1)]));
/// assert_eq!(decide(&present, &e("b", 2), how), Decision::Write);
/// assert_eq!(decide(&present, &e("c", 3), Admit::Refresh), Decision::Answer(Admitted::Absent));
/// ```
pub fn decide<'a>(
    present: impl IntoIterator<Item = &'a IndexEntry>,
    entry: &IndexEntry,
    how: Admit<'_>,
) -> Decision {
    let present: Vec<&IndexEntry> = present.into_iter().collect();
    if present.iter().any(|e| e.handle == entry.handle) {
        return Decision::Write;
    }
    let Admit::Limit {
        limit,
        replaces,
        decide,
        ..
    } = how
    else {
        return Decision::Answer(Admitted::Absent);
    };
    let mut counted: Vec<&IndexEntry> = present
        .into_iter()
        .filter(|e| Some(&e.handle) != replaces)
        .collect();
    if counted.len() < limit.max() {
        return Decision::Write;
    }
    if !decide || limit.policy() == OverLimit::Refuse {
        return Decision::Answer(Admitted::Full(counted.into_iter().cloned().collect()));
    }
    counted.sort_by(|a, b| a.since.cmp(&b.since).then_with(|| a.handle.cmp(&b.handle)));
    let excess = counted.len() + 1 - limit.max();
    Decision::Replace(counted.into_iter().take(excess).cloned().collect())
}

impl Indexed {
    /// Whether this entry's session is over: no live record is under its key (destroyed,
    /// expired, superseded) and it is not a login still creating it (its entry was written
    /// more than [`IN_FLIGHT_GRACE_MS`] ago, or longer ago than its record could have lived).
    /// A dead entry never counts against a limit; a young entry without a record does, since
    /// its login may be about to create the record.
    pub fn is_dead(&self, now: u64) -> bool {
        if self.record_ttl.is_some() {
            return false;
        }
        let age = now.saturating_sub(self.entry.seen);
        age > IN_FLIGHT_GRACE_MS || age > record_ttl_of(self.until.saturating_sub(self.entry.seen))
    }
}

/// The record TTL an entry written with `span = until - seen` was filed for: the inverse of
/// `ttl + index_slack_ms(ttl)` (an entry whose time was raised by a later write reads longer,
/// which only keeps it counted longer).
fn record_ttl_of(span: u64) -> u64 {
    if span <= 11_000 {
        span.saturating_sub(1_000)
    } else if span <= 6_600_000 {
        span / 11 * 10
    } else {
        span - 600_000
    }
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
