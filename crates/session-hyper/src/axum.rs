//! axum integration (feature `axum`): take the session as a handler argument and return
//! [`Error`] from a handler.
//!
//! ```
//! # #[cfg(feature = "memory")] {
//! use axum::{Router, routing::get};
//! use session_hyper::{Config, Error, MemoryStore, Session, SessionLayer};
//!
//! async fn views(session: Session) -> Result<String, Error> {
//!     let n: u64 = session.get("views").await?.unwrap_or(0) + 1;
//!     session.insert("views", n).await?;
//!     Ok(format!("{n} views"))
//! }
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let config = Config::builder().key(b"a 32-byte (or longer) secret key!".to_vec()).build()?;
//! let layer = SessionLayer::store(config, MemoryStore::new()).build()?;
//! let app: Router = Router::new().route("/", get(views)).layer(layer);
//! # let _ = app; Ok(()) }
//! # }
//! ```

use axum_core::extract::FromRequestParts;
use axum_core::response::{IntoResponse, Response};
use http::request::Parts;

use crate::{Error, Session};

/// The session of the request, put there by [`SessionLayer`](crate::SessionLayer). A route
/// that is not behind the layer answers 500 with a message that says so.
impl<S: Send + Sync> FromRequestParts<S> for Session {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Session>()
            .cloned()
            .ok_or(Error::Missing)
    }
}

/// [`Error::response`]: 503 with `Retry-After: 1` when the failure is likely to pass (the store
/// is down, slow or full), else 500, and a body that says what kind of failure it was, never
/// which session, key value or backend detail.
///
/// A store failure met while loading the session is answered by the layer itself (with its own
/// `Retry-After`, the layer's `retry_after_secs`, or its error hook) whatever the handler
/// returns; this response is what a handler's error becomes otherwise (e.g. from an explicit
/// [`Session::commit`]).
impl IntoResponse for Error {
    fn into_response(self) -> Response {
        self.response()
    }
}

/// The flash messages for this request ([`Session::messages`]: taken where the request is a
/// page load). A handler argument that renders them with
/// [`Messages::to_html`](crate::flash::Messages::to_html) or iterates them.
impl<S: Send + Sync> FromRequestParts<S> for crate::flash::Messages {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Session::from_request_parts(parts, state)
            .await?
            .messages()
            .await
    }
}

/// A CSRF token for the page being rendered ([`Session::csrf_token`]), as a handler argument:
/// put `token.0` in the form's `_csrf` field or the page's `<meta>` for scripts.
#[derive(Clone)]
pub struct CsrfToken(pub String);

impl std::fmt::Debug for CsrfToken {
    // A live token stays out of logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CsrfToken(<redacted>)")
    }
}

impl<S: Send + Sync> FromRequestParts<S> for CsrfToken {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Ok(CsrfToken(
            Session::from_request_parts(parts, state)
                .await?
                .csrf_token()
                .await?,
        ))
    }
}
