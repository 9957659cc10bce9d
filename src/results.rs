//! `results.json`: the one source of truth of a run. Every field is documented here,
//! with loading (older schemas included) and saving; every figure shown is derived
//! from it alone, by [`crate::analysis`].

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Context;
use base64::Engine as _;
use hdrhistogram::serialization::{Deserializer, Serializer, V2DeflateSerializer};
use hdrhistogram::Histogram;

use rechunk_contract::{CounterSnapshot, RunOutcome};
use serde::{Deserialize, Serialize};

use crate::cache::CacheState;
use crate::dataset::DatasetInfo;
use crate::machine::Machine;
use crate::scenario::{Recording, Scenario};
use crate::verify::Verification;

/// Bumped whenever a field changes meaning or is removed, or a version's readers
/// would misread what it adds. 2: per-stage latency histograms, timeline,
/// `recording`, sweep points and skipped backends. 3: `items_per_second` (was
/// `fields_per_second`, which held inputs/s in read-only runs) and `ceilings` (was
/// `limits`); files of schema 2 load, their old names read as aliases.
pub const SCHEMA_VERSION: u32 = 3;

/// The whole of `results.json`: one run of one scenario. Rewritten (atomically)
/// after every repetition, so it is readable while the run goes on.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Results {
    /// The schema the file was written with ([`SCHEMA_VERSION`] for new files).
    pub schema_version: u32,
    /// The `harness` package version that wrote the file.
    pub harness_version: String,
    /// `git rev-parse HEAD` of the harness's source tree, or `unknown` outside a
    /// git checkout.
    pub git_commit: String,
    /// Whether that tree had uncommitted changes to tracked files.
    pub git_dirty: bool,
    /// When the run started, RFC 3339 (UTC).
    pub started_at: String,
    /// When the run ended, RFC 3339 (UTC); null while it is still running.
    pub finished_at: Option<String>,
    /// The scenario as resolved (defaults filled in).
    pub scenario: Scenario,
    /// The machine the run happened on.
    pub machine: Machine,
    /// The dataset the run read: where, how big, and whether this run generated it.
    pub dataset: DatasetInfo,
    /// Set when a signal stopped the run (`SIGINT`, `SIGTERM`): the repetitions
    /// are those that ran before it. Absent in complete runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interrupted: Option<String>,
    /// Every repetition in the order run, warm-ups included (marked).
    pub repetitions: Vec<Repetition>,
    /// Backends not run because they cannot work on this machine, and why.
    #[serde(default)]
    pub skipped: Vec<Skipped>,
    /// The IO and CPU ceilings, when the run measured them (`[run] ceilings`);
    /// `limits` in files of schema 2 and older.
    #[serde(default, alias = "limits")]
    pub ceilings: Option<Ceilings>,
    /// Copies of the dataset on object stores that backends read from (`s3://`).
    #[serde(default)]
    pub store_copies: Vec<crate::dataset::StoreCopy>,
    /// The network between the harness and its object stores, and which emulation
    /// of it ran. Absent in files written before it was recorded (read as unknown).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<Network>,
    /// Set when the run was one shard of a split job (`harness run --shard I/N`):
    /// which, on what host, and its part of the job. Absent in whole runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<ShardRecord>,
    /// When rounds were added to the scenario's repetitions until the regression
    /// gate could decide (`harness run --compare`): how many and why they stopped.
    /// `scenario.run.repetitions` is then the number run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rounds: Option<Rounds>,
}

/// The rounds of a run whose repetitions the regression gate extended.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Rounds {
    /// Repetitions the scenario asked for.
    pub asked: u32,
    /// Rounds run in all.
    pub run: u32,
    /// No round was added after this many seconds of repetitions.
    pub cap_seconds: f64,
    /// Why no more were added: decided, the time cap, the most rounds.
    pub stopped: String,
}

