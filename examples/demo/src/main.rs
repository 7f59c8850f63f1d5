//! A configurable session server for trying every option from the command line.
//!
//! ```text
//! demo --port P --store cookie|memory|redis://HOST:PORT[/DB]|postgres://... --keys k1,k2
//!             |redis+sentinel://HOST:PORT[,HOST:PORT...]/MASTER
//!             |redis+cluster://HOST:PORT[,HOST:PORT...]
//!      --algorithm sha1|sha256|sha512 --cookie-name NAME --max-age MS|session
//!      [--prefix P] [--koa-compat] [--rolling] [--renew] [--guest] [--trust-proxy]
//!      [--encrypt] [--migrate-from redis://HOST:PORT[/DB]|postgres://...
//!                      |tower-sessions+redis://HOST:PORT[/DB]|tower-sessions+postgres://...
//!                      |actix+redis://HOST:PORT[/DB]|express+redis://HOST:PORT[/DB]]
//!      [--migrate-key BASE64] [--migrate-secret SECRET]... [--migrate-cookie NAME]
//!      [--drain [--drain-clear-after UNIX_SECONDS]]
//!      [--max-sessions N [--over-limit refuse|end-oldest]] [--csrf]
//!      [--metrics-addr HOST:PORT] [--audit-log FILE]
//! ```
//!
//! `--migrate-from URL` (not with `--store cookie`): the store the site used until now (one of
//! ours: Redis in our format, or koa's with `--koa-compat`; PostgreSQL); a session found only
//! there moves into `--store` on its first use, under a new id (the guide's chapter on
//! switching stores). `tower-sessions+redis://…` and `tower-sessions+postgres://…` name a
//! tower-sessions app's store instead (its default table); `--migrate-key` gives its `Key`
//! (64 bytes, standard base64 with padding) when it signed or encrypted its cookie, and
//! `--migrate-cookie` its cookie name when not `id`. `actix+redis://…` names an actix-web app's
//! actix-session Redis store, with `--migrate-key` its 64-byte `Key` (required: its cookie is
//! private or signed) and `--migrate-cookie` when not `id`. `express+redis://…` names an express app's
//! connect-redis store (prefix `sess:`), with `--migrate-secret` (repeatable, newest first) for
//! its secrets and `--migrate-cookie` when its cookie is not `connect.sid`. `--drain` (with any
//! `--migrate-from`)
//! moves every idle old session into `--store` instead of serving, printing the counts after
//! each batch (`drain: moved N, gone N, refused N, moving N, cleared N, failed N`), and exits
//! (1 if any failed: run it again); after `--drain-clear-after` it deletes them instead.
//!
//! `redis+sentinel://` names the Sentinels (all of them) and the name they monitor the master
//! under; `redis+cluster://` some nodes of a Cluster. `--client-cache BYTES` works with both,
//! and with `redis://` (not with `--koa-compat`).
//!
//! `--encrypt` (with `--store cookie`): the session cookie is encrypted (XChaCha20-Poly1305
//! under a subkey of each key), one cookie without `.sig`; keys must be 32 bytes or more.
//!
//! A session that would outgrow the store's record limit (64 KiB) or the 4096-byte cookie
//! answers 413; other session failures 503 with `Retry-After` (store down) or 500.
//!
//! Routes: `GET /` counts views; `GET /session` answers the user data as JSON with
//! `X-Session-New`; `PUT /session` merges a JSON object (a null value removes the key);
//! `DELETE /session` destroys; `POST /session/regenerate` regenerates (`GET /session` never
//! shows flash messages: they are kept out of the data).
//!
//! Flash messages: `POST /flash` with `{"level":"info","text":"..."}` (levels `debug`, `info`,
//! `success`, `warning`, `error`) adds one (204; 400 for a bad body or an unknown level);
//! `GET /flash` answers the messages as a JSON array of `{"level","text"}`, and takes them
//! only if the request is a page load: `Sec-Fetch-Mode` other than `navigate` or
//! `Sec-Fetch-Dest` other than `document`, `X-Requested-With` or `HX-Request` see them and
//! leave them, a prefetch (`Sec-Purpose` or `Purpose` naming `prefetch`) sees none.
//!
//! `--csrf`: `GET /csrf` answers `{"token":"..."}` (404 without `--csrf`), and every unsafe
//! request (not `GET`, `HEAD` or `OPTIONS`; any route, before routing) follows the library's
//! rule: `Sec-Fetch-Site: same-origin` passes, `cross-site` is refused even with a token,
//! otherwise it needs a valid token in `X-CSRF-Token` or, where that is absent or wrong, the
//! `_csrf` field of an `application/x-www-form-urlencoded` body. A refusal answers 403 (413
//! for a form over 64 KiB that had to be read). A token is the visitor's own: another
//! visitor's fails, and `POST /session/regenerate` or `DELETE /session` makes older ones fail.
//!
//! A user's sessions (memory and Redis stores, not koa-compat; `NAME` percent-encoded; a test
//! contract with no authorization: an app takes the owner from the session or its own login,
//! never from the URL, as `examples/login` does):
//! `PUT /session/owner` with `{"owner":"NAME"}` (and optionally `"device":"..."`) binds the
//! current session (204); `GET /owners/NAME/sessions` answers a JSON array of `{handle,
//! created, last_seen, expires, device, current}` (times in ms since the epoch);
//! `DELETE /owners/NAME/sessions/HANDLE` revokes one (204; 404 if unknown);
//! `DELETE /owners/NAME/sessions` revokes all of them (204), and with `?keep=current` all but
//! the caller's own.
//!
//! `--max-sessions N` limits each owner to N sessions (not with `--store cookie` or
//! `--koa-compat`): past it, `PUT /session/owner` answers 409 and leaves the session as it was
//! (`--over-limit refuse`, the default), or answers 204 and ends the owner's session bound
//! earliest (`--over-limit end-oldest`), whose next `GET /session` is a new, empty session
//! (answered with `X-Session-Ended: newer-login`).
//!
//! `--metrics-addr HOST:PORT` installs a Prometheus recorder before the session layer is built
//! and serves the library's metrics (names in `session_core::telemetry`; histograms with
//! buckets, 100 µs to 5 s for `*_seconds` and 64 B to 64 KiB for `*_bytes`) as Prometheus text
//! at `GET /metrics` on a listener of its own (any other path 404); port 0 picks a free one,
//! and the demo prints `metrics on http://ADDR/metrics` on stderr. An address it can't bind
//! stops it at startup. `docs/grafana/sessions.json` is a dashboard over these metrics.
//!
//! `--audit-log FILE` appends every lifecycle event (created, saved, regenerated, destroyed,
//! revoked, ...) to FILE, one JSON object a line (`{"at_ms":…,"event":"created","handle":…}`:
//! a session's handle, never its id, cookie or data), through a queue of 4096 events on a
//! thread of its own that drops (and counts, `session_audit_dropped_total`) what a stuck disk
//! can't take. A FILE that can't be opened for appending stops the demo at startup.

