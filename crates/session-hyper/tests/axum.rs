//! The axum integration over real TCP: the session as a handler argument, `Error` as a
//! handler's error, and what a route outside the layer answers.
#![cfg(feature = "axum")]
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use axum::{Router, routing};
use session_hyper::{Config, Error, MemoryStore, Session, SessionLayer};
use session_testkit::capture::KEY1;
use session_testkit::client::{browser, get, raw};
use session_testkit::stores::{FAIL, Probe};

async fn views(session: Session) -> Result<String, Error> {
    let n: u64 = session.get("views").await?.unwrap_or(0) + 1;
    session.insert("views", n).await?;
    Ok(format!("{n} views"))
}

/// A value too big for a cookie, committed explicitly: the handler's `?` turns the error into
/// the response.
async fn too_big(session: Session) -> Result<String, Error> {
    session
        .insert("big", "a-private-value ".repeat(400))
        .await?;
    session.commit().await?;
    Ok("unreachable".into())
}

/// Reads a value of the wrong type.
async fn typed(session: Session) -> Result<String, Error> {
    session.insert("views", "a-private-value").await?;
    let n: Option<u64> = session.get("views").await?;
    Ok(format!("{n:?}"))
}

async fn serve(app: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

fn config() -> Config {
    Config::builder().key(KEY1.to_vec()).build().unwrap()
}

#[tokio::test]
async fn session_is_a_handler_argument_and_errors_are_responses() {
    let layer = SessionLayer::store(config(), MemoryStore::new())
        .build()
        .unwrap();
    let covered = Router::new()
        .route("/", routing::get(views))
        .route("/typed", routing::get(typed))
        .layer(layer);
    let app = Router::new()
        .merge(covered)
        .route("/outside", routing::get(views));
    let url = serve(app).await;

    let b = browser();
    for n in 1..=3 {
        assert_eq!(get(&b, &format!("{url}/")).await.body, format!("{n} views"));
    }

    // A route the layer doesn't cover: a 500 that names the missing layer.
    let r = get(&raw(), &format!("{url}/outside")).await;
    assert_eq!(r.status, 500);
    assert!(r.body.contains("SessionLayer"), "{}", r.body);

    // A type mismatch: 500, naming the key and the type, never the value.
    let r = get(&raw(), &format!("{url}/typed")).await;
    assert_eq!(r.status, 500);
    assert!(
        r.body.contains("views") && r.body.contains("u64"),
        "{}",
        r.body
    );
    assert!(!r.body.contains("a-private-value"));
    assert!(r.headers.get("retry-after").is_none());
}

#[tokio::test]
async fn a_failing_store_is_a_503_with_retry_after() {
    let probe = Probe::default();
    let layer = SessionLayer::store(config(), probe.clone())
        .build()
        .unwrap();
    let url = serve(Router::new().route("/", routing::get(views)).layer(layer)).await;
    // A returning visitor, then the store goes down: the layer answers for the handler.
    let b = browser();
    assert_eq!(get(&b, &format!("{url}/")).await.body, "1 views");
    probe.set_mode(FAIL);
    let r = get(&b, &format!("{url}/")).await;
    assert_eq!(r.status, 503);
    assert!(r.headers.get("retry-after").is_some());
    assert!(r.set_cookies.is_empty());
}

#[tokio::test]
async fn an_explicit_commit_error_is_the_handlers_response() {
    let layer = SessionLayer::cookie(config()).build().unwrap();
    let url = serve(Router::new().route("/", routing::get(too_big)).layer(layer)).await;
    let r = get(&raw(), &format!("{url}/")).await;
    assert_eq!(r.status, 500);
    assert!(r.body.contains("4096"), "{}", r.body);
    assert!(!r.body.contains("a-private-value"));
}
