//! Chromium and chromedriver for the browser tests: found on the machine (Debian's `chromium`
//! and `chromium-driver`, or `CHROME_BIN` / `CHROMEDRIVER`), installed with apt-get only where
//! the caller allows it (`cargo xtask ci` as root), and chromedriver started on a free
//! loopback port for the length of the run.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::system::{free_port, install_with_apt, is_root, wait_listening};

/// How to get what is missing.
const INSTALL: &str = "install Debian's Chromium and its driver (`apt-get install chromium chromium-driver`), \
     or set CHROME_BIN and CHROMEDRIVER to a Chromium and the chromedriver of its version";

/// A chromedriver started for the tests; stopped on drop, whatever happened.
pub(crate) struct Driver {
    child: Child,
    /// `http://127.0.0.1:PORT` (WEBDRIVER_URL for the tests).
    pub(crate) url: String,
    /// The Chromium binary the tests ask chromedriver to run (CHROME_BIN for the tests).
    pub(crate) chrome: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        // Asked to shut down, chromedriver ends every session it still has (a test process
        // that died leaves its Chromium behind otherwise); killed if it does not within 5 s.
        if let Some(port) = self.url.rsplit(':').next() {
            let _ =
                TcpStream::connect(("127.0.0.1", port.parse().unwrap_or(0))).and_then(|mut s| {
                    s.set_read_timeout(Some(Duration::from_secs(5)))?;
                    s.write_all(
                        b"GET /shutdown HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
                    )?;
                    let mut sink = Vec::new();
                    s.read_to_end(&mut sink).map(|_| ())
                });
        }
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(5) {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        eprintln!("xtask: stopped chromedriver at {}", self.url);
    }
}

/// `name` as found on `PATH`.
fn on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// Chromium and chromedriver, as (chrome, driver); `None` for what is missing.
fn find() -> (Option<PathBuf>, Option<PathBuf>) {
    let chrome = match std::env::var_os("CHROME_BIN") {
        Some(p) => Some(PathBuf::from(p)).filter(|p| p.is_file()),
        None => ["chromium", "chromium-browser", "google-chrome"]
            .iter()
            .find_map(|n| on_path(n)),
    };
    let driver = match std::env::var_os("CHROMEDRIVER") {
        Some(p) => Some(PathBuf::from(p)).filter(|p| p.is_file()),
        None => on_path("chromedriver"),
    };
    (chrome, driver)
}

/// Chromium and chromedriver. With `install` (and running as root), what is missing is
/// installed with apt-get first; otherwise the error says what to install.
pub(crate) fn ensure(install: bool) -> Result<(PathBuf, PathBuf), String> {
    let (mut chrome, mut driver) = find();
    if (chrome.is_none() || driver.is_none()) && install && is_root() {
        eprintln!("xtask: Chromium or chromedriver not found; installing them with apt-get");
        install_with_apt("chromium")?;
        install_with_apt("chromium-driver")?;
        (chrome, driver) = find();
    }
    let (Some(chrome), Some(driver)) = (chrome, driver) else {
        return Err(format!(
            "the browser tests need Chromium and chromedriver: {INSTALL}"
        ));
    };
    // chromedriver drives only the Chromium of its own major version.
    let (c, d) = (major_version(&chrome), major_version(&driver));
    if let (Some(c), Some(d)) = (c, d)
        && c != d
    {
        return Err(format!(
            "{} is version {c} but {} is version {d}: {INSTALL}",
            chrome.display(),
            driver.display()
        ));
    }
    Ok((chrome, driver))
}

/// The major version `bin --version` prints (`Chromium 156.0...`, `ChromeDriver 156.0...`).
fn major_version(bin: &Path) -> Option<u32> {
    let out = Command::new(bin)
        .arg("--version")
        .stderr(Stdio::null())
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let version = text.split_whitespace().find(|w| w.contains('.'))?;
    version.split('.').next()?.parse().ok()
}

/// Starts chromedriver (after [`ensure`] with `install`).
pub(crate) fn chromedriver(install: bool) -> Result<Driver, String> {
    let (chrome, driver) = ensure(install)?;
    start(&chrome, &driver)
}

fn start(chrome: &Path, driver: &Path) -> Result<Driver, String> {
    let port = free_port()?;
    let child = Command::new(driver)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("could not start {}: {e}", driver.display()))?;
    let mut d = Driver {
        child,
        url: format!("http://127.0.0.1:{port}"),
        chrome: chrome.to_string_lossy().into_owned(),
    };
    wait_listening(&mut d.child, port, &driver.display().to_string())?;
    eprintln!(
        "xtask: started chromedriver at {} for {}",
        d.url,
        chrome.display()
    );
    Ok(d)
}
