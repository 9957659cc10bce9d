//! The pipeline both Tokio backends run; only the CPU executor ([`Cpu`]) differs.
//!
//! One driver task pulls groups from [`crate::read_groups`] and, for each input whose
//! read completed, spawns a task that hands decode + push to the CPU executor, then
//! encodes every chunk the push emitted (CPU) and writes it (IO). Memory is bounded
//! by the byte budget (every input reserves its whole cost before its read is
//! issued, and a variable's retained bytes are given back when its chunks are
//! written), IO by one semaphore over reads and writes, and the CPU queue by the
//! executor's slots. No task is ever aborted: on an error or a cancel every task
//! sees the stop at its next step and the run waits for all of them, so no write is
//! cut off half way and no temporary file outlives the run.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use futures::StreamExt;
use rechunk_contract::output::{io_detail, temp_path, write_atomic};
use rechunk_contract::steps;
use rechunk_contract::{
    Cancel, FirstError, GroupReducer, Io, Job, OutputObject, Recorder, RunError, RunOutcome, Stage,
    Workload,
};
use tokio::task::JoinSet;

use crate::cpu::{Bridge, Cpu};
use crate::limits::{Budget, IoLimit, Reservation, Stop};
use crate::read_groups::{GroupReads, Input, IoMode, Reader};

/// How a Tokio backend is set up.
#[derive(Clone, Debug)]
pub struct Config {
    /// Where CPU work runs and how it is handed over.
    pub bridge: Bridge,
    /// How inputs are read and outputs written.
    pub io: IoMode,
    /// Tokio worker threads (they only drive IO and hand-overs).
    pub tokio_workers: usize,
    /// CPU jobs handed over and not yet finished, at most.
    pub cpu_in_flight: usize,
}

/// Everything a task needs, shared.
struct Ctx<W: Workload> {
    job: Arc<Job>,
    workload: Arc<W>,
    recorder: Arc<dyn Recorder>,
    cfg: Config,
    stop: Stop,
    io: IoLimit,
    budget: Budget,
    cpu: Cpu,
    /// Output directories known to exist, so a chunk costs no mkdir after the first.
    dirs: Mutex<HashSet<PathBuf>>,
    inputs: AtomicU64,
    input_bytes: AtomicU64,
    outputs: AtomicU64,
    output_bytes: AtomicU64,
    /// Hops to the blocking pool made by writes.
    write_hops: AtomicU64,
}

/// One group's reducer and the retained bytes of its inputs.
struct GroupState<R> {
    reducer: Mutex<Option<R>>,
    /// Bytes the reducer keeps for the inputs pushed so far; an emission takes what
    /// it retires out of here and gives it back once its chunks are written.
    retained: Mutex<Reservation>,
    started: Instant,
}

/// Counts the runtime's threads (workers and blocking threads) alive and at most.
#[derive(Default)]
pub(crate) struct ThreadCount {
    alive: AtomicU64,
    max: AtomicU64,
}

