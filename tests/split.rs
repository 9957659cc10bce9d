//! A job split into shards (`harness run --shard I/N`) and put together again
//! (`harness merge`), through the real binary: shards on data directories of their
//! own ("hosts") and on one shared directory; a shard killed mid-run named by the
//! merge with the command that reruns it, and the rerun completing the output; a
//! rerun deleting nothing but its own objects; bad shard settings refused; and,
//! with an S3 server configured, shards sharing one S3 output prefix.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

mod common;
use common::text;

/// `harness ARGS` with data in `data` and results in `results`, and extra
/// environment `env`.
fn harness(cwd: &Path, data: &Path, results: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_harness"));
    cmd.args(args)
        .arg("--data-dir")
        .arg(data)
        .arg("--results-dir")
        .arg(results)
        .current_dir(cwd);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("the harness binary runs")
}

/// 2 groups × 6 variables × 8 steps of `n`×`n` fields, `sequential` and
/// `tokio-rayon`, `reps` repetitions; `extra` appended (more backends).
fn scenario(dir: &Path, name: &str, n: u32, reps: u32, extra: &str) -> PathBuf {
    let path = dir.join(format!("{name}.toml"));
    fs::write(
        &path,
        format!(
            r#"
name = "{name}"
[dataset]
groups = 2
variables = 6
steps = 8
ny = {n}
nx = {n}
codec = "zstd"
[output]
cy = 16
cx = 16
[run]
repetitions = {reps}
[[backend]]
name = "sequential"
[[backend]]
name = "tokio-rayon"
io_in_flight = 8
{extra}"#
        ),
    )
    .unwrap();
    path
}

fn run_shard(dir: &Path, host: &str, scenario: &Path, shard: &str) -> Output {
    harness(
        dir,
        &dir.join(host),
        &dir.join("results"),
        &["run", scenario.to_str().unwrap(), "--shard", shard],
        &[],
    )
}

fn merge(dir: &Path) -> Output {
    harness(
        dir,
        &dir.join("merge-data"),
        &dir.join("merge-results"),
        &["merge", dir.join("results").to_str().unwrap()],
        &[],
    )
}

fn cluster(dir: &Path) -> serde_json::Value {
    serde_json::from_slice(&fs::read(dir.join("results/merged/cluster.json")).unwrap()).unwrap()
}

#[test]
fn shards_on_their_own_hosts_merge_into_one_verified_output() {
    let d = tempfile::tempdir().unwrap();
    let s = scenario(d.path(), "split", 32, 2, "");
    for i in 0..3 {
        let o = run_shard(d.path(), &format!("host{i}"), &s, &format!("{i}/3"));
        assert!(o.status.success(), "shard {i}: {}", text(&o));
        assert!(text(&o).contains(&format!("shard {i}/3: ")), "{}", text(&o));
    }
    let o = merge(d.path());
    assert!(o.status.success(), "{}", text(&o));
    let t = text(&o);
    assert!(
        t.contains("complete: every shard ran and the whole output verified"),
        "{t}"
    );
    assert!(t.contains("verified (48 of 48 objects checked)"), "{t}");
    let c = cluster(d.path());
    assert_eq!(c["complete"], true);
    assert_eq!(c["shards"], 3);
    // Every input once: the shards' parts add up to the job.
    let inputs: u64 = c["shard_status"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["inputs"].as_u64().unwrap())
        .sum();
    assert_eq!(inputs, 2 * 6 * 8);
    for b in c["backends"].as_array().unwrap() {
        assert!(b["median_items_per_second"].as_f64().unwrap() > 0.0, "{b}");
        let ratio = b["median_straggler_ratio"].as_f64().unwrap();
        assert!(ratio >= 1.0, "{b}");
        assert_eq!(b["repetitions"].as_array().unwrap().len(), 2);
    }
    // zarr.json is written once, by shard 0; each host holds its part only.
    let out = |i: u32| d.path().join(format!("host{i}/outputs/split"));
    assert!(out(0).join("zarr.json").is_file());
    assert!(!out(1).join("zarr.json").exists() && !out(2).join("zarr.json").exists());
    let groups = |i: u32| -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(out(i).join("c"))
            .unwrap()
            .flat_map(|g| {
                let g = g.unwrap();
                fs::read_dir(g.path()).unwrap().map(move |v| {
                    format!(
                        "{}/{}",
                        g.file_name().to_string_lossy(),
                        v.unwrap().file_name().to_string_lossy()
                    )
                })
            })
            .collect();
        v.sort();
        v
    };
    let all: Vec<String> = (0..3).flat_map(groups).collect();
    let mut unique = all.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(all.len(), 12, "{all:?}");
    assert_eq!(unique.len(), 12, "a row written by two shards: {all:?}");
    let report = fs::read_to_string(d.path().join("results/merged/report.md")).unwrap();
    assert!(report.contains("## Cluster throughput") && report.contains("straggler"));
    assert!(d
        .path()
        .join("results/merged/cluster-timeline.svg")
        .is_file());
    let page = fs::read_to_string(d.path().join("results/merged/report.html")).unwrap();
    assert!(page.contains("id=\"plot-cluster-timeline\"") && page.contains("<svg"));
}

