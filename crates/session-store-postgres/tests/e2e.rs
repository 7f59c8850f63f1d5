//! The middleware end to end on PostgreSQL over real TCP: a counter, destroy, regenerate,
//! rolling, concurrent requests changing different keys both landing, and hundreds of destroys
//! racing saves that never bring a session back. Needs `--features postgres-tests` and
//! `DATABASE_URL` (`cargo xtask test-postgres` / `cargo xtask ci`).
#![cfg(feature = "postgres-tests")]
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod support;

use serde_json::{Value, json};
use session_testkit::backend::{Backend, Kind, Variant};
use session_testkit::client::send;
use support::{browser, get, layer, serve, store};

fn parsed(body: &str) -> Value {
    serde_json::from_str(body).unwrap()
}

/// On the kit's PostgreSQL backend (a fresh table), as the attack suite would run it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counter_destroy_regenerate_and_merges() {
    let backend = Variant::plain(Backend::new(Kind::Postgres).await);
    let url = serve(backend.layer(|b| b).build().unwrap()).await;
    let c = browser();
    for n in 1..=3 {
        assert_eq!(
            get(&c, format!("{url}/views")).await.1,
            format!("{n} views")
        );
    }
    // Two overlapping requests change different keys: both land.
    let (a, b) = tokio::join!(
        get(&c, format!("{url}/slow-set?cart=book")),
        get(&c, format!("{url}/slow-set?theme=dark"))
    );
    assert_eq!((a.0, b.0), (200, 200));
    let got = parsed(&get(&c, format!("{url}/read")).await.1);
    assert_eq!(got, json!({"views": 3, "cart": "book", "theme": "dark"}));
    // Regenerate keeps the data under a new id.
    let regenerate = c.post(format!("{url}/session/regenerate"));
    assert_eq!(send(regenerate).await.status, 204);
    assert_eq!(parsed(&get(&c, format!("{url}/read")).await.1)["views"], 3);
    // Destroy ends it.
    assert_eq!(get(&c, format!("{url}/logout")).await.1, "bye");
    assert_eq!(get(&c, format!("{url}/read")).await.1, "{}");
    assert_eq!(get(&c, format!("{url}/views")).await.1, "1 views");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rolling_extends_the_row() {
    let store = store("rolling").await;
    let url = serve(layer(store.clone(), true)).await;
    let c = browser();
    get(&c, format!("{url}/views")).await;
    for _ in 0..5 {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        let (status, body) = get(&c, format!("{url}/read")).await;
        assert_eq!((status, parsed(&body)["views"].clone()), (200, json!(1)));
    }
}

/// Hundreds of times: a logout and two saves of the same session race; afterwards the session
/// is gone (a save never brings a destroyed session back).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn destroy_racing_saves_never_resurrects() {
    let url = serve(layer(store("race").await, false)).await;
    let mut failures = 0;
    for _ in 0..200 {
        let c = browser();
        get(&c, format!("{url}/views")).await;
        let _ = tokio::join!(
            get(&c, format!("{url}/slow-set?a=1")),
            get(&c, format!("{url}/views")),
            async {
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                get(&c, format!("{url}/logout")).await
            }
        );
        // A request that arrived after the logout may have started a new session of its own
        // key alone; the destroyed one (views 1, then 2 or with `a` beside it) never returns.
        let after = parsed(&get(&c, format!("{url}/read")).await.1);
        let resurrected = after.get("views") == Some(&json!(2))
            || (after.get("views").is_some() && after.get("a").is_some());
        if resurrected {
            failures += 1;
        }
    }
    assert_eq!(failures, 0, "a destroyed session came back");
}

/// A user's sessions on PostgreSQL: revoke-all racing saves, hundreds of times; the revoked
/// session never comes back and is never listed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revokes_racing_saves() {
    let l = layer(store("owners").await, false);
    let owners = l.owners().unwrap();
    let url = serve(l).await;
    let mut failures = Vec::new();
    for round in 0..200 {
        let owner = format!("user{round}");
        let c = browser();
        get(&c, format!("{url}/login?owner={owner}")).await;
        let (_, _, revoked) = tokio::join!(
            get(&c, format!("{url}/views")),
            get(&c, format!("{url}/slow-set?x=1")),
            owners.revoke_all(&owner)
        );
        let revoked = revoked.unwrap();
        let after = get(&c, format!("{url}/read")).await.1;
        let listed = owners.list(&owner).await.unwrap().len();
        // A request that arrives after the revoke may start a new, anonymous session (its
        // own keys only); the revoked one, with its user, never comes back.
        if revoked != 1 || parsed(&after).get("user").is_some() || listed != 0 {
            failures.push(format!(
                "{round}: revoked {revoked}, then {after}, listed {listed}"
            ));
        }
    }
    assert!(failures.is_empty(), "rounds that failed: {failures:?}");
}

/// "Log out everywhere" for an owner with thousands of sessions: one call ends them all,
/// without a store timeout, while another user's requests keep being answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoking_thousands_of_sessions_of_one_owner() {
    use session_core::MaxAge;
    use session_core::store::{IndexEntry, OwnerIndex};
    use session_core::store::{Meta, Record, Store, StoreKey};
    use std::time::{Duration, Instant};
    const N: usize = 9000;
    let st = store("many").await;
    let now = session_testkit::now_ms();
    let record = Record {
        data: json!({"n": 1}).as_object().cloned().unwrap(),
        meta: Meta {
            expire: Some(now + 86_400_000),
            max_age: MaxAge::Ms(86_400_000),
            created: Some(now),
        },
    };
    let keys: Vec<StoreKey> = (0..N)
        .map(|i| StoreKey::from_raw(format!("sess:many:{i}")))
        .collect();
    for chunk in keys.chunks(64) {
        futures_util::future::join_all(chunk.iter().map(|k| async {
            st.create(k, &record, Duration::from_secs(86_400))
                .await
                .unwrap();
            let entry = IndexEntry::new(k.clone(), now, now, None);
            st.index("many", &entry, now + 86_400_000, now)
                .await
                .unwrap();
        }))
        .await;
    }
    let l = layer(st, false);
    let owners = l.owners().unwrap();
    assert_eq!(owners.list("many").await.unwrap().len(), N);
    let url = serve(l).await;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let bystander = {
        let (url, stop) = (url.clone(), stop.clone());
        tokio::spawn(async move {
            let c = browser();
            let mut failed = 0;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                if get(&c, format!("{url}/views")).await.0 != 200 {
                    failed += 1;
                }
            }
            failed
        })
    };
    let t = Instant::now();
    let revoked = owners.revoke_all("many").await;
    let took = t.elapsed();
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    println!("revoked {revoked:?} in {took:?}");
    assert_eq!(revoked.unwrap(), N);
    assert_eq!(
        bystander.await.unwrap(),
        0,
        "another user's requests failed"
    );
    assert!(owners.list("many").await.unwrap().is_empty());
}
