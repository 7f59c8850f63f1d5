//! `cargo xtask bench`: the side-by-side load benchmark of BENCHMARKS.md.
//!
//! Builds `bench/` (the servers and the load generator), starts Redis and PostgreSQL, and
//! measures every server kind in every scenario right beside bare hyper, alternating which goes
//! first. Besides throughput and latency it reports what each request costs: the app server's
//! CPU (from `/proc`), Redis's CPU and the Redis commands it processed (from `INFO`), and
//! PostgreSQL's CPU (all its processes', from `/proc`), per request. It prints the medians as a
//! Markdown table, saves them as JSON (`target/bench/results.json`) and draws them as charts
//! (see `charts.rs`).

use std::collections::HashMap;
use std::process::{Command, Stdio};

use crate::charts;
use crate::postgres;
use crate::redis::redis;
use crate::results::{self, Results, Scenario, Server, Side};
use crate::system::cargo;

/// Every scenario, in table order. `returning`: a returning user's counter changes on every
/// request; `new`: a new visitor on every request; `read`: returning users whose session is
/// read but never changed (auth checks, page views); `mixed`: 90 % reads, 10 % changes;
/// `rolling-read`: reads under `rolling` (each read extends the session).
const SCENARIOS: [&str; 5] = ["returning", "new", "read", "mixed", "rolling-read"];

/// Every server kind, bare hyper first (the yardstick). Explanatory rows beside the issues':
/// `bare-cookies` is bare hyper sending the two static `Set-Cookie` headers our default writes
/// (what the wire format alone costs); `memory-lite` is ours with tower-sessions' default cookie
/// shape (one unsigned cookie, no expiry); `ts-memory-signed` is tower-sessions with signed
/// cookies like ours; `encrypted` is our cookie mode with `CookieMode::Encrypted`.
const KINDS: [&str; 15] = [
    "bare",
    "bare-cookies",
    "cookie",
    "encrypted",
    "memory",
    "memory-lite",
    "redis",
    "redis-cache",
    "ts-memory",
    "ts-memory-signed",
    "ts-redis",
    "actix-cookie",
    "actix-redis",
    "postgres",
    "ts-postgres",
];

/// Whose a server kind is: bare hyper's, ours, or a peer's (tower-sessions, actix-session).
fn side(kind: &str) -> Side {
    if kind.starts_with("bare") {
        Side::Baseline
    } else if kind.starts_with("ts-") || kind.starts_with("actix-") {
        Side::Peer
    } else {
        Side::Ours
    }
}

/// Where a server kind keeps its sessions.
fn store(kind: &str) -> &'static str {
    match kind {
        k if k.starts_with("bare") => "none",
        k if k.contains("redis") => "redis",
        k if k.contains("postgres") => "postgres",
        k if k.contains("memory") => "memory",
        _ => "cookie",
    }
}

/// The peers a kind's ratio is quoted against.
fn peers(kind: &str) -> &'static [&'static str] {
    match kind {
        "memory-lite" => &["ts-memory"],
        // Encrypted cookies beside signed ones (target: at most 1.3 × the cost).
        "encrypted" => &["cookie"],
        "memory" => &["ts-memory", "ts-memory-signed"],
        "cookie" => &["ts-memory", "actix-cookie"],
        "redis" => &["ts-redis", "actix-redis", "memory"],
        // The client cache's targets: beside the memory store and the best Redis peer.
        "redis-cache" => &["memory", "redis", "ts-redis", "actix-redis"],
        // The PostgreSQL issue's two targets: beside tower-sessions' sqlx store, and our Redis.
        "postgres" => &["ts-postgres", "redis"],
        _ => &[],
    }
}

