//! How long a session lives: max-age, rolling, renew, and the absolute lifetime.

use super::*;

#[test]
fn expiry_rolling_and_renew() {
    with_capture(|secrets| async move {
        // Plain: expires after max-age even though the client keeps the cookie.
        let (cfg, probe, clock) = clocked(|b| b.max_age(MaxAge::Ms(60_000)));
        let url = store_app(cfg, &probe).await;
        let r = get(&raw(), &format!("{url}/views")).await;
        secrets.note(&r);
        let jar = r.pairs().join("; ");
        clock.advance(Duration::from_secs(59));
        let r = get_with(&format!("{url}/views"), &jar).await;
        assert_eq!(r.body, "2 views");
        clock.advance(Duration::from_secs(61));
        let r = get_with(&format!("{url}/read"), &jar).await;
        assert_eq!(r.body, "{}", "expired on the server side");

        // Rolling: every response re-sends the cookie and extends the session.
        let (cfg, probe, clock) = clocked(|b| b.max_age(MaxAge::Ms(60_000)).rolling(true));
        let url = store_app(cfg, &probe).await;
        let r = get(&raw(), &format!("{url}/views")).await;
        secrets.note(&r);
        let jar = r.pairs().join("; ");
        for _ in 0..5 {
            clock.advance(Duration::from_secs(40));
            let r = get_with(&format!("{url}/read"), &jar).await;
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
        let jar = r.pairs().join("; ");
        clock.advance(Duration::from_secs(20));
        let r = get_with(&format!("{url}/read"), &jar).await;
        assert!(r.set_cookies.is_empty(), "40 s of 60 left: no renew");
        clock.advance(Duration::from_secs(15));
        let r = get_with(&format!("{url}/read"), &jar).await;
        assert_eq!(r.set_cookies.len(), 2, "25 s of 60 left: renewed");
        clock.advance(Duration::from_secs(50));
        let r = get_with(&format!("{url}/read"), &jar).await;
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
        let jar = r.pairs().join("; ");
        for _ in 0..3 {
            clock.advance(Duration::from_secs(40));
            assert_eq!(
                get_with(&format!("{url}/read"), &jar).await.body,
                r#"{"views":1}"#
            );
        }
        clock.advance(Duration::from_secs(40));
        let r = get_with(&format!("{url}/read"), &jar).await;
        assert_eq!(r.body, "{}", "160 s after creation the 150 s cap ended it");
    });
}
