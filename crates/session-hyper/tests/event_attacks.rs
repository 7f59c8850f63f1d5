//! Attacks on lifecycle events and the audit sink over real TCP through the layer (memory
//! store): 200 concurrent reads and writes on one session (each write reported once, under
//! the session's handle); a login racing requests on the old id (one `regenerated`, from the
//! old handle); planted and garbage cookies (no event names a cookie value or the key, and
//! unsigned or badly signed cookies raise nothing); a save of 1,000 keys (the audit line names
//! them, never their values); a hanging store (every request answers 503 in time, one
//! `store_failed` timeout each).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hyper::Method;
use serde_json::{Map, Value};
use session_core::store::Store;
use session_core::{Config, ConfigBuilder, EventKind, Handle, SessionEvent, StoreOp};
use session_hyper::SessionLayer;
use session_hyper::audit::{Audit, JsonLines};
use session_store_memory::MemoryStore;
use session_testkit::capture::KEY1;
use session_testkit::client::{Jar, NAME, Reply, SIG};
use session_testkit::events::EventRecorder;
use session_testkit::served::App;
use session_testkit::stores::{HANG, OK, Probe};

/// An app behind a layer whose config records every event.
struct Site {
    app: App,
    rec: EventRecorder,
    cfg: Config,
}

impl Site {
    /// The app on `store`, hooks from `hooks` (recording into the site's recorder), the layer's
    /// store time limit `timeout` if any.
    async fn on(
        store: impl Store,
        f: impl FnOnce(ConfigBuilder, &EventRecorder) -> ConfigBuilder,
        timeout: Option<Duration>,
    ) -> Site {
        let rec = EventRecorder::new();
        let cfg = f(Config::builder().key(KEY1.to_vec()), &rec)
            .build()
            .unwrap();
        let mut l = SessionLayer::store(cfg.clone(), store);
        if let Some(t) = timeout {
            l = l.store_timeout(t);
        }
        Site {
            app: App::serve(l.build().unwrap()).await,
            rec,
            cfg,
        }
    }

    /// The app on a fresh memory store, recording every event.
    async fn memory() -> Site {
        Site::on(MemoryStore::new(), |b, r| b.hooks(r.hooks()), None).await
    }

    /// `GET path` with the jar's cookies; the jar takes what the reply sets.
    async fn send(&self, path: &str, jar: &mut Jar) -> Reply {
        let r = self.app.req(Method::GET, path, &jar.header(), None).await;
        jar.apply(&r);
        r
    }

    /// The handle of the session the jar's cookie names.
    fn handle(&self, jar: &Jar) -> String {
        let id = self.cfg.ids().parse(jar.id().unwrap()).unwrap();
        Handle::of(&self.cfg.key_derivation().derive(&id))
            .as_str()
            .to_owned()
    }

    /// A browser with a session holding `views: 1`.
    async fn visitor(&self) -> Jar {
        let mut jar = Jar::default();
        let r = self.send("/", &mut jar).await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert!(jar.id().is_some());
        jar
    }
}

