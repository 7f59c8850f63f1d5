//! Lifecycle events over real TCP through the layer: the exact events each row of the commit
//! table raises (`session_core::driver::commit`: rows 1, 1a, 2 to 10), in store mode and where
//! cookie mode differs; the events of a session's start (expired, missed, invalid, ended by a
//! newer login); revokes by the owner, an admin and a session limit; a failing store. Each
//! golden sequence is the list of (name, carries a handle, reason) of the events one request
//! raised, and the handles are the ones the owner's listing shows (or the hash of the store key
//! of the cookie's id). Then 100 browsers logging in and out, 20 at a time: exactly one created,
//! one regenerated and one destroyed each. Memory store throughout.
//!
//! Why this file is long: one golden test per row of the commit table and per event of a
//! session's start, each a few requests and its exact sequence; splitting them would scatter
//! the table.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use hyper::Method;
use serde_json::{Value, json};
use session_core::store::Store;
use session_core::{
    Config, ConfigBuilder, EventKind, Handle, ManualClock, MaxAge, OverLimit, SessionEvent,
    SessionLimit, StoreOp,
};
use session_hyper::{SessionLayer, SessionLayerBuilder};
use session_store_memory::MemoryStore;
use session_testkit::capture::{KEY1, KEY2};
use session_testkit::client::{Jar, Reply};
use session_testkit::events::{Brief, EventRecorder, briefs};
use session_testkit::served::App;
use session_testkit::stores::{FAIL, HANG, OK, Probe, T0};

/// An app behind a layer whose config records every event, and what a test needs around it.
struct Site {
    app: App,
    rec: EventRecorder,
    cfg: Config,
    layer: SessionLayer,
}

/// A config under [`KEY1`] recording into `rec`, then `f`'s options.
fn config(rec: &EventRecorder, f: impl FnOnce(ConfigBuilder) -> ConfigBuilder) -> Config {
    f(Config::builder().key(KEY1.to_vec()).hooks(rec.hooks()))
        .build()
        .unwrap()
}

impl Site {
    /// The app on a fresh memory store under `f`'s options.
    async fn store(f: impl FnOnce(ConfigBuilder) -> ConfigBuilder) -> Site {
        Site::on(MemoryStore::new(), f, |l| l).await
    }

    /// The app on `store` under `f`'s options, its layer built with `l`'s.
    async fn on(
        store: impl Store,
        f: impl FnOnce(ConfigBuilder) -> ConfigBuilder,
        l: impl FnOnce(SessionLayerBuilder) -> SessionLayerBuilder,
    ) -> Site {
        let rec = EventRecorder::new();
        let cfg = config(&rec, f);
        let layer = l(SessionLayer::store(cfg.clone(), store)).build().unwrap();
        Site {
            app: App::serve(layer.clone()).await,
            rec,
            cfg,
            layer,
        }
    }

    /// The app in cookie mode under `f`'s options.
    async fn cookie(f: impl FnOnce(ConfigBuilder) -> ConfigBuilder) -> Site {
        let rec = EventRecorder::new();
        let cfg = config(&rec, f);
        let layer = SessionLayer::cookie(cfg.clone()).build().unwrap();
        Site {
            app: App::serve(layer.clone()).await,
            rec,
            cfg,
            layer,
        }
    }

    /// `method path` with the jar's cookies; the jar takes what the reply sets.
    async fn send(&self, method: Method, path: &str, jar: &mut Jar) -> Reply {
        let r = self.app.req(method, path, &jar.header(), None).await;
        jar.apply(&r);
        r
    }

    /// `GET path` with the jar (which takes the reply's cookies); the reply must be `status`.
    async fn get(&self, path: &str, jar: &mut Jar, status: u16) -> Reply {
        let r = self.send(Method::GET, path, jar).await;
        assert_eq!(r.status, status, "{path}: {}", r.body);
        r
    }

    /// The events one `method path` raises (none of the requests before it count).
    async fn events_of(
        &self,
        method: Method,
        path: &str,
        jar: &mut Jar,
    ) -> (Reply, Vec<SessionEvent>) {
        self.rec.take();
        let r = self.send(method, path, jar).await;
        (r, self.rec.take())
    }

    /// The events one `GET path` raises.
    async fn events(&self, path: &str, jar: &mut Jar) -> Vec<SessionEvent> {
        let (r, events) = self.events_of(Method::GET, path, jar).await;
        assert!(r.status < 500, "{path}: {} {}", r.status, r.body);
        events
    }

