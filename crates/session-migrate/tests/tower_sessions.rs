//! Moving in from tower-sessions: every old session here is made by a real tower-sessions app
//! (`fixtures/tower-sessions`, built by `cargo xtask ci`, its path in `TOWER_SESSIONS_FIXTURE`)
//! on its Redis or PostgreSQL store, with its cookie plain, signed or private. The app of ours
//! in front (the test kit's JSON session app) moves them; the attacks try to break the move.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]
#![cfg(feature = "migrate-tests")]

use std::sync::Arc;

use serde_json::json;
use session_core::Config;
use session_core::store::{Loaded, Store};
use session_hyper::{LayerBuildError, MemoryStore, SessionLayer};
use session_migrate::TowerSessions;
use session_testkit::capture::{KEY1, Secrets, attack};
use session_testkit::client::{Jar, Reply, get_with};
use session_testkit::process::Running;
use session_testkit::stores::Recorder;

mod support;
use support::{get_calls, new_app, read};

/// Whether the reply removes tower-sessions' cookie (`id`, path `/`).
fn removes_old(r: &Reply) -> bool {
    support::removes_old(r, "id")
}

/// Rounds of each race.
const ROUNDS: usize = 200;
/// The old app's `Key` (64 bytes), and another one.
const KEY: [u8; 64] = [7; 64];
const OTHER_KEY: [u8; 64] = [9; 64];

fn b64(key: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(key)
}

/// How the old app protected its cookie.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Mode {
    Plain,
    Signed,
    Private,
}

/// The tower-sessions app on `store` (`--redis URL` or `--postgres URL`) in `mode`.
async fn old_app(store: [&str; 2], mode: Mode, key: &[u8]) -> Running {
    let bin = std::env::var("TOWER_SESSIONS_FIXTURE")
        .expect("TOWER_SESSIONS_FIXTURE: run through `cargo xtask ci`");
    let key = b64(key);
    let mut args = store.to_vec();
    match mode {
        Mode::Plain => {}
        Mode::Signed => args.extend(["--signed", &key]),
        Mode::Private => args.extend(["--private", &key]),
    }
    session_testkit::process::start(&bin, &args)
        .await
        .expect("the tower-sessions fixture started")
}

/// A user logged in on the old app: its `Cookie` header (`id=...`).
async fn old_login(old: &Running, user: &str, secrets: &Secrets) -> String {
    let r = get_with(&format!("{}/login?user={user}&views=41", old.url), "").await;
    assert_eq!(r.status, 200, "{}", r.body);
    let value = r.cookie("id").expect("tower-sessions set its cookie");
    secrets.add(value.clone());
    format!("id={value}")
}

/// The source for `store` in `mode`.
fn source(store: [&str; 2], mode: Mode) -> TowerSessions {
    let b = TowerSessions::builder();
    let b = match mode {
        Mode::Plain => b,
        Mode::Signed | Mode::Private => b.key(&KEY),
    };
    match store[0] {
        "--redis" => b.redis(store[1]).unwrap(),
        _ => b.postgres(store[1]).unwrap(),
    }
}

fn redis() -> [String; 2] {
    ["--redis".into(), session_testkit::redis::shared_url()]
}

fn postgres() -> [String; 2] {
    ["--postgres".into(), session_testkit::postgres::url()]
}

fn strs(a: &[String; 2]) -> [&str; 2] {
    [a[0].as_str(), a[1].as_str()]
}

/// For each store and cookie mode: a user logged in under tower-sessions is logged in under
/// ours with the same data and a new id of ours; the old cookie is removed; the old record is
/// gone (the old app itself no longer finds it); a replay of the old cookie is anonymous.
#[test]
fn a_session_moves_from_each_store_in_each_cookie_mode() {
    attack(|secrets| async move {
        for store in [redis(), postgres()] {
            for mode in [Mode::Plain, Mode::Signed, Mode::Private] {
                let what = format!("{} {mode:?}", store[0]);
                let old = old_app(strs(&store), mode, &KEY).await;
                let app = new_app(Arc::new(MemoryStore::new()), source(strs(&store), mode)).await;
                let cookie = old_login(&old, "ann", &secrets).await;
                let (r, data) = read(&app, &cookie).await;
                assert_eq!(r.status, 200, "{what}: {}", r.body);
                assert_eq!(data, json!({"user": "ann", "views": 41}), "{what}");
                assert_eq!(r.is_new(), Some(false), "{what}");
                assert!(r.sets_id().is_some(), "{what}: our cookie");
                assert!(
                    removes_old(&r),
                    "{what}: the old cookie stays: {:?}",
                    r.set_cookies
                );
                secrets.note(&r);
                let mut ours = Jar::default();
                ours.apply(&r);
                let who = get_with(&format!("{}/whoami", old.url), &cookie).await;
                assert_eq!(who.body, "anonymous", "{what}: the old record lives");
                let (r, data) = read(&app, &ours.header()).await;
                assert_eq!(
                    (r.is_new(), &data["user"]),
                    (Some(false), &json!("ann")),
                    "{what}"
                );
                let (r, data) = read(&app, &cookie).await;
                assert_eq!(
                    (r.is_new(), data),
                    (Some(true), json!({})),
                    "{what}: replay"
                );
                assert!(r.sets_id().is_none(), "{what}: the replay wrote a session");
            }
        }
    });
}

