//! The pool and its checkout: a bb8 pool whose checkouts end at a failed connect when no
//! connection can come to them, so that the checkout timeout only bounds a silent server.

use std::sync::Arc;

use bb8::{ManageConnection, PooledConnection, RunError};
use futures_util::future::{Either, select};

use crate::backend::Backend;
use crate::connects::{ConnectError, Connects, Sink};

/// Why a checkout got no connection. Names no address and no credential (the backend's
/// failure is what it says it is).
#[derive(Debug, thiserror::Error)]
pub enum CheckoutError<E, F> {
    /// Nothing came within bb8's checkout timeout: the server is silent, or every connection
    /// stayed busy.
    #[error("no connection within the checkout timeout")]
    TimedOut,
    /// bb8 returned a connect's own error to this checkout.
    #[error("a connect failed: {0}")]
    Connect(E),
    /// A connect failed while this checkout waited, and no connection could come to it: the
    /// latest failure, as the backend read it.
    #[error("no connection can come: {0}")]
    Failed(F),
    /// No connect was tried (the server refused one moments ago) and no failure was heard
    /// yet to say why.
    #[error("no connect tried: the server refused one moments ago")]
    HeldOff,
}

/// What one checkout cost ([`Pool::get_observed`]).
#[derive(Debug, Clone, Copy)]
pub struct Checkout {
    /// How long it took, successful or not, in seconds.
    pub secs: f64,
    /// Whether no connection was idle when it began (it waited for one, or for a connect).
    pub waited: bool,
    /// Connections checked out once it ended.
    pub in_use: u32,
}

/// A bb8 pool whose checkouts fail fast. Cheap to clone (clones share the pool).
pub struct Pool<M: ManageConnection, B: Backend> {
    pool: bb8::Pool<M>,
    connects: Arc<Connects<B>>,
}

impl<M: ManageConnection, B: Backend> Clone for Pool<M, B> {
    fn clone(&self) -> Self {
        Self {
            pool: self.pool.clone(),
            connects: Arc::clone(&self.connects),
        }
    }
}

impl<M: ManageConnection, B: Backend> std::fmt::Debug for Pool<M, B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("state", &self.pool.state())
            .field("connects", &self.connects)
            .finish()
    }
}

impl<M, B> Pool<M, B>
where
    M: ManageConnection<Error = ConnectError<B::Error>>,
    B: Backend,
{
    /// Builds the pool from `builder` (its size and timeouts) and `manager`, which must run
    /// every connect through `connects` ([`Connects::connect`]). Sets what the fast failure
    /// needs: no retried connects (bb8 would retry with a backoff of 200 ms and more, and
    /// report only when the checkout gave up; here the next checkout makes a new attempt),
    /// and the error sink that announces each failure. No connection is made yet.
    pub fn new(builder: bb8::Builder<M>, connects: &Arc<Connects<B>>, manager: M) -> Self {
        let pool = builder
            .retry_connection(false)
            .error_sink(Box::new(Sink(Arc::clone(connects))))
            .build_unchecked(manager);
        Self {
            pool,
            connects: Arc::clone(connects),
        }
    }

    /// A connection, or the reason there is none: a failed connect ends the wait as soon as
    /// no connection can come (none open, none being made); only silence waits out the
    /// checkout timeout. One refused connect fails nobody while other connections serve.
    pub async fn get(
        &self,
    ) -> Result<PooledConnection<'static, M>, CheckoutError<B::Error, B::Failure>> {
        let mut failed = self.connects.subscribe();
        let mut get = std::pin::pin!(self.pool.get_owned());
        loop {
            let failure = std::pin::pin!(failed.changed());
            match select(get.as_mut(), failure).await {
                Either::Left((got, _)) => return got.map_err(|e| self.error(e)),
                // A connection can still come: one open (a busy one comes back) or a connect
                // under way.
                Either::Right((Ok(()), _)) if self.connects.may_come() => {}
                Either::Right(_) => return Err(self.given_up()),
            }
        }
    }

    /// [`Pool::get`], reporting what the checkout cost to `observe` (when given): the pool's
    /// state is read before and after, so pass `None` where nobody measures.
    pub async fn get_observed(
        &self,
        observe: Option<&(dyn Fn(Checkout) + Sync)>,
    ) -> Result<PooledConnection<'static, M>, CheckoutError<B::Error, B::Failure>> {
        let Some(observe) = observe else {
            return self.get().await;
        };
        let (started, before) = (std::time::Instant::now(), self.pool.state());
        let got = self.get().await;
        let after = self.pool.state();
        observe(Checkout {
            secs: started.elapsed().as_secs_f64(),
            waited: before.idle_connections == 0,
            in_use: after.connections.saturating_sub(after.idle_connections),
        });
        got
    }

    /// The pool's state (connections open, idle).
    pub fn state(&self) -> bb8::State {
        self.pool.state()
    }

    fn error(&self, e: RunError<ConnectError<B::Error>>) -> CheckoutError<B::Error, B::Failure> {
        match e {
            RunError::TimedOut => CheckoutError::TimedOut,
            RunError::User(ConnectError::Failed(e)) => CheckoutError::Connect(e),
            RunError::User(ConnectError::HeldOff) => self.given_up(),
        }
    }

    fn given_up(&self) -> CheckoutError<B::Error, B::Failure> {
        match self.connects.latest() {
            Some(f) => CheckoutError::Failed(f),
            None => CheckoutError::HeldOff,
        }
    }
}
