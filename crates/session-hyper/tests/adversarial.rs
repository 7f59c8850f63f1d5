//! The attack suite: the promises of the guide's `docs/promises.md`, tried the way an attacker
//! or a busy browser would, over real TCP against a real server, on the memory store and on
//! Redis.
//!
//! Each attack counts what went wrong over its iterations and asserts zero. Cookies are kept by
//! hand (no client jar) so a test sends exactly what it means to, planted cookies included.
//! Everything the library logs during the suite is captured and checked for the secrets and
//! session data the tests used.
//!
//! The Redis half needs `--features redis-tests` and `REDIS_URL` (`cargo xtask ci` and
//! `cargo xtask test-redis` start a server and set both).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod support;

use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{Value, json};
use session_core::driver::SessionId;
use session_core::store::{
    Change, Created, Destroyed, Loaded, Meta, Record, Store, StoreError, StoreKey, Supersede,
    Updated,
};
use session_core::{Config, ConfigBuilder, MaxAge};
use session_hyper::{Session, SessionLayer};
use session_store_memory::MemoryStore;
use support::Captured;
use tokio::sync::Notify;

const KEY: &[u8] = b"adversarial suite key, 32+ bytes";
const NAME: &str = "koa.sess";
const SIG: &str = "koa.sess.sig";
/// The stores' record limit (their default).
const LIMIT: usize = 64 * 1024;

// ---------------------------------------------------------------------------------------------
// Log capture: one global subscriber for the whole binary (tests run on several threads).

fn capture() -> &'static Captured {
    static CAPTURE: OnceLock<Captured> = OnceLock::new();
    CAPTURE.get_or_init(|| {
        let captured = Captured::default();
        let _ = tracing::subscriber::set_global_default(captured.subscriber());
        captured
    })
}

/// Secrets and data a test saw: none may appear in anything the library logged.
#[derive(Clone, Default)]
struct Secrets(Arc<Mutex<Vec<String>>>);

impl Secrets {
    fn add(&self, s: impl Into<String>) {
        let s = s.into();
        if s.len() >= 8 {
            self.0.lock().unwrap().push(s);
        }
    }
    fn note(&self, r: &Reply) {
        for (_, v) in r.cookies() {
            self.add(v);
        }
    }
    fn check(&self) {
        let log = capture().text();
        assert!(
            !log.contains(std::str::from_utf8(KEY).unwrap()),
            "the key was logged"
        );
        for s in self.0.lock().unwrap().iter() {
            assert!(!log.contains(s.as_str()), "a secret was logged: {s}");
        }
    }
}

/// Runs an attack on a multi-threaded runtime with a time bound, then checks the log.
fn attack<F, Fut>(f: F)
where
    F: FnOnce(Secrets) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    capture();
    let secrets = Secrets::default();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        tokio::time::timeout(Duration::from_secs(240), f(secrets.clone()))
            .await
            .expect("attack took longer than its bound")
    });
    secrets.check();
}

/// A value unique to this run, so the log check can't be fooled by a coincidence.
fn unique(label: &str) -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{label}-{nanos}-{}", N.fetch_add(1, Ordering::Relaxed))
}

// ---------------------------------------------------------------------------------------------
// The stores, behind a wrapper that remembers every key a record was created under.

#[derive(Clone)]
struct Recorder<S> {
    inner: S,
    created: Arc<Mutex<Vec<StoreKey>>>,
    /// When armed, the next supersede waits here (between a regenerate's create and its
    /// supersede), so a test can put another request exactly there.
    pause: Arc<Pause>,
}

#[derive(Default)]
struct Pause {
    armed: AtomicBool,
    arrived: Notify,
    release: Notify,
    /// One-shot faults: the next create stalls after it landed, the next supersede fails or
    /// stalls before it reaches the store.
    stall_after_create: AtomicBool,
    fail_supersede: AtomicBool,
    stall_supersede: AtomicBool,
    /// Every destroy fails while set.
    fail_destroy: AtomicBool,
    /// Loads and destroys that reached the wrapper.
    loads: AtomicUsize,
    destroys: AtomicUsize,
}

/// How long a stalled store call takes: longer than the faulty app's store time limit.
const STALL: Duration = Duration::from_millis(500);

impl<S: Store + Clone> Recorder<S> {
    fn new(inner: S) -> Self {
        Self {
            inner,
            created: Arc::default(),
            pause: Arc::default(),
        }
    }
    fn take_created(&self) -> Vec<StoreKey> {
        std::mem::take(&mut *self.created.lock().unwrap())
    }
}

impl<S: Store> Store for Recorder<S> {
    async fn create(&self, k: &StoreKey, r: &Record, ttl: Duration) -> Result<Created, StoreError> {
        let got = self.inner.create(k, r, ttl).await;
        if matches!(got, Ok(Created::Inserted)) {
            self.created.lock().unwrap().push(k.clone());
        }
        if self.pause.stall_after_create.swap(false, Ordering::SeqCst) {
            tokio::time::sleep(STALL).await;
        }
        got
    }
    async fn load(&self, k: &StoreKey) -> Result<Loaded, StoreError> {
        self.pause.loads.fetch_add(1, Ordering::SeqCst);
        self.inner.load(k).await
    }
    async fn save(
        &self,
        k: &StoreKey,
        c: Change<'_>,
        ttl: Duration,
    ) -> Result<Updated, StoreError> {
        self.inner.save(k, c, ttl).await
    }
    async fn destroy(&self, k: &StoreKey) -> Result<Destroyed, StoreError> {
        self.pause.destroys.fetch_add(1, Ordering::SeqCst);
        if self.pause.fail_destroy.load(Ordering::SeqCst) {
            return Err(StoreError::Unavailable("injected".into()));
        }
        self.inner.destroy(k).await
    }
    async fn supersede(
        &self,
        k: &StoreKey,
        next: &StoreKey,
        ttl: Duration,
    ) -> Result<Supersede, StoreError> {
        if self.pause.armed.swap(false, Ordering::SeqCst) {
            self.pause.arrived.notify_one();
            self.pause.release.notified().await;
        }
        if self.pause.fail_supersede.swap(false, Ordering::SeqCst) {
            return Err(StoreError::Unavailable("injected".into()));
        }
        if self.pause.stall_supersede.swap(false, Ordering::SeqCst) {
            tokio::time::sleep(STALL).await;
        }
        self.inner.supersede(k, next, ttl).await
    }
    async fn touch(&self, k: &StoreKey, m: Meta, ttl: Duration) -> Result<Updated, StoreError> {
        self.inner.touch(k, m, ttl).await
    }
    fn merges_deltas(&self) -> bool {
        self.inner.merges_deltas()
    }
}

/// A store an attack runs against.
#[derive(Clone)]
enum Backend {
    Memory(Recorder<MemoryStore>),
    #[cfg_attr(not(feature = "redis-tests"), allow(dead_code))]
    Redis(Recorder<session_store_redis::RedisStore>, String),
}

impl Backend {
    fn memory() -> Backend {
        Backend::Memory(Recorder::new(MemoryStore::new()))
    }

    #[cfg(feature = "redis-tests")]
    async fn redis(format: session_store_redis::Format) -> Backend {
        Self::redis_with(format, 0).await
    }

    /// Redis with a client cache of `cache` bytes (0: none).
    #[cfg(feature = "redis-tests")]
    async fn redis_with(format: session_store_redis::Format, cache: usize) -> Backend {
        let url = std::env::var("REDIS_URL")
            .expect("REDIS_URL: run with `cargo xtask test-redis`, which starts a redis-server");
        let prefix = format!("{}:", unique("attack"));
        let store = session_store_redis::RedisStore::builder(url)
            .prefix(prefix.clone())
            .format(format)
            .client_cache(cache)
            .build()
            .await
            .unwrap();
        Backend::Redis(Recorder::new(store), prefix)
    }

    fn name(&self) -> &'static str {
        match self {
            Backend::Memory(_) => "memory",
            Backend::Redis(..) => "redis",
        }
    }

    fn take_created(&self) -> Vec<StoreKey> {
        match self {
            Backend::Memory(s) => s.take_created(),
            Backend::Redis(s, _) => s.take_created(),
        }
    }

    fn pause(&self) -> &Pause {
        match self {
            Backend::Memory(s) => &s.pause,
            Backend::Redis(s, _) => &s.pause,
        }
    }

    async fn load(&self, k: &StoreKey) -> Result<Loaded, StoreError> {
        match self {
            Backend::Memory(s) => s.load(k).await,
            Backend::Redis(s, _) => s.load(k).await,
        }
    }

    fn layer(&self, config: Config) -> session_hyper::SessionLayerBuilder {
        match self {
            Backend::Memory(s) => SessionLayer::store(config, s.clone()),
            Backend::Redis(s, _) => SessionLayer::store(config, s.clone()),
        }
    }

    /// Panics if a record created during the test (and still live) holds `needle`.
    async fn assert_no_live_record_holds(&self, needle: &str, context: &str) -> usize {
        let mut live = 0;
        for k in self.take_created() {
            if let Loaded::Live(r) = self.load(&k).await.unwrap() {
                live += 1;
                let text = Value::Object(r.data).to_string();
                assert!(
                    !text.contains(needle),
                    "{context}: a live record still holds the destroyed data"
                );
            }
        }
        live
    }
}

