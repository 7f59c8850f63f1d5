//! Login with `regenerate()`, a protected page, logout with `destroy()`.
//!
//! `cargo run -p login`, then:
//! - `POST /login` with body `user=NAME` logs in (a new session id: no fixation),
//! - `GET /private` answers 401 until then,
//! - `POST /logout` ends the session (record deleted, cookies removed).

use std::convert::Infallible;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, Response, StatusCode, body::Incoming};
use session_core::Config;
use session_hyper::{Session, SessionLayer};
use session_store_memory::MemoryStore;

fn reply(status: StatusCode, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    r
}

async fn route(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let Ok(session) = Session::from_request(&req) else {
        // Only reachable if the service is mounted without the session layer.
        return Ok(Response::new(Full::from("session layer missing")));
    };
    let res = async {
        Ok::<_, session_hyper::Error>(match (req.method().clone(), req.uri().path()) {
            (Method::POST, "/login") => {
                let body = req
                    .into_body()
                    .collect()
                    .await
                    .map(|b| b.to_bytes())
                    .unwrap_or_default();
                let form = String::from_utf8_lossy(&body);
                let Some(user) = form.strip_prefix("user=").filter(|u| !u.is_empty()) else {
                    return Ok(reply(StatusCode::BAD_REQUEST, "send user=NAME"));
                };
                // A privilege change: new id, same data, old id dead.
                session.regenerate().await?;
                session.insert("user", user).await?;
                reply(StatusCode::OK, format!("welcome, {user}"))
            }
            (Method::GET, "/private") => match session.get::<String>("user").await? {
                Some(user) => reply(StatusCode::OK, format!("secret page for {user}")),
                None => reply(StatusCode::UNAUTHORIZED, "log in first"),
            },
            (Method::POST, "/logout") => {
                session.destroy().await?;
                reply(StatusCode::OK, "bye")
            }
            _ => reply(
                StatusCode::NOT_FOUND,
                "try POST /login, GET /private, POST /logout",
            ),
        })
    }
    .await;
    Ok(res.unwrap_or_else(|_| reply(StatusCode::SERVICE_UNAVAILABLE, "")))
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
    let service = layer.wrap(hyper::service::service_fn(route));
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
