//! `harness merge`: the shards of a split job (see [`crate::split`]) put together.
//!
//! Reads every `shard-I-of-N/results.json` under a folder or an `s3://` prefix,
//! says which shards are missing or failed (with the command that reruns each),
//! and computes, per backend and repetition, the cluster's figures on one time
//! axis (each shard's clock; see the caveat in [`ClusterRep`]):
//!
//! - cluster throughput = all shards' inputs / (latest end − earliest start);
//! - each shard's own throughput and wall time;
//! - the straggler ratio = slowest shard's wall time / the median shard's.
//!
//! Then it verifies the whole output once: every S3 output prefix a backend wrote
//! (all shards write into the same one), and the shards' local output folders
//! together (each holds one shard's part; a key in two of them is an error), as
//! one array against the closed form (or, for the user's own files, against the
//! shards' reference outputs together). It writes `cluster.json`, `report.md`,
//! `report.html` and a timeline chart (one row per shard, one bar per repetition).

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context};
use rechunk_contract::nwp::zarr::ArrayLayout;
use rechunk_contract::nwp::Format;
use serde::{Deserialize, Serialize};
use stores::{Store, StoreUrl};

use crate::backends::AnyBackend;
use crate::results::Results;
use crate::split::ShardId;
use crate::verify::{self, Objects, Verification};

/// The merged results of a split job: `cluster.json`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Cluster {
    /// Where the shards' results were read from.
    pub location: String,
    /// When the merge ran, RFC 3339 (UTC).
    pub merged_at: String,
    /// The scenario's name.
    pub scenario: String,
    /// The scenario file the shards ran, as they name it (for the rerun command).
    pub scenario_source: String,
    /// How many shards the job was split into.
    pub shards: u32,
    /// Every shard, present or not.
    pub shard_status: Vec<ShardStatus>,
    /// Per backend (`[[backend]]` label), its repetitions across the shards.
    pub backends: Vec<BackendCluster>,
    /// The whole output's verifications: one per output location.
    pub verifications: Vec<OutputCheck>,
    /// Every shard present and complete, and every output verified.
    pub complete: bool,
}

/// One shard as the merge found it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ShardStatus {
    /// Which shard.
    pub shard: ShardId,
    /// `ok`, `missing`, `unfinished` (no end recorded: killed, or still running),
    /// `interrupted`, `failed` (a repetition failed or did not verify) or
    /// `mismatch` (another scenario or split).
    pub status: String,
    /// Why, when not ok.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub why: Option<String>,
    /// The host it ran on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// Its inputs (all its backends' runs read the same ones).
    pub inputs: u64,
    /// The command that reruns it, when it must be.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rerun: Option<String>,
}

/// One backend across the shards.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct BackendCluster {
    /// The `[[backend]]` label.
    pub label: String,
    /// Each repetition (warm-ups included, marked), across the shards.
    pub repetitions: Vec<ClusterRep>,
    /// The median of the counted repetitions' cluster throughput, items/s.
    pub median_items_per_second: Option<f64>,
    /// The median of their aligned throughput (see [`ClusterRep`]), items/s.
    #[serde(default)]
    pub median_aligned_items_per_second: Option<f64>,
    /// The median of their overlap (see [`ClusterRep`]).
    #[serde(default)]
    pub median_overlap: Option<f64>,
    /// The median of their straggler ratios.
    pub median_straggler_ratio: Option<f64>,
}

/// One repetition of one backend on every shard.
///
/// The shards' start times are their hosts' clocks: on one machine they agree;
/// across machines they are as good as the hosts' clock synchronisation (NTP:
/// milliseconds), which bounds the span's error.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ClusterRep {
    /// The repetition (or warm-up round) number, from 0.
    pub index: u32,
    /// A warm-up round.
    pub warmup: bool,
    /// Each shard's run of it that counted (ran, verified, with a start time).
    pub shards: Vec<ShardRep>,
    /// Whether every shard has a counted run of it: only then are the cluster
    /// figures computed.
    pub complete: bool,
    /// Latest end − earliest start, seconds.
    pub span_seconds: Option<f64>,
    /// All shards' inputs / the span.
    pub items_per_second: Option<f64>,
    /// All shards' inputs / the slowest shard's wall time: the throughput had the
    /// shards started together (what `--barrier` makes them do). Equal to
    /// `items_per_second` when they did.
    #[serde(default)]
    pub aligned_items_per_second: Option<f64>,
    /// The share of the span in which every shard was running this repetition:
    /// (earliest end − latest start) / span, 0 if they never all ran at once. Low:
    /// the shards drifted apart, and each ran beside other backends' runs.
    #[serde(default)]
    pub overlap: Option<f64>,
    /// Every shard started it after waiting at the barrier (`--barrier`).
    #[serde(default)]
    pub barrier: bool,
    /// Latest start − earliest start, seconds: near 0 when the shards started it
    /// together.
    #[serde(default)]
    pub start_spread_seconds: Option<f64>,
    /// The slowest shard's wall time / the median shard's.
    pub straggler_ratio: Option<f64>,
    /// The slowest shard.
    pub slowest: Option<ShardId>,
}

