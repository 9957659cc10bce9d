//! `harness export`: a results file in formats other CI tools read.
//!
//! - `github-action-benchmark`: the action's `customBiggerIsBetter` JSON, an array
//!   of `{name, unit, value, range, extra}`, one entry per backend for its median
//!   throughput and one for its ratio to `sequential`.
//! - `bencher`: Bencher Metric Format, `{benchmark: {measure: {value,
//!   lower_value, upper_value}}}`, with measures `throughput` (95 % bootstrap CI of
//!   the median), `ratio-to-sequential` and `peak-rss`.
//! - `csv`: one row per repetition as recorded, warm-ups (marked) and failed ones
//!   (without figures) included; for backends making object-store requests also
//!   their number (every store), requests/s, the most in flight, HTTP attempts and
//!   the estimated S3 request cost ([`crate::cost::PRICES`]).

use std::fmt::Write as _;

use serde_json::{json, Map, Value};

use crate::analysis::{Analysis, LEVEL};

/// An export format (`--format`; these comments are also its `--help` text).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// github-action-benchmark's `customBiggerIsBetter` JSON: median throughput and ratio to sequential per backend
    GithubActionBenchmark,
    /// Bencher Metric Format JSON: throughput with its interval, ratio to sequential, peak RSS
    Bencher,
    /// CSV, one row per repetition, warm-ups and failed ones included
    Csv,
}

/// The export as text: the figures of the backends with counted repetitions
/// (JSON formats), or every repetition as recorded (CSV).
pub fn export(a: &Analysis, format: Format) -> anyhow::Result<String> {
    Ok(match format {
        Format::GithubActionBenchmark => github_action_benchmark(a)?,
        Format::Bencher => bencher(a)?,
        Format::Csv => csv(a),
    })
}

/// A benchmark's name: `<scenario>/<label>`.
fn name(a: &Analysis, label: &str) -> String {
    format!("{}/{}", a.results.scenario.name, label)
}

fn github_action_benchmark(a: &Analysis) -> anyhow::Result<String> {
    let mut out = Vec::new();
    for f in a.measured() {
        out.push(json!({
            "name": name(a, &f.label),
            "unit": a.unit,
            "value": f.median,
            "range": format!("{:.0}–{:.0} ({:.0} % CI)", f.ci.0, f.ci.1, LEVEL * 100.0),
            "extra": format!(
                "{} verified repetitions; min {:.0}, max {:.0}; cache {}",
                f.rates.len(), f.min, f.max, a.results.scenario.run.cache.name()
            ),
        }));
        if let Some(ratio) = f.ratio.filter(|_| !f.baseline) {
            out.push(json!({
                "name": format!("{} × sequential", name(a, &f.label)),
                "unit": "ratio",
                "value": ratio,
            }));
        }
    }
    Ok(serde_json::to_string_pretty(&out)?)
}

fn bencher(a: &Analysis) -> anyhow::Result<String> {
    let mut out = Map::new();
    for f in a.measured() {
        let mut m = Map::new();
        m.insert(
            "throughput".into(),
            json!({"value": f.median, "lower_value": f.ci.0, "upper_value": f.ci.1}),
        );
        if let (Some(ratio), Some((lo, hi))) = (f.ratio.filter(|_| !f.baseline), f.ratio_ci) {
            m.insert(
                "ratio-to-sequential".into(),
                json!({"value": ratio, "lower_value": lo, "upper_value": hi}),
            );
        }
        m.insert("peak-rss".into(), json!({"value": f.peak_rss}));
        out.insert(name(a, &f.label), Value::Object(m));
    }
    Ok(serde_json::to_string_pretty(&Value::Object(out))?)
}

/// One row per measured repetition, as recorded.
fn csv(a: &Analysis) -> String {
    let r = a.results;
    let mut s = String::from(
                "scenario,label,backend,repetition,warmup,counts,cache,wall_seconds,rate_per_second,user_seconds,system_seconds,peak_rss_bytes,threads,input_p50_us,input_p99_us,requests,requests_per_second,max_requests_in_flight,http_attempts,s3_request_cost_usd\n",
            );
    for rep in &r.repetitions {
        let m = rep.measurement.as_ref();
        let f = |x: Option<f64>| x.map_or(String::new(), |x| format!("{x}"));
        let input = m.and_then(|m| m.stages.get("input"));
        // Object-store requests: empty for backends that make none.
        let requests = m
            .filter(|m| !m.counters.requests.is_empty())
            .map(|m| {
                let n: u64 = m.counters.requests.values().map(|c| c.count).sum();
                let cost: f64 = m
                    .counters
                    .requests
                    .iter()
                    .filter_map(|(k, c)| crate::cost::PRICES.cost(k, c.count as f64))
                    .sum();
                format!(
                    "{n},{},{},{},{cost}",
                    n as f64 / m.wall_seconds,
                    m.counters.max_requests_in_flight,
                    m.counters.http_attempts
                )
            })
            .unwrap_or_else(|| ",,,,".into());
        let _ = writeln!(
            s,
            "{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{requests}",
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
