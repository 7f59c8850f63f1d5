//! The drain of a switch between our own stores (`SessionLayer::drain` with
//! `SessionLayerBuilder::migrate_from`): every idle session of the old store moves into the new
//! one off the request path, with its owner binding and index entry; its first request gives it
//! an id of ours; and the attacks: a logout or "log out everywhere" racing the drain, requests
//! racing a drained session's first request, a drain cut short and run again.
//!
//! Every old session here is made by the old app itself (the test app on the old store).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::Arc;

use serde_json::{Value, json};
use session_core::Config;
use session_core::store::{DynStore, Loaded};
use session_hyper::{DrainReport, MemoryStore, SessionLayer};
use session_testkit::capture::{KEY1, Secrets, attack};
use session_testkit::client::{Jar, Reply};
use session_testkit::jitter::Jitter;
use session_testkit::served::App;

/// Rounds of each race.
const ROUNDS: usize = 200;

fn config() -> Config {
    Config::builder().key(KEY1.to_vec()).build().unwrap()
}

/// The old app on `old`, and the new layer (moving from `old` into `new`) with its app.
async fn apps(old: Arc<dyn DynStore>, new: Arc<dyn DynStore>) -> (App, SessionLayer, App) {
    let old_app = App::serve(SessionLayer::store(config(), old.clone()).build().unwrap()).await;
    let layer = SessionLayer::store(config(), new)
        .migrate_from(old)
        .build()
        .unwrap();
    let new_app = App::serve(layer.clone()).await;
    (old_app, layer, new_app)
}

/// A browser signed in on the old app (see `App::signed_in`).
async fn old_login(old: &App, user: &str, owner: Option<&str>, secrets: &Secrets) -> Jar {
    old.signed_in(user, owner, secrets).await
}

async fn read(app: &App, jar: &Jar) -> (Reply, Value) {
    let r = app.get("/session", jar).await;
    let data = serde_json::from_str(&r.body).unwrap_or(Value::Null);
    (r, data)
}

async fn drain(layer: &SessionLayer) -> DrainReport {
    layer.drain().unwrap().batch(50).run(|_| {}).await.unwrap()
}

/// Live records of `user` in `store`, by listing it. A drain's record marked pending does not
/// count: it is no session (a request starts it only while the old session lives), and one
/// taken back lapses within a second.
async fn live_of(store: &dyn DynStore, user: &str) -> usize {
    let (mut n, mut cursor) = (0, None::<String>);
    loop {
        let (keys, next) = store.scan_dyn(cursor.as_deref(), 100).await.unwrap();
        for k in keys {
            if let Loaded::Live(r) = store.load_dyn(&k).await.unwrap() {
                let pending = r.data.get("_moved") == Some(&json!("pending"));
                n += usize::from(r.data.get("user") == Some(&json!(user)) && !pending);
            }
        }
        match next {
            Some(c) => cursor = Some(c),
            None => return n,
        }
    }
}

/// The sessions an owner's listing shows on `app`.
async fn listed(app: &App, owner: &str) -> usize {
    let r = app
        .get(&format!("/owners/{owner}/sessions"), &Jar::default())
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    serde_json::from_str::<Vec<Value>>(&r.body).unwrap().len()
}

