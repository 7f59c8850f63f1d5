//! The store conformance suite (feature `testing`): every store crate runs it against itself.
//!
//! ```text
//! #[tokio::test]
//! async fn conformance() {
//!     session_core::store::testing::run_all(&MyHarness::new()).await;
//! }
//! ```
//!
//! Each check panics with a message naming the broken rule.
//!
//! Why this file is long: it is the whole store contract as executable checks, one function per
//! rule; a store author reads it in one place, beside the `Store` trait it proves.

use std::future::Future;
use std::time::Duration;

use serde_json::{Value, json};

use crate::id::{IdPolicy, StoreKey};
use crate::record::{Data, Delta, MaxAge, Meta, Record};
use crate::store::{Change, Created, Destroyed, Loaded, Store, StoreError, Supersede, Updated};

mod admission;
mod owners;
mod scan;
pub use admission::*;
pub use owners::*;
pub use scan::*;

/// What the suite needs from a store's test setup.
pub trait Harness: Send + Sync {
    /// The store under test.
    type S: Store;
    /// The store.
    fn store(&self) -> &Self::S;
    /// Lets `by` pass for the store: advance its manual clock, or sleep for a real server.
    fn advance(&self, by: Duration) -> impl Future<Output = ()> + Send;
    /// The remaining TTL of the record under `key` as the store sees it; `None` when there is
    /// no record. A live record without a TTL must be reported as `Some(Duration::MAX)`.
    fn ttl(&self, key: &StoreKey) -> impl Future<Output = Option<Duration>> + Send;
    /// A TTL short enough to wait out in a test (a manual clock can use anything; a real
    /// server needs something like 300 ms).
    fn short_ttl(&self) -> Duration {
        Duration::from_secs(2)
    }
    /// The store's per-record size limit, in the store's own measure (about the JSON bytes of
    /// the data); the suite checks that no write takes a record past it.
    fn record_limit(&self) -> usize;
}

/// Runs every check.
pub async fn run_all<H: Harness>(h: &H) {
    create_then_load(h).await;
    create_reports_collision(h).await;
    load_missing_is_none(h).await;
    load_expired_is_none(h).await;
    save_applies_delta(h).await;
    save_replace_writes_whole_data(h).await;
    save_missing_reports_not_found(h).await;
    save_after_destroy_does_not_resurrect(h).await;
    save_after_expiry_does_not_resurrect(h).await;
    touch_extends_ttl_without_rewriting_data(h).await;
    touch_missing_reports_not_found(h).await;
    destroy_is_idempotent(h).await;
    ttl_always_set(h).await;
    absurd_ttls_are_clamped(h).await;
    keys_are_isolated(h).await;
    odd_values_round_trip(h).await;
    concurrent_deltas_both_land(h).await;
    destroy_reports_what_was_there(h).await;
    destroy_of_a_never_created_key_blocks_no_create(h).await;
    supersede_leaves_a_marker(h).await;
    supersede_of_a_gone_or_superseded_record(h).await;
    record_limit_holds_after_every_write(h).await;
    record_limit_holds_when_a_delta_repeats_keys(h).await;
    thousands_of_keys(h).await;
    scan_lists_every_live_key(h).await;
}

fn key(name: &str) -> StoreKey {
    // Unique per run, so the suite can share a server with other tests.
    let id = IdPolicy::default()
        .generate()
        .map(|id| id.as_str().to_owned())
        .unwrap_or_else(|_| format!("{:?}", std::time::Instant::now()));
    StoreKey::from_raw(format!("conformance:{name}:{id}"))
}

fn record(v: Value) -> Record {
    Record {
        data: match v {
            Value::Object(m) => m,
            _ => Data::new(),
        },
        meta: Meta {
            expire: Some(1_700_086_400_000),
            max_age: MaxAge::Ms(86_400_000),
            created: Some(1_700_000_000_000),
        },
    }
}

const LONG: Duration = Duration::from_secs(3600);

