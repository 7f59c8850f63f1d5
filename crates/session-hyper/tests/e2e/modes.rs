//! The layer's other modes and options: the external key header, cookie mode, guest mode,
//! `Secure` behind a trusted proxy, `Cache-Control: no-store`.

use super::*;

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
        secrets.add(id.clone());
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
        let value = r.cookie("koa.sess").unwrap();
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
        let id = r.cookie("koa.sess").unwrap();
        assert_eq!(probe.store.len(), 0, "no record until populated");
        let r = get(&b, &format!("{url}/read")).await;
        assert!(
            r.set_cookies.is_empty(),
            "a returning guest keeps its cookie"
        );
        let r = get(&b, &format!("{url}/views")).await;
        // The first write files the session under a fresh id: a guest id is never trusted
        // with data (it may have been planted in this browser by someone who kept a copy).
        let id_now = r.cookie("koa.sess").unwrap();
        assert_ne!(id_now, id, "a populated guest session gets a fresh id");
        assert_eq!(probe.store.len(), 1);
        assert_eq!(get(&b, &format!("{url}/views")).await.body, "2 views");
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
