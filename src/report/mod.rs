//! `report.md` and its plots (SVG, and PNG rendered from the SVG) from a results
//! file alone, so a report can be redrawn at any time.
//!
//! Every figure comes from the run's [`Analysis`]; this module only lays them out:
//! [`markdown`] writes the text (the [`decision`] first), `plots` draws the charts
//! with plotters' SVG backend, and `png` renders each SVG to PNG with resvg using
//! the system's fonts (DejaVu Sans where installed), so SVG and PNG always show the
//! same chart.

mod decision;
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
    /// Every plot file written: `<name>.svg` and `<name>.png` per chart.
    pub plots: Vec<PathBuf>,
    /// Why PNGs may lack text (no system fonts), if so.
    pub warning: Option<String>,
}

/// Writes `report.md` and the plots into `dir`.
pub fn write(analysis: &Analysis, dir: &Path) -> anyhow::Result<Written> {
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    if let Some(e) = &analysis.latency_error {
        anyhow::bail!("{e}");
    }
    let mut md = markdown(analysis);
    let charts = plots::draw(analysis)?;
    let fonts = png::Fonts::load();
    let plots = save_charts(&charts, dir, &fonts)?;
    md.push_str(&plot_links(&charts));
    let markdown = dir.join("report.md");
    fs::write(&markdown, md).with_context(|| format!("writing {}", markdown.display()))?;
    Ok(Written {
        markdown,
        plots,
        warning: fonts.warning,
    })
}

/// Writes a merged split job's `report.md` (its text made by `crate::merge`) and
/// its timeline chart into `dir`.
pub fn write_cluster(md: &str, bars: &[crate::merge::Bar], dir: &Path) -> anyhow::Result<()> {
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let charts: Vec<Chart> = match bars.is_empty() {
        true => Vec::new(),
        false => vec![("cluster-timeline", plots::cluster_timeline(bars)?)],
    };
    save_charts(&charts, dir, &png::Fonts::load())?;
    let md = format!("{md}{}", plot_links(&charts));
    let path = dir.join("report.md");
    fs::write(&path, md).with_context(|| format!("writing {}", path.display()))
}

/// Each chart as `<name>.svg` and `<name>.png` in `dir`; their paths.
fn save_charts(charts: &[Chart], dir: &Path, fonts: &png::Fonts) -> anyhow::Result<Vec<PathBuf>> {
    let mut paths = Vec::new();
    for (name, svg) in charts {
        let svg_path = dir.join(format!("{name}.svg"));
        fs::write(&svg_path, svg).with_context(|| format!("writing {}", svg_path.display()))?;
        let png_path = dir.join(format!("{name}.png"));
        fonts
            .render_png(svg, &png_path)
            .with_context(|| format!("rendering {}", png_path.display()))?;
        paths.push(svg_path);
        paths.push(png_path);
    }
    Ok(paths)
}

/// The report's last section: a link to each chart.
fn plot_links(charts: &[Chart]) -> String {
    let mut md = String::new();
    let _ = writeln!(md, "\n## Plots\n");
    for (name, _) in charts {
        let _ = writeln!(md, "![{name}]({name}.png) ([SVG]({name}.svg))\n");
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
