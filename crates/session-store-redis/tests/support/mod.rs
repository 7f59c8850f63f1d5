//! Redis test harness: a `redis-server` of the test's own on a free loopback port (for tests
//! that stop, pause or fill it), and the shared server `cargo xtask test-redis` started.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The server `cargo xtask test-redis` (or `ci`) started, or `REDIS_URL` given by the user.
pub fn shared_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| {
        panic!("REDIS_URL is not set: run the Redis tests with `cargo xtask test-redis`, which starts a redis-server")
    })
}

/// The redis-server binary (override with `REDIS_SERVER_BIN`).
fn server_bin() -> String {
    std::env::var("REDIS_SERVER_BIN").unwrap_or_else(|_| "redis-server".into())
}

/// A redis-server owned by one test; killed on drop.
pub struct Server {
    pub port: u16,
    extra: Vec<String>,
    child: Option<Child>,
}

pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

impl Server {
    pub fn start(extra: &[&str]) -> Server {
        let mut s = Server {
            port: free_port(),
            extra: extra.iter().map(|s| (*s).to_owned()).collect(),
            child: None,
        };
        s.spawn();
        s
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    fn spawn(&mut self) {
        for _ in 0..5 {
            let mut child = Command::new(server_bin())
                .args([
                    "--port",
                    &self.port.to_string(),
                    "--bind",
                    "127.0.0.1",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                ])
                .args(["--daemonize", "no", "--logfile", ""])
                .args(&self.extra)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("redis-server must be installed (apt-get install redis-server)");
            let t = Instant::now();
            let mut up = false;
            while t.elapsed() < Duration::from_secs(10) {
                if let Ok(Some(_)) = child.try_wait() {
                    break; // exited: the port was taken (another test's server)
                }
                if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                    // A server answering is only ours if our child is still alive a moment
                    // later (a redis-server that failed to bind exits at once).
                    std::thread::sleep(Duration::from_millis(30));
                    up = matches!(child.try_wait(), Ok(None));
                    break;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            if up {
                self.child = Some(child);
                return;
            }
            let _ = child.kill();
            let _ = child.wait();
            self.port = free_port();
        }
        panic!("could not start a redis-server");
    }

    /// Kills the server (like a crash).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it again on the same port.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    /// A plain command through redis-cli-like raw connection.
    pub async fn cmd(&self, args: &[&str]) -> redis::Value {
        cmd(&self.url(), args).await
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Runs one command on its own connection.
pub async fn cmd(url: &str, args: &[&str]) -> redis::Value {
    let client = redis::Client::open(url).unwrap();
    let mut c = client.get_multiplexed_async_connection().await.unwrap();
    let mut command = redis::cmd(args[0]);
    for a in &args[1..] {
        command.arg(*a);
    }
    command.query_async(&mut c).await.unwrap()
}

/// A prefix no other test run uses, so tests can share the server.
pub fn unique_prefix(name: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("test:{name}:{nanos}:")
}
