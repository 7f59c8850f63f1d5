//! What a middleware does with a session and a handler must not: start it from what the
//! client presented, read what to write, and record what was written.
//!
//! A web framework integration (like `session-hyper`) starts a [`SessionState`] per request
//! with [`SessionDriver::start`], hands the handler its own API (read, change, destroy,
//! regenerate), and at the end asks [`commit::prepare`] what to write,
//! writes it and reports back with [`SessionDriver::mark_committed`]. None of these methods are
//! on `SessionState` itself: a handler (or a `before_save` hook) that has a session can't call
//! them by accident.
//!
//! ```compile_fail,E0624
//! # use session_core::{Config, SessionState};
//! fn handler(session: &mut SessionState, id: session_core::driver::SessionId) {
//!     session.assign_id(id); // a driver method: not part of the session's own API
//! }
//! ```

use crate::config::Config;
use crate::events::SessionEvent;
use crate::owner::Handle;
use crate::record::{Data, Delta, Meta, Record};
use crate::session::SessionState;
use crate::session::starts_live;

pub use crate::expiry::{
    CLOCK_SKEW_MS, DEFAULT_SUPERSEDE_GRACE, MAX_AGE_CAP_MS, MAX_SUPERSEDE_GRACE, ONE_DAY_MS,
    STORE_TTL_MARGIN_MS,
};
pub use crate::id::{
    ID_LEN, ID_RANDOM_BYTES, IdPolicy, KeyDerivation, MAX_ID_LEN, SessionId, is_cookie_value,
};
pub use crate::keys::{MAX_KEYS, MIN_KEY_LEN, Secret, validate_keys};
pub use crate::limit::{ENDED_KEY, EndedMarker};
pub use crate::owner::{
    Binding, CLOCK_SKEW_ALLOWANCE_MS, IN_FLIGHT_GRACE_MS, OWNER_KEY, check_owner,
};
pub use crate::session::{Retired, Source};

/// The commit decision: at the end of a request, what to write, as a pure function of the
/// session (its state at load and now), the options and the time. The table of rules is on
/// [`decide`](crate::commit::decide).
pub mod commit {
    pub use crate::commit::{Action, Plan, Row, decide, prepare};
}

/// Whether what a verified cookie led to would start a live session now: a live store record,
/// or a cookie-mode payload, that has not expired (`_expire`, the absolute lifetime), claims no
/// more than this server writes, and passes the `valid` hook. No event fires. A middleware that
/// found several verified session cookies uses it to pick the first live one, so a dead or
/// revoked cookie planted ahead of the real one can't end the session.
///
/// ```
/// use session_core::Config;
/// use session_core::driver::{is_live_now, Source};
/// use session_core::store::{MaxAge, Meta, Record};
/// let config = Config::builder().key([7u8; 32].to_vec()).build().unwrap();
/// let now = config.now_ms();
/// let record = |expire| Record { data: Default::default(),
///     meta: Meta { expire: Some(expire), max_age: MaxAge::Ms(60_000), created: None } };
/// assert!(is_live_now(&config, &Source::Cookie(record(now + 1_000))));
/// assert!(!is_live_now(&config, &Source::Cookie(record(now - 1))));
/// assert!(!is_live_now(&config, &Source::None));
/// ```
pub fn is_live_now(config: &Config, source: &Source) -> bool {
    starts_live(&config.rules(), source)
}

/// Whether anyone hears lifecycle events: a subscriber ([`Hooks::on_event`](crate::Hooks::on_event)),
/// a `tracing` subscriber at `info` for the target `session`, or the event counter of the
/// `metrics` feature. A middleware asks before it works to build an event.
pub fn listening(config: &Config) -> bool {
    config.hooks().events.listening()
}

/// Emits the lifecycle event `event` builds, stamped with the configuration's clock, if anyone
/// hears it ([`listening`]): to `tracing`, to the event counter, and to every subscriber.
pub fn emit(config: &Config, event: impl FnOnce() -> SessionEvent) {
    let events = &config.hooks().events;
    if events.listening() {
        events.emit(&event().at(config.now_ms()));
    }
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for crate::session::SessionState {}
}

