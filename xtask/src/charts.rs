//! The load benchmark's charts: SVG files drawn from saved [`Results`] with plotters' SVG
//! backend (which writes `<text>` elements, so no font is loaded).
//!
//! Each chart has a group of bars per scenario and one bar per server kind, the kinds of one
//! store side by side (bare hyper, cookie, memory, Redis, PostgreSQL), ours in cool colours
//! (blues, teals, greens), the peers in warm ones (reds, oranges, browns), bare hyper in greys.
//! `cargo xtask bench` draws them after a run; `cargo xtask bench-charts [FILE]` draws them
//! again from a saved `results.json`.

use std::path::{Path, PathBuf};

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::results::{Results, Server, Side};

/// Where the charts and the JSON they were drawn from live.
pub(crate) const DIR: &str = "docs/bench";

/// Width and height of every chart, px.
const SIZE: (u32, u32) = (1400, 700);
/// The legend's column on the right, px.
const LEGEND_WIDTH: u32 = 250;
/// The title and the run's parameters above the chart, px.
const TITLE_HEIGHT: u32 = 88;
const FONT: &str = "sans-serif";

/// Our kinds' colours, in bar order.
const OURS: [RGBColor; 7] = [
    RGBColor(0x1f, 0x4e, 0x99),
    RGBColor(0x3d, 0x85, 0xd6),
    RGBColor(0x8c, 0xbd, 0xf2),
    RGBColor(0x13, 0x7a, 0x7f),
    RGBColor(0x4f, 0xc1, 0xb8),
    RGBColor(0x2e, 0x7d, 0x32),
    RGBColor(0x8b, 0xc9, 0x7f),
];
/// The peers' colours, in bar order.
const PEERS: [RGBColor; 6] = [
    RGBColor(0xb2, 0x3a, 0x1e),
    RGBColor(0xf0, 0x8a, 0x3c),
    RGBColor(0xf4, 0xc4, 0x30),
    RGBColor(0x8e, 0x4a, 0x16),
    RGBColor(0xe0, 0x5a, 0x7a),
    RGBColor(0xc9, 0x9a, 0x5b),
];
/// Bare hyper's colours.
const BASELINE: [RGBColor; 2] = [RGBColor(0x55, 0x55, 0x55), RGBColor(0xa6, 0xa6, 0xa6)];

/// The order of the stores along a scenario's group of bars.
const STORES: [&str; 5] = ["none", "cookie", "memory", "redis", "postgres"];

/// One chart: its file, its words, and how a server's bar is made.
struct Chart {
    file: &'static str,
    title: &'static str,
    y_desc: &'static str,
    /// The bar's segments, bottom first; only the first `segments.len()` count.
    value: fn(&Server) -> [f64; 2],
    /// The segments' names, when a bar has more than one.
    segments: &'static [&'static str],
    /// Lines under the legend.
    footnote: &'static [&'static str],
}

const CHARTS: [Chart; 4] = [
    Chart {
        file: "throughput.svg",
        title: "Throughput, requests per second (higher is better)",
        y_desc: "thousand requests per second (median)",
        value: |s| [s.rps / 1000.0, 0.0],
        segments: &[],
        footnote: &[
            "Absolute figures drift with the",
            "machine's speed during a run;",
            "ratio.svg compares each server",
            "with bare hyper measured just",
            "before or after it.",
        ],
    },
    Chart {
        file: "ratio.svg",
        title: "Throughput beside bare hyper, measured back to back (higher is better)",
        y_desc: "× bare hyper's requests per second (median of pairs)",
        value: |s| [s.x_bare, 0.0],
        segments: &[],
        footnote: &[],
    },
    Chart {
        file: "p99.svg",
        title: "99th percentile latency (lower is better)",
        y_desc: "p99 latency, ms (median)",
        value: |s| [s.p99_us / 1000.0, 0.0],
        segments: &[],
        footnote: &[],
    },
    Chart {
        file: "cpu.svg",
        title: "CPU time per request, per process (lower is better)",
        y_desc: "CPU time per request, µs (median)",
        // A kind uses one store server at most; the other's share is its idle noise.
        value: |s| [s.server_cpu_us, s.redis_cpu_us + s.pg_cpu_us],
        segments: &["app server", "Redis or PostgreSQL"],
        footnote: &[],
    },
];

/// `cargo xtask bench-charts [FILE]`: the charts again from a saved run (by default the one
/// beside them), which is copied beside them when it is another file.
pub(crate) fn run(file: Option<&str>) -> Result<(), String> {
    let beside = Path::new(DIR).join("results.json");
    let file = file.map_or_else(|| beside.clone(), PathBuf::from);
    let results = Results::load(&file)?;
    publish(&results, &file)
}

