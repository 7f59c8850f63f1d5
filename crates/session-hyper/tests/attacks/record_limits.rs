//! Records stay within their limit (values and key names alike, in the store and in a
//! cookie); thousands of keys work; every key has a TTL.

use super::*;

/// Twenty 60 KB writes: one fits, the rest are 413 and write nothing.
#[test]
fn a_session_never_outgrows_the_record_limit() {
    attack(|secrets| async move {
        for v in variants(Limits).await {
            let app = v.app(|b| b).await;
            let mut jar = Jar::default();
            let chunk = "x".repeat(60 * 1024);
            let mut statuses = Vec::new();
            for i in 0..20 {
                let r = app.put(&json!({ format!("k{i}"): chunk }), &jar).await;
                secrets.note(&r);
                if r.status == 204 {
                    jar.apply(&r);
                } else {
                    assert!(r.set_cookies.is_empty(), "a refused write sets no cookie");
                }
                statuses.push(r.status);
            }
            let accepted = statuses.iter().filter(|s| **s == 204).count();
            eprintln!(
                "{}: 20 PUTs of 60 KB: {accepted} accepted, the rest {:?}",
                v.label(),
                statuses.iter().filter(|s| **s != 204).collect::<Vec<_>>()
            );
            assert_eq!(accepted, 1, "{}: {statuses:?}", v.label());
            assert!(statuses[1..].iter().all(|s| *s == 413));
            // The session is intact: the one accepted key, and no more.
            let s = app.get("/session", &jar).await;
            assert!(
                s.body.len() <= LIMIT + 64,
                "record of {} bytes",
                s.body.len()
            );
            let data: Value = serde_json::from_str(&s.body).unwrap();
            assert_eq!(data.as_object().unwrap().len(), 1);
            for (node, k) in v.backend.redis_keys().await {
                let bytes = redis::int(&node, &["MEMORY", "USAGE", &k]).await;
                assert!(bytes < 2 * LIMIT as i64, "a Redis record of {bytes} bytes");
            }
            v.backend.assert_every_key_has_a_ttl().await;
        }
        // Without an error hook the default is 500, and nothing is written either.
        let backend = Backend::memory();
        let app = App::serve(backend.layer(config(|b| b)).build().unwrap()).await;
        let r = app
            .put(&json!({ "big": "y".repeat(LIMIT + 1) }), &Jar::default())
            .await;
        assert_eq!(r.status, 500);
        assert!(r.set_cookies.is_empty());
        assert!(backend.take_created().is_empty());
    });
}

/// Key names count toward the limit as values do: one 60 KB name fits, a 70 KB one doesn't,
/// and two 40 KB names in two requests don't. A value nested as deep as the JSON parser reads
/// comes back as it went in.
#[test]
fn huge_key_names_count_and_deep_values_come_back() {
    attack(|secrets| async move {
        for v in variants(Limits).await {
            let what = v.label();
            let app = v.app(|b| b).await;
            for i in 0..10 {
                let r = app
                    .put(
                        &json!({ format!("{i}{}", "k".repeat(60 << 10)): 1 }),
                        &Jar::default(),
                    )
                    .await;
                secrets.note(&r);
                assert_eq!(r.status, 204, "{what}: a 60 KB key name fits");
                let r = app
                    .put(
                        &json!({ format!("{i}{}", "k".repeat(70 << 10)): 1 }),
                        &Jar::default(),
                    )
                    .await;
                assert_eq!(
                    (r.status, r.set_cookies.len()),
                    (413, 0),
                    "{what}: a 70 KB key name"
                );
                let mut jar = Jar::default();
                let a = app.put(&json!({ "a".repeat(40 << 10): 1 }), &jar).await;
                secrets.note(&a);
                jar.apply(&a);
                let b = app.put(&json!({ "b".repeat(40 << 10): 1 }), &jar).await;
                assert_eq!(
                    (a.status, b.status),
                    (204, 413),
                    "{what}: 40 + 40 KB of key names"
                );
            }
            let deep = format!("{{\"d\":{}1{}}}", "[".repeat(126), "]".repeat(126));
            let mut jar = Jar::default();
            let d = app
                .req(Method::PUT, "/session", "", Some(deep.clone()))
                .await;
            secrets.note(&d);
            assert_eq!(d.status, 204, "{what}");
            jar.apply(&d);
            let r = app.get("/session", &jar).await;
            assert_eq!(
                r.is_new(),
                Some(false),
                "{what}: the deep value is read back"
            );
            let back: Value = serde_json::from_str(&r.body).unwrap();
            assert_eq!(
                back,
                serde_json::from_str::<Value>(&deep).unwrap(),
                "{what}"
            );
        }
    });
}

