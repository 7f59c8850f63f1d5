//! CSRF protection: tokens of the synchronizer pattern ([`Session::csrf_token`]), and one rule
//! for unsafe requests, applied by [`CsrfLayer`] or by a handler
//! ([`Session::check_csrf`]).
//!
//! **The rule.** A request whose method is not `GET`, `HEAD` or `OPTIONS` passes when its
//! `Sec-Fetch-Site` is `same-origin` (the browser says the page that sent it is ours), or when
//! it carries a valid token and its `Sec-Fetch-Site` is absent (an older browser, a plain
//! client), `same-site` or `none`. A `cross-site` request is refused even with a token. A
//! refusal is 403 ([`Error::Csrf`]). The token is read from the `X-CSRF-Token` header or, in a
//! form (`application/x-www-form-urlencoded`), from the `_csrf` field.
//!
//! **The token.** A request whose session lives in a store gets tokens bound to the session's
//! id: nothing is written for them, so concurrent pages and posts never race over a secret, and
//! the login's `regenerate()` (a new id) makes every older token fail. A visitor without a
//! stored session gets tokens bound to a random nonce in a cookie of its own (the session
//! cookie's name with `.csrf`), so an anonymous visitor costs no store record; a request that
//! creates the session and asks for a token commits it first, so the token is bound to its id.
//! In cookie mode every token is bound to the nonce, which `regenerate()` and `destroy()`
//! replace. Every response's token is masked afresh (see `session_cookie::csrf`).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::header::{CONTENT_TYPE, HeaderMap};
use http::{Method, Request, Response};
use http_body_util::BodyExt as _;
use session_cookie::csrf::{Binding, NONCE_LEN};
use session_core::driver::{SessionDriver, SessionId};

pub use crate::error::Refusal;
use crate::Error;
use crate::session::Session;
use crate::shared::Backend;

/// The header a script sends the token in.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// The form field a page's form sends the token in.
pub const CSRF_FIELD: &str = "_csrf";

/// The largest form body [`CsrfLayer`] reads to find the token, by default (256 KiB).
pub const DEFAULT_MAX_FORM_BYTES: usize = 256 * 1024;

/// What the headers alone decide.
#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    Pass,
    Refuse(Refusal),
    NeedsToken,
}

/// The rule, from the method and `Sec-Fetch-Site` alone.
fn verdict(method: &Method, headers: &HeaderMap) -> Verdict {
    if matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) {
        return Verdict::Pass;
    }
    let mut sites = headers.get_all("sec-fetch-site").iter();
    match (sites.next(), sites.next()) {
        (Some(v), None) if v.as_bytes().eq_ignore_ascii_case(b"same-origin") => Verdict::Pass,
        (Some(v), None) if v.as_bytes().eq_ignore_ascii_case(b"cross-site") => {
            Verdict::Refuse(Refusal::CrossSite)
        }
        // A repeated header is nothing a browser sends: trusted for nothing.
        (Some(_), Some(_))
            if headers
                .get_all("sec-fetch-site")
                .iter()
                .any(|v| v.as_bytes().eq_ignore_ascii_case(b"cross-site")) =>
        {
            Verdict::Refuse(Refusal::CrossSite)
        }
        _ => Verdict::NeedsToken,
    }
}

impl Session {
    /// A CSRF token for this visitor's pages and scripts, masked afresh on every call (see the
    /// [module](crate::csrf) for what it is bound to). In store mode, a request that creates
    /// the session (it holds data for the first time, or was regenerated) commits it first,
    /// so the token is bound to its new id.
    pub async fn csrf_token(&self) -> Result<String, Error> {
        let keys = self.0.shared.csrf.as_ref().ok_or(Error::CsrfWithoutKeys)?;
        let minted = match self.live_id(true).await? {
            Some(id) => keys.mint(Binding::Session(id.as_str().as_bytes())),
            None => keys.mint(Binding::Nonce(&self.nonce_for_minting())),
        };
        minted.map_err(Error::Random)
    }

    /// Whether `token` is one of this visitor's tokens (bound to its stored session when it
    /// has one, else to its nonce).
    pub async fn csrf_token_is_valid(&self, token: &str) -> Result<bool, Error> {
        let keys = self.0.shared.csrf.as_ref().ok_or(Error::CsrfWithoutKeys)?;
        Ok(match self.live_id(false).await? {
            Some(id) => keys.verify(token, Binding::Session(id.as_str().as_bytes())),
            None => self
                .0
                .page
                .nonces
                .iter()
                .any(|n| keys.verify(token, Binding::Nonce(n))),
        })
    }

