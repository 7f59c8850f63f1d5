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
