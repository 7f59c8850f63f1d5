//! What every request of one layer shares: the configuration, the cookie codec, the store, the
//! failure policy. A leaf: the handle, the commit and the layer all read it.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::RETRY_AFTER;
use http::{HeaderName, HeaderValue, Response};
use session_cookie::{Codec, SessionCookies};
use session_core::Config;
use session_core::store::{DynStore, Source, StoreError, StoreKey};

use crate::Error;

/// Tries to delete a record a failed regenerate created ([`Shared::discard`]).
const DISCARD_ATTEMPTS: u32 = 3;

/// Where sessions live.
#[derive(Clone)]
pub(crate) enum Backend {
    /// The signed cookie is the session.
    Cookie(Arc<dyn Codec>),
    /// The cookie carries an id; the store holds the data.
    Store(Arc<dyn DynStore>),
}

pub(crate) type ErrorHook = dyn Fn(&Error) -> Response<Bytes> + Send + Sync;

pub(crate) struct Shared {
    pub(crate) config: Config,
    pub(crate) cookies: SessionCookies,
    pub(crate) backend: Backend,
    pub(crate) trust_proxy: bool,
    pub(crate) external_key: Option<HeaderName>,
    pub(crate) save_on_server_error: bool,
    pub(crate) no_store: bool,
    pub(crate) store_timeout: Duration,
    pub(crate) retry_after: HeaderValue,
    pub(crate) on_error: Option<Arc<ErrorHook>>,
    /// The store sessions move from while a site switches stores (see
    /// [`SessionLayerBuilder::migrate_from`](crate::SessionLayerBuilder::migrate_from)).
    pub(crate) migrate_from: Option<Arc<dyn DynStore>>,
    /// The session library sessions move from (another crate's store and cookie), with the
    /// [`Set-Cookie`] value that removes its cookie.
    pub(crate) source: Option<Arc<dyn Source>>,
    /// The source when it is our own cookie mode: its cookies are read with its own jar (a
    /// signed one has a `.sig` cookie beside it).
    pub(crate) cookie_source: Option<Arc<crate::from_cookies::CookieSource>>,
    /// The store of [`migrate_from`](crate::SessionLayerBuilder::migrate_from) read as a
    /// source, for its drain and the first requests of drained sessions.
    pub(crate) store_source: Option<Arc<dyn Source>>,
    /// The most sessions an owner may have, and what a login over it does.
    pub(crate) limit: Option<session_core::SessionLimit>,
    /// Whether an XHR or htmx request takes the flash messages it is shown.
    pub(crate) scripted_takes_flash: bool,
    /// The CSRF token subkeys; `None` without signing keys.
    pub(crate) csrf: Option<session_cookie::csrf::CsrfKeys>,
    /// The app uses CSRF tokens (it made a [`CsrfLayer`](crate::CsrfLayer) or asked for a
    /// token): sessions then keep a secret.
    pub(crate) csrf_used: std::sync::atomic::AtomicBool,
}

impl Shared {
    /// What sessions move in from off the request path: another library (or our cookie
    /// mode), or the store the layer migrates from.
    pub(crate) fn mover(&self) -> Option<&Arc<dyn Source>> {
        self.source.as_ref().or(self.store_source.as_ref())
    }

    /// Bounds a store call: whatever the store's own limits, a request never hangs on it.
    pub(crate) async fn timed<T>(
        &self,
        f: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, Error> {
        match tokio::time::timeout(self.store_timeout, f).await {
            Ok(r) => r.map_err(Error::Store),
            Err(_) => Err(Error::Store(StoreError::Timeout(self.store_timeout))),
        }
    }

    /// Deletes, in the background, a record this request created but can't hand out (a
    /// regenerate that failed after its create), so no copy of the session's data outlives
    /// the failure. The store may be why the request failed, so the request does not wait;
    /// each try first waits one store time limit (a create still on its way when the request
    /// gave up has landed by then), and after a few the record is left to its TTL.
    pub(crate) fn discard(&self, key: StoreKey) {
        let Backend::Store(store) = &self.backend else {
            return;
        };
        let (store, limit) = (Arc::clone(store), self.store_timeout);
        tokio::spawn(async move {
            for _ in 0..DISCARD_ATTEMPTS {
                tokio::time::sleep(limit).await;
                if let Ok(Ok(_)) = tokio::time::timeout(limit, store.destroy_dyn(&key)).await {
                    return;
                }
            }
            tracing::warn!(target: "session", "could not delete the record of a failed regenerate; it ends with its TTL");
        });
    }

    pub(crate) fn error_response<B: From<Bytes>>(&self, e: &Error) -> Response<B> {
        tracing::warn!(target: "session", error = %e, "session failure; answering with the error response");
        let r = match &self.on_error {
            Some(hook) => hook(e).map(B::from),
            None => {
                let mut r = Response::new(B::from(Bytes::new()));
                *r.status_mut() = e.status();
                if e.is_transient() {
                    r.headers_mut()
                        .insert(RETRY_AFTER, self.retry_after.clone());
                }
                r
            }
        };
        session_core::telemetry::answer(r.status().as_u16());
        r
    }
}
