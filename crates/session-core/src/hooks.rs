//! koa's `valid` and `beforeSave` hooks, and its three events, as callbacks and tracing events.

use std::fmt;
use std::sync::Arc;

use crate::record::Data;
use crate::session::Session;

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
type BeforeSaveFn = dyn Fn(&mut Session) + Send + Sync;
type EventFn = dyn Fn(Event) + Send + Sync;

/// App callbacks. Every event is also a `tracing` event at `info` level, target `session`,
/// carrying no id or data.
#[derive(Clone, Default)]
pub struct Hooks {
    valid: Option<Arc<ValidFn>>,
    before_save: Option<Arc<BeforeSaveFn>>,
    on_event: Vec<Arc<EventFn>>,
}

impl fmt::Debug for Hooks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Hooks")
            .field("valid", &self.valid.is_some())
            .field("before_save", &self.before_save.is_some())
            .field("on_event", &self.on_event.len())
            .finish()
    }
}

impl Hooks {
    /// No hooks.
    pub fn new() -> Self {
        Self::default()
    }

    /// koa's `valid(ctx, session)`: a loaded session for which this returns `false` is discarded
    /// (a new session starts, the old record is deleted, [`Event::Invalid`] fires). Use it to
    /// revoke cookie-mode sessions, e.g. those issued before a user's "tokens valid after" time.
    pub fn valid(mut self, f: impl Fn(&Data) -> bool + Send + Sync + 'static) -> Self {
        self.valid = Some(Arc::new(f));
        self
    }

    /// koa's `beforeSave(ctx, session)`: runs once the commit decided to write, before the
    /// write; changes it makes are part of that write.
    pub fn before_save(mut self, f: impl Fn(&mut Session) + Send + Sync + 'static) -> Self {
        self.before_save = Some(Arc::new(f));
        self
    }

    /// Subscribes to [`Event`]s (any number of subscribers).
    pub fn on_event(mut self, f: impl Fn(Event) + Send + Sync + 'static) -> Self {
        self.on_event.push(Arc::new(f));
        self
    }

    pub(crate) fn is_valid(&self, data: &Data) -> bool {
        self.valid.as_ref().is_none_or(|f| f(data))
    }

    pub(crate) fn run_before_save(&self, session: &mut Session) {
        if let Some(f) = &self.before_save {
            f(session);
        }
    }

    /// Emits an event to tracing and to every subscriber.
    pub fn emit(&self, event: Event) {
        tracing::info!(target: "session", event = event.koa_name(), "session not used");
        for f in &self.on_event {
            f(event);
        }
    }
}
