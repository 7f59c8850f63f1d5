//! Test fixtures for an app's own tests (feature `testing`): seed a session and get the cookie
//! a test sends with its requests, look at a session after a request, end it, and move time.
//!
//! Turn the feature on for your tests only:
//!
//! ```toml
//! [dev-dependencies]
//! session-hyper = { version = "...", features = ["testing"] }
//! ```
//!
//! # Nothing but the real layer
//! A [`Fixture`] holds a clone of the app's own [`SessionLayer`], and every helper is one request
//! through it: built in memory (no network), sent to a small service the layer wraps, whose
//! handler uses the same public [`Session`] API an app's handler does. The session is written
//! by the layer's own commit into the app's own store (or cookie), signed or sealed with the
//! app's keys, under the app's options and hooks; the cookie a test gets is built from the
//! `Set-Cookie` headers the layer answered. Nothing here adds a path to the library: a build
//! without the feature is the same library, and a session the fixtures made is one the app could
//! have made itself.
//!
//! - [`Fixture::seed`] starts a session holding the given data, as a handler's `insert`s and a
//!   [`Session::commit`] do, and answers a [`Seeded`]: the `Cookie` header a test sends (in
//!   signed mode the cookie and its `.sig`; in cookie mode the cookie is the payload, signed or
//!   sealed).
//! - [`Fixture::seed_owned`] also logs an owner in on it ([`Session::log_in`]), so it is listed
//!   and revoked with the owner's sessions and counts against a session limit.
//! - [`Fixture::inspect`] reads the session a request carrying a `Cookie` header would have (its
//!   data, whether it is new, its owner, why it ended), and writes nothing.
//! - [`Fixture::end`] destroys the session a `Cookie` header carries, as a logout does.
//! - [`clock`] makes a [`ManualClock`] to give the configuration and the store: moving it past
//!   `max_age` or `absolute_lifetime` ends sessions exactly as time would.
//!
//! The helpers run on the caller's tokio runtime (as `#[tokio::test]` gives), like the layer.
//!
//! # Example
//! Seed a session, send its cookie with a request to the app, look at what the request did:
//!
//! ```
//! # #[cfg(feature = "memory")] {
//! # let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
//! # rt.block_on(async {
//! use bytes::Bytes;
//! use http::{Request, Response, header::COOKIE};
//! use http_body_util::Full;
//! use hyper::service::Service;
//! use serde_json::json;
//! use session_hyper::testing::Fixture;
//! use session_hyper::{Config, MemoryStore, Session, SessionLayer};
//!
//! let config = Config::builder().key(b"a 32-byte (or longer) secret key!".to_vec()).build()?;
//! let layer = SessionLayer::store(config, MemoryStore::new()).build()?;
//! // The app under test: counts the user's visits.
//! let app = layer.wrap(hyper::service::service_fn(|req: Request<Full<Bytes>>| async move {
//!     let session = Session::from_request(&req)?;
//!     let visits: u64 = session.get("visits").await?.unwrap_or(0) + 1;
//!     session.insert("visits", visits).await?;
//!     Ok::<_, session_hyper::Error>(Response::new(Full::<Bytes>::from("hello")))
//! }));
//!
//! let fixture = Fixture::new(&layer);
//! let seeded = fixture.seed([("user", json!("ada")), ("visits", json!(41))]).await?;
//! let req = Request::builder().header(COOKIE, seeded.cookie_header()).body(Full::default())?;
//! app.call(req).await?;
//!
//! let seen = fixture.inspect(seeded.cookie_header()).await?;
//! assert!(!seen.is_new);
//! assert_eq!(seen.data.get("visits"), Some(&json!(42)));
//! assert_eq!(seen.data.get("user"), Some(&json!("ada")));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # })?;
//! # }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Time
//! The session rules read the configuration's clock, and the memory store measures its TTLs with
//! its own: give both the same [`ManualClock`] ([`clock`] makes one standing at the real time
//! now), and `advance` it instead of sleeping.
//!
//! ```
//! # #[cfg(feature = "memory")] {
//! # let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
//! # rt.block_on(async {
//! use std::sync::Arc;
//! use std::time::Duration;
//! use session_hyper::testing::{Fixture, clock};
//! use session_hyper::{Config, MaxAge, MemoryStore, SessionLayer};
//!
//! let (time, shared) = clock();
//! let config = Config::builder()
//!     .key(b"a 32-byte (or longer) secret key!".to_vec())
//!     .max_age(MaxAge::from_duration(Duration::from_secs(3600)))
//!     .absolute_lifetime(Duration::from_secs(8 * 3600))
//!     .clock(Arc::clone(&shared))
//!     .build()?;
//! let store = MemoryStore::builder().clock(shared).build();
//! let fixture = Fixture::new(&SessionLayer::store(config, store).build()?);
//!
//! let seeded = fixture.seed([("user", "ada")]).await?;
//! time.advance(Duration::from_secs(3599));
//! assert!(!fixture.inspect(seeded.cookie_header()).await?.is_new);
//! time.advance(Duration::from_secs(2)); // past max_age
//! let seen = fixture.inspect(seeded.cookie_header()).await?;
//! assert!(seen.is_new && seen.data.is_empty());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # })?;
//! # }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use http::header::{COOKIE, SET_COOKIE};
use http::{HeaderName, HeaderValue, Request, Response};
use serde::Serialize;
use serde_json::Value;
use session_cookie::CookieError;
use session_core::SessionError;
use session_core::store::StoreError;

