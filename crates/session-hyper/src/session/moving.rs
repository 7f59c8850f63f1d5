//! Starting a session from another library's (see `crate::moved`): the claim of the move in
//! the layer's store, and the old session read under it.

use session_core::driver::SessionId;
use session_core::driver::Source as Start;
use session_core::store::{
    Created, Data, DynStore, Loaded, MaxAge, Meta, Record, StoreError, StoreKey,
};

use super::Session;
use crate::Error;
use crate::shared::{Backend, Shared};

/// The largest old session (its data as JSON) that moves; a larger one starts a new session.
/// Our stores' default record limit.
pub const MAX_MOVED_BYTES: usize = 64 * 1024;

/// The reserved key that marks a record a drain wrote under a move's claim key: the old
/// session moved off the request path, waiting for its first request to get an id of ours.
pub(crate) const MOVED_KEY: &str = "_moved";

/// The id a move's claim is derived from, and its key in the layer's store. The old id is
/// hashed first: it may be a whole cookie-mode session (kilobytes), and a store in koa-compat
/// mode files the id itself.
pub(crate) fn claim_key(shared: &Shared, source: &str, old_id: &str) -> (SessionId, StoreKey) {
    let hashed = session_core::driver::KeyDerivation::Hashed {
        prefix: String::new(),
    }
    .derive(&SessionId::new_unchecked(old_id.to_owned()));
    let id = SessionId::new_unchecked(format!("moved.{source}.{}", hashed.as_str()));
    let key = shared.config.key_derivation().derive(&id);
    (id, key)
}

/// A request's old session.
pub(crate) struct Foreign {
    /// The old session id, in the source.
    pub(crate) id: String,
    /// The key of the move's claim (then its marker) in the layer's store.
    pub(crate) claim: StoreKey,
    /// This request claimed the move: it deletes the old session after its commit.
    pub(crate) claimed: bool,
    /// The response removes the old cookie (the session moved, or the old one is gone).
    pub(crate) remove_cookie: bool,
    /// A commit of this request wrote the moved session (the client may hold its cookie).
    pub(crate) written: bool,
    /// The old session was deleted (by a commit that ended it).
    pub(crate) deleted: bool,
    /// A drain moved the old session already: this request gives it an id of ours.
    pub(crate) drained: bool,
    /// The drained record was confirmed, and the old session is ours (a store the layer
    /// migrates from): the drain replaced the old record by a marker already, so nothing is
    /// left there to delete.
    pub(crate) retired: bool,
}

impl std::fmt::Debug for Foreign {
    // The old id is a bearer credential (an unsigned cookie's whole value): kept out.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Foreign")
            .field("claimed", &self.claimed)
            .field("remove_cookie", &self.remove_cookie)
            .field("written", &self.written)
            .finish_non_exhaustive()
    }
}

