//! The examples' log: tracing events go to stderr through a queue and a thread of their own,
//! so a request never waits for stderr. When nobody reads stderr (a supervisor that buffers,
//! a full journal) the queue fills and further lines are dropped and counted; the writer
//! thread reports the count as soon as it can write again.

use std::io::{self, Write};
use std::sync::{Arc, OnceLock};

use tracing_appender::non_blocking::{ErrorCounter, NonBlocking, NonBlockingBuilder, WorkerGuard};

/// How many lines the queue holds while stderr is not being read; past that, lines are dropped.
pub const LOG_QUEUE_LINES: usize = 1024;

/// The log writer's thread: keep it for the life of the process (bind it first in `main`).
/// Dropping it writes out what is queued, waiting at most about a second for a stderr that
/// does not drain, so a clean exit never hangs on the log.
#[must_use = "dropping the guard stops the log writer"]
pub struct LogGuard {
    _worker: WorkerGuard,
}

/// Never let a log write block a request: prints `tracing` events to stderr through a
/// non-blocking writer that drops and counts lines when its queue
/// ([`LOG_QUEUE_LINES`]) is full, and says `N log lines dropped` once it can write again.
/// Events are filtered by `RUST_LOG` (default: warnings, and the session middleware's own
/// events from `info` up, e.g. `event="missed"`). Nothing the library logs carries an id, a
/// cookie value, a key or session data.
///
/// Keep the returned guard for the life of the process. A second call (tests) keeps the first
/// subscriber.
pub fn init_tracing() -> LogGuard {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,session=info"));
    let (writer, guard) = lossy_writer(io::stderr(), LOG_QUEUE_LINES);
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .try_init();
    guard
}

/// A writer for a `tracing` subscriber that hands each line to a thread writing to `out` and
/// never waits: with `queue_lines` lines waiting already, a line is dropped and counted. Before
/// the next line it writes, or when it has caught up with the queue, that thread writes
/// `N log lines dropped` (the lines dropped since its last report) to `out`.
pub fn lossy_writer<W: Write + Send + 'static>(
    out: W,
    queue_lines: usize,
) -> (NonBlocking, LogGuard) {
    let counter = Arc::new(OnceLock::new());
    let (writer, worker) = NonBlockingBuilder::default()
        .lossy(true)
        .buffered_lines_limit(queue_lines)
        .thread_name("log-writer")
        .finish(ReportsDrops {
            out,
            counter: Arc::clone(&counter),
            reported: 0,
        });
    // Set before anyone holds the writer, so before any line can be dropped.
    let _ = counter.set(writer.error_counter());
    (writer, LogGuard { _worker: worker })
}

/// The writer thread's end: `out`, with the drop count reported ahead of the line that follows.
struct ReportsDrops<W> {
    out: W,
    counter: Arc<OnceLock<ErrorCounter>>,
    /// The count as of the last report.
    reported: usize,
}

impl<W: Write> ReportsDrops<W> {
    fn report(&mut self) -> io::Result<()> {
        let now = self.counter.get().map_or(0, ErrorCounter::dropped_lines);
        if now > self.reported {
            // One write, so the report is one line even among other writers of stderr.
            let line = format!("{} log lines dropped\n", now - self.reported);
            self.out.write_all(line.as_bytes())?;
            self.reported = now;
        }
        Ok(())
    }
}

impl<W: Write> Write for ReportsDrops<W> {
    /// One queued line, written whole (a report never lands inside a line).
    fn write(&mut self, line: &[u8]) -> io::Result<usize> {
        self.report()?;
        self.out.write_all(line)?;
        Ok(line.len())
    }

    /// Called by the writer thread each time it has emptied the queue.
    fn flush(&mut self) -> io::Result<()> {
        self.report()?;
        self.out.flush()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::sync::mpsc::{Receiver, Sender, channel};
    use std::thread::ThreadId;
    use std::time::Duration;

    use super::*;

    /// Only a hang comes near this.
    const BOUND: Duration = Duration::from_secs(60);

    /// A stderr the test controls: tells each line as it starts writing it, and holds a line
    /// that starts with `hold` until the test gives a permit.
    struct Gate {
        seen: Sender<(ThreadId, String)>,
        permits: Receiver<()>,
    }

    impl Write for Gate {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            let line = String::from_utf8_lossy(buf).trim_end().to_owned();
            let hold = line.starts_with("hold");
            let _ = self.seen.send((std::thread::current().id(), line));
            if hold {
                let _ = self.permits.recv();
            }
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn gate(
        queue: usize,
    ) -> (
        NonBlocking,
        LogGuard,
        Receiver<(ThreadId, String)>,
        Sender<()>,
    ) {
        let (seen, lines) = channel();
        let (permit, permits) = channel();
        let (w, guard) = lossy_writer(Gate { seen, permits }, queue);
        (w, guard, lines, permit)
    }

    fn next(lines: &Receiver<(ThreadId, String)>) -> (ThreadId, String) {
        lines
            .recv_timeout(BOUND)
            .expect("the writer thread wrote nothing")
    }

    /// While the writer is stuck, a full queue drops lines and only counts them; once it can
    /// write again, the writer thread itself reports the count ahead of the next line, and the
    /// next report counts only the lines dropped since.
    #[test]
    fn dropped_lines_are_reported_by_the_writer_once_it_can_write() {
        let (mut w, _guard, lines, permit) = gate(4);
        let mut threads = Vec::new();
        for (round, lost) in [(1, 3), (2, 2)] {
            w.write_all(format!("hold {round}\n").as_bytes()).unwrap();
            // The writer has taken the line off the queue and is stuck on it.
            let (thread, first) = next(&lines);
            assert_eq!(first, format!("hold {round}"));
            threads.push(thread);
            for i in 0..4 + lost {
                // Never waits: the queue takes 4, the rest are dropped.
                w.write_all(format!("line {round}.{i}\n").as_bytes())
                    .unwrap();
            }
            assert!(lines.try_recv().is_err(), "nothing written while stuck");
            permit.send(()).unwrap();
            let (mut got, last) = (Vec::new(), format!("line {round}.3"));
            while got.last() != Some(&last) {
                let (thread, line) = next(&lines);
                threads.push(thread);
                got.push(line);
            }
            let mut want = vec![format!("{lost} log lines dropped")];
            want.extend((0..4).map(|i| format!("line {round}.{i}")));
            assert_eq!(got, want);
        }
        assert_eq!(w.error_counter().dropped_lines(), 5);
        let writer = threads[0];
        assert_ne!(writer, std::thread::current().id());
        assert!(threads.iter().all(|t| *t == writer), "{threads:?}");
    }

    /// Dropping the guard (a clean exit) returns while the writer is stuck for good, with the
    /// queue full or not.
    #[test]
    fn a_clean_exit_does_not_wait_for_a_stuck_writer() {
        for queued in [0, 4] {
            let (mut w, guard, lines, permit) = gate(4);
            w.write_all(b"hold forever\n").unwrap();
            next(&lines);
            for i in 0..queued {
                w.write_all(format!("line {i}\n").as_bytes()).unwrap();
            }
            let (done, dropped) = channel();
            std::thread::spawn(move || {
                drop(guard);
                let _ = done.send(());
            });
            assert!(
                dropped.recv_timeout(BOUND).is_ok(),
                "the guard's drop hung ({queued} lines queued)"
            );
            // Lets the writer thread end.
            drop(permit);
        }
    }
}
