//! The `uring-workers` backend: light-speed-io's final design. N worker threads,
//! each owning an io_uring and doing the CPU work itself between reaps; no
//! separate CPU pool and no IO thread.
//!
//! Each worker loops: reap its ring (a completed read becomes a CPU task on the
//! worker's own crossbeam-deque; a completed write retires bytes), top its ring up
//! with writes of the chunks it encoded and with reads it claims from the shared
//! cursor over the job's inputs (in group order, budget permitting), submit, then
//! run one CPU task — its own oldest, else one stolen from another worker — so its
//! ring's IO proceeds while it computes. With nothing to compute it waits on its
//! ring; with nothing in its ring either it parks briefly (100 µs) and retries.
//!
//! Bounds: reads in flight per ring ≤ `queue_depth`; a worker claims a read only
//! while its reads in flight plus the read inputs waiting in its deque are fewer
//! than `worker_queue` (default 2 × `queue_depth`), so inputs read but not yet
//! decoded are at most `workers × worker_queue`, and all claims are within the
//! byte budget (with pooled buffers, each worker's pool of 2 × `queue_depth`
//! buffers bounds them as well); encoded chunks wait only in the queue of the
//! worker that encoded them, also within the budget.
//!
//! Without the cap, claims could run ahead of decoding until the byte budget ran
//! out (on `icon-like`, 256 MiB: room for thousands of read inputs, each in a
//! buffer of the largest valid input), and its peak RSS there was the highest of
//! all backends (172–248 MiB).
//!
//! `zarr.json` is written with `std::fs` before the workers start (one small file).

use std::collections::{HashMap, HashSet, VecDeque};
use std::ffi::CString;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use crossbeam_deque::{Steal, Stealer, Worker as Deque};
use rechunk_contract::backend::catch_panic;
use rechunk_contract::output::{io_detail, temp_path, write_atomic, write_metadata};
use rechunk_contract::{
    Availability, Backend, ByteBudget, Cancel, Capabilities, FirstError, GroupReducer, Io, Job,
    OutputObject, Recorder, RunError, RunOutcome, Stage, Workload,
};

use crate::engine::{Engine, Event, Input, Options, Range, Setup};
use crate::{cpu_task, cstring, max_input, probe, record_setup};

/// See the module documentation.
#[derive(Clone, Copy, Debug)]
pub struct UringWorkers {
    /// Worker threads; `None`: `cpu_threads`.
    pub workers: Option<usize>,
    /// Operations in flight per ring; `None`: `io_in_flight` shared out.
    pub queue_depth: Option<u32>,
    /// Submission-queue polling by a kernel thread per ring; `Some(idle ms)` turns
    /// it on.
    pub sqpoll_idle_ms: Option<u32>,
    /// Caps the kernel's io-wq workers (bounded and unbounded) for each ring.
    pub iowq_max_workers: Option<u32>,
    /// Reads a worker has in flight plus read inputs waiting in its deque, at
    /// most: it claims no more until it or a thief decodes some. `None`: twice
    /// the ring's depth (a full ring of reads and as many inputs ready to decode).
    pub worker_queue: Option<usize>,
    /// Registered files, registered buffers, O_DIRECT, linked SQEs.
    pub options: Options,
}

impl Default for UringWorkers {
    /// The declared defaults ([`crate::options::UringWorkersOptions`]).
    fn default() -> Self {
        <Self as rechunk_contract::options::Configured>::from_options(Default::default())
    }
}

