//! A user's sessions end to end over real TCP: binding at login, listing, revoking one, all,
//! all but the current one; expiry and the index's self-cleaning; cost; and races of revokes
//! against saves and logins, hundreds of times. Memory store here; the Redis half needs
//! `--features redis-tests` and `REDIS_URL` (`cargo xtask ci` provides both).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use serde_json::Value;
use session_core::driver::CLOCK_SKEW_ALLOWANCE_MS;
use session_core::{Config, ManualClock, MaxAge};
use session_hyper::SessionLayer;
use session_store_memory::MemoryStore;
use session_testkit::app::{owner_url, serve};
use session_testkit::capture::KEY1;
use session_testkit::client::{Reply, browser, get, send};
use session_testkit::stores::{Probe, T0};

const NAME: &str = "koa.sess";

fn config(clock: Option<&ManualClock>, max_age: MaxAge, rolling: bool) -> Config {
    let mut b = Config::builder()
        .key(KEY1.to_vec())
        .max_age(max_age)
        .rolling(rolling);
    if let Some(c) = clock {
        b = b.clock(Arc::new(c.clone()));
    }
    b.build().unwrap()
}

/// A memory store and config on one manual clock, behind a counting wrapper.
fn clocked(max_age: MaxAge, rolling: bool) -> (SessionLayer, Probe, ManualClock) {
    let (cfg, probe, clock) =
        session_testkit::stores::clocked(|b| b.max_age(max_age).rolling(rolling));
    let layer = SessionLayer::store(cfg, probe.clone()).build().unwrap();
    (layer, probe, clock)
}

