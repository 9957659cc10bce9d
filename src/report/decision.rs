//! The report's opening: which backend won, by how much, how sure that is, and the
//! measured figure that explains it best.

use std::fmt::Write as _;

use super::fmt_rate;
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
            let _ = writeln!(
                out,
                "\nWhat separates them, from where each one's core time went (core ms per item: \
                 CPU + other CPU + idle; see *Where the time went*):\n"
            );
            for other in &ranked[1..] {
                let _ = writeln!(out, "- {}", reason(a, best, other));
            }
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

/// What separates the winner from `other`, from the split of each one's core
/// time per item ([`analysis::TimeSplit`]): the other backend took more core time
/// per item, and the difference is its extra CPU (overhead: the work is the same),
/// its extra idle time (with the kernel's iowait and the hand-overs per item as the
/// likely cause) or CPU not charged to it. Names the largest part.
fn reason(a: &Analysis, best: &BackendFigures, other: &BackendFigures) -> String {
    let (w, o) = (&best.time, &other.time);
    let extra = o.core_ms - w.core_ms;
    if !extra.is_finite() || w.core_ms <= 0.0 {
        return "its core time per item was not measured.".into();
    }
    if extra <= 0.0 {
        return format!(
            "{} took no more core time per item ({:.3} ms against {:.3}): the medians differ by less than the repetitions scatter.",
            other.label, o.core_ms, w.core_ms
        );
    }
    let cpu = o.cpu_ms - w.cpu_ms;
    let idle = o.idle_ms - w.idle_ms;
    let others = o.other_ms.unwrap_or(0.0) - w.other_ms.unwrap_or(0.0);
    let iowait = match (o.iowait_ms, w.iowait_ms) {
        (Some(x), Some(y)) => Some(x - y),
        _ => None,
    };
    let switches = |t: &analysis::TimeSplit| t.voluntary_switches + t.involuntary_switches;
    let ms = |x: f64| format!("{:+.3}", x);
    let mut parts = vec![format!("CPU {}", ms(cpu))];
    parts.push(match iowait {
        Some(io) => format!("idle {} (iowait {})", ms(idle), ms(io)),
        None => format!("idle {}", ms(idle)),
    });
    if others.abs() >= 0.01 * o.core_ms {
        parts.push(format!("other CPU {}", ms(others)));
    }
    let cause = if others > cpu.max(idle) {
        "CPU not charged to it took the difference: other processes, or the kernel's interrupt \
         and block-IO work (with a cold cache, partly for its own reads)"
            .to_string()
    } else if cpu >= idle {
        let what = a
            .ceilings()
            .and_then(|c| c.cpu_ms_per_item)
            .map_or(String::new(), |work| {
                format!(
                    " ({:.3} ms per item beyond the work itself, against {:.3} for {}; {:.2} \
                     context switches per item against {:.2})",
                    o.overhead_ms(work),
                    w.overhead_ms(work),
                    best.label,
                    switches(o),
                    switches(w)
                )
            });
        format!("mostly CPU overhead{what}")
    } else if iowait.is_some_and(|io| io > 0.5 * idle) {
        "mostly idle cores waiting for the disk (iowait)".to_string()
    } else {
        format!(
            "mostly idle cores: work was not ready for them ({:.2} context switches per item against {:.2})",
            switches(o),
            switches(w)
        )
    };
    format!(
        "{} took {extra:.3} core ms more per item ({:.3} against {:.3}, {:+.0} %): {}; {cause}.",
        other.label,
        o.core_ms,
        w.core_ms,
        extra / w.core_ms * 100.0,
        parts.join(", "),
    )
}
