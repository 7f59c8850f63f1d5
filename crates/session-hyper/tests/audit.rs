//! The audit sink (`session_hyper::audit`) over real TCP through the layer: a sink that never
//! returns slows no request (500 requests, 50 at a time, all answered at once while its queue
//! of 8 overflows), and every event is either dropped and counted or handed to the sink; the
//! JSON-lines sink writes one event per line, as `SessionEvent` serializes; a sink that fails
//! fails no request; a queue of no events is refused.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::time::{Duration, Instant};

use hyper::Method;
use serde_json::Value;
use session_hyper::audit::{Audit, AuditError, AuditSink, JsonLines};
use session_hyper::{Config, Hooks, SessionEvent, SessionLayer};
use session_store_memory::MemoryStore;
use session_testkit::capture::KEY1;
use session_testkit::client::Jar;
use session_testkit::events::EventRecorder;
use session_testkit::served::App;

/// A sink whose every write waits until the test lets it go (sends, or drops the sender).
struct Stuck {
    release: Receiver<()>,
    written: Arc<AtomicUsize>,
}

impl AuditSink for Stuck {
    fn write(&mut self, _: &SessionEvent) -> io::Result<()> {
        let _ = self.release.recv();
        self.written.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

/// A sink that fails every write and every flush, counting the writes.
struct Failing(Arc<AtomicUsize>);

impl AuditSink for Failing {
    fn write(&mut self, _: &SessionEvent) -> io::Result<()> {
        self.0.fetch_add(1, Ordering::SeqCst);
        Err(io::Error::other("disk full"))
    }
    fn flush(&mut self) -> io::Result<()> {
        Err(io::Error::other("disk full"))
    }
}

/// A counting subscriber: how many events the layer emitted.
fn counter() -> (
    Arc<AtomicUsize>,
    impl Fn(&SessionEvent) + Send + Sync + 'static,
) {
    let n = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&n);
    (n, move |_: &SessionEvent| {
        counted.fetch_add(1, Ordering::SeqCst);
    })
}

/// The test app on a memory store under `hooks`.
async fn app(hooks: Hooks) -> App {
    let config = Config::builder()
        .key(KEY1.to_vec())
        .hooks(hooks)
        .build()
        .unwrap();
    App::serve(
        SessionLayer::store(config, MemoryStore::new())
            .build()
            .unwrap(),
    )
    .await
}

/// Waits (up to 5 s) until `done` holds.
async fn eventually(what: &str, done: impl Fn() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < Duration::from_secs(5), "never: {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stuck_sink_slows_no_request_and_every_event_is_counted() {
    const BROWSERS: usize = 250;
    const QUEUE: usize = 8;
    let (release, held): (Sender<()>, _) = channel();
    let written = Arc::new(AtomicUsize::new(0));
    let sink = Stuck {
        release: held,
        written: Arc::clone(&written),
    };
    let audit = Audit::start(sink, QUEUE).unwrap();
    let (emitted, count) = counter();
    let app = app(Hooks::new().on_event(audit.listener()).on_event(count)).await;

    // 500 requests, 50 at a time: each browser's first visit creates its session, the
    // second saves it.
    let started = Instant::now();
    let gate = Arc::new(tokio::sync::Semaphore::new(50));
    let mut tasks = Vec::new();
    for _ in 0..BROWSERS {
        let (app, gate) = (app.clone(), Arc::clone(&gate));
        tasks.push(tokio::spawn(async move {
            let mut jar = Jar::default();
            let (mut failed, mut slowest) = (0, Duration::ZERO);
            for _ in 0..2 {
                let _slot = gate.acquire().await.unwrap();
                let t = Instant::now();
                let r = app.req(Method::GET, "/", &jar.header(), None).await;
                slowest = slowest.max(t.elapsed());
                failed += usize::from(r.status != 200);
                jar.apply(&r);
            }
            (failed, slowest)
        }));
    }
    let (mut failed, mut slowest) = (0, Duration::ZERO);
    for t in tasks {
        let (f, s) = t.await.unwrap();
        failed += f;
        slowest = slowest.max(s);
    }
    let took = started.elapsed();
    assert_eq!(failed, 0, "requests that failed");
    assert!(
        slowest < Duration::from_secs(2),
        "a request took {slowest:?}"
    );
    assert!(took < Duration::from_secs(10), "the requests took {took:?}");

    let emitted = emitted.load(Ordering::SeqCst);
    assert_eq!(
        emitted,
        2 * BROWSERS,
        "one created and one saved per browser"
    );
    let dropped = audit.dropped() as usize;
    assert!(dropped > 0, "a stuck sink's queue overflows");
    // What was not dropped is in the queue, or in the sink's one write that never returns.
    let kept = emitted - dropped;
    assert!(
        kept == QUEUE || kept == QUEUE + 1,
        "{emitted} emitted, {dropped} dropped"
    );
    assert_eq!(written.load(Ordering::SeqCst), 0, "the sink is stuck");

    // Let it go: every event not dropped reaches it, exactly.
    drop(release);
    eventually("the kept events written", || {
        written.load(Ordering::SeqCst) == kept
    })
    .await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(
        audit.dropped() as usize + written.load(Ordering::SeqCst),
        emitted
    );
}

/// A JSON-lines file of its own under the temporary directory.
fn temp_file(name: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("{}.jsonl", session_testkit::unique(name)))
}

