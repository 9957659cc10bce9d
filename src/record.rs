//! The full recorder: per-stage latency histograms (HdrHistogram) and a throughput
//! timeline, recorded per thread and merged when the run ends, on top of the
//! atomic [`Counters`] every run keeps.
//!
//! Hot path: `stage_done` finds this thread's own slot in a thread-local (one
//! pointer comparison after the first call), locks that slot's mutex — only this
//! thread ever locks it while the run goes on, so the lock is never contended —
//! and records into its histograms and timeline. No lock or cache line is shared
//! between threads except the counters' atomics.
//!
//! Histograms hold nanoseconds with 2 significant digits (1 % resolution), grow as
//! values need, and are created per thread and stage on first use: a thread that
//! only decodes holds one decode histogram (~20 KB), which keeps the recorder's
//! memory small even for backends with hundreds of threads.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use rechunk_contract::{Counters, Io, Recorder, RequestDone, RequestKind, Stage};

pub use crate::results::{RequestLatency, Sample, StageLatency, Timeline};

/// Width of a timeline bucket.
pub const BUCKET: Duration = Duration::from_millis(100);

/// One thread's recording.
struct Local {
    hists: [Option<Histogram<u64>>; 7],
    /// (items, bytes) per bucket, per stage.
    timeline: [Vec<(u64, u64)>; 7],
    /// (time to first byte, total time) per [`RequestKind::index`], made on first use.
    requests: Vec<Option<(Histogram<u64>, Histogram<u64>)>>,
}

impl Local {
    fn new() -> Local {
        Local {
            hists: Default::default(),
            timeline: Default::default(),
            requests: Vec::new(),
        }
    }
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

thread_local! {
    /// This thread's slots, by recorder id (almost always exactly one).
    static SLOTS: RefCell<Vec<(u64, Arc<Mutex<Local>>)>> = const { RefCell::new(Vec::new()) };
}

/// See the module documentation.
pub struct FullRecorder {
    id: u64,
    start: Instant,
    counters: Arc<Counters>,
    /// Every thread's slot, registered on its first event (the only time this
    /// lock is taken on a recording path).
    slots: Mutex<Vec<Arc<Mutex<Local>>>>,
}

/// Stage names in pipeline order.
pub fn stage_names() -> Vec<&'static str> {
    Stage::ALL.iter().map(|s| s.name()).collect()
}

fn stage_index(s: Stage) -> usize {
    Stage::ALL.iter().position(|&x| x == s).unwrap_or(0)
}

impl FullRecorder {
    /// A recorder whose timeline starts now, forwarding every event to `counters`
    /// as well.
    pub fn new(counters: Arc<Counters>) -> FullRecorder {
        FullRecorder {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            start: Instant::now(),
            counters,
            slots: Mutex::new(Vec::new()),
        }
    }

    /// When the recording's timeline starts.
    pub fn start(&self) -> Instant {
        self.start
    }

    fn with_local(&self, f: impl FnOnce(&mut Local)) {
        SLOTS.with(|slots| {
            let mut slots = slots.borrow_mut();
            let slot = match slots.iter().find(|(id, _)| *id == self.id) {
                Some((_, s)) => s.clone(),
                None => {
                    let s = Arc::new(Mutex::new(Local::new()));
                    self.slots
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push(s.clone());
                    slots.push((self.id, s.clone()));
                    s
                }
            };
            let mut local = slot.lock().unwrap_or_else(|e| e.into_inner());
            f(&mut local);
        });
    }

    /// Every thread's request histograms merged: (time to first byte, total time)
    /// per request kind name (`s3 get`, …), kinds with no request left out.
    pub fn request_latencies(&self) -> BTreeMap<String, RequestLatency> {
        let mut merged: Vec<Option<(Histogram<u64>, Histogram<u64>)>> =
            (0..RequestKind::COUNT).map(|_| None).collect();
        for slot in self.slots.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            let local = slot.lock().unwrap_or_else(|e| e.into_inner());
            for (i, h) in local.requests.iter().enumerate() {
                if let Some((ttfb, total)) = h {
                    let m = merged[i].get_or_insert_with(|| (new_histogram(), new_histogram()));
                    // Both auto-resize, so adding cannot fail.
                    let _ = m.0.add(ttfb);
                    let _ = m.1.add(total);
                }
            }
        }
        merged
            .into_iter()
            .enumerate()
            .filter_map(|(i, h)| {
                let (ttfb, total) = h?;
                Some((
                    RequestKind::at(i)?.name(),
                    RequestLatency {
                        ttfb: StageLatency::from_histogram(&ttfb),
                        total: StageLatency::from_histogram(&total),
                    },
                ))
            })
            .collect()
    }

    /// Merges every thread's recording: latency per stage, and the timeline.
    pub fn finish(&self) -> (BTreeMap<String, StageLatency>, Timeline) {
        let mut hists: Vec<Histogram<u64>> = (0..7).map(|_| new_histogram()).collect();
        let mut timeline: Vec<Vec<(u64, u64)>> = vec![Vec::new(); 7];
        for slot in self.slots.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            let local = slot.lock().unwrap_or_else(|e| e.into_inner());
            for s in 0..7 {
                if let Some(h) = &local.hists[s] {
                    // Both auto-resize, so adding cannot fail.
                    let _ = hists[s].add(h);
                }
                let t = &mut timeline[s];
                if t.len() < local.timeline[s].len() {
                    t.resize(local.timeline[s].len(), (0, 0));
                }
                for (i, &(n, b)) in local.timeline[s].iter().enumerate() {
                    t[i].0 += n;
                    t[i].1 += b;
                }
            }
        }
        let mut stages = BTreeMap::new();
        let mut tl = Timeline {
            bucket_seconds: BUCKET.as_secs_f64(),
            ..Timeline::default()
        };
        for (s, stage) in Stage::ALL.iter().enumerate() {
            if hists[s].is_empty() {
                continue;
            }
            let name = stage.name().to_string();
            stages.insert(name.clone(), StageLatency::from_histogram(&hists[s]));
            tl.items
                .insert(name.clone(), timeline[s].iter().map(|x| x.0).collect());
            tl.bytes
                .insert(name, timeline[s].iter().map(|x| x.1).collect());
        }
        (stages, tl)
    }
}