/// One measurement from the load generator, with what it cost per request.
#[derive(Clone, Copy, Default)]
struct Point {
    rps: f64,
    /// How long the run lasted, s.
    secs: f64,
    p50_us: f64,
    p99_us: f64,
    /// The app server's CPU time per request (user + system), µs.
    server_cpu_us: f64,
    /// Redis's CPU time per request, µs (0 for servers that don't use it).
    redis_cpu_us: f64,
    /// Commands Redis processed per request, those a script runs included.
    redis_cmds: f64,
    /// PostgreSQL's CPU time per request (all its processes), µs.
    pg_cpu_us: f64,
}

/// Round trips to Redis per request: the commands clients sent (a script is one), counted by
/// `MONITOR` over a short separate run (MONITOR slows Redis down, so never during a
/// measurement).
fn round_trips(server: &BenchServer, redis_url: &str, scenario: &str) -> Result<f64, String> {
    use std::io::{BufRead, BufReader};
    let mut monitor = Command::new("redis-cli")
        .args(["-u", redis_url, "MONITOR"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("redis-cli MONITOR: {e}"))?;
    let out = monitor.stdout.take();
    let counter = std::thread::spawn(move || {
        let Some(out) = out else { return 0u64 };
        BufReader::new(out)
            .lines()
            .map_while(Result::ok)
            // `TIME [DB ADDR] "CMD" ...`; commands a script runs show as `[DB lua]`.
            .filter(|l| l.contains("] \"") && !l.contains(" lua]"))
            .count() as u64
    });
    std::thread::sleep(std::time::Duration::from_millis(300));
    let p = load(server, redis_url, None, 4, 1.0, scenario);
    std::thread::sleep(std::time::Duration::from_millis(300));
    let _ = monitor.kill();
    let _ = monitor.wait();
    let sent = counter.join().unwrap_or(0) as f64;
    let p = p?;
    // The two `INFO` calls of `load` went through too.
    Ok(((sent - 2.0).max(0.0)) / (p.rps * p.secs).max(1.0))
}

fn env_num(name: &str, default: f64) -> f64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

/// A bench server process, killed when dropped.
struct BenchServer {
    child: std::process::Child,
    url: String,
}

impl Drop for BenchServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl BenchServer {
    fn start(kind: &str, redis_url: &str, db_url: &str, rolling: bool) -> Result<Self, String> {
        use std::io::{BufRead, BufReader};
        let port = crate::system::free_port()?;
        let mut child = Command::new("bench/target/release/server")
            .args([kind, &port.to_string(), redis_url])
            .env("DATABASE_URL", db_url)
            .env("BENCH_ROLLING", if rolling { "1" } else { "0" })
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| format!("could not start the {kind} server: {e}"))?;
        let mut line = String::new();
        if let Some(out) = child.stdout.take() {
            let _ = BufReader::new(out).read_line(&mut line);
        }
        let server = Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
        };
        if line.trim() != "ready" {
            return Err(format!("the {kind} server did not start"));
        }
        Ok(server)
    }

    /// The process's CPU time so far (user + system), in seconds.
    fn cpu_secs(&self) -> f64 {
        cpu_secs_of(self.child.id()).unwrap_or(0.0)
    }
}

/// User + system CPU seconds of a process.
fn cpu_secs_of(pid: u32) -> Option<f64> {
    proc_stat(pid).map(|s| s.own)
}

/// What `/proc/PID/stat` says of a process's CPU time, in seconds.
struct ProcStat {
    parent: u32,
    /// User + system time (fields 14 and 15, in clock ticks of 1/100 s on Linux).
    own: f64,
    /// User + system time of the children it has waited for (fields 16 and 17).
    reaped: f64,
}

fn proc_stat(pid: u32) -> Option<ProcStat> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces; the fields after it are plain.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i)?.parse::<f64>().ok();
    Some(ProcStat {
        parent: fields.get(1)?.parse().ok()?,
        own: (ticks(11)? + ticks(12)?) / 100.0,
        reaped: (ticks(13)? + ticks(14)?) / 100.0,
    })
}

