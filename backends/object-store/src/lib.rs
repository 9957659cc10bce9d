//! The `object-store` backend: the `tokio-rayon` pipeline (IO on Tokio, CPU on Rayon,
//! bounded by the same budget, IO semaphore and CPU queue) with every read and write
//! a request to the [object_store] crate, as light-speed-io benchmarked itself
//! against. Reads are `get` (a whole file), `get_range` (one message of a
//! container) or `get_ranges` (`ranges_per_request` consecutive messages of a
//! container in one call); writes are one `put` per object, atomic on every store
//! (an object above [`stores::MULTIPART_THRESHOLD`], a large shard, is a multipart
//! upload, which appears whole when completed; counted in `multipart_uploads`).
//!
//! Input and output stores are chosen separately by URL ([`stores::StoreUrl`]) and
//! opened, emptied, loaded and copied through the [`stores`] crate:
//! `file://` (the job's local directories through `LocalFileSystem`), `memory://`
//! (`InMemory`: the input is loaded from the job's local input by the backend's untimed `prepare`,
//! before the timed region, and a memory output is copied to the job's local output
//! directory by its untimed `finish`, after it, so it can be verified), or
//! `s3://bucket/prefix`.
//!
//! Both stores are opened metered ([`stores::metered`]): every request of the timed
//! run is reported to the run's recorder (kind, time to first byte, total time,
//! bytes, outcome, requests in flight; on S3 every HTTP attempt), so the results
//! hold per-request latencies and the in-flight gauge. Up to `io_in_flight`
//! requests are outstanding at once (the pipeline's read window and IO semaphore;
//! the byte budget is the only other bound), on as many HTTP/1 connections.
//!
//! Inputs read from the job's local input directory (`file://`, and the copies into
//! `memory://` or a staged S3 store) must be regular files: `LocalFileSystem` opens
//! them with a blocking open that would wait for ever on a FIFO, and object_store is
//! not ours to change, so `prepare` checks every input path of the job first
//! (untimed, one `stat` each) and refuses anything else with an error naming it;
//! the backend's own local reads go through [`rechunk_contract::input`].
//!
//! `LocalFileSystem` does each call as blocking work on Tokio's blocking pool; the
//! results count those hops per kind of call, as object_store 0.14's `local.rs`
//! makes them: `get` two (`get_opts` opens and stats, `GetResult::bytes` reads),
//! `get_range` two (the same two with a range), `get_ranges` one, `put` one (write a
//! staged file, rename it), a multipart upload one per part and one to complete.

pub mod options;

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use backend_tokio::pipeline::{self, Config};
use backend_tokio::{Bridge, IoMode, ObjectIo};
use futures::future::BoxFuture;
use object_store::memory::InMemory;
use object_store::throttle::{ThrottleConfig, ThrottledStore};
use object_store::{ObjectStore, ObjectStoreExt};
use rechunk_contract::{
    Availability, Backend, ByteRange, Cancel, Capabilities, InputRef, Job, Recorder, RunError,
    RunOutcome, Workload,
};
use serde_json::{Map, Value};

use stores::{describe, S3Config, Store, StoreError, StoreUrl};

const CAPABILITIES: Capabilities = Capabilities {
    byte_ranges: true,
    needs_io_uring: false,
    s3: true,
    parallel: true,
};

/// Requests at once when the backend loads or copies a store outside the timed
/// region (memory stores, staged S3 data).
const STAGING_CONCURRENCY: usize = 64;

/// The object-store backend. See the crate documentation.
#[derive(Debug)]
pub struct ObjectStoreBackend {
    /// The store inputs are read from.
    pub input: StoreUrl,
    /// The store outputs are written to.
    pub output: StoreUrl,
    /// Endpoint, region and credentials for `s3://` stores (the standard `AWS_*`
    /// variables fill in what is not set).
    pub s3: S3Config,
    /// Consecutive messages of one container fetched by one `get_ranges`; 1: one
    /// `get_range` per message.
    pub ranges_per_request: usize,
    /// How CPU work is handed to the Rayon pool, as in `tokio-rayon`.
    pub bridge: Bridge,
    /// Tokio worker threads (they drive the requests and hand-overs).
    pub tokio_workers: usize,
    /// CPU jobs queued or running at once; `None`: 32 per CPU thread, as `tokio-rayon`.
    pub cpu_in_flight: Option<usize>,
    /// Also copy the job's local input into an S3 input store in `prepare` and the
    /// S3 output back into the job's local output directory in `finish` (what the
    /// conformance suite needs; memory stores always do both).
    pub stage: bool,
    /// In-process network emulation: the stores of the timed run wrapped in
    /// object_store's `ThrottledStore`; None: not wrapped.
    pub throttle: Option<Throttle>,
    memory: Mutex<Memory>,
}

