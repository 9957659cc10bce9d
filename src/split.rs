//! One job split across machines: `harness run --shard I/N` runs shard I of N, a
//! deterministic, disjoint part of the job, and `harness merge` puts the shards'
//! results together (see [`crate::merge`]).
//!
//! ("Shard" here is a part of the job, one machine's share; the sharded Zarr
//! layout's shards are objects of the output. The two meet only in one rule: a
//! job shard never writes part of a Zarr shard another job shard writes.)
//!
//! The job is cut into units, each one row of output objects of one group: one
//! variable in the chunked layout, one block of `kv` variables in the sharded one
//! (every object of the row is written from exactly these inputs). The units, in
//! order (group, then row), are dealt out as N contiguous runs balanced by input
//! count, so two shards never write the same object, and each shard's part of a
//! group is one contiguous run of its inputs (whole variables). Shard 0 writes
//! `zarr.json`, before its chunks.

use std::ops::Range;

use anyhow::{bail, Context};
use rechunk_contract::job::Group;
use rechunk_contract::nwp::workload::NwpWorkload;
use rechunk_contract::nwp::zarr::ArrayLayout;
use serde::{Deserialize, Serialize};

/// The most shards a job is split into (far more than a run has units to deal).
pub const MAX_SHARDS: u32 = 100_000;

/// Checks a job id (`--job`): what every shard of one job shares and no other job
/// uses; it names the job's barrier and is recorded in each shard's results.
pub fn check_job_id(id: &str) -> Result<(), String> {
    let ok = !id.is_empty()
        && id.len() <= 128
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        && !id.starts_with('.');
    match ok {
        true => Ok(()),
        false => Err(format!(
            "job id `{id}`: 1 to 128 of A-Z a-z 0-9 . _ - (not starting with a dot)"
        )),
    }
}

/// Shard `index` (from 0) of `count`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardId {
    /// From 0.
    pub index: u32,
    /// How many shards the job is split into.
    pub count: u32,
}

impl std::fmt::Display for ShardId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl std::str::FromStr for ShardId {
    type Err = String;

    /// `I/N`, 0 ≤ I < N.
    fn from_str(s: &str) -> Result<Self, String> {
        let (i, n) = s
            .split_once('/')
            .ok_or_else(|| format!("`{s}` is not I/N (shard I, from 0, of N)"))?;
        let parse = |t: &str, what: &str| {
            t.trim()
                .parse::<u32>()
                .map_err(|_| format!("`{s}`: {what} `{t}` is not a whole number"))
        };
        ShardId::new(parse(i, "the index")?, parse(n, "the count")?)
    }
}

impl ShardId {
    /// Shard `index` of `count`, checked.
    pub fn new(index: u32, count: u32) -> Result<ShardId, String> {
        if count == 0 {
            return Err("the shard count must be at least 1".into());
        }
        if count > MAX_SHARDS {
            return Err(format!("{count} shards: at most {MAX_SHARDS}"));
        }
        if index >= count {
            return Err(format!(
                "shard {index} of {count} does not exist: shards are numbered from 0 to {}",
                count - 1
            ));
        }
        Ok(ShardId { index, count })
    }

    /// The folder of this shard's results: `shard-I-of-N`.
    pub fn folder(&self) -> String {
        format!("shard-{}-of-{}", self.index, self.count)
    }

    /// Whether this shard writes the array's metadata (`zarr.json`).
    pub fn writes_metadata(&self) -> bool {
        self.index == 0
    }
}

/// The environment variables a scheduler sets for one task of an array job.
pub const ENV_K8S_INDEX: &str = "JOB_COMPLETION_INDEX";
/// Set by the Kubernetes job spec to its `completions`.
pub const ENV_SHARDS: &str = "HARNESS_SHARDS";
/// Slurm's array task id, count, smallest id and step.
pub const ENV_SLURM: [&str; 4] = [
    "SLURM_ARRAY_TASK_ID",
    "SLURM_ARRAY_TASK_COUNT",
    "SLURM_ARRAY_TASK_MIN",
    "SLURM_ARRAY_TASK_STEP",
];

