//! The `mock` backend, for testing the runner, the statistics and the reports:
//! it does the real work with `sequential` (so its output verifies), but reports
//! scripted latencies for each stage, so the histograms of a run are known
//! exactly; and it can add a fixed busy-wait per input, a deliberately slowed
//! backend for testing the regression gate. Not listed by `harness list`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use backend_sequential::Sequential;
use rechunk_contract::options::Configured;
use rechunk_contract::{
    Availability, Backend, Cancel, Capabilities, Forward, Job, Recorder, RequestDone, RequestKind,
    RequestOp, RunError, RunOutcome, Stage, StoreClass, Workload,
};

rechunk_contract::backend_options! {
    /// The options of `mock`: scripted latencies (µs) and a per-input delay.
    pub struct MockOptions {
        /// Scripted read latency, µs.
        read_us: Option<u64> = None, range 0..=60_000_000;
        /// Scripted decode latency, µs.
        decode_us: Option<u64> = None, range 0..=60_000_000;
        /// Scripted reduce latency, µs.
        reduce_us: Option<u64> = None, range 0..=60_000_000;
        /// Scripted encode latency, µs.
        encode_us: Option<u64> = None, range 0..=60_000_000;
        /// Scripted write latency, µs.
        write_us: Option<u64> = None, range 0..=60_000_000;
        /// Scripted input end-to-end latency, µs.
        input_us: Option<u64> = None, range 0..=60_000_000;
        /// Busy-wait per input decoded, µs (a deliberately slowed backend).
        delay_us: u64 = 0, range 0..=60_000_000;
        /// Reports each read as an `s3 get` and each write as an `s3 put` request
        /// with this time to first byte, µs (total: 1.5 times it).
        request_us: Option<u64> = None, range 1..=60_000_000;
    }
}

impl Configured for Mock {
    type Options = MockOptions;
    const NAME: &'static str = "mock";
    const SUMMARY: &'static str = "test only: sequential's work with scripted stage \
        latencies and an optional per-input delay";

    fn from_options(o: MockOptions) -> Mock {
        Mock {
            latency_us: [
                o.read_us,
                o.decode_us,
                o.reduce_us,
                o.encode_us,
                o.write_us,
                o.input_us,
                None,
            ],
            delay_us: o.delay_us,
            request_us: o.request_us,
        }
    }
}

/// See the module documentation.
#[derive(Clone, Copy, Debug, Default)]
pub struct Mock {
    /// Scripted latency per stage, in microseconds, in [`Stage::ALL`] order; `None`:
    /// the real one.
    pub latency_us: [Option<u64>; 7],
    /// Busy-waits this long per input decoded.
    pub delay_us: u64,
    /// Reports a scripted S3 request per read (`s3 get`) and write (`s3 put`),
    /// with this time to first byte in µs and 1.5 times it in total.
    pub request_us: Option<u64>,
}

impl Backend for Mock {
    fn name(&self) -> &'static str {
        "mock"
    }

    fn capabilities(&self) -> Capabilities {
        Sequential.capabilities()
    }

    fn availability(&self) -> Availability {
        Availability::Available
    }

    fn run<W: Workload>(
        &self,
        job: &Arc<Job>,
        workload: &Arc<W>,
        recorder: &Arc<dyn Recorder>,
        cancel: &Cancel,
    ) -> Result<RunOutcome, RunError> {
        // Reports scripted latencies, otherwise forwards.
        let (latency_us, delay) = (self.latency_us, Duration::from_micros(self.delay_us));
        let request_us = self.request_us;
        let scripted: Arc<dyn Recorder> = Arc::new(Forward::with_stage(
            recorder.clone(),
            move |inner: &dyn Recorder, stage: Stage, started: Instant, bytes: u64| {
                if stage == Stage::Decode && !delay.is_zero() {
                    let until = Instant::now() + delay;
                    while Instant::now() < until {
                        std::hint::spin_loop();
                    }
                }
                if let Some(us) = request_us {
                    let op = match stage {
                        Stage::Read => Some(RequestOp::Get),
                        Stage::Write => Some(RequestOp::Put),
                        _ => None,
                    };
                    if let Some(op) = op {
                        let kind = RequestKind::new(StoreClass::S3, op);
                        let ended = Instant::now();
                        let began = ended - Duration::from_micros(us * 3 / 2);
                        inner.request_begin(kind);
                        inner.request_end(
                            kind,
                            &RequestDone {
                                started: began,
                                first_byte: began + Duration::from_micros(us),
                                ended,
                                bytes,
                                ok: true,
                            },
                        );
                    }
                }
                let started = match latency_us[stage.index()] {
                    Some(us) => Instant::now() - Duration::from_micros(us),
                    None => started,
                };
                inner.stage_done(stage, started, bytes)
            },
        ));
        let mut outcome = Sequential.run(job, workload, &scripted, cancel)?;
        outcome
            .details
            .insert("mock_delay_us".into(), self.delay_us.into());
        Ok(outcome)
    }
}
