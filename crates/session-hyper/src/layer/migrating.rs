//! The builder's options for moving sessions in without logging anyone out (from another
//! store of ours, another library, our own cookie mode), their checks at build, and the one
//! response rule they add.

use std::sync::Arc;

use http::HeaderValue;
use session_core::store::{DynStore, Source, Store};

use super::{LayerBuildError, SessionLayer, SessionLayerBuilder};
use crate::from_cookies::CookieSource;
use crate::headers::Headers;
use crate::shared::{Backend, Shared};

impl SessionLayerBuilder {
    /// Switches stores without logging anyone out: sessions are served from the layer's store,
    /// and a session found only in `old` (the store the site used until now, with the same
    /// cookie and keys) moves on its first use: its data, owner binding included, goes into
    /// the layer's store under a new id, the client gets the new id's cookie, and the old
    /// record is replaced by a marker that names the new one (as a login's regenerate leaves)
    /// and lapses with it. Requests racing one move make one session; a logout racing it ends
    /// it in both stores; listing and revoking an owner's sessions covers both stores.
    ///
    /// `old` is asked only for ids the layer's store has no record of (a session that has
    /// moved, or was created here, costs it no call); its failure is the request's (a 503,
    /// nothing moved). Store mode only (refused at build in cookie mode). The guide's
    /// chapter on switching stores (`docs/switching.md`) gives the steps.
    ///
    /// ```
    /// use session_hyper::{Config, MemoryStore, SessionLayer};
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let config = Config::builder().key(b"a 32-byte (or longer) secret key!".to_vec()).build()?;
    /// let (new, old) = (MemoryStore::new(), MemoryStore::new());
    /// let layer = SessionLayer::store(config, new).migrate_from(old).build()?;
    /// # let _ = layer; Ok(()) }
    /// ```
    pub fn migrate_from<S: Store>(mut self, old: S) -> Self {
        self.migrate_from = Some(Arc::new(old));
        self
    }

    /// Moves in from another session library without logging anyone out: a request that
    /// carries no session cookie of ours but the old library's cookie, validly issued, gets
    /// the old session's data moved into the layer's store under a new id of ours; our cookie
    /// is set, the old cookie removed (with the old library's path and domain) and the old
    /// session deleted. Requests racing one move make one session; a logout sent with the old
    /// cookie while the move runs ends the moved session too; a forged old cookie, or one whose
    /// session is gone, is anonymous and writes nothing; old data our rules refuse (a key
    /// starting with `_`, more than [`MAX_MOVED_BYTES`](crate::MAX_MOVED_BYTES) of JSON) starts a new session with a warning
    /// saying why; the old store down is a 503 that loses nothing. A request without the old
    /// cookie makes no call to the source.
    ///
    /// Store mode only; a source whose cookie name is this layer's is refused at build (our
    /// own stores share the cookie: [`migrate_from`](Self::migrate_from)). The sources of
    /// other libraries are in the `session-migrate` crate; the guide's chapter on switching
    /// (`docs/switching.md`) gives the steps.
    pub fn migrate_from_source(mut self, source: impl Source) -> Self {
        self.source = Some(Arc::new(source));
        self
    }

    /// Moves in from our own cookie mode (signed or encrypted) without logging anyone out:
    /// `old` is the layer the site served in cookie mode, built as it was (its keys, cookie
    /// and codec), and reads the old cookies exactly as the old app did. A request whose
    /// cookie is a live cookie-mode session the old app issued gets it moved into this
    /// layer's store under a new id, as [`migrate_from_source`](Self::migrate_from_source)
    /// moves another library's, with the same promises. The cookie may keep its name (ours
    /// then replaces it) or change it (the old one is removed).
    ///
    /// A cookie-mode session has no record to delete: once moved, or ended by a logout, its
    /// value is remembered in this layer's store (a small tombstone, kept until the old
    /// cookie's own expiry, at most 400 days for a cookie without one), so a replay of it is
    /// anonymous. There is nothing to drain: the sessions live in the browsers.
    ///
    /// ```
    /// use session_hyper::{Config, MemoryStore, SessionLayer};
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let config = || Config::builder().key(b"a 32-byte (or longer) secret key!".to_vec()).build();
    /// let old = SessionLayer::cookie(config()?).build()?;
    /// let layer = SessionLayer::store(config()?, MemoryStore::new())
    ///     .migrate_from_cookie_mode(old)
    ///     .build()?;
    /// # let _ = layer; Ok(()) }
    /// ```
    pub fn migrate_from_cookie_mode(mut self, old: SessionLayer) -> Self {
        self.from_cookies = Some(old);
        self
    }

