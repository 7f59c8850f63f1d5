//! Errors a handler or the middleware can meet.

use session_cookie::{CodecError, CookieError};
use session_core::{SessionError, StoreError};

/// A session failure. `Display` never includes ids, cookie values, keys or data.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The store failed or timed out.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The session would not fit in its cookie (or has characters a cookie can't carry).
    #[error(transparent)]
    Cookie(#[from] CookieError),
    /// The cookie-mode codec failed.
    #[error(transparent)]
    Codec(#[from] CodecError),
    /// A misuse of the session API (reserved key, unserialisable value).
    #[error(transparent)]
    Session(#[from] SessionError),
    /// The OS random source failed while drawing a new id.
    #[error("could not draw a session id: {0}")]
    Random(getrandom::Error),
    /// Every id drawn collided with an existing record (a broken id generator).
    #[error("could not create a session: {0} id collisions in a row")]
    Collisions(u32),
    /// No `Session` in the request's extensions: the route is not behind the session layer.
    #[error("no session in this request: is the route wrapped in SessionLayer?")]
    Missing,
}

impl Error {
    /// Whether the failure is likely to pass (store down, slow or full): the default response
    /// is then 503 with `Retry-After`, otherwise 500.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Store(e) if e.is_transient())
    }

    /// Whether the session outgrew a limit: the store's record limit
    /// ([`StoreError::TooLarge`]) or a cookie's 4096 bytes. By default this is a 500 (the
    /// response is replaced; nothing was written); an app that stores what clients send can
    /// answer 413 from [`on_error`](crate::SessionLayerBuilder::on_error), or call
    /// [`Session::commit`](crate::Session::commit) itself to handle it in the handler.
    pub fn is_too_large(&self) -> bool {
        matches!(
            self,
            Self::Store(StoreError::TooLarge { .. }) | Self::Cookie(CookieError::TooLarge { .. })
        )
    }
}
