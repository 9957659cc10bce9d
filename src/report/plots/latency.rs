//! Latency CDFs: one panel per stage, one curve per backend, on a log axis.

use hdrhistogram::Histogram;
use plotters::coord::combinators::{BindKeyPoints, LogCoord};
use plotters::prelude::*;

use super::common::{
    color, draw_err, legend_top, log_ticks, mesh, short_num, with_svg, x_label_area, y_label_area,
    Area, Entry, Key, DESC,
};
use crate::analysis::BackendFigures;

/// A grid of panels, one per stage any backend recorded.
pub fn svg(figs: &[&BackendFigures]) -> anyhow::Result<String> {
    let names = crate::record::stage_names();
    let present: Vec<&str> = names
        .iter()
        .copied()
        .filter(|s| figs.iter().any(|f| f.stages.contains_key(*s)))
        .collect();
    with_svg(|root| {
        let area = super::common::title(
            root,
            "Latency CDF per stage: fraction of items done within x",
            None,
        )?;
        // One legend for all panels (the same backends, the same colours), above them.
        let keys: Vec<Entry> = figs
            .iter()
            .enumerate()
            .filter(|(_, f)| !f.stages.is_empty())
            .map(|(i, f)| Entry::new(f.label.clone(), Key::Line(color(i))))
            .collect();
        let area = legend_top(&area, &keys)?;
        let cols = 4;
        let rows = present.len().div_ceil(cols).max(1);
        let cells = area.split_evenly((rows, cols));
        for (stage, cell) in present.iter().zip(cells.iter()) {
            panel(cell, stage, figs)?;
        }
        Ok(())
    })
}

/// One stage's panel: the CDF of each backend that recorded it, coloured by the
/// backend's place in `figs`.
fn panel(area: &Area, stage: &str, figs: &[&BackendFigures]) -> anyhow::Result<()> {
    let hs: Vec<(usize, &Histogram<u64>)> = figs
        .iter()
        .enumerate()
        .filter_map(|(i, f)| f.stages.get(stage).map(|h| (i, h)))
        .collect();
    let lo = hs.iter().map(|(_, h)| h.min().max(1)).min().unwrap_or(1) as f64 / 1e3;
    let hi = hs.iter().map(|(_, h)| h.max().max(2)).max().unwrap_or(2) as f64 / 1e3;
    let (lo, hi) = (lo.max(0.01) * 0.8, (hi * 1.25).max(lo * 10.0));
    let mut chart = ChartBuilder::on(area)
        .caption(stage, ("sans-serif", DESC))
        .margin(4)
        .margin_right(14)
        .x_label_area_size(x_label_area(true))
        .y_label_area_size(y_label_area(["0.8"], true))
        .build_cartesian_2d(
            LogCoord::from((lo..hi).log_scale()).with_key_points(log_ticks(lo, hi)),
            0.0..1.0,
        )
        .map_err(draw_err)?;
    mesh(&mut chart.configure_mesh())
        .x_desc("µs (log axis)")
        .y_desc("fraction")
        .y_labels(3)
        .x_label_formatter(&|v| short_num(*v))
        .y_label_formatter(&|v| format!("{v:.1}"))
        .draw()
        .map_err(draw_err)?;
    for (i, h) in hs {
        chart
            .draw_series(LineSeries::new(cdf(h), color(i).stroke_width(2)))
            .map_err(draw_err)?;
    }
    Ok(())
}

/// (latency in µs, fraction done within it) at 201 quantiles.
fn cdf(h: &Histogram<u64>) -> Vec<(f64, f64)> {
    (0..=200)
        .map(|k| {
            let q = k as f64 / 200.0;
            (h.value_at_quantile(q).max(1) as f64 / 1e3, q)
        })
        .collect()
}
