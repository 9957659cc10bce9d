//! `read_groups`: a job's inputs as a Stream of per-group Streams, each yielding its
//! inputs as their reads complete: the API sketched in light-speed-io issue #25
//! ("Consider mixing Tokio & Rayon"), where a user loops over groups, decodes each
//! group's items concurrently on Rayon, combines them, compresses and writes.
//!
//! A group's reads start when its stream is first polled and run ahead of the
//! consumer by at most `io_in_flight` reads (and, with a [`Budget`], only as far as
//! the budget allows), so memory stays bounded however large the group: a group of
//! 146,000 inputs never holds more than that window of buffers that the consumer has
//! not taken. With [`IoMode::StdBatched`] the window is `io_in_flight` batches of
//! reads (each batch one IO operation at a time), still within the budget.
//!
//! ```
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use backend_tokio::read_groups::read_groups;
//! use futures::StreamExt;
//! use rechunk_contract::nwp::{generate::generate, Codec, DatasetParams, Format, Layout};
//! use rechunk_contract::{Job, Limits};
//!
//! // A tiny dataset: 2 groups (init times) × 3 variables × 4 steps of 8×8 fields.
//! let dir = tempfile::tempdir()?;
//! let params = DatasetParams {
//!     layout: Layout::Files, groups: 2, variables: 3, steps: 4, ny: 8, nx: 8,
//!     codec: Codec::Zstd, zstd_level: 1, noise_bits: 4, seed: 7, format: Format::NwpFields,
//! };
//! generate(&params, dir.path(), &|_, _| {})?;
//! let job = Arc::new(Job {
//!     groups: params.groups_at(dir.path())?,
//!     input_root: dir.path().to_path_buf(),
//!     output_root: dir.path().join("out"),
//!     limits: Limits { cpu_threads: 2, io_in_flight: 8, bytes_in_flight: 1 << 20 },
//!     overlap_groups: false,
//!     own_outputs: None,
//! });
//! let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build()?;
//!
//! tokio::runtime::Runtime::new()?.block_on(async {
//!     let mut groups = read_groups(job.clone());
//!     while let Some(mut group) = groups.next().await {
//!         // Decode every item of the group on Rayon as soon as its read completes.
//!         let mut decoded = Vec::new();
//!         while let Some(input) = group.next().await {
//!             let input = input?;
//!             let (tx, rx) = tokio::sync::oneshot::channel();
//!             pool.spawn(move || {
//!                 // Stand-in for decompression: the sum of the message's bytes.
//!                 let sum: u64 = input.bytes.iter().map(|&b| b as u64).sum();
//!                 let _ = tx.send(sum);
//!             });
//!             decoded.push(rx);
//!         }
//!         // Combine the group, "compress" and "write" it.
//!         let mut combined = 0u64;
//!         for rx in decoded {
//!             combined = combined.wrapping_add(rx.await?);
//!         }
//!         assert_ne!(combined, 0);
//!         println!("group {}: 12 inputs, checksum {combined}", group.group);
//!     }
//!     Ok::<_, Box<dyn std::error::Error>>(())
//! })?;
//! # Ok(())
//! # }
//! ```

use std::collections::HashMap;
use std::fs::File;
use std::io::{ErrorKind, SeekFrom};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Instant;

use async_stream::stream;
use futures::future::BoxFuture;
use futures::stream::{FuturesUnordered, Stream, StreamExt};
use rechunk_contract::input::{open_input, read_input};
use rechunk_contract::output::io_detail;
use rechunk_contract::{
    ByteRange, Cancel, Group, InputRef, Io, Job, NullRecorder, Recorder, RunError, Stage,
};
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use crate::limits::{Budget, IoLimit, Reservation, Stop};

