//! What an app implements: its user type and the backend that finds users. The traits have the
//! names and signatures of axum-login's, so a backend written for axum-login ports by changing
//! its `use` lines.

use std::collections::HashSet;
use std::fmt::{Debug, Display};
use std::future::Future;
use std::hash::Hash;

use serde::{Deserialize, Serialize};

/// The id type of a backend's users.
pub type UserId<Backend> = <<Backend as AuthnBackend>::User as AuthUser>::Id;

/// A user that can log in.
pub trait AuthUser: Debug + Clone + Send + Sync {
    /// The user's id: stored in the session (as JSON) and, as text, the owner the session is
    /// bound to (at most 256 bytes), so it is listed among the user's sessions.
    type Id: Debug + Display + Clone + Send + Sync + Serialize + for<'de> Deserialize<'de>;

    /// The user's id.
    fn id(&self) -> Self::Id;

    /// Bytes that change whenever the user's sessions must end, typically the password hash.
    /// Each request compares them with what its session recorded at login (a digest of
    /// them: the session never stores these bytes) and, if they differ, ends the session. A
    /// backstop: [`AuthSession::password_changed`](crate::AuthSession::password_changed)
    /// ends the other sessions at once where an owner index is kept.
    fn session_auth_hash(&self) -> &[u8];
}

/// Finds users: by their credentials at login, and by id on each request.
pub trait AuthnBackend: Clone + Send + Sync {
    /// The user type.
    type User: AuthUser;
    /// What a login presents (a username and password, a token).
    type Credentials: Send + Sync;
    /// The backend's error.
    type Error: std::error::Error + Send + Sync;

    /// The user these credentials prove, if any.
    fn authenticate(
        &self,
        creds: Self::Credentials,
    ) -> impl Future<Output = Result<Option<Self::User>, Self::Error>> + Send;

    /// The user with this id, if there still is one.
    fn get_user(
        &self,
        user_id: &UserId<Self>,
    ) -> impl Future<Output = Result<Option<Self::User>, Self::Error>> + Send;
}

/// Permissions of users, for the "permission required" route layer.
pub trait AuthzBackend
where
    Self: AuthnBackend,
{
    /// A permission.
    type Permission: Hash + Eq + Send + Sync;

    /// The user's own permissions (none by default).
    fn get_user_permissions(
        &self,
        _user: &Self::User,
    ) -> impl Future<Output = Result<HashSet<Self::Permission>, Self::Error>> + Send {
        async { Ok(HashSet::new()) }
    }

    /// The permissions of the user's groups (none by default).
    fn get_group_permissions(
        &self,
        _user: &Self::User,
    ) -> impl Future<Output = Result<HashSet<Self::Permission>, Self::Error>> + Send {
        async { Ok(HashSet::new()) }
    }

    /// Every permission the user has.
    fn get_all_permissions(
        &self,
        user: &Self::User,
    ) -> impl Future<Output = Result<HashSet<Self::Permission>, Self::Error>> + Send {
        async {
            let mut all = self.get_user_permissions(user).await?;
            all.extend(self.get_group_permissions(user).await?);
            Ok(all)
        }
    }

    /// Whether the user has `perm`.
    fn has_perm(
        &self,
        user: &Self::User,
        perm: Self::Permission,
    ) -> impl Future<Output = Result<bool, Self::Error>> + Send {
        async move { Ok(self.get_all_permissions(user).await?.contains(&perm)) }
    }
}
