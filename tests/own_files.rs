//! The grib2-dir dataset kind end to end through the real binary: a DWD-named test
//! set made by `harness example-dir`, scanned by keys and by pattern, rechunked by
//! several backends and verified against `sequential`'s output; the directory is
//! never written to (checked byte for byte, and on a read-only mount); every kind
//! of unusable file is named; `harness verify --against` compares two outputs.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Output;

mod common;
use common::{example, harness_with, snapshot, text, Mount};

fn harness(dir: &Path, args: &[&str]) -> Output {
    harness_with(dir, "results", args)
}

const PATTERN: &str = "icon-eu_europe_regular-lat-lon_single-level_{init}_{step}_{var}.grib2.bz2";

/// A grib2-dir scenario on `root`, read by `how` (`from = "keys"` or a pattern
/// line), with `sequential` and the backends in `others`.
fn scenario(dir: &Path, name: &str, root: &Path, how: &str, others: &[&str]) -> String {
    let mut text = format!(
        r#"
name = "{name}"
[dataset]
kind = "grib2-dir"
root = "{}"
{how}
[output]
cy = 8
cx = 16
[run]
repetitions = 1
[[backend]]
name = "sequential"
bytes_in_flight = "32 MiB"
"#,
        root.display()
    );
    for b in others {
        text += &format!(
            "[[backend]]\nname = \"{b}\"\nio_in_flight = 8\nbytes_in_flight = \"32 MiB\"\n"
        );
    }
    let path = dir.join(format!("{name}.toml"));
    fs::write(&path, text).unwrap();
    path.to_string_lossy().into_owned()
}

fn results(dir: &Path) -> serde_json::Value {
    let runs = dir.join("results");
    let mut all: Vec<PathBuf> = fs::read_dir(&runs)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    all.sort();
    let last = all.last().expect("a run folder");
    serde_json::from_slice(&fs::read(last.join("results.json")).unwrap()).unwrap()
}

