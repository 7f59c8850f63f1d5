//! Starting a request's session from what the client presented: which records start a live
//! session, and what becomes of the others.

use std::collections::HashMap;

use super::{Retired, SessionState, Stale};
use crate::events::{EndReason, EventKind, Events, SessionEvent};
use crate::expiry;
use crate::id::{KeyDerivation, SessionId};
use crate::limit::EndedMarker;
use crate::owner::{Binding, Handle, OWNER_KEY};
use crate::record::{Data, MaxAge, Meta, Record};
use crate::store::Loaded;

/// What the client presented, as verified by the cookie layer and answered by the store.
#[derive(Debug)]
pub enum Source {
    /// No usable session cookie (none, unsigned, badly signed, or a malformed id).
    None,
    /// A correctly signed cookie whose payload could not be decoded (cookie mode).
    Undecodable,
    /// More cookies of the session's name than the reader checks (typically planted by a
    /// sibling subdomain or a plain-HTTP page: cookie tossing). The request is anonymous and
    /// must not touch the client's cookies: the real one may be among those not checked.
    Ambiguous,
    /// Store mode: a well-formed, correctly signed id and what the store returned for it.
    Store {
        /// The id from the cookie or header.
        id: SessionId,
        /// What the store holds under it.
        record: Loaded,
    },
    /// Cookie mode: the decoded payload.
    Cookie(Record),
}

/// What starting a session needs from the configuration. The configuration builds it
/// ([`Config::rules`](crate::Config)), so the session does not depend on the configuration.
pub(crate) struct Rules<'a> {
    pub(crate) now: u64,
    pub(crate) guest: bool,
    pub(crate) max_age: MaxAge,
    pub(crate) absolute_ms: Option<u64>,
    pub(crate) session_ttl_ms: u64,
    pub(crate) events: &'a Events,
    pub(crate) keys: &'a KeyDerivation,
}

impl Rules<'_> {
    /// Emits an event about the session of `id` (store mode), bound to `owner`, if anyone
    /// hears it (the handle's hash is only computed then).
    fn emit(&self, kind: EventKind, id: Option<&SessionId>, owner: Option<String>) {
        if self.events.listening() {
            let handle = id.map(|id| Handle::of(&self.keys.derive(id)));
            self.events
                .emit(&SessionEvent::new(kind, handle, owner).at(self.now));
        }
    }
}

/// Why a record the client brought can't start a live session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rejection {
    /// Past its `_expire` or the absolute lifetime.
    Expired,
    /// A cookie payload claiming more than this server writes (tampered).
    FromTheFuture,
    /// The app's `valid` hook refused it.
    Invalid,
}

/// Whether `record` can start a live session under `rules`, and if not why (no event fires).
fn rejection(rules: &Rules<'_>, record: &Record, in_store: bool) -> Option<Rejection> {
    if expiry::expired(&record.meta, rules.absolute_ms, rules.now) {
        Some(Rejection::Expired)
    } else if !in_store && expiry::from_the_future(&record.meta, rules.session_ttl_ms, rules.now) {
        Some(Rejection::FromTheFuture)
    } else if !rules.events.is_valid(&record.data) {
        Some(Rejection::Invalid)
    } else {
        None
    }
}

/// Whether `source` would start a live session now: a live store record or a cookie payload
/// that has not expired, claims no more than this server writes, and passes the `valid` hook.
/// No event fires.
pub(crate) fn starts_live(rules: &Rules<'_>, source: &Source) -> bool {
    match source {
        Source::Store {
            record: Loaded::Live(record),
            ..
        } => {
            EndedMarker::from_data(&record.data).is_none()
                && rejection(rules, record, true).is_none()
        }
        Source::Cookie(record) => rejection(rules, record, false).is_none(),
        _ => false,
    }
}

