//! The Tokio backends: the two designs a Rust user would write for a job that is
//! IO and CPU at once.
//!
//! - [`TokioRayon`] (`tokio-rayon`): a Tokio runtime drives all IO; every CPU step
//!   (decode, reduce, encode) runs on a Rayon pool of `cpu_threads`, handed over by
//!   `rayon::spawn` + a oneshot channel, or by the tokio-rayon crate
//!   (`bridge = "tokio-rayon"`), so that the two hand-overs can be compared.
//! - [`SpawnBlocking`] (`spawn-blocking`): the same pipeline with the CPU steps in
//!   `tokio::task::spawn_blocking`, the design Tokio's docs advise against for CPU
//!   work, which is exactly why it is measured.
//!
//! Both share one pipeline ([`pipeline`]) built on the public [`read_groups`] API,
//! so that they differ in nothing but where the CPU work runs; one crate holds both
//! for that reason.
//!
//! # Layout
//!
//! - [`read_groups`]: a job's inputs as a Stream of per-group Streams (async-stream),
//!   yielding inputs as their reads complete; usable on its own.
//! - [`limits`]: the byte budget and the IO limit as fair semaphores, and the stop
//!   signal every task watches.
//! - [`cpu`]: the three hand-overs from async code to CPU work.
//! - [`pipeline`]: read → decode + push → encode → write, with bounded memory, IO and
//!   CPU queues, errors that name the file, and prompt, clean cancellation.

pub mod cpu;
pub mod limits;
pub mod pipeline;
pub mod read_groups;

use std::sync::Arc;

use rechunk_contract::{
    Backend, Cancel, Capabilities, Job, Recorder, RunError, RunOutcome, Workload,
};

pub use cpu::Bridge;
pub use pipeline::Config;
pub use read_groups::IoMode;

const CAPABILITIES: Capabilities = Capabilities {
    byte_ranges: true,
    needs_io_uring: false,
    s3: false,
    parallel: true,
};

/// IO on Tokio, CPU on Rayon. See the crate documentation.
#[derive(Clone, Copy, Debug)]
pub struct TokioRayon {
    pub bridge: Bridge,
    pub io: IoMode,
    pub tokio_workers: usize,
    /// CPU jobs queued or running on the pool at once; `None`: twice `cpu_threads`,
    /// enough that a thread finishing a job finds the next one waiting.
    pub cpu_in_flight: Option<usize>,
}

impl Default for TokioRayon {
    fn default() -> Self {
        TokioRayon {
            bridge: Bridge::Oneshot,
            io: IoMode::TokioFs,
            tokio_workers: 1,
            cpu_in_flight: None,
        }
    }
}

impl Backend for TokioRayon {
    fn name(&self) -> &'static str {
        "tokio-rayon"
    }

    fn capabilities(&self) -> Capabilities {
        CAPABILITIES
    }

    fn run<W: Workload>(
        &self,
        job: &Arc<Job>,
        workload: &Arc<W>,
        recorder: &Arc<dyn Recorder>,
        cancel: &Cancel,
    ) -> Result<RunOutcome, RunError> {
        let cfg = Config {
            bridge: self.bridge,
            io: self.io,
            tokio_workers: self.tokio_workers,
            cpu_in_flight: self
                .cpu_in_flight
                .unwrap_or(2 * job.limits.cpu_threads.max(1)),
        };
        pipeline::run(cfg, job, workload, recorder, cancel)
    }
}

/// IO on Tokio, CPU in Tokio's blocking pool. See the crate documentation.
#[derive(Clone, Copy, Debug)]
pub struct SpawnBlocking {
    pub io: IoMode,
    pub tokio_workers: usize,
    /// CPU steps running at once; `None`: `cpu_threads`, so that the limit holds
    /// although the blocking pool itself would grow to hundreds of threads.
    pub cpu_in_flight: Option<usize>,
}

impl Default for SpawnBlocking {
    fn default() -> Self {
        SpawnBlocking {
            io: IoMode::TokioFs,
            tokio_workers: 1,
            cpu_in_flight: None,
        }
    }
}

impl Backend for SpawnBlocking {
    fn name(&self) -> &'static str {
        "spawn-blocking"
    }

    fn capabilities(&self) -> Capabilities {
        CAPABILITIES
    }

    fn run<W: Workload>(
        &self,
        job: &Arc<Job>,
        workload: &Arc<W>,
        recorder: &Arc<dyn Recorder>,
        cancel: &Cancel,
    ) -> Result<RunOutcome, RunError> {
        let cfg = Config {
            bridge: Bridge::SpawnBlocking,
            io: self.io,
            tokio_workers: self.tokio_workers,
            cpu_in_flight: self.cpu_in_flight.unwrap_or(job.limits.cpu_threads.max(1)),
        };
        pipeline::run(cfg, job, workload, recorder, cancel)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rechunk_contract::conformance;
    use rechunk_contract::nwp::Layout;

    /// Runs the whole conformance suite on one configured backend.
    fn suite(backend: &impl Backend, what: &str) {
        let skipped = conformance::check_all(backend);
        assert!(skipped.is_empty(), "{what}: skipped {skipped:?}");
    }

    #[test]
    fn tokio_rayon_oneshot_tokio_fs_passes_conformance() {
        suite(&TokioRayon::default(), "tokio-rayon oneshot tokio::fs");
    }

    #[test]
    fn tokio_rayon_crate_bridge_std_io_passes_conformance() {
        suite(
            &TokioRayon {
                bridge: Bridge::TokioRayon,
                io: IoMode::StdInBlocking,
                tokio_workers: 2,
                cpu_in_flight: Some(1),
            },
            "tokio-rayon crate bridge, std::fs in spawn_blocking",
        );
    }

    #[test]
    fn tokio_rayon_crate_bridge_tokio_fs_passes_conformance() {
        suite(
            &TokioRayon {
                bridge: Bridge::TokioRayon,
                ..TokioRayon::default()
            },
            "tokio-rayon crate bridge, tokio::fs",
        );
    }

    #[test]
    fn spawn_blocking_tokio_fs_passes_conformance() {
        suite(&SpawnBlocking::default(), "spawn-blocking tokio::fs");
    }

    #[test]
    fn spawn_blocking_std_io_passes_conformance() {
        suite(
            &SpawnBlocking {
                io: IoMode::StdInBlocking,
                ..SpawnBlocking::default()
            },
            "spawn-blocking std::fs",
        );
    }

    #[test]
    fn overlapping_groups_give_the_same_output() {
        for layout in [Layout::Files, Layout::Container] {
            conformance::check_overlap_groups(&TokioRayon::default(), layout).unwrap();
            conformance::check_overlap_groups(&SpawnBlocking::default(), layout).unwrap();
        }
    }
}
