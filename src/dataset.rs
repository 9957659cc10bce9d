//! Generated datasets, cached: a manifest records the parameters a dataset was made
//! with; a rerun with the same parameters reuses it, different ones regenerate it.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use anyhow::{bail, Context};
use rechunk_contract::input::{open_input, read_input};
use rechunk_contract::nwp::generate::{generate_until, Stopped};
use rechunk_contract::nwp::message::HEADER_LEN;
use rechunk_contract::nwp::{DatasetParams, Layout};
use serde::{Deserialize, Serialize};
use stores::{S3Config, Store, StoreError, StoreUrl};

use crate::safety::{self, DataDir, Kind};
use crate::{progress, signals, sizes};

const MANIFEST: &str = "manifest.json";

/// What `manifest.json` holds. Written last, after every message, so an interrupted
/// generation is never mistaken for a complete one.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// The message format: `nwp-fields` or `nwp-grib2` (docs/FORMATS.md).
    pub format: String,
    /// Version of that format: 1.
    pub format_version: u32,
    /// The parameters the dataset was generated with; a dataset is reused only
    /// when they equal the scenario's.
    pub params: DatasetParams,
    /// Messages written: groups × variables × steps.
    pub messages: u64,
    /// Bytes of all messages together (container indexes not included).
    pub bytes: u64,
    /// Files of the dataset (the manifest and marker aside); absent in manifests
    /// written before it was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub files: Option<u64>,
    /// Wall time the generation took, in seconds.
    pub generation_seconds: f64,
    /// `harness <version>`: what wrote it (also how a dataset made before the
    /// `.harness-owned` marker existed is recognised).
    pub generated_by: String,
}

impl Manifest {
    /// Whether `other` describes the same dataset: the same format, parameters and
    /// sizes (a generation is deterministic), whenever and however fast it was
    /// made. Manifests that do not parse are never the same.
    pub fn same_dataset(a: &[u8], b: &[u8]) -> bool {
        let (Ok(a), Ok(b)) = (
            serde_json::from_slice::<Manifest>(a),
            serde_json::from_slice::<Manifest>(b),
        ) else {
            return false;
        };
        (
            a.format,
            a.format_version,
            a.params,
            a.messages,
            a.bytes,
            a.files,
        ) == (
            b.format,
            b.format_version,
            b.params,
            b.messages,
            b.bytes,
            b.files,
        )
    }
}

/// A dataset ready on disk.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DatasetInfo {
    /// The dataset's absolute directory, as checked by the safety rules (no
    /// symbolic link on it).
    pub root: PathBuf,
    /// Messages in it (from its manifest).
    pub messages: u64,
    /// Bytes of its messages (from its manifest).
    pub bytes: u64,
    /// Whether this call generated it (false: reused from the cache).
    pub generated: bool,
    /// Wall time of the generation that made it, in seconds (from its manifest).
    pub generation_seconds: f64,
    /// Messages per second of the generation that made it.
    pub generation_rate: f64,
    /// The decoder of a GRIB2 dataset and its version, as built into this harness
    /// (e.g. `grib 0.20 (rust-aec 0.1)`); absent for nwp-fields and in results
    /// written before GRIB2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decoder: Option<String>,
    /// For a grib2-dir dataset, its scan (absent otherwise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scan: Option<crate::own_files::ScanInfo>,
}