async fn must_create<H: Harness>(h: &H, k: &StoreKey, r: &Record, ttl: Duration) {
    let res = h.store().create(k, r, ttl).await;
    assert!(
        matches!(res, Ok(Created::Inserted)),
        "create of a fresh key must insert, got {res:?}"
    );
}

async fn load<H: Harness>(h: &H, k: &StoreKey) -> Option<Record> {
    match h.store().load(k).await {
        Ok(Loaded::Live(r)) => Some(r),
        Ok(Loaded::Missing) => None,
        Ok(Loaded::Superseded) => {
            panic!("load found a supersede marker where a record was expected")
        }
        Err(e) => panic!("load failed: {e}"),
    }
}

async fn destroy<H: Harness>(h: &H, k: &StoreKey) -> Destroyed {
    match h.store().destroy(k).await {
        Ok(d) => d,
        Err(e) => panic!("destroy failed: {e}"),
    }
}

/// Panics unless the record under `k` has a positive TTL no longer than `asked`.
async fn assert_ttl<H: Harness>(h: &H, k: &StoreKey, asked: Duration, after: &str) {
    let left = h
        .ttl(k)
        .await
        .unwrap_or_else(|| panic!("no record after {after}"));
    assert!(left != Duration::MAX, "record has no TTL after {after}");
    assert!(
        left <= asked,
        "TTL {left:?} after {after} exceeds the {asked:?} asked for"
    );
    assert!(left > Duration::ZERO, "TTL must be positive after {after}");
}

async fn try_save<H: Harness>(
    h: &H,
    k: &StoreKey,
    delta: &Delta,
    data: &Data,
    meta: Meta,
    ttl: Duration,
) -> Result<Updated, StoreError> {
    h.store().save(k, Change { delta, data, meta }, ttl).await
}

async fn save<H: Harness>(
    h: &H,
    k: &StoreKey,
    delta: &Delta,
    data: &Data,
    meta: Meta,
    ttl: Duration,
) -> Updated {
    match try_save(h, k, delta, data, meta, ttl).await {
        Ok(u) => u,
        Err(e) => panic!("save failed: {e}"),
    }
}

/// A delta that sets `pairs` and removes nothing (for stores' own tests and benches too).
pub fn set(pairs: &[(&str, Value)]) -> Delta {
    Delta {
        replace: false,
        set: pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect(),
        removed: Vec::new(),
    }
}

/// create, then load returns the same record.
pub async fn create_then_load<H: Harness>(h: &H) {
    let k = key("create_then_load");
    let r = record(json!({"views": 1, "user": {"id": 7}}));
    must_create(h, &k, &r, LONG).await;
    assert_eq!(
        load(h, &k).await,
        Some(r),
        "load must return what create wrote"
    );
}

/// create over an existing record reports a collision and leaves it unchanged.
pub async fn create_reports_collision<H: Harness>(h: &H) {
    let k = key("collision");
    let first = record(json!({"owner": "first"}));
    must_create(h, &k, &first, LONG).await;
    let res = h
        .store()
        .create(&k, &record(json!({"owner": "attacker"})), LONG)
        .await;
    assert!(
        matches!(res, Ok(Created::Collision)),
        "second create must collide, got {res:?}"
    );
    // Other data of the very same size and meta collides too (a store that recognises its
    // own retried create must compare the data, not a summary of it).
    let res = h
        .store()
        .create(&k, &record(json!({"owner": "other"})), LONG)
        .await;
    assert!(
        matches!(res, Ok(Created::Collision)),
        "a create of other data of the same size must collide, got {res:?}"
    );
    assert_eq!(
        load(h, &k).await,
        Some(first),
        "a collision must not overwrite"
    );
}

/// load of a key never written is `None`.
pub async fn load_missing_is_none<H: Harness>(h: &H) {
    assert_eq!(load(h, &key("missing")).await, None);
}

