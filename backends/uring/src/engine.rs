//! One io_uring and the operations in flight in it: the part both io_uring
//! backends share.
//!
//! An [`Engine`] turns logical operations — "read this file (or this byte range of
//! an open container) into a buffer", "write these bytes to this path atomically"
//! — into SQEs, reaps their CQEs and drives each operation through its phases,
//! and hands back [`Event`]s when operations end. It never blocks except in
//! [`Engine::wait`], and holds at most `depth` operations, each with one SQE (or,
//! linked, one chain) in the ring, so the submission and completion queues, sized
//! above that, can never overflow.
//!
//! Phases, unlinked: a whole file is `openat` → `read` (repeated until a read
//! returns 0, so short reads are completed) → `close`; a byte range is `read` at
//! its offset (repeated until complete) of a container the caller opened; an
//! output is `openat(O_CREAT)` → `write` (repeated until all is written) →
//! `close` → `renameat` from its temporary name, so a reader never sees half a
//! chunk.
//!
//! Inputs are opened with `O_NONBLOCK` (see [`rechunk_contract::input`]), so that
//! a FIFO at an input path cannot block an io-wq worker in `openat` for ever. What
//! a whole-file read opened is not checked on the way (that would cost every file a
//! syscall); it shows where it matters: a FIFO without a writer reads as empty,
//! `/dev/zero` runs past the largest valid size, a read that would block fails with
//! EAGAIN (where the kernel honours O_NONBLOCK for it), and on those rare paths
//! alone the engine asks `fstat` (or `stat` of the path, for a fixed or closed
//! file) what the file is, and fails the read with `not a regular file (…)`. (A
//! FIFO whose writer holds it open without writing still blocks its read: io_uring
//! polls a pollable file even under O_NONBLOCK on recent kernels, and only an
//! `fstat` of every input would tell beforehand.) A filesystem that answers a
//! regular file's non-blocking read with EAGAIN (one without `FMODE_NOWAIT`, for
//! which io_uring does not retry in io-wq) gets that read continued without
//! O_NONBLOCK, and the engine's later whole-file opens go without it. Containers
//! are opened with [`rechunk_contract::input::regular_input`]'s check, once per
//! group.
//!
//! Options ([`Options`]):
//! - `fixed_files`: files are opened straight into a registered file table
//!   (`openat` with a file index), and read, written and closed through it, so the
//!   kernel skips the per-operation file-table lookup and reference count.
//! - `fixed_buffers`: reads go into registered buffers (`READ_FIXED`), which the
//!   kernel pinned once; buffers come from a pool of `buffers` and return to it
//!   when the consumer drops the input, wherever that runs.
//! - `direct`: inputs are opened `O_DIRECT` and read into [`ALIGN`]-aligned pool
//!   buffers, whole blocks at aligned offsets; a byte range reads the blocks that
//!   cover it and hands back the slice inside; a read that ends mid-block has
//!   reached the end of the file (the file's tail), so no extra read is needed to
//!   see end of file. Outputs stay buffered.
//! - `linked` (needs `fixed_files`): a whole-file read is one chain submitted at
//!   once, `openat` → `read` → `read` of one byte past the largest valid size (to
//!   see end of file) → `close`, hard-linked so each runs when the previous
//!   completed, whatever its result; an output is `openat` → `write` → `close` →
//!   `renameat`, soft-linked so that a failed or short write cancels the rename.
//!   When a chain's results do not settle the operation (a short read or write),
//!   it continues unlinked from where the chain left it.

use std::ffi::{CStr, CString, OsStr};
use std::fs::OpenOptions;
use std::mem::ManuallyDrop;
use std::ops::Deref;
use std::os::fd::{FromRawFd, IntoRawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::ptr::NonNull;
use std::sync::Arc;
use std::time::Instant;

use crossbeam_queue::ArrayQueue;
use io_uring::squeue::Flags;
use io_uring::types::{DestinationSlot, Fd, Fixed};
use io_uring::{opcode, squeue, IoUring};
use rechunk_contract::input;
use rechunk_contract::output::io_detail;
use rechunk_contract::RunError;

/// Alignment of O_DIRECT buffers, offsets and lengths: 4 KiB covers every
/// logical block size Linux block devices use up to 4Kn disks.
pub const ALIGN: usize = 4096;

fn align_up(n: usize) -> usize {
    n.div_ceil(ALIGN) * ALIGN
}

/// How operations are issued; each is recorded in the results.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Options {
    /// Open files straight into a registered file table and use them through it.
    pub fixed_files: bool,
    /// Read into registered buffers from a bounded pool (`READ_FIXED`).
    pub fixed_buffers: bool,
    /// Open inputs `O_DIRECT` and read whole [`ALIGN`]ed blocks into aligned
    /// buffers.
    pub direct: bool,
    /// Submit each whole-file read and each write as one linked chain (needs
    /// `fixed_files`).
    pub linked: bool,
}

impl Options {
    /// Whether reads need pool buffers (registered or aligned).
    fn pooled(&self) -> bool {
        self.fixed_buffers || self.direct
    }
}

/// The ring's setup.
#[derive(Clone, Copy, Debug)]
pub struct Setup {
    /// Operations in flight at most.
    pub depth: usize,
    pub sqpoll_idle_ms: Option<u32>,
    pub iowq_max_workers: Option<u32>,
    pub options: Options,
    /// Read buffers in the pool (when the options need one): bounds reads in
    /// flight plus inputs not yet consumed.
    pub buffers: usize,
    /// The largest input: a whole file's size limit, or a range's length.
    pub max_input: usize,
}

