//! Property tests for change tracking and the commit decision.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use proptest::prelude::*;
use serde_json::{Value, json};
use session_core::driver::{SessionDriver, Source};
use session_core::driver::{commit, commit::Action};
use session_core::store::{Loaded, Meta, Record};
use session_core::{Config, Data, ManualClock, MaxAge, SessionState};

const NOW: u64 = 1_700_000_000_000;
const DAY: u64 = 86_400_000;

#[derive(Debug, Clone)]
enum Op {
    Insert(String, Value),
    Remove(String),
    Clear,
    Regenerate,
    Save,
}

fn key() -> impl Strategy<Value = String> {
    prop::sample::select(vec!["a", "b", "c", "d", "é"]).prop_map(str::to_owned)
}

fn value() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(json!(null)),
        Just(json!(1)),
        Just(json!(2)),
        Just(json!("x")),
        Just(json!([1, 2])),
        Just(json!({"n": {"m": 1}})),
        Just(json!({})),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (key(), value()).prop_map(|(k, v)| Op::Insert(k, v)),
        3 => key().prop_map(Op::Remove),
        1 => Just(Op::Clear),
    ]
}

/// The lifecycle calls too (no destroy: the tests that take these decide about it).
fn lifecycle_op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => op(),
        1 => Just(Op::Regenerate),
        1 => Just(Op::Save),
    ]
}

fn data() -> impl Strategy<Value = Data> {
    prop::collection::vec((key(), value()), 0..5).prop_map(|kv| kv.into_iter().collect())
}

fn apply(s: &mut SessionState, ops: &[Op]) {
    for op in ops {
        match op {
            Op::Insert(k, v) => s.insert_value(k, v.clone()).unwrap(),
            Op::Remove(k) => {
                s.remove(k);
            }
            Op::Clear => s.clear(),
            Op::Regenerate => s.regenerate(),
            Op::Save => s.save(),
        }
    }
}

fn config(rolling: bool, renew: bool, guest: bool) -> Config {
    Config::builder()
        .key([9u8; 32].to_vec())
        .rolling(rolling)
        .renew(renew)
        .guest(guest)
        .clock(Arc::new(ManualClock::new(NOW)))
        .build()
        .unwrap()
}

