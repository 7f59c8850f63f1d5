//! The drain: moving the idle sessions of another library into the layer's store off the
//! request path, in batches, so that the old store can be retired before every user has come
//! back.
//!
//! Each old session is written under its move's claim key (the key a request carrying the old
//! cookie looks at first), its data marked as drained but pending, with the old session's
//! remaining lifetime. The drain reads the old session again: gone, a logout deleted it
//! meanwhile and won, and the record goes; there, the record is confirmed and only then is the
//! old session deleted. So a pending record whose old session is gone always means a logout
//! (the next request or run takes it back), and a confirmed one whose old session is still
//! there means a drain cut short (the next request or run deletes it). The first request with
//! the old cookie gives a drained session an id of ours as a move does (a regenerate from the
//! claim key: racing requests make one session, a logout ends it). A drain that meets a
//! request's claim leaves that session to the request. Safe to stop and run again.

use std::time::{Duration, SystemTime};

use futures_util::StreamExt as _;
use futures_util::stream;
use session_core::store::{
    Change, Created, Delta, DynStore, Loaded, MAX_STORE_TTL, Meta, Record, Source, StoreError,
    StoreKey, Supersede, Updated,
};

use session_core::driver::{Binding, OWNER_KEY};

use crate::error::Error;
use crate::layer::SessionLayer;
use crate::session::{MOVED_KEY, claim_key, refused};
use crate::shared::{Backend, Shared};

/// Old sessions a drain works on at once.
const CONCURRENT: usize = 16;

/// What a drain did so far.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct DrainReport {
    /// Old sessions written into the layer's store and deleted from the old one.
    pub moved: u64,
    /// Old sessions gone by the time the drain read them (expired, logged out, or moved by a
    /// request).
    pub gone: u64,
    /// Old sessions our rules refuse (a key starting with `_`, too large): left in place.
    pub refused: u64,
    /// Old sessions a request was moving, or a drain had moved already: left to them.
    pub moving: u64,
    /// Old sessions deleted without moving, after [`Drain::clear_after`].
    pub cleared: u64,
    /// Old sessions a store failed on: left in place for the next run.
    pub failed: u64,
    /// Batches done.
    pub batches: u64,
}

/// A drain of the layer's source ([`SessionLayer::drain`]).
pub struct Drain {
    layer: SessionLayer,
    batch: usize,
    clear_after: Option<SystemTime>,
}

impl std::fmt::Debug for Drain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Drain")
            .field("batch", &self.batch)
            .field("clear_after", &self.clear_after)
            .finish_non_exhaustive()
    }
}

impl SessionLayer {
    /// A drain of what this layer moves sessions in from: another library
    /// ([`SessionLayerBuilder::migrate_from_source`](crate::SessionLayerBuilder::migrate_from_source)),
    /// or another store of ours
    /// ([`SessionLayerBuilder::migrate_from`](crate::SessionLayerBuilder::migrate_from); the
    /// old store must list its sessions, as ours do on one server); `None` without either.
    /// Our cookie mode has nothing to drain (its sessions live in the browsers).
    pub fn drain(&self) -> Option<Drain> {
        self.shared.mover()?;
        Some(Drain {
            layer: self.clone(),
            batch: 500,
            clear_after: None,
        })
    }
}

/// What became of one old session.
enum Fate {
    Moved,
    Gone,
    Refused,
    Moving,
    Cleared,
    Failed,
}

impl Drain {
    /// Old sessions per batch (default 500).
    pub fn batch(mut self, n: usize) -> Self {
        self.batch = n.max(1);
        self
    }

    /// From this time on, the old sessions are deleted without being moved (never read): for
    /// the end of a switch, when what is left there has been idle longer than anyone cares.
    pub fn clear_after(mut self, at: SystemTime) -> Self {
        self.clear_after = Some(at);
        self
    }

