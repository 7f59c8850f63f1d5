//! What the tests of each library's source share: our app in front of a source, reading it,
//! and the attacks every source meets (racing first moves, a logout racing the move, the old
//! store down), each given the old app's way of logging a user in.
#![allow(dead_code)]

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use session_core::Config;
use session_core::store::{DynStore, Loaded, Source, Store};
use session_hyper::{MemoryStore, SessionLayer};
use session_testkit::capture::{KEY1, Secrets};
use session_testkit::client::{Jar, Reply, get_with};
use session_testkit::redis::Server;
use session_testkit::served::App;
use session_testkit::stores::Recorder;

/// A user logged in on the old app at `old` (its `GET /login?user=U&views=41`): the `Cookie`
/// header of its cookie `name`.
pub async fn login(old: &str, name: &str, user: &str, secrets: &Secrets) -> String {
    let r = get_with(&format!("{old}/login?user={user}&views=41"), "").await;
    assert_eq!(r.status, 200, "{}", r.body);
    let value = r.cookie(name).expect("the old app set its cookie");
    secrets.add(value.clone());
    format!("{name}={value}")
}

/// Rounds of each race.
pub const ROUNDS: usize = 200;

/// Our app on `new`, moving sessions from `source`.
pub async fn new_app(new: Arc<dyn DynStore>, source: impl Source) -> App {
    let config = Config::builder().key(KEY1.to_vec()).build().unwrap();
    let layer = SessionLayer::store(config, new)
        .migrate_from_source(source)
        .store_timeout(Duration::from_millis(500))
        .build()
        .unwrap();
    App::serve(layer).await
}

/// `GET /session` with exactly `cookie`: the reply and the data it answered.
pub async fn read(app: &App, cookie: &str) -> (Reply, Value) {
    let r = app.req(hyper::Method::GET, "/session", cookie, None).await;
    let data = serde_json::from_str(&r.body).unwrap_or(Value::Null);
    (r, data)
}

/// Whether the reply removes the old cookie `name`, as the old app set it (path `/`).
pub fn removes_old(r: &Reply, name: &str) -> bool {
    r.set_cookies.iter().any(|c| {
        c.starts_with(&format!("{name}=;")) && c.contains("Path=/") && c.contains("Max-Age=0")
    })
}

/// A jar holding exactly the `name=value` of a `Cookie` header.
pub fn jar_of(cookie: &str) -> Jar {
    let (n, v) = cookie.split_once('=').unwrap();
    Jar(vec![(n.to_owned(), v.to_owned())])
}

