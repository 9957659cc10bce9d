//! `report.md` and its plots (SVG, and PNG rendered from the SVG) from a results
//! file alone, so a report can be redrawn at any time.
//!
//! Every figure comes from the run's [`Analysis`]; this module only lays them out:
//! [`markdown`] writes the text (the [`decision`] first), [`plots`] draws the
//! charts with plotters' SVG backend, and [`png`] renders each SVG to PNG with
//! resvg using the system's fonts (DejaVu Sans where installed), so SVG and PNG
//! always show the same chart.

mod decision {
    //! The report's opening: which backend won, by how much, how sure that is, and the
    //! measured figure that explains it best.

    use std::fmt::Write as _;

    use super::{fmt_rate, fmt_us};
    use crate::analysis::{self, Analysis, BackendFigures};
    use crate::scenario::WorkloadKind;

    /// The sentence that says who won and how sure that is, and the one-line reason.
    pub fn decision(a: &Analysis) -> String {
        let mut ranked = a.measured();
        ranked.sort_by(|x, y| y.median.total_cmp(&x.median));
        let Some(best) = ranked.first() else {
            return "No backend produced a verified repetition, so there is nothing to decide.\n"
                .into();
        };
        let mut out = winner(a, best);
        match ranked.get(1) {
            None => {
                let _ = writeln!(out, "\nIt was the only backend with verified results.");
            }
            Some(second) => {
                out.push_str(&lead(a, best, second));
                let _ = writeln!(out, "\nWhy, from the data: {}", reason(a, best, second));
            }
        }
        out
    }

    /// The winner, its median, and its ratio to the baseline with the interval.
    fn winner(a: &Analysis, best: &BackendFigures) -> String {
        let s = &a.results.scenario;
        let workload = match s.workload {
            WorkloadKind::Rechunk => "rechunk",
            WorkloadKind::ReadOnly => "read-only",
        };
        let mut out = String::new();
        let _ = write!(
            out,
            "**{}** was fastest on `{}` ({}, {} cache): {} {} (median of {})",
            best.label,
            s.name,
            workload,
            s.run.cache.name(),
            fmt_rate(best.median),
            a.unit,
            best.rates.len(),
        );
        if let (Some(base), Some(ratio), Some((lo, hi))) = (a.baseline(), best.ratio, best.ratio_ci)
        {
            let _ = write!(
                out,
                ", {ratio:.2}× `{}` (95 % CI {lo:.2}–{hi:.2})",
                base.label
            );
        }
        let _ = writeln!(out, ".");
        out
    }

    /// The runner-up, the winner's lead over it with its interval, and how confident
    /// that makes the choice.
    fn lead(a: &Analysis, best: &BackendFigures, second: &BackendFigures) -> String {
        let (lo, hi) = analysis::ratio_ci(best, second);
        let ratio = best.median / second.median;
        let mut out = String::new();
        let _ = write!(
            out,
            "\nNext: **{}** at {} {}; the winner's lead is {ratio:.2}× (95 % bootstrap CI of the ratio of medians {lo:.2}–{hi:.2}). ",
            second.label,
            fmt_rate(second.median),
            a.unit,
        );
        let separated = best.min > second.max;
        let confident = lo > 1.0;
        let _ = writeln!(
            out,
            "{}",
            match (confident, separated) {
                (true, true) => format!(
                    "Confident: the interval excludes 1 and every repetition of {} beat every repetition of {}.",
                    best.label, second.label
                ),
                (true, false) => "Fairly confident: the interval excludes 1, but their repetitions overlap.".to_string(),
                (false, _) => format!(
                    "Not decided: the interval includes 1; with {} repetitions the two are within the noise of this machine — run more repetitions before choosing between them.",
                    best.rates.len().min(second.rates.len())
                ),
            }
        );
        out
    }