/// Makes sure the dataset of `params` is at `root` (a path checked by
/// [`DataDir::checked`]), generating it if needed.
///
/// A dataset is reused only if its manifest has the same parameters *and* it
/// passes [`check_complete`]; one that fails says so and how to fix it
/// (`harness gen --force`, which `force` is). A directory at `root` that the
/// harness did not make is never replaced. A signal stops generation between
/// files with [`crate::signals::Interrupted`] as the error; what was written has no manifest and
/// is made again by the next run.
pub fn ensure(
    data: &DataDir,
    params: &DatasetParams,
    root: &Path,
    force: bool,
    fix: &str,
) -> anyhow::Result<DatasetInfo> {
    if let rechunk_contract::nwp::Format::Grib2Dir(_) = params.format {
        bail!(
            "kind = \"{}\" reads a directory of your files: there is nothing to generate",
            rechunk_contract::gribdir::KIND
        );
    }
    let root = data.check(root, Kind::Dataset)?;
    let root = root.as_path();
    let manifest_path = root.join(MANIFEST);
    if fs::symlink_metadata(root).is_ok() {
        let manifest = read_manifest(&manifest_path);
        if safety::owned(root, Kind::Dataset).is_err() {
            // Made by a harness from before the marker existed: its manifest says so.
            match &manifest {
                Some(m) if m.generated_by.starts_with("harness ") => {
                    safety::write_marker(root, Kind::Dataset)?
                }
                _ => safety::owned(root, Kind::Dataset)?,
            }
        }
        match manifest {
            Some(m) if !force && &m.params == params => {
                return match check_complete(params, root, &m) {
                    Ok(()) => Ok(info(root, &m, false)),
                    Err(why) => bail!(
                        "the dataset at {} is damaged or incomplete: {why}; make it again \
                         with `{fix}`",
                        root.display()
                    ),
                };
            }
            _ if force => eprintln!("  replacing the dataset at {} (--force)", root.display()),
            Some(_) => eprintln!(
                "  the dataset at {} was made with other parameters: replacing it",
                root.display()
            ),
            None => eprintln!(
                "  the dataset at {} is incomplete (its generation was stopped): making it again",
                root.display()
            ),
        }
        // The manifest goes first: from here on, the directory is not a complete dataset.
        let _ = fs::remove_file(&manifest_path);
        data.remove(root, Kind::Dataset)?;
    }
    check_disk(params, root)?;
    data.create_marked(root, Kind::Dataset)?;

    let total = params.messages();
    let bar = progress::bar(total, "generating", "messages");
    let done = AtomicU64::new(0);
    let bytes = AtomicU64::new(0);
    let start = Instant::now();
    let written = generate_until(
        params,
        root,
        &|n, b| {
            bytes.fetch_add(b, Ordering::Relaxed);
            bar.set_position(done.fetch_add(n, Ordering::Relaxed) + n);
        },
        &|| signals::received().is_some(),
    );
    bar.finish_and_clear();
    match written {
        Ok(()) => {}
        Err(Stopped::Asked) => {
            let signal = signals::received().unwrap_or(signals::Interrupted(libc::SIGINT));
            eprintln!(
                "  generation stopped after {} of {total} messages; the next run makes the \
                 dataset again",
                done.load(Ordering::Relaxed)
            );
            return Err(signal.into());
        }
        Err(Stopped::Failed(e)) => bail!("generating the dataset: {e}"),
    }
    let seconds = start.elapsed().as_secs_f64();
    let manifest = Manifest {
        format: match params.format {
            rechunk_contract::nwp::Format::NwpFields => "nwp-fields",
            rechunk_contract::nwp::Format::Grib2(_) => "nwp-grib2",
            rechunk_contract::nwp::Format::Grib2Dir(_) => rechunk_contract::gribdir::KIND,
        }
        .to_string(),
        format_version: 1,
        params: params.clone(),
        messages: total,
        bytes: bytes.into_inner(),
        files: Some(data_files(params)),
        generation_seconds: seconds,
        generated_by: format!("harness {}", env!("CARGO_PKG_VERSION")),
    };
    let tmp = root.join(".manifest.json.tmp");
    fs::write(&tmp, serde_json::to_vec_pretty(&manifest)?)
        .and_then(|_| fs::rename(&tmp, &manifest_path))
        .with_context(|| format!("writing {}", manifest_path.display()))?;
    Ok(info(root, &manifest, true))
}

/// How many files a complete dataset of `params` holds (the manifest and the
/// marker aside).
fn data_files(params: &DatasetParams) -> u64 {
    match params.layout {
        Layout::Files => params.messages(),
        Layout::Container => 2 * params.groups as u64,
    }
}

/// Refuses to start a generation that cannot fit on the disk: the dataset's size
/// is estimated from its first message.
fn check_disk(params: &DatasetParams, root: &Path) -> anyhow::Result<()> {
    let Some(free) = sizes::free_space(root) else {
        return Ok(());
    };
    let sample = params
        .message_bytes(0, 0, 0)
        .map_err(|e| anyhow::anyhow!("{}: {e}", root.display()))?
        .len() as u64;
    // Messages vary a little in size; the filesystem rounds each file up to a block.
    let per_file = match params.layout {
        Layout::Files => sample.div_ceil(4096) * 4096,
        Layout::Container => sample + 24,
    };
    let need = params.messages().saturating_mul(per_file) / 10 * 11;
    if need > free {
        bail!(
            "the dataset needs about {} ({} messages of about {} bytes) but only {} is free \
             on the filesystem of {}: free some space, use a smaller scenario, or another \
             --data-dir",
            sizes::bytes(need),
            params.messages(),
            sample,
            sizes::bytes(free),
            root.display()
        );
    }
    Ok(())
}

/// Messages whose header and length [`check_complete`] compares.
const SAMPLE: u64 = 16;