/// How inputs are read and outputs written.
#[derive(Clone, Debug)]
pub enum IoMode {
    /// `tokio::fs`, what a Tokio user reaches for: every call (open, seek, read) is
    /// one hop to the blocking pool (on a runtime without the IO driver, as the
    /// pipeline builds it for this mode: on one with it, in a `tokio_unstable`
    /// build, Tokio would put a `tokio::fs::File`'s reads on io_uring). A whole file is one hop, as `tokio::fs::read`
    /// (which is `spawn_blocking(std::fs::read)`), here of the bounded, regular-file-
    /// only [`rechunk_contract::input::read_input`]. A byte range opens its file each
    /// time (the open through [`rechunk_contract::input::open_input`] in one hop, as
    /// `tokio::fs::File::open`), since a `tokio::fs::File` cannot serve concurrent
    /// positioned reads.
    TokioFs,
    /// `std::fs` inside one `spawn_blocking` per read: one hop per input, and a
    /// container file opened once and shared by positioned reads (`pread`).
    StdInBlocking,
    /// `std::fs` as in [`IoMode::StdInBlocking`], but one `spawn_blocking` reads up
    /// to this many consecutive inputs of a group, one after another: one hop per
    /// batch instead of one per input. A batch holds one `io_in_flight` slot (its
    /// reads run one at a time, each reported as its own read), and its inputs'
    /// bytes are all reserved before it starts; a batch is cut short rather than
    /// wait for budget while no other read is in flight. At most `io_in_flight`
    /// batches are under way. Writes are one hop each, as in
    /// [`IoMode::StdInBlocking`].
    StdBatched(usize),
    /// `tokio::fs` on Tokio's own io_uring driver (see [`crate::tokio_uring`]): the
    /// opens, reads, writes and renames go through the runtime's ring, needing a
    /// `--cfg tokio_unstable` build and a runtime built with `enable_io_uring()`
    /// (else Tokio runs them in its blocking pool; the pipeline checks and refuses
    /// the mode instead). A byte range opens its file each time, as with
    /// [`IoMode::TokioFs`]. `create_dir_all` of an output directory and the removal
    /// of a failed write's temporary file are still hops to the blocking pool.
    TokioUring,
    /// Another store (an object store): every read and write is its request.
    Object(Arc<dyn ObjectIo>),
}

impl IoMode {
    /// The mechanism, as the results record it.
    pub fn name(&self) -> String {
        match self {
            IoMode::TokioFs => "tokio::fs".into(),
            IoMode::StdInBlocking => "std::fs in spawn_blocking".into(),
            IoMode::StdBatched(n) => format!("std::fs in spawn_blocking, up to {n} reads per hop"),
            IoMode::TokioUring => "tokio::fs on Tokio's io_uring driver".into(),
            IoMode::Object(o) => o.name(),
        }
    }

    /// Where an input lives, as errors name it.
    pub fn input_name(&self, job: &Job, input: &InputRef) -> PathBuf {
        match self {
            IoMode::Object(o) => o.input_name(input),
            _ => job.input_path(input),
        }
    }

    /// Where an output goes, as errors name it.
    pub fn output_name(&self, job: &Job, key: &str) -> PathBuf {
        match self {
            IoMode::Object(o) => o.output_name(key),
            _ => job.output_path(key),
        }
    }
}

/// Reads and writes through something other than the local filesystem: the seam an
/// object store plugs into, so that its backend runs this crate's pipeline unchanged
/// and differs from `tokio-rayon` in nothing but the IO calls.
pub trait ObjectIo: Send + Sync + std::fmt::Debug + 'static {
    /// What the results call this IO.
    fn name(&self) -> String;
    /// Where an input lives (store and key), for errors.
    fn input_name(&self, input: &InputRef) -> PathBuf;
    /// Where an output goes (store and key), for errors.
    fn output_name(&self, key: &str) -> PathBuf;
    /// One input: a whole object, or one range of it.
    fn read(&self, input: &InputRef) -> BoxFuture<'static, Result<Vec<u8>, RunError>>;
    /// Several ranges of the object at `path` in one request.
    fn read_ranges(
        &self,
        path: &str,
        ranges: Vec<ByteRange>,
    ) -> BoxFuture<'static, Result<Vec<Vec<u8>>, RunError>>;
    /// One object, written so that it is never seen half written.
    fn write(&self, key: &str, bytes: Vec<u8>) -> BoxFuture<'static, Result<(), RunError>>;
    /// Consecutive ranges of one container fetched per request; 1: one request per
    /// input.
    fn ranges_per_request(&self) -> usize {
        1
    }
    /// Facts for the results (requests made, hops to a blocking pool, …).
    fn details(&self) -> serde_json::Map<String, serde_json::Value> {
        Default::default()
    }
}

