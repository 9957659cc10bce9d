//! For a sweep over `io_in_flight` on a backend making object-store requests:
//! measured requests/s against requests in flight, beside Little's law
//! (requests/s = in flight / latency), the line concurrency alone would give.

use std::collections::BTreeMap;

use plotters::prelude::*;

use super::common::{color, draw_err, draw_legend, short_num, with_svg};
use crate::analysis::LittlePoint;

/// One line per swept table: measured requests/s (solid, dots) and Little's law
/// (dashed, same colour), on log axes of io_in_flight.
pub fn svg(points: &[LittlePoint], source: &str) -> anyhow::Result<String> {
    let mut lines: BTreeMap<&str, Vec<&LittlePoint>> = BTreeMap::new();
    for p in points {
        lines.entry(p.base.as_str()).or_default().push(p);
    }
    let xs = points.iter().map(|p| p.in_flight.max(1.0).log2());
    let (lo, hi) = xs.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), x| {
        (a.min(x), b.max(x))
    });
    let ymax = points
        .iter()
        .flat_map(|p| [p.measured, p.expected])
        .fold(1.0, f64::max)
        * 1.15;
    with_svg(|root| {
        let pad = ((hi - lo) * 0.08).max(0.5);
        let mut chart = ChartBuilder::on(root)
            .caption(
                "Requests/s against requests in flight, and Little's law",
                ("sans-serif", 20),
            )
            .margin(12)
            .x_label_area_size(45)
            .y_label_area_size(80)
            .build_cartesian_2d(lo - pad..hi + pad, 0.0..ymax)
            .map_err(draw_err)?;
        chart
            .configure_mesh()
            .x_desc("io_in_flight (log axis)")
            .y_desc("requests/s")
            .y_label_formatter(&|v| short_num(*v))
            .x_label_formatter(&|v| short_num(v.exp2()))
            .draw()
            .map_err(draw_err)?;
        for (i, (base, pts)) in lines.iter().enumerate() {
            let c = color(i);
            let at = |p: &LittlePoint| p.in_flight.max(1.0).log2();
            chart
                .draw_series(LineSeries::new(
                    pts.iter().map(|p| (at(p), p.measured)),
                    c.stroke_width(2),
                ))
                .map_err(draw_err)?
                .label(format!("{base}: measured"))
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 14, y)], c.stroke_width(2))
                });
            chart
                .draw_series(pts.iter().map(|p| Circle::new((at(p), p.measured), 4, c.filled())))
                .map_err(draw_err)?;
            chart
                .draw_series(DashedLineSeries::new(
                    pts.iter().map(|p| (at(p), p.expected)),
                    6,
                    4,
                    c.stroke_width(1),
                ))
                .map_err(draw_err)?
                .label(format!("{base}: Little's law"))
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 6, y)], c.stroke_width(1))
                });
        }
        draw_legend(&mut chart, SeriesLabelPosition::UpperLeft, None)?;
        root.draw(&Text::new(
            format!("Little's law: io_in_flight / latency, latency = {source}"),
            (90, super::common::H as i32 - 18),
            ("sans-serif", 13),
        ))
        .map_err(draw_err)?;
        Ok(())
    })
}
