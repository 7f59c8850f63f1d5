//! The drain (`SessionLayer::drain`) on 100,000 tower-sessions sessions written through the
//! library's own store API (`fixtures/tower-sessions --seed`), while requests carrying old
//! cookies keep coming: every old session is moved or accounted for, no request sees an error,
//! and the drained sessions get ids of ours on their first request (or end with a logout).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]
#![cfg(feature = "migrate-tests")]

use std::time::{Duration, Instant, SystemTime};

use serde_json::{Value, json};
use session_core::Config;
use session_hyper::{DrainReport, MemoryStore, SessionLayer};
use session_migrate::TowerSessions;
use session_testkit::capture::{KEY1, attack};
use session_testkit::client::Reply;
use session_testkit::redis::Server;
use session_testkit::served::App;

/// Old sessions seeded.
const SEEDED: u64 = 100_000;

/// Seeds `n` sessions into the Redis at `url` through tower-sessions; the first 200 ids.
async fn seed(url: &str, n: u64) -> Vec<String> {
    let bin = std::env::var("TOWER_SESSIONS_FIXTURE")
        .expect("TOWER_SESSIONS_FIXTURE: run through `cargo xtask ci`");
    let out = tokio::process::Command::new(bin)
        .args(["--redis", url, "--seed", &n.to_string()])
        .output()
        .await
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    assert_eq!(lines.pop().as_deref(), Some(format!("seeded {n}").as_str()));
    lines
}

/// Our layer on `new`, moving sessions in from the tower-sessions Redis `server`.
fn layer_on(server: &Server, new: MemoryStore) -> SessionLayer {
    let config = Config::builder().key(KEY1.to_vec()).build().unwrap();
    let source = TowerSessions::builder().redis(&server.url()).unwrap();
    SessionLayer::store(config, new)
        .migrate_from_source(source)
        .build()
        .unwrap()
}

async fn dbsize(server: &Server) -> i64 {
    match server.cmd(&["DBSIZE"]).await {
        redis::Value::Int(n) => n,
        other => panic!("DBSIZE: {other:?}"),
    }
}

async fn read(app: &App, cookie: &str) -> (Reply, Value) {
    let r = app.req(hyper::Method::GET, "/session", cookie, None).await;
    let data = serde_json::from_str(&r.body).unwrap_or(Value::Null);
    (r, data)
}

/// The `user` of a seeded session, if `data` is one.
fn seeded_user(data: &Value) -> Option<&str> {
    data["user"].as_str().filter(|u| u.starts_with("seed-"))
}

