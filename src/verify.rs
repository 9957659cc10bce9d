//! Verification of a Zarr output against the closed form of the dataset's values.
//!
//! Every expected chunk must exist, nothing unexpected may exist (a leftover
//! temporary file counts), `zarr.json` must describe the expected array, and the
//! values of every chunk (or of a stated, seeded random sample of them) must equal
//! the closed form exactly. In the sharded layout the objects are shards: each
//! checked shard's index must be intact (its CRC-32C, every range inside the shard
//! and none overlapping another), every inner chunk inside the array present and
//! every one past it absent, and every inner chunk's values right.

use std::collections::HashSet;
use std::fs;
use std::path::Path;
use std::time::Instant;

use anyhow::Context;
use rayon::prelude::*;
use rechunk_contract::grib2::{Grib2Params, Packing, Wrap};
use rechunk_contract::gribdir::format::{DirAttributes, DirFormat};
use rechunk_contract::nwp::values::splitmix64;
use rechunk_contract::nwp::zarr::{ArrayLayout, OutputParams};
use rechunk_contract::nwp::{Codec, DatasetParams, Format, Layout};
use serde::{Deserialize, Serialize};
use stores::{S3Config, Store, StoreUrl};

use crate::safety::MARKER;

/// Problems listed per kind at most; the counts are always complete.
const MAX_LISTED: usize = 10;

/// The verdict on one output (or, for a read-only run, on what was read), with
/// the counts behind it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Verification {
    /// No problem found: the output may count.
    pub ok: bool,
    /// Chunks the array has: groups × variables × chunk rows × chunk columns (0 in
    /// a read-only run). In the sharded layout this and the other chunk counts
    /// count shards, the objects written.
    pub chunks_expected: u64,
    /// Expected chunk keys present.
    pub chunks_found: u64,
    /// Expected chunks absent.
    pub missing: u64,
    /// Objects that are neither `zarr.json`, the marker nor an expected chunk (a
    /// leftover temporary file, say); in a read-only run, entries written under the
    /// output root.
    pub unexpected: u64,
    /// Chunks whose values were decoded and compared.
    pub chunks_checked: u64,
    /// Whether `chunks_checked` is a random sample rather than all of them.
    pub sampled: bool,
    /// Checked chunks that did not decode or hold a value other than the closed
    /// form's.
    pub wrong_chunks: u64,
    /// The first problems found, in words.
    pub problems: Vec<String>,
    /// Wall time the verification took, in seconds.
    pub seconds: f64,
    /// What the values were compared with: absent for the closed form of a
    /// generated dataset; `sequential (…)` for another output (the oracle of a
    /// grib2-dir run); `structure only` for the oracle itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub against: Option<String>,
}

/// What an output's values are compared with.
#[derive(Clone, Copy)]
pub enum Expected<'a> {
    /// The closed form of a generated dataset's values.
    ClosedForm,
    /// Another output of the same array (the oracle), decoded chunk by chunk: every
    /// value must be the same bit for bit (NaN included), whatever the bytes of
    /// the compressed chunks.
    Output(&'a dyn Objects),
    /// Nothing to compare with: every object present and decodable, no value
    /// checked (the oracle's own output).
    Structure,
}

/// Verifies a read-only repetition: every input was read once with all its bytes,
/// and nothing was written under `root`.
pub fn verify_read_only(
    root: &Path,
    inputs: u64,
    input_bytes: u64,
    expected_inputs: u64,
    expected_bytes: u64,
) -> Verification {
    let start = Instant::now();
    let mut problems = Vec::new();
    if inputs != expected_inputs {
        problems.push(format!(
            "{inputs} inputs read, the dataset has {expected_inputs}"
        ));
    }
    if input_bytes != expected_bytes {
        problems.push(format!(
            "{input_bytes} bytes read, the dataset's inputs hold {expected_bytes}"
        ));
    }
    let written = fs::read_dir(root)
        .map(|d| d.flatten().filter(|e| e.file_name() != MARKER).count())
        .unwrap_or(0);
    if written > 0 {
        problems.push(format!(
            "{written} entries written under {} by a read-only run",
            root.display()
        ));
    }
    Verification {
        ok: problems.is_empty(),
        unexpected: written as u64,
        problems,
        seconds: start.elapsed().as_secs_f64(),
        ..Default::default()
    }
}

