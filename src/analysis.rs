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

use crate::results::{Ceilings, Measurement, Repetition, Results, StageLatency, Timeline};
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
    /// Where its cores' time went, per item.
    pub time: TimeSplit,
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
    /// Its object-store requests, when it made any.
    pub requests: Option<RequestFigures>,
}

/// Where a backend's core time went, per item, in milliseconds: each a median over
/// its counted repetitions of that repetition's value, so the parts add up to the
/// whole only roughly.
///
/// Every core's time during a run (cores × wall) is either this process's CPU
/// (user + system), another process's CPU, or idle; idle includes the kernel's
/// `iowait` (idle while some task waited for block IO). Against the CPU
/// ceiling's CPU per item (the work itself, from memory), this process's CPU
/// splits further into the work and the design's overhead (see
/// [`TimeSplit::overhead_ms`]).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TimeSplit {
    /// cores × wall / items: all the core time one item took.
    pub core_ms: f64,
    /// This process's CPU time (user + system) per item.
    pub cpu_ms: f64,
    /// Other processes' CPU time per item, where the load was recorded.
    pub other_ms: Option<f64>,
    /// Core time nobody used, per item: core − CPU − other (never below 0).
    pub idle_ms: f64,
    /// The kernel's iowait per item (part of idle), where recorded.
    pub iowait_ms: Option<f64>,
    /// Voluntary context switches per item (waits: hand-overs, locks, IO).
    pub voluntary_switches: f64,
    /// Involuntary context switches per item (preemptions).
    pub involuntary_switches: f64,
}

impl TimeSplit {
    /// The split of the counted repetitions `reps` on `cores` cores.
    fn of(reps: &[(&Repetition, &Measurement)], cores: f64) -> TimeSplit {
        let per_item = |f: &dyn Fn(&Measurement) -> Option<f64>| -> Option<f64> {
            let v: Vec<f64> = reps
                .iter()
                .filter(|(_, m)| m.outcome.inputs > 0)
                .filter_map(|(_, m)| f(m).map(|x| x / m.outcome.inputs as f64))
                .collect();
            (!v.is_empty()).then(|| stats::median(&v))
        };
        let ms = |x: f64| x * 1e3;
        let other = |m: &Measurement| m.machine_load.map(|l| l.other_cores * m.wall_seconds);
        TimeSplit {
            core_ms: per_item(&|m| Some(ms(cores * m.wall_seconds))).unwrap_or(f64::NAN),
            cpu_ms: per_item(&|m| Some(ms(m.user_seconds + m.system_seconds))).unwrap_or(f64::NAN),
            other_ms: per_item(&|m| other(m).map(ms)),
            idle_ms: per_item(&|m| {
                let busy = m.user_seconds + m.system_seconds + other(m).unwrap_or(0.0);
                Some(ms((cores * m.wall_seconds - busy).max(0.0)))
            })
            .unwrap_or(f64::NAN),
            iowait_ms: per_item(&|m| {
                m.machine_load
                    .and_then(|l| l.iowait_cores)
                    .map(|w| ms(w * m.wall_seconds))
            }),
            voluntary_switches: per_item(&|m| Some(m.voluntary_switches as f64))
                .unwrap_or(f64::NAN),
            involuntary_switches: per_item(&|m| Some(m.involuntary_switches as f64))
                .unwrap_or(f64::NAN),
        }
    }

    /// CPU per item beyond the work itself (the CPU ceiling's CPU per item, `work_ms`):
    /// system calls, copies out of the page cache, hand-overs, spinning, waking.
    /// Negative when the backend spent less than the ceiling's passes did.
    pub fn overhead_ms(&self, work_ms: f64) -> f64 {
        self.cpu_ms - work_ms
    }
}

