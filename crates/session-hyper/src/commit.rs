//! Carries out the commit decision: store writes, then cookies (or the external key header).

use http::HeaderValue;
use http::header::SET_COOKIE;
use session_core::Data;
use session_core::Handle;
use session_core::driver::SessionDriver;
use session_core::driver::SessionId;
use session_core::driver::{commit as decide, commit::Action, commit::Plan};
use session_core::store::{
    Change, Created, Delta, DynStore, Meta, Record, StoreKey, Supersede, Updated,
};

use crate::Error;
use crate::ending::{
    Held, end_retired, end_sessions_following, presented_keys, retired_keys, unfile_retired,
};
use crate::headers::Headers;
use crate::index;
use crate::lifecycle;
use crate::session::Session;
use crate::shared::{Backend, Shared};

/// Ids drawn before giving up on a create (a collision of 256-bit ids means a broken generator).
const CREATE_ATTEMPTS: u32 = 4;

/// What the write needs, copied out of the session so no lock is held across the store calls.
enum Work {
    Cookie {
        id: Option<SessionId>,
        record: Record,
    },
    /// A new record under a freshly drawn id (a record is never filed under an id a client
    /// brought, so a planted guest cookie can't lead to someone else's data).
    Create {
        record: Record,
    },
    Save {
        id: Option<SessionId>,
        delta: Delta,
        data: Data,
    },
    Touch {
        id: Option<SessionId>,
        record: Record,
    },
    Destroy,
}

/// What the client gets told.
enum Outcome {
    /// The session lives under this id (store mode) or this payload (cookie mode).
    Write {
        id: Option<SessionId>,
        record: Record,
    },
    /// The session is gone: remove the cookies.
    Remove,
    /// A regenerate superseded the session's id meanwhile: nothing was written, and the client
    /// is told nothing (it may already hold the new cookie of the same name).
    Silent,
}

impl Session {
    /// Commits now instead of after the handler, and reports any failure to the caller (e.g. a
    /// session grown past its store's limit or a cookie's 4096 bytes). The end-of-request
    /// commit then writes only what changed after this call.
    pub async fn commit(&self) -> Result<(), Error> {
        self.ensure_loaded().await?;
        // Flash messages shown are removed only by the end-of-request commit (a page that
        // fails after this keeps them).
        self.put_back_taken(true);
        let done = commit(self).await;
        self.put_back_taken(false);
        done
    }
}

