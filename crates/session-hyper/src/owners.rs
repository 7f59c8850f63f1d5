//! A user's sessions: binding a session to an owner, listing an owner's sessions, revoking one,
//! all, or all but the current one ("log out everywhere else").
//!
//! The store keeps an index per owner (see `session_core::owner`). The commit writes an entry
//! before the record (`crate::index`), so every live owned session is listed; revoking
//! destroys the records first and then removes their entries, so a session is never unlisted
//! while alive.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt as _;
use futures_util::stream;
use session_core::Handle;
use session_core::driver::STORE_TTL_MARGIN_MS;
use session_core::driver::{Binding, IN_FLIGHT_GRACE_MS, OWNER_KEY, check_owner};
use session_core::store::{Destroyed, DynStore, Loaded, StoreKey};
use session_core::store::{IndexEntry, Indexed, OwnerIndex};
use session_core::{EventKind, RevokedBy, SessionError, SessionEvent, SessionInfo};

use crate::Error;
use crate::index::{index_of, index_time, sides};
use crate::shared::Shared;

/// Regenerate successors a revoke follows from each session (as a logout does).
const MAX_SUCCESSORS: usize = 8;

/// Sessions a listing or a revoke works on at once: enough to keep a pipeline or a pool busy,
/// few enough that an owner with thousands of sessions doesn't queue every other request
/// behind them (a pool's checkout limit would fail them all).
const CONCURRENT: usize = 32;

/// Listing and revoking an owner's sessions outside a request (admin tools, a password reset
/// job): from [`SessionLayer::owners`](crate::SessionLayer::owners). Inside a handler, the
/// same operations are on [`Session`](crate::Session), which also knows which session is the caller's.
#[derive(Clone)]
pub struct Owners {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Owners {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Owners").finish_non_exhaustive()
    }
}

impl Owners {
    pub(crate) fn new(shared: Arc<Shared>) -> Option<Owners> {
        index_of(&shared).ok()?;
        Some(Owners { shared })
    }

    /// The owner's live sessions (`current` is always `false` here).
    pub async fn list(&self, owner: &str) -> Result<Vec<SessionInfo>, Error> {
        list(&self.shared, owner, &[]).await
    }

    /// Revokes one session by the handle a listing gave; `false` if the owner has no live
    /// session with that handle (a malformed handle, another owner's, or one that has ended).
    pub async fn revoke(&self, owner: &str, handle: &str) -> Result<bool, Error> {
        Ok(
            revoke_one(&self.shared, owner, handle, &[], Revoker::admin(&[]))
                .await?
                .is_some(),
        )
    }

    /// Revokes every session of the owner ("log out everywhere"); how many were live.
    pub async fn revoke_all(&self, owner: &str) -> Result<usize, Error> {
        revoke_all(
            &self.shared,
            owner,
            &[],
            Spare::Handles,
            None,
            Revoker::admin(&[]),
        )
        .await
    }
}

/// A store and its owner index: the layer's, or the one of the store it migrates from.
#[derive(Clone, Copy)]
struct Side<'a> {
    store: &'a dyn DynStore,
    index: &'a dyn OwnerIndex,
    /// Where the successors of this store's markers live: the layer's store (a move from the
    /// old store creates its successor there).
    successors: &'a dyn DynStore,
}

/// The owner indexes to work on, for a valid owner id: the layer's store's first, then the
/// one of the store it migrates from, if that keeps one.
fn owner_sides<'a>(shared: &'a Shared, owner: &str) -> Result<Vec<Side<'a>>, Error> {
    check_owner(owner).map_err(SessionError::from)?;
    let all = sides(shared)?;
    let here = all[0].0;
    Ok(all
        .into_iter()
        .map(|(store, index)| Side {
            store,
            index,
            successors: here,
        })
        .collect())
}

/// The time now and `owner`'s entries that have not lapsed.
async fn entries(
    shared: &Shared,
    index: &dyn OwnerIndex,
    owner: &str,
) -> Result<(u64, Vec<Indexed>), Error> {
    let now = shared.config.now_ms();
    let found = shared.timed(index.entries(owner, index_time(now))).await?;
    Ok((now, found))
}

