//! Expires, Max-Age, the session's expiry and the store's TTL agree, at the browsers' cap of
//! 400 days; a signed cookie-mode payload claiming a longer life is not taken.

use super::*;

/// A max-age of ten years is clamped to the cap in the cookie and in the store.
#[test]
fn expiry_beyond_the_browser_cap_is_clamped_everywhere() {
    attack(|secrets| async move {
        let ten_years = 10 * 365 * session_core::driver::ONE_DAY_MS;
        let cap_secs = session_core::driver::MAX_AGE_CAP_MS / 1000;
        for v in variants(Expiry).await {
            let app = v.app(|b| b.max_age(MaxAge::Ms(ten_years))).await;
            let r = app.get("/", &Jar::default()).await;
            secrets.note(&r);
            let c = &r.set_cookies[0];
            assert!(c.contains(&format!("Max-Age={cap_secs};")), "{c}");
            let expires = c
                .split("Expires=")
                .nth(1)
                .unwrap()
                .split(';')
                .next()
                .unwrap();
            let expires = httpdate::parse_http_date(expires).unwrap();
            let in_400_days = std::time::SystemTime::now() + Duration::from_secs(cap_secs);
            let drift = in_400_days
                .duration_since(expires)
                .unwrap_or_else(|e| e.duration());
            assert!(
                drift < Duration::from_secs(60),
                "Expires is {drift:?} off the cap"
            );
            for (node, k) in v.backend.redis_keys().await {
                let pttl = redis::int(&node, &["PTTL", &k]).await as u64;
                assert!(
                    pttl <= session_core::driver::MAX_AGE_CAP_MS + 10_000,
                    "PTTL {pttl}"
                );
                assert!(
                    pttl > session_core::driver::MAX_AGE_CAP_MS - 60_000,
                    "PTTL {pttl}"
                );
            }
        }
        // A cookie-mode payload made with the site's key (signed, or sealed) that claims a
        // life beyond what this server writes.
        for mode in cookie_modes() {
            let cfg = config(|b| b.cookie_mode(mode));
            let now = cfg.now_ms();
            let app = App::serve(SessionLayer::cookie(cfg.clone()).build().unwrap()).await;
            for (expire, max_age, accepted) in [
                (now + 3_600_000, 86_400_000, true),
                (
                    now + 2 * 365 * session_core::driver::ONE_DAY_MS,
                    86_400_000,
                    false,
                ),
                (
                    now + 2 * 365 * session_core::driver::ONE_DAY_MS,
                    ten_years,
                    false,
                ),
            ] {
                let mut data = serde_json::Map::new();
                data.insert("user".into(), json!("mallory"));
                let record = Record {
                    data,
                    meta: Meta {
                        expire: Some(expire),
                        max_age: MaxAge::Ms(max_age),
                        created: None,
                    },
                };
                let header = signed_payload(&cfg, &record, now);
                let r = app.req(Method::GET, "/session", &header, None).await;
                assert_eq!(
                    r.body.contains("mallory"),
                    accepted,
                    "{mode:?}: expire {expire}, max-age {max_age}"
                );
            }
        }
    });
}
