//! "Log out everywhere else" racing a regenerate in another tab of the same browser, on any
//! store that keeps an owner index: the attacks of `tests/revoke_races.rs` (memory, Redis) and
//! of `session-store-postgres/tests/revoke_races.rs` (PostgreSQL), shared so that every store
//! meets the same races.
//!
//! One browser (a client with a cookie jar, whose two tabs share it) is logged in as an owner,
//! and so are two other browsers. The first tab asks to log out everywhere else (the app takes
//! the owner from the session); the second logs in again (`regenerate()` and bind). The
//! browser must stay logged in under whichever id it ends up holding, and the other browsers
//! must be logged out.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use session_core::Config;
use session_core::Handle;
use session_core::store::{
    BoxFuture, Change, Created, Destroyed, Loaded, Meta, Record, Store, StoreError, StoreKey,
    Supersede, Updated,
};
use session_core::store::{IndexEntry, Indexed, OwnerIndex};
use session_hyper::{Session, SessionLayer};
use tokio::sync::Notify;

const KEY: &[u8] = b"revoke races key: 32 bytes or more";

/// A store call a test can hold, once, before it reaches the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Point {
    /// A request loading its session.
    Load = 1,
    /// A revoke listing the owner's index.
    Entries = 2,
    /// A regenerate creating its new record (its index entry is already filed).
    Create = 3,
    /// A regenerate superseding the old id (its new record exists).
    Supersede = 4,
}

/// Where the next call at the armed [`Point`] waits until released.
#[derive(Default)]
pub struct Gate {
    armed: AtomicU8,
    arrived: Notify,
    release: Notify,
}

impl Gate {
    /// The next call at `point` waits.
    pub fn arm(&self, point: Point) {
        self.armed.store(point as u8, Ordering::SeqCst);
    }
    /// Resolves once a call waits at the armed point.
    pub async fn arrived(&self) {
        self.arrived.notified().await;
    }
    /// Lets the waiting call go on.
    pub fn release(&self) {
        self.release.notify_one();
    }
    async fn pass(&self, point: Point) {
        let at = point as u8;
        if self
            .armed
            .compare_exchange(at, 0, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok()
        {
            self.arrived.notify_one();
            self.release.notified().await;
        }
    }
}

/// A store whose calls at a [`Point`] can be held (its owner index too).
#[derive(Clone)]
pub struct Held<S> {
    pub inner: S,
    pub gate: Arc<Gate>,
}

impl<S: Store> Held<S> {
    pub fn new(inner: S) -> Self {
        Self {
            inner,
            gate: Arc::default(),
        }
    }
    fn index(&self) -> &dyn OwnerIndex {
        self.inner
            .owner_index()
            .expect("a store with an owner index")
    }
}

impl<S: Store> Store for Held<S> {
    async fn create(&self, k: &StoreKey, r: &Record, ttl: Duration) -> Result<Created, StoreError> {
        self.gate.pass(Point::Create).await;
        self.inner.create(k, r, ttl).await
    }
    async fn load(&self, k: &StoreKey) -> Result<Loaded, StoreError> {
        self.gate.pass(Point::Load).await;
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
        self.inner.destroy(k).await
    }
    async fn supersede(
        &self,
        k: &StoreKey,
        next: &StoreKey,
        ttl: Duration,
    ) -> Result<Supersede, StoreError> {
        self.gate.pass(Point::Supersede).await;
        self.inner.supersede(k, next, ttl).await
    }
    async fn touch(&self, k: &StoreKey, m: Meta, ttl: Duration) -> Result<Updated, StoreError> {
        self.inner.touch(k, m, ttl).await
    }
    fn merges_deltas(&self) -> bool {
        self.inner.merges_deltas()
    }
    fn owner_index(&self) -> Option<&dyn OwnerIndex> {
        Some(self)
    }
}

impl<S: Store> OwnerIndex for Held<S> {
    fn index<'a>(
        &'a self,
        owner: &'a str,
        entry: &'a IndexEntry,
        until: u64,
        now: u64,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        self.index().index(owner, entry, until, now)
    }
    fn unindex<'a>(
        &'a self,
        owner: &'a str,
        handles: &'a [Handle],
        now: u64,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        self.index().unindex(owner, handles, now)
    }
    fn entries<'a>(
        &'a self,
        owner: &'a str,
        now: u64,
    ) -> BoxFuture<'a, Result<Vec<Indexed>, StoreError>> {
        Box::pin(async move {
            self.gate.pass(Point::Entries).await;
            self.index().entries(owner, now).await
        })
    }
}