/// The lines of `path` once it holds `n` (up to 5 s).
async fn lines(path: &std::path::Path, n: usize) -> Vec<String> {
    let read = || {
        std::fs::read_to_string(path)
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    eventually("the lines written", || read().len() >= n).await;
    read()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_lines_writes_one_event_per_line() {
    let path = temp_file("audit-store");
    let audit = Audit::start(JsonLines::append(&path).unwrap(), 64).unwrap();
    let rec = EventRecorder::new();
    let app = app(Hooks::new()
        .on_event(audit.listener())
        .on_event(rec.listener()))
    .await;
    let mut jar = Jar::default();
    let mut cookies = Vec::new();
    for path in ["/", "/", "/login?owner=ada", "/logout"] {
        let r = app.get(path, &jar).await;
        assert_eq!(r.status, 200, "{}", r.body);
        cookies.extend(r.cookies().into_iter().map(|(_, v)| v));
        jar.apply(&r);
    }
    let events = rec.events();
    let names: Vec<&str> = events.iter().map(|e| e.kind.name()).collect();
    assert_eq!(names, ["created", "saved", "regenerated", "destroyed"]);
    let lines = lines(&path, events.len()).await;
    assert_eq!(lines.len(), events.len(), "{lines:?}");
    for (line, event) in lines.iter().zip(&events) {
        assert_eq!(*line, serde_json::to_string(event).unwrap());
        let v: Value = serde_json::from_str(line).unwrap();
        assert_eq!(v["event"], event.kind.name(), "{line}");
        assert!(v["at_ms"].as_u64().unwrap() > 0, "{line}");
        assert_eq!(
            v["handle"].as_str(),
            event.handle.as_ref().map(|h| h.as_str()),
            "{line}"
        );
        assert!(
            v["handle"].is_string(),
            "store mode names the session: {line}"
        );
    }
    let text = lines.join("\n");
    for c in cookies.iter().filter(|c| !c.is_empty()) {
        assert!(
            !text.contains(c.as_str()),
            "a cookie value in the audit log"
        );
    }
    assert_eq!(audit.dropped(), 0);
    // Appended to, not truncated, by a second sink on the same file.
    let again = Audit::start(JsonLines::append(&path).unwrap(), 64).unwrap();
    again.record(&events[0]);
    let more = self::lines(&path, events.len() + 1).await;
    assert_eq!(more[..events.len()], lines[..]);
    let _ = std::fs::remove_file(&path);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_lines_in_cookie_mode_carry_no_handle() {
    let path = temp_file("audit-cookie");
    let audit = Audit::start(JsonLines::append(&path).unwrap(), 64).unwrap();
    let config = Config::builder()
        .key(KEY1.to_vec())
        .hooks(Hooks::new().on_event(audit.listener()))
        .build()
        .unwrap();
    let app = App::serve(SessionLayer::cookie(config).build().unwrap()).await;
    let mut jar = Jar::default();
    for path in ["/", "/", "/logout"] {
        let r = app.get(path, &jar).await;
        assert_eq!(r.status, 200, "{}", r.body);
        jar.apply(&r);
    }
    let lines = lines(&path, 3).await;
    let names: Vec<String> = lines
        .iter()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            assert!(v.get("handle").is_none(), "{l}");
            v["event"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(names, ["created", "saved", "destroyed"]);
    let _ = std::fs::remove_file(&path);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_sink_fails_no_request() {
    let attempts = Arc::new(AtomicUsize::new(0));
    let audit = Audit::start(Failing(Arc::clone(&attempts)), 64).unwrap();
    let (emitted, count) = counter();
    let app = app(Hooks::new().on_event(audit.listener()).on_event(count)).await;
    let mut failed = 0;
    for _ in 0..20 {
        let mut jar = Jar::default();
        for path in ["/", "/", "/logout"] {
            let r = app.get(path, &jar).await;
            failed += usize::from(r.status != 200);
            jar.apply(&r);
        }
    }
    assert_eq!(failed, 0, "requests that failed");
    let emitted = emitted.load(Ordering::SeqCst);
    assert_eq!(emitted, 60);
    // The sink goes on being called after its failures: every event reaches it, and every
    // event it failed to write counts as dropped (the audit log has that gap).
    eventually("every event handed to the failing sink", || {
        attempts.load(Ordering::SeqCst) == emitted
    })
    .await;
    eventually("every failed write counted", || {
        audit.dropped() == emitted as u64
    })
    .await;
}

#[test]
fn a_queue_of_no_events_is_refused() {
    let (_release, held) = channel();
    let sink = Stuck {
        release: held,
        written: Arc::default(),
    };
    assert!(matches!(Audit::start(sink, 0), Err(AuditError::EmptyQueue)));
    assert!(Audit::start(Failing(Arc::default()), 1).is_ok());
}
