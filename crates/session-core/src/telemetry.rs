//! Metrics, through the `metrics` facade (the crate of that name), behind the `metrics`
//! feature: every name the crates of this workspace record, and the one function that records
//! each. Without the feature every function here is empty and compiles away.
//!
//! An app installs a recorder (a Prometheus, OpenTelemetry or StatsD exporter) *before* it
//! builds its session layer: the layer then sets every counter of a bounded label set to 0,
//! so a scrape shows each series before its first increment. Labels are of bounded
//! cardinality only: a store's `Store::system` name, an operation
//! ([`StoreOp`]), an outcome, an event name. Never an id, an owner or a key.
//!
//! | name | kind | labels |
//! |---|---|---|
//! | `session_store_duration_seconds` | histogram | `store`, `op`, `outcome` (`ok`, `error`, `timeout`, `cancelled`) |
//! | `session_store_errors_total` | counter | `store`, `op`, `kind` (`StoreError::kind`) |
//! | `session_answers_total` | counter | `status`: the layer's own error answers (`503`, `500`, `413`, `403`, `409`, `400`, `other`) |
//! | `session_set_cookie_bytes` | histogram | |
//! | `session_record_bytes` | histogram | `store` |
//! | `session_client_cache_total` | counter | `result` (`hit`, `miss`) |
//! | `session_pool_connections_in_use` | gauge | `store` |
//! | `session_pool_waits_total` | counter | `store` |
//! | `session_pool_wait_seconds` | histogram | `store` |
//! | `session_sweeper_removed_total` | counter | `store` |
//! | `session_events_total` | counter | `event` (`EventKind::name`) |
//! | `session_audit_dropped_total` | counter | |

/// A store call, as events (`EventKind::StoreFailed`) and metrics name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum StoreOp {
    /// `Store::create`.
    Create,
    /// `Store::load`.
    Load,
    /// `Store::save`.
    Save,
    /// `Store::destroy`.
    Destroy,
    /// `Store::supersede`.
    Supersede,
    /// `Store::touch`.
    Touch,
    /// `Store::scan`.
    Scan,
    /// `OwnerIndex::index`.
    Index,
    /// `OwnerIndex::unindex`.
    Unindex,
    /// `OwnerIndex::entries`.
    Entries,
    /// `OwnerIndex::admit`.
    Admit,
}

impl StoreOp {
    /// Every operation, in declaration order.
    pub const ALL: [StoreOp; 11] = [
        Self::Create,
        Self::Load,
        Self::Save,
        Self::Destroy,
        Self::Supersede,
        Self::Touch,
        Self::Scan,
        Self::Index,
        Self::Unindex,
        Self::Entries,
        Self::Admit,
    ];

    /// The operation's name, as the `op` label of metrics and the OpenTelemetry
    /// `db.operation.name` of its span: `create`, `load`, … `admit`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Create => "create",
            Self::Load => "load",
            Self::Save => "save",
            Self::Destroy => "destroy",
            Self::Supersede => "supersede",
            Self::Touch => "touch",
            Self::Scan => "scan",
            Self::Index => "index",
            Self::Unindex => "unindex",
            Self::Entries => "entries",
            Self::Admit => "admit",
        }
    }
}

/// Every lifecycle event's name (`EventKind::name`), the `event` label of [`EVENTS`].
pub const EVENT_NAMES: [&str; 13] = [
    "created",
    "saved",
    "touched",
    "regenerated",
    "moved",
    "destroyed",
    "revoked",
    "ended",
    "expired",
    "missed",
    "invalid",
    "rekeyed",
    "store_failed",
];

/// Whether metrics are recorded (the `metrics` feature): a caller skips the work of a
/// measurement (a clock reading, a pool's state) when they are not.
pub const ENABLED: bool = cfg!(feature = "metrics");

