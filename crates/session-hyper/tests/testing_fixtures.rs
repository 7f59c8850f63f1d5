//! The test fixtures for apps (`session_hyper::testing`, feature `testing`) against the JSON test
//! app served over real TCP: a session the fixtures seed is the app's session to a real request
//! (signed store mode, signed and encrypted cookie mode, an external key header), an owned one is
//! in the owner's index, an inspection sees what a request did and writes nothing, an ended
//! session is gone, and a manual clock moved past `max_age` or `absolute_lifetime` ends sessions.
#![cfg(feature = "testing")]
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use session_hyper::testing::{Fixture, ManualClock, clock};
use session_hyper::{
    Config, ConfigBuilder, CookieMode, EndReason, Error, MaxAge, MemoryStore, OverLimit,
    SessionError, SessionLayer, SessionLimit,
};
use session_testkit::app::serve;
use session_testkit::capture::{KEY1, with_capture};
use session_testkit::client::{Jar, get_with, raw, send};

const HOUR: Duration = Duration::from_secs(3600);
const MINUTE: Duration = Duration::from_secs(60);

fn config(f: impl FnOnce(ConfigBuilder) -> ConfigBuilder) -> Config {
    f(Config::builder().key(KEY1.to_vec())).build().unwrap()
}

/// A store-mode layer whose configuration and memory store both read a manual clock; the
/// clock and the store.
fn clocked_store(
    f: impl FnOnce(ConfigBuilder) -> ConfigBuilder,
) -> (SessionLayer, ManualClock, MemoryStore) {
    let (time, shared) = clock();
    let store = MemoryStore::builder().clock(Arc::clone(&shared)).build();
    let cfg = config(|b| f(b.clock(shared)));
    let layer = SessionLayer::store(cfg, store.clone()).build().unwrap();
    (layer, time, store)
}

/// `GET {url}/read` with the cookie: the data the app reads, as JSON.
async fn read(url: &str, cookie: &str) -> Value {
    let r = get_with(&format!("{url}/read"), cookie).await;
    assert_eq!(r.status, 200, "{}", r.body);
    serde_json::from_str(&r.body).unwrap()
}

#[test]
fn a_seeded_store_session_is_the_apps_session() {
    with_capture(|secrets| async move {
        let layer = SessionLayer::store(config(|b| b), MemoryStore::new())
            .build()
            .unwrap();
        let url = serve(layer.clone()).await;
        let fixture = Fixture::new(&layer);
        let seeded = fixture
            .seed([("user", json!("ada")), ("cart", json!(["book", "pen"]))])
            .await
            .unwrap();
        secrets.add(seeded.cookie_header());
        for v in seeded.set_cookie() {
            secrets.add(v.to_str().unwrap());
        }
        let cookie = seeded.cookie_header();
        assert!(cookie.starts_with("koa.sess="), "the id cookie first");
        assert!(cookie.contains("; koa.sess.sig="), "and its signature");
        assert_eq!(seeded.set_cookie().len(), 2);
        assert!(!format!("{seeded:?}").contains(cookie));

        assert_eq!(
            read(&url, cookie).await,
            json!({"user": "ada", "cart": ["book", "pen"]})
        );
        // The signature is checked as for any client: a changed id is anonymous.
        let forged = cookie.replacen("koa.sess=", "koa.sess=x", 1);
        assert_eq!(read(&url, &forged).await, json!({}));
    });
}

#[tokio::test]
async fn a_seeded_signed_cookie_mode_session_is_the_apps_session() {
    let layer = SessionLayer::cookie(config(|b| b)).build().unwrap();
    let url = serve(layer.clone()).await;
    let seeded = Fixture::new(&layer)
        .seed([("user", json!("ada")), ("views", json!(3))])
        .await
        .unwrap();
    // The payload is the cookie, signed in `.sig`.
    assert!(seeded.cookie_header().contains("; koa.sess.sig="));
    assert_eq!(
        read(&url, seeded.cookie_header()).await,
        json!({"user": "ada", "views": 3})
    );
}