pub use session_core::{Clock, ManualClock, SharedClock};

use crate::{Data, EndReason, Error, Session, SessionLayer};

/// A [`ManualClock`] standing at the real time now, and the same clock as a [`SharedClock`] for
/// [`ConfigBuilder::clock`](crate::ConfigBuilder::clock) and the store's builder (the memory
/// store's `MemoryStoreBuilder::clock`): clones share one time, so advancing the first moves
/// both. Starting at the real time keeps the cookies' `Expires` in the future for a client with
/// a cookie jar.
pub fn clock() -> (ManualClock, SharedClock) {
    let clock = ManualClock::new(session_core::SystemClock.now_ms());
    let shared: SharedClock = Arc::new(clock.clone());
    (clock, shared)
}

/// Seeds, inspects and ends sessions through an app's own [`SessionLayer`] (see the
/// [module docs](self)). Cheap to clone.
#[derive(Clone, Debug)]
pub struct Fixture {
    layer: SessionLayer,
}

/// A session [`Fixture::seed`] made: the cookie a test sends to be that session.
#[derive(Clone)]
pub struct Seeded {
    name: HeaderName,
    value: String,
    set_cookie: Vec<HeaderValue>,
}

/// A session as the layer sees it for a request ([`Fixture::inspect`]).
#[derive(Clone)]
#[non_exhaustive]
pub struct Inspected {
    /// The session's data (empty for a new session).
    pub data: Data,
    /// koa's `isNew`: the request carried no live session (none at all, an ended or expired
    /// one, a forged or tampered cookie), so it starts a new one.
    pub is_new: bool,
    /// The owner the session is bound to ([`Session::owner`]).
    pub owner: Option<String>,
    /// Why the session the request carried had ended, when the middleware ended it and its
    /// marker is still there ([`Session::ended`]): e.g. a newer login over the owner's session
    /// limit.
    pub ended: Option<EndReason>,
}

impl Fixture {
    /// Fixtures for the app whose layer this is (a clone of it: the same store, keys, options
    /// and hooks).
    pub fn new(layer: &SessionLayer) -> Self {
        Self {
            layer: layer.clone(),
        }
    }

