//! The lifecycle events and koa's `valid` hook: what a session's start consults and reports,
//! and what the middleware reports of its own decisions, with no knowledge of the session type
//! itself (so the session depends on this, not the other way).
//!
//! An event names a session by its [`Handle`] (store mode), the one-way name a listing of the
//! owner's sessions shows, never by its id, cookie, key or data. Events come from the
//! middleware's own decisions, never from the store: a session that lapses while nobody
//! brings it raises nothing.

use std::fmt;
use std::sync::Arc;

use serde::ser::{Serialize, SerializeMap, Serializer};

use crate::owner::Handle;
use crate::record::Data;
pub use crate::telemetry::StoreOp;

/// Why a session ended without its own request ending it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum EndReason {
    /// A login of the same owner over the owner's session limit ended it (the limit's policy
    /// ends the session bound earliest): the app can tell the user they were signed out
    /// because they signed in elsewhere.
    NewerLogin,
}

impl EndReason {
    /// A short stable name, for logs and stored markers.
    pub fn name(self) -> &'static str {
        match self {
            Self::NewerLogin => "newer-login",
        }
    }

    /// The reason named `name` ([`EndReason::name`]).
    pub fn from_name(name: &str) -> Option<EndReason> {
        (name == "newer-login").then_some(Self::NewerLogin)
    }
}

/// Who revoked a session ([`EventKind::Revoked`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RevokedBy {
    /// The owner, from a request whose session is bound to them ("your devices", "log out
    /// everywhere else", their own password change).
    User,
    /// Anyone else: a job through the layer's owners handle, or a request whose session is
    /// not the owner's (a support page, an administrator resetting a password).
    Admin,
    /// A login of the same owner over the owner's session limit.
    Limit,
}

impl RevokedBy {
    /// A short stable name: `user`, `admin`, `limit`.
    pub fn name(self) -> &'static str {
        match self {
            Self::User => "user",
            Self::Admin => "admin",
            Self::Limit => "limit",
        }
    }
}

/// What happened.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum EventKind {
    /// A new session was written for the first time (a store record, or a cookie-mode
    /// cookie).
    Created,
    /// A session's data changed and was written: the top-level keys set or removed (their
    /// names only, never their values).
    Saved {
        /// The keys set or removed, in the order the handler changed them.
        keys: Vec<String>,
    },
    /// Only a session's expiry moved (`rolling`, `renew`).
    Touched,
    /// `regenerate()` moved the session to a new id (a login): the event's handle is the new
    /// one.
    Regenerated {
        /// The handle the session had before (store mode).
        from: Option<Handle>,
    },
    /// The session moved in under a new id of ours: from the store the layer migrates from,
    /// or from another library's session (`migrate_from`, a session source). The event's
    /// handle is the new one.
    Moved {
        /// The handle the session had in the old store (store mode).
        from: Option<Handle>,
    },
    /// The handler destroyed the session (a logout).
    Destroyed,
    /// Another request ended the session: its owner, an admin job, or a session limit.
    Revoked(RevokedBy),
    /// A request brought a session that had ended for this reason: the request is anonymous.
    Ended(EndReason),
    /// A request brought a session past its expiry or its absolute lifetime (koa's
    /// `session:expired`). A session that lapses while nobody brings it raises nothing.
    Expired,
    /// A request brought a validly signed id with no record in the store (koa's
    /// `session:missed`).
    Missed,
    /// The app's `valid` hook refused the session, or its cookie payload claimed more than
    /// this server writes (koa's `session:invalid`).
    Invalid,
    /// The session's cookie came signed (or sealed) under an older key of the rotation
    /// list and was sent again under the newest.
    Rekeyed,
    /// A store call failed (the request then answers with its error).
    StoreFailed {
        /// The call.
        op: StoreOp,
        /// What went wrong: `StoreError::kind`.
        error: &'static str,
    },
}

impl EventKind {
    /// The event's stable name: `created`, `saved`, `touched`, `regenerated`, `moved`, `destroyed`,
    /// `revoked`, `ended`, `expired`, `missed`, `invalid`, `rekeyed`, `store_failed`.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Created => "created",
            Self::Saved { .. } => "saved",
            Self::Touched => "touched",
            Self::Regenerated { .. } => "regenerated",
            Self::Moved { .. } => "moved",
            Self::Destroyed => "destroyed",
            Self::Revoked(_) => "revoked",
            Self::Ended(_) => "ended",
            Self::Expired => "expired",
            Self::Missed => "missed",
            Self::Invalid => "invalid",
            Self::Rekeyed => "rekeyed",
            Self::StoreFailed { .. } => "store_failed",
        }
    }

    /// koa's event name (`session:missed`, `session:expired`, `session:invalid`) for the three
    /// events koa-session has; `None` for the others.
    pub fn koa_name(&self) -> Option<&'static str> {
        match self {
            Self::Missed => Some("session:missed"),
            Self::Expired => Some("session:expired"),
            Self::Invalid => Some("session:invalid"),
            _ => None,
        }
    }

    /// Why, for the events that have a reason: who revoked, why a session ended.
    pub fn reason(&self) -> Option<&'static str> {
        match self {
            Self::Revoked(by) => Some(by.name()),
            Self::Ended(why) => Some(why.name()),
            _ => None,
        }
    }

    /// Every event name ([`EventKind::name`]), for metrics' label sets.
    pub const NAMES: [&'static str; 13] = crate::telemetry::EVENT_NAMES;
}

