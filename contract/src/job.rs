//! What a backend is asked to do: ordered groups of inputs, the stores, the limits.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// One input: a whole file, or a byte range of one (a message in a container).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InputRef {
    /// Path relative to [`Job::input_root`].
    pub path: Box<str>,
    /// `None`: the whole file. `Some`: exactly these bytes of it.
    pub range: Option<ByteRange>,
}

/// A byte range of a file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ByteRange {
    /// The range's first byte, from the start of the file.
    pub offset: u64,
    /// Its length in bytes.
    pub len: u64,
}

impl std::fmt::Display for InputRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.range {
            None => write!(f, "{}", self.path),
            Some(r) => write!(
                f,
                "{} [bytes {}..{}]",
                self.path,
                r.offset,
                r.offset + r.len
            ),
        }
    }
}

/// A group: the inputs that reduce together (in nwp-fields, one init time).
#[derive(Clone, Debug)]
pub struct Group {
    /// The group's number, as the workload knows it.
    pub index: u32,
    /// In the order the workload prefers to receive them; backends read roughly in
    /// this order so that the reducer can emit early and memory stays bounded.
    pub inputs: Vec<InputRef>,
    /// The workload's number of `inputs[0]` within the whole group: 0, unless the
    /// job is one shard of a larger one (`harness run --shard`) and holds a
    /// contiguous run of the group's inputs. Backends pass `inputs`' own indices
    /// (0, 1, …) to the workload; the workload adds this to them.
    pub first_item: usize,
}

/// Limits every backend maps onto its own mechanism.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    /// Threads that do CPU work (decode, reduce, encode).
    pub cpu_threads: usize,
    /// IO operations (reads and writes) outstanding at once.
    pub io_in_flight: usize,
    /// Bytes held at once: read buffers, decoded items and pending outputs, as
    /// accounted by [`crate::ByteBudget`] with the workload's [`crate::ItemCost`].
    pub bytes_in_flight: u64,
}

/// The whole job.
#[derive(Clone, Debug)]
pub struct Job {
    /// The groups, in the order they are to be processed.
    pub groups: Vec<Group>,
    /// Directory the inputs' paths are relative to.
    pub input_root: PathBuf,
    /// Directory the outputs are written under; it exists and is empty.
    pub output_root: PathBuf,
    /// The limits the backend keeps to.
    pub limits: Limits,
    /// false: no read of group n+1 starts before group n's last output is written.
    pub overlap_groups: bool,
    /// `None`: the output is this job's alone (a local [`Job::output_root`] is
    /// empty; a backend writing to an object store empties its prefix first).
    /// `Some`: the job is one shard of a split one and shares its output with the
    /// other shards; these keys are its own, and a backend that prepares an object
    /// store output deletes these (and nothing else) before the run.
    pub own_outputs: Option<std::sync::Arc<[String]>>,
}

impl Job {
    /// Inputs in all groups together.
    pub fn input_count(&self) -> usize {
        self.groups.iter().map(|g| g.inputs.len()).sum()
    }

    /// Where `input` is: its path under [`Job::input_root`].
    pub fn input_path(&self, input: &InputRef) -> PathBuf {
        self.input_root.join(&*input.path)
    }

    /// Where the output object `key` goes: its path under [`Job::output_root`].
    pub fn output_path(&self, key: &str) -> PathBuf {
        self.output_root.join(key)
    }
}