/// One shard of a split job, as its results record it (see `crate::split`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ShardRecord {
    /// Which shard (from 0) of how many.
    pub shard: crate::split::ShardId,
    /// The job it is a shard of (`--job`, `HARNESS_JOB_ID`, or Slurm's
    /// `SLURM_ARRAY_JOB_ID`), if named: the merge refuses a shard of another job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<String>,
    /// Units (rows of output objects of one group) it had, first and last as
    /// (group, row).
    pub units: u64,
    /// The first unit, (group, row).
    pub first_unit: Option<(u32, u32)>,
    /// The last unit, (group, row).
    pub last_unit: Option<(u32, u32)>,
    /// Its inputs.
    pub inputs: u64,
    /// The whole job's inputs.
    pub job_inputs: u64,
    /// Whether it wrote `zarr.json`.
    pub writes_metadata: bool,
    /// Its local output directory (absolute, on the host `machine.hostname` names): where the backends with a
    /// local output wrote its part.
    pub output_root: String,
    /// Where its results were uploaded, if anywhere (`s3://…/shard-I-of-N/`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub results_url: Option<String>,
}

/// The network between the harness and its object stores: which emulation ran, and
/// with what settings. The delay proxy and the in-process throttle are independent
/// (both may run).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Network {
    /// Which emulation ran: `proxy` (S3 requests went through `harness
    /// netem-proxy`), `throttle` (some backend's stores were wrapped in object_store's
    /// `ThrottledStore`), `proxy+throttle`, or `none` (no S3 store, or S3 on loopback
    /// with nothing added).
    pub mode: String,
    /// Whether any backend of the run read or wrote an S3 store.
    #[serde(default)]
    pub s3: bool,
    /// The delay proxy, when the run's S3 endpoint was the proxy that
    /// `scripts/s3-server start --latency` started (`HARNESS_S3_NET`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy: Option<ProxyNetwork>,
    /// Backends whose timed requests went through `ThrottledStore`, with its waits.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub throttle: Vec<ThrottleNetwork>,
    /// Why a proxy named in `HARNESS_S3_NET` did not count: the run used no S3
    /// store, or its S3 endpoint was not the proxy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// The delay proxy's settings (`harness netem-proxy`, see `src/netem.rs`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProxyNetwork {
    /// Where the proxy listened: the S3 endpoint clients used.
    pub listen: String,
    /// The S3 server behind it.
    pub upstream: String,
    /// The round-trip time added, in ms: every chunk of bytes was delayed by half
    /// of it in each direction.
    pub rtt_ms: f64,
    /// Up to this much more per chunk and direction (uniform, never reordering), ms.
    pub jitter_ms: f64,
    /// The cap per connection and direction, bits per second; null: none.
    pub rate_bits_per_second: Option<u64>,
    /// The most bytes in flight per connection and direction.
    pub buffer_bytes: u64,
}

/// One backend's in-process throttle (object_store's `ThrottledStore`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ThrottleNetwork {
    /// The `[[backend]]` label.
    pub label: String,
    /// Wait before every get, get_range and get_ranges, ms.
    pub get_per_call_ms: f64,
    /// Wait before every put, ms.
    pub put_per_call_ms: f64,
    /// Wait per byte read, ns.
    pub get_per_byte_ns: f64,
}

