//! The `compio-rayon` pipeline: IO threads, each a compio runtime with its own
//! io_uring, claim inputs in the job's order, read them, hand decode + push and
//! encode to a Rayon pool, and write what completes.
//!
//! # How the work is shared
//!
//! compio is thread per core: a runtime, its ring and its tasks belong to one
//! thread and are never stolen by another. So the IO threads share the job through
//! one *dispenser*, an async mutex over "the next input of the current group".
//! An IO thread keeps up to its window of inputs claimed and not yet read (its
//! share of `io_in_flight`); for each, it takes the dispenser, takes the next
//! input, reserves that input's whole cost from the byte budget *while holding the
//! dispenser*, and lets go. Reservations are therefore made strictly in the job's
//! order, across threads too: the items of one variable are always reserved before
//! those of the next, so a budget that holds one variable (the workload's
//! `check_job`) can never deadlock. (Two threads each taking the next input and
//! reserving on their own could reserve out of order.) The claimed input becomes a
//! task on the claiming thread: an IO slot (`io_in_flight`, shared by reads and
//! writes of all threads), the read, then the CPU steps on Rayon, then the writes
//! of what its push completed, on the same thread's ring.
//!
//! Without `overlap_groups` the dispenser opens group n+1 only once group n is
//! finished: its last task has written its last chunk and closed its reducer.
//!
//! # Limits
//!
//! The byte budget, the IO slots, the stop signal and the CPU hand-over are
//! tokio-rayon's own ([`backend_tokio::limits`], [`backend_tokio::cpu`]):
//! `tokio::sync` primitives, which run on any executor, and `rayon::spawn` + a
//! oneshot with at most `cpu_in_flight` jobs handed over. No task is ever
//! aborted: on an error or a cancel every task sees the stop at its next step and
//! each IO thread waits for all of its tasks, so no write is cut off half way and
//! no temporary file outlives the run.

use std::cell::Cell;
use std::collections::HashSet;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use backend_tokio::cpu::{Bridge, Cpu};
use backend_tokio::limits::{Budget, IoLimit, Reservation, Stop};
use compio::driver::op::OpCodeFlag;
use compio::driver::ProactorBuilder;
use compio::runtime::{Runtime, RuntimeBuilder};
use rechunk_contract::steps;
use rechunk_contract::{
    FirstError, GroupReducer, Io, Job, OutputObject, Recorder, RunError, RunOutcome, Stage,
    Workload,
};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};

use crate::io::{self, Containers};

/// How a run is set up.
#[derive(Clone, Copy, Debug)]
pub struct Config {
    /// IO threads, each with its own runtime and ring.
    pub io_threads: usize,
    /// CPU jobs handed over and not yet finished, at most.
    pub cpu_in_flight: usize,
    /// Submission-queue polling by a kernel thread per ring; `Some(idle ms)`.
    pub sqpoll_idle_ms: Option<u64>,
}

/// The opcodes every run needs from io_uring; compio runs an operation the ring
/// lacks on a thread pool, which would not be io_uring, so a ring without these is
/// refused. (Its `mkdirat` and `renameat`, new in Linux 5.15 and 5.11, are not
/// among compio's detectable opcodes; on an older kernel compio runs those two on
/// its thread pool.)
fn required_opcodes() -> OpCodeFlag {
    OpCodeFlag::OpenAt | OpCodeFlag::Read | OpCodeFlag::Write | OpCodeFlag::Close
}

/// A compio runtime on this thread with a ring of `entries` (and SQPOLL if asked),
/// refusing anything but io_uring with every opcode the pipeline uses.
pub fn build_runtime(entries: u32, sqpoll_idle_ms: Option<u64>) -> Result<Runtime, RunError> {
    let mut proactor = ProactorBuilder::new();
    proactor
        .capacity(entries)
        .detect_opcode_support(required_opcodes());
    if let Some(ms) = sqpoll_idle_ms {
        proactor.sqpoll_idle(Duration::from_millis(ms));
    }
    let runtime = RuntimeBuilder::new()
        .with_proactor(proactor)
        .build()
        .map_err(|e| RunError::Unavailable(unavailable(&e)))?;
    if !runtime.driver_type().is_iouring() {
        return Err(RunError::Unavailable(format!(
            "compio runs on its {:?} driver here, not io_uring",
            runtime.driver_type()
        )));
    }
    Ok(runtime)
}

