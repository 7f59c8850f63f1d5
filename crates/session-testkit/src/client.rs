//! The clients: a browser-like one that keeps a cookie jar ([`browser`]), and an exact one that
//! sends precisely the cookies a test gives it ([`raw`], [`get_with`]) and answers a [`Reply`]
//! with every `Set-Cookie` line; a manual [`Jar`] applies them in the order the test says
//! responses arrived, as a browser does.

use std::time::Duration;

/// The default session cookie's name.
pub const NAME: &str = "koa.sess";
/// The default signature cookie's name.
pub const SIG: &str = "koa.sess.sig";

/// How long any request of a test may take: only a hang comes near it.
const TIMEOUT: Duration = Duration::from_secs(30);

/// A browser: one cookie jar (shared by its clones, as tabs share one), redirects followed.
pub fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .timeout(TIMEOUT)
        .build()
        .unwrap()
}

/// A client without a jar, to send exactly the cookies a test chooses. It keeps up to 64 idle
/// connections per server, so hundreds of racing requests reuse them.
pub fn raw() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(TIMEOUT)
        .pool_max_idle_per_host(64)
        .build()
        .unwrap()
}

/// A response as the test sees it.
#[derive(Debug)]
pub struct Reply {
    /// The status code.
    pub status: u16,
    /// Every `Set-Cookie` line, in order.
    pub set_cookies: Vec<String>,
    /// Every header.
    pub headers: reqwest::header::HeaderMap,
    /// The body, as text.
    pub body: String,
}

impl Reply {
    /// `name=value` of each Set-Cookie.
    pub fn pairs(&self) -> Vec<String> {
        self.set_cookies
            .iter()
            .map(|c| c.split(';').next().unwrap_or_default().to_owned())
            .collect()
    }

    /// `(name, value)` of each Set-Cookie.
    pub fn cookies(&self) -> Vec<(String, String)> {
        self.pairs()
            .iter()
            .filter_map(|p| p.split_once('='))
            .map(|(n, v)| (n.to_owned(), v.to_owned()))
            .collect()
    }

    /// The value this reply sets for cookie `name`.
    pub fn cookie(&self, name: &str) -> Option<String> {
        self.cookies()
            .into_iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v)
    }

    /// Whether it removes the default session cookie or its signature (an empty value with
    /// `Max-Age=0`).
    pub fn removes(&self) -> bool {
        self.set_cookies.iter().any(|c| {
            c.contains("Max-Age=0")
                && (c.starts_with(&format!("{NAME}=;")) || c.starts_with(&format!("{SIG}=;")))
        })
    }

    /// The new session id it sets under the default name, if any.
    pub fn sets_id(&self) -> Option<String> {
        self.cookie(NAME).filter(|v| !v.is_empty())
    }

    /// What `X-Session-New` says (the test app's `GET /session` sets it).
    pub fn is_new(&self) -> Option<bool> {
        self.headers
            .get("x-session-new")
            .map(|v| v.as_bytes() == b"true")
    }

    /// Whether it says when to retry (`Retry-After`).
    pub fn retry_after(&self) -> bool {
        self.headers.contains_key("retry-after")
    }
}

/// Sends a request; the reply.
pub async fn send(rb: reqwest::RequestBuilder) -> Reply {
    let res = rb.send().await.unwrap();
    let status = res.status().as_u16();
    let headers = res.headers().clone();
    let set_cookies = headers
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    let body = res.text().await.unwrap();
    Reply {
        status,
        set_cookies,
        headers,
        body,
    }
}

/// GET `url` with `client`.
pub async fn get(client: &reqwest::Client, url: &str) -> Reply {
    send(client.get(url)).await
}

/// GET `url` with `client`: the body.
pub async fn text(client: &reqwest::Client, url: &str) -> String {
    get(client, url).await.body
}

/// GET `url` carrying exactly `cookie` as its `Cookie` header (none when empty).
pub async fn get_with(url: &str, cookie: &str) -> Reply {
    let mut rb = raw().get(url);
    if !cookie.is_empty() {
        rb = rb.header("cookie", cookie);
    }
    send(rb).await
}

/// A browser's cookies for one site, kept by hand: each reply is applied when the test says it
/// arrived (a later one replaces an earlier value; an empty value removes the cookie).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Jar(pub Vec<(String, String)>);

impl Jar {
    /// Takes the cookies `r` sets.
    pub fn apply(&mut self, r: &Reply) {
        for (name, value) in r.cookies() {
            self.0.retain(|(n, _)| *n != name);
            if !value.is_empty() {
                self.0.push((name, value));
            }
        }
    }

    /// The `Cookie` header a browser would send.
    pub fn header(&self) -> String {
        self.0
            .iter()
            .map(|(n, v)| format!("{n}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// The session id it holds under the default name.
    pub fn id(&self) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n == NAME)
            .map(|(_, v)| v.as_str())
    }
}

/// The view-counter check the counter examples' tests share: one visitor's count goes 1, 2, 3
/// through its cookie jar (`GET url`), and a visitor without cookies starts at 1.
pub async fn assert_counts_views(url: &str) {
    let c = browser();
    for n in 1..=3 {
        assert_eq!(text(&c, url).await, format!("{n} views"));
    }
    // Another visitor has their own count.
    assert_eq!(text(&browser(), url).await, "1 views");
}

/// [`assert_counts_views`] on the example binary `bin` (a test's `env!("CARGO_BIN_EXE_...")`),
/// started for the check.
pub async fn assert_example_counts_views(bin: &str) {
    let app = crate::process::start(bin, &[])
        .await
        .unwrap_or_else(|| panic!("{bin} did not start"));
    assert_counts_views(&app.url).await;
}
