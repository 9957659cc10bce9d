//! The CPU steps every backend runs for an input and for a chunk, timed into the
//! recorder, with the errors every backend gives: a decode or push failure names
//! the input, an encode failure names the output root and the group. One place,
//! so the backends differ only in where and when they run these steps.
//!
//! ```
//! # use std::sync::Mutex;
//! # use rechunk_contract::conformance::Fixture;
//! # use rechunk_contract::nwp::{Codec, Layout};
//! # use rechunk_contract::{steps, Counters, Workload};
//! let fx = Fixture::with_shape(Layout::Files, Codec::Zstd, 1, 1, 3);
//! let job = fx.job(Fixture::roomy_limits());
//! let workload = fx.workload();
//! let recorder = Counters::new();
//! let group = &job.groups[0];
//! let reducer = Mutex::new(Some(workload.reduce_group(group)));
//! let mut written = 0;
//! for index in 0..group.inputs.len() {
//!     let path = job.input_path(&group.inputs[index]);
//!     let bytes = std::fs::read(&path)?;
//!     let at_fault = || path.clone();
//!     let transient = workload.cost(group, index).transient;
//!     let decoded =
//!         steps::decode(&workload, &recorder, group, index, &bytes, transient, &at_fault)?;
//!     let emission = steps::push_locked(&reducer, &recorder, index, decoded, &at_fault)?;
//!     for chunk in emission.chunks {
//!         steps::encode(&workload, &recorder, &job, group, chunk)?;
//!         written += 1;
//!     }
//! }
//! assert!(written > 0);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Instant;

use crate::{
    Emission, Group, GroupReducer, Job, OutputObject, Recorder, RunError, Stage, Workload,
};

/// Decodes input `index` of `group` from `bytes` (its [`Stage::Decode`] timed,
/// recorded with `transient`, the input's [`crate::ItemCost::transient`], which the
/// caller has already looked up); a failure names `at_fault()`, the input's file
/// or key.
pub fn decode<W: Workload>(
    workload: &W,
    recorder: &dyn Recorder,
    group: &Group,
    index: usize,
    bytes: &[u8],
    transient: u64,
    at_fault: &dyn Fn() -> PathBuf,
) -> Result<W::Decoded, RunError> {
    let t = Instant::now();
    let decoded = workload
        .decode(group, index, bytes)
        .map_err(|e| RunError::input(at_fault(), e))?;
    recorder.stage_done(Stage::Decode, t, transient);
    Ok(decoded)
}

/// Pushes input `index` into `reducer` ([`Stage::Reduce`] timed); a failure names
/// `at_fault()`.
pub fn push<R: GroupReducer>(
    reducer: &mut R,
    recorder: &dyn Recorder,
    index: usize,
    decoded: R::Decoded,
    at_fault: &dyn Fn() -> PathBuf,
) -> Result<Emission<R::Chunk>, RunError> {
    let t = Instant::now();
    let emission = reducer
        .push(index, decoded)
        .map_err(|e| RunError::input(at_fault(), e))?;
    recorder.stage_done(Stage::Reduce, t, 0);
    Ok(emission)
}

/// [`push`] into a group's reducer shared between threads, which is `None` once
/// the group was finished (a push then is the backend's bug, said so). The lock
/// is held for the push alone: decode before calling this.
pub fn push_locked<R: GroupReducer>(
    reducer: &Mutex<Option<R>>,
    recorder: &dyn Recorder,
    index: usize,
    decoded: R::Decoded,
    at_fault: &dyn Fn() -> PathBuf,
) -> Result<Emission<R::Chunk>, RunError> {
    let mut guard = reducer.lock().unwrap_or_else(|e| e.into_inner());
    let reducer = guard
        .as_mut()
        .ok_or_else(|| RunError::Internal("push after the group was finished".into()))?;
    push(reducer, recorder, index, decoded, at_fault)
}

/// Encodes one chunk of `group` ([`Stage::Encode`] timed, with the object's
/// size); a failure names the job's output root and the group.
pub fn encode<W: Workload>(
    workload: &W,
    recorder: &dyn Recorder,
    job: &Job,
    group: &Group,
    chunk: W::Chunk,
) -> Result<OutputObject, RunError> {
    let t = Instant::now();
    let object = workload.encode(chunk).map_err(|e| {
        RunError::output(
            &job.output_root,
            format!("encoding a chunk of group {}: {e}", group.index),
        )
    })?;
    recorder.stage_done(Stage::Encode, t, object.bytes.len() as u64);
    Ok(object)
}
