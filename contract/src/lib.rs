//! The group-rechunk contract: what every backend implements and every harness
//! drives.
//!
//! # Layout
//!
//! - [`workload`]: the [`Workload`] trait, the user's functions (decode, reduce per
//!   group, encode) and what may run in parallel.
//! - [`backend`]: the [`Backend`] trait (how the workload is scheduled), its
//!   [`Capabilities`], [`Cancel`], and [`RunError`], whose data variants name the file
//!   or key at fault; [`FirstError`], which keeps the error that explains a failed
//!   run, and [`backend::catch_panic`], which turns a panic into one.
//! - [`job`]: the [`Job`] a backend receives: ordered groups of [`InputRef`]s, the
//!   stores, the shared [`Limits`].
//! - [`recorder`]: the one [`Recorder`] interface every backend reports through.
//! - [`budget`]: the [`ByteBudget`] that implements `bytes_in_flight` for
//!   thread-based backends, reporting through a [`Recorder`].
//! - [`input`]: opening and reading inputs: regular files only, never more than the
//!   largest valid input.
//! - [`output`]: atomic local writes (temporary name, then rename).
//! - [`readonly`]: the read-only workload (read and count every input, nothing
//!   else), which every backend runs unchanged for its IO ceiling.
//! - [`nwp`]: the nwp-fields dataset and its Zarr v3 output, the first workload.
//!   Its formats are contracts with outside readers (docs/FORMATS.md in the repository).
//! - [`gribdir`]: the grib2-dir dataset: a directory of the user's own GRIB2 files,
//!   scanned (by the messages' keys or by file names) into a catalog, read only.
//! - [`conformance`]: public checks every backend's tests call; a backend is done when
//!   it passes them, not when it compiles.
//!
//! The dependency direction is this crate ◄── `backends/*` ◄── the harness.

pub mod backend;
pub mod budget;
pub mod ccsds;
pub mod conformance;
pub mod grib2;
pub mod gribdir;
pub mod input;
pub mod job;
pub mod nwp;
pub mod options;
pub mod output;
pub mod readonly;
pub mod recorder;
pub mod steps;
pub mod workload;

pub use backend::{Availability, Backend, Cancel, Capabilities, FirstError, RunError, RunOutcome};
pub use budget::ByteBudget;
pub use job::{ByteRange, Group, InputRef, Job, Limits};
pub use recorder::{
    CounterSnapshot, Counters, Forward, Io, NullRecorder, Recorder, RequestCount, RequestDone,
    RequestKind, RequestOp, Stage, StoreClass,
};
pub use workload::{Emission, GroupReducer, ItemCost, OutputObject, Workload, WorkloadError};