/// Draws the charts of `results` (read from `file`) into [`DIR`] and keeps their data beside
/// them as `results.json`.
pub(crate) fn publish(results: &Results, file: &Path) -> Result<(), String> {
    let dir = Path::new(DIR);
    let beside = dir.join("results.json");
    let same = |a: &Path, b: &Path| {
        a.canonicalize()
            .ok()
            .is_some_and(|a| b.canonicalize().ok() == Some(a))
    };
    if !same(file, &beside) {
        results.save(&beside)?;
    }
    for path in draw(results, dir)? {
        eprintln!("xtask: drew {}", path.display());
    }
    eprintln!(
        "xtask: the charts and {} are from {file}; commit them when this run is the one BENCHMARKS.md shows",
        beside.display(),
        file = file.display()
    );
    Ok(())
}

/// Writes every chart of `results` into `dir`; returns their paths.
pub(crate) fn draw(results: &Results, dir: &Path) -> Result<Vec<PathBuf>, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("could not create {}: {e}", dir.display()))?;
    let mut written = Vec::new();
    for chart in &CHARTS {
        let path = dir.join(chart.file);
        std::fs::write(&path, render(results, chart)?)
            .map_err(|e| format!("could not write {}: {e}", path.display()))?;
        written.push(path);
    }
    Ok(written)
}

/// A server kind as the charts show it.
struct Kind<'a> {
    name: &'a str,
    side: Side,
    color: RGBColor,
    /// Its bar's place in a scenario's group, in bar widths (the stores are set apart).
    slot: f64,
}

/// Every kind of `results`, in bar order: by store, then baseline, ours and peers, then as
/// the run listed them; coloured by side.
fn kinds(results: &Results) -> (Vec<Kind<'_>>, f64) {
    let mut seen: Vec<(&str, Side, &str)> = Vec::new();
    for server in results.scenarios.iter().flat_map(|s| &s.servers) {
        if !seen.iter().any(|(k, ..)| *k == server.kind) {
            seen.push((&server.kind, server.side, &server.store));
        }
    }
    let rank = |store: &str| {
        STORES
            .iter()
            .position(|s| *s == store)
            .unwrap_or(STORES.len())
    };
    // A stable sort: the run's order stays within a store and side.
    seen.sort_by_key(|(_, side, store)| (rank(store), *side));
    let (mut counts, mut slot, mut last_store) = ([0usize; 3], -1.0, None);
    let kinds = seen
        .into_iter()
        .map(|(name, side, store)| {
            // Half a bar between stores.
            slot += if last_store.is_some_and(|s| s != store) {
                1.5
            } else {
                1.0
            };
            last_store = Some(store);
            let palette: &[RGBColor] = match side {
                Side::Baseline => &BASELINE,
                Side::Ours => &OURS,
                Side::Peer => &PEERS,
            };
            let n = &mut counts[side as usize];
            let color = palette[*n % palette.len()];
            *n += 1;
            Kind {
                name,
                side,
                color,
                slot,
            }
        })
        .collect();
    (kinds, slot + 1.0)
}

/// A font of `size` px as the SVG shows it (plotters' SVG backend writes 1/1.24 of the size).
fn font(size: u32) -> FontDesc<'static> {
    (FONT, f64::from(size) * 1.24).into_font()
}

/// A bar's value: three significant digits or so.
fn value_label(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// A bar segment or a legend swatch from `corner` to `opposite` (px): `layer` 0 is filled
/// with `color`, a higher one (Redis's share of a CPU bar) is pale and hatched with it.
fn swatch<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    corner: (i32, i32),
    opposite: (i32, i32),
    color: RGBColor,
    layer: usize,
) -> Result<(), String> {
    let (x0, x1) = (corner.0.min(opposite.0), corner.0.max(opposite.0));
    let (y0, y1) = (corner.1.min(opposite.1), corner.1.max(opposite.1));
    if layer == 0 {
        area.draw(&Rectangle::new([(x0, y0), (x1, y1)], color.filled()))
            .map_err(drawing)?;
    } else {
        area.draw(&Rectangle::new(
            [(x0, y0), (x1, y1)],
            color.mix(0.2).filled(),
        ))
        .map_err(drawing)?;
        // Lines x + y = k every 5 px, cut to the rectangle.
        let mut k = x0 + y0 + 5;
        while k < x1 + y1 {
            let (from, to) = ((k - y1).max(x0), (k - y0).min(x1));
            if from < to {
                area.draw(&PathElement::new(
                    vec![(from, k - from), (to, k - to)],
                    color,
                ))
                .map_err(drawing)?;
            }
            k += 5;
        }
    }
    area.draw(&Rectangle::new([(x0, y0), (x1, y1)], color.stroke_width(1)))
        .map_err(drawing)
}

fn drawing<E: std::fmt::Debug>(e: E) -> String {
    format!("could not draw a chart: {e:?}")
}

