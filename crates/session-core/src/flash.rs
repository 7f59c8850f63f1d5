//! Flash messages: short notes ("Saved.") a request leaves for the next page the visitor
//! loads, shown once.
//!
//! Each message is its own entry of the session's record, under a reserved key that starts
//! with [`FLASH_PREFIX`], out of the handler's data (neither [`SessionState::data`] nor a
//! reserved-key check sees it). Being separate keys, two requests adding messages at once
//! both land in a store (the store merges per key), and taking the messages shown removes
//! exactly those keys, never one added meanwhile. Which requests take them is HTTP's business
//! (the middleware decides from the fetch metadata); this module is the model.
//!
//! [`SessionState::data`]: crate::SessionState::data

use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

/// The prefix of the record keys flash messages are stored under. A key is the prefix, a
/// stamp (the time the message was added, 13 decimal digits of ms since the epoch, and a
/// sequence number; stamps grow strictly within a process) and a random tag: one server's
/// messages sort in the order they were added, two servers never pick the same key, and
/// messages two servers add in the same millisecond are ordered by their tags.
pub const FLASH_PREFIX: &str = "_flash.";

/// The reserved record key of a session's CSRF secret (a random nonce, base64url), where the
/// middleware keeps one: written once, when a session that has none is written, and dropped by
/// `regenerate()` and `destroy()`.
pub const CSRF_KEY: &str = "_csrf";

/// The most flash messages a session keeps: adding one more drops the oldest, so a page that
/// never shows them can't grow the session without end.
pub const MAX_FLASH_MESSAGES: usize = 32;

/// Longest message text, in bytes (a longer one is cut at a character boundary). A message is
/// a note for a page, not a place for data; the record's own size limit applies as well.
pub const MAX_FLASH_TEXT_BYTES: usize = 1024;

/// How important a message is (a template usually maps it to a CSS class).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Level {
    /// Detail for developers.
    Debug,
    /// Something happened ("You are signed out.").
    Info,
    /// Something the visitor asked for worked ("Saved.").
    Success,
    /// Worth attention, nothing failed.
    Warning,
    /// Something the visitor asked for failed.
    Error,
}

impl Level {
    /// The level's lowercase name, as stored and as JSON shows it (`"info"`).
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Success => "success",
            Level::Warning => "warning",
            Level::Error => "error",
        }
    }
}

impl std::fmt::Display for Level {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Level {
    type Err = UnknownLevel;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "debug" => Level::Debug,
            "info" => Level::Info,
            "success" => Level::Success,
            "warning" => Level::Warning,
            "error" => Level::Error,
            _ => return Err(UnknownLevel),
        })
    }
}

/// A level name other than `debug`, `info`, `success`, `warning` and `error`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown message level: expected debug, info, success, warning or error")]
pub struct UnknownLevel;

/// One flash message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    /// How important it is.
    pub level: Level,
    /// What it says (plain text: a template escapes it).
    pub text: String,
}

impl Message {
    /// A message; `text` longer than [`MAX_FLASH_TEXT_BYTES`] is cut.
    pub fn new(level: Level, text: impl Into<String>) -> Self {
        let mut text = text.into();
        if text.len() > MAX_FLASH_TEXT_BYTES {
            let mut end = MAX_FLASH_TEXT_BYTES;
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            text.truncate(end);
        }
        Self { level, text }
    }

    /// The message as a stored value; `None` if `value` is not one (a corrupt entry is
    /// skipped, never shown).
    pub fn from_value(value: &serde_json::Value) -> Option<Self> {
        let m: Message = serde_json::from_value(value.clone()).ok()?;
        Some(Message::new(m.level, m.text))
    }
}

/// Whether `key` is one of the reserved entries kept beside the handler's data (a flash
/// message, the CSRF secret): they ride in every record format, koa's included, and move with
/// a session from our own cookie mode.
pub fn is_kept_apart(key: &str) -> bool {
    key.starts_with(FLASH_PREFIX) || key == CSRF_KEY
}

/// The last stamp this process gave a message: ms × 10,000 + a sequence number.
static LAST_STAMP: AtomicU64 = AtomicU64::new(0);

/// The record key of a message added at `now_ms`, with a random `tag`. Stamps strictly grow
/// within a process (two messages of one millisecond, of one request or two, keep their
/// order); across servers, messages of the same millisecond order by tag.
pub(crate) fn flash_key(now_ms: u64, tag: u64) -> String {
    let floor = now_ms.saturating_mul(10_000);
    let mut stamp = floor;
    // `fetch_update` with a closure that always returns `Some` can't fail.
    let _ = LAST_STAMP.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |last| {
        stamp = floor.max(last.saturating_add(1));
        Some(stamp)
    });
    format!(
        "{FLASH_PREFIX}{:013}.{:04}.{tag:016x}",
        stamp / 10_000,
        stamp % 10_000
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_sort_in_the_order_messages_were_added() {
        let a = flash_key(1_700_000_000_000, u64::MAX);
        let b = flash_key(1_700_000_000_000, 0);
        let c = flash_key(1_700_000_000_001, 0);
        // A clock that steps back still gives a later key.
        let d = flash_key(1_699_000_000_000, 0);
        assert!(a < b && b < c && c < d, "{a} {b} {c} {d}");
        assert_eq!(a.len(), d.len());
    }

    #[test]
    fn a_long_text_is_cut_at_a_char_boundary() {
        let m = Message::new(Level::Info, "é".repeat(MAX_FLASH_TEXT_BYTES));
        assert!(m.text.len() <= MAX_FLASH_TEXT_BYTES && m.text.len() >= MAX_FLASH_TEXT_BYTES - 1);
        let corrupt = serde_json::json!({"level": "loud", "text": "x"});
        assert_eq!(Message::from_value(&corrupt), None);
        assert_eq!("warning".parse::<Level>(), Ok(Level::Warning));
        assert!("WARN".parse::<Level>().is_err());
    }
}
