//! Redis for the tests: the shared server `cargo xtask test-redis` (or `ci`) started
//! ([`shared_url`]), a `redis-server` of a test's own on a free loopback port for tests that
//! stop, pause or fill it ([`Server`]), a local six-node Redis Cluster ([`Cluster`]), a master
//! with two replicas under three Sentinels ([`Sentinels`]), and plain
//! commands on connections of their own ([`cmd`], [`keys`], [`int`]), to look at and tamper with
//! what a store wrote.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::net::free_port;

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
    /// Its loopback port.
    pub port: u16,
    extra: Vec<String>,
    /// A Sentinel's config file (Sentinel mode), else `None`.
    sentinel: Option<std::path::PathBuf>,
    child: Option<Child>,
}

impl Server {
    /// Starts a server without persistence, with `extra` options, on a free port (another, if
    /// that one was taken meanwhile).
    pub fn start(extra: &[&str]) -> Server {
        let mut s = Server {
            port: free_port(),
            extra: extra.iter().map(|s| (*s).to_owned()).collect(),
            sentinel: None,
            child: None,
        };
        s.spawn();
        s
    }

    /// Starts a Sentinel with the config file `conf` (it rewrites it) on a free port.
    pub fn start_sentinel(conf: std::path::PathBuf) -> Server {
        let mut s = Server {
            port: free_port(),
            extra: Vec::new(),
            sentinel: Some(conf),
            child: None,
        };
        s.spawn();
        s
    }