impl SessionState {
    /// Starts the request's session from what the client presented. Expired, invalid and missed
    /// sessions become new empty sessions (their event fires); the old identity is retired.
    pub(crate) fn begin(rules: &Rules<'_>, source: Source) -> SessionState {
        let config = rules;
        let now = rules.now;
        match source {
            Source::None => Self::fresh(config, now, None, false),
            Source::Undecodable => Self::fresh(
                config,
                now,
                Some(Retired {
                    id: None,
                    record_exists: false,
                    regenerated: false,
                    owner: None,
                }),
                true,
            ),
            Source::Ambiguous => {
                let mut s = Self::fresh(config, now, None, true);
                s.stale = Some(Stale::Ambiguous);
                s
            }
            Source::Store {
                id,
                record: Loaded::Superseded,
            } => {
                let mut s = Self::fresh(config, now, None, true);
                s.stale = Some(Stale::Superseded(id));
                s
            }
            Source::Store {
                id,
                record: Loaded::Missing,
            } => {
                if config.guest {
                    // A guest's id has no record until it holds data: nothing was missed.
                    // The signature proves we issued this id: a returning guest keeps it.
                    let mut s = Self::fresh(config, now, None, true);
                    s.id = Some(id);
                    s
                } else {
                    config.emit(EventKind::Missed, Some(&id), None);
                    Self::fresh(
                        config,
                        now,
                        Some(Retired {
                            id: Some(id),
                            record_exists: false,
                            regenerated: false,
                            owner: None,
                        }),
                        true,
                    )
                }
            }
            Source::Store {
                id,
                record: Loaded::Live(record),
            } => Self::from_record(config, now, Some(id), record, true),
            Source::Cookie(record) => Self::from_record(config, now, None, record, false),
        }
    }

    fn fresh(
        config: &Rules<'_>,
        now: u64,
        retire: Option<Retired>,
        had_cookie: bool,
    ) -> SessionState {
        let started_dead = retire.is_some();
        SessionState {
            id: None,
            retire,
            stale: None,
            is_new: true,
            had_cookie,
            resign: false,
            written: false,
            data: Data::new(),
            originals: HashMap::new(),
            replaced: false,
            meta: Meta {
                expire: None,
                max_age: config.max_age,
                created: Some(now),
            },
            forced: false,
            max_age_set: false,
            regenerate: false,
            owner: None,
            owner_dirty: false,
            ended: None,
            flash: Data::new(),
            renewed: None,
            started_dead,
        }
    }

    fn from_record(
        config: &Rules<'_>,
        now: u64,
        id: Option<SessionId>,
        mut record: Record,
        in_store: bool,
    ) -> SessionState {
        if in_store && let Some(marker) = EndedMarker::from_data(&record.data) {
            // The marker a session limit left: the session ended; its request is anonymous,
            // and the marker goes with the retired identity.
            let reason = EndReason::from_name(&marker.reason).unwrap_or(EndReason::NewerLogin);
            if config.events.listening() {
                config.events.emit(
                    &SessionEvent::new(
                        EventKind::Ended(reason),
                        Some(marker.handle),
                        Some(marker.owner),
                    )
                    .at(now),
                );
            }
            let mut s = Self::fresh(
                config,
                now,
                Some(Retired {
                    id,
                    record_exists: true,
                    regenerated: false,
                    owner: None,
                }),
                true,
            );
            s.ended = Some(reason);
            return s;
        }
        // The owner binding is the middleware's, not the handler's data (nor the `valid`
        // hook's); a value that is not a binding is dropped.
        let owner = record
            .data
            .shift_remove(OWNER_KEY)
            .and_then(|v| Binding::from_value(&v));
        let flash = super::flash::split_flash(&mut record.data);
        let retire = || Retired {
            id: id.clone(),
            record_exists: in_store,
            regenerated: false,
            owner: owner.as_ref().map(|b| b.owner.clone()),
        };
        if let Some(why) = rejection(config, &record, in_store) {
            if why == Rejection::FromTheFuture {
                // Only a holder of the signing key could have written it (checklist D-07).
                tracing::warn!(
                    target: "session",
                    "signed cookie payload claims an expiry or creation beyond what this server writes; treated as tampered"
                );
            }
            let kind = match why {
                Rejection::Expired => EventKind::Expired,
                Rejection::FromTheFuture | Rejection::Invalid => EventKind::Invalid,
            };
            config.emit(kind, id.as_ref(), owner.as_ref().map(|b| b.owner.clone()));
            return Self::fresh(config, now, Some(retire()), true);
        }
        let mut meta = record.meta;
        if meta.created.is_none() {
            // Written by a Koa app, or before an absolute lifetime was configured: the creation
            // time is unknown, so the cap counts from now (documented in the crate docs).
            meta.created = Some(now);
        }
        SessionState {
            id,
            retire: None,
            stale: None,
            is_new: false,
            had_cookie: true,
            resign: false,
            written: false,
            data: record.data,
            originals: HashMap::new(),
            replaced: false,
            meta,
            forced: false,
            max_age_set: false,
            regenerate: false,
            owner,
            owner_dirty: false,
            ended: None,
            flash,
            renewed: None,
            started_dead: false,
        }
    }
}
