//! The session-limit part of the conformance suite: [`run_owner_admission`] checks a store's
//! [`OwnerIndex::admit`] against its contract, one call at a time and under racing logins.

use std::collections::HashSet;

use futures_util::future::join_all;

use super::Harness;
use super::key;
use super::owners::{entry, handles, index, list, now, owner, put, sorted};
use crate::id::StoreKey;
use crate::limit::{Admit, Admitted, OverLimit, SessionLimit};
use crate::owner::{Handle, IndexEntry};

/// Runs every admission check. Panics if the store keeps no owner index or can't admit.
pub async fn run_owner_admission<H: Harness>(h: &H) {
    assert!(
        index(h).admits(),
        "the store under test can't enforce a limit"
    );
    admits_up_to_the_limit_then_refuses(h).await;
    a_present_entry_counts_once(h).await;
    the_replaced_entry_is_not_counted(h).await;
    lapsed_and_dead_entries_make_room(h).await;
    end_oldest_removes_the_earliest_bound(h).await;
    a_refresh_never_brings_back_a_removed_entry(h).await;
    racing_logins_never_pass_the_limit(h, OverLimit::Refuse).await;
    racing_logins_never_pass_the_limit(h, OverLimit::EndOldest).await;
}

fn limit(max: usize, policy: OverLimit) -> SessionLimit {
    match SessionLimit::new(max, policy) {
        Ok(l) => l,
        Err(e) => panic!("limit: {e}"),
    }
}

fn decide(l: SessionLimit) -> Admit<'static> {
    Admit::Limit {
        limit: l,
        replaces: None,
        lapsed: &[],
        decide: true,
    }
}

async fn admit<H: Harness>(
    h: &H,
    owner: &str,
    e: &IndexEntry,
    until: u64,
    now: u64,
    how: Admit<'_>,
) -> Admitted {
    match index(h).admit(owner, e, until, now, how).await {
        Ok(a) => a,
        Err(err) => panic!("admit failed: {err}"),
    }
}

fn keys(name: &str, n: usize) -> Vec<StoreKey> {
    (0..n).map(|i| key(&format!("{name}{i}"))).collect()
}

fn full_handles(a: &Admitted) -> Vec<Handle> {
    match a {
        Admitted::Full(es) | Admitted::Ended(es) => {
            sorted(es.iter().map(|e| e.handle.clone()).collect())
        }
        other => panic!("expected entries back, got {other:?}"),
    }
}

/// Entries are filed while fewer than the limit are there; then a login is refused with the
/// entries counted, and nothing is written.
pub async fn admits_up_to_the_limit_then_refuses<H: Harness>(h: &H) {
    let o = owner("adm-refuse");
    let t = now();
    let ks = keys("adm-refuse", 3);
    let l = limit(2, OverLimit::Refuse);
    for k in &ks[..2] {
        let got = admit(h, &o, &entry(k, t, None), t + 60_000, t, decide(l)).await;
        assert_eq!(got, Admitted::Filed, "a login under the limit is filed");
    }
    let got = admit(h, &o, &entry(&ks[2], t, None), t + 60_000, t, decide(l)).await;
    assert_eq!(
        full_handles(&got),
        sorted(vec![Handle::of(&ks[0]), Handle::of(&ks[1])]),
        "a refusal names the entries counted"
    );
    assert!(matches!(got, Admitted::Full(_)));
    assert_eq!(
        handles(&list(h, &o, t).await),
        sorted(vec![Handle::of(&ks[0]), Handle::of(&ks[1])]),
        "a refused login writes nothing"
    );
    // A probe at the limit writes nothing either, whatever the policy.
    let probe = Admit::Limit {
        limit: limit(2, OverLimit::EndOldest),
        replaces: None,
        lapsed: &[],
        decide: false,
    };
    let got = admit(h, &o, &entry(&ks[2], t, None), t + 60_000, t, probe).await;
    assert!(matches!(got, Admitted::Full(_)), "a probe decides nothing");
    assert_eq!(list(h, &o, t).await.len(), 2);
}