/// The shard a scheduler's environment names, if any: a Kubernetes Indexed Job's
/// `JOB_COMPLETION_INDEX` of `HARNESS_SHARDS`, or a Slurm array task's
/// (`SLURM_ARRAY_TASK_ID` − `SLURM_ARRAY_TASK_MIN`) / `SLURM_ARRAY_TASK_STEP` of
/// `SLURM_ARRAY_TASK_COUNT`. `get` reads a variable (the process environment, or a
/// map in tests). Half a setting (an index without a count) is an error, never a
/// guess.
pub fn from_env(get: &dyn Fn(&str) -> Option<String>) -> anyhow::Result<Option<ShardId>> {
    let num = |name: &str| -> anyhow::Result<Option<u32>> {
        match get(name) {
            None => Ok(None),
            Some(v) if v.trim().is_empty() => Ok(None),
            Some(v) => v
                .trim()
                .parse::<u32>()
                .map(Some)
                .with_context(|| format!("{name}={v} is not a whole number")),
        }
    };
    if let Some(index) = num(ENV_K8S_INDEX)? {
        let Some(count) = num(ENV_SHARDS)? else {
            bail!(
                "{ENV_K8S_INDEX}={index} is set (a Kubernetes Indexed Job) but {ENV_SHARDS} is \
                 not: set it to the job's completions"
            );
        };
        return ShardId::new(index, count)
            .map(Some)
            .map_err(|e| anyhow::anyhow!("{ENV_K8S_INDEX} and {ENV_SHARDS}: {e}"));
    }
    let [id, count, min, step] = ENV_SLURM;
    if let Some(task) = num(id)? {
        let Some(n) = num(count)? else {
            bail!("{id}={task} is set but {count} is not (a Slurm array task has both)");
        };
        let first = num(min)?.unwrap_or(0);
        let stride = num(step)?.unwrap_or(1).max(1);
        if task < first || (task - first) % stride != 0 {
            bail!("{id}={task} is not in the array {first}, {first}+{stride}, … of {n} tasks");
        }
        return ShardId::new((task - first) / stride, n)
            .map(Some)
            .map_err(|e| anyhow::anyhow!("{id}, {min}, {step} and {count}: {e}"));
    }
    if let Some(n) = num(ENV_SHARDS)? {
        if n > 1 {
            bail!("{ENV_SHARDS}={n} is set but no index is ({ENV_K8S_INDEX}, or --shard I/{n})");
        }
    }
    Ok(None)
}

/// One unit of the split: a row of output objects of one group.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unit {
    /// The group's index.
    pub group: u32,
    /// The row of objects along the variables (a variable, or a block of them).
    pub row: u32,
    /// The variables whose inputs write it.
    pub variables: Range<u32>,
    /// Its inputs.
    pub inputs: u64,
}

/// Every unit of the array's job, in order: per group, per row of objects. (Every
/// group holds every variable's steps: a complete cube, as the workload checks.)
pub fn units(layout: &ArrayLayout) -> Vec<Unit> {
    let d = &layout.dataset;
    let (rows, _, _) = layout.object_grid();
    let per_row = layout.shard().map_or(1, |s| s.kv);
    (0..d.groups)
        .flat_map(|g| {
            (0..rows).map(move |row| {
                let variables = row * per_row..((row + 1) * per_row).min(d.variables);
                Unit {
                    group: g,
                    row,
                    inputs: variables.len() as u64 * d.steps as u64,
                    variables,
                }
            })
        })
        .collect()
}

/// Cuts `weights` (in order) into `count` contiguous runs of about equal sum: run
/// k ends at the first unit where the running sum reaches (k + 1) / count of the
/// total. Each run's sum is within one unit's weight of the mean; runs may be
/// empty when there are fewer units than shards.
pub fn assign(weights: &[u64], count: u32) -> Vec<Range<usize>> {
    let total: u128 = weights.iter().map(|&w| w as u128).sum();
    let n = count.max(1) as u128;
    let mut runs = Vec::with_capacity(count as usize);
    let (mut start, mut sum, mut i) = (0usize, 0u128, 0usize);
    for k in 1..=n {
        // The first unit whose running sum reaches k/n of the total (rounded to
        // the nearer unit boundary).
        let target = total * k / n;
        while i < weights.len() {
            let w = weights[i] as u128;
            // Taking unit i brings the sum closer to the target than leaving it.
            if sum + w <= target || (sum + w - target) < (target - sum.min(target)) {
                sum += w;
                i += 1;
            } else {
                break;
            }
        }
        if k == n {
            i = weights.len();
        }
        runs.push(start..i);
        start = i;
    }
    runs
}

