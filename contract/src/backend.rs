//! The group-rechunk backend trait: how a workload is scheduled.

use std::any::Any;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::job::Job;
use crate::recorder::Recorder;
use crate::workload::Workload;

/// What a backend can do, so callers and tests choose by capability and say why
/// they skipped one instead of failing obscurely.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Capabilities {
    /// Reads byte ranges of a file (the container layout).
    pub byte_ranges: bool,
    /// Needs io_uring from the kernel.
    pub needs_io_uring: bool,
    /// Reads from or writes to S3-compatible object stores.
    pub s3: bool,
    /// Uses more than one thread for the work.
    pub parallel: bool,
}

/// Whether a backend can run on this machine, and if not, why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Availability {
    /// It can run here.
    Available,
    /// It cannot run here, for this reason (the system's own words where there are
    /// some).
    Unavailable(String),
}

/// A cancellation signal, passed in (never a global): set once, seen by all clones.
#[derive(Clone, Debug, Default)]
pub struct Cancel(Arc<AtomicBool>);

impl Cancel {
    /// A signal not yet set.
    pub fn new() -> Self {
        Self::default()
    }
    /// Sets the signal, for this value and every clone; it stays set.
    pub fn cancel(&self) {
        self.0.store(true, Ordering::SeqCst);
    }
    /// Whether the signal has been set.
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
    /// `Err(RunError::Cancelled)` once cancelled: `cancel.check()?` between steps.
    pub fn check(&self) -> Result<(), RunError> {
        if self.is_cancelled() {
            Err(RunError::Cancelled)
        } else {
            Ok(())
        }
    }
}

/// What a finished run did, beyond what the recorder counted.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RunOutcome {
    /// Inputs read.
    pub inputs: u64,
    /// Bytes of the inputs read.
    pub input_bytes: u64,
    /// Objects written: metadata and chunks.
    pub outputs: u64,
    /// Bytes of the objects written.
    pub output_bytes: u64,
    /// Facts about how the backend ran (IO mechanism, thread counts, options in
    /// effect), recorded in the results as they are.
    pub details: serde_json::Map<String, serde_json::Value>,
}

/// Why a run failed. Every variant that concerns data names the file or key at fault.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// Opening, reading or decoding an input failed.
    #[error("input {path}: {detail}")]
    Input {
        /// The input: its path, or its store and key.
        path: PathBuf,
        /// What went wrong, in words.
        detail: String,
    },
    /// Encoding or writing an output failed.
    #[error("output {path}: {detail}")]
    Output {
        /// The output: its path, or its store and key.
        path: PathBuf,
        /// What went wrong, in words.
        detail: String,
    },
    /// The run stopped because it was cancelled (by the caller, or after another
    /// error of the same run; see [`FirstError`]).
    #[error("cancelled")]
    Cancelled,
    /// The job cannot be run as given: limits too small for the workload, options
    /// the backend refuses, a reducer that did not get all its inputs.
    #[error("invalid job: {0}")]
    Job(String),
    /// The backend cannot run on this machine, and why.
    #[error("backend unavailable: {0}")]
    Unavailable(String),
    /// A failure of the backend itself: a panic, a thread or runtime that could not
    /// be started, a stall.
    #[error("internal error: {0}")]
    Internal(String),
}

impl RunError {
    /// [`RunError::Input`] for the input at `path`.
    pub fn input(path: impl Into<PathBuf>, detail: impl std::fmt::Display) -> Self {
        RunError::Input {
            path: path.into(),
            detail: detail.to_string(),
        }
    }
    /// [`RunError::Output`] for the output at `path`.
    pub fn output(path: impl Into<PathBuf>, detail: impl std::fmt::Display) -> Self {
        RunError::Output {
            path: path.into(),
            detail: detail.to_string(),
        }
    }

    /// The error for a panic in `what` (`decode`, `a CPU step`), whose payload is
    /// `payload`: `internal error: {what} panicked: {message}` (see [`panic_text`]).
    pub fn panicked(what: &str, payload: Box<dyn Any + Send>) -> Self {
        RunError::Internal(format!("{what} panicked: {}", panic_text(payload)))
    }
}

/// Keeps the error that explains a failed run: the first real error, or
/// [`RunError::Cancelled`] if nothing else came.
///
/// When one task fails, a backend stops the others, and they end with `Cancelled`;
/// those may arrive before or after the failure that caused them. Every error is
/// offered with [`FirstError::note`], and the one kept is what the run returns.
///
/// ```
/// use rechunk_contract::{FirstError, RunError};
///
/// let mut first = FirstError::default();
/// first.note(RunError::Cancelled);
/// first.note(RunError::input("a.msg", "truncated"));
/// first.note(RunError::input("b.msg", "truncated"));
/// assert_eq!(first.into_result().unwrap_err().to_string(), "input a.msg: truncated");
/// ```
#[derive(Debug, Default)]
pub struct FirstError(Option<RunError>);

impl FirstError {
    /// Nothing kept yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Offers `e`: kept if nothing is kept yet, or if it is a real error and only
    /// `Cancelled` is kept so far; otherwise dropped.
    pub fn note(&mut self, e: RunError) {
        let cancelled = |e: &RunError| matches!(e, RunError::Cancelled);
        if self
            .0
            .as_ref()
            .is_none_or(|first| cancelled(first) && !cancelled(&e))
        {
            self.0 = Some(e);
        }
    }

    /// Whether an error (`Cancelled` included) has been kept: the run is stopping.
    #[inline]
    pub fn is_set(&self) -> bool {
        self.0.is_some()
    }

    /// The error kept, if any.
    pub fn get(&self) -> Option<&RunError> {
        self.0.as_ref()
    }

