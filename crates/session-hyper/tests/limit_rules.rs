//! The session limit's rules, one at a time through the real layer (the storms in
//! `session_limit.rs` race them): sessions that ended never count, one session counts once (a
//! re-bind, a regenerate, a second login in the same browser), a per-login limit overrides the
//! layer's, a refused `log_in` leaves the session as it was and the handler goes on with it, and
//! a limit where no owner index is kept fails at build. Sessions are seeded with the `testing`
//! fixtures; time is a manual clock.
#![cfg(feature = "testing")]
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use session_hyper::testing::{Fixture, ManualClock, clock};
use session_hyper::{
    Config, LayerBuildError, MaxAge, MemoryStore, OverLimit, SessionLayer, SessionLimit,
};
use session_testkit::client::get_with;

const KEY: &[u8] = b"limit rules key, 32 bytes or more";
const HOUR: Duration = Duration::from_secs(3600);

fn limit(max: usize, policy: OverLimit) -> SessionLimit {
    SessionLimit::new(max, policy).unwrap()
}

/// A layer on a memory store under `limit`, config and store on one manual clock; the app's
/// URL, the fixture and the clock.
async fn app(limit: SessionLimit) -> (String, Fixture, ManualClock, SessionLayer) {
    let (time, shared) = clock();
    let store = MemoryStore::builder().clock(Arc::clone(&shared)).build();
    let config = Config::builder()
        .key(KEY.to_vec())
        .clock(shared)
        .max_age(MaxAge::from_duration(HOUR))
        .build()
        .unwrap();
    let layer = SessionLayer::store(config, store)
        .max_sessions_per_owner(limit)
        .build()
        .unwrap();
    let fixture = Fixture::new(&layer);
    let url = session_testkit::app::serve(layer.clone()).await;
    (url, fixture, time, layer)
}

