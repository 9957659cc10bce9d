//! The io_uring backends.
//!
//! `uring` ([`Uring`]): one IO thread owns an io_uring and keeps it topped up;
//! decode, reduce and encode run on a Rayon pool of `cpu_threads`. Completed reads
//! go to the pool (at most `cpu_in_flight` tasks queued or running; the rest wait,
//! already budgeted, in the IO thread's ready queue); a task decodes, pushes into
//! its group's reducer, encodes whatever that completed, and sends the objects back
//! over a channel, then wakes the IO thread through an eventfd that always has a
//! read armed in the ring. That channel holds only objects whose bytes the budget
//! already reserved, so the budget bounds it.
//!
//! `uring-workers` ([`UringWorkers`]): light-speed-io's design — N threads, each
//! owning a ring and doing the CPU work between reaps, work shared by stealing
//! (see [`workers`]).
//!
//! Both issue IO through the same engine (`engine.rs`): per input file `openat` →
//! `read` (repeated until end of file, so short reads are completed) → `close`; per
//! byte range a `read` at its offset of the group's container, opened once; per
//! output `openat(O_CREAT)` → `write` (until all is written) → `close` →
//! `renameat` from the temporary name, so a reader never sees half a chunk. At most
//! `min(queue_depth, io_in_flight)` operations are in flight per ring, and the
//! rings are sized so that neither queue can overflow.
//!
//! Options, each recorded in the results: `queue_depth`, `sqpoll` (a kernel thread
//! polls the submission queue), `iowq_max_workers` (a cap on the kernel's io-wq
//! workers), and [`Options`]: registered files, registered buffers, O_DIRECT with
//! aligned buffers, linked SQEs.
//!
//! No silent fallback: where io_uring cannot be set up, [`probe`] says why and
//! `run` refuses with that reason.

mod engine;
pub mod options;
pub mod workers;

use std::collections::{HashMap, HashSet, VecDeque};
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use crossbeam_channel::{Receiver, Sender};
use engine::{Engine, Event, EventFd, Input, Range, Setup, Slab};
use io_uring::IoUring;
use rechunk_contract::backend::catch_panic;
use rechunk_contract::output::{io_detail, temp_path};
use rechunk_contract::steps;
use rechunk_contract::{
    Availability, Backend, ByteBudget, Cancel, Capabilities, FirstError, GroupReducer, Io, Job,
    OutputObject, Recorder, RunError, RunOutcome, Stage, Workload,
};

pub use engine::{Options, ALIGN};
pub use workers::UringWorkers;

/// See the crate documentation.
#[derive(Clone, Copy, Debug)]
pub struct Uring {
    /// Operations in flight in the ring, at most; `None`: `io_in_flight`.
    pub queue_depth: Option<u32>,
    /// Submission-queue polling by a kernel thread; `Some(idle ms)` turns it on.
    pub sqpoll_idle_ms: Option<u32>,
    /// Caps the kernel's io-wq workers (bounded and unbounded) for this ring.
    pub iowq_max_workers: Option<u32>,
    /// CPU tasks queued or running on the pool; `None`: 32 per CPU thread.
    pub cpu_in_flight: Option<usize>,
    /// Registered files, registered buffers, O_DIRECT, linked SQEs.
    pub options: Options,
}

impl Default for Uring {
    /// The declared defaults ([`crate::options::UringOptions`]).
    fn default() -> Self {
        <Self as rechunk_contract::options::Configured>::from_options(Default::default())
    }
}

/// Whether io_uring can be set up here, and if not, why (the kernel's own words).
pub fn probe() -> Availability {
    if let Ok(s) = std::fs::read_to_string("/proc/sys/kernel/io_uring_disabled") {
        match s.trim() {
            "0" | "" => {}
            v => {
                return Availability::Unavailable(format!(
                    "kernel.io_uring_disabled = {v}: io_uring is switched off for this process"
                ))
            }
        }
    }
    match IoUring::new(2) {
        Ok(_) => Availability::Available,
        Err(e) => Availability::Unavailable(format!(
            "io_uring_setup failed: {e} (seccomp, an old kernel, or a sandbox forbids it)"
        )),
    }
}

