//! The request's login state: [`AuthSession`], the extractor a handler takes.

use std::fmt;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use session_hyper::{EndReason, Session};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tokio::sync::Mutex;

use crate::backend::{AuthUser, AuthnBackend, UserId};

/// A failure of the session or of the backend.
#[derive(thiserror::Error)]
pub enum Error<Backend: AuthnBackend> {
    /// The session failed (a store failure, a login over the session limit:
    /// [`session_hyper::Error::TooManySessions`], answered 409).
    #[error(transparent)]
    Session(#[from] session_hyper::Error),
    /// The backend failed.
    #[error(transparent)]
    Backend(Backend::Error),
}

impl<Backend: AuthnBackend> fmt::Debug for Error<Backend> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Session(e) => write!(f, "Session({e:?})"),
            Error::Backend(e) => write!(f, "Backend({e:?})"),
        }
    }
}

impl<Backend: AuthnBackend> Error<Backend> {
    /// Whether this is a login the session limit refused ([`OverLimit::Refuse`]).
    ///
    /// [`OverLimit::Refuse`]: session_hyper::OverLimit::Refuse
    pub fn is_too_many_sessions(&self) -> bool {
        self.too_many_sessions().is_some()
    }

    /// The session limit a refused login met ([`OverLimit::Refuse`]), if this is one.
    ///
    /// [`OverLimit::Refuse`]: session_hyper::OverLimit::Refuse
    pub fn too_many_sessions(&self) -> Option<usize> {
        match self {
            Error::Session(session_hyper::Error::TooManySessions { max }) => Some(*max),
            _ => None,
        }
    }
}

impl<Backend: AuthnBackend> axum_core::response::IntoResponse for Error<Backend> {
    /// A session failure answers as the session layer does (503, 409, 500); a backend failure
    /// 500, without its details.
    fn into_response(self) -> axum_core::response::Response {
        match self {
            Error::Session(e) => e.response(),
            Error::Backend(e) => {
                tracing::error!(target: "session::auth", error = %e, "the auth backend failed");
                (
                    http::StatusCode::INTERNAL_SERVER_ERROR,
                    "authentication backend error",
                )
                    .into_response()
            }
        }
    }
}

/// What a login stores in the session: the user's id, and a digest of the user's
/// [`session_auth_hash`](AuthUser::session_auth_hash) (never the bytes themselves: they are
/// typically a password hash).
#[derive(Serialize, Deserialize)]
struct Stored<Id> {
    user_id: Id,
    auth: String,
}

/// Domain separation for the auth-hash digest.
const AUTH_TAG: &[u8] = b"session-auth/auth-hash/v1\0";

fn digest(auth_hash: &[u8]) -> String {
    let mut h = Sha256::new();
    h.update(AUTH_TAG);
    h.update(auth_hash);
    URL_SAFE_NO_PAD.encode(h.finalize())
}

/// The request's user, once looked up.
struct Known<User> {
    user: Option<User>,
}

/// The request's login state, taken as a handler argument (behind
/// [`AuthManagerLayer`](crate::AuthManagerLayer)): the user, if one is logged in, and
/// [`login`](Self::login) and [`logout`](Self::logout).
///
/// The user is looked up on first use, once per request: the session's user id is read, the
/// backend's [`get_user`](AuthnBackend::get_user) finds the user, and the user's
/// [`session_auth_hash`](AuthUser::session_auth_hash) is compared (in constant time) with
/// what the session recorded at login; a session whose user is gone or whose auth hash
/// changed is anonymous, and one whose hash changed ends (unless the same browser moved it to
/// a new id meanwhile: see [`Session::destroy_unless_moved`]).
pub struct AuthSession<Backend: AuthnBackend> {
    backend: Backend,
    session: Session,
    data_key: &'static str,
    device: Option<String>,
    known: Arc<Mutex<Option<Known<Backend::User>>>>,
}

impl<Backend: AuthnBackend> Clone for AuthSession<Backend> {
    fn clone(&self) -> Self {
        AuthSession {
            backend: self.backend.clone(),
            session: self.session.clone(),
            data_key: self.data_key,
            device: self.device.clone(),
            known: Arc::clone(&self.known),
        }
    }
}

impl<Backend: AuthnBackend> fmt::Debug for AuthSession<Backend> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthSession").finish_non_exhaustive()
    }
}

