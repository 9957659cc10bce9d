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
use rechunk_contract::nwp::zarr::ArrayLayout;
use rechunk_contract::nwp::Format;
use rechunk_contract::readonly::ReadOnly;
use rechunk_contract::{Availability, Cancel, Counters, Job, Recorder, Stage};
use serde::{Deserialize, Serialize};

use stores::StoreUrl;

use crate::backends::AnyBackend;
use crate::cache::{self, CacheState};
use crate::record::{self, FullRecorder, Sample};
use crate::results::{Measurement, Repetition, Results, Skipped, SCHEMA_VERSION};
use crate::safety::{DataDir, Kind, Trash};
use crate::scenario::{BackendSpec, CacheMode, Recording, Scenario, WorkloadKind};
use crate::split::{Part, ShardId};
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
        // The user's own files: read only, anywhere (`own_files::resolve` checked
        // that it overlaps nothing the harness writes).
        if let Format::Grib2Dir(d) = &scenario.dataset.params.format {
            return Ok(d.attributes.source.clone());
        }
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

/// A results folder for shard `shard` of a split job: `<results>/shard-I-of-N`,
/// where the other shards' folders are too (the merge reads them all). A rerun of
/// the shard writes into the same folder, replacing its results.
fn shard_run_dir(results: &Path, shard: ShardId) -> anyhow::Result<PathBuf> {
    let dir = results.join(shard.folder());
    if fs::symlink_metadata(&dir).is_ok_and(|m| !m.is_dir()) {
        bail!(
            "{} exists and is not a directory: not a shard's results folder",
            dir.display()
        );
    }
    fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    // Written to, never through a link someone put there.
    for name in [
        "results.json",
        "scenario.json",
        "reps",
        "results.previous.json",
    ] {
        if fs::symlink_metadata(dir.join(name)).is_ok_and(|m| m.file_type().is_symlink()) {
            bail!(
                "{} is a symbolic link: refusing to write a shard's results through it",
                dir.join(name).display()
            );
        }
    }
    // The earlier results are moved aside at once: a rerun that fails before it
    // saves its own must not leave them there to be merged as this run's. Only a
    // shard's results file is moved, and only over another one: a file of any
    // other kind there is refused and left as it is.
    let is_shard_results =
        |p: &Path| Results::load(p).is_ok_and(|r| r.shard.is_some_and(|s| s.shard == shard));
    let (current, previous) = (dir.join("results.json"), dir.join("results.previous.json"));
    for p in [&current, &previous] {
        if fs::symlink_metadata(p).is_ok() && !is_shard_results(p) {
            bail!(
                "{} is not shard {shard}'s results file: refusing to move or replace it \
                 (give the shards another --results-dir)",
                p.display()
            );
        }
    }
    if current.exists() {
        fs::rename(dir.join("results.json"), dir.join("results.previous.json"))
            .with_context(|| format!("moving the earlier results in {} aside", dir.display()))?;
        eprintln!(
            "shard {shard}: replacing the earlier results in {} (kept as results.previous.json \
             until this run saves its own)",
            dir.display()
        );
    }
    Ok(dir)
}

/// How a run is one shard of a split job (`harness run --shard I/N`).
#[derive(Clone, Debug)]
pub struct Sharding {
    /// Which shard.
    pub id: ShardId,
    /// Where its results are also uploaded (`<url>/shard-I-of-N/results.json`).
    pub results_url: Option<StoreUrl>,
    /// Start every repetition together with the other shards, waiting at most this
    /// long for them (see [`crate::barrier`]); `None`: run free.
    pub barrier: Option<std::time::Duration>,
    /// The job's id, shared by its shards (checked by `split::check_job_id`).
    pub job: Option<String>,
}

/// Set, this environment variable makes a backend that cannot run here (io_uring
/// switched off, no S3 configured) fail the run instead of being skipped.
pub const REQUIRE_ALL_BACKENDS: &str = "HARNESS_REQUIRE_ALL_BACKENDS";

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
/// Four steps: `Run::prepare` (paths, sizes, the dataset, the results skeleton,
/// which backends can run, S3 copies, the page cache), [`schedule`], then
/// `Run::repetition` for each scheduled one (the child process) followed by
/// `Run::verify`, and `Run::finish`.
///
/// A signal (see [`crate::signals`]) stops it between steps: the running child is
/// stopped, the results are saved marked `interrupted`, the trash is emptied, and
/// the results are returned all the same (the caller exits with the signal's code).
/// A signal during generation returns [`crate::signals::Interrupted`] as the error.
/// `fix` is the command that makes a damaged dataset again, for the error.
pub fn run(scenario: &Scenario, dirs: &Dirs, fix: &str) -> anyhow::Result<(Results, PathBuf)> {
    run_shard(scenario, dirs, fix, None)
}

/// Rounds added after the scenario's repetitions while `more` asks for them (the
/// regression gate, until it can decide), up to a time cap.
pub struct Adaptive<'f> {
    /// Given the results so far (every round complete), whether another round
    /// would help.
    pub more: &'f mut dyn FnMut(&Results) -> bool,
    /// No round is started after this long since the first repetition started.
    pub cap: std::time::Duration,
    /// At most this many rounds in all.
    pub max_rounds: u32,
}

/// [`run`], adding rounds as `adaptive` asks.
pub fn run_adaptive(
    scenario: &Scenario,
    dirs: &Dirs,
    fix: &str,
    adaptive: Adaptive<'_>,
) -> anyhow::Result<(Results, PathBuf)> {
    run_with(scenario, dirs, fix, None, Some(adaptive))
}

/// [`run`], as one shard of a split job when `sharding` says so: only the shard's
/// part of the job (see [`crate::split`]), only its own output objects emptied
/// before each repetition and verified after, its results in `shard-I-of-N/`
/// (and uploaded, when asked).
pub fn run_shard(
    scenario: &Scenario,
    dirs: &Dirs,
    fix: &str,
    sharding: Option<&Sharding>,
) -> anyhow::Result<(Results, PathBuf)> {
    run_with(scenario, dirs, fix, sharding, None)
}