/// The stream of groups (boxed and pinned, so that `.next()` works on it as it is).
pub type Groups = Pin<Box<dyn Stream<Item = GroupReads> + Send>>;

type CostFn = Arc<dyn Fn(&Group, usize) -> u64 + Send + Sync>;

/// Reads a job's inputs; configure it, then call [`Reader::read_groups`].
///
/// Inputs are read only if they are regular files (a FIFO or a device at an input
/// path fails its read with an error naming it), and a whole file only up to the
/// bound [`Reader::max_len`] sets (see [`rechunk_contract::input`]).
pub struct Reader {
    job: Arc<Job>,
    mode: IoMode,
    io: Option<IoLimit>,
    budget: Option<(Budget, CostFn)>,
    max_len: Option<CostFn>,
    recorder: Arc<dyn Recorder>,
    stop: Stop,
}

/// One input whose read completed.
pub struct Input {
    /// The group's position in `job.groups`.
    pub position: usize,
    /// The input's index in that group.
    pub index: usize,
    /// What was read.
    pub bytes: Vec<u8>,
    /// What the budget holds for this input (none without a budget); dropping it
    /// gives the bytes back.
    pub reservation: Option<Reservation>,
    /// When the read was submitted (after its budget was reserved).
    pub submitted: Instant,
}

/// One group's inputs, yielded as their reads complete (not in order). The first
/// error ends the stream.
pub struct GroupReads {
    /// The group's position in `job.groups`.
    pub position: usize,
    /// The group's number ([`rechunk_contract::Group::index`]).
    pub group: u32,
    inputs: Pin<Box<dyn Stream<Item = Result<Input, RunError>> + Send>>,
}

impl Stream for GroupReads {
    type Item = Result<Input, RunError>;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.inputs.as_mut().poll_next(cx)
    }
}

/// Every group of `job`, each a stream of its inputs, read with `tokio::fs` and at
/// most `job.limits.io_in_flight` reads at once. See the module documentation.
pub fn read_groups(job: Arc<Job>) -> Groups {
    Reader::new(job).read_groups()
}

struct Shared {
    job: Arc<Job>,
    mode: IoMode,
    io: IoLimit,
    budget: Option<(Budget, CostFn)>,
    max_len: Option<CostFn>,
    recorder: Arc<dyn Recorder>,
    stop: Stop,
    /// Container files opened once (std-in-blocking mode), by relative path.
    containers: Mutex<HashMap<Box<str>, Arc<File>>>,
    /// Hops to the blocking pool made for reads.
    hops: Arc<AtomicU64>,
}

impl Reader {
    /// Reads `job`'s inputs with `tokio::fs`, `job.limits.io_in_flight` at once, no
    /// budget, no bound on whole files but their end, reporting nowhere, never
    /// stopped: the defaults the other methods change.
    pub fn new(job: Arc<Job>) -> Reader {
        Reader {
            job,
            mode: IoMode::TokioFs,
            io: None,
            budget: None,
            max_len: None,
            recorder: Arc::new(NullRecorder),
            stop: Stop::new(&Cancel::new()),
        }
    }

    /// Reads (and, for the pipeline, writes) as `mode` says.
    pub fn io_mode(mut self, mode: IoMode) -> Self {
        self.mode = mode;
        self
    }

    /// Shares an IO limit with other operations (the writes); by default the reads
    /// get `job.limits.io_in_flight` slots of their own.
    pub fn io_limit(mut self, io: IoLimit) -> Self {
        self.io = Some(io);
        self
    }

    /// Reserves `cost(group, index)` bytes from `budget` before each read.
    pub fn budget(
        mut self,
        budget: Budget,
        cost: impl Fn(&Group, usize) -> u64 + Send + Sync + 'static,
    ) -> Self {
        self.budget = Some((budget, Arc::new(cost)));
        self
    }

