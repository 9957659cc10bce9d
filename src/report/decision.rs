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
    if let (Some(base), Some(ratio), Some((lo, hi))) = (a.baseline(), best.ratio, best.ratio_ci) {
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
