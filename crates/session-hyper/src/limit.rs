//! Ending the sessions a session limit removed from their owner's index (`crate::index::admit`
//! with [`OverLimit::EndOldest`](session_core::OverLimit::EndOldest)), before the login
//! answers, so the ended session's next request is anonymous and raises an event saying why:
//! - a live record is superseded (atomically, as a regenerate does) by a marker record
//!   ([`EndedMarker`]) filed under a key of its own ([`ended_key`]): a request of the ended
//!   session still in flight finds its record superseded and can write nothing (no save, no
//!   regenerate), and a later load that finds the supersede marker looks for the ended marker;
//! - under a key with no record yet (a login still creating it) the marker itself is created,
//!   so that login's create collides with it and the login ends the same way.

use std::sync::Arc;
use std::time::Duration;

use session_core::driver::{Binding, EndedMarker, OWNER_KEY};
use session_core::store::{
    Created, Destroyed, DynStore, IndexEntry, Loaded, Record, StoreKey, Supersede,
};
use session_core::{EndReason, EventKind, Handle, MaxAge, RevokedBy, SessionEvent};

use crate::Error;
use crate::index::{index_of, index_time};
use crate::shared::Shared;

/// How long the marker of a session a limit ended is kept: a day. A browser that comes back
/// later is anonymous all the same, without being told why.
pub(crate) const ENDED_MARKER_TTL: Duration = Duration::from_secs(24 * 3600);

/// Regenerate successors followed from an ended session (as a revoke does).
const MAX_SUCCESSORS: usize = 8;

/// The marker record of the session filed under `key`, bound to `owner`.
fn marker(owner: &str, key: &StoreKey, now: u64) -> Record {
    let ttl_ms = u64::try_from(ENDED_MARKER_TTL.as_millis()).unwrap_or(u64::MAX);
    let marker = EndedMarker {
        reason: EndReason::NewerLogin.name().to_owned(),
        handle: Handle::of(key),
        owner: owner.to_owned(),
    };
    Record {
        data: marker.to_data(),
        meta: session_core::store::Meta {
            expire: Some(now.saturating_add(ttl_ms)),
            max_age: MaxAge::Ms(ttl_ms),
            created: Some(now),
        },
    }
}

/// Whether the live record `record` is a marker a limit left.
fn is_marker(record: &Record) -> bool {
    EndedMarker::from_data(&record.data).is_some()
}

/// Whether the record a create collided with under `key` is the marker a limit left there
/// (a newer login ended this one before its record was created).
pub(crate) async fn marked(
    shared: &Shared,
    store: &dyn DynStore,
    key: &StoreKey,
) -> Result<bool, Error> {
    Ok(match shared.timed(store.load_dyn(key)).await? {
        Loaded::Live(r) => is_marker(&r),
        _ => false,
    })
}

/// The key the marker of the session filed under `key` is kept under, when the session's
/// record was superseded by it.
pub(crate) fn ended_key(key: &StoreKey) -> StoreKey {
    StoreKey::from_raw(format!("{}:ended", key.as_str()))
}

/// Whether this layer's store can hold the markers a limit leaves (an owner index that
/// admits): only then does a superseded record lead to a look for one.
pub(crate) fn markers_kept(shared: &Shared) -> bool {
    index_of(shared).is_ok_and(|(_, index)| index.admits())
}

/// What a load that found `key` superseded stands for: the ended marker, if a limit left one
/// (the session ended; its request is told why), else the supersede marker as found.
pub(crate) async fn ended_instead(
    shared: &Shared,
    store: &dyn DynStore,
    key: &StoreKey,
) -> Result<Loaded, Error> {
    Ok(match shared.timed(store.load_dyn(&ended_key(key))).await? {
        Loaded::Live(r) if is_marker(&r) => Loaded::Live(r),
        _ => Loaded::Superseded,
    })
}

