//! For a sweep over `io_in_flight` on a backend making object-store requests:
//! measured requests/s against requests in flight, beside Little's law
//! (requests/s = in flight / latency), the line concurrency alone would give.

use std::collections::BTreeMap;

use plotters::prelude::*;

use super::common::{color, draw_err, draw_legend, short_num, with_svg};
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
        let mut chart = ChartBuilder::on(root)
            .caption(
                "Requests/s against io_in_flight, beside Little's law (in flight / latency)",
                ("sans-serif", 20),
            )
            .margin(12)
            .x_label_area_size(45)
            .y_label_area_size(80)
            .build_cartesian_2d(
                (xlo / 1.5..xhi * 1.5).log_scale(),
                (ylo / 1.5..yhi * 1.5).log_scale(),
            )
            .map_err(draw_err)?;
        chart
            .configure_mesh()
            .x_desc("io_in_flight (log axis)")
            .y_desc("requests/s (log axis)")
            .y_label_formatter(&|v| short_num(*v))
            .x_label_formatter(&|v| short_num(*v))
            .draw()
            .map_err(draw_err)?;
        for (i, (base, pts)) in lines.iter().enumerate() {
            let c = color(i);
            let latency_ms = pts.first().map_or(f64::NAN, |p| p.latency * 1e3);
            let at = |p: &LittlePoint| p.in_flight.max(1.0);
            let measured: Vec<(f64, f64)> = pts
                .iter()
                .filter(|p| p.measured > 0.0)
                .map(|p| (at(p), p.measured))
                .collect();
            chart
                .draw_series(LineSeries::new(measured.clone(), c.stroke_width(2)))
                .map_err(draw_err)?
                .label(format!("{base}: measured"))
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 14, y)], c.stroke_width(2))
                });
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
                .map_err(draw_err)?
                .label(format!(
                    "{base}: Little's law, {latency_ms:.1} ms per request"
                ))
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 6, y)], c.stroke_width(1))
                });
        }
        draw_legend(&mut chart, SeriesLabelPosition::UpperLeft, None)?;
        Ok(())
    })
}