pub(crate) async fn commit(session: &Session) -> Result<(), Error> {
    session.adopt_csrf_secret();
    let inner = &session.0;
    let shared = &*inner.shared;
    let config = &shared.config;
    let now = config.now_ms();
    let cookie_mode = matches!(shared.backend, Backend::Cookie(_));
    let listening = session_core::driver::listening(config);
    let (plan, work, had_cookie, ends, before) = {
        let mut st = session.lock();
        let moving = st.from_old || st.foreign.as_ref().is_some_and(|f| f.claimed || f.drained);
        let Some(s) = st.session.as_mut() else {
            return Ok(());
        };
        let ends = s.retired().is_some_and(|r| !r.regenerated);
        let plan: Plan = decide::prepare(Some(s), config, now);
        if let (Action::Regenerate, Some(old)) = (plan.action, superseded_id(&plan)) {
            // The new record names the old one's handle from its creation on: a revoke of the
            // owner's other sessions that loaded the old id keeps it, whenever it looks.
            s.descend_from(Handle::of(&session.store_key(old)));
        }
        // Store mode writes only the id and expiry into the cookie: the data is copied out only
        // where a store or the cookie payload needs it.
        let whole_records = match &shared.backend {
            Backend::Store(store) => !store.merges_deltas_dyn(),
            Backend::Cookie(_) => true,
        };
        let record = |meta: Meta, need: bool| Record {
            data: if need { s.stored_data() } else { Data::new() },
            meta,
        };
        let work = match plan.action {
            Action::Nothing => return Ok(()),
            Action::WriteCookie => Work::Cookie {
                id: s.id().cloned(),
                record: record(plan.meta, cookie_mode),
            },
            Action::Create | Action::Regenerate => Work::Create {
                record: record(plan.meta, true),
            },
            Action::Save => {
                let delta = s.delta();
                let need = cookie_mode || whole_records || delta.replace;
                Work::Save {
                    id: s.id().cloned(),
                    data: if need { s.stored_data() } else { Data::new() },
                    delta,
                }
            }
            Action::Touch => Work::Touch {
                id: s.id().cloned(),
                record: record(plan.meta, cookie_mode),
            },
            Action::Destroy => Work::Destroy,
        };
        let before = listening.then(|| {
            let delta = match &work {
                Work::Save { delta, .. } => Some(delta),
                _ => None,
            };
            lifecycle::Before::of(s, delta, moving)
        });
        (plan, work, s.had_cookie(), ends, before)
    };
    if ends {
        crate::session::delete_old_session(session).await?;
    }
    tracing::debug!(target: "session", action = ?plan.action, row = ?plan.row, "commit");
    if plan.index.is_some() {
        // Bound through a `before_save` hook where no index is kept (cookie mode, koa-compat):
        // an error the app sees rather than a binding silently dropped.
        index::check_index(shared)?;
    }

    let outcome = match &shared.backend {
        Backend::Store(store) => store_write(session, store.as_ref(), &plan, work, now).await?,
        Backend::Cookie(_) => match work {
            Work::Destroy => Outcome::Remove,
            Work::Cookie { record, .. }
            | Work::Create { record, .. }
            | Work::Touch { record, .. } => Outcome::Write { id: None, record },
            Work::Save { data, .. } => Outcome::Write {
                id: None,
                record: Record {
                    data,
                    meta: plan.meta,
                },
            },
        },
    };

    let headers = match &outcome {
        // A save that moved the store-mode cookie's expiry by less than the refresh threshold:
        // the browser's cookie stays as it is (`Plan::send_cookie`).
        Outcome::Write { .. } if !cookie_mode && !plan.send_cookie => Headers::default(),
        Outcome::Write { id, record } => {
            // The signature the request came with still signs the same id: no new HMAC needed.
            let verified = id
                .as_ref()
                .and_then(|id| Some((id.as_str(), inner.incoming.signature_for(id)?)));
            write_headers(shared, inner.secure, id.as_ref(), record, now, verified)?
        }
        Outcome::Remove if had_cookie || plan.action != Action::Destroy => {
            remove_headers(shared, inner.secure)
        }
        Outcome::Remove | Outcome::Silent => Headers::default(),
    };

    let wrote = matches!(outcome, Outcome::Write { .. });
    let cookie_sent = !headers.is_empty();
    let mut ended = None;
    let mut st = session.lock();
    if let Some(s) = st.session.as_mut() {
        if before.is_some() {
            ended = Some(match &outcome {
                Outcome::Write { id, .. } => lifecycle::Ended::Written {
                    id: id.clone().or_else(|| s.id().cloned()),
                    owner: s.owner().map(str::to_owned),
                    cookie_sent,
                },
                Outcome::Remove => lifecycle::Ended::Removed,
                Outcome::Silent => lifecycle::Ended::Silent,
            });
        }
        match outcome {
            Outcome::Write { id, record } => {
                if let Some(id) = id {
                    s.assign_id(id);
                }
                s.mark_committed(Some(record.meta));
            }
            Outcome::Remove => {
                if !s.is_destroyed() {
                    // The record vanished under us (destroyed by another request): the session
                    // ends here too instead of coming back.
                    s.destroy();
                }
                s.mark_committed(None);
            }
            Outcome::Silent => s.mark_superseded(),
        }
        // Whatever the commit did (moved the session here, ended it, or lost the move), the
        // request's session no longer lives in the store the layer migrates from: a destroy
        // or a regenerate later in the request works on this store.
        st.from_old = false;
    }
    if let Some(f) = st.foreign.as_mut() {
        f.written |= (f.claimed || f.drained) && wrote;
    }
    if !headers.is_empty() {
        st.pending = Some(headers);
    }
    drop(st);
    if let (Some(before), Some(ended)) = (before, ended) {
        // After the lock: a subscriber may take its time, or look at the session.
        for event in lifecycle::events(session, &plan, before, ended) {
            session_core::driver::emit(config, || event);
        }
    }
    Ok(())
}