    /// The metric on which the winner differs most from the runner-up, in words.
    fn reason(a: &Analysis, best: &BackendFigures, second: &BackendFigures) -> String {
        let cores = a.results.machine.cores;
        let cpu = |f: &BackendFigures| f.cpu_ms_per_1000.0 + f.cpu_ms_per_1000.1;
        let read_p50 = |f: &BackendFigures| {
            f.stages
                .get("read")
                .map(|h| h.value_at_quantile(0.5) as f64 / 1e3)
        };
        // Relative advantages of the winner (> 1 means it is better on that metric).
        let mut candidates: Vec<(f64, String)> = Vec::new();
        if cpu(best) > 0.0 && cpu(second) > 0.0 {
            candidates.push((
                cpu(second) / cpu(best),
                format!(
                    "it spent less CPU per item: {:.0} ms per 1000 items (user + system) against {:.0} ms for {}",
                    cpu(best),
                    cpu(second),
                    second.label
                ),
            ));
        }
        if best.utilisation > 0.0 && second.utilisation > 0.0 {
            candidates.push((
                best.utilisation / second.utilisation,
                format!(
                    "it kept the {cores} cores busier: {:.0} % against {:.0} % for {}",
                    best.utilisation * 100.0,
                    second.utilisation * 100.0,
                    second.label
                ),
            ));
        }
        if best.max_io_in_flight > 0 && second.max_io_in_flight > 0 {
            candidates.push((
                best.max_io_in_flight as f64 / second.max_io_in_flight as f64,
                format!(
                    "it kept more IO in flight: up to {} operations against {} for {}",
                    best.max_io_in_flight, second.max_io_in_flight, second.label
                ),
            ));
        }
        if let (Some(a), Some(b)) = (read_p50(best), read_p50(second)) {
            if a > 0.0 {
                candidates.push((
                    b / a,
                    format!(
                        "its reads completed sooner: median read latency {} against {} for {}",
                        fmt_us(a),
                        fmt_us(b),
                        second.label
                    ),
                ));
            }
        }
        candidates.sort_by(|a, b| b.0.total_cmp(&a.0));
        match candidates.first() {
            Some((adv, text)) if *adv > 1.05 => format!("{text}."),
            _ => "no single measured figure (CPU per item, core use, IO in flight, read latency) differs by more than 5 %; the difference is in how the work overlaps.".into(),
        }
    }
}

mod markdown {
    //! The text of `report.md`, one function per section, from the run's [`Analysis`].

    use std::fmt::Write as _;

    use super::{decision, fmt_rate, fmt_us};
    use crate::analysis::{Analysis, BackendFigures, LEVEL};
    use crate::scenario::Recording;

    /// The markdown text (without the plot links).
    pub fn markdown(a: &Analysis) -> String {
        [
            header(a),
            format!("## Decision\n\n{}\n", decision(a)),
            throughput(a),
            ceilings(a),
            not_counted(a),
            latency(a),
            recording(a),
        ]
        .concat()
    }

    /// Title, and what the run happened on.
    fn header(a: &Analysis) -> String {
        let r = a.results;
        let (s, m) = (&r.scenario, &r.machine);
        let mut md = String::new();
        let _ = writeln!(md, "# {}: {}\n", s.name, s.description);
        let _ = writeln!(
            md,
            "{} · {} cores, {} · kernel {} · data on {} · cache {} · {} repetitions per backend · harness {} ({}{})\n",
            r.started_at,
            m.cores,
            m.cpu_model,
            m.kernel,
            m.data_filesystem,
            s.run.cache.name(),
            s.run.repetitions,
            r.harness_version,
            r.git_commit.get(..12).unwrap_or(&r.git_commit),
            if r.git_dirty { ", uncommitted changes" } else { "" },
        );
        md
    }

