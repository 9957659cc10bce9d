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
    /// An object-store request was sent (it counts as in flight until
    /// [`Recorder::request_end`]). Stores that make no requests never call it, so
    /// the default does nothing.
    fn request_begin(&self, _kind: RequestKind) {}
    /// An object-store request ended (its body read to the end, or failed): its
    /// times, bytes and whether it succeeded.
    fn request_end(&self, _kind: RequestKind, _done: &RequestDone) {}
    /// One HTTP exchange with an object store (every attempt, retries included);
    /// `failed`: a transport error or a status object_store retries (5xx, 429).
    fn http_attempt(&self, _failed: bool) {}
}

/// The operation of one object-store request, as the `stores` crate's metering
/// wrapper sees it (one call of the `ObjectStore` trait that is one HTTP request on
/// S3; a list is one call however many pages it reads).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RequestOp {
    /// A whole object (`GET`).
    Get,
    /// One byte range of an object (`GET` with `Range`).
    GetRange,
    /// Several ranges of one object in one call on a store that serves them in one
    /// operation (a local file); on S3 each coalesced range is a [`RequestOp::GetRange`].
    GetRanges,
    /// An object's metadata (`HEAD`).
    Head,
    /// A whole object written (`PUT`).
    Put,
    /// A listing (`GET ?list-type=2`; one call, however many pages).
    List,
    /// A server-side copy (`PUT` with `x-amz-copy-source`).
    Copy,
    /// Objects deleted (one call; on S3 a bulk `POST ?delete` of up to 1000 keys).
    Delete,
    /// A multipart upload begun (`POST ?uploads`).
    CreateMultipart,
    /// One part of a multipart upload (`PUT ?partNumber`).
    UploadPart,
    /// A multipart upload completed (`POST ?uploadId`).
    CompleteMultipart,
    /// A multipart upload abandoned (`DELETE ?uploadId`).
    AbortMultipart,
}

impl RequestOp {
    /// Every operation.
    pub const ALL: [RequestOp; 12] = [
        RequestOp::Get,
        RequestOp::GetRange,
        RequestOp::GetRanges,
        RequestOp::Head,
        RequestOp::Put,
        RequestOp::List,
        RequestOp::Copy,
        RequestOp::Delete,
        RequestOp::CreateMultipart,
        RequestOp::UploadPart,
        RequestOp::CompleteMultipart,
        RequestOp::AbortMultipart,
    ];
    /// The operation's name in results and reports (`get`, `get_range`, …).
    pub fn name(self) -> &'static str {
        match self {
            RequestOp::Get => "get",
            RequestOp::GetRange => "get_range",
            RequestOp::GetRanges => "get_ranges",
            RequestOp::Head => "head",
            RequestOp::Put => "put",
            RequestOp::List => "list",
            RequestOp::Copy => "copy",
            RequestOp::Delete => "delete",
            RequestOp::CreateMultipart => "create_multipart",
            RequestOp::UploadPart => "upload_part",
            RequestOp::CompleteMultipart => "complete_multipart",
            RequestOp::AbortMultipart => "abort_multipart",
        }
    }
    /// The operation named `name` ([`RequestOp::name`]).
    pub fn from_name(name: &str) -> Option<RequestOp> {
        RequestOp::ALL.into_iter().find(|op| op.name() == name)
    }
}

/// The kind of store a request went to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum StoreClass {
    /// An S3 server (`s3://`): real HTTP requests, billed by a cloud.
    S3,
    /// A local directory through `LocalFileSystem` (`file://`).
    File,
    /// A store in the process's memory (`memory://`).
    Memory,
}

impl StoreClass {
    /// Every class.
    pub const ALL: [StoreClass; 3] = [StoreClass::S3, StoreClass::File, StoreClass::Memory];
    /// The class's name in results (`s3`, `file`, `memory`).
    pub fn name(self) -> &'static str {
        match self {
            StoreClass::S3 => "s3",
            StoreClass::File => "file",
            StoreClass::Memory => "memory",
        }
    }
}

/// One kind of request: an operation on a class of store.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RequestKind {
    /// What was asked.
    pub op: RequestOp,
    /// Of which store.
    pub store: StoreClass,
}

impl RequestKind {
    /// How many kinds there are (for arrays indexed by [`RequestKind::index`]).
    pub const COUNT: usize = RequestOp::ALL.len() * StoreClass::ALL.len();

    /// `op` on `store`.
    pub fn new(store: StoreClass, op: RequestOp) -> Self {
        RequestKind { op, store }
    }
    /// The kind's position in `0..RequestKind::COUNT`.
    pub fn index(self) -> usize {
        self.store as usize * RequestOp::ALL.len() + self.op as usize
    }
    /// The kind at `index` ([`RequestKind::index`]).
    pub fn at(index: usize) -> Option<RequestKind> {
        let n = RequestOp::ALL.len();
        Some(RequestKind {
            store: *StoreClass::ALL.get(index / n)?,
            op: *RequestOp::ALL.get(index % n)?,
        })
    }
    /// The kind's name in results: `<store> <op>` (`s3 get`, `file put`).
    pub fn name(self) -> String {
        format!("{} {}", self.store.name(), self.op.name())
    }
}

