//! Where the time went: CPU per item (user, system) and the time an item spends
//! in each stage, as stacked horizontal bars, one row per backend (named on the y
//! axis, so long names never collide), each panel's parts in a legend above it.

use plotters::prelude::*;

use super::common::{
    bar, color, draw_err, footnote, height_for_rows, legend_top, row, rows, title, with_svg_sized,
    Area, Entry, Key, W,
};
use crate::analysis::BackendFigures;

/// The caveat under the stage panel.
const STAGE_NOTE: &str = "Right: an item's wall time in each stage, waiting included \
(reads and writes from submission, so time queued for IO counts, and every stage counts time \
waiting for a core). A backend that keeps more items in flight can show longer times although \
it is faster (Little's law: time in a stage = items in it / items per second).";

/// What the report's text says about the stage panel.
pub const STAGE_TEXT: &str = "It measures the time an item spends in a stage, waiting \
included: reads and writes count from their submission, so time queued for IO is in them, and \
every stage counts time spent waiting for a core. A backend that keeps more items in flight \
can therefore show longer stage times although it is faster: by Little's law, the time in a stage \
is the items in it divided by the items per second, so a backend with four times the items in \
flight at twice the rate shows twice the time per item. Compare backends by throughput and CPU \
time, not by this panel.";

/// Left: CPU time per 1000 items (user, system). Right: the mean time an item
/// spent in each stage (summed latency / items), which overlaps across items.
pub fn svg(figs: &[&BackendFigures]) -> anyhow::Result<String> {
    let per_item = |f: &BackendFigures, s: &str| f.stages.get(s).map_or(0.0, |h| h.mean() / 1e3);
    let cpu: Vec<Vec<f64>> = figs
        .iter()
        .map(|f| vec![f.cpu_ms_per_1000.0, f.cpu_ms_per_1000.1])
        .collect();
    let stage_names = ["read", "decode", "reduce", "encode", "write"];
    let stages: Vec<Vec<f64>> = figs
        .iter()
        .map(|f| stage_names.iter().map(|s| per_item(f, s)).collect())
        .collect();
    let labels: Vec<String> = figs.iter().map(|f| f.label.clone()).collect();
    with_svg_sized(W, height_for_rows(figs.len(), 200), |root| {
        let area = footnote(root, STAGE_NOTE)?;
        let (left, right) = area.split_horizontally(W / 2);
        let colors = [color(0), color(1)];
        stacked_rows(
            &left,
            (
                "CPU time per 1000 items",
                "user and system CPU of the backend's process",
            ),
            "CPU ms per 1000 items",
            &labels,
            &["user", "system"],
            &colors,
            &cpu,
        )?;
        let colors: Vec<RGBColor> = (0..stage_names.len()).map(|k| color(k + 2)).collect();
        stacked_rows(
            &right,
            (
                "Time per item in each stage",
                "mean wall time, waiting in queues included (below)",
            ),
            "µs per item (wall time)",
            &labels,
            &stage_names,
            &colors,
            &stages,
        )
    })
}

/// One stacked bar per backend: `values[backend][part]`, parts left to right.
fn stacked_rows(
    area: &Area,
    (caption, note): (&str, &str),
    x_desc: &str,
    labels: &[String],
    parts: &[&str],
    colors: &[RGBColor],
    values: &[Vec<f64>],
) -> anyhow::Result<()> {
    let n = labels.len();
    let top = values
        .iter()
        .map(|v| v.iter().sum::<f64>())
        .fold(0.0, f64::max)
        .max(1.0)
        * 1.08;
    let area = title(area, caption, Some(note))?;
    let keys: Vec<Entry> = parts
        .iter()
        .zip(colors)
        .map(|(p, c)| Entry::new(*p, Key::Box(*c)))
        .collect();
    let area = legend_top(&area, &keys)?;
    let mut chart = rows(&area, labels, top, x_desc, "backend")?;
    for (k, c) in colors.iter().enumerate().take(parts.len()) {
        let bars: Vec<_> = values
            .iter()
            .enumerate()
            .map(|(i, v)| {
                let before: f64 = v[..k].iter().sum();
                bar(
                    &chart,
                    (row(i, n), n),
                    before,
                    before + v[k],
                    c.mix(0.8).filled(),
                )
            })
            .collect();
        chart.draw_series(bars).map_err(draw_err)?;
    }
    Ok(())
}
