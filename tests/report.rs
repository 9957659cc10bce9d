//! The runner, the recorder, the statistics and the report, end to end on the
//! `mock` backend, whose stage latencies are scripted and so known exactly.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Output;

mod common;
use common::text;

use harness::analysis::Analysis;
use harness::report;
use harness::results::Results;

const MOCK: &str = r#"
name = "mocked"
description = "scripted latencies"
[dataset]
groups = 1
variables = 4
steps = 6
ny = 8
nx = 8
codec = "lz4"
[run]
repetitions = 3
[[backend]]
name = "sequential"
[[backend]]
name = "mock"
read_us = 100
decode_us = 250
reduce_us = 5
encode_us = 400
write_us = 1000
input_us = 2000
[[backend]]
name = "mock"
label = "mock-counters"
recording = "counters"
[sweep]
parameter = "delay_us"
values = [0, 300]
backends = ["mock"]
"#;

fn harness(dir: &Path, args: &[&str]) -> Output {
    common::harness_with(dir, "results", args)
}

fn run_dir(dir: &Path) -> PathBuf {
    let runs: Vec<_> = fs::read_dir(dir.join("results"))
        .unwrap()
        .flatten()
        .collect();
    assert_eq!(runs.len(), 1);
    runs[0].path()
}

/// (width, height) from a PNG's IHDR.
fn png_size(path: &Path) -> (u32, u32) {
    let b = fs::read(path).unwrap();
    assert_eq!(
        &b[..8],
        b"\x89PNG\r\n\x1a\n",
        "{} is not a PNG",
        path.display()
    );
    assert_eq!(&b[12..16], b"IHDR");
    let be = |i: usize| u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
    (be(16), be(20))
}

