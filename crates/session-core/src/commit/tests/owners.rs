//! The owner index in the commit decision: written before the record when the session
//! is bound or regenerated, or when the write would move its expiry past the entry's,
//! and never for a session without an owner.
use super::*;
use crate::owner::{OWNER_KEY, index_slack_ms};
use crate::session::SessionError;

fn bound(c: &Config, expire: u64, owner: serde_json::Value) -> SessionState {
    SessionState::start(
        c,
        Source::Store {
            id: c.ids().generate().unwrap(),
            record: Loaded::Live(Record {
                data: json!({"v": 1, OWNER_KEY: owner})
                    .as_object()
                    .unwrap()
                    .clone(),
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
fn binding_a_new_session_indexes_it_before_the_create() {
    let c = cfg(|b| b);
    let mut s = SessionState::start(&c, Source::None);
    s.set_owner("user-42", Some("Firefox")).unwrap();
    assert!(s.is_populated() && s.data().is_empty());
    let p = prepare(Some(&mut s), &c, NOW);
    assert_eq!(p.action, Action::Create);
    let b = p.index.expect("a bound session is indexed");
    assert_eq!((b.owner.as_str(), b.since), ("user-42", NOW));
    assert_eq!(b.indexed_until, NOW + p.ttl_ms + index_slack_ms(p.ttl_ms));
    assert_eq!(s.delta().set[0].0, OWNER_KEY);
    assert!(s.to_record().data.contains_key(OWNER_KEY));
}

#[test]
fn sessions_without_an_owner_never_touch_the_index() {
    let c = cfg(|b| b.rolling(true));
    let mut s = stored(&c, json!({"v": 1}), NOW + DAY);
    s.insert("v", 2).unwrap();
    assert_eq!(prepare(Some(&mut s), &c, NOW).index, None);
    let mut s = stored(&c, json!({"v": 1}), NOW + DAY);
    assert_eq!(prepare(Some(&mut s), &c, NOW).index, None);
}

#[test]
fn a_rolling_session_refreshes_its_entry_only_when_the_record_would_outlive_it() {
    let c = cfg(|b| b.rolling(true));
    let ttl = DAY + STORE_TTL_MARGIN_MS;
    let ahead = json!({"o": "u", "c": 1, "i": NOW + ttl + 1});
    let mut s = bound(&c, NOW + DAY - 5, ahead);
    let p = prepare(Some(&mut s), &c, NOW);
    assert_eq!((p.action, p.index), (Action::Touch, None));
    assert_eq!(s.owner(), Some("u"));
    assert!(
        s.data().get(OWNER_KEY).is_none(),
        "the binding is not user data"
    );

    let behind = json!({"o": "u", "c": 1, "i": NOW + ttl - 1});
    let mut s = bound(&c, NOW + DAY - 5, behind);
    let p = prepare(Some(&mut s), &c, NOW);
    assert_eq!(
        p.action,
        Action::Save,
        "the record must carry the new entry time"
    );
    let b = p.index.expect("refreshed");
    assert_eq!(b.since, 1, "the bind time is kept");
    assert_eq!(b.indexed_until, NOW + ttl + index_slack_ms(ttl));
}

#[test]
fn a_regenerated_owned_session_is_indexed_under_its_new_id_and_the_old_entry_named() {
    let c = cfg(|b| b);
    let mut s = bound(&c, NOW + DAY, json!({"o": "u", "c": 1, "i": NOW + 2 * DAY}));
    s.regenerate();
    let p = prepare(Some(&mut s), &c, NOW);
    assert_eq!(p.action, Action::Regenerate);
    assert!(p.index.is_some());
    assert_eq!(p.retire.unwrap().owner.as_deref(), Some("u"));
}

#[test]
fn a_destroyed_owned_session_names_its_owner_for_the_index() {
    let c = cfg(|b| b);
    let mut s = bound(&c, NOW + DAY, json!({"o": "u", "c": 1, "i": NOW + 2 * DAY}));
    s.destroy();
    let p = prepare(Some(&mut s), &c, NOW);
    assert_eq!((p.action, p.index), (Action::Destroy, None));
    assert_eq!(p.retire.unwrap().owner.as_deref(), Some("u"));
}

#[test]
fn a_session_changes_owner_only_under_a_new_id() {
    let c = cfg(|b| b);
    let mut s = bound(&c, NOW + DAY, json!({"o": "u", "c": 1, "i": NOW + 2 * DAY}));
    assert!(matches!(
        s.set_owner("v", None),
        Err(SessionError::OwnerChange)
    ));
    s.set_owner("u", Some("phone")).unwrap();
    s.regenerate();
    s.set_owner("v", None).unwrap();
    assert_eq!(s.owner(), Some("v"));
    assert!(s.set_owner("", None).is_err());
    assert!(
        s.insert(OWNER_KEY, 1).is_err(),
        "the binding's key is reserved"
    );
}

#[test]
fn a_foreign_binding_is_dropped_not_trusted() {
    let c = cfg(|b| b);
    let s = bound(&c, NOW + DAY, json!({"owner": "someone"}));
    assert_eq!(s.owner(), None);
    assert!(s.data().get(OWNER_KEY).is_none());
}

/// The lineage a regenerate's record carries is server-written: a handler can't set the
/// binding's key; a write that refreshes the binding keeps it, as does binding again to the
/// same owner; binding to another owner (after a regenerate) starts without it.
#[test]
fn the_lineage_is_kept_by_later_writes_and_never_set_by_a_handler() {
    use crate::owner::Handle;
    let c = cfg(|b| b.rolling(true));
    let ttl = DAY + STORE_TTL_MARGIN_MS;
    let old = Handle::of(&crate::id::StoreKey::from_raw("sess:old"));
    let binding = json!({"o": "u", "c": 1, "i": NOW + ttl - 1, "p": [old.as_str()]});
    let mut s = bound(&c, NOW + DAY - 5, binding.clone());
    assert!(matches!(
        s.insert(OWNER_KEY, json!({"o": "u", "c": 1, "p": []})),
        Err(SessionError::ReservedKey(_))
    ));
    s.set_owner("u", None).unwrap();
    let p = prepare(Some(&mut s), &c, NOW);
    assert_eq!(p.action, Action::Save, "the entry is refreshed");
    let (key, written) = &s.delta().set[0];
    assert_eq!(key, OWNER_KEY);
    assert_eq!(written["p"], json!([old.as_str()]), "{written}");

    let mut s = bound(&c, NOW + DAY - 5, binding);
    s.regenerate();
    s.set_owner("someone else", None).unwrap();
    s.descend_from(Handle::of(&crate::id::StoreKey::from_raw("sess:mid")));
    let p = prepare(Some(&mut s), &c, NOW);
    assert_eq!(p.action, Action::Regenerate);
    let stored = &s.to_record().data[OWNER_KEY];
    let lineage = crate::owner::Binding::from_value(stored).unwrap().lineage;
    assert_eq!(
        lineage.len(),
        1,
        "a new owner's binding names only the id it replaced"
    );
}
