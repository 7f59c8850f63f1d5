//! The memory store's owner index: per owner, its entries by handle with their times.

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;

use session_core::Handle;

use session_core::store::{Admit, Admitted, Decision, IndexEntry, Indexed, decide};

/// Every owner's entries. One lock: index calls are logins, logouts and admin listings, far
/// rarer than the session reads and writes the shards serve.
#[derive(Default)]
pub(crate) struct Owners {
    map: Mutex<HashMap<String, OwnerEntries>>,
}

#[derive(Default)]
struct OwnerEntries {
    entries: HashMap<Handle, (IndexEntry, u64)>,
    /// The entries by time, so dropping the lapsed ones costs what they are, not what the
    /// owner has.
    by_until: BTreeSet<(u64, Handle)>,
}

impl OwnerEntries {
    fn prune(&mut self, now: u64) {
        while let Some((until, _)) = self.by_until.first()
            && *until <= now
        {
            if let Some((_, handle)) = self.by_until.pop_first() {
                self.entries.remove(&handle);
            }
        }
    }

    fn insert(&mut self, entry: &IndexEntry, until: u64) {
        let until = match self.entries.get(&entry.handle) {
            Some((_, old)) => {
                let old = *old;
                self.by_until.remove(&(old, entry.handle.clone()));
                until.max(old)
            }
            None => until,
        };
        self.by_until.insert((until, entry.handle.clone()));
        self.entries
            .insert(entry.handle.clone(), (entry.clone(), until));
    }

    fn remove(&mut self, handle: &Handle) {
        if let Some((_, until)) = self.entries.remove(handle) {
            self.by_until.remove(&(until, handle.clone()));
        }
    }
}

impl Owners {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, OwnerEntries>> {
        // Every update is a single map operation: a poisoned lock is still coherent.
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds or rewrites an entry (its time never shrinks), dropping the owner's lapsed ones.
    pub(crate) fn index(&self, owner: &str, entry: &IndexEntry, until: u64, now: u64) {
        let mut map = self.lock();
        let o = map.entry(owner.to_owned()).or_default();
        o.prune(now);
        o.insert(entry, until);
    }

    /// An admission (see `OwnerIndex::admit`): decided and written under the lock.
    pub(crate) fn admit(
        &self,
        owner: &str,
        entry: &IndexEntry,
        until: u64,
        now: u64,
        how: Admit<'_>,
    ) -> Admitted {
        let mut map = self.lock();
        let Some(o) = map.get_mut(owner) else {
            if matches!(how, Admit::Refresh) {
                return Admitted::Absent;
            }
            map.entry(owner.to_owned())
                .or_default()
                .insert(entry, until);
            return Admitted::Filed;
        };
        o.prune(now);
        if let Admit::Limit { lapsed, .. } = how {
            for h in lapsed {
                o.remove(h);
            }
        }
        let got = match decide(o.entries.values().map(|(e, _)| e), entry, how) {
            Decision::Write => {
                o.insert(entry, until);
                Admitted::Filed
            }
            Decision::Replace(ended) => {
                for e in &ended {
                    o.remove(&e.handle);
                }
                o.insert(entry, until);
                Admitted::Ended(ended)
            }
            Decision::Answer(answer) => answer,
        };
        if o.entries.is_empty() {
            map.remove(owner);
        }
        got
    }

    /// Removes entries by handle; an owner left with none goes.
    pub(crate) fn unindex(&self, owner: &str, handles: &[Handle], now: u64) {
        let mut map = self.lock();
        let Some(o) = map.get_mut(owner) else {
            return;
        };
        for h in handles {
            o.remove(h);
        }
        o.prune(now);
        if o.entries.is_empty() {
            map.remove(owner);
        }
    }

    /// The entries that have not lapsed; `ttl` says what the store holds under a key.
    pub(crate) fn entries(
        &self,
        owner: &str,
        now: u64,
        ttl: impl Fn(&session_core::store::StoreKey) -> Option<std::time::Duration>,
    ) -> Vec<Indexed> {
        let found: Vec<(IndexEntry, u64)> = {
            let map = self.lock();
            let Some(o) = map.get(owner) else {
                return Vec::new();
            };
            o.entries
                .values()
                .filter(|(_, until)| *until > now)
                .cloned()
                .collect()
        };
        // The shards are locked one at a time, never under the owners' lock.
        found
            .into_iter()
            .map(|(entry, until)| Indexed {
                record_ttl: ttl(&entry.key),
                entry,
                until,
            })
            .collect()
    }

    /// Drops every lapsed entry and every owner left without one; how many entries went.
    pub(crate) fn sweep(&self, now: u64) -> usize {
        let mut map = self.lock();
        let mut gone = 0;
        map.retain(|_, o| {
            let before = o.entries.len();
            o.prune(now);
            gone += before - o.entries.len();
            !o.entries.is_empty()
        });
        gone
    }

    /// Entries held (lapsed ones not yet dropped included).
    pub(crate) fn len(&self) -> usize {
        self.lock().values().map(|o| o.entries.len()).sum()
    }
}
