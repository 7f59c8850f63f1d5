//! The owner operations a handler calls on its request's session: binding it, listing the
//! owner's sessions (marking the caller's), revoking one, all, or all but the caller's. The
//! work is `crate::owners`'; this knows which sessions are the caller's.

use session_core::Handle;
use session_core::SessionInfo;
use session_core::driver::SessionDriver;

use crate::Error;
use crate::index::index_of;
use crate::owners::{Carry, Revoker, Spare, list, revoke_all, revoke_one};
use crate::session::Session;

/// Owner operations on a request's session.
///
/// The `owner` these methods take is trusted: they list or revoke whatever owner they are
/// given (a handle is only looked up among that owner's sessions). Take it from the session
/// ([`Session::owner`]) or from the app's own authorization, never from the request as sent.
///
/// Errors: [`Error::NoOwnerIndex`] where no index is kept (cookie mode, koa-compat, the Redis
/// store in koa's format); [`Error::Session`] with [`SessionError::Owner`](crate::SessionError::Owner) for an empty or
/// over-long owner id, or [`SessionError::OwnerChange`](crate::SessionError::OwnerChange) when binding a session bound to
/// another owner without `regenerate()` first; [`Error::Store`] when the store fails (a 503).
impl Session {
    /// Binds this session to `owner` (an app-chosen user id), so it is listed among the
    /// owner's sessions and ends with a revoke of them. Call it at login, right after
    /// [`Session::regenerate`]. Binding costs one store call at commit; a session without an
    /// owner costs nothing extra.
    ///
    /// Fails with [`Error::NoOwnerIndex`] in cookie mode, under the koa-compat preset, or on a
    /// store that keeps no owner index; with a [`SessionError`](crate::SessionError) for an empty or over-long
    /// owner id, or when the session is bound to another owner and was not regenerated first.
    pub async fn set_owner(&self, owner: &str) -> Result<(), Error> {
        index_of(&self.0.shared)?;
        Ok(self.with(|s| s.set_owner(owner, None)).await??)
    }

    /// [`Session::set_owner`] with a description of the device (what the app wants its users
    /// to see in a listing, e.g. "Firefox on Linux"; at most 256 bytes).
    pub async fn set_owner_with_device(&self, owner: &str, device: &str) -> Result<(), Error> {
        index_of(&self.0.shared)?;
        Ok(self.with(|s| s.set_owner(owner, Some(device))).await??)
    }

    /// The owner this session is bound to, if any: the owner to list and revoke for on an
    /// account page.
    pub async fn owner(&self) -> Result<Option<String>, Error> {
        self.with(|s| s.owner().map(str::to_owned)).await
    }

    /// The handles this request's session is filed under: its id's, and after a
    /// `regenerate()` not yet committed, the id it is leaving (whose record the commit moves
    /// to the new one); and the id the request carried if another request's regenerate
    /// superseded it (the browser's session lives on under that one's successor: a login
    /// here that lost to a regenerate in another tab).
    async fn own_handles(&self) -> Result<Vec<Handle>, Error> {
        let ids = self
            .with(|s| {
                let leaving = s
                    .retired()
                    .filter(|r| r.regenerated && r.record_exists)
                    .and_then(|r| r.id.clone());
                (s.id().cloned(), leaving, s.superseded_id().cloned())
            })
            .await?;
        Ok([ids.0, ids.1, ids.2]
            .into_iter()
            .flatten()
            .map(|id| Handle::of(&self.store_key(&id)))
            .collect())
    }

    /// The owner's live sessions, newest activity first; `current` marks this request's own.
    /// A listing shows handles, never ids, store keys or cookie values. A session bound in
    /// this request is filed at its commit, so it is listed from the next request on (or after
    /// [`Session::commit`]). Costs one index call and one read per session listed.
    pub async fn list_sessions(&self, owner: &str) -> Result<Vec<SessionInfo>, Error> {
        let mine = self.own_handles().await?;
        list(&self.0.shared, owner, &mine).await
    }

