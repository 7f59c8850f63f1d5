//! Switching stores without logging anyone out (`SessionLayerBuilder::migrate_from`): a
//! session the old app wrote moves into the new store on its first use, with its data and its
//! owner, under a new id; and the attacks on the move: requests racing it, a logout racing it,
//! forged cookies, the old store down, and the old store's cost for everyone else.
//!
//! Every old session here is made by the old app itself (the same test app on the old store),
//! never written by hand.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use session_core::Config;
use session_core::store::{DynStore, Loaded, Store, StoreKey};
use session_hyper::{LayerBuildError, MemoryStore, SessionLayer};
use session_testkit::capture::{KEY1, KEY2, Secrets, attack};
use session_testkit::client::{Jar, Reply};
use session_testkit::served::App;
use session_testkit::stores::{FAIL, HANG, OK, Probe, Recorder};

/// Rounds of each race.
const ROUNDS: usize = 200;

fn config(key: &[u8]) -> Config {
    Config::builder().key(key.to_vec()).build().unwrap()
}

/// The store key of the session a jar holds.
fn key_of(jar: &Jar) -> StoreKey {
    let cfg = config(KEY1);
    let id = cfg.ids().parse(jar.id().unwrap()).unwrap();
    cfg.key_derivation().derive(&id)
}

/// The old app (on `old`) and the new one (on `new`, moving sessions from `old`), both with
/// the same keys and cookie, as a site switching stores has them.
async fn apps(old: Arc<dyn DynStore>, new: Arc<dyn DynStore>) -> (App, App) {
    let old_app = App::serve(
        SessionLayer::store(config(KEY1), old.clone())
            .build()
            .unwrap(),
    )
    .await;
    let new_app = App::serve(
        SessionLayer::store(config(KEY1), new)
            .migrate_from(old)
            .store_timeout(Duration::from_millis(500))
            .build()
            .unwrap(),
    )
    .await;
    (old_app, new_app)
}

/// `GET /session` with the jar: the reply and the data it answered.
async fn read(app: &App, jar: &Jar) -> (Reply, Value) {
    let r = app.get("/session", jar).await;
    let data = serde_json::from_str(&r.body).unwrap_or(Value::Null);
    (r, data)
}

/// A browser signed in on the old app (see `App::signed_in`).
async fn old_login(old: &App, user: &str, owner: Option<&str>, secrets: &Secrets) -> Jar {
    old.signed_in(user, owner, secrets).await
}

/// Live sessions among the records `store` created since the last call: records holding data
/// (a move's claim, which lapses within a second of the move, holds none).
async fn sessions<S: Store>(store: &Recorder<S>) -> usize {
    let mut live = 0;
    for k in store.take_created() {
        if let Loaded::Live(r) = store.load(&k).await.unwrap() {
            live += usize::from(!r.data.is_empty());
        }
    }
    live
}

/// The stores a site moves between, with real servers where the test run has them.
async fn store(kind: &str) -> Arc<dyn DynStore> {
    match kind {
        "memory" => Arc::new(MemoryStore::new()),
        #[cfg(feature = "redis-tests")]
        "redis-v1" | "redis-koa" | "redis-cached" => {
            use session_store_redis::{Format, RedisStore};
            let format = if kind == "redis-koa" {
                Format::Koa
            } else {
                Format::V1
            };
            let cache = if kind == "redis-cached" { 1 << 20 } else { 0 };
            let prefix = format!("{}:", session_testkit::values::unique("move"));
            let store = RedisStore::builder(session_testkit::redis::shared_url())
                .prefix(prefix)
                .format(format)
                .client_cache(cache)
                .build()
                .await
                .unwrap();
            Arc::new(store)
        }
        #[cfg(feature = "postgres-tests")]
        "postgres" => Arc::new(session_testkit::postgres::store("move").await),
        other => panic!("{other}: not in this test run"),
    }
}

/// The pairs of stores a move is tried between: every store this run has, into another.
fn pairs() -> Vec<(&'static str, &'static str)> {
    let mut pairs = vec![("memory", "memory")];
    if cfg!(feature = "redis-tests") {
        pairs.extend([("redis-v1", "redis-cached"), ("memory", "redis-v1")]);
    }
    if cfg!(all(feature = "redis-tests", feature = "postgres-tests")) {
        pairs.extend([
            ("redis-v1", "postgres"),
            ("redis-koa", "postgres"),
            ("postgres", "redis-v1"),
        ]);
    }
    pairs
}

