//! What the end-to-end tests share: running the real binary in a temporary folder.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Runs `harness ARGS` in `dir`, with data under `dir/data` and results under
/// `dir/<results>`.
pub fn harness_with(dir: &Path, results: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_harness"))
        .args(args)
        .arg("--data-dir")
        .arg(dir.join("data"))
        .arg("--results-dir")
        .arg(dir.join(results))
        .current_dir(dir)
        .output()
        .expect("the harness binary runs")
}

/// Standard output and error together.
pub fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A small scenario (2 groups × 3 variables × 5 steps, `sequential` only) in the
/// given layout (`files`, `container`) and cache state, with `reps` repetitions.
pub fn tiny(layout: &str, cache: &str, reps: u32) -> String {
    TINY.replace("LAYOUT", layout)
        .replace("CACHE", cache)
        .replace("REPS", &reps.to_string())
}

const TINY: &str = r#"
name = "tiny"
[dataset]
layout = "LAYOUT"
groups = 2
variables = 3
steps = 5
ny = 12
nx = 10
codec = "lz4"
[output]
cy = 5
cx = 4
[run]
repetitions = REPS
cache = "CACHE"
[[backend]]
name = "sequential"
bytes_in_flight = "8 MiB"
"#;

/// Every path below `root` with what it is: a file's bytes, a link's target.
pub fn snapshot(root: &Path) -> BTreeMap<PathBuf, String> {
    fn walk(dir: &Path, out: &mut BTreeMap<PathBuf, String>) {
        let Ok(entries) = fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let p = e.path();
            let t = e.file_type().unwrap();
            let what = if t.is_symlink() {
                format!("link -> {}", fs::read_link(&p).unwrap().display())
            } else if t.is_dir() {
                walk(&p, out);
                "dir".into()
            } else if t.is_fifo() {
                "fifo".into()
            } else {
                format!("{:?}", fs::read(&p).unwrap())
            };
            out.insert(p, what);
        }
    }
    let mut out = BTreeMap::new();
    walk(root, &mut out);
    out
}

/// A tmpfs mounted for the length of a test (root only), unmounted on drop.
pub struct Mount(PathBuf);

impl Mount {
    /// A tmpfs at `at` with mount `options`; `None` when not root or it fails.
    pub fn tmpfs(at: &Path, options: &str) -> Option<Mount> {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            return None;
        }
        fs::create_dir_all(at).unwrap();
        Command::new("mount")
            .args(["-t", "tmpfs", "-o", options, "tmpfs"])
            .arg(at)
            .status()
            .is_ok_and(|s| s.success())
            .then(|| Mount(at.to_path_buf()))
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

impl Mount {
    /// Makes the mount read-only: no write reaches it, not even root's.
    pub fn read_only(&self) -> bool {
        Command::new("mount")
            .args(["-o", "remount,ro"])
            .arg(&self.0)
            .status()
            .is_ok_and(|s| s.success())
    }
}

/// The bucket of the configured S3 server (`eval "$(scripts/s3-server env)"`), or
/// `None` after saying SKIPPED; where HARNESS_REQUIRE_S3 is set (CI), a missing
/// server fails the test instead.
pub fn s3_bucket_or_skip() -> Option<String> {
    if std::env::var_os("AWS_ENDPOINT").is_none() && std::env::var_os("AWS_ENDPOINT_URL").is_none()
    {
        assert!(
            std::env::var_os("HARNESS_REQUIRE_S3").is_none(),
            "HARNESS_REQUIRE_S3 is set but no S3 endpoint is configured"
        );
        eprintln!("SKIPPED: no S3 endpoint configured (eval \"$(scripts/s3-server env)\")");
        return None;
    }
    Some(std::env::var("HARNESS_S3_BUCKET").unwrap_or_else(|_| "harness".into()))
}

/// Writes the DWD-named test set (2 init times × 3 variables × 4 steps of 20×30,
/// `harness example-dir`) into `at`, running in `dir`.
pub fn example(dir: &Path, at: &Path) {
    let o = harness_with(
        dir,
        "results",
        &[
            "example-dir",
            at.to_str().unwrap(),
            "--groups",
            "2",
            "--variables",
            "3",
            "--steps",
            "4",
            "--ny",
            "20",
            "--nx",
            "30",
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
}
