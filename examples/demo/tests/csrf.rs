//! The demo's `--csrf` over real TCP: `GET /csrf` gives tokens, and every unsafe request
//! follows the library's rule before it is routed. Each scenario runs on the memory store;
//! cookie mode runs them all in `the_same_in_cookie_mode`.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use reqwest::Client;
use serde_json::json as j;
use session_testkit::client::{browser, send};

mod support;
use support::pages::{FORM, data, messages, req, same_origin_put, token, unsafe_call};
use support::start;

/// Without `--csrf`: `GET /csrf` is 404 and no request is checked, cross-site or not.
#[tokio::test]
async fn without_csrf_there_is_no_token_and_no_check() {
    let d = start(&["--store", "memory"]).await;
    let (c, url) = (browser(), d.url.as_str());
    let r = send(c.get(format!("{url}/csrf"))).await;
    assert_eq!(r.status, 404);
    assert!(r.body.contains("--csrf"), "{}", r.body);
    for site in [None, Some("cross-site")] {
        for route in [
            ("POST", "/flash"),
            ("PUT", "/session"),
            ("DELETE", "/session"),
        ] {
            let r = unsafe_call(&c, url, route, None, site, "n").await;
            assert_eq!(r.status, 204, "{route:?} {site:?}");
        }
    }
    // The usage text names the flag and the 404.
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_demo"))
        .arg("--help")
        .output()
        .await
        .unwrap();
    let usage = String::from_utf8_lossy(&out.stderr);
    assert!(
        usage.contains("[--csrf]") && usage.contains("404 without it"),
        "{usage}"
    );
}

/// The rule, on four routes (two unknown: the check comes before routing) and every
/// combination of token and `Sec-Fetch-Site`; a refused request changes nothing.
async fn every_unsafe_request_follows_the_rule_in(store: &str) {
    // (what, token, Sec-Fetch-Site, passes)
    let combos: [(&str, Option<&str>, Option<&str>, bool); 12] = [
        ("no token", None, None, false),
        ("no token, same-site", None, Some("same-site"), false),
        ("no token, none", None, Some("none"), false),
        ("no token, cross-site", None, Some("cross-site"), false),
        ("empty token", Some(""), None, false),
        ("garbage token", Some("garbage"), None, false),
        ("token", Some("VALID"), None, true),
        ("token, same-site", Some("VALID"), Some("same-site"), true),
        ("token, none", Some("VALID"), Some("none"), true),
        (
            "token, cross-site",
            Some("VALID"),
            Some("cross-site"),
            false,
        ),
        ("no token, same-origin", None, Some("same-origin"), true),
        (
            "garbage, same-origin",
            Some("garbage"),
            Some("same-origin"),
            true,
        ),
    ];
    // (method, path, status when it passes)
    let routes = [
        (("POST", "/flash"), 204),
        (("PUT", "/session"), 204),
        (("DELETE", "/nowhere"), 404),
        (("PATCH", "/nowhere"), 404),
    ];
    let d = start(&["--store", store, "--csrf"]).await;
    let (c, url) = (browser(), d.url.as_str());
    same_origin_put(&c, url, "user").await;
    let t = token(&c, url).await;
    let (mut checked, mut failures) = (0, Vec::new());
    let (mut put, mut posted) = (j!({"user": true}), Vec::new());
    for (route, ok) in routes {
        for (i, (what, tok, site, passes)) in combos.iter().enumerate() {
            let tok = tok.map(|v| if v == "VALID" { t.as_str() } else { v });
            let mark = format!("case{i}");
            let r = unsafe_call(&c, url, route, tok, *site, &mark).await;
            let want = if *passes { ok } else { 403 };
            checked += 1;
            if r.status != want {
                failures.push(format!("{store} {route:?} {what}: {} {}", r.status, r.body));
            }
            match route {
                ("PUT", _) if *passes => put[&mark] = j!(true),
                ("POST", _) if *passes => posted.push(mark),
                _ => {}
            }
        }
    }
    assert_eq!(checked, 48);
    assert!(
        failures.is_empty(),
        "{} of {checked}: {failures:#?}",
        failures.len()
    );
    // Only the requests that passed changed the session.
    assert_eq!(put.as_object().unwrap().len(), 6);
    assert_eq!(data(&c, url).await, put, "{store}");
    let shown = messages(&c, url, &[]).await;
    let mut shown: Vec<&str> = shown
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["text"].as_str().unwrap())
        .collect();
    shown.sort_unstable();
    posted.sort_unstable();
    assert_eq!(shown, posted, "{store}");

    // Safe methods are never checked, cross-site or not.
    for (method, path, want) in [
        ("GET", "/session", 200),
        ("HEAD", "/nowhere", 404),
        ("OPTIONS", "/nowhere", 404),
    ] {
        let rb = req(&c, method, format!("{url}{path}")).header("sec-fetch-site", "cross-site");
        assert_eq!(send(rb).await.status, want, "{store} {method} {path}");
    }
    // The real DELETE, with the token.
    let delete = ("DELETE", "/session");
    let r = unsafe_call(&c, url, delete, None, None, "").await;
    assert_eq!(r.status, 403, "{store}");
    let r = unsafe_call(&c, url, delete, Some(&t), None, "").await;
    assert_eq!(r.status, 204, "{store}");
    assert_eq!(data(&c, url).await, j!({}), "{store}");
}