    /// The throughput table: one row per backend with counted repetitions.
    fn throughput(a: &Analysis) -> String {
        let efficiency = a.ceilings().is_some();
        let mut md = String::new();
        let _ = writeln!(md, "## Throughput\n");
        let _ = writeln!(
            md,
            "Only verified repetitions count. CI: {:.0} % bootstrap interval of the median.\n",
            LEVEL * 100.0
        );
        let _ = writeln!(
            md,
            "| backend | {} (median) | 95 % CI | min – max | × sequential |{} CPU ms / 1000 (user + sys) | cores busy | IO in flight (max) | threads | peak RSS | verified |",
            a.unit,
            if efficiency { " efficiency |" } else { "" }
        );
        let _ = writeln!(
            md,
            "|---|---:|---:|---:|---:|{}---:|---:|---:|---:|---:|---|",
            if efficiency { "---:|" } else { "" }
        );
        for f in a.measured() {
            let _ = writeln!(md, "{}", throughput_row(f));
        }
        md
    }

    fn throughput_row(f: &BackendFigures) -> String {
        let ratio = f.ratio.map_or("–".into(), |r| format!("{r:.2}"));
        let efficiency = f
            .efficiency
            .map_or(String::new(), |e| format!(" {:.0} % |", e * 100.0));
        format!(
            "| {} | {} | {} – {} | {} – {} | {ratio} |{efficiency} {:.0} + {:.0} | {:.0} % | {} | {} | {:.1} MiB | {}/{} |",
            f.label,
            fmt_rate(f.median),
            fmt_rate(f.ci.0),
            fmt_rate(f.ci.1),
            fmt_rate(f.min),
            fmt_rate(f.max),
            f.cpu_ms_per_1000.0,
            f.cpu_ms_per_1000.1,
            f.utilisation * 100.0,
            f.max_io_in_flight,
            f.threads,
            f.peak_rss as f64 / (1u64 << 20) as f64,
            f.rates.len(),
            f.runs,
        )
    }

    /// The ceilings the efficiencies are taken against, when measured.
    fn ceilings(a: &Analysis) -> String {
        a.ceilings().map_or(String::new(), |c| {
            format!(
                "\nEfficiency: throughput / the lower of the two ceilings measured in this run.\n\n{}\n",
                crate::ceilings::table(c)
            )
        })
    }

    /// Backends skipped, and repetitions that did not count, with why.
    fn not_counted(a: &Analysis) -> String {
        let r = a.results;
        let mut md = String::new();
        for k in &r.skipped {
            let _ = writeln!(md, "\n`{}` was skipped: {}", k.label, k.reason);
        }
        for rep in r.repetitions.iter().filter(|r| !r.counts && !r.warmup) {
            let _ = writeln!(
                md,
                "\n`{}` repetition {} did not count: {}",
                rep.label,
                rep.index + 1,
                rep.error.as_deref().unwrap_or("its output did not verify")
            );
        }
        md
    }

    /// p50 / p99 / max per stage and backend, when any backend recorded histograms.
    fn latency(a: &Analysis) -> String {
        let figs = a.measured();
        let mut md = String::new();
        if !figs.iter().any(|f| !f.stages.is_empty()) {
            return md;
        }
        let _ = writeln!(md, "\n## Latency per stage\n");
        let _ = writeln!(
            md,
            "Per item, merged over the verified repetitions: p50 / p99 / max.\n"
        );
        let stages = crate::record::stage_names();
        let present: Vec<&str> = stages
            .iter()
            .copied()
            .filter(|s| figs.iter().any(|f| f.stages.contains_key(*s)))
            .collect();
        let _ = writeln!(md, "| backend | {} |", present.join(" | "));
        let _ = writeln!(md, "|---|{}", "---:|".repeat(present.len()));
        for f in figs {
            let cells: Vec<String> = present
                .iter()
                .map(|s| match f.stages.get(*s) {
                    Some(h) => format!(
                        "{} / {} / {}",
                        fmt_us(h.value_at_quantile(0.5) as f64 / 1e3),
                        fmt_us(h.value_at_quantile(0.99) as f64 / 1e3),
                        fmt_us(h.max() as f64 / 1e3)
                    ),
                    None => "–".into(),
                })
                .collect();
            let _ = writeln!(md, "| {} | {} |", f.label, cells.join(" | "));
        }
        md
    }

