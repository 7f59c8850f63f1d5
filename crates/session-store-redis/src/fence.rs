//! Read fences of the client cache: before a load is answered from the cache, a `PING` sent on
//! the tracking connection *after* the load began has to come back. Redis queues the
//! invalidation of a write on every tracking connection while it runs the write, before it
//! answers the writer; the reply to a later `PING` on the same connection comes after that
//! invalidation, and the connection's reader applies the push before it hands the reply on. So
//! once the fence is answered, every write, logout or revoke whose answer any client had
//! received before the load began has dropped its key from the table.
//!
//! Fences are shared: one `PING` is in flight at a time, and it serves every load that began
//! before it was sent (the loads that begin while it is in flight wait for the next one). A
//! load waits at most two round trips, and under load one `PING` answers many reads.

use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::{Notify, watch};

/// Marks the fences of a connection given up: every load waiting on one goes to Redis.
const FAILED: u64 = u64::MAX;

/// The fences of one tracking connection. The connection's prover task sends them
/// ([`Fences::next`], [`Fences::answered`]); loads wait for them ([`Fences::wait`]).
pub(crate) struct Fences {
    state: Mutex<State>,
    /// Wakes the prover when a load wants a fence.
    wake: Notify,
    /// The number of the latest fence answered, or [`FAILED`].
    done: watch::Sender<u64>,
}

#[derive(Default)]
struct State {
    /// Fences sent so far: the number of the latest one.
    sent: u64,
    /// The highest fence number a load waits for.
    wanted: u64,
}

impl Fences {
    pub(crate) fn new() -> Self {
        Self {
            state: Mutex::new(State::default()),
            wake: Notify::new(),
            done: watch::Sender::new(0),
        }
    }

    /// Waits until a fence sent after this call is answered; `false` if none was within
    /// `timeout`, or the connection was given up (the load must then go to Redis).
    pub(crate) async fn wait(&self, timeout: Duration) -> bool {
        let mut done = self.done.subscribe();
        let target = {
            let mut st = lock(&self.state);
            let target = st.sent + 1;
            st.wanted = st.wanted.max(target);
            target
        };
        self.wake.notify_one();
        match tokio::time::timeout(timeout, done.wait_for(|d| *d >= target)).await {
            Ok(Ok(d)) => *d != FAILED,
            _ => false,
        }
    }

    /// Whether a load waits for a fence not sent yet.
    pub(crate) fn wanted(&self) -> bool {
        let st = lock(&self.state);
        st.wanted > st.sent
    }

    /// Waits until a load wants a fence (or [`Fences::close`] is called).
    pub(crate) async fn requested(&self) {
        self.wake.notified().await;
    }

    /// Numbers the fence about to be sent: it serves every load waiting now.
    pub(crate) fn next(&self) -> u64 {
        let mut st = lock(&self.state);
        st.sent += 1;
        st.sent
    }

    /// Fence `n` was answered: the loads waiting for it (or an earlier one) go on.
    pub(crate) fn answered(&self, n: u64) {
        self.done.send_if_modified(|d| {
            let moved = *d < n && *d != FAILED;
            if moved {
                *d = n;
            }
            moved
        });
    }

    /// The connection is given up: every load waiting, now or later, goes to Redis.
    pub(crate) fn fail(&self) {
        self.done.send_replace(FAILED);
    }

    /// Wakes the prover (to notice that the connection was given up).
    pub(crate) fn close(&self) {
        self.wake.notify_one();
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    const LONG: Duration = Duration::from_secs(5);

    #[tokio::test]
    async fn a_fence_sent_before_a_load_began_does_not_serve_it() {
        let f = Arc::new(Fences::new());
        let first = tokio::spawn({
            let f = Arc::clone(&f);
            async move { f.wait(LONG).await }
        });
        while !f.wanted() {
            tokio::task::yield_now().await;
        }
        let n = f.next();
        // A load that begins after fence `n` was sent waits for the next one.
        let second = tokio::spawn({
            let f = Arc::clone(&f);
            async move { f.wait(LONG).await }
        });
        while !f.wanted() {
            tokio::task::yield_now().await;
        }
        f.answered(n);
        assert!(first.await.unwrap());
        assert!(!second.is_finished());
        tokio::task::yield_now().await;
        assert!(
            !second.is_finished(),
            "served by a fence sent before it began"
        );
        let m = f.next();
        assert!(!f.wanted());
        f.answered(m);
        assert!(second.await.unwrap());
    }

    #[tokio::test]
    async fn one_fence_serves_every_load_waiting_when_it_is_sent() {
        let f = Arc::new(Fences::new());
        let loads: Vec<_> = (0..50)
            .map(|_| {
                let f = Arc::clone(&f);
                tokio::spawn(async move { f.wait(LONG).await })
            })
            .collect();
        for _ in 0..100 {
            tokio::task::yield_now().await;
        }
        let n = f.next();
        f.answered(n);
        for l in loads {
            assert!(l.await.unwrap());
        }
        assert_eq!(n, 1);
    }

    #[tokio::test]
    async fn a_failed_connection_or_a_silent_one_fails_the_wait() {
        let f = Arc::new(Fences::new());
        let waiting = tokio::spawn({
            let f = Arc::clone(&f);
            async move { f.wait(LONG).await }
        });
        while !f.wanted() {
            tokio::task::yield_now().await;
        }
        f.fail();
        assert!(!waiting.await.unwrap());
        // Once failed, always failed: an answer that comes late changes nothing.
        f.answered(f.next());
        assert!(!f.wait(LONG).await);
        let silent = Fences::new();
        assert!(!silent.wait(Duration::from_millis(20)).await);
    }
}
