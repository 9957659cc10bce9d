//! The backends this harness runs: one registry, built from each backend crate's
//! own declaration of its options ([`rechunk_contract::options`]).
//!
//! `Backend::run` is generic over the workload, so backends are held in an enum
//! rather than as trait objects. Adding a backend is one line in `backends!`'s
//! list below (its crate declares its name, summary and options); adding an option
//! is one field in the backend crate's options struct: scenario validation,
//! `harness list` and the build all read that declaration.

use std::collections::BTreeMap;
use std::sync::Arc;

use backend_compio::CompioRayon;
use backend_object_store::ObjectStoreBackend;
use backend_sequential::Sequential;
use backend_tokio::{SpawnBlocking, TokioRayon};
use backend_uring::{Uring, UringWorkers};
use rechunk_contract::options::{BackendOptions, Configured, OptionDoc};
use rechunk_contract::{
    Availability, Backend, Cancel, Capabilities, Job, Recorder, RunError, RunOutcome, Workload,
};
use serde_json::{Map, Value};
use stores::{S3Config, StoreUrl};

use crate::mock::Mock;
use crate::scenario::BackendSpec;

/// One backend the harness can run, as its crate declares it.
pub struct Entry {
    /// The name scenarios use.
    pub name: &'static str,
    /// One line for `harness list`.
    pub summary: &'static str,
    /// Whether `harness list` shows it (the test-only `mock` is not shown).
    pub listed: bool,
    /// Its options, in declaration order.
    pub docs: fn() -> Vec<OptionDoc>,
    /// Reads a `[[backend]]` table's own keys (the shared ones removed; every key
    /// is one of [`Entry::docs`]) into the resolved options, defaults filled in.
    pub parse: fn(&toml::Table) -> Result<BTreeMap<String, Value>, OptionFault>,
    build: fn(&BTreeMap<String, Value>) -> Result<AnyBackend, String>,
}

/// What is wrong with a backend's option in a scenario.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OptionFault {
    /// The key at fault.
    pub key: String,
    /// Whether the value (rather than the key, for a combination) is at fault.
    pub at_value: bool,
    /// What is wrong: `bridge must be one of "oneshot", "tokio-rayon"`.
    pub message: String,
}

fn parse<T: Configured>(table: &toml::Table) -> Result<BTreeMap<String, Value>, OptionFault> {
    let docs = T::Options::docs();
    // Each key alone first, so that a wrong type or choice names its key.
    for (key, value) in table {
        let one: toml::Table = [(key.clone(), value.clone())].into_iter().collect();
        if let Err(e) = T::Options::deserialize(toml::Value::Table(one)) {
            let kind = docs
                .iter()
                .find(|d| d.key == key)
                .map_or_else(|| "valid".to_string(), |d| d.kind.clone());
            // serde's own words for a wrong type or choice are replaced by what the
            // option takes; a type's own check (a store URL's) says more as it is.
            let said = e.to_string();
            let generic = ["invalid type", "invalid value", "unknown variant"]
                .iter()
                .any(|p| said.trim_start().starts_with(p));
            return Err(OptionFault {
                key: key.clone(),
                at_value: true,
                message: if generic {
                    format!("{key} must be {kind}")
                } else {
                    format!("{key}: {}", said.trim())
                },
            });
        }
    }
    let options =
        T::Options::deserialize(toml::Value::Table(table.clone())).map_err(|e| OptionFault {
            key: table.keys().next().cloned().unwrap_or_default(),
            at_value: false,
            message: e.to_string(),
        })?;
    options.check().map_err(|e| OptionFault {
        key: e.key.to_string(),
        at_value: e.in_value,
        message: e.message,
    })?;
    Ok(resolved(&options))
}

/// The options as a map with every key, defaults filled in.
fn resolved<O: BackendOptions>(options: &O) -> BTreeMap<String, Value> {
    match serde_json::to_value(options) {
        Ok(Value::Object(m)) => m.into_iter().collect(),
        _ => BTreeMap::new(),
    }
}

fn build<T: Configured>(options: &BTreeMap<String, Value>) -> Result<T, String> {
    let map: Map<String, Value> = options.clone().into_iter().collect();
    let o: T::Options = serde_json::from_value(Value::Object(map)).map_err(|e| e.to_string())?;
    o.check().map_err(|e| e.to_string())?;
    Ok(T::from_options(o))
}

use serde::Deserialize as _;

