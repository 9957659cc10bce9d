//! Throughput over time of each backend's median repetition, and the IO operations
//! (and object-store requests) in flight below it.

use plotters::prelude::*;

use super::common::{color, draw_err, draw_legend, short_num, with_svg, Area, H};
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
    with_svg(|root| {
        let (upper, lower) = root.split_vertically(H * 2 / 3);
        let tmax = rates
            .iter()
            .flat_map(|(_, p)| p.iter().map(|x| x.0))
            .chain(io.iter().flat_map(|(_, p)| p.iter().map(|x| x.0)))
            .fold(0.0, f64::max)
            .max(0.1);
        draw_rates(&upper, a.unit, stage, figs, rates, tmax)?;
        draw_io(&lower, io, requests, tmax)
    })
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
    stage: &str,
    figs: &[&BackendFigures],
    rates: Series,
    tmax: f64,
) -> anyhow::Result<()> {
    let ymax = rates
        .iter()
        .flat_map(|(_, p)| p.iter().map(|x| x.1))
        .fold(0.0, f64::max)
        .max(1.0)
        * 1.1;
    let bucket_ms = (figs
        .iter()
        .find_map(|f| f.timeline.as_ref())
        .map_or(0.1, |t| t.bucket_seconds)
        * 1e3)
        .round();
    let mut chart = ChartBuilder::on(area)
        .caption(
            format!(
                "Throughput over time ({stage} completions per {bucket_ms} ms, median repetition)"
            ),
            ("sans-serif", 20),
        )
        .margin(12)
        .x_label_area_size(45)
        .y_label_area_size(80)
        .build_cartesian_2d(0.0..tmax, 0.0..ymax)
        .map_err(draw_err)?;
    chart
        .configure_mesh()
        .x_desc("seconds since the run started (the last bucket is partial)")
        .y_desc(unit)
        .y_label_formatter(&|v| short_num(*v))
        .draw()
        .map_err(draw_err)?;
    for (i, points) in rates {
        let c = color(i);
        chart
            .draw_series(LineSeries::new(points, c.stroke_width(2)))
            .map_err(draw_err)?
            .label(figs[i].label.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 14, y)], c.stroke_width(2)));
    }
    draw_legend(&mut chart, SeriesLabelPosition::UpperRight, None)
}

fn draw_io(area: &Area, io: Series, requests: Series, tmax: f64) -> anyhow::Result<()> {
    let io_max = io
        .iter()
        .chain(&requests)
        .flat_map(|(_, p)| p.iter().map(|x| x.1))
        .fold(0.0, f64::max)
        .max(1.0)
        * 1.1;
    let mut chart = ChartBuilder::on(area)
        .caption(
            if requests.is_empty() {
                "IO operations in flight (sampled)"
            } else {
                "IO operations (solid) and object-store requests (dashed) in flight, sampled"
            },
            ("sans-serif", 14),
        )
        .margin(12)
        .x_label_area_size(30)
        .y_label_area_size(80)
        .build_cartesian_2d(0.0..tmax, 0.0..io_max)
        .map_err(draw_err)?;
    chart
        .configure_mesh()
        .y_desc("operations")
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
