//! Cookies as Chromium takes them: our refusals at construction (`__Host-`, `__Secure-`) and
//! at write time (over 4096 bytes) match what the browser itself refuses, and a cookie-mode
//! session grown past the limit leaves the browser its last good cookie.
#![cfg(feature = "browser")]
#![allow(clippy::unwrap_used, missing_docs)]

mod support;

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response, body::Incoming};
use session_cookie::{MAX_COOKIE_BYTES, SessionCookies};
use session_core::{Config, SecurePolicy};
use support::{App, Browser, now};

const KEY: &str = "browser-test-key-one-0123456789abcdef";

/// A server that answers `GET /set/N` with the `Set-Cookie` headers of case `N`, as given.
async fn raw_server(cases: Vec<Vec<String>>) -> String {
    let cases = Arc::new(cases);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://localhost:{}", listener.local_addr().unwrap().port());
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let cases = Arc::clone(&cases);
            let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                let cases = Arc::clone(&cases);
                async move {
                    let n: Option<usize> = req
                        .uri()
                        .path()
                        .strip_prefix("/set/")
                        .and_then(|n| n.parse().ok());
                    let mut res = Response::new(Full::new(Bytes::from_static(b"ok")));
                    for h in n.and_then(|n| cases.get(n)).into_iter().flatten() {
                        res.headers_mut()
                            .append(hyper::header::SET_COOKIE, h.parse().unwrap());
                    }
                    Ok::<_, std::convert::Infallible>(res)
                }
            });
            tokio::spawn(async move {
                let io = hyper_util::rt::TokioIo::new(stream);
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(io, service)
                    .await;
            });
        }
    });
    url
}

fn config(name: &str) -> session_core::ConfigBuilder {
    Config::builder()
        .keys(vec![KEY.as_bytes().to_vec()])
        .cookie_name(name)
}

/// The `Set-Cookie` our cookie writer gives for `value` under `config` (unsigned: one cookie).
fn ours(config: &Config, value: &str) -> Result<Vec<String>, session_cookie::CookieError> {
    let jar = SessionCookies::new(config.cookie().clone(), None);
    let now_ms = (now() as u64) * 1000;
    let cookies = jar.write(value, Some(now_ms + 60_000), now_ms, true)?;
    Ok(cookies.iter().map(str::to_owned).collect())
}