    /// The handle of the session the jar's cookie names: the hash of its id's store key.
    fn handle(&self, jar: &Jar) -> String {
        let id = self.cfg.ids().parse(jar.id().unwrap()).unwrap();
        let key = self.cfg.key_derivation().derive(&id);
        Handle::of(&key).as_str().to_owned()
    }

    /// The handles `owner`'s listing shows.
    async fn listed(&self, owner: &str) -> Vec<String> {
        let r = self
            .app
            .get(&format!("/owners/{owner}/sessions"), &Jar::default())
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
        let list: Vec<Value> = serde_json::from_str(&r.body).unwrap();
        list.iter()
            .map(|e| e["handle"].as_str().unwrap().to_owned())
            .collect()
    }

    /// A browser with a session holding `views: 1`.
    async fn visitor(&self) -> Jar {
        let mut jar = Jar::default();
        self.get("/", &mut jar, 200).await;
        assert!(!jar.0.is_empty());
        jar
    }

    /// A browser logged in as `owner` (a login from a first visit).
    async fn logged_in(&self, owner: &str) -> Jar {
        let mut jar = self.visitor().await;
        self.get(&format!("/login?owner={owner}"), &mut jar, 200)
            .await;
        jar
    }
}

/// The handle `e` carries.
fn handle(e: &SessionEvent) -> String {
    e.handle.as_ref().unwrap().as_str().to_owned()
}

/// The keys of a `saved` event.
fn keys(e: &SessionEvent) -> Vec<String> {
    match &e.kind {
        EventKind::Saved { keys } => keys.clone(),
        other => panic!("not a save: {other:?}"),
    }
}

const CREATED: Brief = ("created", true, None);
const SAVED: Brief = ("saved", true, None);
const TOUCHED: Brief = ("touched", true, None);
const REGENERATED: Brief = ("regenerated", true, None);
const DESTROYED: Brief = ("destroyed", true, None);
const REKEYED: Brief = ("rekeyed", true, None);
const EXPIRED: Brief = ("expired", true, None);
const MISSED: Brief = ("missed", true, None);
const INVALID: Brief = ("invalid", true, None);

// Row 1: not accessed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn row_1_not_accessed_raises_nothing() {
    let site = Site::store(|b| b).await;
    let mut jar = site.visitor().await;
    assert_eq!(briefs(&site.events("/noop", &mut jar).await), []);
    assert_eq!(briefs(&site.events("/noop", &mut Jar::default()).await), []);
}

// Row 1a: a request carrying an id a regenerate has just superseded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn row_1a_stale_raises_nothing() {
    let site = Site::store(|b| b).await;
    let old = site.visitor().await;
    let mut new = old.clone();
    site.get("/login?user=ann", &mut new, 200).await;
    assert_ne!(new.id(), old.id());
    // The old cookie, on a route that writes: the session is stale, nothing is written.
    let (r, events) = site.events_of(Method::GET, "/", &mut old.clone()).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.set_cookies.is_empty(), "{:?}", r.set_cookies);
    assert_eq!(briefs(&events), []);
}

// Row 2: the old identity ends and the session is written again: a login (regenerate).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn row_2_login_raises_regenerated_from_the_old_handle() {
    let site = Site::store(|b| b).await;
    let mut jar = site.visitor().await;
    let before = site.handle(&jar);
    let events = site.events("/login?owner=ada", &mut jar).await;
    assert_eq!(briefs(&events), [REGENERATED]);
    let after = site.handle(&jar);
    assert_ne!(before, after);
    assert_eq!(handle(&events[0]), after);
    assert_eq!(events[0].owner.as_deref(), Some("ada"));
    match &events[0].kind {
        EventKind::Regenerated { from } => {
            assert_eq!(from.as_ref().map(Handle::as_str), Some(before.as_str()));
        }
        other => panic!("{other:?}"),
    }
    // The new handle is the one the owner's listing shows.
    assert_eq!(site.listed("ada").await, [after]);
}

// Row 2: a regenerate of a session without an identity that holds data: a first login.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn row_2_first_login_without_a_session_raises_created() {
    let site = Site::store(|b| b).await;
    let mut jar = Jar::default();
    let events = site.events("/login?owner=ada", &mut jar).await;
    assert_eq!(briefs(&events), [CREATED]);
    assert_eq!(handle(&events[0]), site.handle(&jar));
    assert_eq!(site.listed("ada").await, [site.handle(&jar)]);
}

