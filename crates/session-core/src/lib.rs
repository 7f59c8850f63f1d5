//! The framework-agnostic session model of koa-session, with its known flaws fixed.
//!
//! The rules every part follows are written out in [`behaviour`].
//!
//! A session is a JSON object per visitor. The handler reads and changes it; at the end of the
//! request a pure decision ([`driver::commit::decide`]) says what to write: nothing, a cookie, a store
//! write, a TTL touch, a destroy or a regenerate. This crate holds that model and the contract
//! stores implement; it does no I/O and needs no runtime. `session-cookie` signs and encodes
//! cookies, the store crates keep records, and `session-hyper` wires it all into a server.
//!
//! # The model
//! - **Data**: a JSON object with typed access ([`SessionState::get`],
//!   [`SessionState::insert`], ...). Keys starting with `_` are *rejected*
//!   ([`SessionError::ReservedKey`]): they are reserved for koa's `_expire`, `_maxAge`,
//!   `_session` and our `_created`, and a rejected write is easier to debug than a silently
//!   dropped one.
//! - **Change tracking**: per top-level key, by value. Setting a key to an equal value, or back
//!   to its loaded value, is no change; the commit therefore never writes for nothing, and the
//!   delta ([`SessionDriver::delta`](driver::SessionDriver::delta)) tells a store exactly which
//!   keys were set or removed, so two concurrent requests changing different keys both land.
//! - **Lifecycle**: [`SessionState::destroy`] (koa's `session = null`),
//!   [`SessionState::regenerate`] (new id, data kept, the old record superseded only after the
//!   new one exists), [`SessionState::save`] (forced write), [`SessionState::set_max_age`].
//! - **Races**: a regenerate racing a destroy never leaves the destroyed data alive under the
//!   new id, in either order; a request that still carries an id a regenerate has just
//!   superseded is anonymous without touching the client's (newer) cookie; a save that races a
//!   destroy never brings the session back. See [`Store`](store::Store) for the contract that
//!   makes this hold on any store, and [`commit`](driver::commit) for the rules.
//! - **Expiry**: koa's `_expire`/`_maxAge`/`_session`, `rolling`, `renew` (strictly less than
//!   half of max-age left) and an absolute lifetime koa lacks (`_created`, never refreshed). A
//!   record written without `_created` (by a Koa app, or before the cap was configured) counts
//!   from the request that first loads it. All time comes from an injectable [`Clock`].
//! - **Ids**: 32 bytes from the OS CSPRNG, base64url; koa's `genid`/`prefix` are pluggable, and
//!   every incoming id passes a strict format check before any store call. The store key is a
//!   hash of the id ([`driver::KeyDerivation::Hashed`]) so a store dump holds no live session; the
//!   koa-compat preset uses the raw id, as koa does.
//! - **Store contract**: [`Store`](store::Store): insert-if-absent create, update-if-present
//!   save with deltas, idempotent destroy, supersede markers, TTL-only touch, a size limit and a
//!   TTL on every record; the `testing` feature holds the conformance suite every store runs
//!   ([`store::testing`]).
//!
//! # Three audiences, three places
//! - **An app** names what the crate root holds: [`Config`] and its options, [`MaxAge`],
//!   [`SessionState`]'s own methods (what a handler calls), [`SessionError`], [`Hooks`] and
//!   [`SessionEvent`], [`Clock`], [`IdGenerator`], and a user's sessions ([`SessionInfo`],
//!   [`Handle`]). An app on `session-hyper` gets these re-exported from there.
//! - **A store** implements what [`store`] holds: the [`Store`](store::Store) contract and its
//!   results, the record it keeps, the owner index it may keep, and the conformance suite.
//! - **A middleware** drives what [`driver`] holds: starting a session from what the client
//!   presented, the commit decision, and recording what was written, through
//!   [`SessionDriver`](driver::SessionDriver), which a handler has no reason to import; ids,
//!   store keys and signing keys.
//!
//! # Example
//! A view counter, written the way a middleware drives this crate:
//!
//! ```
//! use session_core::driver::{commit::Action, commit::self};
//! use session_core::driver::{SessionDriver, Source};
//! use session_core::store::Loaded;
//! use session_core::{Config, SessionState};
//!
//! let config = Config::builder()
//!     .key(b"a 32-byte (or longer) secret key!".to_vec())
//!     .build()?;
//!
//! // First visit: no cookie.
//! let mut session = SessionState::start(&config, Source::None);
//! let views: u64 = session.get("views")?.unwrap_or(0);
//! session.insert("views", views + 1)?;
//! let plan = commit::decide(Some(&session), &config, config.now_ms());
//! assert_eq!(plan.action, Action::Create); // store the record, send the cookie
//!
//! // A visit that only reads writes nothing.
//! let record = session.to_record();
//! let id = config.ids().generate()?;
//! let session = SessionState::start(&config, Source::Store { id, record: Loaded::Live(record) });
//! assert_eq!(session.get::<u64>("views")?, Some(1));
//! let plan = commit::decide(Some(&session), &config, config.now_ms());
//! assert_eq!(plan.action, Action::Nothing);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![cfg_attr(docsrs, feature(doc_cfg))]

/// How sessions behave: the contract this crate and the stores and middleware built on it
/// follow (defaults, what a request writes, races, the store contract, bad input and failures).
pub mod behaviour {
    #![doc = include_str!("../behaviour.md")]
}
mod clock;
mod commit;
mod config;
pub mod driver;
mod events;
mod expiry;
pub mod flash;
mod hooks;
mod id;
mod index;
mod keys;
mod limit;
mod owner;
mod record;
mod session;
pub mod store;
mod store_error;
pub mod telemetry;

// What an app uses. A store implements what `store` holds; a middleware drives what `driver`
// holds.
pub use clock::{Clock, ManualClock, SharedClock, SystemClock};
pub use config::{
    Algorithm, Config, ConfigBuilder, ConfigError, CookieMode, CookieOptions, Priority, SameSite,
    SecurePolicy,
};
pub use events::{EndReason, EventKind, RevokedBy, SessionEvent, StoreOp};
pub use hooks::Hooks;
pub use id::IdGenerator;
pub use limit::{OverLimit, SessionLimit};
pub use owner::{
    Handle, MAX_DEVICE_BYTES, MAX_OWNER_BYTES, MAX_SESSION_LIMIT, OwnerError, SessionInfo,
};
pub use record::{Data, MaxAge};
pub use session::{SessionError, SessionState};

/// Re-exported so stores and apps use the same JSON types.
pub use serde_json;