/// PostgreSQL's CPU seconds: the postmaster's, its live children's (backends, background
/// workers) and those of the children that exited.
fn pg_cpu_secs(postmaster: Option<u32>) -> f64 {
    let Some(main) = postmaster.and_then(proc_stat) else {
        return 0.0;
    };
    let children: f64 = std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(proc_stat)
        .filter(|s| Some(s.parent) == postmaster)
        .map(|s| s.own)
        .sum();
    main.own + main.reaped + children
}

/// Redis's own CPU seconds and the commands it has processed, from `INFO`.
fn redis_counters(url: &str) -> (f64, f64) {
    let out = Command::new("redis-cli")
        .args(["-u", url, "INFO"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    let field = |name: &str| -> f64 {
        out.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(':')?.trim().parse().ok())
            .unwrap_or(0.0)
    };
    (
        field("used_cpu_sys") + field("used_cpu_user"),
        field("total_commands_processed"),
    )
}

/// One load-generator run against `server`; `pg` is the postmaster's process id, when
/// PostgreSQL runs here.
fn load(
    server: &BenchServer,
    redis_url: &str,
    pg: Option<u32>,
    conns: usize,
    secs: f64,
    scenario: &str,
) -> Result<Point, String> {
    let (cpu0, (rcpu0, rcmd0)) = (server.cpu_secs(), redis_counters(redis_url));
    let pg0 = pg_cpu_secs(pg);
    let out = Command::new("bench/target/release/load")
        .args([&server.url, &conns.to_string(), &secs.to_string(), scenario])
        .output()
        .map_err(|e| e.to_string())?;
    let (cpu1, (rcpu1, rcmd1)) = (server.cpu_secs(), redis_counters(redis_url));
    let pg1 = pg_cpu_secs(pg);
    let out = String::from_utf8_lossy(&out.stdout).into_owned();
    let field = |name: &str| -> f64 {
        out.split_whitespace()
            .find_map(|kv| kv.strip_prefix(name).and_then(|v| v.strip_prefix('=')))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0)
    };
    let url = &server.url;
    if field("errors") > 0.0 {
        eprintln!(
            "xtask: warning: {url} {scenario} had errors: {}",
            out.trim()
        );
    }
    let requests = field("requests");
    if requests == 0.0 {
        return Err(format!(
            "no request succeeded against {url}: {}",
            out.trim()
        ));
    }
    // The two `INFO` calls are Redis commands too.
    let cmds = (rcmd1 - rcmd0 - 1.0).max(0.0);
    Ok(Point {
        rps: field("rps"),
        secs: requests / field("rps").max(1.0),
        p50_us: field("p50_us"),
        p99_us: field("p99_us"),
        server_cpu_us: (cpu1 - cpu0) * 1e6 / requests,
        redis_cpu_us: (rcpu1 - rcpu0) * 1e6 / requests,
        redis_cmds: cmds / requests,
        pg_cpu_us: (pg1 - pg0) * 1e6 / requests,
    })
}

/// The subset named by `var` (comma-separated), else everything; `keep` always stays.
fn chosen<'a>(var: &str, all: &[&'a str], keep: Option<&str>) -> Vec<&'a str> {
    match std::env::var(var) {
        Ok(list) => all
            .iter()
            .copied()
            .filter(|k| Some(*k) == keep || list.split(',').any(|c| c.trim() == *k))
            .collect(),
        Err(_) => all.to_vec(),
    }
}

