//! The options of `uring` and `uring-workers`, declared once (see
//! [`rechunk_contract::options`]): scenarios, `harness list` and the backends'
//! defaults all come from these declarations.

use rechunk_contract::backend_options;
use rechunk_contract::options::Configured;

use crate::{Options, Uring, UringWorkers};

/// SQPOLL's idle time before the kernel thread sleeps, when `sqpoll = true`.
pub const SQPOLL_IDLE_MS: u32 = 100;

backend_options! {
    /// The options of `uring`.
    pub struct UringOptions {
        /// Operations in flight in the ring (unset: io_in_flight, which also caps it).
        queue_depth: Option<u32> = None, range 1..=8192;
        /// A kernel thread polls the submission queue (idle after 100 ms).
        sqpoll: bool = false;
        /// Cap on the kernel's io-wq workers per ring (unset: the kernel's).
        iowq_max_workers: Option<u32> = None, range 1..=4096;
        /// CPU tasks queued or running on the pool at once (unset: 32 × cpu_threads).
        cpu_in_flight: Option<usize> = None, range 1..=65536;
        /// Open files straight into a registered file table and use them through it.
        fixed_files: bool = false;
        /// Read into registered buffers (READ_FIXED) from a bounded pool.
        fixed_buffers: bool = false;
        /// Open inputs O_DIRECT and read whole 4 KiB blocks into aligned buffers
        /// (bypasses the page cache: warm and cold are the same).
        direct: bool = false;
        /// Submit open→read→read→close (and open→write→close→rename) as one linked
        /// chain.
        linked: bool = false, requires fixed_files;
    }
}

backend_options! {
    /// The options of `uring-workers`.
    pub struct UringWorkersOptions {
        /// Worker threads, each with its own ring (unset: cpu_threads).
        workers: Option<usize> = None, range 1..=1024;
        /// Operations in flight per ring (unset: io_in_flight / workers); all rings
        /// together never exceed io_in_flight.
        queue_depth: Option<u32> = None, range 1..=8192;
        /// A kernel thread polls the submission queue (idle after 100 ms).
        sqpoll: bool = false;
        /// Cap on the kernel's io-wq workers per ring (unset: the kernel's).
        iowq_max_workers: Option<u32> = None, range 1..=4096;
        /// Per worker, reads in flight plus read inputs waiting to be decoded, at most
        /// (unset: 2 × queue_depth): a worker claims no more reads until it or a
        /// thief decodes some, so read-but-undecoded inputs (each a buffer of the
        /// largest valid input) are at most workers × worker_queue, not whatever
        /// bytes_in_flight allows. Below queue_depth it also caps reads in flight.
        worker_queue: Option<usize> = None, range 1..=65536;
        /// Open files straight into a registered file table and use them through it.
        fixed_files: bool = false;
        /// Read into registered buffers (READ_FIXED) from a bounded pool.
        fixed_buffers: bool = false;
        /// Open inputs O_DIRECT and read whole 4 KiB blocks into aligned buffers
        /// (bypasses the page cache: warm and cold are the same).
        direct: bool = false;
        /// Submit open→read→read→close (and open→write→close→rename) as one linked
        /// chain.
        linked: bool = false, requires fixed_files;
    }
}

impl Configured for Uring {
    type Options = UringOptions;
    const NAME: &'static str = "uring";
    const SUMMARY: &'static str = "one IO thread keeps an io_uring topped up \
        (open/read/close, open/write/close/rename); CPU on a Rayon pool";

    fn from_options(o: UringOptions) -> Uring {
        Uring {
            queue_depth: o.queue_depth,
            sqpoll_idle_ms: o.sqpoll.then_some(SQPOLL_IDLE_MS),
            iowq_max_workers: o.iowq_max_workers,
            cpu_in_flight: o.cpu_in_flight,
            options: Options {
                fixed_files: o.fixed_files,
                fixed_buffers: o.fixed_buffers,
                direct: o.direct,
                linked: o.linked,
            },
        }
    }
}

impl Configured for UringWorkers {
    type Options = UringWorkersOptions;
    const NAME: &'static str = "uring-workers";
    const SUMMARY: &'static str = "light-speed-io's design: N threads, each owning an \
        io_uring and doing CPU work between reaps; work stealing, no CPU pool";

    fn from_options(o: UringWorkersOptions) -> UringWorkers {
        UringWorkers {
            workers: o.workers,
            queue_depth: o.queue_depth,
            sqpoll_idle_ms: o.sqpoll.then_some(SQPOLL_IDLE_MS),
            iowq_max_workers: o.iowq_max_workers,
            worker_queue: o.worker_queue,
            options: Options {
                fixed_files: o.fixed_files,
                fixed_buffers: o.fixed_buffers,
                direct: o.direct,
                linked: o.linked,
            },
        }
    }
}