use std::convert::Infallible;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::{Method, Request, Response, StatusCode, body::Incoming};
use serde_json::Value;
use session_core::store::DynStore;
use session_core::{Config, CookieMode, Hooks, OverLimit, SessionLimit};
use session_hyper::audit::{Audit, JsonLines};
use session_hyper::{Session, SessionLayer};
use session_store_memory::MemoryStore;
use session_store_postgres::PostgresStore;
use session_store_redis::Format;
use std::sync::Arc;

mod answer;
mod args;
mod forms;
mod metrics;
mod migrate;

use answer::{MAX_BODY, reply};
use args::{Args, USAGE, parse_args};

/// Every route; with `csrf` (`--csrf`), an unsafe request passes the CSRF check first.
async fn route(req: Request<Incoming>, csrf: bool) -> Result<Response<Full<Bytes>>, Infallible> {
    let Ok(session) = Session::from_request(&req) else {
        // Only reachable if the service is mounted without the session layer.
        return Ok(Response::new(Full::from("session layer missing")));
    };
    let req = if csrf {
        match forms::csrf_gate(&session, req).await {
            Ok(req) => req,
            Err(refused) => return Ok(refused),
        }
    } else {
        forms::unread(req)
    };
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let res = async {
        Ok::<_, session_hyper::Error>(match (method, path.as_str()) {
            (Method::GET, "/") => {
                let n: u64 = session.get("views").await?.unwrap_or(0) + 1;
                session.insert("views", n).await?;
                reply(StatusCode::OK, format!("{n} views"))
            }
            (Method::GET, "/session") => {
                let data = session.data().await?;
                let mut r = reply(StatusCode::OK, Value::Object(data).to_string());
                let new = if session.is_new().await? {
                    "true"
                } else {
                    "false"
                };
                r.headers_mut().insert(
                    "x-session-new",
                    hyper::header::HeaderValue::from_static(new),
                );
                if let Some(why) = session.ended().await? {
                    r.headers_mut().insert(
                        "x-session-ended",
                        hyper::header::HeaderValue::from_static(why.name()),
                    );
                }
                r.headers_mut().insert(
                    hyper::header::CONTENT_TYPE,
                    hyper::header::HeaderValue::from_static("application/json"),
                );
                r
            }
            (Method::PUT, "/session") => {
                let body = match Limited::new(req.into_body(), MAX_BODY).collect().await {
                    Ok(b) => b.to_bytes(),
                    Err(_) => {
                        return Ok(reply(
                            StatusCode::PAYLOAD_TOO_LARGE,
                            format!("body over {MAX_BODY} bytes"),
                        ));
                    }
                };
                let obj = match serde_json::from_slice::<Value>(&body) {
                    Ok(Value::Object(obj)) => obj,
                    Ok(_) => return Ok(reply(StatusCode::BAD_REQUEST, "expected a JSON object")),
                    Err(e) => {
                        return Ok(reply(StatusCode::BAD_REQUEST, format!("invalid JSON: {e}")));
                    }
                };
                if let Some(k) = obj.keys().find(|k| k.starts_with('_')) {
                    return Ok(reply(
                        StatusCode::BAD_REQUEST,
                        format!("key {k:?} is reserved (keys starting with '_')"),
                    ));
                }
                for (k, v) in obj {
                    if v.is_null() {
                        session.remove(&k).await?;
                    } else {
                        session.insert(&k, v).await?;
                    }
                }
                reply(StatusCode::NO_CONTENT, "")
            }
            (Method::DELETE, "/session") => {
                session.destroy().await?;
                reply(StatusCode::NO_CONTENT, "")
            }
            (Method::POST, "/session/regenerate") => {
                session.regenerate().await?;
                reply(StatusCode::NO_CONTENT, "")
            }
            (Method::PUT, "/session/owner") => {
                let body = match Limited::new(req.into_body(), MAX_BODY).collect().await {
                    Ok(b) => b.to_bytes(),
                    Err(_) => return Ok(reply(StatusCode::PAYLOAD_TOO_LARGE, "body too large")),
                };
                let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                let (Some(owner), device) = (
                    v.get("owner").and_then(Value::as_str),
                    v.get("device").and_then(Value::as_str),
                ) else {
                    return Ok(reply(
                        StatusCode::BAD_REQUEST,
                        r#"expected {"owner":"NAME"}"#,
                    ));
                };
                let bound = match device {
                    Some(d) => session.set_owner_with_device(owner, d).await,
                    None => session.set_owner(owner).await,
                };
                match bound {
                    Ok(()) => reply(StatusCode::NO_CONTENT, ""),
                    Err(e @ session_hyper::Error::Session(_)) => {
                        reply(StatusCode::BAD_REQUEST, e.to_string())
                    }
                    Err(e) => return Err(e),
                }
            }
            (Method::POST, "/flash") => forms::add(&session, req).await?,
            (Method::GET, "/flash") => forms::show(&session).await?,
            (Method::GET, "/csrf") => forms::token(&session, csrf).await?,
            (method, p) if p.starts_with("/owners/") => {
                let query = req.uri().query().unwrap_or("");
                owners_route(&session, method, p, query).await?
            }
            _ => reply(
                StatusCode::NOT_FOUND,
                "routes: GET /, GET|PUT|DELETE /session, POST /session/regenerate, \
                 PUT /session/owner, GET|DELETE /owners/NAME/sessions[/HANDLE], \
                 GET|POST /flash, GET /csrf (with --csrf)",
            ),
        })
    }
    .await;
    // On a store failure the layer answers itself (see `on_error` below); a type mismatch is
    // the app's 500, with a message that names the key, never the value.
    Ok(res.unwrap_or_else(|e| e.response()))
}

