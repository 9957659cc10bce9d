//! `harness compare BASE NEW` and `harness run --compare`: a regression gate that
//! still decides on a busy machine, and says so when it cannot.
//!
//! Each backend is judged on several **figures**, each with its own threshold and
//! verdict (see [`Kind`]):
//!
//! - **time × seq (paired)**: its throughput relative to `sequential` in the same
//!   round, the median over rounds. A slower machine, or a busier minute, cancels
//!   out. It gates only where the machine left the backend the cores it used in the
//!   baseline: a neighbour keeping one core of two busy takes capacity from a
//!   two-core design and not from a one-core one, which no pairing cancels.
//! - **CPU per item × seq (paired)**: CPU seconds (user + system) per item over
//!   sequential's in the same round: what the design costs, which a neighbour
//!   disturbs much less than wall time.
//! - **voluntary switches per item**, **IO operations per item**, **peak RSS**:
//!   what the design does per item, nearly free of the machine's noise.
//!
//! A figure's change is NEW / BASE; its uncertainty a seeded bootstrap interval
//! (of the trimmed geometric means of the paired ratios of the two runs where
//! there are pairs, else of the medians). This machine's speed scatters by about
//! 11 % from one repetition to the next (measured: a fixed loop of 0.13 s took
//! 0.129–0.167 s over 30 runs), not in step between repetitions seconds apart, so
//! pairing removes drift but not that scatter; only more rounds narrow the
//! interval. Against its threshold `t` a figure has
//!
//! - **REGRESSED** when the change is worse than `t` and the interval excludes no
//!   change (a significant change, larger than the threshold). Fails the gate.
//! - **improved**: the same the other way;
//! - **no change** when the change is within `t` and the interval spans at most
//!   `2 t` (measured finely enough to have seen a change of `t`);
//! - **inconclusive** otherwise: too noisy to say.
//!
//! The run's [`Decision`]: regressed (exit 1) if any gated figure regressed; else
//! undecided (exit 2) if any gated figure is inconclusive; else passed (exit 0). With
//! `harness run --compare`, rounds are added while any gated interval is wider than
//! `2 t` ([`Comparison::needs_more_rounds`]), up to a time cap; a run that must stop
//! before then is undecided, with the noise it measured (other processes' load and
//! steal from `/proc/stat`, the widest interval).
//!
//! Absolute throughput and p99 input latency are shown, never gated unless asked
//! (`--absolute` gates the baseline's own absolute throughput): they move with the
//! machine.

use std::fmt::Write as _;

use crate::analysis::{Analysis, LEVEL};
use crate::results::{Measurement, Results};
use crate::stats;

/// The default threshold of the time figure: changes smaller than 10 % are never
/// called.
pub const DEFAULT_THRESHOLD: f64 = 0.10;
const SEED: u64 = 0xc0ffee;

/// How many cores a backend may lack (against what it used in the baseline) with
/// its time figure still compared: the coarse clock's and the harness's own slack.
const CORE_SLACK: f64 = 0.25;

/// What the interval of a figure's change says, against its threshold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Worse than the threshold, and the interval excludes no change. Fails the gate.
    Regressed,
    /// Better than the threshold, and the interval excludes no change.
    Improved,
    /// Within the threshold, measured to within it (the interval spans at most
    /// twice the threshold).
    NoChange,
    /// None of the above: too noisy to say.
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

/// What a figure measures; each has its own threshold, direction and definition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Throughput over sequential's in the same round (the median over rounds);
    /// the baseline's own row: its absolute rate.
    Time,
    /// CPU seconds (user + system) per item over sequential's in the same round;
    /// the baseline's own row: µs per item (not gated).
    Cpu,
    /// Voluntary context switches per item (waits: hand-overs, locks, IO).
    Switches,
    /// Reads and writes (or requests) the backend issued, per item.
    IoOps,
    /// Peak resident set of the process, in MiB.
    Rss,
}

impl Kind {
    /// Every kind, in the order the table shows them.
    pub const ALL: [Kind; 5] = [
        Kind::Time,
        Kind::Cpu,
        Kind::Switches,
        Kind::IoOps,
        Kind::Rss,
    ];

