//! Page-cache control before a repetition, and a measurement of what was achieved.
//!
//! Cold: `posix_fadvise(DONTNEED)` on every input file (works without root), and,
//! as root when the scenario asks, `echo 1 > /proc/sys/vm/drop_caches`. Warm: every
//! input file is read once before the first repetition. Either way a sample of the
//! input files is checked with `mincore` and the resident fraction recorded, so the
//! results say what the cache really held, not what was asked for.

use std::io::Read;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use rayon::prelude::*;
use rechunk_contract::input::open_input;
use rechunk_contract::nwp::{DatasetParams, Layout};
use serde::{Deserialize, Serialize};

use crate::scenario::CacheMode;

/// What was done to the cache and what it then held.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CacheState {
    /// The cache state the scenario asked for (`warm` or `cold`).
    pub requested: CacheMode,
    /// Files given `posix_fadvise(DONTNEED)`.
    pub fadvise_files: u64,
    /// Files read to warm the cache (only before the first repetition).
    pub warmed_files: u64,
    /// Whether the whole page cache was dropped.
    pub dropped_page_cache: bool,
    /// Files whose residency was sampled.
    pub sampled_files: u64,
    /// Fraction of the sampled files' pages in the page cache just before the run.
    pub resident_fraction: f64,
}

/// Every distinct file of the dataset.
pub fn input_files(p: &DatasetParams, root: &Path) -> Vec<PathBuf> {
    if let rechunk_contract::nwp::Format::Grib2Dir(d) = &p.format {
        // The catalog's files, each once (a file may hold several messages). An
        // unreadable catalog is the child's error to report.
        let mut paths: Vec<PathBuf> = d
            .groups()
            .unwrap_or_default()
            .iter()
            .flat_map(|g| g.inputs.iter().map(|i| root.join(&*i.path)))
            .collect();
        paths.sort_unstable();
        paths.dedup();
        return paths;
    }
    match p.layout {
        Layout::Files => (0..p.groups)
            .flat_map(|g| (0..p.variables).flat_map(move |v| (0..p.steps).map(move |s| (g, v, s))))
            .map(|(g, v, s)| root.join(p.message_path(g, v, s)))
            .collect(),
        Layout::Container => (0..p.groups)
            .map(|g| root.join(p.container_path(g)))
            .collect(),
    }
}

/// Evicts the files' pages; drops all caches too when asked and permitted.
pub fn evict(files: &[PathBuf], drop_all: bool) -> anyhow::Result<(u64, bool)> {
    let advised = files
        .par_iter()
        .map(|path| -> anyhow::Result<u64> {
            crate::signals::check()?;
            let f = open_input(path)?;
            // SAFETY: a valid descriptor; offset 0 and length 0 mean the whole file.
            let rc = unsafe { libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
            if rc != 0 {
                anyhow::bail!(
                    "{}: posix_fadvise: {}",
                    path.display(),
                    std::io::Error::from_raw_os_error(rc)
                );
            }
            Ok(1)
        })
        .sum::<anyhow::Result<u64>>()?;
    let mut dropped = false;
    // SAFETY: geteuid has no preconditions.
    if drop_all && unsafe { libc::geteuid() } == 0 {
        // SAFETY: sync has no preconditions.
        unsafe { libc::sync() };
        dropped = std::fs::write("/proc/sys/vm/drop_caches", "1").is_ok();
    }
    Ok((advised, dropped))
}

/// Reads every file once so its pages are cached. Inputs are opened as the
/// backends open them: only regular files, never blocking on a FIFO; a signal
/// stops it between files.
pub fn warm(files: &[PathBuf]) -> anyhow::Result<u64> {
    files
        .par_iter()
        .map_init(
            || vec![0u8; 1 << 20],
            |buf, path| -> anyhow::Result<u64> {
                crate::signals::check()?;
                let mut f = open_input(path)?;
                while f
                    .read(buf)
                    .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?
                    > 0
                {}
                Ok(1)
            },
        )
        .sum()
}

/// The fraction of pages resident over an evenly spaced sample of up to `max` files.
pub fn resident_fraction(files: &[PathBuf], max: usize) -> (u64, f64) {
    let step = (files.len() / max.max(1)).max(1);
    let (mut resident, mut total, mut sampled) = (0u64, 0u64, 0u64);
    for path in files.iter().step_by(step).take(max) {
        if let Some((r, t)) = residency(path) {
            resident += r;
            total += t;
            sampled += 1;
        }
    }
    (
        sampled,
        if total == 0 {
            0.0
        } else {
            resident as f64 / total as f64
        },
    )
}

/// (resident pages, pages) of one file, by mmap + mincore.
fn residency(path: &Path) -> Option<(u64, u64)> {
    let f = open_input(path).ok()?;
    let len = f.metadata().ok()?.len() as usize;
    if len == 0 {
        return Some((0, 0));
    }
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as usize;
    let pages = len.div_ceil(page);
    // SAFETY: a read-only shared mapping of a file we hold open, unmapped below;
    // mincore writes one byte per page into a vector of that many bytes.
    unsafe {
        let addr = libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ,
            libc::MAP_SHARED,
            f.as_raw_fd(),
            0,
        );
        if addr == libc::MAP_FAILED {
            return None;
        }
        let mut vec = vec![0u8; pages];
        let rc = libc::mincore(addr, len, vec.as_mut_ptr());
        libc::munmap(addr, len);
        if rc != 0 {
            return None;
        }
        Some((
            vec.iter().filter(|b| *b & 1 == 1).count() as u64,
            pages as u64,
        ))
    }
}
