//! Attacks the promise of flash messages: **a message is shown exactly once, on the page the
//! visitor loads next**. A prefetch never sees it; a script's request or a subresource may see
//! it but never takes it; a page that fails (5xx) keeps it for the retry; two requests adding
//! messages at once both land (per-key merge, in every store); a message is never part of the
//! handler's data, its text is bounded, and a cookie that would outgrow 4096 bytes is an error
//! the app sees, never a cookie silently dropped. Over real TCP, on the memory store, signed
//! and encrypted cookies, and on Redis and PostgreSQL with `--features redis-tests` and
//! `postgres-tests`; the races run hundreds of rounds of concurrent requests on one cookie.
//! The app is `pages/flash_app.rs`.
#![cfg(feature = "axum")]
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod pages;

use std::sync::Arc;
use std::time::Instant;

use http::Method;
use serde_json::Value;
use session_hyper::SessionLayer;
use session_hyper::flash::MAX_FLASH_TEXT_BYTES;
use session_testkit::client::{Jar, Reply};

use pages::flash_app::{Seen, app, client, texts};
use pages::{
    CORS, Client, HTMX, IFRAME, Meta, Mode, NAME, NAVIGATE, PLAIN, PURPOSE, SEC_PURPOSE, XHR,
    assert_none, serve,
};

/// `POST /add` with `text`, as the form's submission; the jar takes its cookies.
async fn post_add(c: &Client, jar: &mut Jar, text: &str) -> Reply {
    let r = c
        .send(Method::POST, "/add", jar, PLAIN, &[("x-flash", text)], None)
        .await;
    jar.apply(&r);
    r
}

/// Expects `GET /page` with `meta` to show `want`; a failure otherwise.
async fn expect(c: &Client, jar: &mut Jar, meta: Meta, want: &[&str], what: &str) -> Vec<String> {
    let r = c.visit("/page", jar, meta).await;
    let got = texts(&r);
    if r.status == 200 && got.as_deref().is_some_and(|g| g == want) {
        return Vec::new();
    }
    vec![format!(
        "{what}: {meta:?} showed {} {} (want {want:?})",
        r.status, r.body
    )]
}

