//! The NWP workload: decode messages, gather each variable's steps, emit one
//! `[S, cy, cx]` chunk per spatial tile when the variable is complete, encode as Zarr.
//! In the sharded layout the unit emitted is a shard: once every variable a shard
//! spans is complete, all its inner chunks together, encoded into one object.

use std::collections::HashMap;

use super::message::decode_message;
use super::zarr::{ArrayLayout, OutputParams};
use super::{DatasetParams, Format};
use crate::grib2::{self, message::FieldId, Decoder};
use crate::job::{Group, Job};
use crate::workload::{Emission, GroupReducer, ItemCost, OutputObject, Workload, WorkloadError};

/// The NWP-fields rechunk.
#[derive(Clone, Debug)]
pub struct NwpWorkload {
    layout: ArrayLayout,
    /// The GRIB2 decoder (unused for nwp-fields inputs).
    decoder: Decoder,
    /// Cached from the layout: every input costs the same.
    retained_per_item: u64,
    /// Whether this job writes `zarr.json`: not in the shards of a split job but
    /// the first (see [`NwpWorkload::without_metadata`]).
    writes_metadata: bool,
}

/// One output object before encoding: a chunk, or a shard of inner chunks.
#[derive(Debug)]
pub enum NwpChunk {
    /// A chunk of the chunked layout.
    Chunk {
        /// The group (init time).
        g: u32,
        /// The variable.
        v: u32,
        /// The chunk's index along y.
        iy: u32,
        /// The chunk's index along x.
        ix: u32,
        /// `[steps, cy, cx]`, padded with the fill value.
        values: Vec<f32>,
    },
    /// A shard of the sharded layout.
    Shard {
        /// The group (init time).
        g: u32,
        /// The shard's index along the variables.
        sv: u32,
        /// The shard's index along y.
        sy: u32,
        /// The shard's index along x.
        sx: u32,
        /// Per inner chunk position (C order), its `[steps, cy, cx]` values, or
        /// `None` where the shard reaches past the array's chunk grid.
        inner: Vec<Option<Vec<f32>>>,
    },
}

impl NwpWorkload {
    /// The rechunk of the dataset `dataset` into the array `output` describes.
    pub fn new(dataset: DatasetParams, output: OutputParams) -> Self {
        let layout = ArrayLayout::new(dataset, output);
        // A variable's chunks, raw and encoded, shared among its `steps` inputs.
        let chunk_bytes = layout.chunk_len() * 4;
        let mut per_variable = layout.chunks_per_variable()
            * (chunk_bytes + zstd::zstd_safe::compress_bound(chunk_bytes)) as u64;
        if let Some(s) = layout.shard() {
            // And the indexes of the shards its chunks go to (counted whole for
            // each variable of a shard: an upper bound, 16 bytes per inner chunk).
            let (_, nsy, nsx) = layout.object_grid();
            per_variable += nsy as u64 * nsx as u64 * super::shard::index_len(s.positions()) as u64;
        }
        let retained_per_item = per_variable.div_ceil(layout.dataset.steps as u64);
        NwpWorkload {
            layout,
            decoder: Decoder::default(),
            retained_per_item,
            writes_metadata: true,
        }
    }

    /// The same workload writing no `zarr.json`: for every shard of a split job
    /// but the one that writes it (the array's metadata is written exactly once).
    pub fn without_metadata(self) -> Self {
        NwpWorkload {
            writes_metadata: false,
            ..self
        }
    }

    /// The variables a group's part holds: `[v0, v1)` from its first item and
    /// input count, or why they are not whole variables (a part must hold every
    /// step of each of its variables and, in the sharded layout, every variable of
    /// each block of variables a row of shards spans).
    pub fn variables_of(&self, group: &Group) -> Result<std::ops::Range<u32>, WorkloadError> {
        let d = &self.layout.dataset;
        let steps = d.steps as usize;
        let (first, len) = (group.first_item, group.inputs.len());
        if first % steps != 0 || len % steps != 0 {
            return Err(WorkloadError::new(format!(
                "group {}: inputs {first}..{} are not whole variables of {steps} steps",
                group.index,
                first + len
            )));
        }
        let (v0, v1) = ((first / steps) as u32, ((first + len) / steps) as u32);
        if v1 > d.variables {
            return Err(WorkloadError::new(format!(
                "group {}: inputs {first}..{} reach past its {} variables",
                group.index,
                first + len,
                d.variables
            )));
        }
        if let Some(s) = self.layout.shard() {
            if v0 % s.kv != 0 || (v1 % s.kv != 0 && v1 != d.variables) {
                return Err(WorkloadError::new(format!(
                    "group {}: variables {v0}..{v1} split a block of {} variables that one row \
                     of shards spans",
                    group.index, s.kv
                )));
            }
        }
        Ok(v0..v1)
    }

