//! The runner: generates the dataset, then runs every backend × repetition in a fresh
//! child process of this binary, interleaved (A B A B …) so that drift on a shared
//! machine hits every backend alike, verifies each output, and rewrites
//! `results.json` after every repetition so that a crash keeps what was done.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context};
use rechunk_contract::nwp::workload::NwpWorkload;
use rechunk_contract::nwp::zarr::ArrayLayout;
use rechunk_contract::readonly::ReadOnly;
use rechunk_contract::{Availability, Cancel, Counters, Job, Recorder, Stage};
use serde::{Deserialize, Serialize};

use stores::StoreUrl;

use crate::backends::AnyBackend;
use crate::cache::{self, CacheState};
use crate::record::{self, FullRecorder, Sample};
use crate::results::{Measurement, Repetition, Results, Skipped, SCHEMA_VERSION};
use crate::safety::{DataDir, Kind, Trash};
use crate::scenario::{CacheMode, Recording, Scenario, WorkloadKind};
use crate::{dataset, machine, progress, signals, verify};

/// Where data and results live, with the data directory locked for this process
/// (see [`crate::safety`]).
#[derive(Debug)]
pub struct Dirs {
    /// Datasets and outputs; every scenario path is relative to it.
    pub data: DataDir,
    /// One folder per run of a scenario.
    pub results: PathBuf,
}

impl Dirs {
    /// Takes the lock of the data directory `data` (created if missing); refuses if
    /// another harness holds it.
    pub fn lock(data: &Path, results: &Path) -> anyhow::Result<Dirs> {
        Ok(Dirs {
            data: DataDir::lock(data, Some(results))?,
            results: results.to_path_buf(),
        })
    }

    /// The checked absolute dataset root of a scenario.
    pub fn dataset_root(&self, scenario: &Scenario) -> anyhow::Result<PathBuf> {
        self.data
            .checked(&scenario.dataset.root, Kind::Dataset)
            .with_context(|| format!("[dataset] root of {}", scenario.source.display()))
    }

    /// The checked absolute output root of a scenario.
    pub fn output_root(&self, scenario: &Scenario) -> anyhow::Result<PathBuf> {
        self.data
            .checked(&scenario.output.root, Kind::Output)
            .with_context(|| format!("[output] root of {}", scenario.source.display()))
    }
}

/// A new, empty folder for one run: `<time>-<name>`, or `<time>-<name>-2`, … when
/// a run of the same scenario started in the same second.
fn new_run_dir(results: &Path, name: &str) -> anyhow::Result<PathBuf> {
    fs::create_dir_all(results).with_context(|| format!("creating {}", results.display()))?;
    let stamp = chrono::Utc::now().format("%Y%m%d-%H%M%S");
    for n in 1..10_000 {
        let dir = match n {
            1 => results.join(format!("{stamp}-{name}")),
            n => results.join(format!("{stamp}-{name}-{n}")),
        };
        match fs::create_dir(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e).with_context(|| format!("creating {}", dir.display())),
        }
    }
    bail!("no free run folder name in {}", results.display())
}

/// How many input files the residency check samples.
const RESIDENCY_SAMPLE: usize = 256;

/// What the child process reports to the parent.
#[derive(Debug, Serialize, Deserialize)]
struct ChildReport {
    error: Option<String>,
    measurement: Option<Measurement>,
}

