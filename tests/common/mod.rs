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
