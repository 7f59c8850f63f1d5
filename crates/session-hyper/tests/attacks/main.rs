//! The attack suite: every promise of `docs/promises.md`, tried the way an attacker or a busy
//! browser would, over real TCP against a real server, on the memory store and on Redis. One
//! module per class of attack, one test binary.
//!
//! Each attack counts what went wrong over its iterations and asserts zero. It runs on every
//! [`Variant`] (a store and the options of the app in front of it) that [`variants`] lists.
//! Cookies are kept by hand (no client jar) so a test sends exactly what it means to, planted
//! cookies included. Everything the library logs during the suite is captured and checked for
//! the secrets and session data the tests used; so is every lifecycle event the attack's
//! layers emit (as its JSON, through an event recorder every config of the suite carries) and,
//! with the `metrics` feature, every metric's name and labels (a recorder installed for the
//! binary): no key, cookie value, id, store key or session data in any ([`attack`]). The
//! harness (the app, the clients, the stores, the log and event checks) is the test kit's
//! (`session-testkit`).
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

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hyper::Method;
use serde_json::{Value, json};
use session_core::store::{Loaded, Meta, Record, StoreError};
use session_core::{Config, ConfigBuilder, CookieMode, MaxAge};
use session_hyper::SessionLayer;
use session_testkit::app::too_large_is_413;
use session_testkit::backend::{Backend, Kind, Variant};
use session_testkit::capture::{KEY1, Secrets, recording_hooks};
use session_testkit::client::{Jar, NAME, Reply, SIG, send};
use session_testkit::served::App;
use session_testkit::{redis, unique};

/// Races per attack (a quarter of it per option in the five-way race).
const RACES: usize = 200;
/// The stores' record limit (their default).
const LIMIT: usize = 64 * 1024;

/// What an attack is about: the option variants that concern it run it too ([`MATRIX`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    /// Logouts racing regenerates and saves (`logout_races`).
    LogoutRaces,
    /// Regenerates racing each other and the requests around a login (`regenerate_races`).
    RegenerateRaces,
    /// Planted, duplicated and dead cookies (`planted_cookies`).
    Planted,
    /// Record and cookie size bounds (`record_limits`).
    Limits,
    /// Sessions that hold nothing, and guest cookies (`guest_cookies`).
    Guest,
    /// What an error answers (`error_answers`).
    Errors,
    /// Lifetimes beyond the browsers' cap (`expiry`).
    Expiry,
}

use Class::*;

/// One option that takes a path of its own through the code: the backends it runs on, the
/// attack classes that concern it, and the options it sets.
struct Entry {
    name: &'static str,
    kinds: &'static [Kind],
    /// App servers sharing the backend (requests go to them in turn).
    servers: usize,
    classes: &'static [Class],
    options: fn(ConfigBuilder) -> ConfigBuilder,
}

/// The option matrix: every attack runs on every store under the defaults (memory; with
/// `--features redis-tests` Redis in both formats and in the library's format through the
/// client cache; with `--features postgres-tests` PostgreSQL), and each option that takes a
/// different path through the code runs the attacks that concern it once more, on one named
/// backend. What an option leaves out, and why:
///
/// | option | backend | runs | leaves out |
/// |---|---|---|---|
/// | the client cache, two app servers | Redis | races, planted cookies, limits, guests, errors, expiry | - |
/// | `rolling` | memory, Redis | races, planted cookies, guests, expiry | limits, errors: no write of theirs depends on rolling (the save path is the same); of the races, `parallel_requests_around_a_login_never_log_the_user_out` (every read writes the pre-login cookie, the documented limit; see the attack) |
/// | `renew` | memory, Redis | races, planted cookies, expiry | guests (a guest has no record to renew), limits, errors (as `rolling`) |
/// | guest sessions | memory | races, planted cookies, limits, errors, expiry | - (the guest attacks turn it on themselves) |
/// | koa's record format | Redis | every attack (a store of the defaults) | - |
/// | PostgreSQL | PostgreSQL | every store attack (a store of the defaults) | the cookie-mode halves (no store) |
/// | Redis Cluster | a six-node cluster | logout and regenerate races | the rest: the same commands as one server, slot by slot |
///
/// The encrypted cookie is the cookie mode's own option: the attacks of cookie mode (planted
/// cookies, cookie size, lifetimes) run in both modes ([`cookie_modes`]); the races don't
/// apply to cookie mode (the cookie is the session: there is no record to race for).
const MATRIX: &[Entry] = &[
    Entry {
        name: "two app servers",
        kinds: &[Kind::RedisCached],
        servers: 2,
        classes: &[
            LogoutRaces,
            RegenerateRaces,
            Planted,
            Limits,
            Guest,
            Errors,
            Expiry,
        ],
        options: |b| b,
    },
    Entry {
        name: "rolling",
        kinds: &[Kind::Memory, Kind::RedisV1],
        servers: 1,
        classes: &[LogoutRaces, RegenerateRaces, Planted, Guest, Expiry],
        options: |b| b.rolling(true),
    },
    Entry {
        name: "renew",
        kinds: &[Kind::Memory, Kind::RedisV1],
        servers: 1,
        classes: &[LogoutRaces, RegenerateRaces, Planted, Expiry],
        options: |b| b.renew(true),
    },
    Entry {
        name: "guest",
        kinds: &[Kind::Memory],
        servers: 1,
        classes: &[
            LogoutRaces,
            RegenerateRaces,
            Planted,
            Limits,
            Errors,
            Expiry,
        ],
        options: |b| b.guest(true),
    },
    Entry {
        name: "",
        kinds: &[Kind::RedisCluster],
        servers: 1,
        classes: &[LogoutRaces, RegenerateRaces],
        options: |b| b,
    },
];

