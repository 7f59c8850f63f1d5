//! Login with `regenerate()`, a protected page, an account page that lists the user's
//! sessions (revoke one, or log out everywhere else), logout with `destroy()`.
//!
//! `cargo run -p login`, then open <http://127.0.0.1:3000/> in a browser: a login form (any
//! name, no password store), then a page with the session (user, views, signed in, expires),
//! your sessions and logout. Sessions live in memory; `--store redis://HOST:PORT[/DB]` keeps
//! them in Redis, so they survive a restart (with the same `SESSION_KEYS`). Or, as an HTTP
//! client:
//! - `GET /` shows the login form, or the session page (each visit counts a view),
//! - `POST /login` with body `user=NAME` logs in (a new session id: no fixation) and binds the
//!   session to NAME with a summary of the browser as its device (a browser's form post is
//!   sent on to `/` with a 303, other clients get `welcome, NAME`),
//! - `GET /private` answers 401 until then (a browser is sent to the login form instead, and
//!   back to `/private` once logged in: the page it asked for is kept in the session),
//! - `GET /account` shows the user's sessions: device, login time, last activity, expiry,
//!   with a button to revoke each other one and one to log out everywhere else,
//! - `POST /account/revoke` with body `handle=H` revokes one of the user's sessions,
//! - `POST /account/logout-others` ends every session of the user but this one,
//! - `POST /logout` ends the session (record deleted, cookies removed; a browser is sent on to
//!   `/`).
//!
//! Every page is sent with `Cache-Control: no-store`, so the back button after a logout shows
//! no private page from the browser's cache.

use std::convert::Infallible;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{ACCEPT, CACHE_CONTROL, CONTENT_TYPE, LOCATION, USER_AGENT};
use hyper::{HeaderMap, Method, Request, Response, StatusCode, body::Incoming};
use session_hyper::{Config, MaxAge, MemoryStore, RedisStore, Session, SessionInfo, SessionLayer};

/// How long a session lives before login (it only remembers the page asked for) and after.
const PRE_LOGIN: MaxAge = MaxAge::Ms(15 * 60 * 1000);
const SIGNED_IN: MaxAge = MaxAge::Ms(24 * 60 * 60 * 1000);

fn reply(status: StatusCode, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    // Private pages must not come back from the browser's cache after a logout.
    r.headers_mut().insert(
        CACHE_CONTROL,
        hyper::header::HeaderValue::from_static("no-store"),
    );
    r
}

/// Whether the request is a browser's navigation (a form post wants a redirect, not text).
fn from_browser(headers: &HeaderMap) -> bool {
    headers
        .get(ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("text/html"))
}

const LOGIN_PAGE: &str = r#"<!doctype html>
<html><head><meta charset="utf-8"><title>Sign in</title></head>
<body>
<h1>Sign in</h1>
<form method="post" action="/login">
<label>Name <input name="user" autofocus required></label>
<button>Sign in</button>
</form>
<p>Any name will do: this example keeps no passwords.</p>
</body></html>
"#;

/// The session page: who, how many views, since when, until when.
fn home_page(user: &str, views: u64, current: Option<&SessionInfo>) -> String {
    let (created, expires) = current.map_or(("?".to_owned(), "?".to_owned()), |s| {
        (when(s.created), when(s.expires))
    });
    format!(
        r#"<!doctype html>
<html><head><meta charset="utf-8"><title>Signed in</title></head>
<body>
<h1>Hello, {user}</h1>
<table border="1" cellpadding="4">
<tr><th>User</th><td id="user">{user}</td></tr>
<tr><th>Views</th><td id="views">{views}</td></tr>
<tr><th>Signed in</th><td id="created">{created}</td></tr>
<tr><th>Expires</th><td id="expires">{expires}</td></tr>
</table>
<p><a href="/account">Your sessions</a></p>
<form method="post" action="/logout"><button>Log out</button></form>
</body></html>
"#,
        user = escape(user)
    )
}

fn html(body: String) -> Response<Full<Bytes>> {
    let mut r = reply(StatusCode::OK, body);
    r.headers_mut().insert(
        CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("text/html; charset=utf-8"),
    );
    r
}

