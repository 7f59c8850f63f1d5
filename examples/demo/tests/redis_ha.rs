//! The demo on Redis Sentinel and Redis Cluster, as an outside check drives it: `--store
//! redis+sentinel://HOST:PORT,.../MASTER` and `--store redis+cluster://HOST:PORT,...`, each with
//! `--client-cache`; a counter per visitor that survives a `SENTINEL FAILOVER`, and malformed
//! store URLs refused at startup.
#![cfg(feature = "redis-tests")]
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod support;

use std::time::{Duration, Instant};

use session_testkit::client::{browser, text};
use session_testkit::redis::{Cluster, Sentinels};
use support::start;

/// `n` visitors count to three on the demo at `url`; their clients.
async fn count(url: &str, n: usize) -> Vec<reqwest::Client> {
    let mut clients = Vec::new();
    for _ in 0..n {
        let c = browser();
        for views in 1..=3 {
            assert_eq!(text(&c, &format!("{url}/")).await, format!("{views} views"));
        }
        clients.push(c);
    }
    clients
}

/// Host:port list of `urls` (`redis://127.0.0.1:P[/0]` each).
fn hosts(urls: &[String]) -> String {
    urls.iter()
        .map(|u| {
            u.trim_start_matches("redis://")
                .trim_end_matches("/0")
                .to_owned()
        })
        .collect::<Vec<_>>()
        .join(",")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sentinel_store_with_the_client_cache_through_a_failover() {
    let d = Sentinels::start().await;
    let store = format!("redis+sentinel://{}/{}", hosts(&d.urls()), Sentinels::NAME);
    let demo = start(&["--store", &store, "--client-cache", "1000000"]).await;
    let url = demo.url.clone();
    let clients = count(&url, 3).await;
    let before = d.master_port().await;
    let reply = d.sentinels[0]
        .cmd(&["SENTINEL", "FAILOVER", Sentinels::NAME])
        .await;
    assert!(format!("{reply:?}").eq_ignore_ascii_case("ok"), "{reply:?}");
    // Each visitor goes on counting through the failover: a view either counts on or is a 503
    // with Retry-After (while the replica is promoted), never lost or counted twice.
    let mut views = vec![3u64; clients.len()];
    let view = |i: usize, c: &reqwest::Client| {
        let (url, c) = (url.clone(), c.clone());
        async move {
            let r = c.get(format!("{url}/")).send().await.unwrap();
            match r.status().as_u16() {
                200 => Some(r.text().await.unwrap()),
                503 => {
                    assert!(r.headers().contains_key("retry-after"));
                    None
                }
                other => panic!("visitor {i}: {other}"),
            }
        }
    };
    let t = Instant::now();
    while d.master_port().await == before {
        assert!(t.elapsed() < Duration::from_secs(20), "no promotion");
        for (i, c) in clients.iter().enumerate() {
            if let Some(body) = view(i, c).await {
                views[i] += 1;
                assert_eq!(body, format!("{} views", views[i]), "visitor {i}");
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for (i, c) in clients.iter().enumerate() {
        let t = Instant::now();
        let body = loop {
            if let Some(body) = view(i, c).await {
                break body;
            }
            assert!(
                t.elapsed() < Duration::from_secs(10),
                "visitor {i} never served"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        assert_eq!(body, format!("{} views", views[i] + 1), "visitor {i}");
    }
    count(&url, 2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_store_with_the_client_cache() {
    let cluster = Cluster::start().await;
    let store = format!("redis+cluster://{}", hosts(&cluster.urls()));
    for cache in [None, Some("1000000")] {
        let mut args = vec!["--store", store.as_str()];
        if let Some(bytes) = cache {
            args.extend(["--client-cache", bytes]);
        }
        let demo = start(&args).await;
        count(&demo.url, 5).await;
    }
}

#[tokio::test]
async fn malformed_redis_store_urls_stop_the_demo() {
    for bad in [
        "redis+sentinel://127.0.0.1:26379",
        "redis+sentinel://127.0.0.1:26379/",
        "redis+sentinel:///master",
        "redis+cluster://",
    ] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_demo"))
            .args(["--keys", support::KEYS, "--store", bad])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{bad}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("--store"), "{bad}: {err}");
    }
}