impl Session {
    /// The session a request carrying an old session id starts from, and what the rest of the
    /// request does about the old session.
    pub(super) async fn load_moving(
        &self,
        store: &dyn DynStore,
    ) -> Result<(Start, Option<Foreign>), Error> {
        let session = self;
        let inner = &session.0;
        let shared = &*inner.shared;
        let (Some(source), Some(old_id)) = (&shared.source, &inner.old) else {
            return Ok((Start::None, None));
        };
        let config = &shared.config;
        let (id, claim) = claim_key(shared, source.name(), old_id);
        let _ = inner.loaded_key.set((id.clone(), claim.clone()));
        let mut foreign = Foreign {
            id: old_id.clone(),
            claim: claim.clone(),
            claimed: false,
            remove_cookie: false,
            written: false,
            deleted: false,
            drained: false,
            retired: false,
        };
        let stale = |id| Start::Store {
            id,
            record: Loaded::Superseded,
        };
        // A claim or a marker: another request moves (or moved) the session; a drained
        // record: a drain moved it, and this request gives it an id of ours.
        match session.load_or_drop(store, &claim).await? {
            Loaded::Missing => {}
            Loaded::Live(r) if r.data.contains_key(MOVED_KEY) => {
                return self.drained(source.as_ref(), id, r, foreign).await;
            }
            _ => return Ok((stale(id), Some(foreign))),
        }
        let now = config.now_ms();
        let old = match shared.timed(source.load(old_id)).await {
            Err(Error::Store(StoreError::Corrupt(why))) => {
                // Never a 500 loop on a record the old library can't have written as we read it.
                tracing::warn!(target: "session", source = source.name(), reason = %why, "an old session can't be decoded; starting a new session");
                foreign.remove_cookie = true;
                return Ok((Start::None, Some(foreign)));
            }
            other => other?,
        };
        let Some(old) = old.filter(|o| o.expires_ms.is_none_or(|e| e > now)) else {
            // Gone: perhaps moved a moment ago by a request racing this one (its marker is here
            // now, and a logout must follow it); else expired or never there: anonymous, and the
            // dead cookie goes.
            match session.load_or_drop(store, &claim).await? {
                Loaded::Missing => {}
                // Moved by a drain a moment ago.
                Loaded::Live(r) if r.data.contains_key(MOVED_KEY) => {
                    return self.drained(source.as_ref(), id, r, foreign).await;
                }
                _ => return Ok((stale(id), Some(foreign))),
            }
            foreign.remove_cookie = true;
            return Ok((Start::None, Some(foreign)));
        };
        if let Some(why) = refused(&old.data) {
            tracing::warn!(target: "session", source = source.name(), reason = why, "an old session can't move; starting a new session");
            foreign.remove_cookie = true;
            return Ok((Start::None, Some(foreign)));
        }
        let grace = config.supersede_grace();
        let placeholder = placeholder(now, grace);
        if shared
            .timed(store.create_dyn(&claim, &placeholder, grace))
            .await?
            == Created::Collision
        {
            // Another request's claim, or a drain's record written a moment ago.
            return Ok(match session.load_or_drop(store, &claim).await? {
                Loaded::Live(r) if r.data.contains_key(MOVED_KEY) => {
                    self.drained(source.as_ref(), id, r, foreign).await?
                }
                _ => (stale(id), Some(foreign)),
            });
        }
        // Read again under the claim: a logout that ran between the first read and the claim
        // (and whose claim was gone by then) deleted the old session first, and must win.
        let again = match shared.timed(source.load(old_id)).await {
            Ok(again) => again.filter(|o| o.expires_ms.is_none_or(|e| e > now)),
            Err(e) => {
                drop_claim(shared, store, &claim).await;
                return Err(e);
            }
        };
        let Some(old) = again else {
            drop_claim(shared, store, &claim).await;
            foreign.remove_cookie = true;
            return Ok((Start::None, Some(foreign)));
        };
        foreign.claimed = true;
        foreign.remove_cookie = true;
        let max_age = old.max_age.unwrap_or_else(|| config.max_age());
        let record = Record {
            data: old.data,
            meta: Meta {
                expire: max_age.as_ms().map(|ms| now.saturating_add(ms)),
                max_age,
                created: old.created_ms,
            },
        };
        tracing::debug!(target: "session", source = source.name(), "moving a session from another library");
        Ok((
            Start::Store {
                id,
                record: Loaded::Live(record),
            },
            Some(foreign),
        ))
    }
}

/// The session a drained record starts (its marker key dropped): regenerated at load, so the
/// commit gives it an id of ours and supersedes the drained record, one request winning.
impl Session {
    /// The session a drained record starts. A record the drain had not confirmed yet
    /// (`"pending"`: written, the old session not yet seen again) stands only while the old
    /// session does: gone, a logout deleted it after the drain wrote, and the request is
    /// anonymous.
    pub(super) async fn drained(
        &self,
        source: &dyn session_core::store::Source,
        id: SessionId,
        mut record: Record,
        mut foreign: Foreign,
    ) -> Result<(Start, Option<Foreign>), Error> {
        let shared = &*self.0.shared;
        foreign.remove_cookie = true;
        let is_confirmed =
            |r: &Record| r.data.get(MOVED_KEY) == Some(&serde_json::Value::Bool(true));
        if !is_confirmed(&record) {
            let now = shared.config.now_ms();
            let old = shared.timed(source.load(&foreign.id)).await?;
            if old.is_none_or(|o| o.expires_ms.is_some_and(|e| e <= now)) {
                // Gone there: the drain may have confirmed the record and retired the old
                // session meanwhile (then it starts as confirmed), or a request moved it (stale);
                // else a logout ended it (the drain, or its next run, takes the record back).
                // Not deleted here: it may have become a request's marker since it was read,
                // and the requests racing that one would then find it gone and end as logouts.
                let Backend::Store(store) = &shared.backend else {
                    return Ok((Start::None, Some(foreign)));
                };
                match self.load_or_drop(store.as_ref(), &foreign.claim).await? {
                    Loaded::Live(again) if is_confirmed(&again) => record = again,
                    Loaded::Superseded => {
                        let stale = Start::Store {
                            id,
                            record: Loaded::Superseded,
                        };
                        // A loser of the race: the cookies stay as they are.
                        foreign.remove_cookie = false;
                        return Ok((stale, Some(foreign)));
                    }
                    _ => return Ok((Start::None, Some(foreign))),
                }
            }
        }
        foreign.retired = is_confirmed(&record) && shared.source.is_none();
        record.data.remove(MOVED_KEY);
        foreign.drained = true;
        let start = Start::Store {
            id,
            record: Loaded::Live(record),
        };
        Ok((start, Some(foreign)))
    }
}