/// One shard's run of one repetition.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ShardRep {
    /// Which shard.
    pub shard: ShardId,
    /// When it started, seconds since the earliest start of any shard's run.
    pub start: f64,
    /// Its wall time, seconds.
    pub wall_seconds: f64,
    /// Its inputs.
    pub inputs: u64,
    /// Its own throughput, items/s.
    pub items_per_second: f64,
}

/// The verification of one output location, all shards' parts together.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct OutputCheck {
    /// What was checked: `s3://…` or the local folders, and which backend's run
    /// left them there.
    pub what: String,
    /// The verdict; absent when it could not be made here (`note` says why).
    pub verification: Option<Verification>,
    /// Why it was not made, or what to know about it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// `harness merge LOCATION`: prints the summary, writes the merged results and
/// report, and exits 1 when a shard is missing or failed or the output did not
/// verify.
pub fn command(
    location: &str,
    out: Option<&Path>,
    max_chunks: u64,
    local_outputs_here: bool,
) -> anyhow::Result<ExitCode> {
    let (local, out_dir) = fetch(location, out)?;
    let shards = load_shards(&local)?;
    let here = crate::machine::probe(Path::new(".")).hostname;
    let cluster = merge(location, &shards, max_chunks, |host| {
        local_outputs_here || host == here
    })?;
    fs::create_dir_all(&out_dir).with_context(|| format!("creating {}", out_dir.display()))?;
    let json = out_dir.join("cluster.json");
    fs::write(&json, serde_json::to_vec_pretty(&cluster)?)
        .with_context(|| format!("writing {}", json.display()))?;
    let md = markdown(&cluster);
    let bars = timeline_bars(&cluster);
    crate::report::write_cluster(&md, &bars, &out_dir)?;
    print!("{}", summary(&cluster));
    println!(
        "\nmerged results: {}\nreport: {} (and as one page: {})",
        json.display(),
        out_dir.join("report.md").display(),
        out_dir.join("report.html").display()
    );
    // Where the shards' results are, the merge's go too (a Kubernetes Job's own
    // folder does not outlive it).
    if location.starts_with("s3://") {
        let url = StoreUrl::parse(location)
            .map_err(|e| anyhow::anyhow!("{e}"))?
            .join("merged");
        let store = Store::open(&url, &out_dir, None, &Default::default())?;
        for name in [
            "cluster.json",
            "report.md",
            "report.html",
            "cluster-timeline.svg",
            "cluster-timeline.png",
        ] {
            let Ok(bytes) = fs::read(out_dir.join(name)) else {
                continue;
            };
            stores::block_on(store.put(name, bytes))
                .map_err(anyhow::Error::msg)?
                .with_context(|| format!("uploading {name} to {url}"))?;
        }
        println!("uploaded to {url}/");
    }
    Ok(if cluster.complete {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// The shards' results in a local folder: `location` itself, or (for `s3://`) a
/// copy of its `shard-*/results.json` in the output folder; and the output folder.
fn fetch(location: &str, out: Option<&Path>) -> anyhow::Result<(PathBuf, PathBuf)> {
    if !location.starts_with("s3://") {
        let dir = PathBuf::from(location);
        if !dir.is_dir() {
            bail!("{location} is not a folder (nor an s3:// prefix) of shard results");
        }
        let out = out.map_or_else(|| dir.join("merged"), Path::to_path_buf);
        return Ok((dir, out));
    }
    let url = StoreUrl::parse(location).map_err(|e| anyhow::anyhow!("{e}"))?;
    let name = location
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or("s3")
        .to_string();
    let out = out.map_or_else(
        || PathBuf::from("results/merged").join(&name),
        Path::to_path_buf,
    );
    let copy = out.join("shards");
    own_copy_folder(&copy)?;
    // Copies an earlier merge left (of this prefix, or another of the same last
    // name) must not be merged as this prefix's. The folder is the merge's own
    // (checked above); only regular files in real subfolders go.
    for entry in fs::read_dir(&copy)? {
        let entry = entry?;
        if entry.file_type()?.is_dir()
            && parse_folder(&entry.file_name().to_string_lossy()).is_some()
        {
            let stale = entry.path().join("results.json");
            if fs::symlink_metadata(&stale).is_ok_and(|m| m.is_file()) {
                fs::remove_file(&stale).with_context(|| format!("removing {}", stale.display()))?;
            }
        }
    }
    let store = Store::open(&url, &copy, None, &Default::default())?;
    let keys = stores::block_on(store.list())
        .map_err(anyhow::Error::msg)?
        .with_context(|| format!("listing {location}"))?;
    for key in keys {
        let Some((folder, file)) = key.split_once('/') else {
            continue;
        };
        if parse_folder(folder).is_none() || file != "results.json" {
            continue;
        }
        let bytes = stores::block_on(store.fetch(&key))
            .map_err(anyhow::Error::msg)?
            .map_err(|e| anyhow::anyhow!("{location}/{key}: {e}"))?;
        let sub = copy.join(folder);
        match fs::symlink_metadata(&sub) {
            Ok(m) if !m.is_dir() => bail!(
                "{} is not a folder: refusing to write into it",
                sub.display()
            ),
            Ok(_) => {}
            Err(_) => {
                fs::create_dir(&sub).with_context(|| format!("creating {}", sub.display()))?
            }
        }
        fs::write(sub.join(file), bytes)?;
    }
    Ok((copy, out))
}

/// The marker of a folder the merge made for its copies of S3 results.
const COPY_MARKER: &str = ".harness-merge-copy";

/// Makes `copy` the merge's own folder, or checks that it is: a new or empty
/// folder gets the marker; an existing one must hold it. A link, a file, or a
/// folder of someone else's files (an --out pointed at the wrong place) is refused
/// and left as it is.
fn own_copy_folder(copy: &Path) -> anyhow::Result<()> {
    match fs::symlink_metadata(copy) {
        Err(_) => {
            fs::create_dir_all(copy).with_context(|| format!("creating {}", copy.display()))?
        }
        Ok(m) if !m.is_dir() => bail!(
            "{} is not a folder (a link or a file): refusing to keep the shards' results there",
            copy.display()
        ),
        Ok(_) => {}
    }
    let marker = copy.join(COPY_MARKER);
    if fs::symlink_metadata(&marker).is_ok_and(|m| m.is_file()) {
        return Ok(());
    }
    if fs::read_dir(copy)?.next().is_some() {
        bail!(
            "{} holds files the merge did not put there (no {COPY_MARKER}): refusing to \
             replace them; give --out a new folder",
            copy.display()
        );
    }
    fs::write(&marker, b"copies of shard results, made by harness merge\n")
        .with_context(|| format!("writing {}", marker.display()))
}

/// `shard-I-of-N` → the shard.
pub fn parse_folder(name: &str) -> Option<ShardId> {
    let rest = name.strip_prefix("shard-")?;
    let (i, n) = rest.split_once("-of-")?;
    ShardId::new(i.parse().ok()?, n.parse().ok()?).ok()
}

/// What was found in one shard's folder.
struct Found {
    shard: ShardId,
    results: Result<Results, String>,
}

/// Every `shard-I-of-N/results.json` in `dir` (a folder without one is found with
/// that error).
fn load_shards(dir: &Path) -> anyhow::Result<Vec<Found>> {
    let mut found = Vec::new();
    for entry in fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let entry = entry?;
        let Some(shard) = parse_folder(&entry.file_name().to_string_lossy()) else {
            continue;
        };
        let path = entry.path().join("results.json");
        let results = if path.exists() {
            Results::load(&path).map_err(|e| format!("{e:#}"))
        } else {
            Err(format!("no results.json in {}", entry.path().display()))
        };
        found.push(Found { shard, results });
    }
    if found.is_empty() {
        bail!(
            "no shard results in {}: expected folders shard-I-of-N/ (written by `harness run \
             --shard I/N`)",
            dir.display()
        );
    }
    found.sort_by_key(|f| (f.shard.count, f.shard.index));
    Ok(found)
}

/// The merge itself, from what was found in the shards' folders.
fn merge(
    location: &str,
    found: &[Found],
    max_chunks: u64,
    reachable: impl Fn(&str) -> bool,
) -> anyhow::Result<Cluster> {
    // The split: the count most shards name (a folder of another split is a mismatch).
    let mut counts: BTreeMap<u32, usize> = BTreeMap::new();
    for f in found {
        *counts.entry(f.shard.count).or_default() += 1;
    }
    let n = counts
        .iter()
        .max_by_key(|(c, k)| (**k, **c))
        .map(|(c, _)| *c)
        .expect("at least one shard");
    // The job: the id most of the split's shards recorded (none if unnamed).
    let mut jobs: BTreeMap<Option<String>, usize> = BTreeMap::new();
    for f in found.iter().filter(|f| f.shard.count == n) {
        if let Ok(r) = &f.results {
            *jobs
                .entry(r.shard.as_ref().and_then(|s| s.job.clone()))
                .or_default() += 1;
        }
    }
    let job = jobs
        .iter()
        .max_by_key(|(j, k)| (**k, j.is_some()))
        .and_then(|(j, _)| j.clone());
    // The reference scenario: the first readable shard of the split and job.
    let first = found
        .iter()
        .filter(|f| f.shard.count == n)
        .filter_map(|f| f.results.as_ref().ok())
        .find(|r| r.shard.as_ref().and_then(|s| s.job.clone()) == job)
        .with_context(|| format!("no shard of {n} has readable results"))?;
    let scenario = &first.scenario;
    let source = scenario.source.display().to_string();
    // The shard's results must land where the others' are.
    let place = match location.starts_with("s3://") {
        true => format!("--results-url {location}"),
        false => format!("--results-dir {location}"),
    };
    // The same job (a rerun under another id would be refused as another job's).
    let job_arg = job
        .as_deref()
        .map_or(String::new(), |j| format!(" --job {j}"));
    let rerun = |s: ShardId| format!("harness run {source} --shard {s} {place}{job_arg}");
    let mut status = Vec::new();
    let mut ok: Vec<(ShardId, &Results)> = Vec::new();
    for i in 0..n {
        let id = ShardId { index: i, count: n };
        let f = found.iter().find(|f| f.shard == id);
        let (st, why, host, inputs) = match f.map(|f| &f.results) {
            None => ("missing", Some("no results folder".to_string()), None, 0),
            Some(Err(e)) => ("missing", Some(e.clone()), None, 0),
            Some(Ok(r)) => {
                let host = Some(r.machine.hostname.clone());
                let inputs = r.shard.as_ref().map_or(0, |s| s.inputs);
                match shard_problem(r, first, id, job.as_deref()) {
                    Some((st, why)) => (st, Some(why), host, inputs),
                    None => {
                        ok.push((id, r));
                        ("ok", None, host, inputs)
                    }
                }
            }
        };
        status.push(ShardStatus {
            shard: id,
            status: st.into(),
            rerun: (st != "ok").then(|| rerun(id)),
            why,
            host,
            inputs,
        });
    }
    for f in found.iter().filter(|f| f.shard.count != n) {
        status.push(ShardStatus {
            shard: f.shard,
            status: "mismatch".into(),
            why: Some(format!(
                "a shard of {} where the job has {n}",
                f.shard.count
            )),
            host: None,
            inputs: 0,
            rerun: None,
        });
    }
    let backends = backend_figures(scenario, &ok, n);
    let all_ok = status.iter().all(|s| s.status == "ok");
    let verifications = if all_ok {
        verify_whole(first, &ok, max_chunks, &reachable)?
    } else {
        vec![OutputCheck {
            what: "the whole output".into(),
            verification: None,
            note: Some(
                "not verified: a shard is missing or failed (rerun it, then merge again)".into(),
            ),
        }]
    };
    // A location not verifiable here (emptied by a later run, on another host) is
    // said, not failed; but at least one verification must have run and passed.
    let ran: Vec<&Verification> = verifications
        .iter()
        .filter_map(|c| c.verification.as_ref())
        .collect();
    let verified = !ran.is_empty() && ran.iter().all(|v| v.ok);
    Ok(Cluster {
        location: location.to_string(),
        merged_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        scenario: scenario.name.clone(),
        scenario_source: source,
        shards: n,
        shard_status: status,
        backends,
        verifications,
        complete: all_ok && verified,
    })
}

/// Why shard `id`'s results cannot be merged as they are: (status, why).
fn shard_problem(
    r: &Results,
    first: &Results,
    id: ShardId,
    job: Option<&str>,
) -> Option<(&'static str, String)> {
    let Some(rec) = &r.shard else {
        return Some((
            "mismatch",
            "its results are of a whole run, not a shard".into(),
        ));
    };
    if rec.job.as_deref() != job {
        return Some((
            "mismatch",
            format!(
                "its results are of job {}, the other shards' of job {}: left by another job",
                rec.job.as_deref().unwrap_or("(unnamed)"),
                job.unwrap_or("(unnamed)")
            ),
        ));
    }
    if rec.shard != id {
        return Some((
            "mismatch",
            format!("its results say shard {}, its folder {id}", rec.shard),
        ));
    }
    if identity(&r.scenario) != identity(&first.scenario) {
        return Some((
            "mismatch",
            "it ran another scenario than the other shards (its resolved scenario differs)".into(),
        ));
    }
    if let Some(sig) = &r.interrupted {
        return Some(("interrupted", format!("stopped by {sig}")));
    }
    if r.finished_at.is_none() {
        return Some((
            "unfinished",
            format!(
                "its results have no end ({} repetitions recorded): it was killed, or is still running",
                r.repetitions.len()
            ),
        ));
    }
    if let Some(rep) = r.repetitions.iter().find(|x| !x.warmup && !x.counts) {
        let why = rep.error.clone().unwrap_or_else(|| {
            rep.verification
                .as_ref()
                .map_or("not verified".into(), |v| {
                    format!(
                        "did not verify: {}",
                        v.problems.first().cloned().unwrap_or_default()
                    )
                })
        });
        return Some((
            "failed",
            format!("{} repetition {}: {why}", rep.label, rep.index + 1),
        ));
    }
    if let Some(s) = r.skipped.first() {
        return Some(("failed", format!("{} was skipped: {}", s.label, s.reason)));
    }
    None
}

/// A resolved scenario without what differs from host to host for the same job
/// (the path of a grib2-dir scan's cache in the host's data directory).
fn identity(s: &crate::scenario::Scenario) -> Option<serde_json::Value> {
    fn strip(v: &mut serde_json::Value) {
        match v {
            serde_json::Value::Object(m) => {
                // The path as typed, and the scan's cache in the host's data
                // directory: the same job, named from another place.
                m.remove("catalog_file");
                m.remove("source");
                m.values_mut().for_each(strip);
            }
            serde_json::Value::Array(a) => a.iter_mut().for_each(strip),
            _ => {}
        }
    }
    let mut v = serde_json::to_value(s).ok()?;
    strip(&mut v);
    Some(v)
}

/// Per backend and repetition, the shards' runs on one time axis and the cluster
/// figures.
fn backend_figures(
    scenario: &crate::scenario::Scenario,
    ok: &[(ShardId, &Results)],
    n: u32,
) -> Vec<BackendCluster> {
    let t0 = ok
        .iter()
        .flat_map(|(_, r)| r.repetitions.iter())
        .filter_map(|x| x.measurement.as_ref()?.started_unix)
        .fold(f64::INFINITY, f64::min);
    scenario
        .backends
        .iter()
        .map(|b| {
            let mut keys: Vec<(bool, u32)> = ok
                .iter()
                .flat_map(|(_, r)| r.repetitions.iter())
                .filter(|x| x.label == b.label)
                .map(|x| (!x.warmup, x.index))
                .collect();
            keys.sort_unstable();
            keys.dedup();
            let repetitions: Vec<ClusterRep> = keys
                .into_iter()
                .map(|(counted, index)| cluster_rep(&b.label, !counted, index, ok, n, t0))
                .collect();
            let counted = |f: fn(&ClusterRep) -> Option<f64>| {
                let v: Vec<f64> = repetitions
                    .iter()
                    .filter(|r| !r.warmup)
                    .filter_map(f)
                    .collect();
                median(&v)
            };
            BackendCluster {
                label: b.label.clone(),
                median_items_per_second: counted(|r| r.items_per_second),
                median_aligned_items_per_second: counted(|r| r.aligned_items_per_second),
                median_overlap: counted(|r| r.overlap),
                median_straggler_ratio: counted(|r| r.straggler_ratio),
                repetitions,
            }
        })
        .collect()
}

fn cluster_rep(
    label: &str,
    warmup: bool,
    index: u32,
    ok: &[(ShardId, &Results)],
    n: u32,
    t0: f64,
) -> ClusterRep {
    let mut barriers = 0;
    let shards: Vec<ShardRep> = ok
        .iter()
        .filter_map(|(id, r)| {
            let x = r
                .repetitions
                .iter()
                .find(|x| x.label == label && x.warmup == warmup && x.index == index)?;
            // Only a wait at which every shard arrived counts as started together.
            barriers += x.barrier.as_ref().is_some_and(|b| b.missing.is_empty()) as usize;
            let m = x
                .measurement
                .as_ref()
                .filter(|_| x.counts || warmup && x.ok)?;
            Some(ShardRep {
                shard: *id,
                start: m.started_unix? - t0,
                wall_seconds: m.wall_seconds,
                inputs: m.outcome.inputs,
                items_per_second: m.items_per_second,
            })
        })
        .collect();
    let complete = shards.len() == n as usize;
    let mut rep = ClusterRep {
        index,
        warmup,
        complete,
        span_seconds: None,
        items_per_second: None,
        aligned_items_per_second: None,
        overlap: None,
        barrier: false,
        start_spread_seconds: None,
        straggler_ratio: None,
        slowest: None,
        shards,
    };
    if complete && !rep.shards.is_empty() {
        let start = rep
            .shards
            .iter()
            .map(|s| s.start)
            .fold(f64::INFINITY, f64::min);
        let end = rep
            .shards
            .iter()
            .map(|s| s.start + s.wall_seconds)
            .fold(f64::NEG_INFINITY, f64::max);
        let inputs: u64 = rep.shards.iter().map(|s| s.inputs).sum();
        let span = end - start;
        let walls: Vec<f64> = rep.shards.iter().map(|s| s.wall_seconds).collect();
        let slowest = rep
            .shards
            .iter()
            .max_by(|a, b| a.wall_seconds.total_cmp(&b.wall_seconds))
            .expect("not empty");
        let latest_start = rep
            .shards
            .iter()
            .map(|s| s.start)
            .fold(f64::NEG_INFINITY, f64::max);
        let earliest_end = rep
            .shards
            .iter()
            .map(|s| s.start + s.wall_seconds)
            .fold(f64::INFINITY, f64::min);
        rep.span_seconds = Some(span);
        rep.items_per_second = (span > 0.0).then(|| inputs as f64 / span);
        rep.aligned_items_per_second =
            (slowest.wall_seconds > 0.0).then(|| inputs as f64 / slowest.wall_seconds);
        rep.overlap = (span > 0.0).then(|| ((earliest_end - latest_start) / span).max(0.0));
        rep.barrier = barriers == n as usize;
        rep.start_spread_seconds = Some(latest_start - start);
        rep.straggler_ratio = median(&walls).map(|m| slowest.wall_seconds / m);
        rep.slowest = Some(slowest.shard);
    }
    rep
}

/// The median (the mean of the middle two for an even count).
fn median(v: &[f64]) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let m = s.len() / 2;
    Some(if s.len() % 2 == 1 {
        s[m]
    } else {
        (s[m - 1] + s[m]) / 2.0
    })
}

/// Several local output folders read as one output: each key from the folder that
/// has it. A chunk key in two folders (two shards wrote the same object) is kept
/// as a problem.
struct Union {
    dirs: Vec<PathBuf>,
    owner: HashMap<String, usize>,
    twice: Vec<String>,
}

impl Union {
    fn new(dirs: Vec<PathBuf>) -> Union {
        let mut owner = HashMap::new();
        let mut twice = Vec::new();
        for (i, d) in dirs.iter().enumerate() {
            for key in verify::LocalDir(d).keys().unwrap_or_default() {
                // zarr.json and the marker: any folder's will do (the verification
                // checks zarr.json's content).
                let shared = key == "zarr.json" || key == crate::safety::MARKER;
                if let Some(&j) = owner.get(&key) {
                    if !shared && j != i {
                        twice.push(key.clone());
                    }
                } else {
                    owner.insert(key, i);
                }
            }
        }
        Union { dirs, owner, twice }
    }
}

impl Objects for Union {
    fn keys(&self) -> Result<Vec<String>, String> {
        let mut keys: Vec<String> = self.owner.keys().cloned().collect();
        keys.sort();
        Ok(keys)
    }
    fn get(&self, key: &str) -> Result<Vec<u8>, String> {
        match self.owner.get(key) {
            Some(&i) => verify::LocalDir(&self.dirs[i]).get(key),
            None => Err("not in any shard's output".into()),
        }
    }
}

/// One verification of the whole output per location: each S3 output prefix, and
/// the shards' local output folders together.
fn verify_whole(
    first: &Results,
    ok: &[(ShardId, &Results)],
    max_chunks: u64,
    reachable: &dyn Fn(&str) -> bool,
) -> anyhow::Result<Vec<OutputCheck>> {
    let scenario = &first.scenario;
    let layout = ArrayLayout::new(scenario.dataset.params.clone(), scenario.output.params);
    let own_files = matches!(scenario.dataset.params.format, Format::Grib2Dir(_));
    let mut checks = Vec::new();
    // The reference of a dataset without a closed form: the shards' reference
    // outputs together (each kept its part at outputs/.oracle/<output root>).
    let oracle_dirs: Vec<PathBuf> = ok
        .iter()
        .filter_map(|(id, r)| oracle_dir(Path::new(&r.shard.as_ref()?.output_root), *id))
        .collect();
    let oracle = Union::new(oracle_dirs);
    let expected = match own_files {
        false => verify::Expected::ClosedForm,
        true => verify::Expected::Output(&oracle),
    };
    let mut s3_seen: Vec<StoreUrl> = Vec::new();
    for b in &scenario.backends {
        let Ok(backend) = AnyBackend::build(b, &scenario.s3) else {
            continue;
        };
        let Some(url) = backend.s3_stores().1 else {
            continue;
        };
        if s3_seen.contains(&url) {
            continue;
        }
        s3_seen.push(url.clone());
        eprintln!("verifying {url} (every shard's part of {}) …", b.label);
        let check = match verify::InStore::open(&url, &scenario.s3) {
            Ok(objects) => OutputCheck {
                what: format!("{url} (written by {})", b.label),
                verification: Some(verify::verify_against(
                    &layout, &objects, expected, max_chunks, 0,
                )),
                note: None,
            },
            Err(e) => OutputCheck {
                what: format!("{url} (written by {})", b.label),
                verification: None,
                note: Some(format!("could not open it: {e:#}")),
            },
        };
        checks.push(check);
    }
    // The local outputs: whichever backend with a local output ran last on each
    // shard left its part there.
    let local_labels: Vec<&String> = scenario
        .backends
        .iter()
        .filter(|b| AnyBackend::build(b, &scenario.s3).is_ok_and(|x| x.s3_stores().1.is_none()))
        .map(|b| &b.label)
        .collect();
    if !local_labels.is_empty() {
        let mut dirs = Vec::new();
        let mut last_by = Vec::new();
        let mut unreachable = Vec::new();
        let mut emptied = Vec::new();
        for (id, r) in ok {
            let rec = r.shard.as_ref().expect("checked");
            let dir = PathBuf::from(&rec.output_root);
            // Another host's folder is read here only when said to be reachable:
            // the same path here may hold something else.
            if !reachable(&r.machine.hostname) || !dir.is_dir() {
                unreachable.push(format!(
                    "shard {id}'s ({} on {})",
                    rec.output_root, r.machine.hostname
                ));
                continue;
            }
            // Shards run one after another with one data directory share it.
            let canonical = dir.canonicalize().unwrap_or(dir);
            if !dirs.contains(&canonical) {
                dirs.push(canonical);
            }
            // Every repetition empties the shard's part of the local output first:
            // what is there is the last repetition's, if it wrote locally.
            match r.repetitions.last() {
                Some(x) if local_labels.contains(&&x.label) => last_by.push(x.label.clone()),
                Some(x) => emptied.push(format!("shard {id}'s by its last run, of {}", x.label)),
                None => emptied.push(format!("shard {id}'s (no repetition)")),
            }
        }
        last_by.sort();
        last_by.dedup();
        let what = format!(
            "the shards' local output folders together (last written by {})",
            last_by.join(", ")
        );
        if !emptied.is_empty() {
            checks.push(OutputCheck {
                what: "the shards' local output folders".into(),
                verification: None,
                note: Some(format!(
                    "not verified as a whole: emptied before a run that wrote elsewhere ({}); \
                     each shard verified its part after every repetition",
                    emptied.join("; ")
                )),
            });
        } else if !unreachable.is_empty() {
            checks.push(OutputCheck {
                what,
                verification: None,
                note: Some(format!(
                    "not verified here: {} not reachable from this host; local outputs of \
                     shards on other machines are verified by each shard only (write to an \
                     s3:// output to verify the whole here; or, where their folders are \
                     reachable here under the same paths, merge with --local-outputs-here)",
                    unreachable.join(", ")
                )),
            });
        } else {
            eprintln!(
                "verifying the local outputs of {} shards together …",
                dirs.len()
            );
            let union = Union::new(dirs);
            let mut v = verify::verify_against(&layout, &union, expected, max_chunks, 0);
            if !union.twice.is_empty() {
                v.ok = false;
                v.problems.insert(
                    0,
                    format!(
                        "{} objects are in two shards' outputs (e.g. {}): the shards overlapped",
                        union.twice.len(),
                        union.twice[0]
                    ),
                );
            }
            checks.push(OutputCheck {
                what,
                verification: Some(v),
                note: None,
            });
        }
    }
    Ok(checks)
}

/// `<data>/outputs/.oracle/shard-I-of-N/<rest>` for shard I's output root
/// `<data>/outputs/<rest>` (where the runner keeps a shard's part of the reference).
fn oracle_dir(output_root: &Path, shard: ShardId) -> Option<PathBuf> {
    let parts: Vec<_> = output_root.components().collect();
    let at = parts.iter().rposition(|c| c.as_os_str() == "outputs")?;
    let mut p: PathBuf = parts[..=at].iter().collect();
    p.push(crate::runner::ORACLES);
    p.push(shard.folder());
    p.extend(&parts[at + 1..]);
    p.is_dir().then_some(p)
}

/// Seconds, for tables.
fn secs(x: Option<f64>) -> String {
    x.map_or("–".into(), |s| format!("{s:.2}"))
}

fn rate(x: Option<f64>) -> String {
    x.map_or("–".into(), |r| format!("{r:.0}"))
}

/// The terminal summary: shards, per-backend cluster figures, verification.
pub fn summary(c: &Cluster) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "\n{}: {} shards, merged from {}\n",
        c.scenario, c.shards, c.location
    );
    for st in &c.shard_status {
        let _ = writeln!(
            s,
            "  shard {}: {}{}{}",
            st.shard,
            st.status,
            st.host
                .as_ref()
                .map_or(String::new(), |h| format!(" on {h}")),
            st.why.as_ref().map_or(String::new(), |w| format!(": {w}"))
        );
        if let Some(cmd) = &st.rerun {
            let _ = writeln!(s, "    rerun it: {cmd}");
        }
    }
    let _ = writeln!(s);
    s.push_str(&backend_table(c));
    for v in &c.verifications {
        let _ = writeln!(s, "\n  {}: {}", v.what, verdict(v));
    }
    let _ = writeln!(
        s,
        "\n{}",
        if c.complete {
            "complete: every shard ran and the whole output verified"
        } else {
            "NOT complete: see above"
        }
    );
    s
}