/// Runs `job` with `workload` on a Tokio runtime built for it, set up as `cfg`
/// says: what [`rechunk_contract::Backend::run`] does for every backend built on
/// this pipeline.
pub fn run<W: Workload>(
    cfg: Config,
    job: &Arc<Job>,
    workload: &Arc<W>,
    recorder: &Arc<dyn Recorder>,
    cancel: &Cancel,
) -> Result<RunOutcome, RunError> {
    if matches!(cfg.io, IoMode::TokioUring) {
        // Refused, with the reason, where Tokio would run tokio::fs in its blocking
        // pool instead (the runtime itself is checked below as well).
        if let rechunk_contract::Availability::Unavailable(why) = crate::tokio_uring::availability()
        {
            return Err(RunError::Unavailable(why));
        }
    }
    workload.check_job(job).map_err(|e| RunError::Job(e.0))?;
    cancel.check()?;
    let threads = Arc::new(ThreadCount::default());
    let runtime = runtime(&cfg.io, cfg.tokio_workers, &threads)?;
    let ctx = Arc::new(Ctx {
        job: job.clone(),
        workload: workload.clone(),
        recorder: recorder.clone(),
        cfg: cfg.clone(),
        stop: Stop::new(cancel),
        io: IoLimit::new(job.limits.io_in_flight, recorder.clone()),
        budget: Budget::new(job.limits.bytes_in_flight, recorder.clone()),
        cpu: Cpu::new(cfg.bridge, job.limits.cpu_threads, cfg.cpu_in_flight)?,
        dirs: Mutex::new(HashSet::new()),
        inputs: AtomicU64::new(0),
        input_bytes: AtomicU64::new(0),
        outputs: AtomicU64::new(0),
        output_bytes: AtomicU64::new(0),
        write_hops: AtomicU64::new(0),
    });
    let (result, read_hops) = runtime.block_on(async {
        if matches!(cfg.io, IoMode::TokioUring) {
            // Before any other task: the blocking pool must still be unused.
            if let Err(e) = crate::tokio_uring::check_runtime(&job.input_root).await {
                return (Err(e), 0);
            }
        }
        // Turns a user cancel into a notification of every waiting task.
        let stop = ctx.stop.clone();
        let watcher = tokio::spawn(async move { stop.watch().await });
        let r = drive(ctx.clone()).await;
        watcher.abort();
        r
    });
    // Waits for the blocking pool's threads to finish what they run.
    drop(runtime);
    result?;

    let mut outcome = RunOutcome {
        inputs: ctx.inputs.load(Relaxed),
        input_bytes: ctx.input_bytes.load(Relaxed),
        outputs: ctx.outputs.load(Relaxed),
        output_bytes: ctx.output_bytes.load(Relaxed),
        details: Default::default(),
    };
    let d = &mut outcome.details;
    d.insert("io".into(), cfg.io.name().into());
    d.insert("bridge".into(), cfg.bridge.name().into());
    d.insert(
        "tokio_worker_threads".into(),
        cfg.tokio_workers.max(1).into(),
    );
    d.insert("tokio_threads_max".into(), threads.max.load(Relaxed).into());
    d.insert(
        "tokio_blocking_threads_max".into(),
        threads
            .max
            .load(Relaxed)
            .saturating_sub(cfg.tokio_workers.max(1) as u64)
            .into(),
    );
    d.insert("rayon_threads".into(), ctx.cpu.rayon_threads().into());
    d.insert("cpu_in_flight".into(), cfg.cpu_in_flight.into());
    d.insert("cpu_hand_overs".into(), ctx.cpu.hops().into());
    match &cfg.io {
        IoMode::Object(o) => d.extend(o.details()),
        _ => {
            d.insert("read_blocking_hops".into(), read_hops.into());
            d.insert(
                "write_blocking_hops".into(),
                ctx.write_hops.load(Relaxed).into(),
            );
        }
    }
    Ok(outcome)
}

/// The runtime for `io`, its threads counted in `threads`: the IO driver (and with
/// it, in a `tokio_unstable` build, Tokio's io_uring file operations) only for an
/// object store, which needs it for the network, and for [`IoMode::TokioUring`].
/// The other file modes run without it, so that their `tokio::fs` calls stay on the
/// blocking pool whatever the build.
pub(crate) fn runtime(
    io: &IoMode,
    tokio_workers: usize,
    threads: &Arc<ThreadCount>,
) -> Result<tokio::runtime::Runtime, RunError> {
    let (t1, t2) = (threads.clone(), threads.clone());
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    match io {
        IoMode::Object(_) => {
            builder.enable_io();
        }
        IoMode::TokioUring => {
            #[cfg(tokio_unstable)]
            builder.enable_io_uring();
            #[cfg(not(tokio_unstable))]
            return Err(RunError::Unavailable(crate::tokio_uring::NOT_BUILT.into()));
        }
        IoMode::TokioFs | IoMode::StdInBlocking | IoMode::StdBatched(_) => {}
    }
    builder
        .worker_threads(tokio_workers.max(1))
        .thread_name("tokio")
        .enable_time()
        .on_thread_start(move || {
            let n = t1.alive.fetch_add(1, Relaxed) + 1;
            t1.max.fetch_max(n, Relaxed);
        })
        .on_thread_stop(move || {
            t2.alive.fetch_sub(1, Relaxed);
        })
        .build()
        .map_err(|e| RunError::Internal(format!("building the Tokio runtime: {e}")))
}

/// Keeps `e` if it explains the run's failure (see [`FirstError`]) and tells every
/// task to stop.
fn fail(errors: &mut FirstError, stop: &Stop, e: RunError) {
    stop.stop();
    errors.note(e);
}

