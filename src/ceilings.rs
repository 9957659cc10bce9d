//! `harness ceilings` (alias `limits`): how fast could this machine go at all? Two
//! ceilings, measured in one run on the scenario's own dataset; `[run] ceilings =
//! true` or `harness run --ceilings` adds them to a run.
//!
//! - **IO ceiling**: read-only mode (every input read and counted, nothing else)
//!   with the parallel backends at 256 operations in flight — `uring-workers`,
//!   `uring` and `compio-rayon` where io_uring works, and `tokio-rayon` — in the scenario's cache
//!   state; the best median wins. Run through the ordinary runner, so it is verified
//!   (every input read exactly once) like any run.
//! - **CPU ceiling**: decode + reduce + encode of the scenario's data from memory
//!   on all cores (Rayon's pool), nothing read or written in the timed region;
//!   chunks are encoded as soon as they are emitted, overlapping other decodes.
//!   Inputs are loaded in batches of [`BATCH`] (untimed), so memory stays bounded
//!   by a batch plus the reducers' own state.
//!
//! A backend's efficiency is its throughput / min(IO ceiling, CPU ceiling).

use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::Context;
use rayon::prelude::*;
use rechunk_contract::nwp::workload::NwpWorkload;
use rechunk_contract::{GroupReducer, InputRef, Job, Workload};

use crate::analysis::Analysis;
pub use crate::results::Ceilings;
use crate::runner::{self, Dirs, Usage};
use crate::scenario::{BackendSpec, Recording, Scenario, WorkloadKind};
use crate::stats;

/// Inputs loaded into memory at once for the CPU ceiling, at most…
pub const BATCH: usize = 4096;
/// … and at most this many bytes of them (by their read bounds), whichever comes
/// first: a user's files may be megabytes each.
pub const BATCH_BYTES: u64 = 1 << 30;

fn read_input(job: &Job, input: &InputRef, max: u64) -> anyhow::Result<Vec<u8>> {
    use std::os::unix::fs::FileExt;
    let path = job.input_path(input);
    match input.range {
        None => Ok(rechunk_contract::input::read_input(&path, max)?),
        Some(r) => {
            let f = rechunk_contract::input::open_input(&path)?;
            let mut buf = vec![0; r.len as usize];
            f.read_exact_at(&mut buf, r.offset)
                .with_context(|| format!("reading {} at {}", path.display(), r.offset))?;
            Ok(buf)
        }
    }
}