    /// The figure's name in the table.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Time => "time × seq (paired)",
            Kind::Cpu => "CPU per item × seq (paired)",
            Kind::Switches => "voluntary switches per item",
            Kind::IoOps => "IO operations per item",
            Kind::Rss => "peak RSS (MiB)",
        }
    }

    /// How the figure is computed, once, below the table.
    pub fn definition(self) -> &'static str {
        match self {
            Kind::Time => {
                "the backend's items/s over sequential's in the same round, averaged over \
                 rounds as a trimmed geometric mean (the highest and lowest 10 % of rounds \
                 left out), which scatters less than a median; the run summary's × \
                 sequential is a ratio of medians and can differ; higher is better"
            }
            Kind::Cpu => {
                "the backend's CPU seconds (user + system, every thread) per item over \
                 sequential's in the same round, averaged over rounds as the time figure; \
                 lower is better"
            }
            Kind::Switches => {
                "voluntary context switches of the process per item, the median over \
                 repetitions, compared with 0.1 added to both so that near-zero counts do \
                 not gate; lower is better"
            }
            Kind::IoOps => {
                "the reads and writes the backend issued (requests, for a store) per item, \
                 the median over repetitions; lower is better"
            }
            Kind::Rss => {
                "the process's peak resident set, the median over repetitions, compared \
                 with 8 MiB added to both so that a few MiB on a small process do not \
                 gate; lower is better"
            }
        }
    }

    /// The default threshold: the time figure's is the run's `--threshold`; the
    /// others are set from what a CPU hog beside the gate moved them by (README,
    /// "Regression gate"): CPU per item up to 10 %, the others a few per cent.
    pub fn default_threshold(self, time: f64) -> f64 {
        match self {
            Kind::Time => time,
            Kind::Cpu => 0.20,
            Kind::Switches => 0.25,
            Kind::IoOps => 0.10,
            Kind::Rss => 0.25,
        }
    }

    fn higher_is_better(self) -> bool {
        self == Kind::Time
    }

    /// Added to both sides before the ratio is taken.
    fn floor(self) -> f64 {
        match self {
            Kind::Switches => 0.1,
            Kind::Rss => 8.0,
            _ => 0.0,
        }
    }

    /// The figure of one repetition, unpaired.
    fn of(self, m: &Measurement) -> f64 {
        let items = m.outcome.inputs.max(1) as f64;
        match self {
            Kind::Time => m.items_per_second,
            Kind::Cpu => (m.user_seconds + m.system_seconds) / items,
            Kind::Switches => m.voluntary_switches as f64 / items,
            Kind::IoOps => {
                let requests: u64 = m.counters.requests.values().map(|r| r.count).sum();
                (m.counters.reads + m.counters.writes).max(requests) as f64 / items
            }
            Kind::Rss => m.peak_rss_bytes as f64 / (1u64 << 20) as f64,
        }
    }
}

/// One figure of one backend.
#[derive(Clone, Debug)]
pub struct Figure {
    /// What it is.
    pub kind: Kind,
    /// Its name in the table: the kind's, or the unit of an absolute figure (the
    /// baseline backend's own rate and CPU time).
    pub name: String,
    /// Its value in the baseline run (a median, or the median paired ratio).
    pub base: f64,
    /// The same in the new run.
    pub new: f64,
    /// NEW / BASE (with the kind's floor added to both).
    pub change: f64,
    /// Bootstrap interval of `change` at [`LEVEL`].
    pub ci: (f64, f64),
    /// The relative change below which nothing is called.
    pub threshold: f64,
    /// What `ci` says against `threshold`.
    pub verdict: Verdict,
    /// `None` when the figure gates; else why it does not.
    pub not_gated: Option<String>,
}

impl Figure {
    /// Whether this figure can fail (or leave undecided) the gate.
    pub fn gated(&self) -> bool {
        self.not_gated.is_none()
    }

    /// Whether its interval spans at most twice its threshold.
    fn precise(&self) -> bool {
        let (lo, hi) = self.ci;
        lo.is_finite() && hi.is_finite() && hi - lo <= 2.0 * self.threshold + 1e-12
    }
}

/// One backend's comparison.
#[derive(Clone, Debug)]
pub struct Row {
    /// The `[[backend]]` label, present in both runs.
    pub label: String,
    /// Its figures, in [`Kind::ALL`]'s order (those that could be computed).
    pub figures: Vec<Figure>,
    /// Median items per second in the baseline run.
    pub base_rate: f64,
    /// Median items per second in the new run.
    pub new_rate: f64,
    /// Median p99 latency of a whole input in the baseline run, in µs (None
    /// without recorded histograms).
    pub base_p99_us: Option<f64>,
    /// The same in the new run.
    pub new_p99_us: Option<f64>,
}

impl Row {
    /// The figure of a kind, if computed.
    pub fn figure(&self, kind: Kind) -> Option<&Figure> {
        self.figures.iter().find(|f| f.kind == kind)
    }
}

/// How busy the machine was during a run: the medians over its counted
/// repetitions (`None` where the results do not record it).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Noise {
    /// Cores of the machine.
    pub cores: usize,
    /// Cores' worth of CPU other processes used.
    pub other_cores: Option<f64>,
    /// Cores' worth of steal time.
    pub steal_cores: Option<f64>,
}

impl Noise {
    /// The noise of a run.
    pub fn of(results: &Results) -> Noise {
        let loads: Vec<_> = results
            .repetitions
            .iter()
            .filter(|r| !r.warmup && r.counts)
            .filter_map(|r| r.measurement.as_ref()?.machine_load)
            .collect();
        let med = |f: fn(&crate::machine::MachineLoad) -> f64| {
            (!loads.is_empty()).then(|| stats::median(&loads.iter().map(f).collect::<Vec<_>>()))
        };
        Noise {
            cores: results.machine.cores.max(1),
            other_cores: med(|l| l.other_cores),
            steal_cores: med(|l| l.steal_cores),
        }
    }

    /// Cores left to the run: all of them less what others used (all of them
    /// when unrecorded, as in results written before it was).
    pub fn free_cores(&self) -> f64 {
        self.cores as f64 - self.other_cores.unwrap_or(0.0)
    }

    fn describe(&self) -> String {
        match (self.other_cores, self.steal_cores) {
            (Some(o), Some(s)) => format!(
                "other processes used {o:.2} of {} cores, steal {s:.2} cores (medians over repetitions)",
                self.cores
            ),
            _ => format!("{} cores; the load of other processes was not recorded", self.cores),
        }
    }
}