/// The store's part of a commit, at the commit's time `now` (the index entries it files and
/// removes are stamped with it: one clock reading per commit).
async fn store_write(
    session: &Session,
    store: &dyn DynStore,
    plan: &Plan,
    work: Work,
    now: u64,
) -> Result<Outcome, Error> {
    let shared = &*session.0.shared;
    let config = &shared.config;
    let ttl = std::time::Duration::from_millis(plan.ttl_ms);
    match work {
        Work::Cookie { id: None, record } => {
            // A guest cookie: a fresh id, no record yet.
            let id = config.ids().generate().map_err(Error::Random)?;
            Ok(Outcome::Write {
                id: Some(id),
                record,
            })
        }
        // A re-signed cookie (same id and expiry) and a rolling or renew extension both ask the
        // store first: a cookie for an id a login superseded meanwhile must never reach the
        // browser after the login's own cookie.
        Work::Cookie {
            id: Some(id),
            record,
        }
        | Work::Touch {
            id: Some(id),
            record,
        } => {
            let key = session.store_key(&id);
            let got = shared.timed(store.touch_dyn(&key, plan.meta, ttl)).await?;
            Ok(told(got, id, record))
        }
        Work::Touch { id: None, .. } => Ok(Outcome::Remove),
        Work::Create { record } => {
            let regenerated = superseded_id(plan);
            if regenerated.is_none() {
                // An identity that ends for good (destroyed, expired, rejected) goes first.
                end_retired(session, store, plan, now).await?;
            }
            let Some((id, key)) = create_fresh(session, store, &record, ttl, plan, now).await?
            else {
                // The session this regenerate renews was ended by a session limit meanwhile.
                return Ok(Outcome::Remove);
            };
            let Some(old) = regenerated else {
                return Ok(Outcome::Write {
                    id: Some(id),
                    record,
                });
            };
            // The old record is superseded only now that the new one exists, and only if it is
            // still there: a destroy that got there first wins, in either order. A session
            // moving from the store the layer migrates from is superseded there: one move wins.
            let old_key = session.store_key(old);
            let grace = config.supersede_grace();
            let from_old = session.lock().from_old;
            let old_store = match (&shared.migrate_from, from_old) {
                (Some(old), true) => old.as_ref(),
                _ => store,
            };
            let ended = shared
                .timed(old_store.supersede_dyn(&old_key, &key, grace))
                .await;
            let outcome = match ended {
                Ok(Supersede::Replaced) => {
                    // The old id's entry goes (the session is listed under its new one), off
                    // the request's path: a login costs one index call.
                    if let Some(owner) = plan.retire.as_ref().and_then(|r| r.owner.clone()) {
                        index::unfile_later(&session.0.shared, owner, old_key, now, from_old);
                    }
                    if from_old {
                        tracing::info!(target: "session", "moved a session from the old store");
                    }
                    return Ok(Outcome::Write {
                        id: Some(id),
                        record,
                    });
                }
                Ok(Supersede::Missing) => {
                    tracing::debug!(target: "session", "regenerate lost to a destroy; ending as a destroy");
                    Outcome::Remove
                }
                Ok(Supersede::AlreadySuperseded) => {
                    tracing::debug!(target: "session", "regenerate lost to another regenerate; dropping its record");
                    Outcome::Silent
                }
                Err(e) => {
                    // Nobody will get the new id: its record goes, and its entry.
                    forget(session, plan, &key, now);
                    return Err(e);
                }
            };
            forget(session, plan, &key, now);
            match shared.timed(store.destroy_dyn(&key)).await {
                Ok(_) => Ok(outcome),
                Err(e) => {
                    shared.discard(key);
                    Err(e)
                }
            }
        }
        Work::Save { id, delta, data } => {
            let Some(id) = id else {
                return Ok(Outcome::Remove);
            };
            let change = Change {
                delta: &delta,
                data: &data,
                meta: plan.meta,
            };
            let key = session.store_key(&id);
            if let Some(binding) = &plan.index {
                // The index first: a session whose record is written is always listed. A
                // session bound here without a regenerate is admitted under the limit.
                let limit = login_limit(session);
                let admitted =
                    index::admit(shared, binding, &key, now, plan.index_new, None, limit).await?;
                if let index::Admission::Filed(ended) = admitted {
                    crate::limit::end_sessions_detached(
                        &session.0.shared,
                        &binding.owner,
                        ended,
                        now,
                    )
                    .await?;
                }
            }
            let got = shared.timed(store.save_dyn(&key, change, ttl)).await?;
            if let (Some(binding), Updated::NotFound | Updated::Superseded) = (&plan.index, got) {
                // The entry just written names a record that is gone (revoked, or moved to a
                // new id whose own entry lists it): it goes again.
                index::unfile(shared, &binding.owner, &key, now, false).await;
            }
            let meta = plan.meta;
            Ok(told(got, id, Record { data, meta }))
        }
        Work::Destroy => {
            let mut keys = retired_keys(session, plan);
            let migrating = shared.migrate_from.is_some();
            for key in presented_keys(session, plan) {
                // An id among planted cookies may not have moved yet: it ends in both stores.
                if migrating {
                    keys.push(Held {
                        key: key.clone(),
                        old: true,
                    });
                }
                keys.push(Held::here(key));
            }
            let follow = !session.lock().unless_moved;
            let moved = end_sessions_following(session, store, keys, follow).await?;
            unfile_retired(session, plan, now).await;
            if moved && !follow {
                // `destroy_unless_moved`: another request of this browser moved the session to
                // a new id meanwhile; it lives on there, and the browser's cookie is left alone.
                return Ok(Outcome::Silent);
            }
            Ok(Outcome::Remove)
        }
    }
}

