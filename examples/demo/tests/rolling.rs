//! `--rolling` over real TCP with requests back to back: every response to a request that
//! reads an existing session sends its cookie again with a fresh expiry, as the options
//! reference says (koa's `rolling`), also within the millisecond of the write before it. An
//! outside check found 40-50 % of such responses without a cookie: the expiry had not moved
//! yet, and the commit skipped the write.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

const KEY: &str = "demo-key-one-at-least-32-bytes-long";

/// Requests per mode: a new session, then two reads of it, back to back.
const ROUNDS: usize = 200;

/// The `Set-Cookie` headers of a response, as text.
fn set_cookies(r: &reqwest::Response) -> Vec<String> {
    r.headers()
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect()
}

/// Per round: `GET /` (creates the session), then `GET /session` twice with its cookie.
/// Returns how many of the reads came back without the session cookie.
async fn reads_without_a_cookie(args: &[&str], cookie: &str) -> usize {
    let mut all = vec!["--keys", KEY];
    all.extend_from_slice(args);
    let d = session_testkit::process::start(env!("CARGO_BIN_EXE_demo"), &all)
        .await
        .unwrap();
    let mut missing = 0;
    for _ in 0..ROUNDS {
        let c = reqwest::Client::builder()
            .cookie_store(true)
            .build()
            .unwrap();
        let created = c.get(format!("{}/", d.url)).send().await.unwrap();
        assert_eq!(created.status(), 200);
        assert!(!set_cookies(&created).is_empty(), "{args:?}: no session");
        for _ in 0..2 {
            let r = c.get(format!("{}/session", d.url)).send().await.unwrap();
            assert_eq!(r.status(), 200);
            let sent = set_cookies(&r);
            let ours = sent.iter().find(|c| c.starts_with(&format!("{cookie}=")));
            match ours {
                Some(c) => assert!(c.contains("Max-Age="), "{args:?}: {c}"),
                None => missing += 1,
            }
            assert_eq!(r.text().await.unwrap(), r#"{"views":1}"#);
        }
    }
    missing
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rolling_sends_the_cookie_on_every_response_back_to_back() {
    for (args, cookie) in [
        (&["--store", "memory", "--rolling"][..], "koa.sess"),
        (&["--store", "cookie", "--rolling"], "koa.sess"),
        (&["--store", "cookie", "--encrypt", "--rolling"], "koa.sess"),
    ] {
        let missing = reads_without_a_cookie(args, cookie).await;
        assert_eq!(
            missing,
            0,
            "{args:?}: {missing} of {} reads sent no cookie",
            2 * ROUNDS
        );
    }
}

/// The control: without `rolling` a read of an unchanged session sends no cookie.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_rolling_a_read_sends_no_cookie() {
    let missing = reads_without_a_cookie(&["--store", "memory"], "koa.sess").await;
    assert_eq!(missing, 2 * ROUNDS);
}
