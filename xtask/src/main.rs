//! Project automation.
//!
//! - `cargo xtask ci`: format check, clippy `-D warnings`, every test (the Redis ones against a
//!   `redis-server` this command starts), docs without warnings.
//! - `cargo xtask test-redis`: every Redis-backed test, against `REDIS_URL` if set, else a
//!   `redis-server` it starts on a free loopback port without persistence and stops after.

use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

const USAGE: &str = "usage: cargo xtask <command>

commands:
  ci          format check, clippy -D warnings, every test (starts redis-server), docs
  test-redis  the Redis-backed tests (REDIS_URL, or a redis-server started here; the fault
              and cluster tests start servers and a six-node cluster of their own)
  bench       side-by-side load test: bare hyper, ours (cookie, memory, Redis), tower-sessions
              (BENCH_SECS per point, default 10; BENCH_RUNS, default 3; BENCH_CONNS, default 32)";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("ci") => ci(),
        Some("test-redis") => test_redis(),
        Some("bench") => bench(),
        Some("-h" | "--help" | "help") | None => {
            println!("{USAGE}");
            Ok(())
        }
        Some(other) => Err(format!("unknown command {other:?}\n\n{USAGE}")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e}");
            ExitCode::FAILURE
        }
    }
}

fn cargo(args: &[&str], env: &[(&str, &str)]) -> Result<(), String> {
    eprintln!("xtask: cargo {}", args.join(" "));
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let status = Command::new(cargo)
        .args(args)
        .envs(env.iter().copied())
        .status()
        .map_err(|e| format!("could not run cargo: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("`cargo {}` failed ({status})", args.join(" ")))
    }
}

/// A redis-server started for the tests; stopped on drop, whatever happened.
struct RedisServer {
    child: Child,
    url: String,
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        eprintln!("xtask: stopped the redis-server at {}", self.url);
    }
}

/// `REDIS_URL` when set (nothing started), else a fresh redis-server.
fn redis() -> Result<(String, Option<RedisServer>), String> {
    if let Ok(url) = std::env::var("REDIS_URL") {
        eprintln!("xtask: using REDIS_URL");
        return Ok((url, None));
    }
    let bin = std::env::var("REDIS_SERVER_BIN").unwrap_or_else(|_| "redis-server".to_owned());
    let found = Command::new(&bin)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        return Err(format!(
            "`{bin}` was not found. Install it (Debian/Ubuntu: `apt-get install redis-server`), \
             set REDIS_SERVER_BIN to its path, or point REDIS_URL at a running Redis"
        ));
    }
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| format!("no free port: {e}"))?
        .port();
    let child = Command::new(&bin)
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .args(["--daemonize", "no", "--logfile", ""])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("could not start {bin}: {e}"))?;
    let url = format!("redis://127.0.0.1:{port}/0");
    let server = RedisServer {
        child,
        url: url.clone(),
    };
    let t = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if t.elapsed() > Duration::from_secs(10) {
            return Err("redis-server did not start within 10 s".into());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    eprintln!("xtask: started redis-server at {url}");
    Ok((url, Some(server)))
}

fn test_redis() -> Result<(), String> {
    let (url, _server) = redis()?;
    cargo(
        &[
            "test",
            "-p",
            "session-store-redis",
            "-p",
            "demo",
            "--features",
            "session-store-redis/redis-tests,session-store-redis/tls,demo/redis-tests",
        ],
        &[("REDIS_URL", &url)],
    )
}

fn ci() -> Result<(), String> {
    cargo(&["fmt", "--all", "--", "--check"], &[])?;
    cargo(
        &[
            "clippy",
            "--workspace",
            "--all-targets",
            "--all-features",
            "--",
            "-D",
            "warnings",
        ],
        &[],
    )?;
    {
        // `--all-features` turns on the Redis tests; they run against this server.
        let (url, _server) = redis()?;
        cargo(
            &["test", "--workspace", "--all-features"],
            &[("REDIS_URL", &url)],
        )?;
    }
    cargo(
        &["doc", "--workspace", "--no-deps", "--all-features"],
        &[("RUSTDOCFLAGS", "-D warnings")],
    )?;
    eprintln!("xtask: ci passed");
    Ok(())
}

