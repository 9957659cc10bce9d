//! The backends this harness knows, their options, and dispatch to them.
//!
//! `Backend::run` is generic over the workload, so backends are held in an enum
//! rather than as trait objects; adding a backend adds a variant and a table entry.

use std::sync::Arc;

use backend_sequential::Sequential;
use backend_tokio::{Bridge, IoMode, SpawnBlocking, TokioRayon};
use backend_uring::Uring;
use rechunk_contract::{
    Availability, Backend, Cancel, Capabilities, Job, Recorder, RunError, RunOutcome, Workload,
};

use crate::scenario::BackendSpec;

/// The type of a backend-specific option.
pub enum OptionKind {
    Bool,
    Choice(&'static [&'static str]),
    Int { min: i64, max: i64 },
}

impl OptionKind {
    pub fn describe(&self) -> String {
        match self {
            OptionKind::Bool => "true or false".to_string(),
            OptionKind::Choice(c) => format!(
                "one of {}",
                c.iter()
                    .map(|c| format!("\"{c}\""))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            OptionKind::Int { min, max } => format!("an integer from {min} to {max}"),
        }
    }
}

/// One backend-specific option.
pub struct OptionSpec {
    pub key: &'static str,
    pub kind: OptionKind,
    pub help: &'static str,
}

/// What the harness knows of a backend before building it.
pub struct BackendInfo {
    pub name: &'static str,
    pub summary: &'static str,
    pub options: &'static [OptionSpec],
}

const IO_OPTION: OptionSpec = OptionSpec {
    key: "io",
    kind: OptionKind::Choice(&["tokio-fs", "std-blocking"]),
    help: "tokio-fs (default): tokio::fs, one blocking-pool hop per call; \
           std-blocking: std::fs inside one spawn_blocking per read or write",
};
const TOKIO_WORKERS_OPTION: OptionSpec = OptionSpec {
    key: "tokio_workers",
    kind: OptionKind::Int { min: 1, max: 64 },
    help: "Tokio worker threads, which only drive IO and hand-overs (default 1)",
};

pub const ALL: &[BackendInfo] = &[
    BackendInfo {
        name: "sequential",
        summary: "one thread, std::fs, every step in order: the oracle and the baseline",
        options: &[],
    },
    BackendInfo {
        name: "tokio-rayon",
        summary: "IO on a Tokio runtime, decode/reduce/encode on a Rayon pool of cpu_threads",
        options: &[
            OptionSpec {
                key: "bridge",
                kind: OptionKind::Choice(&["oneshot", "tokio-rayon"]),
                help: "how CPU work is handed to Rayon and awaited: rayon::spawn + \
                       tokio oneshot (default), or the tokio-rayon crate",
            },
            IO_OPTION,
            TOKIO_WORKERS_OPTION,
            OptionSpec {
                key: "cpu_in_flight",
                kind: OptionKind::Int { min: 1, max: 65536 },
                help: "CPU jobs queued or running on the pool at once (default 32 × cpu_threads)",
            },
        ],
    },
    BackendInfo {
        name: "spawn-blocking",
        summary: "IO on a Tokio runtime, CPU steps in tokio::task::spawn_blocking",
        options: &[
            IO_OPTION,
            TOKIO_WORKERS_OPTION,
            OptionSpec {
                key: "cpu_in_flight",
                kind: OptionKind::Int { min: 1, max: 65536 },
                help: "CPU steps running at once in the blocking pool (default cpu_threads, \
                       which honours the limit; more lets the pool oversubscribe the cores)",
            },
        ],
    },
    BackendInfo {
        name: "uring",
        summary: "one IO thread keeps an io_uring topped up (open/read/close, open/write/close/rename); CPU on a Rayon pool",
        options: &[
            OptionSpec {
                key: "queue_depth",
                kind: OptionKind::Int { min: 1, max: 65536 },
                help: "operations in flight in the ring (default and cap: io_in_flight)",
            },
            OptionSpec {
                key: "sqpoll",
                kind: OptionKind::Bool,
                help: "a kernel thread polls the submission queue (idle after 100 ms)",
            },
            OptionSpec {
                key: "iowq_max_workers",
                kind: OptionKind::Int { min: 1, max: 4096 },
                help: "cap on the kernel's io-wq workers for this ring (default: the kernel's)",
            },
            OptionSpec {
                key: "cpu_in_flight",
                kind: OptionKind::Int { min: 1, max: 65536 },
                help: "CPU tasks queued or running on the pool at once (default 32 × cpu_threads)",
            },
        ],
    },
];

pub fn names() -> Vec<&'static str> {
    ALL.iter().map(|b| b.name).collect()
}

