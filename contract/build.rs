//! Records the versions of the GRIB2 decoding crates resolved in the workspace's
//! Cargo.lock, so results name the decoder that actually ran
//! (`rechunk_contract::grib2::Decoder::version`).

use std::path::Path;

const CRATES: [(&str, &str); 4] = [
    ("grib", "HARNESS_VERSION_GRIB"),
    ("rust-aec", "HARNESS_VERSION_RUST_AEC"),
    ("gribberish", "HARNESS_VERSION_GRIBBERISH"),
    ("libaec-sys", "HARNESS_VERSION_LIBAEC_SYS"),
];

fn main() {
    let dir = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default();
    let lock = Path::new(&dir).join("../Cargo.lock");
    println!("cargo:rerun-if-changed={}", lock.display());
    let text = std::fs::read_to_string(&lock).unwrap_or_default();
    for (name, var) in CRATES {
        // `name = "grib"` is followed by its `version = "…"` line in a lock file.
        let needle = format!("name = \"{name}\"\n");
        let version = text
            .split("[[package]]")
            .find(|p| p.trim_start().starts_with(needle.trim_end()) && p.contains(&needle))
            .and_then(|p| p.lines().find_map(|l| l.strip_prefix("version = ")))
            .map(|v| v.trim_matches('"').to_string())
            .unwrap_or_else(|| "?".to_string());
        println!("cargo:rustc-env={var}={version}");
    }
}
