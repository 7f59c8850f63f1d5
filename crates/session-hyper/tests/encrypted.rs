//! Encrypted cookie mode end to end over real TCP: the session lives only in the browser's
//! cookie, sealed with XChaCha20-Poly1305. Every test runs under a tracing capture that must not
//! contain a key or a cookie value.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use base64::Engine as _;
use session_cookie::{Codec, EncryptedCodec, KeyMatch};
use session_core::driver::Secret;
use session_core::store::Record;
use session_core::{Config, ConfigBuilder, CookieMode, Hooks, ManualClock, MaxAge};
use session_hyper::{LayerBuildError, SessionLayer};
use session_store_memory::MemoryStore;
use session_testkit::app::serve;
use session_testkit::capture::{KEY1, KEY2, with_capture};
use session_testkit::client::{Reply, browser, get, get_with, raw, send};
use session_testkit::stores::T0;

const KEY3: &[u8] = b"test key three: 32 bytes or more";

fn encrypted(keys: &[&[u8]], f: impl FnOnce(ConfigBuilder) -> ConfigBuilder) -> Config {
    f(Config::builder()
        .keys(keys.iter().map(|k| k.to_vec()))
        .cookie_mode(CookieMode::Encrypted))
    .build()
    .unwrap()
}

async fn app(cfg: Config) -> String {
    serve(SessionLayer::cookie(cfg).build().unwrap()).await
}

/// The codec the layer uses for `keys` and the default cookie name.
fn codec(keys: &[&[u8]]) -> EncryptedCodec {
    let keys: Vec<Secret> = keys.iter().map(|k| Secret::new(k.to_vec())).collect();
    EncryptedCodec::new("koa.sess", &keys).unwrap()
}

fn open(keys: &[&[u8]], value: &str) -> Option<(serde_json::Value, KeyMatch)> {
    let d = codec(keys).decode_with_key(value, MaxAge::Session)?;
    Some((serde_json::Value::Object(d.record.data), d.key))
}

async fn with_cookie(url: &str, value: &str) -> Reply {
    get_with(url, &format!("koa.sess={value}")).await
}

