//! For a sweep over `io_in_flight` on a backend making object-store requests:
//! measured requests/s against requests in flight, beside Little's law
//! (requests/s = in flight / latency), the line concurrency alone would give.

use std::collections::BTreeMap;

use plotters::coord::combinators::{BindKeyPoints, LogCoord};
use plotters::prelude::*;

use super::common::{
    color, draw_err, legend_top, log_ticks, mesh, number_labels, short_num, title, with_svg,
    x_label_area, y_label_area, Entry, Key,
};
use crate::analysis::LittlePoint;

/// One line per swept table: measured requests/s (solid, dots) and Little's law
/// (dashed, same colour), on log–log axes, where Little's law is a straight line
/// of slope 1. `source` says where the latency came from (in the report's text).
pub fn svg(points: &[LittlePoint], _source: &str) -> anyhow::Result<String> {
    let mut lines: BTreeMap<&str, Vec<&LittlePoint>> = BTreeMap::new();
    for p in points {
        lines.entry(p.base.as_str()).or_default().push(p);
    }
    let (xlo, xhi) = points
        .iter()
        .map(|p| p.in_flight.max(1.0))
        .fold((f64::INFINITY, 0.0f64), |(a, b), x| (a.min(x), b.max(x)));
    let (ylo, yhi) = points
        .iter()
        .flat_map(|p| [p.measured, p.expected])
        .filter(|y| *y > 0.0 && y.is_finite())
        .fold((f64::INFINITY, 0.0f64), |(a, b), y| (a.min(y), b.max(y)));
    let (ylo, yhi) = if ylo.is_finite() {
        (ylo, yhi)
    } else {
        (1.0, 10.0)
    };
    with_svg(|root| {
        let area = title(
            root,
            "Requests/s against io_in_flight, beside Little's law",
            Some(
                "solid with dots: measured; dashed: Little's law, io_in_flight / latency per \
                 request, what concurrency alone would give (log–log axes: a line of slope 1)",
            ),
        )?;
        let keys: Vec<Entry> = lines
            .iter()
            .enumerate()
            .flat_map(|(i, (base, pts))| {
                let latency_ms = pts.first().map_or(f64::NAN, |p| p.latency * 1e3);
                [
                    Entry::new(format!("{base}: measured"), Key::Dotted(color(i))),
                    Entry::new(
                        format!("{base}: Little's law, {latency_ms:.1} ms per request"),
                        Key::Dashed(color(i)),
                    ),
                ]
            })
            .collect();
        let area = legend_top(&area, &keys)?;
        let (ylo, yhi) = (ylo / 1.5, yhi * 1.5);
        // A tick at each swept value.
        let mut swept: Vec<f64> = points.iter().map(|p| p.in_flight.max(1.0)).collect();
        swept.sort_by(f64::total_cmp);
        swept.dedup();
        let mut chart = ChartBuilder::on(&area)
            .margin(8)
            .margin_right(24)
            .x_label_area_size(x_label_area(true))
            .y_label_area_size(y_label_area(number_labels(ylo, yhi), true))
            .build_cartesian_2d(
                LogCoord::from((xlo / 1.5..xhi * 1.5).log_scale()).with_key_points(swept),
                LogCoord::from((ylo..yhi).log_scale()).with_key_points(log_ticks(ylo, yhi)),
            )
            .map_err(draw_err)?;
        mesh(&mut chart.configure_mesh())
            .x_desc("io_in_flight (operations; log axis)")
            .y_desc("requests/s (log axis)")
            .y_label_formatter(&|v| short_num(*v))
            .x_label_formatter(&|v| short_num(*v))
            .draw()
            .map_err(draw_err)?;
        for (i, pts) in lines.values().enumerate() {
            let c = color(i);
            let at = |p: &LittlePoint| p.in_flight.max(1.0);
            let measured: Vec<(f64, f64)> = pts
                .iter()
                .filter(|p| p.measured > 0.0)
                .map(|p| (at(p), p.measured))
                .collect();
            chart
                .draw_series(LineSeries::new(measured.clone(), c.stroke_width(2)))
                .map_err(draw_err)?;
            chart
                .draw_series(measured.iter().map(|&p| Circle::new(p, 4, c.filled())))
                .map_err(draw_err)?;
            chart
                .draw_series(DashedLineSeries::new(
                    pts.iter().map(|p| (at(p), p.expected)),
                    6,
                    4,
                    c.stroke_width(1),
                ))
                .map_err(draw_err)?;
        }
        Ok(())
    })
}
