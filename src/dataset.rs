//! Generated datasets, cached: a manifest records the parameters a dataset was made
//! with; a rerun with the same parameters reuses it, different ones regenerate it.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use anyhow::Context;
use backend_object_store::store::{self, S3Config, Store, StoreUrl};
use rechunk_contract::nwp::generate::generate;
use rechunk_contract::nwp::{DatasetParams, Layout};
use serde::{Deserialize, Serialize};

use crate::progress;

const MANIFEST: &str = "manifest.json";

/// What `manifest.json` holds. Written last, after every message, so an interrupted
/// generation is never mistaken for a complete one.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: String,
    pub format_version: u32,
    pub params: DatasetParams,
    pub messages: u64,
    pub bytes: u64,
    pub generation_seconds: f64,
    pub generated_by: String,
}

/// A dataset ready on disk.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DatasetInfo {
    pub root: PathBuf,
    pub messages: u64,
    pub bytes: u64,
    /// Whether this call generated it (false: reused from the cache).
    pub generated: bool,
    pub generation_seconds: f64,
    /// Messages per second of the generation that made it.
    pub generation_rate: f64,
}

/// Makes sure the dataset of `params` is at `root`, generating it if needed.
pub fn ensure(params: &DatasetParams, root: &Path, force: bool) -> anyhow::Result<DatasetInfo> {
    let manifest_path = root.join(MANIFEST);
    if !force {
        if let Some(m) = read_manifest(&manifest_path) {
            if &m.params == params && looks_complete(params, root) {
                return Ok(info(root, &m, false));
            }
        }
    }
    if root.exists() {
        // The manifest goes first: from here on, the directory is not a complete dataset.
        let _ = fs::remove_file(&manifest_path);
        fs::remove_dir_all(root)
            .with_context(|| format!("removing the stale dataset at {}", root.display()))?;
    }
    fs::create_dir_all(root).with_context(|| format!("creating {}", root.display()))?;

    let total = params.messages();
    let bar = progress::bar(total, "generating", "messages");
    let done = AtomicU64::new(0);
    let bytes = AtomicU64::new(0);
    let start = Instant::now();
    generate(params, root, &|n, b| {
        bytes.fetch_add(b, Ordering::Relaxed);
        bar.set_position(done.fetch_add(n, Ordering::Relaxed) + n);
    })
    .map_err(|e| anyhow::anyhow!("generating the dataset: {e}"))?;
    bar.finish_and_clear();
    let seconds = start.elapsed().as_secs_f64();
    let manifest = Manifest {
        format: "nwp-fields".to_string(),
        format_version: 1,
        params: params.clone(),
        messages: total,
        bytes: bytes.into_inner(),
        generation_seconds: seconds,
        generated_by: format!("harness {}", env!("CARGO_PKG_VERSION")),
    };
    let tmp = root.join(".manifest.json.tmp");
    fs::write(&tmp, serde_json::to_vec_pretty(&manifest)?)
        .and_then(|_| fs::rename(&tmp, &manifest_path))
        .with_context(|| format!("writing {}", manifest_path.display()))?;
    Ok(info(root, &manifest, true))
}

/// Requests at once when a dataset is uploaded to an object store.
pub const UPLOAD_CONCURRENCY: usize = 32;

/// A dataset copied to an object store.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StoreCopy {
    pub url: String,
    /// false: the store already held this dataset (its manifest matched).
    pub uploaded: bool,
    pub files: u64,
    pub bytes: u64,
    pub seconds: f64,
}

/// Makes sure the complete dataset at `local` is also at `url`: reused when the
/// store's `manifest.json` equals the local one, else the prefix is emptied and
/// every file uploaded (at most [`UPLOAD_CONCURRENCY`] requests at once), the
/// manifest last, so that an interrupted upload is never taken for a dataset.
pub fn ensure_in_store(local: &Path, url: &StoreUrl, s3: &S3Config) -> anyhow::Result<StoreCopy> {
    let manifest = fs::read(local.join(MANIFEST))
        .with_context(|| format!("{}: no manifest", local.display()))?;
    let store = Store::open(url, local, None, s3).map_err(anyhow::Error::msg)?;
    let start = Instant::now();
    let r = store::block_on(async {
        if let Some(there) = store.get_if_exists(MANIFEST).await? {
            let same = serde_json::from_slice::<Manifest>(&there).ok()
                == serde_json::from_slice::<Manifest>(&manifest).ok();
            if same {
                return Ok((false, 0, 0));
            }
        }
        let mut files = 0u64;
        count_files(local, &mut files).map_err(|e| format!("{}: {e}", local.display()))?;
        store.delete_all(UPLOAD_CONCURRENCY).await?;
        let bar = progress::bar(files, &format!("uploading to {url}"), "files");
        let (n, bytes) = store
            .upload_dir(local, Some(MANIFEST), UPLOAD_CONCURRENCY, &|n, _| {
                bar.inc(n)
            })
            .await?;
        bar.finish_and_clear();
        Ok::<_, String>((true, n, bytes))
    })
    .map_err(anyhow::Error::msg)?
    .map_err(|e| anyhow::anyhow!("copying the dataset to {url}: {e}"))?;
    Ok(StoreCopy {
        url: url.to_string(),
        uploaded: r.0,
        files: r.1,
        bytes: r.2,
        seconds: start.elapsed().as_secs_f64(),
    })
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
    }
}

pub fn read_manifest(path: &Path) -> Option<Manifest> {
    let bytes = fs::read(path).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// A cheap check that a manifest's files are still there: the last file of each kind.
fn looks_complete(p: &DatasetParams, root: &Path) -> bool {
    let (g, v, s) = (p.groups - 1, p.variables - 1, p.steps - 1);
    match p.layout {
        Layout::Files => root.join(DatasetParams::message_path(g, v, s)).is_file(),
        Layout::Container => {
            root.join(DatasetParams::container_path(g)).is_file()
                && root.join(DatasetParams::index_path(g)).is_file()
        }
    }
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
        }
    }

    #[test]
    fn same_parameters_reuse_and_different_ones_regenerate() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("ds");
        let p = params();
        let first = ensure(&p, &root, false).unwrap();
        assert!(first.generated);
        assert_eq!(first.messages, 6);
        let msg = root.join(DatasetParams::message_path(0, 1, 2));
        assert_eq!(fs::read(&msg).unwrap(), p.message_bytes(0, 1, 2));
        assert_eq!(
            first.bytes,
            (0..6)
                .map(|i| p.message_bytes(0, i / 3, i % 3).len() as u64)
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
        assert_eq!(fs::read(&msg).unwrap(), other.message_bytes(0, 1, 2));

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
    fn an_interrupted_generation_is_not_reused() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("ds");
        let p = params();
        ensure(&p, &root, false).unwrap();
        // As if generation had stopped before the manifest was written.
        fs::remove_file(root.join(MANIFEST)).unwrap();
        assert!(ensure(&p, &root, false).unwrap().generated);
        // Or as if files had been deleted since.
        fs::remove_file(root.join(DatasetParams::message_path(0, 1, 2))).unwrap();
        assert!(ensure(&p, &root, false).unwrap().generated);
    }
}