/// A cheap check that a dataset whose manifest matches is still whole: the number
/// of files the manifest recorded, and for a seeded sample of messages (the
/// first, the last and `SAMPLE` (16) more, opened as regular files only) the length
/// and the 40-byte header (identity, sizes, payload length and CRC) against what
/// the generator makes; for containers also each sampled container's length
/// against its index. A payload damaged in place is left to the backends, whose
/// decoding checks the CRC and names the file.
pub fn check_complete(params: &DatasetParams, root: &Path, m: &Manifest) -> Result<(), String> {
    if let Some(expected) = m.files {
        let mut found = 0u64;
        count_data_files(root, root, &mut found).map_err(|e| format!("{}: {e}", root.display()))?;
        if found != expected {
            return Err(format!(
                "{found} files where the generation wrote {expected}"
            ));
        }
    }
    let n = params.messages();
    let mut picks: Vec<u64> = vec![0, n - 1];
    let mut x = params.seed ^ 0x9e37_79b9_7f4a_7c15;
    for _ in 0..SAMPLE.min(n) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        picks.push(x % n);
    }
    let per_group = params.variables as u64 * params.steps as u64;
    let mut groups = std::collections::HashMap::new();
    for i in picks {
        let g = (i / per_group) as u32;
        let (v, s) = params.item_vs((i % per_group) as usize);
        let expected = params.message_bytes(g, v, s)?;
        let (path, range) = match params.layout {
            Layout::Files => {
                let path = root.join(params.message_path(g, v, s));
                (path, None)
            }
            Layout::Container => {
                if let std::collections::hash_map::Entry::Vacant(e) = groups.entry(g) {
                    e.insert(container_group(params, root, g)?);
                }
                let (path, inputs) = &groups[&g];
                (path.clone(), inputs[params.item_index(v, s)].range)
            }
        };
        let file = open_input(&path).map_err(|e| e.to_string())?;
        let (offset, len) = match range {
            Some(r) => (r.offset, r.len),
            None => (0, file.metadata().map_err(|e| e.to_string())?.len()),
        };
        let mut header = vec![0; HEADER_LEN.min(expected.len())];
        let read = std::os::unix::fs::FileExt::read_exact_at(&file, &mut header, offset);
        if len != expected.len() as u64 || read.is_err() || header != expected[..header.len()] {
            return Err(format!(
                "{} does not hold message (group {g}, variable {v}, step {s}) as generated \
                 ({len} bytes where {} were written{})",
                path.display(),
                expected.len(),
                if read.is_ok() && len == expected.len() as u64 {
                    ", its header differs"
                } else {
                    ""
                }
            ));
        }
    }
    Ok(())
}

/// A container's path and its inputs from its index, with its length checked.
fn container_group(
    params: &DatasetParams,
    root: &Path,
    g: u32,
) -> Result<(PathBuf, Vec<rechunk_contract::InputRef>), String> {
    let group = params.group_at(root, g).map_err(|e| e.to_string())?;
    let path = root.join(params.container_path(g));
    let end = group
        .inputs
        .iter()
        .filter_map(|i| i.range.map(|r| r.offset + r.len))
        .max()
        .unwrap_or(0);
    let len = fs::symlink_metadata(&path)
        .map_err(|e| format!("{}: {e}", path.display()))?
        .len();
    if len != end {
        return Err(format!(
            "{} is {len} bytes long where its index ends at byte {end}",
            path.display()
        ));
    }
    Ok((path, group.inputs))
}

/// Counts the files below `dir`, leaving out the marker and manifest at the root.
fn count_data_files(root: &Path, dir: &Path, n: &mut u64) -> std::io::Result<()> {
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            count_data_files(root, &entry.path(), n)?;
        } else if dir != root
            || (entry.file_name() != MANIFEST && entry.file_name() != safety::MARKER)
        {
            *n += 1;
        }
    }
    Ok(())
}

/// Requests at once when a dataset is uploaded to an object store.
pub const UPLOAD_CONCURRENCY: usize = 32;

/// A dataset copied to an object store.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StoreCopy {
    /// The store and prefix, `s3://bucket/prefix`.
    pub url: String,
    /// false: the store already held this dataset (its manifest matched).
    pub uploaded: bool,
    /// Files uploaded: every file of the local dataset directory, manifest and
    /// marker included (0 when reused).
    pub files: u64,
    /// Bytes uploaded (0 when reused).
    pub bytes: u64,
    /// Wall time of the check and upload, in seconds.
    pub seconds: f64,
}

