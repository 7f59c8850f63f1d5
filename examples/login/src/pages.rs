//! The app's pages, as HTML strings: one layout (the viewport for phones, the app's own
//! stylesheet, the flash messages), every form with its CSRF token, and every piece of text
//! from the client escaped.

use session_hyper::csrf::CSRF_FIELD;
use session_hyper::flash::Messages;
use session_hyper::{OverLimit, SessionInfo, SessionLimit};

use crate::users::{DEMO_ACCOUNTS, MAX_NAME_CHARS, MIN_PASSWORD_CHARS};

/// The stylesheet, served at `/style.css`.
pub const STYLE: &str = include_str!("style.css");

/// A digest of the stylesheet (FNV-1a), in its URL: a changed stylesheet has a new URL, so the
/// browser may cache each one for a year.
pub const STYLE_VERSION: u64 = {
    let bytes = STYLE.as_bytes();
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut i = 0;
    while i < bytes.len() {
        hash ^= bytes[i] as u64;
        hash = hash.wrapping_mul(0x0100_0000_01b3);
        i += 1;
    }
    hash
};

/// Text for an HTML page: names, device descriptions and `next` come from the client.
pub fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

/// What a page shows beside its own content: the flash messages the request took (above the
/// content, in the layout) and the CSRF token its forms send (every form has it in `_csrf`).
#[derive(Debug, Default)]
pub struct Frame {
    /// The messages to show (rendered escaped by `Messages::to_html`).
    pub messages: Messages,
    /// A CSRF token of this visitor's; empty on a page without forms.
    pub token: String,
}

impl Frame {
    /// The hidden field that carries the token in a form.
    fn csrf(&self) -> String {
        format!(
            r#"<input type="hidden" name="{CSRF_FIELD}" value="{}">"#,
            escape(&self.token)
        )
    }
}

/// A whole page: `title`, the signed-in user's name in the header (if any), the flash
/// messages, `body`.
fn layout(title: &str, who: Option<&str>, frame: &Frame, body: &str) -> String {
    let who = who.map_or_else(String::new, |w| {
        format!(r#"<span class="who" id="who">{}</span>"#, escape(w))
    });
    let title = escape(title);
    let mut flash = frame.messages.to_html();
    if !flash.is_empty() {
        flash.push('\n');
    }
    format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<link rel="stylesheet" href="/style.css?v={STYLE_VERSION:016x}">
</head><body>
<header><a class="brand" href="/">Login example</a>{who}</header>
<main>
{flash}{body}</main>
</body></html>
"#
    )
}

/// What a sign-in page says above its form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Notice {
    /// The browser's session was ended by a newer login of the same user (over the limit).
    SignedInElsewhere,
    /// The browser's session ended for another reason the library gave.
    Ended,
    /// The name or the password was wrong.
    WrongPassword,
    /// The account was just made.
    Created,
}

/// How the session limit reads on a page.
fn limit_text(limit: SessionLimit) -> String {
    let n = limit.max();
    let over = match limit.policy() {
        OverLimit::Refuse => "is refused until one of the others signs out",
        // `OverLimit` may grow: end-oldest and anything else read the same.
        _ => "signs out the one signed in earliest",
    };
    let s = if n == 1 { "" } else { "s" };
    format!("An account may be signed in on {n} browser{s} at once; one more sign-in {over}.",)
}

/// The sign-in form, going on to `next` once signed in.
pub fn sign_in(
    next: &str,
    name: &str,
    notice: Option<Notice>,
    limit: SessionLimit,
    frame: &Frame,
) -> String {
    let notice = match notice {
        None => String::new(),
        Some(Notice::SignedInElsewhere) => r#"<p class="note" id="ended">You were signed out because you signed in elsewhere: a newer sign-in to your account, over its limit of sessions, ended this one.</p>
"#
        .to_owned(),
        Some(Notice::Ended) => {
            r#"<p class="note" id="ended">Your session has ended: sign in again.</p>
"#
            .to_owned()
        }
        Some(Notice::Created) => {
            r#"<p class="note" id="created">Your account was created: sign in with its password.</p>
"#
            .to_owned()
        }
        Some(Notice::WrongPassword) => {
            r#"<p class="error" id="error">Wrong name or password.</p>
"#
            .to_owned()
        }
    };
    let next = if next == "/" {
        String::new()
    } else {
        format!(
            r#"<input type="hidden" name="next" value="{}">"#,
            escape(next)
        )
    };
    let mut demo = String::new();
    for (user, password, _) in DEMO_ACCOUNTS {
        demo.push_str(&format!(
            "<tr><td>{user}</td><td><code>{password}</code></td></tr>\n"
        ));
    }
    let body = format!(
        r#"<h1>Sign in</h1>
{notice}<form method="post" action="/login" class="card">
{csrf}{next}<label>Name <input name="username" value="{name}" autocomplete="username" autocapitalize="none" spellcheck="false" required autofocus></label>
<label>Password <input type="password" name="password" autocomplete="current-password" required></label>
<button>Sign in</button>
</form>
<p>No account yet? <a href="/signup">Create one</a>.</p>
<h2>Demo accounts</h2>
<table class="card">
<thead><tr><th>Name</th><th>Password</th></tr></thead>
<tbody>
{demo}</tbody>
</table>
<p class="muted">{limit}</p>
"#,
        name = escape(name),
        limit = limit_text(limit),
        csrf = frame.csrf(),
    );
    layout("Sign in", None, frame, &body)
}

