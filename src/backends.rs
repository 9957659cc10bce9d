//! The backends this harness knows, their options, and dispatch to them.
//!
//! `Backend::run` is generic over the workload, so backends are held in an enum
//! rather than as trait objects; adding a backend adds a variant and a table entry.

use backend_sequential::Sequential;
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

pub const ALL: &[BackendInfo] = &[BackendInfo {
    name: "sequential",
    summary: "one thread, std::fs, every step in order: the oracle and the baseline",
    options: &[],
}];

pub fn names() -> Vec<&'static str> {
    ALL.iter().map(|b| b.name).collect()
}

pub fn find(name: &str) -> Option<&'static BackendInfo> {
    ALL.iter().find(|b| b.name == name)
}

/// A configured backend.
pub enum AnyBackend {
    Sequential(Sequential),
}

impl AnyBackend {
    pub fn build(spec: &BackendSpec) -> anyhow::Result<AnyBackend> {
        match spec.name.as_str() {
            "sequential" => Ok(AnyBackend::Sequential(Sequential)),
            other => anyhow::bail!("unknown backend `{other}`"),
        }
    }

    /// One of each, with default options, for `harness list`.
    pub fn all_default() -> Vec<AnyBackend> {
        vec![AnyBackend::Sequential(Sequential)]
    }

    fn inner(&self) -> &impl Backend {
        match self {
            AnyBackend::Sequential(b) => b,
        }
    }

    pub fn name(&self) -> &'static str {
        self.inner().name()
    }

    pub fn capabilities(&self) -> Capabilities {
        self.inner().capabilities()
    }

    pub fn availability(&self) -> Availability {
        self.inner().availability()
    }

    pub fn run<W: Workload>(
        &self,
        job: &Job,
        workload: &W,
        recorder: &dyn Recorder,
        cancel: &Cancel,
    ) -> Result<RunOutcome, RunError> {
        match self {
            AnyBackend::Sequential(b) => b.run(job, workload, recorder, cancel),
        }
    }
}