    /// Takes the error kept out, leaving nothing kept.
    pub fn take(&mut self) -> Option<RunError> {
        self.0.take()
    }

    /// `Err` with the error kept, else `Ok(())`.
    pub fn into_result(self) -> Result<(), RunError> {
        match self.0 {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

/// A panic's payload in words: the message of a `panic!` (a `&str` or a
/// `String`), or `(a non-string panic payload)`. Takes the payload as
/// `catch_unwind` and Tokio's `JoinError::into_panic` give it (a `&Box<dyn Any>`
/// would itself be an `Any`, and never a string).
pub fn panic_text(payload: Box<dyn Any + Send>) -> String {
    match payload.downcast::<String>() {
        Ok(s) => *s,
        Err(payload) => match payload.downcast_ref::<&str>() {
            Some(s) => s.to_string(),
            None => "(a non-string panic payload)".to_string(),
        },
    }
}

/// Runs `f`, turning a panic in it into [`RunError::panicked`]`(what, …)`, so that
/// a bug in a step fails the run with an error instead of ending a thread that
/// others wait for.
pub fn catch_panic<T>(what: &str, f: impl FnOnce() -> Result<T, RunError>) -> Result<T, RunError> {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|p| Err(RunError::panicked(what, p)))
}

/// A group-rechunk backend.
///
/// The job, workload and recorder come as `Arc`s so that backends built on tasks
/// (Tokio, object_store) can move them into `'static` tasks without unsafe lifetime
/// tricks; thread-based backends simply borrow through them.
///
/// # Contract
///
/// `run` must do all of the job's work and nothing else:
/// - read every input of every group (each exactly once), decode it, push it into its
///   group's reducer, encode every emitted chunk and write it under `job.output_root`;
///   the workload's metadata objects are written before any chunk;
/// - write each object atomically (temporary name and rename on a filesystem, one PUT
///   on an object store), so that nothing half-written looks complete;
/// - keep at most `job.limits.io_in_flight` IO operations and at most
///   `job.limits.bytes_in_flight` bytes (by the workload's [`crate::ItemCost`]) at
///   once, and use `job.limits.cpu_threads` threads for CPU work;
/// - honour `job.overlap_groups`;
/// - read inputs only if they are regular files, and never more bytes of one than
///   the workload's bound for it (`workload.cost(group, index).read`: an upper
///   bound for a whole file, exact for a byte range), so that an input path naming
///   a FIFO, a device such as `/dev/zero` or a directory fails the run with an error
///   naming it instead of blocking or reading without end. [`crate::input`] does
///   both ([`crate::input::open_input`], [`crate::input::read_input`]); the
///   conformance suite checks them;
/// - report to `recorder`: every IO's begin and end, every stage of every item, every
///   byte reservation (the conformance suite checks the limits through it);
/// - stop promptly with [`RunError::Cancelled`] once `cancel` is set;
/// - on any error, stop, remove its temporary files, and return an error that names
///   the input or output at fault.
pub trait Backend: Send + Sync {
    /// The name scenarios use.
    fn name(&self) -> &'static str;

    /// What it can do (see [`Capabilities`]).
    fn capabilities(&self) -> Capabilities;

    /// Whether it can run here (io_uring enabled, a server reachable, …).
    fn availability(&self) -> Availability {
        Availability::Available
    }

    /// Does `job` with `workload`, reporting to `recorder`, until done, failed or
    /// `cancel`led; see the trait's contract above.
    fn run<W: Workload>(
        &self,
        job: &Arc<Job>,
        workload: &Arc<W>,
        recorder: &Arc<dyn Recorder>,
        cancel: &Cancel,
    ) -> Result<RunOutcome, RunError>;

    /// Untimed setup before [`Backend::run`]: loading an in-memory store, emptying an
    /// output prefix on an object store. Returns what it did, for the results. The
    /// harness and the conformance suite call it before every run; default: nothing.
    fn prepare(&self, _job: &Job) -> Result<serde_json::Map<String, serde_json::Value>, RunError> {
        Ok(Default::default())
    }

    /// Untimed work after [`Backend::run`], called whether the run succeeded or not:
    /// copying an output from where it was written (an in-memory store) to
    /// `job.output_root`, where it is verified. Default: nothing.
    fn finish(&self, _job: &Job) -> Result<serde_json::Map<String, serde_json::Value>, RunError> {
        Ok(Default::default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_real_error_wins_over_cancelled() {
        let mut first = FirstError::new();
        assert!(!first.is_set());
        first.note(RunError::Cancelled);
        assert!(matches!(first.get(), Some(RunError::Cancelled)));
        first.note(RunError::Job("one".into()));
        first.note(RunError::Cancelled);
        first.note(RunError::Job("two".into()));
        assert_eq!(first.take().unwrap().to_string(), "invalid job: one");
        assert!(first.into_result().is_ok());
    }

    #[test]
    fn panics_become_errors_that_quote_them() {
        let e = catch_panic("decode", || -> Result<(), RunError> {
            panic!("boom {}", 1)
        });
        assert_eq!(
            e.unwrap_err().to_string(),
            "internal error: decode panicked: boom 1"
        );
        let e = catch_panic("encode", || -> Result<(), RunError> { panic!("static") });
        assert_eq!(
            e.unwrap_err().to_string(),
            "internal error: encode panicked: static"
        );
        let p = catch_unwind(|| std::panic::panic_any(7u8)).unwrap_err();
        assert_eq!(panic_text(p), "(a non-string panic payload)");
        assert_eq!(catch_panic("x", || Ok(3)).unwrap(), 3);
    }
}
