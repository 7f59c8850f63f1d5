//! Moving from our own cookie mode into a store without logging anyone out
//! (`SessionLayerBuilder::migrate_from_cookie_mode`), signed and encrypted, with the cookie's
//! name kept or changed; and the attacks on the move: requests racing it, a logout racing it,
//! replays of the old cookie after the move's marker is gone, forged cookies, the store down.
//!
//! Every old cookie here is made by the old app itself (the test app in cookie mode), never
//! written by hand.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use session_core::store::{Loaded, Store};
use session_core::{Config, CookieMode};
use session_hyper::{LayerBuildError, MemoryStore, SessionLayer};
use session_testkit::capture::{KEY1, KEY2, Secrets, attack};
use session_testkit::client::{Jar, Reply};
use session_testkit::served::App;
use session_testkit::stores::{FAIL, HANG, OK, Probe, Recorder};

/// Rounds of each race.
const ROUNDS: usize = 200;

/// How the old app kept its cookie.
#[derive(Debug, Clone, Copy)]
struct Old {
    encrypted: bool,
    /// The old cookie's name (`koa.sess` is also the new layer's).
    name: &'static str,
}

const SIGNED: Old = Old {
    encrypted: false,
    name: "koa.sess",
};
const ENCRYPTED: Old = Old {
    encrypted: true,
    name: "koa.sess",
};
/// Every way the old app may have kept its cookie.
const ALL: [Old; 4] = [
    SIGNED,
    ENCRYPTED,
    Old {
        encrypted: false,
        name: "old.sess",
    },
    Old {
        encrypted: true,
        name: "old.sess",
    },
];

fn old_config(old: Old, key: &[u8]) -> Config {
    let mode = if old.encrypted {
        CookieMode::Encrypted
    } else {
        CookieMode::Signed
    };
    Config::builder()
        .key(key.to_vec())
        .cookie_name(old.name)
        .cookie_mode(mode)
        .build()
        .unwrap()
}

/// The new layer's configuration: the default cookie, and a short supersede grace so a test
/// can outlive a move's marker.
fn new_config() -> Config {
    Config::builder()
        .key(KEY1.to_vec())
        .supersede_grace(Duration::from_millis(300))
        .build()
        .unwrap()
}

fn old_layer(old: Old, key: &[u8]) -> SessionLayer {
    SessionLayer::cookie(old_config(old, key)).build().unwrap()
}

/// The old app (cookie mode) and the new one (store mode on `store`, moving from it).
async fn apps<S: Store>(old: Old, store: S) -> (App, App) {
    let old_app = App::serve(old_layer(old, KEY1)).await;
    let new_app = App::serve(
        SessionLayer::store(new_config(), store)
            .migrate_from_cookie_mode(old_layer(old, KEY1))
            .store_timeout(Duration::from_millis(500))
            .build()
            .unwrap(),
    )
    .await;
    (old_app, new_app)
}

/// A browser signed in on the old app: its cookies hold `user` and a counter.
async fn old_login(app: &App, user: &str, secrets: &Secrets) -> Jar {
    app.signed_in(user, None, secrets).await
}

/// `GET /session` with the jar: the reply and the data it answered.
async fn read(app: &App, jar: &Jar) -> (Reply, Value) {
    let r = app.get("/session", jar).await;
    let data = serde_json::from_str(&r.body).unwrap_or(Value::Null);
    (r, data)
}

/// Live records of `user` among the records the store created.
async fn live_of<S: Store>(store: &Recorder<S>, user: &str) -> usize {
    let mut live = 0;
    for k in store.take_created() {
        if let Loaded::Live(r) = store.load(&k).await.unwrap() {
            live += usize::from(r.data.get("user") == Some(&json!(user)));
        }
    }
    live
}