// Row 2: a logout, then new data in the same request: the old session ends, a new one starts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn row_2_destroy_then_write_raises_destroyed_then_created() {
    let site = Site::store(|b| b).await;
    let mut jar = site.visitor().await;
    let old = site.handle(&jar);
    let events = site.events("/logout-then-set", &mut jar).await;
    assert_eq!(briefs(&events), [DESTROYED, CREATED]);
    assert_eq!(handle(&events[0]), old);
    assert_eq!(handle(&events[1]), site.handle(&jar));
    assert_ne!(old, site.handle(&jar));
}

// Row 3: the old identity ends and nothing new is written: a logout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn row_3_logout_raises_destroyed() {
    let site = Site::store(|b| b).await;
    let mut jar = site.logged_in("ada").await;
    let h = site.handle(&jar);
    let events = site.events("/logout", &mut jar).await;
    assert_eq!(briefs(&events), [DESTROYED]);
    assert_eq!(handle(&events[0]), h);
    assert_eq!(events[0].owner.as_deref(), Some("ada"));
    assert!(jar.0.is_empty(), "the cookies are removed");
    // A logout without a session: nothing to end.
    assert_eq!(
        briefs(&site.events("/logout", &mut Jar::default()).await),
        []
    );
}

// Row 4: forced (`save()`, `set_max_age()`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn row_4_forced_raises_saved_or_created() {
    let site = Site::store(|b| b).await;
    let mut jar = site.visitor().await;
    let (r, events) = site
        .events_of(Method::POST, "/session/save", &mut jar)
        .await;
    assert_eq!(r.status, 204);
    assert_eq!(briefs(&events), [SAVED]);
    assert_eq!(keys(&events[0]), Vec::<String>::new(), "nothing changed");
    assert_eq!(handle(&events[0]), site.handle(&jar));
    let events = site.events("/extend?ms=60000", &mut jar).await;
    assert_eq!(briefs(&events), [SAVED]);
    // A new session saved: created.
    let mut fresh = Jar::default();
    let (_, events) = site
        .events_of(Method::POST, "/session/save", &mut fresh)
        .await;
    assert_eq!(briefs(&events), [CREATED]);
    assert_eq!(handle(&events[0]), site.handle(&fresh));
}

// Row 5: a new session that holds nothing; in guest mode its cookie is sent, still nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn row_5_new_and_empty_raises_nothing() {
    let site = Site::store(|b| b).await;
    assert_eq!(briefs(&site.events("/read", &mut Jar::default()).await), []);
    let guest = Site::store(|b| b.guest(true)).await;
    let mut jar = Jar::default();
    let (r, events) = guest.events_of(Method::GET, "/read", &mut jar).await;
    assert!(!r.set_cookies.is_empty(), "a guest cookie");
    assert_eq!(briefs(&events), []);
}

// Row 5, guest mode: a returning guest's id was issued without a record (a guest holds
// nothing until it writes): bringing it back is no missing record, and raises nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_returning_guest_raises_nothing() {
    let guest = Site::store(|b| b.guest(true)).await;
    let mut jar = Jar::default();
    assert_eq!(briefs(&guest.events("/read", &mut jar).await), []);
    assert!(jar.id().is_some(), "a guest cookie");
    for _ in 0..3 {
        assert_eq!(briefs(&guest.events("/read", &mut jar).await), []);
    }
    let events = guest.events("/", &mut jar).await;
    assert_eq!(briefs(&events), [CREATED]);
}

