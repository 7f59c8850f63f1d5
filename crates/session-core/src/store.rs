//! What a store implements: the [`Store`] contract and its result types, a type-erased form
//! of it ([`DynStore`]), the record a store keeps, the owner index a store may keep
//! ([`OwnerIndex`]), and (feature `testing`) the conformance suite every store runs against
//! itself.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

pub use crate::expiry::MAX_STORE_TTL;
pub use crate::id::StoreKey;
pub use crate::index::OwnerIndex;
pub use crate::limit::{Admit, Admitted, Decision, decide};
pub use crate::owner::{Handle, IndexEntry, Indexed, hex};
pub use crate::record::{Data, Delta, MaxAge, Meta, Record};
pub use crate::store_error::{BoxFuture, StoreError};
pub use source::{ScanResult, Source, SourceCookie, SourceSession};

mod source;

#[cfg(feature = "testing")]
#[cfg_attr(docsrs, doc(cfg(feature = "testing")))]
pub mod testing;

/// Result of [`Store::create`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Created {
    /// The record was inserted.
    Inserted,
    /// A record already exists under this key; nothing was written (draw a new id).
    Collision,
}

/// Result of [`Store::save`] and [`Store::touch`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Updated {
    /// The record was updated.
    Updated,
    /// No live record exists (expired or destroyed meanwhile); nothing was written, and the
    /// session must not be brought back.
    NotFound,
    /// A regenerate superseded the record meanwhile (see [`Store::supersede`]); nothing was
    /// written. The request's changes belong to an id that no longer leads to the session.
    Superseded,
}

/// What [`Store::load`] found under a key.
#[derive(Debug, Clone, PartialEq)]
pub enum Loaded {
    /// No record: never written, destroyed, or expired.
    Missing,
    /// A live record.
    Live(Record),
    /// A marker left by [`Store::supersede`]: a regenerate moved the session to a new id a
    /// moment ago. The request is anonymous, and it must not remove the client's cookie (the
    /// client may already hold the new one).
    Superseded,
}

impl Loaded {
    /// The live record, if any.
    pub fn into_record(self) -> Option<Record> {
        match self {
            Self::Live(r) => Some(r),
            Self::Missing | Self::Superseded => None,
        }
    }

    /// The live record, if any, by reference.
    pub fn record(&self) -> Option<&Record> {
        match self {
            Self::Live(r) => Some(r),
            Self::Missing | Self::Superseded => None,
        }
    }
}

/// Result of [`Store::destroy`]: what was under the key before it was deleted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destroyed {
    /// A live record was deleted.
    Removed,
    /// Nothing was there (never written, already destroyed, or expired).
    Missing,
    /// A supersede marker was there (deleted, or left to its short TTL: it holds no data);
    /// the session lives on under this key, and a caller ending the session must destroy it
    /// too.
    Superseded(StoreKey),
}

/// Result of [`Store::supersede`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Supersede {
    /// The live record was replaced by a marker pointing at the successor.
    Replaced,
    /// No live record was there (destroyed or expired meanwhile): the regenerate must end as a
    /// destroy, or the destroyed data would live on under the new id.
    Missing,
    /// Another regenerate superseded the record first; nothing was written.
    AlreadySuperseded,
}

/// One request's write to an existing record.
#[derive(Debug, Clone, Copy)]
pub struct Change<'a> {
    /// The changes this request made.
    pub delta: &'a Delta,
    /// The whole data as this request sees it (used when [`Delta::replace`] is set, or by a
    /// store that only writes whole records).
    pub data: &'a Data,
    /// The koa fields to store.
    pub meta: Meta,
}