fn verdict(v: &OutputCheck) -> String {
    match (&v.verification, &v.note) {
        (Some(x), _) if x.ok => format!(
            "verified ({} of {} objects checked{})",
            x.chunks_checked,
            x.chunks_expected,
            if x.against.is_some() {
                " against the shards' reference outputs"
            } else {
                ""
            }
        ),
        (Some(x), _) => format!("FAILED: {}", x.problems.join("; ")),
        (None, Some(n)) => n.clone(),
        (None, None) => "not verified".into(),
    }
}

fn backend_table(c: &Cluster) -> String {
    let mut s = String::from(
        "| backend | cluster items/s (median) | if aligned | overlap | straggler ratio (median) | repetitions | per repetition: items/s, span s, straggler (slowest shard) |\n|---|---:|---:|---:|---:|---:|---|\n",
    );
    for b in &c.backends {
        let reps: Vec<String> = b
            .repetitions
            .iter()
            .filter(|r| !r.warmup)
            .map(|r| match r.complete {
                true => format!(
                    "{}: {}, {}, {:.2} ({})",
                    r.index + 1,
                    rate(r.items_per_second),
                    secs(r.span_seconds),
                    r.straggler_ratio.unwrap_or(f64::NAN),
                    r.slowest.map_or("–".into(), |s| s.to_string())
                ),
                false => format!("{}: {} of {} shards", r.index + 1, r.shards.len(), c.shards),
            })
            .collect();
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} | {} |",
            b.label,
            rate(b.median_items_per_second),
            rate(b.median_aligned_items_per_second),
            b.median_overlap
                .map_or("–".into(), |o| format!("{:.0} %", o * 100.0)),
            b.median_straggler_ratio
                .map_or("–".into(), |r| format!("{r:.2}")),
            b.repetitions.iter().filter(|r| !r.warmup).count(),
            reps.join("; ")
        );
    }
    s
}

