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
//! - [`tokio_uring`]: `io = "tokio-uring"`, `tokio::fs` on Tokio's own io_uring
//!   driver, and the checks that refuse it where Tokio would not use io_uring.
//!
//! # IO modes and `tokio_unstable`
//!
//! Files are read and written ([`IoMode`]) with `tokio::fs` (`tokio-fs`, one
//! blocking-pool hop per call), `std::fs` in `spawn_blocking` (`std-blocking`, and
//! `std-batched`, several reads per hop) or `tokio::fs` on io_uring
//! (`tokio-uring`). The last needs a build with `--cfg tokio_unstable` (the
//! workspace's `.cargo/config.toml`) and tokio's `io-uring` feature (this crate's
//! Cargo.toml); both are global to the build, so every Tokio runtime in the
//! process can put `tokio::fs` on io_uring once its IO driver is enabled. Only the
//! `tokio-uring` runtime enables it for files: the other file modes build theirs
//! without the IO driver, so their `tokio::fs` calls hop to the blocking pool as in
//! any build, and the object-store backend's runtime (IO driver on, for the
//! network) does no `tokio::fs` call (object_store's `LocalFileSystem` runs
//! `std::fs` in `spawn_blocking`). A build without the cfg refuses `tokio-uring`
//! with the reason ([`tokio_uring::NOT_BUILT`]) and is otherwise the same.

pub mod cpu;
pub mod limits;
pub mod options;
pub mod pipeline;
pub mod read_groups;
pub mod tokio_uring;

use std::sync::Arc;

use rechunk_contract::options::Configured;
use rechunk_contract::{
    Availability, Backend, Cancel, Capabilities, Job, Recorder, RunError, RunOutcome, Workload,
};

pub use cpu::Bridge;
pub use pipeline::Config;
pub use read_groups::{IoMode, ObjectIo};

/// What both backends can do with `io`: io_uring is needed for
/// [`IoMode::TokioUring`] alone.
fn capabilities(io: &IoMode) -> Capabilities {
    Capabilities {
        byte_ranges: true,
        needs_io_uring: matches!(io, IoMode::TokioUring),
        s3: false,
        parallel: true,
    }
}

