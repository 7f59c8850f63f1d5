//! The Markdown link check of `cargo xtask tidy`: every relative link of the repository's
//! Markdown resolves, to a file and, for an `#anchor`, to a heading of it.

use std::fs;
use std::path::{Path, PathBuf};

/// Every relative link in the Markdown files git tracks (outside `target/`, `node_modules/` and
/// the fuzz corpora) leads to a file or folder that exists, and its `#anchor`, if any, to a
/// heading of the Markdown file it names, as GitHub derives heading anchors. Links with a scheme
/// (`https:`, `mailto:`) and rustdoc's intra-doc paths (`crate::Foo`) are not files and are
/// skipped, and so is everything in code blocks and code spans.
pub(super) fn check(problems: &mut Vec<String>) {
    let listed = std::process::Command::new("git")
        .args(["ls-files", "-z", "--", "*.md"])
        .output();
    let files: Vec<PathBuf> = match listed {
        Ok(out) if out.status.success() => String::from_utf8_lossy(&out.stdout)
            .split('\0')
            .filter(|f| !f.is_empty())
            .filter(|f| {
                let f = format!("/{f}");
                !f.contains("/target/")
                    && !f.contains("/node_modules/")
                    && !f.contains("/fuzz/corpus")
            })
            .map(PathBuf::from)
            .collect(),
        _ => {
            problems.push("Markdown links: `git ls-files` failed, nothing checked".to_owned());
            return;
        }
    };
    for file in &files {
        let Ok(text) = fs::read_to_string(file) else {
            problems.push(format!("{}: unreadable", file.display()));
            continue;
        };
        for (line, link) in markdown_links(&text) {
            if link.is_empty() || link.contains(':') {
                continue;
            }
            let (path, anchor) = link.split_once('#').unwrap_or((&link, ""));
            let path = path.replace("%20", " ");
            let target = if path.is_empty() {
                file.clone()
            } else if let Some(from_root) = path.strip_prefix('/') {
                PathBuf::from(from_root)
            } else {
                file.parent().unwrap_or(Path::new("")).join(&path)
            };
            let at = format!("{}:{line}: link `{link}`", file.display());
            if !target.exists() {
                problems.push(format!("{at}: no such file"));
            } else if !anchor.is_empty() && target.extension().is_some_and(|e| e == "md") {
                let headings = fs::read_to_string(&target).unwrap_or_default();
                if !heading_anchors(&headings).iter().any(|a| a == anchor) {
                    problems.push(format!("{at}: no heading with that anchor"));
                }
            }
        }
    }
}

/// The lines of a Markdown text outside fenced code blocks, numbered from 1, with code spans
/// taken out, or only their backticks (`keep_code`).
fn markdown_prose(text: &str, keep_code: bool) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut fence: Option<String> = None;
    for (i, line) in text.lines().enumerate() {
        let marker: String = line
            .trim_start()
            .chars()
            .take_while(|&c| c == '`' || c == '~')
            .collect();
        let uniform = marker.chars().all(|c| marker.starts_with(c));
        if let Some(open) = &fence {
            if uniform && marker.len() >= open.len() && marker.starts_with(&open[..1]) {
                fence = None;
            }
            continue;
        }
        if uniform && marker.len() >= 3 {
            fence = Some(marker);
            continue;
        }
        // A code span: a run of backticks up to the next run of the same length.
        let mut prose = String::with_capacity(line.len());
        let mut rest = line;
        while let Some(at) = rest.find('`') {
            prose.push_str(&rest[..at]);
            let run = rest[at..].chars().take_while(|&c| c == '`').count();
            let after = &rest[at + run..];
            rest = match after.find(&"`".repeat(run)) {
                Some(end) => {
                    if keep_code {
                        prose.push_str(&after[..end]);
                    }
                    &after[end + run..]
                }
                None => after,
            };
        }
        prose.push_str(rest);
        out.push((i + 1, prose));
    }
    out
}