/// One shard's part of a job.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Part {
    /// Which shard.
    pub shard: ShardId,
    /// Its units, in order.
    pub units: Vec<Unit>,
    /// Its inputs.
    pub inputs: u64,
    /// The job's inputs, all shards together.
    pub job_inputs: u64,
}

impl Part {
    /// Shard `shard`'s part of the job that writes the array `layout` describes.
    pub fn of(shard: ShardId, layout: &ArrayLayout) -> Part {
        let all = units(layout);
        let weights: Vec<u64> = all.iter().map(|u| u.inputs).collect();
        let run = assign(&weights, shard.count)[shard.index as usize].clone();
        let units = all[run].to_vec();
        Part {
            shard,
            inputs: units.iter().map(|u| u.inputs).sum(),
            job_inputs: weights.iter().sum(),
            units,
        }
    }

    /// The groups of the whole job cut down to this part: in each group, the
    /// contiguous inputs of the part's variables, with `first_item` saying where
    /// they start; groups the part has nothing of are left out.
    pub fn restrict(&self, groups: Vec<Group>, steps: u32) -> anyhow::Result<Vec<Group>> {
        let steps = steps as usize;
        let mut out = Vec::new();
        for mut g in groups {
            let mut mine = self.units.iter().filter(|u| u.group == g.index);
            let Some(first) = mine.next() else { continue };
            let last = mine.next_back().unwrap_or(first);
            let items = first.variables.start as usize * steps..last.variables.end as usize * steps;
            if g.first_item != 0 || items.end > g.inputs.len() {
                bail!(
                    "group {} has {} inputs; shard {} needs its inputs {}..{}",
                    g.index,
                    g.inputs.len(),
                    self.shard,
                    items.start,
                    items.end
                );
            }
            g.inputs = g.inputs.drain(items.clone()).collect();
            g.first_item = items.start;
            out.push(g);
        }
        Ok(out)
    }

    /// The units as (group, row) pairs, for verification.
    pub fn rows(&self) -> std::collections::HashSet<(u32, u32)> {
        self.units.iter().map(|u| (u.group, u.row)).collect()
    }

    /// Every object key this shard writes: `zarr.json` (shard 0) and the objects
    /// of its units.
    pub fn keys(&self, layout: &ArrayLayout) -> Vec<String> {
        let (_, ny, nx) = layout.object_grid();
        let mut keys: Vec<String> = Vec::new();
        if self.shard.writes_metadata() {
            keys.push("zarr.json".into());
        }
        for u in &self.units {
            for iy in 0..ny {
                for ix in 0..nx {
                    keys.push(ArrayLayout::chunk_key(u.group, u.row, iy, ix));
                }
            }
        }
        keys
    }

    /// The directories (relative to the output root) that hold only this shard's
    /// objects: `c/<group>/<row>` per unit. Temporary files a killed run of this
    /// shard left are in them.
    pub fn own_dirs(&self) -> Vec<String> {
        self.units
            .iter()
            .map(|u| format!("c/{}/{}", u.group, u.row))
            .collect()
    }

    /// A short description: `shard 1/4: 24 of 96 units (groups 0–1), 576 of 2304 inputs`.
    pub fn describe(&self) -> String {
        let groups = match (self.units.first(), self.units.last()) {
            (Some(a), Some(b)) if a.group == b.group => format!(" (group {})", a.group),
            (Some(a), Some(b)) => format!(" (groups {}–{})", a.group, b.group),
            _ => String::new(),
        };
        format!(
            "shard {}: {} units{groups}, {} of {} inputs",
            self.shard,
            self.units.len(),
            self.inputs,
            self.job_inputs
        )
    }
}

