//! The conformance suite, expiry, capacity and eviction, the sweeper, and concurrency.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::Arc;
use std::time::Duration;

use proptest::prelude::*;
use serde_json::{Value, json};
use session_core::store::{Change, Created, Delta, Store, StoreKey, Updated};
use session_core::store::{
    testing::Harness, testing::run_all, testing::run_owner_admission, testing::run_owner_index,
    testing::set,
};
use session_core::{Data, ManualClock};
use session_store_memory::MemoryStore;
use session_testkit::conformance::record;

struct Mem {
    store: MemoryStore,
    clock: ManualClock,
}

impl Mem {
    fn new() -> Self {
        let clock = ManualClock::new(1_700_000_000_000);
        Self {
            store: MemoryStore::builder()
                .clock(Arc::new(clock.clone()))
                .build(),
            clock,
        }
    }
}

impl Harness for Mem {
    type S = MemoryStore;
    fn store(&self) -> &MemoryStore {
        &self.store
    }
    async fn advance(&self, by: Duration) {
        self.clock.advance(by);
    }
    async fn ttl(&self, key: &StoreKey) -> Option<Duration> {
        self.store.ttl(key)
    }
    fn record_limit(&self) -> usize {
        session_store_memory::DEFAULT_MAX_RECORD_BYTES
    }
}

#[tokio::test]
async fn conformance() {
    run_all(&Mem::new()).await;
}