/// Store call latency, seconds.
pub const STORE_DURATION: &str = "session_store_duration_seconds";
/// Failed store calls.
pub const STORE_ERRORS: &str = "session_store_errors_total";
/// The layer's own error answers, by status.
pub const ANSWERS: &str = "session_answers_total";
/// The bytes of the `Set-Cookie` headers a response carries.
pub const SET_COOKIE_BYTES: &str = "session_set_cookie_bytes";
/// The bytes of an encoded record a store writes.
pub const RECORD_BYTES: &str = "session_record_bytes";
/// Redis client-cache lookups, by result.
pub const CLIENT_CACHE: &str = "session_client_cache_total";
/// Pooled connections checked out.
pub const POOL_IN_USE: &str = "session_pool_connections_in_use";
/// Checkouts that found no idle connection and waited.
pub const POOL_WAITS: &str = "session_pool_waits_total";
/// How long checkouts took, seconds.
pub const POOL_WAIT_SECONDS: &str = "session_pool_wait_seconds";
/// Rows or entries a store's sweeper removed.
pub const SWEEPER_REMOVED: &str = "session_sweeper_removed_total";
/// Lifecycle events emitted, by name.
pub const EVENTS: &str = "session_events_total";
/// Events the audit sink's queue dropped.
pub const AUDIT_DROPPED: &str = "session_audit_dropped_total";

/// The statuses of [`ANSWERS`]: a store down (503), a failure (500), a session or form too
/// large (413), a CSRF refusal (403), a login over a session limit (409), an unreadable form
/// (400); anything else an error hook answers counts as `other`.
pub const ANSWER_STATUSES: [u16; 6] = [503, 500, 413, 403, 409, 400];

/// The `kind` label of [`STORE_ERRORS`] (`StoreError::kind`).
pub const ERROR_KINDS: [&str; 6] = [
    "unavailable",
    "timeout",
    "rejected",
    "corrupt",
    "too_large",
    "backend",
];

/// How a store call ended, for [`STORE_DURATION`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// It answered.
    Ok,
    /// It failed.
    Error,
    /// The caller's time limit cut it off.
    Timeout,
    /// The caller stopped waiting before its time limit (the request went away).
    Cancelled,
}

impl Outcome {
    /// Every outcome, in declaration order (the index of each is `outcome as usize`).
    pub const ALL: [Outcome; 4] = [Self::Ok, Self::Error, Self::Timeout, Self::Cancelled];

    /// The `outcome` label: `ok`, `error`, `timeout`, `cancelled`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Error => "error",
            Self::Timeout => "timeout",
            Self::Cancelled => "cancelled",
        }
    }
}

#[cfg(feature = "metrics")]
fn status_name(s: u16) -> &'static str {
    match s {
        503 => "503",
        500 => "500",
        413 => "413",
        403 => "403",
        409 => "409",
        400 => "400",
        _ => "other",
    }
}

/// The latency histograms of one store, registered once with the installed recorder (a
/// middleware builds them when its layer is built): recording through them skips building
/// and hashing the labels on every call.
#[derive(Clone)]
pub struct StoreTimers {
    #[cfg(feature = "metrics")]
    by_op: std::sync::Arc<Vec<[metrics::Histogram; 4]>>,
    #[cfg(not(feature = "metrics"))]
    _none: (),
}

impl std::fmt::Debug for StoreTimers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreTimers").finish_non_exhaustive()
    }
}

impl StoreTimers {
    /// The histograms of `store`, one per operation and outcome.
    pub fn register(store: &'static str) -> StoreTimers {
        #[cfg(feature = "metrics")]
        {
            let by_op = StoreOp::ALL
                .iter()
                .map(|op| {
                    Outcome::ALL.map(|o| {
                        metrics::histogram!(STORE_DURATION, "store" => store, "op" => op.name(), "outcome" => o.name())
                    })
                })
                .collect();
            StoreTimers {
                by_op: std::sync::Arc::new(by_op),
            }
        }
        #[cfg(not(feature = "metrics"))]
        {
            let _ = store;
            StoreTimers { _none: () }
        }
    }

    /// A call of `op` took `secs` and ended as `outcome`.
    #[inline]
    pub fn record(&self, op: StoreOp, outcome: Outcome, secs: f64) {
        #[cfg(feature = "metrics")]
        if let Some(row) = self.by_op.get(op as usize) {
            row[outcome as usize].record(secs);
        }
        #[cfg(not(feature = "metrics"))]
        let _ = (op, outcome, secs);
    }
}

/// A store call of `op` on `store` failed with an error of `kind`.
#[inline]
pub fn store_error(store: &'static str, op: StoreOp, kind: &'static str) {
    #[cfg(feature = "metrics")]
    metrics::counter!(STORE_ERRORS, "store" => store, "op" => op.name(), "kind" => kind)
        .increment(1);
    #[cfg(not(feature = "metrics"))]
    let _ = (store, op, kind);
}

