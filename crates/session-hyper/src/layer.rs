//! The middleware: configuration, the tower layer and service, and the hyper service.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::header::CACHE_CONTROL;
use http::{HeaderName, HeaderValue, Request, Response};
use session_cookie::{Codec, EncryptedCodec, KoaCodec, SessionCookies};
use session_core::store::{DynStore, Source, Store};
use session_core::{Config, ConfigError, CookieMode, SessionLimit};

use crate::Error;

mod migrating;
use crate::session::{Presented, Session};
use crate::shared::{Backend, ErrorHook, Shared};

/// The session middleware, as a [`tower_layer::Layer`]; wrap a hyper service with
/// [`SessionLayer::wrap`] or hand the layer to axum's `Router::layer`.
#[derive(Clone)]
pub struct SessionLayer {
    pub(crate) shared: Arc<Shared>,
}

impl std::fmt::Debug for SessionLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionLayer")
            .field("config", &self.shared.config)
            .finish_non_exhaustive()
    }
}

/// A configuration the middleware can't run with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LayerBuildError {
    /// The session configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// An external key needs a store (in cookie mode there is no id to carry).
    #[error("an external key header needs store mode")]
    ExternalKeyWithoutStore,
    /// `Retry-After` must be a valid header value.
    #[error("invalid Retry-After value")]
    RetryAfter,
    /// [`CookieMode::Encrypted`] is for cookie mode: in store mode the cookie carries only a
    /// signed id, and the data never leaves the server.
    #[error("encrypted cookies are a cookie-mode setting; store mode keeps the data on the server")]
    EncryptedNeedsCookieMode,
    /// A custom codec that does not [authenticate](Codec::authenticates) its values with
    /// [`CookieMode::Encrypted`]: its cookies would be neither encrypted nor signed.
    #[error(
        "encrypted cookie mode needs a codec that authenticates its values; this one would go unsigned"
    )]
    CodecWithEncryption,
    /// A custom codec that [authenticates](Codec::authenticates) its values, without
    /// [`CookieMode::Encrypted`]: dropping the `.sig` cookie is the configuration's decision
    /// (set the mode), never a codec's alone.
    #[error("a codec that authenticates its own values needs CookieMode::Encrypted")]
    AuthenticatingCodec,
    /// [`SessionLayerBuilder::migrate_from`] moves sessions into a store: cookie mode keeps
    /// none.
    #[error("migrating from another store needs store mode")]
    MigrateNeedsStoreMode,
    /// A [`Source`] whose cookie has this layer's cookie name: the two would overwrite each
    /// other. (Our own stores share the cookie: use
    /// [`migrate_from`](SessionLayerBuilder::migrate_from) for them.)
    #[error("the source's cookie name {0:?} is this layer's cookie name")]
    MigrateCookieClash(String),
    /// Both [`migrate_from`](SessionLayerBuilder::migrate_from) and
    /// [`migrate_from_source`](SessionLayerBuilder::migrate_from_source): one migration at a
    /// time.
    #[error("one migration at a time: migrate_from and migrate_from_source were both given")]
    MigrateTwice,
    /// [`migrate_from`](SessionLayerBuilder::migrate_from) a store that keeps an owner index
    /// into one that keeps none (or under the koa-compat preset): the sessions bound to an
    /// owner there could neither move nor end here.
    #[error(
        "the old store keeps an owner index and this layer keeps none: bound sessions could not move"
    )]
    MigrateLosesOwners,
    /// [`migrate_from_source`](SessionLayerBuilder::migrate_from_source) with an external key
    /// header: a move would log in on an ambient cookie, which header mode is chosen to avoid.
    #[error(
        "moving sessions in from another library needs cookie mode, not an external key header"
    )]
    MigrateWithExternalKey,
    /// A source's cookie name, path or domain that a `Set-Cookie` can't carry.
    #[error("the source's cookie {0} can't be written in a Set-Cookie header")]
    MigrateCookie(&'static str),
    /// [`SessionLayerBuilder::migrate_from_cookie_mode`] with a layer that is not in cookie
    /// mode (from a store, use [`SessionLayerBuilder::migrate_from`]).
    #[error(
        "migrating from cookie mode needs the old cookie-mode layer; from a store, use migrate_from"
    )]
    MigrateNotCookieMode,
    /// [`SessionLayerBuilder::max_sessions_per_owner`] where no owner index is kept (cookie
    /// mode, the koa-compat preset, a store without one) or where the store's index can't
    /// decide admissions: the limit could not be kept.
    #[error("a session limit needs a store that keeps an owner index and can enforce it")]
    LimitWithoutIndex,
    /// [`SessionLayerBuilder::migrate_from_cookie_mode`] with an unsigned cookie-mode layer:
    /// anyone can write such a cookie, so none can be moved as a user's session.
    #[error("an unsigned cookie can't be moved into a store: anyone could have written it")]
    MigrateUnsignedCookies,
    /// [`SessionLayer::csrf`] on a layer without signing keys.
    #[error("CSRF tokens need a signing key")]
    CsrfWithoutKeys,
}