impl<Backend: AuthnBackend> AuthSession<Backend> {
    pub(crate) fn new(
        backend: Backend,
        session: Session,
        data_key: &'static str,
        device: Option<String>,
    ) -> Self {
        AuthSession {
            backend,
            session,
            data_key,
            device,
            known: Arc::new(Mutex::new(None)),
        }
    }

    /// The backend.
    pub fn backend(&self) -> &Backend {
        &self.backend
    }

    /// The request's session (for the app's own data, listing the user's sessions, revoking
    /// one).
    pub fn session(&self) -> &Session {
        &self.session
    }

    /// The logged-in user, if any. A failure to find out (the backend failed) is logged and
    /// answers `None`; [`try_user`](Self::try_user) reports it. (A store failure while loading
    /// the session is answered by the session layer itself with a 503.)
    pub async fn user(&self) -> Option<Backend::User> {
        match self.try_user().await {
            Ok(user) => user,
            Err(e) => {
                tracing::warn!(target: "session::auth", error = %e, "could not look the user up; treating the request as anonymous");
                None
            }
        }
    }

    /// The logged-in user, if any, or the failure that kept it from being found.
    pub async fn try_user(&self) -> Result<Option<Backend::User>, Error<Backend>> {
        let mut known = self.known.lock().await;
        if let Some(k) = known.as_ref() {
            return Ok(k.user.clone());
        }
        let user = self.look_up().await?;
        *known = Some(Known { user: user.clone() });
        Ok(user)
    }

    async fn look_up(&self) -> Result<Option<Backend::User>, Error<Backend>> {
        let stored: Option<Stored<UserId<Backend>>> = match self.session.get(self.data_key).await {
            Ok(s) => s,
            // Not what a login stored (another program's value): nobody is logged in.
            Err(session_hyper::Error::Session(_)) => None,
            Err(e) => return Err(e.into()),
        };
        let Some(stored) = stored else {
            return Ok(None);
        };
        let user = self
            .backend
            .get_user(&stored.user_id)
            .await
            .map_err(Error::Backend)?;
        let Some(user) = user else {
            return Ok(None);
        };
        let now = digest(user.session_auth_hash());
        if bool::from(now.as_bytes().ct_eq(stored.auth.as_bytes())) {
            return Ok(Some(user));
        }
        // The user's auth hash changed since this session's login (a password change this
        // session did not make): the session ends. Unless moved: the request that changed the
        // password may be one of this browser's, moving the session to a new id with the new
        // hash right now, and that one lives on.
        tracing::info!(target: "session::auth", "a session's auth hash no longer matches its user's; ending it");
        self.session.destroy_unless_moved().await?;
        Ok(None)
    }

    /// The user these credentials prove, if any (the backend's
    /// [`authenticate`](AuthnBackend::authenticate)); log them in with [`login`](Self::login).
    pub async fn authenticate(
        &self,
        creds: Backend::Credentials,
    ) -> Result<Option<Backend::User>, Error<Backend>> {
        self.backend
            .authenticate(creds)
            .await
            .map_err(Error::Backend)
    }

    /// Logs `user` in: a new session id (against session fixation), the session bound to the
    /// user (the owner is the user's id as text, the device the request's `User-Agent`), the
    /// user's id and a digest of their auth hash stored, all committed at once
    /// ([`Session::log_in_with`]). Under a session limit, a login over it is refused
    /// ([`Error::is_too_many_sessions`], and the session stays as it was) or ends the user's
    /// session bound earliest, by the limit's policy.
    ///
    /// In cookie mode and under the koa-compat preset (no owner index) the login is the new
    /// id and the stored user: no listing, limit or immediate revoke.
    pub async fn login(&mut self, user: &Backend::User) -> Result<(), Error<Backend>> {
        let value = self.stored(user)?;
        let owner = user.id().to_string();
        let key = self.data_key;
        self.session
            .log_in_with(&owner, self.device.as_deref(), |s| {
                s.insert_value(key, value)
            })
            .await?;
        *self.known.lock().await = Some(Known {
            user: Some(user.clone()),
        });
        Ok(())
    }

