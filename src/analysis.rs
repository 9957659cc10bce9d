//! The one analysis of a run: every per-backend figure that the summary table, the
//! report, the exports and the regression gate show, computed once from a
//! [`Results`] by [`Analysis::of`]. They only format what is here.
//!
//! A backend's figures are taken over its *counted* repetitions (not warm-ups,
//! finished and verified); the rate is items per second: fields/s in a rechunk
//! run, inputs/s in a read-only run ([`Analysis::unit`]). Ratios are to the run's
//! baseline, chosen by [`baseline`] alone. Intervals are seeded bootstraps
//! ([`LEVEL`], [`SEED`]), so a redrawn report shows the same numbers.

use std::collections::BTreeMap;

use anyhow::Context;
use hdrhistogram::Histogram;

use crate::results::{Ceilings, Measurement, Repetition, Results, Timeline};
use crate::scenario::{BackendSpec, Recording, Scenario, SweepPoint, WorkloadKind};
use crate::stats;

/// Confidence level of every interval shown.
pub const LEVEL: f64 = 0.95;
/// Seed of the bootstraps, fixed so that a redrawn report is identical.
pub const SEED: u64 = 0x5eed;

/// The baseline of a run, which every ratio is taken against: its first
/// `[[backend]]` table of the `sequential` backend (one thread, every step in
/// order), if it has one.
pub fn baseline(scenario: &Scenario) -> Option<&BackendSpec> {
    scenario.backends.iter().find(|b| b.name == "sequential")
}

/// Bootstrap interval of median(`a.rates`) / median(`b.rates`) at [`LEVEL`].
pub fn ratio_ci(a: &BackendFigures, b: &BackendFigures) -> (f64, f64) {
    stats::ratio_ci(&a.rates, &b.rates, LEVEL, SEED)
}

/// Everything shown about one backend (one `[[backend]]` table).
#[derive(Clone, Debug)]
pub struct BackendFigures {
    /// The `[[backend]]` table's label (unique in the scenario).
    pub label: String,
    /// The backend's name, as `harness list` shows it.
    pub name: String,
    /// This is the run's [`baseline`].
    pub baseline: bool,
    /// Measured repetitions (warm-ups aside), counted or not.
    pub runs: usize,
    /// Items per second of the counted repetitions, in the order run.
    pub rates: Vec<f64>,
    /// There were measured repetitions and every one counted.
    pub verified: bool,
    /// Median of `rates` (NaN without counted repetitions).
    pub median: f64,
    /// Bootstrap interval of the median of `rates` at [`LEVEL`] (seeded with [`SEED`]).
    pub ci: (f64, f64),
    /// Smallest of `rates` (NaN without counted repetitions).
    pub min: f64,
    /// Largest of `rates` (NaN without counted repetitions).
    pub max: f64,
    /// Median MB/s (10^6 bytes): decoded field bytes in a rechunk run, input bytes
    /// read in a read-only run.
    pub mb_per_second: f64,
    /// Median MB/s of input bytes read (the stored files: GRIB2 as compressed on
    /// disk), whatever the workload.
    pub read_mb_per_second: f64,
    /// Median / the baseline's median, when both are finite (1 for the baseline).
    pub ratio: Option<f64>,
    /// Bootstrap interval of that ratio ([`ratio_ci`]); not for the baseline itself.
    pub ratio_ci: Option<(f64, f64)>,
    /// Per round (repetition index) in which both counted: this backend's rate /
    /// the baseline's (1 for the baseline itself). A slow moment shared by a round
    /// cancels in it.
    pub paired_ratios: Vec<f64>,
    /// Median / the lower ceiling, when the run measured the ceilings.
    pub efficiency: Option<f64>,
    /// Median CPU (user, system) milliseconds per 1000 items.
    pub cpu_ms_per_1000: (f64, f64),
    /// Median wall seconds.
    pub wall: f64,
    /// Median share of all cores busy: (user + system) / (wall × cores).
    pub utilisation: f64,
    /// Most IO operations in flight at once, as the backend recorded them, over
    /// counted repetitions.
    pub max_io_in_flight: u64,
    /// Most OS threads the backend used at once, over counted repetitions.
    pub threads: u64,
    /// Peak RSS over the counted repetitions, in bytes.
    pub peak_rss: u64,
    /// Peak RSS over every measured repetition, counted or not (the summary's, so
    /// that a failing repetition's memory shows too).
    pub peak_rss_measured: u64,
    /// Median over counted repetitions of the p99 latency of a whole input, in µs.
    pub input_p99_us: Option<f64>,
    /// Latency histograms per stage, merged over counted repetitions.
    pub stages: BTreeMap<String, Histogram<u64>>,
    /// The timeline of the repetition whose rate is nearest the median.
    pub timeline: Option<Timeline>,
    /// The sweep point this table is, if any.
    pub sweep: Option<SweepPoint>,
    /// What the table's repetitions recorded: with `counters`, there are no
    /// `stages` and no `timeline`.
    pub recording: Recording,
}