/// Re-binding a session to the owner it has never counts twice, and rewrites its entry.
pub async fn a_present_entry_counts_once<H: Harness>(h: &H) {
    let o = owner("adm-once");
    let t = now();
    let ks = keys("adm-once", 2);
    let l = limit(2, OverLimit::Refuse);
    for k in &ks {
        admit(h, &o, &entry(k, t, None), t + 60_000, t, decide(l)).await;
    }
    let again = entry(&ks[0], t, Some("again"));
    let got = admit(h, &o, &again, t + 90_000, t, decide(l)).await;
    assert_eq!(
        got,
        Admitted::Filed,
        "a present entry is rewritten, not counted"
    );
    let listed = list(h, &o, t).await;
    assert_eq!(listed.len(), 2);
    let mine = listed.iter().find(|i| i.entry.key == ks[0]);
    assert_eq!(mine.map(|i| i.until), Some(t + 90_000));
    assert_eq!(mine.and_then(|i| i.entry.device.as_deref()), Some("again"));
}

/// A regenerate of a bound session is admitted at the limit, and under a lowered one, ending
/// nobody: the session it replaces is not counted (the two are one session until the old entry
/// goes). One whose replaced entry is gone is not filed.
pub async fn the_replaced_entry_is_not_counted<H: Harness>(h: &H) {
    let o = owner("adm-replace");
    let t = now();
    let ks = keys("adm-replace", 3);
    let l = limit(2, OverLimit::Refuse);
    for k in &ks[..2] {
        admit(h, &o, &entry(k, t, None), t + 60_000, t, decide(l)).await;
    }
    let old = Handle::of(&ks[0]);
    let how = Admit::Limit {
        limit: l,
        replaces: Some(&old),
        lapsed: &[],
        decide: true,
    };
    let got = admit(h, &o, &entry(&ks[2], t, None), t + 60_000, t, how).await;
    assert_eq!(got, Admitted::Filed);
    assert_eq!(
        list(h, &o, t).await.len(),
        3,
        "the replaced entry stays until unfiled"
    );
    // Whatever the limit is now (lowered since the sessions logged in): it ends nobody.
    let k3 = key("adm-replace-lowered");
    let replaced = Handle::of(&ks[1]);
    let lowered = Admit::Limit {
        limit: limit(1, OverLimit::EndOldest),
        replaces: Some(&replaced),
        lapsed: &[],
        decide: true,
    };
    let got = admit(h, &o, &entry(&k3, t, None), t + 60_000, t, lowered).await;
    assert_eq!(got, Admitted::Filed, "a regenerate ends nobody");
    assert_eq!(list(h, &o, t).await.len(), 4);
    // A regenerate of a session whose entry is gone (a limit removed it) is not filed.
    let gone = Handle::of(&key("adm-replace-never-filed"));
    let how = Admit::Limit {
        limit: l,
        replaces: Some(&gone),
        lapsed: &[],
        decide: true,
    };
    let k4 = key("adm-replace-of-gone");
    let got = admit(h, &o, &entry(&k4, t, None), t + 60_000, t, how).await;
    assert_eq!(got, Admitted::Absent);
    assert_eq!(list(h, &o, t).await.len(), 4, "nothing was written");
}

/// Lapsed entries (time passed) and entries the caller found dead are not counted, and go.
pub async fn lapsed_and_dead_entries_make_room<H: Harness>(h: &H) {
    let o = owner("adm-lapsed");
    let t = now();
    let ks = keys("adm-lapsed", 4);
    let l = limit(2, OverLimit::Refuse);
    put(h, &o, &entry(&ks[0], t, None), t + 1_000, t).await;
    put(h, &o, &entry(&ks[1], t, None), t + 60_000, t).await;
    put(h, &o, &entry(&ks[2], t, None), t + 60_000, t).await;
    // At t + 2 s the first has lapsed; the second is found dead by the caller.
    let at = t + 2_000;
    let dead = [Handle::of(&ks[1])];
    let how = Admit::Limit {
        limit: l,
        replaces: None,
        lapsed: &dead,
        decide: true,
    };
    let got = admit(h, &o, &entry(&ks[3], at, None), at + 60_000, at, how).await;
    assert_eq!(
        got,
        Admitted::Filed,
        "lapsed and dead entries must not count"
    );
    assert_eq!(
        handles(&list(h, &o, t).await),
        sorted(vec![Handle::of(&ks[2]), Handle::of(&ks[3])]),
        "the dead entries go with the admission"
    );
}