/// Memory aligned to [`ALIGN`], owned.
struct Aligned {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: plain owned memory; access goes through &/&mut of the owner.
unsafe impl Send for Aligned {}
// SAFETY: as above; shared access is read-only.
unsafe impl Sync for Aligned {}

impl Aligned {
    fn new(len: usize) -> Aligned {
        let layout = std::alloc::Layout::from_size_align(len, ALIGN).expect("a valid layout");
        // SAFETY: len > 0 (buffers hold at least one block).
        let ptr = unsafe { std::alloc::alloc_zeroed(layout) };
        let ptr = NonNull::new(ptr).unwrap_or_else(|| std::alloc::handle_alloc_error(layout));
        Aligned { ptr, len }
    }
}

impl Drop for Aligned {
    fn drop(&mut self) {
        let layout = std::alloc::Layout::from_size_align(self.len, ALIGN).expect("a valid layout");
        // SAFETY: allocated in `new` with this layout.
        unsafe { std::alloc::dealloc(self.ptr.as_ptr(), layout) };
    }
}

/// A pool of read buffers; a buffer returns to it when dropped.
struct Pool {
    free: ArrayQueue<(u16, Aligned)>,
}

/// A buffer from a [`Pool`]: `index` is its registered-buffer index.
struct Pooled {
    mem: Option<Aligned>,
    index: u16,
    pool: Arc<Pool>,
}

impl Drop for Pooled {
    fn drop(&mut self) {
        if let Some(mem) = self.mem.take() {
            // Cannot be full: every buffer came out of it.
            let _ = self.pool.free.push((self.index, mem));
        }
    }
}

enum Buf {
    Heap(Vec<u8>),
    Pooled(Pooled),
}

impl Buf {
    fn len(&self) -> usize {
        match self {
            Buf::Heap(v) => v.len(),
            Buf::Pooled(p) => p.mem.as_ref().map_or(0, |m| m.len),
        }
    }
    fn ptr(&mut self) -> *mut u8 {
        match self {
            Buf::Heap(v) => v.as_mut_ptr(),
            Buf::Pooled(p) => p
                .mem
                .as_ref()
                .map_or(std::ptr::null_mut(), |m| m.ptr.as_ptr()),
        }
    }
    fn slice(&self) -> &[u8] {
        match self {
            Buf::Heap(v) => v,
            // SAFETY: `len` initialised (zeroed at allocation) bytes owned by `mem`.
            Buf::Pooled(p) => p.mem.as_ref().map_or(&[], |m| unsafe {
                std::slice::from_raw_parts(m.ptr.as_ptr(), m.len)
            }),
        }
    }
    fn fixed_index(&self) -> Option<u16> {
        match self {
            Buf::Heap(_) => None,
            Buf::Pooled(p) => Some(p.index),
        }
    }
}

/// A completed read's bytes. Dropping it returns a pool buffer to its pool, from
/// any thread.
pub struct Input {
    buf: Buf,
    start: usize,
    len: usize,
}

impl Deref for Input {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.buf.slice()[self.start..self.start + self.len]
    }
}

/// A byte range of a container the caller opened (with [`Engine::open_container`]).
#[derive(Clone, Copy, Debug)]
pub struct Range {
    pub fd: i32,
    pub offset: u64,
    pub len: usize,
}

/// An operation that ended.
pub enum Event<T> {
    Read {
        data: T,
        started: Instant,
        /// `Err(Cancelled)` when the engine was stopping.
        result: Result<Input, RunError>,
    },
    Write {
        data: T,
        started: Instant,
        bytes: u64,
        result: Result<(), RunError>,
    },
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Phase {
    Open,
    Data,
    Close,
    Rename,
}

#[derive(Clone, Copy)]
enum File {
    None,
    Raw(i32),
    Fixed(u32),
}

enum Kind {
    Read {
        path: CString,
        range: Option<Range>,
        /// Where reading starts in the file (a range's offset, aligned down if direct).
        file_offset: u64,
        /// Bytes at the start of the buffer before the wanted ones (direct ranges).
        skip: usize,
        /// The most bytes a read may bring in (buffer space used).
        limit: usize,
        /// A whole file's largest valid size.
        max: usize,
        /// Open the file again once it is closed (without `O_NONBLOCK`) and read on.
        reopen: bool,
    },
    Write {
        tmp: CString,
        dest: CString,
    },
}

struct Op<T> {
    phase: Phase,
    file: File,
    /// The fixed-file slot this operation holds, if any.
    slot: Option<u32>,
    buf: Buf,
    /// Bytes in `buf` read or written so far.
    done: usize,
    started: Instant,
    /// CQEs still to come from a linked chain, and the chain's results by step.
    chain_left: u8,
    chain_res: [i32; 4],
    kind: Kind,
    data: Option<T>,
}

/// The user_data of the eventfd read, outside every operation's range.
const WAKE: u64 = u64::MAX;

fn user_data(slot: usize, step: u8) -> u64 {
    ((step as u64) << 32) | slot as u64
}

/// A minimal slab: stable indices for in-flight operations (their user_data) and
/// for the backends' emissions.
pub(crate) struct Slab<T> {
    items: Vec<Option<T>>,
    free: Vec<usize>,
}

impl<T> Slab<T> {
    pub(crate) fn new() -> Self {
        Slab {
            items: Vec::new(),
            free: Vec::new(),
        }
    }
    pub(crate) fn insert(&mut self, t: T) -> usize {
        match self.free.pop() {
            Some(i) => {
                self.items[i] = Some(t);
                i
            }
            None => {
                self.items.push(Some(t));
                self.items.len() - 1
            }
        }
    }
    pub(crate) fn remove(&mut self, i: usize) -> T {
        let t = self.items[i].take().expect("a live slab entry");
        self.free.push(i);
        t
    }
    pub(crate) fn get_mut(&mut self, i: usize) -> &mut T {
        self.items[i].as_mut().expect("a live slab entry")
    }
}

/// An eventfd other threads write to, so that a thread waiting on the ring wakes.
pub struct EventFd(i32);

impl EventFd {
    pub fn new() -> Result<EventFd, RunError> {
        // SAFETY: plain syscall; the fd is owned by the returned value.
        let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC) };
        if fd < 0 {
            return Err(RunError::Internal(format!(
                "eventfd: {}",
                std::io::Error::last_os_error()
            )));
        }
        Ok(EventFd(fd))
    }
    pub fn signal(&self) {
        let one: u64 = 1;
        // SAFETY: writes 8 bytes from a valid u64 to our eventfd.
        unsafe { libc::write(self.0, (&one as *const u64).cast(), 8) };
    }
}

impl Drop for EventFd {
    fn drop(&mut self) {
        // SAFETY: closes the fd this value owns.
        unsafe { libc::close(self.0) };
    }
}

fn path_of(c: &CStr) -> PathBuf {
    PathBuf::from(OsStr::from_bytes(c.to_bytes()))
}

/// Builds a read, write or close SQE on a raw or fixed file.
macro_rules! on_file {
    ($file:expr, |$fd:ident| $build:expr) => {
        match $file {
            File::Raw(raw) => {
                let $fd = Fd(raw);
                $build
            }
            File::Fixed(i) => {
                let $fd = Fixed(i);
                $build
            }
            File::None => unreachable!("an operation on a file that is not open"),
        }
    };
}

