//! Log capture and the secrets check: every tracing event the library emits during a test is
//! captured as text ([`Captured`]), and none may contain the keys ([`KEY1`], [`KEY2`]) or the
//! secrets and session data the test saw ([`Secrets`]).
//!
//! [`with_capture`] captures one test on its own thread (a current-thread runtime);
//! [`attack`] runs an attack on a multi-threaded runtime with a time bound and a capture of
//! its own threads. It also records, on the same threads, every lifecycle event of the layers
//! whose configs carry [`recording_hooks`] (every config a [`Variant`](crate::backend::Variant)
//! builds does), and checks each event's JSON for the same secrets ([`attack_recorded`] answers
//! what it recorded).

use std::cell::RefCell;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use session_core::{Hooks, SessionEvent};

use crate::client::Reply;
use crate::events::EventRecorder;

/// The tests' signing key (the one the app's layers are built with unless a test says
/// otherwise).
pub const KEY1: &[u8] = b"test key one: 32 bytes or longer";
/// A second key, for rotation.
pub const KEY2: &[u8] = b"test key two: 32 bytes or longer";

/// Everything tracing emits into it, as text.
#[derive(Clone, Default)]
pub struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    /// What was captured so far.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }

    /// A subscriber that writes every event (TRACE and up) as text into this capture.
    pub fn subscriber(&self) -> impl tracing::Subscriber + Send + Sync + 'static {
        let writer = self.clone();
        tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .finish()
    }
}

/// Secrets and data a test saw: none may appear in anything the library logged.
#[derive(Clone, Default)]
pub struct Secrets(Arc<Mutex<Vec<String>>>);

impl Secrets {
    /// Remembers `s` (a value of 8 bytes or more: a shorter one could be in a log by chance).
    pub fn add(&self, s: impl Into<String>) {
        let s = s.into();
        if s.len() >= 8 {
            self.0.lock().unwrap().push(s);
        }
    }

    /// Remembers every cookie value a reply sets.
    pub fn note(&self, r: &Reply) {
        for (_, v) in r.cookies() {
            self.add(v);
        }
    }

    /// Every secret remembered so far.
    pub fn values(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }

    /// Panics if `text` (`what`: an event, a metric) holds a key or any of these secrets.
    pub fn check_in(&self, what: &str, text: &str) {
        for key in [KEY1, KEY2] {
            assert!(
                !text.contains(std::str::from_utf8(key).unwrap()),
                "a key was in {what}"
            );
        }
        for s in self.0.lock().unwrap().iter() {
            assert!(!text.contains(s.as_str()), "a secret was in {what}: {s}");
        }
    }

    /// Panics if `log` holds a key or any of these secrets.
    pub fn check(&self, log: &str) {
        for key in [KEY1, KEY2] {
            assert!(
                !log.contains(std::str::from_utf8(key).unwrap()),
                "a key was logged"
            );
        }
        for s in self.0.lock().unwrap().iter() {
            assert!(!log.contains(s.as_str()), "a secret was logged: {s}");
        }
    }
}

/// Runs `f` on a current-thread runtime with every tracing event (TRACE and up) of this thread
/// captured, then checks the capture holds none of the secrets the test saw: the keys, and
/// every value the test collected into its [`Secrets`]. Answers the log.
pub fn with_capture<F, Fut>(f: F) -> String
where
    F: FnOnce(Secrets) -> Fut,
    Fut: Future<Output = ()>,
{
    let captured = Captured::default();
    let _guard = tracing::subscriber::set_default(captured.subscriber());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let secrets = Secrets::default();
    rt.block_on(f(secrets.clone()));
    let log = captured.text();
    secrets.check(&log);
    log
}

/// Runs an attack on a multi-threaded runtime (two workers) within 480 s, with every tracing
/// event of its threads (the workers, the blocking pool and this one) captured for it alone,
/// then checks that capture for the secrets it saw. (One capture for the whole test binary
/// made each check search every other attack's log too: with the option matrix, most of the
/// suite's time.) The lifecycle events its layers emit (those built with [`recording_hooks`])
/// are recorded on the same threads and checked the same way ([`attack_recorded`]).
pub fn attack<F, Fut>(f: F)
where
    F: FnOnce(Secrets) -> Fut,
    Fut: Future<Output = ()>,
{
    attack_recorded(f);
}

/// What an attack saw and recorded ([`attack_recorded`]).
pub struct Recorded {
    /// The secrets it collected.
    pub secrets: Secrets,
    /// The lifecycle events of its layers that carry [`recording_hooks`], in order.
    pub events: EventRecorder,
}

thread_local! {
    /// The event recorder of the attack whose runtime this thread belongs to.
    static ATTACK_EVENTS: RefCell<Option<EventRecorder>> = const { RefCell::new(None) };
}

/// Hooks whose one subscriber records each event into the recorder of the attack running on
/// the emitting thread ([`attack`]); outside an attack they record nothing. Every config a
/// [`Variant`](crate::backend::Variant) builds starts from them: a test that sets hooks of its
/// own starts from these to keep its events checked.
pub fn recording_hooks() -> Hooks {
    Hooks::new().on_event(record_attack_event)
}

/// Records `event` into the recorder of the attack running on this thread, if any.
pub fn record_attack_event(event: &SessionEvent) {
    ATTACK_EVENTS.with(|r| {
        if let Some(rec) = r.borrow().as_ref() {
            rec.record(event);
        }
    });
}

/// Puts back the calling thread's attack recorder when dropped.
struct Restore(Option<EventRecorder>);

impl Drop for Restore {
    fn drop(&mut self) {
        let before = self.0.take();
        ATTACK_EVENTS.with(|r| *r.borrow_mut() = before);
    }
}

/// [`attack`], answering the secrets it collected and the events it recorded (after both
/// were checked: every event's JSON, owners aside, holds no key and no secret).
pub fn attack_recorded<F, Fut>(f: F) -> Recorded
where
    F: FnOnce(Secrets) -> Fut,
    Fut: Future<Output = ()>,
{
    let captured = Captured::default();
    let dispatch = tracing::Dispatch::new(captured.subscriber());
    let secrets = Secrets::default();
    let events = EventRecorder::new();
    let on_workers = dispatch.clone();
    let for_workers = events.clone();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .on_thread_start(move || {
            // For the thread's whole life: its events go to this attack's capture.
            std::mem::forget(tracing::dispatcher::set_default(&on_workers));
            let rec = for_workers.clone();
            ATTACK_EVENTS.with(|r| *r.borrow_mut() = Some(rec));
        })
        .build()
        .unwrap();
    {
        let _here = tracing::dispatcher::set_default(&dispatch);
        let _recording = Restore(ATTACK_EVENTS.with(|r| r.replace(Some(events.clone()))));
        rt.block_on(async {
            tokio::time::timeout(Duration::from_secs(480), f(secrets.clone()))
                .await
                .expect("attack took longer than its bound")
        });
        // The tasks still running (a background unfile, a discard) log here too.
        rt.shutdown_timeout(Duration::from_secs(5));
    }
    secrets.check(&captured.text());
    secrets.check_in("a lifecycle event", &events.json_without_owners());
    Recorded { secrets, events }
}