    /// Which backends kept counters only (no histograms, no timeline).
    fn recording(a: &Analysis) -> String {
        let counters_only: Vec<&str> = a
            .measured()
            .into_iter()
            .filter(|f| f.recording == Recording::Counters)
            .map(|f| f.label.as_str())
            .collect();
        if counters_only.is_empty() {
            return String::new();
        }
        format!(
            "\nRecorded with counters only (no histograms or timeline): {}.\n",
            counters_only.join(", ")
        )
    }
}

mod plots {
    //! The report's charts, one file each, drawn as SVG with plotters from the run's
    //! [`Analysis`]; [`common`] holds what they share.

    mod breakdown {
        //! Where the time went: CPU per item (user, system) and mean time per item in each
        //! stage, as stacked bars per backend.

        use plotters::prelude::*;

        use super::common::{color, draw_err, draw_legend, short_num, with_svg, Area, W};
        use crate::analysis::BackendFigures;

        /// Left: CPU time per 1000 items (user, system). Right: time items spent in each
        /// stage per item (summed latency / items), which overlaps across items.
        pub fn svg(figs: &[&BackendFigures]) -> anyhow::Result<String> {
            let per_item =
                |f: &BackendFigures, s: &str| f.stages.get(s).map_or(0.0, |h| h.mean() / 1e3);
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
                SegmentValue::CenterOf(i) => {
                    figs.get(*i).map_or(String::new(), |f| f.label.clone())
                }
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
                    .legend(move |(x, y)| {
                        Rectangle::new([(x, y - 5), (x + 10, y + 5)], c.filled())
                    });
            }
            draw_legend(&mut chart, SeriesLabelPosition::UpperRight, None)?;
            Ok(())
        }
    }
    mod common {
        //! What every plot shares: the canvas, the colours, the legend, axis numbers.

        use plotters::coord::Shift;
        use plotters::prelude::*;

        /// Plot size in pixels.
        pub const W: u32 = 1000;
        pub const H: u32 = 560;

        const COLORS: [RGBColor; 10] = [
            RGBColor(31, 119, 180),
            RGBColor(255, 127, 14),
            RGBColor(44, 160, 44),
            RGBColor(214, 39, 40),
            RGBColor(148, 103, 189),
            RGBColor(140, 86, 75),
            RGBColor(227, 119, 194),
            RGBColor(127, 127, 127),
            RGBColor(188, 189, 34),
            RGBColor(23, 190, 207),
        ];

        /// The `i`th series' colour (backends keep theirs across plots).
        pub fn color(i: usize) -> RGBColor {
            COLORS[i % COLORS.len()]
        }

        pub type Area<'a> = DrawingArea<SVGBackend<'a>, Shift>;

        /// The legend every plot draws: framed, on a translucent white box, at `position`,
        /// with labels of `font_size` (plotters' default when `None`).
        pub fn draw_legend<'a, DB: DrawingBackend + 'a, CT: plotters::coord::CoordTranslate>(
            chart: &mut ChartContext<'a, DB, CT>,
            position: SeriesLabelPosition,
            font_size: Option<u32>,
        ) -> anyhow::Result<()> {
            let mut style = chart.configure_series_labels();
            style
                .background_style(WHITE.mix(0.85))
                .border_style(BLACK)
                .position(position);
            if let Some(size) = font_size {
                style.label_font(("sans-serif", size));
            }
            style.draw().map_err(draw_err)
        }

        pub fn draw_err(e: impl std::fmt::Debug) -> anyhow::Error {
            anyhow::anyhow!("drawing a plot: {e:?}")
        }

        /// An SVG of [`W`] × [`H`] on white, drawn by `f`.
        pub fn with_svg(f: impl FnOnce(&Area) -> anyhow::Result<()>) -> anyhow::Result<String> {
            let mut svg = String::new();
            {
                let root = SVGBackend::with_string(&mut svg, (W, H)).into_drawing_area();
                root.fill(&WHITE).map_err(draw_err)?;
                f(&root)?;
                root.present().map_err(draw_err)?;
            }
            Ok(svg)
        }

        /// An axis number: 0, 1.5k, 2M, 12, 0.25.
        pub fn short_num(v: f64) -> String {
            if v == 0.0 {
                "0".into()
            } else if v >= 1e6 {
                format!("{}M", trim(v / 1e6))
            } else if v >= 1e3 {
                format!("{}k", trim(v / 1e3))
            } else if v >= 1.0 {
                format!("{v:.0}")
            } else {
                format!("{v:.2}")
            }
        }

        /// At most one decimal, none when whole.
        fn trim(x: f64) -> String {
            let s = format!("{x:.1}");
            s.strip_suffix(".0").map(str::to_string).unwrap_or(s)
        }
    }
    mod latency {
        //! Latency CDFs: one panel per stage, one curve per backend, on a log axis.

        use hdrhistogram::Histogram;
        use plotters::prelude::*;

        use super::common::{color, draw_err, draw_legend, short_num, with_svg, Area};
        use crate::analysis::BackendFigures;

        /// A grid of panels, one per stage any backend recorded.
        pub fn svg(figs: &[&BackendFigures]) -> anyhow::Result<String> {
            let names = crate::record::stage_names();
            let present: Vec<&str> = names
                .iter()
                .copied()
                .filter(|s| figs.iter().any(|f| f.stages.contains_key(*s)))
                .collect();
            with_svg(|root| {
                let root = root
                    .titled(
                        "Latency CDF per stage (fraction of items done within x; log axis)",
                        ("sans-serif", 20),
                    )
                    .map_err(draw_err)?;
                let cols = 4;
                let rows = present.len().div_ceil(cols).max(1);
                let cells = root.split_evenly((rows, cols));
                for (k, (stage, area)) in present.iter().zip(cells.iter()).enumerate() {
                    // One legend for all panels (the same backends, the same colours).
                    panel(area, stage, figs, k == 0)?;
                }
                Ok(())
            })
        }

        /// One stage's panel: the CDF of each backend that recorded it, coloured by the
        /// backend's place in `figs`.
        fn panel(
            area: &Area,
            stage: &str,
            figs: &[&BackendFigures],
            legend: bool,
        ) -> anyhow::Result<()> {
            let hs: Vec<(usize, &Histogram<u64>)> = figs
                .iter()
                .enumerate()
                .filter_map(|(i, f)| f.stages.get(stage).map(|h| (i, h)))
                .collect();
            let lo = hs.iter().map(|(_, h)| h.min().max(1)).min().unwrap_or(1) as f64 / 1e3;
            let hi = hs.iter().map(|(_, h)| h.max().max(2)).max().unwrap_or(2) as f64 / 1e3;
            let (lo, hi) = (lo.max(0.01) * 0.8, (hi * 1.25).max(lo * 10.0));
            let mut chart = ChartBuilder::on(area)
                .caption(stage, ("sans-serif", 16))
                .margin(6)
                .x_label_area_size(34)
                .y_label_area_size(40)
                .build_cartesian_2d((lo..hi).log_scale(), 0.0..1.0)
                .map_err(draw_err)?;
            chart
                .configure_mesh()
                .x_desc("µs")
                .x_labels(5)
                .y_labels(5)
                .x_label_formatter(&|v| short_num(*v))
                .draw()
                .map_err(draw_err)?;
            for (i, h) in hs {
                let c = color(i);
                chart
                    .draw_series(LineSeries::new(cdf(h), c.stroke_width(2)))
                    .map_err(draw_err)?
                    .label(figs[i].label.clone())
                    .legend(move |(x, y)| {
                        PathElement::new(vec![(x, y), (x + 14, y)], c.stroke_width(2))
                    });
            }
            if legend {
                draw_legend(&mut chart, SeriesLabelPosition::LowerRight, Some(11))?;
            }
            Ok(())
        }

        /// (latency in µs, fraction done within it) at 201 quantiles.
        fn cdf(h: &Histogram<u64>) -> Vec<(f64, f64)> {
            (0..=200)
                .map(|k| {
                    let q = k as f64 / 200.0;
                    (h.value_at_quantile(q).max(1) as f64 / 1e3, q)
                })
                .collect()
        }
    }
    mod scaling {
        //! For a `[sweep]`: throughput against the swept parameter.

        use std::collections::BTreeMap;

        use plotters::prelude::*;

        use super::common::{color, draw_err, draw_legend, short_num, with_svg};
        use crate::analysis::{Analysis, BackendFigures};

        /// (value, median, min, max) of each point of one swept backend.
        type Line = Vec<(f64, f64, f64, f64)>;

        /// Median throughput against the swept value, one line per swept backend, with
        /// min – max whiskers.
        pub fn svg(a: &Analysis, figs: &[&BackendFigures]) -> anyhow::Result<String> {
            let unit = a.unit;
            let (parameter, mut lines) = lines(figs);
            let xs: Vec<f64> = lines.values().flatten().map(|p| p.0).collect();
            let xmin = xs.iter().copied().fold(f64::INFINITY, f64::min);
            let xmax = xs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            // A log axis (drawn as log2 of the value) when the values are positive and span
            // a factor of 8 or more, as queue depths and thread counts do.
            let log = xmin > 0.0 && xmax / xmin >= 8.0;
            let pos = move |v: f64| if log { v.log2() } else { v };
            for l in lines.values_mut() {
                for p in l.iter_mut() {
                    p.0 = pos(p.0);
                }
            }
            with_svg(|root| {
                let (lo, hi) = (pos(xmin), pos(xmax));
                let pad = ((hi - lo) * 0.08).max(0.5);
                let ymax = lines
                    .values()
                    .flatten()
                    .map(|p| p.3)
                    .fold(0.0, f64::max)
                    .max(1.0)
                    * 1.15;
                let mut chart = ChartBuilder::on(root)
                    .caption(
                        format!(
                            "Scaling: throughput against {parameter} (median; min–max whiskers)"
                        ),
                        ("sans-serif", 20),
                    )
                    .margin(12)
                    .x_label_area_size(45)
                    .y_label_area_size(80)
                    .build_cartesian_2d(lo - pad..hi + pad, 0.0..ymax)
                    .map_err(draw_err)?;
                chart
                    .configure_mesh()
                    .x_desc(if log {
                        format!("{parameter} (log axis)")
                    } else {
                        parameter.clone()
                    })
                    .y_desc(unit)
                    .y_label_formatter(&|v| short_num(*v))
                    .x_label_formatter(&|v| short_num(if log { v.exp2() } else { *v }))
                    .draw()
                    .map_err(draw_err)?;
                for (i, (base, points)) in lines.iter().enumerate() {
                    let c = color(i);
                    chart
                        .draw_series(LineSeries::new(
                            points.iter().map(|p| (p.0, p.1)),
                            c.stroke_width(2),
                        ))
                        .map_err(draw_err)?
                        .label(base.clone())
                        .legend(move |(x, y)| {
                            PathElement::new(vec![(x, y), (x + 14, y)], c.stroke_width(2))
                        });
                    chart
                        .draw_series(points.iter().map(|p| {
                            ErrorBar::new_vertical(p.0, p.2, p.1, p.3, c.stroke_width(1), 8)
                        }))
                        .map_err(draw_err)?;
                    chart
                        .draw_series(
                            points
                                .iter()
                                .map(|p| Circle::new((p.0, p.1), 4, c.filled())),
                        )
                        .map_err(draw_err)?;
                }
                draw_legend(&mut chart, SeriesLabelPosition::UpperLeft, None)?;
                Ok(())
            })
        }

        /// The swept parameter, and one line per base backend (the table the points were
        /// made from), its points sorted by value.
        fn lines(figs: &[&BackendFigures]) -> (String, BTreeMap<String, Line>) {
            let mut lines: BTreeMap<String, Line> = BTreeMap::new();
            let mut parameter = String::new();
            for f in figs {
                if let Some(p) = &f.sweep {
                    parameter = p.parameter.clone();
                    lines
                        .entry(p.base_label.clone())
                        .or_default()
                        .push((p.value, f.median, f.min, f.max));
                }
            }
            for l in lines.values_mut() {
                l.sort_by(|a, b| a.0.total_cmp(&b.0));
            }
            (parameter, lines)
        }
    }
    mod throughput {
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
                        .legend(move |(x, y)| {
                            Rectangle::new([(x, y - 5), (x + 10, y + 5)], c.filled())
                        });
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
    }
    mod timeline {
        //! Throughput over time of each backend's median repetition, and the IO operations
        //! in flight below it.

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
            with_svg(|root| {
                let (upper, lower) = root.split_vertically(H * 2 / 3);
                let tmax = rates
                    .iter()
                    .flat_map(|(_, p)| p.iter().map(|x| x.0))
                    .chain(io.iter().flat_map(|(_, p)| p.iter().map(|x| x.0)))
                    .fold(0.0, f64::max)
                    .max(0.1);
                draw_rates(&upper, a.unit, stage, figs, rates, tmax)?;
                draw_io(&lower, io, tmax)
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
                    .legend(move |(x, y)| {
                        PathElement::new(vec![(x, y), (x + 14, y)], c.stroke_width(2))
                    });
            }
            draw_legend(&mut chart, SeriesLabelPosition::UpperRight, None)
        }

        fn draw_io(area: &Area, io: Series, tmax: f64) -> anyhow::Result<()> {
            let io_max = io
                .iter()
                .flat_map(|(_, p)| p.iter().map(|x| x.1))
                .fold(0.0, f64::max)
                .max(1.0)
                * 1.1;
            let mut chart = ChartBuilder::on(area)
                .caption("IO operations in flight (sampled)", ("sans-serif", 14))
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
            Ok(())
        }
    }

    use crate::analysis::Analysis;

    /// A chart: its file name (without extension) and its SVG.
    pub type Chart = (&'static str, String);

    /// The charts that apply to this run, in the report's order: throughput always,
    /// latency CDFs and the timeline when recorded, the CPU and stage breakdown, and
    /// the scaling plot for a sweep. None when no backend has a counted repetition.
    pub fn draw(a: &Analysis) -> anyhow::Result<Vec<Chart>> {
        let figs = a.measured();
        let mut charts = Vec::new();
        if figs.is_empty() {
            return Ok(charts);
        }
        charts.push(("throughput", throughput::svg(a, &figs)?));
        if figs.iter().any(|f| !f.stages.is_empty()) {
            charts.push(("latency", latency::svg(&figs)?));
        }
        if figs.iter().any(|f| f.timeline.is_some()) {
            charts.push(("timeline", timeline::svg(a, &figs)?));
        }
        charts.push(("breakdown", breakdown::svg(&figs)?));
        if figs.iter().any(|f| f.sweep.is_some()) {
            charts.push(("scaling", scaling::svg(a, &figs)?));
        }
        Ok(charts)
    }
}

