//! End to end over real TCP with a real HTTP client keeping a cookie jar.
//! Every test runs under a tracing capture that must not contain any key, id or cookie value.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod support;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use session_core::{Config, ConfigBuilder, ManualClock, MaxAge};

use session_core::store::Store;
use session_hyper::SessionLayer;
use support::*;

fn config(f: impl FnOnce(ConfigBuilder) -> ConfigBuilder) -> Config {
    f(Config::builder().key(KEY1.to_vec())).build().unwrap()
}

async fn store_app(cfg: Config, probe: &Probe) -> String {
    serve(SessionLayer::store(cfg, probe.clone()).build().unwrap()).await
}

#[test]
fn new_visitor_then_counter_increments() {
    with_capture(|secrets| async move {
        let (cfg, probe, _) = clocked(|b| b);
        let url = store_app(cfg, &probe).await;
        let b = browser();
        let r = get(&b, &format!("{url}/views")).await;
        secrets.note(&r);
        assert_eq!(r.body, "1 views");
        let names: Vec<String> = pairs(&r)
            .iter()
            .map(|p| p.split('=').next().unwrap().to_owned())
            .collect();
        assert_eq!(names, ["koa.sess", "koa.sess.sig"]);
        let c = &r.set_cookies[0];
        assert!(c.contains("HttpOnly") && c.contains("SameSite=Lax") && c.contains("Path=/"));
        assert!(c.contains("Expires=") && c.contains("Max-Age=86400"), "{c}");
        assert!(!c.contains("Secure"), "plain http, no trusted proxy");
        assert_eq!(probe.store.len(), 1);
        // The store key is not the cookie value.
        let id = cookie(&r, "koa.sess").unwrap();
        assert_eq!(id.len(), 43);
        assert!(
            probe
                .store
                .load(&session_core::store::StoreKey::from_raw(id.clone()))
                .await
                .unwrap()
                .record()
                .is_none()
        );
        for n in 2..=4 {
            let r = get(&b, &format!("{url}/views")).await;
            assert_eq!(r.body, format!("{n} views"));
            // The clock stands still: the cookie's expiry would not move, so it is not sent
            // again (the refresh threshold); the browser keeps its id.
            assert!(r.set_cookies.is_empty(), "{:?}", r.set_cookies);
        }
        assert_eq!(probe.store.len(), 1);
    });
}