/// The account app: `/login?OWNER` (regenerate, bind), `/whoami`, `/views`, and
/// `/revoke-others?MS`, which takes the owner from the session (401 when it has none), waits
/// `MS` ms (checking a password) and revokes the owner's other sessions.
async fn app(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let s = Session::from_request(&req).unwrap();
    let query = req.uri().query().unwrap_or("").to_owned();
    let out = async {
        Ok::<_, session_hyper::Error>(match req.uri().path() {
            "/login" => {
                s.regenerate().await?;
                s.insert("user", &query).await?;
                s.set_owner(&query).await?;
                (StatusCode::OK, "in".to_owned())
            }
            "/whoami" => {
                let user: Option<String> = s.get("user").await?;
                (StatusCode::OK, user.unwrap_or_else(|| "anonymous".into()))
            }
            "/views" => {
                let n: u64 = s.get("views").await?.unwrap_or(0) + 1;
                s.insert("views", n).await?;
                (StatusCode::OK, n.to_string())
            }
            "/revoke-others" => match s.owner().await? {
                Some(owner) => {
                    // `?ms`: the app checks the password first, this long.
                    let ms = query.parse().unwrap_or(0);
                    tokio::time::sleep(Duration::from_millis(ms)).await;
                    let ended = s.revoke_other_sessions(&owner).await?;
                    (StatusCode::OK, ended.to_string())
                }
                None => (StatusCode::UNAUTHORIZED, "anonymous".to_owned()),
            },
            _ => (StatusCode::NOT_FOUND, "?".to_owned()),
        })
    }
    .await;
    Ok(match out {
        Ok((status, body)) => {
            let mut r = Response::new(Full::from(body));
            *r.status_mut() = status;
            r
        }
        Err(e) => e.response(),
    })
}

/// Serves the account app on `store` on a fresh loopback port; its URL.
pub async fn serve<S: Store>(store: S) -> String {
    let config = Config::builder().key(KEY.to_vec()).build().unwrap();
    let layer = SessionLayer::store(config, store).build().unwrap();
    let service = layer.wrap(hyper::service::service_fn(app));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
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

/// A browser: one cookie jar, shared by its tabs.
fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

async fn get(c: &reqwest::Client, url: &str, path: &str) -> (u16, String) {
    let r = c.get(format!("{url}{path}")).send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

/// An owner id no other round uses.
fn owner_id(label: &str) -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{label}{}x{nanos}", N.fetch_add(1, Ordering::Relaxed))
}

/// The browser under test and two other browsers, all logged in as `owner`.
struct Round {
    url: String,
    owner: String,
    me: reqwest::Client,
    others: [reqwest::Client; 2],
}

impl Round {
    async fn start(url: &str, label: &str) -> Round {
        let owner = owner_id(label);
        let round = Round {
            url: url.to_owned(),
            owner,
            me: browser(),
            others: [browser(), browser()],
        };
        for c in std::iter::once(&round.me).chain(&round.others) {
            assert_eq!(round.login(c).await.0, 200);
        }
        round
    }
    async fn login(&self, c: &reqwest::Client) -> (u16, String) {
        get(c, &self.url, &format!("/login?{}", self.owner)).await
    }
    async fn revoke(&self) -> (u16, String) {
        self.revoke_after(0).await
    }
    /// A revoke whose request waits `ms` between loading its session and revoking.
    async fn revoke_after(&self, ms: u64) -> (u16, String) {
        get(&self.me, &self.url, &format!("/revoke-others?{ms}")).await
    }
    /// What went wrong: the browser logged out, another browser still logged in.
    async fn faults(&self) -> Vec<&'static str> {
        let mut faults = Vec::new();
        if get(&self.me, &self.url, "/whoami").await.1 != self.owner {
            faults.push("the caller was logged out");
        }
        for c in &self.others {
            if get(c, &self.url, "/whoami").await.1 != "anonymous" {
                faults.push("another browser is still logged in");
            }
        }
        faults
    }
}

