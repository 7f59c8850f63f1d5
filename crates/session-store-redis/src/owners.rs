//! The Redis owner index: per owner, a sorted set (handle -> until) and a hash (handle -> entry
//! JSON) under one hash tag, so each index call is one script on one Cluster slot. Each write
//! drops the lapsed entries and sets both keys' TTL to the latest entry: the index cleans
//! itself without keyspace notifications (which Cluster does not forward and managed Redis
//! often disables). A login under a session limit (`admit`) counts, decides and writes in
//! that one script too, so racing logins of one owner can't pass the limit.

use std::time::Duration;

use futures_util::future::join_all;
use session_core::Handle;
use session_core::OverLimit;
use session_core::store::{Admit, Admitted, BoxFuture, StoreError};
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

    /// The arguments of `owner_admit.lua` after the entry's four (mode, limit, the handle
    /// replaced, the dead handles), or an error for a policy this store does not know.
    fn admit_args(how: Admit<'_>, args: &mut Vec<Vec<u8>>) -> Result<(), StoreError> {
        match how {
            Admit::Refresh => args.push(b"refresh".to_vec()),
            Admit::Limit {
                limit,
                replaces,
                lapsed,
                decide,
            } => {
                // A probe, like a refusal, writes nothing over the limit and names the entries
                // counted (as `decide` does, whatever the policy).
                let mode: &[u8] = match (decide, limit.policy()) {
                    (false, _) | (true, OverLimit::Refuse) => b"full",
                    (true, OverLimit::EndOldest) => b"end",
                    // A policy added to the core later: refused rather than guessed at.
                    (true, _) => {
                        return Err(StoreError::Backend(
                            "this Redis store does not know the limit's policy".to_owned(),
                        ));
                    }
                };
                args.push(mode.to_vec());
                args.push(limit.max().to_string().into_bytes());
                args.push(replaces.map_or_else(Vec::new, |h| h.as_str().as_bytes().to_vec()));
                args.extend(lapsed.iter().map(|h| h.as_str().as_bytes().to_vec()));
            }
        }
        Ok(())
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

    fn admits(&self) -> bool {
        true
    }

    fn admit<'a>(
        &'a self,
        owner: &'a str,
        entry: &'a IndexEntry,
        until: u64,
        now: u64,
        how: Admit<'a>,
    ) -> BoxFuture<'a, Result<Admitted, StoreError>> {
        Box::pin(async move {
            let (set, entries) = self.owner_keys(owner);
            let mut args = vec![
                now.to_string().into_bytes(),
                until.to_string().into_bytes(),
                entry.handle.as_str().as_bytes().to_vec(),
                entry.encode(),
            ];
            Self::admit_args(how, &mut args)?;
            let reply: Vec<redis::Value> = self
                .index_script(&SCRIPTS.owner_admit, &set, &entries, &args)
                .await?;
            admitted(&reply)
        })
    }
}

/// `owner_admit.lua`'s reply: a code, then handle and entry JSON pairs.
fn admitted(reply: &[redis::Value]) -> Result<Admitted, StoreError> {
    let Some((redis::Value::Int(code), rest)) = reply.split_first() else {
        return Err(StoreError::Backend(
            "an admission script answered without a code".to_owned(),
        ));
    };
    let named = || {
        let mut found = Vec::with_capacity(rest.len() / 2);
        for pair in rest.chunks_exact(2) {
            let decoded = match pair {
                [redis::Value::BulkString(h), redis::Value::BulkString(json)] => {
                    std::str::from_utf8(h)
                        .ok()
                        .and_then(|h| IndexEntry::decode(h, json))
                }
                _ => None,
            };
            // An entry this store did not write (or a corrupt one) is skipped, never trusted
            // to name a key: the script has removed it (Ended) or it only lapses (Full).
            match decoded {
                Some(e) => found.push(e),
                None => {
                    tracing::warn!(target: "session", "skipping an owner-index entry that can't be decoded")
                }
            }
        }
        found
    };
    match code {
        1 => Ok(Admitted::Filed),
        2 => Ok(Admitted::Ended(named())),
        3 => Ok(Admitted::Absent),
        4 => Ok(Admitted::Full(named())),
        _ => Err(StoreError::Backend(
            "an admission script answered an unknown code".to_owned(),
        )),
    }
}