    /// Its URL (database 0).
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    fn spawn(&mut self) {
        for _ in 0..5 {
            let mut command = Command::new(server_bin());
            match &self.sentinel {
                // The config file comes first; Sentinel keeps no data.
                Some(conf) => command.arg(conf).arg("--sentinel"),
                None => command.args(["--save", "", "--appendonly", "no"]),
            };
            let mut child = command
                .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
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

/// A local Redis Cluster: three masters with one replica each, on loopback ports.
pub struct Cluster {
    /// The six nodes.
    pub nodes: Vec<Server>,
    dir: std::path::PathBuf,
}

impl Cluster {
    /// Starts six nodes, joins them with `redis-cli --cluster create ... --cluster-replicas 1`
    /// and waits until every node says `cluster_state:ok`.
    pub async fn start() -> Cluster {
        let dir = std::env::temp_dir().join(unique_prefix("cluster").replace(':', "-"));
        std::fs::create_dir_all(&dir).unwrap();
        let mut nodes = Vec::new();
        for i in 0..6 {
            let conf = dir.join(format!("nodes-{i}.conf"));
            nodes.push(Server::start(&[
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                conf.to_str().unwrap(),
                "--cluster-node-timeout",
                "2000",
                // Shards that are up keep serving while another fails over (the default stops
                // the whole cluster while any slot is uncovered).
                "--cluster-require-full-coverage",
                "no",
                "--dir",
                dir.to_str().unwrap(),
            ]));
        }
        let addrs: Vec<String> = nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        let out = Command::new("redis-cli")
            .arg("--cluster")
            .arg("create")
            .args(&addrs)
            .args(["--cluster-replicas", "1", "--cluster-yes"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("redis-cli (installed with redis-server)");
        assert!(out.success(), "redis-cli --cluster create failed");
        let cluster = Cluster { nodes, dir };
        let t = Instant::now();
        loop {
            // Healthy, and every replica in sync with its master (a replica that never synced
            // refuses to take over in a failover).
            let mut ok = 0;
            for n in &cluster.nodes {
                let text = |v| match v {
                    redis::Value::BulkString(b) => String::from_utf8_lossy(&b).into_owned(),
                    redis::Value::VerbatimString { text, .. } => text,
                    _ => String::new(),
                };
                let info = text(n.cmd(&["CLUSTER", "INFO"]).await);
                let repl = text(n.cmd(&["INFO", "replication"]).await);
                let synced = repl.contains("role:master") || repl.contains("master_link_status:up");
                if info.contains("cluster_state:ok") && synced {
                    ok += 1;
                }
            }
            if ok == cluster.nodes.len() {
                break;
            }
            assert!(
                t.elapsed() < Duration::from_secs(30),
                "cluster not healthy after 30 s"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        cluster
    }

    /// Seed URLs.
    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(Server::url).collect()
    }

    /// The port of the master serving `key`'s slot.
    pub async fn master_of(&self, key: &str) -> u16 {
        let redis::Value::Int(slot) = self.nodes[0].cmd(&["CLUSTER", "KEYSLOT", key]).await else {
            panic!("CLUSTER KEYSLOT");
        };
        let nodes = match self.nodes[0].cmd(&["CLUSTER", "NODES"]).await {
            redis::Value::BulkString(b) => String::from_utf8(b).unwrap(),
            redis::Value::VerbatimString { text, .. } => text,
            other => panic!("{other:?}"),
        };
        for line in nodes.lines() {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() < 9 || !f[2].contains("master") {
                continue;
            }
            for range in &f[8..] {
                let (a, b) = range.split_once('-').unwrap_or((range, range));
                if let (Ok(a), Ok(b)) = (a.parse::<i64>(), b.parse::<i64>())
                    && (a..=b).contains(&slot)
                {
                    let port = f[1].split(['@', ':']).nth(1).unwrap();
                    return port.parse().unwrap();
                }
            }
        }
        panic!("no master for slot {slot}");
    }

    /// `CLUSTER NODES` from the first live node: `(port, id, flags, master id)` per node.
    pub async fn nodes(&self) -> Vec<(u16, String, String, String)> {
        let live = self
            .nodes
            .iter()
            .find(|n| n.child.is_some())
            .expect("a live node");
        text(live.cmd(&["CLUSTER", "NODES"]).await)
            .lines()
            .filter_map(|line| {
                let f: Vec<&str> = line.split_whitespace().collect();
                let port = f.get(1)?.split(['@', ':']).nth(1)?.parse().ok()?;
                Some((
                    port,
                    f[0].to_owned(),
                    f.get(2)?.to_string(),
                    f.get(3)?.to_string(),
                ))
            })
            .collect()
    }

    /// The masters' ports and ids.
    pub async fn masters(&self) -> Vec<(u16, String)> {
        self.nodes()
            .await
            .into_iter()
            .filter(|n| n.2.contains("master") && !n.2.contains("fail"))
            .map(|n| (n.0, n.1))
            .collect()
    }

    /// Moves `slots` slots, with their keys, from the master `from` to the master `to` (node
    /// ids), as an operator does (`redis-cli --cluster reshard`); blocks until done.
    pub fn reshard(&self, from: &str, to: &str, slots: u32) {
        let seed = format!("127.0.0.1:{}", self.nodes[0].port);
        let out = Command::new("redis-cli")
            .args(["--cluster", "reshard", &seed])
            .args(["--cluster-from", from, "--cluster-to", to])
            .args(["--cluster-slots", &slots.to_string(), "--cluster-yes"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("redis-cli");
        assert!(out.success(), "redis-cli --cluster reshard failed");
    }

    /// A manual failover (`CLUSTER FAILOVER` on a replica of the master on `port`); waits
    /// until the replica is a master. Its port.
    pub async fn failover(&self, port: u16) -> u16 {
        let nodes = self.nodes().await;
        let id = &nodes.iter().find(|n| n.0 == port).expect("the master").1;
        let replica = nodes
            .iter()
            .find(|n| n.2.contains("slave") && &n.3 == id)
            .expect("a replica of the master")
            .0;
        let node = self.nodes.iter().find(|n| n.port == replica).unwrap();
        node.cmd(&["CLUSTER", "FAILOVER"]).await;
        let t = Instant::now();
        while !text(node.cmd(&["INFO", "replication"]).await).contains("role:master") {
            assert!(
                t.elapsed() < Duration::from_secs(20),
                "no failover after 20 s"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        replica
    }

    /// Kills the node on `port` (like a crash).
    pub fn kill(&mut self, port: u16) {
        for n in &mut self.nodes {
            if n.port == port {
                n.stop();
            }
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for n in &mut self.nodes {
            n.stop();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// One master with two replicas, watched by three Sentinels under the name [`Sentinels::NAME`].
pub struct Sentinels {
    /// The master as started (a replica after a failover).
    pub master: Server,
    /// The two replicas as started.
    pub replicas: Vec<Server>,
    /// The three Sentinels.
    pub sentinels: Vec<Server>,
    dir: std::path::PathBuf,
}

/// The text of a bulk or verbatim reply.
fn text(v: redis::Value) -> String {
    match v {
        redis::Value::BulkString(b) => String::from_utf8_lossy(&b).into_owned(),
        redis::Value::VerbatimString { text, .. } => text,
        redis::Value::SimpleString(s) => s,
        _ => String::new(),
    }
}

impl Sentinels {
    /// The name the Sentinels monitor the master under.
    pub const NAME: &'static str = "sessions";

    /// Starts the master and its replicas, waits until both replicate, then starts the
    /// Sentinels (quorum 2, down after 1 s) and waits until each knows both replicas and the
    /// other two Sentinels.
    pub async fn start() -> Sentinels {
        let dir = std::env::temp_dir().join(unique_prefix("sentinel").replace(':', "-"));
        std::fs::create_dir_all(&dir).unwrap();
        let dir_arg = dir.to_str().unwrap();
        let master = Server::start(&["--dir", dir_arg]);
        let port = master.port.to_string();
        let replicas: Vec<Server> = (0..2)
            .map(|_| Server::start(&["--dir", dir_arg, "--replicaof", "127.0.0.1", &port]))
            .collect();
        let t = Instant::now();
        for r in &replicas {
            while !text(r.cmd(&["INFO", "replication"]).await).contains("master_link_status:up") {
                assert!(
                    t.elapsed() < Duration::from_secs(20),
                    "a replica never synced"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        let sentinels = (0..3)
            .map(|i| {
                let conf = dir.join(format!("sentinel-{i}.conf"));
                std::fs::write(
                    &conf,
                    format!(
                        "sentinel monitor {n} 127.0.0.1 {port} 2\n\
                         sentinel down-after-milliseconds {n} 1000\n\
                         sentinel failover-timeout {n} 10000\n\
                         sentinel parallel-syncs {n} 2\n",
                        n = Self::NAME
                    ),
                )
                .unwrap();
                Server::start_sentinel(conf)
            })
            .collect();
        let d = Sentinels {
            master,
            replicas,
            sentinels,
            dir,
        };
        let t = Instant::now();
        for s in &d.sentinels {
            loop {
                let count = |v: redis::Value| match v {
                    redis::Value::Array(items) => items.len(),
                    _ => 0,
                };
                let replicas = count(s.cmd(&["SENTINEL", "REPLICAS", Self::NAME]).await);
                let others = count(s.cmd(&["SENTINEL", "SENTINELS", Self::NAME]).await);
                if replicas == 2 && others == 2 {
                    break;
                }
                assert!(
                    t.elapsed() < Duration::from_secs(30),
                    "Sentinels not ready after 30 s ({replicas} replicas, {others} Sentinels known)"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        d
    }

    /// The Sentinels' URLs.
    pub fn urls(&self) -> Vec<String> {
        self.sentinels
            .iter()
            .map(|s| format!("redis://127.0.0.1:{}", s.port))
            .collect()
    }

    /// The port of the server the first Sentinel names as master.
    pub async fn master_port(&self) -> u16 {
        match self.sentinels[0]
            .cmd(&["SENTINEL", "GET-MASTER-ADDR-BY-NAME", Self::NAME])
            .await
        {
            redis::Value::Array(a) if a.len() == 2 => text(a[1].clone()).parse().unwrap(),
            other => panic!("GET-MASTER-ADDR-BY-NAME: {other:?}"),
        }
    }

    /// The URL of the server the first Sentinel names as master.
    pub async fn master_url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.master_port().await)
    }
}

impl Drop for Sentinels {
    fn drop(&mut self) {
        for s in self.sentinels.iter_mut().chain(&mut self.replicas) {
            s.stop();
        }
        self.master.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The keys under `prefix` on the server at `url`.
pub async fn keys(url: &str, prefix: &str) -> Vec<String> {
    match cmd(url, &["KEYS", &format!("{prefix}*")]).await {
        redis::Value::Array(v) => v
            .into_iter()
            .filter_map(|k| match k {
                redis::Value::BulkString(b) => String::from_utf8(b).ok(),
                _ => None,
            })
            .collect(),
        other => panic!("KEYS: {other:?}"),
    }
}

/// A command that answers an integer.
pub async fn int(url: &str, args: &[&str]) -> i64 {
    match cmd(url, args).await {
        redis::Value::Int(n) => n,
        other => panic!("{args:?}: {other:?}"),
    }
}

/// Every key under `prefix` on the server at `url` has a TTL (none is -1); how many there are.
pub async fn assert_every_key_has_a_ttl(url: &str, prefix: &str) -> usize {
    let keys = keys(url, prefix).await;
    for k in &keys {
        let pttl = int(url, &["PTTL", k]).await;
        assert!(pttl > 0 || pttl == -2, "a key without a TTL (PTTL {pttl})");
    }
    keys.len()
}