/// Every forced order, on `store`; the faults, each named after its order.
pub async fn forced_orders<S: Store>(store: S, label: &str) -> Vec<String> {
    let held = Held::new(store);
    let gate = Arc::clone(&held.gate);
    let url = serve(held).await;
    let mut faults = Vec::new();
    let mut note = |order: &str, got: Vec<&'static str>| {
        faults.extend(got.into_iter().map(|f| format!("{label}, {order}: {f}")));
    };

    // (a1) The revoke has loaded its session and waits to list; the other tab's login
    // completes; then the revoke lists and ends.
    let r = Round::start(&url, "a1").await;
    gate.arm(Point::Entries);
    let (revoke, _) = tokio::join!(r.revoke(), async {
        gate.arrived().await;
        assert_eq!(r.login(&r.me).await.0, 200);
        gate.release();
    });
    assert_eq!(revoke.0, 200, "{revoke:?}");
    let mut got = r.faults().await;
    if revoke.1 != "2" {
        got.push("the revoke did not count exactly the two others");
    }
    note("revoke loaded, login completed, revoke listed", got);

    // (a2) The login waits between its create and its supersede while the revoke runs.
    let r = Round::start(&url, "a2").await;
    gate.arm(Point::Supersede);
    let (login, revoke) = tokio::join!(r.login(&r.me), async {
        gate.arrived().await;
        let revoke = r.revoke().await;
        gate.release();
        revoke
    });
    assert_eq!((login.0, revoke.0), (200, 200), "{login:?} {revoke:?}");
    let mut got = r.faults().await;
    if revoke.1 != "2" {
        got.push("the revoke did not count exactly the two others");
    }
    note(
        "login created its record, revoke ran, login superseded",
        got,
    );

    // (a3) The login has filed its new id's entry and waits to create the record while the
    // revoke runs: the revoke finds no record there, and the create succeeds afterwards.
    let r = Round::start(&url, "a3").await;
    gate.arm(Point::Create);
    let (login, revoke) = tokio::join!(r.login(&r.me), async {
        gate.arrived().await;
        let revoke = r.revoke().await;
        gate.release();
        revoke
    });
    assert_eq!((login.0, revoke.0), (200, 200), "{login:?} {revoke:?}");
    note(
        "login filed its entry, revoke ran, login created",
        r.faults().await,
    );

    // (a4) Two logins in the other tab complete while the revoke waits to list (the first
    // new id is a marker by then, whose record can't be read): the second new id names both
    // ids it descends from.
    let r = Round::start(&url, "a4").await;
    gate.arm(Point::Entries);
    let (revoke, _) = tokio::join!(r.revoke(), async {
        gate.arrived().await;
        assert_eq!(r.login(&r.me).await.0, 200);
        assert_eq!(r.login(&r.me).await.0, 200);
        gate.release();
    });
    assert_eq!(revoke.0, 200, "{revoke:?}");
    let mut got = r.faults().await;
    if revoke.1 != "2" {
        got.push("the revoke did not count exactly the two others");
    }
    note("revoke loaded, two logins completed, revoke listed", got);

    // (b) The login completes before the revoke's request loads its session: that request
    // carries a superseded id, is anonymous, and revokes nothing; asked again from the
    // browser (now holding the new id), it ends the others.
    let r = Round::start(&url, "b").await;
    gate.arm(Point::Load);
    let (revoke, _) = tokio::join!(r.revoke(), async {
        gate.arrived().await;
        assert_eq!(r.login(&r.me).await.0, 200);
        gate.release();
    });
    let mut got = Vec::new();
    if revoke != (401, "anonymous".to_owned()) {
        got.push("the superseded request was not anonymous");
    }
    if r.revoke().await != (200, "2".to_owned()) {
        got.push("asked again, the revoke did not end exactly the two others");
    }
    got.extend(r.faults().await);
    note("login completed, then the revoke loaded", got);
    faults
}

