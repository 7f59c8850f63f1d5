//! A throwaway PostgreSQL for the tests: `initdb` into a temporary directory and `pg_ctl` on a
//! free loopback port, without fsync, stopped and deleted when dropped. As root (as CI runs),
//! the server binaries are installed with apt-get when missing, and the cluster runs as the
//! `postgres` user (the server refuses to run as root).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::system::{install_with_apt, is_root};

/// A running throwaway server; stopped and deleted on drop.
pub(crate) struct PgServer {
    bin: PathBuf,
    /// The temporary directory: the cluster's data under `data/`, its log and socket.
    dir: PathBuf,
    pub(crate) url: String,
}

impl Drop for PgServer {
    fn drop(&mut self) {
        let data = self.dir.join("data");
        let _ = as_server_user(&self.bin.join("pg_ctl"))
            .args(["-D", &data.to_string_lossy(), "-m", "immediate", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl PgServer {
    /// The postmaster's process id, from `postmaster.pid` in the data directory.
    pub(crate) fn pid(&self) -> Option<u32> {
        let pid = std::fs::read_to_string(self.dir.join("data").join("postmaster.pid")).ok()?;
        pid.lines().next()?.trim().parse().ok()
    }
}

/// A command run as the server's user: `postgres` when this process is root.
fn as_server_user(program: &Path) -> Command {
    if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    }
}

/// The directory of `initdb` and `pg_ctl`: `PG_BIN`, else the newest
/// `/usr/lib/postgresql/*/bin` (Debian), else the `PATH`.
pub(crate) fn find_bin() -> Option<PathBuf> {
    if let Ok(dir) = std::env::var("PG_BIN") {
        return Some(PathBuf::from(dir));
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v = e.file_name().to_string_lossy().parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((v, bin))
        })
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return Some(bin);
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).find(|d| d.join("initdb").exists() && d.join("pg_ctl").exists())
}

/// `DATABASE_URL` if set, else a throwaway server started here.
pub(crate) fn postgres() -> Result<(String, Option<PgServer>), String> {
    if let Ok(url) = std::env::var("DATABASE_URL") {
        eprintln!("xtask: using DATABASE_URL");
        return Ok((url, None));
    }
    let bin = match find_bin() {
        Some(bin) => bin,
        None if is_root() => {
            eprintln!("xtask: PostgreSQL server binaries not found; installing them with apt-get");
            install_with_apt("postgresql")?;
            find_bin().ok_or("PostgreSQL was installed but initdb is still not found")?
        }
        None => {
            return Err(
                "PostgreSQL server binaries (initdb, pg_ctl) were not found. Install \
                        them (Debian/Ubuntu: `apt-get install postgresql`), set PG_BIN to their \
                        directory, or point DATABASE_URL at a running database"
                    .into(),
            );
        }
    };
    let server = start(&bin)?;
    eprintln!("xtask: started a throwaway PostgreSQL at {}", server.url);
    Ok((server.url.clone(), Some(server)))
}

/// `initdb` (trust auth, no sync) and `pg_ctl start` on a free port, waiting until it is up.
pub(crate) fn start(bin: &Path) -> Result<PgServer, String> {
    let port = crate::system::free_port()?;
    let dir = std::env::temp_dir().join(format!("xtask-pg-{}-{port}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| format!("could not create {dir:?}: {e}"))?;
    if is_root() {
        let status = Command::new("chown")
            .args(["postgres:", &dir.to_string_lossy()])
            .status()
            .map_err(|e| format!("could not run chown: {e}"))?;
        if !status.success() {
            return Err(format!("chown of {dir:?} to postgres failed"));
        }
    }
    let server = PgServer {
        bin: bin.to_path_buf(),
        dir: dir.clone(),
        url: format!("postgres://postgres@127.0.0.1:{port}/postgres"),
    };
    let data = dir.join("data");
    let run = |mut c: Command, what: &str| -> Result<(), String> {
        let out = c
            .output()
            .map_err(|e| format!("could not run {what}: {e}"))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "{what} failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ))
        }
    };
    let mut initdb = as_server_user(&bin.join("initdb"));
    initdb.args(["-D", &data.to_string_lossy()]).args([
        "-U",
        "postgres",
        "--auth=trust",
        "-E",
        "UTF8",
        "--no-sync",
    ]);
    run(initdb, "initdb")?;
    let options = format!(
        "-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off \
         -c full_page_writes=off -c max_connections=200",
        dir.to_string_lossy()
    );
    let mut ctl = as_server_user(&bin.join("pg_ctl"));
    ctl.args(["-D", &data.to_string_lossy(), "-o", &options, "-l"])
        .arg(dir.join("log"))
        .args(["-w", "-t", "30", "start"]);
    run(ctl, "pg_ctl start")?;
    Ok(server)
}
