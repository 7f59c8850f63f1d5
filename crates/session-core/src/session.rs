//! The session a handler sees: JSON data with precise change tracking, plus koa's lifecycle
//! operations (destroy, regenerate, save, max-age).

use std::collections::HashMap;

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::expiry::MAX_AGE_CAP_MS;
use crate::id::SessionId;
use crate::owner::{Binding, Handle, OWNER_KEY, OwnerError, check_owner, clip_device};
use crate::record::{Data, Delta, MaxAge, Meta, Record};

mod flash;
mod start;
pub use start::Source;
pub(crate) use start::{Rules, starts_live};

/// A misuse of the session API by the app.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SessionError {
    /// Keys starting with `_` are reserved for `_expire`, `_maxAge`, `_session`, `_created`.
    #[error("session key {0:?} is reserved: keys starting with '_' are not user data")]
    ReservedKey(String),
    /// The stored value can't be read as the requested type. The message names the key and
    /// the type, never the value (session data stays out of errors and logs).
    #[error("session value for key {key:?} is not a {expected}")]
    WrongType {
        /// The key involved (keys are app-chosen names, not secrets).
        key: String,
        /// The Rust type asked for.
        expected: &'static str,
    },
    /// The value could not be turned into JSON (e.g. a map with non-string keys).
    #[error("value for session key {key:?} could not be turned into JSON")]
    Unserializable {
        /// The key involved.
        key: String,
    },
    /// An owner id or device description the owner index can't take.
    #[error(transparent)]
    Owner(#[from] OwnerError),
    /// The session is bound to another owner: a session changes hands only under a new id
    /// (call `regenerate()` first, as a login does), so a revoke of the previous owner's
    /// sessions can never reach it.
    #[error("the session is bound to another owner; regenerate it before binding it again")]
    OwnerChange,
}

/// An identity the commit must end: its record is deleted (or, after a regenerate, replaced by
/// a marker naming the new one) and, unless a new session replaces it, its cookies are removed.
#[derive(Clone, PartialEq, Eq)]
pub struct Retired {
    /// The old id (store mode); `None` in cookie mode.
    pub id: Option<SessionId>,
    /// Whether a record exists for it, so a delete is needed.
    pub record_exists: bool,
    /// Ended by [`SessionState::regenerate`]: the data moves to a new id, and the old record is
    /// superseded (a marker) rather than deleted. `false` for a destroy, an expiry or a
    /// rejected session: those end for good.
    pub regenerated: bool,
    /// The owner the old identity was bound to, whose index lists it (its entry goes once the
    /// identity has ended).
    pub owner: Option<String>,
}