/// The workload of a shard: without `zarr.json` but in shard 0.
pub fn workload(w: NwpWorkload, shard: Option<ShardId>) -> NwpWorkload {
    match shard {
        Some(s) if !s.writes_metadata() => w.without_metadata(),
        _ => w,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn shard_ids_parse_and_say_what_is_wrong() {
        assert_eq!("2/4".parse::<ShardId>(), Ok(ShardId { index: 2, count: 4 }));
        assert_eq!(" 0 / 1 ".parse::<ShardId>().unwrap().to_string(), "0/1");
        assert!("4/4"
            .parse::<ShardId>()
            .unwrap_err()
            .contains("from 0 to 3"));
        assert!("1/0".parse::<ShardId>().unwrap_err().contains("at least 1"));
        assert!("3".parse::<ShardId>().unwrap_err().contains("I/N"));
        assert!("a/4".parse::<ShardId>().unwrap_err().contains("index `a`"));
    }

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let m: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k: &str| m.get(k).cloned()
    }

    #[test]
    fn schedulers_environments_name_the_shard() {
        let k8s = env(&[("JOB_COMPLETION_INDEX", "3"), ("HARNESS_SHARDS", "4")]);
        assert_eq!(
            from_env(&k8s).unwrap(),
            Some(ShardId { index: 3, count: 4 })
        );
        let slurm = env(&[
            ("SLURM_ARRAY_TASK_ID", "5"),
            ("SLURM_ARRAY_TASK_MIN", "4"),
            ("SLURM_ARRAY_TASK_COUNT", "4"),
        ]);
        assert_eq!(
            from_env(&slurm).unwrap(),
            Some(ShardId { index: 1, count: 4 })
        );
        let stepped = env(&[
            ("SLURM_ARRAY_TASK_ID", "6"),
            ("SLURM_ARRAY_TASK_STEP", "2"),
            ("SLURM_ARRAY_TASK_COUNT", "4"),
        ]);
        assert_eq!(
            from_env(&stepped).unwrap(),
            Some(ShardId { index: 3, count: 4 })
        );
        assert_eq!(from_env(&env(&[])).unwrap(), None);
        assert_eq!(from_env(&env(&[("HARNESS_SHARDS", "1")])).unwrap(), None);
    }

    #[test]
    fn half_a_setting_is_an_error() {
        for (pairs, says) in [
            (vec![("JOB_COMPLETION_INDEX", "1")], "HARNESS_SHARDS is not"),
            (
                vec![("JOB_COMPLETION_INDEX", "4"), ("HARNESS_SHARDS", "4")],
                "from 0 to 3",
            ),
            (vec![("JOB_COMPLETION_INDEX", "x")], "not a whole number"),
            (
                vec![("SLURM_ARRAY_TASK_ID", "1")],
                "SLURM_ARRAY_TASK_COUNT is not",
            ),
            (
                vec![
                    ("SLURM_ARRAY_TASK_ID", "1"),
                    ("SLURM_ARRAY_TASK_MIN", "2"),
                    ("SLURM_ARRAY_TASK_COUNT", "2"),
                ],
                "is not in the array",
            ),
            (vec![("HARNESS_SHARDS", "4")], "no index is"),
        ] {
            let e = from_env(&env(&pairs)).unwrap_err().to_string();
            assert!(e.contains(says), "{pairs:?}: {e}");
        }
    }

    #[test]
    fn runs_cover_every_unit_once_and_are_balanced() {
        let mut seed = 7u64;
        for case in 0..500 {
            seed = rechunk_contract::nwp::values::splitmix64(seed);
            let len = (seed % 40) as usize;
            let weights: Vec<u64> = (0..len)
                .map(|i| 1 + rechunk_contract::nwp::values::splitmix64(seed + i as u64) % 50)
                .collect();
            let count = 1 + (seed >> 20) as u32 % 9;
            let runs = assign(&weights, count);
            assert_eq!(runs.len(), count as usize, "case {case}");
            // Contiguous, in order, covering 0..len.
            let mut next = 0;
            for r in &runs {
                assert_eq!(r.start, next, "case {case}: {runs:?}");
                assert!(r.end >= r.start);
                next = r.end;
            }
            assert_eq!(next, len, "case {case}");
            // Each run within the largest weight of the mean (so, balanced).
            let total: u64 = weights.iter().sum();
            let max = weights.iter().copied().max().unwrap_or(0) as f64;
            let mean = total as f64 / count as f64;
            for r in &runs {
                let sum: u64 = weights[r.clone()].iter().sum();
                assert!(
                    (sum as f64 - mean).abs() <= max,
                    "case {case}: run {r:?} sums {sum}, mean {mean}, largest unit {max}"
                );
            }
            // The same input, the same runs.
            assert_eq!(assign(&weights, count), runs);
        }
    }

    #[test]
    fn equal_units_split_evenly() {
        let runs = assign(&[24; 48], 4);
        assert_eq!(runs, vec![0..12, 12..24, 24..36, 36..48]);
        let runs = assign(&[10; 3], 4);
        assert_eq!(runs.iter().map(|r| r.len()).sum::<usize>(), 3);
    }
}
