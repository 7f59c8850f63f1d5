//! koa-session's README example, the view counter, on hyper with the embedded memory store.
//!
//! `cargo run -p counter` then open http://127.0.0.1:3000/ and reload.
//! Options: `--port N` (0 picks a free port); keys from `SESSION_KEYS` (comma-separated, newest
//! first, 32+ bytes each), else a random key for this run.

use std::convert::Infallible;

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response, body::Incoming};
use session_core::Config;
use session_hyper::{Session, SessionLayer};
use session_store_memory::MemoryStore;

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

fn keys() -> Result<Vec<Vec<u8>>, getrandom::Error> {
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

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let port: u16 = std::env::args()
        .skip_while(|a| a != "--port")
        .nth(1)
        .map(|p| p.parse())
        .transpose()?
        .unwrap_or(3000);
    let config = Config::builder().keys(keys()?).build()?;
    let store = MemoryStore::new();
    let _sweeper = store.start_sweeper(std::time::Duration::from_secs(60));
    let layer = SessionLayer::store(config, store).build()?;
    let service = layer.wrap(hyper::service::service_fn(views));

    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
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
