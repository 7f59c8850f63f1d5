//! The routes and their handlers, on `session-auth`'s [`AuthSession`]: the pages a signed-in
//! user sees behind `login_required!`, the sign-in, sign-up and logout forms, the CSRF check
//! every form post passes, the flash message each action leaves for the page it redirects to
//! (post/redirect/get), and the headers every answer carries.

use axum::Router;
use axum::extract::{Form, Query, State};
use axum::http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, LOCATION, X_CONTENT_TYPE_OPTIONS,
};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::map_response;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use session_auth::{AuthManagerLayer, AuthUser, login_required, safe_next};
use session_hyper::axum::CsrfToken;
use session_hyper::flash::{Level, Messages};
use session_hyper::{CsrfLayer, EndReason, SessionLimit};

use crate::pages::{self, Frame, Notice};
use crate::users::{Backend, Credentials, HashingFailed, Refused, User};

/// The request's login state, for this app's users.
type AuthSession = session_auth::AuthSession<Backend>;

/// What the handlers share.
#[derive(Clone, Copy)]
pub struct Site {
    /// The session limit, as the pages describe it.
    pub limit: SessionLimit,
}

/// The app: every route, behind the CSRF check, behind the auth layer (which holds the session
/// layer the check reads the session of).
pub fn app(auth: AuthManagerLayer<Backend>, csrf: CsrfLayer, site: Site) -> Router {
    // Signed-in users only: a page load by anyone else is sent to the sign-in page with the
    // page asked for in `next` (and `ended` when a newer login ended the browser's session),
    // an API call gets 401.
    let members = Router::new()
        .route("/private", get(private))
        .route("/account", get(account))
        .route("/account/revoke", get(to_account).post(revoke))
        .route(
            "/account/logout-others",
            get(to_account).post(logout_others),
        )
        .route(
            "/account/password",
            get(password_form).post(change_password),
        )
        .route_layer(login_required!(Backend, login_url = "/"));
    Router::new()
        .route("/", get(home))
        .route("/login", post(login))
        .route("/signup", get(sign_up_form).post(sign_up))
        .route("/logout", post(logout))
        .route("/style.css", get(stylesheet))
        .merge(members)
        .fallback(not_found)
        .with_state(site)
        // Every unsafe request (each form here posts) passes the CSRF rule before its handler:
        // sent by a page of this origin, or carrying a token of this visitor's session in its
        // `_csrf` field; 403 otherwise. Inside the session layer, whose session it reads.
        .layer(csrf)
        .layer(map_response(refused_page))
        .layer(auth)
        // Outermost, so the session layer's own answers (a 503 when the store is down) get
        // the headers too.
        .layer(map_response(headers))
}

/// Every answer: not kept by the browser's cache (the back button after a logout shows no
/// private page), unless it says otherwise (the stylesheet); nothing loaded from elsewhere.
async fn headers(mut res: Response) -> Response {
    let h = res.headers_mut();
    h.entry(CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    h.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(
        CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'self'; frame-ancestors 'none'; base-uri 'none'"),
    );
    res
}

/// A post the CSRF check refused (its answer is a 403 in plain text, where every page of this
/// app is HTML) as a page saying what to do.
async fn refused_page(res: Response) -> Response {
    let plain = res
        .headers()
        .get(CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"text/plain"));
    if res.status() != StatusCode::FORBIDDEN || !plain {
        return res;
    }
    let html = pages::message(
        "Form refused",
        "This form came from another site, or from a page older than your last sign-in or \
         sign-out. Go back, reload the page and send it again.",
        None,
    );
    page(StatusCode::FORBIDDEN, html)
}

/// A page with a status.
fn page(status: StatusCode, html: String) -> Response {
    (status, Html(html)).into_response()
}

/// A 303 to `to` (a path this app checked), or to `/` if it can't be a header.
fn see_other(to: &str) -> Response {
    let to = HeaderValue::from_str(to).unwrap_or(HeaderValue::from_static("/"));
    (StatusCode::SEE_OTHER, [(LOCATION, to)]).into_response()
}

/// Hashing failed: logged, and a 500 (as the auth layer answers a backend failure).
fn failed(e: HashingFailed) -> Response {
    session_auth::Error::<Backend>::Backend(e).into_response()
}

/// A CSRF token for a form a post shows again (with what was wrong with it).
async fn form_frame(auth: &AuthSession) -> Result<Frame, Response> {
    match auth.session().csrf_token().await {
        Ok(token) => Ok(Frame {
            messages: Messages::default(),
            token,
        }),
        Err(e) => Err(e.into_response()),
    }
}

/// Leaves `text` for the next page, then a 303 to `to` (post/redirect/get).
async fn flash_then(auth: &AuthSession, level: Level, text: String, to: &str) -> Response {
    match auth.session().flash(level, text).await {
        Ok(()) => see_other(to),
        Err(e) => e.into_response(),
    }
}

