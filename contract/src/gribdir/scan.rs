//! Scanning a directory of GRIB2 files into a [`Catalog`]: [`list`] walks it (no
//! file opened), [`scan`] tells each file's group, variable and step, by the
//! messages' keys or by the file names, and checks the result is a complete
//! groups × variables × steps cube on one grid.
//!
//! Read only: nothing is ever written, created or renamed under the root. Only
//! regular files are opened, through [`crate::input`] (a FIFO is never opened at
//! all; a file that became one since the listing is refused at open without
//! waiting); symbolic links to files are followed, to directories not.
//!
//! A `from = "keys"` scan opens every file and reads each message's sections 0 to 5
//! (a `.bz2` is unwrapped only as far as those), walking uncompressed files message
//! by message; a `from = "pattern"` scan opens one file, for the grid. Either way
//! every other check of a message (its data section, its grid in pattern mode) is
//! [`super::header::check_message`]'s, before it is decoded.

use std::collections::{BTreeSet, HashMap};
use std::fs::{self, File};
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};

use rayon::prelude::*;
use regex::Regex;

use super::header::{describe_grid, grid_of, read_header, read_layout, Header, HeaderError};
use super::{Catalog, Coord, Entry, Grid, MessageKeys, OnMismatch, ScanSpec, Source, Unusable};
use crate::backend::RunError;
use crate::input::{file_kind, open_input, read_input};
use crate::output::io_detail;

/// What a listed path is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FileKind {
    /// A regular file, or a symbolic link to one (followed).
    Regular,
    /// Anything else that is not a directory, in [`crate::input::file_kind`]'s
    /// words: `a FIFO`, `a socket`, `a character device`, …; never opened.
    Other(&'static str),
    /// A symbolic link to a directory: not followed.
    SymlinkToDir,
    /// `stat` failed (a dangling or looping symbolic link, …): why.
    Unreadable(String),
    /// The name is not UTF-8 (the path is shown lossily and cannot be opened by it).
    NameNotUtf8,
}

impl FileKind {
    /// A short stable tag for the fingerprint.
    fn tag(&self) -> String {
        match self {
            FileKind::Regular => "r".into(),
            FileKind::Other(k) => format!("o:{k}"),
            FileKind::SymlinkToDir => "l".into(),
            FileKind::Unreadable(e) => format!("u:{e}"),
            FileKind::NameNotUtf8 => "n".into(),
        }
    }
}

/// One path under the root, as [`list`] saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileStat {
    /// Relative to the root, `/`-separated.
    pub path: String,
    /// Bytes (of the target, for a symbolic link to a file); 0 for what is not a
    /// regular file.
    pub len: u64,
    /// Modification time in nanoseconds since the epoch (of the target, for a
    /// symbolic link to a file); 0 when unknown.
    pub mtime_ns: i128,
    /// Inode number and status-change time in nanoseconds (of the target, for a
    /// symbolic link to a file); 0 when unknown. With the size and modification
    /// time, what tells a changed file: a copy that keeps the modification time
    /// (`cp -p`, `rsync -t`, `wget -N`) still gets a new inode or change time.
    pub change: (u64, i128),
    /// What it is.
    pub kind: FileKind,
}

/// Every non-directory path under a root, without opening any.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listing {
    /// The root, canonical and absolute.
    pub root: PathBuf,
    /// Sorted by path.
    pub files: Vec<FileStat>,
    /// FNV-1a 64 (hex) of the root and every file's path, length, modification
    /// time and kind: equal listings, equal fingerprints, on any build and machine.
    pub fingerprint: String,
}

/// Why a scan failed; the text names the files at fault.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ScanError(pub String);

/// FNV-1a, 64 bits: a hash whose value never changes with the Rust release.
struct Fnv(u64);

impl Fnv {
    fn new() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 ^= b as u64;
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
}

fn mtime_ns(m: &fs::Metadata) -> i128 {
    m.mtime() as i128 * 1_000_000_000 + m.mtime_nsec() as i128
}

fn change(m: &fs::Metadata) -> (u64, i128) {
    (
        m.ino(),
        m.ctime() as i128 * 1_000_000_000 + m.ctime_nsec() as i128,
    )
}

/// Lists every path under `root` that is not a directory, recursively, with
/// `symlink_metadata`: directories are descended into, symbolic links to
/// directories are not (recorded as [`FileKind::SymlinkToDir`]), symbolic links
/// to anything else are `stat`ed through. Nothing is opened or written. Fails
/// naming the directory when `root` is missing or not a directory, or when a
/// directory under it cannot be read.
pub fn list(root: &Path) -> Result<Listing, String> {
    let meta = fs::metadata(root)
        .map_err(|e| format!("dataset directory {}: {}", root.display(), io_detail(&e)))?;
    if !meta.is_dir() {
        return Err(format!(
            "dataset directory {}: not a directory ({})",
            root.display(),
            file_kind(&meta.file_type())
        ));
    }
    let root = fs::canonicalize(root)
        .map_err(|e| format!("dataset directory {}: {}", root.display(), io_detail(&e)))?;
    let mut files = Vec::new();
    let mut dirs = vec![(root.clone(), String::new())];
    while let Some((dir, prefix)) = dirs.pop() {
        let cannot = |e: std::io::Error| {
            format!(
                "cannot read directory {} under the dataset: {}",
                dir.display(),
                io_detail(&e)
            )
        };
        let entries = match fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if dir == root => return Err(cannot(e)),
            // A directory below the root that cannot be read (`lost+found` at a
            // mount's root, say) is one more unusable path, not the end of the scan.
            Err(e) => {
                files.push(FileStat {
                    path: prefix.clone(),
                    len: 0,
                    mtime_ns: 0,
                    change: (0, 0),
                    kind: FileKind::Unreadable(format!("cannot read directory: {}", io_detail(&e))),
                });
                continue;
            }
        };
        for entry in entries {
            let entry = entry.map_err(cannot)?;
            let name = entry.file_name();
            let rel = |name: &str| {
                if prefix.is_empty() {
                    name.to_string()
                } else {
                    format!("{prefix}/{name}")
                }
            };
            let Some(utf8) = name.to_str() else {
                files.push(FileStat {
                    path: rel(&name.to_string_lossy()),
                    len: 0,
                    mtime_ns: 0,
                    change: (0, 0),
                    kind: FileKind::NameNotUtf8,
                });
                continue;
            };
            let rel = rel(utf8);
            let path = entry.path();
            let stat = |kind, m: Option<&fs::Metadata>| FileStat {
                path: rel.clone(),
                len: match (&kind, m) {
                    (FileKind::Regular, Some(m)) => m.len(),
                    _ => 0,
                },
                mtime_ns: m.map_or(0, mtime_ns),
                change: m.map_or((0, 0), change),
                kind,
            };
            let m = match fs::symlink_metadata(&path) {
                Ok(m) => m,
                Err(e) => {
                    files.push(stat(FileKind::Unreadable(io_detail(&e)), None));
                    continue;
                }
            };
            let ft = m.file_type();
            if ft.is_dir() {
                dirs.push((path, rel));
            } else if ft.is_symlink() {
                files.push(match fs::metadata(&path) {
                    Ok(t) if t.is_dir() => stat(FileKind::SymlinkToDir, Some(&m)),
                    Ok(t) if t.is_file() => stat(FileKind::Regular, Some(&t)),
                    Ok(t) => stat(FileKind::Other(file_kind(&t.file_type())), Some(&t)),
                    Err(e) => stat(
                        FileKind::Unreadable(format!(
                            "a symbolic link that cannot be followed ({})",
                            io_detail(&e)
                        )),
                        Some(&m),
                    ),
                });
            } else if ft.is_file() {
                files.push(stat(FileKind::Regular, Some(&m)));
            } else {
                files.push(stat(FileKind::Other(file_kind(&ft)), Some(&m)));
            }
        }
    }
    files.sort_by(|a, b| a.path.cmp(&b.path));
    let mut h = Fnv::new();
    h.write(b"grib2-dir listing 1\0");
    h.write(root.as_os_str().as_bytes());
    for f in &files {
        h.write(&[0]);
        h.write(f.path.as_bytes());
        h.write(&[0]);
        h.write(&f.len.to_le_bytes());
        h.write(&f.mtime_ns.to_le_bytes());
        h.write(&f.change.0.to_le_bytes());
        h.write(&f.change.1.to_le_bytes());
        h.write(f.kind.tag().as_bytes());
    }
    Ok(Listing {
        root,
        files,
        fingerprint: format!("{:016x}", h.0),
    })
}