/// `report.md` of the merge.
pub fn markdown(c: &Cluster) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "# {}: {} shards (merged)\n", c.scenario, c.shards);
    let _ = writeln!(
        s,
        "Merged {} from `{}`. Scenario `{}`.\n",
        c.merged_at, c.location, c.scenario_source
    );
    let _ = writeln!(
        s,
        "**{}**\n",
        if c.complete {
            "Complete: every shard ran and the whole output verified."
        } else {
            "Not complete: a shard is missing or failed, or the output did not verify (below)."
        }
    );
    let _ = writeln!(
        s,
        "## Shards\n\n| shard | status | host | inputs | why / rerun |\n|---|---|---|---:|---|"
    );
    for st in &c.shard_status {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} |",
            st.shard,
            st.status,
            st.host.as_deref().unwrap_or("–"),
            st.inputs,
            match (&st.why, &st.rerun) {
                (Some(w), Some(r)) => format!("{w}; rerun: `{r}`"),
                (Some(w), None) => w.clone(),
                _ => String::new(),
            }
        );
    }
    let _ = writeln!(s, "\n## Cluster throughput\n");
    let reps: Vec<&ClusterRep> = c
        .backends
        .iter()
        .flat_map(|b| b.repetitions.iter().filter(|r| r.complete))
        .collect();
    let _ = writeln!(
        s,
        "{}\n",
        // Together: every shard waited at the barrier for all, and they started
        // within a tenth of the span of each other (a rerun alone does not).
        if !reps.is_empty()
            && reps.iter().all(|r| {
                r.barrier
                    && r.start_spread_seconds.unwrap_or(f64::INFINITY)
                        <= 0.1 * r.span_seconds.unwrap_or(0.0)
            })
        {
            "The shards started every repetition together (`--barrier`); the overlap below \
             1 is then the stragglers'."
        } else {
            "The shards did not all start every repetition together (no `--barrier`, a shard \
             gone on without, or one rerun alone): read the overlap and the aligned figure \
             before the cluster items/s."
        }
    );
    s.push_str(&backend_table(c));
    let _ = writeln!(s, "\n### Each shard\n\n| backend | repetition | shard | start s | wall s | inputs | items/s |\n|---|---:|---|---:|---:|---:|---:|");
    for b in &c.backends {
        for r in b.repetitions.iter().filter(|r| !r.warmup) {
            for x in &r.shards {
                let _ = writeln!(
                    s,
                    "| {} | {} | {} | {:.2} | {:.2} | {} | {:.0} |",
                    b.label,
                    r.index + 1,
                    x.shard,
                    x.start,
                    x.wall_seconds,
                    x.inputs,
                    x.items_per_second
                );
            }
        }
    }
    let _ = writeln!(s, "\n## Verification of the whole output\n");
    for v in &c.verifications {
        let _ = writeln!(s, "- {}: {}", v.what, verdict(v));
    }
    let _ = writeln!(
        s,
        "\n## Terms\n\n- **cluster items/s**: all shards' inputs of one repetition / (latest end − \
         earliest start of the shards' runs of it), on the hosts' clocks (one machine: one \
         clock; several: as synchronised as their clocks are). The median is over the counted \
         repetitions. Only repetitions every shard ran and verified are computed.\n- **straggler \
         ratio**: the slowest shard's wall time / the median shard's wall time in one repetition \
         (1.00: no straggler).\n- **if aligned**: all shards' inputs / the slowest shard's wall time: the \
         cluster throughput had the shards started together; `harness run --shard I/N --barrier` \
         makes them (each repetition starts when every shard has arrived), and then it equals the \
         cluster items/s.\n- **overlap**: the share of the span in which every shard was running \
         that repetition; far below 100 % the shards drifted apart (one started late, or ran \
         other backends meanwhile), the span measures the drift, and the aligned figure is the \
         one to read.\n- **span s**: latest end − earliest start. Without `--barrier` shards \
         do not wait for each other between repetitions: in a scenario with several backends, one \
         shard's run of backend A may overlap another's run of backend B (see the timeline).\n- The timeline \
         shows every shard's runs (one row per shard, one bar per repetition, warm-ups paler) on \
         one time axis."
    );
    s
}

