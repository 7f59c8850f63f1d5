//! One test per row of the table, named after it.
use super::*;
use crate::clock::ManualClock;
use crate::driver::SessionDriver;
use crate::expiry::MAX_AGE_CAP_MS;
use crate::record::{Data, Record};
use crate::session::Source;
use crate::store::Loaded;
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

const NOW: u64 = 1_700_000_000_000;
const DAY: u64 = 86_400_000;

fn cfg(f: impl FnOnce(crate::ConfigBuilder) -> crate::ConfigBuilder) -> Config {
    f(Config::builder()
        .key([3u8; 32].to_vec())
        .clock(Arc::new(ManualClock::new(NOW))))
    .build()
    .unwrap()
}

fn stored(c: &Config, data: serde_json::Value, expire: u64) -> SessionState {
    SessionState::start(
        c,
        Source::Store {
            id: c.ids().generate().unwrap(),
            record: Loaded::Live(Record {
                data: data.as_object().unwrap().clone(),
                meta: Meta {
                    expire: Some(expire),
                    max_age: MaxAge::Ms(DAY),
                    created: Some(NOW - 1000),
                },
            }),
        },
    )
}

#[test]
fn row1_not_accessed() {
    let p = decide(None, &cfg(|b| b.rolling(true)), NOW);
    assert_eq!((p.action, p.row), (Action::Nothing, Row::NotAccessed));
}

#[test]
fn row2_retired_and_rewritten_regenerate() {
    let c = cfg(|b| b);
    let mut s = stored(&c, json!({"user": 1}), NOW + DAY);
    let old = s.id().cloned();
    s.regenerate();
    let p = decide(Some(&s), &c, NOW);
    assert_eq!(
        (p.action, p.row),
        (Action::Regenerate, Row::RetiredAndRewritten)
    );
    assert_eq!(p.retire.unwrap().id, old);
    assert_eq!(p.meta.expire, Some(NOW + DAY));
    assert_eq!(p.ttl_ms, DAY + 10_000);
    // regenerate, then more changes: still a regenerate (the flag is kept).
    s.insert("role", "admin").unwrap();
    assert_eq!(decide(Some(&s), &c, NOW).action, Action::Regenerate);
}

#[test]
fn row2_retired_and_rewritten_expired_then_populated() {
    let c = cfg(|b| b);
    let mut s = stored(&c, json!({"user": 1}), NOW - 1);
    assert!(s.is_new());
    s.insert("views", 1).unwrap();
    let p = decide(Some(&s), &c, NOW);
    assert_eq!(
        (p.action, p.row),
        (Action::Regenerate, Row::RetiredAndRewritten)
    );
    // A missed id has no record to delete: a plain create.
    let mut m = SessionState::start(
        &c,
        Source::Store {
            id: c.ids().generate().unwrap(),
            record: Loaded::Missing,
        },
    );
    m.insert("views", 1).unwrap();
    let p = decide(Some(&m), &c, NOW);
    assert_eq!(
        (p.action, p.row),
        (Action::Create, Row::RetiredAndRewritten)
    );
}

#[test]
fn row1a_stale_writes_nothing_and_keeps_the_cookie() {
    let c = cfg(|b| b.rolling(true));
    let old = c.ids().generate().unwrap();
    let superseded = || {
        SessionState::start(
            &c,
            Source::Store {
                id: old.clone(),
                record: Loaded::Superseded,
            },
        )
    };
    for mut s in [superseded(), SessionState::start(&c, Source::Ambiguous)] {
        assert!(s.is_stale() && s.is_new() && !s.is_populated());
        s.insert("views", 1).unwrap();
        s.save();
        let p = decide(Some(&s), &c, NOW);
        assert_eq!((p.action, p.row), (Action::Nothing, Row::Stale));
    }
    // A logout with a superseded id ends the session it moved to: the old id is retired
    // with its (marker) record, so the destroy follows it.
    let mut s = superseded();
    s.destroy();
    let p = decide(Some(&s), &c, NOW);
    assert_eq!(p.action, Action::Destroy);
    let retired = p.retire.unwrap();
    assert_eq!(retired.id, Some(old.clone()));
    assert!(retired.record_exists && !retired.regenerated);
    // Planted cookies and a logout: removal cookies, nothing to delete.
    let mut a = SessionState::start(&c, Source::Ambiguous);
    a.destroy();
    let p = decide(Some(&a), &c, NOW);
    assert_eq!(p.action, Action::Destroy);
    assert!(!p.retire.unwrap().record_exists);
    // A fresh login on a stale request is a new session.
    let mut s = superseded();
    s.regenerate();
    s.insert("user", "ada").unwrap();
    let p = decide(Some(&s), &c, NOW);
    assert_eq!((p.action, p.retire), (Action::Create, None));
}

