//! The runner, the recorder, the statistics and the report, end to end on the
//! `mock` backend, whose stage latencies are scripted and so known exactly.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Output;

mod common;
use common::text;

use harness::analysis::Analysis;
use harness::machine::MachineLoad;
use harness::report;
use harness::results::{Ceilings, Results};

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
        // Readable at 100 %: no text under 14 px on the 1000 × 560 canvas.
        let sizes: Vec<f64> = svg
            .split("font-size=\"")
            .skip(1)
            .map(|rest| rest[..rest.find('"').unwrap()].parse().unwrap())
            .collect();
        assert!(!sizes.is_empty(), "{name} has no text");
        assert!(sizes.iter().all(|s| *s >= 14.0), "{name}: {sizes:?}");
    }
    // The stage times are explained where they are shown and in the text.
    let breakdown = fs::read_to_string(run.join("breakdown.svg"))
        .unwrap()
        .replace('\n', " ");
    assert!(
        breakdown.contains("waiting in queues included"),
        "{breakdown}"
    );
    assert!(md.contains("Little's law"), "{md}");
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

/// Where the time went, from known figures on 2 cores and 1000 items per repetition:
/// the winner takes 1 s (2 core ms per item, 0.75 of them its CPU); one runner-up
/// is slower because its cores sat idle, one because it spent more CPU, one
/// because it waited for the disk. The table shows the split beside the CPU
/// ceiling's, and the decision names each runner-up's largest part.
#[test]
fn where_the_time_went_splits_core_time_and_names_what_separates_the_winner() {
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
    // (wall, user + system, iowait cores) per label.
    let known = |label: &str| -> (f64, f64, f64) {
        match label {
            "mock-delay_us-0" => (1.0, 0.75, 0.0),
            "mock-counters" => (1.5, 0.75, 0.0),
            "mock-delay_us-300" => (2.0, 2.0, 0.0),
            _ => (3.0, 0.75, 1.0),
        }
    };
    for rep in r.repetitions.iter_mut() {
        let (wall, cpu, iowait) = known(&rep.label);
        let m = rep.measurement.as_mut().unwrap();
        m.outcome.inputs = 1000;
        m.wall_seconds = wall;
        m.items_per_second = 1000.0 / wall;
        m.user_seconds = cpu * 2.0 / 3.0;
        m.system_seconds = cpu / 3.0;
        m.voluntary_switches = 3000;
        m.involuntary_switches = 1000;
        m.machine_load = Some(MachineLoad {
            other_cores: 0.0,
            steal_cores: 0.0,
            iowait_cores: Some(iowait),
        });
    }
    r.ceilings = Some(Ceilings {
        io_per_second: 1e5,
        io_backend: "uring".into(),
        io_results: String::new(),
        cpu_per_second: 2000.0,
        cpu_threads: 2,
        cpu_repetitions: vec![2000.0],
        cpu_ms_per_item: Some(0.5),
    });
    let analysis = Analysis::of(&r);
    let md = report::markdown(&analysis);
    let table: Vec<&str> = md
        .lines()
        .skip_while(|l| !l.starts_with("| backend | core ms / item"))
        .take(7)
        .collect();
    assert_eq!(
        table.join("\n"),
        "| backend | core ms / item | CPU | of which work | of which overhead | idle | of which iowait | other CPU | switches / item (vol + invol) |
|---|---:|---:|---:|---:|---:|---:|---:|---:|
| *CPU ceiling* | 1.000 | 0.500 | 0.500 | – | 0.500 | – | – | – |
| sequential | 6.000 | 0.750 | 0.500 | 0.250 | 5.250 | 3.000 | 0.0000 | 3.00 + 1.00 |
| mock-delay_us-0 | 2.000 | 0.750 | 0.500 | 0.250 | 1.250 | 0.0000 | 0.0000 | 3.00 + 1.00 |
| mock-delay_us-300 | 4.000 | 2.000 | 0.500 | 1.500 | 2.000 | 0.0000 | 0.0000 | 3.00 + 1.00 |
| mock-counters | 3.000 | 0.750 | 0.500 | 0.250 | 2.250 | 0.0000 | 0.0000 | 3.00 + 1.00 |"
    );
    assert!(
        md.contains("The CPU ceiling spent 0.500 ms of CPU per item on the work itself"),
        "{md}"
    );
    assert!(md.contains("A backend at the CPU bound would take 1.000 core ms per item."));
    // sequential's 0.25 ms beyond the work: 2 cores / 0.75 ms = 2,667 fields/s at best.
    assert!(
        md.contains("`sequential` spent 0.250 ms per item beyond the work")
            && md.contains("could reach about 2,667 fields/s (133 % of the CPU ceiling)"),
        "{md}"
    );
    let decision = report::decision(&analysis);
    let line = |label: &str| {
        decision
            .lines()
            .find(|l| l.starts_with(&format!("- {label} took")))
            .unwrap_or_else(|| panic!("no line for {label}: {decision}"))
            .to_string()
    };
    assert_eq!(
        line("mock-counters"),
        "- mock-counters took 1.000 core ms more per item (3.000 against 2.000, +50 %): CPU +0.000, idle +1.000 (iowait +0.000); mostly idle cores: work was not ready for them (4.00 context switches per item against 4.00)."
    );
    assert_eq!(
        line("mock-delay_us-300"),
        "- mock-delay_us-300 took 2.000 core ms more per item (4.000 against 2.000, +100 %): CPU +1.250, idle +0.750 (iowait +0.000); mostly CPU overhead (1.500 ms per item beyond the work itself, against 0.250 for mock-delay_us-0; 4.00 context switches per item against 4.00)."
    );
    assert_eq!(
        line("sequential"),
        "- sequential took 4.000 core ms more per item (6.000 against 2.000, +200 %): CPU +0.000, idle +4.000 (iowait +3.000); mostly idle cores waiting for the disk (iowait)."
    );
}