/// Post, redirect, get: the message is shown once, and only to a page load.
async fn prg(mode: Mode) -> Vec<String> {
    let c = client(mode.layer(|b| b).await).await;
    let mut jar = Jar::default();
    let mut f = Vec::new();
    for (round, nav) in [PLAIN, NAVIGATE, PLAIN].into_iter().enumerate() {
        let text = format!("saved {mode:?} {round}");
        let what = format!("{mode:?} round {round}");
        let r = post_add(&c, &mut jar, &text).await;
        let to_page = r.headers.get("location").is_some_and(|l| l == "/page");
        if r.status != 303 || !to_page || jar.0.is_empty() {
            f.push(format!(
                "{what}: the add answered {} {:?}",
                r.status, r.headers
            ));
        }
        for meta in [SEC_PURPOSE, PURPOSE] {
            f.extend(expect(&c, &mut jar, meta, &[], &what).await);
        }
        for meta in [XHR, HTMX, CORS, IFRAME] {
            let r = c.get("/page", &jar, meta).await;
            if texts(&r) != Some(vec![text.clone()]) || r.cookie(NAME).is_some() {
                f.push(format!(
                    "{what}: {meta:?} saw {} {:?}",
                    r.body, r.set_cookies
                ));
            }
        }
        // The page load takes it; the page showing it is never cached.
        let r = c.visit("/page", &mut jar, nav).await;
        let cache = r.headers.get("cache-control").and_then(|v| v.to_str().ok());
        if texts(&r) != Some(vec![text.clone()]) || !cache.is_some_and(|v| v.contains("no-store")) {
            f.push(format!(
                "{what}: the page showed {} {} ({cache:?})",
                r.status, r.body
            ));
        }
        for meta in [NAVIGATE, PLAIN, XHR] {
            f.extend(expect(&c, &mut jar, meta, &[], &format!("{what}, again")).await);
        }
    }
    f
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn post_redirect_get_shows_the_message_exactly_once_in_every_store() {
    let mut failures = Vec::new();
    for mode in Mode::stores() {
        failures.extend(prg(mode).await);
    }
    assert_none("post/redirect/get", &failures);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scripts_take_the_messages_only_where_the_layer_says_so() {
    let mut f = Vec::new();
    for mode in Mode::stores() {
        let c = client(mode.layer(|b| b.flash_taken_by_scripts(true)).await).await;
        let mut jar = Jar::default();
        for taker in [XHR, HTMX] {
            let what = format!("{mode:?}, scripts take");
            post_add(&c, &mut jar, "for the script").await;
            f.extend(expect(&c, &mut jar, CORS, &["for the script"], &what).await);
            f.extend(expect(&c, &mut jar, SEC_PURPOSE, &[], &what).await);
            f.extend(expect(&c, &mut jar, taker, &["for the script"], &what).await);
            f.extend(expect(&c, &mut jar, PLAIN, &[], &what).await);
        }
    }
    assert_none("flash_taken_by_scripts(true)", &f);
}

/// The requests racing the form's redirect: prefetches and a page's scripts, 5 of each.
const RACERS: [Meta; 4] = [SEC_PURPOSE, PURPOSE, XHR, CORS];

/// `rounds` rounds of one add racing 20 prefetches and script requests on one session, then
/// the navigation; the failures, and how many script requests saw the message.
async fn race(layer: SessionLayer, rounds: usize) -> (Vec<String>, usize) {
    let c = client(layer).await;
    let mut jar = Jar::default();
    assert_eq!(c.visit("/login", &mut jar, PLAIN).await.status, 204);
    let (mut f, mut scripts_saw) = (Vec::new(), 0);
    for round in 0..rounds {
        let text = format!("round {round}");
        let at = round % 21;
        let tasks: Vec<_> = (0..21)
            .map(|i| {
                let (c, jar, text) = (c.clone(), jar.clone(), text.clone());
                let meta = (i != at).then(|| RACERS[(i + round) % RACERS.len()]);
                tokio::spawn(async move {
                    let r = match meta {
                        None => {
                            let h = [("x-flash", text.as_str())];
                            c.send(Method::POST, "/add", &jar, PLAIN, &h, None).await
                        }
                        Some(meta) => c.get("/page", &jar, meta).await,
                    };
                    (meta, r)
                })
            })
            .collect();
        for t in tasks {
            let (meta, r) = t.await.unwrap();
            let shown = texts(&r);
            match meta {
                None if r.status == 303 => jar.apply(&r),
                None => f.push(format!("round {round}: the add answered {}", r.status)),
                Some(m) if m == SEC_PURPOSE || m == PURPOSE => {
                    if shown != Some(Vec::new()) {
                        f.push(format!("round {round}: a prefetch {m:?} saw {}", r.body));
                    }
                }
                Some(m) => match shown.as_deref() {
                    Some([]) => {}
                    Some([t]) if *t == text => scripts_saw += 1,
                    _ => f.push(format!("round {round}: {m:?} saw {}", r.body)),
                },
            }
        }
        let nav = if round % 2 == 0 { PLAIN } else { NAVIGATE };
        let what = format!("round {round}");
        f.extend(expect(&c, &mut jar, nav, &[&text], &what).await);
        f.extend(expect(&c, &mut jar, nav, &[], &format!("{what}, again")).await);
    }
    (f, scripts_saw)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redirect_racing_prefetches_and_scripts_shows_its_message_once() {
    let t = Instant::now();
    let (f, saw) = race(Mode::Memory.layer(|b| b).await, 300).await;
    eprintln!(
        "memory: 300 rounds in {:?}, scripts saw it {saw} times",
        t.elapsed()
    );
    assert_none("memory", &f);
    #[cfg(feature = "redis-tests")]
    {
        let t = Instant::now();
        let (f, saw) = race(Mode::Redis.layer(|b| b).await, 60).await;
        eprintln!(
            "redis: 60 rounds in {:?}, scripts saw it {saw} times",
            t.elapsed()
        );
        assert_none("redis", &f);
    }
}

/// `rounds` rounds of two adds at once on one session, then the page: both shown, once.
async fn both_land(mode: Mode, rounds: usize) -> Vec<String> {
    let c = client(mode.layer(|b| b).await).await;
    let mut jar = Jar::default();
    assert_eq!(c.visit("/login", &mut jar, PLAIN).await.status, 204);
    let mut f = Vec::new();
    for round in 0..rounds {
        let pair = [format!("{round} left"), format!("{round} right")];
        let tasks: Vec<_> = pair
            .iter()
            .map(|text| {
                let (c, jar, text) = (c.clone(), jar.clone(), text.clone());
                tokio::spawn(async move {
                    let h = [("x-flash", text.as_str())];
                    c.send(Method::POST, "/add", &jar, PLAIN, &h, None).await
                })
            })
            .collect();
        for t in tasks {
            let r = t.await.unwrap();
            if r.status != 303 || r.cookie(NAME).is_some() {
                f.push(format!("{mode:?} round {round}: an add answered {r:?}"));
            }
        }
        let r = c.visit("/page", &mut jar, NAVIGATE).await;
        let mut shown = texts(&r).unwrap_or_default();
        shown.sort();
        if shown != pair {
            f.push(format!(
                "{mode:?} round {round}: the page showed {}",
                r.body
            ));
        }
        let what = format!("{mode:?} round {round}, again");
        f.extend(expect(&c, &mut jar, NAVIGATE, &[], &what).await);
    }
    f
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_requests_adding_messages_at_once_both_land() {
    let mut f = both_land(Mode::Memory, 200).await;
    if cfg!(feature = "redis-tests") {
        f.extend(both_land(Mode::Redis, 50).await);
    }
    if cfg!(feature = "postgres-tests") {
        f.extend(both_land(Mode::Postgres, 30).await);
    }
    assert_none("concurrent adds", &f);
}

/// A page that fails shows the message and leaves it for the retry, with and without
/// `save_on_server_error`.
async fn failed_page(mode: Mode) -> Vec<String> {
    let mut f = Vec::new();
    for save in [false, true] {
        let what = format!("{mode:?}, save_on_server_error({save})");
        let c = client(mode.layer(|b| b.save_on_server_error(save)).await).await;
        let mut jar = Jar::default();
        c.visit("/login", &mut jar, PLAIN).await;
        post_add(&c, &mut jar, "keep me").await;
        // The page fails twice (the retry fails too), both times showing the message.
        for attempt in 0..2 {
            let r = c.visit("/fail", &mut jar, NAVIGATE).await;
            if r.status != 500 || texts(&r) != Some(vec!["keep me".into()]) {
                f.push(format!(
                    "{what}: failure {attempt} showed {} {}",
                    r.status, r.body
                ));
            }
        }
        // Whatever else the failed page changed was saved only with the option.
        let r = c.visit("/data", &mut jar, PLAIN).await;
        let d: Value = serde_json::from_str(&r.body).unwrap_or_default();
        if d["user"] != "ada" || d.get("tried").is_some() != save {
            f.push(format!("{what}: the data after the failures is {}", r.body));
        }
        f.extend(expect(&c, &mut jar, NAVIGATE, &["keep me"], &what).await);
        f.extend(expect(&c, &mut jar, NAVIGATE, &[], &format!("{what}, again")).await);
    }
    f
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_page_keeps_its_messages_for_the_retry() {
    let mut f = Vec::new();
    for mode in Mode::stores() {
        f.extend(failed_page(mode).await);
    }
    assert_none("failed pages", &f);
}

/// Messages never show in the handler's data, and a text over the limit is cut.
async fn bounded(mode: Mode) -> Vec<String> {
    let mut f = Vec::new();
    let long = "x".repeat(MAX_FLASH_TEXT_BYTES);
    // 1 + 2 × 511 bytes: the next `é` would straddle the limit.
    let cut = format!("a{}", "é".repeat((MAX_FLASH_TEXT_BYTES - 1) / 2));
    let only_user = Some(serde_json::json!({"user": "ada"}));
    let c = client(mode.layer(|b| b).await).await;
    let mut jar = Jar::default();
    c.visit("/login", &mut jar, PLAIN).await;
    post_add(&c, &mut jar, "hello").await;
    let r = c.send(Method::POST, "/huge", &jar, PLAIN, &[], None).await;
    jar.apply(&r);
    if r.status != 204 {
        f.push(format!("{mode:?}: /huge answered {} {}", r.status, r.body));
    }
    let r = c
        .send(Method::POST, "/overwrite", &jar, PLAIN, &[], None)
        .await;
    if r.body != "refused" {
        f.push(format!(
            "{mode:?}: writing a message's key as data was {}",
            r.body
        ));
    }
    for when in ["before", "after"] {
        let r = c.visit("/data", &mut jar, PLAIN).await;
        if serde_json::from_str::<Value>(&r.body).ok() != only_user {
            f.push(format!(
                "{mode:?}: {when} the page, the handler's data is {}",
                r.body
            ));
        }
        if when == "before" {
            let r = c.visit("/page", &mut jar, PLAIN).await;
            let mut shown = texts(&r).unwrap_or_default();
            shown.sort();
            if shown != [cut.clone(), "hello".to_owned(), long.clone()] {
                let lens: Vec<usize> = shown.iter().map(String::len).collect();
                f.push(format!("{mode:?}: shown texts of {lens:?} bytes"));
            }
        }
    }
    f
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_stay_out_of_the_data_and_their_text_is_bounded() {
    let mut f = Vec::new();
    for mode in Mode::stores() {
        f.extend(bounded(mode).await);
    }
    assert_none("data and bounds", &f);
}

/// Everything above where the session is koa's JSON: the signed and the encrypted cookie, and
/// Redis in koa's format. koa's format drops the keys that start with `_`, and messages live
/// under `_flash.…` keys (this test found them silently lost there).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_survive_cookies_and_koa_records() {
    let mut f = Vec::new();
    for mode in Mode::koa_json() {
        f.extend(prg(mode).await);
        f.extend(failed_page(mode).await);
        f.extend(bounded(mode).await);
        f.extend(renewed(mode).await);
    }
    assert_none("koa JSON", &f);
}

/// A page that took the messages and then failed keeps them, even where it committed first:
/// by `Session::commit` (which leaves shown messages to the end-of-request commit, found by
/// this test), or after minting a token for a session it renewed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_page_that_committed_early_keeps_its_messages() {
    let mut f = Vec::new();
    for save in [false, true] {
        let c = client(Mode::Memory.layer(|b| b.save_on_server_error(save)).await).await;
        for path in ["/fail-committed", "/fail-token"] {
            let what = format!("{path}, save_on_server_error({save})");
            let mut jar = Jar::default();
            c.visit("/login", &mut jar, PLAIN).await;
            post_add(&c, &mut jar, "keep me").await;
            let r = c.visit(path, &mut jar, NAVIGATE).await;
            if r.status != 500 {
                f.push(format!("{what}: the failing page answered {}", r.status));
            }
            f.extend(expect(&c, &mut jar, NAVIGATE, &["keep me"], &what).await);
        }
    }
    assert_none("early commit", &f);
}

/// "Signed out." after a logout's `destroy()`, "Welcome." after a login's `regenerate()`: the
/// message rides the new session to the next page.
async fn renewed(mode: Mode) -> Vec<String> {
    let c = client(mode.layer(|b| b).await).await;
    let mut jar = Jar::default();
    let mut f = Vec::new();
    c.visit("/login", &mut jar, PLAIN).await;
    for (path, text) in [("/relogin", "welcome"), ("/logout", "signed out")] {
        let what = format!("{mode:?} {path}");
        let r = c.send(Method::POST, path, &jar, PLAIN, &[], None).await;
        jar.apply(&r);
        if r.status != 303 || jar.0.is_empty() {
            f.push(format!("{what}: {} {:?}", r.status, r.set_cookies));
        }
        f.extend(expect(&c, &mut jar, NAVIGATE, &[text], &what).await);
        f.extend(expect(&c, &mut jar, NAVIGATE, &[], &format!("{what}, again")).await);
    }
    let r = c.visit("/data", &mut jar, PLAIN).await;
    if r.body != "{}" {
        f.push(format!("{mode:?}: after the logout the data is {}", r.body));
    }
    f
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_left_by_a_login_or_a_logout_is_shown_on_the_next_page() {
    let mut f = Vec::new();
    for mode in Mode::stores() {
        f.extend(renewed(mode).await);
    }
    assert_none("renewed sessions", &f);
}

/// `rounds` rounds of a page taking a pending message while another request adds one: the
/// page takes the first, and the one added meanwhile is shown once, by it or by the next page.
async fn take_racing_add(mode: Mode, rounds: usize) -> Vec<String> {
    let c = client(mode.layer(|b| b).await).await;
    let mut jar = Jar::default();
    c.visit("/login", &mut jar, PLAIN).await;
    let mut f = Vec::new();
    for round in 0..rounds {
        let (old, new) = (format!("{round} old"), format!("{round} new"));
        post_add(&c, &mut jar, &old).await;
        let adding = {
            let (c, jar, new) = (c.clone(), jar.clone(), new.clone());
            tokio::spawn(async move {
                let h = [("x-flash", new.as_str())];
                c.send(Method::POST, "/add", &jar, PLAIN, &h, None).await
            })
        };
        let page = c.get("/page", &jar, PLAIN).await;
        let added = adding.await.unwrap();
        let mut shown = texts(&page).unwrap_or_default();
        shown.sort();
        let what = format!("{mode:?} round {round}");
        if added.status != 303 {
            f.push(format!("{what}: the add answered {}", added.status));
        }
        if shown == [new.clone(), old.clone()] {
            f.extend(expect(&c, &mut jar, PLAIN, &[], &what).await);
        } else if shown == [old.clone()] {
            f.extend(expect(&c, &mut jar, PLAIN, &[&new], &what).await);
        } else {
            f.push(format!("{what}: the page showed {shown:?}"));
        }
    }
    f
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_added_while_a_page_takes_others_is_shown_once() {
    let mut f = take_racing_add(Mode::Memory, 200).await;
    for mode in &Mode::stores()[1..] {
        f.extend(take_racing_add(*mode, 40).await);
    }
    assert_none("take racing add", &f);
}

/// Each message its own request, one after the other, many within one millisecond: the page
/// lists them in that order (this test found them sorted by a random tag).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_from_successive_requests_are_shown_oldest_first() {
    let mut f = Vec::new();
    for mode in Mode::stores() {
        let c = client(mode.layer(|b| b).await).await;
        let mut jar = Jar::default();
        let rounds = if mode == Mode::Memory { 20 } else { 3 };
        for round in 0..rounds {
            let sent: Vec<String> = (0..20).map(|i| format!("{round}-{i:02}")).collect();
            for text in &sent {
                post_add(&c, &mut jar, text).await;
            }
            let r = c.visit("/page", &mut jar, NAVIGATE).await;
            if texts(&r).as_ref() != Some(&sent) {
                f.push(format!("{mode:?} round {round}: shown as {:?}", texts(&r)));
            }
        }
    }
    assert_none("order", &f);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_past_a_cookies_4096_bytes_are_an_error_the_app_sees() {
    let mut f = Vec::new();
    for mode in [Mode::Signed, Mode::Encrypted] {
        let seen = Seen::default();
        let layer = mode.layer(|b| b).await;
        let c = Client::new(serve(app(layer, Arc::clone(&seen))).await);
        let mut jar = Jar::default();
        c.visit("/login", &mut jar, PLAIN).await;
        let before = jar.clone();
        // Committing after each message: the commit that would pass 4096 bytes fails, and the
        // handler is told the session is too large.
        let r = c.send(Method::POST, "/many", &jar, PLAIN, &[], None).await;
        let noted = seen.lock().unwrap().clone();
        let told = noted.len() == 1 && noted[0].starts_with("too_large=true after=");
        let after: usize = noted
            .first()
            .and_then(|n| n.rsplit('=').next())
            .and_then(|k| k.parse().ok())
            .unwrap_or(0);
        if !told || after == 0 || after > 4 {
            f.push(format!("{mode:?}: the handler saw {noted:?}"));
        }
        let oversized = r.set_cookies.iter().any(|c| c.len() > 4096);
        if r.status < 400 || oversized {
            f.push(format!(
                "{mode:?}: /many answered {} {:?}",
                r.status, r.set_cookies
            ));
        }
        // Left to the layer's commit: a 500, and the cookie the browser has is left alone
        // (never replaced, never removed).
        let r = c
            .send(Method::POST, "/many-at-end", &jar, PLAIN, &[], None)
            .await;
        if r.status != 500 || r.cookie(NAME).is_some() {
            let lens: Vec<usize> = r.set_cookies.iter().map(String::len).collect();
            f.push(format!(
                "{mode:?}: /many-at-end answered {} {} {lens:?}",
                r.status, r.body
            ));
        }
        jar.apply(&r);
        if jar != before {
            f.push(format!("{mode:?}: the browser's cookies changed"));
        }
        let r = c.visit("/data", &mut jar, PLAIN).await;
        if !r.body.contains("ada") {
            f.push(format!(
                "{mode:?}: after the failures the session is {}",
                r.body
            ));
        }
    }
    assert_none("cookie overflow", &f);
}
