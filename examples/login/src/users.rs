//! The app's users: an in-memory table made at start (the demo accounts, and whoever signs up
//! while the server runs), and the `session-auth` backend that finds them.
//!
//! Passwords are hashed with argon2 (`password-auth`: PHC strings with their own salt and
//! parameters). Hashing and verifying take milliseconds of CPU on purpose, so they run on
//! tokio's blocking pool, never on the threads that serve requests.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, PoisonError, RwLock};

use serde::Deserialize;
use session_auth::{AuthUser, AuthnBackend, UserId};

/// The demo accounts: name, password, and the password's hash. The hashes are written out
/// here (made once with `password_auth::generate_hash`) rather than made at start: a hash has
/// a random salt, so one made at start would differ after each restart, and every session of
/// the account (kept in Redis across the restart) would end at its next request, its auth hash
/// no longer matching.
pub const DEMO_ACCOUNTS: [(&str, &str, &str); 3] = [
    (
        "ada",
        "ada-password",
        "$argon2id$v=19$m=19456,t=2,p=1$2m0ivfs/rFkB5ceQzJEyoA$b3nrFtnTJh/m/mXg/K8ofsNYLq2lqCcHAdeLFuOsOKE",
    ),
    (
        "grace",
        "grace-password",
        "$argon2id$v=19$m=19456,t=2,p=1$YqiHe2oh632hZklEfvt2Xw$vbEry+SVKZmAUgOwT16KRp40nFUD7I8xQLKzccDmqo4",
    ),
    (
        "alan",
        "alan-password",
        "$argon2id$v=19$m=19456,t=2,p=1$kG7a82u/reIxS+E/NC5YSg$DC88VgltqzYgxeKHiGRUyDAkKO3eSq5QqArTSes/IQU",
    ),
];

/// A hash no password typed matches: an unknown name is checked against it, so a login with
/// one takes as long as a wrong password (the answer time does not tell which names exist).
const NOBODY: &str = "$argon2id$v=19$m=19456,t=2,p=1$n3ER/2uX+l888sgZ4fmYnw$/Ksq+YaUcnqzsqphso9DX+IJRBwUMmmMw7Fvhg6N0H0";

/// Shortest password a sign-up or a password change accepts, in characters.
pub const MIN_PASSWORD_CHARS: usize = 8;
/// Longest password accepted, in bytes (a longer one would only cost hashing time).
pub const MAX_PASSWORD_BYTES: usize = 256;
/// Longest user name, in characters.
pub const MAX_NAME_CHARS: usize = 40;

/// A user. The name is the id: the session stores it, and the user's sessions are listed
/// under it.
#[derive(Clone)]
pub struct User {
    name: String,
    password_hash: String,
}

impl User {
    /// The user's name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

// Written out so that the password hash never reaches a log line.
impl fmt::Debug for User {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("User")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl AuthUser for User {
    type Id = String;

    fn id(&self) -> String {
        self.name.clone()
    }

    /// The password hash: when the password changes, every session logged in with the old
    /// one no longer matches and ends (the sessions store a digest of it, never the hash).
    fn session_auth_hash(&self) -> &[u8] {
        self.password_hash.as_bytes()
    }
}

/// What the sign-in form sends. A missing field reads as empty (and proves nobody).
#[derive(Deserialize)]
pub struct Credentials {
    /// The user name.
    #[serde(default)]
    pub username: String,
    /// The password.
    #[serde(default)]
    pub password: String,
    /// Where to go once signed in (checked with `session_auth::safe_next`).
    pub next: Option<String>,
}

/// The blocking pool's task (a hash or a verification) did not finish: it panicked, or the
/// runtime is shutting down.
#[derive(Debug)]
pub struct HashingFailed(tokio::task::JoinError);

impl fmt::Display for HashingFailed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "password hashing failed: {}", self.0)
    }
}

impl std::error::Error for HashingFailed {}

