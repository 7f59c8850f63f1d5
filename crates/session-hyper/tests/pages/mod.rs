//! What `flash.rs`, `csrf.rs` and `csrf_sessions.rs` share: an axum app served on a loopback
//! port, a client that sends exactly the cookies and fetch metadata a test gives it and never
//! follows a redirect, and the stores and cookie modes the tests run on. The apps of the first
//! two are in `flash_app` and `csrf_app`.
#![allow(dead_code)]

pub mod csrf_app;
pub mod flash_app;

use std::time::Duration;

use axum::Router;
use http::Method;
use session_hyper::{Config, CookieMode, MemoryStore, SessionLayer, SessionLayerBuilder};
use session_testkit::capture::KEY1;
use session_testkit::client::{Jar, Reply, send};

/// The CSRF nonce cookie a jar holds (name and value), to plant in another visitor's jar.
pub fn nonce_cookie(jar: &Jar) -> (String, String) {
    jar.0.iter().find(|(k, _)| k == NONCE).cloned().unwrap()
}

/// The session cookie's name, and the CSRF nonce cookie's.
pub const NAME: &str = "koa.sess";
pub const NONCE: &str = "koa.sess.csrf";

/// Fetch metadata a request carries, as a browser would send it.
pub type Meta = &'static [(&'static str, &'static str)];
/// A client that sends no fetch metadata (an older browser, curl): a page load.
pub const PLAIN: Meta = &[];
/// A browser's navigation to a page.
pub const NAVIGATE: Meta = &[
    ("sec-fetch-mode", "navigate"),
    ("sec-fetch-dest", "document"),
    ("sec-fetch-site", "same-origin"),
];
/// A speculative prefetch (Chrome's Speculation Rules): a navigation marked `Sec-Purpose`.
pub const SEC_PURPOSE: Meta = &[
    ("sec-purpose", "prefetch"),
    ("sec-fetch-mode", "navigate"),
    ("sec-fetch-dest", "document"),
];
/// An older browser's `<link rel=prefetch>`.
pub const PURPOSE: Meta = &[("purpose", "prefetch")];
/// jQuery's XHR.
pub const XHR: Meta = &[("x-requested-with", "XMLHttpRequest")];
/// An htmx request.
pub const HTMX: Meta = &[("hx-request", "true"), ("sec-fetch-mode", "cors")];
/// A page's `fetch()`.
pub const CORS: Meta = &[
    ("sec-fetch-mode", "cors"),
    ("sec-fetch-dest", "empty"),
    ("sec-fetch-site", "same-origin"),
];
/// A page in an iframe.
pub const IFRAME: Meta = &[("sec-fetch-mode", "navigate"), ("sec-fetch-dest", "iframe")];

/// Serves `app` on a fresh loopback port; its URL.
pub async fn serve(app: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

/// An exact client of one app: the cookies and headers a test gives, no redirect followed.
#[derive(Clone)]
pub struct Client {
    url: String,
    http: reqwest::Client,
}

impl Client {
    pub fn new(url: String) -> Client {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(30))
            .pool_max_idle_per_host(64)
            .build()
            .unwrap();
        Client { url, http }
    }

    /// `method path` with the jar's cookies, `meta`, the `extra` headers and a `body` of the
    /// given content type.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        jar: &Jar,
        meta: Meta,
        extra: &[(&str, &str)],
        body: Option<(&str, String)>,
    ) -> Reply {
        let mut rb = self.http.request(method, format!("{}{path}", self.url));
        let cookie = jar.header();
        if !cookie.is_empty() {
            rb = rb.header("cookie", cookie);
        }
        for (k, v) in meta.iter().chain(extra) {
            rb = rb.header(*k, *v);
        }
        if let Some((ctype, body)) = body {
            rb = rb.header("content-type", ctype).body(body);
        }
        send(rb).await
    }

    /// `GET path` with the jar's cookies and `meta`.
    pub async fn get(&self, path: &str, jar: &Jar, meta: Meta) -> Reply {
        self.send(Method::GET, path, jar, meta, &[], None).await
    }

    /// `GET path`, the jar taking the cookies the reply sets.
    pub async fn visit(&self, path: &str, jar: &mut Jar, meta: Meta) -> Reply {
        let r = self.get(path, jar, meta).await;
        jar.apply(&r);
        r
    }
}

