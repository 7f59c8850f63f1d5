//! Test support: a store on its own fresh table of `DATABASE_URL`, and the conformance harness.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use session_store_postgres::PostgresStore;

/// The database the tests use (set by `cargo xtask test-postgres`).
/// A plain client of the server at `url` (for what a test does behind the store's back:
/// locks, roles, `pg_stat_activity`).
pub async fn client(url: &str) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    client
}

/// A one-key browser-session record.
pub fn small_record() -> session_core::store::Record {
    session_core::store::Record {
        data: serde_json::json!({"n": 1}).as_object().cloned().unwrap(),
        meta: session_core::store::Meta {
            expire: None,
            max_age: session_core::MaxAge::Session,
            created: None,
        },
    }
}

pub fn url() -> String {
    std::env::var("DATABASE_URL")
        .expect("DATABASE_URL: run through `cargo xtask test-postgres` or `cargo xtask ci`")
}

/// A table name no other test uses.
pub fn unique_table(name: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("t_{name}_{}_{}", std::process::id(), nanos % 1_000_000_000)
}

/// A migrated store on a fresh table.
pub async fn store(name: &str) -> PostgresStore {
    let s = PostgresStore::builder(url())
        .table(unique_table(name))
        .build()
        .unwrap();
    s.migrate().await.unwrap();
    s
}

pub struct Real(pub PostgresStore);

impl session_core::store::testing::Harness for Real {
    type S = PostgresStore;
    fn store(&self) -> &PostgresStore {
        &self.0
    }
    async fn advance(&self, by: Duration) {
        tokio::time::sleep(by).await;
    }
    async fn ttl(&self, key: &session_core::store::StoreKey) -> Option<Duration> {
        self.0.ttl(key).await.unwrap()
    }
    /// Long enough for a first statement on a cold connection (a prepare, on a busy machine)
    /// to land before the record it created expires: at 300 ms one cold run in a dozen lost
    /// the race.
    fn short_ttl(&self) -> Duration {
        Duration::from_millis(800)
    }
    fn record_limit(&self) -> usize {
        session_store_postgres::DEFAULT_MAX_RECORD_BYTES
    }
}

use std::convert::Infallible;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response};
use session_hyper::{Session, SessionLayer};

/// The test app: `/views` counts, `/read` answers the data, `/slow-set?k=v` loads, waits
/// 100 ms (so two requests overlap) and sets one key, `/regenerate`, `/logout`,
/// `/login?OWNER` regenerates and binds.
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
            "/slow-set" => {
                s.get_value("x").await?;
                tokio::time::sleep(Duration::from_millis(100)).await;
                let (k, v) = query.split_once('=').unwrap();
                s.insert(k, v).await?;
                "ok".into()
            }
            "/regenerate" => {
                s.regenerate().await?;
                "regenerated".into()
            }
            "/logout" => {
                s.destroy().await?;
                "bye".into()
            }
            "/login" => {
                s.regenerate().await?;
                s.insert("user", &query).await?;
                s.set_owner(&query).await?;
                "in".into()
            }
            _ => "?".into(),
        })
    }
    .await;
    Ok(match out {
        Ok(body) => Response::new(Full::from(body)),
        Err(e) => e.response(),
    })
}

/// Serves the test app behind `layer` on a fresh loopback port; its URL.
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

/// A client with a cookie jar, like a browser.
pub fn jar_client() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

/// GET `url`: status and body.
pub async fn get(c: &reqwest::Client, url: String) -> (u16, String) {
    let r = c.get(url).send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

pub const KEY: &[u8] = b"postgres e2e key, 32 bytes or more";

/// A session layer on `store`.
pub fn layer(store: PostgresStore, rolling: bool) -> SessionLayer {
    let config = session_core::Config::builder()
        .key(KEY.to_vec())
        .rolling(rolling)
        .build()
        .unwrap();
    SessionLayer::store(config, store).build().unwrap()
}

/// A PostgreSQL cluster of a test's own (for stopping and restarting it): `initdb` into a
/// temporary directory with the binaries in `PG_BIN` (set by `cargo xtask test-postgres` and
/// `cargo xtask ci`), `pg_ctl` on a free loopback port; as root, run as the `postgres` user.
pub struct Cluster {
    bin: std::path::PathBuf,
    dir: std::path::PathBuf,
    pub port: u16,
    /// Server options beyond the port, socket and fsync (e.g. TLS).
    extra: String,
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status").is_ok_and(|s| {
        s.lines()
            .find_map(|l| l.strip_prefix("Uid:"))
            .and_then(|ids| ids.split_whitespace().nth(1))
            == Some("0")
    })
}

impl Cluster {
    fn cmd(&self, program: &str) -> std::process::Command {
        let path = self.bin.join(program);
        if is_root() {
            let mut c = std::process::Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(path);
            c
        } else {
            std::process::Command::new(path)
        }
    }

    fn run(&self, mut c: std::process::Command) {
        let out = c.output().unwrap();
        assert!(
            out.status.success(),
            "{:?}: {}",
            c,
            String::from_utf8_lossy(&out.stderr)
        );
    }

    pub fn start() -> Cluster {
        let bin = std::env::var("PG_BIN").expect("PG_BIN: run through `cargo xtask test-postgres`");
        Cluster::start_in(bin.into())
    }