/// The signed-in user. Behind `login_required!` there is one (the route layer looked them up,
/// and the lookup is kept for the request); a request without one gets 401 all the same.
async fn signed_in(auth: &AuthSession) -> Result<User, Response> {
    match auth.try_user().await {
        Ok(Some(user)) => Ok(user),
        Ok(None) => Err(StatusCode::UNAUTHORIZED.into_response()),
        Err(e) => Err(e.into_response()),
    }
}

fn ended_notice(reason: EndReason) -> Notice {
    match reason {
        EndReason::NewerLogin => Notice::SignedInElsewhere,
        _ => Notice::Ended,
    }
}

#[derive(Deserialize)]
struct NextPage {
    next: Option<String>,
    /// Why the session this browser brought ended, as `login_required!` passes it on.
    ended: Option<String>,
}

/// `GET /`: the session page (each visit counts a view), or the sign-in form.
async fn home(
    auth: AuthSession,
    State(site): State<Site>,
    Query(q): Query<NextPage>,
    messages: Messages,
) -> Response {
    let user = match auth.try_user().await {
        Ok(user) => user,
        Err(e) => return e.into_response(),
    };
    // The token after the user check: a check that ends the session (a password changed
    // elsewhere) renews what the token is bound to.
    let token = match auth.session().csrf_token().await {
        Ok(token) => token,
        Err(e) => return e.into_response(),
    };
    let frame = Frame { messages, token };
    let Some(user) = user else {
        let notice = match auth.ended().await {
            Ok(reason) => reason
                .or_else(|| q.ended.as_deref().and_then(EndReason::from_name))
                .map(ended_notice),
            Err(e) => return e.into_response(),
        };
        let next = safe_next(q.next.as_deref());
        let html = pages::sign_in(next, "", notice, site.limit, &frame);
        return page(StatusCode::OK, html);
    };
    let session = auth.session();
    let shown = async {
        let views: u64 = session.get("views").await?.unwrap_or(0) + 1;
        session.insert("views", views).await?;
        let sessions = session.list_sessions(&user.id()).await?;
        let current = sessions.iter().find(|s| s.current);
        Ok::<_, session_hyper::Error>(pages::home(user.name(), views, current, &frame))
    };
    match shown.await {
        Ok(html) => page(StatusCode::OK, html),
        Err(e) => e.into_response(),
    }
}

/// `POST /login`: the name and password checked, then a new session id bound to the user,
/// under the session limit, and a message for the page `next` leads to.
async fn login(
    mut auth: AuthSession,
    State(site): State<Site>,
    Form(creds): Form<Credentials>,
) -> Response {
    let next = safe_next(creds.next.as_deref()).to_owned();
    let name = creds.username.clone();
    let user = match auth.authenticate(creds).await {
        Ok(Some(user)) => user,
        Ok(None) => {
            let frame = match form_frame(&auth).await {
                Ok(frame) => frame,
                Err(res) => return res,
            };
            let notice = Some(Notice::WrongPassword);
            let html = pages::sign_in(&next, &name, notice, site.limit, &frame);
            return page(StatusCode::UNAUTHORIZED, html);
        }
        Err(e) => return e.into_response(),
    };
    match auth.login(&user).await {
        Ok(()) => {
            let text = format!("Signed in as {}.", user.name());
            flash_then(&auth, Level::Success, text, &next).await
        }
        Err(session_auth::Error::Session(session_hyper::Error::TooManySessions { max })) => {
            page(StatusCode::CONFLICT, pages::too_many(user.name(), max))
        }
        Err(e) => e.into_response(),
    }
}

#[derive(Deserialize)]
struct SignUp {
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
}

/// `GET /signup`: the sign-up form.
async fn sign_up_form(messages: Messages, CsrfToken(token): CsrfToken) -> Response {
    let frame = Frame { messages, token };
    page(StatusCode::OK, pages::sign_up("", None, &frame))
}

/// `POST /signup`: a new user; then the sign-in form, the name filled in. (Signing up is not
/// signing in: no session is made until the user signs in, under the limit like any login.)
async fn sign_up(
    auth: AuthSession,
    State(site): State<Site>,
    Form(form): Form<SignUp>,
) -> Response {
    let frame = match form_frame(&auth).await {
        Ok(frame) => frame,
        Err(res) => return res,
    };
    match auth.backend().sign_up(&form.username, &form.password).await {
        Ok(user) => {
            let notice = Some(Notice::Created);
            let html = pages::sign_in("/", user.name(), notice, site.limit, &frame);
            page(StatusCode::CREATED, html)
        }
        Err(Refused::Failed(e)) => failed(e),
        Err(refused) => {
            let status = match refused {
                Refused::Taken => StatusCode::CONFLICT,
                _ => StatusCode::BAD_REQUEST,
            };
            let html = pages::sign_up(&form.username, Some(&refused.message()), &frame);
            page(status, html)
        }
    }
}

/// `GET /private`.
async fn private(auth: AuthSession, messages: Messages) -> Response {
    let frame = Frame {
        messages,
        token: String::new(),
    };
    match signed_in(&auth).await {
        Ok(user) => page(StatusCode::OK, pages::private(user.name(), &frame)),
        Err(res) => res,
    }
}