#[test]
fn a_killed_shard_is_named_and_its_rerun_completes_the_output() {
    let d = tempfile::tempdir().unwrap();
    // Big enough that a shard takes a few seconds (debug build): killed mid-run.
    let s = scenario(d.path(), "killed", 96, 4, "");
    for i in [0, 2] {
        let o = run_shard(d.path(), &format!("host{i}"), &s, &format!("{i}/3"));
        assert!(o.status.success(), "{}", text(&o));
    }
    // Shard 1 never ran: missing.
    let o = merge(d.path());
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let t = text(&o);
    assert!(t.contains("shard 1/3: missing"), "{t}");
    let results = d.path().join("results");
    let rerun = format!(
        "rerun it: harness run {} --shard 1/3 --results-dir {}",
        s.display(),
        results.display()
    );
    assert!(t.contains(&rerun), "{t}");
    assert!(
        t.contains("not verified: a shard is missing or failed"),
        "{t}"
    );

    // Shard 1 killed (SIGKILL; its repetition's child dies with it) once its first
    // repetition is recorded: its results have no end.
    let mut child = Command::new(env!("CARGO_BIN_EXE_harness"))
        .args(["run", s.to_str().unwrap(), "--shard", "1/3"])
        .arg("--data-dir")
        .arg(d.path().join("host1"))
        .arg("--results-dir")
        .arg(&results)
        .current_dir(d.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let file = results.join("shard-1-of-3/results.json");
    let start = Instant::now();
    // (Its first repetition's label, not the scenario's backend list, also saved.)
    while !fs::read_to_string(&file).is_ok_and(|t| t.contains("\"warmup\": false")) {
        assert!(
            start.elapsed() < Duration::from_secs(300),
            "shard 1 never saved a repetition"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let o = merge(d.path());
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let t = text(&o);
    assert!(t.contains("shard 1/3: unfinished"), "{t}");
    assert!(t.contains(&rerun), "{t}");

    // Rerun shard 1 alone: the output is complete.
    let o = run_shard(d.path(), "host1", &s, "1/3");
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("replacing the earlier results"),
        "{}",
        text(&o)
    );
    let o = merge(d.path());
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(cluster(d.path())["complete"], true);
}

/// A shard rerun with another chunk grid in the same data directory: the objects
/// the earlier grid left in its own directories go (they would be unexpected).
#[test]
fn a_rerun_with_another_grid_leaves_nothing_of_the_old_one() {
    let d = tempfile::tempdir().unwrap();
    let s = scenario(d.path(), "regrid", 96, 1, "");
    let o = run_shard(d.path(), "h", &s, "1/2");
    assert!(o.status.success(), "{}", text(&o));
    scenario(d.path(), "regrid", 32, 1, "");
    let o = run_shard(d.path(), "h", &s, "1/2");
    assert!(o.status.success(), "{}", text(&o));
}

#[test]
fn an_unfinished_shard_is_named_as_killed_or_still_running() {
    let d = tempfile::tempdir().unwrap();
    let s = scenario(d.path(), "unfinished", 32, 1, "");
    for i in 0..2 {
        let o = run_shard(d.path(), &format!("host{i}"), &s, &format!("{i}/2"));
        assert!(o.status.success(), "{}", text(&o));
    }
    // What a SIGKILL leaves: the results file as last saved, with no end.
    let file = d.path().join("results/shard-1-of-2/results.json");
    let mut r: serde_json::Value = serde_json::from_slice(&fs::read(&file).unwrap()).unwrap();
    r["finished_at"] = serde_json::Value::Null;
    r["repetitions"].as_array_mut().unwrap().pop();
    fs::write(&file, serde_json::to_vec(&r).unwrap()).unwrap();
    let o = merge(d.path());
    assert_eq!(o.status.code(), Some(1));
    let t = text(&o);
    assert!(
        t.contains("shard 1/2: unfinished") && t.contains("it was killed, or is still running"),
        "{t}"
    );
    assert!(t.contains("--shard 1/2"), "{t}");
}

/// Every regular file under `root` with its inode and modification time.
fn identities(root: &Path) -> BTreeMap<PathBuf, (u64, i64, i64)> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in fs::read_dir(&dir).unwrap() {
            let e = e.unwrap();
            let m = fs::symlink_metadata(e.path()).unwrap();
            if m.is_dir() {
                stack.push(e.path());
            } else {
                out.insert(
                    e.path().strip_prefix(root).unwrap().to_path_buf(),
                    (m.ino(), m.mtime(), m.mtime_nsec()),
                );
            }
        }
    }
    out
}

