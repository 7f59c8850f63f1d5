//! Attacks on the PostgreSQL store's promises at the store level, from an outside review: saves
//! of different keys racing on one row all land; a destroy racing saves and touches never
//! brings the row back; a supersede racing saves leaves its marker; rows and owner-index rows
//! written by another program are typed errors or ignored, never a panic or a wrong listing; a
//! huge owner id, thousands of entries and a huge device; a stalled (SIGSTOPped) server fails
//! every call within the limit and recovers; an index written for a record the database
//! refused lists nothing; passwords never shown. Needs `--features postgres-tests`,
//! `DATABASE_URL` and `PG_BIN` (`cargo xtask test-postgres` / `cargo xtask ci`).
#![cfg(feature = "postgres-tests")]
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs, dead_code)]

mod support;

use std::time::{Duration, Instant};

use serde_json::json;
use session_core::Handle;
use session_core::store::{
    Change, Delta, Destroyed, Loaded, Meta, Record, Store, StoreError, StoreKey, Supersede, Updated,
};
use session_core::store::{IndexEntry, OwnerIndex};
use session_core::{Data, MaxAge};
use session_store_postgres::PostgresStore;
use session_testkit::now_ms;
use support::{Cluster, store, unique_table, url};

const TTL: Duration = Duration::from_secs(600);

fn meta() -> Meta {
    Meta {
        expire: None,
        max_age: MaxAge::Session,
        created: None,
    }
}

fn rec(v: serde_json::Value) -> Record {
    Record {
        data: v.as_object().cloned().unwrap(),
        meta: meta(),
    }
}

async fn raw() -> tokio_postgres::Client {
    support::client(&url()).await
}

async fn save_set(
    s: &PostgresStore,
    k: &StoreKey,
    key: &str,
    v: serde_json::Value,
) -> Result<Updated, StoreError> {
    let d = Delta {
        set: vec![(key.to_owned(), v)],
        removed: vec![],
        replace: false,
    };
    s.save(
        k,
        Change {
            delta: &d,
            data: &Data::new(),
            meta: meta(),
        },
        TTL,
    )
    .await
}