/// Why compio could not set up its ring, in the kernel's words, with
/// `kernel.io_uring_disabled` when it is set.
fn unavailable(e: &std::io::Error) -> String {
    let disabled = std::fs::read_to_string("/proc/sys/kernel/io_uring_disabled")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|v| !v.is_empty() && v != "0");
    match disabled {
        Some(v) => format!("compio could not set up io_uring: {e} (kernel.io_uring_disabled = {v})"),
        None => format!(
            "compio could not set up io_uring: {e} (seccomp, an old kernel, or a sandbox forbids it)"
        ),
    }
}

/// Ring entries for `io_in_flight`: one submission per operation in flight (every
/// operation has at most one at a time), plus room for the runtime's own wake-up
/// poll; io_uring's maximum is 32768 (compio submits early if a ring fills up).
pub fn ring_entries(io_in_flight: usize) -> u32 {
    io_in_flight.saturating_add(8).min(32768) as u32
}

/// Everything the IO threads share.
struct Ctx<W: Workload> {
    job: Arc<Job>,
    workload: Arc<W>,
    recorder: Arc<dyn Recorder>,
    stop: Stop,
    io: IoLimit,
    budget: Budget,
    cpu: Cpu,
    /// The next input to claim; see the module documentation.
    dispenser: tokio::sync::Mutex<Dispenser<W::Reducer>>,
    errors: Mutex<FirstError>,
    /// Output directories known to exist, so a chunk costs no mkdir after the first.
    dirs: Mutex<HashSet<PathBuf>>,
    groups_finished: AtomicUsize,
    inputs: AtomicU64,
    input_bytes: AtomicU64,
    outputs: AtomicU64,
    output_bytes: AtomicU64,
}

/// Where the claims are: the group and input next, and the groups' states.
struct Dispenser<R> {
    position: usize,
    next: usize,
    current: Option<Arc<GroupState<R>>>,
    previous: Option<Arc<GroupState<R>>>,
}

/// One group's reducer, the retained bytes of its inputs, and how many of its
/// inputs are still to finish.
struct GroupState<R> {
    reducer: Mutex<Option<R>>,
    /// Bytes the reducer keeps for the inputs pushed so far; an emission takes what
    /// it retires out of here and gives it back once its chunks are written.
    retained: Mutex<Reservation>,
    /// Inputs not yet through (read, pushed, their chunks written).
    remaining: AtomicUsize,
    started: Instant,
    done: Gate,
}

/// Opens once; waiters wake on any thread.
#[derive(Default)]
struct Gate {
    open: AtomicBool,
    notify: Notify,
}

impl Gate {
    fn open(&self) {
        self.open.store(true, Ordering::Release);
        self.notify.notify_waiters();
    }

    /// Waits until open; `Cancelled` if `stop` is set first.
    async fn wait(&self, stop: &Stop) -> Result<(), RunError> {
        loop {
            let notified = self.notify.notified();
            tokio::pin!(notified);
            // Registered before the check, so an `open()` in between is not missed.
            notified.as_mut().enable();
            if self.open.load(Ordering::Acquire) {
                return Ok(());
            }
            stop.check()?;
            tokio::select! {
                _ = notified => {}
                _ = stop.wait() => return Err(RunError::Cancelled),
            }
        }
    }
}

/// An input claimed: its budget reserved, its read not yet begun.
struct Claim<R> {
    position: usize,
    index: usize,
    reservation: Reservation,
    state: Arc<GroupState<R>>,
}

/// One IO thread's own state: its open containers and its live tasks.
#[derive(Default)]
struct Local {
    containers: Containers,
    live: Cell<usize>,
    idle: Notify,
}

impl Local {
    /// Waits until every task this thread spawned has ended.
    async fn drained(&self) {
        loop {
            let notified = self.idle.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.live.get() == 0 {
                return;
            }
            notified.await;
        }
    }
}

/// Counts a task live until it is dropped, finished or not; one dropped
/// unfinished (a panic in IO-thread code) fails the run instead of hanging it.
struct LiveGuard<W: Workload> {
    ctx: Arc<Ctx<W>>,
    local: Rc<Local>,
    finished: bool,
}

impl<W: Workload> Drop for LiveGuard<W> {
    fn drop(&mut self) {
        if !self.finished {
            self.ctx.fail(RunError::Internal(
                "an IO task ended without finishing".into(),
            ));
        }
        let n = self.local.live.get() - 1;
        self.local.live.set(n);
        if n == 0 {
            self.local.idle.notify_waiters();
        }
    }
}