/// `GET` calls the Redis server has answered.
pub async fn get_calls(server: &Server) -> u64 {
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

/// A user logged in on the old app moves: the same data under a new id of ours, the old cookie
/// `name` removed, the old record gone (the old app's `/whoami` at `old` no longer finds it),
/// our cookie carrying on, and a replay of the old cookie anonymous.
pub async fn moves(app: &App, old: &str, cookie: &str, name: &str, what: &str) {
    let (r, data) = read(app, cookie).await;
    assert_eq!(r.status, 200, "{what}: {}", r.body);
    assert_eq!(data, json!({"user": "ann", "views": 41}), "{what}");
    assert_eq!(r.is_new(), Some(false), "{what}");
    assert!(r.sets_id().is_some(), "{what}: our cookie");
    assert!(removes_old(&r, name), "{what}: {:?}", r.set_cookies);
    let mut ours = Jar::default();
    ours.apply(&r);
    let who = get_with(&format!("{old}/whoami"), cookie).await;
    assert_eq!(who.body, "anonymous", "{what}: the old record lives");
    let (r, data) = read(app, &ours.header()).await;
    assert_eq!(
        (r.is_new(), &data["views"]),
        (Some(false), &json!(41)),
        "{what}"
    );
    let (r, data) = read(app, cookie).await;
    assert_eq!(
        (r.is_new(), data),
        (Some(true), json!({})),
        "{what}: replay"
    );
    assert!(r.sets_id().is_none(), "{what}: the replay wrote a session");
}

/// Requests racing the first move of one session make one session: `ROUNDS` rounds of 6
/// requests at once with a fresh old cookie from `login`.
pub async fn racing_moves<F, Fut>(app: &App, new: &Recorder<MemoryStore>, login: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = String>,
{
    for round in 0..ROUNDS {
        let cookie = login().await;
        let ids = app.race_first_use(&jar_of(&cookie), 6, "bob", round).await;
        assert_eq!(
            ids.len(),
            1,
            "round {round}: {} sessions handed out",
            ids.len()
        );
        let mut live = 0;
        for k in new.take_created() {
            live += usize::from(matches!(new.load(&k).await.unwrap(), Loaded::Live(_)));
        }
        assert_eq!(live, 1, "round {round}: {live} sessions in our store");
    }
}

/// A logout sent with the old cookie while the move runs ends the moved session: `ROUNDS`
/// rounds at once, then 100 with the logout exactly between the move's create and its
/// supersede. Whatever id the move handed out leads nowhere, no record holds the user, and
/// the old record is gone (the old app at `old` no longer finds it).
pub async fn logout_racing_moves<F, Fut>(
    app: &App,
    new: &Recorder<MemoryStore>,
    old: &str,
    login: F,
) where
    F: Fn() -> Fut,
    Fut: Future<Output = String>,
{
    for round in 0..ROUNDS + 100 {
        let cookie = login().await;
        let held = round >= ROUNDS;
        if held {
            new.pause.arm();
        }
        let moving = app.spawn(hyper::Method::GET, "/session", &jar_of(&cookie));
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
            let (r, _) = read(app, &moved.pairs().join("; ")).await;
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
        let who = get_with(&format!("{old}/whoami"), &cookie).await;
        assert_eq!(who.body, "anonymous", "round {round}: the old record lives");
    }
}

/// The old store down: refusing (`refusing`, whose source names a closed port) or not
/// answering (`server` paused under `app`), a request with the old cookie is a 503 with
/// `Retry-After` within the layer's time limit; nothing is lost: once the store answers again,
/// the session moves.
pub async fn store_down(
    refusing: &App,
    app: &App,
    new: &Recorder<MemoryStore>,
    server: &Server,
    cookie: &str,
) {
    for (what, app) in [("refusing", refusing), ("paused", app)] {
        if what == "paused" {
            server.cmd(&["CLIENT", "PAUSE", "2500", "ALL"]).await;
        }
        for _ in 0..3 {
            let t = Instant::now();
            let (r, _) = read(app, cookie).await;
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
    let (r, data) = read(app, cookie).await;
    assert_eq!((r.status, &data["user"]), (200, &json!("dan")));
}

/// Forged old cookies are anonymous and cost the old store (`server`) nothing: 100 rounds of
/// each, and of a request without any cookie; then the `real` cookie still moves.
pub async fn forged(
    app: &App,
    new: &Recorder<MemoryStore>,
    server: &Server,
    forged: &[(&str, String)],
    real: &str,
) {
    let before = get_calls(server).await;
    for _ in 0..100 {
        for (what, cookie) in forged {
            let (r, data) = read(app, cookie).await;
            assert_eq!((r.status, r.is_new()), (200, Some(true)), "{what}");
            assert_eq!(data, json!({}), "{what}");
            assert!(r.set_cookies.is_empty(), "{what}: {:?}", r.set_cookies);
        }
        let (r, _) = read(app, "").await;
        assert_eq!(r.status, 200);
    }
    assert_eq!(get_calls(server).await, before, "the old store was asked");
    assert!(
        new.take_created().is_empty(),
        "a forged cookie wrote a session"
    );
    let (r, data) = read(app, real).await;
    assert_eq!(
        (r.status, &data["user"]),
        (200, &json!("carol")),
        "the real one moves"
    );
}

/// Drains the sessions the old app seeded (`lines`: `ID COOKIE` each, `COOKIE` as the old app
/// would set it under the name `name`): all `n` moved and none left in the old Redis; a drained
/// session's first request gets our id and its data; a second run finds nothing.
pub async fn drains(layer: SessionLayer, server: &Server, name: &str, lines: &[&str], n: u64) {
    let report = layer.drain().unwrap().run(|_| {}).await.unwrap();
    assert_eq!((report.moved, report.failed), (n, 0), "{report:?}");
    match server.cmd(&["DBSIZE"]).await {
        redis::Value::Int(n) => assert_eq!(n, 0, "old keys left"),
        other => panic!("DBSIZE: {other:?}"),
    }
    let app = App::serve(layer.clone()).await;
    for line in lines.iter().take(50) {
        let (_, value) = line.split_once(' ').unwrap();
        let (r, data) = read(&app, &format!("{name}={value}")).await;
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
}

/// Runs an old app's `--seed n` (`cmd`: its program and arguments): the lines it printed
/// before `seeded n`.
pub async fn seed(program: &str, args: &[&str], n: u64) -> Vec<String> {
    let out = tokio::process::Command::new(program)
        .args(args)
        .args(["--seed", &n.to_string()])
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    assert_eq!(lines.pop(), Some(format!("seeded {n}")));
    lines
}
