//! Faults injected on purpose, end to end through the real binary: every case
//! asserts the exit code, the message, and that everything outside the harness's
//! own outputs is byte-identical before and after (README, "Safety").

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::symlink;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

mod common;
use common::{snapshot, text, Mount};

/// The common small scenario in the files layout, one repetition.
fn tiny(cache: &str) -> String {
    common::tiny("files", cache, 1)
}

/// Large enough that generating it, or one repetition, takes seconds in a debug
/// build: 20,000 files of 64 × 64.
const SLOW: &str = r#"
name = "slow"
[dataset]
groups = 1
variables = 200
steps = 100
ny = 64
nx = 64
[run]
repetitions = REPS
[[backend]]
name = "sequential"
"#;

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    fs::write(&path, text).unwrap();
    path.to_string_lossy().into_owned()
}

fn command(dir: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_harness"));
    c.args(args)
        .arg("--data-dir")
        .arg(dir.join("data"))
        .arg("--results-dir")
        .arg(dir.join("results"))
        .current_dir(dir)
        .stdin(Stdio::null());
    c
}

/// Runs the harness; fails the test if it has not ended within `limit`.
fn harness(dir: &Path, args: &[&str], limit: Duration) -> (ExitStatus, String) {
    let child = command(dir, args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    finish(child, limit)
}

fn finish(mut child: Child, limit: Duration) -> (ExitStatus, String) {
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > limit {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!("the harness hung for {limit:?}:\n{}", text(&out));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    (out.status, text(&out))
}

/// A folder holding files the harness must never touch.
fn precious(at: &Path) -> BTreeMap<PathBuf, String> {
    fs::create_dir_all(at.join("sub")).unwrap();
    fs::write(at.join("keep.txt"), b"not the harness's").unwrap();
    fs::write(at.join("sub/zarr.json"), b"{}").unwrap();
    snapshot(at)
}

fn gen(dir: &Path, scenario: &str) {
    let (status, out) = harness(dir, &["gen", scenario], Duration::from_secs(120));
    assert!(status.success(), "{out}");
}

// ------------------------------------------------------------------ data safety

#[test]
fn a_symlinked_outputs_folder_is_refused_and_its_target_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let s = write(dir.path(), "tiny.toml", &tiny("warm"));
    gen(dir.path(), &s);
    let elsewhere = dir.path().join("elsewhere");
    precious(&elsewhere);
    fs::create_dir_all(elsewhere.join("tiny")).unwrap();
    fs::write(elsewhere.join("tiny/chunk"), b"also not ours").unwrap();
    let before_all = snapshot(&elsewhere);
    symlink(&elsewhere, dir.path().join("data/outputs")).unwrap();
    let (status, out) = harness(dir.path(), &["run", &s], Duration::from_secs(60));
    assert_eq!(status.code(), Some(1), "{out}");
    assert!(
        out.contains("through a symbolic link") && out.contains("data/outputs/tiny"),
        "{out}"
    );
    assert_eq!(snapshot(&elsewhere), before_all);
}

#[test]
fn a_symlinked_dataset_folder_is_never_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let elsewhere = dir.path().join("elsewhere");
    let before = precious(&elsewhere);
    fs::create_dir_all(dir.path().join("data")).unwrap();
    symlink(&elsewhere, dir.path().join("data/datasets")).unwrap();
    let s = write(dir.path(), "tiny.toml", &tiny("warm"));
    let (status, out) = harness(dir.path(), &["run", &s], Duration::from_secs(60));
    assert_eq!(status.code(), Some(1), "{out}");
    assert!(out.contains("through a symbolic link"), "{out}");
    assert_eq!(snapshot(&elsewhere), before);
}

