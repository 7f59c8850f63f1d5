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
use session_hyper::{Config, MemoryStore, Session, SessionLayer};

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
    Ok(res.unwrap_or_else(|e| e.response()))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    example_support::init_tracing();
    let config = Config::builder()
        .keys(example_support::keys_from_env()?)
        .build()?;
    let layer = SessionLayer::store(config, MemoryStore::new()).build()?;
    let service = layer.wrap(hyper::service::service_fn(route));
    example_support::serve(example_support::port_arg(3000)?, service).await?;
    Ok(())
}