impl std::fmt::Display for Network {
    /// One line for the report: `TCP delay proxy 127.0.0.1:3903 → 127.0.0.1:3900:
    /// round trip 20 ms, …` and / or `in-process throttle (object_store
    /// ThrottledStore): …`, or `none`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut parts = Vec::new();
        if let Some(p) = &self.proxy {
            parts.push(format!(
                "TCP delay proxy (harness netem-proxy) {} → {}: round trip {} ms ({} ms each way per chunk), jitter 0–{} ms per direction, rate {}, {} KiB in flight per connection and direction",
                p.listen,
                p.upstream,
                p.rtt_ms,
                p.rtt_ms / 2.0,
                p.jitter_ms,
                p.rate_bits_per_second.map_or("uncapped".to_string(), |b| {
                    format!("{} Mbit/s per connection and direction", b as f64 / 1e6)
                }),
                p.buffer_bytes / 1024,
            ));
        }
        for t in &self.throttle {
            parts.push(format!(
                "in-process throttle (object_store ThrottledStore) on `{}`: get +{} ms per call, put +{} ms per call, +{} ns per byte read",
                t.label, t.get_per_call_ms, t.put_per_call_ms, t.get_per_byte_ns
            ));
        }
        if parts.is_empty() {
            parts.push("none emulated (S3, if any, straight to the server)".into());
        }
        if let Some(n) = &self.note {
            parts.push(n.clone());
        }
        write!(f, "{}", parts.join("; "))
    }
}

/// A backend of the scenario that was not run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Skipped {
    /// The `[[backend]]` table's label.
    pub label: String,
    /// Why the backend cannot run here, as its availability check said.
    pub reason: String,
}

/// One run of one backend, in its own child process.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Repetition {
    /// The `[[backend]]` table's label.
    pub label: String,
    /// The backend's name (several labels may share one).
    pub backend: String,
    /// 0-based among this backend's measured repetitions (warm-ups count separately).
    pub index: u32,
    /// A warm-up: run but never counted.
    pub warmup: bool,
    /// The backend finished without error.
    pub ok: bool,
    /// Why it failed: the backend's error (naming the file or key at fault), or
    /// that the child process died without a report. None when `ok`.
    pub error: Option<String>,
    /// The run's figures count: it finished and its output was verified.
    pub counts: bool,
    /// What the child measured; None when the backend failed or the child died.
    pub measurement: Option<Measurement>,
    /// What was done to the page cache before this repetition, and what it held.
    pub cache: CacheState,
    /// None when the backend failed (nothing to verify).
    pub verification: Option<Verification>,
    /// A shard started with `--barrier`: its wait for the other shards before this
    /// repetition, and the shards it went on without. Absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub barrier: Option<crate::barrier::BarrierWait>,
}

/// What the child process measured around `Backend::run` (building the job, e.g.
/// reading container indexes, is outside the timed region).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Measurement {
    /// Wall time of `Backend::run`, in seconds (the backend's untimed `prepare` and
    /// `finish` aside).
    pub wall_seconds: f64,
    /// When `Backend::run` was called, seconds since the Unix epoch by this host's
    /// clock (what puts the shards of a split job on one time axis). Absent in
    /// results written before it was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_unix: Option<f64>,
    /// User CPU time of the whole child process during the run, in seconds.
    pub user_seconds: f64,
    /// System CPU time of the whole child process during the run, in seconds.
    pub system_seconds: f64,
    /// Peak resident set (`VmHWM`) of the child process, in bytes (includes the job
    /// description).
    pub peak_rss_bytes: u64,
    /// Context switches of the process during the run (getrusage): voluntary ones
    /// are waits (a thread blocking on a hand-over, a lock, IO), so they count the
    /// hops between threads that a design makes.
    #[serde(default)]
    pub voluntary_switches: u64,
    /// Involuntary context switches of the process during the run (preemptions).
    #[serde(default)]
    pub involuntary_switches: u64,
    /// How busy the rest of the machine was during the run (other processes'
    /// CPU, steal): the noise this measurement was taken in. Absent in results
    /// written before it was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub machine_load: Option<crate::machine::MachineLoad>,
    /// Most OS threads the backend used at once, its calling thread included
    /// (the process's count sampled every 100 ms, less the harness's own threads).
    pub threads: u64,
    /// Items per second of wall time: inputs decoded in a rechunk run (fields/s),
    /// inputs read in a read-only run (inputs/s). `fields_per_second` before schema 3.
    #[serde(alias = "fields_per_second")]
    pub items_per_second: f64,
    /// Decoded field data (inputs × ny × nx × 4 bytes) per second, in MB (10^6).
    pub decoded_mb_per_second: f64,
    /// Input bytes read per second, in MB (10^6).
    pub input_mb_per_second: f64,
    /// The run's counters at its end: items and bytes per stage, reads, writes,
    /// most IO operations and budget bytes in flight.
    pub counters: CounterSnapshot,
    /// What the backend returned: inputs and bytes read, objects and bytes
    /// written, and its `details` (IO mechanism, threads, options in effect).
    pub outcome: RunOutcome,
    /// What was recorded: `full` fills `stages` and `timeline`; `counters` only
    /// `counters` (results older than schema 2 are `counters`).
    #[serde(default = "counters_only")]
    pub recording: Recording,
    /// Latency per stage name (read, decode, reduce, encode, write, input, group).
    #[serde(default)]
    pub stages: BTreeMap<String, StageLatency>,
    /// Items and bytes per stage per 100 ms, and gauges sampled every 100 ms.
    #[serde(default)]
    pub timeline: Option<Timeline>,
    /// Object-store requests per kind (`s3 get`, `file put`, …): time to first
    /// byte and total time (recorded with `recording = "full"`; their counts,
    /// bytes and errors are in `counters.requests` either way). Empty for backends
    /// that make no requests, and in results written before it was recorded.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub requests: BTreeMap<String, RequestLatency>,
}

