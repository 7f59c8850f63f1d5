//! koa's three events and its `valid` hook: what a session's start consults and reports, with
//! no knowledge of the session type itself (so the session depends on this, not the other way).

use std::fmt;
use std::sync::Arc;

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

type ValidFn = dyn Fn(&Data) -> bool + Send + Sync;
type EventFn = dyn Fn(Event) + Send + Sync;

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

    /// Emits an event to tracing and to every subscriber.
    pub(crate) fn emit(&self, event: Event) {
        tracing::info!(target: "session", event = event.koa_name(), "session not used");
        for f in &self.on_event {
            f(event);
        }
    }
}
