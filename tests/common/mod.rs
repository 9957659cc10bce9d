//! What the end-to-end tests share: running the real binary in a temporary folder.

#![allow(dead_code)]

use std::path::Path;
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
