//! The owner-index bookkeeping of a commit: which index a layer keeps, filing a bound session
//! in its owner's index before its record is written, and removing the entry of a session
//! that ended. A leaf below the commit (`crate::commit`) and the owner API (`crate::owners`);
//! every call takes the commit's (or the caller's) time instead of reading the clock.

use std::sync::Arc;

use session_core::Handle;

use session_core::driver::{Binding, CLOCK_SKEW_ALLOWANCE_MS};

use session_core::SessionLimit;
use session_core::store::{Admit, Admitted, IndexEntry, OwnerIndex};
use session_core::store::{DynStore, StoreKey};

use crate::Error;
use crate::shared::{Backend, Shared};

/// The time the index calls measure against: the caller's clock less the allowed skew, so a
/// server whose clock runs ahead never drops an entry another server still counts on.
pub(crate) fn index_time(now: u64) -> u64 {
    now.saturating_sub(CLOCK_SKEW_ALLOWANCE_MS)
}

/// The store and its owner index, or [`Error::NoOwnerIndex`].
pub(crate) fn index_of(shared: &Shared) -> Result<(&dyn DynStore, &dyn OwnerIndex), Error> {
    match &shared.backend {
        Backend::Store(store) if !shared.config.koa_compat() => {
            let index = store.owner_index_dyn().ok_or(Error::NoOwnerIndex)?;
            Ok((store.as_ref(), index))
        }
        _ => Err(Error::NoOwnerIndex),
    }
}

/// Fails with [`Error::NoOwnerIndex`] unless this layer keeps an owner index.
pub(crate) fn check_index(shared: &Shared) -> Result<(), Error> {
    index_of(shared).map(|_| ())
}

/// Files the session under `key` in its owner's index, to last until the binding says: the
/// commit's step before it writes an owned record.
pub(crate) async fn file(
    shared: &Shared,
    binding: &Binding,
    key: &StoreKey,
    now: u64,
) -> Result<(), Error> {
    let (_, index) = index_of(shared)?;
    let entry = IndexEntry::new(key.clone(), binding.since, now, binding.device.clone());
    let at = index_time(now);
    shared
        .timed(index.index(&binding.owner, &entry, binding.indexed_until, at))
        .await
}

/// Files the session under `key` in its owner's index under a session limit (the request's,
/// else the layer's; without one, as [`file`] does): a session new to the index (`plan.index_new`:
/// a login) is admitted, an entry already there has its time extended (never brought back if
/// a limit removed it), and a regenerate of a filed session (`replaces`) takes its place
/// without being counted. Answers the owner's entries the admission removed to make room, whose
/// sessions the caller ends; [`Error::TooManySessions`] when refused (nothing written).
///
/// An admission at the limit is decided in two steps: a probe that files the entry if it fits,
/// and if it does not, a look at the records of the entries counted, then the decision with the
/// dead ones (see `Indexed::is_dead`) left out: a session that has ended never counts.
pub(crate) async fn admit(
    shared: &Shared,
    binding: &Binding,
    key: &StoreKey,
    now: u64,
    new: bool,
    replaces: Option<&Handle>,
    limit: Option<SessionLimit>,
) -> Result<Admission, Error> {
    let Some(limit) = limit else {
        file(shared, binding, key, now).await?;
        return Ok(Admission::Filed(Vec::new()));
    };
    let (_, index) = index_of(shared)?;
    let entry = IndexEntry::new(key.clone(), binding.since, now, binding.device.clone());
    let (owner, until, at) = (&binding.owner, binding.indexed_until, index_time(now));
    if !new {
        if shared
            .timed(index.admit(owner, &entry, until, at, Admit::Refresh))
            .await?
            == Admitted::Absent
        {
            tracing::debug!(target: "session", "a session's owner-index entry is gone (a limit ended it); not filing it again");
        }
        return Ok(Admission::Filed(Vec::new()));
    }
    let probe = Admit::Limit {
        limit,
        replaces,
        lapsed: &[],
        decide: false,
    };
    let counted = match shared
        .timed(index.admit(owner, &entry, until, at, probe))
        .await?
    {
        Admitted::Full(counted) => counted,
        Admitted::Ended(ended) => return Ok(Admission::Filed(ended)),
        Admitted::Filed => return Ok(Admission::Filed(Vec::new())),
        // A regenerate of a session a limit removed from the index: it has ended.
        Admitted::Absent => return Ok(Admission::Ended),
    };
    let found = shared.timed(index.entries(owner, at)).await?;
    let lapsed: Vec<Handle> = found
        .iter()
        .filter(|i| i.is_dead(now) && counted.iter().any(|c| c.handle == i.entry.handle))
        .map(|i| i.entry.handle.clone())
        .collect();
    let decide = Admit::Limit {
        limit,
        replaces,
        lapsed: &lapsed,
        decide: true,
    };
    match shared
        .timed(index.admit(owner, &entry, until, at, decide))
        .await?
    {
        Admitted::Full(_) => Err(Error::TooManySessions { max: limit.max() }),
        Admitted::Ended(ended) => Ok(Admission::Filed(ended)),
        Admitted::Filed => Ok(Admission::Filed(Vec::new())),
        Admitted::Absent => Ok(Admission::Ended),
    }
}

