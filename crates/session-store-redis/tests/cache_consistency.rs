//! The client cache's consistency rule, attacked through the middleware as an outside review
//! broke it: two app servers A and B with caches share one Redis. Twelve clients each read on B
//! (B caches the session), write on A and wait for A's answer, then read on B with the same
//! cookie; every fourth round a logout (or "log out everywhere") on A instead of the write. Four
//! more clients keep B busy with reads, all on the machine's 2 cores. The rule: **a read served
//! from the cache reflects every write, logout and revoke whose answer any app server sharing
//! the Redis had returned before the read's request arrived.** Zero stale answers, counted over
//! more than 1,000 write-then-read and 300 logout-then-read rounds (and 300 revoke-then-read).
//! Then the same while the tracking connections are killed and Redis restarts, with an
//! uncached app server U beside B: no failed request on B beyond the outage U saw. And the same
//! attack on a Redis Cluster (a cache per master), while an operator moves a third of the
//! slots with their keys to another master and then fails a master over: zero stale answers.
#![cfg(feature = "redis-tests")]
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod support;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use session_core::Config;
use session_hyper::SessionLayer;
use session_store_redis::{RedisStore, RedisStoreBuilder};
use support::cache::{kill_tracking, warm};

/// Clients that write on A and read on B.
const CLIENTS: usize = 12;
/// Clients that only read on B, to keep it busy.
const BUSY: usize = 4;
/// Rounds per client: 12 × 112 = 1,344, of which 1,008 write and 336 end the session.
const ROUNDS: usize = 112;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum End {
    Logout,
    RevokeAll,
}

impl End {
    fn path(self) -> &'static str {
        match self {
            End::Logout => "/logout",
            End::RevokeAll => "/revoke-all",
        }
    }
}

/// The app servers: A and B with caches, U (optional) without.
struct Apps {
    a: String,
    b: String,
    u: Option<String>,
    b_store: RedisStore,
}

async fn apps(url: &str, uncached: bool) -> Apps {
    let url = url.to_owned();
    apps_on(move || RedisStore::builder(url.clone()), uncached).await
}

/// A, B (and U) on the Redis that `builder` connects to.
async fn apps_on(builder: impl Fn() -> RedisStoreBuilder, uncached: bool) -> Apps {
    let prefix = support::unique_prefix("consistency");
    let config = Config::builder()
        .key(b"client cache consistency key, 32 bytes or more".to_vec())
        .build()
        .unwrap();
    let layer = |store: RedisStore| SessionLayer::store(config.clone(), store).build().unwrap();
    let cached = || async {
        warm(
            builder()
                .prefix(&prefix)
                .client_cache(16 << 20)
                .build()
                .await
                .unwrap(),
        )
        .await
    };
    let b_store = cached().await;
    let a = support::serve(layer(cached().await)).await;
    let b = support::serve(layer(b_store.clone())).await;
    let u = if uncached {
        let plain = builder().prefix(&prefix).build().await.unwrap();
        Some(support::serve(layer(plain)).await)
    } else {
        None
    };
    Apps { a, b, u, b_store }
}

/// GET `url`: the status (0 when the request itself failed) and the body.
async fn get(c: &reqwest::Client, url: String) -> (u16, String) {
    match c.get(url).send().await {
        Ok(r) => {
            let status = r.status().as_u16();
            (status, r.text().await.unwrap_or_default())
        }
        Err(_) => (0, String::new()),
    }
}

/// What the clients saw.
#[derive(Default)]
struct Tally {
    /// Write-then-read rounds whose read on B was answered.
    writes: AtomicU64,
    /// End-then-read rounds whose read on B was answered.
    ends: AtomicU64,
    stale: Mutex<Vec<String>>,
    /// Failed requests on B and on U: when they started and ended, since the origin.
    b_failed: Mutex<Vec<(Duration, Duration)>>,
    u_failed: Mutex<Vec<(Duration, Duration)>>,
    /// Rounds done by all clients (drives the fault schedule).
    progress: AtomicU64,
}

struct Run {
    apps: Apps,
    tally: Tally,
    origin: Instant,
    /// Moved on before every restart of Redis (which loses every session).
    restarts: AtomicU64,
    stop: AtomicBool,
}

impl Run {
    /// A read on `server`; its failure is noted against B or U.
    async fn read(&self, c: &reqwest::Client, server: &str) -> Option<String> {
        let started = self.origin.elapsed();
        let (status, body) = get(c, format!("{server}/read")).await;
        if status == 200 && !body.is_empty() {
            return Some(body);
        }
        let failed = if server == self.apps.b {
            &self.tally.b_failed
        } else {
            &self.tally.u_failed
        };
        failed
            .lock()
            .unwrap()
            .push((started, self.origin.elapsed()));
        None
    }

