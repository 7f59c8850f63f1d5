//! What the example apps share, so each example shows only its session code.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! // The library's events on stderr, filtered by RUST_LOG, through a queue that never blocks:
//! // keep the guard for the life of the process.
//! let _log = example_support::init_tracing();
//! let keys = example_support::keys_from_env()?; // SESSION_KEYS, or a random key with a warning
//! let port = example_support::port_arg(3000)?; // --port N (0 picks a free port)
//! # let _ = (keys, port); Ok(()) }
//! ```

use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::Service;
use hyper::{Request, Response};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::TcpListener;

mod logging;
pub use logging::{LOG_QUEUE_LINES, LogGuard, init_tracing, lossy_writer};

/// Signing keys from `SESSION_KEYS` (comma-separated, newest first, 32 bytes or more each);
/// without it, one random key for this run, with a warning (sessions end when the server stops).
pub fn keys_from_env() -> Result<Vec<Vec<u8>>, getrandom::Error> {
    Ok(match std::env::var("SESSION_KEYS") {
        Ok(v) if !v.is_empty() => v.split(',').map(|k| k.as_bytes().to_vec()).collect(),
        _ => {
            eprintln!(
                "warning: SESSION_KEYS not set; using a random key, so sessions end when the server stops"
            );
            let mut k = [0u8; 32];
            getrandom::fill(&mut k)?;
            vec![k.to_vec()]
        }
    })
}

/// The value that follows `flag` on the command line (`--store redis://...`), if any.
pub fn arg(flag: &str) -> Option<String> {
    std::env::args().skip_while(|a| a != flag).nth(1)
}

/// The value of `--port`, or `default`.
pub fn port_arg(default: u16) -> Result<u16, std::num::ParseIntError> {
    arg("--port")
        .map(|p| p.parse())
        .transpose()
        .map(|p| p.unwrap_or(default))
}

/// Binds 127.0.0.1:`port`, prints `listening on http://ADDR` (the example tests read it), and
/// serves `service` over HTTP/1.1 until the process ends.
pub async fn serve<S>(port: u16, service: S) -> std::io::Result<()>
where
    S: Service<Request<Incoming>, Response = Response<Full<Bytes>>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let listener = TcpListener::bind(("127.0.0.1", port)).await?;
    println!("listening on http://{}", listener.local_addr()?);
    loop {
        let (stream, _) = listener.accept().await?;
        let service = service.clone();
        tokio::spawn(async move {
            let io = hyper_util::rt::TokioIo::new(stream);
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(io, service)
                .await;
        });
    }
}

/// An example binary running for a test: started with `--port 0`, killed when dropped.
pub struct Running {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    _child: tokio::process::Child,
}

/// Starts the example binary `bin` (a test's `env!("CARGO_BIN_EXE_...")`) with `--port 0` and
/// `args`, and waits for its `listening on` line. `None` if it exited instead (bad options).
pub async fn start(bin: &str, args: &[&str]) -> Option<Running> {
    start_with_env(bin, args, &[]).await
}

/// [`start`] with environment variables set for the binary (`SESSION_KEYS`, `RUST_LOG`).
pub async fn start_with_env(bin: &str, args: &[&str], env: &[(&str, &str)]) -> Option<Running> {
    let mut child = tokio::process::Command::new(bin)
        .args(["--port", "0"])
        .args(args)
        .envs(env.iter().copied())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .ok()?;
    let mut lines = BufReader::new(child.stdout.take()?).lines();
    let line = tokio::time::timeout(Duration::from_secs(10), lines.next_line())
        .await
        .ok()?
        .ok()??;
    let url = line.split_whitespace().nth(2)?.to_owned();
    Some(Running { url, _child: child })
}

/// The view-counter check the counter examples' tests share: one visitor's count goes 1, 2, 3
/// through its cookie jar, and a visitor without cookies starts at 1.
#[cfg(feature = "testing")]
pub async fn assert_counts_views(url: &str) {
    let Ok(c) = reqwest::Client::builder().cookie_store(true).build() else {
        panic!("could not build an HTTP client");
    };
    let text = |req: reqwest::RequestBuilder| async move {
        match req.send().await {
            Ok(res) => res.text().await.unwrap_or_default(),
            Err(e) => panic!("request to the example failed: {e}"),
        }
    };
    for n in 1..=3 {
        assert_eq!(text(c.get(url)).await, format!("{n} views"));
    }
    // Another visitor has their own count.
    assert_eq!(text(reqwest::Client::new().get(url)).await, "1 views");
}