/// Makes sure the complete dataset at `local` is also at `url`: reused when the
/// store's `manifest.json` equals the local one, else the prefix is emptied and
/// every file uploaded (at most [`UPLOAD_CONCURRENCY`] requests at once), the
/// manifest last, so that an interrupted upload is never taken for a dataset.
pub fn ensure_in_store(local: &Path, url: &StoreUrl, s3: &S3Config) -> anyhow::Result<StoreCopy> {
    let manifest = fs::read(local.join(MANIFEST))
        .with_context(|| format!("{}: no manifest", local.display()))?;
    let store = Store::open(url, local, None, s3)?;
    let start = Instant::now();
    let r = stores::block_on(async {
        if let Some(there) = store.get_if_exists(MANIFEST).await? {
            if Manifest::same_dataset(&there, &manifest) {
                return Ok((false, 0, 0));
            }
        }
        let mut files = 0u64;
        count_files(local, &mut files).map_err(|error| StoreError::Io {
            path: local.to_path_buf(),
            error,
        })?;
        store.empty_owned(UPLOAD_CONCURRENCY).await?;
        let bar = progress::bar(files, &format!("uploading to {url}"), "files");
        let (n, bytes) = store
            .upload_dir(local, Some(MANIFEST), UPLOAD_CONCURRENCY, &|n, _| {
                bar.inc(n)
            })
            .await?;
        bar.finish_and_clear();
        Ok::<_, StoreError>((true, n, bytes))
    })?
    .map_err(|e| anyhow::anyhow!("copying the dataset to {url}: {e}"))?;
    Ok(StoreCopy {
        url: url.to_string(),
        uploaded: r.0,
        files: r.1,
        bytes: r.2,
        seconds: start.elapsed().as_secs_f64(),
    })
}

/// Checks that the complete dataset at `local` is at `url` (the store's
/// `manifest.json` equals the local one), uploading nothing: what a shard of a
/// split job does, since shards uploading at once would race.
pub fn check_in_store(local: &Path, url: &StoreUrl, s3: &S3Config) -> anyhow::Result<StoreCopy> {
    let manifest = fs::read(local.join(MANIFEST))
        .with_context(|| format!("{}: no manifest", local.display()))?;
    let store = Store::open(url, local, None, s3)?;
    let start = Instant::now();
    let there = stores::block_on(store.get_if_exists(MANIFEST))?
        .map_err(|e| anyhow::anyhow!("reading {url}/{MANIFEST}: {e}"))?;
    match there {
        None => bail!("the dataset is not at {url} (no {MANIFEST} there)"),
        Some(there) if !Manifest::same_dataset(&there, &manifest) => {
            bail!("the dataset at {url} is another one (its {MANIFEST} differs from this one's)")
        }
        Some(_) => Ok(StoreCopy {
            url: url.to_string(),
            uploaded: false,
            files: 0,
            bytes: 0,
            seconds: start.elapsed().as_secs_f64(),
        }),
    }
}

impl std::fmt::Display for StoreCopy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.uploaded {
            write!(
                f,
                "uploaded to {}: {} files ({:.1} MB) in {:.1} s: {:.0} files/s",
                self.url,
                self.files,
                self.bytes as f64 / 1e6,
                self.seconds,
                self.files as f64 / self.seconds.max(1e-9)
            )
        } else {
            write!(f, "reused the copy at {} (same manifest)", self.url)
        }
    }
}

fn count_files(dir: &Path, n: &mut u64) -> std::io::Result<()> {
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            count_files(&entry.path(), n)?;
        } else {
            *n += 1;
        }
    }
    Ok(())
}

fn info(root: &Path, m: &Manifest, generated: bool) -> DatasetInfo {
    DatasetInfo {
        root: root.to_path_buf(),
        messages: m.messages,
        bytes: m.bytes,
        generated,
        generation_seconds: m.generation_seconds,
        generation_rate: m.messages as f64 / m.generation_seconds.max(1e-9),
        decoder: None,
        scan: None,
    }
}

