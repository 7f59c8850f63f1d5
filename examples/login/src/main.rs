//! Logging users in with `session-auth` under axum: users with argon2-hashed passwords, pages
//! behind `login_required!`, an account page listing the user's sessions (revoke one, or log
//! out everywhere else), a password change that ends every other session at once, and a limit
//! on sessions per user.
//!
//! `cargo run -p login`, then open <http://127.0.0.1:3000/> in a browser (on a phone too: the
//! pages are styled for narrow screens by the app's own stylesheet, nothing is fetched from
//! elsewhere). Sign in with a demo account (`ada` / `ada-password`, `grace` /
//! `grace-password`, `alan` / `alan-password`; the sign-in page lists them) or create one.
//! Users live in the server's memory: the demo accounts are there at every start, accounts
//! made with the sign-up form are gone when it stops.
//!
//! # Routes
//! - `GET /`: the sign-in form, or the session page (user `#user`, views `#views`, signed in
//!   `#created`, expires `#expires`; each visit counts a view). The form goes on to the page
//!   in `?next=` once signed in. A browser whose session a newer login ended (see
//!   `--over-limit`) is told so here, once: "You were signed out because you signed in
//!   elsewhere" (`#ended`).
//! - `POST /login` with `username`, `password` and optionally `next`: the password checked,
//!   a new session id (no fixation) bound to the user with the browser's `User-Agent` as its
//!   device, then a 303 to `next` (a path on this site only: `session_auth::safe_next`), whose
//!   page says "Signed in as NAME." (a flash message). A
//!   wrong name or password answers 401 with the form again; a login over the session limit
//!   under `--over-limit refuse` answers 409 with a page saying how to sign out elsewhere.
//! - `GET /signup`, `POST /signup` with `username` and `password` (a name of letters, digits,
//!   `.`, `_`, `-`; a password of 8 characters or more): a new user, then (201) the sign-in
//!   form with the name filled in: signing up makes no session. A taken name answers 409, a
//!   bad one or a short password 400.
//! - `GET /private`: a page for signed-in users. Like every page below, it needs a login
//!   (`login_required!`): a page load without one is sent to `/?next=/private`, an API call
//!   (`fetch`, or a client that does not ask for HTML) gets 401.
//! - `GET /account`: the user's sessions (device, login time, last activity, expiry), with a
//!   button to revoke each other one and one to log out everywhere else.
//! - `POST /account/revoke` with `handle=H`: ends one of the user's sessions (404 if it is not
//!   one of theirs), then a 303 to the account page, which says so.
//! - `POST /account/logout-others`: ends every session of the user but this one, then a 303 to
//!   the account page, which says how many ended.
//! - `GET /account/password`, `POST /account/password` with `current` and `new`: changes the
//!   password and ends every other session of the user at once
//!   (`AuthSession::password_changed`), then a 303 to the account page, which says how many
//!   ended. A wrong current password answers 403.
//! - `POST /logout`: ends the session (record deleted, cookies removed), then a 303 to `/`,
//!   which says "You are signed out." (carried by a new, empty session).
//! - `GET /style.css`: the stylesheet (its URL carries a digest of it, so it is cached for a
//!   year).
//!
//! # Forms
//! Every post is checked for cross-site request forgery (the session layer's `CsrfLayer`,
//! inside it): it passes when the browser says a page of this origin sent it
//! (`Sec-Fetch-Site: same-origin`), or with a token of the visitor's session in its `_csrf`
//! field (every form of every page carries one; a client that sends no fetch metadata reads it
//! from the page, as the tests do); a post from another site is refused even with a token. A
//! refusal is a 403 page saying to reload and send the form again. A token taken before a
//! login or a logout is refused after it.
//!
//! Each action leaves a flash message for the page its 303 leads to (post/redirect/get),
//! shown above that page once: a prefetch of the page, or a script's `fetch()` of it, leaves
//! the message for the page load.
//!
//! Every answer but the stylesheet is sent with `Cache-Control: no-store`, so the back button
//! after a logout shows no private page from the browser's cache, and every answer with a
//! `Content-Security-Policy` that lets a page load only this app's own resources. The session
//! cookie is `SameSite=Lax` (the default): a form on another site posting here is sent
//! without it. A page on another port of this host is the same site, so its forms post with
//! the cookie: there the CSRF check alone refuses them.
//!
//! # Flags
//! - `--store memory` (the default) or `--store redis://HOST:PORT[/DB]`: where sessions live.
//!   In Redis they survive a restart (given the same `SESSION_KEYS`); a demo account stays
//!   signed in across it (its password hash is written out in the source, so it is the same
//!   at every start), an account made with the sign-up form does not (it is gone).
//! - `--max-sessions N` (default 3, at most 1000): how many sessions a user may have at once.
//! - `--over-limit refuse|end-oldest` (default `refuse`): what a login over the limit does.
//!   `refuse` answers 409 and the browser stays signed out; `end-oldest` signs in and ends the
//!   user's session signed in earliest, whose browser is told why on its next page.
//! - `--port N` (default 3000; 0 picks a free port).
//!
//! Sessions are signed with the keys in `SESSION_KEYS` (comma-separated, newest first, 32
//! bytes or more each), or a random key for this run. The library's events go to stderr,
//! filtered by `RUST_LOG`.

mod pages;
mod routes;
mod users;

use session_auth::AuthManagerLayerBuilder;
use session_hyper::{
    Config, MaxAge, MemoryStore, OverLimit, RedisStore, SessionLayer, SessionLimit,
};

/// How long a login lasts.
const SIGNED_IN: MaxAge = MaxAge::Ms(24 * 60 * 60 * 1000);

/// The session limit from `--max-sessions` and `--over-limit`.
fn limit_from_args() -> Result<SessionLimit, String> {
    let max = match example_support::arg("--max-sessions") {
        None => 3,
        Some(n) => n
            .parse()
            .map_err(|_| format!("--max-sessions: {n:?} is not a number"))?,
    };
    let policy = match example_support::arg("--over-limit").as_deref() {
        None | Some("refuse") => OverLimit::Refuse,
        Some("end-oldest") => OverLimit::EndOldest,
        Some(other) => {
            return Err(format!(
                "--over-limit: {other:?} is neither refuse nor end-oldest"
            ));
        }
    };
    SessionLimit::new(max, policy)
        .map_err(|e| format!("--max-sessions: {max} is not a limit ({e}); 1 to 1000"))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // First, so that it lives as long as the process (the log writer's thread).
    let _log = example_support::init_tracing();
    let limit = limit_from_args()?;
    let config = Config::builder()
        .keys(example_support::keys_from_env()?)
        .max_age(SIGNED_IN)
        .build()?;
    let sessions = match example_support::arg("--store").as_deref() {
        None | Some("memory") => SessionLayer::store(config, MemoryStore::new()),
        Some(url) if url.starts_with("redis://") => {
            SessionLayer::store(config, RedisStore::builder(url).build().await?)
        }
        Some(other) => {
            return Err(format!("--store: {other:?} is neither memory nor redis://...").into());
        }
    }
    .max_sessions_per_owner(limit)
    .build()?;
    let csrf = sessions.csrf()?;
    let auth = AuthManagerLayerBuilder::new(users::Backend::with_demo_accounts(), sessions).build();
    let app = routes::app(auth, csrf, routes::Site { limit });
    let port = example_support::port_arg(3000)?;
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    println!("listening on http://{}", listener.local_addr()?);
    axum::serve(listener, app).await?;
    Ok(())
}