/// 300 sessions (a third bound to owners) drained from one memory store into another: all
/// moved and none left there, listed under their owners, each carrying on under a new id of
/// ours on its first request, the old cookie anonymous afterwards; a second run finds nothing.
#[test]
fn a_drain_moves_every_session_between_our_stores() {
    attack(|secrets| async move {
        let (old, new) = (Arc::new(MemoryStore::new()), Arc::new(MemoryStore::new()));
        let (old_app, layer, new_app) = apps(old.clone(), new.clone()).await;
        let owner = session_testkit::values::unique("ann");
        let mut jars = Vec::new();
        for i in 0..300 {
            let bound = (i % 3 == 0).then_some(owner.as_str());
            jars.push(old_login(&old_app, &format!("u{i}"), bound, &secrets).await);
        }
        let report = drain(&layer).await;
        assert_eq!((report.moved, report.failed), (300, 0), "{report:?}");
        assert_eq!(
            live_of(old.as_ref(), "u0").await,
            0,
            "left in the old store"
        );
        assert_eq!(
            listed(&new_app, &owner).await,
            100,
            "the owner's drained sessions"
        );
        for (i, jar) in jars.iter().enumerate() {
            let (r, data) = read(&new_app, jar).await;
            assert_eq!(data, json!({ "user": format!("u{i}"), "views": 41 }), "{i}");
            let id = r.sets_id().expect("a new id");
            assert_ne!(Some(id.as_str()), jar.id(), "{i}: the old id kept");
            let mut moved = jar.clone();
            moved.apply(&r);
            let (r, data) = read(&new_app, &moved).await;
            assert_eq!(
                (r.is_new(), data["views"].clone()),
                (Some(false), json!(41))
            );
        }
        assert_eq!(listed(&new_app, &owner).await, 100, "listed once each");
        for jar in &jars {
            let (r, _) = read(&new_app, jar).await;
            assert_eq!(r.is_new(), Some(true), "the old cookie again");
            assert!(r.sets_id().is_none());
        }
        let again = drain(&layer).await;
        assert_eq!((again.moved, again.failed), (0, 0), "{again:?}");
    });
}

/// A logout with the cookie racing the drain of its session wins, whoever comes first: 200
/// rounds of a drain and a logout at once. Afterwards no record of the user lives in either
/// store, whatever id a response handed out leads nowhere, and the cookie is anonymous.
#[test]
fn a_logout_racing_the_drain_wins() {
    attack(|secrets| async move {
        let old = Arc::new(Jitter::new(MemoryStore::new(), 7));
        let new = Arc::new(Jitter::new(MemoryStore::new(), 11));
        let (old_app, layer, new_app) = apps(old.clone(), new.clone()).await;
        // Rounds where the drain found the session gone or met the logout, where it moved it
        // first, and where it found the logout's work under way (counted in the first too).
        let mut orders = [0; 3];
        for round in 0..ROUNDS {
            let user = format!("eve{round}");
            let jar = old_login(&old_app, &user, None, &secrets).await;
            let draining = {
                let layer = layer.clone();
                tokio::spawn(async move { drain(&layer).await })
            };
            // The logout sent 0 to 4 ms after the drain began: every step of the drain meets it.
            let offset = (round as u64 * 7919) % 4_000;
            tokio::time::sleep(std::time::Duration::from_micros(offset)).await;
            let logout = new_app.logout(&jar).await;
            assert_eq!(logout.status, 204, "round {round}: {}", logout.body);
            let report = draining.await.unwrap();
            assert_eq!(report.failed, 0, "round {round}: {report:?}");
            orders[usize::from(report.moved == 1)] += 1;
            if report.moving == 1 {
                orders[2] += 1;
            }
            assert!(
                logout.sets_id().is_none(),
                "round {round}: a logout set an id"
            );
            let (r, data) = read(&new_app, &jar).await;
            assert_eq!((r.is_new(), data), (Some(true), json!({})), "round {round}");
            assert_eq!(live_of(old.as_ref(), &user).await, 0, "round {round}: old");
            assert_eq!(live_of(new.as_ref(), &user).await, 0, "round {round}: new");
        }
        eprintln!("logout first / drain first / met midway: {orders:?}");
        assert!(orders[0] > 0 && orders[1] > 0, "one order only: {orders:?}");
    });
}