/// Every way the old app kept its cookie: the session moves with its data under a new id of
/// ours, the old cookie goes (or ours replaces it), the moved session carries on, and the old
/// cookie replayed is anonymous, also once the move's marker is gone. A drain has nothing to
/// do.
#[test]
fn a_cookie_mode_session_moves_into_the_store() {
    attack(|secrets| async move {
        for old in ALL {
            let store = Recorder::new(MemoryStore::new());
            let (old_app, new_app) = apps(old, store.clone()).await;
            let old_jar = old_login(&old_app, "ann", &secrets).await;
            let (r, data) = read(&new_app, &old_jar).await;
            secrets.note(&r);
            assert_eq!(r.status, 200, "{old:?}: {}", r.body);
            assert_eq!(data, json!({ "user": "ann", "views": 41 }), "{old:?}");
            let id = r.sets_id().expect("our cookie");
            let ours = new_config().ids().parse(&id).is_some();
            assert!(ours, "{old:?}: not an id of ours");
            // The old cookie is removed, or (the same name) ours comes last and replaces it.
            let last = |name: &str| {
                r.cookies()
                    .into_iter()
                    .rev()
                    .find(|(n, _)| n == name)
                    .map(|(_, v)| v)
            };
            if old.name == "koa.sess" {
                assert_eq!(last("koa.sess").as_deref(), Some(id.as_str()), "{old:?}");
            } else {
                assert_eq!(
                    last(old.name).as_deref(),
                    Some(""),
                    "{old:?}: old cookie kept"
                );
                let sig = format!("{}.sig", old.name);
                assert_eq!(
                    last(&sig).as_deref(),
                    (!old.encrypted).then_some(""),
                    "{old:?}: the old signature"
                );
            }
            assert_eq!(live_of(&store, "ann").await, 1, "{old:?}");
            // The browser carries on under our id.
            let mut jar = old_jar.clone();
            jar.apply(&r);
            let (r, data) = read(&new_app, &jar).await;
            assert_eq!(
                (r.is_new(), data["views"].clone()),
                (Some(false), json!(41))
            );
            let r = new_app.put(&json!({ "views": 42 }), &jar).await;
            assert_eq!(r.status, 204, "{old:?}");
            // The old cookie replayed: anonymous now, and after the move's marker has lapsed.
            for wait in [Duration::ZERO, Duration::from_millis(700)] {
                tokio::time::sleep(wait).await;
                let (r, data) = read(&new_app, &old_jar).await;
                assert_eq!(
                    (r.status, r.is_new()),
                    (200, Some(true)),
                    "{old:?} {wait:?}"
                );
                assert_eq!(data, json!({}), "{old:?} {wait:?}");
                assert!(r.sets_id().is_none(), "{old:?} {wait:?}: moved again");
            }
            let layer = SessionLayer::store(new_config(), MemoryStore::new())
                .migrate_from_cookie_mode(old_layer(old, KEY1))
                .build()
                .unwrap();
            let report = layer.drain().unwrap().run(|_| {}).await.unwrap();
            assert_eq!((report.moved, report.batches), (0, 1), "{old:?}");
        }
    });
}

/// Requests racing the first move of one cookie make one session: 200 rounds of 6 at once
/// with the old cookie, signed and encrypted. Exactly one reply sets an id, one record of the
/// user lives, and every request saw the user or (after the move) an anonymous session.
#[test]
fn requests_racing_a_move_make_one_session() {
    attack(|secrets| async move {
        for old in [SIGNED, ENCRYPTED] {
            let store = Recorder::new(MemoryStore::new());
            let (old_app, new_app) = apps(old, store.clone()).await;
            for round in 0..ROUNDS {
                let jar = old_login(&old_app, "bob", &secrets).await;
                let ids = new_app.race_first_use(&jar, 6, "bob", round).await;
                assert_eq!(ids.len(), 1, "{old:?} round {round}: {} new ids", ids.len());
                assert_eq!(live_of(&store, "bob").await, 1, "{old:?} round {round}");
            }
        }
    });
}

