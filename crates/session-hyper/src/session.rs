//! The `Session` a handler finds in the request extensions: the request's session.

use std::sync::{Arc, Mutex, MutexGuard};

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use session_core::driver::SessionId;
use session_core::driver::{SessionDriver, Source};
use session_core::store::{DynStore, Loaded, StoreError, StoreKey};
use session_core::{Data, MaxAge, SessionState as Core};
use tokio::sync::OnceCell;

use crate::Error;
use crate::headers::Headers;
use crate::shared::{Backend, Shared};

mod moving;
mod presented;
pub use moving::MAX_MOVED_BYTES;
pub(crate) use moving::{
    Foreign, MOVED_KEY, claim_key, delete_old_session, refused, release_old_claim,
};
pub(crate) use presented::{Candidate, Candidates, Presented};

pub(crate) struct State {
    pub(crate) session: Option<Core>,
    /// `Set-Cookie` (or external key) headers of the last successful commit.
    pub(crate) pending: Option<Headers>,
    /// A store failure the handler met; the response becomes the error response.
    pub(crate) failed: Option<Error>,
    /// The session was loaded from the store the layer migrates from (its record, or a marker
    /// a move left there): the commit moves it, or ends it there.
    pub(crate) from_old: bool,
    /// The claim key this request created to move its session from the old store: released
    /// when nothing moved (a 5xx, a failed commit), else left to lapse.
    pub(crate) old_claim: Option<StoreKey>,
    /// The request carried an old library's session (see `crate::moved`).
    pub(crate) foreign: Option<Foreign>,
    /// The session limit this request's login is admitted under, when the handler set one
    /// ([`Session::limit_sessions`]); else the layer's.
    pub(crate) limit: Option<session_core::SessionLimit>,
    /// [`Session::destroy_unless_moved`]: the destroy ends the record this request loaded
    /// only, and nothing if a regenerate moved it meanwhile.
    pub(crate) unless_moved: bool,
    /// Flash messages taken and the CSRF nonce to set (see `crate::page`).
    pub(crate) page: crate::page::Pending,
}

pub(crate) struct Inner {
    pub(crate) shared: Arc<Shared>,
    pub(crate) incoming: Presented,
    /// The request's `Cookie` fields, kept only when it sent more cookies of the session's name
    /// than are checked: a destroy then looks further for the sessions among them.
    pub(crate) hidden: Option<Vec<http::HeaderValue>>,
    pub(crate) secure: bool,
    /// The old session id a validly issued cookie of the source the layer migrates from
    /// carries, where the request brought no session cookie of ours.
    pub(crate) old: Option<String>,
    pub(crate) loaded: OnceCell<()>,
    pub(crate) state: Mutex<State>,
    /// The id the session was loaded under and its store key (a SHA-256), derived once per
    /// request for the load and reused by the commit.
    pub(crate) loaded_key: std::sync::OnceLock<(SessionId, StoreKey)>,
    /// What kind of request this is, and the CSRF nonces it brought (see `crate::page`).
    pub(crate) page: crate::page::Page,
}

impl Drop for Inner {
    /// A request dropped after it claimed a move (the client went away mid-request, a time
    /// limit cut it short): the claim goes, with the session a commit may have created from it,
    /// in the background. The old session is still there, and the next request moves it;
    /// otherwise every request with the old cookie would be anonymous until the claim lapsed.
    fn drop(&mut self) {
        let st = self.state.get_mut().unwrap_or_else(|p| p.into_inner());
        // A move from our own old store claimed and not released: its placeholder goes too.
        let placeholder = st.old_claim.take();
        let claim = st
            .foreign
            .take()
            .filter(|f| f.claimed && !f.deleted)
            .map(|f| f.claim);
        if claim.is_none() && placeholder.is_none() {
            return;
        }
        let (Backend::Store(store), Ok(runtime)) =
            (&self.shared.backend, tokio::runtime::Handle::try_current())
        else {
            return;
        };
        let (store, limit) = (Arc::clone(store), self.shared.store_timeout);
        let now = self.shared.config.now_ms();
        runtime.spawn(async move {
            if let Some(p) = placeholder {
                moving::lapse(store.as_ref(), &p, now, limit).await;
            }
            let Some(claim) = claim else {
                return;
            };
            let ended = tokio::time::timeout(limit, store.destroy_dyn(&claim)).await;
            if let Ok(Ok(session_core::store::Destroyed::Superseded(next))) = ended {
                let _ = tokio::time::timeout(limit, store.destroy_dyn(&next)).await;
            }
        });
    }
}