/// What the gate concludes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Every gated figure decided, none regressed. Exit 0.
    Passed,
    /// These `backend: figure` regressed. Exit 1.
    Regressed(Vec<String>),
    /// No regression found, but these `backend: figure` could not be decided.
    /// Exit 2.
    Undecided(Vec<String>),
    /// The runs cannot be compared ([`Comparison::broken`]). Exit 1.
    Broken,
}

impl Decision {
    /// The process exit code: 0 passed, 1 regressed or broken, 2 undecided.
    pub fn exit_code(&self) -> u8 {
        match self {
            Decision::Passed => 0,
            Decision::Regressed(_) | Decision::Broken => 1,
            Decision::Undecided(_) => 2,
        }
    }
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
    /// The time figure's threshold (0.10 = 10 %).
    pub threshold: f64,
    /// The rate's unit: "fields/s", "inputs/s" (read-only), or "items/s" when
    /// the two runs differ.
    pub unit: &'static str,
    /// How busy the machine was in each run.
    pub noise: (Noise, Noise),
    /// Rounds counted in the new run, and the rounds record when it added some.
    pub rounds: (u32, Option<crate::results::Rounds>),
    /// The drift allowance of each paired figure ([`drift`]), from the baseline.
    pub drifts: Vec<(Kind, f64)>,
}

impl Comparison {
    /// Every gated figure with its backend.
    fn gated(&self) -> impl Iterator<Item = (&Row, &Figure)> {
        self.rows
            .iter()
            .flat_map(|r| r.figures.iter().map(move |f| (r, f)))
            .filter(|(_, f)| f.gated())
    }

    /// What the gate concludes.
    pub fn decision(&self) -> Decision {
        if !self.broken.is_empty() {
            return Decision::Broken;
        }
        let named = |v: Verdict| -> Vec<String> {
            self.gated()
                .filter(|(_, f)| f.verdict == v)
                .map(|(r, f)| format!("{}: {}", r.label, f.kind.name()))
                .collect()
        };
        let regressed = named(Verdict::Regressed);
        if !regressed.is_empty() {
            return Decision::Regressed(regressed);
        }
        let undecided = named(Verdict::Inconclusive);
        if !undecided.is_empty() {
            return Decision::Undecided(undecided);
        }
        Decision::Passed
    }

    /// Whether the gate fails: a regression, or a run that cannot be judged.
    pub fn fails(&self) -> bool {
        matches!(self.decision(), Decision::Regressed(_) | Decision::Broken)
    }

    /// Whether another round would help: the runs can be compared and some gated
    /// figure's interval is wider than twice its threshold. The stopping rule looks
    /// at the intervals' widths only, never at where they lie, so stopping early
    /// does not bias the verdicts.
    pub fn needs_more_rounds(&self) -> bool {
        self.broken.is_empty() && self.gated().any(|(_, f)| !f.precise())
    }

