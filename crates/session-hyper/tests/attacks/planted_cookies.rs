//! Planted cookies (cookie tossing) never log the user out: junk values and signatures, dead
//! pairs the site once gave the attacker, revoked or expired sessions, too many to check; a
//! logout under them still ends the session, and what they cost is bounded.

use super::*;

/// `n` copies of a planted cookie, as a Cookie header fragment.
fn planted(cookie: &str, n: usize) -> String {
    vec![cookie; n].join("; ")
}

/// Planted values and signatures ahead of, behind and between the real pair: up to what is
/// checked the real session is used, beyond it the request is anonymous and sends no cookie;
/// never a removal of the real cookies.
#[test]
fn planted_cookies_never_remove_the_real_ones() {
    attack(|secrets| async move {
        let v = Variant::plain(Backend::memory());
        let app = v.app(|b| b).await;
        let user = unique("heidi");
        secrets.add(&user);
        let jar = app.logged_in(&user, &secrets).await;
        let real = jar.header();
        let (real_value, real_sig) = real.split_once("; ").unwrap();
        let junk_sig = format!("{SIG}={}", "A".repeat(43));
        let cases: Vec<(String, &str, bool)> = vec![
            (
                format!("{}; {real}", planted(junk_sig.as_str(), 4)),
                "4 planted .sig ahead",
                true,
            ),
            (
                format!("{}; {real}", planted("koa.sess=planted", 4)),
                "4 planted values ahead",
                true,
            ),
            (
                format!("{real}; {}", planted(junk_sig.as_str(), 4)),
                "4 planted .sig behind",
                true,
            ),
            (
                format!("{}; {real}", planted(junk_sig.as_str(), 15)),
                "15 planted .sig ahead",
                true,
            ),
            (
                format!("{}; {real}", planted(junk_sig.as_str(), 40)),
                "40 planted .sig ahead",
                false,
            ),
            (
                format!("{}; {real}", planted("koa.sess=planted", 12)),
                "12 planted values ahead",
                false,
            ),
            (
                format!(
                    "{}; {real}",
                    vec![format!("koa.sess=planted; {junk_sig}"); 10].join("; ")
                ),
                "10 planted pairs ahead",
                false,
            ),
            // At the bounds: the real value is the 8th checked / the 9th not checked; the real
            // signature the 16th / the 17th.
            (
                format!("{}; {real}", planted("koa.sess=planted", 7)),
                "7 planted values ahead",
                true,
            ),
            (
                format!("{}; {real}", planted("koa.sess=planted", 8)),
                "8 planted values ahead",
                false,
            ),
            (
                format!("{real_value}; {}; {real_sig}", planted(&junk_sig, 15)),
                "15 planted .sig between the real pair",
                true,
            ),
            (
                format!("{real_value}; {}; {real_sig}", planted(&junk_sig, 16)),
                "16 planted .sig between the real pair",
                false,
            ),
            // Values that are not cookie values are not counted.
            (
                format!("{}; {real}", planted("koa.sess=a\\b", 30)),
                "30 malformed values ahead",
                true,
            ),
        ];
        let mut removals = 0;
        for (header, what, honoured) in &cases {
            for _ in 0..20 {
                for path in ["/session", "/"] {
                    let r = app.req(Method::GET, path, header, None).await;
                    removals += usize::from(r.removes());
                    if *honoured {
                        assert_eq!(r.status, 200);
                        if path == "/session" {
                            assert!(r.body.contains(&user), "{what}: the real session is used");
                        }
                    } else {
                        // Too many to check: anonymous, and no cookie at all (neither a removal
                        // nor a new session that would replace the real one).
                        assert!(r.set_cookies.is_empty(), "{what}: {:?}", r.set_cookies);
                        assert!(!r.body.contains(&user));
                    }
                }
            }
        }
        eprintln!(
            "planted cookies: {} cases x 20 x 2 requests, removal cookies: {removals}",
            cases.len()
        );
        assert_eq!(removals, 0);
        // The real pair alone still works after all that.
        assert!(app.get("/session", &jar).await.body.contains(&user));
        // Planted values in one Cookie field, the real pair in a second (as HTTP/2 sends them).
        for _ in 0..20 {
            let r = send(
                app.client
                    .get(format!("{}/session", app.url()))
                    .header("cookie", planted("koa.sess=planted", 3))
                    .header("cookie", real.clone()),
            )
            .await;
            assert!(r.body.contains(&user) && r.set_cookies.is_empty());
        }
        // A huge Cookie header of junk: anonymous, no crash, no record.
        let junk: String = (0..2000).map(|i| format!("c{i}=v{i}; ")).collect();
        let r = app.req(Method::GET, "/session", &junk, None).await;
        assert_eq!((r.status, r.is_new()), (200, Some(true)));
    });
}