/// A logout sent with the old cookie while the move runs ends the moved session too, and the
/// old cookie stays ended: 200 rounds of a move and a logout at once, then 100 with the logout
/// exactly between the move's create and its supersede. No id handed out leads anywhere, no record
/// of the user lives, and the old cookie is anonymous afterwards.
#[test]
fn a_logout_with_the_old_cookie_racing_the_move_ends_it() {
    attack(|secrets| async move {
        for old in [SIGNED, ENCRYPTED] {
            let store = Recorder::new(MemoryStore::new());
            let (old_app, new_app) = apps(old, store.clone()).await;
            for round in 0..ROUNDS + 100 {
                let jar = old_login(&old_app, "eve", &secrets).await;
                let held = round >= ROUNDS;
                if held {
                    store.pause.arm();
                }
                let moving = new_app.spawn(hyper::Method::GET, "/session", &jar);
                if held {
                    store.pause.arrived().await;
                }
                let logout = new_app.logout(&jar).await;
                assert_eq!(logout.status, 204, "{old:?} round {round}: {}", logout.body);
                if held {
                    store.pause.release();
                }
                let moved = moving.await.unwrap();
                assert_eq!(moved.status, 200, "{old:?} round {round}: {}", moved.body);
                if moved.sets_id().is_some() {
                    let cookie = moved.pairs().join("; ");
                    let url = format!("{}/session", new_app.url());
                    let r = session_testkit::client::get_with(&url, &cookie).await;
                    assert_eq!(r.is_new(), Some(true), "{old:?} round {round}: it lives");
                }
                assert_eq!(live_of(&store, "eve").await, 0, "{old:?} round {round}");
                let (left, data) = read(&new_app, &jar).await;
                assert_eq!(left.is_new(), Some(true), "{old:?} round {round}");
                assert_eq!(data, json!({}), "{old:?} round {round}");
                assert!(left.sets_id().is_none(), "{old:?} round {round}");
            }
        }
    });
}

/// A forged old cookie is anonymous and costs the store nothing: a tampered value or
/// signature, a cookie the old app would have made under another key, a signed value without
/// its signature.
#[test]
fn forged_old_cookies_are_anonymous_and_cost_nothing() {
    attack(|secrets| async move {
        for old in [SIGNED, ENCRYPTED] {
            let store = Probe::new(MemoryStore::new());
            let (old_app, new_app) = apps(old, store.clone()).await;
            let other_key = App::serve(old_layer(old, KEY2)).await;
            let jar = old_login(&old_app, "carol", &secrets).await;
            let foreign = old_login(&other_key, "mallory", &secrets).await;
            let change_last = |v: &str| {
                let last = if v.ends_with('A') { 'B' } else { 'A' };
                format!("{}{last}", &v[..v.len() - 1])
            };
            let mut forged = vec![("another key", foreign)];
            // The value changed (signed: its signature no longer fits; encrypted: its tag).
            let tampered = Jar(jar
                .0
                .iter()
                .map(|(n, v)| {
                    let v = if n == old.name {
                        change_last(v)
                    } else {
                        v.clone()
                    };
                    (n.clone(), v)
                })
                .collect());
            forged.push(("tampered value", tampered));
            if !old.encrypted {
                let no_sig = Jar(jar
                    .0
                    .iter()
                    .filter(|(n, _)| !n.ends_with(".sig"))
                    .cloned()
                    .collect());
                forged.push(("unsigned", no_sig));
            }
            for _ in 0..100 {
                for (what, forged) in &forged {
                    let (r, data) = read(&new_app, forged).await;
                    assert_eq!((r.status, r.is_new()), (200, Some(true)), "{old:?} {what}");
                    assert_eq!(data, json!({}), "{old:?} {what}");
                    assert!(
                        r.sets_id().is_none(),
                        "{old:?} {what}: a session was written"
                    );
                }
            }
            let (loads, writes) = (
                store.loads.load(Ordering::SeqCst),
                store.writes.load(Ordering::SeqCst),
            );
            assert_eq!((loads, writes), (0, 0), "{old:?}: the store was asked");
            // The real cookie still moves.
            let (r, data) = read(&new_app, &jar).await;
            assert_eq!((r.status, &data["user"]), (200, &json!("carol")), "{old:?}");
        }
    });
}