fn run_with(
    scenario: &Scenario,
    dirs: &Dirs,
    fix: &str,
    sharding: Option<&Sharding>,
    mut adaptive: Option<Adaptive<'_>>,
) -> anyhow::Result<(Results, PathBuf)> {
    // A directory of the user's files: scanned (or its scan reused) first; the
    // run uses the scenario with the coordinates it found.
    let resolved = crate::own_files::resolve(scenario, &dirs.data, &dirs.results, false)?;
    let (scenario, scan) = match &resolved {
        Some((s, info)) => (s, Some(info.clone())),
        None => (scenario, None),
    };
    let mut run = match Run::prepare(scenario, dirs, fix, scan, sharding)? {
        Prepared::Ready(run) => run,
        Prepared::Stopped(results, dir) => return Ok((*results, dir)),
    };
    let fixed_first = run.oracle.is_some();
    let mut schedule = schedule(scenario, &run.runnable, fixed_first);
    let mut barrier = match sharding {
        Some(Sharding {
            id,
            results_url,
            barrier: Some(timeout),
            job,
        }) => Some(crate::barrier::Barrier::open(
            results_url.as_ref(),
            &dirs.results,
            job.as_deref()
                .context("--barrier needs the job's id (--job)")?,
            *id,
            *timeout,
            &scenario.s3,
        )?),
        _ => None,
    };
    let started = Instant::now();
    let mut step = 0;
    while signals::received().is_none() {
        if step == schedule.len() {
            let Some(a) = adaptive.as_mut() else {
                break;
            };
            let rounds = run.results.scenario.run.repetitions;
            let stopped = if !(a.more)(&run.results) {
                Some("decided".to_string())
            } else if started.elapsed() >= a.cap {
                Some(format!("the time cap of {} s was reached", a.cap.as_secs()))
            } else if rounds >= a.max_rounds {
                Some(format!("the most rounds ({}) were run", a.max_rounds))
            } else {
                None
            };
            run.results.rounds = Some(crate::results::Rounds {
                asked: scenario.run.repetitions,
                run: rounds,
                cap_seconds: a.cap.as_secs_f64(),
                stopped: stopped.clone().unwrap_or_else(|| "running".into()),
            });
            if stopped.is_some() {
                run.save()?;
                break;
            }
            eprintln!("the gate cannot decide yet: round {} added", rounds + 1);
            schedule.extend(round(&run.runnable, rounds, false, fixed_first));
            run.results.scenario.run.repetitions = rounds + 1;
        }
        let slot = schedule[step];
        eprintln!(
            "[{}/{}] {}{} repetition {}",
            step + 1,
            schedule.len(),
            scenario.backends[slot.backend].label,
            if slot.warmup { " warm-up" } else { "" },
            slot.index + 1
        );
        let Some(rep) = run.repetition(step, &slot, barrier.as_mut())? else {
            break;
        };
        run.results.repetitions.push(rep);
        run.save()?;
        step += 1;
    }
    run.finish()
}

/// One scheduled repetition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Slot {
    /// Index of the backend in the scenario.
    pub backend: usize,
    /// Repetition (or warm-up round) number, from 0.
    pub index: u32,
    /// A warm-up round, never counted.
    pub warmup: bool,
}

/// Warm-up rounds first, then the measured repetitions, each round interleaving the
/// runnable backends (A B A B …) so that drift hits every backend alike, each round
/// in its own order ([`round`]).
pub fn schedule(scenario: &Scenario, runnable: &[usize], fixed_first: bool) -> Vec<Slot> {
    let warmups = (0..scenario.run.warmup).flat_map(|i| round(runnable, i, true, fixed_first));
    let measured =
        (0..scenario.run.repetitions).flat_map(|i| round(runnable, i, false, fixed_first));
    warmups.chain(measured).collect()
}

/// One round: every runnable backend once, in an order shuffled by the round's
/// number. A fixed order gave a place in it an effect of its own (measured: the
/// `mock`, sequential's work under another label, ran 3.9 % faster than
/// `sequential` over 40 quiet rounds when it came last and sequential first, and
/// 3–12 % slower beside a CPU hog), which pairing cannot cancel and the gate read
/// as a change; shuffled, a place's effect is spread over every backend as noise
/// that more rounds average out. Seeded by the round alone, so every shard of a
/// split job runs the same order (their barrier pairs step k with step k). With
/// `fixed_first` the first backend stays first (the reference of a grib2-dir run,
/// whose first output the others are compared with).
pub fn round(runnable: &[usize], index: u32, warmup: bool, fixed_first: bool) -> Vec<Slot> {
    let mut order = runnable.to_vec();
    let from = usize::from(fixed_first && !order.is_empty());
    let mut rng = crate::stats::Rng::new(0x5eed_0000 + u64::from(index) * 2 + u64::from(warmup));
    let rest = &mut order[from..];
    for i in (1..rest.len()).rev() {
        rest.swap(i, rng.below(i + 1));
    }
    order
        .into_iter()
        .map(|backend| Slot {
            backend,
            index,
            warmup,
        })
        .collect()
}

/// A run being carried out: what every repetition needs.
struct Run<'a> {
    scenario: &'a Scenario,
    dirs: &'a Dirs,
    run_dir: PathBuf,
    results: Results,
    output_root: PathBuf,
    layout: ArrayLayout,
    /// The dataset's files, for cache eviction and residency.
    files: Vec<PathBuf>,
    /// Files read to warm the cache before the first repetition.
    warmed_files: u64,
    trash: Trash,
    /// The most bytes one repetition wrote so far: the trash is emptied early
    /// when the disk has less than twice this (and a GiB) free.
    largest_output: u64,
    /// Backends (by index) that can run here.
    runnable: Vec<usize>,
    /// Per backend, the S3 output it writes, verified in the store.
    s3_outputs: Vec<Option<StoreUrl>>,
    /// For a dataset without a closed form (grib2-dir): the reference output.
    oracle: Option<Oracle>,
    /// When the run is one shard of a split job: how, and its part.
    sharding: Option<(Sharding, Part)>,
}

/// Where the reference outputs are kept, inside `outputs/`.
pub const ORACLES: &str = ".oracle";

/// The reference output of a run whose dataset has no closed form: the first
/// output of the [`crate::scenario::ORACLE`] backend, which runs first in every
/// round, checked for structure and kept aside; every later output is compared
/// with it value for value.
struct Oracle {
    /// The backend (index in the scenario).
    backend: usize,
    /// Where its output is kept: `outputs/.oracle/<output root in outputs>`, a
    /// marked output directory.
    root: PathBuf,
    /// What made it (`sequential, warm-up 1`), once it is there.
    made_by: Option<String>,
    /// Why there is none, if its run or verification failed.
    failed: Option<String>,
}

/// What [`Run::prepare`] ends with.
enum Prepared<'a> {
    Ready(Box<Run<'a>>),
    /// A signal came while the cache was being prepared: the results so far.
    Stopped(Box<Results>, PathBuf),
}

