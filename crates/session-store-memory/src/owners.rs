//! The memory store's owner index: per owner, its entries by handle with their times.

use std::collections::HashMap;
use std::sync::Mutex;

use session_core::owner::{Handle, IndexEntry, Indexed};

/// Every owner's entries. One lock: index calls are logins, logouts and admin listings, far
/// rarer than the session reads and writes the shards serve.
#[derive(Default)]
pub(crate) struct Owners {
    map: Mutex<HashMap<String, OwnerEntries>>,
}

#[derive(Default)]
struct OwnerEntries {
    entries: HashMap<Handle, (IndexEntry, u64)>,
}

impl OwnerEntries {
    fn prune(&mut self, now: u64) {
        self.entries.retain(|_, (_, until)| *until > now);
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
        let until = match o.entries.get(&entry.handle) {
            Some((_, old)) => until.max(*old),
            None => until,
        };
        o.entries
            .insert(entry.handle.clone(), (entry.clone(), until));
    }

    /// Removes entries by handle; an owner left with none goes.
    pub(crate) fn unindex(&self, owner: &str, handles: &[Handle], now: u64) {
        let mut map = self.lock();
        let Some(o) = map.get_mut(owner) else {
            return;
        };
        for h in handles {
            o.entries.remove(h);
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
        ttl: impl Fn(&session_core::StoreKey) -> Option<std::time::Duration>,
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
