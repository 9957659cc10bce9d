//! Opening and reading inputs: only regular files, and never more bytes than the
//! largest valid input. Every backend opens its inputs through here (or, where the
//! open is the kernel's, as io_uring's `openat`, with [`OPEN_FLAGS`] and the checks
//! below), so that what an input path may name is decided in one place.
//!
//! An input path can name something that is not a file: a FIFO, whose `open(2)` for
//! reading waits until a writer appears (for ever, in a benchmark), or a symlink to
//! `/dev/zero`, whose reads never end. So an input is opened with `O_NONBLOCK` (an
//! open of a FIFO returns at once), `fstat`ed, and refused unless it is a regular
//! file, with an error that names the path and what it is
//! (`not a regular file (a FIFO)`); `O_NONBLOCK` is then cleared again, so the
//! descriptor reads like any other. A whole-file read stops one byte past the
//! largest valid input (the workload's [`crate::ItemCost::read`]), which tells
//! "too large" without reading the rest.

use std::fs::{File, FileType, OpenOptions};
use std::io::{ErrorKind, Read};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;

use crate::backend::RunError;
use crate::output::io_detail;

/// The flags an input is opened with: read-only, close-on-exec, and non-blocking so
/// that opening a FIFO does not wait for a writer. Backends whose open is not
/// [`open_input`] (io_uring's `openat`) use these too.
pub const OPEN_FLAGS: i32 = libc::O_RDONLY | libc::O_CLOEXEC | libc::O_NONBLOCK;

/// What a file is, in words: `a FIFO`, `a socket`, `a character device`, `a block
/// device`, `a directory`, `a symbolic link` or `a regular file`.
pub fn file_kind(ft: &FileType) -> &'static str {
    if ft.is_file() {
        "a regular file"
    } else if ft.is_fifo() {
        "a FIFO"
    } else if ft.is_socket() {
        "a socket"
    } else if ft.is_char_device() {
        "a character device"
    } else if ft.is_block_device() {
        "a block device"
    } else if ft.is_dir() {
        "a directory"
    } else if ft.is_symlink() {
        "a symbolic link"
    } else {
        "not a kind of file this program knows"
    }
}

/// The error for an input that is not a regular file: `not a regular file (a FIFO)`.
fn not_regular_error(path: &Path, ft: &FileType) -> RunError {
    RunError::input(path, format!("not a regular file ({})", file_kind(ft)))
}

/// What `path` is if it is there and not a regular file (symlinks followed), e.g.
/// `Some("a FIFO")`; `None` for a regular file or a path that cannot be `stat`ed
/// (whoever opens it reports that). One `stat`: for error paths and untimed checks,
/// not for every input of a run.
pub fn not_regular(path: &Path) -> Option<&'static str> {
    let meta = std::fs::metadata(path).ok()?;
    (!meta.is_file()).then(|| file_kind(&meta.file_type()))
}

/// `Err(not a regular file (…))` if `path` is there and is not a regular file; see
/// [`not_regular`].
pub fn check_regular(path: &Path) -> Result<(), RunError> {
    match not_regular(path) {
        Some(kind) => Err(RunError::input(
            path,
            format!("not a regular file ({kind})"),
        )),
        None => Ok(()),
    }
}

/// The error for an input whose open failed: `not a regular file (…)` when that is
/// why (a socket's open fails with ENXIO, a FIFO's with EINVAL under `O_DIRECT`),
/// else `cannot open: …`. For backends whose open is not [`open_input`].
pub fn open_error(path: &Path, e: &std::io::Error) -> RunError {
    match not_regular(path) {
        Some(kind) => RunError::input(path, format!("not a regular file ({kind})")),
        None => RunError::input(path, format!("cannot open: {}", io_detail(e))),
    }
}

/// Opens an input for reading: with [`OPEN_FLAGS`], refused unless it is a regular
/// file, `O_NONBLOCK` cleared before it is returned. For whole files and for
/// containers read by byte range alike.
pub fn open_input(path: &Path) -> Result<File, RunError> {
    open_regular(path).map(|(file, _)| file)
}

