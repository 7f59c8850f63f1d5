//! Runs the demo binary on a free loopback port and drives every route with a real client.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use tokio::process::Command;

mod support;
use support::{KEYS, json, start};

fn client() -> reqwest::Client {
    session_testkit::client::browser()
}

/// GET `url`, the body as text.
async fn text(c: &reqwest::Client, url: String) -> String {
    session_testkit::client::text(c, &url).await
}

async fn every_route(args: &[&str]) {
    let d = start(args).await;
    let c = client();
    let url = &d.url;
    for n in 1..=2 {
        assert_eq!(text(&c, format!("{url}/")).await, format!("{n} views"));
    }
    let r = c.get(format!("{url}/session")).send().await.unwrap();
    assert_eq!(r.headers()["x-session-new"], "false");
    assert_eq!(r.text().await.unwrap(), r#"{"views":2}"#);
    let r = c
        .put(format!("{url}/session"))
        .body(r#"{"user":"ada","views":null,"n":[1,2]}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(
        json(&text(&c, format!("{url}/session")).await),
        json(r#"{"user":"ada","n":[1,2]}"#)
    );
    // Bad JSON: 400 with a clear message, session untouched.
    for bad in ["{", "[1]", r#"{"_expire":1}"#] {
        let r = c
            .put(format!("{url}/session"))
            .body(bad)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{bad}");
        assert!(!r.text().await.unwrap().is_empty());
    }
    assert_eq!(
        json(&text(&c, format!("{url}/session")).await),
        json(r#"{"user":"ada","n":[1,2]}"#)
    );
    let r = c
        .post(format!("{url}/session/regenerate"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(
        json(&text(&c, format!("{url}/session")).await),
        json(r#"{"user":"ada","n":[1,2]}"#)
    );
    let r = c.delete(format!("{url}/session")).send().await.unwrap();
    assert_eq!(r.status(), 204);
    let r = c.get(format!("{url}/session")).send().await.unwrap();
    assert_eq!(r.headers()["x-session-new"], "true");
    assert_eq!(r.text().await.unwrap(), "{}");
    drop(d);
}

#[tokio::test]
async fn memory_store() {
    every_route(&["--store", "memory"]).await;
}

#[tokio::test]
async fn cookie_mode_with_options() {
    every_route(&[
        "--store",
        "cookie",
        "--algorithm",
        "sha512",
        "--cookie-name",
        "demo",
        "--max-age",
        "session",
        "--rolling",
    ])
    .await;
}

#[tokio::test]
async fn encrypted_cookie_mode() {
    every_route(&["--store", "cookie", "--encrypt", "--cookie-name", "sid"]).await;
    // One cookie, no `.sig`, and nothing of the session readable in it.
    let d = start(&["--store", "cookie", "--encrypt", "--cookie-name", "sid"]).await;
    let c = client();
    let r = c
        .put(format!("{}/session", d.url))
        .body(r#"{"user":"ada-lovelace"}"#)
        .send()
        .await
        .unwrap();
    let cookies: Vec<String> = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    assert_eq!(cookies.len(), 1, "{cookies:?}");
    assert!(cookies[0].starts_with("sid=v1."), "{cookies:?}");
    assert!(!cookies[0].contains("ada") && !cookies[0].contains("user"));
    assert_eq!(
        text(&c, format!("{}/session", d.url)).await,
        r#"{"user":"ada-lovelace"}"#
    );
}

#[tokio::test]
async fn koa_compat_with_prefix_and_renew() {
    every_route(&[
        "--store",
        "memory",
        "--koa-compat",
        "--prefix",
        "app1:",
        "--renew",
        "--trust-proxy",
        "--max-age",
        "60000",
    ])
    .await;
}

#[tokio::test]
async fn cookie_name_and_attributes_show_on_the_wire() {
    let d = start(&[
        "--store",
        "memory",
        "--cookie-name",
        "sid",
        "--max-age",
        "5000",
    ])
    .await;
    let r = reqwest::get(format!("{}/", d.url)).await.unwrap();
    let cookies: Vec<String> = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    assert_eq!(cookies.len(), 2);
    assert!(cookies[0].starts_with("sid=") && cookies[0].contains("Max-Age=5"));
    assert!(cookies[1].starts_with("sid.sig="));
}

#[tokio::test]
async fn bad_options_are_refused_with_a_message() {
    let long_prefix = "p".repeat(220);
    for args in [
        &["--store", "nope"][..],
        &["--max-age", "0"],
        &["--algorithm", "md5"],
        &["--bogus"],
        // An id prefix a cookie can't carry, or one that makes ids too long to be read back,
        // would fail every request: it fails at startup instead.
        &["--prefix", "a;b"],
        &["--prefix", "a b"],
        &["--prefix", &long_prefix],
        // Encryption is a cookie-mode setting, and not koa's.
        &["--store", "memory", "--encrypt"],
        &["--store", "cookie", "--encrypt", "--koa-compat"],
        // Cookie mode keeps no store to move sessions into.
        &["--store", "cookie", "--migrate-from", "memory"],
        &["--store", "memory", "--migrate-from", "nope"],
        // A session limit needs an owner index; a policy needs a limit.
        &["--store", "cookie", "--max-sessions", "3"],
        &["--store", "memory", "--koa-compat", "--max-sessions", "3"],
        &["--max-sessions", "0"],
        &["--max-sessions", "2", "--over-limit", "sideways"],
        &["--over-limit", "refuse"],
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_demo"))
            .args(["--port", "0"])
            .args(args)
            .output()
            .await
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(!out.stderr.is_empty());
    }
}

/// `--max-sessions N [--over-limit refuse|end-oldest]`: past the limit, `PUT /session/owner`
/// answers 409 and leaves the session as it was, or 204 and ends the owner's session bound
/// earliest, whose next `GET /session` is a new, empty session that says why.
#[tokio::test]
async fn the_session_limit_from_the_command_line() {
    for policy in ["refuse", "end-oldest"] {
        let d = start(&[
            "--store",
            "memory",
            "--max-sessions",
            "2",
            "--over-limit",
            policy,
        ])
        .await;
        let url = &d.url;
        let owner = format!("{url}/session/owner");
        let bind = |c: &reqwest::Client| c.put(&owner).body(r#"{"owner":"ada"}"#).send();
        let browsers: Vec<_> = (0..3).map(|_| client()).collect();
        for b in &browsers {
            assert_eq!(text(b, format!("{url}/")).await, "1 views");
        }
        for b in &browsers[..2] {
            assert_eq!(bind(b).await.unwrap().status(), 204);
            // Binds ms apart: the limit orders by bind ms (ties by handle).
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        let third = bind(&browsers[2]).await.unwrap().status();
        let session = |b: &reqwest::Client| b.get(format!("{url}/session")).send();
        let listed = json(&text(&client(), format!("{url}/owners/ada/sessions")).await);
        assert_eq!(listed.as_array().unwrap().len(), 2, "{policy}");
        if policy == "refuse" {
            assert_eq!(third, 409);
            let r = session(&browsers[2]).await.unwrap();
            assert_eq!(r.headers()["x-session-new"], "false");
            assert_eq!(r.text().await.unwrap(), r#"{"views":1}"#);
        } else {
            assert_eq!(third, 204);
            let r = session(&browsers[0]).await.unwrap();
            assert_eq!(r.headers()["x-session-new"], "true");
            assert_eq!(r.headers()["x-session-ended"], "newer-login");
            assert_eq!(r.text().await.unwrap(), "{}");
            for b in &browsers[1..] {
                let r = session(b).await.unwrap();
                assert_eq!(r.text().await.unwrap(), r#"{"views":1}"#);
            }
        }
    }
}

#[tokio::test]
async fn guest_mode_and_error_answers() {
    let d = start(&["--store", "memory", "--guest"]).await;
    let url = &d.url;
    // A new visitor gets a session cookie before anything is stored.
    let r = reqwest::get(format!("{url}/session")).await.unwrap();
    assert_eq!(r.headers().get_all("set-cookie").iter().count(), 2);
    assert_eq!(r.headers()["x-session-new"], "true");
    let c = client();
    // A value of the wrong type: a 500 naming the key, never the value; not a 503.
    let r = c
        .put(format!("{url}/session"))
        .body(r#"{"views":"a-private-value"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let r = c.get(format!("{url}/")).send().await.unwrap();
    assert_eq!(r.status(), 500);
    assert!(r.headers().get("retry-after").is_none());
    let body = r.text().await.unwrap();
    assert!(
        body.contains("views") && !body.contains("a-private-value"),
        "{body}"
    );
    // A session over the store's record limit: 413, and the session is as it was.
    let big = format!(r#"{{"big":"{}"}}"#, "x".repeat(63 * 1024));
    for _ in 0..2 {
        let r = c
            .put(format!("{url}/session"))
            .body(big.clone())
            .send()
            .await
            .unwrap();
        assert!(matches!(r.status().as_u16(), 204 | 413 | 400));
    }
    let r = c
        .put(format!("{url}/session"))
        .body(format!(r#"{{"more":"{}"}}"#, "y".repeat(10 * 1024)))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    assert!(r.headers().get("set-cookie").is_none());
    let data = c.get(format!("{url}/session")).send().await.unwrap();
    let data: serde_json::Value = serde_json::from_str(&data.text().await.unwrap()).unwrap();
    assert!(data.get("big").is_some() && data.get("more").is_none());
}

/// The startup line and the library's logs never show the Redis password.
#[tokio::test]
async fn the_redis_password_is_never_printed() {
    use tokio::io::AsyncReadExt;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_demo"))
        .args(["--port", "0", "--keys", KEYS])
        .args([
            "--store",
            &format!("redis://user:hunter2secret@127.0.0.1:{port}/0"),
        ])
        .env("RUST_LOG", "trace")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut out = child.stdout.take().unwrap();
    let mut line = vec![0u8; 256];
    let n = tokio::time::timeout(std::time::Duration::from_secs(10), out.read(&mut line))
        .await
        .unwrap()
        .unwrap();
    let line = String::from_utf8_lossy(&line[..n]).into_owned();
    let url = line.split_whitespace().nth(2).unwrap().trim().to_owned();
    // A request that needs Redis (nothing listens there): a fast 503 and some log lines.
    let r = client()
        .put(format!("{url}/session"))
        .body(r#"{"a":1}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    // The log has its own writer thread: read up to the request's last event (the failure that
    // answered 503) before stopping the demo, so everything the request logged is checked.
    let mut err = String::new();
    let mut stderr = child.stderr.take().unwrap();
    let mut chunk = vec![0u8; 4096];
    while !err.contains("session failure") {
        let n = tokio::time::timeout(std::time::Duration::from_secs(10), stderr.read(&mut chunk))
            .await
            .unwrap_or_else(|_| panic!("no failure logged: {err}"))
            .unwrap();
        assert!(n > 0, "{err}");
        err.push_str(&String::from_utf8_lossy(&chunk[..n]));
    }
    child.kill().await.unwrap();
    stderr.read_to_string(&mut err).await.unwrap();
    assert!(err.contains("store: redis://user:<redacted>@"), "{err}");
    assert!(!err.contains("hunter2secret"), "{err}");
}

#[cfg(feature = "redis-tests")]
#[tokio::test]
async fn redis_store() {
    let url = std::env::var("REDIS_URL").expect("REDIS_URL: run through `cargo xtask ci`");
    every_route(&["--store", &url]).await;
    every_route(&["--store", &url, "--koa-compat"]).await;
}

/// The owner routes' contract: three sessions of one owner and one of another; the listing's
/// fields; revoke all but the current one; revoke one (404 when unknown); revoke all.
async fn owner_routes(args: &[&str]) {
    let d = start(args).await;
    let url = &d.url;
    let bind = |c: &reqwest::Client, owner: &str| {
        c.put(format!("{url}/session/owner"))
            .body(format!(r#"{{"owner":"{owner}","device":"test"}}"#))
            .send()
    };
    let mut ada = Vec::new();
    for _ in 0..3 {
        let c = client();
        assert_eq!(text(&c, format!("{url}/")).await, "1 views");
        assert_eq!(bind(&c, "ada lovelace").await.unwrap().status(), 204);
        ada.push(c);
    }
    let bob = client();
    text(&bob, format!("{url}/")).await;
    assert_eq!(bind(&bob, "bob").await.unwrap().status(), 204);
    let bad = ada[0]
        .put(format!("{url}/session/owner"))
        .body(r#"{"owner":""}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);

    let list = |c: &reqwest::Client, owner: &str| {
        let u = format!("{url}/owners/{owner}/sessions");
        let c = c.clone();
        async move {
            let r = c.get(u).send().await.unwrap();
            assert_eq!(r.status(), 200);
            let v: serde_json::Value = serde_json::from_str(&r.text().await.unwrap()).unwrap();
            v.as_array().unwrap().clone()
        }
    };
    let l = list(&ada[0], "ada%20lovelace").await;
    assert_eq!(l.len(), 3, "{l:?}");
    for e in &l {
        for f in ["handle", "created", "last_seen", "expires"] {
            assert!(e[f].is_string() || e[f].is_u64(), "{f} in {e}");
        }
        assert!(e["current"].is_boolean());
    }
    let mine: Vec<&serde_json::Value> = l.iter().filter(|e| e["current"] == true).collect();
    assert_eq!(mine.len(), 1);

    let r = ada[0]
        .delete(format!("{url}/owners/ada%20lovelace/sessions?keep=current"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let l = list(&ada[0], "ada%20lovelace").await;
    assert_eq!(l.len(), 1);
    assert_eq!(l[0]["current"], true);
    for c in &ada[1..] {
        let r = c.get(format!("{url}/session")).send().await.unwrap();
        assert_eq!(r.headers()["x-session-new"], "true", "revoked");
    }
    assert_eq!(list(&bob, "bob").await.len(), 1);

    // One by handle, then the same handle again (404), then all.
    let other = client();
    text(&other, format!("{url}/")).await;
    bind(&other, "ada lovelace").await.unwrap();
    let l = list(&ada[0], "ada%20lovelace").await;
    let h = l.iter().find(|e| e["current"] == false).unwrap()["handle"]
        .as_str()
        .unwrap()
        .to_owned();
    let one = format!("{url}/owners/ada%20lovelace/sessions/{h}");
    assert_eq!(ada[0].delete(&one).send().await.unwrap().status(), 204);
    assert_eq!(ada[0].delete(&one).send().await.unwrap().status(), 404);
    let r = ada[0]
        .delete(format!("{url}/owners/ada%20lovelace/sessions"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert!(list(&bob, "ada%20lovelace").await.is_empty());
    let r = ada[0].get(format!("{url}/session")).send().await.unwrap();
    assert_eq!(r.headers()["x-session-new"], "true");
    let r = bob.get(format!("{url}/session")).send().await.unwrap();
    assert_eq!(
        r.headers()["x-session-new"],
        "false",
        "bob's session is untouched"
    );
    drop(d);
}

#[tokio::test]
async fn owner_routes_on_the_memory_store() {
    owner_routes(&["--store", "memory"]).await;
}

#[tokio::test]
async fn owner_routes_refuse_cookie_mode() {
    let d = start(&["--store", "cookie"]).await;
    let c = client();
    text(&c, format!("{}/", d.url)).await;
    let r = c
        .put(format!("{}/session/owner", d.url))
        .body(r#"{"owner":"ada"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 500);
    assert!(r.text().await.unwrap().contains("owner index"));
}

#[cfg(feature = "postgres-tests")]
#[tokio::test]
async fn postgres_store() {
    let url = std::env::var("DATABASE_URL").expect("DATABASE_URL: run through `cargo xtask ci`");
    every_route(&["--store", &url]).await;
    owner_routes(&["--store", &url]).await;
}

#[cfg(feature = "redis-tests")]
#[tokio::test]
async fn owner_routes_on_redis() {
    let url = std::env::var("REDIS_URL").expect("REDIS_URL: run through `cargo xtask ci`");
    owner_routes(&["--store", &url]).await;
}

/// The `Cookie` header of a validly signed session id that has no record: every request that
/// sends it logs `session:missed` (at `info`).
fn unknown_session_cookie() -> String {
    use session_core::Algorithm;
    use session_core::driver::Secret;
    let Some(newest) = KEYS.split(',').next() else {
        unreachable!()
    };
    let grip = session_cookie::Keygrip::new(&[Secret::new(newest)], Algorithm::Sha256).unwrap();
    // 32 zero bytes: a well-formed id the demo never issued.
    let id = "A".repeat(43);
    let sig = grip.sign(format!("koa.sess={id}").as_bytes());
    format!("koa.sess={id}; koa.sess.sig={}", sig.as_str())
}

/// A log nobody reads never stops the server. The demo runs with `RUST_LOG=info` and its
/// stderr a pipe that stays full (held open, never read, as by a supervisor that buffers or a
/// stuck journal); 5,000 requests that each log `session:missed`, 8 at a time, must all answer
/// 200, each within a generous bound so that a hang fails the test instead of stalling it.
/// Then, with stderr read at last, every event is either in the log or counted in a
/// "N log lines dropped" line.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_nobody_reads_never_stops_the_server() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::time::Duration;
    use tokio::io::{AsyncBufReadExt, BufReader};

    const REQUESTS: usize = 5_000;
    const AT_ONCE: usize = 8;
    // Only a hang comes near this.
    const BOUND: Duration = Duration::from_secs(20);
    let mut child = Command::new(env!("CARGO_BIN_EXE_demo"))
        .args(["--port", "0", "--keys", KEYS, "--store", "memory"])
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    // Held open and not read until every request has answered.
    let stderr = child.stderr.take().unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap()).lines();
    let line = tokio::time::timeout(Duration::from_secs(10), out.next_line())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let url = format!("{}/session", line.split_whitespace().nth(2).unwrap());
    let cookie = unknown_session_cookie();
    let client = reqwest::Client::new();
    let next = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..AT_ONCE {
        let (client, url, cookie) = (client.clone(), url.clone(), cookie.clone());
        let (next, stop) = (next.clone(), stop.clone());
        tasks.spawn(async move {
            let (mut answered, mut failed) = (0usize, Vec::new());
            while !stop.load(Ordering::Relaxed) && next.fetch_add(1, Ordering::Relaxed) < REQUESTS {
                let call = async {
                    let r = client.get(&url).header("cookie", &cookie).send().await?;
                    let status = r.status();
                    r.text().await.map(|body| (status, body))
                };
                match tokio::time::timeout(BOUND, call).await {
                    Ok(Ok((status, body))) if status == 200 && body == "{}" => answered += 1,
                    other => {
                        // One failure is enough: the others stop instead of waiting out theirs.
                        stop.store(true, Ordering::Relaxed);
                        failed.push(match other {
                            Err(_) => "no answer in 20 s".to_owned(),
                            Ok(r) => format!("{r:?}"),
                        });
                    }
                }
            }
            (answered, failed)
        });
    }
    let (mut answered, mut failed) = (0, Vec::new());
    for (a, f) in tasks.join_all().await {
        answered += a;
        failed.extend(f);
    }
    eprintln!("log nobody reads: {answered} of {REQUESTS} answered, failures {failed:?}");
    assert!(failed.is_empty(), "{answered} answered, then: {failed:?}");
    assert_eq!(answered, REQUESTS);

    // Read the log at last: each event was written, or counted in a report.
    let mut err = BufReader::new(stderr).lines();
    let (mut written, mut dropped) = (0usize, 0usize);
    while written + dropped < REQUESTS {
        let line = tokio::time::timeout(BOUND, err.next_line())
            .await
            .unwrap_or_else(|_| panic!("log stalled at {written} written, {dropped} dropped"))
            .unwrap()
            .unwrap();
        if line.contains("session:missed") {
            written += 1;
        } else if line.contains("log lines dropped") {
            let n = line.split_whitespace().next().unwrap();
            dropped += n.parse::<usize>().unwrap();
        }
    }
    eprintln!("log nobody reads: {written} events written, {dropped} dropped and reported");
    assert_eq!(written + dropped, REQUESTS);
    // The queue filled: the test went through the dropping path, not only a deep buffer.
    assert!(dropped > 0);
}
