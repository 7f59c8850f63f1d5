//! The JSON session test app: one app with every route a test of this repository asks of a
//! session, served behind a [`SessionLayer`] on a fresh loopback port ([`serve`]).
//!
//! Query parameters are `name=value` pairs; an error the handler meets is the library's own
//! answer ([`session_hyper::Error::response`]); an unknown route is a 404.
//!
//! | route | what it does | answers |
//! |---|---|---|
//! | `GET /`, `/views` | counts views | `N views` |
//! | `/read` | reads the data | the data as JSON |
//! | `/noop` | nothing with the session | `no session` |
//! | `/set?k=v&...` | sets each pair | `set` |
//! | `/slow-set?k=v` | loads, waits 100 ms (two overlap), sets | `set` |
//! | `/typed` | reads `views` as a number | `Some(N)`, or a 500 naming key and type |
//! | `/login?user=U`, `/login?owner=O[&device=D]` | regenerates, sets `user` (to U, or O and binds the session to O) | `in` |
//! | `/log-in?owner=O[&max=N]` | `Session::log_in` (under a limit of N for this login), then sets `user`; refused: sets `refused` to the limit | `in`; 409 `refused` |
//! | `/bind?owner=O[&ms=N]` | loads, waits N ms, sets `user` and binds to O, no regenerate | `bound` |
//! | `/reauth?owner=O`, `/reauth-commit?owner=O` | a password change: regenerates, binds, (commits,) logs out the owner's other sessions | how many it ended |
//! | `/whoami`, `/slow-read?ms=N` | reads `user` (after N ms) | the user or `anonymous` |
//! | `/status` | reads `user`, and why the session the request brought ended | `{"user":U\|null,"ended":REASON\|null}` |
//! | `/slow-regenerate?ms=N` | loads, waits N ms, regenerates | `renewed` |
//! | `/clear?ms=N` | loads, waits, clears, sets `kept` | `cleared` |
//! | `/extend?ms=N` | sets the session's max-age | `ok` |
//! | `/logout` | destroys | `bye` |
//! | `/logout-then-set` | destroys, then sets `flash` (a new session) | `bye` |
//! | `/commit-then?then=destroy`, `/commit-then?then=regenerate&user=U` | loads, commits mid-request, then destroys or regenerates and sets `user` | `done` |
//! | `/revoke-others?wait=MS`, `/revoke-all` | log out everywhere else / everywhere, for the session's own owner (after MS ms checking a password) | how many it ended; 401 `anonymous` without an owner |
//! | `/explode` | sets a key, answers 500 | `boom` |
//! | `/big`, `/commit-big` | sets 5,000 bytes (and commits, answering 413 on failure) | `big`, `committed` |
//! | `/gated`, `/gated-read` | counts views / reads, held between load and commit until the test releases the [`Gate`] | `N views` / the data |
//! | `GET /session` | the data, with `X-Session-New` | JSON |
//! | `PUT /session` | merges a JSON object (null removes a key) | 204; 400 for anything else |
//! | `DELETE /session` | destroys | 204 |
//! | `POST /session/regenerate`, `/session/save`, `/session/regenerate-then-destroy` | as named | 204 |
//! | `POST /session/login` | regenerates and sets `user` to the body | 204 |
//! | `PUT /session/owner` | binds to `{"owner":"NAME"[,"device":"..."]}` | 204; 400 on a misuse |
//! | `GET /owners/NAME/sessions` | lists the owner's sessions | JSON array |
//! | `DELETE /owners/NAME/sessions[?keep=current]` | revokes all (but the caller's) | how many it ended |
//! | `DELETE /owners/NAME/sessions/HANDLE` | revokes one | 204; 404 if unknown |
//!
//! The owner routes are the demo's (`examples/demo`), names and handles percent-decoded
//! ([`owner_url`] encodes them); the demo answers a revoke of many with 204, this app with the
//! count. A session misuse there (rebinding without a regenerate) is a 400.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use serde_json::Value;
use session_core::MaxAge;
use session_hyper::{Session, SessionLayer};
use tokio::sync::Notify;

/// Largest request body read.
const MAX_BODY: usize = 1 << 20;

/// Where `/gated` and `/gated-read` hold a request between its load and its commit.
#[derive(Default)]
pub struct Gate {
    arrived: Notify,
    release: Notify,
}

impl Gate {
    /// Resolves once a gated request has loaded its session and waits.
    pub async fn arrived(&self) {
        self.arrived.notified().await;
    }
    /// Lets the waiting request go on.
    pub fn release(&self) {
        self.release.notify_one();
    }
    async fn pass(&self) {
        self.arrived.notify_one();
        self.release.notified().await;
    }
}

