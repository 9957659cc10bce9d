//! The `uring` backend: one IO thread owns an io_uring and keeps it topped up;
//! decode, reduce and encode run on a Rayon pool of `cpu_threads`.
//!
//! The IO thread issues, per input file, `openat` → `read` (repeated until end of
//! file, so short reads are completed) → `close`; per byte range, a `read` at its
//! offset of the group's container, opened once; per output, `openat(O_CREAT)` →
//! `write` (repeated until all is written) → `close` → `renameat` from the
//! temporary name, so a reader never sees half a chunk. Each logical operation has
//! one SQE in flight at a time, and at most `min(queue_depth, io_in_flight)`
//! operations are in flight, so the submission and completion queues (sized above
//! that) can never overflow.
//!
//! Completed reads go to the Rayon pool (at most `cpu_in_flight` tasks queued or
//! running; the rest wait, already budgeted, in the IO thread's ready queue); a task
//! decodes, pushes into its group's reducer, encodes whatever that completed, and
//! sends the objects back over a channel, then wakes the IO thread through an
//! eventfd that always has a read armed in the ring. That channel holds only
//! objects whose bytes the budget already reserved, so the budget bounds it.
//!
//! Options, each recorded in the results: `queue_depth`, `sqpoll` (a kernel thread
//! polls the submission queue), `iowq_max_workers` (a cap on the kernel's io-wq
//! workers for blocking operations such as buffered opens). Registered files and
//! buffers, O_DIRECT and linked SQEs are not built yet.
//!
//! No silent fallback: where io_uring cannot be set up, [`Uring::availability`]
//! says why and `run` refuses with that reason.

use std::collections::{HashMap, HashSet, VecDeque};
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use crossbeam_channel::{Receiver, Sender};
use io_uring::{opcode, squeue, types, IoUring};
use rechunk_contract::output::{io_detail, temp_path};
use rechunk_contract::{
    Availability, Backend, ByteBudget, Cancel, Capabilities, GroupReducer, Io, Job, OutputObject,
    Recorder, RunError, RunOutcome, Stage, Workload,
};

/// See the crate documentation.
#[derive(Clone, Copy, Debug, Default)]
pub struct Uring {
    /// Operations in flight in the ring, at most; `None`: `io_in_flight`.
    pub queue_depth: Option<u32>,
    /// Submission-queue polling by a kernel thread; `Some(idle ms)` turns it on.
    pub sqpoll_idle_ms: Option<u32>,
    /// Caps the kernel's io-wq workers (bounded and unbounded) for this ring.
    pub iowq_max_workers: Option<u32>,
    /// CPU tasks queued or running on the pool; `None`: 32 per CPU thread.
    pub cpu_in_flight: Option<usize>,
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

impl Backend for Uring {
    fn name(&self) -> &'static str {
        "uring"
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            byte_ranges: true,
            needs_io_uring: true,
            s3: false,
            parallel: true,
        }
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
        if let Availability::Unavailable(why) = probe() {
            return Err(RunError::Unavailable(why));
        }
        workload.check_job(job).map_err(|e| RunError::Job(e.0))?;
        cancel.check()?;
        let depth = self
            .queue_depth
            .map_or(job.limits.io_in_flight, |q| q as usize)
            .min(job.limits.io_in_flight)
            .max(1);
        let cpu_in_flight = self
            .cpu_in_flight
            .unwrap_or(32 * job.limits.cpu_threads.max(1));
        let mut builder = IoUring::builder();
        if let Some(idle) = self.sqpoll_idle_ms {
            builder.setup_sqpoll(idle);
        }
        // One more entry than operations, for the eventfd read that is always armed.
        let entries = (depth as u32 + 1).next_power_of_two().max(8);
        let ring = builder
            .build(entries)
            .map_err(|e| RunError::Unavailable(format!("io_uring_setup({entries}): {e}")))?;
        let mut iowq = None;
        if let Some(max) = self.iowq_max_workers {
            let mut m = [max, max];
            ring.submitter()
                .register_iowq_max_workers(&mut m)
                .map_err(|e| RunError::Unavailable(format!("register_iowq_max_workers: {e}")))?;
            iowq = Some(max);
        }
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(job.limits.cpu_threads.max(1))
            .thread_name(|i| format!("uring-cpu-{i}"))
            .build()
            .map_err(|e| RunError::Internal(format!("building the Rayon pool: {e}")))?;
        let wake = EventFd::new()?;
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
            ring,
            depth,
            cpu_in_flight,
            pool,
            wake: Arc::new(wake),
            wake_buf: Box::new([0; 8]),
            tx,
            rx,
            ops: Slab::default(),
            completions: Vec::new(),
            in_flight: 0,
            ready: VecDeque::new(),
            cpu_running: 0,
            writes: VecDeque::new(),
            emissions: Slab::default(),
            groups: HashMap::new(),
            next_group: 0,
            next_input: 0,
            dirs: HashSet::new(),
            error: None,
            outcome: RunOutcome::default(),
            submits: 0,
        };
        let result = io.run();
        let mut outcome = std::mem::take(&mut io.outcome);
        result?;
        let d = &mut outcome.details;
        d.insert("io".into(), "io_uring".into());
        d.insert("queue_depth".into(), depth.into());
        d.insert("ring_entries".into(), entries.into());
        d.insert("sqpoll".into(), self.sqpoll_idle_ms.is_some().into());
        d.insert(
            "iowq_max_workers".into(),
            iowq.map_or(serde_json::Value::Null, Into::into),
        );
        d.insert("rayon_threads".into(), io.pool.current_num_threads().into());
        d.insert("cpu_in_flight".into(), cpu_in_flight.into());
        d.insert("io_threads".into(), 1.into());
        d.insert("ring_submit_calls".into(), io.submits.into());
        Ok(outcome)
    }
}

