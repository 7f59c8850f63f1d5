//! Attacks the promise of CSRF protection: **an unsafe request reaches the handler only when
//! the browser says it came from our own pages (`Sec-Fetch-Site: same-origin`) or it carries
//! a token this visitor was given, under its current identity; a cross-site request never
//! does.** Another session's token, one from before a login or a logout, a forged mask, a
//! token without its nonce cookie: all 403. And the protection costs nothing it must not: a
//! valid token is never refused however many pages and posts race on one session, an
//! anonymous visitor's tokens write no store record, and a form's body reaches the handler
//! intact (a form too large to check is 413). Over real TCP through an axum app with
//! `CsrfLayer` inside `SessionLayer`; on the memory store, signed and encrypted cookies, and on
//! Redis with `--features redis-tests`. The app is `pages/csrf_app.rs`.
#![cfg(feature = "axum")]
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod pages;

use std::sync::{Arc, Mutex};

use http::Method;
use session_hyper::csrf::CSRF_HEADER;
use session_hyper::{MemoryStore, SessionLayer};
use session_testkit::client::Jar;

use pages::csrf_app::{FORM, MAX_FORM, Tok, client, expect, flip, post_to, send, token};
use pages::{Client, Mode, NAME, NONCE, PLAIN, assert_none, config, nonce_cookie};

/// One case of the rule: what it is, the path, the cookies, `Sec-Fetch-Site`, the token, and
/// the status it must answer.
type Case<'a> = (&'a str, &'a str, &'a Jar, Option<&'a str>, Tok<'a>, u16);

