//! The view counter under axum: one session dependency (`session-hyper` with `axum`), the
//! session as a handler argument, errors returned with `?`.
//!
//! `cargo run -p axum-counter`, then open http://127.0.0.1:3000/.

use axum::{Router, routing::get};
use session_hyper::{Config, Error, MemoryStore, Session, SessionLayer};

async fn views(session: Session) -> Result<String, Error> {
    let n: u64 = session.get("views").await?.unwrap_or(0) + 1;
    session.insert("views", n).await?;
    Ok(format!("{n} views"))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // First, so that it lives as long as the process (the log writer's thread).
    let _log = example_support::init_tracing();
    let config = Config::builder()
        .keys(example_support::keys_from_env()?)
        .build()?;
    let layer = SessionLayer::store(config, MemoryStore::new()).build()?;
    let app = Router::new().route("/", get(views)).layer(layer);
    let port = example_support::port_arg(3000)?;
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    println!("listening on http://{}", listener.local_addr()?);
    axum::serve(listener, app).await?;
    Ok(())
}