// Row 6: changed: a first write creates, a change of an existing session saves its keys.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn row_6_changed_raises_created_then_saved_with_the_keys() {
    let site = Site::store(|b| b).await;
    let mut jar = Jar::default();
    let events = site.events("/", &mut jar).await;
    assert_eq!(briefs(&events), [CREATED]);
    assert_eq!(handle(&events[0]), site.handle(&jar));
    let events = site.events("/", &mut jar).await;
    assert_eq!(briefs(&events), [SAVED]);
    assert_eq!(keys(&events[0]), ["views"]);
    assert_eq!(handle(&events[0]), site.handle(&jar));
    // Keys set and removed, by name only.
    site.app
        .put(&json!({ "a": "secret-a", "b": "secret-b" }), &jar)
        .await;
    site.rec.take();
    let r = site
        .app
        .put(&json!({ "a": "other", "b": null }), &jar)
        .await;
    assert_eq!(r.status, 204);
    let events = site.rec.take();
    assert_eq!(briefs(&events), [SAVED]);
    let mut k = keys(&events[0]);
    k.sort();
    assert_eq!(k, ["a", "b"]);
    let text = serde_json::to_string(&events[0]).unwrap();
    assert!(
        !text.contains("secret") && !text.contains("other"),
        "{text}"
    );
}

// Row 7: rolling: a read moves the expiry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn row_7_rolling_raises_touched() {
    let site = Site::store(|b| b.rolling(true)).await;
    let mut jar = site.visitor().await;
    let events = site.events("/read", &mut jar).await;
    assert_eq!(briefs(&events), [TOUCHED]);
    assert_eq!(handle(&events[0]), site.handle(&jar));
}

/// A site whose config runs on a manual clock (the store on the system's: its records outlive
/// whatever the manual clock says), under `f`'s options and a max-age of a minute.
async fn clocked(f: impl FnOnce(ConfigBuilder) -> ConfigBuilder) -> (Site, ManualClock) {
    let clock = ManualClock::new(T0);
    let shared = Arc::new(clock.clone());
    let site = Site::store(|b| f(b.clock(shared).max_age(MaxAge::Ms(60_000)))).await;
    (site, clock)
}

// Row 8: renew, once less than half the max-age is left.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn row_8_renew_raises_touched() {
    let (site, clock) = clocked(|b| b.renew(true)).await;
    let mut jar = site.visitor().await;
    assert_eq!(briefs(&site.events("/read", &mut jar).await), []);
    clock.advance(Duration::from_secs(40));
    let events = site.events("/read", &mut jar).await;
    assert_eq!(briefs(&events), [TOUCHED]);
    assert_eq!(handle(&events[0]), site.handle(&jar));
}

/// Two apps on one store: one under the key before rotation, one under the rotated list.
async fn rotated(store: &MemoryStore, f: impl Fn(ConfigBuilder) -> ConfigBuilder) -> (Site, Site) {
    let before = Site::on(store.clone(), |b| f(b.keys([KEY2.to_vec()])), |l| l).await;
    let after = Site::on(
        store.clone(),
        |b| f(b.keys([KEY1.to_vec(), KEY2.to_vec()])),
        |l| l,
    )
    .await;
    (before, after)
}

// Row 9: resign: a cookie signed with an older key is sent again under the newest.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn row_9_resign_raises_rekeyed() {
    let store = MemoryStore::new();
    let (before, after) = rotated(&store, |b| b).await;
    let mut jar = before.visitor().await;
    let h = before.handle(&jar);
    let (r, events) = after.events_of(Method::GET, "/read", &mut jar).await;
    assert!(!r.set_cookies.is_empty(), "re-signed");
    assert_eq!(briefs(&events), [REKEYED]);
    assert_eq!(handle(&events[0]), h);
    // Re-signed now: nothing more.
    assert_eq!(briefs(&after.events("/read", &mut jar).await), []);
    // A change under an older key: saved, then re-keyed.
    let mut old = before.visitor().await;
    let events = after.events("/", &mut old).await;
    assert_eq!(briefs(&events), [SAVED, REKEYED]);
}

// Row 10: unchanged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn row_10_unchanged_raises_nothing() {
    let site = Site::store(|b| b).await;
    let mut jar = site.visitor().await;
    let (r, events) = site.events_of(Method::GET, "/read", &mut jar).await;
    assert!(r.set_cookies.is_empty());
    assert_eq!(briefs(&events), []);
}

// A session brought past its expiry: expired (and its record goes: brought again, it is
// missed); a new session if the request writes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_session_raises_expired_then_created() {
    let (site, clock) = clocked(|b| b).await;
    let read = site.visitor().await;
    let written = site.visitor().await;
    clock.advance(Duration::from_secs(120));
    let events = site.events("/read", &mut read.clone()).await;
    assert_eq!(briefs(&events), [EXPIRED]);
    assert_eq!(handle(&events[0]), site.handle(&read));
    let events = site.events("/read", &mut read.clone()).await;
    assert_eq!(briefs(&events), [MISSED]);
    let mut jar = written.clone();
    let events = site.events("/", &mut jar).await;
    assert_eq!(briefs(&events), [EXPIRED, CREATED]);
    assert_eq!(handle(&events[0]), site.handle(&written));
    assert_eq!(handle(&events[1]), site.handle(&jar));
    assert_ne!(site.handle(&written), site.handle(&jar));
}

