//! Moving a session in from another session library (a [`Source`]): reading the old session
//! where a request carries the old cookie and none of ours, claiming the move in the layer's
//! store, and, after the commit, deleting the old session and removing the old cookie.
//!
//! A move is a regenerate whose old id is a marker key in the layer's store, derived from the
//! source's name and the old id: the first request to create a claim there moves the session
//! (its commit creates the new record and supersedes the claim with a marker naming it);
//! requests racing it find the claim or the marker and are anonymous, leaving the cookies
//! alone, and a logout among them destroys the claim (the move then ends as a logout) or
//! follows the marker to the new record. The old session is deleted only after the commit, and
//! a failure to delete it undoes the move (so nothing moved can come back from the old store
//! once the marker has lapsed).

use http::HeaderValue;
use session_core::driver::SessionId;
use session_core::driver::Source as Start;
use session_core::store::{
    Created, Data, DynStore, Loaded, MaxAge, Meta, Record, Source, StoreKey,
};

use crate::Error;
use crate::session::Session;

/// The largest old session (its data as JSON) that moves; a larger one starts a new session.
/// Our stores' default record limit.
pub const MAX_MOVED_BYTES: usize = 64 * 1024;

/// A request's old session.
#[derive(Debug)]
pub(crate) struct Foreign {
    /// The old session id, in the source.
    id: String,
    /// The key of the move's claim (then its marker) in the layer's store.
    claim: StoreKey,
    /// This request claimed the move: it deletes the old session after its commit.
    pub(crate) claimed: bool,
    /// The response removes the old cookie (the session moved, or the old one is gone).
    remove_cookie: bool,
}

/// The session a request carrying an old session id starts from, and what the rest of the
/// request does about the old session.
pub(crate) async fn load(
    session: &Session,
    store: &dyn DynStore,
) -> Result<(Start, Option<Foreign>), Error> {
    let inner = &session.0;
    let shared = &*inner.shared;
    let (Some(source), Some(old_id)) = (&shared.source, &inner.old) else {
        return Ok((Start::None, None));
    };
    let config = &shared.config;
    let id = SessionId::new_unchecked(format!("moved.{}.{old_id}", source.name()));
    let claim = config.key_derivation().derive(&id);
    let _ = inner.loaded_key.set((id.clone(), claim.clone()));
    let mut foreign = Foreign {
        id: old_id.clone(),
        claim: claim.clone(),
        claimed: false,
        remove_cookie: false,
    };
    let stale = |id| Start::Store {
        id,
        record: Loaded::Superseded,
    };
    // A claim or a marker: another request moves (or moved) the session.
    if !matches!(session.load_or_drop(store, &claim).await?, Loaded::Missing) {
        return Ok((stale(id), Some(foreign)));
    }
    let now = config.now_ms();
    let old = shared.timed(source.load(old_id)).await?;
    let Some(old) = old.filter(|o| o.expires_ms.is_none_or(|e| e > now)) else {
        // Gone or expired: anonymous, and the dead cookie goes.
        foreign.remove_cookie = true;
        return Ok((Start::None, Some(foreign)));
    };
    if let Some(why) = refused(&old.data) {
        tracing::warn!(target: "session", source = source.name(), reason = why, "an old session can't move; starting a new session");
        foreign.remove_cookie = true;
        return Ok((Start::None, Some(foreign)));
    }
    let grace = config.supersede_grace();
    let grace_ms = u64::try_from(grace.as_millis()).unwrap_or(u64::MAX);
    let placeholder = Record {
        data: Data::new(),
        meta: Meta {
            expire: Some(now.saturating_add(grace_ms)),
            max_age: MaxAge::Ms(grace_ms),
            created: None,
        },
    };
    if shared
        .timed(store.create_dyn(&claim, &placeholder, grace))
        .await?
        == Created::Collision
    {
        return Ok((stale(id), Some(foreign)));
    }
    foreign.claimed = true;
    foreign.remove_cookie = true;
    let max_age = config.max_age();
    let record = Record {
        data: old.data,
        meta: Meta {
            expire: max_age.as_ms().map(|ms| now.saturating_add(ms)),
            max_age,
            created: None,
        },
    };
    tracing::debug!(target: "session", source = source.name(), "moving a session from another library");
    Ok((
        Start::Store {
            id,
            record: Loaded::Live(record),
        },
        Some(foreign),
    ))
}

/// Why old data can't move: a key our rules reserve, or more than [`MAX_MOVED_BYTES`].
fn refused(data: &Data) -> Option<&'static str> {
    if data.keys().any(|k| k.starts_with('_')) {
        return Some("a key starts with '_', which this library reserves");
    }
    let size = serde_json::to_vec(data).map_or(usize::MAX, |v| v.len());
    (size > MAX_MOVED_BYTES).then_some("larger than the largest session that moves")
}

/// After the commit (`committed`: it ran and succeeded; `false` when the handler's 5xx
/// skipped it): the old session is deleted if this request moved it (a failure to delete it
/// undoes the move, as a 503), or the claim released if the commit was skipped. Answers the
/// `Set-Cookie` value that removes the old cookie, when the response should carry it.
pub(crate) async fn finish(
    session: &Session,
    committed: bool,
) -> Result<Option<HeaderValue>, Error> {
    let shared = &*session.0.shared;
    let Some(source) = &shared.source else {
        return Ok(None);
    };
    let Some(foreign) = session.lock().foreign.take() else {
        return Ok(None);
    };
    if foreign.claimed {
        if !committed {
            end(session, &foreign.claim).await;
            return Ok(None);
        }
        if let Err(e) = shared.timed(source.delete(&foreign.id)).await {
            // The moved session must not outlive an old one that could move again.
            end(session, &foreign.claim).await;
            session.lock().pending = None;
            return Err(e);
        }
    }
    Ok(foreign
        .remove_cookie
        .then(|| removal(source.as_ref(), session.0.secure))
        .flatten())
}

/// Releases the claim of a request whose commit failed (the next request moves the session).
pub(crate) async fn release(session: &Session) {
    let claim = {
        let st = session.lock();
        match &st.foreign {
            Some(f) if f.claimed => f.claim.clone(),
            _ => return,
        }
    };
    end(session, &claim).await;
}

/// Destroys the claim, and the session a move created from it (best effort: a claim left
/// behind lapses with the supersede grace).
async fn end(session: &Session, claim: &StoreKey) {
    if let Err(e) = crate::commit::end_key(session, claim.clone()).await {
        tracing::warn!(target: "session", error = %e, "could not undo a move; its records lapse with their TTL");
    }
}

/// The `Set-Cookie` value that removes the old library's cookie.
fn removal(source: &dyn Source, secure: bool) -> Option<HeaderValue> {
    let c = source.cookie();
    let mut v = format!("{}=; Path={}", c.name, c.path);
    if let Some(d) = &c.domain {
        v.push_str("; Domain=");
        v.push_str(d);
    }
    v.push_str("; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT");
    if secure {
        v.push_str("; Secure");
    }
    HeaderValue::from_str(&v).ok()
}