    /// Starts a new session holding `data` (key-value pairs: an array of tuples, a
    /// [`Data`] map) and answers its cookie. The request inserts each pair
    /// ([`Session::insert`]: keys starting with `_` are refused with the library's error),
    /// calls [`Session::save`] so even empty data makes a session, and commits
    /// ([`Session::commit`]): the record is in the store (or the payload in the cookie) when this
    /// returns. The layer's hooks run as on any request; the session is not bound to an owner.
    ///
    /// ```
    /// # #[cfg(feature = "memory")] {
    /// # let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    /// # rt.block_on(async {
    /// use serde_json::json;
    /// use session_hyper::testing::Fixture;
    /// use session_hyper::{Config, MemoryStore, SessionLayer};
    ///
    /// let config = Config::builder().key(b"a 32-byte (or longer) secret key!".to_vec()).build()?;
    /// let fixture = Fixture::new(&SessionLayer::store(config, MemoryStore::new()).build()?);
    /// let seeded = fixture.seed([("cart", json!(["book"])), ("views", json!(3))]).await?;
    /// // The signed id and its signature, as a browser would send them:
    /// assert!(seeded.cookie_header().starts_with("koa.sess="));
    /// assert!(seeded.cookie_header().contains("; koa.sess.sig="));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })?;
    /// # }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub async fn seed<K, V>(&self, data: impl IntoIterator<Item = (K, V)>) -> Result<Seeded, Error>
    where
        K: AsRef<str>,
        V: Serialize,
    {
        let data = pairs(data)?;
        self.seeded(Op::Seed { data, owner: None }).await
    }

    /// [`Fixture::seed`], the session then logged in as `owner` with [`Session::log_in`] (a new
    /// id, the binding, a commit under the layer's session limit, `device` shown in listings).
    /// It is listed by [`SessionLayer::owners`] and ends with a revoke of the owner's sessions.
    ///
    /// Fails with [`Error::NoOwnerIndex`] where the layer keeps no owner index (cookie mode, the
    /// koa-compat preset, a store without one): `Session::log_in` there only regenerates, and a
    /// session that claims an owner it is not listed under would be no session the app can have.
    /// A login the session limit refuses fails with [`Error::TooManySessions`].
    ///
    /// ```
    /// # #[cfg(feature = "memory")] {
    /// # let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    /// # rt.block_on(async {
    /// use session_hyper::testing::Fixture;
    /// use session_hyper::{Config, MemoryStore, SessionLayer};
    ///
    /// let config = Config::builder().key(b"a 32-byte (or longer) secret key!".to_vec()).build()?;
    /// let layer = SessionLayer::store(config, MemoryStore::new()).build()?;
    /// let fixture = Fixture::new(&layer);
    /// let seeded = fixture.seed_owned([("user", "ada")], "ada", Some("Firefox on Linux")).await?;
    /// let listed = layer.owners().ok_or("an owner index")?.list("ada").await?;
    /// assert_eq!(listed.len(), 1);
    /// assert_eq!(fixture.inspect(seeded.cookie_header()).await?.owner.as_deref(), Some("ada"));
    ///
    /// let cookies = SessionLayer::cookie(
    ///     Config::builder().key(b"a 32-byte (or longer) secret key!".to_vec()).build()?,
    /// ).build()?;
    /// let refused = Fixture::new(&cookies).seed_owned([("user", "ada")], "ada", None).await;
    /// assert!(matches!(refused, Err(session_hyper::Error::NoOwnerIndex)));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })?;
    /// # }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub async fn seed_owned<K, V>(
        &self,
        data: impl IntoIterator<Item = (K, V)>,
        owner: &str,
        device: Option<&str>,
    ) -> Result<Seeded, Error>
    where
        K: AsRef<str>,
        V: Serialize,
    {
        if self.layer.owners().is_none() {
            return Err(Error::NoOwnerIndex);
        }
        let data = pairs(data)?;
        let owner = Some((owner.to_owned(), device.map(str::to_owned)));
        self.seeded(Op::Seed { data, owner }).await
    }

    /// The session a request carrying `cookie_header` as its `Cookie` header has, as its
    /// handler would read it: after a request of the app, what that request left.
    ///
    /// Writes nothing, whatever the options: the handler reads the session and the request is
    /// then abandoned before its commit, as a request whose service fails is, so no cookie is
    /// sent, no TTL touched (`rolling`, `renew`), no re-signing done, and an expired session's
    /// record is left for the store's own expiry. (A request of the app that reads the session
    /// does commit: with `rolling` off, `renew` off and a cookie signed with the newest key, a
    /// read of a live session writes nothing either.)
    ///
    /// `cookie_header` is the value a test sends: [`Seeded::cookie_header`], or what the test's
    /// client holds after the app answered (a login changes the id). Under
    /// [`SessionLayerBuilder::external_key`](crate::SessionLayerBuilder::external_key) it is that
    /// header's value.
    pub async fn inspect(&self, cookie_header: &str) -> Result<Inspected, Error> {
        match self.send(Op::Inspect, Some(cookie_header)).await {
            Err(Halt::Inspected(seen)) => Ok(seen),
            Err(Halt::Failed(e)) => Err(e),
            // The handler always halts after an inspection.
            Ok(res) => Err(unexpected(&res)),
        }
    }

    /// Ends the session a request carrying `cookie_header` has, as a logout does
    /// ([`Session::destroy`], committed): its record is deleted, and where it was bound to an
    /// owner, its entry in the owner's index goes. The next request with the same cookie is
    /// anonymous. A cookie that carries no live session is no error (the logout of nobody).
    ///
    /// In cookie mode nothing on the server holds the session: the response only removes the
    /// cookie, and a copy of it (the test's `cookie_header`) stays valid until it expires. That
    /// is the mode's documented limit, not the fixture's; drop the cookie instead.
    pub async fn end(&self, cookie_header: &str) -> Result<(), Error> {
        let res = self
            .send(Op::End, Some(cookie_header))
            .await
            .map_err(Halt::error)?;
        if res.status().is_success() {
            Ok(())
        } else {
            Err(unexpected(&res))
        }
    }

    /// Runs a seed; its cookie from the response.
    async fn seeded(&self, op: Op) -> Result<Seeded, Error> {
        let res = self.send(op, None).await.map_err(Halt::error)?;
        if !res.status().is_success() {
            return Err(unexpected(&res));
        }
        let name = self.header_name();
        let value = if name == COOKIE {
            cookie_pairs(res.headers().get_all(SET_COOKIE).iter())
        } else {
            (res.headers().get(&name))
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned()
        };
        Ok(Seeded {
            name,
            value,
            set_cookie: res.headers().get_all(SET_COOKIE).iter().cloned().collect(),
        })
    }

    /// The header a request carries its session in: `Cookie`, or the layer's external key.
    fn header_name(&self) -> HeaderName {
        (self.layer.shared.external_key.clone()).unwrap_or(COOKIE)
    }

    /// One request through the layer, carrying `presented` in the session's header.
    async fn send(&self, op: Op, presented: Option<&str>) -> Result<Response<Bytes>, Halt> {
        let mut req = Request::new(());
        if let Some(value) = presented.filter(|v| !v.is_empty()) {
            let value = HeaderValue::from_str(value).map_err(|_| {
                Halt::Failed(Error::Cookie(CookieError::InvalidValue {
                    name: self.layer.shared.config.cookie().name.clone(),
                }))
            })?;
            req.headers_mut().insert(self.header_name(), value);
        }
        let service = self.layer.wrap(Handler(Arc::new(op)));
        hyper::service::Service::call(&service, req).await
    }
}

