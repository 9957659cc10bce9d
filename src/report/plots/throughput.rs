//! Throughput per backend: the median as a bar, min – max as a whisker.

use plotters::prelude::*;

use super::common::{color, draw_err, draw_legend, short_num, with_svg};
use crate::analysis::{Analysis, BackendFigures};
use crate::report::fmt_rate;

/// One bar per backend at its median, with min–max whiskers.
pub fn svg(a: &Analysis, figs: &[&BackendFigures]) -> anyhow::Result<String> {
    let unit = a.unit;
    with_svg(|root| {
        let top = figs.iter().map(|f| f.max.max(f.ci.1)).fold(0.0, f64::max) * 1.15;
        let n = figs.len();
        let mut chart = ChartBuilder::on(root)
            .caption(
                format!(
                    "{}: throughput (median, bar; min–max over repetitions, whisker)",
                    a.results.scenario.name
                ),
                ("sans-serif", 20),
            )
            .margin(12)
            .x_label_area_size(60)
            .y_label_area_size(80)
            .build_cartesian_2d((0..n.max(1) - 1).into_segmented(), 0.0..top.max(1.0))
            .map_err(draw_err)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .y_desc(unit)
            .y_label_formatter(&|v| short_num(*v))
            .x_desc("backend")
            .x_labels(n)
            .x_label_formatter(&|v| match v {
                SegmentValue::CenterOf(i) => {
                    figs.get(*i).map_or(String::new(), |f| f.label.clone())
                }
                _ => String::new(),
            })
            .draw()
            .map_err(draw_err)?;
        for (i, f) in figs.iter().enumerate() {
            let c = color(i);
            chart
                .draw_series(std::iter::once(Rectangle::new(
                    [
                        (SegmentValue::Exact(i), 0.0),
                        (SegmentValue::Exact(i + 1), f.median),
                    ],
                    c.mix(0.75).filled(),
                )))
                .map_err(draw_err)?
                .label(format!("{}: {}", f.label, fmt_rate(f.median)))
                .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 10, y + 5)], c.filled()));
            chart
                .draw_series(std::iter::once(ErrorBar::new_vertical(
                    SegmentValue::CenterOf(i),
                    f.min,
                    f.median,
                    f.max,
                    BLACK.stroke_width(2),
                    12,
                )))
                .map_err(draw_err)?;
        }
        draw_legend(&mut chart, SeriesLabelPosition::UpperRight, None)?;
        Ok(())
    })
}
