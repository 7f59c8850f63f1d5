//! Test support: a real server on a loopback port, a store wrapper that counts calls and can
//! be switched to fail or hang (its owner index also delayed per owner, or failed), and a
//! tracing capture.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::convert::Infallible;
use std::io::Write;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use serde_json::Value;
use session_core::store::{
    Change, Created, Destroyed, Loaded, Meta, Record, Store, StoreError, StoreKey, Supersede,
    Updated,
};
use session_hyper::{Session, SessionLayer};
use session_store_memory::MemoryStore;

pub const KEY1: &[u8] = b"test key one: 32 bytes or longer";
pub const KEY2: &[u8] = b"test key two: 32 bytes or longer";
/// Where the manual clocks of the tests start (ms since the epoch).
pub const T0: u64 = 1_700_000_000_000;

/// A memory store and config sharing one manual clock.
pub fn clocked(
    f: impl FnOnce(session_core::ConfigBuilder) -> session_core::ConfigBuilder,
) -> (session_core::Config, Probe, session_core::ManualClock) {
    let clock = session_core::ManualClock::new(T0);
    let store = MemoryStore::builder()
        .clock(Arc::new(clock.clone()))
        .build();
    let cfg = f(session_core::Config::builder()
        .key(KEY1.to_vec())
        .clock(Arc::new(clock.clone())))
    .build()
    .unwrap();
    (cfg, Probe::new(store), clock)
}

/// What the wrapped store does.
pub const OK: u8 = 0;
pub const FAIL: u8 = 1;
pub const HANG: u8 = 2;

#[derive(Clone, Default)]
pub struct Probe {
    pub store: MemoryStore,
    pub mode: Arc<AtomicU8>,
    pub loads: Arc<AtomicUsize>,
    pub writes: Arc<AtomicUsize>,
    /// Owner-index calls (index, unindex, entries).
    pub index_calls: Arc<AtomicUsize>,
    /// Index writes of this owner wait this many ms.
    pub delay_owner: Arc<Mutex<Option<(String, u64)>>>,
    /// Index writes fail.
    pub fail_index: Arc<AtomicBool>,
    /// Index removals fail.
    pub fail_unindex: Arc<AtomicBool>,
}

impl Probe {
    pub fn new(store: MemoryStore) -> Self {
        Self {
            store,
            ..Self::default()
        }
    }
    pub fn set_mode(&self, m: u8) {
        self.mode.store(m, Ordering::SeqCst);
    }
    async fn gate(&self) -> Result<(), StoreError> {
        match self.mode.load(Ordering::SeqCst) {
            FAIL => Err(StoreError::Unavailable("connection refused".into())),
            HANG => {
                tokio::time::sleep(Duration::from_secs(3600)).await;
                Ok(())
            }
            _ => Ok(()),
        }
    }
}

impl session_core::store::OwnerIndex for Probe {
    fn index<'a>(
        &'a self,
        owner: &'a str,
        entry: &'a session_core::store::IndexEntry,
        until: u64,
        now: u64,
    ) -> session_core::store::BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            self.gate().await?;
            self.index_calls.fetch_add(1, Ordering::SeqCst);
            let delay = self.delay_owner.lock().unwrap().clone();
            if let Some((o, ms)) = delay
                && o == owner
            {
                tokio::time::sleep(Duration::from_millis(ms)).await;
            }
            if self.fail_index.load(Ordering::SeqCst) {
                return Err(StoreError::Unavailable("down".into()));
            }
            session_core::store::OwnerIndex::index(&self.store, owner, entry, until, now).await
        })
    }
    fn unindex<'a>(
        &'a self,
        owner: &'a str,
        handles: &'a [session_core::Handle],
        now: u64,
    ) -> session_core::store::BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            self.gate().await?;
            self.index_calls.fetch_add(1, Ordering::SeqCst);
            if self.fail_unindex.load(Ordering::SeqCst) {
                return Err(StoreError::Unavailable("down".into()));
            }
            session_core::store::OwnerIndex::unindex(&self.store, owner, handles, now).await
        })
    }
    fn entries<'a>(
        &'a self,
        owner: &'a str,
        now: u64,
    ) -> session_core::store::BoxFuture<'a, Result<Vec<session_core::store::Indexed>, StoreError>>
    {
        Box::pin(async move {
            self.gate().await?;
            self.index_calls.fetch_add(1, Ordering::SeqCst);
            session_core::store::OwnerIndex::entries(&self.store, owner, now).await
        })
    }
}