    /// What a login of `user` stores under the data key.
    fn stored(&self, user: &Backend::User) -> Result<serde_json::Value, Error<Backend>> {
        let stored = Stored {
            user_id: user.id(),
            auth: digest(user.session_auth_hash()),
        };
        serde_json::to_value(&stored).map_err(|_| {
            Error::Session(session_hyper::Error::Session(
                session_hyper::SessionError::Unserializable {
                    key: self.data_key.to_owned(),
                },
            ))
        })
    }

    /// Logs the user out: the session is destroyed (its record deleted, its cookies removed).
    /// Answers the user who was logged in.
    pub async fn logout(&mut self) -> Result<Option<Backend::User>, Error<Backend>> {
        let user = self.try_user().await?;
        self.session.destroy().await?;
        *self.known.lock().await = Some(Known { user: None });
        Ok(user)
    }

    /// After `user`'s password (or whatever feeds their auth hash) changed: this session is
    /// logged in again under a new id with the new hash, and every other session of the user
    /// ends at once, through the owner index: they leave the listing and are anonymous on
    /// their next request. This session is kept under every id a regenerate in another of its
    /// tabs gives it meanwhile, and the new hash is written there too, so the browser stays
    /// logged in whichever id it ends up holding. Answers how many other sessions ended.
    ///
    /// Where no owner index is kept (cookie mode, koa-compat) the others end on their next
    /// request, when their auth hash no longer matches (answers 0).
    ///
    /// Called for another user than the one logged in here (an administrator resetting a
    /// user's password), it ends every session of that user and leaves this one as it is.
    pub async fn password_changed(
        &mut self,
        user: &Backend::User,
    ) -> Result<usize, Error<Backend>> {
        let mine = self
            .try_user()
            .await?
            .is_some_and(|u| u.id().to_string() == user.id().to_string());
        if !mine {
            // Someone else's password (an administrator's reset): every session of that user
            // ends, and this one stays whose it is.
            return match self
                .session
                .revoke_all_sessions(&user.id().to_string())
                .await
            {
                Ok(n) => Ok(n),
                Err(session_hyper::Error::NoOwnerIndex) => Ok(0),
                Err(e) => Err(e.into()),
            };
        }
        self.login(user).await?;
        // A tab of this browser whose regenerate moved the session to another id meanwhile
        // keeps it, and gets the new auth hash too.
        let value = self.stored(user)?;
        match self
            .session
            .revoke_other_sessions_and_set(&user.id().to_string(), self.data_key, &value)
            .await
        {
            Ok(n) => Ok(n),
            Err(session_hyper::Error::NoOwnerIndex) => Ok(0),
            Err(e) => Err(e.into()),
        }
    }

    /// After the user with `id` was deleted: every session of theirs ends at once (this
    /// request's too, if it is one of them). Answers how many were live. Outside a request
    /// (an admin job), use [`user_deleted`](crate::user_deleted) with the layer's
    /// [`Owners`](session_hyper::Owners).
    ///
    /// Where no owner index is kept, the others end on their next request (the backend no
    /// longer finds the user), and only this request's own session ends now.
    pub async fn user_deleted(&mut self, id: &UserId<Backend>) -> Result<usize, Error<Backend>> {
        let owner = id.to_string();
        let mine = self
            .try_user()
            .await?
            .is_some_and(|u| u.id().to_string() == owner);
        let ended = match self.session.revoke_all_sessions(&owner).await {
            Ok(n) => n,
            Err(session_hyper::Error::NoOwnerIndex) => {
                if mine {
                    self.session.destroy().await?;
                }
                0
            }
            Err(e) => return Err(e.into()),
        };
        if mine {
            *self.known.lock().await = Some(Known { user: None });
        }
        Ok(ended)
    }

    /// Why the session this request brought had ended, when a login of the same user over the
    /// session limit ended it ([`EndReason::NewerLogin`]): show "you were signed out because
    /// you signed in elsewhere".
    pub async fn ended(&self) -> Result<Option<EndReason>, Error<Backend>> {
        Ok(self.session.ended().await?)
    }
}

/// Ends every session of the user with `id` (after deleting the user), from outside a
/// request: through the layer's [`Owners`](session_hyper::Owners)
/// ([`SessionLayer::owners`](session_hyper::SessionLayer::owners)). Answers how many were live.
pub async fn user_deleted<Id: fmt::Display>(
    owners: &session_hyper::Owners,
    id: &Id,
) -> Result<usize, session_hyper::Error> {
    owners.revoke_all(&id.to_string()).await
}
