//! Project automation.
//!
//! - `cargo xtask ci`: format check, `tidy`, clippy `-D warnings`, every test (the Redis ones
//!   against a `redis-server` this command starts, the PostgreSQL ones against a throwaway
//!   cluster it starts, each installed with apt-get when missing and running as root), docs without warnings, and `cargo publish --dry-run` of every library
//!   crate.
//! - `cargo xtask tidy`: module docs, unused dependencies, over-long files (see `tidy.rs`).
//! - `cargo xtask test-redis`: every Redis-backed test, against `REDIS_URL` if set, else a
//!   `redis-server` it starts on a free loopback port without persistence and stops after.
//! - `cargo xtask test-postgres`: every PostgreSQL-backed test, against `DATABASE_URL` if set,
//!   else a throwaway cluster it starts (see `postgres.rs`) and stops after.
//! - `cargo xtask bench`: the side-by-side load benchmark of BENCHMARKS.md (builds `bench/`).

use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

mod postgres;
mod system;
mod tidy;

use system::{install_with_apt, is_root};

/// The crates that are published, in dependency order.
const LIBRARIES: &[&str] = &[
    "session-core",
    "session-cookie",
    "session-store-memory",
    "session-store-redis",
    "session-store-postgres",
    "session-hyper",
];

const USAGE: &str = "usage: cargo xtask <command>

commands:
  ci          format check, tidy, clippy -D warnings, every test (starts redis-server), docs,
              cargo publish --dry-run of every library crate
  tidy        module docs, unused dependencies, files over 600 lines without a reason
  test-redis  the Redis-backed tests, the attack suite's Redis half included (REDIS_URL, or a
              redis-server started here; the fault and cluster tests start servers and a
              six-node cluster of their own)
  test-postgres  the PostgreSQL-backed tests (DATABASE_URL, or a throwaway cluster started
              here: initdb in a temporary directory, pg_ctl on a free loopback port, no fsync;
              installed with apt-get when missing and running as root)
  bench       side-by-side load test: bare hyper, ours (cookie, memory, Redis), tower-sessions;
              every server measured back to back with bare hyper (BENCH_SECS per measurement,
              default 5; BENCH_RUNS, default 3; BENCH_CONNS, default 32; BENCH_KINDS=a,b,...)";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("ci") => ci(),
        Some("tidy") => tidy::run(),
        Some("test-redis") => test_redis(),
        Some("test-postgres") => test_postgres(),
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
    if !found && bin == "redis-server" && is_root() {
        eprintln!("xtask: redis-server not found; installing it with apt-get");
        install_with_apt("redis-server")?;
    } else if !found {
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
            "-p",
            "session-hyper",
            "--features",
            "session-store-redis/redis-tests,session-store-redis/tls,demo/redis-tests,session-hyper/redis-tests",
        ],
        &[("REDIS_URL", &url)],
    )
}

fn test_postgres() -> Result<(), String> {
    let (url, _server) = postgres::postgres()?;
    let bin = postgres::find_bin()
        .map(|b| b.to_string_lossy().into_owned())
        .unwrap_or_default();
    cargo(
        &[
            "test",
            "-p",
            "session-store-postgres",
            "-p",
            "demo",
            "--features",
            "session-store-postgres/postgres-tests,session-store-postgres/tls,demo/postgres-tests",
        ],
        &[("DATABASE_URL", &url), ("PG_BIN", &bin)],
    )
}

fn ci() -> Result<(), String> {
    cargo(&["fmt", "--all", "--", "--check"], &[])?;
    tidy::run()?;
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
        // `--all-features` turns on the Redis and PostgreSQL tests; they run against these
        // servers (the fault tests start servers of their own, with PG_BIN).
        let (url, _server) = redis()?;
        let (db, _pg) = postgres::postgres()?;
        let bin = postgres::find_bin()
            .map(|b| b.to_string_lossy().into_owned())
            .unwrap_or_default();
        cargo(
            &["test", "--workspace", "--all-features"],
            &[("REDIS_URL", &url), ("DATABASE_URL", &db), ("PG_BIN", &bin)],
        )?;
    }
    cargo(
        &["doc", "--workspace", "--no-deps", "--all-features"],
        &[("RUSTDOCFLAGS", "-D warnings")],
    )?;
    publish_dry_run()?;
    eprintln!("xtask: ci passed");
    Ok(())
}

/// `cargo publish --dry-run` of every library crate in one invocation: each is packaged and
/// built as published, against the others as packaged (none is on a registry yet).
fn publish_dry_run() -> Result<(), String> {
    forget_packaged_sources()?;
    let mut args = vec!["publish", "--dry-run", "--allow-dirty"];
    for lib in LIBRARIES {
        args.extend(["-p", lib]);
    }
    cargo(&args, &[])
}

