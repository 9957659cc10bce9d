//! For a `[sweep]`: throughput against the swept parameter.

use std::collections::BTreeMap;

use plotters::prelude::*;

use super::common::{color, draw_err, draw_legend, short_num, with_svg};
use crate::analysis::{Analysis, BackendFigures};

/// (value, median, min, max) of each point of one swept backend.
type Line = Vec<(f64, f64, f64, f64)>;

/// Median throughput against the swept value, one line per swept backend, with
/// min – max whiskers.
pub fn svg(a: &Analysis, figs: &[&BackendFigures]) -> anyhow::Result<String> {
    let unit = a.unit;
    let (parameter, mut lines) = lines(figs);
    let xs: Vec<f64> = lines.values().flatten().map(|p| p.0).collect();
    let xmin = xs.iter().copied().fold(f64::INFINITY, f64::min);
    let xmax = xs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    // A log axis (drawn as log2 of the value) when the values are positive and span
    // a factor of 8 or more, as queue depths and thread counts do.
    let log = xmin > 0.0 && xmax / xmin >= 8.0;
    let pos = move |v: f64| if log { v.log2() } else { v };
    for l in lines.values_mut() {
        for p in l.iter_mut() {
            p.0 = pos(p.0);
        }
    }
    with_svg(|root| {
        let (lo, hi) = (pos(xmin), pos(xmax));
        let pad = ((hi - lo) * 0.08).max(0.5);
        let ymax = lines
            .values()
            .flatten()
            .map(|p| p.3)
            .fold(0.0, f64::max)
            .max(1.0)
            * 1.15;
        let mut chart = ChartBuilder::on(root)
            .caption(
                format!("Scaling: throughput against {parameter} (median; min–max whiskers)"),
                ("sans-serif", 20),
            )
            .margin(12)
            .x_label_area_size(45)
            .y_label_area_size(80)
            .build_cartesian_2d(lo - pad..hi + pad, 0.0..ymax)
            .map_err(draw_err)?;
        chart
            .configure_mesh()
            .x_desc(if log {
                format!("{parameter} (log axis)")
            } else {
                parameter.clone()
            })
            .y_desc(unit)
            .y_label_formatter(&|v| short_num(*v))
            .x_label_formatter(&|v| short_num(if log { v.exp2() } else { *v }))
            .draw()
            .map_err(draw_err)?;
        for (i, (base, points)) in lines.iter().enumerate() {
            let c = color(i);
            chart
                .draw_series(LineSeries::new(
                    points.iter().map(|p| (p.0, p.1)),
                    c.stroke_width(2),
                ))
                .map_err(draw_err)?
                .label(base.clone())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 14, y)], c.stroke_width(2))
                });
            chart
                .draw_series(
                    points
                        .iter()
                        .map(|p| ErrorBar::new_vertical(p.0, p.2, p.1, p.3, c.stroke_width(1), 8)),
                )
                .map_err(draw_err)?;
            chart
                .draw_series(
                    points
                        .iter()
                        .map(|p| Circle::new((p.0, p.1), 4, c.filled())),
                )
                .map_err(draw_err)?;
        }
        draw_legend(&mut chart, SeriesLabelPosition::UpperLeft, None)?;
        Ok(())
    })
}

/// The swept parameter, and one line per base backend (the table the points were
/// made from), its points sorted by value.
fn lines(figs: &[&BackendFigures]) -> (String, BTreeMap<String, Line>) {
    let mut lines: BTreeMap<String, Line> = BTreeMap::new();
    let mut parameter = String::new();
    for f in figs {
        if let Some(p) = &f.sweep {
            parameter = p.parameter.clone();
            lines
                .entry(p.base_label.clone())
                .or_default()
                .push((p.value, f.median, f.min, f.max));
        }
    }
    for l in lines.values_mut() {
        l.sort_by(|a, b| a.0.total_cmp(&b.0));
    }
    (parameter, lines)
}