#[test]
fn output_roots_outside_outputs_are_refused_with_line_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let s = write(dir.path(), "tiny.toml", &tiny("warm"));
    gen(dir.path(), &s);
    let data = dir.path().join("data");
    let before = snapshot(&data);
    for root in [
        "./datasets",
        "datasets",
        "outputs/../datasets",
        "../results",
        "/tmp",
        "outputs",
        "outputs/.trash",
        ".",
    ] {
        let text = tiny("warm").replace("[output]\n", &format!("[output]\nroot = \"{root}\"\n"));
        let bad = write(dir.path(), "bad.toml", &text);
        let (status, out) = harness(dir.path(), &["run", &bad], Duration::from_secs(30));
        assert_eq!(status.code(), Some(1), "{root}: {out}");
        assert!(
            out.contains("bad.toml:12:8: [output] root") && out.contains("inside `outputs/`"),
            "{root}: {out}"
        );
    }
    // The lock file is the only thing a refused run may leave.
    let mut after = snapshot(&data);
    after.retain(|p, _| !p.ends_with(".harness.lock"));
    let mut before = before;
    before.retain(|p, _| !p.ends_with(".harness.lock"));
    assert_eq!(after, before);
}

#[test]
fn a_directory_without_the_marker_is_never_emptied() {
    let dir = tempfile::tempdir().unwrap();
    let s = write(dir.path(), "tiny.toml", &tiny("warm"));
    let theirs = dir.path().join("data/outputs/tiny");
    let before = precious(&theirs);
    let (status, out) = harness(dir.path(), &["run", &s], Duration::from_secs(60));
    assert_eq!(status.code(), Some(1), "{out}");
    assert!(
        out.contains("no .harness-owned marker") && out.contains("outputs/tiny"),
        "{out}"
    );
    assert_eq!(snapshot(&theirs), before);
    // The same for a dataset directory it did not make, even with --force.
    let theirs = dir.path().join("data/datasets/other");
    let before = precious(&theirs);
    let text = tiny("warm").replace(
        "codec = \"lz4\"\n",
        "codec = \"lz4\"\nroot = \"datasets/other\"\n",
    );
    let s = write(dir.path(), "other.toml", &text);
    let (status, out) = harness(dir.path(), &["gen", "--force", &s], Duration::from_secs(60));
    assert_eq!(status.code(), Some(1), "{out}");
    assert!(out.contains("no .harness-owned marker"), "{out}");
    assert_eq!(snapshot(&theirs), before);
}

#[test]
fn a_trash_the_harness_did_not_make_is_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let s = write(dir.path(), "tiny.toml", &tiny("warm"));
    // Where earlier versions kept their trash: never touched now.
    let old = dir.path().join("data/.trash");
    let old_before = precious(&old);
    let (status, out) = harness(dir.path(), &["run", &s], Duration::from_secs(60));
    assert!(status.success(), "{out}");
    assert_eq!(snapshot(&old), old_before);
    // A foreign folder where the harness keeps its trash: refused, kept.
    let trash = dir.path().join("data/outputs/.trash");
    let before = precious(&trash);
    let (status, out) = harness(dir.path(), &["run", &s], Duration::from_secs(60));
    assert_eq!(status.code(), Some(1), "{out}");
    assert!(
        out.contains("outputs/.trash") && out.contains("marker"),
        "{out}"
    );
    assert_eq!(snapshot(&trash), before);
}

#[test]
fn an_output_root_over_the_results_folder_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let s = write(dir.path(), "tiny.toml", &tiny("warm"));
    let results = dir.path().join("data/outputs/tiny");
    let before = precious(&results);
    let child = Command::new(env!("CARGO_BIN_EXE_harness"))
        .args(["run", &s, "--data-dir"])
        .arg(dir.path().join("data"))
        .arg("--results-dir")
        .arg(&results)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (status, out) = finish(child, Duration::from_secs(60));
    assert_eq!(status.code(), Some(1), "{out}");
    assert!(out.contains("overlaps the results directory"), "{out}");
    assert_eq!(snapshot(&results), before);
}

#[test]
fn outputs_on_another_filesystem_are_emptied_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let s = write(dir.path(), "tiny.toml", &tiny("warm"));
    // outputs/ on its own filesystem, and the output root a mount point of a third.
    let Some(_outputs) = Mount::tmpfs(&dir.path().join("data/outputs"), "size=64m") else {
        eprintln!("skipped: mounting a tmpfs needs root");
        return;
    };
    let _root = Mount::tmpfs(&dir.path().join("data/outputs/tiny"), "size=64m").unwrap();
    // Three repetitions: the output is emptied twice.
    let (status, out) = harness(
        dir.path(),
        &["run", &s, "--repetitions", "3"],
        Duration::from_secs(120),
    );
    assert!(status.success(), "{out}");
    assert!(out.contains("yes (3/3)"), "{out}");
}

