//! The view counter under axum: the session layer is a tower layer, the handle an extension.
//!
//! `cargo run -p axum-counter`, then open http://127.0.0.1:3000/.

use axum::http::StatusCode;
use axum::{Extension, Router, routing::get};
use session_core::Config;
use session_hyper::{Session, SessionLayer};
use session_store_memory::MemoryStore;

async fn views(Extension(session): Extension<Session>) -> Result<String, StatusCode> {
    let n: u64 = session
        .get("views")
        .await
        .map_err(|_| StatusCode::SERVICE_UNAVAILABLE)?
        .unwrap_or(0)
        + 1;
    session
        .insert("views", n)
        .await
        .map_err(|_| StatusCode::SERVICE_UNAVAILABLE)?;
    Ok(format!("{n} views"))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    example_support::init_tracing();
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