fn new_histogram() -> Histogram<u64> {
    // 2 significant digits, growing as needed: cannot fail.
    Histogram::new(2).expect("valid histogram parameters")
}

impl Recorder for FullRecorder {
    fn stage_done(&self, stage: Stage, started: Instant, bytes: u64) {
        self.counters.stage_done(stage, started, bytes);
        let now = Instant::now();
        let ns = now.saturating_duration_since(started).as_nanos() as u64;
        let bucket =
            (now.saturating_duration_since(self.start).as_nanos() / BUCKET.as_nanos()) as usize;
        let s = stage_index(stage);
        self.with_local(|l| {
            // `record`, not `saturating_record`: only `record` grows an
            // auto-resizing histogram; it fails only beyond u64's range.
            let _ = l.hists[s]
                .get_or_insert_with(new_histogram)
                .record(ns.max(1));
            let t = &mut l.timeline[s];
            if t.len() <= bucket {
                t.resize(bucket + 1, (0, 0));
            }
            t[bucket].0 += 1;
            t[bucket].1 += bytes;
        });
    }
    fn io_begin(&self, io: Io) {
        self.counters.io_begin(io)
    }
    fn io_end(&self, io: Io) {
        self.counters.io_end(io)
    }
    fn bytes_reserved(&self, n: u64) {
        self.counters.bytes_reserved(n)
    }
    fn bytes_released(&self, n: u64) {
        self.counters.bytes_released(n)
    }
    fn request_begin(&self, kind: RequestKind) {
        self.counters.request_begin(kind)
    }
    fn request_end(&self, kind: RequestKind, done: &RequestDone) {
        let ns = |t: Instant| t.saturating_duration_since(done.started).as_nanos() as u64;
        let (ttfb, total) = (ns(done.first_byte), ns(done.ended));
        self.with_local(|l| {
            let i = kind.index();
            if l.requests.len() <= i {
                l.requests.resize_with(RequestKind::COUNT, || None);
            }
            let (t, all) = l.requests[i].get_or_insert_with(|| (new_histogram(), new_histogram()));
            // As in `stage_done`: `record` grows the histogram.
            let _ = t.record(ttfb.max(1));
            let _ = all.record(total.max(1));
        });
        // The gauge goes down last, so a sample never sees the request gone before
        // it is counted.
        self.counters.request_end(kind, done)
    }
    fn http_attempt(&self, failed: bool) {
        self.counters.http_attempt(failed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn threads_record_apart_and_merge_into_exact_percentiles() {
        let r = Arc::new(FullRecorder::new(Arc::new(Counters::new())));
        std::thread::scope(|s| {
            for t in 0..4u64 {
                let r = r.clone();
                s.spawn(move || {
                    for i in 0..250u64 {
                        // Latencies 1..=1000 µs across the four threads.
                        let us = t * 250 + i + 1;
                        let started = Instant::now() - Duration::from_micros(us);
                        r.stage_done(Stage::Decode, started, 10);
                    }
                });
            }
        });
        let (stages, timeline) = r.finish();
        let d = &stages["decode"];
        assert_eq!(d.count, 1000);
        // 2 significant digits: within 1 % (plus the few µs the call itself took).
        for (got, want) in [(d.p50_us, 500.0), (d.p90_us, 900.0), (d.p99_us, 990.0)] {
            assert!((got - want).abs() <= want * 0.01 + 20.0, "{got} vs {want}");
        }
        let h = d.histogram().unwrap();
        assert_eq!(h.len(), 1000);
        assert_eq!(timeline.items["decode"].iter().sum::<u64>(), 1000);
        assert_eq!(timeline.bytes["decode"].iter().sum::<u64>(), 10_000);
        assert!(!stages.contains_key("read"));
    }
}
