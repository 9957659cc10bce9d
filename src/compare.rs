//! `harness compare BASE NEW`: a regression gate that a noisy machine cannot fool
//! easily.
//!
//! The primary metric is each backend's throughput *relative to `sequential` in the
//! same run*, so a slower or faster machine (or a busier hour) cancels out. Its
//! change is NEW's ratio over BASE's ratio. Repetitions run interleaved in rounds
//! (sequential, then each backend, then the next round), so each round gives a
//! *paired* ratio backend_k / sequential_k, in which whatever slowed that round
//! for everyone cancels too; the change's uncertainty is a seeded bootstrap of the
//! ratio of the median paired ratios of the two runs. (Runs without pairs fall
//! back to resampling the four samples independently.)
//! A backend has
//!
//! - **regressed** when the whole 95 % interval of the change lies below
//!   `1 − threshold` (slower by more than the threshold, with confidence);
//! - **improved** when it lies above `1 + threshold`;
//! - **no change** when it lies within `1 ± threshold`;
//! - **inconclusive** otherwise (too noisy to say; more repetitions would).
//!
//! Absolute throughput, p99 input latency and peak RSS are shown; absolute
//! throughput gates only when asked (`--absolute`), as it moves with the machine.
//!
//! Each run's own figures (rates, medians, paired ratios, latency, RSS) come from
//! its [`Analysis`]; only what spans the two runs is computed here.

use std::fmt::Write as _;

use crate::analysis::{Analysis, LEVEL};
use crate::stats;

/// The default threshold: changes smaller than 10 % are never called.
pub const DEFAULT_THRESHOLD: f64 = 0.10;
const SEED: u64 = 0xc0ffee;

/// What the interval of a backend's change says, against the threshold `t`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The whole interval lies below `1 − t`: slower, with confidence. Fails the gate.
    Regressed,
    /// The whole interval lies above `1 + t`.
    Improved,
    /// The whole interval lies within `1 ± t`.
    NoChange,
    /// None of the above (too noisy to say), or a regression of a figure that does
    /// not gate.
    Inconclusive,
}

impl Verdict {
    /// The verdict as the table prints it (`REGRESSED` in capitals).
    pub fn name(self) -> &'static str {
        match self {
            Verdict::Regressed => "REGRESSED",
            Verdict::Improved => "improved",
            Verdict::NoChange => "no change",
            Verdict::Inconclusive => "inconclusive",
        }
    }
}

/// One backend's comparison.
#[derive(Clone, Debug)]
pub struct Row {
    /// The `[[backend]]` label, present in both runs.
    pub label: String,
    /// Throughput relative to sequential in the baseline run: the median of the
    /// paired ratios when each run has at least two, else median / median
    /// sequential (None for the baseline itself or where a run has no measured
    /// sequential).
    pub base_ratio: Option<f64>,
    /// The same in the new run.
    pub new_ratio: Option<f64>,
    /// The gated change (new / base of the gated metric).
    pub change: f64,
    /// Bootstrap interval of `change` at [`LEVEL`].
    pub ci: (f64, f64),
    /// What `ci` says against the threshold.
    pub verdict: Verdict,
    /// What was compared: "× sequential", or the rate's unit ("fields/s",
    /// "inputs/s").
    pub metric: &'static str,
    /// Whether this row can fail the gate: the ratio to sequential always; an
    /// absolute rate (the baseline's own row) only with `--absolute`.
    pub gated: bool,
    /// Median items per second in the baseline run.
    pub base_rate: f64,
    /// Median items per second in the new run.
    pub new_rate: f64,
    /// Median p99 latency of a whole input in the baseline run, in µs (None
    /// without recorded histograms).
    pub base_p99_us: Option<f64>,
    /// The same in the new run.
    pub new_p99_us: Option<f64>,
    /// Peak RSS over the baseline run's counted repetitions, in bytes.
    pub base_rss: u64,
    /// Peak RSS over the new run's counted repetitions, in bytes.
    pub new_rss: u64,
}

/// The whole comparison.
#[derive(Clone, Debug)]
pub struct Comparison {
    /// One per label measured in both runs, in the baseline's order.
    pub rows: Vec<Row>,
    /// Labels only in the baseline run.
    pub only_base: Vec<String>,
    /// Labels only in the new run.
    pub only_new: Vec<String>,
    /// Why the comparison cannot pass whatever the figures say: a backend of the
    /// baseline missing from the new run, a backend with no counted (finished and
    /// verified) repetition in either run, an interrupted run.
    pub broken: Vec<String>,
    /// The relative change below which nothing is called (0.10 = 10 %).
    pub threshold: f64,
    /// The rate's unit: "fields/s", "inputs/s" (read-only), or "items/s" when
    /// the two runs differ.
    pub unit: &'static str,
}

