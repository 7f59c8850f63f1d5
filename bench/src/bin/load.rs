//! The load generator: `load URL CONNS SECS SCENARIO`. Each connection is one virtual user
//! with its own cookie jar. Scenarios: `returning` (sends back what it was given and asks for
//! `/`, so its counter changes on every request), `new` (never sends a cookie), `read`
//! (`/` once, then `/read`: the session is read and never changed), `mixed` (every tenth
//! request `/`, the others `/read`), `rolling-read` (as `read`; the server runs with `rolling`).
//! Prints one line: `rps=N p50_us=N p99_us=N requests=N errors=N max_views=N`.

use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::Request;
use hyper::header::{COOKIE, HOST, HeaderValue, SET_COOKIE};

fn main() {
    let a: Vec<String> = std::env::args().collect();
    let url = a.get(1).expect("load URL CONNS SECS returning|new").clone();
    let conns: usize = a.get(2).and_then(|s| s.parse().ok()).unwrap_or(32);
    let secs: f64 = a.get(3).and_then(|s| s.parse().ok()).unwrap_or(10.0);
    let scenario = Scenario::parse(a.get(4).map_or("returning", String::as_str));
    let addr = url
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_owned();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let (lat, errors, max_views, elapsed) = rt.block_on(async move {
        let deadline = Instant::now() + Duration::from_secs_f64(secs);
        let start = Instant::now();
        let mut tasks = Vec::new();
        for _ in 0..conns {
            let addr = addr.clone();
            tasks.push(tokio::spawn(async move {
                user(&addr, deadline, scenario).await
            }));
        }
        let mut lat = Vec::new();
        let (mut errors, mut max_views) = (0u64, 0u64);
        for t in tasks {
            let (l, e, v) = t.await.expect("task");
            lat.extend(l);
            errors += e;
            max_views = max_views.max(v);
        }
        (lat, errors, max_views, start.elapsed())
    });
    let mut lat = lat;
    lat.sort_unstable();
    let pct = |p: f64| {
        lat.get(((lat.len() as f64 * p) as usize).min(lat.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0)
    };
    println!(
        "rps={:.0} p50_us={} p99_us={} requests={} errors={} max_views={}",
        lat.len() as f64 / elapsed.as_secs_f64(),
        pct(0.50),
        pct(0.99),
        lat.len(),
        errors,
        max_views
    );
}

/// What a virtual user asks for.
#[derive(Clone, Copy)]
enum Scenario {
    Returning,
    New,
    /// Reads after a first write; `every`: one write per this many requests (0: none).
    Reads {
        every: u64,
    },
}

impl Scenario {
    fn parse(s: &str) -> Self {
        match s {
            "new" => Self::New,
            "read" | "rolling-read" => Self::Reads { every: 0 },
            "mixed" => Self::Reads { every: 10 },
            "returning" => Self::Returning,
            other => panic!("unknown scenario {other:?}"),
        }
    }

    /// The path of a user's `n`th request (from 0).
    fn path(self, n: u64) -> &'static str {
        match self {
            Self::Reads { every } if n > 0 && !n.is_multiple_of(every) => "/read",
            _ => "/",
        }
    }
}

/// One virtual user on one keep-alive connection until the deadline.
async fn user(addr: &str, deadline: Instant, scenario: Scenario) -> (Vec<u32>, u64, u64) {
    let returning = !matches!(scenario, Scenario::New);
    let mut sent = 0u64;
    let mut lat = Vec::with_capacity(100_000);
    let (mut errors, mut max_views) = (0u64, 0u64);
    // The jar keeps its strings and the `Cookie` header it last built: a returning user whose
    // cookies did not change (store mode re-sends the same id) costs no formatting at all, so
    // the generator spends as little as it can on each response and the servers' costs show.
    let mut jar: Vec<(String, String)> = Vec::new();
    let mut cookie_header: Option<HeaderValue> = None;
    let host = HeaderValue::from_str(addr).expect("host header");
    while Instant::now() < deadline {
        let Ok(stream) = tokio::net::TcpStream::connect(addr).await else {
            errors += 1;
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let _ = stream.set_nodelay(true);
        let Ok((mut send, conn)) = hyper::client::conn::http1::handshake::<_, Empty<Bytes>>(
            hyper_util::rt::TokioIo::new(stream),
        )
        .await
        else {
            errors += 1;
            continue;
        };
        tokio::spawn(conn);
        while Instant::now() < deadline {
            let mut req = Request::new(Empty::new());
            *req.uri_mut() = hyper::Uri::from_static(scenario.path(sent));
            sent += 1;
            req.headers_mut().insert(HOST, host.clone());
            if returning {
                if cookie_header.is_none() && !jar.is_empty() {
                    let mut s = String::with_capacity(256);
                    for (k, v) in &jar {
                        if !s.is_empty() {
                            s.push_str("; ");
                        }
                        s.push_str(k);
                        s.push('=');
                        s.push_str(v);
                    }
                    cookie_header = HeaderValue::from_str(&s).ok();
                }
                if let Some(c) = &cookie_header {
                    req.headers_mut().insert(COOKIE, c.clone());
                }
            }
            let t = Instant::now();
            let res = match send.send_request(req).await {
                Ok(r) => r,
                Err(_) => {
                    errors += 1;
                    break;
                }
            };
            if !res.status().is_success() {
                errors += 1;
            }
            for v in res.headers().get_all(SET_COOKIE) {
                let v = v.as_bytes();
                let pair = v.split(|&b| b == b';').next().unwrap_or_default();
                let Some(eq) = pair.iter().position(|&b| b == b'=') else {
                    continue;
                };
                let (Ok(k), Ok(val)) = (
                    std::str::from_utf8(&pair[..eq]),
                    std::str::from_utf8(&pair[eq + 1..]),
                ) else {
                    continue;
                };
                let removed = val.is_empty() || v.windows(9).any(|w| w == b"Max-Age=0");
                let at = jar.iter().position(|(name, _)| name == k);
                match (at, removed) {
                    (Some(i), true) => {
                        jar.remove(i);
                        cookie_header = None;
                    }
                    (Some(i), false) if jar[i].1 != val => {
                        jar[i].1.clear();
                        jar[i].1.push_str(val);
                        cookie_header = None;
                    }
                    (None, false) => {
                        jar.push((k.to_owned(), val.to_owned()));
                        cookie_header = None;
                    }
                    _ => {}
                }
            }
            let body = res
                .into_body()
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            lat.push(t.elapsed().as_micros().min(u128::from(u32::MAX)) as u32);
            if let Some(n) = std::str::from_utf8(&body)
                .ok()
                .and_then(|s| s.split(' ').next())
                .and_then(|n| n.parse::<u64>().ok())
            {
                max_views = max_views.max(n);
            }
        }
    }
    (lat, errors, max_views)
}