/// [`fail`] with what a joined task ended with, if it failed.
fn joined(
    errors: &mut FirstError,
    stop: &Stop,
    r: Result<Result<(), RunError>, tokio::task::JoinError>,
) {
    match r {
        Ok(Ok(())) => {}
        Ok(Err(e)) => fail(errors, stop, e),
        Err(e) => fail(
            errors,
            stop,
            RunError::Internal(format!("a task failed: {e}")),
        ),
    }
}

async fn drive<W: Workload>(ctx: Arc<Ctx<W>>) -> (Result<(), RunError>, u64) {
    let mut errors = FirstError::default();
    for object in ctx.workload.metadata() {
        if let Err(e) = write(&ctx, object).await {
            return (Err(e), 0);
        }
    }
    let w = ctx.workload.clone();
    let bound = ctx.workload.clone();
    let (mut groups, read_hops) = Reader::new(ctx.job.clone())
        .io_mode(ctx.cfg.io.clone())
        .io_limit(ctx.io.clone())
        .budget(ctx.budget.clone(), move |g, i| w.cost(g, i).total())
        // Never more of a whole file than the largest valid input.
        .max_len(move |g, i| bound.cost(g, i).read)
        .recorder(ctx.recorder.clone())
        .stop(ctx.stop.clone())
        .read_groups_counting();
    // Groups whose reads are all issued, draining their tasks; with overlap_groups
    // several at once (bounded by the byte budget their inputs hold), else one.
    let mut draining = JoinSet::new();
    while let Some(mut reads) = groups.next().await {
        if ctx.stop.is_set() {
            fail(&mut errors, &ctx.stop, RunError::Cancelled);
            break;
        }
        let state = Arc::new(GroupState {
            reducer: Mutex::new(Some(
                ctx.workload.reduce_group(&ctx.job.groups[reads.position]),
            )),
            retained: Mutex::new(ctx.budget.empty()),
            started: Instant::now(),
        });
        let mut tasks = JoinSet::new();
        if let Err(e) = feed(&ctx, &mut reads, &state, &mut tasks).await {
            fail(&mut errors, &ctx.stop, e);
        }
        draining.spawn(finish_group(ctx.clone(), state, tasks));
        if ctx.job.overlap_groups {
            while let Some(r) = draining.try_join_next() {
                joined(&mut errors, &ctx.stop, r);
            }
        } else if let Some(r) = draining.join_next().await {
            joined(&mut errors, &ctx.stop, r);
        }
        if errors.is_set() {
            break;
        }
    }
    while let Some(r) = draining.join_next().await {
        joined(&mut errors, &ctx.stop, r);
    }
    (errors.into_result(), read_hops.load(Relaxed))
}

/// Spawns a task per input of one group as its read completes, until the group's
/// reads are all done or something failed.
async fn feed<W: Workload>(
    ctx: &Arc<Ctx<W>>,
    reads: &mut GroupReads,
    state: &Arc<GroupState<W::Reducer>>,
    tasks: &mut JoinSet<Result<(), RunError>>,
) -> Result<(), RunError> {
    loop {
        tokio::select! {
            Some(done) = tasks.join_next(), if !tasks.is_empty() => {
                done.map_err(|e| RunError::Internal(format!("a task failed: {e}")))??;
            }
            next = reads.next() => match next {
                None => return Ok(()),
                Some(Err(e)) => return Err(e),
                Some(Ok(input)) => {
                    tasks.spawn(process(ctx.clone(), state.clone(), input));
                }
            },
        }
    }
}

/// Waits for a group's tasks, then closes its reducer.
async fn finish_group<W: Workload>(
    ctx: Arc<Ctx<W>>,
    state: Arc<GroupState<W::Reducer>>,
    mut tasks: JoinSet<Result<(), RunError>>,
) -> Result<(), RunError> {
    let mut errors = FirstError::default();
    while let Some(r) = tasks.join_next().await {
        joined(&mut errors, &ctx.stop, r);
    }
    errors.into_result()?;
    ctx.stop.check()?;
    let reducer = state
        .reducer
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .take();
    if let Some(reducer) = reducer {
        reducer.finish().map_err(|e| RunError::Job(e.0))?;
    }
    ctx.recorder.stage_done(Stage::Group, state.started, 0);
    Ok(())
}