impl<'a> Run<'a> {
    /// Everything before the first repetition.
    fn prepare(
        scenario: &'a Scenario,
        dirs: &'a Dirs,
        fix: &str,
        scan: Option<crate::own_files::ScanInfo>,
        sharding: Option<&Sharding>,
    ) -> anyhow::Result<Prepared<'a>> {
        let input_root = dirs.dataset_root(scenario)?;
        let output_root = dirs.output_root(scenario)?;
        crate::sizes::check_machine(scenario)?;
        let layout = ArrayLayout::new(scenario.dataset.params.clone(), scenario.output.params);
        let sharding = match sharding {
            None => None,
            Some(s) => {
                if scenario.workload != WorkloadKind::Rechunk {
                    bail!(
                        "--shard splits a rechunk; a read-only run ([workload] kind = \
                         \"read-only\") is not split"
                    );
                }
                if scenario.run.ceilings {
                    bail!("--shard: the ceilings ([run] ceilings) are measured by a whole run, not a shard");
                }
                let part = Part::of(s.id, &layout);
                eprintln!("{}", part.describe());
                Some((s.clone(), part))
            }
        };
        let run_dir = match &sharding {
            None => new_run_dir(&dirs.results, &scenario.name)?,
            Some((s, _)) => shard_run_dir(&dirs.results, s.id)?,
        };
        fs::create_dir_all(run_dir.join("reps"))
            .with_context(|| format!("creating {}", run_dir.display()))?;
        fs::write(
            run_dir.join("scenario.json"),
            serde_json::to_vec_pretty(scenario)?,
        )?;
        let mut dataset = match scan {
            Some(scan) => crate::own_files::dataset_info(&scenario.dataset.params, scan),
            None => ensure_dataset(scenario, dirs, &input_root, fix)?,
        };
        if let Some(d) = scenario.dataset.decoder {
            dataset.decoder = Some(format!("{} = {}", d.name(), d.version()));
        }
        let mut results = new_results(scenario, dirs, dataset);
        let files = match &sharding {
            None => cache::input_files(&scenario.dataset.params, &input_root),
            Some((_, part)) => part_files(scenario, &input_root, part)?,
        };
        if let Some((s, part)) = &sharding {
            results.shard = Some(crate::results::ShardRecord {
                shard: s.id,
                units: part.units.len() as u64,
                first_unit: part.units.first().map(|u| (u.group, u.row)),
                last_unit: part.units.last().map(|u| (u.group, u.row)),
                inputs: part.inputs,
                job_inputs: part.job_inputs,
                writes_metadata: s.id.writes_metadata(),
                job: s.job.clone(),
                output_root: output_root.display().to_string(),
                results_url: s
                    .results_url
                    .as_ref()
                    .map(|u| format!("{}/{}/", u.to_string().trim_end_matches('/'), s.id.folder())),
            });
        }
        let mut run = Box::new(Run {
            scenario,
            dirs,
            results,
            run_dir,
            output_root,
            layout,
            files,
            warmed_files: 0,
            trash: Trash::new(&dirs.data),
            largest_output: 0,
            runnable: Vec::new(),
            s3_outputs: vec![None; scenario.backends.len()],
            oracle: None,
            sharding,
        });
        let s3_inputs = run.choose_backends()?;
        run.choose_oracle(&s3_inputs)?;
        run.results.network = Some(run.network(&s3_inputs)?);
        run.copy_to_stores(&input_root, &s3_inputs)?;
        run.save()?;
        // Uploaded at the start too: a rerun killed before its end must not leave
        // the earlier, complete-looking results there.
        run.upload()?;
        if scenario.run.cache == CacheMode::Warm {
            match cache::warm(&run.files) {
                Ok(n) => run.warmed_files = n,
                Err(e) => {
                    let path = run.run_dir.join("results.json");
                    let results = stopped(e, run.results, &|r| r.save(&path))?;
                    return Ok(Prepared::Stopped(Box::new(results), run.run_dir));
                }
            }
        }
        // Left by an earlier run that was stopped: no other run holds the lock now.
        run.trash.empty(&dirs.data)?;
        Ok(Prepared::Ready(run))
    }

    /// Which backends can run here; returns each backend's S3 input, if any. A
    /// backend that cannot work here (io_uring switched off, say) is skipped, loudly
    /// and in the results, never replaced by another; where every one must work
    /// ([`REQUIRE_ALL_BACKENDS`], as in CI), the run fails instead.
    fn choose_backends(&mut self) -> anyhow::Result<Vec<Option<StoreUrl>>> {
        let mut s3_inputs = vec![None; self.scenario.backends.len()];
        for (b, spec) in self.scenario.backends.iter().enumerate() {
            let backend = AnyBackend::build(spec, &self.scenario.s3)?;
            (s3_inputs[b], self.s3_outputs[b]) = backend.s3_stores();
            match backend.availability() {
                Availability::Available => self.runnable.push(b),
                Availability::Unavailable(why) => {
                    if std::env::var_os(REQUIRE_ALL_BACKENDS).is_some() {
                        bail!("{} is unavailable here: {why}", spec.label);
                    }
                    eprintln!("{}: SKIPPED, unavailable here: {why}", spec.label);
                    self.results.skipped.push(Skipped {
                        label: spec.label.clone(),
                        reason: why,
                    });
                }
            }
        }
        Ok(s3_inputs)
    }

    /// For a dataset without a closed form: the reference backend first in every
    /// round, where its output will be kept. Its inputs must be local files.
    fn choose_oracle(&mut self, s3_inputs: &[Option<StoreUrl>]) -> anyhow::Result<()> {
        let Format::Grib2Dir(_) = self.scenario.dataset.params.format else {
            return Ok(());
        };
        if let Some(&b) = self.runnable.iter().find(|&&b| s3_inputs[b].is_some()) {
            bail!(
                "{} reads its inputs from S3, but kind = \"{}\" reads your files where they \
                 are: use a local input store for it",
                self.scenario.backends[b].label,
                rechunk_contract::gribdir::KIND
            );
        }
        if self.scenario.workload != WorkloadKind::Rechunk {
            return Ok(());
        }
        let name = crate::scenario::ORACLE;
        let Some(at) = self
            .runnable
            .iter()
            .position(|&b| self.scenario.backends[b].name == name)
        else {
            let why = match self.scenario.backends.iter().any(|b| b.name == name) {
                true => "cannot run here",
                false => "is not in the scenario",
            };
            bail!(
                "kind = \"{}\" has no closed form: outputs are verified against the `{name}` \
                 backend's, which {why}",
                rechunk_contract::gribdir::KIND
            );
        };
        let backend = self.runnable.remove(at);
        self.runnable.insert(0, backend);
        // `outputs/.oracle/<the output root's path in outputs>`: a hidden name no
        // scenario's output root can take, emptied now so that no earlier run's
        // reference is ever compared with.
        let outputs = self.dirs.data.path().join("outputs");
        let rel = self.output_root.strip_prefix(&outputs).with_context(|| {
            format!(
                "{} is not in {}",
                self.output_root.display(),
                outputs.display()
            )
        })?;
        // A shard keeps its part of the reference apart: shards run one after
        // another in one data directory must not replace each other's.
        let root = match &self.sharding {
            None => outputs.join(ORACLES).join(rel),
            Some((s, _)) => outputs.join(ORACLES).join(s.id.folder()).join(rel),
        };
        self.dirs.data.empty_output(&root, &self.trash)?;
        self.oracle = Some(Oracle {
            backend,
            root,
            made_by: None,
            failed: None,
        });
        Ok(())
    }

    /// The network this run's S3 requests cross: the delay proxy that
    /// `HARNESS_S3_NET` (from `scripts/s3-server env`) names, when the run uses S3
    /// through it, and the backends with an in-process throttle. A malformed
    /// `HARNESS_S3_NET` is an error: a run must not record a profile it misread.
    fn network(&self, s3_inputs: &[Option<StoreUrl>]) -> anyhow::Result<crate::results::Network> {
        let uses_s3 = self
            .runnable
            .iter()
            .any(|&b| s3_inputs[b].is_some() || self.s3_outputs[b].is_some());
        let setting = match std::env::var(crate::netem::NET_ENV) {
            Ok(text) => crate::netem::parse_setting(&text).map_err(anyhow::Error::msg)?,
            Err(_) => None,
        };
        let endpoint = self.scenario.s3.endpoint().unwrap_or_default();
        let mut note = None;
        let proxy = match setting {
            Some(p) if !uses_s3 => {
                note = Some(format!(
                    "a delay proxy ({}) was running but no backend used S3",
                    p.listen
                ));
                None
            }
            Some(p) if !endpoint_is(&endpoint, &p.listen) => {
                note = Some(format!(
                    "a delay proxy ({}) was running but the S3 endpoint was {endpoint}, not it",
                    p.listen
                ));
                None
            }
            Some(p) => Some(crate::results::ProxyNetwork {
                listen: p.listen,
                upstream: p.upstream,
                rtt_ms: p.profile.rtt.as_secs_f64() * 1e3,
                jitter_ms: p.profile.jitter.as_secs_f64() * 1e3,
                rate_bits_per_second: p.profile.rate_bits,
                buffer_bytes: p.profile.buffer as u64,
            }),
            None => None,
        };
        let mut throttle = Vec::new();
        for &b in &self.runnable {
            let spec = &self.scenario.backends[b];
            if let Some(t) = AnyBackend::build(spec, &self.scenario.s3)?.throttle() {
                throttle.push(crate::results::ThrottleNetwork {
                    label: spec.label.clone(),
                    get_per_call_ms: t.get_per_call.as_secs_f64() * 1e3,
                    put_per_call_ms: t.put_per_call.as_secs_f64() * 1e3,
                    get_per_byte_ns: t.get_per_byte.as_nanos() as f64,
                });
            }
        }
        let mode = match (proxy.is_some(), !throttle.is_empty()) {
            (true, true) => "proxy+throttle",
            (true, false) => "proxy",
            (false, true) => "throttle",
            (false, false) => "none",
        };
        Ok(crate::results::Network {
            mode: mode.into(),
            s3: uses_s3,
            proxy,
            throttle,
            note,
        })
    }

    /// Backends that read from S3 need the dataset there: uploaded once, reused
    /// while the store's manifest matches.
    fn copy_to_stores(
        &mut self,
        input_root: &Path,
        s3_inputs: &[Option<StoreUrl>],
    ) -> anyhow::Result<()> {
        let mut copied: Vec<&StoreUrl> = Vec::new();
        for &b in &self.runnable {
            let Some(url) = &s3_inputs[b] else {
                continue;
            };
            if copied.contains(&url) {
                continue;
            }
            // A shard never uploads: the shards would race to empty and fill the
            // same prefix. The dataset is staged once before they start.
            let copy = match &self.sharding {
                None => dataset::ensure_in_store(input_root, url, &self.scenario.s3)?,
                Some((s, _)) => dataset::check_in_store(input_root, url, &self.scenario.s3)
                    .with_context(|| {
                        format!(
                            "shard {}: stage the dataset once before the shards start: \
                             harness gen {} --store {url}",
                            s.id,
                            self.scenario.source.display()
                        )
                    })?,
            };
            eprintln!("  {copy}");
            self.results.store_copies.push(copy);
            copied.push(url);
        }
        Ok(())
    }

    /// Rewrites `results.json` (atomically).
    fn save(&self) -> anyhow::Result<()> {
        self.results.save(&self.run_dir.join("results.json"))
    }

    /// A shard with a results URL: uploads its results as they are.
    fn upload(&self) -> anyhow::Result<()> {
        if let Some((
            Sharding {
                results_url: Some(url),
                id,
                ..
            },
            _,
        )) = &self.sharding
        {
            upload_results(&self.run_dir, url, *id, &self.scenario.s3)?;
        }
        Ok(())
    }

    /// One repetition: the output emptied, the cache prepared, the child run and
    /// its output verified. `None` when a signal stopped it before the child.
    fn repetition(
        &mut self,
        step: usize,
        slot: &Slot,
        barrier: Option<&mut crate::barrier::Barrier>,
    ) -> anyhow::Result<Option<Repetition>> {
        // Moved aside, not deleted: on a filesystem like ext4 without a journal,
        // creating files within minutes of deleting others makes the inode
        // allocator skip every recently deleted inode, and that scan (measured:
        // half the wall time of `sequential` on `quick`) would be charged to the
        // next repetition. The trash goes when the run ends.
        match &self.sharding {
            None => self.dirs.data.empty_output(&self.output_root, &self.trash),
            // A shard deletes its own objects only: the output may hold other
            // shards' (run earlier with this data directory).
            Some((_, part)) => self.dirs.data.empty_own_objects(
                &self.output_root,
                &part.keys(&self.layout),
                &part.own_dirs(),
            ),
        }
        .context("emptying the output directory before the repetition")?;
        let need = self
            .largest_output
            .saturating_mul(2)
            .saturating_add(1 << 30);
        if self
            .trash
            .keep_free(&self.dirs.data, need)
            .context("emptying the trash to keep room on the disk")?
        {
            eprintln!(
                "  (emptied the trash of earlier repetitions: under {:.1} GiB free)",
                need as f64 / (1u64 << 30) as f64
            );
        }
        let Some(cache) = self.prepare_cache(step == 0)? else {
            return Ok(None);
        };
        // The rendezvous of the shards comes last before the child, so that their
        // timed regions start as close together as the child's start-up allows.
        let waited = match barrier {
            None => None,
            Some(b) => match b.wait(step) {
                Ok(w) => Some(w),
                Err(e) if e.is::<signals::Interrupted>() => return Ok(None),
                Err(e) => return Err(e),
            },
        };
        let spec = &self.scenario.backends[slot.backend];
        let (status, report) = self.run_child(slot)?;
        let (error, measurement) = match report {
            Some(r) => (r.error, r.measurement),
            None => (
                Some(format!(
                    "the child process died ({status}) without a report"
                )),
                None,
            ),
        };
        if let Some(m) = &measurement {
            self.largest_output = self.largest_output.max(m.outcome.output_bytes);
        }
        let ok = error.is_none() && status.success();
        let verification = ok.then(|| self.verify(slot, measurement.as_ref()));
        self.keep_oracle(slot, &error, verification.as_ref())?;
        say_outcome(
            self.scenario.workload,
            self.layout.object_noun(),
            &error,
            &verification,
            &measurement,
        );
        Ok(Some(Repetition {
            label: spec.label.clone(),
            backend: spec.name.clone(),
            index: slot.index,
            warmup: slot.warmup,
            ok,
            error,
            counts: verification.as_ref().is_some_and(|v| v.ok),
            measurement,
            cache,
            verification,
            barrier: waited,
        }))
    }

    /// Evicts (cold) and samples the page cache before a repetition; `None` when a
    /// signal stopped the eviction.
    fn prepare_cache(&self, first: bool) -> anyhow::Result<Option<CacheState>> {
        let mut state = CacheState {
            requested: self.scenario.run.cache,
            fadvise_files: 0,
            warmed_files: if first { self.warmed_files } else { 0 },
            dropped_page_cache: false,
            sampled_files: 0,
            resident_fraction: 0.0,
        };
        if self.scenario.run.cache == CacheMode::Cold {
            match cache::evict(&self.files, self.scenario.run.drop_caches) {
                Ok((advised, dropped)) => {
                    state.fadvise_files = advised;
                    state.dropped_page_cache = dropped;
                }
                Err(e) if e.is::<signals::Interrupted>() => return Ok(None),
                Err(e) => return Err(e),
            }
        }
        (state.sampled_files, state.resident_fraction) =
            cache::resident_fraction(&self.files, RESIDENCY_SAMPLE);
        Ok(Some(state))
    }

    /// Runs the repetition in a fresh child process of this binary; its exit status
    /// and the report it wrote, if any.
    fn run_child(
        &self,
        slot: &Slot,
    ) -> anyhow::Result<(std::process::ExitStatus, Option<ChildReport>)> {
        let (scenario, spec) = (self.scenario, &self.scenario.backends[slot.backend]);
        let rep_file = self.run_dir.join("reps").join(format!(
            "{}-{}{}.json",
            spec.label,
            if slot.warmup { "warmup-" } else { "" },
            slot.index
        ));
        // A report of an earlier run in a reused folder must never be read as this
        // child's (it may die without writing one).
        match fs::remove_file(&rep_file) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("removing {}", rep_file.display())),
        }
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
        // The results' count: rounds the gate added raise it.
        let of = if slot.warmup {
            scenario.run.warmup
        } else {
            self.results.scenario.run.repetitions
        };
        child
            .arg("__rep")
            .arg("--run-dir")
            .arg(&self.run_dir)
            .arg("--backend")
            .arg(slot.backend.to_string())
            .arg("--data-dir")
            .arg(self.dirs.data.path())
            .arg("--out")
            .arg(&rep_file);
        if let Some((s, _)) = &self.sharding {
            child.arg("--shard").arg(s.id.to_string());
        }
        child.arg("--progress-label").arg(format!(
            "{}{} {}/{of}",
            spec.label,
            if slot.warmup {
                " warm-up"
            } else {
                " repetition"
            },
            slot.index + 1,
        ));
        let status = supervise(child)?;
        let report = fs::read(&rep_file)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok());
        Ok((status, report))
    }

    /// The reference backend's first output that verified (for structure) is moved
    /// aside to be the reference of every later one; until then a failure of it
    /// is remembered, to say why nothing can be verified.
    fn keep_oracle(
        &mut self,
        slot: &Slot,
        error: &Option<String>,
        verification: Option<&verify::Verification>,
    ) -> anyhow::Result<()> {
        let Some(oracle) = &mut self.oracle else {
            return Ok(());
        };
        if oracle.backend != slot.backend || oracle.made_by.is_some() {
            return Ok(());
        }
        let label = &self.scenario.backends[slot.backend].label;
        match (error, verification) {
            (_, Some(v)) if v.ok => {
                let data = &self.dirs.data;
                // What was there goes to the trash; the output is linked into the
                // emptied directory (hard links: no copy, and the output root keeps
                // its output until the next repetition empties it).
                data.empty_output(&oracle.root, &self.trash)?;
                if let Err(e) = link_tree(&self.output_root, &oracle.root) {
                    // Never a partial reference left looking complete.
                    data.empty_output(&oracle.root, &self.trash)?;
                    return Err(e).with_context(|| {
                        format!(
                            "keeping the reference output: linking {} into {}",
                            self.output_root.display(),
                            oracle.root.display()
                        )
                    });
                }
                let what = if slot.warmup { "warm-up" } else { "repetition" };
                oracle.made_by = Some(format!("{label}, {what} {}", slot.index + 1));
                eprintln!(
                    "  reference output kept at {} for the other outputs to be compared with",
                    oracle.root.display()
                );
            }
            (_, Some(v)) => {
                oracle.failed = Some(format!(
                    "{label}'s output did not verify: {}",
                    v.problems.first().map_or("", |p| p.as_str())
                ))
            }
            (e, None) => {
                oracle.failed = Some(format!(
                    "{label} failed: {}",
                    e.as_deref().unwrap_or("the run failed")
                ))
            }
        }
        Ok(())
    }

    /// Verifies a finished repetition's output: the Zarr array against the closed
    /// form or, for a dataset without one, against the reference output (locally
    /// or in its S3 store); for read-only runs, that every input was read once and
    /// nothing written.
    fn verify(&self, slot: &Slot, measurement: Option<&Measurement>) -> verify::Verification {
        let run = &self.scenario.run;
        let seed = slot.index as u64;
        let reference = self.oracle.as_ref().map(|o| (o, verify::LocalDir(&o.root)));
        let expected = match &reference {
            None => verify::Expected::ClosedForm,
            Some((o, _)) if o.backend == slot.backend && o.made_by.is_none() => {
                verify::Expected::Structure
            }
            Some((o, dir)) if o.made_by.is_some() => verify::Expected::Output(dir),
            Some((o, _)) => {
                return verify::Verification {
                    problems: vec![format!(
                        "no reference output to compare with: {}",
                        o.failed
                            .as_deref()
                            .unwrap_or("the reference backend has not run")
                    )],
                    against: Some("no reference".into()),
                    ..Default::default()
                }
            }
        };
        let against = |mut v: verify::Verification| {
            if let Some(made_by) = reference.as_ref().and_then(|(o, _)| o.made_by.as_ref()) {
                if matches!(expected, verify::Expected::Output(_)) {
                    v.against = Some(made_by.clone());
                }
            }
            v
        };
        // The reference itself is decoded whole: every later comparison relies on
        // it, and a chunk of it that did not decode would fail another backend.
        let max_chunks = match expected {
            verify::Expected::Structure => 0,
            _ => run.verify_max_chunks,
        };
        let part = self.sharding.as_ref().map(|(s, part)| verify::Part {
            rows: part.rows(),
            metadata: s.id.writes_metadata(),
        });
        let part = part.as_ref();
        match self.scenario.workload {
            WorkloadKind::Rechunk => against(match &self.s3_outputs[slot.backend] {
                None => verify::verify_part(
                    &self.layout,
                    &verify::LocalDir(&self.output_root),
                    expected,
                    part,
                    max_chunks,
                    seed,
                ),
                Some(url) => match verify::InStore::open(url, &self.scenario.s3) {
                    Ok(objects) => verify::verify_part(
                        &self.layout,
                        &objects,
                        expected,
                        part,
                        max_chunks,
                        seed,
                    ),
                    Err(e) => verify::Verification {
                        problems: vec![format!("{url}: {e}")],
                        ..Default::default()
                    },
                },
            }),
            WorkloadKind::ReadOnly => verify::verify_read_only(
                &self.output_root,
                measurement.map_or(0, |m| m.outcome.inputs),
                measurement.map_or(0, |m| m.outcome.input_bytes),
                self.results.dataset.messages,
                self.results.dataset.bytes,
            ),
        }
    }

    /// After the last repetition (or a signal): the results marked and saved for
    /// the last time, the trash emptied.
    fn finish(mut self) -> anyhow::Result<(Results, PathBuf)> {
        if let Some(signal) = signals::received() {
            self.results.interrupted = Some(signals::signal_name(signal.0));
        }
        self.results.finished_at = Some(chrono::Utc::now().to_rfc3339());
        self.save()?;
        self.upload()?;
        if let Err(e) = self.trash.empty(&self.dirs.data) {
            eprintln!("warning: the earlier outputs moved aside were not deleted: {e:#}");
        }
        Ok((self.results, self.run_dir))
    }
}

