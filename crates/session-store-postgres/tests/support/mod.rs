//! PostgreSQL test support: a small record, a session layer on a store, the store's own
//! tracing events, and what the tests take from the test kit (the shared server, stores on
//! fresh tables, plain clients, a cluster of a test's own, the conformance harness, the app and
//! the clients).
#![allow(dead_code, unused_imports, clippy::unwrap_used, clippy::expect_used)]

use session_hyper::SessionLayer;
use session_store_postgres::PostgresStore;

pub use session_testkit::app::serve;
pub use session_testkit::client::browser;
pub use session_testkit::conformance::Real;
pub use session_testkit::postgres::{Cluster, client, store, unique_table, url};

/// GET `url`: status and body.
pub async fn get(c: &reqwest::Client, url: String) -> (u16, String) {
    let r = session_testkit::client::get(c, &url).await;
    (r.status, r.body)
}

/// A one-key browser-session record.
pub fn small_record() -> session_core::store::Record {
    session_core::store::Record {
        data: serde_json::json!({"n": 1}).as_object().cloned().unwrap(),
        meta: session_core::store::Meta {
            expire: None,
            max_age: session_core::MaxAge::Session,
            created: None,
        },
    }
}

pub const KEY: &[u8] = b"postgres e2e key, 32 bytes or more";

/// A session layer on `store`.
pub fn layer(store: PostgresStore, rolling: bool) -> SessionLayer {
    let config = session_core::Config::builder()
        .key(KEY.to_vec())
        .rolling(rolling)
        .build()
        .unwrap();
    SessionLayer::store(config, store).build().unwrap()
}

/// The store's tracing events (target `session::postgres`) by message, each with the instant
/// it was emitted, taken inside the emitting call: what a test reads of the pool's own view
/// (when it began a connect, when it held connects off).
#[derive(Clone, Default)]
pub struct Events(std::sync::Arc<std::sync::Mutex<Vec<(std::time::Instant, String)>>>);

impl Events {
    /// Runs `f` on a multi-threaded runtime (2 workers) whose threads, and this one, report
    /// to these events.
    pub fn block_on<F: std::future::Future>(&self, f: F) -> F::Output {
        let dispatch = tracing::Dispatch::new(self.clone());
        let runtime = {
            let dispatch = dispatch.clone();
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .on_thread_start(move || {
                    // The thread's default for as long as it runs (the runtime's threads only,
                    // so the other tests of this binary, on threads of their own, don't
                    // report here).
                    std::mem::forget(tracing::dispatcher::set_default(&dispatch));
                })
                .build()
                .unwrap()
        };
        tracing::dispatcher::with_default(&dispatch, || runtime.block_on(f))
    }

    /// The instants of the events with this message, in order.
    pub fn times(&self, message: &str) -> Vec<std::time::Instant> {
        let mut t: Vec<_> = (self.0.lock().unwrap().iter())
            .filter(|(_, m)| m == message)
            .map(|(t, _)| *t)
            .collect();
        t.sort();
        t
    }
}

struct Message(Option<String>);

impl tracing::field::Visit for Message {
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        if field.name() == "message" {
            self.0 = Some(value.to_owned());
        }
    }
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.0 = Some(format!("{value:?}"));
        }
    }
}

impl tracing::Subscriber for Events {
    fn enabled(&self, metadata: &tracing::Metadata<'_>) -> bool {
        metadata.target() == "session::postgres"
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        let at = std::time::Instant::now();
        let mut message = Message(None);
        event.record(&mut message);
        if let Some(m) = message.0 {
            self.0.lock().unwrap().push((at, m));
        }
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}