/// See the module documentation.
pub struct Engine<T> {
    ring: IoUring,
    setup: Setup,
    entries: u32,
    ops: Slab<Op<T>>,
    in_flight: usize,
    free_slots: Vec<u32>,
    pool: Option<Arc<Pool>>,
    completions: Vec<(u64, i32)>,
    stopping: bool,
    wake: Option<(Arc<EventFd>, Box<[u8; 8]>)>,
    wake_armed: bool,
    /// Whole-file opens add `O_NONBLOCK`; false once a regular file's read failed
    /// with EAGAIN for it (a filesystem without `FMODE_NOWAIT`).
    nonblocking_reads: bool,
    /// io_uring_enter calls made.
    pub submits: u64,
}

impl<T> Engine<T> {
    pub fn new(setup: Setup) -> Result<Engine<T>, RunError> {
        let o = setup.options;
        if o.linked && !o.fixed_files {
            return Err(RunError::Job(
                "linked = true needs fixed_files = true: a chain's read must name the file \
                 its openat will open, which only a fixed-file slot can"
                    .into(),
            ));
        }
        let depth = setup.depth.max(1);
        let mut builder = IoUring::builder();
        if let Some(idle) = setup.sqpoll_idle_ms {
            builder.setup_sqpoll(idle);
        }
        // Room for every operation's longest chain (4 SQEs) plus the eventfd read;
        // CQ is twice that by default.
        let entries = (4 * depth as u32 + 1).next_power_of_two().clamp(8, 32768);
        let ring = builder
            .build(entries)
            .map_err(|e| RunError::Unavailable(format!("io_uring_setup({entries}): {e}")))?;
        if let Some(max) = setup.iowq_max_workers {
            let mut m = [max, max];
            ring.submitter()
                .register_iowq_max_workers(&mut m)
                .map_err(|e| RunError::Unavailable(format!("register_iowq_max_workers: {e}")))?;
        }
        let mut free_slots = Vec::new();
        if o.fixed_files {
            ring.submitter()
                .register_files_sparse(depth as u32)
                .map_err(|e| RunError::Unavailable(format!("register_files_sparse: {e}")))?;
            free_slots = (0..depth as u32).rev().collect();
        }
        let mut pool = None;
        if o.pooled() {
            let n = setup.buffers.max(depth).min(u16::MAX as usize);
            // Direct ranges may need a block before and after the wanted bytes.
            let len = align_up(setup.max_input + 1) + 2 * ALIGN;
            let free = ArrayQueue::new(n);
            let mut iovecs = Vec::with_capacity(n);
            for i in 0..n {
                let mem = Aligned::new(len);
                iovecs.push(libc::iovec {
                    iov_base: mem.ptr.as_ptr().cast(),
                    iov_len: len,
                });
                let _ = free.push((i as u16, mem));
            }
            if o.fixed_buffers {
                // SAFETY: the buffers live in the pool, which the engine keeps (and
                // which outlives every read into them) until the ring is dropped.
                unsafe { ring.submitter().register_buffers(&iovecs) }.map_err(|e| {
                    RunError::Unavailable(format!(
                        "register_buffers ({n} × {len} bytes): {e} \
                         (RLIMIT_MEMLOCK may be too low)"
                    ))
                })?;
            }
            pool = Some(Arc::new(Pool { free }));
        }
        Ok(Engine {
            ring,
            setup: Setup { depth, ..setup },
            entries,
            ops: Slab::new(),
            in_flight: 0,
            free_slots,
            pool,
            completions: Vec::new(),
            stopping: false,
            wake: None,
            wake_armed: false,
            nonblocking_reads: true,
            submits: 0,
        })
    }

    pub fn entries(&self) -> u32 {
        self.entries
    }

    pub fn in_flight(&self) -> usize {
        self.in_flight
    }

    /// Whether a read can start now: an operation slot and, if pooled, a buffer.
    pub fn can_read(&self) -> bool {
        self.can_write() && self.pool.as_ref().is_none_or(|p| !p.free.is_empty())
    }

    pub fn can_write(&self) -> bool {
        self.in_flight < self.setup.depth
    }

    /// From now on operations end as soon as their files are closed.
    pub fn stop(&mut self) {
        self.stopping = true;
    }

    /// Keeps a read of `wake` armed, so that signalling it ends [`Engine::wait`].
    pub fn watch(&mut self, wake: Arc<EventFd>) {
        self.wake = Some((wake, Box::new([0; 8])));
        self.arm_wake();
    }

    fn arm_wake(&mut self) {
        if let Some((fd, buf)) = &mut self.wake {
            let entry = opcode::Read::new(Fd(fd.0), buf.as_mut_ptr(), 8)
                .build()
                .user_data(WAKE);
            self.push(entry);
            self.wake_armed = true;
        }
    }

    /// Opens a container for range reads (O_DIRECT if the options say so), with
    /// [`input::OPEN_FLAGS`]; refused unless it is a regular file, `O_NONBLOCK`
    /// cleared again (once per container, so the checks cost nothing per read).
    /// The caller owns and closes the fd.
    pub fn open_container(&self, path: &CStr) -> Result<i32, RunError> {
        let p = path_of(path);
        let mut flags = libc::O_NONBLOCK;
        if self.setup.options.direct {
            flags |= libc::O_DIRECT;
        }
        let file = OpenOptions::new()
            .read(true)
            .custom_flags(flags)
            .open(&p)
            .map_err(|e| RunError::input(&p, self.open_failure(&p, &e)))?;
        Ok(input::regular_input(file, &p)?.into_raw_fd())
    }

    /// Why an input's open failed, in words: not a regular file (a socket's open
    /// fails with ENXIO, a FIFO's or a device's with EINVAL under O_DIRECT), a
    /// filesystem without O_DIRECT, or the error itself.
    fn open_failure(&self, path: &Path, e: &std::io::Error) -> String {
        if let Some(kind) = input::not_regular(path) {
            return format!("not a regular file ({kind})");
        }
        let detail = if self.setup.options.direct && e.raw_os_error() == Some(libc::EINVAL) {
            format!("{e} (this filesystem does not support O_DIRECT; set direct = false)")
        } else {
            io_detail(e)
        };
        format!("cannot open: {detail}")
    }

    /// What read `i` opened, if it could be told: by `fstat` of its descriptor, or
    /// `stat` of its path when the descriptor is a fixed one or closed. For rare
    /// paths only (an empty file, one too large, a read that would block).
    fn file_type(&mut self, i: usize) -> Option<std::fs::FileType> {
        let op = self.ops.get_mut(i);
        let Kind::Read { path, .. } = &op.kind else {
            unreachable!("file_type is asked only about reads (from not_regular and would_block)")
        };
        let meta = match op.file {
            File::Raw(fd) => {
                // SAFETY: borrows the op's open fd for one fstat; never closes it.
                let f = ManuallyDrop::new(unsafe { std::fs::File::from_raw_fd(fd) });
                f.metadata()
            }
            _ => std::fs::metadata(path_of(path)),
        };
        meta.ok().map(|m| m.file_type())
    }

