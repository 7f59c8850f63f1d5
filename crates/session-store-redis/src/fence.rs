//! Read fences of the client cache: before a load is answered from the cache, a `PING` sent on
//! the tracking connection *after* the load began has to come back. Redis queues the
//! invalidation of a write on every tracking connection while it runs the write, before it
//! answers the writer; the reply to a later `PING` on the same connection comes after that
//! invalidation, and the connection's reader applies the push before it hands the reply on. So
//! once the fence is answered, every write, logout or revoke whose answer any client had
//! received before the load began has dropped its key from the table.
//!
//! Any command on the tracking connection is a fence: its reply, too, comes after every push
//! queued before it. So every command the store sends there is numbered ([`Fences::send`]),
//! and a load waits for the reply of one numbered after it began: a save, a fill or a touch of
//! another request when there is one, else a `PING` the connection's prover sends for it. One
//! `PING` is in flight at a time, and it serves every load that began before it was sent (the
//! loads that begin while it is in flight wait for the next one): a load waits at most two
//! round trips, and under load one reply answers many loads.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Notify, watch};

/// Marks the fences of a connection given up: every load waiting on one goes to Redis.
const FAILED: u64 = u64::MAX;

/// The fences of one tracking connection. Every command sent on it is one ([`Fences::send`]);
/// the connection's prover sends a `PING` when a load waits and nothing else went out since it
/// began ([`Fences::wanted`]); loads wait for them ([`Fences::wait`]).
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
    /// Loads that asked for a fence so far.
    asked: u64,
}

impl Fences {
    pub(crate) fn new() -> Self {
        Self {
            state: Mutex::new(State::default()),
            wake: Notify::new(),
            done: watch::Sender::new(0),
        }
    }

    /// Asks for a fence sent after this call; the future resolves when one is answered:
    /// `false` if none was within `timeout`, or the connection was given up (the load must
    /// then go to Redis).
    pub(crate) fn wait(
        &self,
        timeout: Duration,
    ) -> impl std::future::Future<Output = bool> + Send + use<> {
        let mut done = self.done.subscribe();
        let target = {
            let mut st = lock(&self.state);
            let target = st.sent + 1;
            st.wanted = st.wanted.max(target);
            st.asked += 1;
            target
        };
        self.wake.notify_one();
        async move {
            match tokio::time::timeout(timeout, done.wait_for(|d| *d >= target)).await {
                Ok(Ok(d)) => *d != FAILED,
                _ => false,
            }
        }
    }

    /// How many loads have asked for a fence so far (the prover waits while more keep coming,
    /// so one `PING` serves them all).
    pub(crate) fn asked(&self) -> u64 {
        lock(&self.state).asked
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

    /// Numbers a command about to be sent on the connection: its reply serves every load
    /// waiting now. Call [`Sent::answered`] when the reply came; dropped unanswered (an error,
    /// a timeout, a request given up), the loads it would have served get a `PING` instead.
    pub(crate) fn send(self: &Arc<Self>) -> Sent {
        let n = {
            let mut st = lock(&self.state);
            st.sent += 1;
            st.sent
        };
        Sent {
            fences: Arc::clone(self),
            n,
            answered: false,
        }
    }

    /// Fence `n` was answered: the loads waiting for it (or an earlier one) go on.
    fn answered(&self, n: u64) {
        self.done.send_if_modified(|d| {
            let moved = *d < n && *d != FAILED;
            if moved {
                *d = n;
            }
            moved
        });
    }

    /// Fence `n` will not be answered: the loads waiting for it need another.
    fn lost(&self, n: u64) {
        {
            let mut st = lock(&self.state);
            if st.wanted >= n && st.wanted <= st.sent {
                st.wanted = st.sent + 1;
            }
        }
        self.wake.notify_one();
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

/// A command sent on the tracking connection, as a fence ([`Fences::send`]).
pub(crate) struct Sent {
    fences: Arc<Fences>,
    n: u64,
    answered: bool,
}

impl Sent {
    /// Its reply came: the loads that began before it was sent go on.
    pub(crate) fn answered(mut self) {
        self.answered = true;
        self.fences.answered(self.n);
    }
}

impl Drop for Sent {
    fn drop(&mut self) {
        if !self.answered {
            self.fences.lost(self.n);
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    const LONG: Duration = Duration::from_secs(5);

    /// A load waiting on `f` (it asks for its fence as it is made).
    async fn waiting(f: &Arc<Fences>) -> tokio::task::JoinHandle<bool> {
        tokio::spawn(f.wait(LONG))
    }

    #[tokio::test]
    async fn a_command_sent_before_a_load_began_does_not_serve_it() {
        let f = Arc::new(Fences::new());
        let first = waiting(&f).await;
        let n = f.send();
        // A load that begins after command `n` was sent waits for the next one.
        let second = waiting(&f).await;
        assert!(f.wanted());
        n.answered();
        assert!(first.await.unwrap());
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        assert!(
            !second.is_finished(),
            "served by a command sent before it began"
        );
        let m = f.send();
        assert!(!f.wanted());
        m.answered();
        assert!(second.await.unwrap());
    }

    #[tokio::test]
    async fn one_reply_serves_every_load_waiting_when_it_was_sent() {
        let f = Arc::new(Fences::new());
        let mut loads = Vec::new();
        for _ in 0..50 {
            loads.push(waiting(&f).await);
        }
        let n = f.send();
        assert_eq!(n.n, 1);
        n.answered();
        for l in loads {
            assert!(l.await.unwrap());
        }
    }

    #[tokio::test]
    async fn a_command_lost_on_the_way_asks_for_another_fence() {
        let f = Arc::new(Fences::new());
        let load = waiting(&f).await;
        let n = f.send();
        assert!(!f.wanted(), "the command in flight covers the load");
        drop(n); // an error, a timeout, a request given up
        assert!(f.wanted(), "the load needs a fence again");
        let ping = f.send();
        ping.answered();
        assert!(load.await.unwrap());
        // A later command in flight serves the load all the same (a loss may ask for one
        // fence more than needed, never for one fewer).
        let load = waiting(&f).await;
        let (a, b) = (f.send(), f.send());
        drop(a);
        b.answered();
        assert!(load.await.unwrap());
        // Both lost, the later first: the load still gets a fence.
        let load = waiting(&f).await;
        let (a, b) = (f.send(), f.send());
        drop(b);
        drop(a);
        assert!(f.wanted());
        f.send().answered();
        assert!(load.await.unwrap());
    }

    #[tokio::test]
    async fn a_failed_connection_or_a_silent_one_fails_the_wait() {
        let f = Arc::new(Fences::new());
        let load = waiting(&f).await;
        f.fail();
        assert!(!load.await.unwrap());
        // Once failed, always failed: an answer that comes late changes nothing.
        f.send().answered();
        assert!(!f.wait(LONG).await);
        let silent = Fences::new();
        assert!(!silent.wait(Duration::from_millis(20)).await);
    }
}