impl Session {
    /// A session of our own old store that a drain wrote here, under the claim key of its old
    /// key (the cookie's id is gone there): it starts as a drained session does (`foreign`
    /// set: its first request gives it an id of ours). A request that lost the race for it
    /// finds the marker and is stale (no `foreign`), so a logout with the cookie follows it.
    pub(super) async fn drained_here(
        &self,
        store: &dyn DynStore,
        candidate: &super::Candidate<SessionId>,
        key: &StoreKey,
    ) -> Result<Option<super::Found>, Error> {
        let shared = &*self.0.shared;
        let Some(source) = &shared.store_source else {
            return Ok(None);
        };
        let (id, claim) = claim_key(shared, source.name(), key.as_str());
        let found = |source, foreign| super::Found {
            source,
            resign: candidate.resign,
            from_old: false,
            foreign,
            claim: None,
        };
        let record = match self.load_or_drop(store, &claim).await? {
            Loaded::Live(r) if r.data.contains_key(MOVED_KEY) => r,
            // Another request's claim (it moves the session), or the marker of a move done.
            Loaded::Superseded | Loaded::Live(_) => {
                let stale = Start::Store {
                    id,
                    record: Loaded::Superseded,
                };
                return Ok(Some(found(stale, None)));
            }
            Loaded::Missing => return Ok(None),
        };
        let _ = self.0.loaded_key.set((id.clone(), claim.clone()));
        let foreign = Foreign {
            id: key.as_str().to_owned(),
            claim,
            claimed: false,
            remove_cookie: false,
            written: false,
            deleted: false,
            drained: false,
            retired: false,
        };
        match self.drained(source.as_ref(), id, record, foreign).await? {
            (start @ Start::Store { .. }, Some(foreign)) if foreign.drained => {
                Ok(Some(found(start, Some(foreign))))
            }
            // Moved by a request meanwhile.
            (
                stale @ Start::Store {
                    record: Loaded::Superseded,
                    ..
                },
                _,
            ) => Ok(Some(found(stale, None))),
            // Taken back: a logout ended it after the drain wrote it.
            _ => Ok(None),
        }
    }
}

impl Session {
    /// The first of `missing` (ids this store has no record of) whose session moves from the
    /// store the layer migrates from, or is drained here; failing that, the first one whose
    /// move is under way or done (into `superseded`: stale, and a destroy ends it in both
    /// stores). The claim key is the one place every mover meets: a drain's record is looked
    /// at before the old store is asked, and a request moving a live old session claims it
    /// first, so a request, a drain and a logout never move one session twice.
    pub(in crate::session) async fn move_from_old_store(
        &self,
        store: &dyn DynStore,
        old: &dyn DynStore,
        missing: Vec<(&super::Candidate<SessionId>, StoreKey)>,
        superseded: &mut Option<(Start, bool)>,
    ) -> Result<Option<super::Found>, Error> {
        let shared = &*self.0.shared;
        for (candidate, key) in missing {
            let stale = || Start::Store {
                id: candidate.value.clone(),
                record: Loaded::Superseded,
            };
            match self.drained_here(store, candidate, &key).await? {
                Some(found) if found.foreign.is_some() => return Ok(Some(found)),
                Some(_) => {
                    superseded.get_or_insert((stale(), true));
                    continue;
                }
                None => {}
            }
            // The old store's failure is the request's (a 503, nothing moved); a record there
            // that can't be decoded is left to the old store, and not moved.
            let record = match shared.timed(old.load_dyn(&key)).await {
                Err(Error::Store(StoreError::Corrupt(why))) => {
                    tracing::warn!(target: "session", reason = %why, "a session record in the store sessions move from can't be decoded; not moving it");
                    Loaded::Missing
                }
                other => other?,
            };
            let source = Start::Store {
                id: candidate.value.clone(),
                record,
            };
            if session_core::driver::is_live_now(&shared.config, &source) {
                let Some(claim) = self.claim_old(store, &key).await? else {
                    // Another mover claimed it a moment ago: a drain (its record starts the
                    // session) or a request (stale).
                    match self.drained_here(store, candidate, &key).await? {
                        Some(found) if found.foreign.is_some() => return Ok(Some(found)),
                        _ => {
                            superseded.get_or_insert((stale(), true));
                            continue;
                        }
                    }
                };
                let _ = self.0.loaded_key.set((candidate.value.clone(), key));
                return Ok(Some(super::Found {
                    source,
                    resign: candidate.resign,
                    from_old: true,
                    foreign: None,
                    claim: Some(claim),
                }));
            }
            if let Start::Store {
                record: Loaded::Superseded,
                ..
            } = source
            {
                superseded.get_or_insert((source, true));
            }
        }
        Ok(None)
    }