/// Each case: what we say of a cookie (a config we build or refuse, a cookie we write or
/// refuse), and what Chromium does with that cookie sent as it would be. The two agree.
#[tokio::test(flavor = "multi_thread")]
async fn we_refuse_exactly_the_cookies_the_browser_refuses() {
    let name_len = "big".len();
    let fits = "v".repeat(MAX_COOKIE_BYTES - name_len);
    let over = "v".repeat(MAX_COOKIE_BYTES - name_len + 1);
    // (what the case is, the Set-Cookie sent, the cookie's name, whether we allow it)
    let cases: Vec<(&str, Vec<String>, &str, bool)> = vec![
        (
            "__Host- with Secure and Path=/",
            ours(&config("__Host-id").build().unwrap(), "a").unwrap(),
            "__Host-id",
            true,
        ),
        (
            "__Host- without Secure",
            vec!["__Host-id=a; Path=/; HttpOnly".into()],
            "__Host-id",
            config("__Host-id")
                .secure(SecurePolicy::Never)
                .build()
                .is_ok(),
        ),
        (
            "__Host- with a Domain",
            vec!["__Host-id=a; Secure; Path=/; Domain=localhost; HttpOnly".into()],
            "__Host-id",
            config("__Host-id").domain("localhost").build().is_ok(),
        ),
        (
            "__Host- with another Path",
            vec!["__Host-id=a; Secure; Path=/set; HttpOnly".into()],
            "__Host-id",
            config("__Host-id").path("/set").build().is_ok(),
        ),
        (
            "__Secure- without Secure",
            vec!["__Secure-id=a; Path=/; HttpOnly".into()],
            "__Secure-id",
            config("__Secure-id")
                .secure(SecurePolicy::Never)
                .build()
                .is_ok(),
        ),
        (
            "__Secure- with Secure and another Path",
            ours(&config("__Secure-id").path("/set").build().unwrap(), "a").unwrap(),
            "__Secure-id",
            true,
        ),
        // Browsers read the prefixes in any case.
        (
            "__host- without Secure",
            vec!["__host-id=a; Path=/; HttpOnly".into()],
            "__host-id",
            config("__host-id")
                .secure(SecurePolicy::Never)
                .build()
                .is_ok(),
        ),
        (
            "__HOST- with a Domain",
            vec!["__HOST-id=a; Secure; Path=/; Domain=localhost; HttpOnly".into()],
            "__HOST-id",
            config("__HOST-id").domain("localhost").build().is_ok(),
        ),
        (
            "__SECURE- without Secure",
            vec!["__SECURE-id=a; Path=/; HttpOnly".into()],
            "__SECURE-id",
            config("__SECURE-id")
                .secure(SecurePolicy::Never)
                .build()
                .is_ok(),
        ),
        (
            "__host- as we write it",
            ours(&config("__host-id").build().unwrap(), "a").unwrap(),
            "__host-id",
            true,
        ),
        (
            "name and value of 4096 bytes",
            ours(&config("big").build().unwrap(), &fits).unwrap(),
            "big",
            true,
        ),
        (
            "name and value of 4097 bytes",
            vec![format!("big={over}; Path=/; Max-Age=60; HttpOnly")],
            "big",
            ours(&config("big").build().unwrap(), &over).is_ok(),
        ),
    ];
    let url = raw_server(cases.iter().map(|c| c.1.clone()).collect()).await;
    let b = Browser::open("we_refuse_exactly_the_cookies_the_browser_refuses").await;
    let mut disagree = Vec::new();
    for (n, (what, _, name, we_allow)) in cases.iter().enumerate() {
        b.goto(&format!("{url}/")).await;
        b.client().delete_all_cookies().await.unwrap();
        b.goto(&format!("{url}/set/{n}")).await;
        let kept = b.cookie(name).await.is_some();
        b.shot(&format!("case-{n}")).await;
        if kept != *we_allow {
            disagree.push(format!(
                "{what}: browser keeps it: {kept}, we allow it: {we_allow}"
            ));
        }
    }
    assert!(disagree.is_empty(), "{disagree:#?}");
}

/// The demo with a `__Host-` cookie name, at `localhost` over plain HTTP (a secure context):
/// the browser takes both cookies (`Secure`, `Path=/`, host-only, `HttpOnly`, `SameSite=Lax`,
/// expiring with the max-age) and sends them back.
#[tokio::test(flavor = "multi_thread")]
async fn a_host_prefixed_session_works_in_the_browser() {
    let app = App::start(
        "demo",
        &[
            "--store",
            "memory",
            "--keys",
            KEY,
            "--cookie-name",
            "__Host-sid",
            "--max-age",
            "600000",
        ],
        KEY,
    )
    .await;
    let b = Browser::open("a_host_prefixed_session_works_in_the_browser").await;
    for n in 1..=3 {
        b.goto(&format!("{}/", app.localhost())).await;
        b.wait_text(&format!("{n} views")).await;
    }
    b.shot("three-views").await;
    let sent_at = now();
    for name in ["__Host-sid", "__Host-sid.sig"] {
        let c = b
            .cookie(name)
            .await
            .unwrap_or_else(|| panic!("{name} not kept"));
        assert_eq!(c.secure(), Some(true), "{name}");
        assert_eq!(c.http_only(), Some(true), "{name}");
        assert_eq!(c.path(), Some("/"), "{name}");
        assert_eq!(c.same_site(), Some(cookie::SameSite::Lax), "{name}");
        let expires = c.expires_datetime().unwrap().unix_timestamp();
        assert!(
            (sent_at + 540..=sent_at + 605).contains(&expires),
            "{name} expires in {} s, not 600",
            expires - sent_at
        );
    }
}