#[test]
fn shards_sharing_a_data_directory_rewrite_only_their_own_objects() {
    let d = tempfile::tempdir().unwrap();
    let s = scenario(d.path(), "shared", 32, 1, "");
    for i in 0..2 {
        let o = run_shard(d.path(), "shared-host", &s, &format!("{i}/2"));
        assert!(o.status.success(), "{}", text(&o));
    }
    let out = d.path().join("shared-host/outputs/shared");
    let before = identities(&out);
    // Shard 0's objects: zarr.json and group 0's rows (shard 0 has the first half).
    let theirs: Vec<&PathBuf> = before
        .keys()
        .filter(|p| p.starts_with("c/0") || p.as_os_str() == "zarr.json")
        .collect();
    assert!(theirs.len() > 1, "{before:?}");
    let o = run_shard(d.path(), "shared-host", &s, "1/2");
    assert!(o.status.success(), "{}", text(&o));
    let after = identities(&out);
    for p in theirs {
        assert_eq!(
            before[p],
            after[p],
            "{} was rewritten by shard 1",
            p.display()
        );
    }
    // Shard 1's own objects were written again.
    let mine: Vec<&PathBuf> = before.keys().filter(|p| p.starts_with("c/1")).collect();
    assert!(!mine.is_empty());
    assert!(mine.iter().all(|p| before[*p] != after[*p]));
    let o = merge(d.path());
    assert!(o.status.success(), "{}", text(&o));
}

#[test]
fn a_link_where_a_shard_deletes_its_objects_is_refused() {
    let d = tempfile::tempdir().unwrap();
    let s = scenario(d.path(), "linked", 32, 1, "");
    let o = run_shard(d.path(), "h", &s, "1/2");
    assert!(o.status.success(), "{}", text(&o));
    // Group 1's directory replaced by a link to someone's folder.
    let theirs = d.path().join("theirs");
    fs::create_dir_all(theirs.join("0/0")).unwrap();
    fs::write(theirs.join("0/0/0"), b"keep").unwrap();
    let g1 = d.path().join("h/outputs/linked/c/1");
    fs::rename(&g1, d.path().join("moved")).unwrap();
    std::os::unix::fs::symlink(&theirs, &g1).unwrap();
    let o = run_shard(d.path(), "h", &s, "1/2");
    assert!(!o.status.success());
    assert!(
        text(&o).contains("is not a directory: refusing to delete under it"),
        "{}",
        text(&o)
    );
    assert_eq!(fs::read(theirs.join("0/0/0")).unwrap(), b"keep");
}

