//! The owner-index part of the conformance suite: [`run_owner_index`] checks a store's
//! [`OwnerIndex`] (listing and revoking a user's sessions) against its contract.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::json;

use super::{Harness, LONG, destroy, key, must_create, record};
use crate::id::StoreKey;
use crate::owner::{Handle, IndexEntry, Indexed};
use crate::store::OwnerIndex;
use crate::store::Store;

/// Runs every owner-index check. Panics if the store keeps no owner index.
pub async fn run_owner_index<H: Harness>(h: &H) {
    index_then_list(h).await;
    entries_report_records_that_are_gone(h).await;
    lapsed_entries_are_dropped_by_the_next_write(h).await;
    an_entry_is_never_shortened(h).await;
    unindex_removes_only_those_named(h).await;
    owner_names_are_opaque(h).await;
    a_hundred_sessions_of_one_owner(h).await;
}

pub(super) fn index<H: Harness>(h: &H) -> &dyn OwnerIndex {
    match h.store().owner_index() {
        Some(index) => index,
        None => panic!("the store under test keeps no owner index"),
    }
}

pub(super) fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// A unique owner name per run (the suite may share a server with other tests).
pub(super) fn owner(name: &str) -> String {
    let k = key(name);
    format!("owner:{}", k.as_str())
}

pub(super) fn entry(k: &StoreKey, since: u64, device: Option<&str>) -> IndexEntry {
    IndexEntry::new(k.clone(), since, since + 1, device.map(str::to_owned))
}

pub(super) async fn put<H: Harness>(h: &H, owner: &str, e: &IndexEntry, until: u64, now: u64) {
    if let Err(err) = index(h).index(owner, e, until, now).await {
        panic!("index failed: {err}");
    }
}

pub(super) async fn list<H: Harness>(h: &H, owner: &str, now: u64) -> Vec<Indexed> {
    let mut got = index(h)
        .entries(owner, now)
        .await
        .unwrap_or_else(|e| panic!("entries failed: {e}"));
    got.sort_by(|a, b| a.entry.handle.cmp(&b.entry.handle));
    got
}

pub(super) fn handles(v: &[Indexed]) -> Vec<Handle> {
    let mut hs: Vec<Handle> = v.iter().map(|i| i.entry.handle.clone()).collect();
    hs.sort();
    hs
}

pub(super) fn sorted(mut hs: Vec<Handle>) -> Vec<Handle> {
    hs.sort();
    hs
}

/// Entries come back as written, per owner, each with its live record's TTL.
pub async fn index_then_list<H: Harness>(h: &H) {
    let (a, b) = (owner("list-a"), owner("list-b"));
    let t = now();
    let keys: Vec<StoreKey> = (0..3).map(|i| key(&format!("list{i}"))).collect();
    for k in &keys {
        must_create(h, k, &record(json!({"user": 1})), LONG).await;
    }
    let until = t + LONG.as_millis() as u64;
    put(
        h,
        &a,
        &entry(&keys[0], t, Some("Firefox on Linux")),
        until,
        t,
    )
    .await;
    put(h, &a, &entry(&keys[1], t, None), until, t).await;
    put(h, &b, &entry(&keys[2], t, Some("phone")), until, t).await;
    let got = list(h, &a, t).await;
    assert_eq!(
        handles(&got),
        sorted(vec![Handle::of(&keys[0]), Handle::of(&keys[1])]),
        "an owner's listing must hold exactly its entries"
    );
    for i in &got {
        let want = if i.entry.key == keys[0] {
            entry(&keys[0], t, Some("Firefox on Linux"))
        } else {
            entry(&keys[1], t, None)
        };
        assert_eq!(i.entry, want, "an entry must come back as written");
        assert_eq!(i.until, until, "an entry's time must come back as written");
        let Some(ttl) = i.record_ttl else {
            panic!("a live record must be reported live");
        };
        assert!(ttl > Duration::ZERO && ttl <= LONG, "record TTL {ttl:?}");
    }
    assert_eq!(handles(&list(h, &b, t).await), vec![Handle::of(&keys[2])]);
    for k in &keys {
        destroy(h, k).await;
    }
}

/// An entry whose record was never created, was destroyed or was superseded is listed without
/// a record (the caller hides it), not as live.
pub async fn entries_report_records_that_are_gone<H: Harness>(h: &H) {
    let o = owner("gone");
    let t = now();
    let (never, destroyed, superseded, next) = (
        key("never"),
        key("destroyed"),
        key("superseded"),
        key("next"),
    );
    must_create(h, &destroyed, &record(json!({"a": 1})), LONG).await;
    must_create(h, &superseded, &record(json!({"a": 1})), LONG).await;
    must_create(h, &next, &record(json!({"a": 1})), LONG).await;
    let until = t + LONG.as_millis() as u64;
    for k in [&never, &destroyed, &superseded, &next] {
        put(h, &o, &entry(k, t, None), until, t).await;
    }
    destroy(h, &destroyed).await;
    let sup = h.store().supersede(&superseded, &next, LONG).await;
    assert!(sup.is_ok(), "supersede failed: {sup:?}");
    let got = list(h, &o, t).await;
    assert_eq!(
        got.len(),
        4,
        "entries are listed until they lapse or are removed"
    );
    for i in &got {
        let live = i.entry.key == next;
        assert_eq!(
            i.record_ttl.is_some(),
            live,
            "only the entry of a live record may be reported live"
        );
    }
    destroy(h, &superseded).await;
    destroy(h, &next).await;
}

