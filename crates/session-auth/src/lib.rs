//! Logging users in on [`session_hyper`] sessions, in the shape of axum-login: an app's
//! [`AuthUser`] and [`AuthnBackend`] (and [`AuthzBackend`] for permissions), an
//! [`AuthSession`] extractor with [`user`](AuthSession::user), [`login`](AuthSession::login)
//! and [`logout`](AuthSession::logout), and route layers for "login required" and
//! "permission required" ([`login_required!`], [`permission_required!`]). A backend written
//! for axum-login ports by changing its `use` lines.
//!
//! What it adds, from the session layer underneath:
//! - a login is a new session id and the session bound to the user, committed at once, so
//!   the user's sessions are listed ([`Session::list_sessions`](session_hyper::Session::list_sessions))
//!   and can be revoked one by one;
//! - **a limit on sessions per user**
//!   ([`max_sessions_per_owner`](session_hyper::SessionLayerBuilder::max_sessions_per_owner)):
//!   a login over it is refused, or ends the user's session bound earliest, decided
//!   atomically in the store however many logins race;
//! - **[`password_changed`](AuthSession::password_changed) ends the user's other sessions at
//!   once** (they leave the listing and are anonymous on their next request), keeping the
//!   caller's; [`user_deleted`](AuthSession::user_deleted) ends all of them;
//! - the user's auth hash is checked on every request as a backstop, against a digest the
//!   session stores (never the hash itself).
//!
//! In cookie mode and under the koa-compat preset, where no owner index is kept, logins work
//! without listing, limits or immediate revoke (other sessions end on their next request).
//!
//! The guide's chapter "Logging users in" walks through an app (`examples/login`).
//!
//! ```
//! use std::collections::HashMap;
//! use axum::{Router, routing::get};
//! use session_auth::{AuthManagerLayerBuilder, AuthSession, AuthUser, AuthnBackend, UserId};
//! use session_hyper::{Config, MemoryStore, OverLimit, SessionLayer, SessionLimit};
//!
//! #[derive(Debug, Clone)]
//! struct User { id: u64, password_hash: String }
//!
//! impl AuthUser for User {
//!     type Id = u64;
//!     fn id(&self) -> u64 { self.id }
//!     fn session_auth_hash(&self) -> &[u8] { self.password_hash.as_bytes() }
//! }
//!
//! #[derive(Debug, Clone)]
//! struct Backend { users: HashMap<u64, User> }
//!
//! impl AuthnBackend for Backend {
//!     type User = User;
//!     type Credentials = (u64, String);
//!     type Error = std::convert::Infallible;
//!     async fn authenticate(&self, (id, pw): (u64, String)) -> Result<Option<User>, Self::Error> {
//!         // A real backend verifies a password hash here.
//!         Ok(self.users.get(&id).filter(|u| u.password_hash == pw).cloned())
//!     }
//!     async fn get_user(&self, id: &UserId<Self>) -> Result<Option<User>, Self::Error> {
//!         Ok(self.users.get(id).cloned())
//!     }
//! }
//!
//! async fn me(auth: AuthSession<Backend>) -> String {
//!     match auth.user().await {
//!         Some(user) => format!("user {}", user.id),
//!         None => "anonymous".into(),
//!     }
//! }
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let config = Config::builder().key(b"a 32-byte (or longer) secret key!".to_vec()).build()?;
//! let sessions = SessionLayer::store(config, MemoryStore::new())
//!     .max_sessions_per_owner(SessionLimit::new(3, OverLimit::EndOldest)?)
//!     .build()?;
//! let backend = Backend { users: HashMap::new() };
//! let auth = AuthManagerLayerBuilder::new(backend, sessions).build();
//! let app: Router = Router::new()
//!     .route("/me", get(me))
//!     .route_layer(session_auth::login_required!(Backend, login_url = "/login"))
//!     .layer(auth);
//! # let _ = app; Ok(()) }
//! ```
#![cfg_attr(docsrs, feature(doc_cfg))]

mod backend;
mod layer;
mod require;
mod session;