#[test]
fn bad_shard_settings_are_refused_with_a_reason() {
    let d = tempfile::tempdir().unwrap();
    let s = scenario(d.path(), "bad", 16, 1, "");
    let sp = s.to_str().unwrap();
    let data = d.path().join("data");
    let res = d.path().join("results");
    for (args, env, says) in [
        (vec!["run", sp, "--shard", "3/3"], vec![], "from 0 to 2"),
        (vec!["run", sp, "--shard", "1"], vec![], "I/N"),
        (
            vec!["run", sp],
            vec![("JOB_COMPLETION_INDEX", "1")],
            "HARNESS_SHARDS is not",
        ),
        (
            vec!["run", sp],
            vec![
                ("SLURM_ARRAY_TASK_ID", "7"),
                ("SLURM_ARRAY_TASK_COUNT", "4"),
            ],
            "from 0 to 3",
        ),
        (
            vec!["run", sp, "--shard", "0/2", "--results-url", "/tmp/x"],
            vec![],
            "not a store URL",
        ),
        (
            vec!["run", sp, "--results-url", "s3://b/p"],
            vec![],
            "is for a shard",
        ),
        (
            vec!["run", sp, "--shard", "0/2", "--workload", "read-only"],
            vec![],
            "is not split",
        ),
        (
            vec!["run", sp, "--shard", "0/2", "--barrier"],
            vec![],
            "--barrier needs the job's id",
        ),
        (
            vec!["run", sp, "--shard", "0/2", "--job", "../x"],
            vec![],
            "job id `../x`",
        ),
        (
            vec![
                "run",
                sp,
                "--shard",
                "0/2",
                "--barrier",
                "--job",
                "j",
                "--barrier-timeout",
                "1e20",
            ],
            vec![],
            "at most a day",
        ),
        (
            vec!["run", sp, "--shard", "0/4000000000"],
            vec![],
            "at most 100000",
        ),
    ] {
        let o = harness(d.path(), &data, &res, &args, &env);
        assert!(!o.status.success(), "{args:?} {env:?}");
        assert!(text(&o).contains(says), "{args:?} {env:?}: {}", text(&o));
    }
    // The environment of a Kubernetes Indexed Job names the shard.
    let o = harness(
        d.path(),
        &data,
        &res,
        &["run", sp],
        &[("JOB_COMPLETION_INDEX", "1"), ("HARNESS_SHARDS", "2")],
    );
    assert!(o.status.success(), "{}", text(&o));
    assert!(res.join("shard-1-of-2/results.json").is_file());
    // A merge of nothing says what it looked for.
    let empty = d.path().join("empty");
    fs::create_dir_all(&empty).unwrap();
    let o = harness(
        d.path(),
        &data,
        &res,
        &["merge", empty.to_str().unwrap()],
        &[],
    );
    assert!(!o.status.success());
    assert!(text(&o).contains("no shard results"), "{}", text(&o));
}

/// Two shards writing one S3 prefix (the configured server: `eval "$(scripts/s3-server
/// env)"`; required in CI): each deletes only its own objects before its run, and
/// the merge verifies the prefix as one array.
#[test]
fn shards_share_one_s3_output_prefix() {
    let Some(bucket) = common::s3_bucket_or_skip() else {
        return;
    };
    let d = tempfile::tempdir().unwrap();
    let tag = format!(
        "{}-{}",
        std::process::id(),
        d.path().file_name().unwrap().to_string_lossy()
    );
    let input = format!("s3://{bucket}/tests/split-in-{tag}");
    let output = format!("s3://{bucket}/tests/split-out-{tag}");
    let results_url = format!("s3://{bucket}/tests/split-results-{tag}");
    let extra = format!(
        "[[backend]]\nname = \"object-store\"\nlabel = \"s3-to-s3\"\ninput = \"{input}\"\noutput = \"{output}\"\nio_in_flight = 8\n"
    );
    let s = scenario(d.path(), "split-s3", 32, 1, &extra);
    let sp = s.to_str().unwrap();
    // Not staged: a shard refuses to upload, and says how to stage.
    let o = run_shard(d.path(), "host0", &s, "0/2");
    assert!(!o.status.success());
    assert!(
        text(&o).contains(&format!("harness gen {sp} --store {input}")),
        "{}",
        text(&o)
    );
    let o = harness(
        d.path(),
        &d.path().join("host0"),
        &d.path().join("r"),
        &["gen", sp, "--store", &input],
        &[],
    );
    assert!(o.status.success(), "{}", text(&o));
    for i in 0..2 {
        let o = harness(
            d.path(),
            &d.path().join(format!("host{i}")),
            &d.path().join("results"),
            &[
                "run",
                sp,
                "--shard",
                &format!("{i}/2"),
                "--results-url",
                &results_url,
            ],
            &[],
        );
        assert!(o.status.success(), "shard {i}: {}", text(&o));
        assert!(text(&o).contains("results uploaded to"), "{}", text(&o));
    }
    // Shard 1 again: shard 0's objects in the prefix stay (the merge would miss them).
    let o = run_shard(d.path(), "host1", &s, "1/2");
    assert!(o.status.success(), "{}", text(&o));
    let out = d.path().join("merged");
    let o = harness(
        d.path(),
        &d.path().join("m"),
        &d.path().join("mr"),
        &["merge", &results_url, "--out", out.to_str().unwrap()],
        &[],
    );
    assert!(o.status.success(), "{}", text(&o));
    let t = text(&o);
    assert!(
        t.contains(&format!(
            "{output} (written by s3-to-s3): verified (48 of 48 objects checked)"
        )),
        "{t}"
    );
}

