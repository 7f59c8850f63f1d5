//! Redis test harness: a `redis-server` of the test's own on a free loopback port (for tests
//! that stop, pause or fill it), and the shared server `cargo xtask test-redis` started.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

pub mod cache;

use std::convert::Infallible;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response, body::Incoming};
use session_hyper::{Session, SessionLayer};

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

/// A local Redis Cluster: three masters with one replica each, on loopback ports.
pub struct Cluster {
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

/// The test app: `/views` counts, `/read` answers the data, `/slow-set?k=v` loads, waits
/// 100 ms (so two requests overlap) and sets one key, `/login?OWNER` regenerates and binds
/// the session to OWNER (`/plain-login?USER` without binding), `/logout` destroys,
/// `/revoke-all` revokes every session of the session's owner.
pub async fn app(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let s = Session::from_request(&req).unwrap();
    let path = req.uri().path().to_owned();
    let query = req.uri().query().unwrap_or("").to_owned();
    let out = async {
        Ok::<_, session_hyper::Error>(match path.as_str() {
            "/views" => {
                let n: u64 = s.get("views").await?.unwrap_or(0) + 1;
                s.insert("views", n).await?;
                format!("{n} views")
            }
            "/read" => serde_json::Value::Object(s.data().await?).to_string(),
            "/plain-login" => {
                // A login that binds no owner, to compare with `/login`.
                s.regenerate().await?;
                s.insert("user", &query).await?;
                "in".into()
            }
            "/logout" => {
                s.destroy().await?;
                "bye".into()
            }
            "/revoke-all" => {
                // "Log out everywhere" for the session's own owner.
                match s.owner().await? {
                    Some(owner) => s.revoke_all_sessions(&owner).await?.to_string(),
                    None => "anonymous".into(),
                }
            }
            "/login" => {
                // `/login?OWNER`: a new id, bound to the owner.
                s.regenerate().await?;
                s.insert("user", &query).await?;
                s.set_owner(&query).await?;
                "in".into()
            }
            "/slow-set" => {
                s.get_value("x").await?;
                tokio::time::sleep(Duration::from_millis(100)).await;
                let (k, v) = query.split_once('=').unwrap();
                s.insert(k, v).await?;
                "ok".into()
            }
            _ => "?".into(),
        })
    }
    .await;
    Ok(Response::new(Full::from(out.unwrap_or_default())))
}

pub async fn serve(layer: SessionLayer) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let service = layer.wrap(hyper::service::service_fn(app));
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let service = service.clone();
            tokio::spawn(async move {
                let io = hyper_util::rt::TokioIo::new(stream);
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(io, service)
                    .await;
            });
        }
    });
    format!("http://{addr}")
}

/// The conformance harness for a real server (time passes by sleeping).
pub struct Real(pub session_store_redis::RedisStore);

impl session_core::store::testing::Harness for Real {
    type S = session_store_redis::RedisStore;
    fn store(&self) -> &session_store_redis::RedisStore {
        &self.0
    }
    async fn advance(&self, by: Duration) {
        tokio::time::sleep(by).await;
    }
    async fn ttl(&self, key: &session_core::store::StoreKey) -> Option<Duration> {
        self.0.ttl(key).await.unwrap()
    }
    fn short_ttl(&self) -> Duration {
        Duration::from_millis(300)
    }
    fn record_limit(&self) -> usize {
        // The store's default (the harness builds stores with it).
        64 * 1024
    }
}

/// A client with a cookie jar, like a browser.
pub fn jar_client() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .build()
        .unwrap()
}

/// GET `url`, the body as text.
pub async fn text(c: &reqwest::Client, url: String) -> String {
    c.get(url).send().await.unwrap().text().await.unwrap()
}
