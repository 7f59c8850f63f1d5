//! `--metrics-addr` and `--audit-log` over real TCP against real stores: a short session flow
//! (a new session, reads, writes, an owner login, a regenerate, a session over the record
//! limit answered 413, a logout), then a scrape of `GET /metrics` and a read of the audit file.
//!
//! Which run shows which family (every family's name is in `session_core::telemetry`):
//!
//! | family | memory | redis (`--client-cache`) | postgres |
//! |---|---|---|---|
//! | `session_store_duration_seconds` (histogram) | yes | yes | yes |
//! | `session_store_errors_total` (`too_large` of the 413) | yes | yes | yes |
//! | `session_answers_total` (`413` counted, the others declared 0) | yes | yes | yes |
//! | `session_set_cookie_bytes` (histogram) | yes | yes | yes |
//! | `session_record_bytes` (histogram) | yes | yes | yes |
//! | `session_client_cache_total` | no | yes | no |
//! | `session_pool_connections_in_use`, `session_pool_waits_total`, `session_pool_wait_seconds` | no | yes | yes |
//! | `session_sweeper_removed_total` (declared 0 when the layer is built) | yes | (declared, no sweeper) | yes |
//! | `session_events_total` | yes | yes | yes |
//! | `session_audit_dropped_total` | yes | yes | yes |
//!
//! The memory run needs nothing; the Redis run `redis-tests` (REDIS_URL), the PostgreSQL run
//! `postgres-tests` (DATABASE_URL), as `cargo xtask ci` runs them; the dashboard's check needs
//! all three runs.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::time::Duration;

use serde_json::Value;
use session_testkit::client::{Reply, browser, send};

mod support;
use support::KEYS;
use support::observe::{PATIENCE, families, names_in, panels, queries, series, start};

/// The dashboard, as shipped.
const DASHBOARD: &str = include_str!("../../../docs/grafana/sessions.json");

/// What a run left behind: the scrape after its flow, the audit file, and every cookie value
/// the client was sent (the session ids and their signatures).
struct Run {
    store: &'static str,
    scrape: String,
    audit: String,
    cookie_values: Vec<String>,
}