/// Builds a [`SessionLayer`].
pub struct SessionLayerBuilder {
    config: Config,
    backend: Backend,
    custom_codec: bool,
    trust_proxy: bool,
    external_key: Option<HeaderName>,
    save_on_server_error: bool,
    no_store: bool,
    store_timeout: Duration,
    retry_after_secs: u32,
    on_error: Option<Arc<ErrorHook>>,
    migrate_from: Option<Arc<dyn DynStore>>,
    source: Option<Arc<dyn Source>>,
    from_cookies: Option<SessionLayer>,
    limit: Option<SessionLimit>,
    scripted_takes_flash: bool,
}

impl SessionLayer {
    /// Store mode with any [`Store`] (memory, Redis, your own). To choose a store at run time,
    /// pass an `Arc<dyn DynStore>` (it is a `Store` too).
    ///
    /// [`DynStore`]: session_core::store::DynStore
    pub fn store<S: Store>(config: Config, store: S) -> SessionLayerBuilder {
        SessionLayerBuilder::new(config, Backend::Store(Arc::new(store)))
    }

    /// Cookie mode: the session is the cookie. By default koa's signed base64 JSON (readable by
    /// whoever sees the cookie, unforgeable); with [`CookieMode::Encrypted`] in the
    /// configuration, encrypted and authenticated ([`EncryptedCodec`]). No server state, so no
    /// revocation: keep max-age short and use the `valid` hook (see `session-core`).
    pub fn cookie(config: Config) -> SessionLayerBuilder {
        SessionLayerBuilder::new(config, Backend::Cookie(Arc::new(KoaCodec)))
    }

    /// Listing and revoking users' sessions outside a request (admin tools, jobs); `None` when
    /// this layer keeps no owner index (cookie mode, koa-compat, a store without one).
    pub fn owners(&self) -> Option<crate::Owners> {
        crate::Owners::new(Arc::clone(&self.shared))
    }

    /// The CSRF check ([`CsrfLayer`](crate::CsrfLayer)) for this layer's sessions, to put
    /// inside it. Fails without signing keys ([`LayerBuildError::CsrfWithoutKeys`]): a token
    /// needs a secret only the server knows.
    pub fn csrf(&self) -> Result<crate::CsrfLayer, LayerBuildError> {
        match self.shared.csrf {
            Some(_) => {
                (self.shared.csrf_used).store(true, std::sync::atomic::Ordering::Relaxed);
                Ok(crate::CsrfLayer::new())
            }
            None => Err(LayerBuildError::CsrfWithoutKeys),
        }
    }

    /// Wraps a hyper 1.x service.
    pub fn wrap<S>(&self, inner: S) -> SessionService<S> {
        SessionService {
            inner,
            shared: Arc::clone(&self.shared),
        }
    }
}

impl SessionLayerBuilder {
    fn new(config: Config, backend: Backend) -> Self {
        Self {
            config,
            backend,
            custom_codec: false,
            trust_proxy: false,
            external_key: None,
            save_on_server_error: false,
            no_store: false,
            store_timeout: Duration::from_secs(2),
            retry_after_secs: 1,
            on_error: None,
            migrate_from: None,
            source: None,
            from_cookies: None,
            limit: None,
            scripted_takes_flash: false,
        }
    }

