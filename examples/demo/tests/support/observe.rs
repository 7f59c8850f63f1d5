//! The demo observed: started with `--metrics-addr 127.0.0.1:0` and `--audit-log`, its
//! Prometheus scrape parsed, and the metric names a Grafana dashboard's queries read.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};

use super::KEYS;

/// Startup, and the audit file catching up: only a hang comes near it.
pub const PATIENCE: Duration = Duration::from_secs(10);

/// The demo with `--metrics-addr 127.0.0.1:0` and `--audit-log` (a fresh file), killed (and its
/// file removed) when dropped.
pub struct Demo {
    /// `http://127.0.0.1:PORT`, the session routes.
    pub url: String,
    /// `http://127.0.0.1:PORT/metrics`, from its `metrics on` line.
    pub metrics: String,
    /// The `--audit-log` file.
    pub audit: PathBuf,
    _child: tokio::process::Child,
}

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.audit);
    }
}

/// Starts the demo with `store_args`; its URLs are read from its `listening on` line (stdout)
/// and its `metrics on` line (stderr).
pub async fn start(store_args: &[&str]) -> Demo {
    let audit = std::env::temp_dir().join(format!(
        "{}.jsonl",
        session_testkit::unique("demo_metrics_audit")
    ));
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_demo"))
        .args([
            "--port",
            "0",
            "--keys",
            KEYS,
            "--metrics-addr",
            "127.0.0.1:0",
        ])
        .arg("--audit-log")
        .arg(&audit)
        .args(store_args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut err = BufReader::new(child.stderr.take().unwrap()).lines();
    let (url, metrics) = tokio::time::timeout(PATIENCE, async {
        let mut metrics = None;
        while let Some(line) = err.next_line().await.unwrap() {
            if let Some(m) = line.strip_prefix("metrics on ") {
                metrics = Some(m.to_owned());
                break;
            }
        }
        let metrics = metrics.expect("the demo ended without a `metrics on` line");
        let line = out.next_line().await.unwrap().expect("no `listening on`");
        let url = line.strip_prefix("listening on ").expect(&line).to_owned();
        (url, metrics)
    })
    .await
    .expect("the demo did not start");
    // Keep reading both, so that no later line meets a full or closed pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = out.next_line().await {} });
    tokio::spawn(async move { while let Ok(Some(_)) = err.next_line().await {} });
    Demo {
        url,
        metrics,
        audit,
        _child: child,
    }
}

/// Every family of a scrape (its `# TYPE` lines): name → kind.
pub fn families(scrape: &str) -> BTreeMap<String, String> {
    scrape
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_once(' '))
        .map(|(name, kind)| (name.to_owned(), kind.to_owned()))
        .collect()
}

/// The series of `name` (exactly that name): its labels (`{...}`, or empty) and value.
pub fn series<'a>(scrape: &'a str, name: &str) -> Vec<(&'a str, f64)> {
    scrape
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let rest = l.strip_prefix(name)?;
            let (labels, value) = rest.rsplit_once(' ')?;
            (labels.is_empty() || labels.starts_with('{')).then(|| (labels, value.parse().ok()))
        })
        .filter_map(|(labels, v)| Some((labels, v?)))
        .collect()
}

/// Every `session_*` metric name in `promql` (`session_[a-z_]+`).
pub fn names_in(promql: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = promql;
    while let Some(at) = rest.find("session_") {
        let before = rest[..at].chars().next_back();
        let tail = &rest[at..];
        let len = tail
            .find(|c: char| !(c.is_ascii_lowercase() || c == '_'))
            .unwrap_or(tail.len());
        if !before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
            out.push(tail[..len].to_owned());
        }
        rest = &tail[len..];
    }
    out
}

/// Every panel of the dashboard (rows included, and the panels inside collapsed rows).
pub fn panels(dashboard: &Value) -> Vec<&Value> {
    let mut out = Vec::new();
    for p in dashboard["panels"].as_array().expect("no panels") {
        out.push(p);
        if let Some(inner) = p["panels"].as_array() {
            out.extend(inner);
        }
    }
    out
}

/// Every query of the dashboard: each panel target's `expr`, and each variable's query.
pub fn queries(dashboard: &Value) -> Vec<String> {
    let mut out: Vec<String> = panels(dashboard)
        .into_iter()
        .flat_map(|p| p["targets"].as_array().cloned().unwrap_or_default())
        .map(|t| {
            t["expr"]
                .as_str()
                .expect("a target without expr")
                .to_owned()
        })
        .collect();
    for v in dashboard["templating"]["list"].as_array().unwrap() {
        if let Some(q) = v["query"]["query"].as_str().or(v["definition"].as_str()) {
            out.push(q.to_owned());
        }
    }
    out
}
