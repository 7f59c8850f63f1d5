//! The shared conformance suite against a real redis-server, in both record formats.
#![cfg(feature = "redis-tests")]
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod support;

use std::time::Duration;

use session_core::StoreKey;
use session_core::testing::run_all;
use session_store_redis::{Format, RedisStore};
use support::Real;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_v1() {
    let store = RedisStore::builder(support::shared_url())
        .prefix(support::unique_prefix("conf_v1"))
        .build()
        .await
        .unwrap();
    run_all(&Real(store)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_koa_format() {
    let store = RedisStore::builder(support::shared_url())
        .prefix(support::unique_prefix("conf_koa"))
        .format(Format::Koa)
        .build()
        .await
        .unwrap();
    run_all(&Real(store)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_key_has_a_ttl_in_redis() {
    use session_core::{Created, Data, MaxAge, Meta, Record, Store};
    let prefix = support::unique_prefix("pttl");
    let url = support::shared_url();
    let store = RedisStore::builder(&url)
        .prefix(&prefix)
        .build()
        .await
        .unwrap();
    let key = StoreKey::from_raw("sess:x");
    let rec = Record {
        data: Data::new(),
        meta: Meta {
            expire: None,
            max_age: MaxAge::Session,
            created: None,
        },
    };
    assert_eq!(
        store
            .create(&key, &rec, Duration::from_secs(86_410))
            .await
            .unwrap(),
        Created::Inserted
    );
    let redis::Value::Int(pttl) = support::cmd(&url, &["PTTL", &format!("{prefix}sess:x")]).await
    else {
        panic!()
    };
    assert!((86_400_000..=86_410_000).contains(&pttl), "PTTL {pttl}");
}

/// Thousands of keys changed in one save: the script passes fields to HSET / HDEL in chunks,
/// because Lua's `unpack` can't spread that many arguments at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_save_with_thousands_of_changed_keys() {
    use serde_json::json;
    use session_core::{Change, Created, Data, Delta, MaxAge, Meta, Record, Store, Updated};
    let store = RedisStore::builder(support::shared_url())
        .prefix(support::unique_prefix("bigdelta"))
        .max_record_bytes(1 << 20)
        .build()
        .await
        .unwrap();
    let key = StoreKey::from_raw("sess:big");
    let meta = Meta {
        expire: None,
        max_age: MaxAge::Session,
        created: None,
    };
    let mut data = Data::new();
    for i in 0..3000 {
        data.insert(format!("old{i}"), json!(i));
    }
    let rec = Record {
        data: data.clone(),
        meta,
    };
    let ttl = Duration::from_secs(60);
    assert_eq!(
        store.create(&key, &rec, ttl).await.unwrap(),
        Created::Inserted
    );
    let delta = Delta {
        replace: false,
        set: (0..2500).map(|i| (format!("new{i}"), json!(i))).collect(),
        removed: (0..1500).map(|i| format!("old{i}")).collect(),
    };
    for (k, v) in &delta.set {
        data.insert(k.clone(), v.clone());
    }
    for k in &delta.removed {
        data.shift_remove(k);
    }
    let change = Change {
        delta: &delta,
        data: &data,
        meta,
    };
    assert_eq!(
        store.save(&key, change, ttl).await.unwrap(),
        Updated::Updated
    );
    let loaded = store.load(&key).await.unwrap().into_record().unwrap().data;
    assert_eq!(loaded.len(), 1500 + 2500);
    assert_eq!(loaded, data);
}
