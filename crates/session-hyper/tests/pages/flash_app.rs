//! The app `flash.rs` attacks: a form that leaves a message and redirects, the page that
//! shows the messages, failing pages, and handlers that push a session past its limits.

use std::sync::{Arc, Mutex};

use axum::response::{IntoResponse, Response};
use axum::{Router, routing};
use http::header::LOCATION;
use http::{HeaderMap, StatusCode};
use serde_json::Value;
use session_hyper::flash::{Level, Messages};
use session_hyper::{Error, Session, SessionLayer};
use session_testkit::client::Reply;

use super::{Client, serve};

/// What the overflowing handler saw when its explicit commit failed.
pub type Seen = Arc<Mutex<Vec<String>>>;

fn header(h: &HeaderMap, name: &str) -> String {
    h.get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

/// `POST /add` (text in `X-Flash`): leaves a message, answers the redirect of a form.
async fn add(session: Session, h: HeaderMap) -> Result<Response, Error> {
    session.flash(Level::Success, header(&h, "x-flash")).await?;
    Ok((StatusCode::SEE_OTHER, [(LOCATION, "/page")]).into_response())
}

/// `GET /page`: the messages it is shown, as JSON.
async fn page(messages: Messages) -> String {
    serde_json::to_string(&messages).unwrap()
}

/// `GET /fail`: shows the messages, changes the data, and fails.
async fn fail(session: Session, messages: Messages) -> Result<(StatusCode, String), Error> {
    session.insert("tried", true).await?;
    let body = serde_json::to_string(&messages).unwrap();
    Ok((StatusCode::INTERNAL_SERVER_ERROR, body))
}

/// `GET /fail-committed`: shows the messages, commits (`Session::commit`), and fails.
async fn fail_committed(session: Session, messages: Messages) -> Result<StatusCode, Error> {
    session.commit().await?;
    drop(messages);
    Ok(StatusCode::INTERNAL_SERVER_ERROR)
}

/// `GET /fail-token`: shows the messages, renews the id, renders a CSRF token (the renewed
/// session adopts a fresh secret for it), and fails.
async fn fail_token(session: Session, messages: Messages) -> Result<StatusCode, Error> {
    session.regenerate().await?;
    session.csrf_token().await?;
    drop(messages);
    Ok(StatusCode::INTERNAL_SERVER_ERROR)
}

/// `POST /logout`: destroys the session, leaves "signed out" for the next page.
async fn logout(session: Session) -> Result<Response, Error> {
    session.destroy().await?;
    session.flash(Level::Info, "signed out").await?;
    Ok((StatusCode::SEE_OTHER, [(LOCATION, "/page")]).into_response())
}

/// `POST /relogin`: renews the id (a login), leaves "welcome" for the next page.
async fn relogin(session: Session) -> Result<Response, Error> {
    session.regenerate().await?;
    session.insert("user", "ada").await?;
    session.flash(Level::Info, "welcome").await?;
    Ok((StatusCode::SEE_OTHER, [(LOCATION, "/page")]).into_response())
}

/// `POST /overwrite`: tries to write a message's key as data.
async fn overwrite(session: Session) -> &'static str {
    match session
        .insert("_flash.0000000000000.0000.0", "forged")
        .await
    {
        Ok(()) => "accepted",
        Err(_) => "refused",
    }
}

async fn login(session: Session) -> Result<StatusCode, Error> {
    session.insert("user", "ada").await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn data(session: Session) -> Result<String, Error> {
    Ok(Value::Object(session.data().await?).to_string())
}

/// `POST /huge`: two messages over the text limit, one of them cut inside a character.
async fn huge(session: Session) -> Result<StatusCode, Error> {
    session.flash(Level::Warning, "x".repeat(5000)).await?;
    let text = format!("a{}", "é".repeat(1000));
    session.flash(Level::Warning, text).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// One message of about 1 KB: a handful outgrow a cookie.
fn kilo(k: usize) -> String {
    format!("{k:02}{}", "m".repeat(1000))
}

/// `POST /many`: adds 1 KB messages one at a time, committing after each, until the commit
/// fails; notes what the error was.
async fn many(session: Session, seen: Seen) -> Response {
    for k in 0..10 {
        if let Err(e) = session.flash(Level::Info, kilo(k)).await {
            return e.into_response();
        }
        if let Err(e) = session.commit().await {
            let note = format!("too_large={} after={k}", e.is_too_large());
            seen.lock().unwrap().push(note);
            return (StatusCode::PAYLOAD_TOO_LARGE, "too large").into_response();
        }
    }
    seen.lock().unwrap().push("every commit passed".into());
    (StatusCode::OK, "all fit").into_response()
}

/// `POST /many-at-end`: adds 10 KB of messages and leaves the commit to the layer.
async fn many_at_end(session: Session) -> Result<&'static str, Error> {
    for k in 0..10 {
        session.flash(Level::Info, kilo(k)).await?;
    }
    Ok("added")
}

pub fn app(layer: SessionLayer, seen: Seen) -> Router {
    Router::new()
        .route("/add", routing::post(add))
        .route("/page", routing::get(page))
        .route("/fail", routing::get(fail))
        .route("/fail-committed", routing::get(fail_committed))
        .route("/fail-token", routing::get(fail_token))
        .route("/logout", routing::post(logout))
        .route("/relogin", routing::post(relogin))
        .route("/overwrite", routing::post(overwrite))
        .route("/login", routing::get(login))
        .route("/data", routing::get(data))
        .route("/huge", routing::post(huge))
        .route("/many", routing::post(move |s: Session| many(s, seen)))
        .route("/many-at-end", routing::post(many_at_end))
        .layer(layer)
}

pub async fn client(layer: SessionLayer) -> Client {
    Client::new(serve(app(layer, Seen::default())).await)
}

/// The texts a page showed; `None` when the reply is not a list of messages.
pub fn texts(r: &Reply) -> Option<Vec<String>> {
    let v: Vec<Value> = serde_json::from_str(&r.body).ok()?;
    v.iter()
        .map(|m| m["text"].as_str().map(str::to_owned))
        .collect()
}
