//! The old apps of the migration tests, made by the libraries a site moves in from: built
//! (tower-sessions and actix-session, Rust apps outside the workspace) or installed (express-session, a Node app
//! whose versions its committed lockfile pins) once per machine.

use std::path::Path;
use std::process::Command;

use crate::system::{cargo, install_with_apt, is_root};

/// Builds the tower-sessions app the migration tests move sessions from, and answers the
/// binary's path.
pub(crate) fn tower_sessions() -> Result<String, String> {
    rust_app("tower-sessions", "tower-sessions-fixture")
}

/// Builds the actix-session app the migration tests move sessions from, and answers the
/// binary's path.
pub(crate) fn actix() -> Result<String, String> {
    rust_app("actix", "actix-session-fixture")
}

/// Builds the Rust app in `fixtures/<dir>` (outside the workspace: it builds the library the
/// tests move sessions from, with its own dependencies) into a target directory of its own,
/// from its committed lockfile; the path of its binary `bin`.
fn rust_app(dir: &str, bin: &str) -> Result<String, String> {
    let dir = std::env::current_dir()
        .map_err(|e| format!("no current directory: {e}"))?
        .join("fixtures")
        .join(dir);
    let (manifest, target) = (dir.join("Cargo.toml"), dir.join("target"));
    let (manifest, target) = (manifest.to_string_lossy(), target.to_string_lossy());
    cargo(
        &[
            "build",
            "--locked",
            "--manifest-path",
            &manifest,
            "--target-dir",
            &target,
        ],
        &[],
    )?;
    Ok(format!("{target}/debug/{bin}"))
}

/// Installs the express-session app's packages (`npm ci`, from its lockfile) unless they are
/// there, and answers the path of its server script. Needs Node.js and npm: installed with
/// apt-get when missing and run as root, else named.
pub(crate) fn express() -> Result<String, String> {
    let dir = std::env::current_dir()
        .map_err(|e| format!("no current directory: {e}"))?
        .join("fixtures/express");
    ensure_node()?;
    // What was installed is stamped with the manifests it was installed from: a changed one
    // (whatever the files' times say) installs again.
    let stamp_file = dir.join("node_modules/.xtask-stamp");
    let stamp = stamp(&dir)?;
    if std::fs::read_to_string(&stamp_file).ok().as_deref() != Some(stamp.as_str()) {
        eprintln!("xtask: npm ci (fixtures/express)");
        let status = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
            .current_dir(&dir)
            .status()
            .map_err(|e| format!("could not run npm: {e}"))?;
        if !status.success() {
            return Err(format!("`npm ci` in fixtures/express failed ({status})"));
        }
        std::fs::write(&stamp_file, &stamp)
            .map_err(|e| format!("could not write {}: {e}", stamp_file.display()))?;
    }
    Ok(dir.join("server.js").to_string_lossy().into_owned())
}

/// A digest of the Node app's `package.json` and `package-lock.json` in `dir`.
fn stamp(dir: &Path) -> Result<String, String> {
    use std::hash::{Hash as _, Hasher as _};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    for name in ["package.json", "package-lock.json"] {
        let path = dir.join(name);
        let bytes =
            std::fs::read(&path).map_err(|e| format!("could not read {}: {e}", path.display()))?;
        bytes.hash(&mut h);
    }
    Ok(format!("{:016x}", h.finish()))
}

/// Node.js and npm on the path, installed from Debian's packages when missing and root.
fn ensure_node() -> Result<(), String> {
    let works = |bin: &str| {
        Command::new(bin)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if works("node") && works("npm") {
        return Ok(());
    }
    if !is_root() {
        return Err(
            "the express-session fixture needs Node.js (18 or later) and npm: install them (Debian: apt-get install nodejs npm), or run as root to have them installed".into(),
        );
    }
    for package in ["nodejs", "npm"] {
        install_with_apt(package)?;
    }
    Ok(())
}
