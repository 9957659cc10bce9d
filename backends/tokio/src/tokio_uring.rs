//! `io = "tokio-uring"` ([`crate::IoMode::TokioUring`]): `tokio::fs` on Tokio's own
//! experimental io_uring driver, what a Tokio user reaches for first to put file IO
//! on io_uring.
//!
//! Tokio runs `tokio::fs` calls on io_uring only when three things hold: the build
//! has `--cfg tokio_unstable` (the workspace's `.cargo/config.toml` sets it), tokio's
//! `io-uring` feature is on (this crate turns it on), and the runtime was built with
//! `enable_io_uring()` (the pipeline does so for this mode only; the other file modes
//! build their runtime without the IO driver, so their `tokio::fs` calls stay on the
//! blocking pool). Tokio then opens one ring of 256 entries per runtime on the first
//! file operation, behind one mutex; each operation locks it to push its entry and
//! submits at once (one `io_uring_enter` per operation, no batching), and completions
//! are reaped by the runtime's IO driver when epoll reports the ring's descriptor
//! readable, which wakes the task.
//!
//! What goes through the ring, per call of this mode:
//!
//! - reads: `OpenOptions::open` (`openat`, with [`OPEN_FLAGS`]), each
//!   `AsyncRead::read` of a `tokio::fs::File` (`read` at the file position; Tokio
//!   runs each in a task it spawns, into its own buffer of at most 2 MiB, copied
//!   out);
//! - writes: `tokio::fs::write` (`openat` with `O_CREAT | O_TRUNC`, then `write`s)
//!   and `tokio::fs::rename` (`renameat`).
//!
//! What does not: the `fstat` and the `fcntl` that refuse anything but a regular
//! file and clear `O_NONBLOCK` ([`rechunk_contract::input::opened_input`]), a byte
//! range's `lseek`, and every `close` run inline on the Tokio worker (none of them
//! waits on a disk; `File::metadata` and `AsyncSeek` would each be a hop to the
//! blocking pool); `tokio::fs::create_dir_all` (once per output directory) and
//! `remove_file` (a failed write's temporary file) have no io_uring path in Tokio
//! and hop to the blocking pool, counted in `write_blocking_hops`.
//!
//! `tokio::fs::read` itself is not used: it opens without `O_NONBLOCK` (a FIFO's
//! open would wait for a writer for ever, and the runtime's drop would wait for
//! that open) and reads to the end of whatever it opened (`/dev/zero` has none),
//! where every mode here reads regular files only and never more than the largest
//! valid input.
//!
//! Where io_uring cannot be used, Tokio falls back to its blocking pool without a
//! word. So the mode is refused instead: [`availability`] probes io_uring as Tokio
//! does, and [`check_runtime`] checks on the run's own runtime that an open went
//! through the ring before anything is timed as io_uring.

use std::io::{ErrorKind, Seek, SeekFrom};
use std::path::Path;

use rechunk_contract::input::{open_error, opened_input, too_large_error, OPEN_FLAGS};
use rechunk_contract::output::io_detail;
use rechunk_contract::{Availability, ByteRange, RunError};
use tokio::io::AsyncReadExt;

// What `read` opens with is OPEN_FLAGS, so that `opened_input` has only O_NONBLOCK
// to clear.
const _: () = assert!(OPEN_FLAGS == libc::O_RDONLY | libc::O_CLOEXEC | libc::O_NONBLOCK);

/// Why the mode is refused in a build without `--cfg tokio_unstable`.
pub const NOT_BUILT: &str = "io = \"tokio-uring\" needs a build with `--cfg tokio_unstable` \
    (.cargo/config.toml sets it; a RUSTFLAGS environment variable replaces it): without it \
    tokio::fs has no io_uring path and would run every call in its blocking pool";

/// The ring size Tokio sets up (its driver's `DEFAULT_RING_SIZE`).
const TOKIO_RING_ENTRIES: u32 = 256;

/// Whether `io = "tokio-uring"` can run here, and if not, why: a build with
/// `--cfg tokio_unstable`, io_uring not switched off, and a ring set up as Tokio
/// sets up its own (256 entries, then `IORING_REGISTER_PROBE`) that supports every
/// operation the mode submits. Where any of these fails Tokio would quietly run the
/// calls in its blocking pool (or fail them), so the mode is unavailable.
pub fn availability() -> Availability {
    if !cfg!(tokio_unstable) {
        return Availability::Unavailable(NOT_BUILT.into());
    }
    if let Ok(s) = std::fs::read_to_string("/proc/sys/kernel/io_uring_disabled") {
        match s.trim() {
            "0" | "" => {}
            v => {
                return Availability::Unavailable(format!(
                    "kernel.io_uring_disabled = {v}: io_uring is switched off for this \
                     process, and Tokio would run tokio::fs in its blocking pool"
                ))
            }
        }
    }
    let ring = match io_uring::IoUring::new(TOKIO_RING_ENTRIES) {
        Ok(ring) => ring,
        Err(e) => {
            return Availability::Unavailable(format!(
                "io_uring_setup failed: {e} (seccomp, an old kernel, or a sandbox forbids \
                 it), and Tokio would run tokio::fs in its blocking pool"
            ))
        }
    };
    let mut probe = io_uring::Probe::new();
    if let Err(e) = ring.submitter().register_probe(&mut probe) {
        return Availability::Unavailable(format!(
            "IORING_REGISTER_PROBE failed: {e} (a kernel older than 5.6?), and Tokio would \
             run tokio::fs in its blocking pool"
        ));
    }
    use io_uring::opcode::{OpenAt, Read, RenameAt, Write};
    for (code, name) in [
        (OpenAt::CODE, "openat"),
        (Read::CODE, "read"),
        (Write::CODE, "write"),
        (RenameAt::CODE, "renameat"),
    ] {
        if !probe.is_supported(code) {
            return Availability::Unavailable(format!(
                "this kernel's io_uring has no {name}, which Tokio would run in its \
                 blocking pool instead"
            ));
        }
    }
    Availability::Available
}