    /// `not a regular file (…)` if read `i`'s file is not one (see
    /// [`Engine::file_type`]).
    fn not_regular(&mut self, i: usize) -> Option<String> {
        self.file_type(i)
            .filter(|t| !t.is_file())
            .map(|t| format!("not a regular file ({})", input::file_kind(&t)))
    }

    /// A whole-file read failed with EAGAIN: a FIFO or socket with nothing to read
    /// (opened O_NONBLOCK, as inputs are), or a regular file on a filesystem that
    /// refuses non-blocking reads. The first fails; the second reads on without
    /// O_NONBLOCK (its flag cleared, or, for a fixed file, closed and opened again;
    /// a linked chain's closed file is already set to open again), and later opens
    /// go without it.
    fn would_block(&mut self, i: usize, events: &mut Vec<Event<T>>) {
        match self.file_type(i) {
            Some(t) if t.is_file() => {
                self.nonblocking_reads = false;
                let op = self.ops.get_mut(i);
                match op.file {
                    File::Raw(fd) => {
                        // SAFETY: F_GETFL / F_SETFL on the op's open fd.
                        unsafe {
                            let flags = libc::fcntl(fd, libc::F_GETFL);
                            if flags >= 0 {
                                libc::fcntl(fd, libc::F_SETFL, flags & !libc::O_NONBLOCK);
                            }
                        }
                    }
                    File::Fixed(_) => {
                        // A fixed file has no fcntl: close it and open it again.
                        if let Kind::Read { reopen, .. } = &mut op.kind {
                            *reopen = true;
                        }
                        op.phase = Phase::Close;
                    }
                    // Closed (by a linked chain): the caller set it to open again.
                    File::None => debug_assert_eq!(op.phase, Phase::Open),
                }
                self.submit_phase(i);
            }
            Some(t) => {
                let msg = format!(
                    "not a regular file ({}): the read would block",
                    input::file_kind(&t)
                );
                self.read_failed(i, msg, events);
            }
            None => self.read_failed(
                i,
                "not a regular file: the read would block (a FIFO or socket?)".into(),
                events,
            ),
        }
    }

    /// Starts reading a whole file (`range: None`, at most `max` bytes valid) or a
    /// byte range. Call only when [`Engine::can_read`].
    pub fn read(&mut self, path: CString, range: Option<Range>, max: usize, data: T) {
        let o = self.setup.options;
        let buf = match &self.pool {
            Some(pool) => {
                let (index, mem) = pool.free.pop().expect("can_read was checked");
                Buf::Pooled(Pooled {
                    mem: Some(mem),
                    index,
                    pool: pool.clone(),
                })
            }
            None => Buf::Heap(vec![0; range.map_or(max + 1, |r| r.len)]),
        };
        let (file_offset, skip, limit) = match (range, o.direct) {
            (Some(r), true) => {
                let start = r.offset - r.offset % ALIGN as u64;
                let skip = (r.offset - start) as usize;
                (start, skip, align_up(skip + r.len))
            }
            (Some(r), false) => (r.offset, 0, r.len),
            // One byte more than any valid input, to tell "too large".
            (None, true) => (0, 0, align_up(max + 1)),
            (None, false) => (0, 0, max + 1),
        };
        let (phase, file) = match range {
            Some(r) => (Phase::Data, File::Raw(r.fd)),
            None => (Phase::Open, File::None),
        };
        let slot = (range.is_none() && o.fixed_files)
            .then(|| self.free_slots.pop().expect("a slot per operation"));
        let op = Op {
            phase,
            file,
            slot,
            buf,
            done: 0,
            started: Instant::now(),
            chain_left: 0,
            chain_res: [0; 4],
            kind: Kind::Read {
                path,
                range,
                file_offset,
                skip,
                limit,
                max,
                reopen: false,
            },
            data: Some(data),
        };
        let i = self.ops.insert(op);
        self.in_flight += 1;
        if range.is_none() && o.linked {
            self.submit_read_chain(i);
        } else {
            self.submit_phase(i);
        }
    }

    /// Starts writing `bytes` to `dest` via `tmp` and a rename. Call only when
    /// [`Engine::can_write`]; the destination's directory must exist.
    pub fn write(&mut self, tmp: CString, dest: CString, bytes: Vec<u8>, data: T) {
        let o = self.setup.options;
        let slot = o
            .fixed_files
            .then(|| self.free_slots.pop().expect("a slot per operation"));
        let op = Op {
            phase: Phase::Open,
            file: File::None,
            slot,
            buf: Buf::Heap(bytes),
            done: 0,
            started: Instant::now(),
            chain_left: 0,
            chain_res: [0; 4],
            kind: Kind::Write { tmp, dest },
            data: Some(data),
        };
        let i = self.ops.insert(op);
        self.in_flight += 1;
        if o.linked {
            self.submit_write_chain(i);
        } else {
            self.submit_phase(i);
        }
    }

    fn push(&mut self, entry: squeue::Entry) {
        self.push_all(std::slice::from_ref(&entry));
    }

    /// Pushes entries so that the kernel sees all of them or none: a chain whose
    /// head were seen alone (an SQPOLL thread reads the queue as it fills) would be
    /// cut there, and its read would run before its open.
    fn push_all(&mut self, entries: &[squeue::Entry]) {
        loop {
            // SAFETY: every buffer and path an SQE points to lives in `self.ops` (heap
            // memory that does not move with the slab) or the pool, or is the boxed
            // eventfd buffer, until its completion is reaped.
            if unsafe { self.ring.submission().push_multiple(entries) }.is_ok() {
                return;
            }
            // Full (cannot happen with the sizes chosen, but never drop an SQE).
            self.submits += 1;
            let _ = self.ring.submit();
        }
    }

    /// Submits what is queued without waiting.
    pub fn submit(&mut self) -> Result<(), RunError> {
        if self.ring.submission().is_empty() {
            return Ok(());
        }
        self.enter(0)
    }

    /// Submits what is queued and waits for at least one completion.
    pub fn wait(&mut self) -> Result<(), RunError> {
        self.enter(1)
    }

    fn enter(&mut self, want: usize) -> Result<(), RunError> {
        self.submits += 1;
        match self.ring.submit_and_wait(want) {
            Ok(_) => Ok(()),
            Err(e) if matches!(e.raw_os_error(), Some(libc::EINTR) | Some(libc::EBUSY)) => Ok(()),
            Err(e) => Err(RunError::Internal(format!("io_uring_enter: {e}"))),
        }
    }

