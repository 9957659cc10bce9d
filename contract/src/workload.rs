//! The user's functions: decode (map), reduce per group (accumulate and emit), encode (map).

use crate::job::{Group, Job};

/// Why a workload step failed. The backend adds which input or output it was.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[error("{0}")]
pub struct WorkloadError(pub String);

impl WorkloadError {
    /// An error saying `msg`.
    pub fn new(msg: impl Into<String>) -> Self {
        WorkloadError(msg.into())
    }
}

/// One object written to the output store: a chunk or a metadata document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputObject {
    /// Key relative to the output root, `/`-separated (`c/0/3/0/1/2`, `zarr.json`).
    pub key: String,
    /// The object's content.
    pub bytes: Vec<u8>,
}

/// Memory one input holds, in the units of [`crate::Limits::bytes_in_flight`].
///
/// A backend reserves `read + transient + retained` before it reads an input, releases
/// `read + transient` once the decoded item has been pushed into its group's
/// reducer, and releases the retained part when an [`Emission`] that retires it has
/// been written. Reserving everything up front means a backend never starts an input
/// it could not finish within the budget.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ItemCost {
    /// The read buffer: the input's length, or an upper bound when it is unknown.
    pub read: u64,
    /// The decoded item, from decode until it has been pushed.
    pub transient: u64,
    /// What the reducer keeps for it until its outputs are written (the item's
    /// share of the reducer's buffers and of the encoded outputs).
    pub retained: u64,
}

impl ItemCost {
    /// Everything the input holds at once: `read + transient + retained`, what a
    /// backend reserves before reading it.
    pub fn total(&self) -> u64 {
        self.read + self.transient + self.retained
    }
}

/// What a push into a reducer produced: complete output chunks, and how many
/// retained bytes (see [`ItemCost`]) are freed once those chunks are written.
#[derive(Debug)]
pub struct Emission<C> {
    /// Chunks that became complete, to encode and write.
    pub chunks: Vec<C>,
    /// Retained bytes to give back to the budget once all of `chunks` are written.
    pub retired_bytes: u64,
}

impl<C> Emission<C> {
    /// Nothing completed, nothing retired.
    pub fn none() -> Self {
        Emission {
            chunks: Vec::new(),
            retired_bytes: 0,
        }
    }
}

/// The workload: what to compute. Backends decide how to schedule it.
///
/// # Contract
///
/// - [`decode`](Workload::decode) and [`encode`](Workload::encode) are pure maps: they
///   may run in parallel on any thread, in any order, any number at once.
/// - Each group has one reducer ([`reduce_group`](Workload::reduce_group)); its
///   `push` calls must not overlap (`&mut self`), but may come in any order of
///   inputs and from any thread. Different groups' reducers are independent.
/// - Chunks may be encoded and written as soon as a push emits them; the
///   [`metadata`](Workload::metadata) objects must be written before any chunk.
/// - An `Err` from any step is final for the run: the backend stops, reports the
///   error with the input or output it concerns, and must not leave an output
///   object that looks complete for anything it did not finish.
/// - The decoded type and the chunk type are the workload's; a backend only moves them.
pub trait Workload: Send + Sync + 'static {
    /// One decoded input.
    type Decoded: Send + 'static;
    /// One output chunk before encoding.
    type Chunk: Send + 'static;
    /// The per-group accumulator.
    type Reducer: GroupReducer<Decoded = Self::Decoded, Chunk = Self::Chunk> + Send + 'static;

    /// A short name for reports.
    fn name(&self) -> &str;

    /// Objects to write before any chunk (e.g. `zarr.json`).
    fn metadata(&self) -> Vec<OutputObject>;

    /// What input `index` of `group` costs in memory (see [`ItemCost`]).
    fn cost(&self, group: &Group, index: usize) -> ItemCost;

    /// Decodes input `index` of `group`, whose bytes are `raw`.
    fn decode(
        &self,
        group: &Group,
        index: usize,
        raw: &[u8],
    ) -> Result<Self::Decoded, WorkloadError>;

    /// A fresh reducer for `group`.
    fn reduce_group(&self, group: &Group) -> Self::Reducer;

    /// Encodes one chunk into the object to write.
    fn encode(&self, chunk: Self::Chunk) -> Result<OutputObject, WorkloadError>;

    /// Checks that `job`'s limits let it finish, before anything runs (e.g. the byte
    /// budget holds the inputs the reducer must gather before it can emit).
    fn check_job(&self, job: &Job) -> Result<(), WorkloadError>;

    /// How many objects (metadata and chunks) a complete run writes.
    fn expected_outputs(&self, job: &Job) -> u64;
}

/// The accumulator of one group. See [`Workload`] for the contract.
pub trait GroupReducer {
    /// One decoded input, as [`Workload::decode`] makes it.
    type Decoded;
    /// One complete output chunk, as [`Workload::encode`] takes it.
    type Chunk;

    /// Adds input `index` of the group; returns whatever became complete.
    fn push(
        &mut self,
        index: usize,
        item: Self::Decoded,
    ) -> Result<Emission<Self::Chunk>, WorkloadError>;

    /// Called after the group's last push: an error if anything is missing.
    fn finish(self) -> Result<(), WorkloadError>;
}