#[test]
fn unchanged_session_writes_nothing_and_untouched_session_costs_no_io() {
    with_capture(|secrets| async move {
        let (cfg, probe, _) = clocked(|b| b);
        let url = store_app(cfg, &probe).await;
        let b = browser();
        secrets.note(&get(&b, &format!("{url}/views")).await);
        let writes = probe.writes.load(Ordering::SeqCst);
        let loads = probe.loads.load(Ordering::SeqCst);
        let r = get(&b, &format!("{url}/read")).await;
        assert_eq!(r.body, r#"{"views":1}"#);
        assert!(
            r.set_cookies.is_empty(),
            "a read-only request sets no cookie"
        );
        assert_eq!(
            probe.writes.load(Ordering::SeqCst),
            writes,
            "and writes nothing"
        );
        assert_eq!(probe.loads.load(Ordering::SeqCst), loads + 1);
        let r = get(&b, &format!("{url}/noop")).await;
        assert!(r.set_cookies.is_empty());
        assert_eq!(
            probe.loads.load(Ordering::SeqCst),
            loads + 1,
            "lazy: no load when untouched"
        );
        // A new visitor who only reads: no cookie, no record.
        let r = get(&browser(), &format!("{url}/read")).await;
        assert!(r.set_cookies.is_empty());
        assert_eq!(probe.store.len(), 1);
    });
}

#[test]
fn destroy_clears_cookies_and_store() {
    with_capture(|secrets| async move {
        let (cfg, probe, _) = clocked(|b| b.same_site(session_core::SameSite::Strict));
        let url = store_app(cfg, &probe).await;
        let b = browser();
        let r = get(&b, &format!("{url}/login?user=ada")).await;
        secrets.note(&r);
        let old = pairs(&r).join("; ");
        assert_eq!(get(&b, &format!("{url}/whoami")).await.body, "ada");
        let r = get(&b, &format!("{url}/logout")).await;
        assert_eq!(r.set_cookies.len(), 2);
        for c in &r.set_cookies {
            assert!(
                c.contains("Max-Age=0") && c.contains("Expires=Thu, 01 Jan 1970 00:00:00 GMT"),
                "{c}"
            );
            assert!(
                c.contains("SameSite=Strict") && c.contains("HttpOnly") && c.contains("Path=/"),
                "{c}"
            );
        }
        assert_eq!(probe.store.len(), 0);
        assert_eq!(get(&b, &format!("{url}/whoami")).await.body, "anonymous");
        // Replaying the old cookie after logout: anonymous, nothing recreated.
        let r = send(raw().get(format!("{url}/whoami")).header("cookie", old)).await;
        assert_eq!(r.body, "anonymous");
        assert_eq!(probe.store.len(), 0);
    });
}

#[test]
fn regenerate_changes_id_keeps_data_and_kills_the_old_id() {
    with_capture(|secrets| async move {
        let (cfg, probe, clock) = clocked(|b| b);
        let keys = cfg.key_derivation().clone();
        let url = store_app(cfg, &probe).await;
        let b = browser();
        let r = get(&b, &format!("{url}/set?cart=book")).await;
        secrets.note(&r);
        let before = cookie(&r, "koa.sess").unwrap();
        let pre_login = pairs(&r).join("; ");
        let r = get(&b, &format!("{url}/login?user=ada")).await;
        secrets.note(&r);
        let after = cookie(&r, "koa.sess").unwrap();
        assert_ne!(before, after);
        assert_eq!(
            get(&b, &format!("{url}/read")).await.body,
            r#"{"cart":"book","user":"ada"}"#
        );
        // The old record is gone: a short-lived marker stands in its place.
        let old_key = keys.derive(&session_core::driver::SessionId::new_unchecked(before));
        assert_eq!(
            probe.store.load(&old_key).await.unwrap(),
            session_core::store::Loaded::Superseded
        );
        // Fixation: the pre-login cookie is dead, and while the marker lives a request with it
        // gets no removal cookie (the browser may hold the new cookie of the same name).
        let r = send(
            raw()
                .get(format!("{url}/whoami"))
                .header("cookie", pre_login.clone()),
        )
        .await;
        assert_eq!(r.body, "anonymous");
        assert!(r.set_cookies.is_empty(), "{:?}", r.set_cookies);
        // After the grace time the marker is gone and the old id is simply unknown.
        clock.advance(session_core::driver::DEFAULT_SUPERSEDE_GRACE + Duration::from_secs(1));
        assert_eq!(probe.store.sweep(), 1);
        assert_eq!(probe.store.len(), 1);
        let r = send(
            raw()
                .get(format!("{url}/whoami"))
                .header("cookie", pre_login),
        )
        .await;
        assert_eq!(r.body, "anonymous");
        assert_eq!(r.set_cookies.len(), 2, "removal cookies for an unknown id");
    });
}

#[test]
fn old_key_cookie_is_accepted_and_resigned_with_attributes_kept() {
    with_capture(|secrets| async move {
        let (cfg_old, probe, clock) = clocked(|b| b);
        let url_old = store_app(cfg_old, &probe).await;
        let rotated = Config::builder()
            .keys([KEY2.to_vec(), KEY1.to_vec()])
            .clock(Arc::new(clock.clone()))
            .build()
            .unwrap();
        let url_new = store_app(rotated, &probe).await;
        let r = get(&raw(), &format!("{url_old}/views")).await;
        secrets.note(&r);
        let jar = pairs(&r).join("; ");
        let old_sig = cookie(&r, "koa.sess.sig").unwrap();
        let expires = r.set_cookies[0]
            .split("; ")
            .find(|a| a.starts_with("Expires="))
            .unwrap()
            .to_owned();
        clock.advance(Duration::from_secs(60));
        // A read-only request under the rotated keys: the session loads, and is re-signed.
        let r = send(
            raw()
                .get(format!("{url_new}/noop"))
                .header("cookie", jar.clone()),
        )
        .await;
        secrets.note(&r);
        assert_eq!(r.set_cookies.len(), 2, "re-signed: {:?}", r.set_cookies);
        let new_sig = cookie(&r, "koa.sess.sig").unwrap();
        assert_ne!(new_sig, old_sig);
        assert_eq!(
            cookie(&r, "koa.sess"),
            Some(jar.split("; ").next().unwrap()[9..].to_owned())
        );
        for c in &r.set_cookies {
            assert!(c.contains(&expires), "original expiry kept: {c}");
            assert!(c.contains("SameSite=Lax") && c.contains("HttpOnly"));
        }
        let r = send(
            raw()
                .get(format!("{url_new}/read"))
                .header("cookie", pairs(&r).join("; ")),
        )
        .await;
        assert_eq!(r.body, r#"{"views":1}"#);
        assert!(
            r.set_cookies.is_empty(),
            "the newest key needs no re-signing"
        );
    });
}

/// The removal of a bad signature cookie gets `Secure` whenever the cookie itself would (a
/// `__Host-`/`__Secure-` name in any case, `SameSite=None`, `SecurePolicy::Always`), also on
/// a plain-HTTP request: a browser drops a removal it would not take as a cookie, and the
/// stale `.sig` would stay.
#[test]
fn a_bad_signature_is_removed_with_the_cookies_own_secure_rule() {
    with_capture(|secrets| async move {
        type Setup = fn(ConfigBuilder) -> ConfigBuilder;
        let cases: [(&str, Setup, bool); 5] = [
            ("__Host-sid", |b| b.cookie_name("__Host-sid"), true),
            ("__host-sid", |b| b.cookie_name("__host-sid"), true),
            ("__Secure-sid", |b| b.cookie_name("__Secure-sid"), true),
            (
                "koa.sess",
                |b| b.same_site(session_core::SameSite::None),
                true,
            ),
            ("koa.sess", |b| b, false),
        ];
        for (name, setup, secure) in cases {
            let (cfg, probe, _) = clocked(setup);
            let url = store_app(cfg, &probe).await;
            let r = get(&raw(), &format!("{url}/views")).await;
            secrets.note(&r);
            let id = cookie(&r, name).unwrap();
            let bad = format!("{name}={id}; {name}.sig=AAAAAAAAAAAAAAAAAAAAAAAAAAA");
            let r = send(raw().get(format!("{url}/read")).header("cookie", bad)).await;
            let removal = r
                .set_cookies
                .iter()
                .find(|c| c.starts_with(&format!("{name}.sig=;")))
                .unwrap_or_else(|| panic!("{name}: no removal of the bad signature"));
            assert_eq!(removal.contains("; Secure"), secure, "{name}: {removal}");
        }
    });
}

#[test]
fn tampered_garbage_and_oversized_cookies_give_a_new_session() {
    with_capture(|secrets| async move {
        let (cfg, probe, _) = clocked(|b| b);
        let url = store_app(cfg, &probe).await;
        let r = get(&raw(), &format!("{url}/views")).await;
        secrets.note(&r);
        let id = cookie(&r, "koa.sess").unwrap();
        let sig = cookie(&r, "koa.sess.sig").unwrap();
        let mut flipped = id.clone().into_bytes();
        flipped[5] = if flipped[5] == b'A' { b'B' } else { b'A' };
        let flipped = String::from_utf8(flipped).unwrap();
        let cases = [
            format!("koa.sess={flipped}; koa.sess.sig={sig}"),
            format!("koa.sess={id}; koa.sess.sig={sig}x"),
            format!("koa.sess={id}"),
            "koa.sess=*; koa.sess.sig=*".to_owned(),
            "koa.sess=%0d%0a; koa.sess.sig=AAAA".to_owned(),
            format!("koa.sess={}; koa.sess.sig={sig}", "A".repeat(8000)),
        ];
        let loads = probe.loads.load(Ordering::SeqCst);
        for c in cases {
            let r = send(raw().get(format!("{url}/read")).header("cookie", c.clone())).await;
            assert_eq!(r.status, 200, "{c}");
            assert_eq!(r.body, "{}", "{c}");
            for set in &r.set_cookies {
                // The only cookie we may send is the removal of a bad signature (koa does too).
                assert!(
                    set.starts_with("koa.sess.sig=;") && set.contains("Max-Age=0"),
                    "{set}"
                );
            }
        }
        // Header bytes that are not UTF-8 (and junk pairs) are survived too.
        let junk = reqwest::header::HeaderValue::from_bytes(b"koa.sess=\xff\xfe; =; ;;").unwrap();
        let r = send(raw().get(format!("{url}/read")).header("cookie", junk)).await;
        assert_eq!((r.status, r.body.as_str()), (200, "{}"));
        assert_eq!(
            probe.loads.load(Ordering::SeqCst),
            loads,
            "no store call for a bad cookie"
        );
        assert_eq!(probe.store.len(), 1);
        // A tampered cookie on a writing request gets a brand-new id.
        let r = send(
            raw()
                .get(format!("{url}/views"))
                .header("cookie", format!("koa.sess={flipped}; koa.sess.sig={sig}")),
        )
        .await;
        assert_eq!(r.body, "1 views");
        assert_ne!(cookie(&r, "koa.sess").unwrap(), flipped);
    });
}

#[test]
fn expiry_rolling_and_renew() {
    with_capture(|secrets| async move {
        // Plain: expires after max-age even though the client keeps the cookie.
        let (cfg, probe, clock) = clocked(|b| b.max_age(MaxAge::Ms(60_000)));
        let url = store_app(cfg, &probe).await;
        let r = get(&raw(), &format!("{url}/views")).await;
        secrets.note(&r);
        let jar = pairs(&r).join("; ");
        clock.advance(Duration::from_secs(59));
        let r = send(
            raw()
                .get(format!("{url}/views"))
                .header("cookie", jar.clone()),
        )
        .await;
        assert_eq!(r.body, "2 views");
        clock.advance(Duration::from_secs(61));
        let r = send(
            raw()
                .get(format!("{url}/read"))
                .header("cookie", jar.clone()),
        )
        .await;
        assert_eq!(r.body, "{}", "expired on the server side");

        // Rolling: every response re-sends the cookie and extends the session.
        let (cfg, probe, clock) = clocked(|b| b.max_age(MaxAge::Ms(60_000)).rolling(true));
        let url = store_app(cfg, &probe).await;
        let r = get(&raw(), &format!("{url}/views")).await;
        secrets.note(&r);
        let jar = pairs(&r).join("; ");
        for _ in 0..5 {
            clock.advance(Duration::from_secs(40));
            let r = send(
                raw()
                    .get(format!("{url}/read"))
                    .header("cookie", jar.clone()),
            )
            .await;
            assert_eq!(
                r.body, r#"{"views":1}"#,
                "rolling keeps an active session alive"
            );
            assert_eq!(r.set_cookies.len(), 2);
        }

        // Renew: only when less than half the max-age is left.
        let (cfg, probe, clock) = clocked(|b| b.max_age(MaxAge::Ms(60_000)).renew(true));
        let url = store_app(cfg, &probe).await;
        let r = get(&raw(), &format!("{url}/views")).await;
        secrets.note(&r);
        let jar = pairs(&r).join("; ");
        clock.advance(Duration::from_secs(20));
        let r = send(
            raw()
                .get(format!("{url}/read"))
                .header("cookie", jar.clone()),
        )
        .await;
        assert!(r.set_cookies.is_empty(), "40 s of 60 left: no renew");
        clock.advance(Duration::from_secs(15));
        let r = send(
            raw()
                .get(format!("{url}/read"))
                .header("cookie", jar.clone()),
        )
        .await;
        assert_eq!(r.set_cookies.len(), 2, "25 s of 60 left: renewed");
        clock.advance(Duration::from_secs(50));
        let r = send(raw().get(format!("{url}/read")).header("cookie", jar)).await;
        assert_eq!(
            r.body, r#"{"views":1}"#,
            "renewed session outlives the first max-age"
        );
    });
}

#[test]
fn absolute_lifetime_ends_a_rolling_session() {
    with_capture(|secrets| async move {
        let (cfg, probe, clock) = clocked(|b| {
            b.max_age(MaxAge::Ms(60_000))
                .rolling(true)
                .absolute_lifetime(Duration::from_secs(150))
        });
        let url = store_app(cfg, &probe).await;
        let r = get(&raw(), &format!("{url}/views")).await;
        secrets.note(&r);
        let jar = pairs(&r).join("; ");
        for _ in 0..3 {
            clock.advance(Duration::from_secs(40));
            assert_eq!(
                send(
                    raw()
                        .get(format!("{url}/read"))
                        .header("cookie", jar.clone())
                )
                .await
                .body,
                r#"{"views":1}"#
            );
        }
        clock.advance(Duration::from_secs(40));
        let r = send(raw().get(format!("{url}/read")).header("cookie", jar)).await;
        assert_eq!(r.body, "{}", "160 s after creation the 150 s cap ended it");
    });
}

#[test]
fn external_key_header() {
    with_capture(|secrets| async move {
        let (cfg, probe, _) = clocked(|b| b);
        let layer = SessionLayer::store(cfg, probe.clone())
            .external_key(http::HeaderName::from_static("x-session-id"))
            .build()
            .unwrap();
        let url = serve(layer).await;
        let r = get(&raw(), &format!("{url}/views")).await;
        assert!(r.set_cookies.is_empty(), "no cookies for API clients");
        let id = r
            .headers
            .get("x-session-id")
            .unwrap()
            .to_str()
            .unwrap()
            .to_owned();
        secrets.0.lock().unwrap().push(id.clone());
        let r = send(
            raw()
                .get(format!("{url}/views"))
                .header("x-session-id", &id),
        )
        .await;
        assert_eq!(r.body, "2 views");
        let r = send(
            raw()
                .get(format!("{url}/views"))
                .header("x-session-id", "not-an-id"),
        )
        .await;
        assert_eq!(r.body, "1 views");
    });
}

#[test]
fn handle_is_send_sync_clone() {
    fn check<T: Send + Sync + Clone + 'static>() {}
    check::<session_hyper::Session>();
}

#[test]
fn store_down_gives_fast_503_then_recovers() {
    let log = with_capture(|secrets| async move {
        let (cfg, probe, _) = clocked(|b| b);
        let layer = SessionLayer::store(cfg, probe.clone())
            .store_timeout(Duration::from_millis(300))
            .retry_after_secs(2)
            .build()
            .unwrap();
        let url = serve(layer).await;
        let b = browser();
        secrets.note(&get(&b, &format!("{url}/views")).await);
        for mode in [FAIL, HANG] {
            probe.set_mode(mode);
            let t = Instant::now();
            let r = get(&b, &format!("{url}/views")).await;
            assert_eq!(r.status, 503);
            assert_eq!(r.headers.get("retry-after").unwrap(), "2");
            assert!(r.body.is_empty(), "opaque body");
            assert!(r.set_cookies.is_empty());
            assert!(
                t.elapsed() < Duration::from_millis(1500),
                "fast: {:?}",
                t.elapsed()
            );
            // A request that never touches the session is unaffected.
            assert_eq!(get(&b, &format!("{url}/noop")).await.status, 200);
        }
        probe.set_mode(OK);
        let r = get(&b, &format!("{url}/views")).await;
        assert_eq!(r.body, "2 views", "recovered with the session intact");
    });
    // The capture works (so the secret checks mean something) and names the failure.
    assert!(
        log.contains("session failure") && log.contains("timed out"),
        "{log}"
    );
}

#[test]
fn error_hook_builds_the_failure_response() {
    with_capture(|_| async move {
        let (cfg, probe, _) = clocked(|b| b);
        let layer = SessionLayer::store(cfg, probe.clone())
            .on_error(|e| {
                let mut r = http::Response::new(bytes::Bytes::from(format!(
                    "sessions unavailable (transient: {})",
                    e.is_transient()
                )));
                *r.status_mut() = http::StatusCode::BAD_GATEWAY;
                r
            })
            .build()
            .unwrap();
        let url = serve(layer).await;
        probe.set_mode(FAIL);
        let r = get(&browser(), &format!("{url}/views")).await;
        assert_eq!(r.status, 502);
        assert_eq!(r.body, "sessions unavailable (transient: true)");
    });
}

#[test]
fn concurrent_requests_changing_different_keys_both_land() {
    with_capture(|secrets| async move {
        let (cfg, probe, _) = clocked(|b| b);
        let url = store_app(cfg, &probe).await;
        let r = get(&raw(), &format!("{url}/set?base=1")).await;
        secrets.note(&r);
        let jar = pairs(&r).join("; ");
        let a = send(
            raw()
                .get(format!("{url}/slow-set?cart=book"))
                .header("cookie", jar.clone()),
        );
        let b = send(
            raw()
                .get(format!("{url}/slow-set?theme=dark"))
                .header("cookie", jar.clone()),
        );
        let (a, b) = tokio::join!(a, b);
        assert_eq!((a.status, b.status), (200, 200));
        let r = send(raw().get(format!("{url}/read")).header("cookie", jar)).await;
        assert_eq!(r.body, r#"{"base":"1","cart":"book","theme":"dark"}"#);
    });
}

#[test]
fn flood_of_random_and_expired_cookies_creates_no_record() {
    with_capture(|secrets| async move {
        let (cfg, probe, clock) = clocked(|b| b.max_age(MaxAge::Ms(1000)));
        let url = store_app(cfg.clone(), &probe).await;
        let r = get(&raw(), &format!("{url}/views")).await;
        secrets.note(&r);
        let expired = pairs(&r).join("; ");
        clock.advance(Duration::from_secs(5));
        probe.store.sweep();
        let jar = session_cookie::SessionCookies::from_config(&cfg).unwrap();
        let client = raw();
        for i in 0..300 {
            let header = match i % 3 {
                0 => expired.clone(),
                1 => format!("koa.sess=random{i}; koa.sess.sig=garbage{i}"),
                _ => {
                    // Correctly signed, well-formed, but unknown ids.
                    let id = cfg.ids().generate().unwrap();
                    let set = jar.write(id.as_str(), None, 0, false).unwrap();
                    set.iter()
                        .map(|c| c.split(';').next().unwrap().to_owned())
                        .collect::<Vec<_>>()
                        .join("; ")
                }
            };
            let r = send(client.get(format!("{url}/read")).header("cookie", header)).await;
            assert_eq!(r.status, 200);
            for c in &r.set_cookies {
                assert!(c.contains("Max-Age=0"), "only removal cookies: {c}");
            }
        }
        assert_eq!(probe.store.len(), 0, "no record created");
    });
}

#[test]
fn nothing_saved_on_5xx_unless_configured() {
    with_capture(|secrets| async move {
        let (cfg, probe, _) = clocked(|b| b);
        let url = store_app(cfg.clone(), &probe).await;
        let r = get(&raw(), &format!("{url}/explode")).await;
        assert_eq!(r.status, 500);
        assert!(r.set_cookies.is_empty());
        assert_eq!(probe.store.len(), 0);
        let layer = SessionLayer::store(cfg, probe.clone())
            .save_on_server_error(true)
            .build()
            .unwrap();
        let url = serve(layer).await;
        let r = get(&raw(), &format!("{url}/explode")).await;
        secrets.note(&r);
        assert_eq!(r.set_cookies.len(), 2);
        assert_eq!(probe.store.len(), 1);
    });
}

#[test]
fn cache_control_no_store_on_cookie_responses() {
    with_capture(|secrets| async move {
        let (cfg, probe, _) = clocked(|b| b);
        let layer = SessionLayer::store(cfg, probe.clone())
            .cache_control_no_store(true)
            .build()
            .unwrap();
        let url = serve(layer).await;
        let b = browser();
        let r = get(&b, &format!("{url}/views")).await;
        secrets.note(&r);
        assert_eq!(r.headers.get("cache-control").unwrap(), "no-store");
        let r = get(&b, &format!("{url}/read")).await;
        assert!(
            r.headers.get("cache-control").is_none(),
            "only when a session cookie is set"
        );
    });
}

#[test]
fn secure_cookies_behind_a_trusted_proxy_only() {
    with_capture(|secrets| async move {
        for (trust, xfp, secure) in [
            (false, true, false),
            (true, true, true),
            (true, false, false),
        ] {
            let (cfg, probe, _) = clocked(|b| b);
            let layer = SessionLayer::store(cfg, probe)
                .trust_proxy(trust)
                .build()
                .unwrap();
            let url = serve(layer).await;
            let mut rb = raw().get(format!("{url}/views"));
            if xfp {
                rb = rb.header("x-forwarded-proto", "https");
            }
            let r = send(rb).await;
            secrets.note(&r);
            assert_eq!(
                r.set_cookies[0].contains("Secure"),
                secure,
                "trust={trust} xfp={xfp}"
            );
        }
    });
}

#[test]
fn cookie_mode_counter_and_size_limit() {
    with_capture(|secrets| async move {
        let clock = ManualClock::new(T0);
        let cfg = config(|b| b.clock(Arc::new(clock.clone())).max_age(MaxAge::Ms(60_000)));
        let url = serve(SessionLayer::cookie(cfg).build().unwrap()).await;
        let b = browser();
        for n in 1..=3 {
            let r = get(&b, &format!("{url}/views")).await;
            secrets.note(&r);
            assert_eq!(r.body, format!("{n} views"));
        }
        // The payload is koa's base64 JSON with _expire and _maxAge.
        let r = get(&b, &format!("{url}/views")).await;
        let value = cookie(&r, "koa.sess").unwrap();
        let json = session_cookie::node_base64_decode(value.as_bytes());
        assert!(
            String::from_utf8(json)
                .unwrap()
                .starts_with(r#"{"views":4,"_expire":"#)
        );
        // Server-side expiry from the signed payload.
        clock.advance(Duration::from_secs(61));
        assert_eq!(get(&b, &format!("{url}/views")).await.body, "1 views");
        // Over 4096 bytes: the app sees an error, and the end-of-request commit answers 500.
        let r = get(&b, &format!("{url}/commit-big")).await;
        assert_eq!(r.status, 413);
        assert!(r.body.contains("4096"), "{}", r.body);
        let r = get(&b, &format!("{url}/big")).await;
        assert_eq!(r.status, 500);
        assert!(r.set_cookies.is_empty());
        // Logout in cookie mode removes the cookies.
        let r = get(&b, &format!("{url}/logout")).await;
        assert!(r.set_cookies.iter().all(|c| c.contains("Max-Age=0")) && r.set_cookies.len() == 2);
    });
}

#[test]
fn guest_mode_sets_a_cookie_for_every_new_visitor_without_a_record() {
    with_capture(|secrets| async move {
        let (cfg, probe, _) = clocked(|b| b.guest(true));
        let url = store_app(cfg, &probe).await;
        let b = browser();
        let r = get(&b, &format!("{url}/read")).await;
        secrets.note(&r);
        assert_eq!(r.set_cookies.len(), 2, "guest cookie");
        let id = cookie(&r, "koa.sess").unwrap();
        assert_eq!(probe.store.len(), 0, "no record until populated");
        let r = get(&b, &format!("{url}/read")).await;
        assert!(
            r.set_cookies.is_empty(),
            "a returning guest keeps its cookie"
        );
        let r = get(&b, &format!("{url}/views")).await;
        // The first write files the session under a fresh id: a guest id is never trusted
        // with data (it may have been planted in this browser by someone who kept a copy).
        let id_now = cookie(&r, "koa.sess").unwrap();
        assert_ne!(id_now, id, "a populated guest session gets a fresh id");
        assert_eq!(probe.store.len(), 1);
        assert_eq!(get(&b, &format!("{url}/views")).await.body, "2 views");
    });
}