// ------------------------------------------------------------ one run at a time

#[test]
fn a_second_run_on_the_same_data_directory_refuses_naming_the_first() {
    let dir = tempfile::tempdir().unwrap();
    let slow = write(dir.path(), "slow.toml", &SLOW.replace("REPS", "1"));
    let first = command(dir.path(), &["run", &slow])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let lock = dir.path().join("data/.harness.lock");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !fs::read_to_string(&lock).is_ok_and(|t| t.starts_with(&first.id().to_string())) {
        assert!(
            Instant::now() < deadline,
            "the first run never took the lock"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let tiny = write(dir.path(), "tiny.toml", &tiny("warm"));
    for args in [vec!["run", &tiny], vec!["gen", &tiny]] {
        let (status, out) = harness(dir.path(), &args, Duration::from_secs(30));
        assert_eq!(status.code(), Some(1), "{out}");
        assert!(
            out.contains(&format!("another harness (pid {})", first.id())),
            "{out}"
        );
    }
    assert!(!dir.path().join("data/datasets/tiny").exists());
    // SAFETY: kill on our own child.
    unsafe { libc::kill(first.id() as i32, libc::SIGTERM) };
    let (status, out) = finish(first, Duration::from_secs(30));
    assert_eq!(status.code(), Some(143), "{out}");
}

// ------------------------------------------------------------------ bad inputs

fn run_with_input(make: impl Fn(&Path)) -> (ExitStatus, String) {
    let dir = tempfile::tempdir().unwrap();
    for cache in ["warm", "cold"] {
        let s = write(dir.path(), "tiny.toml", &tiny(cache));
        gen(dir.path(), &s);
        let victim = dir
            .path()
            .join("data/datasets/tiny/g00001/v0002/s00003.msg");
        fs::remove_file(&victim).unwrap();
        make(&victim);
        let (status, out) = harness(dir.path(), &["run", &s], Duration::from_secs(60));
        assert_eq!(status.code(), Some(1), "{cache}: {out}");
        assert!(out.contains("g00001/v0002/s00003.msg"), "{cache}: {out}");
        if cache == "cold" {
            return (status, out);
        }
        let _ = fs::remove_file(&victim);
        harness(dir.path(), &["gen", "--force", &s], Duration::from_secs(60));
    }
    unreachable!()
}

#[test]
fn a_fifo_input_fails_the_run_naming_it_instead_of_hanging() {
    let (_, out) = run_with_input(|p| {
        let c = std::ffi::CString::new(p.to_str().unwrap()).unwrap();
        // SAFETY: a NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
    });
    assert!(out.contains("FIFO"), "{out}");
}

#[test]
fn a_dev_zero_input_fails_the_run_naming_it() {
    let (_, out) = run_with_input(|p| symlink("/dev/zero", p).unwrap());
    assert!(out.contains("not a regular file"), "{out}");
}

#[test]
fn a_damaged_dataset_says_how_to_fix_it() {
    let dir = tempfile::tempdir().unwrap();
    let s = write(dir.path(), "tiny.toml", &tiny("warm"));
    gen(dir.path(), &s);
    fs::remove_file(
        dir.path()
            .join("data/datasets/tiny/g00000/v0001/s00004.msg"),
    )
    .unwrap();
    let (status, out) = harness(dir.path(), &["run", &s], Duration::from_secs(60));
    assert_eq!(status.code(), Some(1), "{out}");
    assert!(
        out.contains("damaged or incomplete: 29 files where the generation wrote 30")
            && out.contains(&format!("harness gen --force {s}")),
        "{out}"
    );
    let (status, out) = harness(dir.path(), &["gen", "--force", &s], Duration::from_secs(60));
    assert!(status.success(), "{out}");
    let (status, out) = harness(dir.path(), &["run", &s], Duration::from_secs(60));
    assert!(status.success(), "{out}");
}

#[test]
fn oversized_scenarios_are_refused_before_anything_is_made() {
    let dir = tempfile::tempdir().unwrap();
    let base = tiny("warm");
    for (from, to, line_key) in [
        (
            "groups = 2",
            "groups = 4000000000",
            "5:10: [dataset] groups",
        ),
        (
            "ny = 12\nnx = 10",
            "ny = 1000000\nnx = 1000000",
            "8:6: [dataset] ny",
        ),
        (
            "bytes_in_flight = \"8 MiB\"",
            "bytes_in_flight = \"1 KiB\"",
            "19:19: [[backend]] sequential: bytes_in_flight",
        ),
        (
            "bytes_in_flight = \"8 MiB\"",
            "bytes_in_flight = \"8 MiB\"\ncpu_threads = 100000",
            "20:15: [[backend]] cpu_threads",
        ),
        (
            "repetitions = 1",
            "repetitions = 4000000000",
            "15:15: [run] repetitions",
        ),
        (
            "variables = 3\nsteps = 5",
            "variables = 4000000\nsteps = 2000",
            "5:10: [dataset] groups, variables, steps",
        ),
    ] {
        assert!(base.contains(from), "{from}");
        let s = write(dir.path(), "big.toml", &base.replace(from, to));
        for cmd in ["run", "gen"] {
            let (status, out) = harness(dir.path(), &[cmd, &s], Duration::from_secs(30));
            assert_eq!(status.code(), Some(1), "{to}: {out}");
            assert!(out.contains(&format!("big.toml:{line_key}")), "{to}: {out}");
            assert!(!out.contains("panicked"), "{out}");
        }
    }
    // Nothing was generated or allocated for any of them.
    assert!(!dir.path().join("data/datasets").exists());
}

#[test]
fn a_dataset_larger_than_the_disk_is_refused_with_the_numbers() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let Some(_small) = Mount::tmpfs(&data, "size=8m") else {
        eprintln!("skipped: mounting a small tmpfs needs root");
        return;
    };
    let s = write(dir.path(), "slow.toml", &SLOW.replace("REPS", "1"));
    let (status, out) = harness(dir.path(), &["gen", &s], Duration::from_secs(60));
    assert_eq!(status.code(), Some(1), "{out}");
    assert!(
        out.contains("the dataset needs about") && out.contains("is free"),
        "{out}"
    );
    assert!(!data.join("datasets/slow").exists(), "{out}");
}

#[test]
fn verify_on_something_that_is_not_an_output_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let not_output = dir.path().join("plain");
    precious(&not_output);
    for target in [not_output.clone(), not_output.join("keep.txt")] {
        let (status, out) = harness(
            dir.path(),
            &["verify", target.to_str().unwrap()],
            Duration::from_secs(30),
        );
        assert_eq!(status.code(), Some(1), "{out}");
        assert!(out.contains("is not a harness output"), "{out}");
    }
}