/// One request's session. Cheap to clone (clones share it), `Send + Sync`; no lock is held
/// across an `.await`, so clones can be used from several tasks without deadlock.
///
/// The session is loaded from the store on first use: a request whose handler never touches
/// it costs no store I/O. Every accessor is therefore `async` and fallible: a store failure
/// surfaces as [`Error::Store`], and the middleware answers 503 (or what the app's error hook
/// says) whatever the handler returns.
///
/// A handler reads and changes the session, destroys or regenerates it; what only the
/// middleware does (assigning ids, recording commits, re-signing) is out of its reach, and the
/// session model itself is never handed out:
///
/// ```compile_fail,E0624
/// async fn handler(session: session_hyper::Session) {
///     let _ = session.with(|s| s.is_new()).await; // crate-private
/// }
/// ```
///
/// ```compile_fail,E0599
/// async fn handler(session: session_hyper::Session, id: session_core::driver::SessionId) {
///     session.assign_id(id); // a driver method: not on the handle
/// }
/// ```
#[derive(Clone)]
pub struct Session(pub(crate) Arc<Inner>);

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("loaded", &self.0.loaded.initialized())
            .finish_non_exhaustive()
    }
}

impl Session {
    pub(crate) fn new(
        shared: Arc<Shared>,
        incoming: Presented,
        hidden: Option<Vec<http::HeaderValue>>,
        secure: bool,
        old: Option<String>,
        page: crate::page::Page,
    ) -> Self {
        Self(Arc::new(Inner {
            shared,
            incoming,
            hidden,
            secure,
            old,
            page,
            loaded: OnceCell::new(),
            loaded_key: std::sync::OnceLock::new(),
            state: Mutex::new(State {
                session: None,
                pending: None,
                failed: None,
                from_old: false,
                old_claim: None,
                foreign: None,
                limit: None,
                unless_moved: false,
                page: crate::page::Pending::default(),
            }),
        }))
    }

