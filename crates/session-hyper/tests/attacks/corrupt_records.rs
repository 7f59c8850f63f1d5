//! A corrupt or foreign record is a new session, never a 500 loop (Redis: records written
//! behind the store's back in either format).

use session_core::driver::SessionId;

use super::*;

#[test]
fn corrupt_and_foreign_records_start_a_new_session() {
    use session_store_redis::Format;
    attack(|secrets| async move {
        let url = redis::shared_url();
        let cases: &[(Format, &str, &[&[&str]])] = &[
            (
                Format::V1,
                "unknown version",
                &[&["HSET", "{k}", "_v", "2"]],
            ),
            (
                Format::V1,
                "bad meta",
                &[&["HSET", "{k}", "_m", "yesterday"]],
            ),
            (
                Format::V1,
                "bad JSON value",
                &[&["HSET", "{k}", "d:user", "{"]],
            ),
            (Format::V1, "no meta", &[&["HDEL", "{k}", "_m"]]),
            (
                Format::V1,
                "a string",
                &[&["DEL", "{k}"], &["SET", "{k}", "garbage"]],
            ),
            (
                Format::V1,
                "a list",
                &[&["DEL", "{k}"], &["RPUSH", "{k}", "a", "b"]],
            ),
            (Format::Koa, "not JSON", &[&["SET", "{k}", "not json"]]),
            (Format::Koa, "a JSON array", &[&["SET", "{k}", "[1,2]"]]),
            (
                Format::Koa,
                "a hash",
                &[&["DEL", "{k}"], &["HSET", "{k}", "a", "b"]],
            ),
        ];
        for (format, what, commands) in cases {
            let koa = *format == Format::Koa;
            let backend = Backend::new(if koa { Kind::RedisKoa } else { Kind::RedisV1 }).await;
            let store = backend.redis_store().unwrap();
            let cfg = config(|b| if koa { b.koa_compat(true) } else { b });
            let derive = cfg.key_derivation().clone();
            let app = App::serve(backend.layer(cfg).build().unwrap()).await;
            let user = unique("grace");
            secrets.add(&user);
            let jar = app.logged_in(&user, &secrets).await;
            let id = SessionId::new_unchecked(jar.id().unwrap().to_owned());
            let key = store.redis_key(&derive.derive(&id));
            assert_eq!(redis::int(&url, &["EXISTS", &key]).await, 1);
            for c in *commands {
                let args: Vec<String> = c.iter().map(|a| a.replace("{k}", &key)).collect();
                let args: Vec<&str> = args.iter().map(String::as_str).collect();
                redis::cmd(&url, &args).await;
            }
            let mut fives = 0;
            for i in 0..10 {
                let r = app.get("/session", &jar).await;
                fives += usize::from(r.status >= 500);
                assert_eq!(r.is_new(), Some(true), "{what}: a new session");
                assert!(!r.body.contains(&user));
                if i == 0 {
                    assert!(r.removes(), "{what}: the dead cookie is removed");
                    assert_eq!(
                        redis::int(&url, &["EXISTS", &key]).await,
                        0,
                        "{what}: record deleted"
                    );
                }
            }
            // And the browser carries on with a fresh session.
            let r = app.get("/", &jar).await;
            assert_eq!((r.status, r.body.as_str()), (200, "1 views"), "{what}");
            assert!(r.sets_id().is_some());
            eprintln!("redis {format:?}, {what}: 10 requests, {fives} answered 5xx");
            assert_eq!(fives, 0, "{what}");
        }
    });
}