/// The layer answered an error with `status` (counted under `other` unless it is one of
/// [`ANSWER_STATUSES`]).
#[inline]
pub fn answer(status: u16) {
    #[cfg(feature = "metrics")]
    metrics::counter!(ANSWERS, "status" => status_name(status)).increment(1);
    #[cfg(not(feature = "metrics"))]
    let _ = status;
}

/// A response carries `bytes` of `Set-Cookie` header values.
#[inline]
pub fn set_cookie_bytes(bytes: usize) {
    #[cfg(feature = "metrics")]
    metrics::histogram!(SET_COOKIE_BYTES).record(bytes as f64);
    #[cfg(not(feature = "metrics"))]
    let _ = bytes;
}

/// `store` writes an encoded record of `bytes`.
#[inline]
pub fn record_bytes(store: &'static str, bytes: usize) {
    #[cfg(feature = "metrics")]
    metrics::histogram!(RECORD_BYTES, "store" => store).record(bytes as f64);
    #[cfg(not(feature = "metrics"))]
    let _ = (store, bytes);
}

/// A client-cache lookup hit or missed.
#[inline]
pub fn client_cache(hit: bool) {
    #[cfg(feature = "metrics")]
    metrics::counter!(CLIENT_CACHE, "result" => if hit { "hit" } else { "miss" }).increment(1);
    #[cfg(not(feature = "metrics"))]
    let _ = hit;
}

/// A checkout from `store`'s pool took `secs`, waited for a connection (none was idle) or
/// not, and left `in_use` connections checked out.
#[inline]
pub fn pool_checkout(store: &'static str, secs: f64, waited: bool, in_use: u32) {
    #[cfg(feature = "metrics")]
    {
        metrics::histogram!(POOL_WAIT_SECONDS, "store" => store).record(secs);
        metrics::gauge!(POOL_IN_USE, "store" => store).set(f64::from(in_use));
        let waits = metrics::counter!(POOL_WAITS, "store" => store);
        if waited {
            waits.increment(1);
        } else {
            waits.increment(0);
        }
    }
    #[cfg(not(feature = "metrics"))]
    let _ = (store, secs, waited, in_use);
}

/// `store`'s sweeper removed `rows` expired rows or entries.
#[inline]
pub fn sweeper_removed(store: &'static str, rows: u64) {
    #[cfg(feature = "metrics")]
    metrics::counter!(SWEEPER_REMOVED, "store" => store).increment(rows);
    #[cfg(not(feature = "metrics"))]
    let _ = (store, rows);
}

/// An event of this name was emitted.
#[inline]
pub(crate) fn event(name: &'static str) {
    #[cfg(feature = "metrics")]
    metrics::counter!(EVENTS, "event" => name).increment(1);
    #[cfg(not(feature = "metrics"))]
    let _ = name;
}

/// The audit sink's queue dropped an event.
#[inline]
pub fn audit_dropped() {
    #[cfg(feature = "metrics")]
    metrics::counter!(AUDIT_DROPPED).increment(1);
}

/// Sets every counter of a bounded label set to 0 (the answers, the events, the audit
/// drops, and the sweeper and the store errors of each of `stores`), so a scrape shows each series before its first
/// increment. The layer calls it when it is built: install the recorder first.
#[inline]
pub fn declare(stores: &[&'static str]) {
    #[cfg(feature = "metrics")]
    {
        for s in ANSWER_STATUSES {
            metrics::counter!(ANSWERS, "status" => status_name(s)).absolute(0);
        }
        for e in EVENT_NAMES {
            metrics::counter!(EVENTS, "event" => e).absolute(0);
        }
        metrics::counter!(AUDIT_DROPPED).absolute(0);
        for store in stores {
            metrics::counter!(SWEEPER_REMOVED, "store" => *store).absolute(0);
            // A first error is an increase a scrape sees only if the series was there before.
            for op in StoreOp::ALL {
                for kind in ERROR_KINDS {
                    metrics::counter!(STORE_ERRORS, "store" => *store, "op" => op.name(), "kind" => kind)
                        .absolute(0);
                }
            }
        }
    }
    #[cfg(not(feature = "metrics"))]
    let _ = stores;
}
