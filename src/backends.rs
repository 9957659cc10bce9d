//! The backends this harness knows, their options, and dispatch to them.
//!
//! `Backend::run` is generic over the workload, so backends are held in an enum
//! rather than as trait objects; adding a backend adds a variant and a table entry.

use std::sync::Arc;

use backend_object_store::ObjectStoreBackend;
use backend_sequential::Sequential;
use backend_tokio::{Bridge, IoMode, SpawnBlocking, TokioRayon};
use backend_uring::{Options as UringOptions, Uring, UringWorkers};
use rechunk_contract::{
    Availability, Backend, Cancel, Capabilities, Job, Recorder, RunError, RunOutcome, Workload,
};
use stores::{S3Config, StoreUrl};

use crate::mock::Mock;
use crate::scenario::BackendSpec;

/// The type of a backend-specific option.
pub enum OptionKind {
    Bool,
    Choice(&'static [&'static str]),
    Int {
        min: i64,
        max: i64,
    },
    /// A store URL: `file://`, `memory://` or `s3://bucket/prefix`.
    Store,
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
            OptionKind::Store => {
                "a store URL: \"file://\", \"memory://\" or \"s3://bucket/prefix\"".to_string()
            }
        }
    }
}

/// One backend-specific option.
pub struct OptionSpec {
    pub key: &'static str,
    pub kind: OptionKind,
    pub help: &'static str,
    /// A Bool option that must also be true when this one is.
    pub requires: Option<&'static str>,
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
    requires: None,
};
const TOKIO_WORKERS_OPTION: OptionSpec = OptionSpec {
    key: "tokio_workers",
    kind: OptionKind::Int { min: 1, max: 64 },
    help: "Tokio worker threads, which only drive IO and hand-overs (default 1)",
    requires: None,
};

const QUEUE_DEPTH_OPTION: OptionSpec = OptionSpec {
    key: "queue_depth",
    kind: OptionKind::Int { min: 1, max: 8192 },
    help: "operations in flight in the ring (default and cap: io_in_flight)",
    requires: None,
};
const SQPOLL_OPTION: OptionSpec = OptionSpec {
    key: "sqpoll",
    kind: OptionKind::Bool,
    help: "a kernel thread polls the submission queue (idle after 100 ms)",
    requires: None,
};
const IOWQ_OPTION: OptionSpec = OptionSpec {
    key: "iowq_max_workers",
    kind: OptionKind::Int { min: 1, max: 4096 },
    help: "cap on the kernel's io-wq workers per ring (default: the kernel's)",
    requires: None,
};
const FIXED_FILES_OPTION: OptionSpec = OptionSpec {
    key: "fixed_files",
    kind: OptionKind::Bool,
    help: "open files straight into a registered file table and use them through it",
    requires: None,
};
const FIXED_BUFFERS_OPTION: OptionSpec = OptionSpec {
    key: "fixed_buffers",
    kind: OptionKind::Bool,
    help: "read into registered buffers (READ_FIXED) from a bounded pool",
    requires: None,
};
const DIRECT_OPTION: OptionSpec = OptionSpec {
    key: "direct",
    kind: OptionKind::Bool,
    help: "open inputs O_DIRECT and read whole 4 KiB blocks into aligned buffers \
           (bypasses the page cache: warm and cold are the same)",
    requires: None,
};
const LINKED_OPTION: OptionSpec = OptionSpec {
    key: "linked",
    kind: OptionKind::Bool,
    help: "submit open→read→read→close (and open→write→close→rename) as one linked chain",
    requires: Some("fixed_files"),
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
                requires: None,
            },
            IO_OPTION,
            TOKIO_WORKERS_OPTION,
            OptionSpec {
                key: "cpu_in_flight",
                kind: OptionKind::Int { min: 1, max: 65536 },
                help: "CPU jobs queued or running on the pool at once (default 32 × cpu_threads)",
                requires: None,
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
                requires: None,
            },
        ],
    },
    BackendInfo {
        name: "uring",
        summary: "one IO thread keeps an io_uring topped up (open/read/close, open/write/close/rename); CPU on a Rayon pool",
        options: &[
            QUEUE_DEPTH_OPTION,
            SQPOLL_OPTION,
            IOWQ_OPTION,
            OptionSpec {
                key: "cpu_in_flight",
                kind: OptionKind::Int { min: 1, max: 65536 },
                help: "CPU tasks queued or running on the pool at once (default 32 × cpu_threads)",
                requires: None,
            },
            FIXED_FILES_OPTION,
            FIXED_BUFFERS_OPTION,
            DIRECT_OPTION,
            LINKED_OPTION,
        ],
    },
    BackendInfo {
        name: "uring-workers",
        summary: "light-speed-io's design: N threads, each owning an io_uring and doing CPU work between reaps; work stealing, no CPU pool",
        options: &[
            OptionSpec {
                key: "workers",
                kind: OptionKind::Int { min: 1, max: 1024 },
                help: "worker threads, each with its own ring (default cpu_threads)",
                requires: None,
            },
            OptionSpec {
                key: "queue_depth",
                kind: OptionKind::Int { min: 1, max: 8192 },
                help: "operations in flight per ring (default io_in_flight / workers); \
                       all rings together never exceed io_in_flight",
                requires: None,
            },
            SQPOLL_OPTION,
            IOWQ_OPTION,
            FIXED_FILES_OPTION,
            FIXED_BUFFERS_OPTION,
            DIRECT_OPTION,
            LINKED_OPTION,
        ],
    },
    BackendInfo {
        name: "object-store",
        summary: "tokio-rayon's pipeline with every read and write an object_store request \
                  (get / get_range / get_ranges / put); input and output stores by URL",
        options: &[
            OptionSpec {
                key: "input",
                kind: OptionKind::Store,
                help: "where inputs are read: file:// (default: the local dataset through \
                       LocalFileSystem), memory:// (loaded before the timed region) or \
                       s3://bucket/prefix (the dataset is uploaded there if missing)",
                requires: None,
            },
            OptionSpec {
                key: "output",
                kind: OptionKind::Store,
                help: "where the Zarr output is written: file:// (default), memory:// \
                       (copied to the output directory after the timed region, for \
                       verification) or s3://bucket/prefix (emptied before, verified there)",
                requires: None,
            },
            OptionSpec {
                key: "ranges_per_request",
                kind: OptionKind::Int { min: 1, max: 65536 },
                help: "container layout: consecutive messages fetched by one get_ranges \
                       (default 1: one get_range per message)",
                requires: None,
            },
            OptionSpec {
                key: "bridge",
                kind: OptionKind::Choice(&["oneshot", "tokio-rayon"]),
                help: "how CPU work is handed to Rayon, as for tokio-rayon",
                requires: None,
            },
            TOKIO_WORKERS_OPTION,
        ],
    },
];