/// A record whose TTL ran out is gone, whether or not a cleanup ran.
pub async fn load_expired_is_none<H: Harness>(h: &H) {
    let k = key("expired");
    let ttl = h.short_ttl();
    must_create(h, &k, &record(json!({"a": 1})), ttl).await;
    assert!(load(h, &k).await.is_some());
    h.advance(ttl + ttl / 2).await;
    assert_eq!(
        load(h, &k).await,
        None,
        "an expired record must load as nothing"
    );
}

/// save merges set and removed keys into the stored record and sets the new meta.
pub async fn save_applies_delta<H: Harness>(h: &H) {
    let k = key("save_delta");
    must_create(h, &k, &record(json!({"a": 1, "b": 2, "c": 3})), LONG).await;
    let delta = Delta {
        replace: false,
        set: vec![("a".into(), json!(10)), ("d".into(), json!([1, 2]))],
        removed: vec!["b".into()],
    };
    let mut meta = record(json!({})).meta;
    meta.expire = Some(1_800_000_000_000);
    let data = json!({"a": 10, "c": 3, "d": [1, 2]});
    let data = data.as_object().cloned().unwrap_or_default();
    assert_eq!(
        save(h, &k, &delta, &data, meta, LONG).await,
        Updated::Updated
    );
    let got = load(h, &k)
        .await
        .unwrap_or_else(|| panic!("record vanished after save"));
    assert_eq!(
        Value::Object(got.data),
        json!({"a": 10, "c": 3, "d": [1, 2]})
    );
    assert_eq!(got.meta, meta, "save must store the new meta");
}

/// A delta with `replace` writes the whole data.
pub async fn save_replace_writes_whole_data<H: Harness>(h: &H) {
    let k = key("save_replace");
    must_create(h, &k, &record(json!({"a": 1, "b": 2})), LONG).await;
    let delta = Delta {
        replace: true,
        set: vec![("z".into(), json!(1))],
        removed: vec!["a".into(), "b".into()],
    };
    let data = json!({"z": 1}).as_object().cloned().unwrap_or_default();
    assert_eq!(
        save(h, &k, &delta, &data, record(json!({})).meta, LONG).await,
        Updated::Updated
    );
    let got = load(h, &k).await.map(|r| Value::Object(r.data));
    assert_eq!(got, Some(json!({"z": 1})));
}

/// save of a key with no record reports not-found and creates nothing.
pub async fn save_missing_reports_not_found<H: Harness>(h: &H) {
    let k = key("save_missing");
    let d = set(&[("a", json!(1))]);
    let got = save(h, &k, &d, &Data::new(), record(json!({})).meta, LONG).await;
    assert_eq!(got, Updated::NotFound);
    assert_eq!(load(h, &k).await, None, "save must never create");
    assert_eq!(h.ttl(&k).await, None, "save must leave no record behind");
}

/// A save racing a logout does not bring the session back.
pub async fn save_after_destroy_does_not_resurrect<H: Harness>(h: &H) {
    let k = key("resurrect");
    must_create(h, &k, &record(json!({"user": 1})), LONG).await;
    destroy(h, &k).await;
    let d = set(&[("cart", json!(["x"]))]);
    let got = save(h, &k, &d, &Data::new(), record(json!({})).meta, LONG).await;
    assert_eq!(got, Updated::NotFound);
    assert_eq!(
        load(h, &k).await,
        None,
        "a destroyed session must stay destroyed"
    );
}

/// A save after the record expired does not bring it back.
pub async fn save_after_expiry_does_not_resurrect<H: Harness>(h: &H) {
    let k = key("resurrect_expired");
    let ttl = h.short_ttl();
    must_create(h, &k, &record(json!({"user": 1})), ttl).await;
    h.advance(ttl + ttl / 2).await;
    let d = set(&[("cart", json!(1))]);
    let got = save(h, &k, &d, &Data::new(), record(json!({})).meta, LONG).await;
    assert_eq!(got, Updated::NotFound);
    assert_eq!(load(h, &k).await, None);
}

