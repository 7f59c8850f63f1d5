//! Statements held up by locks (cancelled at the statement timeout, holding up no other
//! session, a migrate that fails half-way) and a read-only server.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_statement_blocked_by_a_lock_is_cancelled_at_the_statement_timeout() {
    let store = fast_store(url(), "lock").await;
    let key = StoreKey::from_raw("sess:lock");
    store.create(&key, &small_record(), TTL).await.unwrap();
    let mut client = support::client(&url()).await;
    let tx = client.transaction().await.unwrap();
    let table = store.table().to_owned();
    tx.batch_execute(&format!("LOCK TABLE \"{table}\" IN ACCESS EXCLUSIVE MODE"))
        .await
        .unwrap();
    let t = Instant::now();
    let delta = set(&[("a", json!(1))]);
    let e = store
        .save(
            &key,
            Change {
                delta: &delta,
                data: &Data::new(),
                meta: small_record().meta,
            },
            TTL,
        )
        .await
        .unwrap_err();
    let took = t.elapsed();
    println!("blocked save failed after {took:?}: {e}");
    assert!(matches!(e, StoreError::Timeout(_)), "{e}");
    assert!(took < Duration::from_millis(1500), "took {took:?}");
    tx.rollback().await.unwrap();
    let took = until_ok(&store, &key, Duration::from_secs(2)).await;
    assert!(took < Duration::from_secs(1));
}

/// A statement waiting on a row lock holds only its own connection: calls of other sessions
/// go on on the others. Attack: a row locked by another transaction, 4 saves of it (each
/// cancelled at the 2 s statement timeout), and 200 loads and saves of other sessions at once,
/// 3 rounds: none fails, and every one is answered before the blocked saves are cancelled (a
/// call that waited for the lock would come back after them, however fast the machine).
/// (Connections shared by many calls, tried for speed, failed this: the calls queued behind a
/// blocked statement waited for it, one statement timeout per blocked statement ahead of
/// them.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_row_locked_elsewhere_holds_up_no_other_session() {
    let store = PostgresStore::builder(url())
        .table(unique_table("rowlock"))
        .statement_timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    store.migrate().await.unwrap();
    let locked = StoreKey::from_raw("sess:rowlock");
    store.create(&locked, &small_record(), TTL).await.unwrap();
    let others: Vec<StoreKey> = (0..40)
        .map(|i| StoreKey::from_raw(format!("sess:other{i}")))
        .collect();
    for k in &others {
        store.create(k, &small_record(), TTL).await.unwrap();
    }
    let mut client = support::client(&url()).await;
    let table = store.table().to_owned();
    for round in 0..3 {
        let tx = client.transaction().await.unwrap();
        tx.query(
            &format!("SELECT 1 FROM \"{table}\" WHERE key = $1 FOR UPDATE"),
            &[&locked.as_str()],
        )
        .await
        .unwrap();
        let blocked: Vec<_> = (0..4)
            .map(|_| {
                let (store, locked) = (store.clone(), locked.clone());
                tokio::spawn(async move {
                    let delta = set(&[("a", json!(round))]);
                    let change = Change {
                        delta: &delta,
                        data: &Data::new(),
                        meta: small_record().meta,
                    };
                    store.save(&locked, change, TTL).await
                })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(20)).await;
        let calls = (0..200).map(|i| {
            let (store, k) = (store.clone(), others[i % others.len()].clone());
            tokio::spawn(async move {
                let t = Instant::now();
                let r = if i % 2 == 0 {
                    store.load(&k).await.map(|_| ())
                } else {
                    let delta = set(&[("n", json!(i))]);
                    let change = Change {
                        delta: &delta,
                        data: &Data::new(),
                        meta: small_record().meta,
                    };
                    store.save(&k, change, TTL).await.map(|_| ())
                };
                (r, t.elapsed())
            })
        });
        let mut slowest = Duration::ZERO;
        for call in futures_util::future::join_all(calls).await {
            let (r, took) = call.unwrap();
            assert!(r.is_ok(), "round {round}: {r:?}");
            slowest = slowest.max(took);
        }
        // Every call is back, and no blocked save has been cancelled yet.
        assert!(
            blocked.iter().all(|b| !b.is_finished()),
            "round {round}: a call came back only after the blocked saves (the slowest took \
             {slowest:?})"
        );
        for b in blocked {
            let e = b.await.unwrap().unwrap_err();
            assert!(matches!(e, StoreError::Timeout(_)), "{e}");
        }
        tx.rollback().await.unwrap();
        println!("round {round}: 200 calls beside a locked row, the slowest {slowest:?}");
    }
}

/// A `migrate` that fails half-way (here its `CREATE INDEX IF NOT EXISTS` waits past the
/// statement timeout for a table another transaction holds locked) leaves no pooled
/// connection in a broken transaction: 100 loads and saves after it all work. (With an
/// explicit `BEGIN`, the failed statement skipped the `COMMIT`, and every later call on that
/// connection failed with 25P02.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_migrate_leaves_every_connection_usable() {
    let store = fast_store(url(), "migfail").await;
    let key = StoreKey::from_raw("sess:migfail");
    store.create(&key, &small_record(), TTL).await.unwrap();
    let mut admin = support::client(&url()).await;
    let tx = admin.transaction().await.unwrap();
    let table = store.table().to_owned();
    tx.batch_execute(&format!("LOCK TABLE \"{table}\" IN ACCESS EXCLUSIVE MODE"))
        .await
        .unwrap();
    let e = store.migrate().await.unwrap_err();
    assert!(matches!(e, StoreError::Timeout(_)), "{e}");
    tx.rollback().await.unwrap();
    for i in 0..100 {
        store.load(&key).await.unwrap();
        let delta = set(&[("n", json!(i))]);
        let change = Change {
            delta: &delta,
            data: &Data::new(),
            meta: small_record().meta,
        };
        store.save(&key, change, TTL).await.unwrap();
    }
    store.migrate().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_server_refuses_writes_with_a_typed_error() {
    let writer = fast_store(url(), "ro").await;
    let key = StoreKey::from_raw("sess:ro");
    writer.create(&key, &small_record(), TTL).await.unwrap();
    let table = writer.table().to_owned();
    let ro_url = if url().contains('?') {
        format!("{}&options=-c%20default_transaction_read_only%3Don", url())
    } else {
        format!("{}?options=-c%20default_transaction_read_only%3Don", url())
    };
    let reader = PostgresStore::builder(ro_url).table(table).build().unwrap();
    assert!(
        reader.load(&key).await.unwrap().into_record().is_some(),
        "reads work"
    );
    let t = Instant::now();
    let e = reader
        .create(&StoreKey::from_raw("sess:ro2"), &small_record(), TTL)
        .await
        .unwrap_err();
    assert!(matches!(e, StoreError::Rejected(_)), "{e}");
    assert!(t.elapsed() < Duration::from_secs(1));
    assert!(
        !format!("{e}").contains("postgres://"),
        "no connection string in errors"
    );
}