/// Entries whose time passed are not listed, and the next write to the owner's index drops
/// them for good.
pub async fn lapsed_entries_are_dropped_by_the_next_write<H: Harness>(h: &H) {
    let o = owner("lapse");
    let t = now();
    let (k1, k2, k3) = (key("lapse1"), key("lapse2"), key("lapse3"));
    put(h, &o, &entry(&k1, t, None), t + 1_000, t).await;
    put(h, &o, &entry(&k2, t, None), t + 60_000, t).await;
    assert_eq!(
        handles(&list(h, &o, t + 2_000).await),
        vec![Handle::of(&k2)],
        "a lapsed entry must not be listed"
    );
    put(h, &o, &entry(&k3, t + 2_000, None), t + 60_000, t + 2_000).await;
    assert_eq!(
        handles(&list(h, &o, t).await),
        sorted(vec![Handle::of(&k2), Handle::of(&k3)]),
        "a write must drop the owner's lapsed entries"
    );
    assert!(
        list(h, &o, t + 61_000).await.is_empty(),
        "every entry lapses with its time"
    );
}

/// A late write of an earlier time leaves the later one (a slow request can't shorten an
/// entry below its record's expiry).
pub async fn an_entry_is_never_shortened<H: Harness>(h: &H) {
    let o = owner("shorten");
    let t = now();
    let k = key("shorten");
    put(h, &o, &entry(&k, t, None), t + 50_000, t).await;
    put(h, &o, &entry(&k, t, Some("later")), t + 5_000, t).await;
    let got = list(h, &o, t + 10_000).await;
    assert_eq!(
        handles(&got),
        vec![Handle::of(&k)],
        "the entry was shortened"
    );
    assert_eq!(got[0].until, t + 50_000);
    assert_eq!(
        got[0].entry.device.as_deref(),
        Some("later"),
        "the entry's details are the last written"
    );
}

/// `unindex` removes the named entries, ignores unknown ones, leaves the rest.
pub async fn unindex_removes_only_those_named<H: Harness>(h: &H) {
    let o = owner("unindex");
    let t = now();
    let ks: Vec<StoreKey> = (0..3).map(|i| key(&format!("unindex{i}"))).collect();
    for k in &ks {
        put(h, &o, &entry(k, t, None), t + 60_000, t).await;
    }
    let gone = [
        Handle::of(&ks[0]),
        Handle::of(&StoreKey::from_raw("never-indexed")),
    ];
    let res = index(h).unindex(&o, &gone, t).await;
    assert!(res.is_ok(), "unindex failed: {res:?}");
    assert_eq!(
        handles(&list(h, &o, t).await),
        sorted(vec![Handle::of(&ks[1]), Handle::of(&ks[2])])
    );
    let rest = [Handle::of(&ks[1]), Handle::of(&ks[2])];
    let res = index(h).unindex(&o, &rest, t).await;
    assert!(res.is_ok(), "unindex failed: {res:?}");
    assert!(list(h, &o, t).await.is_empty());
    let res = index(h).unindex(&owner("nobody"), &rest, t).await;
    assert!(res.is_ok(), "unindex of an unknown owner failed: {res:?}");
}

/// Owner ids are the app's: braces, colons, spaces and non-ASCII text are just names, and
/// owners whose names share a prefix are apart.
pub async fn owner_names_are_opaque<H: Harness>(h: &H) {
    let base = owner("names");
    let names = [
        base.clone(),
        format!("{base}}}"),
        format!("{{{base}"),
        format!("{base} é 👤"),
        format!("{base}:x"),
        format!("{base}\u{0}"),
    ];
    let t = now();
    for (i, n) in names.iter().enumerate() {
        let k = key(&format!("names{i}"));
        put(h, n, &entry(&k, t, None), t + 60_000, t).await;
    }
    for (i, n) in names.iter().enumerate() {
        let got = list(h, n, t).await;
        assert_eq!(got.len(), 1, "owner {i} must see exactly its own entry");
    }
}

/// A hundred sessions of one owner are all listed and all removed.
pub async fn a_hundred_sessions_of_one_owner<H: Harness>(h: &H) {
    let o = owner("hundred");
    let t = now();
    let ks: Vec<StoreKey> = (0..100).map(|i| key(&format!("hundred{i}"))).collect();
    for k in &ks {
        put(h, &o, &entry(k, t, None), t + 60_000, t).await;
    }
    let got = list(h, &o, t).await;
    assert_eq!(got.len(), 100);
    let all: Vec<Handle> = ks.iter().map(Handle::of).collect();
    let res = index(h).unindex(&o, &all, t).await;
    assert!(res.is_ok(), "unindex failed: {res:?}");
    assert!(list(h, &o, t).await.is_empty());
}
