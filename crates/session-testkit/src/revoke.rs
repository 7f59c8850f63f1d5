//! "Log out everywhere else" racing a regenerate in another tab of the same browser, on any
//! store that keeps an owner index: the races of `session-hyper/tests/revoke_races.rs` (memory,
//! Redis) and `session-store-postgres/tests/revoke_races.rs` (PostgreSQL), here so that every
//! store meets the same ones.
//!
//! One browser (a client with a cookie jar, whose two tabs share it) is logged in as an owner,
//! and so are two other browsers. The first tab asks to log out everywhere else (the app takes
//! the owner from the session, `/revoke-others`); the second logs in again (`regenerate()` and
//! bind). The browser must stay logged in under whichever id it ends up holding, and the other
//! browsers must be logged out.

use std::sync::Arc;
use std::time::{Duration, Instant};

use session_core::Config;

use session_core::store::Store;
use session_hyper::SessionLayer;

use crate::capture::KEY1;
use crate::client::{browser, get as fetch};
use crate::stores::{Held, Point};

/// Serves the test app on `store` on a fresh loopback port; its URL.
async fn serve<S: Store>(store: S) -> String {
    let config = Config::builder().key(KEY1.to_vec()).build().unwrap();
    crate::app::serve(SessionLayer::store(config, store).build().unwrap()).await
}

async fn get(c: &reqwest::Client, url: &str, path: &str) -> (u16, String) {
    let r = fetch(c, &format!("{url}{path}")).await;
    (r.status, r.body)
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
        let owner = crate::values::unique(label);
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
        get(c, &self.url, &format!("/login?owner={}", self.owner)).await
    }
    async fn revoke(&self) -> (u16, String) {
        self.revoke_after(0).await
    }
    /// A revoke whose request waits `ms` between loading its session and revoking.
    async fn revoke_after(&self, ms: u64) -> (u16, String) {
        get(&self.me, &self.url, &format!("/revoke-others?wait={ms}")).await
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
    let hold = Arc::clone(&held.hold);
    let url = serve(held).await;
    let mut faults = Vec::new();
    let mut note = |order: &str, got: Vec<&'static str>| {
        faults.extend(got.into_iter().map(|f| format!("{label}, {order}: {f}")));
    };

    // (a1) The revoke has loaded its session and waits to list; the other tab's login
    // completes; then the revoke lists and ends.
    let r = Round::start(&url, "a1").await;
    hold.arm(Point::Entries);
    let (revoke, _) = tokio::join!(r.revoke(), async {
        hold.arrived().await;
        assert_eq!(r.login(&r.me).await.0, 200);
        hold.release();
    });
    assert_eq!(revoke.0, 200, "{revoke:?}");
    let mut got = r.faults().await;
    if revoke.1 != "2" {
        got.push("the revoke did not count exactly the two others");
    }
    note("revoke loaded, login completed, revoke listed", got);

    // (a2) The login waits between its create and its supersede while the revoke runs.
    let r = Round::start(&url, "a2").await;
    hold.arm(Point::Supersede);
    let (login, revoke) = tokio::join!(r.login(&r.me), async {
        hold.arrived().await;
        let revoke = r.revoke().await;
        hold.release();
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
    hold.arm(Point::Create);
    let (login, revoke) = tokio::join!(r.login(&r.me), async {
        hold.arrived().await;
        let revoke = r.revoke().await;
        hold.release();
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
    hold.arm(Point::Entries);
    let (revoke, _) = tokio::join!(r.revoke(), async {
        hold.arrived().await;
        assert_eq!(r.login(&r.me).await.0, 200);
        assert_eq!(r.login(&r.me).await.0, 200);
        hold.release();
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
    hold.arm(Point::Load);
    let (revoke, _) = tokio::join!(r.revoke(), async {
        hold.arrived().await;
        assert_eq!(r.login(&r.me).await.0, 200);
        hold.release();
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
    /// answered before the login did.
    pub live_revoke_first: usize,
    /// The revoke found its session live and answered after the login did.
    pub live_login_first: usize,
    /// The revoke's request carried an id the login had superseded (anonymous; asked again).
    pub superseded: usize,
    /// The caller logged out.
    pub callers_logged_out: usize,
    /// Another browser still logged in.
    pub others_left: usize,
    /// A login or a revoke that failed.
    pub errors: usize,
}

impl Tally {
    /// Panics unless each of the `rounds` rounds found the revoke live or superseded, and none
    /// logged the caller out, left another browser logged in or failed.
    pub fn assert_clean(&self, label: &str, rounds: usize) {
        eprintln!("{label}: {rounds} rounds: {self:?}");
        assert_eq!(
            self.live_revoke_first + self.live_login_first + self.superseded,
            rounds,
            "{label}: {self:?}"
        );
        assert_eq!(
            (self.callers_logged_out, self.others_left, self.errors),
            (0, 0, 0),
            "{label}: {self:?}"
        );
    }
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
