//! The conformance suite on the three stores, their combinations, and the errors a
//! user meets: a missing object, an unreachable server, wrong credentials.
//!
//! The S3 tests run when an S3 endpoint is configured (`eval "$(scripts/s3-server
//! env)"`, as `.ci/run` does); without one they say so and pass, unless
//! `HARNESS_REQUIRE_S3` is set, when they fail.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rechunk_contract::conformance::{self, Fixture};
use rechunk_contract::nwp::{Codec, Layout};

use super::*;

fn suite(backend: &impl Backend, what: &str) {
    let skipped = conformance::check_all(backend);
    assert!(skipped.is_empty(), "{what}: skipped {skipped:?}");
}

/// The suite without the limits check, whose `reads == inputs` does not hold when one
/// request reads several inputs.
fn batched_suite(backend: &impl Backend, what: &str) {
    let mut skipped = conformance::check_all_layouts_and_codecs(backend);
    skipped.extend(conformance::check_all_bad_inputs(backend));
    for layout in [Layout::Files, Layout::Container] {
        skipped.extend(conformance::check_cancellation(backend, layout).err());
    }
    assert!(skipped.is_empty(), "{what}: skipped {skipped:?}");
}

/// Runs `b` on the fixture and returns the error it must end with.
fn fails(b: &ObjectStoreBackend, fx: &Fixture) -> RunError {
    let job = Arc::new(fx.job(Fixture::roomy_limits()));
    let recorder: Arc<dyn Recorder> = Arc::new(rechunk_contract::NullRecorder);
    b.run(&job, &Arc::new(fx.workload()), &recorder, &Cancel::new())
        .expect_err("the run must fail")
}

fn backend(input: StoreUrl, output: StoreUrl) -> ObjectStoreBackend {
    ObjectStoreBackend::new(input, output)
}

#[test]
fn local_files_pass_conformance() {
    suite(
        &backend(StoreUrl::File, StoreUrl::File),
        "file:// → file://",
    );
}

#[test]
fn local_files_with_get_ranges_pass_conformance() {
    let mut b = backend(StoreUrl::File, StoreUrl::File);
    b.ranges_per_request = 4;
    batched_suite(&b, "file:// → file://, 4 ranges per request");
}

#[test]
fn memory_passes_conformance() {
    suite(
        &backend(StoreUrl::Memory, StoreUrl::Memory),
        "memory:// → memory://",
    );
}

#[test]
fn mixed_local_and_memory_stores_give_identical_outputs() {
    for (i, o) in [
        (StoreUrl::File, StoreUrl::Memory),
        (StoreUrl::Memory, StoreUrl::File),
    ] {
        let b = backend(i, o);
        assert!(conformance::check_all_layouts_and_codecs(&b).is_empty());
    }
}

#[test]
fn a_missing_memory_store_is_an_error_not_a_panic() {
    let fx = Fixture::tiny(Layout::Files, Codec::Zstd);
    let err = fails(&backend(StoreUrl::Memory, StoreUrl::File), &fx);
    assert!(err.to_string().contains("memory://"), "{err}");
}

/// A server that is not there: the run fails within the connect timeout and its
/// retries, naming the store and the key.
#[test]
fn an_unreachable_s3_server_fails_fast_naming_the_store() {
    let fx = Fixture::tiny(Layout::Files, Codec::Zstd);
    let mut b = backend(StoreUrl::parse("s3://nowhere/in").unwrap(), StoreUrl::File);
    // Port 9 (discard) on loopback: nothing listens there.
    b.s3 = S3Config {
        endpoint: Some("http://127.0.0.1:9".into()),
        region: Some("garage".into()),
        access_key_id: Some("GKdoesnotmatter".into()),
        secret_access_key: Some("notasecret".into()),
        allow_http: Some(true),
    };
    let started = Instant::now();
    let err = fails(&b, &fx);
    let shown = err.to_string();
    assert!(
        matches!(err, RunError::Input { .. }) && shown.contains("s3://nowhere/in/"),
        "{shown}"
    );
    assert!(!shown.contains("notasecret"), "{shown}");
    assert!(
        started.elapsed() < S3_GIVE_UP,
        "took {:?}: {shown}",
        started.elapsed()
    );
}

/// How long a run against a dead server may take at most: object_store's retries
/// with our connect timeout and retry budget, plus slack.
const S3_GIVE_UP: Duration = Duration::from_secs(60);

// ------------------------------------------------------------------ real S3

/// The configured S3 test bucket, or `None` (said on stderr) when there is none.
fn s3_bucket() -> Option<String> {
    let configured = S3Config::default().configured();
    if !configured {
        assert!(
            std::env::var_os("HARNESS_REQUIRE_S3").is_none(),
            "HARNESS_REQUIRE_S3 is set but no S3 endpoint is configured \
             (eval \"$(scripts/s3-server env)\")"
        );
        eprintln!("SKIPPED: no S3 endpoint configured (eval \"$(scripts/s3-server env)\")");
        return None;
    }
    Some(std::env::var("HARNESS_S3_BUCKET").unwrap_or_else(|_| "harness".into()))
}