/// Runs `job` with `workload`: what [`rechunk_contract::Backend::run`] does for
/// `compio-rayon`, after the preflight checks.
pub fn run<W: Workload>(
    cfg: Config,
    job: &Arc<Job>,
    workload: &Arc<W>,
    recorder: &Arc<dyn Recorder>,
    stop: Stop,
) -> Result<RunOutcome, RunError> {
    let io_threads = cfg.io_threads.max(1);
    let entries = ring_entries(job.limits.io_in_flight);
    // Each thread's share of the reads claimed and not yet done; together they
    // never exceed io_in_flight by more than io_threads - 1.
    let window = job.limits.io_in_flight.max(1).div_ceil(io_threads);
    let runtime = build_runtime(entries, cfg.sqpoll_idle_ms)?;
    let driver = format!("{:?}", runtime.driver_type());
    let ctx = Arc::new(Ctx {
        job: job.clone(),
        workload: workload.clone(),
        recorder: recorder.clone(),
        io: IoLimit::new(job.limits.io_in_flight, recorder.clone()),
        budget: Budget::new(job.limits.bytes_in_flight, recorder.clone()),
        cpu: Cpu::new(Bridge::Oneshot, job.limits.cpu_threads, cfg.cpu_in_flight)?,
        stop,
        dispenser: tokio::sync::Mutex::new(Dispenser {
            position: 0,
            next: 0,
            current: None,
            previous: None,
        }),
        errors: Mutex::new(FirstError::new()),
        dirs: Mutex::new(HashSet::new()),
        groups_finished: AtomicUsize::new(0),
        inputs: AtomicU64::new(0),
        input_bytes: AtomicU64::new(0),
        outputs: AtomicU64::new(0),
        output_bytes: AtomicU64::new(0),
    });
    let mut threads = Vec::new();
    runtime.block_on(async {
        // Turns a user cancel (a flag a signal handler sets) into a notification of
        // every waiter, on every thread: one timer for the run.
        let watcher = compio::runtime::spawn({
            let stop = ctx.stop.clone();
            async move {
                while !stop.is_set() {
                    compio::time::sleep(Duration::from_millis(5)).await;
                }
                stop.stop();
            }
        });
        for object in ctx.workload.metadata() {
            if let Err(e) = write(&ctx, object).await {
                ctx.fail(e);
                break;
            }
        }
        let mut answers = Vec::new();
        if !ctx.stop.is_set() {
            for t in 1..io_threads {
                let (tx, rx) = tokio::sync::oneshot::channel();
                let c = ctx.clone();
                let spawned = std::thread::Builder::new()
                    .name(format!("compio-io-{t}"))
                    .spawn(move || {
                        let r = build_runtime(entries, cfg.sqpoll_idle_ms)
                            .map(|rt| rt.block_on(io_thread(c, window)));
                        let _ = tx.send(r);
                    });
                match spawned {
                    Ok(h) => {
                        threads.push(h);
                        answers.push(rx);
                    }
                    Err(e) => {
                        ctx.fail(RunError::Internal(format!("starting an IO thread: {e}")));
                        break;
                    }
                }
            }
        }
        io_thread(ctx.clone(), window).await;
        for rx in answers {
            match rx.await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => ctx.fail(e),
                Err(_) => ctx.fail(RunError::Internal(
                    "an IO thread ended without an answer (it panicked)".into(),
                )),
            }
        }
        drop(watcher);
    });
    for t in threads {
        if t.join().is_err() {
            ctx.fail(RunError::Internal("an IO thread panicked".into()));
        }
    }
    drop(runtime);
    let error = ctx.errors.lock().unwrap_or_else(|e| e.into_inner()).take();
    if let Some(e) = error {
        return Err(e);
    }
    if ctx.groups_finished.load(Ordering::Acquire) != job.groups.len() {
        return Err(RunError::Internal(format!(
            "{} of {} groups finished, yet no error was raised",
            ctx.groups_finished.load(Ordering::Acquire),
            job.groups.len()
        )));
    }

    let mut outcome = RunOutcome {
        inputs: ctx.inputs.load(Ordering::Relaxed),
        input_bytes: ctx.input_bytes.load(Ordering::Relaxed),
        outputs: ctx.outputs.load(Ordering::Relaxed),
        output_bytes: ctx.output_bytes.load(Ordering::Relaxed),
        details: Default::default(),
    };
    let d = &mut outcome.details;
    d.insert("io".into(), "compio (io_uring)".into());
    d.insert("compio_driver".into(), driver.into());
    d.insert("io_threads".into(), io_threads.into());
    d.insert("ring_entries".into(), entries.into());
    d.insert("sqpoll".into(), cfg.sqpoll_idle_ms.is_some().into());
    d.insert("bridge".into(), Bridge::Oneshot.name().into());
    d.insert("rayon_threads".into(), ctx.cpu.rayon_threads().into());
    d.insert("cpu_in_flight".into(), cfg.cpu_in_flight.into());
    d.insert("cpu_hand_overs".into(), ctx.cpu.hops().into());
    Ok(outcome)
}