fn no_data() -> [(&'static str, Value); 0] {
    []
}

async fn listed(layer: &SessionLayer, owner: &str) -> usize {
    layer.owners().unwrap().list(owner).await.unwrap().len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_that_ended_never_count() {
    let (_, fixture, time, layer) = app(limit(1, OverLimit::Refuse)).await;
    // Expired: its record is gone, its index entry not yet (it runs a tenth of the TTL ahead).
    fixture.seed_owned(no_data(), "ada", None).await.unwrap();
    time.advance(HOUR + Duration::from_secs(180));
    let second = fixture.seed_owned(no_data(), "ada", None).await;
    assert!(second.is_ok(), "an expired session counted: {second:?}");
    // Logged out: gone at once.
    let third = fixture.seed_owned(no_data(), "bob", None).await.unwrap();
    fixture.end(third.cookie_header()).await.unwrap();
    assert!(fixture.seed_owned(no_data(), "bob", None).await.is_ok());
    // Revoked.
    assert_eq!(layer.owners().unwrap().revoke_all("bob").await.unwrap(), 1);
    assert!(fixture.seed_owned(no_data(), "bob", None).await.is_ok());
    // And a live one does count.
    let over = fixture.seed_owned(no_data(), "bob", None).await;
    assert!(matches!(
        over,
        Err(session_hyper::Error::TooManySessions { max: 1 })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_session_counts_once() {
    let (url, fixture, _, layer) = app(limit(1, OverLimit::Refuse)).await;
    let mine = fixture.seed_owned(no_data(), "ada", None).await.unwrap();
    let cookie = mine.cookie_header().to_owned();
    // Bound again to the owner it has, without a regenerate.
    let r = get_with(&format!("{url}/bind?owner=ada"), &cookie).await;
    assert_eq!(r.status, 200, "{}", r.body);
    // Its id renewed.
    let r = session_testkit::client::send(
        session_testkit::client::raw()
            .post(format!("{url}/session/regenerate"))
            .header("cookie", &cookie),
    )
    .await;
    assert!(r.status < 300, "{}", r.body);
    let cookie = cookie_after(&cookie, &r);
    // Logged in again in the same browser.
    let r = get_with(&format!("{url}/login?owner=ada"), &cookie).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let cookie = cookie_after(&cookie, &r);
    assert_eq!(
        fixture.inspect(&cookie).await.unwrap().owner.as_deref(),
        Some("ada")
    );
    assert_eq!(listed(&layer, "ada").await, 1);
    // Another browser is still one too many.
    let other = get_with(&format!("{url}/login?owner=ada"), "").await;
    assert_eq!(other.status, 409);
}

/// The `Cookie` header after `reply`, starting from `cookie`.
fn cookie_after(cookie: &str, reply: &session_testkit::client::Reply) -> String {
    let mut jar = session_testkit::client::Jar(
        cookie
            .split("; ")
            .filter_map(|p| p.split_once('='))
            .map(|(n, v)| (n.to_owned(), v.to_owned()))
            .collect(),
    );
    jar.apply(reply);
    jar.header()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_per_login_limit_overrides_the_layers() {
    let (url, _, _, layer) = app(limit(1, OverLimit::Refuse)).await;
    for _ in 0..3 {
        let r = get_with(&format!("{url}/log-in?owner=admin&max=3"), "").await;
        assert_eq!((r.status, r.body.as_str()), (200, "in"));
    }
    let r = get_with(&format!("{url}/log-in?owner=admin&max=3"), "").await;
    assert_eq!(r.status, 409);
    assert_eq!(listed(&layer, "admin").await, 3);
    // The layer's limit for everyone else.
    assert_eq!(
        get_with(&format!("{url}/log-in?owner=bob"), "")
            .await
            .status,
        200
    );
    assert_eq!(
        get_with(&format!("{url}/log-in?owner=bob"), "")
            .await
            .status,
        409
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_log_in_leaves_the_session_as_it_was() {
    let (url, fixture, _, layer) = app(limit(1, OverLimit::Refuse)).await;
    fixture.seed_owned(no_data(), "ada", None).await.unwrap();
    let mine = fixture.seed([("cart", json!(["book"]))]).await.unwrap();
    let r = get_with(&format!("{url}/log-in?owner=ada"), mine.cookie_header()).await;
    assert_eq!((r.status, r.body.as_str()), (409, "refused"));
    // Same id (no new cookie), same data plus what the handler set after the refusal, unbound.
    assert_eq!(r.sets_id(), None);
    assert!(!r.removes());
    let seen = fixture.inspect(mine.cookie_header()).await.unwrap();
    assert_eq!(
        Value::Object(seen.data),
        json!({"cart": ["book"], "refused": 1})
    );
    assert_eq!(seen.owner, None);
    assert_eq!(listed(&layer, "ada").await, 1);
}

/// A request of a session already in flight when a newer login ends it can't bring it back:
/// a save that replaces the whole data finds the record superseded by the marker and writes
/// nothing, and a regenerate finds its entry gone and ends as a destroy, ending nobody else.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ended_sessions_request_in_flight_brings_nothing_back() {
    for (slow, label) in [
        ("/clear?ms=300", "a whole-data save"),
        ("/slow-regenerate?ms=300", "a regenerate"),
    ] {
        let (url, fixture, _, layer) = app(limit(1, OverLimit::EndOldest)).await;
        let a = fixture.seed_owned(no_data(), "ada", None).await.unwrap();
        let a = a.cookie_header().to_owned();
        let slow_url = format!("{url}{slow}");
        let in_flight = get_with(&slow_url, &a);
        let newer = async {
            tokio::time::sleep(Duration::from_millis(100)).await;
            fixture.seed_owned(no_data(), "ada", None).await.unwrap()
        };
        let (late, b) = tokio::join!(in_flight, newer);
        assert!(late.status < 500, "{label}: {}", late.body);
        // Whatever the late request answered, the ended session stays ended, unlisted, and
        // the newer login lives on alone.
        let cookie = cookie_after(&a, &late);
        let seen = fixture.inspect(&cookie).await.unwrap();
        assert_eq!(seen.owner, None, "{label}: the ended session came back");
        let b_seen = fixture.inspect(b.cookie_header()).await.unwrap();
        assert_eq!(
            b_seen.owner.as_deref(),
            Some("ada"),
            "{label}: the newer login ended"
        );
        assert_eq!(listed(&layer, "ada").await, 1, "{label}");
    }
}

/// A store that refuses the admission: the login is a 503 with nothing written (the session as
/// it was, nobody ended); one that stalls it while 20 other logins race: the limit holds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusing_or_stalling_index_never_breaks_the_limit() {
    use std::sync::atomic::Ordering;
    let probe = session_testkit::stores::Probe::new(MemoryStore::new());
    let config = Config::builder().key(KEY.to_vec()).build().unwrap();
    let layer = SessionLayer::store(config, probe.clone())
        .max_sessions_per_owner(limit(2, OverLimit::EndOldest))
        .build()
        .unwrap();
    let fixture = Fixture::new(&layer);
    let url = session_testkit::app::serve(layer.clone()).await;
    let first = fixture.seed_owned(no_data(), "ada", None).await.unwrap();
    let mine = fixture.seed([("cart", json!(1))]).await.unwrap();
    probe.fail_index.store(true, Ordering::SeqCst);
    let r = get_with(&format!("{url}/log-in?owner=ada"), mine.cookie_header()).await;
    assert_eq!(r.status, 503, "{}", r.body);
    assert_eq!((r.sets_id(), r.removes()), (None, false));
    probe.fail_index.store(false, Ordering::SeqCst);
    let seen = fixture.inspect(mine.cookie_header()).await.unwrap();
    assert_eq!(
        (Value::Object(seen.data), seen.owner),
        (json!({"cart": 1}), None)
    );
    let still = fixture.inspect(first.cookie_header()).await.unwrap();
    assert_eq!(
        still.owner.as_deref(),
        Some("ada"),
        "a refused admission ended a session"
    );
    // Admissions of this owner stall 50 ms each while 20 logins race.
    *probe.delay_owner.lock().unwrap() = Some(("ada".into(), 50));
    let login = format!("{url}/log-in?owner=ada");
    let logins = (0..20).map(|_| get_with(&login, ""));
    let answers = futures_util::future::join_all(logins).await;
    assert!(
        answers.iter().all(|r| r.status == 200),
        "every login is admitted"
    );
    assert_eq!(listed(&layer, "ada").await, 2, "the limit held");
}

#[test]
fn a_limit_needs_an_owner_index() {
    let l = limit(3, OverLimit::Refuse);
    let config = |koa: bool| {
        Config::builder()
            .key(KEY.to_vec())
            .koa_compat(koa)
            .build()
            .unwrap()
    };
    let cookie = SessionLayer::cookie(config(false))
        .max_sessions_per_owner(l)
        .build();
    assert!(matches!(cookie, Err(LayerBuildError::LimitWithoutIndex)));
    let koa = SessionLayer::store(config(true), MemoryStore::new())
        .max_sessions_per_owner(l)
        .build();
    assert!(matches!(koa, Err(LayerBuildError::LimitWithoutIndex)));
}