/// The prefix read first at each message of an uncompressed file.
const PREFIX: usize = 64 << 10;
/// The most bytes of sections 0 to 5 a scan reads of one uncompressed message.
const MAX_HEADERS: usize = 16 << 20;
/// The most bytes a scan unwraps of a `.bz2` for its sections 0 to 5.
const BZ2_HEADERS: usize = 1 << 20;
/// The most bytes of the one file a pattern scan reads (before and after bzip2).
const PATTERN_FILE_LIMIT: u64 = 256 << 20;

// Kinds of unusable files, for the summary of a refused scan.
const NOT_GRIB2: &str = "not GRIB2";
const TRUNCATED: &str = "truncated";
const DAMAGED: &str = "damaged";
const UNSUPPORTED: &str = "not supported";
const OTHER_GRID: &str = "another grid";
const DUPLICATE: &str = "duplicate";
const NOT_REGULAR: &str = "not a regular file";
const SYMLINK_DIR: &str = "symbolic link to a directory";
const CANNOT_READ: &str = "cannot read";
const CHANGED: &str = "changed since listed";
const NO_MATCH: &str = "not matching the pattern";
const BAD_NAME: &str = "name not UTF-8";

/// Why one file cannot be used: a kind (for counts) and the words.
#[derive(Clone, Debug)]
struct Why {
    kind: &'static str,
    text: String,
}

fn why(kind: &'static str, text: impl Into<String>) -> Why {
    Why {
        kind,
        text: text.into(),
    }
}

/// The kind of a [`HeaderError::Bad`] text.
fn header_why(text: String) -> Why {
    let kind = if text.starts_with("not GRIB2") {
        NOT_GRIB2
    } else if text.contains("not supported") || text.contains("not read") {
        UNSUPPORTED
    } else {
        DAMAGED
    };
    why(kind, text)
}

/// A listed path that is not a regular file: why it cannot be used.
fn kind_why(kind: &FileKind) -> Option<Why> {
    match kind {
        FileKind::Regular => None,
        FileKind::Other(k) => Some(why(NOT_REGULAR, format!("not a regular file ({k})"))),
        FileKind::SymlinkToDir => Some(why(
            SYMLINK_DIR,
            "symbolic link to a directory: not followed",
        )),
        FileKind::Unreadable(e) => Some(why(CANNOT_READ, format!("cannot read: {e}"))),
        FileKind::NameNotUtf8 => Some(why(
            BAD_NAME,
            "file name is not UTF-8: it cannot be named in a catalog",
        )),
    }
}

/// An open or read error of [`crate::input`] as the reason a file is unusable.
fn input_why(e: RunError) -> Why {
    match e {
        RunError::Input { detail, .. } if detail.starts_with("not a regular file") => {
            why(NOT_REGULAR, detail)
        }
        RunError::Input { detail, .. } if detail.starts_with("cannot") => why(CANNOT_READ, detail),
        RunError::Input { detail, .. } if detail.starts_with("larger than") => {
            why(UNSUPPORTED, detail)
        }
        RunError::Input { detail, .. } => why(CANNOT_READ, format!("cannot read: {detail}")),
        other => why(CANNOT_READ, format!("cannot read: {other}")),
    }
}

fn io_why(e: &std::io::Error) -> Why {
    if e.kind() == std::io::ErrorKind::UnexpectedEof {
        why(CHANGED, "the file shrank while it was read: scan again")
    } else {
        why(CANNOT_READ, format!("cannot read: {}", io_detail(e)))
    }
}

/// Tells a file's group, variable and step for every file of `listing`, as `spec`
/// says (see [`Source`]), and returns the catalog of a complete cube of groups ×
/// variables × steps on one grid; `progress` is called with the number of files
/// just finished (increments, from any thread; they add up to the files listed).
///
/// Files that cannot be used (not regular, unreadable, not GRIB2 or damaged,
/// another grid than most messages', a duplicate of another file's (group,
/// variable, step), not matching the pattern) fail the scan with
/// [`OnMismatch::Refuse`], naming them, or are listed in `skipped` with
/// [`OnMismatch::Skip`]. A (group, variable, step) missing from the cube fails it
/// either way, as does a directory without a usable file.
pub fn scan(
    listing: &Listing,
    spec: &ScanSpec,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<Catalog, ScanError> {
    let cube = match &spec.source {
        Source::Keys => scan_keys(listing, progress),
        Source::Pattern { pattern } => {
            let pattern = Pattern::compile(pattern).map_err(ScanError)?;
            scan_pattern(listing, &pattern, spec.on_mismatch, progress)
        }
    };
    finish(listing, spec, cube)
}

/// The path a pattern scan expected for cell (g, v, s).
type ExpectedPath = Box<dyn Fn(usize, usize, usize) -> String>;

/// Where a keys scan found a message: its file (index in the regular files), its
/// range in the file, its length unwrapped.
#[derive(Clone, Copy)]
struct FoundAt {
    file: usize,
    range: Option<(u64, u64)>,
    len: u64,
}

/// What both kinds of scan produce for [`finish`].
struct Cube {
    groups: Vec<Coord>,
    variables: Vec<Coord>,
    steps: Vec<Coord>,
    group_keys: Option<Vec<super::ReferenceTime>>,
    variable_keys: Option<Vec<super::VariableKey>>,
    step_seconds: Option<Vec<i64>>,
    /// The cells a file was found for, by `(g · V + v) · S + s`: sparse, so that a
    /// directory whose names span a huge cube (a year of analyses mixed with a few
    /// forecasts) costs what it holds, not groups × variables × steps.
    cells: HashMap<u128, Entry>,
    grid: Option<Grid>,
    unusable: Vec<(String, Why)>,
    bytes: u64,
    max_input_len: u64,
    max_message_len: Option<u64>,
    /// The file a missing cell would be (pattern scans), for the error.
    expected: Option<ExpectedPath>,
}

/// The distinct values of `items`, sorted.
fn distinct<T: Ord>(items: impl Iterator<Item = T>) -> Vec<T> {
    items.collect::<BTreeSet<_>>().into_iter().collect()
}

/// Refusal of unusable files, completeness, the catalog.
fn finish(listing: &Listing, spec: &ScanSpec, mut cube: Cube) -> Result<Catalog, ScanError> {
    let root = listing.root.display();
    cube.unusable.sort_by(|a, b| a.0.cmp(&b.0));
    if spec.on_mismatch == OnMismatch::Refuse && !cube.unusable.is_empty() {
        let mut counts: Vec<(&str, usize)> = Vec::new();
        for (_, w) in &cube.unusable {
            match counts.iter_mut().find(|(k, _)| *k == w.kind) {
                Some(c) => c.1 += 1,
                None => counts.push((w.kind, 1)),
            }
        }
        counts.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        let counts: Vec<String> = counts.iter().map(|(k, n)| format!("{n} {k}")).collect();
        let n = cube.unusable.len();
        let mut m = format!(
            "{n} of the {} files under {root} cannot be used ({}):",
            listing.files.len(),
            counts.join(", ")
        );
        for (path, w) in cube.unusable.iter().take(10) {
            m.push_str(&format!("\n  {path}: {}", w.text));
        }
        if n > 10 {
            m.push_str(&format!("\n  … and {} more", n - 10));
        }
        m.push_str("\nto leave them out of the dataset, set on_mismatch = \"skip\"");
        return Err(ScanError(m));
    }
    let skipped: Vec<Unusable> = cube
        .unusable
        .into_iter()
        .map(|(path, w)| Unusable { path, why: w.text })
        .collect();
    let used = cube.cells.len();
    let grid = match cube.grid {
        Some(g) if used > 0 => g,
        _ => {
            let mut m = format!("no usable GRIB2 file under {root}");
            if listing.files.is_empty() {
                m.push_str(": the directory has no files");
            } else if let Some(first) = skipped.first() {
                m.push_str(&format!(
                    ": {} skipped, the first {}: {}",
                    skipped.len(),
                    first.path,
                    first.why
                ));
            }
            return Err(ScanError(m));
        }
    };
    let (nv, ns) = (cube.variables.len(), cube.steps.len());
    let total = cube.groups.len() as u128 * nv as u128 * ns as u128;
    let holes = total - used as u128;
    if holes > 0 {
        // The first five holes in (g, v, s) order: at most `used + 5` cells visited.
        let first: Vec<String> = (0..total)
            .filter(|i| !cube.cells.contains_key(i))
            .take(5)
            .map(|i| {
                let (nv, ns) = (nv as u128, ns as u128);
                let (g, v, s) = (
                    (i / (nv * ns)) as usize,
                    (i / ns % nv) as usize,
                    (i % ns) as usize,
                );
                let mut m = format!(
                    "group {} variable {} step {}",
                    cube.groups[g].name, cube.variables[v].name, cube.steps[s].name
                );
                if let Some(expected) = &cube.expected {
                    m.push_str(&format!(" (no file {})", expected(g, v, s)));
                }
                m
            })
            .collect();
        return Err(ScanError(format!(
            "missing (variable, step) combinations: {holes}, first: {}{} ({} groups × {nv} \
             variables × {ns} steps under {root}, {used} found; every group needs every \
             variable at every step){}",
            first.join(", "),
            if holes > 5 { ", …" } else { "" },
            cube.groups.len(),
            match skipped.first() {
                Some(u) => format!(
                    "; {} files were skipped (on_mismatch = \"skip\"), the first {}: {}",
                    skipped.len(),
                    u.path,
                    u.why
                ),
                None => String::new(),
            }
        )));
    }
    Ok(Catalog {
        root: listing.root.clone(),
        spec: spec.clone(),
        groups: cube.groups,
        variables: cube.variables,
        steps: cube.steps,
        group_keys: cube.group_keys,
        variable_keys: cube.variable_keys,
        step_seconds: cube.step_seconds,
        grid,
        // Complete: every cell 0..total is there, `total = used` entries.
        inputs: {
            let mut cells = cube.cells;
            (0..total)
                .map(|i| cells.remove(&i).expect("complete"))
                .collect()
        },
        files: listing
            .files
            .iter()
            .filter(|f| f.kind == FileKind::Regular)
            .count() as u64,
        bytes: cube.bytes,
        max_input_len: cube.max_input_len,
        max_message_len: cube.max_message_len,
        skipped,
    })
}

/// One message found by a keys scan.
struct Msg {
    range: Option<(u64, u64)>,
    header: Header,
}

/// Reads of one file through a window of at least [`PREFIX`] bytes: a file of
/// many small messages costs a read per window, not several per message.
struct Window<'a> {
    file: &'a File,
    len: u64,
    off: u64,
    buf: Vec<u8>,
}