/// The in-process network emulation: what object_store's
/// [`ThrottledStore`](object_store::throttle::ThrottledStore) adds to each request of
/// the timed run. It sleeps before a get (`get_per_call`) or a put (`put_per_call`)
/// is sent, and `get_per_byte` for every byte a read returns (as the body is
/// consumed; up front for `get_ranges`). Requests in flight wait independently, so
/// it emulates latency and a per-request rate, not a shared link; there is no
/// per-byte cost for puts. Only the run's own requests are throttled (not the
/// untimed loading, emptying and copying of `prepare` and `finish`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Throttle {
    /// Wait before every get, get_range and get_ranges.
    pub get_per_call: Duration,
    /// Wait before every put.
    pub put_per_call: Duration,
    /// Wait per byte read.
    pub get_per_byte: Duration,
}

impl Throttle {
    /// None when it would add nothing.
    pub fn active(self) -> Option<Throttle> {
        (self != Throttle::default()).then_some(self)
    }

    fn config(&self) -> ThrottleConfig {
        ThrottleConfig {
            wait_get_per_call: self.get_per_call,
            wait_put_per_call: self.put_per_call,
            wait_get_per_byte: self.get_per_byte,
            ..ThrottleConfig::default()
        }
    }
}

impl std::fmt::Display for Throttle {
    /// `get +20 ms per call, put +20 ms per call, +1000 ns per byte read`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "get +{} ms per call, put +{} ms per call, +{} ns per byte read",
            self.get_per_call.as_millis(),
            self.put_per_call.as_millis(),
            self.get_per_byte.as_nanos()
        )
    }
}

/// `store`'s requests in a `ThrottledStore` of `t`.
fn throttled(store: Arc<dyn ObjectStore>, t: &Throttle) -> Arc<dyn ObjectStore> {
    Arc::new(ThrottledStore::new(store, t.config()))
}

#[derive(Debug, Default)]
struct Memory {
    input: Option<Arc<InMemory>>,
    output: Option<Arc<InMemory>>,
}

impl ObjectStoreBackend {
    /// Reads from `input` and writes to `output`, one request per input, with
    /// `tokio-rayon`'s defaults (oneshot bridge, one Tokio worker), no staging and
    /// S3 settings from the environment only.
    pub fn new(input: StoreUrl, output: StoreUrl) -> Self {
        ObjectStoreBackend {
            input,
            output,
            s3: S3Config::default(),
            ranges_per_request: 1,
            bridge: Bridge::Oneshot,
            tokio_workers: 1,
            cpu_in_flight: None,
            stage: false,
            throttle: None,
            memory: Mutex::new(Memory::default()),
        }
    }

