//! `cargo xtask tidy`: the checks no compiler makes.
//!
//! - every Rust file of a `src/` folder starts with a `//!` module doc comment;
//! - every dependency a manifest declares is used by the code that may use it (normal
//!   dependencies by `src/` and `build.rs`, dev-dependencies by `src/`, `tests/`, `benches/` and
//!   `examples/`);
//! - no file of a `src/` folder is over [`MAX_LINES`] lines unless its module doc says why, in a
//!   sentence starting with [`LONG_FILE_NOTE`].

use std::fs;
use std::path::{Path, PathBuf};

/// Longest `src/` file without a word on why.
const MAX_LINES: usize = 600;
/// How a long file says why it is long.
const LONG_FILE_NOTE: &str = "Why this file is long:";

/// The packages checked: the workspace members and the benchmark workspace.
const PACKAGES: &[&str] = &[
    "crates/session-core",
    "crates/session-cookie",
    "crates/session-store-memory",
    "crates/session-store-redis",
    "crates/session-hyper",
    "examples/support",
    "examples/counter",
    "examples/login",
    "examples/axum",
    "examples/demo",
    "xtask",
    "bench",
];

/// Runs every check; the error lists every problem found.
pub fn run() -> Result<(), String> {
    let mut problems = Vec::new();
    for package in PACKAGES {
        let dir = Path::new(package);
        let sources = rust_files(&dir.join("src"));
        for file in &sources {
            check_file(file, &mut problems);
        }
        check_dependencies(dir, &mut problems);
    }
    if problems.is_empty() {
        eprintln!("xtask: tidy: {} packages clean", PACKAGES.len());
        Ok(())
    } else {
        Err(format!(
            "tidy found {} problem(s):\n  {}",
            problems.len(),
            problems.join("\n  ")
        ))
    }
}

/// Every `.rs` file below `dir`, sorted.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = fs::read_dir(dir) else {
        return out;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    out.sort();
    out
}

fn check_file(file: &Path, problems: &mut Vec<String>) {
    let Ok(text) = fs::read_to_string(file) else {
        problems.push(format!("{}: unreadable", file.display()));
        return;
    };
    let first = text.lines().map(str::trim).find(|l| !l.is_empty());
    if !first.is_some_and(|l| l.starts_with("//!")) {
        problems.push(format!(
            "{}: no module doc comment (start the file with `//!`)",
            file.display()
        ));
    }
    let lines = text.lines().count();
    let doc: String = text
        .lines()
        .take_while(|l| l.trim().is_empty() || l.trim_start().starts_with("//!"))
        .collect::<Vec<_>>()
        .join(" ");
    if lines > MAX_LINES && !doc.contains(LONG_FILE_NOTE) {
        problems.push(format!(
            "{}: {lines} lines; split it, or say why in its module doc (\"{LONG_FILE_NOTE} ...\")",
            file.display()
        ));
    }
}

/// The dependency names of one `[...dependencies]` table of a manifest.
fn dependencies(manifest: &str, table: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut inside = false;
    for line in manifest.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            inside = line == format!("[{table}]");
            continue;
        }
        if !inside || line.is_empty() || line.starts_with('#') {
            continue;
        }
        let name = line
            .split(['=', '.'])
            .next()
            .unwrap_or_default()
            .trim()
            .trim_matches('"');
        if !name.is_empty() {
            out.push(name.to_owned());
        }
    }
    out
}

/// Whether any file below `dirs` (or `extra`) names the crate `ident` in code.
fn used(ident: &str, files: &[PathBuf]) -> bool {
    let patterns = [
        format!("{ident}::"),
        format!("use {ident}"),
        format!("extern crate {ident}"),
        format!("{ident}!"),
    ];
    files.iter().any(|f| {
        fs::read_to_string(f).is_ok_and(|text| {
            text.lines()
                .filter(|l| !l.trim_start().starts_with("//"))
                .any(|l| patterns.iter().any(|p| l.contains(p.as_str())))
        })
    })
}

fn check_dependencies(dir: &Path, problems: &mut Vec<String>) {
    let manifest_path = dir.join("Cargo.toml");
    let Ok(manifest) = fs::read_to_string(&manifest_path) else {
        problems.push(format!("{}: unreadable", manifest_path.display()));
        return;
    };
    let mut normal_files = rust_files(&dir.join("src"));
    if dir.join("build.rs").exists() {
        normal_files.push(dir.join("build.rs"));
    }
    let mut dev_files = normal_files.clone();
    for sub in ["tests", "benches", "examples"] {
        dev_files.extend(rust_files(&dir.join(sub)));
    }
    for (table, files) in [
        ("dependencies", &normal_files),
        ("build-dependencies", &normal_files),
        ("dev-dependencies", &dev_files),
    ] {
        for name in dependencies(&manifest, table) {
            let ident = name.replace('-', "_");
            if !used(&ident, files) {
                problems.push(format!(
                    "{}: [{table}] `{name}` is not used",
                    manifest_path.display()
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_dependency_tables() {
        let manifest = r#"
[package]
name = "x"

[dependencies]
serde.workspace = true
tokio = { workspace = true, features = ["rt"] }
"foo-bar" = "1"
# a comment

[dev-dependencies]
proptest.workspace = true
"#;
        assert_eq!(
            dependencies(manifest, "dependencies"),
            ["serde", "tokio", "foo-bar"]
        );
        assert_eq!(dependencies(manifest, "dev-dependencies"), ["proptest"]);
        assert!(dependencies(manifest, "build-dependencies").is_empty());
    }
}
