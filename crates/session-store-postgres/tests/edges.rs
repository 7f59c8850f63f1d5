//! Edges an outside review found: app servers migrating at once, the size limit measured alike
//! by a create and a save (quote-heavy values), keys holding a NUL. Needs `--features
//! postgres-tests` and `DATABASE_URL` (`cargo xtask test-postgres` / `cargo xtask ci`).
#![cfg(feature = "postgres-tests")]
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod support;

use std::time::Duration;

use serde_json::json;
use session_core::store::testing::set;
use session_core::store::{Change, Created, Delta, Loaded, Meta, Record, Store, StoreKey, Updated};
use session_core::{Data, MaxAge};
use session_store_postgres::PostgresStore;
use support::{unique_table, url};

const TTL: Duration = Duration::from_secs(600);

fn meta() -> Meta {
    Meta {
        expire: None,
        max_age: MaxAge::Session,
        created: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn app_servers_migrating_at_once_all_succeed() {
    let mut failures = 0;
    for _ in 0..15 {
        let table = unique_table("migrate");
        let stores: Vec<PostgresStore> = (0..4)
            .map(|_| PostgresStore::builder(url()).table(&table).build().unwrap())
            .collect();
        let runs = stores.iter().map(PostgresStore::migrate);
        for r in futures_util::future::join_all(runs).await {
            if r.is_err() {
                failures += 1;
            }
        }
    }
    assert_eq!(failures, 0, "concurrent migrations failed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_that_fits_at_create_still_takes_small_saves() {
    let store = PostgresStore::builder(url())
        .table(unique_table("limit"))
        .max_record_bytes(4096)
        .build()
        .unwrap();
    store.migrate().await.unwrap();
    let key = StoreKey::from_raw("sess:quotes");
    // Quotes and backslashes: escaped once in the value's JSON text, counted once.
    let data = json!({"q": "\"\\".repeat(1000)})
        .as_object()
        .cloned()
        .unwrap();
    let record = Record { data, meta: meta() };
    assert_eq!(
        store.create(&key, &record, TTL).await.unwrap(),
        Created::Inserted
    );
    let delta = set(&[("n", json!(1))]);
    let change = Change {
        delta: &delta,
        data: &Data::new(),
        meta: meta(),
    };
    assert_eq!(
        store.save(&key, change, TTL).await.unwrap(),
        Updated::Updated
    );
    // Growing past the limit is refused, and changes nothing.
    let big = set(&[("big", json!("x".repeat(200)))]);
    let mut refused = 0;
    for i in 0..20 {
        let d = Delta {
            set: vec![(format!("k{i}"), big.set[0].1.clone())],
            ..Delta::default()
        };
        let c = Change {
            delta: &d,
            data: &Data::new(),
            meta: meta(),
        };
        if store.save(&key, c, TTL).await.is_err() {
            refused += 1;
        }
    }
    assert!(refused > 0, "the limit holds");
    let Loaded::Live(r) = store.load(&key).await.unwrap() else {
        panic!("the record is still there");
    };
    let size: usize = r
        .data
        .iter()
        .map(|(k, v)| k.len() + serde_json::to_string(v).unwrap().len())
        .sum();
    assert!(size <= 4096, "{size}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_holding_a_nul_round_trip() {
    let store = PostgresStore::builder(url())
        .table(unique_table("nul"))
        .build()
        .unwrap();
    store.migrate().await.unwrap();
    let key = StoreKey::from_raw("sess:nul");
    let data = json!({"a\u{0}b": 1, "\u{1}x": 2, "plain": 3})
        .as_object()
        .cloned()
        .unwrap();
    let record = Record {
        data: data.clone(),
        meta: meta(),
    };
    store.create(&key, &record, TTL).await.unwrap();
    let delta = Delta {
        set: vec![("c\u{0}d".into(), json!(4))],
        removed: vec!["a\u{0}b".into()],
        replace: false,
    };
    let change = Change {
        delta: &delta,
        data: &Data::new(),
        meta: meta(),
    };
    assert_eq!(
        store.save(&key, change, TTL).await.unwrap(),
        Updated::Updated
    );
    let Loaded::Live(r) = store.load(&key).await.unwrap() else {
        panic!()
    };
    let want = json!({"\u{1}x": 2, "plain": 3, "c\u{0}d": 4});
    assert_eq!(serde_json::Value::Object(r.data), want);
}

/// A session row another program gave an infinite expiry doesn't break its owner's listing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_infinite_expiry_does_not_break_the_listing() {
    use session_core::store::{IndexEntry, OwnerIndex};
    let store = PostgresStore::builder(url())
        .table(unique_table("inf"))
        .build()
        .unwrap();
    store.migrate().await.unwrap();
    let key = StoreKey::from_raw("sess:inf");
    store
        .create(
            &key,
            &Record {
                data: Data::new(),
                meta: meta(),
            },
            TTL,
        )
        .await
        .unwrap();
    let client = support::client(&url()).await;
    client
        .execute(
            &format!(
                "UPDATE \"{}\" SET expires_at = 'infinity' WHERE key = $1",
                store.table()
            ),
            &[&key.as_str()],
        )
        .await
        .unwrap();
    let now = session_testkit::now_ms();
    let entry = IndexEntry::new(key.clone(), now, now, None);
    store.index("ada", &entry, now + 60_000, now).await.unwrap();
    let listed = store.entries("ada", now).await;
    assert!(listed.is_ok(), "{listed:?}");
}
