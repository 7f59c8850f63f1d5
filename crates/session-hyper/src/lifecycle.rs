//! The lifecycle events a commit raises, from what it decided and what the store answered:
//! created, saved, touched, regenerated, moved, destroyed, rekeyed. Subscribers run after the
//! session's lock is released.

use session_core::driver::SessionDriver;
use session_core::driver::SessionId;
use session_core::driver::commit::{Action, Plan, Row};
use session_core::store::Delta;
use session_core::{EventKind, Handle, SessionEvent, SessionState};

use crate::session::Session;

/// What the commit knew before its writes, for the events after them.
pub(crate) struct Before {
    /// The keys a save sets or removes (their names only).
    keys: Vec<String>,
    /// The handler called `destroy()` in this request.
    destroyed: bool,
    /// The cookie came under an older key.
    resign: bool,
    /// The session moves in from the old store or another library (its regenerate is the
    /// move's, not a login's).
    moving: bool,
    /// The request brought a dead session (its end was reported at the start).
    started_dead: bool,
}

impl Before {
    /// What `s` says before the commit's writes; `delta` is a save's, `moving` whether the
    /// session moves in from elsewhere.
    pub(crate) fn of(s: &SessionState, delta: Option<&Delta>, moving: bool) -> Before {
        let keys = delta.map_or_else(Vec::new, |d| {
            d.set
                .iter()
                .map(|(k, _)| k.clone())
                .chain(d.removed.iter().cloned())
                .collect()
        });
        Before {
            keys,
            destroyed: s.destroyed_in_request(),
            resign: s.needs_resign(),
            moving,
            started_dead: s.started_dead(),
        }
    }
}

/// How the commit ended, as far as the events care.
pub(crate) enum Ended {
    /// The session lives on under this id (store mode) or in its cookie.
    Written {
        id: Option<SessionId>,
        owner: Option<String>,
        cookie_sent: bool,
    },
    /// The session is gone.
    Removed,
    /// Nothing was written (a regenerate superseded the id meanwhile).
    Silent,
}

/// The events of one commit, in the order they happened.
pub(crate) fn events(
    session: &Session,
    plan: &Plan,
    before: Before,
    ended: Ended,
) -> Vec<SessionEvent> {
    let handle = |id: Option<&SessionId>| id.map(|id| Handle::of(&session.store_key(id)));
    let retired = plan.retire.as_ref();
    let old = retired.and_then(|r| handle(r.id.as_ref()));
    let old_owner = retired.and_then(|r| r.owner.clone());
    let mut out = Vec::new();
    match ended {
        Ended::Written {
            id,
            owner,
            cookie_sent,
        } => {
            let new = handle(id.as_ref());
            let event = |kind| SessionEvent::new(kind, new.clone(), owner.clone());
            match plan.action {
                // A regenerate of a session that had an identity (in cookie mode: a payload).
                Action::Create | Action::Regenerate if retired.is_some_and(|r| r.regenerated) => {
                    out.push(event(if before.moving {
                        EventKind::Moved { from: old }
                    } else {
                        EventKind::Regenerated { from: old }
                    }));
                }
                Action::Create | Action::Regenerate => {
                    if before.destroyed && retired.is_some() && !before.started_dead {
                        // A logout, then new data in the same request: the old session ended.
                        out.push(SessionEvent::new(EventKind::Destroyed, old, old_owner));
                    }
                    out.push(event(EventKind::Created));
                }
                Action::Save => out.push(event(EventKind::Saved { keys: before.keys })),
                Action::Touch => out.push(event(EventKind::Touched)),
                Action::WriteCookie if plan.row == Row::Resign => {
                    out.push(event(EventKind::Rekeyed));
                }
                Action::WriteCookie | Action::Nothing | Action::Destroy => {}
            }
            let rewritten = matches!(plan.action, Action::Save | Action::Touch);
            if before.resign && rewritten && cookie_sent {
                out.push(event(EventKind::Rekeyed));
            }
        }
        // A logout of a session that was already dead (expired, revoked) reported its end
        // when the request started.
        Ended::Removed
            if plan.action == Action::Destroy && before.destroyed && !before.started_dead =>
        {
            out.push(SessionEvent::new(EventKind::Destroyed, old, old_owner));
        }
        Ended::Removed | Ended::Silent => {}
    }
    out
}