/// Why a sign-up or a password change was refused.
#[derive(Debug)]
pub enum Refused {
    /// The name is empty, too long, or has characters other than letters, digits, `.`, `_`
    /// and `-`.
    BadName,
    /// The name is someone's already.
    Taken,
    /// The password is shorter than [`MIN_PASSWORD_CHARS`] or longer than
    /// [`MAX_PASSWORD_BYTES`].
    BadPassword,
    /// The current password given with a password change is not the user's.
    WrongPassword,
    /// The user is gone, or their password changed meanwhile (another device changed it).
    Stale,
    /// Hashing failed.
    Failed(HashingFailed),
}

impl Refused {
    /// What the form says about it.
    pub fn message(&self) -> String {
        match self {
            Refused::BadName => format!(
                "Choose a name of 1 to {MAX_NAME_CHARS} letters, digits, dots, dashes or underscores."
            ),
            Refused::Taken => "That name is taken: choose another.".to_owned(),
            Refused::BadPassword => format!(
                "Choose a password of at least {MIN_PASSWORD_CHARS} characters (and at most {MAX_PASSWORD_BYTES} bytes)."
            ),
            Refused::WrongPassword => "Your current password is not that.".to_owned(),
            Refused::Stale => {
                "Your password was changed meanwhile, from another device: sign in again."
                    .to_owned()
            }
            Refused::Failed(_) => "Something went wrong: try again.".to_owned(),
        }
    }
}

/// Whether `name` may be a user name.
fn good_name(name: &str) -> bool {
    let chars = name.chars().count();
    (1..=MAX_NAME_CHARS).contains(&chars)
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

/// Whether `password` may be a new password.
fn good_password(password: &str) -> bool {
    password.chars().count() >= MIN_PASSWORD_CHARS && password.len() <= MAX_PASSWORD_BYTES
}

/// Runs `f` (a hash or a verification) on the blocking pool.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, HashingFailed> {
    tokio::task::spawn_blocking(f).await.map_err(HashingFailed)
}

/// The user table, shared by every request (cheap to clone).
#[derive(Clone, Debug)]
pub struct Backend {
    users: Arc<RwLock<HashMap<String, User>>>,
}

impl Backend {
    /// A table holding the demo accounts.
    pub fn with_demo_accounts() -> Backend {
        let users = DEMO_ACCOUNTS
            .iter()
            .map(|(name, _, hash)| {
                let user = User {
                    name: (*name).to_owned(),
                    password_hash: (*hash).to_owned(),
                };
                ((*name).to_owned(), user)
            })
            .collect();
        Backend {
            users: Arc::new(RwLock::new(users)),
        }
    }

    /// The user named `name`. (A panic while the lock was held leaves the table as it was:
    /// every change below is one insert.)
    fn find(&self, name: &str) -> Option<User> {
        let users = self.users.read().unwrap_or_else(PoisonError::into_inner);
        users.get(name).cloned()
    }

    /// Adds a user named `name` with `password`, and answers them.
    pub async fn sign_up(&self, name: &str, password: &str) -> Result<User, Refused> {
        if !good_name(name) {
            return Err(Refused::BadName);
        }
        if !good_password(password) {
            return Err(Refused::BadPassword);
        }
        // Said at once, before spending the time a hash takes (and checked again below).
        if self.find(name).is_some() {
            return Err(Refused::Taken);
        }
        let password = password.to_owned();
        let hash = blocking(move || password_auth::generate_hash(password))
            .await
            .map_err(Refused::Failed)?;
        let mut users = self.users.write().unwrap_or_else(PoisonError::into_inner);
        if users.contains_key(name) {
            return Err(Refused::Taken);
        }
        let user = User {
            name: name.to_owned(),
            password_hash: hash,
        };
        users.insert(name.to_owned(), user.clone());
        Ok(user)
    }