impl Seeded {
    /// The value of the `Cookie` header a request sends to be this session: `name=value` pairs
    /// joined by `; ` (in signed mode the cookie and its `.sig`; in cookie mode the payload,
    /// signed or sealed). Under
    /// [`SessionLayerBuilder::external_key`](crate::SessionLayerBuilder::external_key), the value
    /// of that header ([`Seeded::header`] names it).
    pub fn cookie_header(&self) -> &str {
        &self.value
    }

    /// The header to put on a request: `Cookie` (or the layer's external key header) with
    /// [`Seeded::cookie_header`].
    pub fn header(&self) -> (HeaderName, &str) {
        (self.name.clone(), &self.value)
    }

    /// The `Set-Cookie` headers the layer answered the seeding request with (for a test of the
    /// cookie's attributes).
    pub fn set_cookie(&self) -> &[HeaderValue] {
        &self.set_cookie
    }
}

impl std::fmt::Debug for Seeded {
    // The cookie is a credential: kept out of `Debug` like every session secret.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Seeded")
            .field("header", &self.name)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for Inspected {
    // Session data and the owner id stay out of `Debug`; the keys are app-chosen names.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inspected")
            .field("keys", &self.data.keys().collect::<Vec<_>>())
            .field("is_new", &self.is_new)
            .field("owned", &self.owner.is_some())
            .field("ended", &self.ended)
            .finish()
    }
}

