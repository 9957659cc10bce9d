//! Latency CDFs: one panel per stage, one curve per backend, on a log axis.

use hdrhistogram::Histogram;
use plotters::prelude::*;

use super::common::{color, draw_err, draw_legend, short_num, with_svg, Area};
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
        let root = root
            .titled(
                "Latency CDF per stage (fraction of items done within x; log axis)",
                ("sans-serif", 20),
            )
            .map_err(draw_err)?;
        let cols = 4;
        let rows = present.len().div_ceil(cols).max(1);
        let cells = root.split_evenly((rows, cols));
        for (k, (stage, area)) in present.iter().zip(cells.iter()).enumerate() {
            // One legend for all panels (the same backends, the same colours).
            panel(area, stage, figs, k == 0)?;
        }
        Ok(())
    })
}

/// One stage's panel: the CDF of each backend that recorded it, coloured by the
/// backend's place in `figs`.
fn panel(area: &Area, stage: &str, figs: &[&BackendFigures], legend: bool) -> anyhow::Result<()> {
    let hs: Vec<(usize, &Histogram<u64>)> = figs
        .iter()
        .enumerate()
        .filter_map(|(i, f)| f.stages.get(stage).map(|h| (i, h)))
        .collect();
    let lo = hs.iter().map(|(_, h)| h.min().max(1)).min().unwrap_or(1) as f64 / 1e3;
    let hi = hs.iter().map(|(_, h)| h.max().max(2)).max().unwrap_or(2) as f64 / 1e3;
    let (lo, hi) = (lo.max(0.01) * 0.8, (hi * 1.25).max(lo * 10.0));
    let mut chart = ChartBuilder::on(area)
        .caption(stage, ("sans-serif", 16))
        .margin(6)
        .x_label_area_size(34)
        .y_label_area_size(40)
        .build_cartesian_2d((lo..hi).log_scale(), 0.0..1.0)
        .map_err(draw_err)?;
    chart
        .configure_mesh()
        .x_desc("µs")
        .x_labels(5)
        .y_labels(5)
        .x_label_formatter(&|v| short_num(*v))
        .draw()
        .map_err(draw_err)?;
    for (i, h) in hs {
        let c = color(i);
        chart
            .draw_series(LineSeries::new(cdf(h), c.stroke_width(2)))
            .map_err(draw_err)?
            .label(figs[i].label.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 14, y)], c.stroke_width(2)));
    }
    if legend {
        draw_legend(&mut chart, SeriesLabelPosition::LowerRight, Some(11))?;
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