fn loaded(c: &Config, data: Data, expire: u64) -> SessionState {
    SessionState::start(
        c,
        Source::Store {
            id: c.ids().generate().unwrap(),
            record: Loaded::Live(Record {
                data,
                meta: Meta {
                    expire: Some(expire),
                    max_age: MaxAge::Ms(DAY),
                    created: Some(NOW - 1),
                },
            }),
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// "Did anything change?" has no false positives and no false negatives (value equality).
    #[test]
    fn has_changed_iff_data_differs(base in data(), ops in prop::collection::vec(op(), 0..12)) {
        let c = config(false, false, false);
        let mut s = loaded(&c, base.clone(), NOW + DAY);
        apply(&mut s, &ops);
        prop_assert_eq!(s.has_changed(), s.data() != &base);
    }

    /// Applying the delta to the stored record reproduces the session's data, and a key is
    /// never both set and removed.
    #[test]
    fn delta_reproduces_data(base in data(), ops in prop::collection::vec(op(), 0..12)) {
        let c = config(false, false, false);
        let mut s = loaded(&c, base.clone(), NOW + DAY);
        apply(&mut s, &ops);
        let delta = s.delta();
        let mut stored = Record { data: base.clone(), meta: *s.meta() };
        stored.apply(&delta, s.data(), *s.meta());
        prop_assert_eq!(&stored.data, s.data());
        for (k, _) in &delta.set {
            prop_assert!(!delta.removed.contains(k));
        }
        prop_assert_eq!(delta.is_empty(), !s.has_changed());
    }

    /// Merging two deltas made from the same base on disjoint keys keeps both.
    #[test]
    fn disjoint_deltas_both_land(base in data(), va in value(), vb in value()) {
        let c = config(false, false, false);
        let mut a = loaded(&c, base.clone(), NOW + DAY);
        let mut b = loaded(&c, base.clone(), NOW + DAY);
        a.insert_value("left", va.clone()).unwrap();
        b.insert_value("right", vb.clone()).unwrap();
        let mut stored = Record { data: base, meta: *a.meta() };
        stored.apply(&a.delta(), a.data(), *a.meta());
        stored.apply(&b.delta(), b.data(), *b.meta());
        prop_assert_eq!(stored.data.get("left"), Some(&va));
        prop_assert_eq!(stored.data.get("right"), Some(&vb));
    }

    /// A new session left empty never writes a record (guest mode may only send a cookie).
    #[test]
    fn new_and_empty_never_writes(
        rolling: bool, renew: bool, guest: bool,
        ops in prop::collection::vec(op(), 0..8),
    ) {
        let c = config(rolling, renew, guest);
        let mut s = SessionState::start(&c, Source::None);
        apply(&mut s, &ops);
        if s.is_empty() {
            let plan = commit::decide(Some(&s), &c, NOW);
            let allowed = if guest { Action::WriteCookie } else { Action::Nothing };
            prop_assert_eq!(plan.action, allowed);
        }
    }

    /// Unchanged and neither rolling, renew, forced nor re-signing: never writes.
    #[test]
    fn unchanged_and_not_rolling_never_writes(
        base in data(), renew_window in 0u64..DAY, ops in prop::collection::vec(op(), 0..8),
    ) {
        let c = config(false, false, false);
        let mut s = loaded(&c, base, NOW + renew_window);
        apply(&mut s, &ops);
        if !s.has_changed() {
            prop_assert_eq!(commit::decide(Some(&s), &c, NOW).action, Action::Nothing);
        }
    }

    /// A destroyed session (nothing stored afterwards) is never saved, only destroyed.
    #[test]
    fn destroyed_never_saves(
        rolling: bool, renew: bool, guest: bool, base in data(),
        before in prop::collection::vec(op(), 0..6),
    ) {
        let c = config(rolling, renew, guest);
        let mut s = loaded(&c, base, NOW + DAY / 4);
        apply(&mut s, &before);
        s.save();
        s.destroy();
        let plan = commit::decide(Some(&s), &c, NOW);
        prop_assert_eq!(plan.action, Action::Destroy);
    }

    /// `regenerate()` of a session that holds nothing never creates a record, whatever else
    /// happened in the request (unless `save()` forces one, as in koa).
    #[test]
    fn empty_regenerate_never_creates(
        guest: bool, loaded_first: bool, base in data(),
        ops in prop::collection::vec(lifecycle_op(), 0..8),
    ) {
        let c = config(false, false, guest);
        let mut s = if loaded_first {
            loaded(&c, base, NOW + DAY)
        } else {
            SessionState::start(&c, Source::None)
        };
        apply(&mut s, &ops);
        s.regenerate();
        if s.is_empty() && !ops.iter().any(|o| matches!(o, Op::Save)) {
            let plan = commit::decide(Some(&s), &c, NOW);
            prop_assert!(
                !matches!(plan.action, Action::Create | Action::Regenerate | Action::Save),
                "an empty regenerate wrote: {:?}", plan
            );
        }
    }

    /// A request that carries a superseded id, or too many session cookies, writes nothing and
    /// sends no cookie (not even a removal) unless the handler destroys or regenerates.
    #[test]
    fn stale_requests_leave_everything_alone(
        rolling: bool, renew: bool, guest: bool, ambiguous: bool,
        ops in prop::collection::vec(op(), 0..8), force: bool,
    ) {
        let c = config(rolling, renew, guest);
        let source = if ambiguous {
            Source::Ambiguous
        } else {
            Source::Store { id: c.ids().generate().unwrap(), record: Loaded::Superseded }
        };
        let mut s = SessionState::start(&c, source);
        prop_assert!(s.is_stale() && s.is_new() && s.is_empty());
        apply(&mut s, &ops);
        if force { s.save(); }
        prop_assert_eq!(commit::decide(Some(&s), &c, NOW).action, Action::Nothing);
    }

    /// Once a commit's write is recorded, the same request has nothing more to write.
    #[test]
    fn at_most_one_write_per_request(
        rolling: bool, renew: bool, base in data(), left in 0u64..DAY,
        ops in prop::collection::vec(op(), 0..8), force: bool, regen: bool,
    ) {
        let c = config(rolling, renew, false);
        let mut s = loaded(&c, base, NOW + left);
        apply(&mut s, &ops);
        if force { s.save(); }
        if regen { s.regenerate(); }
        let plan = commit::decide(Some(&s), &c, NOW);
        if plan.action != Action::Nothing {
            if plan.action == Action::Regenerate || plan.action == Action::Create {
                s.assign_id(c.ids().generate().unwrap());
            }
            s.mark_committed(Some(plan.meta));
            let again = commit::decide(Some(&s), &c, NOW);
            prop_assert_eq!(again.action, Action::Nothing, "second plan {:?}", again);
        }
    }

    /// Writes always carry a positive TTL that outlives the cookie; touches only happen under
    /// rolling or renew.
    #[test]
    fn writes_have_a_ttl_beyond_the_cookie(
        rolling: bool, renew: bool, base in data(), left in 0u64..DAY,
        ops in prop::collection::vec(op(), 0..8),
    ) {
        let c = config(rolling, renew, false);
        let mut s = loaded(&c, base, NOW + left);
        apply(&mut s, &ops);
        let plan = commit::decide(Some(&s), &c, NOW);
        if matches!(plan.action, Action::Create | Action::Save | Action::Touch | Action::Regenerate) {
            let expire = plan.meta.expire.unwrap();
            prop_assert!(expire > NOW);
            prop_assert!(plan.ttl_ms >= expire - NOW + 10_000);
        }
        if plan.action == Action::Touch {
            prop_assert!(rolling || renew);
        }
    }
}