/// Every case of the rule for two visitors of `mode`.
async fn rule(mode: Mode) -> Vec<String> {
    let c = client(mode.layer(|b| b).await).await;
    let (mut a, mut b) = (Jar::default(), Jar::default());
    c.visit("/start", &mut a, PLAIN).await;
    c.visit("/start", &mut b, PLAIN).await;
    let ta = token(&c, &mut a).await;
    let tb = token(&c, &mut b).await;
    let none = Jar::default();
    let (mask, secret) = (flip(&ta, 0), flip(&ta, 40));
    let garbage = "A".repeat(86);
    let cross = Some("cross-site");
    #[rustfmt::skip]
    let cases: Vec<Case> = vec![
        ("cross-site, no token", "/post", &a, cross, Tok::No, 403),
        ("cross-site, header token", "/post", &a, cross, Tok::Header(&ta), 403),
        ("cross-site, form token", "/post", &a, cross, Tok::Form(&ta), 403),
        ("no Sec-Fetch-Site, no token", "/post", &a, None, Tok::No, 403),
        ("same-site, no token", "/post", &a, Some("same-site"), Tok::No, 403),
        ("none, no token", "/post", &a, Some("none"), Tok::No, 403),
        ("same-origin, no token", "/post", &a, Some("same-origin"), Tok::No, 200),
        ("same-origin, no cookies", "/post", &none, Some("same-origin"), Tok::No, 200),
        ("no Sec-Fetch-Site, header token", "/post", &a, None, Tok::Header(&ta), 200),
        ("no Sec-Fetch-Site, form token", "/post", &a, None, Tok::Form(&ta), 200),
        ("same-site, token", "/post", &a, Some("same-site"), Tok::Header(&ta), 200),
        ("none, token", "/post", &a, Some("none"), Tok::Form(&ta), 200),
        ("A's token on B", "/post", &b, None, Tok::Header(&ta), 403),
        ("A's token on B, in the form", "/post", &b, None, Tok::Form(&ta), 403),
        ("B's token on A", "/post", &a, None, Tok::Header(&tb), 403),
        ("A's token without A's cookies", "/post", &none, None, Tok::Header(&ta), 403),
        ("a flipped mask byte", "/post", &a, None, Tok::Header(&mask), 403),
        ("a flipped secret byte", "/post", &a, None, Tok::Form(&secret), 403),
        ("a truncated token", "/post", &a, None, Tok::Header(&ta[..85]), 403),
        ("garbage", "/post", &a, None, Tok::Header(&garbage), 403),
        ("a wrong header, the form's token", "/post", &a, None, Tok::Both(&garbage, &ta), 200),
        ("an empty header, the form's token", "/post", &a, None, Tok::Both("", &ta), 200),
        ("the header's token, a wrong field", "/post", &a, None, Tok::Both(&ta, &garbage), 200),
        ("B's token in both", "/post", &a, None, Tok::Both(&tb, &tb), 403),
        ("exempt prefix, cross-site", "/hooks/github", &a, cross, Tok::No, 200),
        ("exempt path, no token", "/webhook", &none, None, Tok::No, 200),
        ("below an exempt path", "/webhook/x", &a, None, Tok::No, 403),
        ("in the handler, token", "/manual", &a, None, Tok::Header(&ta), 200),
        ("in the handler, B's token", "/manual", &a, None, Tok::Header(&tb), 403),
        ("in the handler, cross-site", "/manual", &a, cross, Tok::Header(&ta), 403),
    ];
    let mut f = Vec::new();
    for (what, path, jar, site, tok, want) in cases {
        let r = post_to(&c, path, jar, site, tok).await;
        expect(&mut f, &format!("{mode:?}: {what}"), &r, want);
    }
    for method in [Method::PUT, Method::DELETE, Method::PATCH] {
        let r = send(&c, method.clone(), "/post", &a, None, Tok::No).await;
        expect(
            &mut f,
            &format!("{mode:?}: {method} without a token"),
            &r,
            403,
        );
        let r = send(&c, method.clone(), "/post", &a, None, Tok::Header(&ta)).await;
        expect(&mut f, &format!("{mode:?}: {method} with a token"), &r, 200);
    }
    // A repeated `Sec-Fetch-Site` is nothing a browser sends: trusted for nothing.
    for (sites, tok, want) in [
        (["same-origin", "same-origin"], Tok::No, 403),
        (["same-origin", "cross-site"], Tok::Header(&ta), 403),
        (["same-origin", "same-site"], Tok::Header(&ta), 200),
    ] {
        let mut h = vec![("sec-fetch-site", sites[0]), ("sec-fetch-site", sites[1])];
        if let Tok::Header(t) = tok {
            h.push((CSRF_HEADER, t));
        }
        let r = c.send(Method::POST, "/post", &a, PLAIN, &h, None).await;
        expect(
            &mut f,
            &format!("{mode:?}: Sec-Fetch-Site {sites:?}, {tok:?}"),
            &r,
            want,
        );
    }
    let cross_get = [("sec-fetch-site", "cross-site")];
    let r = c
        .send(Method::GET, "/form", &a, PLAIN, &cross_get, None)
        .await;
    expect(&mut f, &format!("{mode:?}: a cross-site GET"), &r, 200);
    f
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rule_refuses_cross_site_foreign_and_forged_tokens_and_passes_the_rest() {
    let mut f = Vec::new();
    for mode in Mode::stores()
        .into_iter()
        .chain([Mode::Signed, Mode::Encrypted])
    {
        f.extend(rule(mode).await);
    }
    assert_none("the rule", &f);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_form_too_large_to_check_is_413_and_a_checked_one_arrives_intact() {
    let c = client(Mode::Memory.layer(|b| b).await).await;
    let mut jar = Jar::default();
    let t = token(&c, &mut jar).await;
    let mut f = Vec::new();
    let field = format!("_csrf={t}");
    let pad = |n: usize| format!("note={}&{field}", "x".repeat(n - field.len() - 6));
    #[rustfmt::skip]
    let cases: Vec<(&str, String, &str, bool, u16)> = vec![
        ("a form at the limit", pad(MAX_FORM), FORM, false, 200),
        ("a form one byte over", pad(MAX_FORM + 1), FORM, false, 413),
        ("a large form, token in the header", pad(4 * MAX_FORM), FORM, true, 200),
        ("a form with a charset", pad(100), "application/x-www-form-urlencoded; charset=UTF-8", false, 200),
        ("JSON is no form", format!(r#"{{"_csrf":"{t}"}}"#), "application/json", false, 403),
        ("multipart is not read", format!("--b\r\nContent-Disposition: form-data; name=\"_csrf\"\r\n\r\n{t}\r\n--b--\r\n"), "multipart/form-data; boundary=b", false, 403),
    ];
    for (what, body, ctype, in_header, want) in cases {
        let len = body.len();
        let h: Vec<(&str, &str)> = if in_header {
            vec![(CSRF_HEADER, &t)]
        } else {
            vec![]
        };
        let r = c
            .send(Method::POST, "/post", &jar, PLAIN, &h, Some((ctype, body)))
            .await;
        expect(&mut f, what, &r, want);
        if want == 200 && r.body != format!("{len} bytes") {
            f.push(format!("{what}: the handler got {} of {len} bytes", r.body));
        }
    }
    assert_none("form limits", &f);
}

/// A visitor's life: anonymous, logged in, logged in again, logged out, twice. Each new
/// identity's tokens pass, and every token of the one before fails.
async fn identities(mode: Mode, begun: bool) -> Vec<String> {
    let c = client(mode.layer(|b| b).await).await;
    let mut jar = Jar::default();
    let mut f = Vec::new();
    let what = |step: &str| format!("{mode:?} (session begun before: {begun}): {step}");
    if begun {
        c.visit("/start", &mut jar, PLAIN).await;
    }
    let t0 = token(&c, &mut jar).await;
    let r = post_to(&c, "/post", &jar, None, Tok::Form(&t0)).await;
    expect(&mut f, &what("before the login"), &r, 200);
    let old_jar = jar.clone();
    let r = post_to(&c, "/login", &jar, None, Tok::Form(&t0)).await;
    expect(&mut f, &what("the login"), &r, 200);
    jar.apply(&r);
    let r = post_to(&c, "/post", &jar, None, Tok::Header(&t0)).await;
    expect(&mut f, &what("the token from before the login"), &r, 403);
    // The old nonce cookie kept beside the new session (a browser that dropped the removal)
    // gives the old token nothing where the session lives in a store.
    if mode.is_store()
        && let Some((_, n)) = old_jar.0.iter().find(|(k, _)| k == NONCE)
    {
        let mut kept = jar.clone();
        kept.0.retain(|(k, _)| k != NONCE);
        kept.0.push((NONCE.to_owned(), n.clone()));
        let r = post_to(&c, "/post", &kept, None, Tok::Header(&t0)).await;
        expect(
            &mut f,
            &what("the old token with the old nonce kept"),
            &r,
            403,
        );
    }
    let t1 = token(&c, &mut jar).await;
    let r = post_to(&c, "/post", &jar, None, Tok::Header(&t1)).await;
    expect(&mut f, &what("a token after the login"), &r, 200);
    // A second login and a logout, each rendering the next page's token.
    let mut last = t1;
    for step in ["/login", "/logout"] {
        let r = c
            .send(
                Method::POST,
                step,
                &jar,
                PLAIN,
                &[(CSRF_HEADER, &last), ("x-mint", "1")],
                None,
            )
            .await;
        expect(&mut f, &what(step), &r, 200);
        jar.apply(&r);
        let r2 = post_to(&c, "/post", &jar, None, Tok::Header(&last)).await;
        expect(
            &mut f,
            &what(&format!("the token from before {step}")),
            &r2,
            403,
        );
        let r3 = post_to(&c, "/post", &jar, None, Tok::Form(&r.body)).await;
        expect(
            &mut f,
            &what(&format!("the token {step} rendered")),
            &r3,
            200,
        );
        last = r.body;
    }
    let r = post_to(&c, "/logout", &jar, None, Tok::Header(&last)).await;
    expect(&mut f, &what("a logout without a new token"), &r, 200);
    jar.apply(&r);
    let r = post_to(&c, "/post", &jar, None, Tok::Header(&last)).await;
    expect(&mut f, &what("the token from before that logout"), &r, 403);
    f
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_from_before_a_login_or_logout_fails_after_it() {
    let mut f = Vec::new();
    for mode in Mode::stores()
        .into_iter()
        .chain([Mode::Signed, Mode::Encrypted])
    {
        for begun in [false, true] {
            f.extend(identities(mode, begun).await);
        }
    }
    assert_none("identities", &f);
}

/// Page loads minting tokens racing posts that carry tokens from earlier pages, `n` requests
/// at once on one visitor's cookies; a session begun first when `session`.
async fn storm(mode: Mode, session: bool, n: usize) -> Vec<String> {
    let c = client(mode.layer(|b| b).await).await;
    let mut jar = Jar::default();
    if session {
        c.visit("/start", &mut jar, PLAIN).await;
    }
    let mut tokens = Vec::new();
    for _ in 0..4 {
        tokens.push(token(&c, &mut jar).await);
    }
    // One browser: each request carries the cookies as they are when it leaves, and each
    // response's cookies are taken as it arrives.
    let jar = Arc::new(Mutex::new(jar));
    let pool = Arc::new(Mutex::new(tokens));
    let path = if session { "/count" } else { "/post" };
    let who = if session { "a session" } else { "anonymous" };
    // Request `i`: a page (even), or a post with a token picked from the pages served so far
    // (odd), or with `given`.
    let send_one = |i: usize, given: Option<String>| {
        let (c, jar, pool) = (c.clone(), Arc::clone(&jar), Arc::clone(&pool));
        tokio::spawn(async move {
            let t = given.or_else(|| {
                let p = pool.lock().unwrap();
                (i % 2 == 1).then(|| p[(i * 7919) % p.len()].clone())
            });
            let mut r = None;
            // A store that times out under the load (a 503) is retried once, as a person would.
            for _ in 0..2 {
                let now = jar.lock().unwrap().clone();
                let reply = match &t {
                    None => c.get("/form", &now, PLAIN).await,
                    Some(t) if i % 4 == 1 => post_to(&c, path, &now, None, Tok::Header(t)).await,
                    Some(t) => post_to(&c, path, &now, None, Tok::Form(t)).await,
                };
                let again = reply.status == 503;
                r = Some(reply);
                if !again {
                    break;
                }
            }
            let r = r.unwrap();
            jar.lock().unwrap().apply(&r);
            if t.is_none() && r.status == 200 {
                pool.lock().unwrap().push(r.body.clone());
            }
            (t.is_some(), r)
        })
    };
    let tasks: Vec<_> = (0..n).map(|i| send_one(i, None)).collect();
    let mut f = Vec::new();
    for t in tasks {
        let (post, r) = t.await.unwrap();
        if r.status != 200 {
            let what = if post { "a post" } else { "a page" };
            f.push(format!("{mode:?}, {who}: {what}: {} {}", r.status, r.body));
        }
    }
    // Afterwards, every page's token still passes with the browser's cookies.
    let all = pool.lock().unwrap().clone();
    let sweep: Vec<_> = all.into_iter().map(|t| send_one(2, Some(t))).collect();
    for t in sweep {
        let (_, r) = t.await.unwrap();
        if r.status != 200 {
            f.push(format!(
                "{mode:?}, {who}: a token afterwards: {} {}",
                r.status, r.body
            ));
        }
    }
    f
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_pages_and_posts_never_refuse_a_valid_token() {
    let mut f = storm(Mode::Memory, true, 200).await;
    f.extend(storm(Mode::Memory, false, 200).await);
    f.extend(storm(Mode::Signed, true, 200).await);
    f.extend(storm(Mode::Encrypted, false, 200).await);
    #[cfg(feature = "redis-tests")]
    f.extend(storm(Mode::Redis, true, 200).await);
    assert_none("zero spurious 403", &f);
}

/// `n` anonymous visitors load a form at once: each gets a nonce cookie and a token, and no
/// session cookie. Their jars and tokens.
async fn anonymous_visitors(c: &Client, n: usize, f: &mut Vec<String>) -> Vec<(Jar, String)> {
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            let c = c.clone();
            tokio::spawn(async move { c.get("/form", &Jar::default(), PLAIN).await })
        })
        .collect();
    let mut out = Vec::new();
    for t in tasks {
        let r = t.await.unwrap();
        let nonce = r.cookie(NONCE).unwrap_or_default();
        if r.status != 200 || nonce.len() != 43 || r.cookie(NAME).is_some() {
            f.push(format!(
                "an anonymous page: {} {:?}",
                r.status, r.set_cookies
            ));
        }
        let mut jar = Jar::default();
        jar.apply(&r);
        out.push((jar, r.body));
    }
    out
}

/// What the anonymous visitors' tokens do: each passes with its own nonce cookie only; a
/// second page keeps the nonce; a page that begins the session binds its token to it.
async fn anonymous_tokens(c: &Client, visitors: &[(Jar, String)], mode: Mode) -> Vec<String> {
    let mut f = Vec::new();
    for (i, (jar, t)) in visitors.iter().enumerate().take(10) {
        let other = &visitors[(i + 1) % visitors.len()].0;
        let r = post_to(c, "/post", jar, None, Tok::Form(t)).await;
        expect(
            &mut f,
            &format!("{mode:?}: visitor {i}'s own token"),
            &r,
            200,
        );
        let r = post_to(c, "/post", other, None, Tok::Form(t)).await;
        expect(
            &mut f,
            &format!("{mode:?}: visitor {i}'s token, another nonce"),
            &r,
            403,
        );
        let r = post_to(c, "/post", &Jar::default(), None, Tok::Header(t)).await;
        expect(
            &mut f,
            &format!("{mode:?}: visitor {i}'s token, no nonce"),
            &r,
            403,
        );
        let r = c.get("/form", jar, PLAIN).await;
        if r.status != 200 || !r.set_cookies.is_empty() {
            f.push(format!(
                "{mode:?}: visitor {i}'s second page set {:?}",
                r.set_cookies
            ));
        }
        let r = post_to(c, "/post", jar, None, Tok::Header(&r.body)).await;
        expect(
            &mut f,
            &format!("{mode:?}: visitor {i}'s second token"),
            &r,
            200,
        );
    }
    let mut jar = Jar::default();
    let r = c.visit("/start-token", &mut jar, PLAIN).await;
    if r.status != 200 || r.cookie(NAME).is_none() {
        f.push(format!(
            "{mode:?}: /start-token: {} {:?}",
            r.status, r.set_cookies
        ));
    }
    let r = post_to(c, "/post", &jar, None, Tok::Header(&r.body)).await;
    expect(
        &mut f,
        &format!("{mode:?}: the token of the page that began the session"),
        &r,
        200,
    );
    f
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anonymous_tokens_write_no_record_and_ride_a_nonce_cookie() {
    let mut f = Vec::new();
    let store = MemoryStore::new();
    let c = client(
        SessionLayer::store(config(false), store.clone())
            .build()
            .unwrap(),
    )
    .await;
    let visitors = anonymous_visitors(&c, 100, &mut f).await;
    if !store.is_empty() {
        f.push(format!(
            "memory: 100 anonymous pages wrote {} records",
            store.len()
        ));
    }
    f.extend(anonymous_tokens(&c, &visitors, Mode::Memory).await);
    if store.len() != 1 {
        f.push(format!(
            "memory: {} records, want the one session",
            store.len()
        ));
    }
    #[cfg(feature = "redis-tests")]
    {
        let url = session_testkit::redis::shared_url();
        let (redis, prefix) = pages::redis_store("csrf-anonymous").await;
        let c = client(SessionLayer::store(config(false), redis).build().unwrap()).await;
        let visitors = anonymous_visitors(&c, 100, &mut f).await;
        let keys = session_testkit::redis::keys(&url, &prefix).await;
        if !keys.is_empty() {
            f.push(format!(
                "redis: 100 anonymous pages wrote {} keys",
                keys.len()
            ));
        }
        f.extend(anonymous_tokens(&c, &visitors, Mode::Redis).await);
        let keys = session_testkit::redis::keys(&url, &prefix).await;
        if keys.len() != 1 {
            f.push(format!("redis: {} keys, want the one session", keys.len()));
        }
    }
    for mode in [Mode::Signed, Mode::Encrypted] {
        let c = client(mode.layer(|b| b).await).await;
        let visitors = anonymous_visitors(&c, 20, &mut f).await;
        f.extend(anonymous_tokens(&c, &visitors, mode).await);
    }
    assert_none("anonymous tokens", &f);
}

/// Keys rotate without refusing a page's token: one minted under the old key passes on a
/// server that lists a new key first and the old one after it (a session's or a nonce's).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_outlives_a_key_rotation_while_its_key_is_listed() {
    use session_testkit::capture::{KEY1, KEY2};
    let keys = |list: &[&[u8]]| {
        let keys = list.iter().map(|k| k.to_vec());
        session_hyper::Config::builder().keys(keys).build().unwrap()
    };
    let mut f = Vec::new();
    for mode in [Mode::Memory, Mode::Signed] {
        let store = MemoryStore::new();
        let layer = |list: &[&[u8]]| match mode {
            Mode::Memory => SessionLayer::store(keys(list), store.clone()),
            _ => SessionLayer::cookie(keys(list)),
        };
        let old = client(layer(&[KEY1]).build().unwrap()).await;
        let new = client(layer(&[KEY2, KEY1]).build().unwrap()).await;
        for begun in [false, true] {
            let mut jar = Jar::default();
            if begun {
                old.visit("/start", &mut jar, PLAIN).await;
            }
            let t = token(&old, &mut jar).await;
            let what = format!("{mode:?} (session begun: {begun})");
            let r = post_to(&new, "/post", &jar, None, Tok::Form(&t)).await;
            expect(&mut f, &format!("{what}: the old key's token"), &r, 200);
            let r = post_to(&new, "/post", &jar, None, Tok::Form(&flip(&t, 50))).await;
            expect(&mut f, &format!("{what}: a forged one"), &r, 403);
        }
    }
    assert_none("rotation", &f);
}

/// Cookie tossing against a session: a sibling subdomain plants its own nonce cookie beside
/// the visitor's and posts a token it got for that nonce. Once the visitor's session holds
/// data (in a store, or in its cookie), that token is refused, and the visitor's own still
/// passes, whichever cookie comes first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_planted_nonce_cookie_gains_nothing_against_a_session() {
    let mut f = Vec::new();
    for mode in Mode::stores()
        .into_iter()
        .chain([Mode::Signed, Mode::Encrypted])
    {
        let c = client(mode.layer(|b| b).await).await;
        let mut attacker = Jar::default();
        let theirs = token(&c, &mut attacker).await;
        let planted = nonce_cookie(&attacker);
        for first_page in [false, true] {
            // A visitor whose session begins before (or after) its first token.
            let mut victim = Jar::default();
            if first_page {
                token(&c, &mut victim).await;
            }
            c.visit("/start", &mut victim, PLAIN).await;
            let mine = token(&c, &mut victim).await;
            for ahead in [true, false] {
                let mut jar = victim.clone();
                if ahead {
                    jar.0.insert(0, planted.clone());
                } else {
                    jar.0.push(planted.clone());
                }
                let what =
                    format!("{mode:?} (first page first: {first_page}, planted ahead: {ahead})");
                let r = post_to(&c, "/post", &jar, None, Tok::Header(&theirs)).await;
                expect(
                    &mut f,
                    &format!("{what}: the planted nonce's token"),
                    &r,
                    403,
                );
                let r = post_to(&c, "/post", &jar, None, Tok::Form(&mine)).await;
                expect(&mut f, &format!("{what}: the visitor's own token"), &r, 200);
            }
        }
    }
    assert_none("planted nonces", &f);
}