impl Comparison {
    /// Whether any backend regressed.
    pub fn regressed(&self) -> bool {
        self.rows.iter().any(|r| r.verdict == Verdict::Regressed)
    }

    /// Whether the gate fails: a regression, or a run that cannot be judged.
    pub fn fails(&self) -> bool {
        self.regressed() || !self.broken.is_empty()
    }
}

/// What makes a comparison of `new` against `base` unjudgeable.
fn broken(base: &Analysis, new: &Analysis) -> Vec<String> {
    let mut out = Vec::new();
    for (r, which) in [(base, "baseline"), (new, "new run")] {
        if let Some(signal) = &r.results.interrupted {
            out.push(format!("the {which} was interrupted by {signal}"));
        }
    }
    for b in &base.backends {
        let label = &b.label;
        let Some(n) = new.backend(label) else {
            out.push(format!(
                "`{label}` is in the baseline but not in the new run"
            ));
            continue;
        };
        if let Some(s) = new.results.skipped.iter().find(|s| &s.label == label) {
            out.push(format!(
                "`{label}` was skipped in the new run: {}",
                s.reason
            ));
        } else if !n.measured() {
            out.push(format!(
                "`{label}` has no counted (finished and verified) repetition in the new run"
            ));
        }
        if !b.measured() {
            out.push(format!(
                "`{label}` has no counted repetition in the baseline: refresh the baseline"
            ));
        }
    }
    out
}

fn verdict(ci: (f64, f64), threshold: f64) -> Verdict {
    let (lo, hi) = ci;
    if !(lo.is_finite() && hi.is_finite()) {
        Verdict::Inconclusive
    } else if hi < 1.0 - threshold {
        Verdict::Regressed
    } else if lo > 1.0 + threshold {
        Verdict::Improved
    } else if lo >= 1.0 - threshold && hi <= 1.0 + threshold {
        Verdict::NoChange
    } else {
        Verdict::Inconclusive
    }
}

/// Bootstrap interval of (med(a1)/med(b1)) / (med(a0)/med(b0)).
fn ratio_of_ratios_ci(a0: &[f64], b0: &[f64], a1: &[f64], b1: &[f64]) -> (f64, f64) {
    let mut rng = stats::Rng::new(SEED);
    let mut buf = Vec::new();
    let mut med = |xs: &[f64], rng: &mut stats::Rng| stats::resample_median(xs, rng, &mut buf);
    let est = (0..stats::BOOTSTRAP_ITERATIONS)
        .map(|_| {
            let r0 = med(a0, &mut rng) / med(b0, &mut rng);
            let r1 = med(a1, &mut rng) / med(b1, &mut rng);
            r1 / r0
        })
        .collect();
    stats::interval(est, LEVEL)
}

/// Compares every backend label present in both runs.
pub fn compare(base: &Analysis, new: &Analysis, threshold: f64, absolute: bool) -> Comparison {
    let unit = if base.unit == new.unit {
        base.unit
    } else {
        "items/s"
    };
    let (base_seq, new_seq) = (base.baseline(), new.baseline());
    let mut rows = Vec::new();
    for b in &base.backends {
        let Some(n) = new.backend(&b.label) else {
            continue;
        };
        if !b.measured() || !n.measured() {
            continue;
        }
        let (br, nr) = (&b.rates, &n.rates);
        let seqs = match (base_seq, new_seq) {
            (Some(bs), Some(ns)) if !b.baseline => {
                (bs.measured() && ns.measured()).then_some((&bs.rates, &ns.rates))
            }
            _ => None,
        };
        let pairs = seqs.and_then(|_| {
            let (pb, pn) = (&b.paired_ratios, &n.paired_ratios);
            (pb.len() >= 2 && pn.len() >= 2).then_some((pb, pn))
        });
        let (base_ratio, new_ratio) = match (pairs, seqs) {
            (Some((pb, pn)), _) => (Some(stats::median(pb)), Some(stats::median(pn))),
            (None, Some((bs, ns))) => (
                Some(b.median / stats::median(bs)),
                Some(n.median / stats::median(ns)),
            ),
            (None, None) => (None, None),
        };
        let abs_change = n.median / b.median;
        let abs_ci = stats::ratio_ci(nr, br, LEVEL, SEED);
        let (change, ci, metric, gate) = match (seqs, base_ratio, new_ratio) {
            (Some((bs, ns)), Some(b0), Some(n0)) => (
                n0 / b0,
                match pairs {
                    Some((pb, pn)) => stats::ratio_ci(pn, pb, LEVEL, SEED),
                    None => ratio_of_ratios_ci(br, bs, nr, ns),
                },
                "× sequential",
                true,
            ),
            // The baseline itself (or no baseline): absolute, gated only if asked.
            _ => (abs_change, abs_ci, unit, absolute),
        };
        let mut v = verdict(ci, threshold);
        if !gate && v == Verdict::Regressed {
            // Shown, never gating: absolute figures move with the machine.
            v = Verdict::Inconclusive;
        }
        if absolute && gate && verdict(abs_ci, threshold) == Verdict::Regressed {
            v = Verdict::Regressed;
        }
        rows.push(Row {
            label: b.label.clone(),
            base_ratio,
            new_ratio,
            change,
            ci,
            verdict: v,
            metric,
            gated: gate,
            base_rate: b.median,
            new_rate: n.median,
            base_p99_us: b.input_p99_us,
            new_p99_us: n.input_p99_us,
            base_rss: b.peak_rss,
            new_rss: n.peak_rss,
        });
    }
    let labels =
        |a: &Analysis| -> Vec<String> { a.backends.iter().map(|f| f.label.clone()).collect() };
    let (bl, nl) = (labels(base), labels(new));
    Comparison {
        rows,
        only_base: bl.iter().filter(|l| !nl.contains(l)).cloned().collect(),
        only_new: nl.iter().filter(|l| !bl.contains(l)).cloned().collect(),
        broken: broken(base, new),
        threshold,
        unit,
    }
}