/// Where the session lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Memory,
    /// Redis in its default format (a hash, per-key writes).
    Redis,
    /// Redis in koa-session's format (one JSON string, whole-record writes).
    RedisKoa,
    Postgres,
    Signed,
    Encrypted,
}

impl Mode {
    /// The stores this build can run, each in the format that merges per key: memory, and
    /// Redis and PostgreSQL with `--features redis-tests` and `postgres-tests` (`REDIS_URL`,
    /// `DATABASE_URL`).
    pub fn stores() -> Vec<Mode> {
        let mut all = vec![Mode::Memory];
        if cfg!(feature = "redis-tests") {
            all.push(Mode::Redis);
        }
        if cfg!(feature = "postgres-tests") {
            all.push(Mode::Postgres);
        }
        all
    }

    /// The modes that keep the session as koa's JSON: the signed and the encrypted cookie, and
    /// Redis in koa's format with `--features redis-tests`.
    pub fn koa_json() -> Vec<Mode> {
        let mut all = vec![Mode::Signed, Mode::Encrypted];
        if cfg!(feature = "redis-tests") {
            all.push(Mode::RedisKoa);
        }
        all
    }

    /// Whether the session lives in a store.
    pub fn is_store(self) -> bool {
        !matches!(self, Mode::Signed | Mode::Encrypted)
    }

    /// A layer in this mode, its builder adjusted by `f`.
    pub async fn layer(
        self,
        f: impl FnOnce(SessionLayerBuilder) -> SessionLayerBuilder,
    ) -> SessionLayer {
        let builder = match self {
            Mode::Memory => SessionLayer::store(config(false), MemoryStore::new()),
            Mode::Signed => SessionLayer::cookie(config(false)),
            Mode::Encrypted => SessionLayer::cookie(config(true)),
            #[cfg(feature = "redis-tests")]
            Mode::Redis => SessionLayer::store(config(false), redis_store("pages").await.0),
            #[cfg(feature = "redis-tests")]
            Mode::RedisKoa => {
                let (store, _) = redis_store_in("pages", session_hyper::RedisFormat::Koa).await;
                SessionLayer::store(config(false), store)
            }
            #[cfg(feature = "postgres-tests")]
            Mode::Postgres => SessionLayer::store(
                config(false),
                session_testkit::postgres::store("pages").await,
            ),
            #[allow(unreachable_patterns)]
            other => panic!("{other:?} needs its feature"),
        };
        f(builder).build().unwrap()
    }
}

/// The tests' configuration: one key, the default cookie name; `encrypted` seals the cookie.
pub fn config(encrypted: bool) -> Config {
    let b = Config::builder().key(KEY1.to_vec());
    let b = if encrypted {
        b.cookie_mode(CookieMode::Encrypted)
    } else {
        b
    };
    b.build().unwrap()
}

/// A Redis store on the shared server under a prefix of its own, and the prefix.
#[cfg(feature = "redis-tests")]
pub async fn redis_store(name: &str) -> (session_hyper::RedisStore, String) {
    redis_store_in(name, session_hyper::RedisFormat::V1).await
}

/// [`redis_store`] in `format`.
#[cfg(feature = "redis-tests")]
pub async fn redis_store_in(
    name: &str,
    format: session_hyper::RedisFormat,
) -> (session_hyper::RedisStore, String) {
    use session_testkit::redis::{shared_url, unique_prefix};
    let prefix = unique_prefix(name);
    let store = session_hyper::RedisStore::builder(shared_url())
        .prefix(prefix.clone())
        .format(format)
        .build()
        .await
        .unwrap();
    (store, prefix)
}

/// Whether `failures` is empty; else a panic listing up to 20 of them.
pub fn assert_none(what: &str, failures: &[String]) {
    assert!(
        failures.is_empty(),
        "{what}: {} failures, the first: {:#?}",
        failures.len(),
        &failures[..failures.len().min(20)]
    );
}