/// A session's lifecycle event, from the middleware's own decisions (never from the store).
/// It names the session by its handle (the one-way name a listing of the owner's sessions
/// shows), never by its id, cookie, key or data. Serializes as one flat JSON object (what the
/// audit sink writes):
///
/// ```
/// use session_core::{EventKind, SessionEvent};
/// let e = SessionEvent::new(EventKind::Created, None, Some("ada".into())).at(1_700_000_000_000);
/// assert_eq!(
///     serde_json::to_string(&e).unwrap(),
///     r#"{"at_ms":1700000000000,"event":"created","owner":"ada"}"#
/// );
/// ```
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SessionEvent {
    /// What happened.
    pub kind: EventKind,
    /// The session's handle, in store mode; `None` in cookie mode (there is no id to name) and
    /// for store failures.
    pub handle: Option<Handle>,
    /// The owner the session was bound to, if any. An app's user id: keep it where user ids
    /// may go (it is left out of `Debug` and of the `tracing` event).
    pub owner: Option<String>,
    /// When, in milliseconds since the epoch (the configuration's clock).
    pub at_ms: u64,
}

impl SessionEvent {
    /// An event of `kind` about the session under `handle`, bound to `owner`, at time 0 (see
    /// [`SessionEvent::at`]).
    pub fn new(kind: EventKind, handle: Option<Handle>, owner: Option<String>) -> SessionEvent {
        SessionEvent {
            kind,
            handle,
            owner,
            at_ms: 0,
        }
    }

    /// The event, at `at_ms` milliseconds since the epoch.
    pub fn at(mut self, at_ms: u64) -> SessionEvent {
        self.at_ms = at_ms;
        self
    }
}

impl fmt::Debug for SessionEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionEvent")
            .field("kind", &self.kind)
            .field("handle", &self.handle)
            .field("owner", &self.owner.as_ref().map(|_| "<set>"))
            .field("at_ms", &self.at_ms)
            .finish()
    }
}

impl Serialize for SessionEvent {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut m = serializer.serialize_map(None)?;
        m.serialize_entry("at_ms", &self.at_ms)?;
        m.serialize_entry("event", self.kind.name())?;
        if let Some(h) = &self.handle {
            m.serialize_entry("handle", h.as_str())?;
        }
        if let Some(o) = &self.owner {
            m.serialize_entry("owner", o)?;
        }
        if let Some(r) = self.kind.reason() {
            m.serialize_entry("reason", r)?;
        }
        match &self.kind {
            EventKind::Saved { keys } => m.serialize_entry("keys", keys)?,
            EventKind::Regenerated { from: Some(from) } | EventKind::Moved { from: Some(from) } => {
                m.serialize_entry("from", from.as_str())?;
            }
            EventKind::StoreFailed { op, error } => {
                m.serialize_entry("op", op.name())?;
                m.serialize_entry("error", error)?;
            }
            _ => {}
        }
        m.end()
    }
}

type ValidFn = dyn Fn(&Data) -> bool + Send + Sync;
type EventFn = dyn Fn(&SessionEvent) + Send + Sync;

/// The `valid` hook and the event subscribers.
#[derive(Clone, Default)]
pub(crate) struct Events {
    pub(crate) valid: Option<Arc<ValidFn>>,
    pub(crate) on_event: Vec<Arc<EventFn>>,
}

impl fmt::Debug for Events {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Events")
            .field("valid", &self.valid.is_some())
            .field("on_event", &self.on_event.len())
            .finish()
    }
}

impl Events {
    pub(crate) fn is_valid(&self, data: &Data) -> bool {
        self.valid.as_ref().is_none_or(|f| f(data))
    }

    /// Whether anyone hears an event: a subscriber, the `tracing` event, or (with the
    /// `metrics` feature) the event counter. An emitter that must work to build an event (a
    /// handle's hash, the keys of a save) asks first.
    pub(crate) fn listening(&self) -> bool {
        !self.on_event.is_empty()
            || cfg!(feature = "metrics")
            || tracing::enabled!(target: "session", tracing::Level::INFO)
    }

    /// Emits an event to tracing (without the owner), to the event counter and to every
    /// subscriber.
    pub(crate) fn emit(&self, event: &SessionEvent) {
        crate::telemetry::event(event.kind.name());
        trace(event);
        for f in &self.on_event {
            f(event);
        }
    }
}

/// The `tracing` event, target `session`, with the handle and the event's fields but never
/// the owner: `debug` for what every request may do (created, saved, touched), `warn` for a
/// store failure, `info` for the rest (logins, logouts, revokes, expiry: what an audit reads).
fn trace(event: &SessionEvent) {
    let handle = event.handle.as_ref().map(Handle::as_str);
    let name = event.kind.name();
    match &event.kind {
        EventKind::Created | EventKind::Touched => {
            tracing::debug!(target: "session", event = name, handle, "session event");
        }
        EventKind::Saved { keys } => tracing::debug!(
            target: "session", event = name, handle, keys = keys.len(), "session event"
        ),
        EventKind::Regenerated { from } | EventKind::Moved { from } => tracing::info!(
            target: "session", event = name, handle,
            from = from.as_ref().map(Handle::as_str), "session event"
        ),
        EventKind::StoreFailed { op, error } => tracing::warn!(
            target: "session", event = name, op = op.name(), error, "session event"
        ),
        kind => tracing::info!(
            target: "session", event = name, handle, reason = kind.reason(),
            koa = kind.koa_name(), "session event"
        ),
    }
}