/// touch extends the TTL and sets meta, leaving the data as stored.
pub async fn touch_extends_ttl_without_rewriting_data<H: Harness>(h: &H) {
    let k = key("touch");
    let ttl = h.short_ttl();
    let r = record(json!({"a": 1}));
    must_create(h, &k, &r, ttl).await;
    let mut meta = r.meta;
    meta.expire = Some(1_900_000_000_000);
    let got = h.store().touch(&k, meta, LONG).await;
    assert!(
        matches!(got, Ok(Updated::Updated)),
        "touch of a live record, got {got:?}"
    );
    let left = h.ttl(&k).await.unwrap_or_default();
    assert!(left > ttl, "touch must extend the TTL (left {left:?})");
    h.advance(ttl + ttl / 2).await;
    let got = load(h, &k)
        .await
        .unwrap_or_else(|| panic!("touched record expired at the old TTL"));
    assert_eq!(got.data, r.data, "touch must not change data");
    assert_eq!(got.meta, meta, "touch must store the new meta");
}

/// touch of a missing record reports not-found and creates nothing.
pub async fn touch_missing_reports_not_found<H: Harness>(h: &H) {
    let k = key("touch_missing");
    let got = h.store().touch(&k, record(json!({})).meta, LONG).await;
    assert!(matches!(got, Ok(Updated::NotFound)), "got {got:?}");
    assert_eq!(h.ttl(&k).await, None);
}

/// destroy removes the record, and destroying again (or a missing key) is fine.
pub async fn destroy_is_idempotent<H: Harness>(h: &H) {
    let k = key("destroy");
    must_create(h, &k, &record(json!({"a": 1})), LONG).await;
    for _ in 0..2 {
        destroy(h, &k).await;
    }
    assert_eq!(load(h, &k).await, None);
    destroy(h, &key("never")).await;
}

/// After every write the record (or marker) has a TTL no longer than the one asked for.
pub async fn ttl_always_set<H: Harness>(h: &H) {
    let k = key("ttl");
    let r = record(json!({"a": 1}));
    must_create(h, &k, &r, LONG).await;
    assert_ttl(h, &k, LONG, "create").await;
    let asked = LONG / 2;
    save(h, &k, &set(&[("b", json!(2))]), &r.data, r.meta, asked).await;
    assert_ttl(h, &k, asked, "save").await;
    let asked = LONG / 4;
    if let Err(e) = h.store().touch(&k, r.meta, asked).await {
        panic!("touch failed: {e}");
    }
    assert_ttl(h, &k, asked, "touch").await;
    let next = key("ttl_next");
    must_create(h, &next, &r, LONG).await;
    let grace = Duration::from_secs(60);
    let got = h.store().supersede(&k, &next, grace).await;
    assert!(matches!(got, Ok(Supersede::Replaced)), "{got:?}");
    assert_ttl(h, &k, grace, "supersede").await;
}

/// A TTL no store can keep (`Duration::MAX`) is clamped to
/// [`MAX_STORE_TTL`](crate::expiry::MAX_STORE_TTL) by every write: it neither fails nor leaves
/// a key that lives forever.
pub async fn absurd_ttls_are_clamped<H: Harness>(h: &H) {
    let max = crate::expiry::MAX_STORE_TTL;
    let k = key("absurd_ttl");
    let r = record(json!({"a": 1}));
    must_create(h, &k, &r, Duration::MAX).await;
    assert_ttl(h, &k, max, "create for Duration::MAX").await;
    let got = try_save(
        h,
        &k,
        &set(&[("b", json!(2))]),
        &r.data,
        r.meta,
        Duration::MAX,
    )
    .await;
    assert!(
        matches!(got, Ok(Updated::Updated)),
        "save for Duration::MAX: {got:?}"
    );
    assert_ttl(h, &k, max, "save for Duration::MAX").await;
    let got = h.store().touch(&k, r.meta, Duration::MAX).await;
    assert!(
        matches!(got, Ok(Updated::Updated)),
        "touch for Duration::MAX: {got:?}"
    );
    assert_ttl(h, &k, max, "touch for Duration::MAX").await;
    let next = key("absurd_ttl_next");
    must_create(h, &next, &r, LONG).await;
    let got = h.store().supersede(&k, &next, Duration::MAX).await;
    assert!(
        matches!(got, Ok(Supersede::Replaced)),
        "supersede for Duration::MAX: {got:?}"
    );
    assert_ttl(h, &k, max, "supersede for Duration::MAX").await;
    destroy(h, &k).await;
    destroy(h, &next).await;
}