/// An eventfd the CPU tasks write to, so that a thread waiting on the ring wakes.
struct EventFd(i32);

impl EventFd {
    fn new() -> Result<EventFd, RunError> {
        // SAFETY: plain syscall; the fd is owned by the returned value.
        let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC) };
        if fd < 0 {
            return Err(RunError::Internal(format!(
                "eventfd: {}",
                std::io::Error::last_os_error()
            )));
        }
        Ok(EventFd(fd))
    }
    fn signal(&self) {
        let one: u64 = 1;
        // SAFETY: writes 8 bytes from a valid u64 to our eventfd.
        unsafe { libc::write(self.0, (&one as *const u64).cast(), 8) };
    }
}

impl Drop for EventFd {
    fn drop(&mut self) {
        // SAFETY: closes the fd this value owns.
        unsafe { libc::close(self.0) };
    }
}

/// A minimal slab: stable indices for in-flight operations (their user_data).
struct Slab<T> {
    items: Vec<Option<T>>,
    free: Vec<usize>,
}

impl<T> Default for Slab<T> {
    fn default() -> Self {
        Slab {
            items: Vec::new(),
            free: Vec::new(),
        }
    }
}

impl<T> Slab<T> {
    fn insert(&mut self, t: T) -> usize {
        match self.free.pop() {
            Some(i) => {
                self.items[i] = Some(t);
                i
            }
            None => {
                self.items.push(Some(t));
                self.items.len() - 1
            }
        }
    }
    fn remove(&mut self, i: usize) -> T {
        let t = self.items[i].take().expect("a live slab entry");
        self.free.push(i);
        t
    }
    fn get_mut(&mut self, i: usize) -> &mut T {
        self.items[i].as_mut().expect("a live slab entry")
    }
}

/// The user_data of the eventfd read, outside the slab's range.
const WAKE: u64 = u64::MAX;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Phase {
    Open,
    Data,
    Close,
    Rename,
}

/// One logical IO operation: an input read or an output write.
struct Op {
    phase: Phase,
    fd: i32,
    buf: Vec<u8>,
    /// Bytes read or written so far.
    done: usize,
    started: Instant,
    kind: OpKind,
}