/// The latencies of one kind of object-store request (see `stores::metered` for
/// where each is taken).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RequestLatency {
    /// From the call to the first byte of the response (a GET's status and
    /// headers; the whole response for other kinds).
    pub ttfb: StageLatency,
    /// From the call to the end of the response's body.
    pub total: StageLatency,
}

fn counters_only() -> Recording {
    Recording::Counters
}

impl Results {
    /// Writes the results file atomically (temporary file + rename).
    pub fn save(&self, path: &Path) -> anyhow::Result<()> {
        let tmp = path.with_extension("json.tmp");
        std::fs::write(&tmp, serde_json::to_vec_pretty(self)?)
            .with_context(|| format!("writing {}", tmp.display()))?;
        std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))
    }

    /// Reads a results file, refusing one written by a newer harness.
    pub fn load(path: &Path) -> anyhow::Result<Results> {
        let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        let r: Results = serde_json::from_slice(&bytes)
            .with_context(|| format!("{} is not a harness results file", path.display()))?;
        if r.schema_version > SCHEMA_VERSION {
            anyhow::bail!(
                "{} has schema version {}, newer than this harness reads ({SCHEMA_VERSION})",
                path.display(),
                r.schema_version
            );
        }
        Ok(r)
    }
}

/// Latency figures of one stage, in microseconds, with the histogram itself.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StageLatency {
    /// Items recorded.
    pub count: u64,
    /// Smallest latency.
    pub min_us: f64,
    /// Median latency.
    pub p50_us: f64,
    /// 90th percentile.
    pub p90_us: f64,
    /// 99th percentile.
    pub p99_us: f64,
    /// 99.9th percentile.
    pub p999_us: f64,
    /// Largest latency.
    pub max_us: f64,
    /// Mean latency.
    pub mean_us: f64,
    /// Sum of all latencies (mean × count), in seconds: time spent in the stage,
    /// summed over items that overlap in time.
    pub total_seconds: f64,
    /// The histogram (nanoseconds), HdrHistogram V2 + DEFLATE, base64: percentiles
    /// can be recomputed from it ([`StageLatency::histogram`]).
    pub hdr: String,
}

