//! What the commands need of the machine: whether they run as root, installing a Debian
//! package, a free loopback port, and waiting for a server started on it.

use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

/// Whether this process runs as root (Linux: the effective uid in `/proc/self/status`).
pub(crate) fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status").is_ok_and(|s| {
        s.lines()
            .find_map(|l| l.strip_prefix("Uid:"))
            .and_then(|ids| ids.split_whitespace().nth(1))
            == Some("0")
    })
}

/// `apt-get install` of a Debian package (non-interactive).
pub(crate) fn install_with_apt(package: &str) -> Result<(), String> {
    let run = |args: &[&str]| -> Result<(), String> {
        let status = Command::new("apt-get")
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status()
            .map_err(|e| format!("could not run apt-get: {e}"))?;
        if status.success() {
            Ok(())
        } else {
            Err(format!("`apt-get {}` failed ({status})", args.join(" ")))
        }
    };
    run(&["update", "-qq"])?;
    run(&["install", "-y", "-qq", package])
}

/// Runs cargo (the one running xtask) with `args` and extra environment.
pub(crate) fn cargo(args: &[&str], env: &[(&str, &str)]) -> Result<(), String> {
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

/// A loopback port nothing listens on now (the kernel's pick).
pub(crate) fn free_port() -> Result<u16, String> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("no free port: {e}"))
}

/// Waits until `child` (`what`) listens on `port`: an error if it exits first or is not up
/// within 10 s.
pub(crate) fn wait_listening(child: &mut Child, port: u16, what: &str) -> Result<(), String> {
    let t = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!(
                "{what} exited at start ({status}); run it by hand to see why"
            ));
        }
        if t.elapsed() > Duration::from_secs(10) {
            return Err(format!("{what} did not start within 10 s"));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}