/// Over the limit with `EndOldest`, the entries bound earliest are removed and named, and the
/// new one is filed.
pub async fn end_oldest_removes_the_earliest_bound<H: Harness>(h: &H) {
    let o = owner("adm-oldest");
    let t = now();
    let ks = keys("adm-oldest", 4);
    // Filed without a limit: four entries, where the limit now allows two.
    for (i, k) in ks.iter().enumerate() {
        put(h, &o, &entry(k, t + i as u64, None), t + 60_000, t).await;
    }
    let k = key("adm-oldest-new");
    let got = admit(
        h,
        &o,
        &entry(&k, t + 10, None),
        t + 60_000,
        t,
        decide(limit(2, OverLimit::EndOldest)),
    )
    .await;
    assert!(matches!(got, Admitted::Ended(_)), "got {got:?}");
    assert_eq!(
        full_handles(&got),
        sorted(ks[..3].iter().map(Handle::of).collect()),
        "the three bound earliest make room for one"
    );
    assert_eq!(
        handles(&list(h, &o, t).await),
        sorted(vec![Handle::of(&ks[3]), Handle::of(&k)])
    );
}

/// A refresh rewrites an entry the index has, and never adds one it lacks (a session a limit
/// ended can't come back through a late write).
pub async fn a_refresh_never_brings_back_a_removed_entry<H: Harness>(h: &H) {
    let o = owner("adm-refresh");
    let t = now();
    let (a, b) = (key("adm-refresh-a"), key("adm-refresh-b"));
    put(h, &o, &entry(&a, t, None), t + 60_000, t).await;
    let got = admit(h, &o, &entry(&a, t, None), t + 90_000, t, Admit::Refresh).await;
    assert_eq!(got, Admitted::Filed);
    assert_eq!(list(h, &o, t).await[0].until, t + 90_000);
    let got = admit(h, &o, &entry(&b, t, None), t + 90_000, t, Admit::Refresh).await;
    assert_eq!(got, Admitted::Absent);
    assert_eq!(handles(&list(h, &o, t).await), vec![Handle::of(&a)]);
}

/// Fifty logins of one owner at once against a limit of three, ten rounds: the index never
/// holds more than three, and (refuse) exactly three are filed or (end-oldest) every login is
/// filed and every other one is named as ended exactly once.
pub async fn racing_logins_never_pass_the_limit<H: Harness>(h: &H, policy: OverLimit) {
    let l = limit(3, policy);
    for round in 0..10 {
        let o = owner(&format!("adm-race-{policy:?}-{round}"));
        let t = now();
        let ks = keys(&format!("adm-race-{policy:?}-{round}-"), 50);
        let entries: Vec<IndexEntry> = ks
            .iter()
            .enumerate()
            .map(|(i, k)| entry(k, t + i as u64, None))
            .collect();
        let got = join_all(
            entries
                .iter()
                .map(|e| admit(h, &o, e, t + 60_000, t, decide(l))),
        )
        .await;
        let filed = got.iter().filter(|a| **a == Admitted::Filed).count();
        let listed: HashSet<Handle> = handles(&list(h, &o, t).await).into_iter().collect();
        assert_eq!(listed.len(), 3, "round {round}: the index holds the limit");
        match policy {
            OverLimit::Refuse => {
                assert_eq!(filed, 3, "round {round}: exactly the limit is admitted");
            }
            _ => {
                let mut ended = HashSet::new();
                for a in &got {
                    if let Admitted::Ended(es) = a {
                        for e in es {
                            assert!(ended.insert(e.handle.clone()), "ended twice");
                        }
                    } else {
                        assert_eq!(*a, Admitted::Filed, "every login is admitted");
                    }
                }
                assert_eq!(ended.len(), 47, "round {round}: all but three are ended");
                assert!(ended.is_disjoint(&listed), "an ended entry is still filed");
            }
        }
    }
}
