//! What kind of request a request is (a page load, a prefetch, a script's call), read from
//! its fetch metadata once per request, and the per-request state of flash messages and CSRF
//! tokens: the nonces the request brought, the one to set, the messages it took.

use http::HeaderMap;
use serde_json::Value;
use session_cookie::csrf::NONCE_LEN;

/// The CSRF nonce cookie is the session cookie's name with this suffix.
pub(crate) const NONCE_COOKIE_SUFFIX: &str = "csrf";

/// Nonce cookies of one request that are looked at (more are planted).
const MAX_NONCES: usize = 4;

/// What a request is, as far as flash messages go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A page load (or a client that sends no fetch metadata): takes the messages it shows.
    Page,
    /// A subresource, a `fetch()`, an iframe: sees the messages, leaves them.
    Background,
    /// An XHR or htmx request: takes them only if the layer says so.
    Scripted,
    /// A prefetch or prerender: sees none (its page may be shown later, or never).
    Prefetch,
}

impl Kind {
    /// Reads the request's method and headers. A `HEAD` request (a link checker, `curl -I`)
    /// is answered without a body, so it can't show a message: it never takes one.
    pub(crate) fn of(method: &http::Method, headers: &HeaderMap) -> Kind {
        let has = |name: &str, pred: &dyn Fn(&str) -> bool| {
            headers.get_all(name).iter().any(|v| {
                v.to_str()
                    .map(|v| pred(&v.to_ascii_lowercase()))
                    .unwrap_or(true)
            })
        };
        if has("sec-purpose", &|v| v.contains("prefetch"))
            || has("purpose", &|v| v.contains("prefetch"))
        {
            return Kind::Prefetch;
        }
        if headers.contains_key("x-requested-with") || headers.contains_key("hx-request") {
            return Kind::Scripted;
        }
        if method == http::Method::HEAD
            || has("sec-fetch-mode", &|v| v.trim() != "navigate")
            || has("sec-fetch-dest", &|v| v.trim() != "document")
        {
            return Kind::Background;
        }
        Kind::Page
    }

    /// Whether the messages shown are taken (removed from the session).
    pub(crate) fn takes_flash(self, scripted_takes: bool) -> bool {
        match self {
            Kind::Page => true,
            Kind::Scripted => scripted_takes,
            Kind::Background | Kind::Prefetch => false,
        }
    }
}

/// Read once per request.
pub(crate) struct Page {
    pub(crate) kind: Kind,
    /// The CSRF nonces (base64url) the request's cookies carried (nearly always none or one).
    pub(crate) nonces: Vec<String>,
}

impl std::fmt::Debug for Page {
    // A nonce is what a visitor's tokens are bound to: kept out of logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Page")
            .field("kind", &self.kind)
            .field("nonces", &self.nonces.len())
            .finish()
    }
}

impl Page {
    pub(crate) fn read(method: &http::Method, headers: &HeaderMap, cookie_name: &str) -> Page {
        let name = format!("{cookie_name}.{NONCE_COOKIE_SUFFIX}");
        let fields = headers.get_all(http::header::COOKIE);
        let nonces = session_cookie::parse::values_of(fields.iter().map(|v| v.as_bytes()), &name)
            .filter(|v| decode_nonce(v).is_some())
            .take(MAX_NONCES)
            .filter_map(|v| std::str::from_utf8(v).ok().map(str::to_owned))
            .collect();
        Page {
            kind: Kind::of(method, headers),
            nonces,
        }
    }
}

/// What the request did that its response must carry out.
#[derive(Default)]
pub(crate) struct Pending {
    /// Flash entries taken, by key, with their values: put back if the page fails.
    pub(crate) taken: Vec<(String, Value)>,
    /// A nonce (base64url) this request drew for its tokens: set in a cookie.
    pub(crate) new_nonce: Option<String>,
    /// The request minted a CSRF token.
    pub(crate) minted: bool,
    /// The request was shown flash messages.
    pub(crate) shown: bool,
}

impl std::fmt::Debug for Pending {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pending")
            .field("taken", &self.taken.len())
            .field("new_nonce", &self.new_nonce.is_some())
            .field("minted", &self.minted)
            .field("shown", &self.shown)
            .finish()
    }
}

pub(crate) fn encode_nonce(nonce: &[u8; NONCE_LEN]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(nonce)
}

fn decode_nonce(v: &[u8]) -> Option<[u8; NONCE_LEN]> {
    use base64::Engine as _;
    let mut out = [0u8; NONCE_LEN];
    match base64::engine::general_purpose::URL_SAFE_NO_PAD.decode_slice(v, &mut out) {
        Ok(n) if n == NONCE_LEN && v.len() == 43 => Some(out),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(pairs: &[(&'static str, &'static str)]) -> Kind {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, http::HeaderValue::from_static(v));
        }
        Kind::of(&http::Method::GET, &h)
    }

    #[test]
    fn what_takes_the_messages() {
        assert_eq!(kind(&[]), Kind::Page);
        let nav = [
            ("sec-fetch-mode", "navigate"),
            ("sec-fetch-dest", "document"),
        ];
        assert_eq!(kind(&nav), Kind::Page);
        assert_eq!(
            kind(&[("sec-fetch-mode", "cors"), ("sec-fetch-dest", "empty")]),
            Kind::Background
        );
        assert_eq!(kind(&[("sec-fetch-dest", "iframe")]), Kind::Background);
        assert_eq!(
            kind(&[
                ("sec-fetch-mode", "navigate"),
                ("sec-purpose", "prefetch;prerender")
            ]),
            Kind::Prefetch
        );
        assert_eq!(kind(&[("purpose", "prefetch")]), Kind::Prefetch);
        assert_eq!(
            kind(&[("x-requested-with", "XMLHttpRequest")]),
            Kind::Scripted
        );
        assert_eq!(
            kind(&[("hx-request", "true"), ("sec-fetch-mode", "cors")]),
            Kind::Scripted
        );
        assert!(!Kind::Scripted.takes_flash(false) && Kind::Scripted.takes_flash(true));
        assert!(!Kind::Prefetch.takes_flash(true) && !Kind::Background.takes_flash(true));
    }

    #[test]
    fn nonces_are_read_from_their_own_cookie() {
        let n = [7u8; NONCE_LEN];
        let mut h = HeaderMap::new();
        let cookie = format!("sid=x; sid.csrf=bad; sid.csrf={}", encode_nonce(&n));
        h.insert(http::header::COOKIE, cookie.parse().unwrap());
        assert_eq!(Kind::of(&http::Method::HEAD, &h), Kind::Background);
        assert_eq!(
            Page::read(&http::Method::GET, &h, "sid").nonces,
            vec![encode_nonce(&n)]
        );
    }
}
