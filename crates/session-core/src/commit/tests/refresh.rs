//! The cookie refresh threshold: which saves send the store-mode cookie again.
use super::*;
use proptest::prelude::*;

fn meta(expire: Option<u64>, max_age: MaxAge) -> Meta {
    Meta {
        expire,
        max_age,
        created: None,
    }
}

#[test]
fn a_save_within_the_step_keeps_the_cookie_and_one_past_it_sends_it() {
    let c = cfg(|b| b);
    // The step is 1 % of a day: 864 s.
    let step = DAY / 100;
    let mut s = stored(&c, json!({"n": 1}), NOW + DAY);
    s.insert("n", 2).unwrap();
    let at = |now: u64| decide(Some(&s), &c, now);
    let p = at(NOW + 1000);
    assert_eq!((p.action, p.row), (Action::Save, Row::Changed));
    assert_eq!(
        p.meta.expire,
        Some(NOW + 1000 + DAY),
        "the server's expiry stays exact"
    );
    assert!(!p.send_cookie);
    // Wherever the step boundary falls, moving the expiry by a whole step crosses it.
    assert!(at(NOW + step).send_cookie);
    assert!(at(NOW + 5 * step).send_cookie);
}

#[test]
fn koa_compat_rolling_zero_and_a_new_max_age_send_on_every_save() {
    for c in [
        cfg(|b| b.koa_compat(true)),
        cfg(|b| b.cookie_refresh(0.0)),
        cfg(|b| b.rolling(true)),
    ] {
        let mut s = stored(&c, json!({"n": 1}), NOW + DAY);
        s.insert("n", 2).unwrap();
        let p = decide(Some(&s), &c, NOW + 1);
        assert_eq!(p.action, Action::Save);
        assert!(p.send_cookie, "{c:?}");
    }
    let c = cfg(|b| b);
    let mut s = stored(&c, json!({"n": 1}), NOW + DAY);
    s.set_max_age(MaxAge::Ms(2 * DAY));
    assert!(decide(Some(&s), &c, NOW + 1).send_cookie);
    let mut s = stored(&c, json!({"n": 1}), NOW + DAY);
    s.set_max_age(MaxAge::Session);
    assert!(decide(Some(&s), &c, NOW + 1).send_cookie);
}

#[test]
fn a_save_under_a_rotated_key_or_a_new_max_age_sends_at_once() {
    let c = cfg(|b| b);
    // A cookie signed with an older key, and a data change in the same request.
    let mut s = stored(&c, json!({"n": 1}), NOW + DAY);
    s.set_resign(true);
    s.insert("n", 2).unwrap();
    let p = decide(Some(&s), &c, NOW + 1000);
    assert_eq!((p.action, p.row), (Action::Save, Row::Changed));
    assert!(p.send_cookie, "the re-sign waits for no step");
    // A max-age shortened by ten minutes, five minutes after the last save: the expiry moves
    // less than a step, the cookie's Max-Age changes.
    let mut s = stored(&c, json!({"n": 1}), NOW + DAY);
    s.set_max_age(MaxAge::Ms(DAY - 600_000));
    let p = decide(Some(&s), &c, NOW + 300_000);
    assert_eq!(p.row, Row::Forced);
    assert!(p.send_cookie);
    // A plain save() of the same session without either sends nothing new.
    let mut s = stored(&c, json!({"n": 1}), NOW + DAY);
    s.save();
    assert!(!decide(Some(&s), &c, NOW + 1000).send_cookie);
}

#[test]
fn every_other_write_sends_the_cookie() {
    let c = cfg(|b| b.renew(true));
    // A new session, a regenerate, a renew's touch and a re-sign all send it.
    let mut fresh = SessionState::start(&c, Source::None);
    fresh.insert("n", 1).unwrap();
    assert!(decide(Some(&fresh), &c, NOW).send_cookie);
    let mut s = stored(&c, json!({"n": 1}), NOW + DAY);
    s.regenerate();
    assert!(decide(Some(&s), &c, NOW).send_cookie);
    let s = stored(&c, json!({"n": 1}), NOW + DAY / 4);
    let p = decide(Some(&s), &c, NOW);
    assert_eq!(p.row, Row::Renew);
    assert!(p.send_cookie);
}

#[test]
fn browser_session_cookies_are_not_resent_for_expiry() {
    let c = cfg(|b| b.max_age(MaxAge::Session));
    assert!(!cookie_moves(
        &meta(None, MaxAge::Session),
        &meta(None, MaxAge::Session),
        &c
    ));
    assert!(cookie_moves(
        &meta(None, MaxAge::Session),
        &meta(Some(NOW), MaxAge::Ms(DAY)),
        &c
    ));
}

proptest! {
    /// Over any sequence of saves, the browser's cookie (the expiry last sent) never runs a
    /// whole step behind the record's exact expiry, and it is sent at most once per step of
    /// time passed (plus the first).
    #[test]
    fn the_browser_never_falls_a_step_behind(
        max_age in 1_000u64..400 * DAY,
        ppm in 1u32..=500_000,
        gaps in proptest::collection::vec(0u64..(DAY / 10), 1..200),
    ) {
        let c = cfg(|b| b.cookie_refresh(f64::from(ppm) / 1e6));
        let step = u64::try_from(u128::from(max_age) * u128::from(c.refresh_ppm) / 1_000_000)
            .unwrap()
            .max(1);
        let mut now = NOW;
        let mut record = meta(Some(now + max_age), MaxAge::Ms(max_age));
        let mut browser = record.expire.unwrap();
        let mut sends = 0u64;
        for gap in gaps {
            now += gap;
            let next = meta(Some(now + max_age), MaxAge::Ms(max_age));
            if cookie_moves(&record, &next, &c) {
                browser = now + max_age;
                sends += 1;
            }
            record = next;
            let behind = record.expire.unwrap() - browser;
            prop_assert!(behind < step, "the browser is {behind} ms behind, step {step}");
        }
        prop_assert!(sends <= (now - NOW) / step + 1, "{sends} sends over {} ms", now - NOW);
    }
}
