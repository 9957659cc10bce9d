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

/// A chart: its file name (without extension) and its SVG.
pub type Chart = (&'static str, String);

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
    let (little, source) = crate::analysis::littles_law(a);
    if let (false, Some(source)) = (little.is_empty(), source) {
        charts.push(("requests", requests::svg(&little, &source)?));
    }
    Ok(charts)
}