/// Per-key merge: 32 concurrent saves of distinct keys on one row (and 8 removing keys that
/// exist), 50 rounds; every set lands, every removed key is gone, nothing else changes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_saves_of_distinct_keys_all_land() {
    let s = store("rv_merge").await;
    let mut failures = Vec::new();
    for round in 0..50 {
        let k = StoreKey::from_raw(format!("sess:merge{round}"));
        let init: serde_json::Map<_, _> = (0..8).map(|i| (format!("old{i}"), json!(i))).collect();
        s.create(
            &k,
            &Record {
                data: init,
                meta: meta(),
            },
            TTL,
        )
        .await
        .unwrap();
        let sets = (0..32).map(|i| {
            let s = s.clone();
            let k = k.clone();
            tokio::spawn(async move { save_set(&s, &k, &format!("k{i}"), json!(i)).await })
        });
        let removes = (0..8).map(|i| {
            let s = s.clone();
            let k = k.clone();
            tokio::spawn(async move {
                let d = Delta {
                    set: vec![],
                    removed: vec![format!("old{i}")],
                    replace: false,
                };
                s.save(
                    &k,
                    Change {
                        delta: &d,
                        data: &Data::new(),
                        meta: meta(),
                    },
                    TTL,
                )
                .await
            })
        });
        let all: Vec<_> = sets.chain(removes).collect();
        for h in all {
            let r = h.await.unwrap();
            if !matches!(r, Ok(Updated::Updated)) {
                failures.push(format!("{round}: save answered {r:?}"));
            }
        }
        let Loaded::Live(r) = s.load(&k).await.unwrap() else {
            panic!()
        };
        let want: serde_json::Map<_, _> = (0..32).map(|i| (format!("k{i}"), json!(i))).collect();
        if r.data.len() != 32
            || (0..32).any(|i| r.data.get(&format!("k{i}")) != want.get(&format!("k{i}")))
        {
            failures.push(format!(
                "{round}: merged to {:?}",
                r.data.keys().collect::<Vec<_>>()
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures: {failures:?}",
        failures.len()
    );
}

/// No resurrection at the store level: a destroy races 8 saves and a touch, 300 times.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn destroy_racing_saves_and_touches_never_resurrects() {
    let s = store("rv_resur").await;
    let mut failures = 0;
    for round in 0..300 {
        let k = StoreKey::from_raw(format!("sess:res{round}"));
        s.create(&k, &rec(json!({"u": 1})), TTL).await.unwrap();
        let mut hs = Vec::new();
        for i in 0..8 {
            let (s, k) = (s.clone(), k.clone());
            hs.push(tokio::spawn(async move {
                save_set(&s, &k, &format!("x{i}"), json!(i))
                    .await
                    .map(|_| ())
            }));
        }
        {
            let (s, k) = (s.clone(), k.clone());
            hs.push(tokio::spawn(async move {
                s.touch(&k, meta(), TTL).await.map(|_| ())
            }));
        }
        let (s2, k2) = (s.clone(), k.clone());
        let d = tokio::spawn(async move {
            for _ in 0..(round % 4) {
                tokio::task::yield_now().await;
            }
            s2.destroy(&k2).await
        });
        for h in hs {
            h.await.unwrap().unwrap();
        }
        assert!(matches!(d.await.unwrap().unwrap(), Destroyed::Removed));
        if !matches!(s.load(&k).await.unwrap(), Loaded::Missing) {
            failures += 1;
        }
    }
    assert_eq!(failures, 0);
}

/// A supersede racing saves: afterwards the old key is a marker and the new key untouched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn supersede_racing_saves_leaves_a_marker() {
    let s = store("rv_sup").await;
    let mut failures = Vec::new();
    for round in 0..200 {
        let k = StoreKey::from_raw(format!("sess:old{round}"));
        let n = StoreKey::from_raw(format!("sess:new{round}"));
        s.create(&k, &rec(json!({"u": 1})), TTL).await.unwrap();
        s.create(&n, &rec(json!({"u": 1})), TTL).await.unwrap();
        let mut hs = Vec::new();
        for i in 0..6 {
            let (s, k) = (s.clone(), k.clone());
            hs.push(tokio::spawn(async move {
                save_set(&s, &k, &format!("x{i}"), json!(i)).await
            }));
        }
        let sup = s.supersede(&k, &n, Duration::from_secs(60)).await.unwrap();
        for h in hs {
            let r = h.await.unwrap().unwrap();
            if !matches!(r, Updated::Updated | Updated::Superseded) {
                failures.push(format!("{round}: save {r:?}"));
            }
        }
        if sup != Supersede::Replaced || s.load(&k).await.unwrap() != Loaded::Superseded {
            failures.push(format!("{round}: {sup:?}"));
        }
        let Loaded::Live(r) = s.load(&n).await.unwrap() else {
            panic!()
        };
        if r.data.len() != 1 {
            failures.push(format!("{round}: new record got {:?}", r.data));
        }
    }
    assert!(failures.is_empty(), "{failures:?}");
}

