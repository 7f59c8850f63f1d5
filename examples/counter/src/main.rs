//! koa-session's README example, the view counter, on hyper with the embedded memory store.
//!
//! `cargo run -p counter` then open http://127.0.0.1:3000/ and reload.
//! Options: `--port N` (0 picks a free port); keys from `SESSION_KEYS` (comma-separated, newest
//! first, 32+ bytes each), else a random key for this run.

use std::convert::Infallible;

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response, body::Incoming};
use session_hyper::{Config, MemoryStore, Session, SessionLayer};

async fn views(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    if req.uri().path() == "/favicon.ico" {
        return Ok(Response::new(Full::default()));
    }
    let Ok(session) = Session::from_request(&req) else {
        // Only reachable if the service is mounted without the session layer.
        return Ok(Response::new(Full::from("session layer missing")));
    };
    let body = async {
        let n: u64 = session.get("views").await?.unwrap_or(0) + 1;
        session.insert("views", n).await?;
        Ok::<_, session_hyper::Error>(format!("{n} views"))
    }
    .await;
    // A store failure has already been turned into a 503 by the layer; the body is moot then.
    Ok(Response::new(Full::from(body.unwrap_or_default())))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // First, so that it lives as long as the process (the log writer's thread).
    let _log = example_support::init_tracing();
    let config = Config::builder()
        .keys(example_support::keys_from_env()?)
        .build()?;
    let store = MemoryStore::new();
    let _sweeper = store.start_sweeper(std::time::Duration::from_secs(60));
    let layer = SessionLayer::store(config, store).build()?;
    let service = layer.wrap(hyper::service::service_fn(views));
    example_support::serve(example_support::port_arg(3000)?, service).await?;
    Ok(())
}