impl BackendFigures {
    /// It has counted repetitions: it appears in the report and the exports.
    pub fn measured(&self) -> bool {
        !self.rates.is_empty()
    }
}

/// The figures of a whole run.
#[derive(Debug)]
pub struct Analysis<'r> {
    /// The results file the figures were computed from.
    pub results: &'r Results,
    /// What a rate counts: `fields/s` in a rechunk run, `inputs/s` in a read-only one.
    pub unit: &'static str,
    /// What `mb_per_second` counts: `MB/s decoded` or `MB/s read`.
    pub mb_unit: &'static str,
    /// One per `[[backend]]` table, in the scenario's order.
    pub backends: Vec<BackendFigures>,
    /// Why the stored latency histograms could not all be merged, if one does not
    /// decode (the report needs them; nothing else does).
    pub latency_error: Option<String>,
}

impl<'r> Analysis<'r> {
    /// Every figure of `results`, computed once.
    pub fn of(results: &'r Results) -> Analysis<'r> {
        let (unit, mb_unit) = match results.scenario.workload {
            WorkloadKind::Rechunk => ("fields/s", "MB/s decoded"),
            WorkloadKind::ReadOnly => ("inputs/s", "MB/s read"),
        };
        let mut latency_error = None;
        let mut backends: Vec<BackendFigures> = results
            .scenario
            .backends
            .iter()
            .map(|spec| {
                let (figures, error) = own_figures(results, spec);
                latency_error = latency_error.take().or(error);
                figures
            })
            .collect();
        let base = baseline(&results.scenario)
            .and_then(|spec| backends.iter().position(|f| f.label == spec.label));
        if let Some(b) = base {
            backends[b].baseline = true;
            let base_figures = backends[b].clone();
            for f in &mut backends {
                relate_to_baseline(f, &base_figures, results);
            }
        }
        if let Some(c) = &results.ceilings {
            for f in &mut backends {
                f.efficiency = Some(f.median / c.bound());
            }
        }
        Analysis {
            results,
            unit,
            mb_unit,
            backends,
            latency_error,
        }
    }

    /// The baseline's figures, if the run has one ([`baseline`]).
    pub fn baseline(&self) -> Option<&BackendFigures> {
        self.backends.iter().find(|f| f.baseline)
    }

    /// The figures of a label.
    pub fn backend(&self, label: &str) -> Option<&BackendFigures> {
        self.backends.iter().find(|f| f.label == label)
    }

    /// The backends with counted repetitions, in the scenario's order.
    pub fn measured(&self) -> Vec<&BackendFigures> {
        self.backends.iter().filter(|f| f.measured()).collect()
    }

    /// The run's IO and CPU ceilings, if it measured them.
    pub fn ceilings(&self) -> Option<&'r Ceilings> {
        self.results.ceilings.as_ref()
    }

    /// The run's workload: rechunk or read-only.
    pub fn workload(&self) -> WorkloadKind {
        self.results.scenario.workload
    }
}

/// The counted (not warm-up, verified) repetitions of a label with their
/// measurements.
fn counted<'a>(results: &'a Results, label: &str) -> Vec<(&'a Repetition, &'a Measurement)> {
    results
        .repetitions
        .iter()
        .filter(|r| r.label == label && !r.warmup && r.counts)
        .filter_map(|r| r.measurement.as_ref().map(|m| (r, m)))
        .collect()
}