/// A cookie pair the site once gave the attacker, dead now (logged out, or an expired
/// cookie-mode payload), planted ahead of the real pair: the first live one is the session, so
/// the real one is neither removed nor replaced, and a logout still ends it.
#[test]
fn a_planted_dead_cookie_never_ends_the_real_session() {
    attack(|secrets| async move {
        let (mut removals, mut lost) = (0, 0);
        for v in variants(Planted).await {
            let app = v.app(|b| b).await;
            let user = unique("ivan");
            secrets.add(&user);
            let real = app.logged_in(&user, &secrets).await;
            let mut attacker = Jar::default();
            let r = app.put(&json!({ "a": 1 }), &attacker).await;
            secrets.note(&r);
            attacker.apply(&r);
            assert_eq!(app.logout(&attacker).await.status, 204);
            let header = format!("{}; {}", attacker.header(), real.header());
            for i in 0..100 {
                let path = if i % 2 == 0 { "/session" } else { "/" };
                let r = app.req(Method::GET, path, &header, None).await;
                removals += usize::from(r.removes());
                let real_used = path == "/" || r.body.contains(&user);
                lost += usize::from(r.status != 200 || !real_used);
            }
            let r = app.get("/session", &real).await;
            assert!(
                r.body.contains("\"views\":50"),
                "{}: 50 visits counted",
                v.label()
            );
            let r = app.req(Method::DELETE, "/session", &header, None).await;
            assert_eq!(r.status, 204);
            let r = app.get("/session", &real).await;
            assert!(
                !r.body.contains(&user),
                "{}: the logout ended the real session",
                v.label()
            );
        }
        // Unsigned cookies: any value can be planted.
        let app = Variant::plain(Backend::memory())
            .app(|b| b.unsigned())
            .await;
        let user = unique("judy");
        secrets.add(&user);
        let real = app.logged_in(&user, &secrets).await;
        let fake = format!("{NAME}={}", "A".repeat(43));
        for i in 0..100 {
            let n = 1 + i % (session_cookie::MAX_CANDIDATES - 1);
            let header = format!("{}; {}", planted(&fake, n), real.header());
            let r = app.req(Method::GET, "/session", &header, None).await;
            removals += usize::from(r.removes());
            lost += usize::from(!r.body.contains(&user));
            // More than are checked: anonymous, and the cookies are left alone, whether the
            // planted values look like ids or not.
            let junk = planted("koa.sess=x", session_cookie::MAX_CANDIDATES + i % 3);
            let r = app
                .req(
                    Method::GET,
                    "/",
                    &format!("{junk}; {}", real.header()),
                    None,
                )
                .await;
            assert!(r.set_cookies.is_empty(), "{:?}", r.set_cookies);
            let many = planted(&fake, session_cookie::MAX_CANDIDATES);
            let r = app
                .req(
                    Method::GET,
                    "/",
                    &format!("{many}; {}", real.header()),
                    None,
                )
                .await;
            assert!(r.set_cookies.is_empty(), "{:?}", r.set_cookies);
        }
        // Cookie mode, signed and encrypted: an expired payload made with the site's key
        // ahead of the live one.
        for mode in cookie_modes() {
            let cfg = config(|b| b.cookie_mode(mode));
            let now = cfg.now_ms();
            let app = App::serve(SessionLayer::cookie(cfg.clone()).build().unwrap()).await;
            let user = unique("kim");
            secrets.add(&user);
            let real = app.logged_in(&user, &secrets).await;
            let mut data = serde_json::Map::new();
            data.insert("user".into(), json!("mallory"));
            let expired = Record {
                data,
                meta: Meta {
                    expire: Some(now - 1_000),
                    max_age: MaxAge::Ms(86_400_000),
                    created: None,
                },
            };
            let dead = signed_payload(&cfg, &expired, now);
            for _ in 0..100 {
                let header = format!("{dead}; {}", real.header());
                let r = app.req(Method::GET, "/session", &header, None).await;
                removals += usize::from(r.removes());
                lost += usize::from(!r.body.contains(&user));
            }
        }
        eprintln!("planted dead cookies: removal cookies {removals}, real session not used {lost}");
        assert_eq!((removals, lost), (0, 0));
    });
}