    fn memory(&self) -> std::sync::MutexGuard<'_, Memory> {
        self.memory.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Both stores, every request of each reported to `recorder` (per-request
    /// metrics and the requests in flight; see [`stores::metered`]), each in a
    /// `ThrottledStore` of `throttle` under the metering when one is given.
    fn open(
        &self,
        job: &Job,
        recorder: &Arc<dyn Recorder>,
        throttle: Option<&Throttle>,
    ) -> Result<(Store, Store), RunError> {
        let m = self.memory();
        let layer = |store: Arc<dyn ObjectStore>| match throttle {
            Some(t) => throttled(store, t),
            None => store,
        };
        let input = Store::open_layered(
            &self.input,
            &job.input_root,
            m.input.as_ref(),
            &self.s3,
            recorder.clone(),
            &layer,
        )
        .map_err(|e| RunError::input(self.input.to_string(), e))?;
        let output = Store::open_layered(
            &self.output,
            &job.output_root,
            m.output.as_ref(),
            &self.s3,
            recorder.clone(),
            &layer,
        )
        .map_err(|e| RunError::output(self.output.to_string(), e))?;
        Ok((input, output))
    }

    /// Untimed setup before a run: checks that the job's local inputs are regular
    /// files (when they are read: `file://`, or copied into a memory or staged S3
    /// store), loads a memory input from the job's local input, empties the output
    /// store (an S3 prefix) and, with `stage`, uploads the job's local input to an S3
    /// input store. Returns what it did, for the results.
    fn prepare_stores(&self, job: &Job) -> Result<Map<String, Value>, RunError> {
        let mut details = Map::new();
        let started = Instant::now();
        let copied = self.input == StoreUrl::Memory || (self.stage && self.input.is_s3());
        if copied && self.input.is_s3() && job.own_outputs.is_some() {
            return Err(RunError::input(
                self.input.to_string(),
                "stage = true empties the S3 input prefix and uploads the job's inputs, but \
                 this job is one shard of a split job and shares that prefix: stage the \
                 dataset once before the shards start (`harness gen SCENARIO --store URL`)",
            ));
        }
        if self.input == StoreUrl::File || copied {
            check_local_inputs(job)?;
        }
        {
            let mut m = self.memory();
            m.input = (self.input == StoreUrl::Memory).then(|| Arc::new(InMemory::new()));
            m.output = (self.output == StoreUrl::Memory).then(|| Arc::new(InMemory::new()));
        }
        let (input, output) = self.open(job, &untimed(), None)?;
        let in_name = |e: StoreError| RunError::input(&input.url, e);
        if copied {
            if self.input.is_s3() {
                stores::block_on(input.empty_owned(STAGING_CONCURRENCY))
                    .map_err(in_name)?
                    .map_err(in_name)?;
            }
            // The job's input files, each once: not whatever else the directory
            // holds (a user's directory may have much more than the dataset). One
            // that is missing is left out, so that the run names it as the store's
            // missing object, as it would be on S3.
            let mut keys: Vec<String> = job
                .groups
                .iter()
                .flat_map(|g| g.inputs.iter().map(|i| i.path.to_string()))
                .filter(|k| std::fs::symlink_metadata(job.input_root.join(k)).is_ok())
                .collect();
            keys.sort_unstable();
            keys.dedup();
            let (files, bytes) = stores::block_on(input.upload_files(
                &job.input_root,
                keys,
                None,
                STAGING_CONCURRENCY,
                &|_, _| {},
            ))
            .map_err(in_name)?
            .map_err(in_name)?;
            details.insert(
                "input_loaded_before_timing".into(),
                format!(
                    "{files} objects, {bytes} bytes copied from {} into {} in {:.2} s, before the timed region",
                    job.input_root.display(),
                    input.url,
                    started.elapsed().as_secs_f64()
                )
                .into(),
            );
        }
        if self.output.is_s3() {
            let out_name = |e: StoreError| RunError::output(&output.url, e);
            // A shard of a split job shares the prefix: only its own objects go.
            let n = match &job.own_outputs {
                None => stores::block_on(output.empty_owned(STAGING_CONCURRENCY)),
                Some(keys) => stores::block_on(output.delete_owned(keys, STAGING_CONCURRENCY)),
            }
            .map_err(out_name)?
            .map_err(out_name)?;
            if n > 0 {
                details.insert(
                    "output_emptied_before_timing".into(),
                    format!(
                        "{n} objects deleted under {}{}",
                        output.url,
                        match job.own_outputs {
                            Some(_) => " (this shard's own)",
                            None => "",
                        }
                    )
                    .into(),
                );
            }
        }
        Ok(details)
    }

    /// Untimed work after a run: copies a memory output (or, with `stage`, an S3
    /// output) into the job's local output directory, where it is verified.
    fn finish_stores(&self, job: &Job) -> Result<Map<String, Value>, RunError> {
        let mut details = Map::new();
        if self.output == StoreUrl::Memory || (self.stage && self.output.is_s3()) {
            let started = Instant::now();
            let (_, output) = self.open(job, &untimed(), None)?;
            let out_name = |e: StoreError| RunError::output(&output.url, e);
            let n = stores::block_on(output.download_to(&job.output_root))
                .map_err(out_name)?
                .map_err(out_name)?;
            details.insert(
                "output_copied_after_timing".into(),
                format!(
                    "{n} objects copied from {} to {} in {:.2} s, after the timed region, for verification",
                    output.url,
                    job.output_root.display(),
                    started.elapsed().as_secs_f64()
                )
                .into(),
            );
        }
        if self.output == StoreUrl::Memory {
            self.memory().output = None;
        }
        Ok(details)
    }
}

impl Backend for ObjectStoreBackend {
    fn name(&self) -> &'static str {
        "object-store"
    }

    fn capabilities(&self) -> Capabilities {
        CAPABILITIES
    }

    fn prepare(&self, job: &Job) -> Result<Map<String, Value>, RunError> {
        if let Some(t) = &self.throttle {
            let reads = !t.get_per_call.is_zero() || !t.get_per_byte.is_zero();
            if reads && self.input == StoreUrl::File {
                // ThrottledStore cannot wrap LocalFileSystem's reads (it panics on a
                // file payload): refuse before anything is timed.
                return Err(RunError::input(
                    self.input.to_string(),
                    "throttle_get_ms and throttle_byte_ns need an s3:// or memory:// input: \
                     object_store's ThrottledStore cannot wrap file:// reads",
                ));
            }
        }
        self.prepare_stores(job)
    }

