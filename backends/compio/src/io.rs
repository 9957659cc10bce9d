//! Reading inputs and writing outputs with compio's file API, every operation an
//! io_uring submission of the IO thread's own ring.
//!
//! - A whole file: `openat` (with [`input::OPEN_FLAGS`], so a FIFO's open returns
//!   at once) → `read` into the buffer's spare room, repeated until a read returns
//!   0 → `close`. Between the open and the first read, `fstat` and `fcntl` run as
//!   plain syscalls on the IO thread (each costs less than a ring round trip): the
//!   file is refused unless it is a regular file, and at most its `fstat` length
//!   plus one byte, never more than the largest valid input plus one, is read, as
//!   [`input::read_input`] does.
//! - A byte range: one positioned `read` (repeated until complete) of its
//!   container, opened once per IO thread through [`input::open_input`] (a plain
//!   `open` of a regular file, once per container).
//! - An output: `mkdirat` for a directory not seen yet → `openat(O_CREAT)` of a
//!   temporary name → `write` until all is written → `close` → `renameat`, so a
//!   reader never sees half an object; on an error the temporary file is unlinked.

use std::cell::RefCell;
use std::collections::HashMap;
use std::io::ErrorKind;
use std::mem::ManuallyDrop;
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd};
use std::path::Path;

use compio::buf::{BufResult, IntoInner, IoBuf};
use compio::fs::{File, OpenOptions};
use compio::io::{AsyncReadAt, AsyncWriteAtExt};
use rechunk_contract::input::{self, file_kind};
use rechunk_contract::output::{io_detail, temp_path};
use rechunk_contract::{ByteRange, RunError};

/// The containers one IO thread has open, by path relative to the input root.
#[derive(Default)]
pub struct Containers(RefCell<HashMap<Box<str>, File>>);

impl Containers {
    /// The container at `rel` (`path` in full), opened on first use.
    fn get(&self, rel: &str, path: &Path) -> Result<File, RunError> {
        if let Some(f) = self.0.borrow().get(rel) {
            return Ok(f.clone());
        }
        let std_file = input::open_input(path)?;
        // SAFETY: the descriptor was just taken out of an open `File`, so this is its
        // only owner.
        let file = unsafe { File::from_raw_fd(std_file.into_raw_fd()) };
        self.0.borrow_mut().insert(rel.into(), file.clone());
        Ok(file)
    }

    /// Closes them all (drops the descriptors); call before the runtime ends.
    pub fn close_all(&self) {
        self.0.borrow_mut().clear();
    }
}

/// Why opening the input at `path` failed: `not a regular file (…)` when that is
/// why (a socket's open fails with ENXIO), else `cannot open: …`, as
/// [`input::open_input`] says it.
fn open_error(path: &Path, e: &std::io::Error) -> RunError {
    match input::not_regular(path) {
        Some(kind) => RunError::input(path, format!("not a regular file ({kind})")),
        None => RunError::input(path, format!("cannot open: {}", io_detail(e))),
    }
}

fn too_large(path: &Path, max_len: u64) -> RunError {
    RunError::input(
        path,
        format!("larger than any valid input ({max_len} bytes at most)"),
    )
}

/// The length of the file open at `file` if it is a regular file (else `not a
/// regular file (…)`), with `O_NONBLOCK` cleared so that its reads go to io_uring's
/// workers when they must wait for the disk.
fn regular(file: &File, path: &Path) -> Result<u64, RunError> {
    let fd = file.as_raw_fd();
    // SAFETY: borrowed for the `fstat` alone; ManuallyDrop never closes it.
    let borrowed = ManuallyDrop::new(unsafe { std::fs::File::from_raw_fd(fd) });
    let meta = borrowed
        .metadata()
        .map_err(|e| RunError::input(path, format!("cannot stat: {}", io_detail(&e))))?;
    if !meta.is_file() {
        return Err(RunError::input(
            path,
            format!("not a regular file ({})", file_kind(&meta.file_type())),
        ));
    }
    // Opened O_RDONLY | O_NONBLOCK | O_CLOEXEC: O_NONBLOCK is the only status flag
    // to clear (O_CLOEXEC is a descriptor flag F_SETFL leaves alone).
    // SAFETY: F_SETFL on a descriptor `file` owns.
    if unsafe { libc::fcntl(fd, libc::F_SETFL, 0) } == -1 {
        let e = std::io::Error::last_os_error();
        return Err(RunError::input(path, format!("fcntl: {}", io_detail(&e))));
    }
    Ok(meta.len())
}

