//! Helpers of the client cache tests: stores with a cache, records with a counter `n`.
#![allow(dead_code)]

use std::time::{Duration, Instant};

use serde_json::json;
use session_core::store::{Change, Delta, Loaded, Meta, Record, Store, StoreKey, Updated};
use session_core::{Data, MaxAge};
use session_store_redis::RedisStore;

pub async fn cached(url: &str, prefix: &str) -> RedisStore {
    cached_within(url, prefix, 16 << 20).await
}

/// A store with a cache of `bound` bytes, its tracking connection up.
pub async fn cached_within(url: &str, prefix: &str, bound: usize) -> RedisStore {
    warm(
        RedisStore::builder(url)
            .prefix(prefix)
            .client_cache(bound)
            .build()
            .await
            .unwrap(),
    )
    .await
}

/// `store` once its tracking connection is up (it opens in the background on first use; until
/// then loads go through the pool).
pub async fn warm(store: RedisStore) -> RedisStore {
    let t = Instant::now();
    while !store.client_cache_stats().unwrap().tracking {
        store.load(&key("warm-up")).await.unwrap();
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "no tracking connection"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    store
}

pub fn meta() -> Meta {
    Meta {
        expire: None,
        max_age: MaxAge::Session,
        created: None,
    }
}

pub fn record(n: u64) -> Record {
    let mut data = Data::new();
    data.insert("n".into(), json!(n));
    Record { data, meta: meta() }
}

pub fn key(name: &str) -> StoreKey {
    StoreKey::from_raw(format!("sess:{name}"))
}

/// The `n` of the record under `k`, `None` when there is none.
pub async fn n_of(store: &RedisStore, k: &StoreKey) -> Option<u64> {
    match store.load(k).await.unwrap() {
        Loaded::Live(r) => r.data.get("n").and_then(serde_json::Value::as_u64),
        _ => None,
    }
}

pub async fn set_n(store: &RedisStore, k: &StoreKey, n: u64) {
    let mut delta = Delta::default();
    delta.set.push(("n".into(), json!(n)));
    let data = record(n).data;
    let change = Change {
        data: &data,
        delta: &delta,
        meta: meta(),
    };
    let got = store
        .save(k, change, Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(got, Updated::Updated);
}

/// Two stores with caches on the shared server (two app servers), and a key holding
/// `record(0)`.
pub async fn two_servers(name: &str) -> (RedisStore, RedisStore, StoreKey) {
    let url = super::shared_url();
    let prefix = super::unique_prefix(name);
    let (a, b) = (cached(&url, &prefix).await, cached(&url, &prefix).await);
    let k = key(name);
    b.create(&k, &record(0), Duration::from_secs(60))
        .await
        .unwrap();
    (a, b, k)
}

pub fn percentile(sorted: &[Duration], p: usize) -> Duration {
    sorted[(sorted.len() * p / 100).min(sorted.len() - 1)]
}

pub async fn n_of_or_none(store: &RedisStore, k: &StoreKey) -> Option<u64> {
    match store.load(k).await {
        Ok(Loaded::Live(r)) => r.data.get("n").and_then(serde_json::Value::as_u64),
        _ => None,
    }
}

/// Kills every tracking connection (flag `t` in `CLIENT LIST`) on the server at `url`.
pub async fn kill_tracking(url: &str) -> u64 {
    let Ok(client) = redis::Client::open(url) else {
        return 0;
    };
    let Ok(mut c) = client.get_multiplexed_async_connection().await else {
        return 0;
    };
    let list: String = redis::cmd("CLIENT")
        .arg("LIST")
        .query_async(&mut c)
        .await
        .unwrap_or_default();
    let mut killed = 0;
    for line in list.lines() {
        let field = |name: &str| {
            line.split(' ')
                .find_map(|f| f.strip_prefix(name))
                .unwrap_or_default()
                .to_owned()
        };
        if field("flags=").contains('t') {
            let done: redis::RedisResult<()> = redis::cmd("CLIENT")
                .arg("KILL")
                .arg("ID")
                .arg(field("id="))
                .query_async(&mut c)
                .await;
            killed += u64::from(done.is_ok());
        }
    }
    killed
}

/// What the server at `url` holds in the hash `full_key`: its `d:` fields' bytes (names and
/// values), `_n` as text, and its field count.
pub async fn held(url: &str, full_key: &str) -> (usize, Option<String>, usize) {
    let redis::Value::Array(items) = super::cmd(url, &["HGETALL", full_key]).await else {
        panic!("HGETALL answered something else");
    };
    let text = |v: &redis::Value| match v {
        redis::Value::BulkString(b) => b.clone(),
        other => panic!("{other:?}"),
    };
    let (mut bytes, mut n) = (0, None);
    for pair in items.chunks(2) {
        let (f, v) = (text(&pair[0]), text(&pair[1]));
        if f.starts_with(b"d:") {
            bytes += f.len() + v.len();
        } else if f == b"_n" {
            n = Some(String::from_utf8_lossy(&v).into_owned());
        }
    }
    (bytes, n, items.len() / 2)
}
