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
  test-redis  the Redis-backed tests (REDIS_URL, or a redis-server started here)";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("ci") => ci(),
        Some("test-redis") => test_redis(),
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
            "session-store-redis/redis-tests,demo/redis-tests",
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