    /// Reads at most `max_len(group, index)` bytes of a whole-file input (the
    /// workload's `cost(group, index).read`, the largest valid input): a longer file
    /// fails its read, `larger than any valid input`, after at most one byte more.
    /// Without it a whole file is read to its end (it is a regular file, so it has
    /// one). Byte ranges read exactly their length either way; object IO reads what
    /// its store returns.
    pub fn max_len(
        mut self,
        max_len: impl Fn(&Group, usize) -> u64 + Send + Sync + 'static,
    ) -> Self {
        self.max_len = Some(Arc::new(max_len));
        self
    }

    /// Reports every read's `Read` stage to `recorder`, and its IO too unless
    /// [`Reader::io_limit`] gave a limit (which reports to its own recorder).
    pub fn recorder(mut self, recorder: Arc<dyn Recorder>) -> Self {
        self.recorder = recorder;
        self
    }

    /// Stops issuing reads, and ends the streams with `Cancelled`, once set. A
    /// `Stop` built on a user's [`Cancel`] wakes waiting reads only while
    /// [`Stop::watch`] runs (see [`Stop`]).
    pub fn stop(mut self, stop: Stop) -> Self {
        self.stop = stop;
        self
    }

    /// A counter of the hops to the blocking pool that reads make, for the results.
    pub fn read_groups_counting(self) -> (Groups, Arc<AtomicU64>) {
        let io = self
            .io
            .unwrap_or_else(|| IoLimit::new(self.job.limits.io_in_flight, self.recorder.clone()));
        let shared = Arc::new(Shared {
            mode: self.mode,
            io,
            budget: self.budget,
            max_len: self.max_len,
            recorder: self.recorder,
            stop: self.stop,
            containers: Mutex::new(HashMap::new()),
            hops: Arc::new(AtomicU64::new(0)),
            job: self.job,
        });
        let hops = shared.hops.clone();
        let groups = stream! {
            for position in 0..shared.job.groups.len() {
                yield group_reads(shared.clone(), position);
            }
        };
        (Box::pin(groups), hops)
    }

    /// Every group of the job, each a stream of its inputs (see the module
    /// documentation).
    pub fn read_groups(self) -> Groups {
        self.read_groups_counting().0
    }
}

fn group_reads(shared: Arc<Shared>, position: usize) -> GroupReads {
    let group = shared.job.groups[position].index;
    if let IoMode::StdBatched(batch) = shared.mode {
        return GroupReads {
            position,
            group,
            inputs: Box::pin(batched_reads(shared, position, batch.max(1))),
        };
    }
    let window = shared.job.limits.io_in_flight.max(1);
    let per_request = match &shared.mode {
        IoMode::Object(o) => o.ranges_per_request().max(1),
        _ => 1,
    };
    let inputs = stream! {
        let inputs = &shared.job.groups[position].inputs;
        let n = inputs.len();
        let mut next = 0;
        // Requests under way, those still waiting for budget or an IO slot included:
        // never more than `window`, whatever the consumer does with what it gets.
        let mut reads = FuturesUnordered::new();
        loop {
            while reads.len() < window && next < n && !shared.stop.is_set() {
                // A request covers up to `per_request` consecutive ranges of one
                // container; whole files are always one per request.
                let mut count = 1;
                while count < per_request
                    && next + count < n
                    && inputs[next].range.is_some()
                    && inputs[next + count].range.is_some()
                    && inputs[next + count].path == inputs[next].path
                {
                    count += 1;
                }
                reads.push(read_some(shared.clone(), position, next, count));
                next += count;
            }
            match reads.next().await {
                Some(Ok(Reads::One(input))) => yield Ok(input),
                Some(Ok(Reads::Many(batch))) => {
                    for input in batch {
                        yield Ok(input);
                    }
                }
                Some(Err(e)) => {
                    yield Err(e);
                    break;
                }
                None => {
                    if next < n {
                        yield Err(RunError::Cancelled);
                    }
                    break;
                }
            }
        }
    };
    GroupReads {
        position,
        group,
        inputs: Box::pin(inputs),
    }
}

