//! What the route layers ("login required" and "permission required": the crate root's
//! `login_required!` and `permission_required!`) answer, and where a login page may send the
//! user next.

use axum::extract::{OriginalUri, Request};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use http::StatusCode;
use http::header::{ACCEPT, HeaderMap};

/// What a route layer does with a request, once it knows whether a user is logged in and, if
/// so, whether they may go on. Not part of the API: the macros' expansion calls it.
#[doc(hidden)]
pub async fn decide(
    logged_in: bool,
    allowed: bool,
    ended: Option<session_hyper::EndReason>,
    login: Option<(String, String)>,
    req: Request,
    next: Next,
) -> Response {
    if logged_in && allowed {
        return next.run(req).await;
    }
    if logged_in {
        // Known, and not allowed: logging in again would not help.
        return StatusCode::FORBIDDEN.into_response();
    }
    match login {
        Some((url, field)) if is_page_load(req.headers()) => {
            let asked = req
                .extensions()
                .get::<OriginalUri>()
                .map_or_else(|| req.uri().clone(), |o| o.0.clone());
            let path = asked
                .path_and_query()
                .map_or("/", |p| p.as_str())
                .to_owned();
            let mut to = with_next(&url, &field, &path);
            if let Some(why) = ended {
                // The session this browser brought was ended (a newer login over the limit):
                // the login page can say why.
                to = with_next(&to, "ended", why.name());
            }
            Redirect::to(&to).into_response()
        }
        _ => {
            let mut res = StatusCode::UNAUTHORIZED.into_response();
            if let Some(why) = ended {
                // An API client learns why its session ended (the marker is gone after this).
                res.headers_mut().insert(
                    "x-session-ended",
                    http::HeaderValue::from_static(why.name()),
                );
            }
            res
        }
    }
}

/// Whether the request is a page load (a browser navigating), which a login page answers,
/// rather than an API call (`fetch`, XHR, a script), which gets 401: a navigation says so in
/// `Sec-Fetch-Mode`; a client without fetch metadata is a page load when it accepts HTML (or
/// says nothing).
///
/// ```
/// use http::{HeaderMap, HeaderValue};
/// let mut h = HeaderMap::new();
/// h.insert("sec-fetch-mode", HeaderValue::from_static("navigate"));
/// assert!(session_auth::is_page_load(&h));
/// h.insert("sec-fetch-mode", HeaderValue::from_static("cors"));
/// assert!(!session_auth::is_page_load(&h));
/// ```
pub fn is_page_load(headers: &HeaderMap) -> bool {
    if let Some(mode) = headers.get("sec-fetch-mode") {
        return mode.as_bytes() == b"navigate";
    }
    if headers.contains_key("x-requested-with") {
        return false;
    }
    headers
        .get(ACCEPT)
        .and_then(|a| a.to_str().ok())
        .is_none_or(|a| {
            a.contains("text/html") || a.contains("*/*") && !a.contains("application/json")
        })
}

/// `url` with `field=path` added to its query (percent-encoded).
pub(crate) fn with_next(url: &str, field: &str, path: &str) -> String {
    let pair: String = form_urlencoded::Serializer::new(String::new())
        .append_pair(field, path)
        .finish();
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}{pair}")
}

/// `next` if it is a path on this site (`/…`, not `//host` or `/\host`), else `/`: where a
/// login page may send the user after logging in without becoming an open redirect.
///
/// ```
/// assert_eq!(session_auth::safe_next(Some("/account?tab=1")), "/account?tab=1");
/// assert_eq!(session_auth::safe_next(Some("//evil.example")), "/");
/// assert_eq!(session_auth::safe_next(Some("https://evil.example")), "/");
/// assert_eq!(session_auth::safe_next(None), "/");
/// ```
pub fn safe_next(next: Option<&str>) -> &str {
    match next {
        Some(n)
            if n.starts_with('/')
                && !n.starts_with("//")
                && !n.starts_with("/\\")
                && !n.chars().any(char::is_control) =>
        {
            n
        }
        _ => "/",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, http::HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn page_loads_and_api_calls() {
        assert!(is_page_load(&headers(&[])));
        assert!(is_page_load(&headers(&[("sec-fetch-mode", "navigate")])));
        assert!(!is_page_load(&headers(&[("sec-fetch-mode", "cors")])));
        assert!(is_page_load(&headers(&[("accept", "text/html,*/*;q=0.8")])));
        assert!(!is_page_load(&headers(&[("accept", "application/json")])));
        assert!(!is_page_load(&headers(&[(
            "x-requested-with",
            "XMLHttpRequest"
        )])));
    }

    #[test]
    fn the_page_asked_for_rides_along_encoded() {
        assert_eq!(
            with_next("/login", "next", "/a?b=1&c"),
            "/login?next=%2Fa%3Fb%3D1%26c"
        );
        assert_eq!(with_next("/login?x=1", "to", "/"), "/login?x=1&to=%2F");
    }
}