fn see_other(to: &'static str) -> Response<Full<Bytes>> {
    let mut r = reply(StatusCode::SEE_OTHER, "");
    r.headers_mut()
        .insert(LOCATION, hyper::header::HeaderValue::from_static(to));
    r
}

/// The value of `name` in an `application/x-www-form-urlencoded` body.
fn form_value(body: &[u8], name: &str) -> Option<String> {
    let body = String::from_utf8_lossy(body).replace('+', " ");
    body.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        (k == name).then(|| {
            percent_encoding::percent_decode_str(v)
                .decode_utf8_lossy()
                .into_owned()
        })
    })
}

/// Text for an HTML page: the user's name and the device summary come from the client.
fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

/// A short description of the browser, from its User-Agent: what a user recognises in a list
/// of their sessions.
fn device_of(headers: &HeaderMap) -> String {
    let ua = headers
        .get(USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let browser = [
        ("Edg/", "Edge"),
        ("Firefox/", "Firefox"),
        ("Chrome/", "Chrome"),
        ("Safari/", "Safari"),
        ("curl/", "curl"),
    ]
    .iter()
    .find(|(needle, _)| ua.contains(needle))
    .map_or("A browser", |(_, name)| name);
    let os = [
        ("Android", "Android"),
        ("iPhone", "iPhone"),
        ("Windows", "Windows"),
        ("Mac OS", "macOS"),
        ("Linux", "Linux"),
    ]
    .iter()
    .find(|(needle, _)| ua.contains(needle))
    .map(|(_, name)| *name);
    match os {
        Some(os) => format!("{browser} on {os}"),
        None => browser.to_owned(),
    }
}

/// Milliseconds since the epoch as UTC `YYYY-MM-DD HH:MM`.
fn when(ms: u64) -> String {
    let secs = ms / 1000;
    let (days, rest) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02} UTC",
        rest / 3600,
        rest % 3600 / 60
    )
}

fn account_page(user: &str, sessions: &[SessionInfo]) -> String {
    let mut rows = String::new();
    for s in sessions {
        let device = escape(s.device.as_deref().unwrap_or("unknown device"));
        let action = if s.current {
            "<strong>this browser</strong>".to_owned()
        } else {
            format!(
                r#"<form method="post" action="/account/revoke"><input type="hidden" name="handle" value="{}"><button>Revoke</button></form>"#,
                escape(s.handle.as_str())
            )
        };
        rows.push_str(&format!(
            "<tr><td>{device}</td><td>{}</td><td>{}</td><td>{}</td><td>{action}</td></tr>\n",
            when(s.created),
            when(s.last_seen),
            when(s.expires)
        ));
    }
    format!(
        r#"<!doctype html>
<html><head><meta charset="utf-8"><title>Your sessions</title></head>
<body>
<h1>Signed in as {user}</h1>
<p><a href="/">Back</a></p>
<table border="1" cellpadding="4">
<tr><th>Device</th><th>Signed in</th><th>Last seen</th><th>Expires</th><th></th></tr>
{rows}</table>
<form method="post" action="/account/logout-others"><button>Log out everywhere else</button></form>
<form method="post" action="/logout"><button>Log out</button></form>
</body></html>
"#,
        user = escape(user)
    )
}