// A validly signed id with no record: missed; a new session if the request writes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_record_raises_missed_then_created() {
    let store = MemoryStore::new();
    let site = Site::on(store.clone(), |b| b, |l| l).await;
    let jar = site.visitor().await;
    let old = site.handle(&jar);
    let id = site.cfg.ids().parse(jar.id().unwrap()).unwrap();
    store
        .destroy(&site.cfg.key_derivation().derive(&id))
        .await
        .unwrap();
    let events = site.events("/read", &mut jar.clone()).await;
    assert_eq!(briefs(&events), [MISSED]);
    assert_eq!(handle(&events[0]), old);
    let mut written = jar.clone();
    let events = site.events("/", &mut written).await;
    assert_eq!(briefs(&events), [MISSED, CREATED]);
    assert_eq!(handle(&events[1]), site.handle(&written));
}

// A logout that brings a session already dead reports its end once, when the request starts:
// expired (or missed, for a revoked one), and no destroyed after it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_logout_of_a_dead_session_reports_its_end_once() {
    let (site, clock) = clocked(|b| b).await;
    let jar = site.visitor().await;
    clock.advance(Duration::from_secs(120));
    let events = site.events("/logout", &mut jar.clone()).await;
    assert_eq!(briefs(&events), [EXPIRED]);
    let site = Site::store(|b| b).await;
    let a = site.logged_in("ada").await;
    let owners = site.layer.owners().unwrap();
    assert!(owners.revoke("ada", &site.handle(&a)).await.unwrap());
    let events = site.events("/logout", &mut a.clone()).await;
    assert_eq!(briefs(&events), [MISSED]);
    // A live session's logout: destroyed.
    let b = site.logged_in("ada").await;
    let events = site.events("/logout", &mut b.clone()).await;
    assert_eq!(briefs(&events), [DESTROYED]);
}

// A session moving in from the store the layer migrates from: moved (not a login), from its
// old handle to its new one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_moving_in_from_the_old_store_raises_moved() {
    let old = MemoryStore::new();
    let before = Site::on(old.clone(), |b| b, |l| l).await;
    let jar = before.visitor().await;
    let from = before.handle(&jar);
    let site = Site::on(MemoryStore::new(), |b| b, |l| l.migrate_from(old)).await;
    let mut moved = jar.clone();
    let events = site.events("/", &mut moved).await;
    let names: Vec<&str> = events.iter().map(|e| e.kind.name()).collect();
    assert_eq!(names[0], "moved", "{names:?}");
    let EventKind::Moved { from: Some(was) } = &events[0].kind else {
        panic!("{:?}", events[0].kind)
    };
    assert_eq!(was.as_str(), from);
    assert_eq!(handle(&events[0]), site.handle(&moved));
    assert_ne!(site.handle(&moved), from);
    assert!(!names.contains(&"regenerated"), "{names:?}");
}

// The app's `valid` hook refuses a session: invalid.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_the_valid_hook_refuses_raises_invalid() {
    let rec = EventRecorder::new();
    let site = Site::store(|b| b.hooks(rec.hooks().valid(|d| !d.contains_key("revoked")))).await;
    let mut jar = site.visitor().await;
    let h = site.handle(&jar);
    site.get("/set?revoked=yes", &mut jar, 200).await;
    rec.take();
    let (r, _) = site.events_of(Method::GET, "/read", &mut jar.clone()).await;
    assert_eq!(r.body, "{}", "a new session");
    let events = rec.take();
    assert_eq!(briefs(&events), [INVALID]);
    assert_eq!(handle(&events[0]), h);
}