/// Hard-links every file below `from` (but its marker) into `to` (an existing
/// directory), making the directories; copies where a link cannot be made (another
/// filesystem).
fn link_tree(from: &Path, to: &Path) -> std::io::Result<()> {
    for entry in fs::read_dir(from)? {
        let entry = entry?;
        let (src, dst) = (entry.path(), to.join(entry.file_name()));
        let kind = entry.file_type()?;
        if kind.is_dir() {
            fs::create_dir(&dst)?;
            link_tree(&src, &dst)?;
        } else if entry.file_name() != crate::safety::MARKER && fs::hard_link(&src, &dst).is_err() {
            fs::copy(&src, &dst)?;
        }
    }
    Ok(())
}

/// The input files of a shard's part (to warm, evict and sample): the files its
/// inputs are in, each once.
fn part_files(scenario: &Scenario, input_root: &Path, part: &Part) -> anyhow::Result<Vec<PathBuf>> {
    let params = &scenario.dataset.params;
    let groups = params
        .groups_at(input_root)
        .map_err(|e| anyhow::anyhow!(e))?;
    let mut files: Vec<PathBuf> = part
        .restrict(groups, params.steps)?
        .iter()
        .flat_map(|g| g.inputs.iter().map(|i| input_root.join(&*i.path)))
        .collect();
    files.sort_unstable();
    files.dedup();
    Ok(files)
}

