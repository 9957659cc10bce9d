//! Throughput over time of each backend's median repetition, and the IO operations
//! (and object-store requests) in flight below it.

use plotters::prelude::*;

use super::common::{
    color, draw_err, legend_right, mesh, number_labels, short_num, title, with_svg, x_label_area,
    y_label_area, Area, Entry, Key,
};
use crate::analysis::{Analysis, BackendFigures};
use crate::scenario::WorkloadKind;

/// Points of one backend, by its place in `figs` (its colour).
type Series = Vec<(usize, Vec<(f64, f64)>)>;

/// Completions per second above, IO in flight below, on one time axis.
pub fn svg(a: &Analysis, figs: &[&BackendFigures]) -> anyhow::Result<String> {
    // The stage whose completions are the workload's items.
    let stage = match a.workload() {
        WorkloadKind::Rechunk => "reduce",
        WorkloadKind::ReadOnly => "read",
    };
    let rates = rate_series(figs, stage);
    let io = io_series(figs);
    let requests = requests_series(figs);
    let bucket_ms = (figs
        .iter()
        .find_map(|f| f.timeline.as_ref())
        .map_or(0.1, |t| t.bucket_seconds)
        * 1e3)
        .round();
    with_svg(|root| {
        let area = title(
            root,
            &format!("Throughput over time ({stage} completions per {bucket_ms} ms), median repetition"),
            Some(&format!(
                "Above: completions per second in each {bucket_ms} ms bucket (the last is partial). \
                 Below: IO operations in flight{}, sampled every {bucket_ms} ms.",
                if requests.is_empty() {
                    ""
                } else {
                    " (solid) and object-store requests in flight (dashed)"
                }
            )),
        )?;
        let mut drawn: Vec<usize> = rates.iter().chain(&io).map(|(i, _)| *i).collect();
        drawn.sort_unstable();
        drawn.dedup();
        let mut keys: Vec<Entry> = drawn
            .iter()
            .map(|i| Entry::new(figs[*i].label.clone(), Key::Line(color(*i))))
            .collect();
        if !requests.is_empty() {
            keys.push(Entry::new("requests (below)", Key::Dashed(BLACK)));
        }
        let area = legend_right(&area, Some("backend"), &keys)?;
        let (_, h) = area.dim_in_pixel();
        let (upper, lower) = area.split_vertically(h * 3 / 5);
        let tmax = rates
            .iter()
            .flat_map(|(_, p)| p.iter().map(|x| x.0))
            .chain(io.iter().flat_map(|(_, p)| p.iter().map(|x| x.0)))
            .fold(0.0, f64::max)
            .max(0.1);
        let ymax = max_y(&rates);
        // Whole operations: at least 0 to 4, so the ticks are integers.
        let io_max = max_y(&io).max(max_y(&requests)).max(4.0);
        // One width for both panels' label areas, so their time axes line up.
        let labels = number_labels(0.0, ymax)
            .into_iter()
            .chain(number_labels(0.0, io_max));
        let y_area = y_label_area(labels, true);
        draw_rates(&upper, a.unit, rates, tmax, ymax, y_area)?;
        draw_io(&lower, io, requests, tmax, io_max, y_area)
    })
}

/// The largest y of any series, with a tenth more room (at least 1).
fn max_y(series: &Series) -> f64 {
    series
        .iter()
        .flat_map(|(_, p)| p.iter().map(|x| x.1))
        .fold(0.0, f64::max)
        .max(1.0)
        * 1.1
}

/// `stage` completions per second in each timeline bucket, at the bucket's middle.
fn rate_series(figs: &[&BackendFigures], stage: &str) -> Series {
    figs.iter()
        .enumerate()
        .filter_map(|(i, f)| {
            let t = f.timeline.as_ref()?;
            let items = t.items.get(stage)?;
            let w = t.bucket_seconds;
            Some((
                i,
                items
                    .iter()
                    .enumerate()
                    .map(|(k, &n)| ((k as f64 + 0.5) * w, n as f64 / w))
                    .collect(),
            ))
        })
        .collect()
}

/// IO operations in flight, as sampled every bucket.
fn io_series(figs: &[&BackendFigures]) -> Series {
    figs.iter()
        .enumerate()
        .filter_map(|(i, f)| {
            let t = f.timeline.as_ref()?;
            Some((
                i,
                t.samples
                    .iter()
                    .map(|s| (s.t, s.io_in_flight as f64))
                    .collect(),
            ))
        })
        .collect()
}

/// Object-store requests in flight, as sampled, for backends that made any.
fn requests_series(figs: &[&BackendFigures]) -> Series {
    figs.iter()
        .enumerate()
        .filter_map(|(i, f)| {
            let t = f.timeline.as_ref()?;
            t.samples.iter().any(|s| s.requests_in_flight > 0).then(|| {
                (
                    i,
                    t.samples
                        .iter()
                        .map(|s| (s.t, s.requests_in_flight as f64))
                        .collect(),
                )
            })
        })
        .collect()
}

fn draw_rates(
    area: &Area,
    unit: &str,
    rates: Series,
    tmax: f64,
    ymax: f64,
    y_area: u32,
) -> anyhow::Result<()> {
    let mut chart = ChartBuilder::on(area)
        .margin(8)
        .margin_right(24)
        .x_label_area_size(x_label_area(true))
        .y_label_area_size(y_area)
        .build_cartesian_2d(0.0..tmax, 0.0..ymax)
        .map_err(draw_err)?;
    mesh(&mut chart.configure_mesh())
        .x_desc("seconds since the run started")
        .y_desc(format!("throughput ({unit})"))
        .y_labels(6)
        .y_label_formatter(&|v| short_num(*v))
        .draw()
        .map_err(draw_err)?;
    for (i, points) in rates {
        // A run shorter than a few buckets has too few points for a line to show.
        if points.len() < 3 {
            chart
                .draw_series(points.iter().map(|p| Circle::new(*p, 4, color(i).filled())))
                .map_err(draw_err)?;
        }
        chart
            .draw_series(LineSeries::new(points, color(i).stroke_width(2)))
            .map_err(draw_err)?;
    }
    Ok(())
}

fn draw_io(
    area: &Area,
    io: Series,
    requests: Series,
    tmax: f64,
    io_max: f64,
    y_area: u32,
) -> anyhow::Result<()> {
    let mut chart = ChartBuilder::on(area)
        .margin(8)
        .margin_right(24)
        .x_label_area_size(x_label_area(true))
        .y_label_area_size(y_area)
        .build_cartesian_2d(0.0..tmax, 0.0..io_max)
        .map_err(draw_err)?;
    mesh(&mut chart.configure_mesh())
        .x_desc("seconds since the run started")
        .y_desc("in flight (operations)")
        .y_labels(4)
        .y_label_formatter(&|v| short_num(*v))
        .draw()
        .map_err(draw_err)?;
    for (i, points) in io {
        chart
            .draw_series(LineSeries::new(points, color(i).stroke_width(2)))
            .map_err(draw_err)?;
    }
    for (i, points) in requests {
        chart
            .draw_series(DashedLineSeries::new(
                points,
                5,
                3,
                color(i).stroke_width(1),
            ))
            .map_err(draw_err)?;
    }
    Ok(())
}