/// Requests racing the first move of one session make one session: 200 rounds of 6 requests
/// at once with the old cookie (Redis, signed).
#[test]
fn requests_racing_a_move_make_one_session() {
    attack(|secrets| async move {
        let store = redis();
        let old = old_app(strs(&store), Mode::Signed, &KEY).await;
        let new = Recorder::new(MemoryStore::new());
        let app = new_app(Arc::new(new.clone()), source(strs(&store), Mode::Signed)).await;
        for round in 0..ROUNDS {
            let cookie = old_login(&old, "bob", &secrets).await;
            let racing: Vec<_> = (0..6)
                .map(|_| {
                    let (app, cookie) = (app.clone(), cookie.clone());
                    tokio::spawn(async move { read(&app, &cookie).await })
                })
                .collect();
            let mut ids = 0;
            for r in racing {
                let (r, data) = r.await.unwrap();
                assert_eq!(r.status, 200, "round {round}: {}", r.body);
                assert!(
                    data["user"] == "bob" || data == json!({}),
                    "round {round}: {data}"
                );
                ids += usize::from(r.sets_id().is_some());
            }
            assert_eq!(ids, 1, "round {round}: {ids} sessions handed out");
            let mut live = 0;
            for k in new.take_created() {
                live += usize::from(matches!(new.load(&k).await.unwrap(), Loaded::Live(_)));
            }
            assert_eq!(live, 1, "round {round}: {live} sessions in our store");
        }
    });
}

/// A logout sent with the old cookie while the move runs ends the moved session: 200 rounds at
/// once, then 100 with the logout exactly between the move's create and its supersede (Redis,
/// plain); every other logout writes a flash message after its destroy. Whatever id the move
/// handed out leads nowhere, no record holds the user, and the old record is gone. (Found by
/// review: a logout that wrote after its destroy did not delete the old session first.)
#[test]
fn a_logout_with_the_old_cookie_racing_the_move_ends_it() {
    attack(|secrets| async move {
        let store = redis();
        let old = old_app(strs(&store), Mode::Plain, &KEY).await;
        let new = Recorder::new(MemoryStore::new());
        let app = new_app(Arc::new(new.clone()), source(strs(&store), Mode::Plain)).await;
        for round in 0..ROUNDS + 100 {
            let cookie = old_login(&old, "eve", &secrets).await;
            let held = round >= ROUNDS;
            if held {
                new.pause.arm();
            }
            let moving = {
                let (app, cookie) = (app.clone(), cookie.clone());
                tokio::spawn(async move { read(&app, &cookie).await })
            };
            if held {
                new.pause.arrived().await;
            }
            // Every other round, a logout that then writes (a flash message: a new session).
            let logout = if round % 2 == 0 {
                app.req(hyper::Method::DELETE, "/session", &cookie, None)
                    .await
            } else {
                app.req(hyper::Method::GET, "/logout-then-set", &cookie, None)
                    .await
            };
            assert!(
                logout.status == 204 || logout.status == 200,
                "round {round}: {}",
                logout.body
            );
            if held {
                new.pause.release();
            }
            let (moved, _) = moving.await.unwrap();
            assert_eq!(moved.status, 200, "round {round}: {}", moved.body);
            if moved.sets_id().is_some() {
                let (r, _) = read(&app, &moved.pairs().join("; ")).await;
                assert_eq!(
                    r.is_new(),
                    Some(true),
                    "round {round}: the moved session lives"
                );
            }
            for k in new.take_created() {
                if let Loaded::Live(r) = new.load(&k).await.unwrap() {
                    // Only the logout's own new session (its flash message) may live.
                    assert!(
                        r.data.get("user").is_none(),
                        "round {round}: a moved record outlived the logout"
                    );
                }
            }
            let who = get_with(&format!("{}/whoami", old.url), &cookie).await;
            assert_eq!(who.body, "anonymous", "round {round}: the old record lives");
        }
    });
}