/// Uploads a shard's `results.json` and `scenario.json` to
/// `<url>/shard-I-of-N/`, where `harness merge <url>` finds them.
fn upload_results(
    run_dir: &Path,
    url: &StoreUrl,
    id: ShardId,
    s3: &stores::S3Config,
) -> anyhow::Result<()> {
    let at = StoreUrl::parse(&format!(
        "{}/{}",
        url.to_string().trim_end_matches('/'),
        id.folder()
    ))
    .map_err(anyhow::Error::msg)?;
    let store = stores::Store::open(&at, run_dir, None, s3)?;
    for name in ["scenario.json", "results.json"] {
        let bytes = fs::read(run_dir.join(name))
            .with_context(|| format!("reading {}", run_dir.join(name).display()))?;
        stores::block_on(store.put(name, bytes))
            .map_err(anyhow::Error::msg)?
            .with_context(|| format!("uploading {name} to {at}"))?;
    }
    eprintln!("shard {id}: results uploaded to {at}/");
    Ok(())
}

/// Generates or reuses the scenario's dataset, and says which.
fn ensure_dataset(
    scenario: &Scenario,
    dirs: &Dirs,
    input_root: &Path,
    fix: &str,
) -> anyhow::Result<dataset::DatasetInfo> {
    eprintln!("dataset {}", input_root.display());
    let dataset = dataset::ensure(&dirs.data, &scenario.dataset.params, input_root, false, fix)?;
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
    Ok(dataset)
}

