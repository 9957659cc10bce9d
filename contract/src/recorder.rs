//! The one interface through which every backend reports what it does, and the
//! recorders the contract provides. It depends on nothing else in this crate, so
//! that everything else can report through it ([`crate::budget`] does).

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Instant;

use serde::{Deserialize, Serialize};

/// A stage of the pipeline, per item (input or output chunk) or per group.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// One input read (bytes: its length).
    Read,
    /// One input decoded (bytes: the decoded size).
    Decode,
    /// One decoded input pushed into its group's reducer.
    Reduce,
    /// One output chunk encoded (bytes: the encoded size).
    Encode,
    /// One output object written (bytes: its size).
    Write,
    /// One input from read submitted to pushed into the reducer.
    Input,
    /// One group from its first read to its last write.
    Group,
}

impl Stage {
    /// Every stage, in pipeline order.
    pub const ALL: [Stage; 7] = [
        Stage::Read,
        Stage::Decode,
        Stage::Reduce,
        Stage::Encode,
        Stage::Write,
        Stage::Input,
        Stage::Group,
    ];
    /// The stage's position in [`Stage::ALL`] (`0..Stage::ALL.len()`), to index
    /// arrays kept per stage.
    pub const fn index(self) -> usize {
        // The variants are declared in the order of `ALL` (a test checks it).
        self as usize
    }
    /// The stage's name in results and reports (`read`, `decode`, …).
    pub fn name(self) -> &'static str {
        match self {
            Stage::Read => "read",
            Stage::Decode => "decode",
            Stage::Reduce => "reduce",
            Stage::Encode => "encode",
            Stage::Write => "write",
            Stage::Input => "input",
            Stage::Group => "group",
        }
    }
}

/// Kinds of IO operation, for in-flight accounting.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Io {
    /// A read of an input.
    Read,
    /// A write of an output object.
    Write,
}

/// Receives a backend's events. Implementations must be cheap and must not take a
/// lock shared by all threads on these paths: they run once or more per item.
pub trait Recorder: Send + Sync {
    /// `stage` finished for one item; it began at `started`.
    fn stage_done(&self, stage: Stage, started: Instant, bytes: u64);
    /// An IO operation was submitted.
    fn io_begin(&self, io: Io);
    /// An IO operation completed (successfully or not).
    fn io_end(&self, io: Io);
    /// Bytes were reserved from the budget.
    fn bytes_reserved(&self, n: u64);
    /// Bytes were given back to the budget.
    fn bytes_released(&self, n: u64);
}

/// A recorder that drops everything.
pub struct NullRecorder;

impl Recorder for NullRecorder {
    fn stage_done(&self, _: Stage, _: Instant, _: u64) {}
    fn io_begin(&self, _: Io) {}
    fn io_end(&self, _: Io) {}
    fn bytes_reserved(&self, _: u64) {}
    fn bytes_released(&self, _: u64) {}
}

/// A recorder that passes every event on to another one, `inner`: the base of
/// recorders that change or watch finished stages and leave everything else
/// alone. [`Forward::new`] passes everything on unchanged; with
/// [`Forward::with_stage`], `on_stage` gets every `stage_done` instead, with
/// `inner` to pass it on to (or not).
///
/// ```
/// use std::sync::Arc;
/// use std::time::{Duration, Instant};
/// use rechunk_contract::{Counters, Forward, Recorder, Stage};
///
/// let counters = Arc::new(Counters::new());
/// // Every decode reported as taking at least a millisecond; the rest unchanged.
/// let slow = Forward::with_stage(counters.clone(), |inner, stage, started, bytes| {
///     let started = match stage {
///         Stage::Decode => started.min(Instant::now() - Duration::from_millis(1)),
///         _ => started,
///     };
///     inner.stage_done(stage, started, bytes)
/// });
/// slow.stage_done(Stage::Decode, Instant::now(), 10);
/// assert_eq!(counters.items(Stage::Decode), 1);
/// ```
pub struct Forward<F = PassOn> {
    inner: Arc<dyn Recorder>,
    on_stage: F,
}

/// What a plain [`Forward`] does with a finished stage: passes it on.
pub type PassOn = fn(&dyn Recorder, Stage, Instant, u64);

impl Forward {
    /// Passes every event on to `inner` unchanged.
    pub fn new(inner: Arc<dyn Recorder>) -> Self {
        Forward {
            inner,
            on_stage: |inner, stage, started, bytes| inner.stage_done(stage, started, bytes),
        }
    }
}

impl<F> Forward<F>
where
    F: Fn(&dyn Recorder, Stage, Instant, u64) + Send + Sync,
{
    /// Calls `on_stage(inner, stage, started, bytes)` for every finished stage and
    /// passes every other event on to `inner`.
    pub fn with_stage(inner: Arc<dyn Recorder>, on_stage: F) -> Self {
        Forward { inner, on_stage }
    }

    /// The recorder events are passed on to.
    pub fn inner(&self) -> &Arc<dyn Recorder> {
        &self.inner
    }
}

impl<F> Recorder for Forward<F>
where
    F: Fn(&dyn Recorder, Stage, Instant, u64) + Send + Sync,
{
    fn stage_done(&self, stage: Stage, started: Instant, bytes: u64) {
        (self.on_stage)(&*self.inner, stage, started, bytes)
    }
    fn io_begin(&self, io: Io) {
        self.inner.io_begin(io)
    }
    fn io_end(&self, io: Io) {
        self.inner.io_end(io)
    }
    fn bytes_reserved(&self, n: u64) {
        self.inner.bytes_reserved(n)
    }
    fn bytes_released(&self, n: u64) {
        self.inner.bytes_released(n)
    }
}