/// Cargo serves the dry run's packages to each other from a local registry under
/// `target/package`, unpacks them under `$CARGO_HOME/registry/src` like any registry crate and
/// builds them into the target directory, but it treats a registry crate's name and version as
/// never changing: a second dry run would build against the first one's sources and reuse its
/// builds (and fail on any API added since). Those copies go first: `target/package`, this
/// workspace's crates among the target directory's debug builds, and this workspace's crates
/// unpacked from local registries (directories whose names start with `-`); nothing else in
/// `CARGO_HOME` is touched.
fn forget_packaged_sources() -> Result<(), String> {
    let target = std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| "target".to_owned());
    let target = std::path::Path::new(&target);
    remove_dir(&target.join("package"))?;
    for dir in [".fingerprint", "deps", "build"] {
        let Ok(entries) = std::fs::read_dir(target.join("debug").join(dir)) else {
            continue;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let name = name.strip_prefix("lib").unwrap_or(&name);
            let ours = LIBRARIES.iter().any(|lib| {
                let snake = lib.replace('-', "_");
                [lib.to_string(), snake].iter().any(|n| {
                    name.strip_prefix(n.as_str())
                        .is_some_and(|rest| rest.starts_with('-'))
                })
            });
            if ours {
                let path = entry.path();
                if path.is_dir() {
                    remove_dir(&path)?;
                } else {
                    std::fs::remove_file(&path)
                        .map_err(|e| format!("could not remove {}: {e}", path.display()))?;
                }
            }
        }
    }
    let home = match std::env::var_os("CARGO_HOME") {
        Some(h) => std::path::PathBuf::from(h),
        None => match std::env::var_os("HOME") {
            Some(h) => std::path::Path::new(&h).join(".cargo"),
            None => return Ok(()),
        },
    };
    let Ok(registries) = std::fs::read_dir(home.join("registry").join("src")) else {
        return Ok(());
    };
    for registry in registries.flatten() {
        if !registry.file_name().to_string_lossy().starts_with('-') {
            continue;
        }
        let Ok(crates) = std::fs::read_dir(registry.path()) else {
            continue;
        };
        for unpacked in crates.flatten() {
            let name = unpacked.file_name().to_string_lossy().into_owned();
            let ours = LIBRARIES.iter().any(|lib| {
                name.strip_prefix(lib)
                    .and_then(|rest| rest.strip_prefix('-'))
                    .is_some_and(|version| version.starts_with(|c: char| c.is_ascii_digit()))
            });
            if ours {
                remove_dir(&unpacked.path())?;
            }
        }
    }
    Ok(())
}

fn remove_dir(path: &std::path::Path) -> Result<(), String> {
    match std::fs::remove_dir_all(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(format!("could not remove {}: {e}", path.display()))
        }
        _ => Ok(()),
    }
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

fn bench_server(kind: &str, redis_url: &str, db_url: &str) -> Result<BenchServer, String> {
    use std::io::{BufRead, BufReader};
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| e.to_string())?
        .port();
    let mut child = Command::new("bench/target/release/server")
        .args([kind, &port.to_string(), redis_url])
        .env("DATABASE_URL", db_url)
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("could not start the {kind} server: {e}"))?;
    let mut line = String::new();
    if let Some(out) = child.stdout.take() {
        let _ = BufReader::new(out).read_line(&mut line);
    }
    let server = BenchServer {
        child,
        url: format!("http://127.0.0.1:{port}"),
    };
    if line.trim() != "ready" {
        return Err(format!("the {kind} server did not start"));
    }
    Ok(server)
}

/// One load-generator run against `url`.
fn bench_load(url: &str, conns: usize, secs: f64, scenario: &str) -> Result<Point, String> {
    let out = Command::new("bench/target/release/load")
        .args([url, &conns.to_string(), &secs.to_string(), scenario])
        .output()
        .map_err(|e| e.to_string())?;
    let out = String::from_utf8_lossy(&out.stdout).into_owned();
    let field = |name: &str| -> f64 {
        out.split_whitespace()
            .find_map(|kv| kv.strip_prefix(name).and_then(|v| v.strip_prefix('=')))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0)
    };
    if field("errors") > 0.0 {
        eprintln!(
            "xtask: warning: {url} {scenario} had errors: {}",
            out.trim()
        );
    }
    if field("requests") == 0.0 {
        return Err(format!(
            "no request succeeded against {url}: {}",
            out.trim()
        ));
    }
    Ok(Point {
        rps: field("rps"),
        p50_us: field("p50_us"),
        p99_us: field("p99_us"),
    })
}

