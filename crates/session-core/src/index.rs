//! The owner index a store may keep: the store side of listing, revoking and limiting a user's
//! sessions (see [`crate::owner`] for the model).

use crate::limit::{Admit, Admitted};
use crate::owner::{Handle, IndexEntry, Indexed};
use crate::store_error::{BoxFuture, StoreError};

/// An owner's index of sessions: the store side of listing and revoking a user's sessions.
///
/// Contract (checked for each store by `session_core::store::testing::run_owner_index`):
/// - [`OwnerIndex::index`] adds or rewrites one entry, and in the same atomic step drops the
///   owner's entries whose `until` is not after `now` and makes the index itself expire with
///   its latest entry (on a backend with TTLs, without a background task or keyspace
///   notifications; a SQL store leaves lapsed rows, never listed, to its sweep); an entry's
///   `until` only ever grows (a late write of an older time must not shorten it);
/// - [`OwnerIndex::unindex`] removes entries by handle (unknown ones are ignored);
/// - [`OwnerIndex::entries`] returns every entry whose `until` is after `now`, with the time
///   left on the live record under its key ([`Indexed::record_ttl`]);
/// - each call touches one owner's index only (a store on a sharded backend keeps an owner's
///   index in one shard), and is bounded by the store's time limit.
///
/// Times are the caller's milliseconds since the epoch; records are destroyed through
/// [`Store::destroy`](crate::store::Store::destroy), not by the index.
pub trait OwnerIndex: Send + Sync {
    /// Adds or rewrites `entry` in `owner`'s index, to last until `until` (never shortened).
    fn index<'a>(
        &'a self,
        owner: &'a str,
        entry: &'a IndexEntry,
        until: u64,
        now: u64,
    ) -> BoxFuture<'a, Result<(), StoreError>>;

    /// Removes the entries with these handles from `owner`'s index.
    fn unindex<'a>(
        &'a self,
        owner: &'a str,
        handles: &'a [Handle],
        now: u64,
    ) -> BoxFuture<'a, Result<(), StoreError>>;

    /// `owner`'s entries that have not lapsed, each with the state of its record.
    fn entries<'a>(
        &'a self,
        owner: &'a str,
        now: u64,
    ) -> BoxFuture<'a, Result<Vec<Indexed>, StoreError>>;

    /// Whether this index implements [`OwnerIndex::admit`]: a layer with a session limit
    /// refuses to build on one that does not.
    fn admits(&self) -> bool {
        false
    }

    /// Files `entry` the way `how` says, deciding in one atomic step with the write (on a
    /// sharded backend, on the owner's shard): drops the lapsed entries and those named in
    /// [`Admit::Limit::lapsed`], then rewrites the entry if the index has it (counted once),
    /// or adds it if fewer than the limit's entries are left (the one it
    /// [`replaces`](Admit::Limit::replaces) not counted), or else answers by the policy:
    /// [`Admitted::Full`] (nothing written) or [`Admitted::Ended`] (the excess bound earliest
    /// removed, ties by handle, and the entry added). However many admissions race, an
    /// owner's index never gains an entry beyond the limit. The default answers that this
    /// index can't ([`StoreError::Backend`]).
    fn admit<'a>(
        &'a self,
        owner: &'a str,
        entry: &'a IndexEntry,
        until: u64,
        now: u64,
        how: Admit<'a>,
    ) -> BoxFuture<'a, Result<Admitted, StoreError>> {
        let _ = (owner, entry, until, now, how);
        Box::pin(std::future::ready(Err(StoreError::Backend(
            "this owner index can't enforce a session limit".to_owned(),
        ))))
    }
}