impl StageLatency {
    /// The figures of a histogram of nanoseconds, with the histogram serialised.
    pub fn from_histogram(h: &Histogram<u64>) -> StageLatency {
        let us = |ns: u64| ns as f64 / 1e3;
        let mut bytes = Vec::new();
        // Serialising into a Vec cannot fail for a valid histogram.
        let _ = V2DeflateSerializer::new().serialize(h, &mut bytes);
        StageLatency {
            count: h.len(),
            min_us: us(h.min()),
            p50_us: us(h.value_at_quantile(0.5)),
            p90_us: us(h.value_at_quantile(0.9)),
            p99_us: us(h.value_at_quantile(0.99)),
            p999_us: us(h.value_at_quantile(0.999)),
            max_us: us(h.max()),
            mean_us: h.mean() / 1e3,
            total_seconds: h.mean() * h.len() as f64 / 1e9,
            hdr: base64::engine::general_purpose::STANDARD.encode(bytes),
        }
    }

    /// The histogram back from its serialised form.
    pub fn histogram(&self) -> anyhow::Result<Histogram<u64>> {
        let bytes = base64::engine::general_purpose::STANDARD.decode(&self.hdr)?;
        let mut h: Histogram<u64> = Deserializer::new()
            .deserialize(&mut bytes.as_slice())
            .map_err(|e| anyhow::anyhow!("a stored histogram does not decode: {e:?}"))?;
        // Grows when histograms of other runs are added to it.
        h.auto(true);
        Ok(h)
    }
}

/// Items and bytes completed per stage per [`crate::record::BUCKET`], and gauges sampled over time.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Timeline {
    /// Width of a bucket, in seconds (0.1).
    pub bucket_seconds: f64,
    /// Per stage name: items completed in each bucket since the run started.
    pub items: BTreeMap<String, Vec<u64>>,
    /// Per stage name: bytes completed in each bucket.
    pub bytes: BTreeMap<String, Vec<u64>>,
    /// Gauges sampled about every [`crate::record::BUCKET`] by the harness's sampler thread.
    pub samples: Vec<Sample>,
}

/// One sample of the gauges.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    /// Seconds since the run started.
    pub t: f64,
    /// IO operations in flight at that moment.
    pub io_in_flight: u64,
    /// Budget bytes reserved (`bytes_in_flight`) at that moment.
    pub bytes_in_flight: u64,
    /// OS threads of the process.
    pub threads: u64,
    /// Object-store requests outstanding (sent, response not read to its end) at
    /// that moment; 0 for backends that make none and in older results.
    #[serde(default)]
    pub requests_in_flight: u64,
}