/// `GET|DELETE /owners/NAME/sessions` and `DELETE /owners/NAME/sessions/HANDLE`.
async fn owners_route(
    session: &Session,
    method: Method,
    path: &str,
    query: &str,
) -> Result<Response<Full<Bytes>>, session_hyper::Error> {
    let parts: Vec<&str> = path.trim_start_matches("/owners/").split('/').collect();
    let (name, handle) = match parts.as_slice() {
        [name, "sessions"] => (*name, None),
        [name, "sessions", handle] => (*name, Some(*handle)),
        _ => return Ok(reply(StatusCode::NOT_FOUND, "no such route")),
    };
    let Ok(owner) = percent_encoding::percent_decode_str(name).decode_utf8() else {
        return Ok(reply(StatusCode::BAD_REQUEST, "owner name is not UTF-8"));
    };
    let done = match (method, handle) {
        (Method::GET, None) => {
            let list = session.list_sessions(&owner).await;
            let list = match list {
                Err(e @ session_hyper::Error::Session(_)) => {
                    return Ok(reply(StatusCode::BAD_REQUEST, e.to_string()));
                }
                other => other?,
            };
            let mut r = reply(
                StatusCode::OK,
                serde_json::to_string(&list).unwrap_or_else(|_| "[]".into()),
            );
            r.headers_mut().insert(
                hyper::header::CONTENT_TYPE,
                hyper::header::HeaderValue::from_static("application/json"),
            );
            return Ok(r);
        }
        (Method::DELETE, Some(h)) => session.revoke_session(&owner, h).await,
        (Method::DELETE, None) if query == "keep=current" => {
            session.revoke_other_sessions(&owner).await.map(|_| true)
        }
        (Method::DELETE, None) => session.revoke_all_sessions(&owner).await.map(|_| true),
        _ => return Ok(reply(StatusCode::METHOD_NOT_ALLOWED, "GET or DELETE")),
    };
    Ok(match done {
        Ok(true) => reply(StatusCode::NO_CONTENT, ""),
        Ok(false) => reply(StatusCode::NOT_FOUND, "no such session"),
        Err(e @ session_hyper::Error::Session(_)) => reply(StatusCode::BAD_REQUEST, e.to_string()),
        Err(e) => return Err(e),
    })
}

