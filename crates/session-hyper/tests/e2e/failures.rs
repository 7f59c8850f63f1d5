//! Failures and concurrency: a store that is down, the error hook, nothing saved on a 5xx,
//! concurrent requests on one session, and the handle's thread safety.

use super::*;

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
fn concurrent_requests_changing_different_keys_both_land() {
    with_capture(|secrets| async move {
        let (cfg, probe, _) = clocked(|b| b);
        let url = store_app(cfg, &probe).await;
        let r = get(&raw(), &format!("{url}/set?base=1")).await;
        secrets.note(&r);
        let jar = r.pairs().join("; ");
        let (cart, theme) = (
            format!("{url}/slow-set?cart=book"),
            format!("{url}/slow-set?theme=dark"),
        );
        let (a, b) = tokio::join!(get_with(&cart, &jar), get_with(&theme, &jar));
        assert_eq!((a.status, b.status), (200, 200));
        let r = get_with(&format!("{url}/read"), &jar).await;
        assert_eq!(r.body, r#"{"base":"1","cart":"book","theme":"dark"}"#);
    });
}

#[test]
fn handle_is_send_sync_clone() {
    fn check<T: Send + Sync + Clone + 'static>() {}
    check::<session_hyper::Session>();
}
