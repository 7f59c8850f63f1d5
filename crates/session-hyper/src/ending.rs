//! Ending the identities a commit retires: the record of a session that was destroyed,
//! expired or rejected, every session a regenerate moved it to meanwhile (a logout ends the
//! session whatever id it lives under), and their owner-index entries.

use std::collections::VecDeque;

use http::HeaderValue;
use session_cookie::Incoming;
use session_core::driver::SessionId;
use session_core::driver::commit::Plan;
use session_core::store::{Destroyed, DynStore, StoreKey};

use crate::Error;
use crate::index;
use crate::session::Session;
use crate::shared::Backend;

/// Supersede markers followed when a destroy ends a session that was regenerated meanwhile
/// (each is one single-key call; a chain only forms from regenerates within the grace time).
const MAX_SUCCESSORS: usize = 8;
/// Store calls one destroy may make: every id the request carried (at most
/// [`session_cookie::MAX_DESTROY_CANDIDATES`]) before any successor, then successors.
const DESTROY_BUDGET: usize = 2 * session_cookie::MAX_DESTROY_CANDIDATES;

/// Deletes the record of the identity the plan ends, if it has one, and every session a
/// regenerate moved it to meanwhile (a logout ends the session, whatever id it lives under).
pub(crate) async fn end_retired(
    session: &Session,
    store: &dyn DynStore,
    plan: &Plan,
    now: u64,
) -> Result<(), Error> {
    end_sessions(session, store, retired_keys(session, plan)).await?;
    unfile_retired(session, plan, now).await;
    Ok(())
}

/// Removes the ended identity from its owner's index, if it was bound (best effort).
pub(crate) async fn unfile_retired(session: &Session, plan: &Plan, now: u64) {
    let Some(retired) = &plan.retire else { return };
    let (Some(owner), Some(key)) = (retired.owner.as_deref(), retired_key(session, plan)) else {
        return;
    };
    let shared = &*session.0.shared;
    let from_old = session.lock().from_old;
    index::unfile(shared, owner, &key, now, from_old).await;
}

/// The key of the identity the plan ends, if a record exists for it, in the store it was
/// loaded from (the store the layer migrates from, for a session that has not moved yet).
pub(crate) fn retired_keys(session: &Session, plan: &Plan) -> Vec<Held> {
    let Some(key) = retired_key(session, plan) else {
        return Vec::new();
    };
    let shared = &*session.0.shared;
    let old = session.lock().from_old && shared.migrate_from.is_some();
    let mut keys = vec![Held {
        key: key.clone(),
        old,
    }];
    // A drain may be writing this session here under its claim key meanwhile: it ends too.
    if let (true, Some(source)) = (old, &shared.store_source) {
        let (_, claim) = crate::session::claim_key(shared, source.name(), key.as_str());
        keys.push(Held::here(claim));
    }
    keys
}

/// The store key of the identity the plan ends, if a record exists for it.
fn retired_key(session: &Session, plan: &Plan) -> Option<StoreKey> {
    let old = plan.retire.as_ref()?;
    let id = old.id.as_ref().filter(|_| old.record_exists)?;
    Some(session.store_key(id))
}

/// When a destroying request sent more cookies of the session's name than are checked
/// (planted ones may hide the real pair), the store keys of every id among up to
/// [`session_cookie::MAX_DESTROY_CANDIDATES`] values that verifies: so a logout ends the user's
/// session whatever was planted around its cookie. Planted ids can only be ones this site
/// signed for the planter, whose own sessions end with it.
pub(crate) fn presented_keys(session: &Session, plan: &Plan) -> Vec<StoreKey> {
    let shared = &*session.0.shared;
    let Some(fields) = &session.0.hidden else {
        return Vec::new();
    };
    let fields = fields.iter().map(HeaderValue::as_bytes);
    let values = match shared.cookies.read_for_destroy(fields) {
        Incoming::Valid { value, .. } => vec![value],
        Incoming::Candidates { verified, .. } => verified.into_iter().map(|v| v.value).collect(),
        _ => Vec::new(),
    };
    let policy = shared.config.ids();
    let ids: Vec<SessionId> = values.into_iter().filter_map(|v| policy.parse(v)).collect();
    let retired = plan.retire.as_ref().and_then(|r| r.id.as_ref());
    ids.iter()
        .filter(|id| Some(*id) != retired)
        .map(|id| session.store_key(id))
        .collect()
}

/// Destroys the record under `key` in the layer's store and the sessions regenerates (or a
/// move) superseded it with.
pub(crate) async fn end_key(session: &Session, key: StoreKey) -> Result<(), Error> {
    let Backend::Store(store) = &session.0.shared.backend else {
        return Ok(());
    };
    end_sessions(session, store.as_ref(), vec![Held::here(key)])
        .await
        .map(|_| ())
}

/// A store key a destroy ends, and whether it is in the store the layer migrates from.
pub(crate) struct Held {
    pub(crate) key: StoreKey,
    pub(crate) old: bool,
}

impl Held {
    pub(crate) fn here(key: StoreKey) -> Self {
        Self { key, old: false }
    }
}

/// Deletes the records under `keys` and follows the supersede markers of regenerates that
/// moved them meanwhile, breadth first: every key before any successor, at most
/// [`MAX_SUCCESSORS`] successors from each, and [`DESTROY_BUDGET`] store calls in all (so
/// planted cookies can't make one logout cost more than that). A marker in the store the layer
/// migrates from names a successor a move created here, or one the old app's own regenerate
/// created there: both are ended.
///
/// With `follow` off, no successor is followed: answers whether a supersede marker was found
/// (the session lives on under another id, which is left alone).
pub(crate) async fn end_sessions(
    session: &Session,
    store: &dyn DynStore,
    keys: Vec<Held>,
) -> Result<bool, Error> {
    end_sessions_following(session, store, keys, true).await
}

pub(crate) async fn end_sessions_following(
    session: &Session,
    store: &dyn DynStore,
    keys: Vec<Held>,
    follow: bool,
) -> Result<bool, Error> {
    let shared = &*session.0.shared;
    let mut moved = false;
    let mut queue: VecDeque<(Held, usize)> = keys.into_iter().map(|k| (k, 0)).collect();
    let mut budget = DESTROY_BUDGET;
    while let Some((held, hops)) = queue.pop_front() {
        if budget == 0 {
            tracing::warn!(target: "session", budget = DESTROY_BUDGET, "a destroy reached its budget of store calls; the sessions left expire by their TTL");
            return Ok(moved);
        }
        budget -= 1;
        let target = match (&shared.migrate_from, held.old) {
            (Some(old), true) => old.as_ref(),
            _ => store,
        };
        if let Destroyed::Superseded(next) = shared.timed(target.destroy_dyn(&held.key)).await? {
            moved = true;
            if !follow {
                continue;
            }
            if hops < MAX_SUCCESSORS {
                let old = held.old.then(|| Held {
                    key: next.clone(),
                    old: true,
                });
                queue.push_back((Held::here(next), hops + 1));
                queue.extend(old.map(|h| (h, hops + 1)));
            } else {
                tracing::warn!(target: "session", max = MAX_SUCCESSORS, "a destroy followed the most regenerate successors it follows; later ones expire by their TTL");
            }
        }
    }
    Ok(moved)
}