/// Where an output is read from for verification: a local directory or any store.
pub trait Objects: Sync {
    /// Every key, `/`-separated and relative to the output's root.
    fn keys(&self) -> Result<Vec<String>, String>;
    /// The whole object at `key`; the error does not name the key (the caller does).
    fn get(&self, key: &str) -> Result<Vec<u8>, String>;
}

/// An output in a local directory.
pub struct LocalDir<'a>(pub &'a Path);

impl Objects for LocalDir<'_> {
    fn keys(&self) -> Result<Vec<String>, String> {
        let mut keys = Vec::new();
        walk(self.0, self.0, &mut keys);
        Ok(keys)
    }
    fn get(&self, key: &str) -> Result<Vec<u8>, String> {
        // Only regular files, never more than any valid object: a FIFO or a device
        // planted in an output fails its check instead of hanging it.
        rechunk_contract::input::read_input(&self.0.join(key), MAX_OBJECT).map_err(|e| match e {
            rechunk_contract::RunError::Input { detail, .. } => detail,
            e => e.to_string(),
        })
    }
}

/// The largest object a local output may hold (a chunk is at most a few MiB, a
/// shard at most [`crate::sizes::MAX_SHARD_BYTES`]).
const MAX_OBJECT: u64 = if crate::sizes::MAX_SHARD_BYTES > 1 << 30 {
    crate::sizes::MAX_SHARD_BYTES
} else {
    1 << 30
};

/// An output in an object store (`s3://…`), read through object_store.
pub struct InStore {
    store: Store,
    runtime: tokio::runtime::Runtime,
}

impl InStore {
    /// Opens the store at `url` (credentials from `s3` or the environment), with a
    /// runtime of its own to drive it.
    pub fn open(url: &StoreUrl, s3: &S3Config) -> anyhow::Result<InStore> {
        let store = Store::open(url, Path::new("."), None, s3)?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?;
        Ok(InStore { store, runtime })
    }
}

impl Objects for InStore {
    fn keys(&self) -> Result<Vec<String>, String> {
        self.runtime
            .block_on(self.store.list())
            .map_err(|e| e.to_string())
    }
    fn get(&self, key: &str) -> Result<Vec<u8>, String> {
        // The caller names the key.
        self.runtime
            .block_on(self.store.fetch(key))
            .map_err(|e| e.detail())
    }
}

/// Verifies the output at `root` for `layout`. `max_chunks` = 0 checks every chunk.
pub fn verify(layout: &ArrayLayout, root: &Path, max_chunks: u64, seed: u64) -> Verification {
    verify_objects(layout, &LocalDir(root), max_chunks, seed)
}

/// Verifies an output in any store for `layout` against the closed form.
pub fn verify_objects(
    layout: &ArrayLayout,
    objects: &dyn Objects,
    max_chunks: u64,
    seed: u64,
) -> Verification {
    verify_against(layout, objects, Expected::ClosedForm, max_chunks, seed)
}

/// Verifies an output in any store for `layout`, its values against `expected`.
/// Against another output, that output's `zarr.json` must describe the same array
/// and every chunk checked must be in it too.
pub fn verify_against(
    layout: &ArrayLayout,
    objects: &dyn Objects,
    expected: Expected,
    max_chunks: u64,
    seed: u64,
) -> Verification {
    verify_part(layout, objects, expected, None, max_chunks, seed)
}

/// The part of an output one shard of a split job wrote (see [`crate::split`]):
/// its rows of objects, and whether it wrote `zarr.json`.
pub struct Part {
    /// (group, row of objects along the variables) of every unit of the shard.
    pub rows: HashSet<(u32, u32)>,
    /// Whether the shard wrote `zarr.json` (else it may be there, from shard 0,
    /// or not yet).
    pub metadata: bool,
}