/// The owner's live sessions (in both stores while the layer migrates from another);
/// `current` marks the ones filed under `mine`.
pub(crate) async fn list(
    shared: &Shared,
    owner: &str,
    mine: &[Handle],
) -> Result<Vec<SessionInfo>, Error> {
    let mut out = Vec::new();
    for side in owner_sides(shared, owner)? {
        out.extend(list_side(shared, side, owner, mine).await?);
    }
    out.sort_by(|a, b| b.last_seen.cmp(&a.last_seen).then(a.handle.cmp(&b.handle)));
    Ok(out)
}

/// The owner's live sessions in one store. Entries whose record has been gone for longer than
/// a request can take, or whose record is bound to another owner (two binds of one session
/// racing without a regenerate filed it under both), are removed on the way.
async fn list_side(
    shared: &Shared,
    side: Side<'_>,
    owner: &str,
    mine: &[Handle],
) -> Result<Vec<SessionInfo>, Error> {
    let Side { store, index, .. } = side;
    let (now, found) = entries(shared, index, owner).await?;
    let mut dead = Vec::new();
    let mut live = Vec::with_capacity(found.len());
    for Indexed {
        entry, record_ttl, ..
    } in found
    {
        if record_ttl.is_none() && now.saturating_sub(entry.seen) > IN_FLIGHT_GRACE_MS {
            dead.push(entry.handle);
            continue;
        }
        if let Some(expires) = expires(record_ttl, now) {
            live.push((entry, expires));
        }
    }
    // Whose binding each record carries: one read per live session, a few at a time.
    let checks: Vec<_> = live
        .iter()
        .map(|(entry, _)| foreign(shared, store, owner, &entry.key))
        .collect();
    let checked: Vec<Result<bool, Error>> =
        stream::iter(checks).buffered(CONCURRENT).collect().await;
    let mut out = Vec::with_capacity(live.len());
    for ((entry, expires), foreign) in live.into_iter().zip(checked) {
        if foreign? {
            dead.push(entry.handle);
            continue;
        }
        out.push(SessionInfo {
            current: mine.contains(&entry.handle),
            handle: entry.handle,
            created: entry.since,
            last_seen: entry.seen,
            expires,
            device: entry.device,
        });
    }
    if !dead.is_empty()
        && let Err(e) = shared
            .timed(index.unindex(owner, &dead, index_time(now)))
            .await
    {
        tracing::debug!(target: "session", error = %e, "could not drop owner-index entries of ended sessions");
    }
    Ok(out)
}

/// Whether the live record under `key` is bound to another owner than `owner`.
async fn foreign(
    shared: &Shared,
    store: &dyn DynStore,
    owner: &str,
    key: &StoreKey,
) -> Result<bool, Error> {
    Ok(match shared.timed(store.load_dyn(key)).await? {
        Loaded::Live(record) => bound_elsewhere(&record.data, owner),
        _ => false,
    })
}

/// What a revoke found under an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ending {
    /// A live session (or a regenerate's successor of it) was ended.
    Ended,
    /// Nothing live was there.
    Gone,
    /// The record is bound to another owner: left alone, and the entry is not this owner's.
    Foreign,
    /// The caller's own session under a new id (or an old id of it): left alone, and listed.
    Kept,
}

/// Which sessions a revoke spares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Spare {
    /// Only the ones filed under the handles given.
    Handles,
    /// Those, and every session descended from one of them through regenerates (its binding
    /// names it in its lineage), with the sessions they descend from: the caller's own session
    /// under whatever id a regenerate in another of its requests moved it to.
    Lineage,
}

/// Who revokes, for the events: a session the revoke ends among `own` (the caller's, which
/// its own commit then reports as destroyed) raises no `revoked` event.
#[derive(Clone, Copy)]
pub(crate) struct Revoker<'a> {
    pub(crate) by: RevokedBy,
    pub(crate) own: &'a [Handle],
}