/// The mock with scripted S3 requests (20 ms to first byte, 30 ms in all), swept
/// over io_in_flight: the results carry the request counts, histograms and the
/// in-flight gauge; the report shows the request table with its percentiles and
/// cost, and Little's law at 1 / 0.03 s = 33 and 4 / 0.03 s = 133 requests/s (the
/// median total time at the lowest point) beside the measured rate, table and plot.
#[test]
fn requests_their_cost_and_littles_law_are_reported() {
    const REQUESTS: &str = r#"
name = "requests"
description = "scripted S3 requests"
[dataset]
groups = 1
variables = 4
steps = 6
ny = 8
nx = 8
codec = "lz4"
[run]
repetitions = 2
[[backend]]
name = "sequential"
[[backend]]
name = "mock"
request_us = 20000
[sweep]
parameter = "io_in_flight"
values = [1, 4]
backends = ["mock"]
"#;
    let dir = tempfile::tempdir().unwrap();
    let s = dir.path().join("requests.toml");
    fs::write(&s, REQUESTS).unwrap();
    let out = harness(dir.path(), &["run", s.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    // The summary shows requests/s and objects/s.
    let shown = text(&out);
    assert!(
        shown.contains("| backend | requests/s | objects/s |"),
        "{shown}"
    );
    let run = run_dir(dir.path());
    let results = Results::load(&run.join("results.json")).unwrap();
    let rep = results
        .repetitions
        .iter()
        .find(|r| r.label == "mock-io_in_flight-1")
        .unwrap();
    let m = rep.measurement.as_ref().unwrap();
    let gets = &m.counters.requests["s3 get"];
    assert_eq!((gets.count, gets.errors), (24, 0));
    assert_eq!(gets.bytes, m.outcome.input_bytes);
    assert_eq!(m.counters.requests["s3 put"].count, m.outcome.outputs);
    let ttfb = &m.requests["s3 get"].ttfb;
    assert!(
        (ttfb.p50_us - 20_000.0).abs() < 20_000.0 * 0.011,
        "{ttfb:?}"
    );
    assert!(m.requests["s3 get"].total.p50_us > 29_000.0);
    assert!(m.counters.max_requests_in_flight >= 1);
    // The sampler wrote the gauge into every sample.
    let raw: serde_json::Value =
        serde_json::from_slice(&fs::read(run.join("results.json")).unwrap()).unwrap();
    let sample = &raw["repetitions"][0]["measurement"]["timeline"]["samples"][0];
    assert!(sample["requests_in_flight"].is_u64(), "{sample}");
    // No requests, no request fields: sequential's measurement has none.
    let seq = raw["repetitions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["label"] == "sequential")
        .unwrap();
    assert!(seq["measurement"].get("requests").is_none());

    let md = fs::read_to_string(run.join("report.md")).unwrap();
    assert!(md.contains("## Object-store requests"), "{md}");
    assert!(md.contains("S3 Standard, us-east-1"), "{md}");
    let row = md
        .lines()
        .find(|l| l.starts_with("| mock-io_in_flight-1 | s3 get |"))
        .unwrap_or_else(|| panic!("no s3 get row: {md}"));
    // 24 GETs per run at $0.0004 per 1,000; TTFB p50 of 20 ms.
    assert!(row.contains("| 24 |") && row.contains("$0.000010"), "{row}");
    assert!(row.contains("| 20.") || row.contains("| 19."), "{row}");
    let put = md
        .lines()
        .find(|l| l.starts_with("| mock-io_in_flight-1 | s3 put |"))
        .unwrap();
    assert!(put.contains("$0.0000"), "{put}");
    assert!(!md.contains("| sequential | s3"), "{md}");

    assert!(
        md.contains("## Requests in flight against Little's law"),
        "{md}"
    );
    assert!(
        md.contains("median total time of `s3 get` at 1 in flight, 30.0"),
        "{md}"
    );
    let expected = |label: &str| -> f64 {
        let line = md
            .lines()
            .find(|l| l.starts_with(&format!("| {label} | ")) && l.matches('|').count() == 7)
            .unwrap_or_else(|| panic!("no Little row for {label}: {md}"));
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        cells[5].replace(',', "").parse().unwrap()
    };
    // Little's law with the 30 ms measured at 1 in flight (HDR's 1 % resolution).
    assert!((expected("mock-io_in_flight-1") - 33.0).abs() <= 1.0);
    assert!((expected("mock-io_in_flight-4") - 133.0).abs() <= 2.0);
    let svg = fs::read_to_string(run.join("requests.svg"))
        .unwrap()
        .replace('\n', "");
    assert!(
        svg.contains("Little"),
        "requests.svg has no Little's law line"
    );
    assert!(
        svg.contains("mock: measured"),
        "requests.svg has no measured line"
    );
    assert_eq!(png_size(&run.join("requests.png")), (1000, 560));
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