impl Backend for UringWorkers {
    fn name(&self) -> &'static str {
        "uring-workers"
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
        let n = self.workers.unwrap_or(job.limits.cpu_threads).max(1);
        let depth = self
            .queue_depth
            .map_or(job.limits.io_in_flight.div_ceil(n), |q| q as usize)
            .min(job.limits.io_in_flight)
            .max(1);
        let worker_queue = self.worker_queue.unwrap_or(2 * depth).max(1);
        let setup = Setup {
            depth,
            sqpoll_idle_ms: self.sqpoll_idle_ms,
            iowq_max_workers: self.iowq_max_workers,
            options: self.options,
            // Reads in flight and as many read inputs waiting for a CPU.
            buffers: 2 * depth,
            max_input: max_input(job, &**workload),
        };
        // Every ring is set up before anything is written, so a setup error leaves
        // nothing behind.
        let engines = (0..n)
            .map(|_| Engine::new(setup))
            .collect::<Result<Vec<_>, _>>()?;
        let entries = engines[0].entries();
        let mut outcome = RunOutcome::default();
        write_metadata(&**workload, &**recorder, &mut outcome, |key, bytes| {
            write_atomic(&job.output_path(key), bytes)
        })?;
        let deques: Vec<Deque<Task<W::Reducer>>> = (0..n).map(|_| Deque::new_fifo()).collect();
        let shared = Shared {
            job: job.clone(),
            workload: workload.clone(),
            recorder: recorder.clone(),
            budget: ByteBudget::new(job.limits.bytes_in_flight, recorder.clone()),
            cancel: cancel.clone(),
            cursor: Mutex::new(Cursor {
                next_group: 0,
                next_input: 0,
                groups: HashMap::new(),
            }),
            stealers: deques.iter().map(Deque::stealer).collect(),
            stopping: AtomicBool::new(false),
            error: Mutex::new(FirstError::new()),
            inputs: AtomicU64::new(0),
            input_bytes: AtomicU64::new(0),
            outputs: AtomicU64::new(0),
            output_bytes: AtomicU64::new(0),
            steals: AtomicU64::new(0),
            submits: AtomicU64::new(0),
            io_in_flight: AtomicUsize::new(0),
            io_limit: job.limits.io_in_flight.max(1),
            max_input: setup.max_input,
            worker_queue,
            worker_queue_peak: AtomicUsize::new(0),
        };
        let shared = &shared;
        std::thread::scope(|s| {
            let handles: Vec<_> = engines
                .into_iter()
                .zip(deques)
                .enumerate()
                .map(|(i, (engine, deque))| {
                    std::thread::Builder::new()
                        .name(format!("uring-worker-{i}"))
                        .spawn_scoped(s, move || {
                            let mut w = WorkerThread {
                                shared,
                                engine,
                                deque,
                                me: i,
                                writes: VecDeque::new(),
                                emissions: crate::engine::Slab::new(),
                                events: Vec::new(),
                                dirs: HashSet::new(),
                                reads: 0,
                            };
                            if let Err(e) = catch_panic("a CPU step", || {
                                w.run();
                                Ok(())
                            }) {
                                shared.fail(e);
                            }
                        })
                })
                .collect();
            for h in handles {
                match h {
                    Ok(h) => {
                        let _ = h.join();
                    }
                    Err(e) => shared.fail(RunError::Internal(format!("spawning a worker: {e}"))),
                }
            }
        });
        if let Some(e) = shared
            .error
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        {
            return Err(e);
        }
        outcome.inputs += shared.inputs.load(Ordering::Relaxed);
        outcome.input_bytes += shared.input_bytes.load(Ordering::Relaxed);
        outcome.outputs += shared.outputs.load(Ordering::Relaxed);
        outcome.output_bytes += shared.output_bytes.load(Ordering::Relaxed);
        let submits = shared.submits.load(Ordering::Relaxed);
        record_setup(&mut outcome, &setup, entries, submits);
        let d = &mut outcome.details;
        d.insert("workers".into(), n.into());
        d.insert("io_threads".into(), n.into());
        d.insert("rayon_threads".into(), 0.into());
        d.insert(
            "steals".into(),
            shared.steals.load(Ordering::Relaxed).into(),
        );
        d.insert("worker_queue".into(), worker_queue.into());
        d.insert(
            "worker_queue_peak".into(),
            shared.worker_queue_peak.load(Ordering::Relaxed).into(),
        );
        Ok(outcome)
    }
}