pub fn find(name: &str) -> Option<&'static BackendInfo> {
    ALL.iter().find(|b| b.name == name)
}

/// A configured backend.
pub enum AnyBackend {
    Sequential(Sequential),
    TokioRayon(TokioRayon),
    SpawnBlocking(SpawnBlocking),
    Uring(Uring),
}

impl AnyBackend {
    pub fn build(spec: &BackendSpec) -> anyhow::Result<AnyBackend> {
        match spec.name.as_str() {
            "sequential" => Ok(AnyBackend::Sequential(Sequential)),
            "tokio-rayon" => {
                let mut b = TokioRayon {
                    io: io_mode(spec),
                    ..TokioRayon::default()
                };
                if let Some("tokio-rayon") = str_option(spec, "bridge") {
                    b.bridge = Bridge::TokioRayon;
                }
                if let Some(n) = int_option(spec, "tokio_workers") {
                    b.tokio_workers = n;
                }
                b.cpu_in_flight = int_option(spec, "cpu_in_flight");
                Ok(AnyBackend::TokioRayon(b))
            }
            "spawn-blocking" => {
                let mut b = SpawnBlocking {
                    io: io_mode(spec),
                    ..SpawnBlocking::default()
                };
                if let Some(n) = int_option(spec, "tokio_workers") {
                    b.tokio_workers = n;
                }
                b.cpu_in_flight = int_option(spec, "cpu_in_flight");
                Ok(AnyBackend::SpawnBlocking(b))
            }
            "uring" => Ok(AnyBackend::Uring(Uring {
                queue_depth: int_option(spec, "queue_depth").map(|n| n as u32),
                sqpoll_idle_ms: spec
                    .options
                    .get("sqpoll")
                    .and_then(|v| v.as_bool())
                    .filter(|&on| on)
                    .map(|_| 100),
                iowq_max_workers: int_option(spec, "iowq_max_workers").map(|n| n as u32),
                cpu_in_flight: int_option(spec, "cpu_in_flight"),
            })),
            other => anyhow::bail!("unknown backend `{other}`"),
        }
    }

    /// One of each, with default options, for `harness list`.
    pub fn all_default() -> Vec<AnyBackend> {
        vec![
            AnyBackend::Sequential(Sequential),
            AnyBackend::TokioRayon(TokioRayon::default()),
            AnyBackend::SpawnBlocking(SpawnBlocking::default()),
            AnyBackend::Uring(Uring::default()),
        ]
    }

    pub fn name(&self) -> &'static str {
        match self {
            AnyBackend::Sequential(b) => b.name(),
            AnyBackend::TokioRayon(b) => b.name(),
            AnyBackend::SpawnBlocking(b) => b.name(),
            AnyBackend::Uring(b) => b.name(),
        }
    }

    pub fn capabilities(&self) -> Capabilities {
        match self {
            AnyBackend::Sequential(b) => b.capabilities(),
            AnyBackend::TokioRayon(b) => b.capabilities(),
            AnyBackend::SpawnBlocking(b) => b.capabilities(),
            AnyBackend::Uring(b) => b.capabilities(),
        }
    }

    pub fn availability(&self) -> Availability {
        match self {
            AnyBackend::Sequential(b) => b.availability(),
            AnyBackend::TokioRayon(b) => b.availability(),
            AnyBackend::SpawnBlocking(b) => b.availability(),
            AnyBackend::Uring(b) => b.availability(),
        }
    }

    pub fn run<W: Workload>(
        &self,
        job: &Arc<Job>,
        workload: &Arc<W>,
        recorder: &Arc<dyn Recorder>,
        cancel: &Cancel,
    ) -> Result<RunOutcome, RunError> {
        match self {
            AnyBackend::Sequential(b) => b.run(job, workload, recorder, cancel),
            AnyBackend::TokioRayon(b) => b.run(job, workload, recorder, cancel),
            AnyBackend::SpawnBlocking(b) => b.run(job, workload, recorder, cancel),
            AnyBackend::Uring(b) => b.run(job, workload, recorder, cancel),
        }
    }
}

fn str_option<'a>(spec: &'a BackendSpec, key: &str) -> Option<&'a str> {
    spec.options.get(key).and_then(|v| v.as_str())
}

fn int_option(spec: &BackendSpec, key: &str) -> Option<usize> {
    spec.options
        .get(key)
        .and_then(|v| v.as_u64())
        .map(|n| n as usize)
}

fn io_mode(spec: &BackendSpec) -> IoMode {
    match str_option(spec, "io") {
        Some("std-blocking") => IoMode::StdInBlocking,
        _ => IoMode::TokioFs,
    }
}
