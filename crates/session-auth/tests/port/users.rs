// axum-login's own example backend (`examples/sqlite/src/users.rs` of axum-login 0.18), ported:
// its `use` lines changed, and its storage (an SQLite pool) replaced by an in-memory map.
// Everything else is as the example has it. Marked below: PORT.

// PORT: `use axum_login::{...}` became:
use password_auth::verify_password;
use serde::{Deserialize, Serialize};
use session_auth::{AuthUser, AuthnBackend, UserId};
// PORT: `use sqlx::{FromRow, SqlitePool};` became the map's:
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use tokio::task;

// PORT: `FromRow` (an SQLite derive) dropped.
#[derive(Clone, Serialize, Deserialize)]
pub struct User {
    id: i64,
    pub username: String,
    password: String,
}

// Here we've implemented `Debug` manually to avoid accidentally logging the
// password hash.
impl std::fmt::Debug for User {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("User")
            .field("id", &self.id)
            .field("username", &self.username)
            .field("password", &"[redacted]")
            .finish()
    }
}

impl AuthUser for User {
    type Id = i64;

    fn id(&self) -> Self::Id {
        self.id
    }

    fn session_auth_hash(&self) -> &[u8] {
        self.password.as_bytes() // We use the password hash as the auth
        // hash--what this means
        // is when the user changes their password the
        // auth session becomes invalid.
    }
}

// This allows us to extract the authentication fields from forms. We use this
// to authenticate requests with the backend.
#[derive(Debug, Clone, Deserialize)]
pub struct Credentials {
    pub username: String,
    pub password: String,
    pub next: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Backend {
    // PORT: `db: SqlitePool` became the map.
    db: Arc<RwLock<HashMap<i64, User>>>,
}

impl Backend {
    // PORT: takes the map instead of the pool.
    pub fn new(db: Arc<RwLock<HashMap<i64, User>>>) -> Self {
        Self { db }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    // PORT: the `Sqlx(#[from] sqlx::Error)` variant went with the pool.
    #[error(transparent)]
    TaskJoin(#[from] task::JoinError),
}

impl AuthnBackend for Backend {
    type User = User;
    type Credentials = Credentials;
    type Error = Error;

    async fn authenticate(
        &self,
        creds: Self::Credentials,
    ) -> Result<Option<Self::User>, Self::Error> {
        // PORT: `select * from users where username = ?` became a lookup in the map.
        let user: Option<Self::User> = self
            .db
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .find(|u| u.username == creds.username)
            .cloned();

        // Verifying the password is blocking and potentially slow, so we'll do so via
        // `spawn_blocking`.
        task::spawn_blocking(|| {
            // We're using password-based authentication--this works by comparing our form
            // input with an argon2 password hash.
            Ok(user.filter(|user| verify_password(creds.password, &user.password).is_ok()))
        })
        .await?
    }

    async fn get_user(&self, user_id: &UserId<Self>) -> Result<Option<Self::User>, Self::Error> {
        // PORT: `select * from users where id = ?` became a lookup in the map.
        let user = self
            .db
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(user_id)
            .cloned();

        Ok(user)
    }
}

// We use a type alias for convenience.
//
// Note that we've supplied our concrete backend here.
pub type AuthSession = session_auth::AuthSession<Backend>;

// PORT: not in the example (it seeds users with SQL): how the tests make users.
impl User {
    pub fn new(id: i64, username: &str, password_hash: String) -> Self {
        Self {
            id,
            username: username.to_owned(),
            password: password_hash,
        }
    }
}