// Revoked by the owner, from one of their own sessions: one of them, all the others, all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revokes_by_the_owner_raise_revoked_by_user() {
    const BY_USER: Brief = ("revoked", true, Some("user"));
    let site = Site::store(|b| b).await;
    let mut a = site.logged_in("ada").await;
    let b = site.logged_in("ada").await;
    let c = site.logged_in("ada").await;
    let (ha, hb, hc) = (site.handle(&a), site.handle(&b), site.handle(&c));
    let mut listed = site.listed("ada").await;
    listed.sort();
    let mut expected = vec![ha.clone(), hb.clone(), hc.clone()];
    expected.sort();
    assert_eq!(listed, expected, "events and listing name sessions alike");
    // One, by the handle its listing shows.
    let (r, events) = site
        .events_of(
            Method::DELETE,
            &format!("/owners/ada/sessions/{hb}"),
            &mut a,
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.body);
    assert_eq!(briefs(&events), [BY_USER]);
    assert_eq!(handle(&events[0]), hb);
    assert_eq!(events[0].owner.as_deref(), Some("ada"));
    // Every other (log out everywhere else).
    let (r, events) = site.events_of(Method::GET, "/revoke-others", &mut a).await;
    assert_eq!(r.body, "1");
    assert_eq!(briefs(&events), [BY_USER]);
    assert_eq!(handle(&events[0]), hc);
    assert_eq!(site.listed("ada").await, [ha]);
}

// "Log out everywhere" from one of the owner's sessions: the others are revoked by the user,
// the request's own session is destroyed by its own request (a `revoked` is "another request
// ended it"), once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_out_everywhere_destroys_its_own_session_once() {
    let site = Site::store(|b| b).await;
    let mut a = site.logged_in("ada").await;
    let b = site.logged_in("ada").await;
    let (ha, hb) = (site.handle(&a), site.handle(&b));
    let (r, events) = site.events_of(Method::GET, "/revoke-all", &mut a).await;
    assert_eq!(r.body, "2");
    assert_eq!(
        briefs(&events),
        [("revoked", true, Some("user")), DESTROYED]
    );
    assert_eq!(handle(&events[0]), hb);
    assert_eq!(handle(&events[1]), ha);
    assert_eq!(site.listed("ada").await, Vec::<String>::new());
}

// Revoked by an admin job, through the layer's owners handle.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revokes_by_an_admin_raise_revoked_by_admin() {
    const BY_ADMIN: Brief = ("revoked", true, Some("admin"));
    let site = Site::store(|b| b).await;
    let a = site.logged_in("ada").await;
    let b = site.logged_in("ada").await;
    let (ha, hb) = (site.handle(&a), site.handle(&b));
    let owners = site.layer.owners().unwrap();
    site.rec.take();
    assert!(owners.revoke("ada", &ha).await.unwrap());
    let events = site.rec.take();
    assert_eq!(briefs(&events), [BY_ADMIN]);
    assert_eq!(handle(&events[0]), ha);
    assert_eq!(events[0].owner.as_deref(), Some("ada"));
    assert_eq!(owners.revoke_all("ada").await.unwrap(), 1);
    let events = site.rec.take();
    assert_eq!(briefs(&events), [BY_ADMIN]);
    assert_eq!(handle(&events[0]), hb);
    // A revoked session's record is gone: brought again, it is missed.
    let events = site.events("/read", &mut b.clone()).await;
    assert_eq!(briefs(&events), [MISSED]);
    assert_eq!(handle(&events[0]), hb);
}

// A login over the owner's session limit ends the oldest session: revoked by the limit; that
// session's next request is told it ended (a newer login).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_limit_raises_revoked_by_limit_then_ended() {
    let limit = SessionLimit::new(1, OverLimit::EndOldest).unwrap();
    let site = Site::on(
        MemoryStore::new(),
        |b| b,
        |l| l.max_sessions_per_owner(limit),
    )
    .await;
    let mut first = Jar::default();
    let events = site.events("/login?owner=ada", &mut first).await;
    assert_eq!(briefs(&events), [CREATED]);
    let h1 = site.handle(&first);
    assert_eq!(site.listed("ada").await, std::slice::from_ref(&h1));
    let mut second = site.visitor().await;
    let before = site.handle(&second);
    let events = site.events("/login?owner=ada", &mut second).await;
    let h2 = site.handle(&second);
    assert_eq!(
        briefs(&events),
        [("revoked", true, Some("limit")), REGENERATED]
    );
    assert_eq!(handle(&events[0]), h1);
    assert_eq!(handle(&events[1]), h2);
    assert_eq!(
        events[1].kind,
        EventKind::Regenerated {
            from: Handle::parse(&before)
        }
    );
    assert_eq!(site.listed("ada").await, [h2]);
    // The first browser comes back.
    let (r, events) = site.events_of(Method::GET, "/status", &mut first).await;
    assert_eq!(r.status, 200);
    let status: Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(status["ended"], "newer-login", "{status}");
    assert_eq!(briefs(&events), [("ended", true, Some("newer-login"))]);
    assert_eq!(handle(&events[0]), h1);
    assert_eq!(events[0].owner.as_deref(), Some("ada"));
}

