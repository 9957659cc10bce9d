//! The Zarr v3 array the NWP workload writes (docs/FORMATS.md, "The Zarr v3 output").

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::message::f32_bytes;
use super::DatasetParams;

/// The name of this output layout in scenarios (`[output] layout`) and results.
pub const LAYOUT: &str = "chunked";
/// One line on this output layout, for `harness list`.
pub const LAYOUT_SUMMARY: &str = "one Zarr v3 array, one object per chunk of \
    [1, 1, steps, cy, cx], codecs bytes + zstd";

/// How the output is chunked and compressed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutputParams {
    /// Chunk extent along y.
    pub cy: u32,
    /// Chunk extent along x.
    pub cx: u32,
    /// Level of the zstd codec of the chunks.
    pub zstd_level: i32,
}

/// The array's geometry: dataset shape plus chunking.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ArrayLayout {
    /// The dataset the array is made from (its shape).
    pub dataset: DatasetParams,
    /// The chunking and compression.
    pub output: OutputParams,
}

impl ArrayLayout {
    /// The array of `dataset` chunked as `output` says.
    pub fn new(dataset: DatasetParams, output: OutputParams) -> Self {
        ArrayLayout { dataset, output }
    }

    /// Chunks along y and x.
    pub fn chunk_grid(&self) -> (u32, u32) {
        (
            self.dataset.ny.div_ceil(self.output.cy),
            self.dataset.nx.div_ceil(self.output.cx),
        )
    }

    /// Values in one (full-size, padded) chunk.
    pub fn chunk_len(&self) -> usize {
        self.dataset.steps as usize * self.output.cy as usize * self.output.cx as usize
    }

    /// Chunks of one variable of one group: the chunk grid's size.
    pub fn chunks_per_variable(&self) -> u64 {
        let (a, b) = self.chunk_grid();
        a as u64 * b as u64
    }

    /// Chunks of the whole array.
    pub fn total_chunks(&self) -> u64 {
        self.dataset.groups as u64 * self.dataset.variables as u64 * self.chunks_per_variable()
    }

    /// The key of chunk (g, v, 0, iy, ix) under the array's root, e.g. `c/0/3/0/1/2`.
    pub fn chunk_key(g: u32, v: u32, iy: u32, ix: u32) -> String {
        format!("c/{g}/{v}/0/{iy}/{ix}")
    }

    /// (g, v, iy, ix) of a chunk key, if it is one of this array's.
    pub fn parse_chunk_key(&self, key: &str) -> Option<(u32, u32, u32, u32)> {
        let rest = key.strip_prefix("c/")?;
        let parts: Vec<&str> = rest.split('/').collect();
        let [g, v, s, iy, ix] = parts[..] else {
            return None;
        };
        // Canonical decimal only: "01" is not the key of chunk 1.
        let num = |t: &str| -> Option<u32> {
            let n: u32 = t.parse().ok()?;
            (n.to_string() == t).then_some(n)
        };
        let (g, v, s, iy, ix) = (num(g)?, num(v)?, num(s)?, num(iy)?, num(ix)?);
        let (ny, nx) = self.chunk_grid();
        (g < self.dataset.groups && v < self.dataset.variables && s == 0 && iy < ny && ix < nx)
            .then_some((g, v, iy, ix))
    }

    /// The `zarr.json` document.
    pub fn zarr_json(&self) -> String {
        let d = &self.dataset;
        let o = &self.output;
        let doc = json!({
            "zarr_format": 3,
            "node_type": "array",
            "shape": [d.groups, d.variables, d.steps, d.ny, d.nx],
            "data_type": "float32",
            "chunk_grid": {
                "name": "regular",
                "configuration": {"chunk_shape": [1, 1, d.steps, o.cy, o.cx]}
            },
            "chunk_key_encoding": {"name": "default", "configuration": {"separator": "/"}},
            "fill_value": 0.0,
            "codecs": [
                {"name": "bytes", "configuration": {"endian": "little"}},
                {"name": "zstd", "configuration": {"level": o.zstd_level, "checksum": false}}
            ],
            "attributes": {
                "nwp_fields": d.value_attributes()
            },
            "dimension_names": ["init_time", "variable", "step", "y", "x"]
        });
        serde_json::to_string_pretty(&doc).expect("a JSON value serialises")
    }

    /// The values chunk (g, v, iy, ix) must hold: `[steps, cy, cx]`, padded with 0.0.
    pub fn expected_chunk(&self, g: u32, v: u32, iy: u32, ix: u32) -> Vec<f32> {
        let d = &self.dataset;
        let (cy, cx) = (self.output.cy, self.output.cx);
        let values = d.values();
        let mut out = vec![0.0f32; self.chunk_len()];
        for s in 0..d.steps {
            for y in 0..cy {
                let gy = iy * cy + y;
                if gy >= d.ny {
                    break;
                }
                for x in 0..cx {
                    let gx = ix * cx + x;
                    if gx >= d.nx {
                        break;
                    }
                    out[((s * cy + y) * cx + x) as usize] = values.value(g, v, s, gy, gx);
                }
            }
        }
        out
    }

    /// Encodes chunk values with the array's codecs: `bytes` (little endian), `zstd`.
    pub fn encode_chunk(&self, values: &[f32]) -> Result<Vec<u8>, String> {
        zstd::bulk::compress(f32_bytes(values), self.output.zstd_level)
            .map_err(|e| format!("zstd: {e}"))
    }

    /// Decodes a stored chunk back into values.
    pub fn decode_chunk(&self, bytes: &[u8]) -> Result<Vec<f32>, String> {
        let expected = self.chunk_len() * 4;
        let raw = zstd::bulk::decompress(bytes, expected).map_err(|e| format!("zstd: {e}"))?;
        if raw.len() != expected {
            return Err(format!(
                "decodes to {} bytes, expected {expected}",
                raw.len()
            ));
        }
        Ok(raw
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
            .collect())
    }
}