/// A backend's object-store requests, over its counted repetitions.
#[derive(Clone, Debug)]
pub struct RequestFigures {
    /// Per kind (`s3 get`, `file put`, …), sorted by name.
    pub kinds: Vec<KindFigures>,
    /// Median over repetitions of all requests / wall seconds.
    pub per_second: f64,
    /// Median over repetitions of (inputs read + objects written) / wall seconds.
    pub objects_per_second: f64,
    /// Most requests in flight at once, over the repetitions.
    pub max_in_flight: u64,
    /// `io_in_flight` of the table: what the requests in flight could reach.
    pub io_in_flight: usize,
    /// The byte budget bound the requests in flight: its peak came within 10 % of
    /// `bytes_in_flight` in some repetition (then fewer than `io_in_flight`
    /// requests could be outstanding).
    pub budget_bound: bool,
    /// Median HTTP exchanges with S3 per repetition (every attempt).
    pub http_attempts: f64,
    /// Median retries per repetition: HTTP attempts beyond the S3 requests (each
    /// request the backends make is one exchange).
    pub retries: f64,
    /// Failed HTTP exchanges (5xx, 429, 408, transport errors), summed over the
    /// repetitions.
    pub failed_attempts: u64,
    /// Median estimated USD per repetition at [`crate::cost::PRICES`] (S3
    /// requests, retries priced as GETs are: a lower bound when PUTs are retried).
    pub cost_usd: f64,
}

/// One kind of request of a backend.
#[derive(Clone, Debug)]
pub struct KindFigures {
    /// `<store> <op>`, as results name it.
    pub name: String,
    /// Median requests per repetition.
    pub count: f64,
    /// Median payload bytes per repetition.
    pub bytes: f64,
    /// Requests that failed, summed over the repetitions.
    pub errors: u64,
    /// Time to first byte (ns), merged over the repetitions (full recording only).
    pub ttfb: Option<Histogram<u64>>,
    /// Total time (ns), merged likewise.
    pub total: Option<Histogram<u64>>,
    /// Median estimated USD per repetition; `None`: not billed (not S3).
    pub cost_usd: Option<f64>,
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
        time: TimeSplit::of(&reps, cores),
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
        requests: None,
        rates,
    };
    let (requests, request_error) = request_figures(spec, &reps);
    let figures = BackendFigures {
        requests,
        ..figures
    };
    (figures, error.or(request_error))
}