    /// Handles every CQE there is and appends the operations that ended.
    pub fn reap(&mut self, events: &mut Vec<Event<T>>) {
        // Taken out first: handling a completion pushes SQEs (a &mut of the ring).
        let mut completions = std::mem::take(&mut self.completions);
        completions.extend(self.ring.completion().map(|c| (c.user_data(), c.result())));
        for &(data, res) in &completions {
            if data == WAKE {
                self.wake_armed = false;
                self.arm_wake();
            } else {
                let slot = (data & 0xffff_ffff) as usize;
                let step = (data >> 32) as u8;
                self.complete(slot, step, res, events);
            }
        }
        completions.clear();
        self.completions = completions;
    }

    /// Ends the eventfd read (by signalling it) so that no read into its buffer is
    /// left in the kernel. Call once nothing else is in flight.
    pub fn shutdown(&mut self) {
        let Some((fd, _)) = &self.wake else { return };
        let fd = fd.clone();
        while self.wake_armed {
            fd.signal();
            if self.ring.submit_and_wait(1).is_err() {
                return;
            }
            if self.ring.completion().any(|c| c.user_data() == WAKE) {
                self.wake_armed = false;
            }
        }
        self.wake = None;
    }

    fn open_flags(&self, write: bool) -> i32 {
        if write {
            return libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC | libc::O_CLOEXEC;
        }
        // O_NONBLOCK: a FIFO's open returns at once instead of blocking a worker.
        let mut flags = input::OPEN_FLAGS;
        if !self.nonblocking_reads {
            flags &= !libc::O_NONBLOCK;
        }
        if self.setup.options.direct {
            flags |= libc::O_DIRECT;
        }
        flags
    }

    fn open_sqe(&self, i: usize) -> squeue::Entry {
        let op = &self.ops.items[i].as_ref().expect("live");
        let (path, write) = match &op.kind {
            Kind::Read { path, .. } => (path.as_ptr(), false),
            Kind::Write { tmp, .. } => (tmp.as_ptr(), true),
        };
        let mut flags = self.open_flags(write);
        if op.slot.is_some() {
            // A direct descriptor has no close-on-exec flag (the kernel refuses it).
            flags &= !libc::O_CLOEXEC;
        }
        let mut open = opcode::OpenAt::new(Fd(libc::AT_FDCWD), path)
            .flags(flags)
            .mode(0o644);
        if let Some(s) = op.slot {
            let dest = DestinationSlot::try_from_slot_target(s).expect("a small slot index");
            open = open.file_index(Some(dest));
        }
        open.build()
    }

    /// The file an operation's slot names once its open completes.
    fn opened(op: &Op<T>, res: i32) -> File {
        match op.slot {
            Some(s) => File::Fixed(s),
            None => File::Raw(res),
        }
    }

    fn read_sqe(&mut self, i: usize, offset: u64) -> squeue::Entry {
        let registered = self.setup.options.fixed_buffers;
        let op = self.ops.get_mut(i);
        let Kind::Read { limit, .. } = op.kind else {
            unreachable!("read_sqe is built only for reads (submit_phase and submit_read_chain check the kind)")
        };
        let done = op.done;
        // SAFETY (of the pointer arithmetic): done < limit <= the buffer's length.
        let ptr = unsafe { op.buf.ptr().add(done) };
        let len = (limit - done) as u32;
        match op.buf.fixed_index() {
            Some(index) if registered => {
                on_file!(op.file, |fd| opcode::ReadFixed::new(fd, ptr, len, index)
                    .offset(offset)
                    .build())
            }
            _ => on_file!(op.file, |fd| opcode::Read::new(fd, ptr, len)
                .offset(offset)
                .build()),
        }
    }

    fn write_sqe(op: &mut Op<T>) -> squeue::Entry {
        let done = op.done;
        let len = (op.buf.len() - done) as u32;
        // SAFETY (of the pointer arithmetic): done < the buffer's length.
        let ptr = unsafe { op.buf.ptr().add(done) };
        on_file!(op.file, |fd| opcode::Write::new(fd, ptr, len)
            .offset(done as u64)
            .build())
    }

    fn close_sqe(file: File) -> squeue::Entry {
        on_file!(file, |fd| opcode::Close::new(fd).build())
    }

    fn rename_sqe(op: &Op<T>) -> squeue::Entry {
        let Kind::Write { tmp, dest } = &op.kind else {
            unreachable!("rename_sqe is built only for writes: reads never reach Phase::Rename")
        };
        opcode::RenameAt::new(
            Fd(libc::AT_FDCWD),
            tmp.as_ptr(),
            Fd(libc::AT_FDCWD),
            dest.as_ptr(),
        )
        .build()
    }

    /// Pushes the SQE for the operation's current phase.
    fn submit_phase(&mut self, i: usize) {
        let entry = match self.ops.get_mut(i).phase {
            Phase::Open => self.open_sqe(i),
            Phase::Data => {
                let op = self.ops.get_mut(i);
                match op.kind {
                    Kind::Read { file_offset, .. } => {
                        let offset = file_offset + op.done as u64;
                        self.read_sqe(i, offset)
                    }
                    Kind::Write { .. } => Self::write_sqe(op),
                }
            }
            Phase::Close => Self::close_sqe(self.ops.get_mut(i).file),
            Phase::Rename => Self::rename_sqe(self.ops.get_mut(i)),
        };
        self.push(entry.user_data(user_data(i, 0)));
    }

    /// open → read → (buffered: read of the byte past the largest valid size) →
    /// close, hard-linked, as one submission.
    fn submit_read_chain(&mut self, i: usize) {
        let direct = self.setup.options.direct;
        let open = self.open_sqe(i);
        let op = self.ops.get_mut(i);
        let slot = op.slot.expect("linked needs fixed files");
        op.file = File::Fixed(slot);
        let Kind::Read { max, .. } = op.kind else {
            unreachable!(
                "submit_read_chain is called by Engine::read, for the read it just inserted"
            )
        };
        let mut chain = vec![open];
        if direct {
            chain.push(self.read_sqe(i, 0));
        } else {
            // Both reads at the file position (-1): the first reads up to the largest
            // valid size, the second one byte past it, so 0 from it proves the end.
            self.set_window(i, 0, max);
            chain.push(self.read_sqe(i, u64::MAX));
            self.set_window(i, max, max + 1);
            chain.push(self.read_sqe(i, u64::MAX));
            self.set_window(i, 0, max + 1);
        }
        chain.push(Self::close_sqe(File::Fixed(slot)));
        let op = self.ops.get_mut(i);
        op.chain_left = chain.len() as u8;
        op.chain_res = [0; 4];
        let last = chain.len() - 1;
        let chain: Vec<_> = (chain.into_iter().enumerate())
            .map(|(step, entry)| {
                let flags = if step < last {
                    Flags::IO_HARDLINK
                } else {
                    Flags::empty()
                };
                entry.flags(flags).user_data(user_data(i, step as u8))
            })
            .collect();
        self.push_all(&chain);
    }