/// A logout sent while planted cookies hide the real pair from the usual checks still ends
/// the session on the server (the cookies it removes are not all there is to it): junk values
/// alone ahead of it, or with one of the attacker's own signed cookies (dead, or just
/// superseded by a regenerate) among the checked ones.
#[test]
fn a_logout_under_planted_cookies_ends_the_server_session() {
    attack(|secrets| async move {
        let (mut alive, mut n) = (0, 0);
        for v in variants(Planted).await {
            let app = v.app(|b| b).await;
            for i in 0..60 {
                let user = unique("liam");
                secrets.add(&user);
                let real = app.logged_in(&user, &secrets).await;
                let attacker = match i % 3 {
                    0 => String::new(),
                    1 => format!("{}; ", app.dead_pair(&secrets).await.header()),
                    _ => {
                        let jar = app.logged_in(&unique("mallory"), &secrets).await;
                        assert!(app.regenerate(&jar).await.sets_id().is_some());
                        format!("{}; ", jar.header())
                    }
                };
                let junk = planted("koa.sess=planted", session_cookie::MAX_CANDIDATES + i % 40);
                let header = format!("{attacker}{junk}; {}", real.header());
                let r = app.req(Method::GET, "/session", &header, None).await;
                assert!(
                    r.set_cookies.is_empty() && !r.body.contains(&user),
                    "ambiguous"
                );
                let r = app.req(Method::DELETE, "/session", &header, None).await;
                assert_eq!(r.status, 204);
                n += 1;
                alive += usize::from(app.get("/session", &real).await.body.contains(&user));
            }
        }
        eprintln!("logouts under planted cookies that left the session alive: {alive}/{n}");
        assert_eq!(alive, 0);
    });
}

/// the TTL margin). It is not the session, so the real one is neither removed nor replaced.
#[test]
fn a_revoked_or_expired_session_planted_ahead_never_ends_the_real_one() {
    attack(|secrets| async move {
        let hooks = || recording_hooks().valid(|d| !d.contains_key("revoked"));
        let (mut removed, mut replaced, mut lost) = (0, 0, 0);
        for v in variants(Planted).await {
            let app = v.app(|b| b.hooks(hooks())).await;
            for i in 0..30 {
                let user = unique("nora");
                secrets.add(&user);
                let real = app.logged_in(&user, &secrets).await;
                let attacker = app.logged_in(&unique("mallory"), &secrets).await;
                assert_eq!(
                    app.put(&json!({ "revoked": true }), &attacker).await.status,
                    204
                );
                let header = format!("{}; {}", attacker.header(), real.header());
                let path = if i % 2 == 0 { "/session" } else { "/" };
                let r = app.req(Method::GET, path, &header, None).await;
                removed += usize::from(r.removes());
                replaced += usize::from(r.sets_id().is_some_and(|v| Some(v.as_str()) != real.id()));
                lost += usize::from(path == "/session" && !r.body.contains(&user));
            }
            let app = v
                .app(|b| b.absolute_lifetime(Duration::from_millis(500)))
                .await;
            let mut attackers = Vec::new();
            for _ in 0..10 {
                attackers.push(app.logged_in(&unique("mallory"), &secrets).await);
            }
            tokio::time::sleep(Duration::from_millis(700)).await;
            for attacker in &attackers {
                let user = unique("nora");
                secrets.add(&user);
                let real = app.logged_in(&user, &secrets).await;
                let header = format!("{}; {}", attacker.header(), real.header());
                let r = app.req(Method::GET, "/session", &header, None).await;
                removed += usize::from(r.removes());
                lost += usize::from(!r.body.contains(&user));
            }
        }
        eprintln!(
            "revoked or expired sessions planted ahead: removed {removed}, replaced {replaced}, real not used {lost}"
        );
        assert_eq!((removed, replaced, lost), (0, 0, 0));
    });
}

/// What planted cookies can make one request cost: a read tries at most the values it
/// checks, and a logout makes at most its budget of store calls however many ids it carries.
#[test]
fn planted_cookies_cost_a_bounded_number_of_store_calls() {
    attack(|secrets| async move {
        let v = Variant::plain(Backend::memory());
        let app = v.app(|b| b).await;
        let mut dead = Vec::new();
        for _ in 0..70 {
            dead.push(app.dead_pair(&secrets).await.header());
        }
        let calls = |b: &Backend| {
            let p = b.pause();
            (
                p.loads.load(Ordering::SeqCst),
                p.destroys.load(Ordering::SeqCst),
            )
        };
        for n in [1, 8, 20, 70] {
            let header = dead[..n].join("; ");
            let (l0, d0) = calls(&v.backend);
            let r = app.req(Method::GET, "/session", &header, None).await;
            let (l1, _) = calls(&v.backend);
            assert_eq!(r.status, 200);
            assert!(
                l1 - l0 <= session_cookie::MAX_CANDIDATES,
                "{n} dead ids: {} loads",
                l1 - l0
            );
            let r = app.req(Method::DELETE, "/session", &header, None).await;
            let (_, d1) = calls(&v.backend);
            assert_eq!(r.status, 204);
            assert!(
                d1 - d0 <= 2 * session_cookie::MAX_DESTROY_CANDIDATES,
                "{n} dead ids: {} destroys",
                d1 - d0
            );
            eprintln!(
                "{n} dead ids: a read makes {} loads, a logout {} destroys",
                l1 - l0,
                d1 - d0
            );
        }
    });
}