/// Foreign rows in the sessions table: every wrong shape of `data` is a typed error (never a
/// panic), and a save against one is not a panic either.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreign_session_rows() {
    let s = store("rv_foreign").await;
    let c = raw().await;
    let t = s.table().to_owned();
    let shapes = [
        "'[1,2]'",
        "'\"x\"'",
        "'null'",
        "'{\"a\": 1}'",
        "'{\"a\": \"not json\"}'",
        "'{\"a\": {\"b\": 1}}'",
        "'{\"\\u0001zz\": \"1\"}'",
        "'{\"\\u0001ff\": \"1\"}'",
    ];
    let mut out = Vec::new();
    for (i, shape) in shapes.iter().enumerate() {
        let k = format!("sess:f{i}");
        c.batch_execute(&format!(
            "INSERT INTO \"{t}\" (key, data, expire, max_age, created, successor, expires_at)
             VALUES ('{k}', {shape}, -5, -7, -9, NULL, now() + interval '1 hour')"
        ))
        .await
        .unwrap();
        let k = StoreKey::from_raw(k);
        let l = s.load(&k).await;
        let sv = save_set(&s, &k, "n", json!(1)).await;
        let tch = s.touch(&k, meta(), TTL).await;
        out.push(format!("{shape}: load {l:?} / save {sv:?} / touch {tch:?}"));
    }
    // A row whose meta columns are absurd but data fine.
    c.batch_execute(&format!(
        "INSERT INTO \"{t}\" (key, data, expire, max_age, created, successor, expires_at)
         VALUES ('sess:meta', '{{}}', -1, -1, 9223372036854775807, NULL, now() + interval '1 hour')"
    ))
    .await
    .unwrap();
    let l = s.load(&StoreKey::from_raw("sess:meta")).await;
    out.push(format!("absurd meta: load {l:?}"));
    println!("{}", out.join("\n"));
    for line in &out {
        assert!(!line.contains("Backend") || line.contains("save"), "{line}");
    }
}

/// Foreign rows in the owner index table: garbage handles, keys, times and devices never break
/// a listing, and a listing of an owner with garbage stays exact for the real entries.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreign_owner_rows() {
    let s = store("rv_fown").await;
    let c = raw().await;
    let o = format!("{}_owners", s.table());
    let owner = "ada";
    let hex = session_core::store::hex(owner);
    let now = now_ms();
    // A real entry with a live record.
    let k = StoreKey::from_raw("sess:real");
    s.create(&k, &rec(json!({})), TTL).await.unwrap();
    let e = IndexEntry::new(k.clone(), now, now, Some("dev\u{0}ice".into()));
    s.index(owner, &e, now + 3_600_000, now).await.unwrap();
    let good = Handle::of(&StoreKey::from_raw("sess:real"));
    // Garbage rows.
    let rows = [
        format!("('{hex}', 'not-a-handle', 'sess:real', 1, 1, NULL, 9223372036854775807)"),
        format!(
            "('{hex}', '{}', 'sess:other', -1, -1, 'not json', 9223372036854775807)",
            good.as_str()[..21].to_owned() + "A"
        ),
        format!(
            "('{hex}', '{}', 'sess:ghost', -5, -5, '\"d\"', -1)",
            Handle::of(&StoreKey::from_raw("sess:ghost")).as_str()
        ),
        format!(
            "('{hex}', '{}', 'sess:ghost2', 9223372036854775807, 9223372036854775807, '[1]', 9223372036854775807)",
            Handle::of(&StoreKey::from_raw("sess:ghost2")).as_str()
        ),
    ];
    for r in rows {
        c.batch_execute(&format!(
            "INSERT INTO \"{o}\" (owner, handle, key, since, seen, device, until) VALUES {r}"
        ))
        .await
        .unwrap();
    }
    let got = s.entries(owner, now).await.unwrap();
    println!("{got:#?}");
    let live: Vec<_> = got.iter().filter(|i| i.record_ttl.is_some()).collect();
    assert_eq!(live.len(), 1, "exactly the real entry names a live record");
    assert_eq!(live[0].entry.device.as_deref(), Some("dev\u{0}ice"));
    // A later index write of the same handle never shortens until.
    s.index(owner, &e, now + 1000, now).await.unwrap();
    let again = s.entries(owner, now).await.unwrap();
    let u = again
        .iter()
        .find(|i| i.entry.handle == e.handle)
        .unwrap()
        .until;
    assert_eq!(u, now + 3_600_000);
}

