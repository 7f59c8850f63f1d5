//! TLS to a real PostgreSQL that serves it (a cluster of the test's own with the test-only
//! self-signed certificate in tests/data, trusted through `tls_root_certificate`). Needs
//! `--features postgres-tests,tls`, `PG_BIN` (`cargo xtask test-postgres` / `cargo xtask ci`).
#![cfg(all(feature = "postgres-tests", feature = "tls"))]
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod support;

use std::time::{Duration, Instant};

use session_core::store::{Created, Store, StoreKey};
use session_store_postgres::PostgresStore;
use support::{Cluster, small_record};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sslmode_require_with_a_private_root() {
    let cluster =
        Cluster::start_tls(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data"));
    let root = std::fs::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/test-cert.pem"),
    )
    .unwrap();
    let url = format!(
        "{}?sslmode=require",
        cluster.url().replace("127.0.0.1", "localhost")
    );
    let store = PostgresStore::builder(&url)
        .tls_root_certificate(&root)
        .unwrap()
        .build()
        .unwrap();
    store.migrate().await.unwrap();
    let key = StoreKey::from_raw("sess:tls");
    assert_eq!(
        store
            .create(&key, &small_record(), Duration::from_secs(60))
            .await
            .unwrap(),
        Created::Inserted
    );
    assert_eq!(
        store.load(&key).await.unwrap().into_record(),
        Some(small_record())
    );

    // The connections really are TLS.
    let client = support::client(&cluster.url()).await;
    let ssl: i64 = client
        .query_one(
            "SELECT count(*) FROM pg_stat_ssl JOIN pg_stat_activity USING (pid) WHERE ssl",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(ssl >= 1, "no TLS connection seen");

    // Without TLS configured, `sslmode=require` can't connect: a typed error, fast.
    let plain = PostgresStore::builder(&url)
        .connect_timeout(Duration::from_millis(500))
        .checkout_timeout(Duration::from_millis(500))
        .build()
        .unwrap();
    let t = Instant::now();
    let e = plain.load(&key).await.unwrap_err();
    assert!(e.is_transient(), "{e}");
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());

    // A PEM without a certificate fails when the store is built, not on a request.
    assert!(
        PostgresStore::builder(&url)
            .tls_root_certificate(b"not pem")
            .is_err()
    );
}