impl<'a> Revoker<'a> {
    /// The owner, from the request whose own session is under `own`.
    pub(crate) fn user(own: &'a [Handle]) -> Revoker<'a> {
        Revoker {
            by: RevokedBy::User,
            own,
        }
    }

    /// An admin, from a request whose own session is under `own` (another owner's, or none).
    pub(crate) fn admin(own: &'a [Handle]) -> Revoker<'a> {
        Revoker {
            by: RevokedBy::Admin,
            own,
        }
    }
}

/// A key a revoke of the owner's other sessions sets in the sessions it keeps as the caller's
/// (but `skip`: this request's own).
#[derive(Clone, Copy)]
pub(crate) struct Carry<'a> {
    pub(crate) key: &'a str,
    pub(crate) value: &'a serde_json::Value,
    pub(crate) skip: &'a [Handle],
}

impl Carry<'_> {
    /// Sets the key in the live record under `key` (`record` as it was read), keeping its
    /// expiry; a record gone meanwhile is left gone.
    async fn set(
        &self,
        shared: &Shared,
        store: &dyn DynStore,
        key: &StoreKey,
        record: &session_core::store::Record,
        ttl: Duration,
    ) -> Result<(), Error> {
        let delta = session_core::store::Delta {
            replace: false,
            set: vec![(self.key.to_owned(), self.value.clone())],
            removed: Vec::new(),
        };
        let mut data = record.data.clone();
        data.insert(self.key.to_owned(), self.value.clone());
        let change = session_core::store::Change {
            delta: &delta,
            data: &data,
            meta: record.meta,
        };
        shared.timed(store.save_dyn(key, change, ttl)).await?;
        Ok(())
    }
}

/// Ends the session whose record under an entry's `key` was found to be `first`, and the
/// successors regenerates moved it to *while they are still the owner's* and neither among
/// `keep` nor descended from one of them: a session that changed hands at a regenerate
/// (someone else logged in on that browser) is never ended by a revoke of the previous owner,
/// nor the caller's own session by "log out everywhere else". A record that was not there when
/// looked for is left alone: a login may be creating it (and then lives on, listed).
async fn end_chain(
    shared: &Shared,
    side: Side<'_>,
    owner: &str,
    key: &StoreKey,
    first: Loaded,
    keep: &[Handle],
) -> Result<Ending, Error> {
    let ended = |found: bool| if found { Ending::Ended } else { Ending::Gone };
    match first {
        // The entry's own record is left alone if another owner's binding is on it (two binds
        // of one session racing without a regenerate filed it under both owners).
        Loaded::Live(record) if bound_elsewhere(&record.data, owner) => return Ok(Ending::Foreign),
        Loaded::Missing => return Ok(Ending::Gone),
        Loaded::Live(_) | Loaded::Superseded => {}
    }
    let mut next = match shared.timed(side.store.destroy_dyn(key)).await? {
        Destroyed::Removed => return Ok(Ending::Ended),
        Destroyed::Missing => return Ok(Ending::Gone),
        Destroyed::Superseded(successor) => successor,
    };
    let store = side.successors;
    let mut found = false;
    for _ in 0..MAX_SUCCESSORS {
        if keep.contains(&Handle::of(&next)) {
            return Ok(ended(found));
        }
        // A live successor is ended only if it is bound to the same owner (a key's owner never
        // changes: binding to another owner takes a new id) and is not the caller's own; a
        // marker is passed through.
        match shared.timed(store.load_dyn(&next)).await? {
            Loaded::Live(record) => match binding(&record.data) {
                Some(b) if b.owner == owner && !b.descends_from(keep) => {}
                _ => return Ok(ended(found)),
            },
            Loaded::Missing => return Ok(ended(found)),
            Loaded::Superseded => {}
        }
        match shared.timed(store.destroy_dyn(&next)).await? {
            Destroyed::Removed => return Ok(Ending::Ended),
            Destroyed::Missing => return Ok(ended(found)),
            Destroyed::Superseded(successor) => {
                found = true;
                next = successor;
            }
        }
    }
    Ok(ended(found))
}

/// The binding stored data carries, if any.
fn binding(data: &session_core::Data) -> Option<Binding> {
    data.get(OWNER_KEY).and_then(Binding::from_value)
}