/// What the fixture's request does.
enum Op {
    /// Inserts the pairs, saves, logs the owner in (with the device) if given, commits.
    Seed {
        data: Vec<(String, Value)>,
        owner: Option<(String, Option<String>)>,
    },
    /// Reads the session, then halts before the commit.
    Inspect,
    /// Destroys the session and commits.
    End,
}

/// The handler's way out of the layer before its commit: a failure, or an inspection's
/// result. (A service error skips the layer's commit.)
enum Halt {
    Failed(Error),
    Inspected(Inspected),
}

impl Halt {
    fn error(self) -> Error {
        match self {
            Halt::Failed(e) => e,
            Halt::Inspected(_) => Error::Store(StoreError::Backend(
                "the fixture's request halted unexpectedly".into(),
            )),
        }
    }
}

/// The service the fixture's requests go to, behind the app's layer.
struct Handler(Arc<Op>);

type Answer = Pin<Box<dyn Future<Output = Result<Response<Bytes>, Halt>> + Send>>;

impl hyper::service::Service<Request<()>> for Handler {
    type Response = Response<Bytes>;
    type Error = Halt;
    type Future = Answer;

    fn call(&self, req: Request<()>) -> Answer {
        let op = Arc::clone(&self.0);
        Box::pin(async move {
            let session = Session::from_request(&req).map_err(Halt::Failed)?;
            op.run(&session).await
        })
    }
}

impl Op {
    async fn run(&self, session: &Session) -> Result<Response<Bytes>, Halt> {
        let done = match self {
            Op::Seed { data, owner } => seed(session, data, owner.as_ref()).await,
            Op::End => {
                async {
                    session.destroy().await?;
                    session.commit().await
                }
                .await
            }
            Op::Inspect => {
                let seen = async {
                    Ok::<_, Error>(Inspected {
                        data: session.data().await?,
                        is_new: session.is_new().await?,
                        owner: session.owner().await?,
                        ended: session.ended().await?,
                    })
                }
                .await;
                return Err(seen.map_or_else(Halt::Failed, Halt::Inspected));
            }
        };
        done.map_err(Halt::Failed)?;
        Ok(Response::new(Bytes::new()))
    }
}

/// A seed's handler: the data, a forced save, the login if any, the commit.
async fn seed(
    session: &Session,
    data: &[(String, Value)],
    owner: Option<&(String, Option<String>)>,
) -> Result<(), Error> {
    for (key, value) in data {
        session.insert(key, value).await?;
    }
    session.save().await?;
    match owner {
        // `log_in` commits.
        Some((owner, device)) => session.log_in(owner, device.as_deref()).await,
        None => session.commit().await,
    }
}

/// The pairs as JSON, each value serialised as [`Session::insert`] would.
fn pairs<K: AsRef<str>, V: Serialize>(
    data: impl IntoIterator<Item = (K, V)>,
) -> Result<Vec<(String, Value)>, Error> {
    data.into_iter()
        .map(|(k, v)| {
            let key = k.as_ref().to_owned();
            match serde_json::to_value(v) {
                Ok(value) => Ok((key, value)),
                Err(_) => Err(Error::Session(SessionError::Unserializable { key })),
            }
        })
        .collect()
}

/// The `Cookie` header a browser sends after these `Set-Cookie` headers: their `name=value`
/// pairs, removals left out.
fn cookie_pairs<'a>(set_cookie: impl Iterator<Item = &'a HeaderValue>) -> String {
    set_cookie
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| v.split(';').next())
        .map(str::trim)
        .filter(|pair| {
            pair.split_once('=')
                .is_some_and(|(_, value)| !value.is_empty())
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// A response the fixture's request should not have had: the layer answered its error
/// response after the handler (the app's error hook may have shaped it).
fn unexpected(res: &Response<Bytes>) -> Error {
    Error::Store(StoreError::Backend(format!(
        "the session layer answered the fixture's request with {}",
        res.status()
    )))
}