/// Starts the demo on `store_args`, runs the flow, scrapes, and reads the audit file once the
/// logout's event is in it. `store` is the store's `store` label.
async fn run(store: &'static str, store_args: &[&str]) -> Run {
    let d = start(store_args).await;
    let url = &d.url;
    let c = browser();
    let mut cookie_values = Vec::new();
    let mut keep = |r: Reply| {
        cookie_values.extend(
            r.cookies()
                .into_iter()
                .map(|(_, v)| v)
                .filter(|v| !v.is_empty()),
        );
        r
    };
    // A new session (created), then a write (saved), then reads.
    assert_eq!(keep(send(c.get(format!("{url}/"))).await).body, "1 views");
    assert_eq!(keep(send(c.get(format!("{url}/"))).await).body, "2 views");
    for _ in 0..2 {
        let r = keep(send(c.get(format!("{url}/session"))).await);
        assert_eq!(r.status, 200);
        assert_eq!(r.is_new(), Some(false));
    }
    let r = keep(send(c.put(format!("{url}/session")).body(r#"{"user":"ada"}"#)).await);
    assert_eq!(r.status, 204);
    // A login: the session bound to its owner, then a new id for it.
    let owner = session_testkit::unique("metrics_owner");
    let r = keep(
        send(
            c.put(format!("{url}/session/owner"))
                .body(format!(r#"{{"owner":"{owner}"}}"#)),
        )
        .await,
    );
    assert_eq!(r.status, 204, "{}", r.body);
    let r = keep(send(c.post(format!("{url}/session/regenerate"))).await);
    assert_eq!(r.status, 204);
    let r = keep(send(c.get(format!("{url}/owners/{owner}/sessions"))).await);
    assert_eq!(r.status, 200, "{}", r.body);
    // Past the store's record limit: the layer's own 413.
    let big = format!(r#"{{"big":"{}"}}"#, "x".repeat(63 * 1024));
    for _ in 0..2 {
        let r = keep(send(c.put(format!("{url}/session")).body(big.clone())).await);
        assert!(matches!(r.status, 204 | 413), "{}", r.status);
    }
    let more = format!(r#"{{"more":"{}"}}"#, "y".repeat(10 * 1024));
    let r = keep(send(c.put(format!("{url}/session")).body(more)).await);
    assert_eq!(r.status, 413);
    // A logout.
    let r = keep(send(c.delete(format!("{url}/session"))).await);
    assert_eq!(r.status, 204);
    assert!(!cookie_values.is_empty());

    let audit = tokio::time::timeout(PATIENCE, async {
        loop {
            let text = std::fs::read_to_string(&d.audit).unwrap_or_default();
            if text.contains(r#""event":"destroyed""#) {
                return text;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the logout's event never reached the audit file");

    let page = reqwest::get(&d.metrics).await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(
        page.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain"),
    );
    let scrape = page.text().await.unwrap();
    let elsewhere = d.metrics.replace("/metrics", "/session");
    assert_eq!(reqwest::get(&elsewhere).await.unwrap().status(), 404);
    Run {
        store,
        scrape,
        audit,
        cookie_values,
    }
}

/// `name` is a family of `kind` with a series whose labels contain every one of `labels`
/// (`key="value"`) and whose value is at least `min`.
#[track_caller]
fn assert_series(run: &Run, name: &str, kind: &str, labels: &[&str], min: f64) {
    let fams = families(&run.scrape);
    assert_eq!(
        fams.get(name).map(String::as_str),
        Some(kind),
        "{}: no {kind} {name}:\n{}",
        run.store,
        run.scrape
    );
    let sample = if kind == "histogram" {
        format!("{name}_count")
    } else {
        name.to_owned()
    };
    let found = series(&run.scrape, &sample)
        .into_iter()
        .any(|(l, v)| labels.iter().all(|want| l.contains(want)) && v >= min);
    assert!(
        found,
        "{}: no {sample} with {labels:?} at {min} or more:\n{}",
        run.store, run.scrape
    );
    if kind == "histogram" {
        let bucket = format!("{name}_bucket{{");
        assert!(
            run.scrape.lines().any(|l| l.starts_with(&bucket)),
            "{}: {name} has no buckets (a summary?):\n{}",
            run.store,
            run.scrape
        );
    }
}

/// What every store run shows: store calls, the 413's store error and answer, cookie and record
/// sizes, events, audit drops.
fn assert_common(run: &Run) {
    let store = format!(r#"store="{}""#, run.store);
    let store = store.as_str();
    for op in ["load", "create", "save", "supersede", "destroy"] {
        let op = format!(r#"op="{op}""#);
        assert_series(
            run,
            "session_store_duration_seconds",
            "histogram",
            &[store, &op, r#"outcome="ok""#],
            1.0,
        );
    }
    assert_series(
        run,
        "session_store_errors_total",
        "counter",
        &[store, r#"op="save""#, r#"kind="too_large""#],
        1.0,
    );
    assert_series(
        run,
        "session_answers_total",
        "counter",
        &[r#"status="413""#],
        1.0,
    );
    for status in ["503", "500", "403", "400"] {
        let status = format!(r#"status="{status}""#);
        assert_series(run, "session_answers_total", "counter", &[&status], 0.0);
    }
    assert_series(run, "session_set_cookie_bytes", "histogram", &[], 1.0);
    assert_series(run, "session_record_bytes", "histogram", &[store], 1.0);
    for event in ["created", "saved", "regenerated", "destroyed"] {
        let event = format!(r#"event="{event}""#);
        assert_series(run, "session_events_total", "counter", &[&event], 1.0);
    }
    assert_series(run, "session_audit_dropped_total", "counter", &[], 0.0);
    assert_eq!(
        series(&run.scrape, "session_audit_dropped_total"),
        [("", 0.0)]
    );
}

/// The pool families, for a store with a pool.
#[cfg(any(feature = "redis-tests", feature = "postgres-tests"))]
fn assert_pool(run: &Run) {
    let store = format!(r#"store="{}""#, run.store);
    assert_series(
        run,
        "session_pool_connections_in_use",
        "gauge",
        &[&store],
        0.0,
    );
    assert_series(run, "session_pool_waits_total", "counter", &[&store], 0.0);
    assert_series(
        run,
        "session_pool_wait_seconds",
        "histogram",
        &[&store],
        1.0,
    );
}

/// The audit file holds the flow's events as JSON lines, and neither it nor the scrape holds a
/// cookie value the client was sent (the session ids, their signatures) or a signing key.
fn assert_audit_and_no_secrets(run: &Run) {
    let mut seen = Vec::new();
    for line in run.audit.lines() {
        let event: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        let name = event["event"].as_str().expect(line).to_owned();
        assert!(event["at_ms"].as_u64().is_some(), "{line}");
        seen.push(name);
    }
    for want in [
        "created",
        "saved",
        "regenerated",
        "destroyed",
        "store_failed",
    ] {
        assert!(
            seen.iter().any(|s| s == want),
            "{}: no {want} in {seen:?}",
            run.store
        );
        assert!(run.audit.contains(&format!(r#""event":"{want}""#)));
    }
    let secrets = run
        .cookie_values
        .iter()
        .map(String::as_str)
        .chain(KEYS.split(','));
    for secret in secrets {
        assert!(
            !run.audit.contains(secret),
            "{}: audit shows {secret}",
            run.store
        );
        assert!(
            !run.scrape.contains(secret),
            "{}: scrape shows {secret}",
            run.store
        );
    }
}

async fn memory_run() -> Run {
    run("memory", &["--store", "memory"]).await
}

#[cfg(feature = "redis-tests")]
async fn redis_run() -> Run {
    let url = std::env::var("REDIS_URL").expect("REDIS_URL: run through `cargo xtask ci`");
    run("redis", &["--store", &url, "--client-cache", "1048576"]).await
}

#[cfg(feature = "postgres-tests")]
async fn postgres_run() -> Run {
    let url = std::env::var("DATABASE_URL").expect("DATABASE_URL: run through `cargo xtask ci`");
    run("postgresql", &["--store", &url]).await
}

/// Memory: no pool and no client cache; its sweeper's counter is there from the start.
#[tokio::test]
async fn memory_families_and_audit_log() {
    let run = memory_run().await;
    assert_common(&run);
    assert_series(
        &run,
        "session_sweeper_removed_total",
        "counter",
        &[r#"store="memory""#],
        0.0,
    );
    let fams = families(&run.scrape);
    assert!(
        !fams
            .keys()
            .any(|f| f.starts_with("session_pool_") || f == "session_client_cache_total"),
        "{fams:?}"
    );
    assert_audit_and_no_secrets(&run);
}

/// Redis with the client cache: its lookups, and the pool's checkouts.
#[cfg(feature = "redis-tests")]
#[tokio::test]
async fn redis_families_and_audit_log() {
    let run = redis_run().await;
    assert_common(&run);
    assert_pool(&run);
    // Every read looked in the cache first: a hit or a miss each time.
    let lookups: f64 = series(&run.scrape, "session_client_cache_total")
        .iter()
        .filter(|(l, _)| l.contains(r#"result="hit""#) || l.contains(r#"result="miss""#))
        .map(|(_, v)| v)
        .sum();
    assert!(lookups >= 1.0, "{}", run.scrape);
    assert_eq!(
        families(&run.scrape)
            .get("session_client_cache_total")
            .map(String::as_str),
        Some("counter")
    );
    assert_audit_and_no_secrets(&run);
}

/// PostgreSQL: the pool's checkouts, and its sweeper's counter.
#[cfg(feature = "postgres-tests")]
#[tokio::test]
async fn postgres_families_and_audit_log() {
    let run = postgres_run().await;
    assert_common(&run);
    assert_pool(&run);
    assert_series(
        &run,
        "session_sweeper_removed_total",
        "counter",
        &[r#"store="postgresql""#],
        0.0,
    );
    assert!(!families(&run.scrape).contains_key("session_client_cache_total"));
    assert_audit_and_no_secrets(&run);
}

/// Operator mistakes stop the demo at startup, saying which flag is wrong: an audit file that
/// can't be opened for appending, an address that can't be bound.
#[tokio::test]
async fn a_bad_flag_fails_at_startup() {
    let dir = std::env::temp_dir().join(session_testkit::unique("no_such_dir"));
    let file = dir.join("audit.jsonl");
    let file = file.to_str().unwrap();
    for (args, says) in [
        (["--audit-log", file], "--audit-log"),
        (["--audit-log", "/"], "--audit-log"),
        (["--metrics-addr", "not-an-address"], "--metrics-addr"),
        (["--metrics-addr", "127.0.0.1:99999"], "--metrics-addr"),
    ] {
        let out = tokio::time::timeout(
            PATIENCE,
            tokio::process::Command::new(env!("CARGO_BIN_EXE_demo"))
                .args(["--port", "0", "--keys", KEYS])
                .args(args)
                .kill_on_drop(true)
                .output(),
        )
        .await
        .expect("the demo started instead of failing")
        .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(says), "{args:?}: {err}");
        assert!(out.stdout.is_empty(), "{args:?} served");
    }
    assert!(!dir.exists());
}

/// The dashboard has a panel for each thing an operator watches, all on the
/// `${DS_PROMETHEUS}` data source.
#[test]
fn dashboard_has_every_panel() {
    let dashboard: Value = serde_json::from_str(DASHBOARD).unwrap();
    assert!(
        dashboard["__inputs"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["name"] == "DS_PROMETHEUS" && i["pluginId"] == "prometheus")
    );
    let graphs: Vec<&Value> = panels(&dashboard)
        .into_iter()
        .filter(|p| p["type"] != "row")
        .collect();
    for p in &graphs {
        assert_eq!(p["datasource"]["uid"], "${DS_PROMETHEUS}", "{}", p["title"]);
        for t in p["targets"].as_array().unwrap() {
            assert_eq!(t["datasource"]["uid"], "${DS_PROMETHEUS}", "{}", p["title"]);
        }
    }
    // (what the panel shows, a metric its expr queries, what else the expr must say)
    let wanted: [(&str, &str, &[&str]); 13] = [
        (
            "store latency p50",
            "session_store_duration_seconds_bucket",
            &["histogram_quantile(0.5,", "store", "op"],
        ),
        (
            "store latency p99",
            "session_store_duration_seconds_bucket",
            &["histogram_quantile(0.99,", "store", "op"],
        ),
        (
            "store errors by kind",
            "session_store_errors_total",
            &["rate(", "kind"],
        ),
        (
            "error answers by status",
            "session_answers_total",
            &["rate(", "status"],
        ),
        (
            "Set-Cookie bytes p99",
            "session_set_cookie_bytes_bucket",
            &["histogram_quantile(0.99,"],
        ),
        (
            "record bytes p99",
            "session_record_bytes_bucket",
            &["histogram_quantile(0.99,"],
        ),
        (
            "client-cache hit ratio",
            "session_client_cache_total",
            &[r#"result="hit""#, "/"],
        ),
        (
            "pool connections in use",
            "session_pool_connections_in_use",
            &["store"],
        ),
        ("pool waits", "session_pool_waits_total", &["rate("]),
        (
            "pool wait p99",
            "session_pool_wait_seconds_bucket",
            &["histogram_quantile(0.99,"],
        ),
        (
            "sweeper rows removed",
            "session_sweeper_removed_total",
            &["increase("],
        ),
        (
            "lifecycle events by event",
            "session_events_total",
            &["rate(", "event"],
        ),
        ("audit events dropped", "session_audit_dropped_total", &[]),
    ];
    for (what, metric, also) in wanted {
        let found = graphs.iter().any(|p| {
            p["targets"].as_array().unwrap().iter().any(|t| {
                let expr = t["expr"].as_str().unwrap_or("");
                names_in(expr).iter().any(|n| n == metric) && also.iter().all(|a| expr.contains(a))
            })
        });
        assert!(found, "no panel shows {what} ({metric} with {also:?})");
    }
    assert!(graphs.len() >= wanted.len());
    // Every query (the variables' too) reads at least one of ours.
    for q in queries(&dashboard) {
        assert!(!names_in(&q).is_empty(), "{q}");
    }
}

#[test]
fn names_in_finds_every_metric_name_and_only_those() {
    assert_eq!(
        names_in(
            r#"histogram_quantile(0.99, sum by (le) (rate(session_a_bytes_bucket[5m]))) / session_b_total{x="1"} + my_session_c"#
        ),
        ["session_a_bytes_bucket", "session_b_total"]
    );
    let scrape = "# TYPE session_x_total counter\nsession_x_total{a=\"1\"} 2\nsession_x_total_more 3\nsession_y 4\n";
    assert_eq!(series(scrape, "session_x_total"), [(r#"{a="1"}"#, 2.0)]);
    assert_eq!(families(scrape)["session_x_total"], "counter");
}

/// Every metric the dashboard queries is one the demo exports: the union of the memory,
/// Redis and PostgreSQL runs' scrapes (a histogram's `_bucket`, `_sum` and `_count` count as
/// the histogram).
#[cfg(all(feature = "redis-tests", feature = "postgres-tests"))]
#[tokio::test]
async fn dashboard_queries_only_exported_metrics() {
    let (memory, redis, postgres) = tokio::join!(memory_run(), redis_run(), postgres_run());
    let mut exported = std::collections::BTreeMap::new();
    for run in [&memory, &redis, &postgres] {
        exported.extend(families(&run.scrape));
    }
    let dashboard: Value = serde_json::from_str(DASHBOARD).unwrap();
    let mut queried = 0;
    for q in queries(&dashboard) {
        for name in names_in(&q) {
            let family = ["_bucket", "_sum", "_count"]
                .iter()
                .filter_map(|s| name.strip_suffix(s))
                .find(|base| exported.get(*base).is_some_and(|k| k == "histogram"))
                .unwrap_or(&name);
            assert!(
                exported.contains_key(family),
                "the dashboard queries {name}, which no scrape has ({q}); exported: {:?}",
                exported.keys()
            );
            queried += 1;
        }
    }
    assert!(queried >= 13);
    // And the other way round: every exported family is on the dashboard.
    let on_dashboard: Vec<String> = queries(&dashboard)
        .iter()
        .flat_map(|q| names_in(q))
        .collect();
    for family in exported.keys() {
        assert!(
            on_dashboard.iter().any(|n| n.starts_with(family.as_str())),
            "{family} is on no panel"
        );
    }
}