/// The store down (refusing, or hanging) is a fast 503 with `Retry-After`, and nothing is
/// lost: once it is back, the session moves with its data.
#[test]
fn the_store_down_is_a_fast_503_and_loses_nothing() {
    attack(|secrets| async move {
        let store = Probe::new(MemoryStore::new());
        let (old_app, new_app) = apps(SIGNED, store.clone()).await;
        let jar = old_login(&old_app, "dan", &secrets).await;
        for mode in [FAIL, HANG] {
            store.set_mode(mode);
            for _ in 0..20 {
                let t = Instant::now();
                let r = new_app.get("/session", &jar).await;
                assert_eq!(r.status, 503, "mode {mode}: {}", r.body);
                assert!(r.retry_after(), "mode {mode}");
                assert!(r.set_cookies.is_empty(), "mode {mode}: the cookie stays");
                assert!(
                    t.elapsed() < Duration::from_secs(5),
                    "mode {mode}: {:?}",
                    t.elapsed()
                );
            }
        }
        store.set_mode(OK);
        let (r, data) = read(&new_app, &jar).await;
        assert_eq!((r.status, &data["user"]), (200, &json!("dan")));
        assert!(r.sets_id().is_some());
    });
}

/// Once moved, a browser's requests cost the store what they cost without a migration: one
/// load each, no tombstone looked up.
#[test]
fn a_moved_session_costs_no_more_than_any_other() {
    attack(|secrets| async move {
        let store = Probe::new(MemoryStore::new());
        let (old_app, new_app) = apps(SIGNED, store.clone()).await;
        let mut jar = old_login(&old_app, "fay", &secrets).await;
        let (r, _) = read(&new_app, &jar).await;
        jar.apply(&r);
        let before = store.loads.load(Ordering::SeqCst);
        for _ in 0..100 {
            let (r, data) = read(&new_app, &jar).await;
            assert_eq!(data["user"], "fay", "{}", r.body);
        }
        assert_eq!(store.loads.load(Ordering::SeqCst) - before, 100);
        // No cookie at all, and a session never moved: as many as without a migration.
        let before = store.loads.load(Ordering::SeqCst);
        for _ in 0..100 {
            let (r, _) = read(&new_app, &Jar::default()).await;
            assert_eq!(r.is_new(), Some(true));
        }
        assert_eq!(store.loads.load(Ordering::SeqCst), before);
    });
}

/// What can't work is refused at build: a store-mode layer as the old one, moving into cookie
/// mode, two sources at once, and an unsigned old cookie (anyone could have written it).
#[test]
fn what_cannot_work_is_refused_at_build() {
    let cfg = || Config::builder().key(KEY1.to_vec()).build().unwrap();
    let err = SessionLayer::store(cfg(), MemoryStore::new())
        .migrate_from_cookie_mode(
            SessionLayer::store(cfg(), MemoryStore::new())
                .build()
                .unwrap(),
        )
        .build()
        .unwrap_err();
    assert!(
        matches!(err, LayerBuildError::MigrateNotCookieMode),
        "{err}"
    );
    let err = SessionLayer::cookie(cfg())
        .migrate_from_cookie_mode(old_layer(SIGNED, KEY1))
        .build()
        .unwrap_err();
    assert!(
        matches!(err, LayerBuildError::MigrateNeedsStoreMode),
        "{err}"
    );
    let err = SessionLayer::store(cfg(), MemoryStore::new())
        .migrate_from(MemoryStore::new())
        .migrate_from_cookie_mode(old_layer(SIGNED, KEY1))
        .build()
        .unwrap_err();
    assert!(matches!(err, LayerBuildError::MigrateTwice), "{err}");
    let unsigned = Config::builder().unsigned().build().unwrap();
    let err = SessionLayer::store(cfg(), MemoryStore::new())
        .migrate_from_cookie_mode(SessionLayer::cookie(unsigned).build().unwrap())
        .build()
        .unwrap_err();
    assert!(
        matches!(err, LayerBuildError::MigrateUnsignedCookies),
        "{err}"
    );
}