/// One input: decode and push on the CPU executor, then encode and write whatever
/// the push completed.
async fn process<W: Workload>(
    ctx: Arc<Ctx<W>>,
    state: Arc<GroupState<W::Reducer>>,
    input: Input,
) -> Result<(), RunError> {
    let Input {
        position,
        index,
        bytes,
        reservation,
        submitted,
    } = input;
    let group = &ctx.job.groups[position];
    let cost = ctx.workload.cost(group, index);
    // The retained part joins the group's pool now, before the push: the push that
    // completes a variable retires the retained bytes of all its steps, and each
    // of them must already be in the pool then (their tasks may not have resumed
    // yet after their own pushes; merging after the push leaked budget, and with a
    // tight budget the run stalled).
    let mut transient = reservation.unwrap_or_else(|| ctx.budget.empty());
    let retained = transient.split(transient.bytes().saturating_sub(cost.read + cost.transient));
    state
        .retained
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .merge(retained);
    ctx.inputs.fetch_add(1, Relaxed);
    ctx.input_bytes.fetch_add(bytes.len() as u64, Relaxed);

    let (c, s) = (ctx.clone(), state.clone());
    let emission = ctx
        .cpu
        .run(&ctx.stop, "decode", move || {
            let group = &c.job.groups[position];
            let at_fault = || c.cfg.io.input_name(&c.job, &group.inputs[index]);
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
    if emission.chunks.is_empty() {
        return Ok(());
    }
    // Every chunk is encoded and written before the retired bytes go back; all are
    // awaited even if one fails, so that none is left half written.
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
    results.into_iter().collect()
}

/// Writes one object atomically (temporary name, then rename).
async fn write<W: Workload>(ctx: &Arc<Ctx<W>>, object: OutputObject) -> Result<(), RunError> {
    ctx.stop.check()?;
    let guard = ctx.io.begin(Io::Write, &ctx.stop).await?;
    let started = Instant::now();
    let len = object.bytes.len() as u64;
    // Object IO needs no local path and no directory bookkeeping (no lock per write).
    let path = match ctx.cfg.io {
        IoMode::Object(_) => PathBuf::new(),
        _ => ctx.job.output_path(&object.key),
    };
    let new_dir = path
        .parent()
        .filter(|d| {
            !ctx.dirs
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .contains(*d)
        })
        .map(|d| d.to_path_buf());
    let result = match &ctx.cfg.io {
        IoMode::Object(o) => o.write(&object.key, object.bytes).await,
        IoMode::TokioFs | IoMode::TokioUring => {
            let uring = matches!(ctx.cfg.io, IoMode::TokioUring);
            if let Some(dir) = &new_dir {
                // Tokio has no io_uring mkdir: a hop in either mode.
                ctx.write_hops.fetch_add(1, Relaxed);
                tokio::fs::create_dir_all(dir)
                    .await
                    .map_err(|e| RunError::output(dir, io_detail(&e)))?;
            }
            if !uring {
                ctx.write_hops.fetch_add(2, Relaxed);
            }
            // On io_uring: openat, write(s) and renameat on the ring, close inline.
            let tmp = temp_path(&path);
            let r = match tokio::fs::write(&tmp, object.bytes).await {
                Ok(()) => tokio::fs::rename(&tmp, &path).await,
                Err(e) => Err(e),
            };
            if r.is_err() {
                if uring {
                    ctx.write_hops.fetch_add(1, Relaxed);
                }
                let _ = tokio::fs::remove_file(&tmp).await;
            }
            r.map_err(|e| RunError::output(&path, io_detail(&e)))
        }
        IoMode::StdInBlocking | IoMode::StdBatched(_) => {
            ctx.write_hops.fetch_add(1, Relaxed);
            let p = path.clone();
            let d = new_dir.clone();
            tokio::task::spawn_blocking(move || {
                if let Some(dir) = &d {
                    std::fs::create_dir_all(dir)
                        .map_err(|e| RunError::output(dir, io_detail(&e)))?;
                }
                write_atomic(&p, &object.bytes)
            })
            .await
            .map_err(|e| RunError::output(&path, format!("the write task failed: {e}")))?
        }
    };
    drop(guard);
    result?;
    if let Some(dir) = new_dir {
        ctx.dirs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(dir);
    }
    ctx.recorder.stage_done(Stage::Write, started, len);
    ctx.outputs.fetch_add(1, Relaxed);
    ctx.output_bytes.fetch_add(len, Relaxed);
    Ok(())
}
