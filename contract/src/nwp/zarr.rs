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
/// The name of the sharded output layout in scenarios and results.
pub const SHARDED_LAYOUT: &str = "sharded";
/// One line on the sharded output layout, for `harness list`.
pub const SHARDED_LAYOUT_SUMMARY: &str = "one Zarr v3 array, one object per shard of \
    [output] shard chunks (sharding_indexed: inner chunks bytes + zstd, index at the end \
    with crc32c)";

/// How the output is chunked and compressed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutputParams {
    /// Chunk extent along y.
    pub cy: u32,
    /// Chunk extent along x.
    pub cx: u32,
    /// Level of the zstd codec of the chunks.
    pub zstd_level: i32,
    /// The sharded layout's shard shape in chunks, along `[init_time, variable,
    /// step, y, x]`: `[1, kv, 1, ky, kx]` (a shard never spans groups or steps);
    /// `None` for the chunked layout, and in results written before shards existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<[u32; 5]>,
}

/// A shard's extent in chunks along variable, y and x.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ShardShape {
    /// Variables per shard.
    pub kv: u32,
    /// Chunks along y per shard.
    pub ky: u32,
    /// Chunks along x per shard.
    pub kx: u32,
}

impl ShardShape {
    /// Inner chunk positions in one shard.
    pub fn positions(&self) -> usize {
        self.kv as usize * self.ky as usize * self.kx as usize
    }
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