    /// Runs the drain over every old session, calling `progress` after each batch with the
    /// counts so far; answers the final counts. A store failure on one session counts it as
    /// failed and goes on; a failure to list the old sessions ends the drain with the error.
    pub async fn run(&self, mut progress: impl FnMut(&DrainReport)) -> Result<DrainReport, Error> {
        let shared = &*self.layer.shared;
        let (Some(source), Backend::Store(store)) = (shared.mover(), &shared.backend) else {
            return Ok(DrainReport::default());
        };
        let lock = Lock::take(shared, source.as_ref(), store.as_ref()).await?;
        let mut report = DrainReport::default();
        let mut cursor: Option<String> = None;
        // A scan may return an id twice (Redis, while keys are deleted): each is drained once
        // per run.
        let mut seen = std::collections::HashSet::new();
        loop {
            let (ids, next) = match shared
                .timed(source.scan(cursor.as_deref(), self.batch))
                .await
            {
                Ok(batch) => batch,
                Err(e) => {
                    lock.release(shared, store.as_ref()).await;
                    return Err(e);
                }
            };
            let ids: Vec<String> = ids
                .into_iter()
                .filter(|id| seen.insert(id.clone()))
                .collect();
            let clear = self.clear_after.is_some_and(|t| SystemTime::now() >= t);
            let fates: Vec<Fate> = stream::iter(ids)
                .map(|id| async move {
                    drain_one(shared, source.as_ref(), store.as_ref(), &id, clear).await
                })
                .buffer_unordered(CONCURRENT)
                .collect()
                .await;
            for fate in fates {
                let n = match fate {
                    Fate::Moved => &mut report.moved,
                    Fate::Gone => &mut report.gone,
                    Fate::Refused => &mut report.refused,
                    Fate::Moving => &mut report.moving,
                    Fate::Cleared => &mut report.cleared,
                    Fate::Failed => &mut report.failed,
                };
                *n += 1;
            }
            report.batches += 1;
            progress(&report);
            // The lock lives while batches keep coming (a drain that died lets it lapse); a
            // drain that lost it (a batch longer than its life, and another drain took it)
            // stops.
            if let Err(e) = lock.renew(shared, store.as_ref()).await {
                lock.release(shared, store.as_ref()).await;
                return Err(e);
            }
            match next {
                Some(c) => cursor = Some(c),
                None => {
                    lock.release(shared, store.as_ref()).await;
                    return Ok(report);
                }
            }
        }
    }
}

/// How long a drain's lock lives without a batch renewing it: longer than a batch can take
/// (500 old sessions, 16 at a time, each a few store calls bounded by the store time limit).
const LOCK_TTL: Duration = Duration::from_secs(600);

/// A drain's lock in the layer's store: one drain of a source at a time (two would take back
/// each other's records). It holds a random token, so a drain renews and releases only its
/// own.
struct Lock {
    key: StoreKey,
    token: serde_json::Value,
}

impl Lock {
    /// Takes the lock, after checking that the store keeps what a drained record needs (koa's
    /// record format drops every key starting with `_`, the drained mark included).
    async fn take(
        shared: &Shared,
        source: &dyn Source,
        store: &dyn DynStore,
    ) -> Result<Lock, Error> {
        let mut bytes = [0u8; 16];
        getrandom::fill(&mut bytes).map_err(Error::Random)?;
        let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        let token = serde_json::Value::from(format!("lock:{token}"));
        let (_, key) = claim_key(shared, source.name(), "the drain's lock");
        let lock = Lock { key, token };
        let created = shared
            .timed(store.create_dyn(&lock.key, &lock.record(shared), LOCK_TTL))
            .await?;
        if created == Created::Collision {
            return Err(Error::Drain("another drain of this source is running"));
        }
        if !lock.held(shared, store).await? {
            let _ = shared.timed(store.destroy_dyn(&lock.key)).await;
            return Err(Error::Drain(
                "the layer's store drops keys starting with '_' (koa's record format)",
            ));
        }
        Ok(lock)
    }

    fn record(&self, shared: &Shared) -> Record {
        let ttl_ms = u64::try_from(LOCK_TTL.as_millis()).unwrap_or(u64::MAX);
        let mut data = session_core::store::Data::new();
        data.insert(MOVED_KEY.to_owned(), self.token.clone());
        Record {
            data,
            meta: Meta {
                expire: Some(shared.config.now_ms().saturating_add(ttl_ms)),
                max_age: session_core::MaxAge::Ms(ttl_ms),
                created: None,
            },
        }
    }