/// The results of a run about to start.
fn new_results(scenario: &Scenario, dirs: &Dirs, dataset: dataset::DatasetInfo) -> Results {
    let (git_commit, git_dirty) = machine::git_commit();
    Results {
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
        network: None,
        shard: None,
        rounds: None,
    }
}

/// Whether the endpoint URL `http://127.0.0.1:3903[/…]` is the address `listen`.
fn endpoint_is(endpoint: &str, listen: &str) -> bool {
    let host = endpoint
        .split_once("://")
        .map_or(endpoint, |(_, rest)| rest)
        .split('/')
        .next()
        .unwrap_or("");
    !listen.is_empty() && host == listen
}

/// One line on the terminal per finished repetition.
fn say_outcome(
    workload: WorkloadKind,
    noun: &str,
    error: &Option<String>,
    verification: &Option<verify::Verification>,
    measurement: &Option<Measurement>,
) {
    match (error, verification, measurement) {
        (Some(e), _, _) => eprintln!("  FAILED: {e}"),
        (None, Some(v), Some(m)) => eprintln!(
            "  {:.0} {}/s, {:.2} s wall, verified {}",
            m.items_per_second,
            match workload {
                WorkloadKind::Rechunk => "fields",
                WorkloadKind::ReadOnly => "inputs",
            },
            m.wall_seconds,
            if v.ok && workload == WorkloadKind::ReadOnly {
                "ok (every input read once, nothing written)".to_string()
            } else if v.ok {
                format!(
                    "ok ({} of {} {noun}s checked{})",
                    v.chunks_checked,
                    v.chunks_expected,
                    match &v.against {
                        None => String::new(),
                        Some(s) if s == "structure only" => {
                            ": structure only, this output becomes the reference".into()
                        }
                        Some(r) => format!(" against the reference from {r}"),
                    }
                )
            } else {
                format!("FAILED: {}", v.problems.join("; "))
            }
        ),
        _ => {}
    }
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
        // The parent shares the cores with the measured child: it looks 40 times a
        // second (a signal is acted on within 25 ms, an ended child noticed untimed).
        std::thread::sleep(std::time::Duration::from_millis(25));
    }
}