impl<'a> Window<'a> {
    fn new(file: &'a File, len: u64) -> Self {
        Window {
            file,
            len,
            off: 0,
            buf: Vec::new(),
        }
    }

    /// `n` bytes at `off`, which the caller knows are in the file.
    fn get(&mut self, off: u64, n: usize) -> Result<&[u8], Why> {
        let end = off + n as u64;
        if off < self.off || end > self.off + self.buf.len() as u64 {
            let take = (n.max(PREFIX) as u64).min(self.len - off) as usize;
            self.buf.resize(take, 0);
            self.file
                .read_exact_at(&mut self.buf, off)
                .map_err(|e| io_why(&e))?;
            self.off = off;
        }
        let start = (off - self.off) as usize;
        Ok(&self.buf[start..start + n])
    }
}

/// Every message of one regular file, by its sections 0 to 5.
fn read_messages(root: &Path, stat: &FileStat) -> Result<Vec<Msg>, Why> {
    let file = open_input(&root.join(&stat.path)).map_err(input_why)?;
    let len = file.metadata().map_err(|e| io_why(&e))?.len();
    if len != stat.len {
        return Err(why(
            CHANGED,
            format!(
                "changed since the directory was listed ({} bytes then, {len} now): scan again",
                stat.len
            ),
        ));
    }
    let msgs = if stat.path.ends_with(".bz2") {
        vec![read_bz2(file)?]
    } else {
        read_plain(&file, len)?
    };
    for m in &msgs {
        grid_of(&m.header.section3)
            .map_err(|e| why(DAMAGED, format!("{e}{}", at_offset(m.range))))?;
    }
    Ok(msgs)
}

/// The first message of a `.bz2`, unwrapping no more than its sections 0 to 5 need
/// (the decoder works a bzip2 block at a time: up to 900 kB). The rest of the
/// stream is not read: [`super::header::check_message`] checks the whole message
/// before it is decoded.
fn read_bz2(file: File) -> Result<Msg, Why> {
    let mut d = bzip2::read::BzDecoder::new(file);
    let mut buf = Vec::new();
    loop {
        let n = match read_header(&buf) {
            Ok(header) => {
                return Ok(Msg {
                    range: None,
                    header,
                })
            }
            Err(HeaderError::Bad(m)) => return Err(header_why(m)),
            Err(HeaderError::NeedMore(n)) => n,
        };
        if n > BZ2_HEADERS {
            return Err(why(
                UNSUPPORTED,
                format!(
                    "the message's sections 0 to 5 need {n} bytes, more than the {BZ2_HEADERS} \
                     a scan unwraps"
                ),
            ));
        }
        let want = n.max(buf.len() + PREFIX).min(BZ2_HEADERS);
        (&mut d)
            .take((want - buf.len()) as u64)
            .read_to_end(&mut buf)
            .map_err(|e| {
                why(
                    DAMAGED,
                    format!("bzip2: {e} (damaged, truncated or not bzip2)"),
                )
            })?;
        if buf.len() < n {
            return Err(why(
                TRUNCATED,
                format!(
                    "truncated: the .bz2 unwraps to {} bytes, the message's sections need {n}",
                    buf.len()
                ),
            ));
        }
    }
}

/// Every message of an uncompressed file of `len` bytes: one after the other from
/// offset 0, each by its sections 0 to 5, the lengths of sections 6 and 7 and its
/// `7777`; nothing may follow the last.
fn read_plain(file: &File, len: u64) -> Result<Vec<Msg>, Why> {
    if len == 0 {
        return Err(why(NOT_GRIB2, "not GRIB2: an empty file"));
    }
    let mut win = Window::new(file, len);
    let mut msgs: Vec<Msg> = Vec::new();
    let mut off = 0u64;
    while off < len {
        let count = msgs.len();
        let at = |w: Why| {
            if off == 0 {
                w
            } else {
                let kind = if w.kind == NOT_GRIB2 { DAMAGED } else { w.kind };
                why(
                    kind,
                    format!("after {count} message(s), at offset {off}: {}", w.text),
                )
            }
        };
        let rest = len - off;
        // Enough for most messages' sections 0 to 5; more when they ask.
        let mut want = rest.min(2048) as usize;
        let header = loop {
            match read_header(win.get(off, want)?) {
                Ok(h) => break h,
                Err(HeaderError::Bad(m)) => return Err(at(header_why(m))),
                Err(HeaderError::NeedMore(n)) if n as u64 > rest => {
                    return Err(at(why(
                        TRUNCATED,
                        format!(
                            "truncated: the message's sections need {n} bytes, {rest} are left"
                        ),
                    )))
                }
                Err(HeaderError::NeedMore(n)) if n > MAX_HEADERS => {
                    return Err(at(why(
                        UNSUPPORTED,
                        format!(
                            "the message's sections 0 to 5 need {n} bytes, more than the \
                             {MAX_HEADERS} a scan reads"
                        ),
                    )))
                }
                Err(HeaderError::NeedMore(n)) => {
                    want = (n.max(want * 2) as u64).min(rest).min(MAX_HEADERS as u64) as usize;
                }
            }
        };
        if header.total_len > rest {
            return Err(at(why(
                TRUNCATED,
                format!(
                    "truncated: section 0 gives a length of {} bytes, {rest} are left",
                    header.total_len
                ),
            )));
        }
        check_tail(&mut win, off, &header).map_err(at)?;
        off += header.total_len;
        msgs.push(Msg {
            range: Some((off - header.total_len, header.total_len)),
            header,
        });
    }
    if msgs.len() == 1 {
        msgs[0].range = None;
    }
    Ok(msgs)
}

/// Sections 6 and 7 of the message at `off` (lengths only) and its `7777`, at the
/// end its total length says: what [`read_header`] left unread, without reading the
/// data. A section 2, 3 or 4 after section 7 is a second field.
fn check_tail(win: &mut Window, off: u64, h: &Header) -> Result<(), Why> {
    let end = off + h.total_len - 4; // where `7777` must be
    let mut at = off + h.sections_end as u64;
    let mut last = 5u8;
    loop {
        if at == end {
            if win.get(at, 4)? != b"7777" {
                return Err(why(
                    DAMAGED,
                    format!(
                        "no `7777` where section 0's total length ({}) ends the message",
                        h.total_len
                    ),
                ));
            }
            if last != 7 {
                return Err(why(
                    DAMAGED,
                    format!("no section {} before `7777`", last + 1),
                ));
            }
            return Ok(());
        }
        if at + 5 > end {
            return Err(why(
                DAMAGED,
                format!(
                    "the sections after section {last} do not add up to the total length {}",
                    h.total_len
                ),
            ));
        }
        let b = win.get(at, 5)?;
        let len = u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as u64;
        let num = b[4];
        match (last, num) {
            (5, 6) | (6, 7) => {}
            (7, 2..=4) => {
                return Err(why(
                    UNSUPPORTED,
                    format!(
                        "more than one field per message: not supported (section {num} after \
                         section 7, at offset {at})"
                    ),
                ))
            }
            _ => {
                return Err(why(
                    DAMAGED,
                    format!(
                        "section {num} at offset {at} where section {} was expected",
                        last + 1
                    ),
                ))
            }
        }
        if len < 5 || at + len > end {
            return Err(why(
                DAMAGED,
                format!(
                    "section {num} at offset {at} has a bad length {len} (the message ends at \
                     offset {})",
                    end + 4
                ),
            ));
        }
        last = num;
        at += len;
    }
}

