//! `cargo xtask tidy`: the checks no compiler makes.
//!
//! - every Rust file of a `src/` folder starts with a `//!` module doc comment;
//! - every dependency a manifest declares is used by the code that may use it (normal
//!   dependencies by `src/` and `build.rs`, dev-dependencies by `src/`, `tests/`, `benches/` and
//!   `examples/`);
//! - no file of a `src/` or `tests/` folder is over [`MAX_LINES`] lines unless its module doc
//!   says why, in a sentence starting with [`LONG_FILE_NOTE`];
//! - the modules of a crate depend on each other one way: no module reaches (through
//!   `crate::...` or `super::...` paths, outside its tests) a module that reaches it back;
//! - every relative link of the Markdown files git tracks leads to a file, and an `#anchor` to
//!   a heading of it (as GitHub names them).

use std::fs;
use std::path::{Path, PathBuf};

mod links;

/// Longest `src/` or `tests/` file without a word on why.
const MAX_LINES: usize = 600;
/// How a long file says why it is long.
const LONG_FILE_NOTE: &str = "Why this file is long:";

/// The packages checked: the workspace members and the benchmark workspace.
const PACKAGES: &[&str] = &[
    "crates/session-core",
    "crates/session-cookie",
    "crates/session-store-memory",
    "crates/session-pool",
    "crates/session-store-redis",
    "crates/session-store-postgres",
    "crates/session-hyper",
    "crates/session-migrate",
    "crates/session-auth",
    "crates/session-testkit",
    "examples/support",
    "examples/counter",
    "examples/login",
    "examples/axum",
    "examples/demo",
    "browser-tests",
    "xtask",
    "bench",
    "fixtures/tower-sessions",
    "fixtures/actix",
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
        // Tests need no module doc, but the length rule holds for them too.
        for file in rust_files(&dir.join("tests")) {
            check_length(&file, &mut problems);
        }
        check_dependencies(dir, &mut problems);
        check_module_cycles(dir, &sources, &mut problems);
    }
    links::check(&mut problems);
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
    check_length_of(file, &text, problems);
}

/// The length rule alone: over [`MAX_LINES`] lines, the module doc says why.
fn check_length(file: &Path, problems: &mut Vec<String>) {
    match fs::read_to_string(file) {
        Ok(text) => check_length_of(file, &text, problems),
        Err(_) => problems.push(format!("{}: unreadable", file.display())),
    }
}