enum OpKind {
    Read {
        position: usize,
        index: usize,
        path: CString,
        /// The container's fd for a byte range (shared, not closed here).
        range: Option<(i32, u64)>,
        /// Budget bytes reserved for this input.
        reserved: u64,
    },
    Write {
        key: String,
        tmp: CString,
        dest: CString,
        emission: Option<usize>,
        group: usize,
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

struct IoThread<W: Workload> {
    job: Arc<Job>,
    workload: Arc<W>,
    recorder: Arc<dyn Recorder>,
    budget: Arc<ByteBudget>,
    cancel: Cancel,
    ring: IoUring,
    depth: usize,
    cpu_in_flight: usize,
    pool: rayon::ThreadPool,
    wake: Arc<EventFd>,
    /// The armed eventfd read's buffer: lives as long as the ring.
    wake_buf: Box<[u8; 8]>,
    tx: Sender<Done>,
    rx: Receiver<Done>,
    ops: Slab<Op>,
    /// Reused for each batch of CQEs, so reaping allocates nothing.
    completions: Vec<(u64, i32)>,
    /// Operations with an SQE in the ring (the eventfd read not counted).
    in_flight: usize,
    /// Reads completed, waiting for a CPU slot: (position, index, bytes, started, reserved).
    ready: VecDeque<(usize, usize, Vec<u8>, Instant, u64)>,
    cpu_running: usize,
    /// Encoded objects waiting for an IO slot: (group position, emission, object).
    writes: VecDeque<(usize, Option<usize>, OutputObject)>,
    /// Emissions with writes outstanding: (writes left, bytes to retire after).
    emissions: Slab<(usize, u64)>,
    groups: HashMap<usize, GroupState<W::Reducer>>,
    next_group: usize,
    next_input: usize,
    dirs: HashSet<PathBuf>,
    error: Option<RunError>,
    outcome: RunOutcome,
    submits: u64,
}

fn cstring(p: &Path) -> Result<CString, RunError> {
    CString::new(p.as_os_str().as_bytes())
        .map_err(|_| RunError::input(p, "the path contains a NUL byte"))
}

impl<W: Workload> IoThread<W> {
    /// Keeps the error that explains the run: the first real one, else `Cancelled`.
    fn fail(&mut self, e: RunError) {
        let cancelled = |e: &RunError| matches!(e, RunError::Cancelled);
        if self
            .error
            .as_ref()
            .is_none_or(|first| cancelled(first) && !cancelled(&e))
        {
            self.error = Some(e);
        }
    }

    fn stopping(&self) -> bool {
        self.error.is_some()
    }

    fn run(&mut self) -> Result<(), RunError> {
        self.arm_wake();
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
            if self.in_flight == 0 && self.cpu_running == 0 && self.ready.is_empty() {
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
            self.submits += 1;
            match self.ring.submit_and_wait(1) {
                Ok(_) => {}
                Err(e) if e.raw_os_error() == Some(libc::EINTR) => {}
                Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {}
                Err(e) => {
                    self.fail(RunError::Internal(format!("io_uring_enter: {e}")));
                    if self.in_flight == 0 && self.cpu_running == 0 {
                        break;
                    }
                }
            }
            // Taken out first: handling a completion pushes SQEs (a &mut of the ring).
            let mut completions = std::mem::take(&mut self.completions);
            completions.extend(self.ring.completion().map(|c| (c.user_data(), c.result())));
            for &(data, res) in &completions {
                if data == WAKE {
                    self.arm_wake();
                } else {
                    self.complete(data as usize, res);
                }
            }
            completions.clear();
            self.completions = completions;
        }
        for g in self.groups.values() {
            if let Some(fd) = g.container {
                // SAFETY: closes a container fd this thread opened; nothing uses it now.
                unsafe { libc::close(fd) };
            }
        }
        self.disarm_wake();
        match self.error.take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    fn arm_wake(&mut self) {
        let entry = opcode::Read::new(types::Fd(self.wake.0), self.wake_buf.as_mut_ptr(), 8)
            .build()
            .user_data(WAKE);
        self.push(entry);
    }

    /// Completes the armed eventfd read (by signalling it) so that no read into
    /// `wake_buf` is left in the kernel; later signals only bump the counter.
    fn disarm_wake(&mut self) {
        self.wake.signal();
        loop {
            if self.ring.submit_and_wait(1).is_err() {
                return;
            }
            if self.ring.completion().any(|c| c.user_data() == WAKE) {
                return;
            }
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

    fn push(&mut self, entry: squeue::Entry) {
        loop {
            // SAFETY: every buffer and path an SQE points to lives in `self.ops` (or
            // is the eventfd buffer on `run`'s stack) until its completion is reaped.
            if unsafe { self.ring.submission().push(&entry) }.is_ok() {
                return;
            }
            // Full (cannot happen with the sizes chosen, but never drop an SQE).
            self.submits += 1;
            let _ = self.ring.submit();
        }
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
            let Some((position, index, bytes, started, reserved)) = self.ready.pop_front() else {
                break;
            };
            self.cpu_running += 1;
            let job = self.job.clone();
            let workload = self.workload.clone();
            let recorder = self.recorder.clone();
            let budget = self.budget.clone();
            let reducer = self.groups[&position].reducer.clone();
            let tx = self.tx.clone();
            let wake = self.wake.clone();
            self.pool.spawn(move || {
                let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    cpu_task(
                        &job, &*workload, &*recorder, &budget, &reducer, position, index, bytes,
                        started, reserved,
                    )
                }))
                .unwrap_or_else(|p| {
                    let what = p
                        .downcast_ref::<&str>()
                        .map(|s| s.to_string())
                        .or_else(|| p.downcast_ref::<String>().cloned())
                        .unwrap_or_default();
                    Err(RunError::Internal(format!("decode panicked: {what}")))
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
            while let Some((position, _, _, _, reserved)) = self.ready.pop_front() {
                self.budget.release(reserved);
                self.group_item_done(position);
            }
        }
    }

    /// Starts writes, then reads, while there are IO slots.
    fn start_io(&mut self, metadata_pending: bool) {
        while self.in_flight < self.depth {
            if let Some((position, emission, object)) = self.writes.pop_front() {
                if self.stopping() {
                    self.write_finished(position, emission);
                    continue;
                }
                if let Err(e) = self.start_write(position, emission, object) {
                    self.fail(e);
                }
                continue;
            }
            if metadata_pending || !self.can_read() {
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
        let range = match input.range {
            None => None,
            Some(r) => {
                let fd = match state.container {
                    Some(fd) => fd,
                    None => {
                        // Once per group: opened here, synchronously, and kept.
                        let c = cstring(&path)?;
                        // SAFETY: opens a NUL-terminated path; the fd is closed in `run`.
                        let fd =
                            unsafe { libc::open(c.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
                        if fd < 0 {
                            let e = std::io::Error::last_os_error();
                            self.budget.release(cost.total());
                            return Err(RunError::input(
                                &path,
                                format!("cannot open: {}", io_detail(&e)),
                            ));
                        }
                        state.container = Some(fd);
                        fd
                    }
                };
                Some((fd, r.offset))
            }
        };
        let len = match input.range {
            Some(r) => r.len as usize,
            // Room for the largest valid input plus one byte, to tell "too large".
            None => cost.read as usize + 1,
        };
        self.recorder.io_begin(Io::Read);
        let op = Op {
            phase: if range.is_some() {
                Phase::Data
            } else {
                Phase::Open
            },
            fd: range.map_or(-1, |(fd, _)| fd),
            buf: vec![0; len],
            done: 0,
            started: Instant::now(),
            kind: OpKind::Read {
                position,
                index,
                path: cstring(&path)?,
                range,
                reserved: cost.total(),
            },
        };
        let slot = self.ops.insert(op);
        self.in_flight += 1;
        self.submit_phase(slot);
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
        self.recorder.io_begin(Io::Write);
        let op = Op {
            phase: Phase::Open,
            fd: -1,
            buf: object.bytes,
            done: 0,
            started: Instant::now(),
            kind: OpKind::Write {
                key: object.key,
                tmp: cstring(&temp_path(&path))?,
                dest: cstring(&path)?,
                emission,
                group: position,
            },
        };
        let slot = self.ops.insert(op);
        self.in_flight += 1;
        self.submit_phase(slot);
        Ok(())
    }

    /// Pushes the SQE for the operation's current phase.
    fn submit_phase(&mut self, slot: usize) {
        let op = self.ops.get_mut(slot);
        let entry = match (&op.kind, &op.phase) {
            (OpKind::Read { path, .. }, Phase::Open) => {
                opcode::OpenAt::new(types::Fd(libc::AT_FDCWD), path.as_ptr())
                    .flags(libc::O_RDONLY | libc::O_CLOEXEC)
                    .build()
            }
            (OpKind::Read { range, .. }, Phase::Data) => {
                let offset = range.map_or(0, |(_, o)| o) + op.done as u64;
                opcode::Read::new(
                    types::Fd(op.fd),
                    op.buf[op.done..].as_mut_ptr(),
                    (op.buf.len() - op.done) as u32,
                )
                .offset(offset)
                .build()
            }
            (OpKind::Write { tmp, .. }, Phase::Open) => {
                opcode::OpenAt::new(types::Fd(libc::AT_FDCWD), tmp.as_ptr())
                    .flags(libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC | libc::O_CLOEXEC)
                    .mode(0o644)
                    .build()
            }
            (OpKind::Write { .. }, Phase::Data) => opcode::Write::new(
                types::Fd(op.fd),
                op.buf[op.done..].as_ptr(),
                (op.buf.len() - op.done) as u32,
            )
            .offset(op.done as u64)
            .build(),
            (_, Phase::Close) => opcode::Close::new(types::Fd(op.fd)).build(),
            (OpKind::Write { tmp, dest, .. }, Phase::Rename) => opcode::RenameAt::new(
                types::Fd(libc::AT_FDCWD),
                tmp.as_ptr(),
                types::Fd(libc::AT_FDCWD),
                dest.as_ptr(),
            )
            .build(),
            (OpKind::Read { .. }, Phase::Rename) => unreachable!("reads are never renamed"),
        };
        self.push(entry.user_data(slot as u64));
    }

    /// One CQE of operation `slot`.
    fn complete(&mut self, slot: usize, res: i32) {
        let stopping = self.stopping();
        let op = self.ops.get_mut(slot);
        let err = (res < 0).then(|| std::io::Error::from_raw_os_error(-res));
        let (is_read, range) = match &op.kind {
            OpKind::Read { range, .. } => (true, *range),
            OpKind::Write { .. } => (false, None),
        };
        match (is_read, op.phase) {
            (true, Phase::Open) => {
                if let Some(e) = err {
                    return self.read_failed(slot, "cannot open: ", e);
                }
                op.fd = res;
                op.phase = if stopping { Phase::Close } else { Phase::Data };
            }
            (true, Phase::Data) => {
                if let Some(e) = err {
                    return self.read_failed(slot, "", e);
                }
                let n = res as usize;
                op.done += n;
                let full = op.done == op.buf.len();
                match (range, n, full) {
                    // A range is complete when full; a 0 before that is a truncation.
                    (Some(_), _, true) => return self.read_done(slot),
                    (Some((_, offset)), 0, false) => {
                        let end = offset + op.buf.len() as u64;
                        return self.read_failed_msg(
                            slot,
                            format!("truncated: the file ends before byte {end}"),
                        );
                    }
                    (Some(_), _, false) if stopping => return self.read_done(slot),
                    // A short read: read the rest.
                    (Some(_), _, false) => {}
                    // A whole file ends at end of file; filling the buffer (one byte
                    // more than any valid input) means it is too large.
                    (None, _, true) => {
                        let max = op.buf.len() - 1;
                        return self.read_failed_msg(
                            slot,
                            format!("larger than any valid input ({max} bytes at most)"),
                        );
                    }
                    (None, 0, false) => op.phase = Phase::Close,
                    (None, _, false) if stopping => op.phase = Phase::Close,
                    (None, _, false) => {}
                }
            }
            (true, Phase::Close) => return self.read_done(slot),
            (false, Phase::Open) => {
                if let Some(e) = err {
                    return self.write_failed(slot, Some(e), false);
                }
                op.fd = res;
                op.phase = if stopping { Phase::Close } else { Phase::Data };
            }
            (false, Phase::Data) => {
                if let Some(e) = err {
                    return self.write_failed(slot, Some(e), true);
                }
                op.done += res as usize;
                if op.done == op.buf.len() || stopping {
                    op.phase = Phase::Close;
                } else if res == 0 {
                    let e = std::io::Error::new(std::io::ErrorKind::WriteZero, "wrote 0 bytes");
                    return self.write_failed(slot, Some(e), true);
                }
            }
            (false, Phase::Close) => {
                op.fd = -1;
                if err.is_some() || stopping {
                    return self.write_failed(slot, err, false);
                }
                op.phase = Phase::Rename;
            }
            (false, Phase::Rename) => {
                if err.is_some() {
                    return self.write_failed(slot, err, false);
                }
                return self.write_done(slot);
            }
            (true, Phase::Rename) => unreachable!("reads are never renamed"),
        }
        self.submit_phase(slot);
    }

    fn read_done(&mut self, slot: usize) {
        self.in_flight -= 1;
        self.recorder.io_end(Io::Read);
        let mut op = self.ops.remove(slot);
        let OpKind::Read {
            position,
            index,
            reserved,
            ..
        } = op.kind
        else {
            unreachable!()
        };
        if self.stopping() {
            self.budget.release(reserved);
            self.group_item_done(position);
            return;
        }
        op.buf.truncate(op.done);
        self.recorder
            .stage_done(Stage::Read, op.started, op.done as u64);
        self.outcome.inputs += 1;
        self.outcome.input_bytes += op.done as u64;
        self.ready
            .push_back((position, index, op.buf, op.started, reserved));
    }

    fn read_failed(&mut self, slot: usize, what: &str, e: std::io::Error) {
        self.read_failed_msg(slot, format!("{what}{}", io_detail(&e)));
    }

    fn read_failed_msg(&mut self, slot: usize, msg: String) {
        let op = self.ops.get_mut(slot);
        let OpKind::Read { path, range, .. } = &op.kind else {
            unreachable!()
        };
        let path = PathBuf::from(std::ffi::OsStr::from_bytes(path.as_bytes()));
        let owns_fd = range.is_none() && op.fd >= 0 && op.phase != Phase::Open;
        self.fail(RunError::input(&path, msg));
        if owns_fd {
            // Still open: close it through the ring before the operation ends.
            self.ops.get_mut(slot).phase = Phase::Close;
            self.submit_phase(slot);
        } else {
            self.read_done(slot);
        }
    }

    fn write_done(&mut self, slot: usize) {
        self.in_flight -= 1;
        self.recorder.io_end(Io::Write);
        let op = self.ops.remove(slot);
        let OpKind::Write {
            emission, group, ..
        } = op.kind
        else {
            unreachable!()
        };
        self.recorder
            .stage_done(Stage::Write, op.started, op.buf.len() as u64);
        self.outcome.outputs += 1;
        self.outcome.output_bytes += op.buf.len() as u64;
        self.write_finished(group, emission);
    }

    /// A write failed (`Some`) or was stopped (`None`): close its file if open,
    /// remove the temporary file, and end the operation.
    fn write_failed(&mut self, slot: usize, e: Option<std::io::Error>, fd_open: bool) {
        if let Some(e) = e {
            let OpKind::Write { key, .. } = &self.ops.get_mut(slot).kind else {
                unreachable!()
            };
            let path = self.job.output_path(key);
            self.fail(RunError::output(path, io_detail(&e)));
        }
        let op = self.ops.get_mut(slot);
        if fd_open && op.fd >= 0 {
            // Closed through the ring first; the close's completion comes back here.
            op.phase = Phase::Close;
            self.submit_phase(slot);
            return;
        }
        let OpKind::Write { tmp, .. } = &op.kind else {
            unreachable!()
        };
        // SAFETY: unlinks a NUL-terminated path; a missing file is fine.
        unsafe { libc::unlink(tmp.as_ptr()) };
        self.in_flight -= 1;
        self.recorder.io_end(Io::Write);
        let op = self.ops.remove(slot);
        if let OpKind::Write {
            emission, group, ..
        } = op.kind
        {
            self.write_finished(group, emission);
        }
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
    bytes: Vec<u8>,
    started: Instant,
    reserved: u64,
) -> Result<(Vec<OutputObject>, u64), RunError> {
    let group = &job.groups[position];
    let at_fault = || job.input_path(&group.inputs[index]);
    let cost = workload.cost(group, index);
    let retained = reserved - cost.read - cost.transient;
    let result = (|| {
        let t = Instant::now();
        let decoded = workload
            .decode(group, index, &bytes)
            .map_err(|e| RunError::input(at_fault(), e))?;
        recorder.stage_done(Stage::Decode, t, cost.transient);
        drop(bytes);
        let t = Instant::now();
        let emission = reducer
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_mut()
            .ok_or_else(|| RunError::Internal("push after the group was finished".into()))?
            .push(index, decoded)
            .map_err(|e| RunError::input(at_fault(), e))?;
        recorder.stage_done(Stage::Reduce, t, 0);
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
        let t = Instant::now();
        let object = workload.encode(chunk).map_err(|e| {
            RunError::output(
                &job.output_root,
                format!("encoding a chunk of group {}: {e}", group.index),
            )
        })?;
        recorder.stage_done(Stage::Encode, t, object.bytes.len() as u64);
        objects.push(object);
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

    #[test]
    fn uring_passes_conformance() {
        if !available() {
            return;
        }
        let skipped = conformance::check_all(&Uring::default());
        assert!(skipped.is_empty(), "skipped {skipped:?}");
    }

    #[test]
    fn uring_with_every_option_on_passes_conformance() {
        if !available() {
            return;
        }
        let b = Uring {
            queue_depth: Some(2),
            sqpoll_idle_ms: Some(10),
            iowq_max_workers: Some(2),
            cpu_in_flight: Some(1),
        };
        let skipped = conformance::check_all(&b);
        assert!(skipped.is_empty(), "skipped {skipped:?}");
    }
}
