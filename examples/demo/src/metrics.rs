//! `--metrics-addr`: the library's metrics (the names of `session_core::telemetry`) recorded
//! by a Prometheus recorder and served as Prometheus text at `GET /metrics`, on a listener of
//! their own (never on the session routes' port).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Method, Request, Response, StatusCode, body::Incoming, header};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tokio::net::TcpListener;

/// The buckets (upper bounds) of the latency histograms, every name ending in `_seconds`: 100 µs
/// to 5 s.
const SECONDS_BUCKETS: [f64; 15] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

/// The buckets of the size histograms, every name ending in `_bytes`: 64 B to 64 KiB (the
/// stores' record limit; a cookie stops at 4096 bytes).
const BYTES_BUCKETS: [f64; 11] = [
    64.0, 128.0, 256.0, 512.0, 1024.0, 2048.0, 4096.0, 8192.0, 16384.0, 32768.0, 65536.0,
];

/// How often the recorder's upkeep runs: the exporter only runs it by itself with its own
/// listener, which the demo does not use.
const UPKEEP_EVERY: Duration = Duration::from_secs(5);

/// The recorder, installed, and the listener its page is served on.
pub(crate) struct Exporter {
    listener: TcpListener,
    handle: PrometheusHandle,
}

/// Binds `addr` (`HOST:PORT`; port 0 picks a free one) and installs the recorder as the
/// process's global one. Call it before the session layer is built: building it sets the
/// counters of bounded label sets to 0, which only an installed recorder keeps.
pub(crate) async fn install(addr: &str) -> Result<Exporter, String> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|e| format!("--metrics-addr {addr}: {e}"))?;
    // Buckets make every histogram a Prometheus histogram (`_bucket{le=...}`, aggregatable
    // with histogram_quantile) instead of the exporter's default summary.
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &SECONDS_BUCKETS)
        .and_then(|b| b.set_buckets_for_metric(Matcher::Suffix("_bytes".into()), &BYTES_BUCKETS))
        .and_then(PrometheusBuilder::install_recorder)
        .map_err(|e| format!("--metrics-addr: {e}"))?;
    Ok(Exporter { listener, handle })
}

impl Exporter {
    /// The address the page is served on.
    pub(crate) fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves `GET /metrics` and runs the recorder's upkeep, in tasks of the current runtime,
    /// for as long as it runs.
    pub(crate) fn spawn(self) {
        let Exporter { listener, handle } = self;
        let upkeep = handle.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(UPKEEP_EVERY);
            loop {
                every.tick().await;
                upkeep.run_upkeep();
            }
        });
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    // A connection reset before it was taken, no file descriptor left.
                    tokio::time::sleep(Duration::from_millis(1)).await;
                    continue;
                };
                let handle = handle.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| {
                        let page = page(&handle, &req);
                        async move { Ok::<_, Infallible>(page) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                        .await;
                });
            }
        });
    }
}

/// `GET /metrics`: the Prometheus text format; any other path 404, another method 405.
fn page(handle: &PrometheusHandle, req: &Request<Incoming>) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::new()));
    if req.uri().path() != "/metrics" {
        *r.status_mut() = StatusCode::NOT_FOUND;
        *r.body_mut() = Full::from("GET /metrics");
        return r;
    }
    if req.method() != Method::GET && req.method() != Method::HEAD {
        *r.status_mut() = StatusCode::METHOD_NOT_ALLOWED;
        r.headers_mut()
            .insert(header::ALLOW, header::HeaderValue::from_static("GET, HEAD"));
        return r;
    }
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    if req.method() == Method::GET {
        *r.body_mut() = Full::from(handle.render());
    }
    r
}