pub(crate) fn run() -> Result<(), String> {
    let secs = env_num("BENCH_SECS", 5.0);
    let runs = env_num("BENCH_RUNS", 3.0) as usize;
    let conns = env_num("BENCH_CONNS", 32.0) as usize;
    // Into bench/target whatever CARGO_TARGET_DIR says: the servers are started from there.
    cargo(
        &["build", "--release", "--manifest-path", "bench/Cargo.toml"],
        &[("CARGO_TARGET_DIR", "bench/target")],
    )?;
    let (redis_url, _redis) = redis()?;
    let (db_url, pg) = postgres::postgres()?;
    let pg_pid = pg.as_ref().and_then(postgres::PgServer::pid);
    let kinds = chosen("BENCH_KINDS", &KINDS, Some("bare"));
    let scenarios = chosen("BENCH_SCENARIOS", &SCENARIOS, None);
    // These machines' speed drifts by tens of percent over minutes, so every server is measured
    // right next to bare hyper (alternating which goes first) and each ratio comes from one
    // such pair; the table quotes medians of those paired ratios.
    let mut points: HashMap<(usize, usize), Vec<Point>> = HashMap::new();
    let mut ratios: HashMap<(usize, usize), Vec<f64>> = HashMap::new();
    let mut trips: HashMap<(usize, usize), f64> = HashMap::new();
    let bare = BenchServer::start("bare", &redis_url, &db_url, false)?;
    for run in 1..=runs {
        for (ki, kind) in kinds.iter().enumerate().skip(1) {
            // Every server starts from an empty Redis.
            let _ = Command::new("redis-cli")
                .args(["-u", &redis_url, "FLUSHALL"])
                .stdout(Stdio::null())
                .status();
            let server = BenchServer::start(kind, &redis_url, &db_url, false)?;
            let rolling = if scenarios.contains(&"rolling-read") {
                Some(BenchServer::start(kind, &redis_url, &db_url, true)?)
            } else {
                None
            };
            for (si, scenario) in scenarios.iter().enumerate() {
                let s = match (*scenario, &rolling) {
                    ("rolling-read", Some(r)) => r,
                    _ => &server,
                };
                let measure =
                    |srv: &BenchServer, secs| load(srv, &redis_url, pg_pid, conns, secs, scenario);
                measure(&bare, 1.0)?; // warm-up
                measure(s, 1.0)?;
                let (b, k) = if run % 2 == 1 {
                    let b = measure(&bare, secs)?;
                    (b, measure(s, secs)?)
                } else {
                    let k = measure(s, secs)?;
                    (measure(&bare, secs)?, k)
                };
                eprintln!(
                    "xtask: run {run} {kind:>16} {scenario:>12}: {:>7.0} req/s, bare beside it {:>7.0} req/s: {:.2}; \
                     {:.1} µs server CPU, {:.1} µs Redis CPU, {:.2} Redis commands, {:.1} µs PostgreSQL CPU per request",
                    k.rps,
                    b.rps,
                    k.rps / b.rps,
                    k.server_cpu_us,
                    k.redis_cpu_us,
                    k.redis_cmds,
                    k.pg_cpu_us
                );
                if run == 1 && kind.contains("redis") {
                    trips.insert((ki, si), round_trips(s, &redis_url, scenario)?);
                }
                ratios.entry((ki, si)).or_default().push(k.rps / b.rps);
                points.entry((ki, si)).or_default().push(k);
                points.entry((0, si)).or_default().push(b);
            }
        }
    }
    drop(bare);
    let measured = Measured {
        points,
        ratios,
        trips,
    };
    let results = summary(&kinds, &scenarios, &measured, (runs, secs, conns));
    print_table(&results);
    let target = std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| "target".to_owned());
    let json = std::path::Path::new(&target)
        .join("bench")
        .join("results.json");
    results.save(&json)?;
    charts::publish(&results, &json)
}

/// Everything measured, by (kind, scenario) index.
struct Measured {
    points: HashMap<(usize, usize), Vec<Point>>,
    ratios: HashMap<(usize, usize), Vec<f64>>,
    /// Redis round trips per request (Redis-backed kinds, first run).
    trips: HashMap<(usize, usize), f64>,
}