#[test]
fn counter_in_one_encrypted_cookie() {
    with_capture(|secrets| async move {
        let url = app(encrypted(&[KEY1], |b| b)).await;
        let b = browser();
        for n in 1..=3 {
            let r = get(&b, &format!("{url}/views")).await;
            secrets.note(&r);
            assert_eq!(r.body, format!("{n} views"));
            // One cookie, no `.sig`, the data sealed inside.
            assert_eq!(r.set_cookies.len(), 1, "{:?}", r.set_cookies);
            let c = &r.set_cookies[0];
            assert!(c.starts_with("koa.sess=v1."), "{c}");
            assert!(c.contains("HttpOnly") && c.contains("SameSite=Lax") && c.contains("Path=/"));
            assert!(c.contains("Max-Age=86400") && c.contains("Expires="), "{c}");
            assert!(!c.contains("views"));
            let value = r.cookie("koa.sess").unwrap();
            let (data, key) = open(&[KEY1], &value).unwrap();
            assert_eq!(data["views"], n);
            assert_eq!(key, KeyMatch::Newest);
        }
        // A request that doesn't change the session writes nothing.
        let r = get(&b, &format!("{url}/read")).await;
        assert_eq!(r.body, r#"{"views":3}"#);
        assert!(r.set_cookies.is_empty(), "{:?}", r.set_cookies);
    });
}

#[test]
fn login_logout_and_expiry() {
    with_capture(|secrets| async move {
        let clock = ManualClock::new(T0);
        let cfg = encrypted(&[KEY1], |b| {
            b.clock(Arc::new(clock.clone())).max_age(MaxAge::Ms(60_000))
        });
        let url = app(cfg).await;
        let b = browser();
        get(&b, &format!("{url}/views")).await;
        let r = get(&b, &format!("{url}/login?user=ada")).await;
        secrets.note(&r);
        let before_logout = r.cookie("koa.sess").unwrap();
        assert_eq!(get(&b, &format!("{url}/whoami")).await.body, "ada");
        assert_eq!(get(&b, &format!("{url}/views")).await.body, "2 views");
        // Logout: one removal cookie, same attributes, nothing left.
        let r = get(&b, &format!("{url}/logout")).await;
        assert_eq!(r.set_cookies.len(), 1, "{:?}", r.set_cookies);
        assert!(
            r.set_cookies[0].starts_with("koa.sess=;") && r.set_cookies[0].contains("Max-Age=0")
        );
        assert_eq!(get(&b, &format!("{url}/whoami")).await.body, "anonymous");
        // Cookie mode keeps no server state: a copy taken before the logout still opens until
        // it expires (the docs say so; a store is the mode for revocation).
        assert_eq!(
            with_cookie(&format!("{url}/whoami"), &before_logout)
                .await
                .body,
            "ada"
        );
        // Expiry is inside the sealed payload: past max-age the copy is dead.
        clock.advance(Duration::from_secs(61));
        let r = with_cookie(&format!("{url}/whoami"), &before_logout).await;
        assert_eq!(r.body, "anonymous");
        let r = with_cookie(&format!("{url}/views"), &before_logout).await;
        assert_eq!(r.body, "1 views");
    });
}

#[test]
fn rotation_across_restarts_with_a_new_key_list() {
    let log = with_capture(|secrets| async move {
        // Before: [K1].
        let old = app(encrypted(&[KEY1], |b| b)).await;
        let b = raw();
        let mut value = String::new();
        for _ in 0..3 {
            let r = send(
                b.get(format!("{old}/views"))
                    .header("cookie", format!("koa.sess={value}")),
            )
            .await;
            secrets.note(&r);
            value = r.cookie("koa.sess").unwrap();
        }
        let made_under_k1 = value.clone();
        assert_eq!(open(&[KEY1], &value).unwrap().1, KeyMatch::Newest);

        // Restart with K2 in front: the session survives, and a request that doesn't touch it
        // gets the cookie re-encrypted under K2, every attribute kept.
        let rotated = app(encrypted(&[KEY2, KEY1], |b| b)).await;
        let r = with_cookie(&format!("{rotated}/noop"), &value).await;
        secrets.note(&r);
        assert_eq!(r.set_cookies.len(), 1, "{:?}", r.set_cookies);
        let c = &r.set_cookies[0];
        assert!(c.contains("HttpOnly") && c.contains("SameSite=Lax") && c.contains("Path=/"));
        assert!(c.contains("Max-Age="), "{c}");
        value = r.cookie("koa.sess").unwrap();
        let (data, key) = open(&[KEY2], &value).unwrap();
        assert_eq!((data["views"].as_u64(), key), (Some(3), KeyMatch::Newest));
        // Once re-encrypted, nothing more to write.
        let r = with_cookie(&format!("{rotated}/noop"), &value).await;
        assert!(r.set_cookies.is_empty());
        assert_eq!(
            with_cookie(&format!("{rotated}/views"), &value).await.body,
            "4 views"
        );

        // K1 retired: the re-encrypted cookie still works; one made only under K1 is a new
        // session, and nothing fails.
        let retired = app(encrypted(&[KEY3, KEY2], |b| b)).await;
        let r = with_cookie(&format!("{retired}/read"), &value).await;
        assert_eq!(r.body, r#"{"views":3}"#);
        assert_eq!(r.set_cookies.len(), 1, "re-encrypted under K3");
        let r = with_cookie(&format!("{retired}/views"), &made_under_k1).await;
        assert_eq!((r.status, r.body.as_str()), (200, "1 views"));
    });
    assert!(!log.contains(std::str::from_utf8(KEY3).unwrap()));
}

#[test]
fn every_altered_byte_is_a_new_session_never_an_error() {
    with_capture(|secrets| async move {
        let url = app(encrypted(&[KEY1, KEY2], |b| b)).await;
        let r = get(&raw(), &format!("{url}/login?user=ada")).await;
        secrets.note(&r);
        let value = r.cookie("koa.sess").unwrap();
        let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.";
        let mut tried = 0;
        for (i, c) in value.bytes().enumerate() {
            // Each position, changed to a few other cookie characters.
            for &to in alphabet.iter().filter(|&&a| a != c).step_by(9) {
                let mut v = value.clone().into_bytes();
                v[i] = to;
                let v = String::from_utf8(v).unwrap();
                let r = with_cookie(&format!("{url}/whoami"), &v).await;
                assert_eq!((r.status, r.body.as_str()), (200, "anonymous"), "byte {i}");
                tried += 1;
            }
        }
        // Truncations and extensions.
        for cut in (0..value.len()).step_by(7) {
            let r = with_cookie(&format!("{url}/whoami"), &value[..cut]).await;
            assert_eq!(r.body, "anonymous", "cut at {cut}");
            tried += 1;
        }
        for tail in ["A", "AA", "AAAA", "x_", "."] {
            let r = with_cookie(&format!("{url}/whoami"), &format!("{value}{tail}")).await;
            assert_eq!(r.body, "anonymous", "extended by {tail}");
            tried += 1;
        }
        assert!(tried > 500, "{tried}");
        // The original still works.
        assert_eq!(
            with_cookie(&format!("{url}/whoami"), &value).await.body,
            "ada"
        );
    });
}

#[test]
fn a_value_moved_to_another_cookie_name_or_mode_opens_to_nothing() {
    with_capture(|secrets| async move {
        let a = app(encrypted(&[KEY1], |b| b.cookie_name("a"))).await;
        let bname = app(encrypted(&[KEY1], |b| b.cookie_name("b"))).await;
        let r = get(&raw(), &format!("{a}/login?user=ada")).await;
        secrets.note(&r);
        let value = r.cookie("a").unwrap();
        let r = get_with(&format!("{bname}/whoami"), &format!("b={value}")).await;
        assert_eq!(r.body, "anonymous");
        // A signed-mode server with the same key takes neither the value nor makes one the
        // encrypted server takes.
        let signed = serve(
            SessionLayer::cookie(
                Config::builder()
                    .key(KEY1.to_vec())
                    .cookie_name("a")
                    .build()
                    .unwrap(),
            )
            .build()
            .unwrap(),
        )
        .await;
        let r = get_with(&format!("{signed}/whoami"), &format!("a={value}")).await;
        assert_eq!(r.body, "anonymous");
        let r = get(&raw(), &format!("{signed}/login?user=eve")).await;
        let (v, sig) = (r.cookie("a").unwrap(), r.cookie("a.sig").unwrap());
        let r = get_with(&format!("{a}/whoami"), &format!("a={v}; a.sig={sig}")).await;
        assert_eq!((r.status, r.body.as_str()), (200, "anonymous"));
    });
}

#[test]
fn planted_cookies_neither_hide_nor_end_the_session() {
    with_capture(|secrets| async move {
        let url = app(encrypted(&[KEY1], |b| b)).await;
        let r = get(&raw(), &format!("{url}/login?user=ada")).await;
        secrets.note(&r);
        let real = r.cookie("koa.sess").unwrap();
        // A cookie of the same site made for another visitor (a live session, but not this
        // one) and garbage, planted ahead of the real one by a sibling subdomain.
        let r = get(&raw(), &format!("{url}/views")).await;
        let someone_else = r.cookie("koa.sess").unwrap();
        for planted in 1..=7 {
            let mut header: Vec<String> = (0..planted)
                .map(|i| format!("koa.sess=v1.garbage{i}"))
                .collect();
            header.push(format!("koa.sess={real}"));
            let r = get_with(&format!("{url}/whoami"), &header.join("; ")).await;
            assert_eq!(r.body, "ada", "{planted} planted");
            assert!(r.set_cookies.is_empty(), "the real cookie is left alone");
        }
        // More than are checked: anonymous, and no cookie is removed or replaced.
        let mut header: Vec<String> = (0..12).map(|i| format!("koa.sess=v1.junk{i}")).collect();
        header.push(format!("koa.sess={real}"));
        let r = get_with(&format!("{url}/views"), &header.join("; ")).await;
        assert_eq!(r.status, 200);
        assert!(r.set_cookies.is_empty(), "{:?}", r.set_cookies);
        // Behind another live session the real one is not what the request sees: the first
        // live value wins, as in signed mode. That is the documented limit (an attacker's own
        // live cookie planted ahead, login CSRF), which a `__Host-` name prevents.
        for (order, want) in [
            (
                format!("koa.sess={someone_else}; koa.sess={real}"),
                "anonymous",
            ),
            (format!("koa.sess={real}; koa.sess={someone_else}"), "ada"),
        ] {
            let r = get_with(&format!("{url}/whoami"), &order).await;
            assert_eq!(r.body, want);
        }
    });
}

#[test]
fn concurrent_requests_on_one_session_never_fail() {
    with_capture(|secrets| async move {
        let url = app(encrypted(&[KEY2, KEY1], |b| b)).await;
        let r = get(&raw(), &format!("{url}/login?user=ada")).await;
        secrets.note(&r);
        let value = r.cookie("koa.sess").unwrap();
        let mut tasks = Vec::new();
        for i in 0..300 {
            let (url, value) = (url.clone(), value.clone());
            tasks.push(tokio::spawn(async move {
                // Every request starts from the same cookie (a burst of a page's requests).
                let (path, want) = if i % 2 == 0 {
                    ("views", "1 views")
                } else {
                    ("whoami", "ada")
                };
                (with_cookie(&format!("{url}/{path}"), &value).await, want)
            }));
        }
        let mut failures = 0;
        for t in tasks {
            let (r, want) = t.await.unwrap();
            if r.status != 200 || r.body != want {
                failures += 1;
            }
            // Each answer opens to ada's session under the newest key.
            if let Some(v) = r.cookie("koa.sess") {
                let (data, key) = open(&[KEY2], &v).unwrap();
                assert_eq!(
                    (data["user"].as_str(), key),
                    (Some("ada"), KeyMatch::Newest)
                );
            }
        }
        assert_eq!(failures, 0);
    });
}

#[test]
fn no_plaintext_of_the_session_in_any_set_cookie() {
    with_capture(|secrets| async move {
        let url = app(encrypted(&[KEY1], |b| b)).await;
        let b = browser();
        let secret_values = ["hunter2-password", "4111111111111111", "ada@example.com"];
        for (i, v) in secret_values.iter().enumerate() {
            let r = get(&b, &format!("{url}/set?field{i}={v}")).await;
            secrets.note(&r);
            let all = r.set_cookies.join("\n");
            for needle in [v.to_string(), format!("field{i}")] {
                assert!(!all.contains(&needle), "{needle} in {all}");
                // Nor any base64 spelling of it, at any alignment.
                for pad in ["", "a", "ab"] {
                    let text = format!("{pad}{needle}");
                    for engine in [
                        base64::engine::general_purpose::STANDARD_NO_PAD,
                        base64::engine::general_purpose::URL_SAFE_NO_PAD,
                    ] {
                        let enc = engine.encode(&text);
                        let skip = pad.len() * 4 / 3 + 2;
                        let core = &enc[skip.min(enc.len())..enc.len().saturating_sub(2)];
                        assert!(core.len() < 6 || !all.contains(core), "{needle} as base64");
                    }
                }
            }
        }
        assert_eq!(
            get(&b, &format!("{url}/read")).await.body,
            r#"{"field0":"hunter2-password","field1":"4111111111111111","field2":"ada@example.com"}"#
        );
    });
}

#[test]
fn too_large_is_the_apps_error_and_the_browser_keeps_its_cookie() {
    with_capture(|secrets| async move {
        let url = app(encrypted(&[KEY1], |b| b)).await;
        let b = browser();
        let r = get(&b, &format!("{url}/views")).await;
        secrets.note(&r);
        let r = get(&b, &format!("{url}/commit-big")).await;
        assert_eq!(r.status, 413);
        assert!(r.body.contains("4096"), "{}", r.body);
        // Unhandled at the end of the request: 500, and no cookie is written, so the browser
        // keeps the last good one.
        let r = get(&b, &format!("{url}/big")).await;
        assert_eq!(r.status, 500);
        assert!(r.set_cookies.is_empty());
        assert_eq!(get(&b, &format!("{url}/views")).await.body, "2 views");
    });
}

#[test]
fn wrong_combinations_fail_at_construction() {
    let cfg = encrypted(&[KEY1], |b| b);
    assert!(matches!(
        SessionLayer::store(cfg.clone(), MemoryStore::new()).build(),
        Err(LayerBuildError::EncryptedNeedsCookieMode)
    ));
    assert!(matches!(
        SessionLayer::cookie(cfg)
            .codec(session_cookie::KoaCodec)
            .build(),
        Err(LayerBuildError::CodecWithEncryption)
    ));
    for b in [
        Config::builder().key(b"short".to_vec()).legacy_keys(true),
        Config::builder().unsigned(),
        Config::builder().key(KEY1.to_vec()).koa_compat(true),
    ] {
        assert!(b.cookie_mode(CookieMode::Encrypted).build().is_err());
    }
}

/// Rule 1 holds in every mode: a request whose handler never touches the session writes
/// nothing, fires no event and runs no hook, under `rolling` and `renew` too, whatever cookie
/// it carried (live, garbage, expired, a signed-mode value, a stray `.sig`). Only a live
/// session opened with an older key is written again, as a signature would have told.
#[test]
fn untouched_requests_commit_nothing_in_either_mode() {
    with_capture(|secrets| async move {
        for encrypted_mode in [false, true] {
            for (rolling, renew) in [(false, false), (true, false), (false, true)] {
                let clock = ManualClock::new(T0);
                let events = Arc::new(AtomicUsize::new(0));
                let valid = Arc::new(AtomicUsize::new(0));
                let (e, v) = (Arc::clone(&events), Arc::clone(&valid));
                let hooks = Hooks::new()
                    .on_event(move |_| {
                        e.fetch_add(1, Ordering::SeqCst);
                    })
                    .valid(move |_| {
                        v.fetch_add(1, Ordering::SeqCst);
                        true
                    });
                let mut b = Config::builder()
                    .key(KEY1.to_vec())
                    .clock(Arc::new(clock.clone()))
                    .max_age(MaxAge::Ms(60_000))
                    .rolling(rolling)
                    .renew(renew)
                    .hooks(hooks);
                if encrypted_mode {
                    b = b.cookie_mode(CookieMode::Encrypted);
                }
                let url = app(b.build().unwrap()).await;
                let case = format!("encrypted={encrypted_mode} rolling={rolling} renew={renew}");
                let r = get(&raw(), &format!("{url}/login?user=ada")).await;
                secrets.note(&r);
                let live = r.pairs().join("; ");
                // Late in the session, where `renew` would extend a touched one.
                clock.advance(Duration::from_secs(40));
                events.store(0, Ordering::SeqCst);
                valid.store(0, Ordering::SeqCst);
                let sent = [
                    live.clone(),
                    "koa.sess=v1.garbage".to_owned(),
                    "koa.sess=eyJ2aWV3cyI6MX0=".to_owned(),
                    format!("{live}; koa.sess.sig=AAAA"),
                ];
                for cookies in &sent {
                    let r = get_with(&format!("{url}/noop"), cookies).await;
                    assert!(
                        r.set_cookies.is_empty(),
                        "{case} {cookies}: {:?}",
                        r.set_cookies
                    );
                }
                // Expired, untouched: nothing either.
                clock.advance(Duration::from_secs(30));
                let r = get_with(&format!("{url}/noop"), &live).await;
                assert!(r.set_cookies.is_empty(), "{case}: {:?}", r.set_cookies);
                assert_eq!(events.load(Ordering::SeqCst), 0, "{case}: events");
                assert_eq!(valid.load(Ordering::SeqCst), 0, "{case}: valid hook calls");
                // The same requests, touched: the session is what the mode says (a check that
                // the requests above did carry a session).
                let r = get_with(&format!("{url}/whoami"), &live).await;
                assert_eq!(r.body, "anonymous", "{case}: expired by now");
            }
        }
    });
}

/// Dropping the `.sig` cookie is the configuration's decision: a custom codec that claims to
/// authenticate its values is refused in signed mode (a forged payload would otherwise be
/// taken), and encrypted mode takes a custom codec only if it authenticates.
#[test]
fn a_codec_can_not_turn_signing_off_by_itself() {
    struct Claims;
    impl Codec for Claims {
        fn encode(&self, r: &Record) -> Result<String, session_cookie::CodecError> {
            session_cookie::KoaCodec.encode(r)
        }
        fn decode(&self, v: &str, m: MaxAge) -> Option<Record> {
            session_cookie::KoaCodec.decode(v, m)
        }
        fn authenticates(&self) -> bool {
            true
        }
    }
    let signed = Config::builder().key(KEY1.to_vec()).build().unwrap();
    assert!(matches!(
        SessionLayer::cookie(signed).codec(Claims).build(),
        Err(LayerBuildError::AuthenticatingCodec)
    ));
    // An authenticating codec of the app's own in encrypted mode is used as given.
    with_capture(|secrets| async move {
        let cfg = encrypted(&[KEY2], |b| b);
        let own = EncryptedCodec::new("koa.sess", &[Secret::new(KEY1.to_vec())]).unwrap();
        let url = serve(SessionLayer::cookie(cfg).codec(own).build().unwrap()).await;
        let r = get(&raw(), &format!("{url}/login?user=ada")).await;
        secrets.note(&r);
        let value = r.cookie("koa.sess").unwrap();
        assert!(open(&[KEY1], &value).is_some() && open(&[KEY2], &value).is_none());
    });
}