/// Huge inputs: an owner of 256 bytes of NULs and braces, 5000 entries for one owner, a huge
/// device string straight into the index.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_owner_many_entries_huge_device() {
    // Sizes, not speed, are under test: a loaded CI machine may take over the default second
    // to list 5,000 entries with a megabyte among them.
    let s = PostgresStore::builder(url())
        .table(unique_table("rv_huge"))
        .checkout_timeout(Duration::from_secs(10))
        .statement_timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    s.migrate().await.unwrap();
    let owner: String = "\u{0}}{".repeat(85) + "x"; // 256 bytes
    assert_eq!(owner.len(), 256);
    let now = now_ms();
    let n = 5000;
    let t = Instant::now();
    use futures_util::StreamExt;
    let errs: Vec<String> = futures_util::stream::iter(0..n)
        .map(|i| {
            let s = s.clone();
            let owner = owner.clone();
            async move {
                let k = StoreKey::from_raw(format!("sess:h{i}"));
                let e = IndexEntry::new(
                    k.clone(),
                    now,
                    now,
                    Some("D".repeat(if i == 0 { 1_000_000 } else { 10 })),
                );
                s.index(&owner, &e, now + 3_600_000, now).await?;
                s.create(&k, &rec(json!({})), TTL).await.map(|_| ())
            }
        })
        .buffer_unordered(32)
        .filter_map(|r| async move { r.err().map(|e| e.to_string()) })
        .collect()
        .await;
    println!(
        "{n} index+create in {:?}; errors {}: {:?}",
        t.elapsed(),
        errs.len(),
        errs.iter().take(3).collect::<Vec<_>>()
    );
    let t = Instant::now();
    let got = s.entries(&owner, now).await.unwrap();
    println!("listing {} entries took {:?}", got.len(), t.elapsed());
    assert_eq!(
        got.iter().filter(|i| i.record_ttl.is_some()).count(),
        n - errs.len()
    );
    assert!(
        errs.is_empty(),
        "{} of {n} calls failed under load",
        errs.len()
    );
}

/// Bounded time to error with the server stopped (SIGSTOP: a stall, not a refusal) for every
/// call kind, including the owner index, and recovery after SIGCONT.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_server_fails_within_the_limit() {
    let cluster = Cluster::start();
    let s = PostgresStore::builder(cluster.url())
        .table(unique_table("rv_stall"))
        .connect_timeout(Duration::from_millis(500))
        .checkout_timeout(Duration::from_millis(500))
        .statement_timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    s.migrate().await.unwrap();
    let k = StoreKey::from_raw("sess:stall");
    s.create(&k, &rec(json!({"a": 1})), TTL).await.unwrap();
    let now = now_ms();
    let e = IndexEntry::new(k.clone(), now, now, None);
    s.index("ada", &e, now + 3_600_000, now).await.unwrap();
    // The postmaster (from its pid file) of this cluster.
    let pidfile = std::env::temp_dir()
        .join(format!("pg-faults-{}-{}", std::process::id(), cluster.port))
        .join("data/postmaster.pid");
    let pm: Vec<String> = std::fs::read_to_string(pidfile)
        .unwrap()
        .lines()
        .take(1)
        .map(str::to_owned)
        .collect();
    assert!(!pm.is_empty());
    // The postmaster and all its children.
    let mut all = pm.clone();
    for p in &pm {
        let kids = std::process::Command::new("pgrep")
            .args(["-P", p])
            .output()
            .unwrap()
            .stdout;
        all.extend(
            String::from_utf8(kids)
                .unwrap()
                .split_whitespace()
                .map(str::to_owned),
        );
    }
    for p in &all {
        std::process::Command::new("kill")
            .args(["-STOP", p])
            .status()
            .unwrap();
    }
    let mut worst = Duration::ZERO;
    let mut bad = Vec::new();
    for i in 0..6 {
        let t = Instant::now();
        let r: Result<(), StoreError> = match i {
            0 => s.load(&k).await.map(|_| ()),
            1 => save_set(&s, &k, "b", json!(2)).await.map(|_| ()),
            2 => s.destroy(&k).await.map(|_| ()),
            3 => s.entries("ada", now).await.map(|_| ()),
            4 => s.index("ada", &e, now + 3_600_000, now).await,
            _ => s.unindex("ada", std::slice::from_ref(&e.handle), now).await,
        };
        let took = t.elapsed();
        worst = worst.max(took);
        if r.is_ok() || took > Duration::from_millis(2_100) {
            bad.push(format!("call {i}: {r:?} after {took:?}"));
        }
        println!("call {i}: {r:?} after {took:?}");
    }
    for p in &all {
        std::process::Command::new("kill")
            .args(["-CONT", p])
            .status()
            .unwrap();
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    // After the stall: the calls that timed out client side must not have applied later.
    let after = s.load(&k).await;
    println!("after SIGCONT: {after:?}");
    assert!(bad.is_empty(), "{bad:?}");
}