    /// Points the next read SQE at `buf[done..limit]`.
    fn set_window(&mut self, i: usize, done: usize, new_limit: usize) {
        let op = self.ops.get_mut(i);
        op.done = done;
        if let Kind::Read { limit, .. } = &mut op.kind {
            *limit = new_limit;
        }
    }

    /// open → write → close → rename, soft-linked: a failed or short step cancels
    /// the rest, so a short file is never renamed into place.
    fn submit_write_chain(&mut self, i: usize) {
        let open = self.open_sqe(i);
        let op = self.ops.get_mut(i);
        let slot = op.slot.expect("linked needs fixed files");
        op.file = File::Fixed(slot);
        let chain = [
            open,
            Self::write_sqe(op),
            Self::close_sqe(File::Fixed(slot)),
            Self::rename_sqe(op),
        ];
        op.chain_left = 4;
        op.chain_res = [0; 4];
        let mut step = 0;
        let chain = chain.map(|entry| {
            let flags = if step < 3 {
                Flags::IO_LINK
            } else {
                Flags::empty()
            };
            let entry = entry.flags(flags).user_data(user_data(i, step));
            step += 1;
            entry
        });
        self.push_all(&chain);
    }

    fn complete(&mut self, i: usize, step: u8, res: i32, events: &mut Vec<Event<T>>) {
        let op = self.ops.get_mut(i);
        if op.chain_left > 0 {
            op.chain_res[step as usize] = res;
            op.chain_left -= 1;
            if op.chain_left == 0 {
                match op.kind {
                    Kind::Read { .. } => self.read_chain_done(i, events),
                    Kind::Write { .. } => self.write_chain_done(i, events),
                }
            }
            return;
        }
        match op.kind {
            Kind::Read { .. } => self.read_step(i, res, events),
            Kind::Write { .. } => self.write_step(i, res, events),
        }
    }

    fn read_step(&mut self, i: usize, res: i32, events: &mut Vec<Event<T>>) {
        let stopping = self.stopping;
        let err = (res < 0).then(|| std::io::Error::from_raw_os_error(-res));
        let op = self.ops.get_mut(i);
        match op.phase {
            Phase::Open => {
                if let Some(e) = err {
                    let Kind::Read { path, .. } = &op.kind else {
                        unreachable!("read_step gets only reads (complete dispatches on the kind)")
                    };
                    let path = path_of(path);
                    let msg = self.open_failure(&path, &e);
                    return self.read_failed(i, msg, events);
                }
                op.file = Self::opened(op, res);
                op.phase = if stopping { Phase::Close } else { Phase::Data };
            }
            Phase::Data => {
                if let Some(e) = err {
                    let whole = matches!(op.kind, Kind::Read { range: None, .. });
                    if whole && e.raw_os_error() == Some(libc::EAGAIN) && !stopping {
                        return self.would_block(i, events);
                    }
                    return self.read_failed(i, io_detail(&e), events);
                }
                op.done += res as usize;
                match self.after_read(i, res == 0) {
                    Next::Fail(msg) => return self.read_failed(i, msg, events),
                    Next::Complete => return self.end_read(i, events),
                    Next::Continue if stopping => return self.end_read(i, events),
                    Next::Continue => {}
                }
            }
            Phase::Close => {
                op.file = File::None;
                if let Kind::Read { reopen, .. } = &mut op.kind {
                    if std::mem::take(reopen) && !stopping {
                        // Read on, from where the read stopped, without O_NONBLOCK.
                        op.phase = Phase::Open;
                        return self.submit_phase(i);
                    }
                }
                return self.finish_read(i, !stopping, events);
            }
            Phase::Rename => unreachable!("reads are never renamed"),
        }
        self.submit_phase(i);
    }

    /// What the bytes read so far mean (`eof`: the last read returned 0).
    fn after_read(&mut self, i: usize, eof: bool) -> Next {
        let direct = self.setup.options.direct;
        let op = self.ops.get_mut(i);
        let Kind::Read {
            range,
            skip,
            max,
            file_offset,
            ..
        } = op.kind
        else {
            unreachable!("after_read is called only from read_step, for reads")
        };
        // O_DIRECT moves whole blocks; a read that ends mid-block hit the file's end.
        let ended = eof || (direct && op.done % ALIGN != 0);
        match range {
            Some(r) if op.done >= skip + r.len => Next::Complete,
            Some(r) if ended => Next::Fail(format!(
                "truncated: the file ends before byte {}",
                r.offset + r.len as u64
            )),
            Some(_) => Next::Continue,
            // Endless (a device such as /dev/zero), or a regular file too large.
            None if op.done > max => {
                Next::Fail(self.not_regular(i).unwrap_or_else(|| {
                    format!("larger than any valid input ({max} bytes at most)")
                }))
            }
            None if ended => {
                debug_assert_eq!(file_offset, 0);
                // Empty: a FIFO without a writer reads so; an empty regular file is
                // the workload's to judge.
                if op.done == 0 {
                    if let Some(msg) = self.not_regular(i) {
                        return Next::Fail(msg);
                    }
                }
                self.ops.get_mut(i).phase = Phase::Close;
                Next::Continue
            }
            None => Next::Continue,
        }
    }

    /// A whole-file read reached its end (or is stopped): close it; its close
    /// hands it over. A range read is complete (or stopped): hand it over now.
    fn end_read(&mut self, i: usize, events: &mut Vec<Event<T>>) {
        let op = self.ops.get_mut(i);
        if matches!(op.kind, Kind::Read { range: None, .. }) {
            op.phase = Phase::Close;
            self.submit_phase(i);
        } else {
            self.finish_read(i, !self.stopping, events);
        }
    }

    fn read_failed(&mut self, i: usize, msg: String, events: &mut Vec<Event<T>>) {
        let op = self.ops.get_mut(i);
        let Kind::Read { path, range, .. } = &op.kind else {
            unreachable!("read_failed is called only for reads")
        };
        let error = RunError::input(path_of(path), msg);
        let open = range.is_none() && !matches!(op.file, File::None);
        // The error travels with the operation until its file is closed.
        let data = op.data.take().expect("data until the end");
        let started = op.started;
        events.push(Event::Read {
            data,
            started,
            result: Err(error),
        });
        if open {
            op.phase = Phase::Close;
            self.submit_phase(i);
        } else {
            self.release(i);
        }
    }