    /// The objects (chunks or shards) of variables `vars` of one group.
    pub fn objects_of(&self, vars: std::ops::Range<u32>) -> u64 {
        let per_row = self.layout.objects_per_group() / self.layout.object_grid().0 as u64;
        let rows = match self.layout.shard() {
            None => vars.len() as u64,
            Some(s) => (vars.end.div_ceil(s.kv) - vars.start / s.kv) as u64,
        };
        if vars.is_empty() {
            0
        } else {
            rows * per_row
        }
    }

    /// The same workload decoding GRIB2 inputs with `decoder`.
    pub fn with_decoder(self, decoder: Decoder) -> Self {
        NwpWorkload { decoder, ..self }
    }

    /// The GRIB2 decoder this workload uses.
    pub fn decoder(&self) -> Decoder {
        self.decoder
    }

    /// The output array's geometry.
    pub fn layout(&self) -> &ArrayLayout {
        &self.layout
    }

    /// Variables whose inputs are all held before the reducer emits anything: one
    /// in the chunked layout, a shard's worth in the sharded one.
    pub fn variables_per_emission(&self) -> u32 {
        let v = self.layout.dataset.variables;
        self.layout.shard().map_or(1, |s| s.kv.min(v))
    }

    /// The smallest `bytes_in_flight` with which a variable (in the sharded layout,
    /// every variable of a shard) can complete: backends reserve inputs in order,
    /// so these inputs' retained bytes plus one more input in flight.
    pub fn min_bytes_in_flight(&self) -> u64 {
        let d = &self.layout.dataset;
        self.variables_per_emission() as u64 * d.steps as u64 * self.retained_per_item
            + d.max_input_len()
            + d.field_bytes()
            + d.decode_scratch()
    }
}

impl Workload for NwpWorkload {
    type Decoded = Vec<f32>;
    type Chunk = NwpChunk;
    type Reducer = NwpReducer;

    fn name(&self) -> &str {
        self.layout.dataset.format.kind()
    }

    fn metadata(&self) -> Vec<OutputObject> {
        if !self.writes_metadata {
            return Vec::new();
        }
        vec![OutputObject {
            key: "zarr.json".to_string(),
            bytes: self.layout.zarr_json().into_bytes(),
        }]
    }

    fn cost(&self, group: &Group, index: usize) -> ItemCost {
        let d = &self.layout.dataset;
        ItemCost {
            read: match group.inputs[index].range {
                Some(r) => r.len,
                None => d.max_input_len(),
            },
            transient: d.field_bytes() + d.decode_scratch(),
            retained: self.retained_per_item,
        }
    }

    fn decode(&self, group: &Group, index: usize, raw: &[u8]) -> Result<Vec<f32>, WorkloadError> {
        let d = &self.layout.dataset;
        let (v, s) = d.item_vs(group.first_item + index);
        let mut out = vec![0.0f32; (d.ny * d.nx) as usize];
        match &d.format {
            Format::NwpFields => {
                decode_message(raw, (group.index, v, s, d.ny, d.nx), &mut out)
                    .map_err(|e| WorkloadError::new(e.to_string()))?;
            }
            Format::Grib2(p) => {
                let id = FieldId {
                    g: group.index,
                    v,
                    s,
                    ny: d.ny,
                    nx: d.nx,
                };
                grib2::decode::decode(raw, p, self.decoder, id, d.noise_bits, &mut out)
                    .map_err(WorkloadError)?
            }
            Format::Grib2Dir(dir) => {
                let input = &group.inputs[index];
                let unwrapped;
                let message = if input.range.is_none() && input.path.ends_with(".bz2") {
                    unwrapped = grib2::decode::unwrap_bz2(raw, dir.message_bound())
                        .map_err(WorkloadError)?;
                    &unwrapped[..]
                } else {
                    raw
                };
                let keys = dir.expected_keys(group.index, v, s);
                let parsed = crate::gribdir::header::check_message(
                    message,
                    &dir.attributes.grid,
                    keys.as_ref(),
                )
                .map_err(|e| {
                    WorkloadError(format!(
                        "{e} (expected {})",
                        dir.message_name(group.index, v, s)
                    ))
                })?;
                grib2::decode::decode_parsed(message, &parsed, self.decoder, &mut out)
                    .map_err(WorkloadError)?
            }
        }
        Ok(out)
    }

