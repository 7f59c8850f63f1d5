//! PostgreSQL for the tests: the shared server `cargo xtask test-postgres` (or `ci`) started
//! ([`url`]), stores on fresh tables of it ([`store`]), plain clients for what a test does
//! behind a store's back ([`client`]), and a throwaway cluster of a test's own for stopping and
//! restarting ([`Cluster`]).

use std::time::{SystemTime, UNIX_EPOCH};

use session_store_postgres::PostgresStore;

/// The database the tests use (`DATABASE_URL`, set by `cargo xtask test-postgres`).
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

/// A plain client of the server at `url` (for what a test does behind the store's back:
/// locks, roles, `pg_stat_activity`).
pub async fn client(url: &str) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    client
}

/// A PostgreSQL cluster of a test's own (for stopping and restarting it): `initdb` into a
/// temporary directory with the binaries in `PG_BIN` (set by `cargo xtask test-postgres` and
/// `cargo xtask ci`), `pg_ctl` on a free loopback port; as root, run as the `postgres` user.
pub struct Cluster {
    bin: std::path::PathBuf,
    dir: std::path::PathBuf,
    /// Its loopback port.
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

    /// A cluster with the server binaries in `PG_BIN`.
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

    /// A cluster that also serves TLS with the test-only self-signed certificate
    /// `test-cert.pem` and its key `test-key.pem` in `data` (for `localhost` and 127.0.0.1).
    pub fn start_tls(data: &std::path::Path) -> Cluster {
        let mut c = Cluster::start();
        c.down();
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

    /// Its URL (user and database `postgres`, trusted).
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