/// The manifest at `path`; None if it is absent, not a regular file, over 1 MiB
/// or not a manifest.
pub fn read_manifest(path: &Path) -> Option<Manifest> {
    // Bounded and regular-only, like every input: a manifest is a few hundred bytes.
    let bytes = read_input(path, 1 << 20).ok()?;
    serde_json::from_slice(&bytes).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rechunk_contract::nwp::Codec;

    fn params() -> DatasetParams {
        DatasetParams {
            layout: Layout::Files,
            groups: 1,
            variables: 2,
            steps: 3,
            ny: 4,
            nx: 4,
            codec: Codec::Lz4,
            zstd_level: 1,
            noise_bits: 2,
            seed: 5,
            format: rechunk_contract::nwp::Format::NwpFields,
        }
    }

    const FIX: &str = "harness gen --force s.toml";

    fn data(dir: &Path) -> (DataDir, PathBuf) {
        let data = DataDir::lock(&dir.join("data"), None).unwrap();
        let root = data.path().join("datasets/ds");
        (data, root)
    }

    #[test]
    fn same_parameters_reuse_and_different_ones_regenerate() {
        let dir = tempfile::tempdir().unwrap();
        let (data, root) = data(dir.path());
        let ensure = |p: &DatasetParams, root: &Path, force| ensure(&data, p, root, force, FIX);
        let p = params();
        let first = ensure(&p, &root, false).unwrap();
        assert!(first.generated);
        assert_eq!(first.messages, 6);
        let msg = root.join(p.message_path(0, 1, 2));
        assert_eq!(fs::read(&msg).unwrap(), p.message_bytes(0, 1, 2).unwrap());
        assert_eq!(
            first.bytes,
            (0..6)
                .map(|i| p.message_bytes(0, i / 3, i % 3).unwrap().len() as u64)
                .sum::<u64>()
        );

        let again = ensure(&p, &root, false).unwrap();
        assert!(!again.generated, "same parameters must reuse");

        let other = DatasetParams {
            seed: 6,
            ..p.clone()
        };
        assert!(
            ensure(&other, &root, false).unwrap().generated,
            "a new seed must regenerate"
        );
        assert_eq!(
            fs::read(&msg).unwrap(),
            other.message_bytes(0, 1, 2).unwrap()
        );

        let container = DatasetParams {
            layout: Layout::Container,
            ..other.clone()
        };
        assert!(ensure(&container, &root, false).unwrap().generated);
        assert!(!msg.exists(), "the old layout's files are gone");

        assert!(
            ensure(&container, &root, true).unwrap().generated,
            "--force regenerates"
        );
    }

    #[test]
    fn an_interrupted_generation_is_not_reused_and_damage_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let (data, root) = data(dir.path());
        let ensure = |p: &DatasetParams, force| ensure(&data, p, &root, force, FIX);
        let p = params();
        ensure(&p, false).unwrap();
        // As if generation had stopped before the manifest was written.
        fs::remove_file(root.join(MANIFEST)).unwrap();
        assert!(ensure(&p, false).unwrap().generated);
        // Or as if files had been deleted since: named, with the remedy.
        fs::remove_file(root.join(p.message_path(0, 1, 2))).unwrap();
        let e = ensure(&p, false).unwrap_err().to_string();
        assert!(
            e.contains("5 files where the generation wrote 6") && e.contains(FIX),
            "{e}"
        );
        assert!(
            ensure(&p, true).unwrap().generated,
            "--force makes it again"
        );
        // A message's header changed in place, same size and count.
        let msg = root.join(p.message_path(0, 0, 0));
        let mut bytes = fs::read(&msg).unwrap();
        bytes[12] ^= 1;
        fs::write(&msg, &bytes).unwrap();
        let e = ensure(&p, false).unwrap_err().to_string();
        assert!(e.contains("s00000.msg does not hold message"), "{e}");
        assert!(e.contains("its header differs"), "{e}");
        // One cut short.
        fs::write(&msg, &bytes[..bytes.len() - 1]).unwrap();
        let e = ensure(&p, false).unwrap_err().to_string();
        assert!(e.contains("bytes where"), "{e}");
    }

    #[test]
    fn a_directory_the_harness_did_not_make_is_never_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let (data, root) = data(dir.path());
        fs::create_dir_all(&root).unwrap();
        fs::write(root.join("precious"), b"keep").unwrap();
        let e = ensure(&data, &params(), &root, true, FIX)
            .unwrap_err()
            .to_string();
        assert!(e.contains("no .harness-owned marker"), "{e}");
        assert_eq!(fs::read(root.join("precious")).unwrap(), b"keep");
    }

    #[test]
    fn a_container_cut_short_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let (data, root) = data(dir.path());
        let p = DatasetParams {
            layout: Layout::Container,
            ..params()
        };
        ensure(&data, &p, &root, false, FIX).unwrap();
        let c = root.join(p.container_path(0));
        let len = fs::metadata(&c).unwrap().len();
        fs::OpenOptions::new()
            .write(true)
            .open(&c)
            .unwrap()
            .set_len(len - 1)
            .unwrap();
        let e = ensure(&data, &p, &root, false, FIX)
            .unwrap_err()
            .to_string();
        assert!(e.contains("g00000.msgs is"), "{e}");
    }
}