    async fn client(&self, i: usize, end: End) {
        let c = support::browser();
        let (a, b) = (&self.apps.a, &self.apps.b);
        let owner = format!("owner{i}");
        let mut logged_in = false;
        for round in 0..ROUNDS {
            self.tally.progress.fetch_add(1, Ordering::Relaxed);
            if !logged_in {
                logged_in = get(&c, format!("{a}/login?owner={owner}")).await == (200, "in".into());
                if !logged_in {
                    continue; // Redis is down: next round
                }
            }
            // B caches the session as it is now.
            self.read(&c, b).await;
            if let Some(u) = &self.apps.u {
                self.read(&c, u).await;
            }
            let epoch = self.restarts.load(Ordering::SeqCst);
            if round % 4 == 3 {
                let (status, body) = get(&c, format!("{a}{}", end.path())).await;
                // A revoke-all of a session already gone (a restart lost it) is anonymous: a 401.
                let ended = (status == 200 && !body.is_empty()) || status == 401;
                if !ended {
                    continue;
                }
                logged_in = false;
                let Some(got) = self.read(&c, b).await else {
                    continue;
                };
                self.tally.ends.fetch_add(1, Ordering::Relaxed);
                if got != "{}" {
                    self.stale_answer(format!(
                        "client {i} round {round}: B answered {got} after a {end:?} on A"
                    ));
                }
            } else {
                let (status, body) = get(&c, format!("{a}/views")).await;
                let written = body
                    .strip_suffix(" views")
                    .and_then(|n| n.parse::<u64>().ok());
                let (200, Some(n)) = (status, written) else {
                    continue;
                };
                let Some(got) = self.read(&c, b).await else {
                    continue;
                };
                self.tally.writes.fetch_add(1, Ordering::Relaxed);
                let seen: serde_json::Value = serde_json::from_str(&got).unwrap();
                if seen.get("views").and_then(serde_json::Value::as_u64) != Some(n) {
                    // A restart since the write lost the session: an empty one is the truth.
                    let lost = got == "{}" && self.restarts.load(Ordering::SeqCst) != epoch;
                    if !lost {
                        self.stale_answer(format!(
                            "client {i} round {round}: B answered {got} after A wrote {n} views"
                        ));
                    }
                }
            }
        }
    }