#[tokio::test]
async fn a_seeded_encrypted_cookie_is_the_apps_session() {
    let cfg = config(|b| {
        b.keys([KEY1.to_vec(), b"an older key, 32 bytes or longer".to_vec()])
            .cookie_mode(CookieMode::Encrypted)
    });
    let layer = SessionLayer::cookie(cfg).build().unwrap();
    let url = serve(layer.clone()).await;
    let seeded = Fixture::new(&layer)
        .seed([("user", "ada-lovelace")])
        .await
        .unwrap();
    let cookie = seeded.cookie_header();
    assert!(cookie.starts_with("koa.sess=v1."), "one sealed cookie");
    assert!(!cookie.contains(".sig=") && !cookie.contains("ada-lovelace"));
    assert_eq!(read(&url, cookie).await, json!({"user": "ada-lovelace"}));
}

#[tokio::test]
async fn a_seed_under_an_external_key_header_travels_in_that_header() {
    let layer = SessionLayer::store(config(|b| b), MemoryStore::new())
        .external_key(http::HeaderName::from_static("x-session"))
        .build()
        .unwrap();
    let url = serve(layer.clone()).await;
    let fixture = Fixture::new(&layer);
    let seeded = fixture.seed([("user", "ada")]).await.unwrap();
    let (name, value) = seeded.header();
    assert_eq!(name, "x-session");
    assert!(seeded.set_cookie().is_empty());
    let r = send(raw().get(format!("{url}/read")).header(name, value)).await;
    assert_eq!(r.body, json!({"user": "ada"}).to_string());
    assert_eq!(fixture.inspect(value).await.unwrap().data["user"], "ada");
}

#[tokio::test]
async fn an_owned_seed_is_listed_and_revoked_with_its_owner() {
    let layer = SessionLayer::store(config(|b| b), MemoryStore::new())
        .build()
        .unwrap();
    let url = serve(layer.clone()).await;
    let fixture = Fixture::new(&layer);
    let seeded = fixture
        .seed_owned([("user", "ada")], "ada", Some("Laptop"))
        .await
        .unwrap();
    let owners = layer.owners().unwrap();
    let listed = owners.list("ada").await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].device.as_deref(), Some("Laptop"));
    let seen = fixture.inspect(seeded.cookie_header()).await.unwrap();
    assert_eq!(seen.owner.as_deref(), Some("ada"));
    assert!(!format!("{seen:?}").contains("\"ada\""), "{seen:?}");
    assert_eq!(
        read(&url, seeded.cookie_header()).await,
        json!({"user": "ada"})
    );

    assert_eq!(owners.revoke_all("ada").await.unwrap(), 1);
    assert_eq!(read(&url, seeded.cookie_header()).await, json!({}));
}

#[tokio::test]
async fn an_owned_seed_needs_an_owner_index() {
    let cookie_mode = SessionLayer::cookie(config(|b| b)).build().unwrap();
    let koa = SessionLayer::store(config(|b| b.koa_compat(true)), MemoryStore::new())
        .build()
        .unwrap();
    for layer in [cookie_mode, koa] {
        let refused = Fixture::new(&layer)
            .seed_owned([("user", "ada")], "ada", None)
            .await;
        assert!(matches!(refused, Err(Error::NoOwnerIndex)), "{refused:?}");
    }
}

#[tokio::test]
async fn a_login_over_the_limit_ends_the_oldest_seed_and_inspect_says_why() {
    let limit = SessionLimit::new(1, OverLimit::EndOldest).unwrap();
    let layer = SessionLayer::store(config(|b| b), MemoryStore::new())
        .max_sessions_per_owner(limit)
        .build()
        .unwrap();
    let fixture = Fixture::new(&layer);
    let first = fixture.seed_owned([("n", 1)], "ada", None).await.unwrap();
    let second = fixture.seed_owned([("n", 2)], "ada", None).await.unwrap();
    let seen = fixture.inspect(first.cookie_header()).await.unwrap();
    assert!(seen.is_new);
    assert_eq!(seen.ended, Some(EndReason::NewerLogin));
    let seen = fixture.inspect(second.cookie_header()).await.unwrap();
    assert_eq!((seen.is_new, seen.ended), (false, None));

    let refuse = SessionLimit::new(1, OverLimit::Refuse).unwrap();
    let layer = SessionLayer::store(config(|b| b), MemoryStore::new())
        .max_sessions_per_owner(refuse)
        .build()
        .unwrap();
    let fixture = Fixture::new(&layer);
    fixture.seed_owned([("n", 1)], "ada", None).await.unwrap();
    let refused = fixture.seed_owned([("n", 2)], "ada", None).await;
    assert!(matches!(refused, Err(Error::TooManySessions { max: 1 })));
}

