//! Errors carry no session data: the default answers of every error, a value of the wrong
//! type, a store that refuses connections.

use super::*;

/// Every error's default response: 503 with `Retry-After` when it is likely to pass, else
/// 500, and a body that never carries what the error was built from (a backend's message may
/// quote data).
#[test]
fn error_responses_carry_no_data() {
    let secret = unique("backend-detail");
    let errors: Vec<(session_hyper::Error, u16)> = vec![
        (StoreError::Unavailable(secret.clone()).into(), 503),
        (StoreError::Timeout(Duration::from_secs(1)).into(), 503),
        (StoreError::Rejected(secret.clone()).into(), 503),
        (StoreError::Corrupt(secret.clone()).into(), 500),
        (StoreError::TooLarge { size: 1, limit: 0 }.into(), 500),
        (StoreError::Backend(secret.clone()).into(), 500),
        (session_hyper::Error::Collisions(4), 500),
        (session_hyper::Error::Missing, 500),
    ];
    for (e, status) in errors {
        let res = e.response::<Bytes>();
        assert_eq!(res.status().as_u16(), status, "{e}");
        assert_eq!(res.headers().contains_key("retry-after"), status == 503);
        let body = String::from_utf8_lossy(res.body()).into_owned();
        assert!(!body.contains(&secret), "{e:?}: {body}");
    }
}

/// A value of the wrong type is the app's 500, naming the key and the type, never the value.
#[test]
fn a_wrong_typed_value_is_a_500_without_the_value() {
    attack(|secrets| async move {
        for v in variants(Errors).await {
            let app = v.app(|b| b).await;
            let mut jar = Jar::default();
            let value = unique("not-a-number");
            secrets.add(&value);
            let r = app.put(&json!({ "views": value }), &jar).await;
            jar.apply(&r);
            for _ in 0..5 {
                let r = app.get("/typed", &jar).await;
                assert_eq!(r.status, 500, "a type mismatch is not a store outage");
                assert!(!r.body.contains(&value), "the value leaked: {}", r.body);
                assert!(
                    r.body.contains("views") && r.body.contains("u64"),
                    "{}",
                    r.body
                );
            }
        }
    });
}
/// A store that refuses connections is a fast 503 with `Retry-After`, and sends no cookie.
#[cfg(feature = "redis-tests")]
#[test]
fn a_refusing_store_is_a_fast_503() {
    attack(|_| async move {
        let port = session_testkit::free_port();
        let store = session_store_redis::RedisStore::builder(format!("redis://127.0.0.1:{port}/0"))
            .checkout_timeout(Duration::from_secs(5))
            .build()
            .await
            .unwrap();
        let app = App::serve(SessionLayer::store(config(|b| b), store).build().unwrap()).await;
        let jar = {
            // A signed id the store has never seen, so the request needs the store.
            let cfg = config(|b| b);
            let cookies = session_cookie::SessionCookies::from_config(&cfg).unwrap();
            let id = cfg.ids().generate().unwrap();
            let set = cookies.write(id.as_str(), None, 0, false).unwrap();
            let mut jar = Jar::default();
            for c in set.iter() {
                let (n, v) = c.split(';').next().unwrap().split_once('=').unwrap();
                jar.0.push((n.to_owned(), v.to_owned()));
            }
            jar
        };
        let mut worst = Duration::ZERO;
        for path in ["/", "/session"].repeat(10) {
            let t = Instant::now();
            let r = app.get(path, &jar).await;
            worst = worst.max(t.elapsed());
            assert_eq!(r.status, 503);
            assert!(r.retry_after(), "a 503 says when to retry");
            assert!(r.set_cookies.is_empty());
        }
        eprintln!("refused store: 20 requests, slowest 503 in {worst:?} (checkout timeout 5 s)");
        // Refused at once: well before the 5 s checkout timeout, on a busy machine too.
        assert!(worst < Duration::from_millis(2500), "{worst:?}");
    });
}