#[cfg(feature = "redis-tests")]
mod raw {
    //! Plain Redis commands, to look at and tamper with what the store wrote.
    pub async fn cmd(args: &[&str]) -> redis::Value {
        let url = std::env::var("REDIS_URL").unwrap();
        let client = redis::Client::open(url).unwrap();
        let mut c = client.get_multiplexed_async_connection().await.unwrap();
        let mut command = redis::cmd(args[0]);
        for a in &args[1..] {
            command.arg(*a);
        }
        command.query_async(&mut c).await.unwrap()
    }

    pub async fn keys(prefix: &str) -> Vec<String> {
        match cmd(&["KEYS", &format!("{prefix}*")]).await {
            redis::Value::Array(v) => v
                .into_iter()
                .filter_map(|k| match k {
                    redis::Value::BulkString(b) => String::from_utf8(b).ok(),
                    _ => None,
                })
                .collect(),
            other => panic!("KEYS: {other:?}"),
        }
    }

    pub async fn int(args: &[&str]) -> i64 {
        match cmd(args).await {
            redis::Value::Int(n) => n,
            other => panic!("{args:?}: {other:?}"),
        }
    }

    /// Every key under `prefix` has a TTL (none is -1); how many there are.
    pub async fn assert_every_key_has_a_ttl(prefix: &str) -> usize {
        let keys = keys(prefix).await;
        for k in &keys {
            let pttl = int(&["PTTL", k]).await;
            assert!(pttl > 0 || pttl == -2, "a key without a TTL (PTTL {pttl})");
        }
        keys.len()
    }
}

// ---------------------------------------------------------------------------------------------
// The app: the demo's routes, plus a gated one to hold a request between load and commit.

#[derive(Default)]
struct Gate {
    arrived: Notify,
    release: Notify,
}

fn reply(status: StatusCode, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    r
}

async fn route(req: Request<Incoming>, gate: Arc<Gate>) -> Response<Full<Bytes>> {
    let session = Session::from_request(&req).unwrap();
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let res = async {
        Ok::<_, session_hyper::Error>(match (method, path.as_str()) {
            (Method::GET, "/") => {
                let n: u64 = session.get("views").await?.unwrap_or(0) + 1;
                session.insert("views", n).await?;
                reply(StatusCode::OK, format!("{n} views"))
            }
            (Method::GET, "/gated") => {
                let n: u64 = session.get("views").await?.unwrap_or(0) + 1;
                gate.arrived.notify_one();
                gate.release.notified().await;
                session.insert("views", n).await?;
                reply(StatusCode::OK, format!("{n} views"))
            }
            (Method::GET, "/gated-read") => {
                let data = session.data().await?;
                gate.arrived.notify_one();
                gate.release.notified().await;
                reply(StatusCode::OK, Value::Object(data).to_string())
            }
            (Method::GET, "/session") => {
                let data = session.data().await?;
                let mut r = reply(StatusCode::OK, Value::Object(data).to_string());
                let new = if session.is_new().await? {
                    "true"
                } else {
                    "false"
                };
                r.headers_mut().insert(
                    "x-session-new",
                    hyper::header::HeaderValue::from_static(new),
                );
                r
            }
            (Method::PUT, "/session") => {
                let body = Limited::new(req.into_body(), 1 << 20)
                    .collect()
                    .await
                    .map(|b| b.to_bytes())
                    .unwrap_or_default();
                let Ok(Value::Object(obj)) = serde_json::from_slice::<Value>(&body) else {
                    return Ok(reply(StatusCode::BAD_REQUEST, "expected a JSON object"));
                };
                for (k, v) in obj {
                    if v.is_null() {
                        session.remove(&k).await?;
                    } else {
                        session.insert(&k, v).await?;
                    }
                }
                reply(StatusCode::NO_CONTENT, "")
            }
            (Method::DELETE, "/session") => {
                session.destroy().await?;
                reply(StatusCode::NO_CONTENT, "")
            }
            (Method::POST, "/session/regenerate") => {
                session.regenerate().await?;
                reply(StatusCode::NO_CONTENT, "")
            }
            (Method::POST, "/session/login") => {
                let user = Limited::new(req.into_body(), 1 << 10)
                    .collect()
                    .await
                    .map(|b| String::from_utf8_lossy(&b.to_bytes()).into_owned())
                    .unwrap_or_default();
                session.regenerate().await?;
                session.insert("user", user).await?;
                reply(StatusCode::NO_CONTENT, "")
            }
            (Method::POST, "/session/save") => {
                session.save().await?;
                reply(StatusCode::NO_CONTENT, "")
            }
            (Method::POST, "/session/regenerate-then-destroy") => {
                session.regenerate().await?;
                session.destroy().await?;
                reply(StatusCode::NO_CONTENT, "")
            }
            (Method::GET, "/typed") => {
                let n: Option<u64> = session.get("views").await?;
                reply(StatusCode::OK, format!("{n:?}"))
            }
            _ => reply(StatusCode::NOT_FOUND, ""),
        })
    }
    .await;
    res.unwrap_or_else(|e| e.response())
}

/// The demo's error policy: 413 for a session that outgrew a limit, else the default.
fn too_large_is_413(e: &session_hyper::Error) -> Response<Bytes> {
    let mut r = e.response();
    if e.is_too_large() {
        *r.status_mut() = StatusCode::PAYLOAD_TOO_LARGE;
    }
    r
}

struct App {
    url: String,
    gate: Arc<Gate>,
    /// One client per app: its pooled connections belong to this test's runtime.
    client: reqwest::Client,
}

async fn serve(layer: SessionLayer) -> App {
    let gate = Arc::new(Gate::default());
    let g = Arc::clone(&gate);
    let url = support::listen(layer.wrap(hyper::service::service_fn(move |req| {
        let g = Arc::clone(&g);
        async move { Ok::<_, Infallible>(route(req, g).await) }
    })))
    .await;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .pool_max_idle_per_host(64)
        .build()
        .unwrap();
    App { url, gate, client }
}

fn config(f: impl FnOnce(ConfigBuilder) -> ConfigBuilder) -> Config {
    f(Config::builder().key(KEY.to_vec())).build().unwrap()
}

async fn app(backend: &Backend, f: impl FnOnce(ConfigBuilder) -> ConfigBuilder) -> App {
    let layer = backend
        .layer(config(f))
        .on_error(too_large_is_413)
        .build()
        .unwrap();
    serve(layer).await
}

// ---------------------------------------------------------------------------------------------
// A client that sends exactly the cookies it is told to, and a browser-like cookie jar.

#[derive(Debug)]
struct Reply {
    status: u16,
    set_cookies: Vec<String>,
    new: Option<bool>,
    retry_after: bool,
    body: String,
}

impl Reply {
    /// `(name, value)` of each Set-Cookie.
    fn cookies(&self) -> Vec<(String, String)> {
        self.set_cookies
            .iter()
            .filter_map(|c| {
                let pair = c.split(';').next()?;
                let (n, v) = pair.split_once('=')?;
                Some((n.to_owned(), v.to_owned()))
            })
            .collect()
    }
    /// Whether it removes the session cookie (an empty value with Max-Age=0).
    fn removes(&self) -> bool {
        self.set_cookies.iter().any(|c| {
            c.contains("Max-Age=0")
                && (c.starts_with("koa.sess=;") || c.starts_with("koa.sess.sig=;"))
        })
    }
    /// The new session id it sets, if any.
    fn sets_id(&self) -> Option<String> {
        self.cookies()
            .into_iter()
            .find(|(n, v)| n == NAME && !v.is_empty())
            .map(|(_, v)| v)
    }
}

async fn send(rb: reqwest::RequestBuilder) -> Reply {
    let res = rb.send().await.unwrap();
    let status = res.status().as_u16();
    let set_cookies = res
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    let new = res
        .headers()
        .get("x-session-new")
        .map(|v| v.as_bytes() == b"true");
    let retry_after = res.headers().contains_key("retry-after");
    let body = res.text().await.unwrap();
    Reply {
        status,
        set_cookies,
        new,
        retry_after,
        body,
    }
}

/// A browser's cookies for the app: applied in the order responses arrive.
#[derive(Debug, Clone, Default, PartialEq)]
struct Jar(Vec<(String, String)>);

