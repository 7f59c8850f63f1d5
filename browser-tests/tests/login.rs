//! The login example in headless Chromium, its sessions in Redis: what a person does with it
//! (sign up, sign in, reload, log out, press back, open a second tab, come back after a key
//! rotation, change the password while signed in elsewhere, sign in once too often), with the
//! cookies read from the browser's own store and the records from Redis, and its pages as a
//! phone shows them; and what the browser does by itself: a prefetch of the page that shows a
//! flash message, forms of other sites and of other ports posting to the app, seen through a
//! recording front ([`Front`]) between the browser and the app.
//!
//! Why this file is long: every test drives a whole flow of the app through real browsers, one
//! to four at a time, and the flows share their helpers (the requests a tab fires, the rows of
//! the account page).
//!
//! The tests share one Redis (and its owner indexes) with each other and with other suites, so
//! each signs up users of its own ([`unique`] names); only the key-rotation test signs in with
//! a demo account, which must outlive the app's restarts.
#![cfg(feature = "browser")]
#![allow(clippy::unwrap_used, missing_docs)]

mod support;

use std::time::Duration;

use support::front::Front;
use support::{App, Browser, PHONE, now, record, redis_url, unique};

const KEY_1: &str = "browser-test-key-one-0123456789abcdef";
const KEY_2: &str = "browser-test-key-two-0123456789abcdef";

/// The password of every account the tests sign up.
const PASSWORD: &str = "browser-test-password";

async fn login_app(keys: &str) -> App {
    login_app_with(keys, &[]).await
}

/// The login example on the shared Redis, with `args`.
async fn login_app_with(keys: &str, args: &[&str]) -> App {
    let store = redis_url();
    let mut all = vec!["--store", store.as_str()];
    all.extend_from_slice(args);
    App::start("login", &all, keys).await
}

/// Signs up a user of this test's own, named after `label`, through `b`; the name.
async fn new_user(b: &Browser, app: &App, label: &str) -> String {
    new_user_at(b, &app.url, label).await
}

/// [`new_user`] through the app at `url` (a [`Front`] of it).
async fn new_user_at(b: &Browser, url: &str, label: &str) -> String {
    let name = unique(label);
    b.sign_up(url, &name, PASSWORD).await;
    name
}

/// The user id a session's record says is logged in (what the auth layer stores under
/// `auth.user`), and checks that it stores a digest of the password hash, not the hash.
fn logged_in_user(record: &std::collections::HashMap<String, String>) -> String {
    let stored: serde_json::Value = serde_json::from_str(&record["d:auth.user"]).unwrap();
    let auth = stored["auth"].as_str().unwrap();
    assert!(
        !auth.contains("argon2"),
        "the record holds the hash: {stored}"
    );
    stored["user_id"].as_str().unwrap().to_owned()
}

/// The number the session page shows as views.
async fn views(b: &Browser) -> u64 {
    let el = b.client().find(fantoccini::Locator::Id("views")).await;
    el.unwrap().text().await.unwrap().parse().unwrap()
}

/// Checks that the page's `#id` cell shows `t` to the minute (`YYYY-MM-DD HH:MM UTC`), or the
/// minute before or after (the page and the cookie round differently).
async fn assert_page_time(b: &Browser, id: &str, t: cookie::time::OffsetDateTime) {
    let el = b.client().find(fantoccini::Locator::Id(id)).await.unwrap();
    let shown = el.text().await.unwrap();
    let minute = Duration::from_secs(60);
    let fmt = |t: cookie::time::OffsetDateTime| {
        format!(
            "{:04}-{:02}-{:02} {:02}:{:02} UTC",
            t.year(),
            t.month() as u8,
            t.day(),
            t.hour(),
            t.minute()
        )
    };
    let near = [fmt(t - minute), fmt(t), fmt(t + minute)];
    assert!(
        near.contains(&shown),
        "#{id} shows {shown:?}, not near {}",
        near[1]
    );
}

/// Checks that the browser holds no session cookie, only the CSRF nonce of an anonymous
/// visitor's forms: `HttpOnly`, `SameSite=Lax`, `Path=/`.
async fn assert_only_the_csrf_nonce(b: &Browser, after: &str) {
    let names = b.cookie_names().await;
    assert_eq!(names, ["koa.sess.csrf"], "{after}: cookies {names:?}");
    let nonce = b.cookie("koa.sess.csrf").await.unwrap();
    assert_eq!(nonce.http_only(), Some(true));
    assert_eq!(nonce.same_site(), Some(cookie::SameSite::Lax));
    assert_eq!(nonce.path(), Some("/"));
}