/// The child side of one repetition: build the job, run the backend between its
/// untimed `prepare` and `finish`, measure, and write the report. Returns whether
/// the backend succeeded.
pub fn child(
    run_dir: &Path,
    backend: usize,
    data_dir: &Path,
    out: &Path,
    progress_label: &str,
    shard: Option<ShardId>,
) -> anyhow::Result<bool> {
    let scenario: Scenario = serde_json::from_slice(&fs::read(run_dir.join("scenario.json"))?)?;
    let spec = scenario
        .backends
        .get(backend)
        .with_context(|| format!("no backend #{backend} in the scenario"))?;
    let job = Arc::new(child_job(&scenario, spec, data_dir, shard)?);
    let backend_impl = AnyBackend::build(spec, &scenario.s3)?;
    // Untimed: loading a memory store, emptying an S3 output.
    let prepared = match backend_impl.prepare(&job) {
        Ok(d) => d,
        Err(e) => return write_report(out, &ChildReport::failed(e.to_string())),
    };
    let cancel = Cancel::new();
    // SIGINT or SIGTERM cancels the run; a second one exits at once.
    signals::install(Some(cancel.clone()))?;
    let timed = timed_run(
        &scenario,
        spec,
        &job,
        &backend_impl,
        &cancel,
        progress_label,
        shard,
    );
    // Untimed, whether the run succeeded or not (the contract): copying a memory
    // output to where it is verified. The run's own error comes first.
    let finished = backend_impl.finish(&job);
    let report = timed.report(&scenario, spec, prepared, finished);
    write_report(out, &report)
}

/// The job of a repetition, as the parent described it in `scenario.json`: for a
/// shard, its part of the groups and its own output keys.
fn child_job(
    scenario: &Scenario,
    spec: &BackendSpec,
    data_dir: &Path,
    shard: Option<ShardId>,
) -> anyhow::Result<Job> {
    let input_root = data_dir.join(&scenario.dataset.root);
    let params = &scenario.dataset.params;
    let mut groups = params
        .groups_at(&input_root)
        .map_err(|e| anyhow::anyhow!(e))?;
    let mut own_outputs = None;
    if let Some(shard) = shard {
        let layout = ArrayLayout::new(params.clone(), scenario.output.params);
        let part = Part::of(shard, &layout);
        groups = part.restrict(groups, params.steps)?;
        own_outputs = Some(part.keys(&layout).into());
    }
    Ok(Job {
        groups,
        input_root,
        output_root: data_dir.join(&scenario.output.root),
        limits: spec.limits,
        overlap_groups: scenario.run.overlap_groups,
        own_outputs,
    })
}

/// Writes the child's report; returns whether the backend succeeded.
fn write_report(out: &Path, report: &ChildReport) -> anyhow::Result<bool> {
    fs::write(out, serde_json::to_vec_pretty(report)?)
        .with_context(|| format!("writing {}", out.display()))?;
    Ok(report.error.is_none())
}

impl ChildReport {
    fn failed(error: String) -> ChildReport {
        ChildReport {
            error: Some(error),
            measurement: None,
        }
    }
}

/// What the timed region of a repetition gave.
struct TimedRun {
    result: Result<rechunk_contract::RunOutcome, rechunk_contract::RunError>,
    /// When the backend was called (Unix time, this host's clock).
    started_unix: Option<f64>,
    wall_seconds: f64,
    /// Threads the backend added at most.
    threads: u64,
    usage: Usage,
    /// What the rest of the machine did meanwhile.
    machine_load: Option<crate::machine::MachineLoad>,
    counters: Arc<Counters>,
    full: Option<Arc<FullRecorder>>,
    samples: Vec<Sample>,
}

/// Runs the backend once, timed, with a sampler thread that records the gauges
/// and the thread count every bucket and drives the progress bar.
fn timed_run(
    scenario: &Scenario,
    spec: &BackendSpec,
    job: &Arc<Job>,
    backend: &AnyBackend,
    cancel: &Cancel,
    progress_label: &str,
    shard: Option<ShardId>,
) -> TimedRun {
    let counters = Arc::new(Counters::new());
    let full =
        (spec.recording == Recording::Full).then(|| Arc::new(FullRecorder::new(counters.clone())));
    let recorder: Arc<dyn Recorder> = match &full {
        Some(f) => f.clone(),
        None => counters.clone(),
    };
    let nwp = crate::split::workload(scenario.dataset.workload(scenario.output.params), shard);
    let done = AtomicBool::new(false);
    // The harness's own threads (main, the signal handling) before the run; the
    // sampler thread started below takes the place of the calling thread in the count.
    let baseline_threads = thread_count();
    let before = Usage::now();
    let clock_before = crate::machine::cpu_clock();
    let started_unix = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .ok();
    let start = Instant::now();
    let timeline_start = full.as_ref().map_or(start, |f| f.start());
    let (result, wall_seconds, threads, samples) = std::thread::scope(|s| {
        let sampler = s.spawn(|| {
            sample_until_done(
                scenario,
                job,
                &counters,
                &done,
                timeline_start,
                progress_label,
            )
        });
        let result = match scenario.workload {
            WorkloadKind::Rechunk => backend.run(job, &Arc::new(nwp), &recorder, cancel),
            WorkloadKind::ReadOnly => backend.run(job, &Arc::new(ReadOnly(nwp)), &recorder, cancel),
        };
        // Taken before joining the sampler, whose sleep must not count as the run's.
        let wall = start.elapsed().as_secs_f64();
        done.store(true, Ordering::Release);
        let (threads, samples) = sampler.join().unwrap_or_default();
        let threads = threads.max(thread_count());
        (
            result,
            wall,
            threads.saturating_sub(baseline_threads),
            samples,
        )
    });
    let usage = Usage::now().since(&before);
    let machine_load = match (clock_before, crate::machine::cpu_clock()) {
        (Some(b), Some(a)) => crate::machine::MachineLoad::between(
            b,
            a,
            wall_seconds,
            usage.user_seconds + usage.system_seconds,
        ),
        _ => None,
    };
    TimedRun {
        result,
        started_unix,
        wall_seconds,
        threads,
        usage,
        machine_load,
        counters,
        full,
        samples,
    }
}

