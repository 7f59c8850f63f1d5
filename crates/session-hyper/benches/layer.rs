//! What the middleware adds to one request, in process (no sockets): the counter handler
//! bare, behind the layer with the memory store, and in cookie mode; returning users (their
//! counter changes, so every request loads, saves and sets the cookie) and new visitors. Also
//! prints heap allocations per request, counted by a global allocator.
//!
//! Also a login of a new visitor without and with `set_owner`, with `set_owner` under a session
//! limit (with room, and at the limit ending the session bound earliest), and a returning user
//! whose session is bound to an owner; and a returning user's first request after a switch of
//! stores (`migrate_from`, memory to memory): the request that moves the session.
//!
//! And what a page pays for flash messages and CSRF tokens: a returning user's page that reads
//! its session (the baseline), the same page also reading its flash messages (none pending, the
//! common case) or taking one, minting a CSRF token (for a session, and for an anonymous
//! visitor), and a POST checking a token from its header (store and cookie mode).
//!
//! And what events and metrics cost (`events_*`): a returning user's counter with an event
//! subscriber that does nothing, and with the audit sink writing JSON lines to `/dev/null`;
//! built with `--features metrics`, every request also records its metrics into a Prometheus
//! recorder (installed first). `AUDIT_P99=N` instead measures N returning-user requests with no
//! audit sink and with one that never returns, interleaved, and prints their percentiles.
//!
//! Run: `cargo bench -p session-hyper --bench layer` (and again with `--features metrics`).
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]
// The counting global allocator needs `unsafe`; it only forwards to the system allocator.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use criterion::{BatchSize, Criterion, criterion_group};
use http::{Request, Response, header};
use http_body_util::Full;
use session_core::Config;
use session_hyper::audit::{Audit, AuditSink, JsonLines};
use session_hyper::{Hooks, OverLimit, Session, SessionEvent, SessionLayer, SessionLimit};
use session_store_memory::MemoryStore;
use tower::{Service, ServiceExt, service_fn};

struct Counting;
static ALLOCS: AtomicU64 = AtomicU64::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.realloc(p, l, n) }
    }
}

#[global_allocator]
static A: Counting = Counting;

type Res = Response<Full<Bytes>>;

async fn bare(_req: Request<()>) -> Result<Res, Infallible> {
    Ok(Response::new(Full::from("1 views")))
}

async fn counter(req: Request<()>) -> Result<Res, Infallible> {
    let Ok(s) = Session::from_request(&req) else {
        return Ok(Response::new(Full::from("no session")));
    };
    let n: u64 = s.get("views").await.ok().flatten().unwrap_or(0) + 1;
    let _ = s.insert("views", n).await;
    Ok(Response::new(Full::from(format!("{n} views"))))
}

/// A login of a new visitor: a new id and the user's name; with `?own`, also bound to the user
/// (one of 10,000 users, so each owner's index stays small, as in real traffic).
async fn login(req: Request<()>) -> Result<Res, Infallible> {
    let Ok(s) = Session::from_request(&req) else {
        return Ok(Response::new(Full::from("no session")));
    };
    let user = match req.uri().query() {
        // Always the same user: under a limit, every login is over it.
        Some("own-one") => "user-one".to_owned(),
        _ => format!(
            "user-{}",
            NEXT_USER.fetch_add(1, Ordering::Relaxed) % 10_000
        ),
    };
    let _ = s.regenerate().await;
    let _ = s.insert("user", &user).await;
    if req.uri().query().is_some_and(|q| q.starts_with("own")) {
        let _ = s.set_owner_with_device(&user, "Firefox on Linux").await;
    }
    Ok(Response::new(Full::from("welcome")))
}

static NEXT_USER: AtomicU64 = AtomicU64::new(0);

/// A returning user's page: reads `views` (nothing changes, nothing is written); `/messages`
/// also reads the flash messages, `/token` also mints a CSRF token, and a POST also checks the
/// token of its `X-CSRF-Token` header.
async fn page(req: Request<()>) -> Result<Res, Infallible> {
    let Ok(s) = Session::from_request(&req) else {
        return Ok(Response::new(Full::from("no session")));
    };
    match req.uri().path() {
        "/count" => return counter(req).await,
        "/add" => {
            let _ = s.flash(session_hyper::flash::Level::Info, "Saved.").await;
            return Ok(Response::new(Full::from("added")));
        }
        _ => {}
    }
    let n: u64 = s.get("views").await.ok().flatten().unwrap_or(0);
    let extra = match (req.method(), req.uri().path()) {
        (&http::Method::POST, _) => {
            let token = req
                .headers()
                .get("x-csrf-token")
                .and_then(|v| v.to_str().ok());
            match s.check_csrf(req.method(), req.headers(), token).await {
                Ok(()) => String::new(),
                Err(e) => panic!("refused: {e}"),
            }
        }
        (_, "/messages") => s.messages().await.map(|m| m.to_html()).unwrap_or_default(),
        (_, "/token") => s.csrf_token().await.unwrap_or_default(),
        _ => String::new(),
    };
    Ok(Response::new(Full::from(format!("{n} views{extra}"))))
}

