//! The session cookies: what a new visitor gets, what an unchanged or untouched session
//! costs, logout, regenerate, key rotation, and bad, tampered, random and expired cookies.

use super::*;

#[test]
fn new_visitor_then_counter_increments() {
    with_capture(|secrets| async move {
        let (cfg, probe, _) = clocked(|b| b);
        let url = store_app(cfg, &probe).await;
        let b = browser();
        let r = get(&b, &format!("{url}/views")).await;
        secrets.note(&r);
        assert_eq!(r.body, "1 views");
        let names: Vec<String> = r
            .pairs()
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
        let id = r.cookie("koa.sess").unwrap();
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
        let old = r.pairs().join("; ");
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
        let r = get_with(&format!("{url}/whoami"), &old).await;
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
        let before = r.cookie("koa.sess").unwrap();
        let pre_login = r.pairs().join("; ");
        let r = get(&b, &format!("{url}/login?user=ada")).await;
        secrets.note(&r);
        let after = r.cookie("koa.sess").unwrap();
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
        let r = get_with(&format!("{url}/whoami"), &pre_login).await;
        assert_eq!(r.body, "anonymous");
        assert!(r.set_cookies.is_empty(), "{:?}", r.set_cookies);
        // After the grace time the marker is gone and the old id is simply unknown.
        clock.advance(session_core::driver::DEFAULT_SUPERSEDE_GRACE + Duration::from_secs(1));
        assert_eq!(probe.store.sweep(), 1);
        assert_eq!(probe.store.len(), 1);
        let r = get_with(&format!("{url}/whoami"), &pre_login).await;
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
        let jar = r.pairs().join("; ");
        let old_sig = r.cookie("koa.sess.sig").unwrap();
        let expires = r.set_cookies[0]
            .split("; ")
            .find(|a| a.starts_with("Expires="))
            .unwrap()
            .to_owned();
        clock.advance(Duration::from_secs(60));
        // A read-only request under the rotated keys: the session loads, and is re-signed.
        let r = get_with(&format!("{url_new}/noop"), &jar).await;
        secrets.note(&r);
        assert_eq!(r.set_cookies.len(), 2, "re-signed: {:?}", r.set_cookies);
        let new_sig = r.cookie("koa.sess.sig").unwrap();
        assert_ne!(new_sig, old_sig);
        assert_eq!(
            r.cookie("koa.sess"),
            Some(jar.split("; ").next().unwrap()[9..].to_owned())
        );
        for c in &r.set_cookies {
            assert!(c.contains(&expires), "original expiry kept: {c}");
            assert!(c.contains("SameSite=Lax") && c.contains("HttpOnly"));
        }
        let r = get_with(&format!("{url_new}/read"), &r.pairs().join("; ")).await;
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
            let id = r.cookie(name).unwrap();
            let bad = format!("{name}={id}; {name}.sig=AAAAAAAAAAAAAAAAAAAAAAAAAAA");
            let r = get_with(&format!("{url}/read"), &bad).await;
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
        let id = r.cookie("koa.sess").unwrap();
        let sig = r.cookie("koa.sess.sig").unwrap();
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
            let r = get_with(&format!("{url}/read"), &c).await;
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
        let r = get_with(
            &format!("{url}/views"),
            &format!("koa.sess={flipped}; koa.sess.sig={sig}"),
        )
        .await;
        assert_eq!(r.body, "1 views");
        assert_ne!(r.cookie("koa.sess").unwrap(), flipped);
    });
}

#[test]
fn flood_of_random_and_expired_cookies_creates_no_record() {
    with_capture(|secrets| async move {
        let (cfg, probe, clock) = clocked(|b| b.max_age(MaxAge::Ms(1000)));
        let url = store_app(cfg.clone(), &probe).await;
        let r = get(&raw(), &format!("{url}/views")).await;
        secrets.note(&r);
        let expired = r.pairs().join("; ");
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