mod png {
    //! SVG to PNG with resvg, in the system's fonts, so both show the same chart.

    use std::path::Path;

    use anyhow::Context;

    /// System fonts for the PNG renderer.
    pub struct Fonts {
        options: resvg::usvg::Options<'static>,
        pub warning: Option<String>,
    }

    impl Fonts {
        pub fn load() -> Fonts {
            let mut options = resvg::usvg::Options::default();
            let db = options.fontdb_mut();
            db.load_system_fonts();
            let families: Vec<String> = db
                .faces()
                .filter_map(|f| f.families.first().map(|(name, _)| name.clone()))
                .collect();
            let preferred = ["DejaVu Sans", "Liberation Sans", "Noto Sans", "FreeSans"];
            let family = preferred
                .iter()
                .find(|p| families.iter().any(|f| f == *p))
                .map(|p| p.to_string())
                .or_else(|| families.first().cloned());
            let warning = match &family {
                Some(f) => {
                    db.set_sans_serif_family(f.clone());
                    None
                }
                None => Some(
                    "no system fonts found: the PNGs have no text (the SVGs do); \
                     install fonts-dejavu-core"
                        .to_string(),
                ),
            };
            if let Some(f) = family {
                options.font_family = f;
            }
            Fonts { options, warning }
        }