    /// Revokes one of the owner's sessions by the handle a listing gave
    /// ([`SessionInfo::handle`]`.as_str()`); `false` if the owner has no live session with that
    /// handle (a malformed handle, another owner's, or one that has ended). The revoked
    /// session's next request is anonymous (a request of it already in flight can't bring it
    /// back). Revoking this request's own session also ends it here: the response removes its
    /// cookies.
    pub async fn revoke_session(&self, owner: &str, handle: &str) -> Result<bool, Error> {
        let mine = self.own_handles().await?;
        // Revoking one's own session by its handle ends it; a stale handle of an old id never
        // reaches this session through the id's successors.
        let keep: Vec<Handle> = mine
            .iter()
            .filter(|h| h.as_str() != handle)
            .cloned()
            .collect();
        let by = self.revoker(owner, &mine).await?;
        let revoked = revoke_one(&self.0.shared, owner, handle, &keep, by).await?;
        if revoked.as_ref().is_some_and(|h| mine.contains(h)) {
            self.with(|s| s.destroy()).await?;
        }
        Ok(revoked.is_some())
    }

    /// Revokes every session of the owner ("log out everywhere"), this request's own too if
    /// it is one of them; how many were live.
    pub async fn revoke_all_sessions(&self, owner: &str) -> Result<usize, Error> {
        let mine = self.own_handles().await?;
        let by = self.revoker(owner, &mine).await?;
        let ended = revoke_all(&self.0.shared, owner, &[], Spare::Handles, None, by).await?;
        let mine = self.with(|s| s.owner() == Some(owner)).await?;
        if mine {
            self.with(|s| s.destroy()).await?;
        }
        Ok(ended)
    }

    /// Revokes every session of the owner except this request's own ("log out everywhere
    /// else", e.g. after a password change, also right after a `regenerate()`); how many were
    /// ended.
    ///
    /// This request's session is kept under every id a regenerate gives it, even in another
    /// request of the same browser racing this one (a second tab logging in again, a token
    /// refresh): a regenerate's new record names the ids it descends from from its creation
    /// on, and every listed session descended from this one is kept while every other session
    /// of the owner is ended.
    pub async fn revoke_other_sessions(&self, owner: &str) -> Result<usize, Error> {
        self.revoke_others(owner, None).await
    }

    /// [`Session::revoke_other_sessions`], and `key` set to `value` in the sessions it keeps
    /// as this one's under another id (a regenerate in another tab of the same browser moved
    /// it there meanwhile), as it is in this request's own: after a password change, what the
    /// change stored (a new auth hash) reaches every tab of the browser that made it, whichever
    /// of its ids the browser ends up holding. Set `key` in this request's session too.
    pub async fn revoke_other_sessions_and_set(
        &self,
        owner: &str,
        key: &str,
        value: &serde_json::Value,
    ) -> Result<usize, Error> {
        let own = self.own_handles().await?;
        let carry = Carry {
            key,
            value,
            skip: &own,
        };
        self.revoke_others(owner, Some(carry)).await
    }

    async fn revoke_others(&self, owner: &str, carry: Option<Carry<'_>>) -> Result<usize, Error> {
        let mut mine = self.own_handles().await?;
        // The ids this session had before (markers of its earlier regenerates) are its own.
        let lineage = self
            .with(|s| s.binding().map(|b| b.lineage.clone()))
            .await?;
        mine.extend(lineage.unwrap_or_default());
        let by = self.revoker(owner, &mine).await?;
        revoke_all(&self.0.shared, owner, &mine, Spare::Lineage, carry, by).await
    }
    /// Who revokes `owner`'s sessions from this request, for the events: the owner, when this
    /// request's session is bound to them; else an admin (a support page, a password reset).
    async fn revoker<'a>(&self, owner: &str, mine: &'a [Handle]) -> Result<Revoker<'a>, Error> {
        let own = self.with(|s| s.owner() == Some(owner)).await?;
        Ok(if own {
            Revoker::user(mine)
        } else {
            Revoker::admin(mine)
        })
    }
}
