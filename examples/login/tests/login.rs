//! The login example over real TCP, the built binary started for each test: sign-in with a
//! password, pages behind "login required", sign-up, the account page, password changes, the
//! session limit (refused, or the oldest ended and told why), the headers of every page, the
//! CSRF check of every form post and the flash message each action leaves for the next page.
//!
//! Every post is sent as a browser sends its form: the page with the form is fetched first and
//! its CSRF token sent in `_csrf` ([`post`]); [`post_without_token`] sends none.
//!
//! Why this file is long: it is the example's whole behaviour as a client sees it, one test
//! per flow, and the flows share the clients and helpers at the top.
#![allow(clippy::unwrap_used, missing_docs)]

use reqwest::header::{ACCEPT, SET_COOKIE};
use session_testkit::process::Running;

async fn start(args: &[&str]) -> Running {
    session_testkit::process::start(env!("CARGO_BIN_EXE_login"), args)
        .await
        .unwrap()
}

/// A browser: its own cookies, asks for HTML, does not follow redirects (to see them).
fn browser(ua: &str) -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(ACCEPT, "text/html,*/*;q=0.8".parse().unwrap());
    reqwest::Client::builder()
        .cookie_store(true)
        .user_agent(ua)
        .default_headers(headers)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

const FIREFOX: &str = "Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0";

/// The page a person posts the form of `action` from (a path of the app).
fn form_page(action: &str) -> &'static str {
    match action {
        "/login" => "/",
        "/signup" => "/signup",
        "/account/password" => "/account/password",
        // Revoke, log out everywhere else, log out: all on the account page.
        _ => "/account",
    }
}

/// The CSRF token of the first form on `page` (every form of a page carries one).
fn token_in(page: &str) -> String {
    let Some(rest) = page.split(r#"name="_csrf" value=""#).nth(1) else {
        panic!("no CSRF token on the page:\n{page}");
    };
    rest.split('"').next().unwrap().to_owned()
}

/// A token as the form posting to `url` carries it: from the page the form is on.
async fn token_for(c: &reqwest::Client, url: &str) -> String {
    let (base, action) = split_url(url);
    let (status, page) = get(c, &format!("{base}{}", form_page(action))).await;
    assert_eq!(status, 200, "the form's page: {page}");
    token_in(&page)
}

/// `http://127.0.0.1:PORT/path` as (`http://127.0.0.1:PORT`, `/path`).
fn split_url(url: &str) -> (&str, &str) {
    let at = url.match_indices('/').nth(2).map_or(url.len(), |(i, _)| i);
    (&url[..at], &url[at..])
}

/// Posts `fields` to `url` as a browser sends the form: the page with the form fetched first,
/// its token in `_csrf`.
async fn post(c: &reqwest::Client, url: &str, fields: &[(&str, &str)]) -> reqwest::Response {
    let token = token_for(c, url).await;
    post_with_token(c, url, &token, fields).await
}

async fn post_with_token(
    c: &reqwest::Client,
    url: &str,
    token: &str,
    fields: &[(&str, &str)],
) -> reqwest::Response {
    let mut all = vec![("_csrf", token)];
    all.extend_from_slice(fields);
    c.post(url).form(&all).send().await.unwrap()
}

/// Posts `fields` to `url` with no token (a form another site made).
async fn post_without_token(
    c: &reqwest::Client,
    url: &str,
    fields: &[(&str, &str)],
) -> reqwest::Response {
    c.post(url).form(fields).send().await.unwrap()
}

async fn sign_in(c: &reqwest::Client, url: &str, user: &str, pw: &str) -> reqwest::Response {
    post(
        c,
        &format!("{url}/login"),
        &[("username", user), ("password", pw)],
    )
    .await
}