impl std::fmt::Debug for Retired {
    // The owner id names a user: kept out of `Debug` like session data.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Retired")
            .field("id", &self.id)
            .field("record_exists", &self.record_exists)
            .field("regenerated", &self.regenerated)
            .field("owner", &self.owner.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// Why a request's session is anonymous and must leave the client's cookies alone.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Stale {
    /// The id was superseded by a regenerate a moment ago (a parallel request around a login).
    Superseded(SessionId),
    /// Too many cookies of the session's name to check (cookie tossing).
    Ambiguous,
}

/// One visitor's session for the duration of a request.
///
/// Its methods are what a handler (or a `before_save` hook) may do; a middleware starts it and
/// records its writes through [`SessionDriver`](crate::driver::SessionDriver).
///
/// ```
/// use session_core::{Config, SessionState};
/// use session_core::driver::{SessionDriver, Source};
/// let config = Config::builder().key([7u8; 32].to_vec()).build().unwrap();
/// let mut s = SessionState::start(&config, Source::None);
/// assert!(s.is_new() && !s.is_populated());
/// s.insert("views", 1).unwrap();
/// assert_eq!(s.get::<u32>("views").unwrap(), Some(1));
/// assert!(s.has_changed());
/// s.insert("views", 1).unwrap(); // equal value: still exactly one change
/// assert_eq!(s.delta().set.len(), 1);
/// ```
#[derive(Clone)]
pub struct SessionState {
    id: Option<SessionId>,
    retire: Option<Retired>,
    stale: Option<Stale>,
    is_new: bool,
    had_cookie: bool,
    resign: bool,
    /// A commit of this request wrote the session already (`rolling` has rolled it).
    written: bool,
    data: Data,
    /// For each key touched since the baseline, its value at the baseline.
    originals: HashMap<String, Option<Value>>,
    /// `clear()` ran since the baseline: the store must replace the data, not merge.
    replaced: bool,
    meta: Meta,
    forced: bool,
    /// `set_max_age()` ran since the baseline: the cookie must carry the new max-age.
    max_age_set: bool,
    regenerate: bool,
    /// The owner binding, kept out of the handler's data (stored under
    /// [`OWNER_KEY`](crate::owner::OWNER_KEY)).
    owner: Option<Binding>,
    /// The binding changed since the baseline (bound, or its index entry refreshed).
    owner_dirty: bool,
    /// The request brought a session that had ended for this reason (found by its marker).
    ended: Option<crate::events::EndReason>,
    /// Flash messages, by record key ([`FLASH_PREFIX`](crate::flash::FLASH_PREFIX)), and the
    /// CSRF secret ([`CSRF_KEY`](crate::flash::CSRF_KEY)), out of the handler's data; their
    /// changes are tracked in `originals` like the data's.
    flash: Data,
    /// `destroy()` or `regenerate()` ran: whatever was bound to the old identity (a CSRF
    /// secret) must not outlive it; `Some(true)` when it was a destroy.
    renewed: Option<bool>,
    /// The request brought a session that could not start live: retired at the start.
    pub(crate) started_dead: bool,
}

impl SessionState {
    /// The session id; `None` for a new session until its first write assigns one
    /// (and always in cookie mode, where the cookie is the session).
    pub(crate) fn id(&self) -> Option<&SessionId> {
        self.id.as_ref()
    }

    /// koa's `isNew`: the client brought no live session to this request.
    pub fn is_new(&self) -> bool {
        self.is_new
    }

    /// koa's `populated`: the session holds at least one key (or is bound to an owner).
    pub fn is_populated(&self) -> bool {
        !self.data.is_empty() || self.owner.is_some() || self.has_flash()
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.data.len()
    }

    /// Whether the session holds no key.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// The user data (read-only: every change goes through the tracked setters).
    pub fn data(&self) -> &Data {
        &self.data
    }

    /// The raw JSON value of a key.
    pub fn get_value(&self, key: &str) -> Option<&Value> {
        self.data.get(key)
    }

    /// A key's value converted to `T`; `Ok(None)` when absent.
    pub fn get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, SessionError> {
        match self.data.get(key) {
            None => Ok(None),
            // serde's message quotes the value; only the key and the type are kept.
            Some(v) => T::deserialize(v)
                .map(Some)
                .map_err(|_| SessionError::WrongType {
                    key: key.to_owned(),
                    expected: std::any::type_name::<T>(),
                }),
        }
    }

    /// Sets a key. Inserting a value equal to the current one is not a change.
    pub fn insert(&mut self, key: &str, value: impl Serialize) -> Result<(), SessionError> {
        let value = serde_json::to_value(value).map_err(|_| SessionError::Unserializable {
            key: key.to_owned(),
        })?;
        self.insert_value(key, value)
    }

    /// Sets a key to a JSON value.
    pub fn insert_value(&mut self, key: &str, value: Value) -> Result<(), SessionError> {
        if key.starts_with('_') {
            return Err(SessionError::ReservedKey(key.to_owned()));
        }
        if self.data.get(key) == Some(&value) {
            return Ok(());
        }
        self.note(key);
        match self.data.get_mut(key) {
            Some(slot) => *slot = value,
            None => {
                self.data.insert(key.to_owned(), value);
            }
        }
        Ok(())
    }

    /// Removes a key, returning its value.
    pub fn remove(&mut self, key: &str) -> Option<Value> {
        if !self.data.contains_key(key) {
            return None;
        }
        self.note(key);
        self.data.shift_remove(key)
    }