impl<W: Workload> Ctx<W> {
    /// Keeps `e` if it explains the run's failure (see [`FirstError`]) and tells
    /// every task on every thread to stop.
    fn fail(&self, e: RunError) {
        self.stop.stop();
        self.errors
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .note(e);
    }

    /// The next input, its budget reserved; `None` once every input is claimed.
    async fn claim(&self) -> Result<Option<Claim<W::Reducer>>, RunError> {
        let mut d = tokio::select! {
            d = self.dispenser.lock() => d,
            _ = self.stop.wait() => return Err(RunError::Cancelled),
        };
        loop {
            self.stop.check()?;
            let Some(group) = self.job.groups.get(d.position) else {
                return Ok(None);
            };
            let state = match &d.current {
                Some(s) => s.clone(),
                None => {
                    if !self.job.overlap_groups {
                        if let Some(previous) = d.previous.take() {
                            previous.done.wait(&self.stop).await?;
                        }
                    }
                    let state = Arc::new(GroupState {
                        reducer: Mutex::new(Some(self.workload.reduce_group(group))),
                        retained: Mutex::new(self.budget.empty()),
                        remaining: AtomicUsize::new(group.inputs.len()),
                        started: Instant::now(),
                        done: Gate::default(),
                    });
                    d.current = Some(state.clone());
                    if group.inputs.is_empty() {
                        self.finish_group(&state)?;
                    }
                    state
                }
            };
            if d.next < group.inputs.len() {
                let index = d.next;
                let cost = self.workload.cost(group, index).total();
                let reservation = self.budget.reserve(cost, &self.stop).await?;
                d.next += 1;
                return Ok(Some(Claim {
                    position: d.position,
                    index,
                    reservation,
                    state,
                }));
            }
            d.previous = d.current.take();
            d.position += 1;
            d.next = 0;
        }
    }

    /// Closes a group whose inputs are all through: its reducer's `finish`, its
    /// `Group` stage, and its gate opened for the next group.
    fn finish_group(&self, state: &GroupState<W::Reducer>) -> Result<(), RunError> {
        let reducer = state
            .reducer
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(reducer) = reducer {
            reducer.finish().map_err(|e| RunError::Job(e.0))?;
        }
        self.recorder.stage_done(Stage::Group, state.started, 0);
        self.groups_finished.fetch_add(1, Ordering::AcqRel);
        state.done.open();
        Ok(())
    }
}

/// One IO thread: claims inputs (at most `window` claimed and not yet read),
/// spawns a task for each, then waits for all of them.
async fn io_thread<W: Workload>(ctx: Arc<Ctx<W>>, window: usize) {
    let local = Rc::new(Local::default());
    let reads = Arc::new(Semaphore::new(window.max(1)));
    loop {
        if ctx.stop.is_set() {
            break;
        }
        let slot = tokio::select! {
            s = reads.clone().acquire_owned() => match s {
                Ok(s) => s,
                Err(_) => break,
            },
            _ = ctx.stop.wait() => break,
        };
        match ctx.claim().await {
            Ok(Some(claim)) => spawn_input(&ctx, &local, claim, slot),
            Ok(None) => break,
            Err(e) => {
                ctx.fail(e);
                break;
            }
        }
    }
    local.drained().await;
    local.containers.close_all();
}

fn spawn_input<W: Workload>(
    ctx: &Arc<Ctx<W>>,
    local: &Rc<Local>,
    claim: Claim<W::Reducer>,
    slot: OwnedSemaphorePermit,
) {
    local.live.set(local.live.get() + 1);
    let guard = LiveGuard {
        ctx: ctx.clone(),
        local: local.clone(),
        finished: false,
    };
    let (ctx, local) = (ctx.clone(), local.clone());
    compio::runtime::spawn(async move {
        // The whole guard moves into the task (a field alone would be captured).
        let mut guard = guard;
        if let Err(e) = input(&ctx, &local, claim, slot).await {
            ctx.fail(e);
        }
        guard.finished = true;
    })
    .detach();
}

