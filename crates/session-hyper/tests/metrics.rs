//! The metrics (feature `metrics`) against what really happened, under a recorder of this test
//! binary's own (`metrics-util`'s `DebuggingRecorder`, installed once: one test here): the
//! store latency histogram holds exactly one sample per store and owner-index call the layer
//! made, op by op (counted by a wrapper under the layer's), whether the call answered, failed
//! or was cut off by the layer's time limit; the event counter agrees with an event
//! subscriber; the error answers are counted by status; no label holds an id, a cookie value,
//! a store key or a signing key.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use session_core::Handle;
use session_core::store::{
    Admit, Admitted, BoxFuture, Change, Created, Destroyed, IndexEntry, Indexed, KeyScan, Loaded,
    Meta, OwnerIndex, Record, Store, StoreError, StoreKey, Supersede, Updated,
};
use session_core::telemetry::{ANSWERS, EVENTS, STORE_DURATION};
use session_hyper::{Config, OverLimit, SessionLayer, SessionLimit};
use session_store_memory::MemoryStore;
use session_testkit::capture::{KEY1, Secrets};
use session_testkit::client::Jar;
use session_testkit::events::EventRecorder;
use session_testkit::served::App;

const OK: u8 = 0;
const FAIL: u8 = 1;
const HANG: u8 = 2;

/// A memory store (owner index included) that counts every call by op name, then goes on,
/// fails or hangs as told.
#[derive(Clone, Default)]
struct Counted {
    inner: MemoryStore,
    calls: Arc<Mutex<BTreeMap<&'static str, u64>>>,
    mode: Arc<AtomicU8>,
}

impl Counted {
    async fn pass(&self, op: &'static str) -> Result<(), StoreError> {
        *self.calls.lock().unwrap().entry(op).or_default() += 1;
        match self.mode.load(Ordering::SeqCst) {
            FAIL => Err(StoreError::Unavailable("refused".into())),
            HANG => {
                tokio::time::sleep(Duration::from_secs(3600)).await;
                Ok(())
            }
            _ => Ok(()),
        }
    }

    fn calls(&self) -> BTreeMap<&'static str, u64> {
        self.calls.lock().unwrap().clone()
    }
}

impl Store for Counted {
    fn system(&self) -> &'static str {
        self.inner.system()
    }
    fn merges_deltas(&self) -> bool {
        self.inner.merges_deltas()
    }
    fn owner_index(&self) -> Option<&dyn OwnerIndex> {
        Some(self)
    }
    async fn create(&self, k: &StoreKey, r: &Record, ttl: Duration) -> Result<Created, StoreError> {
        self.pass("create").await?;
        self.inner.create(k, r, ttl).await
    }
    async fn load(&self, k: &StoreKey) -> Result<Loaded, StoreError> {
        self.pass("load").await?;
        self.inner.load(k).await
    }
    async fn save(
        &self,
        k: &StoreKey,
        c: Change<'_>,
        ttl: Duration,
    ) -> Result<Updated, StoreError> {
        self.pass("save").await?;
        self.inner.save(k, c, ttl).await
    }
    async fn destroy(&self, k: &StoreKey) -> Result<Destroyed, StoreError> {
        self.pass("destroy").await?;
        self.inner.destroy(k).await
    }
    async fn supersede(
        &self,
        k: &StoreKey,
        next: &StoreKey,
        ttl: Duration,
    ) -> Result<Supersede, StoreError> {
        self.pass("supersede").await?;
        self.inner.supersede(k, next, ttl).await
    }
    async fn touch(&self, k: &StoreKey, m: Meta, ttl: Duration) -> Result<Updated, StoreError> {
        self.pass("touch").await?;
        self.inner.touch(k, m, ttl).await
    }
    async fn scan(&self, cursor: Option<&str>, count: usize) -> Result<KeyScan, StoreError> {
        self.pass("scan").await?;
        self.inner.scan(cursor, count).await
    }
}

impl OwnerIndex for Counted {
    fn index<'a>(
        &'a self,
        owner: &'a str,
        entry: &'a IndexEntry,
        until: u64,
        now: u64,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            self.pass("index").await?;
            OwnerIndex::index(&self.inner, owner, entry, until, now).await
        })
    }
    fn unindex<'a>(
        &'a self,
        owner: &'a str,
        handles: &'a [Handle],
        now: u64,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            self.pass("unindex").await?;
            OwnerIndex::unindex(&self.inner, owner, handles, now).await
        })
    }
    fn entries<'a>(
        &'a self,
        owner: &'a str,
        now: u64,
    ) -> BoxFuture<'a, Result<Vec<Indexed>, StoreError>> {
        Box::pin(async move {
            self.pass("entries").await?;
            OwnerIndex::entries(&self.inner, owner, now).await
        })
    }
    fn admits(&self) -> bool {
        OwnerIndex::admits(&self.inner)
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
            self.pass("admit").await?;
            OwnerIndex::admit(&self.inner, owner, entry, until, now, how).await
        })
    }
}

/// What the recorder holds, added up over snapshots (a snapshot takes the samples and counts
/// it returns).
#[derive(Default)]
struct Seen {
    /// Store latency samples by (op, outcome).
    samples: BTreeMap<(String, String), u64>,
    /// Counters by name and label values.
    counters: BTreeMap<(String, Vec<String>), u64>,
    /// Every metric's name and labels, one line each.
    labels: String,
}

