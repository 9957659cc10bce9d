//! The timeline of a split job: one row per shard, one bar per run of a backend,
//! on the shards' common time axis, so stragglers and overlaps show.

use plotters::prelude::*;

use super::common::{color, draw_err, draw_legend, with_svg};
use crate::merge::Bar;

/// Every shard's runs as bars (warm-ups paler), one colour per backend.
pub fn svg(bars: &[Bar]) -> anyhow::Result<String> {
    let rows = bars.iter().map(|b| b.shard + 1).max().unwrap_or(1);
    let tmax = bars.iter().map(|b| b.end).fold(0.0, f64::max).max(0.1) * 1.02;
    with_svg(|root| {
        let mut chart = ChartBuilder::on(root)
            .caption(
                "split job: each shard's runs on one time axis",
                ("sans-serif", 20),
            )
            .margin(12)
            .x_label_area_size(50)
            .y_label_area_size(80)
            .build_cartesian_2d(0.0..tmax, 0.0..rows as f64)
            .map_err(draw_err)?;
        chart
            .configure_mesh()
            .disable_y_mesh()
            .x_desc("seconds since the first shard started")
            .y_desc("shard")
            .y_labels(rows as usize + 1)
            .y_label_formatter(&|v| {
                let r = v.floor();
                if (v - r - 0.5).abs() < 0.26 || r >= rows as f64 {
                    String::new()
                } else {
                    format!("{}", r as u32)
                }
            })
            .label_style(("sans-serif", 15))
            .axis_desc_style(("sans-serif", 16))
            .draw()
            .map_err(draw_err)?;
        let mut labelled: Vec<usize> = Vec::new();
        for b in bars {
            let c = color(b.backend);
            let y = b.shard as f64;
            let style = match b.warmup {
                true => c.mix(0.3).filled(),
                false => c.mix(0.8).filled(),
            };
            let series = chart
                .draw_series(std::iter::once(Rectangle::new(
                    [(b.start, y + 0.15), (b.end, y + 0.85)],
                    style,
                )))
                .map_err(draw_err)?;
            if !labelled.contains(&b.backend) {
                labelled.push(b.backend);
                series.label(b.label.clone()).legend(move |(x, y)| {
                    Rectangle::new([(x, y - 5), (x + 10, y + 5)], c.filled())
                });
            }
        }
        draw_legend(&mut chart, SeriesLabelPosition::LowerRight, Some(14))?;
        Ok(())
    })
}