/// [`open_input`] and the file's length by `fstat`.
fn open_regular(path: &Path) -> Result<(File, u64), RunError> {
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| open_error(path, &e))?;
    // Opened with O_RDONLY | O_NONBLOCK (std adds O_CLOEXEC, a descriptor flag that
    // F_SETFL leaves alone): no status flag but O_NONBLOCK to clear, so one F_SETFL
    // with none does it, without an F_GETFL first.
    checked(file, path, Some(0))
}

/// Checks a file an input path was opened as (by the caller, e.g. with `O_DIRECT`
/// added to [`OPEN_FLAGS`]): refused unless it is a regular file, `O_NONBLOCK`
/// cleared if it was set.
pub fn regular_input(file: File, path: &Path) -> Result<File, RunError> {
    checked(file, path, None).map(|(file, _)| file)
}

/// [`regular_input`] for a file opened with exactly [`OPEN_FLAGS`] (as an io_uring
/// `openat` with them opens it), and its length by `fstat`: no status flag but
/// `O_NONBLOCK` to clear, so one `F_SETFL`, as [`open_input`] does.
pub fn opened_input(file: File, path: &Path) -> Result<(File, u64), RunError> {
    checked(file, path, Some(0))
}

/// `fstat`s `file`, refuses anything but a regular file, and clears `O_NONBLOCK`:
/// `flags` are the status flags to set instead, or `None` to read them first.
fn checked(file: File, path: &Path, flags: Option<i32>) -> Result<(File, u64), RunError> {
    let meta = file
        .metadata()
        .map_err(|e| RunError::input(path, format!("cannot stat: {}", io_detail(&e))))?;
    if !meta.is_file() {
        return Err(not_regular_error(path, &meta.file_type()));
    }
    let fd = file.as_raw_fd();
    let flags = match flags {
        Some(f) => f,
        // SAFETY: F_GETFL on a descriptor `file` owns.
        None => match unsafe { libc::fcntl(fd, libc::F_GETFL) } {
            -1 => return Err(fcntl_error(path)),
            f if f & libc::O_NONBLOCK == 0 => return Ok((file, meta.len())),
            f => f & !libc::O_NONBLOCK,
        },
    };
    // SAFETY: F_SETFL on a descriptor `file` owns.
    if unsafe { libc::fcntl(fd, libc::F_SETFL, flags) } == -1 {
        return Err(fcntl_error(path));
    }
    Ok((file, meta.len()))
}

fn fcntl_error(path: &Path) -> RunError {
    let e = std::io::Error::last_os_error();
    RunError::input(path, format!("fcntl: {}", io_detail(&e)))
}

/// The error for a whole-file input longer than `max_len` bytes, as
/// [`read_input`] gives it: for backends that read a whole file their own way.
pub fn too_large_error(path: &Path, max_len: u64) -> RunError {
    RunError::input(
        path,
        format!("larger than any valid input ({max_len} bytes at most)"),
    )
}