/// For each pair of stores: a user logged in under the old app is still logged in under the
/// new one, with the same data and a new id; the old record is gone; the new cookie replaces
/// the old one; a replay of the old cookie is anonymous; the owner's sessions are listed once,
/// from the new store.
#[test]
fn a_session_moves_between_every_pair_of_stores() {
    attack(|secrets| async move {
        for (from, to) in pairs() {
            let (old, new) = (store(from).await, store(to).await);
            // koa's format keeps no owner index: a plain session there.
            let owner = (from != "redis-koa").then(|| session_testkit::values::unique("owner"));
            let (old_app, new_app) = apps(old.clone(), new.clone()).await;
            let jar = old_login(&old_app, "ann", owner.as_deref(), &secrets).await;
            let old_key = key_of(&jar);

            let (r, data) = read(&new_app, &jar).await;
            assert_eq!(r.status, 200, "{from} -> {to}: {}", r.body);
            assert_eq!(data["user"], "ann", "{from} -> {to}");
            assert_eq!(data["views"], 41, "{from} -> {to}: the counter goes on");
            assert_eq!(r.is_new(), Some(false), "{from} -> {to}");
            let moved_id = r.sets_id().expect("the new id's cookie");
            assert_ne!(
                Some(moved_id.as_str()),
                jar.id(),
                "{from} -> {to}: a new id"
            );
            secrets.note(&r);
            let mut moved = jar.clone();
            moved.apply(&r);

            assert!(
                !matches!(old.load(&old_key).await.unwrap(), Loaded::Live(_)),
                "{from} -> {to}: the old record is gone"
            );
            match new.load(&key_of(&moved)).await.unwrap() {
                Loaded::Live(rec) => assert_eq!(rec.data["user"], "ann"),
                other => panic!("{from} -> {to}: the new record: {other:?}"),
            }
            assert!(
                matches!(new.load(&old_key).await.unwrap(), Loaded::Missing),
                "{from} -> {to}: nothing is filed under the old id in the new store"
            );
            // The moved session goes on, and a replay of the old cookie is anonymous.
            let (r, data) = read(&new_app, &moved).await;
            assert_eq!((r.status, &data["user"]), (200, &json!("ann")));
            assert!(r.set_cookies.is_empty(), "{from} -> {to}: moved once");
            let (r, data) = read(&new_app, &jar).await;
            assert_eq!(r.is_new(), Some(true), "{from} -> {to}: replay");
            assert_eq!(data, json!({}), "{from} -> {to}: replay");
            assert!(
                r.sets_id().is_none(),
                "{from} -> {to}: the replay writes nothing"
            );

            if let Some(owner) = owner {
                // Listed once: the new record (the old entry goes with the move).
                let deadline = Instant::now() + Duration::from_secs(10);
                loop {
                    let url = format!("/owners/{owner}/sessions");
                    let list: Value = serde_json::from_str(&new_app.get(&url, &moved).await.body)
                        .unwrap_or(Value::Null);
                    let listed = list.as_array().map_or(0, Vec::len);
                    if listed == 1 {
                        assert_eq!(list[0]["current"], true, "{from} -> {to}");
                        break;
                    }
                    assert!(
                        Instant::now() < deadline,
                        "{from} -> {to}: {listed} sessions listed"
                    );
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        }
    });
}

/// Requests racing the first move of one session make one session: 200 rounds of 6 requests at
/// once with the old cookie. Exactly one reply sets a new id, none removes a cookie, one
/// record is live in the new store, and every request saw the user or (after the move) an
/// anonymous session, never an error.
#[test]
fn requests_racing_a_move_make_one_session() {
    attack(|secrets| async move {
        // Recorders keep no owner index: the old one neither (see the build check).
        let new = Recorder::new(MemoryStore::new());
        let old = Recorder::new(MemoryStore::new());
        let (old_app, new_app) = apps(Arc::new(old), Arc::new(new.clone())).await;
        for round in 0..ROUNDS {
            let jar = old_login(&old_app, "bob", None, &secrets).await;
            let ids = new_app.race_first_use(&jar, 6, "bob", round).await;
            assert_eq!(ids.len(), 1, "round {round}: {} new ids", ids.len());
            let live = sessions(&new).await;
            assert_eq!(live, 1, "round {round}: {live} sessions in the new store");
            let r = new_app.get("/session", &jar).await;
            assert_eq!(
                r.is_new(),
                Some(true),
                "round {round}: the old cookie again"
            );
        }
    });
}

/// A logout sent with the old cookie while the move runs ends the moved session too: 200
/// rounds of a move and a logout at once, then 100 with the logout exactly between the move's
/// create and its supersede. Whatever id the move handed out leads nowhere, and no record of
/// the user lives in either store.
#[test]
fn a_logout_with_the_old_cookie_racing_the_move_ends_it() {
    attack(|secrets| async move {
        let old = Recorder::new(MemoryStore::new());
        let new = Recorder::new(MemoryStore::new());
        let (old_app, new_app) = apps(Arc::new(old.clone()), Arc::new(new.clone())).await;
        for round in 0..ROUNDS + 100 {
            let jar = old_login(&old_app, "eve", None, &secrets).await;
            let old_key = key_of(&jar);
            let held = round >= ROUNDS;
            if held {
                old.pause.arm();
            }
            let moving = new_app.spawn(hyper::Method::GET, "/session", &jar);
            if held {
                old.pause.arrived().await;
            }
            let logout = new_app.logout(&jar).await;
            assert_eq!(logout.status, 204, "round {round}: {}", logout.body);
            if held {
                old.pause.release();
            }
            let moved = moving.await.unwrap();
            assert_eq!(moved.status, 200, "round {round}: {}", moved.body);
            if let Some(id) = moved.sets_id() {
                let cookie = moved.pairs().join("; ");
                let r = session_testkit::client::get_with(
                    &format!("{}/session", new_app.url()),
                    &cookie,
                )
                .await;
                assert_eq!(
                    r.is_new(),
                    Some(true),
                    "round {round}: {id} still leads to it"
                );
            }
            assert!(
                !matches!(old.load(&old_key).await.unwrap(), Loaded::Live(_)),
                "round {round}: the old record lives"
            );
            assert_eq!(
                sessions(&new).await,
                0,
                "round {round}: a moved record lives after the logout"
            );
            let left = new_app.get("/session", &jar).await;
            assert_eq!(left.is_new(), Some(true), "round {round}");
            assert!(left.sets_id().is_none(), "round {round}");
        }
    });
}

/// A forged or badly signed old cookie is anonymous and costs the old store nothing: a
/// tampered signature, a cookie signed with another key, and an unsigned one.
#[test]
fn forged_old_cookies_are_anonymous_and_write_nothing() {
    attack(|secrets| async move {
        let old = Probe::new(MemoryStore::new());
        let new = Probe::new(MemoryStore::new());
        let (old_app, new_app) = apps(Arc::new(old.clone()), Arc::new(new.clone())).await;
        let other_key_app = App::serve(
            SessionLayer::store(config(KEY2), old.clone())
                .build()
                .unwrap(),
        )
        .await;
        let jar = old_login(&old_app, "carol", None, &secrets).await;
        let foreign = old_login(&other_key_app, "mallory", None, &secrets).await;
        let tampered = Jar(jar
            .0
            .iter()
            .map(|(n, v)| {
                let v = if n.ends_with(".sig") {
                    let last = if v.ends_with('A') { 'B' } else { 'A' };
                    format!("{}{last}", &v[..v.len() - 1])
                } else {
                    v.clone()
                };
                (n.clone(), v)
            })
            .collect());
        let unsigned = Jar(jar
            .0
            .iter()
            .filter(|(n, _)| !n.ends_with(".sig"))
            .cloned()
            .collect());
        let (loads, writes) = (
            old.loads.load(Ordering::SeqCst),
            old.writes.load(Ordering::SeqCst),
        );
        for _ in 0..100 {
            for (what, forged) in [
                ("tampered", &tampered),
                ("other key", &foreign),
                ("unsigned", &unsigned),
            ] {
                let (r, data) = read(&new_app, forged).await;
                assert_eq!((r.status, r.is_new()), (200, Some(true)), "{what}");
                assert_eq!(data, json!({}), "{what}");
                assert!(r.sets_id().is_none(), "{what}: a session was written");
            }
        }
        assert_eq!(
            old.loads.load(Ordering::SeqCst),
            loads,
            "the old store was asked"
        );
        assert_eq!(
            old.writes.load(Ordering::SeqCst),
            writes,
            "the old store was written"
        );
        assert_eq!(
            new.writes.load(Ordering::SeqCst),
            0,
            "the new store was written"
        );
        // The real cookie still moves.
        let (r, data) = read(&new_app, &jar).await;
        assert_eq!((r.status, &data["user"]), (200, &json!("carol")));
    });
}

/// The old store down (refusing, or hanging) is a fast 503 with `Retry-After`, and nothing is
/// lost: once it is back, the session moves with its data.
#[test]
fn the_old_store_down_is_a_fast_503_and_loses_nothing() {
    attack(|secrets| async move {
        let old = Probe::new(MemoryStore::new());
        let new = Probe::new(MemoryStore::new());
        let (old_app, new_app) = apps(Arc::new(old.clone()), Arc::new(new.clone())).await;
        let jar = old_login(&old_app, "dan", None, &secrets).await;
        for mode in [FAIL, HANG] {
            old.set_mode(mode);
            for _ in 0..20 {
                let t = Instant::now();
                let r = new_app.get("/session", &jar).await;
                assert_eq!(r.status, 503, "mode {mode}: {}", r.body);
                assert!(r.retry_after(), "mode {mode}");
                assert!(r.set_cookies.is_empty(), "mode {mode}: the cookie stays");
                // The layer's store time limit (500 ms here) and no more, however busy.
                assert!(
                    t.elapsed() < Duration::from_secs(5),
                    "mode {mode}: {:?}",
                    t.elapsed()
                );
            }
        }
        assert_eq!(
            new.writes.load(Ordering::SeqCst),
            0,
            "nothing moved while the old store was down"
        );
        old.set_mode(OK);
        let (r, data) = read(&new_app, &jar).await;
        assert_eq!((r.status, &data["user"]), (200, &json!("dan")));
        assert!(r.sets_id().is_some());
    });
}

/// The old store costs the requests that bring no old session nothing: 200 requests without a
/// cookie and 200 with a moved session's cookie, each reading the session, make zero calls to
/// it.
#[test]
fn requests_without_an_old_session_cost_the_old_store_nothing() {
    attack(|secrets| async move {
        let old = Probe::new(MemoryStore::new());
        let (old_app, new_app) = apps(Arc::new(old.clone()), Arc::new(MemoryStore::new())).await;
        let jar = old_login(&old_app, "fay", Some("fay"), &secrets).await;
        let r = new_app.get("/session", &jar).await;
        let mut moved = jar.clone();
        moved.apply(&r);
        // The move's background work (the old index entry goes) settles first.
        tokio::time::sleep(Duration::from_millis(200)).await;
        let before = (
            old.loads.load(Ordering::SeqCst),
            old.writes.load(Ordering::SeqCst),
        );
        for _ in 0..200 {
            let r = new_app.get("/session", &Jar::default()).await;
            assert_eq!(r.status, 200);
            let r = new_app.get("/session", &moved).await;
            assert_eq!((r.status, r.is_new()), (200, Some(false)));
        }
        let after = (
            old.loads.load(Ordering::SeqCst),
            old.writes.load(Ordering::SeqCst),
        );
        assert_eq!(after, before, "the old store was called (loads, writes)");
    });
}

/// "Log out everywhere" while a migration runs reaches both stores: an owner with one session
/// moved and one not yet moved, both ended by one revoke from the new app, 50 times over; and
/// a move racing the revoke leaves nothing of the owner alive.
#[test]
fn log_out_everywhere_reaches_both_stores() {
    attack(|secrets| async move {
        let old = Probe::new(MemoryStore::new());
        let new = Probe::new(MemoryStore::new());
        let (old_app, new_app) = apps(Arc::new(old.clone()), Arc::new(new.clone())).await;
        for round in 0..50 {
            let owner = session_testkit::values::unique("gus");
            let first = old_login(&old_app, "gus", Some(&owner), &secrets).await;
            let second = old_login(&old_app, "gus", Some(&owner), &secrets).await;
            let third = old_login(&old_app, "gus", Some(&owner), &secrets).await;
            let r = new_app.get("/session", &first).await;
            let mut moved = first.clone();
            moved.apply(&r);
            // The third moves while the revoke runs.
            let racing = new_app.spawn(hyper::Method::GET, "/session", &third);
            let r = new_app.get("/revoke-all", &moved).await;
            assert_eq!(r.status, 200, "round {round}: {}", r.body);
            let raced = racing.await.unwrap();
            let mut third_moved = third.clone();
            third_moved.apply(&raced);
            for (what, jar) in [
                ("moved", &moved),
                ("not moved", &second),
                ("racing", &third_moved),
            ] {
                let (r, _) = read(&new_app, jar).await;
                assert_eq!(
                    r.is_new(),
                    Some(true),
                    "round {round}: the {what} session lives"
                );
            }
            let list = new_app
                .get(&format!("/owners/{owner}/sessions"), &Jar::default())
                .await;
            assert_eq!(list.body, "[]", "round {round}");
        }
    });
}

/// Cookie mode keeps no store to move sessions into: refused when the layer is built.
#[test]
fn migrating_into_cookie_mode_is_refused_at_build() {
    let err = SessionLayer::cookie(config(KEY1))
        .migrate_from(MemoryStore::new())
        .build()
        .unwrap_err();
    assert!(
        matches!(err, LayerBuildError::MigrateNeedsStoreMode),
        "{err}"
    );
}

/// A commit in the middle of a request that moved the session (`Session::commit`), then a
/// logout or a new login in the same request: they act on the moved session in the new store.
/// 50 rounds each. (Found by review: the logout left the moved record alive, and the login
/// logged the user out.)
#[test]
fn a_commit_mid_request_then_a_logout_or_a_login_acts_on_the_moved_session() {
    attack(|secrets| async move {
        let new = Recorder::new(MemoryStore::new());
        let old = Recorder::new(MemoryStore::new());
        let (old_app, new_app) = apps(Arc::new(old), Arc::new(new.clone())).await;
        for round in 0..50 {
            let jar = old_login(&old_app, "hal", None, &secrets).await;
            let r = new_app.get("/commit-then?then=destroy", &jar).await;
            assert_eq!(r.status, 200, "round {round}: {}", r.body);
            assert_eq!(
                sessions(&new).await,
                0,
                "round {round}: the moved record outlived the logout"
            );
            let jar = old_login(&old_app, "hal", None, &secrets).await;
            let r = new_app
                .get("/commit-then?then=regenerate&user=ivy", &jar)
                .await;
            assert_eq!(r.status, 200, "round {round}: {}", r.body);
            let mut next = jar.clone();
            next.apply(&r);
            let (r, data) = read(&new_app, &next).await;
            assert_eq!(r.is_new(), Some(false), "round {round}: logged out");
            assert_eq!(data["user"], "ivy", "round {round}");
            let live = sessions(&new).await;
            assert_eq!(
                live, 1,
                "round {round}: {live} live records after the login"
            );
        }
    });
}

/// A logout carrying the old cookie among planted ones (nine unsigned values of the same name
/// ahead of it: more than are checked) ends the session in the old store too, 50 times.
#[test]
fn a_logout_among_planted_cookies_ends_a_session_not_moved_yet() {
    attack(|secrets| async move {
        let old: Arc<dyn DynStore> = Arc::new(MemoryStore::new());
        let (old_app, new_app) = apps(old.clone(), Arc::new(MemoryStore::new())).await;
        for round in 0..50 {
            let jar = old_login(&old_app, "jo", None, &secrets).await;
            let key = key_of(&jar);
            let planted: Vec<String> = (0..9).map(|i| format!("koa.sess=junk{i}")).collect();
            let cookie = format!("{}; {}", planted.join("; "), jar.header());
            let r = new_app
                .req(hyper::Method::DELETE, "/session", &cookie, None)
                .await;
            assert_eq!(r.status, 204, "round {round}: {}", r.body);
            assert!(
                !matches!(old.load(&key).await.unwrap(), Loaded::Live(_)),
                "round {round}: the old session survived the logout"
            );
        }
    });
}

/// An old store that keeps an owner index, into a layer that keeps none: its bound sessions
/// could neither move nor log out, so the layer is refused at build.
#[test]
fn an_owner_index_that_would_be_lost_is_refused_at_build() {
    let err = SessionLayer::store(config(KEY1), Recorder::new(MemoryStore::new()))
        .migrate_from(MemoryStore::new())
        .build()
        .unwrap_err();
    assert!(matches!(err, LayerBuildError::MigrateLosesOwners), "{err}");
}
