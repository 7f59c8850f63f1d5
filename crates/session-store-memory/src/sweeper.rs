//! The optional background task that reclaims expired records.

use std::time::Duration;

use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// A running sweeper. [`Sweeper::stop`] ends it cleanly; dropping it aborts it.
#[derive(Debug)]
pub struct Sweeper {
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl Sweeper {
    /// Calls `sweep` (which returns how many records it reclaimed) every `interval`, first one
    /// `interval` from now, on the current tokio runtime.
    pub(crate) fn start(sweep: impl Fn() -> usize + Send + 'static, interval: Duration) -> Self {
        let interval = interval.max(Duration::from_millis(1));
        let (tx, mut rx) = oneshot::channel();
        let task = tokio::spawn(async move {
            let mut ticker =
                tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = &mut rx => break,
                    _ = ticker.tick() => {
                        let n = sweep();
                        if n > 0 {
                            session_core::telemetry::sweeper_removed("memory", n as u64);
                            tracing::debug!(target: "session::memory", reclaimed = n, "swept expired sessions");
                        }
                    }
                }
            }
        });
        Self {
            stop: Some(tx),
            task: Some(task),
        }
    }

    /// Stops the sweeper and waits until its task has ended.
    pub async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for Sweeper {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}