    /// Removes every key (the session itself lives on; see [`SessionState::destroy`]).
    pub fn clear(&mut self) {
        if self.data.is_empty() {
            return;
        }
        let keys: Vec<String> = self.data.keys().cloned().collect();
        for k in &keys {
            self.note(k);
        }
        self.data.clear();
        self.replaced = true;
    }

    fn note(&mut self, key: &str) {
        if !self.originals.contains_key(key) {
            let original = self.value_of(key).cloned();
            self.originals.insert(key.to_owned(), original);
        }
    }

    /// koa's `ctx.session = null`: at commit the record is deleted and removal cookies are
    /// sent. The session starts over empty; anything stored in it afterwards becomes a new
    /// session with a new id.
    ///
    /// A destroy ends the session for good, whatever races it: if a concurrent regenerate
    /// already moved the session to a new id, that new session is ended too (the same holds
    /// when this request carries an id a regenerate has just superseded).
    pub fn destroy(&mut self) {
        let owner = self.owner.take().map(|b| b.owner);
        match (&mut self.retire, &self.stale) {
            (Some(retired), _) => retired.regenerated = false,
            (None, Some(Stale::Superseded(old))) => {
                // Deleting the old id's marker names the successor, which is ended too.
                self.retire = Some(Retired {
                    id: Some(old.clone()),
                    record_exists: true,
                    regenerated: false,
                    owner: None,
                });
            }
            (None, _) if !self.is_new || self.had_cookie || self.id.is_some() => {
                self.retire = Some(Retired {
                    id: self.id.take(),
                    record_exists: !self.is_new,
                    regenerated: false,
                    owner,
                });
            }
            (None, _) => {}
        }
        self.owner_dirty = false;
        self.id = None;
        self.is_new = true;
        self.renewed = Some(true);
        self.data.clear();
        self.flash.clear();
        self.originals.clear();
        self.replaced = false;
        self.forced = false;
        self.max_age_set = false;
        self.regenerate = false;
    }

    /// Ends the current id and continues the same data under a new one: the new record is
    /// created first, and only then is the old one replaced by a short-lived marker naming the
    /// new one. Call it on login and on every privilege change (session fixation).
    ///
    /// If a concurrent destroy removed the old record first, the regenerate ends as a destroy
    /// (the new record is deleted and the cookies removed): a logout is never undone. A session
    /// that holds nothing writes nothing (its old id, if any, is simply ended).
    pub fn regenerate(&mut self) {
        if self.retire.is_none() && (!self.is_new || self.id.is_some()) {
            self.retire = Some(Retired {
                id: self.id.take(),
                record_exists: !self.is_new,
                regenerated: !self.is_new,
                owner: self.owner.as_ref().map(|b| b.owner.clone()),
            });
        }
        self.id = None;
        self.regenerate = true;
        self.renewed = Some(self.renewed == Some(true));
        // A secret bound to the old identity does not follow the data to the new one.
        self.drop_csrf_secret();
        // A bound session stays bound under its new id, which its owner's index must list.
        self.owner_dirty = self.owner.is_some();
    }

    /// Binds the session to an owner (an app-chosen user id of 1 to 256 bytes, e.g. after a
    /// login), so it is listed among the owner's sessions and ends with a revoke of them;
    /// `device` is what the app wants shown for it (a user-agent summary; cut to 256 bytes). The middleware writes the owner's index
    /// at commit, before the record.
    ///
    /// Binding again to the same owner only updates the device. A session bound to another
    /// owner is refused ([`SessionError::OwnerChange`]) unless `regenerate()` ran first in this
    /// request.
    pub fn set_owner(&mut self, owner: &str, device: Option<&str>) -> Result<(), SessionError> {
        check_owner(owner)?;
        let device = device.map(|d| clip_device(d).to_owned());
        match &mut self.owner {
            Some(b) if b.owner == owner => {
                if b.device != device {
                    b.device = device;
                    self.owner_dirty = true;
                }
            }
            Some(_) if !self.regenerate => return Err(SessionError::OwnerChange),
            _ => {
                self.owner = Some(Binding {
                    owner: owner.to_owned(),
                    device,
                    since: 0,
                    indexed_until: 0,
                    lineage: Vec::new(),
                });
                self.owner_dirty = true;
            }
        }
        Ok(())
    }

