//! Where the time went: CPU per item (user, system) and mean time per item in each
//! stage, as stacked bars per backend.

use plotters::prelude::*;

use super::common::{color, draw_err, draw_legend, short_num, with_svg, Area, W};
use crate::analysis::BackendFigures;

/// Left: CPU time per 1000 items (user, system). Right: time items spent in each
/// stage per item (summed latency / items), which overlaps across items.
pub fn svg(figs: &[&BackendFigures]) -> anyhow::Result<String> {
    let per_item = |f: &BackendFigures, s: &str| f.stages.get(s).map_or(0.0, |h| h.mean() / 1e3);
    let cpu: Vec<Vec<f64>> = figs
        .iter()
        .map(|f| vec![f.cpu_ms_per_1000.0, f.cpu_ms_per_1000.1])
        .collect();
    let stage_names = ["read", "decode", "reduce", "encode", "write"];
    let stages: Vec<Vec<f64>> = figs
        .iter()
        .map(|f| stage_names.iter().map(|s| per_item(f, s)).collect())
        .collect();
    with_svg(|root| {
        let (left, right) = root.split_horizontally(W / 2);
        let colors = [color(0), color(1)];
        stacked_bars(
            &left,
            "CPU time per 1000 items",
            "ms",
            figs,
            &["user", "system"],
            &colors,
            &cpu,
        )?;
        let colors: Vec<RGBColor> = (0..stage_names.len()).map(|k| color(k + 2)).collect();
        stacked_bars(
            &right,
            "Mean time per item in each stage",
            "µs",
            figs,
            &stage_names,
            &colors,
            &stages,
        )
    })
}

/// One stacked bar per backend: `values[backend][part]`, parts bottom to top.
fn stacked_bars(
    area: &Area,
    caption: &str,
    unit: &str,
    figs: &[&BackendFigures],
    parts: &[&str],
    colors: &[RGBColor],
    values: &[Vec<f64>],
) -> anyhow::Result<()> {
    let n = figs.len();
    let top = values
        .iter()
        .map(|v| v.iter().sum::<f64>())
        .fold(0.0, f64::max)
        .max(1.0)
        * 1.2;
    let label = |v: &SegmentValue<usize>| match v {
        SegmentValue::CenterOf(i) => figs.get(*i).map_or(String::new(), |f| f.label.clone()),
        _ => String::new(),
    };
    let mut chart = ChartBuilder::on(area)
        .caption(caption, ("sans-serif", 18))
        .margin(10)
        .x_label_area_size(70)
        .y_label_area_size(60)
        .build_cartesian_2d((0..n.max(1) - 1).into_segmented(), 0.0..top)
        .map_err(draw_err)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .y_desc(unit)
        .y_label_formatter(&|v| short_num(*v))
        .x_labels(n)
        .x_label_formatter(&label)
        .x_label_style(("sans-serif", 11))
        .draw()
        .map_err(draw_err)?;
    for (k, name) in parts.iter().enumerate() {
        let c = colors[k];
        chart
            .draw_series(values.iter().enumerate().map(|(i, v)| {
                let below: f64 = v[..k].iter().sum();
                Rectangle::new(
                    [
                        (SegmentValue::Exact(i), below),
                        (SegmentValue::Exact(i + 1), below + v[k]),
                    ],
                    c.mix(0.8).filled(),
                )
            }))
            .map_err(draw_err)?
            .label(*name)
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 10, y + 5)], c.filled()));
    }
    draw_legend(&mut chart, SeriesLabelPosition::UpperRight, None)?;
    Ok(())
}