// --------------------------------------------------------------------- signals

/// The pids of `parent`'s children whose command line holds `__rep`.
fn rep_children(parent: u32) -> Vec<u32> {
    let mut out = Vec::new();
    for e in fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let ppid = stat
            .rsplit(')')
            .next()
            .and_then(|r| r.split_whitespace().nth(1))
            .and_then(|p| p.parse::<u32>().ok());
        let cmd = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        if ppid == Some(parent) && String::from_utf8_lossy(&cmd).contains("__rep") {
            out.push(pid);
        }
    }
    out
}

/// Whether `pid` is gone (or a zombie nobody will run again).
fn gone(pid: u32) -> bool {
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let state = fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|s| s.rsplit(')').next().map(|r| r.trim().chars().next()));
        if matches!(state, None | Some(Some('Z')) | Some(Some('X'))) {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn wait_until(what: &str, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !ready() {
        assert!(Instant::now() < deadline, "never saw: {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Sends `signal` to the harness (or its whole process group, as a terminal's
/// Ctrl-C does) once `ready` holds; returns the exit status, output and the time
/// from the signal to the exit.
fn interrupt(
    dir: &Path,
    args: &[&str],
    signal: i32,
    group: bool,
    ready: impl Fn(u32) -> bool,
) -> (ExitStatus, String, Duration) {
    let child = command(dir, args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .unwrap();
    let pid = child.id();
    wait_until("the moment to send the signal", || ready(pid));
    let sent = Instant::now();
    let target = if group { -(pid as i32) } else { pid as i32 };
    // SAFETY: kill on our own child (or its process group).
    unsafe { libc::kill(target, signal) };
    let (status, out) = finish(child, Duration::from_secs(30));
    (status, out, sent.elapsed())
}

#[test]
fn a_signal_during_generation_stops_it_between_files() {
    for (signal, code) in [(libc::SIGINT, 130), (libc::SIGTERM, 143)] {
        let dir = tempfile::tempdir().unwrap();
        let s = write(dir.path(), "slow.toml", &SLOW.replace("REPS", "1"));
        let root = dir.path().join("data/datasets/slow");
        let (status, out, took) = interrupt(dir.path(), &["gen", &s], signal, false, |_| {
            root.join("g00000/v0001").exists()
        });
        assert_eq!(status.code(), Some(code), "{out}");
        assert!(
            took < Duration::from_secs(2),
            "stopped after {took:?}: {out}"
        );
        assert!(out.contains("generation stopped after"), "{out}");
        assert!(
            !root.join("manifest.json").exists(),
            "a cut dataset looks complete"
        );
        assert!(!root.join(".manifest.json.tmp").exists());
        // The next run notices and makes it again rather than using it.
        let tiny_reps = SLOW
            .replace("REPS", "1")
            .replace("variables = 200", "variables = 2");
        let small = write(dir.path(), "slow.toml", &tiny_reps);
        let (status, out) = harness(dir.path(), &["gen", &small], Duration::from_secs(60));
        assert!(status.success(), "{out}");
        assert!(root.join("manifest.json").exists());
    }
}

#[test]
fn a_signal_to_the_harness_during_a_repetition_stops_its_child_and_marks_the_results() {
    for (signal, code, name, group) in [
        (libc::SIGTERM, 143, "SIGTERM", false),
        (libc::SIGINT, 130, "SIGINT", false),
        (libc::SIGINT, 130, "SIGINT", true),
    ] {
        let dir = tempfile::tempdir().unwrap();
        // One repetition: the interrupted one is the last.
        let s = write(dir.path(), "slow.toml", &SLOW.replace("REPS", "1"));
        gen(dir.path(), &s);
        let (status, out, took) = interrupt(dir.path(), &["run", &s], signal, group, |pid| {
            if rep_children(pid).is_empty() {
                return false;
            }
            // Let it get into the backend's run.
            std::thread::sleep(Duration::from_millis(300));
            !rep_children(pid).is_empty()
        });
        assert_eq!(status.code(), Some(code), "{name}: {out}");
        assert!(
            took < Duration::from_secs(3),
            "{name}: stopped after {took:?}: {out}"
        );
        assert!(out.contains(&format!("interrupted by {name}")), "{out}");
        let runs: Vec<_> = fs::read_dir(dir.path().join("results"))
            .unwrap()
            .flatten()
            .collect();
        assert_eq!(runs.len(), 1);
        let r: serde_json::Value =
            serde_json::from_slice(&fs::read(runs[0].path().join("results.json")).unwrap())
                .unwrap();
        assert_eq!(r["interrupted"], name, "{r}");
        assert!(
            !dir.path().join("data/outputs/.trash").exists(),
            "the trash is emptied"
        );
        // No repetition left running.
        let procs = fs::read_dir("/proc").unwrap().flatten().filter(|e| {
            fs::read(e.path().join("cmdline"))
                .is_ok_and(|c| String::from_utf8_lossy(&c).contains(&*dir.path().to_string_lossy()))
        });
        for p in procs {
            let pid: u32 = p.file_name().to_string_lossy().parse().unwrap_or(0);
            assert!(
                pid == 0 || gone(pid),
                "{name}: process {pid} is still running"
            );
        }
    }
}

#[test]
fn a_killed_harness_leaves_no_child_running() {
    let dir = tempfile::tempdir().unwrap();
    let s = write(dir.path(), "slow.toml", &SLOW.replace("REPS", "1"));
    gen(dir.path(), &s);
    let child = command(dir.path(), &["run", &s])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id();
    let mut rep = None;
    wait_until("the repetition's child", || {
        rep = rep_children(pid).first().copied();
        rep.is_some()
    });
    // SAFETY: kill on our own child.
    unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    let _ = finish(child, Duration::from_secs(10));
    let rep = rep.unwrap();
    assert!(gone(rep), "the repetition {rep} outlived its killed parent");
}

// ------------------------------------------------------------------------ gate

#[test]
fn compare_fails_against_a_failed_or_incomplete_run() {
    let dir = tempfile::tempdir().unwrap();
    let two = common::tiny("files", "warm", 2)
        + "[[backend]]\nname = \"tokio-rayon\"\nbytes_in_flight = \"8 MiB\"\n";
    let s = write(dir.path(), "tiny.toml", &two);
    let (status, out) = harness(dir.path(), &["run", &s], Duration::from_secs(120));
    assert!(status.success(), "{out}");
    let only = |dir: &Path| -> PathBuf {
        let mut runs: Vec<_> = fs::read_dir(dir.join("results"))
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .collect();
        runs.sort();
        runs.pop().unwrap().join("results.json")
    };
    let base = only(dir.path());
    // Compared with itself it never fails: it passes (0), or with two tiny
    // repetitions the intervals may be too wide to decide (2), which it says.
    let b = base.to_str().unwrap();
    let (status, out) = harness(dir.path(), &["compare", b, b], Duration::from_secs(30));
    match status.code() {
        Some(0) => assert!(out.contains("PASSED"), "{out}"),
        Some(2) => assert!(out.contains("UNDECIDED (exit 2)"), "{out}"),
        _ => panic!("{status:?}\n{out}"),
    }

    // A crashed run: every repetition failed on a damaged input.
    let victim = dir
        .path()
        .join("data/datasets/tiny/g00001/v0002/s00003.msg");
    let mut bytes = fs::read(&victim).unwrap();
    let n = bytes.len();
    bytes[n - 3] ^= 0xff;
    fs::write(&victim, &bytes).unwrap();
    let (status, _) = harness(dir.path(), &["run", &s], Duration::from_secs(120));
    assert_eq!(status.code(), Some(1));
    let failed = only(dir.path());
    let (status, out) = harness(
        dir.path(),
        &["compare", b, failed.to_str().unwrap()],
        Duration::from_secs(30),
    );
    assert_eq!(status.code(), Some(1), "{out}");
    assert!(
        out.contains("no counted (finished and verified) repetition"),
        "{out}"
    );

    // A run without one of the baseline's backends.
    bytes[n - 3] ^= 0xff;
    fs::write(&victim, &bytes).unwrap();
    let one = common::tiny("files", "warm", 2);
    let s = write(dir.path(), "tiny.toml", &one);
    let (status, out) = harness(dir.path(), &["run", &s], Duration::from_secs(120));
    assert!(status.success(), "{out}");
    let fewer = only(dir.path());
    let (status, out) = harness(
        dir.path(),
        &["compare", b, fewer.to_str().unwrap()],
        Duration::from_secs(30),
    );
    assert_eq!(status.code(), Some(1), "{out}");
    assert!(
        out.contains("`tokio-rayon` is in the baseline but not in the new run"),
        "{out}"
    );
}

// ------------------------------------------------------------------ GRIB2 inputs

/// [`tiny`] as GRIB2 messages packed `packing`, every backend that runs anywhere.
fn tiny_grib2(packing: &str) -> String {
    tiny("warm").replace(
        "codec = \"lz4\"\n",
        &format!("kind = \"grib2\"\npacking = \"{packing}\"\n"),
    )
}

#[test]
fn a_flipped_bit_in_a_grib2_payload_fails_verification_naming_the_file() {
    // GRIB2 has no checksum: a flipped bit in simple packing's data decodes to
    // another value. The verification catches it and names the input it came from.
    let dir = tempfile::tempdir().unwrap();
    let s = write(dir.path(), "tiny.toml", &tiny_grib2("simple"));
    gen(dir.path(), &s);
    let victim = dir
        .path()
        .join("data/datasets/tiny/g00001/v0002/s00003.grib2");
    let mut bytes = fs::read(&victim).unwrap();
    let at = bytes.len() - 4 - 20; // inside section 7's payload, before `7777`
    bytes[at] ^= 0x10;
    fs::write(&victim, &bytes).unwrap();
    let (status, out) = harness(dir.path(), &["run", &s], Duration::from_secs(60));
    assert_eq!(status.code(), Some(1), "{out}");
    assert!(
        out.contains("g00001/v0002/s00003.grib2") && out.contains("expected"),
        "{out}"
    );
}

#[test]
fn a_truncated_or_foreign_grib2_input_fails_the_run_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let s = write(dir.path(), "tiny.toml", &tiny_grib2("ccsds"));
    let victim = dir
        .path()
        .join("data/datasets/tiny/g00000/v0001/s00004.grib2");
    for (damage, says) in [
        ("truncated", "total length"),
        ("nwp-fields", "not a GRIB message"),
        ("template", "data representation template"),
    ] {
        harness(dir.path(), &["gen", "--force", &s], Duration::from_secs(60));
        let mut bytes = fs::read(&victim).unwrap();
        match damage {
            "truncated" => bytes.truncate(bytes.len() - 9),
            "nwp-fields" => bytes[..4].copy_from_slice(b"NWPF"),
            // Section 5's template number (octets 10-11): 5.42 becomes 5.0.
            _ => bytes[16 + 21 + 72 + 34 + 10] = 0,
        }
        fs::write(&victim, &bytes).unwrap();
        let (status, out) = harness(dir.path(), &["run", &s], Duration::from_secs(60));
        assert_eq!(status.code(), Some(1), "{damage}: {out}");
        // A changed length or first 40 bytes may already be caught by the dataset's
        // completeness check (a seeded sample), which names the file too.
        let caught_early = damage != "template" && out.contains("as generated");
        assert!(
            out.contains("g00000/v0001/s00004.grib2") && (out.contains(says) || caught_early),
            "{damage}: {out}"
        );
    }
}

// ------------------------------------------------------------------ scripts/s3-server

/// Runs `scripts/s3-server ARGS` with its directory at `dir` (on a port no test
/// server uses, so nothing running is touched).
fn s3_server(dir: &Path, args: &[&str]) -> (ExitStatus, String) {
    let out = Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/s3-server"))
        .args(args)
        .env("HARNESS_S3_DIR", dir)
        .env("HARNESS_S3_PORT", "3990")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    (out.status, text(&out))
}

#[test]
fn the_s3_server_script_never_deletes_a_directory_it_did_not_make() {
    let tmp = tempfile::tempdir().unwrap();
    // Someone else's directory, named by mistake: neither stop nor start may delete
    // it, nor read its pid file (which would make stop kill that process).
    let theirs = tmp.path().join("theirs");
    fs::create_dir(&theirs).unwrap();
    fs::write(theirs.join("notes.txt"), b"keep me").unwrap();
    fs::write(theirs.join("pid"), b"1").unwrap();
    let link = tmp.path().join("link");
    symlink(&theirs, &link).unwrap();
    let before = snapshot(tmp.path());
    for dir in [&theirs, &link] {
        for args in [&["stop"][..], &["start", "--latency", "20ms"][..]] {
            let (status, out) = s3_server(dir, args);
            assert!(!status.success(), "{args:?} on {}: {out}", dir.display());
            assert!(
                out.contains("refusing"),
                "{args:?} on {}: {out}",
                dir.display()
            );
        }
    }
    assert_eq!(snapshot(tmp.path()), before, "files outside changed");
    // A directory that does not exist: stop has nothing to do and says so.
    let (status, out) = s3_server(&tmp.path().join("never-made"), &["stop"]);
    assert!(status.success() && out.contains("not running"), "{out}");
}