/// Two sessions never see each other's data.
pub async fn keys_are_isolated<H: Harness>(h: &H) {
    let (a, b) = (key("iso_a"), key("iso_b"));
    must_create(h, &a, &record(json!({"who": "a"})), LONG).await;
    must_create(h, &b, &record(json!({"who": "b"})), LONG).await;
    save(
        h,
        &a,
        &set(&[("x", json!(1))]),
        &Data::new(),
        record(json!({})).meta,
        LONG,
    )
    .await;
    let got = load(h, &b).await.map(|r| Value::Object(r.data));
    assert_eq!(got, Some(json!({"who": "b"})));
}

/// Unicode, nested JSON, extreme numbers, empty objects and a large value round-trip exactly.
pub async fn odd_values_round_trip<H: Harness>(h: &H) {
    // 40 KiB: large, yet under the 64 KiB record cap stores may enforce.
    let big = "é☃𝄞x".repeat(4 * 1024);
    let odd = json!({
        "héllo ☃": "wörld 𝄞 \u{0} \"quotes\" \\ \n",
        "": "empty key",
        "nested": {"a": [1, {"b": [[], {}]}, null, true, false]},
        "empty": {},
        "empty_list": [],
        "numbers": [0, -1, 1.5, -0.25, 1e300, 18446744073709551615u64, -9223372036854775808i64],
        "big": big,
    });
    let k = key("odd");
    let r = record(odd.clone());
    must_create(h, &k, &r, LONG).await;
    assert_eq!(
        load(h, &k).await,
        Some(r),
        "odd values must round-trip exactly"
    );
    let e = key("odd_empty");
    let empty = record(json!({}));
    must_create(h, &e, &empty, LONG).await;
    assert_eq!(
        load(h, &e).await,
        Some(empty),
        "an empty session must round-trip"
    );
    let s = key("odd_session");
    let mut browser = record(json!({"a": 1}));
    browser.meta = Meta {
        expire: None,
        max_age: MaxAge::Session,
        created: None,
    };
    must_create(h, &s, &browser, LONG).await;
    assert_eq!(
        load(h, &s).await,
        Some(browser),
        "a browser-session record must round-trip"
    );
}

/// Two requests of one session that change different keys both land (stores that merge
/// deltas); many concurrent writers of distinct keys all land.
pub async fn concurrent_deltas_both_land<H: Harness>(h: &H) {
    if !h.store().merges_deltas() {
        return;
    }
    let k = key("concurrent");
    let r = record(json!({"base": 0}));
    must_create(h, &k, &r, LONG).await;
    // Both requests loaded the same state; each writes its own key.
    let a = load(h, &k).await.unwrap_or_else(|| panic!("missing"));
    let b = a.clone();
    let mut a_data = a.data.clone();
    a_data.insert("cart".into(), json!(["book"]));
    let mut b_data = b.data.clone();
    b_data.insert("theme".into(), json!("dark"));
    save(
        h,
        &k,
        &set(&[("cart", json!(["book"]))]),
        &a_data,
        a.meta,
        LONG,
    )
    .await;
    save(
        h,
        &k,
        &set(&[("theme", json!("dark"))]),
        &b_data,
        b.meta,
        LONG,
    )
    .await;
    let got = load(h, &k).await.map(|r| Value::Object(r.data));
    assert_eq!(
        got,
        Some(json!({"base": 0, "cart": ["book"], "theme": "dark"}))
    );

    let writers = 16;
    let futs = (0..writers).map(|i| {
        let k = k.clone();
        let meta = r.meta;
        async move {
            let name = format!("w{i}");
            let delta = set(&[(name.as_str(), json!(i))]);
            save(h, &k, &delta, &Data::new(), meta, LONG).await
        }
    });
    let results = futures_util::future::join_all(futs).await;
    assert!(results.iter().all(|u| *u == Updated::Updated));
    let got = load(h, &k).await.unwrap_or_else(|| panic!("missing"));
    for i in 0..writers {
        assert_eq!(
            got.data.get(&format!("w{i}")),
            Some(&json!(i)),
            "writer {i} was lost"
        );
    }
}