/// The destinations of the links of a Markdown text (inline `[text](dest)`, images, and
/// reference definitions `[name]: dest`), with their line numbers.
fn markdown_links(text: &str) -> Vec<(usize, String)> {
    let mut links = Vec::new();
    for (line, prose) in markdown_prose(text, false) {
        let trimmed = prose.trim_start();
        if trimmed.starts_with('[')
            && let Some((_, dest)) = trimmed.split_once("]:")
        {
            let dest = dest.split_whitespace().next().unwrap_or_default();
            links.push((line, dest.to_owned()));
            continue;
        }
        let mut rest = prose.as_str();
        while let Some(at) = rest.find("](") {
            let tail = &rest[at + 2..];
            let mut depth = 0usize;
            let mut end = tail.len();
            for (i, c) in tail.char_indices() {
                match c {
                    '(' => depth += 1,
                    ')' if depth == 0 => {
                        end = i;
                        break;
                    }
                    ')' => depth -= 1,
                    _ => {}
                }
            }
            let dest = tail[..end].trim();
            let dest = match dest.strip_prefix('<') {
                Some(angled) => angled.split('>').next().unwrap_or_default(),
                None => dest.split_whitespace().next().unwrap_or_default(),
            };
            links.push((line, dest.to_owned()));
            rest = &tail[end..];
        }
    }
    links
}

/// The anchors GitHub gives the headings of a Markdown text: the heading's text without link
/// destinations, lowercased, without punctuation but `-` and `_`, each space made `-`; a
/// repeated anchor gets `-1`, `-2`, ...
fn heading_anchors(text: &str) -> Vec<String> {
    let mut anchors: Vec<String> = Vec::new();
    for (_, prose) in markdown_prose(text, true) {
        let trimmed = prose.trim_start();
        let level = trimmed.chars().take_while(|&c| c == '#').count();
        let title = &trimmed[level..];
        let indent = prose.len() - trimmed.len();
        if !(1..=6).contains(&level)
            || indent > 3
            || !(title.is_empty() || title.starts_with([' ', '\t']))
        {
            continue;
        }
        // `[text](dest)` reads as `text`.
        let mut plain = String::new();
        let mut rest = title.trim().trim_end_matches('#').trim_end();
        while let Some(at) = rest.find("](") {
            plain.push_str(&rest[..at]);
            rest = rest[at..].split_once(')').map_or("", |(_, after)| after);
        }
        plain.push_str(rest);
        let base: String = plain
            .to_lowercase()
            .chars()
            .filter(|&c| c.is_alphanumeric() || c == '-' || c == '_' || c == ' ')
            .map(|c| if c == ' ' { '-' } else { c })
            .collect();
        let mut anchor = base.clone();
        let mut n = 0;
        while anchors.contains(&anchor) {
            n += 1;
            anchor = format!("{base}-{n}");
        }
        anchors.push(anchor);
    }
    anchors
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markdown_links_outside_code() {
        let text = "# Title\n\
            See [the guide](docs/README.md#stores) and ![a](img.png \"t\").\n\
            `[not](a-link.md)` and [x](<with space.md>)\n\
            ```rust\n\
            let v = a[0](x);\n\
            ```\n\
            [ref]: ../ARCHITECTURE.md\n\
            [site](https://example.com) and [`Store`](session_core::store::Store) (f(x))\n\
            [nested](a_(b).md)\n";
        assert_eq!(
            markdown_links(text),
            [
                (2, "docs/README.md#stores".to_owned()),
                (2, "img.png".to_owned()),
                (3, "with space.md".to_owned()),
                (7, "../ARCHITECTURE.md".to_owned()),
                (8, "https://example.com".to_owned()),
                (8, "session_core::store::Store".to_owned()),
                (9, "a_(b).md".to_owned()),
            ]
        );
    }

    #[test]
    fn heading_anchors_as_github_makes_them() {
        let text = "# koa-style sessions\n\
            ## A user's sessions (\"log out everywhere\")\n\
            ### `session-store-redis`: Cluster, *the* cache\n\
            ## Options\n\
            ## Options\n\
            ```sh\n\
            # a comment, not a heading\n\
            ```\n\
            #not a heading\n\
            ## [Linked](x.md) title ##\n";
        assert_eq!(
            heading_anchors(text),
            [
                "koa-style-sessions",
                "a-users-sessions-log-out-everywhere",
                "session-store-redis-cluster-the-cache",
                "options",
                "options-1",
                "linked-title",
            ]
        );
    }
}