/// Ends the sessions of `ended` (entries of `owner` an admission removed), and the
/// successors regenerates moved them to while still bound to `owner`. Then removes the
/// successors' entries from the index (the admission removed the others).
async fn end_sessions(
    shared: &Shared,
    owner: &str,
    ended: Vec<IndexEntry>,
    now: u64,
) -> Result<(), Error> {
    let (store, index) = index_of(shared)?;
    let mut followed = Vec::new();
    let mut failure = None;
    for entry in &ended {
        match end_one(shared, store, owner, entry.key.clone(), now).await {
            Ok(successors) => {
                for handle in std::iter::once(&entry.handle).chain(&successors) {
                    session_core::driver::emit(&shared.config, || {
                        SessionEvent::new(
                            EventKind::Revoked(RevokedBy::Limit),
                            Some(handle.clone()),
                            Some(owner.to_owned()),
                        )
                    });
                }
                followed.extend(successors);
            }
            Err(e) => {
                failure.get_or_insert(e);
            }
        }
    }
    if !followed.is_empty() {
        shared
            .timed(index.unindex(owner, &followed, index_time(now)))
            .await?;
    }
    tracing::info!(target: "session", ended = ended.len() + followed.len(), "a login over its owner's session limit ended the sessions bound earliest");
    match failure {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// [`end_sessions`] on a task of its own, awaited: the request being dropped (the client went
/// away, a time limit) can't stop it halfway, leaving sessions removed from the index but live.
pub(crate) async fn end_sessions_detached(
    shared: &Arc<Shared>,
    owner: &str,
    ended: Vec<IndexEntry>,
    now: u64,
) -> Result<(), Error> {
    if ended.is_empty() {
        return Ok(());
    }
    let (shared, owner) = (Arc::clone(shared), owner.to_owned());
    match tokio::spawn(async move { end_sessions(&shared, &owner, ended, now).await }).await {
        Ok(done) => done,
        Err(_) => Err(Error::Store(session_core::store::StoreError::Backend(
            "ending the sessions a limit removed was cut short".to_owned(),
        ))),
    }
}

/// Ends the session filed under `key`: a live record is superseded by the ended marker; under
/// a key with nothing there (a login creating it) the marker itself goes; a record its own
/// regenerate superseded is followed to its successor, which is ended the same way. Answers
/// the handles of the successors ended.
async fn end_one(
    shared: &Shared,
    store: &dyn DynStore,
    owner: &str,
    mut key: StoreKey,
    now: u64,
) -> Result<Vec<Handle>, Error> {
    let mut successors = Vec::new();
    for _ in 0..MAX_SUCCESSORS * 2 {
        let record = marker(owner, &key, now);
        if shared
            .timed(store.create_dyn(&key, &record, ENDED_MARKER_TTL))
            .await?
            == Created::Inserted
        {
            return Ok(successors);
        }
        let at = ended_key(&key);
        let follow = match shared.timed(store.load_dyn(&key)).await? {
            Loaded::Live(r) if is_marker(&r) => return Ok(successors),
            // A key's owner never changes (binding to another owner takes a new id); a
            // successor bound elsewhere is someone else's login on that browser: left alone.
            Loaded::Live(r) if bound_elsewhere(&r, owner) => return Ok(successors),
            Loaded::Live(_) => {
                // The marker first (a leftover of an earlier try is as good), then the swap.
                shared
                    .timed(store.create_dyn(&at, &record, ENDED_MARKER_TTL))
                    .await?;
                match shared
                    .timed(store.supersede_dyn(&key, &at, ENDED_MARKER_TTL))
                    .await?
                {
                    Supersede::Replaced => return Ok(successors),
                    // Destroyed meanwhile: try again (the create above goes first).
                    Supersede::Missing => continue,
                    // Its own regenerate moved it: follow.
                    Supersede::AlreadySuperseded => true,
                }
            }
            Loaded::Missing => continue,
            Loaded::Superseded => true,
        };
        if follow {
            match shared.timed(store.destroy_dyn(&key)).await? {
                // Ours: the session ended here already.
                Destroyed::Superseded(next) if next == at => return Ok(successors),
                Destroyed::Superseded(next) => {
                    successors.push(Handle::of(&next));
                    key = next;
                }
                Destroyed::Removed | Destroyed::Missing => {}
            }
        }
    }
    tracing::warn!(target: "session", "gave up ending a session a limit removed: its key kept changing");
    Ok(successors)
}

fn bound_elsewhere(record: &Record, owner: &str) -> bool {
    record
        .data
        .get(OWNER_KEY)
        .and_then(Binding::from_value)
        .is_some_and(|b| b.owner != owner)
}
