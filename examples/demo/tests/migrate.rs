//! `--migrate-from`, driven from outside: the demo on one store, then the demo on another
//! moving sessions from the first; a visitor's counter goes on.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]
#![cfg(feature = "redis-tests")]

use session_testkit::client::{browser, text};

mod support;
use support::{json, start};

/// `--migrate-from`: the site moves from one of our stores to another and nobody is logged
/// out. A visitor's counter, written by the demo on the old store, goes on under the demo on
/// the new one (a new id, the same data).
async fn migrate(old_store: &str, new_store: &str, koa: bool) {
    let flags = |store: &str| {
        let mut a = vec!["--store".to_owned(), store.to_owned()];
        a.extend(koa.then(|| "--koa-compat".to_owned()));
        a
    };
    let c = browser();
    let old_args = flags(old_store);
    let old = start(&old_args.iter().map(String::as_str).collect::<Vec<_>>()).await;
    for n in 1..=3 {
        assert_eq!(
            text(&c, &format!("{}/", old.url)).await,
            format!("{n} views")
        );
    }
    let r = c.get(format!("{}/session", old.url)).send().await.unwrap();
    let old_cookie: Vec<String> = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    assert!(old_cookie.is_empty(), "a read sets no cookie");
    drop(old);
    let mut new_args = flags(new_store);
    new_args.extend(["--migrate-from".to_owned(), old_store.to_owned()]);
    let new = start(&new_args.iter().map(String::as_str).collect::<Vec<_>>()).await;
    // The browser's cookie jar (one per host, whatever the port) still holds the old cookie.
    assert_eq!(text(&c, &format!("{}/", new.url)).await, "4 views");
    assert_eq!(text(&c, &format!("{}/", new.url)).await, "5 views");
    let r = c.get(format!("{}/session", new.url)).send().await.unwrap();
    assert_eq!(r.headers()["x-session-new"], "false");
    assert_eq!(
        json(&r.text().await.unwrap()),
        serde_json::json!({"views": 5})
    );
}

#[cfg(all(feature = "redis-tests", feature = "postgres-tests"))]
#[tokio::test]
async fn migrate_from_redis_to_postgres_and_back() {
    let redis = std::env::var("REDIS_URL").expect("REDIS_URL: run through `cargo xtask ci`");
    let pg = std::env::var("DATABASE_URL").expect("DATABASE_URL: run through `cargo xtask ci`");
    migrate(&redis, &pg, false).await;
    migrate(&pg, &redis, false).await;
}

#[cfg(feature = "redis-tests")]
#[tokio::test]
async fn migrate_from_redis_in_koas_format_to_memory() {
    let redis = std::env::var("REDIS_URL").expect("REDIS_URL: run through `cargo xtask ci`");
    migrate(&redis, "memory", true).await;
}

/// A browser that logged in on the old app `old` (`GET /login?user=ann&views=41`, the fixture
/// apps' route), which then stops serving: the browser keeps its cookie.
async fn signed_in_on(old: session_testkit::process::Running) -> reqwest::Client {
    let c = browser();
    assert_eq!(
        text(&c, &format!("{}/login?user=ann&views=41", old.url)).await,
        "in"
    );
    drop(old);
    c
}

/// `--migrate-from tower-sessions+...`: a visitor of a tower-sessions app (the real library,
/// `fixtures/tower-sessions`, its cookie signed or encrypted with `KEY`) keeps their counter
/// under the demo: 41 views there, 42 here.
#[cfg(feature = "postgres-tests")]
async fn from_tower_sessions(store: &str, url: &str, cookie_mode: &str) {
    use base64::Engine as _;
    let key = base64::engine::general_purpose::STANDARD.encode([5u8; 64]);
    let bin = std::env::var("TOWER_SESSIONS_FIXTURE")
        .expect("TOWER_SESSIONS_FIXTURE: run through `cargo xtask ci`");
    let old = session_testkit::process::start(&bin, &[store, url, cookie_mode, &key])
        .await
        .unwrap();
    let c = signed_in_on(old).await;
    let from = format!("tower-sessions+{url}");
    let new = start(&[
        "--store",
        "memory",
        "--migrate-from",
        &from,
        "--migrate-key",
        &key,
    ])
    .await;
    assert_eq!(text(&c, &format!("{}/", new.url)).await, "42 views");
    assert_eq!(text(&c, &format!("{}/", new.url)).await, "43 views");
    let r = c.get(format!("{}/session", new.url)).send().await.unwrap();
    assert_eq!(
        json(&r.text().await.unwrap()),
        serde_json::json!({"user": "ann", "views": 43})
    );
}

#[cfg(feature = "postgres-tests")]
#[tokio::test]
async fn migrate_from_tower_sessions_on_redis_and_postgres() {
    let redis = std::env::var("REDIS_URL").expect("REDIS_URL: run through `cargo xtask ci`");
    let pg = std::env::var("DATABASE_URL").expect("DATABASE_URL: run through `cargo xtask ci`");
    from_tower_sessions("--redis", &redis, "--signed").await;
    from_tower_sessions("--postgres", &pg, "--private").await;
}

