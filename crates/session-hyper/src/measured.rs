//! The layer's store, watched: every store and owner-index call in a span named by the
//! OpenTelemetry semantic conventions for database calls, timed into the store latency
//! histogram, and a failure reported as a [`StoreFailed`](session_core::EventKind::StoreFailed)
//! event. The layer wraps its stores in it only when someone watches (the `metrics` feature,
//! an event subscriber, or a `tracing` subscriber that wants the spans), so a layer nobody
//! watches pays nothing.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use session_core::driver;
use session_core::store::{
    BoxFuture, Change, Created, Destroyed, DynStore, KeyScan, Loaded, Meta, OwnerIndex, Record,
    StoreError, StoreKey, Supersede, Updated,
};
use session_core::store::{IndexEntry, Indexed};
use session_core::telemetry::{self, Outcome};
use session_core::{Config, EventKind, Handle, SessionEvent, StoreOp};
use tracing::Instrument;

use crate::shared::Backend;

/// Whether a layer over `config` has anyone watching its store calls.
pub(crate) fn watched(config: &Config) -> bool {
    cfg!(feature = "metrics")
        || driver::listening(config)
        || tracing::enabled!(target: "session::store", tracing::Level::DEBUG)
}

/// Wraps a layer's stores (its own, and the one it migrates from) in [`Measured`] when someone
/// watches their calls, and declares the metrics' bounded label sets.
pub(crate) fn watch_stores(
    backend: &mut Backend,
    migrate_from: &mut Option<Arc<dyn DynStore>>,
    config: &Config,
    limit: Duration,
) {
    let mut systems = Vec::new();
    if let Backend::Store(store) = &*backend {
        systems.push(store.system_dyn());
    }
    if let Some(old) = &*migrate_from {
        systems.push(old.system_dyn());
    }
    telemetry::declare(&systems);
    if !watched(config) {
        return;
    }
    if let Backend::Store(store) = &*backend {
        *backend = Backend::Store(Measured::wrap(Arc::clone(store), config, limit));
    }
    if let Some(old) = migrate_from.take() {
        *migrate_from = Some(Measured::wrap(old, config, limit));
    }
}

/// A store, watched.
pub(crate) struct Measured {
    inner: Arc<dyn DynStore>,
    index: Option<MeasuredIndex>,
    watch: Watch,
}

impl Measured {
    /// `inner`, watched: events go to `config`'s subscribers; a call the layer gives up on
    /// after `limit` (its `store_timeout`) is a failure.
    pub(crate) fn wrap(
        inner: Arc<dyn DynStore>,
        config: &Config,
        limit: Duration,
    ) -> Arc<dyn DynStore> {
        let watch = Watch {
            system: inner.system_dyn(),
            config: config.clone(),
            limit,
            timers: telemetry::StoreTimers::register(inner.system_dyn()),
        };
        let index = inner.owner_index_dyn().is_some().then(|| MeasuredIndex {
            store: Arc::clone(&inner),
            watch: watch.clone(),
        });
        Arc::new(Measured {
            inner,
            index,
            watch,
        })
    }
}

/// What every watched call reports to.
#[derive(Clone)]
struct Watch {
    system: &'static str,
    config: Config,
    /// The layer's `store_timeout`: a call dropped unfinished after it was cut off by it.
    limit: Duration,
    /// The latency histograms, registered when the layer was built.
    timers: telemetry::StoreTimers,
}

/// Records the call's latency when it ends. A call dropped unfinished was cut off by the
/// layer's time limit (a failure: `timeout`, and its event) or given up because the request
/// went away (`cancelled`).
struct Timer<'a> {
    watch: &'a Watch,
    op: StoreOp,
    start: Instant,
    done: bool,
}

impl Timer<'_> {
    fn done(&mut self, outcome: Outcome) {
        self.done = true;
        let secs = self.start.elapsed().as_secs_f64();
        self.watch.timers.record(self.op, outcome, secs);
    }
}

impl Drop for Timer<'_> {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        if self.start.elapsed() < self.watch.limit {
            self.done(Outcome::Cancelled);
            return;
        }
        self.done(Outcome::Timeout);
        self.watch
            .failed(self.op, &StoreError::Timeout(self.watch.limit));
    }
}

impl Watch {
    /// Runs `call` in its span, timed from now (before the layer's time limit starts counting
    /// around the future this returns), reporting a failure.
    fn call<'a, T>(
        &'a self,
        op: StoreOp,
        call: impl Future<Output = Result<T, StoreError>> + 'a,
    ) -> impl Future<Output = Result<T, StoreError>> + 'a {
        let start = Instant::now();
        async move { self.timed(op, start, call).await }
    }

    async fn timed<T>(
        &self,
        op: StoreOp,
        start: Instant,
        call: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        let span = tracing::debug_span!(
            target: "session::store",
            "session store call",
            otel.name = tracing::field::Empty,
            otel.kind = "client",
            db.system.name = self.system,
            db.operation.name = op.name(),
            error.type = tracing::field::Empty,
        );
        if !span.is_disabled() {
            span.record("otel.name", format!("{} {}", op.name(), self.system));
        }
        let mut timer = Timer {
            watch: self,
            op,
            start,
            done: false,
        };
        let got = call.instrument(span.clone()).await;
        match &got {
            Ok(_) => timer.done(Outcome::Ok),
            Err(e) => {
                timer.done(Outcome::Error);
                span.record("error.type", e.kind());
                self.failed(op, e);
            }
        }
        got
    }

    /// Counts a failed call and raises its event.
    fn failed(&self, op: StoreOp, e: &StoreError) {
        let error = e.kind();
        telemetry::store_error(self.system, op, error);
        driver::emit(&self.config, || {
            SessionEvent::new(EventKind::StoreFailed { op, error }, None, None)
        });
    }
}