/// The handle `e` carries, if any.
fn handle(e: &SessionEvent) -> Option<String> {
    e.handle.as_ref().map(|h| h.as_str().to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_on_one_session_report_each_write_once() {
    const REQUESTS: usize = 200;
    let site = Arc::new(Site::memory().await);
    let mut jar = site.visitor().await;
    let r = site.send("/login?owner=ada", &mut jar).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let h = site.handle(&jar);
    site.rec.take();
    let mut tasks = Vec::new();
    for i in 0..REQUESTS {
        let (app, cookie) = (site.app.clone(), jar.header());
        tasks.push(tokio::spawn(async move {
            let path = if i % 2 == 0 {
                format!("/set?k{i}=v{i}")
            } else {
                "/read".to_owned()
            };
            let r = app.req(Method::GET, &path, &cookie, None).await;
            (i % 2 == 0, r)
        }));
    }
    let (mut failures, mut wrote) = (0, 0);
    for t in tasks {
        let (write, r) = t.await.unwrap();
        failures += usize::from(r.status != 200);
        wrote += usize::from(write && r.status == 200 && r.body == "set");
    }
    assert_eq!(failures, 0, "requests that failed");
    assert_eq!(wrote, REQUESTS / 2);
    let events = site.rec.take();
    let mut wrong = Vec::new();
    let mut saved = 0;
    for e in &events {
        match (&e.kind, handle(e)) {
            (_, None) => wrong.push(format!("no handle: {e:?}")),
            (EventKind::Saved { keys }, Some(eh)) => {
                saved += 1;
                if eh != h || keys.len() != 1 {
                    wrong.push(format!("{e:?}"));
                }
            }
            _ => wrong.push(format!("{e:?}")),
        }
    }
    assert_eq!(wrong, Vec::<String>::new(), "unexpected events");
    assert_eq!(saved, wrote, "one saved event per write");
    // Every write is in the session.
    let r = site.send("/read", &mut jar).await;
    let data: Map<String, Value> = serde_json::from_str(&r.body).unwrap();
    let missing = (0..REQUESTS)
        .step_by(2)
        .filter(|i| data.get(&format!("k{i}")).is_none())
        .count();
    assert_eq!(missing, 0, "writes lost");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_racing_requests_on_the_old_id_reports_one_regenerated() {
    const ROUNDS: usize = 50;
    const RACERS: usize = 50;
    let site = Arc::new(Site::memory().await);
    let mut failures = Vec::new();
    for round in 0..ROUNDS {
        let old = site.visitor().await;
        let old_h = site.handle(&old);
        site.rec.take();
        let login = {
            let (site, mut jar) = (Arc::clone(&site), old.clone());
            tokio::spawn(async move {
                let r = site.send(&format!("/login?owner=u{round}"), &mut jar).await;
                (r, jar)
            })
        };
        let racers: Vec<_> = (0..RACERS)
            .map(|i| {
                let path = if i % 2 == 0 {
                    format!("/set?r{i}=x")
                } else {
                    "/read".to_owned()
                };
                let (app, cookie) = (site.app.clone(), old.header());
                tokio::spawn(async move { app.req(Method::GET, &path, &cookie, None).await })
            })
            .collect();
        let (r, new) = login.await.unwrap();
        if r.status != 200 {
            failures.push(format!("round {round}: login {} {}", r.status, r.body));
            continue;
        }
        for t in racers {
            let r = t.await.unwrap();
            if r.status >= 500 {
                failures.push(format!("round {round}: racer {} {}", r.status, r.body));
            }
        }
        let new_h = site.handle(&new);
        let events = site.rec.take();
        let regenerated: Vec<&SessionEvent> = events
            .iter()
            .filter(|e| matches!(e.kind, EventKind::Regenerated { .. }))
            .collect();
        if regenerated.len() != 1 {
            failures.push(format!("round {round}: {} regenerated", regenerated.len()));
        }
        for e in regenerated {
            let from = match &e.kind {
                EventKind::Regenerated { from } => from.as_ref().map(|f| f.as_str().to_owned()),
                _ => None,
            };
            if from.as_deref() != Some(old_h.as_str()) || handle(e) != Some(new_h.clone()) {
                failures.push(format!("round {round}: {e:?}"));
            }
        }
        for e in &events {
            let h = handle(e);
            if h.as_deref() != Some(old_h.as_str()) && h.as_deref() != Some(new_h.as_str()) {
                failures.push(format!("round {round}: foreign handle {e:?}"));
            }
        }
    }
    assert_eq!(failures, Vec::<String>::new());
}

/// `n` values no handle, key or id could contain by chance.
fn garbage(kind: &str, n: usize) -> Vec<String> {
    (0..n)
        .map(|i| format!("planted-{kind}-{i:03}-zQ"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn planted_and_garbage_cookies_raise_no_event_naming_them() {
    let site = Site::memory().await;
    let real = site.visitor().await;
    let real_id = real.id().unwrap().to_owned();
    let real_sig = real
        .0
        .iter()
        .find(|(n, _)| n == SIG)
        .map(|(_, v)| v.clone())
        .unwrap();
    site.rec.take();
    let mut sent: Vec<String> = vec![real_id.clone(), real_sig.clone()];
    let mut failures = Vec::new();
    // Garbage: unsigned ids, ids with a signature of their own, a real id badly signed.
    let unsigned = garbage("unsigned", 100);
    let sigs = garbage("sig", 100);
    for (i, (v, s)) in unsigned.iter().zip(&sigs).enumerate() {
        for (path, cookie) in [
            ("/read", format!("{NAME}={v}")),
            ("/read", format!("{NAME}={v}; {SIG}={s}")),
            ("/", format!("{NAME}={real_id}; {SIG}={s}")),
            ("/read", format!("{NAME}={real_id}; {SIG}={real_sig}x{i}")),
        ] {
            let r = site.app.req(Method::GET, path, &cookie, None).await;
            if r.status >= 500 {
                failures.push(format!("{cookie}: {} {}", r.status, r.body));
            }
            // A write under a badly signed cookie starts a new session: created, and nothing
            // else; a read raises nothing.
            let events = site.rec.take();
            let names: Vec<&str> = events.iter().map(|e| e.kind.name()).collect();
            let want: &[&str] = if path == "/" { &["created"] } else { &[] };
            if names != want {
                failures.push(format!("{path} {cookie}: {names:?}"));
            }
            for e in &events {
                if handle(e) == Some(site.handle(&real)) {
                    failures.push(format!("{cookie}: names the real session {e:?}"));
                }
            }
            sent.push(cookie);
        }
    }
    sent.extend(unsigned);
    sent.extend(sigs);
    // Duplicated session cookies: the real pair and a planted one, in both orders.
    let planted = garbage("dup", 20);
    let mut all = Vec::new();
    for (i, p) in planted.iter().enumerate() {
        let cookie = if i % 2 == 0 {
            format!("{NAME}={real_id}; {SIG}={real_sig}; {NAME}={p}; {SIG}={p}")
        } else {
            format!("{NAME}={p}; {SIG}={p}; {NAME}={real_id}; {SIG}={real_sig}")
        };
        let r = site.app.req(Method::GET, "/", &cookie, None).await;
        if r.status >= 500 {
            failures.push(format!("{cookie}: {} {}", r.status, r.body));
        }
        all.extend(site.rec.take());
        sent.push(p.clone());
    }
    assert_eq!(failures, Vec::<String>::new());
    let text: String = all
        .iter()
        .map(|e| serde_json::to_string(e).unwrap())
        .collect::<Vec<_>>()
        .join("\n");
    let mut leaks: Vec<&String> = sent.iter().filter(|v| text.contains(v.as_str())).collect();
    leaks.dedup();
    assert_eq!(
        leaks,
        Vec::<&String>::new(),
        "cookie values in events: {text}"
    );
    let key = String::from_utf8_lossy(KEY1).into_owned();
    let hex: String = KEY1.iter().map(|b| format!("{b:02x}")).collect();
    assert!(!text.contains(&key) && !text.contains(&hex), "{text}");
    let handles: HashSet<Option<String>> = all.iter().map(handle).collect();
    assert!(!handles.contains(&None), "events without a handle: {text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_key_names_in_a_save_stay_bounded_in_the_audit_log() {
    const KEYS: usize = 1_000;
    const MARKER: &str = "VALUE-MARKER-e1c9";
    let path = std::env::temp_dir().join(format!(
        "event_attacks_audit_{}_{}.jsonl",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ));
    let _ = std::fs::remove_file(&path);
    let audit = Audit::start(JsonLines::append(&path).unwrap(), 4096).unwrap();
    let listener = audit.listener();
    // The record (about 90 KB) is over the memory store's default limit of 64 KiB.
    let store = MemoryStore::builder().max_record_bytes(1 << 20).build();
    let site = Site::on(
        store,
        move |b, r| b.hooks(r.hooks().on_event(listener)),
        None,
    )
    .await;
    let jar = site.visitor().await;
    let names: Vec<String> = (0..KEYS)
        .map(|i| format!("key-{i:04}-{}", "n".repeat(48)))
        .collect();
    let obj: Map<String, Value> = names
        .iter()
        .enumerate()
        .map(|(i, k)| (k.clone(), Value::String(format!("{MARKER}-{i}"))))
        .collect();
    site.rec.take();
    let r = site.app.put(&Value::Object(obj), &jar).await;
    assert_eq!(r.status, 204, "{}", r.body);
    let events = site.rec.take();
    assert_eq!(events.len(), 1, "{events:?}");
    let EventKind::Saved { keys } = &events[0].kind else {
        panic!("{:?}", events[0].kind)
    };
    let mut keys = keys.clone();
    keys.sort();
    assert_eq!(keys, names, "the saved event names every key");
    // The audit thread flushes once its queue runs empty; before that its buffer may have
    // written part of the line: wait for the whole line.
    let whole = |t: &str| {
        t.split_inclusive('\n')
            .any(|l| l.ends_with('\n') && l.contains("\"saved\""))
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    let text = loop {
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        if whole(&text) || Instant::now() > deadline {
            break text;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let _ = std::fs::remove_file(&path);
    assert_eq!(audit.dropped(), 0);
    let line = text
        .lines()
        .find(|l| l.contains("\"saved\""))
        .expect("a saved line");
    assert!(!text.contains(MARKER), "a value in the audit log");
    let bound = names.iter().map(|n| n.len() + 3).sum::<usize>() + 512;
    assert!(line.len() < bound, "{} bytes", line.len());
    let v: Value = serde_json::from_str(line).unwrap();
    let logged = v["keys"].as_array().map_or(0, Vec::len);
    assert_eq!(logged, KEYS, "{line:.300}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalling_store_never_blocks_on_events_and_reports_timeouts() {
    const REQUESTS: usize = 20;
    let timeout = Duration::from_millis(200);
    let probe = Probe::new(MemoryStore::new());
    let site = Arc::new(Site::on(probe.clone(), |b, r| b.hooks(r.hooks()), Some(timeout)).await);
    let mut jars = Vec::new();
    for _ in 0..REQUESTS {
        jars.push(site.visitor().await);
    }
    site.rec.take();
    probe.set_mode(HANG);
    let tasks: Vec<_> = jars
        .iter()
        .map(|jar| {
            let (app, cookie) = (site.app.clone(), jar.header());
            tokio::spawn(async move {
                let start = Instant::now();
                let r = app.req(Method::GET, "/read", &cookie, None).await;
                (r, start.elapsed())
            })
        })
        .collect();
    let mut failures = Vec::new();
    for t in tasks {
        let (r, took) = t.await.unwrap();
        if r.status != 503 || took > timeout + Duration::from_secs(1) {
            failures.push(format!("{} in {took:?}: {}", r.status, r.body));
        }
    }
    probe.set_mode(OK);
    assert_eq!(failures, Vec::<String>::new());
    let events = site.rec.take();
    let timeouts = events
        .iter()
        .filter(|e| {
            e.kind
                == EventKind::StoreFailed {
                    op: StoreOp::Load,
                    error: "timeout",
                }
                && e.handle.is_none()
        })
        .count();
    assert_eq!(timeouts, REQUESTS, "{events:?}");
    assert_eq!(events.len(), REQUESTS, "{events:?}");
}