const fn us_option(key: &'static str, help: &'static str) -> OptionSpec {
    OptionSpec {
        key,
        kind: OptionKind::Int {
            min: 0,
            max: 60_000_000,
        },
        help,
        requires: None,
    }
}

/// The test-only `mock` backend (see [`crate::mock`]): accepted in scenarios, not
/// listed.
pub const MOCK: BackendInfo = BackendInfo {
    name: "mock",
    summary:
        "test only: sequential's work with scripted stage latencies and an optional per-input delay",
    options: &[
        us_option("read_us", "scripted read latency, µs"),
        us_option("decode_us", "scripted decode latency, µs"),
        us_option("reduce_us", "scripted reduce latency, µs"),
        us_option("encode_us", "scripted encode latency, µs"),
        us_option("write_us", "scripted write latency, µs"),
        us_option("input_us", "scripted input end-to-end latency, µs"),
        us_option(
            "delay_us",
            "busy-wait per input decoded, µs (a deliberately slowed backend)",
        ),
    ],
};

pub fn names() -> Vec<&'static str> {
    ALL.iter().map(|b| b.name).collect()
}

pub fn find(name: &str) -> Option<&'static BackendInfo> {
    ALL.iter().chain([&MOCK]).find(|b| b.name == name)
}

/// A configured backend.
pub enum AnyBackend {
    Sequential(Sequential),
    TokioRayon(TokioRayon),
    SpawnBlocking(SpawnBlocking),
    Uring(Uring),
    UringWorkers(UringWorkers),
    ObjectStore(ObjectStoreBackend),
    Mock(Mock),
}

