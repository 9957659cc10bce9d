//! Writing outputs: a write reported the way the contract asks
//! ([`write_recorded`]), the workload's metadata before any chunk
//! ([`write_metadata`]), and atomic object writes to a local directory, shared by
//! the std::fs-based backends.

use std::collections::HashSet;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use crate::backend::{RunError, RunOutcome};
use crate::recorder::{Io, Recorder, Stage};
use crate::workload::{OutputObject, Workload};

/// Writes `object` with `write(key, bytes)` and reports it: one write IO to
/// `recorder` (begun before the call, ended after it, whatever it returned) and,
/// once written, a [`Stage::Write`] of its size, counted in `outcome`.
pub fn write_recorded(
    recorder: &dyn Recorder,
    outcome: &mut RunOutcome,
    object: &OutputObject,
    write: impl FnOnce(&str, &[u8]) -> Result<(), RunError>,
) -> Result<(), RunError> {
    let t = Instant::now();
    recorder.io_begin(Io::Write);
    let r = write(&object.key, &object.bytes);
    recorder.io_end(Io::Write);
    r?;
    let len = object.bytes.len() as u64;
    recorder.stage_done(Stage::Write, t, len);
    outcome.outputs += 1;
    outcome.output_bytes += len;
    Ok(())
}

/// Writes the workload's metadata objects ([`Workload::metadata`], e.g.
/// `zarr.json`) one after the other with `write(key, bytes)`, each through
/// [`write_recorded`]; the first error ends it. Call it before any chunk is
/// written, as the [`Workload`] contract asks.
pub fn write_metadata<W: Workload>(
    workload: &W,
    recorder: &dyn Recorder,
    outcome: &mut RunOutcome,
    mut write: impl FnMut(&str, &[u8]) -> Result<(), RunError>,
) -> Result<(), RunError> {
    for object in workload.metadata() {
        write_recorded(recorder, outcome, &object, &mut write)?;
    }
    Ok(())
}

/// The temporary name an object is written under before the rename that makes it
/// visible. It starts with a dot, so Zarr readers and verification see it as not
/// part of the array; the process id and a counter keep concurrent writers apart.
pub fn temp_path(final_path: &Path) -> PathBuf {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let name = final_path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    final_path.with_file_name(format!(".{name}.tmp-{}-{n}", std::process::id()))
}

/// Whether a file name is one of our temporary names.
pub fn is_temp_name(name: &str) -> bool {
    name.starts_with('.') && name.contains(".tmp-")
}

/// Writes objects under a root with temp file + rename, creating each directory once.
pub struct LocalWriter {
    root: PathBuf,
    /// Directories known to exist, so that a chunk costs no `mkdir` calls after the
    /// first in its directory.
    made: HashSet<PathBuf>,
}

impl LocalWriter {
    /// A writer of objects under `root` (which exists).
    pub fn new(root: &Path) -> Self {
        LocalWriter {
            root: root.to_path_buf(),
            made: HashSet::new(),
        }
    }

    /// Writes `bytes` to `root/key` atomically; on error nothing is left behind.
    pub fn write(&mut self, key: &str, bytes: &[u8]) -> Result<(), RunError> {
        let path = self.root.join(key);
        if let Some(dir) = path.parent() {
            if !self.made.contains(dir) {
                fs::create_dir_all(dir).map_err(|e| RunError::output(dir, io_detail(&e)))?;
                self.made.insert(dir.to_path_buf());
            }
        }
        write_atomic(&path, bytes)
    }
}

/// Writes `bytes` to `path` via a temporary file in the same directory and a rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), RunError> {
    let tmp = temp_path(path);
    let result = (|| {
        let mut f = fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        drop(f);
        fs::rename(&tmp, path)
    })();
    result.map_err(|e| {
        let _ = fs::remove_file(&tmp);
        RunError::output(path, io_detail(&e))
    })
}

/// An IO error in words a user acts on: a full disk says so.
pub fn io_detail(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::StorageFull => format!("no space left on the device ({e})"),
        std::io::ErrorKind::QuotaExceeded => format!("disk quota exceeded ({e})"),
        _ => e.to_string(),
    }
}