/// Runs a scenario; returns the results and the folder they were written to.
///
/// A signal (see [`crate::signals`]) stops it between steps: the running child is
/// stopped, the results are saved marked `interrupted`, the trash is emptied, and
/// the results are returned all the same (the caller exits with the signal's code).
/// A signal during generation returns [`crate::signals::Interrupted`] as the error.
/// `fix` is the command that makes a damaged dataset again, for the error.
pub fn run(scenario: &Scenario, dirs: &Dirs, fix: &str) -> anyhow::Result<(Results, PathBuf)> {
    let input_root = dirs.dataset_root(scenario)?;
    let output_root = dirs.output_root(scenario)?;
    crate::sizes::check_machine(scenario)?;
    let run_dir = new_run_dir(&dirs.results, &scenario.name)?;
    fs::create_dir_all(run_dir.join("reps"))
        .with_context(|| format!("creating {}", run_dir.display()))?;
    let scenario_json = run_dir.join("scenario.json");
    fs::write(&scenario_json, serde_json::to_vec_pretty(scenario)?)?;

    eprintln!("dataset {}", input_root.display());
    let dataset = dataset::ensure(
        &dirs.data,
        &scenario.dataset.params,
        &input_root,
        false,
        fix,
    )?;
    if dataset.generated {
        eprintln!(
            "  generated {} messages ({:.1} MB) in {:.1} s: {:.0} messages/s",
            dataset.messages,
            dataset.bytes as f64 / 1e6,
            dataset.generation_seconds,
            dataset.generation_rate
        );
    } else {
        eprintln!(
            "  reused ({} messages, {:.1} MB)",
            dataset.messages,
            dataset.bytes as f64 / 1e6
        );
    }

    let (git_commit, git_dirty) = machine::git_commit();
    let mut results = Results {
        schema_version: SCHEMA_VERSION,
        harness_version: env!("CARGO_PKG_VERSION").to_string(),
        git_commit,
        git_dirty,
        started_at: chrono::Utc::now().to_rfc3339(),
        finished_at: None,
        scenario: scenario.clone(),
        machine: machine::probe(dirs.data.path()),
        dataset,
        interrupted: None,
        repetitions: Vec::new(),
        skipped: Vec::new(),
        ceilings: None,
        store_copies: Vec::new(),
    };
    // A backend that cannot work here (io_uring switched off, say) is skipped, loudly
    // and in the results, never replaced by another; where it must work
    // (HARNESS_REQUIRE_IO_URING, as in CI), the run fails instead.
    let mut runnable = Vec::new();
    let mut s3_inputs = vec![None; scenario.backends.len()];
    let mut s3_outputs = vec![None; scenario.backends.len()];
    for (b, spec) in scenario.backends.iter().enumerate() {
        let backend = AnyBackend::build(spec, &scenario.s3)?;
        (s3_inputs[b], s3_outputs[b]) = backend.s3_stores();
        match backend.availability() {
            Availability::Available => runnable.push(b),
            Availability::Unavailable(why) => {
                if std::env::var_os("HARNESS_REQUIRE_IO_URING").is_some() {
                    bail!("{} is unavailable here: {why}", spec.label);
                }
                eprintln!("{}: SKIPPED, unavailable here: {why}", spec.label);
                results.skipped.push(Skipped {
                    label: spec.label.clone(),
                    reason: why,
                });
            }
        }
    }
    // Backends that read from S3 need the dataset there: uploaded once, reused while
    // the store's manifest matches.
    let mut copied: Vec<StoreUrl> = Vec::new();
    for &b in &runnable {
        let Some(url) = &s3_inputs[b] else {
            continue;
        };
        if copied.contains(url) {
            continue;
        }
        let copy = dataset::ensure_in_store(&input_root, url, &scenario.s3)?;
        eprintln!("  {copy}");
        results.store_copies.push(copy);
        copied.push(url.clone());
    }
    let results_path = run_dir.join("results.json");
    let save = |r: &Results| -> anyhow::Result<()> {
        let tmp = run_dir.join(".results.json.tmp");
        fs::write(&tmp, serde_json::to_vec_pretty(r)?)?;
        fs::rename(&tmp, &results_path)
            .with_context(|| format!("writing {}", results_path.display()))
    };
    save(&results)?;

    let files = cache::input_files(&scenario.dataset.params, &input_root);
    let mut warmed_files = 0;
    if scenario.run.cache == CacheMode::Warm {
        match cache::warm(&files) {
            Ok(n) => warmed_files = n,
            Err(e) => return stopped(e, results, &save).map(|r| (r, run_dir)),
        }
    }
    let trash = Trash::new(&dirs.data);
    // Left by an earlier run that was stopped: no other run holds the lock now.
    trash.empty(&dirs.data)?;

    // Warm-ups first, then the measured repetitions interleaved across backends.
    let mut schedule = Vec::new();
    for w in 0..scenario.run.warmup {
        for &b in &runnable {
            schedule.push((b, w, true));
        }
    }
    for rep in 0..scenario.run.repetitions {
        for &b in &runnable {
            schedule.push((b, rep, false));
        }
    }
    let layout = ArrayLayout::new(scenario.dataset.params.clone(), scenario.output.params);
    for (step, &(b, index, warmup)) in schedule.iter().enumerate() {
        if let Some(signal) = signals::received() {
            results.interrupted = Some(signals::signal_name(signal.0));
            break;
        }
        let spec = &scenario.backends[b];
        eprintln!(
            "[{}/{}] {}{} repetition {}",
            step + 1,
            schedule.len(),
            spec.label,
            if warmup { " warm-up" } else { "" },
            index + 1
        );
        // Moved aside, not deleted: on a filesystem like ext4 without a journal,
        // creating files within minutes of deleting others makes the inode
        // allocator skip every recently deleted inode, and that scan (measured:
        // half the wall time of `sequential` on `quick`) would be charged to the
        // next repetition. The trash goes when the run ends.
        dirs.data
            .empty_output(&output_root, &trash)
            .context("emptying the output directory before the repetition")?;

        let mut cache_state = CacheState {
            requested: scenario.run.cache,
            fadvise_files: 0,
            warmed_files: if step == 0 { warmed_files } else { 0 },
            dropped_page_cache: false,
            sampled_files: 0,
            resident_fraction: 0.0,
        };
        if scenario.run.cache == CacheMode::Cold {
            let (advised, dropped) = match cache::evict(&files, scenario.run.drop_caches) {
                Ok(x) => x,
                Err(e) if e.is::<signals::Interrupted>() => break,
                Err(e) => return Err(e),
            };
            cache_state.fadvise_files = advised;
            cache_state.dropped_page_cache = dropped;
        }
        let (sampled, resident) = cache::resident_fraction(&files, RESIDENCY_SAMPLE);
        cache_state.sampled_files = sampled;
        cache_state.resident_fraction = resident;

        let rep_file = run_dir.join("reps").join(format!(
            "{}-{}{}.json",
            spec.label,
            if warmup { "warmup-" } else { "" },
            index
        ));
        let mut child = Command::new(std::env::current_exe()?);
        die_with_parent(&mut child);
        // Credentials from the scenario's [s3] table are not in scenario.json: the
        // child gets them in its environment, as if the user had exported them.
        if let (Some(id), Some(secret)) =
            (&scenario.s3.access_key_id, &scenario.s3.secret_access_key)
        {
            child
                .env("AWS_ACCESS_KEY_ID", id)
                .env("AWS_SECRET_ACCESS_KEY", secret);
        }
        child
            .arg("__rep")
            .arg("--run-dir")
            .arg(&run_dir)
            .arg("--backend")
            .arg(b.to_string())
            .arg("--data-dir")
            .arg(dirs.data.path())
            .arg("--out")
            .arg(&rep_file)
            .arg("--progress-label")
            .arg(format!(
                "{}{} {}/{}",
                spec.label,
                if warmup { " warm-up" } else { " repetition" },
                index + 1,
                if warmup {
                    scenario.run.warmup
                } else {
                    scenario.run.repetitions
                }
            ));
        let status = supervise(child)?;
        let report: Option<ChildReport> = fs::read(&rep_file)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok());
        let (error, measurement) = match report {
            Some(r) => (r.error, r.measurement),
            None => (
                Some(format!(
                    "the child process died ({status}) without a report"
                )),
                None,
            ),
        };
        let ok = error.is_none() && status.success();
        let verification = ok.then(|| match (scenario.workload, &measurement) {
            (WorkloadKind::Rechunk, _) => match &s3_outputs[b] {
                None => verify::verify(
                    &layout,
                    &output_root,
                    scenario.run.verify_max_chunks,
                    index as u64,
                ),
                Some(url) => match verify::InStore::open(url, &scenario.s3) {
                    Ok(objects) => verify::verify_objects(
                        &layout,
                        &objects,
                        scenario.run.verify_max_chunks,
                        index as u64,
                    ),
                    Err(e) => verify::Verification {
                        problems: vec![format!("{url}: {e}")],
                        ..Default::default()
                    },
                },
            },
            (WorkloadKind::ReadOnly, m) => verify::verify_read_only(
                &output_root,
                m.as_ref().map_or(0, |m| m.outcome.inputs),
                m.as_ref().map_or(0, |m| m.outcome.input_bytes),
                results.dataset.messages,
                results.dataset.bytes,
            ),
        });
        let counts = verification.as_ref().is_some_and(|v| v.ok);
        match (&error, &verification, &measurement) {
            (Some(e), _, _) => eprintln!("  FAILED: {e}"),
            (None, Some(v), Some(m)) => eprintln!(
                "  {:.0} fields/s, {:.2} s wall, verified {}",
                m.items_per_second,
                m.wall_seconds,
                if v.ok && scenario.workload == WorkloadKind::ReadOnly {
                    "ok (every input read once, nothing written)".to_string()
                } else if v.ok {
                    format!(
                        "ok ({} of {} chunks checked)",
                        v.chunks_checked, v.chunks_expected
                    )
                } else {
                    format!("FAILED: {}", v.problems.join("; "))
                }
            ),
            _ => {}
        }
        results.repetitions.push(Repetition {
            label: spec.label.clone(),
            backend: spec.name.clone(),
            index,
            warmup,
            ok,
            error,
            counts,
            measurement,
            cache: cache_state,
            verification,
        });
        save(&results)?;
    }
    if let (None, Some(signal)) = (&results.interrupted, signals::received()) {
        results.interrupted = Some(signals::signal_name(signal.0));
    }
    results.finished_at = Some(chrono::Utc::now().to_rfc3339());
    save(&results)?;
    if let Err(e) = trash.empty(&dirs.data) {
        eprintln!("warning: the earlier outputs moved aside were not deleted: {e:#}");
    }
    Ok((results, run_dir))
}

