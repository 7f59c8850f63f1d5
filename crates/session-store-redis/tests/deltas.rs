//! Deltas a caller of `Store::save` may send that the session never makes (a key set twice, a
//! key removed twice, a key removed and set), against a real redis-server, with and without
//! the client cache: the record must read back as `Record::apply` says, a save must be refused
//! exactly when that record passes `max_record_bytes`, and what Redis holds must never pass it,
//! whatever the save script's size bound (`_n`) was led to believe.
#![cfg(feature = "redis-tests")]
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod support;

use std::sync::OnceLock;
use std::time::Duration;

use proptest::prelude::*;
use serde_json::{Value, json};
use session_core::Data;
use session_core::store::{
    Change, Created, Delta, Loaded, Record, Store, StoreError, StoreKey, Updated,
};
use session_store_redis::RedisStore;
use support::cache::{meta, warm};

/// Small enough that a handful of saves reach it.
const LIMIT: usize = 400;

struct Stores {
    rt: tokio::runtime::Runtime,
    plain: RedisStore,
    cached: RedisStore,
    url: String,
    prefix: String,
}

fn stores() -> &'static Stores {
    static S: OnceLock<Stores> = OnceLock::new();
    S.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let url = support::shared_url();
        let prefix = support::unique_prefix("deltas");
        let (plain, cached) = rt.block_on(async {
            let b = || {
                RedisStore::builder(&url)
                    .prefix(&prefix)
                    .max_record_bytes(LIMIT)
            };
            let plain = b().build().await.unwrap();
            let cached = warm(b().client_cache(1 << 20).build().await.unwrap()).await;
            (plain, cached)
        });
        Stores {
            rt,
            plain,
            cached,
            url,
            prefix,
        }
    })
}

/// The bytes the store counts for `data`: each field's name (`d:` and the key) and its JSON.
fn size(data: &Data) -> usize {
    data.iter()
        .map(|(k, v)| 2 + k.len() + serde_json::to_vec(v).unwrap().len())
        .sum()
}

/// What the server holds under `k`: the data fields' bytes, and `_n`.
async fn held(s: &Stores, k: &StoreKey) -> (usize, Option<usize>) {
    let full = format!("{}{}", s.prefix, k.as_str());
    let (bytes, n, _) = support::cache::held(&s.url, &full).await;
    (bytes, n.and_then(|n| n.parse().ok()))
}

fn value() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<u16>().prop_map(|n| json!(n)),
        "[a-z]{0,150}".prop_map(|s| json!(s)),
    ]
}

/// A delta over four keys, so that names repeat.
fn delta() -> impl Strategy<Value = Delta> {
    let name = || prop::sample::select(vec!["a", "b", "c", "d"]).prop_map(String::from);
    (
        prop::collection::vec((name(), value()), 0..6),
        prop::collection::vec(name(), 0..4),
    )
        .prop_map(|(set, removed)| Delta {
            replace: false,
            set,
            removed,
        })
}

fn check(cached: bool, deltas: Vec<Delta>, case: u64) -> Result<(), TestCaseError> {
    let s = stores();
    let store = if cached { &s.cached } else { &s.plain };
    let k = StoreKey::from_raw(format!("sess:{case}"));
    s.rt.block_on(async {
        let mut model = Record {
            data: Data::new(),
            meta: meta(),
        };
        model.data.insert("a".into(), json!(1));
        // A failed case leaves its record; shrinking runs the key again.
        store.destroy(&k).await.unwrap();
        let made = store.create(&k, &model, Duration::from_secs(60)).await;
        prop_assert_eq!(made.unwrap(), Created::Inserted);
        for delta in &deltas {
            let mut next = model.clone();
            next.apply(delta, &model.data, meta());
            let change = Change {
                data: &next.data,
                delta,
                meta: meta(),
            };
            let got = store.save(&k, change, Duration::from_secs(60)).await;
            let fits = size(&next.data) <= LIMIT;
            match got {
                Ok(Updated::Updated) => {
                    prop_assert!(fits, "a save of {} bytes passed", size(&next.data));
                    model = next;
                }
                Err(StoreError::TooLarge { .. }) => {
                    prop_assert!(!fits, "a save of {} bytes was refused", size(&next.data));
                }
                other => prop_assert!(false, "save answered {other:?}"),
            }
            let (bytes, n) = held(s, &k).await;
            prop_assert!(bytes <= LIMIT, "Redis holds {bytes} bytes");
            prop_assert_eq!(bytes, size(&model.data));
            let n = n.unwrap_or(0);
            prop_assert!(n >= bytes, "_n {n} under the {bytes} bytes held");
            match store.load(&k).await.unwrap() {
                Loaded::Live(r) => prop_assert_eq!(&r.data, &model.data),
                other => prop_assert!(false, "load answered {other:?}"),
            }
        }
        store.destroy(&k).await.unwrap();
        Ok(())
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn repeated_keys_keep_the_size_bound(
        cached in any::<bool>(),
        deltas in prop::collection::vec(delta(), 1..10),
        case in any::<u64>(),
    ) {
        check(cached, deltas, case)?;
    }
}

/// The cold review's cases, one by one: the bound `_n` undercounted by a key removed twice (or
/// removed and set) let later saves grow the record past the limit.
#[test]
fn a_key_named_twice_is_counted_once() {
    let big = || json!("x".repeat(150));
    let d = |set: Vec<(&str, Value)>, removed: Vec<&str>| Delta {
        replace: false,
        set: set.into_iter().map(|(k, v)| (k.into(), v)).collect(),
        removed: removed.into_iter().map(String::from).collect(),
    };
    for (i, cached) in [false, true].into_iter().enumerate() {
        let seq = vec![
            d(vec![("b", big())], vec![]),
            d(vec![], vec!["b", "b"]),
            d(vec![("b", big())], vec![]),
            d(vec![("c", big())], vec!["c"]),
            d(vec![("d", big()), ("d", json!(1))], vec![]),
            d(vec![("b", big()), ("c", big()), ("d", big())], vec![]),
        ];
        check(cached, seq, u64::MAX - i as u64).unwrap();
    }
}