/// One input: its read, decode and push on the pool, then encode (pool) and write
/// (this thread's ring) whatever the push completed; the group's last closes it.
async fn input<W: Workload>(
    ctx: &Arc<Ctx<W>>,
    local: &Local,
    claim: Claim<W::Reducer>,
    slot: OwnedSemaphorePermit,
) -> Result<(), RunError> {
    let Claim {
        position,
        index,
        reservation,
        state,
    } = claim;
    let group = &ctx.job.groups[position];
    let input = &group.inputs[index];
    let cost = ctx.workload.cost(group, index);
    let path = ctx.job.input_path(input);
    let guard = ctx.io.begin(Io::Read, &ctx.stop).await?;
    let submitted = Instant::now();
    let bytes = match input.range {
        None => io::read_file(&path, cost.read).await,
        Some(r) => io::read_range(&local.containers, &input.path, &path, r).await,
    };
    drop(guard);
    drop(slot);
    let bytes = bytes?;
    ctx.recorder
        .stage_done(Stage::Read, submitted, bytes.len() as u64);

    // The retained part joins the group's pool now, before the push: the push that
    // completes a variable retires the retained bytes of all its steps, and each of
    // them must already be in the pool then (as in tokio-rayon's pipeline).
    let mut transient = reservation;
    let retained = transient.split(transient.bytes().saturating_sub(cost.read + cost.transient));
    state
        .retained
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .merge(retained);
    ctx.inputs.fetch_add(1, Ordering::Relaxed);
    ctx.input_bytes
        .fetch_add(bytes.len() as u64, Ordering::Relaxed);

    let (c, s) = (ctx.clone(), state.clone());
    let emission = ctx
        .cpu
        .run(&ctx.stop, "decode", move || {
            let group = &c.job.groups[position];
            let at_fault = || c.job.input_path(&group.inputs[index]);
            let decoded = steps::decode(
                &*c.workload,
                &*c.recorder,
                group,
                index,
                &bytes,
                cost.transient,
                &at_fault,
            )?;
            drop(bytes);
            steps::push_locked(&s.reducer, &*c.recorder, index, decoded, &at_fault)
        })
        .await??;
    ctx.recorder.stage_done(Stage::Input, submitted, 0);

    drop(transient);
    let retired = state
        .retained
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .split(emission.retired_bytes);
    if !emission.chunks.is_empty() {
        // Every chunk is encoded and written before the retired bytes go back; all
        // are awaited even if one fails, so that none is left half written.
        let results = futures::future::join_all(emission.chunks.into_iter().map(|chunk| {
            let ctx = ctx.clone();
            async move {
                let c = ctx.clone();
                let object = ctx
                    .cpu
                    .run(&ctx.stop, "encode", move || {
                        let group = &c.job.groups[position];
                        steps::encode(&*c.workload, &*c.recorder, &c.job, group, chunk)
                    })
                    .await??;
                write(&ctx, object).await
            }
        }))
        .await;
        drop(retired);
        results.into_iter().collect::<Result<(), RunError>>()?;
    } else {
        drop(retired);
    }
    if state.remaining.fetch_sub(1, Ordering::AcqRel) == 1 {
        ctx.stop.check()?;
        ctx.finish_group(&state)?;
    }
    Ok(())
}

/// Writes one object atomically on this thread's ring, holding an IO slot.
async fn write<W: Workload>(ctx: &Ctx<W>, object: OutputObject) -> Result<(), RunError> {
    ctx.stop.check()?;
    let guard = ctx.io.begin(Io::Write, &ctx.stop).await?;
    let started = Instant::now();
    let len = object.bytes.len() as u64;
    let path = ctx.job.output_path(&object.key);
    let new_dir = path
        .parent()
        .filter(|d| {
            !ctx.dirs
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .contains(*d)
        })
        .map(|d| d.to_path_buf());
    let result = async {
        if let Some(dir) = &new_dir {
            io::create_dir_all(dir).await?;
        }
        io::write_atomic(&path, object.bytes).await
    }
    .await;
    drop(guard);
    result?;
    if let Some(dir) = new_dir {
        ctx.dirs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(dir);
    }
    ctx.recorder.stage_done(Stage::Write, started, len);
    ctx.outputs.fetch_add(1, Ordering::Relaxed);
    ctx.output_bytes.fetch_add(len, Ordering::Relaxed);
    Ok(())
}
