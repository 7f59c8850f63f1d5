//! The error every store call may return, and the boxed future of the object-safe store
//! traits: what both the store contract and the owner index build on.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

/// A store failure. Messages never contain keys, ids or data.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The store could not be reached (connection refused, reset, pool has no connection).
    #[error("session store unavailable: {0}")]
    Unavailable(String),
    /// The store did not answer within its time limit.
    #[error("session store timed out after {0:?}")]
    Timeout(Duration),
    /// The store refused the write (e.g. Redis out of memory under `noeviction`).
    #[error("session store rejected the write: {0}")]
    Rejected(String),
    /// A stored record could not be decoded.
    #[error("stored session record is corrupt: {0}")]
    Corrupt(String),
    /// The record is larger than the store accepts.
    #[error("session record of {size} bytes exceeds the limit of {limit} bytes")]
    TooLarge {
        /// Encoded size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// Any other backend error.
    #[error("session store error: {0}")]
    Backend(String),
}

impl StoreError {
    /// The kind of failure, a stable name for events and metrics: `unavailable`, `timeout`,
    /// `rejected`, `corrupt`, `too_large`, `backend` (the list: `telemetry::ERROR_KINDS`).
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Unavailable(_) => "unavailable",
            Self::Timeout(_) => "timeout",
            Self::Rejected(_) => "rejected",
            Self::Corrupt(_) => "corrupt",
            Self::TooLarge { .. } => "too_large",
            Self::Backend(_) => "backend",
        }
    }

    /// Whether retrying later may succeed (outage, timeout, full store), as opposed to a
    /// problem with this record.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Self::Unavailable(_) | Self::Timeout(_) | Self::Rejected(_)
        )
    }
}

/// A boxed future, for [`DynStore`](crate::store::DynStore) and
/// [`OwnerIndex`](crate::store::OwnerIndex).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;