/// The id a regenerate moves away from, when the plan creates its successor and then
/// supersedes it (store mode: an id whose record exists).
fn superseded_id(plan: &Plan) -> Option<&SessionId> {
    let r = plan.retire.as_ref()?;
    (r.regenerated && r.record_exists).then_some(r.id.as_ref())?
}

/// What the client is told after a save or touch of `id`: the cookie again, a removal (the
/// record is gone: destroyed or expired meanwhile), or nothing (a login superseded the id).
fn told(got: Updated, id: SessionId, record: Record) -> Outcome {
    match got {
        Updated::Updated => Outcome::Write {
            id: Some(id),
            record,
        },
        Updated::NotFound => Outcome::Remove,
        Updated::Superseded => Outcome::Silent,
    }
}

/// Inserts `record` under a freshly drawn id (drawing again on a collision). A session bound
/// to an owner is filed in the owner's index first.
///
/// `None` when the session a regenerate renews was ended by a session limit meanwhile: nothing
/// is created, and the commit ends as a destroy.
async fn create_fresh(
    session: &Session,
    store: &dyn DynStore,
    record: &Record,
    ttl: std::time::Duration,
    plan: &Plan,
    now: u64,
) -> Result<Option<(SessionId, StoreKey)>, Error> {
    let shared = &*session.0.shared;
    let config = &shared.config;
    let limit = login_limit(session);
    // A regenerate of a session bound to the same owner: the two are one session, counted once.
    let replaces = superseded_id(plan)
        .filter(|_| {
            plan.retire.as_ref().and_then(|r| r.owner.as_ref())
                == plan.index.as_ref().map(|b| &b.owner)
        })
        .map(|old| Handle::of(&session.store_key(old)));
    for _ in 0..CREATE_ATTEMPTS {
        let id = config.ids().generate().map_err(Error::Random)?;
        let key = config.key_derivation().derive(&id);
        if let Some(binding) = &plan.index {
            let admitted = index::admit(
                shared,
                binding,
                &key,
                now,
                plan.index_new,
                replaces.as_ref(),
                limit,
            )
            .await?;
            let ended = match admitted {
                index::Admission::Filed(ended) => ended,
                index::Admission::Ended => return Ok(None),
            };
            // Ended before the login answers, on a task the request can't cut short (the
            // index no longer lists them: a listing never shows more than the limit). If that
            // fails, the login fails, and its entry goes.
            if let Err(e) =
                crate::limit::end_sessions_detached(&session.0.shared, &binding.owner, ended, now)
                    .await
            {
                index::unfile_later(&session.0.shared, binding.owner.clone(), key, now, false);
                return Err(e);
            }
        }
        match shared.timed(store.create_dyn(&key, record, ttl)).await {
            Ok(Created::Inserted) => return Ok(Some((id, key))),
            Ok(Created::Collision) if crate::limit::marked(shared, store, &key).await? => {
                // A newer login of the owner ended this one before its record was created
                // (it left its marker under the key): the session is over, and its cookie
                // leads the browser to the marker, which tells its next request why.
                return Ok(Some((id, key)));
            }
            Ok(Created::Collision) => {
                tracing::warn!(target: "session", "session id collision; drawing another id");
                // The record there is someone else's: only this attempt's entry goes.
                if let Some(binding) = &plan.index {
                    index::unfile_later(&session.0.shared, binding.owner.clone(), key, now, false);
                }
            }
            Err(e) => {
                // A create that timed out (or failed on the way back) may have landed; nobody
                // will get this id: its record goes, and its entry.
                forget(session, plan, &key, now);
                return Err(e);
            }
        }
    }
    Err(Error::Collisions(CREATE_ATTEMPTS))
}