impl Store for Probe {
    fn owner_index(&self) -> Option<&dyn session_core::store::OwnerIndex> {
        Some(self)
    }
    async fn create(&self, k: &StoreKey, r: &Record, ttl: Duration) -> Result<Created, StoreError> {
        self.gate().await?;
        self.writes.fetch_add(1, Ordering::SeqCst);
        self.store.create(k, r, ttl).await
    }
    async fn load(&self, k: &StoreKey) -> Result<Loaded, StoreError> {
        self.gate().await?;
        self.loads.fetch_add(1, Ordering::SeqCst);
        self.store.load(k).await
    }
    async fn save(
        &self,
        k: &StoreKey,
        c: Change<'_>,
        ttl: Duration,
    ) -> Result<Updated, StoreError> {
        self.gate().await?;
        self.writes.fetch_add(1, Ordering::SeqCst);
        self.store.save(k, c, ttl).await
    }
    async fn destroy(&self, k: &StoreKey) -> Result<Destroyed, StoreError> {
        self.gate().await?;
        self.writes.fetch_add(1, Ordering::SeqCst);
        self.store.destroy(k).await
    }
    async fn supersede(
        &self,
        k: &StoreKey,
        next: &StoreKey,
        ttl: Duration,
    ) -> Result<Supersede, StoreError> {
        self.gate().await?;
        self.writes.fetch_add(1, Ordering::SeqCst);
        self.store.supersede(k, next, ttl).await
    }
    async fn touch(&self, k: &StoreKey, m: Meta, ttl: Duration) -> Result<Updated, StoreError> {
        self.gate().await?;
        self.writes.fetch_add(1, Ordering::SeqCst);
        self.store.touch(k, m, ttl).await
    }
}

/// A response of `status` with `body`.
pub fn reply(status: StatusCode, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    r
}

/// The value of query parameter `name` (empty when absent).
pub fn param(req: &Request<Incoming>, name: &str) -> String {
    query(req)
        .into_iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v)
        .unwrap_or_default()
}

fn query(req: &Request<Incoming>) -> Vec<(String, String)> {
    req.uri()
        .query()
        .unwrap_or("")
        .split('&')
        .filter_map(|p| p.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

fn fail(e: session_hyper::Error) -> Response<Full<Bytes>> {
    reply(
        StatusCode::INTERNAL_SERVER_ERROR,
        format!("handler saw: {e}"),
    )
}

/// The test app's routes.
async fn app(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let s = Session::from_request(&req).unwrap();
    let q = query(&req);
    let path = req.uri().path().to_owned();
    let r = async {
        Ok::<_, session_hyper::Error>(match path.as_str() {
            "/views" => {
                let n: u64 = s.get("views").await?.unwrap_or(0) + 1;
                s.insert("views", n).await?;
                reply(StatusCode::OK, format!("{n} views"))
            }
            "/read" => {
                let data = s.data().await?;
                reply(StatusCode::OK, Value::Object(data).to_string())
            }
            "/noop" => reply(StatusCode::OK, "no session"),
            "/set" => {
                for (k, v) in &q {
                    s.insert(k, v).await?;
                }
                reply(StatusCode::OK, "set")
            }
            "/slow-set" => {
                // Load, wait, then change one key: two of these overlap.
                s.get_value("x").await?;
                tokio::time::sleep(Duration::from_millis(100)).await;
                for (k, v) in &q {
                    s.insert(k, v).await?;
                }
                reply(StatusCode::OK, "set")
            }
            "/login" => {
                s.regenerate().await?;
                let user = q
                    .iter()
                    .find(|(k, _)| k == "user")
                    .map(|(_, v)| v.clone())
                    .unwrap_or_default();
                s.insert("user", user).await?;
                reply(StatusCode::OK, "logged in")
            }
            "/logout" => {
                s.destroy().await?;
                reply(StatusCode::OK, "bye")
            }
            "/whoami" => {
                let user: Option<String> = s.get("user").await?;
                reply(StatusCode::OK, user.unwrap_or_else(|| "anonymous".into()))
            }
            "/explode" => {
                s.insert("should_not_persist", true).await?;
                reply(StatusCode::INTERNAL_SERVER_ERROR, "boom")
            }
            "/big" => {
                s.insert("big", "x".repeat(5000)).await?;
                reply(StatusCode::OK, "big")
            }
            "/commit-big" => {
                s.insert("big", "x".repeat(5000)).await?;
                match s.commit().await {
                    Ok(()) => reply(StatusCode::OK, "committed"),
                    Err(e) => {
                        // The app sees the error and puts the session back in a state that fits.
                        s.remove("big").await?;
                        reply(StatusCode::PAYLOAD_TOO_LARGE, format!("too big: {e}"))
                    }
                }
            }
            _ => reply(StatusCode::NOT_FOUND, "not found"),
        })
    }
    .await;
    Ok(r.unwrap_or_else(fail))
}

/// Serves the test app behind `layer` on a fresh loopback port.
pub async fn serve(layer: SessionLayer) -> String {
    listen(layer.wrap(hyper::service::service_fn(app))).await
}

/// Serves `service` over HTTP/1.1 on a fresh loopback port; its `http://` URL.
pub async fn listen<S>(service: S) -> String
where
    S: hyper::service::Service<
            Request<Incoming>,
            Response = Response<Full<Bytes>>,
            Error = Infallible,
        > + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                break;
            };
            let service = service.clone();
            tokio::spawn(async move {
                let io = hyper_util::rt::TokioIo::new(stream);
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(io, service)
                    .await;
            });
        }
    });
    format!("http://{addr}")
}