/// The medians of everything measured, with the run's parameters (`runs`, `secs`, `conns`).
fn summary(
    kinds: &[&str],
    scenarios: &[&str],
    m: &Measured,
    (runs, secs, conns): (usize, f64, usize),
) -> Results {
    let server = |ki: usize, si: usize| -> Server {
        let list = m
            .points
            .get(&(ki, si))
            .map(Vec::as_slice)
            .unwrap_or_default();
        let of = |f: fn(&Point) -> f64| median(list.iter().map(f).collect());
        let x_bare = if ki == 0 {
            1.0
        } else {
            median(m.ratios.get(&(ki, si)).cloned().unwrap_or_default())
        };
        let kind = kinds[ki];
        Server {
            kind: kind.to_owned(),
            side: side(kind),
            store: store(kind).to_owned(),
            rps: results::round(of(|p| p.rps), 1),
            p50_us: results::round(of(|p| p.p50_us), 1),
            p99_us: results::round(of(|p| p.p99_us), 1),
            server_cpu_us: results::round(of(|p| p.server_cpu_us), 2),
            redis_cpu_us: results::round(of(|p| p.redis_cpu_us), 2),
            redis_cmds: results::round(of(|p| p.redis_cmds), 3),
            pg_cpu_us: results::round(of(|p| p.pg_cpu_us), 2),
            redis_round_trips: m.trips.get(&(ki, si)).map(|t| results::round(*t, 3)),
            x_bare: results::round(x_bare, 3),
        }
    };
    // The settings this run was given, as a command to run it again.
    let mut settings: Vec<String> = std::env::vars()
        .filter(|(k, _)| k.starts_with("BENCH_") && k != "BENCH_NOTE")
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    settings.sort();
    settings.push("cargo xtask bench".to_owned());
    Results {
        date: results::now_utc(),
        command: settings.join(" "),
        runs,
        secs,
        conns,
        cpus: std::thread::available_parallelism().map_or(0, |n| n.get()),
        cpu_model: results::cpu_model(),
        note: std::env::var("BENCH_NOTE").unwrap_or_default(),
        scenarios: scenarios
            .iter()
            .enumerate()
            .map(|(si, name)| Scenario {
                name: (*name).to_owned(),
                servers: (0..kinds.len()).map(|ki| server(ki, si)).collect(),
            })
            .collect(),
    }
}

/// The Markdown table of BENCHMARKS.md.
fn print_table(r: &Results) {
    let (runs, secs, conns) = (r.runs, r.secs, r.conns);
    println!(
        "\n{runs} runs, {secs} s per measurement, {conns} connections (one virtual user each), 2 server worker threads; \
         req/s, latencies and per-request costs are medians over all measurements, ratios are medians of ratios \
         measured back to back with bare hyper\n"
    );
    println!(
        "| scenario | server | req/s | p50 | p99 | × bare hyper | × peer | server CPU/req | Redis CPU/req | Redis round trips/req | Redis commands/req | PostgreSQL CPU/req |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|");
    for scenario in &r.scenarios {
        let name = &scenario.name;
        for p in &scenario.servers {
            let kind = &p.kind;
            let vs_peer = peers(kind)
                .iter()
                .filter_map(|peer| {
                    let q = scenario.servers.iter().find(|s| s.kind == *peer)?;
                    Some(format!("{:.2} ({peer})", p.x_bare / q.x_bare))
                })
                .collect::<Vec<_>>()
                .join(", ");
            let trips = p
                .redis_round_trips
                .map_or_else(String::new, |t| format!("{t:.2}"));
            println!(
                "| {name} | {kind} | {:.0} | {:.0} µs | {:.0} µs | {:.2} | {vs_peer} | {:.1} µs | {:.1} µs | {trips} | {:.2} | {:.1} µs |",
                p.rps,
                p.p50_us,
                p.p99_us,
                p.x_bare,
                p.server_cpu_us,
                p.redis_cpu_us,
                p.redis_cmds,
                p.pg_cpu_us
            );
        }
    }
}