    /// Cookie mode with your own payload encoding (koa's `encode`/`decode`). Under
    /// [`CookieMode::Signed`] the codec must not [authenticate](Codec::authenticates) its
    /// values (they are signed in a `.sig` cookie); under [`CookieMode::Encrypted`] it must,
    /// and replaces the built-in [`EncryptedCodec`]. A mismatch fails at build.
    pub fn codec(mut self, codec: impl Codec) -> Self {
        if let Backend::Cookie(_) = self.backend {
            self.backend = Backend::Cookie(Arc::new(codec));
            self.custom_codec = true;
        }
        self
    }

    /// Trusts `X-Forwarded-Proto` from the proxy in front (only turn on behind a proxy that
    /// sets it), so `Secure` is sent when the client used https.
    pub fn trust_proxy(mut self, on: bool) -> Self {
        self.trust_proxy = on;
        self
    }

    /// koa's `externalKey`: API clients carry the session id in this header instead of a
    /// cookie; responses that create or change the id carry it back in the same header.
    pub fn external_key(mut self, header: HeaderName) -> Self {
        self.external_key = Some(header);
        self
    }

    /// Also commit when the handler answered 5xx (off by default: a failed request leaves the
    /// session as it was).
    pub fn save_on_server_error(mut self, on: bool) -> Self {
        self.save_on_server_error = on;
        self
    }

    /// Adds `Cache-Control: no-store` to every response that sets the session cookie, so no
    /// cache replays it to another user.
    pub fn cache_control_no_store(mut self, on: bool) -> Self {
        self.no_store = on;
        self
    }

    /// Upper bound on each store call (default 2 s), on top of the store's own timeouts.
    pub fn store_timeout(mut self, timeout: Duration) -> Self {
        self.store_timeout = timeout;
        self
    }

    /// Limits the sessions one owner (user) may have at once: a login (a session bound to an
    /// owner, with [`Session::log_in`] or [`Session::set_owner`]) past the limit is refused
    /// ([`Error::TooManySessions`], 409) or ends the owner's session bound earliest, by the
    /// limit's [`OverLimit`](session_core::OverLimit) policy. A request can set another limit
    /// for its own login ([`Session::limit_sessions`]: a per-user override). The decision is
    /// made atomically where the owner index is written, however many logins race; see the
    /// guide's chapter on logging users in.
    ///
    /// [`build`](Self::build) fails with [`LayerBuildError::LimitWithoutIndex`] where no owner
    /// index is kept (cookie mode, koa-compat, a store without one).
    pub fn max_sessions_per_owner(mut self, limit: SessionLimit) -> Self {
        self.limit = Some(limit);
        self
    }

    /// Whether an XHR or htmx request (`X-Requested-With`, `HX-Request`) takes the flash
    /// messages [`Session::messages`] shows it, as a page load does (off by default: such a
    /// request sees them and leaves them for the page). Turn it on where scripts render the
    /// messages themselves.
    pub fn flash_taken_by_scripts(mut self, on: bool) -> Self {
        self.scripted_takes_flash = on;
        self
    }

    /// `Retry-After` seconds of the default 503 (default 1).
    pub fn retry_after_secs(mut self, secs: u32) -> Self {
        self.retry_after_secs = secs;
        self
    }

    /// Builds the response for a session failure (store down, cookie too large, a request the
    /// [`CsrfLayer`](crate::CsrfLayer) refused, ...) instead
    /// of the default 503 with `Retry-After` (transient failures) or 500.
    pub fn on_error(
        mut self,
        hook: impl Fn(&Error) -> Response<Bytes> + Send + Sync + 'static,
    ) -> Self {
        self.on_error = Some(Arc::new(hook));
        self
    }