    /// Changes `user`'s password to `new`, if `current` is their password; answers the user
    /// with the new hash.
    pub async fn change_password(
        &self,
        user: &User,
        current: &str,
        new: &str,
    ) -> Result<User, Refused> {
        if !good_password(new) {
            return Err(Refused::BadPassword);
        }
        if current.len() > MAX_PASSWORD_BYTES {
            return Err(Refused::WrongPassword);
        }
        let (current, new, old_hash) = (
            current.to_owned(),
            new.to_owned(),
            user.password_hash.clone(),
        );
        let hash = blocking(move || {
            password_auth::verify_password(current, &old_hash)
                .is_ok()
                .then(|| password_auth::generate_hash(new))
        })
        .await
        .map_err(Refused::Failed)?
        .ok_or(Refused::WrongPassword)?;
        let mut users = self.users.write().unwrap_or_else(PoisonError::into_inner);
        // Only over the password that was checked: a change made meanwhile from another
        // device stands, and this one is refused.
        match users.get_mut(&user.name) {
            Some(u) if u.password_hash == user.password_hash => {
                u.password_hash = hash;
                Ok(u.clone())
            }
            _ => Err(Refused::Stale),
        }
    }
}

impl AuthnBackend for Backend {
    type User = User;
    type Credentials = Credentials;
    type Error = HashingFailed;

    async fn authenticate(&self, creds: Credentials) -> Result<Option<User>, HashingFailed> {
        if creds.password.len() > MAX_PASSWORD_BYTES {
            return Ok(None);
        }
        let user = self.find(&creds.username);
        let hash = user
            .as_ref()
            .map_or_else(|| NOBODY.to_owned(), |u| u.password_hash.clone());
        let matches =
            blocking(move || password_auth::verify_password(creds.password, &hash).is_ok()).await?;
        Ok(user.filter(|_| matches))
    }

    async fn get_user(&self, name: &UserId<Self>) -> Result<Option<User>, HashingFailed> {
        Ok(self.find(name))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn the_demo_hashes_are_of_the_passwords_shown() {
        for (name, password, hash) in DEMO_ACCOUNTS {
            assert!(
                password_auth::verify_password(password, hash).is_ok(),
                "{name}"
            );
            assert!(good_password(password), "{name}");
        }
        assert!(password_auth::verify_password("", NOBODY).is_err());
    }

    #[test]
    fn names_and_passwords() {
        assert!(good_name("ada") && good_name("a.b_c-9"));
        assert!(!good_name("") && !good_name("a b") && !good_name("<b>") && !good_name("é"));
        assert!(!good_name(&"a".repeat(MAX_NAME_CHARS + 1)));
        assert!(good_password("12345678") && good_password("éééééééé"));
        assert!(!good_password("1234567"));
        assert!(!good_password(&"x".repeat(MAX_PASSWORD_BYTES + 1)));
    }

    #[tokio::test]
    async fn sign_up_and_change_the_password() {
        let b = Backend::with_demo_accounts();
        let creds = |u: &str, p: &str| Credentials {
            username: u.into(),
            password: p.into(),
            next: None,
        };
        assert!(
            b.authenticate(creds("ada", "ada-password"))
                .await
                .unwrap()
                .is_some()
        );
        assert!(
            b.authenticate(creds("ada", "wrong"))
                .await
                .unwrap()
                .is_none()
        );
        assert!(
            b.authenticate(creds("nobody", "x"))
                .await
                .unwrap()
                .is_none()
        );
        assert!(matches!(
            b.sign_up("ada", "password1").await,
            Err(Refused::Taken)
        ));
        assert!(matches!(
            b.sign_up("bo", "short").await,
            Err(Refused::BadPassword)
        ));
        let bo = b.sign_up("bo", "password1").await.unwrap();
        assert!(
            b.authenticate(creds("bo", "password1"))
                .await
                .unwrap()
                .is_some()
        );
        assert!(matches!(
            b.change_password(&bo, "wrong-one", "password2").await,
            Err(Refused::WrongPassword)
        ));
        let changed = b
            .change_password(&bo, "password1", "password2")
            .await
            .unwrap();
        assert_ne!(changed.session_auth_hash(), bo.session_auth_hash());
        assert!(
            b.authenticate(creds("bo", "password1"))
                .await
                .unwrap()
                .is_none()
        );
        assert!(
            b.authenticate(creds("bo", "password2"))
                .await
                .unwrap()
                .is_some()
        );
        // A change over a password that changed meanwhile is refused.
        assert!(matches!(
            b.change_password(&bo, "password1", "password3").await,
            Err(Refused::Stale)
        ));
    }
}