/// A session store.
///
/// Contract (proved for each store by the conformance suite in `session_core::store::testing`):
/// - `create` inserts only if nothing (no record, no marker) is under the key and reports a
///   collision;
/// - `load` returns the record, nothing (an expired record counts as nothing), or that a
///   regenerate superseded it;
/// - `save` updates only a live record, applying the delta to the record as it is now, and
///   reports not-found or superseded (it never brings back a destroyed session and never
///   writes over a marker);
/// - `destroy` deletes and is idempotent, and says what was there (a marker names the
///   successor, so a logout that arrives with a superseded id can end the successor too); a
///   destroy of a key nothing was created under leaves nothing a later create collides with. A
///   store may leave a marker to its TTL instead of deleting it, so that a destroy run twice
///   (a store that resends a command whose reply a dropped connection lost) names the
///   successor again;
/// - `touch` extends the TTL of a live record and sets the new meta without rewriting the data;
/// - `supersede` atomically replaces a live record by a short-lived marker naming its successor,
///   and reports when the record was already gone or superseded;
/// - every record stays within the store's size limit after every write (the whole record, not
///   only the delta, each key counted once however often a [`Delta`] names it;
///   [`StoreError::TooLarge`] otherwise, with nothing written);
/// - every record and marker has a TTL (`ttl` is always > 0; one longer than
///   [`MAX_STORE_TTL`] is clamped to it), no failure leaves a key
///   without one, and every call returns within the store's time limit;
/// - every command touches one key (so a store can run on a sharded backend such as Redis
///   Cluster).
pub trait Store: Send + Sync + 'static {
    /// Inserts `record` under `key` if no live record is there.
    fn create(
        &self,
        key: &StoreKey,
        record: &Record,
        ttl: Duration,
    ) -> impl Future<Output = Result<Created, StoreError>> + Send;

    /// What is under `key`: a live record, nothing, or a supersede marker. A record that can't
    /// be decoded is [`StoreError::Corrupt`] (the middleware then deletes it and starts a new
    /// session).
    fn load(&self, key: &StoreKey) -> impl Future<Output = Result<Loaded, StoreError>> + Send;

    /// Applies a change to the live record under `key`, if any, and sets its TTL. Fails with
    /// [`StoreError::TooLarge`], writing nothing, when the record would outgrow the store's
    /// limit.
    fn save(
        &self,
        key: &StoreKey,
        change: Change<'_>,
        ttl: Duration,
    ) -> impl Future<Output = Result<Updated, StoreError>> + Send;

    /// Deletes whatever is under `key` (no error if there is nothing; a supersede marker may
    /// be left to its TTL) and says what it was.
    fn destroy(&self, key: &StoreKey)
    -> impl Future<Output = Result<Destroyed, StoreError>> + Send;

    /// Replaces the live record under `key` by a marker that names `successor` and lives for
    /// `ttl`, in one atomic step: what a regenerate does to the old id once the new record
    /// exists. Requests that still carry the old id then load [`Loaded::Superseded`], and a
    /// destroy of the old id reports the successor.
    fn supersede(
        &self,
        key: &StoreKey,
        successor: &StoreKey,
        ttl: Duration,
    ) -> impl Future<Output = Result<Supersede, StoreError>> + Send;

    /// Sets `meta` and the TTL of the live record under `key`, without rewriting its data.
    fn touch(
        &self,
        key: &StoreKey,
        meta: Meta,
        ttl: Duration,
    ) -> impl Future<Output = Result<Updated, StoreError>> + Send;

    /// Whether `save` merges deltas (two requests changing different keys both land) rather
    /// than writing whole records.
    fn merges_deltas(&self) -> bool {
        true
    }

    /// The store's kind, as the `store` label of metrics and the OpenTelemetry
    /// `db.system.name` of its spans: `memory`, `redis`, `postgresql`; `other` (the default)
    /// for a store that does not say.
    fn system(&self) -> &'static str {
        "other"
    }

    /// The store's index of sessions by owner, if it keeps one ([`OwnerIndex`]); `None` (the
    /// default) when it does not, and then sessions can't be bound to an owner.
    fn owner_index(&self) -> Option<&dyn OwnerIndex> {
        None
    }

    /// About `count` keys of the store's records and markers from `cursor` on (`None`: the
    /// start), and the cursor of the next batch (`None`: no more): what a drain of this store
    /// walks when a site moves its sessions to another store. A key may come twice (a store
    /// listed while it changes), one written during the listing may be missed, and a key
    /// that is no record of this store's may come (the caller loads each). The default lists
    /// nothing and says so ([`StoreError::Backend`]): a store that can't list its sessions
    /// can't be drained.
    fn scan(
        &self,
        cursor: Option<&str>,
        count: usize,
    ) -> impl Future<Output = Result<KeyScan, StoreError>> + Send {
        let _ = (cursor, count);
        std::future::ready(Err(StoreError::Backend(
            "this store can't list its sessions".to_owned(),
        )))
    }
}

/// A batch of store keys and the cursor of the next batch ([`Store::scan`]).
pub type KeyScan = (Vec<StoreKey>, Option<String>);