/// A browser-like client with a cookie jar.
pub fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

/// A client without a jar, to send exactly the cookies a test chooses.
pub fn raw() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

pub struct Reply {
    pub status: u16,
    pub set_cookies: Vec<String>,
    pub headers: reqwest::header::HeaderMap,
    pub body: String,
}

pub async fn get(client: &reqwest::Client, url: &str) -> Reply {
    send(client.get(url)).await
}

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

/// `name=value` of each Set-Cookie.
pub fn pairs(r: &Reply) -> Vec<String> {
    r.set_cookies
        .iter()
        .map(|c| c.split(';').next().unwrap().to_owned())
        .collect()
}

/// The value of cookie `name` in a reply's Set-Cookie headers.
pub fn cookie(r: &Reply, name: &str) -> Option<String> {
    pairs(r)
        .into_iter()
        .find_map(|p| p.strip_prefix(&format!("{name}=")).map(str::to_owned))
}

/// Everything tracing emits on this thread, as text.
#[derive(Clone, Default)]
pub struct Captured(pub Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }

    /// A subscriber that writes every event (TRACE and up) as text into this capture.
    pub fn subscriber(&self) -> impl tracing::Subscriber + Send + Sync + 'static {
        let writer = self.clone();
        tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .finish()
    }
}

/// Runs `f` on a current-thread runtime with every tracing event (TRACE and up) captured, then
/// checks the capture holds none of the secrets the test saw: the keys, and every cookie value
/// and id that crossed the wire (collected by the test into `secrets`).
pub fn with_capture<F, Fut>(f: F) -> String
where
    F: FnOnce(Secrets) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let captured = Captured::default();
    let _guard = tracing::subscriber::set_default(captured.subscriber());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let secrets = Secrets::default();
    rt.block_on(f(secrets.clone()));
    let log = captured.text();
    for key in [KEY1, KEY2] {
        assert!(
            !log.contains(std::str::from_utf8(key).unwrap()),
            "a key was logged"
        );
    }
    for s in secrets.0.lock().unwrap().iter() {
        assert!(
            !log.contains(s.as_str()),
            "a session secret was logged: {log}"
        );
    }
    log
}

/// Secrets seen by a test, checked against the tracing capture.
#[derive(Clone, Default)]
pub struct Secrets(pub Arc<Mutex<Vec<String>>>);

impl Secrets {
    /// Records every non-trivial cookie value of a reply.
    pub fn note(&self, r: &Reply) {
        for p in pairs(r) {
            if let Some((_, v)) = p.split_once('=')
                && v.len() >= 8
            {
                self.0.lock().unwrap().push(v.to_owned());
            }
        }
    }
}

pub async fn body_of(res: Response<Full<Bytes>>) -> Bytes {
    res.into_body().collect().await.unwrap().to_bytes()
}
