//! What the demo's test files share: the keys the demo is started with, starting it, and JSON.
#![allow(dead_code)]

pub mod observe;
pub mod pages;

/// The `--keys` every test starts the demo with.
pub const KEYS: &str = "demo-key-one-at-least-32-bytes-long,demo-key-two-at-least-32-bytes-long";

/// The demo with `--keys KEYS` and `args`, on a free loopback port.
pub async fn start(args: &[&str]) -> session_testkit::process::Running {
    let mut all = vec!["--keys", KEYS];
    all.extend_from_slice(args);
    session_testkit::process::start(env!("CARGO_BIN_EXE_demo"), &all)
        .await
        .unwrap()
}

/// JSON text as a value (key order aside: the PostgreSQL store keeps keys in `jsonb` order).
pub fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap()
}