impl AnyBackend {
    /// `s3`: how to reach S3, for backends that name an `s3://` store.
    pub fn build(spec: &BackendSpec, s3: &S3Config) -> anyhow::Result<AnyBackend> {
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
                sqpoll_idle_ms: sqpoll(spec),
                iowq_max_workers: int_option(spec, "iowq_max_workers").map(|n| n as u32),
                cpu_in_flight: int_option(spec, "cpu_in_flight"),
                options: uring_options(spec),
            })),
            "uring-workers" => Ok(AnyBackend::UringWorkers(UringWorkers {
                workers: int_option(spec, "workers"),
                queue_depth: int_option(spec, "queue_depth").map(|n| n as u32),
                sqpoll_idle_ms: sqpoll(spec),
                iowq_max_workers: int_option(spec, "iowq_max_workers").map(|n| n as u32),
                options: uring_options(spec),
            })),
            "object-store" => {
                let store = |k: &str| {
                    str_option(spec, k)
                        .map(StoreUrl::parse)
                        .transpose()
                        .map_err(anyhow::Error::msg)
                        .map(|u| u.unwrap_or(StoreUrl::File))
                };
                let mut b = ObjectStoreBackend::new(store("input")?, store("output")?);
                b.s3 = s3.clone();
                b.ranges_per_request = int_option(spec, "ranges_per_request").unwrap_or(1);
                if let Some("tokio-rayon") = str_option(spec, "bridge") {
                    b.bridge = Bridge::TokioRayon;
                }
                if let Some(n) = int_option(spec, "tokio_workers") {
                    b.tokio_workers = n;
                }
                Ok(AnyBackend::ObjectStore(b))
            }
            "mock" => {
                let us = |k: &str| int_option(spec, k).map(|n| n as u64);
                let mut latency_us = [None; 7];
                for (i, stage) in rechunk_contract::Stage::ALL.iter().enumerate() {
                    latency_us[i] = us(&format!("{}_us", stage.name()));
                }
                Ok(AnyBackend::Mock(Mock {
                    latency_us,
                    delay_us: us("delay_us").unwrap_or(0),
                }))
            }
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
            AnyBackend::UringWorkers(UringWorkers::default()),
            AnyBackend::ObjectStore(ObjectStoreBackend::new(StoreUrl::File, StoreUrl::File)),
        ]
    }

    pub fn name(&self) -> &'static str {
        match self {
            AnyBackend::Sequential(b) => b.name(),
            AnyBackend::TokioRayon(b) => b.name(),
            AnyBackend::SpawnBlocking(b) => b.name(),
            AnyBackend::Uring(b) => b.name(),
            AnyBackend::UringWorkers(b) => b.name(),
            AnyBackend::ObjectStore(b) => b.name(),
            AnyBackend::Mock(b) => b.name(),
        }
    }

    pub fn capabilities(&self) -> Capabilities {
        match self {
            AnyBackend::Sequential(b) => b.capabilities(),
            AnyBackend::TokioRayon(b) => b.capabilities(),
            AnyBackend::SpawnBlocking(b) => b.capabilities(),
            AnyBackend::Uring(b) => b.capabilities(),
            AnyBackend::UringWorkers(b) => b.capabilities(),
            AnyBackend::ObjectStore(b) => b.capabilities(),
            AnyBackend::Mock(b) => b.capabilities(),
        }
    }

    pub fn availability(&self) -> Availability {
        match self {
            AnyBackend::Sequential(b) => b.availability(),
            AnyBackend::TokioRayon(b) => b.availability(),
            AnyBackend::SpawnBlocking(b) => b.availability(),
            AnyBackend::Uring(b) => b.availability(),
            AnyBackend::UringWorkers(b) => b.availability(),
            AnyBackend::ObjectStore(b) => b.availability(),
            AnyBackend::Mock(b) => b.availability(),
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
            AnyBackend::UringWorkers(b) => b.run(job, workload, recorder, cancel),
            AnyBackend::ObjectStore(b) => b.run(job, workload, recorder, cancel),
            AnyBackend::Mock(b) => b.run(job, workload, recorder, cancel),
        }
    }
}

impl AnyBackend {
    /// Untimed work before a repetition (loading a memory store, emptying an S3
    /// output); what it did goes into the results' details.
    pub fn prepare(
        &self,
        job: &Job,
    ) -> Result<serde_json::Map<String, serde_json::Value>, RunError> {
        match self {
            AnyBackend::ObjectStore(b) => b.prepare(job),
            _ => Ok(Default::default()),
        }
    }

    /// Untimed work after a repetition (copying a memory output where it is verified).
    pub fn finish(
        &self,
        job: &Job,
    ) -> Result<serde_json::Map<String, serde_json::Value>, RunError> {
        match self {
            AnyBackend::ObjectStore(b) => b.finish(job),
            _ => Ok(Default::default()),
        }
    }

    /// The S3 stores this backend reads from and writes to, if any.
    pub fn s3_stores(&self) -> (Option<StoreUrl>, Option<StoreUrl>) {
        match self {
            AnyBackend::ObjectStore(b) => (
                b.input.is_s3().then(|| b.input.clone()),
                b.output.is_s3().then(|| b.output.clone()),
            ),
            _ => (None, None),
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

fn bool_option(spec: &BackendSpec, key: &str) -> bool {
    spec.options
        .get(key)
        .and_then(|v| v.as_bool())
        .unwrap_or(false)
}

fn sqpoll(spec: &BackendSpec) -> Option<u32> {
    bool_option(spec, "sqpoll").then_some(100)
}

fn uring_options(spec: &BackendSpec) -> UringOptions {
    UringOptions {
        fixed_files: bool_option(spec, "fixed_files"),
        fixed_buffers: bool_option(spec, "fixed_buffers"),
        direct: bool_option(spec, "direct"),
        linked: bool_option(spec, "linked"),
    }
}

fn io_mode(spec: &BackendSpec) -> IoMode {
    match str_option(spec, "io") {
        Some("std-blocking") => IoMode::StdInBlocking,
        _ => IoMode::TokioFs,
    }
}
