//! Lifecycle events as a test sees them: an [`EventRecorder`] keeps every event the layers it
//! is given to emit ([`EventRecorder::hooks`] for a config, [`EventRecorder::listener`] beside
//! other subscribers), in order; [`brief`] is an event as a golden sequence names it (its name,
//! whether it carries a handle, its reason); [`EventRecorder::json`] is every event as the JSON
//! line an audit sink writes.
//!
//! The attack suite's recorder is [`crate::capture`]'s: every config a
//! [`Variant`](crate::backend::Variant) builds carries [`crate::capture::recording_hooks`],
//! which record into the attack running on the thread.

use std::sync::{Arc, Mutex};

use session_core::{Handle, Hooks, SessionEvent};

/// Every event the layers it listens to emitted, in the order they came; clones share them.
#[derive(Clone, Default)]
pub struct EventRecorder(Arc<Mutex<Vec<SessionEvent>>>);

impl EventRecorder {
    /// An empty recorder.
    pub fn new() -> EventRecorder {
        EventRecorder::default()
    }

    /// Hooks with this recorder as their only event subscriber.
    pub fn hooks(&self) -> Hooks {
        Hooks::new().on_event(self.listener())
    }

    /// The subscriber, for [`Hooks::on_event`].
    pub fn listener(&self) -> impl Fn(&SessionEvent) + Send + Sync + 'static {
        let me = self.clone();
        move |e| me.record(e)
    }

    /// Keeps `event`.
    pub fn record(&self, event: &SessionEvent) {
        self.0.lock().unwrap().push(event.clone());
    }

    /// The events kept since the last call, and forgets them.
    pub fn take(&self) -> Vec<SessionEvent> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }

    /// The events kept so far (they stay).
    pub fn events(&self) -> Vec<SessionEvent> {
        self.0.lock().unwrap().clone()
    }

    /// How many events it kept.
    pub fn len(&self) -> usize {
        self.0.lock().unwrap().len()
    }

    /// Whether it kept none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every event kept, as its JSON object (the audit sink's line), one per line.
    pub fn json(&self) -> String {
        let mut out = String::new();
        for e in self.0.lock().unwrap().iter() {
            out.push_str(&serde_json::to_string(e).unwrap());
            out.push('\n');
        }
        out
    }

    /// [`EventRecorder::json`] with each owner replaced by `<owner>`: an owner is an app's
    /// user id, which events carry by design (a test may have used the same name as session
    /// data it keeps out of everything else).
    pub fn json_without_owners(&self) -> String {
        let mut out = String::new();
        for e in self.0.lock().unwrap().iter() {
            let mut e = e.clone();
            if e.owner.is_some() {
                e.owner = Some("<owner>".into());
            }
            out.push_str(&serde_json::to_string(&e).unwrap());
            out.push('\n');
        }
        out
    }
}

/// An event as a golden sequence names it: its name, whether it carries a handle, its reason.
pub type Brief = (&'static str, bool, Option<&'static str>);

/// `event` as a golden sequence names it.
pub fn brief(event: &SessionEvent) -> Brief {
    (
        event.kind.name(),
        event.handle.is_some(),
        event.kind.reason(),
    )
}

/// Each of `events` as a golden sequence names it.
pub fn briefs(events: &[SessionEvent]) -> Vec<Brief> {
    events.iter().map(brief).collect()
}

/// The handle of each of `events` (`None` for one without).
pub fn handles(events: &[SessionEvent]) -> Vec<Option<String>> {
    events
        .iter()
        .map(|e| e.handle.as_ref().map(Handle::as_str).map(str::to_owned))
        .collect()
}
