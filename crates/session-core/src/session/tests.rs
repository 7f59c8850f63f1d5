//! Unit tests of `session`.

use super::*;
use crate::clock::ManualClock;
use crate::config::Config;
use crate::driver::SessionDriver;
use crate::events::EventKind;
use crate::expiry::CLOCK_SKEW_MS;
use crate::store::Loaded;
use serde_json::json;
use std::sync::Arc;

fn config() -> Config {
    Config::builder()
        .key([1u8; 32].to_vec())
        .clock(Arc::new(ManualClock::new(1_000_000)))
        .build()
        .unwrap()
}

fn loaded(data: Value) -> SessionState {
    let Value::Object(data) = data else { panic!() };
    let c = config();
    SessionState::start(
        &c,
        Source::Cookie(Record {
            data,
            meta: Meta {
                expire: Some(2_000_000),
                max_age: MaxAge::Ms(86_400_000),
                created: Some(1),
            },
        }),
    )
}

#[test]
fn reserved_keys_are_rejected() {
    let mut s = loaded(json!({}));
    assert!(matches!(
        s.insert("_expire", 1),
        Err(SessionError::ReservedKey(k)) if k == "_expire"
    ));
    assert!(!s.has_changed());
}

#[test]
fn equal_insert_is_no_change_and_revert_is_no_change() {
    let mut s = loaded(json!({"a": 1, "b": [1, 2]}));
    s.insert("a", 1).unwrap();
    s.insert("b", json!([1, 2])).unwrap();
    assert!(!s.has_changed());
    s.insert("a", 2).unwrap();
    assert!(s.has_changed());
    s.insert("a", 1).unwrap();
    assert!(!s.has_changed());
    s.remove("b");
    s.insert("b", vec![1, 2]).unwrap();
    assert!(!s.has_changed());
    assert!(s.delta().is_empty());
}

#[test]
fn delta_names_set_and_removed_keys() {
    let mut s = loaded(json!({"a": 1, "b": 2, "c": 3}));
    s.insert("a", 10).unwrap();
    s.remove("b");
    s.insert("d", "x").unwrap();
    let d = s.delta();
    assert!(!d.replace);
    assert_eq!(
        d.set,
        vec![("a".into(), json!(10)), ("d".into(), json!("x"))]
    );
    assert_eq!(d.removed, vec!["b".to_owned()]);
}

#[test]
fn clear_replaces() {
    let mut s = loaded(json!({"a": 1}));
    s.clear();
    s.insert("z", 1).unwrap();
    let d = s.delta();
    assert!(d.replace);
    assert_eq!(d.removed, vec!["a".to_owned()]);
}

#[test]
fn typed_get() {
    let s = loaded(json!({"n": 3, "s": "x"}));
    assert_eq!(s.get::<u8>("n").unwrap(), Some(3));
    assert_eq!(s.get::<u8>("missing").unwrap(), None);
    assert!(s.get::<u8>("s").is_err());
}

#[test]
fn expired_record_gives_new_session_and_event() {
    let events = Arc::new(std::sync::Mutex::new(Vec::new()));
    let ev = events.clone();
    let clock = ManualClock::new(5_000);
    let c = Config::builder()
        .key([1u8; 32].to_vec())
        .clock(Arc::new(clock.clone()))
        .hooks(crate::Hooks::new().on_event(move |e| ev.lock().unwrap().push(e.kind.clone())))
        .build()
        .unwrap();
    let rec = |expire| Record {
        data: json!({"a": 1}).as_object().unwrap().clone(),
        meta: Meta {
            expire: Some(expire),
            max_age: MaxAge::Ms(10),
            created: Some(0),
        },
    };
    // `_expire == now` is still alive (koa's strict `<`).
    assert!(!SessionState::start(&c, Source::Cookie(rec(5_000))).is_new());
    let s = SessionState::start(&c, Source::Cookie(rec(4_999)));
    assert!(s.is_new() && !s.is_populated());
    assert!(s.retired().is_some());
    assert_eq!(*events.lock().unwrap(), vec![EventKind::Expired]);
}