/// A keys scan: every regular file read in parallel, then (in path order) the grid
/// most messages share, duplicates, and the cube sorted by the keys.
fn scan_keys(listing: &Listing, progress: &(dyn Fn(u64) + Sync)) -> Cube {
    let mut unusable = Vec::new();
    let mut regular = Vec::new();
    for (i, f) in listing.files.iter().enumerate() {
        match kind_why(&f.kind) {
            Some(w) => unusable.push((f.path.clone(), w)),
            None => regular.push(i),
        }
    }
    if !unusable.is_empty() {
        progress(unusable.len() as u64);
    }
    let read: Vec<Result<Vec<Msg>, Why>> = regular
        .par_iter()
        .map(|&i| {
            let r = read_messages(&listing.root, &listing.files[i]);
            progress(1);
            r
        })
        .collect();

    // The grid: most messages' (the first file's among equals).
    let mut grids: HashMap<&[u8], (u64, usize)> = HashMap::new();
    for (k, msgs) in read.iter().enumerate() {
        for m in msgs.iter().flatten() {
            grids.entry(&m.header.section3).or_insert((0, k)).0 += 1;
        }
    }
    let messages: u64 = grids.values().map(|c| c.0).sum();
    let reference = grids
        .iter()
        .max_by(|a, b| a.1 .0.cmp(&b.1 .0).then(b.1 .1.cmp(&a.1 .1)))
        .map(|(s3, &(count, k))| (s3.to_vec(), count, k));
    let grid = reference.as_ref().and_then(|(s3, _, _)| grid_of(s3).ok());

    let mut by_keys: HashMap<MessageKeys, FoundAt> = HashMap::new();
    let mut bytes = 0u64;
    for (k, r) in read.into_iter().enumerate() {
        let stat = &listing.files[regular[k]];
        let msgs = match r {
            Ok(m) => m,
            Err(w) => {
                unusable.push((stat.path.clone(), w));
                continue;
            }
        };
        let (ref_s3, count, first) = reference.as_ref().expect("a message was read");
        if let Some(m) = msgs.iter().find(|m| &m.header.section3 != ref_s3) {
            let found = grid_of(&m.header.section3)
                .map(|g| describe_grid(&g))
                .unwrap_or_else(|e| e);
            let dataset = grid.as_ref().map(describe_grid).unwrap_or_default();
            unusable.push((
                stat.path.clone(),
                why(
                    OTHER_GRID,
                    format!(
                        "grid differs from the dataset's: {found}{} vs {dataset} (the grid of \
                         {count} of the {messages} messages, the first in {})",
                        at_offset(m.range),
                        listing.files[regular[*first]].path
                    ),
                ),
            ));
            continue;
        }
        let mut local: HashMap<MessageKeys, Option<(u64, u64)>> = HashMap::new();
        let mut dup = None;
        for m in &msgs {
            let keys = m.header.keys;
            let names = || {
                format!(
                    "{} {} {}",
                    super::header::time_name(keys.reference_time),
                    super::header::variable_name(&keys.variable),
                    super::header::step_name(keys.step_seconds)
                )
            };
            if let Some(&FoundAt { file: j, range, .. }) = by_keys.get(&keys) {
                dup = Some(format!(
                    "duplicate of {}{}{}: the same reference time, variable and step ({})",
                    listing.files[regular[j]].path,
                    at_offset(range),
                    match m.range {
                        Some((o, _)) => format!(" (this file's message at offset {o})"),
                        None => String::new(),
                    },
                    names()
                ));
                break;
            }
            if let Some(before) = local.insert(keys, m.range) {
                dup = Some(format!(
                    "duplicate messages in the file{} and{}: the same reference time, \
                     variable and step ({})",
                    at_offset(before),
                    at_offset(m.range),
                    names()
                ));
                break;
            }
        }
        if let Some(text) = dup {
            unusable.push((stat.path.clone(), why(DUPLICATE, text)));
            continue;
        }
        bytes += stat.len;
        for m in &msgs {
            let at = FoundAt {
                file: k,
                range: m.range,
                len: m.header.total_len,
            };
            by_keys.insert(m.header.keys, at);
        }
    }

    let groups = distinct(by_keys.keys().map(|k| k.reference_time));
    let variables = distinct(by_keys.keys().map(|k| k.variable));
    let steps = distinct(by_keys.keys().map(|k| k.step_seconds));
    let (nv, ns) = (variables.len(), steps.len());
    let mut cells = HashMap::new();
    let (mut max_input_len, mut max_message_len) = (0u64, 0u64);
    for (keys, found) in &by_keys {
        let FoundAt {
            file: k,
            range,
            len: message_len,
        } = *found;
        let g = groups.binary_search(&keys.reference_time).unwrap();
        let v = variables.binary_search(&keys.variable).unwrap();
        let s = steps.binary_search(&keys.step_seconds).unwrap();
        let stat = &listing.files[regular[k]];
        max_input_len = max_input_len.max(range.map_or(stat.len, |r| r.1));
        max_message_len = max_message_len.max(message_len);
        let cell = (g as u128 * nv as u128 + v as u128) * ns as u128 + s as u128;
        cells.insert(
            cell,
            Entry {
                path: stat.path.clone(),
                range,
            },
        );
    }
    Cube {
        groups: groups
            .iter()
            .map(|&t| Coord {
                name: super::header::time_name(t),
            })
            .collect(),
        variables: variables
            .iter()
            .map(|v| Coord {
                name: super::header::variable_name(v),
            })
            .collect(),
        steps: steps
            .iter()
            .map(|&s| Coord {
                name: super::header::step_name(s),
            })
            .collect(),
        group_keys: Some(groups),
        variable_keys: Some(variables),
        step_seconds: Some(steps),
        cells,
        grid,
        unusable,
        bytes,
        max_input_len,
        max_message_len: Some(max_message_len),
        expected: None,
    }
}

/// ` at offset N` for a message inside a multi-message file.
fn at_offset(range: Option<(u64, u64)>) -> String {
    match range {
        Some((o, _)) => format!(" at offset {o}"),
        None => String::new(),
    }
}

/// One part of a file name pattern.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Part {
    Lit(String),
    Var,
    Step,
    Init,
    Level,
}

impl Part {
    fn name(&self) -> &'static str {
        match self {
            Part::Lit(_) => "",
            Part::Var => "var",
            Part::Step => "step",
            Part::Init => "init",
            Part::Level => "level",
        }
    }
}

/// A file name pattern, compiled: literal text matched exactly, each placeholder
/// one or more characters other than `/`, the shortest that lets the rest match
/// (leftmost first, as a lazy `[^/]+?` of a regex anchored at both ends).
#[derive(Clone, Debug)]
struct Pattern {
    text: String,
    parts: Vec<Part>,
    regex: Regex,
}

/// What a pattern's placeholders matched in one path.
#[derive(Clone, Debug)]
struct Names {
    init: String,
    var: String,
    level: Option<String>,
    step: String,
}

impl Names {
    /// The variable's name: `{var}`, or `{var}@{level}`.
    fn variable(&self) -> String {
        match &self.level {
            Some(l) => format!("{}@{l}", self.var),
            None => self.var.clone(),
        }
    }
}

