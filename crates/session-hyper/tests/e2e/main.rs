//! End to end over real TCP with a real HTTP client keeping a cookie jar (or none, to send
//! exactly the cookies a test chooses), one module per topic, one test binary. Every test runs
//! under a tracing capture that must not contain any key, id or cookie value.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod cookies;
mod failures;
mod lifetime;
mod modes;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use session_core::{Config, ConfigBuilder, ManualClock, MaxAge};

use session_core::store::Store;
use session_hyper::SessionLayer;
use session_testkit::app::serve;
use session_testkit::capture::{KEY1, KEY2, with_capture};
use session_testkit::client::{browser, get, get_with, raw, send};
use session_testkit::stores::{FAIL, HANG, OK, Probe, T0, clocked};

fn config(f: impl FnOnce(ConfigBuilder) -> ConfigBuilder) -> Config {
    f(Config::builder().key(KEY1.to_vec())).build().unwrap()
}

async fn store_app(cfg: Config, probe: &Probe) -> String {
    serve(SessionLayer::store(cfg, probe.clone()).build().unwrap()).await
}