fn bench() -> Result<(), String> {
    use std::collections::HashMap;
    let secs = env_num("BENCH_SECS", 5.0);
    let runs = env_num("BENCH_RUNS", 3.0) as usize;
    let conns = env_num("BENCH_CONNS", 32.0) as usize;
    cargo(
        &["build", "--release", "--manifest-path", "bench/Cargo.toml"],
        &[],
    )?;
    let (redis_url, _redis) = redis()?;
    let (db_url, _pg) = postgres::postgres()?;
    // Explanatory rows beside the issue's: `bare-cookies` is bare hyper sending the two static
    // `Set-Cookie` headers our default writes (what the wire format alone costs);
    // `memory-lite` is ours with tower-sessions' default cookie shape (one unsigned cookie, no
    // expiry); `ts-memory-signed` is tower-sessions with signed cookies like ours.
    // `BENCH_KINDS=memory,ts-memory,...` runs a subset (bare always runs: it is the yardstick).
    let all = [
        "bare",
        "bare-cookies",
        "cookie",
        "encrypted",
        "memory",
        "memory-lite",
        "redis",
        "ts-memory",
        "ts-memory-signed",
        "ts-redis",
        "postgres",
        "ts-postgres",
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
    // These machines' speed drifts by tens of percent over minutes, so every server is measured
    // right next to bare hyper (alternating which goes first) and each ratio comes from one
    // such pair; the table quotes medians of those paired ratios.
    let mut points: HashMap<(usize, usize), Vec<Point>> = HashMap::new();
    let mut ratios: HashMap<(usize, usize), Vec<f64>> = HashMap::new();
    let bare = bench_server("bare", &redis_url, &db_url)?;
    for run in 1..=runs {
        for (ki, kind) in kinds.iter().enumerate().skip(1) {
            // Every server starts from an empty Redis.
            let _ = Command::new("redis-cli")
                .args(["-u", &redis_url, "FLUSHALL"])
                .stdout(Stdio::null())
                .status();
            let server = bench_server(kind, &redis_url, &db_url)?;
            for (si, scenario) in scenarios.iter().enumerate() {
                bench_load(&bare.url, conns, 1.0, scenario)?; // warm-up
                bench_load(&server.url, conns, 1.0, scenario)?;
                let (b, k) = if run % 2 == 1 {
                    let b = bench_load(&bare.url, conns, secs, scenario)?;
                    (b, bench_load(&server.url, conns, secs, scenario)?)
                } else {
                    let k = bench_load(&server.url, conns, secs, scenario)?;
                    (bench_load(&bare.url, conns, secs, scenario)?, k)
                };
                eprintln!(
                    "xtask: run {run} {kind:>16} {scenario:>9}: {:>7.0} req/s, bare beside it {:>7.0} req/s: {:.2}",
                    k.rps,
                    b.rps,
                    k.rps / b.rps
                );
                ratios.entry((ki, si)).or_default().push(k.rps / b.rps);
                points.entry((ki, si)).or_default().push(k);
                points.entry((0, si)).or_default().push(b);
            }
        }
    }
    drop(bare);
    let med = |ki: usize, si: usize| -> Point {
        let list = points.get(&(ki, si)).map(Vec::as_slice).unwrap_or_default();
        let of = |f: fn(&Point) -> f64| median(list.iter().map(f).collect());
        Point {
            rps: of(|p| p.rps),
            p50_us: of(|p| p.p50_us),
            p99_us: of(|p| p.p99_us),
        }
    };
    let ratio = |ki: usize, si: usize| -> f64 {
        if ki == 0 {
            return 1.0;
        }
        median(ratios.get(&(ki, si)).cloned().unwrap_or_default())
    };
    println!(
        "\n{runs} runs, {secs} s per measurement, {conns} connections (one virtual user each), 2 server worker threads; \
         req/s and latencies are medians over all measurements, ratios are medians of ratios \
         measured back to back with bare hyper\n"
    );
    println!("| scenario | server | req/s | p50 | p99 | × bare hyper | × peer |");
    println!("|---|---|---|---|---|---|---|");
    for (si, scenario) in scenarios.iter().enumerate() {
        for (ki, kind) in kinds.iter().enumerate() {
            let p = med(ki, si);
            let peers: &[&str] = match *kind {
                "cookie" | "memory-lite" => &["ts-memory"],
                // Encrypted cookies beside signed ones (target: at most 1.3 × the cost).
                "encrypted" => &["cookie"],
                "memory" => &["ts-memory", "ts-memory-signed"],
                "redis" => &["ts-redis"],
                // The two targets: beside tower-sessions' sqlx store, and our Redis.
                "postgres" => &["ts-postgres", "redis"],
                _ => &[],
            };
            let vs_peer = peers
                .iter()
                .filter_map(|peer| {
                    let pi = kinds.iter().position(|k| k == peer)?;
                    Some(format!("{:.2} ({peer})", ratio(ki, si) / ratio(pi, si)))
                })
                .collect::<Vec<_>>()
                .join(", ");
            println!(
                "| {scenario} | {kind} | {:.0} | {:.0} µs | {:.0} µs | {:.2} | {vs_peer} |",
                p.rps,
                p.p50_us,
                p.p99_us,
                ratio(ki, si)
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn is_root_agrees_with_id() {
        let uid = std::process::Command::new("id")
            .arg("-u")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned());
        if let Ok(uid) = uid {
            assert_eq!(super::is_root(), uid == "0");
        }
    }
}
