//! A throwaway `redis-server` for the tests and the benchmark (or `REDIS_URL`).

use std::process::{Child, Command, Stdio};

use crate::system::{free_port, install_with_apt, is_root, wait_listening};

/// A redis-server started for the tests; stopped on drop, whatever happened.
pub(crate) struct RedisServer {
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
pub(crate) fn redis() -> Result<(String, Option<RedisServer>), String> {
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
    let port = free_port()?;
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
    let mut server = RedisServer {
        child,
        url: url.clone(),
    };
    wait_listening(&mut server.child, port, "redis-server")?;
    eprintln!("xtask: started redis-server at {url}");
    Ok((url, Some(server)))
}