/// A group in progress, shared by the workers.
struct GroupState<R> {
    position: usize,
    reducer: Mutex<Option<R>>,
    /// Inputs claimed and not yet through the CPU, plus writes not yet done.
    pending: AtomicUsize,
    /// Every input of the group has been claimed.
    issued_all: AtomicBool,
    /// The container, for byte ranges: opened by the first claim, closed at the end.
    container: OnceLock<i32>,
    started: Instant,
}

impl<R> Drop for GroupState<R> {
    fn drop(&mut self) {
        if let Some(&fd) = self.container.get() {
            // SAFETY: the last reference is gone, so no read of it is in flight.
            unsafe { libc::close(fd) };
        }
    }
}

/// The next input to claim, and the groups claimed and not finished.
struct Cursor<R> {
    next_group: usize,
    next_input: usize,
    groups: HashMap<usize, Arc<GroupState<R>>>,
}

/// A read input waiting for a CPU.
struct Task<R> {
    group: Arc<GroupState<R>>,
    index: usize,
    bytes: Input,
    started: Instant,
    reserved: u64,
}

struct Shared<W: Workload> {
    job: Arc<Job>,
    workload: Arc<W>,
    recorder: Arc<dyn Recorder>,
    budget: ByteBudget,
    cancel: Cancel,
    cursor: Mutex<Cursor<W::Reducer>>,
    stealers: Vec<Stealer<Task<W::Reducer>>>,
    stopping: AtomicBool,
    error: Mutex<FirstError>,
    inputs: AtomicU64,
    input_bytes: AtomicU64,
    outputs: AtomicU64,
    output_bytes: AtomicU64,
    steals: AtomicU64,
    submits: AtomicU64,
    /// Operations in flight in all rings together, and their limit (`io_in_flight`).
    io_in_flight: AtomicUsize,
    io_limit: usize,
    max_input: usize,
    /// Reads in flight plus read inputs queued, per worker, at most.
    worker_queue: usize,
    /// The most any worker had (reads in flight plus queued) after a claim.
    worker_queue_peak: AtomicUsize,
}

impl<W: Workload> Shared<W> {
    fn fail(&self, e: RunError) {
        self.error.lock().unwrap_or_else(|e| e.into_inner()).note(e);
        self.stopping.store(true, Ordering::Release);
    }

    fn stopping(&self) -> bool {
        self.stopping.load(Ordering::Acquire)
    }

    /// Takes one of the `io_in_flight` slots all rings share, if one is free.
    fn take_io_slot(&self) -> bool {
        self.io_in_flight
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.io_limit).then_some(n + 1)
            })
            .is_ok()
    }

    fn give_io_slot(&self) {
        self.io_in_flight.fetch_sub(1, Ordering::AcqRel);
    }

    /// One item of the group is done; the last one finishes the group.
    fn item_done(&self, group: &Arc<GroupState<W::Reducer>>) {
        if group.pending.fetch_sub(1, Ordering::AcqRel) != 1
            || !group.issued_all.load(Ordering::Acquire)
        {
            return;
        }
        // Finished before it leaves the cursor: without overlap, the next group's
        // first claim waits for that removal, so this group's end is never mixed
        // with the next one's reservations.
        if !self.stopping() {
            let reducer = group
                .reducer
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .take();
            match reducer.map(|r| r.finish()) {
                Some(Err(e)) => self.fail(RunError::Job(e.0)),
                _ => self.recorder.stage_done(Stage::Group, group.started, 0),
            }
        }
        self.cursor
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .groups
            .remove(&group.position);
    }

    /// Whether every input has been claimed (or nothing more will be).
    fn claims_over(&self) -> bool {
        self.stopping()
            || self
                .cursor
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .next_group
                >= self.job.groups.len()
    }
}

/// What a worker keeps with each operation in its ring.
enum Token<R> {
    Read {
        group: Arc<GroupState<R>>,
        index: usize,
        reserved: u64,
    },
    Write {
        group: Arc<GroupState<R>>,
        emission: usize,
    },
}