/// `destroy` says whether a live record was there.
pub async fn destroy_reports_what_was_there<H: Harness>(h: &H) {
    let k = key("destroy_reports");
    must_create(h, &k, &record(json!({"a": 1})), LONG).await;
    assert_eq!(destroy(h, &k).await, Destroyed::Removed);
    assert_eq!(destroy(h, &k).await, Destroyed::Missing);
    assert_eq!(destroy(h, &key("destroy_never")).await, Destroyed::Missing);
}

/// A destroy of a key nothing was ever created under leaves nothing behind that a create
/// would collide with: a revoke that reaches a login's new id before the login created its
/// record (the owner index is written first) must not block the login.
pub async fn destroy_of_a_never_created_key_blocks_no_create<H: Harness>(h: &H) {
    let k = key("destroy_then_create");
    assert_eq!(destroy(h, &k).await, Destroyed::Missing);
    let r = record(json!({"a": 1}));
    must_create(h, &k, &r, LONG).await;
    assert_eq!(load(h, &k).await, Some(r));
    destroy(h, &k).await;
}

/// `supersede` replaces a live record by a marker: loads see it, writes don't pass it, a
/// create collides with it, and destroying it names the successor.
pub async fn supersede_leaves_a_marker<H: Harness>(h: &H) {
    let old = key("supersede_old");
    let new = key("supersede_new");
    let r = record(json!({"user": "ada"}));
    must_create(h, &old, &r, LONG).await;
    must_create(h, &new, &r, LONG).await;
    let grace = Duration::from_secs(60);
    let got = h.store().supersede(&old, &new, grace).await;
    assert!(matches!(got, Ok(Supersede::Replaced)), "{got:?}");
    let got = h.store().load(&old).await;
    assert!(
        matches!(got, Ok(Loaded::Superseded)),
        "a superseded id must load as superseded, got {got:?}"
    );
    assert_ttl(h, &old, grace, "supersede").await;
    // A request that loaded the old record before the supersede can't write through it.
    let d = set(&[("cart", json!(1))]);
    let got = try_save(h, &old, &d, &r.data, r.meta, LONG).await;
    assert!(matches!(got, Ok(Updated::Superseded)), "save: {got:?}");
    let got = h.store().touch(&old, r.meta, LONG).await;
    assert!(matches!(got, Ok(Updated::Superseded)), "touch: {got:?}");
    assert_ttl(h, &old, grace, "a refused save and touch").await;
    let got = h.store().create(&old, &r, LONG).await;
    assert!(
        matches!(got, Ok(Created::Collision)),
        "create over a marker must collide: {got:?}"
    );
    // The successor is untouched, and destroying the old id names it.
    assert_eq!(load(h, &new).await, Some(r));
    assert_eq!(destroy(h, &old).await, Destroyed::Superseded(new.clone()));
    // A store may keep the marker until its grace ends, so that a destroy run twice (its
    // first reply lost) names the successor again; either way the old id holds no session.
    let got = h.store().load(&old).await;
    assert!(
        matches!(got, Ok(Loaded::Missing | Loaded::Superseded)),
        "a destroyed marker must not load as a session: {got:?}"
    );
    let again = destroy(h, &old).await;
    assert!(
        again == Destroyed::Missing || again == Destroyed::Superseded(new.clone()),
        "a second destroy of a superseded id: {again:?}"
    );
}

