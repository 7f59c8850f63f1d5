//! Moving in from express-session: every old session here is made by a real express app
//! (`fixtures/express`: express-session 1.18 with connect-redis 7, installed by
//! `cargo xtask ci`, its script's path in `EXPRESS_FIXTURE`) on Redis, its `connect.sid` cookie
//! signed under the app's secrets. The app of ours in front (the test kit's JSON session app)
//! moves them; the attacks try to break the move.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]
#![cfg(feature = "migrate-tests")]

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use session_core::Config;
use session_core::store::{DynStore, Loaded, Store};
use session_hyper::{MemoryStore, SessionLayer};
use session_migrate::Express;
use session_testkit::capture::{KEY1, Secrets, attack};
use session_testkit::client::{Jar, Reply, get_with};
use session_testkit::process::Running;
use session_testkit::redis::Server;
use session_testkit::served::App;
use session_testkit::stores::Recorder;

/// Rounds of each race.
const ROUNDS: usize = 200;
/// The old app's secrets, newest first.
const SECRETS: [&str; 2] = ["the newest express secret", "an older express secret"];

/// The express app on the Redis at `url` (its keys under `prefix`), signing with `secrets`.
async fn old_app(url: &str, prefix: &str, secrets: &[&str]) -> Running {
    let script =
        std::env::var("EXPRESS_FIXTURE").expect("EXPRESS_FIXTURE: run through `cargo xtask ci`");
    let mut args = vec!["--redis", url, "--prefix", prefix];
    for s in secrets {
        args.extend(["--secret", s]);
    }
    session_testkit::process::start(&script, &args)
        .await
        .expect("the express fixture started")
}

/// A user logged in on the old app: its `Cookie` header (`connect.sid=...`).
async fn old_login(old: &Running, user: &str, secrets: &Secrets) -> String {
    let r = get_with(&format!("{}/login?user={user}&views=41", old.url), "").await;
    assert_eq!(r.status, 200, "{}", r.body);
    let value = r
        .cookie("connect.sid")
        .expect("express-session set its cookie");
    secrets.add(value.clone());
    format!("connect.sid={value}")
}

/// The source for the old app's Redis, knowing both secrets (newest first).
fn source(url: &str, prefix: &str) -> Express {
    Express::builder()
        .secret(SECRETS[0])
        .secret(SECRETS[1])
        .prefix(prefix)
        .redis(url)
        .unwrap()
}

/// Our app on `new`, moving sessions from `source`.
async fn new_app(new: Arc<dyn DynStore>, source: Express) -> App {
    let config = Config::builder().key(KEY1.to_vec()).build().unwrap();
    let layer = SessionLayer::store(config, new)
        .migrate_from_source(source)
        .store_timeout(Duration::from_millis(500))
        .build()
        .unwrap();
    App::serve(layer).await
}

async fn read(app: &App, cookie: &str) -> (Reply, Value) {
    let r = app.req(hyper::Method::GET, "/session", cookie, None).await;
    let data = serde_json::from_str(&r.body).unwrap_or(Value::Null);
    (r, data)
}

/// Whether the reply removes the old cookie, as express-session set it (path `/`).
fn removes_old(r: &Reply) -> bool {
    r.set_cookies
        .iter()
        .any(|c| c.starts_with("connect.sid=;") && c.contains("Path=/") && c.contains("Max-Age=0"))
}

/// A key prefix no other test uses on the shared server.
fn prefix() -> String {
    format!("{}:", session_testkit::values::unique("express"))
}

/// A user logged in under express-session, with either secret having signed the cookie (the
/// app rotated), is logged in under ours with the same data and a new id of ours; the old
/// cookie is removed; the old record is gone (the old app itself no longer finds it); a replay
/// of the old cookie is anonymous.
#[test]
fn a_session_moves_from_express_session() {
    attack(|secrets| async move {
        let url = session_testkit::redis::shared_url();
        for signer in [&SECRETS[..], &SECRETS[1..]] {
            let what = format!("signed under {:?}", signer[0]);
            let p = prefix();
            let old = old_app(&url, &p, signer).await;
            let app = new_app(Arc::new(MemoryStore::new()), source(&url, &p)).await;
            let cookie = old_login(&old, "ann", &secrets).await;
            let (r, data) = read(&app, &cookie).await;
            assert_eq!(r.status, 200, "{what}: {}", r.body);
            assert_eq!(data, json!({"user": "ann", "views": 41}), "{what}");
            assert_eq!(r.is_new(), Some(false), "{what}");
            assert!(r.sets_id().is_some(), "{what}: our cookie");
            assert!(removes_old(&r), "{what}: {:?}", r.set_cookies);
            secrets.note(&r);
            let mut ours = Jar::default();
            ours.apply(&r);
            let who = get_with(&format!("{}/whoami", old.url), &cookie).await;
            assert_eq!(who.body, "anonymous", "{what}: the old record lives");
            let (r, data) = read(&app, &ours.header()).await;
            assert_eq!((r.is_new(), &data["views"]), (Some(false), &json!(41)));
            let (r, data) = read(&app, &cookie).await;
            assert_eq!(
                (r.is_new(), data),
                (Some(true), json!({})),
                "{what}: replay"
            );
            assert!(r.sets_id().is_none(), "{what}: the replay wrote a session");
        }
    });
}