    /// Applies the rule of the [module](crate::csrf) to a request whose token (from a header
    /// or a form field) is `token`: `Ok` when it may go on, [`Error::Csrf`] (403) when not.
    /// [`CsrfLayer`] calls it for every request; call it yourself where a body the layer can't
    /// read (a plain hyper body) carries the token.
    pub async fn check_csrf(
        &self,
        method: &Method,
        headers: &HeaderMap,
        token: Option<&str>,
    ) -> Result<(), Error> {
        match verdict(method, headers) {
            Verdict::Pass => Ok(()),
            Verdict::Refuse(r) => Err(Error::Csrf(r)),
            Verdict::NeedsToken => match token {
                None => Err(Error::Csrf(Refusal::Missing)),
                Some(t) if self.csrf_token_is_valid(t).await? => Ok(()),
                Some(_) => Err(Error::Csrf(Refusal::Invalid)),
            },
        }
    }

    /// The id of the request's stored session, when it has a live one. With `commit`, a
    /// session about to be created (new or regenerated, holding data) is committed first.
    async fn live_id(&self, commit: bool) -> Result<Option<SessionId>, Error> {
        if matches!(self.0.shared.backend, Backend::Cookie(_)) {
            return Ok(None);
        }
        let look = |s: &mut session_core::SessionState| {
            let id = SessionDriver::id(s).filter(|_| !s.is_new()).cloned();
            (id, s.is_populated() && !s.is_stale())
        };
        let (id, populated) = self.with(look).await?;
        if id.is_some() || !commit || !populated {
            return Ok(id);
        }
        crate::commit::commit(self).await?;
        Ok(self.with(look).await?.0)
    }

    /// The nonce a token minted now is bound to: the one the request brought, unless the
    /// session was regenerated or destroyed meanwhile (then a new one, as when none came).
    fn nonce_for_minting(&self) -> [u8; NONCE_LEN] {
        let mut st = self.lock();
        if let Some(n) = st.page.new_nonce {
            return n;
        }
        let renewed = st.session.as_ref().is_some_and(|s| s.identity_renewed());
        if !renewed && let Some(n) = self.0.page.nonces.first() {
            return *n;
        }
        let mut n = [0u8; NONCE_LEN];
        // A failed random source leaves an all-zero nonce that is never set as a cookie:
        // tokens bound to it verify against nothing the client holds.
        if getrandom::fill(&mut n).is_ok() {
            st.page.new_nonce = Some(n);
        }
        n
    }

    /// The nonce cookie the response carries: a new nonce, or the old one's removal where the
    /// session's identity was renewed (a token from before a login fails after it).
    pub(crate) fn nonce_cookie(&self, committed: bool) -> Option<String> {
        let st = self.lock();
        let renewed = committed && st.session.as_ref().is_some_and(|s| s.identity_renewed());
        let shared = &self.0.shared;
        let secure = shared.config.cookie().secure_for(self.0.secure);
        let suffix = crate::page::NONCE_COOKIE_SUFFIX;
        match st.page.new_nonce {
            Some(n) => {
                let value = crate::page::encode_nonce(&n);
                Some(shared.cookies.companion(suffix, Some(&value), secure))
            }
            None if renewed && !self.0.page.nonces.is_empty() => {
                Some(shared.cookies.companion(suffix, None, secure))
            }
            None => None,
        }
    }
}

/// The CSRF check as a tower layer, inside a [`SessionLayer`](crate::SessionLayer) (made by
/// [`SessionLayer::csrf`](crate::SessionLayer::csrf)). For every unsafe request it applies the
/// rule of the [module](crate::csrf), reading a form's body (up to a limit) when the token is
/// not in the header; a refused request never reaches the handler.
///
/// It takes request bodies that can be rebuilt from bytes (`axum::body::Body`,
/// `http_body_util::Full<Bytes>`); with hyper's `Incoming`, call [`Session::check_csrf`] in
/// the handler instead.
#[derive(Debug, Clone)]
pub struct CsrfLayer {
    exempt: Arc<[String]>,
    max_form_bytes: usize,
}

impl CsrfLayer {
    pub(crate) fn new() -> Self {
        Self {
            exempt: Arc::from(Vec::new()),
            max_form_bytes: DEFAULT_MAX_FORM_BYTES,
        }
    }

    /// Leaves the routes at `path` unchecked: the path itself, and every path under it when it
    /// ends with `/` (a webhook that signs its own requests, say).
    pub fn exempt(self, path: impl Into<String>) -> Self {
        let mut list: Vec<String> = self.exempt.to_vec();
        list.push(path.into());
        Self {
            exempt: Arc::from(list),
            ..self
        }
    }