#[test]
fn cookie_payloads_from_the_future_are_tampered() {
    let events = Arc::new(std::sync::Mutex::new(Vec::new()));
    let ev = events.clone();
    let now = 1_000_000_000;
    let c = Config::builder()
        .key([1u8; 32].to_vec())
        .clock(Arc::new(ManualClock::new(now)))
        .hooks(crate::Hooks::new().on_event(move |e| ev.lock().unwrap().push(e.kind.clone())))
        .build()
        .unwrap();
    let day = 86_400_000;
    let rec = |expire: Option<u64>, max_age, created: Option<u64>| Record {
        data: json!({"user": 1}).as_object().unwrap().clone(),
        meta: Meta {
            expire,
            max_age,
            created,
        },
    };
    let starts = |r: Record| !SessionState::start(&c, Source::Cookie(r)).is_new();
    // What we write (now + max-age, clock skew allowed) is accepted...
    assert!(starts(rec(Some(now + day), MaxAge::Ms(day), None)));
    assert!(starts(rec(
        Some(now + day + CLOCK_SKEW_MS),
        MaxAge::Ms(day),
        Some(now)
    )));
    // ...anything further ahead than its max-age allows is not.
    assert!(!starts(rec(
        Some(now + day + CLOCK_SKEW_MS + 1),
        MaxAge::Ms(day),
        None
    )));
    let years = 10 * 365 * day;
    assert!(!starts(rec(
        Some(now + 2 * 365 * day),
        MaxAge::Ms(years),
        None
    )));
    assert!(!starts(rec(
        Some(now + day),
        MaxAge::Ms(day),
        Some(now + CLOCK_SKEW_MS + 1)
    )));
    assert_eq!(events.lock().unwrap().len(), 3);
    assert!(
        events
            .lock()
            .unwrap()
            .iter()
            .all(|e| *e == EventKind::Invalid)
    );
    // Store records are the server's own writing: not subject to this check.
    let far = rec(Some(now + 2 * 365 * day), MaxAge::Ms(years), None);
    let id = c.ids().generate().unwrap();
    let s = SessionState::start(
        &c,
        Source::Store {
            id,
            record: Loaded::Live(far),
        },
    );
    assert!(!s.is_new());
}

#[test]
fn absolute_lifetime_expires_even_with_fresh_expire() {
    let clock = ManualClock::new(10_000);
    let c = Config::builder()
        .key([1u8; 32].to_vec())
        .clock(Arc::new(clock.clone()))
        .absolute_lifetime(std::time::Duration::from_secs(5))
        .build()
        .unwrap();
    let rec = |created| Record {
        data: Data::new(),
        meta: Meta {
            expire: Some(1_000_000),
            max_age: MaxAge::Ms(1_000_000),
            created: Some(created),
        },
    };
    assert!(!SessionState::start(&c, Source::Cookie(rec(5_000))).is_new());
    assert!(SessionState::start(&c, Source::Cookie(rec(4_999))).is_new());
}

#[test]
fn invalid_hook_discards_session() {
    let c = Config::builder()
        .key([1u8; 32].to_vec())
        .hooks(crate::Hooks::new().valid(|d| !d.contains_key("banned")))
        .build()
        .unwrap();
    let rec = |v: Value| Record {
        data: v.as_object().unwrap().clone(),
        meta: Meta {
            expire: None,
            max_age: MaxAge::Session,
            created: None,
        },
    };
    assert!(!SessionState::start(&c, Source::Cookie(rec(json!({"ok": 1})))).is_new());
    assert!(SessionState::start(&c, Source::Cookie(rec(json!({"banned": 1})))).is_new());
}

#[test]
fn missed_id_is_retired_unless_guest() {
    let c = config();
    let id = c.ids().generate().unwrap();
    let s = SessionState::start(
        &c,
        Source::Store {
            id: id.clone(),
            record: Loaded::Missing,
        },
    );
    assert!(s.id().is_none());
    assert_eq!(s.retired().unwrap().id.as_ref(), Some(&id));
    let g = Config::builder()
        .key([1u8; 32].to_vec())
        .guest(true)
        .build()
        .unwrap();
    let s = SessionState::start(
        &g,
        Source::Store {
            id: id.clone(),
            record: Loaded::Missing,
        },
    );
    assert_eq!(s.id(), Some(&id));
    assert!(s.retired().is_none() && s.is_new());
}

#[test]
fn destroy_then_repopulate_is_a_new_session() {
    let mut s = loaded(json!({"user": 1}));
    s.destroy();
    assert!(s.is_destroyed() && s.is_new() && s.is_empty());
    s.insert("flash", "bye").unwrap();
    assert!(!s.is_destroyed());
    assert!(s.retired().is_some());
}

#[test]
fn set_max_age_forces_save() {
    let mut s = loaded(json!({}));
    s.set_max_age(MaxAge::Session);
    assert!(s.is_forced());
    assert_eq!(s.max_age(), MaxAge::Session);
}