/// A gauge that remembers its maximum.
#[derive(Default)]
struct Gauge {
    now: AtomicU64,
    max: AtomicU64,
}

impl Gauge {
    fn add(&self, n: u64) {
        let now = self.now.fetch_add(n, Relaxed) + n;
        self.max.fetch_max(now, Relaxed);
    }
    fn sub(&self, n: u64) {
        self.now.fetch_sub(n, Relaxed);
    }
}

/// Counts everything with atomics: totals per stage, IO and bytes in flight with
/// their maxima. Enough to check limits and drive a progress line.
#[derive(Default)]
pub struct Counters {
    items: [AtomicU64; 7],
    bytes: [AtomicU64; 7],
    reads: AtomicU64,
    writes: AtomicU64,
    io: Gauge,
    budget: Gauge,
}

/// A snapshot of [`Counters`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CounterSnapshot {
    /// Items that finished each stage, by stage name.
    pub items: std::collections::BTreeMap<String, u64>,
    /// Bytes that finished each stage, by stage name.
    pub bytes: std::collections::BTreeMap<String, u64>,
    /// Read operations begun.
    pub reads: u64,
    /// Write operations begun.
    pub writes: u64,
    /// Most IO operations in flight at once.
    pub max_io_in_flight: u64,
    /// IO operations in flight when the snapshot was taken (0 after a clean run).
    pub io_in_flight_now: u64,
    /// Most budget bytes reserved at once.
    pub max_bytes_in_flight: u64,
    /// Budget bytes reserved when the snapshot was taken (0 after a complete run).
    pub bytes_in_flight_now: u64,
}

impl Counters {
    /// Counters at zero.
    pub fn new() -> Self {
        Self::default()
    }

    /// (IO operations, budget bytes) in flight now.
    pub fn gauges(&self) -> (u64, u64) {
        (self.io.now.load(Relaxed), self.budget.now.load(Relaxed))
    }

    /// Items that finished `stage` so far.
    pub fn items(&self, stage: Stage) -> u64 {
        self.items[stage.index()].load(Relaxed)
    }

    /// Everything counted so far.
    pub fn snapshot(&self) -> CounterSnapshot {
        let mut items = std::collections::BTreeMap::new();
        let mut bytes = std::collections::BTreeMap::new();
        for s in Stage::ALL {
            items.insert(s.name().to_string(), self.items[s.index()].load(Relaxed));
            bytes.insert(s.name().to_string(), self.bytes[s.index()].load(Relaxed));
        }
        CounterSnapshot {
            items,
            bytes,
            reads: self.reads.load(Relaxed),
            writes: self.writes.load(Relaxed),
            max_io_in_flight: self.io.max.load(Relaxed),
            io_in_flight_now: self.io.now.load(Relaxed),
            max_bytes_in_flight: self.budget.max.load(Relaxed),
            bytes_in_flight_now: self.budget.now.load(Relaxed),
        }
    }
}

impl Recorder for Counters {
    fn stage_done(&self, stage: Stage, _started: Instant, bytes: u64) {
        self.items[stage.index()].fetch_add(1, Relaxed);
        self.bytes[stage.index()].fetch_add(bytes, Relaxed);
    }
    fn io_begin(&self, io: Io) {
        match io {
            Io::Read => self.reads.fetch_add(1, Relaxed),
            Io::Write => self.writes.fetch_add(1, Relaxed),
        };
        self.io.add(1);
    }
    fn io_end(&self, _io: Io) {
        self.io.sub(1);
    }
    fn bytes_reserved(&self, n: u64) {
        self.budget.add(n);
    }
    fn bytes_released(&self, n: u64) {
        self.budget.sub(n);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn stage_indices_follow_all() {
        for (i, stage) in Stage::ALL.into_iter().enumerate() {
            assert_eq!(stage.index(), i, "{stage:?}");
        }
    }

    #[test]
    fn forward_passes_every_event_on() {
        let counters = Arc::new(Counters::new());
        let plain = Forward::new(counters.clone());
        let doubled = Forward::with_stage(counters.clone(), |inner, stage, started, bytes| {
            inner.stage_done(stage, started, bytes);
            inner.stage_done(stage, started, bytes);
        });
        for r in [&plain as &dyn Recorder, &doubled] {
            r.stage_done(Stage::Write, Instant::now() - Duration::from_millis(1), 5);
            r.io_begin(Io::Read);
            r.bytes_reserved(7);
        }
        let snap = counters.snapshot();
        assert_eq!((snap.items["write"], snap.bytes["write"]), (3, 15));
        assert_eq!((snap.reads, snap.io_in_flight_now), (2, 2));
        assert_eq!(snap.bytes_in_flight_now, 14);
        plain.io_end(Io::Read);
        doubled.io_end(Io::Read);
        plain.bytes_released(7);
        doubled.bytes_released(7);
        let snap = counters.snapshot();
        assert_eq!((snap.io_in_flight_now, snap.bytes_in_flight_now), (0, 0));
        assert!(Arc::ptr_eq(plain.inner(), doubled.inner()));
    }
}