/// What [`admit`] did with a session's entry.
pub(crate) enum Admission {
    /// Filed; these entries of the owner were removed to make room (their sessions end).
    Filed(Vec<IndexEntry>),
    /// Not filed: the session a regenerate replaces is no longer in its owner's index (a limit
    /// ended it meanwhile), so the regenerate ends as a destroy.
    Ended,
}

/// The session limit a request's login is admitted under: the one its handler set, else the
/// layer's.
pub(crate) fn limit_of(shared: &Shared, requested: Option<SessionLimit>) -> Option<SessionLimit> {
    requested.or(shared.limit)
}

/// The owner index of the store the layer migrates from, if it keeps one.
pub(crate) fn old_index_of(shared: &Shared) -> Option<(&dyn DynStore, &dyn OwnerIndex)> {
    let old = shared.migrate_from.as_ref()?;
    if shared.config.koa_compat() {
        return None;
    }
    Some((old.as_ref(), old.owner_index_dyn()?))
}

/// The owner indexes a listing or a revoke covers: the layer's store's, and while the layer
/// migrates from another store that keeps one, that store's.
pub(crate) fn sides(shared: &Shared) -> Result<Vec<(&dyn DynStore, &dyn OwnerIndex)>, Error> {
    let mut sides = vec![index_of(shared)?];
    sides.extend(old_index_of(shared));
    Ok(sides)
}

/// Removes the entry of an ended session from its owner's index (in the store the layer
/// migrates from, with `old`). Best effort: an entry left behind names no live record, so it
/// is never listed, and goes with its time or with the owner's next listing.
pub(crate) async fn unfile(shared: &Shared, owner: &str, key: &StoreKey, now: u64, old: bool) {
    let index = if old {
        old_index_of(shared).map(|(_, i)| i)
    } else {
        index_of(shared).ok().map(|(_, i)| i)
    };
    let Some(index) = index else {
        return;
    };
    let handles = [Handle::of(key)];
    if let Err(e) = shared
        .timed(index.unindex(owner, &handles, index_time(now)))
        .await
    {
        tracing::debug!(target: "session", error = %e, "could not remove an ended session from its owner's index; it is no longer listed and lapses by itself");
    }
}

/// [`unfile`] in the background, off the request's path.
pub(crate) fn unfile_later(
    shared: &Arc<Shared>,
    owner: String,
    key: StoreKey,
    now: u64,
    old: bool,
) {
    let shared = Arc::clone(shared);
    tokio::spawn(async move {
        unfile(&shared, &owner, &key, now, old).await;
    });
}