        pub fn render_png(&self, svg: &str, path: &Path) -> anyhow::Result<()> {
            let tree = resvg::usvg::Tree::from_str(svg, &self.options)?;
            let size = tree.size().to_int_size();
            let mut pixmap = resvg::tiny_skia::Pixmap::new(size.width(), size.height())
                .context("an empty plot")?;
            pixmap.fill(resvg::tiny_skia::Color::WHITE);
            resvg::render(
                &tree,
                resvg::tiny_skia::Transform::default(),
                &mut pixmap.as_mut(),
            );
            pixmap.save_png(path)?;
            Ok(())
        }
    }
}

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::analysis::Analysis;
pub use decision::decision;
pub use markdown::markdown;
use plots::Chart;

/// What `write` produced.
pub struct Written {
    pub markdown: PathBuf,
    pub plots: Vec<PathBuf>,
    /// Why PNGs may lack text (no system fonts), if so.
    pub warning: Option<String>,
}

/// Writes `report.md` and the plots into `dir`.
pub fn write(analysis: &Analysis, dir: &Path) -> anyhow::Result<Written> {
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    if let Some(e) = &analysis.latency_error {
        anyhow::bail!("{e}");
    }
    let mut md = markdown(analysis);
    let charts = plots::draw(analysis)?;
    let fonts = png::Fonts::load();
    let plots = save_charts(&charts, dir, &fonts)?;
    md.push_str(&plot_links(&charts));
    let markdown = dir.join("report.md");
    fs::write(&markdown, md).with_context(|| format!("writing {}", markdown.display()))?;
    Ok(Written {
        markdown,
        plots,
        warning: fonts.warning,
    })
}