/// A claimed input, ready to be read.
struct Claim<R> {
    group: Arc<GroupState<R>>,
    index: usize,
    path: CString,
    range: Option<Range>,
    max: usize,
    reserved: u64,
}

/// An encoded chunk waiting for a ring slot: its group, emission and object.
type PendingWrite<R> = (Arc<GroupState<R>>, usize, OutputObject);

struct WorkerThread<'a, W: Workload> {
    shared: &'a Shared<W>,
    engine: Engine<Token<W::Reducer>>,
    deque: Deque<Task<W::Reducer>>,
    me: usize,
    /// Chunks this worker encoded, waiting for a slot in its ring.
    writes: VecDeque<PendingWrite<W::Reducer>>,
    /// Emissions with writes outstanding: (writes left, bytes to retire after).
    emissions: crate::engine::Slab<(usize, u64)>,
    events: Vec<Event<Token<W::Reducer>>>,
    /// Output directories this worker knows exist (its own, so a write takes no
    /// shared lock; each worker makes a new directory at most once).
    dirs: HashSet<PathBuf>,
    /// Reads in this worker's ring.
    reads: usize,
}

impl<W: Workload> WorkerThread<'_, W> {
    fn run(&mut self) {
        let shared = self.shared;
        let mut stopped = false;
        loop {
            if shared.cancel.is_cancelled() {
                shared.fail(RunError::Cancelled);
            }
            if shared.stopping() && !stopped {
                stopped = true;
                self.engine.stop();
            }
            let mut events = std::mem::take(&mut self.events);
            self.engine.reap(&mut events);
            for event in events.drain(..) {
                self.handle(event);
            }
            self.events = events;
            self.start_writes();
            self.start_reads();
            if let Err(e) = self.engine.submit() {
                shared.fail(e);
            }
            if let Some(task) = self.find_task() {
                self.cpu(task);
                continue;
            }
            if self.engine.in_flight() > 0 {
                if let Err(e) = self.engine.wait() {
                    shared.fail(e);
                }
                continue;
            }
            if self.writes.is_empty() && shared.claims_over() && self.deque.is_empty() {
                break;
            }
            // Waiting for an IO slot or budget another worker holds, or for the
            // previous group to finish.
            std::thread::park_timeout(Duration::from_micros(100));
        }
        self.engine.shutdown();
    }

    fn handle(&mut self, event: Event<Token<W::Reducer>>) {
        let shared = self.shared;
        match event {
            Event::Read {
                data:
                    Token::Read {
                        group,
                        index,
                        reserved,
                    },
                started,
                result,
            } => {
                self.reads -= 1;
                shared.recorder.io_end(Io::Read);
                shared.give_io_slot();
                match result {
                    Ok(bytes) if !shared.stopping() => {
                        let n = bytes.len() as u64;
                        shared.recorder.stage_done(Stage::Read, started, n);
                        shared.inputs.fetch_add(1, Ordering::Relaxed);
                        shared.input_bytes.fetch_add(n, Ordering::Relaxed);
                        self.deque.push(Task {
                            group,
                            index,
                            bytes,
                            started,
                            reserved,
                        });
                    }
                    other => {
                        if let Err(e) = other {
                            shared.fail(e);
                        }
                        shared.budget.release(reserved);
                        shared.item_done(&group);
                    }
                }
            }
            Event::Write {
                data: Token::Write { group, emission },
                started,
                bytes,
                result,
            } => {
                shared.recorder.io_end(Io::Write);
                shared.give_io_slot();
                match result {
                    Ok(()) => {
                        shared.recorder.stage_done(Stage::Write, started, bytes);
                        shared.outputs.fetch_add(1, Ordering::Relaxed);
                        shared.output_bytes.fetch_add(bytes, Ordering::Relaxed);
                    }
                    Err(e) => shared.fail(e),
                }
                self.write_finished(&group, emission);
            }
            _ => unreachable!("events carry the token of their kind"),
        }
    }

    fn write_finished(&mut self, group: &Arc<GroupState<W::Reducer>>, emission: usize) {
        let left = &mut self.emissions.get_mut(emission).0;
        *left -= 1;
        if *left == 0 {
            let (_, retired) = self.emissions.remove(emission);
            self.shared.budget.release(retired);
        }
        self.shared.item_done(group);
    }

    /// This worker's oldest task, else the oldest of another worker's.
    fn find_task(&mut self) -> Option<Task<W::Reducer>> {
        if let Some(t) = self.deque.pop() {
            return Some(t);
        }
        let n = self.shared.stealers.len();
        loop {
            let mut retry = false;
            for k in 1..n {
                match self.shared.stealers[(self.me + k) % n].steal() {
                    Steal::Success(t) => {
                        self.shared.steals.fetch_add(1, Ordering::Relaxed);
                        return Some(t);
                    }
                    Steal::Retry => retry = true,
                    Steal::Empty => {}
                }
            }
            if !retry {
                return None;
            }
        }
    }

    /// Decode, push, encode; the chunks go to this worker's write queue.
    fn cpu(&mut self, task: Task<W::Reducer>) {
        let shared = self.shared;
        if shared.stopping() {
            shared.budget.release(task.reserved);
            shared.item_done(&task.group);
            return;
        }
        let position = task.group.position;
        let result = catch_panic("a CPU step", || {
            cpu_task(
                &shared.job,
                &*shared.workload,
                &*shared.recorder,
                &shared.budget,
                &task.group.reducer,
                position,
                task.index,
                task.bytes,
                task.started,
                task.reserved,
            )
        });
        match result {
            Ok((objects, retired)) if !objects.is_empty() && !shared.stopping() => {
                task.group
                    .pending
                    .fetch_add(objects.len(), Ordering::AcqRel);
                let e = self.emissions.insert((objects.len(), retired));
                for o in objects {
                    self.writes.push_back((task.group.clone(), e, o));
                }
            }
            Ok((_, retired)) => shared.budget.release(retired),
            Err(e) => shared.fail(e),
        }
        shared.item_done(&task.group);
    }

    fn start_writes(&mut self) {
        while self.engine.can_write() {
            if self.shared.stopping() {
                while let Some((group, emission, _)) = self.writes.pop_front() {
                    self.write_finished(&group, emission);
                }
                return;
            }
            if self.writes.is_empty() || !self.shared.take_io_slot() {
                return;
            }
            let (group, emission, object) = self.writes.pop_front().expect("not empty");
            match self.paths(&object.key) {
                Ok((tmp, dest)) => {
                    self.shared.recorder.io_begin(Io::Write);
                    let token = Token::Write { group, emission };
                    self.engine.write(tmp, dest, object.bytes, token);
                }
                Err(e) => {
                    self.shared.give_io_slot();
                    self.shared.fail(e);
                    self.write_finished(&group, emission);
                }
            }
        }
    }

    /// The temporary and final paths of an output, its directory made if new.
    fn paths(&mut self, key: &str) -> Result<(CString, CString), RunError> {
        let path = self.shared.job.output_path(key);
        if let Some(dir) = path.parent() {
            let dirs = &mut self.dirs;
            if !dirs.contains(dir) {
                std::fs::create_dir_all(dir).map_err(|e| RunError::output(dir, io_detail(&e)))?;
                dirs.insert(dir.to_path_buf());
            }
        }
        Ok((cstring(&temp_path(&path))?, cstring(&path)?))
    }

    /// Reads in flight in this worker's ring plus read inputs in its deque: what
    /// `worker_queue` caps.
    fn queued(&self) -> usize {
        self.reads + self.deque.len()
    }

    fn start_reads(&mut self) {
        while self.engine.can_read()
            && !self.shared.stopping()
            && self.queued() < self.shared.worker_queue
        {
            if !self.shared.take_io_slot() {
                return;
            }
            match self.claim() {
                Ok(Some(c)) => {
                    self.reads += 1;
                    self.shared
                        .worker_queue_peak
                        .fetch_max(self.queued(), Ordering::Relaxed);
                    self.shared.recorder.io_begin(Io::Read);
                    let token = Token::Read {
                        group: c.group,
                        index: c.index,
                        reserved: c.reserved,
                    };
                    self.engine.read(c.path, c.range, c.max, token);
                }
                Ok(None) => {
                    self.shared.give_io_slot();
                    return;
                }
                Err(e) => {
                    self.shared.give_io_slot();
                    self.shared.fail(e);
                    return;
                }
            }
        }
    }

    /// Claims the next input if the budget and the group order allow.
    fn claim(&mut self) -> Result<Option<Claim<W::Reducer>>, RunError> {
        let shared = self.shared;
        let job = &shared.job;
        let mut cur = shared.cursor.lock().unwrap_or_else(|e| e.into_inner());
        let position = cur.next_group;
        if position >= job.groups.len() {
            return Ok(None);
        }
        // Without overlap, the next group starts only when the previous one is done.
        if !job.overlap_groups && cur.groups.keys().any(|&p| p < position) {
            return Ok(None);
        }
        let group = &job.groups[position];
        let index = cur.next_input;
        let cost = shared.workload.cost(group, index);
        if !shared.budget.try_acquire(cost.total()) {
            if cost.total() > shared.budget.capacity() {
                return Err(RunError::Job(format!(
                    "one item needs {} bytes but bytes_in_flight is {}",
                    cost.total(),
                    shared.budget.capacity()
                )));
            }
            return Ok(None);
        }
        let state = cur
            .groups
            .entry(position)
            .or_insert_with(|| {
                Arc::new(GroupState {
                    position,
                    reducer: Mutex::new(Some(shared.workload.reduce_group(group))),
                    pending: AtomicUsize::new(0),
                    issued_all: AtomicBool::new(false),
                    container: OnceLock::new(),
                    started: Instant::now(),
                })
            })
            .clone();
        state.pending.fetch_add(1, Ordering::AcqRel);
        cur.next_input += 1;
        if cur.next_input == group.inputs.len() {
            state.issued_all.store(true, Ordering::Release);
            cur.next_group += 1;
            cur.next_input = 0;
        }
        drop(cur);
        let input = &group.inputs[index];
        let path = job.input_path(input);
        let failed = |e: RunError| {
            shared.budget.release(cost.total());
            shared.item_done(&state);
            Err(e)
        };
        let c = match cstring(&path) {
            Ok(c) => c,
            Err(e) => return failed(e),
        };
        let range = match input.range {
            None => None,
            Some(r) => {
                let fd = match state.container.get() {
                    Some(&fd) => fd,
                    None => {
                        // Two workers may race to open it; the loser closes its fd.
                        let fd = match self.engine.open_container(&c) {
                            Ok(fd) => fd,
                            Err(e) => return failed(e),
                        };
                        if state.container.set(fd).is_err() {
                            // SAFETY: our own fd, never used.
                            unsafe { libc::close(fd) };
                        }
                        *state.container.get().expect("just set")
                    }
                };
                Some(Range {
                    fd,
                    offset: r.offset,
                    len: r.len as usize,
                })
            }
        };
        Ok(Some(Claim {
            group: state.clone(),
            index,
            path: c,
            range,
            max: (cost.read as usize).min(shared.max_input),
            reserved: cost.total(),
        }))
    }
}

impl<W: Workload> Drop for WorkerThread<'_, W> {
    fn drop(&mut self) {
        let shared = self.shared;
        shared
            .submits
            .fetch_add(self.engine.submits, Ordering::Relaxed);
        // Whatever is left (stopped runs): give back its budget and group counts.
        while let Some(t) = self.deque.pop() {
            shared.budget.release(t.reserved);
            shared.item_done(&t.group);
        }
        while let Some((group, emission, _)) = self.writes.pop_front() {
            self.write_finished(&group, emission);
        }
    }
}