#[tokio::test]
async fn inspect_sees_what_a_request_did() {
    let layer = SessionLayer::store(config(|b| b), MemoryStore::new())
        .build()
        .unwrap();
    let url = serve(layer.clone()).await;
    let fixture = Fixture::new(&layer);
    let seeded = fixture.seed([("views", 1)]).await.unwrap();
    let r = get_with(&format!("{url}/views"), seeded.cookie_header()).await;
    assert_eq!(r.body, "2 views");
    let seen = fixture.inspect(seeded.cookie_header()).await.unwrap();
    assert!(!seen.is_new);
    assert_eq!(seen.data["views"], 2);
    assert_eq!(seen.owner, None);

    // A login gives a new id: the test follows the cookie the app answered, as a browser does.
    let mut jar = Jar::default();
    jar.0.extend(seeded.cookie_header().split("; ").map(|p| {
        let (n, v) = p.split_once('=').unwrap();
        (n.to_owned(), v.to_owned())
    }));
    let r = get_with(&format!("{url}/login?user=bob"), &jar.header()).await;
    jar.apply(&r);
    let seen = fixture.inspect(&jar.header()).await.unwrap();
    assert_eq!((seen.is_new, &seen.data["user"]), (false, &json!("bob")));
    assert!(
        fixture
            .inspect(seeded.cookie_header())
            .await
            .unwrap()
            .is_new
    );

    // No cookie, or one that isn't a cookie at all.
    let seen = fixture.inspect("").await.unwrap();
    assert!(seen.is_new && seen.data.is_empty());
    assert!(matches!(
        fixture.inspect("koa.sess=\n").await,
        Err(Error::Cookie(_))
    ));
}

#[tokio::test]
async fn inspect_writes_nothing_even_when_rolling() {
    let (layer, time, store) =
        clocked_store(|b| b.rolling(true).max_age(MaxAge::from_duration(HOUR)));
    let url = serve(layer.clone()).await;
    let fixture = Fixture::new(&layer);
    let inspected = fixture.seed([("user", "ada")]).await.unwrap();
    let requested = fixture.seed([("user", "bob")]).await.unwrap();
    assert_eq!(store.len(), 2);
    time.advance(50 * MINUTE);
    assert!(
        !fixture
            .inspect(inspected.cookie_header())
            .await
            .unwrap()
            .is_new
    );
    // A request of the app rolls its session; an inspection doesn't.
    let r = get_with(&format!("{url}/read"), requested.cookie_header()).await;
    assert_eq!(r.set_cookies.len(), 2, "rolling sends the cookie again");
    time.advance(20 * MINUTE);
    assert!(
        fixture
            .inspect(inspected.cookie_header())
            .await
            .unwrap()
            .is_new
    );
    let seen = fixture.inspect(requested.cookie_header()).await.unwrap();
    assert_eq!((seen.is_new, &seen.data["user"]), (false, &json!("bob")));
    // Inspecting without a cookie creates nothing.
    let held = store.len();
    fixture.inspect("").await.unwrap();
    assert_eq!(store.len(), held);
}

