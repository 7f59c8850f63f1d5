//! The session's flash messages (see [`crate::flash`]): kept beside the handler's data,
//! tracked per key like it.

use serde_json::Value;

use super::SessionState;
use crate::flash::{CSRF_KEY, FLASH_PREFIX, MAX_FLASH_MESSAGES, Message, flash_key, is_kept_apart};
use crate::record::Data;

/// Moves the flash entries and the CSRF secret of a loaded record's data out of it.
pub(super) fn split_flash(data: &mut Data) -> Data {
    if !data.keys().any(|k| is_kept_apart(k)) {
        return Data::new();
    }
    let keys: Vec<String> = data.keys().filter(|k| is_kept_apart(k)).cloned().collect();
    keys.into_iter()
        .filter_map(|k| data.shift_remove(&k).map(|v| (k, v)))
        .collect()
}

impl SessionState {
    /// The current value of a tracked key, flash entry or data.
    pub(super) fn value_of(&self, key: &str) -> Option<&Value> {
        if is_kept_apart(key) {
            self.flash.get(key)
        } else {
            self.data.get(key)
        }
    }

    /// Adds a flash message, added at `now_ms`; `tag` is a random number that keeps two
    /// servers adding at the same millisecond apart. Returns its record key.
    pub fn add_flash(&mut self, message: &Message, now_ms: u64, tag: u64) -> String {
        let key = flash_key(now_ms, tag);
        let held = self.flash_keys();
        if held.len() >= MAX_FLASH_MESSAGES {
            for old in &held[..=held.len() - MAX_FLASH_MESSAGES] {
                self.take_flash(old);
            }
        }
        let value = serde_json::json!({ "level": message.level, "text": message.text });
        self.note(&key);
        self.flash.insert(key.clone(), value);
        key
    }

    /// The flash messages, by record key, in the order they were added. An entry that is not
    /// a message (corrupt, or written by something else) is left out.
    pub fn flash_messages(&self) -> Vec<(String, Message)> {
        let mut out: Vec<(String, Message)> = self
            .flash
            .iter()
            .filter(|(k, _)| k.starts_with(FLASH_PREFIX))
            .filter_map(|(k, v)| Message::from_value(v).map(|m| (k.clone(), m)))
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// The record keys of every flash entry, a corrupt one included, in the order added.
    pub fn flash_keys(&self) -> Vec<String> {
        let mut keys: Vec<String> = self
            .flash
            .keys()
            .filter(|k| k.starts_with(FLASH_PREFIX))
            .cloned()
            .collect();
        keys.sort();
        keys
    }

    /// Whether the session holds a flash entry.
    pub(super) fn has_flash(&self) -> bool {
        self.flash.keys().any(|k| k.starts_with(FLASH_PREFIX))
    }

    /// Removes the flash entry `key` (a message shown), returning its stored value.
    pub fn take_flash(&mut self, key: &str) -> Option<Value> {
        if !key.starts_with(FLASH_PREFIX) || !self.flash.contains_key(key) {
            return None;
        }
        self.note(key);
        self.flash.shift_remove(key)
    }

    /// Puts back an entry [`take_flash`](Self::take_flash) removed (the page that showed it
    /// failed, so it is shown again on the retry).
    pub fn restore_flash(&mut self, key: &str, value: Value) {
        if key.starts_with(FLASH_PREFIX) && !self.flash.contains_key(key) {
            self.note(key);
            self.flash.insert(key.to_owned(), value);
        }
    }

    /// The session's CSRF secret ([`CSRF_KEY`]), if it has one.
    pub fn csrf_secret(&self) -> Option<&str> {
        // A value that is not a non-empty string (a corrupt record) is no secret.
        self.flash
            .get(CSRF_KEY)
            .and_then(Value::as_str)
            .filter(|v| !v.is_empty())
    }

    /// Gives the session its CSRF secret (once: a session that has one keeps it until
    /// `regenerate()` or `destroy()`).
    pub fn set_csrf_secret(&mut self, secret: &str) {
        if self.csrf_secret().is_none() {
            self.note(CSRF_KEY);
            self.flash.insert(CSRF_KEY.to_owned(), Value::from(secret));
        }
    }

    /// Drops the CSRF secret (a regenerate: it was bound to the old identity).
    pub(super) fn drop_csrf_secret(&mut self) {
        if self.flash.contains_key(CSRF_KEY) {
            self.note(CSRF_KEY);
            self.flash.shift_remove(CSRF_KEY);
        }
    }

    /// Whether `destroy()` or `regenerate()` ran in this request: whatever was bound to the
    /// old identity must not outlive it (the middleware rotates its CSRF secret).
    pub fn identity_renewed(&self) -> bool {
        self.renewed.is_some()
    }

    /// Whether `destroy()` ran in this request: messages a page took before it belong to the
    /// session that ended, and are never put back into the one after it.
    pub fn destroyed_in_request(&self) -> bool {
        self.renewed == Some(true)
    }
}

impl std::fmt::Debug for SessionState {
    // Session data, messages, the CSRF secret and the owner stay out of `Debug` (a `before_save`
    // hook or a store of the app's own may log a session): counts and flags only.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionState")
            .field("id", &self.id)
            .field("is_new", &self.is_new)
            .field("keys", &self.data.len())
            .field("messages", &self.flash_keys().len())
            .field("csrf_secret", &self.csrf_secret().map(|_| "<redacted>"))
            .field("owner", &self.owner.as_ref().map(|_| "<redacted>"))
            .field("meta", &self.meta)
            .field("regenerate", &self.regenerate)
            .field("retire", &self.retire)
            .finish_non_exhaustive()
    }
}