/// [`verify_against`] for the objects of `part` only, when given: the other
/// shards' chunks in the same output are neither expected nor unexpected, and
/// `zarr.json` is required only of the shard that writes it (where present, it
/// must describe the array all the same).
pub fn verify_part(
    layout: &ArrayLayout,
    objects: &dyn Objects,
    expected: Expected,
    part: Option<&Part>,
    max_chunks: u64,
    seed: u64,
) -> Verification {
    let start = Instant::now();
    let (_, rows_y, rows_x) = layout.object_grid();
    let mine = |g: u32, row: u32| part.is_none_or(|p| p.rows.contains(&(g, row)));
    let mut v = Verification {
        chunks_expected: match part {
            None => layout.total_objects(),
            Some(p) => p.rows.len() as u64 * rows_y as u64 * rows_x as u64,
        },
        ..Default::default()
    };
    let mut problems = Vec::new();

    match objects.get("zarr.json") {
        Err(_) if part.is_some_and(|p| !p.metadata) => {}
        Err(e) => problems.push(format!("zarr.json: {e}")),
        Ok(bytes) => {
            let found: Result<serde_json::Value, _> = serde_json::from_slice(&bytes);
            let expected: serde_json::Value = serde_json::from_str(&layout.zarr_json()).unwrap();
            match found {
                Ok(found) if found == expected => {}
                Ok(_) => problems.push("zarr.json does not describe the expected array".into()),
                Err(e) => problems.push(format!("zarr.json is not JSON: {e}")),
            }
        }
    }

    if let Expected::Output(reference) = expected {
        let want: serde_json::Value = serde_json::from_str(&layout.zarr_json()).unwrap();
        match reference
            .get("zarr.json")
            .map(|b| serde_json::from_slice::<serde_json::Value>(&b))
        {
            Err(_) if part.is_some_and(|p| !p.metadata) => {}
            Err(e) => problems.push(format!("the reference's zarr.json: {e}")),
            Ok(Err(e)) => problems.push(format!("the reference's zarr.json is not JSON: {e}")),
            Ok(Ok(found)) if found != want => {
                let differs: Vec<String> = want
                    .as_object()
                    .into_iter()
                    .flatten()
                    .filter(|(k, v)| found.get(k.as_str()) != Some(v))
                    .map(|(k, _)| k.clone())
                    .collect();
                problems.push(format!(
                    "the reference's zarr.json describes another array (it differs in {})",
                    differs.join(", ")
                ));
            }
            Ok(Ok(_)) => {}
        }
    }

    let mut found = HashSet::new();
    let mut unexpected = Vec::new();
    match objects.keys() {
        Ok(keys) => {
            for key in keys {
                if key == "zarr.json" || key == MARKER {
                } else if let Some(c) = layout.parse_chunk_key(&key) {
                    // Another shard's object: not this part's to judge.
                    if mine(c.0, c.1) {
                        found.insert(c);
                    }
                } else {
                    unexpected.push(key);
                }
            }
        }
        Err(e) => problems.push(format!("cannot list the output: {e}")),
    }
    v.chunks_found = found.len() as u64;
    v.unexpected = unexpected.len() as u64;
    for key in unexpected.iter().take(MAX_LISTED) {
        problems.push(format!("unexpected file {key}"));
    }

    let (nv, ncy, ncx) = layout.object_grid();
    let d = &layout.dataset;
    let all: Vec<(u32, u32, u32, u32)> = (0..d.groups)
        .flat_map(|g| (0..nv).map(move |v| (g, v)))
        .filter(|&(g, v)| mine(g, v))
        .flat_map(|(g, v)| (0..ncy).flat_map(move |iy| (0..ncx).map(move |ix| (g, v, iy, ix))))
        .collect();
    let missing: Vec<_> = all.iter().filter(|c| !found.contains(*c)).collect();
    v.missing = missing.len() as u64;
    for &&(g, vv, iy, ix) in missing.iter().take(MAX_LISTED) {
        problems.push(format!(
            "missing {} {}",
            layout.object_noun(),
            ArrayLayout::chunk_key(g, vv, iy, ix)
        ));
    }

    let present: Vec<_> = all.into_iter().filter(|c| found.contains(c)).collect();
    let to_check = if max_chunks == 0 || present.len() as u64 <= max_chunks {
        present
    } else {
        v.sampled = true;
        sample(present, max_chunks as usize, seed)
    };
    v.chunks_checked = to_check.len() as u64;
    let wrong: Vec<String> = to_check
        .par_iter()
        .filter_map(|&(g, vv, iy, ix)| match layout.shard() {
            None => check_chunk(layout, objects, expected, g, vv, iy, ix).err(),
            Some(_) => check_shard(layout, objects, expected, g, vv, iy, ix).err(),
        })
        .collect();
    v.wrong_chunks = wrong.len() as u64;
    problems.extend(wrong.into_iter().take(MAX_LISTED));

    v.ok = problems.is_empty();
    v.problems = problems;
    v.seconds = start.elapsed().as_secs_f64();
    v.against = match expected {
        Expected::ClosedForm => None,
        Expected::Output(_) => Some("the reference output".into()),
        Expected::Structure => Some("structure only".into()),
    };
    v
}

