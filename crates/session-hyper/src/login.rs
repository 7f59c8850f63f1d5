//! Logging a user in on the request's session: a regenerate and an owner binding, committed at
//! once under the owner's session limit, and undone if the limit refuses it.

use session_core::{EndReason, SessionLimit};

use crate::Error;
use crate::commit::commit;
use crate::index::{check_index, index_of};
use crate::session::Session;

impl Session {
    /// Logs `owner` (an app-chosen user id) in on this session: a new id
    /// ([`Session::regenerate`]), the session bound to the owner with the device description
    /// given (see [`Session::set_owner_with_device`]), and a commit now, so the caller learns
    /// at once whether the owner's session limit admits it
    /// ([`SessionLayerBuilder::max_sessions_per_owner`](crate::SessionLayerBuilder::max_sessions_per_owner)).
    ///
    /// A refused login ([`Error::TooManySessions`]) leaves the session exactly as it was before
    /// the call: same id, same data, not bound; nothing was written. Where no owner index is
    /// kept (cookie mode, koa-compat) the login is only the regenerate and its commit: the app
    /// keeps the user in the session's data, and there is no listing, limit or revoke.
    ///
    /// ```no_run
    /// # async fn handler(session: session_hyper::Session) -> Result<(), session_hyper::Error> {
    /// match session.log_in("user-42", Some("Firefox on Linux")).await {
    ///     Ok(()) => { /* signed in */ }
    ///     Err(e @ session_hyper::Error::TooManySessions { .. }) => { /* show e, a 409 */ }
    ///     Err(e) => return Err(e),
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn log_in(&self, owner: &str, device: Option<&str>) -> Result<(), Error> {
        self.log_in_with(owner, device, |_| Ok(())).await
    }

    /// [`Session::log_in`], with `set` run on the session after the regenerate and before the
    /// commit (what the login stores, such as the user's id, goes in the same write, and is
    /// undone with the rest if the login is refused).
    pub async fn log_in_with(
        &self,
        owner: &str,
        device: Option<&str>,
        set: impl FnOnce(&mut session_core::SessionState) -> Result<(), session_core::SessionError>,
    ) -> Result<(), Error> {
        self.ensure_loaded().await?;
        let indexed = index_of(&self.0.shared).is_ok();
        let (before, nonce_before) = {
            let st = self.lock();
            (st.session.clone(), st.page.new_nonce.clone())
        };
        let bound = self
            .with(|s| {
                s.regenerate();
                if indexed {
                    s.set_owner(owner, device)?;
                }
                set(s)
            })
            .await?;
        let done = match bound {
            Ok(()) => {
                // As `Session::commit`: shown messages are removed by the end-of-request commit.
                self.put_back_taken(true);
                let done = commit(self).await;
                self.put_back_taken(false);
                done
            }
            Err(e) => Err(e.into()),
        };
        if done.is_err() {
            // A failed commit changes nothing of the request's session but what preparing it
            // did (a record it created is discarded): the session is as it was before the call.
            // That includes a CSRF nonce drawn for the renewed session's secret.
            let mut st = self.lock();
            st.session = before;
            st.page.new_nonce = nonce_before;
        }
        done
    }

    /// Sets the session limit this request's login is admitted under, in place of the
    /// layer's (a per-user override: an administrator allowed more devices, a kiosk account
    /// one). Fails with [`Error::NoOwnerIndex`] where no owner index is kept.
    pub async fn limit_sessions(&self, limit: SessionLimit) -> Result<(), Error> {
        check_index(&self.0.shared)?;
        let (_, index) = index_of(&self.0.shared)?;
        if !index.admits() {
            return Err(Error::NoOwnerIndex);
        }
        self.ensure_loaded().await?;
        self.lock().limit = Some(limit);
        Ok(())
    }

    /// Why the session this request brought had ended, when the middleware ended it and its
    /// marker is still there: [`EndReason::NewerLogin`] when a login of the same user over the
    /// session limit ended it ("you were signed out because you signed in elsewhere"). The
    /// request's session is a new, anonymous one.
    pub async fn ended(&self) -> Result<Option<EndReason>, Error> {
        self.with(|s| s.ended()).await
    }

    /// Ends the session as [`Session::destroy`] does, unless another request of the same
    /// browser moved it to a new id meanwhile (a regenerate in another tab): then only the
    /// record this request loaded goes, the session lives on under its new id, and the
    /// browser's cookies are left alone. For ending a session on a check that its newer id
    /// may already pass (an auth hash the same browser is renewing right now).
    pub async fn destroy_unless_moved(&self) -> Result<(), Error> {
        self.with(|s| s.destroy()).await?;
        self.lock().unless_moved = true;
        Ok(())
    }
}