/// Both ceilings, in fields (inputs) per second.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Ceilings {
    /// Median inputs/s of the best read-only backend.
    pub io_per_second: f64,
    /// Which backend gave it.
    pub io_backend: String,
    /// The read-only run's results file.
    pub io_results: String,
    /// Median fields/s of decode + reduce + encode from memory, all cores.
    pub cpu_per_second: f64,
    /// The CPU threads used.
    pub cpu_threads: usize,
    /// Each CPU repetition's fields/s.
    pub cpu_repetitions: Vec<f64>,
    /// Median CPU time (user + system, all threads) per field of the CPU ceiling's
    /// timed passes, in milliseconds: the work itself, decode + reduce + encode from
    /// memory, which every backend must spend at least. Absent in results written
    /// before it was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_ms_per_item: Option<f64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The CI gate's committed baseline, written by schema 2.
    fn ci_baseline() -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/ci-schema-2.json")
    }

    #[test]
    fn a_schema_2_file_loads_with_its_old_names() {
        let path = ci_baseline();
        let raw: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(raw["schema_version"], 2);
        let r = Results::load(&path).unwrap();
        assert_eq!(r.schema_version, 2);
        // `fields_per_second` reads as `items_per_second`, value for value.
        let old = raw["repetitions"].as_array().unwrap();
        assert!(!old.is_empty());
        assert_eq!(old.len(), r.repetitions.len());
        for (o, n) in old.iter().zip(&r.repetitions) {
            let m = n.measurement.as_ref().unwrap();
            assert!(m.items_per_second > 0.0);
            assert_eq!(
                o["measurement"]["fields_per_second"].as_f64(),
                Some(m.items_per_second)
            );
        }
        // `limits` (the ceilings) reads as `ceilings`.
        assert!(raw["limits"].is_null() && r.ceilings.is_none());
        let mut with = raw.clone();
        with["limits"] = serde_json::json!({
            "io_per_second": 2000.0,
            "io_backend": "uring",
            "io_results": "x/results.json",
            "cpu_per_second": 1000.0,
            "cpu_threads": 2,
            "cpu_repetitions": [1000.0],
        });
        let r: Results = serde_json::from_value(with).unwrap();
        assert_eq!(r.ceilings.unwrap().cpu_per_second, 1000.0);
    }

    /// Results without the request fields (every file before them) load with none;
    /// with them, they survive a save and a load value for value.
    #[test]
    fn request_metrics_round_trip_and_older_files_have_none() {
        let mut r = Results::load(&ci_baseline()).unwrap();
        let m = r.repetitions[0].measurement.as_mut().unwrap();
        assert!(m.requests.is_empty() && m.counters.requests.is_empty());
        assert_eq!(m.counters.max_requests_in_flight, 0);
        let samples = &m.timeline.as_ref().unwrap().samples;
        assert!(!samples.is_empty() && samples.iter().all(|s| s.requests_in_flight == 0));

        let mut h = Histogram::<u64>::new(2).unwrap();
        for ns in [20_000_000u64, 21_000_000, 40_000_000] {
            h.record(ns).unwrap();
        }
        m.requests.insert(
            "s3 get".into(),
            RequestLatency {
                ttfb: StageLatency::from_histogram(&h),
                total: StageLatency::from_histogram(&h),
            },
        );
        m.counters.requests.insert(
            "s3 get".into(),
            rechunk_contract::RequestCount {
                count: 3,
                bytes: 21_000,
                errors: 1,
            },
        );
        m.counters.max_requests_in_flight = 3;
        m.counters.http_attempts = 4;
        m.counters.http_failed_attempts = 1;
        m.timeline.as_mut().unwrap().samples[0].requests_in_flight = 2;
        r.schema_version = SCHEMA_VERSION;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("results.json");
        r.save(&path).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            text.contains("\"requests_in_flight\": 2"),
            "no gauge sample"
        );
        assert!(text.contains("\"http_attempts\": 4"));
        let back = Results::load(&path).unwrap();
        assert_eq!(back, r);
        let l = &back.repetitions[0].measurement.as_ref().unwrap().requests["s3 get"];
        assert_eq!(l.ttfb.count, 3);
        assert_eq!(
            l.ttfb.histogram().unwrap().value_at_quantile(0.5),
            h.value_at_quantile(0.5)
        );
    }

    #[test]
    fn a_file_without_the_network_loads_and_a_recorded_one_round_trips() {
        let mut r = Results::load(&ci_baseline()).unwrap();
        assert!(r.network.is_none());
        r.network = Some(Network {
            mode: "proxy".into(),
            s3: true,
            proxy: Some(ProxyNetwork {
                listen: "127.0.0.1:3903".into(),
                upstream: "127.0.0.1:3900".into(),
                rtt_ms: 20.0,
                jitter_ms: 5.0,
                rate_bits_per_second: Some(500_000_000),
                buffer_bytes: 4 << 20,
            }),
            throttle: Vec::new(),
            note: None,
        });
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("results.json");
        r.save(&path).unwrap();
        let back = Results::load(&path).unwrap();
        assert_eq!(back, r);
        let line = back.network.unwrap().to_string();
        assert!(
            line.contains("round trip 20 ms") && line.contains("500 Mbit/s"),
            "{line}"
        );
    }

    #[test]
    fn a_saved_file_uses_the_new_names() {
        let mut r = Results::load(&ci_baseline()).unwrap();
        r.schema_version = SCHEMA_VERSION;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("results.json");
        r.save(&path).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("\"items_per_second\"") && text.contains("\"ceilings\""));
        assert!(!text.contains("fields_per_second"));
        assert_eq!(Results::load(&path).unwrap(), r);
    }
}
