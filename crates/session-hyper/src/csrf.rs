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
//! cookie's name with `.csrf`), so an anonymous visitor costs no store record. When such a
//! visitor's session comes to hold data, it keeps that nonce as its secret (in the same write),
//! so the pages served before keep working; a nonce planted later is never adopted. In cookie
//! mode a session holding data keeps a secret in its (signed or encrypted) cookie, given on its
//! first token or write, and a fresh one after `regenerate()`. Every response's token is
//! masked afresh (see `session_cookie::csrf`), and a response that minted a token or showed
//! flash messages gets `Cache-Control: private, no-store`.

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

use crate::Error;
pub use crate::error::Refusal;
use crate::session::{Session, State};
use crate::shared::Backend;
use std::sync::atomic::Ordering;

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

/// What a token minted now is bound to.
enum Bound {
    /// The id of the request's live stored session.
    Id(SessionId),
    /// A secret or nonce (base64url): the session's own secret, or the visitor's nonce.
    Secret(String),
}

impl Session {
    /// A CSRF token for this visitor's pages and scripts, masked afresh on every call (see the
    /// [module](crate::csrf) for what it is bound to). Nothing is written for it, except that
    /// a cookie-mode session holding data gets its secret on its first token, and a visitor
    /// without one gets a nonce cookie.
    pub async fn csrf_token(&self) -> Result<String, Error> {
        let keys = self.0.shared.csrf.as_ref().ok_or(Error::CsrfWithoutKeys)?;
        self.0.shared.csrf_used.store(true, Ordering::Relaxed);
        // Loaded first in every mode: what the token is bound to depends on what the session
        // holds (a cookie session's secret).
        let cookie_mode = self.cookie_mode();
        let bound = match self.with(|s| live_id(cookie_mode, s)).await? {
            Some(id) => Bound::Id(id),
            None => Bound::Secret(self.secret_for_minting()),
        };
        self.lock().page.minted = true;
        match bound {
            Bound::Id(id) => keys.mint(Binding::Session(id.as_str().as_bytes())),
            Bound::Secret(s) => keys.mint(Binding::Nonce(s.as_bytes())),
        }
        .map_err(Error::Random)
    }