/// "Log out everywhere" reaches sessions the drain wrote and has not yet handed an id: two
/// sessions of one owner drained, one revoke from a third: both anonymous, none listed.
#[test]
fn log_out_everywhere_reaches_drained_sessions() {
    attack(|secrets| async move {
        let (old, new) = (Arc::new(MemoryStore::new()), Arc::new(MemoryStore::new()));
        let (old_app, layer, new_app) = apps(old, new).await;
        for round in 0..50 {
            let owner = session_testkit::values::unique("gus");
            let a = old_login(&old_app, "gus", Some(&owner), &secrets).await;
            let b = old_login(&old_app, "gus", Some(&owner), &secrets).await;
            let report = drain(&layer).await;
            assert_eq!(report.failed, 0, "round {round}: {report:?}");
            let mut c = Jar::default();
            let r = new_app.get(&format!("/login?owner={owner}"), &c).await;
            c.apply(&r);
            let r = new_app.get("/revoke-all", &c).await;
            assert_eq!(r.status, 200, "round {round}: {}", r.body);
            for jar in [&a, &b] {
                let (r, data) = read(&new_app, jar).await;
                assert_eq!((r.is_new(), data), (Some(true), json!({})), "round {round}");
            }
            assert_eq!(listed(&new_app, &owner).await, 0, "round {round}");
        }
    });
}

/// Requests racing a drained session's first request make one session: 200 rounds of a
/// session drained, then 6 requests at once with its cookie. One reply sets an id, one record
/// of the user lives, the rest are anonymous and touch no cookie.
#[test]
fn requests_racing_a_drained_sessions_first_request_make_one_session() {
    attack(|secrets| async move {
        let (old, new) = (Arc::new(MemoryStore::new()), Arc::new(MemoryStore::new()));
        let (old_app, layer, new_app) = apps(old, new.clone()).await;
        for round in 0..ROUNDS {
            let user = format!("bob{round}");
            let jar = old_login(&old_app, &user, None, &secrets).await;
            let report = drain(&layer).await;
            assert_eq!(report.moved, 1, "round {round}: {report:?}");
            let ids = new_app.race_first_use(&jar, 6, &user, round).await;
            assert_eq!(ids.len(), 1, "round {round}: {} new ids", ids.len());
            assert_eq!(live_of(new.as_ref(), &user).await, 1, "round {round}");
        }
    });
}

/// A drain racing requests that move the same session from the old store makes one session:
/// 200 rounds of a drain and 3 requests with the old cookie at once, on stores that delay each
/// call 0 to 2 ms. Exactly one reply hands out an id, and one record of the user lives.
/// (From the outside review: a request's move from the old store and the drain's record could
/// both become sessions.)
#[test]
fn a_drain_racing_requests_makes_one_session() {
    attack(|secrets| async move {
        let mut by_drain = 0;
        let (mut old_app, mut layer, mut new_app, mut new) = (None, None, None, None);
        for round in 0..ROUNDS {
            // Fresh stores every 40 rounds: a drain walks every marker the rounds before left.
            if round % 40 == 0 {
                let old = Arc::new(Jitter::new(MemoryStore::new(), 3 + round as u64));
                let store = Arc::new(Jitter::new(MemoryStore::new(), 5 + round as u64));
                let (o, l, n) = apps(old, store.clone()).await;
                (old_app, layer, new_app, new) = (Some(o), Some(l), Some(n), Some(store));
            }
            let (old_app, layer, new_app, new) = (
                old_app.as_ref().unwrap(),
                layer.as_ref().unwrap(),
                new_app.as_ref().unwrap(),
                new.as_ref().unwrap(),
            );
            let user = format!("kim{round}");
            let jar = old_login(old_app, &user, None, &secrets).await;
            let draining = {
                let layer = layer.clone();
                tokio::spawn(async move { drain(&layer).await })
            };
            let offset = (round as u64 * 7919) % 3_000;
            tokio::time::sleep(std::time::Duration::from_micros(offset)).await;
            let ids = new_app.race_first_use(&jar, 3, &user, round).await;
            let report = draining.await.unwrap();
            assert_eq!(report.failed, 0, "round {round}: {report:?}");
            by_drain += usize::from(report.moved == 1);
            assert_eq!(ids.len(), 1, "round {round}: {} ids handed out", ids.len());
            assert_eq!(live_of(new.as_ref(), &user).await, 1, "round {round}");
        }
        eprintln!("drained before the requests came: {by_drain} of {ROUNDS}");
        assert!(
            by_drain > 0 && by_drain < ROUNDS,
            "one order only: {by_drain}"
        );
    });
}