/// The enum of every backend, their registry and the dispatch, from one list.
macro_rules! backends {
    ($($variant:ident($ty:ty), listed = $listed:expr;)*) => {
        /// A configured backend.
        pub enum AnyBackend {
            $(
                #[doc = concat!("`", stringify!($ty), "`")]
                $variant($ty),
            )*
        }

        /// Every backend, in `harness list` order.
        pub const REGISTRY: &[Entry] = &[$(
            Entry {
                name: <$ty as Configured>::NAME,
                summary: <$ty as Configured>::SUMMARY,
                listed: $listed,
                docs: <<$ty as Configured>::Options as BackendOptions>::docs,
                parse: parse::<$ty>,
                build: |o| build::<$ty>(o).map(AnyBackend::$variant),
            },
        )*];

        impl AnyBackend {
            fn backend(&self) -> &dyn Dispatch {
                match self {
                    $(AnyBackend::$variant(b) => b,)*
                }
            }

            /// Runs the backend (see [`Backend::run`]).
            pub fn run<W: Workload>(
                &self,
                job: &Arc<Job>,
                workload: &Arc<W>,
                recorder: &Arc<dyn Recorder>,
                cancel: &Cancel,
            ) -> Result<RunOutcome, RunError> {
                match self {
                    $(AnyBackend::$variant(b) => b.run(job, workload, recorder, cancel),)*
                }
            }
        }
    };
}

backends! {
    Sequential(Sequential), listed = true;
    TokioRayon(TokioRayon), listed = true;
    SpawnBlocking(SpawnBlocking), listed = true;
    Uring(Uring), listed = true;
    UringWorkers(UringWorkers), listed = true;
    CompioRayon(CompioRayon), listed = true;
    ObjectStore(ObjectStoreBackend), listed = true;
    Mock(Mock), listed = false;
}

/// The object-safe part of [`Backend`], through which [`AnyBackend`] forwards
/// everything but the generic `run`.
trait Dispatch {
    fn name(&self) -> &'static str;
    fn capabilities(&self) -> Capabilities;
    fn availability(&self) -> Availability;
    fn prepare(&self, job: &Job) -> Result<Map<String, Value>, RunError>;
    fn finish(&self, job: &Job) -> Result<Map<String, Value>, RunError>;
}

impl<B: Backend> Dispatch for B {
    fn name(&self) -> &'static str {
        Backend::name(self)
    }
    fn capabilities(&self) -> Capabilities {
        Backend::capabilities(self)
    }
    fn availability(&self) -> Availability {
        Backend::availability(self)
    }
    fn prepare(&self, job: &Job) -> Result<Map<String, Value>, RunError> {
        Backend::prepare(self, job)
    }
    fn finish(&self, job: &Job) -> Result<Map<String, Value>, RunError> {
        Backend::finish(self, job)
    }
}

/// The names of the listed backends.
pub fn names() -> Vec<&'static str> {
    REGISTRY
        .iter()
        .filter(|e| e.listed)
        .map(|e| e.name)
        .collect()
}

/// The entry of a backend by name (the unlisted `mock` included).
pub fn find(name: &str) -> Option<&'static Entry> {
    REGISTRY.iter().find(|e| e.name == name)
}

impl AnyBackend {
    /// The backend a `[[backend]]` table describes; `s3`: how to reach S3, for
    /// backends that name an `s3://` store.
    pub fn build(spec: &BackendSpec, s3: &S3Config) -> anyhow::Result<AnyBackend> {
        let entry =
            find(&spec.name).ok_or_else(|| anyhow::anyhow!("unknown backend `{}`", spec.name))?;
        let mut b = (entry.build)(&spec.options)
            .map_err(|e| anyhow::anyhow!("[[backend]] {}: {e}", spec.label))?;
        if let AnyBackend::ObjectStore(o) = &mut b {
            o.s3 = s3.clone();
        }
        Ok(b)
    }

    /// A registry entry's backend with its default options, for `harness list`.
    pub fn default_of(entry: &Entry) -> AnyBackend {
        (entry.build)(&BTreeMap::new()).expect("the declared defaults build")
    }

    /// See [`Backend::name`].
    pub fn name(&self) -> &'static str {
        self.backend().name()
    }

    /// See [`Backend::capabilities`].
    pub fn capabilities(&self) -> Capabilities {
        self.backend().capabilities()
    }

    /// See [`Backend::availability`].
    pub fn availability(&self) -> Availability {
        self.backend().availability()
    }

    /// Untimed work before a repetition (loading a memory store, emptying an S3
    /// output); what it did goes into the results' details. Every backend's own
    /// `prepare` is called (the contract's default does nothing).
    pub fn prepare(&self, job: &Job) -> Result<Map<String, Value>, RunError> {
        self.backend().prepare(job)
    }

    /// Untimed work after a repetition (copying a memory output where it is
    /// verified), whether the run succeeded or not.
    pub fn finish(&self, job: &Job) -> Result<Map<String, Value>, RunError> {
        self.backend().finish(job)
    }
}

impl AnyBackend {
    /// The in-process network emulation this backend wraps its stores in, if any.
    pub fn throttle(&self) -> Option<backend_object_store::Throttle> {
        match self {
            AnyBackend::ObjectStore(b) => b.throttle,
            _ => None,
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