// A store call that fails: store_failed, naming the call and the kind of failure, no handle.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_store_raises_store_failed() {
    let probe = Probe::new(MemoryStore::new());
    let site = Site::on(probe.clone(), |b| b, |l| l).await;
    let mut jar = site.visitor().await;
    probe.set_mode(FAIL);
    let (r, events) = site.events_of(Method::GET, "/read", &mut jar).await;
    probe.set_mode(OK);
    assert_eq!(r.status, 503, "{}", r.body);
    assert_eq!(briefs(&events), [("store_failed", false, None)]);
    assert_eq!(
        events[0].kind,
        EventKind::StoreFailed {
            op: StoreOp::Load,
            error: "unavailable"
        }
    );
    assert_eq!(events[0].owner, None);
    // The store is back: the session is there, nothing raised for a read.
    assert_eq!(briefs(&site.events("/read", &mut jar).await), []);
}

// A store call the layer gives up on (its store time limit) failed as much as one that
// errs: the request answers 503, and store_failed says which call timed out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_call_that_times_out_raises_store_failed() {
    let probe = Probe::new(MemoryStore::new());
    let site = Site::on(
        probe.clone(),
        |b| b,
        |l| l.store_timeout(Duration::from_millis(100)),
    )
    .await;
    let mut jar = site.visitor().await;
    probe.set_mode(HANG);
    let (r, events) = site.events_of(Method::GET, "/read", &mut jar).await;
    probe.set_mode(OK);
    assert_eq!(r.status, 503, "{}", r.body);
    assert_eq!(briefs(&events), [("store_failed", false, None)]);
    assert_eq!(
        events[0].kind,
        EventKind::StoreFailed {
            op: StoreOp::Load,
            error: "timeout"
        }
    );
}