    fn finish(&self, job: &Job) -> Result<Map<String, Value>, RunError> {
        self.finish_stores(job)
    }

    fn availability(&self) -> Availability {
        let s3 = self.input.is_s3() || self.output.is_s3();
        let credentials =
            self.s3.access_key_id.is_some() || std::env::var_os("AWS_ACCESS_KEY_ID").is_some();
        if s3 && !self.s3.configured() && !credentials {
            return Availability::Unavailable(
                "an s3:// store is named but no S3 endpoint or credentials are configured \
                 (start one with `scripts/s3-server start` and `eval \"$(scripts/s3-server env)\"`)"
                    .into(),
            );
        }
        Availability::Available
    }

    fn run<W: Workload>(
        &self,
        job: &Arc<Job>,
        workload: &Arc<W>,
        recorder: &Arc<dyn Recorder>,
        cancel: &Cancel,
    ) -> Result<RunOutcome, RunError> {
        cancel.check()?;
        // The throttle (if any) goes under the metering, so that its waits count
        // in every request's times, as a network's delay would.
        let (input, output) = self.open(job, recorder, self.throttle.as_ref())?;
        let io = Arc::new(StoreIo {
            local_input: self.input == StoreUrl::File,
            local_output: self.output == StoreUrl::File,
            input: Arc::new(input),
            output: Arc::new(output),
            ranges_per_request: self.ranges_per_request.max(1),
            counts: Default::default(),
        });
        let cfg = Config {
            bridge: self.bridge,
            io: IoMode::Object(io),
            tokio_workers: self.tokio_workers,
            cpu_in_flight: self
                .cpu_in_flight
                .unwrap_or(32 * job.limits.cpu_threads.max(1)),
        };
        let mut outcome = pipeline::run(cfg, job, workload, recorder, cancel)?;
        let d = &mut outcome.details;
        d.insert("input_store".into(), self.input.to_string().into());
        d.insert("output_store".into(), self.output.to_string().into());
        d.insert("ranges_per_request".into(), self.ranges_per_request.into());
        if let Some(t) = &self.throttle {
            d.insert(
                "network".into(),
                format!("in-process throttle (object_store ThrottledStore): {t}").into(),
            );
        }
        if self.input.is_s3() || self.output.is_s3() {
            d.insert(
                "s3_endpoint".into(),
                self.s3.endpoint().unwrap_or_else(|| "AWS".into()).into(),
            );
        }
        Ok(outcome)
    }
}

/// Where the requests of the untimed `prepare` and `finish` go: nowhere (they are
/// the harness's staging, not the design's).
fn untimed() -> Arc<dyn Recorder> {
    Arc::new(rechunk_contract::NullRecorder)
}

/// Every distinct input path of `job` is a regular file (symlinks followed), or an
/// error naming the first that is not: `LocalFileSystem`'s open of a FIFO would
/// block for ever, of `/dev/zero` read without end. A path that cannot be `stat`ed
/// (a missing file) is left to the run, which reports it as before. One `stat` per
/// file (a container once), outside the timed region; a file swapped for a FIFO
/// after this check is not caught.
fn check_local_inputs(job: &Job) -> Result<(), RunError> {
    let mut seen = std::collections::HashSet::new();
    for input in job.groups.iter().flat_map(|g| &g.inputs) {
        if seen.insert(&*input.path) {
            rechunk_contract::input::check_regular(&job.input_path(input))?;
        }
    }
    Ok(())
}

/// Requests of each kind, and the blocking-pool hops `LocalFileSystem` made for them.
#[derive(Debug, Default)]
struct Counts {
    get: AtomicU64,
    get_range: AtomicU64,
    get_ranges: AtomicU64,
    put: AtomicU64,
    /// Objects written by multipart upload (each counted in `put` too) and their
    /// parts.
    multipart: AtomicU64,
    multipart_parts: AtomicU64,
    read_hops: AtomicU64,
    write_hops: AtomicU64,
}

/// The pipeline's IO through two object stores.
#[derive(Debug)]
struct StoreIo {
    input: Arc<Store>,
    output: Arc<Store>,
    local_input: bool,
    local_output: bool,
    ranges_per_request: usize,
    counts: Arc<Counts>,
}

