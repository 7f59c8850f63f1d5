//! The middleware over real TCP against a real Redis: counter, concurrent deltas, store down,
//! a flood that creates nothing, round trips per request, and koa-compat records both ways.
#![cfg(feature = "redis-tests")]
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod support;

use std::time::{Duration, Instant};

use session_core::Config;
use session_core::driver::KeyDerivation;
use session_core::driver::SessionId;
use session_hyper::SessionLayer;
use session_store_redis::{Format, RedisStore};
use support::{Server, browser, serve, text};

const KEY: &[u8] = b"redis e2e key, at least 32 bytes!";

fn config() -> Config {
    Config::builder().key(KEY.to_vec()).build().unwrap()
}

async fn dbsize(url: &str) -> i64 {
    match support::cmd(url, &["DBSIZE"]).await {
        redis::Value::Int(n) => n,
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counter_concurrency_and_no_records_for_junk() {
    let server = Server::start(&[]);
    let store = RedisStore::builder(server.url()).build().await.unwrap();
    let url = serve(SessionLayer::store(config(), store).build().unwrap()).await;
    let c = browser();
    for n in 1..=3 {
        assert_eq!(
            text(&c, &format!("{url}/views")).await,
            format!("{n} views")
        );
    }
    assert_eq!(dbsize(&server.url()).await, 1);
    // The key in Redis is not the cookie value.
    let keys = support::cmd(&server.url(), &["KEYS", "*"]).await;
    let redis::Value::Array(keys) = keys else {
        panic!()
    };
    let redis::Value::BulkString(k) = &keys[0] else {
        panic!()
    };
    assert!(k.starts_with(b"sess:"));

    // Two concurrent requests changing different keys both land.
    let a = c.get(format!("{url}/slow-set?cart=book")).send();
    let b = c.get(format!("{url}/slow-set?theme=dark")).send();
    let (a, b) = tokio::join!(a, b);
    assert!(a.unwrap().status().is_success() && b.unwrap().status().is_success());
    assert_eq!(
        text(&c, &format!("{url}/read")).await,
        r#"{"views":3,"cart":"book","theme":"dark"}"#
            .replace(r#","cart":"book","theme":"dark""#, &{
                // Hash field order is Redis's; compare as JSON below instead.
                String::new()
            })
            .replace("{\"views\":3}", &text(&c, &format!("{url}/read")).await)
    );
    let got: serde_json::Value =
        serde_json::from_str(&text(&c, &format!("{url}/read")).await).unwrap();
    assert_eq!(
        got,
        serde_json::json!({"views": 3, "cart": "book", "theme": "dark"})
    );

    // A flood of random cookies creates no record.
    let raw = reqwest::Client::new();
    for i in 0..200 {
        raw.get(format!("{url}/read"))
            .header("cookie", format!("koa.sess=x{i}; koa.sess.sig=y{i}"))
            .send()
            .await
            .unwrap();
    }
    assert_eq!(dbsize(&server.url()).await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_gives_503_fast_then_recovers() {
    let mut server = Server::start(&[]);
    let store = RedisStore::builder(server.url())
        .checkout_timeout(Duration::from_millis(300))
        .command_timeout(Duration::from_millis(300))
        .build()
        .await
        .unwrap();
    let url = serve(SessionLayer::store(config(), store).build().unwrap()).await;
    let c = browser();
    assert_eq!(text(&c, &format!("{url}/views")).await, "1 views");
    server.stop();
    let t = Instant::now();
    let r = c.get(format!("{url}/views")).send().await.unwrap();
    assert_eq!(r.status(), 503);
    assert!(r.headers().contains_key("retry-after"));
    assert!(
        t.elapsed() < Duration::from_millis(1500),
        "{:?}",
        t.elapsed()
    );
    server.restart();
    let t = Instant::now();
    loop {
        let r = c.get(format!("{url}/views")).send().await.unwrap();
        if r.status() == 200 {
            // The restarted Redis kept nothing: a new session.
            assert_eq!(r.text().await.unwrap(), "1 views");
            break;
        }
        assert!(t.elapsed() < Duration::from_secs(3), "no recovery");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Commands clients sent to Redis while `f` ran, seen through `MONITOR` (commands a script runs
/// are shown there as `[0 lua]` and are not round trips, so they are left out).
async fn client_commands<F: std::future::Future<Output = ()>>(port: u16, f: F) -> Vec<String> {
    use tokio::io::AsyncBufReadExt;
    let mut mon = tokio::process::Command::new("redis-cli")
        .args(["-p", &port.to_string(), "monitor"])
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("redis-cli (installed with redis-server)");
    let mut lines = tokio::io::BufReader::new(mon.stdout.take().unwrap()).lines();
    assert_eq!(lines.next_line().await.unwrap().as_deref(), Some("OK"));
    f.await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    mon.kill().await.unwrap();
    let mut seen = Vec::new();
    while let Ok(Some(l)) = lines.next_line().await {
        if !l.contains(" lua]") {
            seen.push(l.split('"').nth(1).unwrap_or("").to_ascii_uppercase());
        }
    }
    seen
}

/// Round trips per request, counted by Redis itself (`MONITOR`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_trips_per_request() {
    let server = Server::start(&[]);
    for rolling in [false, true] {
        let cfg = Config::builder()
            .key(KEY.to_vec())
            .rolling(rolling)
            .build()
            .unwrap();
        let store = RedisStore::builder(server.url()).build().await.unwrap();
        let url = serve(SessionLayer::store(cfg, store).build().unwrap()).await;
        let c = browser();
        // Warm up: the scripts get loaded (an EVALSHA misses once per script).
        text(&c, &format!("{url}/views")).await;
        text(&c, &format!("{url}/read")).await;
        text(&c, &format!("{url}/views")).await;
        let read = client_commands(server.port, async {
            let r = c.get(format!("{url}/read")).send().await.unwrap();
            let cookies = r.headers().get_all("set-cookie").iter().count();
            assert_eq!(
                cookies,
                if rolling { 2 } else { 0 },
                "rolling re-sends the cookie"
            );
        })
        .await;
        let change = client_commands(server.port, async {
            text(&c, &format!("{url}/views")).await;
        })
        .await;
        println!("rolling={rolling}: read-only {read:?}, changing {change:?}");
        // Under rolling, the extension is the commit's touch, which also finds out whether a
        // login superseded the id meanwhile (it then sends no cookie).
        assert_eq!(
            read.len(),
            if rolling { 2 } else { 1 },
            "a read-only request is one round trip, two under rolling: {read:?}"
        );
        assert_eq!(change.len(), 2, "a changing request is two: {change:?}");
    }
}

/// What a user's sessions cost in round trips, counted by Redis (`MONITOR`): binding at login
/// is one more than a login without it, requests of a bound session cost what any session's
/// do, a logout of one one more (its index entry), and requests of sessions without an owner
/// never touch an index.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn owner_round_trips() {
    let server = Server::start(&[]);
    let cfg = Config::builder().key(KEY.to_vec()).build().unwrap();
    let store = RedisStore::builder(server.url()).build().await.unwrap();
    let layer = SessionLayer::store(cfg, store).build().unwrap();
    let owners = layer.owners().unwrap();
    let url = serve(layer).await;
    let (plain, owned) = (browser(), browser());
    // Warm up: every script gets loaded once (an EVALSHA misses once per script).
    for c in [&plain, &owned] {
        text(c, &format!("{url}/views")).await;
    }
    text(&plain, &format!("{url}/login?owner=warm")).await;
    owners.list("warm").await.unwrap();
    text(&plain, &format!("{url}/logout")).await;
    text(&plain, &format!("{url}/views")).await;
    text(&plain, &format!("{url}/views")).await;
    let count = |c: &reqwest::Client, path: &str| {
        let (c, u) = (c.clone(), format!("{url}{path}"));
        client_commands(server.port, async move {
            text(&c, &u).await;
        })
    };
    let plain_login = count(&plain, "/login?user=ada").await;
    let owned_login = count(&owned, "/login?owner=ada").await;
    println!("login {plain_login:?}, login + set_owner {owned_login:?}");
    assert_eq!(
        owned_login.len(),
        plain_login.len() + 1,
        "binding is one round trip"
    );
    for (path, want) in [("/read", 1), ("/views", 2)] {
        let (a, b) = (count(&plain, path).await, count(&owned, path).await);
        assert_eq!((a.len(), b.len()), (want, want), "{path}: {a:?} / {b:?}");
    }
    let list = client_commands(server.port, async {
        assert_eq!(owners.list("ada").await.unwrap().len(), 1);
    })
    .await;
    println!("listing one session: {list:?}");
    assert_eq!(
        list.len(),
        3,
        "the index, then per session a probe and a read of the record (its binding)"
    );
    let (a, b) = (
        count(&plain, "/logout").await,
        count(&owned, "/logout").await,
    );
    println!("logout {a:?}, logout of a bound session {b:?}");
    assert_eq!(
        b.len(),
        a.len() + 1,
        "a bound session's logout removes its entry"
    );
}

/// What a session limit adds to a login, counted by Redis: nothing while the owner has room (the
/// admission script replaces the index script); at the limit, a look at the counted sessions
/// and the decision, then the ended session's record replaced by its marker.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limited_login_round_trips() {
    let server = Server::start(&[]);
    let cfg = Config::builder().key(KEY.to_vec()).build().unwrap();
    let store = RedisStore::builder(server.url()).build().await.unwrap();
    let limit = session_core::SessionLimit::new(2, session_core::OverLimit::EndOldest).unwrap();
    let layer = SessionLayer::store(cfg, store)
        .max_sessions_per_owner(limit)
        .build()
        .unwrap();
    let url = serve(layer).await;
    // Warm up: every script gets loaded once, the ending path included.
    for _ in 0..3 {
        text(&browser(), &format!("{url}/login?owner=warm")).await;
    }
    let count = |path: &str| {
        let (c, u) = (browser(), format!("{url}{path}"));
        client_commands(server.port, async move {
            text(&c, &u).await;
        })
    };
    let room = count("/login?owner=ada").await;
    let room2 = count("/login?owner=ada").await;
    let full = count("/login?owner=ada").await;
    println!("limited login with room {room:?}; at the limit, ending one: {full:?}");
    // A fresh browser's login: the admission script and the create (no old record to supersede).
    assert_eq!((room.len(), room2.len()), (2, 2), "{room:?} / {room2:?}");
    // At the limit: the probe, the entries (one script, a TTL probe per session), the decision,
    // the marker (create: collides with the live record; read it; destroy; create), the create.
    assert_eq!(full.len(), 2 + 1 + 2 + 4 + 1, "{full:?}");
}

/// A record written the way a Koa app's Redis store writes it loads here, and ours loads there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn koa_compat_records_both_ways() {
    let server = Server::start(&[]);
    let koa_keys = ["koa-app-key"];
    let cfg = || {
        Config::builder()
            .keys(koa_keys)
            .koa_compat(true)
            .build()
            .unwrap()
    };
    let store = RedisStore::builder(server.url())
        .format(Format::Koa)
        .build()
        .await
        .unwrap();
    let url = serve(SessionLayer::store(cfg(), store).build().unwrap()).await;

    // 1. Koa wrote this (redis-cli style): key = the external id, value = koa's JSON.
    let koa_id = "3b241101-e2bb-4255-8caf-4136c566a962";
    let far = 4_000_000_000_000u64;
    let json = format!(r#"{{"views":41,"user":"ada","_expire":{far},"_maxAge":86400000}}"#);
    support::cmd(&server.url(), &["SET", koa_id, &json, "PX", "86410000"]).await;
    let cookies = session_cookie::SessionCookies::from_config(&cfg()).unwrap();
    let set = cookies.write(koa_id, Some(far), 0, false).unwrap();
    let header: Vec<String> = set
        .iter()
        .map(|c| c.split(';').next().unwrap().to_owned())
        .collect();
    let r = reqwest::Client::new()
        .get(format!("{url}/views"))
        .header("cookie", header.join("; "))
        .send()
        .await
        .unwrap();
    assert_eq!(r.text().await.unwrap(), "42 views");
    let stored = match support::cmd(&server.url(), &["GET", koa_id]).await {
        redis::Value::BulkString(b) => String::from_utf8(b).unwrap(),
        other => panic!("{other:?}"),
    };
    assert!(
        stored.starts_with(r#"{"views":42,"user":"ada","_expire":"#),
        "{stored}"
    );
    assert!(stored.ends_with(r#","_maxAge":86400000}"#), "{stored}");

    // 2. We wrote this: what a Koa app reads is koa's format under the raw cookie id.
    let c = browser();
    assert_eq!(text(&c, &format!("{url}/views")).await, "1 views");
    let redis::Value::Array(keys) = support::cmd(&server.url(), &["KEYS", "*"]).await else {
        panic!()
    };
    let ours: Vec<String> = keys
        .into_iter()
        .filter_map(|k| match k {
            redis::Value::BulkString(b) => Some(String::from_utf8(b).unwrap()),
            _ => None,
        })
        .filter(|k| k != koa_id)
        .collect();
    assert_eq!(ours.len(), 1);
    assert!(
        SessionId::new_unchecked(ours[0].clone()).as_str().len() == 43,
        "the key is the raw id"
    );
    let _ = KeyDerivation::Raw;
    let value = match support::cmd(&server.url(), &["GET", &ours[0]]).await {
        redis::Value::BulkString(b) => String::from_utf8(b).unwrap(),
        other => panic!("{other:?}"),
    };
    let v: serde_json::Value = serde_json::from_str(&value).unwrap();
    assert_eq!(v["views"], 1);
    assert!(v["_expire"].as_u64().unwrap() > 1_700_000_000_000);
    assert_eq!(v["_maxAge"], 86_400_000);
}
