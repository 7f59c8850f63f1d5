//! The attack suite: every promise of `docs/promises.md`, tried the way an attacker or a busy
//! browser would, over real TCP against a real server, on the memory store and on Redis. One
//! module per class of attack, one test binary.
//!
//! Each attack counts what went wrong over its iterations and asserts zero. It runs on every
//! [`Variant`] (a store and the options of the app in front of it) that [`variants`] lists.
//! Cookies are kept by hand (no client jar) so a test sends exactly what it means to, planted
//! cookies included. Everything the library logs during the suite is captured and checked for
//! the secrets and session data the tests used. The harness (the app, the clients, the stores,
//! the log check) is the test kit's (`session-testkit`).
//!
//! The Redis half needs `--features redis-tests` and `REDIS_URL` (`cargo xtask ci` and
//! `cargo xtask test-redis` start a server and set both).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

#[cfg(feature = "redis-tests")]
mod corrupt_records;
mod error_answers;
mod expiry;
mod guest_cookies;
mod logout_races;
mod planted_cookies;
mod record_limits;
mod regenerate_races;

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hyper::Method;
use serde_json::{Value, json};
use session_core::store::{Loaded, Meta, Record, StoreError};
use session_core::{Config, ConfigBuilder, MaxAge};
use session_hyper::SessionLayer;
use session_testkit::app::too_large_is_413;
use session_testkit::backend::{Backend, Kind, Variant};
use session_testkit::capture::{KEY1, attack};
use session_testkit::client::{Jar, NAME, Reply, SIG, send};
use session_testkit::served::App;
use session_testkit::{redis, unique};

/// Races per attack (a quarter of it per option in the five-way race).
const RACES: usize = 200;
/// The stores' record limit (their default).
const LIMIT: usize = 64 * 1024;

/// The stores every attack runs on: memory, and with `--features redis-tests` Redis in both
/// formats and in the library's format through the client cache (its copies must never serve
/// what the store would refuse: a destroyed, superseded or planted session).
fn kinds() -> Vec<Kind> {
    let mut kinds = vec![Kind::Memory];
    if cfg!(feature = "redis-tests") {
        kinds.extend([Kind::RedisV1, Kind::RedisKoa, Kind::RedisCached]);
    }
    kinds
}

/// A fresh backend of each kind, under each option set of the kit.
async fn variants() -> Vec<Variant> {
    session_testkit::backend::variants(&kinds()).await
}

/// A config under the suite's key, then `f`'s options.
fn config(f: impl FnOnce(ConfigBuilder) -> ConfigBuilder) -> Config {
    f(Config::builder().key(KEY1.to_vec())).build().unwrap()
}

/// The `Cookie` header pair of a cookie-mode payload signed with the app's key.
fn signed_payload(cookies: &session_cookie::SessionCookies, record: &Record, now: u64) -> String {
    use session_cookie::Codec as _;
    let value = session_cookie::KoaCodec.encode(record).unwrap();
    let set = cookies.write(&value, None, now, false).unwrap();
    set.iter()
        .map(|c| c.split(';').next().unwrap().to_owned())
        .collect::<Vec<_>>()
        .join("; ")
}