/// Reads the whole input at `path`, a regular file of at most `max_len` bytes (see
/// [`input::read_input`], whose bounds and errors this keeps).
pub async fn read_file(path: &Path, max_len: u64) -> Result<Vec<u8>, RunError> {
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .await
        .map_err(|e| open_error(path, &e))?;
    let r = read_open(&file, path, max_len).await;
    // A failed close of a file only read loses nothing; the read's result stands.
    let _ = file.close().await;
    r
}

async fn read_open(file: &File, path: &Path, max_len: u64) -> Result<Vec<u8>, RunError> {
    let len = regular(file, path)?;
    if len > max_len {
        return Err(too_large(path, max_len));
    }
    let limit = max_len.saturating_add(1);
    // Room for fstat's length plus one byte, so that one read brings the file and
    // the next sees its end; grown (up to `limit`) only if the file grew.
    let mut buf: Vec<u8> = Vec::with_capacity((len + 1).min(limit) as usize);
    loop {
        if buf.len() == buf.capacity() {
            if buf.len() as u64 >= limit {
                return Err(too_large(path, max_len));
            }
            let grown = (buf.len() as u64).saturating_mul(2).clamp(1, limit) as usize;
            buf.reserve_exact(grown - buf.len());
        }
        let at = buf.len();
        let BufResult(r, slice) = file.read_at(buf.slice(at..), at as u64).await;
        buf = slice.into_inner();
        match r {
            Ok(0) => return Ok(buf),
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(RunError::input(path, io_detail(&e))),
        }
    }
}

/// Reads `range` of the container at `rel` (`path` in full), opened once per IO
/// thread in `containers`.
pub async fn read_range(
    containers: &Containers,
    rel: &str,
    path: &Path,
    range: ByteRange,
) -> Result<Vec<u8>, RunError> {
    let file = containers.get(rel, path)?;
    let len = range.len as usize;
    let mut buf: Vec<u8> = Vec::with_capacity(len);
    while buf.len() < len {
        let at = buf.len();
        let BufResult(r, slice) = file
            .read_at(buf.slice(at..len), range.offset + at as u64)
            .await;
        buf = slice.into_inner();
        match r {
            Ok(0) => {
                return Err(RunError::input(
                    path,
                    format!(
                        "truncated: the file ends before byte {}",
                        range.offset + range.len
                    ),
                ))
            }
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(RunError::input(path, io_detail(&e))),
        }
    }
    Ok(buf)
}

/// Creates `dir` and its parents (`mkdirat` on the ring, each that is missing).
pub async fn create_dir_all(dir: &Path) -> Result<(), RunError> {
    compio::fs::create_dir_all(dir)
        .await
        .map_err(|e| RunError::output(dir, io_detail(&e)))
}

/// Writes `bytes` to `path` atomically: a temporary name, then a rename; on an
/// error the temporary file is removed.
pub async fn write_atomic(path: &Path, bytes: Vec<u8>) -> Result<(), RunError> {
    let tmp = temp_path(path);
    let r = write_then_rename(&tmp, path, bytes).await;
    if r.is_err() {
        let _ = compio::fs::remove_file(&tmp).await;
    }
    r.map_err(|e| RunError::output(path, io_detail(&e)))
}

async fn write_then_rename(tmp: &Path, path: &Path, bytes: Vec<u8>) -> std::io::Result<()> {
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(tmp)
        .await?;
    let BufResult(w, _) = file.write_all_at(bytes, 0).await;
    let c = file.close().await;
    w?;
    c?;
    compio::fs::rename(tmp, path).await
}