/// The requests of a backend's counted repetitions; `None` when they made none.
fn request_figures(
    spec: &BackendSpec,
    reps: &[(&Repetition, &Measurement)],
) -> (Option<RequestFigures>, Option<String>) {
    if !reps.iter().any(|(_, m)| !m.counters.requests.is_empty()) {
        return (None, None);
    }
    let med = |f: &dyn Fn(&Measurement) -> f64| {
        stats::median(&reps.iter().map(|(_, m)| f(m)).collect::<Vec<_>>())
    };
    let names: std::collections::BTreeSet<&String> = reps
        .iter()
        .flat_map(|(_, m)| m.counters.requests.keys())
        .collect();
    let mut error = None;
    let kinds: Vec<KindFigures> = names
        .into_iter()
        .map(|name| {
            let get = |m: &Measurement| m.counters.requests.get(name).cloned().unwrap_or_default();
            let count = med(&|m| get(m).count as f64);
            let mut hist = |pick: fn(&crate::results::RequestLatency) -> &StageLatency| {
                let mut acc: Option<Histogram<u64>> = None;
                for (r, m) in reps {
                    let Some(l) = m.requests.get(name) else {
                        continue;
                    };
                    let merged = pick(l)
                        .histogram()
                        .with_context(|| {
                            format!("{} repetition {}: requests {name}", r.label, r.index + 1)
                        })
                        .and_then(|h| match &mut acc {
                            Some(a) => a
                                .add(&h)
                                .map_err(|e| anyhow::anyhow!("merging histograms: {e:?}")),
                            None => {
                                acc = Some(h);
                                Ok(())
                            }
                        });
                    if let Err(e) = merged {
                        error.get_or_insert(format!("{e:#}"));
                    }
                }
                acc
            };
            let ttfb = hist(|l| &l.ttfb);
            let total = hist(|l| &l.total);
            KindFigures {
                name: name.clone(),
                count,
                bytes: med(&|m| get(m).bytes as f64),
                errors: reps.iter().map(|(_, m)| get(m).errors).sum(),
                ttfb,
                total,
                cost_usd: crate::cost::PRICES.cost(name, count),
            }
        })
        .collect();
    let s3_requests = |m: &Measurement| -> u64 {
        m.counters
            .requests
            .iter()
            .filter(|(k, _)| k.starts_with("s3 "))
            .map(|(_, c)| c.count)
            .sum()
    };
    let retries = |m: &Measurement| m.counters.http_attempts.saturating_sub(s3_requests(m)) as f64;
    let cost = |m: &Measurement| {
        let prices = &crate::cost::PRICES;
        let requests: f64 = m
            .counters
            .requests
            .iter()
            .filter_map(|(k, c)| prices.cost(k, c.count as f64))
            .sum();
        requests + retries(m) * prices.per_request(crate::cost::PriceClass::Get)
    };
    let figures = RequestFigures {
        kinds,
        per_second: med(&|m| {
            m.counters.requests.values().map(|c| c.count).sum::<u64>() as f64 / m.wall_seconds
        }),
        objects_per_second: med(&|m| {
            (m.outcome.inputs + m.outcome.outputs) as f64 / m.wall_seconds
        }),
        max_in_flight: reps
            .iter()
            .map(|(_, m)| m.counters.max_requests_in_flight)
            .max()
            .unwrap_or(0),
        io_in_flight: spec.limits.io_in_flight,
        budget_bound: reps.iter().any(|(_, m)| {
            m.counters.max_bytes_in_flight as f64 >= 0.9 * spec.limits.bytes_in_flight as f64
        }),
        http_attempts: med(&|m| m.counters.http_attempts as f64),
        retries: med(&retries),
        failed_attempts: reps
            .iter()
            .map(|(_, m)| m.counters.http_failed_attempts)
            .sum(),
        cost_usd: med(&cost),
    };
    (Some(figures), error)
}

/// The network delay the run was configured with for the `[[backend]]` table
/// `base`, in seconds, when its results record one: the delay proxy's round trip
/// (every S3 request crosses it), else the in-process throttle's wait per GET of
/// that table (or of its sweep points, labelled `base-…`). `None` on loopback with
/// nothing added. A request's time is at least this; the server's time and the
/// transfer come on top, so with it Little's law is an upper bound.
pub fn configured_round_trip(results: &Results, base: &str) -> Option<f64> {
    let n = results.network.as_ref()?;
    if let Some(p) = &n.proxy {
        return Some(p.rtt_ms / 1e3);
    }
    n.throttle
        .iter()
        .find(|t| t.label == base || t.label.starts_with(&format!("{base}-")))
        .map(|t| t.get_per_call_ms / 1e3)
        .filter(|s| *s > 0.0)
}