/// What both io_uring backends can do.
const CAPABILITIES: Capabilities = Capabilities {
    byte_ranges: true,
    needs_io_uring: true,
    s3: false,
    parallel: true,
};

/// What both io_uring backends check before anything else: io_uring works here
/// (else the kernel's reason), the job suits the workload, and no cancel yet.
fn preflight<W: Workload>(job: &Job, workload: &W, cancel: &Cancel) -> Result<(), RunError> {
    if let Availability::Unavailable(why) = probe() {
        return Err(RunError::Unavailable(why));
    }
    workload.check_job(job).map_err(|e| RunError::Job(e.0))?;
    cancel.check()
}

/// Records the ring's setup and options in a run's details.
fn record_setup(outcome: &mut RunOutcome, setup: &Setup, entries: u32, submits: u64) {
    let d = &mut outcome.details;
    let o = setup.options;
    d.insert("io".into(), "io_uring".into());
    d.insert("queue_depth".into(), setup.depth.into());
    d.insert("ring_entries".into(), entries.into());
    d.insert("sqpoll".into(), setup.sqpoll_idle_ms.is_some().into());
    d.insert(
        "iowq_max_workers".into(),
        setup
            .iowq_max_workers
            .map_or(serde_json::Value::Null, Into::into),
    );
    d.insert("fixed_files".into(), o.fixed_files.into());
    d.insert("fixed_buffers".into(), o.fixed_buffers.into());
    d.insert("direct".into(), o.direct.into());
    d.insert("linked".into(), o.linked.into());
    if o.fixed_buffers || o.direct {
        d.insert("read_buffers".into(), setup.buffers.into());
    }
    d.insert("ring_submit_calls".into(), submits.into());
}

impl Backend for Uring {
    fn name(&self) -> &'static str {
        "uring"
    }

    fn capabilities(&self) -> Capabilities {
        crate::CAPABILITIES
    }

    fn availability(&self) -> Availability {
        probe()
    }

    fn run<W: Workload>(
        &self,
        job: &Arc<Job>,
        workload: &Arc<W>,
        recorder: &Arc<dyn Recorder>,
        cancel: &Cancel,
    ) -> Result<RunOutcome, RunError> {
        crate::preflight(job, &**workload, cancel)?;
        let depth = self
            .queue_depth
            .map_or(job.limits.io_in_flight, |q| q as usize)
            .min(job.limits.io_in_flight)
            .max(1);
        let cpu_in_flight = self
            .cpu_in_flight
            .unwrap_or(32 * job.limits.cpu_threads.max(1));
        let max_input = max_input(job, &**workload);
        let setup = Setup {
            depth,
            sqpoll_idle_ms: self.sqpoll_idle_ms,
            iowq_max_workers: self.iowq_max_workers,
            options: self.options,
            // Reads in flight, inputs handed to the pool, and as many waiting.
            buffers: depth + 2 * cpu_in_flight,
            max_input,
        };
        let engine = Engine::new(setup)?;
        let entries = engine.entries();
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(job.limits.cpu_threads.max(1))
            .thread_name(|i| format!("uring-cpu-{i}"))
            .build()
            .map_err(|e| RunError::Internal(format!("building the Rayon pool: {e}")))?;
        let (tx, rx) = crossbeam_channel::unbounded();
        let mut io = IoThread {
            job: job.clone(),
            workload: workload.clone(),
            recorder: recorder.clone(),
            budget: Arc::new(ByteBudget::new(
                job.limits.bytes_in_flight,
                recorder.clone(),
            )),
            cancel: cancel.clone(),
            engine,
            max_input,
            cpu_in_flight,
            pool,
            wake: Arc::new(EventFd::new()?),
            tx,
            rx,
            events: Vec::new(),
            ready: VecDeque::new(),
            cpu_running: 0,
            writes: VecDeque::new(),
            emissions: Slab::new(),
            groups: HashMap::new(),
            next_group: 0,
            next_input: 0,
            dirs: HashSet::new(),
            error: FirstError::new(),
            outcome: RunOutcome::default(),
        };
        let result = io.run();
        let mut outcome = std::mem::take(&mut io.outcome);
        result?;
        record_setup(&mut outcome, &setup, entries, io.engine.submits);
        let d = &mut outcome.details;
        d.insert("rayon_threads".into(), io.pool.current_num_threads().into());
        d.insert("cpu_in_flight".into(), cpu_in_flight.into());
        d.insert("io_threads".into(), 1.into());
        Ok(outcome)
    }
}