/// The layer's answer to a session failure: 413 for a session grown past the store's record
/// limit or the cookie's 4096 bytes (the client sent too much), else 503 + `Retry-After` for
/// a store that is down or slow, 500 otherwise.
fn on_error(e: &session_hyper::Error) -> Response<Bytes> {
    let mut r = e.response();
    if e.is_too_large() {
        *r.status_mut() = StatusCode::PAYLOAD_TOO_LARGE;
    }
    r
}

/// How many events `--audit-log` queues for its file before it drops them.
const AUDIT_QUEUE: usize = 4096;

/// The layer, the store's sweeper (memory and PostgreSQL), and the store as it may be printed (a
/// Redis URL without its password).
async fn build(
    args: &Args,
) -> Result<(SessionLayer, Option<Box<dyn std::any::Any + Send>>, String), String> {
    let keys = match &args.keys {
        Some(k) => k.iter().map(|k| k.as_bytes().to_vec()).collect(),
        None => {
            eprintln!(
                "warning: no --keys given; signing with a random key, so sessions end when the server stops"
            );
            let mut k = [0u8; 32];
            getrandom::fill(&mut k).map_err(|e| e.to_string())?;
            vec![k.to_vec()]
        }
    };
    if args.encrypt && args.store != "cookie" {
        return Err("--encrypt needs --store cookie (a store keeps the data on the server)".into());
    }
    if args.migrate_from.is_some() && args.store == "cookie" {
        return Err(
            "--migrate-from needs a store to move sessions into: --store memory, redis:// or postgres://"
                .into(),
        );
    }
    let mut b = Config::builder()
        .keys(keys)
        .koa_compat(args.koa_compat)
        .rolling(args.rolling)
        .renew(args.renew)
        .guest(args.guest);
    if args.encrypt {
        b = b.cookie_mode(CookieMode::Encrypted);
    }
    if let Some(a) = args.algorithm {
        b = b.algorithm(a);
    }
    if let Some(n) = &args.cookie_name {
        b = b.cookie_name(n.clone());
    }
    if let Some(m) = args.max_age {
        b = b.max_age(m);
    }
    if let Some(p) = &args.prefix {
        b = b.id_prefix(p.clone());
    }
    if let Some(path) = &args.audit_log {
        let file = JsonLines::append(path)
            .map_err(|e| format!("--audit-log {path}: can't open it for appending: {e}"))?;
        let audit = Audit::start(file, AUDIT_QUEUE).map_err(|e| format!("--audit-log: {e}"))?;
        b = b.hooks(Hooks::new().on_event(audit.listener()));
    }
    let config = b.build().map_err(|e| format!("configuration: {e}"))?;
    let mut sweepers: Vec<Box<dyn std::any::Any + Send>> = Vec::new();
    let (builder, mut shown) = match args.store.as_str() {
        "cookie" => (SessionLayer::cookie(config), args.store.clone()),
        url => {
            let (store, sweeper, shown) = open(url, args, "--store").await?;
            sweepers.extend(sweeper);
            (SessionLayer::store(config, store), shown)
        }
    };
    if args.drain_clear_after.is_some() && !args.drain {
        return Err("--drain-clear-after goes with --drain".into());
    }
    let flags = migrate::Args {
        migrate_key: args.migrate_key.as_deref(),
        migrate_cookie: args.migrate_cookie.as_deref(),
        migrate_secrets: &args.migrate_secrets,
    };
    let builder = match &args.migrate_from {
        Some(url) => match migrate::library(builder, url, &flags)? {
            Ok((builder, name)) => {
                shown = format!("{shown}, moving sessions from {name}");
                builder
            }
            Err(builder) => {
                migrate::only_for_libraries(&flags)?;
                let (old, sweeper, old_shown) = open(url, args, "--migrate-from").await?;
                sweepers.extend(sweeper);
                shown = format!("{shown}, moving sessions from {old_shown}");
                builder.migrate_from(old)
            }
        },
        None => {
            migrate::only_for_libraries(&flags)?;
            builder
        }
    };
    let builder = match (args.max_sessions, args.over_limit) {
        (Some(n), policy) => {
            let limit = SessionLimit::new(n, policy.unwrap_or(OverLimit::Refuse))
                .map_err(|e| format!("--max-sessions: {e}"))?;
            builder.max_sessions_per_owner(limit)
        }
        (None, Some(_)) => return Err("--over-limit goes with --max-sessions".into()),
        (None, None) => builder,
    };
    let layer = builder
        .trust_proxy(args.trust_proxy)
        .on_error(on_error)
        .build()
        .map_err(|e| e.to_string())?;
    if args.csrf {
        // Tokens need a signing key: the demo always has one, and says so at startup if not.
        layer.csrf().map_err(|e| format!("--csrf: {e}"))?;
    }
    Ok((layer, Some(Box::new(sweepers)), shown))
}