/// How one request went.
#[derive(Clone, Copy, Debug)]
pub struct RequestDone {
    /// When it was sent (the `ObjectStore` call began).
    pub started: Instant,
    /// When the first byte of the response arrived: when the call returned (for a
    /// GET, its status and headers had arrived; its body is read after).
    pub first_byte: Instant,
    /// When it ended: the body read to its end (or dropped), or the call returned.
    pub ended: Instant,
    /// Payload bytes moved (body bytes read, or bytes written).
    pub bytes: u64,
    /// It succeeded.
    pub ok: bool,
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
    fn request_begin(&self, kind: RequestKind) {
        self.inner.request_begin(kind)
    }
    fn request_end(&self, kind: RequestKind, done: &RequestDone) {
        self.inner.request_end(kind, done)
    }
    fn http_attempt(&self, failed: bool) {
        self.inner.http_attempt(failed)
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
    /// Object-store requests in flight.
    requests: Gauge,
    /// (count, bytes, errors) per [`RequestKind::index`].
    request_totals: RequestTotals,
    http_attempts: AtomicU64,
    http_failed: AtomicU64,
}

/// (count, bytes, errors) per [`RequestKind::index`] (arrays over 32 have no
/// `Default`, hence the type).
struct RequestTotals(Vec<[AtomicU64; 3]>);

impl Default for RequestTotals {
    fn default() -> Self {
        RequestTotals(
            (0..RequestKind::COUNT)
                .map(|_| Default::default())
                .collect(),
        )
    }
}

/// Requests of one kind: how many, their bytes and how many failed.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestCount {
    /// Requests that ended (successfully or not).
    pub count: u64,
    /// Payload bytes they moved (read or written).
    pub bytes: u64,
    /// Requests that ended in an error (after object_store's own retries).
    pub errors: u64,
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
    /// Most object-store requests in flight at once (sent, response not yet read
    /// to its end); 0 for backends that make none (and in results before it was
    /// recorded).
    #[serde(default)]
    pub max_requests_in_flight: u64,
    /// Object-store requests per kind (`s3 get`, `file put`, …), kinds with none
    /// left out.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub requests: std::collections::BTreeMap<String, RequestCount>,
    /// HTTP exchanges with S3, every attempt (retries included).
    #[serde(default)]
    pub http_attempts: u64,
    /// HTTP exchanges that failed with a transport error or a status object_store
    /// retries (5xx, 429): each was retried, or ended its request in an error.
    #[serde(default)]
    pub http_failed_attempts: u64,
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

    /// Object-store requests in flight now.
    pub fn requests_in_flight(&self) -> u64 {
        self.requests.now.load(Relaxed)
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
            max_requests_in_flight: self.requests.max.load(Relaxed),
            requests: (0..RequestKind::COUNT)
                .filter_map(|i| {
                    let [c, b, e] = &self.request_totals.0[i];
                    let count = c.load(Relaxed);
                    let kind = RequestKind::at(i)?;
                    (count > 0).then(|| {
                        let counted = RequestCount {
                            count,
                            bytes: b.load(Relaxed),
                            errors: e.load(Relaxed),
                        };
                        (kind.name(), counted)
                    })
                })
                .collect(),
            http_attempts: self.http_attempts.load(Relaxed),
            http_failed_attempts: self.http_failed.load(Relaxed),
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
    fn request_begin(&self, _kind: RequestKind) {
        self.requests.add(1);
    }
    fn request_end(&self, kind: RequestKind, done: &RequestDone) {
        let [c, b, e] = &self.request_totals.0[kind.index()];
        c.fetch_add(1, Relaxed);
        b.fetch_add(done.bytes, Relaxed);
        if !done.ok {
            e.fetch_add(1, Relaxed);
        }
        self.requests.sub(1);
    }
    fn http_attempt(&self, failed: bool) {
        self.http_attempts.fetch_add(1, Relaxed);
        if failed {
            self.http_failed.fetch_add(1, Relaxed);
        }
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
    fn request_kinds_index_and_name_one_to_one() {
        let mut seen = std::collections::HashSet::new();
        for i in 0..RequestKind::COUNT {
            let k = RequestKind::at(i).unwrap();
            assert_eq!(k.index(), i);
            assert!(seen.insert(k.name()));
            assert_eq!(RequestOp::from_name(k.op.name()), Some(k.op));
        }
        assert_eq!(RequestKind::at(RequestKind::COUNT), None);
        assert_eq!(
            RequestKind::new(StoreClass::S3, RequestOp::GetRange).name(),
            "s3 get_range"
        );
    }

    /// Requests are counted per kind with bytes and errors; the in-flight gauge
    /// rises with each begin and falls with each end, keeping its maximum; a
    /// forwarding recorder passes them on.
    #[test]
    fn requests_are_counted_and_gauged() {
        let counters = Arc::new(Counters::new());
        let r = Forward::new(counters.clone());
        let get = RequestKind::new(StoreClass::S3, RequestOp::Get);
        let put = RequestKind::new(StoreClass::File, RequestOp::Put);
        let now = Instant::now();
        let done = |bytes, ok| RequestDone {
            started: now,
            first_byte: now,
            ended: now,
            bytes,
            ok,
        };
        r.request_begin(get);
        r.request_begin(get);
        r.request_begin(put);
        assert_eq!(counters.requests_in_flight(), 3);
        r.request_end(get, &done(100, true));
        r.request_end(get, &done(0, false));
        r.request_end(put, &done(7, true));
        r.http_attempt(false);
        r.http_attempt(true);
        let snap = counters.snapshot();
        assert_eq!(counters.requests_in_flight(), 0);
        assert_eq!(snap.max_requests_in_flight, 3);
        assert_eq!(
            snap.requests["s3 get"],
            RequestCount {
                count: 2,
                bytes: 100,
                errors: 1
            }
        );
        assert_eq!(snap.requests["file put"].bytes, 7);
        assert_eq!(snap.requests.len(), 2);
        assert_eq!((snap.http_attempts, snap.http_failed_attempts), (2, 1));
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