#[test]
fn regenerate_of_an_empty_session_writes_nothing() {
    let c = cfg(|b| b);
    // No identity: nothing at all (no record, no cookie).
    let mut n = SessionState::start(&c, Source::None);
    n.regenerate();
    assert_eq!(decide(Some(&n), &c, NOW).action, Action::Nothing);
    // A loaded session emptied and regenerated: the old id ends, nothing new is written.
    let mut s = stored(&c, json!({"a": 1}), NOW + DAY);
    s.clear();
    s.regenerate();
    let p = decide(Some(&s), &c, NOW);
    assert_eq!((p.action, p.row), (Action::Destroy, Row::Retired));
    // A guest's empty regenerate still gives no record.
    let g = cfg(|b| b.guest(true));
    let mut s = SessionState::start(&g, Source::None);
    s.regenerate();
    assert_eq!(decide(Some(&s), &g, NOW).action, Action::WriteCookie);
    // With data it is a create.
    let mut s = SessionState::start(&c, Source::None);
    s.regenerate();
    s.insert("user", "ada").unwrap();
    assert_eq!(decide(Some(&s), &c, NOW).action, Action::Create);
}

#[test]
fn regenerate_then_destroy_ends_for_good() {
    let c = cfg(|b| b);
    let mut s = stored(&c, json!({"user": 1}), NOW + DAY);
    s.regenerate();
    assert!(decide(Some(&s), &c, NOW).retire.unwrap().regenerated);
    s.destroy();
    s.insert("flash", "bye").unwrap();
    let p = decide(Some(&s), &c, NOW);
    assert_eq!(p.action, Action::Regenerate);
    assert!(
        !p.retire.unwrap().regenerated,
        "a destroy is not a supersede"
    );
}

#[test]
fn max_age_beyond_the_browser_cap_is_clamped_at_write() {
    let c = cfg(|b| b);
    let mut s = stored(&c, json!({"a": 1}), NOW + DAY);
    s.set_max_age(MaxAge::Ms(10 * 365 * DAY));
    let p = decide(Some(&s), &c, NOW);
    assert_eq!(p.meta.max_age, MaxAge::Ms(MAX_AGE_CAP_MS));
    assert_eq!(p.meta.expire, Some(NOW + MAX_AGE_CAP_MS));
    assert_eq!(p.ttl_ms, MAX_AGE_CAP_MS + STORE_TTL_MARGIN_MS);
    // A record another program wrote with a longer max-age is clamped when rolled.
    let long = Meta {
        expire: Some(NOW + 1000),
        max_age: MaxAge::Ms(10 * 365 * DAY),
        created: None,
    };
    let (meta, ttl) = extend(&long, None, DAY, NOW);
    assert_eq!(meta.expire, Some(NOW + MAX_AGE_CAP_MS));
    assert_eq!(ttl, MAX_AGE_CAP_MS + STORE_TTL_MARGIN_MS);
}

#[test]
fn row3_retired_destroy() {
    let c = cfg(|b| b.rolling(true));
    let mut s = stored(&c, json!({"user": 1}), NOW + DAY);
    s.destroy();
    let p = decide(Some(&s), &c, NOW);
    assert_eq!((p.action, p.row), (Action::Destroy, Row::Retired));
    assert!(p.retire.unwrap().record_exists);
    // Expired cookie, nothing new written: the stale record goes and the cookie is removed.
    let e = stored(&c, json!({"user": 1}), NOW - 1);
    assert_eq!(decide(Some(&e), &c, NOW).action, Action::Destroy);
    // destroy() on a visitor who brought nothing: nothing to do.
    let mut n = SessionState::start(&c, Source::None);
    n.destroy();
    assert_eq!(decide(Some(&n), &c, NOW).action, Action::Nothing);
}

#[test]
fn row4_forced() {
    let c = cfg(|b| b);
    let mut s = stored(&c, json!({"a": 1}), NOW + DAY);
    s.save();
    let p = decide(Some(&s), &c, NOW);
    assert_eq!((p.action, p.row), (Action::Save, Row::Forced));
    let mut n = SessionState::start(&c, Source::None);
    n.set_max_age(MaxAge::Ms(1000));
    let p = decide(Some(&n), &c, NOW);
    assert_eq!((p.action, p.row), (Action::Create, Row::Forced));
    assert_eq!(p.meta.expire, Some(NOW + 1000));
    assert_eq!(p.meta.max_age, MaxAge::Ms(1000));
}

#[test]
fn row5_new_and_empty() {
    let c = cfg(|b| b.rolling(true).renew(true));
    let s = SessionState::start(&c, Source::None);
    let p = decide(Some(&s), &c, NOW);
    assert_eq!((p.action, p.row), (Action::Nothing, Row::NewAndEmpty));
    let g = cfg(|b| b.guest(true));
    let s = SessionState::start(&g, Source::None);
    assert_eq!(decide(Some(&s), &g, NOW).action, Action::WriteCookie);
    // A returning guest keeps its id and gets no new cookie.
    let s = SessionState::start(
        &g,
        Source::Store {
            id: g.ids().generate().unwrap(),
            record: Loaded::Missing,
        },
    );
    assert_eq!(decide(Some(&s), &g, NOW).action, Action::Nothing);
}

