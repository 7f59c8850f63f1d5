//! What a site's pages and forms use beside the session's data: flash messages
//! (`POST /flash`, `GET /flash`) and, with `--csrf`, CSRF tokens (`GET /csrf`) and the check
//! every unsafe request passes before it is routed ([`csrf_gate`]).
//!
//! The demo serves hyper's `Incoming` body, which the library's `CsrfLayer` can't read and
//! put back, so the gate calls [`Session::check_csrf`] itself, reading a form's body only
//! where the rule needs its token.

use std::str::FromStr as _;

use bytes::Bytes;
use http_body_util::{BodyExt, Either, Full, Limited};
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::{Request, Response, StatusCode, body::Incoming};
use serde_json::Value;
use session_hyper::csrf::{CSRF_HEADER, Refusal, is_form, token_in_form};
use session_hyper::flash::Level;
use session_hyper::{Error, Session};

use crate::answer::{MAX_BODY, reply};

/// A request's body once the gate has looked at it: as it came, or the form it read.
pub(crate) type Body = Either<Incoming, Full<Bytes>>;

/// The body of a request that has not been read.
pub(crate) fn unread(req: Request<Incoming>) -> Request<Body> {
    req.map(Either::Left)
}

/// `--csrf`: applies the library's rule to `req` before it is routed, as its `CsrfLayer`
/// does. A safe method or `Sec-Fetch-Site: same-origin` passes and `cross-site` is refused
/// from the headers alone; otherwise the token is the `X-CSRF-Token` header or, where that is
/// absent, empty or wrong and the body is a form (`application/x-www-form-urlencoded`), its
/// `_csrf` field (the body is read, up to [`MAX_BODY`], and handed on). A refusal is the
/// answer: 403 (413 for a larger form, 400 for one that could not be read).
pub(crate) async fn csrf_gate(
    session: &Session,
    req: Request<Incoming>,
) -> Result<Request<Body>, Response<Full<Bytes>>> {
    let header = req
        .headers()
        .get(CSRF_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(|t| t.trim().to_owned());
    match session
        .check_csrf(req.method(), req.headers(), header.as_deref())
        .await
    {
        Ok(()) => return Ok(unread(req)),
        Err(Error::Csrf(Refusal::Missing | Refusal::Invalid)) if is_form(req.headers()) => {}
        Err(e) => return Err(e.response()),
    }
    let (parts, body) = req.into_parts();
    let bytes = match Limited::new(body, MAX_BODY).collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
            return Err(Error::Csrf(Refusal::FormTooLarge).response());
        }
        Err(_) => return Err(Error::Csrf(Refusal::Unreadable).response()),
    };
    let token = token_in_form(&bytes);
    let req = Request::from_parts(parts, Either::Right(Full::new(bytes)));
    match session
        .check_csrf(req.method(), req.headers(), token.as_deref())
        .await
    {
        Ok(()) => Ok(req),
        Err(e) => Err(e.response()),
    }
}

/// A JSON answer.
fn json(status: StatusCode, body: &Value) -> Response<Full<Bytes>> {
    let mut r = reply(status, body.to_string());
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

/// `POST /flash` with `{"level":"info","text":"..."}`: adds the message (204); 400 for a body
/// that is not such an object or names an unknown level, 413 past [`MAX_BODY`].
pub(crate) async fn add(
    session: &Session,
    req: Request<Body>,
) -> Result<Response<Full<Bytes>>, Error> {
    let body = match Limited::new(req.into_body(), MAX_BODY).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => {
            let too_large = format!("body over {MAX_BODY} bytes");
            return Ok(reply(StatusCode::PAYLOAD_TOO_LARGE, too_large));
        }
    };
    let expected = r#"expected {"level":"debug|info|success|warning|error","text":"..."}"#;
    let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let (Some(level), Some(text)) = (
        v.get("level").and_then(Value::as_str),
        v.get("text").and_then(Value::as_str),
    ) else {
        return Ok(reply(StatusCode::BAD_REQUEST, expected));
    };
    let level = match Level::from_str(level) {
        Ok(l) => l,
        Err(e) => return Ok(reply(StatusCode::BAD_REQUEST, e.to_string())),
    };
    session.flash(level, text).await?;
    Ok(reply(StatusCode::NO_CONTENT, ""))
}

/// `GET /flash`: the messages this request is shown, a JSON array of `{"level","text"}`,
/// taken from the session only where the request is a page load (the library's rule).
pub(crate) async fn show(session: &Session) -> Result<Response<Full<Bytes>>, Error> {
    let messages = session.messages().await?;
    let list = serde_json::to_value(&messages).unwrap_or(Value::Array(Vec::new()));
    Ok(json(StatusCode::OK, &list))
}

/// `GET /csrf`: `{"token":"..."}` with `--csrf` (masked afresh; the layer marks the answer
/// `Cache-Control: private, no-store`); 404 without it.
pub(crate) async fn token(session: &Session, on: bool) -> Result<Response<Full<Bytes>>, Error> {
    if !on {
        return Ok(reply(
            StatusCode::NOT_FOUND,
            "CSRF tokens are off: start the demo with --csrf",
        ));
    }
    let token = session.csrf_token().await?;
    Ok(json(StatusCode::OK, &serde_json::json!({ "token": token })))
}