    /// A cluster with the server binaries in `bin`.
    pub fn start_in(bin: std::path::PathBuf) -> Cluster {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let dir = std::env::temp_dir().join(format!("pg-faults-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        if is_root() {
            let ok = std::process::Command::new("chown")
                .args(["postgres:", &dir.to_string_lossy()])
                .status()
                .unwrap();
            assert!(ok.success());
        }
        let c = Cluster {
            bin,
            dir,
            port,
            extra: String::new(),
        };
        let mut init = c.cmd("initdb");
        init.args([
            "-D",
            &c.data(),
            "-U",
            "postgres",
            "--auth=trust",
            "--no-sync",
        ]);
        c.run(init);
        c.up();
        c
    }

    /// A cluster that also serves TLS with the test-only self-signed certificate in
    /// tests/data (for `localhost` and 127.0.0.1).
    pub fn start_tls() -> Cluster {
        let mut c = Cluster::start();
        c.down();
        let data = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data");
        for f in ["test-cert.pem", "test-key.pem"] {
            let to = c.dir.join(f);
            std::fs::copy(data.join(f), &to).unwrap();
            let mut perms = std::fs::metadata(&to).unwrap().permissions();
            std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o600);
            std::fs::set_permissions(&to, perms).unwrap();
            if is_root() {
                let ok = std::process::Command::new("chown")
                    .args(["postgres:", &to.to_string_lossy()])
                    .status()
                    .unwrap();
                assert!(ok.success());
            }
        }
        c.extra = format!(
            "-c ssl=on -c ssl_cert_file={} -c ssl_key_file={}",
            c.dir.join("test-cert.pem").to_string_lossy(),
            c.dir.join("test-key.pem").to_string_lossy()
        );
        c.up();
        c
    }

    fn data(&self) -> String {
        self.dir.join("data").to_string_lossy().into_owned()
    }

    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Starts (or restarts) the server, waiting until it accepts connections.
    pub fn up(&self) {
        self.pg_ctl_start("-w");
    }

    /// Starts the server without waiting: it answers "starting up" (57P03) until it is ready.
    pub fn up_without_waiting(&self) {
        self.pg_ctl_start("-W");
    }

    /// From now on, TCP logins other than `postgres`'s need a password (SCRAM), as on a
    /// real server; the socket stays trusted.
    pub fn require_passwords(&self) {
        let hba = "local all all trust\n\
                   host all postgres 127.0.0.1/32 trust\n\
                   host all all 127.0.0.1/32 scram-sha-256\n";
        std::fs::write(self.dir.join("data/pg_hba.conf"), hba).unwrap();
        let mut ctl = self.cmd("pg_ctl");
        ctl.args(["-D", &self.data(), "reload"]);
        self.run(ctl);
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("log")).unwrap_or_default()
    }

    fn pg_ctl_start(&self, wait: &str) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off {}",
            self.port,
            self.dir.to_string_lossy(),
            self.extra
        );
        let mut ctl = self.cmd("pg_ctl");
        ctl.args(["-D", &self.data(), "-o", &options, "-l"])
            .arg(self.dir.join("log"))
            .args([wait, "start"]);
        self.run(ctl);
    }

    /// Stops the server at once (`-m immediate`: like a crash).
    pub fn down(&self) {
        let mut ctl = self.cmd("pg_ctl");
        ctl.args(["-D", &self.data(), "-m", "immediate", "-w", "stop"]);
        self.run(ctl);
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = self
            .cmd("pg_ctl")
            .args(["-D", &self.data(), "-m", "immediate", "stop"])
            .output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The store's tracing events (target `session::postgres`) by message, each with the instant
/// it was emitted, taken inside the emitting call: what a test reads of the pool's own view
/// (when it began a connect, when it held connects off).
#[derive(Clone, Default)]
pub struct Events(std::sync::Arc<std::sync::Mutex<Vec<(std::time::Instant, String)>>>);

impl Events {
    /// Runs `f` on a multi-threaded runtime (2 workers) whose threads, and this one, report
    /// to these events.
    pub fn block_on<F: std::future::Future>(&self, f: F) -> F::Output {
        let dispatch = tracing::Dispatch::new(self.clone());
        let runtime = {
            let dispatch = dispatch.clone();
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .on_thread_start(move || {
                    // The thread's default for as long as it runs (the runtime's threads only,
                    // so the other tests of this binary, on threads of their own, don't
                    // report here).
                    std::mem::forget(tracing::dispatcher::set_default(&dispatch));
                })
                .build()
                .unwrap()
        };
        tracing::dispatcher::with_default(&dispatch, || runtime.block_on(f))
    }

    /// The instants of the events with this message, in order.
    pub fn times(&self, message: &str) -> Vec<std::time::Instant> {
        let mut t: Vec<_> = (self.0.lock().unwrap().iter())
            .filter(|(_, m)| m == message)
            .map(|(t, _)| *t)
            .collect();
        t.sort();
        t
    }
}

struct Message(Option<String>);

impl tracing::field::Visit for Message {
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        if field.name() == "message" {
            self.0 = Some(value.to_owned());
        }
    }
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.0 = Some(format!("{value:?}"));
        }
    }
}

impl tracing::Subscriber for Events {
    fn enabled(&self, metadata: &tracing::Metadata<'_>) -> bool {
        metadata.target() == "session::postgres"
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        let at = std::time::Instant::now();
        let mut message = Message(None);
        event.record(&mut message);
        if let Some(m) = message.0 {
            self.0.lock().unwrap().push((at, m));
        }
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}
