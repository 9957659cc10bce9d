//! The options of `tokio-rayon` and `spawn-blocking`, declared once (see
//! [`rechunk_contract::options`]): scenarios, `harness list` and the backends'
//! defaults all come from these declarations.

use rechunk_contract::options::Configured;
use rechunk_contract::{backend_options, choice_option};
use serde::{Deserialize, Serialize};

use crate::{Bridge, IoMode, SpawnBlocking, TokioRayon};

/// How CPU work is handed to Rayon and awaited.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BridgeChoice {
    /// `rayon::spawn` and a `tokio::sync::oneshot`.
    Oneshot,
    /// The tokio-rayon crate.
    TokioRayon,
}
choice_option!(BridgeChoice {
    Oneshot = "oneshot",
    TokioRayon = "tokio-rayon"
});

impl From<BridgeChoice> for Bridge {
    fn from(c: BridgeChoice) -> Bridge {
        match c {
            BridgeChoice::Oneshot => Bridge::Oneshot,
            BridgeChoice::TokioRayon => Bridge::TokioRayon,
        }
    }
}

/// How local files are read and written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum IoChoice {
    /// `tokio::fs`: one blocking-pool hop per call.
    TokioFs,
    /// `std::fs` inside one `spawn_blocking` per read or write.
    StdBlocking,
    /// `std::fs`, one `spawn_blocking` reading up to `read_batch` inputs.
    StdBatched,
    /// `tokio::fs` on Tokio's io_uring driver (a `--cfg tokio_unstable` build).
    TokioUring,
}
choice_option!(IoChoice {
    TokioFs = "tokio-fs",
    StdBlocking = "std-blocking",
    StdBatched = "std-batched",
    TokioUring = "tokio-uring"
});

impl IoChoice {
    /// The IO mode, with `read_batch` inputs per hop if batched.
    fn mode(self, read_batch: usize) -> IoMode {
        match self {
            IoChoice::TokioFs => IoMode::TokioFs,
            IoChoice::StdBlocking => IoMode::StdInBlocking,
            IoChoice::StdBatched => IoMode::StdBatched(read_batch),
            IoChoice::TokioUring => IoMode::TokioUring,
        }
    }
}

/// The default of `read_batch`.
///
/// A hop to the blocking pool (queue the closure, wake a thread, wake the task
/// back) costs about as much as reading one small cached file, so a batch of 16
/// makes it a small share of each read, while a batch stays short (16 reads, well
/// under a millisecond warm) and the inputs it holds reserved few: at most
/// `io_in_flight + 1` batches are reserved ahead of the consumer, within the byte
/// budget either way.
pub const READ_BATCH: usize = 16;

backend_options! {
    /// The options of `tokio-rayon`.
    pub struct TokioRayonOptions {
        /// How CPU work is handed to Rayon and awaited: rayon::spawn + tokio oneshot,
        /// or the tokio-rayon crate.
        bridge: BridgeChoice = BridgeChoice::Oneshot;
        /// tokio-fs: tokio::fs, one blocking-pool hop per call; std-blocking: std::fs
        /// inside one spawn_blocking per read or write; std-batched: like std-blocking,
        /// but one spawn_blocking reads up to read_batch inputs one after another;
        /// tokio-uring: tokio::fs on Tokio's own io_uring driver (open, read, write,
        /// rename on the ring; mkdir still a hop), in a --cfg tokio_unstable build.
        io: IoChoice = IoChoice::TokioFs;
        /// io = "std-batched" only: inputs read per blocking-pool hop, at most. A batch
        /// takes one io_in_flight slot and reserves all its bytes before it starts.
        read_batch: usize = READ_BATCH, range 1..=1024;
        /// Tokio worker threads, which only drive IO and hand-overs.
        tokio_workers: usize = 1, range 1..=64;
        /// CPU jobs queued or running on the pool at once (unset: 32 × cpu_threads).
        cpu_in_flight: Option<usize> = None, range 1..=65536;
    }
}

backend_options! {
    /// The options of `spawn-blocking`.
    pub struct SpawnBlockingOptions {
        /// tokio-fs: tokio::fs, one blocking-pool hop per call; std-blocking: std::fs
        /// inside one spawn_blocking per read or write; std-batched: like std-blocking,
        /// but one spawn_blocking reads up to read_batch inputs one after another;
        /// tokio-uring: tokio::fs on Tokio's own io_uring driver (open, read, write,
        /// rename on the ring; mkdir still a hop), in a --cfg tokio_unstable build.
        io: IoChoice = IoChoice::TokioFs;
        /// io = "std-batched" only: inputs read per blocking-pool hop, at most. A batch
        /// takes one io_in_flight slot and reserves all its bytes before it starts.
        read_batch: usize = READ_BATCH, range 1..=1024;
        /// Tokio worker threads, which only drive IO and hand-overs.
        tokio_workers: usize = 1, range 1..=64;
        /// CPU steps running at once in the blocking pool (unset: cpu_threads, which
        /// honours the limit; more lets the pool oversubscribe the cores).
        cpu_in_flight: Option<usize> = None, range 1..=65536;
    }
}

impl Configured for TokioRayon {
    type Options = TokioRayonOptions;
    const NAME: &'static str = "tokio-rayon";
    const SUMMARY: &'static str =
        "IO on a Tokio runtime, decode/reduce/encode on a Rayon pool of cpu_threads";

    fn from_options(o: TokioRayonOptions) -> TokioRayon {
        TokioRayon {
            bridge: o.bridge.into(),
            io: o.io.mode(o.read_batch),
            tokio_workers: o.tokio_workers,
            cpu_in_flight: o.cpu_in_flight,
        }
    }
}

impl Configured for SpawnBlocking {
    type Options = SpawnBlockingOptions;
    const NAME: &'static str = "spawn-blocking";
    const SUMMARY: &'static str = "IO on a Tokio runtime, CPU steps in tokio::task::spawn_blocking";

    fn from_options(o: SpawnBlockingOptions) -> SpawnBlocking {
        SpawnBlocking {
            io: o.io.mode(o.read_batch),
            tokio_workers: o.tokio_workers,
            cpu_in_flight: o.cpu_in_flight,
        }
    }
}
