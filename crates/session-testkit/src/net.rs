//! Serving a hyper service over HTTP/1.1: on a fresh loopback port for a test ([`listen`]), or
//! on a listener of the caller's ([`serve`]: the examples' servers, the benchmark's). Every
//! accepted connection gets `TCP_NODELAY`, as a benchmark server needs (a response is not held
//! back waiting for the client's ACK).

use std::error::Error;
use std::time::Duration;

use hyper::body::{Body, Incoming};
use hyper::service::Service;
use hyper::{Request, Response};
use tokio::net::TcpListener;

/// Serves `service` on a fresh loopback port, in a task of the current runtime; its
/// `http://127.0.0.1:PORT` URL.
pub async fn listen<S, B>(service: S) -> String
where
    S: Service<Request<Incoming>, Response = Response<B>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<Box<dyn Error + Send + Sync>>,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn Error + Send + Sync>>,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(serve(listener, service));
    format!("http://{addr}")
}

/// Accepts connections on `listener` and serves `service` on each, each connection in a task
/// of its own, for as long as the runtime runs. A failed accept (a connection reset before it
/// was taken, no file descriptor left) is waited out and the loop goes on.
pub async fn serve<S, B>(listener: TcpListener, service: S)
where
    S: Service<Request<Incoming>, Response = Response<B>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<Box<dyn Error + Send + Sync>>,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn Error + Send + Sync>>,
{
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(1)).await;
            continue;
        };
        let _ = stream.set_nodelay(true);
        let service = service.clone();
        tokio::spawn(async move {
            let io = hyper_util::rt::TokioIo::new(stream);
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(io, service)
                .await;
        });
    }
}

/// A loopback port free right now (for a server a test starts itself).
pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}