/// `--migrate-from express+redis://...`: a visitor of an express app (the real express-session
/// with connect-redis, `fixtures/express`, its cookie signed under the older of two secrets)
/// keeps their counter under the demo: 41 views there, 42 here.
#[tokio::test]
async fn migrate_from_express_session() {
    let redis = std::env::var("REDIS_URL").expect("REDIS_URL: run through `cargo xtask ci`");
    let base = redis
        .rsplit_once('/')
        .map_or(redis.as_str(), |(base, _)| base);
    // A database nobody else writes: the shared server's number 11.
    let url = format!("{base}/11");
    let script =
        std::env::var("EXPRESS_FIXTURE").expect("EXPRESS_FIXTURE: run through `cargo xtask ci`");
    let old = session_testkit::process::start(&script, &["--redis", &url, "--secret", "older"])
        .await
        .unwrap();
    let c = signed_in_on(old).await;
    let from = format!("express+{url}");
    let new = start(&[
        "--store",
        "memory",
        "--migrate-from",
        &from,
        "--migrate-secret",
        "newer",
        "--migrate-secret",
        "older",
    ])
    .await;
    assert_eq!(text(&c, &format!("{}/", new.url)).await, "42 views");
    assert_eq!(text(&c, &format!("{}/", new.url)).await, "43 views");
    let r = c.get(format!("{}/session", new.url)).send().await.unwrap();
    assert_eq!(
        json(&r.text().await.unwrap()),
        serde_json::json!({"user": "ann", "views": 43})
    );
}

/// `--migrate-from actix+redis://...`: a visitor of an actix-web app (the real actix-session
/// with its Redis store, `fixtures/actix`, its cookie private under `KEY`) keeps their counter
/// under the demo: 41 views there, 42 here.
#[tokio::test]
async fn migrate_from_actix_session() {
    use base64::Engine as _;
    let redis = std::env::var("REDIS_URL").expect("REDIS_URL: run through `cargo xtask ci`");
    let base = redis
        .rsplit_once('/')
        .map_or(redis.as_str(), |(base, _)| base);
    // A database nobody else writes: the shared server's number 15.
    let url = format!("{base}/15");
    let key = base64::engine::general_purpose::STANDARD.encode([6u8; 64]);
    let bin = std::env::var("ACTIX_FIXTURE").expect("ACTIX_FIXTURE: run through `cargo xtask ci`");
    let old = session_testkit::process::start(&bin, &["--redis", &url, "--key", &key])
        .await
        .unwrap();
    let c = signed_in_on(old).await;
    let from = format!("actix+{url}");
    let new = start(&[
        "--store",
        "memory",
        "--migrate-from",
        &from,
        "--migrate-key",
        &key,
    ])
    .await;
    assert_eq!(text(&c, &format!("{}/", new.url)).await, "42 views");
    let r = c.get(format!("{}/session", new.url)).send().await.unwrap();
    assert_eq!(
        json(&r.text().await.unwrap()),
        serde_json::json!({"user": "ann", "views": 42})
    );
}

/// A tower-sessions cookie named like the demo's own is refused at start, as are the
/// tower-sessions flags without a tower-sessions source, an express source without its secret
/// or with a key, and a secret without an express source.
#[tokio::test]
async fn tower_sessions_flags_that_cant_work_are_refused() {
    for args in [
        &[
            "--migrate-from",
            "tower-sessions+redis://127.0.0.1:1",
            "--migrate-cookie",
            "koa.sess",
        ][..],
        &["--migrate-key", "AAAA"],
        &[
            "--migrate-from",
            "tower-sessions+redis://127.0.0.1:1",
            "--migrate-key",
            "not base64!",
        ],
        &[
            "--migrate-from",
            "tower-sessions+redis://127.0.0.1:1",
            "--migrate-key",
            "AAAA",
        ],
        &["--migrate-from", "express+redis://127.0.0.1:1"],
        &[
            "--migrate-from",
            "express+redis://127.0.0.1:1",
            "--migrate-secret",
            "s",
            "--migrate-key",
            "AAAA",
        ],
        &["--migrate-secret", "s"],
        &["--migrate-from", "actix+redis://127.0.0.1:1"],
        &[
            "--migrate-from",
            "actix+redis://127.0.0.1:1",
            "--migrate-key",
            "AAAA",
        ],
        &[
            "--migrate-from",
            "express+postgres://127.0.0.1:1/x",
            "--migrate-secret",
            "s",
        ],
    ] {
        let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_demo"))
            .args(["--port", "0", "--store", "memory"])
            .args(args)
            .output()
            .await
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(!out.stderr.is_empty(), "{args:?}");
    }
}

