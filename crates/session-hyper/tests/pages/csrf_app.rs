//! The app `csrf.rs` attacks: pages that render tokens, a login and a logout that renew the
//! visitor's identity, posts that echo their form, exempt webhooks, and a handler that applies
//! the rule itself, all behind `CsrfLayer` inside `SessionLayer`; and the requests the tests
//! send it (a token in the header, the form, both or neither; a forged token).

use axum::routing::{get, post};
use axum::{Router, http::HeaderMap};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::{Method, StatusCode};
use session_hyper::axum::CsrfToken;
use session_hyper::csrf::CSRF_HEADER;
use session_hyper::{Error, Session, SessionLayer};
use session_testkit::client::{Jar, Reply};

use super::{Client, PLAIN, serve};

pub const FORM: &str = "application/x-www-form-urlencoded";
/// The largest form the layer reads in these tests.
pub const MAX_FORM: usize = 1024;

/// `GET /form`: a page with a form, its token in the body.
async fn form(token: CsrfToken) -> String {
    token.0
}

/// `GET /start`: the visitor puts something in the cart (a session begins).
async fn start(session: Session) -> Result<StatusCode, Error> {
    session.insert("cart", 1).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /start-token`: a session begins and the same page renders a form.
async fn start_token(session: Session) -> Result<String, Error> {
    session.insert("cart", 1).await?;
    session.csrf_token().await
}

/// `POST /login`: regenerates and signs in; with `X-Mint`, renders the next page's token.
async fn login(session: Session, h: HeaderMap) -> Result<String, Error> {
    session.regenerate().await?;
    session.insert("user", "ada").await?;
    mint_if_asked(&session, &h, "in").await
}

/// `POST /logout`: destroys; with `X-Mint`, renders the next page's token.
async fn logout(session: Session, h: HeaderMap) -> Result<String, Error> {
    session.destroy().await?;
    mint_if_asked(&session, &h, "bye").await
}

async fn mint_if_asked(session: &Session, h: &HeaderMap, or: &str) -> Result<String, Error> {
    if h.contains_key("x-mint") {
        session.csrf_token().await
    } else {
        Ok(or.to_owned())
    }
}

/// `POST /post` (and the exempt routes): the form's length as the handler got it; the session
/// untouched.
async fn echo(body: String) -> String {
    format!("{} bytes", body.len())
}

/// `POST /count`: a post that changes the session.
async fn count(session: Session) -> Result<String, Error> {
    let n: u64 = session.get("n").await?.unwrap_or(0) + 1;
    session.insert("n", n).await?;
    Ok(n.to_string())
}

/// `POST /manual`, outside `CsrfLayer`: the handler applies the rule itself.
async fn manual(session: Session, method: Method, h: HeaderMap) -> Result<&'static str, Error> {
    let token = h.get(CSRF_HEADER).and_then(|v| v.to_str().ok());
    session.check_csrf(&method, &h, token).await?;
    Ok("checked")
}

pub fn app(layer: SessionLayer) -> Router {
    let csrf = layer
        .csrf()
        .unwrap()
        .exempt("/hooks/")
        .exempt("/webhook")
        .max_form_bytes(MAX_FORM);
    let checked = Router::new()
        .route("/form", get(form))
        .route("/start", get(start))
        .route("/start-token", get(start_token))
        .route("/login", post(login))
        .route("/logout", post(logout))
        .route("/post", post(echo).put(echo).delete(echo).patch(echo))
        .route("/count", post(count))
        .route("/hooks/github", post(echo))
        .route("/webhook", post(echo))
        .route("/webhook/x", post(echo))
        .layer(csrf);
    Router::new()
        .merge(checked)
        .route("/manual", post(manual))
        .layer(layer)
}

pub async fn client(layer: SessionLayer) -> Client {
    Client::new(serve(app(layer)).await)
}

/// Where a request carries its token.
#[derive(Clone, Copy, Debug)]
pub enum Tok<'a> {
    No,
    Header(&'a str),
    Form(&'a str),
    /// This header, and this form field.
    Both(&'a str, &'a str),
}

/// An unsafe request to `path` with the jar's cookies, `Sec-Fetch-Site: site` when given, and
/// a small form.
pub async fn send(
    c: &Client,
    method: Method,
    path: &str,
    jar: &Jar,
    site: Option<&str>,
    tok: Tok<'_>,
) -> Reply {
    let mut extra = Vec::new();
    if let Some(s) = site {
        extra.push(("sec-fetch-site", s));
    }
    let mut body = "note=hello".to_owned();
    match tok {
        Tok::No => {}
        Tok::Header(t) => extra.push((CSRF_HEADER, t)),
        Tok::Form(t) => body = format!("{body}&_csrf={t}"),
        Tok::Both(h, t) => {
            extra.push((CSRF_HEADER, h));
            body = format!("{body}&_csrf={t}");
        }
    }
    c.send(method, path, jar, PLAIN, &extra, Some((FORM, body)))
        .await
}

pub async fn post_to(c: &Client, path: &str, jar: &Jar, site: Option<&str>, tok: Tok<'_>) -> Reply {
    send(c, Method::POST, path, jar, site, tok).await
}

/// A token from `GET /form`; the jar takes its cookies. A page with a token is never cached.
pub async fn token(c: &Client, jar: &mut Jar) -> String {
    let r = c.visit("/form", jar, PLAIN).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body.len(), 86, "{}", r.body);
    let cache = r.headers.get("cache-control").and_then(|v| v.to_str().ok());
    assert!(cache.is_some_and(|v| v.contains("no-store")), "{cache:?}");
    r.body
}

/// `token` with one byte of its decoded form flipped (`at` < 32: the mask; else the masked
/// secret).
pub fn flip(token: &str, at: usize) -> String {
    let mut raw = URL_SAFE_NO_PAD.decode(token).unwrap();
    raw[at] ^= 0x01;
    URL_SAFE_NO_PAD.encode(raw)
}

/// Notes a failure unless `r` answered `want`.
pub fn expect(f: &mut Vec<String>, what: &str, r: &Reply, want: u16) {
    if r.status != want {
        f.push(format!("{what}: {} {} (want {want})", r.status, r.body));
    }
}
