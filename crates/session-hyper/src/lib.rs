//! koa-session for hyper 1.x and tower (axum): wrap a service, find a [`Session`] in every
//! request, and the cookies and store writes happen right.
//!
//! Per request the middleware reads and verifies the session cookie (rotated keys accepted and
//! re-signed), exposes a [`Session`] in the request extensions, loads the session from
//! the store only if the handler touches it, and after the handler applies the commit
//! decision of `session-core`: `Set-Cookie`, store writes, removal cookies on destroy. A store
//! failure becomes a fast 503 with `Retry-After` (or the response of your error hook); a commit
//! that fails after the handler ran replaces the response, it is never swallowed. Nothing is
//! saved on a 5xx unless configured. A session over its store's size limit or the cookie's
//! 4096 bytes is an error the app sees ([`Error::is_too_large`]; 500 by default, or what
//! [`SessionLayerBuilder::on_error`] says).
//!
//! Races and hostile input are handled by rule, not by luck: a logout is never undone by a
//! concurrent request, parallel requests around a login keep the user logged in, planted
//! cookies can't log anyone out, and a corrupt record is a new session. The rules are written
//! out in [`session_core::behaviour`]; the repository's guide (`docs/`) has a chapter per
//! topic (stores, cookie modes, a user's sessions, options, operations, events and metrics) and the attack that
//! tests each promise.
//!
//! # One crate to start
//! This crate re-exports what an app names: [`Config`] and its option types, the [`Store`]
//! trait, [`MemoryStore`] (feature `memory`, on by default), [`RedisStore`] (feature
//! `redis`; `redis-tls` for `rediss://`) and `PostgresStore` (feature `postgres`). With the `axum` feature, [`Session`] is a handler
//! argument and [`Error`] a handler's error type (see the `axum` section below). Every
//! lifecycle event ([`SessionEvent`]) reaches [`Hooks::on_event`], `tracing`, and the
//! [`audit`] sink if the app plugs one in; with the `metrics` feature, store latency, error
//! answers, sizes and pool use are recorded through the `metrics` facade (the names:
//! [`session_core::telemetry`]). The crates
//! behind it (`session-core`, `session-cookie`, `session-store-memory`,
//! `session-store-redis`, `session-store-postgres`) stay usable on their own.
//!
//! # Example (hyper)
//! ```
//! # #[cfg(feature = "memory")] {
//! use std::convert::Infallible;
//! use bytes::Bytes;
//! use http_body_util::Full;
//! use hyper::{Request, Response, header::SET_COOKIE, service::Service};
//! use session_hyper::{Config, MemoryStore, Session, SessionLayer};
//!
//! async fn counter(req: Request<Full<Bytes>>) -> Result<Response<Full<Bytes>>, Infallible> {
//!     let Ok(session) = Session::from_request(&req) else {
//!         return Ok(Response::new(Full::from("not behind SessionLayer")));
//!     };
//!     // On a store failure the layer answers 503 itself, whatever the handler returns.
//!     let views: u64 = session.get("views").await.ok().flatten().unwrap_or(0) + 1;
//!     let _ = session.insert("views", views).await;
//!     Ok(Response::new(Full::from(format!("{views} views"))))
//! }
//!
//! # let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
//! # rt.block_on(async {
//! let config = Config::builder().key(b"a 32-byte (or longer) secret key!".to_vec()).build()?;
//! let layer = SessionLayer::store(config, MemoryStore::new()).build()?;
//! let service = layer.wrap(hyper::service::service_fn(counter));
//! // Serve `service` with hyper's `http1::Builder` (see examples/counter); here, one request:
//! let res = service.call(Request::new(Full::default())).await?;
//! assert_eq!(res.headers().get_all(SET_COOKIE).iter().count(), 2); // koa.sess + koa.sess.sig
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # })?;
//! # }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Cookie mode: signed or encrypted
//! [`SessionLayer::cookie`] keeps the whole session in the cookie, no store. By default it is
//! koa's: base64 JSON signed in a `.sig` cookie, which anyone who sees the cookie can read. With
//! [`CookieMode::Encrypted`] the JSON is sealed with XChaCha20-Poly1305 under a subkey of each
//! key, bound to the cookie name, in one cookie; a cookie sealed under an older key is sealed
//! again under the newest on the next response. Neither mode can revoke a copy of a cookie
//! before it expires: sessions that log users in belong in a store.
//! ```
//! # let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
//! # rt.block_on(async {
//! use bytes::Bytes;
//! use http_body_util::Full;
//! use hyper::{Request, Response, header::SET_COOKIE, service::Service};
//! use session_hyper::{Config, CookieMode, Session, SessionLayer};
//!
//! let config = Config::builder()
//!     .keys([b"this month's key, 32 bytes or more".to_vec(), b"last month's key, 32 bytes or more".to_vec()])
//!     .cookie_mode(CookieMode::Encrypted)
//!     .build()?;
//! let layer = SessionLayer::cookie(config).build()?;
//! let service = layer.wrap(hyper::service::service_fn(|req: Request<Full<Bytes>>| async move {
//!     let session = Session::from_request(&req).expect("behind the layer");
//!     session.insert("user", "ada").await?;
//!     Ok::<_, session_hyper::Error>(Response::new(Full::<Bytes>::default()))
//! }));
//! let res = service.call(Request::new(Full::default())).await?;
//! let cookies: Vec<_> = res.headers().get_all(SET_COOKIE).iter().collect();
//! assert_eq!(cookies.len(), 1); // no `.sig`
//! let value = cookies[0].to_str()?;
//! assert!(value.starts_with("koa.sess=v1.") && !value.contains("ada"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # })?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # A user's sessions ("log out everywhere")
//! [`Session::set_owner`] binds a session to its user at login; [`Session::list_sessions`]
//! lists the user's sessions by opaque handle (never an id, store key or cookie value);
//! [`Session::revoke_session`], [`Session::revoke_other_sessions`] and
//! [`Session::revoke_all_sessions`] end them, and [`SessionLayer::owners`] does the same
//! outside a request. The store keeps an index per owner that cleans itself; requests of
//! sessions without an owner never touch it. Cookie mode, the koa-compat preset and the Redis
//! store in koa's format keep no index ([`Error::NoOwnerIndex`]).
//!
//! ```
//! # #[cfg(feature = "memory")] {
//! use std::convert::Infallible;
//! use bytes::Bytes;
//! use http_body_util::Full;
//! use hyper::{Request, Response, service::Service};
//! use session_hyper::{Config, MemoryStore, Session, SessionLayer};
//!
//! async fn login(req: Request<Full<Bytes>>) -> Result<Response<Full<Bytes>>, Infallible> {
//!     let Ok(session) = Session::from_request(&req) else {
//!         return Ok(Response::new(Full::from("not behind SessionLayer")));
//!     };
//!     let done = async {
//!         session.regenerate().await?; // a new id at login
//!         session.insert("user", "ada").await?;
//!         session.set_owner_with_device("ada", "Firefox on Linux").await
//!     };
//!     Ok(Response::new(Full::from(match done.await {
//!         Ok(()) => "welcome",
//!         Err(_) => "failed",
//!     })))
//! }
//!
//! # let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
//! # rt.block_on(async {
//! let config = Config::builder().key(b"a 32-byte (or longer) secret key!".to_vec()).build()?;
//! let layer = SessionLayer::store(config, MemoryStore::new()).build()?;
//! let owners = layer.owners().ok_or("the memory store keeps an owner index")?;
//! let service = layer.wrap(hyper::service::service_fn(login));
//! for _ in 0..2 {
//!     service.call(Request::new(Full::default())).await?; // two browsers log in
//! }
//! let listed = owners.list("ada").await?;
//! assert_eq!(listed.len(), 2);
//! assert_eq!(listed[0].device.as_deref(), Some("Firefox on Linux"));
//! assert_eq!(owners.revoke_all("ada").await?, 2); // log out everywhere
//! assert!(owners.list("ada").await?.is_empty());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # })?;
//! # }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Flash messages and CSRF tokens
//! [`Session::flash`] leaves a message for the next page; [`Session::messages`] (or the
//! [`flash::Messages`] extractor) shows them and takes them only where the request is a page
//! load, so a prefetch or an XHR never eats one ([`flash`] has the rule). [`SessionLayer::csrf`]
//! makes a [`CsrfLayer`] that refuses unsafe requests from other sites and checks the token
//! [`Session::csrf_token`] renders into pages ([`csrf`] has the rule and what tokens are bound
//! to).
//!
//! # axum
//! Add the layer with `Router::layer(layer)`. With the `axum` feature a handler takes the
//! session as an argument and returns [`Error`] with `?`: a store failure becomes 503 with
//! `Retry-After`, anything else 500, and a route the layer doesn't cover answers 500 saying so.
//!
//! ```ignore
//! async fn views(session: Session) -> Result<String, Error> {
//!     let n: u64 = session.get("views").await?.unwrap_or(0) + 1;
//!     session.insert("views", n).await?;
//!     Ok(format!("{n} views"))
//! }
//! ```
#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(feature = "axum")]
#[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
pub mod axum;
/// A cookie-mode codec of the app's own ([`SessionLayerBuilder::codec`]): the trait and the
/// types its methods take and return.
pub mod codec {
    pub use session_cookie::{Codec, CodecError, Decoded, KeyMatch, KoaCodec};
    pub use session_core::store::{Meta, Record};
}
pub mod audit;
mod commit;
pub mod csrf;
mod drain;
mod ending;
mod error;
pub mod flash;
mod from_cookies;
mod from_store;
mod headers;
mod index;
mod layer;
mod lifecycle;
mod limit;
mod login;
mod measured;
mod moved;
mod owned;
mod owners;
mod page;
mod request;
mod session;
mod shared;
#[cfg(feature = "testing")]
#[cfg_attr(docsrs, doc(cfg(feature = "testing")))]
pub mod testing;