impl DynStore for Measured {
    fn create_dyn<'a>(
        &'a self,
        key: &'a StoreKey,
        record: &'a Record,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<Created, StoreError>> {
        Box::pin(
            self.watch
                .call(StoreOp::Create, self.inner.create_dyn(key, record, ttl)),
        )
    }
    fn load_dyn<'a>(&'a self, key: &'a StoreKey) -> BoxFuture<'a, Result<Loaded, StoreError>> {
        Box::pin(self.watch.call(StoreOp::Load, self.inner.load_dyn(key)))
    }
    fn save_dyn<'a>(
        &'a self,
        key: &'a StoreKey,
        change: Change<'a>,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<Updated, StoreError>> {
        Box::pin(
            self.watch
                .call(StoreOp::Save, self.inner.save_dyn(key, change, ttl)),
        )
    }
    fn destroy_dyn<'a>(
        &'a self,
        key: &'a StoreKey,
    ) -> BoxFuture<'a, Result<Destroyed, StoreError>> {
        Box::pin(
            self.watch
                .call(StoreOp::Destroy, self.inner.destroy_dyn(key)),
        )
    }
    fn supersede_dyn<'a>(
        &'a self,
        key: &'a StoreKey,
        successor: &'a StoreKey,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<Supersede, StoreError>> {
        Box::pin(self.watch.call(
            StoreOp::Supersede,
            self.inner.supersede_dyn(key, successor, ttl),
        ))
    }
    fn touch_dyn<'a>(
        &'a self,
        key: &'a StoreKey,
        meta: Meta,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<Updated, StoreError>> {
        Box::pin(
            self.watch
                .call(StoreOp::Touch, self.inner.touch_dyn(key, meta, ttl)),
        )
    }
    fn merges_deltas_dyn(&self) -> bool {
        self.inner.merges_deltas_dyn()
    }
    fn system_dyn(&self) -> &'static str {
        self.watch.system
    }
    fn owner_index_dyn(&self) -> Option<&dyn OwnerIndex> {
        self.index.as_ref().map(|i| i as &dyn OwnerIndex)
    }
    fn scan_dyn<'a>(
        &'a self,
        cursor: Option<&'a str>,
        count: usize,
    ) -> BoxFuture<'a, Result<KeyScan, StoreError>> {
        Box::pin(
            self.watch
                .call(StoreOp::Scan, self.inner.scan_dyn(cursor, count)),
        )
    }
}

/// The watched store's owner index.
struct MeasuredIndex {
    store: Arc<dyn DynStore>,
    watch: Watch,
}

impl MeasuredIndex {
    fn inner(&self) -> Result<&dyn OwnerIndex, StoreError> {
        self.store
            .owner_index_dyn()
            .ok_or_else(|| StoreError::Backend("the store no longer keeps an owner index".into()))
    }
}

impl OwnerIndex for MeasuredIndex {
    fn index<'a>(
        &'a self,
        owner: &'a str,
        entry: &'a IndexEntry,
        until: u64,
        now: u64,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(self.watch.call(StoreOp::Index, async move {
            self.inner()?.index(owner, entry, until, now).await
        }))
    }
    fn unindex<'a>(
        &'a self,
        owner: &'a str,
        handles: &'a [Handle],
        now: u64,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(self.watch.call(StoreOp::Unindex, async move {
            self.inner()?.unindex(owner, handles, now).await
        }))
    }
    fn entries<'a>(
        &'a self,
        owner: &'a str,
        now: u64,
    ) -> BoxFuture<'a, Result<Vec<Indexed>, StoreError>> {
        Box::pin(self.watch.call(StoreOp::Entries, async move {
            self.inner()?.entries(owner, now).await
        }))
    }
    fn admits(&self) -> bool {
        self.inner().is_ok_and(|i| i.admits())
    }
    fn admit<'a>(
        &'a self,
        owner: &'a str,
        entry: &'a IndexEntry,
        until: u64,
        now: u64,
        how: session_core::store::Admit<'a>,
    ) -> BoxFuture<'a, Result<session_core::store::Admitted, StoreError>> {
        Box::pin(self.watch.call(StoreOp::Admit, async move {
            self.inner()?.admit(owner, entry, until, now, how).await
        }))
    }
}
