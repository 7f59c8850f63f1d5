//! The Redis owner index: per owner, a sorted set (handle -> until) and a hash (handle -> entry
//! JSON) under one hash tag, so each index call is one script on one Cluster slot. Each write
//! drops the lapsed entries and sets both keys' TTL to the latest entry: the index cleans
//! itself without keyspace notifications (which Cluster does not forward and managed Redis
//! often disables).

use std::time::Duration;

use futures_util::future::join_all;
use session_core::Handle;
use session_core::store::{BoxFuture, StoreError};
use session_core::store::{IndexEntry, Indexed, OwnerIndex};

use crate::scripts::SCRIPTS;
use crate::store::RedisStore;

impl RedisStore {
    /// The two keys of `owner`'s index. The owner id is hex-encoded inside the hash tag: any
    /// text (braces included) makes a key of its own, and both keys share a slot.
    pub(crate) fn owner_keys(&self, owner: &str) -> (String, String) {
        let tag = session_core::store::hex(owner);
        let set = format!("{}owner:{{{tag}}}", self.prefix());
        let entries = format!("{set}:e");
        (set, entries)
    }

    /// Runs an owner-index script. Another program's value of another type at an index key
    /// (`WRONGTYPE`) would fail every login of that owner for good: like a corrupt record, it is
    /// logged without its content and deleted (both keys: the index is rebuilt by the owner's
    /// next writes), and the script runs once more.
    async fn index_script<T: redis::FromRedisValue>(
        &self,
        script: &redis::Script,
        set: &str,
        entries: &str,
        args: &[Vec<u8>],
    ) -> Result<T, StoreError> {
        match self.db().invoke_keys(script, &[set, entries], args).await {
            Err(StoreError::Corrupt(why)) => {
                tracing::warn!(target: "session", reason = %why, "an owner index holds a foreign value; deleting it");
                for k in [set, entries] {
                    self.db().eval_reply(&SCRIPTS.v1_destroy, k).await?;
                }
                self.db().invoke_keys(script, &[set, entries], args).await
            }
            other => other,
        }
    }

    async fn record_ttl(
        &self,
        key: &session_core::store::StoreKey,
    ) -> Result<Option<Duration>, StoreError> {
        let k = self.redis_key(key);
        let ms: i64 = self
            .db()
            .invoke_keys(&SCRIPTS.v1_record_ttl, &[k.as_str()], &[])
            .await?;
        Ok(match ms {
            // A record without a TTL breaks the store contract; it is live all the same.
            -1 => Some(session_core::store::MAX_STORE_TTL),
            n if n > 0 => Some(Duration::from_millis(n.unsigned_abs())),
            _ => None,
        })
    }
}

impl OwnerIndex for RedisStore {
    fn index<'a>(
        &'a self,
        owner: &'a str,
        entry: &'a IndexEntry,
        until: u64,
        now: u64,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let (set, entries) = self.owner_keys(owner);
            let args = [
                now.to_string().into_bytes(),
                until.to_string().into_bytes(),
                entry.handle.as_str().as_bytes().to_vec(),
                entry.encode(),
            ];
            let _: i64 = self
                .index_script(&SCRIPTS.owner_index, &set, &entries, &args)
                .await?;
            Ok(())
        })
    }

    fn unindex<'a>(
        &'a self,
        owner: &'a str,
        handles: &'a [Handle],
        now: u64,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let (set, entries) = self.owner_keys(owner);
            let mut args = Vec::with_capacity(1 + handles.len());
            args.push(now.to_string().into_bytes());
            args.extend(handles.iter().map(|h| h.as_str().as_bytes().to_vec()));
            let _: i64 = self
                .index_script(&SCRIPTS.owner_unindex, &set, &entries, &args)
                .await?;
            Ok(())
        })
    }

    fn entries<'a>(
        &'a self,
        owner: &'a str,
        now: u64,
    ) -> BoxFuture<'a, Result<Vec<Indexed>, StoreError>> {
        Box::pin(async move {
            let (set, entries) = self.owner_keys(owner);
            let flat: Vec<Vec<u8>> = self
                .index_script(
                    &SCRIPTS.owner_entries,
                    &set,
                    &entries,
                    &[now.to_string().into_bytes()],
                )
                .await?;
            let mut found = Vec::with_capacity(flat.len() / 3);
            for t in flat.chunks_exact(3) {
                let handle = std::str::from_utf8(&t[0]).unwrap_or_default();
                let until = std::str::from_utf8(&t[1])
                    .ok()
                    .and_then(|s| s.parse::<f64>().ok())
                    .filter(|f| f.is_finite() && *f >= 0.0);
                // An entry this store did not write (or a corrupt one) is skipped, never
                // trusted to name a key.
                match (IndexEntry::decode(handle, &t[2]), until) {
                    (Some(entry), Some(until)) => found.push((entry, until as u64)),
                    _ => {
                        tracing::warn!(target: "session", "skipping an owner-index entry that can't be decoded")
                    }
                }
            }
            // One probe per record, all in flight at once (pipelined on the connection; each
            // goes to its own slot's node on Cluster).
            let ttls = join_all(found.iter().map(|(e, _)| self.record_ttl(&e.key))).await;
            found
                .into_iter()
                .zip(ttls)
                .map(|((entry, until), ttl)| {
                    Ok(Indexed {
                        entry,
                        until,
                        record_ttl: ttl?,
                    })
                })
                .collect()
        })
    }
}
