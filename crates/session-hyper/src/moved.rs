//! After the handler, for a request that carried another library's session (a [`Source`]; the
//! move itself starts in `crate::session`'s `moving`): deleting the old session, undoing a
//! move whose old session can't be deleted, and removing the old cookie.
//!
//! A move is a regenerate whose old id is a claim key in the layer's store, derived from the
//! source's name and the old id: the first request to create the claim reads the old session
//! again under it and moves it (its commit creates the new record and supersedes the claim
//! with a marker naming it); requests racing it find the claim or the marker and are
//! anonymous, leaving the cookies alone. A request that ends the session (a logout, whether it
//! moved it or lost the race) deletes the old session before its commit destroys anything, so
//! no later request can find it and move it again; a move deletes it after its commit, and a
//! failure to delete it undoes the move.

use http::HeaderValue;
use session_core::store::{Source, StoreKey};

use crate::Error;
use crate::session::Session;
use crate::shared::Shared;

/// After the commit (`committed`: it ran and succeeded; `false` when the handler's 5xx
/// skipped it): the old session is deleted if this request moved it (a failure to delete it
/// undoes the move, as a 503), or the claim released if the commit was skipped. Answers the
/// `Set-Cookie` values that remove the old cookie, when the response should carry them.
pub(crate) async fn finish(session: &Session, committed: bool) -> Result<Vec<HeaderValue>, Error> {
    // A move from the old store is done (its marker there now names the new session) or
    // did not happen: either way its claim goes.
    let _ = committed;
    crate::session::release_old_claim(session).await;
    let shared = &*session.0.shared;
    let Some(source) = shared.mover() else {
        return Ok(Vec::new());
    };
    let Some(foreign) = session.lock().foreign.take() else {
        return Ok(Vec::new());
    };
    if foreign.drained && !foreign.written && !foreign.deleted {
        // A drained session this request did not move (a 5xx, or another request won the
        // race): the drained record stays for the next request, and so does the old cookie.
        return Ok(Vec::new());
    }
    if foreign.retired && foreign.written {
        // A drained session of our own old store: the drain replaced the old record by a
        // marker naming the drained one, or meant to (a drain cut short between the two):
        // doing it again is harmless, and a failure here loses nothing (the next drain run
        // does it).
        retire(shared, &foreign).await;
    }
    if foreign.claimed && !committed && !foreign.written {
        // Nothing moved (the handler's 5xx skipped the commit): the next request moves it.
        end(session, &foreign.claim).await;
        return Ok(Vec::new());
    }
    // Moved by this request: the old session goes now (a drain cut short after writing may
    // have left it too). A failure to delete it undoes the move, as a 503: the moved session
    // must not outlive an old one that could move again.
    if (foreign.claimed || foreign.drained)
        && !foreign.deleted
        && !foreign.retired
        && let Err(e) = shared.timed(source.delete(&foreign.id)).await
    {
        end(session, &foreign.claim).await;
        session.lock().pending = None;
        return Err(e);
    }
    Ok(if foreign.remove_cookie {
        removal(shared, source.as_ref(), session.0.secure)
    } else {
        Vec::new()
    })
}

/// A commit that failed because the moved session is larger than the layer's store takes
/// (its limit below the data, with the store's own fields): the move is refused as old data
/// our rules refuse is, never a 500 loop. Releases the claim and answers the removal of the
/// old cookie; `None` when `e` is not that case.
pub(crate) async fn too_large(session: &Session, e: &Error) -> Option<Vec<HeaderValue>> {
    let shared = &*session.0.shared;
    let source = shared.mover()?;
    let claimed = session.lock().foreign.as_ref().is_some_and(|f| f.claimed);
    if !e.is_too_large() || !claimed {
        return None;
    }
    tracing::warn!(target: "session", source = source.name(), "an old session is larger than this store takes; starting a new session");
    release(session).await;
    session.lock().pending = None;
    Some(removal(shared, source.as_ref(), session.0.secure))
}

/// Supersedes the old record of a drained session of our own old store by a marker naming the
/// drained record (best effort).
async fn retire(shared: &Shared, foreign: &crate::session::Foreign) {
    let Some(old) = &shared.migrate_from else {
        return;
    };
    let key = session_core::store::StoreKey::from_raw(foreign.id.as_str());
    let grace = shared.config.supersede_grace();
    if let Err(e) = shared
        .timed(old.supersede_dyn(&key, &foreign.claim, grace))
        .await
    {
        tracing::warn!(target: "session", error = %e, "could not retire a drained session's old record; the next drain run does");
    }
}

/// Releases the claim of a request whose commit failed (the next request moves the session).
pub(crate) async fn release(session: &Session) {
    crate::session::release_old_claim(session).await;
    let claim = {
        let mut st = session.lock();
        match st.foreign.take() {
            Some(f) if f.claimed => f.claim,
            _ => return,
        }
    };
    end(session, &claim).await;
}

/// Destroys the claim, and the session a move created from it (best effort: a claim left
/// behind lapses with the supersede grace).
async fn end(session: &Session, claim: &StoreKey) {
    if let Err(e) = crate::ending::end_key(session, claim.clone()).await {
        tracing::warn!(target: "session", error = %e, "could not undo a move; its records lapse with their TTL");
    }
}

/// The `Set-Cookie` values that remove the old library's cookie (and the `.sig` cookie of our
/// own signed cookie mode). Where the old cookie has our cookie's name, path and domain, our
/// cookie, when the response sets one, comes after these and takes its place.
fn removal(shared: &Shared, source: &dyn Source, secure: bool) -> Vec<HeaderValue> {
    if shared.source.is_none() {
        // A drained session of our own old store: the cookie is ours, and stays ours.
        return Vec::new();
    }
    let c = source.cookie();
    let signed = shared.cookie_source.as_ref().is_some_and(|s| s.signed());
    let sig = format!("{}.sig", c.name);
    let names = std::iter::once(c.name.as_str()).chain(signed.then_some(sig.as_str()));
    names
        .filter_map(|name| {
            let mut v = format!("{name}=; Path={}", c.path);
            if let Some(d) = &c.domain {
                v.push_str("; Domain=");
                v.push_str(d);
            }
            v.push_str("; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT");
            // As our own cookie gets it (a browser drops a removal it would not take as a
            // cookie).
            if shared.config.cookie().secure_for(secure) {
                v.push_str("; Secure");
            }
            HeaderValue::from_str(&v).ok()
        })
        .collect()
}