/// Checks that a range came back whole: a short answer is a truncated object.
fn whole_range(
    bytes: bytes::Bytes,
    r: ByteRange,
    name: impl FnOnce() -> PathBuf,
) -> Result<Vec<u8>, RunError> {
    if bytes.len() as u64 != r.len {
        return Err(RunError::input(
            name(),
            format!(
                "truncated: the object ends before byte {} ({} of {} bytes of the range came back)",
                r.offset + r.len,
                bytes.len(),
                r.len
            ),
        ));
    }
    Ok(Vec::from(bytes))
}

impl ObjectIo for StoreIo {
    fn name(&self) -> String {
        format!("object_store: {} → {}", self.input.url, self.output.url)
    }

    fn input_name(&self, input: &InputRef) -> PathBuf {
        self.input.name(&input.path)
    }

    fn output_name(&self, key: &str) -> PathBuf {
        self.output.name(key)
    }

    fn read(&self, input: &InputRef) -> BoxFuture<'static, Result<Vec<u8>, RunError>> {
        let store = self.input.clone();
        let path = store.path(&input.path);
        let counts = self.counts.clone();
        let hops = if self.local_input { 2 } else { 0 };
        let range = input.range;
        Box::pin(async move {
            counts.read_hops.fetch_add(hops, Relaxed);
            let fail = |e: object_store::Error| RunError::input(store.named(&path), describe(&e));
            match range {
                None => {
                    counts.get.fetch_add(1, Relaxed);
                    let got = store.inner.get(&path).await.map_err(fail)?;
                    Ok(Vec::from(got.bytes().await.map_err(fail)?))
                }
                Some(r) => {
                    counts.get_range.fetch_add(1, Relaxed);
                    let bytes = store
                        .inner
                        .get_range(&path, r.offset..r.offset + r.len)
                        .await
                        .map_err(fail)?;
                    whole_range(bytes, r, || store.named(&path))
                }
            }
        })
    }

    fn read_ranges(
        &self,
        path: &str,
        ranges: Vec<ByteRange>,
    ) -> BoxFuture<'static, Result<Vec<Vec<u8>>, RunError>> {
        let store = self.input.clone();
        let path = store.path(path);
        let counts = self.counts.clone();
        let hops = if self.local_input { 1 } else { 0 };
        Box::pin(async move {
            counts.get_ranges.fetch_add(1, Relaxed);
            counts.read_hops.fetch_add(hops, Relaxed);
            let wanted: Vec<_> = ranges.iter().map(|r| r.offset..r.offset + r.len).collect();
            let got = store
                .inner
                .get_ranges(&path, &wanted)
                .await
                .map_err(|e| RunError::input(store.named(&path), describe(&e)))?;
            got.into_iter()
                .zip(ranges)
                .map(|(b, r)| whole_range(b, r, || store.named(&path)))
                .collect()
        })
    }

    fn write(&self, key: &str, bytes: Vec<u8>) -> BoxFuture<'static, Result<(), RunError>> {
        let store = self.output.clone();
        let path = store.path(key);
        let counts = self.counts.clone();
        let hops = if self.local_output { 1 } else { 0 };
        Box::pin(async move {
            counts.put.fetch_add(1, Relaxed);
            counts.write_hops.fetch_add(hops, Relaxed);
            let put = stores::put_object(
                store.inner.as_ref(),
                &path,
                bytes,
                stores::MULTIPART_THRESHOLD,
            )
            .await
            .map_err(|e| RunError::output(store.named(&path), describe(&e)))?;
            if let stores::Put::Multipart { parts } = put {
                counts.multipart.fetch_add(1, Relaxed);
                counts.multipart_parts.fetch_add(parts, Relaxed);
                // LocalFileSystem: one blocking hop per part and one to complete
                // (the rename), not the one of a `put`.
                counts.write_hops.fetch_add(hops * parts, Relaxed);
            }
            Ok(())
        })
    }

    fn ranges_per_request(&self) -> usize {
        self.ranges_per_request
    }

    fn details(&self) -> Map<String, Value> {
        let c = &self.counts;
        let mut d = Map::new();
        for (k, v) in [
            ("requests_get", &c.get),
            ("requests_get_range", &c.get_range),
            ("requests_get_ranges", &c.get_ranges),
            ("requests_put", &c.put),
            ("multipart_uploads", &c.multipart),
            ("multipart_parts", &c.multipart_parts),
            ("read_blocking_hops", &c.read_hops),
            ("write_blocking_hops", &c.write_hops),
        ] {
            d.insert(k.into(), v.load(Relaxed).into());
        }
        d
    }
}

#[cfg(test)]
mod tests;
