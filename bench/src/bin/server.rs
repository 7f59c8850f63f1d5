//! One benchmark server: `server KIND PORT [REDIS_URL]`, KIND one of bare, bare-cookies, cookie,
//! encrypted (cookie mode, encrypted),
//! memory, memory-lite, redis, redis-cache (with the client cache), postgres, ts-memory,
//! ts-memory-signed, ts-redis, ts-postgres (the postgres kinds read `DATABASE_URL`),
//! actix-cookie, actix-redis (actix-web with actix-session). Every kind answers `GET /` by incrementing the
//! session's `views` and `GET /read` by reading it without a change (bare kinds: a constant
//! body). `BENCH_ROLLING=1` turns on `rolling` (tower-sessions: expiry on inactivity). Two tokio
//! worker threads. Prints `ready` when listening.

use std::convert::Infallible;

#[path = "../peers/actix.rs"]
mod actix_peer;

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response, body::Incoming};
use session_core::Config;
use session_hyper::{Session, SessionLayer};

const KEY: &[u8] = b"benchmark key, 32 bytes or longer!";

type Res = Response<Full<Bytes>>;

async fn bare(_req: Request<Incoming>) -> Result<Res, Infallible> {
    Ok(Response::new(Full::from("1 views")))
}

/// Bare hyper plus the two `Set-Cookie` headers our default writes (fixed strings): what the
/// wire format alone costs, with no session work.
async fn bare_cookies(_req: Request<Incoming>) -> Result<Res, Infallible> {
    let mut r = Response::new(Full::from("1 views"));
    let h = r.headers_mut();
    h.append("set-cookie", hyper::header::HeaderValue::from_static("koa.sess=4o93guAaN5ZLylEXB05gsyTRhrz1zvuXHjuPF6uQ4Ko; HttpOnly; SameSite=Lax; Path=/; Max-Age=86400; Expires=Thu, 26 Nov 2026 21:29:24 GMT"));
    h.append("set-cookie", hyper::header::HeaderValue::from_static("koa.sess.sig=Iu4zJsj9MNBqQexVtSH1dHlYaZ5Kwu8RHXnB4URjLek; HttpOnly; SameSite=Lax; Path=/; Max-Age=86400; Expires=Thu, 26 Nov 2026 21:29:24 GMT"));
    Ok(r)
}

fn rolling() -> bool {
    std::env::var("BENCH_ROLLING").is_ok_and(|v| v == "1")
}

async fn ours(req: Request<Incoming>) -> Result<Res, Infallible> {
    let Ok(s) = Session::from_request(&req) else {
        return Ok(Response::new(Full::from("no session")));
    };
    let n: u64 = s.get("views").await.ok().flatten().unwrap_or(0);
    if req.uri().path() == "/read" {
        return Ok(Response::new(Full::from(format!("{n} views"))));
    }
    let _ = s.insert("views", n + 1).await;
    Ok(Response::new(Full::from(format!("{} views", n + 1))))
}

async fn theirs(req: Request<Incoming>) -> Result<Res, Infallible> {
    let Some(s) = req.extensions().get::<tower_sessions::Session>().cloned() else {
        return Ok(Response::new(Full::from("no session")));
    };
    let n: u64 = s.get("views").await.ok().flatten().unwrap_or(0);
    if req.uri().path() == "/read" {
        return Ok(Response::new(Full::from(format!("{n} views"))));
    }
    let _ = s.insert("views", n + 1).await;
    Ok(Response::new(Full::from(format!("{} views", n + 1))))
}

/// Serves `service` on 127.0.0.1:`port` (the test kit's accept loop: `TCP_NODELAY` on every
/// connection), once listening printing `ready`.
async fn serve<S>(port: u16, service: S)
where
    S: hyper::service::Service<Request<Incoming>, Response = Res> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .expect("bind");
    println!("ready");
    session_testkit::serve(listener, service).await;
}