    /// Whether `token` is one of this visitor's tokens: bound to its stored session (its id, or
    /// the secret it keeps) when it has one; in cookie mode to the session's secret when it
    /// keeps one; else to the visitor's nonce cookie.
    pub async fn csrf_token_is_valid(&self, token: &str) -> Result<bool, Error> {
        let keys = self.0.shared.csrf.as_ref().ok_or(Error::CsrfWithoutKeys)?;
        self.0.shared.csrf_used.store(true, Ordering::Relaxed);
        // A session that holds data (and came with the request) never takes a token of its
        // visitor's nonce cookie: that cookie could have been planted. Only a visitor whose
        // session is new or empty does.
        let cookie_mode = self.cookie_mode();
        let (live, secret, anonymous) = self
            .with(|s| {
                let anonymous = s.is_new() || !s.is_populated();
                let secret = s.csrf_secret().map(str::to_owned);
                (live_id(cookie_mode, s), secret, anonymous)
            })
            .await?;
        let by_secret = |s: &str| keys.verify(token, Binding::Nonce(s.as_bytes()));
        Ok(match (live, secret) {
            (Some(id), secret) => {
                keys.verify(token, Binding::Session(id.as_str().as_bytes()))
                    || secret.as_deref().is_some_and(by_secret)
            }
            (None, Some(secret)) => by_secret(&secret),
            (None, None) if anonymous => self.0.page.nonces.iter().any(|n| by_secret(n)),
            (None, None) => false,
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
            Verdict::NeedsToken => match token.filter(|t| !t.is_empty()) {
                None => Err(Error::Csrf(Refusal::Missing)),
                Some(t) if self.csrf_token_is_valid(t).await? => Ok(()),
                Some(_) => Err(Error::Csrf(Refusal::Invalid)),
            },
        }
    }

    /// The secret a token minted now is bound to, where the session has no live id: the
    /// session's own, or one it adopts now (a session holding data), else the visitor's nonce.
    fn secret_for_minting(&self) -> String {
        let mut st = self.lock();
        if let Some(secret) = adopt(&mut st, &self.0.page, self.cookie_mode()) {
            return secret;
        }
        nonce(&mut st, &self.0.page)
    }

    fn cookie_mode(&self) -> bool {
        matches!(self.0.shared.backend, Backend::Cookie(_))
    }

    /// Before a commit: a session about to hold data for the first time keeps the nonce its
    /// visitor's tokens are bound to as its secret, so the pages served before it existed keep
    /// working (and a regenerated one gets a fresh secret). Only where the app uses tokens.
    pub(crate) fn adopt_csrf_secret(&self) {
        if self.0.shared.csrf_used.load(Ordering::Relaxed) {
            let mut st = self.lock();
            adopt(&mut st, &self.0.page, self.cookie_mode());
        }
    }

    /// The nonce cookie the response carries: a new nonce, or the old one's removal where the
    /// session's identity was renewed (a token from before a login fails after it).
    pub(crate) fn nonce_cookie(&self, committed: bool) -> Option<String> {
        let st = self.lock();
        let renewed = committed && st.session.as_ref().is_some_and(|s| s.identity_renewed());
        let shared = &self.0.shared;
        let secure = shared.config.cookie().secure_for(self.0.secure);
        let suffix = crate::page::NONCE_COOKIE_SUFFIX;
        // As long as the session cookie would last, so a tab restored after a browser restart
        // still posts.
        let now = shared.config.now_ms();
        let expire = match shared.config.max_age() {
            session_core::MaxAge::Ms(ms) => Some(now.saturating_add(ms)),
            session_core::MaxAge::Session => None,
        };
        match &st.page.new_nonce {
            Some(n) => Some(
                shared
                    .cookies
                    .companion(suffix, Some(n), expire, now, secure),
            ),
            None if renewed && !self.0.page.nonces.is_empty() => {
                Some(shared.cookies.companion(suffix, None, None, now, secure))
            }
            None => None,
        }
    }

    /// The answer to a refused request: the layer's error hook's, when it has one
    /// ([`on_error`](crate::SessionLayerBuilder::on_error): an app's own "form refused"
    /// page), else [`Error::response`].
    fn refusal<B: From<Bytes>>(&self, e: &Error) -> Response<B> {
        let r: Response<B> = match &self.0.shared.on_error {
            Some(hook) => hook(e).map(B::from),
            None => e.response(),
        };
        // A store failure met on the way is answered (and counted) again by the layer.
        if matches!(e, Error::Csrf(_)) {
            session_core::telemetry::answer(r.status().as_u16());
        }
        r
    }

    /// Whether this request minted a token or showed messages: its answer must not be cached.
    pub(crate) fn is_personal_page(&self) -> bool {
        let st = self.lock();
        st.page.minted || st.page.shown
    }
}

/// The id of the request's live stored session, if it has one (never in cookie mode).
fn live_id(cookie_mode: bool, s: &session_core::SessionState) -> Option<SessionId> {
    if cookie_mode {
        return None;
    }
    SessionDriver::id(s).filter(|_| !s.is_new()).cloned()
}

/// The session's secret, after adopting one if it holds data and has none: a regenerated
/// session gets a fresh one; a session holding data for the first time keeps its visitor's
/// nonce; a cookie session that holds data already gets a fresh one. `None` when the session
/// holds no data (or, in store mode, lives already: its tokens are bound to its id).
fn adopt(st: &mut State, page: &crate::page::Page, cookie_mode: bool) -> Option<String> {
    let s = st.session.as_ref()?;
    if let Some(secret) = s.csrf_secret() {
        return Some(secret.to_owned());
    }
    if !s.is_populated() || s.is_stale() {
        return None;
    }
    let candidate = if s.identity_renewed() {
        Some(fresh(st))
    } else if s.is_new() {
        match (&st.page.new_nonce, page.nonces.first()) {
            (Some(n), _) | (None, Some(n)) => Some(n.clone()),
            (None, None) => Some(fresh(st)),
        }
    } else if cookie_mode {
        Some(fresh(st))
    } else {
        None
    }
    .filter(|c| !c.is_empty())?;
    let s = st.session.as_mut()?;
    s.set_csrf_secret(&candidate);
    Some(candidate)
}

/// The visitor's nonce: the one its request brought, unless the session was regenerated or
/// destroyed meanwhile (then a new one, as when none came).
fn nonce(st: &mut State, page: &crate::page::Page) -> String {
    if let Some(n) = &st.page.new_nonce {
        return n.clone();
    }
    let renewed = st.session.as_ref().is_some_and(|s| s.identity_renewed());
    match page.nonces.first() {
        Some(n) if !renewed => n.clone(),
        _ => fresh(st),
    }
}

/// A new nonce, set in a cookie by the response (and used by every later token of it).
fn fresh(st: &mut State) -> String {
    if let Some(n) = &st.page.new_nonce {
        return n.clone();
    }
    let mut n = [0u8; NONCE_LEN];
    // A failed random source leaves an all-zero nonce; it is never set as a cookie and is
    // no one's secret, so tokens bound to it verify against nothing.
    if getrandom::fill(&mut n).is_err() {
        return String::new();
    }
    let n = crate::page::encode_nonce(&n);
    st.page.new_nonce = Some(n.clone());
    n
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
            if verdict(req.method(), req.headers()) == Verdict::Pass {
                return inner.call(req).await;
            }
            let session = match Session::from_request(&req) {
                Ok(s) => s,
                Err(e) => return Ok(e.response()),
            };
            // The header first; a form's field where the header is absent, empty or wrong.
            let header = req
                .headers()
                .get(CSRF_HEADER)
                .and_then(|v| v.to_str().ok())
                .map(|t| t.trim().to_owned());
            let first = session
                .check_csrf(req.method(), req.headers(), header.as_deref())
                .await;
            match first {
                Ok(()) => return inner.call(req).await,
                Err(Error::Csrf(Refusal::Missing | Refusal::Invalid)) if is_form(req.headers()) => {
                }
                Err(e) => return Ok(session.refusal(&e)),
            }
            let (req, token) = match form_token(req, layer.max_form_bytes).await {
                Ok(found) => found,
                Err(r) => return Ok(session.refusal(&Error::Csrf(r))),
            };
            match session
                .check_csrf(req.method(), req.headers(), token.as_deref())
                .await
            {
                Ok(()) => inner.call(req).await,
                Err(e) => Ok(session.refusal(&e)),
            }
        })
    }
}

