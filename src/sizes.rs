//! Sizes checked before anything is generated or allocated: every product of
//! scenario numbers is computed without overflow, and a scenario whose dataset,
//! job description or single item cannot fit in memory, on disk or in a backend's
//! byte budget is refused with the numbers.

use std::path::Path;

use anyhow::bail;
use rechunk_contract::nwp::workload::NwpWorkload;
use rechunk_contract::nwp::zarr::{ArrayLayout, OutputParams};
use rechunk_contract::nwp::DatasetParams;

use crate::scenario::{Scenario, WorkloadKind};

/// Points in one field at most: 2^28, a 1 GiB decoded field (the formats count
/// points in 32 bits, and a field is held whole in memory several times over).
pub const MAX_FIELD_POINTS: u64 = 1 << 28;
/// Inputs of one dataset at most (2^32): the job lists every one.
pub const MAX_INPUTS: u64 = 1 << 32;
/// Memory the job description takes per input: its relative path and byte range
/// (measured: about 100 bytes with the allocator's share).
pub const JOB_BYTES_PER_INPUT: u64 = 128;
/// Rayon or worker threads per backend at most.
pub const MAX_CPU_THREADS: u64 = 1024;
/// IO operations in flight per backend at most.
pub const MAX_IO_IN_FLIGHT: u64 = 1 << 16;
/// Bytes one encoded shard may take at most (its inner chunks at zstd's bound and
/// its index): a shard is held whole in memory, written in one object, and read
/// whole by verification.
pub const MAX_SHARD_BYTES: u64 = 1 << 30;
/// Repetitions (and warm-up rounds) at most.
pub const MAX_REPETITIONS: u64 = 10_000;

/// Whether a field of ny × nx points is allowed; why not otherwise.
pub fn field_problem(ny: u32, nx: u32) -> Option<String> {
    let points = ny as u64 * nx as u64;
    (points > MAX_FIELD_POINTS).then(|| {
        format!(
            "ny × nx = {ny} × {nx} = {points} points, {} decoded per field: at most \
             {MAX_FIELD_POINTS} points (1 GiB) per field",
            bytes(points * 4)
        )
    })
}

/// Whether groups × variables × steps inputs are allowed; why not otherwise.
pub fn inputs_problem(groups: u32, variables: u32, steps: u32) -> Option<String> {
    let n = groups as u128 * variables as u128 * steps as u128;
    (n > MAX_INPUTS as u128).then(|| {
        format!(
            "groups × variables × steps = {groups} × {variables} × {steps} = {n} inputs: \
             at most {MAX_INPUTS}"
        )
    })
}

/// Whether a sharded layout's shards fit [`MAX_SHARD_BYTES`]; why not otherwise.
pub fn shard_problem(layout: &ArrayLayout) -> Option<String> {
    let s = layout.shard()?;
    let max = layout.max_shard_bytes();
    (max > MAX_SHARD_BYTES).then(|| {
        format!(
            "a shard of {} inner chunks of {} values may take {} encoded: at most {} per \
             shard; use a smaller shard",
            s.positions(),
            layout.chunk_len(),
            bytes(max),
            bytes(MAX_SHARD_BYTES)
        )
    })
}

/// The smallest byte budget with which a backend can finish the workload.
/// Call only with a field size that passed [`field_problem`].
pub fn min_budget(params: &DatasetParams, output: OutputParams, workload: WorkloadKind) -> u64 {
    match workload {
        WorkloadKind::Rechunk => NwpWorkload::new(params.clone(), output).min_bytes_in_flight(),
        WorkloadKind::ReadOnly => params.max_input_len(),
    }
}

/// Whether `bytes_in_flight` lets the workload finish; why not otherwise.
pub fn budget_problem(
    params: &DatasetParams,
    output: OutputParams,
    workload: WorkloadKind,
    bytes_in_flight: u64,
) -> Option<String> {
    let need = min_budget(params, output, workload);
    let variables = NwpWorkload::new(params.clone(), output).variables_per_emission();
    let what = match variables {
        1 => format!("a variable: its {} steps are", params.steps),
        n => format!(
            "a shard: its {n} variables × {} steps = {} inputs are",
            params.steps,
            n as u64 * params.steps as u64
        ),
    };
    (bytes_in_flight < need).then(|| match workload {
        WorkloadKind::Rechunk => format!(
            "bytes_in_flight = {bytes_in_flight} ({}) cannot complete {what} held until \
             its chunks are written, which needs at least {need} bytes ({})",
            bytes(bytes_in_flight),
            bytes(need)
        ),
        WorkloadKind::ReadOnly => format!(
            "bytes_in_flight = {bytes_in_flight} ({}) cannot hold one input: the largest \
             valid input is {need} bytes ({})",
            bytes(bytes_in_flight),
            bytes(need)
        ),
    })
}

