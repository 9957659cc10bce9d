//! A grib2-dir dataset: the user's directory of GRIB2 files, scanned into a
//! catalog (rechunk_contract::gribdir) and read only.
//!
//! The scan is cached in the data directory (`scans/`), never in the scanned
//! directory: one file per (directory, scan request), holding the catalog and the
//! fingerprint of the listing it was made from (every file's path, size,
//! modification time and kind). Each run lists the directory again (one `stat` per
//! file) and reuses the catalog only when the fingerprint is the same; any file
//! added, removed, grown or touched makes a new scan.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use rechunk_contract::gribdir::format::{DirFormat, ScanFile};
use rechunk_contract::gribdir::{scan, ScanSpec, Unusable};
use serde::{Deserialize, Serialize};

use crate::safety::DataDir;

/// Where the scan caches are, inside the data directory.
pub const SCANS: &str = "scans";

/// Unusable files listed in results and on the terminal at most (the count is
/// always complete).
const MAX_LISTED: usize = 10;

/// What the results record of a scan: the source and how it was read, never the
/// files' contents.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ScanInfo {
    /// The directory scanned.
    pub source: PathBuf,
    /// `keys` or `pattern`.
    pub from: String,
    /// The pattern, for a pattern scan.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pattern: Option<String>,
    /// Files under the directory (directories not counted).
    pub files: u64,
    /// Messages used: groups × variables × steps.
    pub inputs: u64,
    /// Groups, variables and steps found.
    pub groups: u64,
    /// Variables found.
    pub variables: u64,
    /// Steps found.
    pub steps: u64,
    /// The grid: template, ny, nx.
    pub grid: String,
    /// Files skipped (`on_mismatch = "skip"`).
    pub skipped: u64,
    /// The first of them, with why.
    pub skipped_first: Vec<Unusable>,
    /// Seconds listing the directory (every run does).
    pub list_seconds: f64,
    /// Seconds of the scan that made the catalog (in an earlier run when cached).
    pub scan_seconds: f64,
    /// Seconds loading the cached catalog (0 when scanned now).
    pub load_seconds: f64,
    /// Whether the catalog came from the cache.
    pub cached: bool,
    /// The cache file.
    pub cache_file: PathBuf,
}

/// A scanned directory: the dataset's format and what the results say of it.
pub struct Scanned {
    /// The format to put in the scenario (`Scenario::with_scan`).
    pub format: DirFormat,
    /// For the results.
    pub info: ScanInfo,
}

/// Scans `root` as `spec` says, or reuses the cached scan when the directory has
/// not changed (`rescan` forces a new one). Prints a line on what it did.
pub fn scan_cached(
    data: &DataDir,
    root: &Path,
    spec: &ScanSpec,
    rescan: bool,
) -> anyhow::Result<Scanned> {
    let start = Instant::now();
    let listing = scan::list(root).map_err(anyhow::Error::msg)?;
    let list_seconds = start.elapsed().as_secs_f64();
    let dir = data.path().join(SCANS);
    let file = dir.join(cache_name(&listing.root, spec));
    let load_start = Instant::now();
    let cached = if rescan {
        None
    } else {
        ScanFile::read(&file).ok().filter(|f| {
            f.version == 1
                && f.fingerprint == listing.fingerprint
                && f.catalog.root == listing.root
                && &f.catalog.spec == spec
        })
    };
    let (scan_file, load_seconds, was_cached) = match cached {
        Some(f) => (f, load_start.elapsed().as_secs_f64(), true),
        None => {
            let bar = crate::progress::bar(listing.files.len() as u64, "scanning", "files");
            let scan_start = Instant::now();
            let catalog =
                scan::scan(&listing, spec, &|n| bar.inc(n)).map_err(|e| anyhow::anyhow!("{e}"))?;
            bar.finish_and_clear();
            let f = ScanFile {
                version: 1,
                fingerprint: listing.fingerprint.clone(),
                scan_seconds: scan_start.elapsed().as_secs_f64(),
                catalog,
            };
            // The harness's own directory in the data directory, never through a
            // link planted there (the cache file is replaced on every new scan).
            match std::fs::symlink_metadata(&dir) {
                Ok(m) if m.is_dir() => {}
                Ok(m) => anyhow::bail!(
                    "refusing to write the scan cache into {}: it is {}, not the \
                     directory the harness makes",
                    dir.display(),
                    rechunk_contract::input::file_kind(&m.file_type())
                ),
                Err(_) => std::fs::create_dir(&dir)
                    .with_context(|| format!("creating {}", dir.display()))?,
            }
            rechunk_contract::output::write_atomic(&file, &serde_json::to_vec(&f)?)
                .map_err(|e| anyhow::anyhow!("writing the scan cache: {e}"))?;
            (f, 0.0, false)
        }
    };
    let c = &scan_file.catalog;
    let (pattern, from) = match &spec.source {
        rechunk_contract::gribdir::Source::Keys => (None, "keys"),
        rechunk_contract::gribdir::Source::Pattern { pattern } => {
            (Some(pattern.clone()), "pattern")
        }
    };
    let info = ScanInfo {
        source: c.root.clone(),
        from: from.into(),
        pattern,
        files: c.files,
        inputs: c.inputs.len() as u64,
        groups: c.groups.len() as u64,
        variables: c.variables.len() as u64,
        steps: c.steps.len() as u64,
        grid: format!(
            "template 3.{}, {} × {}",
            c.grid.template, c.grid.ny, c.grid.nx
        ),
        skipped: c.skipped.len() as u64,
        skipped_first: c.skipped.iter().take(MAX_LISTED).cloned().collect(),
        list_seconds,
        scan_seconds: scan_file.scan_seconds,
        load_seconds,
        cached: was_cached,
        cache_file: file.clone(),
    };
    say(&info);
    Ok(Scanned {
        format: DirFormat::from_catalog(c, file, scan_file.fingerprint.clone()),
        info,
    })
}

