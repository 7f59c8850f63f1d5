//! Strategies and helpers the property tests share.
#![allow(dead_code)]

use proptest::prelude::*;
use serde_json::{Map, Value};
use session_core::driver::Secret;

pub fn secrets(keys: &[Vec<u8>]) -> Vec<Secret> {
    keys.iter().map(|k| Secret::new(k.clone())).collect()
}

/// 1 to 4 distinct keys of 32 to 47 bytes (none can be a placeholder: those are short).
pub fn distinct_keys(
    count: std::ops::RangeInclusive<usize>,
) -> impl Strategy<Value = Vec<Vec<u8>>> {
    prop::collection::hash_set(prop::collection::vec(any::<u8>(), 32..48), count)
        .prop_map(|s| s.into_iter().collect())
}

/// A finite float that survives JSON (with `float_roundtrip`, every finite one should).
pub fn json_float() -> impl Strategy<Value = f64> {
    prop_oneof![
        any::<f64>(),
        -1e6f64..1e6,
        prop::sample::select(vec![
            0.0,
            -0.0,
            0.1,
            1.0 / 3.0,
            f64::MAX,
            f64::MIN,
            f64::MIN_POSITIVE,
            f64::EPSILON,
            5e-324,
            9_007_199_254_740_993.0,
        ]),
    ]
    .prop_filter("finite and JSON round-tripping", |f| {
        f.is_finite()
            && serde_json::from_str::<f64>(&serde_json::to_string(f).unwrap()).ok() == Some(*f)
    })
}

/// Any JSON value: nested arrays and objects, strings of any Unicode (control characters,
/// quotes, backslashes, astral planes), integers, floats, bools, null.
pub fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        json_float().prop_map(Value::from),
        "(?s).{0,16}".prop_map(Value::String),
        "[\"\\\\/\\x00-\\x1f\u{7f}\u{2028}\u{2029}\u{fffd}\u{10ffff}]{0,8}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 32, 5, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            // Nested keys may start with `_`: only top-level ones are reserved.
            prop::collection::vec(("(?s).{0,8}", inner), 0..5)
                .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

/// Session data: top-level keys never start with `_` (koa's reserved fields).
pub fn user_data() -> impl Strategy<Value = Map<String, Value>> {
    prop::collection::vec(("(?s)([^_].{0,10})?", json_value()), 0..6)
        .prop_map(|kv| kv.into_iter().collect())
}