/// The user's own files (no closed form): each shard keeps its part of the
/// reference output, and the merge compares the whole output with them together.
#[test]
fn a_split_of_your_own_files_is_verified_against_the_shards_references() {
    let d = tempfile::tempdir().unwrap();
    let files = d.path().join("files");
    common::example(d.path(), &files);
    let s = d.path().join("own.toml");
    fs::write(
        &s,
        format!(
            r#"
name = "own-split"
[dataset]
kind = "grib2-dir"
root = "{}"
from = "keys"
[output]
cy = 8
cx = 16
[run]
repetitions = 1
[[backend]]
name = "sequential"
[[backend]]
name = "tokio-rayon"
"#,
            files.display()
        ),
    )
    .unwrap();
    for i in 0..2 {
        let o = run_shard(d.path(), &format!("host{i}"), &s, &format!("{i}/2"));
        assert!(o.status.success(), "{}", text(&o));
    }
    let o = merge(d.path());
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o)
            .contains("verified (36 of 36 objects checked against the shards' reference outputs)"),
        "{}",
        text(&o)
    );
}

/// `--barrier`: shards started apart begin every repetition together, so every
/// repetition's runs overlap and the merge says the shards were aligned.
#[test]
fn shards_at_the_barrier_start_each_repetition_together() {
    let d = tempfile::tempdir().unwrap();
    let s = scenario(d.path(), "barrier", 128, 2, "");
    let start = |i: u32| {
        Command::new(env!("CARGO_BIN_EXE_harness"))
            .args([
                "run",
                s.to_str().unwrap(),
                "--shard",
                &format!("{i}/2"),
                "--barrier",
                "--job",
                "job-1",
            ])
            .arg("--data-dir")
            .arg(d.path().join(format!("host{i}")))
            .arg("--results-dir")
            .arg(d.path().join("results"))
            .current_dir(d.path())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let a = start(0);
    // The second shard starts a second later: the first waits for it.
    std::thread::sleep(Duration::from_secs(1));
    let b = start(1);
    for c in [a, b] {
        let o = c.wait_with_output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    let r: serde_json::Value = serde_json::from_slice(
        &fs::read(d.path().join("results/shard-0-of-2/results.json")).unwrap(),
    )
    .unwrap();
    let first = &r["repetitions"][0]["barrier"];
    assert!(first["wait_seconds"].as_f64().unwrap() > 0.3, "{first}");
    let o = merge(d.path());
    assert!(o.status.success(), "{}", text(&o));
    let c = cluster(d.path());
    for b in c["backends"].as_array().unwrap() {
        for r in b["repetitions"].as_array().unwrap() {
            assert_eq!(r["barrier"], true, "{r}");
            // Started within the children's start-up of each other, not the
            // second that lay between the shards' starts.
            assert!(r["start_spread_seconds"].as_f64().unwrap() < 0.5, "{r}");
        }
    }
}

/// Results another job left in the same folder are not this job's: a shard of
/// another job id is named as such, never counted.
#[test]
fn a_shard_left_by_another_job_is_refused() {
    let d = tempfile::tempdir().unwrap();
    let s = scenario(d.path(), "jobs", 32, 1, "");
    let run = |i: u32, job: &str| {
        harness(
            d.path(),
            &d.path().join(format!("host{i}")),
            &d.path().join("results"),
            &[
                "run",
                s.to_str().unwrap(),
                "--shard",
                &format!("{i}/3"),
                "--job",
                job,
            ],
            &[],
        )
    };
    for (i, job) in [(0, "new"), (1, "old"), (2, "new")] {
        let o = run(i, job);
        assert!(o.status.success(), "{}", text(&o));
    }
    let o = merge(d.path());
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let t = text(&o);
    assert!(
        t.contains("shard 1/3: mismatch") && t.contains("of job old, the other shards' of job new"),
        "{t}"
    );
    assert!(
        t.contains("--shard 1/3 --results-dir") && t.contains(" --job new\n"),
        "{t}"
    );
    // Rerun as a shard of this job: counted.
    let o = run(1, "new");
    assert!(o.status.success(), "{}", text(&o));
    assert!(d
        .path()
        .join("results/shard-1-of-3/results.previous.json")
        .is_file());
    let o = merge(d.path());
    assert!(o.status.success(), "{}", text(&o));
}

/// What a shard moves aside (its earlier results) and what a merge of an S3
/// location deletes (its own earlier copies) must be the harness's: a file of
/// anyone else's in those places, or a link, is refused and stays byte-identical.
#[test]
fn files_the_harness_did_not_write_are_never_moved_or_deleted() {
    let d = tempfile::tempdir().unwrap();
    let s = scenario(d.path(), "foreign", 16, 1, "");
    let folder = d.path().join("results/shard-0-of-2");
    fs::create_dir_all(&folder).unwrap();
    fs::write(folder.join("results.json"), b"my notes").unwrap();
    let o = run_shard(d.path(), "h", &s, "0/2");
    assert!(!o.status.success());
    assert!(
        text(&o).contains("is not shard 0/2's results file"),
        "{}",
        text(&o)
    );
    assert_eq!(fs::read(folder.join("results.json")).unwrap(), b"my notes");

    // A shard's own results move aside, but not over someone's results.previous.json.
    fs::remove_file(folder.join("results.json")).unwrap();
    let o = run_shard(d.path(), "h", &s, "0/2");
    assert!(o.status.success(), "{}", text(&o));
    let ours = fs::read(folder.join("results.json")).unwrap();
    fs::write(folder.join("results.previous.json"), b"keep").unwrap();
    let o = run_shard(d.path(), "h", &s, "0/2");
    assert!(!o.status.success());
    assert_eq!(
        fs::read(folder.join("results.previous.json")).unwrap(),
        b"keep"
    );
    assert_eq!(fs::read(folder.join("results.json")).unwrap(), ours);

    // A merge's copy folder that holds someone's files, or is a link: refused
    // before anything is fetched (no S3 server is needed to get that far).
    let merge_s3 = |out: &Path| {
        harness(
            d.path(),
            &d.path().join("m"),
            &d.path().join("mr"),
            &[
                "merge",
                "s3://bucket/prefix",
                "--out",
                out.to_str().unwrap(),
            ],
            &[],
        )
    };
    let out = d.path().join("out");
    fs::create_dir_all(out.join("shards/shard-0-of-2")).unwrap();
    fs::write(out.join("shards/shard-0-of-2/results.json"), b"theirs").unwrap();
    let o = merge_s3(&out);
    assert!(!o.status.success());
    assert!(text(&o).contains("did not put there"), "{}", text(&o));
    assert_eq!(
        fs::read(out.join("shards/shard-0-of-2/results.json")).unwrap(),
        b"theirs"
    );
    let linked = d.path().join("linked");
    fs::create_dir_all(&linked).unwrap();
    std::os::unix::fs::symlink(out.join("shards"), linked.join("shards")).unwrap();
    let o = merge_s3(&linked);
    assert!(!o.status.success());
    assert!(
        text(&o).contains("is not a folder (a link or a file)"),
        "{}",
        text(&o)
    );
    assert_eq!(
        fs::read(out.join("shards/shard-0-of-2/results.json")).unwrap(),
        b"theirs"
    );
}