    /// Whether the lock is there and ours.
    async fn held(&self, shared: &Shared, store: &dyn DynStore) -> Result<bool, Error> {
        Ok(matches!(
            shared.timed(store.load_dyn(&self.key)).await?,
            Loaded::Live(r) if r.data.get(MOVED_KEY) == Some(&self.token)
        ))
    }

    /// Renews the lock for another [`LOCK_TTL`]; an error when it is no longer ours.
    async fn renew(&self, shared: &Shared, store: &dyn DynStore) -> Result<(), Error> {
        if !self.held(shared, store).await? {
            return Err(Error::Drain("the drain lost its lock to another drain"));
        }
        let meta = self.record(shared).meta;
        shared
            .timed(store.touch_dyn(&self.key, meta, LOCK_TTL))
            .await?;
        Ok(())
    }

    /// Releases the lock if it is still ours (best effort: it lapses by itself).
    async fn release(&self, shared: &Shared, store: &dyn DynStore) {
        if matches!(self.held(shared, store).await, Ok(true))
            && shared.timed(store.destroy_dyn(&self.key)).await.is_ok()
        {
            return;
        }
        tracing::debug!(target: "session", "the drain's lock was not released here; it lapses by itself");
    }
}

/// Drains one old session.
async fn drain_one(
    shared: &Shared,
    source: &dyn Source,
    store: &dyn DynStore,
    id: &str,
    clear: bool,
) -> Fate {
    match try_drain(shared, source, store, id, clear).await {
        Ok(fate) => fate,
        Err(e) => {
            tracing::warn!(target: "session", error = %e, "the drain could not move an old session; the next run tries again");
            Fate::Failed
        }
    }
}