/// Whether stored data carries a binding to an owner other than `owner`.
fn bound_elsewhere(data: &session_core::Data, owner: &str) -> bool {
    binding(data).is_some_and(|b| b.owner != owner)
}

/// The handles a revoke spares among `targets` (whose records were `found`): `keep`, and with
/// [`Spare::Lineage`] every target of this owner descended from a spared one, with the ones it
/// descends from, until no more join (a chain of regenerates: K kept, so S1, so S2).
fn spared(
    keep: &[Handle],
    targets: &[IndexEntry],
    found: &[Result<Loaded, Error>],
    owner: &str,
    spare: Spare,
) -> Vec<Handle> {
    let mut kept = keep.to_vec();
    if spare == Spare::Handles {
        return kept;
    }
    let mut lines: Vec<(&Handle, Vec<Handle>)> = targets
        .iter()
        .zip(found)
        .filter_map(|(entry, found)| match found {
            Ok(Loaded::Live(record)) => {
                let b = binding(&record.data).filter(|b| b.owner == owner)?;
                Some((&entry.handle, b.lineage))
            }
            _ => None,
        })
        .collect();
    loop {
        let mut grew = false;
        lines.retain(|(handle, lineage)| {
            let joins = kept.contains(handle) || lineage.iter().any(|h| kept.contains(h));
            if joins {
                for h in std::iter::once(*handle).chain(lineage) {
                    if !kept.contains(h) {
                        kept.push(h.clone());
                    }
                }
                grew = true;
            }
            !joins
        });
        if !grew {
            return kept;
        }
    }
}

/// Ends the sessions of `targets` (concurrently: pipelined on one connection, spread over the
/// nodes on Cluster, a few at a time): each record is read first, so that the caller's own
/// sessions are known (see [`Spare`]) before anything is destroyed. Then removes from the
/// index the entries whose record was there or is bound to another owner, or whose record has
/// been gone for longer than a request can take. An entry written a moment ago with no record
/// yet stays: its request may be creating the record, which then lives on listed.
/// How many sessions were live; the first store failure, after the others were tried.
#[allow(clippy::too_many_arguments)]
async fn end_entries(
    shared: &Shared,
    side: Side<'_>,
    owner: &str,
    targets: Vec<Indexed>,
    keep: &[Handle],
    spare: Spare,
    carry: Option<Carry<'_>>,
    by: Revoker<'_>,
) -> Result<usize, Error> {
    let Side { store, index, .. } = side;
    let now = shared.config.now_ms();
    let ttls: Vec<Option<Duration>> = targets.iter().map(|i| i.record_ttl).collect();
    let targets: Vec<IndexEntry> = targets.into_iter().map(|i| i.entry).collect();
    let loads: Vec<_> = targets
        .iter()
        .map(|e| shared.timed(store.load_dyn(&e.key)))
        .collect();
    let found: Vec<Result<Loaded, Error>> =
        stream::iter(loads).buffered(CONCURRENT).collect().await;
    let keep = spared(keep, &targets, &found, owner, spare);
    let keep = &keep;
    let mut failure = None;
    if let Some(carry) = carry {
        // The sessions kept as the caller's under another id get what its own got.
        let sets: Vec<_> = targets
            .iter()
            .zip(&found)
            .zip(&ttls)
            .filter(|((entry, _), _)| {
                keep.contains(&entry.handle) && !carry.skip.contains(&entry.handle)
            })
            .filter_map(|((entry, found), ttl)| match (found, ttl) {
                (Ok(Loaded::Live(record)), Some(ttl)) => {
                    Some(carry.set(shared, store, &entry.key, record, *ttl))
                }
                _ => None,
            })
            .collect();
        for got in stream::iter(sets)
            .buffered(CONCURRENT)
            .collect::<Vec<_>>()
            .await
        {
            if let Err(e) = got {
                failure.get_or_insert(e);
            }
        }
    }
    let ends: Vec<_> = targets
        .iter()
        .zip(found)
        .map(|(entry, found)| async move {
            if keep.contains(&entry.handle) {
                return Ok(Ending::Kept);
            }
            end_chain(shared, side, owner, &entry.key, found?, keep).await
        })
        .collect();
    let ended: Vec<Result<Ending, Error>> = stream::iter(ends).buffered(CONCURRENT).collect().await;
    let (mut count, mut gone) = (0, Vec::new());
    for (entry, result) in targets.into_iter().zip(ended) {
        match result {
            Ok(Ending::Ended) => {
                count += 1;
                if !by.own.contains(&entry.handle) {
                    let handle = entry.handle.clone();
                    let kind = EventKind::Revoked(by.by);
                    session_core::driver::emit(&shared.config, || {
                        SessionEvent::new(kind, Some(handle), Some(owner.to_owned()))
                    });
                }
                gone.push(entry.handle);
            }
            Ok(Ending::Foreign) => gone.push(entry.handle),
            Ok(Ending::Gone) if now.saturating_sub(entry.seen) > IN_FLIGHT_GRACE_MS => {
                gone.push(entry.handle);
            }
            Ok(Ending::Gone | Ending::Kept) => {}
            Err(e) => {
                failure.get_or_insert(e);
            }
        }
    }
    if !gone.is_empty() {
        let unindexed = shared
            .timed(index.unindex(owner, &gone, index_time(now)))
            .await;
        if let Err(e) = unindexed {
            failure.get_or_insert(e);
        }
    }
    match failure {
        Some(e) => Err(e),
        None => Ok(count),
    }
}