async fn login(url: &str, owner: &str, device: &str) -> (reqwest::Client, Reply) {
    let c = browser();
    let r = get(&c, &format!("{url}/login?owner={owner}&device={device}")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    (c, r)
}

async fn list(c: &reqwest::Client, url: &str, owner: &str) -> Vec<Value> {
    let r = get(c, &owner_url(url, owner, None)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    match serde_json::from_str(&r.body).unwrap() {
        Value::Array(a) => a,
        other => panic!("a listing is an array, got {other}"),
    }
}

async fn whoami(c: &reqwest::Client, url: &str) -> String {
    get(c, &format!("{url}/whoami")).await.body
}

fn handles(l: &[Value]) -> Vec<String> {
    l.iter()
        .map(|e| e["handle"].as_str().unwrap().to_owned())
        .collect()
}

fn current(l: &[Value]) -> Vec<String> {
    l.iter()
        .filter(|e| e["current"] == Value::Bool(true))
        .map(|e| e["handle"].as_str().unwrap().to_owned())
        .collect()
}

/// The contract the demo's routes expose, on any store: three sessions of one owner and one
/// of another; a listing with exactly one current session and no credential in it; revoke
/// all but the current one; revoke one (404 when unknown); revoke all.
async fn contract(url: &str, ada: &str, bob: &str) {
    let mut secrets = Vec::new();
    let mut sessions = Vec::new();
    for i in 0..3 {
        let (c, r) = login(url, ada, &format!("device-{i}")).await;
        secrets.extend(r.pairs());
        sessions.push(c);
    }
    let (b, r) = login(url, bob, "bob-phone").await;
    secrets.extend(r.pairs());

    let l = list(&sessions[0], url, ada).await;
    assert_eq!(l.len(), 3, "{l:?}");
    assert_eq!(
        current(&l).len(),
        1,
        "exactly the caller's session is current"
    );
    for e in &l {
        for field in ["handle", "created", "last_seen", "expires", "current"] {
            assert!(e.get(field).is_some(), "a listing entry has {field}: {e}");
        }
        assert!(e["expires"].as_u64().unwrap() > e["last_seen"].as_u64().unwrap());
        assert!(e["device"].as_str().unwrap().starts_with("device-"));
    }
    // No cookie value, id or signature of any session is in a listing.
    let text = serde_json::to_string(&l).unwrap();
    for s in &secrets {
        let value = s.split_once('=').unwrap().1;
        assert!(!text.contains(value), "a listing leaked a cookie value");
        let cfg = config(None, MaxAge::Session, false);
        if let Some(id) = cfg.ids().parse(value) {
            let key = cfg.key_derivation().derive(&id);
            assert!(!text.contains(key.as_str()), "a listing leaked a store key");
            assert!(!text.contains(id.as_str()), "a listing leaked an id");
        }
    }

    // Log out everywhere else: exactly the caller's session and the other owner's remain.
    let r = get(&sessions[0], &format!("{url}/revoke-others")).await;
    assert_eq!(r.body, "2");
    let l = list(&sessions[0], url, ada).await;
    assert_eq!(handles(&l), current(&l), "only the current session is left");
    assert_eq!(l.len(), 1);
    assert_eq!(whoami(&sessions[0], url).await, ada);
    for c in &sessions[1..] {
        assert_eq!(
            whoami(c, url).await,
            "anonymous",
            "a revoked session is anonymous"
        );
    }
    assert_eq!(whoami(&b, url).await, bob);
    assert_eq!(list(&b, url, bob).await.len(), 1);

    // Revoke one by handle; again, or a handle of nothing, is a 404.
    let (d, _) = login(url, ada, "device-3").await;
    let l = list(&sessions[0], url, ada).await;
    let other: Vec<String> = handles(&l)
        .into_iter()
        .filter(|h| !current(&l).contains(h))
        .collect();
    assert_eq!(other.len(), 1);
    let revoke = |h: &str| send(sessions[0].delete(owner_url(url, ada, Some(h))));
    assert_eq!(revoke(&other[0]).await.status, 204);
    assert_eq!(revoke(&other[0]).await.status, 404);
    assert_eq!(revoke(&"x".repeat(22)).await.status, 404);
    assert_eq!(revoke("../../etc").await.status, 404);
    assert_eq!(whoami(&d, url).await, "anonymous");
    // Bob's handle is not Ada's to revoke.
    let bobs = handles(&list(&b, url, bob).await);
    assert_eq!(revoke(&bobs[0]).await.status, 404);
    assert_eq!(whoami(&b, url).await, bob);

    // Log out everywhere: the caller's own session ends too, and its cookie is removed.
    let r = get(&sessions[0], &format!("{url}/revoke-all")).await;
    assert_eq!(r.body, "1");
    assert!(
        r.set_cookies
            .iter()
            .any(|c| c.starts_with(&format!("{NAME}=;"))),
        "the caller's cookie is removed: {:?}",
        r.set_cookies
    );
    assert_eq!(whoami(&sessions[0], url).await, "anonymous");
    assert!(list(&b, url, ada).await.is_empty());
    assert_eq!(
        whoami(&b, url).await,
        bob,
        "another owner's session is untouched"
    );
}

#[tokio::test]
async fn the_contract_on_the_memory_store() {
    let (layer, _, _) = clocked(MaxAge::Ms(86_400_000), false);
    let url = serve(layer).await;
    contract(&url, "ada", "bob").await;
}

#[cfg(feature = "redis-tests")]
async fn redis_layer(max_age: MaxAge, rolling: bool) -> SessionLayer {
    use session_testkit::redis::{shared_url, unique_prefix};
    let store = session_store_redis::RedisStore::builder(shared_url())
        .prefix(unique_prefix("owners"))
        .build()
        .await
        .unwrap();
    SessionLayer::store(config(None, max_age, rolling), store)
        .build()
        .unwrap()
}

#[cfg(feature = "redis-tests")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_contract_on_redis() {
    let url = serve(redis_layer(MaxAge::Ms(86_400_000), false).await).await;
    contract(&url, "ada", "bob").await;
}

#[tokio::test]
async fn sessions_without_an_owner_cost_nothing_extra_and_a_login_one_call() {
    let (layer, probe, clock) = clocked(MaxAge::Ms(86_400_000), true);
    let url = serve(layer).await;
    let c = browser();
    for _ in 0..100 {
        clock.advance(Duration::from_millis(10));
        get(&c, &format!("{url}/views")).await;
    }
    assert_eq!(probe.index_calls.load(Ordering::SeqCst), 0);
    get(&c, &format!("{url}/login?owner=ada")).await;
    assert_eq!(
        probe.index_calls.load(Ordering::SeqCst),
        1,
        "binding at login is one index call"
    );
    let writes = probe.writes.load(Ordering::SeqCst);
    for _ in 0..100 {
        clock.advance(Duration::from_millis(10));
        get(&c, &format!("{url}/read")).await;
    }
    assert_eq!(
        probe.index_calls.load(Ordering::SeqCst),
        1,
        "requests of a bound session within the slack make no index call"
    );
    assert_eq!(
        probe.writes.load(Ordering::SeqCst),
        writes + 100,
        "one rolling touch each, nothing more"
    );
}

#[tokio::test]
async fn a_rolling_session_refreshes_its_entry_once_per_slack_and_stays_listed() {
    // Max-age 100 s: the record lives 110 s from each request, the entry 11 s beyond.
    let (layer, probe, clock) = clocked(MaxAge::Ms(100_000), true);
    let url = serve(layer).await;
    let (c, _) = login(&url, "ada", "laptop").await;
    let before = probe.index_calls.load(Ordering::SeqCst);
    for _ in 0..300 {
        clock.advance(Duration::from_secs(1));
        assert_eq!(whoami(&c, &url).await, "ada");
    }
    let refreshes = probe.index_calls.load(Ordering::SeqCst) - before;
    assert!(
        (20..=40).contains(&refreshes),
        "300 s of rolling requests refresh the entry about every 11 s, not on every request: {refreshes}"
    );
    let l = list(&c, &url, "ada").await;
    assert_eq!(l.len(), 1, "still listed after 300 s of use: {l:?}");
    let seen = l[0]["last_seen"].as_u64().unwrap();
    assert!(T0 + 300_000 - seen <= 11_000, "last_seen within the slack");
    assert_eq!(
        l[0]["created"].as_u64().unwrap(),
        T0,
        "created is the login"
    );
}

#[tokio::test]
async fn expired_sessions_leave_listings_and_the_index_shrinks_without_a_task() {
    let (layer, probe, clock) = clocked(MaxAge::Ms(60_000), false);
    let url = serve(layer).await;
    let mut clients = Vec::new();
    for i in 0..3 {
        clients.push(login(&url, "ada", &format!("d{i}")).await.0);
    }
    let before = handles(&list(&clients[0], &url, "ada").await);
    assert_eq!(before.len(), 3);
    // Past the cookie's expiry (the record's margin not yet over): no longer listed, and its
    // handle is unknown to a revoke.
    clock.advance(Duration::from_secs(61));
    let admin = browser();
    assert!(list(&admin, &url, "ada").await.is_empty());
    let r = send(admin.delete(owner_url(&url, "ada", Some(&before[0])))).await;
    assert_eq!(r.status, 404, "an ended session is not revocable");
    // The revoke cleaned up that one entry; the other two lapse by themselves.
    assert_eq!(probe.store.owner_entries(), 2);
    // Past the entries' own time (and the minute allowed for clock skew between servers),
    // the owner's next index write drops them: no sweeper ran.
    clock.advance(Duration::from_secs(20) + Duration::from_millis(CLOCK_SKEW_ALLOWANCE_MS));
    login(&url, "ada", "new").await;
    assert_eq!(probe.store.owner_entries(), 1, "the index cleaned itself");
    for c in &clients {
        assert_eq!(whoami(c, &url).await, "anonymous");
    }
}

#[tokio::test]
async fn a_logout_and_a_regenerate_keep_the_index_exact() {
    let (layer, probe, _) = clocked(MaxAge::Ms(86_400_000), false);
    let url = serve(layer).await;
    let (c, _) = login(&url, "ada", "laptop").await;
    let first = handles(&list(&c, &url, "ada").await);
    // A second login of the same browser regenerates: listed once, under its new handle.
    login_again(&c, &url, "ada").await;
    let l = list(&c, &url, "ada").await;
    assert_eq!(l.len(), 1);
    assert_ne!(
        handles(&l),
        first,
        "a regenerated session gets a new handle"
    );
    assert_eq!(current(&l).len(), 1);
    // The old id's entry goes in the background, off the login's path.
    for _ in 0..100 {
        if probe.store.owner_entries() == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(probe.store.owner_entries(), 1, "the old id's entry went");
    get(&c, &format!("{url}/logout")).await;
    assert_eq!(probe.store.owner_entries(), 0, "a logout removes the entry");
    // Rebinding to someone else needs a regenerate.
    let (c, _) = login(&url, "ada", "x").await;
    let r = send(
        c.put(format!("{url}/session/owner"))
            .body(r#"{"owner":"eve"}"#),
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(whoami(&c, &url).await, "ada");
}

async fn login_again(c: &reqwest::Client, url: &str, owner: &str) {
    let r = get(c, &format!("{url}/login?owner={owner}")).await;
    assert_eq!(r.status, 200, "{}", r.body);
}

#[tokio::test]
async fn cookie_mode_and_koa_compat_keep_no_index() {
    let cookie = SessionLayer::cookie(config(None, MaxAge::Session, false))
        .build()
        .unwrap();
    assert!(cookie.owners().is_none());
    let url = serve(cookie).await;
    let r = get(&browser(), &format!("{url}/login?owner=ada")).await;
    assert_eq!(r.status, 500, "{}", r.body);
    assert!(r.body.contains("owner index"), "{}", r.body);
    let koa = Config::builder()
        .key(KEY1.to_vec())
        .koa_compat(true)
        .build()
        .unwrap();
    let koa = SessionLayer::store(koa, MemoryStore::new())
        .build()
        .unwrap();
    assert!(koa.owners().is_none());
    let url = serve(koa).await;
    assert_eq!(
        get(&browser(), &format!("{url}/login?owner=ada"))
            .await
            .status,
        500
    );
}

/// Hundreds of times: a revoke-all races requests of the session that write (views) and read;
/// afterwards the session is anonymous and nothing of the owner is listed. Then a revoke-all
/// races a fresh login of the same owner: whatever the order, a session that is still logged
/// in is listed (a live session is never out of reach of the next revoke).
async fn races(layer: SessionLayer, rounds: usize) {
    let owners = layer.owners().expect("the store keeps an owner index");
    let url = serve(layer).await;
    let mut failures = Vec::new();
    for round in 0..rounds {
        let owner = format!("racer{round}");
        let (c, _) = login(&url, &owner, "a").await;
        let views = format!("{url}/views");
        let writes = (0..4).map(|_| get(&c, &views));
        let (_, revoked) = tokio::join!(futures_util::future::join_all(writes), async {
            tokio::task::yield_now().await;
            owners.revoke_all(&owner).await.unwrap()
        });
        if revoked != 1 || whoami(&c, &url).await != "anonymous" {
            failures.push(format!(
                "round {round}: revoke racing saves left the session alive"
            ));
        }
        if !owners.list(&owner).await.unwrap().is_empty() {
            failures.push(format!("round {round}: a revoked session is still listed"));
        }

        let c = browser();
        let relogin = format!("{url}/login?owner={owner}");
        let (_, _) = tokio::join!(get(&c, &relogin), async {
            tokio::task::yield_now().await;
            owners.revoke_all(&owner).await.unwrap()
        });
        let alive = whoami(&c, &url).await != "anonymous";
        let listed = !owners.list(&owner).await.unwrap().is_empty();
        if alive && !listed {
            failures.push(format!(
                "round {round}: a login that survived a revoke is unlisted"
            ));
        }
        if alive {
            owners.revoke_all(&owner).await.unwrap();
            if whoami(&c, &url).await != "anonymous" {
                failures.push(format!("round {round}: a second revoke missed the session"));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures: {failures:?}",
        failures.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revokes_racing_saves_and_logins_on_the_memory_store() {
    let layer = SessionLayer::store(
        config(None, MaxAge::Ms(86_400_000), false),
        MemoryStore::new(),
    )
    .build()
    .unwrap();
    races(layer, 300).await;
}

#[cfg(feature = "redis-tests")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revokes_racing_saves_and_logins_on_redis() {
    races(redis_layer(MaxAge::Ms(86_400_000), false).await, 200).await;
}
