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
    // The page says what the browser holds: signed in a day before the cookie expires, and
    // expiring when it does (to the minute the page shows).
    let expiry = id.expires_datetime().unwrap();
    let day = Duration::from_secs(86_400);
    assert_page_time(&b, "expires", expiry).await;
    assert_page_time(&b, "created", expiry - day).await;

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
    let left = b.cookie_names().await;
    assert!(left.is_empty(), "cookies left after logout: {left:?}");
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
    // A pre-login session lives a quarter of an hour, not a day.
    let left = before.expires_datetime().unwrap().unix_timestamp() - now();
    assert!(
        (840..=905).contains(&left),
        "the pre-login session expires in {left} s"
    );

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
/// its next page. Then a login in one tab, 30 times over, while the other keeps firing such
/// requests: every login holds, and after each the other tab's requests are the new user's.
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
    let left = b.cookie_names().await;
    assert!(left.is_empty(), "cookies after the logout: {left:?}");
    assert!(record(&id).await.is_empty(), "the record came back");
    // Tab A still shows the old page until its next request.
    c.refresh().await.unwrap();
    b.wait_text("Sign in").await;
    b.shot("first-tab-logged-out").await;

    let run = unique("u");
    let user = |i: usize| format!("{run}_{i}");
    b.log_in(&user(0)).await;
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
        b.post_form("/login", &[("user", &user)]).await;
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

/// `SameSite=Lax` as Chromium applies it: a form on another site (`localhost` is another site
/// than `127.0.0.1`) posting to `/logout` right after login is sent without the session's
/// cookies, so it ends nothing. (A cookie without the attribute would have gone along: for
/// two minutes after it is set Chromium lets such cookies through on top-level cross-site
/// POSTs. WebDriver reports a missing `SameSite` as `Lax`, so only this behaviour tells.)
#[tokio::test(flavor = "multi_thread")]
async fn a_form_on_another_site_cannot_log_the_user_out() {
    let app = login_app(KEY_1).await;
    let b = Browser::open("a_form_on_another_site_cannot_log_the_user_out").await;
    let user = unique("fay");
    let hello = format!("Hello, {user}");
    b.goto(&format!("{}/", app.url)).await;
    b.log_in(&user).await;
    b.wait_text(&hello).await;
    let id = b.cookie("koa.sess").await.unwrap().value().to_owned();
    for round in 0..3 {
        b.goto(&format!("{}/", app.localhost())).await;
        b.wait_text("Sign in").await;
        b.post_form(&format!("{}/logout", app.url), &[]).await;
        // The 303 after the post is a top-level GET: the cookies go along, and the page is
        // the user's.
        b.wait_text(&hello).await;
        if round == 0 {
            b.shot("after-cross-site-post").await;
        }
        assert!(!record(&id).await.is_empty(), "the post ended the session");
    }
    // The same form from the site itself does log out.
    b.post_form("/logout", &[]).await;
    b.wait_text("Sign in").await;
    assert!(record(&id).await.is_empty());
}