async fn try_drain(
    shared: &Shared,
    source: &dyn Source,
    store: &dyn DynStore,
    id: &str,
    clear: bool,
) -> Result<Fate, Error> {
    let now = shared.config.now_ms();
    let live = |o: &session_core::store::SourceSession| o.expires_ms.is_none_or(|e| e > now);
    // Another store of ours: its records may hold our reserved keys (the owner binding), and
    // a key that holds no live record there may be a login's marker, which stays.
    let ours = shared.source.is_none();
    // What is there: a record of the old library (an id-shaped key of something else is
    // refused, never moved nor cleared), live or not.
    let old = match shared.timed(source.load(id)).await {
        Err(Error::Store(StoreError::Corrupt(_))) => return Ok(Fate::Refused),
        other => other?,
    };
    if clear {
        if old.is_none() {
            return Ok(Fate::Gone);
        }
        shared.timed(source.delete(id)).await?;
        return Ok(Fate::Cleared);
    }
    let (_, claim) = claim_key(shared, source.name(), id);
    match shared.timed(store.load_dyn(&claim)).await {
        Ok(Loaded::Missing) => {}
        // Written by a drain that was cut short: finish what it began.
        Ok(Loaded::Live(r)) if r.data.contains_key(MOVED_KEY) => {
            let confirmed = r.data.get(MOVED_KEY) == Some(&serde_json::Value::Bool(true));
            return match (confirmed, old.filter(live).is_some()) {
                // Confirmed, the old session still there: it goes now.
                (true, true) => retire_old(shared, source, store, id, &claim, &r.data).await,
                (true, false) => Ok(Fate::Moving),
                // Not confirmed, the old session still there: confirm, then it goes.
                (false, true) => confirm(shared, source, store, id, &claim, r).await,
                // Not confirmed and gone: a logout won; the record goes.
                (false, false) => take_back(shared, store, &claim).await,
            };
        }
        // Moved by a request. From our own old store, the old record should be a marker by
        // now; a drain cut short before it retired it left it live, and it is retired here.
        Ok(Loaded::Superseded) if ours && old.as_ref().is_some_and(live) => {
            if let Some(o) = &shared.migrate_from {
                let key = StoreKey::from_raw(id);
                let grace = shared.config.supersede_grace();
                let _ = shared.timed(o.supersede_dyn(&key, &claim, grace)).await?;
            }
            return Ok(Fate::Moving);
        }
        Ok(_) => return Ok(Fate::Moving),
        Err(Error::Store(StoreError::Corrupt(_))) => return Ok(Fate::Refused),
        Err(e) => return Err(e),
    }
    let Some(old) = old.filter(live) else {
        // Expired there (its library's own sweep no longer runs): it goes.
        if !ours {
            shared.timed(source.delete(id)).await?;
        }
        return Ok(Fate::Gone);
    };
    if !ours && refused(&old.data).is_some() {
        return Ok(Fate::Refused);
    }
    let max_age = old.max_age.unwrap_or_else(|| shared.config.max_age());
    let expire = old
        .expires_ms
        .or_else(|| max_age.as_ms().map(|ms| now.saturating_add(ms)));
    // A session without an end (a browser-session cookie) lives in the store as such a
    // session of ours does: `session_ttl`.
    let left = match expire {
        Some(e) => Duration::from_millis(e.saturating_sub(now)).min(MAX_STORE_TTL),
        None => Duration::from_millis(shared.config.session_ttl_ms()),
    };
    let created = old.created_ms;
    let mut data = old.data;
    data.insert(MOVED_KEY.to_owned(), serde_json::Value::from(PENDING));
    let record = Record {
        data,
        meta: Meta {
            expire,
            max_age,
            created,
        },
    };
    let ttl = left.max(Duration::from_secs(1));
    // A bound session is filed in its owner's index here before its record is written (as a
    // commit files one), so a listing shows it and "log out everywhere" ends it.
    if let Some(binding) = binding_of(ours, &record.data)
        && crate::index::check_index(shared).is_ok()
    {
        crate::index::file(shared, &binding, &claim, now).await?;
    }
    match shared.timed(store.create_dyn(&claim, &record, ttl)).await {
        Ok(Created::Inserted) => {}
        Ok(Created::Collision) => return Ok(Fate::Moving),
        // Larger than this store takes: refused, as a request would refuse it.
        Err(Error::Store(StoreError::TooLarge { .. })) => return Ok(Fate::Refused),
        Err(e) => return Err(e),
    }
    // A logout between the read and the write deleted the old session first: it wins, and
    // the record goes. (A record left pending here is taken back by the next request or run
    // that finds the old session gone.)
    if shared.timed(source.load(id)).await?.filter(live).is_none() {
        return take_back(shared, store, &claim).await;
    }
    confirm(shared, source, store, id, &claim, record).await
}

/// What a drained record's marker says before the drain has seen the old session again after
/// writing it: it stands only while the old session does.
const PENDING: &str = "pending";

/// Marks the drained record under `claim` confirmed, then deletes the old session.
async fn confirm(
    shared: &Shared,
    source: &dyn Source,
    store: &dyn DynStore,
    id: &str,
    claim: &StoreKey,
    record: Record,
) -> Result<Fate, Error> {
    let delta = Delta {
        replace: false,
        set: vec![(MOVED_KEY.to_owned(), serde_json::Value::Bool(true))],
        removed: Vec::new(),
    };
    let mut data = record.data;
    data.insert(MOVED_KEY.to_owned(), serde_json::Value::Bool(true));
    let change = Change {
        delta: &delta,
        data: &data,
        meta: record.meta,
    };
    let now = shared.config.now_ms();
    let ttl = record
        .meta
        .expire
        .map_or(Duration::from_millis(shared.config.session_ttl_ms()), |e| {
            Duration::from_millis(e.saturating_sub(now).max(1000)).min(MAX_STORE_TTL)
        });
    match shared.timed(store.save_dyn(claim, change, ttl)).await? {
        Updated::Updated => retire_old(shared, source, store, id, claim, &data).await,
        // A logout ended it meanwhile.
        Updated::NotFound => Ok(Fate::Gone),
        // A request moved it meanwhile (and deletes the old session).
        Updated::Superseded => Ok(Fate::Moving),
    }
}