/// The sampler: one sample at the start and one after the end at least, so that
/// even a run shorter than a bucket has its gauges. Returns the most threads seen
/// and the samples.
fn sample_until_done(
    scenario: &Scenario,
    job: &Job,
    counters: &Counters,
    done: &AtomicBool,
    timeline_start: Instant,
    progress_label: &str,
) -> (u64, Vec<Sample>) {
    let bar = progress::bar(
        job.input_count() as u64,
        &format!("{} {}", scenario.name, progress_label),
        "fields",
    );
    let stage = match scenario.workload {
        WorkloadKind::Rechunk => Stage::Reduce,
        WorkloadKind::ReadOnly => Stage::Read,
    };
    let mut max_threads = 0;
    let mut samples = Vec::new();
    loop {
        let finished = done.load(Ordering::Acquire);
        let threads = thread_count();
        max_threads = max_threads.max(threads);
        let (io_in_flight, bytes_in_flight) = counters.gauges();
        samples.push(Sample {
            t: timeline_start.elapsed().as_secs_f64(),
            io_in_flight,
            bytes_in_flight,
            threads,
            requests_in_flight: counters.requests_in_flight(),
        });
        bar.set_position(counters.items(stage));
        if finished {
            break;
        }
        std::thread::sleep(record::BUCKET);
    }
    bar.finish_and_clear();
    (max_threads, samples)
}

impl TimedRun {
    /// The report: the measurement if the run (and its untimed `finish`)
    /// succeeded, else the first error.
    fn report(
        self,
        scenario: &Scenario,
        spec: &BackendSpec,
        prepared: serde_json::Map<String, serde_json::Value>,
        finished: Result<serde_json::Map<String, serde_json::Value>, rechunk_contract::RunError>,
    ) -> ChildReport {
        let (stages, timeline, requests) = match &self.full {
            Some(f) => {
                let (stages, mut timeline) = f.finish();
                timeline.samples = self.samples;
                (stages, Some(timeline), f.request_latencies())
            }
            None => (Default::default(), None, Default::default()),
        };
        let outcome = self.result.and_then(|mut outcome| {
            outcome.details.extend(prepared);
            outcome.details.extend(finished?);
            Ok(outcome)
        });
        let outcome = match outcome {
            Ok(o) => o,
            Err(e) => return ChildReport::failed(e.to_string()),
        };
        let (inputs, wall) = (outcome.inputs as f64, self.wall_seconds);
        let field_bytes = scenario.dataset.params.field_bytes() as f64;
        ChildReport {
            error: None,
            measurement: Some(Measurement {
                wall_seconds: wall,
                started_unix: self.started_unix,
                user_seconds: self.usage.user_seconds,
                system_seconds: self.usage.system_seconds,
                peak_rss_bytes: peak_rss().unwrap_or(self.usage.max_rss_bytes),
                voluntary_switches: self.usage.voluntary_switches,
                involuntary_switches: self.usage.involuntary_switches,
                machine_load: self.machine_load,
                threads: self.threads,
                items_per_second: inputs / wall,
                decoded_mb_per_second: inputs * field_bytes / wall / 1e6,
                input_mb_per_second: outcome.input_bytes as f64 / wall / 1e6,
                counters: self.counters.snapshot(),
                outcome,
                recording: spec.recording,
                stages,
                timeline,
                requests,
            }),
        }
    }
}

/// This process's resource use (`getrusage(RUSAGE_SELF)`), or a difference of two.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(crate) struct Usage {
    pub(crate) user_seconds: f64,
    pub(crate) system_seconds: f64,
    /// `ru_maxrss`: only a fallback (see [`peak_rss`]).
    max_rss_bytes: u64,
    voluntary_switches: u64,
    involuntary_switches: u64,
}

impl Usage {
    /// Now; all zeros (said once on standard error) if getrusage fails.
    pub(crate) fn now() -> Usage {
        // SAFETY: getrusage fills the struct we pass; a zeroed rusage is valid.
        let mut u: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: RUSAGE_SELF and a valid pointer.
        if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) } != 0 {
            eprintln!(
                "warning: getrusage failed ({}): CPU time and context switches read as 0",
                std::io::Error::last_os_error()
            );
            return Usage::default();
        }
        let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
        Usage {
            user_seconds: secs(u.ru_utime),
            system_seconds: secs(u.ru_stime),
            max_rss_bytes: u.ru_maxrss as u64 * 1024,
            voluntary_switches: u.ru_nvcsw as u64,
            involuntary_switches: u.ru_nivcsw as u64,
        }
    }

    /// What was used between `before` and this (the peak is this one's).
    pub(crate) fn since(&self, before: &Usage) -> Usage {
        Usage {
            user_seconds: self.user_seconds - before.user_seconds,
            system_seconds: self.system_seconds - before.system_seconds,
            max_rss_bytes: self.max_rss_bytes,
            voluntary_switches: self
                .voluntary_switches
                .saturating_sub(before.voluntary_switches),
            involuntary_switches: self
                .involuntary_switches
                .saturating_sub(before.involuntary_switches),
        }
    }
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
    use super::{new_run_dir, round};

    #[test]
    fn each_round_runs_every_backend_once_in_its_own_seeded_order() {
        let backends: Vec<usize> = (0..7).collect();
        let orders: Vec<Vec<usize>> = (0..20)
            .map(|i| {
                round(&backends, i, false, false)
                    .iter()
                    .map(|s| s.backend)
                    .collect()
            })
            .collect();
        for o in &orders {
            let mut sorted = o.clone();
            sorted.sort();
            assert_eq!(sorted, backends);
        }
        // Seeded by the round: the same again (every shard of a job agrees).
        assert_eq!(
            orders[3],
            round(&backends, 3, false, false)
                .iter()
                .map(|s| s.backend)
                .collect::<Vec<_>>()
        );
        // Shuffled: no backend holds one place throughout; each leads some round.
        let leaders: std::collections::BTreeSet<usize> = orders.iter().map(|o| o[0]).collect();
        assert!(leaders.len() >= 4, "{orders:?}");
        // The reference of a grib2-dir run stays first.
        assert!((0..20).all(|i| round(&backends, i, false, true)[0].backend == 0));
        assert!(round(&[], 0, false, true).is_empty());
    }

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