#[test]
fn a_drain_moves_100_000_sessions_while_requests_come() {
    attack(|_| async move {
        let server = Server::start(&[]);
        let ids = seed(&server.url(), SEEDED).await;
        assert_eq!(dbsize(&server).await, SEEDED as i64);
        let layer = layer_on(&server, MemoryStore::new());
        let app = App::serve(layer.clone()).await;

        // Requests during the drain: the first 100 seeded users, each once, 4 at a time; and
        // 50 others log out with their old cookie meanwhile.
        let (during, after) = ids.split_at(100);
        let (logging_out, after) = after.split_at(50);
        let logouts = {
            let (app, ids) = (app.clone(), logging_out.to_vec());
            tokio::spawn(async move {
                for id in ids {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    let r = app
                        .req(hyper::Method::DELETE, "/session", &format!("id={id}"), None)
                        .await;
                    assert_eq!(r.status, 204, "a logout during the drain failed");
                }
            })
        };
        let requests = {
            let (app, during) = (app.clone(), during.to_vec());
            tokio::spawn(async move {
                let mut took = Vec::new();
                for chunk in during.chunks(4) {
                    let calls = chunk.iter().map(|id| {
                        let (app, cookie) = (app.clone(), format!("id={id}"));
                        async move {
                            let t = Instant::now();
                            let (r, data) = read(&app, &cookie).await;
                            (r.status, seeded_user(&data).is_some(), t.elapsed())
                        }
                    });
                    for (status, found, t) in futures_util::future::join_all(calls).await {
                        assert_eq!(status, 200, "a request during the drain failed");
                        assert!(found, "a request during the drain lost its session");
                        took.push(t);
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                took
            })
        };
        let started = Instant::now();
        let mut batches = 0;
        let report = layer
            .drain()
            .unwrap()
            .batch(1000)
            .run(|r| {
                batches += 1;
                if batches % 20 == 0 {
                    println!("drain: {r:?}");
                }
            })
            .await
            .unwrap();
        let took = started.elapsed();
        logouts.await.unwrap();
        let mut latencies = requests.await.unwrap();
        latencies.sort();
        let p99 = latencies[latencies.len() * 99 / 100 - 1];
        println!(
            "drained {SEEDED} in {took:?}: {report:?}; requests during it: p50 {:?}, p99 {p99:?}",
            latencies[latencies.len() / 2]
        );
        assert_eq!((report.failed, report.refused), (0, 0), "{report:?}");
        // Every old session is accounted for: the drain's counts, and the sessions the 100
        // requests moved before the drain came to them (which it never saw); none is left.
        let seen = report.moved + report.moving + report.gone;
        assert!(
            (SEEDED - 150..=SEEDED).contains(&seen),
            "the drain saw {seen} of {SEEDED}: {report:?}"
        );
        assert_eq!(dbsize(&server).await, 0, "old sessions left");

        // No logout is undone, whether it came before, during or after the drain reached it.
        for id in logging_out {
            let (r, data) = read(&app, &format!("id={id}")).await;
            assert_eq!(
                (r.is_new(), data),
                (Some(true), json!({})),
                "a logout was undone"
            );
        }

        // Again: nothing left to move.
        let again = layer.drain().unwrap().run(|_| {}).await.unwrap();
        let mut nothing = DrainReport::default();
        nothing.batches = again.batches;
        assert_eq!(again, nothing, "a second drain found work");

        // The drained sessions' first requests give them ids of ours; a logout with the old
        // cookie ends one.
        // A drained user's first request answered with a 5xx leaves everything as it was.
        let r = app
            .req(
                hyper::Method::GET,
                "/explode",
                &format!("id={}", after[0]),
                None,
            )
            .await;
        assert_eq!(r.status, 500);
        assert!(r.set_cookies.is_empty(), "{:?}", r.set_cookies);
        for id in &after[..25] {
            let (r, data) = read(&app, &format!("id={id}")).await;
            assert!(seeded_user(&data).is_some(), "{}", r.body);
            assert_eq!(data.as_object().map(|o| o.len()), Some(2), "{data}");
            let ours = r.pairs().join("; ");
            let (r, again) = read(&app, &ours).await;
            assert_eq!((r.is_new(), &again), (Some(false), &data));
        }
        for id in &after[25..] {
            let cookie = format!("id={id}");
            let r = app
                .req(hyper::Method::DELETE, "/session", &cookie, None)
                .await;
            assert_eq!(r.status, 204);
            let (r, data) = read(&app, &cookie).await;
            assert_eq!(
                (r.is_new(), data),
                (Some(true), json!({})),
                "a logout was undone"
            );
        }
    });
}

/// After `clear_after`, the drain deletes the old sessions without moving them.
#[test]
fn after_clear_after_the_drain_only_clears() {
    attack(|_| async move {
        let server = Server::start(&[]);
        let ids = seed(&server.url(), 1000).await;
        let new = MemoryStore::new();
        let layer = layer_on(&server, new.clone());
        let report = layer
            .drain()
            .unwrap()
            .clear_after(SystemTime::now())
            .run(|_| {})
            .await
            .unwrap();
        assert_eq!((report.cleared, report.moved), (1000, 0), "{report:?}");
        assert_eq!(dbsize(&server).await, 0);
        assert!(
            new.is_empty(),
            "the drain moved what it should have cleared"
        );
        let app = App::serve(layer).await;
        let (r, data) = read(&app, &format!("id={}", ids[0])).await;
        assert_eq!((r.is_new(), data), (Some(true), json!({})));
    });
}

/// A drain cut short after it wrote (the old Redis holding writes for 2 s: its deletes time
/// out) counts the sessions as failed; the next run finishes them, the old store ends empty,
/// and every one of the 200 sessions moves on its first request.
#[test]
fn a_drain_cut_short_is_finished_by_the_next_run() {
    attack(|_| async move {
        let server = Server::start(&[]);
        let ids = seed(&server.url(), 200).await;
        let config = Config::builder().key(KEY1.to_vec()).build().unwrap();
        let source = TowerSessions::builder().redis(&server.url()).unwrap();
        let layer = SessionLayer::store(config, MemoryStore::new())
            .migrate_from_source(source)
            .store_timeout(Duration::from_millis(300))
            .build()
            .unwrap();
        server.cmd(&["CLIENT", "PAUSE", "2000", "WRITE"]).await;
        let first = layer.drain().unwrap().run(|_| {}).await.unwrap();
        assert!(first.failed > 0, "{first:?}");
        assert_eq!(first.moved + first.failed, 200, "{first:?}");
        tokio::time::sleep(Duration::from_millis(2000)).await;
        // (A delete the pause held ran once it ended: those are done already.)
        let second = layer.drain().unwrap().run(|_| {}).await.unwrap();
        assert!(
            second.moved <= first.failed && second.failed == 0,
            "{second:?}"
        );
        assert_eq!(dbsize(&server).await, 0, "old sessions left");
        // Nothing lost: every session moves on its first request.
        let app = App::serve(layer).await;
        for id in &ids {
            let (r, data) = read(&app, &format!("id={id}")).await;
            assert!(seeded_user(&data).is_some(), "{id}: {}", r.body);
        }
    });
}