/// A cookie-mode session over 4096 bytes is refused, and the browser keeps its last cookie;
/// signed and encrypted.
#[test]
fn a_cookie_session_never_outgrows_its_cookie() {
    attack(|secrets| async move {
        for mode in cookie_modes() {
            let layer = SessionLayer::cookie(config(|b| b.cookie_mode(mode)))
                .on_error(too_large_is_413)
                .build()
                .unwrap();
            let app = App::serve(layer).await;
            let mut jar = Jar::default();
            let r = app.put(&json!({ "small": "ok" }), &jar).await;
            secrets.note(&r);
            jar.apply(&r);
            for i in 0..20 {
                let r = app
                    .put(&json!({ format!("k{i}"): "z".repeat(5000) }), &jar)
                    .await;
                assert_eq!(
                    r.status, 413,
                    "{mode:?}: a 5 KB value can't fit in a cookie"
                );
                assert!(
                    r.set_cookies.is_empty(),
                    "{mode:?}: the browser keeps its last good cookie"
                );
            }
            let s = app.get("/session", &jar).await;
            assert_eq!(s.body, r#"{"small":"ok"}"#, "{mode:?}");
        }
    });
}

/// 5,000 keys in one write, half changed and half removed in the next; 20,000 refused whole.
#[test]
fn thousands_of_keys_work_and_every_key_keeps_a_ttl() {
    attack(|secrets| async move {
        for v in variants(Limits).await {
            let app = v.app(|b| b).await;
            let mut jar = Jar::default();
            let many: serde_json::Map<String, Value> =
                (0..5000).map(|i| (format!("k{i}"), json!(1))).collect();
            let r = app.put(&Value::Object(many), &jar).await;
            secrets.note(&r);
            assert_eq!(r.status, 204, "{}: {}", v.label(), r.body);
            jar.apply(&r);
            // Change half, remove the other half, in one request.
            let change: serde_json::Map<String, Value> = (0..5000)
                .map(|i| {
                    (
                        format!("k{i}"),
                        if i % 2 == 0 { json!(2) } else { Value::Null },
                    )
                })
                .collect();
            let r = app.put(&Value::Object(change), &jar).await;
            assert_eq!(r.status, 204, "{}: {}", v.label(), r.body);
            let s = app.get("/session", &jar).await;
            let data: Value = serde_json::from_str(&s.body).unwrap();
            let data = data.as_object().unwrap();
            assert_eq!(data.len(), 2500);
            assert!(data.values().all(|v| *v == json!(2)));
            // Far more keys than fit: refused whole, nothing written.
            let too_many: serde_json::Map<String, Value> = (0..20_000)
                .map(|i| (format!("key-{i}"), json!(i)))
                .collect();
            let r = app.put(&Value::Object(too_many), &Jar::default()).await;
            assert_eq!(r.status, 413);
            assert!(r.set_cookies.is_empty());
            let n = v.backend.assert_every_key_has_a_ttl().await;
            if v.backend.redis_store().is_some() {
                assert_eq!(n, 1, "one session, one key");
            }
        }
    });
}