    /// Ends a read whose file is closed (or a range): hands over the bytes if `ok`.
    fn finish_read(&mut self, i: usize, ok: bool, events: &mut Vec<Event<T>>) {
        let mut op = self.release(i);
        let Some(data) = op.data.take() else {
            // Its failure was already reported.
            return;
        };
        let Kind::Read { range, skip, .. } = op.kind else {
            unreachable!("finish_read ends only reads")
        };
        let result = if ok {
            let len = range.map_or(op.done, |r| r.len);
            Ok(Input {
                buf: op.buf,
                start: skip,
                len,
            })
        } else {
            Err(RunError::Cancelled)
        };
        events.push(Event::Read {
            data,
            started: op.started,
            result,
        });
    }

    /// Removes an ended operation, returning its slot.
    fn release(&mut self, i: usize) -> Op<T> {
        let op = self.ops.remove(i);
        if let Some(s) = op.slot {
            self.free_slots.push(s);
        }
        self.in_flight -= 1;
        op
    }

    /// All CQEs of a read chain are in: settle it, or go on unlinked.
    fn read_chain_done(&mut self, i: usize, events: &mut Vec<Event<T>>) {
        let direct = self.setup.options.direct;
        let stopping = self.stopping;
        let op = self.ops.get_mut(i);
        op.file = File::None;
        let r = op.chain_res;
        let Kind::Read { max, .. } = op.kind else {
            unreachable!(
                "read_chain_done gets only reads' chains (complete dispatches on the kind)"
            )
        };
        if r[0] < 0 {
            let e = std::io::Error::from_raw_os_error(-r[0]);
            let Kind::Read { path, .. } = &op.kind else {
                unreachable!(
                    "read_chain_done gets only reads' chains (complete dispatches on the kind)"
                )
            };
            let path = path_of(path);
            let msg = self.open_failure(&path, &e);
            return self.read_failed(i, msg, events);
        }
        for &res in &r[1..if direct { 2 } else { 3 }] {
            if res == -libc::EAGAIN && !stopping {
                // The chain closed the file: a regular file is read again, from what
                // the first read brought, unlinked and without O_NONBLOCK.
                op.done = r[1].max(0) as usize;
                let Kind::Read { limit, .. } = &mut op.kind else {
                    unreachable!(
                        "read_chain_done gets only reads' chains (complete dispatches on the kind)"
                    )
                };
                *limit = if direct { align_up(max + 1) } else { max + 1 };
                op.phase = Phase::Open;
                return self.would_block(i, events);
            }
            if res < 0 {
                let e = std::io::Error::from_raw_os_error(-res);
                return self.read_failed(i, io_detail(&e), events);
            }
        }
        let n = r[1] as usize;
        op.done = n;
        if stopping {
            return self.finish_read(i, false, events);
        }
        let settled = if direct {
            // A read ending mid-block (or at 0) hit the end; one ending on a block
            // boundary below the request may be short.
            n > max || n % ALIGN != 0 || n == 0
        } else {
            // The probe read returned 0: the file ends at n. It returned a byte: the
            // file is larger than the largest valid input, or the first read was short.
            r[2] == 0 || n == max
        };
        if !settled {
            // Short: reopen and read on from `n`, unlinked.
            let Kind::Read { limit, .. } = &mut op.kind else {
                unreachable!(
                    "read_chain_done gets only reads' chains (complete dispatches on the kind)"
                )
            };
            *limit = if direct { align_up(max + 1) } else { max + 1 };
            op.phase = Phase::Open;
            return self.submit_phase(i);
        }
        if n > max || (!direct && r[2] > 0) {
            let msg = self
                .not_regular(i)
                .unwrap_or_else(|| format!("larger than any valid input ({max} bytes at most)"));
            return self.read_failed(i, msg, events);
        }
        if n == 0 {
            // A FIFO without a writer reads as empty.
            if let Some(msg) = self.not_regular(i) {
                return self.read_failed(i, msg, events);
            }
        }
        self.finish_read(i, true, events);
    }

    fn write_step(&mut self, i: usize, res: i32, events: &mut Vec<Event<T>>) {
        let stopping = self.stopping;
        let err = (res < 0).then(|| std::io::Error::from_raw_os_error(-res));
        let op = self.ops.get_mut(i);
        match op.phase {
            Phase::Open => {
                if let Some(e) = err {
                    return self.write_failed(i, Some(e), events);
                }
                op.file = Self::opened(op, res);
                op.phase = if stopping { Phase::Close } else { Phase::Data };
            }
            Phase::Data => {
                if let Some(e) = err {
                    return self.write_failed(i, Some(e), events);
                }
                op.done += res as usize;
                if op.done == op.buf.len() || stopping {
                    op.phase = Phase::Close;
                } else if res == 0 {
                    let e = std::io::Error::new(std::io::ErrorKind::WriteZero, "wrote 0 bytes");
                    return self.write_failed(i, Some(e), events);
                }
            }
            Phase::Close => {
                op.file = File::None;
                if err.is_some() || stopping || op.data.is_none() {
                    return self.write_failed(i, err, events);
                }
                op.phase = Phase::Rename;
            }
            Phase::Rename => {
                if err.is_some() {
                    return self.write_failed(i, err, events);
                }
                return self.write_done(i, events);
            }
        }
        self.submit_phase(i);
    }

    /// All CQEs of a write chain are in: settle it, or go on unlinked.
    fn write_chain_done(&mut self, i: usize, events: &mut Vec<Event<T>>) {
        let op = self.ops.get_mut(i);
        let r = op.chain_res;
        let err = |res: i32| std::io::Error::from_raw_os_error(-res);
        if r[0] < 0 {
            op.file = File::None;
            return self.write_failed(i, Some(err(r[0])), events);
        }
        if r[1] < 0 {
            // The close was cancelled: the file is still open.
            return self.write_failed(i, Some(err(r[1])), events);
        }
        let n = r[1] as usize;
        if n < op.buf.len() {
            // Short: the close and rename were cancelled; the file is still open.
            if n == 0 {
                let e = std::io::Error::new(std::io::ErrorKind::WriteZero, "wrote 0 bytes");
                return self.write_failed(i, Some(e), events);
            }
            op.done = n;
            op.phase = if self.stopping {
                Phase::Close
            } else {
                Phase::Data
            };
            return self.submit_phase(i);
        }
        op.file = File::None;
        for res in [r[2], r[3]] {
            if res < 0 {
                return self.write_failed(i, Some(err(res)), events);
            }
        }
        // Renamed into place: written, even if the run is stopping meanwhile.
        self.write_done(i, events);
    }