/// Our middleware for `kind`: cookie, encrypted, memory, memory-lite, redis or postgres
/// (`DATABASE_URL`).
async fn our_layer(kind: &str, redis_url: &str) -> SessionLayer {
    let config = Config::builder()
        .key(KEY.to_vec())
        .rolling(rolling())
        .build()
        .expect("config");
    let builder = match kind {
        "cookie" => SessionLayer::cookie(config),
        "encrypted" => SessionLayer::cookie(
            Config::builder()
                .key(KEY.to_vec())
                .rolling(rolling())
                .cookie_mode(session_core::CookieMode::Encrypted)
                .build()
                .expect("config"),
        ),
        "memory" => SessionLayer::store(config, session_store_memory::MemoryStore::new()),
        "memory-lite" => {
            // tower-sessions' default cookie shape: one unsigned id cookie, no expiry.
            let config = Config::builder()
                .unsigned()
                .rolling(rolling())
                .max_age(session_core::MaxAge::Session)
                .build()
                .expect("config");
            SessionLayer::store(config, session_store_memory::MemoryStore::new())
        }
        "redis" | "redis-cache" => {
            let mut builder = session_store_redis::RedisStore::builder(redis_url);
            if kind == "redis-cache" {
                builder = builder.client_cache(64 << 20);
            }
            if let Some(n) = std::env::var("BENCH_REDIS_POOL")
                .ok()
                .and_then(|v| v.parse().ok())
            {
                builder = builder.pool_size(n);
            }
            SessionLayer::store(config, builder.build().await.expect("redis"))
        }
        "postgres" => {
            let url = std::env::var("DATABASE_URL").expect("DATABASE_URL");
            let store = session_store_postgres::PostgresStore::builder(url)
                .build()
                .expect("postgres");
            store.migrate().await.expect("migrate");
            SessionLayer::store(config, store)
        }
        other => panic!("unknown server kind {other:?}"),
    };
    builder.build().expect("layer")
}

/// tower-sessions for `kind`: ts-memory, ts-memory-signed, ts-redis or ts-postgres (its sqlx
/// store, `DATABASE_URL`).
async fn serve_theirs(kind: &str, port: u16, redis_url: &str) {
    use hyper_util::service::TowerToHyperService;
    use tower::Layer;
    use tower_sessions::{MemoryStore, SessionManagerLayer};
    let handler = || tower::service_fn(theirs);
    // tower-sessions' `rolling`: an expiry on inactivity, which every request extends.
    // Without it, its default: a browser-session cookie and a store expiry of two weeks.
    let expiry = if rolling() {
        tower_sessions::Expiry::OnInactivity(tower_sessions::cookie::time::Duration::days(1))
    } else {
        tower_sessions::Expiry::OnSessionEnd
    };
    match kind {
        "ts-memory" => {
            let layer = SessionManagerLayer::new(MemoryStore::default())
                .with_secure(false)
                .with_expiry(expiry);
            serve(port, TowerToHyperService::new(layer.layer(handler()))).await
        }
        "ts-memory-signed" => {
            let key = tower_sessions::cookie::Key::from(&[7u8; 64]);
            let layer = SessionManagerLayer::new(MemoryStore::default())
                .with_secure(false)
                .with_signed(key)
                .with_expiry(expiry);
            serve(port, TowerToHyperService::new(layer.layer(handler()))).await
        }
        "ts-redis" => {
            use tower_sessions_redis_store::fred::prelude::*;
            let cfg = Config::from_url(redis_url).expect("redis url");
            // tower-sessions-redis-store's README uses a pool of 6 connections.
            let size = std::env::var("BENCH_TS_POOL")
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(6);
            let pool = Pool::new(cfg, None, None, None, size).expect("fred pool");
            let _ = pool.connect();
            pool.wait_for_connect().await.expect("redis");
            let store = tower_sessions_redis_store::RedisStore::new(pool);
            let layer = SessionManagerLayer::new(store)
                .with_secure(false)
                .with_expiry(expiry);
            serve(port, TowerToHyperService::new(layer.layer(handler()))).await
        }
        "ts-postgres" => {
            let url = std::env::var("DATABASE_URL").expect("DATABASE_URL");
            let pool = sqlx::PgPool::connect(&url).await.expect("postgres");
            let store = tower_sessions_sqlx_store::PostgresStore::new(pool);
            store.migrate().await.expect("migrate");
            let layer = SessionManagerLayer::new(store)
                .with_secure(false)
                .with_expiry(expiry);
            serve(port, TowerToHyperService::new(layer.layer(handler()))).await
        }
        other => panic!("unknown server kind {other:?}"),
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let kind = args.get(1).cloned().unwrap_or_default();
    let port: u16 = args
        .get(2)
        .and_then(|p| p.parse().ok())
        .expect("server KIND PORT [REDIS_URL]");
    let redis_url = args
        .get(3)
        .cloned()
        .unwrap_or_else(|| "redis://127.0.0.1:6379/0".into());
    if kind.starts_with("actix-") {
        return actix_peer::serve(&kind, port, &redis_url, rolling());
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        match kind.as_str() {
            "bare" => serve(port, hyper::service::service_fn(bare)).await,
            "bare-cookies" => serve(port, hyper::service::service_fn(bare_cookies)).await,
            k if k.starts_with("ts-") => serve_theirs(k, port, &redis_url).await,
            k => {
                let layer = our_layer(k, &redis_url).await;
                serve(port, layer.wrap(hyper::service::service_fn(ours))).await
            }
        }
    });
}
