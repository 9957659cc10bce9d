//! The table `harness run` prints when it ends (markdown), from the run's
//! [`Analysis`].

use std::fmt::Write as _;

use crate::analysis::{Analysis, BackendFigures};

/// The summary: one row per backend, skipped ones included, then the ceilings and
/// each backend's efficiency when the run measured them.
pub fn table(a: &Analysis) -> String {
    let mut out = throughput(a);
    if a.ceilings().is_some() {
        out.push_str(&efficiency(a));
    }
    out
}

/// Rate, MB/s, range, ratio to the baseline, peak RSS and verdict per backend.
fn throughput(a: &Analysis) -> String {
    let rate = a.unit;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "| backend | {rate} (median) | {} | MB/s read | min – max {rate} | × sequential | peak RSS | verified |",
        a.mb_unit,
    );
    let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|---:|---|");
    for f in &a.backends {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} – {} | {} | {:.1} MiB | {} |",
            f.label,
            fmt_num(f.median),
            fmt_num(f.mb_per_second),
            fmt_num(f.read_mb_per_second),
            fmt_num(f.min),
            fmt_num(f.max),
            f.ratio.map_or("–".to_string(), |r| format!("{r:.2}")),
            f.peak_rss_measured as f64 / (1 << 20) as f64,
            verdict(f),
        );
    }
    for k in &a.results.skipped {
        let _ = writeln!(
            out,
            "| {} | – | – | – | – | – | – | skipped: {} |",
            k.label, k.reason
        );
    }
    out
}

fn verdict(f: &BackendFigures) -> String {
    if f.verified {
        format!("yes ({}/{})", f.rates.len(), f.runs)
    } else {
        format!("NO ({}/{} verified)", f.rates.len(), f.runs)
    }
}

/// The ceilings, and each backend's throughput as a share of the lower one.
fn efficiency(a: &Analysis) -> String {
    let mut out = String::new();
    let Some(c) = a.ceilings() else {
        return out;
    };
    let _ = writeln!(out, "\n{}", crate::ceilings::table(c));
    let _ = writeln!(
        out,
        "| backend | efficiency (throughput / {} ceiling) |\n|---|---:|",
        c.bound_name()
    );
    for f in &a.backends {
        let _ = writeln!(
            out,
            "| {} | {:.0} % |",
            f.label,
            f.efficiency.unwrap_or(f64::NAN) * 100.0
        );
    }
    out
}

fn fmt_num(x: f64) -> String {
    if !x.is_finite() {
        "–".to_string()
    } else if x >= 100.0 {
        format!("{x:.0}")
    } else {
        format!("{x:.1}")
    }
}