    fn reduce_group(&self, group: &Group) -> NwpReducer {
        NwpReducer {
            layout: self.layout.clone(),
            g: group.index,
            first_item: group.first_item,
            variables: self
                .variables_of(group)
                .unwrap_or(0..self.layout.dataset.variables),
            open: HashMap::new(),
            done: vec![false; self.layout.dataset.variables as usize],
            retained_per_item: self.retained_per_item,
            blocks: HashMap::new(),
        }
    }

    fn encode(&self, chunk: NwpChunk) -> Result<OutputObject, WorkloadError> {
        match chunk {
            NwpChunk::Chunk {
                g,
                v,
                iy,
                ix,
                values,
            } => Ok(OutputObject {
                key: ArrayLayout::chunk_key(g, v, iy, ix),
                bytes: self.layout.encode_chunk(&values).map_err(WorkloadError)?,
            }),
            NwpChunk::Shard {
                g,
                sv,
                sy,
                sx,
                inner,
            } => Ok(OutputObject {
                key: ArrayLayout::chunk_key(g, sv, sy, sx),
                bytes: self.layout.encode_shard(inner).map_err(WorkloadError)?,
            }),
        }
    }

    fn check_job(&self, job: &Job) -> Result<(), WorkloadError> {
        if let Format::Grib2(_) | Format::Grib2Dir(_) = self.layout.dataset.format {
            self.decoder.available().map_err(WorkloadError)?;
        }
        if let Some((key, why)) = self.layout.dataset.format_problem() {
            return Err(WorkloadError(format!("{key}: {why}")));
        }
        let need = self.min_bytes_in_flight();
        if job.limits.bytes_in_flight < need {
            let d = &self.layout.dataset;
            let what = match self.variables_per_emission() {
                1 => format!("a variable: its {} steps", d.steps),
                n => format!(
                    "a shard: its {n} variables × {} steps = {} inputs",
                    d.steps,
                    n as u64 * d.steps as u64
                ),
            };
            return Err(WorkloadError::new(format!(
                "bytes_in_flight = {} cannot complete {what} must all be held before its \
                 chunks are emitted, which needs at least {need} bytes",
                job.limits.bytes_in_flight
            )));
        }
        let per_group = self.layout.dataset.variables as usize * self.layout.dataset.steps as usize;
        // A whole job's group (not a shard's part of one, which `own_outputs`
        // marks) with inputs missing or extra.
        let steps = self.layout.dataset.steps as usize;
        let whole = job.own_outputs.is_none();
        if let Some(g) = job.groups.iter().find(|g| {
            (whole && g.inputs.len() != per_group)
                || (g.first_item == 0
                    && (g.inputs.len() % steps != 0 || g.inputs.len() > per_group))
        }) {
            return Err(WorkloadError::new(format!(
                "group {} has {} inputs, the dataset has {per_group} per group",
                g.index,
                g.inputs.len()
            )));
        }
        for g in &job.groups {
            self.variables_of(g)?;
        }
        Ok(())
    }

    fn expected_outputs(&self, job: &Job) -> u64 {
        let chunks: u64 = job
            .groups
            .iter()
            .map(|g| {
                self.variables_of(g)
                    .map_or(self.layout.objects_per_group(), |v| self.objects_of(v))
            })
            .sum();
        self.writes_metadata as u64 + chunks
    }
}

/// Gathers one group's fields per variable.
pub struct NwpReducer {
    layout: ArrayLayout,
    g: u32,
    /// The group's `first_item` (added to every pushed index).
    first_item: usize,
    /// The variables of the group's part: all of them unless the job is a shard.
    variables: std::ops::Range<u32>,
    /// Variables with some but not all steps: one padded buffer per chunk.
    open: HashMap<u32, OpenVariable>,
    /// Variables complete (their chunks emitted, or waiting in `blocks`).
    done: Vec<bool>,
    retained_per_item: u64,
    /// Sharded layout: the complete variables' chunks of each block of variables a
    /// row of shards spans (variable `v` is in block `v / kv`), until every
    /// variable of the block is complete.
    blocks: HashMap<u32, Block>,
}

/// The complete variables of one block of a sharded layout.
struct Block {
    /// Per variable of the block, its chunks (row-major over the chunk grid), once
    /// complete.
    variables: Vec<Option<Vec<Vec<f32>>>>,
    complete: u32,
}