#[tokio::test]
async fn owner_index_conformance() {
    run_owner_index(&Mem::new()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn owner_admission_conformance() {
    run_owner_admission(&Mem::new()).await;
}

#[tokio::test]
async fn conformance_with_one_shard() {
    let clock = ManualClock::new(1);
    let h = Mem {
        store: MemoryStore::builder()
            .shards(1)
            .clock(Arc::new(clock.clone()))
            .build(),
        clock,
    };
    run_all(&h).await;
}

fn k(i: usize) -> StoreKey {
    StoreKey::from_raw(format!("sess:{i:08}"))
}

#[tokio::test]
async fn expired_records_are_never_returned_before_any_sweep() {
    let h = Mem::new();
    h.store
        .create(&k(1), &record(json!({"a": 1})), Duration::from_secs(1))
        .await
        .unwrap();
    h.clock.advance(Duration::from_millis(999));
    assert!(h.store.load(&k(1)).await.unwrap().into_record().is_some());
    h.clock.advance(Duration::from_millis(1));
    assert_eq!(h.store.load(&k(1)).await.unwrap().into_record(), None);
    // ...and the expired record was reclaimed on that access.
    assert_eq!(h.store.len(), 0);
    assert_eq!(h.store.stats().expired, 1);
}

#[tokio::test]
async fn creates_reclaim_expired_records_without_a_sweeper() {
    let h = Mem::new();
    for i in 0..1000 {
        h.store
            .create(&k(i), &record(json!({})), Duration::from_secs(1))
            .await
            .unwrap();
    }
    h.clock.advance(Duration::from_secs(2));
    for i in 1000..3000 {
        h.store
            .create(&k(i), &record(json!({})), Duration::from_secs(3600))
            .await
            .unwrap();
    }
    // Each create reclaims a few expired records of its shard: the dead ones don't pile up.
    assert!(h.store.len() < 2000 + 500, "{} records held", h.store.len());
}

#[tokio::test]
async fn capacity_evicts_soonest_to_expire_first() {
    let clock = ManualClock::new(1_000_000);
    let store = MemoryStore::builder()
        .shards(1)
        .max_sessions(3)
        .clock(Arc::new(clock.clone()))
        .build();
    let ttl = |s| Duration::from_secs(s);
    store
        .create(&k(1), &record(json!({})), ttl(300))
        .await
        .unwrap();
    store
        .create(&k(2), &record(json!({})), ttl(100))
        .await
        .unwrap();
    store
        .create(&k(3), &record(json!({})), ttl(200))
        .await
        .unwrap();
    // k(2) is touched: it now expires last.
    store
        .touch(&k(2), record(json!({})).meta, ttl(900))
        .await
        .unwrap();
    store
        .create(&k(4), &record(json!({})), ttl(50))
        .await
        .unwrap();
    assert_eq!(store.len(), 3);
    assert!(
        store.load(&k(3)).await.unwrap().into_record().is_none(),
        "soonest to expire goes first"
    );
    for i in [1, 2, 4] {
        assert!(
            store.load(&k(i)).await.unwrap().into_record().is_some(),
            "k({i}) kept"
        );
    }
    assert_eq!(store.stats().evicted, 1);
    // Expired records are reclaimed before any live one is evicted.
    clock.advance(ttl(60));
    store
        .create(&k(5), &record(json!({})), ttl(10))
        .await
        .unwrap();
    assert_eq!(store.stats().evicted, 1);
    assert!(store.load(&k(4)).await.unwrap().into_record().is_none());
    assert!(store.load(&k(1)).await.unwrap().into_record().is_some());
}

#[tokio::test]
async fn flood_of_creates_stays_within_the_cap() {
    let store = MemoryStore::builder().shards(8).max_sessions(1000).build();
    for i in 0..20_000 {
        store
            .create(&k(i), &record(json!({"i": i})), Duration::from_secs(60))
            .await
            .unwrap();
    }
    let s = store.stats();
    assert!(s.records <= 1000, "{s:?}");
    assert!(s.evicted >= 19_000, "{s:?}");
}

#[tokio::test]
async fn byte_cap_is_enforced() {
    let store = MemoryStore::builder().shards(1).max_bytes(10_000).build();
    let big = "x".repeat(1000);
    for i in 0..100 {
        store
            .create(&k(i), &record(json!({"v": big})), Duration::from_secs(60))
            .await
            .unwrap();
        assert!(store.stats().bytes <= 10_000);
    }
    assert!(store.len() >= 5);
    // A single record bigger than the cap is refused, not stored.
    let huge = "x".repeat(20_000);
    let err = store
        .create(
            &k(999),
            &record(json!({"v": huge})),
            Duration::from_secs(60),
        )
        .await;
    assert!(matches!(
        err,
        Err(session_core::store::StoreError::TooLarge { .. })
    ));
    // Saves that grow a record are accounted too.
    let d = set(&[("w", json!(big))]);
    let last = k(99);
    let r = store.load(&last).await.unwrap().into_record().unwrap();
    store
        .save(
            &last,
            Change {
                delta: &d,
                data: &r.data,
                meta: r.meta,
            },
            Duration::from_secs(60),
        )
        .await
        .unwrap();
    assert!(store.stats().bytes > 0);
}

#[tokio::test(start_paused = true)]
async fn sweeper_reclaims_and_stops_cleanly() {
    // A manual clock for the records (with the system clock, a slow machine let later creates
    // reclaim earlier records before the sweeper ran); tokio's paused time drives the sweeper.
    let clock = ManualClock::new(1_000_000);
    let store = MemoryStore::builder()
        .clock(Arc::new(clock.clone()))
        .build();
    for i in 0..100 {
        store
            .create(&k(i), &record(json!({})), Duration::from_secs(1))
            .await
            .unwrap();
    }
    clock.advance(Duration::from_secs(2));
    let sweeper = store.start_sweeper(Duration::from_secs(10));
    // No sweep before the first interval has passed.
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(store.len(), 100);
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert_eq!(store.len(), 0);
    assert_eq!(store.stats().expired, 100);
    sweeper.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_changing_different_keys_all_land() {
    let store = MemoryStore::new();
    let key = k(1);
    store
        .create(
            &key,
            &record(json!({"base": true})),
            Duration::from_secs(60),
        )
        .await
        .unwrap();
    for round in 0..200 {
        // Two "requests" load the same state, then each changes its own key.
        let loaded = store.load(&key).await.unwrap().into_record().unwrap();
        let tasks: Vec<_> = ["a", "b"]
            .into_iter()
            .map(|name| {
                let (store, key, r) = (store.clone(), key.clone(), loaded.clone());
                tokio::spawn(async move {
                    let d = set(&[(&format!("{name}{round}"), json!(round))]);
                    let change = Change {
                        delta: &d,
                        data: &r.data,
                        meta: r.meta,
                    };
                    store.save(&key, change, Duration::from_secs(60)).await
                })
            })
            .collect();
        for t in tasks {
            assert_eq!(t.await.unwrap().unwrap(), Updated::Updated);
        }
    }
    let got = store.load(&key).await.unwrap().into_record().unwrap();
    assert_eq!(got.data.len(), 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_tasks_many_sessions() {
    let store = MemoryStore::new();
    let mut tasks = Vec::new();
    for t in 0..32 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..200 {
                let key = k(t * 1000 + i);
                assert_eq!(
                    store
                        .create(&key, &record(json!({"t": t})), Duration::from_secs(60))
                        .await
                        .unwrap(),
                    Created::Inserted
                );
                let r = store.load(&key).await.unwrap().into_record().unwrap();
                let d = set(&[("i", json!(i))]);
                store
                    .save(
                        &key,
                        Change {
                            delta: &d,
                            data: &r.data,
                            meta: r.meta,
                        },
                        Duration::from_secs(60),
                    )
                    .await
                    .unwrap();
                if i % 2 == 0 {
                    store.destroy(&key).await.unwrap();
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(store.len(), 32 * 100);
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        (-1e10f64..1e10).prop_map(Value::from),
        ".{0,8}".prop_map(Value::String),
    ];
    leaf.prop_recursive(2, 12, 3, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..3).prop_map(Value::Array),
            prop::collection::vec((".{0,4}", inner), 0..3)
                .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

proptest! {
    /// The store's raw-JSON delta application gives the same data as `Record::apply`.
    #[test]
    fn raw_delta_matches_record_apply(
        base in prop::collection::vec((".{0,5}", json_value()), 0..6),
        set in prop::collection::vec((".{0,5}", json_value()), 0..4),
        removed in prop::collection::vec(".{0,5}", 0..3),
    ) {
        raw_delta_case(base, set, removed);
    }

    /// The same for deltas large enough to be applied through the hash index, over keys that
    /// often collide with the stored ones.
    #[test]
    fn raw_delta_matches_record_apply_for_large_deltas(
        base in prop::collection::vec(("[a-f]{1,2}", json_value()), 0..40),
        set in prop::collection::vec(("[a-f]{1,2}", json_value()), 0..30),
        removed in prop::collection::vec("[a-f]{1,2}", 0..20),
    ) {
        raw_delta_case(base, set, removed);
    }
}

fn raw_delta_case(base: Vec<(String, Value)>, set: Vec<(String, Value)>, removed: Vec<String>) {
    let base: Data = base.into_iter().collect();
    let mut set_map = Data::new();
    for (k, v) in set {
        set_map.insert(k, v);
    }
    let removed: Vec<String> = removed
        .into_iter()
        .filter(|r| !set_map.contains_key(r))
        .collect();
    let delta = Delta {
        replace: false,
        set: set_map.into_iter().collect(),
        removed,
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(async {
        let store = MemoryStore::new();
        let key = k(0);
        let mut expected = record(json!({}));
        expected.data = base.clone();
        store
            .create(&key, &expected, Duration::from_secs(60))
            .await
            .unwrap();
        store
            .save(
                &key,
                Change {
                    delta: &delta,
                    data: &Data::new(),
                    meta: expected.meta,
                },
                Duration::from_secs(60),
            )
            .await
            .unwrap();
        expected.apply(&delta, &Data::new(), expected.meta);
        let got = store.load(&key).await.unwrap().into_record().unwrap();
        assert_eq!(got.data, expected.data);
        assert_eq!(
            got.data.keys().collect::<Vec<_>>(),
            expected.data.keys().collect::<Vec<_>>()
        );
    });
}
