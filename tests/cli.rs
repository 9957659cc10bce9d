//! The real `harness` binary, end to end, on tiny scenarios in temporary folders.

use std::fs;
use std::path::Path;
use std::process::Output;

mod common;
use common::text;

fn harness(dir: &Path, args: &[&str]) -> Output {
    common::harness_with(dir, "results", args)
}

fn scenario(dir: &Path, layout: &str, cache: &str) -> String {
    let path = dir.join("tiny.toml");
    fs::write(&path, common::tiny(layout, cache, 2)).unwrap();
    path.to_string_lossy().into_owned()
}

fn only_results(dir: &Path) -> serde_json::Value {
    let runs: Vec<_> = fs::read_dir(dir.join("results"))
        .unwrap()
        .flatten()
        .collect();
    assert_eq!(runs.len(), 1);
    serde_json::from_slice(&fs::read(runs[0].path().join("results.json")).unwrap()).unwrap()
}

#[test]
fn run_verifies_and_writes_results_for_both_layouts() {
    for (layout, cache) in [("files", "warm"), ("container", "cold")] {
        let dir = tempfile::tempdir().unwrap();
        let s = scenario(dir.path(), layout, cache);
        let out = harness(dir.path(), &["run", &s]);
        assert!(out.status.success(), "{}", text(&out));
        let shown = text(&out);
        assert!(
            shown.contains("| sequential |") && shown.contains("yes (2/2)"),
            "{shown}"
        );

        let r = only_results(dir.path());
        assert_eq!(r["schema_version"], 3);
        assert_eq!(r["dataset"]["messages"], 30);
        let reps = r["repetitions"].as_array().unwrap();
        assert_eq!(reps.len(), 2);
        for rep in reps {
            assert_eq!(rep["counts"], true, "{rep}");
            assert_eq!(rep["verification"]["chunks_checked"], 2 * 3 * 9);
            assert_eq!(rep["measurement"]["outcome"]["inputs"], 30);
            assert!(rep["measurement"]["peak_rss_bytes"].as_u64().unwrap() > 0);
            assert_eq!(
                rep["measurement"]["threads"], 1,
                "sequential uses one thread"
            );
            assert_eq!(rep["cache"]["requested"], cache);
        }
        if cache == "cold" {
            assert_eq!(reps[0]["cache"]["fadvise_files"], 2);
        }

        // The output left behind verifies on its own, from its zarr.json.
        let v = harness(dir.path(), &["verify", "data/outputs/tiny"]);
        assert!(
            v.status.success() && text(&v).contains("verified"),
            "{}",
            text(&v)
        );
    }
}

#[test]
fn a_corrupt_input_fails_the_run_and_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let s = scenario(dir.path(), "files", "warm");
    assert!(harness(dir.path(), &["gen", &s]).status.success());
    let victim = dir
        .path()
        .join("data/datasets/tiny/g00001/v0002/s00003.msg");
    let mut bytes = fs::read(&victim).unwrap();
    let n = bytes.len();
    bytes[n - 5] ^= 0xFF;
    fs::write(&victim, bytes).unwrap();
    let out = harness(dir.path(), &["run", &s]);
    assert!(!out.status.success());
    let shown = text(&out);
    assert!(shown.contains("g00001/v0002/s00003.msg"), "{shown}");
    assert!(
        shown.contains("error: 2 of 2 repetitions failed"),
        "{shown}"
    );
    let r = only_results(dir.path());
    assert_eq!(r["repetitions"][0]["counts"], false);
}

#[test]
fn a_tampered_output_fails_verification() {
    let dir = tempfile::tempdir().unwrap();
    let s = scenario(dir.path(), "files", "warm");
    assert!(harness(dir.path(), &["run", &s]).status.success());
    fs::remove_file(dir.path().join("data/outputs/tiny/c/1/2/0/2/1")).unwrap();
    let v = harness(dir.path(), &["verify", "data/outputs/tiny"]);
    assert!(!v.status.success());
    assert!(
        text(&v).contains("missing chunk c/1/2/0/2/1"),
        "{}",
        text(&v)
    );
}