/// `GET url`: the status and the page.
async fn get(c: &reqwest::Client, url: &str) -> (u16, String) {
    let r = c.get(url).send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

fn set_cookies(r: &reqwest::Response) -> Vec<String> {
    let all = r.headers().get_all(SET_COOKIE).iter();
    all.map(|v| v.to_str().unwrap().to_owned()).collect()
}

/// The session's cookies a response sets (the id and its signature; not the CSRF nonce of an
/// anonymous visitor's forms, which is no session).
fn session_cookies(r: &reqwest::Response) -> Vec<String> {
    let mut all = set_cookies(r);
    all.retain(|c| c.starts_with("koa.sess=") || c.starts_with("koa.sess.sig="));
    all
}

/// Whether the browser is told not to keep the answer (`Cache-Control` has `no-store`).
fn no_store(r: &reqwest::Response) -> bool {
    let cc = r
        .headers()
        .get("cache-control")
        .and_then(|v| v.to_str().ok());
    cc.is_some_and(|v| v.split(',').any(|d| d.trim() == "no-store"))
}

/// Whether the browser is signed in as `user` (its `/` says hello).
async fn signed_in_as(c: &reqwest::Client, url: &str, user: &str) -> bool {
    let (status, page) = get(c, &format!("{url}/")).await;
    assert_eq!(status, 200);
    assert!(
        page.contains(&format!("Hello, {user}")) || page.contains("<h1>Sign in</h1>"),
        "{page}"
    );
    page.contains(&format!("Hello, {user}"))
}

/// The API answers: 401 until signed in (a page load is sent to the sign-in page instead),
/// a 303 to the page asked for once the password is right, 401 again after logout.
#[tokio::test]
async fn login_private_logout() {
    let app = start(&[]).await;
    let url = &app.url;
    let api = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let private = || {
        api.get(format!("{url}/private"))
            .header(ACCEPT, "application/json")
            .send()
    };
    assert_eq!(private().await.unwrap().status(), 401);
    let r = api
        .get(format!("{url}/private?tab=1"))
        .header(ACCEPT, "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/?next=%2Fprivate%3Ftab%3D1");
    assert!(
        session_cookies(&r).is_empty(),
        "an anonymous visit makes no session"
    );

    let r = post(
        &api,
        &format!("{url}/login"),
        &[
            ("username", "ada"),
            ("password", "ada-password"),
            ("next", "/private"),
        ],
    )
    .await;
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/private");
    let r = private().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("secret page for ada"));
    // `next` is never an open redirect.
    for evil in ["//evil.example", "https://evil.example", "/\\evil.example"] {
        let fields = [
            ("username", "ada"),
            ("password", "ada-password"),
            ("next", evil),
        ];
        let r = post(&api, &format!("{url}/login"), &fields).await;
        assert_eq!(r.headers()["location"], "/", "{evil}");
    }
    assert_eq!(
        post(&api, &format!("{url}/logout"), &[]).await.status(),
        303
    );
    assert_eq!(private().await.unwrap().status(), 401);
}

