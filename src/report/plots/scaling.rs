//! For a `[sweep]`: throughput against the swept parameter.

use std::collections::BTreeMap;

use plotters::coord::combinators::{BindKeyPoints, LogCoord};
use plotters::coord::ranged1d::{Ranged, ValueFormatter};
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;

use super::common::{
    color, draw_err, legend_right, mesh, number_labels, short_num, title, with_svg, x_label_area,
    y_label_area, Area, Entry, Key,
};
use crate::analysis::{Analysis, BackendFigures};

/// (value, median, min, max) of each point of one swept backend.
type Line = Vec<(f64, f64, f64, f64)>;

/// Median throughput against the swept value, one line per swept backend, with
/// min – max whiskers.
pub fn svg(a: &Analysis, figs: &[&BackendFigures]) -> anyhow::Result<String> {
    let unit = a.unit;
    let (parameter, lines) = lines(figs);
    let mut xs: Vec<f64> = lines.values().flatten().map(|p| p.0).collect();
    xs.sort_by(f64::total_cmp);
    xs.dedup();
    let xmin = xs.first().copied().unwrap_or(0.0);
    let xmax = xs.last().copied().unwrap_or(1.0);
    let ymax = lines
        .values()
        .flatten()
        .map(|p| p.3)
        .fold(0.0, f64::max)
        .max(1.0)
        * 1.15;
    let keys: Vec<Entry> = lines
        .keys()
        .enumerate()
        .map(|(i, base)| Entry::new(base.clone(), Key::Dotted(color(i))))
        .collect();
    with_svg(|root| {
        let area = title(
            root,
            &format!("Scaling: throughput against {parameter}"),
            Some("dot: median of the verified repetitions; whisker: min – max over them"),
        )?;
        let area = legend_right(&area, Some("backend"), &keys)?;
        let chart = Chart {
            area: &area,
            lines: &lines,
            ymax,
            unit,
        };
        // A log axis (base 2) when the values are positive and span a factor of 8
        // or more, as queue depths and thread counts do, with a tick at each swept
        // value (every other one while there are more than 12).
        if xmin > 0.0 && xmax / xmin >= 8.0 {
            let mut ticks = xs.clone();
            while ticks.len() > 12 {
                ticks = ticks.into_iter().step_by(2).collect();
            }
            let x = LogCoord::from((xmin / 1.4..xmax * 1.4).log_scale().base(2.0))
                .with_key_points(ticks);
            chart.draw(x, &format!("{parameter} (the swept value; log axis)"))
        } else {
            let pad = ((xmax - xmin) * 0.08).max(0.5);
            chart.draw(
                RangedCoordf64::from(xmin - pad..xmax + pad),
                &format!("{parameter} (the swept value)"),
            )
        }
    })
}

/// What the chart shows, whichever its x axis.
struct Chart<'c, 'a> {
    area: &'c Area<'a>,
    lines: &'c BTreeMap<String, Line>,
    ymax: f64,
    unit: &'c str,
}

impl Chart<'_, '_> {
    fn draw<X>(&self, x: X, x_desc: &str) -> anyhow::Result<()>
    where
        X: Ranged<ValueType = f64> + ValueFormatter<f64>,
    {
        let mut chart = ChartBuilder::on(self.area)
            .margin(8)
            .margin_right(24)
            .x_label_area_size(x_label_area(true))
            .y_label_area_size(y_label_area(number_labels(0.0, self.ymax), true))
            .build_cartesian_2d(x, 0.0..self.ymax)
            .map_err(draw_err)?;
        mesh(&mut chart.configure_mesh())
            .x_desc(x_desc)
            .y_desc(format!("throughput ({})", self.unit))
            .y_label_formatter(&|v| short_num(*v))
            .x_label_formatter(&|v| short_num(*v))
            .draw()
            .map_err(draw_err)?;
        for (i, points) in self.lines.values().enumerate() {
            let c = color(i);
            chart
                .draw_series(LineSeries::new(
                    points.iter().map(|p| (p.0, p.1)),
                    c.stroke_width(2),
                ))
                .map_err(draw_err)?;
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
        Ok(())
    }
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
