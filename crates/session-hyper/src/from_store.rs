//! Another store of ours as a source, for the drain of a switch between our stores
//! ([`SessionLayerBuilder::migrate_from`](crate::SessionLayerBuilder::migrate_from)): the
//! "old id" is the session's key in the old store. Requests move such sessions on their own
//! (`load_first_live`); this is what the drain walks and how a drained session's first request
//! deletes what a drain cut short left in the old store.

use std::sync::Arc;

use session_core::store::{
    BoxFuture, DynStore, Loaded, ScanResult, Source, SourceCookie, SourceSession, StoreError,
    StoreKey,
};

/// The store a layer migrates from, read as a source.
pub(crate) struct StoreSource {
    old: Arc<dyn DynStore>,
    /// Our own cookie: a drained session's first request sets it anew, nothing is removed.
    cookie: SourceCookie,
}

impl StoreSource {
    pub(crate) fn new(old: Arc<dyn DynStore>, cookie: SourceCookie) -> Self {
        Self { old, cookie }
    }
}

impl Source for StoreSource {
    fn name(&self) -> &str {
        "store"
    }

    fn cookie(&self) -> &SourceCookie {
        &self.cookie
    }

    /// Never asked: the cookie is ours, read as ours.
    fn verify(&self, _value: &str) -> Option<String> {
        None
    }

    fn load<'a>(
        &'a self,
        key: &'a str,
    ) -> BoxFuture<'a, Result<Option<SourceSession>, StoreError>> {
        Box::pin(async move {
            Ok(match self.old.load_dyn(&StoreKey::from_raw(key)).await? {
                Loaded::Live(r) => Some(SourceSession {
                    data: r.data,
                    expires_ms: r.meta.expire,
                    created_ms: r.meta.created,
                    max_age: Some(r.meta.max_age),
                }),
                _ => None,
            })
        })
    }

    fn delete<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            self.old.destroy_dyn(&StoreKey::from_raw(key)).await?;
            Ok(())
        })
    }

    fn scan<'a>(&'a self, cursor: Option<&'a str>, count: usize) -> BoxFuture<'a, ScanResult> {
        Box::pin(async move {
            let (keys, next) = self.old.scan_dyn(cursor, count).await?;
            Ok((keys.iter().map(|k| k.as_str().to_owned()).collect(), next))
        })
    }
}