/// One bar of the cluster timeline.
pub struct Bar {
    /// The shard's row.
    pub shard: u32,
    /// Start and end, seconds on the common axis.
    pub start: f64,
    /// End.
    pub end: f64,
    /// The backend's place in the scenario (its colour) and label.
    pub backend: usize,
    /// Its label.
    pub label: String,
    /// A warm-up round.
    pub warmup: bool,
}

/// The timeline's bars: every shard's runs.
pub fn timeline_bars(c: &Cluster) -> Vec<Bar> {
    let mut bars = Vec::new();
    for (i, b) in c.backends.iter().enumerate() {
        for r in &b.repetitions {
            for x in &r.shards {
                bars.push(Bar {
                    shard: x.shard.index,
                    start: x.start,
                    end: x.start + x.wall_seconds,
                    backend: i,
                    label: b.label.clone(),
                    warmup: r.warmup,
                });
            }
        }
    }
    bars
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folders_name_their_shard() {
        assert_eq!(
            parse_folder("shard-2-of-4"),
            Some(ShardId { index: 2, count: 4 })
        );
        assert_eq!(parse_folder("shard-4-of-4"), None);
        assert_eq!(parse_folder("merged"), None);
    }

    #[test]
    fn medians() {
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), Some(2.5));
    }

    #[test]
    fn the_oracle_of_an_output_root_is_beside_it() {
        let d = tempfile::tempdir().unwrap();
        let out = d.path().join("data/outputs/own/x");
        let s = ShardId { index: 1, count: 2 };
        assert_eq!(oracle_dir(&out, s), None);
        fs::create_dir_all(d.path().join("data/outputs/.oracle/shard-1-of-2/own/x")).unwrap();
        assert_eq!(
            oracle_dir(&out, s),
            Some(d.path().join("data/outputs/.oracle/shard-1-of-2/own/x"))
        );
    }
}