/// `/login...` logs in, anything else counts.
async fn counter_or_login(req: Request<()>) -> Result<Res, Infallible> {
    if req.uri().path() == "/login" {
        login(req).await
    } else {
        counter(req).await
    }
}

fn config() -> Config {
    Config::builder()
        .key(b"benchmark key, 32 bytes or longer!".to_vec())
        .build()
        .expect("config")
}

/// The `Cookie` header a browser would send back after `res`.
fn cookie_header(res: &Res) -> String {
    res.headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok()?.split(';').next().map(str::to_owned))
        .collect::<Vec<_>>()
        .join("; ")
}

fn request(cookie: Option<&str>) -> Request<()> {
    let mut b = Request::get("/");
    if let Some(c) = cookie {
        b = b.header(header::COOKIE, c);
    }
    b.body(()).expect("request")
}

/// The token a `/token` page shows (its body after `N views`).
fn token_of(rt: &tokio::runtime::Runtime, res: Res) -> String {
    let bytes = rt
        .block_on(http_body_util::BodyExt::collect(res.into_body()))
        .expect("body")
        .to_bytes();
    let body = String::from_utf8_lossy(&bytes).into_owned();
    body.split_once("views").expect("a token").1.to_owned()
}

fn get_with(uri: &str, cookie: &str) -> Request<()> {
    Request::get(uri)
        .header(header::COOKIE, cookie)
        .body(())
        .expect("request")
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("runtime")
}

/// The layer for `kind`: `memory` (memory store) or `cookie` (cookie mode).
fn layer(kind: &str) -> SessionLayer {
    match kind {
        "cookie" => SessionLayer::cookie(config()),
        _ => SessionLayer::store(config(), MemoryStore::new()),
    }
    .build()
    .expect("layer")
}

/// A memory-store layer whose configuration carries `hooks`.
fn layer_with(hooks: Hooks) -> SessionLayer {
    let config = Config::builder()
        .key(b"benchmark key, 32 bytes or longer!".to_vec())
        .hooks(hooks)
        .build()
        .expect("config");
    SessionLayer::store(config, MemoryStore::new())
        .build()
        .expect("layer")
}

/// An audit sink that never returns.
struct Stuck;

impl AuditSink for Stuck {
    fn write(&mut self, _: &SessionEvent) -> std::io::Result<()> {
        loop {
            std::thread::park();
        }
    }
}

/// The hooks of each events benchmark: a subscriber that does nothing, and the audit sink.
fn event_hooks(kind: &str) -> Hooks {
    match kind {
        "audit" => {
            let sink = JsonLines::append("/dev/null").expect("/dev/null");
            let audit = Audit::start(sink, 4096).expect("audit");
            Hooks::new().on_event(audit.listener())
        }
        "stuck" => {
            let audit = Audit::start(Stuck, 1024).expect("audit");
            Hooks::new().on_event(audit.listener())
        }
        "subscriber" => Hooks::new().on_event(|e| {
            std::hint::black_box(e);
        }),
        _ => Hooks::new(),
    }
}

/// `AUDIT_P99=N`: N returning-user requests without an audit sink and with one that never
/// returns, in interleaved blocks; prints each one's percentiles.
fn audit_p99(n: usize) {
    let rt = runtime();
    let mut results = Vec::new();
    for kind in ["none", "stuck"] {
        let mut svc = layer_with(event_hooks(kind)).wrap(service_fn(counter));
        let jar = cookie_header(&send(&rt, &mut svc, request(None)));
        results.push((kind, svc, jar, Vec::with_capacity(n)));
    }
    for _ in 0..n / 1000 {
        for (_, svc, jar, times) in &mut results {
            for _ in 0..1000 {
                let t = std::time::Instant::now();
                send(&rt, svc, request(Some(jar)));
                times.push(t.elapsed().as_nanos() as f64 / 1000.0);
            }
        }
    }
    for (kind, _, _, mut times) in results {
        times.sort_by(f64::total_cmp);
        let at = |q: f64| times[((times.len() as f64 * q) as usize).min(times.len() - 1)];
        println!(
            "audit sink {kind}: {} requests, p50 {:.2} µs, p99 {:.2} µs, p99.9 {:.2} µs",
            times.len(),
            at(0.5),
            at(0.99),
            at(0.999)
        );
    }
}

