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

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::Service;
use hyper::{Request, Response};
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
/// serves `service` over HTTP/1.1 until the process ends (the test kit's accept loop, which the
/// tests and the benchmark serve with too).
pub async fn serve<S>(port: u16, service: S) -> std::io::Result<()>
where
    S: Service<Request<Incoming>, Response = Response<Full<Bytes>>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let listener = TcpListener::bind(("127.0.0.1", port)).await?;
    println!("listening on http://{}", listener.local_addr()?);
    session_testkit::serve(listener, service).await;
    Ok(())
}
