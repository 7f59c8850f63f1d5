//! A migrating source: the session library a site is leaving, read once per session while its
//! sessions move into a store of ours.

use crate::record::Data;
use crate::store_error::{BoxFuture, StoreError};

/// The cookie the old library set: what the middleware reads, and removes once the session
/// has moved (with the same path and domain, or the browser keeps it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceCookie {
    /// Its name.
    pub name: String,
    /// Its `Path`.
    pub path: String,
    /// Its `Domain`, if the old app set one.
    pub domain: Option<String>,
}

/// An old session, as the old library kept it.
#[derive(Clone, PartialEq)]
pub struct SourceSession {
    /// Its data: each key the old app stored, with its JSON value.
    pub data: Data,
    /// When it ends (ms since the epoch), if the old library said.
    pub expires_ms: Option<u64>,
    /// When it began (ms since the epoch), if the old library said: an absolute lifetime
    /// counts from it after the move too.
    pub created_ms: Option<u64>,
    /// Its own `max_age` (a "remember me: off" session is [`MaxAge::Session`](crate::MaxAge)),
    /// if the old library kept one per session; `None`: the layer's.
    pub max_age: Option<crate::MaxAge>,
}

impl std::fmt::Debug for SourceSession {
    // Session data stays out of `Debug`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SourceSession")
            .field("keys", &self.data.len())
            .field("expires_ms", &self.expires_ms)
            .field("created_ms", &self.created_ms)
            .field("max_age", &self.max_age)
            .finish()
    }
}

/// A session library a site is leaving (another crate's store and cookie format). The
/// middleware reads its cookie where the request carries none of ours, loads the old session,
/// moves it into the layer's store under a new id, and then deletes it here.
///
/// Contract: `verify` does no I/O and accepts only values the old library issued (a forged,
/// tampered or unsigned-where-signed value is `None`, and costs no call); `load` answers the
/// live session or `None` (never written, deleted, expired); `delete` is idempotent. Both
/// return within the source's own time limit.
pub trait Source: Send + Sync + 'static {
    /// A short name, for events and the key of a move's marker (e.g. `"tower-sessions"`).
    fn name(&self) -> &str;
    /// The old library's session cookie.
    fn cookie(&self) -> &SourceCookie;
    /// The old session id a cookie value carries, if the old library issued it.
    fn verify(&self, value: &str) -> Option<String>;
    /// The live old session under `id`, if any.
    fn load<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Option<SourceSession>, StoreError>>;
    /// Deletes the old session under `id` (no error when there is none).
    fn delete<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<(), StoreError>>;
    /// About `count` old session ids from `cursor` on (`None`: the start), and the cursor of
    /// the next batch (`None`: no more), for a drain off the request path. An id may come
    /// twice (a store scanned while it changes); one written during the scan may be missed.
    fn scan<'a>(&'a self, cursor: Option<&'a str>, count: usize) -> BoxFuture<'a, ScanResult>;
}

/// A batch of old session ids and the cursor of the next batch ([`Source::scan`]).
pub type ScanResult = Result<(Vec<String>, Option<String>), StoreError>;
