//! `rediss://` against a real TLS redis-server (test-only self-signed certificate in
//! tests/data, trusted through `tls_root_certificate`).
#![cfg(all(feature = "redis-tests", feature = "tls"))]
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod support;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;
use session_core::MaxAge;
use session_core::store::{Created, Loaded, Meta, Record, Store, StoreKey};
use session_store_redis::RedisStore;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rediss_with_a_private_root() {
    let data = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data");
    let port = support::free_port();
    let mut server = Command::new("redis-server")
        .args([
            "--port",
            "0",
            "--tls-port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
        ])
        .args([
            "--tls-cert-file",
            data.join("test-cert.pem").to_str().unwrap(),
        ])
        .args([
            "--tls-key-file",
            data.join("test-key.pem").to_str().unwrap(),
        ])
        .args([
            "--tls-ca-cert-file",
            data.join("test-cert.pem").to_str().unwrap(),
        ])
        .args([
            "--tls-auth-clients",
            "no",
            "--save",
            "",
            "--appendonly",
            "no",
            "--logfile",
            "",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let t = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "TLS redis-server did not start"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let root = std::fs::read(data.join("test-cert.pem")).unwrap();
    let store = RedisStore::builder(format!("rediss://127.0.0.1:{port}/0"))
        .tls_root_certificate(root)
        .build()
        .await
        .unwrap();
    let key = StoreKey::from_raw("sess:tls");
    let rec = Record {
        data: json!({"secure": true}).as_object().cloned().unwrap(),
        meta: Meta {
            expire: None,
            max_age: MaxAge::Session,
            created: None,
        },
    };
    assert_eq!(
        store
            .create(&key, &rec, Duration::from_secs(60))
            .await
            .unwrap(),
        Created::Inserted
    );
    assert_eq!(store.load(&key).await.unwrap(), Loaded::Live(rec));
    // Without trusting the root, the handshake fails: a typed error, fast.
    let untrusting = RedisStore::builder(format!("rediss://127.0.0.1:{port}/0"))
        .build()
        .await
        .unwrap();
    let t = Instant::now();
    assert!(untrusting.load(&key).await.is_err());
    assert!(t.elapsed() < Duration::from_secs(2));
    let _ = server.kill();
    let _ = server.wait();
}
