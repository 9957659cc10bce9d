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
pub mod options;
pub mod pipeline;
pub mod read_groups;

use std::sync::Arc;

use rechunk_contract::options::Configured;
use rechunk_contract::{
    Backend, Cancel, Capabilities, Job, Recorder, RunError, RunOutcome, Workload,
};

pub use cpu::Bridge;
pub use pipeline::Config;
pub use read_groups::{IoMode, ObjectIo};

const CAPABILITIES: Capabilities = Capabilities {
    byte_ranges: true,
    needs_io_uring: false,
    s3: false,
    parallel: true,
};

/// IO on Tokio, CPU on Rayon. See the crate documentation.
#[derive(Clone, Debug)]
pub struct TokioRayon {
    /// How CPU work is handed to the Rayon pool.
    pub bridge: Bridge,
    /// How inputs are read and outputs written.
    pub io: IoMode,
    /// Tokio worker threads (they only drive IO and hand-overs).
    pub tokio_workers: usize,
    /// CPU jobs queued or running on the pool at once; `None`: 32 per CPU thread.
    /// A short queue lets Rayon's threads run dry and sleep between hand-overs, and
    /// every wake-up costs a futex and a context switch: on `quick` (2 cores, warm)
    /// 2 per thread gave 1.24 × sequential, 8 per thread 1.40 ×, 32 per thread 1.46 ×.
    /// The queue holds only inputs whose bytes the budget already reserved.
    pub cpu_in_flight: Option<usize>,
}

impl Default for TokioRayon {
    /// The declared defaults ([`options::TokioRayonOptions`]).
    fn default() -> Self {
        Self::from_options(Default::default())
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
            io: self.io.clone(),
            tokio_workers: self.tokio_workers,
            cpu_in_flight: self
                .cpu_in_flight
                .unwrap_or(32 * job.limits.cpu_threads.max(1)),
        };
        pipeline::run(cfg, job, workload, recorder, cancel)
    }
}

/// IO on Tokio, CPU in Tokio's blocking pool. See the crate documentation.
#[derive(Clone, Debug)]
pub struct SpawnBlocking {
    /// How inputs are read and outputs written.
    pub io: IoMode,
    /// Tokio worker threads (they only drive IO and hand-overs).
    pub tokio_workers: usize,
    /// CPU steps running at once; `None`: `cpu_threads`, so that the limit holds
    /// although the blocking pool itself would grow to hundreds of threads.
    pub cpu_in_flight: Option<usize>,
}

impl Default for SpawnBlocking {
    /// The declared defaults ([`options::SpawnBlockingOptions`]).
    fn default() -> Self {
        Self::from_options(Default::default())
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
            io: self.io.clone(),
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
    fn tokio_rayon_std_batched_passes_conformance() {
        suite(
            &TokioRayon {
                io: IoMode::StdBatched(options::READ_BATCH),
                ..TokioRayon::default()
            },
            "tokio-rayon std::fs batched",
        );
    }

    #[test]
    fn spawn_blocking_std_batched_passes_conformance() {
        // Batches of 3 straddle the variables (6 steps in the limits check), and
        // 2 Tokio workers poll the stream from either thread.
        suite(
            &SpawnBlocking {
                io: IoMode::StdBatched(3),
                tokio_workers: 2,
                ..SpawnBlocking::default()
            },
            "spawn-blocking std::fs batched by 3",
        );
    }

    #[test]
    fn std_batched_reads_a_batch_per_hop() {
        use rechunk_contract::conformance::Fixture;
        use rechunk_contract::nwp::Codec;
        // 2 groups of 5 × 6 = 30 inputs: 7 batches of 4 and one of 2 each, when
        // the budget never makes a batch wait.
        let fx = Fixture::with_shape(Layout::Files, Codec::Zstd, 2, 5, 6);
        let job = Arc::new(fx.job(Fixture::roomy_limits()));
        let counters = Arc::new(rechunk_contract::Counters::new());
        let recorder: Arc<dyn Recorder> = counters.clone();
        let b = TokioRayon {
            io: IoMode::StdBatched(4),
            ..TokioRayon::default()
        };
        let out = b
            .run(&job, &Arc::new(fx.workload()), &recorder, &Cancel::new())
            .unwrap();
        assert_eq!(out.inputs, 60);
        assert_eq!(out.details["read_blocking_hops"], 16, "{:?}", out.details);
        assert_eq!(counters.snapshot().reads, 60, "every file is its own read");
        assert!(
            out.details["io"]
                .as_str()
                .unwrap()
                .contains("up to 4 reads per hop"),
            "{:?}",
            out.details
        );
    }

    /// The NWP workload, but decoding input 5 of group 1 panics.
    struct Panicky(rechunk_contract::nwp::workload::NwpWorkload);

    impl Workload for Panicky {
        type Decoded = Vec<f32>;
        type Chunk = rechunk_contract::nwp::workload::NwpChunk;
        type Reducer = rechunk_contract::nwp::workload::NwpReducer;
        fn name(&self) -> &str {
            "panicky"
        }
        fn metadata(&self) -> Vec<rechunk_contract::OutputObject> {
            self.0.metadata()
        }
        fn cost(&self, g: &rechunk_contract::Group, i: usize) -> rechunk_contract::ItemCost {
            self.0.cost(g, i)
        }
        fn decode(
            &self,
            g: &rechunk_contract::Group,
            i: usize,
            raw: &[u8],
        ) -> Result<Vec<f32>, rechunk_contract::WorkloadError> {
            if g.index == 1 && i == 5 {
                panic!("a bug in decode");
            }
            self.0.decode(g, i, raw)
        }
        fn reduce_group(&self, g: &rechunk_contract::Group) -> Self::Reducer {
            self.0.reduce_group(g)
        }
        fn encode(
            &self,
            c: Self::Chunk,
        ) -> Result<rechunk_contract::OutputObject, rechunk_contract::WorkloadError> {
            self.0.encode(c)
        }
        fn check_job(&self, job: &Job) -> Result<(), rechunk_contract::WorkloadError> {
            self.0.check_job(job)
        }
        fn expected_outputs(&self, job: &Job) -> u64 {
            self.0.expected_outputs(job)
        }
    }

    #[test]
    fn a_panic_in_cpu_work_fails_the_run_with_an_error() {
        use rechunk_contract::conformance::Fixture;
        use rechunk_contract::nwp::Codec;
        let fx = Fixture::tiny(Layout::Files, Codec::Zstd);
        let job = Arc::new(fx.job(Fixture::roomy_limits()));
        let workload = Arc::new(Panicky(fx.workload()));
        let recorder: Arc<dyn Recorder> = Arc::new(rechunk_contract::Counters::new());
        let backends: [&dyn Fn() -> Result<RunOutcome, RunError>; 3] = [
            &|| TokioRayon::default().run(&job, &workload, &recorder, &Cancel::new()),
            &|| {
                TokioRayon {
                    bridge: Bridge::TokioRayon,
                    ..TokioRayon::default()
                }
                .run(&job, &workload, &recorder, &Cancel::new())
            },
            &|| SpawnBlocking::default().run(&job, &workload, &recorder, &Cancel::new()),
        ];
        for run in backends {
            let err = run().unwrap_err();
            assert!(
                err.to_string().contains("decode panicked: a bug in decode"),
                "{err}"
            );
        }
    }

    #[test]
    fn overlapping_groups_give_the_same_output() {
        for layout in [Layout::Files, Layout::Container] {
            conformance::check_overlap_groups(&TokioRayon::default(), layout).unwrap();
            conformance::check_overlap_groups(&SpawnBlocking::default(), layout).unwrap();
        }
    }
}