    /// Once the clients did `rounds` rounds in all.
    async fn at(&self, rounds: u64) {
        while self.tally.progress.load(Ordering::Relaxed) < rounds {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    fn stale_answer(&self, what: String) {
        self.tally.stale.lock().unwrap().push(what);
    }

    /// Reads on B until the clients are done.
    async fn busy(&self, i: usize) {
        let c = support::browser();
        let _ = get(&c, format!("{}/login?owner=busy{i}", self.apps.a)).await;
        while !self.stop.load(Ordering::Relaxed) {
            let _ = get(&c, format!("{}/read", self.apps.b)).await;
        }
    }

    async fn drive(self: &Arc<Self>, end: End) {
        let busy: Vec<_> = (0..BUSY)
            .map(|i| {
                let run = Arc::clone(self);
                tokio::spawn(async move { run.busy(i).await })
            })
            .collect();
        let clients: Vec<_> = (0..CLIENTS)
            .map(|i| {
                let run = Arc::clone(self);
                tokio::spawn(async move { run.client(i, end).await })
            })
            .collect();
        for c in clients {
            c.await.unwrap();
        }
        self.stop.store(true, Ordering::Relaxed);
        for b in busy {
            b.await.unwrap();
        }
    }

    fn report(&self, what: &str) {
        let stale = self.tally.stale.lock().unwrap();
        let stats = self.apps.b_store.client_cache_stats().unwrap();
        eprintln!(
            "{what}: {} write-then-read and {} end-then-read rounds, {} stale; B's cache: {stats:?}",
            self.tally.writes.load(Ordering::Relaxed),
            self.tally.ends.load(Ordering::Relaxed),
            stale.len(),
        );
        assert!(
            stale.is_empty(),
            "{what}: {} stale answers: {:?}",
            stale.len(),
            &stale[..stale.len().min(10)]
        );
        assert!(
            stats.hits > 500,
            "{what}: B's cache served {} reads: the attack needs it serving",
            stats.hits
        );
    }
}

fn run(apps: Apps) -> Arc<Run> {
    Arc::new(Run {
        apps,
        tally: Tally::default(),
        origin: Instant::now(),
        restarts: AtomicU64::new(0),
        stop: AtomicBool::new(false),
    })
}

async fn attack(end: End) {
    let server = support::Server::start(&[]);
    let run = run(apps(&server.url(), false).await);
    run.drive(end).await;
    run.report(&format!("{end:?}"));
    assert!(run.tally.writes.load(Ordering::Relaxed) >= 1_000);
    assert!(run.tally.ends.load(Ordering::Relaxed) >= 300);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_or_logout_on_one_app_server_is_never_read_stale_on_another() {
    attack(End::Logout).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoke_on_one_app_server_is_never_read_stale_on_another() {
    attack(End::RevokeAll).await;
}

/// The same attack while, a quarter in, the tracking connections are killed every 20 ms for a
/// while, and, past half-way, Redis restarts (losing every session): zero stale answers, and
/// every failed read on B overlaps the outage that the uncached server U saw (from the restart
/// to U's last failed read).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_tracking_connections_and_a_restart_serve_nothing_stale() {
    let server = Arc::new(Mutex::new(support::Server::start(&[])));
    let url = server.lock().unwrap().url();
    let run = run(apps(&url, true).await);
    let total = (CLIENTS * ROUNDS) as u64;
    let faults = {
        let (run, server, url) = (Arc::clone(&run), Arc::clone(&server), url.clone());
        tokio::spawn(async move {
            let at = |share: u64| run.at(total * share / 100);
            at(20).await;
            let mut kills = 0;
            while run.tally.progress.load(Ordering::Relaxed) < total * 40 / 100 {
                kills += kill_tracking(&url).await;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            at(55).await;
            run.restarts.fetch_add(1, Ordering::SeqCst);
            let down = run.origin.elapsed();
            let port = tokio::task::spawn_blocking(move || {
                let mut s = server.lock().unwrap();
                let port = s.port;
                s.stop();
                std::thread::sleep(Duration::from_millis(300));
                s.restart();
                assert_eq!(s.port, port, "Redis came back on another port");
                port
            })
            .await
            .unwrap();
            (kills, down, run.origin.elapsed(), port)
        })
    };
    run.drive(End::Logout).await;
    let (kills, down, up, _) = faults.await.unwrap();
    run.report("kills and a restart");
    assert!(kills >= 10, "{kills} tracking connections killed");
    let b_failed = run.tally.b_failed.lock().unwrap().clone();
    let u_failed = run.tally.u_failed.lock().unwrap().clone();
    let outage_end = u_failed.iter().map(|f| f.1).max().unwrap_or(up).max(up);
    let beyond: Vec<_> = b_failed
        .iter()
        .filter(|(started, ended)| *started > outage_end || *ended < down)
        .collect();
    eprintln!(
        "{kills} tracking connections killed; Redis down {down:?}..{up:?}, U's outage to \
         {outage_end:?}; failed reads: B {}, U {}",
        b_failed.len(),
        u_failed.len()
    );
    assert!(
        beyond.is_empty(),
        "{} failed reads on B outside the outage: {:?}",
        beyond.len(),
        &beyond[..beyond.len().min(10)]
    );
}

/// The attack on a six-node Redis Cluster: a quarter in, 4,000 slots (with their sessions) move
/// from one master to another (`redis-cli --cluster reshard`); past half-way, a replica takes
/// over from a master (`CLUSTER FAILOVER`). Zero stale answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_resharding_and_failover_serve_nothing_stale() {
    let cluster = Arc::new(support::Cluster::start().await);
    let seeds = cluster.urls();
    let run = run(apps_on(move || RedisStore::cluster(seeds.clone()), false).await);
    let total = (CLIENTS * ROUNDS) as u64;
    let faults = {
        let (run, cluster) = (Arc::clone(&run), Arc::clone(&cluster));
        tokio::spawn(async move {
            let at = |share: u64| run.at(total * share / 100);
            at(25).await;
            let masters = cluster.masters().await;
            let (from, to) = (masters[0].1.clone(), masters[1].1.clone());
            let moving = Arc::clone(&cluster);
            let started = run.origin.elapsed();
            tokio::task::spawn_blocking(move || moving.reshard(&from, &to, 4000))
                .await
                .unwrap();
            let resharded = (started, run.origin.elapsed());
            at(55).await;
            let started = run.origin.elapsed();
            cluster.failover(masters[2].0).await;
            (resharded, (started, run.origin.elapsed()))
        })
    };
    run.drive(End::Logout).await;
    let (resharded, failed_over) = faults.await.unwrap();
    eprintln!("cluster: resharding during {resharded:?}, failover during {failed_over:?}");
    run.report("cluster resharding and failover");
    assert!(
        resharded.1 < run.origin.elapsed() && failed_over.1 < run.origin.elapsed(),
        "both faults happened mid-run"
    );
    assert!(run.tally.writes.load(Ordering::Relaxed) >= 900);
}
