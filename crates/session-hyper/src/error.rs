//! Errors a handler or the middleware can meet.

use bytes::Bytes;
use http::header::{CONTENT_TYPE, RETRY_AFTER};
use http::{HeaderValue, Response, StatusCode};
use session_cookie::{CodecError, CookieError};
use session_core::SessionError;
use session_core::store::StoreError;

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
    /// Sessions can't be bound to owners here: cookie mode, the koa-compat preset, or a store
    /// that keeps no owner index (the Redis store in koa's format).
    #[error(
        "this session layer keeps no owner index (cookie mode, koa-compat, or a store without one)"
    )]
    NoOwnerIndex,
    /// A login over the owner's session limit, with the policy that refuses it
    /// ([`OverLimit::Refuse`](session_core::OverLimit::Refuse)): nothing was written, and the
    /// browser keeps the session it had. Answers 409 by default.
    #[error("this account has as many sessions as it may have ({max}); sign out of one first")]
    TooManySessions {
        /// The limit.
        max: usize,
    },
    /// A drain can't run: another drain of the same source is running (they would undo each
    /// other's work), or the layer's store can't hold drained sessions.
    #[error("the drain can't run: {0}")]
    Drain(&'static str),
    /// An unsafe request the CSRF rule refused (403; 413 for a form too large to check, 400 for
    /// one that could not be read). See [`crate::csrf`].
    #[error(transparent)]
    Csrf(#[from] Refusal),
    /// A CSRF token was asked of a layer without signing keys.
    #[error("CSRF tokens need a signing key")]
    CsrfWithoutKeys,
}

impl Error {
    /// Whether the failure is likely to pass (store down, slow or full): the default response
    /// is then 503 with `Retry-After`, otherwise 500.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Store(e) if e.is_transient())
    }

    /// The status a failure answers with: 409 for a login over the session limit, 503 when it
    /// is likely to pass ([`Self::is_transient`]), else 500.
    pub fn status(&self) -> StatusCode {
        if matches!(self, Self::TooManySessions { .. }) {
            StatusCode::CONFLICT
        } else if let Self::Csrf(r) = self {
            match r {
                Refusal::FormTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
                Refusal::Unreadable => StatusCode::BAD_REQUEST,
                _ => StatusCode::FORBIDDEN,
            }
        } else if self.is_transient() {
            StatusCode::SERVICE_UNAVAILABLE
        } else {
            StatusCode::INTERNAL_SERVER_ERROR
        }
    }

    /// A response for this failure, for a handler that returns it: [`Self::status`], with
    /// `Retry-After: 1` on a 503, and a plain-text body that says what kind of failure it was,
    /// never which session, key value or backend detail. (With the `axum` feature this is the
    /// error's `IntoResponse`.)
    pub fn response<B: From<Bytes>>(&self) -> Response<B> {
        let body: String = match self {
            e if e.is_transient() => "session store unavailable; retry later".into(),
            // Backend details (a Redis error kind, a decoding failure) stay in the logs.
            Self::Store(_) => "session store error".into(),
            // These name a key, a type, a cookie or the missing layer: no data, no secret.
            other => other.to_string(),
        };
        let mut res = Response::new(B::from(Bytes::from(body)));
        *res.status_mut() = self.status();
        let headers = res.headers_mut();
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        if res.status() == StatusCode::SERVICE_UNAVAILABLE {
            res.headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from_static("1"));
        }
        res
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

/// Why an unsafe request was refused (the [`Error::Csrf`] a 403 carries).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Refusal {
    /// `Sec-Fetch-Site: cross-site`: another site's page sent it.
    #[error("cross-site request refused")]
    CrossSite,
    /// No token in the header or the form.
    #[error("missing CSRF token")]
    Missing,
    /// A token that is not one of this session's (another session's, one from before a login,
    /// a forged mask, garbage).
    #[error("invalid CSRF token")]
    Invalid,
    /// A form too large to look for the token in (413).
    #[error("form too large to check")]
    FormTooLarge,
    /// The form's body could not be read (400).
    #[error("form body unreadable")]
    Unreadable,
}