    fn write_done(&mut self, i: usize, events: &mut Vec<Event<T>>) {
        let mut op = self.release(i);
        if let Some(data) = op.data.take() {
            events.push(Event::Write {
                data,
                started: op.started,
                bytes: op.buf.len() as u64,
                result: Ok(()),
            });
        }
    }

    /// A write failed (`Some`) or was stopped (`None`): close its file if open,
    /// remove the temporary file, and end the operation.
    fn write_failed(&mut self, i: usize, e: Option<std::io::Error>, events: &mut Vec<Event<T>>) {
        let stopping = self.stopping;
        let op = self.ops.get_mut(i);
        let Kind::Write { tmp, dest } = &op.kind else {
            unreachable!("write_failed is called only for writes")
        };
        if let Some(data) = op.data.take() {
            let result = match e {
                Some(e) => Err(RunError::output(path_of(dest), io_detail(&e))),
                None if stopping => Err(RunError::Cancelled),
                None => Err(RunError::Internal("a write ended without a cause".into())),
            };
            events.push(Event::Write {
                data,
                started: op.started,
                bytes: 0,
                result,
            });
        }
        if !matches!(op.file, File::None) {
            // Closed through the ring first; the close's completion comes back here.
            op.phase = Phase::Close;
            return self.submit_phase(i);
        }
        // SAFETY: unlinks a NUL-terminated path; a missing file is fine.
        unsafe { libc::unlink(tmp.as_ptr()) };
        self.release(i);
    }
}

enum Next {
    Continue,
    Complete,
    Fail(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn engine(options: Options) -> Option<Engine<()>> {
        if !matches!(crate::probe(), rechunk_contract::Availability::Available) {
            assert!(
                std::env::var_os("HARNESS_REQUIRE_IO_URING").is_none(),
                "io_uring is required here but unavailable"
            );
            eprintln!("skipped: io_uring unavailable");
            return None;
        }
        Some(
            Engine::new(Setup {
                depth: 2,
                sqpoll_idle_ms: None,
                iowq_max_workers: None,
                options,
                buffers: 2,
                max_input: 1 << 16,
            })
            .unwrap(),
        )
    }

    /// Reads the whole file at `path` (at most `max` bytes valid) through `e`.
    fn read_whole(e: &mut Engine<()>, path: &Path, max: usize) -> Result<Vec<u8>, RunError> {
        e.read(
            CString::new(path.as_os_str().as_bytes()).unwrap(),
            None,
            max,
            (),
        );
        let mut events = Vec::new();
        while events.is_empty() {
            e.wait().unwrap();
            e.reap(&mut events);
        }
        while e.in_flight() > 0 {
            // A failed read reports before its close completes.
            e.wait().unwrap();
            e.reap(&mut events);
        }
        match events.pop() {
            Some(Event::Read { result, .. }) => result.map(|b| b.to_vec()),
            _ => unreachable!("one read, one event"),
        }
    }

    fn option_sets() -> Vec<Options> {
        let o = |fixed_files, fixed_buffers, direct, linked| Options {
            fixed_files,
            fixed_buffers,
            direct,
            linked,
        };
        vec![
            o(false, false, false, false),
            o(true, false, false, false),
            o(false, true, false, false),
            o(false, false, true, false),
            o(true, false, false, true),
            o(true, true, true, true),
        ]
    }

    fn detail(r: Result<Vec<u8>, RunError>, path: &Path) -> String {
        match r {
            Err(RunError::Input { path: p, detail }) if p == path => detail,
            other => panic!(
                "expected an input error naming {}: {other:?}",
                path.display()
            ),
        }
    }

    fn mkfifo(path: &Path) {
        let c = CString::new(path.as_os_str().as_bytes()).unwrap();
        // SAFETY: a NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
    }

    /// A FIFO without a writer: the open returns at once (O_NONBLOCK; under
    /// O_DIRECT it fails) and the read sees an empty file, which the engine
    /// recognises; a symlink to /dev/zero runs past the bound. Each is named with
    /// what it is, under every option.
    #[test]
    fn a_fifo_and_dev_zero_are_refused_as_not_regular_files() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        mkfifo(&fifo);
        let zero = dir.path().join("zero");
        std::os::unix::fs::symlink("/dev/zero", &zero).unwrap();
        let empty = dir.path().join("empty");
        std::fs::write(&empty, b"").unwrap();
        for o in option_sets() {
            let Some(mut e) = engine(o) else { return };
            let d = detail(read_whole(&mut e, &fifo, 100), &fifo);
            assert_eq!(d, "not a regular file (a FIFO)", "{o:?}");
            let d = detail(read_whole(&mut e, &zero, 100), &zero);
            assert_eq!(d, "not a regular file (a character device)", "{o:?}");
            // An empty regular file is still read (the workload judges it).
            assert_eq!(read_whole(&mut e, &empty, 100).unwrap(), b"", "{o:?}");
            for path in [&fifo, &zero] {
                let c = CString::new(path.as_os_str().as_bytes()).unwrap();
                let d = match e.open_container(&c) {
                    Err(RunError::Input { detail, .. }) => detail,
                    other => panic!("{o:?}: {other:?}"),
                };
                assert!(d.starts_with("not a regular file ("), "{o:?}: {d}");
            }
        }
    }

    /// A regular file whose non-blocking read io_uring refuses with EAGAIN (procfs
    /// has no FMODE_NOWAIT on some kernels) is read on without O_NONBLOCK; where
    /// the kernel retries by itself, it simply reads.
    #[test]
    fn a_regular_file_reads_whole_whatever_its_filesystem_does_with_o_nonblock() {
        let path = Path::new("/proc/self/stat");
        for o in option_sets().into_iter().filter(|o| !o.direct) {
            let Some(mut e) = engine(o) else { return };
            let bytes =
                read_whole(&mut e, path, 1 << 15).unwrap_or_else(|err| panic!("{o:?}: {err}"));
            assert!(bytes.ends_with(b"\n"), "{o:?}: {bytes:?}");
            eprintln!(
                "{o:?}: /proc/self/stat read, O_NONBLOCK {}",
                if e.nonblocking_reads {
                    "kept"
                } else {
                    "dropped after EAGAIN"
                }
            );
        }
    }
}
