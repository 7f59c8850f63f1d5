//! Attacks flash messages and CSRF tokens on sessions that did not start with them: **a cookie
//! session made before the app used tokens never takes a token of a planted nonce cookie; a
//! site that used flash messages and tokens in cookie mode moves into a store without logging
//! anyone out, messages included; a page that shows messages and then logs out never puts
//! them back into the next session; and a store that refuses or stalls turns no CSRF check
//! into a pass or a 403 and loses no message.** Over real TCP through small axum apps, in the signed and
//! the encrypted cookie mode. The old and the new app are two layers with the same keys, as
//! two deployments of one site would be.
#![cfg(feature = "axum")]
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod pages;

use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::{get, post};
use http::StatusCode;
use session_hyper::axum::CsrfToken;
use session_hyper::flash::{Level, Messages};
use session_hyper::{Error, MemoryStore, Session, SessionLayer};
use session_testkit::client::Jar;
use session_testkit::stores::{FAIL, HANG, OK, Probe};

use pages::csrf_app::{Tok, expect, post_to};
use pages::{Client, Mode, PLAIN, assert_none, config, nonce_cookie, serve};

/// `GET /start`: a session begins with something in the cart and a message.
async fn start(session: Session) -> Result<StatusCode, Error> {
    session.insert("cart", 1).await?;
    session.flash(Level::Info, "Added to the cart.").await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /cart`: what the cart holds (0 for none).
async fn cart(session: Session) -> Result<String, Error> {
    Ok(session.get::<u64>("cart").await?.unwrap_or(0).to_string())
}

/// `GET /messages`: the page's messages as JSON.
async fn messages(m: Messages) -> String {
    serde_json::to_string(&m).unwrap()
}

/// `GET /form`: a page with a form, its token in the body.
async fn form(token: CsrfToken) -> String {
    token.0
}

/// `POST /post`: a post that changes nothing.
async fn echo() -> &'static str {
    "done"
}

/// `POST /bye-fails`: shows the messages, logs out, then fails.
async fn bye_fails(session: Session) -> Result<StatusCode, Error> {
    session.messages().await?;
    session.destroy().await?;
    Ok(StatusCode::INTERNAL_SERVER_ERROR)
}

/// The app, with the CSRF check when `csrf`.
fn app(layer: SessionLayer, csrf: bool) -> Router {
    let routes = Router::new()
        .route("/start", get(start))
        .route("/cart", get(cart))
        .route("/messages", get(messages))
        .route("/form", get(form))
        .route("/post", post(echo))
        .route("/bye-fails", post(bye_fails));
    let routes = if csrf {
        routes.layer(layer.csrf().unwrap())
    } else {
        routes
    };
    routes.layer(layer)
}

async fn client(layer: SessionLayer, csrf: bool) -> Client {
    Client::new(serve(app(layer, csrf)).await)
}

/// A token from `GET /form`; the jar takes its cookies.
async fn token(c: &Client, jar: &mut Jar) -> String {
    let r = c.visit("/form", jar, PLAIN).await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cookie_session_from_before_tokens_never_takes_a_planted_nonce() {
    let mut f = Vec::new();
    for mode in [Mode::Signed, Mode::Encrypted] {
        // The site before it used tokens: the victim's session holds data and no secret.
        let before = client(mode.layer(|b| b).await, false).await;
        let after = client(mode.layer(|b| b).await, true).await;
        for round in 0..20 {
            let mut victim = Jar::default();
            before.visit("/start", &mut victim, PLAIN).await;
            let mut attacker = Jar::default();
            let theirs = token(&after, &mut attacker).await;
            let planted = nonce_cookie(&attacker);
            let mut jar = victim.clone();
            jar.0.push(planted.clone());
            let what = format!("{mode:?} round {round}");
            let r = post_to(&after, "/post", &jar, None, Tok::Header(&theirs)).await;
            expect(
                &mut f,
                &format!("{what}: the planted nonce's token"),
                &r,
                403,
            );
            let r = post_to(&after, "/post", &jar, Some("same-site"), Tok::Form(&theirs)).await;
            expect(&mut f, &format!("{what}: the same, same-site"), &r, 403);
            // The visitor's own token works, and gives the session its secret.
            let mine = token(&after, &mut victim).await;
            assert_eq!(mine.len(), 86, "{what}: {mine:?}");
            let r = post_to(&after, "/post", &victim, None, Tok::Header(&mine)).await;
            expect(&mut f, &format!("{what}: the visitor's own token"), &r, 200);
            let mut jar = victim.clone();
            jar.0.insert(0, planted);
            let r = post_to(&after, "/post", &jar, None, Tok::Header(&theirs)).await;
            expect(
                &mut f,
                &format!("{what}: the planted one, once a secret"),
                &r,
                403,
            );
            let r = after.get("/cart", &victim, PLAIN).await;
            if r.body != "1" {
                f.push(format!("{what}: the cart is {}", r.body));
            }
        }
    }
    assert_none("planted nonces against older cookie sessions", &f);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cookie_site_with_messages_and_tokens_moves_into_a_store() {
    let mut f = Vec::new();
    for mode in [Mode::Signed, Mode::Encrypted] {
        let old = mode.layer(|b| b).await;
        let old_site = client(old.clone(), true).await;
        let new = SessionLayer::store(config(false), MemoryStore::new())
            .migrate_from_cookie_mode(old)
            .build()
            .unwrap();
        let new_site = client(new, true).await;
        for round in 0..20 {
            let what = format!("{mode:?} round {round}");
            let mut jar = Jar::default();
            old_site.visit("/start", &mut jar, PLAIN).await;
            // A token gives the old cookie its secret.
            token(&old_site, &mut jar).await;
            let r = new_site.visit("/cart", &mut jar, PLAIN).await;
            if r.body != "1" {
                f.push(format!(
                    "{what}: the session did not move (cart {})",
                    r.body
                ));
            }
            let r = new_site.visit("/messages", &mut jar, PLAIN).await;
            if !r.body.contains("Added to the cart.") {
                f.push(format!("{what}: the message did not move: {}", r.body));
            }
            let mine = token(&new_site, &mut jar).await;
            let r = post_to(&new_site, "/post", &jar, None, Tok::Header(&mine)).await;
            expect(&mut f, &format!("{what}: a token after the move"), &r, 200);
        }
    }
    assert_none("moves of cookie sessions with messages and tokens", &f);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_that_logs_out_after_showing_messages_never_puts_them_back() {
    let mut f = Vec::new();
    for mode in Mode::stores().into_iter().chain(Mode::koa_json()) {
        let layer = mode.layer(|b| b.save_on_server_error(true)).await;
        let c = client(layer, false).await;
        for round in 0..10 {
            let what = format!("{mode:?} round {round}");
            let mut jar = Jar::default();
            c.visit("/start", &mut jar, PLAIN).await;
            let r = c
                .send(http::Method::POST, "/bye-fails", &jar, PLAIN, &[], None)
                .await;
            jar.apply(&r);
            if r.status != 500 {
                f.push(format!("{what}: /bye-fails answered {}", r.status));
            }
            let r = c.visit("/messages", &mut jar, PLAIN).await;
            if r.body != "[]" {
                f.push(format!(
                    "{what}: after the logout the next page shows {}",
                    r.body
                ));
            }
            let r = c.get("/cart", &jar, PLAIN).await;
            if r.body != "0" {
                f.push(format!("{what}: the cart survived the logout ({})", r.body));
            }
        }
    }
    assert_none("messages put back after a logout", &f);
}

/// A store that refuses or stalls while a post is checked: the answer is a fast 503, never a
/// pass and never a 403 (an outage is not a forgery), with the visitor's own token, in a
/// form, and with a planted nonce cookie and its token; once the store is back, the same token
/// passes and the planted one is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_that_refuses_or_stalls_turns_no_check_into_a_pass_or_a_403() {
    let probe = Probe::new(MemoryStore::new());
    let layer = SessionLayer::store(config(false), probe.clone())
        .store_timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let c = client(layer, true).await;
    let mut f = Vec::new();
    for round in 0..10 {
        let mut victim = Jar::default();
        c.visit("/start", &mut victim, PLAIN).await;
        let mine = token(&c, &mut victim).await;
        let mut attacker = Jar::default();
        let theirs = token(&c, &mut attacker).await;
        let planted = nonce_cookie(&attacker);
        let mut tossed = victim.clone();
        tossed.0.insert(0, planted);
        for (mode, name) in [(FAIL, "refusing"), (HANG, "stalling")] {
            probe.set_mode(mode);
            for (what, jar, tok) in [
                ("own token", &victim, Tok::Header(&mine)),
                ("own token in the form", &victim, Tok::Form(&mine)),
                ("planted nonce's token", &tossed, Tok::Header(&theirs)),
            ] {
                let started = Instant::now();
                let r = post_to(&c, "/post", jar, None, tok).await;
                let what = format!("round {round}, {name} store, {what}");
                expect(&mut f, &what, &r, 503);
                if started.elapsed() > Duration::from_secs(5) {
                    f.push(format!("{what}: took {:?}", started.elapsed()));
                }
            }
        }
        probe.set_mode(OK);
        let r = post_to(&c, "/post", &victim, None, Tok::Header(&mine)).await;
        expect(
            &mut f,
            &format!("round {round}: own token, store back"),
            &r,
            200,
        );
        let r = post_to(&c, "/post", &tossed, None, Tok::Header(&theirs)).await;
        expect(
            &mut f,
            &format!("round {round}: planted, store back"),
            &r,
            403,
        );
    }
    assert_none("CSRF checks against a failing store", &f);
}

/// A store that refuses or stalls while a page would show its messages: a 503 that shows and
/// takes nothing; once the store is back the next page shows the message exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_that_refuses_or_stalls_loses_no_message() {
    let probe = Probe::new(MemoryStore::new());
    let layer = SessionLayer::store(config(false), probe.clone())
        .store_timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let c = client(layer, false).await;
    let mut f = Vec::new();
    for round in 0..10 {
        let mut jar = Jar::default();
        c.visit("/start", &mut jar, PLAIN).await;
        for (mode, name) in [(FAIL, "refusing"), (HANG, "stalling")] {
            probe.set_mode(mode);
            let r = c.get("/messages", &jar, PLAIN).await;
            if r.status != 503 || r.body.contains("Added to the cart.") {
                f.push(format!(
                    "round {round}, {name} store: {} {}",
                    r.status, r.body
                ));
            }
        }
        probe.set_mode(OK);
        let shown = c.visit("/messages", &mut jar, PLAIN).await.body;
        let again = c.visit("/messages", &mut jar, PLAIN).await.body;
        if shown.matches("Added to the cart.").count() != 1 || again != "[]" {
            f.push(format!("round {round}, store back: {shown} then {again}"));
        }
    }
    assert_none("messages against a failing store", &f);
}
