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

/// The whole machine's CPU time so far, from the `cpu` line of `/proc/stat`, in
/// seconds: what [`MachineLoad`] is the difference of.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CpuClock {
    /// user + nice + system + irq + softirq + steal, over every core (guest time
    /// is already inside user).
    pub busy: f64,
    /// Time the hypervisor ran something else while this machine's vCPUs wanted to
    /// run.
    pub steal: f64,
    /// Idle time while some task waited for block IO (the kernel's `iowait`).
    pub iowait: f64,
}

/// Parses the `cpu` line of `/proc/stat` (its values in ticks of `tick` seconds).
pub fn parse_cpu_clock(stat: &str, tick: f64) -> Option<CpuClock> {
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let v: Vec<f64> = line
        .split_whitespace()
        .skip(1)
        .map(|x| x.parse::<f64>().ok())
        .collect::<Option<_>>()?;
    // user nice system idle iowait irq softirq steal [guest guest_nice]
    let at = |i: usize| v.get(i).copied().unwrap_or(0.0);
    (v.len() >= 4).then(|| CpuClock {
        busy: (at(0) + at(1) + at(2) + at(5) + at(6) + at(7)) * tick,
        steal: at(7) * tick,
        iowait: at(4) * tick,
    })
}

/// Now; `None` where `/proc/stat` cannot be read.
pub fn cpu_clock() -> Option<CpuClock> {
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    let tick = if hz > 0 { 1.0 / hz as f64 } else { 0.01 };
    parse_cpu_clock(&fs::read_to_string("/proc/stat").ok()?, tick)
}

/// How busy the rest of the machine was while a backend ran: the noise a
/// measurement was taken in. Both are averages over the run, in cores.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct MachineLoad {
    /// CPU time of every other process (and the kernel's work for them) per second
    /// of the run: the machine's busy time less the run's own CPU time. 1.0 is one
    /// core kept busy by something else.
    pub other_cores: f64,
    /// Steal time per second of the run: cores' worth of time the hypervisor gave
    /// to other guests.
    pub steal_cores: f64,
    /// The kernel's `iowait` per second of the run: cores' worth of idle time
    /// during which some task waited for block IO (a cold read, a write-back
    /// flush), whoever's task it was. Idle, not busy: time a design could have
    /// filled with CPU work had it had any. Not in results written before it was
    /// recorded (absent there).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iowait_cores: Option<f64>,
}

impl MachineLoad {
    /// The shortest run whose load is recorded: `/proc/stat` ticks every 10 ms on
    /// each core, so a reading is uncertain by about two ticks per core, 0.16 cores
    /// on two cores over 0.25 s, and far more over a run of a few milliseconds.
    pub const MIN_WALL_SECONDS: f64 = 0.25;

    /// The load between two clock readings `wall` seconds apart, during which this
    /// process itself used `own_cpu` seconds; `None` for a run shorter than
    /// [`Self::MIN_WALL_SECONDS`]. Clamped at zero: the clock ticks coarsely and a
    /// run can read a little less than its own use.
    pub fn between(before: CpuClock, after: CpuClock, wall: f64, own_cpu: f64) -> Option<Self> {
        (wall >= Self::MIN_WALL_SECONDS).then(|| MachineLoad {
            other_cores: ((after.busy - before.busy - own_cpu) / wall).max(0.0),
            steal_cores: ((after.steal - before.steal) / wall).max(0.0),
            iowait_cores: Some(((after.iowait - before.iowait) / wall).max(0.0)),
        })
    }
}

#[cfg(test)]
mod load_tests {
    use super::*;

    #[test]
    fn the_rest_of_the_machine_is_its_busy_time_less_our_own() {
        let before = "cpu  100 0 50 1000 5 0 0 2 0 0\ncpu0 1 2 3\n";
        // One second later on a 2-core machine: 150 ticks busy (of which 4 steal).
        let after = "cpu  200 0 94 1050 5 2 0 6 0 0\n";
        let b = parse_cpu_clock(before, 0.01).unwrap();
        let a = parse_cpu_clock(after, 0.01).unwrap();
        assert!((a.busy - b.busy - 1.5).abs() < 1e-9);
        // This process used 0.5 s of it: one core's worth was someone else's.
        let load = MachineLoad::between(b, a, 1.0, 0.5).unwrap();
        assert!((load.other_cores - 1.0).abs() < 1e-9, "{load:?}");
        assert!((load.steal_cores - 0.04).abs() < 1e-9, "{load:?}");
        assert_eq!(load.iowait_cores, Some(0.0), "{load:?}");
        // 30 ticks of iowait in 0.5 s: 0.6 cores idle waiting for IO.
        let waited = parse_cpu_clock("cpu  200 0 94 1050 35 2 0 6 0 0\n", 0.01).unwrap();
        let load = MachineLoad::between(b, waited, 0.5, 0.0).unwrap();
        assert!((load.iowait_cores.unwrap() - 0.6).abs() < 1e-9, "{load:?}");
        // More own time than the coarse clock saw: zero, not negative.
        assert_eq!(
            MachineLoad::between(b, a, 1.0, 2.0).unwrap().other_cores,
            0.0
        );
        assert!(parse_cpu_clock("intr 1 2\n", 0.01).is_none());
        assert!(MachineLoad::between(b, a, 0.0, 0.0).is_none());
        // A run of 10 ms: one tick is a core's worth; nothing is recorded.
        assert!(MachineLoad::between(b, a, 0.01, 0.0).is_none());
    }
}