/// The checks that need the machine: memory for the job description and one
/// variable's working set, every backend's budget for the workload as finally
/// chosen (the command line may change it), and threads.
pub fn check_machine(s: &Scenario) -> anyhow::Result<()> {
    let p = &s.dataset.params;
    if let rechunk_contract::nwp::Format::Grib2Dir(d) = &p.format {
        // Its sizes are the files': known once the directory is scanned.
        if !d.scanned() {
            bail!(
                "{}: the directory of your files has not been scanned yet (a harness bug: \
                 this check runs on the scenario resolved by the scan)",
                s.source.display()
            );
        }
    }
    let problem =
        field_problem(p.ny, p.nx).or_else(|| inputs_problem(p.groups, p.variables, p.steps));
    if let Some(why) = problem {
        bail!("{}: {why}", s.source.display());
    }
    let memory = crate::machine::probe_memory();
    let job = p.messages() * JOB_BYTES_PER_INPUT;
    if memory > 0 && job > memory / 2 {
        bail!(
            "{}: {} inputs need about {} for the job description alone; this machine has {} \
             of memory: use fewer groups, variables or steps",
            s.source.display(),
            p.messages(),
            bytes(job),
            bytes(memory)
        );
    }
    let need = min_budget(p, s.output.params, s.workload);
    if memory > 0 && need > memory / 2 {
        let vars = NwpWorkload::new(p.clone(), s.output.params).variables_per_emission();
        let what = match vars {
            1 => "one variable needs".to_string(),
            n => format!("one shard's {n} variables need"),
        };
        bail!(
            "{}: {what} {} in memory to be rechunked ({} steps of {} × {}); this \
             machine has {}",
            s.source.display(),
            bytes(need),
            p.steps,
            p.ny,
            p.nx,
            bytes(memory)
        );
    }
    for b in &s.backends {
        if let Some(why) = budget_problem(p, s.output.params, s.workload, b.limits.bytes_in_flight)
        {
            bail!("{}: [[backend]] {}: {why}", s.source.display(), b.label);
        }
    }
    Ok(())
}

/// Free bytes on the filesystem holding `path` (or its nearest existing parent).
pub fn free_space(path: &Path) -> Option<u64> {
    let mut p = path;
    while !p.exists() {
        p = p.parent()?;
    }
    let c = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).ok()?;
    // SAFETY: statvfs fills the struct we pass for a NUL-terminated path.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return None;
    }
    Some(st.f_bavail as u64 * st.f_frsize as u64)
}

/// A byte count for people: 1.5 GiB.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut x = n as f64;
    let mut u = 0;
    while x >= 1024.0 && u + 1 < UNITS.len() {
        x /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{x:.1} {}", UNITS[u])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn huge_products_are_refused_without_overflow() {
        assert!(field_problem(1_000_000, 1_000_000)
            .unwrap()
            .contains("1000000000000 points"));
        assert!(field_problem(16384, 16384).is_none());
        let e = inputs_problem(u32::MAX, u32::MAX, u32::MAX).unwrap();
        assert!(e.contains("79228162458924105385300197375 inputs"), "{e}");
        assert!(inputs_problem(1, 146_000, 1).is_none());
        assert_eq!(bytes(3 << 30), "3.0 GiB");
    }

    #[test]
    fn the_budget_of_a_shard_spanning_variables_holds_all_of_them() {
        let p = DatasetParams {
            layout: rechunk_contract::nwp::Layout::Files,
            groups: 1,
            variables: 8,
            steps: 10,
            ny: 64,
            nx: 64,
            codec: rechunk_contract::nwp::Codec::Zstd,
            zstd_level: 1,
            noise_bits: 4,
            seed: 1,
            format: Default::default(),
        };
        let chunked = OutputParams {
            cy: 32,
            cx: 32,
            zstd_level: 1,
            shard: None,
        };
        let sharded = OutputParams {
            shard: Some([1, 4, 1, 2, 2]),
            ..chunked
        };
        let one = min_budget(&p, chunked, WorkloadKind::Rechunk);
        let four = min_budget(&p, sharded, WorkloadKind::Rechunk);
        // Four variables' steps held, not one.
        assert!(four > 3 * one, "{four} vs {one}");
        let e = budget_problem(&p, sharded, WorkloadKind::Rechunk, one).unwrap();
        assert!(
            e.contains("cannot complete a shard: its 4 variables × 10 steps = 40 inputs"),
            "{e}"
        );
        assert!(budget_problem(&p, sharded, WorkloadKind::Rechunk, four).is_none());
        // A shard too large to hold is refused.
        let big = DatasetParams {
            variables: 64,
            steps: 146,
            ny: 1024,
            nx: 1024,
            ..p
        };
        let layout = ArrayLayout::new(
            big,
            OutputParams {
                cy: 256,
                cx: 256,
                zstd_level: 1,
                shard: Some([1, 8, 1, 4, 4]),
            },
        );
        assert!(shard_problem(&layout)
            .unwrap()
            .contains("at most 1.0 GiB per shard"));
    }
}