#[test]
fn row6_changed() {
    let c = cfg(|b| b);
    let mut n = SessionState::start(&c, Source::None);
    n.insert("views", 1).unwrap();
    let p = decide(Some(&n), &c, NOW);
    assert_eq!((p.action, p.row), (Action::Create, Row::Changed));
    let mut s = stored(&c, json!({"views": 1}), NOW + DAY);
    s.insert("views", 2).unwrap();
    let p = decide(Some(&s), &c, NOW);
    assert_eq!((p.action, p.row), (Action::Save, Row::Changed));
    assert_eq!(p.meta.expire, Some(NOW + DAY));
}

#[test]
fn row7_rolling() {
    let c = cfg(|b| b.rolling(true));
    let s = stored(&c, json!({"views": 1}), NOW + 1000);
    let p = decide(Some(&s), &c, NOW);
    assert_eq!((p.action, p.row), (Action::Touch, Row::Rolling));
    assert_eq!(p.meta.expire, Some(NOW + DAY));
    // Back to back: the expiry written in this same millisecond can't move, and the cookie
    // is still sent again (koa's `rolling`).
    let s = stored(&c, json!({"views": 1}), NOW + DAY);
    let p = decide(Some(&s), &c, NOW);
    assert_eq!((p.action, p.row), (Action::Touch, Row::Rolling));
    assert!(p.send_cookie);
}

#[test]
fn row8_renew() {
    let c = cfg(|b| b.renew(true));
    // Exactly half left: not renewed (strict <).
    let s = stored(&c, json!({"v": 1}), NOW + DAY / 2);
    assert_eq!(decide(Some(&s), &c, NOW).row, Row::Unchanged);
    let s = stored(&c, json!({"v": 1}), NOW + DAY / 2 - 1);
    let p = decide(Some(&s), &c, NOW);
    assert_eq!((p.action, p.row), (Action::Touch, Row::Renew));
}

#[test]
fn row9_resign() {
    let c = cfg(|b| b);
    let mut s = stored(&c, json!({"v": 1}), NOW + 5000);
    s.set_resign(true);
    let p = decide(Some(&s), &c, NOW);
    assert_eq!((p.action, p.row), (Action::WriteCookie, Row::Resign));
    // Attributes kept: the cookie keeps its expiry, and the store's TTL is the time left.
    assert_eq!(p.meta.expire, Some(NOW + 5000));
    assert_eq!(p.ttl_ms, 5000 + STORE_TTL_MARGIN_MS);
}

#[test]
fn row10_unchanged() {
    let c = cfg(|b| b);
    let mut s = stored(&c, json!({"v": 1}), NOW + DAY);
    s.insert("v", 1).unwrap();
    let p = decide(Some(&s), &c, NOW);
    assert_eq!((p.action, p.row), (Action::Nothing, Row::Unchanged));
}

#[test]
fn absolute_lifetime_caps_expiry_and_stops_rolling_at_the_cap() {
    let c = cfg(|b| b.rolling(true).absolute_lifetime(Duration::from_secs(60)));
    let s = stored(&c, json!({"v": 1}), NOW + 1000);
    let p = decide(Some(&s), &c, NOW);
    // created = NOW - 1000, cap = created + 60 s.
    assert_eq!(p.meta.expire, Some(NOW - 1000 + 60_000));
    assert_eq!(p.meta.created, Some(NOW - 1000));
    assert_eq!(p.ttl_ms, 59_000 + 10_000);
    let at_cap = stored(&c, json!({"v": 1}), NOW - 1000 + 60_000);
    assert_eq!(decide(Some(&at_cap), &c, NOW).action, Action::Nothing);
}

#[test]
fn session_max_age_uses_session_ttl() {
    let c = cfg(|b| {
        b.max_age(MaxAge::Session)
            .session_ttl(Duration::from_secs(3600))
    });
    let mut n = SessionState::start(&c, Source::None);
    n.insert("a", 1).unwrap();
    let p = decide(Some(&n), &c, NOW);
    assert_eq!(p.meta.expire, None);
    assert_eq!(p.meta.max_age, MaxAge::Session);
    assert_eq!(p.ttl_ms, 3_600_000 + 10_000);
}

#[test]
fn save_resets_the_baseline_so_one_request_writes_once() {
    let c = cfg(|b| b);
    let mut s = stored(&c, json!({"v": 1}), NOW + DAY);
    s.insert("v", 2).unwrap();
    s.save();
    let p = decide(Some(&s), &c, NOW);
    assert_eq!(p.action, Action::Save);
    s.mark_committed(Some(p.meta));
    assert_eq!(decide(Some(&s), &c, NOW).action, Action::Nothing);
}

#[test]
fn before_save_changes_turn_touch_into_save() {
    let c = cfg(|b| {
        b.rolling(true).hooks(crate::Hooks::new().before_save(|s| {
            s.insert("seen", true).unwrap();
        }))
    });
    let mut s = stored(&c, json!({"v": 1}), NOW + 1000);
    let p = prepare(Some(&mut s), &c, NOW);
    assert_eq!(p.action, Action::Save);
    assert_eq!(s.get::<bool>("seen").unwrap(), Some(true));
    let _ = Data::new();
}

mod owners;
mod refresh;