impl Seen {
    fn take(&mut self, metrics: &Snapshotter) {
        self.labels.clear();
        for (key, _, _, value) in metrics.snapshot().into_vec() {
            let key = key.key();
            let label = |name: &str| {
                key.labels()
                    .find(|l| l.key() == name)
                    .map(|l| l.value().to_owned())
                    .unwrap_or_default()
            };
            self.labels.push_str(key.name());
            for l in key.labels() {
                self.labels.push_str(&format!(" {}={}", l.key(), l.value()));
            }
            self.labels.push('\n');
            match value {
                DebugValue::Histogram(v) if key.name() == STORE_DURATION => {
                    assert_eq!(label("store"), "memory");
                    *self
                        .samples
                        .entry((label("op"), label("outcome")))
                        .or_default() += v.len() as u64;
                }
                DebugValue::Counter(n) => {
                    let values = key.labels().map(|l| l.value().to_owned()).collect();
                    *self
                        .counters
                        .entry((key.name().to_owned(), values))
                        .or_default() += n;
                }
                _ => {}
            }
        }
    }

    /// Samples by op, every outcome together.
    fn by_op(&self) -> BTreeMap<&str, u64> {
        let mut out = BTreeMap::new();
        for ((op, _), n) in &self.samples {
            *out.entry(op.as_str()).or_default() += n;
        }
        // The layer registers every operation's histograms when it is built: an operation
        // never called has an empty one.
        out.retain(|_, n| *n > 0);
        out
    }

    fn counter(&self, name: &str, label: &str) -> u64 {
        self.counters
            .get(&(name.to_owned(), vec![label.to_owned()]))
            .copied()
            .unwrap_or(0)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_latency_samples_match_the_store_calls_made() {
    let recorder = DebuggingRecorder::new();
    let metrics = recorder.snapshotter();
    recorder.install().unwrap();

    let store = Counted::default();
    let rec = EventRecorder::new();
    let config = Config::builder()
        .key(KEY1.to_vec())
        .rolling(true)
        .hooks(rec.hooks())
        .build()
        .unwrap();
    let layer = SessionLayer::store(config.clone(), store.clone())
        .store_timeout(Duration::from_millis(200))
        .max_sessions_per_owner(SessionLimit::new(3, OverLimit::EndOldest).unwrap())
        .build()
        .unwrap();
    let app = App::serve(layer).await;
    let secrets = Secrets::default();
    let mut answered_503 = 0;
    let mut get = async |path: &str, jar: &mut Jar| {
        let r = app.get(path, jar).await;
        secrets.note(&r);
        jar.apply(&r);
        answered_503 += u64::from(r.status == 503);
        r.status
    };

    // Visits (create, load and save, load and touch), logins from them under a limit of 3
    // (admit, create, supersede; the oldest ended), a listing and a revoke of the others
    // (entries, destroy, unindex), a logout.
    let mut jars = Vec::new();
    for _ in 0..10 {
        let mut jar = Jar::default();
        for path in ["/", "/", "/read"] {
            assert_eq!(get(path, &mut jar).await, 200);
        }
        jars.push(jar);
    }
    for jar in jars.iter_mut().take(5) {
        assert_eq!(get("/login?owner=ada", jar).await, 200);
    }
    // The first two logins were ended by the limit; the last is live.
    assert_eq!(get("/status", &mut jars[0]).await, 200);
    assert_eq!(get("/owners/ada/sessions", &mut jars[4]).await, 200);
    assert_eq!(get("/revoke-others", &mut jars[4]).await, 200);
    assert_eq!(get("/logout", &mut jars[4]).await, 200);
    // A store that fails, then one that hangs past the layer's time limit.
    store.mode.store(FAIL, Ordering::SeqCst);
    assert_eq!(get("/read", &mut jars[6].clone()).await, 503);
    store.mode.store(HANG, Ordering::SeqCst);
    assert_eq!(get("/read", &mut jars[7].clone()).await, 503);
    store.mode.store(OK, Ordering::SeqCst);
    assert_eq!(get("/read", &mut jars[8]).await, 200);

    // Background calls (the unindexing after a login) may still be on their way.
    let mut seen = Seen::default();
    let start = Instant::now();
    loop {
        seen.take(&metrics);
        let calls = store.calls();
        let samples = seen.by_op();
        if calls.iter().all(|(op, n)| samples.get(op) == Some(n)) && calls.len() == samples.len() {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "latency samples {samples:?} != store calls {calls:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let calls = store.calls();
    for op in [
        "create",
        "load",
        "save",
        "touch",
        "supersede",
        "destroy",
        "admit",
        "entries",
        "unindex",
    ] {
        assert!(
            calls.get(op).copied().unwrap_or(0) > 0,
            "no {op}: {calls:?}"
        );
    }
    let outcome = |op: &str, outcome: &str| {
        seen.samples
            .get(&(op.to_owned(), outcome.to_owned()))
            .copied()
            .unwrap_or(0)
    };
    assert_eq!(outcome("load", "error"), 1, "{:?}", seen.samples);
    assert_eq!(outcome("load", "timeout"), 1, "{:?}", seen.samples);

    // The event counter agrees with a subscriber; the 503s are counted.
    let mut by_name: BTreeMap<&str, u64> = BTreeMap::new();
    for e in rec.events() {
        *by_name.entry(e.kind.name()).or_default() += 1;
    }
    for name in session_core::EventKind::NAMES {
        assert_eq!(
            seen.counter(EVENTS, name),
            by_name.get(name).copied().unwrap_or(0),
            "session_events_total{{event={name}}}"
        );
    }
    assert_eq!(answered_503, 2);
    assert_eq!(seen.counter(ANSWERS, "503"), answered_503);

    // No label holds a key, a cookie value, an id or a store key.
    for v in secrets.values() {
        if let Some(id) = config.ids().parse(&v) {
            secrets.add(config.key_derivation().derive(&id).as_str());
        }
    }
    seen.take(&metrics);
    assert!(seen.labels.contains(STORE_DURATION));
    secrets.check_in("a metric", &seen.labels);
}