    /// The largest form body read for its token (default [`DEFAULT_MAX_FORM_BYTES`]); a larger
    /// form without the header is refused with 413.
    pub fn max_form_bytes(self, bytes: usize) -> Self {
        Self {
            max_form_bytes: bytes,
            ..self
        }
    }

    fn is_exempt(&self, path: &str) -> bool {
        self.exempt
            .iter()
            .any(|e| path == e || (e.ends_with('/') && path.starts_with(e.as_str())))
    }
}

impl<S> tower_layer::Layer<S> for CsrfLayer {
    type Service = CsrfService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        CsrfService {
            inner,
            layer: self.clone(),
        }
    }
}

/// The service of [`CsrfLayer`].
#[derive(Debug, Clone)]
pub struct CsrfService<S> {
    inner: S,
    layer: CsrfLayer,
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S, ReqBody, ResBody> tower_service::Service<Request<ReqBody>> for CsrfService<S>
where
    S: tower_service::Service<Request<ReqBody>, Response = Response<ResBody>>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    ReqBody: http_body::Body + From<Bytes> + Send + 'static,
    ReqBody::Data: Send,
    ReqBody::Error: Into<BoxError>,
    ResBody: From<Bytes> + Send + 'static,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Response<ResBody>, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let layer = self.layer.clone();
        Box::pin(async move {
            if layer.is_exempt(req.uri().path()) {
                return inner.call(req).await;
            }
            match verdict(req.method(), req.headers()) {
                Verdict::Pass => return inner.call(req).await,
                Verdict::Refuse(r) => return Ok(Error::Csrf(r).response()),
                Verdict::NeedsToken => {}
            }
            let session = match Session::from_request(&req) {
                Ok(s) => s,
                Err(e) => return Ok(e.response()),
            };
            let (req, token) = match token_of(req, layer.max_form_bytes).await {
                Ok(found) => found,
                Err(r) => return Ok(Error::Csrf(r).response()),
            };
            match session
                .check_csrf(req.method(), req.headers(), token.as_deref())
                .await
            {
                Ok(()) => inner.call(req).await,
                Err(e) => Ok(e.response()),
            }
        })
    }
}

/// The token of a request: its header, else its form's field (the form is read and put back).
async fn token_of<B>(req: Request<B>, limit: usize) -> Result<(Request<B>, Option<String>), Refusal>
where
    B: http_body::Body + From<Bytes>,
    B::Error: Into<BoxError>,
{
    if let Some(t) = req.headers().get(CSRF_HEADER).and_then(|v| v.to_str().ok()) {
        let t = t.trim().to_owned();
        return Ok((req, Some(t)));
    }
    let is_form = req
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| {
            v.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        });
    if !is_form {
        return Ok((req, None));
    }
    let (parts, body) = req.into_parts();
    let bytes = match http_body_util::Limited::new(body, limit).collect().await {
        Ok(c) => c.to_bytes(),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
            return Err(Refusal::FormTooLarge);
        }
        Err(_) => return Err(Refusal::Unreadable),
    };
    let token = form_urlencoded::parse(&bytes)
        .find(|(k, _)| k == CSRF_FIELD)
        .map(|(_, v)| v.into_owned());
    Ok((Request::from_parts(parts, B::from(bytes)), token))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verdict_of(method: Method, site: &[&'static str]) -> Verdict {
        let mut h = HeaderMap::new();
        for s in site {
            h.append("sec-fetch-site", http::HeaderValue::from_static(s));
        }
        verdict(&method, &h)
    }

    #[test]
    fn the_rule() {
        assert_eq!(verdict_of(Method::GET, &["cross-site"]), Verdict::Pass);
        assert_eq!(verdict_of(Method::OPTIONS, &[]), Verdict::Pass);
        assert_eq!(verdict_of(Method::POST, &["same-origin"]), Verdict::Pass);
        assert_eq!(
            verdict_of(Method::POST, &["cross-site"]),
            Verdict::Refuse(Refusal::CrossSite)
        );
        assert_eq!(
            verdict_of(Method::DELETE, &["same-origin", "cross-site"]),
            Verdict::Refuse(Refusal::CrossSite)
        );
        for site in [
            &[][..],
            &["same-site"],
            &["none"],
            &["same-origin", "same-origin"],
        ] {
            assert_eq!(verdict_of(Method::POST, site), Verdict::NeedsToken);
        }
        assert_eq!(verdict_of(Method::TRACE, &[]), Verdict::NeedsToken);
    }
}