pub use csrf::CsrfLayer;
pub use drain::{Drain, DrainReport};
pub use error::Error;
pub use layer::{LayerBuildError, SessionLayer, SessionLayerBuilder, SessionService};
pub use owners::Owners;
pub use request::Tls;
pub use session::MAX_MOVED_BYTES;
pub use session::Session;

// What an app names, so this crate is the only session dependency it needs: every type a
// signature here takes or returns (the errors `Error` carries, a custom `Codec`) included.
pub use session_cookie::{CodecError, CookieError};
pub use session_core::store::{DynStore, Store, StoreError};
pub use session_core::{
    Algorithm, Config, ConfigBuilder, ConfigError, CookieMode, CookieOptions, Data, EndReason,
    EventKind, Handle, Hooks, MaxAge, OverLimit, OwnerError, Priority, RevokedBy, SameSite,
    SecurePolicy, SessionError, SessionEvent, SessionInfo, SessionLimit, StoreOp,
};
#[cfg(feature = "memory")]
#[cfg_attr(docsrs, doc(cfg(feature = "memory")))]
pub use session_store_memory::MemoryStore;
#[cfg(feature = "postgres")]
#[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
pub use session_store_postgres::{PostgresBuildError, PostgresStore};
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub use session_store_redis::{Format as RedisFormat, RedisBuildError, RedisStore};