    /// Checks the migration options (a source, an old store, our old cookie mode) and makes
    /// the cookie-mode source; what can't work fails here.
    pub(super) fn check_migration(&mut self) -> Result<Option<Arc<CookieSource>>, LayerBuildError> {
        let mut cookie_source = None;
        if let Some(old) = self.from_cookies.take() {
            if self.source.is_some() || self.migrate_from.is_some() {
                return Err(LayerBuildError::MigrateTwice);
            }
            if let Backend::Store(store) = &self.backend {
                let Backend::Cookie(codec) = &old.shared.backend else {
                    return Err(LayerBuildError::MigrateNotCookieMode);
                };
                // An unsigned cookie is anyone's to write: it can't say who was logged in.
                if old.shared.cookies.keygrip().is_none() && !codec.authenticates() {
                    return Err(LayerBuildError::MigrateUnsignedCookies);
                }
                let old = &old.shared;
                let source = Arc::new(CookieSource::new(
                    (old.config.clone(), old.cookies.clone(), Arc::clone(codec)),
                    Arc::clone(store),
                    self.config.key_derivation().clone(),
                ));
                self.source = Some(source.clone());
                cookie_source = Some(source);
            } else {
                return Err(LayerBuildError::MigrateNeedsStoreMode);
            }
        }
        let migrates = self.migrate_from.is_some() || self.source.is_some();
        if migrates && matches!(self.backend, Backend::Cookie(_)) {
            return Err(LayerBuildError::MigrateNeedsStoreMode);
        }
        if self.migrate_from.is_some() && self.source.is_some() {
            return Err(LayerBuildError::MigrateTwice);
        }
        if let (Some(old), Backend::Store(new)) = (&self.migrate_from, &self.backend) {
            // A session bound to its owner there could never move (nor log out) here.
            let keeps_index = |s: &Arc<dyn DynStore>| s.owner_index_dyn().is_some();
            if keeps_index(old) && (!keeps_index(new) || self.config.koa_compat()) {
                return Err(LayerBuildError::MigrateLosesOwners);
            }
        }
        if let Some(source) = &self.source {
            if self.external_key.is_some() {
                return Err(LayerBuildError::MigrateWithExternalKey);
            }
            let c = source.cookie();
            let bad = |v: &str| {
                v.is_empty()
                    || v.bytes()
                        .any(|b| matches!(b, b';' | b',' | b' ' | b'=') || b.is_ascii_control())
            };
            if bad(&c.name) {
                return Err(LayerBuildError::MigrateCookie("name"));
            }
            if bad(&c.path) {
                return Err(LayerBuildError::MigrateCookie("path"));
            }
            if c.domain.as_deref().is_some_and(bad) {
                return Err(LayerBuildError::MigrateCookie("domain"));
            }
            let name = &source.cookie().name;
            let ours = &self.config.cookie().name;
            // Our own cookie mode may keep the name: its values are never ids.
            if cookie_source.is_none() && (name == ours || *name == format!("{ours}.sig")) {
                return Err(LayerBuildError::MigrateCookieClash(name.clone()));
            }
        }
        Ok(cookie_source)
    }
}

/// Whether the removal `v` of an old cookie is for a cookie this response sets anyway (our own
/// cookie mode moving into a store under the same cookie).
pub(super) fn replaced_by_ours(
    shared: &Shared,
    v: &HeaderValue,
    pending: Option<&Headers>,
) -> bool {
    let (Some(source), Some(pending)) = (&shared.source, pending) else {
        return false;
    };
    let (old, ours) = (source.cookie(), shared.config.cookie());
    if (&old.path, &old.domain) != (&ours.path, &ours.domain) {
        return false;
    }
    let name = |v: &HeaderValue| {
        let v = v.as_bytes();
        v.iter().position(|&b| b == b'=').map(|i| v[..i].to_vec())
    };
    let removed = name(v);
    pending
        .iter()
        .any(|(n, set)| *n == http::header::SET_COOKIE && name(set) == removed)
}