#[tokio::test]
async fn every_unsafe_request_follows_the_rule() {
    every_unsafe_request_follows_the_rule_in("memory").await;
}

/// A token is one visitor's: another's, with its own session (or no cookie at all), is refused.
async fn a_token_is_bound_to_its_visitor_in(store: &str) {
    let d = start(&["--store", store, "--csrf"]).await;
    let url = d.url.as_str();
    let (a, b) = (browser(), browser());
    same_origin_put(&a, url, "a").await;
    same_origin_put(&b, url, "b").await;
    let (ta, tb) = (token(&a, url).await, token(&b, url).await);
    let put = |c: &Client, t: &str| {
        let rb = c
            .put(format!("{url}/session"))
            .header("x-csrf-token", t)
            .body(r#"{"n":1}"#);
        async move { send(rb).await.status }
    };
    assert_eq!(put(&b, &ta).await, 403, "{store}: A's token, B's cookie");
    assert_eq!(put(&a, &tb).await, 403, "{store}: B's token, A's cookie");
    assert_eq!(put(&browser(), &ta).await, 403, "{store}: no cookie");
    assert_eq!(put(&a, &ta).await, 204, "{store}");
    assert_eq!(put(&b, &tb).await, 204, "{store}");
    // Visitors without a session: their tokens are bound to their nonce cookies.
    let (x, y) = (browser(), browser());
    let (tx, ty) = (token(&x, url).await, token(&y, url).await);
    let post = |c: &Client, t: &str| {
        let rb = c.post(format!("{url}/nowhere")).header("x-csrf-token", t);
        async move { send(rb).await.status }
    };
    assert_eq!(post(&y, &tx).await, 403, "{store}: X's token, Y's nonce");
    assert_eq!(post(&x, &ty).await, 403, "{store}: Y's token, X's nonce");
    assert_eq!(post(&a, &tx).await, 403, "{store}: X's token, A's session");
    assert_eq!(post(&x, &tx).await, 404, "{store}: passed, no such route");
    assert_eq!(post(&y, &ty).await, 404, "{store}: passed, no such route");
}

#[tokio::test]
async fn a_token_is_bound_to_its_visitor() {
    a_token_is_bound_to_its_visitor_in("memory").await;
}

/// `POST /session/regenerate` (a login's new id) and `DELETE /session` make every older token
/// fail; a token taken after works.
async fn regenerate_and_destroy_make_older_tokens_fail_in(store: &str) {
    let d = start(&["--store", store, "--csrf"]).await;
    let (c, url) = (browser(), d.url.as_str());
    same_origin_put(&c, url, "user").await;
    let put = |t: &str| {
        let rb = c
            .put(format!("{url}/session"))
            .header("x-csrf-token", t)
            .body(r#"{"n":1}"#);
        async move { send(rb).await.status }
    };
    let regenerate = ("POST", "/session/regenerate");
    let before = token(&c, url).await;
    assert_eq!(put(&before).await, 204, "{store}");
    let r = unsafe_call(&c, url, regenerate, Some(&before), None, "").await;
    assert_eq!(r.status, 204, "{store}");
    assert_eq!(
        put(&before).await,
        403,
        "{store}: a token from before regenerate"
    );
    let after = token(&c, url).await;
    assert_eq!(put(&after).await, 204, "{store}");
    assert_eq!(data(&c, url).await, j!({"user": true, "n": 1}), "{store}");

    let r = unsafe_call(&c, url, ("DELETE", "/session"), Some(&after), None, "").await;
    assert_eq!(r.status, 204, "{store}");
    assert_eq!(
        put(&after).await,
        403,
        "{store}: a token from before destroy"
    );
    let fresh = token(&c, url).await;
    assert_eq!(put(&fresh).await, 204, "{store}");
}

#[tokio::test]
async fn regenerate_and_destroy_make_older_tokens_fail() {
    regenerate_and_destroy_make_older_tokens_fail_in("memory").await;
}

/// A visitor's tokens from before its session was stored (bound to its nonce cookie) keep
/// working after a request stores the session, until a login's regenerate: a page with two
/// forms, or two tabs, can post twice. (The first cut of the library refused the second post.)
#[tokio::test]
async fn a_token_from_before_the_session_was_stored_keeps_working() {
    let d = start(&["--store", "memory", "--csrf"]).await;
    let (c, url) = (browser(), d.url.as_str());
    let t = token(&c, url).await;
    // The first post stores the session (a message), the next ones find it stored.
    let posts = [("POST", "/flash"), ("PUT", "/session"), ("PUT", "/session")];
    let (mut checked, mut refused) = (0, Vec::new());
    for (i, route) in posts.into_iter().enumerate() {
        checked += 1;
        let r = unsafe_call(&c, url, route, Some(&t), None, &format!("n{i}")).await;
        if r.status != 204 {
            refused.push(format!("post {i} {route:?}: {}", r.status));
        }
    }
    assert_eq!(checked, 3);
    assert!(refused.is_empty(), "{refused:?}");
    assert_eq!(data(&c, url).await, j!({"n1": true, "n2": true}));
    // A login's regenerate ends it.
    let regenerate = ("POST", "/session/regenerate");
    assert_eq!(
        unsafe_call(&c, url, regenerate, Some(&t), None, "")
            .await
            .status,
        204
    );
    let r = unsafe_call(&c, url, ("PUT", "/session"), Some(&t), None, "n3").await;
    assert_eq!(r.status, 403);
}

/// A token with any one byte changed (its mask or its masked secret) is refused; the token
/// itself still passes.
async fn a_token_with_one_byte_changed_is_refused_in(store: &str) {
    let d = start(&["--store", store, "--csrf"]).await;
    let (c, url) = (browser(), d.url.as_str());
    same_origin_put(&c, url, "user").await;
    let t = token(&c, url).await;
    let raw = URL_SAFE_NO_PAD.decode(&t).unwrap();
    assert_eq!(raw.len(), 64);
    let nowhere = ("POST", "/nowhere");
    let (mut checked, mut failures) = (0, Vec::new());
    for i in 0..raw.len() {
        let mut forged = raw.clone();
        forged[i] ^= 0x01;
        let forged = URL_SAFE_NO_PAD.encode(&forged);
        let r = unsafe_call(&c, url, nowhere, Some(&forged), None, "").await;
        checked += 1;
        if r.status != 403 {
            failures.push(format!("{store} byte {i}: {}", r.status));
        }
    }
    assert_eq!(checked, 64);
    assert!(failures.is_empty(), "{failures:?}");
    let r = unsafe_call(&c, url, nowhere, Some(&t), None, "").await;
    assert_eq!(r.status, 404, "{store}: the real token passes");
}

#[tokio::test]
async fn a_token_with_one_byte_changed_is_refused() {
    a_token_with_one_byte_changed_is_refused_in("memory").await;
}

/// A form's `_csrf` field carries the token; the body the check read reaches the route whole.
async fn a_form_carries_the_token_in(store: &str) {
    let d = start(&["--store", store, "--csrf"]).await;
    let (c, url) = (browser(), d.url.as_str());
    same_origin_put(&c, url, "user").await;
    let t = token(&c, url).await;
    let form = |method: &str, path: &str, ct: &str, body: String| {
        let rb = req(&c, method, format!("{url}{path}"))
            .header("content-type", ct)
            .body(body);
        async move { send(rb).await.status }
    };
    let charset = format!("{FORM}; charset=UTF-8");
    let cases = [
        (FORM, format!("a=1&_csrf={t}&b=2"), 404),
        (&charset, format!("_csrf={t}"), 404),
        (FORM, "a=1".to_owned(), 403),
        (FORM, "_csrf=garbage".to_owned(), 403),
        (FORM, format!("csrf={t}"), 403),
        // Only a form's body is read for the token.
        ("text/plain", format!("_csrf={t}"), 403),
        ("application/json", format!(r#"{{"_csrf":"{t}"}}"#), 403),
    ];
    let (mut checked, mut failures) = (0, Vec::new());
    for (ct, body, want) in &cases {
        checked += 1;
        let got = form("POST", "/nowhere", ct, body.clone()).await;
        if got != *want {
            failures.push(format!("{store} {ct} {body}: {got}, not {want}"));
        }
    }
    assert_eq!(checked, cases.len());
    assert!(failures.is_empty(), "{failures:?}");
    // Cross-site is refused with a valid field too.
    let rb = c
        .post(format!("{url}/nowhere"))
        .header("content-type", FORM)
        .header("sec-fetch-site", "cross-site")
        .body(format!("_csrf={t}"));
    assert_eq!(send(rb).await.status, 403, "{store}");
    // A wrong header falls back to the form's field, as in the library's `CsrfLayer`.
    let rb = c
        .post(format!("{url}/nowhere"))
        .header("content-type", FORM)
        .header("x-csrf-token", "garbage")
        .body(format!("_csrf={t}"));
    assert_eq!(send(rb).await.status, 404, "{store}");
    let rb = c
        .post(format!("{url}/nowhere"))
        .header("content-type", FORM)
        .header("x-csrf-token", "garbage")
        .body("_csrf=garbage");
    assert_eq!(send(rb).await.status, 403, "{store}");
    // A form too large to look in: 413 without the header; with it, the route reads it.
    let big = format!("_csrf={t}&pad={}", "x".repeat(64 * 1024));
    assert_eq!(form("POST", "/nowhere", FORM, big.clone()).await, 413);
    let rb = c
        .post(format!("{url}/nowhere"))
        .header("content-type", FORM)
        .header("x-csrf-token", &t)
        .body(big);
    assert_eq!(send(rb).await.status, 404, "{store}");

    // The body is handed on: this one is a form with the field, and a JSON object.
    let both = format!(r#"{{"via":"form","pad":"&_csrf={t}&"}}"#);
    assert_eq!(form("PUT", "/session", FORM, both).await, 204, "{store}");
    let seen = data(&c, url).await;
    assert_eq!(seen["via"], "form", "{store}: {seen}");

    // A login's regenerate from a form; the same form fails after it.
    let field = format!("_csrf={t}");
    let regenerate = |body: String| form("POST", "/session/regenerate", FORM, body);
    assert_eq!(regenerate(field.clone()).await, 204, "{store}");
    assert_eq!(regenerate(field).await, 403, "{store}");
}

#[tokio::test]
async fn a_form_carries_the_token() {
    a_form_carries_the_token_in("memory").await;
}

/// Cookie mode: a session holding data keeps its CSRF secret in the cookie (this test found
/// that koa's JSON left it out, with every `_` key).
#[tokio::test]
async fn the_same_in_cookie_mode() {
    every_unsafe_request_follows_the_rule_in("cookie").await;
    a_token_is_bound_to_its_visitor_in("cookie").await;
    regenerate_and_destroy_make_older_tokens_fail_in("cookie").await;
    a_token_with_one_byte_changed_is_refused_in("cookie").await;
    a_form_carries_the_token_in("cookie").await;
}