#[test]
fn a_bad_scenario_names_line_and_key_and_fails() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    fs::write(&path, common::tiny("files", "tepid", 2)).unwrap();
    let out = harness(dir.path(), &["run", path.to_str().unwrap()]);
    assert!(!out.status.success());
    let shown = text(&out);
    assert!(
        shown.contains(
            "bad.toml:16:9: [run] cache: unknown variant `tepid`, expected `warm` or `cold`"
        ),
        "{shown}"
    );
    assert!(
        !dir.path().join("results").exists(),
        "nothing runs on a bad scenario"
    );

    let out = harness(dir.path(), &["gen", "missing.toml"]);
    assert!(
        !out.status.success() && text(&out).contains("missing.toml"),
        "{}",
        text(&out)
    );
}

#[test]
fn list_shows_sequential_and_io_uring_status() {
    let dir = tempfile::tempdir().unwrap();
    let out = harness(dir.path(), &["list"]);
    assert!(out.status.success());
    let shown = text(&out);
    assert!(
        shown.contains("| sequential | yes | no | no | no | yes |"),
        "{shown}"
    );
    assert!(shown.contains("io_uring on this machine:"), "{shown}");
}

#[test]
fn read_only_runs_every_backend_and_checks_what_was_read() {
    let mut backends = vec!["sequential", "tokio-rayon", "spawn-blocking"];
    for (name, probe) in [
        (
            "uring",
            backend_uring::probe as fn() -> rechunk_contract::Availability,
        ),
        ("compio-rayon", backend_compio::probe),
    ] {
        match probe() {
            rechunk_contract::Availability::Available => backends.push(name),
            rechunk_contract::Availability::Unavailable(why) => {
                // CI sets HARNESS_REQUIRE_IO_URING where io_uring must work.
                assert!(
                    std::env::var_os("HARNESS_REQUIRE_IO_URING").is_none(),
                    "io_uring is required here but unavailable: {why}"
                );
                eprintln!("{name} left out: {why}")
            }
        }
    }
    for layout in ["files", "container"] {
        let dir = tempfile::tempdir().unwrap();
        let mut text_ = common::tiny(layout, "cold", 2)
            .replace("[run]", "[workload]\nkind = \"read-only\"\n[run]");
        for b in &backends[1..] {
            text_.push_str(&format!(
                "[[backend]]\nname = \"{b}\"\nbytes_in_flight = \"8 MiB\"\n"
            ));
        }
        let path = dir.path().join("ro.toml");
        fs::write(&path, text_).unwrap();
        let out = harness(dir.path(), &["run", path.to_str().unwrap()]);
        let shown = text(&out);
        assert!(out.status.success(), "{shown}");
        assert!(shown.contains("inputs/s (median) | MB/s read"), "{shown}");
        let r = only_results(dir.path());
        let bytes = r["dataset"]["bytes"].as_u64().unwrap();
        let reps = r["repetitions"].as_array().unwrap();
        assert_eq!(reps.len(), 2 * backends.len());
        for rep in reps {
            assert_eq!(rep["counts"], true, "{rep}");
            let m = &rep["measurement"];
            assert_eq!(m["outcome"]["inputs"], 30, "{rep}");
            assert_eq!(m["outcome"]["input_bytes"], bytes, "{rep}");
            assert_eq!(m["outcome"]["outputs"], 0, "{rep}");
        }
        // The harness's own marker (see src/safety.rs) aside.
        let written = fs::read_dir(dir.path().join("data/outputs/tiny"))
            .unwrap()
            .flatten()
            .filter(|e| e.file_name() != ".harness-owned")
            .count();
        assert_eq!(written, 0, "a read-only run wrote output");
    }
}