#[test]
fn a_mocked_run_records_scripted_latencies_and_draws_its_report() {
    let dir = tempfile::tempdir().unwrap();
    let s = dir.path().join("mocked.toml");
    fs::write(&s, MOCK).unwrap();
    let out = harness(dir.path(), &["run", s.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    let run = run_dir(dir.path());
    let results = Results::load(&run.join("results.json")).unwrap();

    // The sweep made two mock points in place of the one table.
    let labels: Vec<&str> = results
        .scenario
        .backends
        .iter()
        .map(|b| b.label.as_str())
        .collect();
    assert_eq!(
        labels,
        [
            "sequential",
            "mock-delay_us-0",
            "mock-delay_us-300",
            "mock-counters"
        ]
    );

    // Scripted latencies come back from the histograms, within their 1 % resolution.
    let rep = results
        .repetitions
        .iter()
        .find(|r| r.label == "mock-delay_us-0")
        .unwrap();
    let m = rep.measurement.as_ref().unwrap();
    let items = 4 * 6;
    for (stage, us, count) in [
        ("read", 100.0, items),
        ("decode", 250.0, items),
        ("reduce", 5.0, items),
        ("input", 2000.0, items),
    ] {
        let s = &m.stages[stage];
        assert_eq!(s.count, count, "{stage}");
        for p in [s.min_us, s.p50_us, s.p99_us, s.max_us] {
            // Scripted as "started = now − latency", then measured a moment later.
            assert!(
                p >= us * 0.99 && p <= us * 1.01 + 50.0,
                "{stage}: {p} vs {us}"
            );
        }
        let h = s.histogram().unwrap();
        assert_eq!(h.len(), count);
    }
    let t = m.timeline.as_ref().unwrap();
    assert_eq!(t.items["decode"].iter().sum::<u64>(), items);
    assert!(!t.samples.is_empty());
    // Counters-only recording keeps no histograms.
    let c = results
        .repetitions
        .iter()
        .find(|r| r.label == "mock-counters")
        .unwrap();
    let cm = c.measurement.as_ref().unwrap();
    assert!(cm.stages.is_empty() && cm.timeline.is_none());
    assert_eq!(cm.recording.name(), "counters");

    // The report and its plots.
    let md = fs::read_to_string(run.join("report.md")).unwrap();
    assert!(md.contains("## Decision"), "{md}");
    for name in ["throughput", "latency", "timeline", "breakdown", "scaling"] {
        assert_eq!(
            png_size(&run.join(format!("{name}.png"))),
            (1000, 560),
            "{name}"
        );
        let svg = fs::read_to_string(run.join(format!("{name}.svg"))).unwrap();
        assert!(svg.starts_with("<svg"), "{name}");
        assert!(md.contains(&format!("({name}.png)")), "{name}");
    }
    // plotters puts each text on lines of its own.
    let latency = fs::read_to_string(run.join("latency.svg"))
        .unwrap()
        .replace('\n', "");
    for series in ["sequential", "mock-delay_us-0", "mock-delay_us-300"] {
        assert!(latency.contains(series), "latency.svg lacks {series}");
    }
    assert!(
        !latency.contains(">mock-counters<"),
        "counters-only has no curve"
    );
    let scaling = fs::read_to_string(run.join("scaling.svg"))
        .unwrap()
        .replace('\n', "");
    assert!(scaling.contains("delay_us") && scaling.contains(">mock<"));

    // Redrawn from the results file alone: the same report.
    let again = dir.path().join("again");
    let out = harness(
        dir.path(),
        &[
            "report",
            run.to_str().unwrap(),
            "--out",
            again.to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(fs::read_to_string(again.join("report.md")).unwrap(), md);
}

#[test]
fn the_throughput_table_and_decision_follow_from_known_figures() {
    let dir = tempfile::tempdir().unwrap();
    let s = dir.path().join("mocked.toml");
    fs::write(&s, MOCK).unwrap();
    let out = harness(
        dir.path(),
        &["run", s.to_str().unwrap(), "--repetitions", "3"],
    );
    assert!(out.status.success(), "{}", text(&out));
    let mut r = Results::load(&run_dir(dir.path()).join("results.json")).unwrap();
    r.machine.cores = 2;
    // Known figures: rates, CPU, wall, RSS, threads and IO per repetition.
    let rates = |label: &str| -> [f64; 3] {
        match label {
            "sequential" => [100.0, 110.0, 90.0],
            "mock-delay_us-0" => [300.0, 310.0, 290.0],
            "mock-delay_us-300" => [150.0, 140.0, 160.0],
            _ => [200.0, 200.0, 200.0],
        }
    };
    let mut seen = std::collections::HashMap::<String, usize>::new();
    for rep in r.repetitions.iter_mut() {
        let i = seen.entry(rep.label.clone()).or_default();
        let m = rep.measurement.as_mut().unwrap();
        m.items_per_second = rates(&rep.label)[*i];
        m.wall_seconds = 1.0;
        m.user_seconds = 0.5;
        m.system_seconds = 0.25;
        m.outcome.inputs = 1000;
        m.peak_rss_bytes = 10 << 20;
        m.threads = 3;
        m.counters.max_io_in_flight = 1;
        *i += 1;
    }
    let analysis = Analysis::of(&r);
    let md = report::markdown(&analysis);
    let table: Vec<&str> = md
        .lines()
        .skip_while(|l| !l.starts_with("| backend | fields/s"))
        .take(6)
        .collect();
    assert_eq!(
        table.join("\n"),
        "| backend | fields/s (median) | 95 % CI | min – max | × sequential | CPU ms / 1000 (user + sys) | cores busy | IO in flight (max) | threads | peak RSS | verified |
|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|
| sequential | 100 | 90 – 110 | 90 – 110 | 1.00 | 500 + 250 | 38 % | 1 | 3 | 10.0 MiB | 3/3 |
| mock-delay_us-0 | 300 | 290 – 310 | 290 – 310 | 3.00 | 500 + 250 | 38 % | 1 | 3 | 10.0 MiB | 3/3 |
| mock-delay_us-300 | 150 | 140 – 160 | 140 – 160 | 1.50 | 500 + 250 | 38 % | 1 | 3 | 10.0 MiB | 3/3 |
| mock-counters | 200 | 200 – 200 | 200 – 200 | 2.00 | 500 + 250 | 38 % | 1 | 3 | 10.0 MiB | 3/3 |"
    );
    let decision = report::decision(&analysis);
    assert!(
        decision.starts_with("**mock-delay_us-0** was fastest on `mocked` (rechunk, warm cache): 300 fields/s (median of 3), 3.00× `sequential`"),
        "{decision}"
    );
    assert!(
        decision.contains("Next: **mock-counters** at 200 fields/s; the winner's lead is 1.50×"),
        "{decision}"
    );
    assert!(decision.contains("Confident"), "{decision}");
}

/// The network line: an object-store backend with the in-process throttle is
/// recorded as such (mode `throttle`), and a delay proxy named in HARNESS_S3_NET
/// that no S3 store went through is noted, not counted.
#[test]
fn the_network_profile_is_recorded_and_reported() {
    let dir = tempfile::tempdir().unwrap();
    let s = dir.path().join("throttled.toml");
    let scenario = common::tiny("files", "warm", 1).replace(
        "[[backend]]\nname = \"sequential\"",
        "[[backend]]\nname = \"sequential\"\n[[backend]]\nname = \"object-store\"\n\
         input = \"memory://\"\nthrottle_get_ms = 1\nthrottle_put_ms = 2\nthrottle_byte_ns = 3",
    );
    fs::write(&s, scenario).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_harness"))
        .args(["run", s.to_str().unwrap(), "--data-dir"])
        .arg(dir.path().join("data"))
        .arg("--results-dir")
        .arg(dir.path().join("results"))
        .env(
            "HARNESS_S3_NET",
            "proxy=127.0.0.1:3903,upstream=127.0.0.1:3900,rtt=20ms,jitter=0ms,rate=none",
        )
        .env_remove("AWS_ENDPOINT")
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let run = run_dir(dir.path());
    let r = Results::load(&run.join("results.json")).unwrap();
    let n = r.network.as_ref().expect("the network is recorded");
    assert_eq!(n.mode, "throttle");
    assert!(!n.s3 && n.proxy.is_none());
    assert_eq!(n.throttle.len(), 1);
    let t = &n.throttle[0];
    assert_eq!(
        (
            t.label.as_str(),
            t.get_per_call_ms,
            t.put_per_call_ms,
            t.get_per_byte_ns
        ),
        ("object-store", 1.0, 2.0, 3.0)
    );
    assert!(
        n.note.as_deref().unwrap().contains("no backend used S3"),
        "{n:?}"
    );
    let md = fs::read_to_string(run.join("report.md")).unwrap();
    assert!(
        md.contains("Network to the object stores (throttle): in-process throttle (object_store ThrottledStore) on `object-store`: get +1 ms per call, put +2 ms per call, +3 ns per byte read"),
        "{md}"
    );

    // A malformed profile is refused before anything runs.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_harness"))
        .args(["run", s.to_str().unwrap(), "--data-dir"])
        .arg(dir.path().join("data"))
        .arg("--results-dir")
        .arg(dir.path().join("results2"))
        .env("HARNESS_S3_NET", "proxy=127.0.0.1:3903,rtt=20")
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(text(&out).contains("HARNESS_S3_NET rtt"), "{}", text(&out));
}