/// What the free-running rounds saw.
#[derive(Debug, Default)]
pub struct Tally {
    /// The revoke found its session live (loaded before the login superseded it), and
    /// answered before the login did / after it.
    pub live_revoke_first: usize,
    pub live_login_first: usize,
    /// The revoke's request carried an id the login had superseded (anonymous; asked again).
    pub superseded: usize,
    /// The caller logged out, another browser still logged in, a revoke that failed.
    pub callers_logged_out: usize,
    pub others_left: usize,
    pub errors: usize,
}

/// A small deterministic jitter (0 to 7 ms) per round and use, so that every order occurs.
fn jitter(round: usize, side: usize) -> Duration {
    let x = (round as u64 + 1)
        .wrapping_mul(6_364_136_223_846_793_005)
        .wrapping_add(side as u64 * 1_442_695_040_888_963_407);
    Duration::from_millis((x >> 61) ^ ((x >> 33) & 7))
}

/// `f`'s output, `wait` after starting, and when it came.
async fn after<F: std::future::Future>(wait: Duration, f: F) -> (F::Output, Instant) {
    tokio::time::sleep(wait).await;
    let got = f.await;
    (got, Instant::now())
}

/// `rounds` free-running rounds on `store`, `lanes` at a time (each with its own owner and
/// browsers): in each, the browser's two tabs revoke the others (after 0 to 7 ms checking a
/// password) and log in again at once, each starting 0 to 7 ms late, while the other browsers
/// count views.
pub async fn free_running<S: Store>(store: S, rounds: usize, lanes: usize) -> Tally {
    let url = serve(store).await;
    let lane = |lane: usize| {
        let url = url.clone();
        async move {
            let mut t = Tally::default();
            for round in (lane..rounds).step_by(lanes) {
                let r = Round::start(&url, "free").await;
                let busy = async {
                    for c in &r.others {
                        get(c, &r.url, "/views").await;
                    }
                };
                let ((revoke, revoked_at), (login, logged_in_at), ()) = tokio::join!(
                    after(
                        jitter(round, 0),
                        r.revoke_after(jitter(round, 2).as_millis() as u64)
                    ),
                    after(jitter(round, 1), r.login(&r.me)),
                    busy
                );
                if login.0 != 200 {
                    t.errors += 1;
                    continue;
                }
                match revoke {
                    (200, _) if revoked_at < logged_in_at => t.live_revoke_first += 1,
                    (200, _) => t.live_login_first += 1,
                    (401, _) => {
                        t.superseded += 1;
                        if r.revoke().await.0 != 200 {
                            t.errors += 1;
                        }
                    }
                    _ => t.errors += 1,
                }
                for fault in r.faults().await {
                    match fault {
                        "the caller was logged out" => t.callers_logged_out += 1,
                        _ => t.others_left += 1,
                    }
                }
            }
            t
        }
    };
    let lanes = futures_util::future::join_all((0..lanes).map(lane)).await;
    lanes.into_iter().fold(Tally::default(), |mut all, t| {
        all.live_revoke_first += t.live_revoke_first;
        all.live_login_first += t.live_login_first;
        all.superseded += t.superseded;
        all.callers_logged_out += t.callers_logged_out;
        all.others_left += t.others_left;
        all.errors += t.errors;
        all
    })
}
