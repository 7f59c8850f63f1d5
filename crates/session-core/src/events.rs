//! koa's three events and its `valid` hook: what a session's start consults and reports, with
//! no knowledge of the session type itself (so the session depends on this, not the other way).

use std::fmt;
use std::sync::Arc;

use crate::owner::Handle;
use crate::record::Data;

/// Why a session presented by a client was not used (koa's `session:*` events).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Event {
    /// A validly signed id had no record in the store (`session:missed`).
    Missed,
    /// The session's `_expire` or its absolute lifetime had passed (`session:expired`).
    Expired,
    /// The app's `valid` hook refused the session (`session:invalid`).
    Invalid,
}

impl Event {
    /// koa's event name.
    pub fn koa_name(self) -> &'static str {
        match self {
            Self::Missed => "session:missed",
            Self::Expired => "session:expired",
            Self::Invalid => "session:invalid",
        }
    }
}

/// Why a session ended.
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

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum EventKind {
    /// A request brought a session that had ended for this reason: the request is anonymous.
    Ended(EndReason),
}

/// A session's lifecycle event, from the middleware's own decisions (never from the store).
/// It names the session by its handle (the one-way name a listing of the owner's sessions
/// shows), never by its id, cookie or data.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SessionEvent {
    /// What happened.
    pub kind: EventKind,
    /// The session's handle, in store mode.
    pub handle: Option<Handle>,
    /// The owner the session was bound to, if any. An app's user id: keep it where user ids
    /// may go (it is left out of `Debug` and of the `tracing` event).
    pub owner: Option<String>,
}

impl SessionEvent {
    /// An event of `kind` about the session under `handle`, bound to `owner`.
    pub fn new(kind: EventKind, handle: Option<Handle>, owner: Option<String>) -> SessionEvent {
        SessionEvent {
            kind,
            handle,
            owner,
        }
    }
}

impl fmt::Debug for SessionEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionEvent")
            .field("kind", &self.kind)
            .field("handle", &self.handle)
            .field("owner", &self.owner.as_ref().map(|_| "<set>"))
            .finish()
    }
}

type ValidFn = dyn Fn(&Data) -> bool + Send + Sync;
type EventFn = dyn Fn(Event) + Send + Sync;
type SessionEventFn = dyn Fn(&SessionEvent) + Send + Sync;

/// The `valid` hook and the event subscribers.
#[derive(Clone, Default)]
pub(crate) struct Events {
    pub(crate) valid: Option<Arc<ValidFn>>,
    pub(crate) on_event: Vec<Arc<EventFn>>,
    pub(crate) on_session_event: Vec<Arc<SessionEventFn>>,
}

impl fmt::Debug for Events {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Events")
            .field("valid", &self.valid.is_some())
            .field("on_event", &self.on_event.len())
            .field("on_session_event", &self.on_session_event.len())
            .finish()
    }
}

impl Events {
    pub(crate) fn is_valid(&self, data: &Data) -> bool {
        self.valid.as_ref().is_none_or(|f| f(data))
    }

    /// Emits an event to tracing and to every subscriber.
    pub(crate) fn emit(&self, event: Event) {
        tracing::info!(target: "session", event = event.koa_name(), "session not used");
        for f in &self.on_event {
            f(event);
        }
    }

    /// Emits a lifecycle event to tracing (without the owner) and to every subscriber.
    pub(crate) fn emit_session(&self, event: &SessionEvent) {
        match event.kind {
            EventKind::Ended(reason) => tracing::info!(
                target: "session",
                event = "session:ended",
                reason = reason.name(),
                handle = event.handle.as_ref().map(Handle::as_str),
                "a request brought a session that had ended"
            ),
        }
        for f in &self.on_session_event {
            f(event);
        }
    }
}
