//! What every route shares: the largest body it reads, and a plain answer.

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Response, StatusCode};

/// Largest `PUT /session`, `PUT /session/owner`, `POST /flash` or form body accepted.
pub(crate) const MAX_BODY: usize = 64 * 1024;

/// An answer with `status` and `body` (plain text, or empty).
pub(crate) fn reply(status: StatusCode, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    r
}