/// What the IO thread keeps with each operation it starts.
enum Token {
    Read {
        position: usize,
        index: usize,
        /// Budget bytes reserved for this input.
        reserved: u64,
    },
    Write {
        /// The group, or `usize::MAX` for metadata.
        position: usize,
        emission: Option<usize>,
    },
}

/// A group's state on the IO thread.
struct GroupState<R> {
    reducer: Arc<Mutex<Option<R>>>,
    /// Inputs read and not yet through the CPU, plus writes not yet done.
    pending: usize,
    /// All inputs' reads have been issued.
    issued_all: bool,
    container: Option<i32>,
    started: Instant,
}

/// What a CPU task sends back.
enum Done {
    Ok {
        position: usize,
        objects: Vec<OutputObject>,
        retired: u64,
    },
    Failed(RunError),
}

/// An input read and waiting for a CPU slot.
struct Ready {
    position: usize,
    index: usize,
    bytes: Input,
    started: Instant,
    reserved: u64,
}

struct IoThread<W: Workload> {
    job: Arc<Job>,
    workload: Arc<W>,
    recorder: Arc<dyn Recorder>,
    budget: Arc<ByteBudget>,
    cancel: Cancel,
    engine: Engine<Token>,
    /// The largest input (see [`max_input`]).
    max_input: usize,
    cpu_in_flight: usize,
    pool: rayon::ThreadPool,
    wake: Arc<EventFd>,
    tx: Sender<Done>,
    rx: Receiver<Done>,
    /// Reused for each batch of events.
    events: Vec<Event<Token>>,
    /// Reads completed, waiting for a CPU slot.
    ready: VecDeque<Ready>,
    cpu_running: usize,
    /// Encoded objects waiting for an IO slot: (group position, emission, object).
    writes: VecDeque<(usize, Option<usize>, OutputObject)>,
    /// Emissions with writes outstanding: (writes left, bytes to retire after).
    emissions: Slab<(usize, u64)>,
    groups: HashMap<usize, GroupState<W::Reducer>>,
    next_group: usize,
    next_input: usize,
    dirs: HashSet<PathBuf>,
    error: FirstError,
    outcome: RunOutcome,
}

fn cstring(p: &Path) -> Result<CString, RunError> {
    CString::new(p.as_os_str().as_bytes())
        .map_err(|_| RunError::input(p, "the path contains a NUL byte"))
}

/// The largest buffer any input needs: a whole file's largest valid size, or a
/// range's length.
fn max_input<W: Workload>(job: &Job, workload: &W) -> usize {
    let mut max = 0;
    for group in &job.groups {
        for (index, input) in group.inputs.iter().enumerate() {
            let n = match input.range {
                Some(r) => r.len as usize,
                None => workload.cost(group, index).read as usize,
            };
            max = max.max(n);
        }
    }
    max
}

impl<W: Workload> IoThread<W> {
    fn fail(&mut self, e: RunError) {
        self.error.note(e);
        self.engine.stop();
    }

    fn stopping(&self) -> bool {
        self.error.is_set()
    }