    /// What the output's objects are called in messages: `chunk` or `shard`.
    pub fn object_noun(&self) -> &'static str {
        if self.output.shard.is_some() {
            "shard"
        } else {
            "chunk"
        }
    }

    /// The shard shape in chunks, if the layout is sharded.
    pub fn shard(&self) -> Option<ShardShape> {
        self.output
            .shard
            .map(|[_, kv, _, ky, kx]| ShardShape { kv, ky, kx })
    }

    /// The grid of the output's objects along variable, y and x: chunks
    /// (`variables`, chunk rows, chunk columns) in the chunked layout, shards in
    /// the sharded one (edge shards counted whole).
    pub fn object_grid(&self) -> (u32, u32, u32) {
        let (ncy, ncx) = self.chunk_grid();
        let v = self.dataset.variables;
        match self.shard() {
            None => (v, ncy, ncx),
            Some(s) => (v.div_ceil(s.kv), ncy.div_ceil(s.ky), ncx.div_ceil(s.kx)),
        }
    }

    /// Objects (chunks or shards) per group.
    pub fn objects_per_group(&self) -> u64 {
        let (a, b, c) = self.object_grid();
        a as u64 * b as u64 * c as u64
    }

    /// Objects (chunks or shards) of the whole array, `zarr.json` not included.
    pub fn total_objects(&self) -> u64 {
        self.dataset.groups as u64 * self.objects_per_group()
    }

    /// The inner chunk (v, iy, ix) at `position` (C order) of shard (sv, sy, sx), or
    /// `None` where the shard reaches past the array's chunk grid.
    pub fn inner_chunk(
        &self,
        sv: u32,
        sy: u32,
        sx: u32,
        position: usize,
    ) -> Option<(u32, u32, u32)> {
        let s = self.shard()?;
        let p = position as u32;
        let (dv, dy, dx) = (p / (s.ky * s.kx), p / s.kx % s.ky, p % s.kx);
        let (v, iy, ix) = (sv * s.kv + dv, sy * s.ky + dy, sx * s.kx + dx);
        let (ncy, ncx) = self.chunk_grid();
        (v < self.dataset.variables && iy < ncy && ix < ncx).then_some((v, iy, ix))
    }

    /// The values a shard must hold: per position, the inner chunk's values or
    /// `None` where it is absent.
    pub fn expected_shard(&self, g: u32, sv: u32, sy: u32, sx: u32) -> Vec<Option<Vec<f32>>> {
        let n = self.shard().map_or(0, |s| s.positions());
        (0..n)
            .map(|p| {
                self.inner_chunk(sv, sy, sx, p)
                    .map(|(v, iy, ix)| self.expected_chunk(g, v, iy, ix))
            })
            .collect()
    }

    /// Encodes a shard from its inner chunks' values (per position, `None` when
    /// absent): each with the chunks' codecs, then the index (see [`super::shard`]).
    /// Each inner chunk's values are dropped once encoded, so the shard never holds
    /// more than its values, its bytes so far and one encoded inner chunk.
    pub fn encode_shard(&self, inner: Vec<Option<Vec<f32>>>) -> Result<Vec<u8>, String> {
        // Room for every inner chunk at zstd's bound: never reallocated (and never
        // touched past what the chunks take).
        let present = inner.iter().flatten().count();
        let bound = zstd::zstd_safe::compress_bound(self.chunk_len() * 4);
        let mut w = super::shard::ShardWriter::new(inner.len(), present * bound);
        for (p, chunk) in inner.into_iter().enumerate() {
            match chunk {
                None => w.push(None),
                Some(values) => {
                    let bytes = self
                        .encode_chunk(&values)
                        .map_err(|e| format!("inner chunk {p}: {e}"))?;
                    drop(values);
                    w.push(Some(&bytes));
                }
            }
        }
        Ok(w.finish())
    }

    /// Decodes a stored shard back into its inner chunks' values (per position,
    /// `None` when absent). The index must be intact (see
    /// [`super::shard::decode_index`]); the error names the inner chunk that does
    /// not decode.
    pub fn decode_shard(&self, bytes: &[u8]) -> Result<Vec<Option<Vec<f32>>>, String> {
        let n = self.shard().map_or(0, |s| s.positions());
        super::shard::decode_index(bytes, n)?
            .into_iter()
            .enumerate()
            .map(|(p, r)| {
                r.map(|r| {
                    self.decode_chunk(&bytes[r])
                        .map_err(|e| format!("inner chunk {p}: {e}"))
                })
                .transpose()
            })
            .collect()
    }

    /// The most bytes one encoded shard can take: every position's chunk at zstd's
    /// bound, and the index.
    pub fn max_shard_bytes(&self) -> u64 {
        let Some(s) = self.shard() else { return 0 };
        let chunk = zstd::zstd_safe::compress_bound(self.chunk_len() * 4) as u64;
        (s.positions() as u64)
            .saturating_mul(chunk)
            .saturating_add(super::shard::index_len(s.positions()) as u64)
    }

    /// The key of chunk (g, v, 0, iy, ix) under the array's root, e.g. `c/0/3/0/1/2`.
    pub fn chunk_key(g: u32, v: u32, iy: u32, ix: u32) -> String {
        format!("c/{g}/{v}/0/{iy}/{ix}")
    }

    /// (g, v, iy, ix) of an object key (a chunk's, or a shard's in the sharded
    /// layout: then they index the shard grid), if it is one of this array's.
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
        let (nv, ny, nx) = self.object_grid();
        (g < self.dataset.groups && v < nv && s == 0 && iy < ny && ix < nx)
            .then_some((g, v, iy, ix))
    }

    /// The `zarr.json` document.
    pub fn zarr_json(&self) -> String {
        let d = &self.dataset;
        let o = &self.output;
        let chunk_shape = json!([1, 1, d.steps, o.cy, o.cx]);
        let chunk_codecs = json!([
            {"name": "bytes", "configuration": {"endian": "little"}},
            {"name": "zstd", "configuration": {"level": o.zstd_level, "checksum": false}}
        ]);
        let (grid_shape, codecs) = match self.shard() {
            None => (chunk_shape, chunk_codecs),
            Some(s) => (
                json!([1, s.kv, d.steps, s.ky * o.cy, s.kx * o.cx]),
                json!([{
                    "name": "sharding_indexed",
                    "configuration": {
                        "chunk_shape": chunk_shape,
                        "codecs": chunk_codecs,
                        "index_codecs": [
                            {"name": "bytes", "configuration": {"endian": "little"}},
                            {"name": "crc32c"}
                        ],
                        "index_location": "end"
                    }
                }]),
            ),
        };
        let doc = json!({
            "zarr_format": 3,
            "node_type": "array",
            "shape": [d.groups, d.variables, d.steps, d.ny, d.nx],
            "data_type": "float32",
            "chunk_grid": {
                "name": "regular",
                "configuration": {"chunk_shape": grid_shape}
            },
            "chunk_key_encoding": {"name": "default", "configuration": {"separator": "/"}},
            "fill_value": 0.0,
            "codecs": codecs,
            "attributes": {
                d.attributes_key(): d.value_attributes()
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nwp::{Codec, Layout};

    /// 2 groups × 3 variables × 4 steps of 10 × 9 in 4 × 5 chunks (a 3 × 2 chunk
    /// grid), sharded 2 variables × 2 × 2 chunks.
    fn sharded() -> ArrayLayout {
        let dataset = DatasetParams {
            layout: Layout::Files,
            groups: 2,
            variables: 3,
            steps: 4,
            ny: 10,
            nx: 9,
            codec: Codec::Zstd,
            zstd_level: 1,
            noise_bits: 4,
            seed: 5,
            format: Default::default(),
        };
        let output = OutputParams {
            cy: 4,
            cx: 5,
            zstd_level: 3,
            shard: Some([1, 2, 1, 2, 2]),
        };
        ArrayLayout::new(dataset, output)
    }

    #[test]
    fn the_sharded_zarr_json_names_the_sharding_codec() {
        let l = sharded();
        let doc: serde_json::Value = serde_json::from_str(&l.zarr_json()).unwrap();
        assert_eq!(
            doc["chunk_grid"]["configuration"]["chunk_shape"],
            json!([1, 2, 4, 8, 10])
        );
        let codecs = doc["codecs"].as_array().unwrap();
        assert_eq!(codecs.len(), 1);
        assert_eq!(codecs[0]["name"], "sharding_indexed");
        let c = &codecs[0]["configuration"];
        assert_eq!(c["chunk_shape"], json!([1, 1, 4, 4, 5]));
        assert_eq!(c["codecs"][1]["configuration"]["level"], 3);
        assert_eq!(c["index_codecs"][1], json!({"name": "crc32c"}));
        assert_eq!(c["index_location"], "end");
        // The chunked layout keeps its document.
        let mut chunked = sharded();
        chunked.output.shard = None;
        let doc: serde_json::Value = serde_json::from_str(&chunked.zarr_json()).unwrap();
        assert_eq!(doc["codecs"][1]["name"], "zstd");
    }

    #[test]
    fn edge_shards_mark_positions_past_the_chunk_grid_absent() {
        let l = sharded();
        assert_eq!(l.object_grid(), (2, 2, 1));
        assert_eq!((l.objects_per_group(), l.total_objects()), (4, 8));
        // Shard (0, 0, 0): variables 0-1, chunk rows 0-1, columns 0-1: all present.
        assert!((0..8).all(|p| l.inner_chunk(0, 0, 0, p).is_some()));
        // Shard (0, 1, 0): chunk row 3 does not exist.
        let present: Vec<_> = (0..8).map(|p| l.inner_chunk(0, 1, 0, p)).collect();
        assert_eq!(
            present,
            [
                Some((0, 2, 0)),
                Some((0, 2, 1)),
                None,
                None,
                Some((1, 2, 0)),
                Some((1, 2, 1)),
                None,
                None
            ]
        );
        // Shard (1, 1, 0): variable 3 does not exist either: one row of one variable.
        let n = (0..8)
            .filter(|&p| l.inner_chunk(1, 1, 0, p).is_some())
            .count();
        assert_eq!(n, 2);
        assert_eq!(l.parse_chunk_key("c/1/1/0/1/0"), Some((1, 1, 1, 0)));
        assert_eq!(l.parse_chunk_key("c/1/2/0/1/0"), None);
        assert_eq!(l.parse_chunk_key("c/1/1/0/0/1"), None);
    }

    #[test]
    fn a_shard_round_trips_through_its_codecs() {
        let l = sharded();
        for (sv, sy) in [(0, 0), (1, 1)] {
            let expected = l.expected_shard(1, sv, sy, 0);
            let bytes = l.encode_shard(expected.clone()).unwrap();
            assert!(bytes.len() as u64 <= l.max_shard_bytes());
            let decoded = l.decode_shard(&bytes).unwrap();
            assert_eq!(decoded.len(), 8);
            for (d, e) in decoded.iter().zip(&expected) {
                let bits = |c: &Option<Vec<f32>>| {
                    c.as_ref()
                        .map(|v| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>())
                };
                assert_eq!(bits(d), bits(e));
            }
            // Inner chunks are the chunked layout's chunk objects, byte for byte.
            let index = crate::nwp::shard::decode_index(&bytes, 8).unwrap();
            let (v, iy, ix) = l.inner_chunk(sv, sy, 0, 0).unwrap();
            let chunk = l.encode_chunk(&l.expected_chunk(1, v, iy, ix)).unwrap();
            assert_eq!(&bytes[index[0].clone().unwrap()], &chunk[..]);
        }
        // An inner chunk that does not decode is named.
        let mut inner = l.expected_shard(0, 0, 0, 0);
        inner[3] = Some(vec![1.0; 3]);
        let bytes = l.encode_shard(inner).unwrap();
        let err = l.decode_shard(&bytes).unwrap_err();
        assert!(
            err.starts_with("inner chunk 3: decodes to 12 bytes"),
            "{err}"
        );
    }
}