/// Once drained, sessions no longer need the old store: with it refusing every call, each
/// drained session's first request moves it (no 503). (From the outside review: the first
/// request asked the old store first, and a failed delete there undid the move.)
#[test]
fn drained_sessions_move_with_the_old_store_down() {
    attack(|secrets| async move {
        let old = session_testkit::stores::Probe::new(MemoryStore::new());
        let new = Arc::new(MemoryStore::new());
        let (old_app, layer, new_app) = apps(Arc::new(old.clone()), new).await;
        let mut jars = Vec::new();
        for i in 0..50 {
            jars.push(old_login(&old_app, &format!("v{i}"), None, &secrets).await);
        }
        let report = drain(&layer).await;
        assert_eq!((report.moved, report.failed), (50, 0), "{report:?}");
        old.set_mode(session_testkit::stores::FAIL);
        for (i, jar) in jars.iter().enumerate() {
            let (r, data) = read(&new_app, jar).await;
            assert_eq!(
                (r.status, data["user"].clone()),
                (200, json!(format!("v{i}")))
            );
            assert!(r.sets_id().is_some(), "{i}");
        }
        let (r, _) = read(&new_app, &jars[0]).await;
        assert_eq!(r.is_new(), Some(true), "the old cookie again");
    });
}

/// A drain that confirmed a session but could not retire its old record (the old store failed
/// the supersede): the session's first request retires it (or deletes it, a logout), so once
/// every marker has lapsed the old cookie is anonymous, not moved a second time. (From the
/// second and third outside reviews.)
#[test]
fn a_drain_cut_short_before_retiring_never_moves_a_session_twice() {
    attack(|secrets| async move {
        let old = session_testkit::stores::Recorder::new(MemoryStore::new());
        let short = || {
            Config::builder()
                .key(KEY1.to_vec())
                .supersede_grace(std::time::Duration::from_millis(300))
                .build()
                .unwrap()
        };
        let old_app = App::serve(SessionLayer::store(short(), old.clone()).build().unwrap()).await;
        let layer = SessionLayer::store(short(), MemoryStore::new())
            .migrate_from(old.clone())
            .build()
            .unwrap();
        let new_app = App::serve(layer.clone()).await;
        for round in 0..20 {
            let user = format!("xi{round}");
            let jar = old_login(&old_app, &user, None, &secrets).await;
            old.pause
                .fail_supersede
                .store(true, std::sync::atomic::Ordering::SeqCst);
            let report = drain(&layer).await;
            assert_eq!(report.failed, 1, "round {round}: {report:?}");
            let (r, data) = read(&new_app, &jar).await;
            assert_eq!(data["user"], json!(user), "round {round}: {}", r.body);
            let mut moved = jar.clone();
            moved.apply(&r);
            assert_eq!(new_app.logout(&moved).await.status, 204, "round {round}");
            // The same with a logout as the session's first request (the old cookie).
            let other = format!("xo{round}");
            let first_logout = old_login(&old_app, &other, None, &secrets).await;
            old.pause
                .fail_supersede
                .store(true, std::sync::atomic::Ordering::SeqCst);
            assert_eq!(drain(&layer).await.failed, 1, "round {round}");
            let r = new_app.logout(&first_logout).await;
            assert_eq!(r.status, 204, "round {round}");
            tokio::time::sleep(std::time::Duration::from_millis(700)).await;
            for (what, jar) in [("moved", &jar), ("logout first", &first_logout)] {
                let (r, data) = read(&new_app, jar).await;
                assert_eq!(
                    (r.is_new(), data),
                    (Some(true), json!({})),
                    "round {round}: {what}: moved again"
                );
            }
        }
    });
}

