//! The sharded output layout end to end: every backend writes it and it verifies,
//! `harness verify` reads it back from its own zarr.json and names a damaged shard,
//! and (when an S3 server is configured) the object-store backend writes it to S3.

use std::fs;
use std::path::Path;
use std::process::Output;

mod common;
use common::text;

fn harness(dir: &Path, args: &[&str]) -> Output {
    common::harness_with(dir, "results", args)
}

/// 2 groups × 5 variables × 4 steps of 12 × 10 in 5 × 4 chunks (a 3 × 3 chunk
/// grid), in shards of 2 variables × 2 × 2 chunks: edge shards along every axis.
const SCENARIO: &str = r#"
name = "tiny-sharded"
[dataset]
groups = 2
variables = 5
steps = 4
ny = 12
nx = 10
codec = "lz4"
[output]
layout = "sharded"
cy = 5
cx = 4
shard = [1, 2, 1, 2, 2]
[run]
repetitions = 1
"#;

/// Shards per group: 3 blocks of variables × 2 × 2.
const SHARDS: u64 = 2 * 3 * 2 * 2;

const BACKENDS: [&str; 7] = [
    "sequential",
    "tokio-rayon",
    "spawn-blocking",
    "uring",
    "uring-workers",
    "compio-rayon",
    "object-store",
];

fn results(dir: &Path) -> serde_json::Value {
    let runs: Vec<_> = fs::read_dir(dir.join("results"))
        .unwrap()
        .flatten()
        .collect();
    assert_eq!(runs.len(), 1);
    serde_json::from_slice(&fs::read(runs[0].path().join("results.json")).unwrap()).unwrap()
}

#[test]
fn every_backend_writes_sharded_output_that_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = SCENARIO.to_string();
    for b in BACKENDS {
        // The tightest budget is a shard's two variables; 1 MiB is well above it.
        s += &format!("[[backend]]\nname = \"{b}\"\nbytes_in_flight = \"1 MiB\"\n");
    }
    let path = dir.path().join("sharded.toml");
    fs::write(&path, s).unwrap();
    let out = harness(dir.path(), &["run", path.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));

    let r = results(dir.path());
    assert_eq!(r["scenario"]["output"]["layout"], "sharded");
    assert_eq!(
        r["scenario"]["output"]["params"]["shard"],
        serde_json::json!([1, 2, 1, 2, 2])
    );
    let skipped: Vec<&str> = r["skipped"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["label"].as_str().unwrap())
        .collect();
    let reps = r["repetitions"].as_array().unwrap();
    assert_eq!(reps.len() + skipped.len(), BACKENDS.len(), "{r}");
    for b in BACKENDS {
        // io_uring may be unavailable here; every other backend must have run.
        if skipped.contains(&b) {
            assert!(
                b.starts_with("uring") || b == "compio-rayon",
                "{b} was skipped"
            );
            continue;
        }
        let rep = reps.iter().find(|x| x["label"] == b).unwrap();
        assert_eq!(rep["counts"], true, "{b}: {rep}");
        let v = &rep["verification"];
        assert_eq!(v["chunks_expected"], SHARDS, "{b}");
        assert_eq!(v["chunks_checked"], SHARDS, "{b}");
        assert_eq!(rep["measurement"]["outcome"]["outputs"], SHARDS + 1, "{b}");
    }

    // The output left behind verifies from its own zarr.json.
    let v = harness(dir.path(), &["verify", "data/outputs/tiny-sharded"]);
    assert!(
        v.status.success() && text(&v).contains("verified"),
        "{}",
        text(&v)
    );
}

#[test]
fn a_damaged_shard_fails_verification_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sharded.toml");
    fs::write(
        &path,
        format!("{SCENARIO}[[backend]]\nname = \"sequential\"\n"),
    )
    .unwrap();
    let out = harness(dir.path(), &["run", path.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    let out_dir = dir.path().join("data/outputs/tiny-sharded");
    let verify = || {
        let v = harness(dir.path(), &["verify", "data/outputs/tiny-sharded"]);
        assert!(!v.status.success(), "{}", text(&v));
        text(&v)
    };

    // A flipped bit in the index: its checksum no longer matches.
    let shard = out_dir.join("c/1/2/0/1/1");
    let good = fs::read(&shard).unwrap();
    let mut bad = good.clone();
    let n = bad.len();
    bad[n - 9] ^= 0x10;
    fs::write(&shard, &bad).unwrap();
    let shown = verify();
    assert!(
        shown.contains("c/1/2/0/1/1: shard index checksum mismatch"),
        "{shown}"
    );

    // Cut short: the index is not where it should be.
    fs::write(&shard, &good[..good.len() / 2]).unwrap();
    let shown = verify();
    assert!(shown.contains("c/1/2/0/1/1: "), "{shown}");

    // Shorter than its index (1 variable of 2 × 2 chunks: 8 positions, 132 bytes).
    fs::write(&shard, &good[..100]).unwrap();
    let shown = verify();
    assert!(
        shown.contains(
            "c/1/2/0/1/1: truncated shard: 100 bytes, shorter than its index of 132 bytes"
        ),
        "{shown}"
    );

    // Missing altogether.
    fs::remove_file(&shard).unwrap();
    assert!(verify().contains("missing shard c/1/2/0/1/1"));
}

/// With an S3 endpoint configured (`eval "$(scripts/s3-server env)"`), the
/// object-store backend writes the sharded output to S3, from local and from S3
/// inputs, and the harness verifies it there.
#[test]
fn sharded_output_on_s3_verifies() {
    let Some(bucket) = common::s3_bucket_or_skip() else {
        return;
    };
    let prefix = format!("s3://{bucket}/tests/sharded-{}", std::process::id());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sharded.toml");
    fs::write(
        &path,
        format!(
            "{SCENARIO}\
             [[backend]]\nname = \"object-store\"\nlabel = \"to-s3\"\n\
             output = \"{prefix}/out\"\n\
             [[backend]]\nname = \"object-store\"\nlabel = \"s3-to-s3\"\n\
             input = \"{prefix}/in\"\noutput = \"{prefix}/out\"\n"
        ),
    )
    .unwrap();
    let out = harness(dir.path(), &["run", path.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    let r = results(dir.path());
    for rep in r["repetitions"].as_array().unwrap() {
        assert_eq!(rep["counts"], true, "{rep}");
        assert_eq!(rep["verification"]["chunks_checked"], SHARDS, "{rep}");
        let details = &rep["measurement"]["outcome"]["details"];
        assert_eq!(details["requests_put"], SHARDS + 1, "{rep}");
    }
}
