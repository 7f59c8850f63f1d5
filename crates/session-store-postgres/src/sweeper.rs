//! The optional background task that deletes expired rows in batches.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use session_core::driver::CLOCK_SKEW_ALLOWANCE_MS;
use tokio::task::JoinHandle;
use tokio_postgres::types::Type;

use crate::store::PostgresStore;

/// Rows deleted per statement (so a sweep never holds many locks or runs long).
const BATCH: i64 = 1000;
/// Batches per tick at most (the rest waits for the next tick).
const MAX_BATCHES: usize = 100;

/// A running sweeper; dropping it stops it.
#[derive(Debug)]
pub struct Sweeper {
    task: JoinHandle<()>,
}

impl Drop for Sweeper {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl PostgresStore {
    /// Deletes expired rows now, in batches of 1000 (at most 100 batches), and the owner
    /// index's lapsed entries; how many session rows went. Expired rows are never returned
    /// whether or not they were swept: a load deletes the row it finds expired, and a create
    /// takes an expired row's place.
    pub async fn sweep(&self) -> Result<u64, session_core::store::StoreError> {
        let mut total = 0;
        for _ in 0..MAX_BATCHES {
            let n = self.count(&self.sql().sweep.clone(), &[BATCH]).await?;
            total += n;
            if n < BATCH as u64 {
                break;
            }
        }
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let lapsed = i64::try_from(now.saturating_sub(CLOCK_SKEW_ALLOWANCE_MS)).unwrap_or(0);
        for _ in 0..MAX_BATCHES {
            let n = self
                .count(&self.sql().sweep_owners.clone(), &[lapsed, BATCH])
                .await?;
            if n < BATCH as u64 {
                break;
            }
        }
        Ok(total)
    }

    async fn count(&self, sql: &str, ints: &[i64]) -> Result<u64, session_core::store::StoreError> {
        let params: Vec<(&(dyn tokio_postgres::types::ToSql + Sync), Type)> = ints
            .iter()
            .map(|v| (v as &(dyn tokio_postgres::types::ToSql + Sync), Type::INT8))
            .collect();
        self.db()
            .run(false, |c| {
                let params = &params;
                async move { c.query(sql, params).await.map(|rows| rows.len() as u64) }
            })
            .await
    }

    /// Starts a background task (on the current tokio runtime) that calls
    /// [`PostgresStore::sweep`] every `interval`; it stops when the returned handle is dropped.
    /// A failed sweep is logged and tried again at the next tick.
    pub fn start_sweeper(&self, interval: Duration) -> Sweeper {
        let store = self.clone();
        let interval = interval.max(Duration::from_millis(10));
        let task = tokio::spawn(async move {
            let mut ticker =
                tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticker.tick().await;
                match store.sweep().await {
                    Ok(0) => {}
                    Ok(n) => {
                        session_core::telemetry::sweeper_removed("postgresql", n);
                        tracing::debug!(target: "session::postgres", swept = n, "deleted expired sessions");
                    }
                    Err(e) => {
                        tracing::warn!(target: "session::postgres", error = %e, "sweep failed; trying again at the next tick");
                    }
                }
            }
        });
        Sweeper { task }
    }
}