/// A backend's figures that need no other backend, and why its histograms did not
/// merge, if so.
fn own_figures(results: &Results, spec: &BackendSpec) -> (BackendFigures, Option<String>) {
    let cores = results.machine.cores.max(1) as f64;
    let runs: Vec<&Repetition> = results
        .repetitions
        .iter()
        .filter(|r| r.label == spec.label && !r.warmup)
        .collect();
    let reps = counted(results, &spec.label);
    let rates: Vec<f64> = reps.iter().map(|(_, m)| m.items_per_second).collect();
    let med = |f: &dyn Fn(&Measurement) -> f64| {
        stats::median(&reps.iter().map(|(_, m)| f(m)).collect::<Vec<_>>())
    };
    let per_1000 = |secs: f64, m: &Measurement| secs / m.outcome.inputs.max(1) as f64 * 1e6;
    let median = stats::median(&rates);
    let input_p99: Vec<f64> = reps
        .iter()
        .filter_map(|(_, m)| m.stages.get("input").map(|s| s.p99_us))
        .collect();
    let (stages, error) = merged_stages(&reps);
    let figures = BackendFigures {
        label: spec.label.clone(),
        name: spec.name.clone(),
        baseline: false,
        runs: runs.len(),
        verified: !runs.is_empty() && runs.iter().all(|r| r.counts),
        median,
        ci: stats::median_ci(&rates, LEVEL, SEED),
        min: rates.iter().copied().fold(f64::NAN, f64::min),
        max: rates.iter().copied().fold(f64::NAN, f64::max),
        mb_per_second: match results.scenario.workload {
            WorkloadKind::Rechunk => med(&|m| m.decoded_mb_per_second),
            WorkloadKind::ReadOnly => med(&|m| m.input_mb_per_second),
        },
        read_mb_per_second: med(&|m| m.input_mb_per_second),
        ratio: None,
        ratio_ci: None,
        paired_ratios: Vec::new(),
        efficiency: None,
        cpu_ms_per_1000: (
            med(&|m| per_1000(m.user_seconds, m)),
            med(&|m| per_1000(m.system_seconds, m)),
        ),
        wall: med(&|m| m.wall_seconds),
        utilisation: med(&|m| (m.user_seconds + m.system_seconds) / (m.wall_seconds * cores)),
        max_io_in_flight: reps
            .iter()
            .map(|(_, m)| m.counters.max_io_in_flight)
            .max()
            .unwrap_or(0),
        threads: reps.iter().map(|(_, m)| m.threads).max().unwrap_or(0),
        peak_rss: reps
            .iter()
            .map(|(_, m)| m.peak_rss_bytes)
            .max()
            .unwrap_or(0),
        peak_rss_measured: runs
            .iter()
            .filter_map(|r| r.measurement.as_ref())
            .map(|m| m.peak_rss_bytes)
            .max()
            .unwrap_or(0),
        input_p99_us: (!input_p99.is_empty()).then(|| stats::median(&input_p99)),
        stages,
        timeline: reps
            .iter()
            .min_by(|a, b| {
                (a.1.items_per_second - median)
                    .abs()
                    .total_cmp(&(b.1.items_per_second - median).abs())
            })
            .and_then(|(_, m)| m.timeline.clone()),
        sweep: spec.sweep.clone(),
        recording: spec.recording,
        rates,
    };
    (figures, error)
}

/// The stage histograms of the counted repetitions, merged per stage; on a
/// histogram that does not decode or merge, those merged so far and why.
fn merged_stages(
    reps: &[(&Repetition, &Measurement)],
) -> (BTreeMap<String, Histogram<u64>>, Option<String>) {
    let mut stages: BTreeMap<String, Histogram<u64>> = BTreeMap::new();
    for (r, m) in reps {
        for (name, s) in &m.stages {
            let merged = s
                .histogram()
                .with_context(|| format!("{} repetition {}: stage {name}", r.label, r.index + 1))
                .and_then(|h| match stages.get_mut(name) {
                    Some(acc) => acc
                        .add(&h)
                        .map_err(|e| anyhow::anyhow!("merging histograms: {e:?}")),
                    None => {
                        stages.insert(name.clone(), h);
                        Ok(())
                    }
                });
            if let Err(e) = merged {
                return (stages, Some(format!("{e:#}")));
            }
        }
    }
    (stages, None)
}

/// The figures of `f` relative to the run's baseline `base`.
fn relate_to_baseline(f: &mut BackendFigures, base: &BackendFigures, results: &Results) {
    if base.median.is_finite() && f.median.is_finite() {
        f.ratio = Some(f.median / base.median);
    }
    if !f.baseline && f.measured() && base.measured() {
        f.ratio_ci = Some(ratio_ci(f, base));
    }
    f.paired_ratios = paired_ratios(results, &f.label, &base.label);
}