    /// The session of a request, from its extensions (for plain hyper handlers).
    pub fn from_request<B>(req: &http::Request<B>) -> Result<Session, Error> {
        req.extensions()
            .get::<Session>()
            .cloned()
            .ok_or(Error::Missing)
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        // Every update under this lock is a single step, so a poisoned lock is still coherent.
        self.0.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The store key of `id`; the loaded id's is derived only once per request.
    pub(crate) fn store_key(&self, id: &SessionId) -> StoreKey {
        match self.0.loaded_key.get() {
            Some((loaded, key)) if loaded == id => key.clone(),
            _ => self.0.shared.config.key_derivation().derive(id),
        }
    }

    /// Whether the handler (or the commit) has loaded the session.
    pub(crate) fn is_loaded(&self) -> bool {
        self.0.loaded.initialized()
    }

    /// Loads the session once; concurrent callers wait for the same load.
    pub(crate) async fn ensure_loaded(&self) -> Result<(), Error> {
        let inner = &self.0;
        let res = inner
            .loaded
            .get_or_try_init(|| async {
                let shared = &inner.shared;
                let config = &shared.config;
                let mut from_old = false;
                let mut foreign = None;
                let mut old_claim = None;
                let (source, resign) = match (&inner.incoming, &shared.backend) {
                    (Presented::None, Backend::Store(store)) if inner.old.is_some() => {
                        let (source, moving) = self.load_moving(store.as_ref()).await?;
                        foreign = moving;
                        (source, false)
                    }
                    (Presented::None, _) => (Source::None, false),
                    (Presented::Ambiguous, _) => (Source::Ambiguous, false),
                    (Presented::Ids(ids), Backend::Store(store)) => {
                        let found = self.load_first_live(store.as_ref(), ids).await?;
                        let dead = !session_core::driver::is_live_now(config, &found.source)
                            && !matches!(
                                found.source,
                                Source::Store {
                                    record: Loaded::Superseded,
                                    ..
                                }
                            );
                        if dead && inner.old.is_some() {
                            // Our cookie leads nowhere (a guest id, a session that ended) and
                            // the old library's cookie is here: that session moves.
                            let (source, moving) = self.load_moving(store.as_ref()).await?;
                            foreign = moving;
                            (source, false)
                        } else {
                            from_old = found.from_old;
                            foreign = found.foreign;
                            old_claim = found.claim;
                            (found.source, found.resign)
                        }
                    }
                    (Presented::Payloads(payloads), Backend::Cookie(codec)) => {
                        first_live_payload(config, codec.as_ref(), payloads)
                    }
                    _ => (Source::None, false),
                };
                let mut session = Core::start(config, source);
                session.set_resign(resign && !session.is_new());
                let claimed = foreign
                    .as_ref()
                    .is_some_and(|f: &Foreign| f.claimed || f.drained);
                if (from_old || claimed) && !session.is_new() {
                    // A session of the store the layer migrates from moves now: under a new id
                    // of ours, as a login's regenerate moves one (the commit creates it here
                    // and supersedes the old record there).
                    session.regenerate();
                    tracing::debug!(target: "session", "moving a session from the old store");
                }
                let mut st = self.lock();
                st.session = Some(session);
                st.from_old = from_old;
                st.old_claim = old_claim;
                st.foreign = foreign;
                Ok::<(), Error>(())
            })
            .await;
        match res {
            Ok(()) => Ok(()),
            Err(e) => {
                // Remembered so the response becomes the error response, whatever the handler
                // makes of the error; the handler gets an equivalent error.
                let copy = clone_error(&e);
                self.lock().failed.get_or_insert(e);
                Err(copy)
            }
        }
    }

    /// The session of the first id whose record is live (and not expired or refused by the
    /// `valid` hook). Failing that, while the layer migrates from another store, the first id
    /// whose record is missing here and live there (it moves). Failing that, the first
    /// superseded one, here or there (anonymous, cookies left alone); failing that, ambiguous
    /// if more ids were sent than are checked; else the first id as it loaded (missed, expired
    /// or refused: it ends as usual).
    ///
    /// The old store is asked only for ids this store has no record or marker of: a session
    /// that lives here, or a move's marker, never costs the old store a call.
    async fn load_first_live(
        &self,
        store: &dyn DynStore,
        ids: &Candidates<SessionId>,
    ) -> Result<Found, Error> {
        let shared = &*self.0.shared;
        let config = &shared.config;
        let (mut superseded, mut dead) = (None, None);
        let mut missing = Vec::new();
        for candidate in ids.iter() {
            let key = config.key_derivation().derive(&candidate.value);
            let record = match self.load_or_drop(store, &key).await? {
                // A drained session waits for its old library's cookie, never for one of ours
                // (an id a custom generator made to look like its claim).
                Loaded::Live(r) if r.data.contains_key(MOVED_KEY) => Loaded::Missing,
                // Superseded by the marker of a session limit: the session ended, and its
                // request is told why (the marker loads as the record).
                Loaded::Superseded if crate::limit::markers_kept(shared) => {
                    crate::limit::ended_instead(shared, store, &key).await?
                }
                other => other,
            };
            let source = Source::Store {
                id: candidate.value.clone(),
                record,
            };
            if session_core::driver::is_live_now(config, &source) {
                let _ = self.0.loaded_key.set((candidate.value.clone(), key));
                return Ok(Found::here(source, candidate.resign));
            }
            let slot = match source {
                Source::Store {
                    record: Loaded::Superseded,
                    ..
                } => &mut superseded,
                Source::Store {
                    record: Loaded::Missing,
                    ..
                } => {
                    missing.push((candidate, key));
                    &mut dead
                }
                _ => &mut dead,
            };
            slot.get_or_insert((source, false));
        }
        if let Some(old) = &shared.migrate_from
            && let Some(found) = self
                .move_from_old_store(store, old.as_ref(), missing, &mut superseded)
                .await?
        {
            return Ok(found);
        }
        Ok(match (superseded, dead) {
            (Some((stale, from_old)), _) => Found {
                source: stale,
                resign: false,
                from_old,
                foreign: None,
                claim: None,
            },
            _ if ids.unchecked => Found::here(Source::Ambiguous, false),
            (None, Some((first, _))) => Found::here(first, false),
            (None, None) => Found::here(Source::None, false),
        })
    }

    /// Loads a record; one that can't be decoded counts as missing, and goes.
    pub(crate) async fn load_or_drop(
        &self,
        store: &dyn DynStore,
        key: &StoreKey,
    ) -> Result<Loaded, Error> {
        let shared = &self.0.shared;
        match shared.timed(store.load_dyn(key)).await {
            Err(Error::Store(StoreError::Corrupt(why))) => {
                // Never a 500 loop on a record another program wrote or a bug broke.
                tracing::warn!(
                    target: "session",
                    reason = %why,
                    "stored session record can't be decoded; deleting it and starting a new session"
                );
                if let Err(e) = shared.timed(store.destroy_dyn(key)).await {
                    tracing::warn!(target: "session", error = %e, "could not delete the undecodable record");
                }
                Ok(Loaded::Missing)
            }
            other => other,
        }
    }

    /// Runs `f` on the loaded session (crate-private: a handler gets the methods below, never
    /// the session model itself).
    pub(crate) async fn with<R>(&self, f: impl FnOnce(&mut Core) -> R) -> Result<R, Error> {
        self.ensure_loaded().await?;
        let mut st = self.lock();
        match st.session.as_mut() {
            Some(s) => Ok(f(s)),
            None => Err(Error::Missing),
        }
    }

    /// A key's value as `T`; `None` when absent.
    pub async fn get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, Error> {
        Ok(self.with(|s| s.get::<T>(key)).await??)
    }

    /// A key's raw JSON value.
    pub async fn get_value(&self, key: &str) -> Result<Option<Value>, Error> {
        self.with(|s| s.get_value(key).cloned()).await
    }

    /// Sets a key (`_`-prefixed keys are reserved and rejected).
    pub async fn insert(&self, key: &str, value: impl Serialize) -> Result<(), Error> {
        let value = serde_json::to_value(value).map_err(|_| {
            Error::Session(session_core::SessionError::Unserializable {
                key: key.to_owned(),
            })
        })?;
        Ok(self.with(|s| s.insert_value(key, value)).await??)
    }

    /// Removes a key, returning its value.
    pub async fn remove(&self, key: &str) -> Result<Option<Value>, Error> {
        self.with(|s| s.remove(key)).await
    }

    /// Removes every key.
    pub async fn clear(&self) -> Result<(), Error> {
        self.with(Core::clear).await
    }

    /// A copy of the user data.
    pub async fn data(&self) -> Result<Data, Error> {
        self.with(|s| s.data().clone()).await
    }

    /// koa's `isNew`.
    pub async fn is_new(&self) -> Result<bool, Error> {
        self.with(|s| s.is_new()).await
    }

    /// koa's `populated`.
    pub async fn is_populated(&self) -> Result<bool, Error> {
        self.with(|s| s.is_populated()).await
    }

    /// Ends the session: its record is deleted and its cookies removed at commit.
    pub async fn destroy(&self) -> Result<(), Error> {
        self.with(Core::destroy).await
    }

    /// New id, same data; the old record is deleted once the new one exists. Call it on login
    /// and on every privilege change.
    pub async fn regenerate(&self) -> Result<(), Error> {
        self.with(Core::regenerate).await
    }

    /// Forces a write at commit even if nothing changed.
    pub async fn save(&self) -> Result<(), Error> {
        self.with(Core::save).await
    }

    /// This session's max-age.
    pub async fn max_age(&self) -> Result<MaxAge, Error> {
        self.with(|s| s.max_age()).await
    }

    /// Changes this session's max-age (forces a write).
    pub async fn set_max_age(&self, max_age: MaxAge) -> Result<(), Error> {
        self.with(|s| s.set_max_age(max_age)).await
    }
}

/// What a store-mode load found: the source the session starts from, whether its cookie must
/// be re-signed, and whether it came from the store the layer migrates from.
struct Found {
    source: Source,
    resign: bool,
    from_old: bool,
    /// A session a drain of the old store wrote here (see `moving`).
    foreign: Option<Foreign>,
    /// The claim this request holds on the move of a session from the old store.
    claim: Option<StoreKey>,
}

impl Found {
    fn here(source: Source, resign: bool) -> Self {
        Self {
            source,
            resign,
            from_old: false,
            foreign: None,
            claim: None,
        }
    }
}

/// The session of the first payload that decodes and is live (not expired, not tampered,
/// accepted by the `valid` hook). Failing that, ambiguous if more were sent than are checked;
/// else the first payload as it is (its expiry or rejection ends it as usual).
fn first_live_payload(
    config: &session_core::Config,
    codec: &dyn session_cookie::Codec,
    payloads: &Candidates<String>,
) -> (Source, bool) {
    // Re-sign (re-encrypt) when the signature or the codec's own key was an older one.
    let decode = |c: &Candidate<String>| match codec.decode_with_key(&c.value, config.max_age()) {
        Some(d) => (
            Source::Cookie(d.record),
            c.resign || d.key != session_cookie::KeyMatch::Newest,
        ),
        None => (Source::Undecodable, c.resign),
    };
    for candidate in payloads.iter() {
        let (source, resign) = decode(candidate);
        if session_core::driver::is_live_now(config, &source) {
            return (source, resign);
        }
    }
    if payloads.unchecked {
        return (Source::Ambiguous, false);
    }
    decode(&payloads.first)
}

/// Store errors are not `Clone` (they may wrap sources); rebuild an equivalent one.
fn clone_error(e: &Error) -> Error {
    use session_core::store::StoreError as S;
    match e {
        Error::Store(s) => Error::Store(match s {
            S::Unavailable(m) => S::Unavailable(m.clone()),
            S::Timeout(d) => S::Timeout(*d),
            S::Rejected(m) => S::Rejected(m.clone()),
            S::Corrupt(m) => S::Corrupt(m.clone()),
            S::TooLarge { size, limit } => S::TooLarge {
                size: *size,
                limit: *limit,
            },
            other => S::Backend(other.to_string()),
        }),
        other => Error::Store(session_core::store::StoreError::Backend(other.to_string())),
    }
}