/// Index write succeeding and the record write failing (a trigger refuses inserts): the entry
/// names no live record, so the entries call says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn index_written_record_refused() {
    let s = store("rv_refuse").await;
    let c = raw().await;
    let t = s.table().to_owned();
    c.batch_execute(&format!(
        "CREATE FUNCTION \"{t}_no\"() RETURNS trigger AS $$ BEGIN RAISE EXCEPTION 'no'; END $$ LANGUAGE plpgsql;
         CREATE TRIGGER no_ins BEFORE INSERT ON \"{t}\" FOR EACH ROW EXECUTE FUNCTION \"{t}_no\"();"
    ))
    .await
    .unwrap();
    let k = StoreKey::from_raw("sess:refused");
    let now = now_ms();
    let e = IndexEntry::new(k.clone(), now, now, None);
    s.index("ada", &e, now + 3_600_000, now).await.unwrap();
    let r = s.create(&k, &rec(json!({})), TTL).await;
    println!("create: {r:?}");
    assert!(r.is_err());
    let got = s.entries("ada", now).await.unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].record_ttl, None);
}

/// Passwords never in Debug, errors or Display of build errors, however the URL is spelled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passwords_never_shown() {
    let urls = [
        "postgres://ada:s3cretpw@db:5432/app?connect_timeout=abc",
        "postgres://ada:s3cretpw@db:5432/app?sslmode=bogus",
        "postgres://ada:s3cretpw@db:5432/app?s3cretpw=1",
        "postgres://ada:s3%ZZcretpw@db/app",
        "postgres://ada:s3cretpw@[::1/app",
        "host=db user=ada password=s3cretpw port=x",
        "host=db user=ada password='s3cretpw",
        "host=db user=ada password=s3cretpw bogus=1",
        "postgresql://ada@db/app?password=s3cretpw&port=notaport",
        "postgres://ada:s3cretpw@db/app?options=-c%20x%3D1",
        "postgres://ada:s3cretpw@db/app?host=/tmp/s3cretpw",
        "postgres://ada:s3cretpw@s3cretpw.example/app",
    ];
    let mut shown = Vec::new();
    for u in urls {
        match PostgresStore::builder(u).build() {
            Ok(s) => shown.push(format!("{u} => ok {s:?}")),
            Err(e) => shown.push(format!("{u} => err {e} / {e:?}")),
        }
    }
    // (the last two put the text in a host name on purpose: not a password)
    let leaks: Vec<_> = shown
        .iter()
        .filter(|l| !l.contains("host=/tmp") && !l.contains("@s3cretpw.example"))
        .filter(|l| l.split(" => ").nth(1).unwrap().contains("s3"))
        .collect();
    println!("{}", shown.join("\n"));
    assert!(leaks.is_empty(), "{leaks:#?}");
}

/// Errors from a connection with a wrong password (the server asks for one): no password in
/// the error or the logs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_failure_shows_no_password() {
    let c = raw().await;
    let _ = c
        .batch_execute("DROP ROLE IF EXISTS rv_pw; CREATE ROLE rv_pw LOGIN PASSWORD 'right'")
        .await;
    let u = url().replace("postgres@", "rv_pw:wr0ngpassw0rd@");
    let s = PostgresStore::builder(u).build().unwrap();
    let e = s.load(&StoreKey::from_raw("sess:x")).await;
    println!("{e:?} {s:?}");
    if let Err(e) = e {
        assert!(!format!("{e} {e:?}").contains("wr0ng"));
    }
}