fn pct(x: f64) -> String {
    if x.is_finite() {
        format!("{:+.1} %", (x - 1.0) * 100.0)
    } else {
        "–".into()
    }
}

/// The comparison as a markdown table with a one-line verdict.
pub fn markdown(c: &Comparison) -> String {
    let mut md = String::new();
    // Absolute figures move with the machine: they gate only with --absolute.
    let rate_gated = c.rows.iter().any(|r| r.gated && r.metric != "× sequential");
    let _ = writeln!(
        md,
        "| backend | base × seq (paired) | new × seq (paired) | change | {:.0} % CI | verdict | base {unit}{g} | new {unit}{g} | p99 input latency base → new (not gated) | peak RSS base → new (not gated) |",
        LEVEL * 100.0,
        unit = c.unit,
        g = if rate_gated { "" } else { " (not gated)" },
    );
    let _ = writeln!(md, "|---|---:|---:|---:|---:|---|---:|---:|---:|---:|");
    let f2 = |x: Option<f64>| x.map_or("–".into(), |x| format!("{x:.2}"));
    let us = |x: Option<f64>| x.map_or("–".into(), |x| format!("{:.0} µs", x));
    for r in &c.rows {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} ({}) | {} … {} | {} | {:.0} | {:.0} | {} → {} | {:.1} → {:.1} MiB |",
            r.label,
            f2(r.base_ratio),
            f2(r.new_ratio),
            pct(r.change),
            r.metric,
            pct(r.ci.0),
            pct(r.ci.1),
            match r.gated {
                true => r.verdict.name().to_string(),
                false => format!(
                    "not gated (interval: {})",
                    verdict(r.ci, c.threshold).name()
                ),
            },
            r.base_rate,
            r.new_rate,
            us(r.base_p99_us),
            us(r.new_p99_us),
            r.base_rss as f64 / (1u64 << 20) as f64,
            r.new_rss as f64 / (1u64 << 20) as f64,
        );
    }
    if !c.broken.is_empty() {
        let _ = writeln!(md, "\nFAILED: the runs cannot be compared:");
        for b in &c.broken {
            let _ = writeln!(md, "- {b}");
        }
    }
    for l in &c.only_new {
        let _ = writeln!(md, "\n`{l}` is only in the new run (not compared).");
    }
    let regressed: Vec<&str> = c
        .rows
        .iter()
        .filter(|r| r.verdict == Verdict::Regressed)
        .map(|r| r.label.as_str())
        .collect();
    let _ = writeln!(
        md,
        "\n× seq (paired): the median over rounds of the backend's rate / sequential's in \
         the same round (the run summary's × sequential is a ratio of medians, and can \
         differ). change: new / base of the gated figure; verdict: where its {:.0} % interval \
         lies against ±{:.0} % (inconclusive: it straddles a bound).",
        LEVEL * 100.0,
        c.threshold * 100.0
    );
    // Every gated verdict inconclusive: the gate could not have seen a regression
    // of the threshold's size, and says so rather than only "no regression".
    let undecided = c.rows.iter().any(|r| r.gated)
        && c.rows
            .iter()
            .filter(|r| r.gated)
            .all(|r| r.verdict == Verdict::Inconclusive);
    let widest = c
        .rows
        .iter()
        .filter(|r| r.gated && r.ci.0.is_finite() && r.ci.1.is_finite())
        .map(|r| (r.ci.1 - r.ci.0) * 100.0)
        .fold(0.0, f64::max);
    let _ = writeln!(
        md,
        "\n{}",
        if !c.broken.is_empty() {
            "The gate fails: a broken run never passes.".to_string()
        } else if regressed.is_empty() && undecided {
            format!(
                "UNDECIDED: no regression beyond {:.0} % was found, but no backend's interval \
                 was narrow enough for any verdict (the widest spans {widest:.0} points): this \
                 run could not have caught a {:.0} % regression either.",
                c.threshold * 100.0,
                c.threshold * 100.0
            )
        } else if regressed.is_empty() {
            format!(
                "No regression beyond {:.0} % with {:.0} % confidence.",
                c.threshold * 100.0,
                LEVEL * 100.0
            )
        } else {
            format!(
                "REGRESSED beyond {:.0} % with {:.0} % confidence: {}.",
                c.threshold * 100.0,
                LEVEL * 100.0,
                regressed.join(", ")
            )
        }
    );
    md
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_committed_schema_2_baseline_compares_with_itself() {
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("results/baselines/ci.json");
        let r = crate::results::Results::load(&path).unwrap();
        assert_eq!(r.schema_version, 2);
        let a = Analysis::of(&r);
        let c = compare(&a, &a, DEFAULT_THRESHOLD, false);
        assert!(c.broken.is_empty() && !c.fails(), "{}", markdown(&c));
        assert_eq!(c.rows.len(), r.scenario.backends.len());
        for row in &c.rows {
            assert_eq!(row.change, 1.0, "{}", row.label);
            let gated = if row.label == "sequential" {
                "fields/s"
            } else {
                "× sequential"
            };
            assert_eq!(row.metric, gated);
        }
    }

    #[test]
    fn the_table_says_what_is_gated_and_when_nothing_could_be_decided() {
        let row = |label: &str, gated: bool, ci: (f64, f64)| Row {
            label: label.into(),
            base_ratio: gated.then_some(1.2),
            new_ratio: gated.then_some(1.1),
            change: 0.92,
            ci,
            verdict: match gated {
                true => verdict(ci, 0.1),
                false => Verdict::Inconclusive,
            },
            metric: if gated { "× sequential" } else { "fields/s" },
            gated,
            base_rate: 100.0,
            new_rate: 60.0,
            base_p99_us: None,
            new_p99_us: None,
            base_rss: 0,
            new_rss: 0,
        };
        let mut c = Comparison {
            rows: vec![
                row("sequential", false, (0.58, 0.83)),
                row("uring", true, (0.76, 1.18)),
            ],
            only_base: vec![],
            only_new: vec![],
            broken: vec![],
            threshold: 0.1,
            unit: "fields/s",
        };
        let md = markdown(&c);
        // The absolute figure fell beyond the threshold but never gates: said so.
        assert!(md.contains("not gated (interval: REGRESSED)"), "{md}");
        assert!(md.contains("base fields/s (not gated)"), "{md}");
        assert!(md.contains("median over rounds"), "{md}");
        assert!(
            md.contains("UNDECIDED") && md.contains("spans 42 points"),
            "{md}"
        );
        assert!(!c.fails());
        // One gated verdict decided: not undecided.
        c.rows[1] = row("uring", true, (0.95, 1.04));
        let md = markdown(&c);
        assert!(
            !md.contains("UNDECIDED") && md.contains("No regression beyond 10 %"),
            "{md}"
        );
    }

    #[test]
    fn verdicts_follow_the_interval_and_threshold() {
        assert_eq!(verdict((0.70, 0.85), 0.1), Verdict::Regressed);
        assert_eq!(verdict((0.85, 0.95), 0.1), Verdict::Inconclusive);
        assert_eq!(verdict((0.95, 1.05), 0.1), Verdict::NoChange);
        assert_eq!(verdict((1.15, 1.30), 0.1), Verdict::Improved);
        assert_eq!(verdict((f64::NAN, 1.0), 0.1), Verdict::Inconclusive);
    }

    #[test]
    fn ratio_of_ratios_cancels_a_uniformly_slower_machine() {
        // The new machine is 30 % slower for both backends: no change in the ratio.
        let a0 = [200.0, 202.0, 198.0, 201.0, 199.0];
        let b0 = [100.0, 101.0, 99.0, 100.5, 99.5];
        let a1: Vec<f64> = a0.iter().map(|x| x * 0.7).collect();
        let b1: Vec<f64> = b0.iter().map(|x| x * 0.7).collect();
        let (lo, hi) = ratio_of_ratios_ci(&a0, &b0, &a1, &b1);
        assert!(lo > 0.97 && hi < 1.03, "({lo}, {hi})");
        assert_eq!(verdict((lo, hi), 0.1), Verdict::NoChange);
        // Only the backend got slower: regressed.
        let a2: Vec<f64> = a0.iter().map(|x| x * 0.6).collect();
        let (lo, hi) = ratio_of_ratios_ci(&a0, &b0, &a2, &b0);
        assert!(hi < 0.9, "({lo}, {hi})");
    }
}