    fn run(&mut self) -> Result<(), RunError> {
        self.engine.watch(self.wake.clone());
        for object in self.workload.metadata() {
            self.writes.push_back((usize::MAX, None, object));
        }
        // zarr.json first: nothing else starts until the metadata is written.
        let metadata = self.writes.len();
        loop {
            if self.cancel.is_cancelled() {
                self.fail(RunError::Cancelled);
            }
            self.drain_cpu();
            self.start_cpu();
            let metadata_pending = self.outcome.outputs < metadata as u64;
            self.start_io(metadata_pending);
            if self.engine.in_flight() == 0 && self.cpu_running == 0 && self.ready.is_empty() {
                if self.stopping() || self.finished() {
                    break;
                }
                // start_io just tried: nothing in flight and nothing startable would
                // wait for ever; say so instead (a bug, or a budget check_job missed).
                self.fail(RunError::Internal(format!(
                    "stalled: nothing in flight, yet group {} input {} cannot start",
                    self.next_group, self.next_input
                )));
                continue;
            }
            if let Err(e) = self.engine.wait() {
                self.fail(e);
                if self.engine.in_flight() == 0 && self.cpu_running == 0 {
                    break;
                }
            }
            let mut events = std::mem::take(&mut self.events);
            self.engine.reap(&mut events);
            for event in events.drain(..) {
                self.handle(event);
            }
            self.events = events;
        }
        for g in self.groups.values() {
            if let Some(fd) = g.container {
                // SAFETY: closes a container fd this thread opened; nothing uses it now.
                unsafe { libc::close(fd) };
            }
        }
        self.engine.shutdown();
        match self.error.take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    fn handle(&mut self, event: Event<Token>) {
        match event {
            Event::Read {
                data:
                    Token::Read {
                        position,
                        index,
                        reserved,
                    },
                started,
                result,
            } => {
                self.recorder.io_end(Io::Read);
                match result {
                    Ok(bytes) if !self.stopping() => {
                        self.recorder
                            .stage_done(Stage::Read, started, bytes.len() as u64);
                        self.outcome.inputs += 1;
                        self.outcome.input_bytes += bytes.len() as u64;
                        self.ready.push_back(Ready {
                            position,
                            index,
                            bytes,
                            started,
                            reserved,
                        });
                    }
                    other => {
                        if let Err(e) = other {
                            self.fail(e);
                        }
                        self.budget.release(reserved);
                        self.group_item_done(position);
                    }
                }
            }
            Event::Write {
                data: Token::Write { position, emission },
                started,
                bytes,
                result,
            } => {
                self.recorder.io_end(Io::Write);
                match result {
                    Ok(()) => {
                        self.recorder.stage_done(Stage::Write, started, bytes);
                        self.outcome.outputs += 1;
                        self.outcome.output_bytes += bytes;
                    }
                    Err(e) => self.fail(e),
                }
                self.write_finished(position, emission);
            }
            _ => unreachable!("events carry the token of their kind"),
        }
    }

    fn finished(&self) -> bool {
        self.next_group >= self.job.groups.len() && self.groups.is_empty() && self.writes.is_empty()
    }

    /// Whether a read could be started now (ignoring IO slots and budget).
    fn can_read(&self) -> bool {
        if self.stopping() || self.next_group >= self.job.groups.len() {
            return false;
        }
        // Without overlap, the next group starts only when the previous one is done.
        self.job.overlap_groups || self.groups.keys().all(|&p| p >= self.next_group)
    }

    /// Takes what the CPU tasks finished.
    fn drain_cpu(&mut self) {
        while let Ok(done) = self.rx.try_recv() {
            self.cpu_running -= 1;
            match done {
                Done::Failed(e) => self.fail(e),
                Done::Ok {
                    position,
                    objects,
                    retired,
                } => {
                    let stopping = self.stopping();
                    let g = self.groups.get_mut(&position).expect("a live group");
                    g.pending -= 1;
                    if objects.is_empty() || stopping {
                        self.budget.release(retired);
                    } else {
                        g.pending += objects.len();
                        let e = self.emissions.insert((objects.len(), retired));
                        for o in objects {
                            self.writes.push_back((position, Some(e), o));
                        }
                    }
                    self.maybe_finish_group(position);
                }
            }
        }
    }

    /// Hands completed reads to the pool, up to `cpu_in_flight`.
    fn start_cpu(&mut self) {
        while self.cpu_running < self.cpu_in_flight && !self.stopping() {
            let Some(r) = self.ready.pop_front() else {
                break;
            };
            self.cpu_running += 1;
            let job = self.job.clone();
            let workload = self.workload.clone();
            let recorder = self.recorder.clone();
            let budget = self.budget.clone();
            let reducer = self.groups[&r.position].reducer.clone();
            let tx = self.tx.clone();
            let wake = self.wake.clone();
            self.pool.spawn(move || {
                let position = r.position;
                let result = catch_panic("a CPU step", || {
                    cpu_task(
                        &job, &*workload, &*recorder, &budget, &reducer, r.position, r.index,
                        r.bytes, r.started, r.reserved,
                    )
                });
                let _ = tx.send(match result {
                    Ok((objects, retired)) => Done::Ok {
                        position,
                        objects,
                        retired,
                    },
                    Err(e) => Done::Failed(e),
                });
                wake.signal();
            });
        }
        if self.stopping() {
            while let Some(r) = self.ready.pop_front() {
                self.budget.release(r.reserved);
                self.group_item_done(r.position);
            }
        }
    }

    /// Starts writes, then reads, while there are IO slots.
    fn start_io(&mut self, metadata_pending: bool) {
        while self.engine.can_write() {
            if let Some((position, emission, object)) = self.writes.pop_front() {
                if self.stopping() {
                    self.write_finished(position, emission);
                    continue;
                }
                if let Err(e) = self.start_write(position, emission, object) {
                    self.fail(e);
                    self.write_finished(position, emission);
                }
                continue;
            }
            if metadata_pending || !self.can_read() || !self.engine.can_read() {
                break;
            }
            match self.start_read() {
                Ok(true) => {}
                Ok(false) => break,
                Err(e) => self.fail(e),
            }
        }
        if self.stopping() {
            while let Some((position, emission, _)) = self.writes.pop_front() {
                self.write_finished(position, emission);
            }
        }
    }

    /// Starts the next input's read if the budget allows; false if it does not.
    fn start_read(&mut self) -> Result<bool, RunError> {
        let position = self.next_group;
        let group = &self.job.groups[position];
        let index = self.next_input;
        let cost = self.workload.cost(group, index);
        if !self.budget.try_acquire(cost.total()) {
            if cost.total() > self.budget.capacity() {
                return Err(RunError::Job(format!(
                    "one item needs {} bytes but bytes_in_flight is {}",
                    cost.total(),
                    self.budget.capacity()
                )));
            }
            return Ok(false);
        }
        let input = &group.inputs[index];
        let path = self.job.input_path(input);
        let n = group.inputs.len();
        let state = self.groups.entry(position).or_insert_with(|| GroupState {
            reducer: Arc::new(Mutex::new(Some(self.workload.reduce_group(group)))),
            pending: 0,
            issued_all: false,
            container: None,
            started: Instant::now(),
        });
        state.pending += 1;
        self.next_input += 1;
        if self.next_input == n {
            state.issued_all = true;
            self.next_group += 1;
            self.next_input = 0;
        }
        let c = match cstring(&path) {
            Ok(c) => c,
            Err(e) => {
                self.budget.release(cost.total());
                self.group_item_done(position);
                return Err(e);
            }
        };
        let range = match input.range {
            None => None,
            Some(r) => {
                let fd = match state.container {
                    Some(fd) => fd,
                    // Once per group: opened here, synchronously, and kept.
                    None => match self.engine.open_container(&c) {
                        Ok(fd) => {
                            state.container = Some(fd);
                            fd
                        }
                        Err(e) => {
                            self.budget.release(cost.total());
                            self.group_item_done(position);
                            return Err(e);
                        }
                    },
                };
                Some(Range {
                    fd,
                    offset: r.offset,
                    len: r.len as usize,
                })
            }
        };
        self.recorder.io_begin(Io::Read);
        let token = Token::Read {
            position,
            index,
            reserved: cost.total(),
        };
        self.engine
            .read(c, range, (cost.read as usize).min(self.max_input), token);
        Ok(true)
    }

    fn start_write(
        &mut self,
        position: usize,
        emission: Option<usize>,
        object: OutputObject,
    ) -> Result<(), RunError> {
        let path = self.job.output_path(&object.key);
        if let Some(dir) = path.parent() {
            if !self.dirs.contains(dir) {
                // Rare (a directory per output row): done here, synchronously.
                std::fs::create_dir_all(dir).map_err(|e| RunError::output(dir, io_detail(&e)))?;
                self.dirs.insert(dir.to_path_buf());
            }
        }
        let tmp = cstring(&temp_path(&path))?;
        let dest = cstring(&path)?;
        self.recorder.io_begin(Io::Write);
        self.engine
            .write(tmp, dest, object.bytes, Token::Write { position, emission });
        Ok(())
    }

    /// Bookkeeping when an object's write ends, written or not.
    fn write_finished(&mut self, position: usize, emission: Option<usize>) {
        if let Some(e) = emission {
            let left = &mut self.emissions.get_mut(e).0;
            *left -= 1;
            if *left == 0 {
                let (_, retired) = self.emissions.remove(e);
                self.budget.release(retired);
            }
        }
        if position != usize::MAX {
            self.group_item_done(position);
        }
    }

    fn group_item_done(&mut self, position: usize) {
        let g = self.groups.get_mut(&position).expect("a live group");
        g.pending -= 1;
        self.maybe_finish_group(position);
    }

    fn maybe_finish_group(&mut self, position: usize) {
        let g = &self.groups[&position];
        if g.pending > 0 || !(g.issued_all || self.stopping()) {
            return;
        }
        let g = self.groups.remove(&position).expect("present");
        if let Some(fd) = g.container {
            // SAFETY: the container's reads have all completed.
            unsafe { libc::close(fd) };
        }
        if self.stopping() {
            return;
        }
        let reducer = g.reducer.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(r) = reducer {
            if let Err(e) = r.finish() {
                self.fail(RunError::Job(e.0));
                return;
            }
        }
        self.recorder.stage_done(Stage::Group, g.started, 0);
    }
}

/// Decode, push, and encode what the push completed; runs on the pool.
#[allow(clippy::too_many_arguments)]
fn cpu_task<W: Workload>(
    job: &Job,
    workload: &W,
    recorder: &dyn Recorder,
    budget: &ByteBudget,
    reducer: &Mutex<Option<W::Reducer>>,
    position: usize,
    index: usize,
    bytes: Input,
    started: Instant,
    reserved: u64,
) -> Result<(Vec<OutputObject>, u64), RunError> {
    let group = &job.groups[position];
    let at_fault = || job.input_path(&group.inputs[index]);
    let cost = workload.cost(group, index);
    let retained = reserved - cost.read - cost.transient;
    let result = (|| {
        let decoded = steps::decode(
            workload,
            recorder,
            group,
            index,
            &bytes,
            cost.transient,
            &at_fault,
        )?;
        drop(bytes);
        let emission = steps::push_locked(reducer, recorder, index, decoded, &at_fault)?;
        recorder.stage_done(Stage::Input, started, 0);
        Ok(emission)
    })();
    budget.release(cost.read + cost.transient);
    let emission = match result {
        Ok(e) => e,
        Err(e) => {
            budget.release(retained);
            return Err(e);
        }
    };
    // This input's retained bytes stay reserved: the emission that completes its
    // variable retires them, once that emission's chunks are written.
    let mut objects = Vec::with_capacity(emission.chunks.len());
    for chunk in emission.chunks {
        objects.push(steps::encode(workload, recorder, job, group, chunk)?);
    }
    Ok((objects, emission.retired_bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rechunk_contract::conformance;

    fn available() -> bool {
        match probe() {
            Availability::Available => true,
            Availability::Unavailable(why) => {
                // CI sets HARNESS_REQUIRE_IO_URING where io_uring must work.
                assert!(
                    std::env::var_os("HARNESS_REQUIRE_IO_URING").is_none(),
                    "io_uring is required here but unavailable: {why}"
                );
                eprintln!("skipped: io_uring unavailable: {why}");
                false
            }
        }
    }

    fn options(fixed_files: bool, fixed_buffers: bool, direct: bool, linked: bool) -> Options {
        Options {
            fixed_files,
            fixed_buffers,
            direct,
            linked,
        }
    }

    /// Each option alone, then all of them, each with the full conformance suite.
    fn option_sets() -> Vec<Options> {
        vec![
            Options::default(),
            options(true, false, false, false),
            options(false, true, false, false),
            options(false, false, true, false),
            options(true, false, false, true),
            options(true, true, true, true),
        ]
    }

    fn conforms(b: &impl Backend, what: &str) {
        let skipped = conformance::check_all(b);
        assert!(skipped.is_empty(), "{what}: skipped {skipped:?}");
    }

    #[test]
    fn uring_passes_conformance_with_each_option() {
        if !available() {
            return;
        }
        for o in option_sets() {
            let b = Uring {
                options: o,
                ..Uring::default()
            };
            conforms(&b, &format!("{o:?}"));
        }
    }

    #[test]
    fn uring_with_every_option_on_and_tight_limits_passes_conformance() {
        if !available() {
            return;
        }
        let b = Uring {
            queue_depth: Some(2),
            sqpoll_idle_ms: Some(10),
            iowq_max_workers: Some(2),
            cpu_in_flight: Some(1),
            options: options(true, true, true, true),
        };
        conforms(&b, "all on");
    }

    #[test]
    fn uring_workers_pass_conformance_with_each_option() {
        if !available() {
            return;
        }
        for o in option_sets() {
            let b = UringWorkers {
                options: o,
                ..UringWorkers::default()
            };
            conforms(&b, &format!("{o:?}"));
        }
    }

    #[test]
    fn uring_workers_with_more_workers_than_cores_and_depth_one_pass_conformance() {
        if !available() {
            return;
        }
        let b = UringWorkers {
            workers: Some(3),
            queue_depth: Some(1),
            sqpoll_idle_ms: None,
            iowq_max_workers: Some(1),
            worker_queue: None,
            options: options(true, true, false, true),
        };
        conforms(&b, "3 workers, depth 1");
    }

    #[test]
    fn uring_workers_with_a_short_worker_queue_pass_conformance() {
        if !available() {
            return;
        }
        // 1: claim, read, decode, one at a time; 3: below the default depth (8 of
        // the roomy limits' 16 per ring), so the cap also holds reads back.
        for cap in [1, 3] {
            let b = UringWorkers {
                worker_queue: Some(cap),
                ..UringWorkers::default()
            };
            conforms(&b, &format!("worker_queue = {cap}"));
        }
    }

    #[test]
    fn uring_workers_never_queue_more_than_worker_queue() {
        if !available() {
            return;
        }
        // 2 groups × 20 variables × 20 steps, budget for all of it: without the cap
        // the workers would claim far ahead of decoding.
        let fx = conformance::Fixture::with_shape(
            rechunk_contract::nwp::Layout::Files,
            rechunk_contract::nwp::Codec::Zstd,
            2,
            20,
            20,
        );
        let job = Arc::new(fx.job(conformance::Fixture::roomy_limits()));
        let workload = Arc::new(fx.workload());
        for (cap, expect) in [(None, 16), (Some(5), 5)] {
            let b = UringWorkers {
                worker_queue: cap,
                ..UringWorkers::default()
            };
            let counters: Arc<dyn Recorder> = Arc::new(rechunk_contract::Counters::default());
            let out = b.run(&job, &workload, &counters, &Cancel::new()).unwrap();
            let d = &out.details;
            // The default: twice the ring's depth (16 in flight / 2 workers = 8).
            assert_eq!(d["worker_queue"], expect, "{d:?}");
            let peak = d["worker_queue_peak"].as_u64().unwrap();
            assert!((1..=expect).contains(&peak), "{cap:?}: peak {peak}, {d:?}");
            assert_eq!(out.inputs, 800);
        }
    }

    #[test]
    fn linked_without_fixed_files_is_refused_with_the_reason() {
        if !available() {
            return;
        }
        let b = Uring {
            options: options(false, false, false, true),
            ..Uring::default()
        };
        let fx = conformance::Fixture::tiny(
            rechunk_contract::nwp::Layout::Files,
            rechunk_contract::nwp::Codec::Zstd,
        );
        let job = Arc::new(fx.job(conformance::Fixture::roomy_limits()));
        let counters: Arc<dyn Recorder> = Arc::new(rechunk_contract::Counters::default());
        let err = b
            .run(&job, &Arc::new(fx.workload()), &counters, &Cancel::new())
            .unwrap_err();
        assert!(err.to_string().contains("fixed_files"), "{err}");
    }
}