/// Reads the whole input at `path`, a regular file (see [`open_input`]) of at most
/// `max_len` bytes (the workload's [`crate::ItemCost::read`]; `u64::MAX`: no bound
/// but the file's end). The buffer is sized from `fstat`'s length, and at most
/// `max_len + 1` bytes are read: a file longer than `max_len` (by `fstat`, or grown
/// since) fails with `larger than any valid input (N bytes at most)`. Costs what
/// `std::fs::read` does (open, stat, a read, a read that returns 0, close) plus one
/// `fcntl` clearing `O_NONBLOCK`.
pub fn read_input(path: &Path, max_len: u64) -> Result<Vec<u8>, RunError> {
    let (mut file, len) = open_regular(path)?;
    if len > max_len {
        return Err(too_large_error(path, max_len));
    }
    let limit = max_len.saturating_add(1);
    // Room for the length fstat gave plus one byte, so that one read brings the
    // file and the next sees its end; grown (up to `limit`) only if the file grew.
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
        match file.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(RunError::input(path, io_detail(&e))),
        }
    }
    buf.truncate(n);
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    use std::time::{Duration, Instant};

    fn mkfifo(path: &Path) {
        let c = CString::new(path.as_os_str().as_bytes()).unwrap();
        // SAFETY: a NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0, "mkfifo");
    }

    /// The detail of an input error that must name `path`.
    fn detail(r: Result<impl std::fmt::Debug, RunError>, path: &Path) -> String {
        match r {
            Err(RunError::Input { path: p, detail }) => {
                assert_eq!(p, path);
                detail
            }
            other => panic!(
                "expected an input error for {}, got {other:?}",
                path.display()
            ),
        }
    }

    #[test]
    fn a_fifo_is_refused_at_once_without_waiting_for_a_writer() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        mkfifo(&fifo);
        let t = Instant::now();
        assert_eq!(
            detail(read_input(&fifo, 100), &fifo),
            "not a regular file (a FIFO)"
        );
        assert_eq!(
            detail(open_input(&fifo), &fifo),
            "not a regular file (a FIFO)"
        );
        assert!(t.elapsed() < Duration::from_secs(5));
        assert_eq!(not_regular(&fifo), Some("a FIFO"));
        assert!(check_regular(&fifo).is_err());
    }

    #[test]
    fn a_symlink_to_dev_zero_is_refused_without_reading() {
        let dir = tempfile::tempdir().unwrap();
        let link = dir.path().join("zero");
        std::os::unix::fs::symlink("/dev/zero", &link).unwrap();
        assert_eq!(
            detail(read_input(&link, u64::MAX), &link),
            "not a regular file (a character device)"
        );
        assert_eq!(
            detail(open_input(&link), &link),
            "not a regular file (a character device)"
        );
    }

    #[test]
    fn a_directory_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(
            detail(read_input(dir.path(), 100), dir.path()),
            "not a regular file (a directory)"
        );
        assert_eq!(
            detail(open_input(dir.path()), dir.path()),
            "not a regular file (a directory)"
        );
    }

    #[test]
    fn a_socket_is_refused_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sock");
        let _listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
        // open(2) of a socket fails with ENXIO; the error still says what it is.
        assert_eq!(
            detail(read_input(&path, 100), &path),
            "not a regular file (a socket)"
        );
    }

    #[test]
    fn a_file_larger_than_the_bound_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big");
        std::fs::write(&path, vec![7u8; 101]).unwrap();
        assert_eq!(
            detail(read_input(&path, 100), &path),
            "larger than any valid input (100 bytes at most)"
        );
        // Exactly at the bound is fine.
        assert_eq!(read_input(&path, 101).unwrap(), vec![7u8; 101]);
    }

    #[test]
    fn regular_files_read_whole_and_descriptors_block_again() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ok");
        let bytes: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(&path, &bytes).unwrap();
        assert_eq!(read_input(&path, 20_000).unwrap(), bytes);
        assert_eq!(read_input(&path, u64::MAX).unwrap(), bytes);
        let empty = dir.path().join("empty");
        std::fs::write(&empty, b"").unwrap();
        assert_eq!(read_input(&empty, 0).unwrap(), Vec::<u8>::new());
        assert_eq!(not_regular(&path), None);
        check_regular(&path).unwrap();

        let nonblocking = |f: &File| {
            // SAFETY: F_GETFL on an open descriptor.
            let flags = unsafe { libc::fcntl(f.as_raw_fd(), libc::F_GETFL) };
            assert!(flags >= 0);
            flags & libc::O_NONBLOCK != 0
        };
        let f = open_input(&path).unwrap();
        assert!(!nonblocking(&f), "open_input left O_NONBLOCK set");
        let f = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&path)
            .unwrap();
        let f = regular_input(f, &path).unwrap();
        assert!(!nonblocking(&f), "regular_input left O_NONBLOCK set");
    }

    #[test]
    fn a_missing_file_cannot_be_opened() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("missing");
        let d = detail(read_input(&path, 100), &path);
        assert!(d.starts_with("cannot open: "), "{d}");
        assert_eq!(not_regular(&path), None);
    }
}
