//! The regression gate and the exports, end to end: a deliberately slowed backend
//! (the mock's per-input busy-wait) is caught; a run compared with itself is not.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Output;

mod common;
use common::text;

const SCENARIO: &str = r#"
name = "gate"
[dataset]
groups = 2
variables = 3
steps = 5
ny = 12
nx = 10
codec = "lz4"
[run]
repetitions = 3
[[backend]]
name = "sequential"
[[backend]]
name = "mock"
delay_us = DELAY
"#;

fn harness(dir: &Path, results: &str, args: &[&str]) -> Output {
    common::harness_with(dir, results, args)
}

/// Runs the scenario with a per-input delay; returns its results.json.
fn run(dir: &Path, name: &str, delay_us: u64) -> PathBuf {
    let s = dir.join(format!("{name}.toml"));
    fs::write(&s, SCENARIO.replace("DELAY", &delay_us.to_string())).unwrap();
    let out = harness(dir, name, &["run", s.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    let run = fs::read_dir(dir.join(name))
        .unwrap()
        .next()
        .unwrap()
        .unwrap();
    run.path().join("results.json")
}

#[test]
fn the_gate_catches_a_slowed_backend_and_passes_an_unchanged_one() {
    let dir = tempfile::tempdir().unwrap();
    let base = run(dir.path(), "base", 0);
    let slow = run(dir.path(), "slow", 3000);
    let b = base.to_str().unwrap();

    let out = harness(dir.path(), "x", &["compare", b, slow.to_str().unwrap()]);
    let shown = text(&out);
    assert_eq!(out.status.code(), Some(1), "{shown}");
    assert!(
        shown.contains("| mock |") && shown.contains("| REGRESSED |"),
        "{shown}"
    );

    let out = harness(dir.path(), "x", &["compare", b, b]);
    let shown = text(&out);
    // Itself: every change is exactly 0; the intervals' widths depend on the noise
    // of its three repetitions, so it passes (0) or is undecided (2), never fails.
    assert!(matches!(out.status.code(), Some(0 | 2)), "{shown}");
    assert!(
        shown.contains("| mock | time × seq (paired) |")
            && shown.contains("| +0.0 % |")
            && !shown.contains("| REGRESSED |"),
        "{shown}"
    );
    let undecided = shown.contains("UNDECIDED (exit 2)");
    assert_eq!(undecided, out.status.code() == Some(2), "{shown}");

    // `run --compare` gates in one step, adding rounds while it cannot decide (up
    // to --gate-seconds), and says so with its exit code.
    let s = dir.path().join("again.toml");
    fs::write(&s, SCENARIO.replace("DELAY", "3000")).unwrap();
    let out = harness(
        dir.path(),
        "again",
        &[
            "run",
            s.to_str().unwrap(),
            "--compare",
            b,
            "--gate-seconds",
            "4",
        ],
    );
    let shown = text(&out);
    assert_eq!(out.status.code(), Some(1), "{shown}");
    assert!(shown.contains("Rounds: "), "{shown}");
    let run = fs::read_dir(dir.path().join("again"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap();
    let r: serde_json::Value =
        serde_json::from_slice(&fs::read(run.path().join("results.json")).unwrap()).unwrap();
    let rounds = &r["rounds"];
    assert_eq!(rounds["asked"], 3, "{rounds}");
    let ran = rounds["run"].as_u64().unwrap();
    assert!(
        ran >= 3 && ran as usize * 2 <= r["repetitions"].as_array().unwrap().len(),
        "{rounds}"
    );
    assert_eq!(r["scenario"]["run"]["repetitions"].as_u64(), Some(ran));
    let stopped = rounds["stopped"].as_str().unwrap();
    assert!(
        stopped == "decided" || stopped.contains("time cap of 4 s"),
        "{stopped}"
    );
    // Every repetition long enough to tell records how busy the rest of the
    // machine was (these take milliseconds: /proc/stat's 10 ms ticks cannot).
    for rep in r["repetitions"].as_array().unwrap() {
        let m = &rep["measurement"];
        let wall = m["wall_seconds"].as_f64().unwrap();
        match m.get("machine_load") {
            Some(load) => {
                let other = load["other_cores"].as_f64().unwrap();
                assert!(wall >= 0.25 && other >= 0.0, "{m}");
            }
            None => assert!(wall < 0.25, "{m}"),
        }
    }

    // A baseline that is not there fails before anything runs.
    let out = harness(
        dir.path(),
        "none",
        &["run", s.to_str().unwrap(), "--compare", "nope.json"],
    );
    assert!(!out.status.success());
    assert!(text(&out).contains("nope.json"), "{}", text(&out));
    assert!(!dir.path().join("none").exists());
}

#[test]
fn exports_are_what_the_other_tools_read() {
    let dir = tempfile::tempdir().unwrap();
    let r = run(dir.path(), "r", 0);
    let r = r.to_str().unwrap();
    let export = |format: &str| {
        let out = harness(dir.path(), "x", &["export", r, "--format", format]);
        assert!(out.status.success(), "{}", text(&out));
        String::from_utf8(out.stdout).unwrap()
    };
    let gab: serde_json::Value = serde_json::from_str(&export("github-action-benchmark")).unwrap();
    let entries = gab.as_array().unwrap();
    assert!(entries.iter().any(|e| e["name"] == "gate/sequential"
        && e["unit"] == "fields/s"
        && e["value"].as_f64().unwrap() > 0.0));
    assert!(entries
        .iter()
        .any(|e| e["name"] == "gate/mock × sequential"));
    let bmf: serde_json::Value = serde_json::from_str(&export("bencher")).unwrap();
    let t = &bmf["gate/mock"]["throughput"];
    assert!(t["lower_value"].as_f64().unwrap() <= t["value"].as_f64().unwrap());
    assert!(t["value"].as_f64().unwrap() <= t["upper_value"].as_f64().unwrap());
    assert!(bmf["gate/mock"]["ratio-to-sequential"]["value"]
        .as_f64()
        .is_some());
    let csv = export("csv");
    let lines: Vec<&str> = csv.lines().collect();
    assert!(lines[0].starts_with("scenario,label,backend,repetition"));
    assert!(lines[0].ends_with(
        ",requests,requests_per_second,max_requests_in_flight,http_attempts,s3_request_cost_usd"
    ));
    // No backend here makes object-store requests: those columns are empty.
    assert!(lines[1..].iter().all(|l| l.ends_with(",,,,,")), "{csv}");
    assert_eq!(lines.len(), 1 + 2 * 3, "{csv}");
}

#[test]
fn ceilings_measure_both_and_a_run_with_ceilings_shows_efficiency() {
    let dir = tempfile::tempdir().unwrap();
    let s = dir.path().join("l.toml");
    fs::write(&s, SCENARIO.replace("DELAY", "0")).unwrap();
    let out = harness(dir.path(), "l", &["ceilings", s.to_str().unwrap()]);
    let shown = text(&out);
    assert!(out.status.success(), "{shown}");
    assert!(
        shown.contains("| IO |") && shown.contains("| CPU |"),
        "{shown}"
    );
    assert!(shown.contains("The bound is"), "{shown}");

    let out = harness(
        dir.path(),
        "rl",
        &["run", s.to_str().unwrap(), "--ceilings"],
    );
    let shown = text(&out);
    assert!(out.status.success(), "{shown}");
    assert!(shown.contains("efficiency"), "{shown}");
    let run = fs::read_dir(dir.path().join("rl"))
        .unwrap()
        .flatten()
        .find(|e| !e.file_name().to_string_lossy().contains("io-ceiling"))
        .unwrap()
        .path();
    let r: serde_json::Value =
        serde_json::from_slice(&fs::read(run.join("results.json")).unwrap()).unwrap();
    assert!(r["ceilings"]["cpu_per_second"].as_f64().unwrap() > 0.0);
    assert!(r["ceilings"]["io_per_second"].as_f64().unwrap() > 0.0);
    let md = fs::read_to_string(run.join("report.md")).unwrap();
    assert!(md.contains("efficiency"), "{md}");
}

#[test]
fn limits_is_still_accepted_as_the_old_name_of_ceilings() {
    let dir = tempfile::tempdir().unwrap();
    let help = |args: &[&str]| {
        let out = harness(dir.path(), "x", args);
        assert!(out.status.success(), "{}", text(&out));
        text(&out)
    };
    let shown = help(&["--help"]);
    assert!(
        shown.contains("ceilings") && shown.contains("[alias: limits]"),
        "{shown}"
    );
    assert!(help(&["limits", "--help"]).contains("Usage: harness ceilings"));
    let shown = help(&["run", "--help"]);
    assert!(
        shown.contains("--ceilings") && shown.contains("[alias: --limits]"),
        "{shown}"
    );
}
