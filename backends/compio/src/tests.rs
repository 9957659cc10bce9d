use super::*;
use rechunk_contract::conformance::{self, Fixture};
use rechunk_contract::nwp::{Codec, Layout};
use rechunk_contract::Counters;

/// Whether io_uring works here; where it does not, the tests skip and say so,
/// unless CI's `HARNESS_REQUIRE_IO_URING` says it must.
fn available() -> bool {
    match probe() {
        Availability::Available => true,
        Availability::Unavailable(why) => {
            assert!(
                std::env::var_os("HARNESS_REQUIRE_IO_URING").is_none(),
                "io_uring is required here but unavailable: {why}"
            );
            eprintln!("skipped: {why}");
            false
        }
    }
}

fn conforms(b: &CompioRayon, what: &str) {
    let skipped = conformance::check_all(b);
    assert!(skipped.is_empty(), "{what}: skipped {skipped:?}");
}

#[test]
fn the_defaults_pass_conformance() {
    if available() {
        conforms(&CompioRayon::default(), "defaults");
    }
}

#[test]
fn three_io_threads_and_one_cpu_slot_pass_conformance() {
    if available() {
        conforms(
            &CompioRayon {
                io_threads: 3,
                cpu_in_flight: Some(1),
                sqpoll_idle_ms: None,
            },
            "3 IO threads, cpu_in_flight 1",
        );
    }
}

/// SQPOLL changes how submissions reach the kernel, nothing else: output, limits
/// and cancellation on both layouts (not the whole suite: a polling kernel thread
/// per ring makes every run of it cost a core on a 2-core machine).
#[test]
fn sqpoll_keeps_output_limits_and_cancellation() {
    if !available() {
        return;
    }
    let b = CompioRayon {
        io_threads: 2,
        cpu_in_flight: None,
        sqpoll_idle_ms: Some(10),
    };
    for layout in [Layout::Files, Layout::Container] {
        conformance::check_output_identical(&b, layout, Codec::Zstd).unwrap();
        conformance::check_limits(&b, layout).unwrap();
        conformance::check_cancellation(&b, layout).unwrap();
    }
}

#[test]
fn overlapping_groups_give_the_same_output_with_several_io_threads() {
    if !available() {
        return;
    }
    for io_threads in [1, 2] {
        let b = CompioRayon {
            io_threads,
            ..CompioRayon::default()
        };
        for layout in [Layout::Files, Layout::Container] {
            conformance::check_overlap_groups(&b, layout).unwrap();
        }
    }
}

#[test]
fn the_run_records_its_ring_and_threads() {
    if !available() {
        return;
    }
    let fx = Fixture::tiny(Layout::Files, Codec::Zstd);
    let job = Arc::new(fx.job(Fixture::roomy_limits()));
    let recorder: Arc<dyn Recorder> = Arc::new(Counters::new());
    let b = CompioRayon {
        io_threads: 2,
        ..CompioRayon::default()
    };
    let outcome = b
        .run(&job, &Arc::new(fx.workload()), &recorder, &Cancel::new())
        .unwrap();
    let d = &outcome.details;
    assert_eq!(d["io"], "compio (io_uring)");
    assert_eq!(d["compio_driver"], "IoUring");
    assert_eq!(d["io_threads"], 2);
    assert_eq!(d["rayon_threads"], 2);
    assert_eq!(d["cpu_in_flight"], 64);
    // One hand-over per input (decode + push) and one per chunk (encode).
    let chunks = outcome.outputs - 1;
    assert_eq!(d["cpu_hand_overs"], outcome.inputs + chunks);
}

/// The NWP workload, but decoding input 5 of group 1 panics.
struct Panicky(rechunk_contract::nwp::workload::NwpWorkload);

impl Workload for Panicky {
    type Decoded = Vec<f32>;
    type Chunk = rechunk_contract::nwp::workload::NwpChunk;
    type Reducer = rechunk_contract::nwp::workload::NwpReducer;
    fn name(&self) -> &str {
        "panicky"
    }
    fn metadata(&self) -> Vec<rechunk_contract::OutputObject> {
        self.0.metadata()
    }
    fn cost(&self, g: &rechunk_contract::Group, i: usize) -> rechunk_contract::ItemCost {
        self.0.cost(g, i)
    }
    fn decode(
        &self,
        g: &rechunk_contract::Group,
        i: usize,
        raw: &[u8],
    ) -> Result<Vec<f32>, rechunk_contract::WorkloadError> {
        if g.index == 1 && i == 5 {
            panic!("a bug in decode");
        }
        self.0.decode(g, i, raw)
    }
    fn reduce_group(&self, g: &rechunk_contract::Group) -> Self::Reducer {
        self.0.reduce_group(g)
    }
    fn encode(
        &self,
        c: Self::Chunk,
    ) -> Result<rechunk_contract::OutputObject, rechunk_contract::WorkloadError> {
        self.0.encode(c)
    }
    fn check_job(&self, job: &Job) -> Result<(), rechunk_contract::WorkloadError> {
        self.0.check_job(job)
    }
    fn expected_outputs(&self, job: &Job) -> u64 {
        self.0.expected_outputs(job)
    }
}

#[test]
fn a_panic_in_cpu_work_fails_the_run_with_an_error() {
    if !available() {
        return;
    }
    let fx = Fixture::tiny(Layout::Files, Codec::Zstd);
    let job = Arc::new(fx.job(Fixture::roomy_limits()));
    let workload = Arc::new(Panicky(fx.workload()));
    let recorder: Arc<dyn Recorder> = Arc::new(Counters::new());
    for io_threads in [1, 2] {
        let b = CompioRayon {
            io_threads,
            ..CompioRayon::default()
        };
        let err = b
            .run(&job, &workload, &recorder, &Cancel::new())
            .unwrap_err();
        assert!(
            err.to_string().contains("decode panicked: a bug in decode"),
            "{err}"
        );
    }
}

#[test]
fn ring_entries_follow_io_in_flight_up_to_io_urings_maximum() {
    assert_eq!(pipeline::ring_entries(1), 9);
    assert_eq!(pipeline::ring_entries(256), 264);
    assert_eq!(pipeline::ring_entries(65536), 32768);
}
