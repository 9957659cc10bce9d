//! The options of `compio-rayon`, declared once (see
//! [`rechunk_contract::options`]): scenarios, `harness list` and the backend's
//! defaults all come from these declarations.

use rechunk_contract::backend_options;
use rechunk_contract::options::Configured;

use crate::CompioRayon;

/// SQPOLL's idle time before the kernel thread sleeps, when `sqpoll = true` (as
/// the `uring` backends use it).
pub const SQPOLL_IDLE_MS: u64 = 100;

backend_options! {
    /// The options of `compio-rayon`.
    pub struct CompioRayonOptions {
        /// IO threads, each a compio runtime with its own io_uring (thread per
        /// core); they only drive IO and hand-overs.
        io_threads: usize = 1, range 1..=64;
        /// CPU jobs queued or running on the pool at once (unset: 32 × cpu_threads).
        cpu_in_flight: Option<usize> = None, range 1..=65536;
        /// A kernel thread polls each ring's submission queue (idle after 100 ms).
        sqpoll: bool = false;
    }
}

impl Configured for CompioRayon {
    type Options = CompioRayonOptions;
    const NAME: &'static str = "compio-rayon";
    const SUMMARY: &'static str = "IO on compio (completion-based, thread per core, \
        io_uring), decode/reduce/encode on a Rayon pool of cpu_threads";

    fn from_options(o: CompioRayonOptions) -> CompioRayon {
        CompioRayon {
            io_threads: o.io_threads,
            cpu_in_flight: o.cpu_in_flight,
            sqpoll_idle_ms: o.sqpoll.then_some(SQPOLL_IDLE_MS),
        }
    }
}