/// A group's inputs read in batches ([`IoMode::StdBatched`]), `batch` at most per
/// hop to the blocking pool.
///
/// The stream itself reserves the budget, one input after another in their order
/// (so that, as with one read per input, a budget that fits one variable cannot
/// deadlock), and holds what it reserved until it starts a batch: when `batch`
/// inputs are reserved, when the group has no more, or when nothing is being read
/// (the budget is short, and waiting for more would leave the consumer with
/// nothing). Batches under way, those waiting for an IO slot included, are at most
/// `io_in_flight`; so at most `io_in_flight + 1` batches of inputs are reserved and
/// not yet handed to the consumer, all within the budget.
fn batched_reads(
    shared: Arc<Shared>,
    position: usize,
    batch: usize,
) -> impl Stream<Item = Result<Input, RunError>> + Send {
    stream! {
        let group = &shared.job.groups[position];
        let n = group.inputs.len();
        let window = shared.job.limits.io_in_flight.max(1);
        let mut next = 0;
        // Reserved, in order from `next - held.len()`, and not yet being read.
        let mut held: Vec<(usize, Option<Reservation>)> = Vec::with_capacity(batch);
        // The reservation of input `next`, when it has to wait.
        let mut waiting = None;
        let mut reads = FuturesUnordered::new();
        // Inputs were reserved and then dropped unread (the run stopped).
        let mut cut = false;
        'reading: loop {
            if shared.stop.is_set() {
                // No more batches; those under way see the stop themselves.
                cut |= !held.is_empty();
                held.clear();
                waiting = None;
                match reads.next().await {
                    Some(Ok(inputs)) => {
                        for input in inputs {
                            yield Ok(input);
                        }
                    }
                    Some(Err(e)) => {
                        yield Err(e);
                        break;
                    }
                    None => {
                        // Inputs left unread end the stream `Cancelled`, as in the
                        // other modes.
                        if next < n || cut {
                            yield Err(RunError::Cancelled);
                        }
                        break;
                    }
                }
                continue;
            }
            // Reserve what fits now, in order, up to a batch.
            while waiting.is_none() && held.len() < batch && next < n {
                let reserved = match &shared.budget {
                    None => Ok(Some(None)),
                    Some((budget, cost)) => {
                        budget.try_reserve(cost(group, next)).map(|r| r.map(Some))
                    }
                };
                match reserved {
                    Ok(Some(r)) => {
                        held.push((next, r));
                        next += 1;
                    }
                    Ok(None) => {
                        let (budget, cost) = shared.budget.as_ref().expect("only a budget waits");
                        let (budget, stop) = (budget.clone(), shared.stop.clone());
                        let bytes = cost(group, next);
                        waiting = Some(Box::pin(async move { budget.reserve(bytes, &stop).await }));
                    }
                    Err(e) => {
                        yield Err(e);
                        break 'reading;
                    }
                }
            }
            if !held.is_empty()
                && reads.len() < window
                && (held.len() == batch || next == n || reads.is_empty())
            {
                let inputs = std::mem::replace(&mut held, Vec::with_capacity(batch));
                reads.push(read_files(shared.clone(), position, inputs));
                continue;
            }
            if reads.is_empty() && waiting.is_none() {
                // Everything was read and handed on.
                break;
            }
            let reservation = async {
                match waiting.as_mut() {
                    Some(w) => w.await,
                    None => std::future::pending().await,
                }
            };
            // Something is being read or waits for budget (else the loop ended).
            let event = tokio::select! {
                biased;
                Some(r) = reads.next(), if !reads.is_empty() => Ok(r),
                r = reservation => Err(r),
            };
            match event {
                Ok(Ok(inputs)) => {
                    for input in inputs {
                        yield Ok(input);
                    }
                }
                Ok(Err(e)) => {
                    yield Err(e);
                    break;
                }
                Err(Ok(r)) => {
                    waiting = None;
                    held.push((next, Some(r)));
                    next += 1;
                }
                Err(Err(e)) => {
                    yield Err(e);
                    break;
                }
            }
        }
    }
}

/// Sets its flag when dropped: tells a blocking batch that no one waits for it.
struct Abandon(Arc<AtomicBool>);

impl Drop for Abandon {
    fn drop(&mut self) {
        self.0.store(true, Relaxed);
    }
}

