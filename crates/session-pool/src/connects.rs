//! The pool's connects: those under way and the connections they made, the latest failure
//! (announced to the checkouts waiting for a connection), and the hold-off after a refusal.
//!
//! bb8 hands a failed connect to its error sink, not to the callers waiting for a connection:
//! without the announcement every caller would wait out the whole checkout timeout although
//! the server refused at once. A waiting checkout that hears of a failure gives up only when no
//! connection can come to it any more: none open (a busy one comes back) and no connect under
//! way. Both are one count here, so that a connect that succeeded is counted from its start
//! until its connection is dropped, with no gap between bb8 getting the connection and bb8
//! counting it.

use std::future::Future;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use crate::backend::Backend;

/// A connect of the pool, as its manager reports it to bb8.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError<E> {
    /// The store client's error (a failed connect, or a failed checkout test).
    #[error(transparent)]
    Failed(E),
    /// Not tried: the server refused a connect moments ago (see [`Backend::hold_off`]).
    #[error("no connect tried: the server refused one moments ago")]
    HeldOff,
}

/// The state a pool's manager and its checkouts share. Made with [`Connects::new`]; the
/// manager runs each connect through [`Connects::connect`], and [`crate::Pool::new`] gives bb8
/// the error sink that announces failures.
pub struct Connects<B: Backend> {
    backend: B,
    /// The latest failure (`None` before the first), sent on each failure.
    news: tokio::sync::watch::Sender<Option<B::Failure>>,
    /// Connects under way plus the connections they made that still exist: while it is not
    /// zero, a connection may still come to a waiting checkout.
    coming: Arc<AtomicUsize>,
    /// No connect is tried before this instant (see [`Backend::hold_off`]).
    held: Mutex<Option<Instant>>,
}

impl<B: Backend> std::fmt::Debug for Connects<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connects")
            .field("coming", &self.coming.load(Ordering::Relaxed))
            .field("held_until", &*self.held())
            .finish_non_exhaustive()
    }
}

impl<B: Backend> Connects<B> {
    /// No connect yet, no failure, no hold-off.
    pub fn new(backend: B) -> Arc<Self> {
        Arc::new(Self {
            backend,
            news: tokio::sync::watch::Sender::new(None),
            coming: Arc::new(AtomicUsize::new(0)),
            held: Mutex::new(None),
        })
    }

    /// The store's half.
    pub fn backend(&self) -> &B {
        &self.backend
    }

    /// The latest failure announced, if any.
    pub fn latest(&self) -> Option<B::Failure> {
        self.news.borrow().clone()
    }

    /// Runs one connect of the pool's manager (call it from
    /// [`bb8::ManageConnection::connect`]): fails with [`ConnectError::HeldOff`] without
    /// polling `connect` while a hold-off lasts, counts the connect while it runs and its
    /// connection while that lives, and sets the hold-off the backend asks for on a failure,
    /// before bb8 frees the connect's pool slot.
    pub async fn connect<C, F>(&self, connect: F) -> Result<Connection<C>, ConnectError<B::Error>>
    where
        F: Future<Output = Result<C, B::Error>>,
    {
        {
            let held = self.held();
            if held.is_some_and(|until| Instant::now() < until) {
                return Err(ConnectError::HeldOff);
            }
            // Under the lock, as is the backend's word on a hold-off: the two come in the
            // order the hold-off was checked and set.
            self.backend.connecting();
        }
        // Stops counting (when dropped) before bb8 hands a failure to the sink; moves into the
        // connection on success.
        let counted = Counted::new(&self.coming);
        match connect.await {
            Ok(conn) => Ok(Connection {
                conn,
                _counted: counted,
            }),
            Err(e) => {
                // Also a connect that succeeded meanwhile lifts no hold-off: it began before
                // this refusal (none begins during a hold-off), so it says nothing of the
                // server since.
                if let Some(d) = self.backend.hold_off(&e) {
                    // The backend's word under the lock and before the instant the hold-off
                    // counts from: no connect begins within `d` after it.
                    let mut held = self.held();
                    self.backend.holding_off();
                    *held = Some(Instant::now() + d);
                }
                Err(ConnectError::Failed(e))
            }
        }
    }

    /// Whether a connection may still come to a waiting checkout: one open (a busy one comes
    /// back) or a connect under way.
    pub(crate) fn may_come(&self) -> bool {
        self.coming.load(Ordering::SeqCst) > 0
    }

    /// A receiver of the failures announced from now on.
    pub(crate) fn subscribe(&self) -> tokio::sync::watch::Receiver<Option<B::Failure>> {
        self.news.subscribe()
    }

    fn held(&self) -> MutexGuard<'_, Option<Instant>> {
        self.held.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Announces an error bb8 handed its sink. Every failure is news, the same again included.
    fn announce(&self, error: ConnectError<B::Error>) {
        match error {
            // The refusal that holds connects off, once more: the waiting checkouts look again.
            ConnectError::HeldOff => self.news.send_modify(|_| {}),
            ConnectError::Failed(e) => {
                let last = self.latest();
                let failure = self.backend.failure(&e, last.as_ref());
                self.news.send_replace(Some(failure));
            }
        }
    }
}

/// A connection the pool counts as one that may still serve a waiting checkout, for as long as
/// it lives (in the pool, checked out, or on its way between). What the manager's
/// [`bb8::ManageConnection::Connection`] is; it dereferences to the store's connection.
pub struct Connection<C> {
    conn: C,
    _counted: Counted,
}

impl<C> Deref for Connection<C> {
    type Target = C;
    fn deref(&self) -> &C {
        &self.conn
    }
}

impl<C> DerefMut for Connection<C> {
    fn deref_mut(&mut self) -> &mut C {
        &mut self.conn
    }
}

impl<C> std::fmt::Debug for Connection<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Connection")
    }
}

/// Counts a connect under way, then its connection, for as long as it lives (also when bb8
/// drops the connect).
struct Counted(Arc<AtomicUsize>);

impl Counted {
    fn new(n: &Arc<AtomicUsize>) -> Self {
        n.fetch_add(1, Ordering::SeqCst);
        Counted(Arc::clone(n))
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// bb8's error sink: announces each error to the waiting checkouts.
pub(crate) struct Sink<B: Backend>(pub(crate) Arc<Connects<B>>);

impl<B: Backend> std::fmt::Debug for Sink<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Sink").field(&self.0).finish()
    }
}

impl<B: Backend> bb8::ErrorSink<ConnectError<B::Error>> for Sink<B> {
    fn sink(&self, error: ConnectError<B::Error>) {
        self.0.announce(error);
    }

    fn boxed_clone(&self) -> Box<dyn bb8::ErrorSink<ConnectError<B::Error>>> {
        Box::new(Sink(Arc::clone(&self.0)))
    }
}