/// A tick label: whole numbers without decimals.
fn tick(v: &f64) -> String {
    if (v - v.round()).abs() < 1e-9 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

/// One chart of `results` as an SVG document.
fn render(results: &Results, chart: &Chart) -> Result<String, String> {
    let (kinds, slots) = kinds(results);
    let total = |s: &Server| {
        let v = (chart.value)(s);
        v[..chart.segments.len().max(1)].iter().sum::<f64>()
    };
    let top = results
        .scenarios
        .iter()
        .flat_map(|s| &s.servers)
        .map(total)
        .fold(0.0, f64::max);
    // Room above the tallest bar for its value.
    let y_max = if top.is_finite() && top > 0.0 {
        top * 1.15
    } else {
        1.0
    };
    let groups = results.scenarios.len().max(1) as f64;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(drawing)?;
        let (head, body) = root.split_vertically(TITLE_HEIGHT);
        let (plot, legend) = body.split_horizontally(SIZE.0 - LEGEND_WIDTH);
        head.draw(&Text::new(
            chart.title,
            (24, 12),
            font(24).style(FontStyle::Bold),
        ))
        .map_err(drawing)?;
        head.draw(&Text::new(results.parameters(), (24, 42), font(15)))
            .map_err(drawing)?;
        if !results.note.is_empty() {
            head.draw(&Text::new(results.note.as_str(), (24, 63), font(15)))
                .map_err(drawing)?;
        }

        let mut area = ChartBuilder::on(&plot)
            .margin(12)
            .margin_right(24)
            .x_label_area_size(44)
            .y_label_area_size(72)
            .build_cartesian_2d(0.0..groups, 0.0..y_max)
            .map_err(drawing)?;
        area.configure_mesh()
            .disable_x_mesh()
            .x_labels(0)
            .y_labels(10)
            .y_desc(chart.y_desc)
            .y_label_formatter(&tick)
            .label_style(font(15))
            .axis_desc_style(font(16))
            .light_line_style(WHITE)
            .bold_line_style(RGBColor(0xe4, 0xe4, 0xe4))
            .draw()
            .map_err(drawing)?;

        // A bar is 90 % of its slot; a group fills 80 % of its scenario's width.
        let width = 0.8 / slots;
        for (si, scenario) in results.scenarios.iter().enumerate() {
            let x = si as f64;
            if si > 0 {
                area.draw_series(std::iter::once(PathElement::new(
                    vec![(x, 0.0), (x, y_max)],
                    RGBColor(0xc8, 0xc8, 0xc8),
                )))
                .map_err(drawing)?;
            }
            let (cx, cy) = area.backend_coord(&(x + 0.5, 0.0));
            root.draw(&Text::new(
                scenario.name.as_str(),
                (cx, cy + 10),
                font(17)
                    .style(FontStyle::Bold)
                    .into_text_style(&root)
                    .pos(Pos::new(HPos::Center, VPos::Top)),
            ))
            .map_err(drawing)?;
            for kind in &kinds {
                let Some(server) = scenario.servers.iter().find(|s| s.kind == kind.name) else {
                    continue;
                };
                let x0 = x + 0.1 + kind.slot * width;
                let x1 = x0 + width * 0.9;
                let mut y = 0.0;
                let values = (chart.value)(server);
                for (layer, v) in values[..chart.segments.len().max(1)].iter().enumerate() {
                    let (y0, y1) = (y, y + v.max(0.0));
                    y = y1;
                    if y1 > y0 {
                        let corner = area.backend_coord(&(x0, y1));
                        let opposite = area.backend_coord(&(x1, y0));
                        swatch(&root, corner, opposite, kind.color, layer)?;
                    }
                }
                // The bar's value above it, upright.
                let (lx, ly) = area.backend_coord(&((x0 + x1) / 2.0, y));
                root.draw(&Text::new(
                    value_label(y),
                    (lx, ly - 4),
                    font(10)
                        .transform(FontTransform::Rotate270)
                        .into_text_style(&root)
                        .pos(Pos::new(HPos::Left, VPos::Center)),
                ))
                .map_err(drawing)?;
            }
        }
        draw_legend(&legend, &kinds, chart)?;
        root.present().map_err(drawing)?;
    }
    Ok(svg)
}

