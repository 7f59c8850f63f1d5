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
    let port: u16 = std::env::args()
        .skip_while(|a| a != "--port")
        .nth(1)
        .map(|p| p.parse())
        .transpose()?
        .unwrap_or(3000);
    // Newest first, comma-separated, as the README says.
    let keys: Vec<Vec<u8>> = match std::env::var("SESSION_KEYS") {
        Ok(k) if !k.is_empty() => k.split(',').map(|k| k.as_bytes().to_vec()).collect(),
        _ => {
            eprintln!("warning: SESSION_KEYS not set; using a random key for this run");
            let mut k = [0u8; 32];
            getrandom::fill(&mut k)?;
            vec![k.to_vec()]
        }
    };
    let config = Config::builder().keys(keys).build()?;
    let layer = SessionLayer::store(config, MemoryStore::new()).build()?;
    let app = Router::new().route("/", get(views)).layer(layer);
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    println!("listening on http://{}", listener.local_addr()?);
    axum::serve(listener, app).await?;
    Ok(())
}