/// Reads `batch` (consecutive inputs of one group, their bytes reserved) in one
/// hop to the blocking pool, one after another with `std::fs`, in one IO slot.
/// Stops before the next file once the run stops or the stream that wanted the
/// batch is gone. The first failure ends the batch with an error naming its file.
async fn read_files(
    shared: Arc<Shared>,
    position: usize,
    batch: Vec<(usize, Option<Reservation>)>,
) -> Result<Vec<Input>, RunError> {
    let group = &shared.job.groups[position];
    let first = shared.job.input_path(&group.inputs[batch[0].0]);
    let count = batch.len();
    let slot = shared.io.slot(&shared.stop).await?;
    shared.hops.fetch_add(1, Relaxed);
    let abandoned = Arc::new(AtomicBool::new(false));
    let _abandon = Abandon(abandoned.clone());
    let s = shared.clone();
    tokio::task::spawn_blocking(move || {
        let group = &s.job.groups[position];
        let mut read = Vec::with_capacity(batch.len());
        for (index, reservation) in batch {
            if s.stop.is_set() || abandoned.load(Relaxed) {
                return Err(RunError::Cancelled);
            }
            let input = &group.inputs[index];
            let max_len = s.max_len.as_ref().map_or(u64::MAX, |f| f(group, index));
            let op = slot.begin(Io::Read);
            let started = Instant::now();
            let bytes = read_std(&s, input, max_len);
            drop(op);
            let bytes = bytes?;
            s.recorder
                .stage_done(Stage::Read, started, bytes.len() as u64);
            read.push(Input {
                position,
                index,
                bytes,
                reservation,
                submitted: started,
            });
        }
        Ok(read)
    })
    .await
    .map_err(|e| {
        RunError::input(
            &first,
            format!("the read task of {count} inputs from this one on failed: {e}"),
        )
    })?
}

/// What one request read: one input (every read but a batch of ranges), or several.
enum Reads {
    One(Input),
    Many(Vec<Input>),
}

/// Reads inputs `start..start + count` of a group in one request.
async fn read_some(
    shared: Arc<Shared>,
    position: usize,
    start: usize,
    count: usize,
) -> Result<Reads, RunError> {
    if count == 1 {
        read_one(shared, position, start).await.map(Reads::One)
    } else {
        read_batch(shared, position, start, count)
            .await
            .map(Reads::Many)
    }
}

async fn read_one(shared: Arc<Shared>, position: usize, index: usize) -> Result<Input, RunError> {
    let group = &shared.job.groups[position];
    let reservation = match &shared.budget {
        Some((budget, cost)) => Some(budget.reserve(cost(group, index), &shared.stop).await?),
        None => None,
    };
    let max_len = shared
        .max_len
        .as_ref()
        .map_or(u64::MAX, |f| f(group, index));
    let guard = shared.io.begin(Io::Read, &shared.stop).await?;
    let submitted = Instant::now();
    let bytes = read_one_input(&shared, &group.inputs[index], max_len).await;
    drop(guard);
    let bytes = bytes?;
    shared
        .recorder
        .stage_done(Stage::Read, submitted, bytes.len() as u64);
    Ok(Input {
        position,
        index,
        bytes,
        reservation,
        submitted,
    })
}

/// Consecutive ranges of one container in one object-store request (one IO slot,
/// the budget of all of them reserved first).
async fn read_batch(
    shared: Arc<Shared>,
    position: usize,
    start: usize,
    count: usize,
) -> Result<Vec<Input>, RunError> {
    let IoMode::Object(o) = &shared.mode else {
        unreachable!("only object IO batches ranges");
    };
    let group = &shared.job.groups[position];
    let inputs = &group.inputs[start..start + count];
    let mut reservations = Vec::with_capacity(count);
    if let Some((budget, cost)) = &shared.budget {
        let costs: Vec<u64> = (start..start + count).map(|i| cost(group, i)).collect();
        let mut all = budget.reserve(costs.iter().sum(), &shared.stop).await?;
        for c in costs {
            reservations.push(Some(all.split(c)));
        }
    } else {
        reservations.resize_with(count, || None);
    }
    let guard = shared.io.begin(Io::Read, &shared.stop).await?;
    let submitted = Instant::now();
    let read = o
        .read_ranges(
            &inputs[0].path,
            inputs.iter().filter_map(|i| i.range).collect(),
        )
        .await;
    drop(guard);
    Ok(read?
        .into_iter()
        .zip(reservations)
        .enumerate()
        .map(|(k, (bytes, reservation))| {
            shared
                .recorder
                .stage_done(Stage::Read, submitted, bytes.len() as u64);
            Input {
                position,
                index: start + k,
                bytes,
                reservation,
                submitted,
            }
        })
        .collect())
}