/// The object-safe form of [`Store`], so a store can be chosen at run time
/// (`Arc<dyn DynStore>` implements [`Store`]). Every [`Store`] implements it.
pub trait DynStore: Send + Sync + 'static {
    /// See [`Store::create`].
    fn create_dyn<'a>(
        &'a self,
        key: &'a StoreKey,
        record: &'a Record,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<Created, StoreError>>;
    /// See [`Store::load`].
    fn load_dyn<'a>(&'a self, key: &'a StoreKey) -> BoxFuture<'a, Result<Loaded, StoreError>>;
    /// See [`Store::save`].
    fn save_dyn<'a>(
        &'a self,
        key: &'a StoreKey,
        change: Change<'a>,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<Updated, StoreError>>;
    /// See [`Store::destroy`].
    fn destroy_dyn<'a>(&'a self, key: &'a StoreKey)
    -> BoxFuture<'a, Result<Destroyed, StoreError>>;
    /// See [`Store::supersede`].
    fn supersede_dyn<'a>(
        &'a self,
        key: &'a StoreKey,
        successor: &'a StoreKey,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<Supersede, StoreError>>;
    /// See [`Store::touch`].
    fn touch_dyn<'a>(
        &'a self,
        key: &'a StoreKey,
        meta: Meta,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<Updated, StoreError>>;
    /// See [`Store::merges_deltas`].
    fn merges_deltas_dyn(&self) -> bool;
    /// See [`Store::system`].
    fn system_dyn(&self) -> &'static str;
    /// See [`Store::owner_index`].
    fn owner_index_dyn(&self) -> Option<&dyn OwnerIndex>;
    /// See [`Store::scan`].
    fn scan_dyn<'a>(
        &'a self,
        cursor: Option<&'a str>,
        count: usize,
    ) -> BoxFuture<'a, Result<KeyScan, StoreError>>;
}

impl<S: Store> DynStore for S {
    fn create_dyn<'a>(
        &'a self,
        key: &'a StoreKey,
        record: &'a Record,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<Created, StoreError>> {
        Box::pin(self.create(key, record, ttl))
    }
    fn load_dyn<'a>(&'a self, key: &'a StoreKey) -> BoxFuture<'a, Result<Loaded, StoreError>> {
        Box::pin(self.load(key))
    }
    fn save_dyn<'a>(
        &'a self,
        key: &'a StoreKey,
        change: Change<'a>,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<Updated, StoreError>> {
        Box::pin(self.save(key, change, ttl))
    }
    fn destroy_dyn<'a>(
        &'a self,
        key: &'a StoreKey,
    ) -> BoxFuture<'a, Result<Destroyed, StoreError>> {
        Box::pin(self.destroy(key))
    }
    fn supersede_dyn<'a>(
        &'a self,
        key: &'a StoreKey,
        successor: &'a StoreKey,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<Supersede, StoreError>> {
        Box::pin(self.supersede(key, successor, ttl))
    }
    fn touch_dyn<'a>(
        &'a self,
        key: &'a StoreKey,
        meta: Meta,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<Updated, StoreError>> {
        Box::pin(self.touch(key, meta, ttl))
    }
    fn merges_deltas_dyn(&self) -> bool {
        self.merges_deltas()
    }
    fn system_dyn(&self) -> &'static str {
        self.system()
    }
    fn owner_index_dyn(&self) -> Option<&dyn OwnerIndex> {
        self.owner_index()
    }
    fn scan_dyn<'a>(
        &'a self,
        cursor: Option<&'a str>,
        count: usize,
    ) -> BoxFuture<'a, Result<KeyScan, StoreError>> {
        Box::pin(self.scan(cursor, count))
    }
}

impl Store for Arc<dyn DynStore> {
    async fn create(
        &self,
        key: &StoreKey,
        record: &Record,
        ttl: Duration,
    ) -> Result<Created, StoreError> {
        self.as_ref().create_dyn(key, record, ttl).await
    }
    async fn load(&self, key: &StoreKey) -> Result<Loaded, StoreError> {
        self.as_ref().load_dyn(key).await
    }
    async fn save(
        &self,
        key: &StoreKey,
        change: Change<'_>,
        ttl: Duration,
    ) -> Result<Updated, StoreError> {
        self.as_ref().save_dyn(key, change, ttl).await
    }
    async fn destroy(&self, key: &StoreKey) -> Result<Destroyed, StoreError> {
        self.as_ref().destroy_dyn(key).await
    }
    async fn supersede(
        &self,
        key: &StoreKey,
        successor: &StoreKey,
        ttl: Duration,
    ) -> Result<Supersede, StoreError> {
        self.as_ref().supersede_dyn(key, successor, ttl).await
    }
    async fn touch(
        &self,
        key: &StoreKey,
        meta: Meta,
        ttl: Duration,
    ) -> Result<Updated, StoreError> {
        self.as_ref().touch_dyn(key, meta, ttl).await
    }
    fn merges_deltas(&self) -> bool {
        self.as_ref().merges_deltas_dyn()
    }
    fn system(&self) -> &'static str {
        self.as_ref().system_dyn()
    }
    fn owner_index(&self) -> Option<&dyn OwnerIndex> {
        self.as_ref().owner_index_dyn()
    }
    async fn scan(&self, cursor: Option<&str>, count: usize) -> Result<KeyScan, StoreError> {
        self.as_ref().scan_dyn(cursor, count).await
    }
}