/// The middleware's side of a [`SessionState`] (sealed: only `SessionState` implements it).
pub trait SessionDriver: sealed::Sealed + Sized {
    /// Starts the request's session from what the client presented (the cookie layer's verdict
    /// and the store's answer). Expired, rejected and missed sessions become new empty sessions
    /// (their event fires) and the old identity is retired.
    fn start(config: &Config, source: Source) -> Self;
    /// The session id; `None` for a new session until its first write assigns one (and always
    /// in cookie mode, where the cookie is the session).
    fn id(&self) -> Option<&SessionId>;
    /// Whether the request carried a session cookie (so a removal cookie means something).
    fn had_cookie(&self) -> bool;
    /// Marks that the cookie was signed with an older key and must be re-signed.
    fn set_resign(&mut self, resign: bool);
    /// Whether the cookie must be re-signed with the newest key.
    fn needs_resign(&self) -> bool;
    /// Whether the request brought a session that could not start live (expired, missed,
    /// invalid, ended by a limit, undecodable): its end was reported when it started.
    fn started_dead(&self) -> bool;
    /// The top-level keys set and removed since the baseline: what a store merges.
    fn delta(&self) -> Delta;
    /// The record as this request sees it.
    fn to_record(&self) -> Record;
    /// The data as the store keeps it: the user's keys and, for a session bound to an owner,
    /// the binding under [`OWNER_KEY`].
    fn stored_data(&self) -> Data;
    /// The session's owner binding, if it has one.
    fn binding(&self) -> Option<&Binding>;
    /// The identity the next commit ends, if any (after a destroy, a regenerate, or a session
    /// that could not start live).
    fn retired(&self) -> Option<&Retired>;
    /// Records, before the record of a regenerate of a bound session is created, that it
    /// replaces the session filed under `predecessor` (the [`Handle`] of the old id's store
    /// key): the binding written with the new record names it in its lineage, which a revoke of
    /// the owner's other sessions reads to keep the caller's own.
    fn descend_from(&mut self, predecessor: Handle);
    /// Gives the session the id its new record was created under.
    fn assign_id(&mut self, id: SessionId);
    /// Records that the commit's write succeeded (`Some` with the meta written) or that the
    /// session ended (`None`): the written state becomes the new baseline, so a later commit in
    /// the same request writes nothing unless something changes again.
    fn mark_committed(&mut self, written: Option<Meta>);
    /// Records that the commit found the session's record superseded by a concurrent
    /// regenerate: nothing was written, and the session is stale for the rest of the request.
    fn mark_superseded(&mut self);
    /// The id this request carried that a regenerate superseded (found so at load, or by a
    /// commit that lost to another regenerate): the session lives on under the successor the
    /// store's marker names, in the same browser.
    fn superseded_id(&self) -> Option<&SessionId>;
}

impl SessionDriver for SessionState {
    fn start(config: &Config, source: Source) -> Self {
        SessionState::begin(&config.rules(), source)
    }
    fn id(&self) -> Option<&SessionId> {
        SessionState::id(self)
    }
    fn had_cookie(&self) -> bool {
        SessionState::had_cookie(self)
    }
    fn set_resign(&mut self, resign: bool) {
        SessionState::set_resign(self, resign);
    }
    fn needs_resign(&self) -> bool {
        SessionState::needs_resign(self)
    }
    fn started_dead(&self) -> bool {
        self.started_dead
    }
    fn delta(&self) -> Delta {
        SessionState::delta(self)
    }
    fn to_record(&self) -> Record {
        SessionState::to_record(self)
    }
    fn stored_data(&self) -> Data {
        SessionState::stored_data(self)
    }
    fn binding(&self) -> Option<&Binding> {
        SessionState::binding(self)
    }
    fn retired(&self) -> Option<&Retired> {
        SessionState::retired(self)
    }
    fn descend_from(&mut self, predecessor: Handle) {
        SessionState::descend_from(self, predecessor);
    }
    fn assign_id(&mut self, id: SessionId) {
        SessionState::assign_id(self, id);
    }
    fn mark_committed(&mut self, written: Option<Meta>) {
        SessionState::mark_committed(self, written);
    }
    fn mark_superseded(&mut self) {
        SessionState::mark_superseded(self);
    }
    fn superseded_id(&self) -> Option<&SessionId> {
        SessionState::superseded_id(self)
    }
}