fn check_length_of(file: &Path, text: &str, problems: &mut Vec<String>) {
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

/// The module path of a source file (`src/config/keys.rs` -> `config::keys`; the crate root
/// is the empty path).
fn module_of(src: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(src).unwrap_or(file).with_extension("");
    let parts: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    match parts.as_slice() {
        [only] if only == "lib" || only == "main" => String::new(),
        [.., last] if last == "mod" => parts[..parts.len() - 1].join("::"),
        _ => parts.join("::"),
    }
}

/// The code of a file without its `#[cfg(test)]` part, comment lines and string literals.
fn code_lines(text: &str) -> Vec<String> {
    text.lines()
        .take_while(|l| l.trim() != "#[cfg(test)]")
        .filter(|l| !l.trim_start().starts_with("//"))
        .map(without_strings)
        .collect()
}

/// A line with the contents of its `"..."` literals removed.
fn without_strings(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut in_string = false;
    let mut escaped = false;
    for c in line.chars() {
        if in_string {
            match (escaped, c) {
                (false, '\\') => escaped = true,
                (false, '"') => {
                    in_string = false;
                    out.push(c);
                }
                _ => escaped = false,
            }
        } else {
            if c == '"' {
                in_string = true;
            }
            out.push(c);
        }
    }
    out
}

/// The module dependencies of one crate, from `crate::a::b` and `super::x` paths; a name the
/// root re-exports (`crate::Error`) counts as the module it comes from.
fn module_edges(src: &Path, files: &[PathBuf]) -> Vec<(String, String)> {
    let modules: Vec<String> = files.iter().map(|f| module_of(src, f)).collect();
    let root = files
        .iter()
        .find(|f| module_of(src, f).is_empty())
        .and_then(|f| fs::read_to_string(f).ok())
        .unwrap_or_default();
    // `pub use module::{A, B};` / `pub use module::A;` in the root.
    let mut reexports: Vec<(String, String)> = Vec::new();
    for stmt in root.split(';') {
        let stmt = stmt.trim();
        let Some(rest) = stmt.strip_prefix("pub use ") else {
            continue;
        };
        let Some((module, names)) = rest.split_once("::") else {
            continue;
        };
        if modules.iter().any(|m| m == module) {
            for name in names
                .split([',', '{', '}', ' ', '\n'])
                .filter(|n| !n.is_empty())
            {
                reexports.push((name.to_owned(), module.to_owned()));
            }
        }
    }
    let resolve = |from: &str, path: &str| -> Option<String> {
        // The longest known module that `path` starts with.
        let mut best: Option<String> = None;
        for m in &modules {
            let starts = path == m.as_str() || path.starts_with(&format!("{m}::"));
            if !m.is_empty() && starts && best.as_ref().is_none_or(|b| m.len() > b.len()) {
                best = Some(m.clone());
            }
        }
        if best.is_none() {
            let first = path.split("::").next().unwrap_or_default();
            best = Some(
                reexports
                    .iter()
                    .find(|(name, _)| name == first)
                    // Anything else under `crate::` is an item of the root itself.
                    .map_or_else(String::new, |(_, m)| m.clone()),
            );
        }
        best.filter(|m| m != from)
    };
    let mut edges = Vec::new();
    for (file, module) in files.iter().zip(&modules) {
        let Ok(text) = fs::read_to_string(file) else {
            continue;
        };
        let parent = module.rsplit_once("::").map_or("", |(p, _)| p).to_owned();
        if module.is_empty() {
            // The root names its children without a prefix (`pub use store::Store;`).
            for child in modules
                .iter()
                .filter(|m| !m.is_empty() && !m.contains("::"))
            {
                let named = code_lines(&text).iter().any(|l| {
                    let l = l.trim_start();
                    !l.starts_with("mod ")
                        && !l.starts_with("pub mod ")
                        && l.contains(&format!("{child}::"))
                });
                if named {
                    edges.push((String::new(), child.clone()));
                }
            }
        }
        for line in code_lines(&text) {
            let line = line.as_str();
            for (prefix, base) in [("crate::", String::new()), ("super::", parent.clone())] {
                let mut rest = line;
                while let Some(at) = rest.find(prefix) {
                    let tail = &rest[at + prefix.len()..];
                    let path: String = tail
                        .chars()
                        .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
                        .collect();
                    let full = if base.is_empty() {
                        path
                    } else {
                        format!("{base}::{path}")
                    };
                    if let Some(to) = resolve(module, full.trim_end_matches(':')) {
                        edges.push((module.clone(), to));
                    }
                    rest = tail;
                }
            }
        }
    }
    edges.sort();
    edges.dedup();
    edges
}

fn check_module_cycles(dir: &Path, files: &[PathBuf], problems: &mut Vec<String>) {
    let edges = module_edges(&dir.join("src"), files);
    let reaches = |from: &str, to: &str| -> bool {
        let mut seen = vec![from.to_owned()];
        let mut stack = vec![from.to_owned()];
        while let Some(m) = stack.pop() {
            for (a, b) in &edges {
                if *a == m && !seen.contains(b) {
                    if b == to {
                        return true;
                    }
                    seen.push(b.clone());
                    stack.push(b.clone());
                }
            }
        }
        false
    };
    for (a, b) in &edges {
        // A child using its own parent module (or the root) through `super`/`crate` is how Rust
        // nests modules, not a layering problem, unless the parent also uses the child's users.
        if a < b && reaches(b, a) {
            let name = |m: &str| {
                if m.is_empty() {
                    "the crate root".to_owned()
                } else {
                    format!("`{m}`")
                }
            };
            problems.push(format!(
                "{}: modules {} and {} depend on each other",
                dir.display(),
                name(a),
                name(b)
            ));
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

    #[test]
    fn string_literals_are_not_code() {
        assert_eq!(
            without_strings(r#"let a = "crate::x"; b"#),
            r#"let a = ""; b"#
        );
        assert_eq!(without_strings(r#"f("a\"b", c)"#), r#"f("", c)"#);
    }
}
