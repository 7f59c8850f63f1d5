//! The login example in headless Chromium, its sessions in Redis: what a person does with it
//! (log in, reload, log out, press back, open a second tab, come back after a key rotation),
//! with the cookies read from the browser's own store and the records from Redis.
#![cfg(feature = "browser")]
#![allow(clippy::unwrap_used, missing_docs)]

mod support;

use std::time::Duration;

use support::{App, Browser, now, record, redis_url, unique};

const KEY_1: &str = "browser-test-key-one-0123456789abcdef";
const KEY_2: &str = "browser-test-key-two-0123456789abcdef";

async fn login_app(keys: &str) -> App {
    App::start("login", &["--store", &redis_url()], keys).await
}

/// The number the session page shows as views.
async fn views(b: &Browser) -> u64 {
    let el = b.client().find(fantoccini::Locator::Id("views")).await;
    el.unwrap().text().await.unwrap().parse().unwrap()
}

/// Log in, reload (the counter grows), log out (both cookies leave the browser, the record
/// leaves Redis), press back (the private page does not come back from the cache). The cookies
/// as the browser keeps them: `HttpOnly`, `SameSite=Lax`, `Path=/`, an expiry one day away
/// (the default max-age).
#[tokio::test(flavor = "multi_thread")]
async fn log_in_reload_log_out_and_go_back() {
    let app = login_app(KEY_1).await;
    let b = Browser::open("log_in_reload_log_out_and_go_back").await;
    b.goto(&format!("{}/", app.url)).await;
    b.wait_text("Sign in").await;
    b.shot("login-form").await;
    assert!(b.cookies().await.is_empty(), "a login form sets no cookie");

    let ada = unique("ada");
    b.log_in(&ada).await;
    b.wait_text(&format!("Hello, {ada}")).await;
    b.shot("signed-in").await;
    assert_eq!(views(&b).await, 1);
    let sent_at = now();
    let id = b.cookie("koa.sess").await.expect("the session cookie");
    let sig = b
        .cookie("koa.sess.sig")
        .await
        .expect("its signature cookie");
    for c in [&id, &sig] {
        assert_eq!(c.http_only(), Some(true), "{} is HttpOnly", c.name());
        assert_eq!(c.same_site(), Some(cookie::SameSite::Lax), "{}", c.name());
        assert_eq!(c.path(), Some("/"), "{}", c.name());
        assert_ne!(c.secure(), Some(true), "plain http: not Secure");
        let expires = c
            .expires_datetime()
            .expect("a persistent cookie")
            .unix_timestamp();
        let due = sent_at + 86_400;
        assert!(
            (due - 60..=due + 5).contains(&expires),
            "{} expires in {} s, not a day",
            c.name(),
            expires - sent_at
        );
    }
    assert_eq!(record(id.value()).await["d:user"], format!("\"{ada}\""));

    for n in 2..=3 {
        b.client().refresh().await.unwrap();
        b.wait_text(&format!("Hello, {ada}")).await;
        assert_eq!(views(&b).await, n);
    }
    b.shot("reloaded").await;
    assert_eq!(b.cookie("koa.sess").await.unwrap().value(), id.value());

    // The account page (its own URL, so the browser's cache could hold it), and logout from
    // there.
    b.client()
        .find(fantoccini::Locator::LinkText("Your sessions"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    b.wait_text(&format!("Signed in as {ada}")).await;
    b.shot("account").await;
    b.press("Log out").await;
    b.wait_text("Sign in").await;
    b.shot("logged-out").await;
    let left: Vec<String> = b
        .cookies()
        .await
        .iter()
        .map(|c| c.name().to_owned())
        .collect();
    assert!(left.is_empty(), "cookies left after logout: {left:?}");
    assert!(
        record(id.value()).await.is_empty(),
        "the record outlived the logout"
    );

    // Back to the account page: `no-store` makes the browser ask again instead of showing
    // its copy, and the answer is the login form.
    b.client().back().await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let text = b.text().await;
    b.shot("back-after-logout").await;
    assert!(
        !text.contains(&ada),
        "back after logout shows private data:\n{text}"
    );
    assert!(text.contains("Sign in"), "back after logout shows:\n{text}");
}

/// A session that exists before login (the page asked for is kept in it) gets a new id at
/// login: the cookie the browser holds changes, and the old id's record holds nothing.
#[tokio::test(flavor = "multi_thread")]
async fn login_gives_the_browser_a_new_id() {
    let app = login_app(KEY_1).await;
    let b = Browser::open("login_gives_the_browser_a_new_id").await;
    b.goto(&format!("{}/private", app.url)).await;
    b.wait_text("Sign in").await;
    b.shot("sent-to-login").await;
    let before = b.cookie("koa.sess").await.expect("a session before login");
    assert_eq!(record(before.value()).await["d:return_to"], "\"/private\"");

    let bob = unique("bob");
    b.log_in(&bob).await;
    b.wait_text(&format!("secret page for {bob}")).await;
    b.shot("back-at-private").await;
    let after = b.cookie("koa.sess").await.expect("a session after login");
    assert_ne!(after.value(), before.value(), "login kept the pre-login id");
    let new = record(after.value()).await;
    assert_eq!(new["d:user"], format!("\"{bob}\""));
    assert!(!new.contains_key("d:return_to"), "used once");
    let old = record(before.value()).await;
    assert!(
        old.keys().all(|k| !k.starts_with("d:")),
        "the pre-login id still holds data: {old:?}"
    );
}

/// The app restarts with a new key first in its list: the browser's session goes on, its
/// signature cookie is re-signed with the new key (the id stays), and a later restart with
/// the new key alone still knows the browser. A key the app never had logs nobody in.
#[tokio::test(flavor = "multi_thread")]
async fn key_rotation_keeps_the_browser_logged_in() {
    let b = Browser::open("key_rotation_keeps_the_browser_logged_in").await;
    let cy = unique("cy");
    let hello = format!("Hello, {cy}");
    let (id, sig) = {
        let app = login_app(KEY_1).await;
        b.goto(&format!("{}/", app.url)).await;
        b.log_in(&cy).await;
        b.wait_text(&hello).await;
        b.shot("signed-in-key-1").await;
        (
            b.cookie("koa.sess").await.unwrap().value().to_owned(),
            b.cookie("koa.sess.sig").await.unwrap().value().to_owned(),
        )
    };
    // Cookies belong to the host, not the port: the restarted app on a new port gets them.
    let rotated = format!("{KEY_2},{KEY_1}");
    {
        let app = login_app(&rotated).await;
        b.goto(&format!("{}/", app.url)).await;
        b.wait_text(&hello).await;
        b.shot("after-rotation").await;
        assert_eq!(views(&b).await, 2);
        assert_eq!(
            b.cookie("koa.sess").await.unwrap().value(),
            id,
            "same session"
        );
        let resigned = b.cookie("koa.sess.sig").await.unwrap();
        assert_ne!(resigned.value(), sig, "not re-signed with the new key");
    }
    {
        let app = login_app(KEY_2).await;
        b.goto(&format!("{}/", app.url)).await;
        b.wait_text(&hello).await;
        b.shot("old-key-retired").await;
        assert_eq!(views(&b).await, 3);
    }
    {
        let app = login_app("a-key-this-browser-never-saw-0123456789").await;
        b.goto(&format!("{}/", app.url)).await;
        b.wait_text("Sign in").await;
        b.shot("unknown-key").await;
    }
}

/// Two tabs of one browser: a logout in one logs the other out on its next request. Then a
/// login in one tab, 30 times over, while the other tab keeps firing requests that change the
/// session (each view is a write): every login holds, and after each the other tab's
/// requests are the new user's.
#[tokio::test(flavor = "multi_thread")]
async fn two_tabs_log_out_and_log_in_together() {
    let app = login_app(KEY_1).await;
    let b = Browser::open("two_tabs_log_out_and_log_in_together").await;
    let c = b.client();
    b.goto(&format!("{}/", app.url)).await;
    // Names unique to this run: other tests share the Redis (and its owner indexes).
    let dee = unique("dee");
    let hello = format!("Hello, {dee}");
    b.log_in(&dee).await;
    b.wait_text(&hello).await;
    let tab_a = c.window().await.unwrap();
    let tab_b = c.new_window(true).await.unwrap().handle;
    c.switch_to_window(tab_b.clone()).await.unwrap();
    b.goto(&format!("{}/", app.url)).await;
    b.wait_text(&hello).await;
    b.shot("second-tab").await;
    b.press("Log out").await;
    b.wait_text("Sign in").await;

    c.switch_to_window(tab_a.clone()).await.unwrap();
    // Tab A still shows the old page until its next request.
    c.refresh().await.unwrap();
    b.wait_text("Sign in").await;
    b.shot("first-tab-logged-out").await;
    let run = unique("u");
    let user = |i: usize| format!("{run}_{i}");
    b.log_in(&user(0)).await;
    b.wait_text(&format!("Hello, {}", user(0))).await;

    // Tab B fires requests back to back until told to stop; it keeps what each answered.
    c.switch_to_window(tab_b.clone()).await.unwrap();
    b.goto(&format!("{}/", app.url)).await;
    b.wait_text(&format!("Hello, {}", user(0))).await;
    c.execute(
        "window.seen = []; window.stop = false;
         (async () => {
           while (!window.stop) {
             try {
               const r = await fetch('/', { headers: { accept: 'text/html' } });
               const t = await r.text();
               const m = t.match(/Hello, (\\w+)/);
               window.seen.push(r.status + ' ' + (m ? m[1] : '-'));
             } catch (e) { window.seen.push('error ' + e); }
           }
         })();",
        vec![],
    )
    .await
    .unwrap();

    c.switch_to_window(tab_a.clone()).await.unwrap();
    let rounds = 30;
    let mut lost = Vec::new();
    for i in 1..=rounds {
        let user = user(i);
        b.post_form("/login", &[("user", &user)]).await;
        b.wait_text(&format!("Hello, {user}")).await;
        // The login holds through the other tab's requests.
        tokio::time::sleep(Duration::from_millis(30)).await;
        b.goto(&format!("{}/private", app.url)).await;
        let text = b.wait_text("secret page").await;
        if !text.contains(&format!("secret page for {user}")) {
            lost.push(format!("round {i}: {text}"));
        }
        b.goto(&format!("{}/", app.url)).await;
    }
    b.shot("after-logins").await;

    c.switch_to_window(tab_b.clone()).await.unwrap();
    // The other tab's requests since the last login are the last user's.
    let before = c
        .execute("return window.seen.length", vec![])
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let seen = c
        .execute("window.stop = true; return window.seen", vec![])
        .await
        .unwrap();
    let seen: Vec<String> = serde_json::from_value(seen).unwrap();
    let before = before.as_u64().unwrap() as usize;
    let anonymous = seen.iter().filter(|s| s.ends_with(" -")).count();
    eprintln!(
        "the other tab fired {} requests during {rounds} logins; {anonymous} of them answered \
         as nobody's (sent with an id a login had just replaced)",
        seen.len()
    );
    assert!(
        seen.len() > rounds,
        "the other tab fired only {} requests",
        seen.len()
    );
    let failed: Vec<&String> = seen.iter().filter(|s| !s.starts_with("200 ")).collect();
    assert!(
        failed.is_empty(),
        "requests of the other tab failed: {failed:?}"
    );
    let last = format!("200 {}", user(rounds));
    let strays: Vec<&String> = seen[before..].iter().filter(|s| **s != last).collect();
    assert!(
        strays.is_empty() && seen.len() > before,
        "after the last login the other tab saw {strays:?}"
    );
    assert!(
        lost.is_empty(),
        "{} of {rounds} logins lost: {lost:?}",
        lost.len()
    );
}

/// Whether the browser is logged in as `user` (its next request to `/` says).
async fn logged_in(b: &Browser, app: &App, user: &str) -> bool {
    b.goto(&format!("{}/", app.url)).await;
    let text = b.text().await;
    let hello = format!("Hello, {user}");
    assert!(text.contains(&hello) || text.contains("Sign in"), "{text}");
    text.contains(&hello)
}

/// One user in three browsers (three profiles): the account page of one lists all three,
/// revokes one of the others (that browser is logged out on its next request, the third is
/// not), then logs out everywhere else (the third is logged out too); the first stays in.
#[tokio::test(flavor = "multi_thread")]
async fn revoke_one_session_then_every_other_one() {
    let app = login_app(KEY_1).await;
    let eve = unique("eve");
    let a = Browser::open("revoke_one_session_then_every_other_one").await;
    let others = [
        Browser::open("revoke_one_session_then_every_other_one-b").await,
        Browser::open("revoke_one_session_then_every_other_one-c").await,
    ];
    for b in [&a, &others[0], &others[1]] {
        b.goto(&format!("{}/", app.url)).await;
        b.log_in(&eve).await;
        b.wait_text(&format!("Hello, {eve}")).await;
    }
    let rows = |b: &Browser| {
        let c = b.client().clone();
        async move {
            c.find_all(fantoccini::Locator::Css("tr"))
                .await
                .unwrap()
                .len()
                - 1
        }
    };
    a.goto(&format!("{}/account", app.url)).await;
    a.wait_text("this browser").await;
    a.shot("three-sessions").await;
    assert_eq!(rows(&a).await, 3);

    a.press("Revoke").await;
    a.wait_text(&format!("Signed in as {eve}")).await;
    a.shot("one-revoked").await;
    assert_eq!(rows(&a).await, 2);
    let still = [
        logged_in(&others[0], &app, &eve).await,
        logged_in(&others[1], &app, &eve).await,
    ];
    assert_eq!(
        still.iter().filter(|s| **s).count(),
        1,
        "one revoke, one browser logged out: {still:?}"
    );

    a.press("Log out everywhere else").await;
    a.wait_text(&format!("Signed in as {eve}")).await;
    a.shot("only-this-browser").await;
    assert_eq!(rows(&a).await, 1);
    for b in &others {
        assert!(
            !logged_in(b, &app, &eve).await,
            "a session outlived log out everywhere else"
        );
        b.shot("logged-out-elsewhere").await;
    }
    assert!(
        logged_in(&a, &app, &eve).await,
        "the browser that logged out the others is still in"
    );
}