/// Forged old cookies are anonymous and cost the old store nothing (a Redis of the test's
/// own, its GET count read from `INFO commandstats`): a tampered signature, a cookie signed
/// with another key, an unsigned id where signed was configured, an encrypted one under
/// another key. 100 rounds of each.
#[test]
fn forged_old_cookies_are_anonymous_and_cost_the_old_store_nothing() {
    attack(|secrets| async move {
        let server = session_testkit::redis::Server::start(&[]);
        let store = ["--redis".to_owned(), server.url()];
        let old = old_app(strs(&store), Mode::Signed, &KEY).await;
        let impostor = old_app(strs(&store), Mode::Signed, &OTHER_KEY).await;
        let private = old_app(strs(&store), Mode::Private, &OTHER_KEY).await;
        let plain = old_app(strs(&store), Mode::Plain, &KEY).await;
        let new = Recorder::new(MemoryStore::new());
        let app = new_app(Arc::new(new.clone()), source(strs(&store), Mode::Signed)).await;
        let real = old_login(&old, "carol", &secrets).await;
        // One character of the signature changed (inside its base64, never its padding).
        let mut chars: Vec<char> = real.chars().collect();
        chars[10] = if chars[10] == 'A' { 'B' } else { 'A' };
        let tampered: String = chars.into_iter().collect();
        let forged = [
            ("tampered", tampered),
            ("other key", old_login(&impostor, "mallory", &secrets).await),
            ("unsigned", old_login(&plain, "mallory", &secrets).await),
            (
                "private, other key",
                old_login(&private, "mallory", &secrets).await,
            ),
        ];
        let gets = || async { get_calls(&server).await };
        let before = gets().await;
        for _ in 0..100 {
            for (what, cookie) in &forged {
                let (r, data) = read(&app, cookie).await;
                assert_eq!((r.status, r.is_new()), (200, Some(true)), "{what}");
                assert_eq!(data, json!({}), "{what}");
                assert!(r.set_cookies.is_empty(), "{what}: {:?}", r.set_cookies);
            }
        }
        assert_eq!(gets().await, before, "forged cookies reached the old store");
        assert!(
            new.take_created().is_empty(),
            "a forged cookie wrote a session"
        );
        let (r, data) = read(&app, &real).await;
        assert_eq!(
            (r.status, &data["user"]),
            (200, &json!("carol")),
            "the real one moves"
        );
    });
}

/// Requests that bring no old cookie make no call to the old store: 200 without any cookie
/// and 200 with the moved session's cookie, each reading the session.
#[test]
fn requests_without_an_old_cookie_cost_the_old_store_nothing() {
    attack(|secrets| async move {
        let server = session_testkit::redis::Server::start(&[]);
        let store = ["--redis".to_owned(), server.url()];
        let old = old_app(strs(&store), Mode::Plain, &KEY).await;
        let app = new_app(
            Arc::new(MemoryStore::new()),
            source(strs(&store), Mode::Plain),
        )
        .await;
        let cookie = old_login(&old, "fay", &secrets).await;
        let (r, _) = read(&app, &cookie).await;
        let mut ours = Jar::default();
        ours.apply(&r);
        let before = get_calls(&server).await;
        for _ in 0..200 {
            let (r, _) = read(&app, "").await;
            assert_eq!(r.status, 200);
            let (r, data) = read(&app, &ours.header()).await;
            assert_eq!((r.status, &data["user"]), (200, &json!("fay")));
        }
        assert_eq!(get_calls(&server).await, before, "the old store was asked");
    });
}

