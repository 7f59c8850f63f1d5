//! An owner index holding garbage another program wrote (members without details, details that
//! are not JSON, a handle that is not its key's, -inf scores, a 5 MB value): only real entries are
//! listed and both keys keep a TTL. Needs `--features redis-tests` and `REDIS_URL`.
#![cfg(feature = "redis-tests")]
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod support;

use session_core::Handle;

use session_core::MaxAge;
use session_core::store::{IndexEntry, OwnerIndex};
use session_core::store::{Meta, Record, Store, StoreKey};
use session_store_redis::RedisStore;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_members_values_and_scores() {
    let store = RedisStore::builder(support::shared_url())
        .prefix(support::unique_prefix("rv_garbage"))
        .build()
        .await
        .unwrap();
    let now = session_testkit::now_ms();
    let key = StoreKey::from_raw("real");
    let rec = Record {
        data: serde_json::Map::new(),
        meta: Meta {
            expire: None,
            max_age: MaxAge::Session,
            created: None,
        },
    };
    store
        .create(&key, &rec, std::time::Duration::from_secs(600))
        .await
        .unwrap();
    let entry = IndexEntry::new(key.clone(), now, now, None);
    store
        .index("ada", &entry, now + 600_000, now)
        .await
        .unwrap();
    let client = redis::Client::open(support::shared_url()).unwrap();
    let mut c = client.get_multiplexed_async_connection().await.unwrap();
    let prefix = store.redis_key(&StoreKey::from_raw(""));
    let set = format!("{prefix}owner:{{616461}}");
    let hash = format!("{set}:e");
    let other = StoreKey::from_raw("other");
    let big = "x".repeat(5_000_000);
    let cmds: Vec<redis::Cmd> = vec![
        redis::cmd("ZADD")
            .arg(&set)
            .arg(now + 600_000)
            .arg("no-hash-entry")
            .clone(),
        redis::cmd("ZADD")
            .arg(&set)
            .arg(now + 600_000)
            .arg("badjson")
            .clone(),
        redis::cmd("HSET")
            .arg(&hash)
            .arg("badjson")
            .arg("{not json")
            .clone(),
        redis::cmd("ZADD")
            .arg(&set)
            .arg(now + 600_000)
            .arg(Handle::of(&other).as_str())
            .clone(),
        redis::cmd("HSET")
            .arg(&hash)
            .arg(Handle::of(&other).as_str())
            .arg(r#"{"k":"real","c":1,"s":1}"#)
            .clone(),
        redis::cmd("ZADD")
            .arg(&set)
            .arg("-inf")
            .arg("minus-inf")
            .clone(),
        redis::cmd("ZADD")
            .arg(&set)
            .arg(now + 600_000)
            .arg("big")
            .clone(),
        redis::cmd("HSET").arg(&hash).arg("big").arg(&big).clone(),
        redis::cmd("HSET")
            .arg(&hash)
            .arg("only-in-hash")
            .arg("{}")
            .clone(),
    ];
    for cmd in cmds {
        let _: redis::Value = cmd.query_async(&mut c).await.unwrap();
    }
    let got = store.entries("ada", now).await.unwrap();
    assert_eq!(got.len(), 1, "only the real entry: {got:?}");
    assert!(got[0].record_ttl.is_some());
    // Writes still work and keep a TTL on both keys.
    let k2 = StoreKey::from_raw("second");
    let e2 = IndexEntry::new(k2, now, now, None);
    store.index("ada", &e2, now + 600_000, now).await.unwrap();
    store
        .unindex("ada", std::slice::from_ref(&e2.handle), now)
        .await
        .unwrap();
    for k in [&set, &hash] {
        let ttl: i64 = redis::cmd("PTTL").arg(k).query_async(&mut c).await.unwrap();
        assert!(ttl > 0, "{k}: {ttl}");
    }
    assert_eq!(store.entries("ada", now).await.unwrap().len(), 1);
}