#[tokio::test]
async fn end_makes_the_next_request_anonymous() {
    let layer = SessionLayer::store(config(|b| b), MemoryStore::new())
        .build()
        .unwrap();
    let url = serve(layer.clone()).await;
    let fixture = Fixture::new(&layer);
    let seeded = fixture.seed([("user", "ada")]).await.unwrap();
    fixture.end(seeded.cookie_header()).await.unwrap();
    assert_eq!(read(&url, seeded.cookie_header()).await, json!({}));
    assert!(
        fixture
            .inspect(seeded.cookie_header())
            .await
            .unwrap()
            .is_new
    );
    // Ending it again, or nobody, is no error.
    fixture.end(seeded.cookie_header()).await.unwrap();
    fixture.end("").await.unwrap();

    let owned = fixture
        .seed_owned([("user", "ada")], "ada", None)
        .await
        .unwrap();
    fixture.end(owned.cookie_header()).await.unwrap();
    assert!(
        layer
            .owners()
            .unwrap()
            .list("ada")
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(read(&url, owned.cookie_header()).await, json!({}));
}

#[tokio::test]
async fn end_in_cookie_mode_cannot_revoke_a_copy_of_the_cookie() {
    // The mode's documented limit: nothing on the server to end.
    let layer = SessionLayer::cookie(config(|b| b)).build().unwrap();
    let fixture = Fixture::new(&layer);
    let seeded = fixture.seed([("user", "ada")]).await.unwrap();
    fixture.end(seeded.cookie_header()).await.unwrap();
    assert!(
        !fixture
            .inspect(seeded.cookie_header())
            .await
            .unwrap()
            .is_new
    );
}

#[tokio::test]
async fn past_max_age_the_session_is_new() {
    let (layer, time, store) = clocked_store(|b| b.max_age(MaxAge::from_duration(HOUR)));
    let url = serve(layer.clone()).await;
    let fixture = Fixture::new(&layer);
    let seeded = fixture.seed([("user", "ada")]).await.unwrap();
    time.advance(HOUR - Duration::from_secs(1));
    assert_eq!(
        read(&url, seeded.cookie_header()).await,
        json!({"user": "ada"})
    );
    time.advance(Duration::from_secs(2));
    let seen = fixture.inspect(seeded.cookie_header()).await.unwrap();
    assert!(seen.is_new && seen.data.is_empty());
    // The store's TTL follows the same clock (the record outlives the cookie by 10 s).
    time.advance(Duration::from_secs(10));
    assert_eq!(store.sweep(), 1);
    assert_eq!(read(&url, seeded.cookie_header()).await, json!({}));

    // Cookie mode: the expiry travels in the payload.
    let (time, shared) = clock();
    let cfg = config(|b| b.max_age(MaxAge::from_duration(HOUR)).clock(shared));
    let fixture = Fixture::new(&SessionLayer::cookie(cfg).build().unwrap());
    let seeded = fixture.seed([("user", "ada")]).await.unwrap();
    time.advance(HOUR + Duration::from_secs(1));
    assert!(
        fixture
            .inspect(seeded.cookie_header())
            .await
            .unwrap()
            .is_new
    );
}

#[tokio::test]
async fn past_the_absolute_lifetime_the_session_is_new() {
    let (layer, time, _store) = clocked_store(|b| {
        b.rolling(true)
            .max_age(MaxAge::from_duration(HOUR))
            .absolute_lifetime(2 * HOUR)
    });
    let url = serve(layer.clone()).await;
    let fixture = Fixture::new(&layer);
    let seeded = fixture.seed([("views", 0)]).await.unwrap();
    // Each request rolls the session another hour on, until its absolute lifetime.
    for n in 1..=2 {
        time.advance(45 * MINUTE);
        let r = get_with(&format!("{url}/views"), seeded.cookie_header()).await;
        assert_eq!(r.body, format!("{n} views"));
    }
    time.advance(31 * MINUTE); // 2 h 1 min after the seed, 46 min after the last request
    let seen = fixture.inspect(seeded.cookie_header()).await.unwrap();
    assert!(seen.is_new && seen.data.is_empty());
    let r = get_with(&format!("{url}/views"), seeded.cookie_header()).await;
    assert_eq!(r.body, "1 views");
}

#[tokio::test]
async fn a_seed_takes_the_librarys_errors() {
    let layer = SessionLayer::store(config(|b| b), MemoryStore::new())
        .build()
        .unwrap();
    let fixture = Fixture::new(&layer);
    let reserved = fixture.seed([("_expire", 1)]).await;
    assert!(matches!(
        reserved,
        Err(Error::Session(SessionError::ReservedKey(_)))
    ));
    // Empty data still makes a session, as `save()` does.
    let empty = fixture.seed(Vec::<(String, Value)>::new()).await.unwrap();
    let seen = fixture.inspect(empty.cookie_header()).await.unwrap();
    assert!(!seen.is_new && seen.data.is_empty());
    // A session too large for a cookie is the layer's own error.
    let cookie_mode = Fixture::new(&SessionLayer::cookie(config(|b| b)).build().unwrap());
    let big = cookie_mode.seed([("big", "x".repeat(5000))]).await;
    assert!(matches!(&big, Err(e) if e.is_too_large()), "{big:?}");
}