/// `--drain`: 500 sessions written by tower-sessions' own store (in a Redis database of
/// this test's own) move into the demo's PostgreSQL store off the request path; the counts are
/// printed and a second drain finds nothing. A drained session's first request gets our id and
/// goes on counting where the old app left it. After `--drain-clear-after`, old sessions are
/// deleted, not moved.
#[cfg(feature = "postgres-tests")]
#[tokio::test]
async fn drain_moves_idle_tower_sessions() {
    let redis = std::env::var("REDIS_URL").expect("REDIS_URL: run through `cargo xtask ci`");
    let pg = std::env::var("DATABASE_URL").expect("DATABASE_URL: run through `cargo xtask ci`");
    // A database nobody else drains: the shared server's number 9.
    let base = redis
        .rsplit_once('/')
        .map_or(redis.as_str(), |(base, _)| base);
    let url = format!("{base}/9");
    let bin = std::env::var("TOWER_SESSIONS_FIXTURE")
        .expect("TOWER_SESSIONS_FIXTURE: run through `cargo xtask ci`");
    let seed = |n: &'static str| {
        let (bin, url) = (bin.clone(), url.clone());
        async move {
            let out = tokio::process::Command::new(&bin)
                .args(["--redis", &url, "--seed", n])
                .output()
                .await
                .unwrap();
            let text = String::from_utf8(out.stdout).unwrap();
            text.lines().map(str::to_owned).collect::<Vec<_>>()
        }
    };
    let ids = seed("500").await;
    let from = format!("tower-sessions+{url}");
    let demo = |extra: &'static [&'static str]| {
        let (from, pg) = (from.clone(), pg.clone());
        async move {
            let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_demo"))
                .args([
                    "--keys",
                    support::KEYS,
                    "--store",
                    &pg,
                    "--migrate-from",
                    &from,
                ])
                .args(extra)
                .output()
                .await
                .unwrap();
            (out.status.code(), String::from_utf8(out.stderr).unwrap())
        }
    };
    let (code, err) = demo(&["--drain"]).await;
    assert_eq!(code, Some(0), "{err}");
    assert!(
        err.contains("drain: done: moved 500, gone 0, refused 0, moving 0, cleared 0, failed 0"),
        "{err}"
    );
    let (code, err) = demo(&["--drain"]).await;
    assert_eq!(code, Some(0), "{err}");
    assert!(err.contains("drain: done: moved 0,"), "{err}");
    // The fifth seeded session held 4 views.
    let served = start(&["--store", &pg, "--migrate-from", &from]).await;
    let cookie = format!("id={}", ids[4]);
    let r = session_testkit::client::get_with(&format!("{}/", served.url), &cookie).await;
    assert_eq!(r.body, "5 views");
    drop(served);
    seed("100").await;
    let (code, err) = demo(&["--drain", "--drain-clear-after", "0"]).await;
    assert_eq!(code, Some(0), "{err}");
    assert!(
        err.contains("moved 0, gone 0, refused 0, moving 0, cleared 100,"),
        "{err}"
    );
}

/// `--drain` between our own stores: a visitor's session written by the demo on Redis (a
/// database of this test's own) moves into PostgreSQL off the request path; a second drain
/// finds nothing; the visitor's next request, on the demo serving from PostgreSQL, goes on
/// counting under a new id.
#[cfg(feature = "postgres-tests")]
#[tokio::test]
async fn drain_moves_idle_sessions_between_our_stores() {
    let redis = std::env::var("REDIS_URL").expect("REDIS_URL: run through `cargo xtask ci`");
    let pg = std::env::var("DATABASE_URL").expect("DATABASE_URL: run through `cargo xtask ci`");
    let base = redis
        .rsplit_once('/')
        .map_or(redis.as_str(), |(base, _)| base);
    // A database nobody else writes: the shared server's number 10.
    let old_store = format!("{base}/10");
    session_testkit::redis::cmd(&old_store, &["FLUSHDB"]).await;
    let c = browser();
    let old = start(&["--store", &old_store]).await;
    for n in 1..=3 {
        assert_eq!(
            text(&c, &format!("{}/", old.url)).await,
            format!("{n} views")
        );
    }
    drop(old);
    let drain = || async {
        let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_demo"))
            .args(["--keys", support::KEYS, "--store", &pg])
            .args(["--migrate-from", &old_store, "--drain"])
            .output()
            .await
            .unwrap();
        (out.status.code(), String::from_utf8(out.stderr).unwrap())
    };
    let (code, err) = drain().await;
    assert_eq!(code, Some(0), "{err}");
    assert!(
        err.contains("drain: done: moved 1, gone 0, refused 0,"),
        "{err}"
    );
    let (code, err) = drain().await;
    assert_eq!(code, Some(0), "{err}");
    assert!(err.contains("drain: done: moved 0,"), "{err}");
    let new = start(&["--store", &pg, "--migrate-from", &old_store]).await;
    assert_eq!(text(&c, &format!("{}/", new.url)).await, "4 views");
    let r = c.get(format!("{}/session", new.url)).send().await.unwrap();
    assert_eq!(r.headers()["x-session-new"], "false");
}