/// A seeded partial Fisher-Yates shuffle: the same seed picks the same chunks.
fn sample<T>(mut items: Vec<T>, n: usize, seed: u64) -> Vec<T> {
    for i in 0..n {
        let j = i + (splitmix64(seed.wrapping_add(i as u64)) % (items.len() - i) as u64) as usize;
        items.swap(i, j);
    }
    items.truncate(n);
    items
}

/// Every file below `dir` as a key, except the harness's marker at the root.
fn walk(root: &Path, dir: &Path, keys: &mut Vec<String>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        if dir == root && entry.file_name() == MARKER {
            continue;
        }
        let path = entry.path();
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            walk(root, &path, keys);
        } else {
            let key = path.strip_prefix(root).unwrap_or(&path);
            keys.push(key.to_string_lossy().into_owned());
        }
    }
}

/// The values chunk (g, v, iy, ix) of the chunked layout must hold, or `None` to
/// check nothing. (Shards are compared whole in [`check_shard`].)
fn expected_values(
    layout: &ArrayLayout,
    expected: Expected,
    g: u32,
    v: u32,
    iy: u32,
    ix: u32,
) -> Result<Option<Vec<f32>>, String> {
    match expected {
        Expected::ClosedForm => Ok(Some(layout.expected_chunk(g, v, iy, ix))),
        Expected::Structure => Ok(None),
        Expected::Output(reference) => {
            let chunk = ArrayLayout::chunk_key(g, v, iy, ix);
            let in_reference = |e: String| format!("the reference's {chunk}: {e}");
            let bytes = reference.get(&chunk).map_err(in_reference)?;
            layout.decode_chunk(&bytes).map(Some).map_err(in_reference)
        }
    }
}

fn check_chunk(
    layout: &ArrayLayout,
    objects: &dyn Objects,
    expected: Expected,
    g: u32,
    v: u32,
    iy: u32,
    ix: u32,
) -> Result<(), String> {
    let key = ArrayLayout::chunk_key(g, v, iy, ix);
    let bytes = objects.get(&key).map_err(|e| format!("{key}: {e}"))?;
    let values = layout
        .decode_chunk(&bytes)
        .map_err(|e| format!("{key}: {e}"))?;
    match expected_values(layout, expected, g, v, iy, ix)? {
        Some(want) => compare(layout, &key, (g, v, iy, ix), &values, &want),
        None => Ok(()),
    }
}

/// Whether chunk (g, v, iy, ix)'s `values` are `expected`, bit for bit; the error
/// names the first wrong value, under `label`.
fn compare(
    layout: &ArrayLayout,
    label: &str,
    (g, v, iy, ix): (u32, u32, u32, u32),
    values: &[f32],
    expected: &[f32],
) -> Result<(), String> {
    if values.len() != expected.len() {
        return Err(format!(
            "{label}: {} values, expected {}",
            values.len(),
            expected.len()
        ));
    }
    if let Some(i) = (0..values.len()).find(|&i| values[i].to_bits() != expected[i].to_bits()) {
        let (cy, cx) = (layout.output.cy as usize, layout.output.cx as usize);
        let (s, y, x) = (i / (cy * cx), i / cx % cy, i % cx);
        return Err(format!(
            "{label}: value at step {s}, y {}, x {} is {}, expected {} (decoded from input {}: \
             damaged, or decoded wrongly)",
            iy as usize * cy + y,
            ix as usize * cx + x,
            values[i],
            expected[i],
            layout.dataset.input_name(g, v, s as u32),
        ));
    }
    Ok(())
}