/// Old data our rules refuse starts a new session, never a 500: a key starting with `_`, and
/// data over `MAX_MOVED_BYTES` (four 20 KB values). The old cookie goes; nothing is written.
#[test]
fn old_data_our_rules_refuse_starts_a_new_session() {
    attack(|secrets| async move {
        let store = redis();
        let old = old_app(strs(&store), Mode::Plain, &KEY).await;
        let new = Recorder::new(MemoryStore::new());
        let app = new_app(Arc::new(new.clone()), source(strs(&store), Mode::Plain)).await;
        let big = format!("%22{}%22", "x".repeat(20_000));
        for (what, puts) in [
            ("reserved key", vec![("_owner".to_owned(), "1".to_owned())]),
            (
                "too large",
                (0..4).map(|i| (format!("big{i}"), big.clone())).collect(),
            ),
        ] {
            let cookie = old_login(&old, "gil", &secrets).await;
            for (k, v) in puts {
                let r = get_with(&format!("{}/put?key={k}&value={v}", old.url), &cookie).await;
                assert_eq!(r.status, 200, "{what}: {}", r.body);
            }
            for _ in 0..50 {
                let (r, data) = read(&app, &cookie).await;
                assert_eq!((r.status, r.is_new()), (200, Some(true)), "{what}");
                assert_eq!(data, json!({}), "{what}");
                assert!(removes_old(&r), "{what}");
                assert!(r.sets_id().is_none(), "{what}");
            }
            assert!(
                new.take_created().is_empty(),
                "{what}: a session was written"
            );
        }
    });
}

/// The old store down: refusing (a closed port) or not answering (`CLIENT PAUSE`), a request
/// with the old cookie is a 503 with `Retry-After` within the layer's time limit; nothing is
/// lost: once the store answers again, the session moves.
#[test]
fn the_old_store_down_is_a_fast_503_and_loses_nothing() {
    attack(|secrets| async move {
        let server = session_testkit::redis::Server::start(&[]);
        let store = ["--redis".to_owned(), server.url()];
        let old = old_app(strs(&store), Mode::Plain, &KEY).await;
        let cookie = old_login(&old, "dan", &secrets).await;
        let closed = format!("redis://127.0.0.1:{}", session_testkit::net::free_port());
        let refusing = new_app(
            Arc::new(MemoryStore::new()),
            TowerSessions::builder().redis(&closed).unwrap(),
        )
        .await;
        let new = Recorder::new(MemoryStore::new());
        let app = new_app(Arc::new(new.clone()), source(strs(&store), Mode::Plain)).await;
        support::store_down(&refusing, &app, &new, &server, &cookie).await;
    });
}

/// A source whose cookie is this layer's own is refused when the layer is built.
#[tokio::test]
async fn a_source_cookie_named_like_ours_is_refused_at_build() {
    let config = Config::builder().key(KEY1.to_vec()).build().unwrap();
    let source = TowerSessions::builder()
        .cookie_name("koa.sess")
        .redis("redis://127.0.0.1:1")
        .unwrap();
    let err = SessionLayer::store(config, MemoryStore::new())
        .migrate_from_source(source)
        .build()
        .unwrap_err();
    assert!(
        matches!(err, LayerBuildError::MigrateCookieClash(_)),
        "{err}"
    );
}

/// A dead cookie of ours beside a live old one (ours set on a cross-site visit that did not
/// carry tower-sessions' `SameSite=Strict` cookie, or a guest id): the old session moves all
/// the same. Two different validly issued old cookies (one planted from a sibling subdomain)
/// are ambiguous: nothing moves and no cookie is removed. (Found by review.)
#[test]
fn a_dead_cookie_of_ours_does_not_strand_an_old_session_and_two_old_ones_move_neither() {
    attack(|secrets| async move {
        let store = redis();
        let old = old_app(strs(&store), Mode::Signed, &KEY).await;
        let new = Recorder::new(MemoryStore::new());
        let app = new_app(Arc::new(new.clone()), source(strs(&store), Mode::Signed)).await;
        for round in 0..50 {
            let dead = app.dead_pair(&secrets).await;
            let cookie = old_login(&old, "kim", &secrets).await;
            let both = format!("{}; {cookie}", dead.header());
            let (r, data) = read(&app, &both).await;
            assert_eq!(data["user"], "kim", "round {round}: {}", r.body);
            assert!(r.sets_id().is_some() && removes_old(&r), "round {round}");

            let mine = old_login(&old, "kim", &secrets).await;
            let planted = old_login(&old, "mallory", &secrets).await;
            let two = format!("{planted}; {mine}");
            let (r, data) = read(&app, &two).await;
            assert_eq!((r.is_new(), data), (Some(true), json!({})), "round {round}");
            assert!(
                r.set_cookies.is_empty(),
                "round {round}: {:?}",
                r.set_cookies
            );
            let who = get_with(&format!("{}/whoami", old.url), &mine).await;
            assert_eq!(
                who.body, "kim",
                "round {round}: the user's old session was touched"
            );
        }
    });
}