/// A prefix no other test or run uses.
fn fresh_prefix(bucket: &str, what: &str) -> StoreUrl {
    static N: AtomicU64 = AtomicU64::new(0);
    StoreUrl::parse(&format!(
        "s3://{bucket}/tests/{}-{}-{what}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ))
    .unwrap()
}

fn staged_s3(input: StoreUrl, output: StoreUrl) -> ObjectStoreBackend {
    let mut b = backend(input, output);
    b.stage = true;
    b
}

#[test]
fn s3_passes_conformance() {
    let Some(bucket) = s3_bucket() else { return };
    let root = fresh_prefix(&bucket, "conformance");
    suite(
        &staged_s3(root.join("in"), root.join("out")),
        "s3:// → s3://",
    );
}

#[test]
fn s3_input_to_local_and_memory_outputs_and_back() {
    let Some(bucket) = s3_bucket() else { return };
    let root = fresh_prefix(&bucket, "mixed");
    for (i, o) in [
        (root.join("a"), StoreUrl::File),
        (root.join("b"), StoreUrl::Memory),
        (StoreUrl::File, root.join("c")),
        (StoreUrl::Memory, root.join("d")),
    ] {
        let what = format!("{i} → {o}");
        let mut b = staged_s3(i, o);
        b.ranges_per_request = 3;
        assert!(
            conformance::check_all_layouts_and_codecs(&b).is_empty(),
            "{what}"
        );
    }
}

#[test]
fn wrong_s3_credentials_are_named_and_not_shown() {
    let Some(bucket) = s3_bucket() else { return };
    let fx = Fixture::tiny(Layout::Files, Codec::Zstd);
    let mut b = backend(fresh_prefix(&bucket, "creds"), StoreUrl::File);
    b.s3.access_key_id = Some("GK0123456789abcdef01234567".into());
    b.s3.secret_access_key = Some("wrong-secret-0123456789".into());
    let started = Instant::now();
    let err = fails(&b, &fx);
    let shown = err.to_string();
    assert!(
        shown.contains("s3://") && shown.contains("/tests/"),
        "{shown}"
    );
    assert!(
        shown.contains("access denied: check the credentials"),
        "{shown}"
    );
    assert!(!shown.contains("wrong-secret"), "{shown}");
    assert!(started.elapsed() < S3_GIVE_UP);
}

#[test]
fn a_missing_s3_object_is_named_with_its_store_and_key() {
    let Some(bucket) = s3_bucket() else { return };
    let fx = Fixture::tiny(Layout::Files, Codec::Zstd);
    std::fs::remove_file(fx.input_file(1, 1, 2)).unwrap();
    let b = staged_s3(fresh_prefix(&bucket, "missing"), StoreUrl::File);
    b.prepare(&fx.job(Fixture::roomy_limits())).unwrap();
    let shown = fails(&b, &fx).to_string();
    let key = fx.params.message_path(1, 1, 2);
    assert!(
        shown.contains(&format!("input {}/{key}: no such object", b.input)),
        "{shown}"
    );
}

// ------------------------------------------------------ in-process throttle

fn throttled_backend(input: StoreUrl, output: StoreUrl, get_ms: u64) -> ObjectStoreBackend {
    let mut b = backend(input, output);
    b.throttle = Throttle {
        get_per_call: Duration::from_millis(get_ms),
        put_per_call: Duration::from_millis(1),
        get_per_byte: Duration::from_nanos(1),
    }
    .active();
    b
}

#[test]
fn throttled_stores_give_identical_outputs() {
    let b = throttled_backend(StoreUrl::Memory, StoreUrl::Memory, 1);
    assert!(conformance::check_all_layouts_and_codecs(&b).is_empty());
}

/// Every get waits its 20 ms: with 4 requests in flight, 24 inputs take at least 6
/// waits; the run says in its details that the throttle ran.
#[test]
fn the_throttle_delays_every_get_and_says_so() {
    let fx = Fixture::tiny(Layout::Files, Codec::Zstd);
    let b = throttled_backend(StoreUrl::Memory, StoreUrl::Memory, 20);
    let limits = rechunk_contract::Limits {
        cpu_threads: 1,
        io_in_flight: 4,
        bytes_in_flight: 64 << 20,
    };
    let job = Arc::new(fx.job(limits));
    b.prepare(&job).unwrap();
    let recorder: Arc<dyn Recorder> = Arc::new(rechunk_contract::NullRecorder);
    let started = Instant::now();
    let outcome = b
        .run(&job, &Arc::new(fx.workload()), &recorder, &Cancel::new())
        .unwrap();
    let took = started.elapsed();
    b.finish(&job).unwrap();
    let inputs = job.groups.iter().map(|g| g.inputs.len()).sum::<usize>() as u32;
    let floor = Duration::from_millis(20) * inputs.div_ceil(4);
    assert!(
        took >= floor,
        "{inputs} throttled gets took {took:?} < {floor:?}"
    );
    let said = outcome.details["network"].as_str().unwrap();
    assert!(
        said.starts_with("in-process throttle (object_store ThrottledStore): get +20 ms"),
        "{said}"
    );
}

#[test]
fn a_throttle_on_file_reads_is_refused_before_the_run() {
    let fx = Fixture::tiny(Layout::Files, Codec::Zstd);
    let b = throttled_backend(StoreUrl::File, StoreUrl::Memory, 5);
    let err = b.prepare(&fx.job(Fixture::roomy_limits())).unwrap_err();
    assert!(
        err.to_string()
            .contains("ThrottledStore cannot wrap file://"),
        "{err}"
    );
}
