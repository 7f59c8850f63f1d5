//! A recording server on a loopback port of its own: it serves a few pages of the test's, and
//! passes every other request on to an app (a front the browser talks to instead of the app:
//! the same site, its own origin). Each request it sees is kept with its headers and the
//! answer's status and body, so a test can wait for a request the browser makes by itself (a
//! prefetch, a form another page sent) and check what reached the app and what the app said.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper::header::{CONTENT_TYPE, HOST, HeaderMap, HeaderName};
use hyper::{Request, Response, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};

/// How long [`Front::wait_for`] waits.
const PATIENCE: Duration = Duration::from_secs(15);

/// One request the front saw, and its answer.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    /// The path and the query.
    pub path: String,
    pub headers: HeaderMap,
    pub status: u16,
    /// The answer's body (lossy UTF-8).
    pub body: String,
    /// Whether the app answered it (else the front served one of its own pages).
    pub forwarded: bool,
}

impl Seen {
    /// A request header's value (the first), as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Whether the browser sent it as a prefetch: `Sec-Purpose` or `Purpose` names `prefetch`.
    pub fn is_prefetch(&self) -> bool {
        ["sec-purpose", "purpose"]
            .iter()
            .any(|h| self.header(h).is_some_and(|v| v.contains("prefetch")))
    }

    /// The names of the cookies the request carried.
    pub fn cookie_names(&self) -> Vec<String> {
        let all = self.headers.get_all(hyper::header::COOKIE);
        let pairs = all.iter().filter_map(|v| v.to_str().ok());
        pairs
            .flat_map(|v| v.split(';'))
            .filter_map(|p| p.split('=').next())
            .map(|n| n.trim().to_owned())
            .filter(|n| !n.is_empty())
            .collect()
    }
}

/// The front; stops serving when dropped.
pub struct Front {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    seen: Arc<Mutex<Vec<Seen>>>,
    server: tokio::task::JoinHandle<()>,
}

struct Shared {
    upstream: Option<String>,
    pages: HashMap<String, String>,
    client: Client<HttpConnector, Full<Bytes>>,
    seen: Arc<Mutex<Vec<Seen>>>,
}

/// Headers of one hop, not passed on.
const HOP: [&str; 5] = [
    "connection",
    "keep-alive",
    "transfer-encoding",
    "upgrade",
    "proxy-connection",
];

impl Front {
    /// Serves `pages` (path, HTML) itself and passes every other request on to `upstream`
    /// (`http://HOST:PORT`); without one, anything else is a 404.
    pub async fn start(upstream: Option<&str>, pages: &[(&str, String)]) -> Front {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let shared = Arc::new(Shared {
            upstream: upstream.map(str::to_owned),
            pages: pages
                .iter()
                .map(|(p, html)| ((*p).to_owned(), html.clone()))
                .collect(),
            client: Client::builder(TokioExecutor::new()).build_http(),
            seen: Arc::clone(&seen),
        });
        let server = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let shared = Arc::clone(&shared);
                let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                    let shared = Arc::clone(&shared);
                    async move { Ok::<_, Infallible>(shared.answer(req).await) }
                });
                tokio::spawn(async move {
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Front { url, seen, server }
    }

    /// Every request seen so far, in the order their answers were ready.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// How many requests it has answered: a mark for [`Front::wait_for`].
    pub fn mark(&self) -> usize {
        self.seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// Waits until a request `which` matches has been answered after the mark `from` (at most
    /// 15 s), and answers the first.
    pub async fn wait_for(&self, from: usize, what: &str, which: impl Fn(&Seen) -> bool) -> Seen {
        let start = Instant::now();
        loop {
            if let Some(s) = self.seen().into_iter().skip(from).find(|s| which(s)) {
                return s;
            }
            if start.elapsed() > PATIENCE {
                let seen: Vec<String> = self
                    .seen()
                    .iter()
                    .map(|s| format!("{} {} -> {}", s.method, s.path, s.status))
                    .collect();
                panic!("{what} never reached {}; it saw {seen:#?}", self.url);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Front {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl Shared {
    async fn answer(&self, req: Request<Incoming>) -> Response<Full<Bytes>> {
        let (parts, body) = req.into_parts();
        let path = parts
            .uri
            .path_and_query()
            .map_or("/".to_owned(), |p| p.as_str().to_owned());
        let body = body
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        let (res, forwarded) = match (self.pages.get(parts.uri.path()), &self.upstream) {
            (Some(html), _) => (page(StatusCode::OK, html.clone()), false),
            (None, Some(up)) => (self.forward(&parts, &path, up, body).await, true),
            (None, None) => (page(StatusCode::NOT_FOUND, "not here".into()), false),
        };
        let text = String::from_utf8_lossy(res.body()).into_owned();
        self.seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Seen {
                method: parts.method.to_string(),
                path,
                headers: parts.headers.clone(),
                status: res.status().as_u16(),
                body: text,
                forwarded,
            });
        res.map(Full::new)
    }

    /// Passes the request on to the app as it came (its cookies, its fetch metadata), and
    /// the app's answer back (its cookies, its redirects: paths, the same on the front).
    async fn forward(
        &self,
        parts: &hyper::http::request::Parts,
        path: &str,
        upstream: &str,
        body: Bytes,
    ) -> Response<Bytes> {
        let mut req = Request::builder()
            .method(parts.method.clone())
            .uri(format!("{upstream}{path}"))
            .body(Full::new(body))
            .unwrap();
        for (name, value) in &parts.headers {
            if !is_hop(name) && name != HOST {
                req.headers_mut().append(name, value.clone());
            }
        }
        let res = match self.client.request(req).await {
            Ok(res) => res,
            Err(e) => return page(StatusCode::BAD_GATEWAY, format!("the app: {e}")),
        };
        let (parts, body) = res.into_parts();
        let body = body
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        let mut out = Response::new(body);
        *out.status_mut() = parts.status;
        for (name, value) in &parts.headers {
            if !is_hop(name) {
                out.headers_mut().append(name, value.clone());
            }
        }
        out
    }
}

fn is_hop(name: &HeaderName) -> bool {
    HOP.contains(&name.as_str())
}

fn page(status: StatusCode, html: String) -> Response<Bytes> {
    let mut res = Response::new(Bytes::from(html));
    *res.status_mut() = status;
    res.headers_mut().insert(
        CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("text/html; charset=utf-8"),
    );
    res
}
