//! The cookie refresh threshold end to end: a busy store-mode session sends its id cookie
//! about once per step of `threshold × max-age` while every save still extends the record, the
//! browser's cookie never falls a step behind, and rolling, koa-compat and a zero threshold
//! send it on every save.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::time::Duration;

use session_core::{Clock, ConfigBuilder, ManualClock, MaxAge};
use session_hyper::SessionLayer;
use session_testkit::app::serve;
use session_testkit::capture::{KEY1, KEY2};
use session_testkit::client::{browser, get};
use session_testkit::stores::{Probe, clocked};

const DAY: u64 = 86_400_000;

async fn app(f: impl FnOnce(ConfigBuilder) -> ConfigBuilder) -> (String, ManualClock) {
    let (cfg, probe, clock) = clocked(f);
    let url = serve(SessionLayer::store(cfg, probe).build().unwrap()).await;
    (url, clock)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_session_sends_its_cookie_about_once_per_step() {
    let (url, clock) = app(|b| b).await;
    let step = DAY / 100;
    let b = browser();
    let first = get(&b, &format!("{url}/views")).await;
    let id = first.cookie("koa.sess").unwrap();
    // When the browser's cookie was last sent (its expiry is that plus a day).
    let mut sent_at = clock.now_ms();
    let mut sends = 0;
    for n in 2..=600u64 {
        clock.advance(Duration::from_secs(5));
        let r = get(&b, &format!("{url}/views")).await;
        assert_eq!(r.body, format!("{n} views"), "the session goes on");
        if let Some(value) = r.cookie("koa.sess") {
            assert_eq!(value, id, "the same id, re-sent");
            assert!(r.set_cookies.iter().all(|c| c.contains("Max-Age=86400")));
            assert_eq!(r.set_cookies.len(), 2, "the id and its signature");
            sent_at = clock.now_ms();
            sends += 1;
        } else {
            assert!(r.set_cookies.is_empty());
        }
        // The record's expiry is now + a day (exact); the browser's at most a step less.
        assert!(
            clock.now_ms() - sent_at < step,
            "the browser fell a step behind"
        );
    }
    // 2,995 s of saves over 864 s steps: three or four boundaries crossed.
    assert!(
        (3..=4).contains(&sends),
        "{sends} cookies sent for 599 saves"
    );
    // A read still finds the session after the whole run.
    assert_eq!(
        get(&b, &format!("{url}/read")).await.body,
        r#"{"views":600}"#
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rolling_koa_compat_and_zero_send_on_every_save() {
    let variants: [fn(ConfigBuilder) -> ConfigBuilder; 3] = [
        |b| b.rolling(true),
        |b| b.cookie_refresh(0.0),
        |b| b.koa_compat(true).key(b"a koa app's key".to_vec()),
    ];
    for f in variants {
        let (url, clock) = app(f).await;
        let b = browser();
        for n in 1..=30u64 {
            clock.advance(Duration::from_secs(1));
            let r = get(&b, &format!("{url}/views")).await;
            assert_eq!(r.body, format!("{n} views"));
            assert_eq!(r.set_cookies.len(), 2, "save {n} sends the cookie");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_session_cookie_is_sent_once() {
    let (url, clock) = app(|b| b.max_age(MaxAge::Session)).await;
    let b = browser();
    let first = get(&b, &format!("{url}/views")).await;
    assert_eq!(first.set_cookies.len(), 2);
    assert!(first.set_cookies.iter().all(|c| !c.contains("Expires")));
    for n in 2..=50u64 {
        clock.advance(Duration::from_secs(600));
        let r = get(&b, &format!("{url}/views")).await;
        assert_eq!(r.body, format!("{n} views"));
        assert!(
            r.set_cookies.is_empty(),
            "save {n} re-sent a cookie without expiry"
        );
    }
}

/// Keys rotated (a new key first): a returning user's next save, whatever step its expiry is
/// in, re-signs the cookie with the new key, so the old key can be dropped a request later.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_key_re_signs_on_the_next_save() {
    let store = session_store_memory::MemoryStore::new();
    let layer = |keys: Vec<Vec<u8>>| {
        let cfg = session_core::Config::builder().keys(keys).build().unwrap();
        SessionLayer::store(cfg, Probe::new(store.clone()))
            .build()
            .unwrap()
    };
    let old = serve(layer(vec![KEY1.to_vec()])).await;
    let rotated = serve(layer(vec![KEY2.to_vec(), KEY1.to_vec()])).await;
    let only_new = serve(layer(vec![KEY2.to_vec()])).await;
    let b = browser();
    assert_eq!(get(&b, &format!("{old}/views")).await.body, "1 views");
    let r = get(&b, &format!("{rotated}/views")).await;
    assert_eq!(r.body, "2 views");
    assert_eq!(r.set_cookies.len(), 2, "the save re-signs with the new key");
    // The old key is gone: the session goes on.
    assert_eq!(get(&b, &format!("{only_new}/views")).await.body, "3 views");
}
