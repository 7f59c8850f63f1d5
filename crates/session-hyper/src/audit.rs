//! The audit sink: lifecycle events handed to a writer of the app's (a file of JSON lines
//! comes with it) through a bounded queue, on a thread of its own. A slow or stuck sink never
//! slows a request: when the queue is full the event is dropped and counted
//! ([`Audit::dropped`], and `session_audit_dropped_total` with the `metrics` feature).
//!
//! ```no_run
//! use session_hyper::audit::{Audit, JsonLines};
//! use session_hyper::{Config, Hooks};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let audit = Audit::start(JsonLines::append("audit.log")?, 4096)?;
//! let config = Config::builder()
//!     .key(b"a secret of at least thirty-two bytes!".to_vec())
//!     .hooks(Hooks::new().on_event(audit.listener()))
//!     .build()?;
//! # let _ = config; Ok(()) }
//! ```

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};

use session_core::SessionEvent;

/// Where audited events go. Runs on the audit thread, one event at a time: it may block
/// (a file, a socket) without slowing any request.
pub trait AuditSink: Send + 'static {
    /// Writes one event.
    fn write(&mut self, event: &SessionEvent) -> io::Result<()>;

    /// Called when the queue is empty: push what is buffered out.
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A file of JSON lines, one event per line (the [`SessionEvent`] serialization:
/// `{"at_ms":…,"event":"created","handle":"…","owner":"…"}`), appended to.
#[derive(Debug)]
pub struct JsonLines {
    out: BufWriter<File>,
}

impl JsonLines {
    /// Opens (or creates) `path` for appending.
    pub fn append(path: impl AsRef<Path>) -> io::Result<JsonLines> {
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        Ok(JsonLines {
            out: BufWriter::new(file),
        })
    }
}

impl AuditSink for JsonLines {
    fn write(&mut self, event: &SessionEvent) -> io::Result<()> {
        serde_json::to_writer(&mut self.out, event)?;
        self.out.write_all(b"\n")
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

/// The smallest queue [`Audit::start`] accepts.
pub const MIN_AUDIT_QUEUE: usize = 1;

/// Why the audit sink could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuditError {
    /// A queue of no events would drop every one.
    #[error("the audit queue must hold at least {MIN_AUDIT_QUEUE} event")]
    EmptyQueue,
    /// The audit thread could not be spawned.
    #[error("could not start the audit thread: {0}")]
    Thread(#[source] io::Error),
}

/// A running audit sink: its queue and its drop counter. Cheap to clone; the thread ends
/// (after writing what is queued and flushing) once every clone and every listener is gone.
#[derive(Clone)]
pub struct Audit {
    queue: SyncSender<SessionEvent>,
    dropped: Arc<AtomicU64>,
}

impl std::fmt::Debug for Audit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Audit")
            .field("dropped", &self.dropped())
            .finish_non_exhaustive()
    }
}

impl Audit {
    /// Starts `sink` on a thread of its own (`session-audit`), behind a queue of `capacity`
    /// events.
    pub fn start(sink: impl AuditSink, capacity: usize) -> Result<Audit, AuditError> {
        if capacity < MIN_AUDIT_QUEUE {
            return Err(AuditError::EmptyQueue);
        }
        let (queue, events) = sync_channel(capacity);
        let dropped = Arc::new(AtomicU64::new(0));
        let lost = Arc::clone(&dropped);
        std::thread::Builder::new()
            .name("session-audit".to_owned())
            .spawn(move || run(sink, events, &lost))
            .map_err(AuditError::Thread)?;
        Ok(Audit { queue, dropped })
    }

    /// Queues `event` for the sink; never waits. A full queue drops it and counts the drop.
    pub fn record(&self, event: &SessionEvent) {
        match self.queue.try_send(event.clone()) {
            Ok(()) => {}
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => dropped(&self.dropped),
        }
    }

    /// The subscriber to pass to [`Hooks::on_event`](crate::Hooks::on_event).
    pub fn listener(&self) -> impl Fn(&SessionEvent) + Send + Sync + 'static {
        let audit = self.clone();
        move |event| audit.record(event)
    }

    /// How many events were lost so far: dropped by a full queue (or a sink whose thread
    /// died), or handed to a sink that failed to write them.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

/// Counts one lost event.
fn dropped(count: &AtomicU64) {
    count.fetch_add(1, Ordering::Relaxed);
    session_core::telemetry::audit_dropped();
}

/// The audit thread: writes each event, flushes whenever the queue runs empty, counts every
/// event a failing sink lost, and logs a failing sink once per run of failures.
fn run(mut sink: impl AuditSink, events: Receiver<SessionEvent>, lost: &AtomicU64) {
    let mut failing = false;
    while let Ok(event) = events.recv() {
        write(&mut sink, &event, &mut failing, lost);
        while let Ok(event) = events.try_recv() {
            write(&mut sink, &event, &mut failing, lost);
        }
        report(sink.flush(), &mut failing);
    }
    report(sink.flush(), &mut failing);
}

/// Writes one event; one the sink fails to write is counted lost.
fn write(sink: &mut impl AuditSink, event: &SessionEvent, failing: &mut bool, lost: &AtomicU64) {
    let got = sink.write(event);
    if got.is_err() {
        dropped(lost);
    }
    report(got, failing);
}

/// Logs the first failure of a run of them.
fn report(got: io::Result<()>, failing: &mut bool) {
    match got {
        Ok(()) => *failing = false,
        Err(e) => {
            if !*failing {
                tracing::warn!(target: "session", error = %e, "the audit sink failed; events are lost until it recovers");
            }
            *failing = true;
        }
    }
}