// Cookie mode: the same rows, no handle (there is no id to name).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cookie_mode_raises_the_same_events_without_handles() {
    let site = Site::cookie(|b| b).await;
    let mut jar = Jar::default();
    assert_eq!(briefs(&site.events("/read", &mut jar).await), []);
    let events = site.events("/", &mut jar).await;
    assert_eq!(briefs(&events), [("created", false, None)]);
    let events = site.events("/", &mut jar).await;
    assert_eq!(briefs(&events), [("saved", false, None)]);
    assert_eq!(keys(&events[0]), ["views"]);
    assert_eq!(briefs(&site.events("/read", &mut jar).await), []);
    assert_eq!(briefs(&site.events("/noop", &mut jar).await), []);
    let (_, events) = site
        .events_of(Method::POST, "/session/save", &mut jar)
        .await;
    assert_eq!(briefs(&events), [("saved", false, None)]);
    // A login: regenerated, from no handle (the payload is the session: no id to move from).
    let events = site.events("/login?user=ann", &mut jar).await;
    assert_eq!(briefs(&events), [("regenerated", false, None)]);
    assert_eq!(events[0].kind, EventKind::Regenerated { from: None });
    let events = site.events("/logout", &mut jar).await;
    assert_eq!(briefs(&events), [("destroyed", false, None)]);
    assert!(jar.0.is_empty());
    let mut jar = Jar::default();
    site.get("/", &mut jar, 200).await;
    let events = site.events("/logout-then-set", &mut jar).await;
    assert_eq!(
        briefs(&events),
        [("destroyed", false, None), ("created", false, None)]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cookie_mode_rolling_resign_expired_invalid() {
    let rolling = Site::cookie(|b| b.rolling(true)).await;
    let mut jar = Jar::default();
    rolling.get("/", &mut jar, 200).await;
    let events = rolling.events("/read", &mut jar).await;
    assert_eq!(briefs(&events), [("touched", false, None)]);

    let before = Site::cookie(|b| b.keys([KEY2.to_vec()])).await;
    let after = Site::cookie(|b| b.keys([KEY1.to_vec(), KEY2.to_vec()])).await;
    let mut jar = Jar::default();
    before.get("/", &mut jar, 200).await;
    let events = after.events("/read", &mut jar).await;
    assert_eq!(briefs(&events), [("rekeyed", false, None)]);
    assert_eq!(briefs(&after.events("/read", &mut jar).await), []);

    let clock = ManualClock::new(T0);
    let shared = Arc::new(clock.clone());
    let site = Site::cookie(|b| b.clock(shared).max_age(MaxAge::Ms(60_000))).await;
    let mut jar = Jar::default();
    site.get("/", &mut jar, 200).await;
    clock.advance(Duration::from_secs(120));
    let events = site.events("/read", &mut jar.clone()).await;
    assert_eq!(briefs(&events), [("expired", false, None)]);
    let events = site.events("/", &mut jar.clone()).await;
    assert_eq!(
        briefs(&events),
        [("expired", false, None), ("created", false, None)]
    );

    let rec = EventRecorder::new();
    let site = Site::cookie(|b| b.hooks(rec.hooks().valid(|d| !d.contains_key("revoked")))).await;
    let mut jar = Jar::default();
    site.get("/set?revoked=yes", &mut jar, 200).await;
    rec.take();
    site.get("/read", &mut jar.clone(), 200).await;
    assert_eq!(briefs(&rec.take()), [("invalid", false, None)]);
}

/// 100 browsers, 20 at a time, each: a first visit, a login, a logout. Exactly one created,
/// one regenerated (from the visit's handle) and one destroyed (the login's handle) each, and
/// nothing else.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_logins_and_logouts() {
    const BROWSERS: usize = 100;
    let site = Arc::new(Site::store(|b| b).await);
    let gate = Arc::new(tokio::sync::Semaphore::new(20));
    let mut tasks = Vec::new();
    for i in 0..BROWSERS {
        let (site, gate) = (Arc::clone(&site), Arc::clone(&gate));
        tasks.push(tokio::spawn(async move {
            let _slot = gate.acquire().await.unwrap();
            let mut jar = Jar::default();
            let mut failures = 0;
            let r = site.send(Method::GET, "/", &mut jar).await;
            failures += usize::from(r.status != 200);
            let visit = site.handle(&jar);
            let r = site
                .send(Method::GET, &format!("/login?owner=user-{i}"), &mut jar)
                .await;
            failures += usize::from(r.status != 200);
            let login = site.handle(&jar);
            let r = site.send(Method::GET, "/logout", &mut jar).await;
            failures += usize::from(r.status != 200 || !jar.0.is_empty());
            (failures, visit, login)
        }));
    }
    let mut failures = 0;
    let mut expected: HashMap<String, (usize, usize, usize)> = HashMap::new();
    let mut from_of = HashMap::new();
    for t in tasks {
        let (f, visit, login) = t.await.unwrap();
        failures += f;
        expected.entry(visit.clone()).or_default().0 += 1;
        expected.entry(login.clone()).or_default().1 += 1;
        expected.entry(login.clone()).or_default().2 += 1;
        from_of.insert(login, visit);
    }
    assert_eq!(failures, 0, "requests that failed");
    let events = site.rec.take();
    let mut seen: HashMap<String, (usize, usize, usize)> = HashMap::new();
    let mut unexpected = Vec::new();
    let mut wrong_from = 0;
    for e in &events {
        let h = handle(e);
        match &e.kind {
            EventKind::Created => seen.entry(h).or_default().0 += 1,
            EventKind::Regenerated { from } => {
                let want = from_of.get(&h).map(String::as_str);
                wrong_from += usize::from(from.as_ref().map(Handle::as_str) != want);
                seen.entry(h).or_default().1 += 1;
            }
            EventKind::Destroyed => seen.entry(h).or_default().2 += 1,
            other => unexpected.push(format!("{other:?}")),
        }
    }
    let count = |name: &str| events.iter().filter(|e| e.kind.name() == name).count();
    assert_eq!(unexpected, Vec::<String>::new(), "unexpected events");
    assert_eq!(count("created"), BROWSERS);
    assert_eq!(count("regenerated"), BROWSERS);
    assert_eq!(count("destroyed"), BROWSERS);
    assert_eq!(wrong_from, 0, "regenerated events naming another session");
    assert_eq!(seen, expected, "each session's events");
}
