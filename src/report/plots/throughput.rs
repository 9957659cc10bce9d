//! Throughput per backend: the median as a bar, min – max as a whisker, the
//! median written at the bar's end; one row per backend, named on the y axis (so
//! long names never collide), and no legend: the names are on the axis.

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, VPos};

use super::common::{
    bar, color, draw_err, height_for_rows, row, rows, text_style, title, with_svg_sized, TICK, W,
};
use crate::analysis::{Analysis, BackendFigures};
use crate::report::fmt_rate;

/// One bar per backend at its median, with min–max whiskers.
pub fn svg(a: &Analysis, figs: &[&BackendFigures]) -> anyhow::Result<String> {
    let unit = a.unit;
    let n = figs.len();
    let labels: Vec<String> = figs.iter().map(|f| f.label.clone()).collect();
    with_svg_sized(W, height_for_rows(n, 140), |root| {
        let area = title(
            root,
            &format!("{}: throughput per backend", a.results.scenario.name),
            Some(&format!(
                "bar: median of the verified repetitions (the number at its end); \
                 whisker: min – max over them; in {unit}"
            )),
        )?;
        // Room right of the longest whisker for its median's number.
        let top = figs.iter().map(|f| f.max.max(f.ci.1)).fold(0.0, f64::max) * 1.22;
        let mut chart = rows(
            &area,
            &labels,
            top.max(1.0),
            &format!("throughput ({unit})"),
            "backend",
        )?;
        for (i, f) in figs.iter().enumerate() {
            let (c, r) = (color(i), row(i, n));
            chart
                .draw_series(std::iter::once(bar(
                    &chart,
                    (r, n),
                    0.0,
                    f.median,
                    c.mix(0.75).filled(),
                )))
                .map_err(draw_err)?;
            chart
                .draw_series(std::iter::once(ErrorBar::new_horizontal(
                    SegmentValue::CenterOf(r),
                    f.min,
                    f.median,
                    f.max,
                    BLACK.stroke_width(2),
                    12,
                )))
                .map_err(draw_err)?;
            let style = text_style(TICK, BLACK, HPos::Left, VPos::Center);
            // The median, right of the whisker.
            chart
                .draw_series(std::iter::once(
                    EmptyElement::at((f.max.max(f.median), SegmentValue::CenterOf(r)))
                        + Text::new(fmt_rate(f.median), (10, 0), style),
                ))
                .map_err(draw_err)?;
        }
        Ok(())
    })
}