    /// Builds the layer.
    pub fn build(mut self) -> Result<SessionLayer, LayerBuildError> {
        let cookie_source = self.check_migration()?;
        crate::measured::watch_stores(
            &mut self.backend,
            &mut self.migrate_from,
            &self.config,
            self.store_timeout,
        );
        let store_source = self.migrate_from.as_ref().map(|old| {
            let c = self.config.cookie();
            let cookie = session_core::store::SourceCookie {
                name: c.name.clone(),
                path: c.path.clone(),
                domain: c.domain.clone(),
            };
            let source = crate::from_store::StoreSource::new(Arc::clone(old), cookie);
            Arc::new(source) as Arc<dyn Source>
        });
        if self.external_key.is_some() && matches!(self.backend, Backend::Cookie(_)) {
            return Err(LayerBuildError::ExternalKeyWithoutStore);
        }
        let encrypted = self.config.cookie_mode() == CookieMode::Encrypted;
        match &self.backend {
            Backend::Store(_) if encrypted => {
                return Err(LayerBuildError::EncryptedNeedsCookieMode);
            }
            Backend::Store(_) => {}
            // A codec that authenticates its own values goes without `.sig`: only in the mode
            // that says so, never by a codec's say-so alone.
            Backend::Cookie(codec) if self.custom_codec => {
                if codec.authenticates() != encrypted {
                    return Err(if encrypted {
                        LayerBuildError::CodecWithEncryption
                    } else {
                        LayerBuildError::AuthenticatingCodec
                    });
                }
            }
            Backend::Cookie(_) if encrypted => {
                let codec = EncryptedCodec::from_config(&self.config)?;
                self.backend = Backend::Cookie(Arc::new(codec));
            }
            Backend::Cookie(_) => {}
        }
        let cookies = match &self.backend {
            // The value authenticates itself: one cookie, no `.sig`.
            Backend::Cookie(codec) if codec.authenticates() => {
                SessionCookies::new(self.config.cookie().clone(), None)
            }
            _ => SessionCookies::from_config(&self.config)?,
        };
        let retry_after = HeaderValue::from_str(&self.retry_after_secs.to_string())
            .map_err(|_| LayerBuildError::RetryAfter)?;
        if self.limit.is_some() {
            let admits = match &self.backend {
                Backend::Store(store) if !self.config.koa_compat() => {
                    store.owner_index_dyn().is_some_and(|i| i.admits())
                }
                _ => false,
            };
            if !admits {
                return Err(LayerBuildError::LimitWithoutIndex);
            }
        }
        let csrf = session_cookie::csrf::CsrfKeys::from_config(&self.config).ok();
        Ok(SessionLayer {
            shared: Arc::new(Shared {
                config: self.config,
                cookies,
                backend: self.backend,
                trust_proxy: self.trust_proxy,
                external_key: self.external_key,
                save_on_server_error: self.save_on_server_error,
                no_store: self.no_store,
                store_timeout: self.store_timeout,
                retry_after,
                on_error: self.on_error,
                migrate_from: self.migrate_from,
                source: self.source,
                cookie_source,
                store_source,
                limit: self.limit,
                scripted_takes_flash: self.scripted_takes_flash,
                csrf,
                csrf_used: std::sync::atomic::AtomicBool::new(false),
            }),
        })
    }
}

impl<S> tower_layer::Layer<S> for SessionLayer {
    type Service = SessionService<S>;
    fn layer(&self, inner: S) -> SessionService<S> {
        self.wrap(inner)
    }
}

/// A service wrapped by the session middleware; a tower `Service` and a hyper `Service`.
#[derive(Clone)]
pub struct SessionService<S> {
    inner: S,
    shared: Arc<Shared>,
}