#[tokio::test]
async fn a_wrong_password_is_refused() {
    let app = start(&[]).await;
    let url = &app.url;
    let c = browser(FIREFOX);
    for (user, pw) in [
        ("ada", "grace-password"),
        ("ada", ""),
        ("nobody", "ada-password"),
        ("", ""),
    ] {
        let r = sign_in(&c, url, user, pw).await;
        assert_eq!(r.status(), 401, "{user}/{pw}");
        assert!(
            session_cookies(&r).is_empty(),
            "a refused login writes nothing"
        );
        let page = r.text().await.unwrap();
        assert!(
            page.contains(r#"id="error">Wrong name or password."#),
            "{page}"
        );
        assert!(page.contains(&format!(r#"name="username" value="{user}""#)));
    }
    assert!(!signed_in_as(&c, url, "ada").await);
    assert_eq!(sign_in(&c, url, "ada", "ada-password").await.status(), 303);
    assert!(signed_in_as(&c, url, "ada").await);
}

#[tokio::test]
async fn sign_up_then_log_in() {
    let app = start(&[]).await;
    let url = &app.url;
    let c = browser(FIREFOX);
    let sign_up = |user: &'static str, pw: &'static str| {
        let (c, url) = (c.clone(), url.clone());
        async move {
            let fields = [("username", user), ("password", pw)];
            let r = post(&c, &format!("{url}/signup"), &fields).await;
            (r.status().as_u16(), r.text().await.unwrap())
        }
    };
    let (status, form) = get(&c, &format!("{url}/signup")).await;
    assert_eq!(status, 200);
    assert!(
        form.contains(r#"<form method="post" action="/signup""#),
        "{form}"
    );
    // Refused: a taken name, a short password, a name that is not one; the form says why
    // (with what was typed, escaped).
    let (status, page) = sign_up("ada", "long enough").await;
    assert_eq!(status, 409);
    assert!(page.contains("That name is taken"), "{page}");
    let (status, page) = sign_up("zoe", "short").await;
    assert_eq!(status, 400);
    assert!(page.contains("at least 8 characters"), "{page}");
    for bad in ["", "zoe <b>", "zo/e"] {
        let fields = [("username", bad), ("password", "long enough")];
        let r = post(&c, &format!("{url}/signup"), &fields).await;
        assert_eq!(r.status(), 400, "{bad:?}");
        let page = r.text().await.unwrap();
        assert!(!page.contains("<b>"), "client text is escaped");
    }
    assert!(!signed_in_as(&c, url, "zoe").await);

    // Signed up: the sign-in form, the name filled in, and no session yet.
    let r = post(
        &c,
        &format!("{url}/signup"),
        &[("username", "zoe"), ("password", "zoe-password")],
    )
    .await;
    assert_eq!(r.status(), 201);
    assert!(
        session_cookies(&r).is_empty(),
        "signing up is not signing in"
    );
    let page = r.text().await.unwrap();
    assert!(page.contains(r#"id="created""#), "{page}");
    assert!(page.contains(r#"name="username" value="zoe""#), "{page}");
    assert_eq!(sign_up("zoe", "another password").await.0, 409);
    assert!(!signed_in_as(&c, url, "zoe").await);
    assert_eq!(sign_in(&c, url, "zoe", "zoe-password").await.status(), 303);
    assert!(signed_in_as(&c, url, "zoe").await);
    post(&c, &format!("{url}/logout"), &[]).await;
    assert!(!signed_in_as(&c, url, "zoe").await);

    // And from another browser, with the password.
    let other = browser(FIREFOX);
    assert_eq!(
        sign_in(&other, url, "zoe", "ada-password").await.status(),
        401
    );
    assert_eq!(
        sign_in(&other, url, "zoe", "zoe-password").await.status(),
        303
    );
    assert!(signed_in_as(&other, url, "zoe").await);
}

/// The account page: the user's sessions with this browser marked, a revoke button for the
/// others, "log out everywhere else"; a handle of another user's session is unknown here.
#[tokio::test]
async fn account_page_lists_and_revokes_the_users_sessions() {
    let app = start(&[]).await;
    let url = &app.url;
    let login = |ua: &'static str, user: &'static str, pw: &'static str| {
        let url = url.clone();
        async move {
            let c = browser(ua);
            assert_eq!(sign_in(&c, &url, user, pw).await.status(), 303);
            c
        }
    };
    let page = |c: reqwest::Client| {
        let url = url.clone();
        async move { c.get(format!("{url}/account")).send().await.unwrap() }
    };
    let laptop = login(FIREFOX, "ada", "ada-password").await;
    let phone = login(
        "Mozilla/5.0 (Linux; Android 14) Chrome/130.0",
        "ada",
        "ada-password",
    )
    .await;
    let tablet = login("<script>alert(1)</script>", "ada", "ada-password").await;
    let grace = login("curl/8.0", "grace", "grace-password").await;

    let r = page(laptop.clone()).await;
    assert_eq!(r.status(), 200);
    let body = r.text().await.unwrap();
    assert!(body.contains("Firefox on Linux") && body.contains("Chrome on Android"));
    assert!(!body.contains("<script>"), "client text is escaped");
    assert_eq!(body.matches("this browser").count(), 1);
    assert_eq!(body.matches(r#"data-label="Device""#).count(), 3);
    let handles: Vec<String> = body
        .split(r#"name="handle" value=""#)
        .skip(1)
        .map(|s| s.split('"').next().unwrap().to_owned())
        .collect();
    assert_eq!(handles.len(), 2, "a revoke button for each other session");

    // Grace sees only her own session and can't revoke Ada's.
    let grace_page = page(grace.clone()).await.text().await.unwrap();
    assert!(
        !grace_page.contains(r#"name="handle""#),
        "grace has one session: her own"
    );
    for h in &handles {
        let r = post(&grace, &format!("{url}/account/revoke"), &[("handle", h)]).await;
        assert_eq!(r.status(), 404);
    }
    assert_eq!(page(phone.clone()).await.status(), 200);

    // Revoke the phone from the laptop.
    let phone_handle = {
        let phone_page = page(phone.clone()).await.text().await.unwrap();
        let mine = phone_page
            .split("<tr>")
            .find(|row| row.contains("this browser"))
            .unwrap();
        assert!(mine.contains("Chrome on Android"));
        handles
            .iter()
            .find(|h| !phone_page.contains(&format!(r#"value="{h}""#)))
            .unwrap()
            .clone()
    };
    let r = post(
        &laptop,
        &format!("{url}/account/revoke"),
        &[("handle", &phone_handle)],
    )
    .await;
    assert_eq!(r.status(), 303);
    let body = page(laptop.clone()).await.text().await.unwrap();
    assert!(
        body.contains(
            r#"<li class="flash-success">The session was revoked: that browser is signed out.</li>"#
        ),
        "{body}"
    );
    // The phone is signed out: its page load is sent to the sign-in page.
    let r = page(phone.clone()).await;
    assert_eq!(r.status(), 303, "the phone is logged out");
    assert_eq!(r.headers()["location"], "/?next=%2Faccount");
    assert_eq!(page(tablet.clone()).await.status(), 200);

    // Log out everywhere else: the tablet goes, the laptop and grace stay.
    let r = post(&laptop, &format!("{url}/account/logout-others"), &[]).await;
    assert_eq!(r.status(), 303);
    assert_eq!(page(tablet).await.status(), 303);
    let body = page(laptop.clone()).await.text().await.unwrap();
    assert!(
        body.contains(r#"<li class="flash-success">1 other session was signed out.</li>"#),
        "{body}"
    );
    assert_eq!(
        body.matches(r#"data-label="Device""#).count(),
        1,
        "only this browser is left"
    );
    assert_eq!(page(grace).await.status(), 200);
}

/// As a person in a browser uses it: the sign-in form, a form post that lands on the session
/// page, views counted, logout back to the form, a private page asked for while signed out;
/// every page `no-store`, made for phones, with the app's own stylesheet.
#[tokio::test]
async fn the_pages_a_browser_sees() {
    let app = start(&[]).await;
    let url = &app.url;
    let c = browser(FIREFOX);
    let page =
        |r: reqwest::Response| async move {
            assert_eq!(r.status(), 200);
            assert!(no_store(&r), "{:?}", r.headers());
            let text = r.text().await.unwrap();
            assert!(text.contains(
                r#"<meta name="viewport" content="width=device-width, initial-scale=1">"#
            ));
            text
        };
    let follow = |r: reqwest::Response| {
        let (c, url) = (c.clone(), url.clone());
        async move {
            assert_eq!(r.status(), 303);
            let to = r.headers()["location"].to_str().unwrap().to_owned();
            c.get(format!("{url}{to}")).send().await.unwrap()
        }
    };
    let form = page(c.get(format!("{url}/")).send().await.unwrap()).await;
    assert!(
        form.contains(r#"<form method="post" action="/login""#),
        "{form}"
    );
    assert!(form.contains("ada-password"), "the demo accounts are shown");
    let css = form
        .split(r#"<link rel="stylesheet" href=""#)
        .nth(1)
        .and_then(|s| s.split('"').next())
        .unwrap()
        .to_owned();
    let r = c.get(format!("{url}{css}")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "text/css; charset=utf-8");
    assert!(
        r.headers()["cache-control"]
            .to_str()
            .unwrap()
            .contains("max-age=31536000")
    );
    assert!(r.text().await.unwrap().contains("@media (max-width"));

    let r = sign_in(&c, url, "ada", "ada-password").await;
    let home = page(follow(r).await).await;
    assert!(home.contains("Hello, ada"), "{home}");
    assert!(
        home.contains(r#"<ul class="flash"><li class="flash-success">Signed in as ada.</li></ul>"#),
        "{home}"
    );
    assert!(home.contains(r#"<td id="views">1</td>"#), "{home}");
    assert!(!home.contains(r#"<td id="expires">?</td>"#), "{home}");
    let again = page(c.get(format!("{url}/")).send().await.unwrap()).await;
    assert!(again.contains(r#"<td id="views">2</td>"#), "{again}");
    assert!(!again.contains(r#"class="flash""#), "shown once: {again}");
    for path in ["/account", "/account/password", "/private"] {
        page(c.get(format!("{url}{path}")).send().await.unwrap()).await;
    }
    let r = post(&c, &format!("{url}/logout"), &[]).await;
    let after = page(follow(r).await).await;
    assert!(after.contains(r#"action="/login""#), "{after}");
    assert!(
        after.contains(r#"<li class="flash-info">You are signed out.</li>"#),
        "{after}"
    );

    // A private page asked for while signed out: the sign-in form, then back to that page.
    let r = c.get(format!("{url}/private")).send().await.unwrap();
    let form = page(follow(r).await).await;
    assert!(
        form.contains(r#"<input type="hidden" name="next" value="/private">"#),
        "{form}"
    );
    let r = post(
        &c,
        &format!("{url}/login"),
        &[
            ("username", "grace"),
            ("password", "grace-password"),
            ("next", "/private"),
        ],
    )
    .await;
    let back = page(follow(r).await).await;
    assert!(back.contains("secret page for grace"), "{back}");
    // A page that is not there is a page too.
    let r = c.get(format!("{url}/nowhere")).send().await.unwrap();
    assert_eq!(r.status(), 404);
    assert!(no_store(&r), "{:?}", r.headers());
}

/// A password change: the current password is checked, and every other session of the user
/// ends at once (the page says how many); the browser that made it stays signed in, and only
/// the new password signs in.
#[tokio::test]
async fn a_password_change_ends_the_other_sessions() {
    let app = start(&[]).await;
    let url = &app.url;
    let (me, others) = (browser(FIREFOX), [browser(FIREFOX), browser(FIREFOX)]);
    for c in std::iter::once(&me).chain(&others) {
        assert_eq!(sign_in(c, url, "alan", "alan-password").await.status(), 303);
    }
    let grace = browser(FIREFOX);
    sign_in(&grace, url, "grace", "grace-password").await;
    let change = |current: &'static str, new: &'static str| {
        let (me, url) = (me.clone(), url.clone());
        async move {
            let fields = [("current", current), ("new", new)];
            let r = post(&me, &format!("{url}/account/password"), &fields).await;
            (r.status().as_u16(), r.text().await.unwrap())
        }
    };
    let (status, page) = change("wrong-password", "new-password").await;
    assert_eq!(status, 403);
    assert!(page.contains("Your current password is not that"), "{page}");
    let (status, page) = change("alan-password", "short").await;
    assert_eq!(status, 400, "{page}");
    for c in &others {
        assert!(
            signed_in_as(c, url, "alan").await,
            "a refused change ends nothing"
        );
    }

    let (status, _) = change("alan-password", "new-password").await;
    assert_eq!(status, 303, "post/redirect/get");
    let (_, page) = get(&me, &format!("{url}/account")).await;
    assert!(
        page.contains(r#"<li class="flash-success">Your password was changed. 2 other sessions were signed out.</li>"#),
        "{page}"
    );
    assert!(signed_in_as(&me, url, "alan").await);
    for c in &others {
        assert!(!signed_in_as(c, url, "alan").await);
    }
    assert!(
        signed_in_as(&grace, url, "grace").await,
        "another user's sessions stay"
    );
    let (_, account) = get(&me, &format!("{url}/account")).await;
    assert_eq!(account.matches(r#"data-label="Device""#).count(), 1);
    assert!(
        !account.contains(r#"class="flash""#),
        "shown once: {account}"
    );
    assert_eq!(
        sign_in(&others[0], url, "alan", "alan-password")
            .await
            .status(),
        401
    );
    assert_eq!(
        sign_in(&others[0], url, "alan", "new-password")
            .await
            .status(),
        303
    );
}

/// The limit, 3 sessions by default: a fourth login is refused with a 409 page saying what to
/// do, and the browser stays signed out; the three go on.
#[tokio::test]
async fn a_fourth_login_is_refused() {
    let app = start(&[]).await;
    let url = &app.url;
    let browsers: Vec<_> = (0..4).map(|_| browser(FIREFOX)).collect();
    for b in &browsers[..3] {
        assert_eq!(sign_in(b, url, "ada", "ada-password").await.status(), 303);
    }
    let r = sign_in(&browsers[3], url, "ada", "ada-password").await;
    assert_eq!(r.status(), 409);
    assert!(
        session_cookies(&r).is_empty(),
        "a refused login writes nothing"
    );
    let page = r.text().await.unwrap();
    assert!(page.contains(r#"id="too-many""#), "{page}");
    assert!(page.contains("already signed in on 3 browsers"), "{page}");
    assert!(page.contains("Revoke"), "it says how to make room: {page}");
    assert!(!signed_in_as(&browsers[3], url, "ada").await);
    for b in &browsers[..3] {
        assert!(signed_in_as(b, url, "ada").await);
    }
    // Signing in again where already signed in is no new session: admitted.
    assert_eq!(
        sign_in(&browsers[0], url, "ada", "ada-password")
            .await
            .status(),
        303
    );
    // Room made from one of them: the fourth gets in.
    post(&browsers[2], &format!("{url}/logout"), &[]).await;
    assert_eq!(
        sign_in(&browsers[3], url, "ada", "ada-password")
            .await
            .status(),
        303
    );
    assert!(signed_in_as(&browsers[3], url, "ada").await);
}

/// `--over-limit end-oldest`: the fourth login goes in and ends the session signed in
/// earliest, whose browser is told why on its next page, once (on the sign-in page, and on a
/// page that needs a login).
#[tokio::test]
async fn over_the_limit_the_oldest_session_ends_and_is_told_why() {
    let app = start(&["--over-limit", "end-oldest"]).await;
    let url = &app.url;
    let browsers: Vec<_> = (0..5).map(|_| browser(FIREFOX)).collect();
    for b in &browsers[..4] {
        assert_eq!(sign_in(b, url, "ada", "ada-password").await.status(), 303);
    }
    const TOLD: &str = "You were signed out because you signed in elsewhere";
    let (status, page) = get(&browsers[0], &format!("{url}/")).await;
    assert_eq!(status, 200);
    assert!(
        page.contains(r#"id="ended""#) && page.contains(TOLD),
        "{page}"
    );
    let (_, page) = get(&browsers[0], &format!("{url}/")).await;
    assert!(
        page.contains("<h1>Sign in</h1>") && !page.contains(TOLD),
        "once: {page}"
    );
    // A fifth login ends the second; its next page needs a login, and says why.
    assert_eq!(
        sign_in(&browsers[4], url, "ada", "ada-password")
            .await
            .status(),
        303
    );
    // Sent to the sign-in page with the page asked for and why (`login_required!`).
    let r = browsers[1]
        .get(format!("{url}/account"))
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let to = r.headers()["location"].to_str().unwrap().to_owned();
    assert_eq!(to, "/?next=%2Faccount&ended=newer-login");
    let (status, page) = get(&browsers[1], &format!("{url}{to}")).await;
    assert_eq!(status, 200);
    assert!(page.contains(TOLD), "{page}");
    assert!(
        page.contains(r#"<input type="hidden" name="next" value="/account">"#),
        "{page}"
    );
    for b in &browsers[2..] {
        assert!(signed_in_as(b, url, "ada").await);
    }
    let (_, account) = get(&browsers[2], &format!("{url}/account")).await;
    assert_eq!(account.matches(r#"data-label="Device""#).count(), 3);

    // `--max-sessions 1`: each login ends the one before.
    let app = start(&["--max-sessions", "1", "--over-limit", "end-oldest"]).await;
    let (a, b) = (browser(FIREFOX), browser(FIREFOX));
    sign_in(&a, &app.url, "grace", "grace-password").await;
    sign_in(&b, &app.url, "grace", "grace-password").await;
    assert!(get(&a, &format!("{}/", app.url)).await.1.contains(TOLD));
    assert!(signed_in_as(&b, &app.url, "grace").await);
}

#[tokio::test]
async fn bad_flags_are_refused() {
    let bin = env!("CARGO_BIN_EXE_login");
    for args in [
        &["--over-limit", "sometimes"][..],
        &["--max-sessions", "0"],
        &["--max-sessions", "many"],
        &["--store", "postgres://x"],
    ] {
        assert!(
            session_testkit::process::start(bin, args).await.is_none(),
            "{args:?} started"
        );
    }
}

/// A browser signing in as one demo account after another, while 10 visits of pages that only
/// read the session race each login on the cookie it had: no visit sends a cookie of the old
/// id (none could put it back after the login's), and every login holds. 20 rounds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn visits_racing_a_login_never_put_the_old_cookie_back() {
    let app = start(&[]).await;
    let url = app.url.clone();
    let c = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    // The cookies a response set, as a `Cookie` header (removals left out).
    let jar = |set: &[String]| -> String {
        let pairs = set.iter().map(|c| c.split(';').next().unwrap().to_owned());
        let kept = pairs.filter(|p| !p.ends_with('='));
        kept.collect::<Vec<_>>().join("; ")
    };
    let users = [
        ("ada", "ada-password"),
        ("grace", "grace-password"),
        ("alan", "alan-password"),
    ];
    // The sign-in form's token, fetched before the race: from the account page with `cookie`
    // (signed in), or from the sign-in page (its nonce cookie added to the header).
    let token = |cookie: String| {
        let (c, url) = (c.clone(), url.clone());
        async move {
            let path = if cookie.is_empty() { "/" } else { "/account" };
            let r = c
                .get(format!("{url}{path}"))
                .header(ACCEPT, "text/html")
                .header("cookie", &cookie)
                .send()
                .await
                .unwrap();
            let nonce = jar(&set_cookies(&r));
            let page = r.text().await.unwrap();
            let cookie = [cookie, nonce].join("; ");
            (
                token_in(&page),
                cookie.trim_matches(&[';', ' '][..]).to_owned(),
            )
        }
    };
    let login = |cookie: String, token: String, (user, pw): (&'static str, &'static str)| {
        let (c, url) = (c.clone(), url.clone());
        async move {
            let fields = [
                ("_csrf", token.as_str()),
                ("username", user),
                ("password", pw),
            ];
            let r = c
                .post(format!("{url}/login"))
                .form(&fields)
                .header("cookie", cookie)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 303, "{user}");
            set_cookies(&r)
        }
    };
    let (t, cookie) = token(String::new()).await;
    let mut cookies = login(cookie, t, users[0]).await;
    for round in 1..=20 {
        let old = jar(&cookies);
        let (user, _) = users[round % 3];
        let (t, _) = token(old.clone()).await;
        let signing_in = tokio::spawn(login(old.clone(), t, users[round % 3]));
        let visits: Vec<_> = (0..10)
            .map(|i| {
                let (c, url, old) = (c.clone(), url.clone(), old.clone());
                // Pages that only read the session (a write would send its cookie again).
                let path = if i % 2 == 0 { "/private" } else { "/account" };
                tokio::spawn(async move {
                    let r = c
                        .get(format!("{url}{path}"))
                        .header(ACCEPT, "text/html")
                        .header("cookie", old)
                        .send()
                        .await
                        .unwrap();
                    set_cookies(&r)
                })
            })
            .collect();
        cookies = signing_in.await.unwrap();
        assert!(
            cookies.iter().any(|c| c.contains("Max-Age=86400")),
            "{cookies:?}"
        );
        for v in visits {
            for set in v.await.unwrap() {
                let value = set.split(';').next().unwrap();
                assert!(
                    !old.split("; ").any(|o| o == value),
                    "round {round}: a visit put the old cookie back: {set}"
                );
            }
        }
        let page = c
            .get(format!("{url}/"))
            .header(ACCEPT, "text/html")
            .header("cookie", jar(&cookies))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(
            page.contains(&format!("Hello, {user}")),
            "round {round}: {page}"
        );
    }
}

/// The CSRF check: every form post without a token is refused with 403 (a page saying what
/// to do), before its handler runs: no login, no sign-up, no logout, no revoke, no password
/// change. A token of another session's, or garbage, is refused too; `Sec-Fetch-Site:
/// same-site` (another port of this host) needs the token like a client that sends none.
#[tokio::test]
async fn a_post_without_a_token_is_refused() {
    let app = start(&[]).await;
    let url = &app.url;
    let c = browser(FIREFOX);
    let refused = |r: reqwest::Response| async move {
        assert_eq!(r.status(), 403);
        assert!(no_store(&r), "{:?}", r.headers());
        assert!(
            session_cookies(&r).is_empty(),
            "a refused post writes nothing"
        );
        let page = r.text().await.unwrap();
        assert!(page.contains("<h1>Form refused</h1>"), "{page}");
    };
    let creds = [("username", "ada"), ("password", "ada-password")];
    refused(post_without_token(&c, &format!("{url}/login"), &creds).await).await;
    let fields = [("username", "zoe"), ("password", "zoe-password")];
    refused(post_without_token(&c, &format!("{url}/signup"), &fields).await).await;
    assert!(!signed_in_as(&c, url, "ada").await);
    // The account was not made: signing up now works.
    assert_eq!(
        post(&c, &format!("{url}/signup"), &fields).await.status(),
        201
    );

    let other = browser(FIREFOX);
    assert_eq!(
        sign_in(&other, url, "grace", "grace-password")
            .await
            .status(),
        303
    );
    let theirs = token_for(&other, &format!("{url}/logout")).await;
    assert_eq!(sign_in(&c, url, "ada", "ada-password").await.status(), 303);
    let phone = browser("Mozilla/5.0 (Linux; Android 14) Chrome/130.0");
    assert_eq!(
        sign_in(&phone, url, "ada", "ada-password").await.status(),
        303
    );
    let (_, account) = get(&c, &format!("{url}/account")).await;
    let handle = account
        .split(r#"name="handle" value=""#)
        .nth(1)
        .and_then(|s| s.split('"').next())
        .unwrap()
        .to_owned();
    let posts: [(&str, Vec<(&str, &str)>); 4] = [
        ("/logout", vec![]),
        ("/account/logout-others", vec![]),
        ("/account/revoke", vec![("handle", &handle)]),
        (
            "/account/password",
            vec![("current", "ada-password"), ("new", "ada-new-password")],
        ),
    ];
    for (path, fields) in &posts {
        let to = format!("{url}{path}");
        refused(post_without_token(&c, &to, fields).await).await;
        for token in [theirs.as_str(), "garbage", ""] {
            refused(post_with_token(&c, &to, token, fields).await).await;
        }
        let r = c
            .post(&to)
            .header("sec-fetch-site", "same-site")
            .form(fields)
            .send()
            .await
            .unwrap();
        refused(r).await;
    }
    assert!(
        signed_in_as(&c, url, "ada").await,
        "a refused logout ended the session"
    );
    assert!(
        signed_in_as(&phone, url, "ada").await,
        "a refused revoke ended the session"
    );
    let (_, account) = get(&c, &format!("{url}/account")).await;
    assert_eq!(account.matches(r#"data-label="Device""#).count(), 2);
    // The password did not change.
    let again = browser(FIREFOX);
    assert_eq!(
        sign_in(&again, url, "ada", "ada-password").await.status(),
        303
    );
    // With its token, `same-site` passes.
    let token = token_for(&c, &format!("{url}/logout")).await;
    let r = c
        .post(format!("{url}/logout"))
        .header("sec-fetch-site", "same-site")
        .form(&[("_csrf", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert!(!signed_in_as(&c, url, "ada").await);
}

/// `Sec-Fetch-Site: cross-site` (a page of another site sent it) is refused even with a valid
/// token; `same-origin` (a page of this app) passes without one.
#[tokio::test]
async fn a_cross_site_post_is_refused_even_with_a_valid_token() {
    let app = start(&[]).await;
    let url = &app.url;
    let c = browser(FIREFOX);
    let login = format!("{url}/login");
    let token = token_for(&c, &login).await;
    let creds = [
        ("_csrf", token.as_str()),
        ("username", "ada"),
        ("password", "ada-password"),
    ];
    let cross = |to: String, fields: Vec<(&'static str, String)>| {
        let c = c.clone();
        async move {
            c.post(to)
                .header("sec-fetch-site", "cross-site")
                .form(&fields)
                .send()
                .await
                .unwrap()
        }
    };
    let owned = |f: &[(&'static str, &str)]| -> Vec<(&'static str, String)> {
        f.iter().map(|(k, v)| (*k, (*v).to_owned())).collect()
    };
    assert_eq!(cross(login.clone(), owned(&creds)).await.status(), 403);
    assert!(!signed_in_as(&c, url, "ada").await);
    assert_eq!(
        post_with_token(&c, &login, &token, &creds[1..])
            .await
            .status(),
        303,
        "the same token, same-site"
    );

    let logout = format!("{url}/logout");
    let token = token_for(&c, &logout).await;
    let r = cross(logout.clone(), owned(&[("_csrf", &token)])).await;
    assert_eq!(r.status(), 403);
    assert!(
        signed_in_as(&c, url, "ada").await,
        "a cross-site post logged out"
    );
    let r = c
        .post(&logout)
        .header("sec-fetch-site", "same-origin")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303, "a page of this app needs no token");
    assert!(!signed_in_as(&c, url, "ada").await);
}

/// Post/redirect/get: the login's message is on the page the redirect leads to, once. A
/// prefetch of that page and a script's `fetch()` before it see none or leave it; the page
/// load after shows none.
#[tokio::test]
async fn the_login_message_shows_once_after_the_redirect() {
    let app = start(&[]).await;
    let url = &app.url;
    let c = browser(FIREFOX);
    let fields = [
        ("username", "grace"),
        ("password", "grace-password"),
        ("next", "/private"),
    ];
    let r = post(&c, &format!("{url}/login"), &fields).await;
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/private");
    const SHOWN: &str =
        r#"<ul class="flash"><li class="flash-success">Signed in as grace.</li></ul>"#;
    let load = |headers: &'static [(&'static str, &'static str)]| {
        let (c, url) = (c.clone(), url.clone());
        async move {
            let mut rb = c.get(format!("{url}/private"));
            for (k, v) in headers {
                rb = rb.header(*k, *v);
            }
            let r = rb.send().await.unwrap();
            assert_eq!(r.status(), 200);
            r.text().await.unwrap()
        }
    };
    let prefetch = load(&[("sec-purpose", "prefetch"), ("sec-fetch-dest", "document")]).await;
    assert!(prefetch.contains("secret page for grace"), "{prefetch}");
    assert!(
        !prefetch.contains(r#"class="flash""#),
        "a prefetch shows none: {prefetch}"
    );
    let script = load(&[("sec-fetch-mode", "cors"), ("sec-fetch-dest", "empty")]).await;
    assert!(script.contains(SHOWN), "a fetch() sees it: {script}");
    let page = load(&[
        ("sec-fetch-mode", "navigate"),
        ("sec-fetch-dest", "document"),
    ])
    .await;
    assert_eq!(page.matches("Signed in as grace.").count(), 1, "{page}");
    assert!(page.contains(SHOWN), "{page}");
    for _ in 0..2 {
        let again = load(&[]).await;
        assert!(!again.contains(r#"class="flash""#), "shown twice: {again}");
    }
}

/// A token taken before the login (bound to the anonymous visitor's nonce) is refused after
/// it: the login's new session id makes every older token fail. The account page's token,
/// taken after, works.
#[tokio::test]
async fn a_token_from_before_login_is_refused_after_it() {
    let app = start(&[]).await;
    let url = &app.url;
    let c = browser(FIREFOX);
    let before = token_for(&c, &format!("{url}/login")).await;
    let creds = [("username", "alan"), ("password", "alan-password")];
    let r = post_with_token(&c, &format!("{url}/login"), &before, &creds).await;
    assert_eq!(r.status(), 303);
    let logout = format!("{url}/logout");
    let r = post_with_token(&c, &logout, &before, &[]).await;
    assert_eq!(r.status(), 403);
    assert!(signed_in_as(&c, url, "alan").await);
    // Nor does it sign in again (as another user, say).
    let creds = [("username", "ada"), ("password", "ada-password")];
    let r = post_with_token(&c, &format!("{url}/login"), &before, &creds).await;
    assert_eq!(r.status(), 403);
    assert!(signed_in_as(&c, url, "alan").await);

    let after = token_for(&c, &logout).await;
    assert_ne!(after, before);
    assert_eq!(
        post_with_token(&c, &logout, &after, &[]).await.status(),
        303
    );
    // And the token from the signed-in session is refused once it has ended.
    assert_eq!(
        post_with_token(&c, &logout, &after, &[]).await.status(),
        403
    );
}