/// Each chart as `<name>.svg` and `<name>.png` in `dir`; their paths.
fn save_charts(charts: &[Chart], dir: &Path, fonts: &png::Fonts) -> anyhow::Result<Vec<PathBuf>> {
    let mut paths = Vec::new();
    for (name, svg) in charts {
        let svg_path = dir.join(format!("{name}.svg"));
        fs::write(&svg_path, svg).with_context(|| format!("writing {}", svg_path.display()))?;
        let png_path = dir.join(format!("{name}.png"));
        fonts
            .render_png(svg, &png_path)
            .with_context(|| format!("rendering {}", png_path.display()))?;
        paths.push(svg_path);
        paths.push(png_path);
    }
    Ok(paths)
}

/// The report's last section: a link to each chart.
fn plot_links(charts: &[Chart]) -> String {
    let mut md = String::new();
    let _ = writeln!(md, "\n## Plots\n");
    for (name, _) in charts {
        let _ = writeln!(md, "![{name}]({name}.png) ([SVG]({name}.svg))\n");
    }
    md
}

/// A rate with thousands separators, no decimals ("–" when not finite).
fn fmt_rate(x: f64) -> String {
    if !x.is_finite() {
        return "–".into();
    }
    let s = format!("{:.0}", x);
    let (sign, digits) = s.split_at(if s.starts_with('-') { 1 } else { 0 });
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    format!("{sign}{out}")
}

/// A latency in µs, ms or s.
fn fmt_us(us: f64) -> String {
    if us >= 1e6 {
        format!("{:.2} s", us / 1e6)
    } else if us >= 1e3 {
        format!("{:.2} ms", us / 1e3)
    } else {
        format!("{us:.1} µs")
    }
}
