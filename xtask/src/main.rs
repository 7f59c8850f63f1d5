//! Project automation.
//!
//! - `cargo xtask ci`: format check, `tidy`, clippy `-D warnings`, every test (the Redis ones
//!   against a `redis-server` this command starts, the PostgreSQL ones against a throwaway
//!   cluster it starts, the browser ones in Chromium through a chromedriver it starts, each
//!   installed with apt-get when missing and running as root), docs without warnings, and
//!   `cargo publish --dry-run` of every library crate.
//! - `cargo xtask tidy`: module docs, unused dependencies, over-long files, module cycles,
//!   Markdown links (see `tidy.rs`).
//! - `cargo xtask test-redis`: every Redis-backed test, against `REDIS_URL` if set, else a
//!   `redis-server` it starts on a free loopback port without persistence and stops after.
//! - `cargo xtask test-postgres`: every PostgreSQL-backed test, against `DATABASE_URL` if set,
//!   else a throwaway cluster it starts (see `postgres.rs`) and stops after.
//! - `cargo xtask test-browser`: the browser tests (`browser-tests/`): headless Chromium driven
//!   through a chromedriver this command starts, against the examples and a Redis; it says how
//!   to install Chromium when it is missing (`cargo xtask ci` installs it, as root).
//! - `cargo xtask bench`: the side-by-side load benchmark of BENCHMARKS.md (builds `bench/`);
//!   it saves its medians as JSON and draws them as SVG charts under `docs/bench/`.
//! - `cargo xtask bench-charts [FILE]`: those charts again from a saved run, without load.

use std::process::ExitCode;

mod bench;
mod browser;
mod charts;
mod fixtures;
mod postgres;
mod redis;
mod results;
mod system;
mod tidy;

use redis::redis;
use system::cargo;

/// The crates that are published, in dependency order.
const LIBRARIES: &[&str] = &[
    "session-core",
    "session-cookie",
    "session-store-memory",
    "session-pool",
    "session-store-redis",
    "session-store-postgres",
    "session-hyper",
    "session-migrate",
    "session-auth",
];

const USAGE: &str = "usage: cargo xtask <command>

commands:
  ci          format check, tidy, clippy -D warnings, every test (starts redis-server, PostgreSQL, chromedriver), docs,
              cargo publish --dry-run of every library crate
  tidy        module docs, unused dependencies, files over 600 lines without a reason
  test-redis  the Redis-backed tests, the attack suite's Redis half included (REDIS_URL, or a
              redis-server started here; the fault, cluster and Sentinel tests start servers,
              six-node clusters and a master with two replicas under three Sentinels of their
              own)
  test-postgres  the PostgreSQL-backed tests (DATABASE_URL, or a throwaway cluster started
              here: initdb in a temporary directory, pg_ctl on a free loopback port, no fsync;
              installed with apt-get when missing and running as root)
  test-browser  the browser tests: the login example and the demo in headless Chromium through
              chromedriver (both must be installed: apt-get install chromium chromium-driver),
              their sessions in REDIS_URL or a redis-server started here; screenshots of every
              page under target/tmp/browser/<test>/
  bench       side-by-side load test: bare hyper, ours (cookie, memory, Redis), tower-sessions;
              every server measured back to back with bare hyper (BENCH_SECS per measurement,
              default 5; BENCH_RUNS, default 3; BENCH_CONNS, default 32; BENCH_KINDS=a,b,...;
              BENCH_SCENARIOS=returning,new,read,mixed,rolling-read), with the server's CPU,
              Redis's CPU, Redis commands and PostgreSQL's CPU per request; prints the medians as a Markdown table,
              saves them as JSON (target/bench/results.json, and docs/bench/results.json) and
              draws them as SVG charts (docs/bench/throughput.svg, ratio.svg, p99.svg, cpu.svg);
              BENCH_NOTE=... adds a word on the run under the charts' titles
  bench-charts [FILE]  the bench's charts again from a saved run, without load: FILE (default
              docs/bench/results.json) drawn into docs/bench/, and copied there beside them";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("ci") => ci(),
        Some("tidy") => tidy::run(),
        Some("test-redis") => test_redis(),
        Some("test-postgres") => test_postgres(),
        Some("test-browser") => test_browser(),
        Some("bench") => bench::run(),
        Some("bench-charts") => charts::run(args.get(1).map(String::as_str)),
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
            "-p",
            "session-hyper",
            "--features",
            "session-store-postgres/postgres-tests,session-store-postgres/tls,demo/postgres-tests,session-hyper/postgres-tests",
        ],
        &[("DATABASE_URL", &url), ("PG_BIN", &bin)],
    )
}

fn test_browser() -> Result<(), String> {
    let driver = browser::chromedriver(false)?;
    let (url, _server) = redis()?;
    // The tests start the examples' binaries from the target directory.
    cargo(&["build", "-p", "login", "-p", "demo"], &[])?;
    cargo(
        &["test", "-p", "browser-tests", "--features", "browser"],
        &[
            ("REDIS_URL", &url),
            ("WEBDRIVER_URL", &driver.url),
            ("CHROME_BIN", &driver.chrome),
        ],
    )
}

fn ci() -> Result<(), String> {
    // What the tests need of the machine comes first: a fresh machine fails (or installs, as
    // root) before anything is built.
    browser::ensure(true)?;
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
        // `--all-features` turns on the Redis, PostgreSQL and browser tests; they run against
        // these servers (the fault tests start servers of their own, with PG_BIN). The
        // browser tests start the examples' binaries, which this same run builds.
        let driver = browser::chromedriver(true)?;
        let fixture = fixtures::tower_sessions()?;
        let express = fixtures::express()?;
        let actix = fixtures::actix()?;
        let (url, _server) = redis()?;
        let (db, _pg) = postgres::postgres()?;
        let bin = postgres::find_bin()
            .map(|b| b.to_string_lossy().into_owned())
            .unwrap_or_default();
        cargo(
            &["test", "--workspace", "--all-features"],
            &[
                ("REDIS_URL", &url),
                ("DATABASE_URL", &db),
                ("PG_BIN", &bin),
                ("WEBDRIVER_URL", &driver.url),
                ("CHROME_BIN", &driver.chrome),
                ("TOWER_SESSIONS_FIXTURE", &fixture),
                ("EXPRESS_FIXTURE", &express),
                ("ACTIX_FIXTURE", &actix),
            ],
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

#[cfg(test)]
mod tests {
    #[test]
    fn is_root_agrees_with_id() {
        let uid = std::process::Command::new("id")
            .arg("-u")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned());
        if let Ok(uid) = uid {
            assert_eq!(crate::system::is_root(), uid == "0");
        }
    }
}