impl Pattern {
    /// Parses `text`: `{var}` and `{step}` required, `{init}` and `{level}`
    /// optional, each at most once, separated by literal text; any other `{…}`,
    /// or a brace without its pair, is an error.
    fn compile(text: &str) -> Result<Pattern, String> {
        let err = |m: String| Err(format!("pattern `{text}`: {m}"));
        if text.is_empty() {
            return err("empty".into());
        }
        if text.starts_with('/') {
            return err(
                "paths are matched relative to the dataset directory: the pattern cannot \
                 start with `/`"
                    .into(),
            );
        }
        let mut parts: Vec<Part> = Vec::new();
        let mut lit = String::new();
        let mut chars = text.char_indices();
        while let Some((i, c)) = chars.next() {
            match c {
                '{' => {
                    let Some(close) = text[i..].find('}') else {
                        return err(format!(
                            "`{{` at character {} without a closing `}}`",
                            i + 1
                        ));
                    };
                    let name = &text[i + 1..i + close];
                    let part = match name {
                        "var" => Part::Var,
                        "step" => Part::Step,
                        "init" => Part::Init,
                        "level" => Part::Level,
                        other => {
                            return err(format!(
                                "unknown placeholder `{{{other}}}`: the placeholders are \
                                 {{var}}, {{step}}, {{init}} and {{level}}"
                            ))
                        }
                    };
                    if parts.contains(&part) {
                        return err(format!("`{{{name}}}` appears twice"));
                    }
                    if lit.is_empty() {
                        if let Some(prev) = parts.last() {
                            return err(format!(
                                "`{{{}}}` and `{{{name}}}` must be separated by literal text \
                                 (where one would end is a guess)",
                                prev.name()
                            ));
                        }
                    } else {
                        parts.push(Part::Lit(std::mem::take(&mut lit)));
                    }
                    parts.push(part);
                    // Skip the name and the closing brace.
                    for _ in 0..close {
                        chars.next();
                    }
                }
                '}' => {
                    return err(format!(
                        "`}}` at character {} without an opening `{{`",
                        i + 1
                    ))
                }
                c => lit.push(c),
            }
        }
        if !lit.is_empty() {
            parts.push(Part::Lit(lit));
        }
        for needed in [Part::Var, Part::Step] {
            if !parts.contains(&needed) {
                return err(format!(
                    "no `{{{}}}`: {{var}} and {{step}} are required",
                    needed.name()
                ));
            }
        }
        let mut re = String::from("^");
        for p in &parts {
            match p {
                Part::Lit(l) => re.push_str(&regex::escape(l)),
                p => re.push_str(&format!("(?P<{}>[^/]+?)", p.name())),
            }
        }
        re.push('$');
        let regex = Regex::new(&re).map_err(|e| format!("pattern `{text}`: {e}"))?;
        Ok(Pattern {
            text: text.to_string(),
            parts,
            regex,
        })
    }

    /// What the placeholders match in `path`, if it matches.
    fn captures(&self, path: &str) -> Option<Names> {
        let c = self.regex.captures(path)?;
        let get = |n: &str| c.name(n).map(|m| m.as_str().to_string());
        Some(Names {
            init: get("init").unwrap_or_default(),
            var: get("var")?,
            level: get("level"),
            step: get("step")?,
        })
    }

    /// The path these names would have.
    fn path_of(&self, names: &Names) -> String {
        self.parts
            .iter()
            .map(|p| match p {
                Part::Lit(l) => l.as_str(),
                Part::Var => &names.var,
                Part::Step => &names.step,
                Part::Init => &names.init,
                Part::Level => names.level.as_deref().unwrap_or(""),
            })
            .collect()
    }
}

/// The grid of the one file a pattern scan opens: read whole (a `.bz2`
/// unwrapped), strictly one well-formed message.
fn grid_of_file(root: &Path, stat: &FileStat) -> Result<Grid, Why> {
    let raw = read_input(&root.join(&stat.path), PATTERN_FILE_LIMIT).map_err(input_why)?;
    let bz2 = stat.path.ends_with(".bz2");
    let unwrapped;
    let msg: &[u8] = if bz2 {
        unwrapped = crate::grib2::decode::unwrap_bz2(&raw, PATTERN_FILE_LIMIT)
            .map_err(|e| why(DAMAGED, e))?;
        &unwrapped
    } else {
        &raw
    };
    let what = if bz2 {
        "the unwrapped .bz2"
    } else {
        "the file"
    };
    let layout = match read_layout(msg) {
        Ok(l) => l,
        Err(HeaderError::Bad(m)) => return Err(header_why(m)),
        Err(HeaderError::NeedMore(n)) => {
            return Err(why(
                TRUNCATED,
                format!(
                    "truncated: the message's sections need {n} bytes, {what} has {}",
                    msg.len()
                ),
            ))
        }
    };
    let len = msg.len() as u64;
    if layout.total_len < len {
        return Err(why(
            UNSUPPORTED,
            format!(
                "{} bytes after the first message ({} bytes): a scan by pattern reads one \
                 message per file (a scan by keys reads files of several)",
                len - layout.total_len,
                layout.total_len
            ),
        ));
    }
    if layout.total_len > len {
        return Err(why(
            TRUNCATED,
            format!(
                "truncated: section 0 gives a length of {} bytes, {what} has {len}",
                layout.total_len
            ),
        ));
    }
    crate::grib2::message::parse(msg).map_err(|e| why(DAMAGED, e.0))?;
    grid_of(&msg[layout.section3]).map_err(|e| why(DAMAGED, e))
}