/// The sign-up form, with what was wrong with the last try.
pub fn sign_up(name: &str, error: Option<&str>, frame: &Frame) -> String {
    let error = error.map_or_else(String::new, |e| {
        format!(r#"<p class="error" id="error">{}</p>"#, escape(e))
    });
    let body = format!(
        r#"<h1>Create an account</h1>
{error}
<form method="post" action="/signup" class="card">
{csrf}<label>Name <input name="username" value="{name}" maxlength="{MAX_NAME_CHARS}" autocomplete="username" autocapitalize="none" spellcheck="false" required autofocus></label>
<label>Password <input type="password" name="password" minlength="{MIN_PASSWORD_CHARS}" autocomplete="new-password" required></label>
<p class="muted">Letters, digits, dots, dashes and underscores for the name; at least {MIN_PASSWORD_CHARS} characters for the password. Accounts live in the server's memory: they are gone when it stops.</p>
<button>Sign up</button>
</form>
<p>Have an account? <a href="/">Sign in</a>.</p>
"#,
        name = escape(name),
        csrf = frame.csrf(),
    );
    layout("Sign up", None, frame, &body)
}

/// The session page: who, how many views, since when, until when.
pub fn home(user: &str, views: u64, current: Option<&SessionInfo>, frame: &Frame) -> String {
    let (created, expires) = current.map_or(("?".to_owned(), "?".to_owned()), |s| {
        (when(s.created), when(s.expires))
    });
    let body = format!(
        r#"<h1>Hello, {user}</h1>
<table class="card facts">
<tr><th>User</th><td id="user">{user}</td></tr>
<tr><th>Views</th><td id="views">{views}</td></tr>
<tr><th>Signed in</th><td id="created">{created}</td></tr>
<tr><th>Expires</th><td id="expires">{expires}</td></tr>
</table>
<div class="actions">
<a href="/account">Your sessions</a>
<a href="/account/password">Change password</a>
<a href="/private">Private page</a>
</div>
<form method="post" action="/logout">{csrf}<button class="quiet">Log out</button></form>
"#,
        user = escape(user),
        csrf = frame.csrf(),
    );
    layout(&format!("Hello, {user}"), Some(user), frame, &body)
}

/// The page only a signed-in user sees.
pub fn private(user: &str, frame: &Frame) -> String {
    let body = format!(
        r#"<h1>Private</h1>
<p class="card" id="secret">secret page for {user}</p>
<p><a href="/">Back</a></p>
"#,
        user = escape(user)
    );
    layout("Private", Some(user), frame, &body)
}

/// The user's sessions: device, login time, last activity, expiry, and a button to revoke each
/// other one.
pub fn account(user: &str, sessions: &[SessionInfo], frame: &Frame) -> String {
    let csrf = frame.csrf();
    let mut rows = String::new();
    for s in sessions {
        let device = escape(&device_of(s.device.as_deref()));
        let action = if s.current {
            "<strong>this browser</strong>".to_owned()
        } else {
            format!(
                r#"<form method="post" action="/account/revoke" class="inline">{csrf}<input type="hidden" name="handle" value="{}"><button class="danger">Revoke</button></form>"#,
                escape(s.handle.as_str())
            )
        };
        rows.push_str(&format!(
            r#"<tr><td data-label="Device">{device}</td><td data-label="Signed in">{}</td><td data-label="Last seen">{}</td><td data-label="Expires">{}</td><td>{action}</td></tr>
"#,
            when(s.created),
            when(s.last_seen),
            when(s.expires)
        ));
    }
    let body = format!(
        r#"<h1>Signed in as {name}</h1>
<p><a href="/">Back</a></p>
<table class="sessions">
<thead><tr><th>Device</th><th>Signed in</th><th>Last seen</th><th>Expires</th><th></th></tr></thead>
<tbody>
{rows}</tbody>
</table>
<div class="actions">
<form method="post" action="/account/logout-others">{csrf}<button class="quiet">Log out everywhere else</button></form>
<form method="post" action="/logout">{csrf}<button class="quiet">Log out</button></form>
</div>
<p><a href="/account/password">Change password</a> (signs out every other session)</p>
"#,
        name = escape(user)
    );
    layout("Your sessions", Some(user), frame, &body)
}

/// The password change form, with what was wrong with the last try.
pub fn password_form(user: &str, error: Option<&str>, frame: &Frame) -> String {
    let error = error.map_or_else(String::new, |e| {
        format!(r#"<p class="error" id="error">{}</p>"#, escape(e))
    });
    let body = format!(
        r#"<h1>Change password</h1>
{error}
<form method="post" action="/account/password" class="card">
{csrf}<input type="text" name="username" value="{name}" autocomplete="username" hidden>
<label>Current password <input type="password" name="current" autocomplete="current-password" required autofocus></label>
<label>New password <input type="password" name="new" minlength="{MIN_PASSWORD_CHARS}" autocomplete="new-password" required></label>
<button>Change password</button>
</form>
<p class="muted">Every other browser signed in to your account is signed out; this one stays.</p>
<p><a href="/account">Back</a></p>
"#,
        name = escape(user),
        csrf = frame.csrf(),
    );
    layout("Change password", Some(user), frame, &body)
}

/// The flash message after a password change: how many other sessions it ended.
pub fn password_changed(ended: usize) -> String {
    format!("Your password was changed. {}", others_ended(ended))
}

/// The flash message after "log out everywhere else": how many other sessions it ended.
pub fn others_ended(ended: usize) -> String {
    match ended {
        0 => "No other session was signed in.".to_owned(),
        1 => "1 other session was signed out.".to_owned(),
        n => format!("{n} other sessions were signed out."),
    }
}

/// A login the session limit refused.
pub fn too_many(user: &str, max: usize) -> String {
    let body = format!(
        r#"<h1>Too many sessions</h1>
<div class="note" id="too-many">
<p>The account <strong>{name}</strong> is already signed in on {max} browsers, as many as it may be.</p>
<p>To sign in here, first sign out of one of them: on a browser where you are signed in, open <em>Your sessions</em> and press <em>Revoke</em> next to a session you no longer use (or <em>Log out everywhere else</em>), or press <em>Log out</em> there. Then sign in again.</p>
</div>
<p><a href="/">Back to sign in</a></p>
"#,
        name = escape(user)
    );
    layout("Too many sessions", None, &Frame::default(), &body)
}

/// A short page for what has nothing else to show (a 404, a revoke of an unknown session).
pub fn message(title: &str, text: &str, who: Option<&str>) -> String {
    let body = format!(
        r#"<h1>{title}</h1>
<p>{text}</p>
<p><a href="/">Home</a></p>
"#,
        title = escape(title),
        text = escape(text)
    );
    layout(title, who, &Frame::default(), &body)
}

/// A short description of a browser, from its `User-Agent` (what the auth layer records as
/// the device): what a user recognises in a list of their sessions.
pub fn device_of(user_agent: Option<&str>) -> String {
    let Some(ua) = user_agent else {
        return "unknown device".to_owned();
    };
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
pub fn when(ms: u64) -> String {
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use session_hyper::flash::{Level, Message};

    use super::*;

    #[test]
    fn dates_escapes_and_devices() {
        assert_eq!(when(0), "1970-01-01 00:00 UTC");
        assert_eq!(when(1_700_000_000_000), "2023-11-14 22:13 UTC");
        assert_eq!(
            escape(r#"<a href="x">'&'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
        assert_eq!(
            device_of(Some("Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0")),
            "Firefox on Linux"
        );
        assert_eq!(device_of(None), "unknown device");
    }

    #[test]
    fn every_page_is_for_phones_and_escapes_the_client() {
        let limit = SessionLimit::new(3, OverLimit::Refuse).unwrap();
        let frame = Frame {
            messages: Messages::from(vec![Message::new(Level::Info, "<b>")]),
            token: "t\"<b>".to_owned(),
        };
        for page in [
            sign_in(
                "/a\"b",
                "<b>",
                Some(Notice::SignedInElsewhere),
                limit,
                &frame,
            ),
            sign_up("<b>", Some("<i>"), &frame),
            home("<b>", 1, None, &frame),
            account("<b>", &[], &frame),
            password_form("<b>", None, &frame),
            too_many("<b>", 3),
        ] {
            assert!(page.contains(
                r#"<meta name="viewport" content="width=device-width, initial-scale=1">"#
            ));
            assert!(page.contains("/style.css?v="));
            assert!(!page.contains("<b>") && !page.contains("<i>"), "{page}");
        }
        // Every form sends the token; the messages are shown above the content.
        for page in [
            sign_in("/", "", None, limit, &frame),
            sign_up("", None, &frame),
            home("ada", 1, None, &frame),
            account("ada", &[], &frame),
            password_form("ada", None, &frame),
        ] {
            let forms = page.matches("<form ").count();
            let tokens = page
                .matches(r#"<input type="hidden" name="_csrf" value="t&quot;&lt;b&gt;">"#)
                .count();
            assert!(forms > 0 && tokens == forms, "{page}");
            assert!(
                page.contains(
                    r#"<main>
<ul class="flash"><li class="flash-info">&lt;b&gt;</li></ul>"#
                ),
                "{page}"
            );
        }
        assert!(limit_text(limit).contains("3 browsers"));
    }
}
