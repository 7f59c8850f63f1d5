//! A binary (an example, the demo) running for a test: started with `--port 0`, its URL read
//! from the `listening on http://ADDR` line it prints, killed when the test drops it.

use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};

/// A binary running for a test; killed when dropped.
pub struct Running {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    _child: tokio::process::Child,
}

/// Starts `bin` (a test's `env!("CARGO_BIN_EXE_...")`) with `--port 0` and `args`, and waits
/// for its `listening on` line. `None` if it exited instead (bad options).
pub async fn start(bin: &str, args: &[&str]) -> Option<Running> {
    start_with_env(bin, args, &[]).await
}

/// [`start`] with environment variables set for the binary (`SESSION_KEYS`, `RUST_LOG`).
pub async fn start_with_env(bin: &str, args: &[&str], env: &[(&str, &str)]) -> Option<Running> {
    let mut child = tokio::process::Command::new(bin)
        .args(["--port", "0"])
        .args(args)
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .ok()?;
    let mut lines = BufReader::new(child.stdout.take()?).lines();
    let line = tokio::time::timeout(Duration::from_secs(10), lines.next_line())
        .await
        .ok()?
        .ok()??;
    let url = line.split_whitespace().nth(2)?.to_owned();
    Some(Running { url, _child: child })
}