/// Revokes one session by handle: the entry, if the owner's index has it.
pub(crate) async fn revoke_one(
    shared: &Shared,
    owner: &str,
    handle: &str,
    keep: &[Handle],
    by: Revoker<'_>,
) -> Result<Option<Handle>, Error> {
    let sides = owner_sides(shared, owner)?;
    let Some(handle) = Handle::parse(handle) else {
        return Ok(None);
    };
    for side in sides {
        let (now, found) = entries(shared, side.index, owner).await?;
        let Some(target) = found.into_iter().find(|i| i.entry.handle == handle) else {
            continue;
        };
        // Known means what a listing shows: a live session of this owner, which the revoke
        // ended. An entry of one that has ended, or of a record bound to another owner, is
        // cleaned up all the same, and reported unknown.
        let listed = expires(target.record_ttl, now).is_some();
        let ended = end_entries(
            shared,
            side,
            owner,
            vec![target],
            keep,
            Spare::Handles,
            None,
            by,
        )
        .await?;
        return Ok((listed && ended > 0).then_some(handle));
    }
    Ok(None)
}

/// When a session whose record has `record_ttl` left ends (ms since the epoch), if it has not:
/// the record outlives the session by a margin (so a request at the last moment still finds
/// it), and a session within that margin has expired.
fn expires(record_ttl: Option<std::time::Duration>, now: u64) -> Option<u64> {
    let ttl_ms = u64::try_from(record_ttl?.as_millis()).unwrap_or(u64::MAX);
    let expires = now
        .saturating_add(ttl_ms)
        .saturating_sub(STORE_TTL_MARGIN_MS);
    (expires > now).then_some(expires)
}

/// Revokes every session of the owner but the ones filed under `keep` (and, with
/// [`Spare::Lineage`], their descendants).
pub(crate) async fn revoke_all(
    shared: &Shared,
    owner: &str,
    keep: &[Handle],
    spare: Spare,
    carry: Option<Carry<'_>>,
    by: Revoker<'_>,
) -> Result<usize, Error> {
    // The store the layer migrates from first: a session moving meanwhile is ended there, or
    // followed from its marker to the new record, before the layer's own index is read (which
    // lists the new record from before its creation on).
    let (mut count, mut failure) = (0, None);
    for side in owner_sides(shared, owner)?.into_iter().rev() {
        let ended = async {
            let (_, found) = entries(shared, side.index, owner).await?;
            let targets: Vec<Indexed> = found
                .into_iter()
                .filter(|i| !keep.contains(&i.entry.handle))
                .collect();
            end_entries(shared, side, owner, targets, keep, spare, carry, by).await
        };
        match ended.await {
            Ok(n) => count += n,
            Err(e) => {
                failure.get_or_insert(e);
            }
        }
    }
    match failure {
        Some(e) => Err(e),
        None => Ok(count),
    }
}
