//! `compio-rayon`: async IO on io_uring with compio, CPU work on Rayon.
//!
//! What a Rust user who wants async code on io_uring reaches for: compio, a
//! completion-based runtime in which every file operation is an io_uring
//! submission, thread per core (a runtime, its ring and its tasks stay on one
//! thread; nothing is stolen). IO runs on `io_threads` such threads (default 1,
//! like tokio-rayon's one Tokio worker: they only drive IO and hand-overs); decode,
//! reduce and encode run on a Rayon pool of `cpu_threads`, handed over exactly as
//! tokio-rayon hands them over (`rayon::spawn` + a oneshot, at most
//! `cpu_in_flight` jobs), with tokio-rayon's fair byte budget and IO slots. So the
//! two differ in the runtime and the IO path alone: tokio-rayon makes one hop to
//! Tokio's blocking pool per `tokio::fs` call, compio-rayon one ring submission
//! per `openat`, `read`, `write`, `close`, `renameat`.
//!
//! # Layout
//!
//! - [`pipeline`]: the IO threads, how they share the job (one dispenser that
//!   reserves budget in the job's order), the tasks and their limits.
//! - [`io`]: reading inputs (regular files only, never more than the largest valid
//!   input) and writing outputs atomically, with compio's file API.
//! - [`options`]: the options, declared once.
//!
//! No silent fallback: compio is built without its `polling` driver, and a ring
//! without the opcodes the pipeline needs is refused; where io_uring cannot be set
//! up, [`probe`] says why and `run` refuses with that reason.

pub mod io;
pub mod options;
pub mod pipeline;

use std::sync::Arc;

use backend_tokio::limits::Stop;
use rechunk_contract::options::Configured;
use rechunk_contract::{
    Availability, Backend, Cancel, Capabilities, Job, Recorder, RunError, RunOutcome, Workload,
};

/// See the crate documentation.
#[derive(Clone, Copy, Debug)]
pub struct CompioRayon {
    /// IO threads, each a compio runtime with its own ring.
    pub io_threads: usize,
    /// CPU jobs queued or running on the pool at once; `None`: 32 per CPU thread,
    /// as tokio-rayon.
    pub cpu_in_flight: Option<usize>,
    /// Submission-queue polling by a kernel thread per ring; `Some(idle ms)`.
    pub sqpoll_idle_ms: Option<u64>,
}

impl Default for CompioRayon {
    /// The declared defaults ([`options::CompioRayonOptions`]).
    fn default() -> Self {
        Self::from_options(Default::default())
    }
}

/// Whether compio can set up its io_uring here, and if not, why (the kernel's
/// words, and `kernel.io_uring_disabled` when it is set).
pub fn probe() -> Availability {
    match pipeline::build_runtime(2, None) {
        Ok(_) => Availability::Available,
        Err(RunError::Unavailable(why)) => Availability::Unavailable(why),
        Err(e) => Availability::Unavailable(e.to_string()),
    }
}

impl Backend for CompioRayon {
    fn name(&self) -> &'static str {
        <Self as Configured>::NAME
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

    /// Refuses with [`RunError::Unavailable`] (the reason [`probe`] gives) where
    /// compio cannot set up io_uring.
    fn run<W: Workload>(
        &self,
        job: &Arc<Job>,
        workload: &Arc<W>,
        recorder: &Arc<dyn Recorder>,
        cancel: &Cancel,
    ) -> Result<RunOutcome, RunError> {
        workload.check_job(job).map_err(|e| RunError::Job(e.0))?;
        cancel.check()?;
        let cfg = pipeline::Config {
            io_threads: self.io_threads.max(1),
            cpu_in_flight: self
                .cpu_in_flight
                .unwrap_or(32 * job.limits.cpu_threads.max(1)),
            sqpoll_idle_ms: self.sqpoll_idle_ms,
        };
        pipeline::run(cfg, job, workload, recorder, Stop::new(cancel))
    }
}

#[cfg(test)]
mod tests;
