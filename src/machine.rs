//! Facts about the machine a run happened on, recorded in every results file.

use std::fs;
use std::path::Path;

use serde::{Deserialize, Serialize};

/// The machine a run happened on, as probed by [`probe`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Machine {
    /// From `/proc/sys/kernel/hostname`.
    pub hostname: String,
    /// `uname -r`.
    pub kernel: String,
    /// The first `model name` of `/proc/cpuinfo`, or `unknown`.
    pub cpu_model: String,
    /// Cores this process may use.
    pub cores: usize,
    /// Physical memory (`MemTotal` of `/proc/meminfo`), in bytes; 0 if unknown.
    pub memory_bytes: u64,
    /// Filesystem type of the data directory (from /proc/mounts).
    pub data_filesystem: String,
    /// Whether io_uring_setup succeeded here, or why not.
    pub io_uring: IoUringStatus,
    /// Whether this process may drop the page cache (root).
    pub root: bool,
}

/// Whether io_uring can be set up here, found by trying ([`io_uring_status`]).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct IoUringStatus {
    /// `io_uring_setup` created a ring.
    pub available: bool,
    /// What happened, in words: that it works, or why not (ENOSYS, EPERM or
    /// another error), with the value of `kernel.io_uring_disabled` where it matters.
    pub detail: String,
}

/// Cores this process may use (`available_parallelism`), at least 1.
pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// The machine's memory (`MemTotal`), 0 if unknown.
pub fn probe_memory() -> u64 {
    fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("MemTotal:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// Probes the machine; `data_dir` is the directory whose filesystem type is recorded.
pub fn probe(data_dir: &Path) -> Machine {
    let read = |p: &str| fs::read_to_string(p).unwrap_or_default();
    let cpu_model = read("/proc/cpuinfo")
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .map_or_else(|| "unknown".to_string(), |s| s.trim().to_string());
    let memory_bytes = probe_memory();
    Machine {
        hostname: read("/proc/sys/kernel/hostname").trim().to_string(),
        kernel: read("/proc/sys/kernel/osrelease").trim().to_string(),
        cpu_model,
        cores: cores(),
        memory_bytes,
        data_filesystem: filesystem_of(data_dir),
        io_uring: io_uring_status(),
        // SAFETY: geteuid has no preconditions.
        root: unsafe { libc::geteuid() } == 0,
    }
}

/// The type of the mount that holds `path` (the longest matching mount point).
fn filesystem_of(path: &Path) -> String {
    let path = fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    let mounts = fs::read_to_string("/proc/mounts").unwrap_or_default();
    mounts
        .lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let (_dev, mnt, kind) = (f.next()?, f.next()?, f.next()?);
            path.starts_with(mnt).then(|| (mnt.len(), kind.to_string()))
        })
        .max_by_key(|(len, _)| *len)
        .map_or_else(|| "unknown".to_string(), |(_, kind)| kind)
}

/// Tries to create a one-entry ring with the raw syscall: the truthful answer,
/// whatever sysctl, seccomp or the kernel version says.
pub fn io_uring_status() -> IoUringStatus {
    let disabled = fs::read_to_string("/proc/sys/kernel/io_uring_disabled")
        .ok()
        .map(|s| s.trim().to_string());
    // struct io_uring_params is 120 bytes; zeroed is a valid request.
    let mut params = [0u8; 120];
    // SAFETY: io_uring_setup reads and writes `params`, which is large enough.
    let fd = unsafe { libc::syscall(libc::SYS_io_uring_setup, 1u32, params.as_mut_ptr()) };
    if fd >= 0 {
        // SAFETY: fd is a descriptor we own.
        unsafe { libc::close(fd as i32) };
        return IoUringStatus {
            available: true,
            detail: format!(
                "io_uring_setup works (kernel.io_uring_disabled = {})",
                disabled.as_deref().unwrap_or("absent")
            ),
        };
    }
    let err = std::io::Error::last_os_error();
    let why = match err.raw_os_error() {
        Some(libc::ENOSYS) => "the kernel has no io_uring (ENOSYS)".to_string(),
        Some(libc::EPERM) => format!(
            "io_uring_setup is not permitted (EPERM: seccomp or kernel.io_uring_disabled = {})",
            disabled.as_deref().unwrap_or("absent")
        ),
        _ => format!("io_uring_setup failed: {err}"),
    };
    IoUringStatus {
        available: false,
        detail: why,
    }
}

/// The commit of the harness's source tree, if it is a git checkout.
pub fn git_commit() -> (String, bool) {
    let run = |args: &[&str]| {
        std::process::Command::new("git")
            .args(args)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    let commit = run(&["rev-parse", "HEAD"]).unwrap_or_else(|| "unknown".to_string());
    let dirty =
        run(&["status", "--porcelain", "--untracked-files=no"]).is_some_and(|s| !s.is_empty());
    (commit, dirty)
}