/// Heap allocations per call of `f`, over 1000 calls.
fn allocations_per_call(mut f: impl FnMut()) -> f64 {
    let before = ALLOCS.load(Ordering::Relaxed);
    for _ in 0..1000 {
        f();
    }
    (ALLOCS.load(Ordering::Relaxed) - before) as f64 / 1000.0
}

fn bench(c: &mut Criterion) {
    let rt = runtime();
    let mut g = c.benchmark_group("request");
    let mut svc = service_fn(bare);
    g.bench_function("bare", |b| b.iter(|| send(&rt, &mut svc, request(None))));
    for name in ["memory", "cookie"] {
        let mut svc = layer(name).wrap(service_fn(counter));
        let first = send(&rt, &mut svc, request(None));
        let jar = cookie_header(&first);
        g.bench_function(format!("{name}_returning"), |b| {
            b.iter(|| send(&rt, &mut svc, request(Some(&jar))))
        });
        g.bench_function(format!("{name}_new"), |b| {
            b.iter(|| send(&rt, &mut svc, request(None)))
        });
        let per = allocations_per_call(|| {
            send(&rt, &mut svc, request(Some(&jar)));
        });
        println!("{name}_returning: {per:.1} heap allocations per request (the request included)");
    }
    // A user's sessions: what binding adds to a login, and what a bound session's requests
    // cost beside an unbound one's (the memory store: no round trips to hide the work).
    let mut svc = layer("memory").wrap(service_fn(login));
    for (name, uri) in [("login", "/login"), ("login_set_owner", "/login?own")] {
        g.bench_function(name, |b| {
            b.iter(|| {
                let req = Request::get(uri).body(()).expect("request");
                send(&rt, &mut svc, req)
            })
        });
    }
    // A session limit: a login with room under it (each of 10,000 users, limit 1,000), and a
    // login over it that ends the session bound earliest (one user, limit 3).
    for (name, max, uri) in [
        ("login_set_owner_limit_room", 1_000, "/login?own"),
        ("login_set_owner_limit_full", 3, "/login?own-one"),
    ] {
        let limit = SessionLimit::new(max, OverLimit::EndOldest).expect("limit");
        let mut svc = SessionLayer::store(config(), MemoryStore::new())
            .max_sessions_per_owner(limit)
            .build()
            .expect("layer")
            .wrap(service_fn(login));
        g.bench_function(name, |b| {
            b.iter(|| {
                let req = Request::get(uri).body(()).expect("request");
                send(&rt, &mut svc, req)
            })
        });
    }
    let mut svc = layer("memory").wrap(service_fn(counter_or_login));
    let owned = send(
        &rt,
        &mut svc,
        Request::get("/login?own").body(()).expect("request"),
    );
    let jar = cookie_header(&owned);
    g.bench_function("memory_returning_owned", |b| {
        b.iter(|| send(&rt, &mut svc, request(Some(&jar))))
    });
    // Switching stores: the request that moves a session (a miss here, a read there, a create
    // here, a supersede there), each on a session the old layer has just made.
    let old = MemoryStore::new();
    let mut old_svc = SessionLayer::store(config(), old.clone())
        .build()
        .expect("layer")
        .wrap(service_fn(counter));
    let mut new_svc = SessionLayer::store(config(), MemoryStore::new())
        .migrate_from(old)
        .build()
        .expect("layer")
        .wrap(service_fn(counter));
    g.bench_function("memory_move", |b| {
        b.iter_batched(
            || cookie_header(&send(&rt, &mut old_svc, request(None))),
            |jar| send(&rt, &mut new_svc, request(Some(&jar))),
            BatchSize::SmallInput,
        )
    });
    // Flash messages and CSRF tokens: what each adds to a page that reads its session (a
    // stored one, made by `/count`, so its tokens are bound to its id).
    let mut pages = layer("memory").wrap(service_fn(page));
    let jar = cookie_header(&send(&rt, &mut pages, get_with("/count", "")));
    let token = token_of(&rt, send(&rt, &mut pages, get_with("/token", &jar)));
    for (name, uri) in [
        ("page_read", "/"),
        ("page_messages", "/messages"),
        ("page_token", "/token"),
    ] {
        g.bench_function(name, |b| {
            b.iter(|| send(&rt, &mut pages, get_with(uri, &jar)))
        });
    }
    g.bench_function("post_csrf_check", |b| {
        b.iter(|| {
            let req = Request::post("/")
                .header(header::COOKIE, &jar)
                .header("x-csrf-token", &token)
                .body(())
                .expect("request");
            send(&rt, &mut pages, req)
        })
    });
    // A page that shows (and takes) one message: a store write removing its key. The message
    // is added before each measured request, unmeasured.
    let mut adder = pages.clone();
    g.bench_function("page_takes_a_message", |b| {
        b.iter_batched(
            || send(&rt, &mut adder, get_with("/add", &jar)),
            |_| send(&rt, &mut pages, get_with("/messages", &jar)),
            BatchSize::SmallInput,
        )
    });
    // An anonymous visitor's token: bound to a new nonce cookie, no store record.
    g.bench_function("anonymous_token", |b| {
        b.iter(|| {
            let req = Request::get("/token").body(()).expect("request");
            send(&rt, &mut pages, req)
        })
    });
    // Cookie mode: the token is bound to the secret the session keeps in its cookie.
    let mut cookie_pages = layer("cookie").wrap(service_fn(page));
    let cjar = cookie_header(&send(&rt, &mut cookie_pages, get_with("/count", "")));
    let res = send(&rt, &mut cookie_pages, get_with("/token", &cjar));
    let cjar = {
        // The token's response gives the cookie its secret: the browser keeps the new one.
        let set = cookie_header(&res);
        if set.is_empty() { cjar } else { set }
    };
    let ctoken = token_of(&rt, res);
    g.bench_function("cookie_post_csrf_check", |b| {
        b.iter(|| {
            let req = Request::post("/")
                .header(header::COOKIE, &cjar)
                .header("x-csrf-token", &ctoken)
                .body(())
                .expect("request");
            send(&rt, &mut cookie_pages, req)
        })
    });
    // Events and metrics: the returning user's counter (a save per request, one `saved`
    // event) with nobody listening, with a subscriber, and with the audit sink.
    for kind in ["none", "subscriber", "audit"] {
        let mut svc = layer_with(event_hooks(kind)).wrap(service_fn(counter));
        let jar = cookie_header(&send(&rt, &mut svc, request(None)));
        g.bench_function(format!("events_{kind}"), |b| {
            b.iter(|| send(&rt, &mut svc, request(Some(&jar))))
        });
    }
    let mut svc = service_fn(bare);
    let per = allocations_per_call(|| {
        send(&rt, &mut svc, request(None));
    });
    println!("bare: {per:.1} heap allocations per request (the request included)");
    g.finish();
}