/// The legend: the kinds by side, then what a bar's segments are.
fn draw_legend<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    kinds: &[Kind],
    chart: &Chart,
) -> Result<(), String> {
    let mut y = 24;
    let heading = |text: &str, y: i32| {
        area.draw(&Text::new(
            text.to_owned(),
            (8, y),
            font(15).style(FontStyle::Bold),
        ))
        .map_err(drawing)
    };
    let entry = |text: &str, y: i32, color: RGBColor, layer: usize| {
        swatch(area, (14, y), (32, y + 14), color, layer)?;
        area.draw(&Text::new(text.to_owned(), (40, y), font(15)))
            .map_err(drawing)
    };
    for (side, title) in [
        (Side::Ours, "ours"),
        (Side::Peer, "peers"),
        (Side::Baseline, "no sessions (yardstick)"),
    ] {
        let of_side: Vec<&Kind> = kinds.iter().filter(|k| k.side == side).collect();
        if of_side.is_empty() {
            continue;
        }
        heading(title, y)?;
        y += 22;
        for kind in of_side {
            entry(kind.name, y, kind.color, 0)?;
            y += 20;
        }
        y += 10;
    }
    if chart.segments.len() > 1 {
        heading("each bar, bottom to top", y)?;
        y += 22;
        for (layer, name) in chart.segments.iter().enumerate() {
            entry(name, y, RGBColor(0x55, 0x55, 0x55), layer)?;
            y += 20;
        }
        y += 6;
    }
    for line in chart.footnote {
        area.draw(&Text::new(*line, (8, y), font(13)))
            .map_err(drawing)?;
        y += 17;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::tests::sample;

    /// Whether `svg` is well-formed as far as its tags go: every element opened is closed, in
    /// order, and nothing follows the root.
    fn balanced(svg: &str) -> Result<(), String> {
        let mut open: Vec<&str> = Vec::new();
        let mut rest = svg;
        let mut closed_root = false;
        while let Some(at) = rest.find('<') {
            if closed_root && !rest[..at].trim().is_empty() {
                return Err("text after the root".to_owned());
            }
            let end = rest[at..].find('>').ok_or("a tag without `>`")? + at;
            let tag = &rest[at + 1..end];
            rest = &rest[end + 1..];
            if tag.starts_with('?') || tag.starts_with('!') || tag.ends_with('/') {
                continue;
            }
            if let Some(name) = tag.strip_prefix('/') {
                match open.pop() {
                    Some(o) if o == name.trim() => closed_root = open.is_empty(),
                    o => return Err(format!("</{name}> closes {o:?}")),
                }
            } else {
                if closed_root {
                    return Err(format!("<{tag}> after the root"));
                }
                open.push(tag.split_whitespace().next().unwrap_or_default());
            }
        }
        if open.is_empty() && closed_root {
            Ok(())
        } else {
            Err(format!("unclosed: {open:?}"))
        }
    }

    #[test]
    fn every_chart_names_every_kind_and_scenario() {
        let results = sample();
        for chart in &CHARTS {
            let svg = render(&results, chart).unwrap_or_else(|e| panic!("{e}"));
            assert!(svg.trim_start().starts_with("<svg"), "{}", chart.file);
            balanced(&svg).unwrap_or_else(|e| panic!("{}: {e}", chart.file));
            // plotters writes a text's characters on a line of their own.
            let texts: Vec<&str> = svg.lines().map(str::trim).collect();
            for name in [
                "bare",
                "memory",
                "ts-memory",
                "redis",
                "ts-redis",
                "returning",
                "read",
            ] {
                assert!(texts.contains(&name), "{}: no {name}", chart.file);
            }
            // The title names the run; `&` and `<` of the note are escaped.
            assert!(svg.contains("2026-12-08 10:00 UTC"), "{}", chart.file);
            assert!(
                svg.contains("a test &amp; &lt;nothing&gt; measured"),
                "{}",
                chart.file
            );
            let y_desc = chart.y_desc.replace('\'', "&apos;");
            assert!(svg.contains(&y_desc), "{}: no {y_desc}", chart.file);
        }
    }

    #[test]
    fn stores_side_by_side_ours_cool_peers_warm() {
        let results = sample();
        let (kinds, slots) = kinds(&results);
        let names: Vec<&str> = kinds.iter().map(|k| k.name).collect();
        assert_eq!(names, ["bare", "memory", "ts-memory", "redis", "ts-redis"]);
        assert_eq!(slots, 6.0, "half a bar between the three stores");
        for kind in &kinds {
            let palette: &[RGBColor] = match kind.side {
                Side::Baseline => &BASELINE,
                Side::Ours => &OURS,
                Side::Peer => &PEERS,
            };
            assert!(palette.contains(&kind.color), "{}", kind.name);
        }
    }

    #[test]
    fn draws_files_and_redraws_from_json() {
        let dir = std::env::temp_dir().join(format!("xtask-charts-{}", std::process::id()));
        let results = sample();
        let json = dir.join("results.json");
        results.save(&json).unwrap_or_else(|e| panic!("{e}"));
        let back = Results::load(&json).unwrap_or_else(|e| panic!("{e}"));
        let written = draw(&back, &dir).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(written.len(), CHARTS.len());
        for path in &written {
            let svg = std::fs::read_to_string(path).unwrap_or_default();
            balanced(&svg).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
