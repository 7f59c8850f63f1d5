//! Reading a request before the handler runs: TLS, the session cookie (or the external key
//! header), planted cookies, and another library's cookie while the layer moves sessions in.

use std::sync::Arc;

use http::header::COOKIE;
use http::{HeaderValue, Request};
use session_cookie::Incoming;

use crate::session::{Candidate, Candidates, Presented, Session};
use crate::shared::{Backend, Shared};

/// Marks a request that arrived over TLS; insert it from your TLS acceptor so `Secure`
/// cookies are sent (a request with an `https` URI scheme counts too).
#[derive(Debug, Clone, Copy, Default)]
pub struct Tls;

fn is_secure<B>(req: &Request<B>, trust_proxy: bool) -> bool {
    if req.uri().scheme() == Some(&http::uri::Scheme::HTTPS)
        || req.extensions().get::<Tls>().is_some()
    {
        return true;
    }
    trust_proxy
        && req
            .headers()
            .get("x-forwarded-proto")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(',').next())
            .is_some_and(|p| p.trim().eq_ignore_ascii_case("https"))
}

/// Reads the session cookie (or external key) and builds the handle.
pub(crate) fn attach<B>(shared: &Arc<Shared>, req: &mut Request<B>) -> (Session, bool) {
    let secure = is_secure(req, shared.trust_proxy);
    let mut clear_sig = false;
    let ids = shared.config.ids();
    let mut unchecked = false;
    let incoming = if let Some(h) = &shared.external_key {
        req.headers()
            .get(h)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| ids.parse(v.trim()))
            .map_or(Presented::None, |id| {
                Presented::Ids(Candidates::one(Candidate {
                    value: id,
                    resign: false,
                    signature: None,
                }))
            })
    } else {
        let fields = req.headers().get_all(COOKIE);
        match shared
            .cookies
            .read(fields.iter().map(HeaderValue::as_bytes))
        {
            Incoming::Valid {
                value,
                resign,
                signature,
            } => {
                let only = session_cookie::Verified {
                    value,
                    resign,
                    signature,
                };
                presented(shared, [only], false)
            }
            Incoming::Candidates {
                verified,
                unchecked: more,
            } => {
                unchecked = more;
                presented(shared, verified, more)
            }
            Incoming::Invalid => {
                // koa clears the signature cookie of a cookie that failed verification.
                clear_sig = true;
                Presented::None
            }
            // Planted cookies ahead of the real pair: no removal cookie, whatever happens.
            Incoming::Ambiguous => {
                unchecked = true;
                Presented::Ambiguous
            }
            _ => Presented::None,
        }
    };
    // A destroy looks further among cookies that were not all checked.
    let hidden = unchecked.then(|| req.headers().get_all(COOKIE).iter().cloned().collect());
    // The old library's cookie counts where the request carries no live session of ours: none
    // of our cookies, or one whose session is gone (a guest id, or one set on a request that
    // came without the old cookie, e.g. a cross-site link to an old `SameSite=Strict` one).
    // Never among planted cookies of ours.
    let old = match (&shared.source, &incoming) {
        (Some(source), Presented::None | Presented::Ids(_)) => match &shared.cookie_source {
            Some(cookies) => cookies.read(req.headers().get_all(COOKIE)),
            None => old_session_id(source.as_ref(), req),
        },
        _ => None,
    };
    let page = crate::page::Page::read(req.method(), req.headers(), &shared.config.cookie().name);
    let session = Session::new(Arc::clone(shared), incoming, hidden, secure, old, page);
    req.extensions_mut().insert(session.clone());
    (session, clear_sig && shared.cookies.keygrip().is_some())
}

/// Old session cookies checked for a validly issued one: more than this many of the old name
/// are planted, and the rest are not looked at.
const MAX_OLD_COOKIES: usize = 4;

/// The old session id the validly issued old cookies carry (no I/O: a forged cookie costs
/// the source no call). Two different ones (a cookie planted beside the user's, from a sibling
/// subdomain) are ambiguous: none moves, and no cookie is removed.
fn old_session_id<B>(source: &dyn session_core::store::Source, req: &Request<B>) -> Option<String> {
    let name = &source.cookie().name;
    let fields = req.headers().get_all(COOKIE);
    let mut ids = session_cookie::parse::values_of(fields.iter().map(HeaderValue::as_bytes), name)
        .take(MAX_OLD_COOKIES)
        .filter_map(|v| std::str::from_utf8(v).ok())
        .filter_map(|v| source.verify(v));
    let first = ids.next()?;
    ids.all(|id| id == first).then_some(first)
}

/// The verified cookie values as the backend takes them: ids (the ones that are well-formed
/// ids) or payloads.
fn presented<'a>(
    shared: &Shared,
    verified: impl IntoIterator<Item = session_cookie::Verified<'a>>,
    unchecked: bool,
) -> Presented {
    fn candidates<'a, T>(
        verified: impl IntoIterator<Item = session_cookie::Verified<'a>>,
        unchecked: bool,
        value: impl Fn(&str) -> Option<T>,
    ) -> Option<Candidates<T>> {
        let mut all = verified.into_iter().filter_map(|v| {
            Some(Candidate {
                value: value(v.value)?,
                resign: v.resign,
                signature: v.signature,
            })
        });
        let first = all.next()?;
        Some(Candidates {
            first,
            more: all.collect(),
            unchecked,
        })
    }
    let found = match &shared.backend {
        Backend::Store(_) => {
            let ids = shared.config.ids();
            candidates(verified, unchecked, |v| ids.parse(v)).map(Presented::Ids)
        }
        Backend::Cookie(_) => {
            candidates(verified, unchecked, |v| Some(v.to_owned())).map(Presented::Payloads)
        }
    };
    // None usable (unsigned values that are not ids) among more than are checked: the real one
    // may be among the rest.
    found.unwrap_or(if unchecked {
        Presented::Ambiguous
    } else {
        Presented::None
    })
}