/// Checks shard (g, sv, sy, sx): its index (see
/// [`rechunk_contract::nwp::shard::decode_index`]), which inner chunks it holds, and
/// their values. Every error starts with the shard's key.
#[allow(clippy::too_many_arguments)]
fn check_shard(
    layout: &ArrayLayout,
    objects: &dyn Objects,
    expected: Expected,
    g: u32,
    sv: u32,
    sy: u32,
    sx: u32,
) -> Result<(), String> {
    let key = ArrayLayout::chunk_key(g, sv, sy, sx);
    let bytes = objects.get(&key).map_err(|e| format!("{key}: {e}"))?;
    let inner = layout
        .decode_shard(&bytes)
        .map_err(|e| format!("{key}: {e}"))?;
    // Against another output, its shard is decoded once for all inner chunks.
    let reference = match expected {
        Expected::Output(r) => {
            let in_shard = |e: String| format!("the reference's {key}: {e}");
            let bytes = r.get(&key).map_err(in_shard)?;
            Some(layout.decode_shard(&bytes).map_err(in_shard)?)
        }
        _ => None,
    };
    for (p, values) in inner.iter().enumerate() {
        match (layout.inner_chunk(sv, sy, sx, p), values) {
            (None, None) => {}
            (None, Some(_)) => {
                return Err(format!(
                    "{key}: inner chunk {p} is present but lies past the array's chunk grid"
                ))
            }
            (Some((v, iy, ix)), None) => {
                return Err(format!(
                    "{key}: inner chunk {p} (chunk {}) is absent",
                    ArrayLayout::chunk_key(g, v, iy, ix)
                ))
            }
            (Some((v, iy, ix)), Some(values)) => {
                let label = format!(
                    "{key}: inner chunk {p} (chunk {})",
                    ArrayLayout::chunk_key(g, v, iy, ix)
                );
                let want = match (&reference, expected) {
                    (Some(r), _) => Some(r[p].clone().ok_or_else(|| {
                        format!("the reference's {key}: inner chunk {p} is absent")
                    })?),
                    (None, Expected::ClosedForm) => Some(layout.expected_chunk(g, v, iy, ix)),
                    (None, _) => None,
                };
                if let Some(want) = want {
                    compare(layout, &label, (g, v, iy, ix), values, &want)?;
                }
            }
        }
    }
    Ok(())
}

/// The array described by a `zarr.json`, so that any output can be verified from
/// itself: the attributes carry what the values depend on.
pub fn layout_from_zarr_json(root: &Path) -> anyhow::Result<ArrayLayout> {
    layout_from_objects(&LocalDir(root), &root.display().to_string())
}