/// A pattern scan: every path matched, one file opened (the first matching, in
/// path order, for the grid; with `skip`, the next while one fails), duplicates,
/// and the cube sorted by the names.
fn scan_pattern(
    listing: &Listing,
    pattern: &Pattern,
    on_mismatch: OnMismatch,
    progress: &(dyn Fn(u64) + Sync),
) -> Cube {
    let mut unusable = Vec::new();
    let mut matched: Vec<(usize, Names)> = Vec::new();
    for (i, f) in listing.files.iter().enumerate() {
        if let Some(w) = kind_why(&f.kind) {
            unusable.push((f.path.clone(), w));
            continue;
        }
        match pattern.captures(&f.path) {
            Some(names) => matched.push((i, names)),
            None => unusable.push((
                f.path.clone(),
                why(
                    NO_MATCH,
                    format!("does not match the pattern `{}`", pattern.text),
                ),
            )),
        }
    }
    let mut grid = None;
    let mut failed = std::collections::HashSet::new();
    for (i, _) in &matched {
        match grid_of_file(&listing.root, &listing.files[*i]) {
            Ok(g) => {
                grid = Some(g);
                break;
            }
            Err(w) => {
                unusable.push((listing.files[*i].path.clone(), w));
                failed.insert(*i);
                if on_mismatch == OnMismatch::Refuse {
                    break;
                }
            }
        }
    }
    progress(listing.files.len() as u64);

    let mut first_of: HashMap<(String, String, String), usize> = HashMap::new();
    let mut names_of_var: HashMap<String, Names> = HashMap::new();
    for (i, names) in &matched {
        if failed.contains(i) {
            continue;
        }
        let key = (names.init.clone(), names.variable(), names.step.clone());
        if let Some(&j) = first_of.get(&key) {
            unusable.push((
                listing.files[*i].path.clone(),
                why(
                    DUPLICATE,
                    format!(
                        "duplicate of {}: both are group `{}`, variable `{}`, step `{}`",
                        listing.files[j].path, key.0, key.1, key.2
                    ),
                ),
            ));
            continue;
        }
        names_of_var
            .entry(key.1.clone())
            .or_insert_with(|| names.clone());
        first_of.insert(key, *i);
    }

    let groups = distinct(first_of.keys().map(|k| k.0.clone()));
    let variables = distinct(first_of.keys().map(|k| k.1.clone()));
    let mut steps = distinct(first_of.keys().map(|k| k.2.clone()));
    // Numerically when every step is an integer (`3` before `12`), the text
    // breaking ties (`3` before `003`); else as text.
    let numbers: Option<Vec<i64>> = steps.iter().map(|s| s.parse().ok()).collect();
    if let Some(numbers) = numbers {
        let mut both: Vec<(i64, String)> = numbers.into_iter().zip(steps).collect();
        both.sort();
        steps = both.into_iter().map(|(_, s)| s).collect();
    }
    let step_index: HashMap<&str, usize> = steps
        .iter()
        .enumerate()
        .map(|(i, s)| (s.as_str(), i))
        .collect();
    let (nv, ns) = (variables.len(), steps.len());
    let mut cells = HashMap::new();
    let (mut bytes, mut max_input_len) = (0u64, 0u64);
    for ((init, var, step), &i) in &first_of {
        let g = groups.binary_search(init).unwrap();
        let v = variables.binary_search(var).unwrap();
        let s = step_index[step.as_str()];
        let stat = &listing.files[i];
        bytes += stat.len;
        max_input_len = max_input_len.max(stat.len);
        let cell = (g as u128 * nv as u128 + v as u128) * ns as u128 + s as u128;
        cells.insert(
            cell,
            Entry {
                path: stat.path.clone(),
                range: None,
            },
        );
    }
    let coords = |names: &[String]| -> Vec<Coord> {
        names.iter().map(|n| Coord { name: n.clone() }).collect()
    };
    let (g_names, v_names, s_names) = (groups.clone(), variables.clone(), steps.clone());
    let pattern = pattern.clone();
    let expected = move |g: usize, v: usize, s: usize| {
        let mut names = names_of_var[&v_names[v]].clone();
        names.init = g_names[g].clone();
        names.step = s_names[s].clone();
        pattern.path_of(&names)
    };
    Cube {
        groups: coords(&groups),
        variables: coords(&variables),
        steps: coords(&steps),
        group_keys: None,
        variable_keys: None,
        step_seconds: None,
        cells,
        grid,
        unusable,
        bytes,
        max_input_len,
        max_message_len: None,
        expected: Some(Box::new(expected)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grib2::message::FieldId;
    use crate::grib2::Packing;
    use crate::gribdir::example::tests::params;
    use crate::gribdir::example::{dwd_name, dwd_variable, write_dwd, DWD_PATTERN};
    use crate::gribdir::header::{check_message, tests::message};
    use std::collections::BTreeMap;
    use std::ffi::CString;
    use std::io::Write;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::{Duration, Instant};

    fn keys(on_mismatch: OnMismatch) -> ScanSpec {
        ScanSpec {
            source: Source::Keys,
            on_mismatch,
        }
    }

    fn by_pattern(pattern: &str, on_mismatch: OnMismatch) -> ScanSpec {
        ScanSpec {
            source: Source::Pattern {
                pattern: pattern.into(),
            },
            on_mismatch,
        }
    }

    fn dwd() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(write_dwd(&params(), dir.path(), &|_| {}).unwrap(), 24);
        dir
    }

    fn run(dir: &Path, spec: &ScanSpec) -> Result<Catalog, ScanError> {
        scan(&list(dir).unwrap(), spec, &|_| {})
    }

    fn err(dir: &Path, spec: &ScanSpec) -> String {
        run(dir, spec).unwrap_err().0
    }

    fn name(g: u32, v: u32, s: u32) -> String {
        dwd_name(g, v, s).unwrap()
    }

    fn bz2(bytes: &[u8]) -> Vec<u8> {
        let mut z = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::best());
        z.write_all(bytes).unwrap();
        z.finish().unwrap()
    }

    fn mkfifo(path: &Path) {
        let c = CString::new(path.as_os_str().as_bytes()).unwrap();
        // SAFETY: a NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0, "mkfifo");
    }

    /// Every path under `dir`: what it is, a hash of its bytes (regular files) or
    /// target (links), its modification time.
    fn snapshot(dir: &Path) -> BTreeMap<PathBuf, (String, u64, i128)> {
        let mut out = BTreeMap::new();
        let mut dirs = vec![dir.to_path_buf()];
        while let Some(d) = dirs.pop() {
            for e in fs::read_dir(&d).unwrap() {
                let p = e.unwrap().path();
                let m = fs::symlink_metadata(&p).unwrap();
                let mut h = Fnv::new();
                if m.is_dir() {
                    dirs.push(p.clone());
                } else if m.file_type().is_symlink() {
                    h.write(fs::read_link(&p).unwrap().as_os_str().as_bytes());
                } else if m.is_file() {
                    h.write(&fs::read(&p).unwrap());
                }
                out.insert(
                    p,
                    (file_kind(&m.file_type()).to_string(), h.0, mtime_ns(&m)),
                );
            }
        }
        out
    }

    #[test]
    fn keys_and_pattern_scans_of_a_dwd_directory_agree() {
        let dir = dwd();
        let before = snapshot(dir.path());
        let listing = list(dir.path()).unwrap();
        assert_eq!(listing.files.len(), 24);
        assert!(listing.files.iter().all(|f| f.kind == FileKind::Regular));
        let done = AtomicU64::new(0);
        let count = |n| {
            done.fetch_add(n, Ordering::Relaxed);
        };
        let k = scan(&listing, &keys(OnMismatch::Refuse), &count).unwrap();
        assert_eq!(done.swap(0, Ordering::Relaxed), 24);
        let p = scan(
            &listing,
            &by_pattern(DWD_PATTERN, OnMismatch::Refuse),
            &count,
        )
        .unwrap();
        assert_eq!(done.load(Ordering::Relaxed), 24);

        let names = |c: &[Coord]| c.iter().map(|c| c.name.clone()).collect::<Vec<_>>();
        assert_eq!(
            names(&k.groups),
            ["2026-01-01T00:00:00Z", "2026-01-01T06:00:00Z"]
        );
        assert_eq!(
            names(&k.variables),
            ["0.0.0@103=2", "0.0.1@103=2", "0.0.2@103=2"]
        );
        assert_eq!(names(&k.steps), ["PT0S", "PT1H", "PT2H", "PT3H"]);
        assert_eq!(k.step_seconds, Some(vec![0, 3600, 7200, 10800]));
        assert_eq!(
            k.group_keys,
            Some(vec![(2026, 1, 1, 0, 0, 0), (2026, 1, 1, 6, 0, 0)])
        );
        assert_eq!(k.variable_keys.as_ref().unwrap()[2].number, 2);
        assert_eq!(names(&p.groups), ["2026010100", "2026010106"]);
        assert_eq!(names(&p.variables), ["TD_2M", "T_2M", "U_10M"]);
        assert_eq!(names(&p.steps), ["000", "001", "002", "003"]);
        assert_eq!(
            (p.group_keys, p.variable_keys, p.step_seconds),
            (None, None, None)
        );

        assert_eq!(k.grid, p.grid);
        assert_eq!((k.grid.template, k.grid.ny, k.grid.nx), (0, 5, 7));
        assert_eq!(k.inputs.len(), 24);
        assert_eq!(p.inputs.len(), 24);
        // The same files for the same (g, v, s): keys order variables by their keys
        // (the generator's v), the pattern by DWD's names.
        for g in 0..2 {
            for v in 0..3u32 {
                let pv = p
                    .variables
                    .iter()
                    .position(|c| c.name == dwd_variable(v))
                    .unwrap();
                for s in 0..4 {
                    let want = name(g, v, s);
                    let ki = ((g * 3 + v) * 4 + s) as usize;
                    let pi = (g as usize * 3 + pv) * 4 + s as usize;
                    assert_eq!(
                        k.inputs[ki],
                        Entry {
                            path: want.clone(),
                            range: None
                        }
                    );
                    assert_eq!(p.inputs[pi], k.inputs[ki]);
                }
            }
        }
        let total: u64 = listing.files.iter().map(|f| f.len).sum();
        let largest = listing.files.iter().map(|f| f.len).max().unwrap();
        assert_eq!((k.files, k.bytes, k.max_input_len), (24, total, largest));
        assert_eq!((p.files, p.bytes, p.max_input_len), (24, total, largest));
        let plain = (0..24)
            .map(|i| {
                params()
                    .message_bytes(i / 12, i / 4 % 3, i % 4)
                    .unwrap()
                    .len() as u64
            })
            .max();
        assert_eq!(k.max_message_len, plain, "the unwrapped messages' largest");
        assert_eq!(p.max_message_len, None);
        assert!(k.skipped.is_empty() && p.skipped.is_empty());
        assert_eq!(k.root, fs::canonicalize(dir.path()).unwrap());

        // Read only; the same listing, the same fingerprint.
        assert_eq!(snapshot(dir.path()), before);
        let again = list(dir.path()).unwrap();
        assert_eq!(again, listing);
        assert_eq!(again.fingerprint.len(), 16);
        // A file touched or renamed changes it.
        fs::rename(dir.path().join(name(0, 0, 0)), dir.path().join("x")).unwrap();
        assert_ne!(list(dir.path()).unwrap().fingerprint, listing.fingerprint);
    }

    #[test]
    fn a_file_that_is_not_grib2_is_named() {
        let dir = dwd();
        fs::write(dir.path().join("README.txt"), b"hello").unwrap();
        let e = err(dir.path(), &keys(OnMismatch::Refuse));
        assert!(
            e.starts_with("1 of the 25 files under ") && e.contains("(1 not GRIB2):"),
            "{e}"
        );
        assert!(
            e.contains("\n  README.txt: not GRIB2: does not start with `GRIB`\n"),
            "{e}"
        );
        assert!(e.ends_with("set on_mismatch = \"skip\""), "{e}");
        let e = err(dir.path(), &by_pattern(DWD_PATTERN, OnMismatch::Refuse));
        assert!(
            e.contains("README.txt: does not match the pattern `icon-eu_"),
            "{e}"
        );
        // The one file a pattern scan opens is the first that matches, and named.
        fs::remove_file(dir.path().join("README.txt")).unwrap();
        let first = "icon-eu_europe_regular-lat-lon_single-level_2026010100_000_AAA.grib2.bz2";
        fs::write(dir.path().join(first), b"hello").unwrap();
        let e = err(dir.path(), &by_pattern(DWD_PATTERN, OnMismatch::Refuse));
        assert!(e.contains(&format!("{first}: bzip2: ")), "{e}");
        // Keys: bzip2 data that is not GRIB2 inside is named too.
        fs::write(dir.path().join(first), bz2(b"hello, not a message")).unwrap();
        let e = err(dir.path(), &keys(OnMismatch::Refuse));
        assert!(
            e.contains(&format!("{first}: not GRIB2: does not start with `GRIB`")),
            "{e}"
        );
        // Uncompressed bzip2 data says so.
        fs::write(dir.path().join("x.grib2"), bz2(b"GRIB")).unwrap();
        let e = err(dir.path(), &keys(OnMismatch::Refuse));
        assert!(
            e.contains("x.grib2: not GRIB2: does not start with `GRIB` (it is bzip2"),
            "{e}"
        );
    }

    #[test]
    fn truncated_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let m = message(
            FieldId {
                g: 0,
                v: 0,
                s: 0,
                ny: 5,
                nx: 7,
            },
            Packing::Ccsds,
        );
        fs::write(dir.path().join("cut.grib2"), &m[..m.len() - 10]).unwrap();
        let e = err(dir.path(), &keys(OnMismatch::Refuse));
        assert!(
            e.contains(&format!(
                "cut.grib2: truncated: section 0 gives a length of {} bytes, {} are left",
                m.len(),
                m.len() - 10
            )),
            "{e}"
        );
        fs::write(dir.path().join("cut.grib2"), &m[..40]).unwrap();
        let e = err(dir.path(), &keys(OnMismatch::Refuse));
        assert!(
            e.contains("cut.grib2: truncated: the message's sections need 42 bytes, 40 are left"),
            "{e}"
        );
        let e = err(
            dir.path(),
            &by_pattern("{var}.grib{step}", OnMismatch::Refuse),
        );
        assert!(e.contains("cut.grib2: truncated: "), "{e}");

        // A cut .bz2 of the DWD set: the bzip2 stream ends early.
        let dir = dwd();
        let path = dir.path().join(name(1, 1, 1));
        let bytes = fs::read(&path).unwrap();
        fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
        let e = err(dir.path(), &keys(OnMismatch::Refuse));
        assert!(e.contains(&format!("\n  {}: ", name(1, 1, 1))), "{e}");
        assert!(e.contains("bzip2") || e.contains("truncated"), "{e}");
    }

    #[test]
    fn another_grid_is_named_and_skipping_it_leaves_a_hole() {
        let dir = dwd();
        // The first file in path order: the dataset's grid is still most files'.
        let first = list(dir.path()).unwrap().files[0].path.clone();
        assert_eq!(first, name(0, 1, 0), "TD_2M sorts before T_2M");
        let other = message(
            FieldId {
                g: 0,
                v: 1,
                s: 0,
                ny: 6,
                nx: 8,
            },
            Packing::Ccsds,
        );
        fs::write(dir.path().join(&first), bz2(&other)).unwrap();
        let e = err(dir.path(), &keys(OnMismatch::Refuse));
        assert!(e.contains("(1 another grid)"), "{e}");
        assert!(
            e.contains(&format!(
                "{first}: grid differs from the dataset's: template 3.0, 48 points (6 × 8) vs \
                 template 3.0, 35 points (5 × 7) (the grid of 23 of the 24 messages, the first \
                 in {})",
                name(0, 0, 0)
            )),
            "{e}"
        );
        let e = err(dir.path(), &keys(OnMismatch::Skip));
        assert!(
            e.starts_with(
                "missing (variable, step) combinations: 1, first: group 2026-01-01T00:00:00Z \
                 variable 0.0.1@103=2 step PT0S ("
            ),
            "{e}"
        );
        assert!(
            e.contains(&format!(
                "; 1 files were skipped (on_mismatch = \"skip\"), the first {first}: grid \
                 differs"
            )),
            "{e}"
        );
    }

    #[test]
    fn duplicates_name_both_files() {
        let dir = dwd();
        fs::create_dir(dir.path().join("zz")).unwrap();
        fs::copy(
            dir.path().join(name(1, 2, 3)),
            dir.path().join("zz/copy.grib2.bz2"),
        )
        .unwrap();
        let e = err(dir.path(), &keys(OnMismatch::Refuse));
        assert!(
            e.contains(&format!(
                "zz/copy.grib2.bz2: duplicate of {}: the same reference time, variable and \
                 step (2026-01-01T06:00:00Z 0.0.2@103=2 PT3H)",
                name(1, 2, 3)
            )),
            "{e}"
        );
        // Skipped, the first in path order stays.
        let c = run(dir.path(), &keys(OnMismatch::Skip)).unwrap();
        assert_eq!(c.inputs[23].path, name(1, 2, 3));
        assert_eq!(c.skipped.len(), 1);
        assert_eq!(c.skipped[0].path, "zz/copy.grib2.bz2");

        // By pattern, names alone map two paths to one (group, variable, step) only
        // through `{var}@{level}`: `a@b` + `c` and `a` + `b@c`.
        let dir = tempfile::tempdir().unwrap();
        let m = message(
            FieldId {
                g: 0,
                v: 0,
                s: 0,
                ny: 5,
                nx: 7,
            },
            Packing::Simple,
        );
        for n in ["g_1_a@b_c.grib2", "g_1_a_b@c.grib2"] {
            fs::write(dir.path().join(n), &m).unwrap();
        }
        let spec = by_pattern("{init}_{step}_{var}_{level}.grib2", OnMismatch::Refuse);
        let e = err(dir.path(), &spec);
        assert!(
            e.contains(
                "g_1_a_b@c.grib2: duplicate of g_1_a@b_c.grib2: both are group `g`, variable \
                 `a@b@c`, step `1`"
            ),
            "{e}"
        );
    }

    #[test]
    fn a_missing_file_names_its_group_variable_and_step() {
        let dir = dwd();
        fs::remove_file(dir.path().join(name(1, 1, 2))).unwrap();
        for on in [OnMismatch::Refuse, OnMismatch::Skip] {
            let e = err(dir.path(), &keys(on));
            assert!(
                e.starts_with(
                    "missing (variable, step) combinations: 1, first: group \
                     2026-01-01T06:00:00Z variable 0.0.1@103=2 step PT2H ("
                ),
                "{e}"
            );
            let e = err(dir.path(), &by_pattern(DWD_PATTERN, on));
            assert!(
                e.starts_with(&format!(
                    "missing (variable, step) combinations: 1, first: group 2026010106 \
                     variable TD_2M step 002 (no file {}) (2 groups × 3 variables × 4 steps",
                    name(1, 1, 2)
                )),
                "{e}"
            );
        }
    }

    #[test]
    fn a_fifo_is_never_opened() {
        let dir = dwd();
        let fifo = dir.path().join(name(0, 5, 0));
        mkfifo(&fifo);
        let t = Instant::now();
        let listing = list(dir.path()).unwrap();
        let f = listing
            .files
            .iter()
            .find(|f| f.path == name(0, 5, 0))
            .unwrap();
        assert_eq!(f.kind, FileKind::Other("a FIFO"));
        for spec in [
            keys(OnMismatch::Refuse),
            by_pattern(DWD_PATTERN, OnMismatch::Refuse),
        ] {
            let e = scan(&listing, &spec, &|_| {}).unwrap_err().0;
            assert!(
                e.contains(&format!(
                    "\n  {}: not a regular file (a FIFO)",
                    name(0, 5, 0)
                )),
                "{e}"
            );
        }
        assert!(t.elapsed() < Duration::from_secs(10));
    }

    #[test]
    fn unreadable_and_linked_paths() {
        let dir = dwd();
        let outside = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink("nowhere", dir.path().join("gone.grib2.bz2")).unwrap();
        std::os::unix::fs::symlink(outside.path(), dir.path().join("linked")).unwrap();
        // A link to a regular file is followed: move a file out, link it back.
        let moved = outside.path().join("moved.grib2.bz2");
        fs::rename(dir.path().join(name(0, 0, 0)), &moved).unwrap();
        std::os::unix::fs::symlink(&moved, dir.path().join(name(0, 0, 0))).unwrap();
        fs::write(outside.path().join("inside.grib2"), b"never seen").unwrap();

        let e = err(dir.path(), &keys(OnMismatch::Refuse));
        assert!(e.contains("2 of the 26 files"), "{e}");
        assert!(
            e.contains(
                "\n  gone.grib2.bz2: cannot read: a symbolic link that cannot be followed (No \
                 such file or directory"
            ),
            "{e}"
        );
        assert!(
            e.contains("\n  linked: symbolic link to a directory: not followed"),
            "{e}"
        );
        let before = snapshot(dir.path());
        for spec in [
            keys(OnMismatch::Skip),
            by_pattern(DWD_PATTERN, OnMismatch::Skip),
        ] {
            let c = run(dir.path(), &spec).unwrap();
            assert_eq!(c.inputs.len(), 24);
            assert!(c.inputs.iter().any(|e| e.path == name(0, 0, 0)));
            let skipped: Vec<&str> = c.skipped.iter().map(|u| u.path.as_str()).collect();
            assert_eq!(skipped, ["gone.grib2.bz2", "linked"]);
        }
        assert_eq!(snapshot(dir.path()), before);
    }

    #[test]
    fn skip_leaves_out_and_lists_what_cannot_be_used() {
        let dir = dwd();
        fs::write(dir.path().join("README.txt"), b"hello").unwrap();
        mkfifo(&dir.path().join("pipe"));
        fs::write(dir.path().join("zz.grib2.bz2"), b"BZh9 damaged").unwrap();
        let before = snapshot(dir.path());
        let c = run(dir.path(), &keys(OnMismatch::Skip)).unwrap();
        assert_eq!((c.inputs.len(), c.files), (24, 26));
        let skipped: Vec<(&str, &str)> = c
            .skipped
            .iter()
            .map(|u| (u.path.as_str(), u.why.as_str()))
            .collect();
        assert_eq!(skipped.len(), 3);
        assert_eq!(
            skipped[0],
            ("README.txt", "not GRIB2: does not start with `GRIB`")
        );
        assert_eq!(skipped[1], ("pipe", "not a regular file (a FIFO)"));
        assert_eq!(skipped[2].0, "zz.grib2.bz2");
        assert!(skipped[2].1.starts_with("bzip2: "), "{skipped:?}");
        let e = err(dir.path(), &keys(OnMismatch::Refuse));
        assert!(
            e.starts_with("3 of the 27 files under ")
                && e.contains("(1 damaged, 1 not GRIB2, 1 not a regular file)"),
            "{e}"
        );
        let c = run(dir.path(), &by_pattern(DWD_PATTERN, OnMismatch::Skip)).unwrap();
        assert_eq!(c.inputs.len(), 24);
        assert_eq!(c.skipped.len(), 3);
        assert_eq!(snapshot(dir.path()), before);
    }

    #[test]
    fn multi_message_files_give_one_ranged_entry_per_message() {
        let dir = tempfile::tempdir().unwrap();
        let ms: Vec<Vec<u8>> = (0..3)
            .map(|s| {
                message(
                    FieldId {
                        g: 2,
                        v: 7,
                        s: s * 3,
                        ny: 5,
                        nx: 7,
                    },
                    Packing::Simple,
                )
            })
            .collect();
        let all = ms.concat();
        fs::write(dir.path().join("run.grib2"), &all).unwrap();
        let c = run(dir.path(), &keys(OnMismatch::Refuse)).unwrap();
        assert_eq!(
            c.steps.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(),
            ["PT0S", "PT3H", "PT6H"]
        );
        assert_eq!(c.variables[0].name, "0.0.7@103=2");
        let mut offset = 0u64;
        for (i, e) in c.inputs.iter().enumerate() {
            let len = ms[i].len() as u64;
            assert_eq!(
                e,
                &Entry {
                    path: "run.grib2".into(),
                    range: Some((offset, len))
                }
            );
            let bytes = &all[offset as usize..(offset + len) as usize];
            let keys = MessageKeys {
                reference_time: c.group_keys.as_ref().unwrap()[0],
                variable: c.variable_keys.as_ref().unwrap()[0],
                step_seconds: c.step_seconds.as_ref().unwrap()[i],
            };
            check_message(bytes, &c.grid, Some(&keys)).unwrap();
            offset += len;
        }
        assert_eq!(
            (c.bytes, c.max_input_len),
            (all.len() as u64, ms[0].len() as u64)
        );
        assert_eq!(c.max_message_len, Some(ms[0].len() as u64));

        // Anything after the last message makes the file unusable.
        let mut junk = all.clone();
        junk.extend_from_slice(b"JUNK");
        fs::write(dir.path().join("run.grib2"), &junk).unwrap();
        let e = err(dir.path(), &keys(OnMismatch::Refuse));
        assert!(
            e.contains(&format!(
                "run.grib2: after 3 message(s), at offset {}: not GRIB2: does not start with `GRIB`",
                all.len()
            )),
            "{e}"
        );
        // A pattern scan reads one message per file.
        fs::write(dir.path().join("run.grib2"), &all).unwrap();
        let e = err(
            dir.path(),
            &by_pattern("{var}.grib{step}", OnMismatch::Refuse),
        );
        assert!(
            e.contains("a scan by pattern reads one message per file"),
            "{e}"
        );

        // Two fields in one message (sections 4 to 7 again before `7777`).
        let m = &ms[0];
        let s4 = 16 + 21 + 72;
        let mut two = m[..m.len() - 4].to_vec();
        two.extend_from_slice(&m[s4..m.len() - 4]);
        two.extend_from_slice(b"7777");
        let total = two.len() as u64;
        two[8..16].copy_from_slice(&total.to_be_bytes());
        fs::write(dir.path().join("run.grib2"), &two).unwrap();
        let e = err(dir.path(), &keys(OnMismatch::Refuse));
        assert!(
            e.contains("run.grib2: more than one field per message: not supported (section 4 after section 7"),
            "{e}"
        );
        // A section 7 whose length does not reach `7777`.
        let mut bad = m.clone();
        let s7 = s4 + 34 + 21 + 6; // simple packing: section 5 is 21 bytes
        assert_eq!(bad[s7 + 4], 7);
        bad[s7 + 3] -= 1; // one byte short of `7777`
        fs::write(dir.path().join("run.grib2"), &bad).unwrap();
        let e = err(dir.path(), &keys(OnMismatch::Refuse));
        assert!(
            e.contains("run.grib2: the sections after section 7 do not add up"),
            "{e}"
        );
    }

    #[test]
    fn patterns_are_checked_before_anything_is_read() {
        let dir = dwd();
        for (p, want) in [
            ("{var}_{stp}", "unknown placeholder `{stp}`"),
            ("{var}_x", "no `{step}`"),
            ("{step}_x", "no `{var}`"),
            ("{var}_{step}_{var}", "`{var}` appears twice"),
            ("{var}{step}", "`{var}` and `{step}` must be separated"),
            ("{var}_{step", "without a closing `}`"),
            ("{var}_step}", "without an opening `{`"),
            ("/{var}_{step}", "relative to the dataset directory"),
            ("", "empty"),
        ] {
            let e = err(dir.path(), &by_pattern(p, OnMismatch::Refuse));
            assert!(
                e.starts_with(&format!("pattern `{p}`: ")) && e.contains(want),
                "{p}: {e}"
            );
        }
        // Literal text is literal: a regex metacharacter matches only itself.
        let pat = Pattern::compile("a.{var}+({step})").unwrap();
        assert!(pat.captures("axT+(1)").is_none());
        let n = pat.captures("a.T+(1)").unwrap();
        assert_eq!((n.var.as_str(), n.step.as_str()), ("T", "1"));
        // Shortest first, and never across `/`.
        let pat = Pattern::compile("{init}_{step}_{var}.grib2").unwrap();
        let n = pat.captures("2026_001_T_2M.grib2").unwrap();
        assert_eq!(
            (n.init.as_str(), n.step.as_str(), n.var.as_str()),
            ("2026", "001", "T_2M")
        );
        assert!(pat.captures("a/b_001_T.grib2").is_none());
        assert_eq!(pat.path_of(&n), "2026_001_T_2M.grib2");
    }

    #[test]
    fn steps_sort_as_numbers_when_they_all_are() {
        let dir = tempfile::tempdir().unwrap();
        let m = message(
            FieldId {
                g: 0,
                v: 0,
                s: 0,
                ny: 5,
                nx: 7,
            },
            Packing::Simple,
        );
        for s in ["12", "3", "100"] {
            fs::write(dir.path().join(format!("T+{s}.grib2")), &m).unwrap();
        }
        let c = run(
            dir.path(),
            &by_pattern("{var}+{step}.grib2", OnMismatch::Refuse),
        )
        .unwrap();
        let steps: Vec<&str> = c.steps.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(steps, ["3", "12", "100"]);
        assert_eq!(c.groups[0].name, "", "one group without {{init}}");
        fs::write(dir.path().join("T+x.grib2"), &m).unwrap();
        let c = run(
            dir.path(),
            &by_pattern("{var}+{step}.grib2", OnMismatch::Refuse),
        )
        .unwrap();
        let steps: Vec<&str> = c.steps.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(steps, ["100", "12", "3", "x"]);
    }

    #[test]
    fn roots_that_are_not_directories_and_empty_ones() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing");
        let e = list(&missing).unwrap_err();
        assert!(
            e.starts_with(&format!("dataset directory {}: ", missing.display())),
            "{e}"
        );
        let file = dir.path().join("file");
        fs::write(&file, b"x").unwrap();
        let e = list(&file).unwrap_err();
        assert!(e.ends_with("not a directory (a regular file)"), "{e}");
        let e = err(
            dir.path()
                .join("..")
                .join(dir.path().file_name().unwrap())
                .as_path(),
            &keys(OnMismatch::Skip),
        );
        assert!(e.starts_with("no usable GRIB2 file under "), "{e}");
        let empty = dir.path().join("empty");
        fs::create_dir(&empty).unwrap();
        let e = err(&empty, &keys(OnMismatch::Refuse));
        assert!(e.ends_with("empty: the directory has no files"), "{e}");
    }
}