/// `label` / `base` per round (the same repetition index), both counted.
fn paired_ratios(results: &Results, label: &str, base: &str) -> Vec<f64> {
    let rate = |l: &str, i: u32| {
        results
            .repetitions
            .iter()
            .find(|x| x.label == l && x.index == i && !x.warmup && x.counts)
            .and_then(|x| x.measurement.as_ref())
            .map(|m| m.items_per_second)
    };
    (0..results.scenario.run.repetitions)
        .filter_map(|i| Some(rate(label, i)? / rate(base, i)?))
        .filter(|x| x.is_finite())
        .collect()
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    /// The CI gate's committed baseline (schema 2): 7 backends × 5 rounds + warm-ups.
    fn ci() -> Results {
        Results::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("results/baselines/ci.json"))
            .unwrap()
    }

    fn rates(r: &Results, label: &str) -> Vec<f64> {
        r.repetitions
            .iter()
            .filter(|x| x.label == label && !x.warmup && x.counts)
            .map(|x| x.measurement.as_ref().unwrap().items_per_second)
            .collect()
    }

    #[test]
    fn figures_follow_from_the_counted_repetitions() {
        let r = ci();
        let a = Analysis::of(&r);
        assert_eq!(a.unit, "fields/s");
        assert_eq!(a.backends.len(), r.scenario.backends.len());
        assert!(a.latency_error.is_none());
        let base = a.baseline().unwrap();
        assert_eq!(base.label, "sequential");
        assert_eq!(base.ratio, Some(1.0));
        assert_eq!(base.ratio_ci, None, "no interval against itself");
        for f in &a.backends {
            let xs = rates(&r, &f.label);
            assert_eq!(f.rates, xs, "{}", f.label);
            assert_eq!(f.median, stats::median(&xs));
            assert_eq!(f.ci, stats::median_ci(&xs, LEVEL, SEED));
            assert_eq!(f.ratio, Some(f.median / base.median));
            assert_eq!(f.paired_ratios.len(), 5, "{}", f.label);
            assert!(f.verified && f.runs == 5 && f.measured());
            assert_eq!(f.efficiency, None, "no ceilings measured");
            if !f.baseline {
                assert_eq!(
                    f.ratio_ci,
                    Some(stats::ratio_ci(&xs, &base.rates, LEVEL, SEED))
                );
            }
        }
    }

    #[test]
    fn the_baseline_is_the_first_sequential_table_whatever_it_measured() {
        let mut r = ci();
        // A second sequential table, and the first one's repetitions all failed.
        let mut second = r.scenario.backends[0].clone();
        second.label = "sequential-2".into();
        r.scenario.backends.push(second);
        for rep in r.repetitions.iter_mut().filter(|x| x.label == "sequential") {
            rep.counts = false;
        }
        let a = Analysis::of(&r);
        let base = a.baseline().unwrap();
        assert_eq!(base.label, "sequential");
        assert!(!base.measured() && !base.verified);
        // No ratios without a measured baseline; no fallback to another table.
        assert!(a
            .backends
            .iter()
            .all(|f| f.ratio.is_none() && f.ratio_ci.is_none() && f.paired_ratios.is_empty()));
        assert_eq!(a.measured().len(), a.backends.len() - 2);

        r.scenario.backends.retain(|b| b.name != "sequential");
        assert!(Analysis::of(&r).baseline().is_none());
    }

    #[test]
    fn a_failed_repetition_shows_in_peak_rss_measured_only() {
        let mut r = ci();
        let rep = r
            .repetitions
            .iter_mut()
            .find(|x| x.label == "uring" && !x.warmup)
            .unwrap();
        rep.counts = false;
        rep.measurement.as_mut().unwrap().peak_rss_bytes = 1 << 40;
        let a = Analysis::of(&r);
        let f = a.backend("uring").unwrap();
        assert_eq!(f.peak_rss_measured, 1 << 40);
        assert!(f.peak_rss < 1 << 40);
        assert_eq!((f.rates.len(), f.runs, f.verified), (4, 5, false));
    }

    #[test]
    fn a_read_only_run_counts_inputs_and_efficiency_follows_the_ceilings() {
        let mut r = ci();
        r.scenario.workload = WorkloadKind::ReadOnly;
        r.ceilings = Some(Ceilings {
            io_per_second: 1e6,
            io_backend: "uring".into(),
            io_results: String::new(),
            cpu_per_second: 2e4,
            cpu_threads: 2,
            cpu_repetitions: vec![2e4],
        });
        let a = Analysis::of(&r);
        assert_eq!((a.unit, a.mb_unit), ("inputs/s", "MB/s read"));
        for f in &a.backends {
            assert_eq!(f.efficiency, Some(f.median / 2e4));
        }
    }
}
