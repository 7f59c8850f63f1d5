//! [`AuthManagerLayer`]: the session layer with the backend beside it, so a handler can take
//! an [`AuthSession`].

use std::task::{Context, Poll};

use axum_core::extract::FromRequestParts;
use http::request::Parts;
use session_hyper::{Session, SessionLayer, SessionService};

use crate::backend::AuthnBackend;
use crate::session::AuthSession;

/// The session key a login stores the user under, unless
/// [`with_data_key`](AuthManagerLayerBuilder::with_data_key) says otherwise.
pub const DEFAULT_DATA_KEY: &str = "auth.user";

/// How a login describes the device from the request's headers.
pub type DeviceFn = fn(&http::HeaderMap) -> Option<String>;

/// The default device description: the request's `User-Agent` as sent (the session layer cuts
/// it to 256 bytes).
pub fn user_agent(headers: &http::HeaderMap) -> Option<String> {
    headers
        .get(http::header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// What the layer puts in each request for the extractor.
#[derive(Clone)]
struct Installed<Backend> {
    backend: Backend,
    data_key: &'static str,
    device: DeviceFn,
}

/// Builds an [`AuthManagerLayer`].
#[derive(Debug)]
pub struct AuthManagerLayerBuilder<Backend: AuthnBackend> {
    backend: Backend,
    session_layer: SessionLayer,
    data_key: &'static str,
    device: DeviceFn,
}

impl<Backend: AuthnBackend> AuthManagerLayerBuilder<Backend> {
    /// The layer for `backend` over `session_layer` (whose limit, if it has one, applies to
    /// every login: see
    /// [`max_sessions_per_owner`](session_hyper::SessionLayerBuilder::max_sessions_per_owner)).
    pub fn new(backend: Backend, session_layer: SessionLayer) -> Self {
        AuthManagerLayerBuilder {
            backend,
            session_layer,
            data_key: DEFAULT_DATA_KEY,
            device: user_agent,
        }
    }

    /// How a login describes the device it happens on, from the request's headers (what a
    /// listing of the user's sessions shows; default [`user_agent`]): e.g. "Firefox on Linux"
    /// from the `User-Agent`, or a device name a native app sends.
    pub fn with_device(mut self, device: DeviceFn) -> Self {
        self.device = device;
        self
    }

    /// The session key the user is stored under (default [`DEFAULT_DATA_KEY`]).
    pub fn with_data_key(mut self, data_key: &'static str) -> Self {
        self.data_key = data_key;
        self
    }

    /// The layer.
    pub fn build(self) -> AuthManagerLayer<Backend> {
        AuthManagerLayer {
            session_layer: self.session_layer,
            installed: Installed {
                backend: self.backend,
                data_key: self.data_key,
                device: self.device,
            },
        }
    }
}

/// The session layer with the auth backend: wrap the app's router in it
/// (`Router::layer(auth_layer)`), and handlers take an [`AuthSession`].
#[derive(Clone)]
pub struct AuthManagerLayer<Backend: AuthnBackend> {
    session_layer: SessionLayer,
    installed: Installed<Backend>,
}

impl<Backend: AuthnBackend> std::fmt::Debug for AuthManagerLayer<Backend> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthManagerLayer").finish_non_exhaustive()
    }
}

impl<S, Backend: AuthnBackend> tower_layer::Layer<S> for AuthManagerLayer<Backend> {
    type Service = SessionService<AuthManager<S, Backend>>;

    fn layer(&self, inner: S) -> Self::Service {
        self.session_layer.wrap(AuthManager {
            inner,
            installed: self.installed.clone(),
        })
    }
}

/// The service [`AuthManagerLayer`] wraps around the app (inside the session layer).
#[derive(Clone)]
pub struct AuthManager<S, Backend> {
    inner: S,
    installed: Installed<Backend>,
}

impl<S, Backend> std::fmt::Debug for AuthManager<S, Backend> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthManager").finish_non_exhaustive()
    }
}

impl<S, B, Backend> tower_service::Service<http::Request<B>> for AuthManager<S, Backend>
where
    S: tower_service::Service<http::Request<B>>,
    Backend: AuthnBackend + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: http::Request<B>) -> Self::Future {
        req.extensions_mut().insert(self.installed.clone());
        self.inner.call(req)
    }
}

/// Why an [`AuthSession`] could not be taken: the route is not behind [`AuthManagerLayer`].
#[derive(Debug, thiserror::Error)]
#[error("no auth session in this request: is the route wrapped in AuthManagerLayer?")]
pub struct MissingAuthLayer;

impl axum_core::response::IntoResponse for MissingAuthLayer {
    fn into_response(self) -> axum_core::response::Response {
        (http::StatusCode::INTERNAL_SERVER_ERROR, self.to_string()).into_response()
    }
}

impl<S: Send + Sync, Backend: AuthnBackend + 'static> FromRequestParts<S> for AuthSession<Backend> {
    type Rejection = MissingAuthLayer;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let installed = parts
            .extensions
            .get::<Installed<Backend>>()
            .cloned()
            .ok_or(MissingAuthLayer)?;
        let session = parts
            .extensions
            .get::<Session>()
            .cloned()
            .ok_or(MissingAuthLayer)?;
        let device = (installed.device)(&parts.headers);
        Ok(AuthSession::new(
            installed.backend,
            session,
            installed.data_key,
            device,
        ))
    }
}