/// Checks that after a logout the browser no longer holds the session `id`: its cookie is
/// gone, or replaced by the id of a session that holds no user (the one that carried the
/// "You are signed out." message, or none once another request removed it).
async fn assert_signed_out(b: &Browser, id: &str) {
    let Some(now) = b.cookie("koa.sess").await else {
        return;
    };
    assert_ne!(now.value(), id, "the browser still holds the ended session");
    let left = record(now.value()).await;
    assert!(
        !left.contains_key("d:auth.user"),
        "the session after the logout has a user: {left:?}"
    );
}

/// Sign up, sign in (the page says so, once), reload (the counter grows), log out (the
/// session's cookies leave the browser, the record leaves Redis; the sign-in page says so),
/// press back (the private page does not come back from the cache). The cookies as the
/// browser keeps them: `HttpOnly`, `SameSite=Lax`, `Path=/`, an expiry one day away (the
/// default max-age).
#[tokio::test(flavor = "multi_thread")]
async fn log_in_reload_log_out_and_go_back() {
    let app = login_app(KEY_1).await;
    let b = Browser::open("log_in_reload_log_out_and_go_back").await;
    let ada = new_user(&b, &app, "ada").await;
    b.shot("signed-up").await;
    assert_only_the_csrf_nonce(&b, "signing up").await;
    b.goto(&format!("{}/", app.url)).await;
    b.wait_text("Sign in").await;
    b.shot("login-form").await;
    assert_only_the_csrf_nonce(&b, "a login form").await;

    b.log_in(&ada, PASSWORD).await;
    let text = b.wait_text(&format!("Hello, {ada}")).await;
    b.shot("signed-in").await;
    assert_eq!(
        text.matches(&format!("Signed in as {ada}.")).count(),
        1,
        "{text}"
    );
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
    assert_eq!(logged_in_user(&record(id.value()).await), ada);
    // The page says what the browser holds: signed in a day before the cookie expires, and
    // expiring when it does (to the minute the page shows).
    let expiry = id.expires_datetime().unwrap();
    let day = Duration::from_secs(86_400);
    assert_page_time(&b, "expires", expiry).await;
    assert_page_time(&b, "created", expiry - day).await;

    for n in 2..=3 {
        b.client().refresh().await.unwrap();
        let text = b.wait_text(&format!("Hello, {ada}")).await;
        assert_eq!(views(&b).await, n);
        assert!(
            !text.contains("Signed in as"),
            "the message came back: {text}"
        );
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
    let text = b.wait_text("Sign in").await;
    b.shot("logged-out").await;
    assert!(text.contains("You are signed out."), "{text}");
    assert_signed_out(&b, id.value()).await;
    assert!(
        record(id.value()).await.is_empty(),
        "the record outlived the logout"
    );

    // Back to the account page: `no-store` makes the browser ask again instead of showing
    // its copy, and the answer is the login form.
    b.client().back().await.unwrap();
    let nav = b
        .client()
        .execute(
            "return performance.getEntriesByType('navigation')[0].type",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(nav, "back_forward", "no back navigation happened");
    let text = b.text().await;
    b.shot("back-after-logout").await;
    assert!(
        !text.contains(&ada),
        "back after logout shows private data:\n{text}"
    );
    assert!(text.contains("Sign in"), "back after logout shows:\n{text}");
}

/// A page that needs a login, asked for while signed out: the sign-in page, with the page
/// asked for in its URL (no session is made for it), then back to that page once signed in.
/// A login over an existing session (another user signing in on the same browser) gets a new
/// id: the cookie the browser holds changes, and the old id's record holds nothing.
#[tokio::test(flavor = "multi_thread")]
async fn login_gives_the_browser_a_new_id() {
    let app = login_app(KEY_1).await;
    let b = Browser::open("login_gives_the_browser_a_new_id").await;
    let amy = new_user(&b, &app, "amy").await;
    let bob = new_user(&b, &app, "bob").await;
    b.goto(&format!("{}/private", app.url)).await;
    b.wait_text("Sign in").await;
    b.shot("sent-to-login").await;
    let at = b.client().current_url().await.unwrap();
    assert_eq!((at.path(), at.query()), ("/", Some("next=%2Fprivate")));
    assert_only_the_csrf_nonce(&b, "an anonymous visit").await;

    b.log_in(&amy, PASSWORD).await;
    b.wait_text(&format!("secret page for {amy}")).await;
    b.shot("back-at-private").await;
    let before = b.cookie("koa.sess").await.expect("a session after login");
    assert_eq!(logged_in_user(&record(before.value()).await), amy);

    b.post_form(
        "/login",
        &[
            ("username", &bob),
            ("password", PASSWORD),
            ("next", "/private"),
        ],
    )
    .await;
    b.wait_text(&format!("secret page for {bob}")).await;
    b.shot("another-user").await;
    let after = b.cookie("koa.sess").await.expect("a session after login");
    assert_ne!(after.value(), before.value(), "login kept the old id");
    assert_eq!(logged_in_user(&record(after.value()).await), bob);
    let old = record(before.value()).await;
    assert!(
        old.keys().all(|k| !k.starts_with("d:")),
        "the old id still holds data: {old:?}"
    );
}

/// The app restarts with a new key first in its list: the browser's session goes on, its
/// signature cookie is re-signed with the new key (the id stays), and a later restart with
/// the new key alone still knows the browser. A key the app never had logs nobody in.
///
/// Signed in with a demo account: an account made by sign-up is gone after a restart (the
/// users live in the app's memory), a demo account is there again, with the same password
/// hash. Its sessions may outlive earlier runs in a shared Redis, so over the limit the
/// oldest ends.
#[tokio::test(flavor = "multi_thread")]
async fn key_rotation_keeps_the_browser_logged_in() {
    let b = Browser::open("key_rotation_keeps_the_browser_logged_in").await;
    let hello = "Hello, alan";
    let oldest_ends = ["--over-limit", "end-oldest"];
    let (id, sig) = {
        let app = login_app_with(KEY_1, &oldest_ends).await;
        b.goto(&format!("{}/", app.url)).await;
        b.log_in("alan", "alan-password").await;
        b.wait_text(hello).await;
        b.shot("signed-in-key-1").await;
        (
            b.cookie("koa.sess").await.unwrap().value().to_owned(),
            b.cookie("koa.sess.sig").await.unwrap().value().to_owned(),
        )
    };
    // Cookies belong to the host, not the port: the restarted app on a new port gets them.
    let rotated = format!("{KEY_2},{KEY_1}");
    {
        let app = login_app_with(&rotated, &oldest_ends).await;
        b.goto(&format!("{}/", app.url)).await;
        b.wait_text(hello).await;
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
        let app = login_app_with(KEY_2, &oldest_ends).await;
        b.goto(&format!("{}/", app.url)).await;
        b.wait_text(hello).await;
        b.shot("old-key-retired").await;
        assert_eq!(views(&b).await, 3);
    }
    {
        let app = login_app_with("a-key-this-browser-never-saw-0123456789", &oldest_ends).await;
        b.goto(&format!("{}/", app.url)).await;
        b.wait_text("Sign in").await;
        b.shot("unknown-key").await;
    }
}

/// Starts requests from the current tab, back to back until [`stop_requests`]: each a
/// `GET /` that counts a view (a write) when logged in; it keeps `STATUS USER` (`-` for the
/// login form) of each answer.
async fn start_requests(c: &fantoccini::Client) {
    c.execute(
        "window.seen = []; window.stop = false; window.done = false;
         (async () => {
           while (!window.stop) {
             try {
               const r = await fetch('/', { headers: { accept: 'text/html' } });
               const t = await r.text();
               const m = t.match(/Hello, (\\w+)/);
               window.seen.push(r.status + ' ' + (m ? m[1] : '-'));
             } catch (e) { window.seen.push('error ' + e); }
           }
           window.done = true;
         })();",
        vec![],
    )
    .await
    .unwrap();
}

/// How many answers the current tab's requests have had.
async fn answered(c: &fantoccini::Client) -> usize {
    let n = c
        .execute("return window.seen.length", vec![])
        .await
        .unwrap();
    n.as_u64().unwrap() as usize
}

/// Waits for `more` answers beyond `from`, stops the current tab's requests and waits for the
/// last one; the answers.
async fn stop_requests(c: &fantoccini::Client, from: usize, more: usize) -> Vec<String> {
    let t = std::time::Instant::now();
    while answered(c).await < from + more {
        assert!(
            t.elapsed() < Duration::from_secs(15),
            "the requests stalled"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    c.execute("window.stop = true", vec![]).await.unwrap();
    loop {
        let done = c.execute("return window.done", vec![]).await.unwrap();
        if done == true {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(15),
            "the requests never ended"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let seen = c.execute("return window.seen", vec![]).await.unwrap();
    serde_json::from_value(seen).unwrap()
}

/// Two tabs of one browser. A logout in one while the other fires requests that write the
/// session: the cookies stay gone, the record stays gone, and the other tab is logged out on
/// its next page. Then a login in one tab, 30 times over (three users taking turns), while the
/// other keeps firing such requests: every login holds, and after each the other tab's
/// requests are the new user's.
#[tokio::test(flavor = "multi_thread")]
async fn two_tabs_log_out_and_log_in_together() {
    let app = login_app(KEY_1).await;
    let b = Browser::open("two_tabs_log_out_and_log_in_together").await;
    let c = b.client();
    let dee = new_user(&b, &app, "dee").await;
    // Three users to take turns signing in (names of word characters only: the tab's
    // requests read them with `\w+`).
    let run = unique("u");
    let user = |i: usize| format!("{run}_{}", i % 3);
    for i in 0..3 {
        b.sign_up(&app.url, &user(i), PASSWORD).await;
    }
    b.goto(&format!("{}/", app.url)).await;
    let hello = format!("Hello, {dee}");
    b.log_in(&dee, PASSWORD).await;
    b.wait_text(&hello).await;
    let id = b.cookie("koa.sess").await.unwrap().value().to_owned();
    let tab_a = c.window().await.unwrap();
    let tab_b = c.new_window(true).await.unwrap().handle;
    c.switch_to_window(tab_b.clone()).await.unwrap();
    b.goto(&format!("{}/", app.url)).await;
    b.wait_text(&hello).await;
    b.shot("second-tab").await;

    c.switch_to_window(tab_a.clone()).await.unwrap();
    start_requests(c).await;
    c.switch_to_window(tab_b.clone()).await.unwrap();
    b.press("Log out").await;
    b.wait_text("Sign in").await;
    c.switch_to_window(tab_a.clone()).await.unwrap();
    let from = answered(c).await;
    let seen = stop_requests(c, from, 5).await;
    let failed: Vec<&String> = seen.iter().filter(|s| !s.starts_with("200 ")).collect();
    assert!(failed.is_empty(), "requests failed: {failed:?}");
    assert!(
        seen[from + 1..].iter().all(|s| s == "200 -"),
        "requests after the logout were someone's: {:?}",
        &seen[from..]
    );
    assert_signed_out(&b, &id).await;
    assert!(record(&id).await.is_empty(), "the record came back");
    // Tab A still shows the old page until its next request.
    c.refresh().await.unwrap();
    b.wait_text("Sign in").await;
    b.shot("first-tab-logged-out").await;

    b.log_in(&user(0), PASSWORD).await;
    b.wait_text(&format!("Hello, {}", user(0))).await;
    c.switch_to_window(tab_b.clone()).await.unwrap();
    b.goto(&format!("{}/", app.url)).await;
    b.wait_text(&format!("Hello, {}", user(0))).await;
    start_requests(c).await;

    c.switch_to_window(tab_a.clone()).await.unwrap();
    let rounds = 30;
    let mut lost = Vec::new();
    for i in 1..=rounds {
        let user = user(i);
        b.post_form("/login", &[("username", &user), ("password", PASSWORD)])
            .await;
        b.wait_text(&format!("Hello, {user}")).await;
        // The login holds through the other tab's requests.
        b.goto(&format!("{}/private", app.url)).await;
        let text = b.wait_text("secret page").await;
        if !text.contains(&format!("secret page for {user}")) {
            lost.push(format!("round {i}: {text}"));
        }
        b.goto(&format!("{}/", app.url)).await;
    }
    b.shot("after-logins").await;

    c.switch_to_window(tab_b.clone()).await.unwrap();
    let from = answered(c).await;
    let seen = stop_requests(c, from, 5).await;
    let anonymous = seen.iter().filter(|s| s.ends_with(" -")).count();
    println!(
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
    // The answers that began after the last login had finished are the last user's.
    let last = format!("200 {}", user(rounds));
    let strays: Vec<&String> = seen[from + 1..].iter().filter(|s| **s != last).collect();
    assert!(
        strays.is_empty(),
        "after the last login the other tab saw {strays:?}"
    );
    assert!(
        lost.is_empty(),
        "{} of {rounds} logins lost: {lost:?}",
        lost.len()
    );
}

/// Waits until the account page lists `n` sessions.
async fn wait_rows(b: &Browser, n: usize) {
    let t = std::time::Instant::now();
    loop {
        let rows = b
            .client()
            .find_all(fantoccini::Locator::XPath("//tr[td]"))
            .await
            .map_or(0, |r| r.len());
        if rows == n {
            return;
        }
        if t.elapsed() > Duration::from_secs(15) {
            b.shot("wrong-rows").await;
            panic!("the account page lists {rows} sessions, not {n}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Whether the browser is logged in as `user` (its next request to `/` says).
async fn logged_in(b: &Browser, app: &App, user: &str) -> bool {
    logged_in_at(b, &app.url, user).await
}

/// [`logged_in`] at the app at `url` (a [`Front`] of it).
async fn logged_in_at(b: &Browser, url: &str, user: &str) -> bool {
    b.goto(&format!("{url}/")).await;
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
    let a = Browser::open("revoke_one_session_then_every_other_one").await;
    let others = [
        Browser::open("revoke_one_session_then_every_other_one-b").await,
        Browser::open("revoke_one_session_then_every_other_one-c").await,
    ];
    let eve = new_user(&a, &app, "eve").await;
    for b in [&a, &others[0], &others[1]] {
        b.goto(&format!("{}/", app.url)).await;
        b.log_in(&eve, PASSWORD).await;
        b.wait_text(&format!("Hello, {eve}")).await;
    }
    let mut ids = Vec::new();
    for b in &others {
        ids.push(b.cookie("koa.sess").await.unwrap().value().to_owned());
    }
    a.goto(&format!("{}/account", app.url)).await;
    a.wait_text("this browser").await;
    wait_rows(&a, 3).await;
    a.shot("three-sessions").await;

    a.press("Revoke").await;
    wait_rows(&a, 2).await;
    a.shot("one-revoked").await;
    let still = [
        logged_in(&others[0], &app, &eve).await,
        logged_in(&others[1], &app, &eve).await,
    ];
    assert_eq!(
        still.iter().filter(|s| **s).count(),
        1,
        "one revoke, one browser logged out: {still:?}"
    );

    // The others fire requests (each a write when logged in) while the last one is logged out
    // from here: none brings a record back.
    let mut from = Vec::new();
    for b in &others {
        start_requests(b.client()).await;
        from.push(answered(b.client()).await);
    }
    a.press("Log out everywhere else").await;
    wait_rows(&a, 1).await;
    a.shot("only-this-browser").await;
    for (b, from) in others.iter().zip(from) {
        let seen = stop_requests(b.client(), from, 5).await;
        assert!(
            seen.iter().all(|s| s.starts_with("200 ")),
            "requests failed: {seen:?}"
        );
    }
    for id in &ids {
        assert!(record(id).await.is_empty(), "a revoked record came back");
    }
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

/// A form on another site (`localhost` is another site than `127.0.0.1`) posting to `/logout`
/// right after login ends nothing, twice over: the CSRF check refuses the post (403, a page
/// saying what to do), and `SameSite=Lax` as Chromium applies it keeps the session's cookies
/// off it, as the front in between sees. (A cookie without the attribute would have gone
/// along: for two minutes after it is set Chromium lets such cookies through on top-level
/// cross-site POSTs. WebDriver reports a missing `SameSite` as `Lax`, so only the request
/// tells.)
#[tokio::test(flavor = "multi_thread")]
async fn a_form_on_another_site_cannot_log_the_user_out() {
    let app = login_app(KEY_1).await;
    let front = Front::start(Some(&app.url), &[]).await;
    let b = Browser::open("a_form_on_another_site_cannot_log_the_user_out").await;
    let user = new_user_at(&b, &front.url, "fay").await;
    let hello = format!("Hello, {user}");
    b.goto(&format!("{}/", front.url)).await;
    b.log_in(&user, PASSWORD).await;
    b.wait_text(&hello).await;
    let id = b.cookie("koa.sess").await.unwrap().value().to_owned();
    let other_site = front.url.replace("127.0.0.1", "localhost");
    for round in 0..3 {
        b.goto(&format!("{other_site}/")).await;
        b.wait_text("Sign in").await;
        let from = front.mark();
        b.post_form(&format!("{}/logout", front.url), &[]).await;
        b.wait_text("Form refused").await;
        if round == 0 {
            b.shot("after-cross-site-post").await;
        }
        assert_eq!(b.status().await, 403);
        let post = front
            .wait_for(from, "the cross-site post", |s| {
                s.method == "POST" && s.path == "/logout"
            })
            .await;
        assert_eq!((post.status, post.forwarded), (403, true));
        assert_eq!(post.header("sec-fetch-site"), Some("cross-site"));
        let cookies = post.cookie_names();
        assert!(
            !cookies.iter().any(|c| c.starts_with("koa.sess")),
            "the session's cookies went along: {cookies:?}"
        );
        assert!(!record(&id).await.is_empty(), "the post ended the session");
    }
    assert!(logged_in_at(&b, &front.url, &user).await);
    // The same form from the site itself does log out.
    b.post_form("/logout", &[]).await;
    b.wait_text("You are signed out.").await;
    assert!(record(&id).await.is_empty());
}

/// A page of an attacker's on another port of this host (`127.0.0.1` too: the same site, as
/// ports do not count, so `SameSite=Lax` lets the session's cookies go along) whose forms post
/// to the app as soon as they load: to `/logout`, and to `/account/logout-others`. The CSRF
/// check alone refuses them (403): the front in between sees each post reach the app with
/// the cookies and `Sec-Fetch-Site: same-site` and no token, and the 403; both browsers stay
/// signed in.
#[tokio::test(flavor = "multi_thread")]
async fn a_form_on_another_port_of_the_host_cannot_post() {
    let app = login_app(KEY_1).await;
    let front = Front::start(Some(&app.url), &[]).await;
    let test = "a_form_on_another_port_of_the_host_cannot_post";
    let b = Browser::open(test).await;
    let other = Browser::open(&format!("{test}-b")).await;
    let gus = new_user_at(&b, &front.url, "gus").await;
    let hello = format!("Hello, {gus}");
    let mut ids = Vec::new();
    for x in [&b, &other] {
        x.goto(&format!("{}/", front.url)).await;
        x.log_in(&gus, PASSWORD).await;
        x.wait_text(&hello).await;
        ids.push(x.cookie("koa.sess").await.unwrap().value().to_owned());
    }
    let targets = ["/logout", "/account/logout-others"];
    let pages: Vec<(&str, String)> = targets
        .iter()
        .map(|t| (*t, auto_posting(&format!("{}{t}", front.url))))
        .collect();
    let attacker = Front::start(None, &pages).await;
    assert_ne!(attacker.url, front.url);
    for target in targets {
        let from = front.mark();
        b.goto(&format!("{}{target}", attacker.url)).await;
        b.wait_text("Form refused").await;
        b.shot(&format!("refused-{}", target.replace('/', "-")))
            .await;
        assert_eq!(b.status().await, 403);
        let post = front
            .wait_for(from, "the attacker's post", |s| {
                s.method == "POST" && s.path == target
            })
            .await;
        assert_eq!((post.status, post.forwarded), (403, true), "{target}");
        assert_eq!(post.header("sec-fetch-site"), Some("same-site"), "{target}");
        let cookies = post.cookie_names();
        assert!(
            cookies.iter().any(|c| c == "koa.sess"),
            "{target}: the session cookie did not go along, so this proves nothing: {cookies:?}"
        );
        for id in &ids {
            assert!(!record(id).await.is_empty(), "{target} ended a session");
        }
    }
    for x in [&b, &other] {
        assert!(logged_in_at(x, &front.url, &gus).await, "a post logged out");
    }
    b.goto(&format!("{}/account", front.url)).await;
    b.wait_text("this browser").await;
    wait_rows(&b, 2).await;
}

/// An attacker's page: a form posting to `action` (with no token: it has none to give), sent
/// as soon as the page loads.
fn auto_posting(action: &str) -> String {
    format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Win a prize</title></head><body>
<p>Loading your prize...</p>
<form id="f" method="post" action="{action}"><input type="hidden" name="x" value="1"></form>
<script>document.getElementById('f').submit();</script>
</body></html>
"#
    )
}

/// The page the front serves after the login of [`a_prefetch_leaves_the_message_for_the_visit`]
/// (the login's `next`): the browser prefetches the session page from it, and it links there.
const PREFETCHING: &str = r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Prefetching</title>
<link rel="prefetch" href="/">
</head><body>
<p>This page prefetches the session page.</p>
<p><a id="go" href="/">To the session page</a></p>
</body></html>
"#;

/// A `<link rel="prefetch">` of the page that would show the login's flash message does not
/// take the message: the login's 303 leads to a page of the front's (it shows no messages, so
/// the message waits in the session) that has Chromium prefetch the session page; the front
/// sees the prefetch (`Sec-Purpose: prefetch`) reach the app, and the app answer it with the
/// user's page and no message. Then the link to the session page is followed: the page comes
/// from the app (a `no-store` answer is not kept for it), with the message, once; a reload
/// shows none.
#[tokio::test(flavor = "multi_thread")]
async fn a_prefetch_leaves_the_message_for_the_visit() {
    let app = login_app(KEY_1).await;
    let pages = [("/prefetching", PREFETCHING.to_owned())];
    let front = Front::start(Some(&app.url), &pages).await;
    let b = Browser::open("a_prefetch_leaves_the_message_for_the_visit").await;
    let pia = new_user_at(&b, &front.url, "pia").await;
    let hello = format!("Hello, {pia}");
    let message = format!("Signed in as {pia}.");
    b.goto(&format!("{}/?next=%2Fprefetching", front.url)).await;
    b.wait_text("Sign in").await;
    let from = front.mark();
    b.log_in(&pia, PASSWORD).await;
    b.wait_text("This page prefetches the session page").await;
    let prefetch = front
        .wait_for(from, "the prefetch of /", |s| {
            s.path == "/" && s.is_prefetch()
        })
        .await;
    b.shot("prefetching").await;
    println!(
        "the prefetch: Sec-Purpose {:?}, Purpose {:?}, Sec-Fetch-Dest {:?}, Sec-Fetch-Mode {:?}",
        prefetch.header("sec-purpose"),
        prefetch.header("purpose"),
        prefetch.header("sec-fetch-dest"),
        prefetch.header("sec-fetch-mode"),
    );
    assert_eq!((prefetch.status, prefetch.forwarded), (200, true));
    assert!(
        prefetch.body.contains(&hello),
        "the prefetch was not the user's: {}",
        prefetch.body
    );
    assert!(
        !prefetch.body.contains(r#"class="flash""#),
        "the prefetch was shown the message: {}",
        prefetch.body
    );

    let from = front.mark();
    b.client()
        .find(fantoccini::Locator::Id("go"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let text = b.wait_text(&hello).await;
    b.shot("the-session-page").await;
    assert_eq!(text.matches(&message).count(), 1, "{text}");
    let visit = front
        .wait_for(from, "the visit of /", |s| {
            s.path == "/" && !s.is_prefetch()
        })
        .await;
    assert_eq!(visit.header("sec-fetch-mode"), Some("navigate"));
    assert!(visit.body.contains(&message), "{}", visit.body);
    b.client().refresh().await.unwrap();
    let text = b.wait_text(&hello).await;
    assert!(!text.contains(&message), "shown twice: {text}");
}

/// One user in three browsers; one changes the password. The page says two other sessions
/// ended; their records are gone from Redis at once, and each of the two others is anonymous
/// on its next page. The browser that changed it stays signed in, and only the new password
/// signs in.
#[tokio::test(flavor = "multi_thread")]
async fn a_password_change_signs_out_the_other_browsers() {
    let app = login_app(KEY_1).await;
    let test = "a_password_change_signs_out_the_other_browsers";
    let a = Browser::open(test).await;
    let others = [
        Browser::open(&format!("{test}-b")).await,
        Browser::open(&format!("{test}-c")).await,
    ];
    let pat = new_user(&a, &app, "pat").await;
    let hello = format!("Hello, {pat}");
    for b in [&a, &others[0], &others[1]] {
        b.goto(&format!("{}/", app.url)).await;
        b.log_in(&pat, PASSWORD).await;
        b.wait_text(&hello).await;
    }
    let mut ids = Vec::new();
    for b in &others {
        ids.push(b.cookie("koa.sess").await.unwrap().value().to_owned());
    }

    a.goto(&format!("{}/account/password", app.url)).await;
    a.wait_text("Current password").await;
    a.shot("password-form").await;
    // A wrong current password changes nothing.
    a.type_into("current", "not-the-password").await;
    a.type_into("new", "a-new-password").await;
    a.press("Change password").await;
    a.wait_text("Your current password is not that").await;
    assert_eq!(a.status().await, 403);
    a.shot("wrong-current-password").await;
    for id in &ids {
        assert!(
            !record(id).await.is_empty(),
            "a refused change ended a session"
        );
    }

    a.type_into("current", PASSWORD).await;
    a.type_into("new", "a-new-password").await;
    a.press("Change password").await;
    let text = a.wait_text("Your password was changed").await;
    a.shot("password-changed").await;
    assert!(text.contains("2 other sessions were signed out"), "{text}");
    for id in &ids {
        assert!(record(id).await.is_empty(), "a session outlived the change");
    }
    for b in &others {
        // Each still shows its page until its next request, which is anonymous.
        b.client().refresh().await.unwrap();
        let text = b.wait_text("Sign in").await;
        assert!(!text.contains(&hello), "{text}");
        b.shot("signed-out-by-the-change").await;
    }
    assert!(
        logged_in(&a, &app, &pat).await,
        "the changer was signed out"
    );
    a.goto(&format!("{}/account", app.url)).await;
    a.wait_text("this browser").await;
    wait_rows(&a, 1).await;

    let b = &others[0];
    b.log_in(&pat, PASSWORD).await;
    b.wait_text("Wrong name or password").await;
    b.log_in(&pat, "a-new-password").await;
    b.wait_text(&hello).await;
}

/// The limit, 3 sessions a user by default, refuses a fourth login: the browser is shown a
/// 409 page saying what to do, and holds no session. With `--over-limit end-oldest` a fourth
/// login goes in, and the first browser's next page says it was signed out because it
/// signed in elsewhere (once).
#[tokio::test(flavor = "multi_thread")]
async fn a_fourth_login_is_refused_or_ends_the_oldest() {
    let test = "a_fourth_login_is_refused_or_ends_the_oldest";
    let mut browsers = Vec::new();
    for i in 0..4 {
        browsers.push(Browser::open(&format!("{test}-{i}")).await);
    }
    {
        let app = login_app(KEY_1).await;
        let max = new_user(&browsers[0], &app, "max").await;
        for b in &browsers[..3] {
            b.goto(&format!("{}/", app.url)).await;
            b.log_in(&max, PASSWORD).await;
            b.wait_text(&format!("Hello, {max}")).await;
        }
        let fourth = &browsers[3];
        fourth.goto(&format!("{}/", app.url)).await;
        fourth.log_in(&max, PASSWORD).await;
        let text = fourth.wait_text("Too many sessions").await;
        fourth.shot("refused").await;
        assert_eq!(fourth.status().await, 409);
        assert!(text.contains("already signed in on 3 browsers"), "{text}");
        assert!(fourth.cookie("koa.sess").await.is_none());
        for b in &browsers[..3] {
            assert!(
                logged_in(b, &app, &max).await,
                "a refused login ended a session"
            );
        }
    }
    {
        let app = login_app_with(KEY_1, &["--over-limit", "end-oldest"]).await;
        let kim = new_user(&browsers[0], &app, "kim").await;
        for b in &browsers {
            b.goto(&format!("{}/", app.url)).await;
            b.log_in(&kim, PASSWORD).await;
            b.wait_text(&format!("Hello, {kim}")).await;
        }
        let first = &browsers[0];
        let id = first.cookie("koa.sess").await.unwrap().value().to_owned();
        first.goto(&format!("{}/", app.url)).await;
        let text = first
            .wait_text("You were signed out because you signed in elsewhere")
            .await;
        first.shot("told-why").await;
        assert!(text.contains("Sign in"), "{text}");
        first
            .client()
            .find(fantoccini::Locator::Id("ended"))
            .await
            .unwrap();
        // Gone, or only the supersede marker that led to the ended marker (Redis keeps a
        // marker to its short TTL): no session data is left under the id.
        let left = record(&id).await;
        assert!(
            left.keys().all(|k| k == "_v" || k == "_sup"),
            "the ended record is still there: {:?}",
            left.keys().collect::<Vec<_>>()
        );
        first.client().refresh().await.unwrap();
        let text = first.wait_text("Sign in").await;
        assert!(!text.contains("signed in elsewhere"), "said twice: {text}");
        for b in &browsers[1..] {
            assert!(logged_in(b, &app, &kim).await);
        }
        browsers[1].goto(&format!("{}/account", app.url)).await;
        wait_rows(&browsers[1], 3).await;
    }
}

/// Checks that the page is laid out at the phone's width with nothing wider (no sideways
/// scrolling), and keeps a screenshot of it.
async fn phone_shot(b: &Browser, name: &str) {
    let (width, content) = b.widths().await;
    assert_eq!(
        width, PHONE.0,
        "{name}: laid out {width} px wide, not at the phone's width"
    );
    assert!(
        content <= width,
        "{name}: the content is {content} px wide on a {width} px screen"
    );
    b.shot(name).await;
}

/// The pages at a phone's width (390 CSS pixels, Chromium's mobile emulation): sign-in,
/// sign-up, the session page, the account page with two sessions (its table stacked), the
/// password pages. Screenshots in `target/tmp/browser/pages_at_a_phones_width/`.
#[tokio::test(flavor = "multi_thread")]
async fn pages_at_a_phones_width() {
    let app = login_app(KEY_1).await;
    let phone = Browser::open_phone("pages_at_a_phones_width").await;
    let laptop = Browser::open("pages_at_a_phones_width-laptop").await;
    phone.goto(&format!("{}/", app.url)).await;
    phone.wait_text("Demo accounts").await;
    phone_shot(&phone, "sign-in").await;
    phone.goto(&format!("{}/signup", app.url)).await;
    phone.wait_text("Create an account").await;
    phone_shot(&phone, "sign-up").await;
    let name = new_user(&phone, &app, "ph").await;
    phone_shot(&phone, "signed-up").await;
    phone.log_in(&name, "wrong password").await;
    phone.wait_text("Wrong name or password").await;
    phone_shot(&phone, "wrong-password").await;

    phone.log_in(&name, PASSWORD).await;
    phone.wait_text(&format!("Hello, {name}")).await;
    phone_shot(&phone, "session").await;
    laptop.goto(&format!("{}/", app.url)).await;
    laptop.log_in(&name, PASSWORD).await;
    laptop.wait_text(&format!("Hello, {name}")).await;

    phone.goto(&format!("{}/account", app.url)).await;
    phone.wait_text("this browser").await;
    wait_rows(&phone, 2).await;
    let text = phone.text().await;
    assert!(text.contains("Chrome on Android"), "{text}");
    phone_shot(&phone, "account").await;
    phone.goto(&format!("{}/account/password", app.url)).await;
    phone.wait_text("Current password").await;
    phone_shot(&phone, "password").await;
    phone.type_into("current", PASSWORD).await;
    phone.type_into("new", "a-new-password").await;
    phone.press("Change password").await;
    phone.wait_text("Your password was changed").await;
    phone_shot(&phone, "password-changed").await;
    phone.goto(&format!("{}/private", app.url)).await;
    phone.wait_text("secret page for").await;
    phone_shot(&phone, "private").await;
}