#[test]
fn keys_and_pattern_scans_run_every_backend_verified_against_sequential_and_touch_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let files = dir.path().join("dwd");
    example(dir.path(), &files);
    let names: Vec<String> = fs::read_dir(&files)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names.len(), 24);
    assert!(
        names.contains(
            &"icon-eu_europe_regular-lat-lon_single-level_2026010100_003_T_2M.grib2.bz2"
                .to_string()
        ),
        "{names:?}"
    );
    let before = snapshot(&files);

    for (name, how) in [
        ("by-keys", "from = \"keys\"".to_string()),
        ("by-pattern", format!("pattern = \"{PATTERN}\"")),
    ] {
        let s = scenario(
            dir.path(),
            name,
            &files,
            &how,
            &["tokio-rayon", "object-store"],
        );
        let o = harness(dir.path(), &["run", &s]);
        let out = text(&o);
        assert!(o.status.success(), "{out}");
        assert!(out.contains("this output becomes the reference"), "{out}");
        assert!(
            out.contains("against the reference from sequential, repetition 1"),
            "{out}"
        );
        let r = results(dir.path());
        let scan = &r["dataset"]["scan"];
        assert_eq!(scan["inputs"], 24, "{scan}");
        assert_eq!(
            (
                scan["groups"].as_u64(),
                scan["variables"].as_u64(),
                scan["steps"].as_u64()
            ),
            (Some(2), Some(3), Some(4))
        );
        assert_eq!(scan["grid"], "template 3.0, 20 × 30");
        let reps = r["repetitions"].as_array().unwrap();
        assert_eq!(reps.len(), 3);
        for rep in reps {
            assert_eq!(rep["counts"], true, "{rep}");
        }
        assert_eq!(reps[0]["verification"]["against"], "structure only");
        assert_eq!(
            reps[1]["verification"]["against"],
            "sequential, repetition 1"
        );
        // The output names what it found.
        let zarr: serde_json::Value = serde_json::from_slice(
            &fs::read(dir.path().join(format!("data/outputs/{name}/zarr.json"))).unwrap(),
        )
        .unwrap();
        let attrs = &zarr["attributes"]["grib2_dir"];
        assert_eq!(zarr["shape"], serde_json::json!([2, 3, 4, 20, 30]));
        if name == "by-pattern" {
            assert_eq!(
                attrs["variables"],
                serde_json::json!(["TD_2M", "T_2M", "U_10M"])
            );
            assert_eq!(
                attrs["steps"],
                serde_json::json!(["000", "001", "002", "003"])
            );
            assert_eq!(
                attrs["groups"],
                serde_json::json!(["2026010100", "2026010106"])
            );
        } else {
            assert_eq!(attrs["groups"][1], "2026-01-01T06:00:00Z");
            assert_eq!(attrs["steps"][3], "PT3H");
            assert_eq!(attrs["variables"].as_array().unwrap().len(), 3);
        }
        // Any two outputs of the same files compare value for value.
        let out_dir = dir.path().join(format!("data/outputs/{name}"));
        let oracle = dir.path().join(format!("data/outputs/.oracle/{name}"));
        let o = harness(
            dir.path(),
            &[
                "verify",
                out_dir.to_str().unwrap(),
                "--against",
                oracle.to_str().unwrap(),
            ],
        );
        assert!(o.status.success(), "{}", text(&o));
        assert!(text(&o).contains("bit for bit"), "{}", text(&o));
    }
    // A second run reuses the scan.
    let s = dir.path().join("by-keys.toml");
    let o = harness(dir.path(), &["scan", s.to_str().unwrap()]);
    assert!(
        o.status.success() && text(&o).contains("reused"),
        "{}",
        text(&o)
    );
    assert_eq!(
        snapshot(&files),
        before,
        "the files' directory was written to"
    );
    // A file rewritten with the same bytes and its old modification time (as
    // `cp -p` does) makes a new scan all the same.
    let one = files.join(&names[0]);
    let (bytes, mtime) = (
        fs::read(&one).unwrap(),
        fs::metadata(&one).unwrap().modified().unwrap(),
    );
    fs::remove_file(&one).unwrap();
    fs::write(&one, &bytes).unwrap();
    fs::File::options()
        .write(true)
        .open(&one)
        .unwrap()
        .set_modified(mtime)
        .unwrap();
    let o = harness(dir.path(), &["scan", s.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(!text(&o).contains("reused"), "{}", text(&o));
}

#[test]
fn gen_refuses_and_ceilings_measure_a_directory_of_files() {
    let dir = tempfile::tempdir().unwrap();
    let files = dir.path().join("dwd");
    example(dir.path(), &files);
    let s = scenario(dir.path(), "c", &files, "", &["tokio-rayon"]);
    let o = harness(dir.path(), &["gen", &s]);
    assert!(!o.status.success());
    assert!(text(&o).contains("nothing to generate"), "{}", text(&o));
    let o = harness(dir.path(), &["ceilings", &s]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("CPU ceiling"), "{}", text(&o));
}

#[test]
fn verify_against_names_a_wrong_value_and_a_missing_chunk() {
    let dir = tempfile::tempdir().unwrap();
    let files = dir.path().join("dwd");
    example(dir.path(), &files);
    let s = scenario(dir.path(), "v", &files, "", &[]);
    let o = harness(dir.path(), &["run", &s]);
    assert!(o.status.success(), "{}", text(&o));
    let out_dir = dir.path().join("data/outputs/v");
    let oracle = dir.path().join("data/outputs/.oracle/v");
    // Without a reference there is nothing to verify against: said, exit 1.
    let o = harness(dir.path(), &["verify", out_dir.to_str().unwrap()]);
    assert!(!o.status.success());
    assert!(text(&o).contains("--against"), "{}", text(&o));

    // The run's last output is the reference's copy: a chunk re-encoded with one
    // value changed is found, named, and fails the verification.
    fs::remove_dir_all(&out_dir).unwrap();
    copy_dir(&oracle, &out_dir);
    let chunk = out_dir.join("c/1/2/0/1/1");
    let bytes = fs::read(&chunk).unwrap();
    let mut raw = zstd::decode_all(&bytes[..]).unwrap();
    raw[40] ^= 1;
    fs::write(&chunk, zstd::encode_all(&raw[..], 1).unwrap()).unwrap();
    let against = || {
        let o = harness(
            dir.path(),
            &[
                "verify",
                out_dir.to_str().unwrap(),
                "--against",
                oracle.to_str().unwrap(),
            ],
        );
        assert!(!o.status.success());
        text(&o)
    };
    let out = against();
    assert!(out.contains("c/1/2/0/1/1: value at step 0"), "{out}");
    fs::remove_file(&chunk).unwrap();
    let out = against();
    assert!(out.contains("missing chunk c/1/2/0/1/1"), "{out}");
}

#[test]
fn links_planted_where_the_harness_writes_are_refused_and_their_targets_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let files = dir.path().join("dwd");
    example(dir.path(), &files);
    let precious = dir.path().join("precious");
    fs::create_dir_all(precious.join("own-files")).unwrap();
    fs::write(precious.join("keep.json"), b"not the harness's").unwrap();
    fs::write(precious.join("own-files/zarr.json"), b"{}").unwrap();
    let before = snapshot(&precious);
    let s = scenario(dir.path(), "own-files", &files, "", &[]);
    let data = dir.path().join("data");
    fs::create_dir_all(data.join("outputs")).unwrap();

    // The scan cache's directory as a link: nothing is written through it.
    std::os::unix::fs::symlink(&precious, data.join("scans")).unwrap();
    let o = harness(dir.path(), &["scan", &s]);
    assert!(!o.status.success());
    assert!(
        text(&o).contains("refusing to write the scan cache"),
        "{}",
        text(&o)
    );
    assert_eq!(snapshot(&precious), before);
    fs::remove_file(data.join("scans")).unwrap();

    // The reference outputs' directory as a link: refused before anything moves.
    std::os::unix::fs::symlink(&precious, data.join("outputs/.oracle")).unwrap();
    let o = harness(dir.path(), &["run", &s]);
    assert!(!o.status.success());
    assert!(text(&o).contains("symbolic link"), "{}", text(&o));
    assert_eq!(snapshot(&precious), before);
    fs::remove_file(data.join("outputs/.oracle")).unwrap();

    // A reference directory the harness did not make (no marker): never emptied.
    fs::create_dir_all(data.join("outputs/.oracle")).unwrap();
    let planted = data.join("outputs/.oracle/own-files");
    copy_dir(&precious.join("own-files"), &planted);
    let planted_before = snapshot(&planted);
    let o = harness(dir.path(), &["run", &s]);
    assert!(!o.status.success());
    assert!(text(&o).contains(".harness-owned"), "{}", text(&o));
    assert_eq!(snapshot(&planted), planted_before);
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for e in fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &to.join(e.file_name()));
        } else {
            fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

#[test]
fn a_read_only_directory_is_read_and_never_written() {
    let dir = tempfile::tempdir().unwrap();
    let files = dir.path().join("ro");
    let Some(mount) = Mount::tmpfs(&files, "size=64m") else {
        eprintln!("skipped: mounting a tmpfs needs root (the other tests check the bytes)");
        return;
    };
    example(dir.path(), &files);
    assert!(mount.read_only(), "remounting read-only");
    assert!(
        fs::write(files.join("probe"), b"x").is_err(),
        "the mount is read-only"
    );
    let before = snapshot(&files);
    let s = scenario(dir.path(), "ro", &files, "", &["spawn-blocking"]);
    let o = harness(dir.path(), &["run", &s]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(snapshot(&files), before);
}

/// Runs `harness scan` on a keys scenario over `files`; its exit and output.
fn scan(dir: &Path, files: &Path, extra: &str) -> (bool, String) {
    let s = scenario(dir, "bad", files, &format!("from = \"keys\"\n{extra}"), &[]);
    let o = harness(dir, &["scan", &s]);
    (o.status.success(), text(&o))
}

#[test]
fn every_kind_of_unusable_file_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let files = dir.path().join("dwd");
    example(dir.path(), &files);
    let name = |s: &str, v: &str| {
        format!("icon-eu_europe_regular-lat-lon_single-level_2026010100_{s}_{v}.grib2.bz2")
    };

    // A file that is not GRIB2.
    fs::write(files.join("README.txt"), b"downloaded from opendata.dwd.de").unwrap();
    let (ok, out) = scan(dir.path(), &files, "");
    assert!(!ok && out.contains("README.txt"), "{out}");
    // … skipped and counted when asked.
    let (ok, out) = scan(dir.path(), &files, "on_mismatch = \"skip\"");
    assert!(ok && out.contains("skipped: 1"), "{out}");
    fs::remove_file(files.join("README.txt")).unwrap();

    // Another grid: a message of 10 × 30 under a DWD name.
    let other = dir.path().join("other");
    let o = harness(
        dir.path(),
        &[
            "example-dir",
            other.to_str().unwrap(),
            "--groups",
            "1",
            "--variables",
            "1",
            "--steps",
            "1",
            "--ny",
            "10",
            "--nx",
            "30",
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    let odd = files.join("odd_grid.grib2.bz2");
    fs::copy(other.join(name("000", "T_2M")), &odd).unwrap();
    let (ok, out) = scan(dir.path(), &files, "");
    assert!(!ok && out.contains("odd_grid.grib2.bz2"), "{out}");
    fs::remove_file(&odd).unwrap();

    // A duplicate: the same message under a second name.
    let dup = files.join("copy.grib2.bz2");
    fs::copy(files.join(name("002", "U_10M")), &dup).unwrap();
    let (ok, out) = scan(dir.path(), &files, "");
    assert!(!ok && out.contains("copy.grib2.bz2"), "{out}");
    fs::remove_file(&dup).unwrap();

    // A missing step: named by group, variable and step.
    let gone = files.join(name("001", "TD_2M"));
    let kept = fs::read(&gone).unwrap();
    fs::remove_file(&gone).unwrap();
    let (ok, out) = scan(dir.path(), &files, "");
    assert!(
        !ok && out.contains("missing") && out.contains("PT1H"),
        "{out}"
    );
    fs::write(&gone, &kept).unwrap();

    // A file that cannot be read (a dangling link), and a FIFO, which must not hang.
    let dangling = files.join("dangling.grib2");
    std::os::unix::fs::symlink("/nonexistent/file.grib2", &dangling).unwrap();
    let (ok, out) = scan(dir.path(), &files, "");
    assert!(!ok && out.contains("dangling.grib2"), "{out}");
    fs::remove_file(&dangling).unwrap();
    let fifo = files.join("pipe.grib2");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
    let (ok, out) = scan(dir.path(), &files, "");
    assert!(
        !ok && out.contains("pipe.grib2") && out.contains("FIFO"),
        "{out}"
    );
    fs::remove_file(&fifo).unwrap();

    // A truncated file fails the scan (keys: the header says how long it is).
    let cut = files.join(name("003", "T_2M"));
    let whole = fs::read(&cut).unwrap();
    fs::write(&cut, &whole[..whole.len() / 2]).unwrap();
    let (ok, out) = scan(dir.path(), &files, "");
    assert!(!ok && out.contains(&name("003", "T_2M")), "{out}");
    // A pattern scan does not open it: the run fails on it instead, naming it.
    let s = scenario(
        dir.path(),
        "cut",
        &files,
        &format!("pattern = \"{PATTERN}\""),
        &["tokio-rayon"],
    );
    let o = harness(dir.path(), &["run", &s]);
    assert!(!o.status.success());
    assert!(text(&o).contains(&name("003", "T_2M")), "{}", text(&o));
    fs::write(&cut, &whole).unwrap();

    // All well again.
    let (ok, out) = scan(dir.path(), &files, "");
    assert!(ok, "{out}");
}

#[test]
fn scenario_mistakes_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let bad = |name: &str, body: &str| {
        let path = dir.path().join(format!("{name}.toml"));
        fs::write(&path, body).unwrap();
        let o = harness(dir.path(), &["scan", path.to_str().unwrap()]);
        assert!(!o.status.success());
        text(&o)
    };
    let base = "[dataset]\nkind = \"grib2-dir\"\nroot = \"/tmp\"\n";
    let seq = "[[backend]]\nname = \"sequential\"\n";
    let out = bad(
        "nosequential",
        &format!("{base}[[backend]]\nname = \"tokio-rayon\"\n"),
    );
    assert!(
        out.contains("add a [[backend]] table with name = \"sequential\""),
        "{out}"
    );
    let out = bad("groups", &format!("{base}groups = 3\n{seq}"));
    assert!(
        out.contains(":4:") && out.contains("[dataset] groups"),
        "{out}"
    );
    let out = bad("noroot", &format!("[dataset]\nkind = \"grib2-dir\"\n{seq}"));
    assert!(out.contains("[dataset] root is missing"), "{out}");
    let out = bad(
        "novar",
        &format!("{base}pattern = \"{{init}}_{{step}}.grib2\"\n{seq}"),
    );
    assert!(out.contains("must contain {var}"), "{out}");
    let out = bad(
        "both",
        &format!("{base}from = \"keys\"\npattern = \"{PATTERN}\"\n{seq}"),
    );
    assert!(out.contains("drop one of them"), "{out}");
    let out = bad(
        "missing",
        &format!("[dataset]\nkind = \"grib2-dir\"\nroot = \"/nonexistent/dwd\"\n{seq}"),
    );
    assert!(out.contains("/nonexistent/dwd"), "{out}");
}