/// Checks, on the runtime the run will use (built with `enable_io_uring`, no
/// blocking-pool thread started yet), that Tokio does open files through io_uring:
/// opens `dir` with `tokio::fs` and fails with [`RunError::Unavailable`] if that
/// started a blocking-pool thread (Tokio's own probe failed and it fell back) or
/// failed. The ring Tokio sets up for it is the one the run then uses.
#[cfg(tokio_unstable)]
pub async fn check_runtime(dir: &Path) -> Result<(), RunError> {
    let metrics = tokio::runtime::Handle::current().metrics();
    if metrics.num_blocking_threads() != 0 {
        return Err(RunError::Internal(
            "tokio-uring: the runtime's blocking pool was already in use, so whether \
             Tokio uses io_uring cannot be told"
                .into(),
        ));
    }
    let opened = tokio::fs::OpenOptions::new().read(true).open(dir).await;
    if metrics.num_blocking_threads() != 0 {
        return Err(RunError::Unavailable(
            "Tokio ran its first open in its blocking pool rather than on io_uring (its own \
             probe failed, or the runtime has no IO driver): refused rather than measured \
             as io_uring"
                .into(),
        ));
    }
    opened.map(drop).map_err(|e| {
        RunError::Unavailable(format!(
            "Tokio's io_uring open of {} failed: {}",
            dir.display(),
            io_detail(&e)
        ))
    })
}

/// Without `--cfg tokio_unstable` the mode never runs: see [`NOT_BUILT`].
#[cfg(not(tokio_unstable))]
pub async fn check_runtime(_dir: &Path) -> Result<(), RunError> {
    Err(RunError::Unavailable(NOT_BUILT.into()))
}

/// Reads one input with `tokio::fs` on io_uring: a whole file of at most `max_len`
/// bytes, or `range` of its file. Opened with [`OPEN_FLAGS`] (a FIFO's open returns
/// at once), refused unless a regular file, `O_NONBLOCK` cleared; then read with
/// `AsyncReadExt::read` (a whole file: into a buffer of its `fstat` length plus one
/// byte, so that the second read sees its end, as
/// [`rechunk_contract::input::read_input`] does) or `read_exact` after an `lseek`
/// (a range; opened per range, since a `tokio::fs::File` reads at its position).
/// Errors name `path`, in the words of the other modes.
pub async fn read(
    path: &Path,
    range: Option<ByteRange>,
    max_len: u64,
) -> Result<Vec<u8>, RunError> {
    let file = tokio::fs::OpenOptions::new()
        .read(true)
        // With read(true) and the O_CLOEXEC Tokio adds: OPEN_FLAGS (checked below).
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .await
        .map_err(|e| open_error(path, &e))?;
    let file = file
        .try_into_std()
        .map_err(|_| RunError::Internal("tokio::fs::File busy right after its open".into()))?;
    let (mut file, len) = opened_input(file, path)?;
    if let Some(r) = range {
        let fail = |e: std::io::Error| crate::read_groups::range_error(path, range, e);
        // lseek only moves the file position: inline, where tokio's AsyncSeek
        // would hop to the blocking pool.
        file.seek(SeekFrom::Start(r.offset)).map_err(fail)?;
        let mut buf = vec![0; r.len as usize];
        tokio::fs::File::from_std(file)
            .read_exact(&mut buf)
            .await
            .map_err(fail)?;
        return Ok(buf);
    }
    if len > max_len {
        return Err(too_large_error(path, max_len));
    }
    let mut file = tokio::fs::File::from_std(file);
    let limit = max_len.saturating_add(1);
    // As read_input: room for the fstat length plus one byte, grown (up to `limit`)
    // only if the file grew.
    let mut buf = vec![0u8; (len + 1).min(limit) as usize];
    let mut n = 0;
    loop {
        if n == buf.len() {
            if n as u64 >= limit {
                return Err(too_large_error(path, max_len));
            }
            let grown = (buf.len() as u64).saturating_mul(2).min(limit);
            buf.resize(grown as usize, 0);
        }
        match file.read(&mut buf[n..]).await {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(RunError::input(path, io_detail(&e))),
        }
    }
    buf.truncate(n);
    Ok(buf)
}