/// `supersede` of a record destroyed meanwhile reports it and writes nothing; a second
/// supersede reports the first one and keeps its successor.
pub async fn supersede_of_a_gone_or_superseded_record<H: Harness>(h: &H) {
    let grace = Duration::from_secs(60);
    let gone = key("supersede_gone");
    let next = key("supersede_gone_next");
    let got = h.store().supersede(&gone, &next, grace).await;
    assert!(matches!(got, Ok(Supersede::Missing)), "{got:?}");
    assert_eq!(h.ttl(&gone).await, None, "supersede must not create");
    must_create(h, &gone, &record(json!({"a": 1})), LONG).await;
    destroy(h, &gone).await;
    let got = h.store().supersede(&gone, &next, grace).await;
    assert!(matches!(got, Ok(Supersede::Missing)), "{got:?}");
    assert_eq!(h.ttl(&gone).await, None, "supersede must not bring it back");

    let old = key("supersede_twice");
    let (first, second) = (key("supersede_first"), key("supersede_second"));
    must_create(h, &old, &record(json!({"a": 1})), LONG).await;
    let got = h.store().supersede(&old, &first, grace).await;
    assert!(matches!(got, Ok(Supersede::Replaced)), "{got:?}");
    let got = h.store().supersede(&old, &second, grace).await;
    assert!(matches!(got, Ok(Supersede::AlreadySuperseded)), "{got:?}");
    assert_eq!(destroy(h, &old).await, Destroyed::Superseded(first));
}

/// No create or save takes a record past the store's limit; a refused write changes nothing
/// and leaves the TTL in place.
pub async fn record_limit_holds_after_every_write<H: Harness>(h: &H) {
    let limit = h.record_limit();
    let chunk = limit / 5;
    let k = key("limit");
    let too_big = record(json!({"big": "x".repeat(limit + 1)}));
    let got = h.store().create(&k, &too_big, LONG).await;
    assert!(
        matches!(got, Err(StoreError::TooLarge { .. })),
        "a create over the limit must fail: {got:?}"
    );
    assert_eq!(h.ttl(&k).await, None, "a refused create must write nothing");

    let r = record(json!({"k0": "x".repeat(chunk)}));
    must_create(h, &k, &r, LONG).await;
    let mut data = r.data.clone();
    let mut refused = false;
    for i in 1..10 {
        let name = format!("k{i}");
        let d = set(&[(name.as_str(), json!("x".repeat(chunk)))]);
        let mut next = data.clone();
        next.insert(name.clone(), json!("x".repeat(chunk)));
        match try_save(h, &k, &d, &next, r.meta, LONG).await {
            Ok(Updated::Updated) => {
                assert!(i < 5, "save {i} took the record past the limit");
                data = next;
            }
            Err(StoreError::TooLarge { size, limit: l }) => {
                assert!(size > l, "TooLarge must report the size over the limit");
                assert!(i >= 3, "save {i} was refused well within the limit");
                refused = true;
                break;
            }
            other => panic!("save {i}: {other:?}"),
        }
    }
    assert!(refused, "saves kept growing the record past the limit");
    let got = load(h, &k).await.map(|r| r.data);
    assert_eq!(got, Some(data), "a refused save must change nothing");
    assert_ttl(h, &k, LONG, "a refused save").await;
    // A whole-data replace is held to the limit too.
    let d = Delta {
        replace: true,
        set: Vec::new(),
        removed: Vec::new(),
    };
    let huge = json!({"a": "y".repeat(limit)});
    let huge = huge.as_object().cloned().unwrap_or_default();
    let got = try_save(h, &k, &d, &huge, r.meta, LONG).await;
    assert!(
        matches!(got, Err(StoreError::TooLarge { .. })),
        "a replace over the limit must fail: {got:?}"
    );
}