    /// Why the session this request brought had ended, when it was ended by the middleware's
    /// own decision and the store still holds its marker (a login over the owner's session
    /// limit: "you were signed out because you signed in elsewhere"). The request's session is
    /// then a new one. `None` otherwise (an expired or unknown session, or none).
    pub fn ended(&self) -> Option<crate::events::EndReason> {
        self.ended
    }

    /// The owner the session is bound to, if any.
    pub fn owner(&self) -> Option<&str> {
        self.owner.as_ref().map(|b| b.owner.as_str())
    }

    /// Forces a write at commit, even if nothing changed (koa's `session.save()`).
    pub fn save(&mut self) {
        self.forced = true;
    }

    /// Whether `destroy()` was called (and nothing was stored since).
    pub fn is_destroyed(&self) -> bool {
        self.retire.is_some() && !self.regenerate && self.data.is_empty() && !self.has_flash()
    }

    /// Whether the request carried an id a regenerate has just superseded, or too many
    /// cookies of the session's name to check: the session is anonymous, and unless the
    /// handler calls [`SessionState::destroy`] or [`SessionState::regenerate`] nothing is
    /// written and the client's cookies are left alone.
    pub fn is_stale(&self) -> bool {
        self.stale.is_some()
    }

    /// The id the request carried that a regenerate superseded, if so (driver side).
    pub(crate) fn superseded_id(&self) -> Option<&SessionId> {
        match &self.stale {
            Some(Stale::Superseded(id)) => Some(id),
            _ => None,
        }
    }

    /// This session's max-age (the stored `_maxAge` wins over the configured default).
    pub fn max_age(&self) -> MaxAge {
        self.meta.max_age
    }

    /// Changes this session's max-age; forces a write so the cookie and record carry it. A
    /// lifetime beyond the browsers' 400 days is clamped to it.
    pub fn set_max_age(&mut self, max_age: MaxAge) {
        if max_age == MaxAge::Ms(0) {
            // A zero lifetime is an immediate logout; say so explicitly instead.
            self.destroy();
            return;
        }
        self.meta.max_age = match max_age {
            MaxAge::Ms(ms) => MaxAge::Ms(ms.min(MAX_AGE_CAP_MS)),
            MaxAge::Session => MaxAge::Session,
        };
        self.forced = true;
        self.max_age_set = true;
    }

    /// The session's koa fields as loaded or last written.
    pub fn meta(&self) -> &Meta {
        &self.meta
    }

    /// When the session ends unless written again (ms since the epoch), if it has a fixed end.
    pub fn expires_at(&self) -> Option<u64> {
        self.meta.expire
    }

    /// Whether the data differs from the baseline (value equality per top-level key; a value
    /// set back to what it was is no change).
    pub fn has_changed(&self) -> bool {
        self.owner_dirty
            || self
                .originals
                .iter()
                .any(|(k, orig)| self.value_of(k) != orig.as_ref())
    }

    /// The top-level keys set and removed since the baseline.
    pub(crate) fn delta(&self) -> Delta {
        let mut delta = Delta::default();
        if self.owner_dirty
            && let Some(b) = &self.owner
        {
            delta.set.push((OWNER_KEY.to_owned(), b.to_value()));
        }
        if self.originals.is_empty() {
            return delta;
        }
        // Walk the data in its order so the store keeps the session's key order.
        for (k, now) in self.data.iter().chain(&self.flash) {
            if let Some(orig) = self.originals.get(k)
                && orig.as_ref() != Some(now)
            {
                delta.set.push((k.clone(), now.clone()));
            }
        }
        for (k, orig) in &self.originals {
            if orig.is_some() && self.value_of(k).is_none() {
                delta.removed.push(k.clone());
            }
        }
        delta.removed.sort();
        delta.replace = self.replaced && !(delta.set.is_empty() && delta.removed.is_empty());
        delta
    }

