//! `harness`: thin command line over the harness library.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use harness::analysis::Analysis;
use harness::backends::{AnyBackend, REGISTRY};
use harness::runner::{self, Dirs};
use harness::scenario::{CacheMode, WorkloadKind};
use harness::signals::{self, Interrupted};
use harness::{dataset, scenario, verify, DEFAULT_SCENARIO};
use rechunk_contract::Availability;
use stores::StoreUrl;

#[derive(Parser)]
#[command(
    name = "harness",
    version,
    about = "Measure group-rechunk backends: many small files in, verified Zarr v3 chunks out."
)]
struct Cli {
    /// Where datasets and outputs live; every scenario path is relative to it.
    #[arg(long, global = true, env = "HARNESS_DATA_DIR", default_value = "data")]
    data_dir: PathBuf,
    /// Where each run's results folder is created.
    #[arg(
        long,
        global = true,
        env = "HARNESS_RESULTS_DIR",
        default_value = "results/runs"
    )]
    results_dir: PathBuf,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run a scenario: generate its dataset if needed, run every backend × repetition
    /// in a fresh process, verify every output, write results.json, print a summary.
    Run {
        /// The scenario file; without one, the embedded quick scenario.
        scenario: Option<PathBuf>,
        /// Override `[run] cache`.
        #[arg(long, value_enum)]
        cache: Option<CacheArg>,
        /// Override `[run] repetitions`.
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
        repetitions: Option<u32>,
        /// Override `[workload] kind`: read-only reads and counts every input, nothing else.
        #[arg(long, value_enum)]
        workload: Option<WorkloadArg>,
        /// Then compare with this baseline results file (see `compare`), adding
        /// rounds until every gated figure is decided or --gate-seconds pass; exit 1
        /// if a backend regressed, 2 if the gate could not decide.
        #[arg(long)]
        compare: Option<PathBuf>,
        /// The time figure's regression threshold for `--compare`, as a fraction.
        #[arg(long, default_value_t = harness::compare::DEFAULT_THRESHOLD)]
        threshold: f64,
        /// With --compare: start no round after this many seconds of repetitions
        /// (0: only the scenario's repetitions).
        #[arg(long, default_value_t = 300, value_parser = clap::value_parser!(u64).range(0..=86_400))]
        gate_seconds: u64,
        /// Also measure the IO and CPU ceilings (as `[run] ceilings = true`).
        #[arg(long, visible_alias = "limits")]
        ceilings: bool,
        /// Run only shard I (from 0) of N of the job, for a job split across
        /// machines: a deterministic, disjoint part (whole rows of output objects),
        /// its results in <results-dir>/shard-I-of-N/. Without it, taken from
        /// JOB_COMPLETION_INDEX and HARNESS_SHARDS (Kubernetes Indexed Job) or
        /// SLURM_ARRAY_TASK_ID, _MIN, _STEP and _COUNT (Slurm array). Then `harness
        /// merge <results-dir>`.
        #[arg(long, value_name = "I/N")]
        shard: Option<harness::split::ShardId>,
        /// With a shard: also upload its results.json to <URL>/shard-I-of-N/
        /// (s3://bucket/prefix), where `harness merge <URL>` reads them.
        #[arg(long, value_name = "URL", env = "HARNESS_RESULTS_URL")]
        results_url: Option<String>,
        /// With a shard: start every repetition together with the other shards (a
        /// rendezvous in the results location), so that their runs of one backend
        /// overlap and the merged cluster figures measure it, not the shards' drift.
        /// A shard not there within --barrier-timeout is gone on without.
        #[arg(long, env = "HARNESS_BARRIER")]
        barrier: bool,
        /// Seconds a shard waits at the barrier for the others.
        #[arg(long, default_value_t = 600.0, value_name = "SECONDS")]
        barrier_timeout: f64,
        /// With a shard: the id of the job it is a shard of, the same for all its
        /// shards and no other job's (default: Slurm's SLURM_ARRAY_JOB_ID). Names
        /// the barrier's rendezvous (needed by --barrier) and is recorded, so that
        /// the merge refuses results of another job left in the same place.
        #[arg(long, value_name = "ID", env = "HARNESS_JOB_ID")]
        job: Option<String>,
    },
    /// Put the shards of a split job together (`harness run --shard I/N`): one
    /// results file and report for the cluster (its throughput, each shard's, the
    /// straggler ratio, a combined timeline) and one verification of the whole
    /// output. Names every missing or failed shard and the command that reruns it;
    /// exits 1 then, or when the output does not verify.
    Merge {
        /// The folder holding shard-I-of-N/ (the shards' --results-dir), or the
        /// s3://bucket/prefix they uploaded to (--results-url).
        location: String,
        /// Where the merged results and report go: default <location>/merged (for
        /// an s3:// location, results/merged/<prefix's last name>).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Chunks (or shards) decoded per output; 0: every one.
        #[arg(long, default_value_t = 0)]
        max_chunks: u64,
        /// The shards' local output folders are reachable here under the paths
        /// they recorded (shards on this machine, or a shared filesystem): verify
        /// them together even where a shard's host is not this one.
        #[arg(long)]
        local_outputs_here: bool,
    },
    /// Compare two results files backend by backend, figure by figure; exit 1 if a
    /// gated figure regressed beyond its threshold with 95 % confidence, 2 if no
    /// regression was found but some gated figure could not be decided.
    Compare {
        base: PathBuf,
        new: PathBuf,
        /// Changes smaller than this fraction are never called.
        #[arg(long, default_value_t = harness::compare::DEFAULT_THRESHOLD)]
        threshold: f64,
        /// Also gate on absolute throughput (moves with the machine; off by default).
        #[arg(long)]
        absolute: bool,
    },
    /// Write a results file in another tool's format to standard output or --out.
    Export {
        /// results.json, or the run folder holding it.
        results: PathBuf,
        #[arg(long, value_enum)]
        format: harness::export::Format,
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Measure the IO ceiling (read-only, best backend, 256 in flight) and the CPU
    /// ceiling (decode + reduce + encode from memory on all cores) of a scenario.
    #[command(visible_alias = "limits")]
    Ceilings {
        scenario: PathBuf,
        /// Override `[run] cache`.
        #[arg(long, value_enum)]
        cache: Option<CacheArg>,
    },
    /// Generate (or reuse) a scenario's dataset without running anything.
    Gen {
        /// The scenario file; without one, the embedded quick scenario.
        scenario: Option<PathBuf>,
        /// Regenerate even if a dataset with the same parameters exists.
        #[arg(long)]
        force: bool,
        /// Print only the dataset's directory on standard output (for scripts).
        #[arg(long)]
        print_root: bool,
        /// Also copy the dataset to this object store (s3://bucket/prefix), reused
        /// when the store's manifest matches; S3 settings from the scenario's [s3]
        /// table and the AWS_* environment.
        #[arg(long)]
        store: Option<String>,
    },
    /// Scan (or reuse the cached scan of) a grib2-dir scenario's directory and say
    /// what it holds: groups, variables, steps, grid, files skipped, timings.
    Scan {
        /// A scenario with `[dataset] kind = "grib2-dir"`.
        scenario: PathBuf,
        /// Scan again even if the cached scan is of the same listing.
        #[arg(long)]
        rescan: bool,
    },
    /// Write a test set of GRIB2 files named exactly as DWD names its ICON-EU open
    /// data (`icon-eu_europe_regular-lat-lon_single-level_2026010100_003_T_2M.grib2.bz2`),
    /// bzip2-wrapped, with the nwp-grib2 generator's values: for trying grib2-dir
    /// without a download. Refuses a directory that is not empty.
    ExampleDir {
        /// Where to write (created; must be empty if it exists).
        dir: PathBuf,
        /// Init times (6 hours apart from 2026-01-01T00Z).
        #[arg(long, default_value_t = 2)]
        groups: u32,
        /// Variables (T_2M, TD_2M, U_10M, … as DWD names them).
        #[arg(long, default_value_t = 4)]
        variables: u32,
        /// Forecast hours 0, 1, …
        #[arg(long, default_value_t = 12)]
        steps: u32,
        /// Rows of every field (ICON-EU: 657).
        #[arg(long, default_value_t = 131)]
        ny: u32,
        /// Columns of every field (ICON-EU: 1377).
        #[arg(long, default_value_t = 275)]
        nx: u32,
        /// Data section packing: ccsds (template 5.42, as DWD) or simple (5.0).
        #[arg(long, value_enum, default_value = "ccsds")]
        packing: PackingArg,
    },
    /// Verify a Zarr output against the closed form of its values.
    Verify {
        /// The output: a directory holding zarr.json, or s3://bucket/prefix (S3
        /// settings from the AWS_* environment).
        output: String,
        /// Check the values of at most this many chunks, a seeded random sample; 0 = all.
        #[arg(long, default_value_t = 0)]
        max_chunks: u64,
        /// Compare the values with this output of the same array (a directory or
        /// s3://bucket/prefix) instead of the closed form: every chunk decoded, bit
        /// for bit. The only way to verify a grib2-dir output (its run keeps the
        /// reference at `data/outputs/.oracle/<name>`).
        #[arg(long, value_name = "REF")]
        against: Option<String>,
    },
    /// List the backends, their capabilities, and whether they can run here.
    List,
    /// One repetition in a child process (used by `run`).
    #[command(name = "__rep", hide = true)]
    Rep {
        #[arg(long)]
        run_dir: PathBuf,
        #[arg(long)]
        backend: usize,
        #[arg(long)]
        out: PathBuf,
        #[arg(long, default_value = "")]
        progress_label: String,
        #[arg(long)]
        shard: Option<harness::split::ShardId>,
    },
    /// A delaying TCP proxy: the emulated network between the harness and an S3
    /// server (`scripts/s3-server start --latency`). Every chunk of bytes in each
    /// direction is delayed by half of --delay (the round-trip time), in order, with
    /// optional jitter and a per-connection rate cap. Runs until killed.
    NetemProxy {
        /// Where to listen: a loopback address and port, e.g. 127.0.0.1:3910.
        #[arg(long)]
        listen: std::net::SocketAddr,
        /// The server every connection is forwarded to, e.g. 127.0.0.1:3900.
        #[arg(long)]
        upstream: std::net::SocketAddr,
        /// The round-trip time added to every connection (each direction delays
        /// every chunk by half of it): 20ms, 1.5ms, 250us, 0.
        #[arg(long, value_parser = |t: &str| harness::netem::parse_duration(t, "--delay"))]
        delay: std::time::Duration,
        /// Up to this much more per chunk and direction, uniformly at random; bytes
        /// are never reordered.
        #[arg(long, default_value = "0ms", value_parser = |t: &str| harness::netem::parse_duration(t, "--jitter"))]
        jitter: std::time::Duration,
        /// Cap on each direction of each connection, in bits per second: 500mbit,
        /// 8mbit, 1gbit; none for no cap.
        #[arg(long, default_value = "none", value_parser = |t: &str| harness::netem::parse_rate(t, "--rate").map(RateArg))]
        rate: RateArg,
        /// The most bytes in flight per direction of a connection (the emulated
        /// window): a connection carries at most about buffer / (delay / 2) per second.
        #[arg(long, default_value = "4MiB", value_parser = |t: &str| harness::netem::parse_bytes(t, "--buffer"))]
        buffer: usize,
    },
    /// Write report.md, report.html and the plots (SVG and PNG) from a results file or run folder.
    Report {
        /// results.json, or the run folder holding it.
        results: PathBuf,
        /// Where to write; default: the folder of results.json.
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

/// `--rate`: bits per second, or no cap.
#[derive(Clone, Copy, Debug)]
struct RateArg(Option<u64>);

#[derive(Clone, Copy, clap::ValueEnum)]
enum WorkloadArg {
    Rechunk,
    ReadOnly,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum CacheArg {
    Warm,
    Cold,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum PackingArg {
    Ccsds,
    Simple,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match real_main(cli) {
        Ok(code) => code,
        Err(e) => match e.downcast_ref::<Interrupted>() {
            Some(i) => {
                eprintln!("{i}: stopped");
                ExitCode::from(i.exit_code())
            }
            None => {
                eprintln!("error: {e:#}");
                ExitCode::FAILURE
            }
        },
    }
}

/// The scenario file given, or the embedded quick scenario.
fn load_scenario(path: Option<&Path>) -> anyhow::Result<scenario::Scenario> {
    Ok(match path {
        Some(p) => scenario::load(p)?,
        None => scenario::parse(
            DEFAULT_SCENARIO,
            "<embedded quick.toml>",
            "quick",
            Path::new("<embedded>"),
        )?,
    })
}

/// What to run to make a scenario's dataset again.
fn gen_force_command(path: Option<&Path>) -> String {
    match path {
        Some(p) => format!("harness gen --force {}", p.display()),
        None => "harness gen --force".to_string(),
    }
}

/// Parses nothing, decides nothing: hands each subcommand to its function.
fn real_main(cli: Cli) -> anyhow::Result<ExitCode> {
    let paths = (cli.data_dir.as_path(), cli.results_dir.as_path());
    match cli.command {
        Cmd::Compare {
            base,
            new,
            threshold,
            absolute,
        } => compare(&base, &new, threshold, absolute),
        Cmd::Export {
            results,
            format,
            out,
        } => export(&results, format, out.as_deref()),
        Cmd::Ceilings { scenario, cache } => ceilings(&scenario, cache, paths),
        Cmd::Run {
            scenario,
            cache,
            repetitions,
            workload,
            compare,
            threshold,
            gate_seconds,
            ceilings,
            shard,
            results_url,
            barrier,
            barrier_timeout,
            job,
        } => {
            let overrides = Overrides {
                cache,
                repetitions,
                workload,
                ceilings,
            };
            let gate = compare.map(|base| Gate {
                base,
                threshold,
                seconds: gate_seconds,
            });
            let mut sharding = sharding(shard, results_url.as_deref(), job)?;
            if barrier {
                let Some(s) = &mut sharding else {
                    anyhow::bail!(
                        "--barrier makes shards start each repetition together: give --shard I/N"
                    );
                };
                if !(barrier_timeout > 0.0 && barrier_timeout <= 86_400.0) {
                    anyhow::bail!(
                        "--barrier-timeout {barrier_timeout}: seconds, above 0 and at most a day (86400)"
                    );
                }
                if s.job.is_none() {
                    anyhow::bail!("--barrier needs the job's id, the same for all its shards and no other job's: --job ID (or HARNESS_JOB_ID; a Slurm array's SLURM_ARRAY_JOB_ID is taken by itself)");
                }
                s.barrier = Some(std::time::Duration::from_secs_f64(barrier_timeout));
            }
            run(scenario.as_deref(), overrides, gate, paths, sharding)
        }
        Cmd::Merge {
            location,
            out,
            max_chunks,
            local_outputs_here,
        } => harness::merge::command(&location, out.as_deref(), max_chunks, local_outputs_here),
        Cmd::Gen {
            scenario,
            force,
            print_root,
            store,
        } => gen(
            scenario.as_deref(),
            force,
            print_root,
            store.as_deref(),
            paths,
        ),
        Cmd::Verify {
            output,
            max_chunks,
            against,
        } => verify_output(&output, max_chunks, against.as_deref()),
        Cmd::Scan { scenario, rescan } => scan(&scenario, rescan, paths),
        Cmd::ExampleDir {
            dir,
            groups,
            variables,
            steps,
            ny,
            nx,
            packing,
        } => example_dir(&dir, (groups, variables, steps, ny, nx), packing),
        Cmd::List => {
            print!("{}", list());
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Report { results, out } => report(&results, out),
        Cmd::NetemProxy {
            listen,
            upstream,
            delay,
            jitter,
            rate,
            buffer,
        } => {
            let profile = harness::netem::Profile {
                rtt: delay,
                jitter,
                rate_bits: rate.0,
                buffer,
            };
            netem_proxy(listen, upstream, profile)
        }
        Cmd::Rep {
            run_dir,
            backend,
            out,
            progress_label,
            shard,
        } => {
            let ok = runner::child(
                &run_dir,
                backend,
                &cli.data_dir,
                &out,
                &progress_label,
                shard,
            )?;
            Ok(exit(ok))
        }
    }
}

/// The data directory locked for this command, with SIGINT / SIGTERM handled: for
/// the commands that write under it (the repetition's child has its own handlers).
fn lock((data, results): (&Path, &Path)) -> anyhow::Result<Dirs> {
    signals::install(None)?;
    Dirs::lock(data, results)
}

fn exit(ok: bool) -> ExitCode {
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// `harness compare`.
fn compare(base: &Path, new: &Path, threshold: f64, absolute: bool) -> anyhow::Result<ExitCode> {
    let (b, n) = (load_results(base)?, load_results(new)?);
    let c = harness::compare::compare(&Analysis::of(&b), &Analysis::of(&n), threshold, absolute);
    print!("{}", harness::compare::markdown(&c));
    Ok(ExitCode::from(c.decision().exit_code()))
}

/// `harness run --compare`: the baseline, the time figure's threshold, and the
/// time cap on added rounds.
struct Gate {
    base: PathBuf,
    threshold: f64,
    seconds: u64,
}

/// The most rounds a gate adds up to (the time cap usually comes first).
const GATE_MAX_ROUNDS: u32 = 60;

/// `harness export`.
fn export(
    results: &Path,
    format: harness::export::Format,
    out: Option<&Path>,
) -> anyhow::Result<ExitCode> {
    let r = load_results(results)?;
    let text = harness::export::export(&Analysis::of(&r), format)?;
    match out {
        Some(p) => std::fs::write(p, text).with_context(|| format!("writing {}", p.display()))?,
        None => print!("{text}"),
    }
    Ok(ExitCode::SUCCESS)
}

/// `harness ceilings`.
fn ceilings(
    scenario: &Path,
    cache: Option<CacheArg>,
    paths: (&Path, &Path),
) -> anyhow::Result<ExitCode> {
    let mut s = scenario::load(scenario)?;
    if let Some(c) = cache {
        s.run.cache = c.into();
    }
    let dirs = lock(paths)?;
    let c = harness::ceilings::measure(&s, &dirs)?;
    print!("{}", harness::ceilings::table(&c));
    Ok(ExitCode::SUCCESS)
}

/// What `harness run`'s flags change in the scenario.
struct Overrides {
    cache: Option<CacheArg>,
    repetitions: Option<u32>,
    workload: Option<WorkloadArg>,
    ceilings: bool,
}

impl Overrides {
    fn apply(self, s: &mut scenario::Scenario) {
        if let Some(c) = self.cache {
            s.run.cache = c.into();
        }
        if let Some(r) = self.repetitions {
            s.run.repetitions = r;
        }
        if let Some(w) = self.workload {
            s.workload = match w {
                WorkloadArg::Rechunk => WorkloadKind::Rechunk,
                WorkloadArg::ReadOnly => WorkloadKind::ReadOnly,
            };
        }
        if self.ceilings {
            s.run.ceilings = true;
        }
    }
}

impl From<CacheArg> for CacheMode {
    fn from(c: CacheArg) -> CacheMode {
        match c {
            CacheArg::Warm => CacheMode::Warm,
            CacheArg::Cold => CacheMode::Cold,
        }
    }
}

/// `harness gen`.
fn gen(
    scenario: Option<&Path>,
    force: bool,
    print_root: bool,
    store: Option<&str>,
    paths: (&Path, &Path),
) -> anyhow::Result<ExitCode> {
    let s = load_scenario(scenario)?;
    if let rechunk_contract::nwp::Format::Grib2Dir(d) = &s.dataset.params.format {
        anyhow::bail!(
            "[dataset] kind = \"{}\" reads your files in {}: there is nothing to generate \
             (`harness scan` shows what is there)",
            rechunk_contract::gribdir::KIND,
            d.attributes.source.display()
        );
    }
    let store = store.map(StoreUrl::parse).transpose()?;
    if store.as_ref().is_some_and(|u| !u.is_s3()) {
        anyhow::bail!("--store takes an s3://bucket/prefix URL");
    }
    let dirs = lock(paths)?;
    harness::sizes::check_machine(&s)?;
    let root = dirs.dataset_root(&s)?;
    let fix = gen_force_command(scenario);
    let info = dataset::ensure(&dirs.data, &s.dataset.params, &root, force, &fix)?;
    if let Some(url) = &store {
        eprintln!("{}", dataset::ensure_in_store(&root, url, &s.s3)?);
    }
    if print_root {
        println!("{}", root.display());
    } else if info.generated {
        println!(
            "generated {} messages ({:.1} MB) at {} in {:.1} s: {:.0} messages/s",
            info.messages,
            info.bytes as f64 / 1e6,
            root.display(),
            info.generation_seconds,
            info.generation_rate
        );
    } else {
        println!(
            "reused {} messages at {} (same parameters)",
            info.messages,
            root.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `harness verify`: a local output directory or `s3://bucket/prefix`, against the
/// closed form or, with `against`, another output.
fn verify_output(output: &str, max_chunks: u64, against: Option<&str>) -> anyhow::Result<ExitCode> {
    let objects = open_output(output)?;
    let reference = against.map(open_output).transpose()?;
    let layout = verify::layout_from_objects(objects.as_ref(), output)?;
    let expected = match (&reference, &layout.dataset.format) {
        (Some(r), _) => verify::Expected::Output(r.as_ref()),
        (None, rechunk_contract::nwp::Format::Grib2Dir(_)) => anyhow::bail!(
            "{output} was rechunked from your own GRIB2 files: there is no closed form to \
             verify it against; give --against REF, another output of the same files (a \
             run keeps its reference output in `data/outputs/.oracle/`)"
        ),
        (None, _) => verify::Expected::ClosedForm,
    };
    let v = verify::verify_against(&layout, objects.as_ref(), expected, max_chunks, 0);
    print_verification(output, &layout, &v, against)
}

/// An output to read: `s3://…` or a local directory.
fn open_output(output: &str) -> anyhow::Result<Box<dyn verify::Objects + '_>> {
    Ok(if output.starts_with("s3://") {
        let url = StoreUrl::parse(output)?;
        Box::new(verify::InStore::open(&url, &Default::default())?)
    } else {
        let dir = Path::new(output);
        match std::fs::metadata(dir) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => anyhow::bail!(
                "{output} is not a harness output: it is not a directory (give the \
                 output directory that holds zarr.json)"
            ),
            Err(e) => anyhow::bail!("{output}: {e}"),
        }
        Box::new(verify::LocalDir(dir))
    })
}

/// The verdict of `harness verify` on the terminal; the exit code says it.
fn print_verification(
    output: &str,
    layout: &rechunk_contract::nwp::zarr::ArrayLayout,
    v: &verify::Verification,
    against: Option<&str>,
) -> anyhow::Result<ExitCode> {
    println!(
        "{}: {} of {} {}s present, {} checked{}, {} missing, {} unexpected, {} wrong ({:.1} s)",
        output,
        v.chunks_found,
        v.chunks_expected,
        layout.object_noun(),
        v.chunks_checked,
        if v.sampled { " (random sample)" } else { "" },
        v.missing,
        v.unexpected,
        v.wrong_chunks,
        v.seconds
    );
    for p in &v.problems {
        println!("  {p}");
    }
    if !v.ok {
        anyhow::bail!(
            "verification failed: {}",
            v.problems.first().map_or("", |p| p.as_str())
        )
    }
    match against {
        Some(r) => println!("verified against {r}: every value checked is the same, bit for bit"),
        None => println!("verified against the closed form"),
    }
    Ok(ExitCode::SUCCESS)
}

/// `harness scan`: the scan of a grib2-dir scenario's directory, summarised.
fn scan(scenario: &Path, rescan: bool, paths: (&Path, &Path)) -> anyhow::Result<ExitCode> {
    let s = scenario::load(scenario)?;
    let dirs = lock(paths)?;
    let Some((resolved, info)) =
        harness::own_files::resolve(&s, &dirs.data, &dirs.results, rescan)?
    else {
        anyhow::bail!(
            "{}: [dataset] kind is \"{}\", not \"{}\": there is no directory to scan",
            scenario.display(),
            s.dataset.kind,
            rechunk_contract::gribdir::KIND
        );
    };
    let rechunk_contract::nwp::Format::Grib2Dir(d) = &resolved.dataset.params.format else {
        unreachable!("resolve gives a grib2-dir scenario");
    };
    let a = &d.attributes;
    let list = |names: &[String]| {
        let shown: Vec<&str> = names.iter().take(12).map(|n| n.as_str()).collect();
        let more = names.len().saturating_sub(shown.len());
        format!(
            "{}{}",
            shown.join(", "),
            if more > 0 {
                format!(", … ({more} more)")
            } else {
                String::new()
            }
        )
    };
    println!(
        "{}: {} files, {} inputs",
        info.source.display(),
        info.files,
        info.inputs
    );
    println!("  groups ({}): {}", a.groups.len(), list(&a.groups));
    println!(
        "  variables ({}): {}",
        a.variables.len(),
        list(&a.variables)
    );
    println!("  steps ({}): {}", a.steps.len(), list(&a.steps));
    println!("  grid: {}", info.grid);
    println!("  skipped: {}", info.skipped);
    println!(
        "  list {:.3} s; scan {:.3} s{}",
        info.list_seconds,
        info.scan_seconds,
        if info.cached {
            format!(" (earlier; reused, loaded in {:.3} s)", info.load_seconds)
        } else {
            String::new()
        }
    );
    Ok(ExitCode::SUCCESS)
}

/// `harness example-dir`: a DWD-named test set of GRIB2 files.
fn example_dir(
    dir: &Path,
    (groups, variables, steps, ny, nx): (u32, u32, u32, u32, u32),
    packing: PackingArg,
) -> anyhow::Result<ExitCode> {
    use rechunk_contract::grib2::{Grib2Params, Packing, Wrap};
    use rechunk_contract::nwp::{Codec, DatasetParams, Format, Layout};
    for (name, n) in [
        ("groups", groups),
        ("variables", variables),
        ("steps", steps),
        ("ny", ny),
        ("nx", nx),
    ] {
        if n == 0 {
            anyhow::bail!("--{name} must be at least 1");
        }
    }
    if let Some(why) = harness::sizes::field_problem(ny, nx) {
        anyhow::bail!("--ny, --nx: {why}");
    }
    let params = DatasetParams {
        layout: Layout::Files,
        groups,
        variables,
        steps,
        ny,
        nx,
        codec: Codec::None,
        zstd_level: 1,
        noise_bits: 4,
        seed: 1,
        format: Format::Grib2(Grib2Params {
            packing: match packing {
                PackingArg::Ccsds => Packing::Ccsds,
                PackingArg::Simple => Packing::Simple,
            },
            wrap: Wrap::Bz2,
        }),
    };
    if let Some((key, why)) = params.format_problem() {
        anyhow::bail!("--{key}: {why}");
    }
    let total = params.messages();
    let bar = harness::progress::bar(total, "writing", "files");
    let start = std::time::Instant::now();
    let n = rechunk_contract::gribdir::example::write_dwd(&params, dir, &|n| bar.inc(n))
        .map_err(anyhow::Error::msg)?;
    bar.finish_and_clear();
    println!(
        "wrote {n} files ({groups} init times × {variables} variables × {steps} steps of \
         {ny}×{nx}, GRIB2 {} + bzip2) to {} in {:.1} s; read them with pattern = \"{}\" \
         or from = \"keys\"",
        match packing {
            PackingArg::Ccsds => "ccsds",
            PackingArg::Simple => "simple",
        },
        dir.display(),
        start.elapsed().as_secs_f64(),
        rechunk_contract::gribdir::example::DWD_PATTERN
    );
    Ok(ExitCode::SUCCESS)
}

/// `harness netem-proxy`: serves until killed.
fn netem_proxy(
    listen: std::net::SocketAddr,
    upstream: std::net::SocketAddr,
    profile: harness::netem::Profile,
) -> anyhow::Result<ExitCode> {
    use harness::netem;
    if !listen.ip().is_loopback() {
        anyhow::bail!("--listen {listen}: the proxy listens on loopback addresses only");
    }
    profile.check().map_err(anyhow::Error::msg)?;
    let files = netem::raise_fd_limit().context("raising the open-files limit")?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("netem-proxy")
        .build()
        .context("starting the proxy's runtime")?;
    rt.block_on(async {
        let listener =
            netem::bind(listen).with_context(|| format!("listening on {listen}"))?;
        eprintln!(
            "netem-proxy: {listen} -> {upstream}: round trip {} ({} each way) + jitter 0-{} per direction, rate {} per connection and direction, buffer {} bytes per direction; {files} open files allowed",
            netem::show_duration(profile.rtt),
            netem::show_duration(profile.one_way()),
            netem::show_duration(profile.jitter),
            profile.rate_bits.map_or("uncapped".into(), netem::show_rate),
            profile.buffer,
        );
        let stats = std::sync::Arc::new(netem::Stats::default());
        netem::serve(listener, upstream, profile, stats).await?;
        Ok(ExitCode::SUCCESS)
    })
}

/// `harness report`.
fn report(results: &Path, out: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    let path = if results.is_dir() {
        results.join("results.json")
    } else {
        results.to_path_buf()
    };
    let r = harness::results::Results::load(&path)?;
    let dir = out.unwrap_or_else(|| {
        path.parent()
            .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
    });
    let written = harness::report::write(&Analysis::of(&r), &dir)?;
    print_report(&written);
    Ok(ExitCode::SUCCESS)
}

fn load_results(path: &Path) -> anyhow::Result<harness::results::Results> {
    let path = if path.is_dir() {
        path.join("results.json")
    } else {
        path.to_path_buf()
    };
    harness::results::Results::load(&path)
}

fn print_report(written: &harness::report::Written) {
    // Each chart is written twice, as .svg and .png: count charts, not files.
    let mut charts: Vec<_> = written.plots.iter().map(|p| p.with_extension("")).collect();
    charts.sort();
    charts.dedup();
    println!(
        "\nreport: {} ({} plots, each as .svg and .png), and as one page: {}",
        written.markdown.display(),
        charts.len(),
        written.html.display()
    );
    if let Some(w) = &written.warning {
        eprintln!("warning: {w}");
    }
}

/// `harness run`: the scenario (or the embedded quick one) with the flags' overrides,
/// then the summary, the report and, with `--compare`, the gate.
/// The shard to run: `--shard`, else a scheduler's environment; with the URL its
/// results are uploaded to.
fn sharding(
    flag: Option<harness::split::ShardId>,
    results_url: Option<&str>,
    job: Option<String>,
) -> anyhow::Result<Option<runner::Sharding>> {
    // The job's id: given, else a Slurm array's own.
    let job = job.filter(|j| !j.is_empty()).or_else(|| {
        std::env::var("SLURM_ARRAY_JOB_ID")
            .ok()
            .filter(|j| !j.is_empty())
    });
    if let Some(j) = &job {
        harness::split::check_job_id(j).map_err(|e| anyhow::anyhow!("--job: {e}"))?;
    }
    let id = match flag {
        Some(id) => Some(id),
        None => harness::split::from_env(&|k| std::env::var(k).ok())?,
    };
    let results_url = match results_url.filter(|u| !u.is_empty()) {
        None => None,
        Some(u) => {
            let url = StoreUrl::parse(u).map_err(|e| anyhow::anyhow!("--results-url: {e}"))?;
            if !url.is_s3() {
                anyhow::bail!("--results-url {u}: an s3://bucket/prefix is needed (a local folder is --results-dir)");
            }
            Some(url)
        }
    };
    match id {
        None if results_url.is_some() => {
            anyhow::bail!("--results-url (HARNESS_RESULTS_URL) is for a shard: give --shard I/N")
        }
        None => Ok(None),
        Some(id) => Ok(Some(runner::Sharding {
            id,
            results_url,
            barrier: None,
            job,
        })),
    }
}

fn run(
    scenario: Option<&Path>,
    overrides: Overrides,
    gate: Option<Gate>,
    paths: (&Path, &Path),
    sharding: Option<runner::Sharding>,
) -> anyhow::Result<ExitCode> {
    let mut s = load_scenario(scenario)?;
    overrides.apply(&mut s);
    let fix = gen_force_command(scenario);
    // The baseline is read first: a missing or unreadable one fails before the run.
    let base = match &gate {
        Some(g) => Some(load_results(&g.base)?),
        None => None,
    };
    let dirs = &lock(paths)?;
    if sharding.is_some() && gate.is_some() {
        anyhow::bail!(
            "--compare judges a whole run; compare the merged results of the shards instead"
        );
    }
    let (mut results, run_dir) = match (&base, &gate) {
        (Some(base), Some(g)) if g.seconds > 0 => {
            let base = Analysis::of(base);
            let mut more = |r: &harness::results::Results| {
                harness::compare::compare(&base, &Analysis::of(r), g.threshold, false)
                    .needs_more_rounds()
            };
            let adaptive = runner::Adaptive {
                more: &mut more,
                cap: std::time::Duration::from_secs(g.seconds),
                max_rounds: GATE_MAX_ROUNDS,
            };
            runner::run_adaptive(&s, dirs, &fix, adaptive)?
        }
        _ => runner::run_shard(&s, dirs, &fix, sharding.as_ref())?,
    };
    let interrupted = |results: &harness::results::Results| -> Option<ExitCode> {
        results.interrupted.as_ref()?;
        let signal = signals::received().unwrap_or(Interrupted(libc::SIGINT));
        eprintln!(
            "{signal}: stopped after {} repetitions; partial results in {}",
            results.repetitions.len(),
            run_dir.join("results.json").display()
        );
        Some(ExitCode::from(signal.exit_code()))
    };
    if let Some(code) = interrupted(&results) {
        return Ok(code);
    }
    if s.run.ceilings {
        let c = harness::ceilings::measure(&s, dirs)?;
        results.ceilings = Some(c);
        results.save(&run_dir.join("results.json"))?;
    }
    println!(
        "\n{} ({}):\n",
        s.name,
        run_dir.join("results.json").display()
    );
    // One analysis for the summary, the report and the gate.
    let analysis = Analysis::of(&results);
    print!("{}", harness::summary::table(&analysis));
    // The report is drawn from the results file alone; a failure to draw it does
    // not lose the results.
    match harness::report::write(&analysis, &run_dir) {
        Ok(written) => print_report(&written),
        Err(e) => eprintln!("warning: the report could not be written: {e:#}"),
    }
    let failed: Vec<String> = results
        .repetitions
        .iter()
        .filter(|r| !r.counts)
        .map(|r| {
            let why = r.error.clone().unwrap_or_else(|| {
                r.verification.as_ref().map_or("not verified".into(), |v| {
                    format!(
                        "verification failed: {}",
                        v.problems.first().cloned().unwrap_or_default()
                    )
                })
            });
            format!("{} repetition {}: {why}", r.label, r.index + 1)
        })
        .collect();
    if !failed.is_empty() {
        anyhow::bail!(
            "{} of {} repetitions failed; first: {}",
            failed.len(),
            results.repetitions.len(),
            failed[0]
        );
    }
    if let (Some(base), Some(g)) = (base, gate) {
        let c = harness::compare::compare(&Analysis::of(&base), &analysis, g.threshold, false);
        println!("\ncompared with {}:\n", g.base.display());
        print!("{}", harness::compare::markdown(&c));
        return Ok(ExitCode::from(c.decision().exit_code()));
    }
    Ok(ExitCode::SUCCESS)
}

/// `harness list`: every listed backend from the registry, with its capabilities,
/// whether it runs here, and its own options as its crate declares them.
fn list() -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "| backend | byte ranges | parallel | needs io_uring | S3 | available here | what it is |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|");
    let yn = |x: bool| if x { "yes" } else { "no" };
    for entry in REGISTRY.iter().filter(|e| e.listed) {
        let b = AnyBackend::default_of(entry);
        let c = b.capabilities();
        let avail = match b.availability() {
            Availability::Available => "yes".to_string(),
            Availability::Unavailable(why) => format!("no: {why}"),
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} |",
            entry.name,
            yn(c.byte_ranges),
            yn(c.parallel),
            yn(c.needs_io_uring),
            yn(c.s3),
            avail,
            entry.summary
        );
    }
    let _ = writeln!(out, "\nBackend-specific keys of a [[backend]] table:");
    for entry in REGISTRY.iter().filter(|e| e.listed) {
        for o in (entry.docs)() {
            let _ = writeln!(
                out,
                "  {} {} ({}; default {}): {}",
                entry.name, o.key, o.kind, o.default, o.help
            );
        }
    }
    for (title, registry) in [
        (
            "Dataset kinds ([dataset] kind)",
            harness::kinds::DATASET_KINDS,
        ),
        (
            "Output layouts ([output] layout)",
            harness::kinds::OUTPUT_LAYOUTS,
        ),
    ] {
        let _ = writeln!(out, "\n{title}:");
        for (i, k) in registry.iter().enumerate() {
            let default = if i == 0 { " (default)" } else { "" };
            let _ = writeln!(out, "  {}{default}: {}", k.name, k.summary);
        }
    }
    let io = harness::machine::io_uring_status();
    let _ = writeln!(out, "\nio_uring on this machine: {}", io.detail);
    out
}