/// Serves the app behind `layer` on a fresh loopback port; its URL.
pub async fn serve(layer: SessionLayer) -> String {
    serve_gated(layer, Arc::default()).await
}

/// [`serve`], its gated routes held at `gate`.
pub async fn serve_gated(layer: SessionLayer, gate: Arc<Gate>) -> String {
    crate::net::listen(layer.wrap(hyper::service::service_fn(move |req| {
        let gate = Arc::clone(&gate);
        async move { Ok::<_, Infallible>(handle(req, &gate).await) }
    })))
    .await
}

/// An error hook that answers 413 for a session grown past a limit (the store's record limit,
/// a cookie's 4096 bytes), else the default (the demo's policy).
pub fn too_large_is_413(e: &session_hyper::Error) -> Response<Bytes> {
    let mut r = e.response();
    if e.is_too_large() {
        *r.status_mut() = StatusCode::PAYLOAD_TOO_LARGE;
    }
    r
}

/// `{url}/owners/{owner}/sessions[/{handle}]`, both percent-encoded.
pub fn owner_url(url: &str, owner: &str, handle: Option<&str>) -> String {
    let mut out = format!("{url}/owners/{}/sessions", encode(owner));
    if let Some(h) = handle {
        out.push('/');
        out.push_str(&encode(h));
    }
    out
}

/// A response of `status` with `body`.
fn reply(status: StatusCode, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    r
}

fn ok(body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    reply(StatusCode::OK, body)
}