impl Jar {
    fn apply(&mut self, r: &Reply) {
        for (name, value) in r.cookies() {
            self.0.retain(|(n, _)| *n != name);
            if !value.is_empty() {
                self.0.push((name, value));
            }
        }
    }
    fn header(&self) -> String {
        self.0
            .iter()
            .map(|(n, v)| format!("{n}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }
    fn id(&self) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n == NAME)
            .map(|(_, v)| v.as_str())
    }
}

async fn req(app: &App, method: Method, path: &str, cookie: &str, body: Option<String>) -> Reply {
    send_with(
        &app.client,
        method,
        format!("{}{path}", app.url),
        cookie,
        body,
    )
    .await
}

async fn send_with(
    client: &reqwest::Client,
    method: Method,
    url: String,
    cookie: &str,
    body: Option<String>,
) -> Reply {
    let mut rb = client.request(method, url);
    if !cookie.is_empty() {
        rb = rb.header("cookie", cookie);
    }
    if let Some(b) = body {
        rb = rb.body(b);
    }
    send(rb).await
}

async fn get(app: &App, path: &str, jar: &Jar) -> Reply {
    req(app, Method::GET, path, &jar.header(), None).await
}

async fn put(app: &App, json: &Value, jar: &Jar) -> Reply {
    let body = Some(json.to_string());
    req(app, Method::PUT, "/session", &jar.header(), body).await
}

async fn regenerate(app: &App, jar: &Jar) -> Reply {
    req(
        app,
        Method::POST,
        "/session/regenerate",
        &jar.header(),
        None,
    )
    .await
}

async fn logout(app: &App, jar: &Jar) -> Reply {
    req(app, Method::DELETE, "/session", &jar.header(), None).await
}

/// A logged-in browser: a session holding `user`.
async fn logged_in(app: &App, user: &str, secrets: &Secrets) -> Jar {
    let mut jar = Jar::default();
    let r = put(app, &json!({ "user": user }), &jar).await;
    assert_eq!(r.status, 204, "{}", r.body);
    secrets.note(&r);
    jar.apply(&r);
    assert!(jar.id().is_some());
    jar
}

async fn backends() -> Vec<Backend> {
    #[allow(unused_mut)]
    let mut all = vec![Backend::memory()];
    #[cfg(feature = "redis-tests")]
    {
        all.push(Backend::redis(session_store_redis::Format::V1).await);
        all.push(Backend::redis(session_store_redis::Format::Koa).await);
        // The same attacks through the client cache: its copies must never serve what the
        // store would refuse (a destroyed, superseded or planted session).
        all.push(Backend::redis_with(session_store_redis::Format::V1, 1 << 20).await);
    }
    all
}

/// Which backend a message is about (the two Redis formats are told apart).
fn label(b: &Backend, i: usize) -> String {
    format!("{}#{i}", b.name())
}

// ---------------------------------------------------------------------------------------------
// 1. A logout is never undone by a concurrent regenerate (nor by a concurrent save).

const RACES: usize = 200;

#[test]
fn a_logout_is_never_undone_by_a_concurrent_regenerate() {
    attack(|secrets| async move {
        for (bi, backend) in backends().await.into_iter().enumerate() {
            let app = app(&backend, |b| b).await;
            let user = unique("ada");
            secrets.add(&user);
            let (mut undone, mut regen_lost, mut regen_won) = (0, 0, 0);
            for _ in 0..RACES {
                let jar = logged_in(&app, &user, &secrets).await;
                let (r, d) = tokio::join!(regenerate(&app, &jar), logout(&app, &jar));
                secrets.note(&r);
                assert_eq!((r.status, d.status), (204, 204), "{} {}", r.body, d.body);
                assert!(d.removes(), "the logout removes the cookies");
                match r.sets_id() {
                    Some(_) => {
                        regen_won += 1;
                        let mut after = jar.clone();
                        after.apply(&r);
                        let s = get(&app, "/session", &after).await;
                        if s.body.contains(&user) {
                            undone += 1;
                        }
                    }
                    None => {
                        regen_lost += 1;
                        assert!(r.removes(), "a regenerate that lost ends as a destroy");
                    }
                }
                // Whatever the order, no record anywhere still holds the user.
                backend
                    .assert_no_live_record_holds(&user, &label(&backend, bi))
                    .await;
            }
            eprintln!(
                "{}: {RACES} regenerate/destroy races: {regen_lost} regenerates ended as a destroy, \
                 {regen_won} destroys followed the marker; logouts undone: {undone}",
                label(&backend, bi)
            );
            assert_eq!(undone, 0, "{}: logouts undone", label(&backend, bi));
            #[cfg(feature = "redis-tests")]
            if let Backend::Redis(_, prefix) = &backend {
                raw::assert_every_key_has_a_ttl(prefix).await;
            }
        }
    });
}

#[test]
fn regenerate_destroy_and_save_triples_never_revive_the_session() {
    attack(|secrets| async move {
        for (bi, backend) in backends().await.into_iter().enumerate() {
            let app = app(&backend, |b| b).await;
            let user = unique("bob");
            secrets.add(&user);
            let mut revived = 0;
            for i in 0..RACES {
                let jar = logged_in(&app, &user, &secrets).await;
                let cart = json!({ "cart": i });
                let (r, d, s) = tokio::join!(
                    regenerate(&app, &jar),
                    logout(&app, &jar),
                    put(&app, &cart, &jar),
                );
                for reply in [&r, &d, &s] {
                    secrets.note(reply);
                    assert!(reply.status < 500, "{reply:?}");
                }
                // Every cookie any of the three handed out leads nowhere.
                for reply in [&r, &s] {
                    if reply.sets_id().is_some() {
                        let mut after = jar.clone();
                        after.apply(reply);
                        if get(&app, "/session", &after).await.body.contains(&user) {
                            revived += 1;
                        }
                    }
                }
                backend
                    .assert_no_live_record_holds(&user, &label(&backend, bi))
                    .await;
            }
            eprintln!(
                "{}: {RACES} regenerate/destroy/save triples: sessions revived: {revived}",
                label(&backend, bi)
            );
            assert_eq!(revived, 0);
        }
    });
}

/// Two regenerates, a save and a view racing a logout, under each option that changes what a
/// commit writes (rolling, renew, guest): whatever order the browser applies the five answers
/// in, none leads back to the session, and no live record keeps its data.
#[test]
fn two_regenerates_a_save_and_a_view_racing_a_logout_never_revive_it() {
    attack(|secrets| async move {
        let (mut revived, mut failed) = (0, 0);
        for mode in ["default", "rolling", "renew", "guest"] {
            for (bi, backend) in backends().await.into_iter().enumerate() {
                let app = app(&backend, |b| match mode {
                    "rolling" => b.rolling(true),
                    "renew" => b.renew(true),
                    "guest" => b.guest(true),
                    _ => b,
                })
                .await;
                let user = unique("nick");
                secrets.add(&user);
                for i in 0..RACES / 4 {
                    let jar = logged_in(&app, &user, &secrets).await;
                    let cart = json!({ "cart": i });
                    let (r1, r2, d, s, g) = tokio::join!(
                        regenerate(&app, &jar),
                        regenerate(&app, &jar),
                        logout(&app, &jar),
                        put(&app, &cart, &jar),
                        get(&app, "/", &jar),
                    );
                    let all = [&r1, &r2, &d, &s, &g];
                    for reply in all {
                        secrets.note(reply);
                        failed += usize::from(reply.status >= 500);
                    }
                    // Each answer alone, and all five in the order they were sent.
                    let mut orders: Vec<Vec<&Reply>> = all.iter().map(|r| vec![*r]).collect();
                    orders.push(all.to_vec());
                    for order in orders {
                        let mut after = jar.clone();
                        for reply in order {
                            after.apply(reply);
                        }
                        revived +=
                            usize::from(get(&app, "/session", &after).await.body.contains(&user));
                    }
                    backend
                        .assert_no_live_record_holds(&user, &label(&backend, bi))
                        .await;
                }
                #[cfg(feature = "redis-tests")]
                if let Backend::Redis(_, prefix) = &backend {
                    raw::assert_every_key_has_a_ttl(prefix).await;
                }
            }
        }
        eprintln!(
            "{} five-way races per backend over 4 modes: revived {revived}, 5xx {failed}",
            RACES
        );
        assert_eq!((revived, failed), (0, 0));
    });
}

/// A logout carrying an id that regenerates have moved on from (one login, or up to 8
/// regenerates within the grace time: the chain a destroy follows) ends the newest session.
#[test]
fn a_logout_carrying_the_old_id_ends_the_new_session() {
    attack(|secrets| async move {
        for backend in backends().await {
            let app = app(&backend, |b| b).await;
            for hops in 1..=8 {
                let user = unique("carol");
                secrets.add(&user);
                let old = logged_in(&app, &user, &secrets).await;
                let mut new = old.clone();
                for _ in 0..hops {
                    let r = regenerate(&app, &new).await;
                    secrets.note(&r);
                    new.apply(&r);
                }
                assert_ne!(new.id(), old.id());
                assert!(get(&app, "/session", &new).await.body.contains(&user));
                // A logout tab that still had the old cookie.
                let d = logout(&app, &old).await;
                assert!(d.removes());
                let s = get(&app, "/session", &new).await;
                assert_eq!(
                    s.new,
                    Some(true),
                    "{}: after {hops} regenerates the new session must be over",
                    backend.name()
                );
                assert!(!s.body.contains(&user));
                backend
                    .assert_no_live_record_holds(&user, backend.name())
                    .await;
            }
        }
    });
}

// ---------------------------------------------------------------------------------------------
// 2. Requests around a login keep the user logged in.

#[test]
fn requests_carrying_a_superseded_id_leave_the_cookies_alone() {
    attack(|secrets| async move {
        for rolling in [false, true] {
            for backend in backends().await {
                let app = app(&backend, |b| b.rolling(rolling)).await;
                let user = unique("dave");
                secrets.add(&user);
                let old = logged_in(&app, &user, &secrets).await;
                let mut new = old.clone();
                let r = regenerate(&app, &old).await;
                secrets.note(&r);
                new.apply(&r);
                // Parallel requests that still carry the old cookie: reads, writes, a
                // regenerate-free save; none may touch the browser's cookies.
                for _ in 0..5 {
                    for reply in [
                        get(&app, "/session", &old).await,
                        get(&app, "/", &old).await,
                        put(&app, &json!({"theme": "dark"}), &old).await,
                    ] {
                        assert!(
                            reply.set_cookies.is_empty(),
                            "{} rolling={rolling}: a stale request set {:?}",
                            backend.name(),
                            reply.set_cookies
                        );
                        assert!(!reply.body.contains(&user), "the old id reached the data");
                    }
                }
                // The new session is intact and untouched by the stale writes.
                let s = get(&app, "/session", &new).await;
                assert_eq!(s.new, Some(false));
                let data: Value = serde_json::from_str(&s.body).unwrap();
                assert_eq!(data, json!({ "user": user }));
            }
        }
    });
}

/// A request that loaded the session before a login finished and answers after it: whatever it
/// would send (a save, a rolling extension, a re-signed cookie after key rotation), it sends no
/// cookie, so it can't put the pre-login cookie back after the login's.
/// What a request carrying a superseded id may still do: `save()` writes nothing, a fresh
/// login starts a session of its own without the first user's data (and leaves their new
/// session alone), and a regenerate then destroy in one request is a logout.
#[test]
fn a_superseded_id_can_log_in_afresh_but_never_reach_the_old_data() {
    attack(|secrets| async move {
        for (bi, backend) in backends().await.into_iter().enumerate() {
            let what = label(&backend, bi);
            let app = app(&backend, |b| b).await;
            for _ in 0..20 {
                let user = unique("olga");
                secrets.add(&user);
                let old = logged_in(&app, &user, &secrets).await;
                let r = regenerate(&app, &old).await;
                secrets.note(&r);
                let mut new = old.clone();
                new.apply(&r);
                let s = req(&app, Method::POST, "/session/save", &old.header(), None).await;
                assert!(s.set_cookies.is_empty(), "{what}: {:?}", s.set_cookies);
                let other = unique("mallory");
                secrets.add(&other);
                let body = Some(other.clone());
                let l = req(&app, Method::POST, "/session/login", &old.header(), body).await;
                secrets.note(&l);
                assert_eq!(l.status, 204, "{what}");
                let mut fresh = old.clone();
                fresh.apply(&l);
                let seen = get(&app, "/session", &fresh).await.body;
                assert!(
                    seen.contains(&other),
                    "{what}: the fresh login holds its user"
                );
                assert!(
                    !seen.contains(&user),
                    "{what}: the fresh login reached the old data"
                );
                let kept = get(&app, "/session", &new).await.body;
                assert!(
                    kept.contains(&user),
                    "{what}: the first user's new session lives on"
                );
                let j = logged_in(&app, &user, &secrets).await;
                let path = "/session/regenerate-then-destroy";
                let x = req(&app, Method::POST, path, &j.header(), None).await;
                assert!(x.removes(), "{what}");
                assert!(!get(&app, "/session", &j).await.body.contains(&user));
                // What is left is the session the first regenerate made, and the fresh login.
                assert!(logout(&app, &new).await.removes());
                assert!(logout(&app, &fresh).await.removes());
                backend.assert_no_live_record_holds(&user, &what).await;
            }
        }
    });
}

#[test]
fn a_request_in_flight_during_a_login_sends_no_cookie() {
    const OLD_KEY: &[u8] = b"the key before rotation, 32 byte";
    attack(|secrets| async move {
        // (route, rolling, cookie signed with an older key)
        let cases = [
            ("/gated", false, false),
            ("/gated", true, false),
            ("/gated-read", true, false),
            ("/gated-read", false, true),
            ("/gated", false, true),
        ];
        for (path, rolling, rotated) in cases {
            for backend in backends().await {
                let what = format!(
                    "{} {path} rolling={rolling} rotated={rotated}",
                    backend.name()
                );
                let app = if rotated {
                    // Sessions made under the old key, read by an app that rotated to a new one.
                    let before = serve(
                        backend
                            .layer(Config::builder().key(OLD_KEY.to_vec()).build().unwrap())
                            .build()
                            .unwrap(),
                    )
                    .await;
                    let after = serve(
                        backend
                            .layer(
                                Config::builder()
                                    .keys([KEY.to_vec(), OLD_KEY.to_vec()])
                                    .rolling(rolling)
                                    .build()
                                    .unwrap(),
                            )
                            .build()
                            .unwrap(),
                    )
                    .await;
                    (before, after)
                } else {
                    let a = app(&backend, |b| b.rolling(rolling)).await;
                    let b = App {
                        url: a.url.clone(),
                        gate: Arc::clone(&a.gate),
                        client: a.client.clone(),
                    };
                    (a, b)
                };
                let (first, app) = app;
                let user = unique("erin");
                secrets.add(&user);
                let old = logged_in(&first, &user, &secrets).await;
                // A request loads the session with the old id and is held before its commit...
                let held = tokio::spawn({
                    let (client, url, cookie) = (app.client.clone(), app.url.clone(), old.header());
                    async move {
                        send_with(&client, Method::GET, format!("{url}{path}"), &cookie, None).await
                    }
                });
                app.gate.arrived.notified().await;
                // ...while the login completes.
                let mut new = old.clone();
                let r = regenerate(&app, &old).await;
                secrets.note(&r);
                new.apply(&r);
                assert!(r.sets_id().is_some(), "{what}");
                app.gate.release.notify_one();
                let held = held.await.unwrap();
                assert_eq!(held.status, 200, "{what}");
                assert!(
                    held.set_cookies.is_empty(),
                    "{what}: the held request must send no cookie: {:?}",
                    held.set_cookies
                );
                // In the browser the login's cookie stays, and the session is intact.
                let mut browser = old.clone();
                browser.apply(&r);
                browser.apply(&held);
                let s = get(&app, "/session", &browser).await;
                let data: Value = serde_json::from_str(&s.body).unwrap();
                assert_eq!(data, json!({ "user": user }), "{what}");
            }
        }
    });
}

/// A regenerate in a task of its own (to be held by the store's pause).
fn spawn_regenerate(app: &App, jar: &Jar) -> tokio::task::JoinHandle<Reply> {
    let (client, url, cookie) = (app.client.clone(), app.url.clone(), jar.header());
    tokio::spawn(async move {
        send_with(
            &client,
            Method::POST,
            format!("{url}/session/regenerate"),
            &cookie,
            None,
        )
        .await
    })
}

/// A regenerate that fails after its create (the create times out after landing, the
/// supersede fails or stalls, the destroy after losing to a logout fails) answers 503 and leaves
/// no live copy of the session's data behind: the record nobody got the id of is deleted.
#[test]
fn a_failed_regenerate_leaves_no_copy_of_the_data() {
    attack(|secrets| async move {
        let faults = [
            "create stalls",
            "supersede fails",
            "supersede stalls",
            "destroy fails",
        ];
        let (mut answered, mut left) = (0, 0);
        for (bi, backend) in backends().await.into_iter().enumerate() {
            let layer = backend
                .layer(config(|b| b))
                .store_timeout(Duration::from_millis(100))
                .build()
                .unwrap();
            let app = serve(layer).await;
            for i in 0..40 {
                let fault = faults[i % faults.len()];
                let user = unique("mia");
                secrets.add(&user);
                let jar = logged_in(&app, &user, &secrets).await;
                backend.take_created();
                let p = backend.pause();
                let r = match fault {
                    "create stalls" => {
                        p.stall_after_create.store(true, Ordering::SeqCst);
                        regenerate(&app, &jar).await
                    }
                    "supersede fails" => {
                        p.fail_supersede.store(true, Ordering::SeqCst);
                        regenerate(&app, &jar).await
                    }
                    "supersede stalls" => {
                        p.stall_supersede.store(true, Ordering::SeqCst);
                        regenerate(&app, &jar).await
                    }
                    _ => {
                        // The regenerate loses to a logout, then can't delete its record.
                        p.armed.store(true, Ordering::SeqCst);
                        let held = spawn_regenerate(&app, &jar);
                        p.arrived.notified().await;
                        assert!(logout(&app, &jar).await.removes());
                        p.fail_destroy.store(true, Ordering::SeqCst);
                        p.release.notify_one();
                        let r = held.await.unwrap();
                        p.fail_destroy.store(false, Ordering::SeqCst);
                        r
                    }
                };
                secrets.note(&r);
                answered += usize::from(r.status != 503 || r.sets_id().is_some());
                let keys = backend.take_created();
                let deadline = Instant::now() + Duration::from_secs(3);
                loop {
                    let mut live = 0;
                    for k in &keys {
                        if let Ok(Loaded::Live(rec)) = backend.load(k).await {
                            live +=
                                usize::from(Value::Object(rec.data).to_string().contains(&user));
                        }
                    }
                    if live == 0 {
                        break;
                    }
                    if Instant::now() > deadline {
                        eprintln!("{} / {fault}: {live} live copies left", label(&backend, bi));
                        left += 1;
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
        eprintln!(
            "failed regenerates: answered other than 503 without a cookie {answered}, left a live copy {left}"
        );
        assert_eq!((answered, left), (0, 0));
    });
}

/// The two orders of a regenerate racing a logout, and of two regenerates, forced on every
/// backend (the regenerate is held between its create and its supersede).
#[test]
fn forced_orders_of_regenerate_races() {
    attack(|secrets| async move {
        for backend in backends().await {
            let app = app(&backend, |b| b).await;
            let user = unique("ivan");
            secrets.add(&user);
            // A logout lands between the regenerate's create and its supersede: the regenerate
            // ends as a logout.
            let jar = logged_in(&app, &user, &secrets).await;
            backend.pause().armed.store(true, Ordering::SeqCst);
            let held = spawn_regenerate(&app, &jar);
            backend.pause().arrived.notified().await;
            let d = logout(&app, &jar).await;
            assert!(d.removes());
            backend.pause().release.notify_one();
            let r = held.await.unwrap();
            assert!(
                r.sets_id().is_none() && r.removes(),
                "{}: {:?}",
                backend.name(),
                r
            );
            assert_eq!(
                backend
                    .assert_no_live_record_holds(&user, backend.name())
                    .await,
                0,
                "{}: nothing may stay",
                backend.name()
            );
            // Two regenerates (a double-submitted login form): the first to end the old id
            // wins; the other drops its record and sends no cookie at all.
            let jar = logged_in(&app, &user, &secrets).await;
            backend.take_created();
            backend.pause().armed.store(true, Ordering::SeqCst);
            let held = spawn_regenerate(&app, &jar);
            backend.pause().arrived.notified().await;
            let first = regenerate(&app, &jar).await;
            secrets.note(&first);
            assert!(first.sets_id().is_some());
            backend.pause().release.notify_one();
            let second = held.await.unwrap();
            assert!(
                second.set_cookies.is_empty(),
                "{}: the losing regenerate sends nothing: {:?}",
                backend.name(),
                second.set_cookies
            );
            let mut browser = jar.clone();
            browser.apply(&first);
            browser.apply(&second);
            assert!(get(&app, "/session", &browser).await.body.contains(&user));
            // Exactly one live record: the winner's.
            let live = backend
                .assert_no_live_record_holds("\u{0}", backend.name())
                .await;
            assert_eq!(
                live,
                1,
                "{}: the loser's record must be gone",
                backend.name()
            );
        }
    });
}

#[test]
fn parallel_requests_around_a_login_never_log_the_user_out() {
    attack(|secrets| async move {
        for (bi, backend) in backends().await.into_iter().enumerate() {
            let app = app(&backend, |b| b).await;
            let user = unique("frank");
            secrets.add(&user);
            let (mut removals, mut logged_out) = (0, 0);
            for _ in 0..RACES {
                let old = logged_in(&app, &user, &secrets).await;
                let (r, a, b, c) = tokio::join!(
                    regenerate(&app, &old),
                    get(&app, "/session", &old),
                    get(&app, "/session", &old),
                    get(&app, "/session", &old),
                );
                secrets.note(&r);
                // The worst order for the browser: the login's answer first, then the others.
                let mut browser = old.clone();
                for reply in [&r, &a, &b, &c] {
                    browser.apply(reply);
                }
                for reply in [&a, &b, &c] {
                    removals += usize::from(reply.removes());
                }
                if !get(&app, "/session", &browser).await.body.contains(&user) {
                    logged_out += 1;
                }
            }
            eprintln!(
                "{}: {RACES} logins with 3 parallel requests each: removal cookies {removals}, \
                 users logged out {logged_out}",
                label(&backend, bi)
            );
            assert_eq!((removals, logged_out), (0, 0));
        }
    });
}

// ---------------------------------------------------------------------------------------------
// 3 and 4. Records stay within their limit; thousands of keys work; every key has a TTL.

#[test]
fn a_session_never_outgrows_the_record_limit() {
    attack(|secrets| async move {
        for (bi, backend) in backends().await.into_iter().enumerate() {
            let app = app(&backend, |b| b).await;
            let mut jar = Jar::default();
            let chunk = "x".repeat(60 * 1024);
            let mut statuses = Vec::new();
            for i in 0..20 {
                let r = put(&app, &json!({ format!("k{i}"): chunk }), &jar).await;
                secrets.note(&r);
                if r.status == 204 {
                    jar.apply(&r);
                } else {
                    assert!(r.set_cookies.is_empty(), "a refused write sets no cookie");
                }
                statuses.push(r.status);
            }
            let accepted = statuses.iter().filter(|s| **s == 204).count();
            eprintln!(
                "{}: 20 PUTs of 60 KB: {accepted} accepted, the rest {:?}",
                label(&backend, bi),
                statuses.iter().filter(|s| **s != 204).collect::<Vec<_>>()
            );
            assert_eq!(accepted, 1, "{}: {statuses:?}", label(&backend, bi));
            assert!(statuses[1..].iter().all(|s| *s == 413));
            // The session is intact: the one accepted key, and no more.
            let s = get(&app, "/session", &jar).await;
            assert!(
                s.body.len() <= LIMIT + 64,
                "record of {} bytes",
                s.body.len()
            );
            let data: Value = serde_json::from_str(&s.body).unwrap();
            assert_eq!(data.as_object().unwrap().len(), 1);
            #[cfg(feature = "redis-tests")]
            if let Backend::Redis(_, prefix) = &backend {
                for k in raw::keys(prefix).await {
                    let bytes = raw::int(&["MEMORY", "USAGE", &k]).await;
                    assert!(bytes < 2 * LIMIT as i64, "a Redis record of {bytes} bytes");
                }
                raw::assert_every_key_has_a_ttl(prefix).await;
            }
        }
        // Without an error hook the default is 500, and nothing is written either.
        let backend = Backend::memory();
        let app = serve(backend.layer(config(|b| b)).build().unwrap()).await;
        let r = put(
            &app,
            &json!({ "big": "y".repeat(LIMIT + 1) }),
            &Jar::default(),
        )
        .await;
        assert_eq!(r.status, 500);
        assert!(r.set_cookies.is_empty());
        assert!(backend.take_created().is_empty());
    });
}

/// Key names count toward the limit as values do: one 60 KB name fits, a 70 KB one doesn't,
/// and two 40 KB names in two requests don't. A value nested as deep as the JSON parser reads
/// comes back as it went in.
#[test]
fn huge_key_names_count_and_deep_values_come_back() {
    attack(|secrets| async move {
        for (bi, backend) in backends().await.into_iter().enumerate() {
            let what = label(&backend, bi);
            let app = app(&backend, |b| b).await;
            for i in 0..10 {
                let r = put(
                    &app,
                    &json!({ format!("{i}{}", "k".repeat(60 << 10)): 1 }),
                    &Jar::default(),
                )
                .await;
                secrets.note(&r);
                assert_eq!(r.status, 204, "{what}: a 60 KB key name fits");
                let r = put(
                    &app,
                    &json!({ format!("{i}{}", "k".repeat(70 << 10)): 1 }),
                    &Jar::default(),
                )
                .await;
                assert_eq!(
                    (r.status, r.set_cookies.len()),
                    (413, 0),
                    "{what}: a 70 KB key name"
                );
                let mut jar = Jar::default();
                let a = put(&app, &json!({ "a".repeat(40 << 10): 1 }), &jar).await;
                secrets.note(&a);
                jar.apply(&a);
                let b = put(&app, &json!({ "b".repeat(40 << 10): 1 }), &jar).await;
                assert_eq!(
                    (a.status, b.status),
                    (204, 413),
                    "{what}: 40 + 40 KB of key names"
                );
            }
            let deep = format!("{{\"d\":{}1{}}}", "[".repeat(126), "]".repeat(126));
            let mut jar = Jar::default();
            let d = req(&app, Method::PUT, "/session", "", Some(deep.clone())).await;
            secrets.note(&d);
            assert_eq!(d.status, 204, "{what}");
            jar.apply(&d);
            let r = get(&app, "/session", &jar).await;
            assert_eq!(r.new, Some(false), "{what}: the deep value is read back");
            let back: Value = serde_json::from_str(&r.body).unwrap();
            assert_eq!(
                back,
                serde_json::from_str::<Value>(&deep).unwrap(),
                "{what}"
            );
        }
    });
}

/// Every error's default response: 503 with `Retry-After` when it is likely to pass, else
/// 500, and a body that never carries what the error was built from (a backend's message may
/// quote data).
#[test]
fn error_responses_carry_no_data() {
    let secret = unique("backend-detail");
    let errors: Vec<(session_hyper::Error, u16)> = vec![
        (StoreError::Unavailable(secret.clone()).into(), 503),
        (StoreError::Timeout(Duration::from_secs(1)).into(), 503),
        (StoreError::Rejected(secret.clone()).into(), 503),
        (StoreError::Corrupt(secret.clone()).into(), 500),
        (StoreError::TooLarge { size: 1, limit: 0 }.into(), 500),
        (StoreError::Backend(secret.clone()).into(), 500),
        (session_hyper::Error::Collisions(4), 500),
        (session_hyper::Error::Missing, 500),
    ];
    for (e, status) in errors {
        let res = e.response::<Bytes>();
        assert_eq!(res.status().as_u16(), status, "{e}");
        assert_eq!(res.headers().contains_key("retry-after"), status == 503);
        let body = String::from_utf8_lossy(res.body()).into_owned();
        assert!(!body.contains(&secret), "{e:?}: {body}");
    }
}

#[test]
fn a_cookie_session_never_outgrows_its_cookie() {
    attack(|secrets| async move {
        let layer = SessionLayer::cookie(config(|b| b))
            .on_error(too_large_is_413)
            .build()
            .unwrap();
        let app = serve(layer).await;
        let mut jar = Jar::default();
        let r = put(&app, &json!({ "small": "ok" }), &jar).await;
        secrets.note(&r);
        jar.apply(&r);
        for i in 0..20 {
            let r = put(&app, &json!({ format!("k{i}"): "z".repeat(5000) }), &jar).await;
            assert_eq!(r.status, 413, "a 5 KB value can't fit in a cookie");
            assert!(
                r.set_cookies.is_empty(),
                "the browser keeps its last good cookie"
            );
        }
        let s = get(&app, "/session", &jar).await;
        assert_eq!(s.body, r#"{"small":"ok"}"#);
    });
}

#[test]
fn thousands_of_keys_work_and_every_key_keeps_a_ttl() {
    attack(|secrets| async move {
        for (bi, backend) in backends().await.into_iter().enumerate() {
            let app = app(&backend, |b| b).await;
            let mut jar = Jar::default();
            let many: serde_json::Map<String, Value> =
                (0..5000).map(|i| (format!("k{i}"), json!(1))).collect();
            let r = put(&app, &Value::Object(many), &jar).await;
            secrets.note(&r);
            assert_eq!(r.status, 204, "{}: {}", label(&backend, bi), r.body);
            jar.apply(&r);
            // Change half, remove the other half, in one request.
            let change: serde_json::Map<String, Value> = (0..5000)
                .map(|i| {
                    (
                        format!("k{i}"),
                        if i % 2 == 0 { json!(2) } else { Value::Null },
                    )
                })
                .collect();
            let r = put(&app, &Value::Object(change), &jar).await;
            assert_eq!(r.status, 204, "{}: {}", label(&backend, bi), r.body);
            let s = get(&app, "/session", &jar).await;
            let data: Value = serde_json::from_str(&s.body).unwrap();
            let data = data.as_object().unwrap();
            assert_eq!(data.len(), 2500);
            assert!(data.values().all(|v| *v == json!(2)));
            // Far more keys than fit: refused whole, nothing written.
            let too_many: serde_json::Map<String, Value> = (0..20_000)
                .map(|i| (format!("key-{i}"), json!(i)))
                .collect();
            let r = put(&app, &Value::Object(too_many), &Jar::default()).await;
            assert_eq!(r.status, 413);
            assert!(r.set_cookies.is_empty());
            #[cfg(feature = "redis-tests")]
            if let Backend::Redis(_, prefix) = &backend {
                let n = raw::assert_every_key_has_a_ttl(prefix).await;
                assert_eq!(n, 1, "one session, one key");
            }
        }
    });
}

// ---------------------------------------------------------------------------------------------
// 5. A corrupt or foreign record is a new session, never a 500 loop.

#[cfg(feature = "redis-tests")]
#[test]
fn corrupt_and_foreign_records_start_a_new_session() {
    use session_store_redis::Format;
    attack(|secrets| async move {
        let cases: &[(Format, &str, &[&[&str]])] = &[
            (
                Format::V1,
                "unknown version",
                &[&["HSET", "{k}", "_v", "2"]],
            ),
            (
                Format::V1,
                "bad meta",
                &[&["HSET", "{k}", "_m", "yesterday"]],
            ),
            (
                Format::V1,
                "bad JSON value",
                &[&["HSET", "{k}", "d:user", "{"]],
            ),
            (Format::V1, "no meta", &[&["HDEL", "{k}", "_m"]]),
            (
                Format::V1,
                "a string",
                &[&["DEL", "{k}"], &["SET", "{k}", "garbage"]],
            ),
            (
                Format::V1,
                "a list",
                &[&["DEL", "{k}"], &["RPUSH", "{k}", "a", "b"]],
            ),
            (Format::Koa, "not JSON", &[&["SET", "{k}", "not json"]]),
            (Format::Koa, "a JSON array", &[&["SET", "{k}", "[1,2]"]]),
            (
                Format::Koa,
                "a hash",
                &[&["DEL", "{k}"], &["HSET", "{k}", "a", "b"]],
            ),
        ];
        for (format, what, commands) in cases {
            let backend = Backend::redis(*format).await;
            let Backend::Redis(store, _) = &backend else {
                unreachable!()
            };
            let koa = *format == Format::Koa;
            let cfg = config(|b| if koa { b.koa_compat(true) } else { b });
            let derive = cfg.key_derivation().clone();
            let app = serve(backend.layer(cfg).build().unwrap()).await;
            let user = unique("grace");
            secrets.add(&user);
            let jar = logged_in(&app, &user, &secrets).await;
            let id = SessionId::new_unchecked(jar.id().unwrap().to_owned());
            let key = store.inner.redis_key(&derive.derive(&id));
            assert_eq!(raw::int(&["EXISTS", &key]).await, 1);
            for c in *commands {
                let args: Vec<String> = c.iter().map(|a| a.replace("{k}", &key)).collect();
                let args: Vec<&str> = args.iter().map(String::as_str).collect();
                raw::cmd(&args).await;
            }
            let mut fives = 0;
            for i in 0..10 {
                let r = get(&app, "/session", &jar).await;
                fives += usize::from(r.status >= 500);
                assert_eq!(r.new, Some(true), "{what}: a new session");
                assert!(!r.body.contains(&user));
                if i == 0 {
                    assert!(r.removes(), "{what}: the dead cookie is removed");
                    assert_eq!(
                        raw::int(&["EXISTS", &key]).await,
                        0,
                        "{what}: record deleted"
                    );
                }
            }
            // And the browser carries on with a fresh session.
            let r = get(&app, "/", &jar).await;
            assert_eq!((r.status, r.body.as_str()), (200, "1 views"), "{what}");
            assert!(r.sets_id().is_some());
            eprintln!("redis {format:?}, {what}: 10 requests, {fives} answered 5xx");
            assert_eq!(fives, 0, "{what}");
        }
    });
}

// ---------------------------------------------------------------------------------------------
// 6. Planted cookies (cookie tossing) never log the user out.

/// `n` copies of a planted cookie, as a Cookie header fragment.
fn planted(cookie: &str, n: usize) -> String {
    vec![cookie; n].join("; ")
}

#[test]
fn planted_cookies_never_remove_the_real_ones() {
    attack(|secrets| async move {
        let backend = Backend::memory();
        let app = app(&backend, |b| b).await;
        let user = unique("heidi");
        secrets.add(&user);
        let jar = logged_in(&app, &user, &secrets).await;
        let real = jar.header();
        let (real_value, real_sig) = real.split_once("; ").unwrap();
        let junk_sig = format!("{SIG}={}", "A".repeat(43));
        let cases: Vec<(String, &str, bool)> = vec![
            (
                format!("{}; {real}", planted(junk_sig.as_str(), 4)),
                "4 planted .sig ahead",
                true,
            ),
            (
                format!("{}; {real}", planted("koa.sess=planted", 4)),
                "4 planted values ahead",
                true,
            ),
            (
                format!("{real}; {}", planted(junk_sig.as_str(), 4)),
                "4 planted .sig behind",
                true,
            ),
            (
                format!("{}; {real}", planted(junk_sig.as_str(), 15)),
                "15 planted .sig ahead",
                true,
            ),
            (
                format!("{}; {real}", planted(junk_sig.as_str(), 40)),
                "40 planted .sig ahead",
                false,
            ),
            (
                format!("{}; {real}", planted("koa.sess=planted", 12)),
                "12 planted values ahead",
                false,
            ),
            (
                format!(
                    "{}; {real}",
                    vec![format!("koa.sess=planted; {junk_sig}"); 10].join("; ")
                ),
                "10 planted pairs ahead",
                false,
            ),
            // At the bounds: the real value is the 8th checked / the 9th not checked; the real
            // signature the 16th / the 17th.
            (
                format!("{}; {real}", planted("koa.sess=planted", 7)),
                "7 planted values ahead",
                true,
            ),
            (
                format!("{}; {real}", planted("koa.sess=planted", 8)),
                "8 planted values ahead",
                false,
            ),
            (
                format!("{real_value}; {}; {real_sig}", planted(&junk_sig, 15)),
                "15 planted .sig between the real pair",
                true,
            ),
            (
                format!("{real_value}; {}; {real_sig}", planted(&junk_sig, 16)),
                "16 planted .sig between the real pair",
                false,
            ),
            // Values that are not cookie values are not counted.
            (
                format!("{}; {real}", planted("koa.sess=a\\b", 30)),
                "30 malformed values ahead",
                true,
            ),
        ];
        let mut removals = 0;
        for (header, what, honoured) in &cases {
            for _ in 0..20 {
                for path in ["/session", "/"] {
                    let r = req(&app, Method::GET, path, header, None).await;
                    removals += usize::from(r.removes());
                    if *honoured {
                        assert_eq!(r.status, 200);
                        if path == "/session" {
                            assert!(r.body.contains(&user), "{what}: the real session is used");
                        }
                    } else {
                        // Too many to check: anonymous, and no cookie at all (neither a removal
                        // nor a new session that would replace the real one).
                        assert!(r.set_cookies.is_empty(), "{what}: {:?}", r.set_cookies);
                        assert!(!r.body.contains(&user));
                    }
                }
            }
        }
        eprintln!(
            "planted cookies: {} cases x 20 x 2 requests, removal cookies: {removals}",
            cases.len()
        );
        assert_eq!(removals, 0);
        // The real pair alone still works after all that.
        assert!(get(&app, "/session", &jar).await.body.contains(&user));
        // Planted values in one Cookie field, the real pair in a second (as HTTP/2 sends them).
        for _ in 0..20 {
            let r = send(
                app.client
                    .get(format!("{}/session", app.url))
                    .header("cookie", planted("koa.sess=planted", 3))
                    .header("cookie", real.clone()),
            )
            .await;
            assert!(r.body.contains(&user) && r.set_cookies.is_empty());
        }
        // A huge Cookie header of junk: anonymous, no crash, no record.
        let junk: String = (0..2000).map(|i| format!("c{i}=v{i}; ")).collect();
        let r = req(&app, Method::GET, "/session", &junk, None).await;
        assert_eq!((r.status, r.new), (200, Some(true)));
    });
}

/// A cookie pair the site once gave the attacker, dead now (logged out, or an expired
/// cookie-mode payload), planted ahead of the real pair: the first live one is the session, so
/// the real one is neither removed nor replaced, and a logout still ends it.
#[test]
fn a_planted_dead_cookie_never_ends_the_real_session() {
    attack(|secrets| async move {
        let (mut removals, mut lost) = (0, 0);
        for (bi, backend) in backends().await.into_iter().enumerate() {
            let app = app(&backend, |b| b).await;
            let user = unique("ivan");
            secrets.add(&user);
            let real = logged_in(&app, &user, &secrets).await;
            let mut attacker = Jar::default();
            let r = put(&app, &json!({ "a": 1 }), &attacker).await;
            secrets.note(&r);
            attacker.apply(&r);
            assert_eq!(logout(&app, &attacker).await.status, 204);
            let header = format!("{}; {}", attacker.header(), real.header());
            for i in 0..100 {
                let path = if i % 2 == 0 { "/session" } else { "/" };
                let r = req(&app, Method::GET, path, &header, None).await;
                removals += usize::from(r.removes());
                let real_used = path == "/" || r.body.contains(&user);
                lost += usize::from(r.status != 200 || !real_used);
            }
            let r = get(&app, "/session", &real).await;
            assert!(
                r.body.contains("\"views\":50"),
                "{}: 50 visits counted",
                label(&backend, bi)
            );
            let r = req(&app, Method::DELETE, "/session", &header, None).await;
            assert_eq!(r.status, 204);
            let r = get(&app, "/session", &real).await;
            assert!(
                !r.body.contains(&user),
                "{}: the logout ended the real session",
                label(&backend, bi)
            );
        }
        // Unsigned cookies: any value can be planted.
        let app = app(&Backend::memory(), |b| b.unsigned()).await;
        let user = unique("judy");
        secrets.add(&user);
        let real = logged_in(&app, &user, &secrets).await;
        let fake = format!("{NAME}={}", "A".repeat(43));
        for i in 0..100 {
            let n = 1 + i % (session_cookie::MAX_CANDIDATES - 1);
            let header = format!("{}; {}", planted(&fake, n), real.header());
            let r = req(&app, Method::GET, "/session", &header, None).await;
            removals += usize::from(r.removes());
            lost += usize::from(!r.body.contains(&user));
            // More than are checked: anonymous, and the cookies are left alone, whether the
            // planted values look like ids or not.
            let junk = planted("koa.sess=x", session_cookie::MAX_CANDIDATES + i % 3);
            let r = req(
                &app,
                Method::GET,
                "/",
                &format!("{junk}; {}", real.header()),
                None,
            )
            .await;
            assert!(r.set_cookies.is_empty(), "{:?}", r.set_cookies);
            let many = planted(&fake, session_cookie::MAX_CANDIDATES);
            let r = req(
                &app,
                Method::GET,
                "/",
                &format!("{many}; {}", real.header()),
                None,
            )
            .await;
            assert!(r.set_cookies.is_empty(), "{:?}", r.set_cookies);
        }
        // Cookie mode: an expired payload signed by the site ahead of the live one.
        let cfg = config(|b| b);
        let cookies = session_cookie::SessionCookies::from_config(&cfg).unwrap();
        let now = cfg.now_ms();
        let app = serve(SessionLayer::cookie(cfg).build().unwrap()).await;
        let user = unique("kim");
        secrets.add(&user);
        let real = logged_in(&app, &user, &secrets).await;
        let mut data = serde_json::Map::new();
        data.insert("user".into(), json!("mallory"));
        let expired = Record {
            data,
            meta: Meta {
                expire: Some(now - 1_000),
                max_age: MaxAge::Ms(86_400_000),
                created: None,
            },
        };
        let dead = signed_payload(&cookies, &expired, now);
        for _ in 0..100 {
            let header = format!("{dead}; {}", real.header());
            let r = req(&app, Method::GET, "/session", &header, None).await;
            removals += usize::from(r.removes());
            lost += usize::from(!r.body.contains(&user));
        }
        eprintln!("planted dead cookies: removal cookies {removals}, real session not used {lost}");
        assert_eq!((removals, lost), (0, 0));
    });
}

/// The `Cookie` header pair of a cookie-mode payload signed with the app's key.
fn signed_payload(cookies: &session_cookie::SessionCookies, record: &Record, now: u64) -> String {
    use session_cookie::Codec as _;
    let value = session_cookie::KoaCodec.encode(record).unwrap();
    let set = cookies.write(&value, None, now, false).unwrap();
    set.iter()
        .map(|c| c.split(';').next().unwrap().to_owned())
        .collect::<Vec<_>>()
        .join("; ")
}

/// A logout sent while planted cookies hide the real pair from the usual checks still ends
/// the session on the server (the cookies it removes are not all there is to it): junk values
/// alone ahead of it, or with one of the attacker's own signed cookies (dead, or just
/// superseded by a regenerate) among the checked ones.
#[test]
fn a_logout_under_planted_cookies_ends_the_server_session() {
    attack(|secrets| async move {
        let (mut alive, mut n) = (0, 0);
        for backend in backends().await {
            let app = app(&backend, |b| b).await;
            for i in 0..60 {
                let user = unique("liam");
                secrets.add(&user);
                let real = logged_in(&app, &user, &secrets).await;
                let attacker = match i % 3 {
                    0 => String::new(),
                    1 => format!("{}; ", dead_pair(&app, &secrets).await.header()),
                    _ => {
                        let jar = logged_in(&app, &unique("mallory"), &secrets).await;
                        assert!(regenerate(&app, &jar).await.sets_id().is_some());
                        format!("{}; ", jar.header())
                    }
                };
                let junk = planted("koa.sess=planted", session_cookie::MAX_CANDIDATES + i % 40);
                let header = format!("{attacker}{junk}; {}", real.header());
                let r = req(&app, Method::GET, "/session", &header, None).await;
                assert!(
                    r.set_cookies.is_empty() && !r.body.contains(&user),
                    "ambiguous"
                );
                let r = req(&app, Method::DELETE, "/session", &header, None).await;
                assert_eq!(r.status, 204);
                n += 1;
                alive += usize::from(get(&app, "/session", &real).await.body.contains(&user));
            }
        }
        eprintln!("logouts under planted cookies that left the session alive: {alive}/{n}");
        assert_eq!(alive, 0);
    });
}

/// A cookie pair the site gave the attacker, dead now (logged out).
async fn dead_pair(app: &App, secrets: &Secrets) -> Jar {
    let mut attacker = Jar::default();
    let r = put(app, &json!({ "a": 1 }), &attacker).await;
    secrets.note(&r);
    attacker.apply(&r);
    assert_eq!(logout(app, &attacker).await.status, 204);
    attacker
}

/// The attacker's own session planted ahead of the real one, alive in the store but over: the
/// app's `valid` hook revokes it, or its absolute lifetime ran out (the record outlives that by
/// the TTL margin). It is not the session, so the real one is neither removed nor replaced.
#[test]
fn a_revoked_or_expired_session_planted_ahead_never_ends_the_real_one() {
    attack(|secrets| async move {
        let hooks = || session_core::Hooks::new().valid(|d| !d.contains_key("revoked"));
        let (mut removed, mut replaced, mut lost) = (0, 0, 0);
        for backend in backends().await {
            let app = app(&backend, |b| b.hooks(hooks())).await;
            for i in 0..30 {
                let user = unique("nora");
                secrets.add(&user);
                let real = logged_in(&app, &user, &secrets).await;
                let attacker = logged_in(&app, &unique("mallory"), &secrets).await;
                assert_eq!(
                    put(&app, &json!({ "revoked": true }), &attacker)
                        .await
                        .status,
                    204
                );
                let header = format!("{}; {}", attacker.header(), real.header());
                let path = if i % 2 == 0 { "/session" } else { "/" };
                let r = req(&app, Method::GET, path, &header, None).await;
                removed += usize::from(r.removes());
                replaced += usize::from(r.sets_id().is_some_and(|v| Some(v.as_str()) != real.id()));
                lost += usize::from(path == "/session" && !r.body.contains(&user));
            }
            let app = crate::app(&backend, |b| {
                b.absolute_lifetime(Duration::from_millis(500))
            })
            .await;
            let mut attackers = Vec::new();
            for _ in 0..10 {
                attackers.push(logged_in(&app, &unique("mallory"), &secrets).await);
            }
            tokio::time::sleep(Duration::from_millis(700)).await;
            for attacker in &attackers {
                let user = unique("nora");
                secrets.add(&user);
                let real = logged_in(&app, &user, &secrets).await;
                let header = format!("{}; {}", attacker.header(), real.header());
                let r = req(&app, Method::GET, "/session", &header, None).await;
                removed += usize::from(r.removes());
                lost += usize::from(!r.body.contains(&user));
            }
        }
        eprintln!(
            "revoked or expired sessions planted ahead: removed {removed}, replaced {replaced}, real not used {lost}"
        );
        assert_eq!((removed, replaced, lost), (0, 0, 0));
    });
}

/// What planted cookies can make one request cost: a read tries at most the values it
/// checks, and a logout makes at most its budget of store calls however many ids it carries.
#[test]
fn planted_cookies_cost_a_bounded_number_of_store_calls() {
    attack(|secrets| async move {
        let backend = Backend::memory();
        let app = app(&backend, |b| b).await;
        let mut dead = Vec::new();
        for _ in 0..70 {
            dead.push(dead_pair(&app, &secrets).await.header());
        }
        let calls = |b: &Backend| {
            let p = b.pause();
            (
                p.loads.load(Ordering::SeqCst),
                p.destroys.load(Ordering::SeqCst),
            )
        };
        for n in [1, 8, 20, 70] {
            let header = dead[..n].join("; ");
            let (l0, d0) = calls(&backend);
            let r = req(&app, Method::GET, "/session", &header, None).await;
            let (l1, _) = calls(&backend);
            assert_eq!(r.status, 200);
            assert!(
                l1 - l0 <= session_cookie::MAX_CANDIDATES,
                "{n} dead ids: {} loads",
                l1 - l0
            );
            let r = req(&app, Method::DELETE, "/session", &header, None).await;
            let (_, d1) = calls(&backend);
            assert_eq!(r.status, 204);
            assert!(
                d1 - d0 <= 2 * session_cookie::MAX_DESTROY_CANDIDATES,
                "{n} dead ids: {} destroys",
                d1 - d0
            );
            eprintln!(
                "{n} dead ids: a read makes {} loads, a logout {} destroys",
                l1 - l0,
                d1 - d0
            );
        }
    });
}

// ---------------------------------------------------------------------------------------------
// 7. Regenerating a session that holds nothing writes nothing.

#[test]
fn anonymous_regenerate_writes_nothing() {
    attack(|_| async move {
        for (bi, backend) in backends().await.into_iter().enumerate() {
            let app = app(&backend, |b| b).await;
            let mut cookies = 0;
            for _ in 0..400 {
                let r = regenerate(&app, &Jar::default()).await;
                assert_eq!(r.status, 204);
                cookies += r.set_cookies.len();
            }
            let created = backend.take_created().len();
            eprintln!(
                "{}: 400 anonymous regenerates: {created} records, {cookies} cookies",
                label(&backend, bi)
            );
            assert_eq!((created, cookies), (0, 0));
            // Guest mode, with and without a guest cookie: still no record.
            let guest_app = crate::app(&backend, |b| b.guest(true)).await;
            let mut guest = Jar::default();
            for i in 0..200 {
                let r = regenerate(&guest_app, &guest).await;
                assert_eq!(r.status, 204);
                if i == 0 {
                    guest.apply(&get(&guest_app, "/session", &Jar::default()).await);
                }
            }
            assert_eq!(backend.take_created().len(), 0, "guest mode");
            #[cfg(feature = "redis-tests")]
            if let Backend::Redis(_, prefix) = &backend {
                assert_eq!(raw::keys(prefix).await.len(), 0);
            }
        }
    });
}

// ---------------------------------------------------------------------------------------------
// Guest sessions get the same scrutiny.

#[test]
fn guest_cookies_never_lead_to_another_visitors_data() {
    attack(|secrets| async move {
        for (bi, backend) in backends().await.into_iter().enumerate() {
            let app = app(&backend, |b| b.guest(true)).await;
            // A flood of new visitors: each gets a cookie, none gets a record.
            let mut guests = 0;
            for _ in 0..400 {
                let r = get(&app, "/session", &Jar::default()).await;
                guests += usize::from(r.sets_id().is_some());
            }
            assert_eq!(guests, 400);
            assert_eq!(backend.take_created().len(), 0, "guests write no record");
            // Fixation with a guest cookie: the attacker keeps a copy of a guest cookie and
            // plants it in the victim's browser; the victim's data never lands under it.
            let mut leaks = 0;
            for _ in 0..RACES {
                let mut attacker = Jar::default();
                attacker.apply(&get(&app, "/session", &Jar::default()).await);
                let mut victim = attacker.clone();
                let secret = unique("card");
                secrets.add(&secret);
                let card = json!({ "card": secret });
                let (a, b) = tokio::join!(put(&app, &card, &victim), put(&app, &card, &victim));
                for r in [&a, &b] {
                    assert_eq!(r.status, 204);
                    assert_ne!(
                        r.sets_id().as_deref(),
                        attacker.id(),
                        "a fresh id on the first write"
                    );
                }
                victim.apply(&a);
                let seen = get(&app, "/session", &attacker).await;
                leaks += usize::from(seen.body.contains(&secret));
                assert!(get(&app, "/session", &victim).await.body.contains(&secret));
            }
            eprintln!(
                "{}: {RACES} planted guest cookies: leaks {leaks}",
                label(&backend, bi)
            );
            assert_eq!(leaks, 0);
        }
    });
}

// ---------------------------------------------------------------------------------------------
// 9. Expires, Max-Age, the session's expiry and the store TTL agree, at the browsers' cap.

#[test]
fn expiry_beyond_the_browser_cap_is_clamped_everywhere() {
    attack(|secrets| async move {
        let ten_years = 10 * 365 * session_core::driver::ONE_DAY_MS;
        let cap_secs = session_core::driver::MAX_AGE_CAP_MS / 1000;
        for backend in backends().await {
            let app = app(&backend, |b| b.max_age(MaxAge::Ms(ten_years))).await;
            let r = get(&app, "/", &Jar::default()).await;
            secrets.note(&r);
            let c = &r.set_cookies[0];
            assert!(c.contains(&format!("Max-Age={cap_secs};")), "{c}");
            let expires = c
                .split("Expires=")
                .nth(1)
                .unwrap()
                .split(';')
                .next()
                .unwrap();
            let expires = httpdate::parse_http_date(expires).unwrap();
            let in_400_days = std::time::SystemTime::now() + Duration::from_secs(cap_secs);
            let drift = in_400_days
                .duration_since(expires)
                .unwrap_or_else(|e| e.duration());
            assert!(
                drift < Duration::from_secs(60),
                "Expires is {drift:?} off the cap"
            );
            #[cfg(feature = "redis-tests")]
            if let Backend::Redis(_, prefix) = &backend {
                for k in raw::keys(prefix).await {
                    let pttl = raw::int(&["PTTL", &k]).await as u64;
                    assert!(
                        pttl <= session_core::driver::MAX_AGE_CAP_MS + 10_000,
                        "PTTL {pttl}"
                    );
                    assert!(
                        pttl > session_core::driver::MAX_AGE_CAP_MS - 60_000,
                        "PTTL {pttl}"
                    );
                }
            }
        }
        // A signed cookie-mode payload that claims a life beyond what this server writes.
        let cfg = config(|b| b);
        let cookies = session_cookie::SessionCookies::from_config(&cfg).unwrap();
        let now = cfg.now_ms();
        let app = serve(SessionLayer::cookie(cfg).build().unwrap()).await;
        for (expire, max_age, accepted) in [
            (now + 3_600_000, 86_400_000, true),
            (
                now + 2 * 365 * session_core::driver::ONE_DAY_MS,
                86_400_000,
                false,
            ),
            (
                now + 2 * 365 * session_core::driver::ONE_DAY_MS,
                ten_years,
                false,
            ),
        ] {
            let mut data = serde_json::Map::new();
            data.insert("user".into(), json!("mallory"));
            let record = Record {
                data,
                meta: Meta {
                    expire: Some(expire),
                    max_age: MaxAge::Ms(max_age),
                    created: None,
                },
            };
            let header = signed_payload(&cookies, &record, now);
            let r = req(&app, Method::GET, "/session", &header, None).await;
            assert_eq!(
                r.body.contains("mallory"),
                accepted,
                "expire {expire}, max-age {max_age}"
            );
        }
    });
}

// ---------------------------------------------------------------------------------------------
// 10. Errors carry no session data.

#[test]
fn a_wrong_typed_value_is_a_500_without_the_value() {
    attack(|secrets| async move {
        for backend in backends().await {
            let app = app(&backend, |b| b).await;
            let mut jar = Jar::default();
            let value = unique("not-a-number");
            secrets.add(&value);
            let r = put(&app, &json!({ "views": value }), &jar).await;
            jar.apply(&r);
            for _ in 0..5 {
                let r = get(&app, "/typed", &jar).await;
                assert_eq!(r.status, 500, "a type mismatch is not a store outage");
                assert!(!r.body.contains(&value), "the value leaked: {}", r.body);
                assert!(
                    r.body.contains("views") && r.body.contains("u64"),
                    "{}",
                    r.body
                );
            }
        }
    });
}

// ---------------------------------------------------------------------------------------------
// 11. A store that refuses connections is a fast 503.

#[cfg(feature = "redis-tests")]
#[test]
fn a_refusing_store_is_a_fast_503() {
    attack(|_| async move {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let store = session_store_redis::RedisStore::builder(format!("redis://127.0.0.1:{port}/0"))
            .checkout_timeout(Duration::from_secs(5))
            .build()
            .await
            .unwrap();
        let app = serve(SessionLayer::store(config(|b| b), store).build().unwrap()).await;
        let jar = {
            // A signed id the store has never seen, so the request needs the store.
            let cfg = config(|b| b);
            let cookies = session_cookie::SessionCookies::from_config(&cfg).unwrap();
            let id = cfg.ids().generate().unwrap();
            let set = cookies.write(id.as_str(), None, 0, false).unwrap();
            let mut jar = Jar::default();
            for c in set.iter() {
                let (n, v) = c.split(';').next().unwrap().split_once('=').unwrap();
                jar.0.push((n.to_owned(), v.to_owned()));
            }
            jar
        };
        let mut worst = Duration::ZERO;
        for path in ["/", "/session"].repeat(10) {
            let t = Instant::now();
            let r = get(&app, path, &jar).await;
            worst = worst.max(t.elapsed());
            assert_eq!(r.status, 503);
            assert!(r.retry_after, "a 503 says when to retry");
            assert!(r.set_cookies.is_empty());
        }
        eprintln!("refused store: 20 requests, slowest 503 in {worst:?} (checkout timeout 5 s)");
        assert!(worst < Duration::from_secs(1), "{worst:?}");
    });
}
