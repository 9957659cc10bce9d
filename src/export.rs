//! `harness export`: a results file in formats other CI tools read.
//!
//! - `github-action-benchmark`: the action's `customBiggerIsBetter` JSON, an array
//!   of `{name, unit, value, range, extra}`, one entry per backend for its median
//!   throughput and one for its ratio to `sequential`.
//! - `bencher`: Bencher Metric Format, `{benchmark: {measure: {value,
//!   lower_value, upper_value}}}`, with measures `throughput` (95 % bootstrap CI of
//!   the median), `ratio-to-sequential` and `peak-rss`.
//! - `csv`: one row per measured repetition.

use std::fmt::Write as _;

use serde_json::{json, Map, Value};

use crate::report::{self, LEVEL};
use crate::results::Results;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    GithubActionBenchmark,
    Bencher,
    Csv,
}

fn unit(r: &Results) -> &'static str {
    match r.scenario.workload {
        crate::scenario::WorkloadKind::Rechunk => "fields/s",
        crate::scenario::WorkloadKind::ReadOnly => "inputs/s",
    }
}

/// The export as text.
pub fn export(r: &Results, format: Format) -> anyhow::Result<String> {
    let figs = report::figures(r)?;
    let seq = figs.iter().find(|f| f.name == "sequential");
    let name = |label: &str| format!("{}/{}", r.scenario.name, label);
    Ok(match format {
        Format::GithubActionBenchmark => {
            let mut out = Vec::new();
            for f in &figs {
                out.push(json!({
                    "name": name(&f.label),
                    "unit": unit(r),
                    "value": f.median,
                    "range": format!("{:.0}–{:.0} ({:.0} % CI)", f.ci.0, f.ci.1, LEVEL * 100.0),
                    "extra": format!(
                        "{} verified repetitions; min {:.0}, max {:.0}; cache {}",
                        f.rates.len(), f.min, f.max, r.scenario.run.cache.name()
                    ),
                }));
                if let Some(s) = seq.filter(|s| s.label != f.label) {
                    out.push(json!({
                        "name": format!("{} × sequential", name(&f.label)),
                        "unit": "ratio",
                        "value": f.median / s.median,
                    }));
                }
            }
            serde_json::to_string_pretty(&out)?
        }
        Format::Bencher => {
            let mut out = Map::new();
            for f in &figs {
                let mut m = Map::new();
                m.insert(
                    "throughput".into(),
                    json!({"value": f.median, "lower_value": f.ci.0, "upper_value": f.ci.1}),
                );
                if let Some(s) = seq.filter(|s| s.label != f.label) {
                    let (lo, hi) = crate::stats::ratio_ci(&f.rates, &s.rates, LEVEL, 0x5eed);
                    m.insert(
                        "ratio-to-sequential".into(),
                        json!({"value": f.median / s.median, "lower_value": lo, "upper_value": hi}),
                    );
                }
                m.insert("peak-rss".into(), json!({"value": f.peak_rss}));
                out.insert(name(&f.label), Value::Object(m));
            }
            serde_json::to_string_pretty(&Value::Object(out))?
        }
        Format::Csv => {
            let mut s = String::from(
                "scenario,label,backend,repetition,warmup,counts,cache,wall_seconds,rate_per_second,user_seconds,system_seconds,peak_rss_bytes,threads,input_p50_us,input_p99_us\n",
            );
            for rep in &r.repetitions {
                let m = rep.measurement.as_ref();
                let f = |x: Option<f64>| x.map_or(String::new(), |x| format!("{x}"));
                let input = m.and_then(|m| m.stages.get("input"));
                let _ = writeln!(
                    s,
                    "{},{},{},{},{},{},{},{},{},{},{},{},{},{},{}",
                    r.scenario.name,
                    rep.label,
                    rep.backend,
                    rep.index + 1,
                    rep.warmup,
                    rep.counts,
                    rep.cache.requested.name(),
                    f(m.map(|m| m.wall_seconds)),
                    f(m.map(|m| m.items_per_second)),
                    f(m.map(|m| m.user_seconds)),
                    f(m.map(|m| m.system_seconds)),
                    m.map_or(String::new(), |m| m.peak_rss_bytes.to_string()),
                    m.map_or(String::new(), |m| m.threads.to_string()),
                    f(input.map(|i| i.p50_us)),
                    f(input.map(|i| i.p99_us)),
                );
            }
            s
        }
    })
}