#[test]
fn flash_messages_are_apart_from_the_data_and_tracked_per_key() {
    use crate::flash::{Level, Message};
    let key_a = "_flash.0000000000001.0000.00000000000000aa";
    let mut s = loaded(
        json!({ "views": 1, key_a: { "level": "info", "text": "Saved." },
        "_flash.0000000000002.0000.00000000000000bb": { "level": "loud", "text": 3 } }),
    );
    // Out of the handler's data; a corrupt entry is never shown.
    assert_eq!(s.data().len(), 1);
    assert!(s.is_populated());
    let shown = s.flash_messages();
    assert_eq!(shown.len(), 1);
    assert_eq!(shown[0].1, Message::new(Level::Info, "Saved."));
    assert!(!s.has_changed());
    // Taking one removes exactly that key; adding one sets exactly the new key.
    assert!(s.take_flash(key_a).is_some());
    let added = s.add_flash(&Message::new(Level::Success, "Done."), 5, 7);
    let delta = s.delta();
    assert!(!delta.replace);
    assert_eq!(delta.removed, vec![key_a.to_owned()]);
    assert_eq!(delta.set.len(), 1);
    assert_eq!(delta.set[0].0, added);
    assert!(s.stored_data().contains_key(&added));
    // Put back, the taken one is no change at all.
    let value = json!({ "level": "info", "text": "Saved." });
    s.restore_flash(key_a, value);
    assert_eq!(s.delta().removed, Vec::<String>::new());
    // A destroy ends them with the session, and says the identity was renewed.
    assert!(!s.identity_renewed());
    s.destroy();
    assert!(s.flash_messages().is_empty() && s.identity_renewed());
}

#[test]
fn a_session_holding_only_a_message_is_created() {
    use crate::flash::{Level, Message};
    let c = config();
    let mut s = SessionState::start(&c, Source::None);
    s.add_flash(&Message::new(Level::Info, "Bye."), 1, 1);
    let plan = crate::commit::decide(Some(&s), &c, 1_000_000);
    assert_eq!(plan.action, crate::commit::Action::Create);
    assert!(s.data().is_empty());
}

#[test]
fn the_csrf_secret_is_kept_apart_written_once_and_dropped_by_a_regenerate() {
    use crate::flash::{CSRF_KEY, Level, MAX_FLASH_MESSAGES, Message};
    let mut s = loaded(json!({ "views": 1, CSRF_KEY: "n1" }));
    assert_eq!(s.csrf_secret(), Some("n1"));
    assert!(!s.data().contains_key(CSRF_KEY));
    s.set_csrf_secret("n2");
    assert_eq!(s.csrf_secret(), Some("n1"), "written once");
    s.regenerate();
    assert_eq!(s.csrf_secret(), None);
    assert!(!s.stored_data().contains_key(CSRF_KEY));
    // A corrupt secret is none, and a new one replaces it.
    for corrupt in [json!(""), json!(123), json!({})] {
        let mut c = loaded(json!({ "views": 1, CSRF_KEY: corrupt }));
        assert_eq!(c.csrf_secret(), None);
        c.set_csrf_secret("n4");
        assert_eq!(c.csrf_secret(), Some("n4"));
    }
    // A secret alone does not make a session worth creating.
    let c = config();
    let mut fresh = SessionState::start(&c, Source::None);
    fresh.set_csrf_secret("n3");
    assert!(!fresh.is_populated());
    // The oldest messages go past the cap.
    for i in 0..(MAX_FLASH_MESSAGES as u64 + 5) {
        fresh.add_flash(&Message::new(Level::Info, format!("m{i}")), 1_000 + i, i);
    }
    let kept = fresh.flash_messages();
    assert_eq!(kept.len(), MAX_FLASH_MESSAGES);
    assert_eq!(kept[0].1.text, "m5");
}

#[test]
fn debug_shows_no_data_messages_secret_or_owner() {
    use crate::flash::{CSRF_KEY, Level, Message};
    let mut s = loaded(json!({ "user": "ada-lovelace", CSRF_KEY: "the-secret-nonce" }));
    s.add_flash(&Message::new(Level::Info, "a private note"), 1, 1);
    s.set_owner("owner-grace", Some("Firefox")).unwrap();
    let shown = format!("{s:?}");
    for secret in [
        "ada-lovelace",
        "the-secret-nonce",
        "a private note",
        "owner-grace",
        "Firefox",
    ] {
        assert!(!shown.contains(secret), "{secret} in {shown}");
    }
}

#[test]
fn records_and_deltas_show_keys_never_values_in_debug() {
    let mut s = loaded(json!({ "user": "ada-lovelace" }));
    s.insert("card", "4111-1111").unwrap();
    let shown = format!("{:?} {:?}", s.to_record(), s.delta());
    assert!(shown.contains("user") && shown.contains("card"), "{shown}");
    assert!(
        !shown.contains("ada-lovelace") && !shown.contains("4111"),
        "{shown}"
    );
}
