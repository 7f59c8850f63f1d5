//! The load benchmark's medians as data: what `cargo xtask bench` saves as JSON after a run
//! (`target/bench/results.json`, and `docs/bench/results.json` beside the charts) and what the
//! charts and `cargo xtask bench-charts` read back.

use std::path::Path;

use serde::{Deserialize, Serialize};

/// One run of `cargo xtask bench`: its parameters and, per scenario, per server kind, the medians.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub(crate) struct Results {
    /// When the run ended, UTC (`YYYY-MM-DD HH:MM UTC`).
    pub(crate) date: String,
    /// The command with the `BENCH_*` settings it ran with.
    pub(crate) command: String,
    /// Measurements per (server, scenario) cell, each beside bare hyper.
    pub(crate) runs: usize,
    /// Seconds per measurement.
    pub(crate) secs: f64,
    /// Keep-alive connections of the load generator, one virtual user each.
    pub(crate) conns: usize,
    /// Logical CPUs of the machine (the servers, Redis, PostgreSQL and the load generator share
    /// them).
    pub(crate) cpus: usize,
    /// The CPU's model name, from `/proc/cpuinfo` (empty when unknown).
    #[serde(default)]
    pub(crate) cpu_model: String,
    /// A word on the run (`BENCH_NOTE`), shown under the charts' titles.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub(crate) note: String,
    /// In table order.
    pub(crate) scenarios: Vec<Scenario>,
}

/// The servers measured in one scenario.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub(crate) struct Scenario {
    /// `returning`, `new`, `read`, `mixed` or `rolling-read`.
    pub(crate) name: String,
    /// Bare hyper first, then the others in table order.
    pub(crate) servers: Vec<Server>,
}

/// Whose a server kind is.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Side {
    /// Bare hyper, with or without fixed cookies: the yardstick.
    Baseline,
    /// This library.
    Ours,
    /// tower-sessions, actix-session.
    Peer,
}

/// The medians of one server kind in one scenario.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub(crate) struct Server {
    pub(crate) kind: String,
    pub(crate) side: Side,
    /// Where its sessions live: `none`, `cookie`, `memory`, `redis` or `postgres` (the charts
    /// put a store's kinds side by side).
    pub(crate) store: String,
    /// Requests per second.
    pub(crate) rps: f64,
    /// Latency percentiles, µs.
    pub(crate) p50_us: f64,
    pub(crate) p99_us: f64,
    /// The app server's CPU time per request (user + system), µs.
    pub(crate) server_cpu_us: f64,
    /// Redis's CPU time per request, µs (0 for servers that don't use it).
    pub(crate) redis_cpu_us: f64,
    /// Commands Redis processed per request, those a script runs included.
    pub(crate) redis_cmds: f64,
    /// PostgreSQL's CPU time per request (all its processes), µs; 0 when it was not started
    /// here (`DATABASE_URL`).
    #[serde(default)]
    pub(crate) pg_cpu_us: f64,
    /// Round trips to Redis per request (Redis-backed kinds only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) redis_round_trips: Option<f64>,
    /// Throughput as a fraction of bare hyper's: the median of ratios measured back to back.
    pub(crate) x_bare: f64,
}

impl Results {
    /// The run's parameters in a few words, for chart titles (the note goes on a line of its
    /// own).
    pub(crate) fn parameters(&self) -> String {
        let runs = if self.runs == 1 {
            "1 run".to_owned()
        } else {
            format!("{} runs", self.runs)
        };
        format!(
            "cargo xtask bench, {}: {runs} × {} s per server and scenario, {} connections, {} CPUs",
            self.date, self.secs, self.conns, self.cpus
        )
    }

    pub(crate) fn load(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("could not read {}: {e}", path.display()))?;
        serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    pub(crate) fn save(&self, path: &Path) -> Result<(), String> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| format!("could not create {}: {e}", dir.display()))?;
        }
        let mut text = serde_json::to_string_pretty(self).map_err(|e| e.to_string())?;
        text.push('\n');
        std::fs::write(path, text).map_err(|e| format!("could not write {}: {e}", path.display()))
    }
}

/// `x` rounded to `digits` decimals, so the saved JSON reads (and diffs) like the table.
pub(crate) fn round(x: f64, digits: i32) -> f64 {
    let scale = 10f64.powi(digits);
    (x * scale).round() / scale
}

/// Now, UTC, as `YYYY-MM-DD HH:MM UTC`.
pub(crate) fn now_utc() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    utc(secs)
}

/// A Unix time as `YYYY-MM-DD HH:MM UTC` (the proleptic Gregorian calendar, from days since
/// 1970-01-01 as in Howard Hinnant's `civil_from_days`).
fn utc(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let (hour, minute) = ((secs % 86_400) / 3600, (secs % 3600) / 60);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02} {hour:02}:{minute:02} UTC")
}

/// The CPU's model name, from `/proc/cpuinfo` (empty when unknown).
pub(crate) fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find_map(|l| l.strip_prefix("model name")?.split_once(':'))
                .map(|(_, name)| name.split_whitespace().collect::<Vec<_>>().join(" "))
        })
        .unwrap_or_default()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A small result set: bare hyper, two of ours and two peers in two scenarios.
    pub(crate) fn sample() -> Results {
        let server = |kind: &str, side, store: &str, rps: f64, redis: f64| Server {
            kind: kind.to_owned(),
            side,
            store: store.to_owned(),
            rps,
            p50_us: 3.2e6 / rps,
            p99_us: 9.0e6 / rps,
            server_cpu_us: 1.0e6 / rps,
            redis_cpu_us: redis,
            redis_cmds: if redis > 0.0 { 1.0 } else { 0.0 },
            pg_cpu_us: 0.0,
            redis_round_trips: (redis > 0.0).then_some(1.0),
            x_bare: rps / 90_000.0,
        };
        let servers = vec![
            server("bare", Side::Baseline, "none", 90_000.0, 0.0),
            server("memory", Side::Ours, "memory", 75_000.0, 0.0),
            server("ts-memory", Side::Peer, "memory", 70_000.0, 0.0),
            server("redis", Side::Ours, "redis", 40_000.0, 6.5),
            server("ts-redis", Side::Peer, "redis", 38_000.0, 7.5),
        ];
        Results {
            date: "2026-12-08 10:00 UTC".to_owned(),
            command: "BENCH_RUNS=1 cargo xtask bench".to_owned(),
            runs: 1,
            secs: 3.0,
            conns: 32,
            cpus: 2,
            cpu_model: "Test CPU".to_owned(),
            note: "a test & <nothing> measured".to_owned(),
            scenarios: ["returning", "read"]
                .iter()
                .map(|name| Scenario {
                    name: (*name).to_owned(),
                    servers: servers.clone(),
                })
                .collect(),
        }
    }

    #[test]
    fn json_round_trip() {
        let results = sample();
        let text = serde_json::to_string_pretty(&results).unwrap_or_default();
        assert!(text.contains("\"side\": \"peer\""), "{text}");
        let back: Results = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
        assert_eq!(back, results);
    }

    #[test]
    fn utc_dates() {
        assert_eq!(utc(0), "1970-01-01 00:00 UTC");
        assert_eq!(utc(951_782_400 + 3_660), "2000-02-29 01:01 UTC");
        assert_eq!(utc(1_798_675_200), "2026-12-31 00:00 UTC");
        assert_eq!(utc(1_798_761_599), "2026-12-31 23:59 UTC");
    }

    #[test]
    fn rounding() {
        assert_eq!(round(12.345_6, 1), 12.3);
        assert_eq!(round(75_123.6, 0), 75_124.0);
    }
}