/// Reads one input: a whole file of at most `max_len` bytes, or a byte range.
async fn read_one_input(
    shared: &Arc<Shared>,
    input: &InputRef,
    max_len: u64,
) -> Result<Vec<u8>, RunError> {
    let path = shared.job.input_path(input);
    let fail = |e: std::io::Error| range_error(&path, input.range, e);
    let task_failed =
        |e: tokio::task::JoinError| RunError::input(&path, format!("the read task failed: {e}"));
    match (&shared.mode, input.range) {
        (IoMode::TokioFs, None) => {
            // What `tokio::fs::read` is, `spawn_blocking(|| std::fs::read(path))`, of
            // the shared read instead: still one hop to the blocking pool, but of a
            // regular file only and at most `max_len + 1` bytes.
            shared.hops.fetch_add(1, Relaxed);
            let p = path.clone();
            tokio::task::spawn_blocking(move || read_input(&p, max_len))
                .await
                .map_err(task_failed)?
        }
        (IoMode::TokioFs, Some(r)) => {
            // Open, seek, read: three hops, as with `tokio::fs::File::open` (itself
            // `spawn_blocking(std::fs::File::open)` and `File::from_std`), the open
            // being the shared one that refuses anything but a regular file.
            shared.hops.fetch_add(3, Relaxed);
            let p = path.clone();
            let f = tokio::task::spawn_blocking(move || open_input(&p))
                .await
                .map_err(task_failed)??;
            let mut f = tokio::fs::File::from_std(f);
            f.seek(SeekFrom::Start(r.offset)).await.map_err(fail)?;
            let mut buf = vec![0; r.len as usize];
            f.read_exact(&mut buf).await.map_err(fail)?;
            Ok(buf)
        }
        // No hop: the open and the reads go through the runtime's ring.
        (IoMode::TokioUring, range) => crate::tokio_uring::read(&path, range, max_len).await,
        (IoMode::Object(o), _) => o.read(input).await,
        (IoMode::StdInBlocking | IoMode::StdBatched(_), _) => {
            shared.hops.fetch_add(1, Relaxed);
            let s = shared.clone();
            let input = input.clone();
            tokio::task::spawn_blocking(move || read_std(&s, &input, max_len))
                .await
                .map_err(task_failed)?
        }
    }
}

/// Reads one input with `std::fs` (on a blocking thread): a whole file of at most
/// `max_len` bytes, or a byte range of its container, opened once and shared.
fn read_std(shared: &Shared, input: &InputRef, max_len: u64) -> Result<Vec<u8>, RunError> {
    let path = shared.job.input_path(input);
    match input.range {
        None => read_input(&path, max_len),
        Some(r) => {
            let file = shared.container(&input.path, path.clone())?;
            let mut buf = vec![0; r.len as usize];
            file.read_exact_at(&mut buf, r.offset)
                .map_err(|e| range_error(&path, input.range, e))?;
            Ok(buf)
        }
    }
}

/// A failed read of the input at `path` (of `range` of it, if any) in words: a
/// range that runs past the file's end is a truncated file.
pub(crate) fn range_error(path: &Path, range: Option<ByteRange>, e: std::io::Error) -> RunError {
    match (e.kind(), range) {
        (ErrorKind::UnexpectedEof, Some(r)) => RunError::input(
            path,
            format!("truncated: the file ends before byte {}", r.offset + r.len),
        ),
        _ => RunError::input(path, io_detail(&e)),
    }
}

impl Shared {
    /// The container at `rel`, opened on first use (called on a blocking thread)
    /// through the shared open: a regular file or an error naming it.
    fn container(&self, rel: &str, path: PathBuf) -> Result<Arc<File>, RunError> {
        if let Some(f) = self
            .containers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(rel)
        {
            return Ok(f.clone());
        }
        let file = Arc::new(open_input(&path)?);
        self.containers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(rel.into(), file.clone());
        Ok(file)
    }
}