struct OpenVariable {
    chunks: Vec<Vec<f32>>,
    seen: Vec<bool>,
    count: u32,
}

impl NwpReducer {
    /// Sharded layout: variable `v` is complete with `chunks`; once its block is,
    /// every shard of the block, which retires the block's inputs.
    fn complete_in_block(&mut self, v: u32, chunks: Vec<Vec<f32>>) -> Emission<NwpChunk> {
        let s = self.layout.shard().expect("sharded");
        let d = &self.layout.dataset;
        let b = v / s.kv;
        let in_block = s.kv.min(d.variables - b * s.kv);
        let block = self.blocks.entry(b).or_insert_with(|| Block {
            variables: (0..in_block).map(|_| None).collect(),
            complete: 0,
        });
        block.variables[(v % s.kv) as usize] = Some(chunks);
        block.complete += 1;
        if block.complete < in_block {
            return Emission::none();
        }
        let mut block = self.blocks.remove(&b).expect("present");
        let (_, nsy, nsx) = self.layout.object_grid();
        let (_, ncx) = self.layout.chunk_grid();
        let mut shards = Vec::with_capacity(nsy as usize * nsx as usize);
        for sy in 0..nsy {
            for sx in 0..nsx {
                let inner = (0..s.positions())
                    .map(|p| {
                        let (v, iy, ix) = self.layout.inner_chunk(b, sy, sx, p)?;
                        let var = block.variables[(v % s.kv) as usize].as_mut()?;
                        Some(std::mem::take(&mut var[(iy * ncx + ix) as usize]))
                    })
                    .collect();
                shards.push(NwpChunk::Shard {
                    g: self.g,
                    sv: b,
                    sy,
                    sx,
                    inner,
                });
            }
        }
        Emission {
            chunks: shards,
            retired_bytes: in_block as u64 * d.steps as u64 * self.retained_per_item,
        }
    }
}

impl GroupReducer for NwpReducer {
    type Decoded = Vec<f32>;
    type Chunk = NwpChunk;

    fn push(&mut self, index: usize, field: Vec<f32>) -> Result<Emission<NwpChunk>, WorkloadError> {
        let d = &self.layout.dataset;
        let (v, s) = d.item_vs(self.first_item + index);
        if !self.variables.contains(&v) || self.done[v as usize] {
            return Err(WorkloadError::new(format!(
                "input {index} (v {v}, s {s}) pushed after its variable was complete"
            )));
        }
        let (ncy, ncx) = self.layout.chunk_grid();
        let (cy, cx) = (
            self.layout.output.cy as usize,
            self.layout.output.cx as usize,
        );
        let (ny, nx) = (d.ny as usize, d.nx as usize);
        let chunk_len = self.layout.chunk_len();
        let var = self.open.entry(v).or_insert_with(|| OpenVariable {
            // Zero-filled: the fill value pads the edge chunks.
            chunks: (0..ncy * ncx).map(|_| vec![0.0; chunk_len]).collect(),
            seen: vec![false; d.steps as usize],
            count: 0,
        });
        if std::mem::replace(&mut var.seen[s as usize], true) {
            return Err(WorkloadError::new(format!(
                "input (v {v}, s {s}) pushed twice"
            )));
        }
        for iy in 0..ncy as usize {
            let y0 = iy * cy;
            let rows = cy.min(ny - y0);
            for ix in 0..ncx as usize {
                let x0 = ix * cx;
                let cols = cx.min(nx - x0);
                let chunk = &mut var.chunks[iy * ncx as usize + ix];
                for y in 0..rows {
                    let src = &field[(y0 + y) * nx + x0..][..cols];
                    chunk[(s as usize * cy + y) * cx..][..cols].copy_from_slice(src);
                }
            }
        }
        var.count += 1;
        if var.count < d.steps {
            return Ok(Emission::none());
        }
        let var = self.open.remove(&v).expect("present");
        self.done[v as usize] = true;
        let g = self.g;
        if self.layout.shard().is_some() {
            return Ok(self.complete_in_block(v, var.chunks));
        }
        let chunks = var
            .chunks
            .into_iter()
            .enumerate()
            .map(|(i, values)| NwpChunk::Chunk {
                g,
                v,
                iy: i as u32 / ncx,
                ix: i as u32 % ncx,
                values,
            })
            .collect();
        Ok(Emission {
            chunks,
            retired_bytes: d.steps as u64 * self.retained_per_item,
        })
    }