/// One pass of decode + reduce + encode over the whole job; returns the timed
/// seconds and the CPU seconds (user + system, every thread of this process)
/// spent in them, loading excluded.
fn cpu_pass(job: &Job, workload: &NwpWorkload) -> anyhow::Result<(Duration, f64)> {
    let mut timed = Duration::ZERO;
    let mut cpu = 0.0;
    for group in &job.groups {
        let reducer = Mutex::new(workload.reduce_group(group));
        let mut batches: Vec<Vec<usize>> = vec![Vec::new()];
        let mut bytes = 0u64;
        for i in 0..group.inputs.len() {
            let read = workload.cost(group, i).read;
            let last = batches.last_mut().expect("one batch at least");
            if !last.is_empty() && (last.len() >= BATCH || bytes + read > BATCH_BYTES) {
                batches.push(Vec::new());
                bytes = 0;
            }
            bytes += read;
            batches.last_mut().expect("one batch at least").push(i);
        }
        for batch in &batches {
            crate::signals::check()?;
            let loaded = batch
                .iter()
                .map(|&i| {
                    let max = workload.cost(group, i).read;
                    read_input(job, &group.inputs[i], max).map(|b| (i, b))
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            let t = Instant::now();
            let used = Usage::now();
            // Chunks are encoded as soon as a push emits them, by the same pool, so
            // that encoding overlaps other inputs' decodes as it does in a backend
            // (a separate encode phase after all decodes would leave cores idle at
            // its edges and under-state the ceiling).
            loaded
                .into_par_iter()
                .map(|(i, bytes)| {
                    let d = workload
                        .decode(group, i, &bytes)
                        .map_err(|e| anyhow::anyhow!("decoding input {i}: {e}"))?;
                    drop(bytes);
                    let emitted = reducer
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push(i, d)
                        .map_err(|e| anyhow::anyhow!("reducing input {i}: {}", e.0))?;
                    emitted
                        .chunks
                        .into_par_iter()
                        .map(|c| {
                            workload
                                .encode(c)
                                .map(|o| o.bytes.len())
                                .map_err(|e| anyhow::anyhow!("encoding: {}", e.0))
                        })
                        .collect::<anyhow::Result<Vec<_>>>()
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            timed += t.elapsed();
            let used = Usage::now().since(&used);
            cpu += used.user_seconds + used.system_seconds;
        }
        reducer
            .into_inner()
            .unwrap_or_else(|e| e.into_inner())
            .finish()
            .map_err(|e| anyhow::anyhow!("finishing group {}: {}", group.index, e.0))?;
    }
    Ok((timed, cpu))
}

/// The CPU ceiling: `repetitions` passes; fields/s of each, the median CPU
/// milliseconds per field, and the threads used.
pub fn cpu_ceiling(scenario: &Scenario, dirs: &Dirs) -> anyhow::Result<(Vec<f64>, f64, usize)> {
    let params = &scenario.dataset.params;
    let input_root = dirs.dataset_root(scenario)?;
    // A directory of the user's files is read as it is; a generated dataset is
    // made if it is missing.
    if !matches!(params.format, rechunk_contract::nwp::Format::Grib2Dir(_)) {
        crate::dataset::ensure(
            &dirs.data,
            params,
            &input_root,
            false,
            &format!("harness gen --force {}", scenario.source.display()),
        )?;
    }
    let job = Job {
        groups: params
            .groups_at(&input_root)
            .map_err(|e| anyhow::anyhow!(e))?,
        input_root,
        output_root: dirs.output_root(scenario)?,
        limits: rechunk_contract::Limits {
            cpu_threads: rayon::current_num_threads(),
            io_in_flight: 1,
            bytes_in_flight: u64::MAX,
        },
        overlap_groups: false,
        own_outputs: None,
    };
    let workload = scenario.dataset.workload(scenario.output.params);
    let fields = job.input_count() as f64;
    let mut rates = Vec::new();
    let mut cpu_ms = Vec::new();
    for _ in 0..scenario.run.repetitions {
        let (secs, cpu) = cpu_pass(&job, &workload)?;
        rates.push(fields / secs.as_secs_f64().max(1e-9));
        cpu_ms.push(cpu * 1e3 / fields.max(1.0));
    }
    Ok((rates, stats::median(&cpu_ms), rayon::current_num_threads()))
}

/// The read-only scenario that measures the IO ceiling.
pub fn io_scenario(scenario: &Scenario) -> anyhow::Result<Scenario> {
    let mut s = scenario.clone();
    s.name = format!("{}-io-ceiling", scenario.name);
    s.workload = WorkloadKind::ReadOnly;
    s.run.ceilings = false;
    s.output.root = scenario.output.root.with_file_name(format!(
        "{}-io-ceiling",
        scenario
            .output
            .root
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    ));
    let uring = matches!(
        backend_uring::probe(),
        rechunk_contract::Availability::Available
    );
    let mut names = vec!["tokio-rayon"];
    if uring {
        names.extend(["uring", "uring-workers", "compio-rayon"]);
    }
    s.backends = names
        .into_iter()
        .map(|name| BackendSpec {
            label: name.to_string(),
            name: name.to_string(),
            limits: rechunk_contract::Limits {
                cpu_threads: crate::machine::cores(),
                io_in_flight: 256,
                bytes_in_flight: 1 << 30,
            },
            options: Default::default(),
            recording: Recording::Counters,
            sweep: None,
        })
        .collect();
    Ok(s)
}

impl Ceilings {
    /// The lower of the two: what no backend can beat.
    pub fn bound(&self) -> f64 {
        self.io_per_second.min(self.cpu_per_second)
    }

    /// Which ceiling is the lower one: `"IO"` (also on a tie) or `"CPU"`.
    pub fn bound_name(&self) -> &'static str {
        if self.io_per_second <= self.cpu_per_second {
            "IO"
        } else {
            "CPU"
        }
    }
}

/// The ceilings as a small markdown table.
pub fn table(c: &Ceilings) -> String {
    format!(
        "| ceiling | fields/s | how |\n|---|---:|---|\n| IO | {:.0} | read-only, 256 in flight, best of the parallel backends: {} ({}) |\n| CPU | {:.0} | decode + reduce + encode from memory on {} threads |\n\nThe bound is {}: {:.0} fields/s.\n",
        c.io_per_second,
        c.io_backend,
        c.io_results,
        c.cpu_per_second,
        c.cpu_threads,
        c.bound_name(),
        c.bound()
    )
}

/// Both ceilings for a scenario.
pub fn measure(scenario: &Scenario, dirs: &Dirs) -> anyhow::Result<Ceilings> {
    // The user's own files: their coordinates (the scan is reused from the cache).
    let resolved = crate::own_files::resolve(scenario, &dirs.data, &dirs.results, false)?;
    let scenario = resolved.as_ref().map_or(scenario, |(s, _)| s);
    let io = io_scenario(scenario)?;
    eprintln!(
        "IO ceiling: read-only, 256 in flight, {}",
        io.backends
            .iter()
            .map(|b| b.label.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    );
    let fix = format!("harness gen --force {}", scenario.source.display());
    let (results, run_dir) = runner::run(&io, dirs, &fix)?;
    if let Some(signal) = crate::signals::received() {
        return Err(signal.into());
    }
    let analysis = Analysis::of(&results);
    let best = analysis
        .backends
        .iter()
        .filter(|f| f.verified && f.median.is_finite())
        .max_by(|a, b| a.median.total_cmp(&b.median))
        .context("no read-only backend finished verified: no IO ceiling")?;
    eprintln!("CPU ceiling: decode + reduce + encode from memory on all cores");
    let (cpu, cpu_ms_per_item, threads) = cpu_ceiling(scenario, dirs)?;
    Ok(Ceilings {
        io_per_second: best.median,
        io_backend: best.label.clone(),
        io_results: run_dir.join("results.json").display().to_string(),
        cpu_per_second: stats::median(&cpu),
        cpu_threads: threads,
        cpu_repetitions: cpu,
        cpu_ms_per_item: cpu_ms_per_item.is_finite().then_some(cpu_ms_per_item),
    })
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::scenario;

    const SCENARIO: &str = r#"
[dataset]
groups = 1
variables = 2
steps = 3
ny = 8
nx = 8
[run]
KEY
[[backend]]
name = "sequential"
"#;

    fn measures_ceilings(run: &str) -> bool {
        let text = SCENARIO.replace("KEY", run);
        scenario::parse(&text, "s.toml", "s", Path::new("s.toml"))
            .unwrap()
            .run
            .ceilings
    }

    #[test]
    fn the_scenario_key_is_ceilings_and_limits_still_reads() {
        assert!(measures_ceilings("ceilings = true"));
        assert!(measures_ceilings("limits = true"), "the old key");
        assert!(!measures_ceilings("ceilings = false"));
        assert!(!measures_ceilings(""));
    }
}
