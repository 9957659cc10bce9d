//! `report.md`, `report.html` and the plots (SVG, and PNG rendered from the SVG)
//! from a results file alone, so a report can be redrawn at any time.
//!
//! Every figure comes from the run's [`Analysis`]; this module only lays them out:
//! [`markdown`] writes the text (the [`decision`] first), `plots` draws the charts
//! with plotters' SVG backend, `png` renders each SVG to PNG with resvg using
//! the system's fonts (DejaVu Sans where installed), so SVG and PNG always show the
//! same chart, and `html` makes one self-contained page of the same text with the
//! SVGs inline.

mod decision;
mod html;
mod markdown;
mod plots;
mod png;

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::analysis::Analysis;
pub use decision::decision;
pub use markdown::markdown;
use plots::Chart;

/// What `write` produced.
pub struct Written {
    /// The `report.md` written.
    pub markdown: PathBuf,
    /// The `report.html` written next to it.
    pub html: PathBuf,
    /// Every plot file written: `<name>.svg` and `<name>.png` per chart.
    pub plots: Vec<PathBuf>,
    /// Why PNGs may lack text (no system fonts), if so.
    pub warning: Option<String>,
}

/// Writes `report.md`, `report.html` and the plots into `dir`.
pub fn write(analysis: &Analysis, dir: &Path) -> anyhow::Result<Written> {
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    if let Some(e) = &analysis.latency_error {
        anyhow::bail!("{e}");
    }
    let sections = markdown::Sections::of(analysis);
    let mut md = markdown(analysis);
    let charts = plots::draw(analysis)?;
    let fonts = png::Fonts::load();
    let plots = save_charts(&charts, dir, &fonts)?;
    md.push_str(&plot_links(&charts));
    let markdown = dir.join("report.md");
    fs::write(&markdown, md).with_context(|| format!("writing {}", markdown.display()))?;
    // The decision first, then what the run was on, the tables, the plots and
    // the terms.
    let page = html::page(&html::Page {
        title: &sections.title,
        lead: &sections.decision,
        body: &format!("## Run\n\n{}{}", sections.run, sections.body),
        charts: &charts,
        terms: &sections.terms,
    });
    let html = dir.join("report.html");
    fs::write(&html, page).with_context(|| format!("writing {}", html.display()))?;
    Ok(Written {
        markdown,
        html,
        plots,
        warning: fonts.warning,
    })
}

/// Writes a merged split job's `report.md` (its text made by `crate::merge`),
/// `report.html` and its timeline chart into `dir`.
pub fn write_cluster(md: &str, bars: &[crate::merge::Bar], dir: &Path) -> anyhow::Result<()> {
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let charts: Vec<Chart> = match bars.is_empty() {
        true => Vec::new(),
        false => vec![Chart {
            name: "cluster-timeline",
            title: "Each shard's runs",
            about: "one row per shard, one bar per run of a backend from its start to its end \
                    (warm-ups paler), on the shards' common time axis: a straggler ends late, \
                    and runs of different backends on different shards may overlap."
                .into(),
            svg: plots::cluster_timeline(bars)?,
        }],
    };
    save_charts(&charts, dir, &png::Fonts::load())?;
    let path = dir.join("report.md");
    fs::write(&path, format!("{md}{}", plot_links(&charts)))
        .with_context(|| format!("writing {}", path.display()))?;
    // The title, the verdict (the first paragraph after the title's line that
    // says where the shards came from), then the rest, with the plots before the
    // terms.
    let (title, rest) = md.split_once('\n').unwrap_or((md, ""));
    let (rest, terms) = match rest.find("\n## Terms") {
        Some(k) => rest.split_at(k),
        None => (rest, ""),
    };
    let (lead, body) = split_verdict(rest);
    let page = html::page(&html::Page {
        title,
        lead: &lead,
        body: &body,
        charts: &charts,
        terms,
    });
    let path = dir.join("report.html");
    fs::write(&path, page).with_context(|| format!("writing {}", path.display()))
}

/// The merged report's verdict (its first bold paragraph, `**Complete…**` or
/// `**Not complete…**`) as a "Verdict" section, and the rest.
fn split_verdict(md: &str) -> (String, String) {
    let mut paragraphs: Vec<&str> = md.split("\n\n").collect();
    match paragraphs
        .iter()
        .position(|p| p.trim_start().starts_with("**"))
    {
        Some(k) => {
            let verdict = paragraphs.remove(k);
            (
                format!("## Verdict\n\n{}\n", verdict.trim()),
                paragraphs.join("\n\n"),
            )
        }
        None => (String::new(), md.to_string()),
    }
}

/// Each chart as `<name>.svg` and `<name>.png` in `dir`; their paths.
fn save_charts(charts: &[Chart], dir: &Path, fonts: &png::Fonts) -> anyhow::Result<Vec<PathBuf>> {
    let mut paths = Vec::new();
    for chart in charts {
        let name = chart.name;
        let svg_path = dir.join(format!("{name}.svg"));
        fs::write(&svg_path, &chart.svg)
            .with_context(|| format!("writing {}", svg_path.display()))?;
        let png_path = dir.join(format!("{name}.png"));
        fonts
            .render_png(&chart.svg, &png_path)
            .with_context(|| format!("rendering {}", png_path.display()))?;
        paths.push(svg_path);
        paths.push(png_path);
    }
    Ok(paths)
}

/// The report's last section: each chart, what it shows, and a link to its SVG.
fn plot_links(charts: &[Chart]) -> String {
    let mut md = String::new();
    let _ = writeln!(md, "\n## Plots\n");
    for c in charts {
        let name = c.name;
        let _ = writeln!(
            md,
            "![{name}]({name}.png) ([SVG]({name}.svg))\n\n**{}**: {}\n",
            c.title, c.about
        );
    }
    md
}

/// A rate with thousands separators, no decimals ("–" when not finite).
fn fmt_rate(x: f64) -> String {
    if !x.is_finite() {
        return "–".into();
    }
    let s = format!("{:.0}", x);
    let (sign, digits) = s.split_at(if s.starts_with('-') { 1 } else { 0 });
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    format!("{sign}{out}")
}

/// A latency in µs, ms or s.
fn fmt_us(us: f64) -> String {
    if us >= 1e6 {
        format!("{:.2} s", us / 1e6)
    } else if us >= 1e3 {
        format!("{:.2} ms", us / 1e3)
    } else {
        format!("{us:.1} µs")
    }
}