pub use backend::{AuthUser, AuthnBackend, AuthzBackend, UserId};
pub use layer::{
    AuthManager, AuthManagerLayer, AuthManagerLayerBuilder, DEFAULT_DATA_KEY, DeviceFn,
    MissingAuthLayer, user_agent,
};
pub use require::{is_page_load, safe_next};
pub use session::{AuthSession, Error, user_deleted};

/// A route layer that lets a request through only when a user is logged in.
///
/// - `login_required!(Backend)`: 401 otherwise.
/// - `login_required!(Backend, login_url = "/login")`: a page load is redirected to the login
///   page with the page asked for in `next` (`/login?next=%2Faccount`), and, when the session
///   the browser brought was ended by a newer login over the session limit, why
///   (`&ended=newer-login`: the login page can say so); an API call ([`is_page_load`] is
///   false) gets 401.
/// - `login_required!(Backend, login_url = "/login", redirect_field = "to")`: another field.
///
/// ```ignore
/// let app = Router::new()
///     .route("/account", get(account))
///     .route_layer(login_required!(Backend, login_url = "/login"))
///     .route("/login", get(login_page).post(login))
///     .layer(auth_layer);
/// ```
#[macro_export]
macro_rules! login_required {
    ($backend:ty) => {
        $crate::__require!($backend, None,)
    };
    ($backend:ty, login_url = $url:expr) => {
        $crate::login_required!($backend, login_url = $url, redirect_field = "next")
    };
    ($backend:ty, login_url = $url:expr, redirect_field = $field:expr) => {
        $crate::__require!(
            $backend,
            Some((
                ::std::string::String::from($url),
                ::std::string::String::from($field)
            )),
        )
    };
}

/// A route layer that lets a request through only when the logged-in user has every
/// permission named (the backend's [`AuthzBackend::has_perm`](crate::AuthzBackend::has_perm);
/// a backend failure counts as not having it). A user without them gets 403; nobody logged in,
/// as [`login_required!`].
///
/// - `permission_required!(Backend, "admin.read", "admin.write")`
/// - `permission_required!(Backend, login_url = "/login", "admin.read")`
/// - `permission_required!(Backend, login_url = "/login", redirect_field = "to", "admin.read")`
#[macro_export]
macro_rules! permission_required {
    ($backend:ty, login_url = $url:expr, redirect_field = $field:expr, $($perm:expr),+ $(,)?) => {
        $crate::__require!(
            $backend,
            Some((::std::string::String::from($url), ::std::string::String::from($field))),
            $($perm),+
        )
    };
    ($backend:ty, login_url = $url:expr, $($perm:expr),+ $(,)?) => {
        $crate::permission_required!($backend, login_url = $url, redirect_field = "next", $($perm),+)
    };
    ($backend:ty, $($perm:expr),+ $(,)?) => {
        $crate::__require!($backend, None, $($perm),+)
    };
}

/// The expansion shared by the route-layer macros.
#[doc(hidden)]
#[macro_export]
macro_rules! __require {
    ($backend:ty, $login:expr, $($perm:expr),*) => {{
        let login: ::std::option::Option<(::std::string::String, ::std::string::String)> = $login;
        $crate::__private::from_fn(
            move |auth: $crate::AuthSession<$backend>,
                  req: $crate::__private::Request,
                  next: $crate::__private::Next| {
                let login = login.clone();
                async move {
                    #[allow(unused_imports)]
                    use $crate::AuthzBackend as _;
                    let user = auth.user().await;
                    #[allow(unused_mut)]
                    let mut allowed = user.is_some();
                    if let ::std::option::Option::Some(user) = &user {
                        $(
                            allowed = allowed
                                && auth.backend().has_perm(user, $perm.into()).await.unwrap_or(false);
                        )*
                        let _ = user;
                    }
                    let ended = if user.is_none() {
                        auth.ended().await.ok().flatten()
                    } else {
                        ::std::option::Option::None
                    };
                    $crate::__private::decide(user.is_some(), allowed, ended, login, req, next)
                        .await
                }
            },
        )
    }};
}

/// What the route-layer macros expand to. Not part of the API.
#[doc(hidden)]
pub mod __private {
    pub use crate::require::decide;
    pub use axum::extract::Request;
    pub use axum::middleware::{Next, from_fn};
}
