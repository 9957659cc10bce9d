//! The timeline of a split job: one row per shard, one bar per run of a backend,
//! on the shards' common time axis, so stragglers and overlaps show.

use plotters::prelude::*;

use super::common::{
    color, draw_err, legend_right, mesh, title, with_svg_sized, x_label_area, y_label_area, Entry,
    Key, H, ROW_MIN, W,
};
use crate::merge::Bar;

/// Every shard's runs as bars (warm-ups paler), one colour per backend.
pub fn svg(bars: &[Bar]) -> anyhow::Result<String> {
    let rows = bars.iter().map(|b| b.shard + 1).max().unwrap_or(1);
    let tmax = bars.iter().map(|b| b.end).fold(0.0, f64::max).max(0.1) * 1.02;
    // Every shard's row tall enough for its label: a taller canvas for many shards.
    let height = H.max(180 + rows * ROW_MIN);
    let mut keys: Vec<Entry> = Vec::new();
    let mut seen: Vec<usize> = Vec::new();
    for b in bars {
        if !seen.contains(&b.backend) {
            seen.push(b.backend);
            keys.push(Entry::new(b.label.clone(), Key::Box(color(b.backend))));
        }
    }
    if bars.iter().any(|b| b.warmup) {
        keys.push(Entry::new("warm-up (paler)", Key::PaleBox(BLACK)));
    }
    with_svg_sized(W, height, |root| {
        let area = title(
            root,
            "Split job: each shard's runs on one time axis",
            Some("one row per shard, one bar per run of a backend, from its start to its end"),
        )?;
        let area = legend_right(&area, Some("backend"), &keys)?;
        let labels: Vec<String> = (0..rows).map(|r| r.to_string()).collect();
        let mut chart = ChartBuilder::on(&area)
            .margin(8)
            .margin_right(24)
            .x_label_area_size(x_label_area(true))
            .y_label_area_size(y_label_area(&labels, true))
            .build_cartesian_2d(0.0..tmax, (0..rows - 1).into_segmented())
            .map_err(draw_err)?;
        mesh(&mut chart.configure_mesh())
            .disable_y_mesh()
            .x_desc("seconds since the first shard started")
            .y_desc("shard")
            .y_labels(rows as usize)
            .y_label_formatter(&|v| match v {
                SegmentValue::CenterOf(r) => r.to_string(),
                _ => String::new(),
            })
            .draw()
            .map_err(draw_err)?;
        let (w, h) = chart.plotting_area().dim_in_pixel();
        let clear = h / rows / 6;
        // A run far shorter than the span still shows: 3 px at least.
        let least = tmax * 3.0 / f64::from(w.max(1));
        let bars: Vec<_> = bars
            .iter()
            .map(|b| {
                let c = color(b.backend);
                let style = match b.warmup {
                    true => c.mix(0.3).filled(),
                    false => c.mix(0.8).filled(),
                };
                let r = b.shard;
                let mut rect = Rectangle::new(
                    [
                        (b.start, SegmentValue::Exact(r)),
                        (b.end.max(b.start + least), SegmentValue::Exact(r + 1)),
                    ],
                    style,
                );
                rect.set_margin(clear, clear, 0, 0);
                rect
            })
            .collect();
        chart.draw_series(bars).map_err(draw_err)?;
        Ok(())
    })
}