/// `--drain`: moves the source's idle sessions, printing the counts after each batch; the exit
/// code (0 done, 1 some failed, 2 no source to drain).
async fn drain(layer: &SessionLayer, args: &Args) -> i32 {
    let Some(mut drain) = layer.drain() else {
        eprintln!("demo: --drain needs --migrate-from");
        return 2;
    };
    if let Some(secs) = args.drain_clear_after {
        drain = drain.clear_after(std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs));
    }
    let line = |r: &session_hyper::DrainReport| {
        format!(
            "moved {}, gone {}, refused {}, moving {}, cleared {}, failed {}",
            r.moved, r.gone, r.refused, r.moving, r.cleared, r.failed
        )
    };
    match drain.run(|r| eprintln!("drain: {}", line(r))).await {
        Ok(r) => {
            eprintln!("drain: done: {}", line(&r));
            i32::from(r.failed > 0)
        }
        Err(e) => {
            eprintln!("drain: stopped: {e}");
            1
        }
    }
}

/// The store at `url` (`memory`, `redis://`, `postgres://`), its sweeper (memory and
/// PostgreSQL), and its URL as it may be printed (without a password).
async fn open(
    url: &str,
    args: &Args,
    flag: &str,
) -> Result<
    (
        Arc<dyn DynStore>,
        Option<Box<dyn std::any::Any + Send>>,
        String,
    ),
    String,