/// One measurement from the load generator.
#[derive(Clone, Copy, Default)]
struct Point {
    rps: f64,
    p50_us: f64,
    p99_us: f64,
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

fn bench() -> Result<(), String> {
    use std::io::{BufRead, BufReader};
    let secs = env_num("BENCH_SECS", 10.0);
    let runs = env_num("BENCH_RUNS", 3.0) as usize;
    let conns = env_num("BENCH_CONNS", 32.0) as usize;
    cargo(
        &["build", "--release", "--manifest-path", "bench/Cargo.toml"],
        &[],
    )?;
    let bin = |name: &str| format!("bench/target/release/{name}");
    let (redis_url, _server) = redis()?;
    // Explanatory rows beside the issue's: `bare-cookies` is bare hyper sending the two static
    // `Set-Cookie` headers our default writes (what the wire format alone costs);
    // `memory-lite` is ours with tower-sessions' default cookie shape (one unsigned cookie, no
    // expiry); `ts-memory-signed` is tower-sessions with signed cookies like ours.
    // `BENCH_KINDS=bare,memory,...` runs a subset (bare first: the ratios need it).
    let all = [
        "bare",
        "bare-cookies",
        "cookie",
        "memory",
        "memory-lite",
        "redis",
        "ts-memory",
        "ts-memory-signed",
        "ts-redis",
    ];
    let chosen = std::env::var("BENCH_KINDS").ok();
    let kinds: Vec<&str> = match &chosen {
        Some(list) => all
            .iter()
            .copied()
            .filter(|k| *k == "bare" || list.split(',').any(|c| c.trim() == *k))
            .collect(),
        None => all.to_vec(),
    };
    let scenarios = ["returning", "new"];
    let mut points: Vec<((usize, usize), Point)> = Vec::new();
    for run in 1..=runs {
        for (ki, kind) in kinds.iter().enumerate() {
            // Every server starts from an empty Redis.
            let _ = Command::new("redis-cli")
                .args(["-u", &redis_url, "FLUSHALL"])
                .stdout(Stdio::null())
                .status();
            let port = TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .map_err(|e| e.to_string())?
                .port();
            let mut server = Command::new(bin("server"))
                .args([kind.to_string(), port.to_string(), redis_url.clone()])
                .stdout(Stdio::piped())
                .spawn()
                .map_err(|e| format!("could not start the {kind} server: {e}"))?;
            let mut line = String::new();
            if let Some(out) = server.stdout.take() {
                let _ = BufReader::new(out).read_line(&mut line);
            }
            if line.trim() != "ready" {
                let _ = server.kill();
                return Err(format!("the {kind} server did not start"));
            }
            let url = format!("http://127.0.0.1:{port}");
            for (si, scenario) in scenarios.iter().enumerate() {
                let load = |secs: f64| -> Result<String, String> {
                    let out = Command::new(bin("load"))
                        .args([
                            url.clone(),
                            conns.to_string(),
                            secs.to_string(),
                            scenario.to_string(),
                        ])
                        .output()
                        .map_err(|e| e.to_string())?;
                    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
                };
                load(1.0)?; // warm-up
                let out = load(secs)?;
                let field = |name: &str| -> f64 {
                    out.split_whitespace()
                        .find_map(|kv| kv.strip_prefix(name).and_then(|v| v.strip_prefix('=')))
                        .and_then(|v| v.parse().ok())
                        .unwrap_or(0.0)
                };
                let p = Point {
                    rps: field("rps"),
                    p50_us: field("p50_us"),
                    p99_us: field("p99_us"),
                };
                eprintln!("xtask: run {run} {kind:>9} {scenario:>9}: {}", out.trim());
                if field("errors") > 0.0 {
                    eprintln!("xtask: warning: {kind} {scenario} had errors");
                }
                points.push(((ki, si), p));
            }
            let _ = server.kill();
            let _ = server.wait();
        }
    }
    let med = |ki: usize, si: usize| -> Point {
        let of = |f: fn(&Point) -> f64| {
            median(
                points
                    .iter()
                    .filter(|(k, _)| *k == (ki, si))
                    .map(|(_, p)| f(p))
                    .collect(),
            )
        };
        Point {
            rps: of(|p| p.rps),
            p50_us: of(|p| p.p50_us),
            p99_us: of(|p| p.p99_us),
        }
    };
    println!(
        "\nmedian of {runs} runs, {secs} s each, {conns} connections (one virtual user each), 2 server worker threads\n"
    );
    println!("| scenario | server | req/s | p50 | p99 | × bare hyper | × tower-sessions peer |");
    println!("|---|---|---|---|---|---|---|");
    for (si, scenario) in scenarios.iter().enumerate() {
        let bare = med(0, si).rps;
        for (ki, kind) in kinds.iter().enumerate() {
            let p = med(ki, si);
            let peers: &[&str] = match *kind {
                "cookie" | "memory-lite" => &["ts-memory"],
                "memory" => &["ts-memory", "ts-memory-signed"],
                "redis" => &["ts-redis"],
                _ => &[],
            };
            let vs_peer = peers
                .iter()
                .filter_map(|peer| {
                    let pi = kinds.iter().position(|k| k == peer)?;
                    Some(format!("{:.2} ({peer})", p.rps / med(pi, si).rps))
                })
                .collect::<Vec<_>>()
                .join(", ");
            println!(
                "| {scenario} | {kind} | {:.0} | {:.0} µs | {:.0} µs | {:.2} | {vs_peer} |",
                p.rps,
                p.p50_us,
                p.p99_us,
                p.rps / bare
            );
        }
    }
    Ok(())
}