/// The cache file's name: one per (directory, scan request).
fn cache_name(root: &Path, spec: &ScanSpec) -> String {
    let spec = serde_json::to_vec(spec).expect("serialisable");
    format!(
        "{:08x}{:08x}.json",
        crc32c::crc32c(root.as_os_str().as_encoded_bytes()),
        crc32c::crc32c(&spec)
    )
}

fn say(i: &ScanInfo) {
    eprintln!(
        "  {} files, {} messages: {} groups × {} variables × {} steps, {}; listed in {:.2} s, {}",
        i.files,
        i.inputs,
        i.groups,
        i.variables,
        i.steps,
        i.grid,
        i.list_seconds,
        if i.cached {
            format!(
                "scan reused from {} (made in {:.2} s, loaded in {:.2} s)",
                i.cache_file.display(),
                i.scan_seconds,
                i.load_seconds
            )
        } else {
            format!("scanned ({}) in {:.2} s", i.from, i.scan_seconds)
        }
    );
    if i.skipped > 0 {
        eprintln!("  skipped {} files (on_mismatch = \"skip\"):", i.skipped);
        for u in &i.skipped_first {
            eprintln!("    {}: {}", u.path, u.why);
        }
    }
}

/// For a scenario whose dataset is a directory of the user's files: the scan
/// (cached) and the scenario resolved with it (`Scenario::with_scan`); `None` for
/// a generated dataset. The directory must not overlap the data directory's
/// outputs or the results, which the harness writes and empties.
pub fn resolve(
    scenario: &crate::scenario::Scenario,
    data: &DataDir,
    results: &Path,
    rescan: bool,
) -> anyhow::Result<Option<(crate::scenario::Scenario, ScanInfo)>> {
    let rechunk_contract::nwp::Format::Grib2Dir(dir) = &scenario.dataset.params.format else {
        return Ok(None);
    };
    let root = &dir.attributes.source;
    let meta = std::fs::metadata(root).with_context(|| {
        format!(
            "[dataset] root of {}: {}",
            scenario.source.display(),
            root.display()
        )
    })?;
    if !meta.is_dir() {
        anyhow::bail!(
            "[dataset] root of {}: {} is not a directory",
            scenario.source.display(),
            root.display()
        );
    }
    let real = root
        .canonicalize()
        .with_context(|| format!("resolving {}", root.display()))?;
    eprintln!("dataset {} (your files, read only)", real.display());
    let outputs = data.path().join("outputs");
    let datasets = data.path().join("datasets");
    let scans = data.path().join(SCANS);
    let results = std::path::absolute(results).unwrap_or_else(|_| results.to_path_buf());
    for (what, other) in [
        ("the outputs", &outputs),
        ("the generated datasets", &datasets),
        ("the scan caches", &scans),
        ("the results", &results),
    ] {
        let other = other.canonicalize().unwrap_or_else(|_| other.to_path_buf());
        if real.starts_with(&other) || other.starts_with(&real) {
            anyhow::bail!(
                "[dataset] root {} overlaps {what} directory {}: the harness writes and \
                 empties that, and never writes to your files' directory",
                root.display(),
                other.display()
            );
        }
    }
    let scanned = scan_cached(data, root, &dir.attributes.scan, rescan)?;
    let (resolved, notes) = scenario.with_scan(scanned.format)?;
    for n in notes {
        eprintln!("  note: {n}");
    }
    Ok(Some((resolved, scanned.info)))
}

/// What the results record of the dataset of a resolved grib2-dir scenario.
pub fn dataset_info(
    params: &rechunk_contract::nwp::DatasetParams,
    scan: ScanInfo,
) -> crate::dataset::DatasetInfo {
    let bytes = match &params.format {
        rechunk_contract::nwp::Format::Grib2Dir(d) => d.bytes,
        _ => 0,
    };
    crate::dataset::DatasetInfo {
        root: scan.source.clone(),
        messages: params.messages(),
        bytes,
        generated: false,
        generation_seconds: 0.0,
        generation_rate: 0.0,
        decoder: None,
        scan: Some(scan),
    }
}