> {
    let every_minute = std::time::Duration::from_secs(60);
    Ok(match url {
        "memory" => {
            let store = MemoryStore::new();
            let sweeper: Box<dyn std::any::Any + Send> =
                Box::new(store.start_sweeper(every_minute));
            (Arc::new(store), Some(sweeper), url.to_owned())
        }
        s if s.starts_with("postgres://") || s.starts_with("postgresql://") => {
            if args.koa_compat {
                return Err(format!(
                    "--koa-compat needs {flag} memory, cookie or redis://"
                ));
            }
            let store = PostgresStore::builder(s)
                .build()
                .map_err(|e| e.to_string())?;
            let shown = store.redacted_url().to_owned();
            store
                .migrate()
                .await
                .map_err(|e| format!("could not create the sessions table: {e}"))?;
            let sweeper: Box<dyn std::any::Any + Send> =
                Box::new(store.start_sweeper(every_minute));
            (Arc::new(store), Some(sweeper), shown)
        }
        s if s.starts_with("redis://")
            || s.starts_with("rediss://")
            || s.starts_with("redis+sentinel://")
            || s.starts_with("redis+cluster://") =>
        {
            // koa-compat: koa's JSON string under the raw id, readable by a Koa app's store.
            let format = if args.koa_compat {
                Format::Koa
            } else {
                Format::V1
            };
            let store = args::redis_builder(s)
                .map_err(|e| format!("{flag}: {e}"))?
                .format(format)
                .client_cache(args.client_cache)
                .build()
                .await
                .map_err(|e| e.to_string())?;
            let shown = store.redacted_url().to_owned();
            (Arc::new(store), None, shown)
        }
        other => return Err(format!("{flag}: unknown {other:?}\n{USAGE}")),
    })
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // First, so that it lives as long as the process (the log writer's thread).
    let _log = example_support::init_tracing();
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(a) => a,
        Err(msg) => {
            eprintln!("{msg}");
            std::process::exit(2);
        }
    };
    // Before the layer: building it declares the metrics' series to the recorder.
    let exporter = match &args.metrics_addr {
        Some(addr) => match metrics::install(addr).await {
            Ok(e) => Some(e),
            Err(msg) => {
                eprintln!("demo: {msg}");
                std::process::exit(2);
            }
        },
        None => None,
    };
    // The sweeper runs as long as this binding lives.
    let (layer, _sweeper, shown) = match build(&args).await {
        Ok(l) => l,
        Err(msg) => {
            eprintln!("demo: {msg}");
            std::process::exit(2);
        }
    };
    if let Some(exporter) = exporter {
        eprintln!("metrics on http://{}/metrics", exporter.local_addr()?);
        exporter.spawn();
    }
    if args.drain {
        std::process::exit(drain(&layer, &args).await);
    }
    let csrf = args.csrf;
    let service = layer.wrap(hyper::service::service_fn(move |req| route(req, csrf)));
    eprintln!("store: {shown}");
    example_support::serve(args.port, service).await?;
    Ok(())
}