/// Whether both backends can run here with `io`: always, but for
/// [`IoMode::TokioUring`] ([`tokio_uring::availability`]).
fn availability(io: &IoMode) -> Availability {
    match io {
        IoMode::TokioUring => tokio_uring::availability(),
        _ => Availability::Available,
    }
}

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
        capabilities(&self.io)
    }

    fn availability(&self) -> Availability {
        availability(&self.io)
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
        capabilities(&self.io)
    }

    fn availability(&self) -> Availability {
        availability(&self.io)
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

    /// Whether `io = "tokio-uring"` can run here; if not, the test is skipped (and
    /// says why), unless HARNESS_REQUIRE_IO_URING says io_uring must work.
    fn tokio_uring_available() -> bool {
        match tokio_uring::availability() {
            Availability::Available => true,
            Availability::Unavailable(why) => {
                // CI sets HARNESS_REQUIRE_IO_URING where io_uring must work.
                assert!(
                    std::env::var_os("HARNESS_REQUIRE_IO_URING").is_none(),
                    "io_uring is required here but unavailable: {why}"
                );
                eprintln!("skipped: tokio-uring unavailable: {why}");
                false
            }
        }
    }

    #[test]
    fn tokio_rayon_tokio_uring_passes_conformance() {
        if !tokio_uring_available() {
            return;
        }
        suite(
            &TokioRayon {
                io: IoMode::TokioUring,
                ..TokioRayon::default()
            },
            "tokio-rayon tokio::fs on io_uring",
        );
    }

    #[test]
    fn spawn_blocking_tokio_uring_passes_conformance() {
        if !tokio_uring_available() {
            return;
        }
        // 2 Tokio workers: the ring's completions reach tasks on either thread.
        suite(
            &SpawnBlocking {
                io: IoMode::TokioUring,
                tokio_workers: 2,
                ..SpawnBlocking::default()
            },
            "spawn-blocking tokio::fs on io_uring",
        );
    }

    /// Whether this process has an io_uring open (a descriptor of Tokio's ring).
    #[cfg(tokio_unstable)]
    fn has_a_ring() -> bool {
        std::fs::read_dir("/proc/self/fd").unwrap().any(|e| {
            std::fs::read_link(e.unwrap().path())
                .is_ok_and(|l| l.to_string_lossy().contains("io_uring"))
        })
    }

    /// On the runtime the pipeline builds for tokio-uring, reading every input of a
    /// job (whole files and byte ranges) and a write and a rename start no thread
    /// of the blocking pool: they went through the ring, which is open.
    #[cfg(tokio_unstable)]
    #[test]
    fn tokio_uring_reads_and_writes_without_the_blocking_pool() {
        use futures::StreamExt;
        use rechunk_contract::conformance::Fixture;
        use rechunk_contract::nwp::Codec;
        if !tokio_uring_available() {
            return;
        }
        for layout in [Layout::Files, Layout::Container] {
            let fx = Fixture::with_shape(layout, Codec::Zstd, 2, 5, 6);
            let job = Arc::new(fx.job(Fixture::roomy_limits()));
            let threads = Default::default();
            let rt = pipeline::runtime(&IoMode::TokioUring, 1, &threads).unwrap();
            let (read, blocking, ring) = rt.block_on(async {
                let mut groups = read_groups::Reader::new(job.clone())
                    .io_mode(IoMode::TokioUring)
                    .read_groups();
                let mut read = 0;
                while let Some(mut group) = groups.next().await {
                    while let Some(input) = group.next().await {
                        assert!(!input.unwrap().bytes.is_empty());
                        read += 1;
                    }
                }
                let (tmp, to) = (fx.output_root.join(".x.tmp"), fx.output_root.join("x"));
                tokio::fs::write(&tmp, b"chunk").await.unwrap();
                tokio::fs::rename(&tmp, &to).await.unwrap();
                assert_eq!(std::fs::read(&to).unwrap(), b"chunk");
                let m = tokio::runtime::Handle::current().metrics();
                (read, m.num_blocking_threads(), has_a_ring())
            });
            assert_eq!(read, 60, "{layout:?}");
            assert_eq!(blocking, 0, "{layout:?}: blocking-pool threads started");
            assert!(ring, "{layout:?}: no io_uring descriptor in this process");
        }
    }

    /// Where Tokio runs tokio::fs in its blocking pool rather than on a ring (here:
    /// a runtime without the IO driver, which takes the same fallback as a failed
    /// io_uring probe), the run's check refuses the mode.
    #[cfg(tokio_unstable)]
    #[test]
    fn a_fallback_to_the_blocking_pool_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let threads = Default::default();
        let rt = pipeline::runtime(&IoMode::TokioFs, 1, &threads).unwrap();
        let err = rt
            .block_on(tokio_uring::check_runtime(dir.path()))
            .unwrap_err();
        assert!(
            matches!(&err, RunError::Unavailable(w) if w.contains("blocking pool")),
            "{err}"
        );
    }

    /// tokio_unstable and tokio's io-uring feature are global to the build: on the
    /// runtimes the other file modes run on (built without the IO driver), a
    /// tokio::fs write, rename, open and read still start blocking-pool threads,
    /// as without them.
    #[cfg(tokio_unstable)]
    #[test]
    fn the_other_file_modes_keep_tokio_fs_on_the_blocking_pool() {
        use tokio::io::AsyncReadExt;
        let dir = tempfile::tempdir().unwrap();
        for io in [
            IoMode::TokioFs,
            IoMode::StdInBlocking,
            IoMode::StdBatched(4),
        ] {
            let threads = Default::default();
            let rt = pipeline::runtime(&io, 1, &threads).unwrap();
            let blocking = rt.block_on(async {
                let (tmp, to) = (dir.path().join(".x.tmp"), dir.path().join("x"));
                tokio::fs::write(&tmp, b"chunk").await.unwrap();
                tokio::fs::rename(&tmp, &to).await.unwrap();
                let mut f = tokio::fs::File::open(&to).await.unwrap();
                let mut back = Vec::new();
                f.read_to_end(&mut back).await.unwrap();
                assert_eq!(back, b"chunk");
                tokio::runtime::Handle::current()
                    .metrics()
                    .num_blocking_threads()
            });
            assert!(
                blocking > 0,
                "{io:?}: tokio::fs ran without the blocking pool"
            );
        }
    }

    /// A whole run per file mode: what the results record. The reads of tokio-fs
    /// and std-blocking are one blocking-pool hop each, as before; tokio-uring's
    /// none, and its blocking-pool threads serve only its mkdirs.
    #[test]
    fn each_file_mode_records_its_blocking_hops() {
        use rechunk_contract::conformance::Fixture;
        use rechunk_contract::nwp::Codec;
        let mut modes = vec![IoMode::TokioFs, IoMode::StdInBlocking];
        if tokio_uring_available() {
            modes.push(IoMode::TokioUring);
        }
        for io in modes {
            let fx = Fixture::with_shape(Layout::Files, Codec::Zstd, 2, 5, 6);
            let job = Arc::new(fx.job(Fixture::roomy_limits()));
            let recorder: Arc<dyn Recorder> = Arc::new(rechunk_contract::Counters::new());
            let b = TokioRayon {
                io: io.clone(),
                ..TokioRayon::default()
            };
            let out = b
                .run(&job, &Arc::new(fx.workload()), &recorder, &Cancel::new())
                .unwrap();
            let d = &out.details;
            assert_eq!(out.inputs, 60);
            assert_eq!(d["io"], io.name(), "{d:?}");
            let read_hops = d["read_blocking_hops"].as_u64().unwrap();
            let write_hops = d["write_blocking_hops"].as_u64().unwrap();
            let threads = d["tokio_blocking_threads_max"].as_u64().unwrap();
            match io {
                IoMode::TokioUring => {
                    assert_eq!(read_hops, 0, "{d:?}");
                    // create_dir_all of a new output directory, nothing else.
                    assert!(write_hops > 0 && write_hops <= out.outputs, "{d:?}");
                    assert!(threads <= write_hops, "{d:?}");
                }
                _ => {
                    assert_eq!(read_hops, 60, "{d:?}");
                    assert!(write_hops >= out.outputs, "{d:?}");
                    assert!(threads > 0, "{d:?}");
                }
            }
        }
    }

    /// A build without `--cfg tokio_unstable` (RUSTFLAGS set, say) refuses the mode
    /// with the reason, in `harness list` and in a run, and runs nothing.
    #[cfg(not(tokio_unstable))]
    #[test]
    fn tokio_uring_is_refused_without_tokio_unstable() {
        use rechunk_contract::conformance::Fixture;
        use rechunk_contract::nwp::Codec;
        let b = TokioRayon {
            io: IoMode::TokioUring,
            ..TokioRayon::default()
        };
        assert!(b.capabilities().needs_io_uring);
        let Availability::Unavailable(why) = b.availability() else {
            panic!("available without tokio_unstable");
        };
        assert!(why.contains("--cfg tokio_unstable"), "{why}");
        let fx = Fixture::tiny(Layout::Files, Codec::Zstd);
        let job = Arc::new(fx.job(Fixture::roomy_limits()));
        let recorder: Arc<dyn Recorder> = Arc::new(rechunk_contract::Counters::new());
        let err = b
            .run(&job, &Arc::new(fx.workload()), &recorder, &Cancel::new())
            .unwrap_err();
        assert!(
            matches!(&err, RunError::Unavailable(w) if w.contains("tokio_unstable")),
            "{err}"
        );
        assert!(fx.output_files().is_empty(), "it wrote something");
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