/// The session limit this request's binding is admitted under: the one its handler set, else
/// the layer's. None for a session moving from the store the layer migrates from: a move is no
/// new login (the limit counts the owner's sessions in this store; the move neither counts nor
/// ends any).
fn login_limit(session: &Session) -> Option<session_core::SessionLimit> {
    let st = session.lock();
    index::limit_of(&session.0.shared, st.limit).filter(|_| !st.from_old)
}

/// A record this commit created (or tried to) that nobody will get: it goes, in the
/// background (the store may be why), and so does its owner-index entry, so a failed or lost
/// login never counts against a limit.
fn forget(session: &Session, plan: &Plan, key: &StoreKey, now: u64) {
    session.0.shared.discard(key.clone());
    if let Some(binding) = &plan.index {
        index::unfile_later(
            &session.0.shared,
            binding.owner.clone(),
            key.clone(),
            now,
            false,
        );
    }
}

fn write_headers(
    shared: &Shared,
    secure: bool,
    id: Option<&SessionId>,
    record: &Record,
    now: u64,
    verified: Option<(&str, &session_cookie::Signature)>,
) -> Result<Headers, Error> {
    if let (Some(h), Some(id)) = (&shared.external_key, id) {
        return Ok(Headers::one(h.clone(), id.as_str()));
    }
    let encoded;
    let value = match (&shared.backend, id) {
        (Backend::Store(_), Some(id)) => id.as_str(),
        (Backend::Cookie(codec), _) => {
            encoded = codec.encode(record)?;
            encoded.as_str()
        }
        (Backend::Store(_), None) => return Ok(Headers::default()),
    };
    let secure = shared.config.cookie().secure_for(secure);
    let set = shared
        .cookies
        .write_reusing(value, record.meta.expire, now, secure, verified)?;
    Ok(owned_headers(set))
}

fn remove_headers(shared: &Shared, secure: bool) -> Headers {
    if let Some(h) = &shared.external_key {
        return Headers::one(h.clone(), "");
    }
    let secure = shared.config.cookie().secure_for(secure);
    owned_headers(shared.cookies.removal(secure))
}

/// The `Set-Cookie` headers of `set`, moving the formatted strings into the header values
/// instead of copying them.
fn owned_headers(set: session_cookie::SetCookies) -> Headers {
    let mut out = Headers::default();
    for v in std::iter::once(set.value).chain(set.sig) {
        // Checked cookie-octets and attributes, so this only fails on a bug. The strings are
        // exactly sized, so they become header values without another allocation.
        if let Ok(v) = HeaderValue::try_from(v) {
            out.push(SET_COOKIE, v);
        }
    }
    out
}