/// `GET /account`: the user's sessions.
async fn account(auth: AuthSession, messages: Messages, CsrfToken(token): CsrfToken) -> Response {
    let frame = Frame { messages, token };
    let user = match signed_in(&auth).await {
        Ok(user) => user,
        Err(res) => return res,
    };
    match auth.session().list_sessions(&user.id()).await {
        Ok(sessions) => page(
            StatusCode::OK,
            pages::account(user.name(), &sessions, &frame),
        ),
        Err(e) => e.into_response(),
    }
}

/// A form's address opened as a page (after signing in again, say): the account page.
async fn to_account() -> Response {
    see_other("/account")
}

#[derive(Deserialize)]
struct Revoke {
    #[serde(default)]
    handle: String,
}

/// `POST /account/revoke`: ends one of the user's sessions, then back to the account page,
/// which says so.
async fn revoke(auth: AuthSession, Form(form): Form<Revoke>) -> Response {
    let user = match signed_in(&auth).await {
        Ok(user) => user,
        Err(res) => return res,
    };
    // Scoped to the user's own sessions: another user's handle is unknown here.
    match auth
        .session()
        .revoke_session(&user.id(), &form.handle)
        .await
    {
        Ok(true) => {
            let text = "The session was revoked: that browser is signed out.".to_owned();
            flash_then(&auth, Level::Success, text, "/account").await
        }
        Ok(false) => page(
            StatusCode::NOT_FOUND,
            pages::message(
                "No such session",
                "That session has ended already, or is not yours.",
                Some(user.name()),
            ),
        ),
        Err(e) => e.into_response(),
    }
}

/// `POST /account/logout-others`: ends every session of the user but this one, then back to
/// the account page, which says how many.
async fn logout_others(auth: AuthSession) -> Response {
    let user = match signed_in(&auth).await {
        Ok(user) => user,
        Err(res) => return res,
    };
    match auth.session().revoke_other_sessions(&user.id()).await {
        Ok(ended) => {
            let text = pages::others_ended(ended);
            flash_then(&auth, Level::Success, text, "/account").await
        }
        Err(e) => e.into_response(),
    }
}

/// `GET /account/password`: the password change form.
async fn password_form(
    auth: AuthSession,
    messages: Messages,
    CsrfToken(token): CsrfToken,
) -> Response {
    let frame = Frame { messages, token };
    match signed_in(&auth).await {
        Ok(user) => page(
            StatusCode::OK,
            pages::password_form(user.name(), None, &frame),
        ),
        Err(res) => res,
    }
}

#[derive(Deserialize)]
struct NewPassword {
    #[serde(default)]
    current: String,
    #[serde(default)]
    new: String,
}

/// `POST /account/password`: the current password checked, the new one set, every other
/// session of the user ended at once; this one goes on (under a new id), to the account page,
/// which says how many ended.
async fn change_password(mut auth: AuthSession, Form(form): Form<NewPassword>) -> Response {
    let user = match signed_in(&auth).await {
        Ok(user) => user,
        Err(res) => return res,
    };
    let changed = match auth
        .backend()
        .change_password(&user, &form.current, &form.new)
        .await
    {
        Ok(changed) => changed,
        Err(Refused::Failed(e)) => return failed(e),
        Err(refused) => {
            let status = match refused {
                Refused::WrongPassword => StatusCode::FORBIDDEN,
                Refused::Stale => StatusCode::CONFLICT,
                _ => StatusCode::BAD_REQUEST,
            };
            let frame = match form_frame(&auth).await {
                Ok(frame) => frame,
                Err(res) => return res,
            };
            let html = pages::password_form(user.name(), Some(&refused.message()), &frame);
            return page(status, html);
        }
    };
    // Should this fail (the store is down), the password has changed all the same: every
    // session logged in with the old one, this one too, ends at its next request, when its
    // auth hash no longer matches.
    match auth.password_changed(&changed).await {
        Ok(ended) => {
            let text = pages::password_changed(ended);
            flash_then(&auth, Level::Success, text, "/account").await
        }
        Err(e) => e.into_response(),
    }
}

/// `POST /logout`: the session ends (its record deleted, its cookies removed); a new one
/// carries the message the sign-in page shows.
async fn logout(mut auth: AuthSession) -> Response {
    match auth.logout().await {
        Ok(_) => {
            let text = "You are signed out.".to_owned();
            flash_then(&auth, Level::Info, text, "/").await
        }
        Err(e) => e.into_response(),
    }
}

/// `GET /style.css`: the stylesheet, cached for a year (its URL changes with it).
async fn stylesheet() -> Response {
    (
        [
            (CONTENT_TYPE, "text/css; charset=utf-8"),
            (CACHE_CONTROL, "public, max-age=31536000, immutable"),
        ],
        pages::STYLE,
    )
        .into_response()
}

async fn not_found() -> Response {
    page(
        StatusCode::NOT_FOUND,
        pages::message(
            "Not found",
            "Try / (sign in), /signup, /private, /account or /account/password.",
            None,
        ),
    )
}
