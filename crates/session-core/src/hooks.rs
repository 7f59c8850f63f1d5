//! The app's callbacks: koa's `valid` and `beforeSave` hooks, and the event subscribers.

use std::fmt;
use std::sync::Arc;

use crate::events::{Events, SessionEvent};
use crate::record::Data;
use crate::session::SessionState;

type BeforeSaveFn = dyn Fn(&mut SessionState) + Send + Sync;

/// App callbacks. Every event is also a `tracing` event, target `session` (`debug` for
/// created, saved and touched, `warn` for a store failure, `info` for the rest), carrying no
/// id, owner or data.
#[derive(Clone, Default)]
pub struct Hooks {
    pub(crate) events: Events,
    before_save: Option<Arc<BeforeSaveFn>>,
}

impl fmt::Debug for Hooks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Hooks")
            .field("valid", &self.events.valid.is_some())
            .field("before_save", &self.before_save.is_some())
            .field("on_event", &self.events.on_event.len())
            .finish()
    }
}

impl Hooks {
    /// No hooks.
    pub fn new() -> Self {
        Self::default()
    }

    /// koa's `valid(ctx, session)`: a loaded session for which this returns `false` is discarded
    /// (a new session starts, the old record is deleted, [`EventKind::Invalid`](crate::EventKind::Invalid) fires). Use it to
    /// revoke cookie-mode sessions, e.g. those issued before a user's "tokens valid after" time.
    pub fn valid(mut self, f: impl Fn(&Data) -> bool + Send + Sync + 'static) -> Self {
        self.events.valid = Some(Arc::new(f));
        self
    }

    /// koa's `beforeSave(ctx, session)`: runs once the commit decided to write, before the
    /// write; changes it makes are part of that write.
    pub fn before_save(mut self, f: impl Fn(&mut SessionState) + Send + Sync + 'static) -> Self {
        self.before_save = Some(Arc::new(f));
        self
    }

    /// Subscribes to the lifecycle events ([`SessionEvent`]; any number of subscribers).
    ///
    /// A subscriber runs on the request's task, in the middle of its work: it must be quick
    /// and must never block. Hand anything slow (a file, a network) to a queue, as the audit
    /// sink of `session-hyper` does.
    ///
    /// ```
    /// use std::sync::{Arc, Mutex};
    /// use session_core::{EventKind, Hooks};
    /// let ended = Arc::new(Mutex::new(0));
    /// let seen = Arc::clone(&ended);
    /// let hooks = Hooks::new().on_event(move |e| {
    ///     if matches!(e.kind, EventKind::Destroyed | EventKind::Revoked(_)) {
    ///         *seen.lock().unwrap() += 1;
    ///     }
    /// });
    /// # let _ = hooks;
    /// ```
    pub fn on_event(mut self, f: impl Fn(&SessionEvent) + Send + Sync + 'static) -> Self {
        self.events.on_event.push(Arc::new(f));
        self
    }

    pub(crate) fn run_before_save(&self, session: &mut SessionState) {
        if let Some(f) = &self.before_save {
            f(session);
        }
    }
}
