//! The report's charts, one file each, drawn as SVG with plotters from the run's
//! [`Analysis`]; [`common`] holds what they share.

mod breakdown;
mod cluster;
mod common;
mod latency;
mod requests;
mod scaling;
mod throughput;
mod timeline;

use crate::analysis::Analysis;
pub use cluster::svg as cluster_timeline;

/// A chart: its file name (without extension), its title, what it shows (for
/// the report's text and the HTML's caption) and its SVG.
pub struct Chart {
    pub name: &'static str,
    pub title: &'static str,
    pub about: String,
    pub svg: String,
}

/// The charts that apply to this run, in the report's order: throughput always,
/// latency CDFs and the timeline when recorded, the CPU and stage breakdown, and
/// the scaling plot for a sweep, and requests/s against Little's law for a sweep
/// over `io_in_flight` that made object-store requests. None when no backend has a counted repetition.
pub fn draw(a: &Analysis) -> anyhow::Result<Vec<Chart>> {
    let figs = a.measured();
    let mut charts = Vec::new();
    if figs.is_empty() {
        return Ok(charts);
    }
    let chart = |name, title, about: &str, svg| Chart {
        name,
        title,
        about: about.to_string(),
        svg,
    };
    charts.push(chart(
        "throughput",
        "Throughput per backend",
        "one row per backend: the bar is the median of its verified repetitions (the number at \
         its end), the whisker min – max over them.",
        throughput::svg(a, &figs)?,
    ));
    if figs.iter().any(|f| !f.stages.is_empty()) {
        charts.push(chart(
            "latency",
            "Latency per stage",
            "for each stage, the fraction of items (y) done within a time (x, log axis), one \
             curve per backend: a curve further left is faster, a long flat tail is a few slow \
             items.",
            latency::svg(&figs)?,
        ));
    }
    if figs.iter().any(|f| f.timeline.is_some()) {
        charts.push(chart(
            "timeline",
            "Throughput over time",
            "each backend's median repetition: items completed per second in each bucket above, \
             IO operations in flight below, on one time axis, so stalls and ramps show.",
            timeline::svg(a, &figs)?,
        ));
    }
    charts.push(chart(
        "breakdown",
        "Where the time went",
        &format!(
            "left, CPU time per 1000 items (user and system CPU of the backend's process); \
             right, the mean wall time an item spends in each stage. {}",
            breakdown::STAGE_TEXT
        ),
        breakdown::svg(&figs)?,
    ));
    if figs.iter().any(|f| f.sweep.is_some()) {
        charts.push(chart(
            "scaling",
            "Scaling",
            "the median throughput of each swept backend against the swept value, min – max \
             as whiskers.",
            scaling::svg(a, &figs)?,
        ));
    }
    let (little, source) = crate::analysis::littles_law(a);
    if let (false, Some(source)) = (little.is_empty(), source) {
        charts.push(chart(
            "requests",
            "Requests in flight against Little's law",
            "measured object-store requests per second against io_in_flight, beside what \
             Little's law gives for that concurrency (dashed), on log–log axes.",
            requests::svg(&little, &source)?,
        ));
    }
    Ok(charts)
}
