//! The login example: regenerate on login, protected page, destroy on logout.
#![allow(clippy::unwrap_used, missing_docs)]

#[tokio::test]
async fn login_private_logout() {
    let app = session_testkit::process::start(env!("CARGO_BIN_EXE_login"), &[])
        .await
        .unwrap();
    let url = &app.url;
    let c = reqwest::Client::builder()
        .cookie_store(true)
        .build()
        .unwrap();
    let status = |r: reqwest::Response| r.status().as_u16();
    assert_eq!(
        status(c.get(format!("{url}/private")).send().await.unwrap()),
        401
    );
    let r = c
        .post(format!("{url}/login"))
        .body("user=ada")
        .send()
        .await
        .unwrap();
    assert_eq!(r.text().await.unwrap(), "welcome, ada");
    let r = c.get(format!("{url}/private")).send().await.unwrap();
    assert_eq!(r.text().await.unwrap(), "secret page for ada");
    assert_eq!(
        status(c.post(format!("{url}/logout")).send().await.unwrap()),
        200
    );
    assert_eq!(
        status(c.get(format!("{url}/private")).send().await.unwrap()),
        401
    );
}

/// The account page: the user's sessions with this browser marked, a revoke button for the
/// others, "log out everywhere else"; a handle of another user's session is unknown here.
#[tokio::test]
async fn account_page_lists_and_revokes_the_users_sessions() {
    let app = session_testkit::process::start(env!("CARGO_BIN_EXE_login"), &[])
        .await
        .unwrap();
    let url = &app.url;
    let browser = |ua: &str| {
        reqwest::Client::builder()
            .cookie_store(true)
            .user_agent(ua)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap()
    };
    let login = |c: reqwest::Client, user: &'static str| {
        let url = url.clone();
        async move {
            let r = c
                .post(format!("{url}/login"))
                .body(format!("user={user}"))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
            c
        }
    };
    let page = |c: reqwest::Client| {
        let url = url.clone();
        async move { c.get(format!("{url}/account")).send().await.unwrap() }
    };
    let laptop = login(
        browser("Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0"),
        "ada",
    )
    .await;
    let phone = login(
        browser("Mozilla/5.0 (Linux; Android 14) Chrome/130.0"),
        "ada",
    )
    .await;
    let tablet = login(browser("<script>alert(1)</script>"), "ada").await;
    let bob = login(browser("curl/8.0"), "bob").await;

    let r = page(laptop.clone()).await;
    assert_eq!(r.status(), 200);
    let body = r.text().await.unwrap();
    assert!(body.contains("Firefox on Linux") && body.contains("Chrome on Android"));
    assert!(!body.contains("<script>"), "client text is escaped");
    assert_eq!(body.matches("this browser").count(), 1);
    let handles: Vec<String> = body
        .split(r#"name="handle" value=""#)
        .skip(1)
        .map(|s| s.split('"').next().unwrap().to_owned())
        .collect();
    assert_eq!(handles.len(), 2, "a revoke button for each other session");

    // Bob sees only his own session and can't revoke Ada's.
    let bob_page = page(bob.clone()).await.text().await.unwrap();
    assert!(
        !bob_page.contains(r#"name="handle""#),
        "bob has one session: his own"
    );
    for h in &handles {
        // Bob posting Ada's handles: unknown in his own index, nothing ends.
        let r = bob
            .post(format!("{url}/account/revoke"))
            .body(format!("handle={h}"))
            .send()
            .await
            .unwrap();
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
    let r = laptop
        .post(format!("{url}/account/revoke"))
        .body(format!("handle={phone_handle}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(
        page(phone.clone()).await.status(),
        401,
        "the phone is logged out"
    );
    assert_eq!(page(tablet.clone()).await.status(), 200);

    // Log out everywhere else: the tablet goes, the laptop and bob stay.
    let r = laptop
        .post(format!("{url}/account/logout-others"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(page(tablet).await.status(), 401);
    let body = page(laptop.clone()).await.text().await.unwrap();
    assert_eq!(
        body.matches("<tr><td>").count(),
        1,
        "only this browser is left"
    );
    assert_eq!(page(bob).await.status(), 200);
}

/// As a person in a browser uses it: the login form, a form post that lands on the session
/// page, views counted, logout back to the form; every page `no-store`.
#[tokio::test]
async fn the_pages_a_browser_sees() {
    let app = session_testkit::process::start(env!("CARGO_BIN_EXE_login"), &[])
        .await
        .unwrap();
    let url = &app.url;
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::ACCEPT,
        reqwest::header::HeaderValue::from_static("text/html,*/*;q=0.8"),
    );
    let c = reqwest::Client::builder()
        .cookie_store(true)
        .default_headers(headers)
        .build()
        .unwrap();
    let page = |r: reqwest::Response| async move {
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["cache-control"], "no-store");
        r.text().await.unwrap()
    };
    let form = page(c.get(format!("{url}/")).send().await.unwrap()).await;
    assert!(
        form.contains(r#"<form method="post" action="/login">"#),
        "{form}"
    );
    // The form post is sent on to `/` (reqwest follows the 303 as a browser does).
    let home = page(
        c.post(format!("{url}/login"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body("user=ada+<b>")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert!(home.contains("Hello, ada &lt;b&gt;"), "{home}");
    assert!(home.contains(r#"<td id="views">1</td>"#), "{home}");
    assert!(!home.contains(r#"<td id="expires">?</td>"#), "{home}");
    let again = page(c.get(format!("{url}/")).send().await.unwrap()).await;
    assert!(again.contains(r#"<td id="views">2</td>"#), "{again}");
    let after = page(c.post(format!("{url}/logout")).send().await.unwrap()).await;
    assert!(after.contains(r#"action="/login""#), "{after}");
    // A private page asked for while logged out: the login form, then back to that page.
    let form = page(c.get(format!("{url}/private")).send().await.unwrap()).await;
    assert!(form.contains(r#"action="/login""#), "{form}");
    let back = c
        .post(format!("{url}/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("user=bob")
        .send()
        .await
        .unwrap();
    assert_eq!(back.url().path(), "/private");
    assert_eq!(back.text().await.unwrap(), "secret page for bob");
    // Used once: the next login goes to `/`.
    let home = page(
        c.post(format!("{url}/login"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body("user=bob")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert!(home.contains("Hello, bob"), "{home}");
}

/// A busy browser around a login: a pre-login session (a private page asked for), then a login
/// while 10 more visits to that page race it on the pre-login cookie, 30 rounds. The visits
/// write nothing and send no cookie (the page is already remembered), so none can put the
/// pre-login cookie back after the login's; every login holds, with a day's max-age.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pre_login_visits_racing_a_login_send_no_cookie() {
    use reqwest::header::{ACCEPT, COOKIE, SET_COOKIE};
    let app = session_testkit::process::start(env!("CARGO_BIN_EXE_login"), &[])
        .await
        .unwrap();
    let url = app.url.clone();
    let c = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let set_cookies = |r: &reqwest::Response| -> Vec<String> {
        let all = r.headers().get_all(SET_COOKIE).iter();
        all.map(|v| v.to_str().unwrap().to_owned()).collect()
    };
    let jar = |set: &[String]| -> String {
        let pairs = set.iter().map(|c| c.split(';').next().unwrap().to_owned());
        pairs.collect::<Vec<_>>().join("; ")
    };
    let mut sent = Vec::new();
    for round in 0..30 {
        let r = c
            .get(format!("{url}/private"))
            .header(ACCEPT, "text/html")
            .send()
            .await
            .unwrap();
        let pre = set_cookies(&r);
        assert!(pre.iter().any(|c| c.contains("Max-Age=900")), "{pre:?}");
        let pre = jar(&pre);
        let login = {
            let (c, url, pre) = (c.clone(), url.clone(), pre.clone());
            tokio::spawn(async move {
                let r = c
                    .post(format!("{url}/login"))
                    .header(ACCEPT, "text/html")
                    .header(COOKIE, pre)
                    .body(format!("user=u{round}"))
                    .send()
                    .await
                    .unwrap();
                set_cookies(&r)
            })
        };
        let visits: Vec<_> = (0..10)
            .map(|_| {
                let (c, url, pre) = (c.clone(), url.clone(), pre.clone());
                tokio::spawn(async move {
                    let r = c
                        .get(format!("{url}/private"))
                        .header(ACCEPT, "text/html")
                        .header(COOKIE, pre)
                        .send()
                        .await
                        .unwrap();
                    set_cookies(&r)
                })
            })
            .collect();
        let signed_in = login.await.unwrap();
        assert!(
            signed_in.iter().any(|c| c.contains("Max-Age=86400")),
            "{signed_in:?}"
        );
        for v in visits {
            sent.extend(v.await.unwrap());
        }
        let page = c
            .get(format!("{url}/"))
            .header(ACCEPT, "text/html")
            .header(COOKIE, jar(&signed_in))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(
            page.contains(&format!("Hello, u{round}")),
            "round {round}: {page}"
        );
    }
    assert!(sent.is_empty(), "pre-login visits sent cookies: {sent:?}");
}