/// A step before the repetitions failed with `e`: if a signal caused it, the
/// results are saved marked as interrupted and returned; otherwise `e`.
fn stopped(
    e: anyhow::Error,
    mut results: Results,
    save: &dyn Fn(&Results) -> anyhow::Result<()>,
) -> anyhow::Result<Results> {
    match e.downcast_ref::<signals::Interrupted>() {
        Some(signal) => {
            results.interrupted = Some(signals::signal_name(signal.0));
            results.finished_at = Some(chrono::Utc::now().to_rfc3339());
            save(&results)?;
            Ok(results)
        }
        None => Err(e),
    }
}

/// Makes the child process die with this one, whatever ends it (SIGKILL included):
/// `PR_SET_PDEATHSIG`, set after fork, checked against a parent that already died.
fn die_with_parent(cmd: &mut Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: getpid has no preconditions.
    let parent = unsafe { libc::getpid() };
    // SAFETY: the closure runs between fork and exec and calls only
    // async-signal-safe functions (prctl, getppid, _exit).
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            if libc::getppid() != parent {
                libc::_exit(1);
            }
            Ok(())
        });
    }
}

/// Starts the repetition's child and waits for it; on a signal, stops it with
/// SIGTERM (it cancels its backend and reports) and kills it if it has not ended
/// after [`signals::CHILD_GRACE`].
fn supervise(mut cmd: Command) -> anyhow::Result<std::process::ExitStatus> {
    let mut child = cmd
        .spawn()
        .context("starting the repetition's child process")?;
    let mut stopped_at: Option<Instant> = None;
    loop {
        if let Some(status) = child.try_wait().context("waiting for the child process")? {
            return Ok(status);
        }
        if signals::received().is_some() {
            match stopped_at {
                None => {
                    // SAFETY: kill on our own child's pid.
                    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
                    stopped_at = Some(Instant::now());
                }
                Some(t) if t.elapsed() > signals::CHILD_GRACE => {
                    let _ = child.kill();
                }
                Some(_) => {}
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

/// The child side of one repetition: build the job, run the backend, measure, and
/// write the report. Returns whether the backend succeeded.
pub fn child(
    run_dir: &Path,
    backend: usize,
    data_dir: &Path,
    out: &Path,
    progress_label: &str,
) -> anyhow::Result<bool> {
    let scenario: Scenario = serde_json::from_slice(&fs::read(run_dir.join("scenario.json"))?)?;
    let spec = scenario
        .backends
        .get(backend)
        .with_context(|| format!("no backend #{backend} in the scenario"))?;
    let params = &scenario.dataset.params;
    let input_root = data_dir.join(&scenario.dataset.root);
    let job = Arc::new(Job {
        groups: params
            .groups_at(&input_root)
            .map_err(|e| anyhow::anyhow!(e))?,
        input_root,
        output_root: data_dir.join(&scenario.output.root),
        limits: spec.limits,
        overlap_groups: scenario.run.overlap_groups,
    });
    let nwp = NwpWorkload::new(params.clone(), scenario.output.params);
    let (rechunk, read_only) = match scenario.workload {
        WorkloadKind::Rechunk => (Some(Arc::new(nwp)), None),
        WorkloadKind::ReadOnly => (None, Some(Arc::new(ReadOnly(nwp)))),
    };
    let backend_impl = AnyBackend::build(spec, &scenario.s3)?;
    // Untimed: loading a memory store, emptying an S3 output.
    let prepared = match backend_impl.prepare(&job) {
        Ok(d) => d,
        Err(e) => {
            let report = ChildReport {
                error: Some(e.to_string()),
                measurement: None,
            };
            fs::write(out, serde_json::to_vec_pretty(&report)?)
                .with_context(|| format!("writing {}", out.display()))?;
            return Ok(false);
        }
    };

    let cancel = Cancel::new();
    // SIGINT or SIGTERM cancels the run; a second one exits at once.
    signals::install(Some(cancel.clone()))?;
    let counters = Arc::new(Counters::new());
    let full =
        (spec.recording == Recording::Full).then(|| Arc::new(FullRecorder::new(counters.clone())));
    let recorder: Arc<dyn Recorder> = match &full {
        Some(f) => f.clone(),
        None => counters.clone(),
    };
    let total = job.input_count() as u64;
    let done = AtomicBool::new(false);
    // The harness's own threads (main, the Ctrl-C handler) before the run; the
    // sampler thread started below takes the place of the calling thread in the count.
    let baseline_threads = thread_count();
    let usage_before = rusage();
    let start = Instant::now();
    let timeline_start = full.as_ref().map_or(start, |f| f.start());
    let (result, wall, (threads, samples)) = std::thread::scope(|s| {
        let sampler = s.spawn(|| {
            let bar = progress::bar(
                total,
                &format!("{} {}", scenario.name, progress_label),
                "fields",
            );
            let stage = match scenario.workload {
                WorkloadKind::Rechunk => Stage::Reduce,
                WorkloadKind::ReadOnly => Stage::Read,
            };
            let mut max_threads = 0;
            let mut samples = Vec::new();
            // One sample at the start and one after the end at least, so that even a
            // run shorter than a bucket has its gauges.
            loop {
                let finished = done.load(Ordering::Acquire);
                let threads = thread_count();
                max_threads = max_threads.max(threads);
                let c = counters.gauges();
                samples.push(Sample {
                    t: timeline_start.elapsed().as_secs_f64(),
                    io_in_flight: c.0,
                    bytes_in_flight: c.1,
                    threads,
                });
                bar.set_position(counters.items(stage));
                if finished {
                    break;
                }
                std::thread::sleep(record::BUCKET);
            }
            bar.finish_and_clear();
            (max_threads, samples)
        });
        let r = match (&rechunk, &read_only) {
            (Some(w), _) => backend_impl.run(&job, w, &recorder, &cancel),
            (_, Some(w)) => backend_impl.run(&job, w, &recorder, &cancel),
            (None, None) => unreachable!("one workload is built"),
        };
        // Taken before joining the sampler, whose sleep must not count as the run's.
        let wall = start.elapsed().as_secs_f64();
        done.store(true, Ordering::Release);
        let (mut threads, samples) = sampler.join().unwrap_or_default();
        threads = threads.max(thread_count());
        (r, wall, (threads.saturating_sub(baseline_threads), samples))
    });
    let (stages, timeline) = match &full {
        Some(f) => {
            let (stages, mut timeline) = f.finish();
            timeline.samples = samples;
            (stages, Some(timeline))
        }
        None => (Default::default(), None),
    };
    let usage_after = rusage();

    // Untimed, whether the run succeeded or not (the contract): copying a memory
    // output to where it is verified. The run's own error comes first.
    let finished = backend_impl.finish(&job);
    let result = result.and_then(|mut outcome| {
        outcome.details.extend(prepared);
        outcome.details.extend(finished?);
        Ok(outcome)
    });
    let report = match result {
        Ok(outcome) => {
            let inputs = outcome.inputs as f64;
            ChildReport {
                error: None,
                measurement: Some(Measurement {
                    wall_seconds: wall,
                    user_seconds: usage_after.0 - usage_before.0,
                    system_seconds: usage_after.1 - usage_before.1,
                    peak_rss_bytes: peak_rss().unwrap_or(usage_after.2),
                    voluntary_switches: usage_after.3 - usage_before.3,
                    involuntary_switches: usage_after.4 - usage_before.4,
                    threads,
                    items_per_second: inputs / wall,
                    decoded_mb_per_second: inputs * params.field_bytes() as f64 / wall / 1e6,
                    input_mb_per_second: outcome.input_bytes as f64 / wall / 1e6,
                    counters: counters.snapshot(),
                    outcome,
                    recording: spec.recording,
                    stages,
                    timeline,
                }),
            }
        }
        Err(e) => ChildReport {
            error: Some(e.to_string()),
            measurement: None,
        },
    };
    let ok = report.error.is_none();
    fs::write(out, serde_json::to_vec_pretty(&report)?)
        .with_context(|| format!("writing {}", out.display()))?;
    Ok(ok)
}

/// (user seconds, system seconds, peak RSS bytes, voluntary and involuntary context
/// switches) of this process.
fn rusage() -> (f64, f64, u64, u64, u64) {
    // SAFETY: getrusage fills the struct we pass.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    (
        secs(u.ru_utime),
        secs(u.ru_stime),
        u.ru_maxrss as u64 * 1024,
        u.ru_nvcsw as u64,
        u.ru_nivcsw as u64,
    )
}

/// This process's peak resident set (`VmHWM`). Not getrusage's `ru_maxrss`: that
/// survives fork and exec, so a child started by a parent that had just generated a
/// dataset reported the parent's 708 MiB for every backend.
fn peak_rss() -> Option<u64> {
    status_field("VmHWM:").map(|kb| kb * 1024)
}

fn status_field(name: &str) -> Option<u64> {
    fs::read_to_string("/proc/self/status").ok().and_then(|s| {
        s.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
    })
}

fn thread_count() -> u64 {
    status_field("Threads:").unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::new_run_dir;

    #[test]
    fn runs_started_in_the_same_second_get_their_own_folders() {
        let dir = tempfile::tempdir().unwrap();
        let a = new_run_dir(dir.path(), "s").unwrap();
        let b = new_run_dir(dir.path(), "s").unwrap();
        let c = new_run_dir(dir.path(), "s").unwrap();
        assert!(a != b && b != c && a != c);
        assert!(b.to_string_lossy().ends_with("-s-2") || b.to_string_lossy().ends_with("-s"));
    }
}