/// A delta that names a key twice (removed twice, removed and set, set twice) means what
/// [`Record::apply`] makes of it, and leaves the store's size accounting true: after it, saves
/// that would take the record past the limit are still refused.
pub async fn record_limit_holds_when_a_delta_repeats_keys<H: Harness>(h: &H) {
    let limit = h.record_limit();
    let chunk = limit / 5;
    let big = || json!("x".repeat(chunk));
    let k = key("repeats");
    let r = record(json!({"k0": big(), "k1": big(), "k2": big(), "k3": big()}));
    must_create(h, &k, &r, LONG).await;
    let mut data = r.data.clone();
    let repeats = [
        Delta {
            replace: false,
            set: Vec::new(),
            removed: vec!["k0".into(), "k0".into()],
        },
        Delta {
            replace: false,
            set: vec![("k1".into(), big())],
            removed: vec!["k1".into(), "k1".into()],
        },
        Delta {
            replace: false,
            set: vec![("k2".into(), big()), ("k2".into(), json!(1))],
            removed: Vec::new(),
        },
    ];
    for d in &repeats {
        let mut next = Record {
            data: data.clone(),
            meta: r.meta,
        };
        next.apply(d, &data, r.meta);
        assert_eq!(
            save(h, &k, d, &next.data, r.meta, LONG).await,
            Updated::Updated
        );
        data = next.data;
        assert_eq!(load(h, &k).await.map(|r| r.data), Some(data.clone()));
    }
    // Two chunks are left (k1, k3): two more fit, a fifth does not.
    let mut refused = false;
    for i in 4..8 {
        let name = format!("k{i}");
        let d = set(&[(name.as_str(), big())]);
        let mut next = data.clone();
        next.insert(name, big());
        match try_save(h, &k, &d, &next, r.meta, LONG).await {
            Ok(Updated::Updated) => {
                let chunks = next.values().filter(|v| **v == big()).count();
                assert!(chunks < 5, "save k{i} took the record past the limit");
                data = next;
            }
            Err(StoreError::TooLarge { .. }) => {
                refused = true;
                break;
            }
            other => panic!("save k{i}: {other:?}"),
        }
    }
    assert!(refused, "repeated keys let the record grow past the limit");
    assert_eq!(load(h, &k).await.map(|r| r.data), Some(data));
}

/// Thousands of small keys in one create and one save work (within the limit), and the
/// record keeps its TTL.
pub async fn thousands_of_keys<H: Harness>(h: &H) {
    let n = 5000.min(h.record_limit() / 16);
    let k = key("many");
    let mut data = Data::new();
    for i in 0..n {
        data.insert(format!("k{i}"), json!(1));
    }
    let r = Record {
        data: data.clone(),
        meta: record(json!({})).meta,
    };
    must_create(h, &k, &r, LONG).await;
    assert_ttl(h, &k, LONG, "a create of thousands of keys").await;
    assert_eq!(load(h, &k).await.map(|r| r.data.len()), Some(n));
    // Replace every value and remove every other key in one save.
    let delta = Delta {
        replace: false,
        set: (0..n)
            .step_by(2)
            .map(|i| (format!("k{i}"), json!(2)))
            .collect(),
        removed: (1..n).step_by(2).map(|i| format!("k{i}")).collect(),
    };
    let mut after = r.clone();
    after.apply(&delta, &data, r.meta);
    let got = save(h, &k, &delta, &after.data, r.meta, LONG).await;
    assert_eq!(got, Updated::Updated);
    let got = load(h, &k)
        .await
        .unwrap_or_else(|| panic!("record vanished after a large save"));
    assert_eq!(got.data.len(), n.div_ceil(2));
    assert!(got.data.values().all(|v| *v == json!(2)));
    assert_ttl(h, &k, LONG, "a save of thousands of keys").await;
}