    fn finish(self) -> Result<(), WorkloadError> {
        // A block still waiting has a variable that is not done: reported below.
        if let Some((v, var)) = self.open.iter().next() {
            return Err(WorkloadError::new(format!(
                "group {}: variable {v} has {} of {} steps",
                self.g, var.count, self.layout.dataset.steps
            )));
        }
        if let Some(v) = self.variables.clone().find(|&v| !self.done[v as usize]) {
            return Err(WorkloadError::new(format!(
                "group {}: variable {v} received no input",
                self.g
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nwp::{Codec, Layout};

    fn workload(variables: u32, shard: Option<[u32; 5]>) -> NwpWorkload {
        let dataset = DatasetParams {
            layout: Layout::Files,
            groups: 1,
            variables,
            steps: 3,
            ny: 10,
            nx: 9,
            codec: Codec::None,
            zstd_level: 1,
            noise_bits: 2,
            seed: 3,
            format: Default::default(),
        };
        let output = OutputParams {
            cy: 4,
            cx: 5,
            zstd_level: 1,
            shard,
        };
        NwpWorkload::new(dataset, output)
    }

    fn field(w: &NwpWorkload, v: u32, s: u32) -> Vec<f32> {
        let d = &w.layout().dataset;
        let values = d.values();
        (0..d.ny)
            .flat_map(|y| (0..d.nx).map(move |x| (y, x)))
            .map(|(y, x)| values.value(0, v, s, y, x))
            .collect()
    }

    #[test]
    fn shards_are_emitted_when_their_last_variable_completes() {
        // 5 variables in shards of 2: blocks {0, 1}, {2, 3}, {4}.
        let w = workload(5, Some([1, 2, 1, 2, 2]));
        let group = Group {
            index: 0,
            first_item: 0,
            inputs: (0..15)
                .map(|i| crate::job::InputRef {
                    path: format!("{i}").into(),
                    range: None,
                })
                .collect(),
        };
        let mut r = w.reduce_group(&group);
        let per_item = w.cost(&group, 0).retained;
        let d = w.layout().dataset.clone();
        // Variable 1 first, then 4 (a block of one), then 0, 3, 2; steps backwards.
        let mut emitted = Vec::new();
        for v in [1, 4, 0, 3, 2] {
            for s in (0..d.steps).rev() {
                let e = r.push(d.item_index(v, s), field(&w, v, s)).unwrap();
                emitted.push((v, s, e));
            }
        }
        r.finish().unwrap();
        let mut retired = 0;
        for (v, s, e) in emitted {
            retired += e.retired_bytes;
            let shard_vs: Vec<u32> = e
                .chunks
                .iter()
                .map(|c| match c {
                    NwpChunk::Shard { sv, .. } => *sv,
                    NwpChunk::Chunk { .. } => panic!("a chunk in the sharded layout"),
                })
                .collect();
            let expect: &[u32] = match (v, s) {
                (4, 0) => &[2, 2],
                (0, 0) => &[0, 0],
                (2, 0) => &[1, 1],
                _ => &[],
            };
            assert_eq!(shard_vs, expect, "after (v {v}, s {s})");
            let want = match (v, s) {
                (4, 0) => 3 * per_item,
                (0, 0) | (2, 0) => 6 * per_item,
                _ => 0,
            };
            assert_eq!(e.retired_bytes, want, "retired after (v {v}, s {s})");
            for c in e.chunks {
                let NwpChunk::Shard {
                    sv, sy, sx, inner, ..
                } = c
                else {
                    unreachable!()
                };
                let expected = w.layout().expected_shard(0, sv, sy, sx);
                assert_eq!(inner, expected, "shard {sv}/{sy}/{sx}");
            }
        }
        // Everything retained is given back.
        assert_eq!(retired, d.messages() * per_item);
        // The budget holds a shard's two variables.
        let chunked = workload(5, None);
        let extra = w.min_bytes_in_flight() - 2 * 3 * per_item;
        assert_eq!(
            extra,
            chunked.min_bytes_in_flight() - 3 * chunked.cost(&group, 0).retained
        );
        assert!(per_item > chunked.cost(&group, 0).retained);
        assert_eq!(
            w.expected_outputs(&Job {
                groups: vec![group],
                input_root: ".".into(),
                output_root: ".".into(),
                limits: crate::conformance::Fixture::roomy_limits(),
                overlap_groups: false,
                own_outputs: None,
            }),
            1 + 3 * 2
        );
    }
}