/// Requests racing the first move of one session make one session: 200 rounds of 6 requests
/// at once with the old cookie.
#[test]
fn requests_racing_a_move_make_one_session() {
    attack(|secrets| async move {
        let (url, p) = (session_testkit::redis::shared_url(), prefix());
        let old = old_app(&url, &p, &SECRETS).await;
        let new = Recorder::new(MemoryStore::new());
        let app = new_app(Arc::new(new.clone()), source(&url, &p)).await;
        for round in 0..ROUNDS {
            let cookie = old_login(&old, "bob", &secrets).await;
            let racing: Vec<_> = (0..6)
                .map(|_| app.spawn(hyper::Method::GET, "/session", &cookie_jar(&cookie)))
                .collect();
            let mut ids = 0;
            for r in racing {
                let r = r.await.unwrap();
                assert_eq!(r.status, 200, "round {round}: {}", r.body);
                let data: Value = serde_json::from_str(&r.body).unwrap();
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

/// A jar holding exactly the `name=value` of a `Cookie` header.
fn cookie_jar(cookie: &str) -> Jar {
    let (n, v) = cookie.split_once('=').unwrap();
    Jar(vec![(n.to_owned(), v.to_owned())])
}

/// A logout sent with the old cookie while the move runs ends the moved session: 200 rounds
/// at once, then 100 with the logout exactly between the move's create and its supersede.
/// Whatever id the move handed out leads nowhere, no record holds the user, and the old record
/// is gone.
#[test]
fn a_logout_with_the_old_cookie_racing_the_move_ends_it() {
    attack(|secrets| async move {
        let (url, p) = (session_testkit::redis::shared_url(), prefix());
        let old = old_app(&url, &p, &SECRETS).await;
        let new = Recorder::new(MemoryStore::new());
        let app = new_app(Arc::new(new.clone()), source(&url, &p)).await;
        for round in 0..ROUNDS + 100 {
            let cookie = old_login(&old, "eve", &secrets).await;
            let held = round >= ROUNDS;
            if held {
                new.pause.arm();
            }
            let moving = app.spawn(hyper::Method::GET, "/session", &cookie_jar(&cookie));
            if held {
                new.pause.arrived().await;
            }
            let logout = app
                .req(hyper::Method::DELETE, "/session", &cookie, None)
                .await;
            assert_eq!(logout.status, 204, "round {round}: {}", logout.body);
            if held {
                new.pause.release();
            }
            let moved = moving.await.unwrap();
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
                    assert!(
                        r.data.get("user").is_none(),
                        "round {round}: it outlived the logout"
                    );
                }
            }
            let who = get_with(&format!("{}/whoami", old.url), &cookie).await;
            assert_eq!(who.body, "anonymous", "round {round}: the old record lives");
        }
    });
}

/// `GET` calls the Redis server has answered.
async fn get_calls(server: &Server) -> u64 {
    let info = match server.cmd(&["INFO", "commandstats"]).await {
        redis::Value::BulkString(b) => String::from_utf8(b).unwrap(),
        redis::Value::VerbatimString { text, .. } => text,
        other => panic!("INFO: {other:?}"),
    };
    info.lines()
        .find_map(|l| l.strip_prefix("cmdstat_get:calls="))
        .and_then(|rest| rest.split(',').next())
        .map_or(0, |n| n.parse().unwrap())
}

/// Forged old cookies are anonymous and cost the old store nothing (a Redis of the test's own,
/// its GET count read from `INFO commandstats`): a cookie signed with a secret the new app
/// doesn't know, a tampered signature, the bare id without `s:`. 100 rounds of each. Requests
/// without an old cookie cost it nothing either.
#[test]
fn forged_old_cookies_are_anonymous_and_cost_the_old_store_nothing() {
    attack(|secrets| async move {
        let server = Server::start(&[]);
        let p = prefix();
        let old = old_app(&server.url(), &p, &SECRETS).await;
        let impostor = old_app(&server.url(), &p, &["a secret of somebody else"]).await;
        let new = Recorder::new(MemoryStore::new());
        let app = new_app(Arc::new(new.clone()), source(&server.url(), &p)).await;
        let real = old_login(&old, "carol", &secrets).await;
        let value = real.strip_prefix("connect.sid=").unwrap();
        // One character of the signature changed (the last is base64's, never padding).
        let mut tampered = value.to_owned();
        let last = if tampered.ends_with('A') { 'B' } else { 'A' };
        tampered.pop();
        tampered.push(last);
        // The bare id: `s%3A<id>.<signature>` without its `s:` and signature.
        let bare = value
            .strip_prefix("s%3A")
            .and_then(|v| v.rsplit_once('.'))
            .map(|(id, _)| id.to_owned())
            .unwrap();
        let forged = [
            (
                "another secret",
                old_login(&impostor, "mallory", &secrets).await,
            ),
            ("tampered", format!("connect.sid={tampered}")),
            ("no s:", format!("connect.sid={bare}")),
            ("no signature", format!("connect.sid=s%3A{bare}")),
        ];
        let before = get_calls(&server).await;
        for _ in 0..100 {
            for (what, cookie) in &forged {
                let (r, data) = read(&app, cookie).await;
                assert_eq!((r.status, r.is_new()), (200, Some(true)), "{what}");
                assert_eq!(data, json!({}), "{what}");
                assert!(r.set_cookies.is_empty(), "{what}: {:?}", r.set_cookies);
            }
            let (r, _) = read(&app, "").await;
            assert_eq!(r.status, 200);
        }
        assert_eq!(get_calls(&server).await, before, "the old store was asked");
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

/// The old store down: refusing (a closed port) or not answering (`CLIENT PAUSE`), a request
/// with the old cookie is a 503 with `Retry-After` within the layer's time limit; nothing is
/// lost: once the store answers again, the session moves.
#[test]
fn the_old_store_down_is_a_fast_503_and_loses_nothing() {
    attack(|secrets| async move {
        let server = Server::start(&[]);
        let p = prefix();
        let old = old_app(&server.url(), &p, &SECRETS).await;
        let cookie = old_login(&old, "dan", &secrets).await;
        let closed = format!("redis://127.0.0.1:{}", session_testkit::net::free_port());
        let refusing = new_app(Arc::new(MemoryStore::new()), source(&closed, &p)).await;
        let new = Recorder::new(MemoryStore::new());
        let app = new_app(Arc::new(new.clone()), source(&server.url(), &p)).await;
        for (what, app) in [("refusing", &refusing), ("paused", &app)] {
            if what == "paused" {
                server.cmd(&["CLIENT", "PAUSE", "2500", "ALL"]).await;
            }
            for _ in 0..3 {
                let t = Instant::now();
                let (r, _) = read(app, &cookie).await;
                assert_eq!(r.status, 503, "{what}: {}", r.body);
                assert!(r.retry_after(), "{what}");
                assert!(r.set_cookies.is_empty(), "{what}: {:?}", r.set_cookies);
                assert!(
                    t.elapsed() < Duration::from_secs(3),
                    "{what}: {:?}",
                    t.elapsed()
                );
            }
        }
        tokio::time::sleep(Duration::from_millis(2500)).await;
        assert!(
            new.take_created().is_empty(),
            "written while the store was down"
        );
        let (r, data) = read(&app, &cookie).await;
        assert_eq!((r.status, &data["user"]), (200, &json!("dan")));
    });
}

/// The drain on 2,000 sessions written through connect-redis's own store API (`--seed`): all
/// moved and the old keys gone; a drained session's first request gets our id and its data; a
/// second run finds nothing.
#[test]
fn a_drain_moves_sessions_written_by_connect_redis() {
    attack(|_| async move {
        let server = Server::start(&[]);
        let p = prefix();
        let script = std::env::var("EXPRESS_FIXTURE")
            .expect("EXPRESS_FIXTURE: run through `cargo xtask ci`");
        let out = tokio::process::Command::new(&script)
            .args([
                "--redis",
                &server.url(),
                "--prefix",
                &p,
                "--secret",
                SECRETS[0],
            ])
            .args(["--seed", "2000"])
            .output()
            .await
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8(out.stdout).unwrap();
        let mut lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.pop(), Some("seeded 2000"));
        let config = Config::builder().key(KEY1.to_vec()).build().unwrap();
        let layer = SessionLayer::store(config, MemoryStore::new())
            .migrate_from_source(source(&server.url(), &p))
            .build()
            .unwrap();
        let report = layer.drain().unwrap().run(|_| {}).await.unwrap();
        assert_eq!((report.moved, report.failed), (2000, 0), "{report:?}");
        match server.cmd(&["DBSIZE"]).await {
            redis::Value::Int(n) => assert_eq!(n, 0, "old keys left"),
            other => panic!("DBSIZE: {other:?}"),
        }
        let app = App::serve(layer.clone()).await;
        for line in lines.iter().take(50) {
            let (_, value) = line.split_once(' ').unwrap();
            let (r, data) = read(&app, &format!("connect.sid={value}")).await;
            assert!(
                data["user"]
                    .as_str()
                    .is_some_and(|u| u.starts_with("seed-")),
                "{}",
                r.body
            );
            assert!(r.sets_id().is_some());
        }
        let again = layer.drain().unwrap().run(|_| {}).await.unwrap();
        assert_eq!((again.moved, again.failed), (0, 0), "{again:?}");
    });
}
