//! Flash messages on the request's session: [`Session::flash`] leaves one for the next page,
//! [`Session::messages`] shows them, and takes them only where a page load shows them.
//!
//! Which requests take the messages they are shown (the rule, in the guide's chapter on flash
//! messages): a request marked as something other than a page load leaves them —
//! `Sec-Fetch-Mode` present and not `navigate`, `Sec-Fetch-Dest` present and not `document`,
//! an XHR or htmx request (`X-Requested-With`, `HX-Request`) unless
//! [`flash_taken_by_scripts`](crate::SessionLayerBuilder::flash_taken_by_scripts) is on — and
//! a prefetch or prerender (`Sec-Purpose` or `Purpose` naming `prefetch`) is shown none. A
//! `HEAD` request (answered without a body) sees them and leaves them. A request with no fetch
//! metadata (an older browser, a plain client) takes them. A page that
//! fails (5xx) keeps them for the retry.

use serde::Serialize;
pub use session_core::flash::{Level, MAX_FLASH_TEXT_BYTES, Message, UnknownLevel};

use crate::Error;
use crate::session::Session;

/// The flash messages a request is shown, oldest first.
///
/// For templates, [`Messages::to_html`] writes them as an HTML list (escaped); they also
/// serialize as a JSON array of `{"level", "text"}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Messages(Vec<Message>);

impl Messages {
    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// How many there are.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// The messages, oldest first.
    pub fn iter(&self) -> std::slice::Iter<'_, Message> {
        self.0.iter()
    }

    /// The messages as an HTML list, their text escaped: `<ul class="flash"><li
    /// class="flash-info">Saved.</li></ul>`; an empty string when there are none.
    ///
    /// ```
    /// use session_hyper::flash::{Level, Message, Messages};
    /// let m = Messages::from(vec![Message::new(Level::Success, "Saved <b>.")]);
    /// assert_eq!(m.to_html(), r#"<ul class="flash"><li class="flash-success">Saved &lt;b&gt;.</li></ul>"#);
    /// ```
    pub fn to_html(&self) -> String {
        if self.0.is_empty() {
            return String::new();
        }
        let mut out = String::from(r#"<ul class="flash">"#);
        for m in &self.0 {
            out.push_str(r#"<li class="flash-"#);
            out.push_str(m.level.as_str());
            out.push_str(r#"">"#);
            escape_into(&m.text, &mut out);
            out.push_str("</li>");
        }
        out.push_str("</ul>");
        out
    }
}

impl From<Vec<Message>> for Messages {
    fn from(v: Vec<Message>) -> Self {
        Self(v)
    }
}

impl IntoIterator for Messages {
    type Item = Message;
    type IntoIter = std::vec::IntoIter<Message>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

impl<'a> IntoIterator for &'a Messages {
    type Item = &'a Message;
    type IntoIter = std::slice::Iter<'a, Message>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

/// HTML-escapes `text` (element content and quoted attribute values alike).
fn escape_into(text: &str, out: &mut String) {
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
}

impl Session {
    /// Leaves a message for the next page this visitor loads ("Saved.", after a form's
    /// redirect). Each message is its own entry of the session, out of its data: two requests
    /// adding messages at once both land (in store mode; in cookie mode the message rides in
    /// the session cookie, and of two responses racing the browser keeps the last cookie).
    /// Text longer than [`MAX_FLASH_TEXT_BYTES`]
    /// is cut.
    pub async fn flash(&self, level: Level, text: impl Into<String>) -> Result<(), Error> {
        let message = Message::new(level, text);
        let mut tag = [0u8; 8];
        getrandom::fill(&mut tag).map_err(Error::Random)?;
        let now = self.0.shared.config.now_ms();
        self.with(|s| {
            s.add_flash(&message, now, u64::from_le_bytes(tag));
        })
        .await
    }

    /// The messages for this request, oldest first, taken from the session where this
    /// request is a page load (see the [module](crate::flash) for the rule): a later page
    /// shows them no more, while messages added meanwhile stay. A prefetch is shown none and
    /// touches nothing.
    pub async fn messages(&self) -> Result<Messages, Error> {
        let kind = self.0.page.kind;
        if kind == crate::page::Kind::Prefetch {
            return Ok(Messages::default());
        }
        let take = kind.takes_flash(self.0.shared.scripted_takes_flash);
        let (shown, taken) = self
            .with(|s| {
                let shown = s.flash_messages();
                // Every entry goes, a corrupt one (never shown) included.
                let taken: Vec<_> = if take {
                    s.flash_keys()
                        .into_iter()
                        .filter_map(|k| s.take_flash(&k).map(|v| (k, v)))
                        .collect()
                } else {
                    Vec::new()
                };
                (shown, taken)
            })
            .await?;
        {
            let mut st = self.lock();
            st.page.shown |= !shown.is_empty();
            st.page.taken.extend(taken);
        }
        Ok(Messages(shown.into_iter().map(|(_, m)| m).collect()))
    }

    /// Puts the messages this request took back before an early commit (`Session::commit`),
    /// and takes them again after it: their removal is written only by the end-of-request
    /// commit, which a failed page (5xx) skips or undoes.
    pub(crate) fn put_back_taken(&self, back: bool) {
        let mut st = self.lock();
        let keys: Vec<(String, serde_json::Value)> = st.page.taken.clone();
        if let Some(s) = st.session.as_mut().filter(|s| !s.destroyed_in_request()) {
            for (k, v) in keys {
                if back {
                    s.restore_flash(&k, v);
                } else {
                    s.take_flash(&k);
                }
            }
        }
    }

    /// A page that failed (5xx) and is committed anyway (`save_on_server_error`) puts back
    /// the messages it took, for the retry.
    pub(crate) fn restore_flash(&self) {
        let mut st = self.lock();
        let taken = std::mem::take(&mut st.page.taken);
        if let Some(s) = st.session.as_mut().filter(|s| !s.destroyed_in_request()) {
            for (k, v) in taken {
                s.restore_flash(&k, v);
            }
        }
    }
}