/// Two drains of one source never run at once (they would take back each other's records):
/// a second one started while the first runs stops with an error, and one started after it
/// runs.
#[test]
fn one_drain_at_a_time() {
    attack(|secrets| async move {
        let old = Arc::new(Jitter::new(MemoryStore::new(), 13));
        let (old_app, layer, _new_app) = apps(old, Arc::new(MemoryStore::new())).await;
        for i in 0..100 {
            old_login(&old_app, &format!("w{i}"), None, &secrets).await;
        }
        let first = {
            let layer = layer.clone();
            tokio::spawn(async move { layer.drain().unwrap().batch(10).run(|_| {}).await })
        };
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        let second = layer.drain().unwrap().run(|_| {}).await;
        assert!(
            matches!(second, Err(session_hyper::Error::Drain(_))),
            "{second:?}"
        );
        let first = first.await.unwrap().unwrap();
        assert_eq!((first.moved, first.failed), (100, 0), "{first:?}");
        let third = drain(&layer).await;
        assert_eq!((third.moved, third.failed), (0, 0), "{third:?}");
    });
}

/// Redis (both formats) into PostgreSQL and back, on the real servers: the drain moves each
/// session once and a first request carries on with it.
#[cfg(all(feature = "redis-tests", feature = "postgres-tests"))]
#[test]
fn a_drain_moves_sessions_between_redis_and_postgres() {
    use session_store_redis::{Format, RedisStore};
    attack(|secrets| async move {
        let redis = |format| async move {
            let prefix = format!("{}:", session_testkit::values::unique("drain"));
            let store = RedisStore::builder(session_testkit::redis::shared_url())
                .prefix(prefix)
                .format(format)
                .build()
                .await
                .unwrap();
            Arc::new(store) as Arc<dyn DynStore>
        };
        let postgres = || async { Arc::new(session_testkit::postgres::store("drain").await) };
        type Pair = (Arc<dyn DynStore>, Arc<dyn DynStore>, bool);
        let pairs: [Pair; 3] = [
            (redis(Format::V1).await, postgres().await, false),
            (redis(Format::Koa).await, postgres().await, true),
            (postgres().await, redis(Format::V1).await, false),
        ];
        for (i, (old, new, koa)) in pairs.into_iter().enumerate() {
            let cfg = || {
                Config::builder()
                    .key(KEY1.to_vec())
                    .koa_compat(koa)
                    .build()
                    .unwrap()
            };
            let old_app =
                App::serve(SessionLayer::store(cfg(), old.clone()).build().unwrap()).await;
            let layer = SessionLayer::store(cfg(), new.clone())
                .migrate_from(old.clone())
                .build()
                .unwrap();
            let new_app = App::serve(layer.clone()).await;
            let mut jars = Vec::new();
            for n in 0..50 {
                jars.push(old_login(&old_app, &format!("p{i}-{n}"), None, &secrets).await);
            }
            let report = drain(&layer).await;
            assert_eq!(
                (report.moved, report.failed),
                (50, 0),
                "pair {i}: {report:?}"
            );
            if i == 1 {
                // Koa's record format drops the drained mark: a drain into it is refused.
                let koa = redis(Format::Koa).await;
                let layer = SessionLayer::store(cfg(), koa)
                    .migrate_from(old.clone())
                    .build()
                    .unwrap();
                let err = layer.drain().unwrap().run(|_| {}).await;
                assert!(
                    matches!(err, Err(session_hyper::Error::Drain(_))),
                    "{err:?}"
                );
            }
            for (n, jar) in jars.iter().enumerate() {
                let (r, data) = read(&new_app, jar).await;
                assert_eq!(data["user"], json!(format!("p{i}-{n}")), "pair {i}");
                assert!(r.sets_id().is_some(), "pair {i}");
            }
        }
    });
}
