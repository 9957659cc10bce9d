//! The NWP workload: decode messages, gather each variable's steps, emit one
//! `[S, cy, cx]` chunk per spatial tile when the variable is complete, encode as Zarr.

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
}

/// One output chunk before encoding.
#[derive(Debug)]
pub struct NwpChunk {
    /// The group (init time).
    pub g: u32,
    /// The variable.
    pub v: u32,
    /// The chunk's index along y.
    pub iy: u32,
    /// The chunk's index along x.
    pub ix: u32,
    /// `[steps, cy, cx]`, padded with the fill value.
    pub values: Vec<f32>,
}

impl NwpWorkload {
    /// The rechunk of the dataset `dataset` into the array `output` describes.
    pub fn new(dataset: DatasetParams, output: OutputParams) -> Self {
        let layout = ArrayLayout::new(dataset, output);
        // A variable's chunks, raw and encoded, shared among its `steps` inputs.
        let chunk_bytes = layout.chunk_len() * 4;
        let per_variable = layout.chunks_per_variable()
            * (chunk_bytes + zstd::zstd_safe::compress_bound(chunk_bytes)) as u64;
        let retained_per_item = per_variable.div_ceil(layout.dataset.steps as u64);
        NwpWorkload {
            layout,
            decoder: Decoder::default(),
            retained_per_item,
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

    /// The smallest `bytes_in_flight` with which a variable can complete.
    pub fn min_bytes_in_flight(&self) -> u64 {
        let d = &self.layout.dataset;
        d.steps as u64 * self.retained_per_item
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
        let (v, s) = d.item_vs(index);
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
        }
        Ok(out)
    }

    fn reduce_group(&self, group: &Group) -> NwpReducer {
        NwpReducer {
            layout: self.layout.clone(),
            g: group.index,
            open: HashMap::new(),
            done: vec![false; self.layout.dataset.variables as usize],
            retained_per_item: self.retained_per_item,
        }
    }

    fn encode(&self, chunk: NwpChunk) -> Result<OutputObject, WorkloadError> {
        Ok(OutputObject {
            key: ArrayLayout::chunk_key(chunk.g, chunk.v, chunk.iy, chunk.ix),
            bytes: self
                .layout
                .encode_chunk(&chunk.values)
                .map_err(WorkloadError)?,
        })
    }

    fn check_job(&self, job: &Job) -> Result<(), WorkloadError> {
        if let Format::Grib2(_) = self.layout.dataset.format {
            self.decoder.available().map_err(WorkloadError)?;
        }
        if let Some((key, why)) = self.layout.dataset.format_problem() {
            return Err(WorkloadError(format!("{key}: {why}")));
        }
        let need = self.min_bytes_in_flight();
        if job.limits.bytes_in_flight < need {
            let d = &self.layout.dataset;
            return Err(WorkloadError::new(format!(
                "bytes_in_flight = {} cannot complete a variable: its {} steps must all be \
                 held before its chunks are emitted, which needs at least {need} bytes",
                job.limits.bytes_in_flight, d.steps
            )));
        }
        let per_group = self.layout.dataset.variables as usize * self.layout.dataset.steps as usize;
        if let Some(g) = job.groups.iter().find(|g| g.inputs.len() != per_group) {
            return Err(WorkloadError::new(format!(
                "group {} has {} inputs, the dataset has {per_group} per group",
                g.index,
                g.inputs.len()
            )));
        }
        Ok(())
    }

    fn expected_outputs(&self, job: &Job) -> u64 {
        1 + job.groups.len() as u64
            * self.layout.dataset.variables as u64
            * self.layout.chunks_per_variable()
    }
}

/// Gathers one group's fields per variable.
pub struct NwpReducer {
    layout: ArrayLayout,
    g: u32,
    /// Variables with some but not all steps: one padded buffer per chunk.
    open: HashMap<u32, OpenVariable>,
    /// Variables whose chunks were emitted.
    done: Vec<bool>,
    retained_per_item: u64,
}

struct OpenVariable {
    chunks: Vec<Vec<f32>>,
    seen: Vec<bool>,
    count: u32,
}

impl GroupReducer for NwpReducer {
    type Decoded = Vec<f32>;
    type Chunk = NwpChunk;

    fn push(&mut self, index: usize, field: Vec<f32>) -> Result<Emission<NwpChunk>, WorkloadError> {
        let d = &self.layout.dataset;
        let (v, s) = d.item_vs(index);
        if v >= d.variables || self.done[v as usize] {
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
        let chunks = var
            .chunks
            .into_iter()
            .enumerate()
            .map(|(i, values)| NwpChunk {
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
        if let Some((v, var)) = self.open.iter().next() {
            return Err(WorkloadError::new(format!(
                "group {}: variable {v} has {} of {} steps",
                self.g, var.count, self.layout.dataset.steps
            )));
        }
        if let Some(v) = self.done.iter().position(|d| !d) {
            return Err(WorkloadError::new(format!(
                "group {}: variable {v} received no input",
                self.g
            )));
        }
        Ok(())
    }
}