impl<S> std::fmt::Debug for SessionService<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionService").finish_non_exhaustive()
    }
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// After the handler: commit, then put the cookies (or the error response) on the response.
async fn finish<B: From<Bytes>>(
    shared: &Shared,
    session: Session,
    clear_sig: bool,
    mut res: Response<B>,
) -> Response<B> {
    let failed = session.lock().failed.take();
    if let Some(e) = failed {
        crate::moved::release(&session).await;
        return shared.error_response(&e);
    }
    let failed_page = res.status().is_server_error();
    let skip = failed_page && !shared.save_on_server_error;
    if failed_page && !skip {
        session.restore_flash();
    }
    if !skip {
        if session.needs_commit_load()
            && let Err(e) = session.ensure_loaded().await
        {
            return shared.error_response(&e);
        }
        if session.is_loaded()
            && let Err(e) = crate::commit::commit(&session).await
        {
            if let Some(removal) = crate::moved::too_large(&session, &e).await {
                let headers = res.headers_mut();
                for v in removal {
                    headers.append(http::header::SET_COOKIE, v);
                }
                return res;
            }
            crate::moved::release(&session).await;
            return shared.error_response(&e);
        }
    }
    let old_removal = match crate::moved::finish(&session, !skip).await {
        Ok(removal) => removal,
        Err(e) => return shared.error_response(&e),
    };
    let pending = session.lock().pending.take();
    let nonce = session.nonce_cookie(!skip);
    let personal = session.is_personal_page();
    let headers = res.headers_mut();
    if personal {
        // A token or a message belongs to one visitor: no shared cache may keep the page.
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("private, no-store"));
    }
    let mut cookie_bytes = 0;
    if let Some(v) = nonce.and_then(|v| HeaderValue::from_str(&v).ok()) {
        cookie_bytes += v.len();
        headers.append(http::header::SET_COOKIE, v);
        if shared.no_store {
            headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        }
    }
    for v in old_removal {
        // Where the old cookie is ours (the same name, path and domain) and this response sets
        // ours, the new value replaces it: no removal beside it.
        if !migrating::replaced_by_ours(shared, &v, pending.as_ref()) {
            headers.append(http::header::SET_COOKIE, v);
        }
    }
    match pending {
        Some(list) => {
            let mut cookie_set = false;
            for (name, value) in list {
                if name == http::header::SET_COOKIE {
                    cookie_set = true;
                    cookie_bytes += value.len();
                }
                headers.append(name, value);
            }
            if cookie_set && shared.no_store {
                headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
            }
        }
        None if clear_sig => {
            // `Secure` as the cookie itself gets it (a `__Host-` name, `SameSite=None`,
            // `SecurePolicy::Always`): a browser drops a removal it would not accept as a
            // cookie.
            let secure = shared.config.cookie().secure_for(session.0.secure);
            let removal = shared.cookies.sig_removal(secure);
            if let Ok(v) = HeaderValue::from_str(&removal) {
                headers.append(http::header::SET_COOKIE, v);
            }
        }
        None => {}
    }
    if cookie_bytes > 0 {
        session_core::telemetry::set_cookie_bytes(cookie_bytes);
    }
    res
}

impl Session {
    /// A cookie signed with an older key must be re-signed even if the handler never touched
    /// the session; that needs the session's expiry, so it is loaded (once, per rotation). A
    /// codec that authenticates its own values tells the key only once it opens one: its
    /// payloads are opened here (no I/O, no hook, no event) and the session is loaded only when
    /// one opened with an older key, exactly as a signature would have told. Any other
    /// untouched request commits nothing, in every mode.
    fn needs_commit_load(&self) -> bool {
        if self.is_loaded() {
            return false;
        }
        let inner = &self.0;
        match (&inner.incoming, &inner.shared.backend) {
            (Presented::Payloads(payloads), Backend::Cookie(codec)) if codec.authenticates() => {
                let max_age = inner.shared.config.max_age();
                payloads.iter().any(|c| {
                    c.resign
                        || codec
                            .decode_with_key(&c.value, max_age)
                            .is_some_and(|d| d.key != session_cookie::KeyMatch::Newest)
                })
            }
            // An old library's cookie moves (or is removed) whether or not the handler looked.
            _ if inner.old.is_some() => true,
            (incoming, _) => incoming.needs_resign(),
        }
    }
}

impl<S, ReqBody, ResBody> tower_service::Service<Request<ReqBody>> for SessionService<S>
where
    S: tower_service::Service<Request<ReqBody>, Response = Response<ResBody>>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    ReqBody: Send + 'static,
    ResBody: From<Bytes> + Send + 'static,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Response<ResBody>, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<ReqBody>) -> Self::Future {
        // The standard tower dance: call the instance that was polled ready.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let shared = Arc::clone(&self.shared);
        Box::pin(async move {
            let (session, clear_sig) = crate::request::attach(&shared, &mut req);
            let res = inner.call(req).await?;
            Ok(finish(&shared, session, clear_sig, res).await)
        })
    }
}

impl<S, ReqBody, ResBody> hyper::service::Service<Request<ReqBody>> for SessionService<S>
where
    S: hyper::service::Service<Request<ReqBody>, Response = Response<ResBody>> + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    ReqBody: Send + 'static,
    ResBody: From<Bytes> + Send + 'static,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Response<ResBody>, S::Error>>;

    fn call(&self, mut req: Request<ReqBody>) -> Self::Future {
        let shared = Arc::clone(&self.shared);
        let (session, clear_sig) = crate::request::attach(&shared, &mut req);
        let fut = self.inner.call(req);
        Box::pin(async move {
            let res = fut.await?;
            Ok(finish(&shared, session, clear_sig, res).await)
        })
    }
}
