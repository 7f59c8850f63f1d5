//! The owner-index bookkeeping of a commit: which index a layer keeps, filing a bound session
//! in its owner's index before its record is written, and removing the entry of a session
//! that ended. A leaf below the commit (`crate::commit`) and the owner API (`crate::owners`);
//! every call takes the commit's (or the caller's) time instead of reading the clock.

use std::sync::Arc;

use session_core::Handle;

use session_core::driver::{Binding, CLOCK_SKEW_ALLOWANCE_MS};

use session_core::store::{DynStore, StoreKey};
use session_core::store::{IndexEntry, OwnerIndex};

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
