//! The shared conformance suite against a real redis-server, in both record formats.
#![cfg(feature = "redis-tests")]
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod support;

use std::time::Duration;

use session_core::store::IndexEntry;
use session_core::store::StoreKey;
use session_core::store::testing::{run_all, run_owner_admission, run_owner_index};
use session_store_redis::{Format, RedisStore};
use support::Real;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_v1() {
    let store = RedisStore::builder(support::shared_url())
        .prefix(support::unique_prefix("conf_v1"))
        .build()
        .await
        .unwrap();
    run_all(&Real::redis(store)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn owner_index_conformance() {
    let store = RedisStore::builder(support::shared_url())
        .prefix(support::unique_prefix("conf_owner"))
        .build()
        .await
        .unwrap();
    run_owner_index(&Real::redis(store)).await;
}

/// The session limit's admissions: one script decides and writes on the owner's slot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn owner_admission_conformance() {
    let store = RedisStore::builder(support::shared_url())
        .prefix(support::unique_prefix("conf_admit"))
        .build()
        .await
        .unwrap();
    run_owner_admission(&Real::redis(store)).await;
}

/// A store under a fresh prefix, and the time now (ms since the epoch).
async fn owner_store(name: &str) -> (RedisStore, u64) {
    let store = RedisStore::builder(support::shared_url())
        .prefix(support::unique_prefix(name))
        .build()
        .await
        .unwrap();
    let now = session_testkit::now_ms();
    (store, now)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_owner_index_expires_with_its_latest_entry() {
    use session_core::store::OwnerIndex;
    let (store, now) = owner_store("owner_ttl").await;
    let entry = |k: &str| IndexEntry::new(StoreKey::from_raw(k), now, now, None);
    store.index("u", &entry("a"), now + 400, now).await.unwrap();
    store
        .index("u", &entry("b"), now + 90_000, now)
        .await
        .unwrap();
    let client = redis::Client::open(support::shared_url()).unwrap();
    let mut c = client.get_multiplexed_async_connection().await.unwrap();
    let prefix = store.redis_key(&StoreKey::from_raw(""));
    let set = format!("{prefix}owner:{{75}}");
    let pttl = |k: String| {
        let mut c = c.clone();
        async move {
            redis::cmd("PTTL")
                .arg(k)
                .query_async::<i64>(&mut c)
                .await
                .unwrap()
        }
    };
    for k in [set.clone(), format!("{set}:e")] {
        let t = pttl(k).await;
        assert!(
            (85_000..=90_000).contains(&t),
            "index TTL {t} ms must follow its latest entry"
        );
    }
    // Lapsed entries go with the next write; the last removal deletes the index.
    store
        .unindex("u", &[entry("b").handle], now + 1_000)
        .await
        .unwrap();
    let left: i64 = redis::cmd("EXISTS")
        .arg(&set)
        .arg(format!("{set}:e"))
        .query_async(&mut c)
        .await
        .unwrap();
    assert_eq!(left, 0, "an index with no entry left must be gone");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_koa_format() {
    let store = RedisStore::builder(support::shared_url())
        .prefix(support::unique_prefix("conf_koa"))
        .format(Format::Koa)
        .build()
        .await
        .unwrap();
    run_all(&Real::redis(store)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_key_has_a_ttl_in_redis() {
    use session_core::store::{Created, Meta, Record, Store};
    use session_core::{Data, MaxAge};
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
    use session_core::store::{Change, Created, Delta, Meta, Record, Store, Updated};
    use session_core::{Data, MaxAge};
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

/// `_n` (the V1 hash's byte count) changed by another program: not a number, negative, a
/// fraction, empty or far too high. A save recounts from the fields instead of failing every
/// time or refusing every write, and a save that really outgrows the limit is still refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tampered_size_counter_is_recounted() {
    use serde_json::json;
    use session_core::store::{Change, Created, Delta, Meta, Record, Store, StoreError};
    use session_core::{Data, MaxAge};
    let (url, prefix) = (support::shared_url(), support::unique_prefix("tampered_n"));
    let limit = 4096;
    let store = RedisStore::builder(&url)
        .prefix(&prefix)
        .max_record_bytes(limit)
        .build()
        .await
        .unwrap();
    let meta = Meta {
        expire: None,
        max_age: MaxAge::Session,
        created: None,
    };
    let ttl = Duration::from_secs(60);
    let set = |k: &str, bytes: usize| Delta {
        replace: false,
        set: [(k.to_owned(), json!("x".repeat(bytes)))]
            .into_iter()
            .collect(),
        removed: Vec::new(),
    };
    let tampered = ["abc", "", "-100000", "1.5", "99999999999", "1e400"];
    let (mut failed, mut wrong_count, mut let_through) = (0, 0, 0);
    for i in 0..120 {
        let bad = tampered[i % tampered.len()];
        let key = StoreKey::from_raw(format!("sess:n{i}"));
        let redis_key = format!("{prefix}sess:n{i}");
        let mut data = Data::new();
        data.insert("a".into(), json!("x".repeat(100)));
        let rec = Record {
            data: data.clone(),
            meta,
        };
        assert_eq!(
            store.create(&key, &rec, ttl).await.unwrap(),
            Created::Inserted
        );
        support::cmd(&url, &["HSET", &redis_key, "_n", bad]).await;
        let delta = set("b", 1000);
        data.insert("b".into(), json!("x".repeat(1000)));
        let change = Change {
            delta: &delta,
            data: &data,
            meta,
        };
        failed += usize::from(store.save(&key, change, ttl).await.is_err());
        let redis::Value::BulkString(n) = support::cmd(&url, &["HGET", &redis_key, "_n"]).await
        else {
            panic!("no _n")
        };
        // `d:a` + its JSON string, `d:b` + its JSON string.
        let truth = (3 + 102) + (3 + 1002);
        wrong_count += usize::from(String::from_utf8(n).unwrap() != truth.to_string());
        // Within the limit alone, over it with what the record holds.
        let delta = set("c", 3000);
        let change = Change {
            delta: &delta,
            data: &data,
            meta,
        };
        let refused = matches!(
            store.save(&key, change, ttl).await,
            Err(StoreError::TooLarge { .. })
        );
        let_through += usize::from(!refused);
    }
    eprintln!(
        "tampered _n: 120 saves failed {failed}, counts left wrong {wrong_count}, oversized saves let through {let_through}"
    );
    assert_eq!((failed, wrong_count, let_through), (0, 0, 0));
}

/// A foreign value at an owner's index key (another program, another type) and a foreign
/// score (+inf) neither fail every login of that owner nor drop the index.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_foreign_owner_index_is_replaced_not_a_failure_loop() {
    use session_core::store::OwnerIndex;
    let (store, now) = owner_store("owner_foreign").await;
    let entry = |k: &str| IndexEntry::new(StoreKey::from_raw(k), now, now, None);
    let client = redis::Client::open(support::shared_url()).unwrap();
    let mut c = client.get_multiplexed_async_connection().await.unwrap();
    let prefix = store.redis_key(&StoreKey::from_raw(""));
    let set = format!("{prefix}owner:{{616461}}");
    let _: () = redis::cmd("SET")
        .arg(&set)
        .arg("x")
        .query_async(&mut c)
        .await
        .unwrap();
    for _ in 0..3 {
        store
            .index("ada", &entry("a"), now + 60_000, now)
            .await
            .unwrap();
    }
    assert_eq!(store.entries("ada", now).await.unwrap().len(), 1);
    let _: () = redis::cmd("ZADD")
        .arg(&set)
        .arg("+inf")
        .arg("junk")
        .query_async(&mut c)
        .await
        .unwrap();
    store
        .index("ada", &entry("b"), now + 60_000, now)
        .await
        .unwrap();
    let ttl: i64 = redis::cmd("PTTL")
        .arg(&set)
        .query_async(&mut c)
        .await
        .unwrap();
    assert!(ttl > 0, "the index must keep a TTL, not be deleted: {ttl}");
    assert_eq!(
        store.entries("ada", now).await.unwrap().len(),
        2,
        "both real entries stay listed"
    );
}

/// Over the limit with `EndOldest`, an entry the store can't read (JSON that is no entry, or
/// none at all) sorts first and goes first, unnamed; ties of the bind time go by handle, in
/// byte order, as `decide` orders them; and a foreign value at the index is replaced.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admission_ends_corrupt_entries_first_and_ties_by_handle() {
    use session_core::store::{Admit, Admitted, Decision, OwnerIndex, decide};
    use session_core::{OverLimit, SessionLimit};
    let (store, now) = owner_store("owner_admit").await;
    let entry = |k: &str, since| IndexEntry::new(StoreKey::from_raw(k), since, since, None);
    let end_oldest = |max| Admit::Limit {
        limit: SessionLimit::new(max, OverLimit::EndOldest).unwrap(),
        replaces: None,
        lapsed: &[],
        decide: true,
    };
    let client = redis::Client::open(support::shared_url()).unwrap();
    let mut c = client.get_multiplexed_async_connection().await.unwrap();
    let prefix = store.redis_key(&StoreKey::from_raw(""));
    // "bea", hex-encoded in the hash tag.
    let set = format!("{prefix}owner:{{626561}}");

    // Two good entries, then two corrupt ones: bad JSON, and a member without JSON.
    let (a, b) = (entry("a", now), entry("b", now + 1));
    for e in [&a, &b] {
        store.index("bea", e, now + 60_000, now).await.unwrap();
    }
    for junk in ["junk1", "junk2"] {
        let _: () = redis::cmd("ZADD")
            .arg(&set)
            .arg(now + 60_000)
            .arg(junk)
            .query_async(&mut c)
            .await
            .unwrap();
    }
    let _: () = redis::cmd("HSET")
        .arg(format!("{set}:e"))
        .arg("junk1")
        .arg("{not json")
        .query_async(&mut c)
        .await
        .unwrap();
    let new = entry("c", now + 2);
    let got = store
        .admit("bea", &new, now + 60_000, now, end_oldest(3))
        .await
        .unwrap();
    assert_eq!(
        got,
        Admitted::Ended(Vec::new()),
        "the corrupt two go, unnamed"
    );
    let members: Vec<String> = redis::cmd("ZRANGE")
        .arg(&set)
        .arg(0)
        .arg(-1)
        .query_async(&mut c)
        .await
        .unwrap();
    assert_eq!(members.len(), 3, "{members:?}");
    assert!(!members.iter().any(|m| m.starts_with("junk")));
    // Then the good one bound earliest.
    let got = store
        .admit(
            "bea",
            &entry("d", now + 3),
            now + 60_000,
            now,
            end_oldest(3),
        )
        .await
        .unwrap();
    assert_eq!(got, Admitted::Ended(vec![a]));

    // Ties of the bind time: the same choice as the reference decision.
    let tied: Vec<IndexEntry> = (0..8).map(|i| entry(&format!("t{i}"), now)).collect();
    for e in &tied {
        store.index("tie", e, now + 60_000, now).await.unwrap();
    }
    let new = entry("t-new", now);
    let Decision::Replace(mut want) = decide(&tied, &new, end_oldest(3)) else {
        panic!("the reference must replace");
    };
    let Admitted::Ended(mut got) = store
        .admit("tie", &new, now + 60_000, now, end_oldest(3))
        .await
        .unwrap()
    else {
        panic!("the store must end");
    };
    want.sort_by(|x, y| x.handle.cmp(&y.handle));
    got.sort_by(|x, y| x.handle.cmp(&y.handle));
    assert_eq!(got, want);

    // A foreign value at the index: replaced, and the admission goes on.
    let _: () = redis::cmd("SET")
        .arg(&set)
        .arg("x")
        .query_async(&mut c)
        .await
        .unwrap();
    let got = store
        .admit("bea", &entry("e", now), now + 60_000, now, end_oldest(3))
        .await
        .unwrap();
    assert_eq!(got, Admitted::Filed);
    assert_eq!(store.entries("bea", now).await.unwrap().len(), 1);
}