/// The array described by the `zarr.json` of an output in any store; `name` names
/// the output in errors.
pub fn layout_from_objects(objects: &dyn Objects, name: &str) -> anyhow::Result<ArrayLayout> {
    let path = Path::new(name).join("zarr.json");
    let bytes = objects.get("zarr.json").map_err(|e| {
        anyhow::anyhow!(
            "{name} is not a harness output: reading {} failed: {e}",
            path.display()
        )
    })?;
    let text =
        String::from_utf8(bytes).with_context(|| format!("{}: not UTF-8", path.display()))?;
    let doc: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("{}: not JSON", path.display()))?;
    let bad = |what: &str| anyhow::anyhow!("{}: {what}", path.display());
    let u32s = |v: &serde_json::Value| -> Option<Vec<u32>> {
        v.as_array()?
            .iter()
            .map(|x| x.as_u64().and_then(|x| u32::try_from(x).ok()))
            .collect()
    };
    let shape = u32s(&doc["shape"])
        .filter(|s| s.len() == 5)
        .ok_or_else(|| bad("`shape` is not 5 integers"))?;
    let grid = u32s(&doc["chunk_grid"]["configuration"]["chunk_shape"])
        .filter(|s| s.len() == 5)
        .ok_or_else(|| bad("`chunk_grid.configuration.chunk_shape` is not 5 integers"))?;
    // The sharded layout: one `sharding_indexed` codec whose configuration holds the
    // inner chunk shape and the chunks' codecs; the grid's chunks are the shards.
    let sharding = doc["codecs"]
        .as_array()
        .filter(|c| c.len() == 1 && c[0]["name"] == "sharding_indexed")
        .map(|c| &c[0]["configuration"]);
    let (chunks, codecs, shard) = match sharding {
        None => (grid, &doc["codecs"], None),
        Some(conf) => {
            let inner = u32s(&conf["chunk_shape"])
                .filter(|s| s.len() == 5 && s.iter().all(|&c| c > 0))
                .ok_or_else(|| {
                    bad("the sharding codec's `chunk_shape` is not 5 positive integers")
                })?;
            if grid.iter().zip(&inner).any(|(s, c)| s % c != 0) {
                return Err(bad(&format!(
                    "the shard shape {grid:?} is not a whole number of inner chunks \
                     {inner:?}"
                )));
            }
            let shard: Vec<u32> = grid.iter().zip(&inner).map(|(s, c)| s / c).collect();
            let shard: [u32; 5] = shard.try_into().expect("5 entries");
            (inner, &conf["codecs"], Some(shard))
        }
    };
    if let Some(why) = crate::sizes::field_problem(shape[3], shape[4])
        .or_else(|| crate::sizes::inputs_problem(shape[0], shape[1], shape[2]))
    {
        return Err(bad(&format!("`shape` {shape:?}: {why}")));
    }
    if chunks.iter().zip(&shape).any(|(c, s)| *c == 0 || c > s) {
        return Err(bad(&format!(
            "`chunk_shape` {chunks:?} does not fit `shape` {shape:?}"
        )));
    }
    if let Some(k) = shard {
        // [1, kv, 1, ky, kx], within the variables and the chunk grid, as a
        // scenario's `[output] shard` must be.
        let fits = k[0] == 1
            && k[2] == 1
            && (1..=shape[1]).contains(&k[1])
            && (1..=shape[3].div_ceil(chunks[3])).contains(&k[3])
            && (1..=shape[4].div_ceil(chunks[4])).contains(&k[4]);
        if !fits {
            return Err(bad(&format!(
                "shards of {k:?} chunks: not [1, kv, 1, ky, kx] within the array's \
                 variables and chunk grid"
            )));
        }
    }
    let level = codecs
        .as_array()
        .and_then(|c| c.iter().find(|c| c["name"] == "zstd"))
        .and_then(|c| c["configuration"]["level"].as_i64())
        .ok_or_else(|| bad("no zstd codec with a level"))?;
    let output = OutputParams {
        cy: chunks[3],
        cx: chunks[4],
        zstd_level: level as i32,
        shard,
    };
    // A grib2-dir output: what its attributes say of the scan (no closed form).
    if let Some(attrs) = doc["attributes"].get("grib2_dir") {
        let attributes: DirAttributes = serde_json::from_value(attrs.clone())
            .map_err(|e| bad(&format!("attributes.grib2_dir: {e}")))?;
        let a = &attributes;
        let counts = [a.groups.len(), a.variables.len(), a.steps.len()];
        if counts != [shape[0] as usize, shape[1] as usize, shape[2] as usize]
            || (a.grid.ny, a.grid.nx) != (shape[3], shape[4])
        {
            return Err(bad(
                "attributes.grib2_dir's names and grid do not match `shape`",
            ));
        }
        let mut format = DirFormat::unscanned(a.source.clone(), a.scan.clone());
        format.attributes = attributes;
        let dataset = DatasetParams {
            layout: Layout::Files,
            groups: shape[0],
            variables: shape[1],
            steps: shape[2],
            ny: shape[3],
            nx: shape[4],
            codec: Codec::None,
            zstd_level: 1,
            noise_bits: 0,
            seed: 0,
            format: Format::Grib2Dir(Box::new(format)),
        };
        let layout = ArrayLayout::new(dataset, output);
        if let Some(why) = crate::sizes::shard_problem(&layout) {
            return Err(bad(&why));
        }
        return Ok(layout);
    }
    let attrs = &doc["attributes"]["nwp_fields"];
    if attrs["version"].as_u64() != Some(1) {
        return Err(bad(
            "attributes.nwp_fields.version is not 1 and there are no grib2_dir \
             attributes: not an output of this harness",
        ));
    }
    // The inputs' encoding does not change the values; it is read to refuse an
    // output this harness did not write.
    let grib2 = attrs["input_format"].as_str() == Some("nwp-grib2");
    let (codec, format) = match (grib2, attrs["codec"].as_str()) {
        (false, Some("none")) => (Codec::None, Format::NwpFields),
        (false, Some("zstd")) => (Codec::Zstd, Format::NwpFields),
        (false, Some("lz4")) => (Codec::Lz4, Format::NwpFields),
        (true, Some(p @ ("ccsds" | "simple"))) => {
            let packing = if p == "ccsds" {
                Packing::Ccsds
            } else {
                Packing::Simple
            };
            let wrap = match attrs["wrap"].as_str() {
                Some("none") => Wrap::None,
                Some("bz2") => Wrap::Bz2,
                _ => return Err(bad("attributes.nwp_fields.wrap is not none or bz2")),
            };
            (Codec::Zstd, Format::Grib2(Grib2Params { packing, wrap }))
        }
        (false, _) => return Err(bad("attributes.nwp_fields.codec is not none, zstd or lz4")),
        (true, _) => return Err(bad("attributes.nwp_fields.codec is not ccsds or simple")),
    };
    let dataset = DatasetParams {
        // Absent in outputs written before it was recorded: files.
        layout: match attrs["input_layout"].as_str() {
            None | Some("files") => Layout::Files,
            Some("container") => Layout::Container,
            Some(_) => {
                return Err(bad(
                    "attributes.nwp_fields.input_layout is not files or container",
                ))
            }
        },
        groups: shape[0],
        variables: shape[1],
        steps: shape[2],
        ny: shape[3],
        nx: shape[4],
        codec,
        zstd_level: 1,
        noise_bits: attrs["noise_bits"]
            .as_u64()
            .ok_or_else(|| bad("no noise_bits"))? as u32,
        seed: attrs["seed"].as_u64().ok_or_else(|| bad("no seed"))?,
        format,
    };
    let layout = ArrayLayout::new(dataset, output);
    if let Some(why) = crate::sizes::shard_problem(&layout) {
        return Err(bad(&why));
    }
    Ok(layout)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rechunk_contract::conformance::{reference_output, Fixture};

    fn write(fx: &Fixture) {
        for (key, bytes) in reference_output(fx) {
            let path = fx.output_root.join(&key);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(path, bytes).unwrap();
        }
    }

    #[test]
    fn a_correct_output_passes_and_its_layout_is_recovered() {
        let fx = Fixture::tiny(Layout::Files, Codec::Zstd);
        write(&fx);
        let layout = layout_from_zarr_json(&fx.output_root).unwrap();
        assert_eq!(layout.output, fx.output);
        let v = verify(&layout, &fx.output_root, 0, 1);
        assert!(v.ok, "{:?}", v.problems);
        assert_eq!(v.chunks_checked, v.chunks_expected);
        let v = verify(&layout, &fx.output_root, 5, 1);
        assert!(v.ok && v.sampled && v.chunks_checked == 5);
    }

    #[test]
    fn a_single_wrong_value_is_caught() {
        let fx = Fixture::tiny(Layout::Files, Codec::Zstd);
        write(&fx);
        let layout = ArrayLayout::new(fx.params.clone(), fx.output);
        let key = ArrayLayout::chunk_key(1, 2, 1, 1);
        let mut values = layout.expected_chunk(1, 2, 1, 1);
        // step 3, y 1 (global 5), x 2 (global 7): one ulp off.
        let i = (3 * 4 + 1) * 5 + 2;
        values[i] = f32::from_bits(values[i].to_bits() + 1);
        fs::write(
            fx.output_root.join(&key),
            layout.encode_chunk(&values).unwrap(),
        )
        .unwrap();
        let v = verify(&layout, &fx.output_root, 0, 1);
        assert!(!v.ok);
        assert_eq!(v.wrong_chunks, 1);
        assert!(
            v.problems[0].starts_with("c/1/2/0/1/1: value at step 3, y 5, x 7"),
            "{:?}",
            v.problems
        );
    }

    #[test]
    fn missing_and_unexpected_files_are_caught() {
        let fx = Fixture::tiny(Layout::Files, Codec::Zstd);
        write(&fx);
        fs::remove_file(fx.output_root.join("c/0/0/0/0/0")).unwrap();
        fs::write(fx.output_root.join("c/0/0/0/0/.0.tmp-1-2"), b"half").unwrap();
        let layout = ArrayLayout::new(fx.params.clone(), fx.output);
        let v = verify(&layout, &fx.output_root, 0, 1);
        assert_eq!((v.missing, v.unexpected), (1, 1), "{:?}", v.problems);
        assert!(!v.ok);
    }

    #[test]
    fn a_sharded_output_passes_and_its_layout_is_recovered() {
        let fx = Fixture::tiny(Layout::Files, Codec::Zstd).sharded();
        write(&fx);
        let layout = layout_from_zarr_json(&fx.output_root).unwrap();
        assert_eq!(layout.output, fx.output);
        let v = verify(&layout, &fx.output_root, 0, 1);
        assert!(v.ok, "{:?}", v.problems);
        // 2 groups × 2 blocks of variables × 2 shards along y × 1 along x.
        assert_eq!((v.chunks_expected, v.chunks_checked), (8, 8));
        let v = verify(&layout, &fx.output_root, 3, 1);
        assert!(v.ok && v.sampled && v.chunks_checked == 3);
    }

    /// Verifies the sharded fixture after `damage` rewrote shard `c/1/1/0/1/0` (one
    /// variable × one row of chunks: 2 of its 8 positions present); returns the
    /// problems.
    fn damaged_shard(damage: impl FnOnce(&ArrayLayout, Vec<u8>) -> Vec<u8>) -> Vec<String> {
        let fx = Fixture::tiny(Layout::Files, Codec::Zstd).sharded();
        write(&fx);
        let layout = ArrayLayout::new(fx.params.clone(), fx.output);
        let path = fx.output_root.join("c/1/1/0/1/0");
        let bytes = damage(&layout, fs::read(&path).unwrap());
        fs::write(&path, bytes).unwrap();
        let v = verify(&layout, &fx.output_root, 0, 1);
        assert!(!v.ok);
        assert_eq!((v.wrong_chunks, v.missing, v.unexpected), (1, 0, 0));
        v.problems
    }

    #[test]
    fn a_damaged_shard_is_caught_and_named() {
        let p = damaged_shard(|_, mut b| {
            let n = b.len();
            b[n - 20] ^= 0x40;
            b
        });
        assert!(
            p[0].starts_with("c/1/1/0/1/0: shard index checksum mismatch"),
            "{p:?}"
        );
        let p = damaged_shard(|_, b| b[..b.len() - 7].to_vec());
        assert!(
            p[0].starts_with("c/1/1/0/1/0: shard index checksum"),
            "{p:?}"
        );
        let p = damaged_shard(|_, b| b[..50].to_vec());
        assert!(
            p[0].starts_with(
                "c/1/1/0/1/0: truncated shard: 50 bytes, shorter than its index of 132 bytes"
            ),
            "{p:?}"
        );
        // An index of another length (4 positions, with a good checksum).
        let p = damaged_shard(|l, _| {
            let mut inner = l.expected_shard(1, 1, 1, 0);
            inner.truncate(4);
            l.encode_shard(inner).unwrap()
        });
        assert!(p[0].contains("checksum mismatch"), "{p:?}");
        // A present inner chunk dropped from the index; one past the grid added.
        let p = damaged_shard(|l, _| {
            let mut inner = l.expected_shard(1, 1, 1, 0);
            inner[1] = None;
            l.encode_shard(inner).unwrap()
        });
        assert_eq!(
            p[0],
            "c/1/1/0/1/0: inner chunk 1 (chunk c/1/2/0/2/1) is absent"
        );
        let p = damaged_shard(|l, _| {
            let mut inner = l.expected_shard(1, 1, 1, 0);
            inner[2] = inner[0].clone();
            l.encode_shard(inner).unwrap()
        });
        assert!(
            p[0].contains("inner chunk 2 is present but lies past"),
            "{p:?}"
        );
        // One wrong value, named with its inner chunk.
        let p = damaged_shard(|l, _| {
            let mut inner = l.expected_shard(1, 1, 1, 0);
            let c = inner[1].as_mut().unwrap();
            c[0] = f32::from_bits(c[0].to_bits() + 1);
            l.encode_shard(inner).unwrap()
        });
        assert!(
            p[0].starts_with(
                "c/1/1/0/1/0: inner chunk 1 (chunk c/1/2/0/2/1): value at step 0, y 8, x 5"
            ),
            "{p:?}"
        );
    }
}