async fn route(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let Ok(session) = Session::from_request(&req) else {
        // Only reachable if the service is mounted without the session layer.
        return Ok(Response::new(Full::from("session layer missing")));
    };
    let (method, path) = (req.method().clone(), req.uri().path().to_owned());
    let device = device_of(req.headers());
    let browser = from_browser(req.headers());
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let res = async {
        let user: Option<String> = session.get("user").await?;
        Ok::<_, session_hyper::Error>(match (method, path.as_str(), user) {
            (Method::POST, "/login", _) => {
                let Some(user) = form_value(&body, "user").filter(|u| !u.is_empty()) else {
                    return Ok(reply(StatusCode::BAD_REQUEST, "send user=NAME"));
                };
                // A privilege change: new id, same data (the page asked for before login
                // among it), old id dead; then the session is listed among the user's (one
                // more store call, at login only).
                session.regenerate().await?;
                session.set_max_age(SIGNED_IN).await?;
                session.insert("user", &user).await?;
                session.set_owner_with_device(&user, &device).await?;
                let back = session.remove("return_to").await?;
                if browser {
                    // Only a path this app put there: never an open redirect.
                    see_other(match back.as_ref().and_then(|v| v.as_str()) {
                        Some("/private") => "/private",
                        Some("/account") => "/account",
                        _ => "/",
                    })
                } else {
                    reply(StatusCode::OK, format!("welcome, {user}"))
                }
            }
            (Method::GET, "/", Some(user)) => {
                let views: u64 = session.get("views").await?.unwrap_or(0) + 1;
                session.insert("views", views).await?;
                let sessions = session.list_sessions(&user).await?;
                html(home_page(&user, views, sessions.iter().find(|s| s.current)))
            }
            (Method::GET, "/", None) => html(LOGIN_PAGE.to_owned()),
            (Method::GET, "/private", Some(user)) => {
                reply(StatusCode::OK, format!("secret page for {user}"))
            }
            (Method::GET, "/account", Some(user)) => {
                let sessions = session.list_sessions(&user).await?;
                html(account_page(&user, &sessions))
            }
            (Method::POST, "/account/revoke", Some(user)) => {
                let handle = form_value(&body, "handle").unwrap_or_default();
                // Scoped to the user's own index: another user's handle is unknown here.
                if session.revoke_session(&user, &handle).await? {
                    see_other("/account")
                } else {
                    reply(StatusCode::NOT_FOUND, "no such session")
                }
            }
            (Method::POST, "/account/logout-others", Some(user)) => {
                session.revoke_other_sessions(&user).await?;
                see_other("/account")
            }
            (Method::POST, "/logout", _) => {
                session.destroy().await?;
                if browser {
                    see_other("/")
                } else {
                    reply(StatusCode::OK, "bye")
                }
            }
            (Method::GET, p @ ("/private" | "/account"), None) if browser => {
                // A session before login: it remembers where to go back to, for a quarter of
                // an hour (anyone can make one: it should not take the store's space for a
                // day). Written only when it changes: a write on every visit would re-send the
                // pre-login cookie, and an answer read after a login's would put it back.
                let known: Option<String> = session.get("return_to").await?;
                if known.as_deref() != Some(p) {
                    if session.is_new().await? {
                        session.set_max_age(PRE_LOGIN).await?;
                    }
                    session.insert("return_to", p).await?;
                }
                see_other("/")
            }
            (_, "/private" | "/account" | "/account/revoke" | "/account/logout-others", None) => {
                reply(StatusCode::UNAUTHORIZED, "log in first")
            }
            _ => reply(
                StatusCode::NOT_FOUND,
                "try GET /, POST /login, GET /private, GET /account, POST /logout",
            ),
        })
    }
    .await;
    Ok(res.unwrap_or_else(|e| e.response()))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // First, so that it lives as long as the process (the log writer's thread).
    let _log = example_support::init_tracing();
    let config = Config::builder()
        .keys(example_support::keys_from_env()?)
        .max_age(SIGNED_IN)
        .build()?;
    let layer = match example_support::arg("--store").as_deref() {
        None | Some("memory") => SessionLayer::store(config, MemoryStore::new()),
        Some(url) if url.starts_with("redis://") => {
            SessionLayer::store(config, RedisStore::builder(url).build().await?)
        }
        Some(other) => {
            return Err(format!("--store: {other:?} is neither memory nor redis://...").into());
        }
    }
    .build()?;
    let service = layer.wrap(hyper::service::service_fn(route));
    example_support::serve(example_support::port_arg(3000)?, service).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_and_escapes() {
        assert_eq!(when(0), "1970-01-01 00:00 UTC");
        assert_eq!(when(1_700_000_000_000), "2023-11-14 22:13 UTC");
        assert_eq!(
            escape(r#"<a href="x">'&'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
        assert_eq!(
            form_value(b"user=ada+l%C3%B6&x=1", "user").as_deref(),
            Some("ada lö")
        );
    }
}