/// Whether a request with these headers carries a form (`application/x-www-form-urlencoded`,
/// parameters aside): the kind of body whose [`CSRF_FIELD`] is read for the token.
pub fn is_form(headers: &HeaderMap) -> bool {
    headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| {
            v.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        })
}

/// The token in a form's body: its first [`CSRF_FIELD`] field, decoded. For a handler that
/// reads the body itself (a plain hyper body) and then calls [`Session::check_csrf`].
pub fn token_in_form(body: &[u8]) -> Option<String> {
    form_urlencoded::parse(body)
        .find(|(k, _)| k == CSRF_FIELD)
        .map(|(_, v)| v.into_owned())
}

/// The `_csrf` field of a form (the body is read, up to `limit`, and put back).
async fn form_token<B>(
    req: Request<B>,
    limit: usize,
) -> Result<(Request<B>, Option<String>), Refusal>
where
    B: http_body::Body + From<Bytes>,
    B::Error: Into<BoxError>,
{
    let (parts, body) = req.into_parts();
    let bytes = match http_body_util::Limited::new(body, limit).collect().await {
        Ok(c) => c.to_bytes(),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
            return Err(Refusal::FormTooLarge);
        }
        Err(_) => return Err(Refusal::Unreadable),
    };
    let token = token_in_form(&bytes);
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
    fn the_token_field_of_a_form() {
        let body = b"text=Saved+%21&_csrf=ab%2Dc_d&_csrf=second";
        assert_eq!(token_in_form(body).as_deref(), Some("ab-c_d"));
        assert_eq!(token_in_form(b"%5Fcsrf=x").as_deref(), Some("x"));
        assert_eq!(token_in_form(b"_csrf").as_deref(), Some(""));
        assert_eq!(token_in_form(b"csrf=x&"), None);
        assert_eq!(token_in_form(b""), None);
        let mut h = HeaderMap::new();
        h.insert(
            CONTENT_TYPE,
            "Application/X-WWW-Form-Urlencoded; charset=utf-8"
                .parse()
                .unwrap(),
        );
        assert!(is_form(&h));
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