/// One request through `svc` (ready, then call), on `rt`.
fn send<S>(rt: &tokio::runtime::Runtime, svc: &mut S, req: Request<()>) -> S::Response
where
    S: Service<Request<()>, Error = Infallible>,
{
    match rt.block_on(ServiceExt::oneshot(svc, req)) {
        Ok(res) => res,
        Err(e) => match e {},
    }
}

criterion_group!(benches, bench);

/// `LAYER_LOOP=memory|cookie LAYER_ITERS=N`: just N returning-user requests, no criterion, for
/// instruction counts under `valgrind --tool=callgrind` (deterministic where timings on these
/// machines are not): run it at two N and divide the difference.
fn main() {
    #[cfg(feature = "metrics")]
    metrics_exporter_prometheus::PrometheusBuilder::new()
        .install_recorder()
        .expect("a Prometheus recorder");
    if let Some(n) = std::env::var("AUDIT_P99").ok().and_then(|v| v.parse().ok()) {
        audit_p99(n);
        return;
    }
    if let Ok(kind) = std::env::var("LAYER_LOOP") {
        let iters: u64 = std::env::var("LAYER_ITERS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(10_000);
        let rt = runtime();
        let mut svc = layer(&kind).wrap(service_fn(counter));
        let first = send(&rt, &mut svc, request(None));
        let jar = cookie_header(&first);
        for _ in 0..iters {
            send(&rt, &mut svc, request(Some(&jar)));
        }
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