    /// The data as the store keeps it: the user's keys, and the owner binding under
    /// [`OWNER_KEY`] when the session has one.
    pub(crate) fn stored_data(&self) -> Data {
        let mut data = self.data.clone();
        data.extend(self.flash.iter().map(|(k, v)| (k.clone(), v.clone())));
        if let Some(b) = &self.owner {
            data.insert(OWNER_KEY.to_owned(), b.to_value());
        }
        data
    }

    /// Whether the binding changed since the baseline (bound, rebound, or regenerated).
    pub(crate) fn has_owner_change(&self) -> bool {
        self.owner_dirty
    }

    /// The owner binding (driver side).
    pub(crate) fn binding(&self) -> Option<&Binding> {
        self.owner.as_ref()
    }

    /// Marks the binding's index entry written to last until `until` (the write of the record
    /// that follows carries it).
    pub(crate) fn note_indexed(&mut self, until: u64, now: u64) {
        if let Some(b) = &mut self.owner {
            if b.since == 0 {
                b.since = now;
            }
            b.indexed_until = until;
            self.owner_dirty = true;
        }
    }

    /// Records that the record about to be created replaces the session filed under
    /// `predecessor` (a regenerate of a bound session): its binding names it first in its
    /// lineage.
    pub(crate) fn descend_from(&mut self, predecessor: Handle) {
        if let Some(b) = &mut self.owner {
            b.descend_from(predecessor);
            self.owner_dirty = true;
        }
    }

    /// The record as this request sees it.
    pub(crate) fn to_record(&self) -> Record {
        Record {
            data: self.stored_data(),
            meta: self.meta,
        }
    }

    /// Marks that the cookie was signed with an older key and must be re-signed.
    pub(crate) fn set_resign(&mut self, resign: bool) {
        self.resign = resign;
    }

    /// Whether the cookie must be re-signed with the newest key.
    /// Whether a commit of this request already wrote the session.
    pub(crate) fn was_written(&self) -> bool {
        self.written
    }

    pub(crate) fn needs_resign(&self) -> bool {
        self.resign
    }

    /// Whether the request carried a session cookie (so a removal cookie means something).
    pub(crate) fn had_cookie(&self) -> bool {
        self.had_cookie
    }

    pub(crate) fn retired(&self) -> Option<&Retired> {
        self.retire.as_ref()
    }
    pub(crate) fn is_forced(&self) -> bool {
        self.forced
    }

    /// Whether `set_max_age()` ran since the baseline.
    pub(crate) fn max_age_was_set(&self) -> bool {
        self.max_age_set
    }
    pub(crate) fn wants_regenerate(&self) -> bool {
        self.regenerate
    }

    /// Gives the session the id its new record was created under.
    pub(crate) fn assign_id(&mut self, id: SessionId) {
        self.id = Some(id);
    }

    /// Records that the commit found the session's record superseded by a concurrent
    /// regenerate: nothing was written, and the session is stale for the rest of the request.
    pub(crate) fn mark_superseded(&mut self) {
        let old = self
            .id
            .take()
            .or_else(|| self.retire.take().and_then(|r| r.id));
        self.stale = old.map(Stale::Superseded).or(Some(Stale::Ambiguous));
        self.retire = None;
        self.is_new = true;
        self.had_cookie = true;
        self.data.clear();
        self.originals.clear();
        self.replaced = false;
        self.forced = false;
        self.max_age_set = false;
        self.regenerate = false;
        self.resign = false;
        self.owner = None;
        self.owner_dirty = false;
        self.flash.clear();
    }

    /// Records that the commit's write succeeded: the written state becomes the new baseline,
    /// so a later commit in the same request writes nothing unless something changes again.
    pub(crate) fn mark_committed(&mut self, written: Option<Meta>) {
        let destroyed = self.is_destroyed();
        self.originals.clear();
        self.replaced = false;
        self.forced = false;
        self.max_age_set = false;
        self.regenerate = false;
        self.retire = None;
        self.stale = None;
        self.resign = false;
        self.owner_dirty = false;
        if let Some(meta) = written {
            self.meta = meta;
            self.is_new = false;
            self.had_cookie = true;
            self.written = true;
        } else if destroyed {
            self.had_cookie = false;
        }
    }
}

#[cfg(test)]
mod tests;