    /// Claims the move of the old session under `key`: a placeholder under its claim key,
    /// living for the supersede grace. `None` when another mover holds it.
    async fn claim_old(
        &self,
        store: &dyn DynStore,
        key: &StoreKey,
    ) -> Result<Option<StoreKey>, Error> {
        let shared = &*self.0.shared;
        let Some(source) = &shared.store_source else {
            return Ok(None);
        };
        let (_, claim) = claim_key(shared, source.name(), key.as_str());
        let grace = shared.config.supersede_grace();
        let placeholder = placeholder(shared.config.now_ms(), grace);
        let created = shared
            .timed(store.create_dyn(&claim, &placeholder, grace))
            .await?;
        Ok((created == Created::Inserted).then_some(claim))
    }
}

/// Releases the claim a request made to move a session from the old store (moved or not): it
/// lapses within a second. Not destroyed: a request that ran past the supersede grace may find
/// another mover's record there by now, and a destroy would take it (a marker a logout must
/// follow, among them); a shorter life touches a live record only.
pub(crate) async fn release_old_claim(session: &Session) {
    let Some(claim) = session.lock().old_claim.take() else {
        return;
    };
    let shared = &*session.0.shared;
    if let crate::shared::Backend::Store(store) = &shared.backend {
        let now = shared.config.now_ms();
        lapse(store.as_ref(), &claim, now, shared.store_timeout).await;
    }
}

/// Gives the record under `claim` a second to live if it is a live one (a marker stays as it
/// is), within `limit`.
pub(crate) async fn lapse(
    store: &dyn DynStore,
    claim: &StoreKey,
    now: u64,
    limit: std::time::Duration,
) {
    let second = std::time::Duration::from_secs(1);
    let meta = placeholder(now, second).meta;
    if !matches!(
        tokio::time::timeout(limit, store.touch_dyn(claim, meta, second)).await,
        Ok(Ok(_))
    ) {
        tracing::warn!(target: "session", "could not release a move's claim; it lapses with its TTL");
    }
}

/// A move's claim: an empty record that lives for `ttl` from `now`.
fn placeholder(now: u64, ttl: std::time::Duration) -> Record {
    let ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
    Record {
        data: Data::new(),
        meta: Meta {
            expire: Some(now.saturating_add(ms)),
            max_age: MaxAge::Ms(ms),
            created: None,
        },
    }
}

/// Why old data can't move: a key our rules reserve, or more than [`MAX_MOVED_BYTES`]. Flash
/// messages and a CSRF secret (ours, from our own cookie mode) move: the move's regenerate
/// drops the secret, and the messages stay for the next page.
pub(crate) fn refused(data: &Data) -> Option<&'static str> {
    if data
        .keys()
        .any(|k| k.starts_with('_') && !session_core::flash::is_kept_apart(k))
    {
        return Some("a key starts with '_', which this library reserves");
    }
    let size = serde_json::to_vec(data).map_or(usize::MAX, |v| v.len());
    (size > MAX_MOVED_BYTES).then_some("larger than the largest session that moves")
}

/// Deletes the request's old session in the source, once: what a commit that ends the
/// session does first.
pub(crate) async fn delete_old_session(session: &Session) -> Result<(), Error> {
    let shared = &*session.0.shared;
    let Some(source) = shared.mover() else {
        return Ok(());
    };
    let (id, retired) = match &session.lock().foreign {
        Some(f) if !f.deleted => (f.id.clone(), f.retired),
        _ => return Ok(()),
    };
    match shared.timed(source.delete(&id)).await {
        Ok(()) => {}
        // A drained session of our own old store: the drain replaced the old record by a
        // marker (deleting it changes nothing), or meant to and failed (then it must go now,
        // or a later request would move it again). The old store may be retired by now: a
        // failure is logged, never the logout's.
        Err(e) if retired => {
            tracing::warn!(target: "session", error = %e, "could not delete a drained session's old record at its logout");
        }
        Err(e) => return Err(e),
    }
    if let Some(f) = session.lock().foreign.as_mut() {
        f.deleted = true;
    }
    Ok(())
}

/// Deletes a claim this request made and will not use (nothing was created from it yet).
async fn drop_claim(shared: &Shared, store: &dyn DynStore, claim: &StoreKey) {
    if let Err(e) = shared.timed(store.destroy_dyn(claim)).await {
        tracing::warn!(target: "session", error = %e, "could not drop a move's claim; it lapses with its TTL");
    }
}