/// The sweep points over `io_in_flight` that made requests, with the latency for
/// Little's law ([`littles_law_latency`]): per point (base label, io_in_flight,
/// measured requests/s, expected requests/s = io_in_flight / latency). Empty
/// unless the run swept `io_in_flight` on a backend making requests.
pub fn littles_law(a: &Analysis) -> (Vec<LittlePoint>, Option<String>) {
    let points: Vec<&BackendFigures> = a
        .measured()
        .into_iter()
        .filter(|f| {
            f.requests.is_some()
                && f.sweep
                    .as_ref()
                    .is_some_and(|p| p.parameter == "io_in_flight")
        })
        .collect();
    let mut out = Vec::new();
    let mut source = None;
    let bases: std::collections::BTreeSet<&str> = points
        .iter()
        .filter_map(|f| Some(f.sweep.as_ref()?.base_label.as_str()))
        .collect();
    for base in bases {
        let line: Vec<&BackendFigures> = points
            .iter()
            .copied()
            .filter(|f| f.sweep.as_ref().is_some_and(|p| p.base_label == base))
            .collect();
        let Some((latency, from)) =
            littles_law_latency(&line, configured_round_trip(a.results, base))
        else {
            continue;
        };
        source.get_or_insert(from);
        for f in line {
            let (Some(p), Some(r)) = (&f.sweep, &f.requests) else {
                continue;
            };
            out.push(LittlePoint {
                base: base.to_string(),
                label: f.label.clone(),
                in_flight: p.value,
                achieved_in_flight: r.max_in_flight,
                measured: r.per_second,
                expected: p.value / latency,
                latency,
            });
        }
    }
    out.sort_by(|a, b| {
        (&a.base, a.in_flight)
            .partial_cmp(&(&b.base, b.in_flight))
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    (out, source)
}

/// One point of an `io_in_flight` sweep beside Little's law.
#[derive(Clone, Debug, PartialEq)]
pub struct LittlePoint {
    /// The swept `[[backend]]` table.
    pub base: String,
    /// This point's label.
    pub label: String,
    /// `io_in_flight` here.
    pub in_flight: f64,
    /// Most requests in flight at once, measured.
    pub achieved_in_flight: u64,
    /// Requests per second, measured (median).
    pub measured: f64,
    /// `in_flight / latency`: what Little's law gives if nothing else binds.
    pub expected: f64,
    /// The latency used, in seconds.
    pub latency: f64,
}

/// The request latency Little's law is drawn with, for a sweep over
/// `io_in_flight`: the configured network round trip when the results record one
/// (`configured`, from the run's network profile), else the median **total** time
/// of a request at the sweep point with the fewest in flight (where queueing adds
/// least). Total, not time to first byte: Little's law's W is how long a request
/// holds its slot, which ends with its body's last byte (on loopback Garage a small
/// GET's headers come at once and its body ~40 ms later, a delayed ACK, so the two
/// differ 40-fold). Seconds, and where it came from.
pub fn littles_law_latency(
    points: &[&BackendFigures],
    configured: Option<f64>,
) -> Option<(f64, String)> {
    if let Some(rtt) = configured.filter(|s| *s > 0.0) {
        return Some((
            rtt,
            format!("the configured round trip, {:.1} ms", rtt * 1e3),
        ));
    }
    let lowest = points
        .iter()
        .filter(|f| f.sweep.is_some() && f.requests.is_some())
        .min_by(|a, b| {
            let v = |f: &BackendFigures| f.sweep.as_ref().map_or(f64::INFINITY, |p| p.value);
            v(a).total_cmp(&v(b))
        })?;
    let reqs = lowest.requests.as_ref()?;
    // The kind with the most requests (the reads, in a rechunk run).
    let main = reqs
        .kinds
        .iter()
        .filter(|k| k.total.is_some())
        .max_by(|a, b| a.count.total_cmp(&b.count))?;
    let p50 = main.total.as_ref()?.value_at_quantile(0.5) as f64 / 1e9;
    let ttfb = main
        .ttfb
        .as_ref()
        .map_or(f64::NAN, |h| h.value_at_quantile(0.5) as f64 / 1e6);
    (p50 > 0.0).then(|| {
        (
            p50,
            format!(
                "the median total time of `{}` at {} in flight, {:.2} ms (time to first byte {:.2} ms)",
                main.name,
                lowest.sweep.as_ref().map_or(0.0, |p| p.value),
                p50 * 1e3,
                ttfb
            ),
        )
    })
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
        Results::load(
            &Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/ci-schema-2.json"),
        )
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
            cpu_ms_per_item: Some(0.1),
        });
        let a = Analysis::of(&r);
        assert_eq!((a.unit, a.mb_unit), ("inputs/s", "MB/s read"));
        for f in &a.backends {
            assert_eq!(f.efficiency, Some(f.median / 2e4));
        }
    }
}