    /// The widest gated interval, in percentage points, with its backend and figure.
    pub fn widest(&self) -> Option<(f64, String)> {
        self.gated()
            .map(|(r, f)| {
                let (lo, hi) = f.ci;
                let w = if lo.is_finite() && hi.is_finite() {
                    (hi - lo) * 100.0
                } else {
                    f64::INFINITY
                };
                (w, format!("{}: {}", r.label, f.kind.name()))
            })
            .max_by(|a, b| a.0.total_cmp(&b.0))
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

/// The verdict of a change with interval `ci` against threshold `t`.
fn verdict(change: f64, ci: (f64, f64), t: f64, higher_is_better: bool) -> Verdict {
    let (lo, hi) = ci;
    if !(change.is_finite() && lo.is_finite() && hi.is_finite()) {
        return Verdict::Inconclusive;
    }
    // Worse / better beyond the threshold, and the interval excludes 1.
    let (worse, better) = match higher_is_better {
        true => (change < 1.0 - t && hi < 1.0, change > 1.0 + t && lo > 1.0),
        false => (change > 1.0 + t && lo > 1.0, change < 1.0 - t && hi < 1.0),
    };
    if worse {
        Verdict::Regressed
    } else if better {
        Verdict::Improved
    } else if (change - 1.0).abs() <= t && hi - lo <= 2.0 * t + 1e-12 {
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

/// A label's counted repetitions: (round, measurement).
fn counted<'a>(r: &'a Results, label: &str) -> Vec<(u32, &'a Measurement)> {
    r.repetitions
        .iter()
        .filter(|x| x.label == label && !x.warmup && x.counts)
        .filter_map(|x| Some((x.index, x.measurement.as_ref()?)))
        .collect()
}

/// `kind` of `label` over that of `base` in the same round: (round, ratio).
fn paired_by_round(r: &Results, label: &str, base: &str, kind: Kind) -> Vec<(u32, f64)> {
    let bs = counted(r, base);
    counted(r, label)
        .into_iter()
        .filter_map(|(i, m)| {
            let (_, b) = bs.iter().find(|(j, _)| *j == i)?;
            Some((i, kind.of(m) / kind.of(b)))
        })
        .filter(|(_, x)| x.is_finite() && *x > 0.0)
        .collect()
}

/// `kind` of `label` over that of `base` in the same round, per round.
fn paired(r: &Results, label: &str, base: &str, kind: Kind) -> Vec<f64> {
    paired_by_round(r, label, base, kind)
        .into_iter()
        .map(|(_, x)| x)
        .collect()
}

/// Consecutive rounds per block when the baseline's drift is estimated.
pub const DRIFT_BLOCK: usize = 5;

/// The drift allowance where the baseline has too few rounds to estimate its own
/// (fewer than three blocks): about what 40 quiet rounds on the CI machine gave.
pub const DEFAULT_DRIFT: f64 = 0.04;

/// How far a paired figure's level wanders between runs beyond its round-to-round
/// scatter: the machine's state (a neighbour VM, its memory traffic) changes over
/// minutes and moves the designs' ratios apart, which a run's own bootstrap cannot
/// see. From the baseline: the variance of the means of blocks of [`DRIFT_BLOCK`]
/// consecutive rounds less what their scatter within blocks explains, pooled over
/// the backends (root mean square), as a standard deviation in the logarithm.
pub fn drift(base: &Results, seq: &str, kind: Kind) -> f64 {
    let mut pooled = Vec::new();
    for spec in base.scenario.backends.iter().filter(|b| b.label != seq) {
        let mut rounds = paired_by_round(base, &spec.label, seq, kind);
        rounds.sort_by_key(|(i, _)| *i);
        let logs: Vec<f64> = rounds.iter().map(|(_, x)| x.ln()).collect();
        let blocks: Vec<&[f64]> = logs.chunks_exact(DRIFT_BLOCK).collect();
        if blocks.len() < 3 {
            continue;
        }
        let mean = |xs: &[f64]| xs.iter().sum::<f64>() / xs.len() as f64;
        let var = |xs: &[f64]| {
            let m = mean(xs);
            xs.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (xs.len() - 1) as f64
        };
        let within = blocks.iter().map(|b| var(b)).sum::<f64>() / blocks.len() as f64;
        let means: Vec<f64> = blocks.iter().map(|b| mean(b)).collect();
        pooled.push((var(&means) - within / DRIFT_BLOCK as f64).max(0.0));
    }
    if pooled.is_empty() {
        DEFAULT_DRIFT
    } else {
        (pooled.iter().sum::<f64>() / pooled.len() as f64).sqrt()
    }
}

/// `ci` around `change` widened on each side by the drift allowance (a standard
/// deviation in the logarithm), added in quadrature at the interval's level.
fn widen(change: f64, ci: (f64, f64), drift: f64) -> (f64, f64) {
    if !(change > 0.0 && ci.0 > 0.0 && ci.1 > 0.0) {
        return ci;
    }
    let z = 1.959_964 * drift;
    let (c, lo, hi) = (change.ln(), ci.0.ln(), ci.1.ln());
    let side = |h: f64| (h * h + z * z).sqrt();
    ((c - side(c - lo)).exp(), (c + side(hi - c)).exp())
}

/// A paired figure (`kind` of the backend over the baseline backend's, per round):
/// (base, new, change, interval).
fn paired_figure(
    base: &Results,
    new: &Results,
    label: &str,
    seq: &str,
    kind: Kind,
) -> (f64, f64, f64, (f64, f64)) {
    let (pb, pn) = (
        paired(base, label, seq, kind),
        paired(new, label, seq, kind),
    );
    if pb.len() >= 2 && pn.len() >= 2 {
        let (b, n) = (stats::trimmed_geomean(&pb), stats::trimmed_geomean(&pn));
        return (b, n, n / b, stats::trimmed_ratio_ci(&pn, &pb, LEVEL, SEED));
    }
    // Fewer than two pairs in a run: the four samples, resampled independently.
    let vals = |r: &Results, l: &str| -> Vec<f64> {
        counted(r, l).into_iter().map(|(_, m)| kind.of(m)).collect()
    };
    let (a0, b0, a1, b1) = (
        vals(base, label),
        vals(base, seq),
        vals(new, label),
        vals(new, seq),
    );
    let (b, n) = (
        stats::median(&a0) / stats::median(&b0),
        stats::median(&a1) / stats::median(&b1),
    );
    (b, n, n / b, ratio_of_ratios_ci(&a0, &b0, &a1, &b1))
}

/// An unpaired figure (the median of `kind` per repetition, with its floor):
/// (base, new, change, interval).
fn plain_figure(
    base: &Results,
    new: &Results,
    label: &str,
    kind: Kind,
) -> (f64, f64, f64, (f64, f64)) {
    let vals = |r: &Results| -> Vec<f64> {
        counted(r, label)
            .into_iter()
            .map(|(_, m)| kind.of(m))
            .collect()
    };
    let (b, n) = (vals(base), vals(new));
    let floored = |xs: &[f64]| xs.iter().map(|x| x + kind.floor()).collect::<Vec<_>>();
    let (mb, mn) = (stats::median(&b), stats::median(&n));
    let change = (mn + kind.floor()) / (mb + kind.floor());
    (
        mb,
        mn,
        change,
        stats::ratio_ci(&floored(&n), &floored(&b), LEVEL, SEED),
    )
}

/// Compares every backend label present in both runs; `threshold` is the time
/// figure's; `absolute` also gates the baseline backend's absolute throughput.
pub fn compare(base: &Analysis, new: &Analysis, threshold: f64, absolute: bool) -> Comparison {
    let unit = if base.unit == new.unit {
        base.unit
    } else {
        "items/s"
    };
    let (br, nr) = (base.results, new.results);
    let noise = (Noise::of(br), Noise::of(nr));
    let free = noise.0.free_cores().min(noise.1.free_cores());
    let other = noise.1.other_cores.unwrap_or(0.0);
    let seq = match (base.baseline(), new.baseline()) {
        (Some(bs), Some(ns)) if bs.measured() && ns.measured() && bs.label == ns.label => {
            Some(bs.label.clone())
        }
        _ => None,
    };
    let drifts: Vec<(Kind, f64)> = match &seq {
        Some(s) => [Kind::Time, Kind::Cpu]
            .into_iter()
            .map(|k| (k, drift(br, s, k)))
            .collect(),
        None => Vec::new(),
    };
    let mut rows = Vec::new();
    for b in &base.backends {
        let Some(n) = new.backend(&b.label) else {
            continue;
        };
        if !b.measured() || !n.measured() {
            continue;
        }
        let label = b.label.as_str();
        let mut figures = Vec::new();
        let mut push = |kind: Kind,
                        name: Option<&str>,
                        (bv, nv, change, ci): (f64, f64, f64, (f64, f64)),
                        not_gated: Option<String>| {
            let t = kind.default_threshold(threshold);
            figures.push(Figure {
                kind,
                name: name.unwrap_or(kind.name()).to_string(),
                base: bv,
                new: nv,
                change,
                ci,
                threshold: t,
                verdict: verdict(change, ci, t, kind.higher_is_better()),
                not_gated,
            });
        };
        match seq.as_deref().filter(|s| *s != label) {
            Some(s) => {
                // The time figure is comparable when both runs left the backend
                // (and sequential) the cores they used in the baseline.
                // Cores each used in the baseline: its median share of all cores.
                let cores_used = |l: &str| {
                    base.backend(l)
                        .map_or(0.0, |f| f.utilisation * noise.0.cores as f64)
                };
                let need = cores_used(label).max(cores_used(s));
                let busy = (need > free + CORE_SLACK).then(|| {
                    format!(
                        "machine busy: {other:.1} of {} cores used by other processes, {label} \
                         used {need:.1} in the baseline",
                        noise.1.cores
                    )
                });
                for (kind, not_gated) in [(Kind::Time, busy), (Kind::Cpu, None)] {
                    let (bv, nv, change, ci) = paired_figure(br, nr, label, s, kind);
                    let d = drifts
                        .iter()
                        .find(|(k, _)| *k == kind)
                        .map_or(DEFAULT_DRIFT, |x| x.1);
                    push(
                        kind,
                        None,
                        (bv, nv, change, widen(change, ci, d)),
                        not_gated,
                    );
                }
            }
            None => {
                let absolute_only = (!absolute).then(|| {
                    "absolute: moves with the machine (gated with --absolute)".to_string()
                });
                let (bv, nv, _, ci) = plain_figure(br, nr, label, Kind::Time);
                push(Kind::Time, Some(unit), (bv, nv, nv / bv, ci), absolute_only);
                let (bv, nv, change, ci) = plain_figure(br, nr, label, Kind::Cpu);
                push(
                    Kind::Cpu,
                    Some("CPU µs per item"),
                    (bv * 1e6, nv * 1e6, change, ci),
                    Some("absolute: moves with the machine's speed".into()),
                );
            }
        }
        for kind in [Kind::Switches, Kind::IoOps, Kind::Rss] {
            push(kind, None, plain_figure(br, nr, label, kind), None);
        }
        rows.push(Row {
            label: label.to_string(),
            figures,
            base_rate: b.median,
            new_rate: n.median,
            base_p99_us: b.input_p99_us,
            new_p99_us: n.input_p99_us,
        });
    }
    let labels =
        |a: &Analysis| -> Vec<String> { a.backends.iter().map(|f| f.label.clone()).collect() };
    let (bl, nl) = (labels(base), labels(new));
    let rounds = nr
        .repetitions
        .iter()
        .filter(|r| !r.warmup)
        .map(|r| r.index + 1)
        .max()
        .unwrap_or(0);
    Comparison {
        rows,
        only_base: bl.iter().filter(|l| !nl.contains(l)).cloned().collect(),
        only_new: nl.iter().filter(|l| !bl.contains(l)).cloned().collect(),
        broken: broken(base, new),
        threshold,
        unit,
        noise,
        rounds: (rounds, nr.rounds.clone()),
        drifts,
    }
}

fn pct(x: f64) -> String {
    if x.is_finite() {
        format!("{:+.1} %", (x - 1.0) * 100.0)
    } else {
        "–".into()
    }
}

/// A figure's value as the table shows it.
fn value(kind: Kind, x: f64) -> String {
    if !x.is_finite() {
        return "–".into();
    }
    match kind {
        Kind::Time | Kind::Cpu if x > 50.0 => format!("{x:.0}"),
        Kind::Rss => format!("{x:.1}"),
        _ => format!("{x:.3}"),
    }
}

/// The comparison as markdown: the gated figures, what was not gated, how each
/// figure is computed, the machine's noise, and the decision.
pub fn markdown(c: &Comparison) -> String {
    let mut md = String::new();
    let _ = writeln!(
        md,
        "| backend | figure | base | new | change | {:.0} % CI | threshold | verdict |",
        LEVEL * 100.0
    );
    let _ = writeln!(md, "|---|---|---:|---:|---:|---:|---:|---|");
    for r in &c.rows {
        for f in &r.figures {
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {} | {} … {} | ±{:.0} % | {} |",
                r.label,
                f.name,
                value(f.kind, f.base),
                value(f.kind, f.new),
                pct(f.change),
                pct(f.ci.0),
                pct(f.ci.1),
                f.threshold * 100.0,
                match &f.not_gated {
                    None => f.verdict.name().to_string(),
                    Some(why) => format!("not gated ({why}); interval alone: {}", f.verdict.name()),
                },
            );
        }
    }
    let us = |x: Option<f64>| x.map_or("–".into(), |x| format!("{:.0} µs", x));
    let _ = writeln!(
        md,
        "\nNot gated (they move with the machine):\n\n| backend | {u} base → new | p99 input latency base → new |\n|---|---:|---:|",
        u = c.unit
    );
    for r in &c.rows {
        let _ = writeln!(
            md,
            "| {} | {:.0} → {:.0} | {} → {} |",
            r.label,
            r.base_rate,
            r.new_rate,
            us(r.base_p99_us),
            us(r.new_p99_us)
        );
    }
    let _ = writeln!(md, "\nHow each figure is computed:");
    for k in Kind::ALL {
        let _ = writeln!(md, "- **{}**: {}.", k.name(), k.definition());
    }
    if !c.drifts.is_empty() {
        let d: Vec<String> = c
            .drifts
            .iter()
            .map(|(k, d)| format!("{} ±{:.1} %", k.name(), d * 100.0))
            .collect();
        let _ = writeln!(
            md,
            "- **drift allowance** (widens the paired figures' intervals, in quadrature at \
             the same level): how far their level wandered between blocks of {DRIFT_BLOCK} \
             consecutive rounds in the baseline beyond what the scatter within blocks \
             explains, one standard deviation, pooled over backends: {}.",
            d.join(", ")
        );
    }
    let _ = writeln!(
        md,
        "- **change**: new / base; **{:.0} % CI**: a seeded bootstrap interval of it. \
         **REGRESSED**: worse than the threshold with an interval that excludes no change; \
         **no change**: within the threshold, with an interval at most twice the threshold \
         wide; **inconclusive**: neither, too noisy to say.",
        LEVEL * 100.0
    );
    let _ = writeln!(
        md,
        "\nMachine: baseline: {}; new run: {}.",
        c.noise.0.describe(),
        c.noise.1.describe()
    );
    match &c.rounds.1 {
        Some(r) => {
            let _ = writeln!(
                md,
                "Rounds: {} ({} asked, {} added until every gated interval was at most twice its \
                 threshold wide; {}).",
                r.run,
                r.asked,
                r.run.saturating_sub(r.asked),
                r.stopped
            );
        }
        None => {
            let _ = writeln!(md, "Rounds: {}.", c.rounds.0);
        }
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
    let widest = c
        .widest()
        .map_or("none".into(), |(w, what)| format!("{w:.0} points ({what})"));
    let _ = writeln!(
        md,
        "\n{}",
        match c.decision() {
            Decision::Broken => "The gate fails: a broken run never passes.".to_string(),
            Decision::Regressed(what) => format!(
                "REGRESSED with {:.0} % confidence: {}.",
                LEVEL * 100.0,
                what.join("; ")
            ),
            Decision::Undecided(what) => format!(
                "UNDECIDED (exit 2): no regression was found, but the machine was too noisy to \
                 decide {} figure(s) — {} — in the time allowed (widest interval {widest}; {}). \
                 This run could not have caught a regression of the threshold there.",
                what.len(),
                what.join("; "),
                c.noise.1.describe()
            ),
            Decision::Passed => format!(
                "PASSED: every gated figure was decided and none regressed (widest interval \
                 {widest})."
            ),
        }
    );
    md
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::machine::MachineLoad;

    /// The CI gate's baseline as it was committed by schema 2 (before switches and
    /// machine load were recorded).
    fn schema_2() -> Results {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/ci-schema-2.json");
        Results::load(&path).unwrap()
    }

    /// `r` with `f` applied to every counted repetition of `label` (round index given).
    fn with(mut r: Results, label: &str, f: impl Fn(u32, &mut Measurement)) -> Results {
        for rep in r
            .repetitions
            .iter_mut()
            .filter(|x| x.label == label && !x.warmup)
        {
            if let Some(m) = rep.measurement.as_mut() {
                f(rep.index, m);
            }
        }
        r
    }

    /// Every repetition of `r` taken with `other` cores busy elsewhere.
    fn busy(mut r: Results, other: f64) -> Results {
        for m in r
            .repetitions
            .iter_mut()
            .filter_map(|x| x.measurement.as_mut())
        {
            m.machine_load = Some(MachineLoad {
                other_cores: other,
                steal_cores: 0.01,
                iowait_cores: None,
            });
        }
        r
    }

    /// A backend slowed by `factor` in wall time and CPU alike (a busy-wait).
    fn slowed(m: &mut Measurement, factor: f64) {
        m.items_per_second /= factor;
        m.wall_seconds *= factor;
        m.user_seconds *= factor;
    }

    fn row<'c>(c: &'c Comparison, label: &str) -> &'c Row {
        c.rows.iter().find(|r| r.label == label).unwrap()
    }

    #[test]
    fn the_schema_2_baseline_compares_with_itself_without_a_regression() {
        let r = schema_2();
        assert_eq!(r.schema_version, 2);
        let a = Analysis::of(&r);
        let c = compare(&a, &a, DEFAULT_THRESHOLD, false);
        assert!(c.broken.is_empty() && !c.fails(), "{}", markdown(&c));
        assert_eq!(c.rows.len(), r.scenario.backends.len());
        for row in &c.rows {
            assert_eq!(row.figures.len(), Kind::ALL.len(), "{}", row.label);
            for f in &row.figures {
                assert!((f.change - 1.0).abs() < 1e-12, "{} {:?}", row.label, f.kind);
            }
            let time = row.figure(Kind::Time).unwrap();
            match row.label.as_str() {
                // Sequential's own rate and CPU time are absolute: never gated.
                "sequential" => {
                    assert_eq!(time.name, "fields/s");
                    assert!(!time.gated() && !row.figure(Kind::Cpu).unwrap().gated());
                }
                _ => assert!(time.gated() && time.name == "time × seq (paired)"),
            }
        }
    }

    #[test]
    fn verdicts_follow_direction_threshold_and_width() {
        let v = |c, ci, hb| verdict(c, ci, 0.1, hb);
        // Higher is better (time): 15 % slower, the interval excluding 1.
        assert_eq!(v(0.85, (0.78, 0.93), true), Verdict::Regressed);
        // Slower beyond the threshold but the interval reaches 1: not called.
        assert_eq!(v(0.85, (0.70, 1.01), true), Verdict::Inconclusive);
        // Significant but smaller than the threshold, measured finely: no change.
        assert_eq!(v(0.94, (0.90, 0.98), true), Verdict::NoChange);
        // Within the threshold but measured coarsely: inconclusive.
        assert_eq!(v(0.97, (0.80, 1.12), true), Verdict::Inconclusive);
        assert_eq!(v(1.20, (1.12, 1.30), true), Verdict::Improved);
        // Lower is better (costs): 20 % more CPU is a regression, 20 % less not.
        assert_eq!(v(1.20, (1.12, 1.30), false), Verdict::Regressed);
        assert_eq!(v(0.80, (0.72, 0.88), false), Verdict::Improved);
        assert_eq!(v(f64::NAN, (0.9, 1.0), true), Verdict::Inconclusive);
        assert_eq!(v(1.0, (f64::NAN, 1.0), true), Verdict::Inconclusive);
    }

    #[test]
    fn a_busy_machine_keeps_a_two_core_backends_time_out_of_the_gate_and_judges_its_costs() {
        let base = schema_2();
        // A neighbour keeps one core of two busy: the two-core designs lose a third
        // of their throughput (and spin a little more), the one-core ones nothing.
        let mut new = busy(base.clone(), 1.0);
        for label in [
            "tokio-rayon",
            "spawn-blocking",
            "uring",
            "uring-workers",
            "object-store",
        ] {
            new = with(new, label, |_, m| {
                m.items_per_second *= 0.7;
                m.wall_seconds /= 0.7;
                m.user_seconds *= 1.05;
            });
        }
        let (a, b) = (Analysis::of(&base), Analysis::of(&new));
        let c = compare(&a, &b, DEFAULT_THRESHOLD, false);
        let time = row(&c, "uring").figure(Kind::Time).unwrap();
        assert!(
            time.not_gated
                .as_deref()
                .unwrap()
                .contains("machine busy: 1.0 of 2 cores"),
            "{}",
            markdown(&c)
        );
        // Its cost figures still gate, and say no regression.
        let cpu = row(&c, "uring").figure(Kind::Cpu).unwrap();
        assert!(
            cpu.gated() && cpu.verdict != Verdict::Regressed,
            "{}",
            markdown(&c)
        );
        // The one-core mock's time still gates.
        assert!(row(&c, "mock").figure(Kind::Time).unwrap().gated());
        assert!(
            !matches!(c.decision(), Decision::Regressed(_)),
            "{}",
            markdown(&c)
        );
        let md = markdown(&c);
        assert!(md.contains("other processes used 1.00 of 2 cores"), "{md}");
        // The same slowdown on a quiet machine is a regression of the time figure.
        let quiet = busy(new.clone(), 0.0);
        let c = compare(&a, &Analysis::of(&quiet), DEFAULT_THRESHOLD, false);
        assert_eq!(
            row(&c, "uring").figure(Kind::Time).unwrap().verdict,
            Verdict::Regressed,
            "{}",
            markdown(&c)
        );
        assert!(matches!(c.decision(), Decision::Regressed(_)));
        assert_eq!(c.decision().exit_code(), 1);
    }

    #[test]
    fn a_slowed_one_core_backend_is_caught_on_a_busy_machine() {
        let base = schema_2();
        let new = with(busy(base.clone(), 1.0), "mock", |_, m| {
            slowed(m, 1.0 / 0.85)
        });
        let c = compare(
            &Analysis::of(&base),
            &Analysis::of(&new),
            DEFAULT_THRESHOLD,
            false,
        );
        let mock = row(&c, "mock");
        assert_eq!(mock.figure(Kind::Time).unwrap().verdict, Verdict::Regressed);
        assert!(mock.figure(Kind::Time).unwrap().gated());
        match c.decision() {
            Decision::Regressed(what) => {
                assert!(
                    what.iter().any(|w| w == "mock: time × seq (paired)"),
                    "{what:?}"
                )
            }
            d => panic!("{d:?}\n{}", markdown(&c)),
        }
        assert!(markdown(&c).contains("REGRESSED with 95 % confidence: mock"));
    }

    #[test]
    fn too_noisy_to_decide_is_undecided_exit_2_and_asks_for_more_rounds() {
        let base = schema_2();
        // Every other round 40 % slower for the mock alone: its paired ratios
        // scatter too widely for any verdict, though their median is unchanged.
        let new = with(base.clone(), "mock", |i, m| {
            if i % 2 == 1 {
                slowed(m, 1.4)
            }
        });
        let c = compare(
            &Analysis::of(&base),
            &Analysis::of(&new),
            DEFAULT_THRESHOLD,
            false,
        );
        assert!(c.needs_more_rounds(), "{}", markdown(&c));
        let d = c.decision();
        assert!(
            matches!(&d, Decision::Undecided(w) if w.iter().any(|w| w.starts_with("mock:"))),
            "{d:?}"
        );
        assert_eq!(d.exit_code(), 2);
        assert!(!c.fails());
        let md = markdown(&c);
        assert!(
            md.contains("UNDECIDED (exit 2)") && md.contains("widest interval"),
            "{md}"
        );
        // A broken comparison never asks for more rounds and exits 1.
        let mut broken = c.clone();
        broken
            .broken
            .push("`x` is in the baseline but not in the new run".into());
        assert!(!broken.needs_more_rounds());
        assert_eq!(broken.decision().exit_code(), 1);
    }

    #[test]
    fn cost_figures_see_switches_io_and_memory_and_ignore_tiny_counts() {
        let base = schema_2();
        // Twice the IO operations per item and +40 % RSS for uring: regressions;
        // sequential's 0.002 switches per item doubling is noise under the floor.
        let new = with(base.clone(), "uring", |_, m| {
            m.counters.reads *= 2;
            m.peak_rss_bytes = m.peak_rss_bytes * 14 / 10 + (16 << 20);
        });
        let new = with(new, "sequential", |_, m| {
            m.voluntary_switches = m.voluntary_switches * 2 + 10
        });
        let c = compare(
            &Analysis::of(&base),
            &Analysis::of(&new),
            DEFAULT_THRESHOLD,
            false,
        );
        let u = row(&c, "uring");
        assert_eq!(
            u.figure(Kind::IoOps).unwrap().verdict,
            Verdict::Regressed,
            "{}",
            markdown(&c)
        );
        assert_eq!(
            u.figure(Kind::Rss).unwrap().verdict,
            Verdict::Regressed,
            "{}",
            markdown(&c)
        );
        let s = row(&c, "sequential").figure(Kind::Switches).unwrap();
        assert_ne!(s.verdict, Verdict::Regressed, "{}", markdown(&c));
        let md = markdown(&c);
        for k in Kind::ALL {
            assert!(md.contains(&format!("**{}**", k.name())), "{md}");
        }
        assert!(md.contains("not gated (absolute"), "{md}");
    }

    #[test]
    fn the_drift_allowance_is_what_blocks_of_rounds_wander_beyond_their_scatter() {
        // 20 rounds of constant ratios: no scatter within blocks, none between.
        let base = schema_2();
        let mut flat = base.clone();
        flat.repetitions.clear();
        for i in 0..20u32 {
            for (label, rate) in [("sequential", 100.0), ("mock", 100.0)] {
                let mut rep = base
                    .repetitions
                    .iter()
                    .find(|r| r.label == label)
                    .unwrap()
                    .clone();
                (rep.index, rep.warmup, rep.counts) = (i, false, true);
                let m = rep.measurement.as_mut().unwrap();
                // The mock's level moves by 10 % between blocks of five rounds.
                let level = if label == "mock" && (i / 5) % 2 == 1 {
                    1.1
                } else {
                    1.0
                };
                m.items_per_second = rate * level;
                flat.repetitions.push(rep);
            }
        }
        flat.scenario
            .backends
            .retain(|b| b.label == "sequential" || b.label == "mock");
        let d = drift(&flat, "sequential", Kind::Time);
        // Block means alternate 0 and ln 1.1: their standard deviation.
        assert!(
            (d - 0.0953 / 2.0 * (4f64 / 3.0).sqrt()).abs() < 0.001,
            "{d}"
        );
        // Too few rounds for three blocks: the default.
        assert_eq!(drift(&schema_2(), "sequential", Kind::Time), DEFAULT_DRIFT);
        // Widening: symmetric in the logarithm, and nothing to widen gives the drift alone.
        let (lo, hi) = widen(1.0, (1.0, 1.0), 0.05);
        assert!((hi.ln() - 1.96 * 0.05).abs() < 1e-3 && (lo.ln() + 1.96 * 0.05).abs() < 1e-3);
        let (lo, hi) = widen(0.8, (0.75, 0.85), 0.0);
        assert!((lo - 0.75).abs() < 1e-12 && (hi - 0.85).abs() < 1e-12);
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
        assert_eq!(verdict(1.0, (lo, hi), 0.1, true), Verdict::NoChange);
        // Only the backend got slower: regressed.
        let a2: Vec<f64> = a0.iter().map(|x| x * 0.6).collect();
        let (lo, hi) = ratio_of_ratios_ci(&a0, &b0, &a2, &b0);
        assert!(hi < 0.9, "({lo}, {hi})");
    }
}