/// Ends the old session once its drained record is confirmed. Another library's is deleted.
/// One of our own stores' is superseded by a marker naming the drained record (as a move's
/// regenerate leaves one), so a logout that still finds the old id follows it here; when it
/// is no longer live (a logout ended it, or a request moved it, meanwhile) the drained record
/// is taken back.
async fn retire_old(
    shared: &Shared,
    source: &dyn Source,
    store: &dyn DynStore,
    id: &str,
    claim: &StoreKey,
    data: &session_core::store::Data,
) -> Result<Fate, Error> {
    let now = shared.config.now_ms();
    let Some(old) = shared
        .source
        .is_none()
        .then_some(())
        .and(shared.migrate_from.as_ref())
    else {
        shared.timed(source.delete(id)).await?;
        return Ok(Fate::Moved);
    };
    let key = StoreKey::from_raw(id);
    let grace = shared.config.supersede_grace();
    match shared.timed(old.supersede_dyn(&key, claim, grace)).await? {
        Supersede::Replaced => {
            unfile_old(shared, true, id, data, now).await;
            Ok(Fate::Moved)
        }
        Supersede::Missing => take_back_if(shared, store, claim, true).await,
        Supersede::AlreadySuperseded => {
            take_back_if(shared, store, claim, true).await?;
            Ok(Fate::Moving)
        }
    }
}

/// The owner binding of a record of another store of ours (a library's data has none).
fn binding_of(ours: bool, data: &session_core::store::Data) -> Option<Binding> {
    ours.then(|| data.get(OWNER_KEY).and_then(Binding::from_value))
        .flatten()
}

/// Removes a moved session's entry from the old store's owner index (best effort).
async fn unfile_old(
    shared: &Shared,
    ours: bool,
    id: &str,
    data: &session_core::store::Data,
    now: u64,
) {
    if let Some(b) = binding_of(ours, data) {
        crate::index::unfile(shared, &b.owner, &StoreKey::from_raw(id), now, true).await;
    }
}

/// Takes back a pending record a logout raced.
async fn take_back(shared: &Shared, store: &dyn DynStore, claim: &StoreKey) -> Result<Fate, Error> {
    take_back_if(shared, store, claim, false).await
}

/// [`take_back`]; with `confirmed`, also a record this run confirmed (its old session was
/// ended by someone else before the drain could retire it).
async fn take_back_if(
    shared: &Shared,
    store: &dyn DynStore,
    claim: &StoreKey,
    confirmed: bool,
) -> Result<Fate, Error> {
    // Every mover meets at the claim key: a record there that a request moved (a marker now)
    // is that request's, and it deleted the old session itself. Only a record still as the
    // drain wrote it goes, and never by a destroy (a request may supersede it between a read
    // and the destroy, and a destroy would take its marker, so a logout could no longer follow
    // it): the record is marked pending again, which a request starts only while the old
    // session lives (it is gone now), and left to lapse within a second. Both writes touch a
    // live record only, never a marker.
    let r = match shared.timed(store.load_dyn(claim)).await? {
        Loaded::Live(r) => r,
        Loaded::Superseded => return Ok(Fate::Moving),
        Loaded::Missing => return Ok(Fate::Gone),
    };
    let pending = r.data.get(MOVED_KEY) == Some(&serde_json::Value::from(PENDING));
    if !pending && !confirmed {
        // Confirmed by an earlier run: its old session is retired already.
        return Ok(Fate::Moving);
    }
    let delta = Delta {
        replace: false,
        set: vec![(MOVED_KEY.to_owned(), serde_json::Value::from(PENDING))],
        removed: Vec::new(),
    };
    let mut data = r.data;
    data.insert(MOVED_KEY.to_owned(), serde_json::Value::from(PENDING));
    let now = shared.config.now_ms();
    let meta = Meta {
        expire: Some(now.saturating_add(1000)),
        ..r.meta
    };
    let change = Change {
        delta: &delta,
        data: &data,
        meta,
    };
    let lapse = Duration::from_secs(1);
    match shared.timed(store.save_dyn(claim, change, lapse)).await? {
        Updated::Superseded => Ok(Fate::Moving),
        Updated::Updated | Updated::NotFound => Ok(Fate::Gone),
    }
}