/// Cookie mode: the session is the cookie. It grows key by key until the next key would take
/// the cookie past 4096 bytes: that request gets the app's 413 and no cookie, and the browser
/// keeps the last good one. 200 more oversized writes change nothing.
#[tokio::test(flavor = "multi_thread")]
async fn a_cookie_session_past_4096_bytes_keeps_the_last_good_cookie() {
    let app = App::start("demo", &["--store", "cookie", "--keys", KEY], KEY).await;
    let b = Browser::open("a_cookie_session_past_4096_bytes_keeps_the_last_good_cookie").await;
    b.goto(&format!("{}/", app.url)).await;
    b.wait_text("1 views").await;
    let mut good = 0;
    let mut last_good = b.cookie("koa.sess").await.unwrap().value().to_owned();
    loop {
        let body = format!(r#"{{"k{good}":"{}"}}"#, "x".repeat(200));
        let (status, text) = b.fetch("PUT", "/session", Some(&body)).await;
        let now_held = b.cookie("koa.sess").await.unwrap().value().to_owned();
        match status {
            200 | 204 => {
                assert_ne!(now_held, last_good, "a good write sent no cookie");
                last_good = now_held;
                good += 1;
            }
            413 => {
                assert_eq!(now_held, last_good, "the refused write changed the cookie");
                break;
            }
            other => panic!("PUT answered {other}: {text}"),
        }
        assert!(good < 100, "the session never outgrew the cookie");
    }
    assert!(
        "koa.sess".len() + last_good.len() <= MAX_COOKIE_BYTES,
        "the last good cookie is {} bytes",
        last_good.len()
    );
    b.shot("after-first-413").await;

    let statuses = b
        .run_async(
            "const done = arguments[arguments.length - 1];
             (async () => {
               const out = [];
               for (let i = 0; i < 200; i++) {
                 const body = JSON.stringify({ ['big' + i]: 'y'.repeat(100 + i * 20) });
                 const r = await fetch('/session', { method: 'PUT', body });
                 out.push(r.status);
               }
               done(out);
             })();",
            vec![],
        )
        .await;
    let statuses: Vec<u16> = serde_json::from_value(statuses).unwrap();
    assert_eq!(statuses.len(), 200);
    assert!(
        statuses.iter().all(|s| *s == 413),
        "oversized writes answered {statuses:?}"
    );
    assert_eq!(b.cookie("koa.sess").await.unwrap().value(), last_good);

    // What the session holds is what the last good cookie carries.
    let (status, json) = b.fetch("GET", "/session", None).await;
    assert_eq!(status, 200);
    let data: serde_json::Map<String, serde_json::Value> = serde_json::from_str(&json).unwrap();
    assert_eq!(
        data.len(),
        good + 1,
        "views and {good} keys: {:?}",
        data.keys()
    );
    assert!(data.keys().all(|k| !k.starts_with("big")));
    b.goto(&format!("{}/", app.url)).await;
    b.wait_text("2 views").await;
    b.shot("still-the-same-session").await;
}

/// A cookie first set by a response to a nested path (`/session/owner`, whose default cookie
/// path would be `/session`) still covers the whole site: `Path=/` is sent, and the browser
/// keeps it for `/`.
#[tokio::test(flavor = "multi_thread")]
async fn a_cookie_set_from_a_nested_path_covers_the_whole_site() {
    let app = App::start("demo", &["--store", "memory", "--keys", KEY], KEY).await;
    let b = Browser::open("a_cookie_set_from_a_nested_path_covers_the_whole_site").await;
    b.goto(&format!("{}/nothing-here", app.url)).await;
    assert!(b.cookies().await.is_empty());
    let owner = format!(r#"{{"owner":"{}"}}"#, support::unique("nested"));
    let (status, _) = b.fetch("PUT", "/session/owner", Some(&owner)).await;
    assert_eq!(status, 204, "binding the session answered {status}");
    // Seen from this page (`/nothing-here`): a cookie of path `/session` would not be.
    let mut held = Vec::new();
    for name in ["koa.sess", "koa.sess.sig"] {
        let c = b
            .cookie(name)
            .await
            .unwrap_or_else(|| panic!("{name} is not sent to /nothing-here"));
        assert_eq!(c.path(), Some("/"), "{name}");
        held.push(c.value().to_owned());
    }
    b.goto(&format!("{}/", app.url)).await;
    b.wait_text("1 views").await;
    b.shot("one-view").await;
    // The same session at `/`: its id did not change.
    assert_eq!(b.cookie("koa.sess").await.unwrap().value(), held[0]);
}