/// Whether the backends of `kind` run here (the Redis and PostgreSQL ones need their servers,
/// which `cargo xtask ci` starts).
fn runs_here(kind: Kind) -> bool {
    match kind {
        Kind::Memory => true,
        Kind::RedisV1 | Kind::RedisKoa | Kind::RedisCached | Kind::RedisCluster => {
            cfg!(feature = "redis-tests")
        }
        Kind::Postgres => cfg!(feature = "postgres-tests"),
    }
}

/// The stores every attack runs on under the defaults.
const STORES: &[Kind] = &[
    Kind::Memory,
    Kind::RedisV1,
    Kind::RedisKoa,
    Kind::RedisCached,
    Kind::Postgres,
];

/// What an attack of `class` runs on: every store under the defaults, then each option of the
/// matrix that concerns it.
async fn variants(class: Class) -> Vec<Variant> {
    let mut out = Vec::new();
    for kind in STORES.iter().copied().filter(|k| runs_here(*k)) {
        out.push(Variant::plain(Backend::new(kind).await));
    }
    for entry in MATRIX.iter().filter(|e| e.classes.contains(&class)) {
        for kind in entry.kinds.iter().copied().filter(|k| runs_here(*k)) {
            let options = entry.options;
            let v = Variant::new(Backend::new(kind).await, entry.name, Arc::new(options));
            out.push(v.on_servers(entry.servers));
        }
    }
    out
}

/// The cookie modes the cookie-mode attacks run in: koa's signed payload, and the encrypted one.
const COOKIE_MODES: [CookieMode; 2] = [CookieMode::Signed, CookieMode::Encrypted];

/// [`COOKIE_MODES`], for iterating.
fn cookie_modes() -> [CookieMode; 2] {
    COOKIE_MODES
}

/// A config under the suite's key, recording its events into the attack's recorder, then
/// `f`'s options.
fn config(f: impl FnOnce(ConfigBuilder) -> ConfigBuilder) -> Config {
    f(Config::builder()
        .key(KEY1.to_vec())
        .hooks(recording_hooks()))
    .build()
    .unwrap()
}

/// An attack: the test kit's ([`session_testkit::capture::attack`]: its log and every
/// lifecycle event its layers emitted checked for the keys and the secrets it saw), then this
/// suite's checks of its recorders: its layers recorded events (they carry the recorder), no
/// event holds the store key of a session id it saw, and, with the `metrics` feature, no
/// metric's name or label holds a key, a secret or such a store key.
fn attack<F, Fut>(f: F)
where
    F: FnOnce(Secrets) -> Fut,
    Fut: Future<Output = ()>,
{
    #[cfg(feature = "metrics")]
    let metrics = metrics_recorder();
    let recorded = session_testkit::capture::attack_recorded(f);
    assert!(
        !recorded.events.is_empty(),
        "the attack's layers recorded no event: a layer without the recorder"
    );
    // The store keys of the ids it saw (a store key is the id's hash, not in a cookie).
    let cfg = config(|b| b);
    let store_keys = Secrets::default();
    for value in recorded.secrets.values() {
        if let Some(id) = cfg.ids().parse(&value) {
            store_keys.add(cfg.key_derivation().derive(&id).as_str());
        }
    }
    store_keys.check_in("a lifecycle event", &recorded.events.json_without_owners());
    #[cfg(feature = "metrics")]
    {
        let labels = metric_labels(metrics);
        assert!(!labels.is_empty(), "no metric recorded");
        recorded.secrets.check_in("a metric", &labels);
        store_keys.check_in("a metric", &labels);
    }
}

/// The metrics recorder of this test binary, installed by the first attack.
#[cfg(feature = "metrics")]
fn metrics_recorder() -> &'static metrics_util::debugging::Snapshotter {
    static SNAPSHOTTER: std::sync::OnceLock<metrics_util::debugging::Snapshotter> =
        std::sync::OnceLock::new();
    SNAPSHOTTER.get_or_init(|| {
        let recorder = metrics_util::debugging::DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        recorder.install().unwrap();
        snapshotter
    })
}

/// Every metric recorded so far (by every attack of the binary), one line each: its name and
/// its labels as `name=value`.
#[cfg(feature = "metrics")]
fn metric_labels(metrics: &metrics_util::debugging::Snapshotter) -> String {
    let mut out = String::new();
    for (key, _, _, _) in metrics.snapshot().into_vec() {
        let key = key.key();
        out.push_str(key.name());
        for label in key.labels() {
            out.push_str(&format!(" {}={}", label.key(), label.value()));
        }
        out.push('\n');
    }
    out
}

/// The `Cookie` header of a cookie-mode payload the app's configuration `cfg` would write:
/// koa's signed payload, or the encrypted one, under the app's key.
fn signed_payload(cfg: &Config, record: &Record, now: u64) -> String {
    use session_cookie::Codec as _;
    let cookies = session_cookie::SessionCookies::from_config(cfg).unwrap();
    let value = match cfg.cookie_mode() {
        CookieMode::Encrypted => session_cookie::EncryptedCodec::from_config(cfg)
            .unwrap()
            .encode(record)
            .unwrap(),
        _ => session_cookie::KoaCodec.encode(record).unwrap(),
    };
    let set = cookies.write(&value, None, now, false).unwrap();
    set.iter()
        .map(|c| c.split(';').next().unwrap().to_owned())
        .collect::<Vec<_>>()
        .join("; ")
}