fn json(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut r = reply(status, body);
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

/// The query's `name=value` pairs, in order.
fn query(req: &Request<Incoming>) -> Vec<(String, String)> {
    (req.uri().query().unwrap_or("").split('&'))
        .filter_map(|p| p.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

/// The value of query parameter `name` (empty when absent).
fn param(q: &[(String, String)], name: &str) -> String {
    q.iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.clone())
        .unwrap_or_default()
}

/// Query parameter `name` as milliseconds (`default` when absent).
fn millis(q: &[(String, String)], name: &str, default: u64) -> Duration {
    Duration::from_millis(param(q, name).parse().unwrap_or(default))
}

async fn body(req: Request<Incoming>) -> Bytes {
    Limited::new(req.into_body(), MAX_BODY)
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default()
}

/// The app: every route of the module doc.
pub async fn handle(req: Request<Incoming>, gate: &Gate) -> Response<Full<Bytes>> {
    let Ok(s) = Session::from_request(&req) else {
        return reply(StatusCode::INTERNAL_SERVER_ERROR, "no session layer");
    };
    let (method, path) = (req.method().clone(), req.uri().path().to_owned());
    let q = query(&req);
    let res = async {
        Ok::<_, session_hyper::Error>(match (method, path.as_str()) {
            (Method::GET, "/") | (_, "/views") => {
                let n: u64 = s.get("views").await?.unwrap_or(0) + 1;
                s.insert("views", n).await?;
                ok(format!("{n} views"))
            }
            (_, "/read") => ok(Value::Object(s.data().await?).to_string()),
            (_, "/noop") => ok("no session"),
            (_, "/set") => {
                for (k, v) in &q {
                    s.insert(k, v).await?;
                }
                ok("set")
            }
            (_, "/slow-set") => {
                // Load, wait, then change: two of these overlap.
                s.get_value("x").await?;
                tokio::time::sleep(Duration::from_millis(100)).await;
                for (k, v) in &q {
                    s.insert(k, v).await?;
                }
                ok("set")
            }
            (_, "/typed") => {
                let n: Option<u64> = s.get("views").await?;
                ok(format!("{n:?}"))
            }
            (_, "/login") => {
                s.regenerate().await?;
                let (owner, device) = (param(&q, "owner"), param(&q, "device"));
                if owner.is_empty() {
                    s.insert("user", param(&q, "user")).await?;
                } else {
                    s.insert("user", &owner).await?;
                    if device.is_empty() {
                        s.set_owner(&owner).await?;
                    } else {
                        s.set_owner_with_device(&owner, &device).await?;
                    }
                }
                ok("in")
            }
            (_, "/log-in") => {
                // `Session::log_in`, under a limit of `max` for this login if given; a refusal
                // answers 409 and the handler goes on with the session as it was.
                let owner = param(&q, "owner");
                if let Ok(max) = param(&q, "max").parse::<usize>() {
                    let limit =
                        session_core::SessionLimit::new(max, session_core::OverLimit::Refuse)
                            .map_err(session_core::SessionError::from)?;
                    s.limit_sessions(limit).await?;
                }
                match s.log_in(&owner, None).await {
                    Ok(()) => {
                        s.insert("user", &owner).await?;
                        ok("in")
                    }
                    Err(session_hyper::Error::TooManySessions { max }) => {
                        s.insert("refused", max).await?;
                        reply(StatusCode::CONFLICT, "refused")
                    }
                    Err(e) => return Err(e),
                }
            }
            (_, "/bind") => {
                // A bind without a regenerate (an anonymous session), `ms` after loading.
                let owner = param(&q, "owner");
                s.get_value("user").await?;
                tokio::time::sleep(millis(&q, "ms", 0)).await;
                s.insert("user", &owner).await?;
                s.set_owner(&owner).await?;
                ok("bound")
            }
            (_, path @ ("/reauth" | "/reauth-commit")) => {
                // A password change: a new id, then every other session logged out.
                let owner = param(&q, "owner");
                s.regenerate().await?;
                s.set_owner(&owner).await?;
                if path == "/reauth-commit" {
                    s.commit().await?;
                }
                ok(s.revoke_other_sessions(&owner).await?.to_string())
            }
            (_, "/status") => {
                // Who the session is, and why the one the request brought ended, if it did.
                let user: Option<String> = s.get("user").await?;
                let ended = s.ended().await?.map(|r| r.name());
                ok(serde_json::json!({ "user": user, "ended": ended }).to_string())
            }
            (_, "/whoami") => {
                let user: Option<String> = s.get("user").await?;
                ok(user.unwrap_or_else(|| "anonymous".into()))
            }
            (_, "/slow-read") => {
                let user: Option<String> = s.get("user").await?;
                tokio::time::sleep(millis(&q, "ms", 100)).await;
                ok(user.unwrap_or_else(|| "anonymous".into()))
            }
            (_, "/slow-regenerate") => {
                // Loads, waits N ms, renews the id (a step-up, a token refresh).
                s.get_value("user").await?;
                tokio::time::sleep(millis(&q, "ms", 100)).await;
                s.regenerate().await?;
                ok("renewed")
            }
            (_, "/clear") => {
                s.get_value("user").await?;
                tokio::time::sleep(millis(&q, "ms", 0)).await;
                s.clear().await?;
                s.insert("kept", 1).await?;
                ok("cleared")
            }
            (_, "/extend") => {
                s.set_max_age(MaxAge::Ms(param(&q, "ms").parse().unwrap_or(0)))
                    .await?;
                ok("ok")
            }
            (_, "/commit-then") => {
                // Commits mid-request, then destroys or logs in again (`then`).
                s.get_value("user").await?;
                s.commit().await?;
                match param(&q, "then").as_str() {
                    "destroy" => s.destroy().await?,
                    "regenerate" => {
                        s.regenerate().await?;
                        s.insert("user", param(&q, "user")).await?;
                    }
                    _ => {}
                }
                ok("done")
            }
            (_, "/logout-then-set") => {
                // A logout that leaves a message in the new session.
                s.destroy().await?;
                s.insert("flash", "bye").await?;
                ok("bye")
            }
            (_, "/logout") => {
                s.destroy().await?;
                ok("bye")
            }
            (_, path @ ("/revoke-others" | "/revoke-all")) => match s.owner().await? {
                Some(owner) => {
                    // The app checks the password first, this long.
                    tokio::time::sleep(millis(&q, "wait", 0)).await;
                    let ended = if path == "/revoke-all" {
                        s.revoke_all_sessions(&owner).await?
                    } else {
                        s.revoke_other_sessions(&owner).await?
                    };
                    ok(ended.to_string())
                }
                None => reply(StatusCode::UNAUTHORIZED, "anonymous"),
            },
            (_, "/explode") => {
                s.insert("should_not_persist", true).await?;
                reply(StatusCode::INTERNAL_SERVER_ERROR, "boom")
            }
            (_, "/big") => {
                s.insert("big", "x".repeat(5000)).await?;
                ok("big")
            }
            (_, "/commit-big") => {
                s.insert("big", "x".repeat(5000)).await?;
                match s.commit().await {
                    Ok(()) => ok("committed"),
                    Err(e) => {
                        // The app sees the error and puts the session back in a state that fits.
                        s.remove("big").await?;
                        reply(StatusCode::PAYLOAD_TOO_LARGE, format!("too big: {e}"))
                    }
                }
            }
            (_, "/gated") => {
                let n: u64 = s.get("views").await?.unwrap_or(0) + 1;
                gate.pass().await;
                s.insert("views", n).await?;
                ok(format!("{n} views"))
            }
            (_, "/gated-read") => {
                let data = s.data().await?;
                gate.pass().await;
                ok(Value::Object(data).to_string())
            }
            (Method::GET, "/session") => {
                let data = Value::Object(s.data().await?).to_string();
                let mut r = json(StatusCode::OK, data);
                let new = if s.is_new().await? { "true" } else { "false" };
                r.headers_mut()
                    .insert("x-session-new", HeaderValue::from_static(new));
                r
            }
            (Method::PUT, "/session") => {
                let Ok(Value::Object(obj)) = serde_json::from_slice::<Value>(&body(req).await)
                else {
                    return Ok(reply(StatusCode::BAD_REQUEST, "expected a JSON object"));
                };
                for (k, v) in obj {
                    if v.is_null() {
                        s.remove(&k).await?;
                    } else {
                        s.insert(&k, v).await?;
                    }
                }
                reply(StatusCode::NO_CONTENT, "")
            }
            (Method::DELETE, "/session") => {
                s.destroy().await?;
                reply(StatusCode::NO_CONTENT, "")
            }
            (Method::POST, "/session/regenerate") => {
                s.regenerate().await?;
                reply(StatusCode::NO_CONTENT, "")
            }
            (Method::POST, "/session/login") => {
                let user = String::from_utf8_lossy(&body(req).await).into_owned();
                s.regenerate().await?;
                s.insert("user", user).await?;
                reply(StatusCode::NO_CONTENT, "")
            }
            (Method::POST, "/session/save") => {
                s.save().await?;
                reply(StatusCode::NO_CONTENT, "")
            }
            (Method::POST, "/session/regenerate-then-destroy") => {
                s.regenerate().await?;
                s.destroy().await?;
                reply(StatusCode::NO_CONTENT, "")
            }
            (Method::PUT, "/session/owner") => bind(&s, &body(req).await).await?,
            (method, p) if p.starts_with("/owners/") => {
                let keep = req.uri().query() == Some("keep=current");
                owners(&s, method, p, keep).await?
            }
            _ => reply(StatusCode::NOT_FOUND, "not found"),
        })
    }
    .await;
    res.unwrap_or_else(|e| e.response())
}

/// A session misuse (an owner id that is not one, a rebind without a regenerate) is the
/// client's error: 400; the rest goes to the caller.
fn misuse(
    done: Result<Response<Full<Bytes>>, session_hyper::Error>,
) -> Result<Response<Full<Bytes>>, session_hyper::Error> {
    match done {
        Err(e @ session_hyper::Error::Session(_)) => {
            Ok(reply(StatusCode::BAD_REQUEST, e.to_string()))
        }
        other => other,
    }
}

/// `PUT /session/owner` with `{"owner":"NAME"[,"device":"..."]}`.
async fn bind(s: &Session, body: &[u8]) -> Result<Response<Full<Bytes>>, session_hyper::Error> {
    let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
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
        Some(d) => s.set_owner_with_device(owner, d).await,
        None => s.set_owner(owner).await,
    };
    misuse(bound.map(|()| reply(StatusCode::NO_CONTENT, "")))
}

/// `GET|DELETE /owners/NAME/sessions` and `DELETE /owners/NAME/sessions/HANDLE`.
async fn owners(
    s: &Session,
    method: Method,
    path: &str,
    keep_current: bool,
) -> Result<Response<Full<Bytes>>, session_hyper::Error> {
    let parts: Vec<String> = path
        .trim_start_matches("/owners/")
        .split('/')
        .map(decode)
        .collect();
    let (owner, handle) = match parts.as_slice() {
        [owner, s] if s == "sessions" => (owner.as_str(), None),
        [owner, s, handle] if s == "sessions" => (owner.as_str(), Some(handle.as_str())),
        _ => return Ok(reply(StatusCode::NOT_FOUND, "no such route")),
    };
    let done = match (method, handle) {
        (Method::GET, None) => s.list_sessions(owner).await.map(|list| {
            json(
                StatusCode::OK,
                serde_json::to_string(&list).unwrap_or_else(|_| "[]".into()),
            )
        }),
        (Method::DELETE, Some(h)) => s.revoke_session(owner, h).await.map(|found| {
            if found {
                reply(StatusCode::NO_CONTENT, "")
            } else {
                reply(StatusCode::NOT_FOUND, "no such session")
            }
        }),
        (Method::DELETE, None) if keep_current => s
            .revoke_other_sessions(owner)
            .await
            .map(|n| ok(n.to_string())),
        (Method::DELETE, None) => s
            .revoke_all_sessions(owner)
            .await
            .map(|n| ok(n.to_string())),
        _ => return Ok(reply(StatusCode::METHOD_NOT_ALLOWED, "GET or DELETE")),
    };
    misuse(done)
}

/// `s` with every byte outside the unreserved set percent-encoded.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// `s` percent-decoded (a malformed escape is kept as it is).
fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok());
        match (bytes[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}
